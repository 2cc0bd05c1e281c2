# The kernel matrix (tools/kmatrix): for each Debian suite (bookworm 6.1, trixie 6.12, sid the
# newest), a chroot made by mmdebstrap and cached in ~/.cache/mock-accel/kmatrix/<suite> (made
# again when the mirror's kernel, headers or compiler change), the module built W=1 there with
# the suite's compiler, the suite's kernel booted in the QEMU harness with the conformance and
# kernel suites run on that module, the kernel log checked. Prints the table and records it in
# kmod/matrix-results.md. Not part of `make test` (the tests there keep the host's kernel).
# KMATRIX_ARGS: suites and flags, e.g. `make kmod-matrix KMATRIX_ARGS="trixie --offline"`.
.PHONY: kmod-matrix

APT_PACKAGES += mmdebstrap
KMATRIX_ARGS ?=

kmod-matrix: apt-deps firmware
	@echo "==> the kernel matrix (tools/kmatrix): build W=1, boot, conformance, kernel suite, dmesg"
	$(PYTHON) -m tools.kmatrix $(KMATRIX_ARGS)

# The offline kind node image (tools/kind): built from packages only, cached by versions in
# ~/.cache/mock-accel/kind and in our Docker engine's data root. Not part of `make test`.
#   make kind-node-image   build (or find) mock-accel/kind-node:<kubernetes version>
#   make kind-runtime      our dockerd runs our runc wrapper by default (tools/docker runtime)
#   make test-kind         create a kind cluster from it, wait for Ready, run a pod, delete it
.PHONY: kind-node-image kind-runtime test-kind

# libseccomp-dev: runc's seccomp tag (tools/gotools.py; tests/plugin/test_cdi_runc.py uses it too)
APT_PACKAGES += mmdebstrap libseccomp-dev

kind-node-image: dockerd-up
	@echo "==> kind node image (tools/kind/nodeimage.py)"
	$(PYTHON) -m tools.kind.nodeimage

kind-runtime: dockerd-up
	$(PYTHON) -m tools.docker runtime --default

test-kind: kind-node-image kind-runtime images
	@echo "==> a kind cluster from the offline node image (tests/kind)"
	MOCK_ACCEL_KIND_TEST=1 $(PYTHON) -m pytest -m kind -v -s tests/kind $(PYTEST_ARGS)

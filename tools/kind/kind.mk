# The offline kind node image (tools/kind): built from packages only, cached by versions in
# ~/.cache/mock-accel/kind and in our Docker engine's data root.
#   make kind-node-image   build (or find) mock-accel/kind-node:<kubernetes version>
#   make kind-runtime      our dockerd runs our runc wrapper by default (tools/docker runtime)
#   make test-kind         tests/kind on one cluster from it (a control plane, two workers)
#   make kind-tier         what `make test` runs: make e2e-kind (tests/e2e/e2e.mk) and
#                          make test-kind, with our dockerd started for them and stopped by its
#                          pid afterwards, on failure too (unless it was up before: then it stays)
.PHONY: kind-node-image kind-runtime test-kind kind-tier

TEST_AFTER_PYTEST += kind-tier

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

kind-tier: apt-deps
	$(PYTHON) -m tools.docker session -- $(MAKE) e2e-kind test-kind

# tests/e2e: the end-to-end notebooks (nbs/e2e/, papermill) and the kind scripts.
#   make e2e-notebooks   local mode, part of `make test`: a local control plane with 2 nodes, the
#                        chart installed on it (mock_accel.localnodes), every notebook run;
#                        executed notebooks, pictures and process logs in artifacts/e2e-notebooks
#   make e2e-kind        kind mode, offline (in `make test`, through make kind-tier): our
#                        dockerd, the images, the local registry, the offline node image, a
#                        kind cluster of KIND_WORKERS workers (tools/kind/cluster), the notebooks
#                        in kind mode with the chart in simulation mode (tests/e2e/run_kind.py);
#                        executed notebooks, pod logs, kubelet/containerd journals and
#                        measure.json in artifacts/e2e-kind; the cluster is deleted on any exit
#                        (KEEP_CLUSTER=1 keeps it)
#   make e2e-kind-kmm    kind mode online with the kernel module through KMM (a host that can
#                        pull images and load modules): tests/e2e/kind/e2e.sh
E2E_OUT ?= $(ARTIFACTS)/e2e-notebooks
E2E_NODES ?= 2
# more notebook parameters, e.g. E2E_PARAMS='-p chart /path/to/another/chart'
E2E_PARAMS ?=

KIND_CLUSTER ?= mock-accel-e2e
KIND_WORKERS ?= 2
KEEP_CLUSTER ?=

.PHONY: e2e-notebooks e2e-kind e2e-kind-kmm

TEST_AFTER_PYTEST += e2e-notebooks

# The trap stops the stand-in kubelet's processes and the control plane on any exit.
e2e-notebooks: cluster-bins firmware
	@work=$$(mktemp -d /tmp/mock-accel-e2e-XXXXXX); state=$$work/cluster.json; \
	trap '$(PYTHON) -m mock_accel.localnodes down --state-file '"$$work"'/install.json \
		>/dev/null; $(PYTHON) -m mock_accel.cluster down --state-file '"$$state"' >/dev/null; \
		rm -rf '"$$work" EXIT; \
	echo "==> e2e notebooks (local mode): starting the local control plane"; \
	$(PYTHON) -m mock_accel.cluster up --nodes $(E2E_NODES) --state-file "$$state" || exit 1; \
	kubeconfig=$$($(PYTHON) -c 'import json, sys; print(json.load(open(sys.argv[1]))["kubeconfig"])' \
		"$$state") || exit 1; \
	rm -rf $(E2E_OUT); \
	$(PYTHON) -m tests.e2e.run_notebooks --out $(E2E_OUT) -p mode local \
		-p kubeconfig "$$kubeconfig" -p cluster_state "$$state" \
		-p install_state "$$work/install.json" -p artifacts $(E2E_OUT) $(E2E_PARAMS)

e2e-kind: kind-node-image kind-runtime kind-registry-up firmware
	@echo "==> e2e notebooks (kind mode, offline, simulation): cluster $(KIND_CLUSTER)"
	$(PYTHON) -m tests.e2e.run_kind --out $(ARTIFACTS)/e2e-kind --name $(KIND_CLUSTER) \
		--workers $(KIND_WORKERS) $(if $(KEEP_CLUSTER),--keep) $(E2E_PARAMS)

e2e-kind-kmm: py-deps firmware
	tests/e2e/kind/e2e.sh

# A real kubelet node in the QEMU guest (tools/vmnode, README.md "node"): the host's control
# plane, containerd + kubelet in the guest, the module image loaded the way KMM's worker does,
# the chart and a pod calling the passphrase ioctl. Minutes under TCG: not part of `make test`.
#   make e2e-node                       all checks (MOCK_ACCEL_VMNODE_STEPS picks some)
.PHONY: e2e-node

e2e-node: images
	@echo "==> a kubelet node in the QEMU guest (tools/vmnode)"
	MOCK_ACCEL_VMNODE_TEST=1 $(PYTHON) -m pytest -m vmnode -v -s tests/vmnode $(PYTEST_ARGS)

# The e2e notebooks in node mode (tests/e2e/run_node.py): the chart on the guest node, pods
# calling the passphrase ioctl, faults through the module's sysfs, `helm uninstall`. With
# KMM_SRC=<checkout of KMM v2.6.0> KMM loads and unloads the module; without it the module is
# loaded the way KMM's worker does ("KMM not run"). Executed notebooks in artifacts/e2e-node.
#   make e2e-node-notebooks [KMM_SRC=...]
.PHONY: e2e-node-notebooks e2e-node-notebooks-run

e2e-node-notebooks: apt-deps
	$(PYTHON) -m tools.docker session -- $(MAKE) e2e-node-notebooks-run

e2e-node-notebooks-run: images firmware
	@echo "==> e2e notebooks (node mode, the QEMU guest): KMM $(if $(KMM_SRC),prebuilt,not run)"
	$(PYTHON) -m tests.e2e.run_node --out $(ARTIFACTS)/e2e-node \
		--kmm $(if $(KMM_SRC),prebuilt,none) $(E2E_PARAMS)

# A real kubelet node in the QEMU guest (tools/vmnode, README.md "node"): the host's control
# plane, containerd + kubelet in the guest, the module image loaded the way KMM's worker does,
# the chart and a pod calling the passphrase ioctl. Minutes under TCG: not part of `make test`.
#   make e2e-node                       all checks (MOCK_ACCEL_VMNODE_STEPS picks some)
.PHONY: e2e-node

e2e-node: images
	@echo "==> a kubelet node in the QEMU guest (tools/vmnode)"
	MOCK_ACCEL_VMNODE_TEST=1 $(PYTHON) -m pytest -m vmnode -v -s tests/vmnode $(PYTEST_ARGS)

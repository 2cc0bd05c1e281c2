# The guest node's short slice in `make test` (tests/vmnode/test_node_slice.py, issue 16 item 4):
# node Ready, the module image loaded, one pod calling the passphrase ioctl; the images reach
# the node as `docker save` archives over 9p. Our dockerd runs for it (tools.docker session:
# stopped afterwards unless it was up before); skipped with one line without qemu or a kernel.
#   make node-slice
.PHONY: node-slice node-slice-run

TEST_AFTER_PYTEST += node-slice

node-slice: apt-deps
	$(PYTHON) -m tools.docker session -- $(MAKE) node-slice-run

node-slice-run: images
	@echo "==> the guest node's slice: Ready, module loaded, a pod calls the ioctl (tools/vmnode)"
	MOCK_ACCEL_VMNODE_SLICE=1 $(PYTHON) -m pytest -m vmnode -v -s tests/vmnode/test_node_slice.py $(PYTEST_ARGS)

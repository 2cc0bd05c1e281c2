# The local registry kind nodes pull from (tools/registry): distribution v3.1.2 and a busybox,
# both built here FROM scratch, the driver image of `make images` pushed to it. Not part of
# `make test`; tests/kind/test_kind_chart.py (`make test-kind`) starts and stops it itself.
#   make kind-registry-up     build, run mock-accel-registry (127.0.0.1:5001), push the images
#   make kind-registry-down   remove the container
#   python3 -m tools.registry nodes <cluster>   point a kind cluster's containerd at it
.PHONY: kind-registry-up kind-registry-down

kind-registry-up: dockerd-up images
	$(PYTHON) -m tools.registry up

kind-registry-down:
	$(PYTHON) -m tools.registry down

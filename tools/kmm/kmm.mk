# Kernel Module Management from a checkout of its source (tools/kmm/README.md): the Go proxy
# refuses KMM, so these need KMM_SRC=<checkout of v2.6.0> (or a reachable github.com). Not part
# of `make test`; there, tests/kmm runs its source checks and skips the operator with the reason.
#   make kmm        build KMM's manager and worker and the worker image
#   make test-kmm   KMM's operator against the local control plane (tests/kmm)
.PHONY: kmm test-kmm

kmm: dockerd-up
	$(PYTHON) -m tools.kmm build

test-kmm:
	$(PYTHON) -m tools.kmm build --no-image
	$(PYTHON) -m pytest -p no:cacheprovider -s tests/kmm

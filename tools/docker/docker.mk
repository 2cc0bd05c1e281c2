# Our own Docker engine (tools/docker): dockerd with its own data root (a cache of images in
# ~/.cache/mock-accel/docker), exec root, pidfile, socket and log under /run/mock-accel-docker.
# Nothing on the CI machines starts one; the image builds and the kind e2e start it here and
# stop it by its pid. `eval $$(python -m tools.docker env)` points a shell's docker CLI at it.
# MOCK_ACCEL_DOCKERD_ARGS: more dockerd arguments. The daemon reads /run/mock-accel-docker/daemon.json;
# `python -m tools.docker runtime [--default]` registers our runc wrapper there (root here lacks
# CAP_SYS_RESOURCE, so privileged containers such as kind's nodes fail under plain runc) and
# makes dockerd reload it (SIGHUP): no restart, no container stops.
.PHONY: dockerd-up dockerd-down

APT_PACKAGES += docker.io

dockerd-up: apt-deps
	@echo "==> dockerd of our own (tools/docker)"
	$(PYTHON) -m tools.docker up

dockerd-down:
	$(PYTHON) -m tools.docker down

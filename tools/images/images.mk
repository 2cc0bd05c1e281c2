# The images this project builds (tools/images, images/README.md): the Debian bases from
# packages (mmdebstrap + docker import, cached in our engine by their inputs), then the driver
# image and the module image for the kernel `make kmod` builds for, tagged with the one version
# (settings.ini). `make images-test` builds them and runs the tests on the built images.
.PHONY: images images-lock images-test

# busybox-static: the busybox image (tools/images/busybox.py)
APT_PACKAGES += mmdebstrap busybox-static

images: dockerd-up firmware
	@echo "==> images (tools/images): bases, driver, module"
	$(PYTHON) -m tools.images build

# Rewrite images/driver/*.lock after a change of pyproject.toml's dependencies (PyPI).
images-lock:
	$(PYTHON) -m tools.images lock

images-test: images
	MOCK_ACCEL_IMAGES=1 $(PYTHON) -m pytest tests/images $(PYTEST_ARGS)

"""The kernel matrix (`make kmod-matrix`): the module built, booted and tested per Debian kernel."""

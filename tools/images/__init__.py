"""The images this project builds (`make images`): bases from Debian packages, then `docker build`.

No registry is reachable on the CI machines, so every base is made here: `mmdebstrap` writes a
Debian bookworm root filesystem from the mirror and `docker import` turns it into an image,
cached in our engine (tools/docker) under a tag derived from its inputs. The driver and module
images are then built from images/ with the legacy builder (`DOCKER_BUILDKIT=0`: Debian's
dockerd 20.10 and a docker CLI without buildx), the bases passed as build args.

    python -m tools.images bases|build|lock|names
"""
from __future__ import annotations

import configparser
import hashlib
import json
import os
from pathlib import Path

from tools.locate import REPO

CACHE = Path(os.environ.get("MOCK_ACCEL_IMAGES_CACHE")
             or Path.home() / ".cache" / "mock-accel" / "images")
SUITE = "bookworm"
# The chart's default repositories: `localhost/` is no public registry, so a cluster that was not
# given the images (kind load, or a push plus --set …repository) fails to pull instead of running
# whatever someone else publishes under our name.
DRIVER_REPO = "localhost/mock-accel/dra-driver"
MODULE_REPO = "localhost/mock-accel/module"
# Bases: name -> the Debian packages on top of minbase.
BASES = {
    "python": ["python3", "python3-venv"],  # the driver image (builder venv and runtime)
    "debian": [],  # the module's builders (apt installs headers) and its final image (kmod)
}
DRIVER_LOCK = REPO / "images" / "driver" / "requirements.lock"
BUILD_LOCK = REPO / "images" / "driver" / "build-requirements.lock"
BUILD_CA_DIR = REPO / "images" / "driver" / "build-ca"


class ImageError(RuntimeError):
    """A build step failed; the message names the step and says why in one line."""


def version() -> str:
    """The one version (settings.ini): package, chart version and appVersion, image tags."""
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "settings.ini")
    return cfg["DEFAULT"]["version"]


def base_key(name: str) -> str:
    """A short hash of everything a base is made from: suite, variant, packages, this recipe."""
    recipe = {"suite": SUITE, "variant": "minbase", "include": BASES[name], "recipe": 1}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def base_image(name: str) -> str:
    """The local tag of a base: its name and the key of its inputs."""
    return f"mock-accel/images-base-{name}:{SUITE}-{base_key(name)}"


def driver_image() -> str:
    return f"{DRIVER_REPO}:{version()}"


def module_image(kver: str) -> str:
    return f"{MODULE_REPO}:{version()}-{kver}"

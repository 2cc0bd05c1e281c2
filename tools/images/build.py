"""`docker build` of the driver and module images from images/, on the bases made here."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tools.locate import REPO, WORDLIST

from . import BUILD_CA_DIR, ImageError, driver_image, module_image, version
from .bases import build_base
from .steps import run, say

FAMILIES = ("FEDORA", "RHEL", "DEBIAN", "DEBIAN13", "DEBIAN14", "UBUNTU")


def build_ca() -> Path | None:
    """The CA bundle pip must trust inside the build (this host reaches PyPI through a TLS proxy
    whose CA only the host's bundle has): $MOCK_ACCEL_BUILD_CA, else pip's own `cert` setting."""
    if (given := os.environ.get("MOCK_ACCEL_BUILD_CA")) is not None:
        return Path(given) if given else None
    cert = os.environ.get("PIP_CERT") or subprocess.run(
        ["python3", "-m", "pip", "config", "get", "global.cert"], capture_output=True,
        text=True).stdout.strip()
    return Path(cert) if cert and Path(cert).is_file() else None


def _docker_build(step: str, containerfile: str, tag: str, args: dict[str, str]) -> str:
    # --force-rm: a failed step leaves no container behind (the legacy builder keeps it)
    cmd = ["docker", "build", "--force-rm", "--network", "host", "-f", containerfile, "-t", tag,
           "--label", f"org.opencontainers.image.version={version()}"]
    for k, v in args.items():
        cmd += ["--build-arg", f"{k}={v}"]
    run(step, [*cmd, str(REPO)], cwd=REPO)
    return tag


def build_driver() -> str:
    """The driver image; the CA, when one is needed, is in the build context only meanwhile."""
    base = build_base("python")
    ca, dest = build_ca(), BUILD_CA_DIR / "ca.pem"
    if ca is not None:
        shutil.copyfile(ca, dest)
        say(f"==> [driver] pip trusts {ca} in the build stage only")
    try:
        return _docker_build("driver: docker build", "images/driver/Containerfile",
                             driver_image(), {"PYTHON_IMAGE": base})
    finally:
        dest.unlink(missing_ok=True)


def default_kernel() -> str:
    """The kernel `make kmod` builds for: the newest Debian *-amd64 in /lib/modules."""
    kernels = sorted((p.name for p in Path("/lib/modules").glob("*-amd64")),
                     key=lambda v: [int(x) if x.isdigit() else x for x in
                                    v.replace("-", ".").split(".")])
    if not kernels:
        raise ImageError("step module: no Debian *-amd64 kernel in /lib/modules to build for: "
                         "pass --kernel or run make deps")
    return kernels[-1]


def build_module(kver: str | None = None) -> str:
    """The module image for one Debian bookworm kernel; every builder stage on the Debian base
    (stages of other families leave their output empty, so any base does for them)."""
    kver = kver or default_kernel()
    if not (REPO / "firmware" / WORDLIST).is_file():
        raise ImageError(f"step module: firmware/{WORDLIST} is missing: run make firmware")
    base = build_base("debian")
    args = {f"{f}_IMAGE": base for f in FAMILIES} | {"BASE_IMAGE": base,
                                                      "KERNEL_FULL_VERSION": kver}
    return _docker_build(f"module {kver}: docker build", "images/kmod/Containerfile",
                         module_image(kver), args)

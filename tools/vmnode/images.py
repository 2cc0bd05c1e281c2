"""The node's images, in the local registry (tools/registry) under a tag of our own.

pause (tools/kind/pause.c, static, FROM scratch), busybox (tools/images/busybox.py), the driver
and the module image of `make images` are pushed as `<path>:<tag>` so that a run never
overwrites the images other runs pull under their default names. The guest reaches the
registry as 127.0.0.1:<port> (a forwarded port), so the references are the same on both sides.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from tools import registry
from tools.images import ImageError, driver_image, module_image
from tools.images.steps import exists, run

PAUSE_C = Path(__file__).resolve().parents[1] / "kind" / "pause.c"


def build_pause(tag: str) -> str:
    """`mock-accel/pause:<tag>`: pause.c linked statically, FROM scratch (Docker's cache: ~1 s)."""
    image = f"mock-accel/pause:{tag}"
    with tempfile.TemporaryDirectory(prefix="mock-accel-vmnode-pause-") as ctx:
        run("pause binary", ["gcc", "-static", "-Os", "-o", f"{ctx}/pause", str(PAUSE_C)],
            quiet=True)
        Path(ctx, "Containerfile").write_text(
            'FROM scratch\nCOPY pause /pause\nENTRYPOINT ["/pause"]\n')
        run("pause image", ["docker", "build", "--network", "none", "-q", "-t", image,
                            "-f", f"{ctx}/Containerfile", ctx],
            quiet=True)
    return image


def publish(tag: str, kver: str) -> dict[str, str]:
    """Start (or reuse) the registry and push the four images; {name: reference}."""
    if shutil.which("docker") is None:
        raise ImageError("step registry: no docker CLI (make deps)")
    reg, busybox = registry.build_images()
    registry.start(reg)
    local = {"pause": build_pause(tag), "busybox": busybox, "driver": driver_image(),
             "module": module_image(kver)}
    for name in ("driver", "module"):
        if exists(local[name]) is None:
            raise ImageError(f"step push {name}: {local[name]} is not built: make images")
    paths = {"pause": f"mock-accel/pause:{tag}", "busybox": f"library/busybox:{tag}",
             "driver": f"mock-accel/dra-driver:{tag}",
             "module": f"mock-accel/module:{tag}-{kver}"}
    for name, path in paths.items():
        registry.push(local[name], path)
    return {name: f"{registry.ON_HOST}/{path}" for name, path in paths.items()}


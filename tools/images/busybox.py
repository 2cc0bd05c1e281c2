"""busybox, the one small image the tests and the kind nodes run: Debian's static busybox.

Nothing can be pulled here, so `docker build` of busybox.Containerfile (FROM scratch: the binary
of Debian's busybox-static and a link per applet, made by `busybox --install` in the build) with
no network. The local registry serves it as `library/busybox:latest` (tools/registry); the
Docker and kind tests build it on whichever engine they run (`host`).
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from . import ImageError
from .steps import run

HERE = Path(__file__).parent
BUSYBOX = "mock-accel/busybox:debian"
BUSYBOX_BIN = Path("/bin/busybox")  # Debian's busybox-static


def build_busybox(tag: str = BUSYBOX, host: str | None = None, own_id: bool = False) -> str:
    """Build busybox as `tag` on our engine (or the one at `host`, a DOCKER_HOST); a rebuild is
    Docker's layer cache (~1 s). ImageError names the step when it cannot.

    `own_id`: a label naming `tag` gives the image an ID of its own. An image `kind load`ed
    into a node where the registry's busybox (the same ID) was pulled is refused by the kubelet
    (1.37, pull policy Never: "ErrImageNeverPull"): it keeps a pull record per image ID and
    name, and a name it never pulled for a pulled ID must be pulled again."""
    if not BUSYBOX_BIN.is_file():
        raise ImageError(f"step busybox: {BUSYBOX_BIN} is missing: apt-get install "
                         "busybox-static (make apt-deps)")
    with tempfile.TemporaryDirectory(prefix="mock-accel-busybox-") as ctx:
        shutil.copy2(BUSYBOX_BIN, Path(ctx) / "busybox")
        shutil.copy2(HERE / "busybox.Containerfile", Path(ctx) / "Containerfile")
        label = ["--label", f"org.example.mock-accel.image={tag}"] if own_id else []
        run("busybox image", ["docker", "build", "--force-rm", "--network", "none", "-q",
                              *label, "-t", tag, "-f", str(Path(ctx) / "Containerfile"), ctx],
            quiet=True, host=host)
    return tag

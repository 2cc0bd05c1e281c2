"""KMM's worker image: its worker binary in a Debian base with kmod (tools/kmm)."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from tools.images.bases import build_base
from tools.images.steps import run

HERE = Path(__file__).resolve().parent
REPO = "localhost/mock-accel/kmm-worker"


def worker_image(worker: Path) -> str:
    """Build (Docker's layer cache makes a rebuild ~1 s) and return the worker image's tag,
    named by the binary's source digest (its cache directory's name)."""
    tag = f"{REPO}:{worker.parent.name}"
    base = build_base("debian")
    with tempfile.TemporaryDirectory(prefix="mock-accel-kmm-") as ctx:
        shutil.copy2(worker, Path(ctx) / "worker")
        shutil.copy2(HERE / "worker.Containerfile", Path(ctx) / "Containerfile")
        run("kmm worker image", ["docker", "build", "--force-rm", "--network", "host", "-q",
                                 "--build-arg", f"BASE={base}", "-t", tag,
                                 "-f", str(Path(ctx) / "Containerfile"), ctx], quiet=True)
    return tag

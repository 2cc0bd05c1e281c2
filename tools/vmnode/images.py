"""The node's images, in the local registry (tools/registry) under a tag of our own.

pause (tools/kind/pause.c, static, FROM scratch), busybox (tools/images/busybox.py), the
passphrase helper (passphrase.c, static, FROM scratch), the driver and the module image of `make
images`, and the module's files on busybox (the slice's module image) are pushed as
`<path>:<tag>` so that a run never overwrites the images other runs pull under their default
names. The guest reaches the registry as 127.0.0.1:<port> (a forwarded port), so the references
are the same on both sides.

`save()` writes images as one `docker save` archive under those same references, for the node
to import over the 9p share (`VmNode(imports=...)`): a pull through slirp under TCG takes
minutes for 100 MB, mostly gunzip; an archive holds the layers uncompressed.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tools import registry
from tools.images import ImageError, driver_image, module_image
from tools.images.steps import docker_env, exists, run

REPO = Path(__file__).resolve().parents[2]
PAUSE_C = REPO / "tools" / "kind" / "pause.c"
PASSPHRASE_C = REPO / "tools" / "vmnode" / "passphrase.c"
UAPI = REPO / "kmod" / "include" / "uapi"
ARCHIVES = Path(os.environ.get("MOCK_ACCEL_VMNODE_ARCHIVES")
                or Path.home() / ".cache" / "mock-accel" / "vmnode" / "archives")


def build_static(name: str, source: Path, tag: str) -> str:
    """`mock-accel/<name>:<tag>`: `source` linked statically as /<name>, FROM scratch (Docker's
    cache: ~1 s)."""
    image = f"mock-accel/{name}:{tag}"
    with tempfile.TemporaryDirectory(prefix=f"mock-accel-vmnode-{name}-") as ctx:
        run(f"{name} binary", ["gcc", "-static", "-Os", "-Wall", f"-I{UAPI}", "-o",
                               f"{ctx}/{name}", str(source)], quiet=True)
        Path(ctx, "Containerfile").write_text(
            f'FROM scratch\nCOPY {name} /{name}\nENTRYPOINT ["/{name}"]\n')
        run(f"{name} image", ["docker", "build", "--network", "none", "-q", "-t", image,
                              "-f", f"{ctx}/Containerfile", ctx],
            quiet=True)
    return image


def build_pause(tag: str) -> str:
    """`mock-accel/pause:<tag>`: the pod sandbox's process (tools/kind/pause.c)."""
    return build_static("pause", PAUSE_C, tag)


def build_module_busybox(tag: str, module: str, busybox: str) -> str:
    """`mock-accel/module-busybox:<tag>`: the module image's /opt (KMM's layout: the .ko and
    depmod data) and /firmware on busybox (about 4 MB instead of the module image's Debian
    base): its `insmod` loads the module, for the slice in `make test`."""
    image = f"mock-accel/module-busybox:{tag}"
    with tempfile.TemporaryDirectory(prefix="mock-accel-vmnode-module-") as ctx:
        Path(ctx, "Containerfile").write_text(
            f"FROM {module} AS module\nFROM {busybox}\n"
            "COPY --from=module /opt /opt\nCOPY --from=module /firmware /firmware\n")
        run("module-busybox image", ["docker", "build", "--network", "none", "-q", "-t", image,
                                     "-f", f"{ctx}/Containerfile", ctx], quiet=True)
    return image


def archive_name(images: dict[str, str]) -> str:
    """The archive's file name for {reference: image id}: the references' last path parts and
    a hash of the references and ids, so a rebuilt image gets a new archive and an unchanged
    set is saved once."""
    key = hashlib.sha256("\n".join(f"{r}={i}" for r, i in sorted(images.items())).encode())
    parts = "+".join(sorted(r.rsplit("/", 1)[-1].replace(":", "-") for r in images))
    return f"{parts}-{key.hexdigest()[:12]}.tar"


def save(images: dict[str, str], cache: Path = ARCHIVES) -> Path:
    """One `docker save` archive of the local images {reference: local image}, each under its
    reference (the registry's, so the kubelet finds it as it would after a pull): one `ctr
    images import` in the guest, whose start alone takes seconds under TCG. Cached by the
    images' ids; readable by the guest."""
    ids = {}
    for ref, local in images.items():
        info = exists(local)
        if info is None:
            raise ImageError(f"step save: {local} is not built: make images")
        ids[ref] = info["Id"]
    path = cache / archive_name(ids)
    if path.exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    part = path.with_suffix(".part")
    try:
        for ref, local in images.items():
            run(f"save {ref}", ["docker", "tag", local, ref], quiet=True)
        run("save", ["docker", "save", "-o", str(part), *images], quiet=True)
    finally:
        for ref in images:
            subprocess.run(["docker", "rmi", ref], env=docker_env(), capture_output=True)
    part.chmod(0o644)
    part.rename(path)
    for old in cache.glob(f"{path.name.rsplit('-', 1)[0]}-*.tar"):  # older ids of these refs
        if old != path:
            old.unlink(missing_ok=True)
    return path


def publish(tag: str, kver: str) -> dict[str, str]:
    """Start (or reuse) the registry and push the six images; {name: reference}."""
    return publish_images(tag, kver)[0]


def publish_images(tag: str, kver: str, push=None) -> tuple[dict[str, str], dict[str, str]]:
    """publish() of the images `push` (default: all; those only imported need not be pushed),
    and the local images each reference stands for ({name: image})."""
    if shutil.which("docker") is None:
        raise ImageError("step registry: no docker CLI (make deps)")
    reg, busybox = registry.build_images()
    local = {"pause": build_pause(tag), "busybox": busybox,
             "passphrase": build_static("passphrase", PASSPHRASE_C, tag),
             "driver": driver_image(), "module": module_image(kver)}
    for name in ("driver", "module"):
        if exists(local[name]) is None:
            raise ImageError(f"step push {name}: {local[name]} is not built: make images")
    local["module-busybox"] = build_module_busybox(tag, local["module"], busybox)
    paths = {"pause": f"mock-accel/pause:{tag}", "busybox": f"library/busybox:{tag}",
             "passphrase": f"mock-accel/passphrase:{tag}",
             "driver": f"mock-accel/dra-driver:{tag}",
             "module": f"mock-accel/module:{tag}-{kver}",
             "module-busybox": f"mock-accel/module-busybox:{tag}-{kver}"}
    if push is None or push:
        registry.start(reg)
    for name in paths if push is None else push:
        registry.push(local[name], paths[name])
    return {name: f"{registry.ON_HOST}/{path}" for name, path in paths.items()}, local


def save_images(refs: dict[str, str], local: dict[str, str], names) -> Path:
    """One archive of the images `names`, each under its registry reference."""
    return save({refs[name]: local[name] for name in names})

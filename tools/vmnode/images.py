"""The node's images, in the local registry (tools/registry) under a tag of our own.

pause (tools/kind/pause.c, static, FROM scratch), busybox (tools/images/busybox.py), the
passphrase helper (passphrase.c, static, FROM scratch), the driver and the module image of
`make images` are pushed as `<path>:<tag>` so that a run never overwrites the images other runs
pull under their default names. The guest reaches the registry as 127.0.0.1:<port> (a
forwarded port), so the references are the same on both sides.

`save()` writes an image as a `docker save` archive under that same reference, for the node to
import over the 9p share (`VmNode(imports=...)`): a pull through slirp under TCG takes minutes
for 100 MB, mostly gunzip; an archive holds the layers uncompressed.
"""
from __future__ import annotations

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


def archive_name(ref: str, image_id: str) -> str:
    """The archive's file name: the reference's last path part and the image's id, so a
    rebuilt image gets a new archive and an unchanged one is saved once."""
    last = ref.rsplit("/", 1)[-1].replace(":", "-")
    return f"{last}-{image_id.split(':')[-1][:12]}.tar"


def save(local: str, ref: str, cache: Path = ARCHIVES) -> Path:
    """`docker save` of the local image `local` under the reference `ref` (the registry's, so
    the kubelet finds it as it would after a pull); cached by image id, readable by the guest."""
    info = exists(local)
    if info is None:
        raise ImageError(f"step save: {local} is not built: make images")
    path = cache / archive_name(ref, info["Id"])
    if path.exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    part = path.with_suffix(".part")
    run(f"save {ref}", ["docker", "tag", local, ref], quiet=True)
    try:
        run(f"save {ref}", ["docker", "save", "-o", str(part), ref], quiet=True)
    finally:
        subprocess.run(["docker", "rmi", ref], env=docker_env(), capture_output=True)
    part.chmod(0o644)
    part.rename(path)
    for old in cache.glob(f"{path.name.rsplit('-', 1)[0]}-*.tar"):  # older ids of this ref
        if old != path:
            old.unlink(missing_ok=True)
    return path


def publish(tag: str, kver: str) -> dict[str, str]:
    """Start (or reuse) the registry and push the five images; {name: reference}."""
    return publish_images(tag, kver)[0]


def publish_images(tag: str, kver: str) -> tuple[dict[str, str], dict[str, str]]:
    """publish(), and the local images the references were pushed from ({name: image})."""
    if shutil.which("docker") is None:
        raise ImageError("step registry: no docker CLI (make deps)")
    reg, busybox = registry.build_images()
    registry.start(reg)
    local = {"pause": build_pause(tag), "busybox": busybox,
             "passphrase": build_static("passphrase", PASSPHRASE_C, tag),
             "driver": driver_image(), "module": module_image(kver)}
    for name in ("driver", "module"):
        if exists(local[name]) is None:
            raise ImageError(f"step push {name}: {local[name]} is not built: make images")
    paths = {"pause": f"mock-accel/pause:{tag}", "busybox": f"library/busybox:{tag}",
             "passphrase": f"mock-accel/passphrase:{tag}",
             "driver": f"mock-accel/dra-driver:{tag}",
             "module": f"mock-accel/module:{tag}-{kver}"}
    for name, path in paths.items():
        registry.push(local[name], path)
    return {name: f"{registry.ON_HOST}/{path}" for name, path in paths.items()}, local


def save_images(refs: dict[str, str], local: dict[str, str], names) -> dict[str, Path]:
    """The archives of the images `names` under their registry references; {name: archive}."""
    return {name: save(local[name], refs[name]) for name in names}

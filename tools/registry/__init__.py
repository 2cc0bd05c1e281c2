"""A local image registry for kind nodes, and the images they pull from it (nothing is pulled here).

`up` builds two images with `docker build` (FROM scratch): the registry (distribution v3.1.2, the
static binary tools/gotools.py installs) and busybox (tools/images/busybox.py); it runs the
registry as container `mock-accel-registry` (127.0.0.1:5001 on this host, on kind's Docker
network when that exists) and pushes busybox as `library/busybox:latest` and the
driver image (`make images`) as `mock-accel/dra-driver:<version>`. `nodes` makes a kind cluster's
containerd resolve `docker.io` and `localhost` there over plain HTTP (a `hosts.toml` per registry
in `/etc/containerd/certs.d`, the `config_path` that tests/e2e/kind/kind-config.yaml sets), so
`image: busybox:latest` and the chart's `localhost/mock-accel/...` images work unchanged.
`down` removes the container.

    python -m tools.registry up|down|status|nodes CLUSTER
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
import urllib.request
from pathlib import Path

from mock_accel.wait import wait_until
from tools import gotools
from tools.docker import answers, docker
from tools.images import ImageError, driver_image
from tools.images.busybox import BUSYBOX, build_busybox
from tools.images.steps import exists, run, say

HERE = Path(__file__).parent
NAME = "mock-accel-registry"
NETWORK = "kind"  # kind's Docker network: the nodes reach the registry there by name
PORT = int(os.environ.get("MOCK_ACCEL_REGISTRY_PORT") or 5001)
ON_HOST = f"127.0.0.1:{PORT}"  # docker pushes here (127.0.0.0/8 is plain HTTP for dockerd)
IN_CLUSTER = f"{NAME}:5000"
MIRRORED = ("docker.io", "localhost")  # the registries the nodes resolve to ours
IMAGE = f"mock-accel/registry:{gotools.TOOLS['registry'].version}"


class RegistryError(ImageError):
    """The registry cannot be built, started or reached; the message names the step."""


def _build(step: str, containerfile: str, files: dict[str, Path], tag: str) -> str:
    """`docker build` of `containerfile` with only `files` in its context (no network)."""
    with tempfile.TemporaryDirectory(prefix="mock-accel-registry-") as ctx:
        for name, src in files.items():
            shutil.copy2(src, Path(ctx) / name)
        shutil.copy2(HERE / containerfile, Path(ctx) / "Containerfile")
        run(step, ["docker", "build", "--force-rm", "--network", "none", "-q", "-t", tag,
                   "-f", str(Path(ctx) / "Containerfile"), ctx],
            quiet=True)
    return tag


def build_images() -> tuple[str, str]:
    """The registry image and busybox (tools/images/busybox.py); Docker's layer cache makes a
    rebuild ~1 s."""
    try:
        binary = gotools.ensure("registry") / "registry"
    except gotools.BuildError as e:
        raise RegistryError(f"step registry binary: {e}") from None
    reg = _build("registry image", "registry.Containerfile",
                 {"registry": binary, "config.yml": HERE / "config.yml"}, IMAGE)
    return reg, build_busybox(BUSYBOX)


def _state() -> dict | None:
    """`docker inspect` of our registry container, or None."""
    r = docker("inspect", "--format", "{{json .}}", NAME, check=False)
    return None if r.returncode else json.loads(r.stdout)


def _port_free() -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a TIME_WAIT is no listener
        try:
            s.bind(("127.0.0.1", PORT))
        except OSError:
            return False
    return True


def _v2_answers() -> bool:
    try:
        with urllib.request.urlopen(f"http://{ON_HOST}/v2/", timeout=5) as r:
            return r.status == 200
    except OSError:
        return False


def connect_network() -> None:
    """Put the registry on kind's network (when it exists and the registry is not on it yet)."""
    st = _state()
    if st is None or docker("network", "inspect", NETWORK, check=False).returncode:
        return
    if NETWORK not in st["NetworkSettings"]["Networks"]:
        run("registry on kind's network", ["docker", "network", "connect", NETWORK, NAME],
            quiet=True)


def start(image: str) -> None:
    """Run the registry container (reused when it runs our image and answers)."""
    st = _state()
    if st and st["State"]["Running"] and st["Config"]["Image"] == image and _v2_answers():
        say(f"==> [registry] {NAME} already runs on {ON_HOST}")
        return
    if st:
        docker("rm", "-f", "-v", NAME, check=False)
    if not _port_free():
        raise RegistryError(f"step registry start: 127.0.0.1:{PORT} is in use by another "
                            "program: free it or set MOCK_ACCEL_REGISTRY_PORT")
    run("registry start", ["docker", "run", "-d", "--name", NAME, "--restart", "no",
                           "-p", f"{ON_HOST}:5000", image], quiet=True)
    try:
        wait_until(_v2_answers, timeout=30, interval=0.5, what=f"the registry on {ON_HOST}")
    except TimeoutError:
        logs = docker("logs", "--tail", "5", NAME, check=False)
        raise RegistryError(f"step registry start: no answer on http://{ON_HOST}/v2/ in 30 s: "
                            f"{(logs.stdout + logs.stderr).strip()[-500:]}") from None


def push(image: str, path: str) -> str:
    """Push local `image` to the registry as `path` (e.g. library/busybox:latest)."""
    target = f"{ON_HOST}/{path}"
    run(f"push {path}", ["docker", "tag", image, target], quiet=True)
    run(f"push {path}", ["docker", "push", "-q", target], quiet=True)
    docker("rmi", target, check=False)  # the tag only; the image stays under its own name
    return path


def driver_path() -> str:
    """Where the driver image lands: the chart's default name without `localhost/`."""
    return driver_image().removeprefix("localhost/")


def up(driver: bool = True) -> dict[str, float]:
    """Build the images, start the registry, push busybox (and the driver image if built)."""
    if not answers():
        raise RegistryError("step registry: no dockerd of ours answers: make dockerd-up")
    times, t0 = {}, time.monotonic()
    registry, busybox = build_images()
    times["build_seconds"] = round(time.monotonic() - t0, 1)
    start(registry)
    connect_network()
    times["start_seconds"] = round(time.monotonic() - t0 - times["build_seconds"], 1)
    t1 = time.monotonic()
    push(busybox, "library/busybox:latest")
    if driver:
        if exists(driver_image()) is None:
            raise RegistryError(f"step push driver: {driver_image()} is not built: make images")
        push(driver_image(), driver_path())
    times["push_seconds"] = round(time.monotonic() - t1, 1)
    say(f"==> [registry] up on {ON_HOST} ({IN_CLUSTER} on kind's network): {times}")
    return times


def down() -> None:
    """Remove the registry container and its volume (nothing else)."""
    if _state() is not None:
        docker("rm", "-f", "-v", NAME, check=False)
        say(f"==> [registry] {NAME} removed")


HOSTS_TOML = f'[host."http://{IN_CLUSTER}"]\n  capabilities = ["pull", "resolve"]\n'


def configure_nodes(nodes: list[str]) -> None:
    """Make each kind node's containerd resolve `MIRRORED` to our registry over plain HTTP.

    containerd reads `certs.d/<registry>/hosts.toml` at every pull (`config_path`, set by the
    kind config), so no restart is needed; kind's own node image reads the same files."""
    connect_network()
    for node in nodes:
        for reg in MIRRORED:
            _write(node, f"/etc/containerd/certs.d/{reg}", HOSTS_TOML)


def _write(node: str, d: str, text: str) -> None:
    r = docker("exec", "-i", node, "sh", "-c", f"mkdir -p {d} && cat > {d}/hosts.toml",
               input=text, check=False)
    if r.returncode:
        raise RegistryError(f"step hosts.toml on {node}: {r.stderr.strip()[-300:]}")

"""Our runc wrapper as dockerd's runtime, registered live by a reload (tools/docker/runtime.py).

Root here lacks CAP_SYS_RESOURCE, so a privileged container (every kind node) fails under plain
runc; registered and made the default by `python -m tools.docker runtime --default` on a running
daemon (SIGHUP, no restart), the same `docker run --privileged` starts, with every capability
but that one. Runs on a daemon of its own in temporary roots, beside any other.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tools.docker import runc_wrapper
from tools.images.busybox import build_busybox
from tools.locate import REPO

pytestmark = pytest.mark.skipif(shutil.which("dockerd") is None or os.geteuid() != 0,
                                reason="dockerd (root) absent: `make deps` installs docker.io")
CAP_BIT = 24  # CAP_SYS_RESOURCE


def test_wrapper_drops_only_sys_resource(tmp_path):
    caps = ["CAP_CHOWN", "CAP_SYS_RESOURCE", "CAP_SYS_ADMIN"]
    spec = {"process": {"capabilities": {k: list(caps) for k in ("bounding", "effective")}}}
    (tmp_path / "config.json").write_text(json.dumps(spec))
    # a global option's value is not the subcommand
    assert runc_wrapper.subcommand(["--root", "/x", "--log", "l.json", "create", "--bundle",
                                    "b", "id"]) == ("create", 4)
    assert runc_wrapper.bundle(["--bundle", "b", "id"]) == "b"
    assert runc_wrapper.bundle(["--bundle=c", "id"]) == "c"
    assert runc_wrapper.bundle(["id"]) == "."
    assert runc_wrapper.drop_cap(str(tmp_path / "config.json"))
    after = json.loads((tmp_path / "config.json").read_text())["process"]["capabilities"]
    assert after == {k: ["CAP_CHOWN", "CAP_SYS_ADMIN"] for k in ("bounding", "effective")}
    assert not runc_wrapper.drop_cap(str(tmp_path / "config.json"))  # nothing left to drop
    (tmp_path / "process.json").write_text(json.dumps({"capabilities": {"bounding": caps}}))
    assert runc_wrapper.option(["--detach", "--process", "p.json", "id"],
                               ("--process", "-p")) == "p.json"
    assert runc_wrapper.drop_cap(str(tmp_path / "process.json"), process_only=True)
    assert json.loads((tmp_path / "process.json").read_text()) == {
        "capabilities": {"bounding": ["CAP_CHOWN", "CAP_SYS_ADMIN"]}}


def _docker(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], env={**os.environ,
                          "DOCKER_HOST": f"unix://{root / 'run' / 'docker.sock'}"},
                          capture_output=True, text=True, timeout=120)


def _busybox_image(root: Path) -> str:
    """The project's busybox (tools/images/busybox.py), built on this test's engine."""
    return build_busybox("ma-test/busybox:1", host=f"unix://{root / 'run' / 'docker.sock'}")


def test_privileged_container_starts_once_the_runtime_is_the_default(root, tool_in):
    assert tool_in(root, "up").returncode == 0
    assert json.loads((root / "run" / "daemon.json").read_text()) == {}  # started with it
    pid = int((root / "run" / "dockerd.pid").read_text())
    image = _busybox_image(root)
    run = ("run", "--rm", "--network", "none", "--privileged", image,
           "sh", "-c", "grep CapBnd /proc/self/status")
    plain = _docker(root, *run)
    if plain.returncode == 0:
        pytest.skip("this host's root has CAP_SYS_RESOURCE: plain runc runs privileged")
    assert "unable to apply caps" in plain.stderr
    r = subprocess.run([sys.executable, "-m", "tools.docker", "runtime", "--default"],
                       env={**os.environ, "PYTHONPATH": str(REPO),
                            "MOCK_ACCEL_DOCKER_RUN": str(root / "run"),
                            "MOCK_ACCEL_DOCKER_DATA": str(root / "data")},
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == (f"dockerd runs mock-accel-runc by default "
                                f"({root / 'run' / 'daemon.json'})")
    assert int((root / "run" / "dockerd.pid").read_text()) == pid  # reloaded, not restarted
    wrapped = _docker(root, *run)
    assert wrapped.returncode == 0, wrapped.stderr
    bnd = int(wrapped.stdout.split()[1], 16)
    assert not bnd & (1 << CAP_BIT) and bnd & (1 << 21)  # no SYS_RESOURCE; SYS_ADMIN kept
    # kind runs everything in its nodes by `docker exec`, which asks for every cap again
    assert _docker(root, "run", "-d", "--name", "priv", "--network", "none", "--privileged",
                   image, "sh", "-c", "while :; do sleep 1; done").returncode == 0
    inside = _docker(root, "exec", "--privileged", "priv", "grep", "CapBnd", "/proc/self/status")
    assert inside.returncode == 0, inside.stderr
    assert not int(inside.stdout.split()[1], 16) & (1 << CAP_BIT)
    _docker(root, "rm", "-f", "priv")

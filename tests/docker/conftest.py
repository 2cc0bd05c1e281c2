"""One throwaway Docker engine per test, in temporary roots, beside the engine the builds use."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tools.locate import REPO


def bridge_name(root: Path) -> str:
    return f"madk{root.name[-8:]}".replace("-", "")[:15]


def tool(root: Path, *args: str, path: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "MOCK_ACCEL_DOCKER_RUN": str(root / "run"),
           "MOCK_ACCEL_DOCKER_DATA": str(root / "data"),
           # beside the engine the builds use: a bridge of its own and no iptables rules.
           # (`--bridge=none` would make dockerd delete the host's docker0, the other engine's)
           "MOCK_ACCEL_DOCKERD_ARGS":
               f"--bridge={bridge_name(root)} --iptables=false --ip-masq=false"}
    if path is not None:
        env["PATH"] = path
    return subprocess.run([sys.executable, "-m", "tools.docker", *args], env=env, text=True,
                          capture_output=True, timeout=180)


@pytest.fixture
def root():
    """Temporary roots for a daemon of the test's own, with a bridge of its own."""
    d = Path(tempfile.mkdtemp(prefix="ma-dockerd-", dir="/tmp"))  # short: unix socket paths
    subprocess.run(["ip", "link", "add", bridge_name(d), "type", "bridge"], check=True)
    yield d
    tool(d, "down")
    subprocess.run(["ip", "link", "del", bridge_name(d)], check=False)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def tool_in():
    """`tool_in(root, *args)`: run `python -m tools.docker` against the daemon in `root`."""
    return tool

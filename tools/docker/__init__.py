"""A Docker engine of our own for the image builds and the kind e2e: started and stopped by pid.

Nothing on the CI machines starts a Docker engine, and the one the project needs must not touch a
user's: `dockerd` runs with its own data root (a cache: images survive between runs), exec root,
pidfile, socket and log, all named here. `up` is idempotent (a daemon that answers is reused),
`down` stops exactly the daemon whose pid is in our pidfile.

    python -m tools.docker up|down|status|env|runtime [--default]
    python -m tools.docker session -- CMD...   # CMD with dockerd up; stopped after if it started it
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

RUN_DIR = Path(os.environ.get("MOCK_ACCEL_DOCKER_RUN") or "/run/mock-accel-docker")
DATA_ROOT = Path(os.environ.get("MOCK_ACCEL_DOCKER_DATA")
                 or Path.home() / ".cache" / "mock-accel" / "docker")
SOCKET = RUN_DIR / "docker.sock"
PIDFILE = RUN_DIR / "dockerd.pid"
LOG = RUN_DIR / "dockerd.log"
CONFIG = RUN_DIR / "daemon.json"  # our daemons start with it; `runtime` edits it and reloads
DEFAULT_CONFIG = Path("/etc/docker/daemon.json")  # what a dockerd without --config-file reads
RUNTIME = "mock-accel-runc"  # runc without CAP_SYS_RESOURCE (tools/docker/runc_wrapper.py)
HOST = f"unix://{SOCKET}"
# how long a starting dockerd may take to answer before it is stopped and its log quoted
START_TIMEOUT = float(os.environ.get("MOCK_ACCEL_DOCKERD_START_TIMEOUT") or 90)
STOP_TIMEOUT = 30.0


class DockerError(RuntimeError):
    """The engine cannot be started, reached or stopped; the message says why in one line."""


def env() -> dict[str, str]:
    """The environment that points the docker CLI at our engine."""
    return {**os.environ, "DOCKER_HOST": HOST}


def docker(*args: str, check: bool = True, capture: bool = True,
           **kw) -> subprocess.CompletedProcess:
    """Run the docker CLI against our engine."""
    return subprocess.run(["docker", *args], env=env(), check=check, text=True,
                          capture_output=capture, **kw)


def pid() -> int | None:
    """The pid in our pidfile if that process is alive, else None."""
    try:
        n = int(PIDFILE.read_text().strip())
        os.kill(n, 0)
    except (OSError, ValueError):
        return None
    return n


def answers(timeout: float = 20) -> bool:
    """Whether an engine answers on our socket (within `timeout` s: a hung one does not)."""
    if not SOCKET.exists() or shutil.which("docker") is None:
        return False
    try:
        r = docker("version", "--format", "{{.Server.Version}}", check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return r.returncode == 0

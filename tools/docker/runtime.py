"""Register our runc wrapper as a dockerd runtime (and the default one) live, by a reload.

dockerd rereads `runtimes` and `default-runtime` from its config file on SIGHUP without stopping
a container. Our daemons start with `--config-file` in the run directory; a dockerd started
without one reads /etc/docker/daemon.json, so that is the file edited for it. The wrapper is
copied into the run directory first: the daemon keeps calling it after this checkout is gone.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

from mock_accel.wait import WaitTimeout, wait_until

from . import DEFAULT_CONFIG, RUN_DIR, RUNTIME, DockerError, docker, pid

WRAPPER = Path(__file__).with_name("runc_wrapper.py")


def config_file(n: int) -> Path:
    """The config file dockerd pid `n` reads: its --config-file, else the default."""
    try:
        argv = Path(f"/proc/{n}/cmdline").read_bytes().decode().split("\0")
    except OSError as e:
        raise DockerError(f"cannot read dockerd pid {n}'s command line: {e}") from None
    for i, a in enumerate(argv):
        if a == "--config-file" and i + 1 < len(argv):
            return Path(argv[i + 1])
        if a.startswith("--config-file="):
            return Path(a.split("=", 1)[1])
    return DEFAULT_CONFIG


def _read(path: Path) -> dict:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    try:
        data = json.loads(text or "{}")
    except ValueError:
        raise DockerError(f"{path} is not JSON: fix or remove it") from None
    if not isinstance(data, dict):
        raise DockerError(f"{path} is not a JSON object")
    return data


def _info(fmt: str) -> str:
    return docker("info", "--format", fmt, check=False, timeout=30).stdout.strip()


def register(default: bool) -> Path:
    """Add our runtime to the running dockerd (the default one if `default`); its config file."""
    n = pid()
    if n is None:
        raise DockerError("no dockerd of ours runs: `python -m tools.docker up` first")
    path = config_file(n)
    wrapper = RUN_DIR / "runc-wrapper"
    tmp = wrapper.with_suffix(".tmp")
    shutil.copyfile(WRAPPER, tmp)
    tmp.chmod(0o755)
    tmp.replace(wrapper)
    config = _read(path)
    config.setdefault("runtimes", {})[RUNTIME] = {"path": str(wrapper)}
    if default:
        config["default-runtime"] = RUNTIME
    elif config.get("default-runtime") == RUNTIME:
        del config["default-runtime"]
    path.parent.mkdir(parents=True, exist_ok=True)
    new = path.with_name(path.name + ".tmp")
    new.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    new.replace(path)
    os.kill(n, signal.SIGHUP)
    want = RUNTIME if default else "runc"
    try:
        wait_until(lambda: RUNTIME in _info("{{json .Runtimes}}")
                   and _info("{{.DefaultRuntime}}") == want, timeout=30,
                   what=f"dockerd to load runtime {RUNTIME} from {path}", interval=0.5)
    except WaitTimeout as e:
        raise DockerError(str(e)) from None
    return path

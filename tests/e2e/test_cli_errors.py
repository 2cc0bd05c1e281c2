"""Issue 15 item 5: bad input to `mock-accel` is one line naming the bad value, exit code 2 for
usage errors and 1 for runtime errors, never a traceback; `--version`; `sim --help` names
itself; the default verbosity shows no third-party debug lines. Each case runs the command as
a process (no control plane: the API server is unreachable where one is needed)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from mock_accel import __version__
from mock_accel.sim import SimConfig, SimNode
from mock_accel.wait import wait_until
from tests.harness.kubeconfigs import UNREACHABLE


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("NODE_NAME", "KUBECONFIG")}
    return subprocess.run([sys.executable, "-m", "mock_accel.cli", *args], capture_output=True,
                          text=True, timeout=60, env=environment | (env or {}))


@pytest.fixture
def files(tmp_path):
    (tmp_path / "broken.yaml").write_text("apiVersion: v1\nclusters: [\n")
    (tmp_path / "string.yaml").write_text('"just a string"\n')
    (tmp_path / "unreachable.yaml").write_text(UNREACHABLE)
    SimNode.create(tmp_path / "node", SimConfig(num_devices=1, total_vfs=0))
    return tmp_path


@pytest.mark.parametrize("args, code, names", [
    (["controller", "-v", "42"], 2, "'42'"),
    (["controller", "--rescan-interval", "5x", "--node-name", "n"], 2, "'5x'"),
    (["controller", "--max-backoff=-1s", "--node-name", "n"], 2, "'-1s'"),
    (["devices", "--sysfs-root", "/nonexistent"], 2, "'/nonexistent'"),
    (["controller", "--sysfs-root", "/nonexistent", "--node-name", "n"], 2, "'/nonexistent'"),
    (["node-agent", "--sysfs-root", "/nonexistent", "--node-name", "n"], 2, "'/nonexistent'"),
    (["node-agent", "--sysfs-root", "{tmp}/node"], 2, "NODE_NAME"),
    (["controller", "--node-name", "n", "--sysfs-root", "{tmp}/node",
      "--kubeconfig", "{tmp}/missing.yaml"], 1, "missing.yaml"),
    (["controller", "--node-name", "n", "--sysfs-root", "{tmp}/node",
      "--kubeconfig", "{tmp}/broken.yaml"], 1, "broken.yaml is not valid YAML (line 3)"),
    (["controller", "--node-name", "n", "--sysfs-root", "{tmp}/node",
      "--kubeconfig", "{tmp}/string.yaml"], 1, "string.yaml is not a mapping"),
    (["demo", "--kubeconfig", "{tmp}/string.yaml", "--nodes", "n"], 2, "string.yaml"),
    (["demo", "--kubeconfig", "{tmp}/unreachable.yaml", "--nodes", "n", "--timeout", "5"], 1,
     "cannot reach the API server"),
], ids=["verbosity", "duration", "negative-backoff", "devices-root", "controller-root",
        "agent-root", "no-node-name", "kubeconfig-missing", "kubeconfig-broken",
        "kubeconfig-string", "demo-kubeconfig", "demo-unreachable"])
def test_bad_input_is_one_line(files, args, code, names):
    done = run(*[a.replace("{tmp}", str(files)) for a in args])
    said = [line for line in done.stderr.splitlines() if not line.startswith(("usage:", " "))]
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr and '"error":' not in done.stderr, done.stderr
    assert any(names in line for line in said), done.stderr
    assert len([line for line in said if "error" in line]) == 1, done.stderr


def test_version_and_sim_help():
    assert run("--version").stdout == f"mock-accel {__version__}\n"
    assert run("sim", "--help").stdout.startswith("usage: mock-accel sim ")


def test_default_verbosity_hides_third_party_debug_lines(files):
    log = files / "controller.log"
    with open(log, "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "mock_accel.cli", "controller", "--node-name", "n",
             "--sysfs-root", str(files / "node"), "--kubeconfig", str(files / "unreachable.yaml")],
            stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            wait_until(lambda: "reconcile failed" in log.read_text(), 30, "a failed reconcile")
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(20)
    assert "urllib3" not in log.read_text()

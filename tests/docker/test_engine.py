"""Our Docker engine (tools/docker): started, stopped by pid, in its own roots; one-line errors."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docker.conftest import bridge_name
from tools.locate import REPO

pytestmark = pytest.mark.skipif(shutil.which("dockerd") is None,
                                reason="dockerd absent: `make deps` installs Debian's docker.io")


def test_the_engine_of_the_builds_keeps_its_bridge(root, tool_in):
    """A second engine (these tests') must not take the host's docker0 away from the first."""
    docker0 = Path("/sys/class/net/docker0")
    made = not docker0.exists()
    if made:  # no engine owns one now: stand in for it for the length of this test
        subprocess.run(["ip", "link", "add", "docker0", "type", "bridge"], check=True)
    try:
        assert tool_in(root, "up").returncode == 0
        assert tool_in(root, "down").returncode == 0
        assert docker0.exists()
    finally:
        if made:
            subprocess.run(["ip", "link", "del", "docker0"], check=False)


def test_up_is_idempotent_and_down_stops_exactly_our_pid(root, tool_in):
    first = tool_in(root, "up")
    assert first.returncode == 0, first.stderr
    pid = int((root / "run" / "dockerd.pid").read_text())
    again = tool_in(root, "up")
    assert again.returncode == 0 and f"pid {pid} " in again.stdout  # reused, not a second daemon
    assert tool_in(root, "status").returncode == 0
    assert (root / "data" / "overlay2").is_dir() or (root / "data" / "image").is_dir()
    assert tool_in(root, "down").stdout.strip() == "dockerd stopped"
    stat = Path(f"/proc/{pid}/stat")
    assert not stat.exists() or stat.read_text().split()[2] == "Z"
    gone = tool_in(root, "status")
    assert gone.returncode == 1 and "no dockerd of ours" in gone.stdout
    assert tool_in(root, "down").stdout.strip() == "no dockerd of ours was running"


def test_missing_engine_is_one_line_and_exit_1(root, tool_in, tmp_path):
    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "docker").symlink_to(shutil.which("docker"))  # the CLI without the daemon
    r = tool_in(root, "up", path=str(bare))
    assert r.returncode == 1
    assert r.stderr.strip() == ("tools.docker: dockerd not found: "
                                "install Debian's docker.io (make deps does)")


def _up(root: Path, extra: str, **env: str) -> subprocess.CompletedProcess:
    """`python -m tools.docker up --extra=...` on the test's roots, `env` on top."""
    return subprocess.run([sys.executable, "-m", "tools.docker", "up", f"--extra={extra}"],
                          env={**os.environ, "PYTHONPATH": str(REPO),
                               "MOCK_ACCEL_DOCKER_RUN": str(root / "run"),
                               "MOCK_ACCEL_DOCKER_DATA": str(root / "data"), **env},
                          text=True, capture_output=True, timeout=180)


def _one_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    return r.stderr.strip()


def test_a_daemon_that_cannot_start_says_why(root):
    line = _one_line(_up(root, "--this-flag-does-not-exist"))
    assert line.startswith("tools.docker: dockerd exited with status")
    assert f"{root / 'run' / 'dockerd.log'} ends: " in line  # the log's path
    assert "this-flag-does-not-exist" in line  # and its tail names the cause


def test_a_data_root_that_cannot_be_made_is_one_line(root, tmp_path):
    (tmp_path / "data").write_text("a file, not a directory")
    line = _one_line(_up(root, "", MOCK_ACCEL_DOCKER_DATA=str(tmp_path / "data")))
    assert line == (f"tools.docker: cannot make {tmp_path / 'data'} a directory for dockerd: "
                    "File exists")


def test_a_daemon_that_never_answers_is_stopped_and_its_log_quoted(root, tool_in):
    """dockerd waiting for a containerd that is not there never answers (and ignores SIGTERM):
    `up` gives up after its start timeout, kills it and quotes the log's last error."""
    r = _up(root, f"--bridge={bridge_name(root)} --iptables=false --ip-masq=false "
            f"--containerd={root / 'nothing.sock'}", MOCK_ACCEL_DOCKERD_START_TIMEOUT="10")
    line = _one_line(r)
    pid = int(re.search(r"dockerd pid (\d+) did not answer", line)[1])
    assert f"in 10 s and was stopped; {root / 'run' / 'dockerd.log'} ends: " in line
    assert str(root / "nothing.sock") in line  # the log's last error names the socket
    stat = Path(f"/proc/{pid}/stat")
    assert not stat.exists() or stat.read_text().split()[2] == "Z"
    assert tool_in(root, "down").stdout.strip() == "no dockerd of ours was running"


def test_a_session_stops_only_the_daemon_it_started(root, tool_in):
    """`session -- CMD`: CMD runs against a daemon that answers; the daemon goes afterwards only
    if the session started it (make test's kind tier), and CMD's status is the session's."""
    probe = [sys.executable, "-c", "import sys; from tools.docker import answers; "
             "sys.exit(0 if answers() else 7)"]
    started = tool_in(root, "session", "--", *probe)
    assert started.returncode == 0, started.stdout + started.stderr
    assert "started for" in started.stdout and "stopped: yes" in started.stdout
    assert tool_in(root, "status").returncode == 1  # it started it: it stopped it
    assert tool_in(root, "up").returncode == 0
    pid = int((root / "run" / "dockerd.pid").read_text())
    failing = tool_in(root, "session", "--", sys.executable, "-c", "raise SystemExit(3)")
    assert failing.returncode == 3  # the command's status
    assert "already up for" in failing.stdout and "stopped" not in failing.stdout
    assert tool_in(root, "status").returncode == 0
    assert int((root / "run" / "dockerd.pid").read_text()) == pid  # someone else's: left up


def test_a_session_without_a_command_is_one_line_and_exit_2(root, tool_in):
    r = tool_in(root, "session")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    assert "session needs a command" in r.stderr
    assert tool_in(root, "status").returncode == 1  # nothing was started for nothing

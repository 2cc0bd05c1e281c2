"""A build killed in the middle (SIGKILL, nothing cleaned up) is redone, never reused.

Two caches, each killed for real while it works: a node image step (tools/kind/nodeimage.py:
no stamp, so the step runs again) and a `go install` of tools/gotools.py (its binaries stay in
a `.partial` directory that `find` ignores and the next build empties; a Go build cache of its
own, so the build is still compiling when it is killed).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from mock_accel import kubebins
from mock_accel.wait import wait_until
from tools import gotools
from tools.kind import nodeimage
from tools.locate import REPO


def _start(script: str, **env: str) -> subprocess.Popen:
    """`script` in a Python of its own session (so a kill reaches its children too)."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)],
                            env={**os.environ, "PYTHONPATH": str(REPO), **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True, text=True)


def _kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def test_a_node_image_step_killed_mid_way_leaves_no_stamp_and_runs_again(tmp_path):
    half = tmp_path / "images" / "pause_3.tar"
    proc = _start(f"""
        import time
        from pathlib import Path
        from tools.kind import nodeimage
        def step(work):
            (work / "images").mkdir()
            (work / "images" / "pause_3.tar").write_text("half an archive")
            time.sleep(600)
        nodeimage._run_step(4, "images", Path({str(tmp_path)!r}), step)
        """)
    try:
        wait_until(half.is_file, timeout=60, interval=0.2, what="the step to write")
    finally:
        _kill(proc)
    assert not (tmp_path / "stamps" / "images.json").exists()
    calls = []

    def step(work):
        calls.append(work)
        half.write_text("a whole archive")
        return {"images": ["registry.k8s.io/pause:3"]}

    assert nodeimage._run_step(4, "images", tmp_path, step) == {
        "images": ["registry.k8s.io/pause:3"]}
    assert calls == [tmp_path] and half.read_text() == "a whole archive"
    assert json.loads((tmp_path / "stamps" / "images.json").read_text())["images"]


def _no_go() -> bool:
    try:
        kubebins.go_binary()
    except kubebins.BuildError:
        return True
    return False


@pytest.mark.skipif(_no_go(), reason="no Go toolchain (make deps)")
def test_a_killed_go_install_is_never_found_and_built_again(tmp_path, monkeypatch):
    env = {"MOCK_ACCEL_GOTOOLS_CACHE": str(tmp_path), "GOCACHE": str(tmp_path / "gocache")}
    partial = tmp_path / "kind" / (gotools.TOOLS["kind"].key() + ".partial")
    run = "from tools import gotools; gotools.ensure('kind')"
    log = tmp_path / "logs" / "kind.log"
    proc = _start(run, **env)
    try:  # go runs: its log has more than the command line
        wait_until(lambda: proc.poll() is not None or log.is_file() and len(
            log.read_text().splitlines()) > 1, timeout=300, interval=0.5, what="go to work")
        assert proc.poll() is None, proc.stderr.read()
    finally:
        _kill(proc)
    planted = partial / "kind"  # what a go install killed while linking leaves
    planted.write_text("#!/bin/sh\necho half a binary\n")
    planted.chmod(0o755)
    monkeypatch.setattr(gotools, "CACHE", tmp_path)
    assert gotools.find("kind") is None and not gotools.tool_dir("kind").exists()
    proc = _start(run, **env)
    try:  # the next build starts from an empty .partial
        wait_until(lambda: not planted.exists() and partial.is_dir(), timeout=120,
                   interval=0.2, what="the next build to empty .partial")
    finally:
        _kill(proc)
    assert gotools.find("kind") is None

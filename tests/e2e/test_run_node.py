"""`python -m tests.e2e.run_node` (the e2e notebooks on the guest node): its refusals, at once
and in one line, before anything is built or booted. Quick."""
from __future__ import annotations

import subprocess
import sys

from tools.locate import REPO


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tests.e2e.run_node", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)


def test_an_unknown_kmm_mode_is_bad_usage(tmp_path) -> None:
    r = _run("--out", str(tmp_path / "out"), "--kmm", "build")
    assert r.returncode == 2 and "invalid choice: 'build'" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_kmm_prebuilt_without_a_kmm_source_says_kmm_not_run(tmp_path) -> None:
    # no KMM_SRC, and the pinned release cannot be cloned (github.com rewritten to nowhere, as
    # on the CI machines, where it is unreachable)
    (tmp_path / "gitconfig").write_text('[url "file:///nonexistent/"]\n'
                                        '\tinsteadOf = https://github.com/\n')
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KMM_SRC": "",
           "GIT_CONFIG_GLOBAL": str(tmp_path / "gitconfig"),
           "MOCK_ACCEL_GOSRC_CACHE": str(tmp_path / "cache")}
    r = _run("--out", str(tmp_path / "out"), "--kmm", "prebuilt", env=env)
    assert r.returncode == 3, r.stderr
    (line,) = [x for x in r.stderr.splitlines() if x.strip()]
    assert line.startswith("e2e-node: KMM not run: ") and "KMM_SRC" in line, r.stderr
    assert '"error": "KMM not run' in (tmp_path / "out" / "measure.json").read_text()

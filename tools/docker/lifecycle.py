"""Start, stop and describe our Docker engine (see tools/docker/__init__.py)."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess

from mock_accel.wait import WaitTimeout, wait_until

from . import (
    CONFIG,
    DATA_ROOT,
    HOST,
    LOG,
    PIDFILE,
    RUN_DIR,
    SOCKET,
    START_TIMEOUT,
    STOP_TIMEOUT,
    DockerError,
    answers,
    pid,
)


def _last_words() -> str:
    """The log's last error line (else its last line): where dockerd says why it stopped."""
    try:
        lines = [x.strip() for x in LOG.read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        lines = []
    errors = [x for x in lines if re.search(r"level=(fatal|error)|error|unknown|failed", x, re.I)]
    return (errors or lines or ["(empty log)"])[-1]


def up(extra: str = "") -> int:
    """Start dockerd (or reuse ours if it answers); return its pid."""
    if answers() and pid():
        return pid()
    for tool in ("dockerd", "docker"):
        if shutil.which(tool) is None:
            raise DockerError(f"{tool} not found: install Debian's docker.io (make deps does)")
    if (stale := pid()) is not None:
        raise DockerError(f"dockerd pid {stale} holds {PIDFILE} but does not answer on {SOCKET}: "
                          f"run `python -m tools.docker down` first")
    for d in (RUN_DIR, DATA_ROOT):
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DockerError(f"cannot make {d} a directory for dockerd: {e.strerror}") from None
    for f in (PIDFILE, SOCKET):
        f.unlink(missing_ok=True)
    if not CONFIG.exists():  # `runtime` edits it; dockerd rereads it on SIGHUP
        CONFIG.write_text("{}\n")
    args = ["dockerd", "--data-root", str(DATA_ROOT), "--exec-root", str(RUN_DIR / "exec"),
            "--pidfile", str(PIDFILE), "--config-file", str(CONFIG), "-H", HOST,
            *shlex.split(extra)]
    with open(LOG, "ab") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until(lambda: proc.poll() is not None or answers(timeout=5),
                   timeout=START_TIMEOUT, what=f"dockerd to answer on {SOCKET}", interval=0.5)
    except WaitTimeout:
        _stop(proc)  # a hung dockerd ignores SIGTERM: never leave it running
        raise DockerError(f"dockerd pid {proc.pid} did not answer on {SOCKET} in "
                          f"{START_TIMEOUT:g} s and was stopped; {LOG} ends: "
                          f"{_last_words()}") from None
    if proc.poll() is not None:
        raise DockerError(f"dockerd exited with status {proc.returncode}; {LOG} ends: "
                          f"{_last_words()}")
    return proc.pid


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 5 s; our pidfile and socket go with it."""
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)
    PIDFILE.unlink(missing_ok=True)
    SOCKET.unlink(missing_ok=True)


def down() -> bool:
    """Stop the dockerd of our pidfile (SIGTERM, then SIGKILL); False if none ran."""
    n = pid()
    if n is None:
        PIDFILE.unlink(missing_ok=True)
        return False
    os.kill(n, signal.SIGTERM)
    try:
        wait_until(lambda: pid() is None or not _alive(n), timeout=STOP_TIMEOUT,
                   what=f"dockerd pid {n} to exit", interval=0.2)
    except WaitTimeout:
        os.kill(n, signal.SIGKILL)
    PIDFILE.unlink(missing_ok=True)
    SOCKET.unlink(missing_ok=True)
    return True


def _alive(n: int) -> bool:
    try:
        os.kill(n, 0)
    except OSError:
        return False
    try:  # a zombie of ours counts as gone
        return subprocess.run(["ps", "-o", "stat=", "-p", str(n)], capture_output=True,
                              text=True).stdout.strip()[:1] not in ("Z", "")
    except OSError:
        return True


def _terminated(signum, frame):
    raise SystemExit(128 + signum)


def session(cmd: list[str]) -> int:
    """Run `cmd` with our dockerd up; stop it afterwards (failure and SIGTERM included) only if
    this call started it: a daemon someone else runs is left as it was. Returns cmd's status."""
    started = not (answers() and pid())
    n = up()
    print(f"==> dockerd pid {n} {'started for' if started else 'already up for'}: "
          f"{' '.join(cmd)}", flush=True)
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        return subprocess.run(cmd).returncode
    except KeyboardInterrupt:
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        if started:
            print(f"==> dockerd pid {n} stopped: {'yes' if down() else 'it was gone'}",
                  flush=True)

"""One build step: announced, timed, its output streamed, a failure named in one line."""
from __future__ import annotations

import re
import subprocess
import time

from tools.docker import env as docker_env

from . import ImageError


def say(line: str) -> None:
    print(line, flush=True)


def run(step: str, cmd: list[str], *, quiet: bool = False, host: str | None = None,
        **kw) -> str:
    """Run `cmd` as the step `step` (docker against our engine, or the one at `host`): print its
    lines (unless quiet), return its output; raise ImageError naming the step and the last line
    it printed when it fails."""
    t0 = time.monotonic()
    say(f"==> [{step}] {' '.join(cmd[:3])} …")
    lines: list[str] = []
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={**docker_env(), "DOCKER_BUILDKIT": "0",
                                     **({"DOCKER_HOST": host} if host else {})}, **kw)
    except OSError as e:
        raise ImageError(f"step {step}: cannot run {cmd[0]}: {e.strerror}") from None
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if not quiet:
            print(f"    {line}", end="", flush=True)
    proc.wait()
    if proc.returncode != 0:
        # The last line that says something: docker's "The command ... returned a non-zero
        # code" and "Removing intermediate container" only follow the line that says why.
        plain = (re.sub(r"\x1b\[[0-9;]*m", "", x).strip() for x in reversed(lines))
        last = next((x for x in plain if x and not re.search(
            r"returned a non-zero code|^Removing intermediate container", x)), "(no output)")
        raise ImageError(f"step {step} failed (exit {proc.returncode}): {last}")
    say(f"    [{step}] done in {time.monotonic() - t0:.0f} s")
    return "\n".join(lines)


def exists(image: str) -> dict | None:
    """The image's inspect data if our engine has it."""
    import json
    proc = subprocess.run(["docker", "image", "inspect", image], env=docker_env(),
                          capture_output=True, text=True)
    return json.loads(proc.stdout)[0] if proc.returncode == 0 else None

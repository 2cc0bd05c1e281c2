"""`python -m tools.docker up|down|status|env|runtime|session`: our Docker engine, one line
per answer."""
from __future__ import annotations

import argparse
import os
import sys

from . import DATA_ROOT, HOST, LOG, RUNTIME, DockerError, answers, pid
from .lifecycle import down, session, up
from .runtime import register


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.docker", description=__doc__)
    sub = ap.add_subparsers(dest="verb", required=True)
    p = sub.add_parser("up", help="start dockerd (reuse ours if it answers)")
    p.add_argument("--extra", default=os.environ.get("MOCK_ACCEL_DOCKERD_ARGS", ""),
                   help="more dockerd arguments (default: $MOCK_ACCEL_DOCKERD_ARGS)")
    sub.add_parser("down", help="stop the dockerd of our pidfile")
    sub.add_parser("status", help="exit 0 if ours answers, else 1")
    sub.add_parser("env", help="print the DOCKER_HOST line to eval")
    p = sub.add_parser("runtime", help=f"register {RUNTIME} (runc without CAP_SYS_RESOURCE) "
                       "live, by a reload")
    p.add_argument("--default", action="store_true", help="and make it the default runtime")
    p = sub.add_parser("session", help="run a command with dockerd up; stop dockerd afterwards "
                       "if this started it")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- the command and its arguments")
    a = ap.parse_args(argv)
    try:
        if a.verb == "up":
            print(f"dockerd pid {up(a.extra)} answers on {HOST} (data {DATA_ROOT}, log {LOG})")
        elif a.verb == "down":
            print("dockerd stopped" if down() else "no dockerd of ours was running")
        elif a.verb == "status":
            ok = answers() and pid()
            print(f"dockerd pid {pid()} answers on {HOST}" if ok
                  else f"no dockerd of ours answers on {HOST}")
            return 0 if ok else 1
        elif a.verb == "session":
            cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
            if not cmd:
                print("tools.docker: session needs a command: session -- CMD [ARG...]",
                      file=sys.stderr)
                return 2
            return session(cmd)
        elif a.verb == "runtime":
            path = register(a.default)
            print(f"dockerd runs {RUNTIME}{' by default' if a.default else ''} ({path})")
        else:
            print(f"export DOCKER_HOST={HOST}")
    except DockerError as e:
        print(f"tools.docker: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

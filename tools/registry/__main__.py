"""`python -m tools.registry up|down|status|nodes CLUSTER` (see tools/registry/__init__.py)."""
from __future__ import annotations

import subprocess
import sys

from tools import gotools
from tools.docker import env
from tools.images import ImageError

from . import IN_CLUSTER, NAME, ON_HOST, _state, configure_nodes, down, up

USAGE = "usage: python -m tools.registry up [--no-driver] | down | status | nodes CLUSTER"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        if args[:1] == ["up"] and set(args[1:]) <= {"--no-driver"}:
            up(driver="--no-driver" not in args)
        elif args == ["down"]:
            down()
        elif args == ["status"]:
            st = _state()
            running = bool(st and st["State"]["Running"])
            where = f"running on {ON_HOST} ({IN_CLUSTER} on kind's network)"
            print(f"{NAME}: {where if running else 'not running'}")
            return 0 if running else 1
        elif len(args) == 2 and args[0] == "nodes":
            kind = str(gotools.ensure("kind") / "kind")
            nodes = subprocess.run([kind, "get", "nodes", "--name", args[1]], env=env(),
                                   capture_output=True, text=True).stdout.split()
            if not nodes:
                print(f"tools.registry: no kind cluster {args[1]!r}", file=sys.stderr)
                return 1
            configure_nodes(nodes)
            print(f"{', '.join(nodes)}: docker.io and localhost resolve to {IN_CLUSTER}")
        else:
            print(USAGE, file=sys.stderr)
            return 2
    except (ImageError, gotools.BuildError) as e:
        print(f"tools.registry: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

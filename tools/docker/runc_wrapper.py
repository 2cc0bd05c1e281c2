#!/usr/bin/env python3
"""An OCI runtime for dockerd that drops CAP_SYS_RESOURCE from a container's spec, then runs runc.

Root on the CI machines lacks CAP_SYS_RESOURCE in its bounding set, so runc cannot give it to a
container and `docker run --privileged` (every kind node) fails with "unable to apply caps".
dockerd calls this file as the runtime binary (`python -m tools.docker runtime`); for `create`
and `run` it removes the one capability from the bundle's config.json, for `exec` from the
`--process` file, and execs the real runc with the same arguments. A user's own machine needs
none of this. Only the standard library.
"""
import json
import os
import shutil
import sys

CAP = "CAP_SYS_RESOURCE"
# runc's global options that take a value (the subcommand is the first other bare word)
VALUED = {"--root", "--log", "--log-format", "--criu", "--rootless"}


def subcommand(args: list[str]) -> tuple[str | None, int]:
    """The runc subcommand in `args` and its index."""
    i = 0
    while i < len(args):
        a = args[i]
        if a in VALUED:
            i += 2
            continue
        if not a.startswith("-"):
            return a, i
        i += 1
    return None, -1


def bundle(args: list[str]) -> str:
    """The --bundle/-b value of a create or run (runc's default: the working directory)."""
    return option(args, ("--bundle", "-b")) or "."


def option(args: list[str], names: tuple[str, ...]) -> str | None:
    """The value of the first of `names` in `args` (`--name v` or `--name=v`)."""
    for i, a in enumerate(args):
        if a in names and i + 1 < len(args):
            return args[i + 1]
        for n in names:
            if n.startswith("--") and a.startswith(n + "="):
                return a.split("=", 1)[1]
    return None


def drop_cap(config_path: str, process_only: bool = False) -> bool:
    """Remove CAP from every capability set of an OCI config (or of the process file of a
    `runc exec --process`, when `process_only`); True if it changed."""
    with open(config_path) as f:
        spec = json.load(f)
    process = spec if process_only else (spec.get("process") or {})
    caps = process.get("capabilities") or {}
    changed = False
    for k, v in caps.items():
        if isinstance(v, list) and CAP in v:
            caps[k] = [c for c in v if c != CAP]
            changed = True
    if changed:
        tmp = config_path + ".ma-tmp"
        with open(tmp, "w") as f:
            json.dump(spec, f)
        os.replace(tmp, config_path)
    return changed


def main() -> None:
    args = sys.argv[1:]
    cmd, i = subcommand(args)
    if cmd in ("create", "run"):
        config = os.path.join(bundle(args[i + 1:]), "config.json")
        if os.path.isfile(config):
            drop_cap(config)
    elif cmd == "exec":  # `docker exec` into a privileged container asks for every cap too
        process = option(args[i + 1:], ("--process", "-p"))
        if process and os.path.isfile(process):
            drop_cap(process, process_only=True)
    real = os.environ.get("MOCK_ACCEL_REAL_RUNC") or shutil.which("runc") or "/usr/sbin/runc"
    os.execv(real, [real, *args])


if __name__ == "__main__":
    main()

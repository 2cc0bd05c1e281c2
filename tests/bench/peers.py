#!/usr/bin/env python3
"""Build the peer DRA drivers the benchmarks compare against, from the Go module proxy.

The versions are pinned by the small Go module in ``tests/bench/peers/go.mod`` (its ``tool``
lines name the main packages). Binaries go to
``~/.cache/mock-accel/peers/<module>@<version>/bin/<name>`` (``$MOCK_ACCEL_PEERS_CACHE``
overrides the root), so a version bump builds next to the old one and nothing is rebuilt twice.

The seed system's Go driver (``github.com/fabiendupont/mock-device/dra-driver``) is looked up
too: the proxy answers 403 ("not available") for its version list and for every version of it
we know, so it cannot be built here; `seed_status()` says so in the results.

Usage: ``python3 -m tests.bench.peers [--force] [--check-seed]``
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

from mock_accel import kubebins

HERE = Path(__file__).resolve().parent
MODULE_DIR = HERE / "peers"
CACHE_ENV = "MOCK_ACCEL_PEERS_CACHE"

EXAMPLE_MODULE = "sigs.k8s.io/dra-example-driver"
# binary name -> main package, per module (every package must be a `tool` of peers/go.mod)
PEERS = {
    EXAMPLE_MODULE: {"dra-example-kubeletplugin":
                     "sigs.k8s.io/dra-example-driver/cmd/dra-example-kubeletplugin"},
}
SEED_MODULE = "github.com/fabiendupont/mock-device/dra-driver"
# The seed's repository has tags v0.1.0 and v0.2.0 at its root, which Go does not apply to a
# module in a subdirectory; we ask for them and for @latest anyway.
SEED_QUERIES = ("latest", "v0.2.0", "v0.1.0")


def pinned_version(module: str) -> str:
    text = (MODULE_DIR / "go.mod").read_text()
    m = re.search(r"^\s*(?:require\s+)?" + re.escape(module) + r"\s+(v\S+)", text, re.M)
    if not m:
        raise kubebins.BuildError(f"{module} is not required by {MODULE_DIR / 'go.mod'}")
    return m.group(1)


def cache_root() -> Path:
    import os
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache/mock-accel/peers"))


def bin_path(module: str, name: str) -> Path:
    return cache_root() / f"{module}@{pinned_version(module)}" / "bin" / name


def _env() -> dict[str, str]:
    env = kubebins.go_env()
    # go.sum (committed) pins the hashes; the checksum database the proxy fronts has no entry
    # for this module (404), so do not ask it when go.sum is first written.
    env["GONOSUMDB"] = EXAMPLE_MODULE
    return env


def build(force: bool = False) -> dict[str, Path]:
    """Build every peer binary that is missing (or all with force); name -> path."""
    go = kubebins.go_binary()
    out: dict[str, Path] = {}
    for module, bins in PEERS.items():
        version = pinned_version(module)
        for name, pkg in bins.items():
            path = bin_path(module, name)
            out[name] = path
            if path.exists() and not force:
                print(f"==> {name} ({module}@{version}): cached at {path}", flush=True)
                continue
            print(f"==> building {name} from {module}@{version} (Go module proxy)", flush=True)
            path.parent.mkdir(parents=True, exist_ok=True)
            log = kubebins.artifacts_root() / "bench" / "build" / f"{name}.log"
            t0 = time.monotonic()
            tmp = path.with_name(path.name + ".tmp")
            kubebins.run_go(name, [go, "build", "-v", "-trimpath", "-ldflags", "-s -w",
                                      "-o", str(tmp), pkg], MODULE_DIR, _env(), log)
            tmp.replace(path)
            stamp = path.parent / "build.json"
            stamp.write_text(json.dumps({"module": module, "version": version, "binary": name,
                                         "package": pkg, "seconds": round(
                                             time.monotonic() - t0, 1)}, indent=2) + "\n")
            print(f"    {name} built in {kubebins.fmt_seconds(time.monotonic() - t0)}: {path}",
                  flush=True)
    return out


def seed_status() -> dict:
    """Ask the module proxy for the seed's driver; {'available': bool, 'detail': str}."""
    go = kubebins.go_binary()
    errors = []
    for query in SEED_QUERIES:
        proc = subprocess.run([go, "mod", "download", "-json", f"{SEED_MODULE}@{query}"],
                              cwd=MODULE_DIR, env=_env(), capture_output=True, text=True,
                              timeout=120)
        try:
            info = json.loads(proc.stdout)
        except ValueError:
            info = {"Error": proc.stderr.strip() or "no answer"}
        if not info.get("Error") and info.get("Dir"):
            return {"available": True, "version": info["Version"],
                    "detail": f"{SEED_MODULE}@{info['Version']} is on the proxy"}
        text = " ".join(ln.strip() for ln in (info.get("Error") or "error").splitlines())
        # keep the status and the server's words, not the proxy's address
        status = re.search(r"\b(\d{3} [A-Z][A-Za-z ]+?)(?:\s+server response|$)", text)
        said = re.search(r"server response: (.*)$", text)
        errors.append(f"@{query}: " + " ".join(
            x for x in (status and status.group(1), said and said.group(1)) if x)
            if status or said else f"@{query}: {text.split(': ')[-1]}")
    return {"available": False, "detail": compact(
        f"{SEED_MODULE} is not served by the Go module proxy ({'; '.join(errors)})")}


def compact(detail: str) -> str:
    """'(@a: E; @b: E)' -> '(E for @a, @b)' when every query got the same answer."""
    m = re.match(r"^(.*?) \((@.*)\)$", detail)
    if not m:
        return detail
    pairs = [part.split(": ", 1) for part in m.group(2).split("; ")]
    if any(len(p) != 2 for p in pairs) or len({p[1] for p in pairs}) != 1:
        return detail
    return f"{m.group(1)} ({pairs[0][1]} for {', '.join(p[0] for p in pairs)})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tests.bench.peers",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if cached")
    parser.add_argument("--check-seed", action="store_true",
                        help="also ask the proxy for the seed's driver")
    args = parser.parse_args(argv)
    try:
        for name, path in build(args.force).items():
            print(f"{name}: {path}")
    except kubebins.BuildError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.check_seed:
        print(json.dumps(seed_status(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

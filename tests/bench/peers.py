#!/usr/bin/env python3
"""Build the peer DRA drivers the benchmarks compare against, from the Go module proxy.

The versions are pinned by the small Go module in ``tests/bench/peers/go.mod`` (its ``tool``
lines name the main packages). Binaries go to
``~/.cache/mock-accel/peers/<module>@<version>/bin/<name>`` (``$MOCK_ACCEL_PEERS_CACHE``
overrides the root), so a version bump builds next to the old one and nothing is rebuilt twice.

The seed system's Go driver (``github.com/fabiendupont/mock-device/dra-driver``) is refused by
the proxy (403 for its version list and every version we know), so it is built from a checkout
named by ``$MOCK_ACCEL_SEED_SRC`` (the repository or its ``dra-driver/``; ``--seed-src``), with
its dependencies from the proxy pinned by its own go.sum, into
``<cache>/<module>@src-<digest of its sources>/bin/dra-driver``. Without a checkout the seed is
skipped and `seed_status()` says why in the results.

Usage: ``python3 -m tests.bench.peers [--force] [--check-seed] [--seed-src PATH]``
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
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


SEED_ENV = "MOCK_ACCEL_SEED_SRC"
SEED_BINARY = "dra-driver"
SEED_PACKAGE = "./cmd/dra-driver"


class SeedError(kubebins.BuildError):
    """The seed's checkout is not usable (one line for the user)."""


def seed_source(path: str | os.PathLike | None = None) -> Path | None:
    """The seed's `dra-driver/` directory: `path`, else `$MOCK_ACCEL_SEED_SRC`; None when
    neither is set; `SeedError` when it names no checkout of the seed's driver."""
    given = path if path is not None else os.environ.get(SEED_ENV) or None
    if given is None:
        return None
    root = Path(given).expanduser().resolve()
    for cand in (root, root / "dra-driver"):
        mod = cand / "go.mod"
        if mod.is_file() and re.search(rf"^module\s+{re.escape(SEED_MODULE)}\s*$",
                                       mod.read_text(), re.M):
            return cand
    raise SeedError(f"{given}: no go.mod of {SEED_MODULE} there or in its dra-driver/")


def source_digest(src: Path) -> str:
    """12 hex digits over go.mod, go.sum and every .go file of `src` (names and contents)."""
    h = hashlib.sha256()
    files = sorted(p for p in src.rglob("*") if p.is_file() and (
        p.suffix == ".go" or p.name in ("go.mod", "go.sum")))
    for f in files:
        h.update(str(f.relative_to(src)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def seed_bin_path(src: Path) -> Path:
    return cache_root() / f"{SEED_MODULE}@src-{source_digest(src)}" / "bin" / SEED_BINARY


def build_seed(src: Path, force: bool = False) -> Path:
    """Build the seed's driver from the checkout `src` (cached by its sources' digest)."""
    path = seed_bin_path(src)
    if path.exists() and not force:
        print(f"==> seed {SEED_BINARY} ({src}): cached at {path}", flush=True)
        return path
    if not (src / "go.sum").is_file():
        raise SeedError(f"{src}: no go.sum to pin the seed's dependencies")
    print(f"==> building the seed's {SEED_BINARY} from {src} (dependencies: Go module proxy, "
          "pinned by its go.sum)", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    env = kubebins.go_env()
    env["GOFLAGS"] = "-mod=readonly"       # go.sum as it is: nothing added, nothing upgraded
    t0 = time.monotonic()
    tmp = path.with_name(path.name + ".tmp")
    kubebins.run_go("seed-" + SEED_BINARY, [
        kubebins.go_binary(), "build", "-v", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w",
        "-o", str(tmp), SEED_PACKAGE], src, env,
        kubebins.artifacts_root() / "bench" / "build" / f"seed-{SEED_BINARY}.log")
    tmp.replace(path)
    (path.parent / "build.json").write_text(json.dumps({
        "module": SEED_MODULE, "source": str(src), "digest": source_digest(src),
        "binary": SEED_BINARY, "package": SEED_PACKAGE,
        "seconds": round(time.monotonic() - t0, 1)}, indent=2) + "\n")
    print(f"    seed {SEED_BINARY} built in {kubebins.fmt_seconds(time.monotonic() - t0)}: "
          f"{path}", flush=True)
    return path


def seed_status(src: str | os.PathLike | None = None, ask_proxy: bool = False) -> dict:
    """The seed for the results: {'available', 'detail'} (+ 'binary', 'source', 'digest')."""
    try:
        where = seed_source(src)
    except SeedError as err:
        return {"available": False, "detail": str(err)}
    if where is not None:
        binary = seed_bin_path(where)
        return {"available": binary.exists(), "binary": str(binary), "source": str(where),
                "digest": source_digest(where), "detail": (
                    f"{SEED_MODULE} built from the checkout {where} (sources "
                    f"{source_digest(where)})" if binary.exists() else
                    f"{SEED_MODULE}: {where} is not built yet (python3 -m tests.bench.peers)")}
    detail = f"no checkout of {SEED_MODULE} (set {SEED_ENV}=/path/to/mock-device)"
    if ask_proxy:
        detail += "; " + proxy_status()["detail"]
    return {"available": False, "detail": detail}


def proxy_status() -> dict:
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
                        help="without a seed checkout, also ask the proxy for the seed's driver")
    parser.add_argument("--seed-src", metavar="PATH",
                        help=f"checkout of the seed's repository (default: ${SEED_ENV})")
    args = parser.parse_args(argv)
    try:
        src = seed_source(args.seed_src)        # a wrong path fails before any build
        for name, path in build(args.force).items():
            print(f"{name}: {path}")
        if src is not None:
            print(f"{SEED_BINARY} (seed): {build_seed(src, args.force)}")
        else:
            print(f"seed: skipped, no checkout of {SEED_MODULE} (set {SEED_ENV} or --seed-src)")
    except kubebins.BuildError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.check_seed:
        print(json.dumps(seed_status(args.seed_src, ask_proxy=True), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

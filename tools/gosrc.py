"""Go programs the module proxy refuses, built from a checkout of their source.

Some upstream programs cannot be `go install`ed here (the proxy answers 403 for their module):
Kernel Module Management, for one. The project never vendors their code; it builds them from a
checkout the user names (an environment variable or `--src`), or — where the internet is
reachable — from a shallow clone of the pinned release it makes itself. Dependencies come from
the module proxy, pinned by the checkout's own go.sum (`-mod=readonly`: nothing added or
upgraded). Binaries land in `~/.cache/mock-accel/gosrc/<name>/src-<digest>/` (digest of go.mod,
go.sum and every .go file), through a `.partial` directory renamed only when the build
succeeded, so a killed build is rebuilt, never reused.

    src = locate(KMM)              # $KMM_SRC, else a clone of the pinned tag, else SourceAbsent
    bins = build(KMM, src)         # {binary name: path}
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from mock_accel.kubebins import BuildError, artifacts_root, fmt_seconds, go_binary, go_env, run_go

CACHE = Path(os.environ.get("MOCK_ACCEL_GOSRC_CACHE")
             or Path.home() / ".cache" / "mock-accel" / "gosrc")


class SourceAbsent(BuildError):
    """No checkout was named and none could be cloned (the message says how to give one)."""


@dataclass(frozen=True)
class GoSource:
    """A Go program built from a checkout: where its source is and what to build from it."""
    name: str                       # short name: cache directory, log names
    module: str                     # the module path go.mod must declare
    env: str                        # the variable naming a checkout
    url: str                        # where a clone comes from (when the internet is reachable)
    ref: str                        # the pinned release tag
    binaries: tuple[tuple[str, str], ...]  # (binary, package) pairs
    cgo: bool = False

    def declares(self, root: Path) -> bool:
        mod = root / "go.mod"
        return mod.is_file() and re.search(rf"^module\s+{re.escape(self.module)}\s*$",
                                           mod.read_text(errors="replace"), re.M) is not None


def source_digest(src: Path) -> str:
    """12 hex digits over go.mod, go.sum and every .go file under `src` (names and contents)."""
    h = hashlib.sha256()
    files = sorted(p for p in src.rglob("*") if p.is_file() and ".git" not in p.parts and (
        p.suffix == ".go" or p.name in ("go.mod", "go.sum")))
    for f in files:
        h.update(str(f.relative_to(src)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def clone_dir(s: GoSource) -> Path:
    return CACHE / s.name / f"clone-{s.ref}"


def locate(s: GoSource, given: str | os.PathLike | None = None, clone: bool = True) -> Path:
    """The checkout to build `s` from: `given`, else `$<env>`, else a clone of the pinned tag
    made earlier or now. `BuildError` when a named path is no checkout of `s`; `SourceAbsent`
    when nothing was named and no clone can be made (no internet: the normal case here)."""
    named = given if given is not None else os.environ.get(s.env) or None
    if named is not None:
        root = Path(named).expanduser().resolve()
        if not s.declares(root):
            raise BuildError(f"{named}: not a checkout of {s.module} (no go.mod declaring it)")
        return root
    target = clone_dir(s)
    if s.declares(target):
        return target
    if not clone:
        raise SourceAbsent(f"no source of {s.module}: set {s.env}=<checkout of {s.ref}>")
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", s.ref, s.url,
                        str(partial)], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    if r.returncode or not s.declares(partial):
        shutil.rmtree(partial, ignore_errors=True)
        why = (r.stderr.strip().splitlines() or ["no go.mod in the clone"])[-1]
        raise SourceAbsent(f"no source of {s.module}: set {s.env}=<checkout of {s.ref}> "
                           f"(cloning {s.url} failed: {why})")
    partial.replace(target)
    return target


def bin_dir(s: GoSource, src: Path) -> Path:
    return CACHE / s.name / f"src-{source_digest(src)}"


def build(s: GoSource, src: Path, force: bool = False) -> dict[str, Path]:
    """Build every binary of `s` from the checkout `src` (cached by its sources' digest)."""
    out = bin_dir(s, src)
    paths = {b: out / b for b, _ in s.binaries}
    if not force and all(p.is_file() for p in paths.values()):
        return paths
    if not (src / "go.sum").is_file():
        raise BuildError(f"{src}: no go.sum to pin {s.module}'s dependencies")
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    env = {**go_env(), "GOFLAGS": "-mod=readonly", "CGO_ENABLED": "1" if s.cgo else "0"}
    t0 = time.monotonic()
    print(f"==> building {s.name} from {src} (dependencies: Go module proxy, pinned by its "
          "go.sum)", flush=True)
    for binary, package in s.binaries:
        t1 = time.monotonic()
        run_go(f"{s.name} {binary}", [
            go_binary(), "build", "-v", "-trimpath", "-buildvcs=auto", "-ldflags", "-s -w",
            "-o", str(partial / binary), package], src, env,
            artifacts_root() / "build" / f"{s.name}-{binary}.log")
        print(f"    {binary} built in {fmt_seconds(time.monotonic() - t1)}", flush=True)
    (partial / "build.json").write_text(json.dumps({
        "module": s.module, "source": str(src), "digest": source_digest(src),
        "binaries": dict(s.binaries), "seconds": round(time.monotonic() - t0, 1)},
        indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    partial.replace(out)
    print(f"    {s.name} built in {fmt_seconds(time.monotonic() - t0)}: {out}", flush=True)
    return paths

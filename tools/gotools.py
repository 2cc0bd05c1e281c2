"""The one place that builds upstream Go tools from the Go module proxy into the cache.

`go install <package>@<version>` with the cgo setting and build tags each tool needs; every tool
lands in `~/.cache/mock-accel/gotools/<name>/<version>[+tags]/` through a `.partial` directory
that is renamed only when the build succeeded, so a killed build is rebuilt, never reused.

    python -m tools.gotools runc containerd ...   # build (or find) and print the paths
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mock_accel.kubebins import BuildError, fmt_seconds, go_binary, go_env, run_go

CACHE = Path(os.environ.get("MOCK_ACCEL_GOTOOLS_CACHE")
             or Path.home() / ".cache" / "mock-accel" / "gotools")


@dataclass(frozen=True)
class GoTool:
    """One `go install`: the packages (same module, same version) and how to build them."""
    module: str
    version: str
    packages: tuple[str, ...]
    cgo: bool = False
    tags: tuple[str, ...] = ()

    def key(self) -> str:
        return self.version + (f"+{'.'.join(self.tags)}" if self.tags else "")

    def binaries(self) -> list[str]:
        return [p.rstrip("/").rsplit("/", 1)[-1] for p in self.packages]


CONTAINERD = "github.com/containerd/containerd/v2"
CNI = "github.com/containernetworking/plugins"
TOOLS = {
    # seccomp: kubeadm's static pods ask for the RuntimeDefault profile (needs libseccomp-dev)
    "runc": GoTool("github.com/opencontainers/runc", "v1.5.3",
                   ("github.com/opencontainers/runc",), cgo=True, tags=("seccomp",)),
    "containerd": GoTool(CONTAINERD, "v2.4.2",
                         tuple(f"{CONTAINERD}/cmd/{c}" for c in
                               ("containerd", "ctr", "containerd-shim-runc-v2")),
                         cgo=True, tags=("no_btrfs", "no_devmapper", "no_zfs", "no_aufs")),
    "crictl": GoTool("sigs.k8s.io/cri-tools", "v1.37.0", ("sigs.k8s.io/cri-tools/cmd/crictl",)),
    "cni-plugins": GoTool(CNI, "v1.10.0", tuple(f"{CNI}/plugins/{p}" for p in (
        "main/bridge", "main/loopback", "main/ptp", "ipam/host-local", "meta/portmap"))),
    # kubeadm's DNS addon (no replace directives in its go.mod, so `go install` builds it)
    "coredns": GoTool("github.com/coredns/coredns", "v1.14.6", ("github.com/coredns/coredns",)),
    "kind": GoTool("sigs.k8s.io/kind", "v0.33.0", ("sigs.k8s.io/kind",)),
    # the local registry the kind nodes pull from (tools/kind/registry.py); static (no cgo)
    "registry": GoTool("github.com/distribution/distribution/v3", "v3.1.2",
                       ("github.com/distribution/distribution/v3/cmd/registry",)),
}


def tool_dir(name: str) -> Path:
    """Where tool `name`'s binaries are (or will be) cached."""
    return CACHE / name / TOOLS[name].key()


def find(name: str) -> Path | None:
    """The cache directory of a completely built tool, else None."""
    d = tool_dir(name)
    ok = all((d / b).is_file() and os.access(d / b, os.X_OK) for b in TOOLS[name].binaries())
    return d if ok else None


def ensure(name: str, log_dir: Path | None = None) -> Path:
    """Build tool `name` unless cached; return its directory (BuildError says why not)."""
    if name not in TOOLS:
        raise BuildError(f"unknown Go tool {name!r} (known: {', '.join(TOOLS)})")
    if (d := find(name)) is not None:
        return d
    t, d, go = TOOLS[name], tool_dir(name), go_binary()
    partial = d.with_name(d.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    env = {**go_env(), "GOBIN": str(partial), "CGO_ENABLED": "1" if t.cgo else "0"}
    cmd = [go, "install", "-v", "-trimpath", "-ldflags", "-s -w"]
    if t.tags:
        cmd += ["-tags", ",".join(t.tags)]
    cmd += [f"{p}@{t.version}" for p in t.packages]
    t0 = time.monotonic()
    print(f"    go install {name} {t.key()} ...", flush=True)
    log = (log_dir or CACHE / "logs") / f"{name}.log"
    run_go(name, cmd, Path("/tmp"), env, log)
    shutil.rmtree(d, ignore_errors=True)
    partial.replace(d)
    print(f"    {name} built in {fmt_seconds(time.monotonic() - t0)}", flush=True)
    return d


def main(argv: list[str] | None = None) -> int:
    names = (sys.argv[1:] if argv is None else argv) or list(TOOLS)
    try:
        for n in names:
            print(f"{n}: {ensure(n)}")
    except BuildError as e:
        print(f"tools.gotools: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

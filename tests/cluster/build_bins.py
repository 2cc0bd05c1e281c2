#!/usr/bin/env python3
"""Build (or find) the upstream Kubernetes binaries the test cluster runs.

The versions are pinned by the Go module in ``tests/cluster/kubebins/go.mod``
(``k8s.io/kubernetes``, ``go.etcd.io/etcd/server/v3``) and by ``HELM_VERSION``
below.  Binaries are looked up, per binary, in this order:

1. ``$MOCK_ACCEL_KUBE_BINS`` -- a directory you filled yourself;
2. ``$KUBEBUILDER_ASSETS``   -- envtest assets (they ship etcd, kube-apiserver
   and kubectl only; the rest is still built);
3. the cache ``$MOCK_ACCEL_KUBE_CACHE/<k8s version>/bin`` (default
   ``~/.cache/mock-accel/kube``), built here with ``go build`` when missing.

Go's own module and build caches (``go env GOMODCACHE GOCACHE``) are left at
their defaults, so a rebuild after a cache wipe of ours only re-links.

Usage: ``python3 tests/cluster/build_bins.py [--print-dir] [--force] [--no-helm]
[--set-version 1.37]``
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODULE_DIR = HERE / "kubebins"
HELM_VERSION = "v3.22.0"

# name -> Go package (inside the kubebins module)
K8S_BINS = {
    "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
    "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
    "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
    "kubectl": "k8s.io/kubernetes/cmd/kubectl",
}
ETCD_PKG = "go.etcd.io/etcd/server/v3"
ALL_BINS = ("etcd", *K8S_BINS, "helm")
# What the control plane needs to start (helm and kubectl are client tools).
SERVER_BINS = ("etcd", "kube-apiserver", "kube-scheduler", "kube-controller-manager")


class BuildError(RuntimeError):
    pass


# ----------------------------------------------------------------------------- versions

def _require_version(module: str) -> str:
    text = (MODULE_DIR / "go.mod").read_text()
    m = re.search(r"^\s*(?:require\s+)?" + re.escape(module) + r"\s+(v\S+)", text, re.M)
    if not m:
        raise BuildError(f"{module} is not required in {MODULE_DIR / 'go.mod'}")
    return m.group(1)


def versions() -> dict[str, str]:
    """The pinned versions, read from kubebins/go.mod (the single source of truth)."""
    return {
        "kubernetes": _require_version("k8s.io/kubernetes"),
        "etcd": _require_version(ETCD_PKG),
        "helm": HELM_VERSION,
    }


def wanted_version(name: str) -> str:
    v = versions()
    return v["etcd"] if name == "etcd" else v["helm"] if name == "helm" else v["kubernetes"]


# ----------------------------------------------------------------------------- locations

def cache_root() -> Path:
    return Path(os.environ.get("MOCK_ACCEL_KUBE_CACHE")
                or Path.home() / ".cache" / "mock-accel" / "kube")


def cache_bin_dir() -> Path:
    return cache_root() / versions()["kubernetes"] / "bin"


def artifacts_root() -> Path:
    return Path(os.environ.get("MOCK_ACCEL_ARTIFACTS") or HERE.parent.parent / "artifacts")


def _stamp_path(d: Path) -> Path:
    return d / "versions.json"


def _read_stamp(d: Path) -> dict:
    try:
        return json.loads(_stamp_path(d).read_text())
    except (OSError, ValueError):
        return {}


def _write_stamp(d: Path, stamp: dict) -> None:
    tmp = _stamp_path(d).with_suffix(".tmp")
    tmp.write_text(json.dumps(stamp, indent=2, sort_keys=True) + "\n")
    tmp.replace(_stamp_path(d))


def _candidates(name: str):
    for var in ("MOCK_ACCEL_KUBE_BINS", "KUBEBUILDER_ASSETS"):
        if os.environ.get(var):
            yield var, Path(os.environ[var]) / name
    yield "cache", cache_bin_dir() / name


def find_bin(name: str) -> Path | None:
    """Path of a usable binary, or None if it has to be built."""
    for origin, p in _candidates(name):
        if not (p.is_file() and os.access(p, os.X_OK)):
            continue
        if origin != "cache":
            return p
        if _read_stamp(p.parent).get("bins", {}).get(name) == wanted_version(name):
            return p
    return None


def find_bins(names=ALL_BINS) -> dict[str, Path]:
    """All requested binaries; raises BuildError naming the missing ones."""
    found = {n: find_bin(n) for n in names}
    missing = [n for n, p in found.items() if p is None]
    if missing:
        raise BuildError(f"missing binaries {missing}: run `make cluster-bins` "
                         f"(or python3 {HERE / 'build_bins.py'})")
    return found  # type: ignore[return-value]


# ----------------------------------------------------------------------------- building

def go_binary() -> str:
    for cand in (os.environ.get("GO"), shutil.which("go"), "/usr/local/go/bin/go"):
        if cand and Path(cand).exists():
            return cand
    raise BuildError("no Go toolchain found (set $GO or put `go` on PATH)")


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("GOTOOLCHAIN", "local")
    env.pop("GOFLAGS", None)
    return env


def _fmt(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s" if m else f"{seconds:.1f}s"


def k8s_ldflags(version: str, build_date: str) -> str:
    """The -X flags upstream's hack/lib/version.sh passes, for a tagged clean build."""
    m = re.match(r"v(\d+)\.(\d+)\.", version)
    if not m:
        raise BuildError(f"cannot parse Kubernetes version {version!r}")
    values = {
        "gitVersion": version, "gitMajor": m.group(1), "gitMinor": m.group(2),
        "gitCommit": "", "gitTreeState": "clean", "buildDate": build_date,
    }
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {pkg}.{k}={v}" for k, v in values.items()]
    return " ".join(flags)


def _module_info(go: str, mod: str, cwd: Path | None = None) -> dict:
    out = subprocess.run([go, "mod", "download", "-json", mod], cwd=cwd, env=_go_env(),
                         capture_output=True, text=True)
    if out.returncode:
        detail = out.stderr.strip() or out.stdout.strip()
        raise BuildError(f"`go mod download {mod}` failed: {detail}")
    return json.loads(out.stdout)


def _k8s_build_date(go: str, version: str) -> str:
    # The module's publication time: deterministic, so Go's link cache stays warm.
    try:
        info_path = Path(_module_info(go, f"k8s.io/kubernetes@{version}")["Info"])
        info = json.loads(info_path.read_text())
        return info["Time"]
    except (BuildError, OSError, KeyError, ValueError):
        return "1970-01-01T00:00:00Z"


def helm_ldflags(go: str, version: str) -> str:
    gomod = Path(_module_info(go, f"helm.sh/helm/v3@{version}")["GoMod"]).read_text()
    m = re.search(r"^\s*k8s\.io/client-go\s+v0\.(\d+)\.", gomod, re.M)
    minor = m.group(1) if m else ""
    base = "helm.sh/helm/v3"
    flags = ["-s", "-w",
             f"-X {base}/internal/version.version={version}",
             f"-X {base}/internal/version.metadata=",
             f"-X {base}/internal/version.gitTreeState=clean"]
    if minor:  # the default .Capabilities.KubeVersion of `helm template`
        for pkg in ("pkg/lint/rules", "pkg/chartutil"):
            flags += [f"-X {base}/{pkg}.k8sVersionMajor=1",
                      f"-X {base}/{pkg}.k8sVersionMinor={minor}"]
    return " ".join(flags)


def _run_go(name: str, cmd: list[str], cwd: Path, env: dict, log: Path) -> None:
    """Run one `go build`, show progress every 30 s, raise BuildError on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with open(log, "w") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT)
        done = threading.Event()

        def ticker():
            while not done.wait(30):
                try:
                    n = sum(1 for _ in open(log)) - 1
                except OSError:
                    n = 0
                print(f"    ... {name}: {_fmt(time.monotonic() - t0)}, {n} packages compiled",
                      flush=True)

        th = threading.Thread(target=ticker, daemon=True)
        th.start()
        rc = proc.wait()
        done.set()
    if rc:
        tail = "\n".join(log.read_text().splitlines()[-25:])
        raise BuildError(f"building {name} failed (go exited {rc}); full log: {log}\n{tail}")


def build(names=ALL_BINS, force: bool = False) -> dict[str, Path]:
    """Build whatever of `names` is not found (or everything with force) into the cache."""
    go = go_binary()
    vers = versions()
    todo = [n for n in names if force or find_bin(n) is None]
    if not todo:
        return find_bins(names)
    out = cache_bin_dir()
    out.mkdir(parents=True, exist_ok=True)
    logs = artifacts_root() / "cluster" / "build"
    env = _go_env()
    print(f"building {', '.join(todo)} into {out}\n"
          f"  kubernetes {vers['kubernetes']}, etcd {vers['etcd']}, helm {vers['helm']}; "
          f"go logs in {logs}", flush=True)
    t_all = time.monotonic()
    build_date = None
    for i, name in enumerate(todo, 1):
        t0 = time.monotonic()
        print(f"[{i}/{len(todo)}] {name} ...", flush=True)
        tmp = out / f".{name}.partial"
        if name == "helm":
            gobin = out / ".helm-gobin"
            gobin.mkdir(exist_ok=True)
            cmd = [go, "install", "-v", "-trimpath", "-ldflags", helm_ldflags(go, vers["helm"]),
                   f"helm.sh/helm/v3/cmd/helm@{vers['helm']}"]
            _run_go(name, cmd, out, {**env, "GOBIN": str(gobin)}, logs / f"{name}.log")
            shutil.move(str(gobin / "helm"), tmp)
            shutil.rmtree(gobin, ignore_errors=True)
        else:
            if name == "etcd":
                pkg, ld = ETCD_PKG, "-s -w"
            else:
                build_date = build_date or _k8s_build_date(go, vers["kubernetes"])
                pkg, ld = K8S_BINS[name], k8s_ldflags(vers["kubernetes"], build_date)
            cmd = [go, "build", "-v", "-trimpath", "-ldflags", ld, "-o", str(tmp), pkg]
            _run_go(name, cmd, MODULE_DIR, env, logs / f"{name}.log")
        tmp.replace(out / name)
        stamp = _read_stamp(out)
        stamp.setdefault("bins", {})[name] = wanted_version(name)
        stamp.setdefault("build_seconds", {})[name] = round(time.monotonic() - t0, 1)
        _write_stamp(out, stamp)
        print(f"[{i}/{len(todo)}] {name} built in {_fmt(time.monotonic() - t0)}", flush=True)
    total = time.monotonic() - t_all
    stamp = _read_stamp(out)
    stamp.setdefault("first_build_seconds", round(total, 1))
    stamp["last_build_seconds"] = round(total, 1)
    _write_stamp(out, stamp)
    print(f"built {len(todo)} binaries in {_fmt(total)} "
          f"(first build of this version took {_fmt(stamp['first_build_seconds'])})", flush=True)
    return find_bins(names)


def ensure_bins(names=ALL_BINS) -> dict[str, Path]:
    """Return the binaries, building the missing ones (the pytest fixture uses this)."""
    try:
        return find_bins(names)
    except BuildError:
        return build(names)


def set_version(want: str) -> str:
    """Rewrite kubebins/go.mod for another Kubernetes release and `go mod tidy` it.

    `want` is a full version (v1.37.2) or a minor (1.37: the newest patch the proxy has).
    The staging `replace` lines and the etcd version come from that release's go.mod.
    """
    go = go_binary()
    if not re.fullmatch(r"v?\d+\.\d+\.\d+", want):
        out = subprocess.run([go, "list", "-m", "-versions", "k8s.io/kubernetes"],
                             capture_output=True, text=True, env=_go_env(), cwd=MODULE_DIR)
        minor = want.lstrip("v")
        found = [v for v in out.stdout.split()[1:] if re.fullmatch(rf"v{re.escape(minor)}\.\d+", v)]
        if not found:
            raise BuildError(f"no k8s.io/kubernetes v{minor}.z release on the module proxy")
        want = max(found, key=lambda v: int(v.rsplit(".", 1)[1]))
    want = "v" + want.lstrip("v")
    k8s_mod = Path(_module_info(go, f"k8s.io/kubernetes@{want}")["GoMod"]).read_text()
    staging = re.findall(r"^\s*(k8s\.io/\S+)\s+=>\s+\./staging/", k8s_mod, re.M)
    etcd = re.search(r"^\s*go\.etcd\.io/etcd/server/v3\s+(v\S+)", k8s_mod, re.M)
    godir = re.search(r"^go\s+(\S+)", k8s_mod, re.M)
    godebug = re.search(r"^godebug\s+.*$", k8s_mod, re.M)
    if not (staging and etcd and godir):
        raise BuildError(f"unexpected go.mod layout in k8s.io/kubernetes@{want}")
    staging_v = "v0." + want.split(".", 1)[1]
    lines = ["// Pins the upstream Kubernetes and etcd releases the test cluster runs.",
             "// Generated by `python3 tests/cluster/build_bins.py --set-version <version>`.",
             "module mock-accel/tests/cluster/kubebins", "", f"go {godir.group(1)}", ""]
    if godebug:
        lines += [godebug.group(0), ""]
    lines += ["require (", f"\tk8s.io/kubernetes {want}",
              f"\tgo.etcd.io/etcd/server/v3 {etcd.group(1)}", ")", "", "replace ("]
    lines += [f"\t{m} => {m} {staging_v}" for m in staging]
    lines += [")", "", "tool (", f"\t{ETCD_PKG}", *[f"\t{p}" for p in K8S_BINS.values()], ")", ""]
    (MODULE_DIR / "go.mod").write_text("\n".join(lines))
    tidy = subprocess.run([go, "mod", "tidy"], cwd=MODULE_DIR, env=_go_env(),
                          capture_output=True, text=True)
    if tidy.returncode:
        raise BuildError(f"go mod tidy failed:\n{tidy.stderr[-3000:]}")
    print(f"kubebins/go.mod now pins kubernetes {want}, etcd {etcd.group(1)}, "
          f"{len(staging)} staging modules at {staging_v}")
    return want


def version_of(path: Path) -> str:
    arg = ["version", "--client"] if path.name == "kubectl" else (
        ["version", "--short"] if path.name == "helm" else ["--version"])
    try:
        out = subprocess.run([str(path), *arg], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"<{e}>"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else "?"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--force", action="store_true", help="rebuild even if cached")
    ap.add_argument("--no-helm", action="store_true", help="skip helm")
    ap.add_argument("--print-dir", action="store_true", help="only print the cache bin dir")
    ap.add_argument("--set-version", metavar="V",
                    help="re-pin kubebins/go.mod to Kubernetes V (v1.37.2, or 1.37 for its "
                         "newest patch), then build")
    args = ap.parse_args(argv)
    if args.set_version:
        try:
            set_version(args.set_version)
        except BuildError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    if args.print_dir:
        print(cache_bin_dir())
        return 0
    names = [n for n in ALL_BINS if not (args.no_helm and n == "helm")]
    t0 = time.monotonic()
    try:
        bins = build(names, force=args.force)
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for n, p in bins.items():
        print(f"  {n:24s} {p}  [{version_of(p)}]")
    print(f"cluster binaries ready ({_fmt(time.monotonic() - t0)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

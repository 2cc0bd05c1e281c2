"""Benchmark of the local control plane: build time, warm start-up, peak memory.

    python3 -m tests.cluster.bench [--runs 3] [--nodes 2] [--cold-build]

Cold build time comes from the cache's versions.json (recorded by the first
build of this version); --cold-build measures it again with an empty,
temporary GOCACHE (slow: many minutes).  Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from mock_accel import kubebins
from mock_accel.cluster import Cluster


def _fmt(s: float) -> str:
    m, sec = divmod(s, 60)
    return f"{int(m)}m{sec:04.1f}s" if m else f"{s:.1f}s"


def cold_build() -> float:
    with tempfile.TemporaryDirectory(prefix="mock-accel-gocache-") as gocache, \
         tempfile.TemporaryDirectory(prefix="mock-accel-kubecache-") as kubecache:
        env = {**os.environ, "GOCACHE": gocache, "MOCK_ACCEL_KUBE_CACHE": kubecache}
        env.pop("MOCK_ACCEL_KUBE_BINS", None)
        env.pop("KUBEBUILDER_ASSETS", None)
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-m", "mock_accel.kubebins"], env=env,
                       check=True)
        return time.monotonic() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--nodes", type=int, default=2)
    ap.add_argument("--cold-build", action="store_true")
    args = ap.parse_args(argv)

    vers = kubebins.versions()
    print(f"kubernetes {vers['kubernetes']}, etcd {vers['etcd']}, helm {vers['helm']}")
    stamp = kubebins.read_stamp(kubebins.cache_bin_dir())
    if args.cold_build:
        print(f"cold build (empty GOCACHE, warm module cache): {_fmt(cold_build())}")
    elif stamp.get("first_build_seconds"):
        print(f"first (cold) build recorded in {kubebins.cache_bin_dir()}/versions.json: "
              f"{_fmt(stamp['first_build_seconds'])}")
        for n, s in sorted(stamp.get("cold_build_seconds", {}).items()):
            print(f"    {n:24s} {_fmt(s)} (cold)")
        for n, s in sorted(stamp.get("build_seconds", {}).items()):
            print(f"    {n:24s} {_fmt(s)} (last build)")
    t0 = time.monotonic()
    bins = kubebins.ensure_bins(kubebins.SERVER_BINS + ("kubectl",))
    print(f"binaries resolved in {_fmt(time.monotonic() - t0)}")

    ready, with_nodes, peaks = [], [], []
    for i in range(args.runs):
        c = Cluster(bins=bins, name=f"bench-{time.strftime('%Y%m%d-%H%M%S')}-{i}")
        t0 = time.monotonic()
        with c:
            ready.append(c.timings["ready"])
            c.create_nodes(args.nodes)
            with_nodes.append(time.monotonic() - t0)
            time.sleep(5)  # let controllers settle before sampling memory
            peaks.append(c.peak_memory_kib())
        print(f"run {i + 1}: ready {c.timings['ready']:.1f}s "
              f"(etcd {c.timings['etcd']:.1f}s, apiserver {c.timings['apiserver']:.1f}s), "
              f"+{args.nodes} nodes {with_nodes[-1]:.1f}s")
    print(f"warm start-up to ready: min {min(ready):.1f}s, median "
          f"{statistics.median(ready):.1f}s (target <= 20s)")
    last = peaks[-1]
    print("peak RSS per component (VmHWM):")
    for n, kib in last.items():
        print(f"    {n:24s} {kib / 1024:7.0f} MiB")
    print(f"    {'total':24s} {sum(last.values()) / 1024:7.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

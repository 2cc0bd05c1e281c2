"""Scale: our slices for 500 simulated nodes x 16 devices (time to converge, memory), and the
scheduler's view: the real kube-scheduler allocating 200 claims against our slice layout vs
the seed's layout (one slice and one pool per device).

How the 500 nodes are run (2 shared cores cannot host 500 Python processes, ~20 GB):
- convergence: 500 `SliceController`s -- the code the `mock-accel controller` process runs,
  each with its own node's client certificate (Node authorizer + NodeRestriction apply) -- in
  10 worker processes of 50 controller threads each. Their sysfs poll is slowed from 0.5 s to
  5 s (500 nodes' polls on 2 cores would measure the simulation, not the publishing). The clock
  starts when the workers are spawned and stops when a watch has seen all 500 x 16 devices.
- memory per process: a sample of 5 real `mock-accel controller` processes (one node each,
  16 devices) and, side by side, 5 dra-example-driver kubelet plugins (16 GPUs each), after
  the 500 nodes converged; plus each worker's RSS (50 nodes per process).

Scheduler view: 13 Ready nodes x 16 devices (208 devices), 200 single-device claims, each with
a pod; time from the first pod created to the last claim allocated, per layout, one layout at a
time: ours (default: sharedCounters, 3 slices per node), ours without counters (1 slice per
node), and the seed's layout (the same devices, one slice per device). The slices are written
by this script from `build_slices` (what the controller publishes).

Run: `python3 -m tests.bench.bench_scale` (BENCH_QUICK=1: 20 nodes, 20 claims).
"""
from __future__ import annotations

import json
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mock_accel.cluster import Cluster
from mock_accel.wait import wait_until
from tests.bench import common, peers
from tests.bench.bench_slices import EXAMPLE_DRIVER, start_example, start_ours

DEVICES = 16
SEED_DRIVER = "seed-layout.bench.example.com"
SEED_EXACT_DRIVER = "seed-names.bench.example.com"
NOCOUNTER_DRIVER = "nocounters.bench.example.com"


# ------------------------------------------------------------------------------- worker process
def worker(spec_path: str) -> int:
    """Run the SliceControllers listed in the spec file until SIGTERM."""
    from mock_accel.controller import SliceController
    from mock_accel.inventory import open_node
    from mock_accel.kube import KubeClient
    spec = json.loads(Path(spec_path).read_text())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    node = open_node(spec["sysfs_root"])
    threads = []
    for name, kubeconfig in spec["nodes"]:
        controller = SliceController(KubeClient.from_kubeconfig(kubeconfig), name, node,
                                     poll_interval=spec["poll_interval"])
        thread = threading.Thread(target=controller.run, args=(stop,), daemon=True)
        thread.start()
        threads.append(thread)
    print(f"worker: {len(threads)} controllers running", flush=True)
    stop.wait()
    for thread in threads:
        thread.join(timeout=10)
    return 0


# ------------------------------------------------------------------------------- scale
def node_kubeconfig(cluster: Cluster, work: Path, name: str) -> Path:
    pair = cluster.pki.issue(f"node-{name}", f"system:node:{name}", ["system:nodes"])
    return cluster.write_kubeconfig(work / f"{name}.kubeconfig", f"system:node:{name}",
                                    pair.cert, pair.key)


def scale(cluster: Cluster, work: Path, n_nodes: int, n_workers: int, samples: int) -> dict:
    from mock_accel.sim import SimConfig, SimNode
    api = cluster.api
    common.log(f"scale: creating {n_nodes} Node objects and their client certificates")
    names = [f"scale-{i:03d}" for i in range(n_nodes)]
    t0 = time.monotonic()
    kubeconfigs = {}
    for name in names:
        api.create({"apiVersion": "v1", "kind": "Node", "metadata": {
            "name": name, "labels": {"kubernetes.io/hostname": name}}, "spec": {}})
        kubeconfigs[name] = str(node_kubeconfig(cluster, work, name))
    common.log(f"  {n_nodes} nodes in {time.monotonic() - t0:.1f}s")
    per = -(-n_nodes // n_workers)
    specs = []
    for w in range(n_workers):
        sim = SimNode.create(work / f"sys-w{w}", SimConfig(num_devices=DEVICES, total_vfs=0,
                                                            uuid_seed=w))
        spec = {"sysfs_root": str(sim.root), "poll_interval": 5.0,
                "nodes": [[n, kubeconfigs[n]] for n in names[w * per:(w + 1) * per]]}
        path = work / f"worker-{w}.json"
        path.write_text(json.dumps(spec))
        specs.append(path)
    watch = common.SliceWatch(api, field_selector=f"spec.driver={common.DRIVER}")
    workers: list[common.Proc] = []
    sample_procs: list[common.Proc] = []
    progress: list[tuple[float, int]] = []
    try:
        common.log(f"scale: {n_workers} workers x {per} controllers")
        t_start = time.monotonic()
        for w, path in enumerate(specs):
            workers.append(common.Proc(f"worker-{w}", [sys.executable, "-m",
                                                       "tests.bench.bench_scale", "--worker",
                                                       str(path)],
                                       common.artifacts_dir() / "logs" / f"scale-w{w}.log"))
        want = n_nodes * DEVICES

        def published() -> bool:
            count = sum(len(s["spec"].get("devices") or []) for s in watch.slices()
                        if s["spec"].get("nodeName", "").startswith("scale-"))
            now = time.monotonic() - t_start
            if not progress or now - progress[-1][0] >= 1.0 or count == want:
                progress.append((now, count))
                if len(progress) % 5 == 0:
                    common.log(f"  {count}/{want} devices after {now:.0f}s")
            for p in workers:
                p.check()
            return count == want
        t_done = watch.wait(published, 600, f"{want} devices on {n_nodes} nodes")
        converge = t_done - t_start
        common.log(f"  converged in {converge:.1f}s")
        slices = len([s for s in watch.slices() if s["spec"]["nodeName"].startswith("scale-")])
        # memory: sample processes, side by side, while the 500 nodes keep running
        sample_nodes = cluster.create_nodes(2 * samples, prefix="sample")
        for i in range(samples):
            p, _ = start_ours(cluster, sample_nodes[i], work, DEVICES)
            sample_procs.append(p)
            sample_procs.append(start_example(cluster, sample_nodes[samples + i], work,
                                              DEVICES))
        for p in sample_procs:
            driver = common.DRIVER if p.name.startswith("ours") else EXAMPLE_DRIVER
            node = p.name.split("-", 1)[1]
            # one node's slices, selected by the API server: a LIST of all 500 nodes' slices
            # (3 MB) every 0.5 s broke off mid-answer on a loaded machine (load 36)
            wait_until(lambda d=driver, n=node: sum(
                len(s["spec"].get("devices") or []) for s in api.list(
                    common.RES, "ResourceSlice",
                    field_selector=f"spec.nodeName={n},spec.driver={d}")) == DEVICES,
                90, f"sample {p.name}", interval=0.5)
        time.sleep(5)      # a few polls in steady state
        idle_before = watch.count(0)
        time.sleep(10)
        idle_events = watch.count(0) - idle_before
        rows = []
        for p in sample_procs + workers:
            p.rss_kib()
            kind = (f"worker ({per} nodes)" if p.name.startswith("worker") else
                    "ours" if p.name.startswith("ours") else "dra-example-driver")
            rows.append({"process": kind, "rss_mib": p.rss_kib() / 1024,
                         "peak_mib": p.peak_kib / 1024})
    finally:
        for p in sample_procs + workers:
            p.stop()
        watch.close()
    first = next((t for t, n in progress if n), None)
    return {"nodes": n_nodes, "devices_per_node": DEVICES, "workers": n_workers,
            "converge_s": converge, "first_device_s": first, "slices": slices, "progress": progress,
            "writes_in_10s_after_convergence": idle_events, "rss": rows}


# ------------------------------------------------------------------------------- scheduler view
def seed_layout(slices: list[dict], driver: str, exact: bool = False) -> list[dict]:
    """The same devices, one slice and one pool per device (the seed's layout). The seed names
    the pool after the device (`mock0`), so every node has the same pool names and the
    scheduler, which tracks allocated devices by (driver, pool, device), sees one `mock0` in
    the whole cluster: `exact=True` keeps that; else pools are `<node>-<device>`."""
    out = []
    for s in slices:
        node = s["spec"]["nodeName"]
        for d in s["spec"].get("devices") or []:
            out.append({"apiVersion": common.RES, "kind": "ResourceSlice",
                        "metadata": {"name": f"{node}-{d['name']}"},
                        "spec": {"driver": driver, "nodeName": node,
                                 "pool": {"name": d["name"] if exact else f"{node}-{d['name']}",
                                          "generation": 1,
                                          "resourceSliceCount": 1},
                                 "devices": [json.loads(json.dumps(d).replace(
                                     common.DRIVER, driver))]}})
    return out


def layouts(nodes: list[str], work: Path) -> dict[str, tuple[str, list[dict]]]:
    from mock_accel.sim import SimConfig, SimNode
    from mock_accel.slices import build_slices
    sim = SimNode.create(work / "sys-sched", SimConfig(num_devices=DEVICES, total_vfs=0))
    inventory = sim.discover()
    ours, plain = [], []
    for node in nodes:
        ours += build_slices(node, inventory, driver=common.DRIVER)
        plain += build_slices(node, inventory, driver=NOCOUNTER_DRIVER, partitionable=False)
    for s in ours + plain:
        s["spec"]["pool"]["generation"] = 1
    return {"ours (sharedCounters)": (common.DRIVER, ours),
            "ours --no-partitionable": (NOCOUNTER_DRIVER, plain),
            "seed layout (1 slice/device)": (SEED_DRIVER, seed_layout(plain, SEED_DRIVER)),
            "seed layout, seed's pool names (= device name)":
                (SEED_EXACT_DRIVER, seed_layout(plain, SEED_EXACT_DRIVER, exact=True))}


_clients = threading.local()


def ungate(cluster: Cluster, name: str, ns: str) -> None:
    """Remove a pod's scheduling gates, with this thread's own admin client."""
    if getattr(_clients, "api", None) is None:
        from mock_accel.kube import KubeClient
        admin = cluster.certs["admin"]
        _clients.api = KubeClient(cluster.server, ca_file=cluster.pki.ca.cert,
                                  cert_file=admin.cert, key_file=admin.key, timeout=30)
    _clients.api.patch("v1", "Pod", name, {"spec": {"schedulingGates": None}}, ns)


_BOUND = re.compile(r'^I\d{4} (\d\d):(\d\d):(\d\d\.\d+) .*"Successfully bound pod to node" '
                    r'pod="([^"]+)"', re.M)


def bind_span(cluster: Cluster, prefix: str) -> float | None:
    """Seconds between the scheduler's first and last "Successfully bound" of these pods."""
    times = []
    try:
        text = (cluster.log_dir / "kube-scheduler.log").read_text(errors="replace")
    except OSError:
        return None
    for h, m, sec, pod in _BOUND.findall(text):
        if pod.startswith(prefix):
            times.append(int(h) * 3600 + int(m) * 60 + float(sec))
    return max(times) - min(times) if len(times) > 1 else None


def schedule(cluster: Cluster, work: Path, n_nodes: int, n_claims: int) -> list[dict]:
    api = cluster.api
    ns = cluster.create_namespace("bench-sched")   # before the nodes' heartbeats load the API
    nodes = cluster.create_nodes(n_nodes, prefix="sched")
    rows = []
    for label, (driver, slices) in layouts(nodes, work).items():
        cls = f"sched-{driver.split('.')[0]}"
        api.create({"apiVersion": common.RES, "kind": "DeviceClass", "metadata": {"name": cls},
                    "spec": {"selectors": [{"cel": {
                        "expression": f'device.driver == "{driver}"'}}]}})
        for s in slices:
            api.create(s)
        time.sleep(3)                   # the scheduler's informers see every slice
        common.log(f"scheduler: {n_claims} claims against {label} ({len(slices)} slices)")
        t_c = time.monotonic()
        for i in range(n_claims):       # gated pods: the clock starts when the gates go
            name = f"{cls}-{i}"
            api.create({"apiVersion": common.RES, "kind": "ResourceClaim",
                        "metadata": {"name": name}, "spec": {"devices": {"requests": [
                            {"name": "accel", "exactly": {"deviceClassName": cls}}]}}}, ns)
            api.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {
                "schedulingGates": [{"name": "bench.example.com/hold"}],
                "containers": [{"name": "main", "image": common.PAUSE,
                                "resources": {"claims": [{"name": "accel"}]}}],
                "resourceClaims": [{"name": "accel", "resourceClaimName": name}],
                "terminationGracePeriodSeconds": 0}}, ns)
        t0 = time.monotonic()
        with ThreadPoolExecutor(8) as pool:   # a backlog at once: 8 clients remove the gates
            names = [f"{cls}-{i}" for i in range(n_claims)]
            list(pool.map(lambda name: ungate(cluster, name, ns), names))
        t_created = time.monotonic()
        common.log(f"  created in {t0 - t_c:.1f}s, gates removed in {t_created - t0:.1f}s")

        def allocated(prefix: str = cls + "-") -> int:
            items = api.list(common.RES, "ResourceClaim", ns)
            return sum(1 for c in items if c["metadata"]["name"].startswith(prefix)
                       and (c.get("status") or {}).get("allocation"))

        done, last, t_last = 0, -1, time.monotonic()
        while done < n_claims:           # until all are allocated or nothing moves for 20 s
            done = allocated()
            if done != last:
                last, t_last = done, time.monotonic()
            elif time.monotonic() - t_last > 20:
                common.log(f"  stalled at {done}/{n_claims} allocated")
                break
            time.sleep(0.2)
        t_done = t_last
        bound = sum(1 for p in api.list("v1", "Pod", ns)
                    if p["spec"].get("nodeName") and p["metadata"]["name"].startswith(cls))
        span = bind_span(cluster, f"{ns}/{cls}-")
        rows.append({"layout": label, "slices": len(slices), "claims": n_claims,
                     "allocated": done, "bound pods": bound, "ungate s": t_created - t0,
                     "ungated -> last allocation s": t_done - t0,
                     "claims/s": done / (t_done - t0),
                     "scheduler log: first -> last bind s": span})
        for i in range(n_claims):       # clean up before the next layout
            api.delete("v1", "Pod", f"{cls}-{i}", ns, grace_period=0)
            api.delete(common.RES, "ResourceClaim", f"{cls}-{i}", ns)
        wait_until(lambda prefix=cls + "-": not [
            c for c in api.list(common.RES, "ResourceClaim", ns)
            if c["metadata"]["name"].startswith(prefix)],
                        120, "claims gone", interval=0.5)
        for s in slices:
            api.delete(common.RES, "ResourceSlice", s["metadata"]["name"])
    return rows


def main() -> dict:
    quick = common.quick()
    n_nodes, n_workers, samples = (20, 2, 2) if quick else (500, 10, 5)
    sched_nodes, n_claims = (2, 20) if quick else (13, 200)
    work = Path(tempfile.mkdtemp(prefix="ma-s-", dir="/tmp"))
    result: dict = {"machine": common.machine(),
                    "example": {"module": peers.EXAMPLE_MODULE,
                                "version": peers.pinned_version(peers.EXAMPLE_MODULE)}}
    try:
        with Cluster(artifacts=common.artifacts_dir() / "cluster") as cluster:
            sc = scale(cluster, work, n_nodes, n_workers, samples)
            rss_cp = cluster.peak_memory_kib()
            sched = schedule(cluster, work, sched_nodes, n_claims)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    common.table([{"nodes": sc["nodes"], "devices": sc["nodes"] * DEVICES,
                   "slices": sc["slices"], "workers": sc["workers"],
                   "first device s": sc["first_device_s"], "converge s": sc["converge_s"],
                   "stored writes in 10 s after": sc["writes_in_10s_after_convergence"]}],
                 f"publish for {n_nodes} nodes x {DEVICES} devices (goal <= 30 s)")
    import pandas as pd
    frame = pd.DataFrame(sc["rss"]).groupby("process").agg(
        n=("rss_mib", "size"), rss_mib_median=("rss_mib", "median"),
        peak_mib_max=("peak_mib", "max")).reset_index()
    rss_rows = frame.to_dict("records")
    common.table(rss_rows, "memory per process (goal <= 150 MB per process)")
    common.table(sched, "kube-scheduler: claims allocated per slice layout")

    fig, (a1, a2, a3) = common.new_figure(3, width=5)
    xs, ys = zip(*sc["progress"], strict=True) if sc["progress"] else ((), ())
    a1.plot(xs, ys)
    a1.axvline(30, color="g", ls="--", label="goal 30 s")
    a1.set_xlabel("seconds since the workers started")
    a1.set_ylabel("devices published")
    a1.set_title(f"{n_nodes} nodes x {DEVICES} devices")
    a1.legend()
    a2.bar([r["process"].replace(" (", "\n(") for r in rss_rows],
           [r["rss_mib_median"] for r in rss_rows], color="tab:blue")
    a2.axhline(150 / 1.048576, color="g", ls="--", label="150 MB")
    a2.set_ylabel("RSS MiB (median)")
    a2.set_title("memory per process")
    a2.legend()
    short = [r["layout"].replace("seed layout, seed's pool names (= device name)",
                                 "seed layout,\nseed's pool names").replace(" (", "\n(")
             .replace(" --", "\n--") for r in sched]
    a3.bar(short, [r["ungated -> last allocation s"] for r in sched], color="tab:purple")
    for x, r in enumerate(sched):
        a3.text(x, r["ungated -> last allocation s"], f"{r['allocated']}/{r['claims']}",
                ha="center", va="bottom", fontsize=8)
    a3.set_ylabel("seconds")
    a3.set_title(f"{n_claims} claims allocated by kube-scheduler")
    a3.tick_params(axis="x", labelsize=7)
    result.update({"scale": sc, "memory": rss_rows, "scheduler": sched,
                   "control_plane_peak_kib": rss_cp,
                   "plot": str(common.save_figure(fig, "scale"))})
    common.write_result("scale", result)
    return result


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        sys.exit(worker(sys.argv[2]))
    main()

"""Publishing: start-up to first slice, device change -> ResourceSlice updated (p50/p99), API
writes on an idle 16-device node, ResourceSlices per node -- ours and dra-example-driver's
kubelet plugin side by side on one local control plane, each on its own node with that node's
credentials.

- ours: `mock-accel controller` (a process) on a simulated node of 16 PFs (no VFs);
- dra-example-driver: its kubelet plugin (`gpu` profile, 16 simulated GPUs), built from the Go
  module proxy by tests/bench/peers.py;
- the seed system: its driver is not on the Go module proxy, so not run. Its documented
  behaviour (one slice per device, every slice rewritten every 30 s) is shown as a reference
  line and labelled "documented, not measured".

Device changes (ours only: dra-example-driver's inventory is fixed when it starts) are, in
turn, a PF hot-added, a fault injected, the fault cleared and the PF removed on the simulated
node; the time is from the sysfs write to the watch event that shows the change (the
controller wakes on the node's change events: inotify on the simulated node; its periodic
rescan, every 10 s, is only the safety net). Writes are
counted two ways during the idle window: stored changes (watch events per driver) and the API
server's own request counter for resourceslices (all writers together; nothing else writes
slices during the window).

Run: `python3 -m tests.bench.bench_slices` (BENCH_QUICK=1: fewer samples, 20 s idle window).
"""
from __future__ import annotations

import random
import shutil
import tempfile
import time
from pathlib import Path

from mock_accel.cluster import Cluster
from mock_accel.sim import SimConfig, SimNode
from tests.bench import common, peers

EXAMPLE_DRIVER = "gpu.example.com"
VF_MODE = "sharedCounters, 4 PFs x 3 VFs"
SEED_RESCAN_S = 30.0


def start_ours(cluster: Cluster, node: str, work: Path, devices: int, *extra: str,
               partitionable: bool = True,
               config: SimConfig | None = None) -> tuple[common.Proc, SimNode]:
    sim = SimNode.create(work / f"sys-{node}", config or common.sim_config(
        num_devices=devices, total_vfs=0, numa_nodes=2))
    argv = common.mock_accel_argv("controller", "--node-name", node, "--sysfs-root",
                                  str(sim.root), "--kubeconfig",
                                  str(cluster.nodes[node].kubeconfig), "-v", "1", *extra)
    if not partitionable:
        argv.append("--no-partitionable")
    proc = common.Proc(f"ours-{node}", argv, common.artifacts_dir() / "logs" / f"{node}.log")
    return proc, sim


def start_example(cluster: Cluster, node: str, work: Path, devices: int,
                  *extra: str) -> common.Proc:
    binary = peers.bin_path(peers.EXAMPLE_MODULE, "dra-example-kubeletplugin")
    if not binary.exists():
        raise SystemExit(f"{binary} is missing: run `python3 -m tests.bench.peers` first")
    base = work / node
    for sub in ("registry", "plugins", "cdi"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    argv = [str(binary), "--node-name", node, "--kubeconfig",
            str(cluster.nodes[node].kubeconfig), "--num-devices", str(devices),
            "--device-profile", "gpu", "--cdi-root", str(base / "cdi"),
            "--kubelet-registrar-directory-path", str(base / "registry"),
            "--kubelet-plugins-directory-path", str(base / "plugins"), *extra]
    return common.Proc(f"example-{node}", argv, common.artifacts_dir() / "logs" / f"{node}.log")


def change_steps(sim: SimNode, watch: common.SliceWatch, node: str, pf: int) -> list:
    """(kind, action, seen) for one PF: hot-add, fault, fault cleared, removal."""
    name = f"mock{pf}"

    def devices() -> dict:
        return watch.devices(common.DRIVER, node)
    return [
        ("add", lambda: sim.new_device(pf), lambda: name in devices()),
        ("fault", lambda: sim.inject_fault(name),
         lambda: bool(devices().get(name, {}).get("taints"))),
        ("clear", lambda: sim.inject_fault(name, False),
         lambda: name in devices() and not devices()[name].get("taints")),
        ("remove", lambda: sim.del_device(pf), lambda: name not in devices()),
    ]


def count_devices(watch: common.SliceWatch, driver: str, node: str) -> int:
    return len(watch.devices(driver, node))


def main() -> dict:
    quick = common.quick()
    changes = 4 if quick else 40          # device changes per kind (add, fault, clear, remove)
    idle_s = 20.0 if quick else 300.0
    work = Path(tempfile.mkdtemp(prefix="ma-b-", dir="/tmp"))
    procs: list[common.Proc] = []
    result: dict = {"machine": common.machine(), "seed": peers.seed_status(),
                    "example": {"module": peers.EXAMPLE_MODULE,
                                "version": peers.pinned_version(peers.EXAMPLE_MODULE)}}
    common.log(f"seed driver: {result['seed']['detail']}")
    with Cluster(artifacts=common.artifacts_dir() / "cluster") as cluster:
        watch = common.SliceWatch(cluster.api)
        try:
            nodes = cluster.create_nodes(7, prefix="bench")
            ours16, ex16, ours128, ex128, ours16np, ours128np, ours16vf = nodes

            # -- start-up: process start -> all 16 devices visible, both at once
            common.log("start-up: both drivers on a 16-device node each")
            t0 = time.monotonic()
            proc, sim = start_ours(cluster, ours16, work, 16)
            procs.append(proc)
            procs.append(start_example(cluster, ex16, work, 16))
            t_ours = watch.wait(lambda: count_devices(watch, common.DRIVER, ours16) == 16, 60,
                                "our 16 devices")
            t_ex = watch.wait(lambda: count_devices(watch, EXAMPLE_DRIVER, ex16) == 16, 60,
                              "dra-example-driver's 16 devices")
            startup = {"ours": t_ours - t0, "dra-example-driver": t_ex - t0}

            # -- layout: slices per node (16 and 128 devices; ours with and without counters)
            common.log("layout: 128-device nodes, and ours without sharedCounters")
            for node, devices, partitionable in ((ours128, 128, True), (ours16np, 16, False),
                                                 (ours128np, 128, False)):
                p, _ = start_ours(cluster, node, work, devices, partitionable=partitionable)
                procs.append(p)
            # SR-IOV in use: 4 PFs with 3 VFs each; v1 keeps counter sets in a slice of their own
            p, _ = start_ours(cluster, ours16vf, work, 16, config=common.sim_config(
                num_devices=4, total_vfs=3, num_vfs=3, numa_nodes=2))
            procs.append(p)
            procs.append(start_example(cluster, ex128, work, 128))
            for node, driver, n in ((ours128, common.DRIVER, 128), (ours16np, common.DRIVER, 16),
                                    (ours128np, common.DRIVER, 128),
                                    (ours16vf, common.DRIVER, 16),
                                    (ex128, EXAMPLE_DRIVER, 128)):
                watch.wait(lambda node=node, driver=driver, n=n:
                           count_devices(watch, driver, node) == n, 90, f"{n} devices on {node}")
            time.sleep(2)   # let every publisher finish its first round
            layout = []
            for system, node, devices, mode in (
                    ("ours", ours16, 16, "sharedCounters (default)"),
                    ("ours", ours16np, 16, "--no-partitionable"),
                    ("ours", ours128, 128, "sharedCounters (default)"),
                    ("ours", ours128np, 128, "--no-partitionable"),
                    ("ours", ours16vf, 16, VF_MODE),
                    ("dra-example-driver", ex16, 16, "gpu profile"),
                    ("dra-example-driver", ex128, 128, "gpu profile")):
                driver = common.DRIVER if system == "ours" else EXAMPLE_DRIVER
                layout.append({"system": system, "devices": devices, "mode": mode,
                               "slices": len(watch.slices(driver, node)), "measured": True})
            for devices in (16, 128):
                layout.append({"system": "seed (documented, not measured)", "devices": devices,
                               "mode": "one slice and pool per device", "slices": devices,
                               "measured": False})
            for p in procs[2:]:
                p.rss_kib()
                p.stop()
            del procs[2:]

            # -- idle writes on the 16-device nodes
            common.log(f"idle: counting writes for {idle_s:g}s")
            time.sleep(1)
            before = common.request_counts(cluster.api)
            t_idle = time.monotonic()
            time.sleep(idle_s)
            after = common.request_counts(cluster.api)
            minutes = (time.monotonic() - t_idle) / 60
            idle = [
                {"system": "ours", "stored writes": watch.count(t_idle, common.DRIVER, ours16),
                 "measured": True},
                {"system": "dra-example-driver",
                 "stored writes": watch.count(t_idle, EXAMPLE_DRIVER, ex16), "measured": True},
            ]
            for row in idle:
                row["writes/min"] = row["stored writes"] / minutes
            idle.append({"system": "seed (documented, not measured)",
                         "stored writes": None, "measured": False,
                         "writes/min": 16 * 60 / SEED_RESCAN_S})
            api_requests = {"writes (all slice writers)": common.writes(before, after),
                            "GET/LIST": int(sum(after.get(v, 0) - before.get(v, 0)
                                                for v in ("GET", "LIST"))),
                            "WATCH (incl. this benchmark's, renewed every 5 s)": int(
                                after.get("WATCH", 0) - before.get("WATCH", 0)),
                            "minutes": minutes}

            # -- device change -> slice on the API server (ours)
            common.log(f"device changes: {changes} of each kind on our node")
            rng = random.Random(7)
            latencies: dict[str, list[float]] = {"add": [], "fault": [], "clear": [],
                                                 "remove": []}
            for i in range(changes):
                pf = 100 + i
                name = f"mock{pf}"
                steps = change_steps(sim, watch, ours16, pf)
                for kind, act, seen in steps:
                    time.sleep(rng.uniform(0.05, 0.6))   # any phase of the safety net
                    t0 = time.monotonic()
                    act()
                    latencies[kind].append(watch.wait(seen, 30, f"{kind} {name}") - t0)
            for p in procs:
                p.rss_kib()
            rss = {"ours": procs[0].peak_kib, "dra-example-driver": procs[1].peak_kib}
        finally:
            for p in procs:
                p.stop()
            watch.close()
            shutil.rmtree(work, ignore_errors=True)

    every = [v for values in latencies.values() for v in values]
    change_rows = [{"change": kind, **common.summary(values)}
                   for kind, values in latencies.items()]
    change_rows.append({"change": "all", **common.summary(every)})
    common.table(change_rows, "ours: device change -> ResourceSlice updated (s); goal p50 <= "
                 "0.05 s, p99 <= 0.2 s; the seed polls every 30 s (documented: up to 30 s, not "
                 "measured)")
    common.table(idle, f"idle 16-device node, {minutes:.1f} min: stored ResourceSlice writes "
                 "(goal 0)")
    common.table([api_requests], "API server's resourceslices request counter over the window")
    common.table(layout, "ResourceSlices per node (goal 1 for <= 128 devices)")
    startup_rows = [{"system": k, "seconds": v, "peak RSS MiB": rss[k] / 1024}
                    for k, v in startup.items()]
    common.table(startup_rows, "process start -> 16 devices published; peak RSS")

    fig, (a1, a2, a3) = common.new_figure(3, width=5)
    a1.boxplot([latencies[k] for k in latencies], tick_labels=list(latencies))
    a1.axhline(0.05, color="g", ls="--", label="goal p50 50 ms")
    a1.axhline(0.2, color="r", ls=":", label="goal p99 200 ms")
    a1.set_ylabel("seconds")
    a1.set_title("ours: device change -> slice updated")
    a1.legend()
    a2.bar([r["system"].replace(" (documented, not measured)", "\n(documented,\nnot measured)")
            for r in idle], [r["writes/min"] for r in idle],
           color=["tab:blue", "tab:orange", "lightgray"], hatch=["", "", "//"])
    a2.set_title(f"idle 16-device node: writes/min ({minutes:.1f} min)")
    short = {"sharedCounters (default)": "counters", "--no-partitionable": "no counters",
             VF_MODE: "4 PF x 3 VF",
             "gpu profile": "gpu", "one slice and pool per device": "documented"}
    labels = [f"{r['system'].split(' ')[0]} {r['devices']} dev, {short[r['mode']]}"
              for r in layout]
    a3.barh(labels, [r["slices"] for r in layout],
            color=["tab:blue" if r["system"] == "ours" else "tab:orange" if r["measured"]
                   else "lightgray" for r in layout])
    for y, r in enumerate(layout):
        a3.text(r["slices"], y, f" {r['slices']}", va="center", fontsize=8)
    a3.set_xscale("log")
    a3.invert_yaxis()
    a3.set_title("ResourceSlices per node (goal 1)")
    a3.tick_params(axis="y", labelsize=8)
    for x, r in enumerate(idle):
        a2.text(x, r["writes/min"], f"{r['writes/min']:.3g}", ha="center", va="bottom")
    result.update({
        "change_latency_s": change_rows, "change_samples": latencies,
        "idle": idle, "idle_api_requests": api_requests, "layout": layout,
        "startup_s": startup, "peak_rss_kib": rss,
        "plot": str(common.save_figure(fig, "slices")),
    })
    common.write_result("slices", result)
    return result


if __name__ == "__main__":
    main()

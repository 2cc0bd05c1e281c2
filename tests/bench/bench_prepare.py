"""NodePrepareResources / NodeUnprepareResources: latency of one claim (p50/p99) and the time
for 100 concurrent claims -- our node agent vs dra-example-driver's kubelet plugin, both local
processes with their node's credentials, both driven by the same kubelet emulator
(mock_accel.kubelet, real gRPC on unix sockets), on claims the real scheduler allocated
against each driver's own slices.

Concurrency is the kubelet's: one call per pod (here: per claim), 100 calls in flight at once.
A second node of ours with 16 devices (1-claim latency only) shows how prepare scales with
the node's inventory. The systems are measured in turns (ours, theirs, ours, ...) so that the
machine's noise falls on both. dra-example-driver runs twice: with its defaults (client-side
API rate limit of 5 QPS, burst 10 -- it reads every claim from the API server) and with that
limit raised to 1000, so the figures show what is the limiter and what is the code.

Run: `python3 -m tests.bench.bench_prepare` (BENCH_QUICK=1: 10 claims, fewer rounds).
"""
from __future__ import annotations

import re
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mock_accel.cluster import Cluster
from mock_accel.kubelet import KubeletEmulator
from tests.bench import common, peers
from tests.bench.bench_slices import EXAMPLE_DRIVER, start_example, start_ours


class System:
    def __init__(self, label: str, driver: str, node: str, registry: Path, procs,
                 devices: int, concurrent: bool = True):
        self.label, self.driver, self.node, self.registry = label, driver, node, registry
        self.procs, self.devices, self.concurrent = procs, devices, concurrent
        self.kubelet = KubeletEmulator(registry, timeout=180)
        self.plugin = None
        self.device_class = "bench-" + re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")

    def register(self) -> None:
        socket = self.kubelet.wait_for_socket(timeout=60)
        self.plugin = self.kubelet.register(socket)


def start_agent(cluster: Cluster, node: str, sim, work: Path, tag: str) -> common.Proc:
    return common.Proc(f"{tag}-agent", common.mock_accel_argv(
        "node-agent", "--node-name", node, "--sysfs-root", str(sim.root),
        "--kubeconfig", str(cluster.nodes[node].kubeconfig),
        "--plugin-socket-dir", str(work / tag / "plugin"),
        "--registry-dir", str(work / tag / "registry"),
        "--cdi-dir", str(work / tag / "cdi"), "--metrics-port", "0", "-v", "1"),
        common.artifacts_dir() / "logs" / f"{tag}-agent.log")


def create_class(api, system: System) -> None:
    api.create({"apiVersion": common.RES, "kind": "DeviceClass",
                "metadata": {"name": system.device_class},
                "spec": {"selectors": [{"cel": {
                    "expression": f'device.driver == "{system.driver}"'}}]}})


def create_claims(api, ns: str, system: System, prefix: str, count: int) -> list[tuple]:
    """Claims + pods pinned to the system's node; waits for the scheduler's allocations."""
    names = [f"{prefix}-{i}" for i in range(count)]
    for name in names:
        api.create({"apiVersion": common.RES, "kind": "ResourceClaim",
                    "metadata": {"name": name},
                    "spec": {"devices": {"requests": [{"name": "accel", "exactly": {
                        "deviceClassName": system.device_class}}]}}}, ns)
        api.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {
            "containers": [{"name": "main", "image": common.PAUSE,
                            "resources": {"claims": [{"name": "accel"}]}}],
            "resourceClaims": [{"name": "accel", "resourceClaimName": name}],
            "terminationGracePeriodSeconds": 0,
            "nodeSelector": {"kubernetes.io/hostname": system.node}}}, ns)
    refs = []
    for name in names:
        claim = api.wait_get(common.RES, "ResourceClaim", name, ns,
                             lambda c: (c.get("status") or {}).get("allocation"),
                             timeout=120, what=f"allocation of {name}")
        refs.append((ns, claim["metadata"]["uid"], name))
    return refs


def timed(fn, *args) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def check(answer: dict, what: str) -> None:
    for uid, value in answer.items():
        error = value if isinstance(value, str) else value.error
        if error:
            raise RuntimeError(f"{what}: claim {uid}: {error}")


def single(system: System, ref: tuple, rounds: int, out: dict) -> None:
    for _ in range(rounds):
        seconds, answer = timed(system.plugin.prepare, [ref])
        check(answer, f"{system.label} prepare")
        out["prepare"].append(seconds)
        seconds, answer = timed(system.plugin.unprepare, [ref])
        check(answer, f"{system.label} unprepare")
        out["unprepare"].append(seconds)


def burst(system: System, refs: list[tuple], out: dict) -> None:
    with ThreadPoolExecutor(len(refs)) as pool:
        t0 = time.perf_counter()
        answers = list(pool.map(lambda r: system.plugin.prepare([r]), refs))
        out["prepare"].append(time.perf_counter() - t0)
        for a in answers:
            check(a, f"{system.label} concurrent prepare")
        t0 = time.perf_counter()
        answers = list(pool.map(lambda r: system.plugin.unprepare([r]), refs))
        out["unprepare"].append(time.perf_counter() - t0)
        for a in answers:
            check(a, f"{system.label} concurrent unprepare")


SMALL = 16     # devices on the second node of ours: does prepare depend on the inventory's size?


def main() -> dict:
    quick = common.quick()
    n_burst = 10 if quick else 100
    single_rounds = 10 if quick else 100      # per turn; two turns per system
    burst_rounds = 1 if quick else 3
    devices = n_burst + 4
    work = Path(tempfile.mkdtemp(prefix="ma-p-", dir="/tmp"))
    procs: list[common.Proc] = []
    systems: list[System] = []
    result: dict = {"machine": common.machine(), "claims_concurrent": n_burst,
                    "example": {"module": peers.EXAMPLE_MODULE,
                                "version": peers.pinned_version(peers.EXAMPLE_MODULE)},
                    "seed": peers.seed_status()}
    with Cluster(artifacts=common.artifacts_dir() / "cluster") as cluster:
        api = cluster.api
        try:
            n_ours, n_ex, n_exq, n_small = cluster.create_nodes(4, prefix="prep")
            # ours: the controller publishes, the node agent prepares
            ctl, sim = start_ours(cluster, n_ours, work, devices, partitionable=False)
            agent = start_agent(cluster, n_ours, sim, work, "ours")
            ctl_small, sim_small = start_ours(cluster, n_small, work, SMALL,
                                              partitionable=False)
            agent_small = start_agent(cluster, n_small, sim_small, work, "ours-small")
            procs += [ctl, agent, ctl_small, agent_small]
            ex = start_example(cluster, n_ex, work, devices)
            exq = start_example(cluster, n_exq, work, devices, "--kube-api-qps", "1000",
                                "--kube-api-burst", "1000")
            procs += [ex, exq]
            systems = [
                System("ours", common.DRIVER, n_ours, work / "ours" / "registry", [agent],
                       devices),
                System("dra-example-driver", EXAMPLE_DRIVER, n_ex, work / n_ex / "registry",
                       [ex], devices),
                System("dra-example-driver qps=1000", EXAMPLE_DRIVER, n_exq,
                       work / n_exq / "registry", [exq], devices),
                System(f"ours, {SMALL}-device node", common.DRIVER, n_small,
                       work / "ours-small" / "registry", [agent_small], SMALL,
                       concurrent=False),
            ]
            ns = cluster.create_namespace("bench-prepare")
            for system in systems:
                create_class(api, system)
                system.register()
            # every slice published before the scheduler sees claims
            api.wait_for(lambda: all(
                sum(len(s["spec"].get("devices") or []) for s in api.list(
                    common.RES, "ResourceSlice")
                    if s["spec"].get("nodeName") == sy.node) == sy.devices for sy in systems),
                timeout=90, what="every node's slices")
            common.log(f"allocating 1 + {n_burst} claims per system (real scheduler)")
            one = {s.label: create_claims(api, ns, s, f"one-{i}", 1)[0]
                   for i, s in enumerate(systems)}
            many = {s.label: create_claims(api, ns, s, f"many-{i}", n_burst)
                    for i, s in enumerate(systems) if s.concurrent}

            singles = {s.label: {"prepare": [], "unprepare": []} for s in systems}
            bursts = {s.label: {"prepare": [], "unprepare": []} for s in systems}
            for turn in range(2):
                for s in systems:
                    common.log(f"turn {turn + 1}: {s.label}: {single_rounds} x 1 claim")
                    single(s, one[s.label], single_rounds, singles[s.label])
            for turn in range(burst_rounds):
                for s in (s for s in systems if s.concurrent):
                    common.log(f"round {turn + 1}: {s.label}: {n_burst} concurrent claims")
                    burst(s, many[s.label], bursts[s.label])
            rss = {}
            for s in systems:
                for p in s.procs:
                    p.rss_kib()
                rss[s.label] = s.procs[0].peak_kib
        finally:
            for s in systems:
                s.kubelet.close()
            for p in procs:
                p.stop()
            shutil.rmtree(work, ignore_errors=True)

    rows = []
    for s in systems:
        row = {"system": s.label}
        for op in ("prepare", "unprepare"):
            stats = common.summary(singles[s.label][op])
            row[f"{op} p50 ms"] = stats["p50"] * 1e3
            row[f"{op} p99 ms"] = stats["p99"] * 1e3
        row["n"] = len(singles[s.label]["prepare"])
        rows.append(row)
    ours = rows[0]
    for row in rows[1:3]:
        row["p99 ratio ours/theirs (prepare)"] = common.ratio(ours["prepare p99 ms"],
                                                             row["prepare p99 ms"])
    common.table(rows, "1 claim: NodePrepareResources / NodeUnprepareResources latency "
                 "(goal: our p99 no worse than the Go reference)")
    burst_rows = []
    for s in (s for s in systems if s.concurrent):
        prep, unprep = bursts[s.label]["prepare"], bursts[s.label]["unprepare"]
        burst_rows.append({"system": s.label, "claims": n_burst,
                           "prepare s (median)": common.percentile(prep, 50),
                           "unprepare s (median)": common.percentile(unprep, 50),
                           "prepared claims/s": n_burst / common.percentile(prep, 50),
                           "rounds": len(prep), "node agent peak RSS MiB": rss[s.label] / 1024})
    common.table(burst_rows, f"{n_burst} concurrent claims, one call each "
                 "(goal: 100 claims in <= 1 s)")

    fig, (a1, a2) = common.new_figure(2, width=6)
    labels = [s.label.replace("dra-example-driver", "example").replace(" qps", "\nqps")
              .replace(", ", "\n").replace("-device node", " dev") for s in systems]
    for i, op in enumerate(("prepare", "unprepare")):
        a1.boxplot([[v * 1e3 for v in singles[s.label][op]] for s in systems],
                   positions=[j * 3 + i for j in range(len(systems))], widths=0.8,
                   tick_labels=[f"{lab}\n{op[:4]}." for lab in labels])
    a1.set_yscale("log")
    a1.set_ylabel("ms")
    a1.set_title("1 claim: latency per call")
    a1.tick_params(axis="x", labelsize=7)
    x = range(len(burst_rows))
    a2.bar([i - 0.2 for i in x], [r["prepare s (median)"] for r in burst_rows], 0.4,
           label="prepare")
    a2.bar([i + 0.2 for i in x], [r["unprepare s (median)"] for r in burst_rows], 0.4,
           label="unprepare")
    a2.axhline(1.0, color="g", ls="--", label="goal 1 s")
    a2.set_xticks(list(x), labels[:len(burst_rows)], fontsize=7)
    a2.set_ylabel("seconds")
    a2.set_title(f"{n_burst} concurrent claims")
    a2.legend()
    result.update({"single": rows, "single_samples_s": singles, "concurrent": burst_rows,
                   "concurrent_samples_s": bursts,
                   "plot": str(common.save_figure(fig, "prepare"))})
    common.write_result("prepare", result)
    return result


if __name__ == "__main__":
    main()

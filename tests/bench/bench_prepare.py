"""NodePrepareResources / NodeUnprepareResources: latency of one claim (p50/p99) and the time
for 100 concurrent claims -- our node agent vs dra-example-driver's kubelet plugin and the seed
system's Go driver (when a checkout of it is given: tests/bench/seed.py), all local processes
with their own credentials, all driven by the same kubelet emulator (mock_accel.kubelet, real
gRPC on unix sockets), on claims the real scheduler allocated against each driver's own slices.

Concurrency is the kubelet's: one call per pod (here: per claim), 100 calls in flight at once.
A second node of ours with 16 devices (1-claim latency only) shows how prepare scales with
the node's inventory. The systems are measured in turns (ours, theirs, ours, ...; at least 3
turns) so that the machine's noise falls on all of them; each turn gives a ratio, and the
results quote the median ratio and its spread over the turns. dra-example-driver runs twice:
with its defaults (client-side API rate limit of 5 QPS, burst 10 -- it reads every claim from
the API server) and with that limit raised to 1000, so the figures show what is the limiter and
what is the code. The seed keeps client-go's defaults (it has no flag for them); it frees
nothing on unprepare and keeps no checkpoint, so its unprepare is no work. Its slices are
counted and its writes watched over the whole run, and a few hot-added devices time its
publishing (it rescans every 30 s).

Run: `python3 -m tests.bench.bench_prepare` (BENCH_QUICK=1: 10 claims, fewer rounds).
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mock_accel.cluster import Cluster
from mock_accel.kubelet import KubeletEmulator
from tests.bench import common, peers, seed
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
REFERENCE = "dra-example-driver qps=1000"     # the goal's reference: the Go helper, unthrottled
SEED = "seed (mock-device)"


def turn_ratios(per_turn: dict, ours: str, theirs: str, op: str = "prepare") -> dict:
    """Ours / theirs per turn for p50 and p99 of `op`: the median ratio and its spread."""
    out = {}
    for q in (50, 99):
        values = [common.ratio(common.percentile(a[op], q), common.percentile(b[op], q))
                  for a, b in zip(per_turn[ours], per_turn[theirs], strict=True)]
        values = [v for v in values if v is not None]
        out[f"p{q}"] = {"median": common.percentile(values, 50), "min": min(values, default=None),
                        "max": max(values, default=None), "per turn": values}
    return out


def burst_ratios(bursts: dict, ours: str, theirs: str) -> dict:
    values = [common.ratio(a, b) for a, b in zip(bursts[ours]["prepare"],
                                                 bursts[theirs]["prepare"], strict=True)]
    values = [v for v in values if v is not None]
    return {"median": common.percentile(values, 50), "min": min(values, default=None),
            "max": max(values, default=None), "per round": values}


def seed_publishing(watch: common.SliceWatch, sim, node: str, first: int, count: int) -> list:
    """Seconds from a hot-added device on the seed's node to its slice (it rescans every 30 s)."""
    out = []
    for pf in range(first, first + count):
        sim.new_device(pf)
        t0 = time.monotonic()
        seen = watch.wait(lambda pf=pf: f"mock{pf}" in watch.devices(seed.SEED_DRIVER, node),
                          timeout=90, what=f"the seed's slice of mock{pf}")
        out.append(seen - t0)
        common.log(f"seed: mock{pf} published after {out[-1]:.1f} s")
    return out


def _plot(systems, singles: dict, burst_rows: list, n_burst: int) -> Path:
    fig, (a1, a2, a3) = common.new_figure(3, width=5)
    for s in systems:
        for ax, op in ((a1, "prepare"), (a2, "unprepare")):
            values = sorted(v * 1e3 for v in singles[s.label][op])
            if values:
                ax.plot(values, [(i + 1) / len(values) for i in range(len(values))],
                        label=s.label, drawstyle="steps-post")
    for ax, op in ((a1, "prepare"), (a2, "unprepare")):
        ax.set_xscale("log")
        ax.set_xlabel("ms")
        ax.set_ylabel("fraction of calls")
        ax.set_title(f"1 claim: {op} latency (CDF)")
        ax.grid(True, which="both", alpha=0.3)
    a1.legend(fontsize=7)
    labels = [r["system"].replace("dra-example-driver", "example").replace(" qps", "\nqps")
              for r in burst_rows]
    x = range(len(burst_rows))
    a3.bar([i - 0.2 for i in x], [r["prepare s (median)"] for r in burst_rows], 0.4,
           label="prepare")
    a3.bar([i + 0.2 for i in x], [r["unprepare s (median)"] for r in burst_rows], 0.4,
           label="unprepare")
    a3.set_xticks(list(x), labels, fontsize=7)
    a3.set_yscale("log")
    a3.set_ylabel("seconds (median of the rounds)")
    a3.set_title(f"{n_burst} concurrent claims")
    a3.legend()
    return common.save_figure(fig, "prepare")


def main() -> dict:
    quick = common.quick()
    n_burst = 10 if quick else 100
    single_rounds = 10 if quick else 100      # per turn
    turns = 3                                 # turns of 1-claim calls, rounds of bursts
    devices = n_burst + 4
    work = Path(tempfile.mkdtemp(prefix="ma-p-", dir="/tmp"))
    procs: list[common.Proc] = []
    systems: list[System] = []
    seed_problem = seed.missing()
    result: dict = {"machine": common.machine(), "claims_concurrent": n_burst,
                    "example": {"module": peers.EXAMPLE_MODULE,
                                "version": peers.pinned_version(peers.EXAMPLE_MODULE)},
                    "seed": peers.seed_status(), "turns": turns}
    common.log("seed: " + (seed_problem or result["seed"]["detail"]))
    with Cluster(artifacts=common.artifacts_dir() / "cluster") as cluster:
        api = cluster.api
        watch = None
        try:
            n_ours, n_ex, n_exq, n_small, n_seed = cluster.create_nodes(5, prefix="prep")
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
                System(REFERENCE, EXAMPLE_DRIVER, n_exq, work / n_exq / "registry", [exq],
                       devices),
                System(f"ours, {SMALL}-device node", common.DRIVER, n_small,
                       work / "ours-small" / "registry", [agent_small], SMALL,
                       concurrent=False),
            ]
            watch = common.SliceWatch(api)
            if seed_problem is None:
                seed_procs, sim_seed, seed_registry = seed.start(cluster, api, n_seed, work,
                                                                 devices)
                procs += seed_procs
                systems.append(System(SEED, seed.SEED_DRIVER, n_seed, seed_registry,
                                      seed_procs[1:], devices))
            ns = cluster.create_namespace("bench-prepare")
            for system in systems:
                create_class(api, system)
                system.register()
            # every slice published before the scheduler sees claims
            api.wait_for(lambda: all(
                sum(len(s["spec"].get("devices") or []) for s in api.list(
                    common.RES, "ResourceSlice")
                    if s["spec"].get("nodeName") == sy.node) == sy.devices for sy in systems),
                timeout=120, what="every node's slices")
            published, requests0 = time.monotonic(), common.request_counts(api)
            common.log(f"allocating 1 + {n_burst} claims per system (real scheduler)")
            one = {s.label: create_claims(api, ns, s, f"one-{i}", 1)[0]
                   for i, s in enumerate(systems)}
            many = {s.label: create_claims(api, ns, s, f"many-{i}", n_burst)
                    for i, s in enumerate(systems) if s.concurrent}

            singles = {s.label: {"prepare": [], "unprepare": []} for s in systems}
            per_turn: dict = {s.label: [] for s in systems}
            bursts = {s.label: {"prepare": [], "unprepare": []} for s in systems}
            loads = []
            for turn in range(turns):
                loads.append(round(os.getloadavg()[0], 2))
                for s in systems:
                    common.log(f"turn {turn + 1}: {s.label}: {single_rounds} x 1 claim "
                               f"(load {loads[-1]})")
                    mine = {"prepare": [], "unprepare": []}
                    single(s, one[s.label], single_rounds, mine)
                    per_turn[s.label].append(mine)
                    for op in mine:
                        singles[s.label][op] += mine[op]
                for s in (s for s in systems if s.concurrent):
                    common.log(f"round {turn + 1}: {s.label}: {n_burst} concurrent claims")
                    burst(s, many[s.label], bursts[s.label])
            rss = {}
            for s in systems:
                for p in s.procs:
                    p.rss_kib()
                rss[s.label] = s.procs[0].peak_kib
            minutes = (time.monotonic() - published) / 60
            slice_figures = {"minutes": minutes, "writes (all slice writers, API counter)":
                             common.writes(requests0, common.request_counts(api))}
            for label, node in (("ours", n_ours), (SEED, n_seed)):
                if label in rss:
                    stored = watch.count(published, node=node)
                    slice_figures[label] = {
                        "slices": len(watch.slices(node=node)), "devices": devices,
                        "stored writes": stored, "writes/min": stored / minutes}
            if seed_problem is None:
                slice_figures[SEED]["device added -> slice s"] = seed_publishing(
                    watch, sim_seed, n_seed, devices, 1 if quick else 3)
            result["slices"] = slice_figures
        finally:
            if watch is not None:
                watch.close()
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
    ratios = {label: turn_ratios(per_turn, "ours", label)
              for label in per_turn if label != "ours" and not label.startswith("ours")}
    for row in rows:
        if row["system"] in ratios:
            r = ratios[row["system"]]
            row["ours/theirs p50 (median of turns)"] = r["p50"]["median"]
            row["ours/theirs p99 (median of turns)"] = r["p99"]["median"]
    common.table(rows, "1 claim: NodePrepareResources / NodeUnprepareResources latency "
                 f"(goal: our p50 and p99 no worse than {REFERENCE}'s; {turns} turns)")
    burst_rows = []
    for s in (s for s in systems if s.concurrent):
        prep, unprep = bursts[s.label]["prepare"], bursts[s.label]["unprepare"]
        burst_rows.append({"system": s.label, "claims": n_burst,
                           "prepare s (median)": common.percentile(prep, 50),
                           "unprepare s (median)": common.percentile(unprep, 50),
                           "prepared claims/s": n_burst / common.percentile(prep, 50),
                           "rounds": len(prep), "node agent peak RSS MiB": rss[s.label] / 1024})
    concurrent_ratios = {r["system"]: burst_ratios(bursts, "ours", r["system"])
                         for r in burst_rows if r["system"] != "ours"}
    common.table(burst_rows, f"{n_burst} concurrent claims, one call each "
                 f"(goal: no slower than {REFERENCE})")
    for label, r in ratios.items():
        print(f"ours / {label}, prepare, median of {turns} turns [spread]: p50 "
              f"{r['p50']['median']:.2f} [{r['p50']['min']:.2f}-{r['p50']['max']:.2f}], p99 "
              f"{r['p99']['median']:.2f} [{r['p99']['min']:.2f}-{r['p99']['max']:.2f}]"
              + (f"; {n_burst} concurrent {concurrent_ratios[label]['median']:.2f} "
                 f"[{concurrent_ratios[label]['min']:.2f}-{concurrent_ratios[label]['max']:.2f}]"
                 if label in concurrent_ratios else ""), flush=True)
    print(f"load average per turn: {loads}", flush=True)
    result.update({"single": rows, "single_samples_s": singles, "per_turn_s": per_turn,
                   "ratios": ratios, "concurrent": burst_rows,
                   "concurrent_ratios": concurrent_ratios, "concurrent_samples_s": bursts,
                   "load_per_turn": loads, "reference": REFERENCE,
                   "plot": str(_plot(systems, singles, burst_rows, n_burst))})
    common.write_result("prepare", result)
    return result


if __name__ == "__main__":
    main()

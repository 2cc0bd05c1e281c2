"""Where the time of one NodePrepareResources goes, and of 100 concurrent ones: the disk's floor
(one fsync'd small-file write + rename + directory fsync), then our node agent as a real
process on a simulated node with timers around each step of a prepare (API GET of the claim,
sysfs reads and status writes, CDI spec write, checkpoint write, the fsyncs inside them, waits
for the state lock), driven over gRPC by the kubelet emulator; what the steps do not explain
is gRPC, threads and Python around them.

Claims are allocated by hand (a status patch, as tests/plugin does) to skip the scheduler: the
prepare path reads the claim and does not care who allocated it.

Run: `python3 -m tests.bench.profile_prepare [--rounds N] [--concurrent N] [--dir D]
[--baseline REV]`
(`make bench-profile`). The tables go to stdout, the figures to artifacts/bench/profile.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.bench import common

ROOT = Path(__file__).resolve().parents[2]
STEPS = {  # step -> (module, attribute path)
    "API GET of the claim": ("mock_accel.kube", "KubeClient.get"),
    "sysfs: read the claimed devices": ("mock_accel.claims", "read_claimed_devices"),
    "sysfs: status write (mark/free)": ("mock_accel.sysfs", "SysfsNode.write_attr"),
    "CDI spec write": ("mock_accel.cdi", "CdiRegistry.write_claim_spec"),
    "CDI spec remove": ("mock_accel.cdi", "CdiRegistry.remove_claim_spec"),
    "checkpoint write": ("mock_accel.state", "Checkpoint.save"),
    "of which fsync (the checkpoint's)": ("os", "fsync"),
    "prepare, in the agent": ("mock_accel.claims", "NodeClaims.prepare"),
    "unprepare, in the agent": ("mock_accel.claims", "NodeClaims.unprepare"),
}


def disk_floor(directory: Path, n: int = 200) -> dict:
    """p50/p99 (ms) on `directory`'s disk: an fsync'd 1 KiB write alone, and the durable
    replace (`atomic_write`: write + fsync + rename + directory fsync)."""
    from mock_accel.files import atomic_write
    directory.mkdir(parents=True, exist_ok=True)
    payload = b"x" * 1024
    bare, whole = [], []
    for i in range(n):
        t0 = time.perf_counter()
        fd = os.open(directory / f"bare-{i % 4}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, payload)
        os.fsync(fd)
        os.close(fd)
        bare.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        atomic_write(directory / "replaced.json", payload)
        whole.append(time.perf_counter() - t0)
    return {"dir": str(directory), "n": n,
            "write+fsync p50 ms": common.percentile(bare, 50) * 1e3,
            "write+fsync p99 ms": common.percentile(bare, 99) * 1e3,
            "atomic_write p50 ms": common.percentile(whole, 50) * 1e3,
            "atomic_write p99 ms": common.percentile(whole, 99) * 1e3}


# ------------------------------------------------------------------ inside the agent process
def _resolve(module: str, dotted: str):
    import importlib
    owner = importlib.import_module(module)
    *path, name = dotted.split(".")
    for part in path:
        owner = getattr(owner, part)
    return owner, name


def install_timers() -> dict[str, list[float]]:
    """Wrap every step of STEPS with a timer; step -> durations (seconds)."""
    samples: dict[str, list[float]] = {step: [] for step in STEPS}
    samples["state lock wait"] = []
    lock = threading.Lock()
    for step, (module, dotted) in STEPS.items():
        owner, name = _resolve(module, dotted)
        inner = getattr(owner, name)

        def timed(*args, _inner=inner, _step=step, **kwargs):
            t0 = time.perf_counter()
            try:
                return _inner(*args, **kwargs)
            finally:
                with lock:
                    samples[_step].append(time.perf_counter() - t0)
        setattr(owner, name, timed)
    _time_state_lock(samples, lock)
    return samples


def _time_state_lock(samples: dict, lock: threading.Lock) -> None:
    """Time the waits for NodeClaims' state lock (replaced after its __init__)."""
    from mock_accel import claims

    class TimedLock:
        def __init__(self):
            self._lock = threading.Lock()

        def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
            t0 = time.perf_counter()
            got = self._lock.acquire(blocking, timeout)
            with lock:
                samples["state lock wait"].append(time.perf_counter() - t0)
            return got

        def release(self) -> None:
            self._lock.release()

        __enter__ = acquire

        def __exit__(self, *exc) -> None:
            self._lock.release()

    init = claims.NodeClaims.__init__

    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self._state_lock = TimedLock()       # nobody holds it once __init__ returns
    claims.NodeClaims.__init__ = __init__


def agent_main(out: str, argv: list[str]) -> int:
    """`mock-accel node-agent argv` with timers; SIGUSR1 writes them to `out` and clears them."""
    samples = install_timers()

    def dump(*_):
        snapshot = {k: list(v) for k, v in samples.items()}
        for v in samples.values():
            v.clear()
        tmp = out + ".tmp"
        Path(tmp).write_text(json.dumps(snapshot))
        os.replace(tmp, out)
    signal.signal(signal.SIGUSR1, dump)
    import mock_accel
    print(f"mock_accel from {Path(mock_accel.__file__).parent}", file=sys.stderr, flush=True)
    from mock_accel.cli import main
    return main(argv)


# ------------------------------------------------------------------ the driver
def collect(proc: common.Proc, out: Path) -> dict[str, list[float]]:
    """The agent's timers since the last collect."""
    out.unlink(missing_ok=True)
    proc.popen.send_signal(signal.SIGUSR1)
    from mock_accel.wait import wait_until
    wait_until(out.exists, 10, "the agent's timers", interval=0.02)
    return json.loads(out.read_text())


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def allocate(api, ns: str, node: str, driver: str, names: list[str], devices: list[str]):
    refs = []
    for name, device in zip(names, devices, strict=True):
        api.create({"apiVersion": common.RES, "kind": "ResourceClaim",
                    "metadata": {"name": name}, "spec": {"devices": {"requests": [
                        {"name": "accel", "exactly": {"deviceClassName": "profile"}}]}}}, ns)
        api.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {
            "nodeName": node, "terminationGracePeriodSeconds": 0,   # the node may read it
            "containers": [{"name": "main", "image": common.PAUSE,
                            "resources": {"claims": [{"name": "accel"}]}}],
            "resourceClaims": [{"name": "accel", "resourceClaimName": name}]}}, ns)
        claim = api.patch(common.RES, "ResourceClaim", name, {"status": {"allocation": {
            "devices": {"results": [{"request": "accel", "driver": driver, "pool": node,
                                     "device": device}]}}}}, ns, subresource="status")
        refs.append((ns, claim["metadata"]["uid"], name))
    return refs


def breakdown(label: str, calls: int, wall: list[float], steps: dict) -> list[dict]:
    """Rows: per step, total ms per call and share of the client's wall time."""
    total = sum(wall)
    rows = [{"phase": label, "step": "client: whole call (gRPC)", "calls": len(wall),
             "ms per call": total / calls * 1e3, "p50 ms": common.percentile(wall, 50) * 1e3,
             "p99 ms": common.percentile(wall, 99) * 1e3, "share %": 100.0}]
    for step, values in steps.items():
        if not values:
            continue
        rows.append({"phase": label, "step": step, "calls": len(values),
                     "ms per call": sum(values) / calls * 1e3,
                     "p50 ms": common.percentile(values, 50) * 1e3,
                     "p99 ms": common.percentile(values, 99) * 1e3,
                     "share %": 100 * sum(values) / total if total else 0.0})
    return rows


def baseline_tree(rev: str, directory: Path) -> Path:
    """`mock_accel/` as of git revision `rev`, extracted under `directory` (its PYTHONPATH)."""
    tree = Path(tempfile.mkdtemp(prefix="baseline-", dir=directory))
    archive = subprocess.run(["git", "archive", rev, "mock_accel"], capture_output=True,
                             cwd=ROOT)
    if archive.returncode != 0:
        raise SystemExit(f"--baseline {rev}: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree


class Agent:
    """One node agent under timers (mock_accel from `tree`, else this checkout) on its node."""

    def __init__(self, label: str, tree: Path | None, cluster, node: str, work: Path,
                 concurrent: int):
        from mock_accel.kubelet import KubeletEmulator
        from mock_accel.sim import SimNode
        self.label, self.node, self.timers = label, node, work / "timers.json"
        self.sim = SimNode.create(work / "sys", common.sim_config(
            num_devices=concurrent + 1, total_vfs=0, numa_nodes=2))
        path = os.pathsep.join(filter(None, [str(tree) if tree else None, str(ROOT),
                                             os.environ.get("PYTHONPATH")]))
        self.proc = common.Proc(f"profile-agent-{label}", [
            sys.executable, "-P", "-m", "tests.bench.profile_prepare", "agent", str(self.timers),
            "--", "node-agent", "--node-name", node, "--sysfs-root", str(self.sim.root),
            "--kubeconfig", str(cluster.nodes[node].kubeconfig),
            "--plugin-socket-dir", str(work / "plugin"), "--registry-dir", str(work / "reg"),
            "--cdi-dir", str(work / "cdi"), "-v", "1"],
            common.artifacts_dir() / "logs" / f"profile-agent-{label}.log",
            env={"PYTHONPATH": path})
        self.kubelet = KubeletEmulator(work / "reg", timeout=180)
        self.plugin = self.kubelet.register(self.kubelet.wait_for_socket(timeout=60))
        want = f"mock_accel from {(tree or ROOT) / 'mock_accel'}\n"   # -P: not the cwd's
        if want not in self.proc.log_path.read_text():
            raise RuntimeError(f"{label}: the agent did not import {want.split()[-1]}; see "
                               f"{self.proc.log_path}")

    def close(self) -> None:
        self.kubelet.close()
        self.proc.stop()


def profile(agents: list[Agent], claims: list[tuple], rounds: int, turns: int,
            py_spy: Path | None) -> tuple[list[dict], dict]:
    """The 1-claim calls (each round on every agent in turn), then `turns` bursts on each
    agent in turn (claims: (one, many) per agent): rows, and each agent's burst walls."""
    concurrent = len(claims[0][1])
    for agent in agents:
        collect(agent.proc, agent.timers)
    cpu0 = [cpu_seconds(a.proc.pid) for a in agents]
    spy = None if py_spy is None else subprocess.Popen(
        ["py-spy", "record", "--pid", str(agents[-1].proc.pid), "--format", "raw", "--rate",
         "250", "--gil", "--output", str(py_spy)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    walls = [{"prepare": [], "unprepare": []} for _ in agents]
    for _ in range(rounds):
        for agent, (one, _many), wall in zip(agents, claims, walls, strict=True):
            for op in wall:
                wall[op].append(_timed(getattr(agent.plugin, op), one))
    if spy is not None:          # py-spy writes its samples when interrupted
        spy.send_signal(signal.SIGINT)
        spy.wait(60)
    single = [collect(a.proc, a.timers) for a in agents]
    cpu1 = [cpu_seconds(a.proc.pid) for a in agents]
    bursts = {a.label: {"prepare": [], "unprepare": []} for a in agents}
    calls: list[list[float]] = [[] for _ in agents]
    with ThreadPoolExecutor(concurrent) as pool:
        for _ in range(turns):
            for i, (agent, (_one, many)) in enumerate(zip(agents, claims, strict=True)):
                for op in ("prepare", "unprepare"):
                    fn = getattr(agent.plugin, op)
                    t0 = time.perf_counter()
                    calls[i] += list(pool.map(lambda r, fn=fn: _timed(fn, r), many))
                    bursts[agent.label][op].append(time.perf_counter() - t0)
    rows = []
    for i, agent in enumerate(agents):
        burst = collect(agent.proc, agent.timers)
        cpu2 = cpu_seconds(agent.proc.pid)
        got = breakdown("1 claim", rounds * 2, walls[i]["prepare"] + walls[i]["unprepare"],
                        single[i])
        got += breakdown(f"{concurrent} concurrent", concurrent * 2 * turns, calls[i], burst)
        cpu = {"1 claim": (cpu1[i] - cpu0[i]) / (rounds * 2) * 1e3,
               f"{concurrent} concurrent": (cpu2 - cpu1[i]) / (concurrent * 2 * turns) * 1e3}
        rows += [{"system": agent.label, **row, "agent CPU ms/call": cpu[row["phase"]]
                  if row["step"].startswith("client") else None} for row in got]
    return rows, bursts


def run(rounds: int, concurrent: int, directory: Path, py_spy: Path | None = None,
        baseline: str | None = None, turns: int = 1) -> dict:
    """Profile our agent (and the one of git revision `baseline`, in turns, same cluster)."""
    from mock_accel.cluster import Cluster
    floor = Path(tempfile.mkdtemp(prefix="floor-", dir=directory))
    try:
        result = {"machine": common.machine(), "disk": disk_floor(floor),
                  "load_1m_start": round(os.getloadavg()[0], 2)}
    finally:
        shutil.rmtree(floor, ignore_errors=True)
    common.table([result["disk"]], "the disk's floor (one durable small-file write)")
    work = Path(tempfile.mkdtemp(prefix="profile-", dir=directory))
    systems = [("ours", None)]
    if baseline:
        systems.insert(0, (f"baseline {baseline}", baseline_tree(baseline, work)))
    agents: list[Agent] = []
    with Cluster(artifacts=common.artifacts_dir() / "cluster-profile") as cluster:
        nodes = cluster.create_nodes(len(systems), prefix="prof")
        try:
            api = cluster.api
            api.create({"apiVersion": common.RES, "kind": "DeviceClass",
                        "metadata": {"name": "profile"}, "spec": {}})
            for i, ((label, tree), node) in enumerate(zip(systems, nodes, strict=True)):
                agents.append(Agent(label, tree, cluster, node, work / f"agent-{i}",
                                    concurrent))
            claims = []
            for i, agent in enumerate(agents):
                ns = cluster.create_namespace(f"profile-{i}")
                names = [d.name for d in agent.sim.discover()]
                (one,) = allocate(api, ns, agent.node, common.DRIVER, ["one"], names[:1])
                claims.append((one, allocate(api, ns, agent.node, common.DRIVER,
                                             [f"many-{i}" for i in range(concurrent)],
                                             names[1:concurrent + 1])))
            rows, bursts = profile(agents, claims, rounds, turns, py_spy)
        finally:
            for agent in agents:
                agent.close()
            shutil.rmtree(work, ignore_errors=True)
    result.update({"rows": rows, "burst_wall_s": bursts,
                   "load_1m_end": round(os.getloadavg()[0], 2)})
    common.table(rows, "where a prepare + unprepare spends its time (load "
                 f"{result['load_1m_start']:.2f} at the start, {os.getloadavg()[0]:.2f} now)")
    for label, walls in bursts.items():
        print(f"{label}: {concurrent} concurrent: prepare " + ", ".join(
              f"{w:.3f}" for w in walls["prepare"]) + " s; unprepare " + ", ".join(
              f"{w:.3f}" for w in walls["unprepare"]) + " s", flush=True)
    common.write_result("profile", result)
    return result


def _timed(fn, ref) -> float:
    t0 = time.perf_counter()
    answer = fn([ref])
    assert not any(getattr(a, "error", a) for a in answer.values()), answer
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["agent"]:
        return agent_main(argv[1], argv[3:])
    parser = argparse.ArgumentParser(prog="python3 -m tests.bench.profile_prepare",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100, help="1-claim calls of each kind")
    parser.add_argument("--concurrent", type=int, default=100, help="claims in flight at once")
    parser.add_argument("--dir", type=Path, default=Path("/tmp"),
                        help="where the agent's files go (its disk is what is measured)")
    parser.add_argument("--py-spy", type=Path, default=None, metavar="FILE",
                        help="also sample the agent's stacks during the 1-claim calls with "
                             "py-spy (pip install py-spy) into FILE (collapsed stacks)")
    parser.add_argument("--baseline", metavar="REV", default=None,
                        help="also profile the agent of git revision REV (its mock_accel/), "
                             "first, in the same run and cluster: before/after side by side")
    parser.add_argument("--turns", type=int, default=1,
                        help="bursts of concurrent claims on each agent (in turns)")
    args = parser.parse_args(argv)
    if min(args.rounds, args.concurrent, args.turns) < 1:
        parser.error("--rounds, --concurrent and --turns must be at least 1")
    run(args.rounds, args.concurrent, args.dir, args.py_spy, args.baseline, args.turns)
    return 0


if __name__ == "__main__":
    sys.exit(main())

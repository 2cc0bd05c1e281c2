"""The node agent (`mock-accel node-agent`, a real process) is killed at random points of
prepare and unprepare, ≥ 100 times in one seeded run, and started again each time. After every
restart the devices' ALLOCATED bits, the checkpoint and the CDI specs must agree, nothing may be
held twice, and every answer the kubelet got must still hold. A kubelet restart must find the
plugin again.

Kill points: the plugin's three crash points (`MOCK_ACCEL_CRASH_POINT`, exit code 86) and SIGKILL
after a random delay into a prepare/unprepare call (the delay is drawn up to 1.5× the calls'
median duration, so some kills land between calls; in about a third of the SIGKILL iterations
two calls for different claims are in flight), and, before 15 % of the restarts, SIGKILL late in
the start-up, where the agent reconciles what the previous kill left. Claims are allocated once
by the real scheduler and reused. The calls go through the kubelet emulator (registration, then
the DRA service); a claim whose call died is retried (prepare or unprepare) after the restart,
as the kubelet does. Replay: MOCK_ACCEL_RELIABILITY_SEED=<seed printed at the start>."""
from __future__ import annotations

import os
import random
import shutil
import signal
import statistics
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from mock_accel.cdi import CdiRegistry
from mock_accel.claims import CRASH_EXIT_CODE, CRASH_POINTS
from mock_accel.demo import Demo, DemoClaim
from mock_accel.kube import KubeClient
from mock_accel.kubelet import KubeletEmulator, RegisteredPlugin
from mock_accel.sim import SimConfig, SimNode
from mock_accel.wait import wait_until
from tests.harness.agent import DRIVER, Agent, allocated

pytestmark = pytest.mark.cluster
ITERATIONS = int(os.environ.get("MOCK_ACCEL_RELIABILITY_ITERATIONS", "100"))
# Six PFs, five of them claimed (one claim takes two): a device nobody claims must stay free.
TOPOLOGY = SimConfig(num_devices=6, numa_nodes=1, total_vfs=0)
CLAIMS = [DemoClaim("a", "a PF", (("mock-accel-pf", 1),)),
          DemoClaim("b", "a PF", (("mock-accel-pf", 1),)),
          DemoClaim("c", "a PF", (("mock-accel-pf", 1),)),
          DemoClaim("pair", "two PFs", (("mock-accel-pf", 2),))]
MODES = CRASH_POINTS + ("sigkill",) * 3   # half the iterations: SIGKILL at a random delay


@dataclass
class Bed:
    agent: Agent
    sim: SimNode
    cdi: CdiRegistry
    claims: dict[str, dict]                 # uid -> the claim as the scheduler allocated it
    devices: dict[str, set[str]]            # uid -> its allocated devices
    told: dict[str, str] = field(default_factory=dict)  # uid -> what the kubelet last heard


@pytest.fixture(scope="module")
def bed(cluster):
    workdir = Path(tempfile.mkdtemp(prefix="ma-rel-"))
    client = KubeClient.from_kubeconfig(cluster.kubeconfig)
    label = {"mock-accel.example.com/reliability": "kills"}
    (node_name,) = cluster.create_nodes(1, prefix="rel-kill", labels=label)
    demo = Demo(client, [node_name], workdir / "demo", namespace=f"rel-{uuid.uuid4().hex[:8]}",
                scenario=CLAIMS, topology=TOPOLOGY, node_selector=label, timeout=60)
    agent = None
    try:
        demo.setup()   # slices (its controller keeps running), DeviceClasses, namespace
        node = demo.nodes[node_name]
        node.plugin.stop()   # the node agent under test is the process below
        demo.submit()
        demo.wait_for_scheduler()
        claims = {}
        for claim in CLAIMS:
            assert demo.outcomes[claim.name].state == "allocated", demo.outcomes[claim.name]
            obj = demo.claim(claim.name)
            claims[obj["metadata"]["uid"]] = obj
        devices = {uid: {r["device"] for r in c["status"]["allocation"]["devices"]["results"]}
                   for uid, c in claims.items()}
        agent = Agent(workdir, node_name, Path(cluster.kubeconfig), node.sim)
        yield Bed(agent, node.sim, CdiRegistry(agent.config.cdi_dir, DRIVER), claims, devices,
                  {uid: "unprepared" for uid in claims})
    finally:
        if agent is not None:
            agent.stop()
        demo.teardown()
        client.delete(f"/api/v1/namespaces/{demo.namespace}")
        cluster.delete_node(node_name)
        shutil.rmtree(workdir, ignore_errors=True)


def check_consistent(bed: Bed) -> dict[str, dict]:
    """The invariants after a (re)start; returns the checkpoint."""
    checkpoint = bed.agent.checkpoint()
    held: dict[str, str] = {}
    for uid, record in checkpoint.items():
        names = [d["device"] for d in record["devices"]]
        assert set(names) == bed.devices[uid], f"claim {uid} holds {names}, not its allocation"
        for name in set(names):
            assert name not in held, f"device {name} held by {held.get(name)} and {uid}"
            held[name] = uid
    marked = set(allocated(bed.sim))
    assert not marked - set(held), f"allocated without a claim: {sorted(marked - set(held))}"
    assert not set(held) - marked, f"claimed but not allocated: {sorted(set(held) - marked)}"
    specs = bed.cdi.claim_uids()
    assert not specs - set(checkpoint), f"orphan CDI specs: {sorted(specs - set(checkpoint))}"
    assert not set(checkpoint) - specs, f"claims without a CDI spec: {set(checkpoint) - specs}"
    for uid in specs:
        spec = bed.cdi.read_claim_spec(uid)
        assert {d["name"] for d in spec["devices"]} == {f"{uid}-{n}" for n in bed.devices[uid]}
    litter = [p.name for d in (bed.cdi.cdi_dir, bed.agent.config.state_path) if d.is_dir()
              for p in d.iterdir() if p.name.endswith(".tmp")]
    assert not litter, f"half-written files left behind: {litter}"
    for uid, heard in bed.told.items():
        if heard == "prepared":
            assert uid in checkpoint, f"claim {uid} was reported prepared but is forgotten"
        elif heard == "unprepared":
            assert uid not in checkpoint, f"claim {uid} was reported unprepared but is held"
    return checkpoint


def call(bed: Bed, plugin: RegisteredPlugin, op: str, uids: list[str]) -> None:
    """One NodePrepareResources/NodeUnprepareResources call that must succeed for every claim."""
    claims = [bed.claims[uid]["metadata"] for uid in uids]
    if op == "prepare":
        for uid, answer in plugin.prepare(claims).items():
            assert not answer.error, f"prepare of {uid}: {answer.error}"
            assert {d.device_name for d in answer.devices} == bed.devices[uid]
            bed.told[uid] = "prepared"
    else:
        for uid, error in plugin.unprepare(claims).items():
            assert not error, f"unprepare of {uid}: {error}"
            bed.told[uid] = "unprepared"


def random_call(bed: Bed, rng: random.Random, fresh: bool = True) -> tuple[str, list[str]]:
    """What the kubelet does next: prepare or unprepare one or two claims (repeats included);
    without `fresh`, prepare only claims already prepared (a crash point would fire)."""
    uids = rng.sample(sorted(bed.claims), rng.choice((1, 1, 2)))
    op = "unprepare" if bed.told[uids[0]] == "prepared" else "prepare"
    if rng.random() < 0.15:   # now and then the same call again (idempotence)
        op = "prepare" if op == "unprepare" else "unprepare"
    if op == "prepare" and not fresh and any(bed.told[u] != "prepared" for u in uids):
        op = "unprepare"
    return op, uids


def concurrent_calls(bed: Bed, plugin: RegisteredPlugin, calls) -> list[tuple[str, bool]]:
    """Make `calls` at once; (op, died) for each. A claim whose call died is 'unknown'."""
    results: list = [None] * len(calls)

    def run(index: int, op: str, uids: list[str]) -> None:
        try:
            call(bed, plugin, op, uids)
            results[index] = (op, False)
        except grpc.RpcError:
            bed.told.update(dict.fromkeys(uids, "unknown"))
            results[index] = (op, True)
        except BaseException as err:  # noqa: BLE001 - a wrong answer: re-raised below
            results[index] = err

    threads = [threading.Thread(target=run, args=(i, *c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def kill_starting(agent: Agent, delay: float) -> bool:
    """Start the agent and SIGKILL it `delay` s after its process began (start-up reconciliation
    is near the end of the start-up); True if it died before it served."""
    before = agent.process

    def kill() -> None:
        while agent.process is before:
            time.sleep(0.002)
        time.sleep(delay)
        if agent.process.poll() is None:
            agent.process.send_signal(signal.SIGKILL)

    killer = threading.Thread(target=kill)
    killer.start()
    try:
        agent.start()
        served = True
    except AssertionError:   # "node agent did not start": it died first
        served = False
    killer.join()
    assert agent.process.wait(10) == -signal.SIGKILL
    return not served


def kill_later(process, delay: float) -> threading.Timer:
    timer = threading.Timer(delay, lambda: process.poll() is None and
                            process.send_signal(signal.SIGKILL))
    timer.start()
    return timer


def test_killed_at_random_points(bed, seed, progress):
    try:
        kill_loop(bed, seed, progress)
    finally:
        bed.agent.stop()   # also after a failure: no agent left for the next test


def kill_loop(bed: Bed, seed: int, progress) -> None:
    rng = random.Random(seed)
    agent = bed.agent
    durations = [0.05]   # seconds per successful call; the kill delays are drawn from them
    outcomes: Counter[str] = Counter()
    restarts: list[float] = []
    show = progress("node-agent kills", ITERATIONS)
    for iteration in range(1, ITERATIONS + 1):
        mode = rng.choice(MODES)
        if iteration > 1 and rng.random() < 0.15:   # killed again while recovering
            late = rng.uniform(0.6, 1.2) * statistics.median(restarts)
            outcomes["killed during start-up" if kill_starting(agent, late) else
                     "killed just after start-up"] += 1
        started = time.monotonic()
        agent.start(crash_point=None if mode == "sigkill" else mode)
        restarts.append(time.monotonic() - started)
        check_consistent(bed)
        kubelet, plugin = agent.register()
        try:
            # the kubelet retries what it got no answer for (or gives up and unprepares)
            fresh = mode == "sigkill"   # with a crash point set, a fresh prepare dies
            for uid in sorted(u for u, heard in bed.told.items() if heard == "unknown"):
                call(bed, plugin, rng.choice(("prepare", "unprepare") if fresh else
                                             ("unprepare",)), [uid])
            for _ in range(rng.randint(0, 3)):
                op, uids = random_call(bed, rng, fresh)
                began = time.monotonic()
                call(bed, plugin, op, uids)
                durations.append(time.monotonic() - began)
            if mode == "sigkill":
                calls = [random_call(bed, rng)]
                if rng.random() < 0.3:   # now and then two calls at once (two pods)
                    op, uids = random_call(bed, rng)
                    uids = [u for u in uids if u not in calls[0][1]]
                    calls += [(op, uids)] if uids else []
                delay = rng.uniform(0, 1.5 * statistics.median(durations))
                timer = kill_later(agent.process, delay)
                for op, died in concurrent_calls(bed, plugin, calls):
                    outcomes[f"killed during {op}" if died else "killed after the answer"] += 1
                outcomes["two calls at once"] += len(calls) == 2
                timer.join()
                assert agent.process.wait(10) == -signal.SIGKILL
            else:   # a crash point: the next fresh prepare dies there
                fresh = [u for u, heard in bed.told.items() if heard != "prepared"]
                if not fresh:
                    uid = rng.choice(sorted(bed.claims))
                    call(bed, plugin, "unprepare", [uid])
                    fresh = [uid]
                uids = rng.sample(sorted(fresh), 1)
                with pytest.raises(grpc.RpcError):
                    call(bed, plugin, "prepare", uids)
                bed.told.update(dict.fromkeys(uids, "unknown"))
                assert agent.process.wait(10) == CRASH_EXIT_CODE
                outcomes[f"crash point {mode}"] += 1
        finally:
            kubelet.close()
        show.tick(iteration, f"({(time.monotonic() - show.start) / iteration:.2f} s/iteration)")

    agent.start()   # the last restart, then everything is released
    check_consistent(bed)
    kubelet, plugin = agent.register()
    try:
        call(bed, plugin, "unprepare", sorted(bed.claims))
    finally:
        kubelet.close()
    assert check_consistent(bed) == {} and allocated(bed.sim) == []
    assert not bed.cdi.claim_uids()
    agent.stop()
    total = time.monotonic() - show.start
    show.say(f"{ITERATIONS} kills in {total:.1f} s ({total / ITERATIONS:.2f} s each; agent "
             f"start {statistics.median(restarts):.2f} s median); call median "
             f"{statistics.median(durations) * 1000:.0f} ms; "
             + ", ".join(f"{k}: {v}" for k, v in sorted(outcomes.items())))
    assert all(outcomes[f"crash point {p}"] for p in CRASH_POINTS) or ITERATIONS < 30
    assert any(k.startswith("killed during") for k in outcomes) or ITERATIONS < 30
    assert outcomes["two calls at once"] or ITERATIONS < 30


def test_kubelet_restart_reregisters(bed):
    """The kubelet goes away (channels and the health stream close) and a new one starts: it
    finds the same registration socket, the plugin accepts the new registration, and the
    claims it prepared before are answered the same."""
    agent = bed.agent
    agent.stop()
    agent.start()
    logged = agent.log.read_text().count("registered with the kubelet")
    uid = sorted(bed.claims)[0]
    first, plugin = agent.register()
    call(bed, plugin, "prepare", [uid])
    before = plugin.prepare([bed.claims[uid]["metadata"]])[uid]
    stream = plugin.watch_health()
    assert stream.next(timeout=10)
    first.close()   # the kubelet stops

    second = KubeletEmulator(agent.config.registry_dir)
    try:
        again = second.register(second.wait_for_socket(timeout=5))
        assert again.prepare([bed.claims[uid]["metadata"]])[uid] == before
        stream = again.watch_health()
        assert set(stream.next(timeout=10)) == {d.name for d in bed.sim.discover()}
        wait_until(lambda: agent.log.read_text().count("registered with the kubelet")
                   >= logged + 2, 5, "the plugin to log the second registration", interval=0.05)
        assert agent.process.poll() is None
        call(bed, again, "unprepare", [uid])
    finally:
        second.close()
    check_consistent(bed)
    agent.stop()

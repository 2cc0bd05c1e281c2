"""Group commit of the checkpoint (nbs/26_claims.ipynb), on a real node agent process: N claims
prepared at once (one gRPC call each, as the kubelet calls) cost at most N checkpoint writes
(fewer when calls meet at the disk; how many meet depends on the machine's load, so the sharing
itself is shown deterministically in nbs/26 and measured by `make bench-profile`), and the agent
SIGKILLed at random moments of such a burst, then restarted, keeps every answer it gave: a claim
answered prepared is in the checkpoint with its device ALLOCATED and its CDI spec; nothing is
held that the checkpoint does not name; every claim can be prepared (again) and unprepared
afterwards. The machinery is the kill loop's (tests/harness/agent.py)."""
from __future__ import annotations

import random
import shutil
import socket
import tempfile
import threading
from pathlib import Path

import grpc
import pytest
import requests

from mock_accel.cdi import CdiRegistry
from mock_accel.kubelet import KubeletEmulator
from mock_accel.sim import SimConfig, SimNode
from tests.harness.agent import DRIVER, Agent, allocated

pytestmark = pytest.mark.cluster
RES = "resource.k8s.io/v1"
CLAIMS = 12
KILLS = 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def allocate(api, ns: str, node: str, devices: list[str]) -> dict[str, tuple]:
    """uid -> (ref, device): claims allocated by hand, each with a pod on `node` (so the node
    may read it)."""
    out = {}
    for i, device in enumerate(devices):
        name = f"gc-{i}"
        api.create({"apiVersion": RES, "kind": "ResourceClaim", "metadata": {"name": name},
                    "spec": {"devices": {"requests": [{"name": "accel", "exactly": {
                        "deviceClassName": "gc"}}]}}}, ns)
        api.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {
            "nodeName": node, "containers": [{"name": "main", "image": "pause",
                                              "resources": {"claims": [{"name": "accel"}]}}],
            "resourceClaims": [{"name": "accel", "resourceClaimName": name}]}}, ns)
        claim = api.patch(RES, "ResourceClaim", name, {"status": {"allocation": {"devices": {
            "results": [{"request": "accel", "driver": DRIVER, "pool": node,
                         "device": device}]}}}}, ns, subresource="status")
        out[claim["metadata"]["uid"]] = ((ns, claim["metadata"]["uid"], name), device)
    return out


def at_once(plugin, op: str, refs: list[tuple]) -> dict[str, str | None]:
    """One call per claim, all in flight together: uid -> error ('' when done, None when the
    call itself failed, e.g. the agent died)."""
    answers: dict[str, str | None] = {}

    def call(ref) -> None:
        try:
            got = getattr(plugin, op)([ref])[ref[1]]
            answers[ref[1]] = getattr(got, "error", got)
        except grpc.RpcError:
            answers[ref[1]] = None
    threads = [threading.Thread(target=call, args=(ref,)) for ref in refs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def checkpoint_writes(port: int) -> float:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    line = next(ln for ln in text.splitlines()
                if ln.startswith("mock_accel_plugin_checkpoint_writes_total "))
    return float(line.split()[1])


def consistent(agent: Agent, sim: SimNode, claims: dict) -> dict:
    """The checkpoint, after checking devices and CDI specs agree with it."""
    checkpoint = agent.checkpoint()
    held = sorted(claims[uid][1] for uid in checkpoint)
    assert sorted(allocated(sim)) == held, (allocated(sim), held)
    assert CdiRegistry(agent.config.cdi_dir, DRIVER).claim_uids() == set(checkpoint)
    return checkpoint


def test_concurrent_prepares_share_writes_and_survive_kills(cluster, api, namespace):
    work = Path(tempfile.mkdtemp(prefix="ma-gc-", dir="/tmp"))
    port = free_port()
    (node,) = cluster.create_nodes(1, prefix="gc")
    sim = SimNode.create(work / "sys", SimConfig(num_devices=CLAIMS, total_vfs=0, numa_nodes=1))
    agent = Agent(work, node, cluster.nodes[node].kubeconfig, sim,
                  extra_args=("--metrics-port", str(port)))
    kubelet = KubeletEmulator(agent.config.registry_dir, timeout=60)
    try:
        claims = allocate(api, namespace, node, [d.name for d in sim.discover()])
        refs = [ref for ref, _ in claims.values()]
        agent.start()
        _, plugin = agent.register(kubelet)
        assert at_once(plugin, "prepare", refs) == {uid: "" for uid in claims}
        writes = checkpoint_writes(port)
        print(f"{CLAIMS} concurrent prepares: {writes:g} checkpoint writes")
        assert 1 <= writes <= CLAIMS
        assert set(consistent(agent, sim, claims)) == set(claims)
        assert at_once(plugin, "unprepare", refs) == {uid: "" for uid in claims}
        assert consistent(agent, sim, claims) == {}

        rng = random.Random(19)
        for kill in range(KILLS):
            timer = threading.Timer(rng.uniform(0.0, 0.15), agent.kill)
            timer.start()
            answers = at_once(plugin, "prepare", refs)
            timer.join()
            agent.start()
            _, plugin = agent.register(kubelet)
            checkpoint = consistent(agent, sim, claims)
            answered = {uid for uid, error in answers.items() if error == ""}
            print(f"kill {kill + 1}: {len(answered)} answered prepared, "
                  f"{len(checkpoint)} in the checkpoint")
            assert answered <= set(checkpoint), answered - set(checkpoint)
            assert at_once(plugin, "prepare", refs) == {uid: "" for uid in claims}  # retries
            assert set(consistent(agent, sim, claims)) == set(claims)
            assert at_once(plugin, "unprepare", refs) == {uid: "" for uid in claims}
            assert consistent(agent, sim, claims) == {}
    finally:
        kubelet.close()
        agent.stop()
        shutil.rmtree(work, ignore_errors=True)

"""Restarts of the node agent: killed at each step of a prepare, or between calls, then started
again. Nothing may leak (status bits, CDI specs) and nothing may be handed out twice.

The node agent runs as a real process (`mock-accel node-agent`) so it can die for real; the
crash points are `MOCK_ACCEL_CRASH_POINT` (see the plugin notebook)."""
from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import grpc
import pytest

from mock_accel.cdi import CdiRegistry
from mock_accel.claims import CRASH_EXIT_CODE
from mock_accel.controller import SliceController
from mock_accel.demo import DemoClaim, device_classes
from mock_accel.kube import KubeClient, KubeError
from mock_accel.sim import SimConfig, SimNode
from mock_accel.wait import wait_until
from tests.harness.agent import DRIVER, Agent, allocated

pytestmark = pytest.mark.cluster
RESOURCE = "/apis/resource.k8s.io/v1"


@pytest.fixture
def bed(cluster):
    """A node with a simulated PF (2 VFs), our slices published, and a claim for the PF that the
    real scheduler has allocated."""
    workdir = Path(tempfile.mkdtemp(prefix="ma-rs-"))
    client = KubeClient.from_kubeconfig(cluster.kubeconfig)
    (node_name,) = cluster.create_nodes(1, prefix="restart", labels={"mock-accel/restart": "1"})
    sim = SimNode.create(workdir / "root", SimConfig(num_devices=2, numa_nodes=1, total_vfs=0))
    SliceController(client, node_name, sim, driver=DRIVER).reconcile()
    for device_class in device_classes(DRIVER):
        try:
            client.create(f"{RESOURCE}/deviceclasses", device_class)
        except KubeError as err:
            assert err.status == 409
    namespace = f"restart-{uuid.uuid4().hex[:8]}"  # deletion of an old one may be in progress
    client.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                         "metadata": {"name": namespace}})
    demo_claim = DemoClaim("c", "a PF", (("mock-accel-pf", 1),))
    client.create(f"{RESOURCE}/namespaces/{namespace}/resourceclaims",
                  demo_claim.manifest(namespace, DRIVER))
    client.create(f"/api/v1/namespaces/{namespace}/pods",
                  demo_claim.pod(namespace, {"mock-accel/restart": "1"}))

    def allocated_claim():
        claim = client.get(f"{RESOURCE}/namespaces/{namespace}/resourceclaims/c")
        return claim if (claim.get("status") or {}).get("allocation") else None

    claim = wait_until(allocated_claim, 30, "the scheduler to allocate the claim", interval=0.3)
    agent = Agent(workdir, node_name, Path(cluster.kubeconfig), sim)
    yield agent, sim, claim
    agent.stop()
    client.delete(f"/api/v1/namespaces/{namespace}")
    for item in client.list(f"{RESOURCE}/resourceslices",
                            field_selector=f"spec.nodeName={node_name}"):
        client.delete(f"{RESOURCE}/resourceslices/{item['metadata']['name']}")
    cluster.delete_node(node_name)
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.parametrize("point", ["after-mark", "after-cdi", "after-checkpoint"])
def test_killed_during_prepare(bed, point):
    agent, sim, claim = bed
    uid = claim["metadata"]["uid"]
    device = claim["status"]["allocation"]["devices"]["results"][0]["device"]
    cdi = CdiRegistry(agent.config.cdi_dir, DRIVER)
    agent.start(crash_point=point)
    with pytest.raises(grpc.RpcError):
        agent.prepare(claim)
    assert agent.process.wait(10) == CRASH_EXIT_CODE
    assert allocated(sim) == [device]  # the crash left the status bit set
    checkpointed = point == "after-checkpoint"
    assert (uid in agent.checkpoint()) is checkpointed
    assert (uid in cdi.claim_uids()) is (point != "after-mark")

    agent.start()  # start-up reconciliation
    if checkpointed:  # the kubelet was never answered; what we promised stays
        assert allocated(sim) == [device] and cdi.claim_uids() == {uid}
    else:  # nobody was told: the device is freed and the stray spec removed
        assert allocated(sim) == [] and cdi.claim_uids() == set()
    answer = agent.prepare(claim)  # the kubelet retries
    assert not answer.error, answer.error
    assert [d.device_name for d in answer.devices] == [device]
    assert allocated(sim) == [device] and list(agent.checkpoint()) == [uid]
    assert agent.prepare(claim).devices == answer.devices  # idempotent

    assert not agent.prepare(claim, unprepare=True).error
    assert allocated(sim) == [] and cdi.claim_uids() == set() and agent.checkpoint() == {}


def test_killed_between_calls_and_corrupt_checkpoint(bed):
    agent, sim, claim = bed
    uid = claim["metadata"]["uid"]
    agent.start()
    first = agent.prepare(claim)
    assert not first.error
    agent.kill()
    agent.start()
    assert agent.prepare(claim).devices == first.devices  # same answer after a restart
    agent.kill()
    agent.config.checkpoint_path.write_text('{"version": 1, "claims": {"x"')  # torn write
    agent.start()
    quarantined = list(agent.config.checkpoint_path.parent.glob("checkpoint.json.corrupt-*"))
    assert len(quarantined) == 1
    assert len(allocated(sim)) == 1 and agent.checkpoint().keys() == {uid}  # rebuilt, not freed
    answer = agent.prepare(claim)
    assert answer.devices == first.devices and agent.checkpoint().keys() == {uid}
    assert len(allocated(sim)) == 1
    assert not agent.prepare(claim, unprepare=True).error
    assert allocated(sim) == []

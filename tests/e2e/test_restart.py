"""Restarts of the node agent: killed at each step of a prepare, or between calls, then started
again. Nothing may leak (status bits, CDI specs) and nothing may be handed out twice.

The node agent runs as a real process (`mock-accel node-agent`) so it can die for real; the
crash points are `MOCK_ACCEL_CRASH_POINT` (see the plugin notebook)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import grpc
import pytest

from mock_accel.cdi import CdiRegistry
from mock_accel.claims import CRASH_EXIT_CODE, CRASH_POINT_ENV, PluginConfig
from mock_accel.controller import SliceController
from mock_accel.demo import DemoClaim, device_classes, prepare_over_grpc
from mock_accel.kube import KubeClient, KubeError
from mock_accel.sim import SimConfig, SimNode

pytestmark = pytest.mark.cluster
DRIVER = "mock-accel.example.com"
RESOURCE = "/apis/resource.k8s.io/v1"


class Agent:
    """`mock-accel node-agent` as a child process on a simulated node."""

    def __init__(self, workdir: Path, node_name: str, kubeconfig: Path, sim: SimNode):
        self.config = PluginConfig(driver=DRIVER, node_name=node_name,
                                   plugins_dir=str(workdir / "plugins"),
                                   registry_dir=str(workdir / "registry"),
                                   cdi_dir=str(workdir / "cdi"), sysfs_root=str(sim.root))
        self.kubeconfig, self.log = kubeconfig, workdir / "agent.log"
        self.process: subprocess.Popen | None = None

    def start(self, crash_point: str | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if k != CRASH_POINT_ENV}
        if crash_point:
            env[CRASH_POINT_ENV] = crash_point
        command = [sys.executable, "-m", "mock_accel.cli", "node-agent", "-v", "3",
                   "--node-name", self.config.node_name, "--kubeconfig", str(self.kubeconfig),
                   "--sysfs-root", str(self.config.sysfs_root),
                   "--plugin-socket-dir", str(self.config.plugin_dir),
                   "--registry-dir", str(self.config.registry_dir),
                   "--cdi-dir", str(self.config.cdi_dir)]
        with open(self.log, "a") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while not self.serving():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"node agent did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)

    def serving(self) -> bool:
        """The DRA socket accepts connections (a killed agent's stale socket does not)."""
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(str(self.config.dra_socket))
            except OSError:
                return False
        return True

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def prepare(self, claim: dict, unprepare: bool = False):
        return prepare_over_grpc(self.config.dra_socket, [claim], unprepare)[
            claim["metadata"]["uid"]]

    def checkpoint(self) -> dict:
        path = self.config.checkpoint_path
        return json.loads(path.read_text())["claims"] if path.exists() else {}


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
    deadline = time.monotonic() + 30
    while True:
        claim = client.get(f"{RESOURCE}/namespaces/{namespace}/resourceclaims/c")
        if (claim.get("status") or {}).get("allocation"):
            break
        assert time.monotonic() < deadline, "the scheduler did not allocate the claim"
        time.sleep(0.3)
    agent = Agent(workdir, node_name, Path(cluster.kubeconfig), sim)
    yield agent, sim, claim
    agent.stop()
    client.delete(f"/api/v1/namespaces/{namespace}")
    for item in client.list(f"{RESOURCE}/resourceslices",
                            field_selector=f"spec.nodeName={node_name}"):
        client.delete(f"{RESOURCE}/resourceslices/{item['metadata']['name']}")
    cluster.delete_node(node_name)
    shutil.rmtree(workdir, ignore_errors=True)


def allocated(sim: SimNode) -> list[str]:
    return [d.name for d in sim.discover() if d.allocated]


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
    assert allocated(sim) == []  # no checkpoint: nothing is held, the status bit is freed
    answer = agent.prepare(claim)
    assert not answer.error and agent.checkpoint().keys() == {uid}
    assert len(allocated(sim)) == 1
    assert not agent.prepare(claim, unprepare=True).error
    assert allocated(sim) == []

"""T1 + T3: the kubelet emulator prepares and unprepares claims that live in the local control
plane (tests/cluster): slices published from a simulated node, the real scheduler allocates,
the plugin reads the claims from the API server (node credentials where it matters).
"""

from __future__ import annotations

import errno
import json
import threading
import time

import pytest

from mock_accel.claims import DRA_V1BETA1
from mock_accel.kube import KubeClient, KubeError
from mock_accel.kubelet import KubeletEmulator
from mock_accel.sim import SimNode
from mock_accel.slices import build_slices

pytestmark = pytest.mark.cluster

RES = "resource.k8s.io/v1"
PAUSE = "registry.k8s.io/pause:3.10"


class Scenario:
    """Nodes, slices, a DeviceClass and claims of one test, under a driver name of its own."""

    def __init__(self, cluster, api, namespace):
        self.cluster, self.api, self.namespace = cluster, api, namespace
        self.driver = f"{namespace}.plugin-test.example.com"
        self.device_class = f"{namespace}-accel"
        self.cluster_objects: list[dict] = []
        self._create({"apiVersion": RES, "kind": "DeviceClass",
                      "metadata": {"name": self.device_class},
                      "spec": {"selectors": [{"cel": {
                          "expression": f'device.driver == "{self.driver}"'}}]}})

    def _create(self, obj: dict) -> dict:
        self.cluster_objects.append(obj)
        return self.api.create(obj)

    def add_node(self) -> str:
        (node,) = self.cluster.create_nodes(1, prefix=f"{self.namespace}-n")
        return node

    def publish(self, node: str, sim: SimNode) -> None:
        for obj in build_slices(node, sim.discover(), driver=self.driver, partitionable=False):
            obj["spec"]["pool"]["generation"] = 1
            self._create(obj)

    def claim(self, name: str, count: int = 1, node: str | None = None) -> dict:
        """A claim plus a pod using it (pinned to `node` if given); waits for the allocation."""
        self.api.create({"apiVersion": RES, "kind": "ResourceClaim", "metadata": {"name": name},
                         "spec": {"devices": {"requests": [{"name": "accel", "exactly": {
                             "deviceClassName": self.device_class, "count": count}}]}}},
                        self.namespace)
        self.pod(name, name, node)
        return self.api.wait_get(RES, "ResourceClaim", name, self.namespace,
                                 lambda c: (c.get("status") or {}).get("allocation"),
                                 timeout=45, what=f"allocation of claim {name}")

    def pod(self, name: str, claim: str, node: str | None = None) -> dict:
        spec = {"containers": [{"name": "main", "image": PAUSE,
                                "resources": {"claims": [{"name": "accel"}]}}],
                "resourceClaims": [{"name": "accel", "resourceClaimName": claim}],
                "terminationGracePeriodSeconds": 0}
        if node:
            spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchFields": [
                    {"key": "metadata.name", "operator": "In", "values": [node]}]}]}}}
        return self.api.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                                "spec": spec}, self.namespace)

    def cleanup(self) -> None:
        for obj in reversed(self.cluster_objects):
            try:
                self.api.delete(obj["apiVersion"], obj["kind"], obj["metadata"]["name"])
            except KubeError as err:
                print(f"cleanup: {err}")


def ref(claim: dict) -> tuple[str, str, str]:
    meta = claim["metadata"]
    return meta["namespace"], meta["uid"], meta["name"]


def devices_of(claim: dict) -> list[str]:
    return [r["device"] for r in claim["status"]["allocation"]["devices"]["results"]]


@pytest.fixture
def scenario(cluster, api, namespace):
    made = Scenario(cluster, api, namespace)
    yield made
    made.cleanup()


@pytest.fixture
def node_setup(scenario, make_plugin, cluster):
    """One node with 4 PFs, its slices, and a started plugin using the node's credentials."""
    node = scenario.add_node()
    plugin = make_plugin(node_name=node, driver=scenario.driver,
                         client=KubeClient.from_kubeconfig(cluster.nodes[node].kubeconfig))
    scenario.publish(node, plugin.node)
    return node, plugin


def test_prepare_and_unprepare_a_real_claim(scenario, node_setup, kubelet):
    node, plugin = node_setup
    claim = scenario.claim("one")
    (device,) = devices_of(claim)
    registered = kubelet.register(kubelet.wait_for_socket())
    uid = claim["metadata"]["uid"]

    started = time.monotonic()
    answer = registered.prepare([ref(claim)])
    print(f"NodePrepareResources took {time.monotonic() - started:.3f}s: {answer}")
    assert not answer[uid].error
    (prepared,) = answer[uid].devices
    assert (prepared.request_names, prepared.pool_name, prepared.device_name) == \
        (["accel"], node, device)
    assert prepared.cdi_device_ids == [f"{scenario.driver}/accel={uid}-{device}"]
    assert plugin.node.read_device(device).allocated
    spec = json.loads(plugin.cdi.spec_path(uid).read_text())
    assert spec["devices"][0]["name"] == f"{uid}-{device}"
    assert set(plugin.checkpoint.load()) == {uid}

    assert registered.prepare([ref(claim)]) == answer          # idempotent

    assert registered.unprepare([ref(claim)]) == {uid: ""}
    assert not plugin.node.read_device(device).allocated
    assert not plugin.cdi.spec_path(uid).exists() and plugin.checkpoint.load() == {}
    assert registered.unprepare([ref(claim)]) == {uid: ""}      # idempotent
    assert all(not d.allocated for d in plugin.node.discover())


def test_v1beta1_path(scenario, node_setup, short_dir):
    _, plugin = node_setup
    claim = scenario.claim("beta", count=2)
    kubelet = KubeletEmulator(short_dir / "registry", dra_services=(DRA_V1BETA1,))
    try:
        registered = kubelet.register(kubelet.wait_for_socket())
        assert registered.service == DRA_V1BETA1
        uid = claim["metadata"]["uid"]
        answer = registered.prepare([ref(claim)])
        assert not answer[uid].error
        assert sorted(d.device_name for d in answer[uid].devices) == sorted(devices_of(claim))
        assert sum(d.allocated for d in plugin.node.discover()) == 2
        assert registered.unprepare([ref(claim)]) == {uid: ""}
        assert sum(d.allocated for d in plugin.node.discover()) == 0
    finally:
        kubelet.close()


def test_every_per_claim_error_in_one_call(scenario, make_plugin, cluster, api, namespace,
                                           kubelet):
    node, other = scenario.add_node(), scenario.add_node()
    plugin = make_plugin(node_name=node, driver=scenario.driver,
                         client=KubeClient.from_kubeconfig(cluster.kubeconfig))
    scenario.publish(node, plugin.node)
    scenario.publish(other, SimNode.create(plugin.node.root.parent / "sys-other"))
    good = scenario.claim("good", node=node)
    failed = scenario.claim("failed", node=node)
    missing = scenario.claim("missing", node=node)
    elsewhere = scenario.claim("elsewhere", node=other)
    registered = kubelet.register(kubelet.wait_for_socket())
    assert not registered.prepare([ref(good)])[good["metadata"]["uid"]].error

    # a claim whose allocation (written by hand) names the device the good claim holds
    api.create({"apiVersion": RES, "kind": "ResourceClaim", "metadata": {"name": "busy"},
                "spec": {"devices": {"requests": [{"name": "accel", "exactly": {
                    "deviceClassName": scenario.device_class}}]}}}, namespace)
    busy = api.patch(RES, "ResourceClaim", "busy", {"status": {"allocation": {"devices": {
        "results": [{"request": "accel", "driver": scenario.driver, "pool": node,
                     "device": devices_of(good)[0]}]}}}}, namespace, subresource="status")
    plugin.node.inject_fault(devices_of(failed)[0])
    plugin.node.del_device(int(devices_of(missing)[0].removeprefix("mock")))
    unknown = (namespace, "00000000-0000-4000-8000-000000000000", "no-such-claim")
    mismatch = (namespace, "11111111-1111-4111-8111-111111111111", "good")

    calls = [ref(busy), ref(failed), ref(missing), ref(elsewhere), unknown, mismatch, ref(good)]
    answer = registered.prepare(calls)
    errors = {name: answer[uid].error for (_, uid, name) in calls}
    print(json.dumps(errors, indent=1))
    assert "held by claim" in errors["busy"]
    assert "unhealthy" in errors["failed"]
    assert "does not exist" in errors["missing"]
    assert "another node" in errors["elsewhere"] or f"pool {other}" in errors["elsewhere"]
    assert "not found" in errors["no-such-claim"]
    assert "has UID" in answer[mismatch[1]].error
    assert errors["good"] == "" and answer[good["metadata"]["uid"]].devices   # untouched
    allocated = {d.name for d in plugin.node.discover() if d.allocated}
    assert allocated == set(devices_of(good))                  # no error left anything behind
    assert set(plugin.checkpoint.load()) == {good["metadata"]["uid"]}
    assert plugin.cdi.claim_uids() == {good["metadata"]["uid"]}
    # unprepare answers for every claim, prepared or not
    assert registered.unprepare(calls) == {uid: "" for (_, uid, _) in calls}
    assert not any(d.allocated for d in plugin.node.discover())


def test_node_credentials_cannot_read_claims_of_other_nodes(scenario, node_setup, kubelet):
    node, plugin = node_setup
    other = scenario.add_node()
    scenario.publish(other, SimNode.create(plugin.node.root.parent / "sys-other"))
    elsewhere = scenario.claim("elsewhere", node=other)
    registered = kubelet.register(kubelet.wait_for_socket())
    error = registered.prepare([ref(elsewhere)])[elsewhere["metadata"]["uid"]].error
    print(error)
    assert "403" in error          # the Node authorizer: no pod of this node uses the claim


def test_partial_failure_rolls_back(scenario, node_setup, kubelet):
    _, plugin = node_setup
    claim = scenario.claim("pair", count=2)
    first, second = devices_of(claim)
    uid = claim["metadata"]["uid"]
    original = plugin.node._write

    def refuse_second(path, value):
        if path.name == "status" and path.parent.name == second:
            raise OSError(errno.EIO, "injected I/O error")
        return original(path, value)

    registered = kubelet.register(kubelet.wait_for_socket())
    plugin.node._write = refuse_second
    try:
        answer = registered.prepare([ref(claim)])
    finally:
        plugin.node._write = original
    print(answer[uid].error)
    assert second in answer[uid].error and not answer[uid].devices
    assert not plugin.node.read_device(first).allocated       # rolled back
    assert not plugin.cdi.claim_uids() and plugin.checkpoint.load() == {}
    answer = registered.prepare([ref(claim)])                   # the kubelet's retry succeeds
    assert not answer[uid].error and len(answer[uid].devices) == 2
    assert registered.unprepare([ref(claim)]) == {uid: ""}


def test_concurrent_prepares(scenario, node_setup, kubelet):
    _, plugin = node_setup
    claims = [scenario.claim(f"c{i}") for i in range(4)]
    registered = kubelet.register(kubelet.wait_for_socket())
    answers: dict[str, object] = {}
    barrier = threading.Barrier(len(claims) * 2)

    def call(claim):
        barrier.wait()
        answers.setdefault(claim["metadata"]["uid"], []).append(registered.prepare([ref(claim)]))

    threads = [threading.Thread(target=call, args=(c,)) for c in claims for _ in range(2)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"8 concurrent NodePrepareResources (4 claims twice) in "
          f"{time.monotonic() - started:.3f}s")
    held = {}
    for claim in claims:
        uid = claim["metadata"]["uid"]
        first, again = answers[uid]
        assert first == again and not first[uid].error          # same claim twice: one answer
        (device,) = first[uid].devices
        held[device.device_name] = uid
    assert len(held) == 4 and all(d.allocated for d in plugin.node.discover())
    assert set(plugin.checkpoint.load()) == {c["metadata"]["uid"] for c in claims}
    results = registered.unprepare([ref(c) for c in claims])
    assert set(results.values()) == {""}
    assert not any(d.allocated for d in plugin.node.discover()) and not plugin.cdi.claim_uids()


def test_restart_keeps_prepared_claims(scenario, node_setup, make_plugin, kubelet, cluster):
    node, plugin = node_setup
    claim = scenario.claim("kept")
    uid, (device,) = claim["metadata"]["uid"], devices_of(claim)
    assert not kubelet.register(kubelet.wait_for_socket()).prepare([ref(claim)])[uid].error
    plugin.stop()
    plugin.node.set_allocated(device, False)       # e.g. the module was reloaded meanwhile
    restarted = make_plugin(node_name=node, driver=scenario.driver,
                            client=KubeClient.from_kubeconfig(cluster.nodes[node].kubeconfig))
    assert restarted.reconcile_report.remarked == [device]
    assert restarted.node.read_device(device).allocated
    registered = kubelet.register(kubelet.wait_for_socket())
    assert registered.unprepare([ref(claim)]) == {uid: ""}
    assert not restarted.node.read_device(device).allocated

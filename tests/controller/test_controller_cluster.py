"""`mock_accel.controller` against a real kube-apiserver, scheduler and controller-manager.

Each test gets its own Node object (from `cluster.create_nodes`) and a simulated node
(`mock_accel.sim.SimNode`); the controller publishes with the node's own credentials (Node
authorizer + NodeRestriction), except where a test needs cluster-wide rights. Claims are pinned to
the test's node with a nodeSelector, so slices of other tests (same driver name) never satisfy
them.
"""

from __future__ import annotations

import threading
import time

import pytest

from mock_accel.controller import SliceController
from mock_accel.kube import KubeClient
from mock_accel.sim import SimConfig, SimNode
from mock_accel.slices import DEFAULT_DRIVER
from mock_accel.wait import wait_until

pytestmark = pytest.mark.cluster

RES = "resource.k8s.io/v1"
PAUSE = "registry.k8s.io/pause:3.10"


# ----------------------------------------------------------------------------- helpers

class Published:
    """A node: its Node object, a simulated sysfs, and a controller with node credentials."""

    def __init__(self, cluster, name: str, sim: SimNode, client: KubeClient, **options):
        self.cluster, self.name, self.sim, self.client = cluster, name, sim, client
        self.controller = SliceController(client, name, sim, **options)

    def slices(self) -> list[dict]:
        return sorted(self.cluster.api.list(RES, "ResourceSlice",
                                            fieldSelector=f"spec.nodeName={self.name}"),
                      key=lambda s: s["metadata"]["name"])

    def devices(self) -> dict[str, dict]:
        return {d["name"]: d for s in self.slices() for d in s["spec"].get("devices", [])}


@pytest.fixture
def publish(cluster, namespace, tmp_path):
    made: list[Published] = []

    def make(config: SimConfig | None = None, *, admin: bool = False, node: str | None = None,
             **options) -> Published:
        name = node or cluster.create_nodes(1, prefix=f"{namespace}-n{len(made)}")[0]
        sim = SimNode.create(tmp_path / f"sim-{len(made)}", config or SimConfig())
        kubeconfig = cluster.kubeconfig if admin else cluster.nodes[name].kubeconfig
        made.append(Published(cluster, name, sim, KubeClient.from_kubeconfig(kubeconfig),
                              **options))
        return made[-1]

    yield make
    for p in made:  # leave no slices behind for later tests
        for s in cluster.api.list(RES, "ResourceSlice", fieldSelector=f"spec.nodeName={p.name}"):
            cluster.api.delete(RES, "ResourceSlice", s["metadata"]["name"])


def device_class(name: str, device_type: str) -> dict:
    expr = (f'device.driver == "{DEFAULT_DRIVER}" && '
            f'device.attributes["{DEFAULT_DRIVER}"].deviceType == "{device_type}"')
    return {"apiVersion": RES, "kind": "DeviceClass", "metadata": {"name": name},
            "spec": {"selectors": [{"cel": {"expression": expr}}]}}


def claim(name: str, device_class_name: str) -> dict:
    return {"apiVersion": RES, "kind": "ResourceClaim", "metadata": {"name": name},
            "spec": {"devices": {"requests": [{"name": "accel", "exactly": {
                "deviceClassName": device_class_name, "allocationMode": "ExactCount",
                "count": 1}}]}}}


def pod(name: str, claim_name: str, node: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeSelector": {"kubernetes.io/hostname": node},
                     "containers": [{"name": "main", "image": PAUSE,
                                     "resources": {"claims": [{"name": "accel"}]}}],
                     "resourceClaims": [{"name": "accel", "resourceClaimName": claim_name}],
                     "terminationGracePeriodSeconds": 0}}


def allocation(api, namespace: str, name: str) -> list[dict]:
    c = api.get(RES, "ResourceClaim", name, namespace)
    return ((c.get("status") or {}).get("allocation") or {}).get("devices", {}).get("results", [])


# ----------------------------------------------------------------------------- tests

def test_publish_accepted_then_no_write_when_unchanged(publish, api):
    node = publish()
    node.sim.set_numvfs("mock1", 2)  # mock1's counter set makes the pool two slices
    first = node.controller.reconcile()
    assert (first.created, first.updated, first.deleted, first.generation) == (2, 0, 0, 1)

    slices = node.slices()
    assert [s["metadata"]["name"] for s in slices] == [
        f"{node.name}-mock-accel-example-com-0", f"{node.name}-mock-accel-example-com-1"]
    for s in slices:
        assert s["spec"]["driver"] == DEFAULT_DRIVER and s["spec"]["pool"] == {
            "name": node.name, "generation": 1, "resourceSliceCount": 2}
        owner = s["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"]) == ("Node", node.name)
    assert [c["name"] for c in slices[0]["spec"]["sharedCounters"]] == ["mock1"]
    mock1 = node.devices()["mock1"]
    assert mock1["attributes"]["deviceType"] == {"string": "pf"}
    assert mock1["attributes"]["resource.kubernetes.io/pcieRoot"] == {"string": "pciacc1:00"}
    assert mock1["capacity"]["memory"]["value"] == "16Gi"

    writes = node.client.writes
    second = node.controller.reconcile()
    assert second.writes == 0 and second.generation == 1
    assert node.client.writes == writes, dict(node.client.counts)
    print("requests for two reconciles:", dict(node.client.counts))


def test_generation_bumps_and_stale_slices_are_deleted(publish):
    node = publish(SimConfig(num_devices=70, total_vfs=4))
    first = node.controller.reconcile()
    assert first.created == 1  # 70 PFs without VFs: no counters, one slice (up to 128)
    assert {s["spec"]["pool"]["resourceSliceCount"] for s in node.slices()} == {1}

    node.sim.set_numvfs("mock3", 4)
    node.sim.inject_fault("mock3-vf1")
    second = node.controller.reconcile()
    # mock3's counter set takes slice 0; 74 devices, some consuming counters: 64 + 10
    assert second.generation == 2 and (second.created, second.updated) == (2, 1), second
    assert second.writes == 3
    assert {s["spec"]["pool"]["generation"] for s in node.slices()} == {2}
    assert {s["spec"]["pool"]["resourceSliceCount"] for s in node.slices()} == {3}
    vf = node.devices()["mock3-vf1"]
    assert vf["consumesCounters"] == [{"counterSet": "mock3",
                                       "counters": {"memory": {"value": "4Gi"}}}]
    assert vf["taints"][0]["key"] == "mock-accel.example.com/unhealthy"
    assert vf["taints"][0]["effect"] == "NoSchedule" and vf["taints"][0].get("timeAdded")

    for pf_id in range(60, 70):  # devices gone: fewer slices, the extra ones are deleted
        node.sim.del_device(pf_id)
    third = node.controller.reconcile()
    # 60 PFs + 4 VFs: the counter slice and one device slice of exactly 64
    assert third.generation == 3 and third.deleted == 1, third
    slices = node.slices()
    assert len(slices) == 2 and {s["spec"]["pool"]["resourceSliceCount"] for s in slices} == {2}
    assert node.controller.reconcile().writes == 0


def test_run_reacts_to_events_within_a_second(publish):
    # the safety net's period is a minute: only the simulator's change events can be this fast
    node = publish(poll_interval=60, rescan_interval=60)
    stop = threading.Event()
    worker = threading.Thread(target=node.controller.run, args=(stop,), daemon=True)
    worker.start()
    try:
        wait_until(lambda: len(node.slices()) == 1, 10, "the first publication", interval=0.05)
        node.sim.set_numvfs("mock0", 2)
        started = time.monotonic()
        wait_until(lambda: "mock0-vf1" in node.devices(), 5, "the VFs to appear", interval=0.05)
        took_vfs = time.monotonic() - started
        node.sim.inject_fault("mock2")
        started = time.monotonic()
        wait_until(lambda: node.devices()["mock2"].get("taints"), 5, "the taint to appear",
                   interval=0.05)
        took_fault = time.monotonic() - started
        print(f"VFs published after {took_vfs:.2f}s, fault after {took_fault:.2f}s")
        assert took_vfs < 1.5 and took_fault < 1.5
        writes = node.client.writes
        time.sleep(1.5)  # idle: nothing changed, nothing written
        assert node.client.writes == writes
    finally:
        stop.set()
        worker.join(5)
    assert not worker.is_alive()


def test_stale_slices_of_deleted_nodes_are_removed(cluster, publish):
    # a node that goes away: its slices are owned by it, and the sweep finds what is left
    doomed = publish(admin=True)
    doomed.controller.reconcile()
    assert len(doomed.slices()) == 1
    # slices written for a node that never existed have no owner: only the sweep removes them
    ghost = publish(admin=True, node=f"{doomed.name}-ghost")
    ghost.controller.reconcile()
    assert len(ghost.slices()) == 1
    assert "ownerReferences" not in ghost.slices()[0]["metadata"]
    keeper = publish()
    keeper.controller.reconcile()

    cluster.delete_node(doomed.name)
    swept = ghost.controller.delete_stale_nodes()
    assert swept >= 1  # the ghost's slice, and the doomed node's unless the GC was faster
    wait_until(lambda: not doomed.slices() and not ghost.slices(), 30,
               "slices of deleted nodes to go", interval=0.05)
    assert len(keeper.slices()) == 1


def test_scheduler_allocates_a_published_pf(publish, api, namespace, cluster_objects):
    node = publish()
    node.controller.reconcile()
    cls = f"{namespace}-pf"
    cluster_objects(device_class(cls, "pf"))
    api.create(claim("pf", cls), namespace)
    api.create(pod("user", "pf", node.name), namespace)
    assert api.wait_pod_bound(namespace, "user")["spec"]["nodeName"] == node.name
    (result,) = allocation(api, namespace, "pf")
    print("allocated:", result)
    assert result["driver"] == DEFAULT_DRIVER and result["pool"] == node.name
    assert result["device"] in {"mock0", "mock1", "mock2", "mock3"}


def test_pf_not_allocatable_while_its_vf_is(publish, api, namespace, cluster_objects):
    node = publish(SimConfig(num_devices=1, total_vfs=2, num_vfs=2))
    node.controller.reconcile()
    assert set(node.devices()) == {"mock0", "mock0-vf0", "mock0-vf1"}
    cluster_objects(device_class(f"{namespace}-pf", "pf"))
    cluster_objects(device_class(f"{namespace}-vf", "vf"))

    api.create(claim("vf", f"{namespace}-vf"), namespace)
    api.create(pod("vf-user", "vf", node.name), namespace)
    api.wait_pod_bound(namespace, "vf-user")
    (vf,) = allocation(api, namespace, "vf")
    assert vf["device"] in {"mock0-vf0", "mock0-vf1"}

    api.create(claim("pf", f"{namespace}-pf"), namespace)
    api.create(pod("pf-user", "pf", node.name), namespace)
    api.wait_pod_unschedulable(namespace, "pf-user")
    assert allocation(api, namespace, "pf") == []

    # free the VF: the PF's counter is whole again and the PF is allocated
    api.delete("v1", "Pod", "vf-user", namespace, grace_period=0)
    api.wait_for(lambda: api.get_or_none("v1", "Pod", "vf-user", namespace) is None, 30,
                 what="the VF user to be gone")
    api.delete(RES, "ResourceClaim", "vf", namespace)
    api.wait_pod_bound(namespace, "pf-user", timeout=60)
    (pf,) = allocation(api, namespace, "pf")
    assert pf["device"] == "mock0"


def test_fallback_without_counters_is_accepted_and_allocatable(publish, api, namespace,
                                                              cluster_objects):
    node = publish(SimConfig(num_devices=2, total_vfs=2, num_vfs=2), partitionable=False)
    first = node.controller.reconcile()
    assert first.created == 1
    (only,) = node.slices()
    assert "sharedCounters" not in only["spec"] and only["spec"]["pool"]["resourceSliceCount"] == 1
    assert set(node.devices()) == {"mock0-vf0", "mock0-vf1", "mock1-vf0", "mock1-vf1"}
    assert not any("consumesCounters" in d for d in node.devices().values())
    assert node.controller.reconcile().writes == 0

    cluster_objects(device_class(f"{namespace}-vf", "vf"))
    api.create(claim("vf", f"{namespace}-vf"), namespace)
    api.create(pod("user", "vf", node.name), namespace)
    api.wait_pod_bound(namespace, "user")
    (result,) = allocation(api, namespace, "vf")
    assert result["device"].startswith("mock") and "-vf" in result["device"]

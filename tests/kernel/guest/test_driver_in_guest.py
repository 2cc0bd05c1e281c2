"""T2, the guest half: the slice controller and the kubelet plugin on the REAL module's sysfs and
/dev, talking to the REAL control plane of tests/cluster that runs on the host.

Started by tests/kernel/test_driver_vm.py, which boots the guest with the API server's port
forwarded (`run_in_guest(host_ports=[port])`: the host's 127.0.0.1:<port> is the guest's) and sets
  KUBECONFIG                    the node's kubeconfig (system:node:<NODE_NAME>): controller, plugin
  MOCK_ACCEL_ADMIN_KUBECONFIG   an admin kubeconfig: DeviceClass, claim, pod, checks
  NODE_NAME                     the Node object this guest stands for
  MOCK_ACCEL_T2_NAMESPACE       a namespace whose default ServiceAccount exists
  MOCK_ACCEL_KO                 the module (KernelBed insmods it with num_vfs=2)

The tests run in file order and share one module load, one controller, one plugin and one claim:
publish -> the scheduler allocates -> NodePrepareResources over gRPC marks the status register
-> a fault shows in the health stream and as a slice taint -> NodeUnprepareResources frees it.
Without that environment (e.g. `pytest tests/kernel/guest` from tests/kernel/test_kernel_vm.py)
nothing here is collected: the class below sets `__test__` from it.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mock_accel.abi import STATUS_ALLOCATED
from mock_accel.claims import PluginConfig
from mock_accel.controller import SliceController
from mock_accel.kube import KubeClient, KubeError
from mock_accel.kubelet import HealthStream, KubeletEmulator, RegisteredPlugin
from mock_accel.plugin import DriverPlugin
from mock_accel.slices import DEFAULT_DRIVER, RESOURCE_SLICES_PATH, build_slices, with_generation
from mock_accel.sysfs import SysfsNode
from mock_accel.uapi import DeviceFile
from mock_accel.wait import wait_until
from tests.harness.beds import KernelBed

NODE_NAME = os.environ.get("NODE_NAME", "")
NAMESPACE = os.environ.get("MOCK_ACCEL_T2_NAMESPACE", "")
ADMIN_KUBECONFIG = os.environ.get("MOCK_ACCEL_ADMIN_KUBECONFIG", "")
CONFIGURED = bool(os.environ.get("MOCK_ACCEL_IN_GUEST") == "1" and NODE_NAME and NAMESPACE
                  and ADMIN_KUBECONFIG and os.environ.get("KUBECONFIG"))

NUM_DEVICES, NUM_VFS = 4, 2
RES = "/apis/resource.k8s.io/v1"
PAUSE = "registry.k8s.io/pause:3.10"
TIMEOUT = 120.0          # TCG: every step is slow; the host's scheduler is not
TAINT_KEY = f"{DEFAULT_DRIVER}/unhealthy"


class World:
    """Everything the ordered tests share; filled in as they go."""

    def __init__(self, sysfs: SysfsNode, node: KubeClient, admin: KubeClient, workdir: Path):
        self.sysfs, self.node_client, self.admin, self.workdir = sysfs, node, admin, workdir
        self.controller = SliceController(node, NODE_NAME, sysfs)
        self.device_class = f"t2-{NODE_NAME}"
        self.plugin: DriverPlugin | None = None
        self.kubelet = KubeletEmulator(workdir / "registry", timeout=TIMEOUT)
        self.registered: RegisteredPlugin | None = None
        self.health: HealthStream | None = None
        self.claim: dict = {}
        self.device = ""
        self.faulty = ""
        self.timings: dict[str, float] = {}

    def slice_devices(self) -> dict[str, dict]:
        slices = self.admin.list(RES + "/resourceslices",
                                 field_selector=f"spec.nodeName={NODE_NAME}")
        return {d["name"]: d for s in slices for d in s["spec"].get("devices") or []}

    def ref(self) -> tuple[str, str, str]:
        meta = self.claim["metadata"]
        return meta["namespace"], meta["uid"], meta["name"]

    def cleanup(self) -> None:
        if self.health is not None:
            self.health.close()
        self.kubelet.close()
        if self.plugin is not None:
            self.plugin.stop()
        for path in (f"/api/v1/namespaces/{NAMESPACE}/pods/t2?gracePeriodSeconds=0",
                     f"{RES}/namespaces/{NAMESPACE}/resourceclaims/t2",
                     f"{RES}/deviceclasses/{self.device_class}"):
            try:
                self.admin.delete(path)
            except KubeError as err:
                print(f"cleanup of {path}: {err}")
        for item in self.admin.list(RESOURCE_SLICES_PATH,
                                    field_selector=f"spec.nodeName={NODE_NAME}"):
            self.admin.delete(f"{RESOURCE_SLICES_PATH}/{item['metadata']['name']}")


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    bed = KernelBed()
    sysfs = bed.load(num_devices=NUM_DEVICES, num_vfs=NUM_VFS)
    # unix socket paths must stay under 108 bytes
    workdir = Path(tempfile.mkdtemp(prefix="t2-", dir="/tmp"))
    shared = World(sysfs, KubeClient.from_kubeconfig(os.environ["KUBECONFIG"], timeout=60),
                   KubeClient.from_kubeconfig(ADMIN_KUBECONFIG, timeout=60), workdir)
    try:
        yield shared
    finally:
        shared.cleanup()
        print("T2 timings (s): " + ", ".join(f"{k} {v:.2f}" for k, v in shared.timings.items()))
        bed.close()          # rmmod: the host checks the guest's dmesg for leaks afterwards
        shutil.rmtree(workdir, ignore_errors=True)


class TestDriverOnTheRealModule:
    __test__ = CONFIGURED

    def test_controller_publishes_the_real_devices(self, world: World) -> None:
        names = world.sysfs.names()
        assert len(names) == NUM_DEVICES * (1 + NUM_VFS), names
        started = time.monotonic()
        result = world.controller.reconcile()
        world.timings["first reconcile"] = time.monotonic() - started
        assert result.created >= 1 and result.writes >= 1, result

        published = world.slice_devices()
        assert sorted(published) == sorted(names)
        for name in names:
            device = world.sysfs.read_device(name)
            attributes = published[name]["attributes"]
            assert attributes["uuid"] == {"string": device.uuid}, (name, attributes)
            assert attributes["pciAddress"] == {"string": device.pci_address}
            assert "taints" not in published[name]
        started = time.monotonic()
        assert world.controller.reconcile().writes == 0       # nothing changed: no writes
        world.timings["idle reconcile"] = time.monotonic() - started

    def test_guest_speaks_with_the_nodes_identity(self, world: World) -> None:
        """NodeRestriction: the node's credentials cannot publish another node's devices."""
        foreign = with_generation(build_slices(f"{NODE_NAME}-other", world.sysfs.discover()),
                                  1)[0]
        with pytest.raises(KubeError) as refused:
            world.node_client.create(RESOURCE_SLICES_PATH, foreign)
        assert refused.value.status == 403, refused.value

    def test_real_scheduler_allocates_a_device_of_this_node(self, world: World) -> None:
        admin = world.admin
        admin.create(RES + "/deviceclasses", {
            "apiVersion": "resource.k8s.io/v1", "kind": "DeviceClass",
            "metadata": {"name": world.device_class},
            "spec": {"selectors": [{"cel": {
                "expression": f'device.driver == "{DEFAULT_DRIVER}"'}}]}})
        admin.create(f"{RES}/namespaces/{NAMESPACE}/resourceclaims", {
            "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
            "metadata": {"name": "t2"},
            "spec": {"devices": {"requests": [{"name": "accel", "exactly": {
                "deviceClassName": world.device_class}}]}}})
        admin.create(f"/api/v1/namespaces/{NAMESPACE}/pods", {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "t2"},
            "spec": {"containers": [{"name": "main", "image": PAUSE,
                                     "resources": {"claims": [{"name": "accel"}]}}],
                     "resourceClaims": [{"name": "accel", "resourceClaimName": "t2"}],
                     "terminationGracePeriodSeconds": 0,
                     "affinity": {"nodeAffinity": {
                         "requiredDuringSchedulingIgnoredDuringExecution": {
                             "nodeSelectorTerms": [{"matchFields": [{
                                 "key": "metadata.name", "operator": "In",
                                 "values": [NODE_NAME]}]}]}}}}})
        started = time.monotonic()

        def allocated() -> dict | None:
            claim = admin.get(f"{RES}/namespaces/{NAMESPACE}/resourceclaims/t2")
            return claim if (claim.get("status") or {}).get("allocation") else None

        world.claim = wait_until(allocated, TIMEOUT, "the scheduler to allocate claim t2",
                                 interval=0.5)
        world.timings["allocation"] = time.monotonic() - started
        (result,) = world.claim["status"]["allocation"]["devices"]["results"]
        assert (result["driver"], result["pool"]) == (DEFAULT_DRIVER, NODE_NAME)
        assert result["device"] in world.sysfs.names()
        world.device = result["device"]
        pod = wait_until(lambda: admin.get(f"/api/v1/namespaces/{NAMESPACE}/pods/t2")["spec"]
                         .get("nodeName"), TIMEOUT, "the pod to be bound", interval=0.5)
        assert pod == NODE_NAME

    def test_prepare_over_grpc_marks_the_real_status_register(self, world: World) -> None:
        assert world.device, "no allocation"
        config = PluginConfig(driver=DEFAULT_DRIVER, node_name=NODE_NAME,
                              plugins_dir=world.workdir / "plugins",
                              registry_dir=world.workdir / "registry",
                              cdi_dir=world.workdir / "cdi", sysfs_root="/")
        world.plugin = DriverPlugin(config, world.node_client)
        world.plugin.start()
        world.registered = world.kubelet.register(
            world.kubelet.wait_for_socket(timeout=TIMEOUT))
        assert world.registered.service == "v1.DRAPlugin"
        device, uid = world.device, world.claim["metadata"]["uid"]
        assert not world.sysfs.read_device(device).allocated

        started = time.monotonic()
        answer = world.registered.prepare([world.ref()])
        world.timings["NodePrepareResources"] = time.monotonic() - started
        assert not answer[uid].error, answer
        (prepared,) = answer[uid].devices
        assert (prepared.pool_name, prepared.device_name, prepared.request_names) == \
            (NODE_NAME, device, ["accel"])

        # the register, through sysfs and through the character device's STATUS ioctl
        assert world.sysfs.read_device(device).status & STATUS_ALLOCATED
        with DeviceFile(world.sysfs.dev_path(device)) as dev:
            assert dev.status() & STATUS_ALLOCATED
        others = [d for d in world.sysfs.discover() if d.name != device]
        assert not any(d.allocated for d in others)

        # the CDI spec names the real device
        real = world.sysfs.read_device(device)
        spec = world.plugin.cdi.read_claim_spec(uid)
        assert spec is not None
        env = spec["containerEdits"]["env"]
        assert f"MOCK_ACCEL_UUID={real.uuid}" in env
        assert f"MOCK_ACCEL_PCI={real.pci_address}" in env
        assert f"MOCK_ACCEL_DEVICE={device}" in env
        assert f"MOCK_ACCEL_DEVICE_PATH=/dev/{device}" in env
        (cdi_device,) = spec["devices"]
        assert prepared.cdi_device_ids == [f"{spec['kind']}={cdi_device['name']}"]
        assert cdi_device["containerEdits"]["deviceNodes"] == [{"path": f"/dev/{device}"}]
        assert Path(f"/dev/{device}").is_char_device()

    def test_fault_shows_in_health_stream_and_slice_taint(self, world: World) -> None:
        assert world.registered is not None, "no plugin"
        world.health = world.registered.watch_health()
        first = world.health.next(timeout=TIMEOUT)
        assert set(first) == set(world.sysfs.names())
        assert set(first.values()) == {"HEALTHY"}, first
        # a PF of another family than the allocated device's
        family = world.sysfs.read_device(world.device).pf_name
        world.faulty = next(d.name for d in world.sysfs.discover()
                            if d.is_pf and d.name != family)

        started = time.monotonic()
        world.sysfs.inject_fault(world.faulty)
        assert world.sysfs.read_device(world.faulty).health == "failed"
        world.health.wait_for(lambda m: m.get(world.faulty) == "UNHEALTHY", TIMEOUT)
        world.timings["fault -> health stream"] = time.monotonic() - started
        assert world.health.latest[world.device] == "HEALTHY"

        result = world.controller.reconcile()
        assert result.updated >= 1, result
        published = world.slice_devices()
        (taint,) = published[world.faulty]["taints"]
        assert (taint["key"], taint["value"], taint["effect"]) == \
            (TAINT_KEY, "failed", "NoSchedule")
        assert "taints" not in published[world.device]

        world.sysfs.inject_fault(world.faulty, failed=False)
        world.health.wait_for(lambda m: m.get(world.faulty) == "HEALTHY", TIMEOUT)
        assert world.controller.reconcile().updated >= 1
        assert "taints" not in world.slice_devices()[world.faulty]

    def test_unprepare_frees_the_register(self, world: World) -> None:
        assert world.registered is not None and world.plugin is not None, "no plugin"
        uid = world.claim["metadata"]["uid"]
        started = time.monotonic()
        assert world.registered.unprepare([world.ref()]) == {uid: ""}
        world.timings["NodeUnprepareResources"] = time.monotonic() - started
        assert not world.sysfs.read_device(world.device).allocated
        with DeviceFile(world.sysfs.dev_path(world.device)) as dev:
            assert not dev.status() & STATUS_ALLOCATED
        assert world.plugin.cdi.read_claim_spec(uid) is None
        assert world.plugin.prepared_claims() == {}
        assert not any(d.allocated for d in world.sysfs.discover())

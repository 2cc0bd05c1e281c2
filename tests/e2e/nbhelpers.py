"""What the e2e notebooks (`nbs/e2e/`) share, in both modes: tables of what the cluster shows,
claims with selectors, the devices as the cluster publishes them, and (local mode) the node
handles `mock_accel.demo.Demo` prepares through."""
from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from mock_accel.cdi import CdiRegistry
from mock_accel.demo import DemoClaim
from mock_accel.kube import KubeClient, KubeError
from mock_accel.sysfs import Device, Inventory

RESOURCE = "/apis/resource.k8s.io/v1"


def kubectl_bin() -> str:
    from mock_accel.localnodes import _bin
    return _bin("kubectl")


def kubectl(kubeconfig: str, *args: str, check: bool = True, timeout: float = 120) -> str:
    result = subprocess.run([kubectl_bin(), f"--kubeconfig={kubeconfig}", *args],
                            capture_output=True, text=True, timeout=timeout)
    if check and result.returncode:
        raise RuntimeError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n"
                           f"{result.stderr.strip()[-2000:]}")
    return result.stdout


def wait_until(predicate, timeout: float, what: str, interval: float = 0.5):
    """The first truthy value of `predicate()`; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# -- what the cluster shows ----------------------------------------------------------------------
def our_slices(client: KubeClient, driver: str) -> list[dict]:
    return client.list(f"{RESOURCE}/resourceslices", field_selector=f"spec.driver={driver}")


def slice_rows(slices: list[dict]) -> list[dict]:
    """One row per node: what its pool publishes."""
    nodes: dict[str, dict] = {}
    for item in slices:
        spec = item["spec"]
        row = nodes.setdefault(spec["nodeName"], {
            "node": spec["nodeName"], "pool": spec["pool"]["name"],
            "generation": spec["pool"]["generation"], "slices": 0, "PFs": 0, "VFs": 0,
            "counter sets": 0, "tainted": 0})
        row["slices"] += 1
        row["counter sets"] += len(spec.get("sharedCounters") or [])
        for device in spec.get("devices") or []:
            kind = device["attributes"]["deviceType"]
            row["PFs" if kind["string"] == "pf" else "VFs"] += 1
            row["tainted"] += bool(device.get("taints"))
    return sorted(nodes.values(), key=lambda r: r["node"])


def device_class_rows(client: KubeClient, names: list[str]) -> list[dict]:
    rows = []
    for name in names:
        try:
            item = client.get(f"{RESOURCE}/deviceclasses/{name}")
        except KubeError as err:
            rows.append({"DeviceClass": name, "present": False, "selector": err.reason})
            continue
        selectors = [s["cel"]["expression"] for s in item["spec"].get("selectors") or []]
        rows.append({"DeviceClass": name, "present": True, "selector": " && ".join(selectors)})
    return rows


def daemonset_rows(client: KubeClient, namespace: str) -> list[dict]:
    rows = []
    for ds in client.list(f"/apis/apps/v1/namespaces/{namespace}/daemonsets"):
        status = ds.get("status") or {}
        rows.append({"DaemonSet": ds["metadata"]["name"],
                     "desired": status.get("desiredNumberScheduled", 0),
                     "scheduled": status.get("currentNumberScheduled", 0),
                     "ready": status.get("numberReady", 0),
                     "up to date": status.get("updatedNumberScheduled", 0),
                     "images": ", ".join(c["image"] for c in
                                         ds["spec"]["template"]["spec"]["containers"])})
    return rows


# -- the devices as the cluster sees them (kind: the picture cannot read the node's sysfs) --------
def inventory_from_slices(slices: list[dict], driver: str, node: str) -> Inventory:
    """The node's devices rebuilt from its published slices (attributes the slices do not carry,
    such as the status register, are left at neutral values)."""
    inventory = Inventory()
    for item in slices:
        if item["spec"]["nodeName"] != node:
            continue
        for entry in item["spec"].get("devices") or []:
            attrs = {k.rpartition("/")[2]: next(iter(v.values()))
                     for k, v in entry["attributes"].items()}
            inventory.devices[entry["name"]] = Device(
                name=entry["name"], device_type=attrs["deviceType"], uuid=attrs.get("uuid", ""),
                memory_size=0, numa_node=int(attrs.get("numaNode", 0)), capabilities=0,
                status=0, fw_version=str(attrs.get("fwVersion", "")), revision=0,
                pci_address=attrs.get("pciAddress", ""), pcie_root=attrs.get("pcieRoot", ""),
                health="failed" if entry.get("taints") else "ok", wordlist_loaded=False,
                wordlist_size=0, passphrase_count=0, physfn=attrs.get("physfn"))
    return inventory


@dataclass
class SliceView:
    """Something with `discover()` (what `mock_accel.demo.plot_topology` reads) over the API."""
    client: KubeClient
    driver: str
    node: str

    def discover(self) -> Inventory:
        return inventory_from_slices(our_slices(self.client, self.driver), self.driver, self.node)


# -- claims --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Claim(DemoClaim):
    """A `DemoClaim` with a CEL selector on its first request, a node to run on, and the pod's
    image and command (kind runs them; locally nothing does)."""
    cel: str = ""
    node: str = ""
    image: str = "busybox"
    command: tuple[str, ...] = ("sh", "-c", "env | grep MOCK_ACCEL && sleep 3600")

    def manifest(self, namespace: str, driver: str) -> dict:
        manifest = super().manifest(namespace, driver)
        if self.cel:
            manifest["spec"]["devices"]["requests"][0]["exactly"]["selectors"] = [
                {"cel": {"expression": self.cel}}]
        return manifest

    def pod(self, namespace: str, node_selector: dict | None = None) -> dict:
        pod = super().pod(namespace, node_selector)
        container = pod["spec"]["containers"][0]
        container["image"], container["command"] = self.image, list(self.command)
        container["imagePullPolicy"] = "IfNotPresent"
        # the driver image runs as a non-root user; /dev/mockN is root's (dev_mode 0600)
        container["securityContext"] = {"runAsUser": 0}
        if self.node:
            pod["spec"]["nodeSelector"] = {**pod["spec"].get("nodeSelector", {}),
                                           "kubernetes.io/hostname": self.node}
        return pod


def seed_manifests(namespace: str, image: str = "busybox") -> tuple[dict, dict]:
    """The claim and pod of the seed chart's README, in the shape `resource.k8s.io/v1` accepts:
    the request's class and count move under `exactly`."""
    claim = {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
             "metadata": {"name": "test-claim", "namespace": namespace},
             "spec": {"devices": {"requests": [
                 {"name": "accel", "exactly": {"deviceClassName": "mock-accel-pf", "count": 1}}]}}}
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "test-pod", "namespace": namespace},
           "spec": {"terminationGracePeriodSeconds": 0,
                    "resourceClaims": [{"name": "accel", "resourceClaimName": "test-claim"}],
                    "containers": [{"name": "test", "image": image,
                                    "imagePullPolicy": "IfNotPresent",
                                    "command": ["sh", "-c", "env | grep MOCK_ACCEL && sleep 3600"],
                                    "resources": {"claims": [{"name": "accel"}]}}]}}
    return claim, pod


# -- local mode: the nodes Demo prepares on ------------------------------------------------------
@dataclass
class LocalNode:
    """What `mock_accel.demo.Demo` needs of a node: the plugin's DRA socket (as the kubelet
    connects to it), the CDI specs the runtime would read, and the simulated devices."""
    name: str
    dra_socket: Path
    cdi: CdiRegistry
    sim: object

    def discover(self):
        return self.sim.discover()

    def stop(self) -> None:  # the processes belong to the install, not to the scenario
        pass


def cdi_host_paths(spec: dict) -> list[str]:
    """Every host path a CDI spec makes the runtime open: device nodes and mount sources."""
    paths = []
    edits = [spec.get("containerEdits") or {}] + [d.get("containerEdits") or {}
                                                   for d in spec.get("devices") or []]
    for edit in edits:
        paths += [n.get("hostPath") or n["path"] for n in edit.get("deviceNodes") or []]
        paths += [m["hostPath"] for m in edit.get("mounts") or []]
    return paths


# -- kind nodes (containers on this host) -------------------------------------------------------
def kind_module_line(node: str) -> str:
    """mock_accel's line of /proc/modules as the kind node sees it ('' when not loaded)."""
    listing = subprocess.run(["docker", "exec", node, "cat", "/proc/modules"],
                             capture_output=True, text=True, check=True).stdout
    return next((line for line in listing.splitlines() if line.startswith("mock_accel ")), "")


MKNOD = """set -e
for dev in /sys/class/mock-accel/*/dev; do
  name=$(basename "$(dirname "$dev")")
  [ -e "/dev/$name" ] || mknod -m 0600 "/dev/$name" c $(tr ':' ' ' < "$dev")
  echo "$name"
done"""


def kind_device_nodes(node: str) -> list[str]:
    """Make /dev/<name> in the kind node for every mock-accel device (major:minor from sysfs)."""
    made = subprocess.run(["docker", "exec", node, "sh", "-c", MKNOD], capture_output=True,
                          text=True, check=True).stdout.split()
    if not made:
        raise AssertionError(f"{node}: no mock-accel devices in /sys/class/mock-accel")
    return made


def to_frame(rows: list[dict]):
    import pandas as pd
    return pd.DataFrame(rows)


def save_yaml(path: Path, objects: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all(objects))
    return path


def save_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, default=str) + "\n")
    return path

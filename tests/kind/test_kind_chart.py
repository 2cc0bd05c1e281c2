"""The chart on a kind cluster, its images pulled from a registry built here (issue 14 items 2, 3).

`make test-kind` runs it (not `make test`). The session's fixture (tests/kind/conftest.py)
starts the local registry (tools/registry: busybox as `library/busybox:latest`, the driver
image of `make images`), creates a kind cluster from the offline node image with
tests/e2e/kind/kind-config.yaml and points its containerd at the registry. Then: a plain
busybox pod (`image: busybox:latest`, pull policy Always) runs unchanged; `helm install` of
the chart in simulation mode gets both DaemonSets Running and Ready on each of the two workers
(`Cluster.device_nodes()`: kind taints the control plane), each worker's real kubelet registers
the plugin, each worker's slices are published; a pod with a ResourceClaim for one PF
(tests/kind/pf-pod.yaml) lands on a worker and prints the allocated device's uuid (a device of
that worker) from its env and from sysfs. Pod, kubelet and containerd
logs and the times land in artifacts/kind/, on failure too; the cluster is deleted, on failure
too.
"""
from __future__ import annotations

import json
import os
import time

import pytest

from mock_accel.wait import wait_until
from tests.kind.conftest import ARTIFACTS, MEASURE, run
from tools.locate import REPO

pytestmark = [pytest.mark.kind, pytest.mark.skipif(
    os.environ.get("MOCK_ACCEL_KIND_TEST") != "1",
    reason="creates a kind cluster: `make test-kind` runs it (MOCK_ACCEL_KIND_TEST=1)")]
POD = REPO / "tests" / "kind" / "pf-pod.yaml"
NS = "mock-device"  # the chart's namespace.name
DRIVER = "mock-accel.example.com"


def _get(c, *args: str) -> dict:
    return json.loads(c.kubectl_run("get", *args, "-o", "json").stdout)


def _finished(c, name: str) -> str | None:
    phase = c.kubectl_run("get", "pod", name, "-o", "jsonpath={.status.phase}").stdout
    return phase if phase in ("Succeeded", "Failed") else None


def test_busybox_latest_pulls_from_the_local_registry(kind):
    """`image: busybox:latest`, pull policy Always: docker.io resolves to our registry."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "plain-busybox"},
           "spec": {"restartPolicy": "Never", "containers": [{
               "name": "hello", "image": "busybox:latest", "imagePullPolicy": "Always",
               "command": ["sh", "-c", "echo hello from busybox $(busybox | head -n 1)"]}]}}
    t0 = time.monotonic()
    kind.kubectl_run("apply", "-f", "-", input=json.dumps(pod))
    assert wait_until(lambda: _finished(kind, "plain-busybox"), timeout=180, interval=2,
                      what="pod plain-busybox to finish") == "Succeeded"
    MEASURE["busybox_pod_seconds"] = round(time.monotonic() - t0, 1)
    assert kind.kubectl_run("logs", "plain-busybox").stdout.startswith("hello from busybox BusyBox")
    status = _get(kind, "pod", "plain-busybox")["status"]["containerStatuses"][0]
    assert status["image"] == "docker.io/library/busybox:latest"
    assert status["imageID"].startswith("docker.io/library/busybox@sha256:")


def _ready_pods(c) -> list[str] | None:
    """The chart's pods when there are two (controller, node agent) on each device node and
    none elsewhere, all Running and Ready."""
    pods = _get(c, "pods", "-n", NS)["items"]
    ok = [p["metadata"]["name"] for p in pods if p["status"].get("phase") == "Running"
          and all(s["ready"] for s in p["status"].get("containerStatuses", [{"ready": False}]))]
    where = sorted(p["spec"].get("nodeName", "") for p in pods)
    want = sorted(2 * c.device_nodes())
    return ok if where == want and len(ok) == len(want) else None


def _slices(c) -> list[dict]:
    """Our driver's slices, once every device node has some (each node's devices are its own)."""
    slices = [s for s in _get(c, "resourceslices")["items"] if s["spec"]["driver"] == DRIVER]
    nodes = {s["spec"].get("nodeName") for s in slices}
    assert nodes <= set(c.device_nodes()), f"slices of {nodes}: not only the device nodes"
    return slices if nodes == set(c.device_nodes()) else []


def _printed(c, name: str) -> str | None:
    """The pod's log once it printed its last line; a pod that ended first is a failure."""
    phase = c.kubectl_run("get", "pod", name, "-o", "jsonpath={.status.phase}").stdout
    assert phase in ("Pending", "Running"), c.kubectl_run("describe", "pod", name).stdout[-3000:]
    logs = c.kubectl_run("logs", name, check=False).stdout if phase == "Running" else ""
    return logs if "SYSFS_UUID=" in logs else None


def test_chart_in_simulation_mode_gives_a_pod_its_pf(kind):
    """helm install → pods Ready, plugin registered with the real kubelet, slices published;
    then the plain manifest's pod prints its device's uuid from env and from sysfs."""
    t0 = time.monotonic()
    run(kind.helm, "install", "mock-device", str(REPO / "chart"), "--kubeconfig",
         str(kind.kubeconfig), "--set", "simulation.enabled=true", timeout=300)
    assert wait_until(lambda: _slices(kind) or None, timeout=300, interval=2,
                      what="ResourceSlices of the node")
    MEASURE["helm_install_to_slices_seconds"] = round(time.monotonic() - t0, 1)
    # the probes are the kubelet's own: gRPC health for the node agent, HTTP for the controller
    pods = wait_until(lambda: _ready_pods(kind), timeout=300, interval=2,
                      what="the chart's pods Running and Ready")
    MEASURE["helm_install_to_ready_seconds"] = round(time.monotonic() - t0, 1)
    print(f"ready: {pods}")
    # every device node's real kubelet registered the plugin: its registration socket is where
    # it watches (the driver's own directory in plugins_registry: the watcher walks into it)
    for node in kind.device_nodes():
        reg = run("docker", "exec", node, "ls",
                  f"/var/lib/kubelet/plugins_registry/{DRIVER}").stdout
        assert [x for x in reg.split() if x.endswith("-reg.sock")], (node, reg)  # claims.py
    # the kubelet answers a registration with NotifyRegistrationStatus(registered=True), which
    # the plugin logs (the kubelet itself says nothing about it at kind's verbosity)
    agents = [p for p in pods if "node-agent" in p]
    assert len(agents) == len(kind.device_nodes())
    for agent in agents:
        registered = [x for x in kind.kubectl_run("logs", "-n", NS, agent).stdout.splitlines()
                      if "registered with the kubelet" in x]
        assert registered, f"the kubelet never confirmed the registration of {agent}"

    t1 = time.monotonic()
    kind.kubectl_run("apply", "-f", str(POD))
    # the pod keeps running (sleep) so that its claim stays allocated while we read it
    logs = wait_until(lambda: _printed(kind, "pf-user"), timeout=180, interval=2,
                      what="pod pf-user to print its device")
    MEASURE["pf_pod_to_printed_seconds"] = round(time.monotonic() - t1, 1)
    out = dict(line.split("=", 1) for line in logs.splitlines() if "=" in line)
    claim = _get(kind, "resourceclaim", "one-pf")
    [result] = claim["status"]["allocation"]["devices"]["results"]
    # the pod ran on a worker (kind taints the control plane), with a device of that node
    node = _get(kind, "pod", "pf-user")["spec"]["nodeName"]
    assert node in kind.device_nodes() and not node.endswith("-control-plane"), node
    [device] = [d for s in _slices(kind) if s["spec"]["pool"]["name"] == result["pool"]
                and s["spec"]["nodeName"] == node
                for d in s["spec"]["devices"] if d["name"] == result["device"]]
    uuid = device["attributes"]["uuid"]["string"]
    assert device["attributes"]["deviceType"]["string"] == "pf"
    assert out["MOCK_ACCEL_UUID"] == uuid
    assert out["SYSFS_UUID"] == uuid
    assert out["MOCK_ACCEL_DEVICE"] == result["device"]
    (ARTIFACTS / "pf-user.txt").parent.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "pf-user.txt").write_text(
        f"{json.dumps(out)}\nallocated {result['pool']}/{result['device']} uuid {uuid} "
        f"on {node}\n"
        + "\n".join(registered[-3:]) + "\n")

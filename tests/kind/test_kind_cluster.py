"""A kind cluster from the offline node image (tools/kind): Ready, runs a pod, is deleted.

`make test-kind` runs it (not `make test`: a cold node image takes minutes, a cluster about a
minute more). The session's cluster (tests/kind/conftest.py, tools/kind/cluster) comes from
`kind create cluster --image mock-accel/kind-node:... --config tests/e2e/kind/kind-config.yaml`;
this checks every node is Ready with our kubelet version and runs a pod from a busybox image
built here and loaded with `kind load docker-image`. Times and memory land in
artifacts/kind/measure.json.
"""
from __future__ import annotations

import json
import os
import time

import pytest

from mock_accel.wait import wait_until
from tests.kind.conftest import MEASURE, run
from tools.images.busybox import build_busybox
from tools.kind import nodeimage

pytestmark = [pytest.mark.kind, pytest.mark.skipif(
    os.environ.get("MOCK_ACCEL_KIND_TEST") != "1",
    reason="creates a kind cluster: `make test-kind` runs it (MOCK_ACCEL_KIND_TEST=1)")]
BUSYBOX = "mock-accel/busybox:kind-test"


def _memory_mib(container: str) -> float:
    out = run("docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", container).stdout
    used = out.split("/")[0].strip()
    scale = {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}
    return round(float(used[:-3]) * scale[used[-3:]], 1)


def test_node_is_ready_and_runs_a_pod(kind):
    nodes = json.loads(kind.kubectl_run("get", "nodes", "-o", "json").stdout)["items"]
    ready = {n["metadata"]["name"]: [c["status"] for c in n["status"]["conditions"]
                                     if c["type"] == "Ready"] for n in nodes}
    assert ready == {node: ["True"] for node in kind.nodes()}
    assert nodes[0]["status"]["nodeInfo"]["kubeletVersion"] == nodeimage.k8s_version()
    image = build_busybox(BUSYBOX, own_id=True)  # the project's one busybox builder (tools/images)
    run(kind.kind, "load", "docker-image", image, "--name", kind.name)
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hello"},
           "spec": {"restartPolicy": "Never", "containers": [{
               "name": "hello", "image": image, "imagePullPolicy": "Never",
               "command": ["sh", "-c", "echo hello from $(cat /etc/hostname)"]}]}}
    t0 = time.monotonic()
    # kind waits for the node, not for the controller-manager's first work: a pod is refused
    # until the namespace's default service account exists
    wait_until(lambda: kind.kubectl_run("get", "serviceaccount", "default", check=False)
               .returncode == 0, timeout=120, interval=1, what="serviceaccount default")
    kind.kubectl_run("apply", "-f", "-", input=json.dumps(pod))

    def phase():
        out = kind.kubectl_run("get", "pod", "hello", "-o", "jsonpath={.status.phase}").stdout
        return out if out in ("Succeeded", "Failed") else None

    assert wait_until(phase, timeout=180, interval=2, what="pod hello to finish") == "Succeeded"
    assert kind.kubectl_run("logs", "hello").stdout.strip() == "hello from hello"
    MEASURE.update({"pod_seconds": round(time.monotonic() - t0, 1),
                    "node_memory_mib": _memory_mib(kind.nodes()[0])})
    print(MEASURE)

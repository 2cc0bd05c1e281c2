"""`mock-accel controller` as a process, the way the chart runs it: NODE_NAME from the
environment, a simulated node, the real apiserver; SIGTERM stops it cleanly."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from mock_accel.kube import KubeClient
from mock_accel.sim import SimConfig, SimNode
from mock_accel.wait import wait_until

pytestmark = pytest.mark.cluster
SLICES = "/apis/resource.k8s.io/v1/resourceslices"


def test_controller_command(cluster, tmp_path):
    client = KubeClient.from_kubeconfig(cluster.kubeconfig)
    (node_name,) = cluster.create_nodes(1, prefix="cli")
    sim = SimNode.create(tmp_path / "root", SimConfig(num_devices=2, numa_nodes=1))
    env = {**os.environ, "NODE_NAME": node_name}
    process = subprocess.Popen(
        [sys.executable, "-m", "mock_accel.cli", "controller", "--kubeconfig",
         str(cluster.kubeconfig), "--sysfs-root", str(sim.root), "--rescan-interval", "30s",
         "-v", "2"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def devices():
            items = client.list(SLICES, field_selector=f"spec.nodeName={node_name}")
            return [d for s in items for d in s["spec"].get("devices", [])]
        published = wait_until(devices, 20, "slices", interval=0.2)
        assert sorted(d["name"] for d in published) == ["mock0", "mock1"]
        sim.inject_fault("mock1")
        tainted = wait_until(lambda: [d["name"] for d in devices() if d.get("taints")], 5,
                             "the taint", interval=0.2)
        assert tainted == ["mock1"]
    finally:
        process.send_signal(signal.SIGTERM)
        _, logs = process.communicate(timeout=20)
        for item in client.list(SLICES, field_selector=f"spec.nodeName={node_name}"):
            client.delete(f"{SLICES}/{item['metadata']['name']}")
        cluster.delete_node(node_name)
    assert process.returncode == 0, logs[-2000:]
    records = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert any(r["msg"] == "controller starting" and r["node"] == node_name for r in records)

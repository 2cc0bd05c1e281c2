"""How the host tells why the guest node is not Ready (VmNode.not_ready_reason, log_tails):
against the real API server of the test session, no guest."""
from __future__ import annotations

import pytest

from tools.vmnode.node import VmNode

KUBELET_LOG = """I1202 02:07:30.1 kubelet.go:1] Starting kubelet
E1202 02:07:31.2 kubelet.go:2] "Unable to register node with API server" err="dial tcp: refused"
W1202 02:07:31.3 kubelet.go:3] warning only
"""
CONTAINERD_LOG = 'time="x" level=info msg="ok"\ntime="y" level=error msg="failed to load cni"\n'


@pytest.fixture
def node(cluster, tmp_path):
    n = VmNode("pause", name="vmnode-ready-test")
    n.cluster, n.run_dir = cluster, tmp_path
    yield n
    cluster.api.delete("v1", "Node", n.name)  # missing_ok


def _status(api, name: str, ready: str) -> None:
    cond = {"type": "Ready", "status": ready, "reason": "KubeletNotReady",
            "message": "container runtime network not ready",
            "lastTransitionTime": "2026-12-02T00:00:00Z"}
    api.patch("v1", "Node", name, {"status": {"conditions": [cond]}}, subresource="status")


def test_not_ready_reason_names_each_state_of_the_node(node) -> None:
    api = node.cluster.api
    assert node.not_ready_reason() == "not registered"
    api.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node.name}})
    assert node.not_ready_reason() == "registered, no Ready condition yet"
    _status(api, node.name, "False")
    assert node.not_ready_reason() == ("Ready=False KubeletNotReady: "
                                       "container runtime network not ready")
    _status(api, node.name, "True")
    assert node.not_ready_reason() is None


def test_log_tails_keep_the_error_lines_of_both_logs(node, tmp_path) -> None:
    assert node.log_tails() == ""  # no logs yet: nothing to add
    (tmp_path / "kubelet.log").write_text(KUBELET_LOG)
    (tmp_path / "containerd.log").write_text(CONTAINERD_LOG)
    tails = node.log_tails()
    assert "Unable to register node" in tails and "failed to load cni" in tails
    assert "Starting kubelet" not in tails and "warning only" not in tails

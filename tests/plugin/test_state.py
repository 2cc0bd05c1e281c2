"""Issue 15, items 1–3: the prepared state survives a corrupt checkpoint, stray files and
adminAccess claims. `NodeClaims` on a simulated node, the API server is `FakeKube` (the claims'
allocation results), no sockets.
"""

from __future__ import annotations

import logging

import pytest

from mock_accel.claims import ClaimRef, NodeClaims, PluginConfig
from mock_accel.kube import FakeKube
from mock_accel.sim import SimConfig, SimNode

DRIVER = "mock-accel.example.com"
TORN = '{"version": 1, "claims": {"x"'


def claim(name: str, uid: str, devices: list[str], admin: bool = False) -> dict:
    results = [{"request": "accel", "driver": DRIVER, "pool": "node-a", "device": device}
               | ({"adminAccess": True} if admin else {}) for device in devices]
    return {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
            "metadata": {"name": name, "namespace": "ns", "uid": uid},
            "status": {"allocation": {"devices": {"results": results}}}}


@pytest.fixture
def make_claims(tmp_path):
    """make_claims(api, pod_uid=None) -> NodeClaims of node-a (4 simulated devices) in tmp_path."""
    def make(api, **options) -> NodeClaims:
        root = tmp_path / "sys"
        node = SimNode(root) if root.exists() else \
            SimNode.create(root, SimConfig(num_devices=4, total_vfs=0))
        config = PluginConfig(driver=DRIVER, node_name="node-a", plugins_dir=tmp_path / "plugins",
                              registry_dir=tmp_path / "registry", cdi_dir=tmp_path / "cdi",
                              sysfs_root=root, **options)
        return NodeClaims(config, api, node=node)
    return make


def allocated(claims: NodeClaims) -> list[str]:
    return [d.name for d in claims.node.discover() if d.allocated]


def test_corrupt_checkpoint_at_start_up_frees_nothing(make_claims, caplog):
    api = FakeKube([claim("one", "u1", ["mock0"]), claim("two", "u2", ["mock1"])])
    first = make_claims(api)
    answers = first.prepare([ClaimRef("ns", "u1", "one"), ClaimRef("ns", "u2", "two")])
    assert not any(a.error for a in answers.values())
    first.cdi.remove_claim_spec("u2")                  # and /var/run/cdi lost u2's spec
    first.checkpoint.path.write_text(TORN)
    with caplog.at_level(logging.ERROR):
        restarted = make_claims(api)
    assert allocated(restarted) == ["mock0", "mock1"]
    assert restarted.cdi.claim_uids() == {"u1", "u2"}  # u2's spec restored from the API's results
    assert set(restarted.prepared_claims()) == {"u1", "u2"}
    assert set(restarted.checkpoint.load()) == {"u1", "u2"}
    assert "is corrupt" in caplog.text and "rebuilt 2 claim(s)" in caplog.text
    assert restarted.unprepare([ClaimRef("ns", "u1", "one")])["u1"].error == ""
    assert allocated(restarted) == ["mock1"]


def test_corrupt_checkpoint_without_the_api_keeps_devices(make_claims):
    api = FakeKube([claim("one", "u1", ["mock0"])])
    first = make_claims(api)
    assert not first.prepare([ClaimRef("ns", "u1", "one")])["u1"].error
    first.node.set_allocated("mock3", True)            # held, but nothing says by whom
    first.checkpoint.path.write_text(TORN)
    api.fail("GET", 0)                                 # the API server is down
    restarted = make_claims(api)
    assert set(restarted.prepared_claims()) == {"u1"}  # from the CDI spec on disk
    assert allocated(restarted) == ["mock0", "mock3"]
    assert restarted.reconcile_report.kept == ["mock3"]


def test_corrupt_checkpoint_at_run_time_keeps_the_claims_in_memory(make_claims):
    api = FakeKube([claim("one", "u1", ["mock0"]), claim("two", "u2", ["mock1"])])
    agent = make_claims(api, pod_uid="pod-1")          # rolling-update mode: reloads every call
    assert not agent.prepare([ClaimRef("ns", "u1", "one")])["u1"].error
    agent.checkpoint.path.write_text(TORN)
    assert not agent.prepare([ClaimRef("ns", "u2", "two")])["u2"].error
    assert set(agent.prepared_claims()) == {"u1", "u2"}
    assert set(agent.checkpoint.load()) == {"u1", "u2"}
    assert allocated(agent) == ["mock0", "mock1"]

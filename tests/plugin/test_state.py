"""Issue 15, items 1–3: the prepared state survives a corrupt checkpoint, stray files and
adminAccess claims; the dead sockets of earlier pods are removed. `NodeClaims` on a simulated
node (a `DriverPlugin` for the sockets), the API server is `FakeKube` (the claims' allocation
results).
"""

from __future__ import annotations

import hashlib
import json
import logging
import socket

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


def signed(claims: dict) -> str:
    """A checkpoint whose checksum is right, whatever `claims` holds."""
    canonical = json.dumps(claims, sort_keys=True, separators=(",", ":"))
    checksum = hashlib.sha256(canonical.encode()).hexdigest()
    return json.dumps({"version": 1, "checksum": checksum, "claims": claims})


RECORD = {"uid": "u1", "namespace": "ns", "name": "one", "devices": [
    {"request": "accel", "pool": "node-a", "device": "mock0", "cdi_ids": ["k=u1-mock0"]}]}


@pytest.mark.parametrize("text", [
    signed({"../u1": RECORD | {"uid": "../u1"}}),            # a UID that escapes the CDI dir
    signed({"u1": RECORD | {"devices": [7]}}),               # wrong types
    signed({"u1": RECORD | {"name": ["x"]}}),
    signed({"u1": RECORD | {"devices": [RECORD["devices"][0] | {"device": "../../x"}]}}),
    "[" * 200_000 + "]" * 200_000,                           # RecursionError in json
], ids=["dotdot-uid", "device-not-a-dict", "name-not-a-string", "dotdot-device", "deep"])
def test_checkpoint_with_bad_content_is_quarantined(make_claims, text):
    api = FakeKube([claim("one", "u1", ["mock0"])])
    agent = make_claims(api)
    agent.checkpoint.path.parent.mkdir(parents=True, exist_ok=True)
    agent.checkpoint.path.write_text(text)
    restarted = make_claims(api)                             # no TypeError, CdiError, ...
    assert restarted.checkpoint.quarantined and restarted.checkpoint.quarantined.exists()
    assert not restarted.prepare([ClaimRef("ns", "u1", "one")])["u1"].error


def test_stray_cdi_files_are_skipped(make_claims, tmp_path, caplog):
    api = FakeKube([claim("one", "u1", ["mock0"])])
    agent = make_claims(api)
    strays = [tmp_path / "cdi" / f"{agent.cdi.prefix}.json",
              tmp_path / "cdi" / f"{agent.cdi.prefix}a b.json"]
    for stray in strays:
        stray.parent.mkdir(parents=True, exist_ok=True)
        stray.write_text("{}")
    with caplog.at_level(logging.WARNING):
        restarted = make_claims(api)                         # used to raise CdiError
    assert all(stray.exists() for stray in strays) and "not a claim spec" in caplog.text
    assert not restarted.prepare([ClaimRef("ns", "u1", "one")])["u1"].error


def test_dead_sockets_of_earlier_pods_are_removed(make_plugin, short_dir):
    old = "0b6e5c3a-5d0e-4a47-9c55-1a2b3c4d5e6f"
    live = make_plugin(pod_uid="1b6e5c3a-5d0e-4a47-9c55-1a2b3c4d5e6f")   # rolling update: old pod
    dead = [live.config.plugin_dir / f"dra-{old}.sock",
            short_dir / "registry" / f"{DRIVER}-{old}-reg.sock"]
    for path in dead:
        leftover = socket.socket(socket.AF_UNIX)
        leftover.bind(str(path))
        leftover.close()                                     # a crashed pod's socket file
    new = make_plugin(pod_uid="2b6e5c3a-5d0e-4a47-9c55-1a2b3c4d5e6f")
    assert not any(path.exists() for path in dead)
    assert live.config.dra_socket.exists() and live.config.registration_socket.exists()
    assert new.config.dra_socket.exists()


def test_admin_access_claim_shares_the_device(make_claims):
    api = FakeKube([claim("admin", "ua", ["mock0"], admin=True), claim("one", "u1", ["mock0"]),
                    claim("admin2", "ub", ["mock0"], admin=True)])
    agent = make_claims(api)
    admin, normal = ClaimRef("ns", "ua", "admin"), ClaimRef("ns", "u1", "one")
    assert not agent.prepare([admin])["ua"].error
    assert allocated(agent) == []                      # adminAccess holds nothing
    assert agent.checkpoint.load()["ua"].devices[0].admin_access
    assert agent.prepare([normal])["u1"].error == ""   # was "held by claim ua"
    assert allocated(agent) == ["mock0"]
    assert not agent.prepare([ClaimRef("ns", "ub", "admin2")])["ub"].error
    assert agent.unprepare([admin])["ua"].error == ""
    assert allocated(agent) == ["mock0"]               # the normal claim still holds it
    restarted = make_claims(api)                       # the checkpoint kept adminAccess
    assert restarted.reconcile_report.freed == [] and allocated(restarted) == ["mock0"]
    assert restarted.unprepare([normal])["u1"].error == ""
    assert allocated(restarted) == []                  # ub (adminAccess) does not keep it

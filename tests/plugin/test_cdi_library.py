"""Every kind of CDI spec the driver writes, loaded and injected into an OCI spec by the CDI
library containerd itself uses (tags.cncf.io/container-device-interface v1.1.x, `pkg/cdi` cache +
`InjectDevices`), built from the Go module proxy as tests/plugin/cdicheck: simulated devices
(the chart's simulation mode: a regular file at /dev/mockN) and module devices (character device
nodes, made here with mknod), one device and several per claim."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from mock_accel.cdi import CdiRegistry
from mock_accel.sim import SimConfig, SimNode, node_identity

SOURCE = Path(__file__).parent / "cdicheck"
CACHE = Path.home() / ".cache" / "mock-accel" / "cdicheck"
TOPOLOGY = SimConfig(num_devices=2, numa_nodes=1, total_vfs=2, num_vfs=2,
                     **node_identity("kind-worker"))
CLAIMS = {"one-pf": ["mock0"], "one-vf": ["mock1-vf0"], "two-pfs": ["mock0", "mock1"],
          "two-vfs": ["mock0-vf0", "mock0-vf1"]}


@pytest.fixture(scope="module")
def cdicheck() -> Path:
    """The checker, built once per source version (cached under ~/.cache/mock-accel)."""
    digest = hashlib.sha256(b"".join((SOURCE / n).read_bytes()
                                     for n in ("main.go", "go.mod", "go.sum"))).hexdigest()
    out = CACHE / digest[:16] / "cdicheck"
    if not out.exists():
        go = os.environ.get("GO") or shutil.which("go") or "/usr/local/go/bin/go"
        result = subprocess.run([go, "build", "-o", str(out), "."], cwd=SOURCE,
                                capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stdout + result.stderr
    return out


def module_node(root: Path) -> SimNode:
    """A simulated tree whose /dev entries are character devices, as the module makes them."""
    node = SimNode.create(root, TOPOLOGY)
    for index, name in enumerate(node.names()):
        path = node.dev_path(name)
        path.unlink()
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(239, index))
    return node


def write_specs(node: SimNode, spec_dir: Path, **changes) -> dict[str, list[str]]:
    """A spec per claim of CLAIMS, written by the driver's registry: claim -> qualified names."""
    registry = CdiRegistry(spec_dir)
    inventory = node.discover()
    ids = {}
    for uid, names in CLAIMS.items():
        devices = [dataclasses.replace(registry.device(node, inventory[n]), **changes)
                   for n in names]
        ids[uid] = list(registry.write_claim_spec(uid, devices).values())
    return ids


def inject(cdicheck: Path, spec_dir: Path, ids: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(cdicheck), str(spec_dir), *ids], capture_output=True, text=True,
                          timeout=60)


def inject_each_claim(cdicheck: Path, spec_dir: Path, ids: dict[str, list[str]]) -> dict:
    """claim -> the OCI spec of a container given that claim's devices; all specs loaded."""
    specs = {}
    for claim, names in ids.items():
        result = inject(cdicheck, spec_dir, names)
        assert result.returncode == 0, result.stderr
        out = json.loads(result.stdout)
        assert sorted(out["devices"]) == sorted(n for all_ids in ids.values() for n in all_ids)
        specs[claim] = out["oci"]
    return specs


def assert_class_view(oci: dict, where: str) -> None:
    """One tmpfs at `where`, mounted before every bind below it (the runtime mounts in order)."""
    destinations = [m["destination"] for m in oci["mounts"]]
    (tmpfs,) = [m for m in oci["mounts"] if m.get("type") == "tmpfs"]
    assert tmpfs["destination"] == where
    below = [d for d in destinations if d.startswith(where + "/")]
    assert below and all(destinations.index(where) < destinations.index(d) for d in below)


def test_simulated_devices_are_bind_mounted(cdicheck, tmp_path):
    node = SimNode.create(tmp_path / "node", TOPOLOGY)
    specs = inject_each_claim(cdicheck, tmp_path / "cdi", write_specs(node, tmp_path / "cdi"))
    for claim, oci in specs.items():
        assert not oci["linux"].get("devices")  # no device node for a regular file
        mounts = {m["destination"]: m for m in oci["mounts"]}
        for name in CLAIMS[claim]:
            assert mounts[f"/dev/{name}"]["source"] == str(node.dev_path(name))
            assert "bind" in mounts[f"/dev/{name}"]["options"]
            assert (Path(mounts[f"/sys/class/mock-accel/{name}"]["source"]) / "uuid").is_file()
        assert_class_view(oci, "/sys/class")
    assert "MOCK_ACCEL_DEVICE=mock0" in specs["one-pf"]["process"]["env"]
    assert {"MOCK_ACCEL_DEVICE_0=mock0-vf0", "MOCK_ACCEL_DEVICE_1=mock0-vf1"} <= set(
        specs["two-vfs"]["process"]["env"])


def test_module_devices_are_device_nodes(cdicheck, tmp_path):
    node = module_node(tmp_path / "node")
    specs = inject_each_claim(cdicheck, tmp_path / "cdi", write_specs(node, tmp_path / "cdi"))
    for claim, oci in specs.items():
        devices = {d["path"]: d for d in oci["linux"]["devices"]}
        assert set(devices) == {f"/dev/{n}" for n in CLAIMS[claim]}
        assert all(d["type"] == "c" and d["major"] == 239 for d in devices.values())
        assert_class_view(oci, "/sys/class/mock-accel")


def test_the_checker_refuses_a_regular_file_as_device_node(cdicheck, tmp_path):
    """What the driver wrote for simulated devices before: containerd's library refuses it."""
    node = SimNode.create(tmp_path / "node", TOPOLOGY)
    ids = write_specs(node, tmp_path / "cdi", dev_is_node=True)
    result = inject(cdicheck, tmp_path / "cdi", ids["one-pf"])
    assert result.returncode == 1 and "not a device node" in result.stderr, result.stderr

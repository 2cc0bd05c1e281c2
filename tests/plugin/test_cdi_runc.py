"""Containers started by a real runc (v1.5.3, built from the Go module proxy) from OCI specs the
CDI library edited with the driver's specs for simulated devices (the chart's simulation mode):
the seed's pod script `env | grep MOCK_ACCEL; cat /sys/class/mock-accel/$MOCK_ACCEL_DEVICE/uuid`
prints the device's uuid and `ls /sys/class/mock-accel` lists exactly the claim's devices, for
a PF, a VF, two PFs and two VFs of one PF. Without the claim-wide tmpfs runc cannot create the
container (no class directory in its sysfs). Module devices need the module on this host: the
kind issue runs those."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mock_accel.cdi import CdiRegistry
from mock_accel.kubebins import BuildError
from mock_accel.sim import SimNode
from tools import gotools

from .test_cdi_library import TOPOLOGY, cdicheck  # noqa: F401 (a fixture)

BUSYBOX = Path("/bin/busybox")
SCRIPT = ("env | grep MOCK_ACCEL | sort; "
          "for v in $(env | sed -n 's/^MOCK_ACCEL_DEVICE_*[0-9]*=//p'); do "
          "cat /sys/class/mock-accel/$v/uuid; done; echo LS $(ls /sys/class/mock-accel)")
CLAIMS = {"one-pf": ["mock0"], "one-vf": ["mock1-vf0"], "two-pfs": ["mock0", "mock1"],
          "two-vfs": ["mock0-vf0", "mock0-vf1"]}

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="runc needs root here")


@pytest.fixture(scope="module")
def runc() -> Path:
    """runc from the Go module proxy, built once by tools.gotools (the kind node uses it too)."""
    try:
        return gotools.ensure("runc") / "runc"
    except BuildError as e:
        pytest.fail(str(e))


def bundle(runc: Path, where: Path) -> Path:
    """A bundle with a busybox root filesystem and `runc spec`'s config, running SCRIPT."""
    assert BUSYBOX.exists(), "busybox-static is needed (apt-get install busybox-static)"
    (where / "rootfs" / "bin").mkdir(parents=True)
    shutil.copy(BUSYBOX, where / "rootfs" / "bin" / "busybox")
    for applet in ("sh", "cat", "ls", "env", "grep", "sed", "sort"):
        (where / "rootfs" / "bin" / applet).symlink_to("busybox")
    subprocess.run([str(runc), "spec"], cwd=where, check=True)
    config = json.loads((where / "config.json").read_text())
    config["process"].update(terminal=False, args=["sh", "-c", SCRIPT])
    (where / "base.json").write_text(json.dumps(config))
    return where


def run_claim(runc, cdicheck, where: Path, spec_dir: Path, ids: list[str]):  # noqa: F811
    edited = subprocess.run([str(cdicheck), "-base", str(where / "base.json"), str(spec_dir),
                             *ids], capture_output=True, text=True, timeout=60)
    assert edited.returncode == 0, edited.stderr
    (where / "config.json").write_text(json.dumps(json.loads(edited.stdout)["oci"]))
    return subprocess.run([str(runc), "--root", str(where / "state"), "run", where.name],
                          cwd=where, capture_output=True, text=True, timeout=60)


def test_seed_script_sees_exactly_its_devices(runc, cdicheck, tmp_path):  # noqa: F811
    node = SimNode.create(tmp_path / "node", TOPOLOGY)
    inventory = node.discover()
    registry = CdiRegistry(tmp_path / "cdi")
    for claim, names in CLAIMS.items():
        ids = registry.write_claim_spec(claim, [registry.device(node, inventory[n])
                                                for n in names])
        where = bundle(runc, tmp_path / f"ma-{claim}")
        result = run_claim(runc, cdicheck, where, tmp_path / "cdi", list(ids.values()))
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[-1] == "LS " + " ".join(sorted(names)), result.stdout
        assert sorted(lines[-1 - len(names):-1]) == sorted(inventory[n].uuid for n in names)
        single = len(names) == 1
        assert (f"MOCK_ACCEL_DEVICE={names[0]}" in lines) == single, result.stdout


def test_without_the_tmpfs_runc_cannot_create_the_container(runc, cdicheck, tmp_path):  # noqa: F811
    """The bind alone (what the driver wrote before): no class dir to mount on in sysfs."""
    node = SimNode.create(tmp_path / "node", TOPOLOGY)
    registry = CdiRegistry(tmp_path / "cdi")
    registry.write_claim_spec("one-pf", [registry.device(node, node.discover()["mock0"])])
    path = registry.spec_path("one-pf")
    spec = json.loads(path.read_text())
    spec["containerEdits"]["mounts"] = []
    path.write_text(json.dumps(spec))
    where = bundle(runc, tmp_path / "ma-bare")
    result = run_claim(runc, cdicheck, where, tmp_path / "cdi",
                       [f"{registry.kind}=one-pf-mock0"])
    assert result.returncode != 0, result.stdout
    assert "mkdirat" in result.stderr and "sys/class/mock-accel: read-only file system" in \
        result.stderr, result.stderr

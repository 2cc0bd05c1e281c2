"""`status_gid` on the real module (kmod/ABI.md): under the whole of `/sys/devices`, which the
chart's node agent mounts read-write, a non-root process in the group can write the mock
devices' `status` files and nothing else, on both backends; measured by mode bits over the
tree, and by real writes to what a pod's root could write before (PCI `config`, `remove`,
`reset`, `driver_override`, `sriov_numvfs`, the module's destructive stores)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from mock_accel.abi import STATUS_ALLOCATED, STATUS_READY
from tests.harness.caps import write_as_member

AGENT_UID = 65532
GROUP = 4321
PCI = Path("/sys/bus/pci/devices")
CLASS = Path("/sys/class/mock-accel")


def writable_for(uid: int, groups: set[int], top: Path = Path("/sys/devices")) -> list[str]:
    """Files under `top` whose mode bits let `uid` (without capabilities) in `groups` write."""
    found = []
    for directory, _, files in os.walk(top):
        for file in files:
            path = os.path.join(directory, file)
            try:
                info = os.lstat(path)
            except OSError:
                continue  # gone while walking
            if ((info.st_uid == uid and info.st_mode & 0o200)
                    or (info.st_gid in groups and info.st_mode & 0o020)
                    or info.st_mode & 0o002):
                found.append(path)
    return sorted(found)


@pytest.mark.parametrize("backend", ["soft", "pci"])
def test_the_group_writes_status_and_nothing_else_under_sys_devices(kernel, backend):
    kernel.load(backend=backend, status_gid=GROUP, num_vfs=1)
    names = kernel.node.names()
    assert len(names) == 8  # 4 PFs, one VF each
    status_files = sorted(str((CLASS / name / "status").resolve()) for name in names)
    assert writable_for(AGENT_UID, {AGENT_UID, GROUP}) == status_files

    pf = (CLASS / "mock0" / "device").resolve()  # the PCI function or the software function
    targets = [("mock0", "inject_fault", "1"), ("mock0", "sriov_numvfs", "0"),
               ("mock0", "load_wordlist", "1"), ("mock0", "passphrase_count", "2"),
               (None, "new_device", "9"), (None, "del_device", "1"),
               ("mock0", str(CLASS / "mock0" / "uevent"), "change")]
    if backend == "pci":
        targets += [("mock0", str(pf / leaf), value) for leaf, value in
                    [("config", "\0"), ("remove", "1"), ("driver_override", "x"),
                     ("sriov_numvfs", "0"), ("reset", "1"), ("rescan", "1")]
                    if (pf / leaf).exists()]
        assert len(targets) >= 11  # config, remove, driver_override, sriov_numvfs at least
    writes = [("mock0", "status", str(STATUS_ALLOCATED)),
              ("mock0-vf0", "status", str(STATUS_ALLOCATED))] + targets
    done = write_as_member(kernel.node, writes, AGENT_UID, GROUP)
    assert done["ids"] == [AGENT_UID, AGENT_UID, [GROUP]] and done["cap_eff"] == 0
    assert done["errors"] == {f"{n}/{a}": "EACCES" for n, a, _ in targets} | {
        "mock0/status": None, "mock0-vf0/status": None}
    devices = kernel.node.discover().devices
    assert sorted(devices, key=names.index) == names  # nothing made, removed or rebound
    assert devices["mock0"].status == devices["mock0-vf0"].status == (
        STATUS_READY | STATUS_ALLOCATED)
    assert devices["mock0"].health == "ok" and devices["mock0"].sriov_numvfs == 1

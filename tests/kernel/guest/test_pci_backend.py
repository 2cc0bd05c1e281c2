"""backend=pci (kmod/ABI.md, "Virtual PCI backend"): the devices are PCI functions behind the
module's own host bridges, found by the PCI core and bound by the module's PCI driver; run in the
guest, whose QEMU has no 1de5 device at all."""
from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from mock_accel.sim import software_uuid
from mock_accel.slices import STANDARD_PREFIX, device_attributes
from mock_accel.uapi import DeviceFile
from tests.harness.beds import MODULE_NAME, LoadError
from tests.harness.caps import write_without_cap_sys_admin
from tests.harness.words import assert_words
from tools import locate

PCI = Path("/sys/bus/pci/devices")
CLASS = Path("/sys/class/mock-accel")
WORDS = set(locate.wordlist().read_text().split())
GiB = 2**30


def read(path: Path) -> str:
    return path.read_text().strip()


def ours() -> dict[str, str]:
    """PCI address -> device id of every 1de5 function, as lspci -d 1de5: finds them."""
    return {dev.name: read(dev / "device") for dev in sorted(PCI.iterdir())
            if read(dev / "vendor") == "0x1de5"}


def attr(name: str, attribute: str) -> str:
    return read(CLASS / name / attribute)


def write(path: Path, value: str) -> None:
    path.write_text(value)


def test_pfs_are_pci_functions_behind_one_bridge_per_node(kernel):
    kernel.load(backend="pci", num_devices=4, numa_nodes=2)
    assert ours() == {"acc0:00:00.0": "0x0001", "acc0:00:01.0": "0x0001",
                      "acc1:00:00.0": "0x0001", "acc1:00:01.0": "0x0001"}
    assert not list(Path("/sys/bus/mock-accel/devices").iterdir())  # no software function
    for index, address in enumerate(["acc0:00:00.0", "acc1:00:00.0", "acc0:00:01.0",
                                     "acc1:00:01.0"]):
        name, node = f"mock{index}", index % 2
        pdev = PCI / address
        assert read(pdev / "class") == "0x120000"
        assert (pdev / "driver").resolve().name == "mock-accel"
        assert (CLASS / name / "device").resolve() == Path(
            f"/sys/devices/pciacc{node}:00/{address}")
        assert attr(name, "pci_address") == address
        assert attr(name, "pcie_root") == f"pciacc{node}:00"
        assert attr(name, "numa_node") == read(pdev / "numa_node") == str(node)
        assert read(pdev / "sriov_totalvfs") == attr(name, "sriov_totalvfs") == "4"
        # the registers: the software register file of function (index, PF)
        assert attr(name, "uuid") == software_uuid(index, None, kernel.uuid_seed())
        assert attr(name, "memory_size") == str(16 * GiB)
        assert attr(name, "capabilities") == "0x00000003"
        assert attr(name, "status") == "0x00000001"
        assert attr(name, "fw_version") == "1.0.0"
    # BAR0 is claimed by the driver in the bridge's window
    iomem = Path("/proc/iomem").read_text()
    assert "mock-accel pciacc0" in iomem and "mock-accel pciacc1" in iomem


def test_registers_behave_as_on_the_other_backends(kernel):
    kernel.load(backend="pci", num_devices=1)
    write(CLASS / "mock0" / "status", "0x2")
    assert attr("mock0", "status") == "0x00000003"
    assert_words(attr("mock0", "passphrase"), 6, WORDS)
    with DeviceFile("/dev/mock0") as device:
        info = device.info()
        assert info.pci_address == "acc0:00:00.0" and info.pcie_root == "pciacc0:00"
        assert device.status() == 3
    write(CLASS / "mock0" / "inject_fault", "1")
    assert attr("mock0", "health") == "failed"
    with pytest.raises(OSError) as caught:
        attr("mock0", "passphrase")
    assert caught.value.errno == errno.EIO
    write(CLASS / "mock0" / "inject_fault", "0")
    assert attr("mock0", "health") == "ok"


def test_sriov_through_the_standard_pci_file(kernel):
    kernel.load(backend="pci", num_devices=2, numa_nodes=2)
    numvfs = PCI / "acc0:00:00.0" / "sriov_numvfs"
    # the PCI core's file is root-owned 0644 and asks no capability: the driver's callback does
    done = write_without_cap_sys_admin(kernel.node, [(None, str(numvfs), "2")])
    assert done == {"cap_sys_admin": False, "errors": {f"None/{numvfs}": "EPERM"}}
    assert read(numvfs) == "0"
    write(numvfs, "2")
    assert ours() == {"acc0:00:00.0": "0x0001", "acc0:01:00.0": "0x0002",
                      "acc0:01:00.1": "0x0002", "acc1:00:00.0": "0x0001"}
    for index in range(2):
        name, address = f"mock0-vf{index}", f"acc0:01:00.{index}"
        assert (CLASS / name / "device").resolve() == Path(f"/sys/devices/pciacc0:00/{address}")
        assert (PCI / address / "physfn").resolve().name == "acc0:00:00.0"
        assert attr(name, "physfn") == "mock0" and attr(name, "device_type") == "vf"
        assert attr(name, "uuid") == software_uuid(0, index, kernel.uuid_seed())
        assert attr(name, "memory_size") == str(4 * GiB)
        assert attr(name, "numa_node") == "0"
    assert attr("mock0", "sriov_numvfs") == "2"
    # refused while a VF is open, through the PCI core's file as through ours
    with DeviceFile("/dev/mock0-vf1"):
        with pytest.raises(OSError) as caught:
            write(numvfs, "0")
        assert caught.value.errno == errno.EBUSY
    write(numvfs, "0")
    assert ours() == {"acc0:00:00.0": "0x0001", "acc1:00:00.0": "0x0001"}
    assert not (CLASS / "mock0-vf0").exists()
    # the class device's file goes the same way
    write(CLASS / "mock1" / "sriov_numvfs", "3")
    assert sorted(a for a in ours() if a.startswith("acc1:01:")) == [
        "acc1:01:00.0", "acc1:01:00.1", "acc1:01:00.2"]


def test_discovery_publishes_the_real_pci_addresses(kernel):
    """The DRA driver's discovery (mock_accel.sysfs) and its ResourceSlice attributes carry
    the functions' real PCI bus IDs and PCIe roots."""
    node = kernel.load(backend="pci", num_devices=2, numa_nodes=2, num_vfs=1)
    inventory = node.discover()
    assert not inventory.problems, inventory.problems
    published = {device.name: device_attributes(device) for device in inventory}
    for name, address, root in [("mock0", "acc0:00:00.0", "pciacc0:00"),
                                ("mock0-vf0", "acc0:01:00.0", "pciacc0:00"),
                                ("mock1", "acc1:00:00.0", "pciacc1:00"),
                                ("mock1-vf0", "acc1:01:00.0", "pciacc1:00")]:
        attributes = published[name]
        assert attributes[STANDARD_PREFIX + "pciBusID"] == {"string": address}
        assert attributes[STANDARD_PREFIX + "pcieRoot"] == {"string": root}
        assert (PCI / address).is_dir()
        assert (PCI / address).resolve().parent.name == root


def test_num_vfs_at_load(kernel):
    kernel.load(backend="pci", num_devices=1, num_vfs=2)
    assert ours() == {"acc0:00:00.0": "0x0001", "acc0:01:00.0": "0x0002",
                      "acc0:01:00.1": "0x0002"}


def test_remove_and_rescan_with_an_open_file(kernel):
    kernel.load(backend="pci", num_devices=2, numa_nodes=2)
    uuid = attr("mock1", "uuid")
    write(CLASS / "mock1" / "status", "0x2")
    fd = os.open("/dev/mock1", os.O_RDONLY)
    try:
        write(PCI / "acc1:00:00.0" / "remove", "1")
        assert not (CLASS / "mock1").exists() and "acc1:00:00.0" not in ours()
        with pytest.raises(OSError) as caught:
            os.read(fd, 100)
        assert caught.value.errno == errno.ENODEV
    finally:
        os.close(fd)
    write(Path("/sys/bus/pci/rescan"), "1")
    assert attr("mock1", "pci_address") == "acc1:00:00.0"
    assert attr("mock1", "uuid") == uuid
    assert attr("mock1", "status") == "0x00000003"  # the registers stayed with the function


def bar0_claimed(pdev: Path) -> bool:
    """/proc/iomem has BAR0 of `pdev` requested by the driver (pci_request_region)."""
    start, end = (int(v, 16) for v in read(pdev / "resource").splitlines()[0].split()[:2])
    for line in Path("/proc/iomem").read_text().splitlines():
        span, _, owner = line.strip().partition(" : ")
        low, _, high = span.partition("-")
        if owner == "mock-accel" and (int(low, 16), int(high, 16)) == (start, end):
            return True
    return False


def test_unbind_gives_back_what_the_probe_took(kernel):
    """The probe is managed (pcim_*): unbinding disables the function and releases BAR0's
    region, so the driver binds again (a region left claimed would make that bind fail)."""
    kernel.load(backend="pci", num_devices=1)
    driver, pdev = Path("/sys/bus/pci/drivers/mock-accel"), PCI / "acc0:00:00.0"
    for _ in range(2):
        assert read(pdev / "enable") == "1" and bar0_claimed(pdev)
        write(driver / "unbind", "acc0:00:00.0")
        assert not (CLASS / "mock0").exists() and not (pdev / "driver").exists()
        assert read(pdev / "enable") == "0" and not bar0_claimed(pdev)
        write(driver / "bind", "acc0:00:00.0")
        assert attr("mock0", "pci_address") == "acc0:00:00.0"


def test_unload_removes_the_bridges(kernel):
    kernel.load(backend="pci", num_devices=2, numa_nodes=2, num_vfs=1)
    kernel.unload()
    assert not Path(f"/sys/module/{MODULE_NAME}").exists()
    assert ours() == {}
    assert not Path("/sys/devices/pciacc0:00").exists()
    assert "mock-accel" not in Path("/proc/iomem").read_text()
    # and again: the domains and the address space were given back
    kernel.load(backend="pci", num_devices=2, numa_nodes=2)
    assert len(ours()) == 2


def test_bad_backend_is_refused(kernel):
    with pytest.raises(LoadError):
        kernel.load(backend="vfio")
    assert not Path(f"/sys/module/{MODULE_NAME}").exists()

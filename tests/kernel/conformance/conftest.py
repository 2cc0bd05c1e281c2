"""The conformance suite's fixtures: every test in this folder runs on the simulator on the host
and on the real module inside the QEMU guest (tests/kernel/test_kernel_vm.py), so the simulator
cannot drift from the kernel. The beds themselves are in tests/harness/beds.py.
"""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from mock_accel.sysfs import SysfsNode
from tests.harness.beds import IN_GUEST, Bed, KernelBed, SimBed

# On the host the suite runs on the simulator; tests/kernel/test_kernel_vm.py runs it again
# inside the guest, where it runs on the real module.
# In the guest it runs twice: on the software bus and with backend=pci (the module's virtual PCI
# host bridges, kmod/ABI.md).
BACKENDS = ["kernel", "kernel-pci"] if IN_GUEST else ["sim"]


@pytest.fixture(params=BACKENDS)
def bed(request, tmp_path) -> Iterator[Bed]:
    if request.param == "sim":
        test_bed = SimBed(tmp_path)
    else:
        test_bed = KernelBed("pci" if request.param == "kernel-pci" else "soft")
    try:
        yield test_bed
    finally:
        test_bed.close()


@pytest.fixture
def node(bed) -> SysfsNode:
    """The default topology: the module loaded without parameters, firmware present."""
    return bed.load()

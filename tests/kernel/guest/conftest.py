"""Tests of the real module only (character device, ioctls, unload): they run inside the QEMU
guest, started by tests/kernel/test_kernel_vm.py and
tests/kernel/test_driver_vm.py; on the host they are not collected."""
from __future__ import annotations

import os

import pytest

from tests.harness.beds import KernelBed

if os.environ.get("MOCK_ACCEL_IN_GUEST") != "1":
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture
def kernel():
    bed = KernelBed()
    bed.load()
    try:
        yield bed
    finally:
        bed.close()

"""Runs the conformance suite and the kernel-only tests inside a QEMU guest, against the freshly
built module (`make kmod`) and firmware (`make firmware`), then checks the guest's kernel log."""
from __future__ import annotations

import re
import sys

import pytest

from tools import locate
from tools.vm import dmesg_problems, run_in_guest

pytestmark = pytest.mark.vm


def test_module_in_a_real_kernel():
    ko, firmware = locate.ko(), locate.firmware_dir()
    locate.require(ko, locate.wordlist())
    result = run_in_guest(
        [sys.executable, "-m", "pytest", "-q", "-rfE", "tests/kernel/conformance",
         "tests/kernel/guest"],
        ko=ko, firmware_dir=firmware, timeout=1500, output_stream=sys.stdout)
    print(result.output[-6000:])
    assert result.returncode == 0, f"in-guest tests failed; serial log: {result.serial_log_path}"
    summary = result.output.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary) and "skipped" not in summary, summary
    bad = dmesg_problems(result.dmesg)
    assert not bad, "guest kernel log:\n" + "\n".join(bad)
    print(f"guest: booted in {result.boot_seconds:.1f} s, ran in {result.duration:.1f} s")


# an SMBIOS system UUID for the guest: its halves XOR to a seed with bits above 48 set
SYSTEM_UUID = "6d6f636b-2d61-6363-656c-2d6e6f646531"


def test_dmi_product_uuid_drives_the_default_seed():
    """KMM gives every node the same parameters: without uuid_seed, the module takes its seed
    from the machine's DMI product UUID (QEMU -uuid), the same on every load."""
    ko, firmware = locate.ko(), locate.firmware_dir()
    locate.require(ko, locate.wordlist())
    result = run_in_guest(
        [sys.executable, "-m", "pytest", "-q", "-rfE", "tests/kernel/conformance",
         "-k", "uuid_seed_unset"],
        ko=ko, firmware_dir=firmware, timeout=900, output_stream=sys.stdout,
        system_uuid=SYSTEM_UUID, env={"MOCK_ACCEL_TEST_SYSTEM_UUID": SYSTEM_UUID})
    assert result.returncode == 0, f"in-guest test failed; serial log: {result.serial_log_path}"
    # one test per backend the guest runs (soft, pci): all passed, none skipped
    last = result.output.strip().splitlines()[-1]
    assert re.fullmatch(r"[1-9]\d* passed, \d+ deselected in .*", last), result.output[-2000:]
    assert "uuid_seed " in result.dmesg and "(from the DMI product UUID)" in result.dmesg
    bad = dmesg_problems(result.dmesg)
    assert not bad, "guest kernel log:\n" + "\n".join(bad)

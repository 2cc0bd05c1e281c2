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

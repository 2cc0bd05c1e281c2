"""Runs the conformance suite and the kernel-only tests inside a QEMU guest, against the freshly
built module (`make kmod`) and firmware (`make firmware`), then checks the guest's kernel log."""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from tests.vm import dmesg_problems, run_in_guest

REPO = Path(__file__).resolve().parent.parent
KO = Path(os.environ.get("MOCK_ACCEL_KO", REPO / "kmod" / "mock-accel.ko"))
FIRMWARE = Path(os.environ.get("MOCK_ACCEL_FIRMWARE_DIR", REPO / "firmware"))

pytestmark = pytest.mark.vm


def test_module_in_a_real_kernel():
    missing = [str(p) for p in (KO, FIRMWARE / "mock-accel-wordlist.txt") if not p.exists()]
    assert not missing, f"build them first (make kmod firmware): {missing}"
    result = run_in_guest(
        [sys.executable, "-m", "pytest", "-q", "-rfE", "tests/conformance", "tests/kernel"],
        ko=KO, firmware_dir=FIRMWARE, timeout=1500, output_stream=sys.stdout)
    print(result.output[-6000:])
    assert result.returncode == 0, f"in-guest tests failed; serial log: {result.serial_log_path}"
    summary = result.output.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary) and "skipped" not in summary, summary
    bad = dmesg_problems(result.dmesg)
    assert not bad, "guest kernel log:\n" + "\n".join(bad)
    print(f"guest: booted in {result.boot_seconds:.1f} s, ran in {result.duration:.1f} s")

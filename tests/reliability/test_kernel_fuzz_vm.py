"""The real module fuzzed inside a QEMU guest (guest_kernel_fuzz.py): ≥ 10k random ioctls and
sysfs writes across all devices with concurrent readers, add/remove and VF toggling under load,
unload/reload cycles. Every failed call must return an errno the ABI allows, and the guest's
kernel log must stay free of WARN/BUG/Oops (and leaks, lockdep, hung tasks).
Replay: MOCK_ACCEL_RELIABILITY_SEED=<seed>; MOCK_ACCEL_KERNEL_FUZZ_OPS sets the count;
MOCK_ACCEL_KERNEL_FUZZ_BACKEND=pci fuzzes the module's virtual PCI backend (backend=pci) instead
of the software bus."""
from __future__ import annotations

import json
import os
import sys

import pytest

from tools import locate
from tools.vm import dmesg_problems, run_in_guest

OPS = int(os.environ.get("MOCK_ACCEL_KERNEL_FUZZ_OPS", "10000"))
BACKEND = os.environ.get("MOCK_ACCEL_KERNEL_FUZZ_BACKEND", "soft")

pytestmark = pytest.mark.vm


class Lines:
    """A text stream for run_in_guest: the guest's progress lines go to the terminal."""

    def __init__(self, show):
        self.show, self.partial = show, ""

    def write(self, text: str) -> int:
        *lines, self.partial = (self.partial + text).split("\n")
        for line in lines:
            if line.startswith("[kernel fuzz]"):
                self.show.say(line)
        return len(text)

    def flush(self) -> None:
        pass


def test_kernel_fuzz(seed, progress):
    locate.require(locate.ko(), locate.wordlist())
    show = progress("kernel fuzz", OPS)
    result = run_in_guest(
        [sys.executable, "-m", "tests.reliability.guest_kernel_fuzz", "--seed", str(seed),
         "--ops", str(OPS), "--backend", BACKEND],
        ko=locate.ko(), firmware_dir=locate.firmware_dir(),
        modparams=f"num_devices=4 total_vfs=4 num_vfs=1 backend={BACKEND}",
        timeout=1200, output_stream=Lines(show))
    summary_lines = [line for line in result.output.splitlines()
                     if line.startswith("@@fuzz-summary ")]
    assert summary_lines, f"no summary from the guest:\n{result.output[-4000:]}"
    summary = json.loads(summary_lines[-1].split(" ", 1)[1])
    show.say(f"guest booted in {result.boot_seconds:.1f} s, fuzzed for {summary['seconds']} s: "
             f"operations {summary['ops']}, errnos {summary['errors']}, concurrent reads "
             f"{summary['reads']}")
    assert not summary["unexpected"], "contract violations:\n" + "\n".join(summary["unexpected"])
    assert result.returncode == 0, result.output[-4000:]
    ops = summary["ops"]
    assert ops.get("write", 0) + ops.get("ioctl", 0) >= OPS, ops
    assert ops.get("hotplug") and ops.get("reload"), ops
    assert sum(summary["reads"].values()) > 0
    bad = dmesg_problems(result.dmesg)
    assert not bad, "guest kernel log:\n" + "\n".join(bad)

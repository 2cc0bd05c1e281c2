"""QEMU (TCG) test harness for mock-accel: run commands inside a throw-away guest.

    from tools.vm import run_in_guest
    result = run_in_guest(["python3", "-m", "pytest", "tests/guest"], ko="kmod/mock_accel.ko")
"""

from .dmesg import assert_clean_dmesg, dmesg_problems
from .errors import GuestCrashed, GuestError, GuestTimeout, HarnessSetupError, ModuleLoadError
from .guest import GuestResult, artifacts_root, run_in_guest, run_interactive
from .kernel import GuestKernel, find_kernel

__all__ = [
    "assert_clean_dmesg", "dmesg_problems",
    "GuestCrashed", "GuestError", "GuestKernel", "GuestResult", "GuestTimeout",
    "HarnessSetupError", "ModuleLoadError", "artifacts_root", "find_kernel",
    "run_in_guest", "run_interactive",
]

"""Exceptions raised by the VM harness."""

from __future__ import annotations

from pathlib import Path


class GuestError(RuntimeError):
    """The guest did not run the command to completion."""

    def __init__(self, message: str, *, artifacts_dir: Path | None = None,
                 serial_tail: str = "", output: str = "") -> None:
        details = [message]
        if artifacts_dir is not None:
            details.append(f"artefacts kept in {artifacts_dir}")
        if serial_tail:
            details.append("--- tail of the serial console ---\n" + serial_tail)
        super().__init__("\n".join(details))
        self.artifacts_dir = artifacts_dir
        self.serial_tail = serial_tail
        self.output = output


class HarnessSetupError(GuestError):
    """The host lacks something needed to boot a guest (kernel, qemu, busybox)."""


class GuestTimeout(GuestError):
    """The guest did not power off in time; qemu was killed."""


class GuestCrashed(GuestError):
    """qemu exited without the guest reporting an exit code (panic, triple fault...)."""


class ModuleLoadError(GuestError):
    """insmod of the module under test failed inside the guest."""

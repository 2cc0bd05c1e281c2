"""Where the checkout and its build products are: the one place tests, benchmarks and the
harness look them up.

    REPO            the repository root (this file is tools/locate.py)
    ko()            the built module: $MOCK_ACCEL_KO, else kmod/mock-accel.ko (`make kmod`)
    firmware_dir()  the firmware folder: $MOCK_ACCEL_FIRMWARE_DIR, else firmware/ (`make firmware`)
    wordlist()      the firmware file in it (mock-accel-wordlist.txt)
    artifacts()     where runs leave their output: $MOCK_ACCEL_ARTIFACTS, else artifacts/

`require(*paths)` raises `ArtifactMissing`, one line naming what is absent and how to build it.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KO_ENV = "MOCK_ACCEL_KO"
FIRMWARE_ENV = "MOCK_ACCEL_FIRMWARE_DIR"
WORDLIST = "mock-accel-wordlist.txt"  # mock_accel.firmware.FIRMWARE_NAME


class ArtifactMissing(FileNotFoundError):
    """A build product a test needs is absent."""


def ko() -> Path:
    """The built kernel module."""
    return Path(os.environ.get(KO_ENV) or REPO / "kmod" / "mock-accel.ko")


def firmware_dir() -> Path:
    """The folder holding the firmware (the wordlist) the module requests."""
    return Path(os.environ.get(FIRMWARE_ENV) or REPO / "firmware")


def wordlist() -> Path:
    """The firmware file: the passphrase wordlist."""
    return firmware_dir() / WORDLIST


def artifacts() -> Path:
    """Where test runs, benchmarks and the VM harness leave their output (the product's own
    answer, so the control plane's logs land in the same folder)."""
    from mock_accel.kubebins import artifacts_root
    return artifacts_root()


def require(*paths: Path) -> None:
    """Raise `ArtifactMissing` when any of `paths` does not exist."""
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise ArtifactMissing(f"build them first (make kmod firmware; or set {KO_ENV}, "
                              f"{FIRMWARE_ENV}): missing {', '.join(missing)}")

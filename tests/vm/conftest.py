"""pytest configuration for the VM harness tests."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "vm: boots a QEMU/TCG guest (slow: 15-30 s per boot)")

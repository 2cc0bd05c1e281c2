"""Fixtures of the reliability suite: the shared control plane and the replayable seed."""
from __future__ import annotations

import pytest

from .common import SEED_ENV, Progress, reliability_seed


@pytest.fixture
def seed(progress) -> int:
    """The run's seed, also shown on the terminal."""
    value = reliability_seed()
    progress("seed", 1).write(f"reliability seed {value} (replay: {SEED_ENV}={value})")
    return value


@pytest.fixture
def progress(pytestconfig):
    """progress(label, total) -> Progress writing to the terminal even when output is captured."""
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")

    def write(text: str) -> None:
        with capture.global_and_fixture_disabled():
            reporter.ensure_newline()
            reporter.write_line(text)

    return lambda label, total, every=10.0: Progress(label, total, write if reporter else None,
                                                     every)

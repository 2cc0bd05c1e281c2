"""Shared pieces of the reliability suite: the replayable seed, the hypothesis profile of the
fuzz tests, progress lines (see README.md)."""
from __future__ import annotations

import os
import random
import tempfile
import time
from pathlib import Path

import hypothesis
from hypothesis import HealthCheck, settings

SEED_ENV = "MOCK_ACCEL_RELIABILITY_SEED"
FUZZ_EXAMPLES = int(os.environ.get("MOCK_ACCEL_FUZZ_EXAMPLES", "10000"))

# Derandomized: CI explores the same 10k cases on every run. MOCK_ACCEL_RELIABILITY_SEED picks
# another (reproducible) part of the search space instead.
settings.register_profile(
    "reliability", max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
    derandomize=SEED_ENV not in os.environ, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much])


def fuzz_seeded(test):
    """Apply the reliability profile; with $MOCK_ACCEL_RELIABILITY_SEED, hypothesis' seed too."""
    test = settings.get_profile("reliability")(test)
    if SEED_ENV in os.environ:
        test = hypothesis.seed(int(os.environ[SEED_ENV]))(test)
    return test


def reliability_seed() -> int:
    """$MOCK_ACCEL_RELIABILITY_SEED, else a fresh one (printed, so a failure can be replayed)."""
    value = os.environ.get(SEED_ENV)
    seed = int(value) if value else random.SystemRandom().randrange(2**32)
    how = "from $" + SEED_ENV if value else f"replay with {SEED_ENV}={seed}"
    print(f"\nreliability seed {seed} ({how})", flush=True)
    return seed


class Progress:
    """`label i/n` lines at most every `every` seconds (and at the end), through `write`: the
    terminal reporter under pytest (visible without -s), and the captured output too."""

    def __init__(self, label: str, total: int, write=None, every: float = 10.0):
        self.label, self.total, self.every = label, total, every
        self.write = write
        self.start = self.last = time.monotonic()

    def say(self, text: str) -> None:
        print(text, flush=True)
        if self.write is not None:
            self.write(text)

    def tick(self, done: int, extra: str = "") -> None:
        now = time.monotonic()
        if now - self.last >= self.every or done == self.total:
            self.last = now
            self.say(f"[{self.label}] {done}/{self.total} in {now - self.start:.1f} s {extra}")


def memory_tmpdir(prefix: str) -> Path:
    """A fresh directory on /dev/shm (tmpfs, as /var/run/cdi is on a node) when there is one:
    the fuzzers write thousands of small files and fsync them, which a busy disk makes slow."""
    shm = Path("/dev/shm")
    where = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix=prefix, dir=where))

"""Helpers to judge a guest's kernel log."""

from __future__ import annotations

import re

# Lines that mean the kernel is unhappy: WARN_ON splats, BUG/Oops, lockdep,
# KASAN/UBSAN reports, hung tasks, and leak reports (kmemleak, module leaks).
_PROBLEM_PATTERNS = (
    r"\bWARNING:",
    r"\bBUG[: ]",
    r"\bOops\b",
    r"\bKernel panic\b",
    r"\bcut here\b",
    r"\bCall Trace:",
    r"\b[Ll]eak",
    r"UBSAN:",
    r"KASAN:",
    r"possible circular locking|possible recursive locking",
    r"blocked for more than \d+ seconds",
)
# case-sensitive on purpose: "loops_per_jiffy" is no Oops, "debug" no BUG
_PROBLEM_RE = re.compile("|".join(_PROBLEM_PATTERNS))


def dmesg_problems(dmesg: str) -> list[str]:
    """The lines of ``dmesg`` that look like warnings, bugs, oopses or leaks."""
    return [line for line in dmesg.splitlines() if _PROBLEM_RE.search(line)]


def assert_clean_dmesg(dmesg: str) -> None:
    problems = dmesg_problems(dmesg)
    assert not problems, "guest dmesg has problems:\n" + "\n".join(problems)

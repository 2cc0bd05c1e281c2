"""`make kmod-matrix`: build mock-accel.ko W=1 against each Debian kernel line with that suite's
compiler, boot that kernel in the QEMU harness, run the conformance and kernel suites on it, and
check its log; print the table and record it in kmod/matrix-results.md."""
from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tools import locate
from tools.vm import GuestError, dmesg_problems, run_in_guest
from tools.vm.kernel import KERNEL_ENV_VAR

from .chroot import MatrixError, SuiteRoot, ensure_root

SUITES = ("bookworm", "trixie", "sid")
COLUMNS = ("build W=1", "boot", "conformance", "kernel suite", "dmesg")
RESULTS = locate.REPO / "kmod" / "matrix-results.md"
SUITE_MARK = "@@kmatrix"
# Each suite in its own pytest run, so the table tells them apart; one boot for both.
GUEST_SCRIPT = (
    'for s in conformance guest; do '
    '"$0" -m pytest -q -rfE -p no:cacheprovider tests/kernel/$s; '
    f'echo "{SUITE_MARK} $s $?"; done')


@dataclass
class Row:
    suite: str
    kernel: str = "?"
    compiler: str = "?"
    cells: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(self.cells.get(column, "").startswith("ok") for column in COLUMNS)


def log(message: str) -> None:
    print(f"[kmatrix] {message}", file=sys.stderr, flush=True)


def build(root: SuiteRoot, row: Row) -> Path:
    """Copy kmod/ into the chroot and `make check` there (W=1, any warning fails)."""
    target = root.path / "build" / "kmod"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(locate.REPO / "kmod", target, ignore=shutil.ignore_patterns(
        "*.o", "*.ko", "*.mod*", ".*.cmd", "Module.symvers", "modules.order", "tests"))
    started = time.monotonic()
    try:
        root.run(["make", "-C", "/build/kmod", f"KDIR=/lib/modules/{row.kernel}/build", "check"],
                 proc=True)
    finally:
        row.seconds["build W=1"] = time.monotonic() - started
    return target / "mock-accel.ko"


def suite_results(output: str) -> dict[str, tuple[int, str]]:
    """{"conformance": (exit code, pytest's summary line), "guest": ...} from the guest's output."""
    results, last_summary = {}, ""
    for line in output.splitlines():
        if re.search(r"\d+ (passed|failed|error)", line):
            last_summary = line.strip("= ")
        match = re.fullmatch(rf"{SUITE_MARK} (\w+) (\d+)", line.strip())
        if match:
            results[match[1]] = (int(match[2]), last_summary)
            last_summary = ""
    return results


def boot_and_test(root: SuiteRoot, row: Row, ko: Path) -> None:
    firmware = locate.firmware_dir()
    locate.require(locate.wordlist())
    os.environ[KERNEL_ENV_VAR] = str(root.path / "boot" / f"vmlinuz-{row.kernel}")
    result = run_in_guest(["sh", "-c", GUEST_SCRIPT, sys.executable], ko=ko,
                          firmware_dir=firmware, timeout=1800, progress=False)
    row.cells["boot"] = "ok"
    row.seconds["boot"] = result.boot_seconds
    suites = suite_results(result.output)
    for column, name in (("conformance", "conformance"), ("kernel suite", "guest")):
        code, summary = suites.get(name, (None, "did not run"))
        clean = code == 0 and "skipped" not in summary and "passed" in summary
        row.cells[column] = ("ok " if clean else "FAIL ") + summary
        if not clean:
            row.notes.append(f"{name}: exit {code}; output tail:\n{result.output[-3000:]}")
    bad = dmesg_problems(result.dmesg)
    row.cells["dmesg"] = "ok clean" if not bad else f"FAIL {len(bad)} lines"
    if bad:
        row.notes.append("dmesg:\n" + "\n".join(bad[:20]))
    row.notes.append(f"guest artefacts: {result.artifacts_dir}")


def run_suite(suite: str, refresh: bool) -> Row:
    row = Row(suite)
    started = time.monotonic()
    try:
        log(f"{suite}: chroot")
        root = ensure_root(suite, refresh=refresh, log=log)
        row.seconds["chroot"] = time.monotonic() - started
        row.kernel = root.kernel_version()
        row.compiler = "gcc " + root.compiler().split()[-1]
        log(f"{suite}: building for {row.kernel} with {row.compiler} (W=1)")
        ko = build(root, row)
        row.cells["build W=1"] = "ok"
        log(f"{suite}: booting {row.kernel}, conformance + kernel suites in the guest")
        boot_and_test(root, row, ko)
    except (MatrixError, GuestError, locate.ArtifactMissing) as error:
        failed = next((c for c in COLUMNS if c not in row.cells), COLUMNS[-1])
        row.cells[failed] = "FAIL"
        row.notes.append(f"{failed} failed on {row.kernel} ({suite}): {error}")
    row.seconds["total"] = time.monotonic() - started
    verdict = "all green" if row.ok else "FAILED: " + ", ".join(
        c for c in COLUMNS if not row.cells.get(c, "").startswith("ok"))
    log(f"{suite}: {row.kernel}: {verdict} ({row.seconds['total']:.0f} s)")
    return row


def table(rows: list[Row]) -> str:
    def cell(row: Row, column: str) -> str:
        seconds = row.seconds.get(column)  # the suites' cells carry pytest's own time
        return row.cells.get(column, "not run") + (f" ({seconds:.0f} s)" if seconds else "")
    lines = ["| kernel (suite, compiler) | " + " | ".join(COLUMNS) + " | time |",
             "|---" * (len(COLUMNS) + 2) + "|"]
    for row in rows:
        lines.append(f"| {row.kernel} ({row.suite}, {row.compiler}) | "
                     + " | ".join(cell(row, c) for c in COLUMNS)
                     + f" | {row.seconds.get('total', 0):.0f} s |")
    return "\n".join(lines)


def record(rows: list[Row], text: str) -> None:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    RESULTS.write_text(
        "# The kernel matrix: last results\n\n"
        f"Written by `make kmod-matrix` (tools/kmatrix) on {stamp}. Each row: the module built "
        "W=1 against the suite's headers with the suite's compiler, the suite's own kernel "
        "booted in the QEMU harness (TCG), the conformance suite and the kernel suite run in "
        "the guest on that module, the guest's kernel log checked. The suites' cells give "
        "pytest's own time; the row's time includes the chroot check (or its making).\n\n"
        f"{text}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.kmatrix", description=__doc__)
    parser.add_argument("suites", nargs="*", default=list(SUITES),
                        help=f"Debian suites (default: {' '.join(SUITES)})")
    parser.add_argument("--offline", action="store_true",
                        help="use the cached chroots without asking the mirror for newer kernels")
    parser.add_argument("--no-record", action="store_true",
                        help=f"do not write {RESULTS.relative_to(locate.REPO)}")
    args = parser.parse_args(argv)
    unknown = [s for s in args.suites if not re.fullmatch(r"[a-z][a-z0-9-]*", s)]
    if unknown:
        print(f"kmatrix: not a Debian suite name: {' '.join(unknown)}", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("kmatrix: needs root (mmdebstrap and chroot)", file=sys.stderr)
        return 2
    rows = [run_suite(suite, refresh=not args.offline) for suite in args.suites]
    text = table(rows)
    print(text)
    for row in rows:
        for note in row.notes if not row.ok else []:
            print(f"\n{row.kernel} ({row.suite}): {note}")
    print("\ntime per row: " + ", ".join(
        f"{r.kernel} ({r.suite}) {r.seconds.get('total', 0):.0f} s "
        f"(chroot {r.seconds.get('chroot', 0):.0f} s)" for r in rows))
    if not args.no_record:
        record(rows, text)
        log(f"results recorded in {RESULTS.relative_to(locate.REPO)}")
    failed = [f"{r.kernel} ({r.suite})" for r in rows if not r.ok]
    if failed:
        print(f"kmatrix: failed on {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

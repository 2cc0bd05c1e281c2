"""The kernel matrix's driver (tools/kmatrix) without chroots or guests: what it asks of
mmdebstrap, how it reads the guest's output, the table it prints and records, bad input.
`make kmod-matrix` itself is the real run (minutes per kernel)."""
from __future__ import annotations

import subprocess
import sys

from tools.kmatrix.__main__ import COLUMNS, GUEST_SCRIPT, SUITE_MARK, Row, suite_results, table
from tools.kmatrix.chroot import cache_key, mmdebstrap_command
from tools.locate import REPO


def test_mmdebstrap_brings_kernel_headers_and_sid_ignores_valid_until(tmp_path):
    command = mmdebstrap_command("sid", tmp_path)
    assert command[:3] == ["mmdebstrap", "--variant=buildd",
                           "--include=linux-headers-amd64,linux-image-amd64,kmod"]
    assert '--aptopt=Acquire::Check-Valid-Until "false"' in command
    assert command[-3:] == ["sid", str(tmp_path), "deb http://deb.debian.org/debian sid main"]
    trixie = mmdebstrap_command("trixie", tmp_path)
    assert not any("aptopt" in part for part in trixie)
    # a stable line's newest kernel comes with its point-release and security updates
    assert trixie[-3:] == ["deb http://deb.debian.org/debian trixie main",
                           "deb http://deb.debian.org/debian trixie-updates main",
                           "deb http://deb.debian.org/debian-security trixie-security main"]


def test_cache_is_keyed_by_versions_and_sources():
    versions = {"linux-image-amd64": "6.12.117-1", "gcc": "4:14.2.0-1"}
    key = cache_key(versions, "trixie")
    assert key.startswith("gcc 4:14.2.0-1\nlinux-image-amd64 6.12.117-1\n")
    assert "source deb http://deb.debian.org/debian-security trixie-security main\n" in key
    assert key != cache_key(versions | {"linux-image-amd64": "6.12.118-1"}, "trixie")


def test_each_suite_is_told_apart_in_the_guest_output():
    output = ("....\n50 passed in 56.58s\n"
              f"{SUITE_MARK} conformance 0\n"
              "F.\n=== 1 failed, 11 passed in 50.92s ===\n"
              f"{SUITE_MARK} guest 1\n")
    assert suite_results(output) == {"conformance": (0, "50 passed in 56.58s"),
                                     "guest": (1, "1 failed, 11 passed in 50.92s")}
    assert "tests/kernel/$s" in GUEST_SCRIPT and "conformance guest" in GUEST_SCRIPT


def test_table_names_the_kernel_and_each_failed_cell():
    green = Row("trixie", "6.12.117+deb13-amd64", "gcc 14.2.0",
                cells={c: "ok" for c in COLUMNS}, seconds={"build W=1": 16, "total": 203})
    red = Row("sid", "7.2.13+deb14-amd64", "gcc 16.2.0",
              cells={"build W=1": "FAIL"}, seconds={"total": 30})
    assert green.ok and not red.ok
    lines = table([green, red]).splitlines()
    assert lines[0].split("|")[2:-2] == [f" {c} " for c in COLUMNS]
    assert lines[2].startswith("| 6.12.117+deb13-amd64 (trixie, gcc 14.2.0) | ok (16 s) |")
    assert lines[3] == ("| 7.2.13+deb14-amd64 (sid, gcc 16.2.0) | FAIL | not run | not run "
                        "| not run | not run | 30 s |")


def test_bad_suite_name_is_one_line_and_exit_2():
    result = subprocess.run([sys.executable, "-m", "tools.kmatrix", "--no-record", "bad/suite"],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 2
    assert result.stderr == "kmatrix: not a Debian suite name: bad/suite\n"

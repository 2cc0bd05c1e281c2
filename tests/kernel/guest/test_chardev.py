"""The character device and its ioctls, on the real module (in the guest)."""
from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import stat
import subprocess
import uuid
from dataclasses import asdict
from pathlib import Path

import pytest

from mock_accel.abi import (
    IOC_INFO,
    IOC_MAGIC,
    IOC_PASSPHRASE,
    IOC_STATUS,
    STATUS_ALLOCATED,
    STATUS_READY,
    ior,
)
from mock_accel.firmware import EFF_LONG_WORDS
from mock_accel.uapi import DeviceFile, InfoArg, PassphraseArg
from tests.harness.beds import MODULE_NAME
from tests.harness.words import assert_words
from tools import locate

WORDS = set(locate.wordlist().read_text().split())


def kernel_log() -> str:
    return subprocess.run(["dmesg"], capture_output=True, text=True, check=True).stdout


def log_mark() -> str:
    """Write a unique line into the kernel log and return it. The ring buffer wraps (a PCI
    enumeration logs dozens of lines per load), so "the log since" is what follows a mark,
    never an offset into an earlier copy of the log."""
    mark = f"mock-accel-test-mark {uuid.uuid4()}"
    Path("/dev/kmsg").write_text(mark + "\n")
    return mark


def kernel_log_since(mark: str) -> str:
    log = kernel_log()
    assert mark in log, f"{mark} is no longer in the kernel log"
    return log.split(mark, 1)[1]


def expect_errno(code: int, action) -> None:
    with pytest.raises(OSError) as caught:
        action()
    assert caught.value.errno == code, f"expected {errno.errorcode[code]}, got {caught.value}"


def test_dev_nodes_are_private_char_devices(kernel):
    for name in kernel.node.names():
        mode = os.stat(kernel.node.dev_path(name)).st_mode
        assert stat.S_ISCHR(mode) and stat.S_IMODE(mode) == 0o600, (name, oct(mode))


def test_dev_mode_parameter(kernel):
    kernel.load(dev_mode=0o666)
    assert stat.S_IMODE(os.stat("/dev/mock0").st_mode) == 0o666


def test_ioctl_status_follows_sysfs(kernel):
    with DeviceFile("/dev/mock0") as device:
        assert device.status() == STATUS_READY
        kernel.node.set_allocated("mock0", True)
        assert device.status() == STATUS_READY | STATUS_ALLOCATED


def test_ioctl_passphrase(kernel):
    with DeviceFile("/dev/mock1") as device:
        assert_words(device.passphrase(0), 6, WORDS)
        for count in (1, 12):
            assert_words(device.passphrase(count), count, WORDS)
        expect_errno(errno.EINVAL, lambda: device.passphrase(13))
        expect_errno(errno.EINVAL, lambda: device.passphrase(255))


def test_ioctl_passphrase_needs_a_writable_open(kernel):
    """kmod/ABI.md: PASSPHRASE drives the engine, so a read-only open gets EBADF; STATUS, INFO
    and read() stay open to readers."""
    fd = os.open("/dev/mock1", os.O_RDONLY | os.O_CLOEXEC)
    try:
        request = bytearray(PassphraseArg(word_count=3))
        expect_errno(errno.EBADF, lambda: fcntl.ioctl(fd, IOC_PASSPHRASE, request, True))
        status = bytearray(4)
        fcntl.ioctl(fd, IOC_STATUS, status, True)
        assert int.from_bytes(status, "little") == STATUS_READY
        info = bytearray(InfoArg())
        fcntl.ioctl(fd, IOC_INFO, info, True)
        assert InfoArg.from_buffer(info).name == b"mock1"
        assert os.read(fd, 4096).startswith(b"Mock Accelerator Device\n")
    finally:
        os.close(fd)
    with DeviceFile("/dev/mock1") as device:  # O_RDWR, as mock_accel.uapi opens it
        assert_words(device.passphrase(3), 3, WORDS)


def test_ioctl_info_matches_sysfs(kernel):
    kernel.node.set_numvfs("mock1", 2)
    inventory = kernel.node.discover()
    for name in ["mock1", "mock1-vf1"]:
        with DeviceFile(f"/dev/{name}") as device:
            info = asdict(device.info())
        record = asdict(inventory[name])
        del record["passphrase_count"]
        assert info == record


def test_ioctl_info_names_at_the_limits(kernel):
    """The uapi's 32-byte name fields hold the longest names (PF 255, VF 63) uncut."""
    kernel.node.new_device(255, 0, 2**30, 64)
    kernel.node.set_numvfs("mock255", 64)
    with DeviceFile("/dev/mock255-vf63") as device:
        info = device.info()
    assert (info.name, info.physfn) == ("mock255-vf63", "mock255")


def test_read_summary(kernel):
    with DeviceFile("/dev/mock2") as device:
        lines = device.read_summary().splitlines()
    assert lines[:2] == ["Mock Accelerator Device", "Name: mock2"]
    assert lines[6] == f"Wordlist: {EFF_LONG_WORDS} words loaded"
    assert_words(lines[7].rsplit(" ", 1)[-1], 6, WORDS)


def test_bad_requests(kernel):
    with DeviceFile("/dev/mock0") as device:
        expect_errno(errno.ENOTTY, lambda: device.ioctl(ior(IOC_MAGIC, 99, 4), ctypes.c_uint32()))
        expect_errno(errno.ENOTTY, lambda: device.ioctl(ior("X", 1, 4), ctypes.c_uint32()))
        for request in (IOC_STATUS, IOC_PASSPHRASE, IOC_INFO):
            # an integer argument is passed as the pointer itself: address 16 is never mapped
            expect_errno(errno.EFAULT, lambda r=request: fcntl.ioctl(device.fd, r, 16))


def test_passphrase_errors_without_firmware_and_on_failure(kernel):
    kernel.node.inject_fault("mock0")
    with DeviceFile("/dev/mock0") as device:
        expect_errno(errno.EIO, lambda: device.passphrase())
    mark = log_mark()
    kernel.load(firmware=False)
    with DeviceFile("/dev/mock0") as device:
        expect_errno(errno.ENOENT, lambda: device.passphrase())
        assert "Wordlist: not loaded" in device.read_summary()
    with DeviceFile("/dev/mock1") as device:
        expect_errno(errno.ENOENT, lambda: device.passphrase(3))
    # the missing firmware is reported once per load, not once per device or per call
    since_load = kernel_log_since(mark)
    assert since_load.count("mock-accel-absent.txt not found") == 1, since_load


def test_refused_wordlist_is_one_log_line_naming_line_and_rule(kernel, tmp_path):
    """A word too long for a passphrase: one kernel log line at load and one per refused
    load_wordlist, naming the file, the line and the limit."""
    firmware = tmp_path / "mock-accel-long.txt"
    firmware.write_bytes(b"ab\n" + b"x" * 21 + b"\n")
    mark = log_mark()
    kernel.load(firmware=firmware)
    fd = os.open(kernel.node.attribute_path("mock2", "load_wordlist"), os.O_WRONLY)
    try:  # one write(2), one call of the store (a buffered file may flush twice)
        expect_errno(errno.EINVAL, lambda: os.write(fd, b"1"))
    finally:
        os.close(fd)
    lines = [line for line in kernel_log_since(mark).splitlines()
             if "mock_accel: wordlist" in line]
    why = ("wordlist firmware mock-accel-long.txt line 2: a word of 21 bytes; 12 words joined "
           "by '-' must fit a 255-byte passphrase, so words have at most 20 bytes; refused")
    assert len(lines) == 2 and all(line.endswith(why) for line in lines), lines


def test_removed_device_with_open_file(kernel):
    device = DeviceFile("/dev/mock1")
    kernel.node.del_device(1)
    assert "mock1" not in kernel.node.names() and not Path("/dev/mock1").exists()
    expect_errno(errno.ENODEV, device.status)
    expect_errno(errno.ENODEV, device.read_summary)
    device.close()
    kernel.node.new_device(1)
    with DeviceFile("/dev/mock1") as again:
        assert again.status() == STATUS_READY


def test_unload_with_open_file(kernel):
    device = DeviceFile("/dev/mock0")
    done = subprocess.run(["rmmod", MODULE_NAME], capture_output=True, text=True)
    assert done.returncode != 0 and "in use" in done.stderr
    assert device.status() == STATUS_READY
    device.close()
    subprocess.run(["rmmod", MODULE_NAME], check=True)
    assert not Path("/sys/class/mock-accel").exists() and not Path("/dev/mock0").exists()


def test_passphrase_arg_is_seed_compatible():
    assert ctypes.sizeof(PassphraseArg) == 257
    assert IOC_PASSPHRASE == (3 << 30) | (257 << 16) | (ord("M") << 8) | 2

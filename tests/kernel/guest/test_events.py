"""The module announces changes (kmod/ABI.md, "Change notification"): poll() on an attribute
wakes (POLLPRI | POLLERR) when its value changes, and a KOBJ_CHANGE uevent names the attribute;
on both backends, in the guest."""
from __future__ import annotations

import os
import select
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CLASS = Path("/sys/class/mock-accel")
NETLINK_KOBJECT_UEVENT = 15
WAKE = select.POLLPRI | select.POLLERR


class Armed:
    """An attribute file opened and read once, so the next change wakes poll()."""

    def __init__(self, name: str, attribute: str):
        self.fd = os.open(CLASS / name / attribute, os.O_RDONLY)
        self.value = self.read()

    def read(self) -> str:
        return os.pread(self.fd, 4096, 0).decode().strip()

    def woke(self, timeout: float) -> bool:
        poller = select.poll()
        poller.register(self.fd, WAKE)
        events = poller.poll(timeout * 1000)
        if events:
            assert events[0][1] & WAKE == WAKE, events
            self.value = self.read()  # reading again re-arms it
        return bool(events)

    def close(self) -> None:
        os.close(self.fd)


@contextmanager
def armed(name: str, *attributes: str) -> Iterator[list[Armed]]:
    files = [Armed(name, attribute) for attribute in attributes]
    try:
        yield files
    finally:
        for file in files:
            file.close()


@contextmanager
def uevents() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_KOBJECT_UEVENT)
    sock.bind((0, 1))  # the kernel's multicast group
    try:
        yield sock
    finally:
        sock.close()


def drain(sock: socket.socket, timeout: float = 10.0) -> list[tuple[str, str, dict]]:
    """(action, class device name, environment) of every mock-accel uevent that arrives until
    0.5 s pass without one (or `timeout` without any)."""
    found: list[tuple[str, str, dict]] = []
    deadline = time.monotonic() + timeout
    while True:
        wait = deadline - time.monotonic() if not found else 0.5
        ready, _, _ = select.select([sock], [], [], max(wait, 0))
        if not ready:
            return found
        header, *fields = sock.recv(65536).decode(errors="replace").rstrip("\0").split("\0")
        env = dict(f.split("=", 1) for f in fields if "=" in f)
        if env.get("SUBSYSTEM") == "mock-accel":
            found.append((header.split("@")[0], env["DEVPATH"].rsplit("/", 1)[-1], env))


def changes(events: list[tuple[str, str, dict]], name: str) -> list[str]:
    return [env.get("MOCK_ACCEL_CHANGE") for action, device, env in events
            if action == "change" and device == name]


def load(kernel, backend: str) -> None:
    kernel.load(num_devices=1, **({"backend": "pci"} if backend == "pci" else {}))


@pytest.mark.parametrize("backend", ["soft", "pci"])
def test_a_fault_wakes_status_and_health_and_sends_one_change(kernel, backend):
    load(kernel, backend)
    with armed("mock0", "status", "health", "sriov_numvfs") as (status, health, numvfs), \
            uevents() as sock:
        assert not status.woke(0) and not health.woke(0)  # armed: nothing pending
        (CLASS / "mock0" / "inject_fault").write_text("1")
        assert status.woke(5) and health.woke(5)
        assert (status.value, health.value) == ("0x00000005", "failed")
        assert not numvfs.woke(0.2)  # untouched attributes stay quiet
        events = drain(sock)
        assert changes(events, "mock0") == ["status,health"], events
        (CLASS / "mock0" / "inject_fault").write_text("1")  # no change: no wake, no uevent
        assert not status.woke(0.3) and not drain(sock, 0.5)
        (CLASS / "mock0" / "inject_fault").write_text("0")
        assert status.woke(5) and health.woke(5) and health.value == "ok"


@pytest.mark.parametrize("backend", ["soft", "pci"])
def test_allocation_wakes_status_only(kernel, backend):
    load(kernel, backend)
    with armed("mock0", "status", "health") as (status, health), uevents() as sock:
        (CLASS / "mock0" / "status").write_text("0x2")   # a second reader sees the writer's change
        assert status.woke(5) and status.value == "0x00000003"
        assert not health.woke(0.2)
        events = drain(sock)
        assert changes(events, "mock0") == ["status"], events


@pytest.mark.parametrize("backend", ["soft", "pci"])
def test_sriov_change_wakes_numvfs_and_vfs_come_and_go_with_uevents(kernel, backend):
    load(kernel, backend)
    # backend=pci: through the PCI core's file, which reaches the class device's attribute too
    control = (Path("/sys/bus/pci/devices/acc0:00:00.0/sriov_numvfs") if backend == "pci"
               else CLASS / "mock0" / "sriov_numvfs")
    with armed("mock0", "sriov_numvfs") as (numvfs,), uevents() as sock:
        control.write_text("2")
        assert numvfs.woke(10) and numvfs.value == "2"
        events = drain(sock)
        assert {("add", "mock0-vf0"), ("add", "mock0-vf1")} <= {e[:2] for e in events}, events
        assert changes(events, "mock0") == ["sriov_numvfs"], events
        control.write_text("0")
        assert numvfs.woke(10) and numvfs.value == "0"
        events = drain(sock)
        assert {("remove", "mock0-vf0"), ("remove", "mock0-vf1")} <= {e[:2] for e in events}
        assert changes(events, "mock0") == ["sriov_numvfs"], events


@pytest.mark.parametrize("backend", ["soft", "pci"])
def test_the_products_watcher_wakes_on_kernel_events(kernel, backend):
    """`SysfsNode.watcher()` (what the controller and the health stream wait on) on real sysfs:
    woken by the kernel well before its timeout, quiet otherwise."""
    load(kernel, backend)
    node = kernel.node
    with node.watcher() as watcher:
        assert watcher.wait(0) is True   # the devices, newly watched
        assert watcher.wait(0.3) is False
        node.passphrase("mock0")   # reads wake nothing
        assert watcher.wait(0.3) is False
        for change in (lambda: node.inject_fault("mock0"),
                       lambda: node.set_allocated("mock0", True),
                       lambda: node.set_numvfs("mock0", 1)):
            started = time.monotonic()
            change()
            assert watcher.wait(30) is True and time.monotonic() - started < 5
            while watcher.wait(0.2):   # drain: a fault wakes status and health
                pass
        assert ("mock0-vf0", "health") in watcher._files.values()   # the new VF is watched
        node.inject_fault("mock0-vf0")
        assert watcher.wait(30) is True and watcher.events >= 4

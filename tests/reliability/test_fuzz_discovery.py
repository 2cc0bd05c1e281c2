"""Property-based fuzzing of discovery (hypothesis, ≥ 10k cases): random contents in the sysfs tree
of a node — any bytes or near-valid values in attribute files, attributes missing, turned into
directories or dangling links, stray entries in the class directory. Discovery must never raise:
each broken device is reported as a `DeviceProblem` naming its attribute, every other device is
read exactly as before, and the slices built from what was read never fail to build.

The tree is a simulated node read by the plain `SysfsNode` reader (the one used on a kernel);
each case is undone before the next. Replay: see README.md."""
from __future__ import annotations

import logging
import shutil
import string
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mock_accel.sim import SimConfig, SimNode
from mock_accel.slices import build_slices
from mock_accel.sysfs import ATTRIBUTES, NAME_PATTERN, SysfsNode

from .common import FUZZ_EXAMPLES, fuzz_seeded, memory_tmpdir

TOPOLOGY = SimConfig(num_devices=1, numa_nodes=1, total_vfs=1, num_vfs=1)   # mock0, mock0-vf0
ACTIONS = ("write", "write", "write", "delete", "directory", "dangling-link")


@pytest.fixture(scope="module")
def tree():
    workdir = memory_tmpdir("ma-fuzz-sysfs-")
    sim = SimNode.create(workdir / "node", TOPOLOGY)
    node = SysfsNode(sim.root)
    original = node.discover()
    assert len(original) == 2 and not original.problems
    yield node, original
    shutil.rmtree(workdir, ignore_errors=True)


# Values close to what the kernel writes: numbers of any size and sign, hex of any width, case
# and padding changes, other attributes' values, extra or missing newlines, NUL bytes.
_numbers = st.integers(min_value=-2**70, max_value=2**70)
_texts = st.one_of(
    _numbers.map(str), _numbers.map(lambda n: f"0x{abs(n):08x}"),
    _numbers.map(lambda n: f"0X{abs(n):X}"), st.sampled_from(
        ["pf", "vf", "ok", "failed", "0", "1", "mock0", "mock1-vf0", "", " ", "1.0.0",
         "acc0:00:00.0", "pciacc0:00", "-1", "+1", "1e3", "０", "٣", "0x0000000g"]),
    st.uuids().map(str), st.uuids().map(lambda u: str(u).upper()),
    st.text(alphabet=string.printable, max_size=40))
_endings = st.sampled_from(["\n", "", "\n\n", " \n", "\r\n", "\x00"])
near_valid = st.builds(lambda text, end: (text + end).encode(), _texts, _endings)
contents = st.one_of(st.binary(max_size=64), near_valid)
mutation = st.tuples(st.integers(0, 1), st.sampled_from(list(ATTRIBUTES) + ["uevent", "extra"]),
                     st.sampled_from(ACTIONS), contents)
strays = st.lists(st.sampled_from(["mock7", "mock0-vf9", "mock00", "mockX", ".hidden", "mock3",
                                   "mock-1", "MOCK2"]), max_size=2, unique=True)


def _clear(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def apply(node: SysfsNode, names: list[str], mutations, stray_names) -> tuple[dict, list[Path]]:
    """Apply the case; returns what to restore (path -> old bytes or None) and stray paths."""
    saved: dict[Path, bytes | None] = {}
    for index, attribute, action, data in mutations:
        path = (node.class_dir / names[index]).resolve() / attribute
        if path not in saved:
            saved[path] = path.read_bytes() if path.is_file() else None
        _clear(path)
        if action == "write":
            path.write_bytes(data)
        elif action == "directory":
            path.mkdir()
        elif action == "dangling-link":
            path.symlink_to(path.with_name("nowhere"))
    made = []
    for name in stray_names:
        stray = node.class_dir / name
        if stray.exists() or stray.is_symlink():
            continue
        if name.endswith("3"):
            stray.write_text("not a device directory\n")
        else:
            stray.symlink_to("../../devices/gone")
        made.append(stray)
    return saved, made


def restore(saved: dict[Path, bytes | None], made: list[Path]) -> None:
    for path, data in saved.items():
        _clear(path)
        if data is not None:
            path.write_bytes(data)
    for stray in made:
        _clear(stray)


cases = {"count": 0, "problems": 0, "skipped devices": 0}
shown: list = []   # the Progress of the running test


@fuzz_seeded
@given(mutations=st.lists(mutation, max_size=3), stray_names=strays)
def fuzz_discovery(tree, mutations, stray_names):
    node, original = tree
    names = list(original.devices)
    touched = {names[index] for index, attribute, _, _ in mutations if attribute in ATTRIBUTES}
    saved, made = apply(node, names, mutations, stray_names)
    try:
        inventory = node.discover()   # must not raise, whatever the files hold
        listed = node.names()
        assert all(NAME_PATTERN.fullmatch(n) for n in listed)
        problems = {p.device: p for p in inventory.problems}
        assert len(problems) == len(inventory.problems), "one problem per device"
        assert set(problems).isdisjoint(inventory.devices)
        assert set(problems) | set(inventory.devices) == set(listed), "a device went unreported"
        for name in set(names) - touched:
            assert inventory.devices.get(name) == original[name], f"{name} was not touched"
        for device, problem in problems.items():
            assert problem.attribute in ATTRIBUTES and problem.reason
            assert str(problem).startswith(f"{device}: attribute {problem.attribute!r}")
        for device in inventory:
            assert device.name in listed and device.device_type in ("pf", "vf")
        build_slices("fuzz-node", inventory)
        cases["problems"] += len(problems)
        cases["skipped devices"] += len(set(listed) - set(inventory.devices))
    finally:
        restore(saved, made)
    cases["count"] += 1
    for show in shown:
        show.tick(cases["count"])


def test_fuzz_discovery(tree, progress):
    show = progress("fuzz discovery", FUZZ_EXAMPLES)
    shown.append(show)
    started = time.monotonic()
    node, original = tree
    quiet = logging.getLogger("mock_accel")   # each skipped device logs a warning: not needed
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        fuzz_discovery(tree)
    finally:
        shown.clear()
        quiet.setLevel(level)
    took = time.monotonic() - started
    show.say(f"discovery: {cases['count']} cases in {took:.1f} s "
             f"({took / max(cases['count'], 1) * 1000:.2f} ms each), "
             f"{cases['problems']} device problems reported")
    assert cases["count"] >= FUZZ_EXAMPLES
    assert node.discover() == original   # every case was undone

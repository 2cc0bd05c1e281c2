"""The sysfs ABI of kmod/ABI.md, checked on the simulator and on the real module alike."""
from __future__ import annotations

import errno
import os
import re
from pathlib import Path

import pytest

from mock_accel.abi import (
    PASSPHRASE_DEFAULT_WORDS,
    PASSPHRASE_MAX_WORDS,
    STATUS_ALLOCATED,
    STATUS_ERROR,
    STATUS_READY,
    WORD_MAX,
    WRITE_ONLY_ATTRIBUTES,
)
from mock_accel.firmware import EFF_LONG_WORDS
from mock_accel.sim import (
    default_uuid_seed,
    software_pcie_root,
    software_uuid,
)
from mock_accel.sysfs import ATTRIBUTES, AttributeWriteError
from tests.harness.beds import LoadError
from tests.harness.caps import write_as_member, write_without_cap_sys_admin
from tests.harness.words import assert_words, word_counts
from tools import locate

GiB = 2**30


def refused(action, *codes: int) -> None:
    """`action` must be refused with one of `codes`, and change nothing."""
    with pytest.raises(AttributeWriteError) as caught:
        action()
    assert caught.value.errno in codes, (
        f"expected {[errno.errorcode[c] for c in codes]}, got {caught.value}")


def snapshot(node):
    inventory = node.discover()
    assert not inventory.problems, inventory.problems
    return inventory.devices


@pytest.fixture(scope="session")
def wordlist() -> set[str]:
    return set(locate.wordlist().read_text().split())


# -- topology --------------------------------------------------------------------------------

def test_default_topology(bed, node):
    devices = snapshot(node)
    seed = bed.uuid_seed()
    assert list(devices) == ["mock0", "mock1", "mock2", "mock3"]
    for index, device in enumerate(devices.values()):
        assert device.device_type == "pf" and device.physfn is None
        assert device.numa_node == index % 2
        assert device.memory_size == 16 * GiB
        assert device.sriov_totalvfs == 4 and device.sriov_numvfs == 0
        assert device.status == STATUS_READY and device.health == "ok"
        assert device.capabilities == 0x3
        assert (device.fw_version, device.revision) == ("1.0.0", 1)
        assert device.uuid == software_uuid(index, None, seed)
        assert device.pci_address == bed.pci_address(index, None, index % 2)
        assert device.pcie_root == software_pcie_root(index % 2)
        assert device.wordlist_loaded and device.wordlist_size == EFF_LONG_WORDS
        assert device.passphrase_count == 6
    on_pci = getattr(bed, "backend", "soft") == "pci"
    assert devices["mock1"].pci_address == ("acc1:00:00.0" if on_pci else "acc1:01:00.0")
    assert devices["mock0"].uuid.startswith("4d4f434b-0000-4000-")


def test_attribute_files_and_formats(node):
    node.set_numvfs("mock0", 1)
    for name, kind in [("mock0", "pf"), ("mock0-vf0", "vf")]:
        directory = node.class_dir / name
        present = {p.name for p in directory.iterdir()}
        expected = {a for a, (_, kinds) in ATTRIBUTES.items() if kind in kinds}
        expected |= set(WRITE_ONLY_ATTRIBUTES) | {"passphrase", "device"}
        assert expected <= present, expected - present
        other_kind_only = {a for a, (_, kinds) in ATTRIBUTES.items() if kind not in kinds}
        assert not other_kind_only & present
        assert (directory / "device").is_symlink()
        for attribute in expected - set(WRITE_ONLY_ATTRIBUTES) - {"device", "passphrase"}:
            raw = (directory / attribute).read_text()
            assert raw.endswith("\n") and "\n" not in raw[:-1], (name, attribute, raw)
    assert re.fullmatch(r"0x[0-9a-f]{8}\n", (node.class_dir / "mock0" / "status").read_text())


def test_module_parameters(bed):
    seed = 0x0123_4567_89AB_CDEF
    node = bed.load(num_devices=3, numa_nodes=1, memory_size=GiB, total_vfs=2, num_vfs=2,
                    uuid_seed=seed)
    devices = snapshot(node)
    assert list(devices) == ["mock0", "mock0-vf0", "mock0-vf1", "mock1", "mock1-vf0",
                             "mock1-vf1", "mock2", "mock2-vf0", "mock2-vf1"]
    assert {d.numa_node for d in devices.values()} == {0}
    assert devices["mock2"].memory_size == GiB and devices["mock2-vf1"].memory_size == GiB // 2
    assert devices["mock2-vf1"].uuid == software_uuid(2, 1, seed)
    assert devices["mock2-vf1"].uuid == "4d4f434b-0002-4002-8123-456789abcdef"
    assert bed.uuid_seed() == seed  # a given seed is used as it is, and read back


def test_uuid_seed_unset_is_the_machines_or_random(bed):
    """Without uuid_seed (KMM gives every node the same parameters) the seed comes from the
    machine's DMI product UUID (the same on every load), else it is random (new on each load):
    hosts differ either way. The seed in use is read back and never 0."""
    seeds, uuids = [], []
    for _ in range(2):
        node = bed.load(num_devices=1)
        seeds.append(bed.uuid_seed())
        uuids.append(snapshot(node)["mock0"].uuid)
        assert uuids[-1] == software_uuid(0, None, seeds[-1])
    expected = default_uuid_seed(bed.system_uuid())
    given = os.environ.get("MOCK_ACCEL_TEST_SYSTEM_UUID")  # the VM test that sets one says so
    if given:
        assert expected is not None and bed.system_uuid() == given, bed.system_uuid()
    if expected is None:
        assert 0 not in seeds and seeds[0] != seeds[1] and uuids[0] != uuids[1], seeds
    else:
        assert seeds == [expected, expected], (seeds, expected)
    assert bed.load(num_devices=1, uuid_seed=5) and bed.uuid_seed() == 5


def test_numa_node_reaches_the_device_model(node):
    """The configured node is set on the device when the machine has it (2 nodes here)."""
    node.new_device(5, 5)
    node.new_device(6, -1)
    devices = snapshot(node)
    for name, configured, placed in [("mock0", 0, 0), ("mock1", 1, 1), ("mock5", 5, -1),
                                     ("mock6", -1, -1)]:
        assert devices[name].numa_node == configured
        assert int((node.class_dir / name / "device" / "numa_node").read_text()) == placed
    assert devices["mock5"].pci_address == "acc5:05:00.0"
    assert devices["mock6"].pci_address == "acc0:06:00.0"


@pytest.mark.parametrize("params", [dict(total_vfs=65), dict(num_vfs=5), dict(numa_nodes=0),
                                    dict(num_devices=257), dict(memory_size=0)])
def test_invalid_module_parameters_refuse_to_load(bed, params):
    with pytest.raises(LoadError):
        bed.load(**params)


def test_word_counts():
    words = {"yo-yo", "yo", "drop-down", "down", "drop"}
    assert word_counts("yo-yo-drop", words) == {2, 3}
    assert word_counts("drop-down", words) == {1, 2} and word_counts("t-shirt", words) == set()


def test_no_devices(bed):
    node = bed.load(num_devices=0)
    assert snapshot(node) == {}


# -- status ----------------------------------------------------------------------------------

def test_status_read_write(node):
    assert node.set_allocated("mock2", True) == STATUS_READY | STATUS_ALLOCATED
    assert node.discover()["mock2"].allocated
    assert node.set_allocated("mock2", False) == STATUS_READY
    node.write_attr("mock2", "status", "0x7")  # READY and ERROR belong to the device
    assert node.discover()["mock2"].status == STATUS_READY | STATUS_ALLOCATED
    node.write_attr("mock2", "status", "0\n")
    assert node.discover()["mock2"].status == STATUS_READY


@pytest.mark.parametrize("value", ["0x8", "0x80000002", "abc", "", "2x", "-1", " 2", "0x"])
def test_status_garbage_is_refused(node, value):
    before = snapshot(node)
    refused(lambda: node.write_attr("mock0", "status", value), errno.EINVAL)
    assert snapshot(node) == before


def test_status_overflow_is_refused(node):
    before = snapshot(node)
    refused(lambda: node.write_attr("mock0", "status", "0x100000002"), errno.EINVAL, errno.ERANGE)
    assert snapshot(node) == before


# -- SR-IOV ----------------------------------------------------------------------------------

def test_vfs_enable_and_disable(bed, node):
    node.set_numvfs("mock1", 4)
    devices = snapshot(node)
    vfs = [d for d in devices.values() if d.physfn == "mock1"]
    assert [d.name for d in vfs] == [f"mock1-vf{m}" for m in range(4)]
    for index, vf in enumerate(vfs):
        assert vf.device_type == "vf" and vf.sriov_totalvfs is None
        assert vf.numa_node == 1 and vf.memory_size == 4 * GiB
        assert vf.capabilities == 0x1 and vf.status == STATUS_READY
        assert vf.uuid == software_uuid(1, index, bed.uuid_seed())
        assert vf.pci_address == bed.pci_address(1, index, 1)
        assert vf.pcie_root == devices["mock1"].pcie_root
    assert devices["mock1"].sriov_numvfs == 4
    assert node.dev_path("mock1-vf3").exists()
    node.set_numvfs("mock1", 0)
    assert list(snapshot(node)) == ["mock0", "mock1", "mock2", "mock3"]
    assert not node.dev_path("mock1-vf3").exists()


def test_vf_count_rules(node):
    refused(lambda: node.set_numvfs("mock0", 5), errno.EINVAL)
    for garbage in ["-1", "two", "", "1 1"]:
        refused(lambda g=garbage: node.write_attr("mock0", "sriov_numvfs", g), errno.EINVAL)
    node.set_numvfs("mock0", 2)
    node.set_numvfs("mock0", 2)  # same value: nothing to do
    before = snapshot(node)
    refused(lambda: node.set_numvfs("mock0", 3), errno.EBUSY)
    assert snapshot(node) == before


def test_vfs_cannot_change_while_one_is_open(bed, node):
    node.set_numvfs("mock3", 2)
    with bed.hold_open("mock3-vf1"):
        refused(lambda: node.set_numvfs("mock3", 0), errno.EBUSY)
        assert "mock3-vf1" in snapshot(node)
    node.set_numvfs("mock3", 0)
    assert "mock3-vf1" not in snapshot(node)


# -- runtime devices --------------------------------------------------------------------------

def test_runtime_add_and_remove(bed, node):
    assert node.new_device(7) == "mock7"
    node.new_device(8, 0, GiB, 2)
    devices = snapshot(node)
    assert devices["mock7"].numa_node == 1 and devices["mock7"].memory_size == 16 * GiB
    assert devices["mock8"].numa_node == 0 and devices["mock8"].sriov_totalvfs == 2
    assert devices["mock8"].pci_address == "acc0:08:00.0"
    assert devices["mock7"].uuid == software_uuid(7, None, bed.uuid_seed())
    assert node.dev_path("mock8").exists()
    node.set_numvfs("mock8", 2)
    node.del_device(8)
    node.del_device(7)
    assert list(snapshot(node)) == ["mock0", "mock1", "mock2", "mock3"]
    assert not node.dev_path("mock8-vf0").exists() and not node.dev_path("mock8").exists()


def test_names_at_the_limits(node):
    """The largest PF number (255) and VF index (63) make the longest names: none is cut."""
    node.new_device(255, 0, GiB, 64)
    node.set_numvfs("mock255", 64)
    devices = snapshot(node)
    vfs = [d for d in devices.values() if d.physfn == "mock255"]
    assert [d.name for d in vfs] == [f"mock255-vf{m}" for m in range(64)]
    assert devices["mock255"].sriov_numvfs == 64
    assert node.dev_path("mock255-vf63").exists()
    node.set_numvfs("mock255", 0)
    node.del_device(255)
    assert "mock255" not in snapshot(node)


@pytest.mark.parametrize("value", ["abc", "256", "-1", "", "1 2 3 4 5", "9 x", "9  1", "9 0 0"])
def test_new_device_garbage_is_refused(node, value):
    before = snapshot(node)
    refused(lambda: node.write_control("new_device", value), errno.EINVAL)
    assert snapshot(node) == before


def test_new_device_existing_and_del_unknown(node):
    before = snapshot(node)
    refused(lambda: node.new_device(2), errno.EEXIST)
    refused(lambda: node.del_device(9), errno.ENODEV)
    refused(lambda: node.write_control("del_device", "x"), errno.EINVAL)
    assert snapshot(node) == before


def _write_syscalls() -> int:
    for line in open("/proc/thread-self/io"):
        if line.startswith("syscw:"):
            return int(line.split()[1])
    raise AssertionError("no syscw in /proc/thread-self/io")


def test_a_refused_write_reaches_the_store_once(node):
    # a buffered file retried a refused write at close: the kernel saw (and logged) it twice
    before = _write_syscalls()
    refused(lambda: node.write_control("del_device", "x"), errno.EINVAL)
    assert _write_syscalls() - before <= 1


# -- passphrases and firmware -----------------------------------------------------------------

def test_passphrase_through_sysfs(node, wordlist):
    assert_words(node.passphrase("mock0"), 6, wordlist)
    assert_words(node.passphrase("mock0", 12), 12, wordlist)
    assert_words(node.passphrase("mock0", 1), 1, wordlist)
    assert node.discover()["mock0"].passphrase_count == 1
    phrases = {node.passphrase("mock1", 4) for _ in range(5)}
    assert len(phrases) == 5  # 7776**4 possibilities: a repeat means no randomness


@pytest.mark.parametrize("value", ["0", "13", "x", "", "-1"])
def test_passphrase_count_garbage_is_refused(node, value):
    refused(lambda: node.write_attr("mock0", "passphrase_count", value), errno.EINVAL)
    assert node.discover()["mock0"].passphrase_count == 6


def test_without_firmware(bed):
    node = bed.load(firmware=False)
    devices = snapshot(node)
    assert all(not d.wordlist_loaded and d.wordlist_size == 0 for d in devices.values())
    with pytest.raises(OSError) as caught:
        node.passphrase("mock0")
    assert caught.value.errno == errno.ENOENT
    refused(lambda: node.load_wordlist("mock0"), errno.ENOENT)
    assert "Wordlist: not loaded" in node.dev_path("mock0").read_text()


def test_load_wordlist(node):
    node.load_wordlist("mock3")
    assert node.discover()["mock3"].wordlist_size == EFF_LONG_WORDS
    refused(lambda: node.write_attr("mock3", "load_wordlist", "2"), errno.EINVAL)


def custom_wordlist(tmp_path, data: bytes):
    path = tmp_path / "firmware" / "mock-accel-test-wordlist.txt"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return path


def test_longest_word_fits_twelve_times(bed, tmp_path):
    """A list of one 20-byte word: a 12-word passphrase is 251 bytes, and it is served."""
    word = "w" * WORD_MAX
    node = bed.load(firmware=custom_wordlist(tmp_path, f"{word}\n".encode()))
    assert node.discover()["mock0"].wordlist_size == 1
    assert node.passphrase("mock0", PASSPHRASE_MAX_WORDS) == "-".join([word] * 12)


def test_words_too_long_for_a_passphrase_are_refused_at_load(bed, tmp_path):
    """A word of 21 bytes: twelve of them cannot fit 255 bytes, so the list is refused when it
    loads (module load and load_wordlist), never later as -EIO from a passphrase read."""
    firmware = custom_wordlist(tmp_path, b"ab\n" + b"x" * (WORD_MAX + 1) + b"\n")
    node = bed.load(firmware=firmware)
    assert all(not d.wordlist_loaded and d.wordlist_size == 0 for d in snapshot(node).values())
    with pytest.raises(OSError) as caught:
        node.passphrase("mock0", PASSPHRASE_MAX_WORDS)
    assert caught.value.errno == errno.ENOENT
    firmware.write_bytes(b"ab\ncd\n")
    node.load_wordlist("mock0")
    assert snapshot(node)["mock1"].wordlist_size == 2
    firmware.write_bytes(b"ab\n" + b"y" * (WORD_MAX + 1) + b"\n")
    refused(lambda: node.load_wordlist("mock0"), errno.EINVAL)
    assert snapshot(node)["mock1"].wordlist_size == 2  # the loaded list stays
    assert set(node.passphrase("mock0", PASSPHRASE_MAX_WORDS).split("-")) <= {"ab", "cd"}


def test_crlf_wordlist_loads_without_the_cr(bed, tmp_path):
    node = bed.load(firmware=custom_wordlist(tmp_path, b"ab\r\ncd\r\nef\r"))
    assert snapshot(node)["mock0"].wordlist_size == 3
    words = set(node.passphrase("mock0", PASSPHRASE_MAX_WORDS).split("-"))
    assert words <= {"ab", "cd", "ef"}, words


@pytest.mark.parametrize("data", [b"ab\r\n\r\ncd\n", b"a\rb\n", b"ab\n\r", b"ab\n\n"])
def test_stray_cr_and_empty_lines_are_refused(bed, tmp_path, data):
    node = bed.load(firmware=custom_wordlist(tmp_path, data))
    assert not snapshot(node)["mock0"].wordlist_loaded


def test_dev_read_summary(bed, node, wordlist):
    text = node.dev_path("mock1").read_text()
    lines = text.splitlines()
    assert lines[:7] == ["Mock Accelerator Device", "Name: mock1",
                         f"UUID: {software_uuid(1, None, bed.uuid_seed())}",
                         f"Memory: {16 * GiB} bytes",
                         "Status: 0x00000001", "NUMA Node: 1", "Wordlist: 7776 words loaded"]
    match = re.fullmatch(r"Sample Passphrase \(6 words\): (\S+)", lines[7])
    assert match
    assert_words(match[1], 6, wordlist)
    assert len(lines) == 8


# -- faults ----------------------------------------------------------------------------------

def test_fault_injection(node):
    node.inject_fault("mock2")
    device = node.discover()["mock2"]
    assert device.health == "failed" and device.status & STATUS_ERROR
    with pytest.raises(OSError) as caught:
        node.passphrase("mock2")
    assert caught.value.errno == errno.EIO
    node.set_allocated("mock2", True)  # the driver can still mark it; health stays failed
    assert node.discover()["mock2"].status == STATUS_READY | STATUS_ALLOCATED | STATUS_ERROR
    node.inject_fault("mock2", False)
    device = node.discover()["mock2"]
    assert device.health == "ok" and device.status == STATUS_READY | STATUS_ALLOCATED
    assert node.discover()["mock1"].health == "ok"


@pytest.mark.parametrize("value", ["2", "yes", "", "-1"])
def test_inject_fault_garbage_is_refused(node, value):
    refused(lambda: node.write_attr("mock0", "inject_fault", value), errno.EINVAL)
    assert node.discover()["mock0"].health == "ok"


def test_read_only_attributes_refuse_writes(node):
    for attribute in ["uuid", "memory_size", "numa_node", "health", "pci_address"]:
        refused(lambda a=attribute: node.write_attr("mock0", a, "1"), errno.EACCES, errno.EIO,
                errno.EPERM)


# -- privilege (kmod/ABI.md: modes and capabilities) -------------------------------------------

def test_passphrase_is_readable_by_its_owner_only(node):
    node.set_numvfs("mock0", 1)
    for name in ["mock0", "mock0-vf0"]:
        info = node.attribute_path(name, "passphrase").stat()
        assert (oct(info.st_mode & 0o777), info.st_uid) == ("0o400", 0), name
    node.passphrase("mock0")  # root still reads it
    assert oct(node.attribute_path("mock0", "passphrase").stat().st_mode & 0o777) == "0o400"


def test_destructive_stores_need_cap_sys_admin(node):
    destructive = [("mock0", "inject_fault", "1"), ("mock0", "sriov_numvfs", "1"),
                   ("mock0", "load_wordlist", "1"), (None, "new_device", "9"),
                   (None, "del_device", "1")]
    allowed = [("mock0", "status", str(STATUS_ALLOCATED)), ("mock0", "passphrase_count", "3")]
    done = write_without_cap_sys_admin(node, destructive + allowed)
    assert done["cap_sys_admin"] is False  # the child really lacked it
    assert done["errors"] == {f"{n}/{a}": "EPERM" for n, a, _ in destructive} | {
        "mock0/status": None, "mock0/passphrase_count": None}
    devices = snapshot(node)
    assert list(devices) == ["mock0", "mock1", "mock2", "mock3"]  # nothing made, nothing removed
    assert devices["mock0"].health == "ok" and devices["mock0"].sriov_numvfs == 0
    assert devices["mock0"].status == STATUS_READY | STATUS_ALLOCATED
    node.inject_fault("mock0")  # with the capability (this process) the same stores work
    node.set_numvfs("mock0", 1)
    assert snapshot(node)["mock0-vf0"].device_type == "vf"


# -- status_gid: a non-root agent writes status and nothing else (kmod/ABI.md) ----------------

AGENT_UID = 65532  # the chart's node agent
AGENT_GROUP = 4321  # any group the node does not otherwise use

# every attribute a member might try: the ABI's writable ones, a read-only one, the bus controls
MEMBER_WRITES = [(name, attribute, value) for name in ["mock0", "mock0-vf0"]
                 for attribute, value in [("status", str(STATUS_ALLOCATED)),
                                          ("passphrase_count", "3"), ("inject_fault", "1"),
                                          ("load_wordlist", "1"), ("uuid", "1")]] + [
    ("mock0", "sriov_numvfs", "0"), (None, "new_device", "9"), (None, "del_device", "1")]


def device_files(node, name) -> dict[str, os.stat_result]:
    """Every regular file of the device's class directory (the kernel's `power/` too)."""
    directory = node.attribute_path(name, "status").resolve().parent
    return {str((Path(top) / file).relative_to(directory)): (Path(top) / file).stat()
            for top, _, files in os.walk(directory) for file in files
            if not (Path(top) / file).is_symlink()}


def test_status_gid_lets_its_group_write_status_and_nothing_else(bed):
    node = bed.load(status_gid=AGENT_GROUP)
    node.set_numvfs("mock0", 1)  # VFs made after load get the group too
    for name in ["mock0", "mock0-vf0"]:
        files = device_files(node, name)
        assert {info.st_gid for info in files.values()} == {AGENT_GROUP}, name
        assert {info.st_uid for info in files.values()} == {0}, name
        writable = sorted(path for path, info in files.items() if info.st_mode & 0o022)
        assert writable == ["status"], (name, writable)
        assert oct(files["status"].st_mode & 0o777) == "0o664"
        assert oct(files["passphrase"].st_mode & 0o777) == "0o400"
    done = write_as_member(node, MEMBER_WRITES, AGENT_UID, AGENT_GROUP)
    assert done["ids"] == [AGENT_UID, AGENT_UID, [AGENT_GROUP]] and done["cap_eff"] == 0
    assert done["errors"] == {f"{n}/{a}": "EACCES" for n, a, _ in MEMBER_WRITES} | {
        "mock0/status": None, "mock0-vf0/status": None}
    devices = snapshot(node)
    assert list(devices) == ["mock0", "mock0-vf0", "mock1", "mock2", "mock3"]
    for name in ["mock0", "mock0-vf0"]:
        assert devices[name].status == STATUS_READY | STATUS_ALLOCATED, name
        assert devices[name].health == "ok"
        assert node.read_attr(name, "passphrase_count") == str(PASSPHRASE_DEFAULT_WORDS)
    node.set_allocated("mock0", False)  # root still writes it, and the group stays
    assert node.attribute_path("mock0", "status").stat().st_gid == AGENT_GROUP


def test_without_status_gid_status_is_roots_alone(bed, node):
    files = device_files(node, "mock0")
    assert {(info.st_uid, info.st_gid) for info in files.values()} == {(0, 0)}
    assert oct(files["status"].st_mode & 0o777) == "0o644"
    done = write_as_member(node, [("mock0", "status", str(STATUS_ALLOCATED))], AGENT_UID,
                           AGENT_GROUP)
    assert done["errors"] == {"mock0/status": "EACCES"}
    assert snapshot(node)["mock0"].status == STATUS_READY


@pytest.mark.parametrize("gid", [-2, 2**31])
def test_invalid_status_gid_refuses_to_load(bed, gid):
    with pytest.raises(LoadError):
        bed.load(status_gid=gid)

"""Tests of the VM harness itself. The `vm`-marked ones really boot guests.

Boots are grouped: each module-scoped fixture boots once and several tests
assert on its result. Deselect the slow ones with ``-m "not vm"``.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.vm import (
    GuestCrashed,
    GuestResult,
    GuestTimeout,
    HarnessSetupError,
    ModuleLoadError,
    assert_clean_dmesg,
    dmesg_problems,
    find_kernel,
    run_in_guest,
)
from tools.vm.guest import (
    HOST_ALIAS,
    REPO_ROOT,
    check_host_ports,
    kernel_cmdline,
    network_args,
    render_job_script,
)
from tools.vm.initramfs import INIT_SCRIPT, CpioArchive, ensure_initramfs, read_module
from tools.vm.kernel import (
    KERNEL_ENV_VAR,
    REQUIRED_MODULES,
    guest_unavailable,
    module_name,
    resolve_module_load_order,
)

FIRMWARE_NAME = "mock-accel-harness-test.bin"
FIRMWARE_BYTES = b"mock-accel firmware probe \x00\x01\x02\xff\n"
FACTS_PREFIX = "FACTS "


_REASON = guest_unavailable()
_skip_without_vm = pytest.mark.skipif(_REASON is not None, reason=_REASON or "")


def vm(test):  # type: ignore[no-untyped-def]
    """Mark a test as needing a real guest (``-m "not vm"`` deselects it)."""
    return pytest.mark.vm(_skip_without_vm(test))


def _facts(result: GuestResult) -> dict:
    lines = [line for line in result.output.splitlines() if line.startswith(FACTS_PREFIX)]
    assert lines, f"no facts in guest output:\n{result.output}"
    return json.loads(lines[-1][len(FACTS_PREFIX):])


def _in_tree_module(name: str, destination: Path) -> Path:
    """Copy (decompressing) an in-tree module, standing in for mock_accel.ko."""
    source = resolve_module_load_order(find_kernel(), (name,))[-1]
    target = destination / f"{name}.ko"
    target.write_bytes(read_module(source))
    return target


def _qemu_processes_for(run_dir: Path) -> list[int]:
    pids = []
    for cmdline_file in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            cmdline = cmdline_file.read_bytes()
        except OSError:
            continue
        if b"qemu-system" in cmdline and str(run_dir).encode() in cmdline:
            pids.append(int(cmdline_file.parent.name))
    return pids


# --------------------------------------------------------------------------
# fast tests (no boot)
# --------------------------------------------------------------------------

def test_module_name_strips_suffixes() -> None:
    assert module_name("kernel/net/9p/9pnet_virtio.ko.xz") == "9pnet_virtio"
    assert module_name("kernel/fs/9p/9p.ko") == "9p"
    assert module_name("kernel/x/foo-bar.ko.zst") == "foo_bar"


def _fake_root(root: Path, version: str, modules: dict[str, list[str]]) -> Path:
    """A system tree with one kernel: ``<root>/boot/vmlinuz-V`` and its modules.dep."""
    (root / "boot").mkdir(parents=True)
    image = root / "boot" / f"vmlinuz-{version}"
    image.write_bytes(b"kernel")
    modules_dir = root / "lib" / "modules" / version
    modules_dir.mkdir(parents=True)
    (modules_dir / "modules.dep").write_text("".join(
        f"kernel/{name}.ko.xz: {' '.join(f'kernel/{dep}.ko.xz' for dep in deps)}\n"
        for name, deps in modules.items()))
    return image


def test_kernel_of_another_root_uses_its_modules_and_skips_merged_ones(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chroot's kernel (tools/kmatrix) brings its own modules; fscache, merged into netfs
    on newer kernels, is left out when absent, a missing required module is an error."""
    wanted = [name for name in REQUIRED_MODULES if name != "fscache"]
    chain = {name: ([wanted[index - 1]] if index else []) for index, name in enumerate(wanted)}
    image = _fake_root(tmp_path / "root", "9.9.9-amd64", chain)
    monkeypatch.setenv(KERNEL_ENV_VAR, str(image))
    kernel = find_kernel()
    assert kernel.modules_dir == tmp_path / "root/lib/modules/9.9.9-amd64"
    order = [module_name(str(path)) for path in resolve_module_load_order(kernel)]
    assert order == wanted
    del chain["9pnet_virtio"]
    (kernel.modules_dir / "modules.dep").write_text("".join(
        f"kernel/{name}.ko.xz:\n" for name in chain))
    with pytest.raises(HarnessSetupError, match="9pnet_virtio is neither built into 9.9.9"):
        resolve_module_load_order(kernel)


@vm
def test_module_load_order_puts_dependencies_first() -> None:
    order = [module_name(str(path)) for path in resolve_module_load_order(find_kernel())]
    assert set(REQUIRED_MODULES) <= set(order) | {"virtio_pci_legacy_dev"}
    assert order.index("virtio_ring") < order.index("virtio") < order.index("virtio_pci")
    assert order.index("9pnet") < order.index("9pnet_virtio") < order.index("9p")
    assert order.index("netfs") < order.index("fscache") < order.index("9p")


def test_cpio_archive_is_readable_by_cpio(tmp_path: Path) -> None:
    if not shutil.which("cpio"):
        pytest.skip("cpio not installed")
    archive = CpioArchive()
    archive.add_dir("bin")
    archive.add_file("bin/hello", b"hello\n", perms=0o755)
    archive.add_symlink("bin/sh", "hello")
    archive.add_char_device("console", 5, 1)
    listing = subprocess.run(["cpio", "-it", "--quiet"], input=archive.to_bytes(),
                             capture_output=True, check=True).stdout.decode().split()
    assert listing == ["bin", "bin/hello", "bin/sh", "console"]


def test_job_script_quotes_everything(tmp_path: Path) -> None:
    script = render_job_script(
        ["python3", "-c", "print('a b'); import sys"], ko=Path("/x y/m.ko"),
        modparams="a=1 b='two words'", env={"K": "v w$x"}, cwd=Path("/repo dir"))
    subprocess.run(["sh", "-n"], input=script.encode(), check=True)
    assert "'b=two words'" in script
    assert "'K=v w$x'" in script
    assert "JOB_KO='/x y/m.ko'" in script


def test_network_args_default_to_no_nic() -> None:
    assert network_args(()) == ["-nic", "none"]


def test_network_args_forward_only_listed_loopback_ports() -> None:
    args = network_args([6443, 8080])
    assert args[0] == "-netdev" and args[2:] == ["-device",
                                                "virtio-net-pci,netdev=net0,romfile="]
    options = args[1].split(",")
    assert options[:4] == ["user", "id=net0", "restrict=on", "ipv6=off"]
    forwards = [option for option in options if option.startswith("guestfwd=")]
    assert len(forwards) == 2
    for forward, port in zip(forwards, (6443, 8080), strict=True):
        assert forward.startswith(f"guestfwd=tcp:{HOST_ALIAS}:{port}-cmd:")
        assert forward.endswith(f" nc 127.0.0.1 {port}")
    assert not any(option.startswith("hostfwd") for option in options)


def test_guest_ports_forward_host_loopback_to_the_guest() -> None:
    """guest_ports={10250: 41000}: one hostfwd on the host's 127.0.0.1 only, to the guest's
    address; a NIC even without host_ports; the job script then starts the network."""
    args = network_args((), {10250: 41000})
    options = args[1].split(",")
    assert options[:4] == ["user", "id=net0", "restrict=on", "ipv6=off"]
    assert [o for o in options if o.startswith("hostfwd")] == [
        "hostfwd=tcp:127.0.0.1:41000-10.0.2.15:10250"]
    script = render_job_script(["true"], ko=None, modparams="", env={}, cwd=Path("/"),
                               network=True)
    assert "JOB_NETWORK=1" in script and "JOB_NETWORK=\n" in render_job_script(
        ["true"], ko=None, modparams="", env={}, cwd=Path("/"))
    for bad in ({0: 1}, {1: 70000}, {1: 5, 2: 5}):
        with pytest.raises(HarnessSetupError):
            network_args((), bad)


def test_host_ports_are_checked() -> None:
    assert check_host_ports([1, 65535]) == (1, 65535)
    for bad in ([0], [65536], ["80"], [True], [80, 80]):
        with pytest.raises(HarnessSetupError):
            check_host_ports(bad)


def test_system_uuid_is_checked_before_booting() -> None:
    """A bad SMBIOS UUID is refused in one line, before any kernel or qemu is looked for."""
    with pytest.raises(HarnessSetupError, match="not a UUID"):
        run_in_guest(["true"], system_uuid="not-a-uuid")


def test_job_script_lists_host_ports() -> None:
    script = render_job_script(["true"], ko=None, modparams="", env={}, cwd=Path("/"),
                               host_ports=(6443, 8080))
    subprocess.run(["sh", "-n"], input=script.encode(), check=True)
    assert "JOB_HOST_PORTS='6443 8080'" in script
    assert "JOB_HOST_PORTS=''" in render_job_script(["true"], ko=None, modparams="",
                                                    env={}, cwd=Path("/"))


def test_kernel_cmdline_sets_firmware_path_under_host_mount() -> None:
    assert "firmware_class.path" not in kernel_cmdline(None)
    assert "firmware_class.path=/host/srv/fw" in kernel_cmdline(Path("/srv/fw"))


def test_dmesg_problems_flags_warnings_and_leaks() -> None:
    clean = "[    1.0] 9p: Installing v9fs 9p2000 file system support\n"
    assert dmesg_problems(clean) == []
    dirty = (clean + "[    2.0] WARNING: CPU: 0 PID: 1 at foo.c:1\n"
             "[    3.0] mock: 3 objects leaked\n")
    assert len(dmesg_problems(dirty)) == 2
    innocent = "[    0.1] loops_per_jiffy: 8399292\n[    0.2] Bug fixes: debug on\n"
    assert dmesg_problems(innocent) == []


@vm
def test_initramfs_is_cached_and_rebuilt_on_change(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOCK_ACCEL_VM_CACHE", str(tmp_path))
    kernel = find_kernel()
    first = ensure_initramfs(kernel)
    mtime = first.stat().st_mtime_ns
    assert ensure_initramfs(kernel) == first and first.stat().st_mtime_ns == mtime
    init_copy = tmp_path / "init.sh"
    init_copy.write_text(INIT_SCRIPT.read_text() + "\n# changed\n")
    monkeypatch.setattr("tools.vm.initramfs.INIT_SCRIPT", init_copy)
    two_hours_ago = time.time() - 7200
    os.utime(first, (two_hours_ago, two_hours_ago))
    second = ensure_initramfs(kernel)
    assert second != first and second.is_file()
    assert not first.exists()  # stale build of the same kernel cleaned up


# --------------------------------------------------------------------------
# boot 1: plain command, non-zero exit, facts about the guest
# --------------------------------------------------------------------------

FACTS_SCRIPT = textwrap.dedent(f"""
    import json, os, sys
    node_dir = "/sys/devices/system/node"
    facts = {{
        "nodes": sorted(n for n in os.listdir(node_dir) if n[4:].isdigit()),
        "online_cpus": open("/sys/devices/system/cpu/online").read().strip(),
        "osrelease": open("/proc/sys/kernel/osrelease").read().strip(),
        "executable": sys.executable,
        "cwd": os.getcwd(),
        "env": {{k: os.environ.get(k) for k in (
            "MOCK_ACCEL_IN_GUEST", "MOCK_ACCEL_KO", "MOCK_ACCEL_FIRMWARE_DIR",
            "HOME", "PYTHONDONTWRITEBYTECODE", "EXTRA")}},
        "firmware_path": open("/sys/module/firmware_class/parameters/path").read().strip(),
        "root_writable": os.access("/usr", os.W_OK),
        "tmp_writable": os.access("/tmp", os.W_OK),
        "dev_null": os.path.exists("/dev/null"),
        "net_ifaces": sorted(os.listdir("/sys/class/net")),
    }}
    print("{FACTS_PREFIX}" + json.dumps(facts))
    print("to stderr", file=sys.stderr)
    sys.exit(3)
""")


@pytest.fixture(scope="module")
def plain_boot() -> GuestResult:
    return run_in_guest(["python3", "-c", FACTS_SCRIPT], env={"EXTRA": "two words"},
                        timeout=300)


@vm
def test_nonzero_exit_code_passes_through(plain_boot: GuestResult) -> None:
    assert plain_boot.returncode == 3


@vm
def test_guest_has_two_numa_nodes(plain_boot: GuestResult) -> None:
    facts = _facts(plain_boot)
    assert facts["nodes"] == ["node0", "node1"]
    assert facts["online_cpus"] == "0-1"


@vm
def test_host_python_runs_against_guest_kernel(plain_boot: GuestResult) -> None:
    facts = _facts(plain_boot)
    assert facts["osrelease"] == find_kernel().version
    assert Path(facts["executable"]).name.startswith("python3")
    assert facts["cwd"] == str(REPO_ROOT)
    assert facts["root_writable"] is False
    assert facts["tmp_writable"] is True and facts["dev_null"] is True
    assert facts["firmware_path"] == ""


@vm
def test_no_network_unless_asked(plain_boot: GuestResult) -> None:
    assert _facts(plain_boot)["net_ifaces"] == ["lo"]


@vm
def test_environment_is_passed(plain_boot: GuestResult) -> None:
    env = _facts(plain_boot)["env"]
    assert env == {"MOCK_ACCEL_IN_GUEST": "1", "MOCK_ACCEL_KO": None,
                   "MOCK_ACCEL_FIRMWARE_DIR": None, "HOME": "/tmp",
                   "PYTHONDONTWRITEBYTECODE": "1", "EXTRA": "two words"}


@vm
def test_output_is_free_of_kernel_noise(plain_boot: GuestResult) -> None:
    lines = plain_boot.output.splitlines()
    assert sorted(line.split(" ")[0] for line in lines) == ["FACTS", "to"]
    serial = plain_boot.serial_log_path.read_text(errors="replace")
    assert "@@mock-accel-vm@@ exit 3" in serial


@vm
def test_dmesg_is_captured_and_clean(plain_boot: GuestResult) -> None:
    assert "Linux version" in plain_boot.dmesg
    assert_clean_dmesg(plain_boot.dmesg)
    assert plain_boot.artifacts_dir is not None
    assert (plain_boot.artifacts_dir / "dmesg.txt").is_file()
    assert 0 < plain_boot.boot_seconds < plain_boot.duration


# --------------------------------------------------------------------------
# boot 2: module + modparams + firmware, exit code 0
# --------------------------------------------------------------------------

MODULE_SCRIPT = textwrap.dedent(f"""
    import json, os, subprocess, sys
    facts = {{
        "dummy_ifaces": sorted(n for n in os.listdir("/sys/class/net") if n.startswith("dummy")),
        "firmware_path": open("/sys/module/firmware_class/parameters/path").read().strip(),
        "ko_env": os.environ.get("MOCK_ACCEL_KO"),
        "fw_env": os.environ.get("MOCK_ACCEL_FIRMWARE_DIR"),
        "ko_visible": os.path.isfile(os.environ["MOCK_ACCEL_KO"]),
    }}
    # load an in-tree module from inside the guest, like tests reloading the
    # module under test, and have it request_firmware() from firmware_dir
    test_fw = sys.argv[1]
    if test_fw:
        subprocess.run(["insmod", test_fw], check=True)
        trigger = "/sys/devices/virtual/misc/test_firmware/trigger_request"
        with open(trigger, "w") as handle:
            handle.write("{FIRMWARE_NAME}")
        with open("/dev/test_firmware", "rb") as handle:
            facts["firmware_bytes"] = handle.read().hex()
        subprocess.run(["rmmod", "test_firmware"], check=True)
    print("{FACTS_PREFIX}" + json.dumps(facts))
""")


@pytest.fixture(scope="module")
def module_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # under the host /tmp on purpose: the guest's /tmp overlay must show it
    return tmp_path_factory.mktemp("vm-module")


@pytest.fixture(scope="module")
def module_boot(module_workdir: Path) -> GuestResult:
    ko = _in_tree_module("dummy", module_workdir)
    firmware_dir = module_workdir / "firmware"
    firmware_dir.mkdir()
    (firmware_dir / FIRMWARE_NAME).write_bytes(FIRMWARE_BYTES)
    try:
        test_fw = str(_in_tree_module("test_firmware", module_workdir))
    except HarnessSetupError:
        test_fw = ""
    return run_in_guest(["python3", "-c", MODULE_SCRIPT, test_fw], ko=ko,
                        modparams="numdummies=3", firmware_dir=firmware_dir,
                        timeout=300)


@vm
def test_zero_exit_code_passes_through(module_boot: GuestResult) -> None:
    assert module_boot.returncode == 0, module_boot.output


@vm
def test_ko_is_loaded_with_modparams(module_boot: GuestResult, module_workdir: Path) -> None:
    facts = _facts(module_boot)
    assert facts["dummy_ifaces"] == ["dummy0", "dummy1", "dummy2"]
    assert facts["ko_env"] == str(module_workdir / "dummy.ko")
    assert facts["ko_visible"] is True


@vm
def test_firmware_dir_sets_firmware_class_path(module_boot: GuestResult,
                                               module_workdir: Path) -> None:
    facts = _facts(module_boot)
    firmware_dir = module_workdir / "firmware"
    assert facts["firmware_path"] == f"/host{firmware_dir}"
    assert facts["fw_env"] == str(firmware_dir)


@vm
def test_request_firmware_finds_files_in_firmware_dir(module_boot: GuestResult) -> None:
    facts = _facts(module_boot)
    if "firmware_bytes" not in facts:
        pytest.skip("test_firmware.ko not available for this kernel")
    assert bytes.fromhex(facts["firmware_bytes"]) == FIRMWARE_BYTES
    assert_clean_dmesg(module_boot.dmesg)


# --------------------------------------------------------------------------
# boot 3: host_ports — the host's 127.0.0.1:<port> as the guest's, nothing else
# --------------------------------------------------------------------------

NETWORK_SCRIPT = textwrap.dedent(f"""
    import concurrent.futures, json, socket, sys, urllib.request
    forwarded, other = int(sys.argv[1]), int(sys.argv[2])

    def get(index):
        url = f"http://127.0.0.1:{{forwarded}}/{{index}}"
        return urllib.request.urlopen(url, timeout=60).read().decode()

    def refused(host, port):
        try:
            socket.create_connection((host, port), timeout=20).close()
        except OSError as error:
            return type(error).__name__
        return False

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        bodies = list(pool.map(get, range(8)))
    facts = {{
        "bodies": bodies,
        "refused": {{f"{{host}}:{{port}}": refused(host, port) for host, port in [
            ("127.0.0.1", other), ("{HOST_ALIAS}", other),
            ("10.0.2.2", forwarded), ("10.0.2.2", other), ("10.0.2.3", 53)]}},
    }}
    print("{FACTS_PREFIX}" + json.dumps(facts))
""")


class _EchoPathHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = f"{self.server.server_address[1]}{self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.server.clients.append(self.client_address[0])  # type: ignore[attr-defined]

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def loopback_servers() -> Iterator[list[http.server.ThreadingHTTPServer]]:
    servers = []
    for _ in range(2):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EchoPathHandler)
        server.clients = []  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    yield servers
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def network_boot(loopback_servers: list[http.server.ThreadingHTTPServer]) -> GuestResult:
    forwarded, other = (server.server_address[1] for server in loopback_servers)
    return run_in_guest(["python3", "-c", NETWORK_SCRIPT, str(forwarded), str(other)],
                        host_ports=[forwarded], timeout=300)


@vm
def test_host_port_is_the_guest_loopback_port(
        network_boot: GuestResult,
        loopback_servers: list[http.server.ThreadingHTTPServer]) -> None:
    assert network_boot.returncode == 0, network_boot.output
    forwarded = loopback_servers[0].server_address[1]
    assert _facts(network_boot)["bodies"] == [f"{forwarded}/{index}" for index in range(8)]
    assert loopback_servers[0].clients == ["127.0.0.1"] * 8  # type: ignore[attr-defined]
    assert "network-up iface=eth0" in network_boot.serial_log_path.read_text()


@vm
def test_nothing_but_the_host_ports_is_reachable(
        network_boot: GuestResult,
        loopback_servers: list[http.server.ThreadingHTTPServer]) -> None:
    refused = _facts(network_boot)["refused"]
    assert all(refused.values()), refused
    assert loopback_servers[1].clients == []  # type: ignore[attr-defined]
    assert_clean_dmesg(network_boot.dmesg)


# --------------------------------------------------------------------------
# failure paths: one boot each
# --------------------------------------------------------------------------

@vm
def test_insmod_failure_is_reported(tmp_path: Path) -> None:
    ko = _in_tree_module("dummy", tmp_path)
    with pytest.raises(ModuleLoadError) as caught:
        run_in_guest(["true"], ko=ko, modparams="numdummies=not-a-number", timeout=300)
    message = str(caught.value)
    assert "insmod" in message and "dummy.ko" in message
    assert caught.value.artifacts_dir is not None


@vm
def test_hanging_command_times_out_and_qemu_is_killed(plain_boot: GuestResult) -> None:
    # long enough to boot (as measured by plain_boot), too short for the sleep
    timeout = max(30.0, 2 * plain_boot.boot_seconds + 10)
    started = time.monotonic()
    with pytest.raises(GuestTimeout) as caught:
        run_in_guest(["sh", "-c", "echo about-to-hang; sleep 100000"], timeout=timeout)
    elapsed = time.monotonic() - started
    assert timeout <= elapsed < timeout + 30
    error = caught.value
    assert error.artifacts_dir is not None
    assert _qemu_processes_for(error.artifacts_dir) == []
    assert "command-start" in error.serial_tail
    assert "about-to-hang" in error.output


@vm
def test_kernel_panic_is_reported_as_crash() -> None:
    with pytest.raises(GuestCrashed) as caught:
        run_in_guest(["sh", "-c", "echo c > /proc/sysrq-trigger; sleep 60"], timeout=300)
    assert "panic" in str(caught.value).lower()

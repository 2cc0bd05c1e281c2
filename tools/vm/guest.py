"""Boot a throw-away QEMU guest (TCG) and run one command in it.

The guest sees the host's root file system read-only over virtio-9p and runs
the command chrooted into it, against the guest kernel's own /sys and /dev.
See README.md in this directory for the full picture.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from .. import locate
from .errors import GuestCrashed, GuestError, GuestTimeout, HarnessSetupError, ModuleLoadError
from .initramfs import ensure_initramfs, find_static_busybox
from .kernel import GuestKernel, find_kernel

REPO_ROOT = locate.REPO
QEMU_ENV_VAR = "MOCK_ACCEL_VM_QEMU"
EXTRA_CMDLINE_ENV_VAR = "MOCK_ACCEL_VM_APPEND"  # extra kernel args, e.g. "loglevel=7"
MARKER = "@@mock-accel-vm@@"
KEEP_RUN_DIRS = 30
SERIAL_TAIL_LINES = 60
POLL_SECONDS = 0.05
STANDARD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Networking (only with host_ports): QEMU user-mode networking (slirp) with
# restrict=on, so the guest reaches nothing but the guestfwd address below,
# whose connections QEMU hands to a host process connected to 127.0.0.1.
GUEST_ADDRESS = "10.0.2.15/24"   # slirp's default guest address
HOST_ALIAS = "10.0.2.100"        # guestfwd address standing for host 127.0.0.1
_run_counter = itertools.count()


@dataclass(frozen=True)
class GuestResult:
    """Outcome of one guest run."""

    returncode: int
    output: str                 # the command's stdout+stderr (no kernel noise)
    serial_log_path: Path       # full serial console (kernel + /init markers)
    duration: float             # host wall time, qemu start to exit (s)
    dmesg: str = ""             # guest kernel log captured after the command
    boot_seconds: float = 0.0   # host wall time until the command started (s)
    artifacts_dir: Path | None = None
    command: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return self.returncode == 0


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------

def artifacts_root() -> Path:
    return locate.artifacts() / "vm"


def _new_run_dir() -> Path:
    root = artifacts_root()
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = root / f"{stamp}-{os.getpid()}-{next(_run_counter)}"
    run_dir.mkdir()
    _prune_old_run_dirs(root)
    return run_dir


def _prune_old_run_dirs(root: Path) -> None:
    """Keep the newest KEEP_RUN_DIRS runs, and anything younger than a day
    (a run in progress, or one somebody is still debugging)."""
    run_dirs = sorted((path for path in root.iterdir() if path.is_dir()),
                      key=lambda path: path.stat().st_mtime)
    day_ago = time.time() - 86400
    for old in run_dirs[:-KEEP_RUN_DIRS]:
        if old.stat().st_mtime < day_ago:
            shutil.rmtree(old, ignore_errors=True)


def _find_qemu() -> str:
    qemu = os.environ.get(QEMU_ENV_VAR) or shutil.which("qemu-system-x86_64")
    if not qemu:
        raise HarnessSetupError(
            "qemu-system-x86_64 not found; run `apt-get install qemu-system-x86`")
    return qemu


def _qemu_opt_value(text: str) -> str:
    """Escape a value for a QEMU -opt list (commas are doubled)."""
    return text.replace(",", ",,")


def _host_path(path: str | os.PathLike[str], what: str, *, is_dir: bool) -> Path:
    resolved = Path(path).resolve()
    exists = resolved.is_dir() if is_dir else resolved.is_file()
    if not exists:
        raise HarnessSetupError(f"{what} {resolved} does not exist")
    return resolved


_TERMINAL_ESCAPES = re.compile(r"\x1b(\[[0-9;?]*[A-Za-z]|c)")


def _console_text(path: Path) -> str:
    """Serial log without carriage returns and the BIOS's terminal escapes."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return _TERMINAL_ESCAPES.sub("", text.replace("\r", ""))


def _tail(path: Path, lines: int = SERIAL_TAIL_LINES) -> str:
    return "\n".join(_console_text(path).splitlines()[-lines:])


def _panic_line(path: Path) -> str | None:
    return next((line.strip() for line in _console_text(path).splitlines()
                 if "Kernel panic" in line), None)


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode(errors="replace")
    except FileNotFoundError:
        return ""


def _die_with_parent() -> None:
    """preexec_fn: have the kernel SIGKILL qemu if the harness process dies."""
    pr_set_pdeathsig = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


# --------------------------------------------------------------------------
# job description handed to the guest's /init
# --------------------------------------------------------------------------

def default_guest_env(ko: Path | None, firmware_dir: Path | None) -> dict[str, str]:
    python_bin = str(Path(sys.executable).parent)
    env = {
        "PATH": f"{python_bin}:{STANDARD_PATH}",
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        # the repo is read-only in the guest: keep pytest from writing its cache
        "PYTEST_ADDOPTS": "-p no:cacheprovider",
        "MOCK_ACCEL_IN_GUEST": "1",
    }
    if os.environ.get("VIRTUAL_ENV"):
        env["VIRTUAL_ENV"] = os.environ["VIRTUAL_ENV"]
    if ko is not None:
        env["MOCK_ACCEL_KO"] = str(ko)
    if firmware_dir is not None:
        env["MOCK_ACCEL_FIRMWARE_DIR"] = str(firmware_dir)
    return env


def render_job_script(command: Sequence[str], *, ko: Path | None, modparams: str,
                      env: Mapping[str, str], cwd: Path,
                      interactive: bool = False, host_ports: Sequence[int] = (),
                      network: bool = False) -> str:
    """Shell fragment sourced by /init: JOB_KO, JOB_INTERACTIVE, JOB_NETWORK, JOB_HOST_PORTS,
    JOB_GUEST_ADDRESS, JOB_HOST_ALIAS, job_insmod, job_run."""
    quote = shlex.quote
    insmod_args = " ".join(quote(arg) for arg in shlex.split(modparams))
    env_args = " ".join(quote(f"{key}={value}") for key, value in env.items())
    command_args = " ".join(quote(arg) for arg in command)
    run_in_cwd = 'cd "$1" || exit 125; shift; exec "$@"'
    # interactive: own session with ttyS0 as controlling tty, so ^C works
    launcher = "setsid cttyhack " if interactive else ""
    return "\n".join([
        "# generated by tools/vm/guest.py for one guest run",
        f"JOB_KO={quote(str(ko)) if ko else ''}",
        f"JOB_INTERACTIVE={'1' if interactive else ''}",
        f"JOB_NETWORK={'1' if network or host_ports else ''}",
        f"JOB_HOST_PORTS={quote(' '.join(str(port) for port in host_ports))}",
        f"JOB_GUEST_ADDRESS={GUEST_ADDRESS}",
        f"JOB_HOST_ALIAS={HOST_ALIAS}",
        "job_insmod() {",
        f"    insmod /host{quote(str(ko)) if ko else ''} {insmod_args}",
        "}",
        "job_run() {",
        f"    {launcher}env -i {env_args} /bin/chroot /host /bin/sh -c {quote(run_in_cwd)} "
        f"sh {quote(str(cwd))} {command_args}",
        "}",
        "",
    ])


def kernel_cmdline(firmware_dir: Path | None) -> str:
    args = ["console=ttyS0", "quiet", "loglevel=3", "panic=-1", "rdinit=/init",
            "mitigations=off"]
    if firmware_dir is not None:
        if any(char.isspace() for char in str(firmware_dir)):
            raise HarnessSetupError(f"firmware dir {firmware_dir} contains whitespace")
        # request_firmware() resolves paths in init's mount namespace and root,
        # i.e. the initramfs, where the host root is mounted at /host.
        args.append(f"firmware_class.path=/host{firmware_dir}")
    args += os.environ.get(EXTRA_CMDLINE_ENV_VAR, "").split()
    return " ".join(args)


def serial_to_file(serial_log: Path) -> list[str]:
    return ["-serial", f"file:{serial_log}", "-monitor", "none"]


def serial_to_terminal(serial_log: Path) -> list[str]:
    """ttyS0 + QEMU monitor multiplexed on the terminal (Ctrl-A x quits), logged."""
    return ["-chardev", f"stdio,id=console0,mux=on,signal=off,"
                        f"logfile={_qemu_opt_value(str(serial_log))}",
            "-serial", "chardev:console0", "-mon", "chardev=console0"]


def check_host_ports(host_ports: Sequence[int]) -> tuple[int, ...]:
    ports = tuple(host_ports)
    for port in ports:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise HarnessSetupError(f"host port {port!r} is not a TCP port number")
    if len(set(ports)) != len(ports):
        raise HarnessSetupError(f"host ports repeat: {ports}")
    return ports


def check_guest_ports(guest_ports: Mapping[int, int]) -> dict[int, int]:
    """``{guest port: host port}`` of ``guest_ports``, checked."""
    for guest, host in guest_ports.items():
        check_host_ports([guest, host])
    check_host_ports(list(guest_ports.values()))
    return dict(guest_ports)


def network_args(host_ports: Sequence[int],
                 guest_ports: Mapping[int, int] | None = None) -> list[str]:
    """QEMU options for the guest's NIC: none without ``host_ports``; else a
    virtio NIC on a restricted slirp network whose only way out is one
    guestfwd per port: guest connections to HOST_ALIAS:<port> are handed to a
    ``busybox nc 127.0.0.1 <port>`` that slirp spawns on the host for each
    connection. (A chardev target, ``-tcp:127.0.0.1:<port>``, would connect
    once at QEMU start and carry a single connection; ``cmd:`` carries any
    number.) restrict=on drops every other guest packet, so the guest can reach
    host loopback ports listed here and nothing else.

    ``guest_ports`` ({guest port: host port}) is the other direction: one
    ``hostfwd`` each, so a connection to the host's 127.0.0.1:<host port> reaches
    the guest's GUEST_ADDRESS:<guest port> (slirp listens on loopback only;
    restrict=on leaves explicit forwards alone)."""
    guest_ports = check_guest_ports(guest_ports or {})
    if not host_ports and not guest_ports:
        return ["-nic", "none"]  # no NIC: saves the iPXE option ROM and a driver probe
    nc = f"{shlex.quote(str(find_static_busybox()))} nc 127.0.0.1"  # slirp shell-splits it
    netdev = "user,id=net0,restrict=on,ipv6=off" + "".join(
        f",guestfwd=tcp:{HOST_ALIAS}:{port}-cmd:{_qemu_opt_value(f'{nc} {port}')}"
        for port in check_host_ports(host_ports)) + "".join(
        f",hostfwd=tcp:127.0.0.1:{host}-{GUEST_ADDRESS.split('/')[0]}:{guest}"
        for guest, host in guest_ports.items())
    return ["-netdev", netdev, "-device", "virtio-net-pci,netdev=net0,romfile="]


def qemu_command(kernel: GuestKernel, initramfs: Path, *, run_dir: Path,
                 console: list[str], cmdline: str, numa_nodes: int,
                 memory_mb: int, cpus: int, host_ports: Sequence[int] = (),
                 system_uuid: str | None = None,
                 guest_ports: Mapping[int, int] | None = None) -> list[str]:
    command = [
        _find_qemu(), "-accel", "tcg", "-cpu", "max",
        # one socket per CPU: with NUMA, CPUs of one socket on different nodes
        # make the guest WARN in topology_sane() ("llc-sibling ... not on the
        # same node"), which would pollute every dmesg check.
        "-smp", f"{cpus},sockets={cpus},cores=1,threads=1",
        "-nographic", "-no-reboot", "-vga", "none",
        *network_args(host_ports, guest_ports),
        # the SMBIOS system UUID: the guest's DMI product UUID (none by default)
        *(["-uuid", str(uuid.UUID(system_uuid))] if system_uuid else []),
        "-kernel", str(kernel.image), "-initrd", str(initramfs),
        "-append", cmdline, *console,
        "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,"
                   "multidevs=remap",
        "-virtfs", f"local,path={_qemu_opt_value(str(run_dir))},mount_tag=outbox,"
                   "security_model=none",
    ]
    if numa_nodes <= 1:
        return command + ["-m", str(memory_mb)]
    per_node_mb = memory_mb // numa_nodes
    command += ["-m", str(per_node_mb * numa_nodes)]
    for node in range(numa_nodes):
        node_cpus = [str(cpu) for cpu in range(cpus) if cpu % numa_nodes == node]
        numa = f"node,nodeid={node},memdev=m{node}"
        if node_cpus:
            numa += f",cpus={node_cpus[0]}" if len(node_cpus) == 1 else \
                "".join(f",cpus={cpu}" for cpu in node_cpus)
        command += ["-object", f"memory-backend-ram,id=m{node},size={per_node_mb}M",
                    "-numa", numa]
    return command


# --------------------------------------------------------------------------
# watching the guest
# --------------------------------------------------------------------------

@dataclass
class _SerialWatcher:
    """Follows the serial log, reporting /init's progress markers."""

    path: Path
    started: float
    report: Callable[[str], None]
    offset: int = 0
    pending: str = ""
    markers: list[str] = field(default_factory=list)
    command_started_at: float | None = None

    def poll(self) -> None:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except FileNotFoundError:
            return
        self.offset += len(chunk)
        lines = (self.pending + chunk.decode(errors="replace")).split("\n")
        self.pending = lines.pop()
        for line in lines:
            self._handle_line(line.strip("\r"))

    def _handle_line(self, line: str) -> None:
        if MARKER not in line:
            return
        marker = line.split(MARKER, 1)[1].strip()
        self.markers.append(marker)
        elapsed = time.monotonic() - self.started
        if marker.startswith("stage command-start"):
            self.command_started_at = elapsed
        self.report(f"{marker} (+{elapsed:.1f}s)")

    def has(self, prefix: str) -> str | None:
        return next((m for m in self.markers if m.startswith(prefix)), None)


@dataclass
class _OutputStreamer:
    """Copies the command's output file to a stream while the guest runs."""

    path: Path
    stream: TextIO | None
    offset: int = 0

    def poll(self) -> None:
        if self.stream is None:
            return
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except FileNotFoundError:
            return
        if chunk:
            self.offset += len(chunk)
            self.stream.write(chunk.decode(errors="replace"))
            self.stream.flush()


def _stderr_reporter(enabled: bool) -> Callable[[str], None]:
    def report(message: str) -> None:
        if enabled:
            print(f"[vm] {message}", file=sys.stderr, flush=True)
    return report


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


# --------------------------------------------------------------------------
# public entry points
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class _GuestPlan:
    kernel: GuestKernel
    run_dir: Path
    serial_log: Path
    qemu: list[str]


def _plan_guest(command: Sequence[str], *, ko: str | os.PathLike[str] | None,
                modparams: str, firmware_dir: str | os.PathLike[str] | None,
                env: Mapping[str, str] | None, numa_nodes: int, memory_mb: int,
                cpus: int, cwd: str | os.PathLike[str],
                log_path: str | os.PathLike[str] | None,
                interactive: bool, host_ports: Sequence[int] = (),
                system_uuid: str | None = None,
                guest_ports: Mapping[int, int] | None = None) -> _GuestPlan:
    """Validate inputs, build the initramfs and write the job for one run."""
    if not command:
        raise ValueError("command must not be empty")
    if system_uuid is not None:
        try:
            uuid.UUID(system_uuid)
        except ValueError:
            raise HarnessSetupError(f"system_uuid {system_uuid!r} is not a UUID") from None
    ko_path = _host_path(ko, "module", is_dir=False) if ko is not None else None
    fw_path = (_host_path(firmware_dir, "firmware dir", is_dir=True)
               if firmware_dir is not None else None)
    cwd_path = _host_path(cwd, "working directory", is_dir=True)
    host_ports = check_host_ports(host_ports)
    guest_ports = check_guest_ports(guest_ports or {})
    guest_env = default_guest_env(ko_path, fw_path) | dict(env or {})

    kernel = find_kernel()
    initramfs = ensure_initramfs(kernel)
    run_dir = _new_run_dir()
    serial_log = Path(log_path).resolve() if log_path else run_dir / "serial.log"
    serial_log.parent.mkdir(parents=True, exist_ok=True)
    serial_log.unlink(missing_ok=True)
    (run_dir / "job.sh").write_text(render_job_script(
        command, ko=ko_path, modparams=modparams, env=guest_env, cwd=cwd_path,
        interactive=interactive, host_ports=host_ports, network=bool(guest_ports)))
    console = serial_to_terminal(serial_log) if interactive else serial_to_file(serial_log)
    qemu = qemu_command(kernel, initramfs, run_dir=run_dir, console=console,
                        cmdline=kernel_cmdline(fw_path), numa_nodes=numa_nodes,
                        memory_mb=memory_mb, cpus=cpus, host_ports=host_ports,
                        system_uuid=system_uuid, guest_ports=guest_ports)
    (run_dir / "qemu-command.txt").write_text(shlex.join(qemu) + "\n")
    return _GuestPlan(kernel=kernel, run_dir=run_dir, serial_log=serial_log, qemu=qemu)


def run_in_guest(command: Sequence[str], *,
                 ko: str | os.PathLike[str] | None = None,
                 modparams: str = "",
                 firmware_dir: str | os.PathLike[str] | None = None,
                 env: Mapping[str, str] | None = None,
                 timeout: float = 600,
                 numa_nodes: int = 2,
                 memory_mb: int = 2048,
                 cpus: int = 2,
                 cwd: str | os.PathLike[str] = REPO_ROOT,
                 log_path: str | os.PathLike[str] | None = None,
                 progress: bool = True,
                 output_stream: TextIO | None = None,
                 host_ports: Sequence[int] = (),
                 system_uuid: str | None = None,
                 guest_ports: Mapping[int, int] | None = None,
                 on_start: Callable[[Path], None] | None = None) -> GuestResult:
    """Boot a TCG guest, optionally insmod ``ko``, run ``command`` chrooted
    into the host root, and return its exit code, output and the guest dmesg.

    ``timeout`` covers boot + command. ``output_stream`` (e.g. sys.stdout)
    receives the command's output live. ``host_ports``: TCP ports of services
    on the host's 127.0.0.1 that the command may reach as 127.0.0.1:<port>
    inside the guest (restricted user networking + a forwarder in the guest;
    nothing else is reachable). ``system_uuid``: the machine's SMBIOS UUID
    (QEMU ``-uuid``), which the guest sees as its DMI product UUID; none by
    default. ``guest_ports`` ({guest port: host port}): the host's
    127.0.0.1:<host port> reaches the guest's port (slirp ``hostfwd``).
    ``on_start(artifacts_dir)`` is called once qemu runs (the guest sees that
    directory as /outbox, and the command as /run/outbox). Raises GuestTimeout (qemu killed),
    GuestCrashed (qemu exited without an exit code, e.g. kernel panic),
    ModuleLoadError (insmod failed) or HarnessSetupError (missing
    kernel/qemu/busybox/paths).
    """
    report = _stderr_reporter(progress)
    plan = _plan_guest(command, ko=ko, modparams=modparams, firmware_dir=firmware_dir,
                       env=env, numa_nodes=numa_nodes, memory_mb=memory_mb,
                       cpus=cpus, cwd=cwd, log_path=log_path, interactive=False,
                       host_ports=host_ports, system_uuid=system_uuid,
                       guest_ports=guest_ports)
    run_dir, serial_log = plan.run_dir, plan.serial_log
    report(f"booting {plan.kernel.version} under TCG (artefacts: {run_dir})")
    started = time.monotonic()
    watcher = _SerialWatcher(serial_log, started, report)
    streamer = _OutputStreamer(run_dir / "output.log", output_stream)
    with (run_dir / "qemu-stdout.log").open("wb") as qemu_stdout:
        process = subprocess.Popen(plan.qemu, stdin=subprocess.DEVNULL,
                                   stdout=qemu_stdout, stderr=subprocess.STDOUT,
                                   preexec_fn=_die_with_parent)
    try:
        if on_start is not None:
            on_start(run_dir)
        _wait_for_qemu(process, started + timeout, watcher, streamer)
    except GuestTimeout as error:
        raise GuestTimeout(
            f"guest did not finish within {timeout:.0f}s; qemu killed",
            artifacts_dir=run_dir, serial_tail=_tail(serial_log),
            output=_read_text(run_dir / "output.log")) from error
    finally:
        _stop(process)
    duration = time.monotonic() - started
    watcher.poll()
    streamer.poll()
    return _collect_result(command, run_dir, serial_log, watcher, process,
                           duration, report)


def run_interactive(command: Sequence[str] = ("/bin/bash", "-i"), *,
                    ko: str | os.PathLike[str] | None = None,
                    modparams: str = "",
                    firmware_dir: str | os.PathLike[str] | None = None,
                    env: Mapping[str, str] | None = None,
                    numa_nodes: int = 2,
                    memory_mb: int = 2048,
                    cpus: int = 2,
                    cwd: str | os.PathLike[str] = REPO_ROOT,
                    host_ports: Sequence[int] = (),
                    system_uuid: str | None = None) -> int:
    """Boot the guest with its console on this terminal and run ``command``
    (a shell by default). Ctrl-A x kills the VM. Returns the command's exit
    code, or 125 if the guest never reported one."""
    plan = _plan_guest(command, ko=ko, modparams=modparams, firmware_dir=firmware_dir,
                       env=env, numa_nodes=numa_nodes, memory_mb=memory_mb,
                       cpus=cpus, cwd=cwd, log_path=None, interactive=True,
                       host_ports=host_ports, system_uuid=system_uuid)
    print(f"[vm] booting {plan.kernel.version}; Ctrl-A x quits, Ctrl-A h for help; "
          f"artefacts in {plan.run_dir}", file=sys.stderr, flush=True)
    process = subprocess.Popen(plan.qemu, preexec_fn=_die_with_parent)
    try:
        process.wait()
    finally:
        _stop(process)
    exit_code = _read_text(plan.run_dir / "exit-code").strip()
    return int(exit_code) if exit_code.isdigit() else 125


def _wait_for_qemu(process: subprocess.Popen[bytes], deadline: float,
                   watcher: _SerialWatcher, streamer: _OutputStreamer) -> None:
    while process.poll() is None:
        watcher.poll()
        streamer.poll()
        if time.monotonic() > deadline:
            raise GuestTimeout("timeout")
        time.sleep(POLL_SECONDS)


def _collect_result(command: Sequence[str], run_dir: Path, serial_log: Path,
                    watcher: _SerialWatcher, process: subprocess.Popen[bytes],
                    duration: float, report: Callable[[str], None]) -> GuestResult:
    exit_code_text = _read_text(run_dir / "exit-code").strip()
    dmesg = _read_text(run_dir / "dmesg.txt")
    output = _read_text(run_dir / "output.log")
    if watcher.has("insmod-failed"):
        raise ModuleLoadError(
            "insmod of the module under test failed:\n"
            + _read_text(run_dir / "insmod.log").strip()
            + "\n--- guest dmesg (tail) ---\n" + "\n".join(dmesg.splitlines()[-10:]),
            artifacts_dir=run_dir)
    if not exit_code_text.isdigit():
        fatal = watcher.has("fatal")
        panic = _panic_line(serial_log)
        reason = (f"guest /init failed: {fatal[len('fatal '):]}" if fatal else
                  f"guest kernel panic: {panic}" if panic else
                  f"qemu exited (status {process.returncode}) before the command finished")
        raise GuestCrashed(reason, artifacts_dir=run_dir,
                           serial_tail=_tail(serial_log), output=output)
    returncode = int(exit_code_text)
    report(f"command exited with {returncode} after {duration:.1f}s")
    return GuestResult(
        returncode=returncode, output=output, serial_log_path=serial_log,
        duration=duration, dmesg=dmesg,
        boot_seconds=watcher.command_started_at or 0.0,
        artifacts_dir=run_dir, command=tuple(command))


__all__ = ["GuestResult", "GuestError", "run_in_guest", "run_interactive",
           "artifacts_root"]

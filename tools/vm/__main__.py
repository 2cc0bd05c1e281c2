"""Command line: ``python -m tools.vm run [options] -- COMMAND...`` / ``shell``.

Exit status is the guest command's; 124 if the guest timed out, 125 for any
other harness/guest failure (crash, insmod failure, missing kernel...).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import locate
from .errors import GuestError, GuestTimeout
from .guest import REPO_ROOT, run_in_guest, run_interactive

EXIT_TIMEOUT = 124
EXIT_HARNESS_ERROR = 125
DEFAULT_FIRMWARE_DIR = locate.firmware_dir()


def _parse_env(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--env expects KEY=VALUE, got {pair!r}")
        env[key] = value
    return env


def _add_guest_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ko", type=Path, help="module to insmod before the command")
    parser.add_argument("--modparams", default="",
                        help='module parameters, e.g. "k=v k2=v2"')
    firmware = parser.add_mutually_exclusive_group()
    firmware.add_argument("--firmware-dir", type=Path,
                          help="host directory for request_firmware() "
                               f"(default: {DEFAULT_FIRMWARE_DIR} if it exists)")
    firmware.add_argument("--no-firmware", action="store_true",
                          help="do not set firmware_class.path")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment for the command (repeatable)")
    parser.add_argument("--cwd", type=Path, default=REPO_ROOT,
                        help="working directory in the guest (default: repo root)")
    parser.add_argument("--numa-nodes", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--memory-mb", type=int, default=2048)
    parser.add_argument("--host-port", type=int, action="append", default=[],
                        metavar="PORT", dest="host_ports",
                        help="make the host's 127.0.0.1:PORT reachable as 127.0.0.1:PORT "
                             "in the guest (repeatable; nothing else is reachable)")
    parser.add_argument("--system-uuid", metavar="UUID",
                        help="the machine's SMBIOS UUID (QEMU -uuid): the guest's DMI "
                             "product UUID, from which the module derives uuid_seed")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.vm",
        description="Run commands in a throw-away QEMU (TCG) guest that sees "
                    "the host root read-only.")
    commands = parser.add_subparsers(dest="action", required=True)
    run = commands.add_parser("run", help="run COMMAND in the guest, non-interactively")
    _add_guest_options(run)
    run.add_argument("--timeout", type=float, default=600,
                     help="seconds for boot + command (default 600)")
    run.add_argument("--log", type=Path, help="where to write the serial console log")
    run.add_argument("--quiet", action="store_true", help="no progress on stderr")
    run.add_argument("command", nargs=argparse.REMAINDER,
                     help="command and arguments, after --")
    shell = commands.add_parser("shell", help="interactive shell in the guest "
                                              "(Ctrl-A x quits)")
    _add_guest_options(shell)
    shell.add_argument("command", nargs=argparse.REMAINDER,
                       help="command to run instead of bash -i")
    return parser


def _firmware_dir(args: argparse.Namespace) -> Path | None:
    if args.no_firmware:
        return None
    if args.firmware_dir is not None:
        return args.firmware_dir
    return DEFAULT_FIRMWARE_DIR if DEFAULT_FIRMWARE_DIR.is_dir() else None


def _command(args: argparse.Namespace) -> list[str]:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    return command


def _run(args: argparse.Namespace) -> int:
    command = _command(args)
    if not command:
        raise SystemExit("run: missing COMMAND (put it after --)")
    result = run_in_guest(
        command, ko=args.ko, modparams=args.modparams,
        firmware_dir=_firmware_dir(args), env=_parse_env(args.env),
        timeout=args.timeout, numa_nodes=args.numa_nodes, memory_mb=args.memory_mb,
        cpus=args.cpus, cwd=args.cwd, log_path=args.log, progress=not args.quiet,
        output_stream=sys.stdout, host_ports=args.host_ports, system_uuid=args.system_uuid)
    return result.returncode


def _shell(args: argparse.Namespace) -> int:
    command = _command(args) or ["/bin/bash", "-i"]
    return run_interactive(
        command, ko=args.ko, modparams=args.modparams,
        firmware_dir=_firmware_dir(args), env=_parse_env(args.env),
        numa_nodes=args.numa_nodes, memory_mb=args.memory_mb, cpus=args.cpus,
        cwd=args.cwd, host_ports=args.host_ports, system_uuid=args.system_uuid)


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        return _run(args) if args.action == "run" else _shell(args)
    except GuestTimeout as error:
        print(f"[vm] {error}", file=sys.stderr)
        return EXIT_TIMEOUT
    except GuestError as error:
        print(f"[vm] {error}", file=sys.stderr)
        return EXIT_HARNESS_ERROR


if __name__ == "__main__":
    sys.exit(main())

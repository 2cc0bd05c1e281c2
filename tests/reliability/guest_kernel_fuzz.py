"""Fuzzes the real mock-accel module from inside the QEMU guest (started by
test_kernel_fuzz_vm.py; plain Python, no pytest, so it starts fast under TCG):

1. random operations across all devices (≥ 10k by default): writes of random and near-valid
   values to every attribute and to new_device/del_device, reads of every attribute, ioctls with
   random command numbers, argument sizes and bad (kernel and unmapped) pointers, reads of the
   /dev nodes — while two reader processes read every attribute, /dev node and INFO ioctl
   (every value read must parse as discovery parses it);
2. add/remove and VF toggling under that load: PFs created and removed, VFs enabled and
   disabled, a VF held open while its PF toggles (EBUSY), a PF removed while its /dev node is
   open (then ENODEV, and freed on close);
3. unload/reload cycles: rmmod refused while a /dev node is open, then rmmod + insmod with
   other parameters, a short burst of operations after each load.

Every failed call must fail with an errno the ABI (kmod/ABI.md) allows; anything else is
reported. The last line is `@@fuzz-summary <json>`; the host checks it and the guest's dmesg.
Usage: python3 -m tests.reliability.guest_kernel_fuzz --seed N [--ops N] [--cycles N]"""
from __future__ import annotations

import argparse
import ctypes
import errno
import fcntl
import json
import os
import random
import select
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from mock_accel.abi import IOC_INFO, IOC_PASSPHRASE, IOC_STATUS
from mock_accel.sysfs import ATTRIBUTES as PARSERS
from mock_accel.uapi import InfoArg, PassphraseArg
from tools import locate

CLASS = Path("/sys/class/mock-accel")
BUS = Path("/sys/bus/mock-accel")
MODULE = "mock_accel"
ATTRIBUTES = ["uuid", "memory_size", "numa_node", "capabilities", "status", "fw_version",
              "revision", "device_type", "physfn", "pci_address", "pcie_root", "sriov_totalvfs",
              "sriov_numvfs", "wordlist_loaded", "wordlist_size", "load_wordlist",
              "passphrase_count", "passphrase", "health", "inject_fault", "uevent", "dev"]
WRITABLE = ["status", "sriov_numvfs", "passphrase_count", "inject_fault", "load_wordlist"]
# errnos the ABI allows a failed call to return
ALLOWED = {errno.EINVAL, errno.EBUSY, errno.ENOENT, errno.ENODEV, errno.EIO, errno.EEXIST,
           errno.ERANGE, errno.EACCES, errno.EPERM, errno.ENOTTY, errno.EFAULT, errno.ENXIO}
BAD_POINTERS = [0, 1, 4095, 0xFFFF888000000000, 0xFFFFFFFFFF600000, 2**64 - 1,
                0x0000_7FFF_FFFF_F000]


def malformed(attribute: str, value: bytes) -> str | None:
    """Why a value read from sysfs breaks the ABI's format (what discovery parses), or None."""
    if attribute not in PARSERS:
        return None
    if not value.endswith(b"\n"):
        return f"{value!r} does not end in a newline"
    try:
        PARSERS[attribute][0](value[:-1].decode())
    except (ValueError, UnicodeDecodeError) as err:
        return f"{value!r}: {err}"
    return None


class Fuzz:
    def __init__(self, seed: int, ko: str, firmware_ok: bool):
        self.rng = random.Random(seed)
        self.ko, self.firmware_ok = ko, firmware_ok
        self.backend: list[str] = []  # ["backend=pci"]: every reload keeps the backend
        self.ops = Counter()          # kind -> count
        self.errors = Counter()       # errno name -> count
        self.unexpected: list[str] = []
        self.reads = Counter()        # by the reader processes
        self.steps, self.known = 0, []

    # -- helpers ---------------------------------------------------------------------------------
    def names(self) -> list[str]:
        try:
            return sorted(os.listdir(CLASS))
        except FileNotFoundError:
            return []

    def failed(self, what: str, err: OSError) -> None:
        name = errno.errorcode.get(err.errno or 0, str(err.errno))
        self.errors[name] += 1
        if err.errno not in ALLOWED:
            self.unexpected.append(f"{what}: {name} {err.strerror}")

    def value(self) -> bytes:
        """A value to write: near-valid most of the time, random bytes otherwise."""
        rng = self.rng
        pick = rng.random()
        if pick < 0.55:
            number = rng.choice([0, 1, 2, 3, 4, 6, 7, 12, 13, 64, 65, 255, 256, 2**32 - 1, 2**32,
                                 2**63, 2**64 - 1, 2**64, -1, rng.randrange(-2**70, 2**70)])
            text = rng.choice([str(number), hex(number), f"0x{abs(number):08x}", oct(number),
                               f"+{number}", f" {number}", f"{number} "])
            return (text + rng.choice(["", "\n", "\n\n", "\x00", " "])).encode()
        if pick < 0.75:
            return rng.choice([b"", b"\n", b"0x", b"-", b"1 2", b"0 0 1 1", b"1\x001",
                               b"ok", b"pf", b"a" * 4096, b"9" * 40, b"0x" + b"f" * 20])
        return rng.randbytes(rng.randrange(0, 300))

    def write(self, path: Path, data: bytes, what: str) -> bool:
        self.ops["write"] += 1
        try:
            fd = os.open(path, os.O_WRONLY)
        except OSError as err:
            self.failed(f"open {what}", err)
            return False
        try:
            os.write(fd, data)
            return True
        except OSError as err:
            self.failed(f"write {data[:40]!r} to {what}", err)
            return False
        finally:
            os.close(fd)

    def read(self, path: Path, what: str) -> bytes | None:
        self.ops["read"] += 1
        try:
            return path.read_bytes()
        except OSError as err:
            self.failed(f"read {what}", err)
            return None

    # -- one random operation --------------------------------------------------------------------
    def step(self) -> None:
        rng = self.rng
        if self.steps % 20 == 0:   # devices come and go by our own writes; 20 is often enough
            self.known = self.names()
        self.steps += 1
        names = self.known
        kind = rng.choices(["write", "read", "ioctl", "dev", "bus"], [40, 20, 25, 10, 5])[0]
        if kind == "bus" or not names:
            self.bus_op()
            return
        name = rng.choice(names)
        if kind == "write":
            attribute = rng.choice(WRITABLE * 4 + ATTRIBUTES)
            if attribute == "load_wordlist" and rng.random() < 0.8:
                attribute = "status"    # a reload reads the firmware: keep it rarer
            path = CLASS / name / attribute
            data = self.value()
            if self.write(path, data, f"{name}/{attribute}") and attribute == "status":
                self.check_status(name, data)
        elif kind == "read":
            attribute = rng.choice(ATTRIBUTES)
            value = self.read(CLASS / name / attribute, f"{name}/{attribute}")
            problem = None if value is None else malformed(attribute, value)
            if problem:
                self.unexpected.append(f"{name}/{attribute}: {problem}")
        elif kind == "ioctl":
            self.ioctl(name)
        else:
            self.dev_read(name)

    def check_status(self, name: str, written: bytes) -> None:
        """A successful status write sets ALLOCATED as written and nothing else of ours."""
        raw = self.read(CLASS / name / "status", f"{name}/status")
        if raw is None:
            return
        text = written.decode(errors="replace").strip("\n")
        try:
            value = int(text, 0)
        except ValueError:
            return
        status = int(raw, 16)
        if bool(status & 0x2) != bool(value & 0x2) or status & ~0x7:
            self.unexpected.append(f"{name}: wrote {written!r}, status reads {raw!r}")

    def bus_op(self) -> None:
        rng = self.rng
        if rng.random() < 0.5:
            pf = rng.randrange(0, 12)
            fields = [str(pf)]
            for limit in (63, 2**34, 64):
                if rng.random() < 0.6:
                    fields.append(str(rng.choice([rng.randrange(-1, limit + 2), 0, -1])))
            data = " ".join(fields).encode() if rng.random() < 0.8 else self.value()
            self.write(BUS / "new_device", data, "new_device")
        else:
            data = str(rng.randrange(0, 14)).encode() if rng.random() < 0.8 else self.value()
            self.write(BUS / "del_device", data, "del_device")

    def ioctl(self, name: str) -> None:
        rng = self.rng
        self.ops["ioctl"] += 1
        try:
            fd = os.open(f"/dev/{name}", os.O_RDWR)
        except OSError as err:
            self.failed(f"open /dev/{name}", err)
            return
        try:
            pick = rng.random()
            if pick < 0.25:
                request = rng.choice([IOC_STATUS, IOC_INFO, IOC_PASSPHRASE])
                arg = rng.choice(BAD_POINTERS)          # the kernel must not trust pointers
            elif pick < 0.6:
                request = IOC_PASSPHRASE
                arg = bytearray(ctypes.sizeof(PassphraseArg))
                arg[0] = rng.randrange(256)
            elif pick < 0.8:
                request = rng.choice([IOC_STATUS, IOC_INFO])
                arg = bytearray(ctypes.sizeof(InfoArg))
            else:   # another command: other number, size or direction bits, or anything
                request = rng.choice([rng.randrange(2**32), IOC_INFO ^ (1 << rng.randrange(32)),
                                      (IOC_STATUS & ~0xFF) | rng.randrange(256)])
                arg = bytearray(1024)
            fcntl.ioctl(fd, request, arg)
        except OSError as err:
            self.failed(f"ioctl {request:#x} on {name}", err)
        except OverflowError:
            pass
        finally:
            os.close(fd)

    def dev_read(self, name: str) -> None:
        self.ops["dev"] += 1
        try:
            fd = os.open(f"/dev/{name}", os.O_RDONLY)
        except OSError as err:
            self.failed(f"open /dev/{name}", err)
            return
        try:
            os.read(fd, self.rng.choice([0, 1, 7, 4096, 65536]))
            try:
                os.lseek(fd, self.rng.randrange(0, 600), os.SEEK_SET)
            except OSError as err:   # a character device without seek: ESPIPE
                if err.errno != errno.ESPIPE:
                    self.failed(f"lseek /dev/{name}", err)
            os.read(fd, 4096)
        except OSError as err:
            self.failed(f"read /dev/{name}", err)
        finally:
            os.close(fd)

    # -- concurrent readers (processes: they run on the other vCPU, not under our GIL) -----------
    def reader_loop(self, index: int, stop: int) -> dict:
        info = bytearray(ctypes.sizeof(InfoArg))
        reads, unexpected, rounds = Counter(), [], 0
        while not select.select([stop], [], [], 0)[0]:
            rounds += 1
            for name in self.names():
                for attribute in ATTRIBUTES:
                    if attribute in ("inject_fault", "load_wordlist") or (
                            attribute == "passphrase" and rounds % 8):
                        continue
                    try:
                        with open(CLASS / name / attribute, "rb", buffering=0) as handle:
                            value = handle.read()
                        reads["attribute"] += 1
                        problem = malformed(attribute, value)
                        if problem:
                            unexpected.append(f"reader {index}: {name}/{attribute}: {problem}")
                    except OSError as err:
                        if err.errno not in ALLOWED:
                            unexpected.append(f"reader {index}: {name}/{attribute}: {err}")
                try:
                    fd = os.open(f"/dev/{name}", os.O_RDONLY)
                    try:
                        fcntl.ioctl(fd, IOC_INFO, info)
                        os.read(fd, 4096)
                        reads["dev"] += 1
                    finally:
                        os.close(fd)
                except OSError as err:
                    if err.errno not in ALLOWED:
                        unexpected.append(f"reader {index}: /dev/{name}: {err}")
        return {"reads": dict(reads), "unexpected": unexpected[:20]}

    def start_readers(self, count: int) -> list[tuple[int, int, int]]:
        readers = []
        for index in range(count):
            stop_r, stop_w = os.pipe()
            out_r, out_w = os.pipe()
            pid = os.fork()
            if pid == 0:   # the reader
                os.close(stop_w)
                os.close(out_r)
                code = 0
                try:
                    os.write(out_w, json.dumps(self.reader_loop(index, stop_r)).encode())
                except BaseException as err:  # noqa: BLE001 - report, never return into main()
                    os.write(out_w, json.dumps({"reads": {}, "unexpected": [repr(err)]}).encode())
                    code = 1
                os._exit(code)
            os.close(stop_r)
            os.close(out_w)
            readers.append((pid, stop_w, out_r))
        return readers

    def stop_readers(self, readers: list[tuple[int, int, int]]) -> None:
        for _, stop_w, _ in readers:
            os.write(stop_w, b"stop")
            os.close(stop_w)
        for pid, _, out_r in readers:
            data = b""
            while chunk := os.read(out_r, 65536):
                data += chunk
            os.close(out_r)
            os.waitpid(pid, 0)
            result = json.loads(data or b'{"reads": {}, "unexpected": ["reader died"]}')
            self.reads.update(result["reads"])
            self.unexpected += result["unexpected"]

    # -- phases ----------------------------------------------------------------------------------
    def random_ops(self, count: int, label: str) -> None:
        """Random operations until `count` more sysfs writes and ioctls have been made."""
        started = time.monotonic()
        base = self.ops["write"] + self.ops["ioctl"]
        shown = 0
        while (done := self.ops["write"] + self.ops["ioctl"] - base) < count:
            self.step()
            if done >= shown + 1000:
                shown = done // 1000 * 1000
                self.progress(label, shown, count, started)
        self.progress(label, count, count, started)

    def progress(self, label: str, done: int, count: int, started: float) -> None:
        print(f"[kernel fuzz] {label}: {done}/{count} writes and ioctls in "
              f"{time.monotonic() - started:.1f} s ({sum(self.ops.values())} operations), "
              f"{len(self.names())} devices", flush=True)

    def hotplug(self, rounds: int) -> None:
        """Add/remove PFs and toggle VFs while the readers run."""
        rng = self.rng
        for round_ in range(1, rounds + 1):
            pf = rng.randrange(20, 30)
            self.write(BUS / "del_device", str(pf).encode(), "del_device")
            if not self.write(BUS / "new_device", f"{pf} {rng.randrange(2)} 1073741824 4".encode(),
                              "new_device"):
                self.unexpected.append(f"new_device {pf} refused")
                continue
            name = f"mock{pf}"
            self.expect(self.write(CLASS / name / "sriov_numvfs", b"2", "numvfs 2"), "numvfs 2")
            vf = os.open(f"/dev/{name}-vf0", os.O_RDWR)
            try:   # a VF is open: no change of sriov_numvfs
                self.expect_errno(CLASS / name / "sriov_numvfs", b"0", errno.EBUSY)
            finally:
                os.close(vf)
            for count in (b"0", b"4", b"0", b"1", b"0"):
                self.expect(self.write(CLASS / name / "sriov_numvfs", count, "numvfs"), "numvfs")
            pf_fd = os.open(f"/dev/{name}", os.O_RDWR)
            try:   # removed while open: the open file answers ENODEV, and is freed on close
                self.expect(self.write(BUS / "del_device", str(pf).encode(), "del"), "del")
                for call, arg in ((os.read, 100), (fcntl.ioctl, IOC_STATUS)):
                    try:
                        call(pf_fd, arg) if call is os.read else call(pf_fd, arg, bytearray(4))
                        self.unexpected.append(f"{name}: removed but still answers")
                    except OSError as err:
                        if err.errno != errno.ENODEV:
                            self.unexpected.append(f"{name} removed: {err} (not ENODEV)")
            finally:
                os.close(pf_fd)
            self.ops["hotplug"] += 1
            if round_ % 5 == 0 or round_ == rounds:
                print(f"[kernel fuzz] hotplug: {round_}/{rounds} rounds", flush=True)

    def expect(self, ok: bool, what: str) -> None:
        if not ok:
            self.unexpected.append(f"{what} failed")

    def expect_errno(self, path: Path, data: bytes, code: int) -> None:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, data)
            self.unexpected.append(f"{path} accepted {data!r} (expected {errno.errorcode[code]})")
        except OSError as err:
            if err.errno != code:
                self.unexpected.append(f"{path}: {err} (expected {errno.errorcode[code]})")
        finally:
            os.close(fd)

    def run_module(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), capture_output=True, text=True)

    def reload_cycles(self, cycles: int, ops: int) -> None:
        for cycle in range(1, cycles + 1):
            names = self.names()
            fd = os.open(f"/dev/{names[0]}", os.O_RDONLY) if names else None
            if fd is not None:   # an open /dev node pins the module
                busy = self.run_module("rmmod", MODULE)
                os.close(fd)
                if busy.returncode == 0:
                    self.unexpected.append("rmmod succeeded while a /dev node was open")
                    self.run_module("insmod", self.ko, *self.backend)
            done = self.run_module("rmmod", MODULE)
            if done.returncode:
                self.unexpected.append(f"rmmod failed: {done.stderr.strip()}")
                return
            params = [f"num_devices={self.rng.randrange(0, 5)}",
                      f"total_vfs={self.rng.randrange(0, 5)}",
                      f"numa_nodes={self.rng.randint(1, 3)}"]
            total = int(params[1].split("=")[1])
            params.append(f"num_vfs={self.rng.randrange(0, total + 1)}")
            params += self.backend
            loaded = self.run_module("insmod", self.ko, *params)
            if loaded.returncode:
                self.unexpected.append(f"insmod {params} failed: {loaded.stderr.strip()}")
                return
            self.ops["reload"] += 1
            print(f"[kernel fuzz] reload {cycle}/{cycles} with {' '.join(params)}: "
                  f"{len(self.names())} devices", flush=True)
            self.random_ops(ops, f"after reload {cycle}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--ops", type=int, default=10000)
    parser.add_argument("--hotplug", type=int, default=20)
    parser.add_argument("--cycles", type=int, default=4)
    parser.add_argument("--ops-per-cycle", type=int, default=300)
    parser.add_argument("--readers", type=int, default=2)
    parser.add_argument("--backend", choices=["soft", "pci"], default="soft",
                        help="the module's backend on every reload (load it so first)")
    args = parser.parse_args(argv)
    if os.environ.get("MOCK_ACCEL_IN_GUEST") != "1":   # it rmmods and insmods
        parser.error("runs only inside the QEMU guest (see test_kernel_fuzz_vm.py)")
    ko = str(locate.ko())
    fuzz = Fuzz(args.seed, ko, firmware_ok=True)
    fuzz.backend = [f"backend={args.backend}"] if args.backend != "soft" else []
    started = time.monotonic()
    readers = fuzz.start_readers(args.readers)
    try:
        fuzz.random_ops(args.ops, "random operations")
        fuzz.hotplug(args.hotplug)
    finally:
        fuzz.stop_readers(readers)
    print(f"[kernel fuzz] concurrent readers: {dict(fuzz.reads)}", flush=True)
    fuzz.reload_cycles(args.cycles, args.ops_per_cycle)
    summary = {"seed": args.seed, "seconds": round(time.monotonic() - started, 1),
               "ops": dict(fuzz.ops), "errors": dict(fuzz.errors), "reads": dict(fuzz.reads),
               "unexpected": fuzz.unexpected[:50], "unexpected_count": len(fuzz.unexpected),
               "devices_at_end": fuzz.names()}
    print("@@fuzz-summary " + json.dumps(summary, sort_keys=True), flush=True)
    return 1 if fuzz.unexpected else 0


if __name__ == "__main__":
    sys.exit(main())

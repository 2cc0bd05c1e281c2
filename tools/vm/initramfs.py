"""Build (and cache) the guest initramfs: static busybox + virtio/9p modules + /init."""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import shutil
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import HarnessSetupError
from .kernel import NET_MODULES, GuestKernel, resolve_module_load_order

BUSYBOX_ENV_VAR = "MOCK_ACCEL_VM_BUSYBOX"
CACHE_ENV_VAR = "MOCK_ACCEL_VM_CACHE"
INIT_SCRIPT = Path(__file__).with_name("init.sh")
# Bump when the initramfs layout changes in a way the inputs do not capture.
LAYOUT_VERSION = "2"

PT_INTERP = 3


def cache_dir() -> Path:
    override = os.environ.get(CACHE_ENV_VAR)
    if override:
        return Path(override)
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "mock-accel" / "vm"


# --------------------------------------------------------------------------
# cpio "newc" writer
# --------------------------------------------------------------------------

S_IFDIR, S_IFREG, S_IFLNK, S_IFCHR = 0o040000, 0o100000, 0o120000, 0o020000


@dataclass
class CpioArchive:
    """Minimal in-memory writer for the cpio format the kernel unpacks."""

    chunks: list[bytes] = field(default_factory=list)
    next_inode: int = 1

    def _entry(self, name: str, mode: int, data: bytes = b"",
               rdev: tuple[int, int] = (0, 0)) -> None:
        encoded_name = name.encode() + b"\0"
        fields = (self.next_inode, mode, 0, 0, 1, 0, len(data), 0, 0,
                  rdev[0], rdev[1], len(encoded_name), 0)
        self.next_inode += 1
        header = b"070701" + b"".join(b"%08X" % value for value in fields)
        self.chunks.append(header + encoded_name)
        self.chunks.append(_padding(len(header) + len(encoded_name)))
        self.chunks.append(data)
        self.chunks.append(_padding(len(data)))

    def add_dir(self, name: str, perms: int = 0o755) -> None:
        self._entry(name, S_IFDIR | perms)

    def add_file(self, name: str, data: bytes, perms: int = 0o644) -> None:
        self._entry(name, S_IFREG | perms, data)

    def add_symlink(self, name: str, target: str) -> None:
        self._entry(name, S_IFLNK | 0o777, target.encode())

    def add_char_device(self, name: str, major: int, minor: int,
                        perms: int = 0o600) -> None:
        self._entry(name, S_IFCHR | perms, rdev=(major, minor))

    def to_bytes(self) -> bytes:
        self.next_inode = 0
        self._entry("TRAILER!!!", 0)
        return b"".join(self.chunks)


def _padding(length: int) -> bytes:
    return b"\0" * (-length % 4)


# --------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------

def find_static_busybox() -> Path:
    candidates = [os.environ.get(BUSYBOX_ENV_VAR), "/bin/busybox",
                  "/usr/bin/busybox", shutil.which("busybox")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            path = Path(candidate)
            if not _is_dynamically_linked(path):
                return path
    raise HarnessSetupError(
        "no statically linked busybox found; run `apt-get install busybox-static` "
        f"or point ${BUSYBOX_ENV_VAR} at one")


def _is_dynamically_linked(elf: Path) -> bool:
    """True if the 64-bit little-endian ELF has a PT_INTERP program header."""
    with elf.open("rb") as handle:
        header = handle.read(64)
        if header[:4] != b"\x7fELF" or header[4] != 2:
            return True  # not an ELF64 we understand: do not trust it
        phoff, = struct.unpack_from("<Q", header, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", header, 0x36)
        handle.seek(phoff)
        table = handle.read(phentsize * phnum)
    return any(struct.unpack_from("<I", table, index * phentsize)[0] == PT_INTERP
               for index in range(phnum))


def read_module(path: Path) -> bytes:
    """Module bytes, decompressed (busybox insmod cannot read .ko.xz/.ko.zst)."""
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        zstd = shutil.which("zstd")
        if zstd is None:
            raise HarnessSetupError(f"{path} is zstd-compressed; install zstd")
        return subprocess.run([zstd, "-dc", str(path)], check=True,
                              capture_output=True).stdout
    return data


def plain_module_name(path: Path) -> str:
    name = path.name
    for suffix in (".xz", ".gz", ".zst"):
        name = name.removesuffix(suffix)
    return name


# --------------------------------------------------------------------------
# build + cache
# --------------------------------------------------------------------------

def _inputs_digest(busybox: Path, modules: list[Path], init_script: bytes) -> str:
    digest = hashlib.sha256()
    digest.update(LAYOUT_VERSION.encode())
    digest.update(init_script)
    for path in [busybox, *modules]:
        stat = path.stat()
        digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def build_initramfs_bytes(busybox: Path, modules: list[Path], init_script: bytes,
                          net_modules: list[Path] | None = None) -> bytes:
    """``modules`` are loaded at every boot (modules/load-order), ``net_modules``
    only when the job asks for a NIC (modules/net-load-order)."""
    archive = CpioArchive()
    for directory in ("bin", "sbin", "dev", "proc", "sys", "tmp", "host",
                      "outbox", "modules"):
        archive.add_dir(directory)
    archive.add_char_device("dev/console", 5, 1)
    archive.add_char_device("dev/null", 1, 3, perms=0o666)
    archive.add_file("bin/busybox", busybox.read_bytes(), perms=0o755)
    archive.add_symlink("bin/sh", "busybox")
    archive.add_file("init", init_script, perms=0o755)
    load_order = []
    for module in modules:
        name = plain_module_name(module)
        archive.add_file(f"modules/{name}", read_module(module))
        load_order.append(name)
    archive.add_file("modules/load-order", ("\n".join(load_order) + "\n").encode())
    net_load_order = []
    for module in net_modules or []:
        name = plain_module_name(module)
        if name not in load_order:
            archive.add_file(f"modules/{name}", read_module(module))
            net_load_order.append(name)
    archive.add_file("modules/net-load-order",
                     "".join(f"{name}\n" for name in net_load_order).encode())
    return archive.to_bytes()


def ensure_initramfs(kernel: GuestKernel) -> Path:
    """Path of a cached initramfs for ``kernel``, building it if inputs changed."""
    busybox = find_static_busybox()
    modules = resolve_module_load_order(kernel)
    net_modules = [path for path in resolve_module_load_order(kernel, NET_MODULES)
                   if path not in modules]
    init_script = INIT_SCRIPT.read_bytes()
    digest = _inputs_digest(busybox, modules + net_modules, init_script)
    target = cache_dir() / f"initramfs-{kernel.version}-{digest}.cpio"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    data = build_initramfs_bytes(busybox, modules, init_script, net_modules)
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False,
                                     prefix=".initramfs-") as handle:
        handle.write(data)
    os.replace(handle.name, target)
    _remove_stale(target)
    return target


def _remove_stale(current: Path, min_age_seconds: float = 3600) -> None:
    """Drop older builds for the same kernel, sparing recent ones that a
    concurrent harness (another checkout or branch) may be about to boot."""
    prefix = current.name.rsplit("-", 1)[0] + "-"
    now = time.time()
    for old in current.parent.glob(f"{prefix}*.cpio"):
        try:
            too_young = now - old.stat().st_mtime < min_age_seconds
        except FileNotFoundError:
            continue
        if old != current and not too_young:
            old.unlink(missing_ok=True)

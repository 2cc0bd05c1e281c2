"""Locate the guest kernel and resolve the modules the initramfs needs."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from .errors import HarnessSetupError

KERNEL_ENV_VAR = "MOCK_ACCEL_VM_KERNEL"
KERNEL_PACKAGE_HINT = "apt-get install linux-image-amd64"

# Modules the guest needs to mount the host root over virtio-9p, in the
# order they are requested; dependencies are pulled in from modules.dep.
REQUIRED_MODULES: tuple[str, ...] = (
    "virtio_ring",
    "virtio",
    "virtio_pci_modern_dev",
    "virtio_pci_legacy_dev",
    "virtio_pci",
    "netfs",
    "fscache",
    "9pnet",
    "9pnet_virtio",
    "9p",
    "overlay",
)

# Merged into others on newer kernels (fscache is part of netfs since 6.8): loaded when the
# kernel has them, skipped when it has not.
OPTIONAL_MODULES: frozenset[str] = frozenset({"netfs", "fscache"})

# Modules for the optional NIC (``run_in_guest(host_ports=...)``); they sit in
# the initramfs too but are only loaded when the run asks for networking.
NET_MODULES: tuple[str, ...] = ("failover", "net_failover", "virtio_net")

MODULE_SUFFIXES: tuple[str, ...] = (".ko", ".ko.xz", ".ko.zst", ".ko.gz")


@dataclass(frozen=True)
class GuestKernel:
    version: str
    image: Path
    modules_dir: Path


def version_key(version: str) -> list[tuple[int, str]]:
    """Sort key comparing numeric runs numerically ("6.1.0-56" > "6.1.0-9")."""
    return [(int(part), "") if part.isdigit() else (-1, part)
            for part in re.findall(r"\d+|[^\d]+", version)]


def _kernel_from_image(image: Path) -> GuestKernel:
    """The kernel of ``image``; its modules are beside it (``<root>/boot/vmlinuz-V`` has
    ``<root>/lib/modules/V``: another system's kernel, e.g. in a chroot) or the host's."""
    if not image.is_file():
        raise HarnessSetupError(f"kernel image {image} does not exist")
    version = image.name.removeprefix("vmlinuz-")
    modules_dir = image.parent.parent / "lib" / "modules" / version
    if not modules_dir.is_dir():
        modules_dir = Path("/lib/modules") / version
    if not modules_dir.is_dir():
        raise HarnessSetupError(
            f"kernel image {image} has no module tree {modules_dir} "
            f"(install the matching linux-image package)")
    return GuestKernel(version=version, image=image, modules_dir=modules_dir)


def find_kernel() -> GuestKernel:
    """Return the kernel to boot.

    ``$MOCK_ACCEL_VM_KERNEL`` may name a vmlinuz path or a kernel version;
    otherwise the newest ``/boot/vmlinuz-*-amd64`` with modules installed wins.
    """
    override = os.environ.get(KERNEL_ENV_VAR, "").strip()
    if override:
        if "/" in override:
            return _kernel_from_image(Path(override))
        return _kernel_from_image(Path("/boot") / f"vmlinuz-{override}")
    candidates = [
        image for image in Path("/boot").glob("vmlinuz-*-amd64")
        if (Path("/lib/modules") / image.name.removeprefix("vmlinuz-")).is_dir()
    ]
    if not candidates:
        raise HarnessSetupError(
            "no guest kernel: need /boot/vmlinuz-*-amd64 with a matching "
            f"/lib/modules/<version>; run `{KERNEL_PACKAGE_HINT}` "
            f"or set ${KERNEL_ENV_VAR}")
    newest = max(candidates,
                 key=lambda image: version_key(image.name.removeprefix("vmlinuz-")))
    return _kernel_from_image(newest)


def guest_unavailable() -> str | None:
    """Why this machine cannot boot the guest (one line for a skip), or None when it can."""
    if os.environ.get("MOCK_ACCEL_IN_GUEST"):
        return "already running inside the guest"
    if not shutil.which("qemu-system-x86_64"):
        return "qemu-system-x86_64 not installed"
    try:
        find_kernel()
    except HarnessSetupError as error:
        return str(error)
    return None


def _read_modules_dep(modules_dir: Path) -> dict[str, tuple[str, list[str]]]:
    """Map module name -> (relative path, [relative paths of dependencies])."""
    dep_file = modules_dir / "modules.dep"
    if not dep_file.is_file():
        raise HarnessSetupError(f"{dep_file} missing (run depmod?)")
    table: dict[str, tuple[str, list[str]]] = {}
    for line in dep_file.read_text().splitlines():
        target, _, deps = line.partition(":")
        if target:
            table[module_name(target)] = (target, deps.split())
    return table


def _read_builtin(modules_dir: Path) -> set[str]:
    builtin_file = modules_dir / "modules.builtin"
    if not builtin_file.is_file():
        return set()
    return {module_name(line) for line in builtin_file.read_text().split()}


def module_name(path: str) -> str:
    """"kernel/net/9p/9pnet_virtio.ko.xz" -> "9pnet_virtio" (dashes as underscores)."""
    base = os.path.basename(path)
    for suffix in MODULE_SUFFIXES:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base.replace("-", "_")


def resolve_module_load_order(kernel: GuestKernel,
                              wanted: tuple[str, ...] = REQUIRED_MODULES) -> list[Path]:
    """Module files to insmod, dependencies first; built-in modules are skipped."""
    table = _read_modules_dep(kernel.modules_dir)
    builtin = _read_builtin(kernel.modules_dir)
    ordered: list[str] = []

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name in ordered or name in builtin:
            return
        if name in chain:
            raise HarnessSetupError(f"module dependency cycle: {' -> '.join(chain)}")
        if name not in table and not chain and name in OPTIONAL_MODULES:
            return
        if name not in table:
            raise HarnessSetupError(
                f"module {name} is neither built into {kernel.version} nor in "
                f"{kernel.modules_dir}/modules.dep")
        for dep_path in table[name][1]:
            visit(module_name(dep_path), chain + (name,))
        ordered.append(name)

    for name in wanted:
        visit(name.replace("-", "_"), ())
    return [kernel.modules_dir / table[name][0] for name in ordered]

"""One test bed, two backends: the simulator (`mock_accel.sim`, everywhere) and the real kernel
module (inside the QEMU guest, where `MOCK_ACCEL_IN_GUEST=1`).

A `Bed` loads the "module" with parameters (insmod, or a fresh simulated tree), exposes the node
through `mock_accel.sysfs.SysfsNode`, and models an open `/dev` node (`hold_open`). The
conformance suite (tests/kernel/conformance) runs on both; the in-guest tests use `KernelBed`.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mock_accel.firmware import FIRMWARE_NAME
from mock_accel.sim import SimConfig, SimNode, software_pci_address
from mock_accel.sysfs import SysfsNode
from tools import locate

IN_GUEST = os.environ.get("MOCK_ACCEL_IN_GUEST") == "1"
MODULE_NAME = "mock_accel"
# The guest's kernel sees the host root, where the tests run chrooted, under /host
# (tools/vm/init.sh); firmware_class's search path is the kernel's view.
GUEST_HOST_ROOT = "/host"
FIRMWARE_PATH_PARAM = Path("/sys/module/firmware_class/parameters/path")


class LoadError(Exception):
    """The backend refused the module parameters (insmod failed / SimConfig.check raised)."""


class Bed:
    kind: str
    node: SysfsNode

    def load(self, firmware: bool | Path = True, **params: int) -> SysfsNode:
        """Load with the built wordlist (`True`), none (`False`) or the file `firmware`, which
        `load_wordlist` reads again (rewrite it to test a reload)."""
        raise NotImplementedError

    def hold_open(self, name: str) -> contextlib.AbstractContextManager:
        raise NotImplementedError

    def uuid_seed(self) -> int:
        """The `uuid_seed` in use (the module reads it back from its parameter)."""
        raise NotImplementedError

    def system_uuid(self) -> str | None:
        """The machine's DMI product UUID the module derives its default seed from, if any."""
        return None

    def pci_address(self, pf: int, vf: int | None, numa_node: int, numa_nodes: int = 2) -> str:
        """Where function (`pf`, `vf`) made at load is: its software address (kmod/ABI.md)."""
        return software_pci_address(pf, vf, numa_node)

    def close(self) -> None:
        pass


class SimBed(Bed):
    kind = "sim"

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.loads = 0

    def load(self, firmware: bool | Path = True, **params: int) -> SysfsNode:
        fw = firmware if isinstance(firmware, Path) else locate.firmware_dir() / FIRMWARE_NAME
        if firmware is True and not fw.is_file():
            pytest.fail(f"{fw} is missing: run `make firmware`")
        config = SimConfig(firmware=str(fw) if firmware else None, **params)
        try:
            config.check()
        except ValueError as err:
            raise LoadError(str(err)) from None
        self.loads += 1
        self.node = SimNode.create(self.tmp_path / f"node{self.loads}", config)
        return self.node

    def hold_open(self, name: str) -> contextlib.AbstractContextManager:
        return self.node.hold_open(name)

    def uuid_seed(self) -> int:
        return self.node.config.uuid_seed  # a simulated node has no DMI: system_uuid is None


class KernelBed(Bed):
    kind = "kernel"

    def __init__(self, backend: str = "soft") -> None:
        self.backend = backend  # the module's `backend` parameter, unless a test gives one
        self.ko = str(locate.ko())
        self.node = SysfsNode("/")
        self.firmware_path: str | None = None  # firmware_class's path before load(firmware=Path)

    def unload(self) -> None:
        if Path(f"/sys/module/{MODULE_NAME}").exists():
            subprocess.run(["rmmod", MODULE_NAME], check=True, capture_output=True, text=True)
        if self.firmware_path is not None:
            FIRMWARE_PATH_PARAM.write_text(self.firmware_path)
            self.firmware_path = None

    def load(self, firmware: bool | Path = True, **params: int) -> SysfsNode:
        self.unload()
        params = {"backend": self.backend, **params} if self.backend != "soft" else params
        args = [f"{key}={value}" for key, value in params.items()]
        if not firmware:
            args.append("firmware_name=mock-accel-absent.txt")
        elif isinstance(firmware, Path):  # the kernel looks in firmware_class's path first
            self.firmware_path = FIRMWARE_PATH_PARAM.read_text().rstrip("\n")
            FIRMWARE_PATH_PARAM.write_text(GUEST_HOST_ROOT + str(firmware.resolve().parent))
            args.append(f"firmware_name={firmware.name}")
        done = subprocess.run(["insmod", self.ko, *args], capture_output=True, text=True)
        if done.returncode:
            raise LoadError(done.stderr.strip())
        return self.node

    @contextlib.contextmanager
    def hold_open(self, name: str) -> Iterator[None]:
        fd = os.open(self.node.dev_path(name), os.O_RDWR)
        try:
            yield
        finally:
            os.close(fd)

    def uuid_seed(self) -> int:
        return int(Path(f"/sys/module/{MODULE_NAME}/parameters/uuid_seed").read_text())

    def pci_address(self, pf: int, vf: int | None, numa_node: int, numa_nodes: int = 2) -> str:
        """backend=pci: PF i at 00:<i // numa_nodes>.0 of domain acc<node>, its VF M on the
        next bus (kmod/ABI.md, "Virtual PCI backend")."""
        if self.backend != "pci":
            return super().pci_address(pf, vf, numa_node, numa_nodes)
        slot = pf // numa_nodes
        bus, devfn = (0, slot << 3) if vf is None else (slot + 1, vf)
        return f"{0xACC0 + numa_node:04x}:{bus:02x}:{devfn >> 3:02x}.{devfn & 7:x}"

    def system_uuid(self) -> str | None:
        path = Path("/sys/class/dmi/id/product_uuid")  # absent when the firmware gives none
        return path.read_text().strip() if path.exists() else None

    def close(self) -> None:
        self.unload()

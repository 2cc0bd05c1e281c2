"""Fixtures for the kubelet-plugin protocol tests (T1, and T3 with the local control plane)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from mock_accel.claims import PluginConfig
from mock_accel.kube import KubeError
from mock_accel.kubelet import KubeletEmulator
from mock_accel.plugin import DriverPlugin
from mock_accel.sim import SimConfig, SimNode

DRIVER = "mock-accel.example.com"


class NoClaims:
    """An API client that knows no claims (for tests that never prepare)."""

    def get(self, path: str) -> dict:
        raise KubeError("GET", path, 404, "NotFound", "not found")


@pytest.fixture
def short_dir():
    """A temp dir with a short path: unix socket paths must stay under 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="ma-k-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def make_plugin(short_dir):
    """make_plugin(node_name="node-a", client=None, driver=DRIVER, start=True, sim=None,
    **PluginConfig options) -> DriverPlugin on a simulated node; all stopped afterwards."""
    made: list[DriverPlugin] = []

    def make(node_name: str = "node-a", client=None, driver: str = DRIVER, start: bool = True,
             sim: SimConfig | None = None, **options) -> DriverPlugin:
        root = short_dir / f"sys-{node_name}"
        node = SimNode(root) if root.exists() else \
            SimNode.create(root, sim or SimConfig(num_devices=4, total_vfs=0))
        config = PluginConfig(driver=driver, node_name=node_name,
                              plugins_dir=short_dir / "plugins",
                              registry_dir=short_dir / "registry", cdi_dir=short_dir / "cdi",
                              sysfs_root=root, **options)
        plugin = DriverPlugin(config, client or NoClaims(), node=node)
        made.append(plugin)
        if start:
            plugin.start()
        return plugin

    yield make
    for plugin in reversed(made):
        plugin.stop()


@pytest.fixture
def kubelet(short_dir):
    emulator = KubeletEmulator(short_dir / "registry")
    yield emulator
    emulator.close()

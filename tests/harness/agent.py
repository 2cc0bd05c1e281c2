"""`mock-accel node-agent` as a real child process on a simulated node, so that it can be killed
for real (tests/e2e/test_restart.py, tests/reliability/test_node_agent_kills.py)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from mock_accel.abi import DEFAULT_DRIVER
from mock_accel.claims import CRASH_POINT_ENV, PluginConfig
from mock_accel.demo import prepare_over_grpc
from mock_accel.kubelet import KubeletEmulator, RegisteredPlugin
from mock_accel.sim import SimNode
from mock_accel.wait import wait_until

DRIVER = DEFAULT_DRIVER


class Agent:
    """`mock-accel node-agent` as a child process on a simulated node."""

    def __init__(self, workdir: Path, node_name: str, kubeconfig: Path, sim: SimNode,
                 extra_args: tuple[str, ...] = ()):
        self.config = PluginConfig(driver=DRIVER, node_name=node_name,
                                   plugins_dir=str(workdir / "plugins"),
                                   registry_dir=str(workdir / "registry"),
                                   cdi_dir=str(workdir / "cdi"), sysfs_root=str(sim.root))
        self.kubeconfig, self.log = kubeconfig, workdir / "agent.log"
        self.extra_args = list(extra_args)          # more `mock-accel node-agent` flags
        self.process: subprocess.Popen | None = None

    def start(self, crash_point: str | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if k != CRASH_POINT_ENV}
        if crash_point:
            env[CRASH_POINT_ENV] = crash_point
        command = [sys.executable, "-m", "mock_accel.cli", "node-agent", "-v", "3",
                   "--node-name", self.config.node_name, "--kubeconfig", str(self.kubeconfig),
                   "--sysfs-root", str(self.config.sysfs_root),
                   "--plugin-socket-dir", str(self.config.plugin_dir),
                   "--registry-dir", str(self.config.registry_dir),
                   "--cdi-dir", str(self.config.cdi_dir), *self.extra_args]
        with open(self.log, "a") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
        wait_until(self._serving_or_dead, 30, "the node agent to serve", interval=0.1,
                   describe=lambda: f"its log:\n{self.log.read_text()[-3000:]}")
        if not self.serving():  # it exited
            raise AssertionError(f"node agent did not start:\n{self.log.read_text()[-3000:]}")

    def _serving_or_dead(self) -> bool:
        return self.process.poll() is not None or self.serving()

    def serving(self) -> bool:
        """The DRA socket accepts connections (a killed agent's stale socket does not)."""
        return _accepts(self.config.dra_socket)

    def register(self, kubelet: KubeletEmulator | None = None
                 ) -> tuple[KubeletEmulator, RegisteredPlugin]:
        """The kubelet's handshake once the agent serves its registration socket: a killed
        agent leaves its socket file behind until the new one replaces it (the kubelet reacts
        to the new file; the emulator waits for a socket that accepts)."""
        kubelet = kubelet or KubeletEmulator(self.config.registry_dir)
        path = self.config.registration_socket
        wait_until(lambda: _accepts(path), 30, f"{path} to accept a connection", interval=0.02)
        return kubelet, kubelet.register(path)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def prepare(self, claim: dict, unprepare: bool = False):
        return prepare_over_grpc(self.config.dra_socket, [claim], unprepare)[
            claim["metadata"]["uid"]]

    def checkpoint(self) -> dict:
        path = self.config.checkpoint_path
        return json.loads(path.read_text())["claims"] if path.exists() else {}


def _accepts(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def allocated(sim: SimNode) -> list[str]:
    return [d.name for d in sim.discover() if d.allocated]

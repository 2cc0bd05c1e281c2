"""KMM's manager as a host process with its own ServiceAccount's token (tools/kmm)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import requests

from mock_accel.wait import wait_until

from . import CONFIG_MAP, NAMESPACE


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Operator:
    """`manager` (KMM's operator) started with `kubeconfig`, logging to `log`; its worker pods
    run `worker_image` (`RELATED_IMAGE_WORKER`)."""

    def __init__(self, manager: Path, kubeconfig: Path, worker_image: str, health_port: int,
                 log: Path, namespace: str = NAMESPACE):
        self.manager, self.kubeconfig, self.worker_image = manager, kubeconfig, worker_image
        self.health_port, self.log, self.namespace = health_port, log, namespace
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> float:
        """Start the manager; return the seconds until its /readyz answered."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "KUBECONFIG": str(self.kubeconfig),
               "OPERATOR_NAMESPACE": self.namespace, "RELATED_IMAGE_WORKER": self.worker_image,
               "HOME": os.environ.get("HOME", "/tmp")}
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen([str(self.manager), f"--config={CONFIG_MAP}", "--v=1"],
                                         stdout=fh, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
        url = f"http://127.0.0.1:{self.health_port}/readyz"

        def ready() -> bool:
            if self.proc.poll() is not None:
                tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])
                raise RuntimeError(f"KMM's manager exited ({self.proc.returncode}); "
                                   f"log {self.log}:\n{tail}")
            try:
                return requests.get(url, timeout=2).status_code == 200
            except requests.RequestException:
                return False
        t0 = time.monotonic()
        wait_until(ready, timeout, "KMM's manager /readyz", interval=0.5)
        return time.monotonic() - t0

    def stop(self, grace: float = 15) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def __enter__(self) -> Operator:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

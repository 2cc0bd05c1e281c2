"""The local registry's host port taken by another program: one line naming it, exit 1
(tools/registry), on a throwaway engine of the test's own (the shared registry is not touched)."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys

import pytest

from tools.locate import REPO

pytestmark = pytest.mark.skipif(shutil.which("dockerd") is None,
                                reason="dockerd absent: `make deps` installs Debian's docker.io")


def test_a_registry_port_in_use_is_one_line(root, tool_in):
    assert tool_in(root, "up").returncode == 0
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "tools.registry", "up", "--no-driver"],
                           env={**os.environ, "PYTHONPATH": str(REPO),
                                "MOCK_ACCEL_DOCKER_RUN": str(root / "run"),
                                "MOCK_ACCEL_DOCKER_DATA": str(root / "data"),
                                "MOCK_ACCEL_REGISTRY_PORT": str(port)},
                           capture_output=True, text=True, timeout=600)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip() == (f"tools.registry: step registry start: 127.0.0.1:{port} is in "
                                "use by another program: free it or set "
                                "MOCK_ACCEL_REGISTRY_PORT")

"""The guest node end to end (`make e2e-node`): `python -m tools.vmnode check`.

A control plane on the host, containerd + kubelet in the QEMU guest, joined through slirp
forwards; then a pod's `kubectl exec`, a pod on the in-cluster config, the module image loaded
the way KMM's worker does, the chart and a pod calling the passphrase ioctl. Skipped unless
MOCK_ACCEL_VMNODE_TEST=1 (minutes under TCG); MOCK_ACCEL_VMNODE_STEPS picks the checks."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tools import locate

pytestmark = [pytest.mark.vmnode, pytest.mark.skipif(
    os.environ.get("MOCK_ACCEL_VMNODE_TEST") != "1",
    reason="boots the guest node: `make e2e-node` runs it (MOCK_ACCEL_VMNODE_TEST=1)")]


def test_the_guest_node_runs_the_driver_on_the_real_module() -> None:
    steps = os.environ.get("MOCK_ACCEL_VMNODE_STEPS", "exec,in-cluster,module,chart")
    r = subprocess.run([sys.executable, "-m", "tools.vmnode", "check", "--steps", steps],
                       cwd=locate.REPO, timeout=3600)
    measure = json.loads((locate.artifacts() / "vmnode" / "measure.json").read_text())
    assert r.returncode == 0, measure.get("error")
    assert measure["boot_to_ready"] > 0
    if "chart" in steps:
        assert len(measure["passphrase"].split("-")) == 6
        assert f"MOCK_ACCEL_UUID={measure['slice_uuid']}" in measure["claim_output"]
    if "module" in steps:
        assert "words from firmware" in measure["module_output"]

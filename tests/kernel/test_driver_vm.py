"""T2: the controller's builder and the node agent inside the QEMU guest, on the real module's
sysfs and /dev, against the real control plane (mock_accel.cluster) running on the host.

One boot: the guest reaches the host's kube-apiserver at its own 127.0.0.1:<port> (tools/vm
`host_ports`: restricted QEMU user networking + guestfwd, nothing else reachable), with the
node's credentials for the controller and the plugin and admin credentials for the test's
DeviceClass/claim/pod. The guest half is tests/kernel/guest/test_driver_in_guest.py.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
import yaml

from tools import locate
from tools.vm import dmesg_problems, run_in_guest

GUEST_TEST = "tests/kernel/guest/test_driver_in_guest.py"
RES = "resource.k8s.io/v1"

pytestmark = [pytest.mark.vm, pytest.mark.cluster]


def _server(kubeconfig: Path) -> str:
    config = yaml.safe_load(kubeconfig.read_text())
    (entry,) = config["clusters"]
    return entry["cluster"]["server"]


def test_driver_on_the_real_module_against_the_real_control_plane(cluster):  # noqa: F811
    if os.environ.get("MOCK_ACCEL_IN_GUEST"):
        pytest.skip("already inside the guest")
    ko, firmware = locate.ko(), locate.firmware_dir()
    locate.require(ko, locate.wordlist())

    port = cluster.ports["apiserver"]
    (node,) = cluster.create_nodes(1, prefix="t2vm")
    namespace = cluster.create_namespace()
    node_kubeconfig = Path(cluster.nodes[node].kubeconfig)
    admin_kubeconfig = Path(cluster.kubeconfig)
    # both work unchanged in the guest: its 127.0.0.1:<port> is the host's
    for kubeconfig in (node_kubeconfig, admin_kubeconfig):
        assert _server(kubeconfig) == f"https://127.0.0.1:{port}", kubeconfig
    try:
        result = run_in_guest(
            [sys.executable, "-m", "pytest", "-q", "-rfE", "-s", GUEST_TEST],
            env={"MOCK_ACCEL_KO": str(ko), "KUBECONFIG": str(node_kubeconfig),
                 "MOCK_ACCEL_ADMIN_KUBECONFIG": str(admin_kubeconfig), "NODE_NAME": node,
                 "MOCK_ACCEL_T2_NAMESPACE": namespace},
            firmware_dir=firmware, host_ports=[port], timeout=1500,
            output_stream=sys.stdout)
    finally:
        leftovers = cluster.api.list(RES, "ResourceSlice", fieldSelector=f"spec.nodeName={node}")
        for item in leftovers:
            cluster.api.delete(RES, "ResourceSlice", item["metadata"]["name"])
        cluster.delete_namespace(namespace)
        cluster.delete_node(node)
    assert result.returncode == 0, f"in-guest T2 failed; serial log: {result.serial_log_path}"
    summary = result.output.strip().splitlines()[-1]
    assert re.search(r"\b6 passed\b", summary) and "skipped" not in summary, summary
    assert not leftovers, "the guest left ResourceSlices behind"
    bad = dmesg_problems(result.dmesg)
    assert not bad, "guest kernel log:\n" + "\n".join(bad)
    print(f"guest: booted in {result.boot_seconds:.1f} s, ran in {result.duration:.1f} s")

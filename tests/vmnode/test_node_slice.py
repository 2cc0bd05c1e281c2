"""The guest node's short slice, in `make test` (`make node-slice`, issue 16 item 4).

A control plane on the host and a kubelet node in the QEMU guest (tools/vmnode); the images
reach the node as one `docker save` archive over the 9p share (`ctr images import`, no pull):
the module's files from the module image, on busybox (4 MB instead of 256), are loaded the way
KMM's worker does (KMM not run; `insmod` for `modprobe -d`) and one privileged pod of a static
helper image (tools/vmnode/passphrase.c, FROM scratch) calls the PASSPHRASE ioctl on /dev/mock0.
`make e2e-node` loads the module image itself. Times go to artifacts/vmnode/slice.json. Skipped
unless MOCK_ACCEL_VMNODE_SLICE=1 (the tier sets it), and with one line when qemu or a guest
kernel is missing.
"""
from __future__ import annotations

import json
import os
import time

import pytest

from mock_accel.firmware import parse_wordlist, passphrase_word_counts
from tests.harness.nodepods import loader_pod, passphrase_pod
from tools import locate
from tools.vm.kernel import find_kernel, guest_unavailable


def _unavailable() -> str | None:
    if os.environ.get("MOCK_ACCEL_VMNODE_SLICE") != "1":
        return "boots the guest node: `make node-slice` runs it (MOCK_ACCEL_VMNODE_SLICE=1)"
    return guest_unavailable()


pytestmark = [pytest.mark.vmnode, pytest.mark.skipif(_unavailable() is not None,
                                                     reason=_unavailable() or "")]
TAG = os.environ.get("MOCK_ACCEL_VMNODE_TAG", "vmnode")


def test_node_ready_module_loaded_and_a_pod_reads_a_passphrase() -> None:
    from tools.vmnode import checks
    from tools.vmnode.images import publish_images, save_images
    from tools.vmnode.node import VmNode

    t0 = time.monotonic()
    measure: dict = {"tag": TAG, "load_before": os.getloadavg()}
    refs, local = publish_images(TAG, find_kernel().version, push=())  # imported only
    measure["publish_seconds"] = round(time.monotonic() - t0, 1)
    t = time.monotonic()
    archive = save_images(refs, local, ("pause", "passphrase", "module-busybox"))
    measure["save_seconds"] = round(time.monotonic() - t, 1)
    measure["archive_mib"] = round(archive.stat().st_size / 2**20, 1)
    out = locate.artifacts() / "vmnode"
    out.mkdir(parents=True, exist_ok=True)
    try:
        with VmNode(refs["pause"], imports=[archive]) as node:
            measure.update({k: round(v, 1) for k, v in node.timings.items()})
            measure["node_log_dir"] = str(node.run_dir)
            t = time.monotonic()
            measure["import_seconds"] = node.wait_imported([archive])[str(archive)]
            measure["ready_to_imported_seconds"] = round(time.monotonic() - t, 1)
            measure["module_load_seconds"] = round(
                checks.run_pod(node, loader_pod(node, refs["module-busybox"])), 1)
            measure["module_output"] = checks.logs(node, "kmm-worker-mock-accel",
                                                   "kube-system").strip()
            measure["passphrase_pod_seconds"] = round(
                checks.run_pod(node, passphrase_pod(node, refs["passphrase"])), 1)
            said = checks.logs(node, "passphrase", "default").strip()
            measure["passphrase_output"] = said
    finally:
        measure["total_seconds"] = round(time.monotonic() - t0, 1)
        measure["load_after"] = os.getloadavg()
        (out / "slice.json").write_text(json.dumps(measure, indent=2) + "\n")
    print(json.dumps(measure, indent=2))
    assert "mock_accel " in measure["module_output"]
    assert "words from firmware" in measure["module_output"]
    assert said.startswith("passphrase: "), said
    words = set(parse_wordlist(locate.wordlist().read_bytes()))
    assert 6 in passphrase_word_counts(said.removeprefix("passphrase: "), words), said

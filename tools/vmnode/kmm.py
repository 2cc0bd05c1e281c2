"""KMM for real on the guest node: `python -m tools.vmnode check --steps exec,kmm` (issue 16).

KMM's manager runs on the host (tools/kmm: built from a checkout, its own CRDs and roles, a
token of its ServiceAccount); the chart is installed with `kernelModule.enabled=true` in
prebuilt mode and KMM does the rest on the node: a pull pod checks the module image, a worker
pod loads the module (its `image-extractor` init container copies the module image's /opt and
/firmware, the worker copies the firmware to the node's /var/lib/firmware, writes that path into
the kernel's firmware search path and runs `modprobe -d`), KMM labels the node, and the chart's
agents, which wait for that label, publish the module's real devices. On `helm uninstall` KMM's
unloader pod runs `modprobe -r`.

The module image is the module's files on busybox (images.build_module_busybox: the
image-extractor needs only `sh` and `cp`). Every image reaches the node in the one imported
archive, pull policy IfNotPresent: nothing is pulled.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mock_accel.wait import WaitTimeout, wait_until
from tools import kmm
from tools.kmm.operator import Operator, free_port

from . import checks
from .node import VmNode

CHART_NS = "mock-device"          # chart/values.yaml namespace.name
MODULE = "mock-accel"             # chart/values.yaml kernelModule.moduleName
READY_LABEL = f"kmm.node.kubernetes.io/{CHART_NS}.{MODULE}.ready"
FIRMWARE_HOST_PATH = "/var/lib/firmware"  # KMM's worker.firmwareHostPath (node.sh binds it)
PLUGIN_DIR = f"/var/lib/kubelet/plugins/{checks.DRIVER}"


def chart_values(module_ref: str, kver: str, namespace: str = CHART_NS) -> dict:
    """The chart's KMM values: prebuilt mode, the module image as KMM names it per kernel
    (`<repository>:<tag with ${KERNEL_FULL_VERSION}>`), no simulation, the namespace made
    beforehand (KMM's unloader pod must still be admitted there after `helm uninstall`)."""
    repository, tag = module_ref.rsplit(":", 1)
    if kver not in tag:
        raise ValueError(f"module image {module_ref} is not tagged for kernel {kver}")
    return {"simulation": {"enabled": False},
            "namespace": {"create": False, "name": namespace},
            "kernelModule": {"enabled": True, "mode": "prebuilt", "image": {
                "repository": repository, "pullPolicy": "IfNotPresent",
                "tag": tag.replace(kver, "${KERNEL_FULL_VERSION}")}}}


def build(src: Path, refs: dict, local: dict, tag: str) -> dict[str, Path]:
    """KMM's binaries from `src` and its worker image (tools/kmm, cached); the worker image joins
    the node's images as refs["kmm-worker"] (local image in `local`). Returns the binaries."""
    from tools import gosrc, registry
    from tools.kmm.image import worker_image

    bins = gosrc.build(kmm.KMM, src)
    local["kmm-worker"] = worker_image(bins["worker"])
    refs["kmm-worker"] = f"{registry.ON_HOST}/mock-accel/kmm-worker:{tag}"
    return bins


@contextmanager
def operator(node: VmNode, src: Path, bins: dict[str, Path], worker_image: str,
             log_dir: Path) -> Iterator[dict]:
    """KMM installed on the node's control plane and its manager running; yields timings."""
    api, t0 = node.cluster.api, time.monotonic()
    port = free_port()
    kmm.install(api, src, port, firmware_host_path=FIRMWARE_HOST_PATH)
    kubeconfig = kmm.operator_kubeconfig(api, str(node.cluster.kubeconfig),
                                         node.cluster.tmp / "kmm-operator.kubeconfig")
    op = Operator(bins["manager"], kubeconfig, worker_image, port, log_dir / "kmm-manager.log")
    ready = op.start()
    try:
        yield {"kmm_install_seconds": round(time.monotonic() - t0 - ready, 1),
               "kmm_manager_ready_seconds": round(ready, 1), "kmm_manager_log": str(op.log)}
    finally:
        op.stop()


def module_status(node: VmNode) -> dict:
    """KMM's Module status (`moduleLoader`: nodes matching, desired, available)."""
    module = node.cluster.api.get_or_none("kmm.sigs.x-k8s.io/v1beta1", "Module", MODULE,
                                          CHART_NS) or {}
    return module.get("status", {}).get("moduleLoader", {})


def _loaded(node: VmNode, shell: checks.NodeShell) -> dict | None:
    labels = node.cluster.api.get("v1", "Node", node.name)["metadata"].get("labels", {})
    line = shell.module_line()
    status = module_status(node)
    if READY_LABEL in labels and line and status.get("availableNumber") == 1:
        return {"module_line": line, "module_status": status}
    return None


def _kmm_pods(node: VmNode) -> str:
    return node.cluster.kubectl("get", "pods", "-n", CHART_NS, "-o", "wide",
                                check=False).stdout


def load_by_kmm(node: VmNode, refs: dict, kver: str, shell: checks.NodeShell,
                timeout: float = 1800) -> dict:
    """The chart installed with its KMM Module: KMM loads the module (Module status available
    on the node, its ready label, /proc/modules, the firmware line) and the agents publish the
    module's devices."""
    node.cluster.api.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": CHART_NS, "labels": {"pod-security.kubernetes.io/enforce": "privileged"}}})
    t0 = time.monotonic()
    values = chart_values(refs["module-busybox"], kver)
    slices = checks.install_chart(node, refs["driver"], values, namespace=CHART_NS,
                                  timeout=timeout)
    try:
        got = wait_until(lambda: _loaded(node, shell), timeout, "KMM to load mock_accel", 3)
    except WaitTimeout:
        raise checks.CheckError(f"KMM did not load the module after {timeout:.0f}s: "
                                f"{module_status(node)}\n{_kmm_pods(node)}") from None
    firmware = shell.firmware_lines()
    if not firmware or "words from firmware" not in firmware[-1]:
        raise checks.CheckError(f"no successful wordlist firmware load in the kernel log: "
                                f"{firmware}")
    return {**slices, **got, "firmware_line": firmware[-1],
            "firmware_class_path": shell(
                "cat /sys/module/firmware_class/parameters/path").strip(),
            "helm_install_to_module_loaded_seconds": round(time.monotonic() - t0, 1)}


def leftovers(node: VmNode, shell: checks.NodeShell) -> dict:
    """What a prepared claim leaves on the node: our CDI specs, the checkpoint's claims, the
    devices whose ALLOCATED bit is set (bit 1 of `status`, kmod/ABI.md)."""
    specs = shell("ls -1 /var/run/cdi 2>/dev/null || true").split()
    checkpoint = shell(f"cat {PLUGIN_DIR}/checkpoint.json 2>/dev/null || true").strip()
    claims = sorted(json.loads(checkpoint)["claims"]) if checkpoint else []
    statuses = shell("for d in /sys/class/mock-accel/*/status; do [ -e \"$d\" ] && "
                     "echo \"$d $(cat \"$d\")\"; done; true").split("\n")
    allocated = [line.split()[0] for line in statuses if line.strip()
                 and int(line.split()[1], 16) & 0x2]
    return {"cdi_specs": [s for s in specs if s.startswith(checks.DRIVER)],
            "checkpoint_claims": claims, "allocated": allocated}


def _clean(node: VmNode, shell: checks.NodeShell, what: str, timeout: float = 600) -> dict:
    def clean():
        left = leftovers(node, shell)
        return None if any(left.values()) else left
    try:
        return wait_until(clean, timeout, what, 3)
    except WaitTimeout:
        raise checks.CheckError(f"{what}: still there after {timeout:.0f}s: "
                                f"{leftovers(node, shell)}") from None


def uninstall(node: VmNode, shell: checks.NodeShell, timeout: float = 900) -> dict:
    """`helm uninstall`: KMM's unloader pod unloads the module (gone from /proc/modules, the
    Module and the node's slices gone), and nothing of ours is left on the node."""
    t0 = time.monotonic()
    node.cluster.helm("uninstall", "mock-device", "--namespace", CHART_NS, "--wait",
                      "--timeout", f"{int(timeout)}s", timeout=timeout + 60)

    def gone():
        slices = [s for s in node.cluster.api.list("resource.k8s.io/v1", "ResourceSlice")
                  if s["spec"]["driver"] == checks.DRIVER]
        module = node.cluster.api.get_or_none("kmm.sigs.x-k8s.io/v1beta1", "Module", MODULE,
                                              CHART_NS)
        return not slices and module is None and not shell.module_line()
    try:
        wait_until(gone, timeout, "KMM to unload mock_accel after helm uninstall", 3)
    except WaitTimeout:
        raise checks.CheckError(f"after helm uninstall: module line {shell.module_line()!r}, "
                                f"Module status {module_status(node)}\n{_kmm_pods(node)}") \
            from None
    return {"uninstall_to_unloaded_seconds": round(time.monotonic() - t0, 1),
            "after_uninstall": _clean(node, shell, "leftovers after helm uninstall"),
            "lsmod_after_uninstall": shell.module_line() or "(mock_accel not loaded)"}


def check(node: VmNode, refs: dict, kver: str, src: Path, bins: dict[str, Path],
          log_dir: Path) -> dict:
    """The whole KMM step: operator up, chart with its Module, KMM loads the module, a user's
    pod reads a passphrase through the ioctl, the claim is released, `helm uninstall` unloads."""
    with operator(node, src, bins, refs["kmm-worker"], log_dir) as got:
        shell = checks.NodeShell(node, refs["busybox"])
        got.update(load_by_kmm(node, refs, kver, shell))
        got.update(checks.claim_pod(node, refs["driver"]))
        node.cluster.api.delete("resource.k8s.io/v1", "ResourceClaim", "one-pf", "default")
        got["after_release"] = _clean(node, shell, "the claim's release (unprepare)")
        got.update(uninstall(node, shell))
    return got

"""Pods of the guest node's tests (tests/vmnode: the slice in `make test`, issue 17's proof):
the module loaded the way KMM's worker does from the module's files on busybox, and the static
passphrase helper (tools/vmnode/passphrase.c) calling the ioctl."""
from __future__ import annotations


def passphrase_pod(node, image: str, device: str = "/dev/mock0") -> dict:
    """One privileged pod on the node (a privileged container sees the node's /dev): the helper
    opens `device` for writing and prints the PASSPHRASE ioctl's answer."""
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "passphrase", "namespace": "default"},
            "spec": {"restartPolicy": "Never", "nodeName": node.name, "containers": [{
                "name": "main", "image": image, "command": ["/passphrase", device],
                "securityContext": {"privileged": True}}]}}


def loader_pod(node, image: str, params: str | None = None) -> dict:
    """The module loaded as KMM's worker does (tools/vmnode/checks.py LOADER: the firmware to
    the node, its path, the load), from the module's files on busybox, whose `insmod` stands in
    for `modprobe -d /opt` (busybox's modprobe has no -d). `params`: the module's parameters
    (default: the chart's kernelModule.parameters)."""
    from tools.vmnode import checks

    modprobe = "modprobe -d /opt mock-accel"
    assert modprobe in checks.LOADER, "checks.LOADER changed: update the slice's loader"
    script = checks.LOADER.replace(modprobe, "insmod /opt/lib/modules/$kver/mock-accel.ko")
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "kmm-worker-mock-accel", "namespace": "kube-system"},
            "spec": {"restartPolicy": "Never", "nodeName": node.name, "containers": [{
                "name": "main", "image": image,
                "command": ["sh", "-c", script.format(params=params or checks.module_parameters())],
                "securityContext": {"privileged": True},
                "volumeMounts": [{"name": "fw", "mountPath": "/node-firmware"}]}],
                "volumes": [{"name": "fw", "hostPath": {"path": "/var/lib/firmware",
                                                        "type": "DirectoryOrCreate"}}]}}

"""The chart's values on the guest node (tools/vmnode: checks.chart_values, kmm.chart_values),
rendered by the real helm: what KMM and the kubelet will be given. Quick, no guest."""
from __future__ import annotations

import json

import pytest

from tests.chart.chart import find, one, render
from tools.vmnode import checks, kmm

KVER = "6.1.0-57-amd64"
MODULE = f"127.0.0.1:5001/mock-accel/module-busybox:vmnode-{KVER}"
DRIVER = "127.0.0.1:5001/mock-accel/dra-driver:vmnode"


def _render(values: dict) -> list[dict]:
    return render(set_json={key: json.dumps(value) for key, value in values.items()})


def test_kmm_gets_the_imported_module_image_for_the_nodes_kernel() -> None:
    objs = _render(checks.chart_values(DRIVER, kmm.chart_values(MODULE, KVER, "mock-accel")))
    module = one(objs, "Module")
    assert module["metadata"]["namespace"] == "mock-accel"
    container = module["spec"]["moduleLoader"]["container"]
    (mapping,) = container["kernelMappings"]
    image = mapping.get("containerImage") or container.get("containerImage")
    # KMM substitutes the kernel its node reports: the reference the node imported
    assert image.replace("${KERNEL_FULL_VERSION}", KVER) == MODULE, image
    assert container["imagePullPolicy"] == "IfNotPresent"  # imported: never pulled
    assert container["modprobe"]["firmwarePath"] == "/firmware"
    assert not find(objs, "Namespace")  # made beforehand: KMM's unloader runs there later
    for ds in find(objs, "DaemonSet"):
        pod = ds["spec"]["template"]["spec"]
        (main,) = [c for c in pod["containers"] if c["image"] == DRIVER]
        assert main["livenessProbe"]["initialDelaySeconds"] == 600  # TCG starts Python slowly
        inits = [c["name"] for c in pod.get("initContainers") or []]
        assert "simulate" not in inits, "no simulated tree with the real module"
        assert not [v for v in pod["volumes"] if v["name"] == "sim-root"]


def test_without_kmm_the_chart_serves_the_loaded_module() -> None:
    objs = _render(checks.chart_values(DRIVER))
    assert not find(objs, "Module")
    assert {c["image"] for ds in find(objs, "DaemonSet")
            for c in ds["spec"]["template"]["spec"]["containers"]} == {DRIVER}


def test_a_module_image_of_another_kernel_is_refused() -> None:
    with pytest.raises(ValueError, match="not tagged for kernel 6.1.0-99-amd64"):
        kmm.chart_values(MODULE, "6.1.0-99-amd64")


def test_values_merge_key_by_key() -> None:
    assert checks.merge({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"c": 4}, "e": 5}) == {
        "a": {"b": 1, "c": 4}, "d": 3, "e": 5}

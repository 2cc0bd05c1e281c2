"""The real scheduler and controller-manager allocate hand-written DRA resources.

No driver of ours runs here: ResourceSlices are published by the test itself, the
upstream kube-scheduler allocates devices and binds pods to API-object nodes, and
kube-controller-manager turns ResourceClaimTemplates into ResourceClaims.
Each test uses its own driver name, so slices of other tests never match.
"""

from __future__ import annotations

import time

import pytest

from mock_accel.kube import KubeError

pytestmark = pytest.mark.cluster

RES = "resource.k8s.io/v1"
PAUSE = "registry.k8s.io/pause:3.10"


# ----------------------------------------------------------------------------- builders

def device_class(name: str, driver: str, extra_cel: str = "") -> dict:
    expr = f'device.driver == "{driver}"' + (f" && {extra_cel}" if extra_cel else "")
    return {"apiVersion": RES, "kind": "DeviceClass", "metadata": {"name": name},
            "spec": {"selectors": [{"cel": {"expression": expr}}]}}


def slice_(name: str, driver: str, node: str, pool: str, *, devices=None, counters=None,
           slice_count: int = 1) -> dict:
    spec = {"driver": driver, "nodeName": node,
            "pool": {"name": pool, "generation": 1, "resourceSliceCount": slice_count}}
    if devices is not None:
        spec["devices"] = devices
    if counters is not None:
        spec["sharedCounters"] = counters
    return {"apiVersion": RES, "kind": "ResourceSlice", "metadata": {"name": name}, "spec": spec}


def request(name: str, device_class_name: str, count: int = 1, cel: str | None = None) -> dict:
    exactly = {"deviceClassName": device_class_name, "allocationMode": "ExactCount",
               "count": count}
    if cel:
        exactly["selectors"] = [{"cel": {"expression": cel}}]
    return {"name": name, "exactly": exactly}


def claim(name: str, *requests: dict) -> dict:
    return {"apiVersion": RES, "kind": "ResourceClaim", "metadata": {"name": name},
            "spec": {"devices": {"requests": list(requests)}}}


def pod(name: str, claim_name: str | None = None, template: str | None = None) -> dict:
    ref = {"name": "accel"}
    if claim_name:
        ref["resourceClaimName"] = claim_name
    else:
        ref["resourceClaimTemplateName"] = template
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "main", "image": PAUSE,
                                     "resources": {"claims": [{"name": "accel"}]}}],
                     "resourceClaims": [ref], "terminationGracePeriodSeconds": 0}}


def driver_for(namespace: str) -> str:
    return f"{namespace}.allocator-test.example.com"


def allocated_devices(api, namespace: str, driver: str) -> dict[str, str]:
    """device -> claim name, over every allocated claim in the namespace."""
    out = {}
    for c in api.list(RES, "ResourceClaim", namespace):
        alloc = c.get("status", {}).get("allocation")
        for r in (alloc or {}).get("devices", {}).get("results", []):
            if r["driver"] == driver:
                out[r["device"]] = c["metadata"]["name"]
    return out


# ----------------------------------------------------------------------------- tests

def test_scheduler_allocates_from_handwritten_slice(cluster, api, namespace, cluster_objects):
    driver = driver_for(namespace)
    (node,) = cluster.create_nodes(1, prefix=f"{namespace}-n")
    devices = [{"name": f"accel-{i}",
                "attributes": {"model": {"string": "mock-a1"}, "index": {"int": i}},
                "capacity": {"memory": {"value": "16Gi"}}} for i in range(2)]
    cluster_objects(slice_(f"{node}-accel", driver, node, node, devices=devices))
    cls = f"{namespace}-accel"
    cluster_objects(device_class(cls, driver,
                                 f'device.attributes["{driver}"].model == "mock-a1"'))

    api.create(claim("accel", request("gpu", cls)), namespace)
    p = pod("user", claim_name="accel")
    p["spec"]["containers"][0]["resources"]["claims"][0]["request"] = "gpu"
    api.create(p, namespace)

    bound = api.wait_pod_bound(namespace, "user")
    assert bound["spec"]["nodeName"] == node
    c = api.get(RES, "ResourceClaim", "accel", namespace)
    alloc = c["status"]["allocation"]
    (result,) = alloc["devices"]["results"]
    print("allocation:", result, "reservedFor:", c["status"]["reservedFor"])
    assert result["request"] == "gpu"
    assert result["driver"] == driver
    assert result["pool"] == node
    assert result["device"] in {"accel-0", "accel-1"}
    terms = alloc["nodeSelector"]["nodeSelectorTerms"]
    assert any(f["key"] == "metadata.name" and f["values"] == [node]
               for t in terms for f in t.get("matchFields", []))
    assert c["status"]["reservedFor"] == [
        {"resource": "pods", "name": "user", "uid": bound["metadata"]["uid"]}]


def test_v1_rejects_request_without_exactly(api, namespace):
    """The seed's shape -- deviceClassName/count directly on the request -- is not v1."""
    bad = claim("seed-shape", {"name": "gpu", "deviceClassName": "whatever", "count": 1})

    with pytest.raises(KubeError) as lenient:  # default field validation: fields dropped
        api.create(bad, namespace)
    print("server (default validation):", lenient.value.status, lenient.value.message)
    assert lenient.value.status == 422 and lenient.value.reason == "Invalid"
    assert "exactly" in lenient.value.message

    with pytest.raises(KubeError) as strict:   # what kubectl does: unknown fields are errors
        api.create(bad, namespace, fieldValidation="Strict")
    print("server (strict validation):", strict.value.status, strict.value.message)
    assert strict.value.status == 400
    assert 'unknown field "spec.devices.requests[0].deviceClassName"' in strict.value.message

    assert api.get_or_none(RES, "ResourceClaim", "seed-shape", namespace) is None


def test_shared_counters_pf_and_partitions_are_exclusive(cluster, api, namespace,
                                                         cluster_objects):
    driver = driver_for(namespace)
    (node,) = cluster.create_nodes(1, prefix=f"{namespace}-n")
    pool = f"{node}-gpu"

    def dev(name, kind, mem):
        return {"name": name, "attributes": {"kind": {"string": kind}},
                "consumesCounters": [{"counterSet": "gpu-0",
                                      "counters": {"memory": {"value": mem}}}]}

    # sharedCounters and devices live in separate slices of one pool
    cluster_objects(slice_(f"{pool}-counters", driver, node, pool, slice_count=2,
                           counters=[{"name": "gpu-0",
                                      "counters": {"memory": {"value": "8Gi"}}}]))
    cluster_objects(slice_(f"{pool}-devices", driver, node, pool, slice_count=2,
                           devices=[dev("gpu-0", "pf", "8Gi"), dev("gpu-0-p0", "partition", "4Gi"),
                                    dev("gpu-0-p1", "partition", "4Gi")]))
    cls = f"{namespace}-gpu"
    cluster_objects(device_class(cls, driver))
    kind = f'device.attributes["{driver}"].kind'

    def check_invariant():
        devs = allocated_devices(api, namespace, driver)
        assert not ("gpu-0" in devs and {"gpu-0-p0", "gpu-0-p1"} & devs.keys()), \
            f"PF and a partition allocated together: {devs}"
        return devs

    def make(name, want):
        api.create(claim(name, request("gpu", cls, cel=f'{kind} == "{want}"')), namespace)
        api.create(pod(name, claim_name=name), namespace)

    make("pf", "pf")
    api.wait_pod_bound(namespace, "pf")
    assert check_invariant() == {"gpu-0": "pf"}

    make("part-a", "partition")
    api.wait_pod_unschedulable(namespace, "part-a")
    assert check_invariant() == {"gpu-0": "pf"}

    # Free the PF: the partition pod becomes schedulable.
    api.delete("v1", "Pod", "pf", namespace, grace_period=0)
    api.delete(RES, "ResourceClaim", "pf", namespace)
    api.wait_for(lambda: api.get_or_none(RES, "ResourceClaim", "pf", namespace) is None,
                 timeout=45, what="claim pf to be deallocated and deleted")
    api.wait_pod_bound(namespace, "part-a")

    make("part-b", "partition")
    api.wait_pod_bound(namespace, "part-b")
    devs = check_invariant()
    assert sorted(devs) == ["gpu-0-p0", "gpu-0-p1"], devs

    make("pf-again", "pf")
    api.wait_pod_unschedulable(namespace, "pf-again")
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:   # and it stays that way
        check_invariant()
        time.sleep(0.5)
    assert not api.get(RES, "ResourceClaim", "pf-again", namespace)["status"].get("allocation")


def test_resource_claim_template_through_controller_manager(cluster, api, namespace,
                                                            cluster_objects):
    driver = driver_for(namespace)
    (node,) = cluster.create_nodes(1, prefix=f"{namespace}-n")
    cluster_objects(slice_(f"{node}-accel", driver, node, node,
                           devices=[{"name": "accel-0"}]))
    cls = f"{namespace}-accel"
    cluster_objects(device_class(cls, driver))
    api.create({"apiVersion": RES, "kind": "ResourceClaimTemplate",
                "metadata": {"name": "one-accel"},
                "spec": {"spec": {"devices": {"requests": [request("gpu", cls)]}}}}, namespace)
    created = api.create(pod("templated", template="one-accel"), namespace)

    p = api.wait_get("v1", "Pod", "templated", namespace,
                     lambda p: p.get("status", {}).get("resourceClaimStatuses"),
                     what="kube-controller-manager to create the pod's ResourceClaim")
    (st,) = p["status"]["resourceClaimStatuses"]
    assert st["name"] == "accel"
    generated = st["resourceClaimName"]
    c = api.get(RES, "ResourceClaim", generated, namespace)
    (owner,) = c["metadata"]["ownerReferences"]
    assert owner["kind"] == "Pod" and owner["uid"] == created["metadata"]["uid"]
    assert owner.get("controller") is True

    assert api.wait_pod_bound(namespace, "templated")["spec"]["nodeName"] == node
    c = api.wait_get(RES, "ResourceClaim", generated, namespace,
                     lambda c: c.get("status", {}).get("reservedFor"))
    (result,) = c["status"]["allocation"]["devices"]["results"]
    assert (result["driver"], result["pool"], result["device"]) == (driver, node, "accel-0")

    # Deleting the pod lets the claim controller release it and the GC delete it.
    api.delete("v1", "Pod", "templated", namespace, grace_period=0)
    api.wait_for(lambda: api.get_or_none(RES, "ResourceClaim", generated, namespace) is None,
                 timeout=60, what=f"generated claim {generated} to be garbage-collected")

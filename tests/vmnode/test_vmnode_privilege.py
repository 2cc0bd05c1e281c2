"""Issue 17 on the guest node (`make e2e-node`): what the node agent can write next to the REAL
module, with the chart's default securityContext.

The guest node (tools/vmnode) imports its images as one archive, loads the module the way KMM's
worker does (the slice's loader: the chart's parameters, `status_gid` included), installs the
chart with its default securityContext (uid 65532, the `status_gid` group as a supplemental
group, no capability) and serves the module's devices. A pod of the static passphrase helper
with a claim gets its device from the agent (prepare: CDI, the ALLOCATED bit through `status`)
and calls the ioctl. Then `kubectl exec` runs the shared probe (tests/harness/privilege.py) in
the agent's container: the node's PCI `config`/`remove`/`reset`/`driver_override` files (under
the agent's writable /host/sys/devices mount: refused by owner and mode), the container's own
/sys, another driver's socket directory and another vendor's CDI spec (made on the node first by
a root pod), and the real device's `inject_fault`, `sriov_numvfs`, `load_wordlist` (root's,
0200) are refused; its `status` is writable (the group). Report:
artifacts/vmnode/privilege.json. Skipped unless MOCK_ACCEL_VMNODE_TEST=1, as the other guest
node tests.
"""
from __future__ import annotations

import json
import os
import time

import pytest

from mock_accel.firmware import parse_wordlist, passphrase_word_counts
from tests.harness.nodepods import loader_pod
from tests.harness.privilege import REFUSED, probe_command
from tools import locate

pytestmark = [pytest.mark.vmnode, pytest.mark.skipif(
    os.environ.get("MOCK_ACCEL_VMNODE_TEST") != "1",
    reason="boots the guest node: `make e2e-node` runs it (MOCK_ACCEL_VMNODE_TEST=1)")]
TAG = os.environ.get("MOCK_ACCEL_VMNODE_TAG", "vmnode")
NS, DRIVER = "mock-device", "mock-accel.example.com"
OTHER = "/var/lib/kubelet/plugins/other.example.com"
OTHER_REG = "/var/lib/kubelet/plugins_registry/other.example.com-reg.sock"
OTHER_SPEC = "/var/run/cdi/other.example.com-claim.json"
AGENT_UID, STATUS_GID = 65532, 64321  # chart/values.yaml


def _pod(name: str, image: str, command: list[str], **spec) -> dict:
    container = {"name": "main", "image": image, "command": command, **spec.pop("container", {})}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"restartPolicy": "Never", "containers": [container], **spec}}


def other_driver_pod(node, busybox: str) -> dict:
    """A root pod that makes another driver's socket directory and another vendor's CDI spec
    (the kubelet's and the CDI directories mounted one by one: on the guest node /var/run is a
    link to /run, which a hostPath of /var would not follow)."""
    kubelet = "/var/lib/kubelet"
    script = (f"mkdir -p /kubelet{OTHER.removeprefix(kubelet)} && "
              f"touch /kubelet{OTHER.removeprefix(kubelet)}/dummy.sock && "
              f"echo '{{}}' > /cdi/{OTHER_SPEC.rsplit('/', 1)[1]}")
    return _pod("other-driver", busybox, ["sh", "-c", script], nodeName=node.name,
                container={"securityContext": {"runAsUser": 0},
                           "volumeMounts": [{"name": "kubelet", "mountPath": "/kubelet"},
                                            {"name": "cdi", "mountPath": "/cdi"}]},
                volumes=[{"name": "kubelet", "hostPath": {"path": kubelet, "type": "Directory"}},
                         {"name": "cdi", "hostPath": {"path": "/var/run/cdi",
                                                      "type": "DirectoryOrCreate"}}])


def claim_helper_pod(image: str) -> dict:
    """A pod with a claim for one PF: the helper prints MOCK_ACCEL_UUID and the passphrase of
    the device the agent prepared (uid 0: /dev/mockN is root's 0600)."""
    return _pod("pf-helper", image, ["/passphrase"],
                resourceClaims=[{"name": "pf", "resourceClaimName": "one-pf"}],
                container={"resources": {"claims": [{"name": "pf"}]},
                           "securityContext": {"runAsUser": 0}})


def _agent_pod(node) -> str | None:
    pods = node.cluster.api.list("v1", "Pod", NS)
    ready = [p["metadata"]["name"] for p in pods
             if p["metadata"]["labels"].get("app") == "mock-accel-node-agent"
             and any(c.get("ready") for c in p.get("status", {}).get("containerStatuses", []))]
    return ready[0] if ready else None


def test_node_agent_on_the_real_module_cannot_write_beyond_status() -> None:
    from mock_accel.wait import wait_until
    from tools.vm.kernel import find_kernel
    from tools.vmnode import checks
    from tools.vmnode.images import publish_images, save_images
    from tools.vmnode.node import VmNode

    t0 = time.monotonic()
    measure: dict = {"tag": TAG, "load_before": os.getloadavg()}
    refs, local = publish_images(TAG, find_kernel().version, push=())  # imported only
    archive = save_images(refs, local,
                          ("pause", "busybox", "passphrase", "module-busybox", "driver"))
    out_dir = locate.artifacts() / "vmnode"
    out_dir.mkdir(parents=True, exist_ok=True)
    report: dict = {}
    try:
        with VmNode(refs["pause"], imports=[archive]) as node:
            measure.update({k: round(v, 1) for k, v in node.timings.items()})
            measure["node_log_dir"] = str(node.run_dir)
            measure["archive_mib"] = round(archive.stat().st_size / 2**20, 1)
            measure["import_seconds"] = node.wait_imported([archive], 1800)[str(archive)]
            measure["module_load_seconds"] = round(
                checks.run_pod(node, loader_pod(node, refs["module-busybox"])), 1)
            measure.update(checks.install_chart(node, refs["driver"]))
            api = node.cluster.api
            api.create({"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
                        "metadata": {"name": "one-pf", "namespace": "default"},
                        "spec": {"devices": {"requests": [{"name": "pf", "exactly": {
                            "deviceClassName": "mock-accel-pf"}}]}}})
            t = time.monotonic()
            api.create(claim_helper_pod(refs["passphrase"]))
            # the claim's allocation, read while its pod holds it: the helper exits at once
            # and the claim is released when its pod has ended
            result = wait_until(lambda: (api.get(
                "resource.k8s.io/v1", "ResourceClaim", "one-pf", "default").get("status", {})
                .get("allocation") or {}).get("devices", {}).get("results", [None])[0],
                600, "the claim's allocation", 0.5)
            phase = wait_until(lambda: api.get("v1", "Pod", "pf-helper", "default").get(
                "status", {}).get("phase") in ("Succeeded", "Failed") and api.get(
                "v1", "Pod", "pf-helper", "default")["status"]["phase"], 900,
                "the pf-helper pod to end", 2)
            measure["claim_pod_seconds"] = round(time.monotonic() - t, 1)
            said = checks.logs(node, "pf-helper", "default")
            assert phase == "Succeeded", said
            slice_uuid = next(d["attributes"]["uuid"]["string"]
                              for s in api.list("resource.k8s.io/v1", "ResourceSlice")
                              if s["spec"]["pool"]["name"] == result["pool"]
                              for d in s["spec"].get("devices", [])
                              if d["name"] == result["device"])
            report["claim"] = {"device": result["device"], "slice_uuid": slice_uuid,
                               "output": said.strip()}
            checks.run_pod(node, other_driver_pod(node, refs["busybox"]))
            agent = wait_until(lambda: _agent_pod(node), 600, "a Ready node agent", 3)
            t = time.monotonic()
            probe = node.cluster.kubectl("exec", "-n", NS, agent, "-c", "node-agent", "--",
                                         *probe_command(OTHER, OTHER_REG, OTHER_SPEC),
                                         timeout=300, check=False)
            report["probe_stderr"] = probe.stderr[-3000:]
            assert probe.returncode == 0, f"the probe failed: {probe.stderr[-3000:]}"
            report["probe"] = json.loads(probe.stdout)
            measure["probe_seconds"] = round(time.monotonic() - t, 1)
    finally:
        measure["total_seconds"] = round(time.monotonic() - t0, 1)
        measure["load_after"] = os.getloadavg()
        report["measure"] = measure
        (out_dir / "privilege.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    # the agent prepared the claim: the container got the slice's device and read its passphrase
    claim = report["claim"]
    assert f"MOCK_ACCEL_UUID={claim['slice_uuid']}\n" in claim["output"] + "\n", claim
    phrase = claim["output"].rpartition("passphrase: ")[2].strip()
    words = set(parse_wordlist(locate.wordlist().read_bytes()))
    assert 6 in passphrase_word_counts(phrase, words), claim
    out = report["probe"]
    # not root, no capability, the status group
    ids = out["agent"]
    assert ids["Uid"] == [str(AGENT_UID)] * 4 and str(STATUS_GID) in ids["Groups"], ids
    assert int(ids["CapEff"][0], 16) == 0, ids
    # the node's PCI files, through the agent's writable /host/sys/devices: owner and mode
    assert out["host_sysfs"], "no PCI device files under /host/sys/devices"
    assert any(p.endswith("/config") for p in out["host_sysfs"]), out["host_sysfs"]
    assert set(out["host_sysfs"].values()) <= {"EACCES", "EPERM"}, out["host_sysfs"]
    # the container's own /sys: read-only
    sysfs = {p: r for p, r in out["files"].items() if p.startswith("/sys/")}
    assert sysfs and set(sysfs.values()) <= set(REFUSED), sysfs
    # another driver's socket directory, plugins_registry beside ours: not even there
    assert set(out["dirs"].values()) <= set(REFUSED), out["dirs"]
    assert out["files"][f"{OTHER}/dummy.sock"] in REFUSED, out["files"]
    assert out["files"][OTHER_REG] in REFUSED, out["files"]
    assert out["registry_listing"] == [DRIVER], out["registry_listing"]
    # another vendor's CDI spec: neither written nor removed
    assert out["cdi"] == {"create": "writable", "write other": "EACCES",
                          "remove other": "EPERM"}, out["cdi"]
    # the real device: status (the group's), nothing else
    dev = out["device"]
    assert dev["status"] == "writable", dev
    assert {a: dev[a] for a in ("inject_fault", "sriov_numvfs", "load_wordlist")} == \
        dict.fromkeys(("inject_fault", "sriov_numvfs", "load_wordlist"), "EACCES"), dev

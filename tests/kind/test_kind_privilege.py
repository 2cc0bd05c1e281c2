"""What the node agent can write on a real kind node, with the chart's default securityContext
(issue 17 items 1, 2 and 3: the proof under containerd and runc, not in the VM as root).

On the session cluster (tests/kind/conftest.py) with the chart installed in simulation mode (by
test_kind_chart.py, or here when this file runs alone), `kubectl exec` into each worker's node
agent runs the probe of tests/harness/privilege.py (python, the image has no shell), shared
with the guest node's test: it opens files for writing and never writes a byte, so a probe that
unexpectedly succeeds changes nothing. It shows that the agent cannot write into another
driver's socket directory (a dummy `/var/lib/kubelet/plugins/other.example.com/` made on the
node first) or next to other plugins' registration sockets, nor a PCI `config` file or another
root-owned sysfs file of the node; and it reports what the agent can still write, asserted
against the chart's list: the simulated device tree (by design: plain files, `inject_fault`
included), its own two kubelet directories, /var/run/cdi and its /tmp. The agent runs as uid
65532 with the module's `status_gid` as its group (item 1), owns the tree and its kubelet
directories (the `node-dirs` init container), and adds files to /var/run/cdi through an ACL
entry but cannot write, replace or remove another vendor's spec there (a dummy one made on the
node first; the directory keeps its owner). The report lands in artifacts/kind/privilege.json.
And why `node-dirs` exists: a pod's `fsGroup` does not reach a hostPath (a busybox pod as 65532
cannot write one).
"""
from __future__ import annotations

import json
import os
import time

import pytest

from mock_accel.wait import wait_until
from tests.harness.privilege import probe_command
from tests.kind.conftest import ARTIFACTS, MEASURE, run
from tools.locate import REPO

pytestmark = [pytest.mark.kind, pytest.mark.skipif(
    os.environ.get("MOCK_ACCEL_KIND_TEST") != "1",
    reason="needs the kind cluster: `make test-kind` runs it (MOCK_ACCEL_KIND_TEST=1)")]
NS = "mock-device"
DRIVER = "mock-accel.example.com"
OTHER = "/var/lib/kubelet/plugins/other.example.com"
OTHER_REG = "/var/lib/kubelet/plugins_registry/other.example.com-reg.sock"
OTHER_SPEC = "/var/run/cdi/other.example.com-claim.json"  # another vendor's CDI spec
AGENT_UID, STATUS_GID = 65532, 64321  # chart/values.yaml


def _pods(c, app: str) -> dict[str, str] | None:
    """node -> name of the chart's Running and Ready `app` pod, once every device node has one."""
    pods = json.loads(c.kubectl_run("get", "pods", "-n", NS, "-l", f"app={app}",
                                    "-o", "json").stdout)["items"]
    ready = {p["spec"]["nodeName"]: p["metadata"]["name"] for p in pods
             if p["status"].get("phase") == "Running" and p["metadata"].get(
                 "deletionTimestamp") is None
             and all(s["ready"] for s in p["status"].get("containerStatuses", [{"ready": 0}]))}
    return ready if set(ready) == set(c.device_nodes()) else None


@pytest.fixture(scope="module")
def agents(kind):
    """The chart in simulation mode (installed here unless test_kind_chart.py did) and each
    device node's Ready node agent pod."""
    if kind.run(kind.helm, "status", "mock-device", "--kubeconfig", str(kind.kubeconfig),
                check=False, timeout=60).returncode:
        run(kind.helm, "install", "mock-device", str(REPO / "chart"), "--kubeconfig",
            str(kind.kubeconfig), "--set", "simulation.enabled=true", timeout=300)
    return wait_until(lambda: _pods(kind, "mock-accel-node-agent"), timeout=300, interval=2,
                      what="a Ready node agent on every device node")


def test_node_agent_cannot_write_other_drivers_sockets_or_node_sysfs(kind, agents):
    report, t0 = {}, time.monotonic()
    for node, pod in sorted(agents.items()):
        # another driver's socket directory with a file in it, made on the node itself
        run("docker", "exec", node, "sh", "-c", f"mkdir -p {OTHER} && touch {OTHER}/dummy.sock"
            f" && echo '{{}}' > {OTHER_SPEC}")
        out = json.loads(kind.kubectl_run(
            "exec", "-n", NS, pod, "-c", "node-agent", "--",
            *probe_command(OTHER, OTHER_REG, OTHER_SPEC), timeout=120).stdout)
        report[node] = out
        # not another driver's directory, nor the kubelet's plugins dir, nor plugins_registry
        # beside our own directory in it: they are not even in the container
        assert set(out["dirs"].values()) <= {"ENOENT", "EROFS", "EACCES"}, out["dirs"]
        assert out["files"][f"{OTHER}/dummy.sock"] in ("ENOENT", "EROFS", "EACCES"), out
        assert out["files"][OTHER_REG] in ("ENOENT", "EROFS", "EACCES"), out
        assert out["registry_listing"] == [DRIVER], out["registry_listing"]
        assert run("docker", "exec", node, "ls", "-A", OTHER).stdout.split() == ["dummy.sock"]
        # the node's own sysfs: the runtime mounts it read-only in an unprivileged container
        sysfs = {p: r for p, r in out["files"].items() if p.startswith("/sys/")}
        assert sysfs and all(r in ("EROFS", "EACCES", "EPERM") for r in sysfs.values()), sysfs
        # the simulated tree holds no host device
        assert out["host_pci_in_tree"] == [], out["host_pci_in_tree"]
        # what it can still write, by design: the simulated tree (plain files: prepare sets
        # `status`; nothing stops a write to `inject_fault` there), its own kubelet
        # directories, the CDI specs and /tmp
        assert set(out["still"].values()) == {"writable"}, out["still"]
        ours = {m.replace("/run/cdi", "/var/run/cdi") if m == "/run/cdi" else m
                for m in out["rw_mounts"] if m.startswith(("/host", "/var/", "/run/cdi"))}
        assert ours == {"/host/sys/devices", "/host/dev", f"/var/lib/kubelet/plugins/{DRIVER}",
                        f"/var/lib/kubelet/plugins_registry/{DRIVER}", "/var/run/cdi"}, ours
        assert "/tmp" in out["rw_mounts"]
        # item 1: not root, no capability, the status group; the tree and its kubelet
        # directories are its own
        agent = out["agent"]
        assert agent["Uid"] == [str(AGENT_UID)] * 4 and agent["Gid"] == [str(AGENT_UID)] * 4
        assert str(STATUS_GID) in agent["Groups"] and int(agent["CapEff"][0], 16) == 0, agent
        owners = run("docker", "exec", node, "stat", "-c", "%u %n",
                     "/var/lib/mock-accel/sim/sys/devices", f"/var/lib/kubelet/plugins/{DRIVER}",
                     f"/var/lib/kubelet/plugins_registry/{DRIVER}").stdout.split("\n")
        assert [o.split()[0] for o in owners if o] == [str(AGENT_UID)] * 3, owners
        # /var/run/cdi: its specs go in, another vendor's stays; the directory stays root's
        assert out["cdi"] == {"create": "writable", "write other": "EACCES",
                              "remove other": "EPERM"}, out["cdi"]
        # root's still; the sticky bit; the group bits show the ACL's mask (the agent's rwx)
        assert run("docker", "exec", node, "stat", "-c", "%u %a",
                   "/var/run/cdi").stdout.split() == ["0", "1775"]
        assert run("docker", "exec", node, "cat", OTHER_SPEC).stdout == "{}\n"
        run("docker", "exec", node, "rm", OTHER_SPEC)  # not a spec the runtime should meet
    MEASURE["privilege_probes_seconds"] = round(time.monotonic() - t0, 1)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "privilege.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


def _phase(c, name: str) -> str | None:
    phase = c.kubectl_run("get", "pod", name, "-o", "jsonpath={.status.phase}").stdout
    return phase if phase in ("Succeeded", "Failed") else None


def test_fs_group_does_not_reach_a_host_path(kind):
    """Why the chart has `node-dirs`: the kubelet makes a `DirectoryOrCreate` hostPath root's
    and ignores the pod's `fsGroup` for it, so a non-root container cannot write there."""
    node, path = kind.device_nodes()[0], "/var/lib/mock-accel-fsgroup-check"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "fsgroup-hostpath"},
           "spec": {"restartPolicy": "Never", "nodeName": node,
                    "securityContext": {"runAsUser": AGENT_UID, "runAsGroup": AGENT_UID,
                                        "fsGroup": AGENT_UID},
                    "volumes": [{"name": "dir", "hostPath": {"path": path,
                                                             "type": "DirectoryOrCreate"}}],
                    "containers": [{
                        "name": "probe", "image": "busybox:latest",
                        "command": ["sh", "-c", "stat -c '%u %g %a' /dir; "
                                    "touch /dir/x 2>/dev/null && echo writable || echo refused"],
                        "volumeMounts": [{"name": "dir", "mountPath": "/dir"}]}]}}
    kind.kubectl_run("apply", "-f", "-", input=json.dumps(pod))
    assert wait_until(lambda: _phase(kind, "fsgroup-hostpath"), timeout=180, interval=2,
                      what="pod fsgroup-hostpath to finish") == "Succeeded"
    out = kind.kubectl_run("logs", "fsgroup-hostpath").stdout.split("\n")
    assert out[:2] == ["0 0 755", "refused"], out
    run("docker", "exec", node, "rmdir", path)

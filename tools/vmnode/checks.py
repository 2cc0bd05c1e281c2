"""What `python -m tools.vmnode check` proves on the guest node, one function per step.

Each step creates its objects through the API as admin, waits with `wait_until`, and returns
what it saw (printed and recorded in `measure.json` by __main__). Pods are pinned to the node
(`nodeName`) except the claim's, which the scheduler places (the only node with devices).
"""
from __future__ import annotations

import time
from pathlib import Path

import yaml

from mock_accel.firmware import parse_wordlist, passphrase_word_counts
from mock_accel.wait import WaitTimeout, wait_until
from tools import locate

from .node import VmNode

CHART = Path(__file__).resolve().parents[2] / "chart"
DRIVER = "mock-accel.example.com"


class CheckError(AssertionError):
    """A check failed (the message says what was expected and what was seen)."""


def _pod(name: str, ns: str, image: str, script: str, **spec) -> dict:
    container = {"name": "main", "image": image, "command": ["sh", "-c", script],
                 **spec.pop("container", {})}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"restartPolicy": "Never", "containers": [container], **spec}}


def run_pod(node: VmNode, pod: dict, phase: str = "Succeeded", timeout: float = 900) -> float:
    """Create `pod`, wait until it reaches `phase` (Failed stops the wait); seconds taken."""
    api, meta = node.cluster.api, pod["metadata"]
    t0 = time.monotonic()
    api.create(pod)

    def reached():
        got = api.get("v1", "Pod", meta["name"], meta["namespace"]).get("status", {})
        if phase == "Running" and any(c.get("ready") for c in got.get("containerStatuses", [])):
            return "Running"
        return got.get("phase") if got.get("phase") in (phase, "Failed") else None
    try:
        got = wait_until(reached, timeout, f"pod {meta['name']} {phase}", 2)
    except WaitTimeout:
        raise CheckError(f"pod {meta['name']} not {phase} after {timeout:.0f}s: "
                         f"{events(node, meta['name'], meta['namespace'])}") from None
    if got != phase:
        raise CheckError(f"pod {meta['name']} {got}: {logs(node, meta['name'], meta['namespace'])}")
    return time.monotonic() - t0


def logs(node: VmNode, name: str, ns: str) -> str:
    return node.cluster.kubectl("logs", "-n", ns, name, check=False).stdout


def events(node: VmNode, name: str, ns: str) -> str:
    r = node.cluster.kubectl("get", "events", "-n", ns, "--field-selector",
                             f"involvedObject.name={name}", check=False)
    return "\n".join(r.stdout.splitlines()[-5:])


class NodeShell:
    """Commands on the node itself, for what a test reads there (/proc/modules, the kernel log,
    /var/run/cdi, the kubelet's plugin directory): `kubectl exec` into a privileged busybox pod
    in the host's PID namespace, the command chrooted into the kubelet's root
    (`/proc/<kubelet>/root`: the node's root, its own shell and tools); the pod's image only
    needs sh, pidof and chroot."""

    ENTER = 'exec chroot "/proc/$(pidof kubelet)/root" "$@"'

    def __init__(self, node: VmNode, busybox: str, name: str = "node-shell"):
        self.node, self.name = node, name
        pod = _pod(name, "kube-system", busybox, "exec sleep 86400", nodeName=node.name,
                   hostPID=True, container={"securityContext": {"privileged": True}})
        run_pod(node, pod, "Running")

    def prefix(self, kubectl: str) -> list[str]:
        """The command prefix that runs a command on the node (`kubectl` with its kubeconfig)."""
        return [kubectl, f"--kubeconfig={self.node.cluster.kubeconfig}", "exec", "-n",
                "kube-system", self.name, "--", "sh", "-c", self.ENTER, self.name]

    def __call__(self, script: str, timeout: float = 120) -> str:
        """`sh -c script` on the node; CheckError with its stderr if it fails."""
        r = self.node.cluster.kubectl("exec", "-n", "kube-system", self.name, "--", "sh", "-c",
                                      self.ENTER, self.name, "sh", "-c", script, check=False,
                                      timeout=timeout)
        if r.returncode:
            raise CheckError(f"on the node: {script[:80]!r}: exit {r.returncode}: "
                             f"{r.stderr.strip()[-300:]}")
        return r.stdout

    def module_line(self) -> str:
        """mock_accel's line of /proc/modules ('' when it is not loaded)."""
        return next((line for line in self("cat /proc/modules").splitlines()
                     if line.startswith("mock_accel ")), "")

    def firmware_lines(self) -> list[str]:
        """The kernel log's lines about the wordlist firmware (kmod/firmware.c)."""
        return [line for line in self("dmesg").splitlines()
                if "words from firmware" in line or "wordlist firmware" in line]


def check_exec(node: VmNode, busybox: str) -> dict:
    """A busybox pod Running on the node; `kubectl exec` (API server → proxy → hostfwd →
    kubelet) runs a command in it; the `kubernetes` Service answers TCP from the pod."""
    pod = _pod("exec-probe", "default", busybox, "exec sleep 3600", nodeName=node.name)
    start = run_pod(node, pod, "Running")
    t0 = time.monotonic()
    out = node.cluster.kubectl("exec", "exec-probe", "--", "sh", "-c",
                               "uname -r; nc -w 10 $KUBERNETES_SERVICE_HOST "
                               "$KUBERNETES_SERVICE_PORT < /dev/null && echo service-reachable",
                               timeout=120).stdout
    if "service-reachable" not in out:
        raise CheckError(f"exec ran but the kubernetes Service did not answer: {out!r}")
    return {"pod_start_seconds": round(start, 1), "exec_seconds": round(time.monotonic() - t0, 1),
            "exec_output": out.strip()}


def check_in_cluster(node: VmNode, driver: str) -> dict:
    """A pod lists Services with its ServiceAccount through the in-cluster config
    (`KubeClient.in_cluster()`: the Service's IP, the token, the CA)."""
    api = node.cluster.api
    api.create({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "lister", "namespace": "default"}})
    api.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": "vmnode-lister"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                            "name": "view"},
                "subjects": [{"kind": "ServiceAccount", "name": "lister",
                              "namespace": "default"}]})
    script = ("python3 -c \"from mock_accel.kube import KubeClient; c = KubeClient.in_cluster();"
              " print('in-cluster', c.server, [s['metadata']['name'] for s in "
              "c.list('v1', 'Service', 'default')])\"")
    seconds = run_pod(node, _pod("in-cluster", "default", driver, script, nodeName=node.name,
                                 serviceAccountName="lister"))
    out = logs(node, "in-cluster", "default")
    if "'kubernetes'" not in out:
        raise CheckError(f"the in-cluster pod did not list the kubernetes Service: {out!r}")
    return {"in_cluster_seconds": round(seconds, 1), "in_cluster_output": out.strip()}


def module_parameters() -> str:
    """The chart's kernelModule.parameters as modprobe arguments (what KMM would pass)."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())["kernelModule"]["parameters"]
    return " ".join(f"{k}={v}" for k, v in values.items() if v is not None)


# What KMM's worker does for a Module with firmwarePath (its pod runs the module image,
# privileged): the image's /opt/lib/modules/<kernel> is the module tree for `modprobe -d /opt`,
# the firmware goes to the node's /var/lib/firmware and the kernel's firmware search path is
# set to it. The kernel resolves that path from init's root (the initramfs), whose
# /var/lib/firmware node.sh binds into the node: the same path on both sides, as on a real node.
LOADER = """set -e
kver=$(uname -r)
test -f /opt/lib/modules/$kver/mock-accel.ko
cp /firmware/* /node-firmware/
printf /var/lib/firmware > /sys/module/firmware_class/parameters/path
modprobe -d /opt mock-accel {params}
grep '^mock_accel ' /proc/modules
echo devices: $(ls /sys/class/mock-accel)
dmesg | grep 'words from firmware' | tail -1
"""


def load_module(node: VmNode, module: str) -> dict:
    """The module image pulled on the node and loaded the way KMM's worker does (KMM not run)."""
    pod = _pod("kmm-worker-mock-accel", "kube-system", module,
               LOADER.format(params=module_parameters()), nodeName=node.name,
               container={"securityContext": {"privileged": True},
                          "volumeMounts": [{"name": "fw", "mountPath": "/node-firmware"}]},
               volumes=[{"name": "fw", "hostPath": {"path": "/var/lib/firmware",
                                                    "type": "DirectoryOrCreate"}}])
    seconds = run_pod(node, pod)
    out = logs(node, "kmm-worker-mock-accel", "kube-system")
    if "words from firmware" not in out or "mock_accel " not in out:
        raise CheckError(f"module or firmware not loaded: {out!r}")
    return {"module_load_seconds": round(seconds, 1), "module_output": out.strip(),
            "kmm": "KMM not run: the module image was loaded the way KMM's worker does"}


# Python starts in tens of seconds under TCG: with the chart's default probes (5 s timeouts,
# no initial delay) the kubelet killed both agents before they served (the first run).
TCG_PROBES = {"livenessProbe": {"initialDelaySeconds": 600, "timeoutSeconds": 30},
              "readinessProbe": {"timeoutSeconds": 30}}


def merge(base: dict, over: dict) -> dict:
    """`over` on top of `base`, maps merged key by key (as helm merges values files)."""
    out = dict(base)
    for key, value in over.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(
            out.get(key), dict) else value
    return out


def chart_values(driver: str, values: dict | None = None) -> dict:
    """The chart's values on the guest node: the driver image, TCG's probes, the module's real
    devices (no simulation), no KMM Module (the module is loaded beforehand) unless `values`
    (merged on top) says otherwise."""
    repo, tag = driver.rsplit(":", 1)
    agent = {"image": {"repository": repo, "tag": tag}, **TCG_PROBES}
    base = {"simulation": {"enabled": False}, "kernelModule": {"enabled": False},
            "draDriver": {"controller": agent, "nodeAgent": agent}}
    return merge(base, values or {})


def install_chart(node: VmNode, driver: str, values: dict | None = None,
                  namespace: str = "default", timeout: float = 900) -> dict:
    """`helm install` of the chart with chart_values(driver, values) (a values file in the
    cluster's directory), the release in `namespace`; wait for the node's slices."""
    t0 = time.monotonic()
    path = node.cluster.tmp / "chart-values.yaml"
    path.write_text(yaml.safe_dump(chart_values(driver, values), sort_keys=False))
    node.cluster.helm("install", "mock-device", str(CHART), "--namespace", namespace,
                      "--values", str(path))

    def slices():
        found = [s for s in node.cluster.api.list("resource.k8s.io/v1", "ResourceSlice")
                 if s["spec"].get("nodeName") == node.name and s["spec"]["driver"] == DRIVER]
        return found or None
    try:
        found = wait_until(slices, timeout, f"ResourceSlices of {node.name}", 3)
    except WaitTimeout:
        pods = node.cluster.kubectl("get", "pods", "-A", "-o", "wide", check=False).stdout
        raise CheckError(f"no ResourceSlice of {node.name} after {timeout:.0f}s:\n{pods}") \
            from None
    devices = {d["name"]: d for s in found for d in s["spec"].get("devices", [])}
    return {"helm_install_to_slices_seconds": round(time.monotonic() - t0, 1),
            "devices": sorted(devices)}


CLAIM_SCRIPT = """echo MOCK_ACCEL_UUID=$MOCK_ACCEL_UUID
echo MOCK_ACCEL_DEVICE_PATH=$MOCK_ACCEL_DEVICE_PATH
ls -l $MOCK_ACCEL_DEVICE_PATH
python3 -c "import os; from mock_accel.uapi import DeviceFile; \
print('passphrase:', DeviceFile(os.environ['MOCK_ACCEL_DEVICE_PATH']).passphrase(6))"
exec sleep 3600
"""


def claim_pod(node: VmNode, driver: str) -> dict:
    """A pod with a claim for one PF (the chart's DeviceClass), written as users write it:
    it prints MOCK_ACCEL_UUID and calls the PASSPHRASE ioctl on its /dev/mockN."""
    api, ns = node.cluster.api, "default"
    api.create({"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
                "metadata": {"name": "one-pf", "namespace": ns},
                "spec": {"devices": {"requests": [{"name": "pf", "exactly": {
                    "deviceClassName": "mock-accel-pf"}}]}}})
    pod = _pod("pf-user", ns, driver, CLAIM_SCRIPT,
               resourceClaims=[{"name": "pf", "resourceClaimName": "one-pf"}],
               container={"resources": {"claims": [{"name": "pf"}]},
                          "securityContext": {"runAsUser": 0}})
    seconds = run_pod(node, pod, "Running")
    # the claim stays allocated while its pod runs (it is released once the pod ends)
    out = wait_until(lambda: "passphrase: " in (text := logs(node, "pf-user", ns)) and text,
                     600, "the pf-user pod's passphrase", 3)
    env = dict(line.split("=", 1) for line in out.splitlines() if line.startswith("MOCK_ACCEL"))
    phrase = next((line.split(": ", 1)[1] for line in out.splitlines()
                   if line.startswith("passphrase: ")), "")
    result = api.get("resource.k8s.io/v1", "ResourceClaim", "one-pf", ns)["status"][
        "allocation"]["devices"]["results"][0]
    slice_uuid = next(d["attributes"]["uuid"]["string"]
                      for s in api.list("resource.k8s.io/v1", "ResourceSlice")
                      if s["spec"]["pool"]["name"] == result["pool"]
                      for d in s["spec"].get("devices", []) if d["name"] == result["device"])
    # EFF words may contain the separator (yo-yo): count words with the list, not split("-")
    words = set(parse_wordlist(locate.wordlist().read_bytes()))
    if env.get("MOCK_ACCEL_UUID") != slice_uuid or 6 not in passphrase_word_counts(phrase, words):
        raise CheckError(f"slice uuid {slice_uuid}, container said: {out!r}")
    api.delete("v1", "Pod", "pf-user", ns)
    return {"claim_pod_seconds": round(seconds, 1), "claim_device": result["device"],
            "slice_uuid": slice_uuid, "claim_output": out.strip(), "passphrase": phrase}

"""The seed system's Go driver (github.com/fabiendupont/mock-device, `dra-driver/`), built from a
checkout by `tests.bench.peers`, run as local processes on a simulated node of ours.

Its paths are fixed in its code: sysfs at `/sys/class/mock-accel`, CDI specs in `/var/run/cdi`,
the kubelet's registry at `/var/lib/kubelet/plugins_registry`, and the API server from inside a
pod (`rest.InClusterConfig`: `$KUBERNETES_SERVICE_HOST`, the service account's token and CA
under `/var/run/secrets/kubernetes.io/serviceaccount`). Each process therefore runs in a mount
namespace of its own (`unshare -m`, root only) in which the simulated node's `sys/` is `/sys`,
and tmpfs over `/run` and `/var/lib` hold bind mounts of the benchmark's directories. Nothing
outside that namespace changes. Its service account (a token from the TokenRequest API) gets
the rules its chart gives its two service accounts. Its plugin socket directory is a flag, so
the kubelet emulator reaches it at the same path inside and out.

What its design cannot do here: unprepare (it frees nothing: no checkpoint), two nodes (its
pools are named after devices, so a second node's pools would collide), a driver name other
than `mock-accel.example.com` in its slices (the controller has it in its code).
"""
from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

from mock_accel.sim import SimConfig, SimNode
from tests.bench import common, peers

SEED_DRIVER = "mock-accel.example.com"     # fixed in its controller's code
SA_DIR = "/run/secrets/kubernetes.io/serviceaccount"
REGISTRY = "/var/lib/kubelet/plugins_registry"
NAMESPACE = "seed-system"
RULES = [  # its chart's two ClusterRoles together (charts/mock-device/templates/rbac.yaml)
    {"apiGroups": ["resource.k8s.io"], "resources": ["resourceslices"],
     "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
    {"apiGroups": ["resource.k8s.io"], "resources": ["resourceclaims", "resourceclaimstatuses"],
     "verbs": ["get", "list", "watch", "update", "patch"]},
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
]


def missing() -> str | None:
    """Why the seed cannot run here (one line), or None."""
    status = peers.seed_status()
    if not status["available"]:
        return status["detail"]
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return "the seed's fixed paths need a mount namespace: run as root with unshare(1)"
    return None


def service_account(api, name: str = "seed") -> str:
    """A token for the seed's service account, bound to its ClusterRole."""
    if api.get_or_none("v1", "Namespace", NAMESPACE) is None:
        api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    api.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}},
               NAMESPACE)
    rbac = "rbac.authorization.k8s.io/v1"
    api.create({"apiVersion": rbac, "kind": "ClusterRole", "metadata": {"name": name},
                "rules": RULES})
    api.create({"apiVersion": rbac, "kind": "ClusterRoleBinding", "metadata": {"name": name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                            "name": name},
                "subjects": [{"kind": "ServiceAccount", "name": name,
                              "namespace": NAMESPACE}]})
    answer = api.request("POST", f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{name}/token",
                         {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                          "spec": {"expirationSeconds": 86400}})
    return answer["status"]["token"]


def _script(sim: SimNode, base: Path, argv: list[str]) -> str:
    """The shell line that builds the seed's view of the node, then execs `argv`."""
    q = shlex.quote
    return " && ".join([
        f"mount --bind {q(str(sim.root / 'sys'))} /sys",
        "mount -t tmpfs -o mode=755 seed-run /run",
        f"mkdir -p /run/cdi {SA_DIR}",
        f"mount --bind {q(str(base / 'cdi'))} /run/cdi",
        f"mount --bind {q(str(base / 'sa'))} {SA_DIR}",
        "mount -t tmpfs -o mode=755 seed-varlib /var/lib",
        f"mkdir -p {REGISTRY}",
        f"mount --bind {q(str(base / 'registry'))} {REGISTRY}",
        "exec " + " ".join(map(q, argv))])


def start(cluster, api, node: str, work: Path, devices: int,
          token: str | None = None) -> tuple[list[common.Proc], SimNode, Path]:
    """The seed's controller and node agent for `node`: (processes, its node, registry dir)."""
    binary = peers.seed_status()["binary"]
    sim = SimNode.create(work / f"sys-{node}", SimConfig(num_devices=devices, total_vfs=0,
                                                         numa_nodes=2))
    base = work / node
    for sub in ("cdi", "sa", "registry", "plugins"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    (base / "sa" / "token").write_text(token or service_account(api))
    shutil.copy(cluster.pki.ca.cert, base / "sa" / "ca.crt")
    (base / "sa" / "namespace").write_text(NAMESPACE)
    host, port = cluster.server.removeprefix("https://").rsplit(":", 1)
    env = {"NODE_NAME": node, "KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port}
    procs = []
    for mode, extra in (("controller", []),
                        ("node-agent", [f"--plugin-socket={base / 'plugins'}"])):
        argv = [binary, f"--mode={mode}", "-v=1", *extra]
        procs.append(common.Proc(f"seed-{mode}-{node}", [
            "unshare", "--mount", "--propagation", "private", "sh", "-c",
            _script(sim, base, argv)], common.artifacts_dir() / "logs" /
            f"seed-{mode}-{node}.log", env=env))
    return procs, sim, base / "registry"

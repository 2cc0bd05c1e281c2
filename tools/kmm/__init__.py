"""Kernel Module Management, built from its source and run against a control plane.

The Go proxy refuses KMM's module, so it is built from a checkout (`$KMM_SRC`, or a clone of the
pinned release where the internet is reachable: tools/gosrc.py) with dependencies from the proxy.
What runs (see tools/kmm/README.md):

- `install(api, src)`: KMM's CRDs from the checkout's `config/crd/bases`, its namespace, and the
  operator's ServiceAccount with exactly KMM's own roles (`config/rbac/role.yaml`, the leader
  event recorder) — nothing wider — and a manager ConfigMap that binds its
  health and metrics endpoints to 127.0.0.1.
- `Operator`: KMM's manager as a host process with a token of that ServiceAccount (no webhooks:
  KMM's admission webhooks need cert-manager, which is not built here; KMM works without them,
  only its validation of Module objects is absent).
- `worker_image(bins)`: KMM's worker binary in a Debian image with `kmod` (the worker runs
  `modprobe`), the image KMM's manager gives its worker pods (`RELATED_IMAGE_WORKER`).
"""
from __future__ import annotations

from pathlib import Path

import yaml

from mock_accel.kube import KubeClient
from mock_accel.localnodes import pod_kubeconfig
from mock_accel.wait import wait_until
from tools.gosrc import GoSource

HERE = Path(__file__).resolve().parent
KMM = GoSource(name="kmm", module="github.com/kubernetes-sigs/kernel-module-management",
               env="KMM_SRC", url="https://github.com/kubernetes-sigs/kernel-module-management",
               ref="v2.6.0", binaries=(("manager", "./cmd/manager"), ("worker", "./cmd/worker")))
NAMESPACE = "kmm-operator-system"
PREFIX = "kmm-operator-"
SERVICE_ACCOUNT = PREFIX + "controller"
CONFIG_MAP = PREFIX + "manager-config"
FIELD_MANAGER = "mock-accel-kmm"


def crd_paths(src: Path) -> list[Path]:
    """KMM's CRDs as its checkout ships them (no conversion webhooks in the bases)."""
    paths = sorted((src / "config" / "crd" / "bases").glob("*.yaml"))
    if not paths:
        raise FileNotFoundError(f"{src}: no CRDs in config/crd/bases")
    return paths


def _load(path: Path) -> dict:
    return next(d for d in yaml.safe_load_all(path.read_text()) if d)


def rbac_objects(src: Path, namespace: str = NAMESPACE) -> list[dict]:
    """The operator's ServiceAccount and KMM's own roles from the checkout, bound to it (not its
    leader-election Role: one manager runs, outside the cluster, without leader election)."""
    rbac = src / "config"
    cluster_roles = [_load(rbac / "rbac" / "role.yaml"),
                     _load(rbac / "rbac-base" / "event_recorder_clusterrole.yaml")]
    sa = {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": namespace}
    out: list[dict] = [{"apiVersion": "v1", "kind": "ServiceAccount",
                        "metadata": {"name": SERVICE_ACCOUNT, "namespace": namespace}}]
    for cr in cluster_roles:
        name = PREFIX + cr["metadata"]["name"]
        out.append({**cr, "metadata": {"name": name}})
        out.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                    "metadata": {"name": name}, "subjects": [sa], "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": name}})
    return out


def manager_config(health_port: int, firmware_host_path: str = "/lib/firmware",
                   namespace: str = NAMESPACE) -> dict:
    """KMM's manager ConfigMap: health on 127.0.0.1:<port>, metrics off (its default binds
    0.0.0.0:8443), no leader election (outside a cluster controller-runtime cannot tell its
    namespace; one manager runs), the worker's firmware directory on the node."""
    config = {"healthProbeBindAddress": f"127.0.0.1:{health_port}",
              "metrics": {"bindAddress": "0", "enableAuthnAuthz": False, "secureServing": False},
              "leaderElection": {"enabled": False, "resourceID": "kmm.sigs.x-k8s.io"},
              "webhookPort": 0,
              "worker": {"runAsUser": 0, "seLinuxType": "spc_t",
                         "firmwareHostPath": firmware_host_path}}
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": CONFIG_MAP, "namespace": namespace},
            "data": {"controller_config.yaml": yaml.safe_dump(config, sort_keys=False)}}


def install(api: KubeClient, src: Path, health_port: int, namespace: str = NAMESPACE,
            firmware_host_path: str = "/lib/firmware") -> None:
    """KMM's CRDs, namespace, operator identity and manager config (server-side apply)."""
    objects = [_load(p) for p in crd_paths(src)]
    objects.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    objects += rbac_objects(src, namespace)
    objects.append(manager_config(health_port, firmware_host_path, namespace))
    for obj in objects:
        api.apply(obj, field_manager=FIELD_MANAGER)
    for crd in objects[:len(crd_paths(src))]:
        name = crd["metadata"]["name"]
        wait_until(lambda n=name: any(
            c["type"] == "Established" and c["status"] == "True" for c in
            api.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", n)
            .get("status", {}).get("conditions", [])), 60, f"CRD {name} established")


def operator_kubeconfig(api: KubeClient, admin_kubeconfig: str, path: Path,
                        namespace: str = NAMESPACE, seconds: int = 86400) -> Path:
    """A kubeconfig holding a token of the operator's ServiceAccount (TokenRequest)."""
    answer = api.create(f"/api/v1/namespaces/{namespace}/serviceaccounts/{SERVICE_ACCOUNT}/token",
                        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                         "spec": {"expirationSeconds": seconds}})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(pod_kubeconfig(admin_kubeconfig, SERVICE_ACCOUNT,
                                                  answer["status"]["token"])))
    path.chmod(0o600)
    return path

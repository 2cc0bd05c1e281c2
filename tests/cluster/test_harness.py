"""The control plane is the real thing: versions, authn/authz, admission, SA tokens, nodes."""

from __future__ import annotations

import base64
import json
import subprocess

import pytest
import requests

from mock_accel import kubebins
from mock_accel.kube import KubeClient, KubeError

pytestmark = pytest.mark.cluster


def test_binaries_are_version_stamped(cluster):
    want = kubebins.versions()["kubernetes"]
    out = subprocess.run([str(cluster.bins["kube-apiserver"]), "--version"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"Kubernetes {want}"
    assert cluster.api.request("GET", "/version")["gitVersion"] == want


def test_authentication_and_authorization_are_on(cluster, api):
    anon = requests.get(f"{cluster.server}/api/v1/namespaces", verify=str(cluster.pki.ca.cert),
                        timeout=10)
    assert anon.status_code == 401
    # An authenticated user without RBAC grants is forbidden.
    nobody = cluster.pki.issue("nobody", "nobody")
    with pytest.raises(KubeError) as e:
        KubeClient(cluster.server, ca_file=cluster.pki.ca.cert, cert_file=nobody.cert,
                   key_file=nobody.key).list("v1", "Pod")
    assert e.value.status == 403


def test_nodes_are_ready_and_use_node_identity(cluster, api):
    a, b = cluster.create_nodes(2, prefix="idcheck")
    for name in (a, b):
        node = api.get("v1", "Node", name)
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True"
        assert not node["spec"].get("taints")
        lease = api.get("coordination.k8s.io/v1", "Lease", name, "kube-node-lease")
        assert lease["spec"]["holderIdentity"] == name
    # Node authorizer + NodeRestriction: a node may not touch another node's status.
    with pytest.raises(KubeError) as e:
        cluster.nodes[a].api.patch("v1", "Node", b, {"metadata": {"labels": {"x": "y"}}},
                                   subresource="status")
    assert e.value.status == 403
    # ... and the node's kubeconfig works for clients such as a kubelet plugin.
    kubectl = str(cluster.bins["kubectl"])
    out = subprocess.run([kubectl, f"--kubeconfig={cluster.nodes[a].kubeconfig}",
                          "get", "node", a, "-o", "name"], capture_output=True, text=True)
    assert out.stdout.strip() == f"node/{a}", out.stderr


def test_validating_admission_policy_is_enforced(cluster, api, namespace):
    name = f"{namespace}-no-forbidden"
    policy = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
              "metadata": {"name": name},
              "spec": {"failurePolicy": "Fail",
                       "matchConstraints": {"resourceRules": [{
                           "apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                           "resources": ["configmaps"]}]},
                       "validations": [{"expression":
                                        "!has(object.data) || !('forbidden' in object.data)",
                                        "message": "forbidden key"}]}}
    binding = {"apiVersion": "admissionregistration.k8s.io/v1",
               "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": name},
               "spec": {"policyName": name, "validationActions": ["Deny"],
                        "matchResources": {"namespaceSelector": {"matchLabels": {
                            "kubernetes.io/metadata.name": namespace}}}}}
    api.create(policy)
    api.create(binding)
    try:
        n = iter(range(1000))

        def denied():
            try:
                api.create({"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": f"cm-{next(n)}"}, "data": {"forbidden": "1"}},
                           namespace)
                return False
            except KubeError as e:
                return e if e.status in (403, 422) and "forbidden key" in e.message else False

        err = api.wait_for(denied, timeout=30, what="the ValidatingAdmissionPolicy to deny")
        print("denied:", err.message)
    finally:
        api.delete(binding["apiVersion"], binding["kind"], name)
        api.delete(policy["apiVersion"], policy["kind"], name)


def test_service_account_tokens_carry_node_info(cluster, api, namespace):
    (node,) = cluster.create_nodes(1, prefix=f"{namespace}-sa")
    pod = api.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                      "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0,
                               "containers": [{"name": "c",
                                               "image": "registry.k8s.io/pause:3.10"}]}},
                     namespace)
    tr = api.request("POST", api.path("v1", "ServiceAccount", "default", namespace, "token"), {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"audiences": ["test"], "expirationSeconds": 600,
                 "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "p",
                                    "uid": pod["metadata"]["uid"]}}})
    payload = tr["status"]["token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["kubernetes.io"]["pod"]["name"] == "p"
    assert claims["kubernetes.io"]["node"]["name"] == node


def test_startup_failure_names_component_and_cleans_up(cluster, tmp_path):
    """A locked GA gate cannot be switched off: the API server exits, and the error says so."""
    from mock_accel.cluster import Cluster, ClusterError

    bad = Cluster(bins=cluster.bins, artifacts=tmp_path, timeout=30,
                  feature_gates={"DRAPrioritizedList": False})
    with pytest.raises(ClusterError) as e:
        with bad:
            pass
    print(e.value)
    assert "kube-apiserver exited" in str(e.value)
    assert "cannot set feature gate DRAPrioritizedList to false" in str(e.value)
    assert all(c.proc.poll() is not None for c in bad.components.values())
    assert not bad.tmp.exists()


def test_helm_talks_to_the_cluster(cluster):
    out = cluster.helm("version", "--short").stdout.strip()
    assert out.startswith(kubebins.HELM_VERSION), out
    assert cluster.helm("list", "-A").returncode == 0

"""Kernel Module Management built from its source (tools/gosrc.py, tools/kmm): the source rules
(always), and KMM's real operator against the real control plane (where a KMM checkout is given
in $KMM_SRC: the Go proxy refuses KMM, so CI on a fresh machine skips those with the reason).

The operator test installs KMM's own CRDs and roles from the checkout, runs its manager as a host
process with its ServiceAccount's token, and applies the Module our chart renders: KMM accepts it
(its real schema) and acts on it for a node whose kernel the chart's mapping matches — it records
the module image that node needs (ModuleImagesConfig) and starts checking that image exists.
The operator cannot do what its roles do not grant."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mock_accel.kube import KubeClient, KubeError
from mock_accel.wait import wait_until
from tools import gosrc
from tools.kmm import (
    CONFIG_MAP,
    KMM,
    NAMESPACE,
    crd_paths,
    install,
    manager_config,
    operator_kubeconfig,
    rbac_objects,
)
from tools.kmm.operator import Operator, free_port
from tools.locate import REPO


def test_source_digest_covers_go_files_only(tmp_path):
    (tmp_path / "go.mod").write_text("module example.com/x\n")
    (tmp_path / "a.go").write_text("package x\n")
    before = gosrc.source_digest(tmp_path)
    (tmp_path / "README.md").write_text("docs\n")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "b.go").write_text("package y\n")
    assert gosrc.source_digest(tmp_path) == before
    (tmp_path / "a.go").write_text("package x // changed\n")
    assert gosrc.source_digest(tmp_path) != before


def test_a_named_path_must_be_a_checkout_of_kmm(tmp_path):
    (tmp_path / "go.mod").write_text("module example.com/other\n")
    with pytest.raises(gosrc.BuildError, match="not a checkout of github.com/kubernetes-sigs/"):
        gosrc.locate(KMM, tmp_path)


def test_without_a_source_the_cli_says_how_to_give_one(tmp_path, monkeypatch):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
           "MOCK_ACCEL_GOSRC_CACHE": str(tmp_path / "cache"), "KMM_SRC": ""}
    r = subprocess.run([sys.executable, "-m", "tools.kmm", "source"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=120)
    lines = r.stderr.strip().splitlines()
    if r.returncode == 0:       # the pinned release was cloned: the internet is reachable
        assert KMM.declares(Path(r.stdout.strip()))
        return
    assert r.returncode == 3 and len(lines) == 1, r.stderr
    assert "set KMM_SRC=<checkout of v2.6.0>" in lines[0] and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "tools.kmm", "build", "--src", str(tmp_path)],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert "not a checkout" in r.stderr


def test_manager_config_binds_loopback_only():
    config = yaml.safe_load(manager_config(8081)["data"]["controller_config.yaml"])
    assert config["healthProbeBindAddress"] == "127.0.0.1:8081"
    assert config["metrics"]["bindAddress"] == "0"        # off: its default is 0.0.0.0:8443
    assert manager_config(1)["metadata"]["name"] == CONFIG_MAP


# ------------------------------------------------------------------ the operator, for real

@pytest.fixture(scope="module")
def kmm_bins():
    try:
        src = gosrc.locate(KMM)
    except gosrc.SourceAbsent as e:
        pytest.skip(f"KMM not run: {e}")
    return src, gosrc.build(KMM, src)


@pytest.fixture(scope="module")
def operator(cluster, api, kmm_bins, tmp_path_factory):
    src, bins = kmm_bins
    port = free_port()
    install(api, src, port)
    kubeconfig = operator_kubeconfig(api, str(cluster.kubeconfig),
                                     tmp_path_factory.mktemp("kmm") / "operator.kubeconfig")
    op = Operator(bins["manager"], kubeconfig, "localhost/mock-accel/kmm-worker:test", port,
                  cluster.tmp / "kmm-manager.log")
    seconds = op.start()
    print(f"KMM's manager ready in {seconds:.1f} s (log {op.log})")
    yield op, KubeClient.from_kubeconfig(str(kubeconfig))
    op.stop()
    for obj in reversed(rbac_objects(src)):
        if obj["kind"] in ("ClusterRole", "ClusterRoleBinding"):
            api.delete(obj["apiVersion"], obj["kind"], obj["metadata"]["name"])
    for path in crd_paths(src):
        api.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition",
                   yaml.safe_load(path.read_text())["metadata"]["name"])
    api.delete("v1", "Namespace", NAMESPACE)


KERNEL = "6.1.0-99-amd64"
MIC = ("kmm.sigs.x-k8s.io/v1beta1", "ModuleImagesConfig")


def _node(api: KubeClient, name: str) -> None:
    """A Node whose kubelet reported kernel KERNEL (no kubelet runs: KMM's pods stay pending)."""
    api.create({"apiVersion": "v1", "kind": "Node", "metadata": {
        "name": name, "labels": {"kubernetes.io/os": "linux", "kmm-test": name}}})
    api.patch("v1", "Node", name, {"status": {"nodeInfo": {
        "kernelVersion": KERNEL, "kubeletVersion": "v1.37.2", "operatingSystem": "linux",
        "architecture": "amd64", "containerRuntimeVersion": "none://0", "osImage": "test",
        "kubeProxyVersion": "", "machineID": "", "systemUUID": "", "bootID": ""},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "message": "kmm test"}]}}, subresource="status", patch_type="strategic")


def test_kmm_acts_on_the_charts_module(cluster, api, operator):
    from tests.chart.chart import render
    _, as_operator = operator
    ns, node = "kmm-chart-test", "kmm-node-1"
    objs = render("kernelModule.enabled=true", "kernelModule.mode=prebuilt",
                  "kernelModule.image.repository=127.0.0.1:5000/mock-accel/module",
                  f"kernelModule.selector.kmm-test={node}", f"namespace.name={ns}")
    (module,) = [o for o in objs if o["kind"] == "Module"]
    api.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    _node(api, node)
    try:
        api.apply(module)          # KMM's own CRD accepts what the chart renders
        name = module["metadata"]["name"]
        mic = wait_until(lambda: api.get_or_none(*MIC, name, ns), 60,
                         "KMM's ModuleImagesConfig for the chart's Module")
        images = [i["image"] for i in mic["spec"]["images"]]
        print("KMM wants:", images)
        version = module["metadata"]["labels"]["app.kubernetes.io/version"]
        assert images == [f"127.0.0.1:5000/mock-accel/module:{version}-{KERNEL}"], images
        # it checks the image exists with a pull pod (pending here: no kubelet on the node)
        pulls = wait_until(lambda: api.list("v1", "Pod", namespace=ns), 60,
                           "KMM's image pull pod")
        print("KMM's pods:", [(p["metadata"]["name"], p["spec"]["containers"][0]["image"])
                              for p in pulls])
        assert any(c["image"] == images[0] for p in pulls for c in p["spec"]["containers"])
        # least privilege: the operator's own token holds KMM's roles, nothing more
        for verb, call in (("create a ClusterRole", lambda: as_operator.create({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": "kmm-escalate"}, "rules": []})),
                           ("delete a Node", lambda: as_operator.delete("v1", "Node", node))):
            with pytest.raises(KubeError) as err:
                call()
            assert err.value.status == 403, (verb, err.value)
    finally:
        api.delete("v1", "Namespace", ns)
        api.delete("v1", "Node", node)

"""Issue 15 item 6: the kubeconfig features users have, against the real kube-apiserver of the
local control plane: `exec` credential plugins (client certificate and token, re-run on 401),
`$KUBECONFIG` with several files merged as kubectl does, `tls-server-name`, `proxy-url`
(through a small CONNECT proxy), and a clear refusal of what stays unsupported."""
from __future__ import annotations

import json
import select
import shutil
import socket
import socketserver
import sys
import threading
from pathlib import Path

import pytest
import yaml

from mock_accel.kube import KubeClient, KubeError

pytestmark = pytest.mark.cluster
PROBE = "/api/v1/namespaces/default"   # needs an authenticated, authorized user


def kubeconfig(path: Path, cluster, user: dict, **cluster_fields) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": cluster.server,
                                               "certificate-authority": str(cluster.pki.ca.cert),
                                               **cluster_fields}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}]}))
    return path


def plugin(path: Path, answers: list[dict]) -> dict:
    """An exec plugin printing `answers[n]` on its n-th run (the last one after that); it
    records each run's KUBERNETES_EXEC_INFO in `<path>.runs`."""
    path.write_text(f"""#!{sys.executable}
import json, os, pathlib
runs = pathlib.Path({str(path) + '.runs'!r})
seen = json.loads(runs.read_text()) if runs.exists() else []
seen.append(json.loads(os.environ["KUBERNETES_EXEC_INFO"]))
runs.write_text(json.dumps(seen))
answers = {json.dumps(answers)!r}
print(json.dumps(json.loads(answers)[min(len(seen), {len(answers)}) - 1]))
""")
    path.chmod(0o755)
    return {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": str(path),
                     "interactiveMode": "Never", "provideClusterInfo": True}}


def runs(path: Path) -> list[dict]:
    return json.loads(Path(str(path) + ".runs").read_text())


def test_exec_plugin_with_a_client_certificate(cluster, tmp_path):
    admin = cluster.certs["admin"]
    status = {"clientCertificateData": admin.cert.read_text(),
              "clientKeyData": admin.key.read_text()}
    user = plugin(tmp_path / "cred", [{"kind": "ExecCredential", "status": status}])
    client = KubeClient.from_kubeconfig(kubeconfig(tmp_path / "config", cluster, user))
    assert client.get(PROBE)["metadata"]["name"] == "default"
    (info,) = runs(tmp_path / "cred")
    assert info["spec"]["interactive"] is False
    assert info["spec"]["cluster"]["server"] == cluster.server


def test_exec_plugin_token_is_asked_again_after_a_401(cluster, api, namespace, tmp_path):
    api.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader"}},
               namespace)
    api.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": "reader"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                            "name": "view"},
                "subjects": [{"kind": "ServiceAccount", "name": "reader",
                              "namespace": namespace}]}, namespace)
    token = api.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/reader/token",
                        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                         "spec": {"expirationSeconds": 600}})["status"]["token"]
    later = "2999-01-01T00:00:00Z"
    answers = [{"kind": "ExecCredential", "status": {"token": "revoked"}},
               {"kind": "ExecCredential", "status": {"token": token,
                                                     "expirationTimestamp": later}}]
    user = plugin(tmp_path / "cred", answers)
    client = KubeClient.from_kubeconfig(kubeconfig(tmp_path / "config", cluster, user))
    assert client.get(f"/api/v1/namespaces/{namespace}/serviceaccounts/reader")
    assert len(runs(tmp_path / "cred")) == 2          # 401 with "revoked", then the real token
    client.get(f"/api/v1/namespaces/{namespace}/serviceaccounts/reader")
    assert len(runs(tmp_path / "cred")) == 2          # cached until it expires


def test_several_kubeconfig_files_are_merged(cluster, tmp_path, monkeypatch):
    admin = cluster.certs["admin"]
    second = tmp_path / "second"
    second.mkdir()
    for source, name in [(cluster.pki.ca.cert, "ca.crt"), (admin.cert, "admin.crt"),
                         (admin.key, "admin.key")]:
        shutil.copy(source, second / name)
    (tmp_path / "first").write_text(yaml.safe_dump({
        "current-context": "mine",
        "contexts": [{"name": "mine", "context": {"cluster": "k", "user": "u"}}]}))
    (second / "config").write_text(yaml.safe_dump({       # relative paths: of this file
        "current-context": "other",
        "clusters": [{"name": "k", "cluster": {"server": cluster.server,
                                               "certificate-authority": "ca.crt"}}],
        "users": [{"name": "u", "user": {"client-certificate": "admin.crt",
                                         "client-key": "admin.key"}}]}))
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path}/first:{tmp_path}/missing:{second}/config")
    assert KubeClient.from_environment().get(PROBE)["metadata"]["name"] == "default"


def test_tls_server_name_is_the_name_checked(cluster, tmp_path):
    admin = cluster.certs["admin"]
    user = {"client-certificate": str(admin.cert), "client-key": str(admin.key)}
    good = kubeconfig(tmp_path / "good", cluster, user, **{"tls-server-name": "kubernetes"})
    assert KubeClient.from_kubeconfig(good).get(PROBE)
    bad = kubeconfig(tmp_path / "bad", cluster, user, **{"tls-server-name": "elsewhere.example"})
    with pytest.raises(KubeError) as failed:
        KubeClient.from_kubeconfig(bad).get(PROBE)
    assert failed.value.status == 0 and "elsewhere.example" in str(failed.value)


class ConnectProxy(socketserver.ThreadingTCPServer):
    """An HTTP CONNECT proxy on 127.0.0.1 that records the targets it tunnelled to."""
    daemon_threads = True

    def __init__(self):
        self.targets: list[str] = []
        super().__init__(("127.0.0.1", 0), ConnectHandler)


class ConnectHandler(socketserver.StreamRequestHandler):
    def handle(self):
        request = self.rfile.readline().decode()
        while self.rfile.readline() not in (b"\r\n", b""):
            pass
        method, target, _ = request.split(" ", 2)
        assert method == "CONNECT", request
        self.server.targets.append(target)
        host, port = target.rsplit(":", 1)
        with socket.create_connection((host, int(port))) as upstream:
            self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self.wfile.flush()
            ends = [self.connection, upstream]
            while True:
                ready, _, _ = select.select(ends, [], [], 10)
                if not ready:
                    return
                for end in ready:
                    data = end.recv(65536)
                    if not data:
                        return
                    (upstream if end is self.connection else self.connection).sendall(data)


def test_proxy_url_is_used(cluster, tmp_path):
    admin = cluster.certs["admin"]
    user = {"client-certificate": str(admin.cert), "client-key": str(admin.key)}
    with ConnectProxy() as proxy:
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        try:
            config = kubeconfig(tmp_path / "config", cluster, user,
                                **{"proxy-url": f"http://127.0.0.1:{proxy.server_address[1]}"})
            assert KubeClient.from_kubeconfig(config).get(PROBE)
        finally:
            proxy.shutdown()
    assert proxy.targets == [cluster.server.removeprefix("https://")]


@pytest.mark.parametrize("user, field", [
    ({"auth-provider": {"name": "oidc"}}, "auth-provider"),
    ({"username": "a", "password": "b"}, "password"),
    ({"exec": {"apiVersion": "client.authentication.k8s.io/v1alpha1", "command": "x"}},
     "v1alpha1"),
])
def test_unsupported_fields_are_refused_clearly(cluster, tmp_path, user, field):
    with pytest.raises(ValueError, match=field):
        KubeClient.from_kubeconfig(kubeconfig(tmp_path / "config", cluster, user))

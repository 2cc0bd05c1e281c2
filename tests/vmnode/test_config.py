"""The guest node's pure pieces (tools/vmnode): rendered configs and the CONNECT proxy's map.

Quick, no guest: the proxy runs on a real Unix socket against a real TCP listener."""
from __future__ import annotations

import shlex
import socket
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

import pytest
import yaml

from tools.vmnode import config
from tools.vmnode.proxy import ConnectProxy, parse_connect

SPEC = config.NodeSpec("vm0", 41234, "127.0.0.1:5001", "127.0.0.1:5001/mock-accel/pause:t",
                       ("127.0.0.1:5001/a:t", "127.0.0.1:5001/b:t"), {"DRADeviceTaints": True})
REPO = Path(__file__).resolve().parents[2]


def test_containerd_config_parses_and_keeps_state_in_ram_paths() -> None:
    cfg = tomllib.loads(config.containerd_config(SPEC))
    cri = cfg["plugins"]["io.containerd.grpc.v1.cri"]
    assert cfg["version"] == 2 and cri["sandbox_image"] == SPEC.pause_image
    assert cri["containerd"]["runtimes"]["runc"]["options"] == {
        "SystemdCgroup": False, "BinaryName": f"{config.BIN_DIR}/runc"}
    assert cri["cni"]["bin_dir"] == config.CNI_BIN_DIR and cri["enable_cdi"] is True
    assert cri["registry"]["config_path"] == "/etc/containerd/certs.d"


def test_registry_hosts_pull_plain_http_from_the_host_alias() -> None:
    hosts = tomllib.loads(config.registry_hosts("127.0.0.1:5001"))
    assert hosts["server"] == "http://127.0.0.1:5001"
    assert hosts["host"] == {f"http://{config.HOST_ALIAS}:5001": {
        "capabilities": ["pull", "resolve"]}}


def test_kubelet_config_authenticates_the_api_server_and_serves_on_the_guest_address() -> None:
    cfg = yaml.safe_load(config.kubelet_config(SPEC, ca="/c/ca.crt", cert="/c/s.crt",
                                               key="/c/s.key"))
    assert cfg["authentication"]["anonymous"]["enabled"] is False
    assert cfg["authentication"]["x509"]["clientCAFile"] == "/c/ca.crt"
    assert cfg["authorization"]["mode"] == "Webhook" and cfg["cgroupDriver"] == "cgroupfs"
    assert (cfg["address"], cfg["port"]) == (config.GUEST_IP, config.KUBELET_PORT)
    assert cfg["featureGates"] == {"DRADeviceTaints": True}


def test_cni_config_masquerades_the_pod_range() -> None:
    bridge = yaml.safe_load(config.cni_config())["plugins"][0]
    assert bridge["ipMasq"] and bridge["ipam"]["ranges"] == [[{"subnet": config.POD_CIDR}]]


def test_node_env_is_shell_and_names_every_binary(tmp_path: Path) -> None:
    env = config.node_env(SPEC, {"containerd-shim-runc-v2": "/a b/shim", "cni": "/c"}, "/conf")
    (tmp_path / "node.env").write_text(env)
    out = subprocess.run(["bash", "-c", f". {shlex.quote(str(tmp_path / 'node.env'))}; "
                          'echo "$NODE_SRC_CONTAINERD_SHIM_RUNC_V2|$NODE_PREPULL|$NODE_NAME"'],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "/a b/shim|127.0.0.1:5001/a:t 127.0.0.1:5001/b:t|vm0"


def test_node_script_is_valid_bash() -> None:
    subprocess.run(["bash", "-n", str(REPO / "tools" / "vmnode" / "node.sh")], check=True)


def test_egress_selector_sends_cluster_traffic_to_the_socket() -> None:
    cfg = yaml.safe_load(config.egress_selector("/run/p.sock"))
    (sel,) = cfg["egressSelections"]
    assert sel["name"] == "cluster" and sel["connection"] == {
        "proxyProtocol": "HTTPConnect", "transport": {"uds": {"udsName": "/run/p.sock"}}}


def test_parse_connect() -> None:
    assert parse_connect(b"CONNECT vm0:10250 HTTP/1.1\r\nHost: x\r\n\r\n") == ("vm0", 10250)
    assert parse_connect(b"CONNECT [::1]:443 HTTP/1.1\r\n\r\n") == ("::1", 443)
    for bad in (b"GET / HTTP/1.1\r\n\r\n", b"CONNECT vm0 HTTP/1.1\r\n\r\n",
                b"CONNECT vm0:99999 HTTP/1.1\r\n\r\n"):
        with pytest.raises(ValueError):
            parse_connect(bad)


def _connect(path: Path, target: str) -> tuple[bytes, socket.socket]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(str(path))
    s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1024)
        if not chunk:
            break
        head += chunk
    return head, s


def test_proxy_forwards_mapped_targets_and_refuses_the_rest(tmp_path: Path) -> None:
    """A CONNECT to the node's address reaches the mapped loopback port (bytes both ways);
    any other target is 403 and never dialled."""
    upstream = socket.create_server(("127.0.0.1", 0))
    port = upstream.getsockname()[1]

    def echo() -> None:
        conn, _ = upstream.accept()
        with conn:
            conn.sendall(b"hello:" + conn.recv(100))
    threading.Thread(target=echo, daemon=True).start()
    proxy = ConnectProxy(tmp_path / "p.sock", {("vm0", 10250): ("127.0.0.1", port)})
    try:
        head, s = _connect(proxy.path, "vm0:10250")
        with s:
            assert head.startswith(b"HTTP/1.1 200")
            s.sendall(b"ping")
            assert s.recv(100) == b"hello:ping"
        head, s = _connect(proxy.path, f"127.0.0.1:{port}")
        s.close()
        assert head.startswith(b"HTTP/1.1 403")
        assert proxy.log == [f"refused: 127.0.0.1:{port} is not forwarded"]
    finally:
        proxy.close()
        upstream.close()
    assert not proxy.path.exists()


@pytest.mark.parametrize("argv", [[], ["nope"], ["check", "--steps", "exec,bogus"]])
def test_bad_arguments_are_one_line_and_exit_2(argv: list[str]) -> None:
    """Before anything is built or booted."""
    r = subprocess.run([sys.executable, "-m", "tools.vmnode", *argv], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stdout == "" and len(r.stderr.splitlines()) == 1, r.stderr
    assert r.stderr.startswith("python -m tools.vmnode: error: ")

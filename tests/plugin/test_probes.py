"""Issue 15 item 4: the node agent serves the standard gRPC health service (what a Kubernetes
`grpc:` probe calls) and its check exercises the plugin; the controller serves `/healthz` and
`/readyz`. In process with a hung claims lock and a lost socket, then both commands as
processes on a simulated node (the API server unreachable: no control plane needed)."""
from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mock_accel.sim import SimConfig, SimNode
from mock_accel.wait import wait_until
from tests.harness.kubeconfigs import UNREACHABLE

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def probe(port: int) -> int:
    """What the kubelet's gRPC probe gets (UNKNOWN when the server does not answer)."""
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            return health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5).status
    except grpc.RpcError:
        return health_pb2.HealthCheckResponse.UNKNOWN


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_hung_plugin_fails_its_probe(make_plugin):
    plugin = make_plugin()
    port = plugin.start_probe_server(0, addr="127.0.0.1")
    assert probe(port) == SERVING
    hung, release = threading.Event(), threading.Event()

    def prepare_that_never_returns():
        with plugin._state_lock:
            hung.set()
            release.wait(30)
    threading.Thread(target=prepare_that_never_returns, daemon=True).start()
    hung.wait(5)
    try:
        assert probe(port) == NOT_SERVING
    finally:
        release.set()
    assert probe(port) == SERVING
    plugin.config.dra_socket.unlink()               # the kubelet cannot reach it any more
    assert probe(port) == NOT_SERVING


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


def test_the_commands_serve_their_probes(short_dir):
    sim = SimNode.create(short_dir / "sys", SimConfig(num_devices=1, total_vfs=0))
    (short_dir / "kubeconfig").write_text(UNREACHABLE)
    common = ["--node-name", "n1", "--sysfs-root", str(sim.root),
              "--kubeconfig", str(short_dir / "kubeconfig")]
    agent_port, controller_port = free_port(), free_port()
    agent = subprocess.Popen(
        [sys.executable, "-m", "mock_accel.cli", "node-agent", *common,
         "--plugin-socket-dir", str(short_dir / "plugins" / "d"),
         "--registry-dir", str(short_dir / "registry"), "--cdi-dir", str(short_dir / "cdi"),
         "--health-port", str(agent_port)], stderr=subprocess.DEVNULL)
    controller = subprocess.Popen(
        [sys.executable, "-m", "mock_accel.cli", "controller", *common,
         "--health-port", str(controller_port)], stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: probe(agent_port) == SERVING, 30, "the node agent's gRPC probe")
        url = f"http://127.0.0.1:{controller_port}"
        wait_until(lambda: http_status(f"{url}/healthz") == 200, 30, "the controller's /healthz")
        assert http_status(f"{url}/readyz") == 503    # alive, but nothing published yet
    finally:
        for process in (agent, controller):
            process.send_signal(signal.SIGTERM)
            process.wait(20)

"""T1: registration, version negotiation, sockets and the health stream over real unix sockets.

No control plane: these tests never prepare a claim.
"""

from __future__ import annotations

import socket
import stat
import time
import urllib.request

import pytest

from mock_accel.claims import DRA_V1, DRA_V1BETA1, registration_socket_name
from mock_accel.health import HEALTH_V1, HEALTH_V1ALPHA1
from mock_accel.kubelet import KubeletEmulator, RegistrationRefused

from .conftest import DRIVER

POD_UID = "5f0c3e9a-2b7d-4c1e-9a8f-0123456789ab"


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_registration_handshake(make_plugin, kubelet):
    plugin = make_plugin()
    socket_path = kubelet.wait_for_socket()
    assert socket_path.name == f"{DRIVER}-reg.sock"
    registered = kubelet.register(socket_path)
    info = registered.info
    assert (info.type, info.name) == ("DRAPlugin", DRIVER)
    assert info.endpoint == str(plugin.config.plugins_dir) + f"/{DRIVER}/dra.sock"
    assert list(info.supported_versions) == [DRA_V1, DRA_V1BETA1, HEALTH_V1, HEALTH_V1ALPHA1]
    assert (registered.service, registered.health_service) == (DRA_V1, HEALTH_V1)
    assert plugin.registered.wait(2) and plugin.registration == {"registered": True, "error": ""}
    for path in (socket_path, registered.endpoint):
        assert stat.S_ISSOCK(path.lstat().st_mode)
        assert mode(path) == 0o600, oct(mode(path))        # never world-writable
    assert mode(plugin.config.checkpoint_path.parent) & 0o002 == 0


def test_stop_removes_sockets_registration_first(make_plugin, kubelet):
    plugin = make_plugin()
    reg, dra = plugin.config.registration_socket, plugin.config.dra_socket
    assert reg.exists() and dra.exists()
    plugin.stop()
    assert not reg.exists() and not dra.exists()
    assert kubelet.sockets() == []


def test_rolling_update_socket_names(make_plugin, kubelet):
    old = make_plugin(pod_uid="11111111-1111-4111-8111-111111111111")
    new = make_plugin(pod_uid=POD_UID)
    names = {p.name for p in kubelet.sockets()}
    assert names == {f"{DRIVER}-11111111-1111-4111-8111-111111111111-reg.sock",
                     f"{DRIVER}-{POD_UID}-reg.sock"}
    assert new.config.dra_socket.name == f"dra-{POD_UID}.sock"
    first = kubelet.register(old.config.registration_socket)
    second = kubelet.register(new.config.registration_socket)
    assert first.endpoint != second.endpoint
    old.stop()                              # the old pod goes away: the new one keeps serving
    assert new.config.registration_socket.exists() and second.unprepare([]) == {}
    assert registration_socket_name("/r", DRIVER, POD_UID) == f"{DRIVER}-{POD_UID}-reg.sock"


def test_stale_sockets_are_replaced(make_plugin, kubelet, short_dir):
    plugin = make_plugin(start=False)
    paths = [plugin.config.registration_socket, plugin.config.dra_socket]
    for path in paths:                     # sockets of a crashed run: files nobody listens on
        path.parent.mkdir(parents=True, exist_ok=True)
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(str(path))
        stale.close()
        assert stat.S_ISSOCK(path.lstat().st_mode)
    plugin.start()
    registered = kubelet.register(kubelet.wait_for_socket())
    assert registered.unprepare([("ns", "uid", "name")]) == {"uid": ""}
    assert all(mode(p) == 0o600 for p in paths)


def test_live_socket_is_not_stolen(make_plugin):
    first = make_plugin()
    second = make_plugin(start=False)       # same driver, same paths: a misconfiguration
    with pytest.raises(RuntimeError, match="served by a running process"):
        second.start()
    assert first.config.registration_socket.exists()    # the running plugin is untouched


@pytest.mark.parametrize("plugin_services, kubelet_services, expected", [
    ((DRA_V1, DRA_V1BETA1), (DRA_V1, DRA_V1BETA1), DRA_V1),
    ((DRA_V1BETA1,), (DRA_V1, DRA_V1BETA1), DRA_V1BETA1),     # an older plugin
    ((DRA_V1, DRA_V1BETA1), (DRA_V1BETA1,), DRA_V1BETA1),     # an older kubelet
    ((DRA_V1BETA1, DRA_V1), (DRA_V1, DRA_V1BETA1), DRA_V1BETA1),  # the plugin's order decides
])
def test_dra_version_selection(make_plugin, short_dir, plugin_services, kubelet_services,
                               expected):
    make_plugin(dra_services=plugin_services)
    kubelet = KubeletEmulator(short_dir / "registry", dra_services=kubelet_services)
    try:
        registered = kubelet.register(kubelet.wait_for_socket())
        assert registered.service == expected
        assert registered.prepare([]) == {} and registered.unprepare([]) == {}
    finally:
        kubelet.close()


def test_no_common_version_is_refused_and_reported(make_plugin, short_dir):
    plugin = make_plugin(dra_services=(DRA_V1,))
    kubelet = KubeletEmulator(short_dir / "registry", dra_services=(DRA_V1BETA1,))
    with pytest.raises(RegistrationRefused, match="none of the services"):
        kubelet.register(kubelet.wait_for_socket())
    assert plugin.registration["registered"] is False
    assert "none of the services" in plugin.registration["error"]
    assert not plugin.registered.is_set()


def test_health_service_selection(make_plugin, short_dir, kubelet):
    make_plugin(health=False)
    registered = kubelet.register(kubelet.wait_for_socket())
    assert registered.health_service is None
    assert HEALTH_V1 not in registered.info.supported_versions
    old_kubelet = KubeletEmulator(short_dir / "registry", health_services=(HEALTH_V1ALPHA1,))
    try:
        assert old_kubelet.register(kubelet.wait_for_socket()).health_service is None
    finally:
        old_kubelet.close()


@pytest.mark.parametrize("health_service", [HEALTH_V1, HEALTH_V1ALPHA1])
def test_health_stream_follows_faults_within_a_second(make_plugin, short_dir, health_service):
    plugin = make_plugin()
    kubelet = KubeletEmulator(short_dir / "registry", health_services=(health_service,))
    try:
        registered = kubelet.register(kubelet.wait_for_socket())
        assert registered.health_service == health_service
        stream = registered.watch_health()
        first = stream.next(timeout=5)
        assert first == {f"mock{i}": "HEALTHY" for i in range(4)}
        device = stream.raw[0].devices[0]
        assert device.device.pool_name == "node-a" and device.health_check_timeout_seconds > 0
        assert abs(device.last_updated_time - time.time()) < 60

        plugin.node.inject_fault("mock2")
        took = stream.wait_for(lambda m: m.get("mock2") == "UNHEALTHY", timeout=1.0)
        assert stream.latest["mock0"] == "HEALTHY" and len(stream.latest) == 4
        plugin.node.inject_fault("mock2", False)
        took_back = stream.wait_for(lambda m: m.get("mock2") == "HEALTHY", timeout=1.0)
        print(f"{health_service}: unhealthy after {took:.2f}s, healthy again after "
              f"{took_back:.2f}s")
    finally:
        kubelet.close()


def test_health_stream_ends_when_the_plugin_stops(make_plugin, kubelet):
    plugin = make_plugin()
    stream = kubelet.register(kubelet.wait_for_socket()).watch_health()
    stream.next(timeout=5)
    started = time.monotonic()
    plugin.stop()
    with pytest.raises(EOFError):
        while True:
            stream.next(timeout=5)
    assert time.monotonic() - started < 5


def test_metrics_endpoint(make_plugin, kubelet):
    plugin = make_plugin()
    port = plugin.start_metrics_server(0, addr="127.0.0.1")
    registered = kubelet.register(kubelet.wait_for_socket())
    registered.prepare([("ns", "uid-x", "missing")])
    registered.unprepare([("ns", "uid-x", "missing")])
    plugin.node.inject_fault("mock3")
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for line in ['mock_accel_plugin_devices{state="free"} 3.0',
                 'mock_accel_plugin_devices{state="unhealthy"} 1.0',
                 'mock_accel_plugin_errors_total{operation="prepare",reason="not_found"} 1.0',
                 "mock_accel_plugin_prepare_seconds_count 1.0",
                 "mock_accel_plugin_unprepare_seconds_count 1.0",
                 "mock_accel_plugin_prepared_claims 0.0"]:
        assert line in text, line


class OneClaim:
    """An API client serving one allocated claim (rolling-update test; no control plane)."""

    def __init__(self, node: str, device: str):
        self.claim = {"metadata": {"namespace": "ns", "name": "c", "uid": "uid-c"},
                      "status": {"allocation": {"devices": {"results": [
                          {"request": "accel", "driver": DRIVER, "pool": node,
                           "device": device}]}}}}

    def get(self, path: str) -> dict:
        assert path.endswith("/namespaces/ns/resourceclaims/c"), path
        return self.claim


def test_rolling_update_instances_share_the_checkpoint(make_plugin, kubelet):
    client = OneClaim("node-a", "mock1")
    old = make_plugin(pod_uid="11111111-1111-4111-8111-111111111111", client=client)
    new = make_plugin(pod_uid=POD_UID, client=client)
    by_old = kubelet.register(old.config.registration_socket)
    assert not by_old.prepare([("ns", "uid-c", "c")])["uid-c"].error
    old.stop()
    by_new = kubelet.register(new.config.registration_socket)
    again = by_new.prepare([("ns", "uid-c", "c")])["uid-c"]     # known from the shared checkpoint
    assert not again.error and again.devices[0].device_name == "mock1"
    assert by_new.unprepare([("ns", "uid-c", "c")]) == {"uid-c": ""}
    assert not new.node.read_device("mock1").allocated and new.checkpoint.load() == {}

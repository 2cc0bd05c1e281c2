"""A kubelet emulator: the kubelet's side of plugin registration, DRA and DRA health over the real
gRPC protocol on unix sockets, built on our generated stubs (mock_accel.proto).

What it does like the kubelet (k8s 1.37, pkg/kubelet/cm/dra/plugin):
- finds registration sockets in the plugins_registry directory (ignoring dot files and
  non-sockets), calls Registration.GetInfo, checks the plugin type is "DRAPlugin", and answers with
  NotifyRegistrationStatus (refusing with an error when it cannot use the plugin);
- picks the DRA service as the kubelet does: the first entry of the plugin's supported_versions
  that this kubelet supports (the plugin's order decides), and the health service as the first
  entry of the kubelet's own list (v1 before v1alpha1) that the plugin advertises;
- calls the chosen service's NodePrepareResources / NodeUnprepareResources on the endpoint (the
  registration socket when the endpoint is empty) and converts v1beta1 answers to plain results;
- keeps a NodeWatchResources stream open and queues its messages.
"""

from __future__ import annotations

import queue
import stat
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from mock_accel.proto import (
    dra_health_v1_pb2,
    dra_health_v1_pb2_grpc,
    dra_health_v1alpha1_pb2,
    dra_health_v1alpha1_pb2_grpc,
    dra_v1_pb2,
    dra_v1_pb2_grpc,
    dra_v1beta1_pb2,
    dra_v1beta1_pb2_grpc,
    pluginregistration_v1_pb2,
    pluginregistration_v1_pb2_grpc,
)

KUBELET_DRA_SERVICES = ("v1.DRAPlugin", "v1beta1.DRAPlugin")             # newest first
KUBELET_HEALTH_SERVICES = ("v1.DRAResourceHealth", "v1alpha1.DRAResourceHealth")

_DRA = {"v1.DRAPlugin": (dra_v1_pb2, dra_v1_pb2_grpc),
        "v1beta1.DRAPlugin": (dra_v1beta1_pb2, dra_v1beta1_pb2_grpc)}
_HEALTH = {"v1.DRAResourceHealth": (dra_health_v1_pb2, dra_health_v1_pb2_grpc),
           "v1alpha1.DRAResourceHealth": (dra_health_v1alpha1_pb2, dra_health_v1alpha1_pb2_grpc)}


class RegistrationRefused(Exception):
    """The emulated kubelet cannot use the plugin (and told it so)."""


@dataclass
class DeviceResult:
    request_names: list[str]
    pool_name: str
    device_name: str
    cdi_device_ids: list[str]


@dataclass
class ClaimAnswer:
    devices: list[DeviceResult] = field(default_factory=list)
    error: str = ""


def _claim_fields(claim: Any) -> tuple[str, str, str]:
    if isinstance(claim, dict):
        return claim["namespace"], claim["uid"], claim["name"]
    if isinstance(claim, tuple):
        return claim
    return claim.namespace, claim.uid, claim.name


def pick_dra_service(plugin_versions: Iterable[str], kubelet: Iterable[str]) -> str | None:
    """The kubelet's rule: first of the plugin's list that the kubelet supports."""
    kubelet = list(kubelet)
    return next((v for v in plugin_versions if v in kubelet), None)


def pick_health_service(plugin_versions: Iterable[str], kubelet: Iterable[str]) -> str | None:
    """The kubelet's rule: first of the kubelet's list that the plugin advertises."""
    plugin_versions = list(plugin_versions)
    return next((v for v in kubelet if v in plugin_versions), None)


def _unix(path: Path | str) -> str:
    return f"unix://{path}"


class HealthStream:
    """A NodeWatchResources stream read by a thread into a queue of {device: health name}."""

    def __init__(self, call: Any, pb2: Any):
        self.call, self.pb2 = call, pb2
        self.messages: queue.Queue = queue.Queue()
        self.latest: dict[str, str] = {}
        self.raw: list[Any] = []
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        try:
            for response in self.call:
                self.raw.append(response)
                self.messages.put({d.device.device_name: self.pb2.HealthStatus.Name(d.health)
                                   for d in response.devices})
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.CANCELLED:
                self.error = err
        finally:
            self.messages.put(None)

    def next(self, timeout: float = 5.0) -> dict[str, str]:
        message = self.messages.get(timeout=timeout)
        if message is None:
            raise EOFError(f"health stream ended ({self.error})")
        self.latest = message
        return message

    def wait_for(self, predicate: Callable[[dict[str, str]], bool], timeout: float) -> float:
        """Seconds until a message satisfies `predicate`; TimeoutError after `timeout`."""
        start = time.monotonic()
        while True:
            left = timeout - (time.monotonic() - start)
            if left <= 0:
                raise TimeoutError(f"no matching health message in {timeout}s; "
                                   f"last: {self.latest}")
            try:
                message = self.next(timeout=left)
            except queue.Empty:
                continue
            if predicate(message):
                return time.monotonic() - start

    def close(self) -> None:
        self.call.cancel()
        self._thread.join(timeout=5)


class RegisteredPlugin:
    """A plugin the emulated kubelet accepted: its info, the chosen services, a channel."""

    def __init__(self, info: Any, socket: Path, service: str, health_service: str | None,
                 timeout: float):
        self.info, self.socket = info, socket
        self.service, self.health_service = service, health_service
        self.endpoint = Path(info.endpoint) if info.endpoint else socket
        self.timeout = timeout
        self.channel = grpc.insecure_channel(_unix(self.endpoint))
        grpc.channel_ready_future(self.channel).result(timeout=timeout)
        pb2, pb2_grpc = _DRA[service]
        self._pb2 = pb2
        self._stub = pb2_grpc.DRAPluginStub(self.channel)
        self._streams: list[HealthStream] = []

    def _claims(self, claims: Iterable[Any]) -> list[Any]:
        return [self._pb2.Claim(namespace=ns, uid=uid, name=name)
                for ns, uid, name in map(_claim_fields, claims)]

    def prepare_raw(self, claims: Iterable[Any]) -> Any:
        request = self._pb2.NodePrepareResourcesRequest(claims=self._claims(claims))
        return self._stub.NodePrepareResources(request, timeout=self.timeout)

    def prepare(self, claims: Iterable[Any]) -> dict[str, ClaimAnswer]:
        """NodePrepareResources; uid -> ClaimAnswer (the kubelet's v1 view for both versions)."""
        response = self.prepare_raw(claims)
        return {uid: ClaimAnswer(
            devices=[DeviceResult(list(d.request_names), d.pool_name, d.device_name,
                                  list(d.cdi_device_ids)) for d in answer.devices],
            error=answer.error) for uid, answer in response.claims.items()}

    def unprepare(self, claims: Iterable[Any]) -> dict[str, str]:
        """NodeUnprepareResources; uid -> error ('' on success)."""
        request = self._pb2.NodeUnprepareResourcesRequest(claims=self._claims(claims))
        response = self._stub.NodeUnprepareResources(request, timeout=self.timeout)
        return {uid: answer.error for uid, answer in response.claims.items()}

    def watch_health(self) -> HealthStream:
        if self.health_service is None:
            raise RuntimeError("no health service was negotiated")
        pb2, pb2_grpc = _HEALTH[self.health_service]
        call = pb2_grpc.DRAResourceHealthStub(self.channel).NodeWatchResources(
            pb2.NodeWatchResourcesRequest())
        stream = HealthStream(call, pb2)
        self._streams.append(stream)
        return stream

    def close(self) -> None:
        for stream in self._streams:
            stream.close()
        self.channel.close()


class KubeletEmulator:
    def __init__(self, registry_dir: Path | str,
                 dra_services: Iterable[str] = KUBELET_DRA_SERVICES,
                 health_services: Iterable[str] = KUBELET_HEALTH_SERVICES,
                 timeout: float = 10.0):
        self.registry_dir = Path(registry_dir)
        self.dra_services = tuple(dra_services)
        self.health_services = tuple(health_services)
        self.timeout = timeout
        self.plugins: dict[str, RegisteredPlugin] = {}

    def sockets(self) -> list[Path]:
        """Candidate registration sockets, as the plugin watcher sees them."""
        if not self.registry_dir.is_dir():
            return []
        return sorted(p for p in self.registry_dir.iterdir()
                      if not p.name.startswith(".") and stat.S_ISSOCK(p.lstat().st_mode))

    def wait_for_socket(self, name: str | None = None, timeout: float = 10.0) -> Path:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for path in self.sockets():
                if name is None or path.name == name:
                    return path
            time.sleep(0.05)
        raise TimeoutError(f"no registration socket {name or '*'} in {self.registry_dir}")

    def get_info(self, socket: Path) -> Any:
        with grpc.insecure_channel(_unix(socket)) as channel:
            stub = pluginregistration_v1_pb2_grpc.RegistrationStub(channel)
            return stub.GetInfo(pluginregistration_v1_pb2.InfoRequest(), timeout=self.timeout)

    def _notify(self, socket: Path, registered: bool, error: str = "") -> None:
        with grpc.insecure_channel(_unix(socket)) as channel:
            stub = pluginregistration_v1_pb2_grpc.RegistrationStub(channel)
            stub.NotifyRegistrationStatus(pluginregistration_v1_pb2.RegistrationStatus(
                plugin_registered=registered, error=error), timeout=self.timeout)

    def register(self, socket: Path | str) -> RegisteredPlugin:
        """The registration handshake; raises RegistrationRefused after telling the plugin."""
        socket = Path(socket)
        info = self.get_info(socket)
        problem = ""
        service = pick_dra_service(info.supported_versions, self.dra_services)
        if info.type != "DRAPlugin":
            problem = f"plugin type {info.type!r} is not DRAPlugin"
        elif not info.name:
            problem = "empty plugin name"
        elif not info.supported_versions:
            problem = "empty list of supported gRPC services"
        elif service is None:
            problem = (f"none of the services supported by the plugin "
                       f"({list(info.supported_versions)}) are supported by the kubelet "
                       f"({list(self.dra_services)})")
        if problem:
            self._notify(socket, False, problem)
            raise RegistrationRefused(problem)
        health = pick_health_service(info.supported_versions, self.health_services)
        try:
            plugin = RegisteredPlugin(info, socket, service, health, self.timeout)
        except grpc.FutureTimeoutError:
            problem = f"cannot connect to endpoint {info.endpoint}"
            self._notify(socket, False, problem)
            raise RegistrationRefused(problem) from None
        self._notify(socket, True)
        old = self.plugins.get(info.name)
        self.plugins[info.name] = plugin
        if old is not None:
            old.close()
        return plugin

    def close(self) -> None:
        for plugin in self.plugins.values():
            plugin.close()
        self.plugins.clear()

"""The API server's way to the guest: an HTTP CONNECT proxy on a Unix socket.

kube-apiserver's egress selector (config.egress_selector) sends its `cluster` traffic (to
kubelets: exec, logs, port-forward) through this proxy. The node reports its address
(10.0.2.15:10250), which the host cannot reach; slirp's `hostfwd` makes the kubelet the host's
127.0.0.1:<port>. The proxy maps one to the other and refuses every target not in its map, so
nothing but the listed forwards is reachable through it. It binds no TCP port.
"""
from __future__ import annotations

import socket
import threading
from collections.abc import Mapping
from pathlib import Path

MAX_HEADER = 8192
Target = tuple[str, int]


def parse_connect(head: bytes) -> Target:
    """(host, port) of a `CONNECT host:port HTTP/1.x` request head; ValueError otherwise."""
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split()
    if len(parts) != 3 or parts[0] != "CONNECT" or not parts[2].startswith("HTTP/1."):
        raise ValueError(f"not a CONNECT request: {line[:100]!r}")
    host, sep, port = parts[1].rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad CONNECT target: {parts[1][:100]!r}")
    return host.strip("[]"), int(port)


def resolve(mapping: Mapping[Target, Target], target: Target) -> Target | None:
    """Where a CONNECT to `target` goes: its forward, or None (refused)."""
    return mapping.get(target)


class ConnectProxy:
    """Serve CONNECT on `path` with `mapping` {(host, port): (127.0.0.1, port)}; a thread."""

    def __init__(self, path: Path, mapping: Mapping[Target, Target]):
        self.path, self.mapping = Path(path), dict(mapping)
        self.log: list[str] = []
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.path.unlink(missing_ok=True)
        self._server.bind(str(self.path))
        self.path.chmod(0o600)
        self._server.listen(64)
        self._thread = threading.Thread(target=self._accept, name="vmnode-proxy", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.close()
        self.path.unlink(missing_ok=True)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            head = b""
            while b"\r\n\r\n" not in head and len(head) < MAX_HEADER:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
            try:
                target = parse_connect(head)
            except ValueError as e:
                self.log.append(f"refused: {e}")
                client.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                return
            forward = resolve(self.mapping, target)
            if forward is None:
                self.log.append(f"refused: {target[0]}:{target[1]} is not forwarded")
                client.sendall(b"HTTP/1.1 403 Forbidden\r\n\r\n")
                return
            try:
                upstream = socket.create_connection(forward, timeout=10)
            except OSError as e:
                self.log.append(f"{target[0]}:{target[1]} -> {forward}: {e}")
                client.sendall(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
                return
            with upstream:
                upstream.settimeout(None)
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                rest = head.split(b"\r\n\r\n", 1)[1]
                if rest:
                    upstream.sendall(rest)
                back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
                back.start()
                _pump(client, upstream)
                back.join()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    """Copy src → dst until EOF, then half-close dst."""
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass

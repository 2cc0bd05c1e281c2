"""A control plane on the host and one real worker node in the QEMU guest.

`VmNode.start()`: the local control plane (`mock_accel.cluster`, advertising the guest's alias
of the host and with its `cluster` egress through proxy.py), the node's config directory
(config.py), then tools/vm boots the guest with node.sh as its command, forwarding the API
server's and the registry's ports into the guest and the kubelet's port out of it; returns
once the Node is Ready. `stop()` asks node.sh to stop (a file in the run's artefact
directory), waits for the guest to power off, then stops the control plane.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from mock_accel.cluster import Cluster, free_port
from mock_accel.wait import WaitTimeout, wait_until
from tools import gotools
from tools.kind.nodeimage import step_kube_bins
from tools.registry import PORT as REGISTRY_PORT
from tools.vm import run_in_guest
from tools.vm.errors import GuestError

from . import config
from .proxy import ConnectProxy

HERE = Path(__file__).resolve().parent
NODE_NAME = "mock-accel-vmnode"
SYSTEM_UUID = "6d6f636b-2d61-4363-8365-6c766d6e6f64"  # the guest's DMI product UUID


class NodeError(RuntimeError):
    """The node did not come up (the message names the step and where the logs are)."""


def binaries(log_dir: Path) -> dict[str, str]:
    """Host paths of what node.sh copies to the guest's tmpfs (built and cached if missing)."""
    try:
        containerd, runc = gotools.ensure("containerd"), gotools.ensure("runc")
        crictl, cni = gotools.ensure("crictl"), gotools.ensure("cni-plugins")
    except gotools.BuildError as e:
        raise NodeError(f"step go tools: {e}") from None
    kubelet = step_kube_bins(log_dir)["kubelet"]
    return {"containerd": str(containerd / "containerd"),
            "containerd-shim-runc-v2": str(containerd / "containerd-shim-runc-v2"),
            "ctr": str(containerd / "ctr"), "runc": str(runc / "runc"),
            "crictl": str(crictl / "crictl"), "kubelet": kubelet, "cni": str(cni)}


class _Progress:
    """output_stream of the guest: node.sh's lines, prefixed, to stderr; remembers them."""

    def __init__(self, started: float):
        self.started, self.lines, self._pending = started, [], ""

    def write(self, text: str) -> None:
        *lines, self._pending = (self._pending + text).split("\n")
        for line in lines:
            self.lines.append(line)
            print(f"[vmnode +{time.monotonic() - self.started:5.1f}s] {line}",
                  file=sys.stderr, flush=True)

    def flush(self) -> None:
        pass


@dataclass
class VmNode:
    """The host's control plane and the guest node; `with VmNode(images) as node: ...`."""
    pause_image: str
    prepull: list[str] = field(default_factory=list)
    imports: list[str] = field(default_factory=list)  # `docker save` archives (images.save)
    name: str = NODE_NAME
    memory_mb: int = 3072
    timeout: float = 3600
    ready_timeout: float = 900  # boot → Ready: 34–60 s quiet, 277 s at load 45
    timings: dict[str, float] = field(default_factory=dict)
    cluster: Cluster | None = None
    run_dir: Path | None = None
    error: BaseException | None = None

    def start(self) -> VmNode:
        """Control plane, proxy, config, guest; return when the Node is Ready."""
        t0 = time.monotonic()
        self._tmp = Path(tempfile.mkdtemp(prefix="mock-accel-vmnode-"))
        self._stop_file: Path | None = None
        bins = binaries(self._tmp)
        self.timings["binaries"] = time.monotonic() - t0
        self.kubelet_port = free_port()
        sock = self._tmp / "proxy.sock"
        kubelet = ("127.0.0.1", self.kubelet_port)
        # the API server dials a node by its Hostname address first, then its InternalIP
        self.proxy = ConnectProxy(sock, {(self.name, config.KUBELET_PORT): kubelet,
                                         (config.GUEST_IP, config.KUBELET_PORT): kubelet})
        (self._tmp / "egress.yaml").write_text(config.egress_selector(str(sock)))
        self.cluster = Cluster(advertise_address=config.HOST_ALIAS, name=f"vmnode-{os.getpid()}",
                               apiserver_args=[f"--egress-selector-config-file="
                                               f"{self._tmp / 'egress.yaml'}"])
        self.cluster.start()
        self.timings["control_plane"] = time.monotonic() - t0 - self.timings["binaries"]
        conf = self._tmp / "node"
        conf.mkdir()
        _write_config(self, conf, bins)
        self._boot(conf)
        self._wait_ready()
        return self

    def _boot(self, conf: Path) -> None:
        """run_in_guest in a thread (it blocks until the guest powers off)."""
        started = time.monotonic()
        self.progress = _Progress(started)
        ran = threading.Event()

        def on_start(run_dir: Path) -> None:
            self.run_dir = run_dir
            ran.set()

        def guest() -> None:
            try:
                self.result = run_in_guest(
                    ["bash", str(HERE / "node.sh"), str(conf)], memory_mb=self.memory_mb,
                    timeout=self.timeout, output_stream=self.progress, on_start=on_start,
                    host_ports=[self.cluster.ports["apiserver"], REGISTRY_PORT],
                    guest_ports={config.KUBELET_PORT: self.kubelet_port},
                    system_uuid=SYSTEM_UUID)
            except (GuestError, OSError) as e:
                self.error = e
            finally:
                ran.set()

        self._guest = threading.Thread(target=guest, name="vmnode-guest", daemon=True)
        self._boot_started = started
        self._guest.start()
        ran.wait()
        if self.error:
            raise NodeError(f"step boot: {self.error}")

    def _wait_ready(self) -> None:
        """Wait for Ready; say each change of the Node's state; on timeout, say why not."""
        seen = [None]

        def ready():
            if not self._guest.is_alive():
                return "gone"
            state = self.not_ready_reason()
            if state != seen[0]:
                seen[0] = state
                self.progress.write(f"host: Node {self.name}: {state or 'Ready'}\n")
            return state is None
        try:
            got = wait_until(ready, self.ready_timeout, f"Node {self.name} Ready", 1)
        except WaitTimeout:
            raise NodeError(f"step ready: Node {self.name} not Ready after "
                            f"{self.ready_timeout:.0f}s ({seen[0]}); {self.log_tails()}"
                            f"logs in {self.run_dir}") from None
        if got == "gone":
            raise NodeError(f"step ready: the guest stopped ({self.error or 'node.sh exited'}); "
                            f"{self.log_tails()}logs in {self.run_dir}")
        self.timings["boot_to_ready"] = time.monotonic() - self._boot_started

    def not_ready_reason(self) -> str | None:
        """None when the Node is Ready, else one line: not registered, or its Ready condition."""
        node = self.cluster.api.get_or_none("v1", "Node", self.name)
        if node is None:
            return "not registered"
        for c in node.get("status", {}).get("conditions", []):
            if c["type"] == "Ready":
                return None if c["status"] == "True" else \
                    f"Ready={c['status']} {c.get('reason', '')}: {c.get('message', '')}"
        return "registered, no Ready condition yet"

    def log_tails(self, lines: int = 8) -> str:
        """The last error lines of the guest's kubelet and containerd logs, for a failure."""
        out = ""
        for name in ("kubelet.log", "containerd.log"):
            log = self.run_dir / name if self.run_dir else None
            if log is None or not log.exists():
                continue
            errors = [ln for ln in log.read_text(errors="replace").splitlines()
                      if ln.startswith("E") or "level=error" in ln or "level=fatal" in ln]
            if errors:
                out += f"last errors of {name}:\n  " + "\n  ".join(errors[-lines:]) + "\n"
        return out

    def imported(self) -> dict[str, float]:
        """{archive: seconds its import took} for the archives node.sh has imported so far."""
        log = self.run_dir / "import.log" if self.run_dir else None
        if log is None or not log.exists():
            return {}
        done = {}
        for line in log.read_text().splitlines():
            if line.startswith("vmnode: imported "):
                archive, _, took = line[len("vmnode: imported "):].partition(" in ")
                done[archive] = float(took.split("s")[0])
            elif line.startswith("vmnode: import of "):
                raise NodeError(f"step import: {line[len('vmnode: '):]}; logs in {self.run_dir}")
        return done

    def wait_imported(self, archives, timeout: float = 900) -> dict[str, float]:
        """Wait until node.sh has imported `archives`; {archive: import seconds}."""
        want = {str(a) for a in archives}

        def done():
            if not self._guest.is_alive():
                raise NodeError(f"step import: the guest stopped; logs in {self.run_dir}")
            got = self.imported()
            return got if want <= set(got) else None
        try:
            got = wait_until(done, timeout, f"the node's import of {len(want)} archive(s)", 1)
        except WaitTimeout:
            raise NodeError(f"step import: not imported after {timeout:.0f}s: "
                            f"{sorted(want - set(self.imported()))}; logs in {self.run_dir}") \
                from None
        return {a: got[a] for a in want}

    def stop(self) -> None:
        """Ask node.sh to stop, wait for the guest (else it is killed), stop the control plane."""
        guest = getattr(self, "_guest", None)
        if guest is not None and guest.is_alive() and self.run_dir is not None:
            (self.run_dir / "stop").touch()
            guest.join(timeout=120)
        if getattr(self, "proxy", None) is not None:
            self.proxy.close()
        if self.cluster is not None:
            self.cluster.stop()
        tmp = getattr(self, "_tmp", None)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    def __enter__(self) -> VmNode:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _write_config(node: VmNode, d: Path, bins: dict[str, str]) -> None:
    """Render the node's config directory `d` (read by node.sh in the guest)."""
    c = node.cluster
    spec = config.NodeSpec(node.name, c.ports["apiserver"], f"127.0.0.1:{REGISTRY_PORT}",
                           node.pause_image, tuple(node.prepull), c.feature_gates,
                           tuple(str(a) for a in node.imports))
    shutil.copy2(c.pki.ca.cert, d / "ca.crt")
    pair, _ = c.node_kubeconfig(node.name)
    serving = c.pki.issue("kubelet-serving", node.name, server=True, dns=[node.name],
                          ips=[config.GUEST_IP])
    for src, dst in ((pair.cert, "node.crt"), (pair.key, "node.key"),
                     (serving.cert, "serving.crt"), (serving.key, "serving.key")):
        shutil.copy2(src, d / dst)
    kc = c.write_kubeconfig(d / "kubeconfig", f"system:node:{node.name}", d / "node.crt",
                            d / "node.key")
    kc.write_text(kc.read_text().replace(str(c.pki.ca.cert), str(d / "ca.crt")))
    files = {
        "containerd.toml": config.containerd_config(spec),
        "hosts.toml": config.registry_hosts(spec.registry),
        "10-vmnode.conflist": config.cni_config(),
        "kubelet.yaml": config.kubelet_config(spec, ca=str(d / "ca.crt"),
                                              cert=str(d / "serving.crt"),
                                              key=str(d / "serving.key")),
        "node.env": config.node_env(spec, bins, str(d)),
    }
    for name, text in files.items():
        (d / name).write_text(text)
    for f in d.iterdir():  # the guest's root reads them through 9p as the host's root
        f.chmod(0o644 if f.suffix != ".key" else 0o600)

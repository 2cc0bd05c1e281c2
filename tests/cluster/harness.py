"""Run a real Kubernetes control plane as local processes (no kubelet, no containers).

``Cluster`` starts etcd, kube-apiserver, kube-controller-manager and
kube-scheduler on free 127.0.0.1 ports with authentication and authorization
on, data in a temporary directory and logs under
``$MOCK_ACCEL_ARTIFACTS/cluster/<run>/`` (default ``<repo>/artifacts``).
Nodes are API objects kept Ready by a heartbeat thread, so the real scheduler
binds pods to them (pods stay ``Pending`` because nothing runs containers).

    with Cluster() as c:
        c.create_nodes(2)
        c.api.create({...})
"""

from __future__ import annotations

import atexit
import datetime as _dt
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mock_accel.kube import KubeClient

from . import build_bins
from .pki import PKI

# DRA feature gates we rely on.  Gates that are GA *and locked* in this release
# (DynamicResourceAllocation, DRAPrioritizedList, DRAAdminAccess,
# DRAResourceClaimDeviceStatus, DRAExtendedResource in 1.37) are on and cannot be
# set; they are listed in LOCKED_ON_GATES for documentation only.
FEATURE_GATES = {
    "DRAPartitionableDevices": True,
    "DRADeviceTaints": True,
    "DRADeviceTaintRules": True,
    "DRAConsumableCapacity": True,
    "DRADeviceBindingConditions": True,
    "ResourceHealthStatus": True,
}
LOCKED_ON_GATES = ("DynamicResourceAllocation", "DRAPrioritizedList", "DRAAdminAccess",
                   "DRAResourceClaimDeviceStatus", "DRAExtendedResource")
RUNTIME_CONFIG = "resource.k8s.io/v1=true,resource.k8s.io/v1beta2=true"

LEASE_SECONDS = 40
HEARTBEAT_SECONDS = 10


class ClusterError(RuntimeError):
    pass


def _die_with_parent() -> None:
    """preexec_fn: SIGKILL the child if the process (thread) that started it dies,
    so even a SIGKILLed pytest leaves no control-plane processes behind."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort (non-glibc systems)
        pass


def remove_stale_tmpdirs() -> None:
    """Delete temp dirs of earlier runs whose owning process no longer exists."""
    for d in Path(tempfile.gettempdir()).glob("mock-accel-cluster-*"):
        try:
            pid = int((d / "owner.pid").read_text())
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except (OSError, ValueError):
            pass


_handed_out: set[int] = set()


def free_port() -> int:
    """A currently free 127.0.0.1 TCP port, never the same one twice in this process."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now_micro() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "<no log>"


def peak_rss_kib(pid: int) -> int:
    """VmHWM (peak resident set) of a live process, 0 if unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


@dataclass
class Component:
    name: str
    proc: subprocess.Popen
    log: Path
    peak_rss_kib: int = 0

    @property
    def pid(self) -> int:
        return self.proc.pid


@dataclass
class Node:
    name: str
    labels: dict
    capacity: dict
    api: KubeClient           # authenticated as system:node:<name>
    kubeconfig: Path   # ditto, for a kubelet plugin run as this node
    extra: dict = field(default_factory=dict)


class Cluster:
    """A control plane.  Use as a context manager or call start()/stop()."""

    def __init__(self, artifacts: Path | None = None, bins: dict | None = None,
                 feature_gates: dict | None = None, timeout: float | None = None,
                 verbosity: int = 2, name: str | None = None):
        self.bins = bins
        self.feature_gates = {**FEATURE_GATES, **(feature_gates or {})}
        self.timeout = timeout or float(os.environ.get("MOCK_ACCEL_CLUSTER_TIMEOUT", "60"))
        self.verbosity = verbosity
        root = Path(artifacts) if artifacts else build_bins.artifacts_root() / "cluster"
        self.run_name = name or time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
        self.log_dir = root / self.run_name
        self.components: dict[str, Component] = {}
        self.nodes: dict[str, Node] = {}
        self.tmp: Path | None = None
        self.api: KubeClient | None = None
        self.server = ""
        self.kubeconfig: Path | None = None
        self.ports: dict[str, int] = {}
        self.timings: dict[str, float] = {}
        self._hb_stop = threading.Event()
        self._hb_thread: threading.Thread | None = None
        self._hb_lock = threading.Lock()
        self.heartbeat_errors: list[str] = []
        self._stopped = False
        self._args: dict[str, list[str]] = {}  # each component's command line, for restarts

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> Cluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> Cluster:
        t0 = time.monotonic()
        if self.bins is None:
            self.bins = build_bins.ensure_bins(build_bins.SERVER_BINS + ("kubectl",))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        latest = self.log_dir.parent / "latest"
        try:
            if latest.is_symlink() or latest.exists():
                latest.unlink()
            latest.symlink_to(self.log_dir.name)
        except OSError:
            pass
        remove_stale_tmpdirs()
        self.tmp = Path(tempfile.mkdtemp(prefix="mock-accel-cluster-"))
        (self.tmp / "owner.pid").write_text(str(os.getpid()))
        atexit.register(self.stop)
        self._pki()
        self.timings["pki"] = time.monotonic() - t0
        self._start_etcd()
        self.timings["etcd"] = time.monotonic() - t0
        self._start_apiserver()
        self.timings["apiserver"] = time.monotonic() - t0
        self._start_controllers()
        self.timings["ready"] = time.monotonic() - t0
        self._hb_thread = threading.Thread(target=self._heartbeat_loop, name="node-heartbeat",
                                           daemon=True)
        self._hb_thread.start()
        self._write_info()
        return self

    def stop(self) -> None:
        """Stop heartbeats and every process we started (by pid); remove the temp dir."""
        if self._stopped:
            return
        self._stopped = True
        self._hb_stop.set()
        if self._hb_thread:
            self._hb_thread.join(timeout=5)
        for name in ("kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"):
            comp = self.components.get(name)
            if comp:
                self._terminate(comp)
        if self.components:
            self._write_info()
        if self.tmp and self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)
        try:
            atexit.unregister(self.stop)
        except Exception:
            pass

    def _terminate(self, comp: Component, grace: float = 10) -> None:
        if comp.proc.poll() is None:
            comp.peak_rss_kib = max(comp.peak_rss_kib, peak_rss_kib(comp.pid))
            try:
                comp.proc.send_signal(signal.SIGTERM)
                comp.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                comp.proc.kill()
                comp.proc.wait(timeout=10)
            except ProcessLookupError:
                pass

    # ------------------------------------------------------------------ setup
    def _pki(self) -> None:
        d = self.tmp / "pki"
        self.pki = PKI(d)
        self.certs = {
            "apiserver": self.pki.issue("apiserver", "kube-apiserver", server=True,
                                        dns=["localhost", "kubernetes", "kubernetes.default",
                                             "kubernetes.default.svc",
                                             "kubernetes.default.svc.cluster.local"],
                                        ips=["127.0.0.1", "10.0.0.1"]),
            "admin": self.pki.issue("admin", "mock-accel-admin", ["system:masters"]),
            "kube-controller-manager": self.pki.issue("kcm", "system:kube-controller-manager"),
            "kube-scheduler": self.pki.issue("scheduler", "system:kube-scheduler"),
            "kcm-serving": self.pki.issue("kcm-serving", "kube-controller-manager", server=True,
                                          dns=["localhost"], ips=["127.0.0.1"]),
            "scheduler-serving": self.pki.issue("scheduler-serving", "kube-scheduler",
                                                server=True, dns=["localhost"], ips=["127.0.0.1"]),
        }
        self.sa_keys = self.pki.service_account_keys()

    def write_kubeconfig(self, path: Path, user: str, cert, key) -> Path:
        cfg = {
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "mock-accel", "cluster": {
                "server": self.server, "certificate-authority": str(self.pki.ca.cert)}}],
            "users": [{"name": user, "user": {"client-certificate": str(cert),
                                              "client-key": str(key)}}],
            "contexts": [{"name": "mock-accel", "context": {"cluster": "mock-accel",
                                                            "user": user}}],
            "current-context": "mock-accel",
        }
        path.write_text(yaml.safe_dump(cfg))
        path.chmod(0o600)
        return path

    def _spawn(self, name: str, args: list[str]) -> Component:
        log = self.log_dir / f"{name}.log"
        fh = open(log, "ab")
        fh.write(("$ " + " ".join([str(self.bins[name]), *args]) + "\n").encode())
        fh.flush()
        proc = subprocess.Popen([str(self.bins[name]), *args], stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=self.tmp, start_new_session=True,
                                preexec_fn=_die_with_parent)
        fh.close()
        comp = Component(name, proc, log)
        self.components[name] = comp
        self._args[name] = list(args)
        return comp

    def _gates(self) -> str:
        gates = sorted(self.feature_gates.items())
        return ",".join(f"{k}={'true' if v else 'false'}" for k, v in gates)

    def _wait(self, what: str, comp: Component, check, timeout: float | None = None):
        """Poll `check()` until truthy; fail fast if `comp` died; error shows its log tail."""
        deadline = time.monotonic() + (timeout or self.timeout)
        last = None
        while time.monotonic() < deadline:
            if comp.proc.poll() is not None:
                raise ClusterError(f"{comp.name} exited with code {comp.proc.returncode} while "
                                   f"waiting for {what}; log {comp.log}:\n{_tail(comp.log)}")
            try:
                v = check()
                if v:
                    return v
            except Exception as e:  # noqa: BLE001 - anything means "not yet"
                last = e
            time.sleep(0.1)
        raise ClusterError(f"timed out after {timeout or self.timeout:.0f}s waiting for {what}"
                           f" (last error: {last}); log {comp.log}:\n{_tail(comp.log)}")

    def _start_etcd(self) -> None:
        client, peer = free_port(), free_port()
        self.ports.update(etcd=client, etcd_peer=peer)
        c = self._spawn("etcd", [
            "--name=default", f"--data-dir={self.tmp / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{client}",
            f"--advertise-client-urls=http://127.0.0.1:{client}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=default=http://127.0.0.1:{peer}",
            "--unsafe-no-fsync", "--log-level=warn",
        ])
        import requests
        self._wait("etcd /health", c, lambda: requests.get(
            f"http://127.0.0.1:{client}/health", timeout=2).json().get("health") == "true")

    def _start_apiserver(self) -> None:
        port = free_port()
        self.ports["apiserver"] = port
        self.server = f"https://127.0.0.1:{port}"
        cert, admin = self.certs["apiserver"], self.certs["admin"]
        c = self._spawn("kube-apiserver", [
            f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={port}",
            f"--cert-dir={self.tmp / 'apiserver-certs'}",
            f"--tls-cert-file={cert.cert}", f"--tls-private-key-file={cert.key}",
            f"--client-ca-file={self.pki.ca.cert}",
            "--authorization-mode=Node,RBAC", "--anonymous-auth=false",
            "--enable-admission-plugins=NodeRestriction,ValidatingAdmissionPolicy",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={self.sa_keys.cert}",
            f"--service-account-signing-key-file={self.sa_keys.key}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--endpoint-reconciler-type=none", "--allow-privileged=true",
            f"--runtime-config={RUNTIME_CONFIG}", f"--feature-gates={self._gates()}",
            f"--v={self.verbosity}",
        ])
        self.kubeconfig = self.write_kubeconfig(self.tmp / "admin.kubeconfig", "admin",
                                                admin.cert, admin.key)
        self.api = KubeClient(self.server, ca_file=self.pki.ca.cert, cert_file=admin.cert,
                              key_file=admin.key, timeout=30)
        self._wait("kube-apiserver /readyz", c,
                   lambda: self.api.request("GET", "/readyz", raw=True).status_code == 200)

    def _start_controllers(self) -> None:
        common = [f"--feature-gates={self._gates()}", "--bind-address=127.0.0.1",
                  "--leader-elect=true", f"--v={self.verbosity}"]
        kcfg = {}
        for comp in ("kube-controller-manager", "kube-scheduler"):
            pair = self.certs[comp]
            kcfg[comp] = self.write_kubeconfig(self.tmp / f"{comp}.kubeconfig", comp,
                                               pair.cert, pair.key)
        for comp in ("kube-controller-manager", "kube-scheduler"):
            self.ports[comp] = free_port()
        kcm = kcfg["kube-controller-manager"]
        self._spawn("kube-controller-manager", common + [
            f"--kubeconfig={kcm}", f"--authentication-kubeconfig={kcm}",
            f"--authorization-kubeconfig={kcm}",
            f"--secure-port={self.ports['kube-controller-manager']}",
            f"--tls-cert-file={self.certs['kcm-serving'].cert}",
            f"--tls-private-key-file={self.certs['kcm-serving'].key}",
            f"--client-ca-file={self.pki.ca.cert}",
            f"--service-account-private-key-file={self.sa_keys.key}",
            f"--root-ca-file={self.pki.ca.cert}",
            f"--cluster-signing-cert-file={self.pki.ca.cert}",
            f"--cluster-signing-key-file={self.pki.ca.key}",
            "--use-service-account-credentials=true",
            "--controllers=*",
            "--node-monitor-grace-period=50s",
        ])
        sch = kcfg["kube-scheduler"]
        self._spawn("kube-scheduler", common + [
            f"--kubeconfig={sch}", f"--authentication-kubeconfig={sch}",
            f"--authorization-kubeconfig={sch}",
            f"--secure-port={self.ports['kube-scheduler']}",
            f"--tls-cert-file={self.certs['scheduler-serving'].cert}",
            f"--tls-private-key-file={self.certs['scheduler-serving'].key}",
            f"--client-ca-file={self.pki.ca.cert}",
        ])

        def lease_held(name):
            def check():
                lease = self.api.get("coordination.k8s.io/v1", "Lease", name, "kube-system")
                return lease.get("spec", {}).get("holderIdentity")
            return check

        for comp in ("kube-scheduler", "kube-controller-manager"):
            self._wait(f"the {comp} leader-election lease", self.components[comp],
                       lease_held(comp))
        # The ServiceAccount controller is working once "default" has its account.
        self._wait("the default ServiceAccount (kube-controller-manager)",
                   self.components["kube-controller-manager"],
                   lambda: self.api.get_or_none("v1", "ServiceAccount", "default", "default"))

    # ------------------------------------------------------------------ outages
    def stop_apiserver(self, grace: float = 10) -> None:
        """Stop kube-apiserver (SIGTERM, by pid) for an outage test. etcd, the certificates and
        the port stay, so `start_apiserver()` brings back the same endpoint and the same data.
        kube-scheduler and kube-controller-manager exit once they cannot renew their leader
        lease (~10 s); `start_apiserver()` starts them again."""
        comp = self.components["kube-apiserver"]
        self._terminate(comp, grace)  # its port closes at once; draining may take `grace` s
        self._write_info()

    def start_apiserver(self, timeout: float | None = None) -> float:
        """Start kube-apiserver again with its old command line (same port, etcd and certs),
        wait for /readyz, then make sure the scheduler and controller-manager hold their leases
        again (restarting those that exited). Returns seconds until /readyz answered."""
        if self.components["kube-apiserver"].proc.poll() is None:
            raise ClusterError("kube-apiserver is still running; call stop_apiserver() first")
        t0 = time.monotonic()
        since = _dt.datetime.now(_dt.UTC)
        comp = self._spawn("kube-apiserver", self._args["kube-apiserver"])
        self._wait("kube-apiserver /readyz after a restart", comp,
                   lambda: self.api.request("GET", "/readyz", raw=True).status_code == 200,
                   timeout)
        ready = time.monotonic() - t0
        self.timings["apiserver_restart"] = ready
        controllers = ("kube-scheduler", "kube-controller-manager")
        for name in controllers:
            if self.components[name].proc.poll() is not None:
                # Its lease names a dead holder: free it, or the new process waits it out.
                self.api.delete("coordination.k8s.io/v1", "Lease", name, "kube-system")
                self._spawn(name, self._args[name])
        for name in controllers:
            self._wait_renewed(name, since, timeout)
        self._write_info()
        return ready

    def _wait_renewed(self, name: str, since: _dt.datetime, timeout: float | None) -> None:
        """Wait until `name` renews its leader lease after `since`, restarting it if it exited."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            if self.components[name].proc.poll() is not None:
                self._spawn(name, self._args[name])
            lease = self.api.get_or_none("coordination.k8s.io/v1", "Lease", name, "kube-system")
            renewed = ((lease or {}).get("spec") or {}).get("renewTime")
            if renewed and _dt.datetime.fromisoformat(renewed.replace("Z", "+00:00")) > since:
                return
            if time.monotonic() > deadline:
                comp = self.components[name]
                raise ClusterError(f"{name} did not renew its lease after the API server came "
                                   f"back; log {comp.log}:\n{_tail(comp.log)}")
            time.sleep(0.2)

    def _write_info(self) -> None:
        info = {
            "run": self.run_name, "server": self.server,
            "kubeconfig": str(self.kubeconfig) if self.kubeconfig else None,
            "tmp": str(self.tmp) if self.tmp else None, "ports": self.ports,
            "pids": {n: c.pid for n, c in self.components.items()},
            "returncodes": {n: c.proc.returncode for n, c in self.components.items()},
            "peak_rss_kib": {n: c.peak_rss_kib or peak_rss_kib(c.pid)
                             for n, c in self.components.items()},
            "timings": {k: round(v, 2) for k, v in self.timings.items()},
            "feature_gates": self.feature_gates, "nodes": list(self.nodes),
            "heartbeat_errors": self.heartbeat_errors[-20:],
        }
        (self.log_dir / "cluster.json").write_text(json.dumps(info, indent=2) + "\n")

    # ------------------------------------------------------------------ helpers
    def kubectl(self, *args: str, check: bool = True, input: str | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess:
        """Run the cluster's kubectl as admin; CalledProcessError carries stderr."""
        kubectl = self.bins.get("kubectl") or build_bins.find_bins(["kubectl"])["kubectl"]
        return subprocess.run([str(kubectl), f"--kubeconfig={self.kubeconfig}", *args],
                              input=input, capture_output=True, text=True, check=check,
                              timeout=timeout)

    def helm(self, *args: str, check: bool = True, timeout: float = 120
             ) -> subprocess.CompletedProcess:
        """Run helm (built by `make cluster-bins`) against this cluster as admin."""
        helm = self.bins.get("helm") or build_bins.ensure_bins(["helm"])["helm"]
        return subprocess.run([str(helm), f"--kubeconfig={self.kubeconfig}", *args],
                              capture_output=True, text=True, check=check, timeout=timeout,
                              env={**self.env(), "HELM_CACHE_HOME": str(self.tmp / "helm-cache"),
                                   "HELM_CONFIG_HOME": str(self.tmp / "helm-config"),
                                   "HELM_DATA_HOME": str(self.tmp / "helm-data")})

    def env(self) -> dict[str, str]:
        """Environment for a client subprocess (KUBECONFIG set)."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def peak_memory_kib(self) -> dict[str, int]:
        return {n: max(c.peak_rss_kib, peak_rss_kib(c.pid)) for n, c in self.components.items()}

    def check_alive(self) -> None:
        for c in self.components.values():
            if c.proc.poll() is not None:
                raise ClusterError(f"{c.name} exited with {c.proc.returncode}:\n{_tail(c.log)}")

    def create_namespace(self, name: str | None = None, labels: dict | None = None) -> str:
        """Create a namespace and wait until its default ServiceAccount exists (pods need it)."""
        name = name or f"test-{uuid.uuid4().hex[:8]}"
        self.api.create({"apiVersion": "v1", "kind": "Namespace",
                         "metadata": {"name": name, "labels": labels or {}}})
        self.api.wait_for(lambda: self.api.get_or_none("v1", "ServiceAccount", "default", name),
                          timeout=30, what=f"ServiceAccount {name}/default")
        return name

    def delete_namespace(self, name: str) -> None:
        """Force-delete pods (no kubelet will ever confirm), then the namespace; no wait."""
        for pod in self.api.list("v1", "Pod", name):
            self.api.delete("v1", "Pod", pod["metadata"]["name"], name, grace_period=0)
        self.api.delete("v1", "Namespace", name)

    # ------------------------------------------------------------------ nodes
    def create_nodes(self, count: int = 1, prefix: str = "node", labels: dict | None = None,
                     capacity: dict | None = None, names: list[str] | None = None) -> list[str]:
        """Create Ready nodes (API objects) and keep them Ready until stop().

        Each node gets a client certificate (system:node:<name>, group system:nodes), a
        kubeconfig at `Node.kubeconfig`, and its status/lease are renewed with that identity,
        so the Node authorizer and NodeRestriction see a real node.
        """
        names = names or [f"{prefix}-{i}" for i in range(len(self.nodes),
                                                          len(self.nodes) + count)]
        cap = {"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi",
               **(capacity or {})}
        for name in names:
            lab = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                   "kubernetes.io/arch": "amd64", **(labels or {})}
            pair = self.pki.issue(f"node-{name}", f"system:node:{name}", ["system:nodes"])
            kcfg = self.write_kubeconfig(self.tmp / f"node-{name}.kubeconfig",
                                         f"system:node:{name}", pair.cert, pair.key)
            node = Node(name, lab, cap, KubeClient(
                self.server, ca_file=self.pki.ca.cert, cert_file=pair.cert, key_file=pair.key,
                timeout=30),
                        kcfg)
            self.api.create({"apiVersion": "v1", "kind": "Node",
                             "metadata": {"name": name, "labels": lab}, "spec": {}})
            with self._hb_lock:
                self.nodes[name] = node
            self._beat(node)
            # TaintNodesByCondition admission adds node.kubernetes.io/not-ready on create;
            # the node-lifecycle controller would lift it within seconds -- do it now.
            obj = self.api.get("v1", "Node", name)
            taints = [t for t in obj["spec"].get("taints", [])
                      if t["key"] != "node.kubernetes.io/not-ready"]
            self.api.patch("v1", "Node", name, {"spec": {"taints": taints or None}})
        self._write_info()
        return names

    def delete_node(self, name: str) -> None:
        with self._hb_lock:
            self.nodes.pop(name, None)
        self.api.delete("v1", "Node", name)
        self.api.delete("coordination.k8s.io/v1", "Lease", name, "kube-node-lease")

    def _beat(self, node: Node) -> None:
        now = _now()
        conds = [{"type": t, "status": "False", "reason": f"KubeletHas{r}",
                  "message": "mock-accel test node", "lastHeartbeatTime": now,
                  "lastTransitionTime": now}
                 for t, r in (("MemoryPressure", "SufficientMemory"),
                              ("DiskPressure", "NoDiskPressure"),
                              ("PIDPressure", "SufficientPID"))]
        conds.append({"type": "Ready", "status": "True", "reason": "KubeletReady",
                      "message": "mock-accel test node (no kubelet)", "lastHeartbeatTime": now,
                      "lastTransitionTime": now})
        version = build_bins.versions()["kubernetes"]
        status = {"status": {
            "capacity": node.capacity, "allocatable": node.capacity, "conditions": conds,
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                          {"type": "Hostname", "address": node.name}],
            "nodeInfo": {"kubeletVersion": version, "kubeProxyVersion": "",
                         "operatingSystem": "linux", "architecture": "amd64",
                         "containerRuntimeVersion": "none://0", "kernelVersion": "",
                         "osImage": "mock-accel test node", "machineID": "", "systemUUID": "",
                         "bootID": ""},
        }}
        node.api.patch("v1", "Node", node.name, status, subresource="status",
                       patch_type="strategic")
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": node.name, "namespace": "kube-node-lease"},
                 "spec": {"holderIdentity": node.name, "leaseDurationSeconds": LEASE_SECONDS,
                          "renewTime": _now_micro()}}
        current = node.api.get_or_none("coordination.k8s.io/v1", "Lease", node.name,
                                       "kube-node-lease")
        if current is None:
            node.api.create(lease)
        else:
            node.api.patch("coordination.k8s.io/v1", "Lease", node.name,
                           {"spec": lease["spec"]}, "kube-node-lease")

    def _heartbeat_loop(self) -> None:
        while not self._hb_stop.wait(HEARTBEAT_SECONDS):
            with self._hb_lock:
                nodes = list(self.nodes.values())
            for node in nodes:
                try:
                    self._beat(node)
                except Exception as e:  # noqa: BLE001 - keep beating the others
                    self.heartbeat_errors.append(f"{_now()} {node.name}: {e}")


def default_state_file() -> Path:
    return build_bins.artifacts_root() / "cluster" / "cli-state.json"

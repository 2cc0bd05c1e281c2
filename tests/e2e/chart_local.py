"""The Helm chart on the local control plane, with this module standing in for the kubelet.

`helm template` renders the chart with the values a user would give; every object whose API the
local apiserver serves is applied as is (namespace, ServiceAccounts, RBAC, DeviceClasses, the
ValidatingAdmissionPolicy and its binding, ConfigMaps, the DaemonSets); objects of APIs that are
not served (the KMM `Module`, when enabled) are listed and skipped. kube-controller-manager turns
the DaemonSets into pods and the scheduler binds them to the nodes, as in any cluster. There is no
kubelet, so for every DaemonSet pod bound to one of our nodes this module does the kubelet's part:

- the container's command: `command`/`args` of the pod spec, else ENTRYPOINT/CMD of
  `images/driver/Containerfile` (`mock-accel` there is this checkout's `python -m mock_accel.cli`);
- its environment: literal values and the downward API (`spec.nodeName`, `metadata.uid`, ...);
- its filesystem: each node has a root directory (a simulated node: `sys/`, `dev/`), every
  container a root whose mount paths are symlinks to `<node root>/<hostPath>`, and every path
  argument is resolved inside that container root, so a wrong mount or path in the chart shows;
- its credentials: a ServiceAccount token bound to the pod (TokenRequest, so it carries the
  node name) in a kubeconfig `$KUBECONFIG` points at: RBAC and the VAP of the chart apply;
- its status: Running/Ready once the process is up, written with the node's own credentials.

The processes outlive the notebook that starts them (own session); the state file lists their
pids and command lines, and `python -m tests.e2e.chart_local down --state-file F` stops them
(only those pids, only while their command line is still ours).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import yaml

from mock_accel.demo import NODE_TOPOLOGY
from mock_accel.firmware import ensure_firmware
from mock_accel.kube import KubeClient
from mock_accel.sim import SimConfig, SimNode

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "chart"
CONTAINERFILE = REPO / "images" / "driver" / "Containerfile"
KUBELET_REGISTRY = "/var/lib/kubelet/plugins_registry"   # where a kubelet looks for plugins
CDI_DIRS = ("/etc/cdi", "/var/run/cdi")                   # where a CDI-enabled runtime looks
FIELD_MANAGER = "mock-accel-e2e"


class LocalInstallError(RuntimeError):
    pass


def _bin(name: str) -> str:
    """kubectl/helm: those `make cluster-bins` built, else the ones on PATH (kind hosts)."""
    from mock_accel import kubebins
    found = kubebins.find_bin(name) or shutil.which(name)
    if found is None:
        raise LocalInstallError(f"no {name}: run `make cluster-bins` or put {name} on PATH")
    return str(found)


def helm_bin() -> str:
    return _bin("helm")


def _run(argv: list[str], input: str | None = None, timeout: float = 120) -> str:
    result = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
    if result.returncode:
        raise LocalInstallError(f"{shlex.join(argv[:4])} ... failed ({result.returncode}):\n"
                                f"{result.stderr.strip()[-3000:]}")
    return result.stdout


# -- rendering -------------------------------------------------------------------------------
def helm_template(release: str, namespace: str, values: dict | None = None,
                  chart: Path = CHART, workdir: Path | None = None) -> list[dict]:
    """`helm template` of the chart with `values` (a dict, given as one values file)."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="ma-helm-"))
    workdir.mkdir(parents=True, exist_ok=True)
    values_file = workdir / "values.yaml"
    values_file.write_text(yaml.safe_dump(values or {}))
    env = {"HELM_CACHE_HOME": str(workdir / "helm-cache"),
           "HELM_CONFIG_HOME": str(workdir / "helm-config"),
           "HELM_DATA_HOME": str(workdir / "helm-data")}
    result = subprocess.run([_bin("helm"), "template", release, str(chart), "--namespace",
                             namespace, "--values", str(values_file)], capture_output=True,
                            text=True, timeout=120, env={**os.environ, **env})
    if result.returncode:
        raise LocalInstallError(f"helm template failed:\n{result.stderr.strip()[-3000:]}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def served_kinds(kubeconfig: str) -> set[tuple[str, str]]:
    """(group, kind) of every resource the apiserver serves."""
    out = _run([_bin("kubectl"), f"--kubeconfig={kubeconfig}", "api-resources", "-o", "wide",
                "--no-headers"])
    kinds = set()
    for line in out.splitlines():
        columns = line.split()
        # NAME [SHORTNAMES] APIVERSION NAMESPACED KIND VERBS...
        for index, column in enumerate(columns):
            if column in ("true", "false") and index >= 2:
                api_version, kind = columns[index - 1], columns[index + 1]
                kinds.add((api_version.rpartition("/")[0], kind))
                break
    return kinds


def _group(obj: dict) -> str:
    return obj["apiVersion"].rpartition("/")[0]


def _order(obj: dict) -> int:
    return {"Namespace": 0, "CustomResourceDefinition": 1}.get(obj["kind"], 2)


def apply_objects(kubeconfig: str, objects: list[dict]) -> list[dict]:
    """Server-side apply what the apiserver serves; one row per object (applied or skipped)."""
    served = served_kinds(kubeconfig)
    rows, batches = [], {}
    for obj in sorted(objects, key=_order):
        key = (_group(obj), obj["kind"])
        row = {"kind": obj["kind"], "name": obj["metadata"]["name"],
               "namespace": obj["metadata"].get("namespace", "-"), "apiVersion": obj["apiVersion"]}
        if key in served:
            batches.setdefault(_order(obj), []).append(obj)
            row["result"] = "applied"
        else:
            row["result"] = "skipped: API not served here"
        rows.append(row)
    for _, batch in sorted(batches.items()):
        _run([_bin("kubectl"), f"--kubeconfig={kubeconfig}", "apply", "--server-side",
              f"--field-manager={FIELD_MANAGER}", "--force-conflicts", "-f", "-"],
             input=yaml.safe_dump_all(batch))
    return rows


# -- the container's command ----------------------------------------------------------------
def image_entrypoint(containerfile: Path = CONTAINERFILE) -> tuple[list[str], list[str]]:
    """ENTRYPOINT and CMD (exec form) of the last stage of a Containerfile."""
    entrypoint: list[str] = []
    cmd: list[str] = []
    for raw in containerfile.read_text().splitlines():
        line = raw.strip()
        if line.upper().startswith("FROM "):
            entrypoint, cmd = [], []
        for keyword in ("ENTRYPOINT", "CMD"):
            if line.upper().startswith(keyword + " "):
                value = line[len(keyword):].strip()
                try:
                    parsed = json.loads(value)
                except ValueError:
                    parsed = ["/bin/sh", "-c", value]
                if keyword == "ENTRYPOINT":
                    entrypoint = parsed
                else:
                    cmd = parsed
    return entrypoint, cmd


def container_argv(container: dict, containerfile: Path = CONTAINERFILE) -> list[str]:
    """What the runtime would execute: the pod's command/args over the image's defaults."""
    entrypoint, cmd = image_entrypoint(containerfile)
    if container.get("command"):
        argv = list(container["command"]) + list(container.get("args") or [])
    else:
        argv = entrypoint + list(container.get("args") or cmd)
    if not argv:
        raise LocalInstallError(f"container {container['name']}: no command in the pod spec "
                                f"and no ENTRYPOINT/CMD in {containerfile}")
    if Path(argv[0]).name == "mock-accel":
        argv = [sys.executable, "-m", "mock_accel.cli", *argv[1:]]
    return argv


FIELD_PATHS = {"metadata.name": lambda p: p["metadata"]["name"],
               "metadata.namespace": lambda p: p["metadata"]["namespace"],
               "metadata.uid": lambda p: p["metadata"]["uid"],
               "spec.nodeName": lambda p: p["spec"]["nodeName"],
               "spec.serviceAccountName": lambda p: p["spec"].get("serviceAccountName", "default"),
               "status.hostIP": lambda p: "127.0.0.1", "status.podIP": lambda p: "127.0.0.1"}


def container_env(pod: dict, container: dict) -> dict[str, str]:
    """The container's environment from the pod spec (literals and the downward API)."""
    env = {}
    for item in container.get("env") or []:
        if "value" in item or "valueFrom" not in item:
            env[item["name"]] = str(item.get("value", ""))
            continue
        source = item["valueFrom"]
        path = (source.get("fieldRef") or {}).get("fieldPath")
        if path not in FIELD_PATHS:
            raise LocalInstallError(f"container {container['name']}: env {item['name']} comes "
                                    f"from {source}, which this stand-in kubelet cannot give")
        env[item["name"]] = FIELD_PATHS[path](pod)
    return env


# -- filesystems ----------------------------------------------------------------------------
def host_mounts(pod: dict, container: dict) -> dict[str, str]:
    """mountPath -> hostPath for the container's hostPath volumes."""
    volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
    mounts = {}
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(mount["name"], {})
        if "hostPath" in volume:
            sub = mount.get("subPath", "")
            mounts[mount["mountPath"].rstrip("/") or "/"] = \
                str(Path(volume["hostPath"]["path"]) / sub) if sub else volume["hostPath"]["path"]
    return mounts


def build_container_root(root: Path, node_root: Path, mounts: dict[str, str]) -> None:
    """`root/<mountPath>` -> `node_root/<hostPath>` symlinks (hostPath dirs created)."""
    paths = sorted(mounts)
    for outer in paths:
        for inner in paths:
            if inner != outer and (outer == "/" or inner.startswith(outer + "/")):
                raise LocalInstallError(f"nested hostPath mounts {outer} and {inner} are not "
                                        "supported by the local stand-in kubelet")
    root.mkdir(parents=True, exist_ok=True)
    for mount_path, host_path in mounts.items():
        target = node_root / host_path.lstrip("/")
        if not target.exists():
            target.mkdir(parents=True)
        link = root / mount_path.lstrip("/")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)


def in_container(path: str, root: Path) -> str:
    """An absolute container path as seen through the container root."""
    return str(root / path.lstrip("/")) if path.startswith("/") else path


def translate_args(argv: list[str], root: Path) -> list[str]:
    """Absolute path arguments (`/x`, `--flag=/x`) of the program resolved in the container."""
    out = [argv[0]] if argv else []
    for arg in argv[1:]:
        if arg.startswith("/"):
            out.append(in_container(arg, root))
        elif arg.startswith("--") and "=/" in arg:
            flag, _, value = arg.partition("=")
            out.append(f"{flag}={in_container(value, root)}")
        else:
            out.append(arg)
    return out


def to_host(path: str, container_roots: list[str], mounts: list[dict[str, str]]) -> str:
    """A path a process wrote (through its container root) as the host would read it."""
    for root, table in zip(container_roots, mounts, strict=True):
        if path == root or path.startswith(root + "/"):
            inside = "/" + path[len(root):].lstrip("/")
            for mount_path in sorted(table, key=len, reverse=True):
                if inside == mount_path or inside.startswith(mount_path.rstrip("/") + "/"):
                    return table[mount_path] + inside[len(mount_path):]
            return inside  # not on a hostPath: the host cannot see it (the check will say so)
    return path


def short_dir() -> Path:
    """A fresh directory as short as /tmp allows (`/tmp/m` + 5 characters), for node and
    container roots: the kubelet's own DRA socket path
    (`/var/lib/kubelet/plugins/<driver>/dra-<pod uid>.sock`, 93 bytes for our driver) leaves 12
    of the 105 bytes gRPC accepts for a unix socket path, in the container and on the host."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    for _ in range(100):
        path = Path("/tmp") / ("m" + "".join(secrets.choice(alphabet) for _ in range(5)))
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
            return path
    raise LocalInstallError("cannot make a container root in /tmp")


def explicit_defaults(argv: list[str], env: dict[str, str]) -> list[str]:
    """`argv` of `python -m mock_accel.cli` plus every path option left at its default, made
    explicit, so that it too is resolved inside the container root."""
    from mock_accel import cli
    parser = cli.build_parser()
    try:
        args, _ = parser.parse_known_args(argv)
    except SystemExit:
        raise LocalInstallError(f"the chart's arguments do not parse: {argv}") from None
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    given = {arg.split("=", 1)[0] for arg in argv if arg.startswith("-")}
    extra = []
    for action in sub.choices[args.command]._actions:
        if (action.option_strings and isinstance(action.default, str)
                and action.default.startswith("/") and not given & set(action.option_strings)):
            extra.append(f"{action.option_strings[-1]}={action.default}")
    if args.command == "node-agent" and "--plugin-socket-dir" not in given:
        # run_node_agent's own default (not an argparse default)
        driver = (args.driver_name if "--driver-name" in given
                  else env.get("DRIVER_NAME") or cli.DEFAULT_DRIVER)  # the container's default
        extra.append(f"--plugin-socket-dir=/var/lib/kubelet/plugins/{driver}")
    return argv + extra


def token_kubeconfig(admin_kubeconfig: str, pod: dict, path: Path,
                     seconds: int = 3600) -> Path:
    """A kubeconfig with a token of the pod's ServiceAccount bound to the pod (TokenRequest, as
    the kubelet asks for a projected token), next to the admin kubeconfig's cluster entry."""
    sa = pod["spec"].get("serviceAccountName") or "default"
    namespace = pod["metadata"]["namespace"]
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
               "spec": {"expirationSeconds": seconds, "boundObjectRef": {
                   "apiVersion": "v1", "kind": "Pod", "name": pod["metadata"]["name"],
                   "uid": pod["metadata"]["uid"]}}}
    answer = KubeClient.from_kubeconfig(admin_kubeconfig).create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{sa}/token", request)
    admin = yaml.safe_load(Path(admin_kubeconfig).read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])
    cluster = next(c for c in admin["clusters"] if c["name"] == context["context"]["cluster"])
    ca = cluster["cluster"].get("certificate-authority")
    if ca and not Path(ca).is_absolute():
        cluster = {**cluster, "cluster": {**cluster["cluster"], "certificate-authority":
                                          str(Path(admin_kubeconfig).parent / ca)}}
    config = {"apiVersion": "v1", "kind": "Config", "clusters": [cluster],
              "users": [{"name": sa, "user": {"token": answer["status"]["token"]}}],
              "contexts": [{"name": "pod", "context": {"cluster": cluster["name"], "user": sa}}],
              "current-context": "pod"}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


# -- state ----------------------------------------------------------------------------------
@dataclass
class Process:
    node: str
    pod: str
    pod_uid: str
    container: str
    argv: list[str]
    env: dict[str, str]
    root: str
    mounts: dict[str, str]
    log: str
    pid: int = 0


@dataclass
class LocalInstall:
    """The chart's DaemonSet pods as local processes; saved as JSON in `state_file`."""
    kubeconfig: str
    namespace: str
    driver: str
    workdir: str
    state_file: str
    nodes: dict[str, str] = field(default_factory=dict)        # node -> node root
    node_kubeconfigs: dict[str, str] = field(default_factory=dict)
    processes: list[Process] = field(default_factory=list)
    containerfile: str = str(CONTAINERFILE)
    container_roots: list[str] = field(default_factory=list)

    # -- persistence -------------------------------------------------------------------------
    def save(self) -> None:
        Path(self.state_file).parent.mkdir(parents=True, exist_ok=True)
        Path(self.state_file).write_text(json.dumps(asdict(self), indent=1) + "\n")

    @classmethod
    def load(cls, state_file: str | Path) -> LocalInstall:
        data = json.loads(Path(state_file).read_text())
        data["processes"] = [Process(**p) for p in data["processes"]]
        return cls(**data)

    @property
    def client(self) -> KubeClient:
        return KubeClient.from_kubeconfig(self.kubeconfig)

    # -- nodes -------------------------------------------------------------------------------
    def add_nodes(self, cluster_state: dict, topology: SimConfig = NODE_TOPOLOGY) -> None:
        """A simulated node (the devices of the kernel module) per node of the cluster."""
        for name in cluster_state["nodes"]:
            root = short_dir()
            self.nodes[name] = str(root)
            self.save()
            seed = int.from_bytes(name.encode()[-6:].rjust(6, b"\0"))
            SimNode.create(root, replace(topology, firmware=ensure_firmware(Path(self.workdir)),
                                         uuid_seed=seed))
            self.nodes[name] = str(root)
            self.node_kubeconfigs[name] = cluster_state["node_kubeconfigs"][name]
        self.save()

    def sim(self, node: str) -> SimNode:
        return SimNode(self.nodes[node])

    def host_path(self, node: str, path: str) -> Path:
        """`path` on `node` (its root directory here)."""
        return Path(self.nodes[node]) / path.lstrip("/")

    # -- pods ---------------------------------------------------------------------------------
    def daemonset_pods(self, daemonsets: list[dict], timeout: float = 60) -> list[dict]:
        """Wait until every DaemonSet has a pod bound on each of our nodes; return them."""
        client, deadline = self.client, time.monotonic() + timeout
        while True:
            pods, missing = [], []
            for ds in daemonsets:
                items = client.list(f"/api/v1/namespaces/{ds['metadata']['namespace']}/pods")
                owned = {p["spec"].get("nodeName"): p for p in items
                         if any(o.get("kind") == "DaemonSet" and o["name"] == ds["metadata"]["name"]
                                for o in p["metadata"].get("ownerReferences") or [])
                         and not p["metadata"].get("deletionTimestamp")}
                for node in self.nodes:
                    (pods.append(owned[node]) if node in owned
                     else missing.append(f"{ds['metadata']['name']} on {node}"))
            if not missing:
                return pods
            if time.monotonic() > deadline:
                raise LocalInstallError(f"no DaemonSet pod bound for: {', '.join(missing)} "
                                        f"after {timeout:.0f} s")
            time.sleep(0.5)

    def start_pod(self, pod: dict, log_dir: Path) -> list[Process]:
        """Run the pod's init containers to completion, then start its containers."""
        node = pod["spec"]["nodeName"]
        index = len(self.processes)
        started = []
        kubeconfig = token_kubeconfig(self.kubeconfig, pod,
                                      Path(self.workdir) / f"token-{index}.kubeconfig")
        for kind in ("initContainers", "containers"):
            for container in pod["spec"].get(kind) or []:
                root = short_dir()
                self.container_roots.append(str(root))
                self.save()
                mounts = host_mounts(pod, container)
                build_container_root(root, Path(self.nodes[node]), mounts)
                env = {**container_env(pod, container), "KUBECONFIG": str(kubeconfig)}
                argv = container_argv(container, Path(self.containerfile))
                if argv[1:3] == ["-m", "mock_accel.cli"]:
                    argv = argv[:3] + explicit_defaults(argv[3:], env)
                argv = translate_args(argv, root)
                env = {k: (in_container(v, root) if v.startswith("/") and k != "KUBECONFIG"
                           else v) for k, v in env.items()}
                log = log_dir / f"{node}.{pod['metadata']['name']}.{container['name']}.log"
                process = Process(node, pod["metadata"]["name"], pod["metadata"]["uid"],
                                  container["name"], argv, env, str(root), mounts, str(log))
                self.processes.append(process)
                self._spawn(process, wait=kind == "initContainers")
                started.append(process)
        self.save()
        return started

    def _spawn(self, process: Process, wait: bool) -> None:
        Path(process.log).parent.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
        env.update(process.env)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        with open(process.log, "ab") as log:
            child = subprocess.Popen(process.argv, env=env, stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL, cwd=process.root,
                                     start_new_session=True)
        process.pid = child.pid
        if wait:
            code = child.wait(timeout=120)
            if code:
                raise LocalInstallError(f"init container {process.container} of {process.pod} "
                                        f"exited with {code}:\n{self.log_tail(process)}")

    def log_tail(self, process: Process, lines: int = 20) -> str:
        try:
            return "\n".join(Path(process.log).read_text().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def alive(self, process: Process) -> bool:
        """Is the pid still running our command line?"""
        try:
            cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")[:-1]
        except OSError:
            return False
        return [part.decode() for part in cmdline] == process.argv

    def mark_ready(self, pod: dict, settle: float = 2.0) -> dict:
        """Once the pod's processes have stayed up `settle` s, report it Running and Ready the
        way a kubelet does: a status update with the node's own credentials."""
        mine = [p for p in self.processes if p.pod_uid == pod["metadata"]["uid"]]
        time.sleep(settle)
        for process in mine:
            if pod_container(pod, process.container, "initContainers"):
                continue
            if not self.alive(process):
                raise LocalInstallError(f"{process.container} of {process.pod} on "
                                        f"{process.node} exited:\n{self.log_tail(process)}")
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        statuses = [{"name": c["name"], "ready": True, "started": True, "restartCount": 0,
                     "image": c["image"], "imageID": "", "containerID": f"local://{p.pid}",
                     "state": {"running": {"startedAt": now}}}
                    for c in pod["spec"]["containers"] for p in mine if p.container == c["name"]]
        conditions = [{"type": kind, "status": "True", "lastTransitionTime": now}
                      for kind in ("PodReadyToStartContainers", "Initialized", "ContainersReady",
                                   "Ready", "PodScheduled")]
        node_client = KubeClient.from_kubeconfig(self.node_kubeconfigs[pod["spec"]["nodeName"]])
        path = (f"/api/v1/namespaces/{pod['metadata']['namespace']}/pods/"
                f"{pod['metadata']['name']}")
        current = node_client.get(path)
        current["status"] = {**current.get("status", {}), "phase": "Running",
                             "conditions": conditions, "hostIP": "127.0.0.1",
                             "podIP": "127.0.0.1", "startTime": now,
                             "containerStatuses": statuses}
        return node_client.replace(path + "/status", current)

    # -- tear down ----------------------------------------------------------------------------
    def stop(self, timeout: float = 15) -> list[str]:
        """SIGTERM every process still running our command, SIGKILL after `timeout`."""
        stopped = []
        running = [p for p in self.processes if self.alive(p)]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while any(self.alive(p) for p in running) and time.monotonic() < deadline:
            time.sleep(0.2)
        for process in running:
            if self.alive(process):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
            stopped.append(f"{process.node}/{process.container} (pid {process.pid})")
        for root in self.nodes.values():  # simulated nodes, all ours
            shutil.rmtree(root, ignore_errors=True)
        for root in self.container_roots:  # symlinks only: never follow them
            for directory, dirs, files in os.walk(root, topdown=False):
                for name in files + dirs:
                    path = os.path.join(directory, name)
                    with contextlib.suppress(OSError):
                        (os.rmdir if os.path.isdir(path) and not os.path.islink(path)
                         else os.unlink)(path)
            with contextlib.suppress(OSError):
                Path(root).rmdir()
        return stopped


def pod_container(pod: dict, name: str, kind: str = "containers") -> dict | None:
    return next((c for c in pod["spec"].get(kind) or [] if c["name"] == name), None)


def kubelet_registry(install: LocalInstall, node: str) -> Path:
    return install.host_path(node, KUBELET_REGISTRY)


def cdi_dirs(install: LocalInstall, node: str) -> list[Path]:
    return [install.host_path(node, d) for d in CDI_DIRS]


def host_endpoint(install: LocalInstall, node: str, endpoint: str) -> Path:
    """Where a kubelet on `node` would connect for the `endpoint` a plugin registered."""
    mine = [p for p in install.processes if p.node == node]
    path = to_host(endpoint, [p.root for p in mine], [p.mounts for p in mine])
    return install.host_path(node, path)


def as_written(install: LocalInstall, node: str, path: str) -> str:
    """A path a process on `node` wrote (a CDI spec's hostPath, say) as the program itself wrote
    it, i.e. without the container root it ran in: in a real pod that string is all the host
    gets."""
    mine = [p for p in install.processes if p.node == node]
    for process in mine:
        if (path + "/").startswith(process.root + "/"):
            return "/" + path[len(process.root):].lstrip("/")
    # a path resolved through the container root's symlinks (os.path.realpath) lands in the
    # node root; inside a pod it would have resolved to the mount path
    node_root = install.nodes[node]
    if (path + "/").startswith(node_root + "/"):
        on_host = "/" + path[len(node_root):].lstrip("/")
        for process in mine:
            for mount_path, host_path in process.mounts.items():
                if (on_host + "/").startswith(host_path.rstrip("/") + "/"):
                    return mount_path + on_host[len(host_path.rstrip("/")):]
    return path


def registered_plugins(install: LocalInstall, node: str, timeout: float = 30) -> list[dict]:
    """The kubelet's registration handshake with every plugin on `node` (our emulator, over the
    real gRPC protocol); checks that each endpoint is a socket where the host's kubelet looks."""
    import stat

    from tests.kubelet.emulator import KubeletEmulator
    emulator = KubeletEmulator(kubelet_registry(install, node))
    rows = []
    try:
        emulator.wait_for_socket(timeout=timeout)
        for socket in emulator.sockets():
            plugin = emulator.register(socket)
            on_host = host_endpoint(install, node, plugin.info.endpoint)
            if not stat.S_ISSOCK(on_host.lstat().st_mode):
                raise LocalInstallError(f"{plugin.info.name} on {node} names endpoint "
                                        f"{plugin.info.endpoint}, not a socket on the host")
            rows.append({"node": node, "registration socket": socket.name,
                         "dial": plugin.info.endpoint,
                         "plugin": plugin.info.name,
                         "endpoint (host)": "/" + str(on_host.relative_to(install.nodes[node])),
                         "DRA service": plugin.service,
                         "health service": plugin.health_service or "-"})
    finally:
        emulator.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.chart_local",
                                     description="stop the processes of a local install")
    parser.add_argument("command", choices=["down", "status"])
    parser.add_argument("--state-file", required=True)
    args = parser.parse_args(argv)
    if not Path(args.state_file).exists():
        print(f"no local install state at {args.state_file}; nothing to do")
        return 0
    install = LocalInstall.load(args.state_file)
    if args.command == "status":
        for process in install.processes:
            state = "running" if install.alive(process) else "stopped"
            print(f"{process.node:12s} {process.container:24s} pid {process.pid:<8d} {state}")
        return 0
    for line in install.stop():
        print(f"stopped {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One kind cluster's lifecycle from the offline node image: up, artefacts, down.

`up` writes the project's kind config (tests/e2e/kind/kind-config.yaml, unchanged) plus N
`role: worker` nodes to a temporary file, creates the cluster from the offline node image
(tools/kind/nodeimage.py) with our dockerd's runc wrapper as the default runtime, waits for every
node to be Ready (a progress line per change), points the nodes' containerd at the local
registry (tools/registry `configure_nodes`) and waits for the default ServiceAccount (pods are
refused until it exists). A failed `up` deletes the cluster. `logs` collects pod logs, events,
every node's kubelet, containerd and mock-accel-cni journals and `measure.json` into a
directory and never raises; `down` deletes the cluster.

    python -m tools.kind.cluster up [--name N] [--workers N] [--kubeconfig PATH]
    python -m tools.kind.cluster logs [--name N] [--kubeconfig PATH] --out DIR
    python -m tools.kind.cluster down [--name N]

A package, not a module of tools/kind: the node image's cache key digests that folder's own
`.py` files (tools/kind/nodeimage.py), and this one is not an input of the image.
"""
from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mock_accel import kubebins
from mock_accel.wait import WaitTimeout, wait_until
from tools import gotools, registry
from tools.docker import HOST, answers, env
from tools.docker.runtime import register
from tools.kind import nodeimage
from tools.locate import REPO

CONFIG = REPO / "tests" / "e2e" / "kind" / "kind-config.yaml"
DEFAULT_NAME = "mock-accel-e2e"
CREATE_TIMEOUT = 900.0
READY_TIMEOUT = 300.0
# the journals `collect` saves; mock-accel-cni is the offline image's CNI (tools/kind/README.md)
UNITS = ("kubelet", "containerd", "mock-accel-cni")


class ClusterError(RuntimeError):
    """The cluster cannot be created or made usable; the message names the step."""


@dataclass
class Cluster:
    """A kind cluster of ours: its name, admin kubeconfig and the step times of `up`."""
    name: str = DEFAULT_NAME
    kubeconfig: Path = Path()
    times: dict[str, float] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return str(gotools.ensure("kind") / "kind")

    @property
    def kubectl(self) -> str:
        return str(kubebins.ensure_bins(("kubectl",))["kubectl"])

    @property
    def helm(self) -> str:
        return str(kubebins.ensure_bins(("helm",))["helm"])

    def run(self, *cmd: str, timeout: float = 600, check: bool = True,
            **kw) -> subprocess.CompletedProcess:
        """A command against our dockerd; `check`: a failure raises ClusterError with its output."""
        r = subprocess.run(list(cmd), env=env(), capture_output=True, text=True,
                           timeout=timeout, **kw)
        if check and r.returncode:
            raise ClusterError(f"{' '.join(cmd[:4])}...: exit {r.returncode}: "
                               f"{(r.stdout + r.stderr).strip()[-2000:]}")
        return r

    def kubectl_run(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.run(self.kubectl, "--kubeconfig", str(self.kubeconfig), *args, **kw)

    def nodes(self) -> list[str]:
        """The cluster's node containers (control plane first), [] when there is no cluster."""
        r = self.run(self.kind, "get", "nodes", "--name", self.name, check=False, timeout=60)
        names = r.stdout.split() if r.returncode == 0 else []
        return sorted(names, key=lambda n: (not n.endswith("-control-plane"), n))

    def device_nodes(self) -> list[str]:
        """Where the chart's DaemonSets run: the workers, or the control plane alone
        (kind taints the control plane NoSchedule only when there are workers)."""
        nodes = self.nodes()
        return [n for n in nodes if not n.endswith("-control-plane")] or nodes


def kind_config(workers: int = 0, base: Path = CONFIG) -> str:
    """The project's kind config with `workers` worker nodes added (each with the control
    plane's mounts): the file itself stays as it is."""
    if workers < 0:
        raise ClusterError(f"workers must be 0 or more, not {workers}")
    config = yaml.safe_load(base.read_text())
    (plane,) = [n for n in config["nodes"] if n["role"] == "control-plane"]
    rest = {k: v for k, v in plane.items() if k != "role"}
    config["nodes"] = [plane] + [{"role": "worker", **copy.deepcopy(rest)}
                                 for _ in range(workers)]
    return yaml.safe_dump(config, sort_keys=False)


def say(message: str) -> None:
    print(f"==> [kind {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _ready(c: Cluster, seen: dict) -> bool:
    """Whether every node is Ready; prints a line whenever the picture changes."""
    r = c.kubectl_run("get", "nodes", "-o", "json", check=False, timeout=60)
    if r.returncode:
        return False
    state = {n["metadata"]["name"]: next((x["status"] for x in n["status"]["conditions"]
                                          if x["type"] == "Ready"), "Unknown")
             for n in json.loads(r.stdout)["items"]}
    if state != seen:
        seen.clear()
        seen.update(state)
        say("nodes " + ", ".join(f"{k}: Ready={v}" for k, v in sorted(state.items())))
    return bool(state) and all(v == "True" for v in state.values())


def _step(c: Cluster, name: str, started: float) -> None:
    c.times[f"{name}_seconds"] = round(time.monotonic() - started, 1)
    say(f"{name}: {c.times[f'{name}_seconds']} s")


def up(name: str = DEFAULT_NAME, workers: int = 0, kubeconfig: Path | None = None) -> Cluster:
    """Create the cluster (deleting a leftover of the same name first); delete it on failure."""
    if not answers():
        raise ClusterError(f"step dockerd: no dockerd of ours answers on {HOST}: "
                           "make dockerd-up")
    c = Cluster(name, Path(kubeconfig or Path(tempfile.mkdtemp(prefix=f"{name}-")) /
                       "kubeconfig"))
    t0 = time.monotonic()
    register(default=True)  # kind's nodes are privileged: our runc wrapper
    image = nodeimage.build()
    _step(c, "node_image", t0)
    if c.nodes():
        say(f"deleting a leftover cluster {name}")
        down(name)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="kind-config-") as f:
        f.write(kind_config(workers))
        f.flush()
        t1 = time.monotonic()
        say(f"kind create cluster --name {name} ({1 + workers} nodes, image {image})")
        try:
            c.run(c.kind, "create", "cluster", "--name", name, "--image", image, "--config",
                  f.name, "--kubeconfig", str(c.kubeconfig), "--wait", "240s",
                  timeout=CREATE_TIMEOUT)
            _step(c, "create", t1)
            t2, seen = time.monotonic(), {}
            wait_until(lambda: _ready(c, seen), READY_TIMEOUT, "every node Ready", interval=2)
            registry.configure_nodes(c.nodes())
            # kind waits for the nodes, not for the controller-manager's first work
            wait_until(lambda: c.kubectl_run("get", "serviceaccount", "default", check=False,
                                             timeout=60).returncode == 0, 120,
                       "serviceaccount default", interval=1)
            _step(c, "ready", t2)
        except (ClusterError, WaitTimeout, registry.RegistryError,
                subprocess.TimeoutExpired) as e:
            down(name)
            raise ClusterError(f"step cluster up ({name}): {e}") from None
    c.times["up_seconds"] = round(time.monotonic() - t0, 1)
    say(f"cluster {name} up in {c.times['up_seconds']} s: kubeconfig {c.kubeconfig}")
    return c


def down(name: str = DEFAULT_NAME) -> float:
    """Delete the cluster (nothing when there is none); the seconds it took."""
    t0 = time.monotonic()
    c = Cluster(name)
    c.run(c.kind, "delete", "cluster", "--name", name, check=False, timeout=300)
    return round(time.monotonic() - t0, 1)


def _save(c: Cluster, path: Path, cmd: list[str]) -> None:
    try:
        r = c.run(*cmd, check=False, timeout=120)
        path.write_text(r.stdout + r.stderr)
    except (OSError, subprocess.SubprocessError) as e:
        path.write_text(f"{' '.join(cmd)}: {e}\n")


def collect(c: Cluster, out: Path, measure: dict | None = None) -> Path:
    """Pod logs, events, every node's `UNITS` journals and `measure.json`
    (the cluster's times and `measure`) into `out`; never raises."""
    out.mkdir(parents=True, exist_ok=True)
    k = [c.kubectl, "--kubeconfig", str(c.kubeconfig)]
    _save(c, out / "pods.txt", [*k, "get", "pods", "-A", "-o", "wide"])
    _save(c, out / "events.txt", [*k, "get", "events", "-A", "--sort-by=.lastTimestamp"])
    try:
        pods = json.loads(c.kubectl_run("get", "pods", "-A", "-o", "json", check=False,
                                        timeout=60).stdout)["items"]
    except (ValueError, KeyError, OSError, subprocess.SubprocessError):
        pods = []
    for p in pods:
        ns, name = p["metadata"]["namespace"], p["metadata"]["name"]
        _save(c, out / f"pod-{ns}-{name}.log",
              [*k, "logs", "-n", ns, name, "--all-containers", "--prefix"])
    for node in c.nodes():
        for unit in UNITS:
            _save(c, out / f"{unit}-{node}.log",
                  ["docker", "exec", node, "journalctl", "-u", unit, "--no-pager"])
    (out / "measure.json").write_text(
        json.dumps({**c.times, **(measure or {})}, indent=2) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.kind.cluster",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("up", "logs", "down"))
    parser.add_argument("--name", default=DEFAULT_NAME)
    parser.add_argument("--workers", type=int, default=0, help="up: worker nodes (default 0)")
    parser.add_argument("--kubeconfig", type=Path, help="up: where to write it; logs: to use")
    parser.add_argument("--out", type=Path, help="logs: the artefacts directory")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            up(args.name, args.workers, args.kubeconfig)
        elif args.command == "down":
            say(f"cluster {args.name} deleted in {down(args.name)} s")
        else:
            if args.out is None or args.kubeconfig is None:
                parser.error("logs needs --kubeconfig and --out")
            say(f"artefacts in {collect(Cluster(args.name, args.kubeconfig), args.out)}")
    except (ClusterError, kubebins.BuildError, gotools.BuildError) as e:
        print(f"tools.kind.cluster: {e}", file=sys.stderr)
        return 1
    return 0

"""Two kind workers from the offline node image, each with its own pod subnet, their pods reach
each other (tools/kind/mock-accel-cni.sh, kindnetd's job on that image; issue 14 item 4).

`make test-kind` runs it (not `make test`). One control plane and two workers from
tests/e2e/kind/kind-config.yaml and the offline image: every node Ready, and Ready no earlier
than its CNI config was written; each node's CNI config is a bridge on its own `spec.podCIDR`
and routes every other node's podCIDR via that node's InternalIP; a busybox pod pinned to each
worker gets an IP in its node's podCIDR, and the pod on one worker fetches a page from the pod
on the other (busybox `nc`: the `wget` of Debian's static busybox crashes), which sees the
client pod's own address (no masquerade between pods). The cluster is deleted on failure too;
the units' journals and the times land in artifacts/kind/.
"""
from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from mock_accel.wait import wait_until
from tools import gotools
from tools.docker import HOST, answers
from tools.docker.runtime import register
from tools.images.busybox import build_busybox
from tools.kind import nodeimage
from tools.locate import REPO

pytestmark = [pytest.mark.kind, pytest.mark.skipif(
    os.environ.get("MOCK_ACCEL_KIND_TEST") != "1",
    reason="creates a kind cluster: `make test-kind` runs it (MOCK_ACCEL_KIND_TEST=1)")]
CLUSTER = "mock-accel-kindnodes"
CONFIG = REPO / "tests" / "e2e" / "kind" / "kind-config.yaml"
CONFLIST = "/etc/cni/net.d/10-mock-accel-bridge.conflist"
BUSYBOX = "mock-accel/busybox:kind-network"
ARTIFACTS = REPO / "artifacts" / "kind"
WORKERS = (f"{CLUSTER}-worker", f"{CLUSTER}-worker2")


def _run(*cmd: str, timeout: float = 600, check: bool = True,
         **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(list(cmd), env={**os.environ, "DOCKER_HOST": HOST}, capture_output=True,
                       text=True, timeout=timeout, **kw)
    assert not check or r.returncode == 0, (
        f"{' '.join(cmd)}: {r.stdout[-3000:]}{r.stderr[-3000:]}")
    return r


def two_worker_config(path: Path) -> Path:
    """The project's kind config with two `role: worker` nodes beside its control plane (the
    image comes from `--image`)."""
    cfg = yaml.safe_load(CONFIG.read_text())
    (cp,) = cfg["nodes"]
    cp.pop("image", None)
    cfg["name"] = CLUSTER
    cfg["nodes"] = [cp, *({**cp, "role": "worker"} for _ in WORKERS)]
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def create_cluster(kind: str, image: str, config: Path, kubeconfig: Path, logs: Path) -> None:
    """`kind create cluster` (the kind lifecycle module replaces this at merge)."""
    _run(kind, "delete", "cluster", "--name", CLUSTER, check=False, timeout=300)
    created = _run(kind, "create", "cluster", "--name", CLUSTER, "--image", image, "--config",
                   str(config), "--kubeconfig", str(kubeconfig), "--wait", "300s", "--retain",
                   check=False, timeout=1200)
    if created.returncode:
        _run(kind, "export", "logs", str(logs), "--name", CLUSTER, check=False, timeout=300)
        pytest.fail(f"kind create cluster failed (logs in {logs}):\n"
                    f"{created.stdout[-3000:]}{created.stderr[-3000:]}")


def _journals(nodes: list[str]) -> None:
    """Each node's mock-accel-cni journal into ARTIFACTS (never raises)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for node in nodes:
        r = _run("docker", "exec", node, "journalctl", "-u", "mock-accel-cni", "--no-pager",
                 check=False, timeout=60)
        (ARTIFACTS / f"mock-accel-cni-{node}.log").write_text(r.stdout + r.stderr)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    assert answers(), f"no dockerd of ours answers on {HOST}: make dockerd-up"
    register(default=True)  # kind's nodes are privileged: our runc wrapper
    image = nodeimage.build()
    kind = str(gotools.ensure("kind") / "kind")
    tmp = tmp_path_factory.mktemp("kind-network")
    c = {"kind": kind, "kubeconfig": tmp / "kubeconfig", "measure": {},
         "kubectl": str(nodeimage.kubebins.ensure_bins(("kubectl",))["kubectl"])}
    t0 = time.monotonic()
    try:
        create_cluster(kind, image, two_worker_config(tmp / "kind.yaml"), c["kubeconfig"],
                       tmp / "logs")
        c["measure"]["create_seconds"] = round(time.monotonic() - t0, 1)
        yield c
    finally:
        _journals([f"{CLUSTER}-control-plane", *WORKERS])
        _run(kind, "delete", "cluster", "--name", CLUSTER, check=False, timeout=300)


def kubectl(c: dict, *args: str, **kw) -> subprocess.CompletedProcess:
    return _run(c["kubectl"], "--kubeconfig", str(c["kubeconfig"]), *args, **kw)


def _nodes(c: dict) -> dict[str, dict]:
    items = json.loads(kubectl(c, "get", "nodes", "-o", "json").stdout)["items"]
    return {n["metadata"]["name"]: n for n in items}


def _ready(node: dict) -> dict:
    (cond,) = [x for x in node["status"]["conditions"] if x["type"] == "Ready"]
    return cond


def _ip(node: dict) -> str:
    (ip,) = [a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP"]
    return ip


def test_every_node_is_ready_on_its_own_subnet_with_routes_to_the_others(cluster):
    t0 = time.monotonic()
    wait_until(lambda: all(_ready(n)["status"] == "True" for n in _nodes(cluster).values()),
               timeout=300, interval=2, what="every node Ready")
    nodes = _nodes(cluster)
    assert sorted(nodes) == sorted([f"{CLUSTER}-control-plane", *WORKERS])
    cidrs = {name: ipaddress.ip_network(n["spec"]["podCIDR"]) for name, n in nodes.items()}
    assert len(set(cidrs.values())) == 3
    assert all(c.subnet_of(ipaddress.ip_network("10.244.0.0/16")) for c in cidrs.values())
    # the node's routes are kept by the unit's loop: the last node to join may lag a few s
    wait_until(lambda: all(_routes(n) == {str(cidrs[o]): _ip(nodes[o]) for o in nodes if o != n}
                           for n in nodes), timeout=60, interval=2, what="routes on every node")
    for name, node in nodes.items():
        conf = json.loads(_run("docker", "exec", name, "cat", CONFLIST).stdout)
        bridge = conf["plugins"][0]
        assert bridge["type"] == "bridge" and not bridge["ipMasq"]
        assert bridge["ipam"]["ranges"] == [[{"subnet": str(cidrs[name])}]]
        # the kubelet kept the node NotReady until the unit wrote the config
        written = int(_run("docker", "exec", name, "stat", "-c", "%Y", CONFLIST).stdout)
        ready = datetime.fromisoformat(_ready(node)["lastTransitionTime"].replace("Z", "+00:00"))
        assert ready.timestamp() >= written, (name, ready, written)
    cluster["measure"]["all_ready_seconds"] = round(time.monotonic() - t0, 1)


def _routes(node: str) -> dict[str, str]:
    """The routes the unit owns on `node` (protocol 77): destination -> gateway."""
    out = _run("docker", "exec", node, "ip", "-4", "route", "show", "proto", "77").stdout
    return {f[0]: f[f.index("via") + 1] for f in (x.split() for x in out.splitlines())}


def _pod(name: str, node: str, script: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "restartPolicy": "Never", "containers": [{
                "name": name, "image": BUSYBOX, "imagePullPolicy": "Never",
                "command": ["sh", "-c", script]}]}}


def test_a_pod_on_one_worker_reaches_a_pod_on_the_other(cluster):
    build_busybox(BUSYBOX)
    _run(cluster["kind"], "load", "docker-image", BUSYBOX, "--name", CLUSTER)
    wait_until(lambda: kubectl(cluster, "get", "serviceaccount", "default", check=False)
               .returncode == 0, timeout=120, interval=1, what="serviceaccount default")
    a, b = WORKERS
    t0 = time.monotonic()
    server = "mkdir /www && echo from-$(hostname) > /www/index.html && httpd -f -vv -p 8080 -h /www"
    kubectl(cluster, "apply", "-f", "-", input=json.dumps(_pod("server", b, server)))
    ip = wait_until(lambda: _status(cluster, "server").get("podIP"), timeout=180, interval=1,
                    what="pod server's IP")
    nodes = _nodes(cluster)
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(nodes[b]["spec"]["podCIDR"])
    kubectl(cluster, "apply", "-f", "-", input=json.dumps(
        _pod("client", a, f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 10 {ip} 8080 | tail -n 1")))
    phase = wait_until(lambda: _status(cluster, "client").get("phase") in ("Succeeded", "Failed")
                       and _status(cluster, "client")["phase"], timeout=180, interval=1,
                       what="pod client to finish")
    logs = kubectl(cluster, "logs", "client").stdout.strip()
    assert phase == "Succeeded", logs
    assert logs == "from-server"
    client_ip = _status(cluster, "client")["podIP"]
    assert ipaddress.ip_address(client_ip) in ipaddress.ip_network(nodes[a]["spec"]["podCIDR"])
    # the server saw the client pod's own address: no masquerade between the nodes' pods
    logs = kubectl(cluster, "logs", "server").stdout  # `[::ffff:a.b.c.d]:port: url:/`
    assert set(re.findall(r"^\[?(?:::ffff:)?([\d.]+)\]?:\d+:", logs, re.M)) == {client_ip}, logs
    cluster["measure"]["pods_seconds"] = round(time.monotonic() - t0, 1)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "network.json").write_text(json.dumps(cluster["measure"], indent=2) + "\n")
    print(cluster["measure"])


def _status(c: dict, pod: str) -> dict:
    return json.loads(kubectl(c, "get", "pod", pod, "-o", "json").stdout)["status"]

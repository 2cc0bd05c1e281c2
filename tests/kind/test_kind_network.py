"""Two kind workers from the offline node image, each with its own pod subnet, their pods reach
each other (tools/kind/mock-accel-cni.sh, kindnetd's job on that image; issue 14 item 4).

`make test-kind` runs it (not `make test`) on the session's cluster (tests/kind/conftest.py: one
control plane and two workers from tests/e2e/kind/kind-config.yaml and the offline image):
every node Ready, and Ready no earlier than its CNI config was written; each node's CNI config
is a bridge on its own `spec.podCIDR` and routes every other node's podCIDR via that node's
InternalIP; a busybox pod pinned to each worker gets an IP in its node's podCIDR, and the pod on
one worker fetches a page from the pod on the other (busybox `nc`: the `wget` of Debian's static
busybox crashes), which sees the client pod's own address (no masquerade between pods). The
units' journals (`tools.kind.cluster.collect`) and the times (`network_*` in measure.json) land
in artifacts/kind/.
"""
from __future__ import annotations

import ipaddress
import json
import os
import re
import time
from datetime import datetime

import pytest

from mock_accel.wait import wait_until
from tests.kind.conftest import MEASURE, run
from tools.images.busybox import build_busybox

pytestmark = [pytest.mark.kind, pytest.mark.skipif(
    os.environ.get("MOCK_ACCEL_KIND_TEST") != "1",
    reason="creates a kind cluster: `make test-kind` runs it (MOCK_ACCEL_KIND_TEST=1)")]
CONFLIST = "/etc/cni/net.d/10-mock-accel-bridge.conflist"
BUSYBOX = "mock-accel/busybox:kind-network"


def _nodes(c) -> dict[str, dict]:
    items = json.loads(c.kubectl_run("get", "nodes", "-o", "json").stdout)["items"]
    return {n["metadata"]["name"]: n for n in items}


def _ready(node: dict) -> dict:
    (cond,) = [x for x in node["status"]["conditions"] if x["type"] == "Ready"]
    return cond


def _ip(node: dict) -> str:
    (ip,) = [a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP"]
    return ip


def test_every_node_is_ready_on_its_own_subnet_with_routes_to_the_others(kind):
    t0 = time.monotonic()
    wait_until(lambda: all(_ready(n)["status"] == "True" for n in _nodes(kind).values()),
               timeout=300, interval=2, what="every node Ready")
    nodes = _nodes(kind)
    workers = kind.device_nodes()
    assert len(workers) == 2, "the session's cluster has two workers (tests/kind/conftest.py)"
    assert sorted(nodes) == sorted([f"{kind.name}-control-plane", *workers])
    cidrs = {name: ipaddress.ip_network(n["spec"]["podCIDR"]) for name, n in nodes.items()}
    assert len(set(cidrs.values())) == 3
    assert all(c.subnet_of(ipaddress.ip_network("10.244.0.0/16")) for c in cidrs.values())
    # the node's routes are kept by the unit: the last node to join may lag a few s
    wait_until(lambda: all(_routes(n) == {str(cidrs[o]): _ip(nodes[o]) for o in nodes if o != n}
                           for n in nodes), timeout=60, interval=2, what="routes on every node")
    for name, node in nodes.items():
        conf = json.loads(run("docker", "exec", name, "cat", CONFLIST).stdout)
        bridge = conf["plugins"][0]
        assert bridge["type"] == "bridge" and not bridge["ipMasq"]
        assert bridge["ipam"]["ranges"] == [[{"subnet": str(cidrs[name])}]]
        # the kubelet kept the node NotReady until the unit wrote the config
        written = int(run("docker", "exec", name, "stat", "-c", "%Y", CONFLIST).stdout)
        ready = datetime.fromisoformat(_ready(node)["lastTransitionTime"].replace("Z", "+00:00"))
        assert ready.timestamp() >= written, (name, ready, written)
    MEASURE["network_all_ready_seconds"] = round(time.monotonic() - t0, 1)


def _routes(node: str) -> dict[str, str]:
    """The routes the unit owns on `node` (protocol 77): destination -> gateway."""
    out = run("docker", "exec", node, "ip", "-4", "route", "show", "proto", "77").stdout
    return {f[0]: f[f.index("via") + 1] for f in (x.split() for x in out.splitlines())}


def _pod(name: str, node: str, script: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "restartPolicy": "Never", "containers": [{
                "name": name, "image": BUSYBOX, "imagePullPolicy": "Never",
                "command": ["sh", "-c", script]}]}}


def test_a_pod_on_one_worker_reaches_a_pod_on_the_other(kind):
    build_busybox(BUSYBOX, own_id=True)
    run(kind.kind, "load", "docker-image", BUSYBOX, "--name", kind.name)
    a, b = kind.device_nodes()
    t0 = time.monotonic()
    server = "mkdir /www && echo from-$(hostname) > /www/index.html && httpd -f -vv -p 8080 -h /www"
    kind.kubectl_run("apply", "-f", "-", input=json.dumps(_pod("server", b, server)))
    # the pod has its IP once its sandbox runs, before its container does: wait for Running,
    # and the client retries while httpd is not listening yet (nc: connection refused)
    ip = wait_until(lambda: _status(kind, "server").get("phase") == "Running"
                    and _status(kind, "server").get("podIP"), timeout=180, interval=1,
                    what="pod server Running with its IP")
    nodes = _nodes(kind)
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(nodes[b]["spec"]["podCIDR"])
    # (the image has no /tmp: the last line, the page or nc's error, is kept in a variable)
    fetch = (f"for i in $(seq 30); do out=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | "
             f"nc -w 10 {ip} 8080 2>&1 | tail -n 1); case $out in from-*) break;; esac; "
             f"sleep 1; done; echo \"$out\"")
    kind.kubectl_run("apply", "-f", "-", input=json.dumps(_pod("client", a, fetch)))
    phase = wait_until(lambda: _status(kind, "client").get("phase") in ("Succeeded", "Failed")
                       and _status(kind, "client")["phase"], timeout=180, interval=1,
                       what="pod client to finish")
    logs = kind.kubectl_run("logs", "client").stdout.strip()
    assert phase == "Succeeded", logs
    assert logs == "from-server"
    client_ip = _status(kind, "client")["podIP"]
    assert ipaddress.ip_address(client_ip) in ipaddress.ip_network(nodes[a]["spec"]["podCIDR"])
    # the server saw the client pod's own address: no masquerade between the nodes' pods
    logs = kind.kubectl_run("logs", "server").stdout  # `[::ffff:a.b.c.d]:port: url:/`
    assert set(re.findall(r"^\[?(?:::ffff:)?([\d.]+)\]?:\d+:", logs, re.M)) == {client_ip}, logs
    MEASURE["network_pods_seconds"] = round(time.monotonic() - t0, 1)


def _status(c, pod: str) -> dict:
    return json.loads(c.kubectl_run("get", "pod", pod, "-o", "json").stdout)["status"]


def test_routes_follow_a_node_that_goes_and_comes_back(kind):
    """The unit follows the nodes (a watch): a deleted Node's route goes from every other node,
    and comes back, to its new podCIDR, once its kubelet registers it again. It runs last: the
    worker's own bridge config keeps its old podCIDR (the unit writes it once)."""
    gone = kind.device_nodes()[-1]
    others = [n for n in kind.nodes() if n != gone]
    old = _nodes(kind)[gone]
    t0 = time.monotonic()
    kind.kubectl_run("delete", "node", gone)
    wait_until(lambda: all(old["spec"]["podCIDR"] not in _routes(n) for n in others),
               timeout=60, interval=1, what=f"the route to {gone} gone")
    MEASURE["network_route_removed_seconds"] = round(time.monotonic() - t0, 1)
    run("docker", "exec", gone, "systemctl", "restart", "kubelet")
    back = wait_until(lambda: _nodes(kind).get(gone, {}).get("spec", {}).get("podCIDR"),
                      timeout=120, interval=1, what=f"{gone} registered again")
    wait_until(lambda: all(_routes(n).get(back) == _ip(old) for n in others), timeout=60,
               interval=1, what=f"the route to {gone} back")
    MEASURE["network_route_back_seconds"] = round(time.monotonic() - t0, 1)

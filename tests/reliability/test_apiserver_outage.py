"""kube-apiserver is stopped for 30 s under a running slice controller and node agent, while the
node changes (a device fails, VFs are enabled). Nothing may crash, the controller must back off
(a bounded number of retries), and once the API server is back its slices must match the node
within 5 s. The node agent answers a prepare during the outage with a per-claim error and
prepares the claim once the API server is back; the scheduler (restarted by the harness) then
allocates a VF that was enabled during the outage.

The controller's backoff cap is MAX_BACKOFF (3 s): with the default cap (30 s) a retry may be
due up to 30 s after the API server returns (see README.md)."""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from mock_accel.controller import comparable
from mock_accel.demo import Demo, DemoClaim, prepare_over_grpc
from mock_accel.kube import KubeClient
from mock_accel.sim import SimConfig
from mock_accel.slices import RESOURCE_SLICES_PATH

pytestmark = pytest.mark.cluster
OUTAGE_SECONDS = float(os.environ.get("MOCK_ACCEL_OUTAGE_SECONDS", "30"))
CONVERGE_SECONDS = 5.0
MAX_BACKOFF = 3.0
TOPOLOGY = SimConfig(num_devices=3, numa_nodes=1, total_vfs=2)
CLAIMS = [DemoClaim("before", "a PF, allocated before the outage", (("mock-accel-pf", 1),)),
          DemoClaim("after", "a VF enabled during the outage", (("mock-accel-vf", 1),))]


class Failures(logging.Handler):
    """Counts the controller's 'reconcile failed ... retry N' warnings."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.retries: list[int] = []

    def emit(self, record: logging.LogRecord) -> None:
        found = re.search(r"reconcile failed .*; retry (\d+) in", record.getMessage())
        if found:
            self.retries.append(int(found[1]))


def specs(slices: list[dict]) -> dict[str, str]:
    """Slice name -> what we manage in its spec (generation and owner left out)."""
    return {s["metadata"]["name"]: json.dumps(json.loads(comparable(s))["spec"], sort_keys=True)
            for s in slices}


def test_apiserver_outage(cluster, progress):
    workdir = Path(tempfile.mkdtemp(prefix="ma-out-"))
    client = KubeClient.from_kubeconfig(cluster.kubeconfig)
    label = {"mock-accel.example.com/reliability": "outage"}
    (node_name,) = cluster.create_nodes(1, prefix="rel-outage", labels=label)
    demo = Demo(client, [node_name], workdir, namespace=f"rel-{uuid.uuid4().hex[:8]}",
                scenario=CLAIMS, topology=TOPOLOGY, node_selector=label, timeout=60)
    failures = Failures()
    logging.getLogger("mock_accel.controller").addHandler(failures)
    show = progress("apiserver outage: seconds down", int(OUTAGE_SECONDS), every=5)
    try:
        demo.setup()
        node = demo.nodes[node_name]
        node.controller.max_backoff = MAX_BACKOFF
        demo.submit(["before"])
        demo.wait_for_scheduler()
        assert demo.outcomes["before"].state == "allocated", demo.outcomes["before"]
        claim = demo._claim("before")
        held = demo.outcomes["before"].devices[0]
        failing, with_vfs = sorted(set(node.sim.names()) - {held})

        cluster.stop_apiserver(grace=3)
        down = time.monotonic()
        requests_before = sum(client.counts.values())
        answer = prepare_over_grpc(node.dra_socket, [claim])[claim["metadata"]["uid"]]
        assert "cannot reach the API server" in answer.error, answer
        node.sim.inject_fault(failing)
        node.sim.set_numvfs(with_vfs, 2)
        while (waited := time.monotonic() - down) < OUTAGE_SECONDS:
            assert node.thread.is_alive(), "the slice controller thread died"
            show.tick(int(waited), f"({len(failures.retries)} failed reconciles)")
            time.sleep(min(1.0, OUTAGE_SECONDS - waited))
        retries = len(failures.retries)
        requests = sum(client.counts.values()) - requests_before
        assert node.controller.last_error is not None
        # cap 3 s: delays of 0.25-0.5, 0.5-1, 1-2, then 1.5-3 s → at most ~22 tries in 30 s
        bound = 4 + OUTAGE_SECONDS / (MAX_BACKOFF / 2)
        assert 3 <= retries <= bound, f"{retries} retries in {OUTAGE_SECONDS:.0f} s"

        converged: dict[str, float] = {}
        watcher = KubeClient.from_kubeconfig(cluster.kubeconfig, timeout=2)
        stop = threading.Event()

        def watch() -> None:
            selector = f"spec.nodeName={node_name}"
            while not stop.is_set():
                try:
                    have = specs(watcher.list(RESOURCE_SLICES_PATH, field_selector=selector))
                    if have == specs(node.controller.desired()):
                        converged["at"] = time.monotonic()
                        return
                except Exception:  # noqa: BLE001 - the server is coming back
                    pass
                time.sleep(0.1)

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        back = time.monotonic()
        ready = cluster.start_apiserver()
        ready_at = back + ready
        thread.join(timeout=CONVERGE_SECONDS + 30)
        stop.set()
        outage = ready_at - down
        assert "at" in converged, "the slices never matched the node after the outage"
        lag = converged["at"] - ready_at
        show.say(f"outage {outage:.1f} s (API server ready {ready:.1f} s after its restart); "
                 f"{retries} failed reconciles, {requests} requests while down (retry "
                 f"numbers {failures.retries}); slices matched the node {lag:.2f} s after "
                 f"/readyz ({converged['at'] - back:.2f} s after the restart began)")
        assert lag <= CONVERGE_SECONDS, f"converged {lag:.1f} s after the API server returned"
        assert node.thread.is_alive() and node.controller.last_error is None

        answer = prepare_over_grpc(node.dra_socket, [claim])[claim["metadata"]["uid"]]
        assert not answer.error and [d.device_name for d in answer.devices] == [held]
        demo.submit(["after"])   # the restarted scheduler sees the VFs enabled while it was down
        demo.wait_for_scheduler()
        assert demo.outcomes["after"].state == "allocated", demo.outcomes["after"]
        assert demo.outcomes["after"].devices[0].startswith(f"{with_vfs}-vf")
        cluster.check_alive()
    finally:
        logging.getLogger("mock_accel.controller").removeHandler(failures)
        if cluster.components["kube-apiserver"].proc.poll() is not None:
            cluster.start_apiserver()   # never leave the session's control plane down
        node = demo.nodes.get(node_name)
        if node is not None and demo.outcomes["before"].state == "allocated":
            prepare_over_grpc(node.dra_socket, [demo._claim("before")], unprepare=True)
        demo.teardown()
        client.delete(f"/api/v1/namespaces/{demo.namespace}")
        cluster.delete_node(node_name)
        shutil.rmtree(workdir, ignore_errors=True)
    stopped = time.monotonic()
    node.thread.join(timeout=10)   # teardown stopped it: a clean exit, not a crash
    assert not node.thread.is_alive() and time.monotonic() - stopped < 10

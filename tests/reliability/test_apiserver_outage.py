"""kube-apiserver is stopped for 30 s under a running slice controller and node agent, while the
node changes (a device fails, VFs are enabled). Nothing may crash, the controller must back off
(a bounded number of retries), and once the API server is back its slices must match the node
within 5 s. The node agent answers a prepare during the outage with a per-claim error and
prepares the claim once the API server is back; the scheduler (restarted by the harness) then
allocates a VF that was enabled during the outage.

The in-process controller's backoff cap is MAX_BACKOFF (3 s, the default). A `mock-accel
controller` process with its defaults runs through the same outage on a second node: it must
survive, retry a bounded number of times, converge within 5 s too, and exit cleanly on SIGTERM."""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from mock_accel.controller import SliceController, comparable
from mock_accel.demo import Demo, DemoClaim, prepare_over_grpc
from mock_accel.kube import KubeClient
from mock_accel.sim import SimConfig, SimNode
from mock_accel.slices import RESOURCE_SLICES_PATH
from mock_accel.wait import WaitTimeout, wait_until

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


class CliController:
    """`mock-accel controller` as a process, default settings, on its own simulated node."""

    def __init__(self, workdir: Path, node_name: str, kubeconfig: Path, client: KubeClient):
        self.node_name = node_name
        self.sim = SimNode.create(workdir / "cli-root", SimConfig(num_devices=2, numa_nodes=1,
                                                                   total_vfs=2))
        self.model = SliceController(client, node_name, self.sim)   # for desired() only
        self.log = workdir / "cli-controller.log"
        with open(self.log, "w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mock_accel.cli", "controller", "--node-name", node_name,
                 "--kubeconfig", str(kubeconfig), "--sysfs-root", str(self.sim.root), "-v", "3"],
                stdout=out, stderr=out)

    def failed_reconciles(self) -> int:
        return self.log.read_text().count("reconcile failed")

    def stop(self) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
                return None
        return self.process.returncode


def converged(client: KubeClient, node_name: str, desired, deadline: float) -> float | None:
    """The monotonic time at which the node's slices first match `desired()`, or None."""
    selector = f"spec.nodeName={node_name}"

    def matches() -> bool:
        return specs(client.list(RESOURCE_SLICES_PATH, field_selector=selector)) == \
            specs(desired())

    try:  # any error: the server is coming back
        wait_until(matches, deadline - time.monotonic(), f"{node_name}'s slices to converge",
                   ignore=(Exception,))
    except WaitTimeout:
        return None
    return time.monotonic()


def specs(slices: list[dict]) -> dict[str, str]:
    """Slice name -> what we manage in its spec (generation and owner left out)."""
    return {s["metadata"]["name"]: json.dumps(json.loads(comparable(s))["spec"], sort_keys=True)
            for s in slices}


def test_apiserver_outage(cluster, progress):
    workdir = Path(tempfile.mkdtemp(prefix="ma-out-"))
    client = KubeClient.from_kubeconfig(cluster.kubeconfig)
    label = {"mock-accel.example.com/reliability": "outage"}
    (node_name,) = cluster.create_nodes(1, prefix="rel-outage", labels=label)
    (cli_node,) = cluster.create_nodes(1, prefix="rel-outage-cli")
    cli = CliController(workdir, cli_node, Path(cluster.kubeconfig), client)
    demo = Demo(client, [node_name], workdir, namespace=f"rel-{uuid.uuid4().hex[:8]}",
                scenario=CLAIMS, topology=TOPOLOGY, node_selector=label, timeout=60)
    failures = Failures()
    controller_log = logging.getLogger("mock_accel.controller")
    level = controller_log.level   # count its warnings whatever earlier code did to "mock_accel"
    controller_log.setLevel(logging.WARNING)
    controller_log.addHandler(failures)
    show = progress("apiserver outage: seconds down", int(OUTAGE_SECONDS), every=5)
    try:
        demo.setup()
        node = demo.nodes[node_name]
        node.controller.max_backoff = MAX_BACKOFF
        demo.submit(["before"])
        demo.wait_for_scheduler()
        assert demo.outcomes["before"].state == "allocated", demo.outcomes["before"]
        claim = demo.claim("before")
        held = demo.outcomes["before"].devices[0]
        failing, with_vfs = sorted(set(node.sim.names()) - {held})
        assert converged(client, cli_node, cli.model.desired, time.monotonic() + 30), \
            f"mock-accel controller did not publish:\n{cli.log.read_text()[-2000:]}"

        cluster.stop_apiserver(grace=3)
        down = time.monotonic()
        requests_before = sum(client.counts.values())
        answer = prepare_over_grpc(node.dra_socket, [claim])[claim["metadata"]["uid"]]
        assert "cannot reach the API server" in answer.error, answer
        for sim, bad, vfs in ((node.sim, failing, with_vfs), (cli.sim, "mock0", "mock1")):
            sim.inject_fault(bad)
            sim.set_numvfs(vfs, 2)
        while (waited := time.monotonic() - down) < OUTAGE_SECONDS:
            assert node.thread.is_alive(), "the slice controller thread died"
            assert cli.process.poll() is None, f"mock-accel controller exited:\n" \
                f"{cli.log.read_text()[-2000:]}"
            show.tick(int(waited), f"({len(failures.retries)} failed reconciles)")
            time.sleep(min(1.0, OUTAGE_SECONDS - waited))
        retries = len(failures.retries)
        requests = sum(client.counts.values()) - requests_before
        assert node.controller.last_error is not None
        # cap 3 s: delays of 0.25-0.5, 0.5-1, 1-2, then 1.5-3 s → at most ~22 tries in 30 s
        bound = 4 + OUTAGE_SECONDS / (MAX_BACKOFF / 2)
        assert 3 <= retries <= bound, f"{retries} retries in {OUTAGE_SECONDS:.0f} s"
        cli_retries = cli.failed_reconciles()   # its default cap is the same 3 s
        assert 3 <= cli_retries <= bound, f"mock-accel controller: {cli_retries} retries"

        at: dict[str, float | None] = {}
        watcher = KubeClient.from_kubeconfig(cluster.kubeconfig, timeout=2)
        back = time.monotonic()

        def watch(key: str, name: str, desired, limit: float) -> None:
            at[key] = converged(watcher, name, desired, back + limit)

        watchers = [threading.Thread(target=watch, args=args, daemon=True) for args in (
            ("ours", node_name, node.controller.desired, CONVERGE_SECONDS + 30),
            ("cli", cli_node, cli.model.desired, 30 + CONVERGE_SECONDS + 30))]
        for thread in watchers:
            thread.start()
        ready = cluster.start_apiserver()
        ready_at = back + ready
        for thread in watchers:
            thread.join()
        outage = ready_at - down
        assert at["ours"], "the slices never matched the node after the outage"
        lag = at["ours"] - ready_at
        show.say(f"outage {outage:.1f} s (API server ready {ready:.1f} s after its restart); "
                 f"{retries} failed reconciles, {requests} requests while down (retry "
                 f"numbers {failures.retries}); slices matched the node {lag:.2f} s after "
                 f"/readyz ({at['ours'] - back:.2f} s after the restart began)")
        cli_lag = at["cli"] - ready_at if at["cli"] else None
        show.say(f"mock-accel controller (default backoff cap): {cli_retries} failed "
                 f"reconciles, slices matched its node "
                 + (f"{cli_lag:.1f} s after /readyz" if cli_lag is not None else "never"))
        assert lag <= CONVERGE_SECONDS, f"converged {lag:.1f} s after the API server returned"
        assert node.thread.is_alive() and node.controller.last_error is None
        assert cli_lag is not None and cli_lag <= CONVERGE_SECONDS, \
            f"mock-accel controller converged {cli_lag} s after the API server returned"
        assert cli.process.poll() is None and cli.stop() == 0, cli.log.read_text()[-2000:]

        answer = prepare_over_grpc(node.dra_socket, [claim])[claim["metadata"]["uid"]]
        assert not answer.error and [d.device_name for d in answer.devices] == [held]
        demo.submit(["after"])   # the restarted scheduler sees the VFs enabled while it was down
        demo.wait_for_scheduler()
        assert demo.outcomes["after"].state == "allocated", demo.outcomes["after"]
        assert demo.outcomes["after"].devices[0].startswith(f"{with_vfs}-vf")
        cluster.check_alive()
    finally:
        controller_log.removeHandler(failures)
        controller_log.setLevel(level)
        if cluster.components["kube-apiserver"].proc.poll() is not None:
            cluster.start_apiserver()   # never leave the session's control plane down
        node = demo.nodes.get(node_name)
        if node is not None and demo.outcomes["before"].state == "allocated":
            prepare_over_grpc(node.dra_socket, [demo.claim("before")], unprepare=True)
        demo.teardown()
        client.delete(f"/api/v1/namespaces/{demo.namespace}")
        cluster.delete_node(node_name)
        cli.stop()
        for item in client.list(RESOURCE_SLICES_PATH, field_selector=f"spec.nodeName={cli_node}"):
            client.delete(f"{RESOURCE_SLICES_PATH}/{item['metadata']['name']}")
        cluster.delete_node(cli_node)
        shutil.rmtree(workdir, ignore_errors=True)
    stopped = time.monotonic()
    node.thread.join(timeout=10)   # teardown stopped it: a clean exit, not a crash
    assert not node.thread.is_alive() and time.monotonic() - stopped < 10

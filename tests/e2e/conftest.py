"""T3: our controller and node agent on simulated nodes, the real control plane allocating.

`driver_demo` builds a `mock_accel.demo.Demo` on fresh nodes of the session cluster (labelled so
pods land only there), and tears everything down afterwards: pods, claims, slices, nodes."""
from __future__ import annotations

import itertools
import shutil
import tempfile
from pathlib import Path

import pytest

from mock_accel.demo import Demo
from mock_accel.kube import KubeClient

_runs = itertools.count()


@pytest.fixture
def driver_demo(cluster):  # noqa: F811
    """A factory: driver_demo(scenario, nodes=1, topology=...) -> a set-up Demo."""
    made: list[tuple[Demo, list[str]]] = []
    # unix socket paths must stay under 108 bytes: pytest's tmp_path is too deep
    workdir = Path(tempfile.mkdtemp(prefix="ma-e2e-"))
    client = KubeClient.from_kubeconfig(cluster.kubeconfig)

    def make(scenario, nodes: int = 1, **options) -> Demo:
        run = next(_runs)
        label = {"mock-accel.example.com/e2e": f"run{run}"}
        names = cluster.create_nodes(nodes, prefix=f"e2e{run}", labels=label)
        demo = Demo(client, names, workdir / f"r{run}", namespace=f"e2e-{run}",
                    scenario=scenario, node_selector=label, timeout=60, **options)
        made.append((demo, names))
        demo.setup()
        return demo

    yield make
    for demo, names in made:
        demo.teardown()
        for name in names:
            cluster.delete_node(name)
        demo.client.delete(f"/api/v1/namespaces/{demo.namespace}")
    shutil.rmtree(workdir, ignore_errors=True)

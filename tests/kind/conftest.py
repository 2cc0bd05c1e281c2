"""One kind cluster for the whole `make test-kind` session (tools/kind/cluster).

The local registry is started (or reused: it is shared), the cluster (a control plane and two
workers: the chart's DaemonSets run on the workers, the network test needs two) is created from
the offline node image with tests/e2e/kind/kind-config.yaml and its nodes pointed at the
registry; after the last test the pod logs, events, kubelet, containerd and mock-accel-cni
journals and `measure.json` (the cluster's step times and what the tests add to `MEASURE`) land
in artifacts/kind/, and the cluster is deleted, on failure too. The registry stays: other runs
may be using it (`make kind-registry-down` removes it).
"""
from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from tools import registry
from tools.docker import HOST, answers
from tools.kind import cluster as kind_cluster
from tools.locate import REPO

NAME = os.environ.get("MOCK_ACCEL_KIND_CLUSTER") or "mock-accel-kindtest"
ARTIFACTS = REPO / "artifacts" / "kind"
WORKERS = 2
MEASURE: dict[str, float] = {}


def run(*cmd: str, timeout: float = 600, check: bool = True,
        **kw) -> subprocess.CompletedProcess:
    """The kind tests' one way to run a command against our dockerd (`docker exec` into the
    nodes, `kind load`): a failure raises with its output."""
    return kind_cluster.Cluster().run(*cmd, timeout=timeout, check=check, **kw)


@pytest.fixture(scope="session")
def kind(tmp_path_factory):
    """The session's kind cluster (`tools.kind.cluster.Cluster`)."""
    assert answers(), f"no dockerd of ours answers on {HOST}: make dockerd-up"
    t0 = time.monotonic()
    MEASURE.update({f"registry_{k}": v for k, v in registry.up().items()})
    c = kind_cluster.up(NAME, workers=WORKERS,
                        kubeconfig=tmp_path_factory.mktemp("kind") / "kubeconfig")
    try:
        yield c
    finally:
        MEASURE["whole_seconds"] = round(time.monotonic() - t0, 1)
        kind_cluster.collect(c, ARTIFACTS, MEASURE)
        MEASURE["teardown_seconds"] = kind_cluster.down(NAME)
        (ARTIFACTS / "measure.json").write_text(json.dumps({**c.times, **MEASURE}, indent=2)
                                                + "\n")

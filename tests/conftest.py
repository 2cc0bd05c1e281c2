"""pytest fixtures for the local control plane (`mock_accel.cluster`), shared by every test
directory: a test that names `cluster`, `api` or `namespace` gets them (and carries the `cluster`
marker).

Fixtures:
  cluster    (session)  a started `mock_accel.cluster.Cluster`; stopped at session end,
                        also on failures.
  api        (session)  `cluster.api`, an admin `KubeClient`.
  cluster_objects (function) create cluster-scoped objects, deleted after the test.
  namespace  (function) a fresh namespace with its default ServiceAccount; pods in it
                        are force-deleted afterwards.
"""

from __future__ import annotations

import signal
import threading

import pytest

from mock_accel.cluster import Cluster
from mock_accel.kube import KubeError

# One cluster per test process, shared by every test that asks for it.
_shared: dict = {"cluster": None, "users": 0}


def _sigterm_as_interrupt(*_):
    raise KeyboardInterrupt("SIGTERM")


@pytest.fixture(scope="session")
def cluster():
    # A SIGTERMed pytest would skip finalizers; make it an interrupt so teardown runs.
    if (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL):
        signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    if _shared["cluster"] is None:
        c = Cluster()
        try:
            c.start()
        except BaseException:
            c.stop()
            raise
        print(f"\ncluster up in {c.timings['ready']:.1f}s: {c.server}, "
              f"kubeconfig {c.kubeconfig}, logs {c.log_dir}")
        _shared["cluster"] = c
    _shared["users"] += 1
    try:
        yield _shared["cluster"]
    finally:
        _shared["users"] -= 1
        if _shared["users"] == 0:
            _shared["cluster"].stop()
            _shared["cluster"] = None


@pytest.fixture(scope="session")
def api(cluster):
    return cluster.api


@pytest.fixture
def namespace(cluster):
    ns = cluster.create_namespace()
    try:
        yield ns
    finally:
        try:
            cluster.delete_namespace(ns)
        except Exception as e:  # noqa: BLE001 - cleanup must not mask the test result
            print(f"cleanup of namespace {ns} failed: {e}")


@pytest.fixture
def cluster_objects(api):
    """Register cluster-scoped objects (slices, classes) for deletion after the test."""
    made: list[dict] = []

    def create(obj):
        made.append(obj)
        return api.create(obj)

    yield create
    for obj in reversed(made):
        try:
            api.delete(obj["apiVersion"], obj["kind"], obj["metadata"]["name"])
        except KubeError as e:
            print(f"cleanup: {e}")

"""pytest fixtures for the local control plane (see README.md).

Other test directories reuse them with
    from tests.cluster.fixtures import cluster, api, namespace  # noqa: F401
in their conftest.py.

Fixtures:
  cluster    (session)  a started `Cluster`; stopped at session end, also on failures.
  api        (session)  `cluster.api`, an admin `Api` client.
  namespace  (function) a fresh namespace with its default ServiceAccount; pods in it
                        are force-deleted afterwards.
"""

from __future__ import annotations

import pytest

from .harness import Cluster


@pytest.fixture(scope="session")
def cluster():
    c = Cluster()
    try:
        c.start()
    except BaseException:
        c.stop()
        raise
    print(f"\ncluster up in {c.timings['ready']:.1f}s: {c.server}, "
          f"kubeconfig {c.kubeconfig}, logs {c.log_dir}")
    try:
        yield c
    finally:
        c.stop()


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

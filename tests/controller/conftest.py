"""The driver's tests run against the real control plane of tests/cluster."""

from tests.cluster.fixtures import api, cluster, namespace  # noqa: F401

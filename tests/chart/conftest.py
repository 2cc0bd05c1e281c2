"""The chart's tests share the local control plane fixtures of tests/cluster."""

from tests.cluster.fixtures import api, cluster, namespace  # noqa: F401

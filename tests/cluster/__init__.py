"""Local Kubernetes control plane for tests (see README.md in this directory)."""

from .harness import FEATURE_GATES, Cluster, ClusterError

__all__ = ["Cluster", "ClusterError", "FEATURE_GATES"]

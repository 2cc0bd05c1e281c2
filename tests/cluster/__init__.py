"""Local Kubernetes control plane for tests (see README.md in this directory)."""

from .api import Api, ApiError
from .harness import FEATURE_GATES, Cluster, ClusterError

__all__ = ["Api", "ApiError", "Cluster", "ClusterError", "FEATURE_GATES"]

"""Tests of the local Kubernetes control plane (`mock_accel.cluster`), and the pytest fixtures
the other test directories share (fixtures.py)."""

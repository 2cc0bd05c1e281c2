"""Fixtures live in fixtures.py so other test directories can import them."""

from .fixtures import api, cluster, namespace  # noqa: F401

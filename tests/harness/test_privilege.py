"""The shared node-agent probe (tests/harness/privilege.py) compiles and takes the node's root:
a syntax error would otherwise show only in the kind and guest-node tiers, minutes in."""
from __future__ import annotations

from tests.harness.privilege import PROBE, probe_command


def test_the_probe_compiles_and_its_command_carries_the_root() -> None:
    compile(PROBE, "<probe>", "exec")
    cmd = probe_command("/o", "/r.sock", "/s.json", root="/node")
    assert cmd[:3] == ["python3", "-c", PROBE] and cmd[3:] == ["/o", "/r.sock", "/s.json", "/node"]

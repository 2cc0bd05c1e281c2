"""The demo's report on a plain `pip install mock-accel`: without the `demo` extra (pandas,
matplotlib) it prints a text table and one line on how to get the picture, and does not fail.

Each run is a subprocess in which pandas and matplotlib cannot be imported
(`sys.modules[name] = None` makes `import name` raise ImportError), whatever is installed here."""
from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import sys
    if {hide}:
        for name in ("pandas", "matplotlib"):
            sys.modules[name] = None
    from pathlib import Path
    from mock_accel.demo import NODE_TOPOLOGY, SCENARIO, ClaimOutcome, report
    from mock_accel.sim import SimNode
    out = Path(sys.argv[1])
    nodes = {{name: SimNode.create(out / "nodes" / name, NODE_TOPOLOGY)
              for name in ("node-a", "node-b")}}
    outcomes = [ClaimOutcome(SCENARIO[0], "prepared", "node-a", ["mock0"]),
                ClaimOutcome(SCENARIO[1], "prepared", "node-b", ["mock1-vf2"]),
                ClaimOutcome(SCENARIO[3], "unschedulable", detail="0/2 nodes are available")]
    picture = report(outcomes, nodes, out / "report")
    print("picture returned:", picture)
""")


def run_report(tmp_path, hide: bool) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT.format(hide=hide), str(tmp_path)],
                          capture_output=True, text=True, timeout=120)


def test_report_without_the_demo_extra(tmp_path):
    proc = run_report(tmp_path, hide=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert "no picture: pandas is not installed (pip install 'mock-accel[demo]' adds it)" in lines
    assert "picture returned: None" in lines
    assert not (tmp_path / "report" / "allocations.png").exists()
    csv = (tmp_path / "report" / "allocations.csv").read_text().splitlines()
    assert csv[0].startswith("claim,asks for,state,node,device,numa")
    assert [row.split(",")[4] for row in csv[1:]] == ["mock0", "mock1-vf2", "-"]
    header = next(line for line in lines if line.lstrip().startswith("claim"))
    assert header.split()[:4] == ["claim", "asks", "for", "state"]
    assert any("mock1-vf2" in line and "node-b" in line for line in lines)
    assert "Traceback" not in proc.stderr


def test_report_with_the_demo_extra(tmp_path):
    """The same outcomes with pandas and matplotlib: the table, the CSV and the picture."""
    proc = run_report(tmp_path, hide=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "report" / "allocations.png").stat().st_size > 10_000
    assert "no picture" not in proc.stdout
    csv = (tmp_path / "report" / "allocations.csv").read_text().splitlines()
    assert [row.split(",")[4] for row in csv[1:]] == ["mock0", "mock1-vf2", "-"]


def test_demo_command_parses_without_the_demo_extra():
    """`mock-accel demo --help` (and so the import of the demo) needs neither library."""
    code = ("import sys\nsys.modules['pandas'] = sys.modules['matplotlib'] = None\n"
            "from mock_accel.cli import main\nsys.exit(main(['demo', '--help']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--nodes" in proc.stdout

"""Keeps the benchmark scripts from rotting without running them for real: the statistics, the
kernel benchmark's pipeline on the simulated node (quick mode, small wordlist), and the report
that `make bench` commits. No cluster, no VM, no Go (those run under `make bench`)."""
from __future__ import annotations

import json
import os
import random
import shutil

import pytest

from tests.bench import bench_kernel, common, report

pytestmark = pytest.mark.bench


def test_percentile_matches_linear_interpolation():
    values = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert common.percentile(values, 50) == 3.0
    assert common.percentile(values, 0) == 1.0 and common.percentile(values, 100) == 5.0
    assert common.percentile([1.0, 2.0], 99) == pytest.approx(1.99)
    assert common.percentile([], 50) != common.percentile([], 50)        # nan
    assert common.ratio(1.0, 0) is None and common.ratio(3.0, 2.0) == 1.5


def test_chi_square_tells_fair_from_the_seeds_modulo():
    # Wilson-Hilferty against tabulated chi-square quantiles (df 100: 149.449 at 0.001)
    assert bench_kernel.critical_value(100) == pytest.approx(149.449, rel=2e-3)
    assert bench_kernel.p_value(bench_kernel.critical_value(7775), 7775) == \
        pytest.approx(0.001, rel=1e-6)
    rng = random.Random(1)
    fair = [0] * 7776
    for _ in range(300_000):
        fair[rng.randrange(7776)] += 1
    assert bench_kernel.uniformity(fair)["uniform"]
    biased = bench_kernel.biased_counts(300_000, 7776, randbytes=rng.randbytes)
    stats = bench_kernel.uniformity(biased)
    assert not stats["uniform"] and stats["p_value"] < 1e-6, stats
    low = sum(biased[:3328]) / 3328
    high = sum(biased[3328:]) / (7776 - 3328)
    assert 1.08 < low / high < 1.17                                   # 9/8 in theory


def test_kernel_pipeline_on_the_simulated_node_and_the_report(tmp_path, monkeypatch):
    monkeypatch.setenv("MOCK_ACCEL_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("BENCH_QUICK", "1")
    words = [f"w{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(97)]
    wordlist = tmp_path / "fw" / "mock-accel-wordlist.txt"
    wordlist.parent.mkdir()
    wordlist.write_text("\n".join(words) + "\n")
    result = bench_kernel.main(["--sim", "--draws", "1500", "--seconds", "0.2",
                                "--wordlist", str(wordlist)])
    (fair, biased) = result["uniformity"]
    assert fair["draws"] == biased["draws"] == 1500 and fair["bins"] == 97
    assert [r["words"] for r in result["rates"]] == [1, 6, 12]
    assert all(r["calls/s"] > 0 for r in result["rates"])
    bench_dir = tmp_path / "artifacts" / "bench"
    assert (bench_dir / "kernel-sim.png").stat().st_size > 10_000
    saved = json.loads((bench_dir / "kernel-sim.json").read_text())
    assert saved["quick"] and saved["machine"]["cores"] >= 1

    # the report renders what the kernel benchmark wrote (as if it had run in the VM)
    shutil.copy(bench_dir / "kernel-sim.json", bench_dir / "kernel.json")
    out = tmp_path / "results"
    assert report.main(["--artifacts", str(bench_dir), "--out", str(out)]) == 0
    text = (out / "latest.md").read_text()
    assert "Quick mode" in text and "chi²" in text and "| ours (get_random_u32_below) |" in text
    assert "| word indices uniform (chi², α 0.001) |" in text
    assert json.loads((out / "latest.json").read_text())["kernel"]["uniformity"]
    assert report.main(["--artifacts", str(tmp_path / "none"), "--out", str(out)]) == 1


def test_event_benchmark_parts_on_the_simulated_node(tmp_path):
    """bench_events without a cluster or a VM: the watcher's wake-ups, a controller against
    FakeKube, and the /proc CPU reading."""
    from mock_accel.sim import SimConfig, SimNode
    from tests.bench import bench_events
    sim = SimNode.create(tmp_path / "node", SimConfig(num_devices=2, total_vfs=0))
    wakes = bench_events.wake_latencies(sim, 2, "mock0")
    assert len(wakes) == 2 and all(0 < w < 30 for w in wakes)
    found = bench_events.fake_latencies(sim, 2, sim.names())
    assert [len(found[k]) for k in ("fault", "clear")] == [2, 2]
    cpu = bench_events.idle_cpu({"me": os.getpid()}, 0.2)
    assert cpu["together"] == cpu["me"] >= 0 and cpu["seconds"] >= 0.2

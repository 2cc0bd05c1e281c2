"""Keeps the benchmark scripts from rotting without running them for real: the statistics, the
kernel benchmark's pipeline on the simulated node (quick mode, small wordlist), the seed's
checkout handling, the prepare benchmark's ratios and the report that `make bench` commits. No
cluster, no VM, no Go (those run under `make bench`)."""
from __future__ import annotations

import json
import os
import random
import shutil

import pytest

from tests.bench import bench_kernel, bench_prepare, common, peers, report

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
    shutil.copy(bench_dir / "kernel-sim.png", bench_dir / "kernel.png")
    out = tmp_path / "results"
    out.mkdir()
    (out / "prepare.png").write_bytes(b"a plot of an earlier run")
    assert report.main(["--artifacts", str(bench_dir), "--out", str(out)]) == 0
    text = (out / "latest.md").read_text()
    # the plot of the benchmark reported is beside latest.md and shown in it; an older one goes
    assert "](kernel.png)" in text and (out / "kernel.png").stat().st_size > 10_000
    assert not (out / "prepare.png").exists() and "prepare.png" not in text
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
def test_seed_checkout_found_digested_or_refused_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(peers.SEED_ENV, raising=False)
    monkeypatch.setenv(peers.CACHE_ENV, str(tmp_path / "cache"))
    status = peers.seed_status()
    assert not status["available"] and peers.SEED_ENV in status["detail"]
    assert "\n" not in status["detail"]
    # a wrong path: one line and exit 1, before anything is built
    assert peers.main(["--seed-src", str(tmp_path / "nothing")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no go.mod of github.com/fabiendupont/mock-device" in err
    # a checkout: the repository or its dra-driver/, cached by the digest of its sources
    src = tmp_path / "mock-device" / "dra-driver"
    (src / "cmd").mkdir(parents=True)
    (src / "go.mod").write_text(f"module {peers.SEED_MODULE}\n\ngo 1.24.0\n")
    (src / "cmd" / "main.go").write_text("package main\n")
    assert peers.seed_source(tmp_path / "mock-device") == src == peers.seed_source(src)
    before = peers.source_digest(src)
    (src / "cmd" / "main.go").write_text("package main\n\nfunc main() {}\n")
    assert peers.source_digest(src) != before
    monkeypatch.setenv(peers.SEED_ENV, str(tmp_path / "mock-device"))
    status = peers.seed_status()
    assert not status["available"] and "not built yet" in status["detail"]
    assert status["binary"].startswith(str(tmp_path / "cache"))
    with pytest.raises(peers.SeedError, match="no go.sum"):
        peers.build_seed(src)


def test_prepare_ratios_per_turn_and_their_report(tmp_path):
    ms = 1e-3
    turns = {"ours": [{"prepare": [2 * ms, 4 * ms]}, {"prepare": [3 * ms, 9 * ms]},
                      {"prepare": [1 * ms, 2 * ms]}],
             "ref": [{"prepare": [2 * ms, 4 * ms]}, {"prepare": [2 * ms, 4 * ms]},
                     {"prepare": [2 * ms, 4 * ms]}]}
    r = bench_prepare.turn_ratios(turns, "ours", "ref")
    assert r["p50"]["per turn"] == pytest.approx([1.0, 2.0, 0.5])
    assert r["p50"]["median"] == pytest.approx(1.0)
    assert (r["p50"]["min"], r["p50"]["max"]) == pytest.approx((0.5, 2.0))
    bursts = {"ours": {"prepare": [0.5, 0.6, 0.4]}, "ref": {"prepare": [0.5, 0.3, 0.8]}}
    assert bench_prepare.burst_ratios(bursts, "ours", "ref")["median"] == pytest.approx(1.0)
    row = {"prepare p50 ms": 2.5, "prepare p99 ms": 8.9, "unprepare p50 ms": 1,
           "unprepare p99 ms": 2, "n": 6}
    result = {"benchmark": "prepare", "machine": {"load_1m": 3.0}, "finished":
              "2026-12-01T03:00:00Z", "claims_concurrent": 100, "turns": 3, "reference": "ref",
              "single": [{"system": "ours", **row}, {"system": "ref", **row}],
              "ratios": {"ref": r}, "concurrent_ratios": {"ref": bench_prepare.burst_ratios(
                  bursts, "ours", "ref")}, "load_per_turn": [3.0, 2.5, 2.0],
              "concurrent": [{"system": "ours", "prepare s (median)": 0.5,
                              "unprepare s (median)": 0.2, "prepared claims/s": 200,
                              "node agent peak RSS MiB": 50}],
              "seed": {"available": True, "detail": "built from the checkout /x"},
              "slices": {"minutes": 5.0, "writes (all slice writers, API counter)": 170,
                         "seed (mock-device)": {"devices": 104, "slices": 104,
                                                "stored writes": 0, "writes/min": 0.0,
                                                "device added -> slice s": [12.5, 29.0]}}}
    text = report.render({"prepare": result})
    assert "| prepare p50 ≤ ref's (median ratio of 3 turns) | 1× [0.5–2] | yes |" in text
    assert "| 100 concurrent claims ≤ ref's | 1× [0.5–2] | yes |" in text
    assert "Seed system: built from the checkout /x; measured in: prepare." in text
    assert "| seed (mock-device) | 104 | 104 | 0 | 12.5, 29.0 |" in text
    assert "Load average (1 min) at each turn: 3.0, 2.5, 2.0." in text


def test_event_figures_reach_the_report_with_their_goals():
    def run(p50, p99, cpu):
        return {"latency": {"all": {"p50": p50, "p99": p99}},
                "cpu": {"together": cpu, "load before": 2.0}}
    result = {"benchmark": "events", "machine": {"load_1m": 2.0}, "finished":
              "2026-12-01T03:00:00Z", "runs": [run(0.02, 0.04, 0.4), run(0.03, 0.3, 0.5)],
              "medians": {"p50 ms": 25.0, "p99 ms": 250.0, "controller %": 0.1,
                          "node agent %": 0.3, "together %": 0.45},
              "goals": {"p50_s": 0.05, "p99_s": 0.2, "cpu_percent": 1.0}}
    text = report.render({"events": result})
    assert "| device change → slice updated, p50 ≤ 50 ms (median of runs) | 25 ms | yes |" in text
    assert "| device change → slice updated, p99 ≤ 200 ms (median of runs) | 250 ms | no |" in text
    assert "| idle controller + node agent ≤ 1 % of one core | 0.45 % | yes |" in text
    assert "## Events, not polling" in text and "| 2 | 30 | 300 | 0.5 | 2 |" in text

"""Gather the benchmark results (artifacts/bench/<name>.json) into
tests/bench/results/latest.json and a short markdown summary, tests/bench/results/latest.md,
with the date and the machine (the docs include that file when it exists).

Run: `python3 -m tests.bench.report [--artifacts DIR] [--out DIR]` (after the benchmarks).
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path

from tests.bench import common, peers

NAMES = ("slices", "events", "prepare", "profile", "scale", "kernel")


def fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}"
    return str(value)


def md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _ratio(a, b) -> str:
    r = common.ratio(a, b)
    return "–" if r is None else f"{r:.2g}×"


def section_slices(r: dict) -> list[str]:
    out = ["## Publishing ResourceSlices", ""]
    allrow = next(x for x in r["change_latency_s"] if x["change"] == "all")
    out.append(md_table(
        ["device change → slice updated (ours)", "n", "p50 s", "p99 s", "goal"],
        [[x["change"], x["n"], x["p50"], x["p99"], "p50 ≤ 0.5 s"]
         for x in r["change_latency_s"]]))
    out += ["", f"Ours: p50 {fmt(allrow['p50'])} s, p99 {fmt(allrow['p99'])} s. "
            "dra-example-driver: no figure (its device list is fixed at start-up). "
            "Seed: polls every 30 s — documented, not measured.", ""]
    minutes = r["idle_api_requests"]["minutes"]
    out.append(md_table(
        [f"idle 16-device node, {minutes:.1f} min", "stored slice writes", "writes/min",
         "measured"],
        [[x["system"], x["stored writes"], x["writes/min"], x["measured"]]
         for x in r["idle"]]))
    out += ["", f"API server counter over the window (all slice writers): "
            f"{r['idle_api_requests']['writes (all slice writers)']} writes, "
            + (f"{r['idle_api_requests']['GET/LIST']} GET/LIST (all clients)"
               if "GET/LIST" in r["idle_api_requests"] else
               f"{r['idle_api_requests']['reads']} GET/LIST/WATCH requests (all clients, "
               "including this benchmark's own watch, renewed every 5 s)")
            + ". Goal: 0 writes.", ""]
    out.append(md_table(["ResourceSlices per node", "devices", "mode", "slices", "measured"],
                        [[x["system"], x["devices"], x["mode"], x["slices"], x["measured"]]
                         for x in r["layout"]]))
    out += ["", "Goal: 1 slice for ≤ 128 devices. With VFs enabled the PFs' counter sets must "
            "travel in a slice of their own (resource.k8s.io/v1 allows devices or "
            "sharedCounters in one slice, not both), so 2 is the floor there.", ""]
    start = r["startup_s"]
    out.append(md_table(["process start → 16 devices published", "s", "peak RSS MiB"],
                        [[k, v, r["peak_rss_kib"][k] / 1024] for k, v in start.items()]))
    return out + [""]


def section_events(r: dict) -> list[str]:
    """bench_events: change → slice latency and idle CPU, per run and the medians."""
    g, m = r["goals"], r["medians"]
    out = ["## Events, not polling: change → slice and idle CPU", ""]
    out.append(md_table(
        ["run", "p50 ms", "p99 ms", "idle CPU % (controller + node agent)", "load before"],
        [[i + 1, x["latency"]["all"]["p50"] * 1000, x["latency"]["all"]["p99"] * 1000,
          x["cpu"]["together"], x["cpu"]["load before"]] for i, x in enumerate(r["runs"])]))
    out += ["", f"Medians over {len(r['runs'])} runs: p50 {fmt(m['p50 ms'])} ms, p99 "
            f"{fmt(m['p99 ms'])} ms (goals {fmt(g['p50_s'] * 1000)} / {fmt(g['p99_s'] * 1000)} "
            f"ms); idle CPU {fmt(m['together %'])} % of one core (controller "
            f"{fmt(m['controller %'])} %, node agent {fmt(m['node agent %'])} %; goal "
            f"≤ {fmt(g['cpu_percent'])} %). One simulated node; the module announces the same "
            "changes through sysfs_notify (kmod/ABI.md).", ""]
    return out


def _spread(r: dict | None) -> str:
    if not r or r.get("median") is None:
        return "–"
    return f"{r['median']:.2g}× [{r['min']:.2g}–{r['max']:.2g}]"


def section_prepare(r: dict) -> list[str]:
    out = ["## NodePrepareResources / NodeUnprepareResources (same kubelet emulator)", ""]
    rows = r["single"]
    out.append(md_table(
        ["1 claim", "prepare p50 ms", "prepare p99 ms", "unprepare p50 ms", "unprepare p99 ms",
         "n"],
        [[x["system"], x["prepare p50 ms"], x["prepare p99 ms"], x["unprepare p50 ms"],
          x["unprepare p99 ms"], x["n"]] for x in rows]))
    ratios, burst = r.get("ratios"), r.get("concurrent_ratios") or {}
    if ratios:
        turns = r.get("turns", "?")
        out += ["", md_table(
            [f"ours / theirs, median of {turns} turns [spread]", "prepare p50", "prepare p99",
             f"{r['claims_concurrent']} concurrent"],
            [[label, _spread(x["p50"]), _spread(x["p99"]), _spread(burst.get(label))]
             for label, x in ratios.items()])]
        out += ["", f"Goal: ≤ 1× against {r.get('reference', 'the reference')}. Load average "
                f"(1 min) at each turn: {', '.join(map(str, r.get('load_per_turn', [])))}.", ""]
    else:   # results of the single-run format
        ours = rows[0]
        out += ["", "Ours / theirs, p99: " + ", ".join(
            f"prepare {_ratio(ours['prepare p99 ms'], x['prepare p99 ms'])} vs {x['system']}"
            for x in rows[1:] if x["system"].startswith("dra-example")) + " (goal ≤ 1×).", ""]
    out.append(md_table(
        [f"{r['claims_concurrent']} concurrent claims", "prepare s", "unprepare s",
         "claims/s", "node agent peak RSS MiB"],
        [[x["system"], x["prepare s (median)"], x["unprepare s (median)"],
          x["prepared claims/s"], x["node agent peak RSS MiB"]] for x in r["concurrent"]]))
    out.append("")
    sl = r.get("slices")
    if sl:
        out += [md_table(
            [f"slices over the run ({sl['minutes']:.1f} min)", "devices", "ResourceSlices",
             "stored writes/min", "device added → slice s"],
            [[label, x["devices"], x["slices"], x["writes/min"],
              ", ".join(f"{v:.1f}" for v in x.get("device added -> slice s", [])) or "–"]
             for label, x in sl.items() if isinstance(x, dict)]), "",
                f"API server counter over the run, all slice writers: "
                f"{sl['writes (all slice writers, API counter)']} writes.", ""]
    return out


def section_profile(r: dict) -> list[str]:
    disk = r["disk"]
    out = ["## Where a prepare spends its time (tests/bench/profile_prepare.py)", "",
           f"The disk's floor ({disk['dir']}, n {disk['n']}): one fsync'd 1 KiB write p50 "
           f"{fmt(disk['write+fsync p50 ms'])} ms, p99 {fmt(disk['write+fsync p99 ms'])} ms; a "
           f"durable replace (write, fsync, rename, directory fsync) p50 "
           f"{fmt(disk['atomic_write p50 ms'])} ms, p99 {fmt(disk['atomic_write p99 ms'])} ms. "
           f"Load average {r['machine'].get('load_1m', '?')} at the start, "
           f"{r.get('load_1m_end', '?')} at the end.", ""]
    out.append(md_table(["system", "phase", "step", "calls", "ms per call", "p50 ms", "p99 ms",
                         "share %", "agent CPU ms/call"],
                        [[x.get("system", "ours"), x["phase"], x["step"], x["calls"],
                          x["ms per call"], x["p50 ms"], x["p99 ms"], x["share %"],
                          x.get("agent CPU ms/call")]
                         for x in r["rows"]]))
    return out + ["", "Steps overlap (a fsync is inside a checkpoint or CDI write; the agent's "
                  "prepare contains the steps); what the agent's time does not explain of the "
                  "client's is gRPC and thread hand-offs.", ""]


def section_scale(r: dict) -> list[str]:
    sc = r["scale"]
    out = ["## Scale", "",
           f"{sc['nodes']} nodes × {sc['devices_per_node']} devices: converged in "
           f"**{fmt(sc['converge_s'])} s** (goal ≤ 30 s; first device after "
           f"{fmt(sc.get('first_device_s'))} s, while the workers start), {sc['slices']} slices, "
           f"{sc['writes_in_10s_after_convergence']} stored writes in the next 10 s. "
           f"{sc['workers']} worker processes ran {sc['nodes'] // sc['workers']} controllers "
           "each, one node certificate per controller.", ""]
    out.append(md_table(["process", "n", "RSS MiB (median)", "peak MiB (max)"],
                        [[x["process"], x["n"], x["rss_mib_median"], x["peak_mib_max"]]
                         for x in r["memory"]]))
    out += ["", "Goal: ≤ 150 MB per process.", ""]
    out.append(md_table(["kube-scheduler, slice layout", "slices", "claims", "allocated",
                         "gates removed → last allocation s", "claims/s",
                         "scheduler's first → last bind s"],
                        [[x["layout"], x["slices"], x["claims"], x.get("allocated"),
                          x["ungated -> last allocation s"], x["claims/s"],
                          x.get("scheduler log: first -> last bind s")]
                         for x in r["scheduler"]]))
    return out + [""]


def section_kernel(r: dict) -> list[str]:
    out = ["## Kernel module (QEMU guest, TCG)", "", f"Source: {r['source']}.", ""]
    out.append(md_table(["passphrase words", "ioctl calls/s", "words/s"],
                        [[x["words"], x["calls/s"], x["words/s"]] for x in r["rates"]]))
    out.append("")
    out.append(md_table(["word index draws", "draws", "chi²", "df", "critical (α 0.001)",
                         "p", "uniform"],
                        [[x["method"], x["draws"], x["chi2"], x["df"], x["critical_0.001"],
                          x["p_value"], x["uniform"]] for x in r["uniformity"]]))
    return out + ["", "Chi-square critical values and p from the Wilson–Hilferty "
                  "approximation.", ""]


def goals(results: dict[str, dict]) -> list[list]:
    """[goal, our figure, met?] for every goal of the issue that the results cover."""
    rows: list[list] = []
    if "slices" in results:
        r = results["slices"]
        p50 = next(x for x in r["change_latency_s"] if x["change"] == "all")["p50"]
        rows.append(["device change → slice updated, p50 ≤ 0.5 s", f"{fmt(p50)} s",
                     p50 <= 0.5])
        ours = next(x for x in r["idle"] if x["system"] == "ours")
        rows.append(["idle 16-device node: 0 writes/min", f"{fmt(ours['writes/min'])}/min",
                     ours["writes/min"] == 0])
        for x in r["layout"]:
            if x["system"] == "ours":
                if "VFs" in x["mode"]:  # counters need a slice of their own in v1
                    rows.append([f"2 ResourceSlices per node, the v1 minimum with counters "
                                 f"({x['devices']} devices, {x['mode']})",
                                 str(x["slices"]), x["slices"] == 2])
                else:
                    rows.append([f"1 ResourceSlice per node ({x['devices']} devices, "
                                 f"{x['mode']})", str(x["slices"]), x["slices"] == 1])
    if "events" in results:
        g, m = results["events"]["goals"], results["events"]["medians"]
        for q in ("p50", "p99"):
            rows.append([f"device change → slice updated, {q} ≤ {fmt(g[q + '_s'] * 1000)} ms "
                         "(median of runs)", f"{fmt(m[q + ' ms'])} ms",
                         m[q + " ms"] <= g[q + "_s"] * 1000])
        rows.append([f"idle controller + node agent ≤ {fmt(g['cpu_percent'])} % of one core",
                     f"{fmt(m['together %'])} %", m["together %"] <= g["cpu_percent"]])
    if "prepare" in results:
        r = results["prepare"]
        ours = r["single"][0]
        reference = r.get("reference")
        for label, x in (r.get("ratios") or {}).items():
            if label != reference:
                continue
            for q in ("p50", "p99"):
                rows.append([f"prepare {q} ≤ {label}'s (median ratio of {r['turns']} turns)",
                             f"{_spread(x[q])}", x[q]["median"] <= 1.0])
            c = (r.get("concurrent_ratios") or {}).get(label)
            if c:
                rows.append([f"{r['claims_concurrent']} concurrent claims ≤ {label}'s",
                             _spread(c), c["median"] <= 1.0])
        if not r.get("ratios"):
            for x in (x for x in r["single"] if x["system"].startswith("dra-example")):
                rows.append([f"prepare p99 ≤ {x['system']}'s",
                             f"{fmt(ours['prepare p99 ms'])} vs {fmt(x['prepare p99 ms'])} ms",
                             ours["prepare p99 ms"] <= x["prepare p99 ms"]])
    if "scale" in results:
        sc = results["scale"]["scale"]
        rows.append([f"{sc['nodes']} nodes × {sc['devices_per_node']} devices converge ≤ 30 s",
                     f"{fmt(sc['converge_s'])} s", sc["converge_s"] <= 30])
        for x in results["scale"]["memory"]:
            if not x["process"].startswith("dra-example"):
                mb = x["peak_mib_max"] * 1.048576
                rows.append([f"≤ 150 MB per process: {x['process']}", f"{fmt(mb)} MB peak",
                             mb <= 150])
    if "kernel" in results:
        fair, biased = results["kernel"]["uniformity"]
        rows.append(["word indices uniform (chi², α 0.001)",
                     f"χ² {fmt(fair['chi2'])} ≤ {fmt(fair['critical_0.001'])}",
                     fair["uniform"]])
        rows.append(["the seed's u16 % 7776 is detected as biased",
                     f"χ² {fmt(biased['chi2'])}", not biased["uniform"]])
    return rows


SECTIONS = {"slices": section_slices, "events": section_events, "prepare": section_prepare,
            "profile": section_profile, "scale": section_scale, "kernel": section_kernel}


def commits(results: dict[str, dict]) -> str:
    """`commit X`, or each benchmark's commit when they were run at different commits."""
    by_name = {name: r.get("machine", {}).get("commit", "?") for name, r in results.items()}
    if len(set(by_name.values())) == 1:
        return f"commit {next(iter(by_name.values()))}"
    return "commits " + ", ".join(f"{name} {commit}" for name, commit in by_name.items())


# the benchmarks' plots (artifacts/bench/<name>.png), copied beside latest.md and shown in it
PLOTS = {"slices": "Device change → slice, and slices per node",
         "prepare": "Prepare and unprepare latency (CDF) and 100 concurrent claims",
         "scale": "500 nodes: devices published over time", "kernel": "Passphrase word indices"}


def render(results: dict[str, dict], plots: tuple[str, ...] = ()) -> str:
    first = next(iter(results.values()))
    m = first.get("machine", {})
    dates = sorted(r.get("finished", "") for r in results.values())
    lines = ["# Benchmark figures (latest run)", "",
             f"Generated by `make bench` on {dates[-1][:10]} (benchmarks finished "
             f"{dates[0][11:19]} – {dates[-1][11:19]} UTC); "
             f"machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores, "
             f"{m.get('memory_gib', '?')} GiB, kernel {m.get('kernel', '?')}, "
             f"{commits(results)}. Ratios come from systems measured side by side in "
             "one run on one shared machine; absolute numbers move with its load.", ""]
    loads = ", ".join(f"{name} {r['machine']['load_1m']}" for name, r in results.items()
                      if "load_1m" in r.get("machine", {}))
    if loads:
        lines += [f"Load average (1 min) when each benchmark started: {loads}.", ""]
    if any(r.get("quick") for r in results.values()):
        lines += ["**Quick mode (BENCH_QUICK=1): small sizes, not the real figures.**", ""]
    for r in results.values():
        if "example" in r:
            lines += [f"Peers: `{r['example']['module']}@{r['example']['version']}` (its "
                      "kubelet plugin, `gpu` profile), built from the Go module proxy."]
            break
    measured = [name for name, r in results.items() if (r.get("seed") or {}).get("available")]
    if measured:
        seed = results[measured[0]]["seed"]
        lines += [f"Seed system: {seed['detail']}; measured in: {', '.join(measured)}."]
    for r in (r for name, r in results.items() if "seed" in r and name not in measured):
        lines += [f"Seed system: {peers.compact(r['seed']['detail'])} — so it was not run; its "
                  "documented behaviour appears as reference lines marked "
                  "“documented, not measured”."]
        break
    lines.append("")
    rows = goals(results)
    if rows:
        lines += ["## Goals", "", md_table(["goal (ours)", "measured", "met"], rows), ""]
    for name, r in results.items():
        lines += SECTIONS[name](r)
    if plots:
        lines += ["## Plots", ""] + [f"![{PLOTS[name]}]({name}.png)\n" for name in plots]
    return "\n".join(lines).rstrip() + "\n"


def copy_plots(artifacts: Path, out: Path, results: dict[str, dict]) -> tuple[str, ...]:
    """The plots of the benchmarks in `results` copied to `out`; those of other runs removed."""
    copied = []
    for name in PLOTS:
        src, dst = artifacts / f"{name}.png", out / f"{name}.png"
        if name in results and src.is_file():
            shutil.copyfile(src, dst)
            copied.append(name)
        else:
            dst.unlink(missing_ok=True)
    return tuple(copied)


def gather(artifacts: Path) -> dict[str, dict]:
    results = {}
    for name in NAMES:
        path = artifacts / f"{name}.json"
        if path.exists():
            results[name] = json.loads(path.read_text())
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tests.bench.report")
    parser.add_argument("--artifacts", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=common.RESULTS_DIR)
    args = parser.parse_args(argv)
    artifacts = args.artifacts or common.artifacts_dir()
    results = gather(artifacts)
    if not results:
        print("no benchmark results to report (run the benchmarks first)", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / "latest.md").write_text(render(results, copy_plots(artifacts, args.out, results)))
    print(f"wrote {args.out / 'latest.md'} and latest.json ({', '.join(results)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Kernel: the passphrase ioctl's rate and the uniformity of the word indices it draws, inside a
QEMU guest (TCG) running the real module -- with the seed's biased method (a random u16
`% 7776`) computed in the same guest, for contrast.

- rate: `MOCK_ACCEL_IOC_PASSPHRASE` on /dev/mock0 in a loop for a few seconds, for 1, 6 and 12
  words (calls/s and words/s; TCG emulation, so far below a real machine's figures);
- uniformity: one-word passphrases (a hyphen inside a word, e.g. `t-shirt`, would make longer
  ones ambiguous to split), mapped to their index in the wordlist, counted per index; Pearson's
  chi-square over all 7776 indices, df = 7775. Critical value and p-value from the
  Wilson-Hilferty normal approximation of the chi-square distribution (accurate to < 0.1 % of
  the value at this df), so no SciPy is needed: reject uniformity when chi2 > the critical
  value at alpha = 0.001.
- contrast: the same number of indices drawn as the seed's driver draws them
  (`get_random_bytes` into a u16, then `% 7776`: indices below 65536 % 7776 = 3328 come out
  9/8 as often), from os.urandom in the guest.

`--sim` runs the same statistics against the simulated node's Python engine on the host
(no VM; what the pytest smoke test runs). Run: `python3 -m tests.bench.bench_kernel`
(BENCH_QUICK=1: fewer draws and shorter rate windows).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

from tests.bench import common
from tools import locate

MARKER = "@@bench-kernel@@"
ALPHA = 0.001
Z_ALPHA = 3.090232306167813   # standard normal quantile for 1 - 0.001


# ------------------------------------------------------------------------------- statistics
def chi_square(counts: list[int]) -> float:
    total = sum(counts)
    expected = total / len(counts)
    return sum((c - expected) ** 2 for c in counts) / expected


def wilson_hilferty_z(x: float, df: int) -> float:
    """z such that P(chi2_df > x) ~= P(N(0,1) > z)."""
    c = 2.0 / (9.0 * df)
    return ((x / df) ** (1.0 / 3.0) - (1.0 - c)) / math.sqrt(c)


def p_value(x: float, df: int) -> float:
    return 0.5 * math.erfc(wilson_hilferty_z(x, df) / math.sqrt(2.0))


def critical_value(df: int, z: float = Z_ALPHA) -> float:
    c = 2.0 / (9.0 * df)
    return df * (1.0 - c + z * math.sqrt(c)) ** 3


def uniformity(counts: list[int]) -> dict:
    df = len(counts) - 1
    x = chi_square(counts)
    crit = critical_value(df)
    return {"draws": sum(counts), "bins": len(counts), "chi2": x, "df": df,
            "critical_0.001": crit, "p_value": p_value(x, df), "uniform": x <= crit}


def biased_counts(draws: int, size: int, randbytes=os.urandom) -> list[int]:
    """The seed's method: a random u16, then `% size`."""
    counts = [0] * size
    chunk = 65536
    left = draws
    while left:
        n = min(left, chunk)
        raw = randbytes(2 * n)
        for i in range(0, 2 * n, 2):
            counts[(raw[i] | raw[i + 1] << 8) % size] += 1
        left -= n
    return counts


# ------------------------------------------------------------------------------- sampling
def load_words(path: Path) -> list[str]:
    return path.read_text().split()


def measure(passphrase, words: list[str], draws: int, seconds: float) -> dict:
    """passphrase(count) -> str. Rates for 1/6/12 words, then `draws` one-word indices."""
    rates = []
    for count in (1, 6, 12):
        calls, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            for _ in range(50):
                passphrase(count)
            calls += 50
        elapsed = time.perf_counter() - t0
        rates.append({"words": count, "calls": calls, "calls/s": calls / elapsed,
                      "words/s": calls * count / elapsed})
    index = {w: i for i, w in enumerate(words)}
    counts = [0] * len(words)
    t0 = time.perf_counter()
    for _ in range(draws):
        counts[index[passphrase(1)]] += 1
    draw_seconds = time.perf_counter() - t0
    return {"rates": rates, "counts": counts, "draw_seconds": draw_seconds,
            "biased_counts": biased_counts(draws, len(words))}


def guest_main(args) -> int:
    """Inside the guest: the real module's /dev node."""
    from mock_accel.inventory import open_node
    from mock_accel.uapi import DeviceFile
    node = open_node("/")
    name = "mock0"
    if node.read_attr(name, "wordlist_loaded").strip() != "1":
        node.load_wordlist(name)
    words = load_words(Path(args.wordlist))
    size = int(node.read_attr(name, "wordlist_size"))
    if size != len(words):
        raise SystemExit(f"the module has {size} words, {args.wordlist} has {len(words)}")
    with DeviceFile(f"/dev/{name}") as device:
        out = measure(device.passphrase, words, args.draws, args.seconds)
    out.update({"source": f"kernel module, /dev/{name} in the QEMU guest (TCG)",
                "kernel": os.uname().release})
    print(MARKER + json.dumps(out), flush=True)
    return 0


def sim_measure(draws: int, seconds: float, wordlist: Path) -> dict:
    import tempfile

    from mock_accel.sim import SimConfig, SimNode
    with tempfile.TemporaryDirectory(prefix="ma-k-") as tmp:
        node = SimNode.create(Path(tmp) / "root", SimConfig(num_devices=1, total_vfs=0,
                                                             firmware=str(wordlist)))
        out = measure(lambda n: node.passphrase("mock0", n), load_words(wordlist), draws,
                      seconds)
    out["source"] = "simulated node (Python engine on the host; not the kernel)"
    return out


def vm_measure(draws: int, seconds: float, wordlist: Path) -> dict:
    from tools.vm import run_in_guest
    ko = locate.ko()
    if not ko.exists():
        raise SystemExit(f"{ko} is missing: run `make kmod firmware` first")
    result = run_in_guest([sys.executable, "-m", "tests.bench.bench_kernel", "--guest",
                           "--draws", str(draws), "--seconds", str(seconds),
                           "--wordlist", str(wordlist)],
                          ko=ko, firmware_dir=wordlist.parent, timeout=1800,
                          cwd=common.REPO)
    lines = [ln for ln in result.output.splitlines() if ln.startswith(MARKER)]
    if result.returncode or not lines:
        raise SystemExit(f"guest run failed ({result.returncode}):\n{result.output[-3000:]}")
    out = json.loads(lines[-1][len(MARKER):])
    out["boot_seconds"] = result.boot_seconds
    return out


def report(out: dict, name: str) -> dict:
    fair, biased = uniformity(out["counts"]), uniformity(out["biased_counts"])
    size = len(out["counts"])
    cut = 65536 % size
    for stats, counts in ((fair, out["counts"]), (biased, out["biased_counts"])):
        low = sum(counts[:cut]) / cut
        high = sum(counts[cut:]) / (size - cut)
        stats[f"mean count idx<{cut}"] = low
        stats[f"mean count idx>={cut}"] = high
        stats["low/high"] = low / high
    common.table(out["rates"], f"passphrase ioctl rate -- {out['source']}")
    rows = [{"method": "ours (get_random_u32_below)", **fair},
            {"method": "seed's u16 % 7776 (for contrast)", **biased}]
    common.table(rows, f"chi-square uniformity of word indices, alpha {ALPHA} (Wilson-Hilferty)")
    fig, (a1, a2) = common.new_figure(2, width=6)
    for counts, label in ((out["counts"], "ours"), (out["biased_counts"], "u16 % 7776")):
        a1.hist(counts, bins=40, histtype="step", label=label)
    a1.set_xlabel("draws per word index")
    a1.set_ylabel("word indices")
    a1.set_title(f"{fair['draws']} draws over {size} words")
    a1.legend()
    width = 256
    for counts, label in ((out["counts"], "ours"), (out["biased_counts"], "u16 % 7776")):
        xs = list(range(0, size, width))
        a2.plot(xs, [sum(counts[x:x + width]) / len(counts[x:x + width]) for x in xs],
                label=label)
    a2.axvline(cut, color="gray", ls=":", label=f"65536 % {size} = {cut}")
    a2.set_xlabel("word index (blocks of 256)")
    a2.set_ylabel("mean draws per index")
    a2.set_title("where the modulo bias lands")
    a2.legend()
    return {"source": out["source"], "rates": out["rates"], "uniformity": rows,
            "draw_seconds": out["draw_seconds"], "boot_seconds": out.get("boot_seconds"),
            "plot": str(common.save_figure(fig, name))}


def main(argv: list[str] | None = None) -> dict | int:
    parser = argparse.ArgumentParser(prog="python3 -m tests.bench.bench_kernel")
    parser.add_argument("--guest", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sim", action="store_true", help="the simulated node, no VM")
    parser.add_argument("--draws", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--wordlist", type=Path,
                        default=locate.wordlist())
    args = parser.parse_args(argv)
    quick = common.quick()
    args.draws = args.draws or (20_000 if quick else 500_000)
    args.seconds = args.seconds or (0.5 if quick else 5.0)
    if args.guest:
        return guest_main(args)
    if not args.wordlist.exists():
        raise SystemExit(f"{args.wordlist} is missing: run `make firmware` first")
    common.log(f"{'simulated node' if args.sim else 'QEMU guest'}: {args.draws} draws")
    out = (sim_measure if args.sim else vm_measure)(args.draws, args.seconds, args.wordlist)
    name = "kernel-sim" if args.sim else "kernel"
    result = {"machine": common.machine(), **report(out, name)}
    common.write_result(name, result)
    return result


if __name__ == "__main__":
    outcome = main()
    sys.exit(outcome if isinstance(outcome, int) else 0)

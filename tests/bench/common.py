"""Shared pieces of the benchmarks: quick mode, statistics, tables, plots, result files,
processes we start (by pid) and their memory, and the API server's request counters."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from mock_accel.wait import wait_until
from tools import locate

REPO = locate.REPO
RESULTS_DIR = Path(__file__).resolve().parent / "results"
DRIVER = "mock-accel.example.com"
RES = "resource.k8s.io/v1"
SLICES = "/apis/resource.k8s.io/v1/resourceslices"
PAUSE = "registry.k8s.io/pause:3.10"


def quick() -> bool:
    """BENCH_QUICK=1: small sizes and short windows (the pytest smoke run, a first look)."""
    return os.environ.get("BENCH_QUICK", "") not in ("", "0")


def artifacts_dir() -> Path:
    out = locate.artifacts() / "bench"
    out.mkdir(parents=True, exist_ok=True)
    return out


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------------------- statistics
def percentile(values: Iterable[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), q in 0..100; nan for no values."""
    data = sorted(values)
    if not data:
        return float("nan")
    pos = (len(data) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def summary(values: list[float]) -> dict:
    return {"n": len(values), "p50": percentile(values, 50), "p99": percentile(values, 99),
            "max": max(values) if values else float("nan")}


def ratio(a: float, b: float) -> float | None:
    """a / b, None when undefined."""
    if b in (0, None) or a is None or a != a or b != b:
        return None
    return a / b


# ------------------------------------------------------------------------------- output
def table(rows: list[dict], title: str) -> str:
    """Print rows as a table (pandas) under a title; returns the text."""
    import pandas as pd
    frame = pd.DataFrame(rows)
    with pd.option_context("display.max_columns", None, "display.width", 200,
                           "display.max_colwidth", 60, "display.float_format",
                           lambda v: f"{v:.4g}"):
        text = frame.to_string(index=False)
    print(f"\n== {title}\n{text}\n", flush=True)
    return text


def plot_path(name: str) -> Path:
    return artifacts_dir() / f"{name}.png"


def new_figure(ncols: int = 1, width: float = 6.0, height: float = 4.0):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, list(axes[0])


def save_figure(fig, name: str) -> Path:
    import matplotlib.pyplot as plt
    path = plot_path(name)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    log(f"plot: {path}")
    return path


def write_result(name: str, data: dict) -> Path:
    """artifacts/bench/<name>.json (report.py gathers them into tests/bench/results/)."""
    data = {"benchmark": name, "quick": quick(), "finished": time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **data}
    path = artifacts_dir() / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=_jsonable) + "\n")
    log(f"results: {path}")
    return path


def _jsonable(value):
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and value != value:
        return None
    return str(value)


# ------------------------------------------------------------------------------- processes
class Proc:
    """A process we started (own process group); stopped by its pid only."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict | None = None):
        self.name, self.argv, self.log_path = name, argv, log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(log_path, "w")
        self._fh.write("$ " + " ".join(map(str, argv)) + "\n")
        self._fh.flush()
        self.popen = subprocess.Popen(argv, stdout=self._fh, stderr=subprocess.STDOUT,
                                      env={**os.environ, **(env or {})},
                                      start_new_session=True)
        self.peak_kib = 0

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def check(self) -> None:
        if not self.alive():
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}; log "
                               f"{self.log_path}:\n{tail(self.log_path)}")

    def rss_kib(self) -> int:
        """Current RSS; also keeps the kernel's peak (VmHWM)."""
        try:
            text = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return 0
        rss = int(re.search(r"VmRSS:\s+(\d+)", text).group(1))
        hwm = int(re.search(r"VmHWM:\s+(\d+)", text).group(1))
        self.peak_kib = max(self.peak_kib, hwm)
        return rss

    def stop(self, grace: float = 10.0) -> int | None:
        if self.alive():
            self.rss_kib()
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._fh.close()
        return self.popen.returncode


def tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def sim_config(**fields):
    """A simulated node's config as the chart's simulation mode makes it: with the wordlist
    firmware (`make firmware`), so a status store pays for the loaded list as it does there."""
    from mock_accel.sim import SimConfig
    wordlist = locate.wordlist()
    if not wordlist.is_file():
        raise SystemExit(f"{wordlist} is missing: run `make firmware` first")
    return SimConfig(firmware=str(wordlist), **fields)


def mock_accel_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "mock_accel.cli", *args]


# ------------------------------------------------------------------------------- API server
_METRIC = re.compile(r'^apiserver_request_total\{([^}]*)\}\s+([0-9.e+]+)$', re.M)


def request_counts(api, resource: str = "resourceslices") -> dict[str, float]:
    """verb -> requests the API server has served for `resource` (from its /metrics)."""
    text = api.request("GET", "/metrics", raw=True).text
    out: dict[str, float] = {}
    for labels, value in _METRIC.findall(text):
        fields = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if fields.get("resource") == resource and not fields.get("subresource"):
            out[fields["verb"]] = out.get(fields["verb"], 0.0) + float(value)
    return out


WRITE_VERBS = ("POST", "PUT", "PATCH", "DELETE", "APPLY", "DELETECOLLECTION")


def writes(before: dict[str, float], after: dict[str, float]) -> int:
    return int(sum(after.get(v, 0) - before.get(v, 0) for v in WRITE_VERBS))


def machine() -> dict:
    """What the figures were measured on."""
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kib = int(re.search(r"MemTotal:\s+(\d+)", open("/proc/meminfo").read()).group(1))
    except OSError:
        mem_kib = 0
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                            capture_output=True, text=True).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem_kib / 2**20, 1),
            "kernel": os.uname().release, "python": sys.version.split()[0], "commit": commit,
            "load_1m": round(os.getloadavg()[0], 2)}


# ------------------------------------------------------------------------------- watching slices
class SliceWatch:
    """A watch on ResourceSlices (all drivers) in a thread: every event with its arrival time,
    and the current state per slice name, so waits and write counts need no polling."""

    def __init__(self, api, field_selector: str | None = None):
        import threading
        self.api, self.field_selector = api, field_selector
        self.events: list[tuple[float, str, dict]] = []     # (monotonic, type, object)
        self.state: dict[str, dict] = {}
        self.cond = threading.Condition()
        self._stop = threading.Event()
        self._relist()
        import requests
        self._session = requests.Session()       # its own connection, apart from `api`'s
        self._session.verify, self._session.cert = api.session.verify, api.session.cert
        self._session.trust_env = False
        self._thread = threading.Thread(target=self._run, name="slice-watch", daemon=True)
        self._thread.start()

    def _relist(self) -> None:
        listing = self.api.request("GET", SLICES, params=self._params())
        with self.cond:
            self.state = {item["metadata"]["name"]: item for item in listing["items"]}
            self.cond.notify_all()
        self._rv = listing["metadata"]["resourceVersion"]

    def _params(self, **extra) -> dict:
        params = dict(extra)
        if self.field_selector:
            params["fieldSelector"] = self.field_selector
        return params

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                # short server-side timeouts: the loop sees `close()` within seconds
                r = self._session.get(
                    self.api.server + SLICES, stream=True, timeout=(10, 60),
                    params=self._params(watch="1", resourceVersion=self._rv,
                                        allowWatchBookmarks="true", timeoutSeconds="5"))
                if r.status_code == 410:          # too old: list again
                    self._relist()
                    continue
                r.raise_for_status()
                for line in r.iter_lines():
                    if self._stop.is_set():
                        return
                    if not line:
                        continue
                    event = json.loads(line)
                    now = time.monotonic()
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        raise RuntimeError(f"watch error: {obj}")
                    self._rv = obj["metadata"].get("resourceVersion", self._rv)
                    if event["type"] == "BOOKMARK":
                        continue
                    with self.cond:
                        self.events.append((now, event["type"], obj))
                        if event["type"] == "DELETED":
                            self.state.pop(obj["metadata"]["name"], None)
                        else:
                            self.state[obj["metadata"]["name"]] = obj
                        self.cond.notify_all()
            except Exception as err:  # noqa: BLE001 - reconnect unless stopping
                if self._stop.is_set():
                    return
                log(f"slice watch reconnecting after: {err}")
                time.sleep(0.5)

    def slices(self, driver: str | None = None, node: str | None = None) -> list[dict]:
        with self.cond:
            items = list(self.state.values())
        return [s for s in items if (driver is None or s["spec"]["driver"] == driver)
                and (node is None or s["spec"].get("nodeName") == node)]

    def devices(self, driver: str, node: str) -> dict[str, dict]:
        return {d["name"]: d for s in self.slices(driver, node)
                for d in s["spec"].get("devices") or []}

    def wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> float:
        """Block until predicate() holds; the monotonic time of the watch event it held after."""
        def held() -> float | None:
            with self.cond:
                if predicate():
                    return self.events[-1][0] if self.events else time.monotonic()
            return None
        return wait_until(held, timeout, what, interval=0.01)

    def count(self, since: float, driver: str | None = None, node: str | None = None) -> int:
        """Events (ADDED/MODIFIED/DELETED = stored writes) after `since`."""
        with self.cond:
            events = [e for e in self.events if e[0] >= since]
        return sum(1 for _, _, obj in events
                   if (driver is None or obj["spec"]["driver"] == driver)
                   and (node is None or obj["spec"].get("nodeName") == node))

    def close(self) -> None:
        """Stops within the watch's 5 s server-side timeout (daemon thread: never blocks)."""
        self._stop.set()

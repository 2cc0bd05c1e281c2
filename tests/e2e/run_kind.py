"""The offline kind e2e (`make e2e-kind`): the e2e notebooks in kind mode on a real kind cluster.

A cluster from the offline node image (tools/kind/cluster: N workers, the nodes pointed at the
local registry, which `make kind-registry-up` started), then `nbs/e2e/NN_*.ipynb` with papermill
(tests/e2e/run_notebooks.py) in `kind` mode with `kmm_mode none`: the notebook installs the chart
with `helm upgrade --install` in simulation mode, its images from the local registry. Executed
notebooks, pod logs, every node's kubelet and containerd journals and `measure.json` (the time of
each step) land in `--out`; the cluster is deleted on any exit, failure and SIGTERM included,
unless `--keep` (then its kubeconfig is printed).

    python -m tests.e2e.run_kind --out artifacts/e2e-kind [--name N] [--workers N] [--keep]
                                 [-p NAME VALUE]...
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from mock_accel.kubebins import BuildError
from tests.e2e import run_notebooks
from tools.docker import HOST
from tools.kind import cluster


def _terminated(signum, frame):
    raise SystemExit(f"signal {signum}: tearing down")


def notebooks(c: cluster.Cluster, out: Path, extra: dict, timeout: float,
              measure: dict) -> int:
    """Every e2e notebook in kind mode against `c`; the first failure stops (exit status 1)."""
    parameters = {"mode": "kind", "kubeconfig": str(c.kubeconfig), "kmm_mode": "none",
                  "kind_nodes": ",".join(c.device_nodes()), "artifacts": str(out), **extra}
    return run_notebooks.run_each(out, parameters, timeout, measure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.run_kind",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--name", default=cluster.DEFAULT_NAME)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the cluster afterwards")
    parser.add_argument("--cell-timeout", type=float, default=900)
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                        metavar=("NAME", "VALUE"))
    args = parser.parse_args(argv)
    if args.workers < 0:
        print(f"error: --workers must be 0 or more, not {args.workers}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminated)
    os.environ["DOCKER_HOST"] = HOST  # the notebooks' `docker exec` into the nodes
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    work = Path(tempfile.mkdtemp(prefix=f"{args.name}-"))
    t0, measure, c, status = time.monotonic(), {}, None, 1
    try:
        c = cluster.up(args.name, args.workers, work / "kubeconfig")
        extra = {k: run_notebooks.parse_value(v) for k, v in args.parameter}
        status = notebooks(c, args.out, extra, args.cell_timeout, measure)
    except (cluster.ClusterError, BuildError) as e:
        print(f"e2e-kind: {e}", file=sys.stderr)
    finally:
        if c is not None:
            installed = args.out / "install-times.json"
            if installed.is_file():
                measure.update(json.loads(installed.read_text()))
            cluster.collect(c, args.out, measure)
            if args.keep:
                print(f"==> KEEP: cluster {args.name} stays; kubeconfig {c.kubeconfig}")
            else:
                measure["teardown_seconds"] = cluster.down(args.name)
                shutil.rmtree(work, ignore_errors=True)
            measure["whole_seconds"] = round(time.monotonic() - t0, 1)
            (args.out / "measure.json").write_text(
                json.dumps({**c.times, **measure}, indent=2) + "\n")
            print(f"==> e2e-kind {'passed' if status == 0 else 'FAILED'}: "
                  f"{json.dumps({**c.times, **measure})}; artefacts in {args.out}", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())

"""The e2e notebooks on the QEMU guest node (`make e2e-node`): mode `node`, the real module.

A control plane on the host and one kubelet node in the QEMU guest (tools/vmnode); every image
the run needs reaches the node in one `docker save` archive (nothing is pulled). Then the
module gets onto the node:

- `--kmm prebuilt`: Kernel Module Management for real (tools/vmnode/kmm.py: built from its
  source, `KMM_SRC`; its manager on the host): the chart's `Module` makes KMM load the module
  image on the node and unload it on `helm uninstall`.
- `--kmm none`: KMM not run (its source cannot be had here): the module image is loaded the way
  KMM's worker does it (tests/harness/nodepods.loader_pod), before the install, and the
  notebooks run with `kmm_mode loaded`; everything after the load is identical.

The notebooks (`nbs/e2e/NN_*.ipynb`, papermill) then run in `node` mode: the chart installed
with helm on the real node, the module's devices published, users' pods calling the passphrase
ioctl, faults through the module's sysfs, `helm uninstall`. Commands on the node go through a
privileged pod chrooted into its root (tools/vmnode/checks.NodeShell). Executed notebooks,
the node's logs and `measure.json` (each step's time) land in `--out`.

    python -m tests.e2e.run_node --out artifacts/e2e-node [--kmm prebuilt|none] [-p NAME VALUE]...

Exit codes: 0 passed, 1 failed, 2 bad usage, 3 `--kmm prebuilt` without a KMM source.
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import signal
import sys
import time
from pathlib import Path

import yaml

from mock_accel.demo import NODE_TOPOLOGY
from mock_accel.kubebins import BuildError, find_bins
from mock_accel.wait import WaitTimeout
from tests.e2e import run_notebooks
from tests.harness.nodepods import loader_pod
from tools import gosrc, locate
from tools.images import ImageError
from tools.vm.errors import GuestError
from tools.vm.kernel import find_kernel

KMM_MODES = ("prebuilt", "none")
NAMESPACE = "mock-accel"       # the notebooks' default `namespace`
TAG = "e2e-node"
KMM_ABSENT = 3


def _terminated(signum, frame):
    raise SystemExit(f"signal {signum}: tearing down")


def images(kmm_mode: str) -> tuple[dict, Path, tuple | None]:
    """The node's images, built here, in one archive; KMM's source and build for prebuilt."""
    from tools.kmm import KMM
    from tools.vmnode.images import publish_images, save_images

    src = gosrc.locate(KMM) if kmm_mode == "prebuilt" else None  # first: SourceAbsent at once
    kver = find_kernel().version
    refs, local = publish_images(TAG, kver, push=())
    names = ["pause", "busybox", "driver", "module-busybox"]
    kmm_build = None
    if src is not None:
        from tools.vmnode import kmm

        bins = kmm.build(src, refs, local, TAG)
        names.append("kmm-worker")
        kmm_build = (src, bins)
    return {**refs, "kver": kver}, save_images(refs, local, names), kmm_build


def values(refs: dict, kmm_mode: str, path: Path) -> Path:
    """The chart's values on the node (the notebooks merge them over their own)."""
    from tools.vmnode import checks, kmm

    extra = kmm.chart_values(refs["module-busybox"], refs["kver"], NAMESPACE) \
        if kmm_mode == "prebuilt" else {"namespace": {"create": False, "name": NAMESPACE}}
    path.write_text(yaml.safe_dump(checks.chart_values(refs["driver"], extra), sort_keys=False))
    return path


def run(args, out: Path, measure: dict) -> int:
    from tools.vmnode import checks, kmm
    from tools.vmnode.node import VmNode

    t0 = time.monotonic()
    refs, archive, kmm_build = images(args.kmm)
    measure.update(images_seconds=round(time.monotonic() - t0, 1),
                   archive_mib=round(archive.stat().st_size / 2**20, 1))
    with VmNode(refs["pause"], imports=[archive]) as node:
        measure.update({k: round(v, 1) for k, v in node.timings.items()})
        measure["node_log_dir"] = str(node.run_dir)
        print(f"==> e2e-node: Node {node.name} Ready after {node.timings['boot_to_ready']:.0f}s",
              flush=True)
        measure["import_seconds"] = node.wait_imported([archive])[str(archive)]
        shell = checks.NodeShell(node, refs["busybox"])
        kubectl = find_bins(["kubectl"])["kubectl"]
        parameters = {
            "mode": "node", "kubeconfig": str(node.cluster.kubeconfig), "namespace": NAMESPACE,
            "kind_nodes": node.name, "workload_image": refs["driver"], "artifacts": str(out),
            "values_file": str(values(refs, args.kmm, out / "chart-values.yaml")),
            "kmm_mode": "prebuilt" if args.kmm == "prebuilt" else "loaded",
            "node_exec": shlex.join(shell.prefix(str(kubectl))),
            "timeout": args.timeout,
            **{k: run_notebooks.parse_value(v) for k, v in args.parameter}}
        if args.kmm == "prebuilt":
            with kmm.operator(node, *kmm_build, refs["kmm-worker"], out) as started:
                measure.update(started)
                return run_notebooks.run_each(out, parameters, args.cell_timeout, measure)
        t = time.monotonic()
        # the chart's parameters with the notebooks' topology (as 90_install gives KMM)
        topology = " ".join(f"{k}={getattr(NODE_TOPOLOGY, k)}" for k in (
            "num_devices", "numa_nodes", "total_vfs", "num_vfs", "memory_size"))
        checks.run_pod(node, loader_pod(node, refs["module-busybox"],
                                        f"{checks.module_parameters()} {topology}"))
        measure["module_load_seconds"] = round(time.monotonic() - t, 1)
        print("==> e2e-node: KMM not run: the module was loaded the way KMM's worker does",
              flush=True)
        failed = run_notebooks.run_each(out, parameters, args.cell_timeout, measure)
        if not failed:  # `helm uninstall` is done; KMM would unload the module now
            shell("rmmod mock_accel")
        return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.run_node",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--kmm", choices=KMM_MODES, default="none",
                        help="prebuilt: KMM loads the module (needs KMM_SRC); none: loaded the "
                             "way KMM's worker does, KMM not run (default)")
    parser.add_argument("--timeout", type=float, default=600,
                        help="the notebooks' wait for each step (TCG is slow; default 600 s)")
    parser.add_argument("--cell-timeout", type=float, default=3600)
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                        metavar=("NAME", "VALUE"))
    args = parser.parse_args(argv)
    if not locate.wordlist().is_file():  # the module's firmware, and the passphrases' check
        print(f"e2e-node: no {locate.wordlist()}: make firmware", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, _terminated)
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    t0, measure, status = time.monotonic(), {"kmm": args.kmm}, 1
    try:
        status = run(args, args.out, measure)
    except gosrc.SourceAbsent as e:
        measure["error"] = f"KMM not run: {e}"
        print(f"e2e-node: KMM not run: {e}", file=sys.stderr)
        status = KMM_ABSENT
    except (BuildError, ImageError, GuestError, WaitTimeout, RuntimeError,
            AssertionError) as e:
        measure["error"] = str(e)
        print(f"e2e-node: {e}", file=sys.stderr)
    finally:
        measure["whole_seconds"] = round(time.monotonic() - t0, 1)
        (args.out / "measure.json").write_text(json.dumps(measure, indent=2) + "\n")
        print(f"==> e2e-node {'passed' if status == 0 else 'FAILED'}: {json.dumps(measure)}; "
              f"artefacts in {args.out}", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())

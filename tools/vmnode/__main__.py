"""`python -m tools.vmnode check|run`: the guest node, checked or kept up (README.md, "node").

Every image a step needs reaches the node in one `docker save` archive, imported while the
kubelet registers (nothing is pulled). The `kmm` step runs Kernel Module Management for real
(tools/vmnode/kmm.py) and needs its source (KMM_SRC, tools/kmm): without it the command says so
in one line and exits 3 ("KMM not run"); `module` loads the module the way KMM's worker does.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time

from mock_accel.kubebins import BuildError
from mock_accel.wait import WaitTimeout
from tools import gosrc, locate
from tools.images import ImageError
from tools.vm.errors import GuestError
from tools.vm.kernel import find_kernel

from . import checks, kmm
from .images import publish_images, save_images
from .node import NodeError, VmNode

STEPS = ("exec", "in-cluster", "module", "chart", "kmm")
DEFAULT_STEPS = ("exec", "in-cluster", "module", "chart")
# the images each step needs on the node, besides the pod sandbox's (pause)
NEEDS = {"exec": ("busybox",), "in-cluster": ("driver",), "module": ("module",),
         "chart": ("driver",), "kmm": ("busybox", "driver", "module-busybox", "kmm-worker")}
KMM_ABSENT = 3


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        """Bad arguments: one line, exit 2."""
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def _parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="python -m tools.vmnode", description=__doc__)
    ap.add_argument("--tag", default="vmnode",
                    help="tag of the images imported on the node (default vmnode)")
    sub = ap.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    c = sub.add_parser("check", help="node up, the checks, node down; exit 1 on a failure")
    c.add_argument("--steps", default=",".join(DEFAULT_STEPS),
                   help=f"comma-separated subset of {','.join(STEPS)} (default: "
                        f"{','.join(DEFAULT_STEPS)}; kmm needs KMM_SRC and replaces module,chart)")
    sub.add_parser("run", help="node up until Ctrl-C or SIGTERM")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    steps = args.steps.split(",") if args.cmd == "check" else []
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        print(f"python -m tools.vmnode: error: unknown step(s) {','.join(unknown)} "
              f"(known: {','.join(STEPS)})", file=sys.stderr)
        return 2
    if "kmm" in steps and {"module", "chart"} & set(steps):
        print("python -m tools.vmnode: error: kmm loads the module and installs the chart "
              "itself: not with module or chart", file=sys.stderr)
        return 2
    if not locate.wordlist().is_file():  # the module's firmware, and the passphrases' check
        print(f"python -m tools.vmnode: error: no {locate.wordlist()}: make firmware",
              file=sys.stderr)
        return 1
    measure: dict = {"steps": steps}
    out = locate.artifacts() / "vmnode"
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    try:
        kver = find_kernel().version
        refs, local = publish_images(args.tag, kver, push=())  # imported, not pulled
        kmm_build = _kmm(refs, local, args.tag) if "kmm" in steps else None
        names = sorted({"pause", *(n for step in steps for n in NEEDS[step])})
        archive = save_images(refs, local, names)
        measure.update(publish_seconds=round(time.monotonic() - t0, 1), images=names,
                       archive_mib=round(archive.stat().st_size / 2**20, 1))
        with VmNode(refs["pause"], imports=[archive]) as node:
            measure.update({k: round(v, 1) for k, v in node.timings.items()})
            print(f"vmnode: Node {node.name} Ready, boot → Ready "
                  f"{node.timings['boot_to_ready']:.0f}s", flush=True)
            measure["node_log_dir"] = str(node.run_dir)
            measure["import_seconds"] = node.wait_imported([archive])[str(archive)]
            if args.cmd == "run":
                return _run(node)
            for step in steps:
                measure.update(_step(step, node, refs, kver, kmm_build, out))
    except gosrc.SourceAbsent as e:
        measure["error"] = f"KMM not run: {e}"
        print(f"python -m tools.vmnode: KMM not run: {e}", file=sys.stderr)
        return KMM_ABSENT
    except (NodeError, ImageError, GuestError, BuildError, checks.CheckError,
            WaitTimeout) as e:
        measure["error"] = str(e)
        print(f"python -m tools.vmnode: error: {e}", file=sys.stderr)
        return 1
    finally:
        measure["total_seconds"] = round(time.monotonic() - t0, 1)
        (out / "measure.json").write_text(json.dumps(measure, indent=2, default=str) + "\n")
    print(f"vmnode: all checks passed in {measure['total_seconds']:.0f}s "
          f"({out / 'measure.json'})")
    return 0


def _kmm(refs: dict, local: dict, tag: str) -> tuple:
    """KMM's source and build (kmm.build); the worker image joins the node's images."""
    from tools.kmm import KMM

    src = gosrc.locate(KMM)
    return src, kmm.build(src, refs, local, tag)


def _step(step: str, node: VmNode, refs: dict, kver: str, kmm_build, out) -> dict:
    t0 = time.monotonic()
    print(f"vmnode: check {step} …", flush=True)
    got = {"exec": lambda: checks.check_exec(node, refs["busybox"]),
           "in-cluster": lambda: checks.check_in_cluster(node, refs["driver"]),
           "module": lambda: checks.load_module(node, refs["module"]),
           "chart": lambda: {**checks.install_chart(node, refs["driver"]),
                             **checks.claim_pod(node, refs["driver"])},
           "kmm": lambda: kmm.check(node, refs, kver, *kmm_build, out)}[step]()
    for key, value in got.items():
        print(f"    {key}: {value}", flush=True)
    print(f"vmnode: check {step} passed in {time.monotonic() - t0:.0f}s", flush=True)
    return got


def _run(node: VmNode) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f"export KUBECONFIG={node.cluster.kubeconfig}\n(Ctrl-C stops the node)", flush=True)
    while not stop.wait(2) and node._guest.is_alive():
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

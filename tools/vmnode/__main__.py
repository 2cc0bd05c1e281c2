"""`python -m tools.vmnode check|run`: the guest node, checked or kept up (README.md, "node")."""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time

from mock_accel.wait import WaitTimeout
from tools import locate
from tools.images import ImageError
from tools.vm.errors import GuestError
from tools.vm.kernel import find_kernel

from . import checks
from .images import publish
from .node import NodeError, VmNode

STEPS = ("exec", "in-cluster", "module", "chart")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        """Bad arguments: one line, exit 2."""
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def _parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="python -m tools.vmnode", description=__doc__)
    ap.add_argument("--tag", default="vmnode",
                    help="tag of the images pushed to the local registry (default vmnode)")
    sub = ap.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    c = sub.add_parser("check", help="node up, the checks, node down; exit 1 on a failure")
    c.add_argument("--steps", default=",".join(STEPS),
                   help=f"comma-separated subset of {','.join(STEPS)} (default: all)")
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
    measure: dict = {"steps": steps}
    out = locate.artifacts() / "vmnode"
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    try:
        kver = find_kernel().version
        refs = publish(args.tag, kver)
        measure["publish_seconds"] = round(time.monotonic() - t0, 1)
        prepull = [refs["driver"]] * bool({"in-cluster", "chart"} & set(steps)) + \
            [refs["module"]] * ("module" in steps)
        with VmNode(refs["pause"], prepull=prepull) as node:
            measure.update({k: round(v, 1) for k, v in node.timings.items()})
            print(f"vmnode: Node {node.name} Ready, boot → Ready "
                  f"{node.timings['boot_to_ready']:.0f}s", flush=True)
            if args.cmd == "run":
                return _run(node)
            for step in steps:
                measure.update(_step(step, node, refs))
            measure["node_log_dir"] = str(node.run_dir)
    except (NodeError, ImageError, GuestError, checks.CheckError, WaitTimeout) as e:
        measure["error"] = str(e)
        print(f"python -m tools.vmnode: error: {e}", file=sys.stderr)
        return 1
    finally:
        measure["total_seconds"] = round(time.monotonic() - t0, 1)
        (out / "measure.json").write_text(json.dumps(measure, indent=2) + "\n")
    print(f"vmnode: all checks passed in {measure['total_seconds']:.0f}s "
          f"({out / 'measure.json'})")
    return 0


def _step(step: str, node: VmNode, refs: dict) -> dict:
    t0 = time.monotonic()
    print(f"vmnode: check {step} …", flush=True)
    got = {"exec": lambda: checks.check_exec(node, refs["busybox"]),
           "in-cluster": lambda: checks.check_in_cluster(node, refs["driver"]),
           "module": lambda: checks.load_module(node, refs["module"]),
           "chart": lambda: {**checks.install_chart(node, refs["driver"]),
                             **checks.claim_pod(node, refs["driver"])}}[step]()
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

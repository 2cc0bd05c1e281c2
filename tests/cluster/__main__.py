"""CLI: ``python -m tests.cluster up|down|status|run|bins``.

  up [--nodes N]   start a cluster in the background (a supervisor process keeps the
                   nodes' heartbeats going), print the kubeconfig and return
  run [--nodes N]  the same in the foreground until Ctrl-C / SIGTERM
  status           is the cluster from `up` alive and ready?
  down             stop it: SIGTERM the supervisor, then kill leftovers by pid
  bins             print the binaries that would be used

State lives in ``$MOCK_ACCEL_ARTIFACTS/cluster/cli-state.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from . import build_bins
from .harness import Cluster, ClusterError, default_state_file


def _read_state(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _alive(pid: int, exe: str | None = None) -> bool:
    """Is `pid` running (and, if given, still the binary we started)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if exe:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
            return cmd == exe
        except OSError:
            return False
    return True


def cmd_run(args, ready_fd: int | None = None) -> int:
    state_file = Path(args.state_file)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    c = Cluster()
    try:
        c.start()
        if args.nodes:
            c.create_nodes(args.nodes)
    except (ClusterError, build_bins.BuildError, Exception) as e:
        c.stop()
        print(f"error: {e}", file=sys.stderr)
        state_file.unlink(missing_ok=True)
        return 1
    state = {
        "supervisor_pid": os.getpid(), "server": c.server, "kubeconfig": str(c.kubeconfig),
        "tmp": str(c.tmp), "log_dir": str(c.log_dir), "nodes": list(c.nodes),
        "pids": {n: comp.pid for n, comp in c.components.items()},
        "exes": {n: str(c.bins[n]) for n in c.components},
        "node_kubeconfigs": {n: str(node.kubeconfig) for n, node in c.nodes.items()},
        "ready_seconds": round(c.timings["ready"], 2),
    }
    state_file.parent.mkdir(parents=True, exist_ok=True)
    state_file.write_text(json.dumps(state, indent=2) + "\n")
    print(f"cluster ready in {c.timings['ready']:.1f}s\n"
          f"  server      {c.server}\n  kubeconfig  {c.kubeconfig}\n"
          f"  nodes       {', '.join(c.nodes) or '-'}\n  logs        {c.log_dir}\n"
          f"export KUBECONFIG={c.kubeconfig}", flush=True)
    try:
        while not stop.wait(2):
            try:
                c.check_alive()
            except ClusterError as e:
                print(f"error: {e}", file=sys.stderr, flush=True)
                break
    finally:
        c.stop()
        if (_read_state(state_file) or {}).get("supervisor_pid") == os.getpid():
            state_file.unlink(missing_ok=True)
        print("cluster stopped", flush=True)
    return 0


def cmd_up(args) -> int:
    state_file = Path(args.state_file)
    st = _read_state(state_file)
    if st and _alive(st["supervisor_pid"]):
        print(f"already running (supervisor pid {st['supervisor_pid']})\n"
              f"export KUBECONFIG={st['kubeconfig']}")
        return 0
    state_file.unlink(missing_ok=True)
    build_bins.ensure_bins(build_bins.SERVER_BINS + ("kubectl",))
    log = state_file.parent / "cli-supervisor.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.cluster", "run", "--nodes", str(args.nodes),
             "--state-file", str(state_file)],
            cwd=Path(__file__).resolve().parents[2], stdout=fh, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        st = _read_state(state_file)
        if st and st.get("supervisor_pid") == proc.pid:
            print(f"cluster up in {st['ready_seconds']}s (supervisor pid {proc.pid})\n"
                  f"  server      {st['server']}\n  nodes       {', '.join(st['nodes'])}\n"
                  f"  logs        {st['log_dir']}\nexport KUBECONFIG={st['kubeconfig']}")
            return 0
        if proc.poll() is not None:
            print(f"error: cluster failed to start; see {log}:\n"
                  + "\n".join(log.read_text().splitlines()[-30:]), file=sys.stderr)
            return 1
        time.sleep(0.3)
    print(f"error: cluster not ready after 180s; see {log}", file=sys.stderr)
    return 1


def cmd_down(args) -> int:
    state_file = Path(args.state_file)
    st = _read_state(state_file)
    if not st:
        print("no cluster state; nothing to stop")
        return 0
    sup = st["supervisor_pid"]
    if _alive(sup):
        os.kill(sup, signal.SIGTERM)
        deadline = time.monotonic() + 45
        while _alive(sup) and time.monotonic() < deadline:
            time.sleep(0.2)
    # Anything the supervisor could not stop: kill by pid, only if it is still our binary.
    for name, pid in st.get("pids", {}).items():
        if _alive(pid, st.get("exes", {}).get(name)):
            print(f"killing leftover {name} (pid {pid})")
            os.kill(pid, signal.SIGKILL)
    if st.get("tmp") and Path(st["tmp"]).exists():
        shutil.rmtree(st["tmp"], ignore_errors=True)
    state_file.unlink(missing_ok=True)
    print(f"cluster stopped; logs kept in {st.get('log_dir')}")
    return 0


def cmd_status(args) -> int:
    st = _read_state(Path(args.state_file))
    if not st:
        print("not running")
        return 1
    ok = True
    for name, pid in {"supervisor": st["supervisor_pid"], **st["pids"]}.items():
        alive = _alive(pid)
        ok &= alive
        print(f"  {name:24s} pid {pid:<8d} {'running' if alive else 'DEAD'}")
    kubectl = build_bins.find_bin("kubectl")
    if kubectl and ok:
        r = subprocess.run([str(kubectl), f"--kubeconfig={st['kubeconfig']}", "get",
                            "--raw=/readyz"], capture_output=True, text=True)
        print(f"  /readyz: {(r.stdout or r.stderr).strip()}")
        ok &= r.returncode == 0
    print(f"export KUBECONFIG={st['kubeconfig']}")
    return 0 if ok else 1


def cmd_bins(args) -> int:
    for name in build_bins.ALL_BINS:
        p = build_bins.find_bin(name)
        print(f"  {name:24s} {p or '(not built)'}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.cluster", description=__doc__.split("\n")[0])
    ap.add_argument("--state-file", default=str(default_state_file()))
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("up", "run"):
        p = sub.add_parser(name)
        p.add_argument("--nodes", type=int, default=2, help="Ready nodes to create (default 2)")
        p.add_argument("--state-file", default=argparse.SUPPRESS)
    for name in ("down", "status", "bins"):
        sub.add_parser(name).add_argument("--state-file", default=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    return {"up": cmd_up, "run": cmd_run, "down": cmd_down, "status": cmd_status,
            "bins": cmd_bins}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())

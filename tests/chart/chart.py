"""Render the Helm chart with the cluster's helm and pick objects out of the result."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import yaml

from mock_accel import kubebins
from tools import locate

REPO = locate.REPO
CHART = REPO / "chart"
WORDLIST = locate.wordlist()
_SYMLINK_NOTE = re.compile(r"^walk\.go:\d+: found symbolic link in path: .*$\n?", re.M)


class RenderError(RuntimeError):
    """helm refused the values; `.message` is what helm said (symlink notes removed)."""

    def __init__(self, args: list[str], message: str):
        super().__init__(f"helm {' '.join(args)}:\n{message}")
        self.message = message


@cache
def helm_bin() -> Path:
    return kubebins.ensure_bins(["helm"])["helm"]


@cache
def _helm_home() -> str:
    return tempfile.mkdtemp(prefix="mock-accel-helm-")


def helm(*args: str, check: bool = True, kubeconfig: str | None = None,
         timeout: float = 120) -> subprocess.CompletedProcess:
    """Run helm with private config/cache dirs; stderr loses helm's notes on our symlinks."""
    home = _helm_home()
    env = {**os.environ, "HELM_CACHE_HOME": f"{home}/cache", "HELM_CONFIG_HOME": f"{home}/config",
           "HELM_DATA_HOME": f"{home}/data"}
    cmd = [str(helm_bin()), *([f"--kubeconfig={kubeconfig}"] if kubeconfig else []), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    proc.stderr = _SYMLINK_NOTE.sub("", proc.stderr)
    if check and proc.returncode != 0:
        raise RenderError(list(args), proc.stderr.strip())
    return proc


def template_args(*sets: str, set_files: dict[str, Path] | None = None,
                  set_json: dict[str, str] | None = None, release: str = "mock-device",
                  namespace: str | None = None) -> list[str]:
    args = ["template", release, str(CHART)]
    if namespace:
        args += ["--namespace", namespace]
    for s in sets:
        args += ["--set", s]
    for key, path in (set_files or {}).items():
        args += ["--set-file", f"{key}={path}"]
    for key, value in (set_json or {}).items():
        args += ["--set-json", f"{key}={value}"]
    return args


def render(*sets: str, **kwargs) -> list[dict]:
    """The objects `helm template` makes with these `--set` values (comments dropped)."""
    out = helm(*template_args(*sets, **kwargs)).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def render_error(*sets: str, **kwargs) -> str:
    """helm's message for values it must refuse (fails the test if it renders)."""
    proc = helm(*template_args(*sets, **kwargs), check=False)
    assert proc.returncode != 0, f"helm rendered {sets} {kwargs} but should have refused"
    return proc.stderr.strip()


def find(objs: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [o for o in objs if o["kind"] == kind
            and (name is None or o["metadata"]["name"] == name)]


def one(objs: list[dict], kind: str, name: str | None = None) -> dict:
    found = find(objs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}: " + ", ".join(
        f"{o['kind']}/{o['metadata']['name']}" for o in objs)
    return found[0]


def daemonset(objs: list[dict], component: str) -> dict:
    found = [o for o in find(objs, "DaemonSet")
             if o["metadata"]["labels"].get("app.kubernetes.io/component") == component]
    assert len(found) == 1, f"expected one {component} DaemonSet, got {len(found)}"
    return found[0]


def container(ds: dict) -> dict:
    (c,) = ds["spec"]["template"]["spec"]["containers"]
    return c


def host_mounts(ds: dict) -> dict[str, tuple[str, bool, str]]:
    """mountPath -> (hostPath, readOnly, hostPath type) for the pod's hostPath volumes."""
    pod = ds["spec"]["template"]["spec"]
    volumes = {v["name"]: v["hostPath"] for v in pod["volumes"] if "hostPath" in v}
    return {m["mountPath"]: (volumes[m["name"]]["path"], bool(m.get("readOnly")),
                             volumes[m["name"]].get("type", ""))
            for m in container(ds)["volumeMounts"] if m["name"] in volumes}


def inlined_files(dockerfile: str) -> dict[str, bytes]:
    """The files the chart's Dockerfile writes with `RUN echo '<base64>' | base64 -d >[>] path`."""
    files: dict[str, bytes] = {}
    for m in re.finditer(r"^RUN echo '([A-Za-z0-9+/=]*)' \| base64 -d (>>?) (\S+)$", dockerfile,
                         re.M):
        data = base64.b64decode(m.group(1))
        path = m.group(3)
        if m.group(2) == ">":
            assert path not in files, f"{path} written twice"
            files[path] = data
        else:
            files[path] += data
    return files


def kmod_sources() -> dict[str, bytes]:
    """What the in-cluster build must compile: kmod/'s sources, by path under kmod/."""
    kmod = REPO / "kmod"
    paths = [kmod / "Kbuild", kmod / "Makefile",
             *(p for p in kmod.glob("*.c") if not p.name.endswith(".mod.c")),
             *kmod.glob("*.h"), *(kmod / "include" / "uapi" / "linux").glob("*.h")]
    return {str(p.relative_to(kmod)): p.read_bytes() for p in paths}

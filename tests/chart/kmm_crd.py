"""The KMM `Module` CRD (kmm.sigs.x-k8s.io/v1beta1) for server-side dry-runs of the chart.

Where it comes from, first found wins:
1. `$MOCK_ACCEL_KMM_CRD`: a path to KMM's own CRD file;
2. a KMM checkout (`$KMM_SRC`, tools/kmm: the one the KMM operator is built from);
3. the cache `~/.cache/mock-accel/kmm/<version>/` (filled by 4.);
4. the Go module proxy: `go mod download -json <KMM module>@<version>`, then
   `config/crd/bases/kmm.sigs.x-k8s.io_modules.yaml` in the module's directory;
5. when none of these has it (the module proxy this project can reach refuses KMM's module),
   `transcribed_crd()`: our own structural schema of the part of `Module` the chart writes,
   written from KMM's API reference — field names, types, required fields; closed (unknown fields
   rejected by a Strict dry-run) down every path the chart renders, open elsewhere.
   `test_transcription_agrees_with_kmm` compares it with the real CRD whenever 1.-4. have it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import yaml

from mock_accel import kubebins
from tools import gosrc
from tools.kmm import KMM

KMM_MODULE = "github.com/kubernetes-sigs/kernel-module-management"
# The commit of KMM's v2.6.0 tag. Its go.mod has no /v2 suffix, so the go command knows the
# release only by this pseudo-version.
KMM_VERSION = "v0.0.0-20260310145716-039179455edf"
CRD_FILE = "config/crd/bases/kmm.sigs.x-k8s.io_modules.yaml"
CRD_NAME = "modules.kmm.sigs.x-k8s.io"


def cache_dir() -> Path:
    root = Path(os.environ.get("MOCK_ACCEL_CACHE", Path.home() / ".cache" / "mock-accel"))
    return root / "kmm" / KMM_VERSION


def _from_module_proxy(dest: Path) -> tuple[Path | None, str]:
    try:
        go = kubebins.go_binary()
    except Exception as e:  # noqa: BLE001 - no Go: say so, fall through
        return None, f"no go binary ({e})"
    try:
        proc = subprocess.run([go, "mod", "download", "-json", f"{KMM_MODULE}@{KMM_VERSION}"],
                              capture_output=True, text=True, timeout=180,
                              env={**os.environ, "GOFLAGS": "-mod=mod"}, cwd=Path.home())
    except subprocess.TimeoutExpired:
        return None, "go mod download timed out"
    try:
        info = json.loads(proc.stdout or "{}")
    except ValueError:
        info = {}
    if info.get("Error") or not info.get("Dir"):
        return None, (info.get("Error") or proc.stderr.strip() or "no Dir").splitlines()[0]
    src = Path(info["Dir"]) / CRD_FILE
    if not src.is_file():
        return None, f"{CRD_FILE} is not in {KMM_MODULE}@{KMM_VERSION}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    return dest, f"Go module proxy, {KMM_MODULE}@{KMM_VERSION}"


def real_crd() -> tuple[dict | None, str]:
    """KMM's own CRD and where it came from, or (None, why not)."""
    if os.environ.get("MOCK_ACCEL_KMM_CRD"):
        path = Path(os.environ["MOCK_ACCEL_KMM_CRD"])
        return yaml.safe_load(path.read_text()), f"$MOCK_ACCEL_KMM_CRD ({path})"
    try:
        src = gosrc.locate(KMM, clone=False)
    except gosrc.SourceAbsent:
        pass
    else:
        return yaml.safe_load((src / CRD_FILE).read_text()), f"KMM checkout ({src})"
    cached = cache_dir() / Path(CRD_FILE).name
    if cached.is_file():
        return yaml.safe_load(cached.read_text()), f"cache ({cached})"
    path, why = _from_module_proxy(cached)
    if path is None:
        return None, why
    return yaml.safe_load(path.read_text()), why


# ----------------------------------------------------------------------------- our transcription

def _s() -> dict:
    return {"type": "string"}


def _obj(props: dict, required: list[str] | None = None) -> dict:
    node = {"type": "object", "properties": props}
    if required:
        node["required"] = required
    return node


def _open() -> dict:
    return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def _build() -> dict:
    return _obj({
        "dockerfileConfigMap": _obj({"name": _s()}),
        "buildArgs": {"type": "array", "items": _obj({"name": _s(), "value": _s()},
                                                      ["name", "value"])},
        "secrets": {"type": "array", "items": _obj({"name": _s()})},
        "baseImageRegistryTLS": _open(), "kanikoParams": _open(), "selector": _open(),
    }, ["dockerfileConfigMap"])


def transcribed_crd() -> dict:
    strings = {"type": "array", "items": _s()}
    mapping = _obj({
        "regexp": _s(), "literal": _s(), "containerImage": _s(), "build": _build(),
        "sign": _open(), "registryTLS": _open(), "inTreeModuleToRemove": _s(),
        "inTreeModulesToRemove": strings,
    }, ["containerImage"])
    modprobe = _obj({
        "moduleName": _s(), "firmwarePath": _s(), "dirName": _s(), "parameters": strings,
        "modulesLoadingOrder": strings, "args": _open(), "rawArgs": _open(),
    })
    container = _obj({
        "modprobe": modprobe, "kernelMappings": {"type": "array", "items": mapping},
        "containerImage": _s(), "imagePullPolicy": _s(), "build": _build(), "sign": _open(),
        "registryTLS": _open(), "version": _s(), "inTreeModuleToRemove": _s(),
        "inTreeModulesToRemove": strings,
    }, ["kernelMappings", "modprobe"])
    spec = _obj({
        "selector": {"type": "object", "additionalProperties": _s()},
        "imageRepoSecret": _obj({"name": _s()}),
        "moduleLoader": _obj({"container": container, "serviceAccountName": _s()},
                             ["container"]),
        "tolerations": {"type": "array", "items": _open()},
        "devicePlugin": _open(), "imageRebuildTriggerGeneration": {
            "type": "integer"},
    }, ["selector"])
    schema = _obj({"apiVersion": _s(), "kind": _s(), "metadata": {"type": "object"},
                   "spec": spec, "status": _open()})
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": CRD_NAME,
                         "annotations": {"mock-accel.example.com/origin": "transcription"}},
            "spec": {"group": "kmm.sigs.x-k8s.io", "scope": "Namespaced",
                     "names": {"kind": "Module", "listKind": "ModuleList", "plural": "modules",
                               "singular": "module"},
                     "versions": [{"name": "v1beta1", "served": True, "storage": True,
                                   "subresources": {"status": {}},
                                   "schema": {"openAPIV3Schema": schema}}]}}


def module_crd() -> tuple[dict, str]:
    """The CRD to install and a note on its origin (KMM's own whenever it can be had)."""
    crd, why = real_crd()
    if crd is not None:
        return crd, f"KMM's own CRD from the {why}"
    return transcribed_crd(), f"our transcription (KMM's CRD not available: {why})"


def schema_paths(node: dict, path: str = "") -> dict[str, tuple[str, tuple[str, ...], bool]]:
    """path -> (type, required, open) for every node of an OpenAPI schema; `open`: the node
    keeps unknown fields (our transcription leaves what the chart never writes open)."""
    out = {path or ".": (node.get("type", ""), tuple(sorted(node.get("required", []))),
                         bool(node.get("x-kubernetes-preserve-unknown-fields")))}
    for key, sub in node.get("properties", {}).items():
        out |= schema_paths(sub, f"{path}.{key}")
    if "items" in node:
        out |= schema_paths(node["items"], f"{path}[]")
    return out

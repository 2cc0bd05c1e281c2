"""Issue 15 item 7: the dependency floors of pyproject.toml admit no version that cannot import
the committed gRPC stubs (mock_accel/proto). The quick test compares the floors with the
versions written into the stubs; the `network` test installs exactly the floors into a fresh
venv from PyPI and imports every stub there."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROTO = ROOT / "mock_accel" / "proto"


def floors() -> dict[str, str]:
    """package -> the version after `>=` in pyproject.toml's dependencies."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = {}
    for requirement in project["dependencies"]:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*>=\s*([0-9.]+)", requirement.split(";")[0])
        if match:
            found[match[1].lower()] = match[2]
    return found


def version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def stub_versions() -> tuple[set[str], set[str]]:
    """(protobuf versions, grpcio versions) the committed stubs were generated with."""
    protobuf = {m for f in PROTO.glob("*_pb2.py")
                for m in re.findall(r"# Protobuf Python Version: ([0-9.]+)", f.read_text())}
    grpc = {m for f in PROTO.glob("*_pb2_grpc.py")
            for m in re.findall(r"GRPC_GENERATED_VERSION = '([0-9.]+)'", f.read_text())}
    return protobuf, grpc


def test_floors_cover_the_committed_stubs():
    protobuf, grpc = stub_versions()
    assert protobuf and grpc, "no stubs found"
    declared = floors()
    assert version(declared["protobuf"]) >= max(map(version, protobuf)), (declared, protobuf)
    assert version(declared["grpcio"]) >= max(map(version, grpc)), (declared, grpc)


@pytest.mark.network
def test_the_floors_install_and_import_the_stubs(tmp_path):
    declared = floors()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "--only-binary=:all:", f"protobuf=={declared['protobuf']}",
                    f"grpcio=={declared['grpcio']}",
                    f"grpcio-health-checking=={declared['grpcio-health-checking']}"],
                   check=True, timeout=600)
    package = tmp_path / "src" / "mock_accel"       # the stubs alone, not the whole package
    shutil.copytree(PROTO, package / "proto", ignore=shutil.ignore_patterns("__pycache__"))
    (package / "__init__.py").write_text("")
    modules = sorted(f"mock_accel.proto.{f.stem}" for f in PROTO.glob("*_pb2*.py"))
    script = ("import importlib, google.protobuf, grpc, grpc_health.v1.health\n"
              f"for name in {modules!r}:\n    importlib.import_module(name)\n"
              "print(google.protobuf.__version__, grpc.__version__)")
    done = subprocess.run([python, "-c", script], cwd=tmp_path / "src", capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [declared["protobuf"], declared["grpcio"]]

"""What of `make e2e-kind-kmm` can be checked without Docker: shellcheck on the scripts, the kind
config through kind's own loader and validation (built from the Go module proxy), the chart
rendered with exactly the values and post-renderer the script uses, and the script's refusal to
start without a Docker daemon (its teardown trap included); for `make e2e-kind`, the config
tools/kind/cluster generates with N workers and the runner's refusal of bad input."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from mock_accel import kubebins
from mock_accel.cluster import FEATURE_GATES
from tools import locate

REPO = locate.REPO
KIND_DIR = Path(__file__).resolve().parent / "kind"
SCRIPTS = sorted(KIND_DIR.glob("*.sh"))
CACHE = Path(os.environ.get("MOCK_ACCEL_KIND_CACHE", Path.home() / ".cache" / "mock-accel"))


def lib_value(name: str) -> str:
    """A constant of lib.sh, as bash sees it."""
    result = subprocess.run(["bash", "-c", f'source "$1"; printf %s "${name}"', "_",
                             str(KIND_DIR / "lib.sh")], capture_output=True, text=True, check=True)
    return result.stdout


def test_shellcheck():
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is missing: apt-get install shellcheck (make deps does)"
    assert SCRIPTS, "no scripts in tests/e2e/kind"
    result = subprocess.run([shellcheck, "-x", *map(str, SCRIPTS)], cwd=KIND_DIR,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_scripts_are_strict_and_executable():
    main = KIND_DIR / "e2e.sh"
    assert os.access(main, os.X_OK)
    assert "set -euo pipefail" in main.read_text()
    assert "trap teardown EXIT" in main.read_text()


# -- kind's own config checks --------------------------------------------------------------------
def go() -> str:
    found = os.environ.get("GO") or shutil.which("go") or "/usr/local/go/bin/go"
    assert Path(found).exists() or shutil.which(found), "no Go toolchain (tests/cluster uses it)"
    return found


@pytest.fixture(scope="module")
def kind_module() -> Path:
    """The sigs.k8s.io/kind module at lib.sh's KIND_VERSION, from the Go module proxy."""
    version = lib_value("KIND_VERSION")
    result = subprocess.run([go(), "mod", "download", "-json", f"sigs.k8s.io/kind@{version}"],
                            capture_output=True, text=True, timeout=600, cwd="/tmp")
    assert result.returncode == 0, result.stdout + result.stderr
    return Path(json.loads(result.stdout)["Dir"])


@pytest.fixture(scope="module")
def kindcheck(kind_module: Path) -> Path:
    """tests/e2e/kind/kindcheck built inside a copy of the kind module (cached per version)."""
    source = KIND_DIR / "kindcheck" / "main.go"
    out = CACHE / "kindcheck" / kind_module.name / "kindcheck"
    stamp = out.with_suffix(".src")
    if out.exists() and stamp.exists() and stamp.read_text() == source.read_text():
        return out
    work = out.parent / "src"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(kind_module, work)
    for path in [work, *work.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)
    (work / "pkg" / "mockaccelcheck").mkdir()
    shutil.copy(source, work / "pkg" / "mockaccelcheck" / "main.go")
    result = subprocess.run([go(), "build", "-o", str(out), "./pkg/mockaccelcheck"], cwd=work,
                            capture_output=True, text=True, timeout=900,
                            env={**os.environ, "GOFLAGS": "-mod=mod"})
    assert result.returncode == 0, result.stdout + result.stderr
    stamp.write_text(source.read_text())
    shutil.rmtree(work, ignore_errors=True)
    return out


def test_kind_config_passes_kinds_validation(kindcheck):
    result = subprocess.run([str(kindcheck), str(KIND_DIR / "kind-config.yaml")],
                            capture_output=True, text=True)
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok: control-plane node" in result.stdout


def test_kindcheck_rejects_a_broken_config(kindcheck, tmp_path):
    """The checker can fail: a misspelt field and a bad cluster name are refused."""
    text = (KIND_DIR / "kind-config.yaml").read_text()
    typo = tmp_path / "typo.yaml"
    typo.write_text(text.replace("containerPath: /lib/firmware", "containerpath: /lib/firmware"))
    bad_name = tmp_path / "name.yaml"
    bad_name.write_text(text.replace("name: mock-accel-e2e", "name: Mock_Accel"))
    for path, reason in ((typo, "containerpath"), (bad_name, "not a valid cluster name")):
        result = subprocess.run([str(kindcheck), str(path)], capture_output=True, text=True)
        assert result.returncode == 1 and reason in result.stdout, result.stdout


def test_kind_config_matches_the_pins(kind_module):
    config = yaml.safe_load((KIND_DIR / "kind-config.yaml").read_text())
    # the node image is the default of the pinned kind release, with its digest
    defaults = (kind_module / "pkg" / "apis" / "config" / "defaults" / "image.go").read_text()
    (default_image,) = re.findall(r'const Image = "([^"]+)"', defaults)
    assert [n["image"] for n in config["nodes"]] == [default_image]
    minor = int(re.search(r":v1\.(\d+)\.", default_image).group(1))
    assert minor >= 34, f"{default_image}: DRA (resource.k8s.io/v1) needs Kubernetes >= 1.34"
    assert config["name"] == lib_value("CLUSTER_NAME")
    # the same DRA gates as the local control plane
    assert config["featureGates"] == FEATURE_GATES
    patches = "\n".join(config["containerdConfigPatches"])
    assert "enable_cdi = true" in patches and '"/var/run/cdi"' in patches
    mounts = {m["containerPath"]: m for n in config["nodes"] for m in n["extraMounts"]}
    assert mounts["/lib/modules"]["hostPath"] == "/lib/modules"
    assert mounts["/lib/firmware"]["hostPath"] == "/lib/firmware"
    assert not mounts["/lib/firmware"].get("readOnly")  # KMM copies the firmware there


# -- the chart with the script's values ----------------------------------------------------------
def write_values(mode: str, kernel: str, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", 'source "$1"; write_values "$2" "$3" "$4"', "_",
                           str(KIND_DIR / "lib.sh"), mode, kernel, str(out)],
                          capture_output=True, text=True)


def render(values: Path, tmp_path: Path) -> list[dict]:
    helm = kubebins.find_bin("helm")
    assert helm, "helm is not built: make cluster-bins"
    env = {**os.environ, "HELM_CACHE_HOME": str(tmp_path / "c"),
           "HELM_CONFIG_HOME": str(tmp_path / "f"), "HELM_DATA_HOME": str(tmp_path / "d")}
    result = subprocess.run(
        [str(helm), "template", lib_value("RELEASE"), str(REPO / "chart"), "--namespace",
         lib_value("CHART_NAMESPACE"), "--values", str(values)],
        capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


@pytest.mark.parametrize("mode", ["prebuilt", "build"])
def test_chart_renders_with_the_scripts_values(mode, tmp_path):
    kernel = "6.1.0-99-amd64"
    values = tmp_path / "values.yaml"
    result = write_values(mode, kernel, values)
    assert result.returncode == 0, result.stderr
    objects = render(values, tmp_path)
    kinds = {o["kind"] for o in objects}
    assert "Namespace" not in kinds  # helm --create-namespace makes it
    registry = lib_value("REGISTRY_IN_CLUSTER")
    for ds in (o for o in objects if o["kind"] == "DaemonSet"):
        (container,) = ds["spec"]["template"]["spec"]["containers"]
        assert container["image"] == f"{registry}/mock-accel-dra-driver:{lib_value('IMAGE_TAG')}"
    (module,) = [o for o in objects if o["kind"] == "Module"]
    loader = module["spec"]["moduleLoader"]["container"]
    assert loader["registryTLS"] == {"insecure": True}  # the local registry is plain HTTP
    assert "num_vfs=4" in loader["modprobe"]["parameters"]
    (mapping,) = loader["kernelMappings"]
    if mode == "prebuilt":
        assert mapping == {"literal": kernel,
                           "containerImage": f"{registry}/mock-accel-module:{kernel}"}
    else:
        assert mapping["regexp"] == "^.*$" and "build" in mapping
        assert mapping["containerImage"].startswith(f"{registry}/mock-accel-module-build:")


def test_write_values_refuses_an_unknown_mode(tmp_path):
    result = write_values("sideways", "6.1.0", tmp_path / "v.yaml")
    assert result.returncode == 1 and "prebuilt or build" in result.stderr
    assert not (tmp_path / "v.yaml").exists()


# -- the script itself ---------------------------------------------------------------------------
def test_e2e_sh_stops_cleanly_without_a_docker_daemon(tmp_path):
    """No Docker daemon here: the script must say so, exit 1, and its trap must not fail."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    docker = fake_bin / "docker"
    docker.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
    docker.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}", "TMPDIR": str(tmp_path)}
    result = subprocess.run([str(KIND_DIR / "e2e.sh")], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "its daemon does not answer" in result.stderr, result.stderr
    assert "==> tearing down" in result.stdout
    assert not list(tmp_path.glob("mock-accel-kind-*")), "the trap left its work directory"


def test_the_lifecycles_config_adds_workers_and_passes_kinds_validation(kindcheck, tmp_path):
    """tools/kind/cluster: the project's config plus N workers, each with the control plane's
    mounts, through kind's own loader; the file itself is unchanged."""
    from tools.kind.cluster import CONFIG, ClusterError, kind_config
    before = CONFIG.read_text()
    path = tmp_path / "two-workers.yaml"
    path.write_text(kind_config(2))
    result = subprocess.run([str(kindcheck), str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line.split(": ", 1)[1] for line in result.stdout.splitlines()]
    assert [line.split(" node")[0] for line in lines] == ["ok: control-plane", "ok: worker",
                                                         "ok: worker"], lines
    assert len({line.split(", ", 1)[1] for line in lines}) == 1, lines  # the same mounts
    assert yaml.safe_load(kind_config(0)) == yaml.safe_load(before)
    assert CONFIG.read_text() == before
    with pytest.raises(ClusterError, match="workers must be 0 or more"):
        kind_config(-1)


def test_run_kind_refuses_bad_input_in_one_line(tmp_path):
    """`make e2e-kind KIND_WORKERS=-1`: one line, exit 2, no cluster touched."""
    result = subprocess.run(["python3", "-m", "tests.e2e.run_kind", "--out", str(tmp_path / "o"),
                             "--workers", "-1"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "error: --workers must be 0 or more, not -1"], result.stderr
    assert not (tmp_path / "o").exists()


def test_the_lifecycle_is_no_input_of_the_node_images_cache_key():
    """The key digests tools/kind's own .py files: the lifecycle lives in a package below it, so
    changing it rebuilds no node image (and checkouts with and without it share one cache)."""
    from tools.kind import cluster, nodeimage
    package = Path(cluster.__file__).parent
    assert package.parent == nodeimage.HERE and package.name == "cluster"
    assert package not in list(nodeimage.HERE.glob("*.py"))
    assert not list(nodeimage.HERE.glob("cluster.py"))


@pytest.mark.parametrize("command", [["tests.e2e.run_kind", "--out", "OUT"],
                                     ["tools.kind.cluster", "up"]])
def test_without_our_dockerd_the_kind_e2e_says_so_in_one_line(command, tmp_path):
    """No dockerd of ours (an empty run directory): one line naming the step and the fix, exit 1,
    before any build or cluster."""
    args = [str(tmp_path / "out") if a == "OUT" else a for a in command]
    result = subprocess.run(["python3", "-m", *args, "--name", "mock-accel-no-such-cluster"],
                            capture_output=True, text=True, cwd=REPO, timeout=120,
                            env={**os.environ, "MOCK_ACCEL_DOCKER_RUN": str(tmp_path / "run")})
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert "step dockerd: no dockerd of ours answers" in lines[0] and "make dockerd-up" in lines[0]

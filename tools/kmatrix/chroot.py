"""One Debian suite's build root for the kernel matrix: a chroot made by mmdebstrap with the
suite's kernel, headers and compiler, cached by the versions of those packages."""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tools.vm.kernel import version_key

MIRROR = "http://deb.debian.org/debian"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"
# Suites without point-release updates and security fixes (the newest kernel of a stable line
# comes from those).
ROLLING = ("sid", "unstable", "forky", "testing")
PACKAGES = ("linux-headers-amd64", "linux-image-amd64", "kmod")
# The packages whose versions key the cache (and name what was built with what).
KEY_PACKAGES = ("linux-image-amd64", "linux-headers-amd64", "gcc")
# sid's Release file on the mirror may be past its Valid-Until date.
APT_OPTIONS = {"sid": ['Acquire::Check-Valid-Until "false"']}


class MatrixError(Exception):
    """A step of the matrix failed; the message names the suite."""


def cache_root() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "mock-accel" / "kmatrix"


@dataclass(frozen=True)
class SuiteRoot:
    suite: str
    path: Path  # the chroot

    @property
    def versions_file(self) -> Path:
        return self.path.parent / "versions"

    def versions(self) -> dict[str, str]:
        """Installed versions of KEY_PACKAGES (read from the chroot's dpkg database)."""
        out = self.run(["dpkg-query", "-W", "-f", "${Package} ${Version}\\n", *KEY_PACKAGES])
        return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)

    def kernel_version(self) -> str:
        """The kernel release the chroot's headers and image are for (newest if several)."""
        boot = self.path / "boot"
        found = sorted((p.name for p in (self.path / "lib" / "modules").iterdir()
                        if os.path.lexists(p / "build") and (boot / f"vmlinuz-{p.name}").exists()),
                       key=version_key)
        if not found:
            raise MatrixError(f"{self.suite}: no kernel with headers in {self.path}")
        return found[-1]

    def compiler(self) -> str:
        return self.run(["gcc", "--version"]).splitlines()[0]

    def run(self, command: list[str], *, proc: bool = False) -> str:
        """Run ``command`` in the chroot (with /proc mounted in a private mount namespace when
        ``proc``: objtool reads it); stdout+stderr, MatrixError naming the suite on failure."""
        script = 'mount -t proc proc /proc && exec "$@"' if proc else 'exec "$@"'
        argv = ["unshare", "--mount", "--fork", "chroot", str(self.path),
                "/bin/sh", "-c", script, "sh", *command]
        result = subprocess.run(argv, capture_output=True, text=True,
                                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8"})
        if result.returncode:
            raise MatrixError(f"{self.suite}: `{' '.join(command)}` failed "
                              f"(exit {result.returncode}):\n{result.stdout}{result.stderr}")
        return result.stdout + result.stderr


def sources(suite: str) -> list[str]:
    """The apt sources of the chroot: a stable suite with its updates and security suites."""
    lines = [f"deb {MIRROR} {suite} main"]
    if suite not in ROLLING:
        lines += [f"deb {MIRROR} {suite}-updates main",
                  f"deb {SECURITY_MIRROR} {suite}-security main"]
    return lines


def mmdebstrap_command(suite: str, target: Path) -> list[str]:
    options = [f"--aptopt={option}" for option in APT_OPTIONS.get(suite, [])]
    return ["mmdebstrap", "--variant=buildd", f"--include={','.join(PACKAGES)}", *options,
            suite, str(target), *sources(suite)]


def cache_key(versions: dict[str, str], suite: str) -> str:
    """What the cache is keyed by: the package versions and the sources they came from."""
    return "".join(f"{name} {version}\n" for name, version in sorted(versions.items())) + \
        "".join(f"source {line}\n" for line in sources(suite))


def candidate_versions(root: SuiteRoot) -> dict[str, str] | None:
    """What the mirror offers now for KEY_PACKAGES, or None when it cannot be asked."""
    try:
        root.run(["apt-get", "update", "-qq"])
        out = root.run(["apt-cache", "policy", *KEY_PACKAGES])
    except MatrixError:
        return None
    versions, package = {}, None
    for line in out.splitlines():
        if line and not line.startswith(" "):
            package = line.rstrip(":")
        elif line.strip().startswith("Candidate:") and package:
            versions[package] = line.split(":", 1)[1].strip()
    return versions


def ensure_root(suite: str, *, refresh: bool = True, log=print) -> SuiteRoot:
    """The cached chroot of ``suite``; made (again) when missing or when the mirror has other
    versions of the kernel, headers or compiler than the cache was made with."""
    home = cache_root() / suite
    root = SuiteRoot(suite, home / "root")
    if root.path.is_dir() and root.versions_file.is_file():
        if not refresh:
            return root
        cached = root.versions_file.read_text()
        offered = candidate_versions(root)
        if offered is None:
            log(f"{suite}: mirror not reachable, using the cached chroot")
            return root
        if cache_key(offered, suite) == cached:
            return root
        log(f"{suite}: the mirror offers {offered} (sources: {'; '.join(sources(suite))}), "
            "not what the cache was made with: making the chroot again")
    if shutil.which("mmdebstrap") is None:
        raise MatrixError(f"{suite}: mmdebstrap missing (apt-get install mmdebstrap; make deps)")
    home.mkdir(parents=True, exist_ok=True)
    staging = home / "root.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    log(f"{suite}: mmdebstrap --variant=buildd {suite} (kernel, headers, compiler; minutes)")
    result = subprocess.run(mmdebstrap_command(suite, staging), capture_output=True, text=True)
    if result.returncode:
        shutil.rmtree(staging, ignore_errors=True)
        raise MatrixError(f"{suite}: mmdebstrap failed (exit {result.returncode}):\n"
                          f"{result.stderr[-3000:]}")
    shutil.rmtree(root.path, ignore_errors=True)
    staging.rename(root.path)
    root.versions_file.write_text(cache_key(root.versions(), suite))
    return root

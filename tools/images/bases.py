"""The base images, made from Debian packages (mmdebstrap, docker import) and cached by key."""
from __future__ import annotations

import shutil

from . import BASES, CACHE, SUITE, ImageError, base_image, base_key
from .steps import exists, run, say

LABEL = "org.mock-accel.base-key"


def cached(name: str) -> bool:
    """The base is in our engine, imported whole for today's inputs (the label is set by the
    import itself, so an interrupted run leaves no image that passes)."""
    info = exists(base_image(name))
    return bool(info) and (info["Config"].get("Labels") or {}).get(LABEL) == base_key(name)


def build_base(name: str) -> str:
    """Make (or reuse) one base; return its tag."""
    tag, key = base_image(name), base_key(name)
    if cached(name):
        say(f"==> [base {name}] cached: {tag}")
        return tag
    for tool in ("mmdebstrap", "docker"):
        if shutil.which(tool) is None:
            raise ImageError(f"step base {name}: {tool} not found (make deps installs it)")
    CACHE.mkdir(parents=True, exist_ok=True)
    tar, part = CACHE / f"{name}-{key}.tar", CACHE / f"{name}-{key}.tar.part"
    part.unlink(missing_ok=True)  # a killed run's half-written root filesystem
    if not tar.exists():
        include = ["--include=" + ",".join(BASES[name])] if BASES[name] else []
        run(f"base {name}: mmdebstrap {SUITE} (about 1-2 min)",
            ["mmdebstrap", "--variant=minbase", "--format=tar", *include, SUITE, str(part)])
        part.rename(tar)
    run(f"base {name}: docker import", ["docker", "import", "--change", f"LABEL {LABEL}={key}",
                                        str(tar), tag])
    if not cached(name):
        raise ImageError(f"step base {name}: {tag} is not in the engine after its import")
    packages = run(f"base {name}: record its packages",
                   ["docker", "run", "--rm", "--network", "none", tag, "dpkg-query", "-W",
                    "-f", "${Package}=${Version}\\n"], quiet=True)
    (CACHE / f"{name}-{key}.packages").write_text(packages + "\n")
    tar.unlink()
    return tag


def build_bases(names: list[str] | None = None) -> dict[str, str]:
    return {name: build_base(name) for name in (names or list(BASES))}

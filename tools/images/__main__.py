"""`python -m tools.images bases|build|lock|names`: the images this project builds."""
from __future__ import annotations

import argparse
import sys
import time

from . import ImageError, base_image, driver_image, module_image, version
from .bases import build_bases
from .build import build_driver, build_module, default_kernel


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.images", description=__doc__)
    sub = ap.add_subparsers(dest="verb", required=True)
    sub.add_parser("bases", help="make (or reuse) the Debian bases")
    p = sub.add_parser("build", help="the bases, then the driver and module images")
    p.add_argument("--kernel", help="kernel of the module image (default: the newest Debian "
                   "*-amd64 in /lib/modules, the one `make kmod` builds for)")
    p.add_argument("--only", choices=["driver", "module"], help="build one image only")
    sub.add_parser("lock", help="rewrite images/driver/*.lock from pyproject.toml (PyPI)")
    sub.add_parser("names", help="print the version and the image names")
    a = ap.parse_args(argv)
    t0 = time.monotonic()
    try:
        if a.verb == "bases":
            build_bases()
        elif a.verb == "build":
            built = []
            if a.only in (None, "driver"):
                built.append(build_driver())
            if a.only in (None, "module"):
                built.append(build_module(a.kernel))
            print(f"==> built in {time.monotonic() - t0:.0f} s: {' '.join(built)}")
        elif a.verb == "lock":
            from .lock import write_locks
            write_locks()
        else:
            print(f"version {version()}\ndriver {driver_image()}\n"
                  f"module {module_image(default_kernel())}\n"
                  f"bases {base_image('python')} {base_image('debian')}")
    except ImageError as e:
        print(f"tools.images: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m tools.kmm source|build [--src PATH] [--no-image]` (see tools/kmm/README.md).

Exit codes: 0 done, 1 a build failed, 2 bad usage, 3 no KMM source (nothing was named in
--src or $KMM_SRC and the pinned release cannot be cloned: no internet).
"""
from __future__ import annotations

import argparse
import sys

from mock_accel.kubebins import BuildError
from tools import gosrc
from tools.images import ImageError

from . import KMM

ABSENT = 3


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.kmm", description=(
        f"Build Kernel Module Management {KMM.ref} from a checkout (dependencies from the Go "
        "module proxy)."))
    p.add_argument("command", choices=("source", "build"),
                   help="source: print the checkout used; build: build manager, worker and the "
                        "worker image")
    p.add_argument("--src", help=f"a checkout of {KMM.module} (default: ${KMM.env})")
    p.add_argument("--no-image", action="store_true", help="build the binaries only")
    args = p.parse_args(argv)
    try:
        src = gosrc.locate(KMM, args.src)
        if args.command == "source":
            print(src)
            return 0
        bins = gosrc.build(KMM, src)
        for name, path in bins.items():
            print(f"{name}: {path}")
        if not args.no_image:
            from .image import worker_image
            print(f"worker image: {worker_image(bins['worker'])}")
    except gosrc.SourceAbsent as e:
        print(f"tools.kmm: {e}", file=sys.stderr)
        return ABSENT
    except (BuildError, ImageError) as e:
        print(f"tools.kmm: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

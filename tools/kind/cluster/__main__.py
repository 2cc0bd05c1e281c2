"""`python -m tools.kind.cluster up|logs|down` (see tools/kind/cluster/__init__.py)."""
import sys

from . import main

sys.exit(main())

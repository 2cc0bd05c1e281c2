"""Render README.md from nbs/index.ipynb (nbdev_readme needs quarto, which cannot be installed
here). Markdown cells are copied; code cells become fenced Python blocks.

    python -m tools.readme           # write README.md
    python -m tools.readme --check   # exit 1 when README.md is out of date
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "nbs" / "index.ipynb"
README = ROOT / "README.md"
BANNER = "<!-- generated from nbs/index.ipynb by `make export`; edit the notebook -->\n\n"


def render(notebook: Path = NOTEBOOK) -> str:
    cells = json.loads(notebook.read_text())["cells"]
    parts = []
    for cell in cells:
        source = "".join(cell["source"]).strip("\n")
        if not source:
            continue
        parts.append(source if cell["cell_type"] == "markdown" else f"```python\n{source}\n```")
    return BANNER + "\n\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check README.md is current")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not README.exists() or README.read_text() != text:
            print("README.md is out of date: run `make export`", file=sys.stderr)
            return 1
        return 0
    README.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The literate source keeps the shape a newcomer can read: short export cells each followed by
an example, methods attached next to their class, whole module docstrings, unique notebook
numbers, and product code that never reaches into tests/."""
from __future__ import annotations

import ast
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from tools.locate import REPO

NBS = REPO / "nbs"
MAX_EXPORT_LINES = 50
EXPORT = re.compile(r"^#\|\s*export\b", re.M)


def cells(notebook: Path) -> list[dict]:
    return json.loads(notebook.read_text())["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def module_notebooks() -> list[Path]:
    return sorted(nb for nb in NBS.glob("*.ipynb")
                  if any("#| default_exp" in source(c) for c in cells(nb)))


@pytest.mark.parametrize("notebook", module_notebooks(), ids=lambda p: p.stem)
def test_export_cells_are_short_and_followed_by_an_example(notebook):
    code = [c for c in cells(notebook) if c["cell_type"] == "code"]
    for i, cell in enumerate(code):
        text = source(cell)
        if not EXPORT.search(text):
            continue
        lines = len(text.splitlines())
        assert lines <= MAX_EXPORT_LINES, f"{notebook.name}: {lines} lines:\n{text[:300]}"
        later = [source(c) for c in code[i + 1:]]
        assert any(not EXPORT.search(t) and "default_exp" not in t for t in later), \
            f"{notebook.name}: no example after the export cell:\n{text[:300]}"


def test_no_method_attached_by_assignment():
    """`Cls.m = _fn` hundreds of lines below the class: methods use fastcore's @patch instead."""
    found = []
    for path in sorted((REPO / "mock_accel").glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Attribute)
                    and isinstance(node.targets[0].value, ast.Name)
                    and node.targets[0].value.id[:1].isupper()
                    and isinstance(node.value, ast.Name) and node.value.id.startswith("_")):
                found.append(f"{path.name}:{node.lineno}")
    assert not found, f"methods attached by assignment: {found}"


def test_every_module_docstring_is_a_whole_sentence():
    broken = {}
    for path in sorted((REPO / "mock_accel").glob("*.py")):
        if path.name.startswith("_"):
            continue
        doc = (ast.get_docstring(ast.parse(path.read_text())) or "").strip()
        if not (doc[:1].isupper() and doc.endswith(".")):
            broken[path.name] = doc
    assert not broken, f"docstrings cut short (keep the `> ` summary on one line): {broken}"


@pytest.mark.parametrize("folder", [NBS, NBS / "docs", NBS / "e2e"], ids=lambda p: p.name)
def test_notebook_numbers_are_unique(folder):
    numbers = Counter(nb.name.split("_", 1)[0] for nb in folder.glob("[0-9]*_*.ipynb"))
    assert not [n for n, count in numbers.items() if count > 1], numbers


def test_product_never_imports_tests():
    pattern = re.compile(r"\b(from|import)\s+tests\b|-m\s+tests\.")
    product = [*(REPO / "mock_accel").glob("*.py"), REPO / "Makefile", *(REPO / "mk").glob("*.mk"),
               *NBS.rglob("*.ipynb")]
    found = [f"{p.relative_to(REPO)}:{n}" for p in product
             for n, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not found, f"product code calling into tests/: {found}"

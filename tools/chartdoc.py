"""The chart's parameter table, generated from chart/values.yaml (its `# --` comments and
defaults) and chart/values.schema.json (types, ranges, allowed values): one generator for
chart/README.md and the docs page (nbs/docs/04_chart.ipynb), so neither can drift.

    python -m tools.chartdoc           # rewrite the table in chart/README.md
    python -m tools.chartdoc --check   # exit 1 when chart/README.md's table is out of date
"""
from __future__ import annotations

import argparse
import html
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "chart"
BEGIN = ("<!-- parameters: generated from values.yaml and values.schema.json by "
         "`python -m tools.chartdoc`; edit those, not this table -->")
END = "<!-- end of the generated parameters -->"


class ChartDocError(ValueError):
    """The chart's values or schema cannot be documented (missing, unreadable, inconsistent)."""


def load_chart(chart: Path) -> tuple[str, dict, dict]:
    """(values.yaml text, its values, the schema) of a chart directory."""
    texts = {}
    for name in ("values.yaml", "values.schema.json"):
        path = chart / name
        if not path.is_file():
            raise ChartDocError(f"{path} is missing: no parameter table without it")
        texts[name] = path.read_text()
    try:
        values = yaml.safe_load(texts["values.yaml"])
    except yaml.YAMLError as err:
        raise ChartDocError(f"{chart / 'values.yaml'} is not valid YAML: {err}") from None
    try:
        schema = json.loads(texts["values.schema.json"])
    except json.JSONDecodeError as err:
        raise ChartDocError(f"{chart / 'values.schema.json'} is not valid JSON: {err}") from None
    if not isinstance(values, dict) or not values:
        raise ChartDocError(f"{chart / 'values.yaml'} holds no parameters")
    if not isinstance(schema, dict) or "properties" not in schema:
        raise ChartDocError(f"{chart / 'values.schema.json'} has no top-level properties")
    return texts["values.yaml"], values, schema


_KEY = re.compile(r"^(\s*)(- )?([\w./-]+):(?:\s|$)")


def descriptions(text: str) -> dict[str, str]:
    """Dotted parameter path → its `# --` description, read from values.yaml text."""
    found: dict[str, str] = {}
    stack: list[tuple[int, str]] = []  # (indent, path) of the enclosing keys and list items
    items: dict[str, int] = {}
    pending: list[str] | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            pending = [stripped[4:].strip()]
            continue
        if stripped.startswith("#"):
            if pending is not None:
                pending.append(stripped[1:].strip())
            continue
        match = _KEY.match(line)
        if not match:
            pending = None if stripped else pending
            continue
        indent, item, key = len(match[1]), bool(match[2]), match[3]
        while stack and stack[-1][0] >= indent:  # leave the keys this line is not under
            stack.pop()
        parent = stack[-1][1] if stack else ""
        if item:
            items[parent] = items.get(parent, -1) + 1
            parent = f"{parent}[{items[parent]}]"
            stack.append((indent + 1, parent))
            indent += 2
        path = f"{parent}.{key}" if parent else key
        stack.append((indent, path))
        if pending:
            found[path] = " ".join(pending)
        pending = None
    return found


def schema_at(schema: dict, path: str) -> dict:
    """The schema of one parameter path (`a.b[0].c`); {} where the schema says nothing."""
    node = schema
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            node = node.get("items", {})
        else:
            props = node.get("properties", {})
            extra = node.get("additionalProperties")
            node = props.get(part, extra if isinstance(extra, dict) else {})
    return node


def kind(node: dict) -> str:
    """A short type description: `string`, `integer (0..10)`, `one of: a, b`..."""
    variants = node.get("anyOf") or node.get("oneOf")
    types = node.get("type") or sorted({v.get("type") for v in variants or [] if v.get("type")})
    text = " or ".join(types) if isinstance(types, list) else str(types or "")
    if "enum" in node:
        return "one of: " + ", ".join(f"`{json.dumps(v)}`" for v in node["enum"])
    bounds = [node.get("minimum"), node.get("maximum")]
    if any(b is not None for b in bounds):
        low, high = ("" if b is None else b for b in bounds)
        text += f" ({low}..{high})"
    if node.get("pattern"):
        text += f", matching `{node['pattern']}`"
    return text or "any"


def parameters(values: dict, docs: dict[str, str], schema: dict) -> list[dict]:
    """One row per parameter: leaves of the values, plus documented mappings and lists."""
    rows: list[dict] = []

    def walk(value, path: str) -> None:
        node = schema_at(schema, path)
        doc = docs.get(path) or node.get("description", "")
        documented_items = any(d.startswith(f"{path}[") for d in docs)
        if isinstance(value, dict) and value:
            if path and doc:
                rows.append({"parameter": path, "description": doc, "type": "object",
                             "default": "(the keys below)"})
            for key, child in value.items():
                walk(child, f"{path}.{key}" if path else key)
        elif isinstance(value, list) and value and documented_items:
            for index, item in enumerate(value):
                if isinstance(item, dict):
                    for key, child in item.items():
                        sub = f"{path}[{index}].{key}"
                        first = docs.get(re.sub(rf"^{re.escape(path)}\[\d+\]", f"{path}[0]", sub))
                        walk_leaf(child, sub, docs.get(sub) or first or "")
        else:
            walk_leaf(value, path, doc)

    def walk_leaf(value, path: str, doc: str) -> None:
        described = kind(schema_at(schema, path))
        if described == "any":  # the schema leaves it open: say what the default is
            described = {bool: "boolean", int: "integer", float: "number", str: "string",
                         list: "array", dict: "object"}.get(type(value), "any")
        rows.append({"parameter": path, "description": doc, "type": described,
                     "default": json.dumps(value)})

    walk(values, "")
    return rows


def markdown_table(rows: list[dict]) -> str:
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    def path(text: str) -> str:  # long paths may wrap after a dot (<wbr> is not copied)
        return "<code>" + ".<wbr>".join(html.escape(part) for part in text.split(".")) + "</code>"

    lines = ["| Parameter | Description | Type | Default |", "|---|---|---|---|"]
    lines += [f"| {path(r['parameter'])} | {cell(r['description'])} | {cell(r['type'])} | "
              f"`{cell(r['default'])}` |" for r in rows]
    return "\n".join(lines)


def parameter_table(chart: Path) -> tuple[list[dict], str]:
    """The rows and the Markdown table of a chart; refuses defaults the schema rejects."""
    import jsonschema

    text, values, schema = load_chart(chart)
    try:
        jsonschema.validate(values, schema)
    except jsonschema.ValidationError as err:
        where = ".".join(str(p) for p in err.absolute_path)
        raise ChartDocError(f"values.yaml default {where or '(top)'} breaks the schema: "
                            f"{err.message}") from None
    rows = parameters(values, descriptions(text), schema)
    if not rows:
        raise ChartDocError(f"{chart}: no parameter found")
    return rows, markdown_table(rows)

def with_table(readme: str, table: str) -> str:
    """`readme` with the text between BEGIN and END replaced by `table`."""
    if (readme.count(BEGIN) != 1 or readme.count(END) != 1
            or readme.index(BEGIN) > readme.index(END)):
        raise ChartDocError(f"the README needs one {BEGIN!r} line and one {END!r} line after it")
    before, rest = readme.split(BEGIN)
    return f"{before}{BEGIN}\n{table}\n{END}{rest.split(END, 1)[1]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.chartdoc",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="only check that the README's table is current")
    parser.add_argument("--chart", type=Path, default=CHART, help="chart directory")
    args = parser.parse_args(argv)
    readme_path = args.chart / "README.md"
    try:
        _, table = parameter_table(args.chart)
        readme = readme_path.read_text()
        text = with_table(readme, table)
    except (ChartDocError, OSError) as err:
        print(f"python -m tools.chartdoc: {err}", file=sys.stderr)
        return 1
    if args.check:
        if text != readme:
            print(f"{readme_path}: the parameter table is out of date: run "
                  "`python -m tools.chartdoc`", file=sys.stderr)
            return 1
        return 0
    readme_path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

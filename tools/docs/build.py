"""Build the documentation site into _docs/ from the notebooks in nbs/, offline.

    python -m tools.docs.build                     # quarto when installed, else Sphinx
    python -m tools.docs.build --renderer sphinx   # force the offline renderer

1. execute  Every notebook of nbs/ runs in its own folder, as `nbdev_test` runs it, after nbdev's
            `add_show_docs` put a `show_doc` cell after each exported definition (so signatures
            and docstrings are rendered by nbdev itself). Cells flagged `notest`/`slow` or
            `eval: false` are not run. A notebook nbdev_test skips (`.notest` in its folder, or
            `skip_exec: true`: the e2e notebooks, which need a cluster) is not run here: its
            executed copy is taken from artifacts/e2e-notebooks/ when `make test` left one there.
2. process  nbdev's own processors (`nbdev.serve.proc_nbs`, what `nbdev_proc_nbs` runs) turn the
            executed notebooks into _proc/: front matter, `#| hide`/exported cells removed,
            `show_doc` inputs hidden, doc links added.
3. render   With quarto installed: `quarto render` over _proc/ (the `nbdev_docs` path). Without
            it: Sphinx + myst-nb + furo over a translation of _proc/ (quarto cell options become
            myst-nb tags, `#|` lines are dropped, nbdev's absolute doc links become relative).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NBS = ROOT / "nbs"
WORK = ROOT / "build" / "docs"
EXECUTED = WORK / "executed"
SOURCE = WORK / "src"
PROC = ROOT / "_proc"
SITE = ROOT / "_docs"
E2E_EXECUTED = ROOT / "artifacts" / "e2e-notebooks"
BENCH_RESULTS = ROOT / "tests" / "bench" / "results"
SPHINX_CONF = Path(__file__).resolve().parent / "sphinx"
CELL_TIMEOUT = 900
KERNEL_STARTS = 3  # attempts to start a notebook's kernel
SKIP_FLAGS = ("notest", "slow")


class DocsBuildError(RuntimeError):
    """A notebook failed to run, or the site could not be rendered."""


def log(message: str) -> None:
    print(f"==> docs: {message}", flush=True)


def shown(path: Path) -> str:
    """A path as the build log names it (relative to the repository when inside it)."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def source_notebooks() -> list[Path]:
    """The notebooks of nbs/ as nbdev globs them (names starting with _ or . skipped)."""
    found = []
    for path in sorted(NBS.rglob("*.ipynb")):
        rel = path.relative_to(NBS)
        if any(part.startswith((".", "_")) for part in rel.parts):
            continue
        found.append(path)
    return found


def page_of(notebook: Path) -> str:
    """The page nbdev names for a notebook (number prefix dropped): nbs/01_sysfs → sysfs.html."""
    from nbdev.doclinks import _nbpath2html
    return _nbpath2html(notebook.relative_to(NBS)).name


def directives(source: str) -> dict[str, str]:
    """The `#| name` / `#| name: value` lines at the top of a code cell."""
    found: dict[str, str] = {}
    for line in source.splitlines():
        match = re.match(r"#\|\s*([\w-]+):?\s*(.*?)\s*$", line.strip())
        if not match:
            if line.strip():
                break
            continue
        found[match[1]] = (match[2] or "").strip()
    return found


def front_matter(nb: dict) -> dict[str, str]:
    """Keys of a leading raw `---` YAML cell (what nbdev's FrontmatterProc reads)."""
    import yaml

    for cell in nb["cells"]:
        if cell["cell_type"] != "raw":
            continue
        text = "".join(cell["source"]).strip()
        if text.startswith("---") and text.count("---") >= 2:
            return yaml.safe_load(text.split("---")[1]) or {}
    return {}


def with_show_docs(nb: dict) -> dict:
    """`nb` plus the `show_doc(name)` cells nbdev's `add_show_docs` puts after exported cells.

    nbdev's processor is run on a copy (it rewrites directives) and only its insertions are
    carried over, so the `#| export` lines stay for step 2 to remove the exported code."""
    from execnb.nbio import dict2nb
    from nbdev.process import NBProcessor
    from nbdev.processors import add_show_docs

    copy = dict2nb(json.loads(json.dumps(nb)))
    NBProcessor(nb=copy, procs=[add_show_docs]).process()
    after: dict[str, list[str]] = {}
    previous = None
    for cell in copy.cells:
        if getattr(cell, "has_sd", False):
            after.setdefault(previous, []).append(cell.source)
        else:
            previous = cell.get("id")
    if not after:
        return nb
    cells = [{"cell_type": "code", "id": "docs-show-doc-import", "metadata": {},
              "execution_count": None, "outputs": [],
              "source": "#| hide\nfrom nbdev.showdoc import show_doc"}]
    for cell in nb["cells"]:
        cells.append(cell)
        # nbdev inserts each name right after the cell, which reverses them: source order
        for n, source in enumerate(reversed(after.get(cell.get("id"), []))):
            cells.append({"cell_type": "code", "id": f"{cell['id']}-doc{n}", "metadata": {},
                          "execution_count": None, "outputs": [], "source": source})
    return {**nb, "cells": cells}


def one_line_summary(source: str) -> str:
    """The title cell with its `> summary` on one line: nbdev's front matter keeps only the
    first `>` line as the page description, and house style wraps summaries at 100 columns."""
    lines = source.splitlines()
    quoted = [i for i, line in enumerate(lines) if line.startswith(">")]
    if not source.lstrip().startswith("# ") or not quoted:
        return source
    first, last = quoted[0], quoted[-1]
    if quoted != list(range(first, last + 1)):
        return source
    summary = "> " + " ".join(lines[i].lstrip("> ").strip() for i in quoted)
    return "\n".join(lines[:first] + [summary] + lines[last + 1:])


def split_title(source: str) -> tuple[str, str]:
    """(title and summary, the rest) of a notebook's first cell: nbdev turns the whole title
    cell into front matter, so text after the summary would be lost."""
    if not source.lstrip().startswith("# "):
        return source, ""
    lines = source.strip().splitlines()
    end = 1
    while end < len(lines) and (not lines[end].strip() or lines[end].startswith(">")):
        end += 1
    while end > 1 and not lines[end - 1].strip():
        end -= 1
    return "\n".join(lines[:end]), "\n".join(lines[end:]).strip()


assert split_title("# T\n\n> s\n\nmore\n") == ("# T\n\n> s", "more")
assert split_title("# T\n\n> s") == ("# T\n\n> s", "")
assert one_line_summary("# T\n\n> a\n> b\n\nx") == "# T\n\n> a b\n\nx"


def _stage(node, dst: Path) -> None:
    """Write a notebook for step 2."""
    import nbformat

    # the outputs are here already: nbdev's exec_show_docs must not run any cell again
    node.cells.insert(0, nbformat.v4.new_raw_cell("---\nskip_showdoc: true\n---",
                                                  id="docs-front-matter"))
    for i, cell in enumerate(node.cells):  # papermill may put an error banner first
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith("# "):
            title, rest = split_title(one_line_summary(cell.source))
            cell.source = title
            if rest:
                node.cells.insert(i + 1, nbformat.v4.new_markdown_cell(rest, id="docs-intro"))
            break
    dst.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(node, dst)


def _blank_skipped(nb: dict) -> dict[int, str]:
    """Empty the cells nbdev_test would not run (returns their sources, to put back)."""
    skipped = {}
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        found = directives("".join(cell["source"]))
        if any(flag in found for flag in SKIP_FLAGS) or found.get("eval", "").lower() == "false":
            skipped[i] = cell["source"]
            cell["source"] = ""
    return skipped


def execute(src: Path, dst: Path) -> str:
    """Run `src` in its folder (with show_doc cells) and write the executed notebook to `dst`."""
    import nbformat
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = with_show_docs(json.loads(src.read_text()))
    # show_doc cells last: with postponed annotations, a signature may name a class defined
    # further down the notebook, and nbdev's renderer evaluates the annotations
    is_doc = [bool(re.search(r"-doc\d+$", cell.get("id", ""))) for cell in nb["cells"]]
    order = sorted(range(len(nb["cells"])), key=lambda i: is_doc[i])  # stable: keeps the order
    started = time.monotonic()
    for attempt in range(1, KERNEL_STARTS + 1):
        node = nbformat.reads(json.dumps(nb), as_version=4)
        skipped = _blank_skipped(node)
        ran_a_cell = False
        with tempfile.TemporaryDirectory(prefix="mock-accel-docs-kernel-") as sockets:
            # unix sockets in a private folder: TCP ports picked by parallel kernel launches
            # (ours and other test runs) can collide, and the kernel then dies at start
            km = KernelManager(kernel_name="python3", transport="ipc",
                               ip=str(Path(sockets) / "kernel"))
            client = NotebookClient(node, km=km, timeout=CELL_TIMEOUT,
                                    resources={"metadata": {"path": str(src.parent)}})
            try:
                with client.setup_kernel():
                    for i in order:
                        ran_a_cell = True
                        client.execute_cell(node.cells[i], i)
                break
            except CellExecutionError as err:
                raise DocsBuildError(f"{shown(src)} failed:\n{err}") from None
            except RuntimeError as err:  # the kernel did not come up
                if ran_a_cell or attempt == KERNEL_STARTS:
                    raise DocsBuildError(f"{shown(src)}: the kernel failed: {err}") from None
                log(f"{shown(src)}: the kernel did not start ({err}); trying again")
    for i, source in skipped.items():
        node.cells[i].source = source
    _stage(node, dst)
    return f"{shown(src)} ran in {time.monotonic() - started:.0f} s"


def needs_cluster(src: Path) -> bool:
    """Notebooks nbdev_test skips (a `.notest` file in their folder, or `skip_exec: true`), like
    the e2e ones that `make test` runs with papermill against a cluster."""
    if any((NBS / folder / ".notest").exists() for folder in src.relative_to(NBS).parents):
        return True
    return bool(front_matter(json.loads(src.read_text())).get("skip_exec"))


def executed_copy(src: Path) -> Path | None:
    """papermill's executed copy of an e2e notebook from the last `make test`, if any."""
    copy = E2E_EXECUTED / src.name
    return copy if copy.exists() else None


def _mark_not_executed(src: Path, dst: Path) -> None:
    import nbformat

    node = nbformat.read(src, as_version=4)
    note = ("> **Not run for this build.** This notebook needs a cluster: its tables and plots "
            "appear when `make test` has run it (papermill writes "
            f"`artifacts/e2e-notebooks/{src.name}`).")
    first_md = next((i for i, c in enumerate(node.cells) if c.cell_type == "markdown"), -1)
    node.cells.insert(first_md + 1, nbformat.v4.new_markdown_cell(note, id="docs-not-executed"))
    _stage(node, dst)


def execute_all(jobs: int = 2) -> None:
    """Step 1: build/docs/executed/ mirrors nbs/ with every notebook executed."""
    shutil.rmtree(EXECUTED, ignore_errors=True)
    EXECUTED.mkdir(parents=True)
    run, origin = [], {}
    for src in source_notebooks():
        dst = EXECUTED / src.relative_to(NBS)
        cluster = needs_cluster(src)
        copy = executed_copy(src) if cluster else None
        origin[str(src.relative_to(NBS))] = ("papermill" if copy else
                                             "not run" if cluster else "executed")
        if copy:
            import nbformat

            node = nbformat.read(copy, as_version=4)
            _stage(node, dst)
            errors = sum(o.get("output_type") == "error" for c in node.cells
                         for o in c.get("outputs", []))
            log(f"{src.relative_to(NBS)}: executed copy from {copy.relative_to(ROOT)}"
                + (" (WARNING: it stopped on an error; the page shows it)" if errors else ""))
        elif cluster:
            _mark_not_executed(src, dst)
            log(f"{src.relative_to(NBS)}: needs a cluster and has no executed copy; shown as is")
        else:
            run.append((src, dst))
    # which notebooks came from where, for the site tests
    (WORK / "origin.json").write_text(json.dumps(origin, indent=1))
    log(f"executing {len(run)} notebooks ({jobs} at a time)")
    started = time.monotonic()
    with concurrent.futures.ProcessPoolExecutor(jobs) as pool:
        futures = {pool.submit(execute, src, dst): src for src, dst in run}
        failures = []
        for n, future in enumerate(concurrent.futures.as_completed(futures), 1):
            try:
                log(f"[{n}/{len(run)}] {future.result()}")
            except DocsBuildError as err:
                failures.append(str(err))
                log(f"[{n}/{len(run)}] {futures[future].relative_to(NBS)} FAILED")
    if failures:
        raise DocsBuildError("\n\n".join(failures))
    log(f"executed in {time.monotonic() - started:.0f} s")


def process() -> None:
    """Step 2: nbdev's processors over the executed notebooks, into _proc/ (nbdev_proc_nbs
    without its attempt to install quarto)."""
    from nbdev.serve import proc_nbs

    log("nbdev processors → _proc/")
    shutil.rmtree(PROC, ignore_errors=True)
    proc_nbs(path=str(EXECUTED), n_workers=0, force=True)


# --- step 3, offline: _proc/ → Sphinx sources ------------------------------------------------

# what show_doc prints for a callable object without a docstring of its own (an lru_cache or
# partial wrapper): Python's text for __call__, which says nothing about the function
NO_DOCSTRING = "*Call self as a function.*"
QUARTO_TAGS = {("echo", "false"): "remove-input", ("output", "false"): "remove-output",
               ("include", "false"): "remove-cell", ("code-fold", "true"): "hide-input",
               ("code-fold", "show"): "hide-input"}


def page_name(nb: dict, path: Path) -> str:
    """The page's name: nbdev's `output-file` (the notebook's name without its number)."""
    from nbdev.doclinks import _nbpath2html

    output = front_matter(nb).get("output-file") or _nbpath2html(path).name
    return Path(output).stem


def section(rel: Path) -> str:
    """Where a notebook goes in the navigation."""
    if rel.parts[0] == "docs":
        return "guide"
    if rel.parts[0] == "e2e":
        return "runs"
    number = re.match(r"(\d+)_", rel.name)
    if number and int(number[1]) >= 20:
        return "runs"
    return "reference"


def _relative_links(text: str) -> str:
    """Links to pages as Sphinx resolves them in its flat source folder: nbdev's absolute
    `{doc_host}{doc_baseurl}/page.html#anchor` and the notebooks' relative `../page.html#anchor`
    (written for quarto's folders) → `page.ipynb#anchor`."""
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "settings.ini")
    base = re.escape(cfg["DEFAULT"]["doc_host"].rstrip("/") + cfg["DEFAULT"]["doc_baseurl"])
    text = re.sub(base + r"/(?:[\w-]+/)*([\w-]+)\.html", r"\1.ipynb", text)
    return re.sub(r"\]\((?:\.\./)*([\w-]+)\.html(#[^)\s]*)?\)", r"](\1.ipynb\2)", text)


def translate(nb: dict) -> dict:
    """One processed notebook in the form myst-nb renders: the front matter becomes the title
    and summary, quarto cell options become myst-nb tags, and no `#|` line is left."""
    fm = front_matter(nb)
    head = [f"# {fm['title']}"] if fm.get("title") else []
    if fm.get("description"):
        head.append("{.summary}\n" + " ".join(str(fm["description"]).split()))
    cells = []
    if head:
        cells.append({"cell_type": "markdown", "id": "docs-title", "metadata": {},
                      "source": "\n\n".join(head)})
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "raw":
            continue  # the front matter, rendered above
        if cell["cell_type"] == "markdown":
            if source.strip().startswith("<!-- WARNING: THIS FILE WAS AUTOGENERATED"):
                continue
            cells.append({**cell, "source": _relative_links(source)})
            continue
        options = directives(source)
        lines = source.splitlines()
        code = "\n".join(line for line in lines if not line.lstrip().startswith("#|")).strip()
        tags = [QUARTO_TAGS[k, v.lower()] for k, v in options.items()
                if (k, v.lower()) in QUARTO_TAGS]
        outputs = cell.get("outputs", [])
        for output in outputs:
            data = output.get("data", {})
            if "text/markdown" in data:
                text = _relative_links("".join(data["text/markdown"]))
                # show_doc starts with a rule, which docutils allows only between sections
                text = re.sub(r"\A\s*---\s*\n", "", text)
                data["text/markdown"] = text.replace(NO_DOCSTRING, "")
        if not code and not outputs:
            continue
        if not code:
            tags.append("remove-input")
        metadata = {**cell.get("metadata", {}), "tags": sorted(set(tags))}
        metadata.pop("execution", None)
        cells.append({**cell, "source": code, "metadata": metadata, "outputs": outputs})
    return {**nb, "cells": cells}


def _show_docs(nb: dict) -> list[tuple[str, str, str]]:
    """(name, signature, one-line docstring) of each `show_doc` output of a processed notebook."""
    found = []
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            text = "".join(output.get("data", {}).get("text/markdown", ""))
            match = re.search(r"^#+ (\S+)\s*\n+```python\n(.*?)```\s*(?:\*(.+?)\*)?", text,
                              re.S | re.M)
            if not match:
                continue
            signature = " ".join(match[2].split()).removeprefix("def ").removeprefix("class ")
            signature = re.sub(r"\(\s+", "(", signature).replace(" )", ")").rstrip(":")
            summary = " ".join((match[3] or "").split())
            summary = "" if f"*{summary}*" == NO_DOCSTRING else summary
            found.append((match[1], signature, re.split(r"(?<=\.)\s", summary, maxsplit=1)[0]))
    return found


def api_page(modules: list[tuple[str, str, str, dict]], link: str = ".ipynb",
             summary: str = "{.summary}\n") -> str:
    """The API reference: each exported name of each module, its signature and the first
    sentence of its docstring, as nbdev's show_doc rendered them, linked to its page (`link`:
    `.ipynb` for Sphinx, `.html` for quarto)."""
    from tools.docs.slugs import heading_slug

    parts = ["# API reference", "",
             f"{summary}Every name `mock_accel` exports, with the signature and the first "
             "sentence of the docstring that `show_doc` renders on the module's page.", ""]
    for module, page, title, nb in modules:
        entries = _show_docs(nb)
        if not entries:
            continue
        parts += [f"## `mock_accel.{module}`", "", f"[{title}]({page}{link})", ""]
        for name, signature, doc in entries:
            parts += [f"[`{signature}`]({page}{link}#{heading_slug(name)})", "",
                      f": {doc or '(no docstring)'}", ""]
    return "\n".join(parts)


def bench_page(summary: str = "{.summary}\n") -> str | None:
    """The committed benchmark results (tests/bench/results/*.md), if there are any."""
    results = sorted(BENCH_RESULTS.glob("*.md")) if BENCH_RESULTS.is_dir() else []
    if not results:
        return None
    parts = ["# Benchmarks", "",
             f"{summary}The results committed under `tests/bench/results/`, as measured by "
             "`tests/bench`.", ""]
    for path in results:
        text = path.read_text().strip()
        if not text.startswith("#"):
            parts += [f"## {path.stem}", ""]
        else:  # their headings one level down
            text = re.sub(r"^(#+) ", r"#\1 ", text, flags=re.M)
        parts += [text, ""]
    return "\n".join(parts)


def bench_plots(dest: Path) -> None:
    """The plots the benchmark results show (tests/bench/results/*.png), copied beside the page."""
    for png in sorted(BENCH_RESULTS.glob("*.png")) if BENCH_RESULTS.is_dir() else []:
        shutil.copyfile(png, dest / png.name)


def default_exp(nb: dict) -> str | None:
    """The module a notebook exports to (`#| default_exp name`), if any."""
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            name = directives("".join(cell["source"])).get("default_exp")
            if name:
                return name.split()[0]
    return None


def sphinx_sources() -> None:
    """Step 3a: build/docs/src/ — one translated notebook per page, the API page, the
    benchmark page, and the navigation (toctrees in the home page)."""
    shutil.rmtree(SOURCE, ignore_errors=True)
    SOURCE.mkdir(parents=True)
    sections: dict[str, list[str]] = {"guide": [], "reference": ["api"], "runs": []}
    modules = []
    home = None
    for path in sorted(PROC.rglob("*.ipynb")):
        rel = path.relative_to(PROC)
        nb = json.loads(path.read_text())
        name = page_name(nb, rel)
        if (SOURCE / f"{name}.ipynb").exists() or name == "api":
            raise DocsBuildError(f"two notebooks would make the page {name}.html ({rel})")
        page = translate(nb)
        (SOURCE / f"{name}.ipynb").write_text(json.dumps(page, indent=1))
        if name == "index":
            home = SOURCE / "index.ipynb"
            continue
        sections[section(rel)].append(name)
        module = default_exp(json.loads((EXECUTED / rel).read_text()))
        if module:
            modules.append((module, name, front_matter(nb).get("title", name), nb))
    if home is None:
        raise DocsBuildError("nbs/index.ipynb (the home page) is missing")
    (SOURCE / "api.md").write_text(api_page(modules))
    bench = bench_page()
    if bench:
        (SOURCE / "benchmarks.md").write_text(bench)
        bench_plots(SOURCE)
        sections["runs"].append("benchmarks")
    captions = {"guide": "Guide", "reference": "Reference", "runs": "End-to-end runs"}
    # the navigation, listed at the end of the home page too (phones hide the sidebar)
    toc = "## The documentation\n\n" + "\n\n".join(
        f"```{{toctree}}\n:maxdepth: 1\n:caption: {captions[key]}\n\n" + "\n".join(pages)
        + "\n```" for key, pages in sections.items() if pages)
    page = json.loads(home.read_text())
    page["cells"].append({"cell_type": "markdown", "id": "docs-toc", "metadata": {},
                          "source": toc})
    home.write_text(json.dumps(page, indent=1))


def render_sphinx() -> None:
    """Step 3b: Sphinx renders build/docs/src/ into _docs/; a warning fails the build."""
    sphinx_sources()
    shutil.rmtree(SITE, ignore_errors=True)
    log("Sphinx (myst-nb, furo) → _docs/")
    html = WORK / "html"  # myst-nb keeps its copies in html/../jupyter_execute
    shutil.rmtree(html, ignore_errors=True)
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-W", "--keep-going",
           "-c", str(SPHINX_CONF), "-d", str(WORK / "doctrees"), str(SOURCE), str(html)]
    if subprocess.run(cmd, cwd=ROOT).returncode:
        raise DocsBuildError("Sphinx failed (its warnings are above)")
    shutil.move(html, SITE)


def render_quarto() -> None:
    """Step 3 with quarto: what `nbdev_docs` does (nbdev's _quarto.yml, nbdev.yml and sidebar,
    then `quarto render`), over the executed notebooks. README.md is left to `make export`."""
    from nbdev import quarto
    from nbdev.config import get_config

    cfg = get_config()
    values = {k: cfg[k] for k in ["title", "description", "branch", "git_url", "doc_host",
                                  "doc_baseurl"]}
    values["doc_path"] = cfg.doc_path.name
    # the two generated pages, in plain Markdown for quarto
    modules = []
    for path in sorted(EXECUTED.glob("*.ipynb")):
        nb = json.loads(path.read_text())
        module = default_exp(nb)
        if module:
            title = next((c["source"] if isinstance(c["source"], str) else "".join(c["source"])
                          for c in nb["cells"] if c["cell_type"] == "markdown"), "# " + module)
            title = re.search(r"^# (.+)$", title, re.M)
            modules.append((module, page_name(nb, path.relative_to(EXECUTED)),
                            title[1] if title else module, nb))
    (EXECUTED / "api.md").write_text(api_page(modules, link=".html", summary=""))
    bench = bench_page(summary="")
    if bench:
        (EXECUTED / "benchmarks.md").write_text(bench)
        bench_plots(EXECUTED)
    (EXECUTED / "nbdev.yml").write_text(quarto._nbdev_yml.format(**values))
    (EXECUTED / "_quarto.yml").write_text(quarto._quarto_yml)
    quarto.nbdev_sidebar.__wrapped__(path=str(EXECUTED), force=True)
    process()
    log("quarto render → _docs/")
    if subprocess.run(["quarto", "render", "--no-cache"], cwd=PROC).returncode:
        raise DocsBuildError("quarto render failed")
    shutil.rmtree(SITE, ignore_errors=True)
    shutil.move(PROC / cfg.doc_path.name, SITE)


def build(renderer: str = "auto", jobs: int = 2) -> None:
    started = time.monotonic()
    if renderer == "auto":
        renderer = "quarto" if shutil.which("quarto") else "sphinx"
    log(f"renderer: {renderer}" + ("" if shutil.which("quarto") else " (quarto is not installed)"))
    execute_all(jobs)
    if renderer == "quarto":
        render_quarto()
    else:
        process()
        render_sphinx()
    pages = len(list(SITE.rglob("*.html")))
    log(f"site built in {time.monotonic() - started:.0f} s: {pages} HTML files in "
        f"{SITE.relative_to(ROOT)}/ (open {SITE.relative_to(ROOT)}/index.html)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.docs.build",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--renderer", choices=["auto", "quarto", "sphinx"], default="auto",
                        help="auto: quarto when installed (nbdev_docs), else Sphinx")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks executed at a time")
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    try:
        build(args.renderer, args.jobs)
    except DocsBuildError as err:
        print(f"docs build failed: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run the e2e notebooks (`nbs/e2e/NN_*.ipynb`, in order) with papermill and keep the executed
copies: `python -m tests.e2e.run_notebooks --out DIR -p mode local -p kubeconfig K ...`.

Each notebook gets the same parameters (a notebook ignores those it does not declare: papermill
only warns). The first failing cell stops everything: its notebook is still written to DIR with
the error in place, and the exit status is 1. Progress: one line per cell as it starts.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "nbs" / "e2e"


def parse_value(text: str):
    """`-p name value`: numbers become numbers, everything else stays a string."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


class CellProgress(logging.Handler):
    """papermill logs 'Executing Cell N---...' at INFO: print those as progress lines."""

    def __init__(self, name: str):
        super().__init__(logging.INFO)
        self.name, self.started = name, time.monotonic()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Executing Cell"):
            cell = message.split("---")[0].replace("Executing Cell ", "")
            print(f"    {self.name}: cell {cell:>3} "
                  f"({time.monotonic() - self.started:5.1f} s)", flush=True)


def run(notebooks: list[Path], out: Path, parameters: dict, timeout: float) -> int:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    out.mkdir(parents=True, exist_ok=True)
    # the kernels import mock_accel from this checkout
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    logger = logging.getLogger("papermill")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    total = time.monotonic()
    for index, notebook in enumerate(notebooks, 1):
        target = out / notebook.name
        handler = CellProgress(notebook.stem)
        logger.handlers = [handler]
        shown = notebook.relative_to(REPO) if notebook.is_relative_to(REPO) else notebook
        print(f"==> [{index}/{len(notebooks)}] {shown} "
              f"-> {target}", flush=True)
        started = time.monotonic()
        try:
            papermill.execute_notebook(
                str(notebook), str(target), parameters=parameters, cwd=str(REPO),
                kernel_name="python3", progress_bar=False, log_output=True,
                execution_timeout=timeout, report_mode=False)
        except PapermillExecutionError as err:
            print(f"FAILED: {notebook.name}, cell {err.exec_count}: {err.ename}: "
                  f"{err.evalue}\n  executed notebook with the error: {target}", flush=True)
            return 1
        except Exception as err:  # the kernel died, a timeout, a bad parameter...
            print(f"FAILED: {notebook.name}: {type(err).__name__}: {err}\n"
                  f"  executed notebook so far: {target}", flush=True)
            return 1
        print(f"    {notebook.name} passed in {time.monotonic() - started:.1f} s", flush=True)
    print(f"==> {len(notebooks)} notebooks passed in {time.monotonic() - total:.1f} s; "
          f"executed copies in {out}", flush=True)
    return 0


def run_each(out: Path, parameters: dict, timeout: float, measure: dict) -> int:
    """Every e2e notebook, one run each, its time in `measure` (`notebook_<stem>_seconds`); the
    first failure stops (exit status 1)."""
    for notebook in sorted(NOTEBOOKS.glob("[0-9]*.ipynb")):
        t0 = time.monotonic()
        failed = run([notebook], out, parameters, timeout)
        measure[f"notebook_{notebook.stem}_seconds"] = round(time.monotonic() - t0, 1)
        if failed:
            return failed
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.run_notebooks",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="where executed notebooks go")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                        metavar=("NAME", "VALUE"))
    parser.add_argument("--cell-timeout", type=float, default=600,
                        help="seconds one cell may run")
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help=f"default: every {NOTEBOOKS.relative_to(REPO)}/NN_*.ipynb")
    args = parser.parse_args(argv)
    notebooks = [n.resolve() for n in args.notebooks] or sorted(NOTEBOOKS.glob("[0-9]*.ipynb"))
    if not notebooks:
        print(f"error: no notebooks in {NOTEBOOKS}", file=sys.stderr)
        return 2
    for notebook in notebooks:
        if not notebook.is_file():
            print(f"error: no notebook {notebook}", file=sys.stderr)
            return 2
    parameters = {name: parse_value(value) for name, value in args.parameter}
    return run(notebooks, args.out, parameters, args.cell_timeout)


if __name__ == "__main__":
    sys.exit(main())

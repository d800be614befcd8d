"""Execute every notebook with its defaults, headless, and compare each one's time with the time
its first cell states.

    python benchmarks/notebook_times.py [notebooks/01_quickstart.ipynb ...] [--keep DIR]

What a reader does with `make lab` and "Run all", without a browser: each notebook runs in a
`python3` kernel (nbclient) from the repository root, on the shipped checkpoints (nothing is
trained), so an error in any cell fails it. Prints, per notebook, the measured seconds, the
seconds its opening cell states ("**N s measured**") and their ratio, and exits non-zero if a
notebook fails or runs over its stated time. `--keep DIR` writes each executed notebook there
(figures included) to look at. The first run of a fresh clone also decodes CIFAR-10 once
(stated separately in each notebook), so time a second run.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
import warnings
from pathlib import Path

import nbclient
import nbformat

from gattanet_sim.cli import Parser, positive_int

ROOT = Path(__file__).resolve().parents[1]
STATED = re.compile(r"\*\*\s*(\d+) s measured")


def stated_seconds(nb) -> int | None:
    """The run time a notebook's opening cells state, in seconds (None if none is stated)."""
    for cell in nb.cells[:3]:
        found = STATED.search(cell.source)
        if found:
            return int(found.group(1))
    return None


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="python benchmarks/notebook_times.py", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("notebooks", nargs="*", type=Path, default=sorted((ROOT / "notebooks").glob("*.ipynb")))
    p.add_argument("--keep", type=Path, help="write each executed notebook into this folder")
    p.add_argument("--timeout", type=positive_int, default=1800, help="seconds a cell may take (default 1800)")
    args = p.parse_args(argv)
    if os.environ.get("GATTANET_SMALL"):
        p.error("GATTANET_SMALL is set: unset it to time the notebooks as a reader runs them")
    for path in args.notebooks:
        if not path.is_file():
            p.error(f"{path}: no such notebook")
    if args.keep is not None and args.keep.exists() and not args.keep.is_dir():
        p.error(f"--keep {args.keep}: is a file, not a folder")
    warnings.filterwarnings("ignore", message="Cell is missing an id field")  # notebooks of nbformat 4.4
    failed = 0
    print(f"{'notebook':34s} {'measured':>9s} {'stated':>7s} {'ratio':>6s}")
    for path in args.notebooks:
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception as err:  # not JSON, not a notebook: nbformat raises several kinds
            p.error(f"{path}: not a readable notebook ({type(err).__name__})")
        stated = stated_seconds(nb)
        started = time.perf_counter()
        try:
            nbclient.NotebookClient(nb, kernel_name="python3", timeout=args.timeout,
                                    resources={"metadata": {"path": str(ROOT)}}).execute()
            error = None
        except nbclient.exceptions.CellExecutionError as err:
            error = str(err).strip().splitlines()[-1]
        seconds = time.perf_counter() - started
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, args.keep / path.name)
        ratio = f"{seconds / stated:6.2f}" if stated else "     -"
        print(f"{path.name:34s} {seconds:8.0f}s {stated or '-':>6}s {ratio}"
              + (f"  FAILED: {error}" if error else ""), flush=True)
        failed += error is not None or stated is None or seconds > stated
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

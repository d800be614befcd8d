"""Writing an analysis's tables and figures: CSV, PNG and SVG, each through a temporary file.

An analysis script's outputs are written all or none (`all_or_nothing`): each goes to a
temporary file first, and they are renamed into place together only when the script ends
well, so a failure on the figure never leaves a fresh table that looks like a result.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from gattanet_sim.io import UsageError, atomic_path, check_replaceable, honour_umask  # noqa: E402

_PENDING: ContextVar[list[tuple[Path, Path]] | None] = ContextVar("pending_outputs", default=None)


@contextlib.contextmanager
def _output(path: Path) -> Iterator[Path]:
    """A temporary path for `path`: renamed at once, or at the end of `all_or_nothing`."""
    pending = _PENDING.get()
    if pending is None:
        with atomic_path(path) as tmp:
            yield tmp
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    honour_umask(tmp)
    pending.append((Path(tmp), path))
    yield Path(tmp)


def all_or_nothing(main: Callable[[list[str] | None], int]) -> Callable[[list[str] | None], int]:
    """Run a script's main() so that its outputs appear together when it returns 0, and none
    of them (the earlier files left as they were) when it fails."""

    @functools.wraps(main)
    def wrapped(argv: list[str] | None = None) -> int:
        pending: list[tuple[Path, Path]] = []
        token = _PENDING.set(pending)
        code = 1
        try:
            code = main(argv)
        finally:
            _PENDING.reset(token)
            if code != 0:
                for tmp, _ in pending:
                    tmp.unlink(missing_ok=True)
        if code == 0:
            _commit(pending)
        return code

    return wrapped


def _commit(pending: list[tuple[Path, Path]]) -> None:
    """Rename every temporary onto its output, or none of them: each earlier file is kept under
    a hidden backup name until the last rename succeeded, and put back if one fails."""
    backups: list[tuple[Path, Path | None]] = []
    try:
        for _, path in pending:
            if path.is_dir():
                raise UsageError(f"cannot write {path}: it is a directory; no output was written")
        for tmp, path in pending:
            backup = None
            if path.exists():
                backup = path.with_name(f".{path.name}.{os.getpid()}.bak")
                shutil.copy2(path, backup)
            backups.append((path, backup))
            os.replace(tmp, path)
    except BaseException:
        for path, backup in reversed(backups):
            if backup is not None:
                os.replace(backup, path)
            else:
                path.unlink(missing_ok=True)
        backups = []
        raise
    finally:
        for tmp, _ in pending:
            tmp.unlink(missing_ok=True)
        for _, backup in backups:
            if backup is not None:
                backup.unlink(missing_ok=True)


def error_bars(value, low, high) -> list[np.ndarray]:
    """matplotlib's `yerr` for an estimate and its CI: distances below and above, never negative
    (a bootstrap CI can miss its own estimate by a rounding error, which matplotlib refuses)."""
    value, low, high = (np.asarray(v, float) for v in (value, low, high))
    return [np.maximum(value - low, 0.0), np.maximum(high - value, 0.0)]


def write_table(table: pd.DataFrame, path: Path) -> Path:
    """A CSV table; an existing file is replaced only if it is text (a table), never a checkpoint."""
    check_replaceable(path, "table")
    with _output(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    return path


def write_figure(figure: plt.Figure, stem: Path) -> list[Path]:
    """stem.png and stem.svg."""
    paths = []
    for suffix in (".png", ".svg"):
        path = stem.with_suffix(suffix)
        with _output(path) as tmp:
            figure.savefig(tmp, format=suffix[1:], dpi=130, bbox_inches="tight")
        paths.append(path)
    plt.close(figure)
    return paths

"""Files that are never half-written, checkpoints that cannot run code, run provenance."""

from __future__ import annotations

import json
import os
import pickle
import platform
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch


class UsageError(ValueError):
    """Arguments or options that make no sense together; the tools exit with status 2."""


class UnsafeFileError(ValueError):
    """A file that is not what it claims, or whose loading would run code."""


def honour_umask(path: Path | str, mode: int = 0o666) -> None:
    """Give a file made by `tempfile.mkstemp` (always mode 0600) the mode `open` would have
    given it under the process's umask, so that a lab's shared runs stay readable."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, mode & ~umask)


def honour_umask_dir(path: Path | str) -> None:
    """The same for a directory made by `tempfile.mkdtemp` (always mode 0700)."""
    honour_umask(path, 0o777)


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    A reader never sees a half-written file: it sees the old one or the new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    honour_umask(tmp)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# The first bytes of a netCDF file: classic (CDF 1, 2, 5) or netCDF-4, which is HDF5.
NETCDF_MAGIC = (b"CDF\x01", b"CDF\x02", b"CDF\x05", b"\x89HDF\r\n\x1a\n")


# What each kind of output is called in a refusal.
KINDS = {"recording": "a recording (netCDF)", "templates": "a templates file (JSON)", "table": "a CSV table",
         "evaluation": "an evaluation (JSON)", "scorecard": "a scorecard (markdown)"}


def _text(path: Path) -> str | None:
    """The start of a text file (None for a binary one such as a checkpoint)."""
    with open(path, "rb") as f:
        start = f.read(4096)
    if b"\0" in start:
        return None
    try:
        return start.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _json(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        return None


def _is_kind(path: Path, kind: str) -> bool:
    """Whether an existing file holds an output of `kind`, by its content."""
    with open(path, "rb") as f:
        head = f.read(8)
    if kind == "recording":
        return any(head.startswith(magic) for magic in NETCDF_MAGIC)
    if kind == "table":  # a CSV (one column has no comma): text, neither JSON nor markdown
        text = _text(path)
        return text is not None and not text.lstrip().startswith(("{", "[", "#"))
    if kind == "scorecard":
        text = _text(path)
        return bool(text) and text.startswith("# Biology scorecard")
    content = _json(path)
    if kind == "evaluation":
        return isinstance(content, dict) and {"accuracy", "checkpoint"} <= set(content)
    return kind == "templates" and isinstance(content, dict) and "templates" in content


def check_replaceable(path: Path | str | None, kind: str, force: bool | None = None) -> None:
    """An output may replace an earlier output of its own kind (`KINDS`), told by its content,
    never anything else: `--out RUN/best.pt` would have destroyed the checkpoint it was reading,
    `evaluate --out RUN/config.json` the run's configuration. `force`: the CLI's --force (None
    where a CLI has no such option, so the refusal does not advise it). Raises UsageError,
    before any work is done."""
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{path} is a directory; give a file name for {KINDS[kind]}")
    if path.exists() and not force and not _is_kind(path, kind):
        way = "remove it first or pass --force" if force is not None else "or remove it first"
        raise UsageError(f"refusing to replace {path}: it is not {KINDS[kind]}, and another file would be lost; "
                         f"write elsewhere, {way}")


def atomic_save(obj: Any, path: Path | str) -> None:
    """torch.save through a temporary file."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def write_json(obj: Any, path: Path | str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def safe_load(path: Path | str, map_location: str | torch.device = "cpu") -> Any:
    """torch.load with weights_only=True: tensors and plain containers, never code."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError, OSError, IndexError,
            KeyError, TypeError, UnicodeDecodeError) as err:
        # OSError: a truncated file ("Invalid argument" from the zip reader, naming no file);
        # IndexError / KeyError: a text file read as a legacy pickle
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "weights_only" in first or "torch.load" in first or "Weights only" in first or first.isdigit():
            first = "it holds something other than tensors and plain containers"  # never torch's advice
        raise UnsafeFileError(f"refusing to load {path}: not a plain checkpoint ({first})") from None


def sha256(path: Path | str) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def package_versions() -> dict[str, str]:
    import importlib.metadata as md

    versions = {"python": platform.python_version()}
    for name in ("gattanet_sim", "torch", "torchvision", "numpy", "xarray", "scipy"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit() -> str:
    """The commit of the source tree this package runs from ('+dirty' if changed), or ''."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return f"{commit}+dirty" if commit and dirty else commit

"""What the command-line tools share: one-line errors, devices, datasets with a fallback."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from gattanet_sim.data import (
    DataError,
    DatasetUnavailable,
    ImageSet,
    balanced_subset,
    default_root,
    load_split,
)
from gattanet_sim.io import UnsafeFileError, UsageError

DATASETS = ("cifar10", "cifar100", "folder", "imagenet", "stimuli")


def main_guard(main: Callable[[list[str] | None], int]) -> Callable[[list[str] | None], int]:
    """Turn the errors a user can cause into one line on stderr and a non-zero exit."""

    @functools.wraps(main)
    def wrapped(argv: list[str] | None = None) -> int:
        prog = main.__module__.rsplit(".", 1)[-1]
        if not main.__module__.startswith("gattanet_sim."):  # a script, run by path or loaded
            where = getattr(sys.modules.get(main.__module__), "__file__", None)  # from its file
            prog = Path(where or sys.argv[0]).name
        try:
            return main(argv)
        except UsageError as err:  # a bad probe (recording.ProbeError) too
            print(f"{prog}: error: {one_line(err)}", file=sys.stderr)
            return 2
        except (DataError, UnsafeFileError, ValueError, KeyError) as err:
            print(f"{prog}: error: {one_line(err)}", file=sys.stderr)
            return 1
        except OSError as err:  # a missing file, a full disk, a path we may not write
            where = f": {err.filename}" if err.filename else ""
            print(f"{prog}: error: {one_line(err.strerror or err)}{one_line(where)}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print(f"{prog}: interrupted", file=sys.stderr)
            return 130

    return wrapped


def one_line(text: object) -> str:
    """Escape control characters (a user's stray newline too) so a message stays one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line: 'prog: error: ... (see --help)'."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see --help)\n")


def analysis_parser(script: str, doc: str | None, outputs: str | None = "the tables and figure") -> Parser:
    """The parser of `analyses/<script>.py`: a recording to read and, unless `outputs` is None,
    `--out`, the directory its outputs go to."""
    p = Parser(prog=f"python analyses/{script}.py", description=doc,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recording", type=Path)
    if outputs is not None:
        p.add_argument("--out", type=Path, required=True, help=f"directory for {outputs}")
    return p


def add_selection_arguments(p: argparse.ArgumentParser, attended: str = "cue=valid",
                            unattended: str = "cue=neutral") -> None:
    """--attended/--unattended: the two sets of presentations an analysis contrasts."""
    from gattanet_sim.analysis.common import parse_selection  # here: train and record need no xarray

    p.add_argument("--attended", type=parse_selection, default=attended,
                   help=f"presentations with attention, COORD=VALUE[,..] (default {attended})")
    p.add_argument("--unattended", type=parse_selection, default=unattended,
                   help=f"the unattended reference, COORD=VALUE[,..] (default {unattended})")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"every value must be at least 1, got {text}")
    return values


def seed_list(text: str) -> list[int]:
    """Comma-separated seeds, whole numbers >= 0."""
    try:
        seeds = [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated seeds (whole numbers), got {text!r}") from None
    if any(s < 0 for s in seeds):
        raise argparse.ArgumentTypeError(f"seeds must be >= 0, got {text}")
    return seeds


def name_list(text: str) -> tuple[str, ...]:
    values = tuple(v.strip() for v in text.split(","))
    if not all(values):
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return values


def add_data_arguments(parser: argparse.ArgumentParser, dataset_default: str | None) -> None:
    parser.add_argument("--dataset", choices=DATASETS, default=dataset_default,
                        help="image set (default: cifar10, or the run's own)")
    parser.add_argument("--data-root", type=Path, default=None,
                        help="where datasets are found or downloaded (default: $GATTANET_DATA or data/)")
    parser.add_argument("--val-size", type=int, default=None,
                        help="images held out of the training set for validation (default 5000)")
    parser.add_argument("--image-size", type=positive_int, default=None,
                        help="resize folder images to this side (default: keep; must agree)")


def pick_device(name: str) -> torch.device:
    """'auto' is cuda when present, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"device {name} asked for, but no CUDA device is available")
    if name != "cpu" and not name.startswith("cuda"):
        raise UsageError(f"unknown device {name!r}; use auto, cpu or cuda[:N]")
    return torch.device(name)


def load_data(dataset: str, split: str, root: Path | None, val_size: int,
              image_size: int | None, fallback: bool) -> tuple[ImageSet, str]:
    """Load a split; with `fallback`, an unavailable dataset becomes the embedded stimuli."""
    root = root if root is not None else default_root()
    try:
        return load_split(dataset, split, root, val_size, image_size), dataset
    except DatasetUnavailable as err:
        if not fallback:
            raise
        print(f"warning: {err}; using the embedded 'stimuli' set instead "
              "(pass --data-root, set GATTANET_DATA, or choose --dataset)", file=sys.stderr)
        return load_split("stimuli", split, root, val_size, image_size), "stimuli"


def run_data(args: argparse.Namespace, config: dict) -> tuple[ImageSet, str, torch.Tensor]:
    """The split a trained run is evaluated or recorded on: the run's own dataset, root and
    validation size unless the arguments override them, and each image's position in it.

    `--limit N` keeps N images, the same number from every class, always the same draw (seed
    0): a split is often sorted by class, so its first N would be one or two classes.
    """
    root = args.data_root or (Path(config["data_root"]) if config.get("data_root") else None)
    val_size = args.val_size if args.val_size is not None else config.get("val_size", 5000)
    data, dataset = load_data(args.dataset or config.get("dataset", "cifar10"), args.split, root,
                              val_size, args.image_size or config.get("image_size"), fallback=False)
    positions = torch.arange(len(data))
    if args.limit:
        positions = balanced_subset(data.labels, args.limit, seed=0)
        data = data.subset(positions)
    return data, dataset, positions


def run_timesteps(args: argparse.Namespace, config: dict, model) -> int:
    """`--timesteps`, else the run's; enough for the input to reach the read-out."""
    timesteps = args.timesteps or config.get("timesteps", 2)
    if timesteps < model.arrival_steps:
        raise UsageError(f"{model.mode} mode needs --timesteps >= {model.arrival_steps}")
    return timesteps


def set_threads() -> None:
    """Respect OMP_NUM_THREADS if set to a number; otherwise torch's own default."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    if value.isdigit():
        torch.set_num_threads(max(1, int(value)))

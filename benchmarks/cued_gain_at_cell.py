"""Manipulation check of a cue-trained run: does the cue move the gain to a place?

    python benchmarks/cued_gain_at_cell.py runs/toy_cifar10/cued/cue-frozen-T4-recipe-beta-0.5-location-s0

For each cue type (valid, neutral, invalid) the run's own fixed validation arrays of the cued
task (`train.detection_probe`, the first `--arrays`) are shown at the run's T with the run's cue
weight; per conv area it prints the mean gain at the last step in the quadrant of the array's
item (the cell a valid location cue names; the target's on present arrays) over the mean of the
other three quadrants. A location cue that names its place raises that ratio when valid and lowers
it when invalid; a class cue moves it only as far as the item's features do. The ratios are
what results/README.md quotes (2x2 arrays only).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gattanet_sim import cued_task  # noqa: E402
from gattanet_sim.cli import positive_int  # noqa: E402
from gattanet_sim.evaluate import load_checkpoint  # noqa: E402
from gattanet_sim.train import detection_probe, load_data  # noqa: E402


def quadrant_gain(gain: torch.Tensor, cell: torch.Tensor) -> tuple[float, float]:
    """Mean gain in each array's item quadrant and in the other three: gain (B, H, W), cell (B,)."""
    h, w = gain.shape[-2] // 2, gain.shape[-1] // 2
    quads = torch.stack([gain[:, :h, :w], gain[:, :h, w:], gain[:, h:, :w], gain[:, h:, w:]], 1)  # (B, 4, h, w)
    means = quads.flatten(2).mean(2)  # (B, 4) row-major, as the cells
    at = means[torch.arange(len(cell)), cell]  # (B,)
    return float(at.mean()), float(((means.sum(1) - at) / 3).mean())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path)
    p.add_argument("--data-root", default="../shared/datasets")
    p.add_argument("--arrays", type=positive_int, default=400)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    try:
        model, config, _ = load_checkpoint(args.run, torch.device("cpu"))
    except (FileNotFoundError, ValueError) as err:
        p.error(str(err))
    if config.get("task") != "cued-detection" or config.get("grid", 2) != 2:
        p.error(f"{args.run} is not a run of the cued task on 2x2 arrays")
    model.eval()
    val, _ = load_data(config["dataset"], "val", args.data_root, config["val_size"], None, False)
    probe = detection_probe(val, len(val.classes), 2, "location")
    n = min(args.arrays, len(probe["cell"]))
    arrays, cell = probe["arrays"][:n], probe["cell"][:n]
    target = cell if config.get("cue_on", "class") == "location" else probe["question"][:n]
    k = model.attention.cues.shape[0]
    g = torch.Generator().manual_seed(0)
    other = cued_task.another(target, k, g)
    beta = float(config.get("cue_beta", 1.0))
    print(f"{args.run}: gain at the item's cell / the other cells, last step, {n} arrays")
    for kind in (cued_task.VALID, cued_task.NEUTRAL, cued_task.INVALID):
        cued = other if kind == cued_task.INVALID else target
        source = cued_task.query_source(model.attention.cues, torch.full((n,), kind), cued, g, beta)
        with torch.no_grad():
            trajectory = model.simulate(arrays, config["timesteps"], query=source)
        cells = []
        for area, gain in trajectory.gain.items():
            if gain.dim() == 4:  # (T, B, H, W): a conv area
                at, rest = quadrant_gain(gain[-1], cell)
                cells.append(f"{area} {at:.3f}/{rest:.3f} = {at / rest:.3f}")
        print(f"  {cued_task.CUE_TYPES[kind]:8s} " + ", ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())

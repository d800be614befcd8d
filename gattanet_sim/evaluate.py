"""Accuracy at every timestep, optionally under Gaussian pixel noise.

    python -m gattanet_sim.evaluate RUN_DIR_OR_CHECKPOINT --split val --noise-std 0.1

Prints and writes (default: RUN_DIR/eval-<split>-noise<S>.json) the accuracy per timestep.
Noise is added to the [0, 1] images without clipping, drawn from `--seed`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from gattanet_sim.cli import (
    Parser,
    add_data_arguments,
    main_guard,
    non_negative_float,
    pick_device,
    positive_int,
    run_data,
    run_timesteps,
    set_threads,
)
from gattanet_sim.data import ImageSet, batches
from gattanet_sim.dynamics import GAttANet
from gattanet_sim.io import check_replaceable, package_versions, safe_load, write_json
from gattanet_sim.models import from_config


@torch.no_grad()
def accuracy_per_timestep(
    model: GAttANet,
    data: ImageSet,
    timesteps: int,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    noise_std: float = 0.0,
    seed: int = 0,
    progress: bool = False,
) -> dict:
    """Accuracy and loss of the read-out at each timestep, in eval mode."""
    was_training = model.training
    model.eval()
    g = torch.Generator(device=device).manual_seed(seed)
    correct = torch.zeros(timesteps, dtype=torch.long)
    loss = torch.zeros(timesteps, dtype=torch.float64)
    stream = batches(data, batch_size, device)
    for images, labels in tqdm(stream, total=-(-len(data) // batch_size), disable=not progress or None,
                               desc="evaluating", unit="batch", leave=False):
        if noise_std > 0:
            images = images + noise_std * torch.randn(images.shape, generator=g, device=device)
        logits = model.simulate(images, timesteps).logits  # (T, B, classes)
        correct += (logits.argmax(-1) == labels).sum(1).cpu()
        for t in range(timesteps):
            loss[t] += F.cross_entropy(logits[t], labels, reduction="sum").item()
    model.train(was_training)
    n = len(data)
    return {"accuracy": [c / n for c in correct.tolist()], "loss": [v / n for v in loss.tolist()],
            "images": n, "correct": correct.tolist(), "loss_sum": loss.tolist()}


def load_checkpoint(path: Path, device: torch.device) -> tuple[GAttANet, dict, Path]:
    """A model from a run directory (its best.pt, else last.pt) or a checkpoint file."""
    path = Path(path)
    if path.is_dir():
        candidates = [path / "best.pt", path / "last.pt"]
        path = next((p for p in candidates if p.exists()), None)
        if path is None:
            raise FileNotFoundError(f"no best.pt or last.pt in {candidates[0].parent}")
    if not path.exists():
        raise FileNotFoundError(f"no such checkpoint: {path}")
    ckpt = safe_load(path)
    if not isinstance(ckpt, dict) or "model" not in ckpt or "model_config" not in ckpt:
        raise ValueError(f"{path} is not a gattanet_sim checkpoint")
    model = from_config(ckpt["model_config"])
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as err:
        raise ValueError(f"{path} does not fit its model config: {str(err).splitlines()[0]}") from None
    return model.to(device), ckpt.get("config", {}), path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = Parser(prog="python -m gattanet_sim.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path, help="a run directory or a .pt checkpoint")
    add_data_arguments(p, dataset_default=None)
    p.add_argument("--split", choices=("val", "test", "train"), default="val")
    p.add_argument("--noise-std", type=non_negative_float, default=0.0,
                   help="Gaussian noise sd added to [0, 1] pixels")
    p.add_argument("--timesteps", type=positive_int, default=None, help="default: the run's")
    p.add_argument("--batch-size", type=positive_int, default=256)
    p.add_argument("--limit", type=positive_int, default=None, help="evaluate N images, as many of each class")
    p.add_argument("--seed", type=int, default=0, help="seed of the pixel noise")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, default=None, help="JSON file to write")
    return p.parse_args(argv)


@main_guard
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    set_threads()
    device = pick_device(args.device)
    model, config, path = load_checkpoint(args.checkpoint, device)
    timesteps = run_timesteps(args, config, model)
    data, dataset, _ = run_data(args, config)
    result = accuracy_per_timestep(model, data, timesteps, args.batch_size, device,
                                   args.noise_std, args.seed, progress=True)
    result.update({"checkpoint": str(path), "dataset": dataset, "split": args.split,
                   "noise_std": args.noise_std, "timesteps": timesteps, "seed": args.seed,
                   "training_seed": config.get("seed"), "versions": package_versions()})
    out = args.out or path.parent / f"eval-{args.split}-noise{args.noise_std:g}.json"
    check_replaceable(out, "evaluation")  # --out RUN/best.pt must not destroy the checkpoint
    write_json(result, out)
    accs = " ".join(f"t{t}={a:.4f}" for t, a in enumerate(result["accuracy"]))
    print(f"{dataset}/{args.split} noise={args.noise_std:g}: accuracy {accs}  -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

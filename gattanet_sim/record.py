"""Record a trained model's activity over timesteps as a netCDF assembly.

    python -m gattanet_sim.record RUN_DIR_OR_CHECKPOINT --dataset cifar10 --split val \\
        --timesteps 4 --units 256 --signals activity,gain,agreement --out data/recordings/NAME.nc

Defaults are the default probe: 256 random units per area (seed 0), every signal
(activity, gain, agreement, query, logits), every timestep. `--float16` keeps float16's
precision (11 significant bits, netCDF BitRound quantisation, compressed); the file still
reads as float32 everywhere. Open a recording with `gattanet_sim.recording.open_recording`.

Under `torchrun --nproc_per_node N` every process records a contiguous share of the images
into a file of its own, NAME.rank<r>-of-<N>.nc (with pixel and unit noise seeded by
`--seed` + rank); `open_recording(NAME.nc)` opens the N parts as one assembly, in the
images' order.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from gattanet_sim import distributed
from gattanet_sim.cli import (
    Parser,
    UsageError,
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
from gattanet_sim.evaluate import load_checkpoint
from gattanet_sim.io import check_replaceable, sha256
from gattanet_sim.recording import (
    SIGNALS,
    Presentations,
    Probe,
    RecordingWriter,
    part_path,
    place,
    record,
    recording_attrs,
    time_bin_ms,
    time_mapping,
)


def parse_args(argv: list[str] | None):
    p = Parser(prog="python -m gattanet_sim.record", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path, help="a run directory or a .pt checkpoint")
    add_data_arguments(p, dataset_default=None)
    p.add_argument("--split", choices=("train", "val", "test"), default="val")
    p.add_argument("--timesteps", type=positive_int, default=None, help="default: the run's")
    p.add_argument("--units", default="256",
                   help="all | N random per area | channels:I,J | location:X,Y | channel-mean")
    p.add_argument("--regions", default=None, help="comma-separated areas (default: all)")
    p.add_argument("--signals", default=",".join(SIGNALS), help=f"subset of {','.join(SIGNALS)}")
    p.add_argument("--time-bins", default=None, help="comma-separated timesteps (default: all)")
    p.add_argument("--probe-seed", type=int, default=0, help="seed of the random-unit probe")
    p.add_argument("--noise-std", type=non_negative_float, default=0.0, help="pixel noise sd")
    p.add_argument("--seed", type=int, default=0, help="seed of pixel and unit noise")
    p.add_argument("--limit", type=positive_int, default=None, help="record N images, as many of each class")
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--float16", action="store_true", help="store with float16 precision")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, required=True, help="the .nc file to write")
    p.add_argument("--force", action="store_true",
                   help="replace --out even if it holds something else")
    return p.parse_args(argv)


def presentations(data: ImageSet, dataset: str, split: str, batch_size: int, device,
                  noise_std: float, seed: int, positions: torch.Tensor | None = None):
    """Batches of images with their presentation coordinates; `positions`: each image's index
    in the whole split (its stimulus id), default 0, 1, ..."""
    g = torch.Generator(device=device).manual_seed(seed)
    positions = torch.arange(len(data)) if positions is None else positions
    start = 0
    for images, labels in batches(data, batch_size, device):
        if noise_std > 0:
            images = images + noise_std * torch.randn(images.shape, generator=g, device=device)
        n = len(labels)
        yield Presentations(images, {
            "stimulus_id": [f"{dataset}/{split}/{i}" for i in positions[start:start + n].tolist()],
            "label": labels.cpu().numpy(), "split": [split] * n, "noise_std": np.full(n, noise_std)})
        start += n


@main_guard
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    set_threads()
    if args.out.is_dir():
        raise UsageError(f"--out {args.out} is a directory; give a .nc file name")
    check_replaceable(args.out, "recording", args.force)
    probe = Probe.parse(args.units, args.signals, args.regions, args.time_bins, args.probe_seed)
    device = pick_device(args.device)
    context = distributed.from_environment()
    if context.distributed and device.type == "cuda":
        device = torch.device(f"cuda:{context.local_rank}")
    model, config, path = load_checkpoint(args.checkpoint, device)
    timesteps = run_timesteps(args, config, model)
    steps = probe.timesteps or list(range(timesteps))
    if steps[-1] >= timesteps or steps[0] < 0:
        raise UsageError(f"--time-bins must lie in 0..{timesteps - 1}")
    data, dataset, positions = run_data(args, config)
    out = args.out
    if context.distributed:  # one contiguous share per process, one file each (see module doc)
        first, stop = (len(data) * context.rank // context.world,
                       len(data) * (context.rank + 1) // context.world)
        data, positions = data.subset(torch.arange(first, stop)), positions[first:stop]
        out = part_path(args.out, context.rank, context.world)
    image_size = data.image_size
    placement = place(probe, model, image_size)
    neuroids = placement.coords(model.backbone.receptive_fields(), image_size)
    mapping = time_mapping(model.mode, list(model.areas))
    attrs = recording_attrs(model, checkpoint=str(path), checkpoint_sha256=sha256(path),
                            time_mapping=json.dumps(mapping), identifier=args.out.stem,
                            stimulus_set_identifier=f"{dataset}.{args.split}",
                            seed=args.seed, probe_seed=args.probe_seed, units=str(probe.units),
                            dataset=dataset, split=args.split, timesteps=timesteps,
                            noise_std=args.noise_std, float16=int(args.float16),
                            **({"rank": context.rank, "world": context.world} if context.distributed else {}))
    torch.manual_seed(args.seed + context.rank)
    key_dim = model.attention.key_dim if model.attention is not None else 0
    stream = presentations(data, dataset, args.split, args.batch_size, device, args.noise_std,
                           args.seed + context.rank, positions)
    stream = tqdm(stream, total=-(-len(data) // args.batch_size), desc="recording", unit="batch",
                  disable=not context.main or None)  # None: only on a terminal
    with RecordingWriter(out, neuroids, steps, probe.signals, key_dim, data.classes,
                         ["stimulus_id", "label", "split", "noise_std"], attrs, args.float16,
                         time_bin_ms(mapping, neuroids["region"], steps), force=args.force) as writer:
        n = record(model, stream, writer, placement, timesteps, steps)
    print(f"recorded {n} presentations x {placement.size} neuroids x {len(steps)} time bins "
          f"({', '.join(probe.signals)}) -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What recording costs: time relative to plain evaluation, and peak memory of a big recording.

    python benchmarks/recording_cost.py [--batches 20] [--images 10000] [--skip-memory]

1. Time. On the same batches, interleaved batch by batch: evaluation with recording (the
   default probe: 256 random units per area, every signal, every timestep, written to disk)
   divided by evaluation without it (the model's forward pass and the accuracy). Target: at
   most 1.25.
2. Memory. Peak resident memory of a process recording N images with every unit of every
   area at T=4 (all signals), for N = images/5 and N = images: streaming means it does not
   grow with N. Target: at most 2 GB. The file is deleted afterwards.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import torch

from gattanet_sim import build_model
from gattanet_sim.recording import Probe, RecordingWriter, place, trajectory_signals

T = 4


def writer_for(model, probe, path, image_size=32):
    placement = place(probe, model, image_size)
    coords = placement.coords(model.backbone.receptive_fields(), image_size)
    writer = RecordingWriter(path, coords, list(range(T)), probe.signals, model.attention.key_dim,
                             [str(i) for i in range(10)], ["stimulus_id", "label", "split"], {})
    return placement, writer


def time_ratio(batches: int, batch_size: int) -> None:
    torch.manual_seed(0)
    model = build_model("toy", num_classes=10, alpha_init=0.1).eval()
    probe = Probe()
    with tempfile.TemporaryDirectory() as tmp:
        placement, writer = writer_for(model, probe, Path(tmp) / "rec.nc")
        plain, recorded = [], []
        with torch.no_grad(), writer:
            for i in range(batches + 2):
                images = torch.rand(batch_size, 3, 32, 32)
                labels = torch.randint(0, 10, (batch_size,))
                start = time.perf_counter()
                (model(images, timesteps=T).argmax(1) == labels).float().mean().item()
                t_plain = time.perf_counter() - start
                start = time.perf_counter()
                traj = model.simulate(images, T, activity=True)
                (traj.logits[-1].argmax(1) == labels).float().mean().item()
                writer.append(trajectory_signals(traj, placement, probe.signals, list(range(T))),
                              [f"s{i}.{j}" for j in range(batch_size)], labels.numpy(),
                              ["bench"] * batch_size)
                t_rec = time.perf_counter() - start
                if i >= 2:  # warm-up
                    plain.append(t_plain)
                    recorded.append(t_rec)
        ratio = statistics.median(recorded) / statistics.median(plain)
        print(f"time: {batches} batches of {batch_size}, T={T}, default probe "
              f"({placement.size} neuroids, {', '.join(probe.signals)})")
        print(f"  evaluation {statistics.median(plain) * 1000:.0f} ms/batch, with recording "
              f"{statistics.median(recorded) * 1000:.0f} ms/batch: ratio {ratio:.3f} "
              f"(target <= 1.25: {'met' if ratio <= 1.25 else 'NOT met'})")


MEMORY_SCRIPT = textwrap.dedent("""
    import resource, sys, torch
    sys.path.insert(0, {root!r})
    from benchmarks.recording_cost import writer_for, T
    from gattanet_sim import build_model
    from gattanet_sim.recording import Probe, trajectory_signals
    torch.manual_seed(0)
    model = build_model("toy", num_classes=10, alpha_init=0.1).eval()
    probe = Probe(units="all")
    placement, writer = writer_for(model, probe, {path!r})
    n, b = {images}, 100
    with torch.no_grad(), writer:
        for i in range(0, n, b):
            images = torch.rand(b, 3, 32, 32)
            traj = model.simulate(images, T, activity=True)
            writer.append(trajectory_signals(traj, placement, probe.signals, list(range(T))),
                          [str(i + j) for j in range(b)], torch.zeros(b, dtype=torch.long).numpy(),
                          ["bench"] * b)
    print(placement.size, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
""")


def peak_memory(images: int) -> tuple[int, float, float]:
    """(neuroids, peak RSS in GB, file size in GB) of a child process recording `images`."""
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "big.nc")
        script = MEMORY_SCRIPT.format(root=str(Path(__file__).resolve().parents[1]), path=path,
                                      images=images)
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
        neuroids, rss_kb = (int(v) for v in out.stdout.split())
        size = Path(path).stat().st_size / 1e9
    return neuroids, rss_kb / 1e6, size


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--images", type=int, default=10_000)
    p.add_argument("--skip-memory", action="store_true")
    args = p.parse_args()
    time_ratio(args.batches, args.batch_size)
    if args.skip_memory:
        return
    for n in (args.images // 5, args.images):
        start = time.perf_counter()
        neuroids, rss, size = peak_memory(n)
        print(f"memory: {n} images x {neuroids} neuroids x {T} time bins, all signals: peak RSS "
              f"{rss:.2f} GB (target <= 2: {'met' if rss <= 2 else 'NOT met'}), file {size:.1f} GB, "
              f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()

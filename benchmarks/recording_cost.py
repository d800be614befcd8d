"""What recording costs: time relative to plain evaluation, and peak memory of a big recording.

    python benchmarks/recording_cost.py [--batches 20] [--images 10000] [--skip-memory]

1. Time. On the same batches, interleaved batch by batch: evaluation with recording (the
   default probe: 256 random units per area, every signal, every timestep, written to disk)
   divided by evaluation without it (the model's forward pass and the accuracy). Target: at
   most 1.25.
2. Experiment. The same number of presentations recorded two ways, whole runs interleaved
   three times: an experiment (`gattanet_sim.experiment.run_experiment`: gratings under
   bottom-up and two template conditions, each presentation with its metadata, condition and
   template coordinates) divided by a plain recording (`recording.record`, bottom-up) of the
   same images as many times. Target: at most 1.10, the same cost within this machine's noise
   (the experiment adds only string coordinates and a template per batch).
3. Memory. Peak resident memory of a process recording N images with every unit of every
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
                              {"stimulus_id": [f"s{i}.{j}" for j in range(batch_size)],
                               "label": labels.numpy(), "split": ["bench"] * batch_size})
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
                          {{"stimulus_id": [str(i + j) for j in range(b)], "label": [0] * b,
                           "split": ["bench"] * b}})
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


def experiment_ratio(batches: int, batch_size: int) -> None:
    import numpy as np

    from gattanet_sim.experiment import coordinate_kinds, plan, run_experiment
    from gattanet_sim.recording import Presentations, record
    from gattanet_sim.stimuli import gratings
    from gattanet_sim.templates import from_model

    torch.manual_seed(0)
    model = build_model("toy", num_classes=10, alpha_init=0.1).eval()
    probe = Probe()
    n = batches * batch_size // 3  # images; three passes make batches * batch_size presentations
    phases = tuple(np.linspace(0, 360, -(-n // 8), endpoint=False))
    stimuli = gratings(orientations=(0, 45, 90, 135), contrasts=(0.5, 1.0), phases=phases)
    stimuli = type(stimuli)(stimuli.images[:n], stimuli.meta.iloc[:n].reset_index(drop=True),
                            stimuli.identifier, stimuli.parameters)
    groups = [f"{v:g}" for v in stimuli.meta.orientation]
    templates = from_model(model, stimuli.images, groups)
    variants = plan(["bottom-up", "template"], groups, templates, ["0", "90"], 1.0, 0)
    images = stimuli.images.repeat(3, 1, 1, 1)  # (3n, 3, H, W): the same images, recorded plainly
    times = {"experiment": [], "recording": []}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(3):
            placement = place(probe, model, 32)
            coords = placement.coords(model.backbone.receptive_fields(), 32)
            start = time.perf_counter()
            with RecordingWriter(Path(tmp) / f"e{repeat}.nc", coords, list(range(T)), probe.signals,
                                 16, [str(i) for i in range(10)], coordinate_kinds(stimuli.meta), {}) as w:
                run_experiment(model, stimuli, variants, w, placement, T, list(range(T)),
                               batch_size=batch_size, progress=False)
            times["experiment"].append(time.perf_counter() - start)
            start = time.perf_counter()
            stream = (Presentations(images[i:i + batch_size], {
                "stimulus_id": [str(j) for j in range(i, min(i + batch_size, len(images)))],
                "label": np.zeros(len(images[i:i + batch_size]), int),
                "split": ["bench"] * len(images[i:i + batch_size])})
                for i in range(0, len(images), batch_size))
            placement, writer = writer_for(model, probe, Path(tmp) / f"r{repeat}.nc")
            with writer:
                record(model, stream, writer, placement, T, list(range(T)))
            times["recording"].append(time.perf_counter() - start)
    ratio = statistics.median(times["experiment"]) / statistics.median(times["recording"])
    print(f"experiment: {3 * n} presentations (gratings x bottom-up, attend 0, attend 90), T={T}, "
          f"default probe: {statistics.median(times['experiment']):.1f} s against "
          f"{statistics.median(times['recording']):.1f} s for a plain recording of as many images: "
          f"ratio {ratio:.3f} (target <= 1.10, the same cost within this machine's noise: "
          f"{'met' if ratio <= 1.10 else 'NOT met'})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--images", type=int, default=10_000)
    p.add_argument("--skip-memory", action="store_true")
    args = p.parse_args()
    time_ratio(args.batches, args.batch_size)
    experiment_ratio(args.batches, args.batch_size)
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

"""Train a grid of toy runs side by side on one GPU (one process per run), then evaluate them.

    python benchmarks/gpu_grid.py --data-root DIR --runs baseline:0,1,2 positive-gain:0,1,2 \\
        cascade-T6:0 [--parallel 16] [--deadline 480] [--out DIR]

The configurations are those of `benchmarks/reproduce_toy_cifar10.py` (the same train
arguments), trained into runs/gpu/<config>-s<seed>. Runs on a GPU are their own protocol: the
same command on the CPU rounds differently and ends like another seed, so these rows never go
into the CPU ledger. The decoded dataset is cached once before the runs start. Every run is
evaluated on the validation split, clean and under pixel noise sd 0.1, at every timestep. One
JSON line per run goes to OUT/gpu_grid.jsonl as soon as it finishes; at the end OUT/gpu_runs.tar.gz
holds every run's config, summary and metrics (and best.pt with `--checkpoints`). Runs still going at `--deadline`
seconds are stopped (SIGTERM: they keep their last checkpoint) and recorded as unfinished.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.reproduce_toy_cifar10 import CONFIGS, RECIPE  # noqa: E402
from gattanet_sim.data import load_split  # noqa: E402
from gattanet_sim.evaluate import accuracy_per_timestep, load_checkpoint  # noqa: E402

RUNS = ROOT / "runs" / "gpu"
# ResNet-18 (CIFAR stem) on the same data and protocol: the plain backbone against the recipe at
# T = 2 (the train arguments after RECIPE's override its --model; --widths does not apply).
CONFIGS = {**CONFIGS,
           "resnet18-baseline": ["--model", "resnet18", "--no-attention", "--timesteps", "1"],
           "resnet18-recipe": ["--model", "resnet18", "--timesteps", "2", "--norm-steps", "2",
                               "--normalization", "none", "--gain-form", "positive"]}


def parse_runs(items: list[str]) -> list[tuple[str, int]]:
    runs = []
    for item in items:
        config, _, seeds = item.partition(":")
        if config not in CONFIGS:
            raise SystemExit(f"gpu_grid.py: error: unknown configuration {config!r}")
        runs += [(config, int(s)) for s in (seeds or "0").split(",")]
    return runs


def command(config: str, seed: int, args) -> list[str]:
    return [sys.executable, "-m", "gattanet_sim.train", *RECIPE, "--data-root", args.data_root,
            "--epochs", str(args.epochs), "--seed", str(seed), "--out-dir",
            str(RUNS / f"{config}-s{seed}"), *CONFIGS[config], *args.extra]


def evaluate(run_dir: Path, args, device: torch.device) -> dict:
    model, config, _ = load_checkpoint(run_dir, device)
    val = load_split("cifar10", "val", args.data_root, 5000)
    if args.extra and "--train-limit" in args.extra:  # the CPU dry run: a few images
        val = val.subset(torch.arange(256))
    out = {}
    for sigma in (0.0, 0.1):
        out[f"val_noise_{sigma:g}"] = accuracy_per_timestep(model, val, config["timesteps"], 500, device,
                                                            sigma, seed=0)["accuracy"]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", required=True)
    p.add_argument("--runs", nargs="+", required=True, help="CONFIG:SEED,SEED ...")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--parallel", type=int, default=16)
    p.add_argument("--deadline", type=float, default=480, help="seconds before unfinished runs stop")
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "results/gpu")))
    p.add_argument("--checkpoints", action="store_true",
                   help="put every run's best.pt into the archive too (large for ResNets)")
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more train arguments")
    args = p.parse_args()
    runs = parse_runs(args.runs)
    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    start = time.time()
    for split in ("train", "val"):  # decode once, so the runs share the cache
        load_split("cifar10", split, args.data_root, 5000)
    print(f"{len(runs)} runs on {name}; data ready after {time.time() - start:.0f} s", flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    pending, active, log = list(runs), {}, args.out / "gpu_grid.jsonl"
    while pending or active:
        while pending and len(active) < args.parallel:
            config, seed = pending.pop(0)
            RUNS.mkdir(parents=True, exist_ok=True)
            err = open(RUNS / f"{config}-s{seed}.log", "w")
            active[(config, seed)] = (subprocess.Popen(command(config, seed, args), cwd=ROOT, env=env,
                                                       stdout=err, stderr=subprocess.STDOUT), time.time())
        for key, (proc, began) in list(active.items()):
            late = time.time() - start > args.deadline
            if proc.poll() is None and not late:
                continue
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait()
            del active[key]
            run_dir = RUNS / f"{key[0]}-s{key[1]}"
            row = {"config": key[0], "seed": key[1], "epochs": args.epochs, "device": name,
                   "train_args": CONFIGS[key[0]], "seconds": round(time.time() - began, 1)}
            if (run_dir / "summary.json").exists():
                summary = json.loads((run_dir / "summary.json").read_text())
                row.update(val_accuracy=summary["val_accuracy"], best_epoch=summary["best_epoch"],
                           seconds_per_epoch=summary["seconds_per_epoch"], git_commit=summary["git_commit"])
                row.update(evaluate(run_dir, args, device))
            else:
                tail = (RUNS / f"{key[0]}-s{key[1]}.log").read_text().strip().splitlines()[-1:]
                row["failed"] = tail[0][-300:] if tail else f"exit {proc.returncode}"
            with open(log, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
        time.sleep(2)
    with tarfile.open(args.out / "gpu_runs.tar.gz", "w:gz") as tar:
        for run_dir in sorted(RUNS.iterdir()):
            for file in ("best.pt",) * args.checkpoints + ("config.json", "summary.json", "metrics.jsonl"):
                if (run_dir / file).exists():
                    tar.add(run_dir / file, arcname=f"{run_dir.name}/{file}")
    print(f"done in {time.time() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()

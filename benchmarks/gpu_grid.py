"""Train a grid of toy runs side by side on one GPU (one process per run), then evaluate them.

    python benchmarks/gpu_grid.py --data-root DIR --runs baseline:0,1,2 positive-gain:0,1,2 \\
        cascade-T6:0 [--parallel 16] [--deadline 480] [--out DIR]
    python benchmarks/gpu_grid.py --table results/toy_cifar10_gpu.md

The configurations are those of `benchmarks/reproduce_toy_cifar10.py` (the same train
arguments), trained into runs/gpu/<config>-s<seed>. Runs on a GPU are their own protocol: the
same command on the CPU rounds differently and ends like another seed, so these rows never go
into the CPU ledger. The decoded dataset is cached once before the runs start. Every run is
evaluated on the validation split, clean and under pixel noise sd 0.1, at every timestep. One
JSON line per run goes to OUT/gpu_grid.jsonl as soon as it finishes; at the end OUT/gpu_runs.tar.gz
holds every run's config, summary and metrics (and best.pt with `--checkpoints`). Runs still going at `--deadline`
seconds are stopped (SIGTERM: they keep their last checkpoint) and recorded as unfinished.
Rows copied into results/toy_cifar10_gpu_runs.jsonl make the table `--table` writes: runs
paired by seed with the baseline and the T = 2 recipe of the same GPU model, clean and noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.reproduce_toy_cifar10 import (  # noqa: E402
    CONFIGS,
    RECIPE,
    T2_RECIPE,
    baseline_of,
    change_cell,
    diff_cell,
    paired,
    smallest_change,
)
from gattanet_sim.data import load_split  # noqa: E402
from gattanet_sim.evaluate import accuracy_per_timestep, load_checkpoint  # noqa: E402
from gattanet_sim.io import atomic_path  # noqa: E402

RUNS = ROOT / "runs" / "gpu"
# ResNet-18 (CIFAR stem) on the same data and protocol: the plain backbone against the recipe at
# T = 2 (the train arguments after RECIPE's override its --model; --widths does not apply).
CONFIGS = {**CONFIGS,
           "resnet18-baseline": ["--model", "resnet18", "--no-attention", "--timesteps", "1"],
           "resnet18-recipe": ["--model", "resnet18", "--timesteps", "2", "--norm-steps", "2",
                               "--normalization", "none", "--gain-form", "positive"]}


LEDGER = ROOT / "results" / "toy_cifar10_gpu_runs.jsonl"
NOISE_KEY = "val_noise_0.1"


def gpu_table(rows: list[dict]) -> list[str]:
    """One table per GPU model (float sums round differently on each, so runs pair only on
    the same one): accuracy per timestep (mean over seeds), its smallest step-to-step change,
    the last step's accuracy paired with the same seeds' baseline and T = 2 recipe, and the
    same under pixel noise sd 0.1. Unfinished runs (no accuracy) are left out."""
    lines: list[str] = []
    done = [r for r in rows if r.get("val_accuracy") and NOISE_KEY in r]
    for device in sorted({r["device"] for r in done}):
        on = [r for r in done if r["device"] == device]
        runs: dict = {}
        for r in on:
            runs.setdefault((r["config"], r["epochs"]), {})[r["seed"]] = r
        final = {key: {s: r["val_accuracy"][-1] for s, r in by.items()} for key, by in runs.items()}
        noisy = {key: {s: r[NOISE_KEY][-1] for s, r in by.items()} for key, by in runs.items()}
        lines += ["", f"**{device}**", "",
                  "| configuration | epochs | seeds | val accuracy per timestep (mean, %) | smallest change "
                  "between steps | vs baseline [95% CI] | vs T = 2 recipe [95% CI] | pixel noise sd 0.1, "
                  "last step (mean, %) | under noise vs baseline [95% CI] |", "| --- |" + " --- |" * 8]
        for (config, epochs), by in sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][0] != "baseline",
                                                                          kv[0][0])):
            accs = [r["val_accuracy"] for r in by.values()]
            if len({len(a) for a in accs}) > 1:
                continue  # seeds at different T: not one configuration
            mean = [statistics.mean(a[t] for a in accs) for t in range(len(accs[0]))]
            base = baseline_of(config)
            pairs = [paired(final[(config, epochs)], final.get((base, epochs), {})),
                     paired(final[(config, epochs)], final.get((T2_RECIPE, epochs), {})),
                     paired(noisy[(config, epochs)], noisy.get((base, epochs), {}))]
            cells = ["—" if config in (base, other) else diff_cell(d, other)
                     for d, other in zip(pairs, (base, T2_RECIPE, base))]
            lines.append(f"| {config} | {epochs} | {len(by)} | {' / '.join(f'{100 * m:.2f}' for m in mean)} | "
                         f"{change_cell(smallest_change(config, mean))} | {cells[0]} | {cells[1]} | "
                         f"{100 * statistics.mean(noisy[(config, epochs)].values()):.2f} | {cells[2]} |")
    return lines


def write_table(rows: list[dict], path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(gpu_table(rows)).lstrip("\n") + "\n")


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
    if args.extra and "--train-limit" in args.extra:  # the CPU dry run: a few images of every class
        val = val.subset(torch.randperm(len(val), generator=torch.Generator().manual_seed(0))[:256])
    out = {}
    for sigma in (0.0, 0.1):
        out[f"val_noise_{sigma:g}"] = accuracy_per_timestep(model, val, config["timesteps"], 500, device,
                                                            sigma, seed=0)["accuracy"]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root")
    p.add_argument("--runs", nargs="+", help="CONFIG:SEED,SEED ...")
    p.add_argument("--table", type=Path, metavar="MD",
                   help=f"write the table of the runs in {LEDGER.relative_to(ROOT)} to MD and stop")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--parallel", type=int, default=16)
    p.add_argument("--deadline", type=float, default=480, help="seconds before unfinished runs stop")
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "results/gpu")))
    p.add_argument("--checkpoints", action="store_true",
                   help="put every run's best.pt into the archive too (large for ResNets)")
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more train arguments")
    args = p.parse_args()
    if args.table:
        write_table([json.loads(line) for line in LEDGER.read_text().splitlines()], args.table)
        print(args.table.read_text())
        return
    if not args.runs or not args.data_root:
        p.error("--runs and --data-root are required (or --table)")
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

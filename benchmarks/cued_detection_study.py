"""The cued detection study: cue-trained toy models over seeds, their d' per cue type, controls.

    python benchmarks/cued_detection_study.py --data-root ../shared/datasets \\
        [--variants cue,neutral-only] [--seeds 0,1,2] [--epochs 3] [--table-only]

For every variant and seed it fine-tunes the recipe's T = 2 run of that seed
(runs/toy_cifar10/positive-gain-s<seed>, trained by benchmarks/reproduce_toy_cifar10.py
--configs positive-gain; trained here first if missing) on the cued task into
runs/toy_cifar10/cued/<variant>-s<seed>, records the cued_detection paradigm on the validation
split (5,000 arrays, one around every validation image, and 500 grey images, each under every
cue type, seed 0) into data/recordings/cued/<variant>-s<seed>.nc, and analyses it with
`analysis.detection`. The recipe
run itself is recorded the same way with its class templates, raw and centred (`recipe`,
`recipe-centred`): the network that was never trained with a cue. Everything already done is
reused (an interrupted run resumes).

Writes results/cued_detection.md and results/cued_detection_seeds.csv: per variant and time
bin, the valid - neutral and neutral - invalid d' differences and the controls (shuffled and
negated cues minus neutral; false alarms on grey images), each as the mean over seeds with a 95%
t interval; per seed, the bootstrap CI over displays; hits and false alarms beside every d';
and the cue-trained model's plain classification accuracy paired with its recipe run.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from gattanet_sim.analysis.detection import detection_table, seed_summary
from gattanet_sim.cli import Parser, name_list, positive_int
from gattanet_sim.io import atomic_path
from gattanet_sim.recording import open_recording

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs" / "toy_cifar10"
RECORDINGS = ROOT / "data" / "recordings" / "cued"
RESULTS = ROOT / "results"
RECIPE_RUN = ["--model", "toy", "--dataset", "cifar10", "--widths", "32,64,128", "--val-size", "5000",
              "--quiet", "--epochs", "10", "--timesteps", "2", "--norm-steps", "2", "--normalization",
              "none", "--gain-form", "positive"]  # the ledger's positive-gain configuration
FINE_TUNE = ["--task", "cued-detection", "--lr", "0.02", "--alpha-lr", "0.5", "--quiet"]
# name -> (extra train arguments, timesteps). Each spells out what it fixes.
VARIANTS = {
    "cue": (["--gain-map", "both", "--cue-validity", "0.8", "--cue-neutral", "0.2"], 2),
    "cue-position": (["--gain-map", "position", "--cue-validity", "0.8", "--cue-neutral", "0.2"], 2),
    "neutral-only": (["--gain-map", "both", "--cue-neutral", "1"], 2),
    "cue-T4": (["--gain-map", "both", "--cue-validity", "0.8", "--cue-neutral", "0.2", "--timesteps", "4",
                "--norm-steps", "2", "--gain-tau", "1", "--no-random-timesteps"], 4),
}
CONDITIONS = "valid,neutral,invalid,shuffled,negated,bottom-up"
CONTRASTS = {"valid - neutral": ("valid", 1), "neutral - invalid": ("invalid", -1),
             "shuffled - neutral": ("shuffled", 1), "negated - neutral": ("negated", 1)}


def seeds(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated seeds, got {text!r}") from None
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"seeds are >= 0, got {text}")
    return values


def sh(cmd: list[str], threads: int) -> None:
    print("$", shlex.join(cmd).replace(str(ROOT) + "/", ""), flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if subprocess.run(cmd, cwd=ROOT, env=env).returncode != 0:
        raise SystemExit(f"failed: {shlex.join(cmd)}")


def recipe_run(seed: int, data_root: str, threads: int) -> Path:
    out = RUNS / f"positive-gain-s{seed}"
    if not (out / "summary.json").exists():
        resume = ["--resume"] if (out / "last.pt").exists() else []
        sh([sys.executable, "-m", "gattanet_sim.train", *RECIPE_RUN, "--data-root", data_root,
            "--seed", str(seed), "--out-dir", str(out), *resume], threads)
    return out


def cue_run(variant: str, seed: int, epochs: int, data_root: str, threads: int) -> Path:
    out = RUNS / "cued" / f"{variant}-s{seed}"
    if not (out / "summary.json").exists():
        init = recipe_run(seed, data_root, threads)
        resume = ["--resume"] if (out / "last.pt").exists() else []
        extra, _ = VARIANTS[variant]
        sh([sys.executable, "-m", "gattanet_sim.train", *RECIPE_RUN, *FINE_TUNE, *extra, "--epochs", str(epochs),
            "--data-root", data_root, "--seed", str(seed), "--init", str(init), "--out-dir", str(out),
            *resume], threads)
    return out


def recording(name: str, run: Path, data_root: str, threads: int, timesteps: int,
              centring: float | None = None) -> Path:
    out = RECORDINGS / f"{name}.nc"
    if not out.exists():
        extra = [] if centring is None else ["--template-centring", str(centring)]
        sh([sys.executable, "-m", "gattanet_sim.experiment", str(run), "--paradigm", "cued_detection",
            "--dataset", "cifar10", "--data-root", data_root, "--split", "val", "--n", "5000", "--grey", "500",
            "--conditions", CONDITIONS, "--signals", "logits", "--units", "1", "--timesteps", str(timesteps),
            "--seed", "0", *extra, "--out", str(out)], threads)
    return out


def t_interval(values: list[float]) -> tuple[float, float, float]:
    v = np.asarray(values, float)
    if len(v) < 2:
        return float(v.mean()), float("nan"), float("nan")
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return float(v.mean()), float(v.mean() - half), float(v.mean() + half)


def summarise(tables: dict[str, dict[int, pd.DataFrame]], accuracy: dict[str, dict[int, float]],
              recipe_accuracy: dict[int, float]) -> tuple[pd.DataFrame, str]:
    """One row per variant x time bin x measure (over seeds), and the markdown report."""
    rows = []
    for variant, by_seed in tables.items():
        for label, (cue, sign) in CONTRASTS.items():
            for column in ("d_prime_minus_neutral", "criterion_minus_neutral"):
                s = seed_summary(by_seed, column)
                s = s[(s.display == "array") & (s.cue_type == cue)]
                for _, r in s.iterrows():
                    per_seed = [sign * t.loc[(t.display == "array") & (t.cue_type == cue) & (t.time_bin == r.time_bin),
                                             column].item() for t in by_seed.values()]
                    mean, low, high = t_interval(per_seed)
                    rows.append({"variant": variant, "time_bin": r.time_bin, "measure": f"{column.split('_minus')[0]}: {label}",
                                 "mean": mean, "ci_low": low, "ci_high": high, "seeds": len(per_seed),
                                 "per_seed": ", ".join(f"{x:+.3f}" for x in per_seed)})
        for cue in ("valid", "neutral", "invalid", "shuffled", "negated", "bottom-up"):
            for measure in ("d_prime", "hit_rate", "fa_rate"):
                for display in ("array", "grey"):
                    if display == "grey" and measure != "fa_rate":
                        continue
                    parts = [t[(t.display == display) & (t.cue_type == cue)] for t in by_seed.values()]
                    if any(p.empty for p in parts):
                        continue
                    for time_bin in parts[0].time_bin:
                        values = [p.loc[p.time_bin == time_bin, measure].item() for p in parts]
                        mean, low, high = t_interval(values)
                        rows.append({"variant": variant, "time_bin": int(time_bin), "measure": f"{measure} {cue} ({display})",
                                     "mean": mean, "ci_low": low, "ci_high": high, "seeds": len(values),
                                     "per_seed": ", ".join(f"{x:.3f}" for x in values)})
        if variant in accuracy:
            seeds = sorted(set(accuracy[variant]) & set(recipe_accuracy))
            diffs = [100 * (accuracy[variant][s] - recipe_accuracy[s]) for s in seeds]
            if diffs:
                mean, low, high = t_interval(diffs)
                rows.append({"variant": variant, "time_bin": -1, "measure": "classification accuracy minus the recipe run's (points)",
                             "mean": mean, "ci_low": low, "ci_high": high, "seeds": len(diffs),
                             "per_seed": ", ".join(f"{x:+.2f}" for x in diffs)})
    table = pd.DataFrame(rows, columns=["variant", "time_bin", "measure", "mean", "ci_low", "ci_high",
                                        "seeds", "per_seed"])
    lines = ["# Cued detection: d' per cue type, cue-trained models and controls", "",
             "Generated by `python benchmarks/cued_detection_study.py` (see its docstring for the protocol); "
             "validation split, 5,000 search arrays (half target-present) and 500 grey images, each under every "
             "cue type; 95% t intervals over seeds; `per_seed` lists every seed's value.", ""]
    for variant, part in table.groupby("variant", sort=False):
        lines += [f"## {variant}", "", "| time bin | measure | mean | 95% CI | seeds | per seed |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for _, r in part.iterrows():
            ci = "" if np.isnan(r.ci_low) else f"[{r.ci_low:+.3f}, {r.ci_high:+.3f}]"
            when = "" if r.time_bin < 0 else str(r.time_bin)
            lines.append(f"| {when} | {r.measure} | {r['mean']:+.3f} | {ci} | {r.seeds} | {r.per_seed} |")
        lines.append("")
    return table, "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="python benchmarks/cued_detection_study.py", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default="../shared/datasets")
    p.add_argument("--variants", type=name_list, default=["cue", "neutral-only"])
    p.add_argument("--seeds", type=seeds, default=(0, 1, 2))
    p.add_argument("--epochs", type=positive_int, default=3)
    p.add_argument("--threads", type=positive_int, default=1)
    p.add_argument("--recipe", action=argparse.BooleanOptionalAction, default=True,
                   help="also record the recipe runs with class templates (raw and centred)")
    p.add_argument("--table-only", action="store_true", help="only summarise what exists")
    args = p.parse_args(argv)
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        p.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    tables: dict[str, dict[int, pd.DataFrame]] = {}
    accuracy: dict[str, dict[int, float]] = {}
    recipe_accuracy: dict[int, float] = {}
    jobs = [(v, s) for v in args.variants for s in args.seeds]
    if args.recipe:
        jobs = [("recipe", s) for s in args.seeds] + [("recipe-centred", s) for s in args.seeds] + jobs
    for variant, seed in jobs:
        name = f"{variant}-s{seed}"
        if variant.startswith("recipe"):
            run, timesteps = RUNS / f"positive-gain-s{seed}", 2
            if not args.table_only:
                recipe_run(seed, args.data_root, args.threads)
        else:
            run, timesteps = RUNS / "cued" / name, VARIANTS[variant][1]
            if not args.table_only:
                cue_run(variant, seed, args.epochs, args.data_root, args.threads)
        if (run / "summary.json").exists():
            acc = json.loads((run / "summary.json").read_text())["val_accuracy"][-1]
            (recipe_accuracy if variant == "recipe" else accuracy.setdefault(variant, {}))[seed] = acc
        path = RECORDINGS / f"{name}.nc"
        if not args.table_only:
            path = recording(name, run, args.data_root, args.threads, timesteps,
                             1.0 if variant != "recipe-centred" else 5.0)
        if path.exists():
            tables.setdefault(variant, {})[seed] = detection_table(open_recording(path))
    table, report = summarise(tables, accuracy, recipe_accuracy)
    with atomic_path(RESULTS / "cued_detection_seeds.csv") as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(RESULTS / "cued_detection.md") as tmp:
        tmp.write_text(report + "\n")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

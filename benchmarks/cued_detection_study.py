"""The cued detection study: cue-trained toy models over seeds, their d' per cue type, controls.

    python benchmarks/cued_detection_study.py --data-root ../shared/datasets \
        [--variants cue,neutral-only] [--seeds 0,1,2] [--epochs 3] [--jobs 1] [--table-only]
    python benchmarks/cued_detection_study.py --variants cue,neutral-only,cue-T4-recipe,\
        neutral-only-T4-recipe --seeds 0,1,2,3,4 --jobs 5     # on a GPU: seeds side by side
    python benchmarks/cued_detection_study.py --variants cue-frozen-T4-recipe,\
        neutral-only-frozen-T4-recipe --seeds 0,1,2,3 --no-recipe  # T = 4, visual system fixed

The report keeps every variant it held before: a variant summarised here replaces its earlier
rows only when it has at least as many seeds (results/README.md gives the commands).
`--compare A,B` also prints A minus B per d' contrast, paired by seed (from both
variants' recordings of the seeds named); `--against-bottom-up` each
cue type's d' minus d' with no cue (the paper's network), paired by seed.

For every variant and seed it fine-tunes a trained run of that seed on the cued task into
runs/toy_cifar10/cued/<variant>-s<seed>: the recipe's T = 2 run (runs/toy_cifar10/
positive-gain-s<seed>) or, for the *-T4-recipe variants, the recipe for T > 2 at T = 4
(positive-T4-norm-4-tau-2-random-T-s<seed>), the ledger's configurations of
benchmarks/reproduce_toy_cifar10.py, trained here first if missing; a variant in `SCRATCH`
instead trains the whole network on the cued task from scratch with that run's arguments, and
the run is only its paired reference for plain classification. It records the
cued_detection paradigm on the validation split (5,000 arrays, one around every validation
image, and 500 grey images, each under every cue type, seed 0) into
data/recordings/cued/<variant>-s<seed>.nc and analyses it with `analysis.detection`. The T = 2
recipe run itself is recorded the same way with its class templates, raw and centred
(`recipe`, `recipe-centred`, lambda 5): the network that was never trained with a cue.
Everything already done is reused (an interrupted run resumes).

Writes results/cued_detection.md and results/cued_detection_seeds.csv: per variant and time
bin, the valid - neutral and neutral - invalid d' differences and the controls (shuffled and
negated cues minus neutral; false alarms on grey images), each as the mean over seeds with a 95%
t interval; per seed, the bootstrap CI over displays; hits and false alarms beside every d';
and each fine-tuned model's plain classification accuracy paired with the run it started from.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from gattanet_sim.analysis.detection import detection_table, seed_summary
from gattanet_sim.cli import Parser, name_list, positive_int, seed_list
from gattanet_sim.io import atomic_path
from gattanet_sim.recording import open_recording

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs" / "toy_cifar10"
RECORDINGS = ROOT / "data" / "recordings" / "cued"
RESULTS = ROOT / "results"
TOY = ["--model", "toy", "--dataset", "cifar10", "--widths", "32,64,128", "--val-size", "5000", "--quiet",
       "--epochs", "10"]
# The trained runs a variant starts from: name -> (run directory prefix, train arguments), the
# ledger's configurations (benchmarks/reproduce_toy_cifar10.py): the recipe at T = 2 and the
# recipe for T > 2 at T = 4 (statistics per step, gain time constant 2, T drawn per batch).
INITS = {
    "T2": ("positive-gain", TOY + ["--timesteps", "2", "--norm-steps", "2", "--normalization", "none",
                                   "--gain-form", "positive"]),
    "T4": ("positive-T4-norm-4-tau-2-random-T", TOY + ["--timesteps", "4", "--norm-steps", "4", "--normalization",
                                                       "none", "--gain-form", "positive", "--gain-tau", "2",
                                                       "--random-timesteps"]),
}
FINE_TUNE = ["--task", "cued-detection", "--lr", "0.02", "--alpha-lr", "0.5", "--quiet"]
CUED = ["--gain-map", "both", "--cue-validity", "0.8", "--cue-neutral", "0.2"]
# name -> (extra train arguments, timesteps, the trained run it starts from). Each spells out what
# it fixes.
VARIANTS = {
    "cue": (CUED, 2, "T2"),
    "cue-position": (["--gain-map", "position", "--cue-validity", "0.8", "--cue-neutral", "0.2"], 2, "T2"),
    "neutral-only": (["--gain-map", "both", "--cue-neutral", "1"], 2, "T2"),
    # top-down signals learned on a fixed visual system (Lindsay & Miller 2018 fix the CNN too):
    # only alphas, feature alphas and cue templates train; weights and batch-norm statistics stay
    "cue-frozen": (CUED + ["--train-only", "control"], 2, "T2"),
    "neutral-only-frozen": (["--gain-map", "both", "--cue-neutral", "1", "--train-only", "control"], 2, "T2"),
    # the same at T = 4, from the T = 2 run (its two sets of statistics, no time constant)
    "cue-frozen-T4": (CUED + ["--train-only", "control", "--timesteps", "4", "--norm-steps", "2", "--gain-tau", "1",
                              "--no-random-timesteps"], 4, "T2"),
    "neutral-only-frozen-T4": (["--gain-map", "both", "--cue-neutral", "1", "--train-only", "control",
                                "--timesteps", "4", "--norm-steps", "2", "--gain-tau", "1",
                                "--no-random-timesteps"], 4, "T2"),
    # the same at T = 4 on the visual system of the recipe for T > 2 (statistics per step, gain
    # time constant 2, T drawn per batch), which was trained to run 4 steps
    "cue-frozen-T4-recipe": (CUED + ["--train-only", "control", "--timesteps", "4"], 4, "T4"),
    "neutral-only-frozen-T4-recipe": (["--gain-map", "both", "--cue-neutral", "1", "--train-only", "control",
                                       "--timesteps", "4"], 4, "T4"),
    # the proportion-valid effect: the cueing effect (valid against invalid) grows with the share of
    # valid trials (e.g. Kingstone 1992, as summarised in Atten Percept Psychophys 2015,
    # doi:10.3758/s13414-015-0956-8; direction only). A cue valid on 95% of cued trials
    # (4% of all trials invalid, against 16%) penalises suppressing what was not cued less: does
    # the invalid cue then cost at T = 4?
    "cue-frozen-T4-recipe-valid-0.95": (["--gain-map", "both", "--cue-validity", "0.95", "--cue-neutral", "0.2",
                                         "--train-only", "control", "--timesteps", "4"], 4, "T4"),
    # at T = 4 the neutral cue (the mean template) costs d' against no cue, where at T = 2 it does
    # not, and the neutral-only control's cost is smaller: are 20% neutral trials too few to learn a
    # harmless neutral query? Half the trials neutral (the cued half 80% valid, as before)
    "cue-frozen-T4-recipe-neutral-0.5": (["--gain-map", "both", "--cue-validity", "0.8", "--cue-neutral", "0.5",
                                          "--train-only", "control", "--timesteps", "4"], 4, "T4"),
    # the neutral cue costs at T = 4 because it replaces the bottom-up query this visual system was
    # trained with (neutral - no cue < 0 at T = 4, not at T = 2)? A cue mixed into the bottom-up
    # query, 0.5 cue + 0.5 bottom-up at every step: a top-down bias on the competition the
    # stimulus sets up (biased competition, Desimone & Duncan 1995, Annu Rev Neurosci 18:193;
    # direction only), so that the neutral cue keeps the bottom-up attention
    "cue-frozen-T4-recipe-beta-0.5": (CUED + ["--cue-beta", "0.5", "--train-only", "control", "--timesteps", "4"],
                                      4, "T4"),
    "neutral-only-frozen-T4-recipe-beta-0.5": (["--gain-map", "both", "--cue-neutral", "1", "--cue-beta", "0.5",
                                                "--train-only", "control", "--timesteps", "4"], 4, "T4"),
    # the cue helps valid trials at T = 4 but invalid ones cost nothing: a free gain per feature
    # can raise the cued features without taking from the others. Attention as a limited
    # resource: the feature gains divided by their drive-weighted mean over an area's channels,
    # the normalization model's suppressive pool over features (Reynolds & Heeger 2009, Neuron
    # 61:168; direction only), so that what a cue raises the other features lose
    "cue-frozen-T4-recipe-beta-0.5-pool": (CUED + ["--cue-beta", "0.5", "--feature-pool", "divisive",
                                                   "--train-only", "control", "--timesteps", "4"], 4, "T4"),
    # the whole normalization model: the position gains divisive too (`--gain-form divisive`,
    # the positive gain as attention field over positions), on a visual system trained with the
    # positive form: what one location gains the others lose
    "cue-frozen-T4-recipe-beta-0.5-normalization": (CUED + ["--cue-beta", "0.5", "--feature-pool", "divisive",
                                                            "--gain-form", "divisive", "--train-only", "control",
                                                            "--timesteps", "4"], 4, "T4"),
    "neutral-only-frozen-T4-recipe-beta-0.5-pool": (["--gain-map", "both", "--cue-neutral", "1", "--cue-beta", "0.5",
                                                     "--feature-pool", "divisive", "--train-only", "control",
                                                     "--timesteps", "4"], 4, "T4"),
    # a cue that names a location (Posner 1980's own paradigm: spatial attention), not a class:
    # a learned template per cell, keys given a learned position code (starting at 0, trained
    # with the control); what an invalid location cue turns the gains away from is the target's
    # own cell, so it should cost where an invalid class cue did not
    "cue-frozen-T4-recipe-beta-0.5-location": (CUED + ["--cue-beta", "0.5", "--cue-on", "location",
                                                       "--key-position", "learned", "--train-only", "control",
                                                       "--timesteps", "4"], 4, "T4"),
    # the learned code starts at 0 and stayed small in 3 epochs: the location cue hardly moved the
    # gain at its cell. A fixed sinusoidal code (the same size as the keys) gives the cue a
    # position to name from the first step, at a cost to the start's bottom-up attention
    "cue-frozen-T4-recipe-beta-0.5-location-sinusoidal": (CUED + ["--cue-beta", "0.5", "--cue-on", "location",
                                                                  "--key-position", "sinusoidal", "--train-only",
                                                                  "control", "--timesteps", "4"], 4, "T4"),
    # the learned code trained 3 epochs moved V4's gain towards the cued cell in two seeds of
    # three (valid: +8% at the item's cell over the others in seed 2) and V1/V2's hardly: trained
    # as long as the start itself (10 epochs), does the cue learn where, and does it then cost?
    "cue-frozen-T4-recipe-beta-0.5-location-long": (CUED + ["--cue-beta", "0.5", "--cue-on", "location",
                                                            "--key-position", "learned", "--train-only",
                                                            "control", "--timesteps", "4"], 4, "T4"),
    "neutral-only-frozen-T4-recipe-beta-0.5-location-sinusoidal": (["--gain-map", "both", "--cue-neutral", "1",
                                                                    "--cue-beta", "0.5", "--cue-on", "location",
                                                                    "--key-position", "sinusoidal",
                                                                    "--train-only", "control", "--timesteps", "4"],
                                                                   4, "T4"),
    "neutral-only-frozen-T4-recipe-beta-0.5-location-long": (["--gain-map", "both", "--cue-neutral", "1",
                                                              "--cue-beta", "0.5", "--cue-on", "location",
                                                              "--key-position", "learned", "--train-only",
                                                              "control", "--timesteps", "4"], 4, "T4"),
    "cue-frozen-beta-0.5-location": (CUED + ["--cue-beta", "0.5", "--cue-on", "location", "--key-position",
                                             "learned", "--train-only", "control"], 2, "T2"),
    "neutral-only-frozen-T4-recipe-beta-0.5-location": (["--gain-map", "both", "--cue-neutral", "1",
                                                         "--cue-beta", "0.5", "--cue-on", "location",
                                                         "--key-position", "learned", "--train-only",
                                                         "control", "--timesteps", "4"], 4, "T4"),
    # the visual system itself trained with the cue at T = 4, from scratch (no start): the
    # recipe for T > 2 and its 10 epochs, half the batches cued detection; cue mixed in (beta 0.5)
    "cue-T4-scratch-beta-0.5": (CUED + ["--cue-beta", "0.5"], 4, "T4"),
    "cue-alpha-lr-0.1": (CUED + ["--alpha-lr", "0.1"], 2, "T2"),  # the alphas moved less: classification kept?
    # T = 4 fine-tuned from the T = 2 recipe run, with its two sets of statistics and no time constant
    # (the recipe for T > 2 needs a T = 4 run to start from: cue-T4-recipe)
    "cue-T4": (CUED + ["--timesteps", "4", "--norm-steps", "2", "--gain-tau", "1", "--no-random-timesteps"], 4, "T2"),
    "cue-T4-recipe": (CUED + ["--timesteps", "4"], 4, "T4"),
    "neutral-only-T4-recipe": (["--gain-map", "both", "--cue-neutral", "1", "--timesteps", "4"], 4, "T4"),
}
COLUMNS = ["variant", "time_bin", "measure", "mean", "ci_low", "ci_high", "seeds", "per_seed"]
CONDITIONS = "valid,neutral,invalid,shuffled,negated,bottom-up"
CONTRASTS = {"valid - neutral": ("valid", 1), "neutral - invalid": ("invalid", -1),
             "shuffled - neutral": ("shuffled", 1), "negated - neutral": ("negated", 1)}


def sh(cmd: list[str], threads: int) -> None:
    print("$", shlex.join(cmd).replace(str(ROOT) + "/", ""), flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if subprocess.run(cmd, cwd=ROOT, env=env).returncode != 0:
        raise SystemExit(f"failed: {shlex.join(cmd)}")


def recipe_run(seed: int, data_root: str, threads: int, init: str = "T2") -> Path:
    """The trained run a variant starts from (trained first if missing, resumed if cut)."""
    prefix, arguments = INITS[init]
    out = RUNS / f"{prefix}-s{seed}"
    if not (out / "summary.json").exists():
        resume = ["--resume"] if (out / "last.pt").exists() else []
        sh([sys.executable, "-m", "gattanet_sim.train", *arguments, "--data-root", data_root,
            "--seed", str(seed), "--out-dir", str(out), *resume], threads)
    return out


# variants trained from scratch on the cued task with their start's arguments and epochs; the
# start, trained on classification alone, is then their paired reference
SCRATCH = {"cue-T4-scratch-beta-0.5"}


# fine-tunes trained longer than `--epochs`
EPOCHS = {"cue-frozen-T4-recipe-beta-0.5-location-long": 10,
          "neutral-only-frozen-T4-recipe-beta-0.5-location-long": 10}


def cue_run(variant: str, seed: int, epochs: int, data_root: str, threads: int) -> Path:
    epochs = EPOCHS.get(variant, epochs)
    out = RUNS / "cued" / f"{variant}-s{seed}"
    if (out / "summary.json").exists():
        return out
    extra, _, init = VARIANTS[variant]
    common = ["--data-root", data_root, "--seed", str(seed), "--out-dir", str(out),
              *(["--resume"] if (out / "last.pt").exists() else [])]
    if variant in SCRATCH:
        sh([sys.executable, "-m", "gattanet_sim.train", *INITS[init][1], "--task", "cued-detection", *extra,
            *common], threads)
    else:
        start = recipe_run(seed, data_root, threads, init)
        sh([sys.executable, "-m", "gattanet_sim.train", *INITS[init][1], *FINE_TUNE, *extra, "--epochs", str(epochs),
            "--init", str(start), *common], threads)
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


def on_arrays(t: pd.DataFrame, cue: str, time_bin: int, column: str = "d_prime_minus_neutral") -> float:
    """One seed's detection-table value on search arrays for a cue type and time bin."""
    return t.loc[(t.display == "array") & (t.cue_type == cue) & (t.time_bin == time_bin), column].item()


def summarise(tables: dict[str, dict[int, pd.DataFrame]], accuracy: dict[str, dict[int, float]],
              reference: dict[str, dict[int, float]]) -> pd.DataFrame:
    """One row per variant x time bin x measure (over seeds). `accuracy`: variant -> seed ->
    validation accuracy (last step); `reference`: the same of the run each variant started
    from, paired with it by seed."""
    rows = []
    for variant, by_seed in tables.items():
        for label, (cue, sign) in CONTRASTS.items():
            for column in ("d_prime_minus_neutral", "criterion_minus_neutral"):
                s = seed_summary(by_seed, column)
                s = s[(s.display == "array") & (s.cue_type == cue)]
                for _, r in s.iterrows():
                    per_seed = [sign * on_arrays(t, cue, r.time_bin, column) for t in by_seed.values()]
                    mean, low, high = t_interval(per_seed)
                    measure = f"{column.split('_minus')[0]}: {label}"
                    rows.append({"variant": variant, "time_bin": r.time_bin, "measure": measure,
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
                        rows.append({"variant": variant, "time_bin": int(time_bin),
                                     "measure": f"{measure} {cue} ({display})",
                                     "mean": mean, "ci_low": low, "ci_high": high, "seeds": len(values),
                                     "per_seed": ", ".join(f"{x:.3f}" for x in values)})
        if variant in accuracy:
            start = reference.get(variant, {})
            seeds = sorted(set(accuracy[variant]) & set(start))
            diffs = [100 * (accuracy[variant][s] - start[s]) for s in seeds]
            if diffs:
                mean, low, high = t_interval(diffs)
                rows.append({"variant": variant, "time_bin": -1,
                             "measure": "classification accuracy minus its starting run's (points)",
                             "mean": mean, "ci_low": low, "ci_high": high, "seeds": len(diffs),
                             "per_seed": ", ".join(f"{x:+.2f}" for x in diffs)})
    return pd.DataFrame(rows, columns=COLUMNS)


def report(table: pd.DataFrame) -> str:
    """The markdown report of a summary table (results/cued_detection.md)."""
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
    return "\n".join(lines)


def merge(new: pd.DataFrame, earlier: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The summary to write: `earlier` (the table already in results/) with each variant
    summarised now put in its place, or appended. A variant summarised here over fewer seeds than
    before keeps its earlier rows (its runs may live on another machine, or this one may hold only
    some seeds): rewriting the report never drops a result. Returns the table and what was kept."""
    kept, parts = [], []
    seeds_now = new.groupby("variant", sort=False).seeds.max()
    seeds_before = earlier.groupby("variant", sort=False).seeds.max()
    for variant, rows in earlier.groupby("variant", sort=False):
        if variant in seeds_now.index and seeds_now[variant] >= seeds_before[variant]:
            parts.append(new[new.variant == variant])
        else:
            parts.append(rows)
            if variant in seeds_now.index:
                kept.append(f"kept the earlier {seeds_before[variant]}-seed rows of {variant} "
                            f"(summarised here over {seeds_now[variant]})")
    parts += [rows for variant, rows in new.groupby("variant", sort=False) if variant not in seeds_before.index]
    return pd.concat([p for p in parts if not p.empty] or [new], ignore_index=True), kept


def against(table: pd.DataFrame, variant: str, reference: str = "bottom-up") -> pd.DataFrame:
    """d' of every cue type minus d' under `reference` (default: no cue, the paper's network),
    per time bin, paired by seed, on arrays: whether a benefit over the neutral cue is also one
    over no cue at all, or the neutral cue's own cost."""
    part = table[table.variant == variant]
    rows = []
    for cue in ("valid", "neutral", "invalid"):
        for time_bin in sorted(part.time_bin[part.time_bin >= 0].unique()):
            x, y = ([float(v) for v in part[(part.measure == f"d_prime {c} (array)")
                                             & (part.time_bin == time_bin)].per_seed.item().split(", ")]
                    for c in (cue, reference))
            mean, low, high = t_interval([u - v for u, v in zip(x, y)])
            rows.append({"measure": f"d_prime: {cue} - {reference}", "time_bin": time_bin, "difference": mean,
                         "ci_low": low, "ci_high": high, "seeds": len(x)})
    return pd.DataFrame(rows)


def compare(first: dict[int, pd.DataFrame], second: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """One variant minus another per d' contrast and time bin, on arrays, paired by seed over the
    seeds both recorded (seed -> `detection_table` each): runs of the same seed start from the
    same trained network, so the difference is the variants' own. `first` and `second` list each
    variant's contrast per seed."""
    seeds = sorted(set(first) & set(second))
    rows = []
    for label, (cue, sign) in CONTRASTS.items():
        for time_bin in sorted(set(first[seeds[0]].time_bin) & set(second[seeds[0]].time_bin)):
            value = {name: [sign * on_arrays(part[s], cue, time_bin) for s in seeds]
                     for name, part in (("first", first), ("second", second))}
            mean, low, high = t_interval([u - v for u, v in zip(value["first"], value["second"])])
            rows.append({"measure": f"d_prime: {label}", "time_bin": time_bin,
                         "first": ", ".join(f"{v:+.3f}" for v in value["first"]),
                         "second": ", ".join(f"{v:+.3f}" for v in value["second"]), "difference": mean,
                         "ci_low": low, "ci_high": high, "seeds": ", ".join(map(str, seeds))})
    return pd.DataFrame(rows)


def where(variant: str, seed: int) -> tuple[Path, int]:
    """The run a job records and its T: the recipe's own run (`recipe`, `recipe-centred`: its
    class templates, raw or centred) or a fine-tuned one."""
    if variant.startswith("recipe"):
        return RUNS / f"positive-gain-s{seed}", 2
    return RUNS / "cued" / f"{variant}-s{seed}", VARIANTS[variant][1]


def run_job(variant: str, seed: int, args: argparse.Namespace) -> None:
    """Train what a job needs (if missing) and record it (if not recorded yet)."""
    run, timesteps = where(variant, seed)
    if variant.startswith("recipe"):
        recipe_run(seed, args.data_root, args.threads)
    else:
        cue_run(variant, seed, args.epochs, args.data_root, args.threads)
    recording(f"{variant}-s{seed}", run, args.data_root, args.threads, timesteps,
              5.0 if variant == "recipe-centred" else None)


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="python benchmarks/cued_detection_study.py", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default="../shared/datasets")
    p.add_argument("--variants", type=name_list, default=["cue", "neutral-only"])
    p.add_argument("--seeds", type=seed_list, default=[0, 1, 2])
    p.add_argument("--epochs", type=positive_int, default=3)
    p.add_argument("--threads", type=positive_int, default=1)
    p.add_argument("--recipe", action=argparse.BooleanOptionalAction, default=True,
                   help="also record the recipe runs with class templates (raw and centred)")
    p.add_argument("--jobs", type=positive_int, default=1,
                   help="seeds run side by side, one process each (a GPU holds many)")
    p.add_argument("--table-only", action="store_true", help="only summarise what exists")
    p.add_argument("--compare", type=name_list, default=None, metavar="A,B",
                   help="also print variant A minus variant B per d' contrast, paired by seed")
    p.add_argument("--against-bottom-up", action="store_true",
                   help="also print, per variant named, each cue type's d' minus d' with no cue, paired by seed")
    args = p.parse_args(argv)
    if args.compare is not None and len(args.compare) != 2:
        p.error(f"--compare takes two variants, got {len(args.compare)}")
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        p.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    jobs = [(v, s) for v in args.variants for s in args.seeds]
    if args.recipe:
        jobs = [("recipe", s) for s in args.seeds] + [("recipe-centred", s) for s in args.seeds] + jobs
    by_seed = {s: [j for j in jobs if j[1] == s] for s in args.seeds}
    if not args.table_only:  # every seed's jobs in order; seeds side by side (`--jobs`)
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(lambda s: [run_job(v, s, args) for v, _ in by_seed[s]], args.seeds))
    tables: dict[str, dict[int, pd.DataFrame]] = {}
    accuracy: dict[str, dict[int, float]] = {}
    reference: dict[str, dict[int, float]] = {}
    for variant, seed in jobs:
        run, _ = where(variant, seed)
        init = "T2" if variant.startswith("recipe") else VARIANTS[variant][2]
        start = RUNS / f"{INITS[init][0]}-s{seed}" / "summary.json"
        if (run / "summary.json").exists() and not variant.startswith("recipe") and start.exists():
            accuracy.setdefault(variant, {})[seed] = json.loads((run / "summary.json").read_text())["val_accuracy"][-1]
            reference.setdefault(variant, {})[seed] = json.loads(start.read_text())["val_accuracy"][-1]
        path = RECORDINGS / f"{variant}-s{seed}.nc"
        if path.exists():
            tables.setdefault(variant, {})[seed] = detection_table(open_recording(path))
    table = summarise(tables, accuracy, reference)
    csv = RESULTS / "cued_detection_seeds.csv"
    if csv.exists():
        table, kept = merge(table, pd.read_csv(csv))
        for line in kept:
            print(line, file=sys.stderr)
    text = report(table)
    with atomic_path(csv) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(RESULTS / "cued_detection.md") as tmp:
        tmp.write_text(text + "\n")
    print(text)
    if args.against_bottom_up:
        for variant in (v for v in args.variants if v in set(table.variant)):
            print(f"\n{variant}, against no cue, paired by seed:\n" + against(table, variant).to_string(index=False))
    if args.compare:
        a, b = args.compare
        recorded = [{s: detection_table(open_recording(RECORDINGS / f"{v}-s{s}.nc")) for s in args.seeds
                     if (RECORDINGS / f"{v}-s{s}.nc").exists()} for v in (a, b)]
        if not set(recorded[0]) & set(recorded[1]):
            raise SystemExit(f"--compare: {a} and {b} share no recorded seed of {args.seeds} in "
                             f"{RECORDINGS.relative_to(ROOT)}")
        print(f"\n{a} minus {b}, paired by seed:\n" + compare(*recorded).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

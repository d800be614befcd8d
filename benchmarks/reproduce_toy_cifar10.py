"""Resumable sweep: toy model on CIFAR-10, configurations x seeds, paired against the baseline.

    python benchmarks/reproduce_toy_cifar10.py --data-root ../shared/datasets \\
        [--configs baseline,paper] [--seeds 0,1,2] [--epochs 10] [--table-only]
        [--noise-curve baseline,positive-gain]

Every run trains with `python -m gattanet_sim.train` into runs/toy_cifar10/<config>-s<seed>
(kept; an interrupted run resumes with --resume), selects its model on the validation split
only, and adds a line to results/toy_cifar10_runs.jsonl (command, seed, accuracy at every
timestep, epochs, seconds, commit); its config.json, summary.json and metrics.jsonl are copied
to results/toy_cifar10_runs/<config>-s<seed>/ so they outlive runs/. The tables
results/toy_cifar10_ablation.{csv,md} give, per configuration, the mean +- sd over seeds of the
validation accuracy at the last timestep and the paired difference to the baseline of the same
seed with its 95% CI (t distribution).

The protocol: every run of the table trains on the CPU with one thread (`--threads 1`, two runners
side by side on a 2-core machine). Runs are bit-identical for the same seed and thread count;
another thread count rounds float sums differently and ends like another seed would (the same
command and code gave norm-steps seed 0 82.32 in an earlier session, whose thread count was not
recorded, and 81.58 under the protocol). A ledger row marked `superseded` is such an
earlier run, kept and listed but not counted; a row marked `failed` (a diverged run) is listed.

`--noise-curve` evaluates every finished run of the named configurations on the validation
split under Gaussian pixel noise (sd 0, 0.01, 0.03, 0.1, 0.3 on [0, 1] pixels, the paper's
Fig. 2a), at each run's last timestep, into results/toy_cifar10_noise.{jsonl,md,png}; runs
already evaluated are skipped.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

from scipy import stats

from gattanet_sim.cli import Parser, pick_device, positive_int, seed_list, set_threads
from gattanet_sim.data import load_split
from gattanet_sim.evaluate import accuracy_per_timestep, load_checkpoint
from gattanet_sim.io import atomic_path

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs" / "toy_cifar10"
LEDGER = ROOT / "results" / "toy_cifar10_runs.jsonl"
DEFAULT_EPOCHS = 10
KEPT = ROOT / "results" / "toy_cifar10_runs"  # each run's small files, kept in git beside the ledger
KEPT_FILES = ("config.json", "summary.json", "metrics.jsonl")
RECIPE = ["--model", "toy", "--dataset", "cifar10", "--widths", "32,64,128", "--val-size", "5000",
          "--quiet"]

# name -> extra train arguments, each spelling out the factors it fixes so that its meaning never
# depends on the defaults. "paper" is the literal reading. "norm-steps" adds batch-norm statistics
# of their own for the unattended first sweep; the first one-factor ablations change one thing of
# it. "positive-gain" (norm-steps with the gain 2 sigmoid(alpha a)) came out best and is the toy
# model's default (preset "recipe"); the "positive-*" ablations change one thing of it.
STEPS = ["--timesteps", "2", "--norm-steps", "2"]
NONE = ["--normalization", "none"]
POSITIVE = STEPS + NONE + ["--gain-form", "positive"]
# T > 2 runs of the first rounds, before a T drawn per batch became the recipe's default for T > 2
FIXED_T = ["--no-random-timesteps"]
# T > 2 runs before a gain time constant of 2 steps became part of the recipe for T > 2
INSTANT = ["--gain-tau", "1"]
CONFIGS: dict[str, list[str]] = {
    "baseline": ["--no-attention", "--timesteps", "1"],
    "paper": ["--timesteps", "2", "--preset", "paper"],
    "paper-T4": ["--timesteps", "4", "--preset", "paper"],
    "norm-steps": STEPS + NONE,
    "norm-steps-T4": ["--timesteps", "4", "--norm-steps", "2"] + NONE + FIXED_T + INSTANT,
    "norm-steps-4-T4": ["--timesteps", "4", "--norm-steps", "4"] + NONE + FIXED_T + INSTANT,
    "standardize": STEPS + ["--normalization", "standardize"],
    "standardize-T4": ["--timesteps", "4", "--norm-steps", "2", "--normalization", "standardize"]
                      + FIXED_T + INSTANT,
    "softmax": STEPS + ["--normalization", "softmax"],
    "positive-gain": POSITIVE,
    "positive-gain-T4": ["--timesteps", "4", "--norm-steps", "2"] + NONE + ["--gain-form", "positive"]
                        + FIXED_T + INSTANT,
    "bounded-gain": STEPS + NONE + ["--gain-form", "bounded"],
    "no-readout-gain": STEPS + NONE + ["--no-readout-gain"],
    "current-keys": STEPS + NONE + ["--keys", "current"],
    "loss-all-steps": STEPS + NONE + ["--loss-all-steps"],
    "alpha-lr-0.01": STEPS + NONE + ["--alpha-lr", "0.01"],
    "key-dim-8": STEPS + NONE + ["--key-dim", "8"],
    "key-dim-32": STEPS + NONE + ["--key-dim", "32"],
    "baseline-adam": ["--no-attention", "--timesteps", "1", "--optimizer", "adam", "--lr", "0.003"],
    "adam": STEPS + NONE + ["--optimizer", "adam", "--lr", "0.003"],
    "baseline-no-bn": ["--no-attention", "--timesteps", "1", "--no-batch-norm"],
    "paper-no-bn": ["--timesteps", "2", "--preset", "paper", "--no-batch-norm"],
    # one factor at a time from positive-gain, the best configuration of the first round
    "positive-standardize": STEPS + ["--normalization", "standardize", "--gain-form", "positive"],
    "positive-softmax": STEPS + ["--normalization", "softmax", "--gain-form", "positive"],
    "positive-no-readout-gain": POSITIVE + ["--no-readout-gain"],
    "positive-current-keys": POSITIVE + ["--keys", "current"],
    "positive-loss-all-steps": POSITIVE + ["--loss-all-steps"],
    "positive-alpha-lr-0.01": POSITIVE + ["--alpha-lr", "0.01"],
    "positive-alpha-init-1": POSITIVE + ["--alpha-init", "1.0"],
    "positive-key-dim-8": POSITIVE + ["--key-dim", "8"],
    "positive-key-dim-32": POSITIVE + ["--key-dim", "32"],
    "positive-adam": POSITIVE + ["--optimizer", "adam", "--lr", "0.003"],
    # issue 21: alphas kept >= 0 (softplus), from scratch
    "positive-alpha-sign": POSITIVE + ["--alpha-sign", "positive"],
    # time (issue: later timesteps better than earlier ones) and cascade mode, from positive-gain
    "positive-T4-norm-4": ["--timesteps", "4", "--norm-steps", "4"] + NONE + ["--gain-form", "positive"]
                          + FIXED_T + INSTANT,
    "positive-T8-norm-8": ["--timesteps", "8", "--norm-steps", "8"] + NONE + ["--gain-form", "positive"]
                          + FIXED_T + INSTANT,
    "positive-T4-loss-all-steps": ["--timesteps", "4", "--norm-steps", "2"] + NONE
                                  + ["--gain-form", "positive", "--loss-all-steps"] + FIXED_T + INSTANT,
    "positive-T4-leak-0.5": ["--timesteps", "4", "--norm-steps", "2"] + NONE
                            + ["--gain-form", "positive", "--query-leak", "0.5"] + FIXED_T + INSTANT,
    "positive-T4-tau-2": ["--timesteps", "4", "--norm-steps", "2"] + NONE
                         + ["--gain-form", "positive", "--gain-tau", "2"] + FIXED_T,
    "positive-T4-norm-4-leak-0.5": ["--timesteps", "4", "--norm-steps", "4"] + NONE
                                   + ["--gain-form", "positive", "--query-leak", "0.5"] + FIXED_T + INSTANT,
    "positive-T4-norm-4-tau-2": ["--timesteps", "4", "--norm-steps", "4"] + NONE
                                + ["--gain-form", "positive", "--gain-tau", "2"] + FIXED_T,
    "positive-T4-norm-4-loss-all-steps": ["--timesteps", "4", "--norm-steps", "4"] + NONE
                                         + ["--gain-form", "positive", "--loss-all-steps"] + FIXED_T + INSTANT,
    "positive-T4-norm-4-tau-2-random-T": ["--timesteps", "4", "--norm-steps", "4"] + NONE
                                         + ["--gain-form", "positive", "--gain-tau", "2", "--random-timesteps"],
    "positive-T4-norm-4-random-T": ["--timesteps", "4", "--norm-steps", "4"] + NONE
                                   + ["--gain-form", "positive", "--random-timesteps"] + INSTANT,
    "positive-T8-norm-8-random-T": ["--timesteps", "8", "--norm-steps", "8"] + NONE
                                   + ["--gain-form", "positive", "--random-timesteps"] + INSTANT,
    "positive-T8-norm-8-tau-2-random-T": ["--timesteps", "8", "--norm-steps", "8"] + NONE
                                         + ["--gain-form", "positive", "--gain-tau", "2", "--random-timesteps"],
    "cascade-T5-norm-5-random-T": ["--mode", "cascade", "--timesteps", "5", "--norm-steps", "5"] + NONE
                                  + ["--gain-form", "positive", "--random-timesteps"] + INSTANT,
    "cascade-T6-norm-6-random-T": ["--mode", "cascade", "--timesteps", "6", "--norm-steps", "6"] + NONE
                                  + ["--gain-form", "positive", "--random-timesteps"] + INSTANT,
    "cascade-T7-norm-7-random-T": ["--mode", "cascade", "--timesteps", "7", "--norm-steps", "7"] + NONE
                                  + ["--gain-form", "positive", "--random-timesteps"] + INSTANT,
    "cascade-T8-norm-8-random-T": ["--mode", "cascade", "--timesteps", "8", "--norm-steps", "8"] + NONE
                                  + ["--gain-form", "positive", "--random-timesteps"] + INSTANT,
    "cascade-T6-norm-6-tau-2-random-T": ["--mode", "cascade", "--timesteps", "6", "--norm-steps", "6"] + NONE
                                        + ["--gain-form", "positive", "--gain-tau", "2", "--random-timesteps"],
    "cascade-T8-norm-8-tau-2-random-T": ["--mode", "cascade", "--timesteps", "8", "--norm-steps", "8"] + NONE
                                        + ["--gain-form", "positive", "--gain-tau", "2", "--random-timesteps"],
    "divisive-gain": STEPS + NONE + ["--gain-form", "divisive"],
    "divisive-T4-norm-4-random-T": ["--timesteps", "4", "--norm-steps", "4"] + NONE
                                   + ["--gain-form", "divisive", "--random-timesteps"] + INSTANT,
    "positive-leak-0.5": POSITIVE + ["--query-leak", "0.5"],
    "positive-tau-2": POSITIVE + ["--gain-tau", "2"],
    "cascade-T6": ["--mode", "cascade", "--timesteps", "6", "--norm-steps", "2"] + NONE
                  + ["--gain-form", "positive"] + FIXED_T + INSTANT,
    "cascade-T6-norm-6": ["--mode", "cascade", "--timesteps", "6", "--norm-steps", "6"] + NONE
                         + ["--gain-form", "positive"] + FIXED_T + INSTANT,
    "positive-no-bn": ["--timesteps", "2", "--norm-steps", "1", "--normalization", "none",
                       "--gain-form", "positive", "--no-batch-norm"],
}
# The baseline a configuration is paired with: the plain backbone trained the same way.
BASELINE_OF = {"adam": "baseline-adam", "positive-adam": "baseline-adam", "paper-no-bn": "baseline-no-bn",
               "positive-no-bn": "baseline-no-bn"}


def baseline_of(config: str) -> str:
    return config if config.startswith("baseline") else BASELINE_OF.get(config, "baseline")


def run_name(config: str, seed: int, epochs: int) -> str:
    """Run directory name; the epoch count is part of it unless it is the protocol's 10 epochs."""
    return f"{config}-s{seed}" if epochs == DEFAULT_EPOCHS else f"{config}-e{epochs}-s{seed}"


def command(config: str, seed: int, epochs: int, data_root: str) -> list[str]:
    out = RUNS / run_name(config, seed, epochs)
    return [sys.executable, "-m", "gattanet_sim.train", *RECIPE, "--data-root", data_root,
            "--epochs", str(epochs), "--seed", str(seed), "--out-dir", str(out), *CONFIGS[config]]


def ledger() -> list[dict]:
    if not LEDGER.exists():
        return []
    return [json.loads(line) for line in LEDGER.read_text().splitlines() if line.strip()]


def append(row: dict) -> list[dict]:
    """Add a row to the ledger; re-read under a lock so that runners in parallel keep each other's rows."""
    with open(LEDGER.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        rows = ledger() + [row]
        with atomic_path(LEDGER) as tmp:  # the whole ledger, renamed into place
            tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
        write_tables(rows)
    return rows


def run(config: str, seed: int, epochs: int, data_root: str, threads: int = 1) -> dict:
    """Train (or resume) one run with `threads` CPU threads and return its ledger row."""
    cmd = command(config, seed, epochs, data_root)
    out = Path(cmd[cmd.index("--out-dir") + 1])
    shown = shlex.join(["python", *cmd[1:]]).replace(str(ROOT) + "/", "")
    if not (out / "summary.json").exists():
        resume = ["--resume"] if (out / "last.pt").exists() else []
        print("$", shlex.join(cmd[2:] + resume), flush=True)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        proc = subprocess.run(cmd + resume, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
        sys.stderr.write(proc.stderr)
        if proc.returncode != 0:  # a diverged run is a result too: recorded, never retried
            lines = proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"]
            keep(out)
            return {"config": config, "seed": seed, "epochs": epochs, "failed": lines[-1].replace(str(ROOT) + "/", ""),
                    "command": shown}
    summary = json.loads((out / "summary.json").read_text())
    keep(out)
    return {"config": config, "seed": seed, "epochs": epochs, "val_accuracy": summary["val_accuracy"],
            "best_epoch": summary["best_epoch"], "seconds_per_epoch": summary["seconds_per_epoch"],
            "parameters": summary["parameters"], "git_commit": summary["git_commit"],
            "threads": summary.get("threads", threads), "command": shown}


def keep(run_dir: Path) -> None:
    """Copy a finished run's config, summary and per-epoch metrics into results/ (checkpoints stay in runs/)."""
    target = KEPT / run_dir.name
    target.mkdir(parents=True, exist_ok=True)
    for name in KEPT_FILES:
        if (run_dir / name).exists():
            with atomic_path(target / name) as tmp:
                tmp.write_bytes((run_dir / name).read_bytes())


def counted(row: dict) -> bool:
    """Finished runs count; failed ones and those superseded by a rerun under the protocol are listed only."""
    return "failed" not in row and "superseded" not in row


def paired(accs: dict[int, float], other: dict[int, float]) -> dict:
    """Mean difference `accs - other` over the seeds both have, with its 95% t interval and the
    two-sided paired t-test's p (nan where fewer than two seeds pair)."""
    diffs = [accs[s] - other[s] for s in accs if s in other]
    out = {"paired_n": len(diffs), "diff": statistics.mean(diffs) if diffs else float("nan"),
           "ci_low": float("nan"), "ci_high": float("nan"), "p": float("nan")}
    if len(diffs) > 1:
        half = stats.t.ppf(0.975, len(diffs) - 1) * statistics.stdev(diffs) / len(diffs) ** 0.5
        out["ci_low"], out["ci_high"] = out["diff"] - half, out["diff"] + half
        out["p"] = float(stats.ttest_1samp(diffs, 0.0).pvalue)
    return out


def final_accuracies(rows: list[dict]) -> dict[tuple[str, int], dict[int, float]]:
    """(configuration, epochs) -> {seed: validation accuracy at the last timestep}, counted runs only."""
    by: dict = {}
    for r in (r for r in rows if counted(r)):
        by.setdefault((r["config"], r["epochs"]), {})[r["seed"]] = r["val_accuracy"][-1]
    return by


def table(rows: list[dict]) -> list[dict]:
    """Per configuration: mean +- sd, and the paired difference to the same-seed baseline."""
    by = final_accuracies(rows)
    out = []
    for (config, epochs), accs in sorted(by.items(), key=lambda kv: (kv[0][1], kv[0][0] != "baseline", kv[0][0])):
        values = list(accs.values())
        row = {"config": config, "baseline": baseline_of(config), "epochs": epochs, "seeds": len(values),
               "mean": statistics.mean(values), "sd": statistics.stdev(values) if len(values) > 1 else float("nan")}
        row.update(paired(accs, by.get((baseline_of(config), epochs), {}) if config != row["baseline"] else {}))
        out.append(row)
    return out


T2_RECIPE = "positive-gain"  # what a T > 2 configuration must match: the recipe at T = 2


def diff_cell(d: dict, against: str) -> str:
    pct = lambda v: f"{100 * v:+.2f}"  # noqa: E731
    if not d["paired_n"]:
        return "—"
    ci = "" if d["ci_low"] != d["ci_low"] else f" [{pct(d['ci_low'])}, {pct(d['ci_high'])}]"
    return f"{pct(d['diff'])}{ci} (n={d['paired_n']}{p_value(d['p'])}, vs {against})"


CASCADE_ARRIVAL = 4  # the toy read-out first fires at t = 4 in cascade mode (silent before: 10%)


def smallest_change(config: str, mean: list[float]) -> float:
    """The smallest step-to-step change of the accuracy, from the step the read-out first fired
    (nan with a single such step): a silent read-out's constant 10% is no settling."""
    first = CASCADE_ARRIVAL if "cascade" in CONFIGS.get(config, []) else 0
    changes = [mean[t] - mean[t - 1] for t in range(first + 1, len(mean))]
    return min(changes) if changes else float("nan")


def change_cell(change: float) -> str:
    return "—" if change != change else f"{100 * change:+.2f}"


def time_table(rows: list[dict]) -> list[str]:
    """Configurations run at T > 2: accuracy per timestep (mean over seeds), its smallest change
    from one step to the next (the acceptance asks for no drop larger than 0.2 points), and the final accuracy paired
    with the baseline and with the T = 2 recipe of the same seeds."""
    by = final_accuracies(rows)
    steps: dict = {}
    for r in (r for r in rows if counted(r) and len(r["val_accuracy"]) > 2):
        steps.setdefault((r["config"], r["epochs"]), []).append(r["val_accuracy"])
    lines = ["| configuration | epochs | seeds | val accuracy per timestep (mean, %) | smallest change "
             "between steps | vs baseline [95% CI] | vs T = 2 recipe [95% CI] |", "| --- |" + " --- |" * 6]
    for (config, epochs), runs in sorted(steps.items()):
        if len({len(a) for a in runs}) > 1:
            continue  # seeds at different T: not one configuration
        mean = [statistics.mean(a[t] for a in runs) for t in range(len(runs[0]))]
        change = smallest_change(config, mean)
        accs = by[(config, epochs)]
        base = paired(accs, by.get((baseline_of(config), epochs), {}))
        t2 = paired(accs, by.get((T2_RECIPE, epochs), {}))
        lines.append(f"| {config} | {epochs} | {len(runs)} | {' / '.join(f'{100 * m:.2f}' for m in mean)} | "
                     f"{change_cell(change)} | {diff_cell(base, baseline_of(config))} | {diff_cell(t2, T2_RECIPE)} |")
    return lines


def p_value(p: float) -> str:
    """Three decimals, because a CI bound that rounds to +0.00 hides which side of 0 it is on."""
    return "" if p != p else f", p={p:.3f}"


def write_tables(rows: list[dict]) -> None:
    """The csv holds the finished runs' statistics; the markdown also lists the runs that failed."""
    results = table(rows)
    cols = list(results[0]) if results else []
    with atomic_path(LEDGER.with_name("toy_cifar10_ablation.csv")) as tmp:
        tmp.write_text("\n".join([",".join(cols)] + [",".join(f"{r[c]:.4f}" if isinstance(r[c], float)
                                                               else str(r[c]) for c in cols) for r in results]) + "\n")
    lines = ["| configuration | train arguments | epochs | seeds | val accuracy (mean ± sd) "
             "| paired diff to baseline [95% CI] |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in results:
        sd = "" if r["sd"] != r["sd"] else f" ± {100 * r['sd']:.2f}"
        diff = "—" if r["config"] == r["baseline"] else diff_cell(r, r["baseline"])
        args = " ".join(CONFIGS.get(r["config"], []))
        lines.append(f"| {r['config']} | `{args}` | {r['epochs']} | {r['seeds']} "
                     f"| {100 * r['mean']:.2f}{sd} | {diff} |")
    for r in (r for r in rows if "failed" in r):
        args = " ".join(CONFIGS.get(r["config"], []))
        lines.append(f"| {r['config']} (seed {r['seed']}) | `{args}` | {r['epochs']} | — | failed: {r['failed']} | — |")
    superseded = [r for r in rows if "superseded" in r]
    if superseded:
        lines += ["", "Runs replaced by a rerun under the protocol (kept in the ledger, not counted):", ""]
        lines += [f"- {r['config']} seed {r['seed']}: {100 * r['val_accuracy'][-1]:.2f} — {r['superseded']}"
                  for r in superseded]
    with atomic_path(LEDGER.with_name("toy_cifar10_ablation.md")) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    with atomic_path(LEDGER.with_name("toy_cifar10_time.md")) as tmp:
        tmp.write_text("\n".join(time_table(rows)) + "\n")


SIGMAS = (0.0, 0.01, 0.03, 0.1, 0.3)
NOISE = LEDGER.with_name("toy_cifar10_noise.jsonl")


def noise_curve(configs: list[str], data_root: str) -> list[dict]:
    """Accuracy at the last timestep under pixel noise, per finished run and noise level."""
    rows = [json.loads(line) for line in NOISE.read_text().splitlines()] if NOISE.exists() else []
    done = {(r["config"], r["seed"], r["noise_std"]) for r in rows}
    device = pick_device("auto")
    data = load_split("cifar10", "val", data_root, 5000)  # (N, 3, 32, 32) uint8, the 5,000 held out
    for config in configs:
        runs = sorted(d for d in RUNS.glob(f"{config}-s*") if d.name[len(config) + 2:].isdigit())
        for run_dir in runs:
            if not (run_dir / "summary.json").exists():
                continue
            model, cfg, _ = load_checkpoint(run_dir, device)
            for sigma in SIGMAS:
                if (config, cfg["seed"], sigma) in done:
                    continue
                acc = accuracy_per_timestep(model, data, cfg["timesteps"], 500, device, sigma, seed=0)
                rows.append({"config": config, "seed": cfg["seed"], "noise_std": sigma,
                             "accuracy": acc["accuracy"][-1], "accuracy_per_timestep": acc["accuracy"]})
                print(f"{run_dir.name} noise {sigma:g}: {acc['accuracy'][-1]:.4f}", flush=True)
                with atomic_path(NOISE) as tmp:
                    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def noise_configs(rows: list[dict], curve: list[str]) -> list[str]:
    """The table and figure show every configuration measured so far, not only this call's
    `curve`: a call for one new configuration used to rewrite them with that one alone."""
    return list(dict.fromkeys([*(r["config"] for r in rows), *curve]))


def write_noise_outputs(rows: list[dict], configs: list[str]) -> None:
    """Table (mean +- sd over seeds) and figure of accuracy against pixel noise."""
    import matplotlib

    matplotlib.use("Agg")
    import pandas as pd
    import seaborn as sns

    frame = pd.DataFrame([r for r in rows if r["config"] in configs])
    stat = frame.groupby(["config", "noise_std"])["accuracy"].agg(["mean", "std", "count"])
    lines = ["| configuration | " + " | ".join(f"σ = {s:g}" for s in SIGMAS) + " |",
             "| --- |" + " --- |" * len(SIGMAS)]
    for config in configs:
        cells = []
        for sigma in SIGMAS:
            if (config, sigma) not in stat.index:
                cells.append("—")
                continue
            m, sd, n = stat.loc[(config, sigma)]
            cells.append(f"{100 * m:.2f}" + ("" if n < 2 else f" ± {100 * sd:.2f}") + f" (n={n:g})")
        lines.append(f"| {config} | " + " | ".join(cells) + " |")
    lines += ["", "Paired with the baseline of the same seed (difference in points [95% CI], n seeds):", "",
              lines[0], lines[1]]
    acc = {(r["config"], r["noise_std"]): {} for r in rows}
    for r in rows:
        acc[(r["config"], r["noise_std"])][r["seed"]] = r["accuracy"]
    for config in (c for c in configs if c != baseline_of(c)):
        cells = [diff_cell(paired(acc.get((config, sigma), {}), acc.get((baseline_of(config), sigma), {})),
                           baseline_of(config)) for sigma in SIGMAS]
        lines.append(f"| {config} | " + " | ".join(cells) + " |")
    with atomic_path(NOISE.with_suffix(".md")) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    ax = sns.lineplot(frame, x="noise_std", y="accuracy", hue="config", hue_order=configs,
                      errorbar="sd", marker="o")
    ax.set_xscale("symlog", linthresh=0.01)
    ax.set_xlim(0, 0.35)
    ax.set_xticks(SIGMAS, [f"{s:g}" for s in SIGMAS])
    ax.axhline(0.1, color="grey", linestyle=":", label="chance")
    ax.set(xlabel="Gaussian pixel noise sd (pixels in [0, 1])", ylabel="validation accuracy",
           title="Toy model, CIFAR-10: robustness to pixel noise (mean ± sd over seeds)")
    with atomic_path(NOISE.with_suffix(".png")) as tmp:
        ax.figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight")


def main() -> None:
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default="data")
    p.add_argument("--configs", default="baseline,paper")
    p.add_argument("--seeds", type=seed_list, default="0,1,2")
    p.add_argument("--epochs", type=positive_int, default=DEFAULT_EPOCHS)
    p.add_argument("--threads", type=positive_int, default=1, help="CPU threads per run (part of the protocol)")
    p.add_argument("--table-only", action="store_true")
    p.add_argument("--noise-curve", default=None, help="configurations to evaluate under noise")
    args = p.parse_args()
    configs = args.configs.split(",")
    curve = args.noise_curve.split(",") if args.noise_curve else []
    unknown = [c for c in configs + curve if c not in CONFIGS]
    if unknown:
        p.error(f"unknown configuration(s) {', '.join(unknown)}; known: {', '.join(CONFIGS)}")
    set_threads()
    if curve:
        rows = noise_curve(curve, args.data_root)
        write_noise_outputs(rows, noise_configs(rows, curve))
        return
    rows = ledger()
    if not args.table_only:
        for seed in args.seeds:
            for config in configs:
                if any(r["config"] == config and r["seed"] == seed and r["epochs"] == args.epochs
                       and "superseded" not in r for r in rows):
                    continue
                rows = append(run(config, seed, args.epochs, args.data_root, args.threads))
    write_tables(ledger())


if __name__ == "__main__":
    main()

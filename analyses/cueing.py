"""Cueing (Posner 1980): read-out accuracy and a reaction-time analogue under top-down cues.

    python -m gattanet_sim.experiment RUN_DIR --paradigm composite --n 1000 \\
        --conditions bottom-up,off,valid,neutral,invalid --signals logits,query \\
        --out data/recordings/composite.nc
    python analyses/cueing.py data/recordings/composite.nc --out results/composite

Writes cueing.csv (accuracy per condition/cue and time bin, Wilson 95% CIs over images, and
the paired difference to the neutral cue with a bootstrap 95% CI), reaction_times.csv (per
condition/cue: the first time bin, and its start in ms, at which the read-out's top-class
softmax probability exceeds --threshold; the fraction that never crosses; the accuracy of
the decision taken then; RT differences to the neutral cue; 95% CIs; crossed_fraction and
distinct_rts, the number of distinct RTs of the cue and the neutral cue together: with one
or two, an RT difference of 0 [0, 0] means "cannot measure") and cueing.png/.svg.
Biology: valid cues speed and improve detection, invalid ones slow and impair it.
"""

from __future__ import annotations

import sys

import matplotlib.pyplot as plt
import numpy as np

from gattanet_sim.analysis.cueing import cueing_accuracy, reaction_times
from gattanet_sim.analysis.output import all_or_nothing, write_figure, write_table
from gattanet_sim.cli import analysis_parser, main_guard
from gattanet_sim.recording import open_recording


def _bars(ax, values, low, high, labels, color) -> None:
    """Bars with 95% CI whiskers."""
    x = np.arange(len(values))
    ax.bar(x, values, color=color)
    ax.errorbar(x, values, yerr=[values - low, high - values], fmt="none", color="black", capsize=3)
    ax.set_xticks(x, labels)


@main_guard
@all_or_nothing
def main(argv: list[str] | None = None) -> int:
    p = analysis_parser("cueing", __doc__)
    p.add_argument("--threshold", type=float, default=0.5,
                   help="top-class softmax probability that counts as a decision (default 0.5)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = p.parse_args(argv)
    ds = open_recording(args.recording)
    table = cueing_accuracy(ds, seed=args.seed)
    times = reaction_times(ds, args.threshold, seed=args.seed) if "cue" in ds.coords and \
        len(set(ds["cue"].values.tolist())) > 1 else None
    write_table(table, args.out / "cueing.csv")
    if times is not None:
        write_table(times, args.out / "reaction_times.csv")
    last = table[table.time_bin == table.time_bin.max()].reset_index(drop=True)
    labels = [f"{c}\n{q}" if q != "none" else c for c, q in zip(last.condition, last.cue)]
    panels = 1 if times is None else 3
    fig, axes = plt.subplots(1, panels, figsize=(4.8 * panels, 3.8), squeeze=False)
    ax = axes[0, 0]
    _bars(ax, last.accuracy.to_numpy(), last.ci_low.to_numpy(), last.ci_high.to_numpy(), labels, "#4c72b0")
    ax.set(ylabel="target-class accuracy (95% CI)", ylim=(0, 1),
           title=f"Accuracy, last time bin ({last.images.iloc[0]} images each)")
    chance = 1 / ds.sizes["class"]
    ax.axhline(chance, color="grey", linestyle=":", label=f"chance 1/{ds.sizes['class']}")
    ax.legend(fontsize=8, loc="upper right")
    ax.title.set_fontsize(10)
    if times is not None:
        rt_labels = [f"{c}\n{q}" if q != "none" else c for c, q in zip(times.condition, times.cue)]
        unit = "ms" if times.rt_ms.notna().any() else "bin"
        rt = times[f"rt_{unit}"].to_numpy()
        ax = axes[0, 1]  # points, not bars: RTs differ by a fraction of a bin far from 0
        x = np.arange(len(rt))
        low, high = times[f"rt_{unit}_ci_low"].to_numpy(), times[f"rt_{unit}_ci_high"].to_numpy()
        ax.errorbar(x, rt, yerr=[rt - low, high - rt], fmt="o", color="#55a868", capsize=4, markersize=7)
        ax.set_xticks(x, rt_labels)
        ax.set_xlim(-0.5, len(rt) - 0.5)
        names = [q if q != "none" else c for c, q in zip(times.condition, times.cue)]  # off, bottom-up
        diffs = [f"{q} {d:+.2f}" for q, d in zip(names, times.get(f"rt_{unit}_minus_neutral", []))
                 if np.isfinite(d)]
        ax.set(ylabel=f"mean RT, {unit} (95% CI)",
               title=f"RT: first bin with top-class p > {args.threshold:g}\nnever crossed: "
                     + ", ".join(f"{q} {v:.0%}" for q, v in zip(names, times.never_fraction))
                     + (f"\nminus neutral (paired): {', '.join(diffs)} {unit}" if diffs else ""))
        ax = axes[0, 2]
        _bars(ax, times.accuracy_at_rt.to_numpy(), times.accuracy_ci_low.to_numpy(),
              times.accuracy_ci_high.to_numpy(), rt_labels, "#c44e52")
        ax.axhline(chance, color="grey", linestyle=":")
        ax.set(ylabel="decision accuracy at RT (95% CI)", ylim=(0, 1), title="Accuracy of the decision at RT")
        for a in axes[0]:
            a.title.set_fontsize(10)
    fig.tight_layout()
    write_figure(fig, args.out / "cueing")
    print(table.round(4).to_string(index=False))
    if times is not None:
        print()
        print(times.round(4).to_string(index=False))
        coarse = times[times.distinct_rts <= 2]
        if len(coarse):
            print(f"note: RTs take at most two values for {', '.join(coarse.cue)} (with the neutral cue): "
                  "their RT differences cannot be measured at this resolution", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

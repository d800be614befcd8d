"""Response gain, contrast gain, additive shift or activity gain: attention on contrast-response
functions.

    python -m gattanet_sim.experiment RUN_DIR --paradigm gratings --orientations 0,45,90,135 \\
        --contrasts series:0.1 --spatial-frequencies 0.5 --phases 0,90,180,270 \\
        --conditions neutral,valid --units 128 --out data/recordings/crf.nc
    python analyses/gain_model.py data/recordings/crf.nc --out results/crf

The unattended reference defaults to the neutral cue (the mean template). `--unattended
condition=off` still works, but under `off` every area is normalised with its first step's
batch-norm statistics, so R(template) / R(off) differs from 1 before any feature effect.

Writes gain_model.csv (per area: the fraction of units classed response gain, contrast gain,
additive shift, activity gain (the whole curve, baseline included, times a), no change, or a
poor fit, with Wilson 95% CIs; median g, k, d/|Rmax| and a with bootstrap 95% CIs),
gain_model_units.csv (every unit's fits, with p_vs_none: the Bonferroni-corrected F-test p of
its effect model against no change) and gain_model.png/.svg. An effect class needs that p
below --alpha; among the effect models that pass, the lowest AIC wins. Biology: the
normalisation model of attention (Reynolds & Heeger 2009) gives response gain for stimuli
large relative to the attention field, contrast gain for small ones; in V4 response and
contrast gain fitted about equally well (Williford & Maunsell 2006), and attention acted like a
x1.51 contrast increase (Reynolds, Pasternak & Desimone 2000).
"""

from __future__ import annotations

import sys

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

from gattanet_sim.analysis.common import describe, typed_selection
from gattanet_sim.analysis.gain_model import (
    ATTENDED,
    CLASSES,
    UNATTENDED,
    contrast_response_curves,
    gain_model_units,
    summarize,
)
from gattanet_sim.analysis.output import all_or_nothing, write_figure, write_table
from gattanet_sim.cli import add_selection_arguments, analysis_parser, main_guard
from gattanet_sim.recording import open_recording

CLASS_COLORS = dict(zip(CLASSES, ("#c44e52", "#4c72b0", "#55a868", "#dd8452", "#8c8c8c",
                                  "#dddddd")))
GAINS = (("g", "g: response gain (Rmax x g)", "#c44e52"),
         ("k", "k: contrast gain (c50 / k)", "#4c72b0"),
         ("a", "a: activity gain (R x a)", "#dd8452"))


def figure(table: pd.DataFrame, curves: pd.DataFrame, title: str) -> plt.Figure:
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), gridspec_kw={"width_ratios": [1.4, 1, 1]})
    fractions = table[(table.statistic == "fraction") & table.name.isin(CLASSES)]
    regions = list(dict.fromkeys(table.region))
    width = 0.8 / len(CLASSES)
    ax = axes[0]
    for i, name in enumerate(CLASSES):
        rows = fractions[fractions.name == name].set_index("region").reindex(regions)
        xs = np.arange(len(regions)) + (i - (len(CLASSES) - 1) / 2) * width
        ax.bar(xs, rows.value, width, color=CLASS_COLORS[name], edgecolor="black", linewidth=0.4,
               label=name)
        ax.vlines(xs, rows.ci_low, rows.ci_high, color="black", linewidth=0.8)
    counts = fractions.groupby("region", sort=False)["of"].first()
    ax.set_xticks(range(len(regions)), [f"{r}\n(n={counts[r]})" for r in regions])
    ax.set(ylim=(0, 1), ylabel="fraction of responsive units (Wilson 95% CI)",
           title="Class: F test against no change, then AIC")
    ax.legend(fontsize=8, ncol=2, loc="upper right")

    ax = axes[1]
    medians = table[(table.statistic == "median") & table.name.isin([g[0] for g in GAINS])]
    for offset, (name, label, color) in zip((-0.16, 0.0, 0.16), GAINS):
        rows = medians[medians.name == name].set_index("region").reindex(regions)
        xs = np.arange(len(regions)) + offset
        ax.errorbar(xs, rows.value, yerr=[rows.value - rows.ci_low, rows.ci_high - rows.value],
                    fmt="o", color=color, capsize=3, label=label)
        for x, (v, n) in zip(xs, zip(rows.value, rows["count"])):
            if np.isfinite(v):
                ax.annotate(f"{int(n)}", (x, v), textcoords="offset points", xytext=(5, -3), fontsize=7)
    ax.axhline(1.0, color="grey", linestyle=":")
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(FixedLocator([0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4]))
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_locator(NullLocator())
    ax.set_xticks(range(len(regions)), regions)
    ax.set(ylabel="median over units of that class (95% CI)", title="Size of the effect (n units)")
    ax.legend(fontsize=8)

    ax = axes[2]
    rates = [r for r in regions if (curves.loc[curves.region == r, ["attended", "unattended"]] >= 0).all().all()]
    for region, color in zip(rates, plt.cm.viridis(np.linspace(0, 0.9, len(rates)))):
        group = curves[curves.region == region]
        top = group.groupby("neuroid_id")["unattended"].transform("max")
        scale = top.where(top > 0)  # silent units have no curve to normalise
        normed = group.assign(att=group.attended / scale, un=group.unattended / scale).dropna()
        mean = normed.groupby("contrast")[["att", "un"]].mean()
        ax.plot(mean.index, mean.un, "--", color=color)
        ax.plot(mean.index, mean.att, "-", color=color, label=region)
    ax.plot([], [], "k--", label="unattended")
    ax.plot([], [], "k-", label="attended")
    ax.set(xlabel="contrast", ylabel="mean response / unit's unattended max",
           title="Contrast-response at the preferred stimulus (rate areas)")
    ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.text(0.01, -0.04, "Biology: normalisation model (Reynolds & Heeger 2009): response gain when the "
             "stimulus is large relative to the attention field, contrast gain when small. V4: "
             "response and contrast gain fit about equally well\n(Williford & Maunsell 2006); "
             "attention like a x1.51 contrast increase (Reynolds, Pasternak & Desimone 2000). "
             "Here the gratings are full-field.",
             fontsize=8, va="top")
    fig.tight_layout()
    return fig


@main_guard
@all_or_nothing
def main(argv: list[str] | None = None) -> int:
    p = analysis_parser("gain_model", __doc__)
    add_selection_arguments(p, describe(ATTENDED), describe(UNATTENDED))
    p.add_argument("--min-r2", type=float, default=0.8, help="below this R^2 a unit is a poor fit")
    p.add_argument("--alpha", type=float, default=0.05,
                   help="an effect class needs its F test against no change below alpha / 4 "
                        "(Bonferroni over the four effect models)")
    p.add_argument("--time-bin", type=int, default=None, help="default: the last")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = p.parse_args(argv)
    ds = open_recording(args.recording)
    attended, unattended = typed_selection(ds, args.attended), typed_selection(ds, args.unattended)
    units = gain_model_units(ds, attended, unattended, args.min_r2, time_bin=args.time_bin,
                             alpha=args.alpha)
    table = summarize(units, args.seed)
    curves = contrast_response_curves(ds, attended, unattended, args.time_bin)
    write_table(table, args.out / "gain_model.csv")
    write_table(units, args.out / "gain_model_units.csv")
    t = int(curves.time_bin.iloc[0])
    title = (f"Attention on contrast-response functions: {describe(args.attended)} vs {describe(args.unattended)}, "
             f"time bin {t}, R^2 >= {args.min_r2}, alpha {args.alpha}")
    write_figure(figure(table, curves, title), args.out / "gain_model")
    print(table.round(4).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

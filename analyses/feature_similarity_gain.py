"""Feature-similarity gain: a unit's gain against the similarity of the attended and its preferred feature.

    python -m gattanet_sim.experiment RUN_DIR --paradigm gratings --orientations 0,45,90,135 \\
        --contrasts 1 --spatial-frequencies 0.5 --phases 0,90,180,270 \\
        --conditions off,template --units 128 --out data/recordings/orientation_templates.nc
    python analyses/feature_similarity_gain.py data/recordings/orientation_templates.nc --out results/fsg

Writes feature_similarity_gain.csv (per area: slope of gain on cos 2(theta_pref - theta_att),
mean gain of similar and dissimilar unit/template pairs, bootstrap 95% CIs over units),
feature_similarity_units.csv (every (unit, template) sample) and feature_similarity_gain.png/.svg.
Biology: Treue & Martinez-Trujillo 1999: attending a feature scales a neuron's response by the
similarity of the attended feature to its preferred one (a positive slope); Lindsay & Miller
2018 modelled it in a CNN.
"""

from __future__ import annotations

import sys

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from gattanet_sim.analysis.common import describe, typed_selection
from gattanet_sim.analysis.feature_similarity import feature_similarity_units, summarize
from gattanet_sim.analysis.output import all_or_nothing, write_figure, write_table
from gattanet_sim.cli import add_selection_arguments, analysis_parser, main_guard
from gattanet_sim.recording import open_recording


def figure(table: pd.DataFrame, samples: pd.DataFrame, title: str) -> plt.Figure:
    regions = list(table.region)
    fig, axes = plt.subplots(1, len(regions) + 1, figsize=(3.2 * (len(regions) + 1), 3.4))
    bins = np.linspace(-1, 1, 9)
    for ax, (_, row) in zip(axes, table.iterrows()):
        group = samples[samples.region == row.region]
        x, y = group.similarity.to_numpy(), group.gain.to_numpy()
        ax.scatter(x, y, s=5, alpha=0.25, color="#4c72b0", linewidths=0)
        which = np.clip(np.digitize(x, bins) - 1, 0, len(bins) - 2)
        centres = (bins[:-1] + bins[1:]) / 2
        means = [y[which == i].mean() if (which == i).any() else np.nan for i in range(len(centres))]
        ax.plot(centres, means, "o-", color="black", markersize=3, label="binned mean")
        line = np.array([-1, 1])
        ax.plot(line, row.intercept + row.slope * line, color="#c44e52", label="least squares")
        ax.axhline(1.0, color="grey", linestyle=":", linewidth=0.8)
        low, high = np.nanpercentile(y, [1, 99])
        pad = 0.1 * (high - low + 1e-9)
        ax.set_ylim(low - pad, high + pad)
        ax.set(xlabel="similarity cos 2(pref - attended)", title=f"{row.region}: slope {row.slope:.3f}\n"
               f"[{row.slope_ci_low:.3f}, {row.slope_ci_high:.3f}], {row.units} units")
    axes[0].set_ylabel("gain = R attended / R off (y: 1-99th pct)")
    axes[0].legend(fontsize=7)
    ax = axes[-1]
    xs = np.arange(len(regions))
    ax.errorbar(xs, table.slope, yerr=[table.slope - table.slope_ci_low, table.slope_ci_high - table.slope],
                fmt="o", color="#c44e52", capsize=3)
    ax.axhline(0.0, color="grey", linestyle=":")
    ax.set_xticks(xs, regions)
    ax.set(ylabel="slope of gain on similarity (95% CI)", title="Feature-similarity gain\n"
           "(biology: slope > 0)")
    fig.suptitle(title, fontsize=10)
    fig.text(0.01, -0.03, "Biology: attention to a feature scales a neuron's response by the similarity of the "
             "attended feature to its preferred one (Treue & Martinez-Trujillo 1999); in a CNN: "
             "Lindsay & Miller 2018.", fontsize=8, va="top")
    fig.tight_layout()
    return fig


@main_guard
@all_or_nothing
def main(argv: list[str] | None = None) -> int:
    p = analysis_parser("feature_similarity_gain", __doc__)
    add_selection_arguments(p, "cue=attend")
    p.add_argument("--feature", default="orientation")
    p.add_argument("--period", type=float, default=180.0, help="of the feature, degrees")
    p.add_argument("--min-response", type=float, default=0.1,
                   help="leave out units below this fraction of their area's median response")
    p.add_argument("--time-bin", type=int, default=None, help="default: the last")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = p.parse_args(argv)
    ds = open_recording(args.recording)
    samples = feature_similarity_units(ds, typed_selection(ds, args.unattended), typed_selection(ds, args.attended),
                                       args.feature, args.period, args.time_bin,
                                       min_response=args.min_response)
    table = summarize(samples, args.seed)
    write_table(table, args.out / "feature_similarity_gain.csv")
    write_table(samples, args.out / "feature_similarity_units.csv")
    title = (f"Feature-similarity gain ({args.feature}): {describe(args.attended)} vs {describe(args.unattended)}, "
             f"time bin {int(table.time_bin.iloc[0])}")
    write_figure(figure(table, samples, title), args.out / "feature_similarity_gain")
    print(table.round(4).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

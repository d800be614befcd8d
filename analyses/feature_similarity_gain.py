"""Feature-similarity gain: a unit's gain against the similarity of the attended and its preferred feature.

    python -m gattanet_sim.experiment RUN_DIR --paradigm gratings --orientations 0,45,90,135 \\
        --contrasts 1 --spatial-frequencies 0.5 --phases 0,90,180,270 \\
        --conditions off,template --units 128 --out data/recordings/orientation_templates.nc
    python analyses/feature_similarity_gain.py data/recordings/orientation_templates.nc --out results/fsg

Writes feature_similarity_gain.csv (per area: slope of gain on cos 2(theta_pref - theta_att),
mean gain of similar and dissimilar unit/template pairs, bootstrap 95% CIs over units),
feature_similarity_units.csv (every (unit, template) sample) and feature_similarity_gain.png/.svg
(the slope per area as the headline, the mean gains, and every sample on y-limits shared across
areas, with the gain of 1 drawn).
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
from gattanet_sim.analysis.feature_similarity import SIMILAR, feature_similarity_units, summarize
from gattanet_sim.analysis.output import all_or_nothing, write_figure, write_table
from gattanet_sim.cli import add_selection_arguments, analysis_parser, main_guard
from gattanet_sim.recording import open_recording

SELECTION_NAMES = {("cue", "attend"): "attending a template (each orientation in turn)",
                   ("condition", "off"): "no attention (off)", ("condition", "bottom-up"): "bottom-up attention"}


def readable(where) -> str:
    """A selection for a reader: {"cue": "neutral"} -> "the neutral cue", else its COORD=VALUE form."""
    if len(where) == 1:
        (key, value), = where.items()
        if (key, str(value)) in SELECTION_NAMES:
            return SELECTION_NAMES[(key, str(value))]
        if key == "cue":
            return f"the {value} cue"
    return describe(where)


def _gain_limits(*arrays) -> tuple[float, float]:
    """Shared gain limits: 0.5 to 1.5 unless the data leave that range, then symmetric about 1
    (not below 0 when no gain is negative), padded 5%."""
    v = np.concatenate([np.ravel(np.asarray(a, float)) for a in arrays])
    v = v[np.isfinite(v)]
    half = max(0.5, float(np.abs(v - 1).max()) if len(v) else 0.5)
    lo, hi = 1 - half, 1 + half
    if len(v) and v.min() >= 0:
        lo = max(lo, 0.0)
    pad = 0.05 * (hi - lo)
    return lo - pad, hi + pad


def figure(table: pd.DataFrame, samples: pd.DataFrame, title: str) -> plt.Figure:
    """Headline: the slope of gain on similarity per area (95% CI over units, biology > 0) and
    the mean gain of similar and dissimilar pairs; below, every (unit, template) sample per area
    on y-limits shared across areas that hold every sample and CI and the gain of 1."""
    regions = list(table.region)
    n = max(len(regions), 2)
    fig = plt.figure(figsize=(3.4 * n, 7.6))
    grid = fig.add_gridspec(2, 2 * n, height_ratios=[1, 1.15])
    half = n  # columns per headline panel
    slope_ax = fig.add_subplot(grid[0, :half])
    level_ax = fig.add_subplot(grid[0, half:])
    axes = [fig.add_subplot(grid[1, 2 * i:2 * i + 2]) for i in range(len(regions))]
    for ax in axes[1:]:
        ax.sharey(axes[0])
    # headline: slope per area
    xs = np.arange(len(regions))
    slope_ax.axhline(0.0, color="black", linewidth=1, label="0: gain independent of similarity")
    slope_ax.errorbar(xs, table.slope, yerr=[table.slope - table.slope_ci_low, table.slope_ci_high - table.slope],
                      fmt="o", color="#c44e52", capsize=4, markersize=6)
    slope_ax.set_xticks(xs, [f"{r}\n{u} units" for r, u in zip(regions, table.units)])
    span = np.concatenate([table.slope_ci_low, table.slope_ci_high, table.slope, [0.0]]).astype(float)
    span = span[np.isfinite(span)]
    pad = 0.1 * (span.max() - span.min()) if span.max() > span.min() else 0.05
    slope_ax.set(xlim=(-0.5, len(regions) - 0.5), ylim=(span.min() - pad, span.max() + pad),
                 ylabel="slope of gain on similarity",
                 title="Slope of gain on similarity per area (biology: > 0)\n95% CI: bootstrap over units")
    slope_ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0, -0.22), frameon=False)
    # mean gain of similar and dissimilar pairs, per area
    width = 0.18
    for shift, name, colour, label in ((-width, "gain_similar", "#4c72b0", f"similar (cos > {SIMILAR:g})"),
                                       (width, "gain_dissimilar", "#dd8452", f"dissimilar (cos < -{SIMILAR:g})")):
        y = table[name].to_numpy(float)
        level_ax.errorbar(xs + shift, y, yerr=[y - table[f"{name}_ci_low"], table[f"{name}_ci_high"] - y], fmt="o",
                          color=colour, capsize=4, markersize=6, label=label)
    level_ax.axhline(1.0, color="black", linewidth=1, label="gain 1: no change")
    level_ax.set_xticks(xs, regions)
    level_ax.set(xlim=(-0.5, len(regions) - 0.5), ylabel="mean gain R attended / R unattended",
                 ylim=_gain_limits(table.gain_similar_ci_low, table.gain_similar_ci_high,
                                   table.gain_dissimilar_ci_low, table.gain_dissimilar_ci_high, [1.0]),
                 title="Mean gain of similar and dissimilar pairs\n95% CI: bootstrap over units")
    level_ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0, -0.13), frameon=False, ncol=3)
    # every sample, per area, on shared limits
    bins = np.linspace(-1, 1, 9)
    centres = (bins[:-1] + bins[1:]) / 2
    line = np.array([-1, 1])
    shown = [samples.gain.to_numpy(float), [1.0]]
    for ax, (_, row) in zip(axes, table.iterrows()):
        group = samples[samples.region == row.region]
        x, y = group.similarity.to_numpy(), group.gain.to_numpy()
        ax.scatter(x, y, s=6, alpha=0.3, color="#4c72b0", linewidths=0, label="one unit and template")
        which = np.clip(np.digitize(x, bins) - 1, 0, len(bins) - 2)
        means = np.array([y[which == i].mean() if (which == i).any() else np.nan for i in range(len(centres))])
        ax.plot(centres, means, "o-", color="#2ca02c", markersize=3, linewidth=1.2, label="binned mean")
        fit = row.intercept + row.slope * line
        ax.plot(line, fit, color="#c44e52", linewidth=1.6, label="least squares")
        for lo_x, hi_x, name in ((SIMILAR, 1.0, "gain_similar"), (-1.0, -SIMILAR, "gain_dissimilar")):
            ax.fill_between([lo_x, hi_x], row[f"{name}_ci_low"], row[f"{name}_ci_high"], color="#dd8452",
                            alpha=0.45, linewidth=0, label=f"mean gain, |cos| > {SIMILAR:g} (95% CI over units)")
        ax.axhline(1.0, color="black", linestyle="--", linewidth=1.1, zorder=3, label="gain 1: no change")
        shown += [means, fit, [row[f"{k}_ci_{end}"] for k in ("gain_similar", "gain_dissimilar")
                               for end in ("low", "high")]]
        ax.set(xlabel="similarity cos 2(pref − attended)",
               title=f"{row.region}: slope {row.slope:.3f} [{row.slope_ci_low:.3f}, {row.slope_ci_high:.3f}]\n"
                     f"{row.units} units, {len(group)} samples")
    if axes:
        axes[0].set_ylim(_gain_limits(*shown))
        axes[0].set_ylabel("gain = R attended / R unattended\n(every sample; y shared: symmetric about 1, floor 0)")
        for ax in axes[1:]:
            ax.tick_params(labelleft=False)
        handles, labels = axes[0].get_legend_handles_labels()
        keep = dict(zip(labels, handles))
        fig.legend(keep.values(), keep.keys(), loc="lower center", ncol=len(keep), fontsize=8, frameon=False,
                   bbox_to_anchor=(0.5, 0.035))
    for ax in fig.axes:
        ax.title.set_fontsize(9.5)
    fig.suptitle(title, fontsize=10.5)
    fig.text(0.5, 0.005, "Biology: attention to a feature scales a neuron's response by the similarity of the "
             "attended feature to its preferred one (Treue & Martinez-Trujillo 1999); in a CNN: "
             "Lindsay & Miller 2018.", fontsize=8, ha="center", va="bottom")
    fig.tight_layout(rect=(0, 0.07, 1, 0.97))
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
    title = (f"Feature-similarity gain ({args.feature}): {readable(args.attended)} vs {readable(args.unattended)} "
             f"({describe(args.attended)} vs {describe(args.unattended)}), time bin {int(table.time_bin.iloc[0])}")
    write_figure(figure(table, samples, title), args.out / "feature_similarity_gain")
    print(table.round(4).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

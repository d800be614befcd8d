"""Attentional modulation index (AMI) per area and time bin, and its growth along the hierarchy.

    python -m gattanet_sim.experiment RUN_DIR --paradigm gratings --conditions neutral,valid \\
        --units 128 --out data/recordings/gratings.nc
    python analyses/modulation_index.py data/recordings/gratings.nc --out results/gratings

Writes modulation_index.csv (per area x time bin: units, mean AMI with a bootstrap 95% CI over
units, median AMI, population ratio R_att / R_unatt with a CI), modulation_index_hierarchy.csv
(the hierarchy finding, at the last time bin: per area in hierarchy order, |mean AMI| and its
difference to the first area, 95% CIs from resampling each area's units),
modulation_index_trend.csv (kept for compatibility: Spearman correlation of area position and
unit AMI, and |AMI|, over units treated as independent, so its CI is far too narrow) and
modulation_index.png/.svg. Attended and unattended presentations are matched by
(stimulus_id, repetition); by default cue=valid vs cue=neutral (the mean template). With
--unattended condition=off every area is normalised with the batch-norm statistics of its first
step: R(template) / R(off) is 0.36 in V1 of the recipe's model before any feature effect.
Biology: AMI grows along the hierarchy, V1 < V4 < IT (McAdams & Maunsell 1999; Luck et al.
1997; Maunsell & Cook 2002).
"""

from __future__ import annotations

import sys

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from gattanet_sim.analysis.common import AnalysisError, describe
from gattanet_sim.analysis.modulation_index import (
    BIOLOGY,
    MONKEY_AMI,
    UNATTENDED,
    hierarchy_magnitude,
    hierarchy_trend,
    modulation_index,
    unit_ami,
)
from gattanet_sim.analysis.output import all_or_nothing, write_figure, write_table
from gattanet_sim.cli import add_selection_arguments, analysis_parser, main_guard
from gattanet_sim.recording import open_recording


@main_guard
@all_or_nothing
def main(argv: list[str] | None = None) -> int:
    p = analysis_parser("modulation_index", __doc__)
    p.add_argument("--min-response", type=float, default=1e-3, help="least R_att + R_unatt of a unit")
    add_selection_arguments(p, unattended=describe(UNATTENDED))
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = p.parse_args(argv)
    ds = open_recording(args.recording)
    kwargs = dict(attended=args.attended, unattended=args.unattended, min_response=args.min_response,
                  seed=args.seed)
    table, trend = modulation_index(ds, **kwargs), hierarchy_trend(ds, **kwargs)
    if table.units.sum() == 0:
        raise AnalysisError("modulation_index: no unit responds above --min-response")
    levels = hierarchy_magnitude(ds, **kwargs)
    write_table(table, args.out / "modulation_index.csv")
    write_table(levels, args.out / "modulation_index_hierarchy.csv")
    write_table(trend, args.out / "modulation_index_trend.csv")

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1, 1.3]})
    regions = list(dict.fromkeys(table.region))
    palette = dict(zip(regions, sns.color_palette("viridis", len(regions))))
    timed = "time_bin_start" in ds  # ms after onset per area and bin, where the recording says
    onset = ds["time_bin_start"].groupby("region").min("neuroid") if timed else None  # (region, time_bin)
    for region, rows in table.groupby("region", sort=False):
        ms = (onset.sel(region=region).values[[list(ds["time_bin"].values).index(t) for t in rows.time_bin]]
              if timed else rows.time_bin)
        left.errorbar(ms, rows.mean_ami, yerr=[rows.mean_ami - rows.ami_ci_low,
                      rows.ami_ci_high - rows.mean_ami], marker="o", capsize=3, label=region, color=palette[region])
    left.axhline(0, color="grey", linestyle=":")
    axis = "time after stimulus onset (ms; each area's own bins)" if timed else "time bin"
    left.set(xlabel=axis, ylabel="mean AMI (95% CI over units)",
             title="Modulation over time")
    left.legend(frameon=False, fontsize=8)
    last = table[table.time_bin == table.time_bin.max()]
    x = np.arange(len(last))
    units = unit_ami(ds, args.attended, args.unattended, args.min_response)
    for k, region in enumerate(last.region):  # every unit's AMI: the distribution, not only its mean
        values = units.ami[units.region == region].to_numpy()
        if len(values) > 1:
            parts = right.violinplot(values, [k], widths=0.7, showextrema=False)
            for body in parts["bodies"]:
                body.set(facecolor=palette[region], alpha=0.35)
    right.errorbar(x, last.mean_ami, yerr=[last.mean_ami - last.ami_ci_low, last.ami_ci_high - last.mean_ami],
                   fmt="o", color="black", capsize=3, label="mean (95% CI)")
    right.scatter(x, last.median_ami, marker="_", s=300, color="crimson", zorder=3, label="median")
    for k, region in enumerate(last.region):
        if region in MONKEY_AMI:
            right.hlines(MONKEY_AMI[region], k - 0.4, k + 0.4, color="darkorange", linewidth=2.5,
                         label="monkey (McAdams & Maunsell 1999)" if k == list(last.region).index(
                             next(r for r in last.region if r in MONKEY_AMI)) else None)
    right.set_xticks(x, [f"{r}\nratio {q:.2f}\n[{lo:.2f}, {hi:.2f}]\n{n} units" for r, q, lo, hi, n in
                         zip(last.region, last.ratio, last.ratio_ci_low, last.ratio_ci_high, last.units)], fontsize=8)
    right.axhline(0, color="grey", linestyle=":")
    row = trend.iloc[0]
    growth = "no responding unit"
    if len(levels):
        top = levels.iloc[-1]
        growth = (f"|mean AMI| {top.region} - {levels.region.iloc[0]} = {top.minus_first:+.3f} "
                  f"[{top.minus_first_ci_low:+.3f}, {top.minus_first_ci_high:+.3f}]")
    if len(units):  # the bulk of the units and biology's marks; a few extreme units may lie beyond
        low, high = np.percentile(units.ami, [2, 98])
        right.set_ylim(min(low, 0) - 0.02, max(high, *MONKEY_AMI.values()) + 0.02)
    right.set(ylabel="unit AMI at the last time bin\n(axis: 2nd-98th percentile of units)",
              title=f"t={row.time_bin}: {growth}\n(units resampled per area); Spearman(area, AMI) "
                    f"over units = {row.spearman_rho:.2f}")
    right.legend(frameon=False, fontsize=8, loc="lower left")
    left_out = f"; left out (not rates): {', '.join(table.attrs['left_out'])}" if table.attrs["left_out"] else ""
    fig.suptitle(f"Attentional modulation index (R_att - R_unatt)/(R_att + R_unatt): {describe(args.attended)} "
                 f"vs {describe(args.unattended)}, {int(table.pairs.iloc[0])} matched presentations",
                 fontsize=10)
    fig.text(0.01, -0.08, f"{BIOLOGY}\nratio = mean R_att / mean R_unatt over the units (95% CI){left_out}.",
             fontsize=8, ha="left")
    fig.tight_layout()
    write_figure(fig, args.out / "modulation_index")
    print(table.round(4).to_string(index=False))
    print(levels.round(4).to_string(index=False))
    print(trend.round(4).to_string(index=False))
    if table.attrs["left_out"]:
        print(f"left out (activity below 0, not a rate): {', '.join(table.attrs['left_out'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

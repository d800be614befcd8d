"""Time course of attentional modulation per area: when it starts, and in which order.

    python -m gattanet_sim.experiment runs/gpu/cascade-T6-norm-6-s0 --paradigm gratings \\
        --conditions off,valid --timesteps 6 --units 128 --out data/recordings/cascade.nc
    python analyses/time_course.py data/recordings/cascade.nc --out results/cascade

Writes time_course.csv (per area x time bin: the population modulation, mean over units of
R_att - R_unatt per matched presentation pair, its mean with a bootstrap CI over pairs, whether
the CI excludes 0, and the relative modulation), time_course_onsets.csv (per area: first
significant time bin and its ms, the rank in the onset order, the Spearman correlation of
hierarchy position and onset, 95% CIs from resampling pairs; min_onset, min_onsets and forced:
the earliest step the architecture lets attention change each area, and whether every onset
sits there, in which case the onset order measures the architecture, not what was learned)
and time_course.png/.svg.
Biology: modulation larger and earlier in V4 than V2 than V1 (Buffalo et al. 2010; Mehta et al. 2000).
"""

from __future__ import annotations

import sys

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from gattanet_sim.analysis.common import describe
from gattanet_sim.analysis.output import all_or_nothing, write_figure, write_table
from gattanet_sim.analysis.time_course import BIOLOGY, time_course
from gattanet_sim.cli import add_selection_arguments, analysis_parser, main_guard
from gattanet_sim.recording import open_recording


@main_guard
@all_or_nothing
def main(argv: list[str] | None = None) -> int:
    p = analysis_parser("time_course", __doc__)
    add_selection_arguments(p)
    p.add_argument("--alpha", type=float, default=0.05, help="a bin is significant where its 1-alpha CI excludes 0")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = p.parse_args(argv)
    if not 0 < args.alpha < 1:
        p.error(f"--alpha must be between 0 and 1, got {args.alpha}")
    table, onsets = time_course(open_recording(args.recording), attended=args.attended,
                                unattended=args.unattended, alpha=args.alpha, seed=args.seed)
    write_table(table, args.out / "time_course.csv")
    write_table(onsets, args.out / "time_course_onsets.csv")

    in_ms = table.time_ms.notna().all()
    x = "time_ms" if in_ms else "time_bin"
    fig, ax = plt.subplots(figsize=(7.5, 4))
    regions = list(dict.fromkeys(table.region))
    palette = dict(zip(regions, sns.color_palette("viridis", len(regions))))
    onset_at = onsets.set_index("region")
    step = np.diff(np.sort(table[x].unique()))
    dodge = (step.min() if len(step) else 1.0) * 0.06  # areas side by side within a bin
    for i, (region, rows) in enumerate(table.groupby("region", sort=False)):
        color, at = palette[region], rows[x] + (i - (len(regions) - 1) / 2) * dodge
        onset = onset_at.loc[region, "onset_ms" if in_ms else "onset_bin"]
        label = f"{region}: onset {onset:g}{' ms' if in_ms else ''}" if np.isfinite(onset) else f"{region}: no onset"
        ax.errorbar(at, rows.relative * 100, yerr=[(rows.relative - rows.relative_ci_low) * 100,
                    (rows.relative_ci_high - rows.relative) * 100], color=color, capsize=2, label=label)
        ax.scatter(at[~rows.significant], rows.relative[~rows.significant] * 100, facecolor="white",
                   edgecolor=color, zorder=3)
        ax.scatter(at[rows.significant], rows.relative[rows.significant] * 100, color=color, zorder=3)
        if np.isfinite(onset):
            ax.axvline(onset, color=color, linestyle="--", linewidth=0.8)
    ax.axhline(0, color="grey", linestyle=":")
    row = onsets.iloc[0]
    forced = row.forced == 1  # NaN (attributes missing) is not forced
    ax.set(xlabel="time bin start (ms)" if in_ms else "time bin",
           ylabel="modulation, % of the unattended response",
           title=f"{describe(args.attended)} vs {describe(args.unattended)}: onset order "
                 f"{onsets.attrs['order']}\nSpearman(area position, onset) = {row.spearman_rho:.2f} "
                 f"[{row.rho_ci_low:.2f}, {row.rho_ci_high:.2f}]"
                 + ("\nevery onset at its architectural minimum: the order is forced" if forced else ""))
    ax.legend(frameon=False, fontsize=8)
    fig.text(0.01, -0.1, f"Filled: the {1 - args.alpha:.0%} CI of the mean R_att - R_unatt over presentation "
             f"pairs excludes 0; dashed: onset (first significant bin);\n"
             "bars: 95% CIs of the relative modulation; no point: area silent. "
             f"{BIOLOGY}", fontsize=8, ha="left", wrap=True)
    fig.tight_layout()
    write_figure(fig, args.out / "time_course")
    print(table.round(4).to_string(index=False))
    print(onsets.round(4).to_string(index=False))
    print(f"onset order: {onsets.attrs['order']}")
    if onsets["min_onsets"].iloc[0]:
        print(f"architectural minimum onsets: {onsets['min_onsets'].iloc[0]}"
              + ("; every onset sits on it: the order is forced by the architecture" if forced else ""))
    else:
        print("architectural minimum onsets: unknown (the recording lacks model_config/mode)")
    if table.attrs["left_out"]:
        print(f"left out (activity below 0, not a rate): {', '.join(table.attrs['left_out'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Attending to one of two stimuli in a receptive field: responses per area, from a recording.

    python -m gattanet_sim.experiment RUN_DIR --paradigm two_stimulus --units all \\
        --conditions bottom-up,template,off --out data/recordings/two_stimulus.nc
    python analyses/paired_stimuli.py data/recordings/two_stimulus.nc --out results/two_stimulus

Writes paired_stimuli.csv (per area: responses to the pair when the unit's preferred stimulus,
the other one, or nothing is attended; ratios with bootstrap 95% CIs) and paired_stimuli.png/.svg.
Biology (Moran & Desimone 1985; Reynolds et al. 1999): attending the preferred stimulus
raises the response to the pair, attending the other lowers it.
"""

from __future__ import annotations

import sys

import seaborn as sns

from gattanet_sim.analysis.output import all_or_nothing, write_figure, write_table
from gattanet_sim.analysis.paired_stimuli import attention_to_preferred
from gattanet_sim.cli import analysis_parser, main_guard
from gattanet_sim.recording import open_recording


@main_guard
@all_or_nothing
def main(argv: list[str] | None = None) -> int:
    p = analysis_parser("paired_stimuli", __doc__, "the table and figure")
    p.add_argument("--min-selectivity", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = p.parse_args(argv)
    table = attention_to_preferred(open_recording(args.recording), min_selectivity=args.min_selectivity,
                                   seed=args.seed)
    write_table(table, args.out / "paired_stimuli.csv")
    names = {"preferred_over_other": "attend preferred / attend other",
             "preferred_over_off": "attend preferred / off"}
    long = table.melt(id_vars="region", value_vars=list(names), var_name="comparison", value_name="ratio")
    long["comparison"] = long["comparison"].map(names)
    grid = sns.catplot(long, x="region", y="ratio", hue="comparison", kind="bar", height=3.2, aspect=1.6)
    ax = grid.ax
    for bars, name in zip(ax.containers, names):
        lows, highs = table[f"{name}_ci_low"], table[f"{name}_ci_high"]
        xs = [b.get_x() + b.get_width() / 2 for b in bars]
        ax.vlines(xs, lows, highs, color="black", linewidth=1)
    ax.axhline(1.0, color="grey", linestyle=":")
    ax.set(ylabel="mean response ratio (95% CI)",
           title="Pair display: attend the preferred stimulus vs the other / vs off")
    write_figure(grid.figure, args.out / "paired_stimuli")
    print(table.round(4).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

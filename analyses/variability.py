"""Trial-to-trial variability under attention: Fano factors and noise correlations per area.

    python -m gattanet_sim.experiment RUN_DIR --paradigm gratings --conditions neutral,valid \\
        --units 128 --trials 8 --unit-noise 0.3 --out data/recordings/gratings_trials.nc
    python analyses/variability.py data/recordings/gratings_trials.nc --out results/gratings

Writes variability.csv (per area: mean Fano factor of a spike-count proxy attended and
unattended, their paired difference, mean pairwise noise correlation attended and unattended
and their difference, each with a bootstrap 95% CI over units or pairs; whether the unattended
correlation's CI lies above 0, i.e. whether there was any correlation to reduce) and
variability.png/.svg. Counts = max(rate, 0) x a scale. By default each selection gets its own
scale, which makes its mean count over the area 10 (mean-matched): the Fano factor then
measures variability relative to the mean, and a pure gain on rate and noise leaves it
unchanged. --shared-count-scale (or --count-scale X) uses one scale for both selections (the
one that makes the unattended mean count 10, or X): a gain g then multiplies the Fano factor by
g, so any enhancement reads as more variability. By default cue=valid vs cue=neutral.
Biology: attention lowers Fano factors (Mitchell et al. 2007) and noise correlations (Cohen &
Maunsell 2009; Mitchell et al. 2009).
"""

from __future__ import annotations

import sys

import matplotlib.pyplot as plt
import numpy as np

from gattanet_sim.analysis.common import describe
from gattanet_sim.analysis.modulation_index import UNATTENDED
from gattanet_sim.analysis.output import all_or_nothing, write_figure, write_table
from gattanet_sim.analysis.variability import BIOLOGY, MEAN_COUNT, variability
from gattanet_sim.cli import add_selection_arguments, analysis_parser, main_guard, positive_int
from gattanet_sim.recording import open_recording


def _bars(ax: plt.Axes, table, name: str, ylabel: str) -> None:
    """Unattended and attended bars per area with 95% CIs, the change written under each area."""
    x = np.arange(len(table))
    for offset, side, color in ((-0.2, "unattended", "#999999"), (0.2, "attended", "#4c72b0")):
        mean = table[f"{name}_{side}"]
        ax.bar(x + offset, mean, width=0.4, color=color, label=side)
        ax.errorbar(x + offset, mean, yerr=[mean - table[f"{name}_{side}_ci_low"],
                                            table[f"{name}_{side}_ci_high"] - mean],
                    fmt="none", color="black", capsize=3)
    gains = (table.mean_count_attended / table.count_scale_attended) / (
        table.mean_count_unattended / table.count_scale_unattended)  # (area,) mean rate ratio
    counts = [f"\ncount {u:.1f} -> {a:.1f}, rate x{g:.2f}" if name == "fano" else
              ("\nunattended r > 0" if above else "\nunattended r not > 0: nothing to reduce")
              for u, a, g, above in zip(table.mean_count_unattended, table.mean_count_attended, gains,
                                        table.r_unattended_excludes_0)]
    ax.set_xticks(x, [f"{r}\nchange {c:+.3f}\n[{lo:+.3f}, {hi:+.3f}]{n}" for r, c, lo, hi, n in
                      zip(table.region, table[f"{name}_change"], table[f"{name}_change_ci_low"],
                          table[f"{name}_change_ci_high"], counts)], fontsize=8)
    ax.set_ylabel(ylabel)
    ax.legend(frameon=False, fontsize=8)


@main_guard
@all_or_nothing
def main(argv: list[str] | None = None) -> int:
    p = analysis_parser("variability", __doc__, "the table and figure")
    add_selection_arguments(p, unattended=describe(UNATTENDED))
    p.add_argument("--count-scale", type=float, default=None,
                   help="counts per unit of rate, one for both selections (implies --shared-count-scale)")
    p.add_argument("--shared-count-scale", action="store_true",
                   help="one count scale per area for both selections (default: each selection its own, "
                        f"mean count {MEAN_COUNT:g}); penalises any enhancement: "
                        "a gain g multiplies the Fano factor by g")
    p.add_argument("--max-pairs-units", type=positive_int, default=64, help="units per area for noise correlations")
    p.add_argument("--time-bin", type=int, default=None, help="default: the last")
    p.add_argument("--seed", type=int, default=0, help="bootstrap and unit-sampling seed")
    args = p.parse_args(argv)
    if args.count_scale is not None and not args.count_scale > 0:
        p.error(f"--count-scale must be > 0, got {args.count_scale}")
    table = variability(open_recording(args.recording), attended=args.attended, unattended=args.unattended,
                        count_scale=args.count_scale, max_pairs_units=args.max_pairs_units,
                        time_bin=args.time_bin, seed=args.seed,
                        mean_matched=not (args.shared_count_scale or args.count_scale is not None))
    write_table(table, args.out / "variability.csv")
    shown = table.dropna(subset=["fano_change"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    _bars(left, shown, "fano", "mean Fano factor of the count proxy (95% CI)")
    left.set_title("Fano factor (var / mean over trials)")
    _bars(right, shown, "r", "mean noise correlation r (95% CI)")
    right.set_title(f"Noise correlations (up to {args.max_pairs_units} units per area)")
    right.axhline(0, color="grey", linestyle=":")
    first = table.iloc[0]
    fig.suptitle(f"Trial-to-trial variability, {describe(args.attended)} vs {describe(args.unattended)}: "
                 f"time bin {first.time_bin}, {first.stimuli} stimuli x {first.trials} trials", fontsize=10)
    if table.attrs["mean_matched"]:
        scale = (f"mean-matched counts: each selection scaled to a mean count of {MEAN_COUNT:g} per area, so the "
                 "Fano factor is variability relative to the mean and a pure gain leaves it unchanged")
    else:
        scale = ("one count scale per area for both selections: " + ", ".join(
            f"{r} {s:.3g}" for r, s in zip(table.region, table.count_scale))
            + (f" (mean unattended count {MEAN_COUNT:g})" if args.count_scale is None else "")
            + "; a gain g on rate and noise multiplies the Fano factor by g")
    fig.text(0.01, -0.12, f"{scale}.\nChanges: attended - unattended, paired bootstrap over units / pairs; "
             "count: mean count unattended -> attended, rate: mean rate ratio attended / unattended.\n"
             f"{BIOLOGY}", fontsize=8, ha="left")
    fig.tight_layout()
    write_figure(fig, args.out / "variability")
    print(table.round(4).to_string(index=False))
    if table.attrs["left_out"]:
        print(f"left out (activity below 0, not a rate): {', '.join(table.attrs['left_out'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

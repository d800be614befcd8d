"""Robustness to pixel noise (the paper's Fig. 2a): accuracy against noise sd, per condition.

    python -m gattanet_sim.experiment RUN_DIR --paradigm noisy --n 5000 \\
        --sigmas 0,0.05,0.1,0.2,0.3 --conditions bottom-up,off --signals logits \\
        --out data/recordings/noisy.nc
    python analyses/noise_robustness.py data/recordings/noisy.nc --out results/noisy

Writes noise_robustness.csv (accuracy per condition x noise sd x time bin, Wilson 95% CIs
over images; the paired difference to the `off` condition with a bootstrap 95% CI) and
noise_robustness.png/.svg: accuracy against sd, one line per condition and time bin.
Note: the noisy paradigm takes the first --n images of the split; a class-sorted split
needs all of it (or enough to hold every class). Biology: attention helps most where the
stimulus is degraded.
"""

from __future__ import annotations

import sys

import matplotlib.pyplot as plt
import seaborn as sns

from gattanet_sim.analysis.noise_robustness import noise_robustness
from gattanet_sim.analysis.output import all_or_nothing, write_figure, write_table
from gattanet_sim.cli import analysis_parser, main_guard
from gattanet_sim.io import UsageError
from gattanet_sim.recording import open_recording


@main_guard
@all_or_nothing
def main(argv: list[str] | None = None) -> int:
    p = analysis_parser("noise_robustness", __doc__, "the table and figure")
    p.add_argument("--reference", default=None,
                   help="condition the others are compared to (default off, where it was recorded)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = p.parse_args(argv)
    ds = open_recording(args.recording)
    recorded = set(ds["condition"].values.tolist()) if "condition" in ds.coords else set()
    if args.reference is not None and args.reference not in recorded:  # asked for: never dropped quietly
        raise UsageError(f"--reference {args.reference}: no such condition in {args.recording} "
                         f"(it has {', '.join(sorted(recorded)) or 'none'})")
    table = noise_robustness(ds, reference=args.reference or "off", seed=args.seed)
    write_table(table, args.out / "noise_robustness.csv")
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    conditions = list(dict.fromkeys(table.condition))
    times = sorted(table.time_bin.unique())
    palette = dict(zip(conditions, sns.color_palette("deep", len(conditions))))
    styles = dict(zip(times, ["--", "-", "-.", ":"] * len(times)))
    for (condition, t), line in table.groupby(["condition", "time_bin"], sort=False):
        ax.plot(line.noise_std, line.accuracy, styles[t], marker="o", markersize=4, color=palette[condition],
                label=f"{condition or 'all'}, t={t}")
        ax.fill_between(line.noise_std, line.ci_low, line.ci_high, color=palette[condition], alpha=0.15)
    ax.axhline(1 / ds.sizes["class"], color="grey", linestyle=":", linewidth=1, label="chance")
    n = int(table.images.min())
    ax.set(xlabel="pixel noise sd (images in [0, 1])", ylabel="accuracy (95% CI)", ylim=(0, 1),
           title=f"Accuracy under pixel noise ({n} images per point)")
    ax.legend(fontsize=8, ncol=2)
    write_figure(fig, args.out / "noise_robustness")
    print(table.round(4).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Robustness to pixel noise (the paper's Fig. 2a): accuracy against noise sd, per condition.

    python -m gattanet_sim.experiment RUN_DIR --paradigm noisy --n 5000 \\
        --sigmas 0,0.05,0.1,0.2,0.3 --conditions bottom-up,off --signals logits \\
        --out data/recordings/noisy.nc
    python analyses/noise_robustness.py data/recordings/noisy.nc --out results/noisy

Writes noise_robustness.csv (accuracy per condition x noise sd x time bin, Wilson 95% CIs
over images; the paired difference to the `off` condition with a bootstrap 95% CI) and
noise_robustness.png/.svg: the paired difference to the reference against sd (the
headline), beside it the accuracy levels with chance.
Note: the noisy paradigm takes the first --n images of the split; a class-sorted split
needs all of it (or enough to hold every class). Biology: attention helps most where the
stimulus is degraded.
"""

from __future__ import annotations

import re
import sys

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from gattanet_sim.analysis.noise_robustness import noise_robustness
from gattanet_sim.analysis.output import all_or_nothing, write_figure, write_table
from gattanet_sim.cli import analysis_parser, main_guard
from gattanet_sim.io import UsageError
from gattanet_sim.recording import open_recording

READABLE = {"off": "no attention (off)", "bottom-up": "bottom-up attention", "template": "template",
            "": "all presentations"}
QUALIFIERS = {"attend target": "attend target", "attend other": "attend other", "valid": "valid cue",
              "neutral": "neutral cue", "invalid": "invalid cue"}
MARKERS = ["o", "^", "D", "v", "P", "X", "<", ">"]  # the reference: "s"
PANEL_LINES = 5  # more conditions than this: one panel each (small multiples)


def readable(group: str) -> str:
    """A condition group's name for a reader: "template (attend other)" -> "template: attend other"."""
    if group in READABLE:
        return READABLE[group]
    match = re.fullmatch(r"(.+) \((.+)\)", group)
    if match:
        base, qualifier = match.groups()
        return f"{READABLE.get(base, base)}: {QUALIFIERS.get(qualifier, qualifier)}"
    return group


def _limits(low: np.ndarray, high: np.ndarray, must: tuple[float, ...], floor: float | None = None,
            ceiling: float | None = None) -> tuple[float, float]:
    """Axis limits holding every finite value of low/high and the `must` values, padded 8%."""
    values = np.concatenate([np.asarray(low, float), np.asarray(high, float), np.asarray(must, float)])
    values = values[np.isfinite(values)]
    lo, hi = float(values.min()), float(values.max())
    pad = 0.08 * (hi - lo) if hi > lo else 0.05
    lo, hi = lo - pad, hi + pad
    return (lo if floor is None else max(lo, floor), hi if ceiling is None else min(hi, ceiling))


def figure(table: pd.DataFrame, reference: str, classes: int) -> plt.Figure:
    """Headline: each condition's paired accuracy difference to `reference` against noise sd
    (95% CI, zero line); beside it the accuracy levels with chance. More than PANEL_LINES
    conditions: one column of panels per condition, sharing their axes."""
    column = f"minus_{reference}"
    groups = list(dict.fromkeys(table.condition))
    others = [g for g in groups if g != reference]
    paired = reference in groups and column in table and bool(others)
    times = sorted(table.time_bin.unique())
    last = times[-1]
    earlier = times[:-1] if paired and len(others) * len(times) <= 4 else []  # readable as dashed lines
    colours = dict(zip(others, sns.color_palette("deep", len(others))))
    colours[reference] = (0.3, 0.3, 0.3)
    markers = {g: MARKERS[i % len(MARKERS)] for i, g in enumerate(others)}
    markers[reference] = "s"
    chance = 1 / classes
    sds = sorted(table.noise_std.unique())
    n = int(table.images.min())
    blocks = [others] if len(others) <= PANEL_LINES else [[g] for g in others]
    if not blocks[0]:
        blocks = [[]]  # only the reference was recorded
    ncols = min(len(blocks), 4)
    nrows = -(-len(blocks) // ncols)
    beside = len(blocks) == 1 and paired  # one difference panel, the levels beside it
    rows, cols = (1, 2) if beside else ((2 * nrows, ncols) if paired else (nrows, ncols))
    n_entries = len(groups) + (2 if earlier else 0) + (1 if paired else 0) + 1  # legend entries
    ncol = min(4, n_entries)
    below = 0.25 + 0.2 * -(-n_entries // ncol) + 0.2  # inches under the panels: legend and note
    height = 3.9 * rows + below
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, height), squeeze=False)
    if beside:
        pairs = [(axes[0, 0], axes[0, 1], blocks[0])]
    else:
        pairs = []
        for i, block in enumerate(blocks):
            r, c = divmod(i, ncols)
            pairs.append((axes[2 * r, c] if paired else None, axes[2 * r + 1, c] if paired else axes[r, c], block))
        for ax in axes.flat[:]:
            if not any(ax is d or ax is a for d, a, _ in pairs):
                ax.set_visible(False)
    final = table[table.time_bin == last]
    diff_rows = final[final.condition != reference]
    if paired:
        shown = table[(table.condition != reference) & table.time_bin.isin([*earlier, last])]
        dlim = _limits(shown.diff_ci_low, shown.diff_ci_high, (0.0,))
    alim = _limits(final.ci_low, final.ci_high, (chance,), 0.0, 1.0)
    for d_ax, a_ax, block in pairs:
        if d_ax is not None:
            d_ax.axhline(0, color="black", linewidth=1, zorder=1)
            for g in block:
                for t in [*earlier, last]:
                    line = table[(table.condition == g) & (table.time_bin == t)].sort_values("noise_std")
                    x, y = line.noise_std.to_numpy(), line[column].to_numpy()
                    lo, hi = line.diff_ci_low.to_numpy(), line.diff_ci_high.to_numpy()
                    final_bin = t == last
                    d_ax.errorbar(x, y, yerr=[y - lo, hi - y], color=colours[g], marker=markers[g],
                                  linestyle="-" if final_bin else "--", markersize=5 if final_bin else 4,
                                  markerfacecolor=colours[g] if final_bin else "white", capsize=3,
                                  linewidth=1.6 if final_bin else 1, alpha=1 if final_bin else 0.8)
                    if final_bin:
                        d_ax.fill_between(x, lo, hi, color=colours[g], alpha=0.25, linewidth=0)
            d_ax.set(ylim=dlim, xticks=sds, xlabel="pixel noise sd (images in [0, 1])",
                     ylabel=f"accuracy − {readable(reference)}",
                     title=("Paired difference to " + readable(reference) if len(block) != 1 else
                            f"{readable(block[0])} − {readable(reference)}")
                     + f"\n95% CI: bootstrap over images ({int(diff_rows.diff_images.min())} per point)")
        for g in [*block, reference] if reference in groups else block:
            line = final[final.condition == g].sort_values("noise_std")
            x, y = line.noise_std.to_numpy(), line.accuracy.to_numpy()
            a_ax.errorbar(x, y, yerr=[y - line.ci_low.to_numpy(), line.ci_high.to_numpy() - y], color=colours[g],
                          marker=markers[g], markersize=5, capsize=3, linewidth=1.6)
            a_ax.fill_between(x, line.ci_low, line.ci_high, color=colours[g], alpha=0.2, linewidth=0)
        a_ax.axhline(chance, color="grey", linestyle=":", linewidth=1.2)
        a_ax.set(ylim=alim, xticks=sds, xlabel="pixel noise sd (images in [0, 1])", ylabel="accuracy",
                 title=f"Accuracy, time bin {last}\nWilson 95% CI over images ({n} per point)")
    for ax in axes.flat:
        ax.title.set_fontsize(9.5)
    entries = [(Line2D([], [], color=colours[g], marker=markers[g], linewidth=1.6), readable(g))
               for g in [*others, reference] if g in groups]
    if earlier:
        entries += [(Line2D([], [], color="grey", linewidth=1.6, marker="o"), f"time bin {last} (CI band)"),
                    (Line2D([], [], color="grey", linestyle="--", marker="o", markerfacecolor="white"),
                     "time bin " + ", ".join(map(str, earlier)) + " (difference only)")]
    if paired:
        entries.append((Line2D([], [], color="black", linewidth=1), f"0: no difference to {readable(reference)}"))
    entries.append((Line2D([], [], color="grey", linestyle=":", linewidth=1.2), f"chance (1/{classes})"))
    note = "" if len(times) == 1 or earlier else (
        f"Only the last time bin ({last}) is drawn; "
        + (f"bin {times[0]} is" if len(times) == 2 else f"bins {', '.join(map(str, times[:-1]))} are")
        + " in the table.")
    fig.suptitle("Accuracy under pixel noise: does attention keep it up?"
                 + ("" if paired else f"\n(no paired difference: {readable(reference)} or no other\n"
                                      "condition recorded)"), fontsize=11)
    fig.tight_layout(rect=(0, below / height, 1, 1 - (0.1 if paired else 0.5) / height))
    fig.legend(*zip(*entries), loc="lower center", ncol=ncol, fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 0.2 / height))
    if note:
        fig.text(0.5, 0.005, note, ha="center", va="bottom", fontsize=8, color="dimgrey")
    return fig


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
    fig = figure(table, args.reference or "off", ds.sizes["class"])
    write_figure(fig, args.out / "noise_robustness")
    print(table.round(4).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

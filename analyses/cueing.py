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
or two, an RT difference of 0 [0, 0] means "cannot measure") and cueing.png/.svg: the paired
accuracy difference of each cue to the neutral cue per time bin (the headline), the accuracy
levels with chance, when the read-out decides (share of displays per RT, and never), the paired
RT difference and the accuracy of the decision at RT.
Biology: valid cues speed and improve detection, invalid ones slow and impair it.
"""

from __future__ import annotations

import sys

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from gattanet_sim.analysis.cueing import cueing_accuracy, decisions, reaction_times, readout_ms
from gattanet_sim.analysis.output import all_or_nothing, write_figure, write_table
from gattanet_sim.cli import analysis_parser, main_guard
from gattanet_sim.recording import open_recording

CUE_NAMES = {"valid": "valid cue", "neutral": "neutral cue", "invalid": "invalid cue", "negated": "negated cue",
             "shuffled": "shuffled cue"}
CONDITION_NAMES = {"bottom-up": "bottom-up attention", "off": "no attention (off)", "template": "template"}
COLOURS = {"valid": "#55a868", "neutral": "#8c8c8c", "invalid": "#c44e52", "bottom-up": "#4c72b0",
           "off": "#333333"}
REFERENCE = "neutral"


def readable(condition: str, cue: str) -> str:
    """A condition/cue's name for a reader: ("template", "valid") -> "valid cue"."""
    if cue in ("none", ""):
        return CONDITION_NAMES.get(condition, condition)
    return CUE_NAMES.get(cue, f"{cue} cue")


def _colour(condition: str, cue: str) -> str:
    return COLOURS.get(cue, COLOURS.get(condition, "#8172b3"))


def _limits(values, must=(), floor=None, ceiling=None) -> tuple[float, float]:
    """Axis limits holding every finite value and the `must` values, padded 8%."""
    v = np.concatenate([np.ravel(np.asarray(x, float)) for x in (*values, must)])
    v = v[np.isfinite(v)]
    lo, hi = (float(v.min()), float(v.max())) if len(v) else (0.0, 1.0)
    pad = 0.08 * (hi - lo) if hi > lo else 0.05 * max(abs(hi), 1e-3)
    lo, hi = lo - pad, hi + pad
    return (lo if floor is None else max(lo, floor), hi if ceiling is None else min(hi, ceiling))


def _points(ax, x, values, low, high, colours) -> None:
    """Points with 95% CI whiskers, each on its own category."""
    for xi, v, lo, hi, c in zip(x, values, low, high, colours):
        ax.errorbar([xi], [v], yerr=[[v - lo], [hi - v]], fmt="o", color=c, capsize=4, markersize=6)


def _tick(condition: str, cue: str) -> str:
    """A category label in short lines: "valid\ncue", "bottom-up\nattention", "no attention\n(off)"."""
    return readable(condition, cue).replace(" cue", "\ncue").replace(" attention", "\nattention").replace(" (", "\n(")


def _bin_label(t: int, ms: dict[int, float] | None) -> str:
    return f"{t}\n{ms[t]:g} ms" if ms and t in ms else str(t)


def figure(table: pd.DataFrame, times: pd.DataFrame | None, dec: pd.DataFrame | None, classes: int,
           threshold: float, ms: dict[int, float] | None) -> plt.Figure:
    """Headline: each cue's paired accuracy difference to the neutral cue per time bin (95% CI,
    zero line); beside it the accuracy levels (last time bin, chance marked); below, when
    reaction times were measured, when the read-out decides (the share of displays per RT and
    never), the paired RT difference to the neutral cue and the accuracy of the decision."""
    chance = 1 / classes
    column = f"minus_{REFERENCE}"
    compared = [] if column not in table else list(dict.fromkeys(
        (c, q) for c, q in zip(table.condition, table.cue) if q not in (REFERENCE, "none")))
    ncols = max(len(compared) + 1, 3 if times is not None else 1)
    nrows = 1 if times is None else 2
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.3 * ncols, 4.3 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.set_visible(False)
    bins = sorted(table.time_bin.unique())
    last = bins[-1]
    # headline: paired difference to the neutral cue per time bin
    if compared:
        rows = table[[(c, q) in compared for c, q in zip(table.condition, table.cue)]]
        ylim = _limits((rows.diff_ci_low, rows.diff_ci_high), (0.0,))
    for ax, (condition, cue) in zip(axes[0], compared):
        ax.set_visible(True)
        part = table[(table.condition == condition) & (table.cue == cue)].sort_values("time_bin")
        x, y = part.time_bin.to_numpy(), part[column].to_numpy()
        ax.axhline(0, color="black", linewidth=1, label=f"0: no difference to the {CUE_NAMES[REFERENCE]}")
        ax.errorbar(x, y, yerr=[y - part.diff_ci_low.to_numpy(), part.diff_ci_high.to_numpy() - y], fmt="o-",
                    color=_colour(condition, cue), capsize=4, markersize=6)
        ax.set_xticks(bins, [_bin_label(t, ms) for t in bins])
        ax.set(ylim=ylim, xlabel="time bin (read-out start)", ylabel=f"accuracy − {CUE_NAMES[REFERENCE]}",
               title=f"{readable(condition, cue)} − {CUE_NAMES[REFERENCE]} (paired)\n95% CI: bootstrap over "
                     f"images ({int(part.diff_images.min())})")
    # accuracy levels, last time bin
    ax = axes[0, len(compared)]
    ax.set_visible(True)
    final = table[table.time_bin == last].reset_index(drop=True)
    x = np.arange(len(final))
    _points(ax, x, final.accuracy.to_numpy(), final.ci_low.to_numpy(), final.ci_high.to_numpy(),
            [_colour(c, q) for c, q in zip(final.condition, final.cue)])
    ax.axhline(chance, color="grey", linestyle=":", linewidth=1.2, label=f"chance 1/{classes}")
    ax.set_xticks(x, [_tick(c, q) for c, q in zip(final.condition, final.cue)], fontsize=8)
    ax.set(ylim=_limits((final.ci_low, final.ci_high), (chance,), 0.0, 1.0), xlim=(-0.5, len(final) - 0.5),
           ylabel="target-class accuracy",
           title=f"Accuracy, time bin {_bin_label(last, ms).replace(chr(10), ' (')}{')' if ms else ''}, "
                 f"y-axis fitted\nWilson 95% CI over images ({int(final.images.min())})")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0, -0.2), frameon=False)
    if times is not None:
        _reaction_time_panels(axes[1], times, dec, classes, threshold, ms)
    for ax in axes.flat:
        ax.title.set_fontsize(9.5)
    fig.suptitle("Cueing (Posner 1980): do valid cues help and invalid cues hurt?"
                 + ("" if compared else
                    f"\n(no paired difference: no {CUE_NAMES[REFERENCE]} or no other cue recorded)"),
                 fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 1 - (0.1 if compared else 0.3) / (4.3 * nrows)))
    return fig


def _reaction_time_panels(axes, times: pd.DataFrame, dec: pd.DataFrame, classes: int, threshold: float,
                          ms: dict[int, float] | None) -> None:
    """When the read-out decides (share of displays per RT, and never), the paired RT difference
    to the neutral cue over displays that cross under both, and the accuracy of the decision."""
    names = [_tick(c, q) for c, q in zip(times.condition, times.cue)]
    x = np.arange(len(times))
    # 1. the distribution of RTs, never crossing included
    ax = axes[0]
    ax.set_visible(True)
    rt_bins = sorted(dec.loc[dec.crossed, "rt_bin"].dropna().unique())
    shades = plt.get_cmap("viridis")(np.linspace(0.15, 0.85, max(len(rt_bins), 1)))
    bottom = np.zeros(len(times))
    for b, shade in zip(rt_bins, shades):
        share = np.array([((dec.condition == c) & (dec.cue == q) & (dec.rt_bin == b)).sum()
                          / max(((dec.condition == c) & (dec.cue == q)).sum(), 1)
                          for c, q in zip(times.condition, times.cue)])
        ax.bar(x, share, bottom=bottom, color=shade, width=0.7,
               label=f"decides at {ms[int(b)]:g} ms (bin {int(b)})" if ms else f"decides at bin {int(b)}")
        bottom += share
    never = times.never_fraction.to_numpy()
    ax.bar(x, never, bottom=bottom, color="#e0e0e0", hatch="//", edgecolor="#9e9e9e", width=0.7,
           label="never crosses")
    for xi, f in zip(x, times.crossed_fraction):
        ax.text(xi, 1.01, f"{f:.0%}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, names, fontsize=8)
    ax.set(ylim=(0, 1.1), yticks=np.linspace(0, 1, 6), ylabel="share of displays",
           title=f"When the read-out decides (top-class p > {threshold:g})\n"
                 f"{len(rt_bins)} distinct RT(s); % above: displays that cross")
    ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(0, -0.2), frameon=False)
    # 2. paired RT difference to the neutral cue
    ax = axes[1]
    ax.set_visible(True)
    unit = "ms" if times.rt_ms.notna().any() else "bin"
    starts = sorted(ms.values()) if ms and unit == "ms" else [0.0, 1.0]
    half = 0.5 * (min(np.diff(starts)) if len(starts) > 1 else 1.0)  # half the RT resolution
    column = f"rt_{unit}_minus_{REFERENCE}"
    rows = times[times.cue != REFERENCE].reset_index(drop=True)
    if column in rows and len(rows):
        xd = np.arange(len(rows))
        diff = rows[column].to_numpy(float)
        _points(ax, xd, diff, rows[f"rt_{unit}_diff_ci_low"].to_numpy(float),
                rows[f"rt_{unit}_diff_ci_high"].to_numpy(float),
                [_colour(c, q) for c, q in zip(rows.condition, rows.cue)])
        ax.axhline(0, color="black", linewidth=1, label=f"0: as fast as the {CUE_NAMES[REFERENCE]}")
        ax.set_xticks(xd, [f"{_tick(c, q)}\nn = {int(n)}"
                           for c, q, n in zip(rows.condition, rows.cue, rows.diff_images)], fontsize=8)
        ax.set(xlim=(-0.5, len(rows) - 0.5),
               ylim=_limits((rows[f"rt_{unit}_diff_ci_low"], rows[f"rt_{unit}_diff_ci_high"]),
                            (0.0, -half, half)))  # at least half an RT step either side
        coarse = int(rows.distinct_rts.max()) <= 2
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0, -0.28), frameon=False)
        ax.set(ylabel=f"RT − {CUE_NAMES[REFERENCE]}, {unit} (95% CI)",
               title=f"RT difference to the {CUE_NAMES[REFERENCE]} (paired)\nover displays crossing under both (n)"
                     + ("; RTs take ≤ 2 values:\ndifferences cannot be measured" if coarse else ""))
    else:
        ax.text(0.5, 0.5, f"no {CUE_NAMES[REFERENCE]} recorded:\nno paired RT difference", ha="center",
                va="center", transform=ax.transAxes)
        ax.set_axis_off()
    # 3. accuracy of the decision at RT
    ax = axes[2]
    ax.set_visible(True)
    chance = 1 / classes
    _points(ax, x, times.accuracy_at_rt.to_numpy(float), times.accuracy_ci_low.to_numpy(float),
            times.accuracy_ci_high.to_numpy(float), [_colour(c, q) for c, q in zip(times.condition, times.cue)])
    ax.axhline(chance, color="grey", linestyle=":", linewidth=1.2, label=f"chance 1/{classes}")
    ax.set_xticks(x, [f"{n}\nn = {int(k)}" for n, k in zip(names, times.crossed)], fontsize=8)
    ax.set(xlim=(-0.5, len(times) - 0.5), ylabel="accuracy of the decision at RT",
           ylim=_limits((times.accuracy_ci_low, times.accuracy_ci_high), (chance,), 0.0, 1.0),
           title="Accuracy of the decision at RT (y fitted)\ncrossing displays only (n); Wilson 95% CI")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0, -0.32), frameon=False)


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
    dec = decisions(ds, args.threshold) if times is not None else None  # per display, for the figure
    fig = figure(table, times, dec, ds.sizes["class"], args.threshold, readout_ms(ds))
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

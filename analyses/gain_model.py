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
its effect model against no change) and gain_model.png/.svg: (A) the median g, k, a and d/|Rmax|
per area drawn from their null (1, or 0 for d) with their 95% CIs, beside the class fractions;
(B) the population contrast-response functions, attended and unattended (mean and 95% CI over
units, and the mean of the units' Naka-Rushton fits from the units table); (C) their paired
difference; (D) example units with their fits. An effect class needs that p
below --alpha; among the effect models that pass, the lowest AIC wins. Biology: the
normalisation model of attention (Reynolds & Heeger 2009) gives response gain for stimuli
large relative to the attention field, contrast gain for small ones; in V4 response and
contrast gain fitted about equally well (Williford & Maunsell 2006), and attention acted like a
x1.51 contrast increase (Reynolds, Pasternak & Desimone 2000).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter
from scipy import stats

from gattanet_sim.analysis.common import describe, typed_selection
from gattanet_sim.analysis.gain_model import (
    ATTENDED,
    CLASSES,
    EXTRA,
    UNATTENDED,
    _predict,
    contrast_response_curves,
    gain_model_units,
    summarize,
)
from gattanet_sim.analysis.output import all_or_nothing, write_figure, write_table
from gattanet_sim.cli import add_selection_arguments, analysis_parser, main_guard
from gattanet_sim.recording import open_recording

CLASS_COLORS = dict(zip(CLASSES, ("#c44e52", "#4c72b0", "#55a868", "#dd8452", "#8c8c8c",
                                  "#dddddd")))
# Each effect parameter: (column, meaning, null value, log axis)
PARAMETERS = (("g", "g: attended Rmax = g Rmax\n(response-gain units)", 1.0, True),
              ("k", "k: attended c50 = c50 / k\n(contrast-gain units)", 1.0, True),
              ("a", "a: attended R = a R\n(activity-gain units)", 1.0, True),
              ("d_rel", "d / |Rmax|: attended R = R + d\n(additive-shift units)", 0.0, False))
ENHANCED, SUPPRESSED = "#c44e52", "#4c72b0"
ATTENDED_COLOR, UNATTENDED_COLOR = "#d62728", "#555555"
# Example units: one per class, the unit whose parameter lies nearest the class's median.
EXAMPLES = (("response gain", "g"), ("contrast gain", "k"), ("activity gain", "a"), ("none", "r2"))  # R² for none
FINE = 200  # contrasts on which a fit is drawn


def readable(where: Mapping[str, object]) -> str:
    """{"cue": "valid"} -> "valid cue"; other selections as "name=value"."""
    if set(where) == {"cue"}:
        return f"{where['cue']} cue"
    if set(where) == {"condition"}:
        return f"condition {where['condition']}"
    return describe(where)


def mean_ci(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over units (rows) and its t-based 95% CI, per column: (mean, low, high)."""
    n = np.isfinite(values).sum(axis=0)  # (columns,)
    mean = np.nanmean(values, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        sem = np.nanstd(values, axis=0, ddof=1) / np.sqrt(n)
        half = stats.t.ppf(0.975, np.maximum(n - 1, 1)) * sem
    half = np.where(n > 1, half, np.nan)
    return mean, mean - half, mean + half


def fitted_curves(units: pd.DataFrame, c: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each fitted unit's (unattended, attended) Naka-Rushton curves on contrasts c, from the
    parameters of its chosen model in the units table: neuroid_id -> two (C,) arrays."""
    out = {}
    if "best_model" not in units:
        return out
    for row in units.dropna(subset=["best_model"]).itertuples(index=False):
        params = [row.b, row.rmax, row.c50, row.n]
        if row.best_model != "none":
            params.append(getattr(row, EXTRA[row.best_model]))
        out[row.neuroid_id] = _predict(row.best_model, c, np.asarray(params, float))
    return out


def _parameter_panels(fig: plt.Figure, spec, table: pd.DataFrame, regions: list[str]) -> None:
    """The headline: median of each effect parameter per area, drawn from its null (1 or 0),
    with the bootstrap 95% CI over units and the count of units."""
    medians = table[table.statistic == "median"]
    axes = spec.subgridspec(1, len(PARAMETERS), wspace=0.45).subplots()
    ratio = medians[medians.name.isin([p for p, _, _, log in PARAMETERS if log])]
    spread = np.abs(np.log(ratio[["value", "ci_low", "ci_high"]].to_numpy(float)))
    top = float(np.nanmax(spread)) if np.isfinite(spread).any() else 0.0
    top = np.exp(max(top * 1.15, np.log(1.25)))  # ratio axes share limits symmetric about 1 (log)
    xs = np.arange(len(regions))
    for ax, (name, meaning, null, log) in zip(axes, PARAMETERS):
        rows = medians[medians.name == name].set_index("region").reindex(regions)
        value = rows.value.to_numpy(float)
        colors = [ENHANCED if v > null else SUPPRESSED for v in np.nan_to_num(value, nan=null)]
        ax.bar(xs, np.nan_to_num(value - null), bottom=null, color=colors, width=0.6, alpha=0.8)
        low, high = rows.ci_low.to_numpy(float), rows.ci_high.to_numpy(float)
        ok = np.isfinite(low) & np.isfinite(high)
        ax.errorbar(xs[ok], value[ok], yerr=[value[ok] - low[ok], high[ok] - value[ok]], fmt="none",
                    ecolor="black", capsize=3, linewidth=1)
        ax.axhline(null, color="black", linewidth=1)
        if log:
            ax.set_yscale("log")
            ax.set_ylim(1 / top, top)
            ticks = [t for t in (0.25, 0.33, 0.5, 0.67, 0.8, 1, 1.25, 1.5, 2, 3, 4) if 1 / top <= t <= top]
            ax.yaxis.set_major_locator(FixedLocator(ticks))
            ax.yaxis.set_major_formatter(ScalarFormatter())
            ax.yaxis.set_minor_locator(NullLocator())
        else:
            reach = np.nanmax(np.abs(np.concatenate([value, low, high]))) if np.isfinite(value).any() else 0
            reach = max(float(np.nan_to_num(reach)) * 1.2, 0.1)
            ax.set_ylim(-reach, reach)
        counts = rows["count"].fillna(0).astype(int)
        ax.set_xticks(xs, [f"{r}\n{n}" for r, n in zip(regions, counts)], fontsize=7.5)
        ax.tick_params(axis="y", labelsize=7)
        ax.set_title(meaning, fontsize=8.5)
        ax.set_ylabel(f"line: no change ({null:g})", fontsize=7.5)
    axes[0].set_ylabel("median over units (bootstrap 95% CI)\nline: no change (1); red above: attended\n"
                       "larger, blue below: attended smaller", fontsize=7.5)


def _class_panel(ax: plt.Axes, table: pd.DataFrame, regions: list[str]) -> None:
    """Which model wins per area: fractions of responsive units with Wilson 95% CIs."""
    fractions = table[(table.statistic == "fraction") & table.name.isin(CLASSES)]
    width = 0.8 / len(CLASSES)
    for i, name in enumerate(CLASSES):
        rows = fractions[fractions.name == name].set_index("region").reindex(regions)
        xs = np.arange(len(regions)) + (i - (len(CLASSES) - 1) / 2) * width
        ax.bar(xs, rows.value, width, color=CLASS_COLORS[name], edgecolor="black", linewidth=0.4,
               label=name)
        ax.vlines(xs, rows.ci_low, rows.ci_high, color="black", linewidth=0.8)
    counts = fractions.groupby("region", sort=False)["of"].first()
    ax.set_xticks(range(len(regions)), [f"{r}\n(n={counts.get(r, 0)})" for r in regions], fontsize=8)
    ax.set(ylim=(0, 1))
    ax.set_ylabel("fraction of responsive units\n(Wilson 95% CI)", fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title("Which model wins: F test against no change, then AIC\n"
                 "(a class names the parameter that changes, not its direction: see g, k, a, d)", fontsize=8.5)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def _population(fig: plt.Figure, spec_levels, spec_diff, curves: pd.DataFrame, units: pd.DataFrame,
                regions: list[str]) -> None:
    """Per area: mean contrast-response of the responsive units, attended and unattended (data
    with 95% CI over units, and the mean of the units' fitted curves), and below it the paired
    difference attended - unattended."""
    contrasts = np.sort(curves.contrast.unique())
    fine = np.linspace(contrasts.min(), contrasts.max(), FINE)
    fits = fitted_curves(units, fine)
    responsive = set(units.loc[units["class"] != "unresponsive", "neuroid_id"])
    top_axes = spec_levels.subgridspec(1, len(regions), wspace=0.3).subplots(squeeze=False)[0]
    low_axes = spec_diff.subgridspec(1, len(regions), wspace=0.3).subplots(squeeze=False)[0]
    rate = {r: bool((curves.loc[curves.region == r, ["attended", "unattended"]] >= 0).all().all())
            for r in regions}
    for ax_top, ax_low, region in zip(top_axes, low_axes, regions):
        group = curves[(curves.region == region) & curves.neuroid_id.isin(responsive)]
        un = group.pivot(index="neuroid_id", columns="contrast", values="unattended")  # (unit, contrast)
        att = group.pivot(index="neuroid_id", columns="contrast", values="attended")
        att = att.reindex(index=un.index, columns=un.columns)
        scale = un.max(axis=1) if rate[region] else pd.Series(1.0, index=un.index)
        keep = scale > 0  # a silent unit has no curve to normalise
        un, att, scale = un[keep], att[keep], scale[keep]
        n = len(un)
        if n == 0:
            for ax in (ax_top, ax_low):
                ax.text(0.5, 0.5, "no responsive unit", transform=ax.transAxes, ha="center", fontsize=8)
            ax_top.set_title(region, fontsize=9)
            continue
        un_n, att_n = un.to_numpy() / scale.to_numpy()[:, None], att.to_numpy() / scale.to_numpy()[:, None]
        c = un.columns.to_numpy(float)
        have = [u for u in un.index if u in fits]
        fit_un = np.array([fits[u][0] / scale[u] for u in have])  # (unit, fine)
        fit_att = np.array([fits[u][1] / scale[u] for u in have])
        for values, fit, color, label in ((un_n, fit_un, UNATTENDED_COLOR, "unattended"),
                                          (att_n, fit_att, ATTENDED_COLOR, "attended")):
            mean, low, high = mean_ci(values)
            ax_top.errorbar(c, mean, yerr=[mean - low, high - mean], fmt="o", ms=3.5, color=color,
                            capsize=2, linewidth=0.9, label=f"{label}: data, mean and 95% CI over units")
            if len(fit):
                ax_top.plot(fine, fit.mean(axis=0), color=color, linewidth=1.3,
                            label=f"{label}: mean of the units' Naka-Rushton fits")
        mean, low, high = mean_ci(att_n - un_n)
        ax_low.errorbar(c, mean, yerr=[mean - low, high - mean], fmt="o", ms=3.5, color="black",
                        capsize=2, linewidth=0.9, label="data: mean and 95% CI over units of the paired difference")
        if len(fit_un):
            ax_low.plot(fine, (fit_att - fit_un).mean(axis=0), color="black", linewidth=1.3,
                        label="mean of the units' fitted differences")
        ax_low.axhline(0, color="grey", linewidth=0.8, linestyle="--", label="no change")
        ax_top.set_title(f"{region} (n={n} units)", fontsize=9)
        ax_low.set_title(region, fontsize=9)
        for ax in (ax_top, ax_low):
            ax.tick_params(labelsize=7)
            ax.set_xlim(-0.03, contrasts.max() * 1.03)
        ax_low.set_xlabel("contrast", fontsize=8)
    rates = [i for i, r in enumerate(regions) if rate[r]]
    for axes in (top_axes, low_axes):  # the normalised areas share their y axis
        if len(rates) > 1:
            lows, highs = zip(*(axes[i].get_ylim() for i in rates))
            for i in rates:
                axes[i].set_ylim(min(lows), max(highs))
    for i, region in enumerate(regions):
        if i == 0 or not rate[region]:
            top_axes[i].set_ylabel("response / unit's unattended max" if rate[region] else
                                   "response (not normalised:\nsigned values)", fontsize=8)
            low_axes[i].set_ylabel("attended - unattended\n(same scale as above)", fontsize=8)
    for axes in (top_axes, low_axes):  # one legend per row, above it, off the data
        handles, names = axes[0].get_legend_handles_labels()
        axes[-1].legend(handles, names, fontsize=7, ncol=2, loc="lower right",
                        bbox_to_anchor=(1.0, 1.12), frameon=False)


def _examples(fig: plt.Figure, spec, curves: pd.DataFrame, units: pd.DataFrame) -> None:
    """A few units' curves with their fits: per class, the unit nearest the class's median."""
    fitted = units[units["class"] != "unresponsive"] if "class" in units else units.iloc[:0]
    rate = [r for r in dict.fromkeys(curves.region)
            if (curves.loc[curves.region == r, ["attended", "unattended"]] >= 0).all().all()]
    pool = fitted[fitted.region.isin(rate)] if len(fitted[fitted.region.isin(rate)]) else fitted
    axes = spec.subgridspec(1, len(EXAMPLES), wspace=0.3).subplots()
    contrasts = np.sort(curves.contrast.unique())
    fine = np.linspace(contrasts.min(), contrasts.max(), FINE)
    for ax, (name, parameter) in zip(axes, EXAMPLES):
        members = pool[pool["class"] == name] if len(pool) else pool
        if len(members) == 0:
            ax.text(0.5, 0.5, f"no {name} unit", transform=ax.transAxes, ha="center", fontsize=8)
            ax.set_title(name, fontsize=9)
            continue
        values = members[parameter].to_numpy(float)
        unit = members.iloc[int(np.nanargmin(np.abs(values - np.nanmedian(values))))]
        data = curves[curves.neuroid_id == unit.neuroid_id]
        fit = fitted_curves(unit.to_frame().T, fine)[unit.neuroid_id]
        for column, curve, color in (("unattended", fit[0], UNATTENDED_COLOR),
                                     ("attended", fit[1], ATTENDED_COLOR)):
            ax.plot(data.contrast, data[column], "o", ms=4, color=color, label=f"{column}: data")
            ax.plot(fine, curve, color=color, linewidth=1.3, label=f"{column}: fit of the unit's model")
        size = "" if parameter == "r2" else f"{parameter} = {float(unit[parameter]):.3g}, "
        ax.set_title(f"{name}: {unit.region} unit {unit.neuroid_id} ({unit.best_model} model)\n"
                     f"{size}R² = {float(unit.r2):.3f}, p vs none = {float(unit.p_vs_none):.2g}", fontsize=8)
        ax.set_xlabel("contrast", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("response (mean over phases)", fontsize=8)
    handles, names = next(((h, n) for h, n in (ax.get_legend_handles_labels() for ax in axes) if h), ([], []))
    if handles:
        axes[-1].legend(handles, names, fontsize=7, ncol=2, loc="lower right",
                        bbox_to_anchor=(1.0, 1.14), frameon=False)


def figure(table: pd.DataFrame, units: pd.DataFrame, curves: pd.DataFrame, title: str) -> plt.Figure:
    regions = list(dict.fromkeys(table.region))
    fig = plt.figure(figsize=(19, 17))
    grid = fig.add_gridspec(4, 1, height_ratios=[1.05, 1, 0.75, 1], hspace=0.62, top=0.93, bottom=0.06)
    row = grid[0].subgridspec(1, 3, width_ratios=[2.3, 1, 0.22], wspace=0.2)
    _parameter_panels(fig, row[0], table, regions)
    _class_panel(fig.add_subplot(row[1]), table, regions)
    _population(fig, grid[1], grid[2], curves, units, regions)
    _examples(fig, grid[3], curves, units)
    labels = ("A  Size of the effect: each parameter against its null (the headline; under each area: its units of "
              "that class, one unit has no CI)",
              "B  Population contrast-response at each unit's preferred stimulus (responsive units; "
              "95% CI over units)",
              "C  Paired difference attended - unattended (95% CI over units)",
              "D  Example units (per class, the unit whose parameter lies nearest the class median)")
    for spec, label in zip(grid, labels):
        box = spec.get_position(fig)
        fig.text(0.01, box.y1 + 0.028, label, fontsize=10.5, fontweight="bold", va="bottom")
    fig.suptitle(title, fontsize=11)
    fig.text(0.01, 0.0, "Biology: normalisation model (Reynolds & Heeger 2009): response gain when the "
             "stimulus is large relative to the attention field, contrast gain when small. V4: "
             "response and contrast gain fit about equally well\n(Williford & Maunsell 2006); "
             "attention like a x1.51 contrast increase (Reynolds, Pasternak & Desimone 2000). "
             "Here the gratings are full-field.", fontsize=8, va="top")
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
    title = (f"Attention on contrast-response functions: {readable(attended)} (attended) vs "
             f"{readable(unattended)} (unattended), time bin {t}; a class needs R² >= {args.min_r2} and "
             f"F-test p < {args.alpha} / 4")
    write_figure(figure(table, units, curves, title), args.out / "gain_model")
    print(table.round(4).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

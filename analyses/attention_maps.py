"""Attention maps (the paper's Fig. 3): agreement of every conv area over the image, per image.

    python -m gattanet_sim.experiment RUN_DIR --paradigm composite --n 300 \\
        --conditions bottom-up,off --units all --signals agreement,logits \\
        --out data/recordings/maps.nc
    python analyses/attention_maps.py data/recordings/maps.nc --data-root DATA --out results/maps

Writes attention_maps.csv (per condition and area: spatial contrast sd/rms of the maps, mean,
sd and bootstrap 95% CI over images; how often a map's peak or trough lies in the target's
cell; how often the read-out's agreement peaks or dips at the true class, Wilson 95% CIs) and
attention_maps.png/.svg: per example image (named by its true class) a row of agreement and,
when recorded, a row of gain: [image, a map per conv area over the grey image, the read-out's
value per class]. Agreement on a diverging map centred on 0, gain on one centred on 1 (0.5 to
1.5, else symmetric about 1), each with one colour bar shared by all its maps; the outer ring
of positions (input reaches the zero padding) is hatched and left out of areas of at least 6
positions a side. Images are regenerated from the recording's attributes; the dataset
paradigms (composite, noisy) need --data-root (and the run's --val-size), else only the maps
are drawn. Biology: a priority map over the visual field selects the attended object.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.colors import TwoSlopeNorm
from matplotlib.patches import Rectangle

from gattanet_sim.analysis.attention_maps import (
    READOUT,
    _image_side,
    agreement_maps,
    attention_maps,
    conv_regions,
)
from gattanet_sim.analysis.common import AnalysisError, last_time_bin
from gattanet_sim.analysis.output import all_or_nothing, write_figure, write_table
from gattanet_sim.cli import analysis_parser, main_guard, positive_int
from gattanet_sim.data import load_split
from gattanet_sim.recording import open_recording
from gattanet_sim.stimuli import SOURCE_PARADIGMS, StimulusError, make_paradigm

AGREEMENT_CMAP = "RdBu_r"  # diverging, centred on 0
GAIN_CMAP = "PuOr_r"  # diverging, centred on 1: orange amplified, purple suppressed
GAIN_LIMITS = (0.5, 1.5)  # fixed gain limits unless the data leave them
OVERLAY_ALPHA = 0.75
MIN_SIDE_TO_MASK = 6  # areas of fewer positions a side keep their border (masking leaves too little)
CONDITION_NAMES = {"bottom-up": "bottom-up attention (no cue)", "off": "attention off",
                   "valid": "valid cue", "invalid": "invalid cue", "neutral": "neutral cue"}
TRUE_CLASS, OTHER_CLASS = "#dd8452", "#8c8c8c"


def regenerate(ds: xr.Dataset, data_root: Path | None, val_size: int) -> np.ndarray | None:
    """The recording's stimulus images (N, H, W, 3) in [0, 1], or None (with a warning) when
    they cannot be made again."""
    if "paradigm_parameters" not in ds.attrs:
        print("warning: no paradigm_parameters in the recording; drawing maps only", file=sys.stderr)
        return None
    parameters = json.loads(ds.attrs["paradigm_parameters"])
    source = None
    if parameters.get("paradigm") in SOURCE_PARADIGMS:
        if data_root is None:
            print(f"warning: the {parameters['paradigm']} images are cut from {ds.attrs.get('dataset')}; "
                  "pass --data-root to draw them (drawing maps only)", file=sys.stderr)
            return None
        config = json.loads(ds.attrs.get("model_config", "{}"))
        data = load_split(ds.attrs.get("dataset") or "cifar10", ds.attrs.get("split") or "val", data_root,
                          val_size, config.get("image_size"))
        source = (data.images, data.labels, data.classes)
    try:
        stimuli = make_paradigm(parameters, source)
    except StimulusError as err:
        print(f"warning: cannot regenerate the images ({err}); drawing maps only", file=sys.stderr)
        return None
    return stimuli.images.clamp(0, 1).permute(0, 2, 3, 1).numpy()  # (N, H, W, 3)


def examples(ds: xr.Dataset, condition: str | None, count: int) -> np.ndarray:
    """Presentation indices of the first `count` images of the condition."""
    if condition is None:
        return np.arange(min(count, ds.sizes["presentation"]))
    chosen = np.flatnonzero(ds["condition"].values == condition)
    if len(chosen) == 0:
        raise AnalysisError(f"no presentation of condition {condition!r}; the recording has "
                            f"{', '.join(dict.fromkeys(ds['condition'].values.tolist()))}")
    return chosen[:count]


def position_maps(part: xr.Dataset, variable: str, region: str, t: int) -> xr.DataArray:
    """A per-position variable of a conv area (agreement, or gain: shared by a position's
    channels too) as maps (presentation, y, x)."""
    values = part[variable]
    return agreement_maps(part.assign(agreement=(values.dims, values.values)), region, t)


def border_mask(shape: tuple[int, int]) -> np.ndarray | None:
    """The outer ring of positions (their input reaches the zero padding), or None when the
    area is too small to lose it."""
    if min(shape) < MIN_SIDE_TO_MASK:
        return None
    mask = np.zeros(shape, bool)
    mask[[0, -1], :] = True
    mask[:, [0, -1]] = True
    return mask


def gain_limits(values: np.ndarray) -> tuple[float, float, bool]:
    """(low, high, fixed): 0.5 to 1.5, else symmetric about 1 around every value."""
    values = values[np.isfinite(values)]
    if len(values) == 0 or (values.min() >= GAIN_LIMITS[0] and values.max() <= GAIN_LIMITS[1]):
        return (*GAIN_LIMITS, True)
    half = float(max(1 - values.min(), values.max() - 1))
    return 1 - half, 1 + half, False


def _range_marks(bar, low: float, high: float, what: str, width: int) -> None:
    """Mark the drawn data's range on a horizontal colour bar and say it (lines of `width`
    characters at most)."""
    for v in (low, high):
        bar.ax.axvline(v, color="black", linewidth=1.2)
    bar.ax.set_title(textwrap.fill(what, width) + "\n" + textwrap.fill(
        f"black lines: range of the drawn values, {low:.3g} to {high:.3g}", width), fontsize=8)


def _name(ds: xr.Dataset, index: int, classes: list[str] | None) -> str:
    """'airplane (clean image)': the true class and the noise level, for a row's title."""
    label = int(ds["label"].values[index])
    name = classes[label] if classes and 0 <= label < len(classes) else f"class {label}"
    if "noise_std" in ds.coords:
        sd = float(ds["noise_std"].values[index])
        name += "\n(clean image)" if sd == 0 else f"\n(noise sd {sd:g})"
    return name


def draw(ds: xr.Dataset, picks: np.ndarray, t: int, images: np.ndarray | None,
         condition: str | None = None) -> plt.Figure:
    """Per example image two rows, agreement and gain: [image], a map per conv area over the
    grey image, the read-out's value per class."""
    part = ds.isel(presentation=picks)
    convs = conv_regions(part)
    readout = READOUT in set(part["region"].values.tolist())
    signals = ["agreement"] + (["gain"] if "gain" in part else [])
    side = _image_side(ds)
    classes = [str(c) for c in part["class"].values] if "class" in part.coords else None
    target = {"target_x_px", "target_y_px", "grid"} <= set(part.coords)
    grey = None if images is None else images @ np.array([0.299, 0.587, 0.114])  # (N, H, W)

    maps, masks = {}, {}
    for signal in signals:
        for region in convs:
            m = position_maps(part, signal, region, t)  # (pick, y, x)
            masks[region] = border_mask(m.shape[1:])
            shown = m.values.copy()
            if masks[region] is not None:
                shown[:, masks[region]] = np.nan
            maps[signal, region] = (m, shown)
    drawn = {s: np.concatenate([maps[s, r][1].ravel() for r in convs]) if convs else np.zeros(0)
             for s in signals}
    bound = float(np.nanmax(np.abs(drawn["agreement"]))) if np.isfinite(drawn["agreement"]).any() else 0.0
    norms = {"agreement": TwoSlopeNorm(0.0, -(bound or 1.0), bound or 1.0)}
    if "gain" in signals:
        low, high, fixed = gain_limits(drawn["gain"])
        norms["gain"] = TwoSlopeNorm(1.0, low, high)
    cmaps = {"agreement": AGREEMENT_CMAP, "gain": GAIN_CMAP}

    has_image = images is not None
    cols = has_image + len(convs) + readout
    rows = len(picks) * len(signals)
    masked = [r for r in convs if masks[r] is not None]
    kept = [r for r in convs if masks[r] is None]
    notes = []
    if masked:
        notes.append(f"hatched: the outer ring of positions of {', '.join(masked)}, whose input reaches "
                     "the zero padding (not drawn, not in the colour limits)")
    if kept:
        notes.append(f"{', '.join(kept)} drawn whole (too few positions to mask a border)")
    if "gain" in signals and convs and not gain_limits(drawn["gain"])[2]:
        low, high, _ = gain_limits(drawn["gain"])
        notes.insert(0, f"gain colours {low:.2f} to {high:.2f}, symmetric about 1 (the gains leave 0.5 to 1.5)")
    if target:
        notes.append("red: target cell")
    title = 0.45 + 0.2 * len(notes)  # inches
    height = 2.15 * rows + title + 1.7 * bool(convs)  # inches: the panels, the title, the colour bars
    fig = plt.figure(figsize=(2.3 * cols + 1.2 * readout, height))
    grid = fig.add_gridspec(rows, cols, width_ratios=[1] * (cols - readout) + [1.6] * readout, hspace=0.55,
                            wspace=0.3, top=1 - title / height, bottom=(2.1 if convs else 0.5) / height)
    bars = {s: [] for s in signals}
    mappables = {}
    for row, index in enumerate(picks):
        name = _name(part, row, classes)
        first = row * len(signals)
        if has_image:
            ax = fig.add_subplot(grid[first:first + len(signals), 0])
            stim = int(str(ds["stimulus_id"].values[index]).rsplit("/", 1)[-1])
            ax.imshow(images[stim], extent=(0, side, side, 0))
            ax.set_title(name, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        for k, signal in enumerate(signals):
            r = first + k
            boxes = []
            for j, region in enumerate(convs):
                m, shown = maps[signal, region]
                x, y = m["x"].values, m["y"].values
                step = (x[1] - x[0]) if len(x) > 1 else side
                ax = fig.add_subplot(grid[r, has_image + j])
                if grey is not None:
                    stim = int(str(ds["stimulus_id"].values[index]).rsplit("/", 1)[-1])
                    ax.imshow(grey[stim], cmap="gray", vmin=0, vmax=1, extent=(0, side, side, 0))
                image = ax.imshow(shown[row], cmap=cmaps[signal], norm=norms[signal],
                                  alpha=OVERLAY_ALPHA if grey is not None else 1.0, interpolation="nearest",
                                  extent=(x[0] - step / 2, x[-1] + step / 2, y[-1] + step / 2, y[0] - step / 2))
                if masks[region] is not None:  # hatch the masked outer ring
                    x0, x1 = x[0] - step / 2, x[-1] + step / 2
                    y0, y1 = y[0] - step / 2, y[-1] + step / 2
                    for rect in ((x0, y0, x1 - x0, step), (x0, y1 - step, x1 - x0, step),
                                 (x0, y0 + step, step, y1 - y0 - 2 * step),
                                 (x1 - step, y0 + step, step, y1 - y0 - 2 * step)):
                        ax.add_patch(Rectangle(rect[:2], *rect[2:], facecolor=(1, 1, 1, 0.45), hatch="////",
                                               edgecolor="#555555", linewidth=0))
                ax.set_xlim(0, side)
                ax.set_ylim(side, 0)
                ax.set_title(f"{region} {signal}", fontsize=8)
                if not has_image and j == 0:
                    ax.set_ylabel(name, fontsize=8)
                ax.set_xticks([])
                ax.set_yticks([])
                boxes.append(ax)
                mappable = image
            if target:
                cell = side / float(part["grid"].values[row])
                x0 = part["target_x_px"].values[row] - cell / 2
                y0 = part["target_y_px"].values[row] - cell / 2
                for ax in boxes:
                    ax.add_patch(Rectangle((x0, y0), cell, cell, fill=False, edgecolor="red", linewidth=1.2))
            if convs and row == 0:
                mappables[signal] = mappable
            if readout:
                ax = fig.add_subplot(grid[r, cols - 1])
                cols_r = np.flatnonzero(part["region"].values == READOUT)
                order = cols_r[np.argsort(part["channel"].values[cols_r])]
                values = np.asarray(part[signal].isel(presentation=row, neuroid=order).sel(time_bin=t).values)
                label = int(part["label"].values[row])
                probed = [int(c) for c in part["channel"].values[order]]  # the class of each bar
                colors = [TRUE_CLASS if c == label else OTHER_CLASS for c in probed]
                null = 1.0 if signal == "gain" else 0.0
                ax.bar(range(len(values)), values - null, bottom=null, color=colors)
                ax.axhline(null, color="black", linewidth=0.8)
                last = k == len(signals) - 1
                names = [classes[c] if classes and c < len(classes) else str(c) for c in probed]
                ax.set_xticks(range(len(values)), names if last else [], rotation=90, fontsize=6)
                ax.tick_params(axis="y", labelsize=7)
                what = "read-out gain (1: unchanged)" if signal == "gain" else "read-out agreement"
                what += " per class, orange: true class" if k == 0 else ""
                ax.set_title(what, fontsize=8)
                bars[signal].append((ax, values))
    for signal, panels in bars.items():  # one y range per signal, shared by the examples
        values = np.concatenate([v for _, v in panels])
        null = 1.0 if signal == "gain" else 0.0
        low, high = min(values.min(), null), max(values.max(), null)
        pad = 0.08 * (high - low or 1.0)
        for ax, _ in panels:
            ax.set_ylim(low - pad, high + pad)
    if convs:  # one colour bar per signal, shared by every map of it
        bar_grid = fig.add_gridspec(1, len(signals), left=0.12, right=0.88, wspace=0.3,
                                    bottom=0.45 / height, top=0.6 / height)
        for k, signal in enumerate(signals):
            bar = fig.colorbar(mappables[signal], cax=fig.add_subplot(bar_grid[0, k]), orientation="horizontal")
            bar.ax.tick_params(labelsize=7)
            values = drawn[signal][np.isfinite(drawn[signal])]
            if signal == "agreement":
                what = "agreement a (0: none), limits symmetric about 0, shared by all maps"
            else:
                low, high, fixed = gain_limits(drawn["gain"])
                what = ("gain (1: unchanged), fixed limits 0.5 to 1.5, shared by all maps" if fixed else
                        f"gain (1: unchanged), limits symmetric about 1 ({low:.2f} to {high:.2f}) "
                        "because the values leave 0.5 to 1.5")
            if len(values):
                width = int(0.76 * fig.get_figwidth() / len(signals) * 13)  # characters of 8 pt
                _range_marks(bar, float(values.min()), float(values.max()), what, width)
    condition_name = CONDITION_NAMES.get(condition, condition) if condition else ""
    fig.suptitle(f"Attention maps at time bin {t}" + (f", {condition_name}" if condition_name else "")
                 + ": agreement (blue-red)" + (" and the gain it sets (purple-orange)" if "gain" in signals else "")
                 + (" over the grey image" if grey is not None else " (images not available)")
                 + "".join(f"\n{note}" for note in notes), fontsize=10, y=1 - 0.15 / height, va="top")
    return fig


@main_guard
@all_or_nothing
def main(argv: list[str] | None = None) -> int:
    p = analysis_parser("attention_maps", __doc__, "the table and figure")
    p.add_argument("--data-root", type=Path, default=None, help="dataset root of composite/noisy images")
    p.add_argument("--val-size", type=int, default=5000, help="the run's validation size (default 5000)")
    p.add_argument("--time-bin", type=int, default=None, help="default: the last")
    p.add_argument("--regions", default=None, help="areas, comma-separated (default: conv areas and read-out)")
    p.add_argument("--condition", default="bottom-up", help="condition of the example images")
    p.add_argument("--examples", type=positive_int, default=4, help="example images (rows)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = p.parse_args(argv)
    ds = open_recording(args.recording)
    regions = [r.strip() for r in args.regions.split(",")] if args.regions else None
    table = attention_maps(ds, args.time_bin, regions=regions, seed=args.seed)
    write_table(table, args.out / "attention_maps.csv")
    t = last_time_bin(ds["agreement"]) if args.time_bin is None else args.time_bin
    keep = np.isin(ds["region"].values, table.region.unique())
    shown = ds.isel(neuroid=np.flatnonzero(keep))
    picks = examples(ds, args.condition if "condition" in ds.coords else None, args.examples)
    condition = args.condition if "condition" in ds.coords else None
    fig = draw(shown, picks, t, regenerate(ds, args.data_root, args.val_size), condition)
    write_figure(fig, args.out / "attention_maps")
    print(table.round(4).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

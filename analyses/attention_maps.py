"""Attention maps (the paper's Fig. 3): agreement of every conv area over the image, per image.

    python -m gattanet_sim.experiment RUN_DIR --paradigm composite --n 300 \\
        --conditions bottom-up,off --units all --signals agreement,logits \\
        --out data/recordings/maps.nc
    python analyses/attention_maps.py data/recordings/maps.nc --data-root DATA --out results/maps

Writes attention_maps.csv (per condition and area: spatial contrast sd/rms of the maps, mean,
sd and bootstrap 95% CI over images; how often a map's peak or trough lies in the target's
cell; how often the read-out's agreement peaks or dips at the true class, Wilson 95% CIs) and
attention_maps.png/.svg: example images (rows) x [image, agreement map of each conv area,
read-out agreement per class]. Images are regenerated from the recording's attributes; the
dataset paradigms (composite, noisy) need --data-root (and the run's --val-size), else only
the maps are drawn. Biology: a priority map over the visual field selects the attended object.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
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


def draw(ds: xr.Dataset, picks: np.ndarray, t: int, images: np.ndarray | None) -> plt.Figure:
    """Rows: example images; columns: [image], a map per conv area, read-out agreement bars."""
    part = ds.isel(presentation=picks)
    convs = conv_regions(part)
    readout = READOUT in set(part["region"].values.tolist())
    cols = (images is not None) + len(convs) + readout
    fig, axes = plt.subplots(len(picks), cols, figsize=(2.2 * cols + 0.6 * readout, 2.25 * len(picks)),
                             squeeze=False, gridspec_kw={"width_ratios": [1] * (cols - readout) + [1.5] * readout})
    side = _image_side(ds)
    maps = {r: agreement_maps(part, r, t) for r in convs}  # area -> (pick, y, x)
    classes = [str(c) for c in part["class"].values] if "class" in part.coords else None
    target = {"target_x_px", "target_y_px", "grid"} <= set(part.coords)
    for row, index in enumerate(picks):
        label = int(part["label"].values[row])
        name = classes[label] if classes else str(label)
        axes_row = list(axes[row])
        boxes = []
        if images is not None:
            stim = int(str(ds["stimulus_id"].values[index]).rsplit("/", 1)[-1])
            ax = axes_row.pop(0)
            ax.imshow(images[stim], extent=(0, side, side, 0))
            ax.set_title(f"{ds['stimulus_id'].values[index]}\ntarget: {name}", fontsize=8)
            boxes.append(ax)
        for region in convs:
            m = maps[region].isel(presentation=row)
            x, y = m["x"].values, m["y"].values
            step = (x[1] - x[0]) if len(x) > 1 else side
            ax = axes_row.pop(0)
            shown = ax.imshow(m.values, cmap="viridis", extent=(x[0] - step / 2, x[-1] + step / 2,
                                                             y[-1] + step / 2, y[0] - step / 2))
            ax.set_xlim(0, side)
            ax.set_ylim(side, 0)
            fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.03).ax.tick_params(labelsize=6)
            ax.set_title(f"{region} agreement", fontsize=8)
            boxes.append(ax)
        if target:
            cell = side / float(part["grid"].values[row])
            x0 = part["target_x_px"].values[row] - cell / 2
            y0 = part["target_y_px"].values[row] - cell / 2
            for ax in boxes:
                ax.add_patch(Rectangle((x0, y0), cell, cell, fill=False, edgecolor="red", linewidth=1.2))
        for ax in boxes:
            ax.set_xticks([])
            ax.set_yticks([])
        if readout:
            ax = axes_row.pop(0)
            cols_r = np.flatnonzero(part["region"].values == READOUT)
            order = cols_r[np.argsort(part["channel"].values[cols_r])]
            values = np.asarray(part["agreement"].isel(presentation=row, neuroid=order).sel(time_bin=t).values)
            colors = ["#dd8452" if c == label else "#8c8c8c" for c in range(len(values))]
            ax.bar(range(len(values)), values, color=colors)
            ax.axhline(0, color="black", linewidth=0.6)
            ax.set_xticks(range(len(values)), classes if classes and row == len(picks) - 1 else [],
                          rotation=70, fontsize=7)
            ax.tick_params(axis="y", labelsize=7)
            ax.set_title("read-out agreement (orange: true class)", fontsize=8)
        if images is None:  # no image column: name the row on its first panel
            axes[row][0].set_ylabel(f"{ds['stimulus_id'].values[index]}\ntrue: {name}", fontsize=8)
    fig.suptitle(f"Agreement at time bin {t}" + (" (red: target cell)" if target else ""), fontsize=10)
    fig.tight_layout()
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
    fig = draw(shown, picks, t, regenerate(ds, args.data_root, args.val_size))
    write_figure(fig, args.out / "attention_maps")
    print(table.round(4).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

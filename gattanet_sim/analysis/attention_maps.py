"""Attention maps (VanRullen & Alamia 2021, Fig. 3): where the global query finds agreement.

The agreement a_i(x) = k_i(x) . q that sets an area's gain is one number per position of a
conv area (every channel of a position shares it) and one per unit of a dense area. Laid out
over the receptive-field centres (y, x), a conv area's agreement is a map of the image: the
paper shows such maps highlighting the object, and a read-out agreement (one value per class
unit) that often peaks at the correct class. Spatial attention in the brain is likewise a
map of priority over the visual field that selects the attended object's location.

Numbers, per condition and area, at one time bin (default: the last; in sweep mode the
agreement at t is the one that set step t's gain, 0 at t = 0):

- spatial contrast of a map: its standard deviation over positions divided by its root mean
  square, sd / sqrt(mean^2 + sd^2). 0 for a flat map, 1 for one that varies around 0; free of
  the agreement's scale and sign, so areas compare. Mean and sd over images, and a bootstrap
  95% CI of the mean (resampling images, seeded).
- where a map peaks: with a composite display's target centre (`target_x_px`, `target_y_px`)
  and `grid`, the fraction of images whose map is largest (`peak_at_target`) and smallest
  (`trough_at_target`) inside the target's cell (Wilson 95% CI over images); chance is the
  share of positions inside that cell.
- read-out (area "readout"): the fraction of images whose agreement is largest (peak) and
  smallest (trough) at the unit of the true class (`label`), Wilson 95% CI over images;
  chance 1 / classes. With `gain` recorded too: the fraction whose largest gain is at the true
  class (`gain_peak_at_target`), the sign-free form of the question.

Why troughs too: the agreement's sign is the model's convention, not the brain's. The gain
1 + alpha a or 2 sigma(alpha a) amplifies the largest agreement when the area's learned
alpha is positive and the smallest when it is negative; alpha is in the checkpoint, not in
the recording, so both are reported (the recorded `gain` shows which one is amplified).

Conditions whose agreement is 0 everywhere (`off`: no gain, nothing recorded) are left out.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from gattanet_sim.analysis.common import (
    AnalysisError,
    bootstrap_ci,
    last_time_bin,
    proportion_ci,
    require,
)

READOUT = "readout"


def _conditions(ds: xr.Dataset) -> list[str | None]:
    """The conditions of the recording, in order of appearance (None: no condition coordinate)."""
    if "condition" not in ds.coords:
        return [None]
    return list(dict.fromkeys(ds["condition"].values.tolist()))


def conv_regions(ds: xr.Dataset) -> list[str]:
    """Areas whose neuroids sit at more than one receptive-field centre: the conv areas."""
    regions = ds["region"].values
    out = []
    for region in dict.fromkeys(regions.tolist()):
        m = regions == region
        if len(np.unique(np.stack([ds["x"].values[m], ds["y"].values[m]]), axis=1).T) > 1:
            out.append(region)
    return out


def agreement_maps(ds: xr.Dataset, region: str, time_bin: int) -> xr.DataArray:
    """One area's agreement as maps: (presentation, y, x), the mean over the channels of each
    position (they share one value). Refuses an area whose recorded positions leave holes."""
    regions = ds["region"].values
    cols = np.flatnonzero(regions == region)
    if len(cols) == 0:
        raise AnalysisError(f"attention_maps: no neuroids of area {region!r} in the recording")
    xs, ys = ds["x"].values[cols], ds["y"].values[cols]
    ux, uy = np.unique(xs), np.unique(ys)
    values = np.asarray(ds["agreement"].isel(neuroid=cols).sel(time_bin=time_bin).values,
                        dtype=np.float64)  # (presentation, n)
    flat = np.searchsorted(uy, ys) * len(ux) + np.searchsorted(ux, xs)  # (n,) position index
    counts = np.bincount(flat, minlength=len(ux) * len(uy))  # (positions,)
    if (counts == 0).any():
        raise AnalysisError(f"attention_maps needs every position of {region} "
                            f"({(counts == 0).sum()} of {len(counts)} missing; record with --units all)")
    sums = np.zeros((values.shape[0], len(counts)))
    np.add.at(sums.T, flat, values.T)  # (presentation, positions)
    maps = (sums / counts).reshape(-1, len(uy), len(ux))  # (presentation, y, x)
    return xr.DataArray(maps, dims=("presentation", "y", "x"), coords={"y": uy, "x": ux})


def spatial_contrast(maps: np.ndarray) -> np.ndarray:
    """sd / rms over positions of each map: (images, y, x) -> (images,); nan for a zero map."""
    flat = maps.reshape(len(maps), -1)  # (images, positions)
    sd, rms = flat.std(axis=1), np.sqrt((flat**2).mean(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(rms > 0, sd / rms, np.nan)


def _extrema_in_target(maps: xr.DataArray, tx: np.ndarray, ty: np.ndarray, cell: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per image: does the map peak, and does it reach its minimum, inside the target's cell;
    and the share of positions that lies there (the chance of a random extremum)."""
    xs, ys = maps["x"].values, maps["y"].values
    inside = ((np.abs(xs[None, None, :] - tx[:, None, None]) < cell[:, None, None] / 2)
              & (np.abs(ys[None, :, None] - ty[:, None, None]) < cell[:, None, None] / 2))  # (images, y, x)
    flat = maps.values.reshape(len(tx), -1)  # (images, positions)
    inside = inside.reshape(len(tx), -1)  # (images, positions)
    rows = np.arange(len(tx))
    return (inside[rows, flat.argmax(axis=1)], inside[rows, flat.argmin(axis=1)],
            inside.mean(axis=1))


def attention_maps(ds: xr.Dataset, time_bin: int | None = None, regions: Sequence[str] | None = None,
                   seed: int = 0) -> pd.DataFrame:
    """Per condition and area: spatial contrast of the agreement maps and where they peak; for
    the read-out, how often its agreement peaks at the true class. See the module docstring.

    `regions` limits the areas (default: every conv area and the read-out); a recording of a
    few random units per area has holes in its maps, but its read-out is whole: pass
    regions=["readout"]."""
    require(ds, "attention_maps", variables=("agreement",), coords=("region", "x", "y", "label"))
    t = last_time_bin(ds["agreement"]) if time_bin is None else time_bin
    if t not in ds["time_bin"].values:
        raise AnalysisError(f"attention_maps: no time bin {t}; the recording has "
                            f"{', '.join(map(str, ds['time_bin'].values))}")
    present = set(ds["region"].values.tolist())
    unknown = [r for r in regions or () if r not in present]
    if unknown:
        raise AnalysisError(f"attention_maps: no area {', '.join(unknown)} in the recording")
    convs = [r for r in conv_regions(ds) if regions is None or r in regions]
    has_readout = READOUT in present and (regions is None or READOUT in regions)
    if not convs and not has_readout:
        raise AnalysisError("attention_maps needs the agreement of a conv area (several positions) "
                            f"or of the {READOUT!r} area")
    target = {"target_x_px", "target_y_px", "grid"} <= set(ds.coords)
    rows = []
    for condition in _conditions(ds):
        part = ds if condition is None else ds.isel(
            presentation=np.flatnonzero(ds["condition"].values == condition))
        for region in convs + ([READOUT] if has_readout else []):
            row = {"condition": condition or "", "region": region, "time_bin": t}
            if region == READOUT:
                cols = np.flatnonzero(part["region"].values == READOUT)
                values = np.asarray(part["agreement"].isel(neuroid=cols).sel(time_bin=t).values)
                # values: (image, class unit)
                if not np.any(values):
                    continue
                order = np.argsort(part["channel"].values[cols])  # unit c is class c
                labels = part["label"].values
                peak = values[:, order].argmax(axis=1) == labels  # (image,)
                trough = values[:, order].argmin(axis=1) == labels  # (image,)
                row.update(kind="readout", images=len(labels), positions=len(cols),
                           **_fractions(peak, trough), chance=1 / len(cols))
                if "gain" in part:  # the sign-free question: is the true class amplified most?
                    gain = np.asarray(part["gain"].isel(neuroid=cols).sel(time_bin=t).values)[:, order]
                    most = gain.argmax(axis=1) == labels  # (image,)
                    low, high = proportion_ci(int(most.sum()), len(most))
                    row.update(gain_peak_at_target=most.mean(), gain_peak_ci_low=low, gain_peak_ci_high=high)
            else:
                maps = agreement_maps(part, region, t)  # (image, y, x)
                if not np.any(maps.values):
                    continue
                contrast = spatial_contrast(maps.values)  # (image,)
                contrast = contrast[np.isfinite(contrast)]
                low, high = bootstrap_ci((contrast,), np.mean, seed)
                row.update(kind="map", images=maps.sizes["presentation"],
                           positions=maps.sizes["y"] * maps.sizes["x"], contrast_mean=contrast.mean(),
                           contrast_sd=contrast.std(ddof=1) if len(contrast) > 1 else np.nan,
                           contrast_ci_low=low, contrast_ci_high=high)
                if target:
                    cell = _image_side(ds) / part["grid"].values.astype(float)  # (image,) px
                    peak, trough, share = _extrema_in_target(maps, part["target_x_px"].values,
                                                             part["target_y_px"].values, cell)
                    row.update(**_fractions(peak, trough), chance=share.mean())
            rows.append(row)
    if not rows:
        raise AnalysisError(f"attention_maps: the agreement is 0 everywhere at time bin {t} "
                            "(no gain acted yet, or only the off condition); choose a later time bin")
    return pd.DataFrame(rows)


def _fractions(peak: np.ndarray, trough: np.ndarray) -> dict[str, float]:
    """Fractions of images whose maximum / minimum is at the target, with Wilson 95% CIs."""
    out = {}
    for name, hits in (("peak", peak), ("trough", trough)):
        low, high = proportion_ci(int(hits.sum()), len(hits))
        out.update({f"{name}_at_target": hits.mean(), f"{name}_ci_low": low, f"{name}_ci_high": high})
    return out


def _image_side(ds: xr.Dataset) -> float:
    """The image's side in px: the model's `image_size` from the attributes, else twice the
    centre of a dense area's receptive field (centred on the image), else of the largest one."""
    config = json.loads(ds.attrs.get("model_config", "{}") or "{}")
    if config.get("image_size"):
        return float(config["image_size"])
    dense = [r for r in dict.fromkeys(ds["region"].values.tolist()) if r not in conv_regions(ds)]
    if dense:
        return 2 * float(ds["x"].values[ds["region"].values == dense[0]][0])
    return 2 * float(ds["x"].values.max())

"""Response gain, contrast gain or an additive shift? Attention's effect on contrast-response curves.

Question: when the network attends, does a unit's contrast-response function R(c) scale up
(response gain), shift left along the contrast axis (contrast gain), or rise by a constant
(additive shift)?

Biology. The normalisation model of attention (Reynolds & Heeger 2009, Neuron 61:168) predicts
either signature from one mechanism: response gain when the stimulus is large relative to the
attention field, contrast gain when it is small. Williford & Maunsell 2006 (J Neurophysiol
96:40) found, in 131 V4 neurons, attention effects best described by proportional scaling of
the response (response gain). Reynolds, Pasternak & Desimone 2000 (Neuron 26:703) found that
attention in V4 acts like an increase of the stimulus's contrast (by a factor of 1.51), a
contrast-gain signature.

How each number is computed (`gain_model_units`, then `gain_model`):
  1. Activity at one time bin (the last by default). Presentations of the `unattended`
     selection (default: condition "off") and of the `attended` one (default: cue "valid",
     i.e. the template of the grating's own orientation) are averaged over everything but the
     stimulus configuration (`stimulus_by`: orientation, spatial frequency, colour, radius,
     position) and `contrast`, i.e. over phases and trials.
  2. Every area is fitted, the class layer's logits too (b absorbs their offset).
     Per unit, the preferred configuration is the one with the largest unattended response at
     the top contrast; R_unatt(c) and R_att(c) are the two curves at that configuration.
  3. Four Naka-Rushton models R(c) = b + Rmax c^n / (c^n + c50^n) are fitted jointly to both
     curves (least squares, `scipy.optimize.curve_fit`, bounded, started from the best point of
     a grid over c50, n (and k) with the linear parameters solved exactly), sharing n:
       none     (4 parameters): one curve for both;
       response (5): attended Rmax = g Rmax;
       contrast (5): attended c50 = c50 / k;
       additive (5): attended b = b + d.
  4. AIC = N ln(RSS / N) + 2 p over the N = 2 x contrasts points (RSS floored at 1e-12 of the
     total sum of squares, so perfect fits tie and the fewer parameters win). Class rule:
     "unresponsive" when both curves together vary by less than `min_range`; otherwise the
     model with the lowest AIC, except "poor fit" when that model's R^2 over both curves
     (1 - RSS / total sum of squares around their common mean) is below `min_r2`; a best
     "none" model is the class "none".
  5. Per area (`gain_model`): the count of each class and its fraction of the area's
     responsive units with a Wilson 95% interval (the unresponsive count as a fraction of all
     units); the median g over response-gain units, median k over contrast-gain units and
     median d / |Rmax| over additive-shift units, each with a seeded bootstrap 95% interval
     over those units.

With few contrasts and a large c50 (a nearly power-law curve) response and contrast gain are
hard to tell apart: Rmax (c / c50)^n scaled by g equals c50 divided by g^(1/n). AIC then picks
whichever fits marginally better; the fitted c50 is in the per-unit table.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr
from scipy.optimize import curve_fit

from gattanet_sim.analysis.common import (
    AnalysisError, bootstrap_ci, last_time_bin, proportion_ci, require, select,
)

STIMULUS_BY = ("orientation", "spatial_frequency", "color", "radius", "position_x", "position_y")
MODELS = ("none", "response", "contrast", "additive")
CLASS_OF = {"none": "none", "response": "response gain", "contrast": "contrast gain",
            "additive": "additive shift"}
CLASSES = ("response gain", "contrast gain", "additive shift", "none", "poor fit")
MIN_CONTRASTS = 5
# Grids for the starting points of the fits (the linear parameters are solved on them).
C50_GRID = np.geomspace(0.02, 3.0, 20)
N_GRID = np.geomspace(0.4, 8.0, 12)
K_GRID = np.geomspace(0.1, 10.0, 21)


def naka_rushton(c: np.ndarray, b: float, rmax: float, c50: float, n: float) -> np.ndarray:
    """R(c) = b + Rmax c^n / (c^n + c50^n)."""
    cn = np.power(c, n)
    return b + rmax * cn / (cn + np.power(c50, n))


def _predict(model: str, c: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unattended, attended) curves of a model with parameters (b, Rmax, c50, n[, extra])."""
    b, rmax, c50, n = p[:4]
    unatt = naka_rushton(c, b, rmax, c50, n)
    if model == "none":
        return unatt, unatt
    extra = p[4]
    if model == "response":
        return unatt, naka_rushton(c, b, extra * rmax, c50, n)
    if model == "contrast":
        return unatt, naka_rushton(c, b, rmax, c50 / extra, n)
    return unatt, naka_rushton(c, b + extra, rmax, c50, n)  # additive


def _hill(c: np.ndarray, c50: np.ndarray, n: np.ndarray) -> np.ndarray:
    """c^n / (c^n + c50^n) for every grid point: c (C,), c50 and n (G,) -> (G, C)."""
    cn = np.power(c[None, :], n[:, None])  # (G, C)
    return cn / (cn + np.power(c50, n)[:, None])


def _grid_start(model: str, c: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Best grid point of the nonlinear parameters, linear ones by least squares: the start
    of the bounded fit. y is (2C,): the unattended curve, then the attended one."""
    c50, n = (g.ravel() for g in np.meshgrid(C50_GRID, N_GRID, indexing="ij"))
    if model == "contrast":
        c50, n, k = (g.ravel() for g in np.meshgrid(C50_GRID, N_GRID, K_GRID, indexing="ij"))
        f_un, f_att = _hill(c, c50, n), _hill(c, c50 / k, n)  # (G, C) each
    else:
        f_un = f_att = _hill(c, c50, n)  # (G, C)
    points = f_un.shape[1]
    width = 3 if model in ("response", "additive") else 2
    x = np.zeros((len(f_un), 2 * points, width))  # (G, 2C, q): unattended points, then attended
    x[:, :, 0] = 1.0  # b
    if model == "response":  # b, Rmax, g Rmax
        x[:, :points, 1], x[:, points:, 2] = f_un, f_att
    else:  # b, Rmax[, d]
        x[:, :points, 1], x[:, points:, 1] = f_un, f_att
        if model == "additive":
            x[:, points:, 2] = 1.0
    gram = x.transpose(0, 2, 1) @ x + 1e-12 * np.eye(x.shape[-1])  # (G, q, q)
    coef = np.linalg.solve(gram, (x.transpose(0, 2, 1) @ y)[..., None])[..., 0]  # (G, q)
    rss = ((x @ coef[..., None])[..., 0] - y) ** 2  # (G, 2C)
    best = int(np.argmin(rss.sum(axis=1)))
    b, rmax = coef[best, 0], coef[best, 1]
    start = [b, rmax, c50[best], n[best]]
    if model == "response":
        start.append(coef[best, 2] / rmax if abs(rmax) > 1e-12 else 1.0)
    elif model == "contrast":
        start.append(k[best])
    elif model == "additive":
        start.append(coef[best, 2])
    return np.array(start, float)


def _bounds(model: str, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parameter bounds scaled to the unit's response range."""
    s = float(np.ptp(y))
    low = [y.min() - s, -10 * s, 0.01, 0.3]
    high = [y.max() + s, 10 * s, 5.0, 10.0]
    if model in ("response", "contrast"):
        low.append(0.05)
        high.append(20.0)
    elif model == "additive":
        low.append(-2 * s)
        high.append(2 * s)
    return np.array(low), np.array(high)


def fit_models(c: np.ndarray, unatt: np.ndarray, att: np.ndarray) -> dict[str, dict]:
    """Fit the four nested models jointly to both curves: model -> {params, rss}."""
    y = np.concatenate([unatt, att])  # (2C,)
    fits = {}
    for model in MODELS:
        low, high = _bounds(model, y)
        start = np.clip(_grid_start(model, c, y), low, high)

        def curve(_x, *p, model=model):
            return np.concatenate(_predict(model, c, np.asarray(p)))

        params = start
        try:
            params, _ = curve_fit(curve, np.arange(len(y)), y, p0=start, bounds=(low, high),
                                  method="trf", maxfev=2000)
        except (RuntimeError, ValueError):
            pass  # keep the grid's start: still a valid (if coarser) least-squares point
        rss = float(((curve(None, *params) - y) ** 2).sum())
        start_rss = float(((curve(None, *start) - y) ** 2).sum())
        if start_rss < rss:  # the refinement never makes things worse
            params, rss = start, start_rss
        fits[model] = {"params": np.asarray(params, float), "rss": rss}
    return fits


def classify(fits: dict[str, dict], y: np.ndarray, min_r2: float) -> dict:
    """AIC per model, the best one, its R^2, and the class (see the module docstring)."""
    points = len(y)
    total = float(((y - y.mean()) ** 2).sum())
    row = {}
    for model, fit in fits.items():
        rss = max(fit["rss"], 1e-12 * total, 1e-300)
        row[f"aic_{model}"] = points * np.log(rss / points) + 2 * len(fit["params"])
        row[f"r2_{model}"] = 1 - fit["rss"] / total
    best = min(MODELS, key=lambda m: row[f"aic_{m}"])
    row["best_model"] = best
    row["r2"] = row[f"r2_{best}"]
    row["class"] = "poor fit" if row["r2"] < min_r2 else CLASS_OF[best]
    return row


def _configurations(activity: xr.DataArray, stimulus_by: tuple[str, ...]) -> np.ndarray:
    """One label per presentation naming its stimulus configuration, e.g. 'orientation=45'."""
    names = [c for c in stimulus_by if c in activity.coords]
    if not names:
        return np.full(activity.sizes["presentation"], "all", dtype=object)
    values = [pd.Series(activity[c].values).astype(str).to_numpy() for c in names]
    return np.array([", ".join(f"{n}={v}" for n, v in zip(names, row)) for row in zip(*values)],
                    dtype=object)


def _means(activity: xr.DataArray, where: Mapping[str, object], which: str,
           stimulus_by: tuple[str, ...]) -> pd.DataFrame:
    """Mean response per (configuration, contrast) of the presentations selected by `where`,
    over phases and trials: rows (configuration, contrast) x neuroids."""
    chosen = select(activity, **where)  # (presentation, neuroid)
    if chosen.sizes["presentation"] == 0:
        raise AnalysisError(f"gain_model: no presentation is {which} "
                            f"({', '.join(f'{k}={v!r}' for k, v in where.items())})")
    index = pd.MultiIndex.from_arrays([_configurations(chosen, stimulus_by), chosen["contrast"].values],
                                      names=["configuration", "contrast"])
    if which == "attended" and "attended" in chosen.coords:
        templates = pd.Series(chosen["attended"].values, index=index).groupby(level=[0, 1]).nunique()
        if (templates > 1).any():
            raise AnalysisError("gain_model: the attended selection mixes several templates per "
                                "stimulus; narrow it (e.g. cue='valid' or attended='45')")
    return pd.DataFrame(chosen.values, index=index).groupby(level=[0, 1]).mean()


def contrast_response_curves(ds: xr.Dataset, attended: Mapping[str, object] = {"cue": "valid"},
                             unattended: Mapping[str, object] = {"condition": "off"},
                             time_bin: int | None = None,
                             stimulus_by: tuple[str, ...] = STIMULUS_BY) -> pd.DataFrame:
    """Each unit's attended and unattended contrast-response curves at its preferred stimulus
    configuration (steps 1-2 of the module docstring): one row per (unit, contrast)."""
    require(ds, "gain_model", variables=("activity",), coords=("contrast", "region",
                                                                *attended, *unattended))
    t = last_time_bin(ds["activity"]) if time_bin is None else time_bin
    activity = ds["activity"].sel(time_bin=t).load()  # (presentation, neuroid)
    means_un = _means(activity, unattended, "unattended", stimulus_by)  # (config x contrast, neuroid)
    means_att = _means(activity, attended, "attended", stimulus_by)  # (config x contrast, neuroid)
    contrasts = sorted(set(means_un.index.get_level_values("contrast"))
                       & set(means_att.index.get_level_values("contrast")))
    if len(contrasts) < MIN_CONTRASTS:
        raise AnalysisError(f"gain_model needs a contrast series of at least {MIN_CONTRASTS} "
                            f"contrasts under both selections; the recording has {len(contrasts)}")
    top = means_un.xs(contrasts[-1], level="contrast")  # (configuration, neuroid)
    preferred = top.index.to_numpy()[np.argmax(top.to_numpy(), axis=0)]  # (neuroid,)
    ids = (activity["neuroid_id"].values if "neuroid_id" in activity.coords
           else np.arange(activity.sizes["neuroid"]).astype(str))
    frames = []
    for config in dict.fromkeys(preferred.tolist()):
        cols = np.flatnonzero(preferred == config)
        rows = [(config, c) for c in contrasts]
        if not all(r in means_att.index for r in rows):
            raise AnalysisError(f"gain_model: the attended selection lacks the stimulus {config} "
                                "at some contrast of the series")
        un = means_un.loc[rows].to_numpy()[:, cols]  # (contrast, unit)
        att = means_att.loc[rows].to_numpy()[:, cols]  # (contrast, unit)
        frames.append(pd.DataFrame({
            "region": np.tile(activity["region"].values[cols], len(contrasts)),
            "neuroid_id": np.tile(ids[cols], len(contrasts)),
            "preferred": config, "time_bin": t,
            "contrast": np.repeat(contrasts, len(cols)),
            "unattended": un.ravel(), "attended": att.ravel()}))
    order = {n: i for i, n in enumerate(ids)}
    table = pd.concat(frames, ignore_index=True)
    table["_unit"] = table["neuroid_id"].map(order)
    return table.sort_values(["_unit", "contrast"]).drop(columns="_unit").reset_index(drop=True)


def gain_model_units(ds: xr.Dataset, attended: Mapping[str, object] = {"cue": "valid"},
                     unattended: Mapping[str, object] = {"condition": "off"}, min_r2: float = 0.8,
                     min_range: float = 1e-6, time_bin: int | None = None,
                     stimulus_by: tuple[str, ...] = STIMULUS_BY) -> pd.DataFrame:
    """One row per unit: preferred stimulus, class, R^2, AIC of every model, and the fitted
    b, Rmax, c50, n of the best model with g, k, d from their own models."""
    curves = contrast_response_curves(ds, attended, unattended, time_bin, stimulus_by)
    rows = []
    for (region, unit), curve in curves.groupby(["region", "neuroid_id"], sort=False):
        c = curve["contrast"].to_numpy(float)
        un, att = curve["unattended"].to_numpy(float), curve["attended"].to_numpy(float)
        y = np.concatenate([un, att])  # (2C,)
        row = {"region": region, "neuroid_id": unit, "preferred": curve["preferred"].iloc[0],
               "time_bin": curve["time_bin"].iloc[0], "unattended_top": un[-1], "attended_top": att[-1]}
        if np.ptp(y) < min_range:
            rows.append({**row, "class": "unresponsive"})
            continue
        fits = fit_models(c, un, att)
        row.update(classify(fits, y, min_r2))
        b, rmax, c50, n = fits[row["best_model"]]["params"][:4]
        row.update(b=b, rmax=rmax, c50=c50, n=n, g=fits["response"]["params"][4],
                   k=fits["contrast"]["params"][4], d=fits["additive"]["params"][4],
                   d_rel=fits["additive"]["params"][4] / abs(fits["additive"]["params"][1])
                   if abs(fits["additive"]["params"][1]) > 0 else np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def summarize(units: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Per area: class counts and fractions (Wilson 95%), medians of g, k, d/|Rmax| (bootstrap 95%)."""
    rows = []
    for region, group in units.groupby("region", sort=False):
        responsive = group[group["class"] != "unresponsive"]
        n_all, n_resp = len(group), len(responsive)
        for name in CLASSES:
            count = int((responsive["class"] == name).sum())
            low, high = proportion_ci(count, n_resp)
            rows.append({"region": region, "statistic": "fraction", "name": name, "count": count,
                         "of": n_resp, "value": count / n_resp if n_resp else np.nan,
                         "ci_low": low, "ci_high": high})
        count = n_all - n_resp
        low, high = proportion_ci(count, n_all)
        rows.append({"region": region, "statistic": "fraction", "name": "unresponsive",
                     "count": count, "of": n_all, "value": count / n_all, "ci_low": low, "ci_high": high})
        for parameter, name in (("g", "response gain"), ("k", "contrast gain"), ("d_rel", "additive shift")):
            values = responsive.loc[responsive["class"] == name, parameter].to_numpy(float)
            low, high = bootstrap_ci((values,), np.median, seed)
            rows.append({"region": region, "statistic": "median", "name": parameter,
                         "count": len(values), "of": n_resp,
                         "value": float(np.median(values)) if len(values) else np.nan,
                         "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows)


def gain_model(ds: xr.Dataset, attended: Mapping[str, object] = {"cue": "valid"},
               unattended: Mapping[str, object] = {"condition": "off"}, min_r2: float = 0.8,
               seed: int = 0, time_bin: int | None = None, min_range: float = 1e-6,
               stimulus_by: tuple[str, ...] = STIMULUS_BY) -> pd.DataFrame:
    """Per area, tidy: statistic "fraction" (name = class; count of `of` units, value, Wilson
    95% CI) and "median" (name = g, k or d_rel over the units of the matching class; bootstrap
    95% CI). See the module docstring for every step."""
    units = gain_model_units(ds, attended, unattended, min_r2, min_range, time_bin, stimulus_by)
    return summarize(units, seed)

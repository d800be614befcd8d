"""Response gain, contrast gain, an additive shift or an activity gain? Attention's effect on
contrast-response curves.

Question: when the network attends, does a unit's contrast-response function R(c) scale up
(response gain), shift left along the contrast axis (contrast gain), rise by a constant
(additive shift), or is the whole curve, baseline included, multiplied (activity gain: what a
post-ReLU gain on the unit's activity does)?

Biology. The normalisation model of attention (Reynolds & Heeger 2009, Neuron 61:168) predicts
either signature from one mechanism: response gain when the stimulus is large relative to the
attention field, contrast gain when it is small. Williford & Maunsell 2006 (J Neurophysiol
96:40) fitted both to 131 V4 neurons and found that response gain (proportional scaling) and
contrast gain (a leftward shift) described the attention effects about equally well.
Reynolds, Pasternak & Desimone 2000 (Neuron 26:703) found that attention in V4 acts like an
increase of the stimulus's contrast (by a factor of 1.51), a contrast-gain signature.

How each number is computed (`gain_model_units`, then `gain_model`):
  1. Activity at one time bin (the last by default). Presentations of the `unattended`
     selection (default: cue "neutral", the mean template) and of the `attended` one (default:
     cue "valid", i.e. the template of the grating's own orientation) are averaged over
     everything but the stimulus configuration (`stimulus_by`: orientation, spatial frequency,
     colour, radius, position) and `contrast`, i.e. over phases and trials.
     Caveat of `unattended={"condition": "off"}` (still accepted): under `off` every area is
     normalised with the batch-norm statistics of its own first step, so R(template) / R(off)
     differs from 1 before any feature effect (0.36 in V1 of the recipe's model). Compare
     the attended cue with the neutral or the invalid one instead.
  2. Every area is fitted, the class layer's logits too (b absorbs their offset).
     Per unit, the preferred configuration is the one with the largest unattended response at
     the top contrast; R_unatt(c) and R_att(c) are the two curves at that configuration.
  3. Five Naka-Rushton models R(c) = b + Rmax c^n / (c^n + c50^n) are fitted jointly to both
     curves (least squares, `scipy.optimize.curve_fit`, bounded, started from the best point of
     a grid over c50, n (and k or a) with the linear parameters solved exactly, and the effect
     models also from the "none" fit with their extra parameter at its null value), sharing n:
       none     (4 parameters): one curve for both;
       response (5): attended Rmax = g Rmax;
       contrast (5): attended c50 = c50 / k;
       additive (5): attended b = b + d;
       activity (5): attended R = a R_unatt (b -> a b and Rmax -> a Rmax).
     Every effect model nests "none" (g = k = a = 1, d = 0), so its residual sum of squares is
     never above none's.
  4. Class rule. "unresponsive" when both curves together vary by less than `min_range`.
     Otherwise each effect model is tested against "none" with the nested-model F test,
     F = (RSS_none - RSS_model) / (RSS_model / (N - 5)) on (1, N - 5) degrees of freedom over
     the N = 2 x contrasts points (RSS floored at 1e-10 of the total sum of squares, so perfect
     fits tie). An effect model is accepted only when its p < `alpha` / 4 (Bonferroni over the
     four effect models: on noise alone fewer than `alpha` of units get an effect class, where
     the lowest AIC alone would give one to a third of them); among the accepted models the
     lowest AIC = N ln(RSS / N) + 2 p wins; with none accepted the model is "none". The class
     is "poor fit" when the chosen model's R^2 over both curves (1 - RSS / total sum of
     squares around their common mean) is below `min_r2`. The per-unit table has every effect
     model's p (`p_response`, ...) and `p_vs_none`: the Bonferroni-corrected p (min(1, 4 p))
     of the chosen effect model or, for "none" and "poor fit" units, of the best-AIC one.
  5. Per area (`gain_model`): the count of each class and its fraction of the area's
     responsive units with a Wilson 95% interval (the unresponsive count as a fraction of all
     units); the median g over response-gain units, median k over contrast-gain units, median
     d / |Rmax| over additive-shift units and median a over activity-gain units, each with a
     seeded bootstrap 95% interval over those units.

With few contrasts and a large c50 (a nearly power-law curve) response and contrast gain are
hard to tell apart: Rmax (c / c50)^n scaled by g equals c50 divided by g^(1/n); with b near 0
response and activity gain are the same model. Both may then pass the F test and AIC picks
whichever fits marginally better; the fitted b and c50 are in the per-unit table.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats
from scipy.optimize import curve_fit

from gattanet_sim.analysis.common import (
    AnalysisError,
    bootstrap_ci,
    last_time_bin,
    proportion_ci,
    require,
    select,
)

STIMULUS_BY = ("orientation", "spatial_frequency", "color", "radius", "position_x", "position_y")
MODELS = ("none", "response", "contrast", "additive", "activity")
EFFECTS = MODELS[1:]
CLASS_OF = {"none": "none", "response": "response gain", "contrast": "contrast gain",
            "additive": "additive shift", "activity": "activity gain"}
CLASSES = ("response gain", "contrast gain", "additive shift", "activity gain", "none", "poor fit")
# The extra parameter of each effect model, its value under "none", and its median's name.
EXTRA = {"response": "g", "contrast": "k", "additive": "d", "activity": "a"}
NULL_VALUE = {"response": 1.0, "contrast": 1.0, "additive": 0.0, "activity": 1.0}
MEDIAN_OF = (("g", "response gain"), ("k", "contrast gain"), ("d_rel", "additive shift"),
             ("a", "activity gain"))
MIN_CONTRASTS = 5
ATTENDED = {"cue": "valid"}
UNATTENDED = {"cue": "neutral"}  # the mean template; see step 1 for why not "off"
RSS_FLOOR = 1e-10  # of the total sum of squares: fits this close to perfect tie
# Grids for the starting points of the fits (the linear parameters are solved on them).
C50_GRID = np.geomspace(0.02, 3.0, 20)
N_GRID = np.geomspace(0.4, 8.0, 12)
K_GRID = np.geomspace(0.1, 10.0, 21)
A_GRID = np.geomspace(0.2, 5.0, 21)


def naka_rushton(c: np.ndarray, b: float, rmax: float, c50: float, n: float) -> np.ndarray:
    """R(c) = b + Rmax c^n / (c^n + c50^n)."""
    cn = np.power(c, n)
    return b + rmax * cn / (cn + np.power(c50, n))


def _predict(model: str, c: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unattended, attended) curves of a model with parameters (b, Rmax, c50, n[, extra])."""
    b, rmax, c50, n = p[:4]
    unatt = naka_rushton(c, b, rmax, c50, n)  # (C,)
    if model == "none":
        return unatt, unatt
    extra = p[4]
    if model == "response":
        return unatt, naka_rushton(c, b, extra * rmax, c50, n)
    if model == "contrast":
        return unatt, naka_rushton(c, b, rmax, c50 / extra, n)
    if model == "activity":
        return unatt, extra * unatt
    return unatt, naka_rushton(c, b + extra, rmax, c50, n)  # additive


def _hill(c: np.ndarray, c50: np.ndarray, n: np.ndarray) -> np.ndarray:
    """c^n / (c^n + c50^n) for every grid point: c (C,), c50 and n (G,) -> (G, C)."""
    cn = np.power(c[None, :], n[:, None])  # (G, C)
    return cn / (cn + np.power(c50, n)[:, None])


def _grid_start(model: str, c: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Best grid point of the nonlinear parameters, linear ones by least squares: the start
    of the bounded fit. y is (2C,): the unattended curve, then the attended one."""
    extra = {"contrast": K_GRID, "activity": A_GRID}.get(model)
    if extra is None:
        c50, n = (g.ravel() for g in np.meshgrid(C50_GRID, N_GRID, indexing="ij"))
        k = np.ones_like(c50)  # (G,)
    else:
        c50, n, k = (g.ravel() for g in np.meshgrid(C50_GRID, N_GRID, extra, indexing="ij"))
    f_un = _hill(c, c50, n)  # (G, C)
    f_att = _hill(c, c50 / k, n) if model == "contrast" else f_un  # (G, C)
    scale = k[:, None] if model == "activity" else 1.0  # attended = a (b + Rmax f)
    points = f_un.shape[1]
    width = 3 if model in ("response", "additive") else 2
    x = np.zeros((len(f_un), 2 * points, width))  # (G, 2C, q): unattended points, then attended
    x[:, :points, 0], x[:, points:, 0] = 1.0, scale  # b
    if model == "response":  # b, Rmax, g Rmax
        x[:, :points, 1], x[:, points:, 2] = f_un, f_att
    else:  # b, Rmax[, d]
        x[:, :points, 1], x[:, points:, 1] = f_un, scale * f_att
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
    elif model in ("contrast", "activity"):
        start.append(k[best])
    elif model == "additive":
        start.append(coef[best, 2])
    return np.array(start, float)


def _bounds(model: str, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parameter bounds scaled to the unit's response range."""
    s = float(np.ptp(y))
    low = [y.min() - s, -10 * s, 0.01, 0.3]
    high = [y.max() + s, 10 * s, 5.0, 10.0]
    if model in ("response", "contrast", "activity"):
        low.append(0.05)
        high.append(20.0)
    elif model == "additive":
        low.append(-2 * s)
        high.append(2 * s)
    return np.array(low), np.array(high)


def _fit(model: str, c: np.ndarray, y: np.ndarray, starts: list[np.ndarray]) -> dict:
    """Least squares from the best of `starts` (clipped to the bounds); never worse than any
    start: {params, rss}."""
    low, high = _bounds(model, y)

    def curve(_x, *p):
        return np.concatenate(_predict(model, c, np.asarray(p)))  # (2C,)

    def rss_of(p: np.ndarray) -> float:
        return float(((curve(None, *p) - y) ** 2).sum())

    starts = [np.clip(s, low, high) for s in starts]
    params = min(starts, key=rss_of)
    start_rss = rss_of(params)
    try:
        refined, _ = curve_fit(curve, np.arange(len(y)), y, p0=params, bounds=(low, high),
                               method="trf", maxfev=2000)
    except (RuntimeError, ValueError):
        return {"params": params, "rss": start_rss}  # the start is a valid least-squares point
    rss = rss_of(refined)
    if rss < start_rss:  # the refinement never makes things worse
        return {"params": np.asarray(refined, float), "rss": rss}
    return {"params": params, "rss": start_rss}


def fit_models(c: np.ndarray, unatt: np.ndarray, att: np.ndarray) -> dict[str, dict]:
    """Fit the five nested models jointly to both curves: model -> {params, rss}. Each effect
    model also starts from the "none" fit (extra at its null value), and "none" is refitted
    from any effect fit that shows it a better basin, so the nesting holds in the RSS."""
    y = np.concatenate([unatt, att])  # (2C,)
    fits = {"none": _fit("none", c, y, [_grid_start("none", c, y)])}
    for model in EFFECTS:
        nested = np.append(fits["none"]["params"], NULL_VALUE[model])  # (5,)
        fits[model] = _fit(model, c, y, [_grid_start(model, c, y), nested])
    better = _fit("none", c, y, [fits[m]["params"][:4] for m in EFFECTS])
    if better["rss"] < fits["none"]["rss"]:
        fits["none"] = better
        for model in EFFECTS:
            nested = np.append(better["params"], NULL_VALUE[model])  # (5,)
            fits[model] = _fit(model, c, y, [fits[model]["params"], nested])
    return fits


def classify(fits: dict[str, dict], y: np.ndarray, min_r2: float, alpha: float = 0.05) -> dict:
    """AIC, R^2 and F-test p against "none" per model, the chosen model and the class (see
    step 4 of the module docstring)."""
    points = len(y)
    total = float(((y - y.mean()) ** 2).sum())
    floor = max(RSS_FLOOR * total, 1e-300)
    rss = {m: max(fit["rss"], floor) for m, fit in fits.items()}
    row = {}
    for model, fit in fits.items():
        row[f"aic_{model}"] = points * np.log(rss[model] / points) + 2 * len(fit["params"])
        row[f"r2_{model}"] = 1 - fit["rss"] / total
    for model in EFFECTS:
        dof = points - len(fits[model]["params"])
        f = max(rss["none"] - rss[model], 0.0) / (rss[model] / dof)
        row[f"p_{model}"] = float(stats.f.sf(f, 1, dof))
    accepted = [m for m in EFFECTS if row[f"p_{m}"] < alpha / len(EFFECTS)]
    candidate = min(accepted or EFFECTS, key=lambda m: row[f"aic_{m}"])
    best = candidate if accepted else "none"
    row["best_model"] = best
    row["p_vs_none"] = min(1.0, len(EFFECTS) * row[f"p_{candidate}"])
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


def contrast_response_curves(ds: xr.Dataset, attended: Mapping[str, object] = ATTENDED,
                             unattended: Mapping[str, object] = UNATTENDED,
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


def gain_model_units(ds: xr.Dataset, attended: Mapping[str, object] = ATTENDED,
                     unattended: Mapping[str, object] = UNATTENDED, min_r2: float = 0.8,
                     min_range: float = 1e-6, time_bin: int | None = None,
                     stimulus_by: tuple[str, ...] = STIMULUS_BY,
                     alpha: float = 0.05) -> pd.DataFrame:
    """One row per unit: preferred stimulus, class, R^2, AIC of every model, F-test p of every
    effect model against "none" and `p_vs_none` of the chosen one, the fitted b, Rmax, c50, n
    of the chosen model, and g, k, d, a from their own models."""
    if not 0 < alpha < 1:
        raise AnalysisError(f"gain_model: alpha must lie between 0 and 1, got {alpha}")
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
        row.update(classify(fits, y, min_r2, alpha))
        b, rmax, c50, n = fits[row["best_model"]]["params"][:4]
        row.update(b=b, rmax=rmax, c50=c50, n=n)
        row.update({EXTRA[m]: fits[m]["params"][4] for m in EFFECTS})
        additive_rmax = abs(fits["additive"]["params"][1])
        row["d_rel"] = row["d"] / additive_rmax if additive_rmax > 0 else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def summarize(units: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Per area: class counts and fractions (Wilson 95%), medians of g, k, d/|Rmax| and a
    (bootstrap 95%)."""
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
        for parameter, name in MEDIAN_OF:
            values = responsive.loc[responsive["class"] == name, parameter].to_numpy(float)
            low, high = bootstrap_ci((values,), np.median, seed)
            rows.append({"region": region, "statistic": "median", "name": parameter,
                         "count": len(values), "of": n_resp,
                         "value": float(np.median(values)) if len(values) else np.nan,
                         "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows)


def gain_model(ds: xr.Dataset, attended: Mapping[str, object] = ATTENDED,
               unattended: Mapping[str, object] = UNATTENDED, min_r2: float = 0.8,
               seed: int = 0, time_bin: int | None = None, min_range: float = 1e-6,
               stimulus_by: tuple[str, ...] = STIMULUS_BY, alpha: float = 0.05) -> pd.DataFrame:
    """Per area, tidy: statistic "fraction" (name = class; count of `of` units, value, Wilson
    95% CI) and "median" (name = g, k, d_rel or a over the units of the matching class;
    bootstrap 95% CI). See the module docstring for every step."""
    units = gain_model_units(ds, attended, unattended, min_r2, min_range, time_bin, stimulus_by,
                             alpha)
    return summarize(units, seed)

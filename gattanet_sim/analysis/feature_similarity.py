"""Feature-similarity gain: does attending to a feature scale a unit by how much it prefers it?

Question: when the global query is the template of one orientation, is a unit's gain larger
the closer the attended orientation lies to the unit's preferred one?

Biology: Treue & Martinez-Trujillo 1999 (Nature 399:575) found that attending to a feature
scales a neuron's response according to the similarity between the attended feature and the
neuron's preferred one (the feature-similarity gain model); Lindsay & Miller 2018 (eLife
7:e38105) applied feature-similarity gain to the units of a CNN as a model of that finding.

How each number is computed (`feature_similarity_units`, then `feature_similarity_gain`):
  1. Activity at one time bin (the last by default), at the top contrast when the recording
     has a `contrast` coordinate. Areas whose activity goes below 0 (the class layer's
     logits) are left out: neither a vector average nor a response ratio means anything there.
  2. Preferred feature (`unattended` selection, default the neutral cue): the mean response
     R(theta) per stimulus value theta of `feature` (over every other stimulus parameter and
     trial), then theta_pref = arg(sum_theta R(theta) exp(2 pi i theta / period)) period /
     (2 pi), a circular vector average (period 180 deg for orientation). Its selectivity is
     |sum R exp(...)| / sum R. Units with selectivity <= `min_selectivity`, or whose mean
     unattended response is not above `min_response` times the median of their area's units,
     are left out: no preferred feature, or a ratio dominated by a near-silent denominator.
     The default reference is the neutral cue (the mean template). `off` is accepted, but under
     it every area is normalised with its first step's batch-norm statistics, so a gain against
     `off` is 0.36 in V1 of the recipe's model before any feature effect.
  3. For each attended value theta_att (the coordinate `attended` of the `attended`
     selection, default condition "template": template names like "45"), the unit's gain =
     mean R over the stimuli under that template / mean R over the same stimuli unattended
     (a ratio of means over every stimulus shown at that contrast, each template having to
     cover every one of them), and its similarity =
     cos(2 pi (theta_pref - theta_att) / period).
  4. Per area: the least-squares slope (and intercept) of gain on similarity over the
     (unit, theta_att) samples; the mean gain of similar (similarity > 0.5) and of dissimilar
     (< -0.5) samples and their difference. Every 95% interval is a seeded percentile
     bootstrap over units (a unit's samples stay together).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
import xarray as xr

from gattanet_sim.analysis.common import AnalysisError, bootstrap_ci, last_time_bin, require, select

SIMILAR = 0.5  # similarity above this is "similar", below minus this "dissimilar"


def _top_contrast(activity: xr.DataArray) -> xr.DataArray:
    if "contrast" not in activity.coords:
        return activity
    return select(activity, contrast=float(np.max(activity["contrast"].values)))


def _stimulus_keys(activity: xr.DataArray) -> np.ndarray:
    """A label per presentation naming its stimulus (stimulus_id when there, else its index)."""
    if "stimulus_id" in activity.coords:
        return activity["stimulus_id"].values.astype(str)
    return np.arange(activity.sizes["presentation"]).astype(str)


def feature_similarity_units(ds: xr.Dataset, unattended: Mapping[str, object] = {"cue": "neutral"},
                             attended: Mapping[str, object] = {"cue": "attend"},
                             feature: str = "orientation", period: float = 180.0,
                             time_bin: int | None = None, min_selectivity: float = 0.0,
                             min_response: float = 0.1) -> pd.DataFrame:
    """One row per (unit, attended value): region, neuroid_id, preferred, selectivity,
    attended, similarity, gain (steps 1-3 of the module docstring)."""
    require(ds, "feature_similarity_gain", variables=("activity",),
            coords=(feature, "attended", "region", *unattended, *attended))
    t = last_time_bin(ds["activity"]) if time_bin is None else time_bin
    activity = _top_contrast(ds["activity"].sel(time_bin=t)).load()  # (presentation, neuroid)
    off = select(activity, **unattended)  # (presentation, neuroid)
    on = select(activity, **attended)  # (presentation, neuroid)
    for name, chosen, where in (("unattended", off, unattended), ("attended", on, attended)):
        if chosen.sizes["presentation"] == 0:
            raise AnalysisError(f"feature_similarity_gain: no presentation is {name} "
                                f"({', '.join(f'{k}={v!r}' for k, v in where.items())})")
    names = sorted(set(on["attended"].values.tolist()) - {"", "all"})
    try:
        values = {name: float(name) for name in names}
    except ValueError:
        raise AnalysisError(f"feature_similarity_gain needs templates named by {feature} value "
                            f"(the attended selection has {', '.join(names[:5])})") from None
    if not values:
        raise AnalysisError("feature_similarity_gain needs templates of single feature values "
                            "in the attended selection")
    if off[feature].dtype.kind not in "fiu":
        raise AnalysisError(f"feature_similarity_gain needs a numeric {feature!r} coordinate "
                            "(a circular feature such as orientation)")
    # Step 2: tuning under the unattended condition.
    theta = off[feature].values.astype(float)  # (presentation,)
    levels = np.unique(theta)
    if len(levels) < 3:
        raise AnalysisError(f"feature_similarity_gain needs at least 3 {feature} values to find "
                            f"a preferred one; the recording has {len(levels)}")
    tuning = np.stack([off.values[theta == v].mean(axis=0) for v in levels])  # (level, neuroid)
    phasor = np.exp(2j * np.pi * levels / period)  # (level,)
    vector = (tuning * phasor[:, None]).sum(axis=0)  # (neuroid,)
    total = tuning.sum(axis=0)  # (neuroid,)
    preferred = (np.angle(vector) * period / (2 * np.pi)) % period  # (neuroid,)
    selectivity = np.abs(vector) / np.where(total > 0, total, np.nan)  # (neuroid,)
    # Step 3: gain per attended value, a ratio of means over the same stimuli.
    off_mean = pd.DataFrame(off.values, index=_stimulus_keys(off)).groupby(level=0).mean()  # (stim, neuroid)
    on_keys = _stimulus_keys(on)
    regions = activity["region"].values
    ids = (activity["neuroid_id"].values if "neuroid_id" in activity.coords
           else np.arange(activity.sizes["neuroid"]).astype(str))
    is_rate = {r: not (activity.values[:, regions == r] < 0).any() for r in set(regions.tolist())}
    rate = np.array([is_rate[r] for r in regions])  # (neuroid,)
    response = off_mean.to_numpy().mean(axis=0)  # (neuroid,) mean unattended response
    typical = {r: np.median(response[regions == r]) for r in is_rate}
    floor = min_response * np.array([typical[r] for r in regions])  # (neuroid,)
    keep = rate & (selectivity > min_selectivity) & (response > floor) & (response > 0)
    frames = []
    for name, value in values.items():
        mask = on["attended"].values == name
        on_mean = pd.DataFrame(on.values[mask], index=on_keys[mask]).groupby(level=0).mean()
        shown = off_mean.index.isin(on_mean.index).sum()
        if shown < len(off_mean):  # e.g. valid cues: each template only on its own orientation
            raise AnalysisError(f"feature_similarity_gain needs every template shown on every "
                                f"unattended stimulus; template {name!r} covers {shown} of "
                                f"{len(off_mean)} (record the template condition)")
        with np.errstate(divide="ignore", invalid="ignore"):  # silent units are dropped below
            gain = (on_mean.loc[off_mean.index].to_numpy().mean(axis=0)
                    / off_mean.to_numpy().mean(axis=0))  # (neuroid,)
        similarity = np.cos(2 * np.pi * (preferred - value) / period)  # (neuroid,)
        frames.append(pd.DataFrame({
            "region": regions[keep], "neuroid_id": ids[keep], "time_bin": t,
            "preferred": preferred[keep], "selectivity": selectivity[keep], "attended": name,
            "attended_value": value, "similarity": similarity[keep], "gain": gain[keep]}))
    samples = pd.concat(frames, ignore_index=True)
    if samples.empty:
        raise AnalysisError("feature_similarity_gain: no unit has a preferred feature and a "
                            "positive unattended response")
    return samples


def _by_unit(samples: pd.DataFrame) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per unit: its similarities and gains (the bootstrap resamples units, not samples)."""
    groups = samples.groupby("neuroid_id", sort=False)
    return ([g["similarity"].to_numpy(float) for _, g in groups],
            [g["gain"].to_numpy(float) for _, g in groups])


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    x_c = x - x.mean()
    denominator = float((x_c**2).sum())
    return float((x_c * (y - y.mean())).sum() / denominator) if denominator > 0 else np.nan


def _statistic(which: str, sims: list[np.ndarray], gains: list[np.ndarray]) -> Callable[[np.ndarray], float]:
    """The statistic `which` of the units at `index` (a bootstrap resample of units)."""
    def compute(index: np.ndarray) -> float:
        x = np.concatenate([sims[i] for i in index])
        y = np.concatenate([gains[i] for i in index])
        similar, dissimilar = y[x > SIMILAR], y[x < -SIMILAR]
        if which == "slope":
            return _slope(x, y)
        if which == "intercept":
            return float(y.mean() - _slope(x, y) * x.mean())
        if which == "similar":
            return float(similar.mean()) if len(similar) else np.nan
        if which == "dissimilar":
            return float(dissimilar.mean()) if len(dissimilar) else np.nan
        return (float(similar.mean() - dissimilar.mean())
                if len(similar) and len(dissimilar) else np.nan)
    return compute


def summarize(samples: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Per area: slope of gain on similarity, mean gain similar / dissimilar, with bootstrap
    95% CIs over units."""
    rows = []
    for region, group in samples.groupby("region", sort=False):
        sims, gains = _by_unit(group)
        units = np.arange(len(sims))
        x = group["similarity"].to_numpy(float)  # (samples,)
        row = {"region": region, "time_bin": int(group["time_bin"].iloc[0]), "units": len(sims),
               "samples": len(group), "similar_samples": int((x > SIMILAR).sum()),
               "dissimilar_samples": int((x < -SIMILAR).sum())}
        for name, column in (("slope", "slope"), ("intercept", "intercept"),
                             ("gain_similar", "similar"), ("gain_dissimilar", "dissimilar"),
                             ("similar_minus_dissimilar", "difference")):
            compute = _statistic(column, sims, gains)
            row[name] = compute(units)
            if np.isfinite(row[name]):
                with np.errstate(invalid="ignore"):
                    row[f"{name}_ci_low"], row[f"{name}_ci_high"] = bootstrap_ci((units,), compute, seed)
            else:
                row[f"{name}_ci_low"] = row[f"{name}_ci_high"] = np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def feature_similarity_gain(ds: xr.Dataset, unattended: Mapping[str, object] = {"cue": "neutral"},
                            attended: Mapping[str, object] = {"cue": "attend"},
                            feature: str = "orientation", seed: int = 0, period: float = 180.0,
                            time_bin: int | None = None, min_selectivity: float = 0.0,
                            min_response: float = 0.1) -> pd.DataFrame:
    """Per area: units, samples, slope and intercept of gain on similarity, mean gain of
    similar and dissimilar samples and their difference, each with a bootstrap 95% CI over
    units. See the module docstring for every step."""
    samples = feature_similarity_units(ds, unattended, attended, feature, period, time_bin,
                                       min_selectivity, min_response)
    return summarize(samples, seed)

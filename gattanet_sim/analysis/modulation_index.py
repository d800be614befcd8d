"""Attentional modulation index per area and its growth along the hierarchy.

Question: how much does attention change each unit's response, and does the change grow from
V1 to IT? Biology: attention modulates responses more in higher areas, V1 < V4 < IT
(McAdams & Maunsell 1999, J Neurosci 19:431, abstract: with attention V4 responses rose by a
median of 26%, V1 responses by 8%; Luck et al. 1997; Maunsell & Cook 2002).

The attended and unattended presentations are two selections of one assembly, matched by
(stimulus_id, repetition): the same image and trial under both. By default cue "valid" vs cue
"neutral" (the mean template): both run the attention region for the same number of steps,
so they differ only in what is cued. Condition "off" (the attention region silenced) stays
available as an explicit reference, with a caveat: under `off` every area is normalised with
the batch-norm statistics of its first step, so in V1 of the recipe's model R(template) /
R(off) is 0.36 before any feature effect; a comparison with `off` mixes that normalisation
change into the attentional one. The helpers here (`matched_activity`, `rate_regions`,
`hierarchy`) and the defaults are shared with `time_course` and `variability`.

The hierarchy finding is read from `hierarchy_magnitude` (one row per area, CIs by resampling
each area's units); `hierarchy_trend` is kept for compatibility only.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from gattanet_sim.analysis.common import (
    CONFIDENCE,
    RESAMPLES,
    AnalysisError,
    bootstrap_ci,
    require,
    select,
    typed_selection,
)

ATTENDED = {"cue": "valid"}
UNATTENDED = {"cue": "neutral"}  # the mean template; {"condition": "off"} normalises differently
BIOLOGY = ("Biology: attention modulates higher areas more, V1 < V4 < IT (McAdams & Maunsell 1999, "
           "J Neurosci 19:431: V4 +26% median, V1 +8%; Luck et al. 1997; Maunsell & Cook 2002).")


def _describe(where: Mapping[str, object]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in where.items())


def matched_activity(ds: xr.Dataset, attended: Mapping[str, object], unattended: Mapping[str, object],
                     analysis: str) -> tuple[np.ndarray, np.ndarray, pd.MultiIndex]:
    """Activity of the attended and unattended presentations, matched by (stimulus_id,
    repetition): two (pair, neuroid, time_bin) arrays in the same pair order, and the pairs.

    A recording without `repetition` has one trial per stimulus (repetition 0). Refuses, in one
    line, a recording without the coordinates the selections name, a selection that holds no
    presentation or several per (stimulus_id, repetition), and selections with no pair in common.
    """
    coords = tuple(dict.fromkeys(["stimulus_id", *attended, *unattended]))
    require(ds, analysis, variables=("activity",), coords=coords)
    if dict(attended) == dict(unattended):
        raise AnalysisError(f"{analysis} needs two different selections; both are {_describe(attended)}")
    data = ds["activity"]
    attended, unattended = (typed_selection(data, where) for where in (attended, unattended))
    sides = []
    for name, where in (("attended", attended), ("unattended", unattended)):
        part = select(data, **where)
        if part.sizes["presentation"] == 0:
            present = "; ".join(f"{k}: {', '.join(map(str, sorted(set(data[k].values.tolist()))))}"
                                for k in where)
            raise AnalysisError(f"{analysis}: no presentation has {_describe(where)} for the {name} "
                                f"selection (the recording has {present})")
        reps = part["repetition"].values if "repetition" in part.coords else np.zeros(part.sizes["presentation"], int)
        keys = pd.MultiIndex.from_arrays([part["stimulus_id"].values.astype(str), reps.astype(int)],
                                         names=["stimulus_id", "repetition"])
        if keys.has_duplicates:
            raise AnalysisError(f"{analysis}: the {name} selection {_describe(where)} holds several "
                                "presentations per (stimulus_id, repetition); narrow it (e.g. add attended=...)")
        sides.append((part, keys))
    pairs = sides[0][1].intersection(sides[1][1], sort=False)
    if len(pairs) == 0:
        raise AnalysisError(f"{analysis}: no (stimulus_id, repetition) is shown under both "
                            f"{_describe(attended)} and {_describe(unattended)}")
    att, unatt = (part.isel(presentation=keys.get_indexer(pairs)).transpose(
        "presentation", "neuroid", "time_bin").values.astype(np.float64) for part, keys in sides)
    return att, unatt, pairs  # (pair, neuroid, time_bin) twice


def hierarchy(ds: xr.Dataset) -> list[str]:
    """The areas in the order they first appear in the neuroid coordinate (V1 first)."""
    return list(dict.fromkeys(ds["region"].values.tolist()))


def rate_regions(ds: xr.Dataset, *arrays: np.ndarray) -> tuple[dict[str, np.ndarray], list[str]]:
    """Area -> its neuroid columns, for areas whose activity never goes below 0 in `arrays`
    (each (pair, neuroid, time_bin)); and the areas left out (the linear class layer, whose
    logits are no firing rate: a ratio or a count of them means nothing)."""
    regions = ds["region"].values
    kept, left_out = {}, []
    for region in hierarchy(ds):
        cols = np.flatnonzero(regions == region)
        if any((a[:, cols] < 0).any() for a in arrays):
            left_out.append(region)
        else:
            kept[region] = cols
    return kept, left_out


def _unit_ami(ds: xr.Dataset, attended, unattended, analysis: str):
    """Per neuroid and time bin: R_att, R_unatt (means over the matched pairs), each
    (neuroid, time_bin); the kept areas, the left-out areas and the number of pairs."""
    att, unatt, pairs = matched_activity(ds, attended, unattended, analysis)
    kept, left_out = rate_regions(ds, att, unatt)
    if not kept:
        raise AnalysisError(f"{analysis}: every area has negative activity ({', '.join(left_out)}); "
                            "no firing rate to compare")
    return att.mean(0), unatt.mean(0), kept, left_out, len(pairs)  # (neuroid, time_bin) x 2


def modulation_index(ds: xr.Dataset, attended: Mapping[str, object] = ATTENDED,
                     unattended: Mapping[str, object] = UNATTENDED, min_response: float = 1e-3,
                     seed: int = 0) -> pd.DataFrame:
    """Attentional modulation index (AMI) per area and time bin.

    Per neuroid and time bin, R_att and R_unatt are its mean activity over the matched
    presentations of the two selections, and AMI = (R_att - R_unatt) / (R_att + R_unatt), for
    units with R_att + R_unatt >= `min_response` (silent units have no index). A multiplicative
    gain g gives AMI (g - 1) / (g + 1): 1.3 -> 0.130. Areas whose activity goes below 0 (the
    linear class layer "readout") are left out: they are listed in ``table.attrs["left_out"]``.

    One row per area x time bin: `units` (with an index), `mean_ami` with a bootstrap 95% CI
    over units, `median_ami`, and `ratio` = mean R_att / mean R_unatt over the same units (the
    population gain; robust to units nearly silent when unattended) with a paired bootstrap 95%
    CI over units. An area x time bin with no unit above `min_response` (a cascade area that has
    not fired yet) has units 0 and NaN elsewhere.
    """
    r_att, r_unatt, kept, left_out, n_pairs = _unit_ami(ds, attended, unattended, "modulation_index")
    total = r_att + r_unatt  # (neuroid, time_bin)
    ami = np.where(total >= min_response, (r_att - r_unatt) / np.where(total > 0, total, 1), np.nan)
    rows = []
    for region, cols in kept.items():
        for k, t in enumerate(ds["time_bin"].values):
            ok = cols[~np.isnan(ami[cols, k])]
            a, u, x = r_att[ok, k], r_unatt[ok, k], ami[ok, k]  # (units,)
            row = {"region": region, "time_bin": int(t), "pairs": n_pairs, "units": len(ok),
                   "mean_ami": x.mean() if len(ok) else np.nan, "median_ami": np.median(x) if len(ok) else np.nan}
            row["ami_ci_low"], row["ami_ci_high"] = bootstrap_ci((x,), np.mean, seed)
            row["ratio"] = a.mean() / u.mean() if len(ok) and u.mean() > 0 else np.nan
            row["ratio_ci_low"], row["ratio_ci_high"] = (
                bootstrap_ci((a, u), lambda p, q: np.mean(p) / np.mean(q), seed)
                if np.isfinite(row["ratio"]) else (np.nan, np.nan))
            rows.append(row)
    table = pd.DataFrame(rows, columns=["region", "time_bin", "pairs", "units", "mean_ami", "ami_ci_low",
                                        "ami_ci_high", "median_ami", "ratio", "ratio_ci_low", "ratio_ci_high"])
    table.attrs["left_out"] = left_out
    return table


def _ami_at(ds: xr.Dataset, attended, unattended, min_response: float, time_bin: int | None,
            analysis: str) -> tuple[np.ndarray, np.ndarray, list[str], list[str], int, int]:
    """Each responding unit's AMI at one time bin (default the last) and its area's position
    in the hierarchy (0 for the first area of the neuroid coordinate, even if left out): two
    (unit,) arrays; the kept areas with a unit, the left-out areas, the pairs and the bin."""
    r_att, r_unatt, kept, left_out, n_pairs = _unit_ami(ds, attended, unattended, analysis)
    times = ds["time_bin"].values
    t = int(times[-1]) if time_bin is None else int(time_bin)
    if t not in times:
        raise AnalysisError(f"{analysis}: no time bin {t} (the recording has {', '.join(map(str, times))})")
    k = int(np.flatnonzero(times == t)[0])
    order = hierarchy(ds)
    position = np.full(len(r_att), -1.0)  # (neuroid,)
    for region, cols in kept.items():
        position[cols] = order.index(region)
    total = r_att[:, k] + r_unatt[:, k]  # (neuroid,)
    ok = (position >= 0) & (total >= min_response)
    pos, ami = position[ok], (r_att[ok, k] - r_unatt[ok, k]) / total[ok]  # (unit,) each
    areas = [r for r in kept if (pos == order.index(r)).any()]
    return pos, ami, areas, left_out, n_pairs, t


def unit_ami(ds: xr.Dataset, attended: Mapping[str, object] = ATTENDED,
             unattended: Mapping[str, object] = UNATTENDED, min_response: float = 1e-3,
             time_bin: int | None = None) -> pd.DataFrame:
    """Every responding unit's AMI at one time bin (default the last): one row per unit with
    its `region` and `ami`, for drawing the distribution per area."""
    pos, ami, _, _, _, _ = _ami_at(ds, attended, unattended, min_response, time_bin, "modulation_index")
    order = hierarchy(ds)
    return pd.DataFrame({"region": [order[int(k)] for k in pos], "ami": ami})


# Biology's attended / unattended response ratios, as an AMI (g - 1) / (g + 1): McAdams & Maunsell
# 1999 (J Neurosci 19:431, abstract): V4 +26% median, V1 +8%.
MONKEY_AMI = {"V1": (1.08 - 1) / (1.08 + 1), "V4": (1.26 - 1) / (1.26 + 1)}


def hierarchy_trend(ds: xr.Dataset, attended: Mapping[str, object] = ATTENDED,
                    unattended: Mapping[str, object] = UNATTENDED, min_response: float = 1e-3,
                    time_bin: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Kept for compatibility (modulation_index_trend.csv); read the hierarchy finding from
    `hierarchy_magnitude`. This trend treats the units as independent samples of the
    hierarchy although they come from a few areas (its CI is far too narrow), and its signed rho
    lets a suppression that shrinks along the areas count as growing modulation.

    One row: at `time_bin` (default the last), the Spearman correlation between each unit's
    area position (0 for the first area in the neuroid coordinate, 1 for the next...) and its
    AMI (as in `modulation_index`), over every unit of the kept areas, with a paired bootstrap
    95% CI over units (resampling units with their positions). `abs_spearman_rho` (and its CI)
    is the same for |AMI|."""
    pos, ami, areas, left_out, n_pairs, t = _ami_at(ds, attended, unattended, min_response, time_bin,
                                                    "hierarchy_trend")
    spearman = lambda p, a: stats.spearmanr(p, a)[0]  # noqa: E731
    row = {"time_bin": t, "areas": " < ".join(areas), "units": len(ami), "pairs": n_pairs}
    for name, values in (("spearman_rho", ami), ("abs_spearman_rho", np.abs(ami))):
        row[name] = spearman(pos, values) if len(areas) >= 2 else np.nan
        prefix = name.removesuffix("spearman_rho")
        row[f"{prefix}rho_ci_low"], row[f"{prefix}rho_ci_high"] = (
            bootstrap_ci((pos, values), spearman, seed) if len(areas) >= 2 else (np.nan, np.nan))
    table = pd.DataFrame([row])
    table.attrs["left_out"] = left_out
    return table


def _percentiles(resamples: np.ndarray) -> tuple[float, float]:
    """The percentile (CONFIDENCE) interval of bootstrap resamples, (resample,) -> (low, high)."""
    tail = 100 * (1 - CONFIDENCE) / 2
    return float(np.percentile(resamples, tail)), float(np.percentile(resamples, 100 - tail))


def hierarchy_magnitude(ds: xr.Dataset, attended: Mapping[str, object] = ATTENDED,
                        unattended: Mapping[str, object] = UNATTENDED, min_response: float = 1e-3,
                        time_bin: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Does the size of the modulation grow along the hierarchy? Read at the level of areas,
    the samples the hierarchy has, and whatever the sign of the modulation.

    One row per kept area (those of `modulation_index`, the class layer included only if its
    activity never goes below 0) with a responding unit at `time_bin` (default the last), in
    hierarchy order: `position` (0 for the first area of the neuroid coordinate), `units`,
    `mean_ami` (signed), `magnitude` = |mean AMI of the area's units| and `minus_first` = this
    area's magnitude - the first row's. CIs: a seeded percentile bootstrap, 2000 resamples of
    each area's units drawn independently per area; `minus_first`'s from the difference of the
    two areas' magnitudes resample by resample (NaN where either area has < 2 units). Growth
    along the hierarchy: `minus_first` of the higher areas > 0 with its CI above 0. The table's
    ``attrs`` hold `left_out` and `time_bin`; `time_bin` is also the last column.
    """
    pos, ami, areas, left_out, n_pairs, t = _ami_at(ds, attended, unattended, min_response, time_bin,
                                                    "hierarchy_magnitude")
    order = hierarchy(ds)
    rng = np.random.default_rng(seed)
    rows, resampled = [], {}
    for region in areas:
        x = ami[pos == order.index(region)]  # (unit,)
        row = {"region": region, "position": order.index(region), "units": len(x), "mean_ami": x.mean(),
               "magnitude": abs(x.mean())}
        if len(x) >= 2:
            picks = rng.integers(0, len(x), (RESAMPLES, len(x)))  # (resample, unit)
            resampled[region] = np.abs(x[picks].mean(1))  # (resample,)
            row["magnitude_ci_low"], row["magnitude_ci_high"] = _percentiles(resampled[region])
        rows.append(row)
    first = areas[0] if areas else None
    for row in rows:
        row["minus_first"] = row["magnitude"] - rows[0]["magnitude"]
        if row["region"] in resampled and first in resampled:
            row["minus_first_ci_low"], row["minus_first_ci_high"] = _percentiles(
                resampled[row["region"]] - resampled[first])  # paired by resample
        row["time_bin"] = t
    table = pd.DataFrame(rows, columns=["region", "position", "units", "mean_ami", "magnitude", "magnitude_ci_low",
                                        "magnitude_ci_high", "minus_first", "minus_first_ci_low",
                                        "minus_first_ci_high", "time_bin"])
    table.attrs["left_out"] = left_out
    table.attrs["time_bin"] = t
    return table

"""When does attention start to modulate each area, and in which order?

Biology: attentional modulation is "larger and earlier in V4 than V2 than V1" (Buffalo,
Fries, Landman, Liang & Desimone 2010, PNAS 107:361), as if it came down the hierarchy from
above; Mehta et al. 2000 likewise found it later and weaker in V1. In GAttANet every area
receives its gain from one attention region at once, so the order in a cascade-mode network
is an open question this analysis answers. Works on sweep-mode recordings too (there, every
area is modulated from time bin 1, when the first gains act).

The architecture sets a floor under every onset (`min_onsets`). At step 0 no gain acts (the
query of step t sets the gains of step t+1). In cascade mode area i first fires at step i,
and with keys "previous" (the default) its gain at step t needs its own keys of step t-1, so
the earliest step attention can change it is i + 1 (with keys "current", max(i, 1)); a
feedback delay (`feedback_delays`) adds its steps; an area inherits the change of its input
area one step later, which may come first. In sweep mode every area can change from step 1
(plus its delay; inherited changes arrive in the same step). When every measured onset sits
on its floor (`forced`), the onset order is the order in which activity (and any delayed
feedback) reaches the areas: the architecture, not anything the network learned.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from gattanet_sim.analysis.common import CONFIDENCE, AnalysisError, bootstrap_ci
from gattanet_sim.analysis.modulation_index import ATTENDED, UNATTENDED, hierarchy, matched_activity, rate_regions

BIOLOGY = ("Biology: modulation larger and earlier in V4 than V2 than V1 (Buffalo et al. 2010, "
           "PNAS 107:361; Mehta et al. 2000).")
ORDER_RESAMPLES = 1000


def _onsets(significant: np.ndarray) -> np.ndarray:
    """Index of the first True along the last axis, NaN where none: (..., time_bin) -> (...)."""
    first = significant.argmax(-1).astype(float)
    return np.where(significant.any(-1), first, np.nan)


def _rho(position: np.ndarray, onset: np.ndarray) -> float:
    """Spearman correlation of hierarchy position and onset over the areas with an onset."""
    ok = ~np.isnan(onset)
    if ok.sum() < 2 or np.ptp(onset[ok]) == 0:
        return np.nan
    return float(stats.spearmanr(position[ok], onset[ok])[0])


def time_course(ds: xr.Dataset, attended: Mapping[str, object] = ATTENDED,
                unattended: Mapping[str, object] = UNATTENDED, alpha: float = 0.05,
                seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Population modulation per area and time bin, each area's onset, and the onset order.

    Per matched presentation pair (same stimulus_id and repetition under both selections), the
    area's modulation is the mean over its units of R_att - R_unatt (a difference in rate
    units, not the AMI: defined when an area is silent, where it is exactly 0). Table 1 (one row
    per area x time bin): `modulation`, the mean over pairs, with a percentile bootstrap
    (1 - `alpha`) CI over pairs; `significant` where that CI excludes 0; `relative`, the summed
    difference over the summed unattended response (fraction of the unattended response, NaN
    where the area is silent) with a paired bootstrap CI; `time_ms` the start of the bin
    (`time_bin_start`, NaN if the recording has none). Areas whose activity goes below 0 (the
    class layer) are left out (``attrs["left_out"]``).

    Table 2 (one row per area, in hierarchy order): `onset_bin` = its first significant time
    bin (NaN if none), `onset_ms` its start, and `rank` the area's place in the onset order
    (1 = first; ties share the lower rank; areas never modulated come last). Their 95% CIs,
    and the CI of `spearman_rho` (over the areas with an onset, between hierarchy position and
    onset bin; negative = higher areas first; NaN where fewer than two areas have an onset or all
    onsets tie, as in a sweep; the same on every row), come from resampling the
    pairs 1000 times (seeded): in each resample a bin is significant where the normal-
    approximation CI (mean +- z SE) excludes 0; an onset CI bound of inf means "not modulated
    within the recording" in that share of resamples. ``attrs["order"]`` is the onset order.
    `min_onset` is the area's architectural minimum onset step (see the module docstring;
    NaN where the recording's attributes do not say, or where the area can never be
    modulated); `min_onsets` lists every area's ("V1:1;V2:2;...", the same on every row) and
    `forced` is True when every area's onset is the first recorded time bin at or after its
    minimum (NaN without the attributes `model_config` and `mode`).
    """
    att, unatt, pairs = matched_activity(ds, attended, unattended, "time_course")
    kept, left_out = rate_regions(ds, att, unatt)
    if not kept:
        raise AnalysisError(f"time_course: every area has negative activity ({', '.join(left_out)})")
    times = ds["time_bin"].values
    start = ds["time_bin_start"].values if "time_bin_start" in ds.coords else None  # (neuroid, time_bin)
    diff = np.stack([(att[:, c] - unatt[:, c]).mean(1) for c in kept.values()], 1)  # (pair, area, time_bin)
    base = np.stack([unatt[:, c].mean(1) for c in kept.values()], 1)  # (pair, area, time_bin)
    confidence = 1 - alpha
    rows = []
    for i, (region, cols) in enumerate(kept.items()):
        for k, t in enumerate(times):
            d, b = diff[:, i, k], base[:, i, k]  # (pair,)
            low, high = _ci((d,), np.mean, seed, confidence)
            row = {"region": region, "time_bin": int(t),
                   "time_ms": float(np.median(start[cols, k])) if start is not None else np.nan,
                   "pairs": len(d), "modulation": d.mean(), "ci_low": low, "ci_high": high,
                   "significant": bool(low > 0 or high < 0)}
            silent = b.sum() <= 0
            row["relative"] = np.nan if silent else d.sum() / b.sum()
            row["relative_ci_low"], row["relative_ci_high"] = (
                (np.nan, np.nan) if silent else _ci((d, b), lambda p, q: np.sum(p) / np.sum(q), seed, confidence))
            rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs["left_out"] = left_out
    significant = table["significant"].to_numpy().reshape(len(kept), len(times))  # (area, time_bin)
    onsets = _onset_table(diff, significant, list(kept), hierarchy(ds), table, alpha, seed)
    return table, _with_minimum(onsets, min_onsets(ds), np.sort(times))


def min_onsets(ds: xr.Dataset) -> dict[str, float] | None:
    """Area -> the earliest step at which attention can change its activity (NaN: never), from
    the recording's attributes `mode` and `model_config` (keys, attention_areas,
    readout_gain, feedback_delays: a delayed gain acts delay_i steps later; the recording's own
    `feedback_delays` attribute, set by `experiment --feedback-delays`, comes first); areas in
    the order of the `time_mapping` attribute (every area of the model), else of the neuroid
    coordinate. None when the attributes are missing."""
    config = ds.attrs.get("model_config")
    mode = ds.attrs.get("mode")
    if not config:
        return None
    config = json.loads(config)
    mode = mode or config.get("mode")
    if mode not in ("sweep", "cascade"):
        return None
    areas = list(json.loads(ds.attrs.get("time_mapping", "") or "{}")) or hierarchy(ds)
    chosen = config.get("attention_areas") or areas
    gained = [a for a in areas if a in chosen]
    if gained and gained[-1] == areas[-1] and not config.get("readout_gain", True):
        gained = gained[:-1]  # the read-out reads but is not gained
    if not config.get("attention", True):
        gained = []
    keys = config.get("keys", "previous")
    recorded = ds.attrs.get("feedback_delays")  # the experiment's, which may override the model's
    delays = (json.loads(recorded) if isinstance(recorded, str) and recorded else None) \
        or config.get("feedback_delays") or {}
    if not isinstance(delays, dict):  # one per area, in order
        delays = dict(zip(areas, delays))
    floor: dict[str, float] = {}
    for i, area in enumerate(areas):
        inherited = np.inf if i == 0 else floor[areas[i - 1]] + (mode == "cascade")
        own = np.inf
        if area in gained:
            fires = i if mode == "cascade" else 0
            own = float(max(fires + (keys == "previous"), 1) + delays.get(area, 0))
        floor[area] = min(own, inherited)
    return {a: (v if np.isfinite(v) else np.nan) for a, v in floor.items()}


def _with_minimum(onsets: pd.DataFrame, floor: dict[str, float] | None,
                  times: np.ndarray) -> pd.DataFrame:
    """The onset table with min_onset, min_onsets and forced (see `time_course`)."""
    areas = onsets["region"].tolist()
    if floor is None or any(a not in floor for a in areas):
        onsets["min_onset"], onsets["min_onsets"], onsets["forced"] = np.nan, "", np.nan
        return onsets
    minimum = np.array([floor[a] for a in areas])  # (area,) NaN: never modulated
    onsets["min_onset"] = minimum
    onsets["min_onsets"] = ";".join(f"{a}:{m:g}" if np.isfinite(m) else f"{a}:never"
                                    for a, m in zip(areas, minimum))
    at_floor = []
    for onset, m in zip(onsets["onset_bin"], minimum):
        if np.isnan(onset):  # never modulated: it takes no part in the order
            continue
        reachable = times[times >= m] if np.isfinite(m) else times[:0]  # bins at or after the floor
        at_floor.append(len(reachable) > 0 and onset == reachable[0])
    # Forced: the areas that are modulated (two or more, or there is no order) all start on their
    # floors, so their order is the architecture's; an area never modulated does not unforce it.
    onsets["forced"] = bool(len(at_floor) >= 2 and all(at_floor))
    return onsets


def _ci(samples: tuple[np.ndarray, ...], statistic, seed: int, confidence: float) -> tuple[float, float]:
    """`bootstrap_ci` at another confidence level than 95% when `alpha` asks for it."""
    if confidence == CONFIDENCE:
        return bootstrap_ci(samples, statistic, seed)
    if min(len(s) for s in samples) < 2:
        return np.nan, np.nan
    result = stats.bootstrap(samples, statistic, paired=True, vectorized=False, n_resamples=2000,
                             confidence_level=confidence, method="percentile",
                             random_state=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _onset_table(diff: np.ndarray, significant: np.ndarray, areas: list[str], order: list[str],
                 table: pd.DataFrame, alpha: float, seed: int) -> pd.DataFrame:
    """Onsets (first significant bin), onset order and the position-onset Spearman, with CIs
    from resampling pairs (see `time_course`). diff: (pair, area, time_bin)."""
    times = np.sort(table["time_bin"].unique())
    ms = table.pivot(index="region", columns="time_bin", values="time_ms").loc[areas].to_numpy()  # (area, time_bin)
    position = np.array([order.index(a) for a in areas], float)
    onset = _onsets(significant)  # (area,) index into times
    rho = _rho(position, onset)
    rng = np.random.default_rng(seed)
    n = len(diff)
    z = stats.norm.ppf(1 - alpha / 2)
    boot_onset, boot_rank, boot_rho = [], [], []
    for _ in range(ORDER_RESAMPLES if n >= 2 else 0):
        sample = diff[rng.integers(0, n, n)]  # (pair, area, time_bin)
        mean, se = sample.mean(0), sample.std(0, ddof=1) / np.sqrt(n)  # (area, time_bin)
        o = _onsets(np.abs(mean) > z * se)  # (area,)
        boot_onset.append(o)
        boot_rank.append(_ranks(o))
        boot_rho.append(_rho(position, o))
    q = [(1 - CONFIDENCE) / 2 * 100, (1 + CONFIDENCE) / 2 * 100]
    never = len(times)  # an area not modulated in a resample: after the last bin
    pct = lambda v: (np.percentile(np.nan_to_num(np.array(v, float), nan=never), q, axis=0)  # noqa: E731
                     if len(v) else np.full((2, len(areas)), np.nan))
    onset_ci, rank_ci = pct(boot_onset), pct(boot_rank)  # (2, area) each
    finite = np.array(boot_rho, float)[np.isfinite(boot_rho)] if boot_rho else np.array([])
    rho_ci = np.percentile(finite, q) if len(finite) else [np.nan, np.nan]
    ranks = _ranks(onset)
    rows = []
    for i, area in enumerate(areas):
        k = onset[i]
        rows.append({"region": area, "position": int(position[i]),
                     "onset_bin": times[int(k)] if np.isfinite(k) else np.nan,
                     "onset_ms": ms[i, int(k)] if np.isfinite(k) else np.nan,
                     "onset_ci_low": _bin(times, onset_ci[0, i]), "onset_ci_high": _bin(times, onset_ci[1, i]),
                     "rank": ranks[i], "rank_ci_low": rank_ci[0, i], "rank_ci_high": rank_ci[1, i],
                     "spearman_rho": rho, "rho_ci_low": rho_ci[0], "rho_ci_high": rho_ci[1]})
    onsets = pd.DataFrame(rows)
    onsets.attrs["order"] = " < ".join(onsets.dropna(subset=["onset_bin"]).sort_values(
        ["onset_bin", "position"])["region"]) or "(no area modulated)"
    return onsets


def _ranks(onset: np.ndarray) -> np.ndarray:
    """Rank of each area in the onset order (1 = first, ties share the lower rank); areas
    never modulated come after every modulated one."""
    return stats.rankdata(np.nan_to_num(onset, nan=np.inf), method="min").astype(float)


def _bin(times: np.ndarray, index: float) -> float:
    """A time-bin index (a percentile of indices, maybe fractional) in time-bin units; inf
    past the last bin (not modulated within the recording)."""
    if not np.isfinite(index) or index > len(times) - 1:
        return np.inf
    return float(np.interp(index, np.arange(len(times)), times))

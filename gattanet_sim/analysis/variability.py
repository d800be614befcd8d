"""Trial-to-trial variability under attention: Fano factors and pairwise noise correlations.

Biology: attention lowers the Fano factor of V4 neurons (Mitchell, Sundberg & Reynolds 2007,
Neuron 55:131) and the correlation of their trial-to-trial fluctuations (Cohen & Maunsell
2009, Nat Neurosci 12:1594: from its abstract, over 80% of the attentional improvement in
V4's population sensitivity comes from reduced correlations; Mitchell et al. 2009).

The network gives rates, not spikes: repeated noisy trials (`experiment --trials N
--unit-noise SD`) are turned into a spike-count proxy, counts = max(rate, 0) * count_scale.
A Fano factor (var / mean) of a scaled rate scales with count_scale, so only its comparison
between attended and unattended trials (one scale for both) means anything; correlations
do not depend on the scale. For the same reason a gain g that scales a unit's rate and its
noise alike multiplies its Fano factor by g: compare the Fano change with the change of the
mean count (`mean_count_attended` / `mean_count_unattended`) before reading it as a change of
variability itself.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
import xarray as xr

from gattanet_sim.analysis.common import AnalysisError, bootstrap_ci
from gattanet_sim.analysis.modulation_index import ATTENDED, UNATTENDED, matched_activity, rate_regions

BIOLOGY = ("Biology: attention lowers Fano factors (Mitchell, Sundberg & Reynolds 2007, Neuron 55:131) and "
           "noise correlations (Cohen & Maunsell 2009, Nat Neurosci 12:1594; Mitchell et al. 2009).")
MEAN_COUNT = 10.0  # default mean count under `unattended`: a 200-ms window at 50 spikes/s


def _by_stimulus(values: np.ndarray, pairs: pd.MultiIndex, stimuli: list[str]) -> np.ndarray:
    """(pair, unit) -> (stimulus, trial, unit), the trials of each stimulus in pair order."""
    sid = pairs.get_level_values("stimulus_id")
    trials = min((sid == s).sum() for s in stimuli)
    return np.stack([values[np.flatnonzero(sid == s)[:trials]] for s in stimuli])


def _fano(counts: np.ndarray) -> np.ndarray:
    """Per stimulus and unit: var (ddof 1) / mean over trials; NaN where the mean is 0.
    (stimulus, trial, unit) -> (stimulus, unit)."""
    mean = counts.mean(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mean > 0, counts.var(1, ddof=1) / np.where(mean > 0, mean, 1), np.nan)


def _noise_correlations(counts: np.ndarray) -> np.ndarray:
    """Per unit pair: Pearson r of the trial-to-trial fluctuations, per stimulus (each unit
    z-scored over that stimulus's trials), averaged over the stimuli where both units vary.
    (stimulus, trial, unit) -> (pair,), pairs in `np.triu_indices(unit, 1)` order."""
    sd = counts.std(1, keepdims=True)  # (stimulus, 1, unit)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(sd > 0, (counts - counts.mean(1, keepdims=True)) / np.where(sd > 0, sd, 1), np.nan)
    r = np.einsum("sti,stj->sij", np.nan_to_num(z), np.nan_to_num(z)) / counts.shape[1]  # (stimulus, unit, unit)
    valid = (sd[:, 0, :, None] > 0) & (sd[:, 0, None, :] > 0)  # (stimulus, unit, unit)
    i, j = np.triu_indices(counts.shape[2], 1)
    with np.errstate(invalid="ignore"):
        return np.where(valid[:, i, j].any(0), np.nansum(np.where(valid, r, 0)[:, i, j], 0)
                        / valid[:, i, j].sum(0), np.nan)  # (pair,)


def variability(ds: xr.Dataset, attended: Mapping[str, object] = ATTENDED,
                unattended: Mapping[str, object] = UNATTENDED, count_scale: float | None = None,
                max_pairs_units: int = 64, time_bin: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Fano factors and noise correlations per area, attended vs unattended trials.

    Needs >= 2 repetitions (trials) of every stimulus under both selections, matched by
    (stimulus_id, repetition); reads one time bin (default the last). Counts = max(rate, 0) *
    scale, where scale is `count_scale`, or by default per area the one that makes the mean
    count over the area's units, stimuli and trials under `unattended` equal 10 (a 200-ms
    window at 50 spikes/s); the same scale for both selections. Areas whose activity goes
    below 0 (the class layer) are left out (``attrs["left_out"]``).

    Fano factor: per unit and stimulus var (ddof 1) / mean over trials where the mean count is
    > 0; per unit, the mean over the stimuli where it is defined under both selections; per
    area `fano_unattended`, `fano_attended` (means over those units, bootstrap 95% CIs over
    units) and `fano_change` = attended - unattended (paired bootstrap CI over units).
    Noise correlation: per stimulus each unit's counts are z-scored over trials and Pearson r
    taken for every pair of up to `max_pairs_units` units of the area (a seeded subsample of
    the units whose counts vary under both selections), then averaged over stimuli; per area
    `r_unattended`, `r_attended` and `r_change` with bootstrap 95% CIs over pairs. These CIs
    treat units (pairs) as independent samples; correlated noise and pairs sharing units make
    them too narrow, so read a small change with a CI that barely excludes 0 with care.
    """
    att, unatt, pairs = matched_activity(ds, attended, unattended, "variability")
    stimuli = list(dict.fromkeys(pairs.get_level_values("stimulus_id")))
    trials = pd.Series(pairs.get_level_values("stimulus_id")).value_counts()
    if trials.min() < 2:
        raise AnalysisError("variability needs >= 2 repetitions of every stimulus under both selections "
                            f"(found {trials.min()}; record with --trials N --unit-noise SD)")
    kept, left_out = rate_regions(ds, att, unatt)
    if not kept:
        raise AnalysisError(f"variability: every area has negative activity ({', '.join(left_out)})")
    times = ds["time_bin"].values
    t = int(times[-1]) if time_bin is None else int(time_bin)
    if t not in times:
        raise AnalysisError(f"variability: no time bin {t} (the recording has {', '.join(map(str, times))})")
    k = int(np.flatnonzero(times == t)[0])
    rng = np.random.default_rng(seed)
    rows = []
    for region, cols in kept.items():
        rate_a = _by_stimulus(np.maximum(att[:, cols, k], 0), pairs, stimuli)  # (stimulus, trial, unit)
        rate_u = _by_stimulus(np.maximum(unatt[:, cols, k], 0), pairs, stimuli)
        scale = count_scale if count_scale is not None else (
            MEAN_COUNT / rate_u.mean() if rate_u.mean() > 0 else np.nan)
        row = {"region": region, "time_bin": t, "stimuli": len(stimuli), "trials": rate_a.shape[1],
               "count_scale": scale, "mean_count_unattended": rate_u.mean() * scale,
               "mean_count_attended": rate_a.mean() * scale}
        if not np.isfinite(scale):  # a silent area
            rows.append(row)
            continue
        fano_a, fano_u = _fano(rate_a * scale), _fano(rate_u * scale)  # (stimulus, unit)
        both = ~np.isnan(fano_a) & ~np.isnan(fano_u)  # (stimulus, unit)
        units = both.any(0)
        with np.errstate(invalid="ignore"):
            fa = (np.where(both, fano_a, 0).sum(0) / both.sum(0))[units]  # (unit,)
            fu = (np.where(both, fano_u, 0).sum(0) / both.sum(0))[units]
        row.update(_compare("fano", fa, fu, seed), units=int(units.sum()))
        varies = (rate_a.std(1) > 0).any(0) & (rate_u.std(1) > 0).any(0)  # (unit,)
        chosen = np.flatnonzero(varies)
        if len(chosen) > max_pairs_units:
            chosen = np.sort(rng.choice(chosen, max_pairs_units, replace=False))
        ra = _noise_correlations(rate_a[:, :, chosen] * scale)  # (pair,)
        ru = _noise_correlations(rate_u[:, :, chosen] * scale)
        ok = ~np.isnan(ra) & ~np.isnan(ru)
        row.update(_compare("r", ra[ok], ru[ok], seed), pairs=int(ok.sum()))
        rows.append(row)
    columns = ["region", "time_bin", "stimuli", "trials", "count_scale", "mean_count_unattended",
               "mean_count_attended", "units", "fano_unattended", "fano_unattended_ci_low",
               "fano_unattended_ci_high", "fano_attended", "fano_attended_ci_low", "fano_attended_ci_high",
               "fano_change", "fano_change_ci_low", "fano_change_ci_high", "pairs", "r_unattended",
               "r_unattended_ci_low", "r_unattended_ci_high", "r_attended", "r_attended_ci_low",
               "r_attended_ci_high", "r_change", "r_change_ci_low", "r_change_ci_high"]
    table = pd.DataFrame(rows, columns=columns)
    table.attrs["left_out"] = left_out
    return table


def _compare(name: str, attended: np.ndarray, unattended: np.ndarray, seed: int) -> dict[str, float]:
    """Means of a per-sample measure under both selections and their paired difference,
    each with a bootstrap 95% CI over samples."""
    out: dict[str, float] = {}
    for label, values in (("unattended", unattended), ("attended", attended)):
        out[f"{name}_{label}"] = values.mean() if len(values) else np.nan
        out[f"{name}_{label}_ci_low"], out[f"{name}_{label}_ci_high"] = bootstrap_ci((values,), np.mean, seed)
    change = attended - unattended  # (sample,)
    out[f"{name}_change"] = change.mean() if len(change) else np.nan
    out[f"{name}_change_ci_low"], out[f"{name}_change_ci_high"] = bootstrap_ci((change,), np.mean, seed)
    return out

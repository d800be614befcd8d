"""Trial-to-trial variability under attention: Fano factors and pairwise noise correlations.

Biology: attention lowers the Fano factor of V4 neurons (Mitchell, Sundberg & Reynolds 2007,
Neuron 55:131) and the correlation of their trial-to-trial fluctuations (Cohen & Maunsell
2009, Nat Neurosci 12:1594: from its abstract, over 80% of the attentional improvement in
V4's population sensitivity comes from reduced correlations; Mitchell et al. 2009).

The network gives rates, not spikes: repeated noisy trials (`experiment --trials N
--unit-noise SD`) are turned into a spike-count proxy, counts = max(rate, 0) * count_scale.
The Fano factor (var / mean) of a scaled rate scales with count_scale, so the scale decides
what a Fano change means. With one scale for both selections, a gain g that scales a unit's
rate and its noise alike multiplies its Fano factor by g: any enhancement reads as "more
variable", any suppression as "less". So by default the comparison is mean-matched (in the
spirit of Churchland et al. 2010's mean-matched Fano factor, here at the level of an area):
each selection gets its own scale, which brings its mean count over the area to MEAN_COUNT,
and the Fano factor measures variability relative to the mean (MEAN_COUNT x CV^2 for a unit
at the area's mean); a pure gain leaves it unchanged. Noise correlations do not depend on
the scale.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr

from gattanet_sim.analysis.common import AnalysisError, bootstrap_ci
from gattanet_sim.analysis.modulation_index import ATTENDED, UNATTENDED, matched_activity, rate_regions

BIOLOGY = ("Biology: attention lowers Fano factors (Mitchell, Sundberg & Reynolds 2007, Neuron 55:131) and "
           "noise correlations (Cohen & Maunsell 2009, Nat Neurosci 12:1594; Mitchell et al. 2009).")
MEAN_COUNT = 10.0  # default mean count of an area: a 200-ms window at 50 spikes/s


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


def _scale(rates: np.ndarray) -> float:
    """The count scale that makes the mean count over `rates` (any shape) MEAN_COUNT; NaN
    for a silent area."""
    return MEAN_COUNT / rates.mean() if rates.mean() > 0 else np.nan


def variability(ds: xr.Dataset, attended: Mapping[str, object] = ATTENDED,
                unattended: Mapping[str, object] = UNATTENDED, count_scale: float | None = None,
                max_pairs_units: int = 64, time_bin: int | None = None, seed: int = 0,
                mean_matched: bool = True) -> pd.DataFrame:
    """Fano factors and noise correlations per area, attended vs unattended trials.

    Needs >= 2 repetitions (trials) of every stimulus under both selections, matched by
    (stimulus_id, repetition); reads one time bin (default the last). Counts = max(rate, 0) *
    scale. `mean_matched` (default): per area and selection, the scale that makes its mean
    count over the area's units, stimuli and trials MEAN_COUNT (10, a 200-ms window at
    50 spikes/s), so a pure gain leaves the Fano factor unchanged and a Fano change is a change
    of variability relative to the mean. `mean_matched=False`: one scale per area for both
    selections, `count_scale` or by default the one that makes the unattended mean count 10;
    it multiplies the Fano factor of a gain g on rate and noise by g, so it penalises any
    enhancement (kept to compare with earlier tables). Columns `count_scale_attended` and
    `count_scale_unattended` give the two scales; `count_scale` is the unattended one.
    Areas whose activity goes below 0 (the class layer) are left out (``attrs["left_out"]``).

    Fano factor: per unit and stimulus var (ddof 1) / mean over trials where the mean count is
    > 0; per unit, the mean over the stimuli where it is defined under both selections; per
    area `fano_unattended`, `fano_attended` (means over those units, bootstrap 95% CIs over
    units) and `fano_change` = attended - unattended (paired bootstrap CI over units).
    Noise correlation (independent of the scale): per stimulus each unit's counts are z-scored
    over trials and Pearson r taken for every pair of up to `max_pairs_units` units of the area
    (a seeded subsample of the units whose counts vary under both selections), then averaged
    over stimuli; per area `r_unattended`, `r_attended` and `r_change` with bootstrap 95% CIs
    over pairs; `r_unattended_excludes_0` is True where the unattended r's CI lies above 0
    (else there was no correlation for attention to reduce). These CIs treat units (pairs) as
    independent samples; correlated noise and pairs sharing units make them too narrow, so read
    a small change with a CI that barely excludes 0 with care.
    """
    if mean_matched and count_scale is not None:
        raise AnalysisError("variability: count_scale fixes one scale for both selections; "
                            "pass mean_matched=False with it")
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
        scale_u = count_scale if count_scale is not None else _scale(rate_u)
        scale_a = _scale(rate_a) if mean_matched else scale_u
        row = {"region": region, "time_bin": t, "stimuli": len(stimuli), "trials": rate_a.shape[1],
               "count_scale": scale_u, "mean_count_unattended": rate_u.mean() * scale_u,
               "mean_count_attended": rate_a.mean() * scale_a, "r_unattended_excludes_0": False,
               "count_scale_attended": scale_a, "count_scale_unattended": scale_u}
        if not (np.isfinite(scale_a) and np.isfinite(scale_u)):  # a silent area
            rows.append(row)
            continue
        count_a, count_u = rate_a * scale_a, rate_u * scale_u  # (stimulus, trial, unit)
        fano_a, fano_u = _fano(count_a), _fano(count_u)  # (stimulus, unit)
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
        ra = _noise_correlations(count_a[:, :, chosen])  # (pair,)
        ru = _noise_correlations(count_u[:, :, chosen])
        ok = ~np.isnan(ra) & ~np.isnan(ru)
        row.update(_compare("r", ra[ok], ru[ok], seed), pairs=int(ok.sum()))
        row["r_unattended_excludes_0"] = bool(row["r_unattended_ci_low"] > 0)
        rows.append(row)
    columns = ["region", "time_bin", "stimuli", "trials", "count_scale", "mean_count_unattended",
               "mean_count_attended", "units", "fano_unattended", "fano_unattended_ci_low",
               "fano_unattended_ci_high", "fano_attended", "fano_attended_ci_low", "fano_attended_ci_high",
               "fano_change", "fano_change_ci_low", "fano_change_ci_high", "pairs", "r_unattended",
               "r_unattended_ci_low", "r_unattended_ci_high", "r_attended", "r_attended_ci_low",
               "r_attended_ci_high", "r_change", "r_change_ci_low", "r_change_ci_high",
               "r_unattended_excludes_0", "count_scale_attended", "count_scale_unattended"]
    table = pd.DataFrame(rows, columns=columns)
    table.attrs["left_out"] = left_out
    table.attrs["mean_matched"] = mean_matched
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

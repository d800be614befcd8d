"""Cued detection: signal-detection theory (d', criterion) of "is a <question> present?".

A trial asks whether its question class is in the display; the read-out answers "yes" when
that class's logit is > 0 (a sigmoid per class, threshold 0.5). Hits and false alarms per cue
type give sensitivity d' and criterion c (equal-variance Gaussian SDT), so a cue that only
makes the model say "yes" more often (c falls, d' stays) is told apart from one that helps it
see (d' rises). The displays are paired across cue types, so differences to the reference cue
are bootstrapped over displays resampled jointly. A grey image holds nothing: it can only
false-alarm.
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
    proportion_ci,
    require,
)
from gattanet_sim.signal_detection import sdt

CUE_TYPES = ("valid", "neutral", "invalid", "shuffled", "negated", "none", "bottom-up", "off")
DISPLAYS = ("array", "grey")
# In a recording (the experiment's vocabulary) `cue` is the cue's type and `attended` the class it
# names; the tables call them cue_type and cue.
COORDS = ("question", "present", "cue", "attended", "display", "stimulus_id")
COUNTS = ("hits", "n_present", "false_alarms", "n_absent")
CHUNK = 250  # resamples drawn at once
TAILS = (100 * (1 - CONFIDENCE) / 2, 100 * (1 + CONFIDENCE) / 2)


def responses(ds: xr.Dataset, time_bin: int | None = None) -> pd.DataFrame:
    """One row per presentation x time bin: the decision variable (the question class's logit)
    and the answer (yes: logit > 0), with what the analysis groups and pairs by."""
    require(ds, "detection", variables=("logits",), coords=COORDS)
    present = ds["present"].values
    if present.dtype.kind not in "biuf" or not np.isin(present, (0, 1)).all():
        raise AnalysisError(f"detection: present must be 0/1, got {sorted(set(present.tolist()))[:5]}")
    present = present.astype(bool)
    display = ds["display"].values.astype(str)
    if (present & (display == "grey")).any():
        raise AnalysisError("detection: a grey display is marked present; it holds no class")
    question = ds["question"].values.astype(str)
    position = pd.Index(ds["class"].values.astype(str)).get_indexer(question)  # (presentation,)
    if (position < 0).any():
        unknown = sorted(set(question[position < 0].tolist()))
        raise AnalysisError(f"detection: question {unknown[0]!r} is not among the classes "
                            f"{', '.join(ds['class'].values.astype(str))}")
    logits = ds["logits"]
    if time_bin is not None:
        if time_bin not in ds["time_bin"].values:
            raise AnalysisError(f"detection: no time bin {time_bin}; the recording has "
                                f"{', '.join(map(str, ds['time_bin'].values))}")
        logits = logits.sel(time_bin=[time_bin])
    decision = logits.isel({"class": xr.DataArray(position, dims="presentation")})
    decision = decision.transpose("presentation", "time_bin").values  # (presentation, time_bin)
    n, bins = decision.shape
    columns = {name: np.repeat(ds[name].values, bins) for name in
               ("stimulus_id", "display", "question", "condition", "repetition") if name in ds.coords}
    kind = ds["cue"].values.astype(str)
    if "condition" in ds.coords:  # uncued trials: bottom-up or off, named by their condition
        kind = np.where(kind == "none", ds["condition"].values.astype(str), kind)
    columns.update(cue_type=np.repeat(kind, bins), cue=np.repeat(ds["attended"].values, bins))
    return pd.DataFrame({**columns, "present": np.repeat(present, bins),
                         "time_bin": np.tile(logits["time_bin"].values.astype(int), n),
                         "decision": decision.ravel(), "yes": decision.ravel() > 0})


def _counts(table: pd.DataFrame) -> pd.DataFrame:
    """Per (display, cue_type, stimulus_id): hits, present trials, false alarms, absent trials,
    one column per (count, time_bin)."""
    table = table.assign(hits=table.yes & table.present, n_present=table.present,
                         false_alarms=table.yes & ~table.present, n_absent=~table.present)
    keys = ["display", "cue_type", "stimulus_id", "time_bin"]
    return table.groupby(keys)[list(COUNTS)].sum().unstack("time_bin", fill_value=0)


def _boot(x: np.ndarray, seed: int) -> np.ndarray:
    """Summed counts of displays resampled with replacement, `RESAMPLES` times: x (display,
    count, time_bin) -> (resample, count, time_bin). Stratified: displays with the same numbers
    of present and absent trials (under every cue type in x) are resampled among themselves, so
    those numbers never change. Vectorised: how often each display is drawn, times its counts."""
    rng = np.random.default_rng(seed)
    flat = x.reshape(len(x), -1)  # (display, count * time_bin)
    trials = x[:, [c for c in range(x.shape[1]) if c % 4 in (1, 3)], 0]  # (display, n_*)
    strata = np.unique(trials, axis=0, return_inverse=True)[1].ravel()
    total = np.zeros((RESAMPLES, flat.shape[1]))
    for s in np.unique(strata):
        part = flat[strata == s]  # (m, count * time_bin)
        m = len(part)
        for start in range(0, RESAMPLES, CHUNK):  # bounded memory: CHUNK x m draws at a time
            b = min(CHUNK, RESAMPLES - start)
            draws = rng.integers(0, m, (b, m)) + m * np.arange(b)[:, None]  # (b, m)
            weights = np.bincount(draws.ravel(), minlength=b * m).reshape(b, m)
            total[start:start + b] += weights @ part
    return total.reshape(RESAMPLES, *x.shape[1:])


def _dc(counts: np.ndarray) -> np.ndarray:
    """(..., count, time_bin) summed counts -> (2, ..., time_bin): d' and c."""
    return np.array(sdt(*np.moveaxis(counts, -2, 0)))


def _ci(samples: np.ndarray) -> np.ndarray:
    """(2, resample, time_bin) -> (2, 2, time_bin): percentile 95% interval, low and high."""
    return np.moveaxis(np.percentile(samples, TAILS, axis=1), 0, 1)


def _order(values, known: tuple[str, ...]) -> list:
    return sorted(set(values), key=lambda v: (known.index(v) if v in known else len(known), v))


def detection_table(ds: xr.Dataset, reference: str = "neutral", seed: int = 0) -> pd.DataFrame:
    """Per (display, cue_type, time_bin): hit and false-alarm rates (Wilson 95% CIs), d' and c
    (bootstrap 95% CIs over displays, present and absent ones resampled separately) and, for cue
    types but `reference`, the paired difference in d' and c to it (the same displays under
    both, resampled jointly). A cell without present or absent trials has NaN d' and a `note`."""
    counts = _counts(responses(ds))  # (display, cue_type, stimulus_id) x (count, time_bin)
    bins = counts.columns.get_level_values("time_bin").unique().sort_values()
    columns = pd.MultiIndex.from_product([COUNTS, bins])
    cells = {key: counts.loc[key].reindex(columns=columns, fill_value=0)
             for key in counts.index.droplevel("stimulus_id").unique()}
    x_of = {key: c.to_numpy(float).reshape(len(c), 4, len(bins)) for key, c in cells.items()}
    names = ("d_prime", "criterion")
    rows = []
    for display in _order({d for d, _ in cells}, DISPLAYS):
        for cue_type in _order({q for d, q in cells if d == display}, CUE_TYPES):
            x = x_of[display, cue_type]  # (stimulus, count, time_bin)
            hits, n_p, fas, n_a = x.sum(axis=0)  # each (time_bin,)
            point, interval = _dc(x.sum(0)), _ci(_dc(_boot(x, seed)))  # (2, T), (2, 2, T)
            note = "" if n_p[0] and n_a[0] else "no absent trials: d' and c undefined" if n_p[0] \
                else "no present trials (a grey image can only false-alarm): d' and c undefined"
            paired = (display, reference) in cells and cue_type != reference
            if paired:  # the displays shown under both, in the same order
                shared = cells[display, cue_type].index.intersection(cells[display, reference].index)
                a = x_of[display, cue_type][cells[display, cue_type].index.get_indexer(shared)]
                b = x_of[display, reference][cells[display, reference].index.get_indexer(shared)]
                joint = _boot(np.concatenate([a, b], axis=1), seed)  # (B, 8, T): resampled together
                diff = _dc(a.sum(0)) - _dc(b.sum(0))  # (2, T)
                diff_interval = _ci(_dc(joint[:, :4]) - _dc(joint[:, 4:]))  # (2, 2, T)
                if not note and np.isnan(diff).all():
                    note = f"no displays with present and absent trials shared with {reference}"
            for i, t in enumerate(bins):
                row = {"display": display, "cue_type": cue_type, "time_bin": int(t),
                       "displays": len(x), "n_present": int(n_p[i]), "n_absent": int(n_a[i]),
                       "hits": int(hits[i]), "false_alarms": int(fas[i])}
                for name, k, n in (("hit_rate", hits[i], n_p[i]), ("fa_rate", fas[i], n_a[i])):
                    row[name] = k / n if n else np.nan
                    row[f"{name}_ci_low"], row[f"{name}_ci_high"] = proportion_ci(int(k), int(n))
                for j, name in enumerate(names):
                    row.update({name: point[j, i], f"{name}_ci_low": interval[j, 0, i],
                                f"{name}_ci_high": interval[j, 1, i]})
                if paired:
                    row["paired_displays"] = len(shared)
                    for j, name in enumerate(f"{n}_minus_{reference}" for n in names):
                        row.update({name: diff[j, i], f"{name}_ci_low": diff_interval[j, 0, i],
                                    f"{name}_ci_high": diff_interval[j, 1, i]})
                rows.append({**row, "note": note})
    table = pd.DataFrame(rows)
    return table[[c for c in table.columns if c != "note"] + ["note"]]


def seed_summary(tables: Mapping[int, pd.DataFrame], contrast: str = "d_prime_minus_neutral",
                 time_bin: int | None = None) -> pd.DataFrame:
    """Across seeds (one `detection_table` per seed, keyed by seed): per (display, cue_type,
    time_bin) the mean of `contrast` with a 95% t interval over seeds, the seeds' count and
    values. A seed is one network: the interval is what generalises across networks."""
    if not tables:
        raise AnalysisError("seed_summary needs at least one detection table")
    missing = [s for s, t in tables.items() if contrast not in t.columns]
    if missing:
        raise AnalysisError(f"seed_summary: the table of seed {missing[0]} has no column {contrast!r}")
    both = pd.concat([t.assign(seed=s) for s, t in tables.items()], ignore_index=True)
    if time_bin is not None:
        both = both[both.time_bin == time_bin]
    rows = []
    for (display, cue_type, t), group in both.groupby(["display", "cue_type", "time_bin"], sort=False):
        group = group[np.isfinite(group[contrast].astype(float))]
        if group.empty:
            continue  # e.g. the reference cue type itself, or d' of a grey image
        values = group[contrast].to_numpy(float)
        n = len(values)
        mean = values.mean()
        half = stats.t.ppf((1 + CONFIDENCE) / 2, n - 1) * values.std(ddof=1) / np.sqrt(n) \
            if n > 1 else np.nan
        rows.append({"display": display, "cue_type": cue_type, "time_bin": int(t),
                     "contrast": contrast, "mean": mean, "ci_low": mean - half, "ci_high": mean + half,
                     "n_seeds": n, "values": ", ".join(f"{s}={v:.4g}" for s, v in zip(group.seed, values)),
                     "note": "" if n > 1 else "fewer than 2 seeds: no interval"})
    return pd.DataFrame(rows)

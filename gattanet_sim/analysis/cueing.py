"""Cueing (Posner 1980): accuracy under valid, neutral and invalid top-down cues.

A cue sets the global query to a template before the network answers: valid (the template of
the image's target), invalid (another class's), neutral (the mean of all templates). A
composite search display holds the target among distractors of other classes, so the read-out
is right when it reports the target's class, and a cue can steer which item it reports.
`reaction_times` adds Posner's other measure, speed: the first time bin at which the read-out
is confident (see its docstring).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import xarray as xr

from gattanet_sim.analysis.common import AnalysisError, bootstrap_ci, proportion_ci, require, select

ORDER = ("valid", "neutral", "invalid", "none")


def _correct(ds: xr.Dataset, **where) -> pd.Series:
    """Per presentation of the selection: is the read-out's top class the label? One column per
    time bin, indexed by (stimulus_id, repetition)."""
    logits = select(ds["logits"], **where)  # (presentation, class, time_bin)
    right = logits.argmax("class") == logits["label"]  # (presentation, time_bin)
    index = pd.MultiIndex.from_arrays([logits["stimulus_id"].values, logits["repetition"].values
                                       if "repetition" in logits.coords else np.zeros(len(right))])
    return pd.DataFrame(right.values.astype(float), index=index, columns=logits["time_bin"].values)


def cueing_accuracy(ds: xr.Dataset, reference: str = "neutral", seed: int = 0) -> pd.DataFrame:
    """Accuracy per condition/cue and time bin with Wilson 95% CIs over images, and the paired
    difference to the `reference` cue (same images) with a bootstrap 95% CI."""
    require(ds, "cueing", variables=("logits",), coords=("condition", "cue", "label", "stimulus_id"))
    labels = ds["label"].values
    scored = (labels >= 0) & (labels < ds.sizes["class"])  # images with a target class
    if not scored.any():
        raise AnalysisError(f"cueing: no presentation has a target class among the read-out's "
                            f"{ds.sizes['class']} (labels {sorted(set(labels.tolist()))[:5]}); accuracy "
                            f"is not measured for the {ds.attrs.get('paradigm', 'recorded')} paradigm")
    ds = ds.isel(presentation=np.flatnonzero(scored))
    pairs = sorted({(c, q) for c, q in zip(ds["condition"].values, ds["cue"].values)},
                   key=lambda p: (ORDER.index(p[1]) if p[1] in ORDER else len(ORDER), p[0]))
    tables = {pair: _correct(ds, condition=pair[0], cue=pair[1]) for pair in pairs}
    ref = next((t for (c, q), t in tables.items() if q == reference), None)
    rows = []
    for (condition, cue), table in tables.items():
        for t in table.columns:
            hits = table[t]
            low, high = proportion_ci(int(hits.sum()), len(hits))
            row = {"condition": condition, "cue": cue, "time_bin": int(t), "images": len(hits),
                   "accuracy": hits.mean(), "ci_low": low, "ci_high": high}
            if ref is not None and cue != reference:
                both = pd.concat([hits, ref[t]], axis=1, join="inner").to_numpy()  # (n, 2)
                diff = both[:, 0] - both[:, 1]
                row.update({f"minus_{reference}": diff.mean(), "diff_images": len(diff)})
                row["diff_ci_low"], row["diff_ci_high"] = bootstrap_ci((diff,), np.mean, seed)
            rows.append(row)
    return pd.DataFrame(rows)


def readout_ms(ds: xr.Dataset) -> dict[int, float] | None:
    """Time bin -> start (ms) of the read-out's bin: the `time_bin_start` of a read-out
    neuroid when one is recorded, else the `time_mapping` attribute's read-out entry
    (start of step 0, ms per step); None when neither is there."""
    bins = [int(t) for t in ds["time_bin"].values]
    if "time_bin_start" in ds.coords and "region" in ds.coords:
        readout = np.flatnonzero(ds["region"].values == "readout")
        if len(readout):
            start = ds["time_bin_start"].isel(neuroid=readout[0]).values  # (time_bin,)
            return dict(zip(bins, start.astype(float).tolist()))
    mapping = json.loads(ds.attrs.get("time_mapping", "{}") or "{}")
    if "readout" in mapping:
        onset, width = mapping["readout"]
        return {t: float(onset + width * t) for t in bins}
    return None


def decisions(ds: xr.Dataset, threshold: float = 0.5) -> pd.DataFrame:
    """One row per presentation: condition, cue, key (stimulus_id#repetition), the first time
    bin at which the read-out's softmax probability of its top class exceeds `threshold` (nan:
    never), that bin's start in ms, and whether the class decided then is the label. A silent
    read-out (every logit 0: in cascade mode, before the input reaches it) decides nothing."""
    logits = np.asarray(ds["logits"].transpose("presentation", "class", "time_bin").values,
                        dtype=np.float64)  # (presentation, class, time_bin)
    shifted = logits - logits.max(axis=1, keepdims=True)
    prob = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)  # softmax over class
    top = prob.max(axis=1)  # (presentation, time_bin)
    silent = (logits == 0).all(axis=1)  # (presentation, time_bin): cascade, not yet reached
    crossed = (top > threshold) & ~silent  # (presentation, time_bin)
    ever = crossed.any(axis=1)  # (presentation,)
    first = crossed.argmax(axis=1)  # (presentation,) index of the first crossing (0 if never)
    bins = ds["time_bin"].values.astype(float)
    choice = logits.argmax(axis=1)[np.arange(len(first)), first]  # (presentation,) class then
    ms = readout_ms(ds)
    reps = ds["repetition"].values if "repetition" in ds.coords else np.zeros(len(first), int)
    rt_ms = np.array([ms[int(b)] for b in bins[first]]) if ms else np.full(len(first), np.nan)
    return pd.DataFrame({
        "condition": ds["condition"].values, "cue": ds["cue"].values,
        "key": [f"{s}#{r}" for s, r in zip(ds["stimulus_id"].values, reps)],
        "crossed": ever, "rt_bin": np.where(ever, bins[first], np.nan),
        "rt_ms": np.where(ever, rt_ms, np.nan),
        "correct": np.where(ever, (choice == ds["label"].values).astype(float), np.nan)})


def reaction_times(ds: xr.Dataset, threshold: float = 0.5, reference: str = "neutral",
                   seed: int = 0) -> pd.DataFrame:
    """Reaction-time analogue per condition/cue (Posner 1980: valid cues speed responses,
    invalid ones slow them).

    A presentation's RT is the first time bin at which the read-out's softmax probability of
    its top class exceeds `threshold` (and that bin's start in ms, when the recording maps
    bins to ms: see `readout_ms`); a presentation that never crosses has no RT. Per
    condition/cue: the fraction that never cross (Wilson 95% CI); the mean RT of those that
    cross, in bins and ms (bootstrap 95% CI over presentations); the accuracy of the decision
    taken at the RT (the top class then is the label; Wilson 95% CI over the crossing
    presentations); and, for every cue but `reference`, the paired RT difference to it over
    the images that cross under both (mean, bootstrap 95% CI).

    Resolution: `crossed_fraction` is the fraction of this cue's presentations that cross, and
    `distinct_rts` the number of distinct RTs (in bins) among the crossing presentations of this
    cue and the `reference` cue together. RTs are whole time bins: where the read-out crosses
    at one or two bins only, a difference of 0 [0, 0] says the RT cannot resolve the cues, not
    that they do not differ.
    """
    require(ds, "reaction_times", variables=("logits",), coords=("condition", "cue", "label", "stimulus_id"))
    if not 0 < threshold < 1:
        raise AnalysisError(f"reaction_times: threshold must lie in (0, 1), got {threshold}")
    table = decisions(ds, threshold)
    pairs = sorted(set(zip(table.condition, table.cue)),
                   key=lambda p: (ORDER.index(p[1]) if p[1] in ORDER else len(ORDER), p[0]))
    if len(pairs) < 2:
        raise AnalysisError(f"reaction_times compares cues; the recording has only {pairs[0][1]!r}")
    ref = table[table.cue == reference].set_index("key")
    ref_rts = ref.loc[ref.crossed, "rt_bin"].to_numpy()  # (crossing reference presentations,)
    rows = []
    for condition, cue in pairs:
        part = table[(table.condition == condition) & (table.cue == cue)]
        done = part[part.crossed]
        never_low, never_high = proportion_ci(int((~part.crossed).sum()), len(part))
        acc_low, acc_high = proportion_ci(int(done.correct.sum()), len(done))
        row = {"condition": condition, "cue": cue, "threshold": threshold, "presentations": len(part),
               "never_fraction": 1 - part.crossed.mean(), "never_ci_low": never_low,
               "never_ci_high": never_high, "crossed_fraction": part.crossed.mean(),
               "distinct_rts": len(np.unique(np.concatenate([done.rt_bin.to_numpy(), ref_rts]))),
               "crossed": len(done), "accuracy_at_rt": done.correct.mean() if len(done) else np.nan,
               "accuracy_ci_low": acc_low, "accuracy_ci_high": acc_high}
        for unit in ("bin", "ms"):
            values = done[f"rt_{unit}"].to_numpy()
            row[f"rt_{unit}"] = values.mean() if len(values) else np.nan
            row[f"rt_{unit}_ci_low"], row[f"rt_{unit}_ci_high"] = bootstrap_ci((values,), np.mean, seed)
        if cue != reference and len(ref):
            both = pd.concat([done.set_index("key")[["rt_bin", "rt_ms"]],
                              ref[ref.crossed][["rt_bin", "rt_ms"]]],
                             axis=1, join="inner").to_numpy()  # (n, 4): this cue's bin, ms; reference's
            for unit, (a, b) in (("bin", (0, 2)), ("ms", (1, 3))):
                diff = both[:, a] - both[:, b]  # (n,)
                row[f"rt_{unit}_minus_{reference}"] = diff.mean() if len(diff) else np.nan
                ci = bootstrap_ci((diff,), np.mean, seed)
                row[f"rt_{unit}_diff_ci_low"], row[f"rt_{unit}_diff_ci_high"] = ci
            row["diff_images"] = len(both)
        rows.append(row)
    return pd.DataFrame(rows)

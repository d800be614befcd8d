"""Attending to one of two stimuli (Moran & Desimone 1985; Reynolds, Chelazzi & Desimone 1999).

Two stimuli, A and B, sit at two locations; each is shown alone and both together. A unit's
preferred stimulus in a pair display is the one of its two components that drives it more
when shown alone at that place (under `off`, the unattended reference). In the pair display,
attending to the preferred stimulus (its template as the global query) should raise the
unit's response above attending to the other one, and above no attention.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from gattanet_sim.analysis.common import AnalysisError, bootstrap_ci, last_time_bin, require

COORDS = ("stimulus_at_1", "stimulus_at_2", "condition", "attended", "region")


def _mean_by_display(activity: xr.DataArray) -> pd.DataFrame:
    """Mean response over phases/trials per (display, condition, attended): rows x neuroids."""
    keys = pd.MultiIndex.from_arrays([activity[c].values for c in COORDS[:4]], names=COORDS[:4])
    frame = pd.DataFrame(activity.values, index=keys)  # (presentation, neuroid)
    return frame.groupby(level=list(range(4))).mean()


def attention_to_preferred(ds: xr.Dataset, time_bin: int | None = None, min_selectivity: float = 0.1,
                           min_response: float = 1e-3, seed: int = 0) -> pd.DataFrame:
    """Per area: responses to the pair when the preferred vs the other stimulus is attended.

    Samples are (unit, pair arrangement) with a preference: selectivity |r_x - r_y| / (r_x + r_y)
    of the two components shown alone at least `min_selectivity`, and r_x + r_y at least
    `min_response`. Areas whose activity goes below 0 (the linear class layer) are left out.
    Returns per region the number of samples, the mean responses attending the
    preferred stimulus, the non-preferred one and none (`off`), and the ratios
    preferred/non-preferred and preferred/off with paired bootstrap 95% CIs over samples.
    """
    require(ds, "attention_to_preferred", variables=("activity",), coords=COORDS)
    conditions = set(ds["condition"].values.tolist())
    if not {"off", "template"} <= conditions:
        raise AnalysisError("attention_to_preferred needs the off and template conditions "
                            f"(the recording has {', '.join(sorted(conditions))})")
    t = last_time_bin(ds["activity"]) if time_bin is None else time_bin
    activity = ds["activity"].sel(time_bin=t).load()  # (presentation, neuroid)
    means = _mean_by_display(activity)
    regions = activity["region"].values
    rows = []
    for region in dict.fromkeys(regions.tolist()):
        cols = np.flatnonzero(regions == region)
        if (activity.values[:, cols] < 0).any():
            continue  # not a rate (the class layer's logits): a response ratio means nothing
        att_pref, att_non, off = [], [], []
        for x, y in (("A", "B"), ("B", "A")):  # the pair: x at location 1, y at location 2
            try:
                r_x = means.loc[(x, "", "off", "")].to_numpy()[cols]
                r_y = means.loc[("", y, "off", "")].to_numpy()[cols]
                pair_off = means.loc[(x, y, "off", "")].to_numpy()[cols]
                attend = {s: means.loc[(x, y, "template", s)].to_numpy()[cols] for s in ("A", "B")}
            except KeyError as err:
                raise AnalysisError(f"attention_to_preferred needs every display under off and "
                                    f"attend A / attend B; missing {err.args[0]}") from None
            total = r_x + r_y
            keep = (total >= min_response) & (np.abs(r_x - r_y) >= min_selectivity * np.maximum(total, 1e-12))
            pref_is_x = r_x > r_y
            pref = np.where(pref_is_x, attend[x], attend[y])
            non = np.where(pref_is_x, attend[y], attend[x])
            att_pref.append(pref[keep])
            att_non.append(non[keep])
            off.append(pair_off[keep])
        a, b, o = (np.concatenate(v) for v in (att_pref, att_non, off))
        row = {"region": region, "time_bin": t, "samples": len(a), "attend_preferred": a.mean() if len(a) else np.nan,
               "attend_other": b.mean() if len(b) else np.nan, "off": o.mean() if len(o) else np.nan}
        ratio = lambda u, v: np.mean(u) / np.mean(v)  # noqa: E731
        for name, other in (("preferred_over_other", b), ("preferred_over_off", o)):
            row[name] = ratio(a, other) if len(a) and np.mean(other) > 0 else np.nan
            row[f"{name}_ci_low"], row[f"{name}_ci_high"] = (
                bootstrap_ci((a, other), ratio, seed) if len(a) and np.mean(other) > 0 else (np.nan, np.nan))
        rows.append(row)
    return pd.DataFrame(rows)

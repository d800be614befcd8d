"""The attention gain's distribution per area and timestep: how much, and how selectively,
attention rescales each area (a mean far from 1 moves the statistics the next batch norm
sees; the sd is the spatial / unit-wise modulation proper; a negative gain flips a sign), and
whether it settles: its mean absolute change since the previous time bin, which goes to 0 as
the dynamics reach a fixed point."""

from __future__ import annotations

import numpy as np
import pandas as pd


def gain_statistics(gain) -> pd.DataFrame:
    """Per region and time bin: mean, sd, min, max, fraction below 0 and above 1 of the gain,
    and `change`, the mean |g(t) - g(t-1)| over presentations and units (empty at the first bin).

    `gain`: a DataArray (presentation, neuroid, time_bin) with a `region` neuroid coordinate.
    """
    rows = []
    for region in dict.fromkeys(gain["region"].values.tolist()):  # area order, as recorded
        area = gain.sel(region=region)  # (presentation, neuroid', time_bin)
        before = None
        for t in area["time_bin"].values:
            x = area.sel(time_bin=t).values.ravel()
            rows.append({"region": region, "time_bin": int(t), "mean": x.mean(), "sd": x.std(),
                         "min": x.min(), "max": x.max(), "below_0": (x < 0).mean(),
                         "above_1": (x > 1).mean(),
                         "change": float("nan") if before is None else abs(x - before).mean()})
            before = x
    return pd.DataFrame(rows)


def query_change(query) -> pd.DataFrame:
    """Per time bin: the global query's norm and its relative change since the previous bin,
    mean over presentations of |q(t) - q(t-1)| / |q(t-1)| (empty at the first bin).

    `query`: a DataArray (presentation, key_dim, time_bin), the recording's `global_query`.
    """
    q = query.transpose("time_bin", "presentation", "key_dim").values  # (T, N, d)
    norm = np.linalg.norm(q, axis=-1)  # (T, N)
    rows = []
    for i, t in enumerate(query["time_bin"].values):
        change = (np.linalg.norm(q[i] - q[i - 1], axis=-1) / np.maximum(norm[i - 1], 1e-12)).mean()
        rows.append({"time_bin": int(t), "query_norm": norm[i].mean(),
                     "relative_change": float("nan") if i == 0 else change})
    return pd.DataFrame(rows)

"""The attention gain's distribution per area and timestep: how much, and how selectively,
attention rescales each area (a mean far from 1 moves the statistics the next batch norm
sees; the sd is the spatial / unit-wise modulation proper; a negative gain flips a sign)."""

from __future__ import annotations

import pandas as pd


def gain_statistics(gain) -> pd.DataFrame:
    """Per region and time bin: mean, sd, min, max, fraction below 0 and above 1 of the gain.

    `gain`: a DataArray (presentation, neuroid, time_bin) with a `region` neuroid coordinate.
    """
    rows = []
    for region in dict.fromkeys(gain["region"].values.tolist()):  # area order, as recorded
        area = gain.sel(region=region)  # (presentation, neuroid', time_bin)
        for t in area["time_bin"].values:
            x = area.sel(time_bin=t).values.ravel()
            rows.append({"region": region, "time_bin": int(t), "mean": x.mean(), "sd": x.std(),
                         "min": x.min(), "max": x.max(), "below_0": (x < 0).mean(),
                         "above_1": (x > 1).mean()})
    return pd.DataFrame(rows)

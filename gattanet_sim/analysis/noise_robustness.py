"""Robustness to pixel noise (VanRullen & Alamia 2021, Fig. 2a): accuracy against noise sd.

The paper compares the network with and without its global attention under growing Gaussian
pixel noise: attention, like the top-down attention that improves detection of degraded
stimuli in humans and monkeys, should keep accuracy up as the image degrades.

From a `noisy` recording (coordinate `noise_std`; the same images at every sd), per
condition (e.g. bottom-up vs off), noise sd and time bin: accuracy is the fraction of
presentations whose read-out's top class (argmax of `logits` over class) is the `label`,
with a Wilson 95% CI over presentations. Where the `reference` condition (default `off`,
no gain) is present, every other condition also gets its paired difference to it (same
stimulus_id and repetition), mean and a seeded bootstrap 95% CI over images.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from gattanet_sim.analysis.common import bootstrap_ci, proportion_ci, require


def _hits(ds: xr.Dataset) -> pd.DataFrame:
    """One row per presentation: condition, noise_std, key (stimulus_id#repetition) and one
    column per time bin, 1.0 where the read-out's top class is the label."""
    logits = ds["logits"]  # (presentation, class, time_bin)
    right = (logits.argmax("class") == logits["label"]).transpose("presentation", "time_bin")
    reps = ds["repetition"].values if "repetition" in ds.coords else np.zeros(ds.sizes["presentation"], int)
    frame = pd.DataFrame(right.values.astype(float), columns=ds["time_bin"].values)
    frame.insert(0, "key", [f"{s}#{r}" for s, r in zip(ds["stimulus_id"].values, reps)])
    frame.insert(0, "noise_std", ds["noise_std"].values.astype(float))
    cond = ds["condition"].values if "condition" in ds.coords else np.full(len(frame), "")
    frame.insert(0, "condition", cond)
    return frame


def noise_robustness(ds: xr.Dataset, reference: str = "off", seed: int = 0) -> pd.DataFrame:
    """Accuracy per condition x noise sd x time bin (Wilson 95% CI), and the paired difference
    to the `reference` condition with a bootstrap 95% CI (see the module docstring)."""
    require(ds, "noise_robustness", variables=("logits",), coords=("noise_std", "label", "stimulus_id"))
    frame = _hits(ds)
    times = list(ds["time_bin"].values)
    conditions = list(dict.fromkeys(frame["condition"].tolist()))
    rows = []
    for condition in conditions:
        for sd in sorted(frame["noise_std"].unique()):
            part = frame[(frame.condition == condition) & (frame.noise_std == sd)].set_index("key")
            ref = frame[(frame.condition == reference) & (frame.noise_std == sd)].set_index("key")
            for t in times:
                hits = part[t]
                low, high = proportion_ci(int(hits.sum()), len(hits))
                row = {"condition": condition, "noise_std": sd, "time_bin": int(t), "images": len(hits),
                       "accuracy": hits.mean(), "ci_low": low, "ci_high": high}
                if condition != reference and len(ref):
                    both = pd.concat([hits, ref[t]], axis=1, join="inner").to_numpy()  # (n, 2)
                    diff = both[:, 0] - both[:, 1]  # (n,)
                    row.update({f"minus_{reference}": diff.mean() if len(diff) else np.nan,
                                "diff_images": len(diff)})
                    row["diff_ci_low"], row["diff_ci_high"] = bootstrap_ci((diff,), np.mean, seed)
                rows.append(row)
    return pd.DataFrame(rows)

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

A condition recorded once per attended template (the experiment's `template`) is split into
"(attend target)", the template of the image's own class, and "(attend other)", whose hits are
averaged over the other templates per image (the expected accuracy under a wrong cue; its CI is
a bootstrap over images, since a per-image share is not a count); a cue type (`valid`,
`invalid`, ...) is named in brackets too. Every image then appears once per group.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from gattanet_sim.analysis.common import bootstrap_ci, proportion_ci, require


def _groups(ds: xr.Dataset) -> np.ndarray:
    """Each presentation's group: its condition, with the cue type or, for a condition
    recorded once per attended template, whether it attends the image's own class."""
    n = ds.sizes["presentation"]
    condition = ds["condition"].values.astype(str) if "condition" in ds.coords else np.full(n, "")
    if "cue" not in ds.coords:
        return condition
    cue = ds["cue"].values.astype(str)
    groups = np.array([f"{c} ({q})" if q not in ("none", "attend", "") else c for c, q in zip(condition, cue)],
                      dtype=object)
    if "attended" in ds.coords:
        attended = ds["attended"].values.astype(str)
        names = np.asarray(ds["class"].values).astype(str)
        labels = ds["label"].values.astype(int)
        own = np.array([0 <= k < len(names) and names[k] == a for k, a in zip(labels, attended)])
        for c in np.unique(condition[cue == "attend"]):
            passes = (condition == c) & (cue == "attend")
            if len(np.unique(attended[passes])) > 1:
                groups[passes & own] = f"{c} (attend target)"
                groups[passes & ~own] = f"{c} (attend other)"
    return groups


def _hits(ds: xr.Dataset) -> pd.DataFrame:
    """One row per group (`_groups`) and image: condition, noise_std, key
    (stimulus_id#repetition) and one column per time bin, the share of the group's passes of
    that image whose read-out's top class is the label (1.0 or 0.0 for a single pass)."""
    logits = ds["logits"]  # (presentation, class, time_bin)
    right = (logits.argmax("class") == logits["label"]).transpose("presentation", "time_bin")
    reps = ds["repetition"].values if "repetition" in ds.coords else np.zeros(ds.sizes["presentation"], int)
    frame = pd.DataFrame(right.values.astype(float), columns=ds["time_bin"].values)
    frame.insert(0, "key", [f"{s}#{r}" for s, r in zip(ds["stimulus_id"].values, reps)])
    frame.insert(0, "noise_std", ds["noise_std"].values.astype(float))
    frame.insert(0, "condition", _groups(ds))
    return frame.groupby(["condition", "noise_std", "key"], sort=False, as_index=False).mean()


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
                if np.isin(hits.to_numpy(), (0.0, 1.0)).all():
                    low, high = proportion_ci(int(hits.sum()), len(hits))
                else:  # shares of several passes per image: not a count
                    low, high = bootstrap_ci((hits.to_numpy(),), np.mean, seed)
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

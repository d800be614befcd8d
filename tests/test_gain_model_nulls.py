"""The gain model's classes on planted truth: unmodulated units (identical curves plus noise)
rarely get an effect class, and realistic planted effects get their own class."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from test_analysis_tuning import CONTRASTS, _assembly

from gattanet_sim.analysis.gain_model import gain_model_units, naka_rushton, summarize

EFFECT_CLASSES = ("response gain", "contrast gain", "additive shift", "activity gain")
# What attention does to a unit's curve in each planted area (p: b, rmax, c50, n per unit).
PLANTS = {
    "null": lambda c, b, rmax, c50, n: naka_rushton(c, b, rmax, c50, n),
    "response gain": lambda c, b, rmax, c50, n: naka_rushton(c, b, 1.3 * rmax, c50, n),
    "contrast gain": lambda c, b, rmax, c50, n: naka_rushton(c, b, rmax, c50 / 1.5, n),
    "additive shift": lambda c, b, rmax, c50, n: naka_rushton(c, b + 0.1 * rmax, rmax, c50, n),
    "activity gain": lambda c, b, rmax, c50, n: 1.3 * naka_rushton(c, b, rmax, c50, n),
}


def _planted(regions: np.ndarray, b: np.ndarray, rmax: np.ndarray, c50: np.ndarray,
             n: np.ndarray, sd: np.ndarray, seed: int) -> xr.Dataset:
    """One grating orientation x 11 contrasts x 2 phases under the neutral cue (unattended)
    and the valid one (attended, PLANTS[region] of the unit's curve); independent Gaussian
    noise of sd `sd` (neuroid,) on every presentation."""
    rng = np.random.default_rng(seed)
    rows, values = [], []
    for cue in ("neutral", "valid"):
        for c in CONTRASTS:
            for phase in (0.0, 180.0):
                response = naka_rushton(c, b, rmax, c50, n)  # (neuroid,)
                if cue == "valid":
                    for name, plant in PLANTS.items():
                        mask = regions == name  # (neuroid,)
                        response[mask] = plant(c, b, rmax, c50, n)[mask]
                values.append(response + sd * rng.standard_normal(len(regions)))
                rows.append({"stimulus_id": f"g/0/{c:g}/{phase:g}", "orientation": 0.0,
                             "contrast": c, "phase": phase, "condition": "template", "cue": cue,
                             "attended": "0" if cue == "valid" else "all"})
    return _assembly(rows, values, regions)


@pytest.fixture(scope="module")
def null_units() -> pd.DataFrame:
    """200 unmodulated units: varied shapes (baseline, amplitude, c50 from nearly linear to
    saturating, exponent) and noise from 0.2% to 10% of the amplitude."""
    rng = np.random.default_rng(7)
    units = 200
    rmax = rng.uniform(0.3, 2.0, units)  # (neuroid,)
    sd = rmax * rng.choice([0.002, 0.01, 0.03, 0.1], units)  # (neuroid,)
    ds = _planted(np.full(units, "null"), rng.uniform(0.0, 0.4, units), rmax,
                  rng.uniform(0.05, 1.5, units), rng.uniform(0.7, 5.0, units), sd, seed=8)
    return gain_model_units(ds)


@pytest.fixture(scope="module")
def effect_units() -> pd.DataFrame:
    """30 units per planted effect at modest noise (2% of the amplitude per presentation).
    Baselines are at least 0.1 of an amplitude near 1: with b = 0 activity gain is response gain."""
    rng = np.random.default_rng(11)
    names = [name for name in PLANTS if name != "null"]
    regions = np.repeat(names, 30)
    units = len(regions)
    rmax = rng.uniform(0.6, 1.4, units)  # (neuroid,)
    ds = _planted(regions, rng.uniform(0.1, 0.4, units), rmax, rng.uniform(0.15, 0.6, units),
                  rng.uniform(1.5, 3.5, units), 0.02 * rmax, seed=12)
    return gain_model_units(ds)


def test_planted_nulls_rarely_get_an_effect_class(null_units):
    assert len(null_units) == 200 and (null_units["class"] != "unresponsive").all()
    effect = null_units["class"].isin(EFFECT_CLASSES)
    assert effect.mean() <= 0.05, null_units["class"].value_counts()
    assert (null_units.loc[effect, "p_vs_none"] < 0.05).all()  # the reported p is the rule's
    assert (null_units.loc[null_units["class"] == "none", "best_model"] == "none").all()
    # the lowest AIC alone would have given an effect class to far more of them
    aic = null_units[[f"aic_{m}" for m in ("none", "response", "contrast", "additive", "activity")]]
    assert (aic.idxmin(axis=1) != "aic_none").mean() > 0.15


@pytest.mark.parametrize("name", [n for n in PLANTS if n != "null"])
def test_planted_effects_get_their_own_class(effect_units, name):
    units = effect_units[effect_units.region == name]
    assert (units["class"] == name).mean() >= 0.75, units["class"].value_counts()
    assert (units["p_vs_none"] < 0.05).all()


def test_a_pure_activity_gain_is_recovered_with_its_size(effect_units):
    units = effect_units[effect_units.region == "activity gain"]
    assert (units["class"] == "activity gain").mean() >= 0.8
    row = summarize(effect_units).query("region == 'activity gain' and name == 'a'").iloc[0]
    assert row.statistic == "median" and row["count"] == (units["class"] == "activity gain").sum()
    assert row.value == pytest.approx(1.3, abs=0.05)
    assert row.ci_low <= 1.3 <= row.ci_high


def test_off_stays_usable_as_an_explicit_unattended_reference():
    rng = np.random.default_rng(3)
    ds = _planted(np.full(4, "response gain"), np.full(4, 0.2), rng.uniform(0.6, 1.4, 4),
                  np.full(4, 0.3), np.full(4, 2.0), np.full(4, 0.01), seed=4)
    neutral = gain_model_units(ds)
    off = ds.assign_coords(condition=("presentation", np.where(ds["cue"].values == "neutral", "off",
                                                               ds["condition"].values)))
    explicit = gain_model_units(off, unattended={"condition": "off"})
    pd.testing.assert_frame_equal(neutral, explicit)

"""Tuning analyses recover what a synthetic assembly plants: gain model classes, feature-similarity gain."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from gattanet_sim.analysis import AnalysisError
from gattanet_sim.analysis.feature_similarity import feature_similarity_gain, feature_similarity_units
from gattanet_sim.analysis.gain_model import gain_model, gain_model_units, naka_rushton, summarize

CONTRASTS = np.round(np.arange(0, 1.01, 0.1), 10)


def _assembly(rows: list[dict], values: list[np.ndarray], regions: np.ndarray) -> xr.Dataset:
    pres = pd.DataFrame(rows)
    data = np.array(values)[:, :, None]  # (presentation, neuroid, 1)
    return xr.Dataset(
        {"activity": (("presentation", "neuroid", "time_bin"), data)},
        coords={**{c: ("presentation", pres[c].to_numpy()) for c in pres.columns},
                "region": ("neuroid", regions),
                "neuroid_id": ("neuroid", np.array([f"{r}.{i}" for i, r in enumerate(regions)])),
                "time_bin": [1]})


# Each area plants one effect of attention on the contrast-response function.
PLANTS = ("response", "contrast", "additive", "same", "noise")


def _planted_crf(units: int = 12, noise: float = 0.01) -> xr.Dataset:
    """Gratings at two orientations x 11 contrasts x 2 phases, neutral and valid cue. Units prefer
    0 or 90 deg (0.3x response at the other); attention on region "response" multiplies the
    curve's Rmax by 1.3, on "contrast" halves c50, on "additive" adds 0.2, on "same" does
    nothing; "noise" units have no contrast response at all, only noise."""
    rng = np.random.default_rng(1)
    regions = np.repeat(PLANTS, units)
    n_units = len(regions)
    pref = rng.choice([0.0, 90.0], n_units)
    b, rmax = rng.uniform(0.05, 0.15, n_units), rng.uniform(0.6, 1.4, n_units)
    c50, n = rng.uniform(0.2, 0.4, n_units), rng.uniform(1.5, 3.0, n_units)
    rows, values = [], []
    for condition, cue in (("template", "neutral"), ("template", "valid")):
        for ori in (0.0, 90.0):
            for c in CONTRASTS:
                for phase in (0.0, 180.0):
                    attend = cue == "valid"
                    scale = np.where(pref == ori, 1.0, 0.3)  # (neuroid,)
                    r_max = rmax * np.where(attend & (regions == "response"), 1.3, 1.0)
                    half = c50 / np.where(attend & (regions == "contrast"), 2.0, 1.0)
                    base = b + np.where(attend & (regions == "additive"), 0.2, 0.0)
                    response = scale * naka_rushton(c, base, r_max, half, n)  # (neuroid,)
                    response = np.where(regions == "noise", 0.5, response)
                    sd = np.where(regions == "noise", 0.1, noise)
                    values.append(response + sd * rng.standard_normal(n_units))
                    rows.append({"stimulus_id": f"g/{ori:g}/{c:g}/{phase:g}", "orientation": ori,
                                 "contrast": c, "phase": phase, "condition": condition, "cue": cue,
                                 "attended": f"{ori:g}" if attend else "all"})
    return _assembly(rows, values, regions)


@pytest.fixture(scope="module")
def crf_units() -> pd.DataFrame:
    return gain_model_units(_planted_crf())


def test_gain_model_finds_the_preferred_orientation(crf_units):
    pref = np.random.default_rng(1).choice([0.0, 90.0], len(crf_units))  # as _planted_crf draws it
    expected = np.where(pref == 0, "orientation=0.0", "orientation=90.0")
    planted = crf_units.region != "noise"
    assert (crf_units.preferred.to_numpy()[planted] == expected[planted]).all()


def test_gain_model_recovers_response_gain(crf_units):
    units = crf_units[crf_units.region == "response"]
    # baselines here are small (b 0.05-0.15), where activity gain (b -> g b too) is nearly response gain
    assert (units["class"] == "response gain").mean() >= 0.8
    assert units["class"].isin(["response gain", "activity gain"]).all()
    assert units.g.median() == pytest.approx(1.3, abs=0.05)
    row = summarize(crf_units).query("region == 'response' and name == 'g'").iloc[0]
    assert row.ci_low <= 1.3 <= row.ci_high and row.ci_high - row.ci_low < 0.1


def test_gain_model_recovers_contrast_gain(crf_units):
    units = crf_units[crf_units.region == "contrast"]
    assert (units["class"] == "contrast gain").mean() >= 0.9
    assert units.k.median() == pytest.approx(2.0, abs=0.15)


def test_gain_model_recovers_an_additive_shift(crf_units):
    units = crf_units[crf_units.region == "additive"]
    assert (units["class"] == "additive shift").mean() >= 0.9
    assert units.d.median() == pytest.approx(0.2, abs=0.02)


def test_gain_model_sees_no_change_in_unchanged_or_noise_curves(crf_units):
    same = crf_units[crf_units.region == "same"]
    assert (same["class"] == "none").mean() >= 0.6
    noise = crf_units[crf_units.region == "noise"]
    assert noise["class"].isin(["none", "poor fit"]).all()
    assert (noise["class"] == "poor fit").mean() >= 0.9


def test_gain_model_table_counts_with_wilson_intervals(crf_units):
    table = summarize(crf_units)
    fractions = table[(table.statistic == "fraction") & (table.name != "unresponsive")]
    assert (fractions.groupby("region")["count"].sum() == 12).all()
    assert ((fractions.ci_low <= fractions.value) & (fractions.value <= fractions.ci_high)).all()
    assert set(table.name) >= {"response gain", "contrast gain", "additive shift", "activity gain",
                               "none", "poor fit", "g", "k", "d_rel", "a"}


def test_gain_model_refuses_an_assembly_without_a_contrast_series():
    crf = _planted_crf(units=2)
    with pytest.raises(AnalysisError, match="needs coordinate 'contrast'"):
        gain_model(crf.drop_vars("contrast"))
    with pytest.raises(AnalysisError, match="no presentation is attended"):
        gain_model(crf.isel(presentation=np.flatnonzero(crf["cue"].values == "neutral")))
    top = crf.isel(presentation=np.flatnonzero(crf["contrast"].values >= 0.7))
    with pytest.raises(AnalysisError, match="at least 5 contrasts.*has 4"):
        gain_model(top)


# ----------------------------------------------------------------------- feature similarity
TEMPLATES = (0.0, 45.0, 90.0, 135.0)


def _planted_similarity(slope: float = 0.2, units: int = 40, jitter: float = 0.03) -> xr.Dataset:
    """Gratings at 8 orientations x 2 phases under the neutral cue and one template per orientation of
    TEMPLATES. Units are von Mises tuned (preferred orientation uniform); attending theta_att
    multiplies every response of a unit by 1 + slope cos 2(pref - theta_att) + noise (sd
    `jitter`, per unit and template). A 'readout' region of logits (negative) rides along."""
    rng = np.random.default_rng(2)
    pref = rng.uniform(0, 180, units)
    jitters = {t: jitter * rng.standard_normal(units) for t in TEMPLATES}
    orientations = np.arange(8) * 22.5
    rows, values = [], []
    for cue, attended in (("neutral", "neutral"), *(("attend", f"{t:g}") for t in TEMPLATES)):
        for ori in orientations:
            for phase in (0.0, 180.0):
                rate = 0.2 + np.exp(2.0 * (np.cos(np.deg2rad(2 * (ori - pref))) - 1))  # (neuroid,)
                if cue == "attend":
                    theta = float(attended)
                    rate = rate * (1 + slope * np.cos(np.deg2rad(2 * (pref - theta)))
                                   + jitters[theta])
                logits = rng.normal(0, 1, 3)
                values.append(np.concatenate([rate, logits]))
                rows.append({"stimulus_id": f"g/{ori:g}/{phase:g}", "orientation": ori,
                             "contrast": 1.0, "phase": phase, "condition": "template",
                             "cue": cue, "attended": attended})
    return _assembly(rows, values, np.array(["V4"] * units + ["readout"] * 3))


def test_feature_similarity_gain_recovers_a_planted_slope():
    table = feature_similarity_gain(_planted_similarity(0.2)).set_index("region")
    assert list(table.index) == ["V4"]  # the logits are left out
    row = table.loc["V4"]
    assert row.units == 40 and row.samples == 160
    assert row.slope == pytest.approx(0.2, abs=0.02)
    assert row.slope_ci_low > 0 and row.slope_ci_low <= 0.2 <= row.slope_ci_high + 0.01
    assert row.intercept == pytest.approx(1.0, abs=0.02)
    assert row.gain_similar > 1.1 > 0.9 > row.gain_dissimilar
    assert row.similar_minus_dissimilar_ci_low > 0


def test_feature_similarity_gain_finds_preferred_orientations():
    samples = feature_similarity_units(_planted_similarity(0.2))
    pref = np.random.default_rng(2).uniform(0, 180, 40)
    found = samples.drop_duplicates("neuroid_id").preferred.to_numpy()
    error = (found - pref + 90) % 180 - 90  # circular difference, degrees
    assert np.abs(error).max() < 2


def test_feature_similarity_gain_flat_gain_has_a_slope_interval_around_zero():
    row = feature_similarity_gain(_planted_similarity(0.0)).iloc[0]
    assert row.slope_ci_low < 0 < row.slope_ci_high
    assert abs(row.slope) < 0.02


def test_feature_similarity_gain_refuses_unfit_assemblies():
    ds = _planted_similarity()
    with pytest.raises(AnalysisError, match="needs coordinate 'attended'"):
        feature_similarity_gain(ds.drop_vars("attended"))
    with pytest.raises(AnalysisError, match="no presentation is attended"):
        feature_similarity_gain(ds.isel(presentation=np.flatnonzero(ds["cue"].values == "neutral")))
    named = ds.assign_coords(attended=("presentation", np.where(ds["cue"].values == "neutral", "neutral",
                                                                "cat")))
    with pytest.raises(AnalysisError, match="templates named by orientation"):
        feature_similarity_gain(named)
    valid_only = ds.isel(presentation=np.flatnonzero(
        (ds["cue"].values == "neutral") | (ds["attended"].values.astype(object)
                                          == np.char.mod("%g", ds["orientation"].values))))
    with pytest.raises(AnalysisError, match="every template shown on every unattended stimulus"):
        feature_similarity_gain(valid_only)  # valid cues: a template only on its own orientation
    with pytest.raises(AnalysisError, match="numeric 'phase'"):
        feature_similarity_gain(ds.assign_coords(phase=ds["phase"].astype(str)), feature="phase")

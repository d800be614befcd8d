"""Modulation index, time course and variability: each recovers a truth planted in a small
synthetic assembly, and refuses, in one line, an assembly that lacks what it needs."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from gattanet_sim.analysis.common import AnalysisError
from gattanet_sim.analysis.modulation_index import hierarchy_trend, modulation_index
from gattanet_sim.analysis.time_course import time_course
from gattanet_sim.analysis.variability import variability


def _assembly(attended: np.ndarray, unattended: np.ndarray, regions: list[str],
              time_ms: np.ndarray | None = None) -> xr.Dataset:
    """An assembly of two conditions, off (unattended) and template/valid (attended), from two
    (stimulus, trial, neuroid, time_bin) arrays, presentations in a shuffled order (the
    analyses must match them by stimulus_id and repetition, not by position)."""
    stimuli, trials, _, times = attended.shape
    values, coords = [], {c: [] for c in ("stimulus_id", "repetition", "condition", "cue", "attended")}
    for condition, cue, data in (("off", "none", unattended), ("template", "valid", attended)):
        for s in range(stimuli):
            for r in range(trials):
                values.append(data[s, r])
                for name, value in zip(coords, (f"s{s}", r, condition, cue, "" if cue == "none" else "45")):
                    coords[name].append(value)
    order = np.random.default_rng(1).permutation(len(values))
    ds = xr.Dataset({"activity": (("presentation", "neuroid", "time_bin"), np.array(values)[order])},
                    coords={**{k: ("presentation", np.array(v)[order]) for k, v in coords.items()},
                            "region": ("neuroid", np.array(regions)), "time_bin": np.arange(times)})
    if time_ms is not None:
        ds = ds.assign_coords(time_bin_start=(("neuroid", "time_bin"), time_ms))
    return ds


# --- modulation index ------------------------------------------------------------------------

AREAS = ["V1", "V2", "V4", "IT"]


def _gain_assembly(gains: dict[str, float], units: int = 30, stimuli: int = 12) -> xr.Dataset:
    """Unattended rates uniform in [0.5, 2]; attended ones the same times each area's gain, from
    time bin 1 on (bin 0 is the unattended first sweep); plus a linear read-out with negative
    values, which must be left out."""
    rng = np.random.default_rng(0)
    regions = [a for a in gains for _ in range(units)] + ["readout"] * 5
    unatt = rng.uniform(0.5, 2, (stimuli, 1, len(regions), 2))  # (stimulus, trial, neuroid, time_bin)
    unatt[:, :, -5:] -= 3  # logits go below 0
    gain = np.array([gains.get(r, 1.0) for r in regions])[None, None, :]  # (1, 1, neuroid)
    att = unatt.copy()
    att[..., 1] *= gain
    return _assembly(att, unatt, regions)


def test_modulation_index_recovers_a_planted_gain():
    table = modulation_index(_gain_assembly({"V1": 1.3, "V4": 1.3}))
    assert list(table.region.unique()) == ["V1", "V4"]  # the read-out is left out
    assert table.attrs["left_out"] == ["readout"]
    late = table[table.time_bin == 1].set_index("region")
    for area in ("V1", "V4"):
        assert late.loc[area, "units"] == 30 and late.loc[area, "pairs"] == 12
        assert late.loc[area, "mean_ami"] == pytest.approx(0.3 / 2.3)  # (1.3 - 1) / (1.3 + 1)
        assert late.loc[area, "median_ami"] == pytest.approx(0.3 / 2.3)
        assert late.loc[area, "ratio"] == pytest.approx(1.3)
        assert late.loc[area, "ratio_ci_low"] == pytest.approx(1.3)
        assert late.loc[area, "ami_ci_low"] == pytest.approx(0.3 / 2.3) == late.loc[area, "ami_ci_high"]
    early = table[table.time_bin == 0]
    assert (early.mean_ami.abs() < 1e-12).all() and early.ratio.to_numpy() == pytest.approx([1.0, 1.0])


def test_hierarchy_trend_is_positive_when_gains_grow_along_the_areas():
    ds = _gain_assembly({"V1": 1.05, "V2": 1.1, "V4": 1.2, "IT": 1.4})
    table = modulation_index(ds).query("time_bin == 1").set_index("region")
    assert table.loc[AREAS, "mean_ami"].is_monotonic_increasing
    trend = hierarchy_trend(ds).iloc[0]
    assert trend.areas == "V1 < V2 < V4 < IT" and trend.units == 120
    assert trend.spearman_rho > 0.8 and trend.rho_ci_low > 0 and trend.abs_rho_ci_low > 0
    flat = hierarchy_trend(_gain_assembly({"V1": 1.4, "V2": 1.2, "V4": 1.1, "IT": 1.05})).iloc[0]
    assert flat.spearman_rho < -0.8 and flat.rho_ci_high < 0
    suppressed = hierarchy_trend(_gain_assembly({"V1": 0.95, "V2": 0.9, "V4": 0.8, "IT": 0.7})).iloc[0]
    assert suppressed.rho_ci_high < 0 < suppressed.abs_rho_ci_low  # larger suppression higher up


def test_modulation_index_refuses_an_assembly_without_cue_or_conditions():
    ds = _gain_assembly({"V1": 1.3})
    with pytest.raises(AnalysisError, match="needs coordinate 'cue'") as err:
        modulation_index(ds.drop_vars("cue"))
    assert "\n" not in str(err.value)
    with pytest.raises(AnalysisError, match="no presentation has condition='off'"):
        modulation_index(ds.where(ds.condition != "off", drop=True))
    with pytest.raises(AnalysisError, match="needs variable 'activity'"):
        hierarchy_trend(ds.drop_vars("activity"))


# --- time course -----------------------------------------------------------------------------

FIRES = {"V1": 0, "V2": 1, "V4": 1, "IT": 2}  # first time bin with activity
ONSETS = {"V1": 3, "V2": 2, "V4": 1}  # first time bin with attentional modulation; IT: none


def _cascade_assembly(units: int = 10, stimuli: int = 40, times: int = 6) -> xr.Dataset:
    """Four areas silent (0 in both conditions) before they fire; attended = unattended
    before each area's planted onset, then x 1.2 times a noisy per-presentation factor."""
    rng = np.random.default_rng(0)
    regions = [a for a in AREAS for _ in range(units)]
    unatt = rng.uniform(0.5, 2, (stimuli, 1, len(regions), times))  # (stimulus, trial, neuroid, time_bin)
    att = unatt.copy()
    for i, area in enumerate(AREAS):
        cols = slice(i * units, (i + 1) * units)
        unatt[:, :, cols, :FIRES[area]] = att[:, :, cols, :FIRES[area]] = 0
        if area in ONSETS:
            factor = 1.2 + 0.1 * rng.standard_normal((stimuli, 1, 1, times - ONSETS[area]))
            att[:, :, cols, ONSETS[area]:] *= factor
    time_ms = np.tile(50.0 + 20.0 * np.arange(times), (len(regions), 1))  # (neuroid, time_bin)
    return _assembly(att, unatt, regions, time_ms)


def test_time_course_recovers_planted_onsets_and_order():
    table, onsets = time_course(_cascade_assembly())
    onsets = onsets.set_index("region")
    for area, onset in ONSETS.items():
        assert onsets.loc[area, "onset_bin"] == onset
        assert onsets.loc[area, "onset_ms"] == 50 + 20 * onset
        assert onsets.loc[area, "onset_ci_low"] == onset == onsets.loc[area, "onset_ci_high"]
    assert np.isnan(onsets.loc["IT", "onset_bin"]) and onsets.loc["IT", "rank"] == 4
    assert onsets.attrs["order"] == "V4 < V2 < V1"
    assert list(onsets.loc[["V4", "V2", "V1"], "rank"]) == [1, 2, 3]
    assert onsets["spearman_rho"].iloc[0] == pytest.approx(-1.0)
    significant = table.set_index(["region", "time_bin"])["significant"]
    for area in AREAS:
        for t in range(6):
            assert significant[(area, t)] == (area in ONSETS and t >= ONSETS[area]), (area, t)
    silent = table[(table.region == "IT") & (table.time_bin < 2)]
    assert (silent.modulation == 0).all() and silent.relative.isna().all()
    v4 = table[(table.region == "V4") & (table.time_bin >= 1)]
    assert np.allclose(v4.relative, 0.2, atol=0.05)
    assert (v4.relative_ci_low < 0.2).all() and (v4.relative_ci_high > 0.2).all()


def test_time_course_refuses_a_single_condition():
    ds = _cascade_assembly()
    with pytest.raises(AnalysisError, match="no presentation has cue='valid'"):
        time_course(ds.where(ds.cue != "valid", drop=True))


# --- variability -----------------------------------------------------------------------------

def _trials_assembly(fano: tuple[float, float] = (2.0, 2.0), shared: tuple[float, float] = (0.0, 0.0),
                     units: int = 20, stimuli: int = 8, trials: int = 40) -> xr.Dataset:
    """Counts (one time bin) with mean ~100 per unit and stimulus, variance fano x mean, of
    which a share `shared` is common to every unit of the area on each trial (a noise
    correlation of that size); (attended, unattended) values. Every unit's mean follows one
    stimulus factor: a signal correlation that per-stimulus z-scoring must remove."""
    rng = np.random.default_rng(0)
    regions = ["V1"] * units + ["V4"] * units
    mean = (rng.uniform(80, 120, (1, 1, len(regions), 1))  # (stimulus, 1, neuroid, 1): never below 0
            * rng.uniform(0.7, 1.3, (stimuli, 1, 1, 1)))  # a signal correlation: not noise
    sides = []
    for f, c in zip(fano, shared):
        sd = np.sqrt(f * mean)
        common = np.concatenate([np.repeat(rng.standard_normal((stimuli, trials, 1, 1)), units, 2)
                                 for _ in range(2)], 2)  # (stimulus, trial, neuroid, 1): per area
        private = rng.standard_normal((stimuli, trials, len(regions), 1))
        sides.append(mean + sd * (np.sqrt(c) * common + np.sqrt(1 - c) * private))
    return _assembly(sides[0], sides[1], regions)


def test_variability_finds_a_planted_fano_drop():
    table = variability(_trials_assembly(fano=(1.0, 2.0)), count_scale=1.0).set_index("region")
    for area in ("V1", "V4"):
        row = table.loc[area]
        assert row.units == 20 and row.trials == 40 and row.stimuli == 8
        assert row.fano_unattended == pytest.approx(2.0, rel=0.1)
        assert row.fano_attended == pytest.approx(1.0, rel=0.1)
        assert row.fano_change_ci_low <= -1.0 <= row.fano_change_ci_high < 0
        assert abs(row.r_change) < 0.05  # no correlation planted in either
    scaled = variability(_trials_assembly(fano=(1.0, 2.0))).set_index("region")  # mean count 10
    assert scaled.mean_count_unattended.to_numpy() == pytest.approx([10.0, 10.0])
    assert scaled.fano_change.to_numpy() == pytest.approx(
        (table.fano_change * scaled.count_scale).to_numpy())  # a Fano factor scales with the scale


def test_variability_finds_a_planted_noise_correlation_drop():
    table = variability(_trials_assembly(shared=(0.0, 0.5)), max_pairs_units=12).set_index("region")
    for area in ("V1", "V4"):
        row = table.loc[area]
        assert row.pairs == 12 * 11 // 2
        assert row.r_unattended == pytest.approx(0.5, abs=0.08)
        assert row.r_attended == pytest.approx(0.0, abs=0.05)
        assert row.r_change == pytest.approx(-0.5, abs=0.1) and row.r_change_ci_high < 0


def test_variability_refuses_single_trials():
    ds = _trials_assembly(trials=4)
    with pytest.raises(AnalysisError, match=">= 2 repetitions"):
        variability(ds.where(ds.repetition == 0, drop=True))
    with pytest.raises(AnalysisError, match="needs coordinate 'condition'"):
        variability(ds.drop_vars("condition"))

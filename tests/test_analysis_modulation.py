"""Modulation index, time course and variability: each recovers a truth planted in a small
synthetic assembly, and refuses, in one line, an assembly that lacks what it needs."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from gattanet_sim.analysis.common import AnalysisError
from gattanet_sim.analysis.modulation_index import UNATTENDED, hierarchy_magnitude, hierarchy_trend, modulation_index
from gattanet_sim.analysis.time_course import time_course
from gattanet_sim.analysis.variability import variability


def _assembly(attended: np.ndarray, unattended: np.ndarray, regions: list[str],
              time_ms: np.ndarray | None = None, reference: tuple[str, str] = ("template", "neutral")) -> xr.Dataset:
    """An assembly of two presentations of each stimulus and trial, the unattended one under
    `reference` (condition, cue): by default template/neutral, the analyses' default, or
    ("off", "none"); and the attended one template/valid; from two (stimulus, trial, neuroid,
    time_bin) arrays, presentations in a shuffled order (the analyses must match them by
    stimulus_id and repetition, not by position)."""
    stimuli, trials, _, times = attended.shape
    values, coords = [], {c: [] for c in ("stimulus_id", "repetition", "condition", "cue", "attended")}
    shown = {"none": "", "neutral": "all", "valid": "45"}
    for (condition, cue), data in ((reference, unattended), (("template", "valid"), attended)):
        for s in range(stimuli):
            for r in range(trials):
                values.append(data[s, r])
                for name, value in zip(coords, (f"s{s}", r, condition, cue, shown[cue])):
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


def _gain_assembly(gains: dict[str, float], units: int = 30, stimuli: int = 12,
                   reference: tuple[str, str] = ("template", "neutral")) -> xr.Dataset:
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
    return _assembly(att, unatt, regions, reference=reference)


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
    with pytest.raises(AnalysisError, match="no presentation has cue='neutral'"):
        modulation_index(ds.where(ds.cue != "neutral", drop=True))
    with pytest.raises(AnalysisError, match="needs variable 'activity'"):
        hierarchy_trend(ds.drop_vars("activity"))



def test_the_default_reference_is_the_neutral_cue_and_off_stays_explicit():
    """The default unattended reference was condition=off, whose first-step batch-norm
    statistics differ from those of a cued network (R(template)/R(off) 0.36 in V1)."""
    assert UNATTENDED == {"cue": "neutral"}
    off = _gain_assembly({"V1": 1.3}, reference=("off", "none"))
    with pytest.raises(AnalysisError, match="no presentation has cue='neutral'"):
        modulation_index(off)
    with pytest.raises(AnalysisError, match="no presentation has cue='neutral'"):
        variability(_trials_assembly(reference=("off", "none")))
    with pytest.raises(AnalysisError, match="no presentation has cue='neutral'"):
        time_course(off)
    explicit = modulation_index(off, unattended={"condition": "off"}).query("time_bin == 1").iloc[0]
    assert explicit.mean_ami == pytest.approx(0.3 / 2.3)


def _ami_assembly(amis: dict[str, float], noise: float = 0.05, units: int = 125,
                  stimuli: int = 12) -> xr.Dataset:
    """Each unit's AMI planted at its area's value plus Gaussian unit noise (SD `noise`): its
    attended rates are its unattended ones (uniform in [0.5, 2]) times (1 + a) / (1 - a);
    plus a linear read-out with negative values, which must be left out."""
    rng = np.random.default_rng(2)
    regions = [a for a in amis for _ in range(units)] + ["readout"] * 5
    unatt = rng.uniform(0.5, 2, (stimuli, 1, len(regions), 1))  # (stimulus, trial, neuroid, time_bin)
    unatt[:, :, -5:] -= 3
    ami = np.array([amis.get(r, 0.0) for r in regions]) + noise * rng.standard_normal(len(regions))  # (neuroid,)
    gain = ((1 + ami) / (1 - ami))[None, None, :, None]  # (1, 1, neuroid, 1)
    return _assembly(unatt * gain, unatt, regions)


def test_hierarchy_magnitude_recovers_a_planted_gain_per_area():
    table = hierarchy_magnitude(_gain_assembly({"V1": 1.3, "V2": 1.0, "V4": 1.3, "IT": 0.7})).set_index("region")
    assert list(table.index) == AREAS and table.attrs["left_out"] == ["readout"]
    assert list(table.position) == [0, 1, 2, 3] and (table.units == 30).all() and (table.time_bin == 1).all()
    assert table.loc["V1", "mean_ami"] == pytest.approx(0.3 / 2.3)
    assert table.loc["IT", "mean_ami"] == pytest.approx(-0.3 / 1.7)
    assert table.magnitude.to_numpy() == pytest.approx([0.3 / 2.3, 0, 0.3 / 2.3, 0.3 / 1.7])
    assert table.loc["IT", "minus_first"] == pytest.approx(0.3 / 1.7 - 0.3 / 2.3)
    assert table.loc["V1", "minus_first"] == 0 and table.loc["V4", "minus_first"] == pytest.approx(0)


def test_hierarchy_magnitude_grows_when_suppression_grows_along_the_areas():
    table = hierarchy_magnitude(_ami_assembly({"V1": -0.02, "V2": -0.05, "V4": -0.10})).set_index("region")
    assert list(table.index) == ["V1", "V2", "V4"] and (table.units == 125).all()
    assert table.mean_ami.to_numpy() == pytest.approx([-0.02, -0.05, -0.10], abs=0.01)
    assert table.magnitude.is_monotonic_increasing
    assert table.loc["V4", "minus_first"] == pytest.approx(0.08, abs=0.015)
    row = table.loc["V4"]
    assert 0 < row.minus_first_ci_low < row.minus_first < row.minus_first_ci_high
    assert (table.magnitude_ci_low < table.magnitude).all() and (table.magnitude < table.magnitude_ci_high).all()


def test_hierarchy_magnitude_with_equal_magnitudes_is_inconclusive():
    table = hierarchy_magnitude(_ami_assembly({"V1": -0.05, "V2": 0.05, "V4": -0.05, "IT": 0.05}))
    later = table.iloc[1:]
    assert (later.minus_first_ci_low < 0).all() and (later.minus_first_ci_high > 0).all()


def test_shrinking_suppression_is_not_growth_of_the_modulation():
    """The old unit-level signed trend read V1 -0.021, V2 -0.027, V4 -0.022, IT +0.011 as a
    significant rise along the hierarchy; the size of IT's modulation is the smallest."""
    ds = _ami_assembly({"V1": -0.021, "V2": -0.027, "V4": -0.022, "IT": 0.011})
    table = hierarchy_magnitude(ds).set_index("region")
    assert table.loc["IT", "mean_ami"] == pytest.approx(0.011, abs=0.01)
    assert table.loc["IT", "minus_first"] < 0 and not table.loc["IT", "minus_first_ci_low"] > 0
    assert hierarchy_trend(ds).iloc[0].rho_ci_low > 0  # what the old trend said


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
                     units: int = 20, stimuli: int = 8, trials: int = 40, gain: float = 1.0,
                     mean_gain: float = 1.0, reference: tuple[str, str] = ("template", "neutral")) -> xr.Dataset:
    """Counts (one time bin) with mean ~100 per unit and stimulus, variance fano x mean, of
    which a share `shared` is common to every unit of the area on each trial (a noise
    correlation of that size); (attended, unattended) values. Attended trials are multiplied by
    `gain` (rate and noise alike) and their mean alone by `mean_gain` (the noise relative to the
    mean drops). Every unit's mean follows one stimulus factor: a signal correlation that
    per-stimulus z-scoring must remove."""
    rng = np.random.default_rng(0)
    regions = ["V1"] * units + ["V4"] * units
    mean = (rng.uniform(80, 120, (1, 1, len(regions), 1))  # (stimulus, 1, neuroid, 1): never below 0
            * rng.uniform(0.7, 1.3, (stimuli, 1, 1, 1)))  # a signal correlation: not noise
    sides = []
    for f, c, g, m in zip(fano, shared, (gain, 1.0), (mean_gain, 1.0)):
        sd = np.sqrt(f * mean)
        common = np.concatenate([np.repeat(rng.standard_normal((stimuli, trials, 1, 1)), units, 2)
                                 for _ in range(2)], 2)  # (stimulus, trial, neuroid, 1): per area
        private = rng.standard_normal((stimuli, trials, len(regions), 1))
        sides.append(g * (m * mean + sd * (np.sqrt(c) * common + np.sqrt(1 - c) * private)))
    return _assembly(sides[0], sides[1], regions, reference=reference)


def test_variability_finds_a_planted_fano_drop():
    table = variability(_trials_assembly(fano=(1.0, 2.0)), count_scale=1.0, mean_matched=False).set_index("region")
    for area in ("V1", "V4"):
        row = table.loc[area]
        assert row.units == 20 and row.trials == 40 and row.stimuli == 8
        assert row.fano_unattended == pytest.approx(2.0, rel=0.1)
        assert row.fano_attended == pytest.approx(1.0, rel=0.1)
        assert row.fano_change_ci_low <= -1.0 <= row.fano_change_ci_high < 0
        assert abs(row.r_change) < 0.05  # no correlation planted in either
        assert not row.r_unattended_excludes_0  # so none to reduce
    scaled = variability(_trials_assembly(fano=(1.0, 2.0)), mean_matched=False).set_index("region")
    assert scaled.mean_count_unattended.to_numpy() == pytest.approx([10.0, 10.0])
    assert scaled.fano_change.to_numpy() == pytest.approx(
        (table.fano_change * scaled.count_scale).to_numpy())  # a Fano factor scales with the scale
    matched = variability(_trials_assembly(fano=(1.0, 2.0))).set_index("region")  # means equal: the same drop
    assert matched.fano_change.to_numpy() == pytest.approx(scaled.fano_change.to_numpy(), rel=0.05)
    assert (matched.fano_change_ci_high < 0).all()


def test_a_pure_gain_leaves_the_mean_matched_fano_factor_unchanged():
    """With one count scale for both selections a gain x1.3 on rate and noise read as a Fano rise."""
    ds = _trials_assembly(gain=1.3)
    table = variability(ds).set_index("region")
    shared = variability(ds, mean_matched=False).set_index("region")
    for area in ("V1", "V4"):
        row = table.loc[area]
        assert row.mean_count_unattended == pytest.approx(10) and row.mean_count_attended == pytest.approx(10)
        assert row.count_scale_unattended / row.count_scale_attended == pytest.approx(1.3, rel=0.02)
        assert row.count_scale == row.count_scale_unattended
        assert row.fano_change_ci_low < 0 < row.fano_change_ci_high
        old = shared.loc[area]
        assert old.count_scale_attended == old.count_scale_unattended == old.count_scale
        assert old.fano_attended / old.fano_unattended == pytest.approx(1.3, rel=0.1)
        assert old.fano_change_ci_low > 0  # the shared scale penalises the enhancement
        assert row.r_change == pytest.approx(old.r_change)  # correlations ignore the scale


def test_variability_finds_less_noise_relative_to_the_mean_under_attention():
    table = variability(_trials_assembly(mean_gain=1.3)).set_index("region")
    for area in ("V1", "V4"):
        row = table.loc[area]
        assert row.fano_attended / row.fano_unattended == pytest.approx(1 / 1.3 ** 2, rel=0.1)
        assert row.fano_change_ci_high < 0


def test_variability_finds_a_planted_noise_correlation_drop():
    table = variability(_trials_assembly(shared=(0.0, 0.5)), max_pairs_units=12).set_index("region")
    for area in ("V1", "V4"):
        row = table.loc[area]
        assert row.pairs == 12 * 11 // 2
        assert row.r_unattended == pytest.approx(0.5, abs=0.08) and row.r_unattended_excludes_0
        assert row.r_attended == pytest.approx(0.0, abs=0.05)
        assert row.r_change == pytest.approx(-0.5, abs=0.1) and row.r_change_ci_high < 0


def test_variability_refuses_a_fixed_scale_with_mean_matching():
    with pytest.raises(AnalysisError, match="pass mean_matched=False"):
        variability(_trials_assembly(trials=4), count_scale=1.0)


def test_variability_refuses_single_trials():
    ds = _trials_assembly(trials=4)
    with pytest.raises(AnalysisError, match=">= 2 repetitions"):
        variability(ds.where(ds.repetition == 0, drop=True))
    with pytest.raises(AnalysisError, match="needs coordinate 'cue'"):
        variability(ds.drop_vars("cue"))


# --- command lines ---------------------------------------------------------------------------

def _script(name: str):
    """analyses/<name>.py loaded as a module."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "analyses" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_script", script)
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    return cli


def _on_disk(ds: xr.Dataset, path) -> str:
    """A complete recording file of a synthetic assembly (the coordinates open_recording asks for)."""
    n = ds.sizes["neuroid"]
    ds = ds.assign_coords(label=("presentation", np.zeros(ds.sizes["presentation"], int)),
                          neuroid_id=("neuroid", [f"n{i}" for i in range(n)]),
                          **{c: ("neuroid", np.zeros(n, int)) for c in ("channel", "x", "y", "rf_size")})
    ds.assign_attrs(complete=1).to_netcdf(path)
    return str(path)


def test_modulation_index_cli_writes_the_area_level_hierarchy_table(tmp_path):
    import pandas as pd

    path = _on_disk(_ami_assembly({"V1": -0.02, "V2": -0.05, "V4": -0.10}, units=20), tmp_path / "r.nc")
    assert _script("modulation_index").main([path, "--out", str(tmp_path / "o")]) == 0  # cue=neutral by default
    levels = pd.read_csv(tmp_path / "o" / "modulation_index_hierarchy.csv")
    assert list(levels.columns) == ["region", "position", "units", "mean_ami", "magnitude", "magnitude_ci_low",
                                    "magnitude_ci_high", "minus_first", "minus_first_ci_low",
                                    "minus_first_ci_high", "time_bin"]
    assert list(levels.region) == ["V1", "V2", "V4"] and levels.minus_first_ci_low.iloc[-1] > 0
    assert (tmp_path / "o" / "modulation_index_trend.csv").exists()


def test_variability_cli_matches_means_unless_told_to_share_the_scale(tmp_path):
    import pandas as pd

    path = _on_disk(_trials_assembly(gain=1.3, units=8, stimuli=4, trials=10), tmp_path / "r.nc")
    cli = _script("variability")
    for flags, out in (([], "matched"), (["--shared-count-scale"], "shared"), (["--count-scale", "0.1"], "fixed")):
        assert cli.main([path, "--out", str(tmp_path / out), *flags]) == 0
    matched, shared, fixed = (pd.read_csv(tmp_path / out / "variability.csv") for out in ("matched", "shared", "fixed"))
    assert list(matched.columns[-3:]) == ["r_unattended_excludes_0", "count_scale_attended", "count_scale_unattended"]
    assert (matched.count_scale_unattended / matched.count_scale_attended).to_numpy() == pytest.approx([1.3, 1.3],
                                                                                                      rel=0.02)
    assert (shared.count_scale_attended == shared.count_scale_unattended).all()
    assert (fixed.count_scale_attended == 0.1).all() and (fixed.count_scale_unattended == 0.1).all()

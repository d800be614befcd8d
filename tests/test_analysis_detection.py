"""Cued detection (SDT): d' and c recover what a synthetic recording plants, differences to the
neutral cue are paired, a grey image only false-alarms, and unfit recordings are refused."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from gattanet_sim.analysis.common import AnalysisError
from gattanet_sim.analysis.detection import detection_table, responses, sdt, seed_summary

CLASSES = np.array(["cat", "dog", "owl"])
PLANTED = {"valid": (2.0, 0.0), "neutral": (1.0, 0.0), "invalid": (0.5, 0.0),
           "shuffled": (1.0, -0.5), "none": (1.0, 0.0)}  # cue type -> (d', c) in time bin 1
GREY_MEAN = -1.5  # a grey image's question logit, before the criterion shift

SCRIPT = Path(__file__).resolve().parents[1] / "analyses" / "detection.py"
spec = importlib.util.spec_from_file_location("detection_script", SCRIPT)
script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(script)


def _recording(displays: int = 1000, grey: int = 100, rho: float = 0.9, seed: int = 0) -> xr.Dataset:
    """Every display under every cue type, presentations shuffled. The question's logit is
    Gaussian, unit variance, mean +-d'/2 - c (present/absent): H = Phi(d'/2 - c), F = Phi(-d'/2
    - c). A share rho of its variance belongs to the display, the same under every cue type
    (what pairing exploits). Time bin 0 is the sweep before the cue acts: d' = 1, c = 0."""
    rng = np.random.default_rng(seed)
    n = displays + grey
    kind = np.repeat(["array", "grey"], [displays, grey])
    present = (np.arange(n) < displays // 2).astype(int)
    q = rng.integers(0, 3, n)  # (display,) question class
    shared = rng.standard_normal((n, 2))  # (display, time_bin)
    parts = []
    for cue_type, (d, c) in PLANTED.items():
        mean = np.stack([np.where(present, 0.5, -0.5),
                         np.where(present, d / 2 - c, -d / 2 - c)], axis=1)  # (display, time_bin)
        mean[kind == "grey"] = [-0.5, GREY_MEAN - c]
        logits = rng.standard_normal((n, 3, 2))  # (display, class, time_bin)
        logits[np.arange(n), q] = mean + np.sqrt(rho) * shared + np.sqrt(1 - rho) * rng.standard_normal((n, 2))
        cue = {"valid": CLASSES[q], "invalid": CLASSES[(q + rng.integers(1, 3, n)) % 3],
               "shuffled": CLASSES[rng.integers(0, 3, n)]}.get(cue_type, np.full(n, ""))
        parts.append(xr.Dataset(
            {"logits": (("presentation", "class", "time_bin"), logits)},
            coords={"stimulus_id": ("presentation", [f"s{i}" for i in range(n)]),
                    "display": ("presentation", kind), "question": ("presentation", CLASSES[q]),
                    "present": ("presentation", present), "attended": ("presentation", cue),
                    "cue": ("presentation", np.full(n, cue_type)), "label": ("presentation", q),
                    "class": CLASSES, "time_bin": [0, 1]}))
    ds = xr.concat(parts, "presentation")
    return ds.isel(presentation=rng.permutation(ds.sizes["presentation"]))


@pytest.fixture(scope="module")
def ds() -> xr.Dataset:
    return _recording()


@pytest.fixture(scope="module")
def table(ds) -> pd.DataFrame:
    return detection_table(ds)


def _row(table: pd.DataFrame, cue_type: str, display: str = "array", time_bin: int = 1) -> pd.Series:
    hit = table[(table.display == display) & (table.cue_type == cue_type) & (table.time_bin == time_bin)]
    assert len(hit) == 1
    return hit.iloc[0]


# --- sdt -------------------------------------------------------------------------------------

def test_sdt_matches_hand_computed_numbers():
    d, c = sdt(800_000, 1_000_000, 200_000, 1_000_000)  # H = 0.8, F = 0.2
    assert d == pytest.approx(1.683, abs=1e-3) and c == pytest.approx(0, abs=1e-6)
    z = NormalDist().inv_cdf
    d, c = sdt(90, 100, 30, 100)  # Hautus: H = 90.5 / 101, F = 30.5 / 101
    assert d == pytest.approx(z(90.5 / 101) - z(30.5 / 101), rel=1e-9)
    assert c == pytest.approx(-(z(90.5 / 101) + z(30.5 / 101)) / 2, rel=1e-9) and c < 0  # liberal


def test_sdt_keeps_rates_of_0_and_1_finite_and_is_vectorised():
    d, c = sdt(np.array([50, 0, 50]), np.array([50, 50, 0]), np.array([0, 50, 0]), np.array([50, 50, 50]))
    assert d.shape == c.shape == (3,)
    assert np.isfinite(d[:2]).all() and d[0] > 0 > d[1]  # H = 1, F = 0 and the reverse
    assert d[0] == pytest.approx(2 * NormalDist().inv_cdf(50.5 / 51))
    assert np.isnan(d[2]) and np.isnan(c[2])  # no signal trials: undefined, not 0


# --- responses -------------------------------------------------------------------------------

def test_responses_read_the_question_class_logit(ds):
    r = responses(ds)
    assert len(r) == ds.sizes["presentation"] * 2
    logits = ds["logits"].values  # (presentation, class, time_bin)
    q = pd.Index(CLASSES).get_indexer(ds["question"].values)
    expected = logits[np.arange(len(q)), q]  # (presentation, time_bin)
    np.testing.assert_array_equal(r.decision.to_numpy(), expected.ravel())
    assert (r.yes == (r.decision > 0)).all() and (r.stimulus_id.to_numpy()[::2] == ds.stimulus_id.values).all()
    one = responses(ds, time_bin=1)
    assert len(one) == ds.sizes["presentation"] and (one.time_bin == 1).all()
    np.testing.assert_array_equal(one.decision.to_numpy(), expected[:, 1])


# --- detection_table -------------------------------------------------------------------------

def test_planted_d_prime_and_criterion_are_recovered(table):
    covered = []  # a 95% interval misses its truth 1 time in 20: allow that, not more
    for cue_type, (d, c) in PLANTED.items():
        row, before = _row(table, cue_type), _row(table, cue_type, time_bin=0)  # before: no cue yet
        for r, name, truth in ((row, "d_prime", d), (row, "criterion", c), (before, "d_prime", 1.0),
                               (before, "criterion", 0.0)):
            covered.append(r[f"{name}_ci_low"] <= truth <= r[f"{name}_ci_high"])
            assert r[name] == pytest.approx(truth, abs=0.25 if name == "d_prime" else 0.15), cue_type
        assert row.n_present == row.n_absent == 500 and row.note == ""
    assert sum(covered) >= len(covered) - 2, covered
    assert detection_table(_recording(displays=200, grey=10), seed=3).equals(
        detection_table(_recording(displays=200, grey=10), seed=3))  # seeded


def test_valid_cue_raises_d_prime_and_a_criterion_shift_does_not(table):
    valid, shuffled, neutral = _row(table, "valid"), _row(table, "shuffled"), _row(table, "neutral")
    assert valid.d_prime_minus_neutral_ci_low > 0
    assert valid.d_prime_minus_neutral == pytest.approx(1.0, abs=0.25)
    assert shuffled.hit_rate > neutral.hit_rate and shuffled.fa_rate > neutral.fa_rate  # more "yes"
    assert shuffled.d_prime_minus_neutral_ci_low < 0 < shuffled.d_prime_minus_neutral_ci_high
    assert shuffled.criterion_minus_neutral_ci_high < 0
    assert _row(table, "invalid").d_prime_minus_neutral_ci_high < 0
    assert np.isnan(neutral.d_prime_minus_neutral)  # the reference has no difference to itself


def test_differences_are_paired_over_displays(table):
    """Each display's share of the logit is the same under every cue type: a paired interval is
    much narrower than two independent ones combined."""
    for cue_type in ("valid", "shuffled"):
        row, ref = _row(table, cue_type), _row(table, "neutral")
        assert row.paired_displays == 1000
        for name in ("d_prime", "criterion"):
            width = lambda r, n: r[f"{n}_ci_high"] - r[f"{n}_ci_low"]  # noqa: E731
            independent = np.hypot(width(row, name), width(ref, name))
            assert width(row, f"{name}_minus_neutral") < 0.85 * independent, (cue_type, name)


def test_grey_rows_report_false_alarms_and_no_d_prime(table):
    grey = table[table.display == "grey"]
    assert len(grey) == 2 * len(PLANTED) and (grey.n_present == 0).all()
    assert grey.d_prime.isna().all() and grey.criterion.isna().all() and grey.hit_rate.isna().all()
    assert grey.note.str.contains("no present trials").all()
    assert grey.fa_rate.notna().all() and (grey.fa_rate_ci_low <= grey.fa_rate).all()
    row = _row(table, "neutral", display="grey")
    expected = NormalDist().cdf(GREY_MEAN)  # F = Phi(mean), c = 0
    assert row.fa_rate_ci_low <= expected <= row.fa_rate_ci_high


def test_a_cell_without_absent_trials_has_a_note_not_a_number(ds):
    only_present = ds.isel(presentation=np.flatnonzero(ds["present"].values == 1))
    t = detection_table(only_present)
    assert t.d_prime.isna().all() and t.d_prime_ci_low.isna().all()
    assert t.note.str.startswith("no absent trials").all()


# --- seed_summary ----------------------------------------------------------------------------

def test_seed_summary_is_a_t_interval_over_seeds():
    values = {0: 1.0, 1: 1.5, 2: 0.8}
    tables = {s: pd.DataFrame({"display": ["array", "array"], "cue_type": ["neutral", "valid"],
                               "time_bin": [1, 1], "d_prime_minus_neutral": [np.nan, v]})
              for s, v in values.items()}
    summary = seed_summary(tables)
    assert list(summary.cue_type) == ["valid"]  # the reference itself has no contrast
    row = summary.iloc[0]
    x = np.array(list(values.values()))
    low, high = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    assert (row["mean"], row.ci_low, row.ci_high) == pytest.approx((x.mean(), low, high))
    assert row.n_seeds == 3 and row["values"] == "0=1, 1=1.5, 2=0.8" and row.note == ""
    single = seed_summary({0: tables[0]}).iloc[0]
    assert single.n_seeds == 1 and np.isnan(single.ci_low) and "fewer than 2 seeds" in single.note
    with pytest.raises(AnalysisError, match="no column 'fa_rate'"):
        seed_summary(tables, contrast="fa_rate")


# --- refusals --------------------------------------------------------------------------------

@pytest.mark.parametrize("change, message", [
    (lambda d: d.drop_vars("logits"), "needs variable 'logits'"),
    (lambda d: d.drop_vars("cue"), "needs coordinate 'cue'"),
    (lambda d: d.assign_coords(question=("presentation", np.where(
        np.arange(d.sizes["presentation"]) == 3, "emu", d.question.values))), "'emu' is not among"),
    (lambda d: d.assign_coords(present=("presentation", d.present.values * 2)), "present must be 0/1"),
])
def test_unfit_recordings_are_refused_in_one_line(ds, change, message):
    with pytest.raises(AnalysisError, match=message) as err:
        detection_table(change(ds))
    assert "\n" not in str(err.value)


# --- the script ------------------------------------------------------------------------------

def test_script_writes_the_table_and_figure(tmp_path, capsys):
    small = _recording(displays=120, grey=10).assign_attrs(complete=1)
    small.to_netcdf(tmp_path / "r.nc")
    assert script.main([str(tmp_path / "r.nc"), "--out", str(tmp_path / "out")]) == 0
    written = pd.read_csv(tmp_path / "out" / "detection.csv")
    assert {"d_prime_minus_neutral", "criterion_minus_neutral_ci_high", "note"} <= set(written.columns)
    assert len(written) == 2 * 2 * len(PLANTED)  # display x time bin x cue type
    assert (tmp_path / "out" / "detection.png").exists() and (tmp_path / "out" / "detection.svg").exists()
    small.drop_vars("question").to_netcdf(tmp_path / "bad.nc")
    capsys.readouterr()
    assert script.main([str(tmp_path / "bad.nc"), "--out", str(tmp_path / "bad")]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "needs coordinate 'question'" in err

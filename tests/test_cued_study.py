"""The cued detection study's summary over seeds: contrasts, signs, controls, classification."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest
import torch
from scipy import stats

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "cued_detection_study.py"


@pytest.fixture
def study():
    spec = importlib.util.spec_from_file_location("cued_detection_study", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def table(valid: float, invalid: float) -> pd.DataFrame:
    """A detection table of one seed, last time bin only: d' differences to neutral as given."""
    rows = []
    for cue, diff in (("valid", valid), ("neutral", float("nan")), ("invalid", invalid),
                      ("shuffled", 0.0), ("negated", -0.01), ("bottom-up", 0.02)):
        rows.append({"display": "array", "cue_type": cue, "time_bin": 1, "d_prime": 1 + (0 if diff != diff else diff),
                     "hit_rate": 0.6, "fa_rate": 0.3, "d_prime_minus_neutral": diff,
                     "criterion_minus_neutral": 0.0 if diff == diff else float("nan")})
        rows.append({"display": "grey", "cue_type": cue, "time_bin": 1, "d_prime": float("nan"),
                     "hit_rate": float("nan"), "fa_rate": 0.1, "d_prime_minus_neutral": float("nan"),
                     "criterion_minus_neutral": float("nan")})
    return pd.DataFrame(rows)


def test_summary_over_seeds_signs_the_invalid_contrast_and_pairs_accuracy(study):
    tables = {"cue": {0: table(0.10, -0.05), 1: table(0.12, -0.07), 2: table(0.08, -0.03)}}
    summary = study.summarise(tables, {"cue": {0: 0.80, 1: 0.81, 2: 0.79}},
                              {"cue": {0: 0.805, 1: 0.81, 2: 0.80}})
    report = study.report(summary)
    get = lambda measure: summary[(summary.variant == "cue") & (summary.measure == measure)].iloc[0]  # noqa: E731
    valid = get("d_prime: valid - neutral")
    half = stats.t.ppf(0.975, 2) * pd.Series([0.10, 0.12, 0.08]).std() / 3 ** 0.5
    assert valid["mean"] == pytest.approx(0.10) and valid.ci_low == pytest.approx(0.10 - half)
    invalid = get("d_prime: neutral - invalid")  # neutral minus invalid: positive when invalid hurts
    assert invalid["mean"] == pytest.approx(0.05) and invalid.seeds == 3
    accuracy = get("classification accuracy minus its starting run's (points)")
    assert accuracy["mean"] == pytest.approx(100 * (-0.005 + 0.0 - 0.01) / 3)
    assert get("fa_rate valid (grey)")["mean"] == pytest.approx(0.1)
    assert "## cue" in report and "valid - neutral" in report


def test_rewriting_the_report_never_drops_a_variant_or_seeds(study, tmp_path):
    """A variant not summarised now, or summarised over fewer seeds than before, keeps its rows;
    one with as many seeds or more is replaced in place; a new one is appended."""
    two = lambda valid: {s: table(valid, -0.05) for s in (0, 1)}  # noqa: E731
    three = lambda valid: {s: table(valid, -0.05) for s in (0, 1, 2)}  # noqa: E731
    earlier = study.summarise({"a": three(0.1), "b": three(0.2), "c": three(0.3)}, {}, {})
    csv = tmp_path / "seeds.csv"
    earlier.to_csv(csv, index=False)
    earlier = pd.read_csv(csv)  # as main reads it: the report must not change on the way
    assert study.report(earlier) == study.report(study.summarise({"a": three(0.1), "b": three(0.2),
                                                                   "c": three(0.3)}, {}, {}))
    now = study.summarise({"a": two(0.9), "c": three(0.7), "d": three(0.4)}, {}, {})
    merged, kept = study.merge(now, earlier)
    assert list(dict.fromkeys(merged.variant)) == ["a", "b", "c", "d"]
    valid = merged[merged.measure == "d_prime: valid - neutral"].set_index("variant")["mean"]
    assert valid.to_dict() == pytest.approx({"a": 0.1, "b": 0.2, "c": 0.7, "d": 0.4})
    assert kept == ["kept the earlier 3-seed rows of a (summarised here over 2)"]


def test_compare_pairs_variants_by_seed(study):
    """Only the seeds both variants recorded count, each paired with its own seed."""
    first = {0: table(0.10, -0.05), 1: table(0.20, -0.06), 2: table(0.30, -0.04)}
    second = {0: table(0.05, -0.01), 2: table(0.10, -0.02)}
    diff = study.compare(first, second).set_index("measure")
    assert diff.loc["d_prime: valid - neutral", "difference"] == pytest.approx((0.05 + 0.20) / 2)
    assert diff.loc["d_prime: neutral - invalid", "difference"] == pytest.approx((0.04 + 0.02) / 2)
    assert (diff.seeds == "0, 2").all()
    assert diff.loc["d_prime: valid - neutral", "first"] == "+0.100, +0.300"


def test_against_bottom_up_pairs_each_cue_with_no_cue_by_seed(study):
    """table(): d' is 1 + (difference to neutral), the neutral cue's 1, no cue's 1.02."""
    summary = study.summarise({"a": {0: table(0.10, -0.05), 1: table(0.20, -0.07)}}, {}, {})
    diff = study.against(summary, "a").set_index("measure").difference
    assert diff["d_prime: valid - bottom-up"] == pytest.approx(0.15 - 0.02)
    assert diff["d_prime: neutral - bottom-up"] == pytest.approx(-0.02)
    assert diff["d_prime: invalid - bottom-up"] == pytest.approx(-0.06 - 0.02)


def test_scratch_variants_train_from_nothing_and_fine_tunes_from_their_start(study, tmp_path, monkeypatch):
    """A variant in SCRATCH trains the whole network on the cued task with its start's arguments
    and epochs, without --init; a fine-tuning variant starts from that run, for --epochs."""
    issued = []
    monkeypatch.setattr(study, "sh", lambda cmd, threads: issued.append(cmd))
    monkeypatch.setattr(study, "RUNS", tmp_path)
    study.cue_run("cue-T4-scratch-beta-0.5", 1, 3, "data", 1)
    (scratch,) = issued
    assert "--init" not in scratch and "--task" in scratch and "cued-detection" in scratch
    epochs = [scratch[i + 1] for i, a in enumerate(scratch) if a == "--epochs"]
    assert epochs == ["10"]  # the start's, not the fine-tune's 3
    assert scratch[scratch.index("--timesteps") + 1] == "4" and scratch[scratch.index("--cue-beta") + 1] == "0.5"
    issued.clear()
    study.cue_run("cue-frozen-T4-recipe-beta-0.5", 1, 3, "data", 1)
    start, tune = issued  # the start is trained first (missing here), then fine-tuned
    assert "--init" not in start and "--task" not in start
    assert tune[tune.index("--init") + 1] == str(tmp_path / "positive-T4-norm-4-tau-2-random-T-s1")
    assert [tune[i + 1] for i, a in enumerate(tune) if a == "--epochs"][-1] == "3"


def test_gain_at_the_items_cell_is_read_from_its_quadrant():
    spec = importlib.util.spec_from_file_location("cued_gain_at_cell", SCRIPT.with_name("cued_gain_at_cell.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    gain = torch.ones(3, 4, 6)  # (B, H, W): quadrants of 2 x 3 units
    gain[0, :2, 3:] = 2.0  # array 0: its item's cell 1 (top right) doubled
    gain[1, 2:, :3] = 0.5  # array 1: cell 2 (bottom left) halved, its item in cell 3
    gain[2, 2:, 3:] = 4.0  # array 2: cell 3, its item there
    at, rest = module.quadrant_gain(gain, torch.tensor([1, 3, 3]))
    assert at == pytest.approx((2 + 1 + 4) / 3)
    assert rest == pytest.approx((1 + (1 + 0.5 + 1) / 3 + 1) / 3)

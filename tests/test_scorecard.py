"""The scorecard's one verdict rule, its findings and views, its provenance and its errors."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pandas as pd
import pytest

from gattanet_sim.analysis import scorecard as card

SCRIPT = Path(__file__).resolve().parents[1] / "analyses" / "scorecard.py"
spec = importlib.util.spec_from_file_location("scorecard", SCRIPT)
scorecard = importlib.util.module_from_spec(spec)
sys.modules["scorecard"] = scorecard  # dataclasses look their module up
spec.loader.exec_module(scorecard)


def finding(direction=+1, null=0.0, magnitude=None):
    return card.Finding("f", "t", "b", "m", lambda tables: None, direction, null, magnitude)


@pytest.mark.parametrize("value, low, high, direction, null, magnitude, verdict", [
    (0.2, 0.1, 0.3, +1, 0.0, None, "agrees"),
    (0.2, 0.1, 0.3, -1, 0.0, None, "disagrees"),
    (-0.2, -0.3, -0.1, -1, 0.0, None, "agrees"),
    (0.05, -0.1, 0.2, +1, 0.0, None, "inconclusive"),
    (1.1, 1.05, 1.2, +1, 1.0, 0.26, "agrees"),  # +10% against V4's +26%: above a quarter
    (1.03, 1.01, 1.05, +1, 1.0, 0.26, "inconclusive"),  # +3%: significant, below a quarter of it
    (0.95, 0.9, 0.98, +1, 1.0, 0.26, "disagrees"),  # the other side disagrees at any size
    (0.12, 0.05, 0.2, +1, 0.1, None, "inconclusive"),  # a measured null (chance, a control)
    (math.nan, 1.0, 1.0, +1, 0.0, None, "not measured"),  # NaN is never a verdict
    (math.inf, math.inf, math.inf, +1, 1.0, None, "not measured"),  # nor is an infinite value
])
def test_one_rule_for_every_verdict(value, low, high, direction, null, magnitude, verdict):
    f = finding(direction, null, magnitude)
    assert card.verdict(f, card.Measure(value, low, high))[0] == verdict


def test_cannot_measure_and_architecture_are_states_of_their_own():
    f = finding()
    assert card.verdict(f, card.Measure(0.5, 0.4, 0.6, cannot="2 units"))[0] == "cannot measure"
    assert card.verdict(f, card.Measure(0.5, 0.4, 0.6, architecture="forced"))[0] == "architecture"
    assert card.verdict(f, card.Measure(math.nan, 0.4, 0.6, cannot="2 units"))[0] == "cannot measure"
    assert card.verdict(f, card.Measure(math.nan, 0.4, 0.6))[0] == "not measured"


def _tables(root: Path, **overrides) -> Path:
    """A complete set of analysis tables, every finding planted as agreeing unless overridden."""
    def write(name, file, rows):
        path = root / name / file
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(path, index=False)

    ratio = overrides.get("ratio", 1.3)
    write("modulation_index", "modulation_index.csv", [
        {"region": a, "time_bin": 1, "units": 100, "ratio": ratio, "ratio_ci_low": ratio - 0.05,
         "ratio_ci_high": ratio + 0.05} for a in ("V1", "V4")])
    write("modulation_index", "modulation_index_hierarchy.csv", [
        {"region": "V1", "magnitude": 0.04, "minus_first": 0.0, "minus_first_ci_low": 0.0, "minus_first_ci_high": 0.0},
        {"region": "V4", "magnitude": 0.12, "minus_first": 0.08, "minus_first_ci_low": 0.05,
         "minus_first_ci_high": 0.1}])
    n_k = overrides.get("n_k", 40)
    write("gain_model", "gain_model.csv", [
        {"region": "V4", "statistic": "median", "name": "g", "count": 40, "value": 1.3, "ci_low": 1.2, "ci_high": 1.4},
        {"region": "V4", "statistic": "median", "name": "k", "count": n_k, "value": 1.5, "ci_low": 1.3,
         "ci_high": 1.7}])
    write("gain_model", "gain_model_units.csv", [
        {"region": "V4", "class": "response gain" if i % 2 else "activity gain", "g": 1.3 + 0.01 * i,
         "a": 1.25 + 0.01 * i} for i in range(overrides.get("n_g", 30))])
    write("feature_similarity_gain", "feature_similarity_gain.csv", [
        {"region": "V4", "units": 100, "slope": 0.2, "slope_ci_low": 0.1, "slope_ci_high": 0.3}])
    write("paired_stimuli", "paired_stimuli.csv", [
        {"region": "V4", "preferred_over_other": 1.2, "preferred_over_other_ci_low": 1.1,
         "preferred_over_other_ci_high": 1.3}])
    r_low = overrides.get("r_unattended_ci_low", 0.05)
    write("variability", "variability.csv", [
        {"region": "V4", "units": 64, "pairs": 2000, "fano_change": -0.2, "fano_change_ci_low": -0.3,
         "fano_change_ci_high": -0.1, "r_unattended": r_low + 0.05, "r_unattended_ci_low": r_low,
         "r_unattended_ci_high": r_low + 0.1, "r_change": -0.05, "r_change_ci_low": -0.08, "r_change_ci_high": -0.02}])
    write("time_course", "time_course_onsets.csv", [
        {"region": a, "onset_bin": b, "spearman_rho": overrides.get("rho", -1.0), "rho_ci_low": -1.0,
         "rho_ci_high": -0.8, "forced": overrides.get("forced", False), "min_onsets": "V1:1;V2:2;V4:3"}
        for a, b in overrides.get("onsets", (("V1", 5), ("V2", 4), ("V4", 3)))])
    write("attention_maps", "attention_maps.csv", [
        {"condition": "bottom-up", "region": "readout", "time_bin": 1, "images": 1000, "peak_at_target": 0.5,
         "peak_ci_low": 0.45, "peak_ci_high": 0.55, "chance": 0.1, "gain_peak_at_target": 0.5,
         "gain_peak_ci_low": 0.45, "gain_peak_ci_high": 0.55}])
    write("query_space", "query_space.csv", [
        {"condition": "bottom-up", "time_bin": 0, "task": "group", "signal": s, "images": 1000, "accuracy": 0.9,
         "ci_low": 0.85, "ci_high": 0.95, "chance": 0.6, "shuffled_accuracy": 0.6, "shuffled_ci_low": 0.55,
         "shuffled_ci_high": 0.65} for s in ("query", "query_without_readout")])
    write("noise_robustness", "noise_robustness.csv", [
        {"condition": "bottom-up", "noise_std": 0.1, "time_bin": 1, "minus_off": 0.05, "diff_images": 1000,
         "diff_ci_low": 0.03, "diff_ci_high": 0.07}])
    write("cueing", "cueing.csv", [
        {"cue": c, "time_bin": 1, "minus_neutral": v, "diff_images": 1000, "diff_ci_low": v - 0.02,
         "diff_ci_high": v + 0.02} for c, v in (("valid", 0.1), ("invalid", -0.1))])
    write("cueing", "reaction_times.csv", [
        {"cue": "valid", "rt_ms_minus_neutral": -10.0, "rt_ms_diff_ci_low": -15.0, "rt_ms_diff_ci_high": -5.0,
         "distinct_rts": overrides.get("distinct_rts", 5)}])
    return root


def test_planted_agreement_everywhere_agrees_on_every_counted_finding(tmp_path):
    cells = card.score(_tables(tmp_path), {"attention_kind": "tuned"})
    assert {c.verdict for c in cells} == {"agrees"}, [(c.finding.key, c.verdict, c.reason) for c in cells]
    counted = [c.finding.key for c in cells if c.counted]
    assert "enhancement_v1" not in counted and "readout_agreement" not in counted  # always views
    assert card.counts(cells)["agrees"] == len(counted)


def test_one_gain_per_position_makes_three_findings_views_of_the_enhancement(tmp_path):
    cells = {c.finding.key: c for c in card.score(_tables(tmp_path), {"gain_map": "position"})}
    for key in ("response_gain", "feature_similarity", "biased_competition"):
        assert not cells[key].counted and cells[key].view_of == "enhancement"
    feature = {c.finding.key: c for c in card.score(tmp_path, {"gain_map": "both"})}
    assert all(feature[k].counted for k in ("response_gain", "feature_similarity", "biased_competition"))


@pytest.mark.parametrize("override, key, expected", [
    ({"n_k": 2}, "contrast_gain", "cannot measure"),  # a median of 2 units is no finding
    ({"n_g": 4}, "response_gain", "cannot measure"),
    ({"r_unattended_ci_low": -0.01}, "noise_correlations", "cannot measure"),  # nothing to reduce
    ({"distinct_rts": 1}, "reaction_time", "cannot measure"),  # no resolution
    ({"forced": True}, "onset_order", "architecture"),  # the cascade's minimum onsets
    ({"rho": math.nan, "onsets": (("V1", 1), ("V2", 1))}, "onset_order", "cannot measure"),  # a tie
    ({"ratio": 1.03}, "enhancement", "inconclusive"),  # significant, but below a quarter of +26%
])
def test_preconditions_and_magnitudes_change_the_state(tmp_path, override, key, expected):
    cells = {c.finding.key: c for c in card.score(_tables(tmp_path, **override), {"attention_kind": "tuned"})}
    assert cells[key].verdict == expected, cells[key].reason


def test_a_table_lacking_a_row_is_not_measured_not_a_crash(tmp_path):
    tables = _tables(tmp_path)
    (tables / "query_space" / "query_space.csv").write_text(
        "condition,time_bin,task,images,accuracy,ci_low,ci_high,chance\nbottom-up,0,class,10,0.5,0.4,0.6,0.1\n")
    cells = {c.finding.key: c for c in card.score(tables, {})}
    assert cells["query_groups"].verdict == "not measured"
    # the reason names the table and what it lacks, in words (it read "the tables lack single
    # positional indexer is out-of-bounds")
    note = cells["query_groups"].measure.note
    assert "query_space" in note and "positional indexer" not in note and "no row" in note, note
    (tables / "modulation_index" / "modulation_index.csv").write_text("region,time_bin,units\nV4,1,10\n")
    note = {c.finding.key: c for c in card.score(tables, {})}["enhancement"].measure.note
    assert "modulation_index" in note and "'Series' object" not in note and "column" in note, note


def test_markdown_and_figure_show_every_model_side_by_side(tmp_path):
    a = card.score(_tables(tmp_path / "a"), {"attention_kind": "tuned"})
    b = card.score(_tables(tmp_path / "b", ratio=0.9), {"gain_map": "position"})
    text = scorecard.markdown({"ref": a, "learned": b}, "# T", {"ref": {"checkpoint": "x.pt",
                                                                       "checkpoint_sha256": "ab" * 32}}, "cmd")
    assert text.startswith("# T") and "| ref | learned |" in text.replace("model: measure | ", "")
    assert "**disagrees**" in text and "(view of enhancement)" in text and "`x.pt`" in text
    paths = scorecard.figure({"ref": a, "learned": b}, tmp_path / "fig")
    assert all(p.exists() for p in paths)
    long = card.long_table({"ref": a, "learned": b})
    assert set(long.model) == {"ref", "learned"} and len(long) == 2 * len(card.FINDINGS)


def test_missing_recordings_or_tables_are_one_line_errors(tmp_path, capsys):
    assert scorecard.main(["--recordings", str(tmp_path), "--tables", str(tmp_path / "t"),
                           "--out", str(tmp_path / "s.md")]) == 2
    err = capsys.readouterr().err
    assert "lacks the recording(s)" in err and len(err.strip().splitlines()) == 1
    assert scorecard.main(["--skip-analyses", "--recordings", str(tmp_path), "--tables", str(tmp_path / "t"),
                           "--out", str(tmp_path / "s.md")]) == 2
    assert "run the analyses" in capsys.readouterr().err
    assert scorecard.main(["--model", "bad", "--out", str(tmp_path / "s.md")]) == 2
    assert not (tmp_path / "s.md").exists()


def test_skip_analyses_refuses_tables_made_from_other_recordings(tmp_path, capsys):
    """--skip-analyses mixed fresh and stale tables with no provenance."""
    recordings = tmp_path / "rec"
    recordings.mkdir()
    tables = _tables(tmp_path / "t")
    (tables / "provenance.json").write_text(json.dumps({"crf.nc": {"sha256": "0" * 64}}))
    argv = ["--skip-analyses", "--recordings", str(recordings), "--tables", str(tables),
            "--out", str(tmp_path / "s.md")]
    assert scorecard.main(argv) == 2
    assert "other recordings" in capsys.readouterr().err
    (tables / "provenance.json").write_text("{}")  # names no tables: not ours
    assert scorecard.main(argv) == 2
    (tables / "provenance.json").write_text(json.dumps({"tables": scorecard.table_hashes(tables)}))
    assert scorecard.main(argv) == 0
    assert (tmp_path / "s.png").exists() and (tables / "scorecard.csv").exists()
    table = tables / "modulation_index" / "modulation_index.csv"  # a foreign or cut table
    table.write_text(table.read_text()[:-2])
    assert scorecard.main(argv) == 2
    assert "not the table the analyses wrote" in capsys.readouterr().err


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n\x00\x00binary\xff\xfe", b'region,ratio\n"V1,0.5\n'])
def test_an_unreadable_table_is_a_one_line_error_naming_it(tmp_path, capsys, content):
    """An empty or binary CSV gave an error that named no file."""
    tables = _tables(tmp_path / "t")
    table = tables / "modulation_index" / "modulation_index.csv"
    table.write_bytes(content)
    (tables / "provenance.json").write_text(json.dumps({"tables": scorecard.table_hashes(tables)}))
    assert scorecard.main(["--skip-analyses", "--recordings", str(tmp_path), "--tables", str(tables),
                           "--out", str(tmp_path / "s.md")]) == 2
    err = capsys.readouterr().err.strip()
    assert str(table) in err and "cannot be read" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "s.md").exists()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from gattanet_sim import train

    out = tmp_path_factory.mktemp("scorecard-run") / "run"
    assert train.main(["--dataset", "stimuli", "--widths", "4,8,8", "--hidden", "16", "--key-dim", "4",
                       "--batch-size", "32", "--train-limit", "96", "--quiet", "--epochs", "1",
                       "--out-dir", str(out)]) == 0
    return out


def test_record_makes_each_recording_once_and_analyses_keep_going_per_model(tiny_run, tmp_path, monkeypatch):
    """A model's analysis that cannot run is 'not measured' in its column, not the end of the card;
    a recording of the same checkpoint and command is not made twice."""
    monkeypatch.setattr(scorecard, "RECORDINGS", {"crf.nc": [*scorecard.GRATINGS, "--contrasts", "1",
                                                             "--conditions", "valid,neutral,invalid",
                                                             "--units", "8"]})
    monkeypatch.setattr(scorecard, "ANALYSES", {
        "modulation_index": ("modulation_index.py", "crf.nc",
                             ["--attended", "cue=valid", "--unattended", "cue=invalid"]),
        "attention_maps": ("attention_maps.py", "crf.nc", [])})  # gratings hold no agreement: it fails
    scorecard.record(tiny_run, tmp_path / "rec")
    made = (tmp_path / "rec" / "crf.nc").stat().st_mtime_ns
    scorecard.record(tiny_run, tmp_path / "rec")
    assert (tmp_path / "rec" / "crf.nc").stat().st_mtime_ns == made  # reused
    (tmp_path / "tables" / "attention_maps").mkdir(parents=True)
    (tmp_path / "tables" / "attention_maps" / "attention_maps.csv").write_text("stale\n")
    failed = scorecard.run_analyses(tmp_path / "rec", tmp_path / "tables", None, keep_going=True)
    assert set(failed) == {"attention_maps"} and "error" in failed["attention_maps"]
    assert not (tmp_path / "tables" / "attention_maps").exists()  # no stale table outlives a failure
    assert (tmp_path / "tables" / "modulation_index" / "modulation_index_hierarchy.csv").exists()
    made_from = json.loads((tmp_path / "tables" / "provenance.json").read_text())
    assert made_from["failed"] == failed and made_from["crf.nc"]["model_config"]["attention"] is True
    others = {a: "not in this test" for a in card.ANALYSIS_OF.values() if a not in ("modulation_index",)}
    cells = {c.finding.key: c for c in card.score(tmp_path / "tables", {}, {**others, **failed})}
    assert cells["enhancement"].verdict != "not measured"
    assert cells["readout_gain"].verdict == "not measured" and "could not run" in cells["readout_gain"].measure.note
    with pytest.raises(scorecard.UsageError):  # one model alone: a failing analysis stops the card
        scorecard.run_analyses(tmp_path / "rec", tmp_path / "tables", None)


def test_a_table_cut_short_is_refused_wherever_it_is_read(tmp_path):
    """A CSV cut by 2 bytes read as a shorter number when tables were read without the
    scorecard's provenance (score() from Python): a table must end where pandas ends one."""
    (tmp_path / "variability").mkdir()
    path = tmp_path / "variability" / "variability.csv"
    pd.DataFrame({"region": ["V4"], "fano_diff": [0.123456]}).to_csv(path, index=False)
    assert card.read_table(tmp_path, "variability").fano_diff.iloc[0] == 0.123456
    path.write_bytes(path.read_bytes()[:-2])  # "0.1234" and no newline
    with pytest.raises(card.TableError, match="cut short"):
        card.read_table(tmp_path, "variability")

"""The scorecard's verdicts, and its refusal to build from missing tables."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "analyses" / "scorecard.py"
spec = importlib.util.spec_from_file_location("scorecard", SCRIPT)
scorecard = importlib.util.module_from_spec(spec)
sys.modules["scorecard"] = scorecard  # dataclasses look their module up
spec.loader.exec_module(scorecard)


@pytest.mark.parametrize("low, high, expected, reference, verdict", [
    (0.1, 0.3, +1, 0.0, "agrees"),
    (0.1, 0.3, -1, 0.0, "disagrees"),
    (-0.3, -0.1, -1, 0.0, "agrees"),
    (-0.1, 0.2, +1, 0.0, "inconclusive"),
    (1.05, 1.2, +1, 1.0, "agrees"),  # a ratio against 1
    (0.9, 0.98, +1, 1.0, "disagrees"),
    (0.05, 0.2, +1, 0.1, "inconclusive"),  # chance is the reference
    (math.nan, math.nan, +1, 0.0, "not measured"),  # NaN is never a verdict
])
def test_verdict_is_the_side_of_the_reference_the_ci_lies_on(low, high, expected, reference, verdict):
    row = scorecard.Row("s", "b", "m", (low + high) / 2, low, high, expected, reference)
    assert row.verdict == verdict


def test_markdown_counts_verdicts():
    rows = [scorecard.Row("a", "b", "m", 1.0, 0.5, 1.5, +1), scorecard.Row("c", "d", "m", 1.0, 0.5, 1.5, -1)]
    text = scorecard.markdown(rows, "# T")
    assert text.startswith("# T") and "| a | b | m | 1 [0.5, 1.5] | agrees |" in text
    assert "1 agrees, 1 disagrees, 0 inconclusive" in text


def test_missing_recordings_or_tables_are_one_line_errors(tmp_path, capsys):
    assert scorecard.main(["--recordings", str(tmp_path), "--tables", str(tmp_path / "t"),
                           "--out", str(tmp_path / "s.md")]) == 2
    err = capsys.readouterr().err
    assert "lacks the recording(s)" in err and len(err.strip().splitlines()) == 1
    assert scorecard.main(["--skip-analyses", "--tables", str(tmp_path / "t"), "--out", str(tmp_path / "s.md")]) == 2
    assert "run the analyses first" in capsys.readouterr().err
    assert not (tmp_path / "s.md").exists()


def test_a_nan_value_with_a_ci_is_not_measured_and_counted_apart():
    """A NaN value with CI [1, 1] became a verdict; a truncated table gave 'nan ... inconclusive'."""
    row = scorecard.Row("s", "b", "m", math.nan, 1.0, 1.0, +1)
    assert row.verdict == "not measured"
    text = scorecard.markdown([row, scorecard.Row("a", "b", "m", 1.0, 0.5, 1.5, +1)], "# T")
    assert "1 agrees, 0 disagrees, 0 inconclusive, 1 not measured" in text


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n\x00\x00binary\xff\xfe", b'region,ratio\n"V1,0.5\n'])
def test_an_unreadable_table_is_a_one_line_error_naming_it(tmp_path, capsys, content):
    """An empty or binary CSV gave an error that named no file."""
    table = tmp_path / "t" / "modulation_index" / "modulation_index.csv"
    table.parent.mkdir(parents=True)
    table.write_bytes(content)
    assert scorecard.main(["--skip-analyses", "--tables", str(tmp_path / "t"), "--out", str(tmp_path / "s.md")]) == 2
    err = capsys.readouterr().err.strip()
    assert str(table) in err and "cannot be read" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "s.md").exists()

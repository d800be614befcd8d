"""The biology scorecard's findings and its one verdict rule, read from the analyses' tables.

A scorecard is a measuring instrument, so its rules are written once, here, and apply to every
model alike:

- **One row per independent finding.** Measurements that are one quantity are grouped under
  one finding; the others are shown as its *views* and not counted. Always: V1's ratio is a
  view of the enhancement finding (read in V4), and "read-out agreement peaks at the true
  class" is a view of "the read-out's gain peaks there" (the agreement's sign is a convention,
  mirrored by the alpha's). In a model whose gain is one per position in a conv area (the
  learned region with `gain_map` "position"), every channel at a place shares one gain, so
  the response gain on the contrast-response function, the feature-similarity slope and the
  paired-stimuli ratio are the same quantity as the enhancement: for such a model they are
  views too (`one_gain_per_position`).
- **The verdict** (`verdict`): *agrees* when the 95% CI excludes the null on biology's side and
  the effect is at least a quarter of biology's magnitude where the source gives one;
  *disagrees* when the CI excludes the null on the other side; otherwise *inconclusive*
  (below a quarter of biology's effect is inconclusive too, and says so). A NaN is *not
  measured*, never a verdict. A finding whose precondition fails is *cannot measure* (fewer
  than its minimum units; no noise correlation to reduce; reaction times that take fewer than
  three values), and one whose value the architecture fixes is *architecture* (every onset at
  the earliest step the cascade allows). Neither is counted as a verdict.

Each `Finding` names its source; "direction only" marks a source whose abstract gives no
number to compare with, and then only the CI's side counts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gattanet_sim.analysis.common import bootstrap_ci

VERDICTS = ("agrees", "disagrees", "inconclusive", "cannot measure", "architecture", "not measured")
SCORED = ("agrees", "disagrees", "inconclusive")
MIN_UNITS = 10  # a median over fewer units is no finding about an area


class TableError(ValueError):
    """A table an analysis should have written is missing or unreadable."""


@dataclass
class Measure:
    """One model's value of a finding or view, its 95% CI, and why it cannot be scored if so."""

    value: float
    low: float
    high: float
    n: int | None = None
    cannot: str = ""  # a reason: the finding's precondition failed
    architecture: str = ""  # a reason: the architecture fixes the value
    note: str = ""


@dataclass
class Finding:
    """A biological finding: the model's measure, the null, biology's side and magnitude."""

    key: str
    title: str
    biology: str
    measure: str
    read: Callable[[Path], Measure]
    direction: int  # +1: biology's value lies above the null, -1: below
    null: float = 0.0
    magnitude: float | None = None  # biology's effect size (|value - null|); None: direction only
    view_of: str | None = None  # a view of that finding: shown, not counted
    position_view: bool = False  # a view of the enhancement in a model with one gain per position
    null_from: Callable[[Path], float] | None = None  # a null measured on the model (a control)


def verdict(f: Finding, m: Measure, null: float | None = None) -> tuple[str, str]:
    """The verdict of one measure under the rule of the module docstring, and a reason."""
    null = f.null if null is None else null
    if m.cannot:  # a failed precondition explains a NaN too
        return "cannot measure", m.cannot
    if m.architecture:
        return "architecture", m.architecture
    if not np.isfinite([m.value, m.low, m.high, null]).all():  # NaN and inf alike
        return "not measured", "NaN or infinite"
    above, below = m.low > null, m.high < null
    if (above and f.direction > 0) or (below and f.direction < 0):
        if f.magnitude is not None and abs(m.value - null) < f.magnitude / 4:
            return "inconclusive", f"below a quarter of biology's effect ({f.magnitude / 4:.3g})"
        return "agrees", ""
    if above or below:
        return "disagrees", ""
    return "inconclusive", "the CI includes the null"


# ---- reading the tables -------------------------------------------------------------------

def read_table(tables: Path, name: str, file: str | None = None) -> pd.DataFrame:
    """An analysis's table; one that does not end with a newline (as every table written by
    pandas does) was cut short, and its last number may read as a shorter one."""
    path = tables / name / (file or f"{name}.csv")
    if not path.exists():
        raise TableError(f"no table {path}: run the analyses first")
    try:
        table = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TableError(f"table {path} cannot be read ({first}): re-run the analyses") from None
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - 1))
        if f.read(1) != b"\n":
            raise TableError(f"table {path} was cut short (no final newline): re-run the analyses")
    return table


def _lacking(where: Path, err: Exception) -> str:
    """Why a finding could not be read from an analysis's tables, in words."""
    if isinstance(err, AttributeError) and "attribute" in str(err):  # pandas: a missing column
        return f"the tables in {where} have no column '{str(err).rsplit(' ', 1)[-1].strip(chr(39))}'"
    if isinstance(err, KeyError):
        return f"the tables in {where} have no row or column {err}"
    return f"the tables in {where} have no row this finding reads (e.g. no such area or condition)"


def _last(table: pd.DataFrame) -> pd.DataFrame:
    return table[table.time_bin == table.time_bin.max()]


def _ratio(area: str) -> Callable[[Path], Measure]:
    def read(tables: Path) -> Measure:
        r = _last(read_table(tables, "modulation_index")).set_index("region").loc[area]
        return Measure(r.ratio, r.ratio_ci_low, r.ratio_ci_high, int(r.units))
    return read


def _hierarchy(tables: Path) -> Measure:
    h = read_table(tables, "modulation_index", "modulation_index_hierarchy.csv")
    h = h[h.region.isin(["V1", "V4"])].set_index("region")
    v4 = h.loc["V4"]
    note = ", ".join(f"|mean AMI| {a} {h.loc[a].magnitude:.3f}" for a in h.index)
    return Measure(v4.minus_first, v4.minus_first_ci_low, v4.minus_first_ci_high, note=note)


def _paired(tables: Path) -> Measure:
    p = read_table(tables, "paired_stimuli").set_index("region").loc["V4"]
    return Measure(p.preferred_over_other, p.preferred_over_other_ci_low, p.preferred_over_other_ci_high)


def _gain_parameter(name: str) -> Callable[[Path], Measure]:
    def read(tables: Path) -> Measure:
        gm = read_table(tables, "gain_model")
        r = gm[(gm.region == "V4") & (gm.statistic == "median") & (gm.name == name)].iloc[0]
        n = int(r["count"])
        cannot = f"{n} V4 units of that class (minimum {MIN_UNITS})" if n < MIN_UNITS else ""
        return Measure(r.value, r.ci_low, r.ci_high, n, cannot=cannot, note=f"n = {n}")
    return read


def _proportional(tables: Path) -> Measure:
    """Median scaling factor of V4's units whose curves scale proportionally: g of the
    response-gain units (baseline kept) and a of the activity-gain ones (baseline scaled too),
    pooled: Williford & Maunsell's "proportional scaling" in either form."""
    units = read_table(tables, "gain_model", "gain_model_units.csv")
    v4 = units[units.region == "V4"]
    factor = np.concatenate([v4.loc[v4["class"] == "response gain", "g"].to_numpy(float),
                             v4.loc[v4["class"] == "activity gain", "a"].to_numpy(float)
                             if "a" in v4 else np.array([])])  # (unit,)
    n = len(factor)
    low, high = bootstrap_ci((factor,), np.median)
    cannot = f"{n} V4 units scale proportionally (minimum {MIN_UNITS})" if n < MIN_UNITS else ""
    return Measure(float(np.median(factor)) if n else math.nan, low, high, n, cannot=cannot, note=f"n = {n}")


def _feature_similarity(tables: Path) -> Measure:
    fs = read_table(tables, "feature_similarity_gain").set_index("region").loc["V4"]
    return Measure(fs.slope, fs.slope_ci_low, fs.slope_ci_high, int(fs.units))


def _onsets(tables: Path) -> Measure:
    table = read_table(tables, "time_course", "time_course_onsets.csv")
    o = table.iloc[0]
    forced = o.get("forced")
    architecture = ("every onset is the earliest step the architecture allows ("
                    f"{o.get('min_onsets', '')})") if str(forced) == "True" else ""
    onsets = table.onset_bin.dropna()
    cannot = (f"the onsets tie (every modulated area at step {int(onsets.iloc[0])}): no order to compare"
              if pd.isna(o.spearman_rho) and len(onsets) >= 2 and onsets.nunique() == 1 else "")
    return Measure(o.spearman_rho, o.rho_ci_low, o.rho_ci_high, architecture=architecture, cannot=cannot)


def _fano(tables: Path) -> Measure:
    v = read_table(tables, "variability").set_index("region").loc["V4"]
    return Measure(v.fano_change, v.fano_change_ci_low, v.fano_change_ci_high, int(v.units))


def _correlations(tables: Path) -> Measure:
    v = read_table(tables, "variability").set_index("region").loc["V4"]
    cannot = "" if v.r_unattended_ci_low > 0 else (
        f"no noise correlation to reduce: unattended r {v.r_unattended:.3f} [{v.r_unattended_ci_low:.3f}, "
        f"{v.r_unattended_ci_high:.3f}]")
    return Measure(v.r_change, v.r_change_ci_low, v.r_change_ci_high, int(v.pairs), cannot=cannot)


def _readout(column: str) -> Callable[[Path], Measure]:
    def read(tables: Path) -> Measure:
        maps = read_table(tables, "attention_maps")
        ro = maps[(maps.region == "readout") & (maps.condition == "bottom-up")].iloc[-1]
        prefix = "gain_peak" if column == "gain" else "peak"
        value = ro[f"{prefix}_at_target"] if column == "gain" else ro.peak_at_target
        return Measure(value, ro[f"{prefix}_ci_low"], ro[f"{prefix}_ci_high"], int(ro.images),
                       note=f"chance {ro.chance:.2f}")
    return read


def _chance(tables: Path) -> float:
    maps = read_table(tables, "attention_maps")
    return float(maps[(maps.region == "readout") & (maps.condition == "bottom-up")].iloc[-1].chance)


def _query_rows(tables: Path, signal: str) -> pd.Series:
    qs = read_table(tables, "query_space")
    qs = qs[(qs.task == "group") & (qs.time_bin == qs.time_bin.min())]
    if "signal" in qs:
        qs = qs[qs.signal == signal]
    elif signal != "query":
        raise KeyError(signal)
    return qs.iloc[0]


def _query(signal: str) -> Callable[[Path], Measure]:
    def read(tables: Path) -> Measure:
        q = _query_rows(tables, signal)
        return Measure(q.accuracy, q.ci_low, q.ci_high, int(q.images),
                       note=f"labels shuffled: {q.shuffled_accuracy:.2f}" if "shuffled_accuracy" in q else "")
    return read


def _shuffled(tables: Path) -> float:
    """The query-space row's null: the same classifier's accuracy with shuffled labels."""
    return float(_query_rows(tables, "query").shuffled_ci_high)


def _noise(tables: Path) -> Measure:
    nr = _last(read_table(tables, "noise_robustness"))
    n = nr[(nr.condition == "bottom-up") & (nr.noise_std.round(3) == 0.1)].iloc[0]
    return Measure(n.minus_off, n.diff_ci_low, n.diff_ci_high, int(n.diff_images))


def _cue(name: str) -> Callable[[Path], Measure]:
    def read(tables: Path) -> Measure:
        c = _last(read_table(tables, "cueing")).set_index("cue").loc[name]
        return Measure(c.minus_neutral, c.diff_ci_low, c.diff_ci_high, int(c.diff_images))
    return read


def _reaction_time(tables: Path) -> Measure:
    rt = read_table(tables, "cueing", "reaction_times.csv").set_index("cue").loc["valid"]
    distinct = rt.get("distinct_rts", float("nan"))
    cannot = (f"reaction times take {int(distinct)} value(s): no resolution"
              if pd.notna(distinct) and distinct < 3 else "")
    return Measure(rt.rt_ms_minus_neutral, rt.rt_ms_diff_ci_low, rt.rt_ms_diff_ci_high, cannot=cannot)


MCADAMS = "McAdams & Maunsell 1999, J Neurosci 19:431, abstract"
FINDINGS: list[Finding] = [
    Finding("enhancement", "Attention raises responses (V4)",
            f"attend-in raises V4 responses, median +26% ({MCADAMS})", "mean R(valid) / R(invalid), V4",
            _ratio("V4"), +1, 1.0, 0.26),
    Finding("enhancement_v1", "Attention raises responses (V1)", f"V1 +8% ({MCADAMS})",
            "mean R(valid) / R(invalid), V1", _ratio("V1"), +1, 1.0, 0.08, view_of="enhancement"),
    Finding("hierarchy", "Modulation grows from V1 to V4",
            f"V1 +8%, V4 +26% ({MCADAMS}): |AMI| 0.038 vs 0.115, a rise of 0.077 (our conversion); "
            "V4 > V2 > V1 (Buffalo et al. 2010, PNAS 107:361, abstract)",
            "|mean AMI| V4 - V1 (areas, not units, compared)", _hierarchy, +1, 0.0, 0.077),
    Finding("response_gain", "Proportional scaling of the contrast-response function (V4)",
            "V4's attention effects were \"well described by either a leftward shift or proportional scaling "
            "of the contrast response function\" (Williford & Maunsell 2006, J Neurophysiol 96:40, abstract; "
            "direction only)", "median factor of V4's units classed response gain (g) or activity gain (a)",
            _proportional, +1, 1.0, None, position_view=True),
    Finding("contrast_gain", "Contrast gain on the contrast-response function (V4)",
            "attention acts like a x1.51 rise of contrast in V4 (Reynolds, Pasternak & Desimone 2000, "
            "Neuron 26:703, abstract)", "median k (c50 / k) of V4's contrast-gain units",
            _gain_parameter("k"), +1, 1.0, 0.51),
    Finding("feature_similarity", "Feature-similarity gain",
            "gain grows with the similarity of the attended and the preferred feature (Treue & "
            "Martinez-Trujillo 1999, Nature 399:575, abstract: MT, motion direction; direction only)",
            "V4: slope of R(template) / R(neutral) on cos 2(theta_pref - theta_att)",
            _feature_similarity, +1, 0.0, None, position_view=True),
    Finding("biased_competition", "Attending one of two stimuli favours it (V4)",
            "the pair's response moves toward the attended stimulus's own (Reynolds, Chelazzi & "
            "Desimone 1999, J Neurosci 19:1736, abstract; direction only)",
            "R(attend preferred) / R(attend other)", _paired, +1, 1.0, None, position_view=True),
    Finding("fano", "Attention lowers Fano factors (V4)",
            "lower (Mitchell, Sundberg & Reynolds 2007, Neuron 55:131; direction only)",
            "mean-matched Fano factor valid - invalid", _fano, -1),
    Finding("noise_correlations", "Attention lowers noise correlations (V4)",
            "lower (Cohen & Maunsell 2009, Nat Neurosci 12:1594; Mitchell et al. 2009, Neuron 63:879; "
            "direction only)", "mean pairwise r valid - invalid", _correlations, -1),
    Finding("onset_order", "Higher areas are modulated first",
            "V4 before V2 before V1 (Buffalo et al. 2010, abstract; direction only)",
            "Spearman rho, area position vs onset of the valid - invalid difference", _onsets, -1),
    Finding("readout_gain", "Attention amplifies the true class most at the read-out",
            "the paper's Fig. 3, in its sign-free form", "fraction of images whose largest read-out gain "
            "is the true class's", _readout("gain"), +1, null_from=_chance),
    Finding("readout_agreement", "Read-out agreement peaks at the true class", "the paper's Fig. 3",
            "fraction of images", _readout("agreement"), +1, view_of="readout_gain", null_from=_chance),
    Finding("query_groups", "The global query separates animals from vehicles (without the read-out)",
            "it does (the paper's Fig. 2b)", "cross-validated accuracy of the query pooled from every area "
            "but the read-out, against the same classifier on shuffled labels", _query("query_without_readout"),
            +1, null_from=_shuffled),
    Finding("query_groups_all", "The global query separates animals from vehicles", "the paper's Fig. 2b",
            "cross-validated accuracy (the query holds a projection of the logits)", _query("query"), +1,
            view_of="query_groups", null_from=_shuffled),
    Finding("noise", "Attention helps more under pixel noise (sd 0.1)",
            "accuracy about 0.26 -> 0.30 at sd 0.1 (the paper's Fig. 2a, as read in MISSION.md)",
            "accuracy bottom-up - off", _noise, +1, 0.0, 0.04),
    Finding("valid_cue", "Valid cues help", "valid cues help (Posner 1980, Q J Exp Psychol 32:3; direction only)",
            "target accuracy valid - neutral (composite displays)", _cue("valid"), +1),
    Finding("invalid_cue", "Invalid cues hurt", "invalid cues hurt (Posner 1980; direction only)",
            "target accuracy invalid - neutral (composite displays)", _cue("invalid"), -1),
    Finding("reaction_time", "Valid cues speed decisions", "faster after valid cues (Posner 1980; direction only)",
            "reaction time valid - neutral, ms", _reaction_time, -1),
]


# finding -> the analysis whose tables it reads
ANALYSIS_OF = {"enhancement": "modulation_index", "enhancement_v1": "modulation_index",
               "hierarchy": "modulation_index", "response_gain": "gain_model", "contrast_gain": "gain_model",
               "feature_similarity": "feature_similarity_gain", "biased_competition": "paired_stimuli",
               "fano": "variability", "noise_correlations": "variability", "onset_order": "time_course",
               "readout_gain": "attention_maps", "readout_agreement": "attention_maps",
               "query_groups": "query_space", "query_groups_all": "query_space", "noise": "noise_robustness",
               "valid_cue": "cueing", "invalid_cue": "cueing", "reaction_time": "cueing"}


def one_gain_per_position(model_config: dict) -> bool:
    """Whether the model's conv areas get one gain per position, shared by every channel."""
    return (model_config.get("attention_kind", "learned") == "learned"
            and model_config.get("gain_map", "position") == "position")


@dataclass
class Cell:
    """One finding (or view) for one model."""

    finding: Finding
    measure: Measure
    verdict: str
    reason: str
    null: float
    counted: bool
    view_of: str | None = None
    extra: dict = field(default_factory=dict)


def score(tables: Path, model_config: dict, failed: dict[str, str] | None = None) -> list[Cell]:
    """Every finding and view of one model, from its analyses' tables. `failed`: analyses that
    could not run on this model (name -> why); their findings are not measured."""
    position = one_gain_per_position(model_config)
    failed = failed or {}
    cells = []
    for f in FINDINGS:
        view_of = f.view_of or ("enhancement" if f.position_view and position else None)
        analysis = ANALYSIS_OF[f.key]
        try:
            if analysis in failed:
                raise RuntimeError(f"{analysis} could not run: {failed[analysis]}")
            m = f.read(tables)
            null = f.null_from(tables) if f.null_from is not None else f.null
        except RuntimeError as err:
            m, null = Measure(math.nan, math.nan, math.nan, note=str(err)), math.nan
        except (KeyError, IndexError, AttributeError) as err:  # a table lacks that row or column
            m, null = Measure(math.nan, math.nan, math.nan, note=_lacking(tables / analysis, err)), math.nan
        v, reason = verdict(f, m, null)
        cells.append(Cell(f, m, v, reason, null, view_of is None, view_of))
    return cells


def counts(cells: list[Cell]) -> dict[str, int]:
    """Verdicts of the counted findings (views are not counted)."""
    out = dict.fromkeys(VERDICTS, 0)
    for c in cells:
        if c.counted:
            out[c.verdict] += 1
    return out


def long_table(columns: dict[str, list[Cell]]) -> pd.DataFrame:
    """One row per (model, finding): value, CI, n, null, verdict, reason, counted, view_of."""
    rows = []
    for model, cells in columns.items():
        for c in cells:
            m = c.measure
            rows.append({"model": model, "finding": c.finding.key, "title": c.finding.title,
                         "value": m.value, "ci_low": m.low, "ci_high": m.high, "n": m.n, "null": c.null,
                         "biology_magnitude": c.finding.magnitude, "direction": c.finding.direction,
                         "verdict": c.verdict, "reason": c.reason, "counted": c.counted,
                         "view_of": c.view_of or "", "note": m.note})
    return pd.DataFrame(rows)

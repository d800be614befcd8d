"""The model against biology: every analysis on a set of experiment recordings, one scorecard.

    python analyses/scorecard.py --recordings data/recordings/scorecard --tables results/scorecard \\
        --out results/biology_scorecard.md [--data-root DIR] [--skip-analyses]

`make scorecard` makes the recordings (see the Makefile) and runs this. The recordings, by
file name: crf.nc (gratings, contrast series, cues valid/invalid and off), feature.nc (gratings,
off and a template per orientation), pairs.nc (two stimuli: bottom-up, attend A/B, off),
trials.nc (gratings with unit noise, repeated trials, valid/invalid), cascade.nc (the cascade
model on gratings, valid/invalid), clean.nc (validation images: bottom-up and off, agreement of
every position of a few channels), noisy.nc (validation images under pixel noise), composite.nc
(search displays with valid/neutral/invalid cues) and cascade_composite.nc (the same on the
cascade model, for reaction times).

"Attended" is the valid cue (the template of what is shown) and "unattended" the invalid one
(the template of another orientation), the model's analogue of attending inside vs outside a
receptive field. Every analysis writes its table and figure into TABLES/<analysis>/. Each row
of the scorecard compares one signature of attention with the biological finding: the
model's value with its 95% CI, and a verdict: agrees (the CI lies on the side biology
reports), disagrees (on the other side) or inconclusive (the CI includes no effect); a value or
CI that is NaN is "not measured", never a verdict.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from gattanet_sim.cli import Parser, UsageError, main_guard
from gattanet_sim.io import atomic_path

HERE = Path(__file__).resolve().parent
VALID, INVALID = "cue=valid", "cue=invalid"

# analysis -> (script, recording, extra arguments)
ANALYSES = {
    "modulation_index": ("modulation_index.py", "crf.nc", ["--attended", VALID, "--unattended", INVALID]),
    "gain_model": ("gain_model.py", "crf.nc", ["--attended", VALID, "--unattended", INVALID]),
    "feature_similarity_gain": ("feature_similarity_gain.py", "feature.nc", []),
    "paired_stimuli": ("paired_stimuli.py", "pairs.nc", []),
    "variability": ("variability.py", "trials.nc", ["--attended", VALID, "--unattended", INVALID]),
    "time_course": ("time_course.py", "cascade.nc", ["--attended", VALID, "--unattended", INVALID]),
    "attention_maps": ("attention_maps.py", "clean.nc", []),
    "query_space": ("query_space.py", "clean.nc", []),
    "noise_robustness": ("noise_robustness.py", "noisy.nc", []),
    "cueing": ("cueing.py", "composite.nc", []),
    "cueing_cascade": ("cueing.py", "cascade_composite.nc", []),
}


@dataclass
class Row:
    """One signature: the model's value, its CI, and the sign biology reports (+1 / -1)."""

    signature: str
    biology: str
    measure: str
    value: float
    low: float
    high: float
    expected: int
    reference: float = 0.0
    note: str = ""

    @property
    def verdict(self) -> str:
        if pd.isna(self.value) or pd.isna(self.low) or pd.isna(self.high):
            return "not measured"  # NaN is never a verdict
        above, below = self.low > self.reference, self.high < self.reference
        if (above and self.expected > 0) or (below and self.expected < 0):
            return "agrees"
        if above or below:
            return "disagrees"
        return "inconclusive"


def run_script(name: str, argv: list[str]) -> None:
    """Run an analysis script's main() in this process; a failure stops the scorecard."""
    spec = importlib.util.spec_from_file_location(f"analysis_script_{name}", HERE / name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    if module.main(argv) != 0:
        raise UsageError(f"{name} failed on {argv[0]}")


def run_analyses(recordings: Path, tables: Path, data_root: Path | None) -> None:
    missing = sorted({rec for _, rec, _ in ANALYSES.values() if not (recordings / rec).exists()})
    if missing:
        raise UsageError(f"{recordings} lacks the recording(s) {', '.join(missing)} (see `make scorecard`)")
    for name, (script, rec, extra) in ANALYSES.items():
        argv = [str(recordings / rec), "--out", str(tables / name), *extra]
        if name == "attention_maps" and data_root is not None:
            argv += ["--data-root", str(data_root)]
        print(f"== {name}: {script} {' '.join(argv)}", flush=True)
        run_script(script, argv)


def _read(tables: Path, name: str, file: str | None = None) -> pd.DataFrame:
    path = tables / name / (file or f"{name}.csv")
    if not path.exists():
        raise UsageError(f"no table {path}: run the analyses first (without --skip-analyses)")
    try:
        return pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(f"table {path} cannot be read ({first}): re-run the analyses") from None


def _last(table: pd.DataFrame) -> pd.DataFrame:
    return table[table.time_bin == table.time_bin.max()]


def rows(tables: Path) -> list[Row]:
    """The scorecard's rows, from the analyses' tables."""
    out: list[Row] = []

    def modulation_index() -> None:
        mi = _last(_read(tables, "modulation_index")).set_index("region")
        for area, median in (("V1", "+8%"), ("V4", "+26%")):
            r = mi.loc[area]
            out.append(Row(f"Attention raises {area} responses", f"raised, median {median} (McAdams & "
                           "Maunsell 1999, J Neurosci 19:431, abstract)", "mean R_att / R_unatt",
                           r.ratio, r.ratio_ci_low, r.ratio_ci_high, +1, 1.0))
        trend = _read(tables, "modulation_index", "modulation_index_trend.csv").iloc[-1]
        signs = ", ".join(f"{a} {mi.loc[a].mean_ami:+.3f}" for a in mi.index)
        out.append(Row("Modulation grows along the hierarchy", "V1 < V4 (McAdams & Maunsell 1999, abstract); "
                       "larger in V4 than V2 than V1 (Buffalo et al. 2010, PNAS 107:361, abstract)",
                       "Spearman rho, area position vs unit AMI", trend.spearman_rho, trend.rho_ci_low,
                       trend.rho_ci_high, +1, note=f"mean AMI {signs}: a rise of the signed AMI is "
                       "an enhancement growing only where the AMIs are positive"))

    def paired_stimuli() -> None:
        pairs = _read(tables, "paired_stimuli").set_index("region").loc["V4"]
        out.append(Row("Attending one of two stimuli favours it (V4)", "the pair's response moves toward the "
                       "attended stimulus's own (Reynolds, Chelazzi & Desimone 1999, J Neurosci 19:1736, "
                       "abstract; Moran & Desimone 1985)", "R(attend preferred) / R(attend other)",
                       pairs.preferred_over_other, pairs.preferred_over_other_ci_low,
                       pairs.preferred_over_other_ci_high, +1, 1.0))

    def gain_model() -> None:
        gm = _read(tables, "gain_model")
        g = gm[(gm.region == "V4") & (gm.statistic == "median") & (gm.name == "g")].iloc[0]
        out.append(Row("Response gain on the contrast-response function (V4)", "multiplicative scaling, "
                       "g > 1 (McAdams & Maunsell 1999, abstract; Williford & Maunsell 2006, J Neurophysiol "
                       "96:40)", f"median g of response-gain units (n = {int(g['count'])})",
                       g.value, g.ci_low, g.ci_high, +1, 1.0))
        k = gm[(gm.region == "V4") & (gm.statistic == "median") & (gm.name == "k")].iloc[0]
        out.append(Row("Contrast gain on the contrast-response function (V4)", "effective contrast x1.51 "
                       "(Reynolds, Pasternak & Desimone 2000, Neuron 26:703, abstract)",
                       f"median k (c50 / k) of contrast-gain units (n = {int(k['count'])})",
                       k.value, k.ci_low, k.ci_high, +1, 1.0))

    def feature_similarity() -> None:
        fs = _read(tables, "feature_similarity_gain").set_index("region").loc["V4"]
        out.append(Row("Feature-similarity gain (V4)", "gain grows with the similarity of the attended and the "
                       "preferred feature (Treue & Martinez-Trujillo 1999, Nature 399:575, abstract)",
                       "slope of gain on cos 2(theta_pref - theta_att)", fs.slope, fs.slope_ci_low,
                       fs.slope_ci_high, +1))

    def time_course() -> None:
        onsets = _read(tables, "time_course", "time_course_onsets.csv").iloc[0]
        out.append(Row("Higher areas are modulated first", "V4 earlier than V2 earlier than V1 (Buffalo et al. "
                       "2010, abstract)", "Spearman rho, area position vs onset (cascade)",
                       onsets.spearman_rho, onsets.rho_ci_low, onsets.rho_ci_high, -1))

    def variability() -> None:
        var = _read(tables, "variability").set_index("region").loc["V4"]
        out.append(Row("Attention lowers Fano factors (V4)", "lower (Mitchell, Sundberg & Reynolds 2007, Neuron "
                       "55:131; direction only)", "Fano attended - unattended (rectified-rate counts)",
                       var.fano_change, var.fano_change_ci_low, var.fano_change_ci_high, -1))
        out.append(Row("Attention lowers noise correlations (V4)", "lower; over 80% of the attentional gain in "
                       "population sensitivity (Cohen & Maunsell 2009, Nat Neurosci 12:1594, abstract; "
                       "Mitchell et al. 2009, Neuron 63:879)", "mean pairwise r attended - unattended",
                       var.r_change, var.r_change_ci_low, var.r_change_ci_high, -1))

    def attention_maps() -> None:
        maps = _read(tables, "attention_maps")
        ro = maps[(maps.region == "readout") & (maps.condition == "bottom-up")].iloc[-1]
        out.append(Row("Read-out agreement peaks at the true class", "often (the paper's Fig. 3)",
                       f"fraction of images (chance {ro.chance:.2f})", ro.peak_at_target, ro.peak_ci_low,
                       ro.peak_ci_high, +1, ro.chance, note=f"trough there in {ro.trough_at_target:.2f}"))
        if "gain_peak_at_target" in ro and pd.notna(ro.gain_peak_at_target):
            out.append(Row("Attention amplifies the true class most at the read-out", "the sign-free form of "
                           "Fig. 3 (the agreement's sign is a convention; the gain's is not)",
                           f"fraction of images whose largest read-out gain is the true class's (chance "
                           f"{ro.chance:.2f})", ro.gain_peak_at_target, ro.gain_peak_ci_low, ro.gain_peak_ci_high,
                           +1, ro.chance))

    def query_space() -> None:
        qs = _read(tables, "query_space")
        q = qs[(qs.task == "group") & (qs.time_bin == qs.time_bin.min())].iloc[0]
        out.append(Row("The global query separates animals from vehicles", "it does (the paper's Fig. 2b)",
                       f"cross-validated accuracy (chance {q.chance:.2f})", q.accuracy, q.ci_low, q.ci_high,
                       +1, q.chance))

    def noise_robustness() -> None:
        nr = _last(_read(tables, "noise_robustness"))
        n = nr[(nr.condition == "bottom-up") & (nr.noise_std.round(3) == 0.1)].iloc[0]
        out.append(Row("Attention helps more under pixel noise (sd 0.1)", "about 0.26 -> 0.30 at sd 0.1 (the "
                       "paper's Fig. 2a, as read in MISSION.md)", "accuracy bottom-up - off",
                       n.minus_off, n.diff_ci_low, n.diff_ci_high, +1))

    def cueing() -> None:
        cue = _last(_read(tables, "cueing")).set_index("cue")
        for name, sign in (("valid", +1), ("invalid", -1)):
            c = cue.loc[name]
            out.append(Row(f"{name.capitalize()} cues {'help' if sign > 0 else 'hurt'}", "valid cues help, invalid "
                           "ones hurt (Posner 1980, Q J Exp Psychol 32:3; direction only)",
                           f"target accuracy {name} - neutral (composite)", c.minus_neutral, c.diff_ci_low,
                           c.diff_ci_high, sign))

    def reaction_times() -> None:
        rt = _read(tables, "cueing_cascade", "reaction_times.csv").set_index("cue").loc["valid"]
        out.append(Row("Valid cues speed decisions", "faster after valid cues (Posner 1980; direction only)",
                       "reaction time valid - neutral, ms (cascade)", rt.rt_ms_minus_neutral,
                       rt.rt_ms_diff_ci_low, rt.rt_ms_diff_ci_high, -1))

    for section in (  # each adds its rows; one whose tables lack what it reads is "not measured"
        modulation_index, paired_stimuli, gain_model, feature_similarity, time_course, variability,
        attention_maps, query_space, noise_robustness, cueing, reaction_times):
        try:
            section()
        except (KeyError, IndexError) as err:  # e.g. no animal/vehicle split outside CIFAR-10
            out.append(Row(f"not measured ({section.__name__})", "", f"the tables lack {err}", float("nan"),
                           float("nan"), float("nan"), +1))
    return out


def markdown(rows: list[Row], header: str) -> str:
    lines = [header, "", "| signature | biology | model: measure | model: value [95% CI] | verdict |",
             "| --- | --- | --- | --- | --- |"]
    for r in rows:
        measure = f"{r.measure} ({r.note})" if r.note else r.measure
        lines.append(f"| {r.signature} | {r.biology} | {measure} | {r.value:.3g} [{r.low:.3g}, {r.high:.3g}]"
                     f" | {r.verdict} |")
    counts = pd.Series([r.verdict for r in rows]).value_counts()
    kinds = ("agrees", "disagrees", "inconclusive") + (("not measured",) if "not measured" in counts else ())
    lines += ["", "Verdicts: " + ", ".join(f"{counts.get(v, 0)} {v}" for v in kinds) + "."]
    return "\n".join(lines) + "\n"


@main_guard
def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="python analyses/scorecard.py", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recordings", type=Path, default=Path("data/recordings/scorecard"))
    p.add_argument("--tables", type=Path, default=Path("results/scorecard"))
    p.add_argument("--out", type=Path, default=Path("results/biology_scorecard.md"))
    p.add_argument("--data-root", type=Path, default=None, help="dataset root, to draw images under maps")
    p.add_argument("--header", default="# Biology scorecard", help="first line(s) of the markdown")
    p.add_argument("--skip-analyses", action="store_true", help="rebuild the markdown from the tables")
    args = p.parse_args(argv)
    if not args.skip_analyses:
        run_analyses(args.recordings, args.tables, args.data_root)
    table = rows(args.tables)
    text = markdown(table, args.header)
    with atomic_path(args.out) as tmp:
        tmp.write_text(text)
    with atomic_path(args.tables / "scorecard.csv") as tmp:
        pd.DataFrame([{**r.__dict__, "verdict": r.verdict} for r in table]).to_csv(tmp, index=False)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

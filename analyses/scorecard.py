"""The models against biology: every analysis on every model's recordings, one scorecard.

    python analyses/scorecard.py --model recipe=runs/toy_cifar10/positive-gain-s0 \\
        --model reference=runs/toy_cifar10/reference-s0 [--model NAME=RUN ...] \\
        --recordings data/recordings/scorecard --tables results/scorecard \\
        --out results/biology_scorecard.md [--data-root DIR]

    python analyses/scorecard.py --recordings DIR --tables DIR --out FILE.md [--skip-analyses]

With `--model NAME=RUN` (repeatable) every model is recorded into RECORDINGS/NAME/ (the
experiments of `RECORDINGS`, each skipped when a complete recording of the same checkpoint and
command is there), analysed into TABLES/NAME/<analysis>/ and scored into one table, findings x
models, in --out (markdown), TABLES/scorecard.csv (long form) and the figure beside --out
(.png/.svg). Without `--model` the recordings in --recordings (the file names of `RECORDINGS`)
are one model's, analysed into --tables. `--skip-analyses` rebuilds the card from the tables
(records nothing), and refuses tables that were made from other recordings than the ones there now.

The findings, their sources and the one verdict rule are in `gattanet_sim.analysis.scorecard`
(and written under the table): "attended" is the valid cue (the template of what is shown),
"unattended" the invalid one (the template of another orientation), the model's analogue of
attending inside vs outside a receptive field.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import shlex
import shutil
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import xarray as xr  # noqa: E402

from gattanet_sim.analysis import scorecard as card  # noqa: E402
from gattanet_sim.analysis.output import write_figure  # noqa: E402
from gattanet_sim.cli import Parser, UsageError, main_guard  # noqa: E402
from gattanet_sim.io import atomic_path, check_replaceable, sha256  # noqa: E402

HERE = Path(__file__).resolve().parent
VALID, INVALID, NEUTRAL = "cue=valid", "cue=invalid", "cue=neutral"
GRATINGS = ["--paradigm", "gratings", "--orientations", "0,45,90,135", "--spatial-frequencies", "0.5",
            "--phases", "0,90,180,270"]

# recording -> the experiment's arguments (after the run)
RECORDINGS: dict[str, list[str]] = {
    "crf.nc": [*GRATINGS, "--contrasts", "series:0.1", "--conditions", "valid,neutral,invalid", "--units", "128"],
    "feature.nc": [*GRATINGS, "--contrasts", "1", "--conditions", "neutral,template", "--units", "128"],
    "pairs.nc": ["--paradigm", "two_stimulus", "--spatial-frequency", "0.5", "--units", "all",
                 "--conditions", "bottom-up,template,off"],
    "trials.nc": [*GRATINGS, "--contrasts", "0.5,1", "--conditions", "valid,invalid", "--trials", "8",
                  "--unit-noise", "0.3", "--units", "64"],
    "time.nc": [*GRATINGS, "--contrasts", "1", "--conditions", "valid,invalid", "--units", "128"],
    "clean.nc": ["--paradigm", "noisy", "--sigmas", "0", "--n", "1000", "--conditions", "bottom-up,off",
                 "--units", "channels:0,1,2,3,4,5,6,7,8,9",
                 "--signals", "activity,gain,agreement,logits,query,area_queries"],
    "noisy.nc": ["--paradigm", "noisy", "--sigmas", "0,0.05,0.1,0.2,0.3", "--n", "1000",
                 "--conditions", "bottom-up,off", "--signals", "logits,query"],
    "composite.nc": ["--paradigm", "composite", "--n", "1000", "--conditions", "bottom-up,off,valid,neutral,invalid",
                     "--signals", "logits,query"],
}

# analysis -> (script, recording, extra arguments)
ANALYSES = {
    "modulation_index": ("modulation_index.py", "crf.nc", ["--attended", VALID, "--unattended", INVALID]),
    "gain_model": ("gain_model.py", "crf.nc", ["--attended", VALID, "--unattended", INVALID]),
    "feature_similarity_gain": ("feature_similarity_gain.py", "feature.nc", ["--unattended", NEUTRAL]),
    "paired_stimuli": ("paired_stimuli.py", "pairs.nc", []),
    "variability": ("variability.py", "trials.nc", ["--attended", VALID, "--unattended", INVALID]),
    "time_course": ("time_course.py", "time.nc", ["--attended", VALID, "--unattended", INVALID]),
    "attention_maps": ("attention_maps.py", "clean.nc", []),
    "query_space": ("query_space.py", "clean.nc", []),
    "noise_robustness": ("noise_robustness.py", "noisy.nc", []),
    "cueing": ("cueing.py", "composite.nc", []),
}
COLOURS = {"agrees": "#4daf4a", "disagrees": "#e41a1c", "inconclusive": "#bdbdbd",
           "cannot measure": "#fdd49e", "architecture": "#c6dbef", "not measured": "#ffffff"}


def run_script(name: str, argv: list[str]) -> None:
    """Run an analysis script's main() in this process; a failure stops the scorecard."""
    spec = importlib.util.spec_from_file_location(f"analysis_script_{name}", HERE / name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    if module.main(argv) != 0:
        raise UsageError(f"{name} failed on {argv[0]}")


def _attrs(path: Path) -> dict:
    """A recording's attributes; {} when netCDF cannot open it a second time in this process
    (an HDF error while a notebook still holds it open: the file's hash is provenance enough)."""
    try:
        with xr.open_dataset(path) as ds:
            return dict(ds.attrs)
    except (OSError, RuntimeError):
        return {}


def record(run: Path, recordings: Path) -> None:
    """Every recording of `RECORDINGS` for one run, unless a complete one of the same checkpoint
    and command is there already."""
    from gattanet_sim import experiment

    checkpoint = next((p for p in (run / "best.pt", run / "last.pt") if p.exists()), None)
    if checkpoint is None:
        raise UsageError(f"{run} has no best.pt or last.pt: train it first")
    digest = sha256(checkpoint)
    for name, arguments in RECORDINGS.items():
        out = recordings / name
        argv = [str(run), *arguments, "--out", str(out)]
        if out.exists():
            attrs = _attrs(out)
            if (attrs.get("checkpoint_sha256") == digest and json.loads(attrs.get("argv", "[]"))[1:] == argv[1:]
                    and int(attrs.get("complete", 0)) == 1):
                continue
        print(f"== record {name}: python -m gattanet_sim.experiment {shlex.join(argv)}", flush=True)
        if experiment.main(argv) != 0:
            raise UsageError(f"the experiment for {out} failed")


def run_analyses(recordings: Path, tables: Path, data_root: Path | None, keep_going: bool = False) -> dict:
    """Every analysis of `ANALYSES`; returns those that failed (name -> the error's line). A
    failure stops the scorecard unless `keep_going` (several models: one model's analysis that
    cannot run, e.g. attention maps of a model without bottom-up attention, is "not measured"
    in its column). Each analysis's old tables are removed first, so none outlives a failure."""
    missing = sorted({rec for _, rec, _ in ANALYSES.values() if not (recordings / rec).exists()})
    if missing:
        raise UsageError(f"{recordings} lacks the recording(s) {', '.join(missing)} (see `make scorecard`)")
    made_from = provenance(recordings)
    failed = {}
    for name, (script, rec, extra) in ANALYSES.items():
        argv = [str(recordings / rec), "--out", str(tables / name), *extra]
        if name == "attention_maps" and data_root is not None:
            argv += ["--data-root", str(data_root)]
        print(f"== {name}: {script} {' '.join(argv)}", flush=True)
        if (tables / name).is_dir():
            shutil.rmtree(tables / name)
        errors = io.StringIO()
        try:
            with contextlib.redirect_stderr(errors) if keep_going else contextlib.nullcontext():
                run_script(script, argv)
        except UsageError:
            if not keep_going:
                raise
            failed[name] = errors.getvalue().strip().splitlines()[-1] if errors.getvalue().strip() else "failed"
            print(f"   {name} could not run: {failed[name]}", flush=True)
    with atomic_path(tables / "provenance.json") as tmp:
        tmp.write_text(json.dumps({**made_from, "failed": failed, "tables": table_hashes(tables)}, indent=1))
    return failed


def table_hashes(tables: Path) -> dict[str, str]:
    """SHA-256 of every table the analyses wrote (analysis/file.csv -> hash): a table edited,
    cut or written by another run afterwards no longer matches."""
    return {str(p.relative_to(tables)): sha256(p) for p in sorted(tables.glob("*/*.csv"))}


def provenance(recordings: Path, with_attrs: bool = True) -> dict:
    """Each recording's file hash and (`with_attrs`) the checkpoint and model config it was made
    from: what the tables came from. Read before the analyses run, and kept in provenance.json,
    so that no recording is opened again in a process that has imported h5py (rsatoolbox does):
    two HDF5 libraries in one process can crash netCDF."""
    out = {}
    for rec in sorted({rec for _, rec, _ in ANALYSES.values()}):
        path = recordings / rec
        if path.exists():
            out[rec] = {"sha256": sha256(path)}
            if with_attrs:
                attrs = _attrs(path)
                out[rec].update(checkpoint=attrs.get("checkpoint", ""),
                                checkpoint_sha256=attrs.get("checkpoint_sha256", ""),
                                model_config=json.loads(attrs.get("model_config", "{}")))
    return out


def check_fresh(recordings: Path, tables: Path) -> None:
    """--skip-analyses: the tables must have been made from the recordings there now."""
    path = tables / "provenance.json"
    if not path.exists():
        raise UsageError(f"{tables} has no provenance.json: run the analyses (without --skip-analyses)")
    made_from = json.loads(path.read_text())
    made_from.pop("failed", None)
    written = made_from.pop("tables", None)
    now = provenance(recordings, with_attrs=False)
    stale = sorted(rec for rec in made_from if now.get(rec, {}).get("sha256") != made_from[rec]["sha256"])
    if stale:
        raise UsageError(f"the tables in {tables} were made from other recordings than {', '.join(stale)} "
                         "in " + str(recordings) + ": re-run the analyses")
    if written is None:
        raise UsageError(f"{path} names no tables: re-run the analyses (without --skip-analyses)")
    changed = sorted(name for name, digest in table_hashes(tables).items() if written.get(name) != digest)
    changed += sorted(name for name in written if not (tables / name).exists())
    if changed:
        raise UsageError(f"{tables / changed[0]} is not the table the analyses wrote (changed, added or removed "
                         "since): re-run the analyses")




def _cell(c: card.Cell) -> str:
    m = c.measure
    if c.verdict == "not measured":
        return "not measured"
    text = f"{m.value:.3g} [{m.low:.3g}, {m.high:.3g}]"
    return f"{text} {'**' + c.verdict + '**' if c.counted else '(' + c.verdict + ')'}"


RULE = (
    "**The rule** (one for every model, `gattanet_sim/analysis/scorecard.py`): *agrees* when the 95% CI "
    "excludes the null on biology's side and the effect is at least a quarter of biology's where the source "
    "gives a number; *disagrees* when it excludes the null on the other side; otherwise *inconclusive* "
    "(too small an effect included). *Cannot measure*: the finding's precondition fails (fewer than "
    f"{card.MIN_UNITS} units of a class, no noise correlation to reduce, reaction times without resolution); "
    "*architecture*: the architecture fixes the value (every onset at the earliest step the cascade allows); "
    "*not measured*: a NaN or a missing table. Only findings in **bold** are counted; a value in "
    "parentheses is a view of another finding (the same quantity in that model: one gain per position "
    "makes the response gain, the feature-similarity slope and the paired-stimuli ratio the enhancement "
    "itself).")


def markdown(columns: dict[str, list[card.Cell]], header: str, sources: dict[str, dict], command: str) -> str:
    names = list(columns)
    first = columns[names[0]]
    lines = [header, "", "| finding | biology | model: measure | " + " | ".join(names) + " |",
             "| --- | --- | --- | " + " | ".join("---" for _ in names) + " |"]
    for i, c in enumerate(first):
        f = c.finding
        title = f"**{f.title}**" if f.view_of is None else f"↳ {f.title} (view of {f.view_of})"
        cells = [_cell(columns[n][i]) for n in names]
        lines.append(f"| {title} | {f.biology} | {f.measure} | " + " | ".join(cells) + " |")
    lines += ["", "| model | " + " | ".join(card.VERDICTS) + " |",
              "| --- | " + " | ".join("---" for _ in card.VERDICTS) + " |"]
    for n in names:
        k = card.counts(columns[n])
        lines.append(f"| {n} | " + " | ".join(str(k[v]) for v in card.VERDICTS) + " |")
    lines += ["", RULE, "", "Why a cell is not a verdict, or too small to agree (the rest, n and chance levels, are in "
              "scorecard.csv):", ""]
    for n in names:
        for c in columns[n]:
            small = c.reason.startswith("below a quarter")
            if c.verdict in ("cannot measure", "architecture", "not measured") or small:
                why = c.measure.note if c.verdict == "not measured" and c.measure.note else c.reason
                lines.append(f"- {n}, {c.finding.title}: {why}")
            elif c.finding.key == "hierarchy" and c.measure.note:
                lines.append(f"- {n}, {c.finding.title}: {c.measure.note}")
    lines += ["", "Provenance (each model's run and the SHA-256 of the checkpoint its recordings were made from):", ""]
    for n, s in sources.items():
        lines.append(f"- {n}: `{s.get('checkpoint', '?')}`, sha256 `{s.get('checkpoint_sha256', '?')}`")
    lines += ["", f"Made by `{command}` (its time is in the tables' timing.json)."]
    return "\n".join(lines) + "\n"


def figure(columns: dict[str, list[card.Cell]], stem: Path) -> list[Path]:
    """Findings x models, each cell coloured by its verdict with its value written in."""
    names = list(columns)
    rows = columns[names[0]]
    fig, ax = plt.subplots(figsize=(5.0 + 1.3 * len(names), 0.42 * len(rows) + 1.6), layout="constrained")
    for j, n in enumerate(names):
        for i, c in enumerate(columns[n]):
            colour = COLOURS[c.verdict]
            ax.add_patch(plt.Rectangle((j, i), 1, 1, facecolor=colour, edgecolor="white",
                                       alpha=1.0 if c.counted else 0.35))
            text = "n/m" if c.verdict == "not measured" else (
                "–" if pd.isna(c.measure.value) else f"{c.measure.value:.3g}")
            ax.text(j + 0.5, i + 0.5, text, ha="center", va="center", fontsize=8,
                    style="normal" if c.counted else "italic")
    ax.set_xlim(0, len(names))
    ax.set_ylim(len(rows), 0)
    ax.set_xticks(np.arange(len(names)) + 0.5, names, rotation=30, ha="right")
    ax.set_yticks(np.arange(len(rows)) + 0.5,
                  [c.finding.title if c.finding.view_of is None else f"  ↳ {c.finding.title}" for c in rows],
                  fontsize=8)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    handles = [plt.Rectangle((0, 0), 1, 1, facecolor=COLOURS[v], edgecolor="grey") for v in card.VERDICTS]
    fig.legend(handles, card.VERDICTS, loc="outside lower center", ncol=6, fontsize=8, frameon=False)
    ax.set_title("Biology scorecard: value per model, coloured by verdict (faded: a view, not counted)",
                 fontsize=9)
    paths = write_figure(fig, stem)
    plt.close(fig)
    return paths


def _models(pairs: list[str]) -> dict[str, Path]:
    out = {}
    for pair in pairs:
        name, sep, run = pair.partition("=")
        if not sep or not name or not run or "/" in name:
            raise UsageError(f"--model takes NAME=RUN (a name without '/'), got {pair!r}")
        if name in out:
            raise UsageError(f"--model {name} given twice")
        out[name] = Path(run)
    return out


@main_guard
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    p = Parser(prog="python analyses/scorecard.py", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", default=[], metavar="NAME=RUN",
                   help="a model to record, analyse and score (repeatable; columns in this order)")
    p.add_argument("--recordings", type=Path, default=Path("data/recordings/scorecard"))
    p.add_argument("--tables", type=Path, default=Path("results/scorecard"))
    p.add_argument("--out", type=Path, default=Path("results/biology_scorecard.md"))
    p.add_argument("--data-root", type=Path, default=None, help="dataset root, to draw images under maps")
    p.add_argument("--header", default="# Biology scorecard", help="first line(s) of the markdown")
    p.add_argument("--name", default="model", help="the column's name without --model")
    p.add_argument("--skip-analyses", action="store_true", help="rebuild the card from the tables")
    args = p.parse_args(argv)
    start = time.perf_counter()
    check_replaceable(args.out, "scorecard")  # before any work; never a checkpoint: --out RUN/last.pt
    models = _models(args.model)
    layout = ({n: (args.recordings / n, args.tables / n) for n in models} if models
              else {args.name: (args.recordings, args.tables)})
    columns, sources = {}, {}
    for name, (recordings, tables) in layout.items():
        if models and not args.skip_analyses:
            record(models[name], recordings)
        if args.skip_analyses:
            check_fresh(recordings, tables)
        else:
            run_analyses(recordings, tables, args.data_root, keep_going=bool(models))
        made_from = json.loads((tables / "provenance.json").read_text())
        failed = made_from.pop("failed", {})
        source = next(iter(made_from.values()), {})
        try:
            columns[name] = card.score(tables, source.get("model_config", {}), failed)
        except card.TableError as err:
            raise UsageError(str(err)) from None
        sources[name] = {**source, "checkpoint": str(models[name]) if models else source.get("checkpoint", "?")}
    command = "python analyses/scorecard.py " + shlex.join(a for a in argv if a != "--skip-analyses")  # same card
    text = markdown(columns, args.header, sources, command)
    with atomic_path(args.out) as tmp:
        tmp.write_text(text)
    with atomic_path(args.tables / "scorecard.csv") as tmp:
        card.long_table(columns).to_csv(tmp, index=False)
    figure(columns, args.out.with_suffix(""))
    minutes = (time.perf_counter() - start) / 60
    if not args.skip_analyses:  # the time of the recordings and analyses, not of a rebuild of the card
        with atomic_path(args.tables / "timing.json") as tmp:
            tmp.write_text(json.dumps({"command": command, "minutes": round(minutes, 2), "models": list(columns)}))
    print(text)
    print(f"scorecard: {len(columns)} model(s) in {minutes:.1f} min -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

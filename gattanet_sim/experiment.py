"""Run an experiment as a physiologist would: one paradigm, every attention condition, one assembly.

    python -m gattanet_sim.experiment RUN_DIR --paradigm two_stimulus \\
        --conditions bottom-up,template,off --out data/recordings/two_stimulus.nc
    python -m gattanet_sim.experiment RUN_DIR --paradigm composite --conditions valid,neutral,invalid \\
        --n 500 --signals logits,query --out data/recordings/composite.nc

Paradigms (`gattanet_sim.stimuli`): gratings, two_stimulus, composite (2x2 search displays of
dataset images), noisy (dataset images under pixel noise). Conditions: `bottom-up` (the
paper's pooled query), `off` (no gain), `template` and `mixed` (`--beta`; one pass per
template in `--attend`, default all), the cues `valid` (the template of the image's own
target), `invalid` (another template, drawn per image from `--seed`) and `neutral` (the mean
of all templates), and two controls: `shuffled` (the valid template's components in a random
order per image: its values without its class) and `negated` (the valid template reflected
through the neutral one, 2 q_bar - q_c). A cue is the query itself, or mixed into the bottom-up
query with weight `--cue-beta` (default: the run's `train --cue-beta` if it trained on the cued
task, else 1; then the passes' condition is `mixed`). Paradigm cued_detection: "is a <question>
in this array?" (coordinates question, present, display; `cue` is the cue's type, `attended` the
class it names; analyse with analyses/detection.py). Templates are the mean query per group of images, made on the fly
(gratings: per orientation; two_stimulus: A and B shown alone; composite, noisy and
cued_detection: per class from `--template-images` clean images of the split; a model trained
on the cued task uses its learned cue templates instead) or loaded with `--templates FILE`.
Cues need a target per image: images without one (two_stimulus's AB displays) are left out
of the cue conditions.

The assembly (the recorder's layout, streamed to a temporary file renamed at the end) has one
presentation per image x condition x template x trial; presentations carry the paradigm's
metadata plus `condition`, `cue`, `attended`, `template_id` and `repetition`. Its attributes
hold the paradigm's parameters, the templates, the command line and seeds: the same command
(attribute `argv`) writes the same numbers again. `--trials N` repeats every presentation
(with `--unit-noise SD`, the simulator's per-unit noise, each repeat is a new trial;
`--shared-noise RHO` shares that fraction of its variance among an area's units, drawn once
per trial). `--feedback-delays D,D,..` withholds the attention gain from each area for D steps
(see `gattanet_sim.dynamics`). Both override the model's, and the attributes hold the values
used (`unit_noise`, `shared_noise`, `feedback_delays` as JSON).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from gattanet_sim import stimuli as paradigms
from gattanet_sim.attention import QuerySource
from gattanet_sim.cli import (
    Parser,
    UsageError,
    add_data_arguments,
    main_guard,
    non_negative_float,
    pick_device,
    positive_int,
    run_data,
    run_timesteps,
    set_threads,
)
from gattanet_sim.data import CIFAR10_CLASSES, StreamedImageSet, balanced_subset
from gattanet_sim.dynamics import GAttANet
from gattanet_sim.evaluate import load_checkpoint
from gattanet_sim.io import check_replaceable, sha256
from gattanet_sim.recording import (
    EXTRA_SIGNALS,
    SIGNALS,
    Placement,
    Presentations,
    Probe,
    RecordingWriter,
    place,
    record,
    recording_attrs,
    time_bin_ms,
    time_mapping,
)
from gattanet_sim.stimuli import StimulusError, StimulusSet
from gattanet_sim.templates import TemplateError, Templates, from_model
from gattanet_sim.train import feedback_delays_argument

CONDITIONS = ("bottom-up", "off", "template", "mixed", "valid", "invalid", "neutral", "shuffled",
              "negated")
CUES = ("valid", "invalid", "neutral", "shuffled", "negated")
ADDED_COORDS = {"condition": "str", "cue": "str", "attended": "str", "template_id": "str",
                "beta": "float", "repetition": "int"}
# Paradigm options of the command line -> (paradigm argument, the paradigms that take it).
OPTIONS = {
    "orientations": ("orientations", ("gratings",)), "spatial_frequencies": ("spatial_frequencies", ("gratings",)),
    "contrasts": ("contrasts", ("gratings",)), "colors": ("colors", ("gratings",)),
    "positions": ("positions", ("gratings",)), "radii": ("radii", ("gratings",)),
    "envelope": ("envelope", ("gratings",)), "phases": ("phases", ("gratings", "two_stimulus")),
    "feature": ("feature", ("two_stimulus",)), "a": ("a", ("two_stimulus",)), "b": ("b", ("two_stimulus",)),
    "locations": ("locations", ("two_stimulus",)), "radius": ("radius", ("two_stimulus",)),
    "contrast": ("contrast", ("two_stimulus",)), "spatial_frequency": ("spatial_frequency", ("two_stimulus",)),
    "orientation": ("orientation", ("two_stimulus",)),
    "visual_degrees": ("visual_degrees", ("gratings", "two_stimulus")),
    "n": ("n", ("composite", "noisy", "cued_detection")), "grid": ("grid", ("composite", "cued_detection")),
    "sigmas": ("sigmas", ("noisy",)), "grey": ("grey", ("cued_detection",)),
}
STREAMED_IMAGES = 2000  # images of a streamed split decoded for a paradigm without --limit
TEMPLATE_BY = {"gratings": "orientation", "two_stimulus": "target", "composite": "target", "noisy": "label",
               "cued_detection": "question"}


@dataclass
class Variant:
    """One pass of the stimulus set under one attention condition: per-image labels and query."""

    condition: str
    cue: str
    attended: np.ndarray  # (N,) str: what the template stands for
    template_id: np.ndarray  # (N,) str
    templates: torch.Tensor | None  # (N, d), None for bottom-up and off
    include: np.ndarray  # (N,) bool: images shown in this pass
    beta: float = 1.0

    def source(self, index: np.ndarray) -> QuerySource:
        if self.templates is None:
            return QuerySource(self.condition)
        if self.condition == "mixed":
            return QuerySource("mixed", self.templates[index], self.beta)
        return QuerySource("template", self.templates[index])


def plan(conditions: list[str], targets: list[str], templates: Templates | None, attend: list[str],
         beta: float, seed: int, cue_beta: float = 1.0) -> list[Variant]:
    """Expand condition names into passes: template/mixed once per attended template, cues
    per image from its target (`targets`, "" where an image has none), as the query itself
    (`cue_beta` 1) or mixed into the bottom-up one with weight `cue_beta`."""
    cue_condition = "template" if cue_beta == 1 else "mixed"
    n = len(targets)
    everyone = np.ones(n, bool)
    blank = np.full(n, "", dtype=object)
    has_target = np.array([t != "" for t in targets])
    variants = []
    for condition in conditions:
        if condition in ("bottom-up", "off"):
            variants.append(Variant(condition, "none", blank, blank, None, everyone))
            continue
        if templates is None:
            raise UsageError(f"the {condition} condition needs templates")
        if condition in ("template", "mixed"):
            for name in attend:
                vector = templates[name].expand(n, -1)  # (N, d)
                variants.append(Variant(condition, "attend", np.full(n, name, dtype=object),
                                        np.full(n, name, dtype=object), vector, everyone,
                                        beta if condition == "mixed" else 1.0))
            continue
        unknown = sorted({t for t in targets if t and t not in templates.vectors})
        if unknown:
            raise UsageError(f"no template for target(s) {', '.join(unknown[:5])}; "
                             f"templates: {', '.join(templates.names)}")
        if not has_target.any():
            raise UsageError(f"the {condition} cue needs images with a target; this paradigm has none")
        if condition == "neutral":
            variants.append(Variant(cue_condition, "neutral", np.full(n, "all", dtype=object),
                                    np.full(n, "neutral", dtype=object),
                                    templates.mean().expand(n, -1), has_target, cue_beta))
            continue
        if condition == "invalid" and len(templates.names) < 2:
            raise UsageError("an invalid cue needs at least two templates")
        rng = np.random.default_rng(seed)
        chosen = []
        for t in targets:
            if not t or condition != "invalid":
                chosen.append(t)
            else:
                others = [name for name in templates.names if name != t]
                chosen.append(others[rng.integers(len(others))])
        names = np.array(chosen, dtype=object)
        vectors = torch.stack([templates[c] if c else torch.zeros(templates.key_dim) for c in chosen])
        ids = names
        if condition == "negated":  # the valid cue reflected through the neutral one
            vectors = 2 * templates.mean() - vectors
            ids = np.array([f"-{c}" if c else "" for c in chosen], dtype=object)
        if condition == "shuffled":  # the valid cue's components in a random order per image
            order = torch.from_numpy(np.argsort(rng.random(vectors.shape), axis=1))  # (N, d)
            vectors = vectors.gather(1, order)
            ids = np.array([f"~{c}" if c else "" for c in chosen], dtype=object)
        variants.append(Variant(cue_condition, condition, names, ids, vectors, has_target, cue_beta))
    return variants


def coordinate_kinds(meta: pd.DataFrame) -> dict[str, str]:
    """The recorder's kind of every metadata column, plus the experiment's own coordinates."""
    clash = [c for c in ADDED_COORDS if c in meta.columns]
    if clash:
        raise UsageError(f"the stimulus metadata already has column(s) {', '.join(clash)}")
    kinds = {}
    for name, dtype in meta.dtypes.items():
        if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_integer_dtype(dtype):
            kinds[name] = "int"
        elif pd.api.types.is_float_dtype(dtype):
            kinds[name] = "float"
        else:
            kinds[name] = "str"
    return {**kinds, **ADDED_COORDS}


def presentations(stimuli: StimulusSet, variants: list[Variant], trials: int, batch_size: int,
                  device: torch.device):
    """Every pass, trial and batch of the experiment, as the recorder's `Presentations`."""
    columns = {name: stimuli.meta[name].to_numpy() for name in stimuli.meta.columns}
    for variant in variants:
        shown = np.flatnonzero(variant.include)
        for trial in range(trials):
            for start in range(0, len(shown), batch_size):
                index = shown[start:start + batch_size]
                coords = {name: values[index] for name, values in columns.items()}
                coords.update(condition=[variant.condition] * len(index), cue=[variant.cue] * len(index),
                              attended=variant.attended[index], template_id=variant.template_id[index],
                              beta=np.full(len(index), variant.beta), repetition=np.full(len(index), trial))
                yield Presentations(stimuli.images[index].to(device), coords, variant.source(index))


def run_experiment(model: GAttANet, stimuli: StimulusSet, variants: list[Variant], writer: RecordingWriter,
                   placement: Placement, timesteps: int, steps: list[int], trials: int = 1,
                   batch_size: int = 128, progress: bool = True) -> int:
    """Show every pass of the stimulus set to the model and stream it into `writer`."""
    device = model.backbone.mean.device
    total = sum(trials * -(-int(v.include.sum()) // batch_size) for v in variants)
    stream = tqdm(presentations(stimuli, variants, trials, batch_size, device), total=total,
                  desc="experiment", unit="batch", disable=not progress or None)  # None: only on a terminal
    return record(model, stream, writer, placement, timesteps, steps)


# ----------------------------------------------------------------------------- command line
def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _contrasts(text: str) -> list[float]:
    """A list, or series:STEP for 0, STEP, 2 STEP, ... 1 (a contrast-response series)."""
    if text.startswith("series:"):
        step = _floats(text[7:])
        if len(step) != 1 or not 0 < step[0] <= 1:
            raise argparse.ArgumentTypeError(f"series:STEP needs 0 < STEP <= 1, got {text!r}")
        return list(paradigms.contrast_series(step[0]))
    return _floats(text)


def _points(text: str) -> list[tuple[float, float]]:
    """'x,y;x,y' in degrees from the image centre (y up)."""
    points = []
    for part in text.split(";"):
        values = _floats(part)
        if len(values) != 2:
            raise argparse.ArgumentTypeError(f"points are X,Y;X,Y in degrees, got {text!r}")
        points.append((values[0], values[1]))
    return points


def _radii(text: str) -> list[float | None]:
    return [None if v.strip() == "none" else _floats(v)[0] for v in text.split(",")]


def _feature_value(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = Parser(prog="python -m gattanet_sim.experiment", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path, help="a run directory or a .pt checkpoint")
    p.add_argument("--paradigm", choices=list(paradigms.PARADIGMS), required=True)
    p.add_argument("--conditions", default="bottom-up,template,off",
                   help=f"comma-separated, from {','.join(CONDITIONS)}")
    p.add_argument("--attend", default=None, help="templates of template/mixed (default: all)")
    p.add_argument("--beta", type=float, default=0.5, help="weight of the template in mixed")
    p.add_argument("--cue-beta", type=float, default=None,
                   help="weight of the cue in the query of the cue conditions (valid, neutral, ...): "
                        "1 replaces the bottom-up query, below 1 is mixed into it (default: the "
                        "run's train --cue-beta, else 1)")
    p.add_argument("--templates", type=Path, default=None, help="a templates JSON file to use")
    p.add_argument("--template-by", default=None, help="metadata column that groups images into "
                   "templates (default: orientation | target)")
    p.add_argument("--template-images", type=positive_int, default=100,
                   help="clean images per class for class templates (composite, noisy)")
    p.add_argument("--template-centring", type=float, default=None, metavar="LAMBDA",
                   help="centred templates q_bar + LAMBDA (q_c - q_bar) (default: the raw ones)")
    p.add_argument("--save-templates", type=Path, default=None, help="write the templates here")
    g = p.add_argument_group("paradigm (see gattanet_sim.stimuli; defaults: the paradigm's)")
    g.add_argument("--orientations", type=_floats, default=None)
    g.add_argument("--spatial-frequencies", type=_floats, default=None, help="cycles/deg")
    g.add_argument("--contrasts", type=_contrasts, default=None, help="list, or series:0.02")
    g.add_argument("--colors", type=lambda t: t.split(","), default=None)
    g.add_argument("--positions", type=_points, default=None, help="X,Y;X,Y in degrees")
    g.add_argument("--radii", type=_radii, default=None, help="degrees, or none (full field)")
    g.add_argument("--envelope", default=None)
    g.add_argument("--phases", type=_floats, default=None, help="degrees")
    g.add_argument("--feature", default=None, help="two_stimulus: orientation or color")
    g.add_argument("--a", type=_feature_value, default=None, help="two_stimulus: stimulus A")
    g.add_argument("--b", type=_feature_value, default=None, help="two_stimulus: stimulus B")
    g.add_argument("--locations", type=_points, default=None, help="two_stimulus: X,Y;X,Y degrees")
    g.add_argument("--radius", type=float, default=None)
    g.add_argument("--contrast", type=float, default=None)
    g.add_argument("--spatial-frequency", type=float, default=None)
    g.add_argument("--orientation", type=float, default=None)
    g.add_argument("--visual-degrees", type=float, default=None)
    g.add_argument("--n", type=positive_int, default=None, help="composite/noisy: images")
    g.add_argument("--grid", type=positive_int, default=None, help="composite: cells per side")
    g.add_argument("--sigmas", type=_floats, default=None, help="noisy: pixel noise sds")
    g.add_argument("--grey", type=int, default=None, help="cued_detection: grey control images")
    d = p.add_argument_group("dataset of composite/noisy")
    add_data_arguments(d, dataset_default=None)
    d.add_argument("--split", choices=("train", "val", "test"), default="val")
    d.add_argument("--limit", type=positive_int, default=None, help="use N images of the split, as many of each class")
    r = p.add_argument_group("recording")
    r.add_argument("--timesteps", type=positive_int, default=None, help="default: the run's")
    r.add_argument("--units", default="256",
                   help="all | N random per area | channels:I,J | location:X,Y | channel-mean")
    r.add_argument("--regions", default=None)
    r.add_argument("--signals", default=",".join(SIGNALS),
                   help=f"comma-separated, from {','.join(SIGNALS + EXTRA_SIGNALS)} (default: all but "
                        "area_queries, each area's own query)")
    r.add_argument("--time-bins", default=None)
    r.add_argument("--probe-seed", type=int, default=0)
    r.add_argument("--trials", type=positive_int, default=1, help="repeats of every presentation")
    r.add_argument("--unit-noise", type=non_negative_float, default=None,
                   help="the simulator's per-unit noise sd (default: the model's)")
    r.add_argument("--shared-noise", type=non_negative_float, default=None, metavar="RHO",
                   help="fraction of the unit noise's variance shared by an area's units, drawn "
                        "once per trial (default: the model's, 0 unless trained with one)")
    r.add_argument("--feedback-delays", type=feedback_delays_argument, default=None, metavar="D,D,..",
                   help="steps the attention gain is withheld from each area, D,D,.. in area order "
                        "or AREA=D,.. (default: the model's, none unless trained with them)")
    r.add_argument("--seed", type=int, default=0, help="stimuli, invalid cues and unit noise")
    r.add_argument("--batch-size", type=positive_int, default=128)
    r.add_argument("--float16", action="store_true")
    r.add_argument("--device", default="auto")
    r.add_argument("--export-stimuli", type=Path, default=None,
                   help="also write the stimulus set as Brain-Score's CSV + PNGs")
    p.add_argument("--out", type=Path, required=True, help="the .nc file to write")
    p.add_argument("--force", action="store_true",
                   help="replace --out (and --save-templates) even if it holds something else")
    return p.parse_args(argv)


def paradigm_arguments(args: argparse.Namespace) -> dict:
    """The paradigm options given on the command line; one that does not apply is refused."""
    kwargs = {}
    for option, (name, takers) in OPTIONS.items():
        value = getattr(args, option)
        if value is None:
            continue
        if args.paradigm not in takers:
            flag = "--" + option.replace("_", "-")
            raise UsageError(f"{flag} does not apply to the {args.paradigm} paradigm")
        kwargs[name] = value
    return kwargs


def build_stimuli(args: argparse.Namespace, config: dict, image_size: int):
    """The paradigm's stimulus set, its source images (dataset paradigms) and class names."""
    kwargs = paradigm_arguments(args)
    if args.paradigm in paradigms.SOURCE_PARADIGMS:
        data, dataset, _ = run_data(args, config)
        if isinstance(data, StreamedImageSet):  # ImageNet-style: decode a bounded share
            if len(data) > STREAMED_IMAGES and not args.limit:
                data = data.subset(balanced_subset(data.labels, STREAMED_IMAGES, seed=0))
                print(f"{args.paradigm}: using {STREAMED_IMAGES} images of the streamed split, as many "
                      "of each class (--limit N for another number)", file=sys.stderr)
            data = data.in_memory()
        source = (data.images, data.labels, data.classes)
        return paradigms.PARADIGMS[args.paradigm](*source, seed=args.seed, **kwargs), source, dataset
    if args.dataset or args.data_root:
        raise UsageError(f"--dataset/--data-root do not apply to the {args.paradigm} paradigm")
    kwargs.setdefault("image_size", image_size)
    return paradigms.PARADIGMS[args.paradigm](seed=args.seed, **kwargs), None, ""


def targets_of(stimuli: StimulusSet, by: str, classes: list[str] | None = None) -> list[str]:
    """Every image's target, as a template name ("" for none): the values of column `by`
    (a `label` named by its class when the class names are known)."""
    if by not in stimuli.meta.columns:
        raise UsageError(f"the {stimuli.parameters['paradigm']} stimuli have no column {by!r}; "
                         f"choose from {', '.join(stimuli.meta.columns)}")
    if by == "label" and classes is not None:
        return ["" if v < 0 else classes[v] for v in stimuli.meta[by]]
    return ["" if pd.isna(v) else (f"{v:g}" if isinstance(v, float) else str(v))
            for v in stimuli.meta[by]]


def make_templates(model: GAttANet, args: argparse.Namespace, stimuli: StimulusSet, source,
                   by: str, device: torch.device) -> Templates:
    """Templates on the fly: mean query per group of the paradigm's own images, or per class
    of clean source images for the dataset paradigms; a model trained on the cued task has
    learned one per class, and those are its class templates (or one per cell, named by the
    cell's index, when its cues name locations: `by` "cell")."""
    if by == "cell" and model.attention.cues is not None:
        cues = model.attention.cues.detach().float().cpu()  # (cells, d)
        grid = int(stimuli.parameters["grid"])
        if len(cues) != grid * grid:
            raise UsageError(f"the model has {len(cues)} location cues, the arrays {grid * grid} cells")
        return Templates({str(i): cues[i] for i in range(len(cues))}, {"from": "learned cues", "by": "cell"})
    if source is not None and model.attention.cues is not None:
        classes = list(source[2])
        cues = model.attention.cues.detach().float().cpu()  # (K, d)
        if len(cues) != len(classes):
            raise UsageError(f"the model has {len(cues)} learned cues, the dataset {len(classes)} classes")
        return Templates({c: cues[i] for i, c in enumerate(classes)}, {"from": "learned cues"})
    if source is not None:
        images, labels, classes = source
        keep = torch.cat([torch.nonzero(labels == c).flatten()[:args.template_images]
                          for c in range(len(classes))])  # (<= K * n,) per-class first images
        images = images[keep].float() / 255 if images.dtype == torch.uint8 else images[keep]
        groups = [classes[i] for i in labels[keep].tolist()]
        return from_model(model, images, groups, args.batch_size,
                          {"by": "class", "images_per_class": args.template_images})
    names = targets_of(stimuli, by)
    keep = [i for i, name in enumerate(names) if name]
    if not keep:
        raise UsageError(f"no image has a value in column {by!r} to make templates of")
    return from_model(model, stimuli.images[keep], [names[i] for i in keep], args.batch_size,
                      {"by": by, "paradigm": stimuli.parameters["paradigm"]})


@main_guard
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    set_threads()
    if args.out.is_dir():
        raise UsageError(f"--out {args.out} is a directory; give a .nc file name")
    check_replaceable(args.out, "recording", args.force)
    check_replaceable(args.save_templates, "templates", args.force)
    conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
    unknown = [c for c in conditions if c not in CONDITIONS]
    if unknown or not conditions:
        raise UsageError(f"unknown condition(s) {', '.join(unknown) or '(none)'}; "
                         f"choose from {','.join(CONDITIONS)}")
    if not 0 <= args.beta <= 1:
        raise UsageError(f"--beta must lie in [0, 1], got {args.beta}")
    if args.cue_beta is not None and not 0 < args.cue_beta <= 1:
        raise UsageError(f"--cue-beta must lie in (0, 1], got {args.cue_beta}")
    probe = Probe.parse(args.units, args.signals, args.regions, args.time_bins, args.probe_seed)
    device = pick_device(args.device)
    model, config, path = load_checkpoint(args.checkpoint, device)
    if model.attention is None:
        raise UsageError(f"{path} has no attention region: an experiment needs one")
    if args.unit_noise is not None:
        model.noise_std = args.unit_noise
    try:  # the hypotheses (gattanet_sim.dynamics), checked by the model
        if args.shared_noise is not None:
            model.shared_noise = args.shared_noise
        if args.feedback_delays is not None:
            model.feedback_delays = args.feedback_delays
    except ValueError as err:
        raise UsageError(str(err)) from None
    if model.shared_noise > 0 and model.noise_std == 0:
        raise UsageError("--shared-noise shares unit noise: give --unit-noise SD > 0")
    timesteps = run_timesteps(args, config, model)
    steps = probe.timesteps or list(range(timesteps))
    if steps[-1] >= timesteps or steps[0] < 0:
        raise UsageError(f"--time-bins must lie in 0..{timesteps - 1}")
    image_size = int(config.get("image_size") or model.backbone.image_size)
    try:
        stimuli, source, dataset = build_stimuli(args, config, image_size)
    except StimulusError as err:
        raise UsageError(str(err)) from None
    if stimuli.images.shape[-1] != model.backbone.image_size:
        raise UsageError(f"stimuli are {stimuli.images.shape[-1]} px, the model takes "
                         f"{model.backbone.image_size} px")
    by = args.template_by or TEMPLATE_BY[args.paradigm]
    cue_on = config.get("cue_on", "class") if config.get("task") == "cued-detection" else "class"
    if cue_on == "location":  # its learned cues name the cells of a detection array
        if args.paradigm != "cued_detection" or args.templates is not None or args.template_by:
            raise UsageError("this run's cues name locations: record it with --paradigm cued_detection "
                             "and its own cues (no --templates, no --template-by)")
        by = "cell"
    needs_templates = any(c not in ("bottom-up", "off") for c in conditions) or args.save_templates
    templates = None
    if args.templates is not None:
        templates = Templates.load(args.templates)
        if templates.key_dim != model.attention.key_dim:
            raise UsageError(f"{args.templates} holds {templates.key_dim}-d templates, the model's "
                             f"query has {model.attention.key_dim}")
    elif needs_templates:
        templates = make_templates(model, args, stimuli, source, by, device)
    if templates is not None and args.template_centring is not None:
        try:
            templates = templates.centred(args.template_centring)
        except TemplateError as err:
            raise UsageError(str(err)) from None
    if args.save_templates and templates is not None:
        templates.save(args.save_templates, args.force)
    if templates is not None and hasattr(model.attention, "calibrate"):  # the reference (reference.py)
        model.attention.calibrate(torch.stack([templates[n] for n in templates.names]))  # (K, d)
    attend = templates.names if templates is not None and args.attend is None else (
        [a.strip() for a in args.attend.split(",")] if args.attend else [])
    missing = [name for name in attend if templates is None or name not in templates.vectors]
    if missing:
        raise UsageError(f"--attend: no template {', '.join(missing)}"
                         + (f"; there are {', '.join(templates.names)}" if templates else ""))
    targets = targets_of(stimuli, by, list(source[2]) if source is not None else None)
    trained_beta = float(config.get("cue_beta", 1.0)) if config.get("task") == "cued-detection" else 1.0
    cue_beta = trained_beta if args.cue_beta is None else args.cue_beta
    variants = plan(conditions, targets, templates, attend, args.beta, args.seed, cue_beta)

    placement = place(probe, model, image_size)
    neuroids = placement.coords(model.backbone.receptive_fields(), image_size)
    mapping = time_mapping(model.mode, list(model.areas))
    checkpoint_sha = sha256(path)
    run_id = hashlib.sha1(json.dumps([checkpoint_sha, stimuli.identifier, argv]).encode()).hexdigest()[:10]
    attrs = recording_attrs(
        model, identifier=f"gattanet_sim.experiment.{args.paradigm}.{run_id}",
        stimulus_set_identifier=stimuli.identifier, paradigm=args.paradigm,
        paradigm_parameters=json.dumps(stimuli.parameters), conditions=",".join(conditions),
        attend=",".join(attend), beta=args.beta, cue_beta=cue_beta, template_by=by,
        templates=templates.to_json() if templates is not None else "",
        template_cosines=json.dumps(templates.cosines()) if templates is not None else "",
        template_cosine_mean=templates.cosines()["mean"] if templates is not None else float("nan"),
        checkpoint=str(path), checkpoint_sha256=checkpoint_sha, dataset=dataset,
        split=args.split if source is not None else "", timesteps=timesteps, trials=args.trials,
        unit_noise=model.noise_std, shared_noise=model.shared_noise,
        feedback_delays=json.dumps(model.feedback_delays), seed=args.seed, probe_seed=args.probe_seed,
        units=str(probe.units), time_mapping=json.dumps(mapping), float16=int(args.float16),
        argv=json.dumps(argv))
    if args.export_stimuli is not None:
        stimuli.to_brainscore(args.export_stimuli)
    torch.manual_seed(args.seed)
    key_dim = model.attention.key_dim
    with RecordingWriter(args.out, neuroids, steps, probe.signals, key_dim, _classes(config, model, source),
                         coordinate_kinds(stimuli.meta), attrs, args.float16,
                         time_bin_ms(mapping, neuroids["region"], steps),
                         areas=[a for a in model.areas if a in model.attention.query], force=args.force) as writer:
        n = run_experiment(model, stimuli, variants, writer, placement, timesteps, steps, args.trials,
                           args.batch_size)
    print(f"{args.paradigm}: {len(stimuli)} stimuli x {len(variants)} condition passes x {args.trials} "
          f"trial(s) = {n} presentations x {placement.size} neuroids x {len(steps)} time bins -> {args.out}")
    return 0


def _classes(config: dict, model: GAttANet, source) -> list[str]:
    """Names of the read-out's classes: the source's, the training set's, or their indices."""
    units = model.areas[list(model.areas)[-1]].units
    known = {"cifar10": CIFAR10_CLASSES, "stimuli": paradigms.SHAPE_CLASSES}
    if source is not None:
        return list(source[2])
    if len(known.get(config.get("dataset"), ())) == units:
        return list(known[config["dataset"]])
    return [str(i) for i in range(units)]


if __name__ == "__main__":
    sys.exit(main())

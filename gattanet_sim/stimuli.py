"""Generated stimuli: the one home of every image set this package draws itself, no download.

Two kinds live here.

Training sets, ``(images uint8 (N, 3, H, W), labels (N,), class names)``, every one a
function of its seed with disjoint splits (`SPLIT_OFFSETS`):

- `shapes`: ten classes of simple figures (`SHAPE_CLASSES`) at a random position, size,
  colour and contrast on a noisy background. A toy model saturates on it (100 % validation
  after a few epochs), so it is kept for quick checks only.
- `search`: the fallback training set (``--dataset stimuli``). A visual-search display: one
  saturated target figure among two or three distractor figures of other classes (grey, or
  one less saturated "lure"), on a cluttered grey background; the label is the target's
  class. The read-out cannot just report "which shapes are there": it must bind the colour
  cue to one shape, and weigh it against a lure's, which is what attention is for. Not
  saturated: about 42 % validation after 4 short epochs of a small model (chance 10 %).

Experimental paradigms, each a function returning a `StimulusSet` (images, one metadata
row per image, an identifier, and the parameters that regenerate it, see `make_paradigm`):
`gratings` (orientation, spatial frequency, phase, contrast, colour, position, size),
`two_stimulus` (Moran & Desimone 1985; Reynolds et al. 1999), `composite` (dataset images
tiled into a search display), `cued_detection` (is a named class in the array? half the
arrays hold it; grey images as controls) and `noisy` (dataset images under pixel noise).

Coordinates and units. In an image, ``x`` is the column (rightwards) and ``y`` the row
(downwards); pixel centres sit at ``i + 0.5``, so a 32-pixel image has its centre at (16, 16).
As in Brain-Score, an image spans ``visual_degrees`` (default 8°) of visual angle, so
``degrees = pixels * visual_degrees / image_size``. Metadata use Brain-Score's column names,
in degrees: ``orientation`` is the angle of the bars counter-clockwise from horizontal as seen
on screen (0 = horizontal bars, 90 = vertical bars, in [0, 180)); ``spatial_frequency`` in
cycles/deg; ``phase`` in degrees, of the cosine at the stimulus centre; ``contrast`` is
Michelson contrast (0..1); ``radius`` in degrees; ``position_x``, ``position_y`` the stimulus
centre in degrees from the image centre, x rightwards and **y upwards** (psychophysics'
convention). ``center_x_px``, ``center_y_px`` give the same centre as a pixel column/row, the
coordinates of the recorder's receptive fields.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image

SHAPE_CLASSES = (
    "disk", "ring", "square", "frame", "cross",
    "horizontal", "vertical", "diagonal", "checker", "triangle",
)
SPLIT_OFFSETS = {"train": 0, "val": 1, "test": 2}

# Directions in RGB along which a grating modulates luminance; the mean stays grey.
COLORS = {
    "gray": (1.0, 1.0, 1.0),
    "red": (1.0, 0.0, 0.0),
    "green": (0.0, 1.0, 0.0),
    "blue": (0.0, 0.0, 1.0),
    "yellow": (1.0, 1.0, 0.0),
    "cyan": (0.0, 1.0, 1.0),
    "magenta": (1.0, 0.0, 1.0),
    "red-green": (1.0, -1.0, 0.0),
    "blue-yellow": (-1.0, -1.0, 1.0),
}
ENVELOPES = ("disk", "gaussian")
FEATURES = ("orientation", "color")


class StimulusError(ValueError):
    """A bad stimulus parameter; the one-line message names it and the allowed range."""


# --- the stimulus set -----------------------------------------------------------------


@dataclass
class StimulusSet:
    """Images with one metadata row each, and the parameters that regenerate them."""

    images: torch.Tensor  # (N, 3, H, W) float32, in [0, 1] (noisy sets excepted)
    meta: pd.DataFrame  # one row per image, same order; first column stimulus_id, a label
    identifier: str  # gattanet_sim.<paradigm>.<sha1 of parameters, 10 hex>
    parameters: dict  # JSON-safe {"paradigm": name, ...every argument}

    def __post_init__(self) -> None:
        if self.images.dim() != 4 or self.images.shape[1] != 3:
            raise StimulusError(f"images must be (N, 3, H, W), got {tuple(self.images.shape)}")
        if len(self.meta) != len(self.images):
            raise StimulusError(f"{len(self.meta)} metadata rows for {len(self.images)} images")
        if list(self.meta.columns[:1]) != ["stimulus_id"] or not self.meta.stimulus_id.is_unique:
            raise StimulusError("meta must start with a column of unique stimulus_id")

    def __len__(self) -> int:
        return len(self.images)

    def to_brainscore(self, directory: Path | str) -> Path:
        """Export as a Brain-Score StimulusSet: <stimulus_id>.png files and stimulus_set.csv.

        The CSV holds stimulus_id, filename (relative to the directory) and every metadata
        column; stimulus_set.json holds the identifier and parameters. Everything is written
        into a temporary sibling directory that is renamed at the end, so a failed export
        leaves nothing half-written. Returns the CSV's path.
        """
        directory = Path(directory)
        if directory.exists() and not directory.is_dir():
            raise StimulusError(f"export directory {directory} is a file; give a new directory")
        if directory.exists() and any(directory.iterdir()):
            raise StimulusError(f"export directory {directory} exists and is not empty")
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp", dir=directory.parent))
        try:
            pixels = (self.images.clamp(0, 1) * 255).round().to(torch.uint8)  # (N, 3, H, W)
            pixels = pixels.permute(0, 2, 3, 1).numpy()  # (N, H, W, 3)
            filenames = [f"{sid}.png" for sid in self.meta.stimulus_id]
            for name, image in zip(filenames, pixels):
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(tmp / name)
            table = self.meta.copy()
            table.insert(1, "filename", filenames)
            table.to_csv(tmp / "stimulus_set.csv", index=False)
            sidecar = {"identifier": self.identifier, "parameters": self.parameters}
            (tmp / "stimulus_set.json").write_text(json.dumps(sidecar, indent=1))
            umask = os.umask(0)  # mkdtemp's 0700 -> what mkdir would give under the umask
            os.umask(umask)
            os.chmod(tmp, 0o777 & ~umask)
            if directory.exists():
                directory.rmdir()  # empty, checked above
            os.replace(tmp, directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return directory / "stimulus_set.csv"


def _stimulus_set(paradigm: str, images: torch.Tensor, rows: dict, parameters: dict) -> StimulusSet:
    """Assemble a set: ids "<paradigm>/<index>", JSON-normal parameters, a hashed identifier."""
    parameters = json.loads(json.dumps({"paradigm": paradigm, **parameters}))
    digest = hashlib.sha1(json.dumps(parameters, sort_keys=True).encode()).hexdigest()[:10]
    n = len(images)
    meta = pd.DataFrame({"stimulus_id": [f"{paradigm}/{i:06d}" for i in range(n)], **rows})
    meta["label"] = meta["label"].astype("int64")
    return StimulusSet(images.float().contiguous(), meta, f"gattanet_sim.{paradigm}.{digest}",
                       parameters)


# --- parameter checks -----------------------------------------------------------------


def _fail(message: str) -> NoReturn:
    raise StimulusError(message)


def _number(name: str, value, lo: float = -math.inf, hi: float = math.inf,
            lo_open: bool = False, hi_open: bool = False) -> float:
    """A finite number within [lo, hi] (open ends where asked), else a StimulusError."""
    left, right = "(" if lo_open else "[", ")" if hi_open else "]"
    where = f"{name} must be a number in {left}{lo:g}, {hi:g}{right}"
    try:
        x = float(value)
    except (TypeError, ValueError):
        _fail(f"{where}, got {value!r}")
    if not math.isfinite(x) or x < lo or x > hi or (lo_open and x == lo) or (hi_open and x == hi):
        _fail(f"{where}, got {value!r}")
    return x


def _numbers(name: str, values, **bounds) -> list[float]:
    """A non-empty list of numbers, each checked like `_number`."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
        _fail(f"{name} must be a non-empty list, got {values!r}")
    return [_number(name, v, **bounds) for v in values]


def _integer(name: str, value, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        _fail(f"{name} must be an integer >= {lo}, got {value!r}")
    if hi is not None and value > hi:
        _fail(f"{name} must be at most {hi:,} (the images are made in memory), got {value:,}")
    return int(value)


MAX_IMAGES = 1_000_000  # images a dataset paradigm may make: 12 GB of 32-pixel float images


def _seed(value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        _fail(f"seed must be an integer, got {value!r}")
    return int(value)


def _color(name: str, value) -> str:
    if not isinstance(value, str) or value not in COLORS:
        _fail(f"{name} must be one of {', '.join(COLORS)}; got {value!r}")
    return value


def _geometry(image_size, visual_degrees) -> tuple[int, float]:
    return _integer("image_size", image_size, 4), _number("visual_degrees", visual_degrees,
                                                          0, 360, lo_open=True)


def _frequency(name: str, value, image_size: int, visual_degrees: float) -> float:
    """Spatial frequency in cycles/deg, above 0 and below the image's Nyquist limit."""
    nyquist = image_size / (2 * visual_degrees)
    return _number(name, value, 0, nyquist, lo_open=True, hi_open=True)


def _point(name: str, value, half: float) -> tuple[float, float]:
    """An (x, y) position in degrees inside the image (|x|, |y| < half the image)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        _fail(f"{name} must be an (x, y) pair in degrees, got {value!r}")
    x, y = (_number(name, v, -half, half, lo_open=True, hi_open=True) for v in value)
    return x, y


# --- gratings -------------------------------------------------------------------------


def _pixel_grid(image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre columns and rows, (H, W) each, float64."""
    centres = torch.arange(image_size, dtype=torch.float64) + 0.5
    ys, xs = torch.meshgrid(centres, centres, indexing="ij")
    return xs, ys


def _to_pixels(
    x_deg: float, y_deg: float, image_size: int, visual_degrees: float
) -> tuple[float, float]:
    """Degrees from the image centre (y up) to a pixel column and row (y down)."""
    ppd = image_size / visual_degrees
    return image_size / 2 + x_deg * ppd, image_size / 2 - y_deg * ppd


def _grating_modulation(
    image_size: int, visual_degrees: float, orientation: torch.Tensor, frequency: torch.Tensor,
    phase: torch.Tensor, amplitude: torch.Tensor, direction: torch.Tensor, center: torch.Tensor,
    radius: torch.Tensor, envelope: str,
) -> torch.Tensor:
    """Windowed sinusoids around 0, (N, 3, H, W) float64; exactly 0 outside a disk window.

    Per-stimulus tensors: orientation, frequency (cycles/deg), phase (deg), amplitude,
    radius (px, inf = full field) (N,); direction (N, 3); center (N, 2) as pixel column/row.
    """
    ppd = image_size / visual_degrees
    xs, ys = _pixel_grid(image_size)  # (H, W)
    dx = (xs - center[:, 0, None, None]) / ppd  # (N, H, W) deg, rightwards
    dy = -(ys - center[:, 1, None, None]) / ppd  # (N, H, W) deg, upwards
    theta = torch.deg2rad(orientation)[:, None, None]  # (N, 1, 1)
    across = -torch.sin(theta) * dx + torch.cos(theta) * dy  # (N, H, W) deg across the bars
    wave = torch.cos(2 * torch.pi * frequency[:, None, None] * across
                     + torch.deg2rad(phase)[:, None, None])  # (N, H, W)
    distance = torch.sqrt(dx**2 + dy**2) * ppd  # (N, H, W) px
    r = radius[:, None, None]
    if envelope == "disk":
        window = (r - distance).clamp(0, 1)  # a hard aperture with a 1-pixel soft inner edge
    else:
        window = torch.exp(-(distance**2) / (2 * (r / 2) ** 2))  # Gabor, sigma = radius / 2
    field = amplitude[:, None, None] * wave * window  # (N, H, W)
    return field[:, None] * direction[:, :, None, None]  # (N, 3, H, W)


def contrast_series(step: float = 0.02, maximum: float = 1.0) -> tuple[float, ...]:
    """Contrasts 0, step, 2 step, ... maximum: a contrast-response function's x axis."""
    step = _number("step", step, 0, 1, lo_open=True)
    maximum = _number("maximum", maximum, 0, 1)
    count = int(math.floor(maximum / step + 1e-9)) + 1
    return tuple(round(i * step, 10) for i in range(count))


def gratings(
    orientations: Sequence[float] = (0, 45, 90, 135),
    spatial_frequencies: Sequence[float] = (1.0,),
    phases: Sequence[float] = (0,),
    contrasts: Sequence[float] = (1.0,),
    colors: Sequence[str] = ("gray",),
    positions: Sequence[tuple[float, float]] = ((0.0, 0.0),),
    radii: Sequence[float | None] = (None,),
    image_size: int = 32,
    visual_degrees: float = 8.0,
    envelope: str = "disk",
    background: float = 0.5,
    seed: int = 0,
) -> StimulusSet:
    """Sinusoidal gratings, the full factorial over every list, on a mean-grey background.

    Pixel value = background * (1 + contrast * cos(...) * window * colour direction), so the
    Michelson contrast along the colour direction is exactly `contrast`. Radius None is a full
    field; `envelope` "disk" is a hard aperture, "gaussian" a Gabor with sigma = radius / 2.
    Gratings are deterministic: `seed` is kept only so every paradigm takes one.
    """
    size, degrees = _geometry(image_size, visual_degrees)
    half = degrees / 2
    orientations = _numbers("orientations", orientations, lo=0, hi=180, hi_open=True)
    frequencies = [_frequency("spatial_frequencies", f, size, degrees)
                   for f in _numbers("spatial_frequencies", spatial_frequencies)]
    phases = _numbers("phases", phases, lo=0, hi=360, hi_open=True)
    contrasts = _numbers("contrasts", contrasts, lo=0, hi=1)
    if isinstance(colors, str) or not isinstance(colors, Sequence) or not colors:
        _fail(f"colors must be a non-empty list of {', '.join(COLORS)}; got {colors!r}")
    colors = [_color("colors", c) for c in colors]
    if isinstance(positions, str) or not isinstance(positions, Sequence) or not positions:
        _fail(f"positions must be a non-empty list of (x, y) pairs in degrees, got {positions!r}")
    positions = [_point("positions", p, half) for p in positions]
    if isinstance(radii, str) or not isinstance(radii, Sequence) or not radii:
        _fail(f"radii must be a non-empty list of radii in degrees (or None), got {radii!r}")
    radii = [None if r is None else _number("radii", r, 0, math.inf, lo_open=True) for r in radii]
    if envelope not in ENVELOPES:
        _fail(f"envelope must be one of {', '.join(ENVELOPES)}; got {envelope!r}")
    background = _number("background", background, 0, 1, lo_open=True, hi_open=True)
    if background * (1 + max(contrasts)) > 1:
        _fail(f"background * (1 + contrast) must be <= 1 (pixels stay in [0, 1]); got "
              f"background {background:g} with contrast {max(contrasts):g}")
    seed = _seed(seed)

    conditions = list(itertools.product(orientations, frequencies, phases, contrasts, colors,
                                        positions, radii))
    ori, freq, phase, contrast, color, position, radius = zip(*conditions)
    centers = [_to_pixels(x, y, size, degrees) for x, y in position]
    ppd = size / degrees

    def column(values) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float64)

    modulation = _grating_modulation(
        size, degrees, column(ori), column(freq), column(phase),
        background * column(contrast), column([COLORS[c] for c in color]), column(centers),
        column([math.inf if r is None else r * ppd for r in radius]), envelope,
    )  # (N, 3, H, W)
    images = background + modulation  # (N, 3, H, W)
    rows = {
        "label": -1,
        "orientation": ori, "spatial_frequency": freq, "phase": phase, "contrast": contrast,
        "color": color,
        "radius": [math.nan if r is None else r for r in radius],
        "position_x": [p[0] for p in position], "position_y": [p[1] for p in position],
        "center_x_px": [c[0] for c in centers], "center_y_px": [c[1] for c in centers],
        "envelope": envelope,
    }
    parameters = dict(orientations=orientations, spatial_frequencies=frequencies, phases=phases,
                      contrasts=contrasts, colors=colors, positions=positions, radii=radii,
                      image_size=size, visual_degrees=degrees, envelope=envelope,
                      background=background, seed=seed)
    return _stimulus_set("gratings", images, rows, parameters)


# --- two stimuli in one receptive field ------------------------------------------------

# (at location 1, at location 2) of the six displays, shown at every phase.
TWO_STIMULUS_DISPLAYS = (("A", ""), ("", "A"), ("B", ""), ("", "B"), ("A", "B"), ("B", "A"))


def two_stimulus(
    feature: str = "orientation",
    a: float | str = 45.0,
    b: float | str = 135.0,
    locations: Sequence[tuple[float, float]] = ((-2.0, 0.0), (2.0, 0.0)),
    radius: float = 1.5,
    contrast: float = 1.0,
    spatial_frequency: float = 1.0,
    phases: Sequence[float] = (0, 90, 180, 270),
    image_size: int = 32,
    visual_degrees: float = 8.0,
    seed: int = 0,
    orientation: float = 90.0,
) -> StimulusSet:
    """The paired-stimulus paradigm of Moran & Desimone (1985) and Reynolds et al. (1999).

    Two disk gratings, A and B, differ in `feature`: "orientation" (a, b in degrees, grey
    gratings) or "color" (a, b colour names, all at `orientation`). Six displays, at every
    phase: A alone at location 1, A alone at 2, B alone at 1, B alone at 2, A@1 + B@2 and
    B@1 + A@2. The disks never overlap, so a pair display is exactly the sum of its two
    alone displays: any difference in a response is the model's, not the image's.
    """
    size, degrees = _geometry(image_size, visual_degrees)
    if feature not in FEATURES:
        _fail(f"feature must be one of {', '.join(FEATURES)}; got {feature!r}")
    if feature == "orientation":
        a, b = (_number(n, v, 0, 180, hi_open=True) for n, v in (("a", a), ("b", b)))
    else:
        a, b = _color("a", a), _color("b", b)
    orientation = _number("orientation", orientation, 0, 180, hi_open=True)
    if a == b:
        _fail(f"a and b must differ, both are {a!r}")
    radius = _number("radius", radius, 0, math.inf, lo_open=True)
    half = degrees / 2
    if isinstance(locations, str) or not isinstance(locations, Sequence) or len(locations) != 2:
        _fail(f"locations must be two (x, y) pairs in degrees, got {locations!r}")
    locations = [_point("locations", p, half) for p in locations]
    for x, y in locations:
        if max(abs(x), abs(y)) + radius > half:
            _fail(f"locations: a disk of radius {radius:g} at ({x:g}, {y:g}) must lie inside "
                  f"the image, |x|, |y| <= {half - radius:g} deg")
    (x1, y1), (x2, y2) = locations
    if math.hypot(x1 - x2, y1 - y2) <= 2 * radius:
        _fail(f"locations must be more than 2 * radius = {2 * radius:g} deg apart, "
              f"got {math.hypot(x1 - x2, y1 - y2):g}")
    contrast = _number("contrast", contrast, 0, 1)
    spatial_frequency = _frequency("spatial_frequency", spatial_frequency, size, degrees)
    phases = _numbers("phases", phases, lo=0, hi=360, hi_open=True)
    seed = _seed(seed)

    centers = [_to_pixels(x, y, size, degrees) for x, y in locations]
    values = {"A": a, "B": b}
    displays = [(phase, at1, at2) for phase in phases for at1, at2 in TWO_STIMULUS_DISPLAYS]
    n = len(displays)

    def modulation(slot: int) -> torch.Tensor:
        """What each display puts at location `slot` (0 or 1), zero where it shows nothing."""
        which = [d[1 + slot] for d in displays]
        ori = [values[w] if feature == "orientation" and w else orientation for w in which]
        color = [values[w] if feature == "color" and w else "gray" for w in which]
        return _grating_modulation(
            size, degrees, torch.tensor(ori, dtype=torch.float64),
            torch.full((n,), spatial_frequency, dtype=torch.float64),
            torch.tensor([d[0] for d in displays], dtype=torch.float64),
            torch.tensor([0.5 * contrast if w else 0.0 for w in which], dtype=torch.float64),
            torch.tensor([COLORS[c] for c in color], dtype=torch.float64),
            torch.tensor([centers[slot]] * n, dtype=torch.float64),
            torch.full((n,), radius * size / degrees, dtype=torch.float64), "disk",
        )  # (N, 3, H, W)

    images = 0.5 + modulation(0) + modulation(1)  # (N, 3, H, W)

    def where(letter: str, at1: str, at2: str, index: int, pixels: bool) -> float:
        if letter not in (at1, at2):
            return math.nan
        slot = 0 if at1 == letter else 1
        return (centers if pixels else locations)[slot][index]

    rows: dict = {"label": -1}
    rows["display"] = ["AB" if at1 and at2 else at1 or at2 for _, at1, at2 in displays]
    rows["target"] = ["" if at1 and at2 else at1 or at2 for _, at1, at2 in displays]
    rows["stimulus_at_1"] = [d[1] for d in displays]
    rows["stimulus_at_2"] = [d[2] for d in displays]
    for letter in "ab":
        for axis, index in (("x", 0), ("y", 1)):
            rows[f"position_{letter}_{axis}"] = [where(letter.upper(), at1, at2, index, False)
                                                 for _, at1, at2 in displays]
    for letter in "ab":
        for axis, index in (("x", 0), ("y", 1)):
            rows[f"{letter}_{axis}_px"] = [where(letter.upper(), at1, at2, index, True)
                                           for _, at1, at2 in displays]
    rows.update(feature=feature, value_a=str(a), value_b=str(b), phase=[d[0] for d in displays],
                radius=radius, contrast=contrast, spatial_frequency=spatial_frequency)
    parameters = dict(feature=feature, a=a, b=b, locations=locations, radius=radius,
                      contrast=contrast, spatial_frequency=spatial_frequency, phases=phases,
                      image_size=size, visual_degrees=degrees, seed=seed, orientation=orientation)
    return _stimulus_set("two_stimulus", images, rows, parameters)


# --- dataset-based paradigms ----------------------------------------------------------


def _source(images, labels, classes) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Check a (images, labels, classes) source; images become float (N, 3, H, W) in [0, 1]."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        _fail(f"images must be a (N, 3, H, W) tensor, got {getattr(images, 'shape', images)!r}")
    labels = torch.as_tensor(labels)
    if labels.shape != (len(images),) or labels.is_floating_point():
        _fail(f"labels must be ({len(images)},) integers, got shape {tuple(labels.shape)}")
    classes = list(classes)
    if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
        _fail(f"labels must lie in [0, {len(classes) - 1}] (one per class name)")
    pixels = images.float() / 255 if images.dtype == torch.uint8 else images.float()
    return pixels, labels.long(), classes


def _fingerprint(images: torch.Tensor, labels: torch.Tensor, classes: list[str]) -> str:
    """A short hash of a source, so that a set's parameters name the images it was cut from."""
    h = hashlib.sha1(str(images.dtype).encode() + str(tuple(images.shape)).encode())
    h.update(images.detach().cpu().contiguous().numpy().tobytes())
    h.update(torch.as_tensor(labels).long().cpu().numpy().tobytes())
    h.update(json.dumps(list(classes)).encode())
    return h.hexdigest()[:16]


def composite(
    images: torch.Tensor,
    labels: torch.Tensor,
    classes: Sequence[str],
    n: int = 200,
    grid: int = 2,
    seed: int = 0,
) -> StimulusSet:
    """Visual-search displays: grid x grid dataset images, one target among distractors.

    Each item is downscaled to image_size / grid and the items are tiled into one image of
    the source size (four 16-pixel images in a 32-pixel display): the model keeps the input
    size it was trained on, and each item has 1 / grid of the resolution. Every display draws
    a target class (balanced over the classes), a target cell and grid * grid - 1 distractor
    images of other classes, all different from each other while there are enough classes.
    """
    source, source_labels, classes = _source(images, labels, classes)
    n = _integer("n", n, 1, MAX_IMAGES)
    grid = _integer("grid", grid, 2)
    seed = _seed(seed)
    _, _, h, w = source.shape
    if h % grid or w % grid:
        _fail(f"grid must divide the image size {h}x{w}, got {grid}")
    present = torch.unique(source_labels)  # (K,) classes with at least one image
    if len(present) < 2:
        _fail(f"labels must hold at least 2 classes for a search display, got {len(present)}")
    g = torch.Generator().manual_seed(seed)
    k, cells = len(present), grid * grid
    targets = present[torch.arange(n) % k][torch.randperm(n, generator=g)]  # (n,) balanced
    position = torch.randint(0, cells, (n,), generator=g)  # (n,) row-major cell of the target
    scores = torch.rand(n, len(classes), generator=g)  # (n, classes): random class order
    scores[:, [c for c in range(len(classes)) if c not in present.tolist()]] = math.inf
    scores[torch.arange(n), targets] = math.inf
    others = scores.argsort(1)[:, : k - 1]  # (n, K-1) other present classes, random order
    distractors = others[:, torch.arange(cells - 1) % (k - 1)]  # (n, cells-1), repeats if few
    cell_classes = torch.cat([distractors, targets[:, None]], 1)  # (n, cells), target last
    order = torch.arange(cells).expand(n, cells)  # (n, cells): cell -> column of cell_classes
    order = torch.where(order == position[:, None], cells - 1,
                        torch.where(order > position[:, None], order - 1, order))
    cell_classes = cell_classes.gather(1, order)  # (n, cells) class of every cell, row-major

    by_class = source_labels.argsort(stable=True)  # source indices grouped by class
    counts = torch.bincount(source_labels, minlength=len(classes))  # (classes,)
    starts = counts.cumsum(0) - counts  # (classes,)
    pick = (torch.rand(n, cells, generator=g) * counts[cell_classes]).long()  # (n, cells)
    chosen = by_class[starts[cell_classes] + pick]  # (n, cells) source index per cell

    ch, cw = h // grid, w // grid
    items = F.interpolate(source[chosen.flatten()], size=(ch, cw), mode="bilinear",
                          antialias=True, align_corners=False)  # (n * cells, 3, h/grid, w/grid)
    items = items.view(n, grid, grid, 3, ch, cw)
    display = items.permute(0, 3, 1, 4, 2, 5).reshape(n, 3, h, w)  # (n, 3, H, W)

    row, col = position // grid, position % grid
    target_names = [classes[t] for t in targets.tolist()]
    rows = {
        "label": targets.tolist(),
        "target_class": target_names,
        "target": target_names,
        "target_position": position.tolist(),
        "target_x_px": ((col + 0.5) * cw).tolist(),
        "target_y_px": ((row + 0.5) * ch).tolist(),
        "distractor_classes": [",".join(str(c) for j, c in enumerate(cls) if j != p)
                               for cls, p in zip(cell_classes.tolist(), position.tolist())],
        "source_indices": [",".join(map(str, idx)) for idx in chosen.tolist()],
        "grid": grid,
    }
    parameters = dict(n=n, grid=grid, seed=seed, classes=classes,
                      source=_fingerprint(images, labels, classes))
    return _stimulus_set("composite", display, rows, parameters)


def detection_arrays(
    items: torch.Tensor,
    item_labels: torch.Tensor,
    pool: torch.Tensor,
    pool_labels: torch.Tensor,
    num_classes: int,
    generator: torch.Generator,
    grid: int = 2,
    present_fraction: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Search arrays for present/absent detection of a named class, one per item.

    Every array holds its item, downscaled into a random cell, and grid*grid - 1 distractors
    drawn from `pool`. A `present_fraction` of arrays ask about the item's own class (target
    present); the others ask about another class, drawn uniformly, that no cell holds (absent).
    Distractors are never of the question's class, so "present" means exactly: one cell of it.

    items (B, 3, H, W) and pool (N, 3, H, W), floats in [0, 1] or uint8; labels (B,), (N,); every
    class must have pool images. Returns displays (B, 3, H, W) float, question (B,) class
    indices, present (B,) bool, the item's cell (B,) row-major. Draws come from `generator`.
    """
    b, _, h, w = items.shape
    device = items.device
    cells = grid * grid
    present = torch.rand(b, generator=generator) < present_fraction  # (B,)
    shift = torch.randint(1, num_classes, (b,), generator=generator)  # (B,) another class
    question = torch.where(present, item_labels.cpu(), (item_labels.cpu() + shift) % num_classes)
    others = (question[:, None] + torch.randint(1, num_classes, (b, cells - 1), generator=generator)) \
        % num_classes  # (B, cells-1) distractor classes, never the question's
    by_class = pool_labels.cpu().argsort(stable=True)  # pool indices grouped by class
    counts = torch.bincount(pool_labels.cpu(), minlength=num_classes)  # (K,)
    if (counts[others] == 0).any():
        _fail("every class needs images in the pool to draw distractors from")
    starts = counts.cumsum(0) - counts
    pick = (torch.rand(b, cells - 1, generator=generator) * counts[others]).long()
    chosen = by_class[starts[others] + pick]  # (B, cells-1) pool indices
    cell = torch.randint(0, cells, (b,), generator=generator)  # (B,) the item's cell

    def floats(x: torch.Tensor) -> torch.Tensor:
        return x.float() / 255 if x.dtype == torch.uint8 else x.float()

    tiles = torch.cat([floats(pool[chosen.flatten().to(pool.device)]).to(device)
                      .view(b, cells - 1, 3, h, w), floats(items)[:, None]], 1)  # (B, cells, 3, H, W)
    order = torch.arange(cells).expand(b, cells)  # cell -> column of tiles, the item last
    order = torch.where(order == cell[:, None], cells - 1,
                        torch.where(order > cell[:, None], order - 1, order))
    tiles = tiles[torch.arange(b)[:, None], order.to(device)]  # (B, cells, 3, H, W), row-major
    ch, cw = h // grid, w // grid
    small = F.interpolate(tiles.flatten(0, 1), size=(ch, cw), mode="bilinear", antialias=True,
                          align_corners=False)  # (B * cells, 3, h/grid, w/grid)
    displays = small.view(b, grid, grid, 3, ch, cw).permute(0, 3, 1, 4, 2, 5).reshape(b, 3, h, w)
    return displays, question.to(device), present.to(device), cell.to(device)


def cued_detection(
    images: torch.Tensor,
    labels: torch.Tensor,
    classes: Sequence[str],
    n: int = 400,
    grid: int = 2,
    grey: int | None = None,
    present_fraction: float = 0.5,
    seed: int = 0,
) -> StimulusSet:
    """Present/absent detection of a named class in search arrays (`detection_arrays`), plus
    uniform grey images: the control display that holds nothing, where a cue can only raise
    false alarms. The question is balanced over the classes' items (n / K each, in turn);
    `grey` (default n / 10) grey images ask about every class in turn.

    Metadata: question (class name), label (its index), present (0/1), display ("array" |
    "grey"), target_position (the question item's cell, -1 if absent), item_class (the class
    of the item the array was built around), cell (the cell a valid location cue names: the
    item's, the target's on present arrays; grey images: each cell in turn), grid.
    """
    source, source_labels, classes = _source(images, labels, classes)
    n = _integer("n", n, 1, MAX_IMAGES)
    grid = _integer("grid", grid, 2)
    grey = max(1, n // 10) if grey is None else _integer("grey", grey, 0, MAX_IMAGES)
    fraction = _number("present_fraction", present_fraction, 0, 1)
    seed = _seed(seed)
    _, _, h, w = source.shape
    if h % grid or w % grid:
        _fail(f"grid must divide the image size {h}x{w}, got {grid}")
    k = len(classes)
    if k < 2 or (torch.bincount(source_labels, minlength=k) == 0).any():
        _fail("cued detection needs at least 2 classes, each with images")
    g = torch.Generator().manual_seed(seed)
    index = _balanced_sample(source_labels, n, g)  # (n,) items, classes in turn
    arrays, question, present, cell = detection_arrays(
        source[index], source_labels[index], source, source_labels, k, g, grid, fraction)
    grey_images = torch.full((grey, 3, h, w), 0.5)
    grey_question = torch.arange(grey) % k
    rows = {
        "question": [classes[q] for q in question.tolist()] + [classes[q] for q in grey_question.tolist()],
        "label": question.tolist() + grey_question.tolist(),
        "present": present.long().tolist() + [0] * grey,
        "display": ["array"] * n + ["grey"] * grey,
        "target_position": torch.where(present, cell, -1).tolist() + [-1] * grey,
        "item_class": [classes[c] for c in source_labels[index].tolist()] + [""] * grey,
        "cell": cell.tolist() + (torch.arange(grey) % (grid * grid)).tolist(),
        "grid": grid,
    }
    parameters = dict(n=n, grid=grid, grey=grey, present_fraction=fraction, seed=seed,
                      classes=classes, source=_fingerprint(images, labels, classes))
    return _stimulus_set("cued_detection", torch.cat([arrays, grey_images]), rows, parameters)


def _balanced_sample(labels: torch.Tensor, n: int, g: torch.Generator) -> torch.Tensor:
    """n indices, each class's images in a random order, taken from the classes in turn."""
    order = torch.randperm(len(labels), generator=g)  # (N,) random order
    rank = torch.zeros(len(labels), dtype=torch.long)  # position of an image within its class
    for c in torch.unique(labels):
        members = order[labels[order] == c]
        rank[members] = torch.arange(len(members))
    key = rank * (int(labels.max()) + 1) + labels  # round-robin over classes
    return order[key[order].argsort(stable=True)][:n]  # (n,)


def noisy(
    images: torch.Tensor,
    labels: torch.Tensor,
    classes: Sequence[str],
    sigmas: Sequence[float] = (0.0, 0.05, 0.1, 0.2, 0.3),
    n: int | None = None,
    seed: int = 0,
) -> StimulusSet:
    """n source images under Gaussian pixel noise of every sigma, sigma by sigma.

    The n images are drawn from `seed`, class by class in turn (a dataset split sorted by
    class would otherwise give n images of its first class); n None takes every image, in
    order. Noise is added to [0, 1] pixels without clipping, as `gattanet_sim.evaluate` does.
    One standard-normal field per image is scaled by every sigma, so that a curve over sigma
    compares the same noise pattern at growing strength rather than fresh draws.
    """
    source, source_labels, classes = _source(images, labels, classes)
    sigmas = _numbers("sigmas", sigmas, lo=0)
    count = len(source) if n is None else _integer("n", n, 1, MAX_IMAGES)
    if count > len(source) or count < 1:
        _fail(f"n must be in [1, {len(source)}] (the source's size), got {n!r}")
    seed = _seed(seed)
    g = torch.Generator().manual_seed(seed)
    chosen = torch.arange(len(source)) if n is None else _balanced_sample(source_labels, count, g)
    clean = source[chosen]  # (n, 3, H, W)
    field = torch.randn(clean.shape, generator=g)  # (n, 3, H, W)
    stacked = torch.cat([clean + s * field for s in sigmas])  # (S * n, 3, H, W)
    rows = {"label": source_labels[chosen].repeat(len(sigmas)).tolist(),
            "noise_std": [s for s in sigmas for _ in range(count)],
            "source_index": chosen.tolist() * len(sigmas)}
    parameters = dict(sigmas=sigmas, n=n if n is None else count, seed=seed, classes=classes,
                      source=_fingerprint(images, labels, classes))
    return _stimulus_set("noisy", stacked, rows, parameters)


PARADIGMS: dict[str, Callable[..., StimulusSet]] = {
    "gratings": gratings, "two_stimulus": two_stimulus, "composite": composite, "noisy": noisy,
    "cued_detection": cued_detection,
}
SOURCE_PARADIGMS = ("composite", "noisy", "cued_detection")


def make_paradigm(parameters: dict, source: tuple | None = None) -> StimulusSet:
    """Regenerate a set from its `parameters`; source = (images, labels, classes) if needed.

    Dataset-based sets keep a fingerprint of their source in parameters["source"] (images
    cannot go into JSON), so a different source is refused rather than silently used.
    """
    arguments = dict(parameters)
    name = arguments.pop("paradigm", None)
    if name not in PARADIGMS:
        _fail(f"parameters['paradigm'] must be one of {', '.join(PARADIGMS)}; got {name!r}")
    if name in SOURCE_PARADIGMS:
        if source is None or len(source) != 3:
            _fail(f"{name} needs source=(images, labels, classes), the images it was cut from")
        fingerprint, classes = arguments.pop("source", None), arguments.pop("classes", None)
        if fingerprint != _fingerprint(*source) or classes != list(source[2]):
            _fail(f"source does not match the {name} set's (fingerprint {fingerprint})")
        try:
            return PARADIGMS[name](*source, **arguments)
        except TypeError as err:
            _fail(f"parameters of {name}: {err}")
    try:
        return PARADIGMS[name](**arguments)
    except TypeError as err:
        _fail(f"parameters of {name}: {err}")


# --- training sets --------------------------------------------------------------------


def _masks(dx: torch.Tensor, dy: torch.Tensor, r: torch.Tensor, freq: torch.Tensor) -> list:
    """Figure masks for every class; dx, dy (N, H, W) from the centre, r/freq (N, 1, 1)."""
    d = torch.sqrt(dx**2 + dy**2)
    box = torch.maximum(dx.abs(), dy.abs())
    in_box = box < 0.85 * r
    in_disk = d < r
    arm = 0.28 * r
    return [
        in_disk,
        in_disk & (d > 0.6 * r),
        in_box,
        in_box & (box > 0.55 * r),
        ((dx.abs() < arm) & (dy.abs() < r)) | ((dy.abs() < arm) & (dx.abs() < r)),
        in_box & (torch.sin(dy * freq) > 0),
        in_box & (torch.sin(dx * freq) > 0),
        in_disk & (torch.sin((dx + dy) * freq * 0.7) > 0),
        in_box & (torch.sin(dx * freq) * torch.sin(dy * freq) > 0),
        (dy < 0.7 * r) & (dy > -r) & (dx.abs() < 0.6 * (dy + r)),
    ]


def _check_split(n_per_class, split) -> int:
    if split not in SPLIT_OFFSETS:
        raise ValueError(f"split must be one of {', '.join(SPLIT_OFFSETS)}; got {split!r}")
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be at least 1, got {n_per_class}")
    return n_per_class


def _balanced_labels(n_per_class: int, g: torch.Generator) -> torch.Tensor:
    k = len(SHAPE_CLASSES)
    labels = torch.arange(k).repeat_interleave(n_per_class)  # (N,)
    return labels[torch.randperm(n_per_class * k, generator=g)]


def shapes(
    n_per_class: int = 200, image_size: int = 32, seed: int = 0, split: str = "train"
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Draw `n_per_class` images of every shape class.

    Returns images (N, 3, H, W) uint8, labels (N,) int64 and the class names. Splits draw
    from disjoint seeds, so "val" and "test" never repeat a "train" image.
    """
    n_per_class = _check_split(n_per_class, split)
    g = torch.Generator().manual_seed(seed * 3 + SPLIT_OFFSETS[split])
    n = n_per_class * len(SHAPE_CLASSES)
    labels = _balanced_labels(n_per_class, g)

    def uniform(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(*shape, generator=g)

    s = image_size
    cx, cy = uniform(0.3, 0.7, n, 1, 1) * s, uniform(0.3, 0.7, n, 1, 1) * s
    r = uniform(0.2, 0.38, n, 1, 1) * s
    freq = uniform(1.2, 2.2, n, 1, 1) * torch.pi / r * 2
    ys, xs = torch.meshgrid(torch.arange(s) + 0.5, torch.arange(s) + 0.5, indexing="ij")
    dx, dy = xs - cx, ys - cy  # (N, H, W)
    masks = torch.stack(_masks(dx, dy, r, freq), dim=1)  # (N, classes, H, W)
    mask = masks[torch.arange(n), labels].float().unsqueeze(1)  # (N, 1, H, W)

    background = uniform(0.0, 1.0, n, 3, 1, 1)
    contrast = uniform(0.35, 1.0, n, 1, 1, 1) * torch.where(background.mean(1, True) > 0.5, -1, 1)
    figure = (background + contrast * uniform(0.6, 1.0, n, 3, 1, 1)).clamp(0, 1)
    images = background + mask * (figure - background)  # (N, 3, H, W)
    images = images + 0.06 * torch.randn(images.shape, generator=g)
    images = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    return images, labels, list(SHAPE_CLASSES)


SEARCH_FIGURES = 4  # slots: the target, then two or three distractors
SEARCH_RADIUS = (0.14, 0.20)  # figure radius as a fraction of the image size
SEARCH_LURE = 0.5  # fraction of displays where one distractor is coloured too, but less
SEARCH_LURE_CHROMA = (0.4, 0.95)  # the lure's chroma as a fraction of the target's
SEARCH_CLUTTER = 8  # short grey bars on the background
SEARCH_NOISE = (0.04, 0.03)  # pixel noise sd: the same on all channels, then per channel


def _place(
    radius: torch.Tensor, size: int, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Centres (N, K) of K <= 4 figures, each in its own random quadrant, jittered within it.

    A figure of radius r stays r + 0.5 pixels inside its quadrant, so figures never overlap
    nor leave the image; rejection sampling over the whole image stalls at these sizes.
    """
    n, k = radius.shape
    half = size / 2
    quadrant = torch.rand(n, 4, generator=g).argsort(1)[:, :k]  # (N, K) distinct quadrants
    lo, hi = radius + 0.5, half - radius - 0.5  # (N, K)
    cx = lo + (hi - lo) * torch.rand(n, k, generator=g) + (quadrant % 2) * half  # (N, K)
    cy = lo + (hi - lo) * torch.rand(n, k, generator=g) + (quadrant // 2) * half
    return cx, cy


def _hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(N,) hue in [0, 1), saturation, value -> (N, 3) RGB; its chroma max - min is v * s."""
    k = (torch.tensor([5.0, 3.0, 1.0]) + h[:, None] * 6) % 6  # (N, 3)
    return v[:, None] - (v * s)[:, None] * torch.clamp(torch.minimum(k, 4 - k), 0, 1)


def _draw_search(
    n_per_class: int, image_size: int, seed: int, split: str
) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """`search`'s images and labels, plus the layout that drew them (for tests).

    layout: "classes", "cx", "cy", "radius", "present" (N, K), slot 0 the target and slot 1
    the lure where "lure" (N,) is set; "colour" (N, K, 3) each figure's noiseless colour;
    "figures" (N, K, H, W) the pixels each figure covers.
    """
    n_per_class = _check_split(n_per_class, split)
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 16:
        raise ValueError(f"image_size must be an integer >= 16, got {image_size!r}")
    g = torch.Generator().manual_seed(seed * 3 + SPLIT_OFFSETS[split] + 1_000_003)
    labels = _balanced_labels(n_per_class, g)
    n, k, s = len(labels), SEARCH_FIGURES, image_size

    def uniform(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(*shape, generator=g)

    scores = torch.rand(n, len(SHAPE_CLASSES), generator=g)  # (N, classes)
    scores[torch.arange(n), labels] = math.inf
    classes = torch.cat([labels[:, None], scores.argsort(1)[:, : k - 1]], 1)  # (N, K) distinct
    present = torch.ones(n, k, dtype=torch.bool)
    present[:, -1] = torch.rand(n, generator=g) < 0.5  # two or three distractors
    radius = uniform(*SEARCH_RADIUS, n, k) * s  # (N, K) px: 4.5 to 6.4 px at 32
    cx, cy = _place(radius, s, g)
    period = uniform(3.0, 4.0, n, k)  # (N, K) px, of the striped classes

    ys, xs = torch.meshgrid(torch.arange(s) + 0.5, torch.arange(s) + 0.5, indexing="ij")
    figures = torch.zeros(n, k, s, s, dtype=torch.bool)
    for j in range(k):
        dx, dy = xs - cx[:, j, None, None], ys - cy[:, j, None, None]  # (N, H, W)
        for c in range(len(SHAPE_CLASSES)):
            rows = (classes[:, j] == c) & present[:, j]
            if rows.any():
                r = radius[rows, j, None, None]  # (M, 1, 1)
                freq = 2 * torch.pi / period[rows, j, None, None]
                figures[rows, j] = _masks(dx[rows], dy[rows], r, freq)[c]

    grey = uniform(0.3, 0.7, n, 1)  # (N, 1) achromatic background
    images = grey[:, :, None, None].expand(n, 3, s, s).clone()  # (N, 3, H, W)
    for _ in range(SEARCH_CLUTTER):  # short bars of random grey, behind the figures
        bx, by = uniform(0, s, n, 1, 1), uniform(0, s, n, 1, 1)
        angle = uniform(0, math.pi, n, 1, 1)
        along = (xs - bx) * torch.cos(angle) + (ys - by) * torch.sin(angle)  # (N, H, W)
        across = -(xs - bx) * torch.sin(angle) + (ys - by) * torch.cos(angle)
        bar = (along.abs() < uniform(1.0, 2.5, n, 1, 1)) & (across.abs() < 0.6)  # (N, H, W)
        level = uniform(0, 1, n, 1, 1, 1).expand(n, 3, 1, 1)
        images = torch.where(bar[:, None], level, images)

    sign = torch.where(torch.rand(n, k, generator=g) < 0.5, -1.0, 1.0)
    colour = (grey + sign * uniform(0.25, 0.45, n, k)).clamp(0, 1)[..., None].expand(n, k, 3)
    colour = colour.clone()  # (N, K, 3) distractors grey: R = G = B
    hue, saturation, value = uniform(0, 1, n), uniform(0.7, 1.0, n), uniform(0.6, 1.0, n)
    colour[:, 0] = _hsv_to_rgb(hue, saturation, value)  # the target, chroma >= 0.42
    lure = torch.rand(n, generator=g) < SEARCH_LURE  # (N,)
    other = _hsv_to_rgb((hue + uniform(0.2, 0.8, n)) % 1, saturation, value)  # same chroma
    fraction = uniform(*SEARCH_LURE_CHROMA, n, 1)
    colour[lure, 1] = (grey + fraction * (other - grey))[lure]  # another hue, less chroma
    for j in range(k):
        images = torch.where(figures[:, j, None], colour[:, j, :, None, None], images)

    grey_noise, colour_noise = SEARCH_NOISE
    images = images + grey_noise * torch.randn(n, 1, s, s, generator=g)  # (N, 3, H, W)
    images = images + colour_noise * torch.randn(n, 3, s, s, generator=g)
    images = (images.clamp(0, 1) * 255).round().to(torch.uint8)  # (N, 3, H, W)
    layout = {"classes": classes, "cx": cx, "cy": cy, "radius": radius, "present": present,
              "lure": lure, "colour": colour, "figures": figures}
    return images, labels, layout


def search(
    n_per_class: int = 200, image_size: int = 32, seed: int = 0, split: str = "train"
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """A visual-search task: name the shape of the most saturated figure among several.

    Each image holds one target figure in a saturated colour and two or three distractor
    figures of other `SHAPE_CLASSES`, each in its own random quadrant at a jittered place,
    on a grey background cluttered with short grey bars; figures are 9 to 13 pixels wide at
    32. Distractors are
    grey, except that in half the images one is a lure, coloured in another hue with 40 to
    95 % of the target's chroma, and light pixel noise blurs the comparison. The label is
    the target's class. Since every other figure is of another class, naming the image's
    shapes is not enough: the colour must be bound to one shape, and where there is a lure,
    the two colours compared - a competition across the image, which is what a global
    attention region can settle. Returns images (N, 3, H, W) uint8, labels (N,) int64
    balanced over classes, and the class names; splits draw from disjoint seeds, as in
    `shapes`.
    """
    images, labels, _ = _draw_search(n_per_class, image_size, seed, split)
    return images, labels, list(SHAPE_CLASSES)

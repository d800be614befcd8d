"""Generated stimuli: what each paradigm draws is what its metadata says it drew."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from gattanet_sim import stimuli as S
from gattanet_sim.data import load_split
from gattanet_sim.stimuli import (
    COLORS,
    SHAPE_CLASSES,
    StimulusError,
    composite,
    contrast_series,
    gratings,
    make_paradigm,
    noisy,
    search,
    two_stimulus,
)


def nongrey(image: torch.Tensor, grey: float = 0.5) -> torch.Tensor:
    """(3, H, W) -> (H, W) bool: pixels that differ from the background."""
    return (image - grey).abs().amax(0) > 1e-9


def disk(cx: float, cy: float, r: float, size: int) -> torch.Tensor:
    """(H, W) bool: pixel centres within r of (cx, cy)."""
    c = torch.arange(size, dtype=torch.float64) + 0.5
    ys, xs = torch.meshgrid(c, c, indexing="ij")
    return (xs - cx) ** 2 + (ys - cy) ** 2 < r**2


@pytest.fixture
def source():
    """Five classes of six random 32x32 uint8 images: (images, labels, classes)."""
    g = torch.Generator().manual_seed(5)
    images = torch.randint(0, 256, (30, 3, 32, 32), generator=g, dtype=torch.uint8)
    labels = torch.arange(5).repeat(6)
    return images, labels, ["a", "b", "c", "d", "e"]


# --- gratings -------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", [0, 30, 45, 90, 135])
def test_orientation_and_frequency_are_those_of_the_fourier_peak(orientation):
    """Full-field grating: the 2-D FFT peak gives back orientation and cycles/deg."""
    s = gratings(orientations=(orientation,), spatial_frequencies=(2.0,), image_size=64,
                 visual_degrees=8.0)
    image = s.images[0, 0].double() - 0.5  # (H, W), background removed
    power = torch.fft.fft2(image).abs()
    power[0, 0] = 0
    row, col = divmod(int(power.argmax()), 64)
    ky = row if row < 32 else row - 64  # cycles per image, rows run downwards
    kx = col if col < 32 else col - 64
    measured = math.degrees(math.atan2(-kx, -ky)) % 180  # wave vector (-sin, cos) with y up
    error = min(abs(measured - orientation), 180 - abs(measured - orientation))
    assert error < 3.0  # the angular resolution at 16 cycles per image
    candidates = [0, 30, 45, 60, 90, 120, 135, 150]
    nearest = min(candidates, key=lambda c: min(abs(measured - c), 180 - abs(measured - c)))
    assert nearest == s.meta.orientation[0] == orientation
    assert math.hypot(kx, ky) / 8.0 == pytest.approx(s.meta.spatial_frequency[0], abs=1 / 16)


def test_orientation_is_counter_clockwise_from_horizontal_on_screen():
    """0: every row constant; 90: every column constant; 45: bars run up to the right."""
    horizontal, vertical, diagonal = gratings(orientations=(0, 90, 45)).images[:, 0]
    assert (horizontal == horizontal[:, :1]).all() and horizontal.std() > 0.1
    assert (vertical == vertical[:1, :]).all() and vertical.std() > 0.1
    # one pixel right and one up (row - 1) stays on the same bar
    assert torch.allclose(diagonal[1:, :-1], diagonal[:-1, 1:], atol=1e-6)
    assert not torch.allclose(diagonal[1:, 1:], diagonal[:-1, :-1], atol=1e-2)


def test_contrast_series_from_uniform_grey_to_its_michelson_contrast():
    contrasts = contrast_series(0.02)
    assert len(contrasts) == 51 and contrasts[0] == 0 and contrasts[-1] == 1.0
    s = gratings(orientations=(0,), contrasts=contrasts, phases=(45,))  # peaks on pixel centres
    assert (s.images[0] == 0.5).all()
    for image, contrast in zip(s.images, s.meta.contrast):
        lo, hi = image.min().item(), image.max().item()
        assert (hi - lo) / (hi + lo) == pytest.approx(contrast, abs=1e-6)


@pytest.mark.parametrize("color", ["gray", "red", "green", "blue", "yellow", "red-green"])
def test_colour_gratings_modulate_only_along_their_direction(color):
    s = gratings(orientations=(45,), colors=(color,))
    assert s.meta.color[0] == color
    delta = s.images[0].double() - 0.5  # (3, H, W)
    direction = torch.tensor(COLORS[color], dtype=torch.float64)
    field = delta[direction.abs().argmax()] / direction[direction.abs().argmax()]  # (H, W)
    assert field.abs().max() == pytest.approx(0.5, abs=0.05)
    assert torch.allclose(delta, direction[:, None, None] * field, atol=1e-6)
    assert s.images.min() >= 0 and s.images.max() <= 1


def test_a_disk_grating_is_only_inside_its_disk_and_degrees_match_pixels():
    s = gratings(orientations=(90,), radii=(1.0,), positions=((1.5, -1.0), (-2.0, 2.0)))
    for image, row in zip(s.images, s.meta.itertuples()):
        ppd = 32 / 8.0
        assert row.center_x_px == 16 + row.position_x * ppd
        assert row.center_y_px == 16 - row.position_y * ppd  # y up in degrees, down in rows
        inside = disk(row.center_x_px, row.center_y_px, row.radius * ppd, 32)
        drawn = nongrey(image)
        assert drawn.any() and not (drawn & ~inside).any()
        assert drawn.sum() > 0.6 * inside.sum()
    assert s.meta.center_y_px[0] > 16 > s.meta.center_y_px[1]  # below, then above the centre


def test_gaussian_envelope_falls_off_with_sigma_half_the_radius():
    s = gratings(orientations=(0,), radii=(2.0,), envelope="gaussian", phases=(45,),
                 image_size=64)
    amplitude = (s.images[0, 0] - 0.5).abs()  # (H, W)
    assert amplitude.max() > 0.45 and amplitude[0, 0] < 1e-3  # ~0 at the corner, 5.6 sigma


# --- two stimuli ----------------------------------------------------------------------


def test_two_stimulus_displays_hold_what_their_metadata_say():
    s = two_stimulus(phases=(0, 90))
    m = s.meta
    assert len(s) == 12 and set(m.display) == {"A", "B", "AB"}
    r = m.radius[0] * 32 / 8.0
    for image, row in zip(s.images, m.itertuples()):
        drawn = nongrey(image)
        expected = torch.zeros(32, 32, dtype=torch.bool)
        for letter in "ab":
            x, y = getattr(row, f"{letter}_x_px"), getattr(row, f"{letter}_y_px")
            if not math.isnan(x):
                area = disk(x, y, r, 32)
                assert (drawn & area).sum() > 0.6 * area.sum()
                expected |= area
                px, py = getattr(row, f"position_{letter}_x"), getattr(row, f"position_{letter}_y")
                assert (x, y) == (16 + 4 * px, 16 - 4 * py)
        assert not (drawn & ~expected).any()
        letters = [v for v in (row.stimulus_at_1, row.stimulus_at_2) if v]
        assert row.display == "".join(sorted(letters))
        assert row.target == (letters[0] if len(letters) == 1 else "")


def test_a_pair_display_is_the_sum_of_its_alone_displays():
    s = two_stimulus(phases=(0, 90, 180))
    m = s.meta
    locs = [(m.a_x_px, m.a_y_px), (m.b_x_px, m.b_y_px)]
    r = m.radius[0] * 4
    for i in np.flatnonzero(m.display == "AB"):
        for slot, letter in ((1, m.stimulus_at_1[i]), (2, m.stimulus_at_2[i])):
            alone = np.flatnonzero((m.phase == m.phase[i]) & (m.display == letter)
                                   & (m[f"stimulus_at_{slot}"] == letter))
            assert len(alone) == 1
            col = 0 if letter == "A" else 1
            area = disk(locs[col][0][i], locs[col][1][i], r + 1, 32)
            assert torch.equal(s.images[i][:, area], s.images[alone[0]][:, area])


@pytest.mark.parametrize("feature,a,b", [("orientation", 30.0, 120.0), ("color", "red", "green")])
def test_two_stimulus_alone_display_is_the_matching_grating(feature, a, b):
    """The alone display of A equals `gratings` drawn with A's values at that place."""
    s = two_stimulus(feature=feature, a=a, b=b, phases=(90,), orientation=45.0)
    i = int(np.flatnonzero((s.meta.display == "A") & (s.meta.stimulus_at_2 == "A"))[0])
    ori, color = (a, "gray") if feature == "orientation" else (45.0, a)
    g = gratings(orientations=(ori,), colors=(color,), phases=(90,), radii=(1.5,),
                 positions=((2.0, 0.0),))
    assert torch.allclose(s.images[i], g.images[0], atol=1e-6)
    assert (s.meta.value_a[i], s.meta.value_b[i]) == (str(a), str(b))


# --- dataset-based ----------------------------------------------------------------------


def test_composite_cells_are_the_listed_downscaled_images(source):
    images, labels, classes = source
    s = composite(images, labels, classes, n=20, grid=2, seed=3)
    small = F.interpolate(images.float() / 255, size=(16, 16), mode="bilinear",
                          antialias=True)  # (N, 3, 16, 16)
    assert torch.bincount(torch.tensor(s.meta.label.values)).tolist() == [4] * 5
    for image, row in zip(s.images, s.meta.itertuples()):
        index = [int(i) for i in row.source_indices.split(",")]
        for cell, i in enumerate(index):
            r, c = divmod(cell, 2)
            assert torch.allclose(image[:, 16 * r : 16 * r + 16, 16 * c : 16 * c + 16], small[i],
                                  atol=1e-6)
        target = labels[index[row.target_position]].item()
        assert target == row.label and classes[target] == row.target_class == row.target
        others = [labels[i].item() for k, i in enumerate(index) if k != row.target_position]
        assert row.label not in others and len(set(others)) == 3
        assert row.distractor_classes == ",".join(map(str, others))
        r, c = divmod(row.target_position, 2)
        assert (row.target_x_px, row.target_y_px) == (16 * c + 8, 16 * r + 8)


def test_composite_repeats_distractor_classes_only_when_too_few(source):
    images, labels, classes = source
    s = composite(images, labels, classes, n=5, grid=4, seed=0)  # 15 distractors, 4 classes
    for row in s.meta.itertuples():
        counts = np.bincount([int(c) for c in row.distractor_classes.split(",")], minlength=5)
        assert counts[row.label] == 0 and sorted(counts[counts > 0]) == [3, 4, 4, 4]


def test_noisy_images_carry_noise_of_their_sigma(source):
    images, labels, classes = source
    s = noisy(images, labels, classes, sigmas=(0.0, 0.1, 0.3), n=10)
    chosen = s.meta.source_index.tolist()[:10]
    clean = images[chosen].float() / 255
    assert len(s) == 30 and s.meta.source_index.tolist() == chosen * 3 and len(set(chosen)) == 10
    assert torch.equal(s.images[:10], clean)
    # drawn class by class: a source sorted by class still gives every class
    ordered = labels.argsort(stable=True)
    t = noisy(images[ordered], labels[ordered], classes, sigmas=(0.0,), n=len(classes) * 2)
    assert np.bincount(t.meta.label, minlength=len(classes)).tolist() == [2] * len(classes)
    assert noisy(images, labels, classes, sigmas=(0.0,)).meta.source_index.tolist() == list(range(len(labels)))
    for k, sigma in enumerate((0.1, 0.3), start=1):
        block = s.images[10 * k : 10 * k + 10]
        assert (block - clean).std().item() == pytest.approx(sigma, rel=0.03)
    assert s.images.min() < 0 and s.images.max() > 1  # not clipped, as evaluate does
    assert (s.meta.label.values == labels.numpy()[s.meta.source_index.values]).all()


# --- sets: determinism, round trip, export ----------------------------------------------


def every_paradigm(source):
    images, labels, classes = source
    return [
        gratings(orientations=(0, 60), contrasts=(0.5, 1.0), radii=(None, 1.0)),
        two_stimulus(feature="color", a="blue", b="yellow", phases=(0, 180)),
        composite(images, labels, classes, n=8, seed=1),
        noisy(images, labels, classes, sigmas=(0.0, 0.2), n=4, seed=2),
    ]


def test_sets_are_deterministic_and_regenerate_from_their_parameters(source):
    for first, again in zip(every_paradigm(source), every_paradigm(source)):
        assert torch.equal(first.images, again.images) and first.meta.equals(again.meta)
        parameters = json.loads(json.dumps(first.parameters))  # survives JSON
        remade = make_paradigm(parameters, source)
        assert torch.equal(remade.images, first.images) and remade.meta.equals(first.meta)
        assert remade.identifier == first.identifier
        assert first.identifier.startswith(f"gattanet_sim.{parameters['paradigm']}.")
        assert first.meta.columns[0] == "stimulus_id" and first.meta.stimulus_id.is_unique
        assert first.meta.label.dtype == np.int64 and len(first) == len(first.meta)
    images, labels, classes = source
    other = composite(images, labels, classes, n=8, seed=2)
    assert not torch.equal(other.images, every_paradigm(source)[2].images)
    assert other.identifier != every_paradigm(source)[2].identifier


def test_make_paradigm_refuses_a_missing_or_different_source(source):
    s = every_paradigm(source)[2]
    with pytest.raises(StimulusError, match="source"):
        make_paradigm(s.parameters)
    images, labels, classes = source
    with pytest.raises(StimulusError, match="source"):
        make_paradigm(s.parameters, (images.flip(0), labels, classes))


def test_brainscore_export_writes_pngs_and_a_csv_of_all_metadata(source, tmp_path):
    for k, s in enumerate(every_paradigm(source)[:3]):
        out = tmp_path / f"set{k}"
        csv = s.to_brainscore(out)
        table = pd.read_csv(csv, keep_default_na=False, na_values=[""])
        assert list(table.columns[:2]) == ["stimulus_id", "filename"]
        assert list(table.columns[2:]) == list(s.meta.columns[1:])
        assert table.stimulus_id.tolist() == s.meta.stimulus_id.tolist()
        for image, name in zip(s.images, table.filename):
            decoded = torch.from_numpy(np.array(Image.open(out / name))).permute(2, 0, 1)
            assert torch.equal(decoded, (image.clamp(0, 1) * 255).round().to(torch.uint8))
        assert json.loads((out / "stimulus_set.json").read_text())["identifier"] == s.identifier
    with pytest.raises(StimulusError, match="not empty"):
        s.to_brainscore(out)
    (tmp_path / "empty").mkdir()
    assert s.to_brainscore(tmp_path / "empty").exists()


def test_a_failed_export_leaves_nothing(source, tmp_path, monkeypatch):
    s = every_paradigm(source)[0]
    calls = []

    def broken(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        return original(self, *args, **kwargs)

    original = Image.Image.save
    monkeypatch.setattr(Image.Image, "save", broken)
    with pytest.raises(OSError):
        s.to_brainscore(tmp_path / "export")
    assert list(tmp_path.iterdir()) == []


BAD = [
    ("orientations", lambda: gratings(orientations=())),
    ("orientations", lambda: gratings(orientations=(180,))),
    ("contrasts", lambda: gratings(contrasts=(1.5,))),
    ("radii", lambda: gratings(radii=(-1.0,))),
    ("colors", lambda: gratings(colors=("mauve",))),
    ("spatial_frequencies", lambda: gratings(spatial_frequencies=(2.0,))),  # Nyquist at 32/8°
    ("positions", lambda: gratings(positions=((5.0, 0.0),))),
    ("envelope", lambda: gratings(envelope="square")),
    ("phases", lambda: gratings(phases=(-90,))),
    ("locations", lambda: two_stimulus(locations=((0.0, 0.0), (1.0, 0.0)))),
    ("locations", lambda: two_stimulus(locations=((-3.0, 0.0), (2.0, 0.0)))),
    ("feature", lambda: two_stimulus(feature="size")),
    ("a", lambda: two_stimulus(feature="color", a="mauve", b="red")),
    ("a and b", lambda: two_stimulus(a=45, b=45)),
    ("radius", lambda: two_stimulus(radius=0)),
]


@pytest.mark.parametrize("name,make", BAD, ids=[f"{n}-{i}" for i, (n, _) in enumerate(BAD)])
def test_bad_parameters_raise_a_one_line_stimulus_error(name, make):
    with pytest.raises(StimulusError) as err:
        make()
    message = str(err.value)
    assert name in message and "\n" not in message


@pytest.mark.parametrize("name,kwargs", [
    ("labels", {"labels": torch.zeros(30, dtype=torch.int64)}),
    ("grid", {"grid": 0}),
    ("grid", {"grid": 3}),  # does not divide 32
    ("n", {"n": 0}),
])
def test_bad_composite_parameters(source, name, kwargs):
    images, labels, classes = source
    arguments = {"images": images, "labels": labels, "classes": classes, **kwargs}
    with pytest.raises(StimulusError, match=name):
        composite(**arguments)


def test_bad_noisy_and_make_paradigm_parameters(source):
    with pytest.raises(StimulusError, match="sigmas"):
        noisy(*source, sigmas=(-0.1,))
    with pytest.raises(StimulusError, match="n must"):
        noisy(*source, n=31)
    with pytest.raises(StimulusError, match="paradigm"):
        make_paradigm({"paradigm": "nope"})
    with pytest.raises(StimulusError, match="gratings"):
        make_paradigm({"paradigm": "gratings", "wavelength": 3})


def test_stimuli_imports_nothing_else_of_the_package():
    """Layering: stimuli knows nothing of data, areas, attention or dynamics."""
    tree = ast.parse(Path(S.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not [m for m in imported if m and m.startswith("gattanet_sim")]


# --- the search training set ------------------------------------------------------------


def test_search_is_seeded_balanced_and_split():
    images, labels, classes = search(6, seed=1)
    assert images.shape == (60, 3, 32, 32) and images.dtype == torch.uint8
    assert classes == list(SHAPE_CLASSES) and torch.bincount(labels).tolist() == [6] * 10
    again, labels_again, _ = search(6, seed=1)
    assert torch.equal(images, again) and torch.equal(labels, labels_again)
    val, _, _ = search(6, seed=1, split="val")
    train_bytes = {bytes(i.numpy()) for i in images}
    assert not any(bytes(i.numpy()) in train_bytes for i in val)
    assert not torch.equal(search(6, seed=2)[0], images)
    stimuli = load_split("stimuli", "val", stimuli_per_class=10)
    assert torch.equal(stimuli.images, search(2, seed=0, split="val")[0])


def test_search_target_is_the_most_saturated_figure_among_other_classes():
    images, labels, layout = S._draw_search(20, 32, 0, "train")
    assert torch.equal(images, search(20)[0]) and torch.equal(labels, layout["classes"][:, 0])
    classes, present, colour = layout["classes"], layout["present"], layout["colour"]
    chroma = colour.amax(-1) - colour.amin(-1)  # (N, K)
    assert (chroma[:, 0] > 0.4).all()
    assert ((chroma[:, 1:] < 0.95 * chroma[:, :1]) | ~present[:, 1:]).all()
    lure = layout["lure"]
    assert 0.3 < lure.float().mean() < 0.7
    assert (chroma[:, 2:] == 0).all() and (chroma[~lure, 1] == 0).all()  # the rest grey
    for row, cls in zip(present, classes):  # distractors of other classes, all different
        shown = cls[row].tolist()
        assert len(set(shown)) == len(shown) and 3 <= len(shown) <= 4
    figures = layout["figures"]  # (N, K, H, W)
    assert (figures.sum(1) <= 1).all()  # no overlap
    pixels = images.float() / 255
    seen = 0
    for i in range(len(images)):
        measured = []
        for j in np.flatnonzero(present[i]):
            area = figures[i, j]
            if area.sum() < 15:
                continue
            mean = pixels[i][:, area].mean(1)  # (3,) the figure's drawn colour
            assert torch.allclose(mean, colour[i, j], atol=0.05)
            measured.append((pixels[i][:, area].amax(0) - pixels[i][:, area].amin(0)).mean())
            seen += 1
        assert measured[0] == max(measured)  # the target is the most saturated in the image
    assert seen > 60


def test_brainscore_export_honours_the_umask(source, tmp_path):
    """The export directory was hard-coded to 0755, whatever the umask."""
    import os
    import stat

    old = os.umask(0o027)
    try:
        every_paradigm(source)[0].to_brainscore(tmp_path / "set")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "set").stat().st_mode) == 0o750

"""Attention maps, query space, noise robustness and reaction times: each analysis recovers a
truth planted in a small synthetic assembly, and refuses one that lacks what it needs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from gattanet_sim.analysis.attention_maps import attention_maps
from gattanet_sim.analysis.common import AnalysisError
from gattanet_sim.analysis.cueing import cueing_accuracy, reaction_times
from gattanet_sim.analysis.noise_robustness import noise_robustness
from gattanet_sim.analysis.query_space import (
    class_rdms,
    query_embedding,
    query_space,
    representational_geometry,
)
from gattanet_sim.data import CIFAR10_CLASSES

CENTRES = np.array([4.0, 12.0, 20.0, 28.0])  # a 4x4 conv area's receptive-field centres, 32 px image
NEUROID = ["neuroid_id", "region", "channel", "x", "y", "rf_size"]


# --- attention maps -------------------------------------------------------------------


def _planted_maps(images: int = 20, peak_hits: int = 14, trough_hits: int = 6,
                  readout_peaks: int = 14) -> xr.Dataset:
    """Agreement of a 4x4 conv area V1 (2 channels sharing each position's value) and a
    10-unit read-out, under bottom-up and off (0 everywhere, as recorded).

    Every V1 map is 1 + sqrt(8) (e_peak - e_trough): mean 1, sd 1 over the 16 positions, so
    its contrast sd / rms is 1/sqrt(2). The target sits in the top-left cell of a 2x2 grid;
    the first `peak_hits` maps peak inside it, the first `trough_hits` dip inside it. The
    read-out's agreement is +2 at the true class for `readout_peaks` images, -2 for the rest.
    """
    rows, cols = np.indices((4, 4)).reshape(2, -1)  # (16,) row-major positions
    inside = np.flatnonzero((rows < 2) & (cols < 2))  # the target cell's 4 positions
    outside = np.flatnonzero((rows >= 2) | (cols >= 2))
    maps = np.ones((images, 16))  # (image, position)
    for i in range(images):
        peak = inside[i % 4] if i < peak_hits else outside[i % len(outside)]
        trough = inside[(i + 1) % 4] if i < trough_hits else outside[(i + 5) % len(outside)]
        maps[i, peak] += np.sqrt(8)
        maps[i, trough] -= np.sqrt(8)
    labels = np.arange(images) % 10
    readout = np.zeros((images, 10))
    readout[np.arange(images), labels] = np.where(np.arange(images) < readout_peaks, 2.0, -2.0)
    v1 = np.repeat(maps, 2, axis=1)  # (image, 32): channel 0 and 1 of each position
    values = np.concatenate([v1, readout], axis=1)  # (image, neuroid)
    data = np.concatenate([values, np.zeros_like(values)])[:, :, None]  # bottom-up, then off
    neuroids = {
        "neuroid_id": [f"V1.{c}.{r}.{k}" for r, k in zip(rows, cols) for c in (0, 1)]
        + [f"readout.{c}.0.0" for c in range(10)],
        "region": ["V1"] * 32 + ["readout"] * 10,
        "channel": [c for _ in range(16) for c in (0, 1)] + list(range(10)),
        "x": list(np.repeat(CENTRES[cols], 2)) + [16.0] * 10,
        "y": list(np.repeat(CENTRES[rows], 2)) + [16.0] * 10,
        "rf_size": [4.0] * 32 + [32.0] * 10,
    }
    two = lambda v: np.concatenate([v, v])  # noqa: E731 (both conditions show the same images)
    ds = xr.Dataset(
        {"agreement": (("presentation", "neuroid", "time_bin"), data)},
        coords={**{k: ("neuroid", np.asarray(v)) for k, v in neuroids.items()},
                "label": ("presentation", two(labels)),
                "stimulus_id": ("presentation", two(np.array([f"c/{i}" for i in range(images)]))),
                "condition": ("presentation", np.repeat(["bottom-up", "off"], images)),
                "target_x_px": ("presentation", np.full(2 * images, 8.0)),
                "target_y_px": ("presentation", np.full(2 * images, 8.0)),
                "grid": ("presentation", np.full(2 * images, 2)), "time_bin": [1]},
        attrs={"model_config": json.dumps({"image_size": 32})})
    return ds.set_index(neuroid=NEUROID)


def test_attention_maps_recover_planted_contrast_and_peaks():
    table = attention_maps(_planted_maps()).set_index("region")
    assert list(table.condition.unique()) == ["bottom-up"]  # off's zero agreement is left out
    v1, readout = table.loc["V1"], table.loc["readout"]
    assert v1.positions == 16 and v1.images == 20
    assert v1.contrast_mean == pytest.approx(1 / np.sqrt(2))
    assert v1.contrast_ci_low == pytest.approx(1 / np.sqrt(2)) and v1.contrast_sd == pytest.approx(0)
    assert v1.peak_at_target == pytest.approx(14 / 20) and v1.trough_at_target == pytest.approx(6 / 20)
    assert v1.chance == pytest.approx(4 / 16)
    assert v1.peak_ci_low < 0.7 < v1.peak_ci_high
    assert readout.peak_at_target == pytest.approx(0.7) and readout.trough_at_target == pytest.approx(0.3)
    assert readout.chance == pytest.approx(0.1) and readout.peak_ci_low < 0.7 < readout.peak_ci_high
    other = attention_maps(_planted_maps(peak_hits=4, readout_peaks=2)).set_index("region")
    assert other.loc["V1", "peak_at_target"] == pytest.approx(0.2)
    assert other.loc["readout", "peak_at_target"] == pytest.approx(0.1)


def test_attention_maps_refuse_what_they_cannot_map():
    ds = _planted_maps()
    with pytest.raises(AnalysisError, match="needs variable 'agreement'"):
        attention_maps(ds.drop_vars("agreement"))
    holes = ds.isel(neuroid=np.r_[2:42])  # V1's first position (both channels) not recorded
    with pytest.raises(AnalysisError, match="every position of V1"):
        attention_maps(holes)
    assert list(attention_maps(holes, regions=["readout"]).region) == ["readout"]
    off = ds.isel(presentation=np.flatnonzero(ds["condition"].values == "off"))
    with pytest.raises(AnalysisError, match="0 everywhere"):
        attention_maps(off)


# --- query space ----------------------------------------------------------------------


def _planted_queries(structured: bool, per_class: int = 20, dim: int = 8, seed: int = 0) -> xr.Dataset:
    """CIFAR-10 classes; the query is noise, plus (if `structured`) a class mean and a large
    animal/vehicle offset along key dimension 0. Two conditions: `off` has the bottom-up
    activity of V4 doubled (the same geometry) and IT's class means shuffled (another one)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), per_class)  # (image,)
    vehicle = np.isin(labels, [0, 1, 8, 9])
    query = rng.normal(size=(len(labels), dim))  # (image, key_dim)
    if structured:
        query += 3 * rng.normal(size=(10, dim))[labels]
        query[:, 0] += np.where(vehicle, 10.0, -10.0)
    class_means = rng.normal(size=(10, 12))  # (class, unit)
    v4 = class_means[labels] + 0.3 * rng.normal(size=(len(labels), 12))
    shuffled = class_means[[3, 7, 1, 9, 0, 5, 2, 8, 6, 4]][labels] + 0.3 * rng.normal(size=(len(labels), 12))
    activity = {"bottom-up": np.concatenate([v4, v4], 1),
                "off": np.concatenate([2 * v4, shuffled], 1)}  # (image, 24): V4 units, IT units
    n = len(labels)
    two = lambda v: np.concatenate([v, v])  # noqa: E731
    ds = xr.Dataset(
        {"global_query": (("presentation", "key_dim", "time_bin"), two(query)[:, :, None]),
         "activity": (("presentation", "neuroid", "time_bin"),
                      np.concatenate([activity["bottom-up"], activity["off"]])[:, :, None])},
        coords={"label": ("presentation", two(labels)),
                "stimulus_id": ("presentation", two(np.array([f"n/{i}" for i in range(n)]))),
                "condition": ("presentation", np.repeat(["bottom-up", "off"], n)),
                "class": list(CIFAR10_CLASSES), "key_dim": np.arange(dim), "time_bin": [0],
                "region": ("neuroid", np.repeat(["V4", "IT"], 12))})
    return ds


def test_query_space_separates_planted_groups_and_not_random_ones():
    planted = query_space(_planted_queries(True)).set_index("task")
    assert planted.loc["group", "targets"] == "vehicle vs animal"
    assert planted.loc["group", "chance"] == pytest.approx(0.6)
    assert planted.loc["group", "accuracy"] > 0.97 and planted.loc["group", "ci_low"] > 0.9
    assert planted.loc["class", "accuracy"] > 0.9 and planted.loc["class", "chance"] == pytest.approx(0.1)
    random = query_space(_planted_queries(False)).set_index("task")
    assert abs(random.loc["group", "accuracy"] - 0.6) < 0.12
    assert random.loc["class", "accuracy"] < 0.25
    embedding = query_embedding(_planted_queries(True))
    by_group = embedding.groupby("group").dim1.agg(["min", "max"])
    assert by_group.loc["vehicle", "min"] > by_group.loc["animal", "max"] or \
        by_group.loc["animal", "min"] > by_group.loc["vehicle", "max"]  # PC1 splits the groups


def test_representational_geometry_keeps_scaled_and_loses_shuffled_classes():
    ds = _planted_queries(True)
    table = representational_geometry(ds, resamples=200).set_index(["signal", "method"])
    assert table.loc[("query", "tau-a"), "similarity"] == pytest.approx(1)  # the same queries
    assert table.loc[("V4", "cosine"), "similarity"] == pytest.approx(1)  # doubled: same geometry
    assert table.loc[("V4", "tau-a"), "similarity"] == pytest.approx(1)
    assert table.loc[("IT", "tau-a"), "similarity"] < 0.5  # classes shuffled
    assert table.loc[("IT", "tau-a"), "ci_high"] < 0.9
    rdms = class_rdms(ds)
    v4 = rdms[(rdms.signal == "V4") & (rdms.condition == "bottom-up")]
    x = ds["activity"].isel(neuroid=slice(0, 12), presentation=slice(0, 200), time_bin=0).values
    means = np.stack([x[ds["label"].values[:200] == c].mean(0) for c in range(10)])
    expected = (1 - np.corrcoef(means))[np.triu_indices(10, 1)]
    np.testing.assert_allclose(v4.distance.to_numpy(), expected, atol=1e-8)


def test_query_space_refuses_without_a_query_or_a_second_condition():
    ds = _planted_queries(True)
    with pytest.raises(AnalysisError, match="needs variable 'global_query'"):
        query_space(ds.drop_vars("global_query"))
    with pytest.raises(AnalysisError, match="no presentation of condition 'template'"):
        query_space(ds, condition="template")
    one = ds.isel(presentation=np.flatnonzero(ds["condition"].values == "off"))
    with pytest.raises(AnalysisError, match="compares conditions"):
        representational_geometry(one)
    with pytest.raises(AnalysisError, match="needs coordinate 'condition'"):
        representational_geometry(ds.drop_vars("condition"))


# --- noise robustness -----------------------------------------------------------------


SIGMAS = (0.0, 0.1, 0.3)
PLANTED_ACCURACY = {("bottom-up", 0.0): 1.0, ("bottom-up", 0.1): 0.75, ("bottom-up", 0.3): 0.5,
                    ("off", 0.0): 1.0, ("off", 0.1): 0.5, ("off", 0.3): 0.25}


def _planted_noisy(images: int = 40) -> xr.Dataset:
    """Logits whose top class is the label for a known share of images per condition and sd
    at time bin 1; at time bin 0 both conditions score as `off`."""
    labels = np.arange(images) % 10
    logits, coords = [], []
    for condition in ("bottom-up", "off"):
        for sd in SIGMAS:
            z = np.zeros((images, 10, 2))  # (image, class, time_bin)
            for t_bin, key in ((0, ("off", sd)), (1, (condition, sd))):
                right = np.arange(images) < PLANTED_ACCURACY[key] * images
                top = np.where(right, labels, (labels + 1) % 10)
                z[np.arange(images), top, t_bin] = 3.0
            logits.append(z)
            coords += [(condition, sd, f"noisy/{i}", labels[i]) for i in range(images)]
    frame = pd.DataFrame(coords, columns=["condition", "noise_std", "stimulus_id", "label"])
    return xr.Dataset({"logits": (("presentation", "class", "time_bin"), np.concatenate(logits))},
                      coords={**{c: ("presentation", frame[c].to_numpy()) for c in frame.columns},
                              "class": list(CIFAR10_CLASSES), "time_bin": [0, 1]})


def test_noise_robustness_recovers_planted_accuracy():
    table = noise_robustness(_planted_noisy()).set_index(["condition", "noise_std", "time_bin"])
    for (condition, sd), accuracy in PLANTED_ACCURACY.items():
        assert table.loc[(condition, sd, 1), "accuracy"] == pytest.approx(accuracy)
        assert table.loc[(condition, sd, 0), "accuracy"] == pytest.approx(PLANTED_ACCURACY[("off", sd)])
    row = table.loc[("bottom-up", 0.1, 1)]
    assert row.images == 40 and row.ci_low < 0.75 < row.ci_high
    assert row.minus_off == pytest.approx(0.25) and row.diff_ci_low > 0
    assert table.loc[("bottom-up", 0.1, 0), "minus_off"] == pytest.approx(0)


def test_noise_robustness_refuses_without_noise_levels():
    with pytest.raises(AnalysisError, match="needs coordinate 'noise_std'"):
        noise_robustness(_planted_noisy().drop_vars("noise_std"))
    with pytest.raises(AnalysisError, match="needs variable 'logits'"):
        noise_robustness(_planted_noisy().drop_vars("logits"))


# --- reaction times -------------------------------------------------------------------


CROSSING = {"valid": 1, "neutral": 2, "invalid": 3}  # first confident time bin per cue


def _planted_cues(images: int = 30) -> xr.Dataset:
    """Read-out logits over 4 time bins: silent (all 0) at bin 0, undecided (all equal) until
    the cue's crossing bin, then confident (softmax ~0.94) in one class: always the label for
    valid and neutral, the label for only the first half under invalid. The last 6 invalid
    presentations never decide."""
    labels = np.arange(images) % 10
    logits, coords = [], []
    for cue, cross in CROSSING.items():
        z = np.ones((images, 10, 4))  # (image, class, time_bin)
        z[:, :, 0] = 0.0  # a cascade's silent read-out
        right = np.arange(images) < (images // 2 if cue == "invalid" else images)
        top = np.where(right, labels, (labels + 1) % 10)
        for t in range(cross, 4):
            z[np.arange(images), top, t] = 4.0
        if cue == "invalid":
            z[images - 6:, :, 1:] = 1.0  # never confident
        logits.append(z)
        coords += [("template", cue, f"composite/{i}", labels[i]) for i in range(images)]
    frame = pd.DataFrame(coords, columns=["condition", "cue", "stimulus_id", "label"])
    return xr.Dataset({"logits": (("presentation", "class", "time_bin"), np.concatenate(logits))},
                      coords={**{c: ("presentation", frame[c].to_numpy()) for c in frame.columns},
                              "class": list(CIFAR10_CLASSES), "time_bin": [0, 1, 2, 3]},
                      attrs={"time_mapping": json.dumps({"V1": [50.0, 20.0], "readout": [50.0, 20.0]})})


def test_reaction_times_recover_planted_crossings():
    ds = _planted_cues()
    table = reaction_times(ds, threshold=0.5).set_index("cue")
    assert list(table.index) == ["valid", "neutral", "invalid"]
    assert table.loc["valid", "rt_bin"] == pytest.approx(1)
    assert table.loc["neutral", "rt_bin"] == pytest.approx(2)
    assert table.loc["invalid", "rt_bin"] == pytest.approx(3)
    assert table.loc["valid", "rt_ms"] == pytest.approx(70)
    assert table.loc["invalid", "rt_ms"] == pytest.approx(110)
    assert table.loc["valid", "rt_bin_minus_neutral"] == pytest.approx(-1)
    assert table.loc["invalid", "rt_ms_minus_neutral"] == pytest.approx(20)  # one 20-ms bin
    assert table.loc["invalid", "diff_images"] == 24
    assert table.loc["valid", "never_fraction"] == 0
    assert table.loc["invalid", "never_fraction"] == pytest.approx(0.2)
    assert table.loc["valid", "accuracy_at_rt"] == 1
    assert table.loc["invalid", "accuracy_at_rt"] == pytest.approx(15 / 24)
    assert table.loc["invalid", "accuracy_ci_low"] < 15 / 24 < table.loc["invalid", "accuracy_ci_high"]
    # ms from the read-out neuroids' own time_bin_start where the recording has them
    timed = ds.assign_coords(region=("neuroid", ["V1", "readout"]),
                             time_bin_start=(("neuroid", "time_bin"), [[0, 1, 2, 3], [100, 150, 200, 250]]))
    assert reaction_times(timed).set_index("cue").loc["valid", "rt_ms"] == pytest.approx(150)
    # a silent read-out decides nothing, even below a threshold that uniform odds would pass
    low = reaction_times(ds, threshold=0.05).set_index("cue")
    assert low.loc["valid", "rt_bin"] == pytest.approx(1)
    # the accuracy table of the same recording keeps its columns
    accuracy = cueing_accuracy(ds)
    assert {"accuracy", "ci_low", "ci_high", "minus_neutral"} <= set(accuracy.columns)


def test_reaction_times_refuse_without_cues():
    ds = _planted_cues()
    with pytest.raises(AnalysisError, match="needs coordinate 'cue'"):
        reaction_times(ds.drop_vars("cue"))
    valid = ds.isel(presentation=np.flatnonzero(ds["cue"].values == "valid"))
    with pytest.raises(AnalysisError, match="compares cues"):
        reaction_times(valid)
    with pytest.raises(AnalysisError, match="threshold"):
        reaction_times(ds, threshold=1.5)


def test_readout_gain_peak_is_the_sign_free_question():
    """With a negative alpha the gain 2 sigma(alpha a) is largest where the agreement is
    smallest: the true class is amplified most in the images whose agreement dips there."""
    ds = _planted_maps(readout_peaks=14)
    gain = 2 / (1 + np.exp(1.5 * ds["agreement"]))  # alpha = -1.5
    table = attention_maps(ds.assign(gain=gain)).set_index("region")
    readout = table.loc["readout"]
    assert readout.peak_at_target == pytest.approx(0.7)
    assert readout.gain_peak_at_target == pytest.approx(0.3)  # the 6 images whose agreement is -2 there
    assert readout.gain_peak_ci_low < 0.3 < readout.gain_peak_ci_high
    assert "gain_peak_at_target" not in attention_maps(ds).columns


def _noise_script(tmp_path):
    """analyses/noise_robustness.py loaded as a module, and a planted recording on disk."""
    import importlib.util
    from pathlib import Path

    path = tmp_path / "noisy.nc"
    _planted_noisy().assign_attrs(complete=1).to_netcdf(path)
    script = Path(__file__).resolve().parents[1] / "analyses" / "noise_robustness.py"
    spec = importlib.util.spec_from_file_location(f"noise_robustness_{tmp_path.name}", script)
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    return cli, path


def test_noise_robustness_cli_refuses_a_reference_it_was_not_given(tmp_path, capsys):
    """--reference nope silently dropped the difference columns; now one line, exit 2."""
    cli, path = _noise_script(tmp_path)
    assert cli.main([str(path), "--out", str(tmp_path / "o"), "--reference", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no such condition" in err and "bottom-up, off" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o" / "noise_robustness.csv").exists()
    assert cli.main([str(path), "--out", str(tmp_path / "o")]) == 0  # off, recorded: as before


def test_cueing_without_a_target_class_is_not_measured():
    """On gratings (no target class: label -1) cueing reported accuracy 0.0."""
    from gattanet_sim.analysis.cueing import cueing_accuracy

    n = 8
    noise = np.random.default_rng(0).normal(size=(n, 10, 2))
    ds = xr.Dataset({"logits": (("presentation", "class", "time_bin"), noise)},
                    coords={"condition": ("presentation", ["template"] * n), "cue": ("presentation", ["valid"] * n),
                            "label": ("presentation", np.full(n, -1)),
                            "stimulus_id": ("presentation", [f"g/{i}" for i in range(n)]),
                            "class": list(CIFAR10_CLASSES), "time_bin": [0, 1]}, attrs={"paradigm": "gratings"})
    with pytest.raises(AnalysisError, match="no presentation has a target class.*gratings"):
        cueing_accuracy(ds)
    ds["label"] = ("presentation", np.r_[np.full(n // 2, -1), np.arange(n // 2)])
    assert (cueing_accuracy(ds).images == n // 2).all()  # only the images with a target are scored


def test_an_analysis_that_fails_on_its_figure_leaves_no_fresh_table(tmp_path):
    """Three analyses wrote their CSV, then failed on the figure, leaving a CSV the scorecard
    read as a result: now the outputs appear together or not at all, earlier files untouched."""
    cli, path = _noise_script(tmp_path)
    out = tmp_path / "o"
    out.mkdir()
    (out / "noise_robustness.csv").write_text("an earlier table\n")

    def broken(*args, **kwargs):
        raise RuntimeError("the figure failed")

    real = cli.write_figure
    cli.write_figure = broken
    with pytest.raises(RuntimeError, match="the figure failed"):
        cli.main([str(path), "--out", str(out)])
    assert (out / "noise_robustness.csv").read_text() == "an earlier table\n"
    assert sorted(p.name for p in out.iterdir()) == ["noise_robustness.csv"]  # no temporary left
    cli.write_figure = real
    assert cli.main([str(path), "--out", str(out)]) == 0
    assert (out / "noise_robustness.csv").read_text() != "an earlier table\n"
    assert (out / "noise_robustness.png").exists()


def test_an_output_that_cannot_be_renamed_leaves_every_earlier_file_and_no_temporary(tmp_path, capsys):
    """The last rename failing (its name is a directory) left the CSVs already replaced and a
    temporary behind: now every earlier file is as it was, one line names the path."""
    cli, path = _noise_script(tmp_path)
    out = tmp_path / "o"
    out.mkdir()
    (out / "noise_robustness.csv").write_text("an earlier table\n")
    (out / "noise_robustness.svg").mkdir()  # the figure's last output cannot take its name
    assert cli.main([str(path), "--out", str(out)]) != 0
    assert "noise_robustness.svg" in capsys.readouterr().err
    assert (out / "noise_robustness.csv").read_text() == "an earlier table\n"
    assert sorted(p.name for p in out.iterdir()) == ["noise_robustness.csv", "noise_robustness.svg"]


def test_noise_robustness_splits_template_passes_into_attend_target_and_attend_other():
    """The experiment's default conditions record `template` once per attended template, so one
    image appeared several times in one condition: "cannot reindex on an axis with duplicate
    labels". Passes are now grouped as attending the image's own class or another one (the
    other templates' hits averaged per image), each paired with `off`."""
    images = 20
    labels = np.arange(images) % 10
    attended_names = ["airplane", "automobile", "bird"]
    logits, rows = [], []
    for condition, attended in [("off", "")] + [("template", a) for a in attended_names]:
        z = np.zeros((images, 10, 2))  # (image, class, time_bin)
        own = np.array([CIFAR10_CLASSES[k] == attended for k in labels])
        right = own | (attended == "bird") | (condition == "off")  # the bird template never hurts
        top = np.where(right, labels, (labels + 1) % 10)
        z[np.arange(images), top, :] = 3.0
        logits.append(z)
        rows += [(condition, "attend" if attended else "none", attended, 0.1, f"noisy/{i}", labels[i])
                 for i in range(images)]
    frame = pd.DataFrame(rows, columns=["condition", "cue", "attended", "noise_std", "stimulus_id", "label"])
    ds = xr.Dataset({"logits": (("presentation", "class", "time_bin"), np.concatenate(logits))},
                    coords={**{c: ("presentation", frame[c].to_numpy()) for c in frame.columns},
                            "class": list(CIFAR10_CLASSES), "time_bin": [0, 1]})
    table = noise_robustness(ds).set_index(["condition", "time_bin"])
    target = table.loc[("template (attend target)", 1)]
    other = table.loc[("template (attend other)", 1)]
    assert target.images == 6 and target.accuracy == 1.0  # labels 0, 1, 2 appear twice each
    # per image, the share of the other templates that leave it right: 1/2 (labels 0, 1), 0 (2), 1/3
    assert other.images == 20 and other.accuracy == pytest.approx((2 * 0.5 + 2 * 0.5 + 14 / 3) / 20)
    assert other.ci_low < other.accuracy < other.ci_high
    assert table.loc[("off", 1), "accuracy"] == 1.0
    assert other.minus_off == pytest.approx(other.accuracy - 1) and target.minus_off == 0.0


def test_attention_maps_figure_names_the_probed_readout_classes(tmp_path):
    """A recording probing 4 of the read-out's 10 classes (`--units channels:0,1,2,3`) crashed
    the figure: 4 bars, 10 class names."""
    import importlib.util
    from pathlib import Path

    ds = _planted_maps()
    keep = (ds["region"].values != "readout") | (ds["channel"].values < 4)
    ds = ds.isel(neuroid=np.flatnonzero(keep)).assign_coords({"class": list(CIFAR10_CLASSES)})
    path = tmp_path / "clean.nc"
    ds.reset_index("neuroid").assign_attrs(complete=1).to_netcdf(path)
    script = Path(__file__).resolve().parents[1] / "analyses" / "attention_maps.py"
    spec = importlib.util.spec_from_file_location("attention_maps_probe", script)
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    assert cli.main([str(path), "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "attention_maps.png").exists()



def test_error_bars_of_an_estimate_a_hair_outside_its_own_ci_are_drawn():
    """A V4 similarity of 0.999991 below its bootstrap ci_low of 0.999992 stopped query_space's
    figure (and the whole scorecard): "'yerr' must not contain negative values"."""
    import matplotlib.pyplot as plt

    from gattanet_sim.analysis.output import error_bars

    value, low, high = np.array([0.999991, 0.5]), np.array([0.999992, 0.4]), np.array([1.0, 0.7])
    below, above = error_bars(value, low, high)
    assert below.tolist() == [0.0, pytest.approx(0.1)] and above.tolist() == [pytest.approx(9e-6), pytest.approx(0.2)]
    fig, ax = plt.subplots()
    ax.errorbar([0, 1], value, yerr=error_bars(value, low, high))
    plt.close(fig)

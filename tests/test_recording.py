"""Recording: probes, the assembly layout, streaming, and faithfulness to the simulation."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import xarray as xr

from gattanet_sim import build_model
from gattanet_sim import record as record_cli
from gattanet_sim.io import atomic_save
from gattanet_sim.recording import (
    IncompleteRecording,
    Presentations,
    Probe,
    ProbeError,
    RecordingWriter,
    open_recording,
    place,
    record,
    trajectory_signals,
)

T = 3


def tiny_model(**kw):
    torch.manual_seed(0)
    model = build_model("toy", num_classes=10, widths=(4, 6, 8), hidden=12, key_dim=5,
                        alpha_init=0.4, **kw)
    return model.eval()


@pytest.fixture
def checkpoint(tmp_path):
    model = tiny_model()
    path = tmp_path / "tiny.pt"
    atomic_save({"model": model.state_dict(), "model_config": model.config,
                 "config": {"dataset": "stimuli", "timesteps": T}}, path)
    return path


def stimuli(n=10):
    from gattanet_sim.stimuli import shapes

    images, labels, _ = shapes(1, seed=3)
    return images[:n].float() / 255, labels[:n]


def write(path, model, probe, images, labels, chunk=4, float16=False):
    placement = place(probe, model, 32)
    steps = probe.timesteps or list(range(T))
    writer = RecordingWriter(path, placement.coords(model.backbone.receptive_fields(), 32), steps,
                             probe.signals, model.attention.key_dim, [str(i) for i in range(10)],
                             ["stimulus_id", "label", "split"], {"model": "toy"}, float16)
    stream = (Presentations(images[i:i + chunk], {
        "label": labels[i:i + chunk].numpy(), "split": ["val"] * len(labels[i:i + chunk]),
        "stimulus_id": [f"s{j}" for j in range(i, min(i + chunk, len(labels)))]})
        for i in range(0, len(labels), chunk))
    with writer:
        record(model, stream, writer, placement, T, steps)
    return placement


def test_cli_recording_opens_with_xarray_and_has_the_brainio_layout(checkpoint, tmp_path):
    out = tmp_path / "rec.nc"
    assert record_cli.main([str(checkpoint), "--limit", "12", "--units", "7", "--batch-size", "5",
                            "--out", str(out)]) == 0
    plain = xr.open_dataset(out)
    assert plain.activity.dims == ("presentation", "neuroid", "time_bin")
    assert plain.global_query.dims == ("presentation", "key_dim", "time_bin")
    assert plain.logits.dims == ("presentation", "class", "time_bin")
    assert plain.activity.shape == (12, 5 * 7, T)
    for coord in ("neuroid_id", "region", "channel", "x", "y", "rf_size", "stimulus_id",
                  "label", "split", "noise_std"):
        assert coord in plain.coords, coord
    assert plain.time_bin.values.tolist() == [0, 1, 2]
    for attr in ("model_config", "checkpoint_sha256", "seed", "mode", "versions", "git_commit",
                 "created"):
        assert attr in plain.attrs, attr
    plain.close()
    ds = open_recording(out)
    v1 = ds.activity.sel(region="V1")
    assert v1.dims == ("presentation", "neuroid", "time_bin") and v1.shape == (12, 7, T)
    assert set(ds.gain.sel(region="IT").neuroid_id.values) <= {f"IT.{c}.0.0" for c in range(12)}


def test_recorded_signals_equal_the_simulation(tmp_path):
    """Every recorded value is the trajectory's value at that unit, position and step."""
    model = tiny_model()
    images, labels = stimuli()
    placement = write(tmp_path / "r.nc", model, Probe(units="all"), images, labels, chunk=10)
    ds = open_recording(tmp_path / "r.nc")
    with torch.no_grad():
        traj = model.simulate(images, T, activity=True)
    v2 = ds.activity.sel(region="V2")
    for k in range(0, v2.sizes["neuroid"], 37):
        unit = v2.isel(neuroid=k)
        c, i, j = (int(v) for v in str(unit.neuroid_id.values).split(".")[1:])  # V2.c.i.j
        expected = traj.activity["V2"][:, :, c, i, j].T.numpy()  # (B, T)
        np.testing.assert_allclose(unit.values, expected, rtol=1e-6)
        gain = ds.gain.sel(region="V2").isel(neuroid=k).values
        np.testing.assert_allclose(gain, traj.gain["V2"][:, :, i, j].T.numpy(), rtol=1e-6)
    np.testing.assert_allclose(ds.activity.sel(region="IT").values,
                               traj.activity["IT"].permute(1, 2, 0).numpy(), rtol=1e-6)
    np.testing.assert_allclose(ds.agreement.sel(region="readout").values,
                               traj.agreement["readout"].permute(1, 2, 0).numpy(), rtol=1e-6)
    np.testing.assert_allclose(ds.global_query.values, traj.query.permute(1, 2, 0).numpy(), rtol=1e-6)
    np.testing.assert_allclose(ds.logits.values, traj.logits.permute(1, 2, 0).numpy(), rtol=1e-6)
    assert placement.size == ds.sizes["neuroid"] == 4 * 256 + 6 * 64 + 8 * 16 + 12 + 10


def test_receptive_field_coordinates_and_location_probe():
    model = tiny_model()
    """V1 units sit every 2 px from x = 1 (rf 4 px), V4 every 8 px from x = 4 (rf 22 px)."""
    placement = place(Probe(units="location:21,9"), model, 32)
    coords = placement.coords(model.backbone.receptive_fields(), 32)
    v1 = coords["region"] == "V1"
    assert set(coords["x"][v1]) == {21.0} and set(coords["y"][v1]) == {9.0}
    assert set(coords["rf_size"][v1]) == {4.0}
    assert (coords["channel"][v1] == np.arange(4)).all()
    v4 = coords["region"] == "V4"
    assert set(coords["x"][v4]) == {20.0} and set(coords["y"][v4]) == {12.0}
    assert set(coords["rf_size"][v4]) == {22.0}
    it = coords["region"] == "IT"
    assert it.sum() == 12 and set(coords["rf_size"][it]) == {32.0}


def test_float16_storage_keeps_float16_precision(tmp_path):
    model = tiny_model()
    images, labels = stimuli()
    write(tmp_path / "full.nc", model, Probe(units=50), images, labels)
    write(tmp_path / "half.nc", model, Probe(units=50), images, labels, float16=True)
    full, half = open_recording(tmp_path / "full.nc"), open_recording(tmp_path / "half.nc")
    for var in ("activity", "gain", "global_query"):
        np.testing.assert_allclose(half[var].values, full[var].values, rtol=2**-10, atol=1e-30)
    assert not np.array_equal(half.activity.values, full.activity.values)  # really quantised


def test_random_probe_is_reproducible_from_its_seed():
    model = tiny_model()
    pick = lambda seed: place(Probe(units=20, seed=seed), model, 32).coords(  # noqa: E731
        model.backbone.receptive_fields(), 32)["neuroid_id"]
    assert (pick(1) == pick(1)).all()
    assert not (pick(1) == pick(2)).all()


def test_appending_chunks_equals_one_write(tmp_path):
    """The same presentations written in chunks of 3 or at once give identical files."""
    model = tiny_model()
    images, labels = stimuli()
    probe = Probe(units=30)
    placement = place(probe, model, 32)
    with torch.no_grad():
        signals = trajectory_signals(model.simulate(images, T, activity=True), placement,
                                     probe.signals, list(range(T)))
    ids = [f"s{i}" for i in range(10)]
    for name, chunk in [("chunks.nc", 3), ("whole.nc", 10)]:
        with RecordingWriter(tmp_path / name, placement.coords(model.backbone.receptive_fields(), 32),
                             list(range(T)), probe.signals, 5, list("abcdefghij"),
                             ["stimulus_id", "label", "split"], {"model": "toy"}) as w:
            for i in range(0, 10, chunk):
                w.append({k: v[i:i + chunk] for k, v in signals.items()},
                         {"stimulus_id": ids[i:i + chunk], "label": labels[i:i + chunk].numpy(),
                          "split": ["val"] * len(ids[i:i + chunk])})
    a, b = xr.open_dataset(tmp_path / "chunks.nc"), xr.open_dataset(tmp_path / "whole.nc")
    xr.testing.assert_identical(a, b)
    assert a.sizes["presentation"] == 10


def test_channel_mean_and_channel_probes(tmp_path):
    model = tiny_model()
    images, labels = stimuli(4)
    write(tmp_path / "m.nc", model, Probe(units="channel-mean", signals=("activity",)), images, labels)
    ds = open_recording(tmp_path / "m.nc")
    with torch.no_grad():
        traj = model.simulate(images, T, activity=True)
    np.testing.assert_allclose(ds.activity.sel(region="V4").values,
                               traj.activity["V4"].mean((-2, -1)).permute(1, 2, 0).numpy(), rtol=1e-5)
    placement = place(Probe(units="channels:1,3"), model, 32)
    assert set(placement.regions["V2"]["channel"]) == {1, 3}
    assert len(placement.regions["V2"]["channel"]) == 2 * 64


@pytest.mark.parametrize("units, signals, regions, match", [
    ("electrode", "activity", None, "unknown unit spec"),
    ("0", "activity", None, "N >= 1"),
    ("10", "spikes", None, "unknown signal"),
    ("10", "activity", "V9", "no area V9"),
    ("channels:99", "activity", None, "channel 99 does not exist"),
    ("location:3", "activity", None, "location needs X,Y"),
])
def test_bad_probes_are_named(units, signals, regions, match):
    with pytest.raises(ProbeError, match=match):
        place(Probe.parse(units, signals, regions), tiny_model(), 32)


def test_killed_recording_leaves_no_complete_looking_file(tmp_path):
    """A writer killed half way (SIGKILL) leaves only a .partial temp file, never out.nc."""
    out = tmp_path / "out.nc"
    script = textwrap.dedent(f"""
        import os, signal, torch
        from gattanet_sim import build_model
        from gattanet_sim.recording import Presentations, Probe, RecordingWriter, place, record
        torch.manual_seed(0)
        model = build_model("toy", num_classes=10, widths=(4, 6, 8), hidden=12, key_dim=5).eval()
        placement = place(Probe(units="all"), model, 32)
        writer = RecordingWriter({str(out)!r}, placement.coords(model.backbone.receptive_fields(), 32),
                                 [0, 1], Probe().signals, 5, list("abcdefghij"),
                                 ["stimulus_id", "label", "split"], {{}})
        def stream():
            for i in range(10):
                if i == 3:
                    os.kill(os.getpid(), signal.SIGKILL)
                yield Presentations(torch.rand(4, 3, 32, 32),
                                    {{"stimulus_id": list("abcd"), "label": [0] * 4, "split": [""] * 4}})
        record(model, stream(), writer, placement, 2, [0, 1])
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -9
    assert not out.exists()
    leftovers = list(tmp_path.iterdir())
    assert leftovers and all(p.name.endswith(".partial") for p in leftovers)
    with pytest.raises(IncompleteRecording):
        open_recording(leftovers[0])


def test_error_inside_the_writer_removes_the_temporary_file(tmp_path):
    model = tiny_model()
    images, labels = stimuli(4)
    with pytest.raises(RuntimeError):
        placement = place(Probe(units=5), model, 32)
        with RecordingWriter(tmp_path / "x.nc", placement.coords(model.backbone.receptive_fields(), 32),
                             [0], ("activity",), 5, list("abcdefghij"), ["stimulus_id"], {}) as w:
            raise RuntimeError("disk on fire")
    assert list(tmp_path.iterdir()) == [] and w.n == 0


def test_record_cli_bad_inputs_are_one_line(checkpoint, tmp_path, capsys):
    out = tmp_path / "r.nc"
    assert record_cli.main([str(checkpoint), "--units", "bogus", "--out", str(out)]) == 2
    assert "unknown unit spec" in capsys.readouterr().err
    assert record_cli.main([str(checkpoint), "--time-bins", "7", "--out", str(out)]) == 2
    assert not out.exists()
    model_free = tmp_path / "nope.pt"
    assert record_cli.main([str(model_free), "--out", str(out)]) == 1


def test_gain_statistics_analysis_reads_the_recording(tmp_path):
    """analyses/gain_statistics.py: per-region numbers equal those of the simulated gains."""
    from pathlib import Path

    model = tiny_model()
    images, labels = stimuli()
    write(tmp_path / "r.nc", model, Probe(units="all", signals=("gain",)), images, labels)
    script = Path(__file__).resolve().parents[1] / "analyses" / "gain_statistics.py"
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "r.nc"), "--csv",
                           str(tmp_path / "g.csv")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    import pandas as pd

    table = pd.read_csv(tmp_path / "g.csv").set_index(["region", "time_bin"])
    with torch.no_grad():
        gain = model.simulate(images, T).gain["V4"]  # (T, B, H, W), one gain per position
    assert table.loc[("V4", 0), "mean"] == pytest.approx(1.0)
    # every channel of a position shares its gain: the mean over units is the mean over positions
    assert table.loc[("V4", 2), "mean"] == pytest.approx(gain[2].mean().item(), abs=1e-4)
    assert table.loc[("V4", 2), "sd"] == pytest.approx(gain[2].std(correction=0).item(), abs=1e-4)
    assert table.loc[("V4", 2), "change"] == pytest.approx((gain[2] - gain[1]).abs().mean().item(), abs=1e-4)
    assert pd.isna(table.loc[("V4", 0), "change"])
    from gattanet_sim.analysis.gain_statistics import query_change

    with torch.no_grad():
        q = model.simulate(images, T).query  # (T, B, d)
    import xarray as xr

    da = xr.DataArray(q.permute(1, 2, 0).numpy(), dims=("presentation", "key_dim", "time_bin"),
                      coords={"time_bin": range(T)})
    changes = query_change(da).set_index("time_bin")
    expected = ((q[2] - q[1]).norm(dim=-1) / q[1].norm(dim=-1)).mean().item()
    assert changes.loc[2, "relative_change"] == pytest.approx(expected, rel=1e-5)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "g.csv")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    write(tmp_path / "a.nc", model, Probe(units=3, signals=("activity",)), images, labels)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "a.nc")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no gain recorded" in proc.stderr


def test_channel_mean_probe_records_the_spatial_mean_of_gain_and_agreement(tmp_path):
    """channel-mean: every channel of a conv area carries its area's mean gain/agreement over
    space; dense units carry their own."""
    model = tiny_model()
    images, labels = stimuli(4)
    write(tmp_path / "m.nc", model, Probe(units="channel-mean", signals=("gain", "agreement")),
          images, labels)
    ds = open_recording(tmp_path / "m.nc")
    with torch.no_grad():
        traj = model.simulate(images, T)
    for signal in ("gain", "agreement"):
        source = getattr(traj, signal)
        for region, channels in (("V1", 4), ("V4", 8)):
            expected = source[region].mean((-2, -1)).T.numpy()  # (B, T)
            got = ds[signal].sel(region=region).values  # (B, channels, T)
            assert got.shape[1] == channels
            for c in range(channels):
                np.testing.assert_allclose(got[:, c], expected, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(ds[signal].sel(region="IT").values,
                                   source["IT"].permute(1, 2, 0).numpy(), rtol=1e-5, atol=1e-7)
    assert not np.allclose(ds.gain.sel(region="V1").values[..., 1:], 1.0)  # gains did act


def test_x_is_the_image_column_and_y_its_row(tmp_path):
    """A bright patch at column 24-25, row 2-3 of an asymmetric image: the V1 unit that answers
    most sits at x = 25, y = 3 (swapping the two would put it at x = 3, y = 25)."""
    model = tiny_model()
    with torch.no_grad():
        conv = model.areas["V1"].conv
        conv.weight.zero_()
        conv.weight[0] = 1.0  # channel 0 sums its 3x3 input over colours: a luminance detector
        if conv.bias is not None:
            conv.bias.zero_()
    image = model.backbone.mean.expand(1, 3, 32, 32).clone()  # 0 after the retina
    image[:, :, 2:4, 24:26] = 1.0
    write(tmp_path / "p.nc", model, Probe(units="channels:0", regions=["V1"], signals=("activity",)),
          image, torch.zeros(1, dtype=torch.long))
    v1 = open_recording(tmp_path / "p.nc").activity.sel(time_bin=0).isel(presentation=0)
    best = v1.isel(neuroid=int(np.argmax(v1.values)))
    assert (float(best.x), float(best.y)) == (25.0, 3.0)


def test_chosen_time_bins_record_those_steps(tmp_path):
    """--time-bins 0,2 of a 3-step run records steps 0 and 2, not the first two."""
    model = tiny_model()
    images, labels = stimuli(4)
    write(tmp_path / "t.nc", model, Probe(units=20, timesteps=[0, 2]), images, labels)
    ds = open_recording(tmp_path / "t.nc")
    assert ds.time_bin.values.tolist() == [0, 2]
    with torch.no_grad():
        traj = model.simulate(images, T, activity=True)
    steps = torch.tensor([0, 2])
    np.testing.assert_allclose(ds.logits.values, traj.logits[steps].permute(1, 2, 0).numpy(), rtol=1e-6)
    np.testing.assert_allclose(ds.global_query.values, traj.query[steps].permute(1, 2, 0).numpy(),
                               rtol=1e-6)
    np.testing.assert_allclose(ds.activity.sel(region="IT").values,
                               traj.activity["IT"][:, :, :][steps][..., ds.activity.sel(region="IT")
                                                                   .channel.values]
                               .permute(1, 2, 0).numpy(), rtol=1e-6)
    np.testing.assert_allclose(ds.gain.sel(region="readout").values,
                               traj.gain["readout"][steps][..., ds.gain.sel(region="readout")
                                                           .channel.values].permute(1, 2, 0).numpy(),
                               rtol=1e-6)


def test_cli_recording_carries_milliseconds_and_identifiers(checkpoint, tmp_path):
    """Each time bin also as time_bin_start/end in ms, per area (documented mapping)."""
    out = tmp_path / "ms.nc"
    assert record_cli.main([str(checkpoint), "--units", "2", "--limit", "3", "--out", str(out)]) == 0
    ds = open_recording(out)
    start = ds.time_bin_start.sel(region="V2").values  # (neuroid, time_bin)
    end = ds.time_bin_end.sel(region="V2").values
    np.testing.assert_allclose(start[0], [70.0, 120.0, 170.0])
    np.testing.assert_allclose(end - start, 50.0)
    np.testing.assert_allclose(ds.time_bin_start.sel(region="V1").values[0], [50.0, 100.0, 150.0])
    assert ds.attrs["identifier"] == "ms" and ds.attrs["stimulus_set_identifier"] == "stimuli.val"


def test_limit_takes_every_class_and_ids_name_positions_in_the_split(checkpoint, tmp_path):
    """--limit N: N images, as many of each class (not the first N of a class-sorted split);
    each stimulus_id is the image's position in the whole split."""
    from gattanet_sim.data import load_split

    out = tmp_path / "rec.nc"
    assert record_cli.main([str(checkpoint), "--limit", "20", "--units", "2", "--signals", "logits",
                            "--out", str(out)]) == 0
    split = load_split("stimuli", "val")
    with xr.open_dataset(out) as rec:
        positions = [int(s.rsplit("/", 1)[1]) for s in rec.stimulus_id.values]
        assert rec.label.values.tolist() == split.labels[positions].tolist()
        assert sorted(set(rec.label.values.tolist())) == list(range(10))  # 2 of each class
    assert sorted(positions) == positions and len(set(positions)) == 20


@pytest.mark.parametrize("units", ["all", "channel-mean"])
def test_recorded_gain_is_all_that_multiplied_a_unit_with_feature_gains(tmp_path, units):
    """gain_map both: a unit's recorded gain is its position's gain times its channel's."""
    model = tiny_model(gain_map="both")
    with torch.no_grad():
        for a in model.attention.feature_alpha.values():
            a.fill_(1.5)
    images, labels = stimuli(4)
    placement = write(tmp_path / "f.nc", model, Probe(units=units, regions=["V2", "IT"], signals=("gain",)),
                      images, labels)
    ds = open_recording(tmp_path / "f.nc")
    with torch.no_grad():
        traj = model.simulate(images, T)
    v2 = ds.gain.sel(region="V2")
    where = placement.regions["V2"]
    position = traj.gain["V2"]  # (T, B, H, W)
    for k in range(0, v2.sizes["neuroid"], 7):
        c = int(where["channel"][k])
        at = position.mean((-2, -1)) if units == "channel-mean" else \
            position[:, :, int(where["row"][k]), int(where["col"][k])]  # (T, B)
        expected = (at * traj.feature_gain["V2"][..., c]).T.numpy()  # (B, T)
        unit = v2.isel(neuroid=k)
        np.testing.assert_allclose(unit.values, expected, rtol=1e-5, atol=1e-6)
    it = ds.gain.sel(region="IT").values  # (B, N, T)
    np.testing.assert_allclose(it, (traj.gain["IT"] * traj.feature_gain["IT"]).permute(1, 2, 0).numpy(),
                               rtol=1e-5, atol=1e-6)

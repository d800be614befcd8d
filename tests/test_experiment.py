"""Experiments: paradigms x attention conditions -> one assembly; templates; the subject API."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from gattanet_sim import build_model, experiment
from gattanet_sim.analysis import AnalysisError
from gattanet_sim.analysis.cueing import cueing_accuracy
from gattanet_sim.analysis.paired_stimuli import attention_to_preferred
from gattanet_sim.io import atomic_save
from gattanet_sim.recording import open_recording
from gattanet_sim.stimuli import gratings, make_paradigm, two_stimulus
from gattanet_sim.subject import ModelSubject, read_stimulus_table
from gattanet_sim.templates import TemplateError, Templates, from_model, from_recording


def tiny_model(**kw):
    torch.manual_seed(0)
    return build_model("toy", num_classes=10, widths=(4, 6, 8), hidden=12, key_dim=5,
                       alpha_init=0.4, **kw).eval()


@pytest.fixture
def checkpoint(tmp_path):
    model = tiny_model()
    path = tmp_path / "tiny.pt"
    atomic_save({"model": model.state_dict(), "model_config": model.config,
                 "config": {"dataset": "stimuli", "timesteps": 2}}, path)
    return path


def run(checkpoint, out, *args) -> int:
    try:
        return experiment.main([str(checkpoint), *args, "--out", str(out)])
    except SystemExit as exit:  # argparse's usage errors
        return exit.code


def test_two_stimulus_experiment_is_one_assembly_with_conditions(checkpoint, tmp_path):
    out = tmp_path / "two.nc"
    assert run(checkpoint, out, "--paradigm", "two_stimulus", "--conditions", "bottom-up,template,off",
               "--units", "20") == 0
    ds = open_recording(out)
    assert ds.sizes["presentation"] == 24 * 4  # 6 displays x 4 phases; bottom-up, A, B, off
    table = ds[["condition", "cue", "attended", "template_id", "display"]].to_dataframe()
    counts = table.groupby(["condition", "attended"]).size().to_dict()
    assert counts == {("bottom-up", ""): 24, ("off", ""): 24, ("template", "A"): 24, ("template", "B"): 24}
    for name in ("stimulus_at_1", "stimulus_at_2", "phase", "position_a_x", "repetition"):
        assert name in ds.coords, name
    assert ds.attrs["stimulus_set_identifier"].startswith("gattanet_sim.two_stimulus.")
    assert ds.attrs["identifier"].startswith("gattanet_sim.experiment.two_stimulus.")
    # the paradigm is regenerated from the file's attributes, image for image
    again = make_paradigm(json.loads(ds.attrs["paradigm_parameters"]))
    first = ds.stimulus_id.values[:24].tolist()
    assert again.meta.stimulus_id.tolist() == first
    # template presentations were run with the recorded template as their query
    templates = Templates.from_json(ds.attrs["templates"])
    attend_a = np.flatnonzero(ds.attended.values == "A")
    np.testing.assert_allclose(ds.global_query.isel(presentation=attend_a, time_bin=0).values,
                               np.tile(templates["A"].numpy(), (len(attend_a), 1)), rtol=1e-6)
    off = np.flatnonzero(ds.condition.values == "off")
    assert (ds.gain.isel(presentation=off).values == 1).all()
    assert not (ds.gain.isel(presentation=attend_a).sel(time_bin=1).values == 1).all()


def test_the_command_in_the_attributes_writes_the_same_recording(checkpoint, tmp_path):
    out = tmp_path / "a.nc"
    assert run(checkpoint, out, "--paradigm", "gratings", "--orientations", "0,90",
               "--contrasts", "series:0.5", "--conditions", "bottom-up,template", "--trials", "2",
               "--unit-noise", "0.2", "--units", "10") == 0
    first = open_recording(out)
    argv = json.loads(first.attrs["argv"])
    argv[argv.index("--out") + 1] = str(tmp_path / "b.nc")
    assert experiment.main(argv) == 0
    second = open_recording(tmp_path / "b.nc")
    for var in ("activity", "gain", "global_query", "logits"):
        np.testing.assert_array_equal(first[var].values, second[var].values)
    assert sorted(set(first.contrast.values.tolist())) == [0.0, 0.5, 1.0]
    assert set(first.attended.values.tolist()) == {"", "0", "90"}
    # repeated trials with unit noise are new draws; the stimulus is the same
    rep = first.repetition.values
    a = first.activity.isel(presentation=np.flatnonzero(rep == 0)).values
    b = first.activity.isel(presentation=np.flatnonzero(rep == 1)).values
    assert a.shape == b.shape and not np.allclose(a, b)
    assert (first.stimulus_id.values[rep == 0] == first.stimulus_id.values[rep == 1]).all()


def test_cues_are_valid_invalid_and_neutral_per_image(checkpoint, tmp_path):
    out = tmp_path / "c.nc"
    assert run(checkpoint, out, "--paradigm", "composite", "--dataset", "stimuli", "--n", "20",
               "--conditions", "valid,neutral,invalid,off", "--template-images", "3",
               "--signals", "logits,query") == 0
    ds = open_recording(out)
    cue, target, tid = ds.cue.values, ds.target.values, ds.template_id.values
    assert (tid[cue == "valid"] == target[cue == "valid"]).all()
    assert (tid[cue == "invalid"] != target[cue == "invalid"]).all()
    assert set(tid[cue == "neutral"]) == {"neutral"} and set(ds.attended.values[cue == "neutral"]) == {"all"}
    templates = Templates.from_json(ds.attrs["templates"])
    assert len(templates.names) == 10
    neutral = np.flatnonzero(cue == "neutral")
    np.testing.assert_allclose(ds.global_query.isel(presentation=neutral, time_bin=0).values,
                               np.tile(templates.mean().numpy(), (len(neutral), 1)), rtol=1e-5)
    table = cueing_accuracy(ds)
    assert set(table.cue) == {"valid", "neutral", "invalid", "none"}
    assert ((table.ci_low <= table.accuracy) & (table.accuracy <= table.ci_high)).all()
    assert (table.images == 20).all()


def test_templates_from_a_recording_equal_templates_on_the_fly(checkpoint, tmp_path):
    model = tiny_model()
    stimuli = two_stimulus()
    alone = stimuli.meta.target != ""
    on_the_fly = from_model(model, stimuli.images[torch.from_numpy(alone.to_numpy().copy())],
                            stimuli.meta.target[alone])
    out = tmp_path / "r.nc"
    assert run(checkpoint, out, "--paradigm", "two_stimulus", "--conditions", "off",
               "--signals", "query") == 0
    ds = open_recording(out)
    recorded = from_recording(ds.where(ds.target != "", drop=True), by="target", condition="off")
    for name in ("A", "B"):
        torch.testing.assert_close(recorded[name], on_the_fly[name], rtol=1e-5, atol=1e-7)
    path = on_the_fly.save(tmp_path / "t.json")
    loaded = Templates.load(path)
    assert loaded.names == ["A", "B"] and torch.equal(loaded["A"], on_the_fly["A"])
    with pytest.raises(TemplateError, match="not a templates file"):
        Templates.from_json("{}")
    with pytest.raises(TemplateError, match="no global_query"):
        from_recording(ds.drop_vars("global_query"), by="target")


@pytest.mark.parametrize("args, match", [
    (["--paradigm", "gratings", "--conditions", "sideways"], "unknown condition"),
    (["--paradigm", "two_stimulus", "--orientations", "0,90"], "does not apply"),
    (["--paradigm", "gratings", "--contrasts", "0,1.5"], "contrast"),
    (["--paradigm", "two_stimulus", "--locations", "0,0;0.5,0"], "apart"),
    (["--paradigm", "two_stimulus", "--attend", "C"], "no template C"),
    (["--paradigm", "gratings", "--conditions", "valid", "--template-by", "nonsense"], "no column"),
    (["--paradigm", "gratings", "--beta", "2"], "beta"),
    (["--paradigm", "gratings", "--contrasts", "series:0"], "series"),
])
def test_bad_experiment_arguments_are_one_line(checkpoint, tmp_path, capsys, args, match):
    out = tmp_path / "x.nc"
    code = run(checkpoint, out, *args)
    err = capsys.readouterr().err
    assert code == 2 and match in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob("*.partial"))


def test_subject_looks_at_stimuli_as_brainscore_models_do(tmp_path):
    model = tiny_model()
    subject = ModelSubject(model, timesteps=3)
    subject.start_recording("V4", time_bins=[(90, 140), (190, 240), (140, 190)])
    stimuli = gratings(orientations=(0, 90), image_size=32)
    assembly = subject.look_at(stimuli, number_of_trials=2)
    assert assembly.dims == ("presentation", "neuroid", "time_bin")
    assert assembly.sizes["presentation"] == 4 and assembly.sizes["neuroid"] == 8 * 4 * 4
    assert assembly.timestep.values.tolist() == [0, 2, 1]
    assert assembly.time_bin_start.values.tolist() == [90, 190, 140]
    with torch.no_grad():
        traj = model.simulate(stimuli.images, 3, activity=True)
    unit = assembly.isel(neuroid=5)
    c, i, j = (int(v) for v in str(unit.neuroid_id.values).split(".")[1:])
    np.testing.assert_allclose(unit.values[:2, 1], traj.activity["V4"][2, :, c, i, j].numpy(), rtol=1e-6)
    assert set(assembly.orientation.values.tolist()) == {0.0, 90.0}
    # the same stimuli exported as Brain-Score's CSV + PNGs give the same answer (8-bit images)
    table = read_stimulus_table(stimuli.to_brainscore(tmp_path / "set"))
    again = subject.look_at(table)
    np.testing.assert_allclose(again.values, assembly.values[:2], atol=0.05)
    with pytest.raises(ValueError, match="no region"):
        subject.start_recording("MT", [(0, 50)])


def _planted_pairs(ratio: float = 1.3) -> xr.Dataset:
    """A two-stimulus assembly whose units prefer A and respond `ratio` x more when A is
    attended in the pair display than when B is, and as much as off when B is."""
    rows, values = [], []
    rng = np.random.default_rng(0)
    units = 40
    base = rng.uniform(1, 2, units)
    for condition, attended in (("off", ""), ("template", "A"), ("template", "B")):
        for s1, s2 in (("A", ""), ("", "A"), ("B", ""), ("", "B"), ("A", "B"), ("B", "A")):
            response = base * (1.0 if "A" in (s1, s2) else 0.5)
            if s1 and s2 and attended == "A":
                response = response * ratio
            rows.append((s1, s2, condition, attended))
            values.append(response)
    pres = pd.DataFrame(rows, columns=["stimulus_at_1", "stimulus_at_2", "condition", "attended"])
    data = np.array(values)[:, :, None]  # (presentation, neuroid, 1)
    return xr.Dataset(
        {"activity": (("presentation", "neuroid", "time_bin"), data)},
        coords={**{c: ("presentation", pres[c].to_numpy()) for c in pres.columns},
                "region": ("neuroid", np.array(["V4"] * units)), "time_bin": [1]})


def test_attention_to_preferred_recovers_a_planted_ratio():
    table = attention_to_preferred(_planted_pairs(1.3)).set_index("region")
    assert table.loc["V4", "preferred_over_other"] == pytest.approx(1.3)
    assert table.loc["V4", "preferred_over_off"] == pytest.approx(1.3)
    assert table.loc["V4", "samples"] == 80
    low, high = table.loc["V4", ["preferred_over_other_ci_low", "preferred_over_other_ci_high"]]
    assert low <= 1.3 <= high
    with pytest.raises(AnalysisError, match="needs coordinate 'condition'"):
        attention_to_preferred(_planted_pairs().drop_vars("condition"))


def test_centred_templates_keep_the_mean_and_scale_what_sets_them_apart():
    raw = Templates({"a": torch.tensor([1.0, 1.0, 0.1]), "b": torch.tensor([1.0, 1.0, -0.1])})
    assert raw.cosines()["mean"] == pytest.approx(0.99, abs=0.01)  # nearly one vector
    centred = raw.centred(0.0)
    assert torch.equal(centred["a"], raw.mean()) and torch.equal(centred["b"], raw.mean())
    far = raw.centred(20.0)  # q_bar + 20 (q_c - q_bar): by hand
    torch.testing.assert_close(far["a"], torch.tensor([1.0, 1.0, 2.0]))
    torch.testing.assert_close(far.mean(), raw.mean())  # the neutral cue does not move
    assert far.cosines()["mean"] == pytest.approx(-1 / 3)  # (1 + 1 - 4) / 6 by hand
    assert far.cosines()["matrix"][0][0] == pytest.approx(1.0)
    assert far.source["centring"] == 20.0
    with pytest.raises(TemplateError, match="finite"):
        raw.centred(float("nan"))


def test_experiment_centres_templates_and_reports_their_cosines(checkpoint, tmp_path):
    out = tmp_path / "c.nc"
    assert run(checkpoint, out, "--paradigm", "gratings", "--orientations", "0,45,90",
               "--conditions", "valid,neutral", "--units", "5", "--template-centring", "3") == 0
    ds = open_recording(out)
    templates = Templates.from_json(ds.attrs["templates"])
    assert templates.source["centring"] == 3.0
    cosines = json.loads(ds.attrs["template_cosines"])
    assert cosines["names"] == templates.names
    assert float(ds.attrs["template_cosine_mean"]) == pytest.approx(templates.cosines()["mean"])
    raw = tmp_path / "r.nc"
    assert run(checkpoint, raw, "--paradigm", "gratings", "--orientations", "0,45,90",
               "--conditions", "valid", "--units", "5") == 0
    raw_templates = Templates.from_json(open_recording(raw).attrs["templates"])
    for name in templates.names:  # q_bar + 3 (q_c - q_bar), from the raw ones of the same run
        expected = raw_templates.mean() + 3 * (raw_templates[name] - raw_templates.mean())
        torch.testing.assert_close(templates[name], expected, rtol=1e-5, atol=1e-6)

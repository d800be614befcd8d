"""The reference model: a gain set from tuning (Lindsay & Miller 2018), on a trained backbone."""

import json

import numpy as np
import pytest
import torch
import xarray as xr

from gattanet_sim import experiment, reference, train
from gattanet_sim.attention import QuerySource
from gattanet_sim.evaluate import load_checkpoint
from gattanet_sim.reference import TunedGain, first_sweep_statistics

TINY = ["--dataset", "stimuli", "--widths", "4,8,8", "--hidden", "16", "--key-dim", "4",
        "--batch-size", "32", "--train-limit", "96", "--quiet"]


def test_the_gain_is_one_plus_beta_times_the_z_scored_tuning():
    region = TunedGain({"V1": ("conv", 3), "V2": ("conv", 2), "IT": ("dense", 5)}, beta=0.5)
    assert region.key_dim == 5 and region.gained == ["V1", "V2"]  # dense areas are not gained
    templates = torch.tensor([[1.0, 2.0, 0.0, 4.0, 1.0],
                              [3.0, 2.0, 2.0, 0.0, 1.0]])  # (K=2, d): two groups' channel means
    query = templates[:1]  # attend group 0
    assert torch.equal(region.feature_gain("V1", query), torch.ones(1, 3))  # uncalibrated: no gain
    region.calibrate(templates)
    # z over groups: channel 0 is (1 - 2) / 1 = -1, channel 1 does not vary (f = 0), channel 2 is -1
    assert torch.allclose(region.feature_gain("V1", query), torch.tensor([[0.5, 1.0, 0.5]]))
    assert torch.allclose(region.feature_gain("V2", query), torch.tensor([[1.5, 1.0]]))
    assert torch.allclose(region.feature_gain("V1", templates.mean(0, keepdim=True)), torch.ones(1, 3))
    strong = TunedGain({"V1": ("conv", 3)}, beta=3.0)
    strong.calibrate(templates[:, :3])
    assert strong.feature_gain("V1", templates[:1, :3]).min() == 0  # clamped: a rate stays >= 0


def test_the_query_is_every_conv_channel_s_spatial_mean():
    region = TunedGain({"V1": ("conv", 2), "V2": ("conv", 3)})
    rates = {"V1": torch.rand(4, 2, 6, 6), "V2": torch.rand(4, 3, 3, 3), "readout": torch.rand(4, 10)}
    state = region.observe(rates, QuerySource())
    expected = torch.cat([rates["V1"].mean(dim=(2, 3)), rates["V2"].mean(dim=(2, 3))], dim=1)  # (4, 5)
    assert torch.allclose(state.query, expected)


def test_first_sweep_statistics_copy_step_zero_to_every_step():
    state = {"a.running_mean": torch.arange(6.0).view(3, 2), "a.weight": torch.ones(2)}
    out = first_sweep_statistics(state)
    assert torch.equal(out["a.running_mean"], torch.tensor([[0.0, 1.0]] * 3))
    assert torch.equal(out["a.weight"], state["a.weight"])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    assert train.main([*TINY, "--epochs", "1", "--timesteps", "2", "--out-dir", str(root / "run")]) == 0
    assert reference.main([str(root / "run"), "--out", str(root / "reference")]) == 0
    return root


def test_the_reference_keeps_the_trained_backbone_and_neutral_is_the_plain_network(runs):
    trained, _, _ = load_checkpoint(runs / "run", torch.device("cpu"))
    model, config, _ = load_checkpoint(runs / "reference", torch.device("cpu"))
    assert isinstance(model.attention, TunedGain) and config["reference"]["beta"] == reference.BETA
    conv = model.backbone.areas["V1"].conv.weight
    assert torch.equal(conv, trained.backbone.areas["V1"].conv.weight)
    images = torch.rand(6, 3, *([trained.backbone.image_size] * 2))
    model.eval()
    templates = torch.rand(3, model.attention.key_dim)  # (K, d)
    model.attention.calibrate(templates)
    off = model.simulate(images, 2, activity=True, query="off").activity
    neutral = model.simulate(images, 2, activity=True, query=templates.mean(0)).activity
    for area in off:
        assert torch.allclose(off[area], neutral[area], atol=1e-6), area


def test_a_valid_cue_raises_responses_over_an_invalid_one_in_the_reference(runs, tmp_path):
    """The positive control: attention built in must show in the very analysis the card reads."""
    from gattanet_sim.analysis.modulation_index import modulation_index

    out = tmp_path / "crf.nc"
    assert experiment.main([str(runs / "reference"), "--paradigm", "gratings", "--orientations", "0,45,90,135",
                            "--spatial-frequencies", "0.5", "--phases", "0,90,180,270", "--contrasts", "1",
                            "--conditions", "valid,neutral,invalid", "--units", "all", "--out", str(out)]) == 0
    with xr.open_dataset(out) as ds:
        assert json.loads(ds.attrs["model_config"])["attention_kind"] == "tuned"
        table = modulation_index(ds.load(), {"cue": "valid"}, {"cue": "invalid"})
    last = table[table.time_bin == table.time_bin.max()].set_index("region")
    assert (last.loc[["V1", "V2", "V4"], "ratio_ci_low"] > 1).all()


def test_the_reference_cli_refuses_to_replace_a_trained_run(runs, capsys):
    assert reference.main([str(runs / "reference"), "--out", str(runs / "run")]) == 2
    assert "not a reference checkpoint" in capsys.readouterr().err
    assert reference.main([str(runs / "run"), "--beta", "-1", "--out", str(runs / "x")]) == 2
    assert np.isfinite(reference.BETA)

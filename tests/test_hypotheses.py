"""Hypotheses as simulator options: feedback delays per area and shared, slow unit noise."""

from __future__ import annotations

import json

import pytest
import torch
from test_cli import run_train
from test_dynamics import stimuli, tiny
from test_experiment import checkpoint, run  # noqa: F401  (a fixture and the CLI runner)

from gattanet_sim import train
from gattanet_sim.dynamics import GAttANet, feedback_delays, parse_feedback_delays
from gattanet_sim.evaluate import load_checkpoint
from gattanet_sim.models import from_config

AREAS = ["V1", "V2", "V4", "IT", "readout"]


def trajectory(model: GAttANet, timesteps: int, seed: int = 5):
    """A seeded simulation of 3 random images with every rate kept."""
    torch.manual_seed(seed)
    with torch.no_grad():
        return model.simulate(stimuli(), timesteps, activity=True)


def equal(a, b) -> bool:
    """Two trajectories are the same numbers, bit for bit."""
    pairs = [(a.logits, b.logits), (a.query, b.query)]
    for field in ("gain", "feature_gain", "agreement", "activity"):
        x, y = getattr(a, field), getattr(b, field)
        if x.keys() != y.keys():
            return False
        pairs += [(x[k], y[k]) for k in x]
    return all(torch.equal(x, y) for x, y in pairs)


def first_gained(gain: torch.Tensor) -> int | None:
    """The first step whose gain (T, B, ...) is not exactly 1 everywhere."""
    return next((t for t in range(len(gain)) if not torch.equal(gain[t], torch.ones_like(gain[t]))), None)


def ungated(model: GAttANet, monkeypatch) -> None:
    """The simulator as it was before feedback delays: no area's gain is ever held back."""
    monkeypatch.setattr(model, "feedback_onset", lambda index: 0)


def old_noise(model: GAttANet, monkeypatch) -> None:
    """The simulator's unit noise as it was before shared noise: one draw per unit and step."""
    def noisy(name, drive, held):
        return drive + model.noise_std * torch.randn_like(drive) if model.noise_std > 0 else drive
    monkeypatch.setattr(model, "_noisy", noisy)


# ----------------------------------------------------------------------- feedback delays
@pytest.mark.parametrize("options", [
    {"mode": "cascade", "noise_std": 0.1},
    {"mode": "cascade", "keys": "current"},
    {"mode": "cascade", "gain_tau": 2.0, "gain_map": "both"},
    {"timesteps": 4, "noise_std": 0.1},
])
@pytest.mark.parametrize("zeros", [None, [0] * 5, {"V2": 0}, "0,0,0,0,0"])
def test_zero_delays_reproduce_the_simulator_without_delays(options, zeros, monkeypatch):
    """All delays 0, however given, is the simulator without delays, bit for bit."""
    timesteps = 7 if options.get("mode") == "cascade" else 4
    delayed = tiny(alpha=2.0, feedback_delays=zeros, **options)
    before = tiny(alpha=2.0, **options)
    ungated(before, monkeypatch)
    assert delayed.feedback_delays == dict.fromkeys(AREAS, 0)
    assert equal(trajectory(delayed, timesteps), trajectory(before, timesteps))


@pytest.mark.parametrize("mode, area, delay, keys", [
    ("cascade", "V2", 2, "previous"), ("cascade", "IT", 1, "previous"),
    ("cascade", "V1", 3, "current"), ("cascade", "V4", 2, "current"), ("sweep", "V4", 3, "previous"),
])
def test_a_delayed_area_keeps_gain_one_until_its_new_onset(mode, area, delay, keys):
    """An area with delay d is first gained d steps later than without: first_step + 1 + d
    with previous keys (first_step + d, not before step 1, with current ones); its gain is
    exactly 1 before, the feature gain too, and its rate the ungained one up to then."""
    options = {"mode": mode, "keys": keys, "gain_map": "both", "timesteps": 9}
    plain = tiny(alpha=5.0, **options)
    model = tiny(alpha=5.0, feedback_delays={area: delay}, **options)
    with torch.no_grad():
        for a in model.attention.feature_alpha.values():
            a.fill_(5.0)
        for a in plain.attention.feature_alpha.values():
            a.fill_(5.0)
    i = AREAS.index(area)
    first = i if mode == "cascade" else 0
    onset = first + delay + 1 if keys == "previous" else max(first, 1) + delay
    assert model.feedback_onset(i) == onset == plain.feedback_onset(i) + delay
    traj, before = trajectory(model, 10), trajectory(plain, 10)
    assert first_gained(before.gain[area]) == onset - delay
    assert first_gained(traj.gain[area]) == onset
    assert first_gained(traj.feature_gain[area]) == onset
    assert all(first_gained(traj.gain[area][t:t + 1]) == 0 for t in range(onset, 10))  # gained after
    for name in AREAS:
        if name != area:
            assert first_gained(traj.gain[name]) == first_gained(before.gain[name]), name


def test_higher_areas_first_as_the_docstring_says():
    """Cascade with delays 8,6,4,2,0: the read-out is gained from step 5, IT 6, V4 7, V2 8, V1 9."""
    model = tiny(alpha=5.0, mode="cascade", feedback_delays="8,6,4,2,0", timesteps=10)
    traj = trajectory(model, 10)
    assert [first_gained(traj.gain[name]) for name in AREAS] == [9, 8, 7, 6, 5]
    same = tiny(alpha=5.0, mode="cascade", feedback_delays="4,3,2,1,0", timesteps=10)
    assert {first_gained(g) for g in trajectory(same, 10).gain.values()} == {5}


def test_delays_are_kept_in_the_config_and_rebuilt():
    model = tiny(mode="cascade", feedback_delays="IT=2")
    assert model.config["feedback_delays"] == {"V1": 0, "V2": 0, "V4": 0, "IT": 2, "readout": 0}
    saved = json.loads(json.dumps(model.config))  # as a checkpoint keeps it
    assert from_config(saved).feedback_delays == model.feedback_delays
    assert "feedback_delays" not in tiny().config and "shared_noise" not in tiny().config


@pytest.mark.parametrize("value, match", [
    ([0, 0, -1, 0, 0], "integers >= 0"), ("0,0,-1,0,0", "integers >= 0"),
    ([0, 1], "one value per area"), ("1,2,3", "one value per area"),
    ([0, 0, 1.5, 0, 0], "integers >= 0"), ([0, 0, 1.0, 0, 0], "integers >= 0"),
    ("0,0,x,0,0", "integers >= 0"), ([True, 0, 0, 0, 0], "integers >= 0"),
    ({"V9": 1}, "unknown area"), ("V1=1,2", "AREA=D"), ("", "integers >= 0"), (3, "one value per area"),
])
def test_bad_delays_are_one_line_value_errors(value, match):
    with pytest.raises(ValueError, match=match) as err:
        tiny(feedback_delays=value)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match=match):
        feedback_delays(AREAS, value)


def test_delay_text_is_a_list_or_a_mapping():
    assert parse_feedback_delays("3, 2,1,0 ,0") == [3, 2, 1, 0, 0]
    assert parse_feedback_delays("V1=2, IT=1") == {"V1": 2, "IT": 1}
    assert feedback_delays(AREAS, {"IT": 1}) == (0, 0, 0, 1, 0)


# -------------------------------------------------------------------------- shared noise
@pytest.mark.parametrize("mode", ["sweep", "cascade"])
def test_zero_shared_noise_reproduces_the_independent_draws(mode, monkeypatch):
    """rho = 0 makes the same draws as the simulator before shared noise (same seed)."""
    timesteps = 6 if mode == "cascade" else 3
    model = tiny(alpha=2.0, mode=mode, noise_std=0.2, shared_noise=0.0)
    before = tiny(alpha=2.0, mode=mode, noise_std=0.2)
    old_noise(before, monkeypatch)
    assert equal(trajectory(model, timesteps), trajectory(before, timesteps))
    other = tiny(alpha=2.0, mode=mode, noise_std=0.2, shared_noise=0.5)
    assert not torch.equal(trajectory(other, timesteps).logits, trajectory(model, timesteps).logits)


@pytest.mark.parametrize("shape", [(4000, 2), (4000, 2, 3, 3)])
def test_shared_noise_correlates_units_by_rho_at_the_same_variance(shape):
    """Over many trials two units' noise correlates by rho and each has variance noise_std^2,
    for dense (B, N) and conv (B, C, H, W) drives."""
    sigma, rho = 0.3, 0.5
    model = tiny(noise_std=sigma, shared_noise=rho)
    torch.manual_seed(3)
    noise = model._noisy("V1", torch.zeros(shape, dtype=torch.float64), {}).flatten(1)  # (B, units)
    a, b = noise[:, 0], noise[:, -1]
    r = torch.corrcoef(torch.stack([a, b]))[0, 1]
    assert abs(r - rho) < 0.05
    assert (noise.var(dim=0) / sigma**2 - 1).abs().max() < 0.1
    independent = tiny(noise_std=sigma)._noisy("V1", torch.zeros(shape, dtype=torch.float64), {})
    assert abs(torch.corrcoef(independent.flatten(1)[:, [0, -1]].T)[0, 1]) < 0.05


def test_shared_component_is_held_over_the_timesteps_of_a_trial():
    """With rho = 1 the noise is the shared draw alone: within a trial the same on every
    read-out unit at every step, and another one in every trial (batch row)."""
    model = tiny(noise_std=0.3, shared_noise=1.0, timesteps=4)
    with torch.no_grad():
        model.areas["readout"].linear.weight.zero_()
        bias = model.areas["readout"].linear.bias.clone()
    torch.manual_seed(7)
    with torch.no_grad():
        traj = model.simulate(stimuli(batch=1).expand(50, -1, -1, -1), timesteps=4)
    noise = traj.logits - bias  # (T, B, classes)
    assert torch.allclose(noise, noise[:1, :, :1].expand_as(noise), atol=1e-12, rtol=0)
    assert noise[0, :, 0].std() > 0.2  # varies between trials


def test_shared_noise_keeps_the_independent_part_fresh_each_step():
    """rho = 0.5: the held part is the same at every step of a trial, the rest is drawn anew."""
    model = tiny(noise_std=1.0, shared_noise=0.5)
    held, drive = {}, torch.zeros(2000, 3, dtype=torch.float64)  # (B, N)
    torch.manual_seed(0)
    steps = torch.stack([model._noisy("IT", drive, held) for _ in range(3)])  # (T, B, N)
    shared = held["shared noise:IT"]  # (B, 1)
    assert shared.shape == (2000, 1)
    rest = (steps - 0.5**0.5 * shared) / 0.5**0.5  # (T, B, N): the independent draws
    assert abs(torch.corrcoef(rest[:2, :, 0])[0, 1]) < 0.08 and abs(rest.std() - 1) < 0.05


@pytest.mark.parametrize("rho", [-0.1, 1.5, float("nan"), "0.5", True])
def test_bad_shared_noise_is_a_one_line_value_error(rho):
    with pytest.raises(ValueError, match=r"shared_noise must be a fraction in \[0, 1\]"):
        tiny(shared_noise=rho)
    with pytest.raises(ValueError, match="fraction"):
        tiny().shared_noise = rho


# -------------------------------------------------------------------------- command lines
def test_experiment_overrides_and_records_the_hypotheses(checkpoint, tmp_path):  # noqa: F811
    from gattanet_sim.recording import open_recording

    out = tmp_path / "h.nc"
    assert run(checkpoint, out, "--paradigm", "gratings", "--orientations", "0,90", "--units", "8",
               "--unit-noise", "0.1", "--shared-noise", "0.4", "--feedback-delays", "V1=1",
               "--timesteps", "3") == 0
    ds = open_recording(out)
    assert float(ds.attrs["shared_noise"]) == 0.4 and float(ds.attrs["unit_noise"]) == 0.1
    assert json.loads(ds.attrs["feedback_delays"]) == {"V1": 1, "V2": 0, "V4": 0, "IT": 0, "readout": 0}
    v1 = ds.gain.isel(presentation=ds.condition.values == "template").sel(region="V1")
    assert (v1.sel(time_bin=1).values == 1).all() and not (v1.sel(time_bin=2).values == 1).all()
    plain = tmp_path / "p.nc"
    assert run(checkpoint, plain, "--paradigm", "gratings", "--orientations", "0,90", "--units", "8") == 0
    ds = open_recording(plain)
    assert float(ds.attrs["shared_noise"]) == 0.0 and json.loads(ds.attrs["feedback_delays"])["V1"] == 0


@pytest.mark.parametrize("args, match", [
    (["--feedback-delays", "1,2"], "one value per area"),
    (["--feedback-delays", "0,-1,0,0,0"], "integers >= 0"),
    (["--feedback-delays", "0,0.5,0,0,0"], "integers >= 0"),
    (["--shared-noise", "1.5", "--unit-noise", "0.1"], "fraction in [0, 1]"),
    (["--shared-noise", "0.5"], "--unit-noise"),
])
def test_bad_hypotheses_on_the_experiment_line_are_one_line(checkpoint, tmp_path, capsys,  # noqa: F811
                                                            args, match):
    out = tmp_path / "x.nc"
    code = run(checkpoint, out, "--paradigm", "gratings", *args)
    err = capsys.readouterr().err
    assert code == 2 and match in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_train_saves_the_hypotheses_and_refuses_bad_ones(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_train(out, "--epochs", "1", "--train-limit", "32", "--mode", "cascade", "--timesteps", "5",
                     "--noise-std", "0.1", "--shared-noise", "0.3", "--feedback-delays", "1,0,0,0,0") == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["feedback_delays"] == [1, 0, 0, 0, 0] and saved["shared_noise"] == 0.3
    model, _, _ = load_checkpoint(out, torch.device("cpu"))
    assert model.feedback_delays["V1"] == 1 and model.shared_noise == 0.3
    assert run_train(tmp_path / "bad", "--feedback-delays", "1,0") == 2
    assert "one value per area" in capsys.readouterr().err
    for argv, needle in ((["--feedback-delays", "-1"], "integers >= 0"),
                         (["--shared-noise", "0.5"], "--noise-std"),
                         (["--shared-noise", "2", "--noise-std", "0.1"], "[0, 1]")):
        with pytest.raises(SystemExit) as exit:
            train.parse_args(argv)
        assert exit.value.code == 2 and needle in capsys.readouterr().err

"""The simulator: the network as a dynamical system over T timesteps (sweep and cascade)."""

from __future__ import annotations

import math

import pytest
import torch

from gattanet_sim import build_model
from gattanet_sim.models import from_config

ATOL = 1e-9
GAINED = ("V1", "V2", "V4", "IT", "readout")


# ----------------------------------------------------------------------------- helpers
def tiny(alpha: float = 0.0, double: bool = True, **options):
    """A tiny toy model (16x16 images, 3 classes), eval mode, every alpha set to `alpha`."""
    torch.manual_seed(0)
    model = build_model("toy", num_classes=3, widths=(4, 6, 8), hidden=5, key_dim=3,
                        image_size=16, **options)
    model = (model.double() if double else model).eval()
    if model.attention is not None:
        with torch.no_grad():
            for a in model.attention.alpha.values():
                a.fill_(alpha)
    return model


def stimuli(batch: int = 3, seed: int = 1, dtype=torch.float64) -> torch.Tensor:
    torch.manual_seed(seed)
    return torch.rand(batch, 3, 16, 16, dtype=dtype)


def close(a: torch.Tensor, b: torch.Tensor, atol: float = ATOL) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, atol=atol, rtol=1e-9)


# ------------------------------------------------------------------------------- basics
def test_full_size_toy_output_shape():
    """The paper's toy model (64/128/256 channels, d=16) maps CIFAR images to 10 logits."""
    torch.manual_seed(0)
    model = build_model("toy", num_classes=10)
    with torch.no_grad():
        logits = model(torch.randn(8, 3, 32, 32), timesteps=4)
    assert logits.shape == (8, 10)
    assert torch.isfinite(logits).all()


def test_trajectory_shapes():
    """Every recorded quantity is stacked over time first: (T, B, ...)."""
    model = tiny(alpha=0.5)
    with torch.no_grad():
        traj = model.simulate(stimuli(batch=2), timesteps=3, activity=True)
    assert traj.timesteps == 3
    assert traj.logits.shape == (3, 2, 3)
    assert traj.query.shape == (3, 2, 3)
    maps = {"V1": (8, 8), "V2": (4, 4), "V4": (2, 2), "IT": (5,), "readout": (3,)}
    rates = {"V1": (4, 8, 8), "V2": (6, 4, 4), "V4": (8, 2, 2), "IT": (5,), "readout": (3,)}
    assert set(traj.agreement) == set(traj.gain) == set(GAINED)
    for name in GAINED:
        assert traj.agreement[name].shape == (3, 2, *maps[name]), name
        assert traj.gain[name].shape == (3, 2, *maps[name]), name
        assert traj.activity[name].shape == (3, 2, *rates[name]), name
        assert traj.area_queries[name].shape == (3, 2, 3), name
    assert close(traj.logits[-1], model(stimuli(batch=2), timesteps=3).detach())


def test_simulate_without_activity_records_none():
    """activity=False (default) records no rates but still logits, query, gains."""
    traj = tiny().simulate(stimuli(batch=2), timesteps=2)
    assert traj.activity == {}
    assert traj.logits.shape == (2, 2, 3) and traj.query is not None


# ------------------------------------------------------------- reduction to the backbone
@pytest.mark.parametrize("attention", [True, False])
def test_zero_alpha_every_step_is_the_plain_backbone(attention):
    """alpha = 0 (or no attention region): every timestep's logits = backbone(images)."""
    model, x = tiny(attention=attention), stimuli()
    with torch.no_grad():
        plain = model.backbone(x)
        traj = model.simulate(x, timesteps=4)
        for t in range(4):
            assert close(traj.logits[t], plain), t
        assert close(model(x, timesteps=4), model(x, timesteps=1))
        assert close(model(x, timesteps=1), plain)
    assert (traj.query is None) == (not attention)


def test_sweep_first_step_is_plain_backbone_even_with_attention():
    """Sweep T = 1: no gain has been computed yet, so alpha != 0 changes nothing."""
    model, x = tiny(alpha=5.0), stimuli()
    with torch.no_grad():
        assert close(model(x, timesteps=1), model.backbone(x))


def test_nonzero_alpha_changes_later_steps():
    """Sweep with alpha != 0: the gain from step 0 changes step 1's logits (T=2 != T=1)."""
    model, x = tiny(alpha=5.0), stimuli()
    with torch.no_grad():
        one, two = model(x, timesteps=1), model(x, timesteps=2)
    assert (one - two).abs().max() > 1e-4


# ------------------------------------------------------------------------------- cascade
def test_cascade_readout_silent_until_input_arrives():
    """Cascade: area i first fires at t = i; the read-out (i = 4) is zeros before t = 4."""
    model, x = tiny(alpha=0.5, mode="cascade"), stimuli()
    with torch.no_grad():
        traj = model.simulate(x, timesteps=6, activity=True)
    assert torch.equal(traj.logits[:4], torch.zeros_like(traj.logits[:4]))
    assert traj.logits[4].abs().sum() > 0
    for i, name in enumerate(GAINED):
        silent = traj.activity[name][:i]
        assert torch.equal(silent, torch.zeros_like(silent)), name
        assert traj.activity[name][i].abs().sum() > 0, name
        assert torch.equal(traj.gain[name][: i + 1], torch.ones_like(traj.gain[name][: i + 1]))


def test_cascade_requires_arrival_steps():
    """Cascade forward() needs n_areas = 5 steps: T = 3 raises, T = 5 works."""
    model, x = tiny(mode="cascade"), stimuli()
    assert model.arrival_steps == 5
    with pytest.raises(ValueError):
        model(x, timesteps=3)
    with pytest.raises(ValueError):
        model(x, timesteps=4)
    with torch.no_grad():
        assert model(x, timesteps=5).shape == (3, 3)


def test_cascade_zero_alpha_equals_backbone_after_arrival():
    """Cascade, alpha = 0: once the input reaches the read-out (t >= 4) it is the backbone."""
    model, x = tiny(mode="cascade"), stimuli()
    with torch.no_grad():
        plain = model.backbone(x)
        traj = model.simulate(x, timesteps=6)
    for t in (4, 5):
        assert close(traj.logits[t], plain), t


def test_cascade_first_wave_is_feedforward_then_gain_acts():
    """Cascade with previous keys: the first wave (t = 4) met no gain (each area's keys of
    the step before were silent), so it is the backbone; at t = 5 V1's gained output arrives."""
    model, x = tiny(alpha=5.0, mode="cascade"), stimuli()
    with torch.no_grad():
        plain = model.backbone(x)
        traj = model.simulate(x, timesteps=6)
    assert close(traj.logits[4], plain)
    assert (traj.logits[5] - plain).abs().max() > 1e-4


# --------------------------------------------------------------------------------- noise
def test_noise_is_random_but_seedable():
    """noise_std > 0: two runs differ; the same torch seed gives the same run."""
    model, x = tiny(alpha=0.5, noise_std=0.1), stimuli()
    with torch.no_grad():
        first, second = model(x, timesteps=2), model(x, timesteps=2)
        assert (first - second).abs().max() > 1e-6
        torch.manual_seed(123)
        a = model(x, timesteps=2)
        torch.manual_seed(123)
        b = model(x, timesteps=2)
    assert torch.equal(a, b)


@pytest.mark.parametrize("attention", [True, False])
def test_no_noise_is_deterministic(attention):
    """noise_std = 0: the simulation is a deterministic function of the images."""
    model, x = tiny(alpha=0.5, attention=attention), stimuli()
    with torch.no_grad():
        torch.manual_seed(1)
        a = model(x, timesteps=3)
        torch.manual_seed(2)
        b = model(x, timesteps=3)
    assert torch.equal(a, b)


def test_noise_varies_across_identical_trials():
    """Noise is per trial: a batch of identical images gives different logits per image."""
    model = tiny(noise_std=0.2)
    x = stimuli(batch=1).expand(4, -1, -1, -1)
    with torch.no_grad():
        logits = model(x, timesteps=2)
    assert logits.std(dim=0).min() > 1e-3
    noiseless = tiny(noise_std=0.0)
    with torch.no_grad():
        flat = noiseless(x, timesteps=2)
    assert torch.allclose(flat, flat[:1].expand_as(flat), atol=1e-12)


def test_readout_drive_noise_has_the_requested_std():
    """With the read-out's weights at 0 its drive is bias + N(0, sigma^2) on every unit,
    every step: the logits' empirical mean is the bias and their sd is sigma."""
    sigma = 0.3
    model = tiny(noise_std=sigma)
    with torch.no_grad():
        model.areas["readout"].linear.weight.zero_()
        bias = model.areas["readout"].linear.bias.clone()
        torch.manual_seed(7)
        traj = model.simulate(stimuli(batch=1).expand(200, -1, -1, -1), timesteps=2)
    noise = traj.logits - bias  # (T, B, classes): 1200 samples
    assert noise.mean().abs() < 4 * sigma / noise.numel() ** 0.5
    assert abs(noise.std().item() / sigma - 1) < 0.1
    assert (noise[0] - noise[1]).abs().min() > 0  # fresh noise each step


def test_noise_also_acts_without_attention():
    """With attention off the sweeps are not a frozen copy when noise is on."""
    model, x = tiny(attention=False, noise_std=0.1), stimuli()
    with torch.no_grad():
        traj = model.simulate(x, timesteps=3)
    assert (traj.logits[0] - traj.logits[1]).abs().max() > 1e-6


# ------------------------------------------------------------------------------ learning
def _grads_after_one_loss(model, timesteps: int = 2):
    model.train()
    x = stimuli(batch=4, dtype=torch.float32)
    target = torch.tensor([0, 1, 2, 0])
    loss = torch.nn.functional.cross_entropy(model(x, timesteps=timesteps), target)
    loss.backward()
    return {name: p.grad for name, p in model.attention.named_parameters()}


def test_gradients_reach_alphas_at_zero_init():
    """At alpha = 0 the loss still pulls on every alpha (dL/dalpha = <dL/dg, a> != 0), while
    key/query gradients are exactly 0 (they enter only through alpha * a)."""
    grads = _grads_after_one_loss(tiny(double=False))
    for name, grad in grads.items():
        assert grad is not None, name
        if name.startswith("alpha"):
            assert grad.abs() > 0, name
        else:
            assert torch.equal(grad, torch.zeros_like(grad)), name


def test_gradients_reach_keys_and_queries_with_nonzero_alpha():
    """With alpha != 0 every key, query and alpha parameter gets a non-zero gradient at T=2."""
    grads = _grads_after_one_loss(tiny(alpha=0.5, double=False))
    assert {n.split(".")[0] for n in grads} == {"query", "key", "alpha"}
    for name, grad in grads.items():
        assert grad is not None and grad.abs().max() > 0, name


def test_no_gradient_to_attention_at_one_step():
    """Sweep T = 1: the attention region has no effect, hence no gradient."""
    grads = _grads_after_one_loss(tiny(alpha=0.5, double=False), timesteps=1)
    assert all(g is None or torch.equal(g, torch.zeros_like(g)) for g in grads.values())


# ------------------------------------------------------------------------ bad arguments
@pytest.mark.parametrize("timesteps", [0, -1])
def test_nonpositive_timesteps_raise(timesteps):
    """A simulation needs at least one timestep."""
    model, x = tiny(), stimuli()
    with pytest.raises(ValueError):
        model(x, timesteps=timesteps)
    with pytest.raises(ValueError):
        model.simulate(x, timesteps=timesteps)


@pytest.mark.parametrize("options", [
    {"mode": "feedback"},
    {"noise_std": -0.1},
    {"key_dim": 0},
    {"normalization": "layernorm"},
    {"gain_form": "quadratic"},
    {"keys": "next"},
    {"gain_position": "middle"},
    {"not_an_option": 1},
    {"image_size": 20},
])
def test_bad_options_raise(options):
    """Invalid configurations fail loudly at build time."""
    kwargs = dict(num_classes=3, widths=(4, 6, 8), hidden=5, key_dim=3, image_size=16)
    kwargs.update(options)
    with pytest.raises(ValueError):
        build_model("toy", **kwargs)


def test_unknown_model_name_raises():
    with pytest.raises(ValueError):
        build_model("resnet9000", num_classes=3)


# --------------------------------------------------------------- per-timestep batch norm
def _train_steps(model, steps=3, timesteps=2):
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    model.train()
    for _ in range(steps):
        x = torch.rand(8, 3, 16, 16)
        loss = torch.nn.functional.cross_entropy(model(x, timesteps=timesteps), torch.arange(8) % 3)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def test_step_batch_norm_keeps_statistics_per_timestep():
    """norm_steps=2: step 1's running statistics are its own, so with gains acting they differ
    from step 0's; at alpha = 0 both see the same activity and stay identical."""
    torch.manual_seed(0)
    model = build_model("toy", num_classes=3, widths=(4, 6, 8), hidden=5, key_dim=3,
                        image_size=16, norm_steps=2, alpha_init=0.5)
    _train_steps(model)
    stats = model.backbone.areas["V2"].norm.running_mean
    assert stats.shape == (2, 6) and not torch.allclose(stats[0], stats[1])
    torch.manual_seed(0)
    still = build_model("toy", num_classes=3, widths=(4, 6, 8), hidden=5, key_dim=3,
                        image_size=16, norm_steps=2)
    for p in still.attention.parameters():
        p.requires_grad_(False)  # alphas stay at 0: the gain never acts
    _train_steps(still)
    for area in ("V1", "V2", "V4", "IT"):
        norm = still.backbone.areas[area].norm
        assert torch.equal(norm.running_mean[0], norm.running_mean[1]), area
    x = torch.rand(4, 3, 16, 16)
    with torch.no_grad():
        traj = still.simulate(x, timesteps=3)
        assert torch.equal(traj.logits[0], traj.logits[2])
        assert torch.equal(traj.logits[0], still.backbone(x))


# --------------------------------------------------------------- presets
def test_presets_fill_the_options_not_given_and_configs_hold_them_resolved():
    """The default is the measured recipe; "paper" is the literal reading; explicit wins."""
    tiny = dict(num_classes=3, widths=(4, 6, 8), hidden=5, key_dim=3, image_size=16)
    recipe = build_model("toy", **tiny)
    paper = build_model("toy", preset="paper", **tiny)
    assert recipe.config["norm_steps"] == 2 and paper.config["norm_steps"] == 1
    assert recipe.attention.gain_form == "positive" and paper.attention.gain_form == "linear"
    assert recipe.backbone.areas["V1"].norm.running_mean.shape == (2, 4)
    assert isinstance(paper.backbone.areas["V1"].norm, torch.nn.BatchNorm2d)
    assert build_model("toy", attention=False, **tiny).config["norm_steps"] == 1
    mixed = build_model("toy", preset="paper", norm_steps=3, gain_form="bounded", **tiny)
    assert mixed.config["norm_steps"] == 3 and mixed.attention.gain_form == "bounded"
    rebuilt = from_config(recipe.config)
    assert rebuilt.config == recipe.config
    rebuilt.load_state_dict(recipe.state_dict())
    with pytest.raises(ValueError, match="preset"):
        build_model("toy", preset="best", **tiny)


def test_configs_saved_before_presets_rebuild_the_paper_reading():
    old = {"name": "toy", "num_classes": 3, "attention": True, "key_dim": 3, "widths": [4, 6, 8],
           "hidden": 5, "image_size": 16}
    assert from_config(old).config["norm_steps"] == 1


# ---------------------------------------------------------- stability over timesteps
def _max_gain_per_step(model, timesteps: int) -> list[float]:
    with torch.no_grad():
        traj = model.simulate(stimuli(batch=4), timesteps=timesteps)
    return [max(float(g[t].abs().max()) for g in traj.gain.values()) for t in range(timesteps)]


def test_unnormalised_gain_runs_away_over_timesteps_standardised_does_not():
    """Keys and queries both scale with the gained rates, so an unnormalised agreement grows
    with the square of the last gain: g(t+1) ~ 1 + alpha * c * g(t)^2, which explodes within a
    few steps once alpha * c is large (why T = 4 diverged on CIFAR-10 with the linear gain). A
    standardised agreement is scale-free, and the recipe's positive gain 2 sigmoid(alpha a) stays
    below 2: neither can feed on itself."""
    wild = _max_gain_per_step(tiny(alpha=40.0, normalization="none", gain_form="linear"), 6)
    assert wild[2] > 10 * wild[1] and wild[3] > 1e6  # then inf
    tame = _max_gain_per_step(tiny(alpha=40.0, normalization="standardize", gain_form="linear"), 6)
    assert all(math.isfinite(g) for g in tame)
    assert max(tame) <= 1 + 40.0 * 16  # |1 + alpha z|, |z| < sqrt(positions) <= 16 at 16x16
    bounded = _max_gain_per_step(tiny(alpha=40.0, normalization="none"), 6)
    assert max(bounded) <= 2 and max(bounded) > 1.5  # strongly modulated, never runaway


class _WithoutSynapse(torch.nn.Module):
    """An area that only offers drive/activate: the simulator recomputes its drive each step."""

    def __init__(self, area) -> None:
        super().__init__()
        self.area, self.kind, self.units, self.geometry = area, area.kind, area.units, area.geometry

    def drive(self, x, t=0):
        return self.area.drive(x, t)

    def activate(self, drive):
        return self.area.activate(drive)


@pytest.mark.parametrize("mode,timesteps", [("sweep", 4), ("cascade", 7)])
def test_first_area_conv_runs_once_per_simulation_and_changes_nothing(mode, timesteps):
    """V1's input (the image) never changes, so its conv is computed once; with per-step
    batch-norm statistics that differ, every step still normalises with its own."""
    model = tiny(alpha=0.7, norm_steps=4, mode=mode)
    with torch.no_grad():
        for m in model.modules():
            if hasattr(m, "running_var") and m.running_var.dim() == 2:  # StepBatchNorm rows
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    x, calls = stimuli(), []
    hook = model.areas["V1"].conv.register_forward_hook(lambda *a: calls.append(1))
    fast = model.simulate(x, timesteps).logits
    hook.remove()
    assert len(calls) == 1
    model.backbone.areas["V1"] = _WithoutSynapse(model.areas["V1"])
    assert close(model.simulate(x, timesteps).logits, fast)

"""Time in the simulator and its training: per-step statistics, cascade dynamics after the
first steps, accuracies per timestep, the optimiser's groups and the loss over steps.

Each test here fails on a broken version of the code that the rest of the suite let through
(per-step batch norm reading the wrong row, a cascade that gains only V1 or freezes its
query, accuracies in the wrong order, alphas with the main learning rate and weight decay, a
loss on every step that uses the last step only).
"""

from __future__ import annotations

import argparse

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_images, tiny_stepped

from gattanet_sim import build_model
from gattanet_sim.areas import StepBatchNorm
from gattanet_sim.data import ImageSet
from gattanet_sim.evaluate import accuracy_per_timestep
from gattanet_sim.models import resolve_options
from gattanet_sim.train import batch_timesteps, loss_fn, make_optimizer, parse_args


def tiny(alpha: float = 0.8, **options):
    """The paper's linear gain (hand computations below use it) on a stepped tiny model."""
    return tiny_stepped(alpha, gain_form="linear", **options)


images = tiny_images


@pytest.mark.parametrize("t, row", [(0, 0), (1, 1), (2, 2), (3, 2), (4, 2)])
def test_step_batch_norm_uses_row_min_t_steps_minus_one(t, row):
    """Eval mode, 3 rows: step t is normalised with row min(t, 2) (not row 0, not the last
    row always, not t % 3)."""
    torch.manual_seed(0)
    norm = StepBatchNorm(4, steps=3).double().eval()
    with torch.no_grad():
        norm.running_mean.copy_(torch.arange(12, dtype=torch.float64).view(3, 4))
        norm.running_var.uniform_(0.5, 2.0)
    x = torch.randn(5, 4, 2, 2, dtype=torch.float64)
    expected = F.batch_norm(x, norm.running_mean[row], norm.running_var[row], norm.weight, norm.bias,
                            False, 0.1, norm.eps)
    assert torch.allclose(norm(x, t), expected)


def _hand_query(model, rates: dict) -> torch.Tensor:
    """mean over the fired areas of mean_x W_q r(x)."""
    means = []
    for name, rate in rates.items():
        Q = model.attention.query[name]
        means.append(rate.mean(dim=(2, 3)) @ Q.T if rate.dim() == 4 else rate @ Q / rate.shape[1])
    return torch.stack(means).mean(0)


def _hand_gain(model, name: str, rate: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    K = model.attention.key[name]
    if rate.dim() == 4:
        a = (F.conv2d(rate, K[:, :, None, None]) * q[:, :, None, None]).sum(1)  # (B, H, W)
    else:
        a = rate * (q @ K.T)  # (B, N)
    return 1 + model.attention.alpha[name] * a


def test_cascade_gains_every_fired_area_from_the_last_query_at_every_step():
    """Cascade, T = 7: at every step t >= 1 each area that fired at t - 1 gets the gain of its
    keys of t - 1 and the query of t - 1, and the query of t pools the areas fired at t."""
    model, x = tiny(mode="cascade"), images()
    names = list(model.areas)
    with torch.no_grad():
        traj = model.simulate(x, 7, activity=True)
    for t in range(7):
        fired = [n for i, n in enumerate(names) if i <= t]
        assert torch.allclose(traj.query[t], _hand_query(model, {n: traj.activity[n][t] for n in fired}),
                              atol=1e-10), t
        if t == 0:
            continue
        for i, name in enumerate(names):
            if i <= t - 1:  # keys of the previous step exist
                expected = _hand_gain(model, name, traj.activity[name][t - 1], traj.query[t - 1])
                assert torch.allclose(traj.gain[name][t], expected, atol=1e-10), (name, t)
            else:
                assert (traj.gain[name][t] == 1).all(), (name, t)
    assert not torch.allclose(traj.query[3], traj.query[4])  # the query moves on


def test_accuracy_per_timestep_is_in_timestep_order():
    """Labels chosen as step 0's answers: accuracy 1 at t = 0 and lower later, in that order."""
    model = tiny(alpha=40.0)
    x = torch.rand(64, 3, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        logits = model.simulate(x, 3).logits  # (T, B, K)
    labels = logits[0].argmax(-1)
    expected = (logits.argmax(-1) == labels).double().mean(1).tolist()
    assert expected[0] == 1.0 and expected[2] < 1.0
    data = ImageSet((x * 255).round().to(torch.uint8), labels, ["a", "b", "c"], "test")
    got = accuracy_per_timestep(model.float(), data, 3)["accuracy"]
    with torch.no_grad():
        again = model.simulate(data.images.float() / 255, 3).logits
    assert got == pytest.approx((again.argmax(-1) == labels).float().mean(1).tolist())
    assert got[0] > got[-1]


def _args(**kw) -> argparse.Namespace:
    base = dict(lr=0.1, alpha_lr=None, weight_decay=5e-4, optimizer="sgd", loss_all_steps=False,
                timesteps=3, label_smoothing=0.1)
    return argparse.Namespace(**{**base, **kw})


@pytest.mark.parametrize("alpha_lr", [None, 0.01])
def test_alphas_have_their_own_group_without_weight_decay(alpha_lr):
    model = tiny()
    optimizer = make_optimizer(model, _args(alpha_lr=alpha_lr))
    alphas = {id(p) for p in model.attention.alpha.values()}
    groups = {("alpha" if all(id(p) in alphas for p in g["params"]) else "rest"): g
              for g in optimizer.param_groups}
    assert {id(p) for p in groups["alpha"]["params"]} == alphas
    assert groups["alpha"]["weight_decay"] == 0.0 and groups["rest"]["weight_decay"] == 5e-4
    assert groups["alpha"]["lr"] == (0.1 if alpha_lr is None else alpha_lr)
    assert groups["rest"]["lr"] == 0.1


def test_loss_on_all_steps_is_the_mean_over_the_steps_the_read_out_fired():
    model = tiny(alpha=5.0).float()
    x, labels = images(6).float(), torch.tensor([0, 1, 2, 0, 1, 2])
    loss, last = loss_fn(model, x, labels, _args(loss_all_steps=True))
    logits = model.simulate(x, 3).logits
    per_step = [F.cross_entropy(logits[t], labels, label_smoothing=0.1) for t in range(3)]
    assert loss.item() == pytest.approx(torch.stack(per_step).mean().item(), rel=1e-5)
    assert loss.item() != pytest.approx(per_step[-1].item(), rel=1e-3)  # not the last step alone
    assert torch.allclose(last, logits[-1])
    only_last, _ = loss_fn(model, x, labels, _args())
    assert only_last.item() == pytest.approx(per_step[-1].item(), rel=1e-5)


def test_random_timesteps_are_drawn_per_batch_reproducibly_and_used_by_the_loss():
    args = _args(timesteps=5, random_timesteps=True, seed=0)
    draws = [batch_timesteps(args, 1, epoch, step) for epoch in range(2) for step in range(40)]
    assert set(draws) == {2, 3, 4, 5}  # at least one attended step, up to T
    assert draws == [batch_timesteps(args, 1, e, s) for e in range(2) for s in range(40)]
    assert draws != [batch_timesteps(_args(timesteps=5, random_timesteps=True, seed=1), 1, e, s)
                     for e in range(2) for s in range(40)]
    assert {batch_timesteps(_args(timesteps=7, random_timesteps=True, seed=0), 5, 0, s)
            for s in range(40)} == {6, 7}  # cascade: after the input reached the read-out
    assert {batch_timesteps(_args(timesteps=5, random_timesteps=False), 1, 0, s) for s in range(9)} == {5}
    model = tiny(alpha=5.0).float()
    x, labels = images(6).float(), torch.tensor([0, 1, 2, 0, 1, 2])
    loss, logits = loss_fn(model, x, labels, args, timesteps=2)
    assert torch.allclose(logits, model(x, timesteps=2))
    assert not torch.allclose(logits, model(x, timesteps=5))


# ------------------------------------------------ a query with memory, a gain with a time constant
def test_divisive_gain_at_alpha_zero_is_todays_model_exactly():
    """At alpha = 0 the attention field is 1 everywhere and so is the divisive gain."""
    x = images()
    with torch.no_grad():
        a = tiny_stepped(0.0, gain_form="divisive").simulate(x, 4, activity=True)
        b = tiny_stepped(0.0, gain_form="positive").simulate(x, 4, activity=True)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.gain["V2"], b.gain["V2"])


@pytest.mark.parametrize("options", [{"query_leak": 0.0}, {"gain_tau": 1.0}])
def test_neutral_settings_reproduce_todays_numbers_exactly(options):
    model, x = tiny(), images()
    plain = tiny()
    with torch.no_grad():
        for key, value in options.items():
            setattr(model.attention, key, value)
        a, b = model.simulate(x, 4, activity=True), plain.simulate(x, 4, activity=True)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.gain["V2"], b.gain["V2"])


def test_leaky_query_integrates_the_pooled_query():
    """q(t) = lambda q(t-1) + (1 - lambda) q_pooled(t), from q(0) = q_pooled(0)."""
    model, x = tiny(query_leak=0.6), images()
    with torch.no_grad():
        traj = model.simulate(x, 4, activity=True)
    q = _hand_query(model, {n: traj.activity[n][0] for n in model.areas})
    assert torch.allclose(traj.query[0], q, atol=1e-12)
    for t in (1, 2, 3):
        q = 0.6 * q + 0.4 * _hand_query(model, {n: traj.activity[n][t] for n in model.areas})
        assert torch.allclose(traj.query[t], q, atol=1e-12), t
        for name in model.attention.alpha:
            assert torch.allclose(traj.gain[name][t], _hand_gain(model, name, traj.activity[name][t - 1],
                                                                traj.query[t - 1]), atol=1e-10)


def test_gain_relaxes_towards_its_target_with_time_constant_tau():
    """g(t) = g(t-1) + (target(t) - g(t-1)) / tau from g(0) = 1; the target is the paper's gain."""
    model, x = tiny(gain_tau=3.0), images()
    with torch.no_grad():
        traj = model.simulate(x, 4, activity=True)
    for name in model.attention.alpha:
        g = torch.ones_like(traj.gain[name][0])
        for t in (1, 2, 3):
            target = 1 + model.attention.alpha[name] * traj.agreement[name][t]
            g = g + (target - g) / 3.0
            assert torch.allclose(traj.gain[name][t], g, atol=1e-10), (name, t)


@pytest.mark.parametrize("options", [{"query_leak": 0.9}, {"gain_tau": 4.0},
                                     {"query_leak": 0.5, "gain_tau": 2.0}, {"gain_form": "divisive"},
                                     {"gain_form": "divisive", "gain_tau": 2.0}])
@pytest.mark.parametrize("mode", ["sweep", "cascade"])
def test_new_dynamics_stay_bounded_over_32_steps_with_large_alphas(options, mode):
    """The recipe's positive gain with alphas of 50: every gain within (0, 2) (divisive: within
    (0, 2 (1 + s) / s) = (0, 4)), everything finite."""
    torch.manual_seed(0)
    model = build_model("toy", num_classes=3, widths=(4, 6, 8), hidden=5, key_dim=3, image_size=16,
                        mode=mode, **options).eval()
    with torch.no_grad():
        for a in model.attention.alpha.values():
            a.fill_(50.0)
        traj = model.simulate(images().float(), 32, activity=True)
    assert torch.isfinite(traj.logits).all() and torch.isfinite(traj.query).all()
    bound = 4 if options.get("gain_form") == "divisive" else 2
    for name, gain in traj.gain.items():
        assert (gain >= 0).all() and (gain <= bound).all(), name


@pytest.mark.parametrize("options, match", [({"query_leak": 1.0}, "query_leak"),
                                            ({"query_leak": -0.1}, "query_leak"),
                                            ({"gain_tau": 0.5}, "gain_tau")])
def test_bad_time_options_are_named(options, match):
    with pytest.raises(ValueError, match=match):
        build_model("toy", num_classes=3, **options)


@pytest.mark.parametrize("total", [1, 2, 3, 4, 5, 7, 8, 100])
def test_scheduler_runs_any_number_of_steps(total):
    """Tiny runs (an epoch of 4 steps or fewer) used to divide by zero in the one-cycle schedule;
    long ones keep the 25% warm-up to the peak."""
    from gattanet_sim.train import make_scheduler

    model = tiny().float()
    optimizer = make_optimizer(model, _args())
    scheduler = make_scheduler(optimizer, total)
    rates = []
    for _ in range(total):
        optimizer.step()
        scheduler.step() if len(rates) < total - 1 else None
        rates.append(optimizer.param_groups[0]["lr"])
    assert all(0 < r <= 0.1 + 1e-12 for r in rates)
    if total == 100:
        assert max(rates) == pytest.approx(0.1) and 20 <= int(torch.tensor(rates).argmax()) <= 26


# ------------------------------------------------ the recipe for T > 2
@pytest.mark.parametrize("argv, norm_steps, tau, random_t", [
    (["--timesteps", "2"], 2, 1.0, False),  # T = 2: the recipe as it was
    (["--timesteps", "4"], 4, 2.0, True),
    (["--timesteps", "8", "--mode", "cascade"], 8, 2.0, True),
    (["--timesteps", "4", "--norm-steps", "2", "--gain-tau", "1", "--no-random-timesteps"], 2, 1.0, False),
    (["--timesteps", "4", "--preset", "paper"], 1, 1.0, False),
    (["--timesteps", "4", "--no-attention"], 1, None, False),
])
def test_recipe_for_t_above_2_keeps_statistics_per_step_a_gain_tau_and_draws_t(argv, norm_steps, tau, random_t):
    args = parse_args(argv)
    assert (args.norm_steps, args.gain_tau, args.random_timesteps) == (norm_steps, tau, random_t)


def test_build_model_picks_the_recipe_for_its_timesteps():
    assert build_model("toy", num_classes=3, widths=(4, 4, 4), hidden=8).config["norm_steps"] == 2
    six = build_model("toy", num_classes=3, widths=(4, 4, 4), hidden=8, timesteps=6)
    assert six.config["norm_steps"] == 6 and six.attention.gain_tau == 2.0
    assert build_model("toy", num_classes=3, widths=(4, 4, 4), hidden=8).attention.gain_tau == 1.0
    assert build_model("toy", num_classes=3, widths=(4, 4, 4), hidden=8, timesteps=6,
                       norm_steps=3).config["norm_steps"] == 3
    assert resolve_options("paper", True, 6)["norm_steps"] == 1

"""The GAttANet equations, checked against an independent hand computation.

Every expected value here is recomputed from the model's parameters and recorded activity
with plain torch ops (loops, F.conv2d, explicit softmax/sigmoid), never through the helper
functions of `gattanet_sim.attention`:

    k_i(x), q_i(x) = W_k^i r_i(x), W_q^i r_i(x)     conv area: 1x1 projection, no bias
    k_i(c), q_i(c) = r_i(c) K_i[c], r_i(c) Q_i[c]   dense area
    q      = mean_i mean_x q_i(x)                   the global query
    a_i(x) = k_i(x) . q                             the agreement map
    g_i(x) = 1 + alpha_i a_i(x)                     the gain on the next timestep
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gattanet_sim import build_model
from gattanet_sim.areas import StepBatchNorm

ATOL = 1e-9
# The retina's CIFAR-10 statistics, stored in float32 by the model and then cast by .double()
RETINA_MEAN = torch.tensor((0.4914, 0.4822, 0.4465)).double().view(1, 3, 1, 1)
RETINA_STD = torch.tensor((0.2470, 0.2435, 0.2616)).double().view(1, 3, 1, 1)
ALPHAS = {"V1": 0.7, "V2": -0.5, "V4": 0.9, "IT": 1.3, "readout": -0.4}
# Agreements of the tiny untrained model are ~0.01-0.1: these alphas push some gains below 0
STRONG = {name: 40 * value for name, value in ALPHAS.items()}


# ----------------------------------------------------------------------------- helpers
def tiny(alphas: dict | float | None = ALPHAS, **options):
    """A tiny float64 toy model in eval mode, with non-trivial batch-norm statistics: every
    batch norm, the per-step ones (the recipe's `StepBatchNorm`) row by row."""
    torch.manual_seed(0)
    options = {"normalization": "none", "gain_form": "linear", **options}  # the equations as written
    model = build_model("toy", num_classes=3, widths=(4, 6, 8), hidden=5, key_dim=3,
                        image_size=16, **options).double().eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, StepBatchNorm)):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.3, 0.3)
        if alphas is not None:
            for name, alpha in model.attention.alpha.items():
                alpha.fill_(alphas[name] if isinstance(alphas, dict) else alphas)
    return model


def stimuli(batch: int = 3, seed: int = 1) -> torch.Tensor:
    torch.manual_seed(seed)
    return torch.rand(batch, 3, 16, 16, dtype=torch.float64)


def hand_mean_query(model, name: str, rate: torch.Tensor) -> torch.Tensor:
    """Mean over positions (conv) or units (dense) of the area's queries, (B, d)."""
    Q = model.attention.query[name]
    if rate.dim() == 4:  # Q is (d, C); q(x) = Q r(x) at every position x
        B, C, H, W = rate.shape
        total = torch.zeros(B, Q.shape[0], dtype=rate.dtype)
        for h in range(H):
            for w in range(W):
                total = total + rate[:, :, h, w] @ Q.T
        return total / (H * W)
    return rate @ Q / rate.shape[1]  # Q is (N, d); q(c) = r(c) Q[c], averaged over c


def hand_global_query(model, rates: dict) -> torch.Tensor:
    """q = mean over areas of each area's mean query."""
    queries = [hand_mean_query(model, name, rate) for name, rate in rates.items()]
    return sum(queries) / len(queries)


def hand_raw_agreement(model, name: str, rate: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """a(x) = k(x) . q with k(x) = K r(x) (conv, as a 1x1 conv) or k(c) = r(c) K[c] (dense)."""
    K = model.attention.key[name]
    if rate.dim() == 4:
        keys = F.conv2d(rate, K[:, :, None, None])  # (B, d, H, W)
        return (keys * q[:, :, None, None]).sum(dim=1)  # (B, H, W)
    return rate * (q @ K.T)  # (B, N)


def hand_sweep(model, images: torch.Tensor, gain_for=None, pre: bool = False, t: int = 0) -> dict:
    """One feedforward sweep at step t (its batch-norm statistics); `gain_for(name, drive)`
    returns the area's gain map or None."""
    x = (images - RETINA_MEAN) / RETINA_STD
    rates = {}
    for name, area in model.areas.items():
        drive = area.drive(x, t)
        gain = gain_for(name, drive) if gain_for is not None else None
        if gain is None:
            rate = area.activate(drive)
        else:
            g = gain[:, None] if drive.dim() == 4 else gain  # one gain per position, all channels
            rate = area.activate(drive * g) if pre else area.activate(drive) * g
        rates[name] = x = rate
    return rates


def alpha(model, name: str) -> float:
    return model.attention.alpha[name].item()


def close(a: torch.Tensor, b: torch.Tensor, atol: float = ATOL) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, atol=atol, rtol=1e-9)


# ------------------------------------------------------------------- the paper's equations
def test_first_step_is_the_plain_feedforward_sweep():
    """t = 0: no gain acts, every area's rate is relu(drive) of the feedforward chain."""
    model, x = tiny(), stimuli()
    with torch.no_grad():
        traj = model.simulate(x, timesteps=2, activity=True)
        rates = hand_sweep(model, x)
    for name, rate in rates.items():
        assert close(traj.activity[name][0], rate), name
    assert close(traj.logits[0], rates["readout"])


def test_global_query_is_mean_over_areas_of_mean_query():
    """q = mean_i mean_x q_i(x): per-area mean queries and the pooled global query at t = 0."""
    model, x = tiny(), stimuli()
    with torch.no_grad():
        traj = model.simulate(x, timesteps=2, activity=True)
        rates = {name: traj.activity[name][0] for name in model.areas}
        for name, rate in rates.items():
            assert close(traj.area_queries[name][0], hand_mean_query(model, name, rate)), name
        assert close(traj.query[0], hand_global_query(model, rates))
    assert traj.query.shape == (2, 3, 3)


def test_agreement_is_previous_key_dot_query():
    """a_i(x) at step t = k_i(x) of step t-1 . q of step t-1 (keys="previous", the default)."""
    model, x = tiny(), stimuli()
    with torch.no_grad():
        traj = model.simulate(x, timesteps=3, activity=True)
        for t in (1, 2):
            for name in model.attention.alpha:
                rate = traj.activity[name][t - 1]
                expected = hand_raw_agreement(model, name, rate, traj.query[t - 1])
                assert close(traj.agreement[name][t], expected), (name, t)


def test_gain_is_one_plus_alpha_times_agreement():
    """g_i = 1 + alpha_i a_i with each area's own alpha (alphas differ across areas here)."""
    model, x = tiny(), stimuli()
    with torch.no_grad():
        traj = model.simulate(x, timesteps=3, activity=True)
    for name in model.attention.alpha:
        for t in (1, 2):
            expected = 1 + alpha(model, name) * traj.agreement[name][t]
            assert close(traj.gain[name][t], expected), (name, t)


def test_no_gain_and_no_agreement_at_first_step():
    """At t = 0 nothing has been pooled yet: gain exactly 1, agreement 0, in every area."""
    model = tiny()
    with torch.no_grad():
        traj = model.simulate(stimuli(), timesteps=2)
    for name in model.attention.alpha:
        assert torch.equal(traj.gain[name][0], torch.ones_like(traj.gain[name][0])), name
        assert torch.equal(traj.agreement[name][0], torch.zeros_like(traj.agreement[name][0]))


def test_second_step_rates_are_relu_drive_times_gain():
    """t = 1 recomputed entirely by hand: rate_i = relu(drive_i) * (1 + alpha_i k_i(t=0) . q(t=0))."""
    model, x = tiny(), stimuli()
    with torch.no_grad():
        traj = model.simulate(x, timesteps=2, activity=True)
        first = hand_sweep(model, x)
        q = hand_global_query(model, first)

        def gain_for(name, drive):
            return 1 + alpha(model, name) * hand_raw_agreement(model, name, first[name], q)

        second = hand_sweep(model, x, gain_for, t=1)
    for name, rate in second.items():
        assert close(traj.activity[name][1], rate), name
    assert close(traj.logits[1], second["readout"])
    assert not close(traj.logits[1], traj.logits[0], atol=1e-6)  # the gain did act


# ------------------------------------------------------------------ the paper's open options
def test_standardized_agreement_has_zero_mean_unit_sd():
    """normalization="standardize": (a - mean) / sd over positions/units (population sd)."""
    model, x = tiny(normalization="standardize"), stimuli()
    with torch.no_grad():
        traj = model.simulate(x, timesteps=2, activity=True)
    for name in model.attention.alpha:
        a = traj.agreement[name][1].flatten(1)  # (B, P)
        assert torch.allclose(a.mean(dim=1), torch.zeros(3, dtype=a.dtype), atol=1e-9), name
        # sd is 1 up to the package's absolute epsilon (1e-5), a few % of the tiny untrained IT
        # agreement's sd: hence the loose tolerance here and the epsilon in the exact check below
        assert torch.allclose(a.std(dim=1, correction=0), torch.ones(3, dtype=a.dtype), atol=5e-2), name
        raw = hand_raw_agreement(model, name, traj.activity[name][0], traj.query[0]).flatten(1)
        expected = (raw - raw.mean(1, keepdim=True)) / (raw.std(1, correction=0, keepdim=True) + 1e-5)
        assert close(a, expected), name
        assert close(traj.gain[name][1], 1 + alpha(model, name) * traj.agreement[name][1])


def test_softmax_agreement_is_P_softmax_minus_one():
    """normalization="softmax": a = P * exp(raw) / sum exp(raw) - 1, mean 0 over positions."""
    model, x = tiny(normalization="softmax"), stimuli()
    with torch.no_grad():
        traj = model.simulate(x, timesteps=2, activity=True)
    for name in model.attention.alpha:
        raw = hand_raw_agreement(model, name, traj.activity[name][0], traj.query[0]).flatten(1)
        P = raw.shape[1]
        e = torch.exp(raw - raw.max(dim=1, keepdim=True).values)
        expected = P * e / e.sum(dim=1, keepdim=True) - 1
        a = traj.agreement[name][1].flatten(1)
        assert close(a, expected), name
        assert torch.allclose(a.mean(dim=1), torch.zeros(3, dtype=a.dtype), atol=1e-9)


def test_positive_gain_form_is_two_sigmoid():
    """gain_form="positive": g = 2 sigmoid(alpha a) > 0, even where 1 + alpha a would be < 0."""
    model, x = tiny(STRONG, gain_form="positive"), stimuli()
    with torch.no_grad():
        traj = model.simulate(x, timesteps=2)
    some_linear_gain_negative = False
    for name in model.attention.alpha:
        a, g = traj.agreement[name][1], traj.gain[name][1]
        assert close(g, 2 / (1 + torch.exp(-alpha(model, name) * a))), name
        assert (g > 0).all(), name
        some_linear_gain_negative |= bool((1 + alpha(model, name) * a < 0).any())
    assert some_linear_gain_negative  # the test would tell "positive" from "linear"


def test_divisive_gain_on_numbers_by_hand():
    """g = A (1 + s) <E> / (s <E> + <A E>), s = 1: A = 1 gives 1 exactly; a silent area takes 2 A."""
    from gattanet_sim.attention import divisive_gain

    field, drive = torch.tensor([[2.0, 0.5]]), torch.tensor([[3.0, 1.0]])
    assert torch.allclose(divisive_gain(field, drive), field * 2 / (1 + 3.25 / 2))
    assert torch.equal(divisive_gain(torch.ones(2, 7), torch.rand(2, 7)), torch.ones(2, 7))
    assert torch.equal(divisive_gain(field, torch.zeros(1, 2)), 2 * field)


def test_divisive_gain_form_is_the_normalization_model():
    """gain_form="divisive": the attention field 2 sigmoid(alpha a) times the area's ungained
    drive E (summed over channels), divided by the pooled A E; the gain acts on the rate."""
    model, x = tiny(STRONG, gain_form="divisive"), stimuli()
    with torch.no_grad():
        traj = model.simulate(x, timesteps=2, activity=True)
    for name in model.attention.alpha:
        a, g, rate = traj.agreement[name][1], traj.gain[name][1], traj.activity[name][1]
        field = 2 / (1 + torch.exp(-alpha(model, name) * a))
        gain = g.unsqueeze(1) if rate.dim() == 4 else g
        e = (rate / gain).abs()  # the ungained rate: the gain multiplies the rate and is > 0
        e = (e.sum(dim=1) if rate.dim() == 4 else e).flatten(1)
        mean_e = e.mean(dim=1, keepdim=True)
        f = field.flatten(1)
        expected = f * 2 * mean_e / (mean_e + (f * e).mean(dim=1, keepdim=True))
        assert close(g.flatten(1), expected), name
        assert not close(g, field), name  # the division changed the field


def test_bounded_gain_form_is_one_plus_alpha_tanh():
    """gain_form="bounded": g = 1 + alpha tanh(a), so |g - 1| <= |alpha|."""
    model, x = tiny(gain_form="bounded"), stimuli()
    with torch.no_grad():
        traj = model.simulate(x, timesteps=2, activity=True)
    for name in model.attention.alpha:
        raw = hand_raw_agreement(model, name, traj.activity[name][0], traj.query[0])
        assert close(traj.agreement[name][1], raw), name
        g = traj.gain[name][1]
        a = raw
        tanh = (torch.exp(a) - torch.exp(-a)) / (torch.exp(a) + torch.exp(-a))
        assert close(g, 1 + alpha(model, name) * tanh), name
        assert ((g - 1).abs() <= abs(alpha(model, name)) + 1e-12).all()


def test_readout_gain_false_leaves_readout_ungained():
    """readout_gain=False: no key, alpha or gain for the read-out; it still sends a query."""
    model, x = tiny(alphas=0.7, readout_gain=False), stimuli()
    assert "readout" not in model.attention.alpha and "readout" not in model.attention.key
    assert set(model.attention.alpha) == {"V1", "V2", "V4", "IT"}
    with torch.no_grad():
        traj = model.simulate(x, timesteps=2, activity=True)
        assert "readout" not in traj.gain and "readout" not in traj.agreement
        rates0 = {name: traj.activity[name][0] for name in model.areas}
        assert close(traj.query[0], hand_global_query(model, rates0))  # pooled over all 5 areas
        q = traj.query[0]

        def gain_for(name, drive):
            if name == "readout":
                return None
            return 1 + 0.7 * hand_raw_agreement(model, name, rates0[name], q)

        second = hand_sweep(model, x, gain_for, t=1)
    assert close(traj.logits[1], second["readout"])


def test_current_keys_come_from_this_steps_ungained_rate():
    """keys="current": the gain at t uses keys of relu(drive at t), before the gain acts."""
    model, x = tiny(keys="current"), stimuli()
    with torch.no_grad():
        traj = model.simulate(x, timesteps=2, activity=True)
        q = traj.query[0]
        assert close(q, hand_global_query(model, {n: traj.activity[n][0] for n in model.areas}))

        def gain_for(name, drive):
            current_rate = model.areas[name].activate(drive)  # this step's ungained rate
            return 1 + alpha(model, name) * hand_raw_agreement(model, name, current_rate, q)

        second = hand_sweep(model, x, gain_for, t=1)
        previous = {name: hand_raw_agreement(model, name, traj.activity[name][0], q)
                    for name in ("V1", "V2")}
    assert close(traj.logits[1], second["readout"])
    for name, rate in second.items():
        assert close(traj.activity[name][1], rate), name
    # V1 sees the same retina at t = 1, but normalised with step 1's statistics, and V2 reads
    # the gained V1: the current keys of both differ from those of step 0.
    assert not close(traj.agreement["V1"][1], previous["V1"], atol=1e-6)
    assert not close(traj.agreement["V2"][1], previous["V2"], atol=1e-6)


def test_pre_gain_multiplies_drive_before_relu():
    """gain_position="pre": rate = relu(drive * g) (differs from relu(drive) * g where g < 0)."""
    model, x = tiny(STRONG, gain_position="pre"), stimuli()
    with torch.no_grad():
        traj = model.simulate(x, timesteps=2, activity=True)
        first = hand_sweep(model, x)
        q = hand_global_query(model, first)

        def gain_for(name, drive):
            return 1 + alpha(model, name) * hand_raw_agreement(model, name, first[name], q)

        pre = hand_sweep(model, x, gain_for, pre=True, t=1)
        post = hand_sweep(model, x, gain_for, pre=False, t=1)
    assert any((traj.gain[n][1] < 0).any() for n in ("V1", "V2", "V4", "IT"))
    for name, rate in pre.items():
        assert close(traj.activity[name][1], rate), name
    assert close(traj.logits[1], pre["readout"])
    assert not close(pre["readout"], post["readout"], atol=1e-6)  # the test tells pre from post


def test_cascade_query_pools_only_areas_that_fired():
    """cascade mode: at t = 0 only V1 has fired, so the global query is V1's mean query."""
    model, x = tiny(mode="cascade"), stimuli()
    with torch.no_grad():
        traj = model.simulate(x, timesteps=2, activity=True)
        v1 = traj.activity["V1"][0]
        assert close(traj.query[0], hand_mean_query(model, "V1", v1))
        assert close(traj.query[1], hand_global_query(
            model, {n: traj.activity[n][1] for n in ("V1", "V2")}))


# ----------------------------------------------------------------------------- parameters
def test_alpha_parameters_named_and_initialised():
    """One learnable alpha per gained area, named "...alpha...", at 0 or at alpha_init."""
    torch.manual_seed(0)
    model = build_model("toy", num_classes=3, widths=(4, 6, 8), hidden=5, key_dim=3, image_size=16)
    alphas = {n: p for n, p in model.named_parameters() if "alpha" in n}
    assert len(alphas) == 5
    assert all(p.requires_grad and p.numel() == 1 and p.item() == 0.0 for p in alphas.values())
    model = build_model("toy", num_classes=3, widths=(4, 6, 8), hidden=5, key_dim=3,
                        image_size=16, alpha_init=0.25)
    assert [p.item() for n, p in model.named_parameters() if "alpha" in n] == [0.25] * 5


def test_projection_shapes():
    """Conv keys/queries are (d, C) 1x1 projections; dense ones are (N, d) per-unit vectors."""
    model = tiny()
    expected = {"V1": (3, 4), "V2": (3, 6), "V4": (3, 8), "IT": (5, 3), "readout": (3, 3)}
    for name, shape in expected.items():
        assert tuple(model.attention.query[name].shape) == shape
        assert tuple(model.attention.key[name].shape) == shape


# ----------------------------------------------------------------------- edge cases
def test_standardize_with_single_position_area_is_finite():
    """image_size=8 gives V4 a 1x1 map; standardizing one value must not give NaN logits."""
    torch.manual_seed(0)
    model = build_model("toy", num_classes=3, widths=(4, 6, 8), hidden=5, key_dim=3,
                        image_size=8, normalization="standardize", alpha_init=0.5).double().eval()
    with torch.no_grad():
        traj = model.simulate(torch.rand(2, 3, 8, 8, dtype=torch.float64), timesteps=2)
    assert torch.isfinite(traj.logits).all()


def test_trajectory_dtype_follows_model():
    """A float64 model's trajectory should be float64 even where nothing acted (T = 1 gains)."""
    model = tiny()
    with torch.no_grad():
        traj = model.simulate(stimuli(), timesteps=1)
    assert traj.gain["V1"].dtype == torch.float64
    assert traj.agreement["V1"].dtype == torch.float64

"""The top-down options of the attention region: a sign-constrained alpha, a gain per feature,
keys that carry their position, learned cue templates. Each is neutral where it should be
(the paper's numbers unchanged) and does what it says (checked by hand)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gattanet_sim import build_model
from gattanet_sim.attention import AttentionRegion, sinusoidal_code
from gattanet_sim.dynamics import feature_key

RETINA_MEAN = torch.tensor((0.4914, 0.4822, 0.4465)).double().view(1, 3, 1, 1)
RETINA_STD = torch.tensor((0.2470, 0.2435, 0.2616)).double().view(1, 3, 1, 1)


def tiny(alpha: float | None = 0.8, seed: int = 0, image_size: int = 16, **options):
    """A tiny float64 toy model in eval mode, every alpha set to `alpha` (None: as built)."""
    torch.manual_seed(seed)
    model = build_model("toy", num_classes=3, widths=(4, 6, 8), hidden=5, key_dim=4,
                        image_size=image_size, **options).double().eval()
    if alpha is not None:
        with torch.no_grad():
            for a in model.attention.alpha.values():
                a.fill_(alpha)
    return model


def images(batch: int = 3, seed: int = 1, side: int = 16) -> torch.Tensor:
    return torch.rand(batch, 3, side, side, dtype=torch.float64,
                      generator=torch.Generator().manual_seed(seed))


def z(f: torch.Tensor) -> torch.Tensor:
    """A loading standardised over its channels or units, by hand: (B, C) -> (B, C)."""
    return (f - f.mean(1, keepdim=True)) / (f.std(1, correction=0, keepdim=True) + 1e-5)


def run(model, x, timesteps=3, query=None):
    with torch.no_grad():
        return model.simulate(x, timesteps, activity=True, query=query)


# ------------------------------------------------------------------------ neutral by default
@pytest.mark.parametrize("options", [
    {"gain_map": "both"},  # a feature alpha of 0: every feature gain is 1
    {"key_position": "learned"},  # a learned code started at 0
    {"alpha_sign": "positive", "alpha_init": 0.3},  # softplus(rho) started at alpha_init
    {"cue_classes": 3},  # learned templates that nothing uses without a cue
    {"gain_map": "both", "feature_pool": "divisive"},  # every field 1: every pooled gain 1
])
def test_new_options_are_neutral_where_they_start(options):
    """With the starting values of an option the simulation is the paper's, number for number."""
    plain_options = {"alpha_init": 0.3} if "alpha_init" in options else {}
    plain = tiny(alpha=None if plain_options else 0.8, **plain_options)
    model = tiny(alpha=None if plain_options else 0.8, **options)
    keep_own = "attention.alpha." if "alpha_sign" in options else "-"  # rho, not alpha
    state = {k: v for k, v in plain.state_dict().items() if not k.startswith(keep_own)}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected
    assert all(k.startswith(("attention.feature_alpha", "attention.position", "attention.cues",
                             "attention.alpha")) for k in missing)
    x = images()
    a, b = run(plain, x), run(model, x)
    atol = 1e-7 if "alpha_sign" in options else 1e-12  # rho = softplus^-1(0.3) in float32
    assert torch.allclose(a.logits, b.logits, atol=atol, rtol=0)
    assert torch.allclose(a.query, b.query, atol=atol, rtol=0)


def test_defaults_are_the_paper_options():
    config = build_model("toy", num_classes=3).config
    assert (config["alpha_sign"], config["gain_map"], config["key_position"], config["cue_classes"]) \
        == ("free", "position", "none", 0)
    assert not hasattr(build_model("toy", num_classes=3).attention, "feature_alpha")


# --------------------------------------------------------------------------- alpha sign
def test_positive_alpha_is_softplus_and_never_negative():
    model = tiny(alpha=None, alpha_sign="positive")
    region = model.attention
    for name in region.gained:  # alpha_init 0 starts at softplus(0) = ln 2
        assert region.alpha_of(name).item() == pytest.approx(math.log(2))
    with torch.no_grad():
        region.alpha["V1"].fill_(-5.0)
    assert region.alpha_of("V1").item() == pytest.approx(math.log1p(math.exp(-5.0)))
    x = images()
    traj = run(model, x, timesteps=2)
    expected = 2 * torch.sigmoid(region.alpha_of("V1") * traj.agreement["V1"][1])
    assert torch.allclose(traj.gain["V1"][1], expected, atol=1e-12)
    assert region.alpha_values()["V1"] > 0


def test_positive_alpha_learns_through_the_softplus():
    model = tiny(alpha=None, alpha_sign="positive").train()
    model(images()).sum().backward()
    assert all(a.grad is not None and a.grad.abs().item() > 0 for a in model.attention.alpha.values())


# ---------------------------------------------------------------------- feature-based gain
def test_feature_gain_is_two_sigmoid_of_the_query_loading_by_hand():
    """gain_map feature: g_c = 2 sigmoid(alpha z_c), z the standardised f = W_k^T q of the previous
    step's query, the same at every position; the rate of step 1 is the ungained rate times it."""
    model = tiny(alpha=0.9, gain_map="feature")
    x = images()
    traj = run(model, x, timesteps=2)
    q = traj.query[0]  # (B, d): sets step 1's gains
    for name in model.attention.gained:
        K = model.attention.key[name]  # (d, C) conv | (N, d) dense
        f = q @ K if traj.activity[name].dim() == 5 else q @ K.T
        assert torch.allclose(traj.feature_gain[name][1], 2 * torch.sigmoid(0.9 * z(f)), atol=1e-12), name
        assert torch.equal(traj.gain[name][1], torch.ones_like(traj.gain[name][1]))  # no map
    # V1 by hand: relu(drive at step 1) * g_c
    v1 = model.areas["V1"]
    with torch.no_grad():
        plain = v1.activate(v1.drive((x - RETINA_MEAN) / RETINA_STD, 1))  # (B, C, H, W)
    expected = plain * traj.feature_gain["V1"][1][:, :, None, None]
    assert torch.allclose(traj.activity["V1"][1], expected, atol=1e-12)


def test_both_gains_multiply_and_have_their_own_alphas():
    model = tiny(alpha=0.7, gain_map="both")
    with torch.no_grad():
        for a in model.attention.feature_alpha.values():
            a.fill_(-1.5)
    traj = run(model, images(), timesteps=2)
    q = traj.query[0]
    f = q @ model.attention.key["V2"]  # (B, C)
    assert torch.allclose(traj.feature_gain["V2"][1], 2 * torch.sigmoid(-1.5 * z(f)), atol=1e-12)
    assert torch.allclose(traj.gain["V2"][1], 2 * torch.sigmoid(0.7 * traj.agreement["V2"][1]), atol=1e-12)
    assert set(model.attention.alpha_values()) >= {"V2", "V2:feature"}


def test_feature_gain_relaxes_with_the_gain_time_constant():
    model = tiny(alpha=0.9, gain_map="feature", gain_tau=2.0)
    traj = run(model, images(), timesteps=2)
    f = traj.query[0] @ model.attention.key["V4"]
    target = 2 * torch.sigmoid(0.9 * z(f))
    assert torch.allclose(traj.feature_gain["V4"][1], 1 + (target - 1) / 2, atol=1e-12)


def test_feature_gain_amplifies_the_features_the_query_loads_on():
    """A cue that loads on one channel of V1 raises that channel everywhere and no other."""
    model = tiny(alpha=3.0, gain_map="feature")
    K = model.attention.key["V1"]  # (d, C)
    cue = torch.linalg.pinv(K.T) @ F.one_hot(torch.tensor(2), K.shape[1]).double()  # W_k^T q = e_2
    traj = run(model, images(), timesteps=2, query=cue)
    g = traj.feature_gain["V1"][1]  # (B, C)
    C = K.shape[1]
    high, low = (C - 1) / math.sqrt(C - 1), -1 / math.sqrt(C - 1)  # e_2 standardised, by hand
    assert torch.allclose(g[:, 2], 2 * torch.sigmoid(torch.tensor(3.0 * high, dtype=g.dtype)).expand(len(g)), atol=1e-4)
    others = torch.cat([g[:, :2], g[:, 3:]], 1)
    expected = 2 * torch.sigmoid(torch.tensor(3.0 * low, dtype=g.dtype)).expand_as(others)
    assert torch.allclose(others, expected, atol=1e-4)
    assert (g[:, 2] > 1.5).all() and (others < 1).all()  # the loaded channel up, the rest down


def test_divisive_feature_pool_by_hand_shares_one_budget():
    """feature_pool divisive: g_c = A_c (1 + s) / (s + sum_c A_c E_c / sum_c E_c), A the feature
    gain without the pool and E_c the mean |rate| of channel c before any gain, so every channel
    is divided by one number: the ratios between channels stay, and the drive-weighted mean gain
    m (1 + s) / (s + m) moves less from 1 than the unpooled mean m: a budget."""
    free = tiny(alpha=0.0, gain_map="feature")
    pooled = tiny(alpha=0.0, gain_map="feature", feature_pool="divisive")
    with torch.no_grad():
        for model in (free, pooled):
            for a in model.attention.alpha.values():
                a.fill_(2.5)
    x = images()
    a, b = run(free, x, timesteps=2), run(pooled, x, timesteps=2)
    assert torch.allclose(a.query[0], b.query[0], atol=1e-12)  # step 0 is ungained in both
    v1 = free.areas["V1"]
    with torch.no_grad():
        plain = v1.activate(v1.drive((x - RETINA_MEAN) / RETINA_STD, 1))  # (B, C, H, W)
    e = plain.abs().mean(dim=(2, 3))  # (B, C)
    field = a.feature_gain["V1"][1]  # (B, C): A
    m = (field * e).sum(1, keepdim=True) / e.sum(1, keepdim=True)  # (B, 1)
    assert torch.allclose(b.feature_gain["V1"][1], field * 2 / (1 + m), atol=1e-12)  # s = 1
    assert ((m - 1).abs() > 0.01).all()  # the field is far from flat: the check has teeth
    g = b.feature_gain["V1"][1]
    pooled_mean = (g * e).sum(1) / e.sum(1)  # (B,)
    assert ((pooled_mean - 1).abs() < (m.squeeze(1) - 1).abs()).all()
    ratio = g / field  # one number per image
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), atol=1e-12)


def test_divisive_feature_pool_needs_feature_gains():
    with pytest.raises(ValueError, match="feature_pool acts on feature gains"):
        tiny(feature_pool="divisive")


# --------------------------------------------------------------------------- position code
def test_sinusoidal_code_is_unit_norm_and_peaks_at_its_place():
    code = sinusoidal_code(16, 8, 8)  # (d, H, W)
    assert torch.allclose(code.norm(dim=0), torch.ones(8, 8), atol=1e-6)
    here = code[:, 2, 5]
    similarity = torch.einsum("d,dhw->hw", here, code)  # (H, W)
    assert similarity.argmax().item() == 2 * 8 + 5
    assert similarity[2, 5] == pytest.approx(1.0, abs=1e-6)
    row = similarity[2, 5:]  # falls monotonically with distance, on both axes
    assert (row[1:] < row[:-1]).all() and (similarity[3:, 5] < similarity[2:-1, 5]).all()
    with pytest.raises(ValueError, match="key_dim >= 4"):
        sinusoidal_code(3, 4, 4)


def test_position_code_adds_to_keys_and_to_queries_by_hand():
    region = AttentionRegion({"A": ("conv", 5)}, key_dim=4, key_position="sinusoidal")
    rate = torch.rand(2, 5, 4, 4)
    q = torch.randn(2, 4)
    P = sinusoidal_code(4, 4, 4)  # (d, H, W)
    keys = torch.einsum("dc,bchw->bdhw", region.key["A"], rate) + P  # k(x) = W_k r(x) + P(x)
    expected = torch.einsum("bdhw,bd->bhw", keys, q).flatten(1)
    assert torch.allclose(region.agreement_map("A", rate, q), expected, atol=1e-5)
    queries = torch.einsum("dc,bchw->bdhw", region.query["A"], rate) + rate.mean(1, keepdim=True) * P
    assert torch.allclose(region.mean_query("A", rate), queries.mean(dim=(2, 3)), atol=1e-5)


def test_learned_position_code_needs_sides_and_learns():
    with pytest.raises(ValueError, match="side"):
        AttentionRegion({"A": ("conv", 5)}, key_dim=4, key_position="learned")
    model = tiny(alpha=0.5, key_position="learned").train()
    assert model.attention.position["V1"].shape == (4, 8, 8)  # V1 of a 16-pixel toy model
    model(images(), timesteps=2).sum().backward()
    assert model.attention.position["V1"].grad.abs().sum() > 0


def _patch(side: int = 32, left: bool = True) -> torch.Tensor:
    """A bright square on grey, in the left or right half: (1, 3, side, side)."""
    x = torch.full((1, 3, side, side), 0.5, dtype=torch.float64)
    c = side // 4 if left else 3 * side // 4
    x[..., side // 2 - 4:side // 2 + 4, c - 4:c + 4] = 1.0
    return x


@pytest.mark.parametrize("position, strong", [("sinusoidal", True), ("none", False)])
def test_a_location_template_raises_the_gain_at_its_location(position, strong):
    """Spatial attention: a template made from a stimulus shown alone on the left raises V2's gain
    on the left of a display with the same stimulus on both sides, more than a template made on
    the right does (and the other way round). Keys without a position code can only attend to
    features, identical on both sides: there the effect is absent."""
    model = tiny(alpha=None, image_size=32, key_position=position, alpha_sign="positive", alpha_init=4.0)
    both = torch.maximum(_patch(left=True), _patch(left=False))  # (1, 3, 32, 32)
    left_t = run(model, _patch(left=True), timesteps=1, query="off").query[0]  # (1, d) templates
    right_t = run(model, _patch(left=False), timesteps=1, query="off").query[0]
    gain_l = run(model, both, timesteps=2, query=left_t[0]).gain["V2"][1, 0]  # (H, W) of V2
    gain_r = run(model, both, timesteps=2, query=right_t[0]).gain["V2"][1, 0]
    half = gain_l.shape[1] // 2
    effect = ((gain_l[:, :half] - gain_r[:, :half]).mean() - (gain_l[:, half:] - gain_r[:, half:]).mean()).item()
    if strong:
        assert effect > 0.01  # 0.025 here; 1e-6 with the P(x) . q term removed
    else:
        assert abs(effect) < 1e-3


# ------------------------------------------------------------------------------- cue templates
def test_cue_templates_are_learned_parameters_of_the_region():
    model = tiny(alpha=0.5, cue_classes=3).train()
    assert model.attention.cues.shape == (3, 4)
    labels = torch.tensor([0, 2, 1])
    out = model(images(), timesteps=2, query=model.attention.cues[labels])  # (B, d) per-trial cues
    out.sum().backward()
    assert model.attention.cues.grad.abs().sum() > 0
    assert feature_key("V1") == "V1:feature"

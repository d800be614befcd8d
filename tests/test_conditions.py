"""Attention conditions: where the global query comes from (bottom-up, template, mixed, off)."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_images, tiny_stepped

from gattanet_sim import build_model
from gattanet_sim.attention import QuerySource, top_down_query

GAINED = ("V1", "V2", "V4", "IT", "readout")


def tiny(alpha: float = 0.7, mode: str = "sweep", **options):
    """A tiny recipe model (norm_steps 2) whose per-step batch-norm rows differ, eval mode."""
    return tiny_stepped(alpha, mode=mode, **options)


images = tiny_images


def same(a, b) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("per_image", [True, False])
def test_template_equal_to_the_pooled_query_reproduces_bottom_up(per_image):
    """At T = 2 the only query that acts is step 0's: as a template it changes nothing."""
    model, x = tiny(), images()
    with torch.no_grad():
        bottom_up = model.simulate(x, 2, activity=True)
        template = bottom_up.query[0] if per_image else bottom_up.query[0, 1]
        cued = model.simulate(x if per_image else x[1:2].expand(3, -1, -1, -1), 2, activity=True,
                              query=template)
    if per_image:
        assert same(cued.logits, bottom_up.logits)
        for name in GAINED:
            assert same(cued.gain[name], bottom_up.gain[name])
            assert same(cued.activity[name], bottom_up.activity[name])
    else:
        assert same(cued.logits[1], bottom_up.logits[1, 1:2].expand(3, -1))
    assert not same(bottom_up.gain["V1"][1], torch.ones_like(bottom_up.gain["V1"][1]))


def test_template_replaces_the_query_and_sets_the_gains():
    """Another template gives other gains, and the trajectory's query is the template."""
    model, x = tiny(), images()
    template = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    with torch.no_grad():
        bottom_up = model.simulate(x, 3)
        cued = model.simulate(x, 3, query=template)
    assert same(cued.query[0], template.expand(4, 3))
    assert same(cued.logits[0], bottom_up.logits[0])  # no gain acts at t = 0
    assert not same(cued.gain["V2"][1], bottom_up.gain["V2"][1])
    assert not same(cued.logits[2], bottom_up.logits[2])


def test_mixed_ends_are_bottom_up_and_template():
    model, x = tiny(), images()
    template = torch.randn(4, 3, dtype=torch.float64)
    with torch.no_grad():
        bottom_up = model.simulate(x, 3)
        pure = model.simulate(x, 3, query=template)
        mix0 = model.simulate(x, 3, query=QuerySource("mixed", template, beta=0.0))
        mix1 = model.simulate(x, 3, query=QuerySource("mixed", template, beta=1.0))
        half = model.simulate(x, 3, query=QuerySource("mixed", template, beta=0.5))
    assert same(mix0.logits, bottom_up.logits) and same(mix0.query, bottom_up.query)
    assert same(mix1.logits, pure.logits) and same(mix1.query, pure.query)
    expected = 0.5 * template + 0.5 * model.attention.observe(
        {n: a[0] for n, a in model.simulate(x, 1, activity=True).activity.items()}).query
    assert same(half.query[0], expected)
    assert same(top_down_query(bottom_up.query[0], template, 0.25),
                0.25 * template + 0.75 * bottom_up.query[0])


def first_wave(model, x: torch.Tensor) -> torch.Tensor:
    """The feedforward pass with every area normalised by the statistics of its first step."""
    x = model.backbone.retina(x)
    for i, area in enumerate(model.areas.values()):
        x = area.activate(area.drive(x, model.first_step(i)))
    return x


@pytest.mark.parametrize("mode", ["sweep", "cascade"])
def test_off_is_gain_one_and_the_plain_backbone_at_every_step(mode):
    """off: gain 1 everywhere, each area with the batch-norm statistics of its own first step
    (step 0 in sweep mode: the plain backbone; step i for area i in cascade mode), whatever the
    alphas (bottom-up with alphas 0 is not: its later steps use the attended statistics)."""
    model, x = tiny(alpha=0.0, mode=mode), images()
    T = 6 if mode == "cascade" else 3
    first = 4 if mode == "cascade" else 0  # the read-out's first step
    with torch.no_grad():
        off = model.simulate(x, T, query="off")
        bottom_up = model.simulate(x, T)
        plain = first_wave(model, x)
        strong = tiny(alpha=5.0, mode=mode).simulate(x, T, query="off")
    if mode == "sweep":
        assert same(plain, model.backbone(x))
    else:
        assert not same(plain, model.backbone(x))  # step 0's rows: areas that had not fired
    for name in GAINED:
        assert (off.gain[name] == 1).all() and (strong.gain[name] == 1).all(), name
    for t in range(first, T):
        assert same(off.logits[t], plain), t
        assert same(strong.logits[t], plain), t  # whatever the alphas
    assert not same(bottom_up.logits[-1], plain)  # step statistics of their own
    assert off.query is not None and not (off.query == 0).all()  # the region still reads


def test_template_in_cascade_mode_acts_from_the_next_step():
    """Cascade: step 1's gains come from step 0's query; as a template it changes nothing there."""
    model, x = tiny(mode="cascade"), images()
    with torch.no_grad():
        bottom_up = model.simulate(x, 6, activity=True)
        cued = model.simulate(x, 6, activity=True, query=bottom_up.query[0])
        other = model.simulate(x, 6, activity=True, query=-3 * bottom_up.query[0])
    assert same(cued.activity["V2"][1], bottom_up.activity["V2"][1])
    assert same(cued.gain["V1"][1], bottom_up.gain["V1"][1])
    assert not same(other.gain["V1"][1], bottom_up.gain["V1"][1])


@pytest.mark.parametrize("kwargs, match", [
    ({"condition": "template"}, "needs a template"),
    ({"condition": "sideways"}, "condition must be one of"),
    ({"condition": "off", "template": torch.zeros(3)}, "takes no template"),
    ({"condition": "mixed", "template": torch.zeros(3), "beta": 1.5}, "beta"),
    ({"condition": "template", "template": torch.zeros(2, 2, 3)}, "template is"),
])
def test_bad_query_sources_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        QuerySource(**kwargs)


def test_template_of_the_wrong_size_and_conditions_without_attention_are_refused():
    model, x = tiny(), images()
    with pytest.raises(ValueError, match="template has 5 dimensions"):
        model.simulate(x, 2, query=torch.zeros(5, dtype=torch.float64))
    plain = build_model("toy", num_classes=3, widths=(4, 6, 8), hidden=5, image_size=16,
                        attention=False)
    with pytest.raises(ValueError, match="needs an attention region"):
        plain.simulate(x.float(), 2, query="off")

"""Controls and "cannot measure" signals: a query decodable only through the read-out, the
classifier's own chance under shuffled labels, onsets the architecture forces, and reaction
times too coarse to compare. Each recovers a truth planted in a small synthetic recording."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from gattanet_sim import build_model, experiment
from gattanet_sim.analysis.cueing import reaction_times
from gattanet_sim.analysis.query_space import NO_AREA_QUERIES, query_space
from gattanet_sim.analysis.time_course import min_onsets, time_course
from gattanet_sim.data import CIFAR10_CLASSES
from gattanet_sim.io import atomic_save
from gattanet_sim.recording import ProbeError, RecordingWriter, open_recording, time_mapping

# --- query space: the read-out's share of the query, and shuffled labels ---------------------

VEHICLES = [0, 1, 8, 9]


def _area_queries(readout_signal: bool = True, per_class: int = 16, dim: int = 6,
                  seed: int = 0) -> xr.Dataset:
    """CIFAR-10 images whose area queries (V1, V2, readout) are noise, the read-out's plus (if
    `readout_signal`) a class mean and a large animal/vehicle offset; the global query is their
    mean, so it carries the classes only through the read-out."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), per_class)  # (image,)
    areas = rng.normal(size=(len(labels), 3, dim))  # (image, area, key_dim)
    if readout_signal:
        areas[:, 2] += 3 * rng.normal(size=(10, dim))[labels]
        areas[:, 2, 0] += np.where(np.isin(labels, VEHICLES), 10.0, -10.0)
    return xr.Dataset(
        {"global_query": (("presentation", "key_dim", "time_bin"), areas.mean(1)[:, :, None]),
         "area_queries": (("presentation", "area", "key_dim", "time_bin"), areas[..., None])},
        coords={"label": ("presentation", labels),
                "stimulus_id": ("presentation", [f"n/{i}" for i in range(len(labels))]),
                "class": list(CIFAR10_CLASSES), "area": ["V1", "V2", "readout"], "time_bin": [0]})


def test_query_without_readout_is_at_chance_when_only_the_readout_carries_the_groups():
    table = query_space(_area_queries(), condition=None, permutations=8).set_index(["signal", "task"])
    query, without = table.loc[("query", "group")], table.loc[("query_without_readout", "group")]
    assert query.accuracy > 0.95 and query.ci_low > query.shuffled_ci_high
    assert table.loc[("query", "class"), "accuracy"] > 0.8
    assert without.ci_low < without.chance and without.accuracy <= without.shuffled_ci_high + 0.08
    assert table.loc[("query_without_readout", "class"), "accuracy"] < 0.2
    assert (table.note == "").all()
    assert list(table.index.get_level_values("signal")) == ["query", "query", "query_without_readout",
                                                            "query_without_readout"]


@pytest.mark.parametrize("readout_signal", [True, False])
def test_shuffled_labels_score_chance_whatever_the_query_holds(readout_signal):
    ds = _area_queries(readout_signal, seed=1)
    table = query_space(ds, condition=None, permutations=10).set_index(["signal", "task"])
    for signal in ("query", "query_without_readout"):
        row = table.loc[(signal, "class")]
        assert row.shuffled_ci_low <= row.chance <= row.shuffled_ci_high  # 10 balanced classes: 0.1
        group = table.loc[(signal, "group")]  # 60:40 groups: a guess independent of the label
        assert 0.52 - 0.05 < group.shuffled_accuracy < 0.6 + 0.03  # scores between 0.6^2+0.4^2 and 0.6
        assert group.shuffled_ci_low <= group.chance + 0.03
    halves = {"first": CIFAR10_CLASSES[:5], "second": CIFAR10_CLASSES[5:]}  # balanced: chance 0.5
    row = query_space(ds, condition=None, groups=halves, permutations=10).set_index(["signal", "task"])
    balanced = row.loc[("query", "group")]
    assert balanced.chance == 0.5 and balanced.shuffled_ci_low <= 0.5 <= balanced.shuffled_ci_high


def test_without_area_queries_the_readout_control_is_said_to_be_missing():
    ds = _area_queries().drop_vars("area_queries")
    table = query_space(ds, condition=None, permutations=2)
    assert set(table.signal) == {"query"}
    assert (table.note == NO_AREA_QUERIES).all()
    # a region that does not read the read-out (named by time_mapping): every area is kept
    two = _area_queries().isel(area=[0, 1]).assign_attrs(
        time_mapping=json.dumps({"V1": [50, 20], "V2": [50, 20], "readout": [50, 20]}))
    rows = query_space(two, condition=None, permutations=2).set_index("signal")
    assert rows.loc["query_without_readout", "note"].iloc[0].startswith("the attention region does not read")


def tiny_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = build_model("toy", num_classes=10, widths=(4, 6, 8), hidden=12, key_dim=5,
                        alpha_init=0.4).eval()
    path = tmp_path / "tiny.pt"
    atomic_save({"model": model.state_dict(), "model_config": model.config,
                 "config": {"dataset": "stimuli", "timesteps": 2}}, path)
    return path, model


def test_experiment_records_area_queries_whose_mean_is_the_bottom_up_query(tmp_path):
    out = tmp_path / "q.nc"
    path, model = tiny_checkpoint(tmp_path)
    assert experiment.main([str(path), "--paradigm", "gratings", "--orientations", "0,90",
                            "--conditions", "bottom-up", "--signals", "query,area_queries,logits,activity",
                            "--units", "channel-mean", "--out", str(out)]) == 0
    ds = open_recording(out)
    assert ds.area_queries.dims == ("presentation", "area", "key_dim", "time_bin")
    assert ds.area.values.tolist() == ["V1", "V2", "V4", "IT", "readout"]  # the hierarchy's order
    np.testing.assert_allclose(ds.area_queries.mean("area").values, ds.global_query.values, rtol=1e-5,
                               atol=1e-7)
    # each area's entry is that area's query: V1's its channel means projected by W_q, the
    # read-out's its logits (x W_q, over its units)
    v1_rates = ds.activity.sel(region="V1").transpose("time_bin", "presentation", "neuroid")
    means = torch.as_tensor(v1_rates.values)  # (T, B, channel): channel means
    v1 = (means @ model.attention.query["V1"].detach().T).permute(1, 2, 0)  # (B, d, T)
    np.testing.assert_allclose(ds.area_queries.sel(area="V1").values, v1.numpy(), rtol=1e-4, atol=1e-6)
    logits = torch.as_tensor(ds.logits.transpose("time_bin", "presentation", "class").values)
    readout = (logits @ model.attention.query["readout"].detach() / 10).permute(1, 2, 0)  # (B, d, T)
    np.testing.assert_allclose(ds.area_queries.sel(area="readout").values, readout.numpy(), rtol=1e-4,
                               atol=1e-6)
    with pytest.raises(ProbeError, match="area_queries signal needs"):
        RecordingWriter(tmp_path / "x.nc", {}, [0], ("area_queries",), 5, ["a"], ["stimulus_id"], {})


# --- time course: onsets the architecture forces --------------------------------------------

AREAS = ["V1", "V2", "V4", "IT"]
MAPPING = json.dumps({a: [50.0, 20.0] for a in AREAS + ["readout"]})


def _onset_recording(onsets: dict[str, int], mode: str = "cascade", keys: str = "previous",
                     stimuli: int = 30, units: int = 6, times: int = 7) -> xr.Dataset:
    """Areas silent before they fire (cascade: area i at step i), attended = unattended x 1.3
    (with noise) from each area's planted onset; valid and invalid cues of the same stimuli."""
    rng = np.random.default_rng(0)
    regions = np.repeat(AREAS, units)
    base = rng.uniform(0.5, 2, (stimuli, len(regions), times))  # (stimulus, neuroid, time_bin)
    att = base.copy()
    for i, area in enumerate(AREAS):
        cols = regions == area
        if mode == "cascade":
            base[:, cols, :i] = att[:, cols, :i] = 0
        att[:, cols, onsets[area]:] *= 1.3 + 0.05 * rng.standard_normal((stimuli, 1, times - onsets[area]))
    values = np.concatenate([att, base])  # (presentation, neuroid, time_bin)
    n = 2 * stimuli
    config = {"name": "toy", "mode": mode, "keys": keys, "readout_gain": True, "attention": True}
    return xr.Dataset(
        {"activity": (("presentation", "neuroid", "time_bin"), values)},
        coords={"stimulus_id": ("presentation", np.tile([f"s{s}" for s in range(stimuli)], 2)),
                "repetition": ("presentation", np.zeros(n, int)),
                "condition": ("presentation", np.full(n, "template")),
                "cue": ("presentation", np.repeat(["valid", "invalid"], stimuli)),
                "region": ("neuroid", regions), "time_bin": np.arange(times)},
        attrs={"model_config": json.dumps(config), "mode": mode, "time_mapping": MAPPING})


def _onsets(ds: xr.Dataset) -> pd.DataFrame:
    return time_course(ds, attended={"cue": "valid"}, unattended={"cue": "invalid"})[1]


def test_onsets_on_the_cascade_minimum_are_forced_and_a_later_one_is_not():
    minimum = {"V1": 1, "V2": 2, "V4": 3, "IT": 4}  # area i: first fires at i, its gain at i + 1
    onsets = _onsets(_onset_recording(minimum))
    assert onsets.onset_bin.tolist() == [1, 2, 3, 4]
    assert onsets.min_onset.tolist() == [1, 2, 3, 4]
    assert (onsets.min_onsets == "V1:1;V2:2;V4:3;IT:4").all()
    assert onsets.forced.all()
    unmodulated = _onset_recording(minimum)  # V1 never modulated: the others' order is still forced
    values = unmodulated["activity"].values  # (presentation, neuroid, time_bin): valid rows, then invalid
    values[:30, :6] = values[30:, :6]  # V1's units (the first 6): valid = invalid
    assert _onsets(unmodulated).onset_bin.isna().tolist() == [True, False, False, False]
    assert _onsets(unmodulated).forced.all()
    later = _onsets(_onset_recording({**minimum, "IT": 6}))  # IT modulated two steps after it could be
    assert later.onset_bin.tolist() == [1, 2, 3, 6]
    assert not later.forced.any()
    # current keys: area i can be gained at the step it first fires (from step 1)
    current = _onsets(_onset_recording({"V1": 1, "V2": 1, "V4": 2, "IT": 3}, keys="current"))
    assert (current.min_onsets == "V1:1;V2:1;V4:2;IT:3").all() and current.forced.all()


def test_the_experiment_s_feedback_delays_move_the_floors():
    """`experiment --feedback-delays` records its delays in the attrs, not in the model config."""
    ds = _onset_recording({"V1": 1, "V2": 2, "V4": 3, "IT": 4})
    ds.attrs["feedback_delays"] = json.dumps({"V1": 4, "V2": 2, "V4": 0, "IT": 0, "readout": 0})
    floors = min_onsets(ds)
    assert (floors["V1"], floors["V2"], floors["V4"]) == (5, 4, 3)


def test_sweep_minimum_is_step_one_for_every_area_and_missing_attributes_say_nothing():
    sweep = _onsets(_onset_recording({a: 1 for a in AREAS}, mode="sweep"))
    assert (sweep.min_onsets == "V1:1;V2:1;V4:1;IT:1").all() and sweep.forced.all()
    assert not _onsets(_onset_recording({"V1": 1, "V2": 2, "V4": 1, "IT": 1}, mode="sweep")).forced.any()
    bare = _onset_recording({"V1": 1, "V2": 2, "V4": 3, "IT": 4})
    bare.attrs = {}
    onsets = _onsets(bare)
    assert onsets.forced.isna().all() and (onsets.min_onsets == "").all() and onsets.min_onset.isna().all()
    # an area the region neither reads nor gains, below every gained one, is never modulated
    ds = _onset_recording({"V1": 1, "V2": 2, "V4": 3, "IT": 4})
    ds.attrs["model_config"] = json.dumps({"keys": "previous", "attention_areas": ["V2", "V4", "IT"]})
    assert np.isnan(min_onsets(ds)["V1"]) and min_onsets(ds)["readout"] == 5


@pytest.mark.parametrize("mode, keys, options", [
    ("cascade", "previous", {}), ("cascade", "current", {}), ("sweep", "previous", {}),
    ("cascade", "previous", {"readout_gain": False}),
    ("cascade", "previous", {"attention_areas": ["V2", "V4", "IT", "readout"]}),
    ("sweep", "current", {"attention_areas": ["V2", "V4", "IT", "readout"]}),
    ("cascade", "previous", {"feedback_delays": [2, 3, 0, 2, 0]}),  # V2, IT: via their input first
    ("sweep", "previous", {"feedback_delays": "V1=2,IT=1"})])
def test_minimum_onsets_are_where_the_simulator_first_lets_attention_act(mode, keys, options):
    """Two templates through the same model: the first step each area's rate differs between
    them (NaN: never) is the rule's minimum."""
    torch.manual_seed(0)
    model = build_model("toy", num_classes=10, widths=(4, 6, 8), hidden=12, key_dim=5, alpha_init=0.8,
                        mode=mode, keys=keys, preset="paper", **options).double().eval()
    images = torch.rand(4, 3, 32, 32, dtype=torch.float64)
    a, b = torch.randn(2, 5, dtype=torch.float64)
    with torch.no_grad():
        first = model.simulate(images, 7, activity=True, query=a).activity
        second = model.simulate(images, 7, activity=True, query=b).activity
    changed = {}
    for name in model.areas:
        steps = np.flatnonzero([not torch.allclose(first[name][t], second[name][t], atol=1e-12)
                                for t in range(7)])
        changed[name] = float(steps[0]) if len(steps) else np.nan
    ds = xr.Dataset(attrs={"model_config": json.dumps(model.config), "mode": model.mode,
                           "time_mapping": json.dumps(time_mapping(model.mode, list(model.areas)))})
    rule = min_onsets(ds)
    assert list(rule) == list(changed)
    np.testing.assert_array_equal(list(rule.values()), list(changed.values()))


# --- reaction times: can the read-out resolve the cues at all? ------------------------------


def _rt_recording(crossing: dict[str, list[int]], images: int = 20, times: int = 5) -> xr.Dataset:
    """Per cue, each image's first confident bin (cycled over the list; -1: never crosses):
    logits all equal before it, the label's at 4 from it (softmax ~0.86 over 10 classes)."""
    labels = np.arange(images) % 10
    logits, coords = [], []
    for cue, bins in crossing.items():
        z = np.ones((images, 10, times))  # (image, class, time_bin)
        for i in range(images):
            first = bins[i % len(bins)]
            if first >= 0:
                z[i, labels[i], first:] = 4.0
        logits.append(z)
        coords += [("template", cue, f"c/{i}", labels[i]) for i in range(images)]
    frame = pd.DataFrame(coords, columns=["condition", "cue", "stimulus_id", "label"])
    return xr.Dataset({"logits": (("presentation", "class", "time_bin"), np.concatenate(logits))},
                      coords={**{c: ("presentation", frame[c].to_numpy()) for c in frame.columns},
                              "class": list(CIFAR10_CLASSES), "time_bin": np.arange(times)})


def test_distinct_rts_and_crossed_fraction_flag_an_rt_that_cannot_resolve_the_cues():
    ds = _rt_recording({"valid": [1], "neutral": [1], "invalid": [2, 3, 4, -1, 2]})
    table = reaction_times(ds).set_index("cue")
    assert table.loc["valid", "rt_bin_minus_neutral"] == 0
    assert table.loc["valid", "rt_bin_diff_ci_low"] == 0 == table.loc["valid", "rt_bin_diff_ci_high"]
    assert table.loc["valid", "distinct_rts"] == 1  # every RT is bin 1: cannot measure
    assert table.loc["neutral", "distinct_rts"] == 1
    assert table.loc["invalid", "distinct_rts"] == 4  # bins 2, 3, 4 and the neutral cue's 1
    assert table.loc["valid", "crossed_fraction"] == 1
    assert table.loc["invalid", "crossed_fraction"] == pytest.approx(0.8)
    spread = reaction_times(_rt_recording({"valid": [1, 2], "neutral": [2, 3]})).set_index("cue")
    assert spread.loc["valid", "distinct_rts"] == 3 and spread.loc["neutral", "distinct_rts"] == 2

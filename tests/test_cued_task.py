"""The cued detection task: arrays whose answer is known, cues built as documented, a training
task that resumes exactly, and an experiment whose recording the detection analysis reads."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import StopAfter, assert_same_run

from gattanet_sim import cued_task, experiment, train
from gattanet_sim.analysis.detection import detection_table
from gattanet_sim.recording import open_recording
from gattanet_sim.stimuli import StimulusError, cued_detection, detection_arrays

K = 5


def coloured(n_per_class: int = 4, side: int = 16):
    """Images whose class is their grey level, (K * n, 3, side, side) uint8, and labels."""
    labels = torch.arange(K).repeat_interleave(n_per_class)
    levels = (40 + 40 * labels).to(torch.uint8)  # 40, 80, ..., 200
    return levels[:, None, None, None].expand(-1, 3, side, side).clone(), labels


def cell_classes(displays: torch.Tensor, grid: int = 2) -> torch.Tensor:
    """The class of every cell of colour-coded displays, (B, grid * grid) row-major."""
    b, _, h, w = displays.shape
    cells = displays[:, 0].reshape(b, grid, h // grid, grid, w // grid).mean(dim=(2, 4))  # (B, g, g)
    return ((cells.flatten(1) * 255 - 40) / 40).round().long()


def test_arrays_hold_the_question_exactly_when_present():
    pool, pool_labels = coloured()
    items, item_labels = coloured(n_per_class=40)
    g = torch.Generator().manual_seed(0)
    arrays, question, present, cell = detection_arrays(items, item_labels, pool, pool_labels, K, g)
    classes = cell_classes(arrays)  # (B, 4)
    holds = (classes == question[:, None]).sum(1)  # cells of the question's class
    assert torch.equal(holds, present.long())  # one cell when present, none when absent
    assert torch.equal(classes[torch.arange(len(cell)), cell], item_labels)  # the item is where it says
    assert torch.equal(question[present], item_labels[present])
    assert 0.35 < present.float().mean() < 0.65
    assert len(set(question[~present].tolist())) == K  # absent questions cover the classes


def test_cued_detection_paradigm_adds_grey_controls_and_checks_its_source():
    images, labels = coloured(n_per_class=10)
    names = [f"c{i}" for i in range(K)]
    s = cued_detection(images, labels, names, n=40, grey=5, seed=3)
    assert len(s) == 45 and (s.meta.display == "grey").sum() == 5
    grey = s.meta.display == "grey"
    assert (s.meta.present[grey] == 0).all() and torch.all(s.images[torch.from_numpy(grey.to_numpy().copy())] == 0.5)
    assert s.meta.question.tolist() == [names[q] for q in s.meta.label]
    assert torch.equal(s.images, cued_detection(images, labels, names, n=40, grey=5, seed=3).images)
    with pytest.raises(StimulusError, match="each with images"):
        cued_detection(images[labels < 3], labels[labels < 3], names, n=10)


def test_cue_queries_by_hand():
    templates = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, -2.0], [3.0, 3.0, 3.0]])  # (K=3, d=3)
    mean = templates.mean(0)
    kind = torch.tensor([cued_task.VALID, cued_task.INVALID, cued_task.NEUTRAL, cued_task.NEGATED,
                         cued_task.SHUFFLED, cued_task.NONE])
    cued = torch.tensor([0, 2, 1, 1, 2, 0])
    q = cued_task.cue_queries(templates, kind, cued, torch.Generator().manual_seed(0))
    assert torch.equal(q[0], templates[0]) and torch.equal(q[1], templates[2])
    assert torch.equal(q[2], mean) and torch.allclose(q[3], 2 * mean - templates[1])
    assert sorted(q[4].tolist()) == sorted(templates[2].tolist())  # its values, another order
    assert torch.equal(q[5], torch.zeros(3))


def test_a_cue_below_beta_1_is_mixed_into_the_bottom_up_query_by_hand():
    templates = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # (K=2, d=2)
    kind, cued = torch.tensor([cued_task.VALID, cued_task.VALID]), torch.tensor([0, 1])
    pooled = torch.tensor([[4.0, 4.0], [-2.0, 6.0]])  # (B, d) the bottom-up query
    alone = cued_task.query_source(templates, kind, cued)
    assert alone.condition == "template" and torch.equal(alone.query(pooled), templates)  # the default
    mixed = cued_task.query_source(templates, kind, cued, beta=0.25)
    assert mixed.condition == "mixed"
    torch.testing.assert_close(mixed.query(pooled), torch.tensor([[3.25, 3.0], [-1.5, 5.0]]))


def test_training_draws_cues_with_the_asked_validity():
    question = torch.randint(0, K, (20000,), generator=torch.Generator().manual_seed(1))
    kind, cued = cued_task.draw_cues(question, K, torch.Generator().manual_seed(2), validity=0.8, neutral=0.2)
    share = torch.bincount(kind, minlength=3).float() / len(kind)
    assert share[cued_task.NEUTRAL] == pytest.approx(0.2, abs=0.01)
    assert share[cued_task.VALID] == pytest.approx(0.8 * 0.8, abs=0.01)
    assert torch.equal(cued[kind != cued_task.INVALID], question[kind != cued_task.INVALID])
    assert (cued[kind == cued_task.INVALID] != question[kind == cued_task.INVALID]).all()


def test_location_cues_name_the_items_cell_and_nothing_about_the_answer():
    pool, pool_labels = coloured()
    items, item_labels = coloured(n_per_class=800)
    cells = torch.randn(4, 3)  # (cells, d) one template per cell of a 2x2 array
    trial = cued_task.detection_batch(items, item_labels, pool, pool_labels, cells,
                                      torch.Generator().manual_seed(0), cue_on="location", num_classes=K)
    kind, cued, cell, present = trial["kind"], trial["cued"], trial["cell"], trial["present"]
    classes = cell_classes(trial["images"])  # (B, 4)
    assert torch.equal(classes[torch.arange(len(cell)), cell], item_labels)  # the item is in its cell
    assert torch.equal(cued[kind == cued_task.VALID], cell[kind == cued_task.VALID])
    assert (cued[kind == cued_task.INVALID] != cell[kind == cued_task.INVALID]).all()
    for answer in (True, False):  # the cued cell is uniform whether the target is there or not
        share = torch.bincount(cued[(present == answer) & (kind != cued_task.NEUTRAL)], minlength=4).float()
        assert (share / share.sum() - 0.25).abs().max() < 0.05
    assert torch.equal(trial["query"].template[kind == cued_task.VALID], cells[cell[kind == cued_task.VALID]])
    same = cued_task.detection_batch(items, item_labels, pool, pool_labels, torch.randn(K, 3),
                                     torch.Generator().manual_seed(0))  # class cues: the same arrays
    assert torch.equal(same["images"], trial["images"]) and torch.equal(same["kind"], kind)
    assert torch.equal(same["cued"][kind == cued_task.VALID], same["question"][kind == cued_task.VALID])


TINY = ["--dataset", "stimuli", "--widths", "4,8,8", "--hidden", "16", "--key-dim", "4",
        "--batch-size", "32", "--train-limit", "96", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("init") / "run"
    assert train.main([*TINY, "--epochs", "1", "--out-dir", str(out)]) == 0
    return out


def test_cued_training_fine_tunes_with_learned_cues_and_resumes_exactly(trained, tmp_path, monkeypatch):
    args = [*TINY, "--epochs", "2", "--task", "cued-detection", "--init", str(trained)]
    assert train.main([*args, "--out-dir", str(tmp_path / "straight")]) == 0
    row = json.loads((tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()[-1])
    assert set(row["val_detection"]) == {"valid", "neutral", "invalid"}
    assert 0 <= row["train_detection_accuracy"] <= 1
    ckpt = torch.load(tmp_path / "straight" / "best.pt", weights_only=True)
    assert ckpt["model"]["attention.cues"].shape == (10, 4) and ckpt["model_config"]["cue_classes"] == 10
    init = torch.load(trained / "best.pt", weights_only=True)["model"]
    assert not torch.equal(ckpt["model"]["attention.key.V1"], init["attention.key.V1"])  # it trained on
    monkeypatch.setattr(train, "StopFlag", StopAfter)
    assert train.main([*args, "--out-dir", str(tmp_path / "cut")]) == 130
    monkeypatch.undo()
    assert train.main([*args, "--out-dir", str(tmp_path / "cut"), "--resume"]) == 0
    assert_same_run(tmp_path / "straight", tmp_path / "cut")


def test_cue_templates_start_as_the_runs_class_templates(trained, tmp_path):
    from gattanet_sim.evaluate import load_checkpoint
    from gattanet_sim.templates import from_model

    out = tmp_path / "zero"
    assert train.main([*TINY, "--epochs", "1", "--task", "cued-detection", "--init", str(trained),
                       "--lr", "0", "--out-dir", str(out)]) == 0
    model, _, _ = load_checkpoint(out / "last.pt", torch.device("cpu"))
    base, _, _ = load_checkpoint(trained, torch.device("cpu"))
    data = train.load_data("stimuli", "train", None, 5000, None, False)[0]
    data = data.subset(train.balanced_subset(data.labels, 96, 0))
    keep = torch.cat([torch.nonzero(data.labels == c).flatten()[:100] for c in range(10)])
    made = from_model(base, data.images[keep].float() / 255, data.labels[keep].tolist())
    expected = torch.stack([made[str(c)] for c in range(10)])
    torch.testing.assert_close(model.attention.cues.detach(), expected)


@pytest.mark.parametrize("extra, match", [
    (["--no-attention"], "needs the attention region"),
    (["--detection-fraction", "1"], "detection-fraction"),
    (["--cue-validity", "1.5"], "cue-validity"),
    (["--cue-beta", "0"], "cue-beta"),
    (["--init", "/nonexistent/run"], "no such run"),
    (["--cue-on", "location"], "position code"),
])
def test_bad_cued_arguments_are_one_line(tmp_path, capsys, extra, match):
    with pytest.raises(SystemExit) as exit:
        train.main([*TINY, "--task", "cued-detection", *extra, "--out-dir", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert exit.value.code == 2 and match in err and len(err.strip().splitlines()) == 1


def test_init_from_another_architecture_is_refused(trained, tmp_path, capsys):
    code = train.main([*TINY[:-1], "--widths", "4,8,16", "--quiet", "--epochs", "1", "--task",
                       "cued-detection", "--init", str(trained), "--out-dir", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and "does not fit" in err and len(err.strip().splitlines()) == 1


def test_cued_experiment_records_what_the_detection_analysis_reads(trained, tmp_path):
    cue_run = tmp_path / "cue"
    assert train.main([*TINY, "--epochs", "1", "--task", "cued-detection", "--init", str(trained),
                       "--out-dir", str(cue_run)]) == 0
    out = tmp_path / "cd.nc"
    assert experiment.main([str(cue_run), "--paradigm", "cued_detection", "--dataset", "stimuli",
                            "--n", "40", "--grey", "10", "--conditions",
                            "valid,neutral,invalid,shuffled,negated,bottom-up", "--signals", "logits,query",
                            "--out", str(out)]) == 0
    ds = open_recording(out)
    assert ds.sizes["presentation"] == 50 * 6
    assert {"question", "present", "display", "cue", "attended"} <= set(ds.coords)
    templates = json.loads(ds.attrs["templates"])
    assert templates["source"] == {"from": "learned cues"}
    model = torch.load(cue_run / "best.pt", weights_only=True)["model"]
    valid = np.flatnonzero(ds.cue.values == "valid")
    names = ds["class"].values.tolist()
    expected = model["attention.cues"][[names.index(q) for q in ds.question.values[valid]]]
    np.testing.assert_allclose(ds.global_query.isel(presentation=valid, time_bin=0).values,
                               expected.numpy(), rtol=1e-5, atol=1e-6)
    negated = np.flatnonzero(ds.cue.values == "negated")
    np.testing.assert_allclose(ds.global_query.isel(presentation=negated, time_bin=0).values,
                               (2 * model["attention.cues"].mean(0) - expected).numpy(), rtol=1e-5, atol=1e-6)
    table = detection_table(ds)
    assert set(table.cue_type) == {"valid", "neutral", "invalid", "shuffled", "negated", "bottom-up"}
    assert table[table.display == "grey"].d_prime.isna().all()


def test_a_run_trained_with_a_mixed_cue_is_recorded_with_it(trained, tmp_path):
    cue_run = tmp_path / "mixed"
    assert train.main([*TINY, "--epochs", "1", "--task", "cued-detection", "--init", str(trained),
                       "--cue-beta", "0.5", "--out-dir", str(cue_run)]) == 0
    common = [str(cue_run), "--paradigm", "cued_detection", "--dataset", "stimuli", "--n", "20", "--grey", "4",
              "--conditions", "valid,bottom-up", "--signals", "logits,query"]
    assert experiment.main([*common, "--out", str(tmp_path / "run.nc")]) == 0
    assert experiment.main([*common, "--cue-beta", "1", "--out", str(tmp_path / "alone.nc")]) == 0
    ds, alone = open_recording(tmp_path / "run.nc"), open_recording(tmp_path / "alone.nc")
    assert float(ds.attrs["cue_beta"]) == 0.5 and float(alone.attrs["cue_beta"]) == 1.0
    cues = torch.load(cue_run / "best.pt", weights_only=True)["model"]["attention.cues"].numpy()
    names = ds["class"].values.tolist()
    valid, bottom_up = (np.flatnonzero(ds.cue.values == c) for c in ("valid", "none"))
    cue = cues[[names.index(q) for q in ds.question.values[valid]]]  # (n, d)
    first = ds.global_query.isel(time_bin=0)  # no gain has acted yet: the same rates in every pass
    np.testing.assert_allclose(first.isel(presentation=valid).values,
                               0.5 * cue + 0.5 * first.isel(presentation=bottom_up).values, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(alone.global_query.isel(time_bin=0, presentation=valid).values, cue,
                               rtol=1e-5, atol=1e-6)
    assert set(ds.condition.values[valid]) == {"mixed"}


def test_a_cue_weight_given_to_a_run_not_trained_on_the_cued_task_is_not_used(tmp_path):
    plain = tmp_path / "plain"
    assert train.main([*TINY, "--epochs", "1", "--cue-beta", "0.5", "--out-dir", str(plain)]) == 0
    assert experiment.main([str(plain), "--paradigm", "cued_detection", "--dataset", "stimuli", "--n", "10",
                            "--grey", "2", "--conditions", "valid", "--signals", "logits",
                            "--out", str(tmp_path / "plain.nc")]) == 0
    assert float(open_recording(tmp_path / "plain.nc").attrs["cue_beta"]) == 1.0


def test_train_only_control_keeps_every_weight_and_statistic_of_the_init_run(trained, tmp_path):
    out = tmp_path / "frozen"
    assert train.main([*TINY, "--epochs", "1", "--task", "cued-detection", "--init", str(trained),
                       "--gain-map", "both", "--train-only", "control", "--alpha-lr", "0.5",
                       "--out-dir", str(out)]) == 0
    tuned = torch.load(out / "last.pt", weights_only=True)["model"]
    init = torch.load(trained / "best.pt", weights_only=True)["model"]
    for name, value in init.items():
        if train.control(name):
            continue
        assert torch.equal(tuned[name], value), name  # weights and running statistics alike
    assert any("running_mean" in name for name in init)
    feature_alphas = [v for n, v in tuned.items() if n.startswith("attention.feature_alpha")]
    assert feature_alphas and any(v.abs().max() > 0 for v in feature_alphas)  # started at 0, trained
    moved = [n for n in init if train.control(n) and not torch.equal(tuned[n], init[n])]
    assert moved  # the run's own alphas trained too


def test_location_cues_train_with_a_position_code_on_a_fixed_visual_system_and_record_by_cell(trained, tmp_path):
    out = tmp_path / "where"
    assert train.main([*TINY, "--epochs", "1", "--task", "cued-detection", "--init", str(trained),
                       "--cue-on", "location", "--key-position", "learned", "--train-only", "control",
                       "--alpha-lr", "0.5", "--out-dir", str(out)]) == 0
    tuned = torch.load(out / "last.pt", weights_only=True)["model"]
    init = torch.load(trained / "best.pt", weights_only=True)["model"]
    assert tuned["attention.cues"].shape == (4, 4)  # one per cell of the 2x2 arrays
    codes = [v for n, v in tuned.items() if n.startswith("attention.position.")]
    assert codes and any(v.abs().max() > 0 for v in codes)  # started at 0, trained with the control
    for name, value in init.items():
        if not train.control(name):
            assert torch.equal(tuned[name], value), name
    row = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert set(row["val_detection"]) == {"valid", "neutral", "invalid"}
    rec = tmp_path / "where.nc"
    assert experiment.main([str(out), "--paradigm", "cued_detection", "--dataset", "stimuli", "--n", "40",
                            "--grey", "8", "--conditions", "valid,neutral,bottom-up", "--signals", "logits,query",
                            "--cue-beta", "1", "--out", str(rec)]) == 0
    ds = open_recording(rec)
    assert ds.attrs["template_by"] == "cell"
    valid = np.flatnonzero(ds.cue.values == "valid")
    assert len(valid) == 48  # grey images too: each names a cell in turn
    cells = ds.cell.values[valid].astype(int)
    assert (ds.attended.values[valid].astype(str) == cells.astype(str)).all()
    present = (ds.present.values[valid] == 1)
    assert (ds.target_position.values[valid][present] == cells[present]).all()
    np.testing.assert_allclose(ds.global_query.isel(presentation=valid, time_bin=0).values,
                               tuned["attention.cues"][cells].numpy(), rtol=1e-5, atol=1e-6)
    assert experiment.main([str(out), "--paradigm", "composite", "--dataset", "stimuli", "--n", "8",
                            "--conditions", "valid", "--out", str(tmp_path / "no.nc")]) == 2
    assert not (tmp_path / "no.nc").exists()

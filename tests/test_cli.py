"""The command-line tools end to end, on tiny models and the embedded stimuli."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import StopAfter, assert_same_run

from gattanet_sim import evaluate, train

TINY = ["--dataset", "stimuli", "--widths", "4,8,8", "--hidden", "16", "--key-dim", "4",
        "--batch-size", "32", "--train-limit", "96", "--quiet"]


def run_train(out: Path, *extra: str) -> int:
    return train.main([*TINY, "--out-dir", str(out), *extra])


def test_train_writes_the_whole_run_directory(tmp_path):
    out = tmp_path / "run"
    assert run_train(out, "--timesteps", "3", "--epochs", "2") == 0
    assert {p.name for p in out.iterdir()} >= {"config.json", "metrics.jsonl", "summary.json",
                                                "last.pt", "best.pt"}
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and len(rows[0]["val_accuracy"]) == 3
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["val_accuracy"]) == 3
    assert summary["parameters"]["attention"] > 0 and summary["parameters"]["backbone"] > 0
    assert summary["seconds_per_epoch"] > 0 and summary["seed"] == 0
    assert summary["config"]["timesteps"] == 3 and "torch" in summary["versions"]
    assert "git_commit" in summary
    assert json.loads((out / "config.json").read_text()) == summary["config"]
    best = torch.load(out / "best.pt", weights_only=True)
    assert best["val_accuracy"] == summary["val_accuracy"]


def test_baseline_has_no_attention_parameters(tmp_path):
    assert run_train(tmp_path / "b", "--no-attention", "--epochs", "1") == 0
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert summary["parameters"]["attention"] == 0


def test_evaluate_prints_and_writes_accuracy_per_timestep(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_train(out, "--timesteps", "2", "--epochs", "1") == 0
    assert evaluate.main([str(out), "--noise-std", "0.1", "--limit", "50"]) == 0
    result = json.loads((out / "eval-val-noise0.1.json").read_text())
    assert len(result["accuracy"]) == 2 and result["images"] == 50
    assert all(0 <= a <= 1 for a in result["accuracy"])
    assert "t1=" in capsys.readouterr().out
    again = tmp_path / "again.json"
    assert evaluate.main([str(out / "best.pt"), "--noise-std", "0.1", "--limit", "50",
                          "--out", str(again)]) == 0
    assert json.loads(again.read_text())["accuracy"] == result["accuracy"]


def test_interrupted_and_resumed_run_ends_with_identical_weights(tmp_path, monkeypatch):
    """Stop mid-epoch, resume with --resume: same weights and metrics as one straight run."""
    args = ["--timesteps", "2", "--epochs", "2", "--noise-std", "0.05"]
    assert run_train(tmp_path / "straight", *args) == 0
    monkeypatch.setattr(train, "StopFlag", StopAfter)
    assert run_train(tmp_path / "cut", *args) == 130
    assert not (tmp_path / "cut" / "summary.json").exists()
    cut = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    assert (cut["epoch"], cut["step"]) == (1, 2)
    monkeypatch.undo()
    assert run_train(tmp_path / "cut", *args, "--resume") == 0
    assert_same_run(tmp_path / "straight", tmp_path / "cut")


def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    for name, seed in [("a", "1"), ("b", "1"), ("c", "2")]:
        assert run_train(tmp_path / name, "--epochs", "1", "--seed", seed) == 0
    w = {n: torch.load(tmp_path / n / "last.pt", weights_only=True)["model"] for n in "abc"}
    assert all(torch.equal(w["a"][k], w["b"][k]) for k in w["a"])
    assert not all(torch.equal(w["a"][k], w["c"][k]) for k in w["a"])


def test_existing_run_is_not_overwritten_and_resume_checks_arguments(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_train(out, "--epochs", "1") == 0
    before = (out / "last.pt").read_bytes()
    assert run_train(out, "--epochs", "1") == 2
    assert "--resume" in capsys.readouterr().err
    assert run_train(out, "--epochs", "1", "--lr", "0.5", "--resume") == 2
    assert "--lr was 0.1, now 0.5" in capsys.readouterr().err
    assert (out / "last.pt").read_bytes() == before


def test_default_dataset_falls_back_to_stimuli_with_one_warning(tmp_path, capsys):
    """No CIFAR-10 in the data root and no network: warn once, train on stimuli."""
    args = [a for a in TINY if a not in ("--dataset", "stimuli")]
    assert train.main([*args, "--data-root", str(tmp_path / "empty"), "--epochs", "1",
                       "--out-dir", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "stimuli" in err
    assert json.loads((tmp_path / "run" / "config.json").read_text())["dataset"] == "stimuli"
    assert train.main([*args, "--dataset", "cifar10", "--data-root", str(tmp_path / "empty"),
                       "--out-dir", str(tmp_path / "run2")]) == 1


def test_cascade_needs_enough_timesteps(tmp_path, capsys):
    assert run_train(tmp_path / "c", "--mode", "cascade", "--timesteps", "3") == 2
    assert "needs --timesteps >= 5" in capsys.readouterr().err
    assert run_train(tmp_path / "c", "--mode", "cascade", "--timesteps", "5", "--epochs", "1",
                     "--loss-all-steps") == 0


def test_crafted_checkpoint_is_refused_and_runs_nothing(tmp_path, capsys):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    bad = tmp_path / "evil.pt"
    bad.write_bytes(pickle.dumps({"model": Evil(), "model_config": {}}))
    assert evaluate.main([str(bad)]) == 1
    assert "refusing to load" in capsys.readouterr().err
    assert not marker.exists()


@pytest.mark.parametrize("argv, needle", [
    (["--timesteps", "0"], "timesteps"),
    (["--key-dim", "-1"], "key-dim"),
    (["--dataset", "imagenet21k"], "dataset"),
    (["--widths", "4,8"], "widths"),
])
def test_bad_arguments_give_one_line_and_exit_2(argv, needle, tmp_path):
    """Run as a user would: a usage line and one error line, no traceback."""
    proc = subprocess.run([sys.executable, "-m", "gattanet_sim.train", *argv],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert needle in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 2


def test_preset_is_resolved_into_the_saved_config(tmp_path):
    """config.json spells every option out, so a run means the same whatever the presets become."""
    assert run_train(tmp_path / "p", "--preset", "paper", "--epochs", "1") == 0
    assert run_train(tmp_path / "r", "--epochs", "1", "--no-readout-gain") == 0
    paper = json.loads((tmp_path / "p" / "config.json").read_text())
    recipe = json.loads((tmp_path / "r" / "config.json").read_text())
    assert paper["norm_steps"] == 1 and recipe["norm_steps"] == 2
    assert paper["readout_gain"] is True and recipe["readout_gain"] is False
    model, _, _ = evaluate.load_checkpoint(tmp_path / "r", torch.device("cpu"))
    assert model.config["norm_steps"] == 2 and "readout" not in model.attention.gained


def test_runaway_prone_options_are_warned_about(tmp_path, capsys):
    assert run_train(tmp_path / "w", "--preset", "paper", "--timesteps", "3", "--epochs", "1") == 0
    assert "can feed on itself" in capsys.readouterr().err
    assert run_train(tmp_path / "q", "--timesteps", "3", "--epochs", "1", "--normalization", "standardize") == 0
    assert "feed on itself" not in capsys.readouterr().err
    assert run_train(tmp_path / "r", "--timesteps", "3", "--epochs", "1") == 0  # the recipe's gain is < 2
    assert "feed on itself" not in capsys.readouterr().err


def test_training_never_imports_the_recorder():
    """train runs where netCDF4 is not installed: it imports neither netCDF4 nor xarray."""
    import subprocess
    import sys

    code = ("import sys, gattanet_sim.train, gattanet_sim.evaluate; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('netCDF4', 'xarray')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_compiled_training_follows_the_eager_run(tmp_path):
    """--compile (torch.compile of the T-step loop) computes what the eager loop computes."""
    args = ["--timesteps", "2", "--epochs", "1", "--train-limit", "64"]
    from torch._dynamo.utils import counters

    assert run_train(tmp_path / "eager", *args) == 0
    counters.clear()
    assert run_train(tmp_path / "compiled", *args, "--compile") == 0
    assert counters["stats"]["unique_graphs"] >= 1  # it did compile
    rows = [json.loads((tmp_path / n / "metrics.jsonl").read_text()) for n in ("eager", "compiled")]
    assert rows[1]["train_loss"] == pytest.approx(rows[0]["train_loss"], rel=1e-4)
    assert rows[1]["val_loss"] == pytest.approx(rows[0]["val_loss"], rel=1e-4)


def test_random_timesteps_change_training_and_are_saved(tmp_path):
    args = ["--timesteps", "4", "--epochs", "1"]
    assert run_train(tmp_path / "fixed", *args, "--no-random-timesteps") == 0
    assert run_train(tmp_path / "random", *args) == 0  # the recipe's default for T > 2
    fixed, drawn = (torch.load(tmp_path / n / "last.pt", weights_only=True) for n in ("fixed", "random"))
    assert drawn["config"]["random_timesteps"] is True and fixed["config"]["random_timesteps"] is False
    assert not all(torch.equal(fixed["model"][k], drawn["model"][k]) for k in fixed["model"])


def test_progress_bars_stay_out_of_a_log(tmp_path):
    """`make train > log` wrote thousands of carriage-return frames: a bar belongs on a terminal."""
    args = [a for a in TINY if a != "--quiet"]
    done = subprocess.run([sys.executable, "-m", "gattanet_sim.train", *args, "--epochs", "1",
                           "--out-dir", str(tmp_path / "run")], capture_output=True,  # bytes: text
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)  # mode eats \r
    assert done.returncode == 0, done.stderr
    assert b"\r" not in done.stderr and b"\r" not in done.stdout, repr(done.stderr[:300])
    assert b"epoch 1" in done.stdout + done.stderr  # the epoch's line is still there

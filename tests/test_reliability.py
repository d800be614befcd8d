"""Runs that survive interruption, files never half-written, inputs that cannot hurt.

Real signals (SIGINT, SIGTERM, SIGKILL) are sent to real training processes; a writer is
killed in the middle of a checkpoint; every CLI gets a battery of bad inputs plus random
argument strings, and must answer each with one line and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_tree
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from gattanet_sim import evaluate, record, train
from gattanet_sim.io import atomic_save

TINY = ["--dataset", "stimuli", "--widths", "4,8,8", "--hidden", "16", "--key-dim", "4",
        "--batch-size", "32", "--quiet", "--timesteps", "2"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def weights(run: Path) -> dict:
    return torch.load(run / "last.pt", weights_only=True)["model"]


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = weights(a), weights(b)
    return all(torch.equal(wa[k], wb[k]) for k in wa)


def start(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gattanet_sim.train", *TINY, "--out-dir", str(out),
                             *extra], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_epochs(out: Path, n: int, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        metrics = out / "metrics.jsonl"
        if metrics.exists() and len(metrics.read_text().splitlines()) >= n:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("training made no progress")


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    """The uninterrupted reference run: 4 epochs of 6 steps."""
    out = tmp_path_factory.mktemp("straight") / "run"
    proc = start(out, "--epochs", "4", "--train-limit", "192", "--noise-std", "0.05")
    assert proc.wait(timeout=600) == 0, proc.communicate()
    return out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_killed_run_resumes_to_the_same_weights(sig, straight, tmp_path):
    """SIGINT/SIGTERM checkpoint mid-epoch and exit 128+sig; SIGKILL loses only the current
    epoch. Either way `--resume` ends with exactly the uninterrupted run's weights."""
    out = tmp_path / "run"
    args = ["--epochs", "4", "--train-limit", "192", "--noise-std", "0.05"]
    proc = start(out, *args)
    wait_for_epochs(out, 1, proc)
    proc.send_signal(sig)
    code = proc.wait(timeout=120)
    if code == 0:
        pytest.skip("the run finished before the signal arrived")  # a 2-core machine under load
    assert code == (-9 if sig == signal.SIGKILL else 128 + sig)
    assert not (out / "summary.json").exists()
    ckpt = torch.load(out / "last.pt", weights_only=True)
    assert ckpt["epoch"] >= 1
    resumed = subprocess.run([sys.executable, "-m", "gattanet_sim.train", *TINY, "--out-dir", str(out),
                              *args, "--resume"], env=ENV, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr
    assert same_weights(out, straight)
    rows = lambda p: [{k: v for k, v in json.loads(row).items() if k != "seconds"}  # noqa: E731
                      for row in (p / "metrics.jsonl").read_text().splitlines()]
    assert rows(out) == rows(straight)


def test_checkpoint_writer_killed_mid_write_leaves_the_old_file(tmp_path):
    """A process killed while torch.save is half way leaves the previous last.pt intact."""
    target = tmp_path / "last.pt"
    atomic_save({"epoch": 1, "w": torch.ones(3)}, target)
    script = textwrap.dedent(f"""
        import os, signal, torch
        from gattanet_sim import io
        def half_then_die(obj, f):
            with open(f, "wb") as fh:
                fh.write(b"PK\\x03\\x04 half a checkpoint")
                fh.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        io.torch.save = half_then_die
        io.atomic_save({{"epoch": 2}}, {str(target)!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -9
    assert torch.load(target, weights_only=True)["epoch"] == 1
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "last.pt"]
    assert leftovers and all(n.startswith(".last.pt.") and n.endswith(".tmp") for n in leftovers)


@pytest.mark.parametrize("every", [1, 4])
def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys,
                                                                  every):
    """Checked at every step (the CPU) or, as on a GPU, every few steps and at the epoch's end:
    either way the NaN of step 5 never reaches a checkpoint."""
    real = train.loss_fn
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss, logits = real(*args, **kwargs)
        return (loss * float("nan"), logits) if calls["n"] == 5 else (loss, logits)

    monkeypatch.setattr(train, "loss_fn", poisoned)
    monkeypatch.setattr(train, "CPU_SYNC_EVERY", every)
    out = tmp_path / "run"
    assert train.main([*TINY, "--train-limit", "96", "--epochs", "3", "--out-dir", str(out)]) == 1
    err = capsys.readouterr().err
    assert "loss became nan at epoch 2 step 2;" in err and "Traceback" not in err
    ckpt = torch.load(out / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 1 and all(torch.isfinite(v).all() for v in ckpt["model"].values()
                                      if v.is_floating_point())
    assert not (out / "summary.json").exists()


# --- bad input -------------------------------------------------------------------------


def one_line_error(code: int, err: str, expected_code: int | None = None) -> None:
    assert code != 0
    if expected_code is not None:
        assert code == expected_code, err
    assert "Traceback" not in err
    shown = [line.split("\r")[-1].strip() for line in err.split("\n")]  # what a terminal shows
    lines = [line for line in shown if line and not line.startswith("warning:")]
    assert len(lines) == 1 and "error" in lines[0], err


def exit_code(main, argv: list[str]) -> tuple[int, str]:
    """A CLI's exit status (argparse's SystemExit included) and its stderr; stdout discarded."""
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    return code, err.getvalue()


def run_analysis_script(name: str, argv: list[str]) -> int:
    """An analyses/ script's main(argv), loaded from its file as the scorecard loads it."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"analysis_script_{name}",
                                                  Path(__file__).resolve().parents[1] / "analyses" / name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        return module.main(argv)
    finally:
        del sys.modules[spec.name]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    assert train.main([*TINY, "--train-limit", "32", "--epochs", "1", "--out-dir", str(out)]) == 0
    return out


def bad_trees(root: Path) -> dict[str, Path]:
    """A zoo of broken data roots."""
    trees = {}
    trees["missing"] = root / "missing"
    (root / "empty").mkdir()
    trees["empty"] = root / "empty"
    (root / "no_images" / "train" / "cat").mkdir(parents=True)
    trees["no_images"] = root / "no_images"
    write_tree(root / "corrupt" / "train", per_class=2)
    (root / "corrupt" / "train" / "cat" / "zz.jpg").write_bytes(b"\xff\xd8\xff garbage")
    trees["corrupt"] = root / "corrupt"
    write_tree(root / "text" / "train", per_class=2)
    (root / "text" / "train" / "dog" / "README.md").write_text("# not an image")
    trees["text"] = root / "text"
    write_tree(root / "odd" / "train", per_class=2)
    Image.fromarray(np.zeros((16, 17, 3), np.uint8)).save(root / "odd" / "train" / "owl" / "z.png")
    trees["odd"] = root / "odd"
    write_tree(root / "bad_size" / "train", per_class=2, size=12)  # toy needs a multiple of 8
    trees["bad_size"] = root / "bad_size"
    return trees


BAD_TRAIN_ARGS = [
    (["--timesteps", "0"], 2), (["--timesteps", "-3"], 2), (["--timesteps", "two"], 2),
    (["--key-dim", "0"], 2), (["--model", "resnet9000"], 2), (["--dataset", "mnist"], 2),
    (["--mode", "loop"], 2), (["--epochs", "0"], 2), (["--batch-size", "0"], 2),
    (["--lr", "-1"], 2), (["--lr", "nan"], 2), (["--noise-std", "-0.1"], 2),
    (["--widths", "4,8"], 2), (["--widths", "a,b,c"], 2), (["--label-smoothing", "1.5"], 2),
    (["--normalization", "l2"], 2), (["--gain-form", "exp"], 2), (["--keys", "future"], 2),
    (["--device", "tpu"], 2), (["--mode", "cascade", "--timesteps", "4"], 2),
    (["--image-size", "0"], 2), (["--unknown-flag"], 2),
]


@pytest.mark.parametrize("argv, code", BAD_TRAIN_ARGS)
def test_train_rejects_bad_arguments(argv, code, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        result = train.main([*TINY, "--out-dir", str(tmp_path / "r"), *argv])
        raise SystemExit(result)
    one_line_error(exc.value.code, capsys.readouterr().err, code)
    assert not (tmp_path / "r" / "last.pt").exists()


@pytest.mark.parametrize("tree", ["missing", "empty", "no_images", "corrupt", "text", "odd", "bad_size"])
def test_train_rejects_bad_data_roots(tree, tmp_path, capsys):
    root = bad_trees(tmp_path)[tree]
    code = train.main([*TINY[2:], "--dataset", "folder", "--data-root", str(root), "--val-size", "3",
                       "--epochs", "1", "--out-dir", str(tmp_path / "r")])
    one_line_error(code, capsys.readouterr().err)


def test_evaluate_and_record_reject_bad_inputs(run_dir, tmp_path, capsys):
    other = tmp_path / "other.pt"
    ckpt = torch.load(run_dir / "best.pt", weights_only=True)
    ckpt["model_config"] = {**ckpt["model_config"], "widths": [8, 8, 8]}  # another model's config
    torch.save(ckpt, other)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00not a checkpoint")
    listy = tmp_path / "list.pt"
    torch.save([1, 2, 3], listy)
    cases = [
        (evaluate.main, [str(tmp_path / "nope")]),
        (evaluate.main, [str(tmp_path)]),  # a directory with no checkpoint
        (evaluate.main, [str(other)]),
        (evaluate.main, [str(junk)]),
        (evaluate.main, [str(listy)]),
        (evaluate.main, [str(run_dir), "--dataset", "folder", "--data-root", str(tmp_path / "x")]),
        (evaluate.main, [str(run_dir), "--dataset", "cifar10", "--data-root", str(tmp_path)]),
        (evaluate.main, [str(run_dir), "--noise-std", "-1"]),
        (evaluate.main, [str(run_dir), "--timesteps", "0"]),
        (record.main, [str(run_dir), "--units", "electrode", "--out", str(tmp_path / "r.nc")]),
        (record.main, [str(run_dir), "--signals", "spikes", "--out", str(tmp_path / "r.nc")]),
        (record.main, [str(run_dir), "--regions", "MT", "--out", str(tmp_path / "r.nc")]),
        (record.main, [str(run_dir), "--time-bins", "9", "--out", str(tmp_path / "r.nc")]),
        (record.main, [str(run_dir), "--units", "channels:999", "--out", str(tmp_path / "r.nc")]),
        (record.main, [str(run_dir), "--out", str(tmp_path / "a_directory"), "--limit", "2"]),
        (record.main, [str(other), "--out", str(tmp_path / "r.nc")]),
    ]
    (tmp_path / "a_directory").mkdir()
    failures = 0
    for main, argv in cases:
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
        one_line_error(code, capsys.readouterr().err)
        failures += 1
    assert failures == len(cases)
    assert not (tmp_path / "r.nc").exists()


def test_recording_missing_a_coordinate_is_refused(tmp_path):
    import xarray as xr

    from gattanet_sim.recording import open_recording

    ds = xr.Dataset({"activity": (("presentation", "neuroid", "time_bin"), np.zeros((2, 3, 1)))},
                    coords={"stimulus_id": ("presentation", ["a", "b"]),
                            "label": ("presentation", [0, 1]),
                            "region": ("neuroid", ["V1"] * 3)}, attrs={"complete": 1})
    ds.to_netcdf(tmp_path / "r.nc")
    with pytest.raises(ValueError, match="lacks coordinate.*neuroid_id"):
        open_recording(tmp_path / "r.nc")


# --- random argument strings ----------------------------------------------------------

FLAGS = ["--timesteps", "--key-dim", "--epochs", "--batch-size", "--lr", "--dataset", "--mode",
         "--widths", "--noise-std", "--units", "--signals", "--split", "--model", "--val-size",
         "--train-limit", "--seed", "--device", "--regions", "--time-bins", "--limit"]
TOKENS = st.one_of(st.sampled_from(FLAGS), st.text(max_size=12),
                   st.integers(-5, 5).map(str), st.sampled_from(["nan", "inf", "-0", "1e9", ",", ""]))


class ReachedTraining(Exception):
    pass


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(TOKENS, max_size=6))
def test_random_train_arguments_never_traceback(tmp_path_factory, argv):
    """Random argument lists either reach the training loop or fail with one line."""
    import contextlib
    import io

    tmp = tmp_path_factory.mktemp("fuzz")

    def stop(*_a, **_k):
        raise ReachedTraining

    err = io.StringIO()
    original = train.train
    train.train = stop
    try:
        with contextlib.redirect_stderr(err):
            try:
                code = train.main([*argv, "--out-dir", str(tmp / "r"), "--dataset", "stimuli"])
            except SystemExit as exc:
                code = exc.code
            except ReachedTraining:
                return
    finally:
        train.train = original
    if code != 0:  # 0: --help was asked for
        one_line_error(code, err.getvalue())


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(TOKENS, max_size=6))
def test_random_record_and_evaluate_arguments_never_traceback(run_dir, tmp_path_factory, argv):
    out = tmp_path_factory.mktemp("fuzz") / "r.nc"
    for main, args in ((record.main, [str(run_dir), *argv, "--limit", "3", "--out", str(out)]),
                       (evaluate.main, [str(run_dir), *argv, "--limit", "3"])):
        code, err = exit_code(main, args)
        if code != 0:
            one_line_error(code, err)


def test_outputs_never_replace_a_checkpoint_or_another_kind_of_file(tmp_path, capsys):
    """experiment --out RUN/best.pt, --save-templates RUN/last.pt and record --out RUN/best.pt
    used to overwrite the checkpoint with exit 0: now one line, exit 2, the file untouched."""
    import torch

    from gattanet_sim import build_model, experiment, record
    from gattanet_sim.io import atomic_save

    torch.manual_seed(0)
    model = build_model("toy", num_classes=10, widths=(4, 6, 8), hidden=12, key_dim=5, alpha_init=0.4)
    run = tmp_path / "run"
    for name in ("best.pt", "last.pt"):
        atomic_save({"model": model.state_dict(), "model_config": model.config,
                     "config": {"dataset": "stimuli", "timesteps": 2}}, run / name)
    before = {name: (run / name).read_bytes() for name in ("best.pt", "last.pt")}
    grating = ["--paradigm", "gratings", "--orientations", "0,90", "--units", "2", "--conditions", "valid"]
    calls = [
        (experiment.main, [str(run / "best.pt"), *grating, "--out", str(run / "best.pt")]),
        (experiment.main, [str(run / "best.pt"), *grating, "--save-templates", str(run / "last.pt"),
                           "--out", str(tmp_path / "x.nc")]),
        (record.main, [str(run / "best.pt"), "--limit", "4", "--units", "2", "--out", str(run / "best.pt")]),
    ]
    for main, argv in calls:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert "refusing to replace" in err and len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert {name: (run / name).read_bytes() for name in before} == before
    assert not (tmp_path / "x.nc").exists()
    # the same kind of output is replaced as before: a recording by a recording
    out = tmp_path / "r.nc"
    assert experiment.main([str(run / "best.pt"), *grating, "--save-templates", str(tmp_path / "t.json"),
                            "--out", str(out)]) == 0
    assert experiment.main([str(run / "best.pt"), *grating, "--save-templates", str(tmp_path / "t.json"),
                            "--out", str(out)]) == 0
    # --force replaces anything, as the user asked
    other = tmp_path / "notes.txt"
    other.write_text("my notes\n")
    assert experiment.main([str(run / "best.pt"), *grating, "--out", str(other)]) == 2
    assert other.read_text() == "my notes\n"
    assert experiment.main([str(run / "best.pt"), *grating, "--out", str(other), "--force"]) == 0
    assert other.read_bytes()[:3] in (b"CDF", b"\x89HD")


@pytest.mark.parametrize("value, preset", [("NaN", "recipe"), ("1e39", "recipe"), ("1e38", "paper")])
def test_nan_or_overflowing_templates_never_make_a_complete_recording(tmp_path, capsys, value, preset):
    """NaN templates used to give an assembly marked complete, half of it NaN; 1e39 overflows
    float32 when read; 1e38 overflows in the paper's linear gain. Now: refused in one line, no
    recording, no .partial left."""
    import json

    import torch

    from gattanet_sim import build_model, experiment
    from gattanet_sim.io import atomic_save

    torch.manual_seed(0)
    model = build_model("toy", num_classes=10, widths=(4, 6, 8), hidden=12, key_dim=5, alpha_init=0.4,
                        preset=preset)
    ckpt = tmp_path / "m.pt"
    atomic_save({"model": model.state_dict(), "model_config": model.config,
                 "config": {"dataset": "stimuli", "timesteps": 2}}, ckpt)
    templates = tmp_path / "t.json"
    vector = [float(value)] + [0.5] * 4
    templates.write_text(json.dumps({"key_dim": 5, "templates": {"0": vector, "90": [0.1] * 5}}))
    out = tmp_path / "r.nc"
    code = experiment.main([str(ckpt), "--paradigm", "gratings", "--orientations", "0,90", "--units", "3",
                            "--conditions", "valid", "--templates", str(templates), "--out", str(out)])
    err = [line for line in capsys.readouterr().err.strip().splitlines() if "batch/s" not in line]  # not tqdm
    assert code == 1 and len(err) == 1 and "NaN or infinite" in err[0] and "Traceback" not in err[0], err
    assert not out.exists() and not list(tmp_path.glob(".*partial"))


def test_a_truncated_checkpoint_is_named_in_one_line(tmp_path, capsys):
    """A checkpoint cut in half gave 'error: Invalid argument', naming no file."""

    from gattanet_sim import build_model, evaluate
    from gattanet_sim.io import atomic_save

    model = build_model("toy", num_classes=10, widths=(4, 6, 8), hidden=12)
    whole = tmp_path / "whole.pt"
    atomic_save({"model": model.state_dict(), "model_config": model.config, "config": {}}, whole)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    assert evaluate.main([str(cut), "--dataset", "stimuli"]) == 1
    err = capsys.readouterr().err.strip()
    assert str(cut) in err and len(err.splitlines()) == 1 and "Traceback" not in err, err


def test_world_size_without_torchrun_is_a_usage_error(tmp_path, capsys, monkeypatch):
    """WORLD_SIZE=2 set by hand (no RANK) gave "error: 'RANK'"."""
    from gattanet_sim import train

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    code = train.main(["--dataset", "stimuli", "--epochs", "1", "--quiet", "--out-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "RANK is not set" in err and "torchrun" in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("flag", ["--repeats", "--batch-size"])
def test_step_cost_refuses_empty_measurements(flag):
    """--repeats 0 ended in a StatisticsError, --batch-size 0 in "target met" over empty batches."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "step_cost.py"
    out = subprocess.run([sys.executable, str(script), flag, "0"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "at least 1" in out.stderr and "Traceback" not in out.stderr, out.stderr


@pytest.mark.parametrize("paradigm", ["composite", "noisy", "cued_detection"])
def test_an_impossible_number_of_images_is_refused_before_any_allocation(tmp_path, capsys, paradigm):
    """--n 300000000 ended in an allocator traceback."""

    from gattanet_sim import build_model, experiment
    from gattanet_sim.io import atomic_save

    model = build_model("toy", num_classes=10, widths=(4, 6, 8), hidden=12)
    ckpt = tmp_path / "m.pt"
    atomic_save({"model": model.state_dict(), "model_config": model.config,
                 "config": {"dataset": "stimuli", "timesteps": 2}}, ckpt)
    code = experiment.main([str(ckpt), "--paradigm", paradigm, "--n", "300000000", "--conditions", "off",
                            "--out", str(tmp_path / "x.nc")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "at most 1,000,000" in err and len(err.splitlines()) == 1, err


def test_written_files_honour_the_umask(tmp_path):
    """Files written through a temporary file were mode 0600 whatever the umask."""
    import os
    import stat

    import numpy as np

    from gattanet_sim.io import atomic_path, write_json
    from gattanet_sim.recording import RecordingWriter

    old = os.umask(0o022)
    try:
        write_json({"a": 1}, tmp_path / "a.json")
        with atomic_path(tmp_path / "b.txt") as tmp:
            tmp.write_text("b")
        neuroids = {"neuroid_id": np.array(["n0"], dtype=object), "region": np.array(["V1"], dtype=object)}
        with RecordingWriter(tmp_path / "r.nc", neuroids, [0], ("logits",), 4, ["x", "y"], ["stimulus_id", "label"],
                             {}) as writer:
            writer.append({"logits": np.zeros((1, 2, 1), np.float32)}, {"stimulus_id": ["s"], "label": [0]})
    finally:
        os.umask(old)
    for name in ("a.json", "b.txt", "r.nc"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name


def test_a_killed_recordings_partial_file_is_removed_by_the_next_one(tmp_path):
    """A killed experiment left its hidden .partial file forever (617 MB in one probe)."""
    import os
    import subprocess
    import sys

    import numpy as np

    from gattanet_sim.recording import RecordingWriter

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()  # a process that has exited
    stale = tmp_path / f".r.nc.{dead}.abc123.partial"
    stale.write_bytes(b"x" * 1000)
    mine = tmp_path / f".r.nc.{os.getpid()}.def456.partial"  # a recording still going: kept
    mine.write_bytes(b"y")
    other = tmp_path / f".killed.v2.nc.{dead}.gh_789.partial"  # a killed recording of another name
    other.write_bytes(b"z" * 1000)
    neuroids = {"neuroid_id": np.array(["n0"], dtype=object), "region": np.array(["V1"], dtype=object)}
    with RecordingWriter(tmp_path / "r.nc", neuroids, [0], ("logits",), 4, ["x", "y"], ["stimulus_id", "label"],
                         {}) as writer:
        writer.append({"logits": np.zeros((1, 2, 1), np.float32)}, {"stimulus_id": ["s"], "label": [0]})
    assert not stale.exists() and mine.exists() and (tmp_path / "r.nc").exists()
    assert not other.exists()  # any recording's leftover in the directory, not only this name's


def test_a_probe_location_outside_the_image_is_refused(tmp_path):
    """location:X,Y outside the image snapped silently to its edge."""

    from gattanet_sim import build_model
    from gattanet_sim.recording import Probe, ProbeError, place

    model = build_model("toy", num_classes=10, widths=(4, 6, 8), hidden=12)
    inside = place(Probe.parse("location:31,0"), model, 32)
    assert len(inside.regions["V1"]["channel"]) == 4
    for text in ("location:40,3", "location:-1,3", "location:3,32"):
        with pytest.raises(ProbeError, match="outside the 32x32-pixel image"):
            place(Probe.parse(text), model, 32)


def test_a_single_file_older_than_parts_of_the_same_recording_is_not_opened_silently(tmp_path):
    """open_recording('x.nc') returned an older one-process file, ignoring newer x.rank*-of-2.nc."""
    import os

    import numpy as np

    from gattanet_sim.recording import RecordingWriter, open_recording

    neuroids = {"neuroid_id": np.array(["n0"], dtype=object), "region": np.array(["V1"], dtype=object)}

    def write(path):
        with RecordingWriter(path, neuroids, [0], ("logits",), 4, ["x", "y"], ["stimulus_id", "label"], {}) as w:
            w.append({"logits": np.zeros((1, 2, 1), np.float32)}, {"stimulus_id": ["s"], "label": [0]})

    write(tmp_path / "x.nc")
    assert open_recording(tmp_path / "x.nc").sizes["presentation"] == 1
    write(tmp_path / "x.rank0-of-2.nc")
    os.utime(tmp_path / "x.nc", (1, 1))  # the one-process file is the older one
    with pytest.raises(ValueError, match="older than the parts"):
        open_recording(tmp_path / "x.nc")
    os.utime(tmp_path / "x.nc", None)  # now the newer: it is the recording meant
    assert open_recording(tmp_path / "x.nc").sizes["presentation"] == 1


def test_a_script_loaded_from_its_file_names_itself_in_its_errors(tmp_path, capsys):
    """Scripts run inside the scorecard (loaded from their file) prefixed errors 'py: error:'."""
    import importlib.util
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "analyses" / "gain_model.py"
    spec = importlib.util.spec_from_file_location("analysis_script_gain_model.py", script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        assert module.main([str(tmp_path / "missing.nc"), "--out", str(tmp_path / "o")]) == 1
    finally:
        del sys.modules[spec.name]
    err = capsys.readouterr().err.strip()
    assert err.startswith("gain_model.py: error:"), err


SCRIPTS_ON_GRATINGS = ["modulation_index.py", "gain_model.py", "time_course.py", "variability.py",
                       "gain_statistics.py", "feature_similarity_gain.py", "attention_maps.py"]


@pytest.mark.parametrize("script", SCRIPTS_ON_GRATINGS)
def test_an_analysis_refuses_a_recording_holding_nan_in_one_line(tmp_path, capsys, script):
    """NaN recordings gave tables and figures with exit 0 ("peaks at the true class in 0.10 of
    images" from all-NaN agreement). A recording edited or made elsewhere with a NaN is refused
    by the reader, naming the file and variable, and nothing is written."""
    from gattanet_sim import build_model, experiment
    from gattanet_sim.io import atomic_save
    from gattanet_sim.recording import open_recording

    torch.manual_seed(0)
    model = build_model("toy", num_classes=10, widths=(4, 6, 8), hidden=12, key_dim=5, alpha_init=0.4)
    ckpt = tmp_path / "m.pt"
    atomic_save({"model": model.state_dict(), "model_config": model.config,
                 "config": {"dataset": "stimuli", "timesteps": 2}}, ckpt)
    clean = tmp_path / "clean.nc"
    assert experiment.main([str(ckpt), "--paradigm", "gratings", "--orientations", "0,90", "--units", "all",
                            "--contrasts", "series:0.2", "--trials", "2", "--unit-noise", "0.1",
                            "--signals", "activity,gain,agreement,logits,query",
                            "--conditions", "valid,neutral,invalid,template", "--out", str(clean)]) == 0
    ds = open_recording(clean).reset_index("neuroid").load()
    ds.close()
    ds["activity"][0, 0, -1] = np.nan
    bad = tmp_path / "bad.nc"
    ds.to_netcdf(bad)
    capsys.readouterr()
    out = ["--csv", str(tmp_path / "out" / "g.csv")] if script == "gain_statistics.py" else [
        "--out", str(tmp_path / "out")]
    assert run_analysis_script(script, [str(bad), *out]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0] and "activity" in err[0] and "NaN" in err[0], err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


EXPERIMENT_FLAGS = ["--paradigm", "--conditions", "--orientations", "--contrasts", "--n", "--units", "--signals",
                    "--trials", "--unit-noise", "--shared-noise", "--feedback-delays", "--template-centring",
                    "--beta", "--attend", "--time-bins", "--spatial-frequencies", "--phases", "--sigmas",
                    "--template-by", "--templates", "--batch-size", "--timesteps"]
EXPERIMENT_TOKENS = st.one_of(st.sampled_from(EXPERIMENT_FLAGS), st.text(max_size=10),
                              st.integers(-3, 5).map(str),
                              st.sampled_from(["nan", "inf", "1e9", ",", "", "gratings", "composite", "valid",
                                               "neutral,valid", "series:0.1", "V1=2", "all", "query"]))


class ReachedSimulation(Exception):
    pass


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(EXPERIMENT_TOKENS, max_size=6))
def test_random_experiment_arguments_never_traceback(run_dir, tmp_path_factory, argv):
    """Random experiment arguments either reach the simulation or fail with one line."""
    from gattanet_sim import experiment

    out = tmp_path_factory.mktemp("fuzz") / "r.nc"

    def stop(*_a, **_k):
        raise ReachedSimulation

    original = experiment.run_experiment
    experiment.run_experiment = stop
    try:
        code, err = exit_code(experiment.main, [str(run_dir), *argv, "--out", str(out)])
    except ReachedSimulation:
        return
    finally:
        experiment.run_experiment = original
    if code != 0:
        one_line_error(code, err)


ANALYSIS_FLAGS = ["--attended", "--unattended", "--alpha", "--time-bin", "--seed", "--min-r2", "--feature",
                  "--period", "--permutations", "--shared-count-scale", "--count-scale", "--threshold"]
ANALYSIS_TOKENS = st.one_of(st.sampled_from(ANALYSIS_FLAGS), st.text(max_size=10), st.integers(-3, 5).map(str),
                            st.sampled_from(["nan", "inf", "cue=valid", "cue=neutral", "condition=off", "cue=",
                                             "=x", "orientation", "1e9", ""]))


@pytest.fixture(scope="module")
def grating_recording(run_dir, tmp_path_factory) -> Path:
    from gattanet_sim import experiment

    out = tmp_path_factory.mktemp("rec") / "crf.nc"
    assert experiment.main([str(run_dir), "--paradigm", "gratings", "--orientations", "0,90", "--phases", "0,180",
                            "--contrasts", "series:0.2", "--trials", "2", "--unit-noise", "0.1", "--units", "4",
                            "--conditions", "valid,neutral,invalid,template", "--out", str(out)]) == 0
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(["modulation_index.py", "gain_model.py", "variability.py", "time_course.py",
                        "feature_similarity_gain.py"]), st.lists(ANALYSIS_TOKENS, max_size=5))
def test_random_analysis_arguments_never_traceback(grating_recording, tmp_path_factory, script, argv):
    """Random analysis arguments on a real recording give a table or one line, never a traceback."""
    code, err = exit_code(lambda a: run_analysis_script(script, a),
                          [str(grating_recording), *argv, "--out", str(tmp_path_factory.mktemp("o"))])
    if code != 0:
        one_line_error(code, err)


@pytest.mark.parametrize("content", [b"a,b\n1,2\n", b'{"model": 1}\n', b"e\n", b"\x80\x02}q\x00."])
def test_a_file_that_is_no_checkpoint_is_named_in_one_line(tmp_path, capsys, content):
    """evaluate on a CSV named .pt gave a traceback (IndexError), a text file 'error: 101', a JSON
    file torch's advice to load with weights_only=False, advice that must never reach a user."""
    from gattanet_sim import evaluate

    path = tmp_path / "x.pt"
    path.write_bytes(content)
    code = evaluate.main([str(path), "--dataset", "stimuli", "--limit", "4"])
    err = capsys.readouterr().err
    one_line_error(code, err)
    assert str(path) in err and "weights_only" not in err and "Traceback" not in err, err


def test_no_text_output_replaces_a_checkpoint(run_dir, grating_recording, tmp_path, capsys):
    """evaluate --out RUN/best.pt, gain_statistics.py --csv RUN/best.pt, scorecard.py --out
    RUN/last.pt and an analysis whose table name is a checkpoint all overwrote it with exit 0."""
    import shutil

    ckpt = tmp_path / "best.pt"
    shutil.copy(run_dir / "best.pt", ckpt)
    before = ckpt.read_bytes()
    script = run_analysis_script

    tables = tmp_path / "tables"
    (tables / "modulation_index").mkdir(parents=True)
    shutil.copy(ckpt, tables / "modulation_index" / "modulation_index.csv")
    calls = [lambda: evaluate.main([str(run_dir), "--limit", "4", "--out", str(ckpt)]),
             lambda: script("gain_statistics.py", [str(grating_recording), "--csv", str(ckpt)]),
             lambda: script("scorecard.py", ["--skip-analyses", "--recordings", str(tmp_path), "--tables",
                                             str(tmp_path / "none"), "--out", str(ckpt)]),
             lambda: script("modulation_index.py", [str(grating_recording), "--out", str(tables / "modulation_index")])]
    for call in calls:
        capsys.readouterr()
        assert call() != 0
        err = capsys.readouterr().err
        assert "Traceback" not in err and "refusing to replace" in err, err
    assert ckpt.read_bytes() == before
    assert (tables / "modulation_index" / "modulation_index.csv").read_bytes() == before


def test_a_text_output_replaces_only_its_own_kind_and_never_advises_a_missing_flag(tmp_path):
    """evaluate --out RUN/config.json overwrote the run's config with exit 0 (any text file was
    fair game), and the refusal advised --force to CLIs that have no such option."""
    from gattanet_sim.io import UsageError, check_replaceable

    config = tmp_path / "config.json"
    config.write_text('{"dataset": "cifar10", "timesteps": 2}\n')
    table = tmp_path / "t.csv"
    table.write_text("region,ratio\nV4,0.95\n")
    evaluation = tmp_path / "eval.json"
    evaluation.write_text('{"accuracy": [0.8], "checkpoint": "run/best.pt", "images": 10}\n')
    card = tmp_path / "card.md"
    card.write_text("# Biology scorecard\n\n| finding |\n")
    for path, kind in [(config, "evaluation"), (config, "table"), (table, "evaluation"), (evaluation, "table"),
                       (card, "table"), (table, "scorecard"), (config, "scorecard")]:
        with pytest.raises(UsageError) as refused:
            check_replaceable(path, kind)
        message = str(refused.value)
        assert "--force" not in message and "not a text" not in message, message
    for path, kind in [(table, "table"), (evaluation, "evaluation"), (card, "scorecard")]:
        check_replaceable(path, kind)  # an earlier output of its own kind
    with pytest.raises(UsageError, match="--force"):
        check_replaceable(config, "recording", force=False)  # a CLI with --force names it
    check_replaceable(config, "recording", force=True)


def test_a_nan_templates_file_is_named_and_an_export_onto_a_file_says_so(tmp_path):
    """The NaN-template error named the template but not the file; --export-stimuli onto a file
    said the 'directory exists and is not empty'."""
    import json

    from gattanet_sim.stimuli import StimulusError, gratings
    from gattanet_sim.templates import TemplateError, Templates

    bad = tmp_path / "t.json"
    bad.write_text(json.dumps({"templates": {"0": [float("nan"), 1.0], "90": [0.1, 0.2]}}))
    with pytest.raises(TemplateError, match=f"{bad}.*template '0' holds NaN"):
        Templates.load(bad)
    checkpoint = tmp_path / "best.pt"
    checkpoint.write_bytes(b"PK\x03\x04 a checkpoint")
    with pytest.raises(StimulusError, match="is a file"):
        gratings(orientations=[0.0]).to_brainscore(checkpoint)
    assert checkpoint.read_bytes() == b"PK\x03\x04 a checkpoint"

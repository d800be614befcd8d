"""Training on two processes (torchrun, gloo on the CPU) follows the one-process trajectory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gattanet_sim import distributed, train

TINY = ["--dataset", "stimuli", "--widths", "8,8,8", "--hidden", "16", "--key-dim", "4",
        "--train-limit", "72", "--batch-size", "16", "--epochs", "2", "--seed", "3", "--quiet",
        "--device", "cpu"]


def torchrun(out: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node", "2", "-m", "gattanet_sim.train", *TINY,
                           "--out-dir", str(out), *args], env=env, capture_output=True, text=True,
                          timeout=300)


def rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def weights(run: Path) -> dict:
    return torch.load(run / "last.pt", weights_only=True)["model"]


def assert_same_trajectory(one: Path, two: Path) -> None:
    a, b = rows(one), rows(two)
    assert len(a) == len(b) == 2  # rank 0 alone writes the metrics
    for x, y in zip(a, b):
        assert y["train_loss"] == pytest.approx(x["train_loss"], rel=1e-5)
        assert y["train_accuracy"] == x["train_accuracy"]
        assert y["val_loss"] == pytest.approx(x["val_loss"], rel=1e-5)
    wa, wb = weights(one), weights(two)
    for k in wa:
        assert torch.allclose(wa[k].float(), wb[k].float(), atol=1e-4), k


# An uneven last batch (72 = 4 x 16 + 8) and the two kinds of batch norm: per-step (the recipe)
# and torch's own (the backbone without attention).
@pytest.mark.parametrize("config", [["--timesteps", "2"], ["--no-attention", "--timesteps", "1"]])
def test_two_processes_follow_the_one_process_trajectory(tmp_path, config):
    assert train.main([*TINY, "--out-dir", str(tmp_path / "one"), *config]) == 0
    done = torchrun(tmp_path / "two", *config)
    assert done.returncode == 0, done.stderr[-2000:]
    assert_same_trajectory(tmp_path / "one", tmp_path / "two")
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["processes"] == 2
    assert done.stdout.count("best val accuracy") == 1  # rank 0 logs


class StopAfter(train.StopFlag):
    """A stop asked for after the third training step."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    @property
    def signal(self):
        self.calls += 1
        return 2 if self.calls >= 3 else None

    @signal.setter
    def signal(self, value) -> None:
        pass


def test_a_run_cut_in_one_process_resumes_exactly_on_two(tmp_path, monkeypatch):
    config = ["--timesteps", "2", "--loss-all-steps"]
    assert train.main([*TINY, "--out-dir", str(tmp_path / "straight"), *config]) == 0
    monkeypatch.setattr(train, "StopFlag", StopAfter)
    assert train.main([*TINY, "--out-dir", str(tmp_path / "cut"), *config]) == 130
    monkeypatch.undo()
    done = torchrun(tmp_path / "cut", *config, "--resume")
    assert done.returncode == 0, done.stderr[-2000:]
    assert_same_trajectory(tmp_path / "straight", tmp_path / "cut")


def test_synchronised_batch_norm_keeps_the_state_dict():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    distributed.synchronise_batch_norm(model)
    assert isinstance(model[1], distributed.SynchronisedBatchNorm)
    after = model.state_dict()
    assert list(after) == list(before) and all(torch.equal(before[k], after[k]) for k in before)
    model.eval()  # one process, eval: plain batch norm with the running statistics
    x = torch.randn(2, 3, 8, 8)
    reference = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)).eval()
    reference.load_state_dict(before)
    assert torch.allclose(model(x), reference(x))


def test_a_recording_by_two_processes_opens_as_one(tmp_path):
    from gattanet_sim import record
    from gattanet_sim.recording import IncompleteRecording, open_recording

    run = tmp_path / "run"
    assert train.main([*TINY, "--epochs", "1", "--timesteps", "2", "--out-dir", str(run)]) == 0
    common = [str(run), "--limit", "11", "--batch-size", "4", "--units", "6", "--noise-std", "0"]
    assert record.main([*common, "--out", str(tmp_path / "one.nc")]) == 0
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node", "2", "-m", "gattanet_sim.record", *common,
                           "--out", str(tmp_path / "two.nc")], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not (tmp_path / "two.nc").exists()
    assert sorted(p.name for p in tmp_path.glob("two.*")) == ["two.rank0-of-2.nc", "two.rank1-of-2.nc"]
    with open_recording(tmp_path / "one.nc") as one:
        two = open_recording(tmp_path / "two.nc")
        assert list(two.stimulus_id.values) == list(one.stimulus_id.values)
        for signal in ("activity", "gain", "logits"):
            assert torch.allclose(torch.from_numpy(two[signal].values), torch.from_numpy(one[signal].values),
                                  atol=1e-5), signal
        assert "rank" not in two.attrs and two.attrs["world"] == "2"
    (tmp_path / "two.rank1-of-2.nc").unlink()
    with pytest.raises(IncompleteRecording, match="rank1-of-2"):
        open_recording(tmp_path / "two.nc")


def test_dist_timeout_reaches_the_process_group(tmp_path, monkeypatch):
    """A paused torchrun worker blocked the other for gloo's 30-minute default with no option."""
    from datetime import timedelta

    from gattanet_sim import distributed

    seen = {}

    def fake_init(backend, **kwargs):
        seen.update(backend=backend, **kwargs)

    monkeypatch.setattr(distributed.dist, "init_process_group", fake_init)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    context, device = distributed.setup("cpu", 45)
    assert seen == {"backend": "gloo", "timeout": timedelta(seconds=45)} and context.world == 2
    seen.clear()
    distributed.setup("cpu")
    assert seen == {"backend": "gloo"}  # torch's own default unless asked
    from gattanet_sim.train import parse_args

    assert parse_args(["--dist-timeout", "45"]).dist_timeout == 45


def test_a_killed_process_leaves_the_other_one_line_and_a_checkpoint(tmp_path):
    """A killed torchrun worker gave the survivor a wall of gloo traceback."""
    import signal
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "run"
    args = [*TINY, "--epochs", "200"]  # the later --epochs wins: still training when killed
    base = {**os.environ, "OMP_NUM_THREADS": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port)}
    procs = [subprocess.Popen([sys.executable, "-m", "gattanet_sim.train", *args, "--out-dir", str(out),
                               "--dist-timeout", "60"],
                              env={**base, "RANK": str(r), "LOCAL_RANK": str(r)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for r in (0, 1)]
    deadline = time.time() + 120
    while not (out / "metrics.jsonl").exists() and time.time() < deadline:  # an epoch done: training
        time.sleep(0.5)
    assert (out / "metrics.jsonl").exists(), procs[0].stderr.read()
    procs[1].send_signal(signal.SIGKILL)
    _, err = procs[0].communicate(timeout=120)
    procs[1].wait()
    lines = [line for line in err.decode().strip().splitlines() if not line.startswith("epoch ")]
    assert procs[0].returncode == 1 and len(lines) == 1, lines[-5:]
    assert "another process" in lines[0] and "--resume" in lines[0] and "Traceback" not in lines[0]
    assert (out / "last.pt").exists()

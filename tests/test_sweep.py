"""The sweep runner's bookkeeping: paired differences, their CI, the tables and the kept run files."""

from __future__ import annotations

import importlib.util
import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from scipy import stats

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "reproduce_toy_cifar10.py"


@pytest.fixture
def sweep(tmp_path, monkeypatch):
    """The runner as a module, writing its ledger, tables and kept files under tmp_path."""
    spec = importlib.util.spec_from_file_location("reproduce_toy_cifar10", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "LEDGER", tmp_path / "toy_cifar10_runs.jsonl")
    monkeypatch.setattr(module, "KEPT", tmp_path / "kept")
    return module


def row(config: str, seed: int, acc: float, epochs: int = 10) -> dict:
    return {"config": config, "seed": seed, "epochs": epochs, "val_accuracy": [0.5, acc]}


def test_paired_difference_and_t_interval(sweep):
    base = {0: 0.80, 1: 0.81, 2: 0.82, 3: 0.83}
    attn = {0: 0.815, 1: 0.82, 2: 0.835, 3: 0.84}  # seed 3 has a baseline but the pairing uses all 4
    rows = [row("baseline", s, a) for s, a in base.items()] + [row("norm-steps", s, a) for s, a in attn.items()]
    rows.append(row("paper", 0, 0.75))
    rows.append(row("baseline", 0, 0.70, epochs=5))  # another budget is its own table row, never paired
    out = {(r["config"], r["epochs"]): r for r in sweep.table(rows)}
    diffs = [attn[s] - base[s] for s in base]
    half = stats.t.ppf(0.975, 3) * statistics.stdev(diffs) / 2
    r = out[("norm-steps", 10)]
    assert r["paired_n"] == 4 and r["seeds"] == 4
    assert r["diff"] == pytest.approx(statistics.mean(diffs))
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((r["diff"] - half, r["diff"] + half))
    assert r["p"] == pytest.approx(stats.ttest_rel(list(attn.values()), list(base.values())).pvalue)
    assert r["mean"] == pytest.approx(statistics.mean(attn.values()))
    one = out[("paper", 10)]
    assert one["paired_n"] == 1 and one["diff"] == pytest.approx(-0.05) and one["ci_low"] != one["ci_low"]
    assert out[("baseline", 5)]["seeds"] == 1


def test_configs_pair_with_their_own_baseline(sweep):
    assert sweep.baseline_of("adam") == "baseline-adam"
    assert sweep.baseline_of("paper-no-bn") == "baseline-no-bn"
    assert sweep.baseline_of("standardize") == "baseline"
    assert sweep.baseline_of("baseline-adam") == "baseline-adam"
    assert set(sweep.BASELINE_OF.values()) <= set(sweep.CONFIGS)


def test_append_writes_ledger_and_tables_atomically(sweep, tmp_path):
    sweep.append(row("baseline", 0, 0.80))
    sweep.append(row("norm-steps", 0, 0.82))
    lines = (tmp_path / "toy_cifar10_runs.jsonl").read_text().splitlines()
    assert [json.loads(x)["config"] for x in lines] == ["baseline", "norm-steps"]
    md = (tmp_path / "toy_cifar10_ablation.md").read_text()
    assert ("| norm-steps | `--timesteps 2 --norm-steps 2 --normalization none` | 10 | 1 | 82.00 | "
            "+2.00 (n=1, vs baseline) |") in md
    assert not list(tmp_path.glob(".*.tmp"))


def test_keep_copies_only_the_small_files(sweep, tmp_path):
    run = tmp_path / "runs" / "norm-steps-s0"
    run.mkdir(parents=True)
    for name in ("config.json", "summary.json", "metrics.jsonl", "last.pt"):
        (run / name).write_text(name)
    sweep.keep(run)
    kept = sorted(p.name for p in (tmp_path / "kept" / "norm-steps-s0").iterdir())
    assert kept == ["config.json", "metrics.jsonl", "summary.json"]


def test_every_config_spells_its_factor_explicitly(sweep):
    """A configuration's meaning must not depend on the defaults: each names its timesteps."""
    for name, args in sweep.CONFIGS.items():
        assert "--timesteps" in args, name
        if "--no-attention" not in args and "--preset" not in args:
            assert "--norm-steps" in args and "--normalization" in args, name
            if int(args[args.index("--timesteps") + 1]) > 2:  # the default draws T per batch, tau 2
                assert "--random-timesteps" in args or "--no-random-timesteps" in args, name
                assert "--gain-tau" in args, name


def test_time_table_gives_steps_drops_and_both_pairings(sweep):
    rows = [row("baseline", s, a) for s, a in ((0, 0.80), (1, 0.81), (2, 0.79))]
    rows += [row("positive-gain", s, a) for s, a in ((0, 0.82), (1, 0.83), (2, 0.81))]
    t4 = {0: [0.78, 0.81, 0.815, 0.82], 1: [0.79, 0.82, 0.821, 0.83], 2: [0.77, 0.80, 0.80, 0.815]}
    rows += [{"config": "positive-T4-norm-4-random-T", "seed": s, "epochs": 10, "val_accuracy": a}
             for s, a in t4.items()]
    rows.append({"config": "positive-gain-T4", "seed": 0, "epochs": 10, "val_accuracy": [0.8, 0.7, 0.8, 0.81]})
    lines = sweep.time_table(rows)
    line = next(x for x in lines if x.startswith("| positive-T4-norm-4-random-T |"))
    assert "| 10 | 3 | 78.00 / 81.00 / 81.20 / 82.17 | +0.20 |" in line
    half = 100 * stats.t.ppf(0.975, 2) * statistics.stdev([0.02, 0.02, 0.025]) / 3 ** 0.5
    assert f"+2.17 [{2.1667 - half:+.2f}, {2.1667 + half:+.2f}] (n=3, p=" in line and "vs baseline" in line
    assert f"+0.17 [{0.1667 - half:+.2f}, {0.1667 + half:+.2f}] (n=3" in line and "vs positive-gain" in line
    assert "| 10 | 1 | 80.00 / 70.00 / 80.00 / 81.00 | -10.00 |" in next(x for x in lines if "positive-gain-T4" in x)
    assert not any(x.startswith("| positive-gain |") or x.startswith("| baseline |") for x in lines)  # T <= 2


def test_failed_runs_are_listed_not_averaged(sweep, tmp_path):
    sweep.append(row("baseline", 0, 0.80))
    sweep.append({"config": "norm-steps-T4", "seed": 0, "epochs": 10, "failed": "loss became inf at epoch 2"})
    assert [r["config"] for r in sweep.table(sweep.ledger())] == ["baseline"]
    md = (tmp_path / "toy_cifar10_ablation.md").read_text()
    assert "| norm-steps-T4 (seed 0) |" in md and "failed: loss became inf at epoch 2" in md


def test_run_directory_depends_on_the_epoch_count(sweep):
    """A longer run must never pick up the finished 10-epoch run of the same configuration and seed."""
    ten = sweep.command("positive-gain", 0, 10, "data")
    twenty = sweep.command("positive-gain", 0, 20, "data")

    def out(cmd: list[str]) -> str:
        return Path(cmd[cmd.index("--out-dir") + 1]).name

    assert out(ten) == "positive-gain-s0"
    assert out(twenty) == "positive-gain-e20-s0"
    assert twenty[twenty.index("--epochs") + 1] == "20"


@pytest.mark.parametrize("bad", [["--seeds", "0,x"], ["--epochs", "0"]])
def test_bad_arguments_give_one_line_and_run_nothing(bad):
    """Rejected before any run starts: an --epochs 0 run used to reach train and land in the ledger as a failure."""
    proc = subprocess.run([sys.executable, str(SCRIPT), *bad], capture_output=True, text=True)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "error: argument" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_superseded_rows_are_listed_but_never_counted(sweep):
    """A row superseded by a protocol rerun changes neither the mean, the seed count nor the pairing."""
    rows = [row("baseline", 0, 0.80), row("baseline", 1, 0.82), row("norm-steps", 0, 0.83),
            row("norm-steps", 1, 0.84)]
    clean = {r["config"]: r for r in sweep.table(rows)}
    old = {**row("norm-steps", 0, 0.50), "superseded": "rerun under the one-thread protocol"}
    out = {r["config"]: r for r in sweep.table(rows + [old])}
    for key in ("seeds", "mean", "diff", "paired_n"):
        assert out["norm-steps"][key] == pytest.approx(clean["norm-steps"][key]), key
    assert out["norm-steps"]["seeds"] == 2


def test_settling_starts_where_the_read_out_first_fired(sweep):
    """A cascade read-out is silent (10%) before t = 4: its constant is not a flat, settled network."""
    assert sweep.smallest_change("cascade-T7-norm-7-random-T", [0.1] * 4 + [0.80, 0.82, 0.815]) == pytest.approx(-0.005)
    assert sweep.smallest_change("positive-T4-norm-4-random-T", [0.78, 0.81, 0.80, 0.82]) == pytest.approx(-0.01)
    assert sweep.smallest_change("cascade-T5-norm-5-random-T", [0.1] * 4 + [0.8]) != sweep.smallest_change(
        "cascade-T5-norm-5-random-T", [0.1] * 4 + [0.8])  # nan: one step fired
    rows = [row("baseline", 0, 0.8), {"config": "cascade-T6-norm-6-random-T", "seed": 0, "epochs": 10,
                                      "val_accuracy": [0.1] * 4 + [0.79, 0.82]}]
    assert "| 10.00 / 10.00 / 10.00 / 10.00 / 79.00 / 82.00 | +3.00 |" in sweep.time_table(rows)[-1]


def gpu_row(config: str, seed: int, accs: list[float], noisy: float, device: str = "H100") -> dict:
    return {"config": config, "seed": seed, "epochs": 10, "device": device, "val_accuracy": accs,
            "val_noise_0": accs, "val_noise_0.1": [0.5] * (len(accs) - 1) + [noisy]}


def test_gpu_table_pairs_runs_on_the_same_gpu_only():
    sys.path.insert(0, str(SCRIPT.parents[1]))
    from benchmarks.gpu_grid import gpu_table

    rows = [gpu_row("baseline", s, [a], n) for s, a, n in ((0, 0.80, 0.50), (1, 0.81, 0.52), (2, 0.79, 0.49))]
    rows += [gpu_row("positive-gain", s, [0.78, a], n)
             for s, a, n in ((0, 0.82, 0.52), (1, 0.82, 0.53), (2, 0.80, 0.52))]
    rows += [gpu_row("baseline", s, [0.70], 0.30, device="H200") for s in (0, 1, 2)]  # another GPU: never paired
    rows.append({"config": "positive-gain", "seed": 3, "epochs": 10, "device": "H100", "failed": "stopped"})
    lines = gpu_table(rows)
    h100 = lines[lines.index("**H100**"):lines.index("**H200**")]
    line = next(x for x in h100 if x.startswith("| positive-gain |"))
    half = 100 * stats.t.ppf(0.975, 2) * statistics.stdev([0.02, 0.01, 0.01]) / 3 ** 0.5
    assert f"| 10 | 3 | 78.00 / 81.33 | +3.33 | +1.33 [{1.3333 - half:+.2f}, {1.3333 + half:+.2f}] (n=3" in line
    noise_half = 100 * stats.t.ppf(0.975, 2) * statistics.stdev([0.02, 0.01, 0.03]) / 3 ** 0.5
    ci = f"[{2 - noise_half:+.2f}, {2 + noise_half:+.2f}]"
    assert line.endswith(f"| 52.33 | +2.00 {ci} (n=3, p=0.074, vs baseline) |")
    h200 = lines[lines.index("**H200**"):]
    assert [x.split(" |")[0] for x in h200 if x.startswith("| ") and "---" not in x][1:] == ["| baseline"]


def test_noise_outputs_keep_every_configuration_measured(sweep):
    rows = [{"config": "baseline", "seed": 0, "noise_std": 0.1, "accuracy": 0.5},
            {"config": "positive-gain", "seed": 0, "noise_std": 0.1, "accuracy": 0.52}]
    assert sweep.noise_configs(rows, ["positive-gain"]) == ["baseline", "positive-gain"]
    assert sweep.noise_configs(rows, ["paper"]) == ["baseline", "positive-gain", "paper"]

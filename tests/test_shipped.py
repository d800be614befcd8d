"""The trained models shipped in data/checkpoints load safely and still do what their records say."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from gattanet_sim import evaluate
from gattanet_sim.cli import load_data
from gattanet_sim.data import balanced_subset

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "data" / "checkpoints" / "toy_cifar10"
DATA = ROOT.parent / "shared" / "datasets"
MODELS = sorted(p.name for p in SHIPPED.iterdir() if (p / "best.pt").exists())
needs_data = pytest.mark.skipif(not DATA.exists() and not os.environ.get("CI"),
                                reason="needs CIFAR-10 in ../shared/datasets (CI has it)")


def test_the_shipped_models_are_the_six_the_scorecard_scores_and_stay_small():
    assert MODELS == ["alpha-positive-s0", "cascade-T6-s0", "cue-trained-s0", "recipe-T2-s0", "recipe-T4-s0",
                      "reference-s0"]
    total = sum(f.stat().st_size for f in SHIPPED.rglob("*") if f.is_file())
    assert total < 20e6, f"{total / 1e6:.1f} MB shipped"


@pytest.mark.parametrize("name", MODELS)
def test_a_shipped_checkpoint_holds_only_tensors_and_plain_containers(name):
    ckpt = torch.load(SHIPPED / name / "best.pt", weights_only=True)
    assert {"model", "model_config"} <= set(ckpt)


@pytest.fixture(scope="module")
def validation_subset():
    """The subset `evaluate --limit 1000` takes of the shipped runs' validation split (all six
    were trained on CIFAR-10 with 5,000 validation images and seed 0): loaded once."""
    data, _ = load_data("cifar10", "val", DATA, 5000, None, fallback=False)
    return data.subset(balanced_subset(data.labels, 1000, seed=0))


@needs_data
@pytest.mark.parametrize("name", MODELS)
def test_each_shipped_model_reproduces_its_recorded_accuracy(name, validation_subset):
    """Validation accuracy on a fixed subset (1,000 images, 100 per class), recorded when it was
    shipped (`make checkpoint-accuracy`), within 0.5 points at every timestep."""
    recorded = json.loads((SHIPPED / name / "eval-val-1000.json").read_text())
    model, config, _ = evaluate.load_checkpoint(SHIPPED / name, torch.device("cpu"))
    assert (config["dataset"], config["val_size"], config["seed"]) == ("cifar10", 5000, 0)
    measured = evaluate.accuracy_per_timestep(model, validation_subset, recorded["timesteps"])
    assert measured["images"] == recorded["images"] == 1000
    for now, then in zip(measured["accuracy"], recorded["accuracy"], strict=True):
        assert abs(now - then) <= 0.005, (name, measured["accuracy"], recorded["accuracy"])

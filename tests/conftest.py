"""Shared fixtures: a private cache, no downloads, tiny image trees."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Every test decodes into its own cache and never touches the network."""
    monkeypatch.setenv("GATTANET_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GATTANET_OFFLINE", "1")
    monkeypatch.delenv("GATTANET_DATA", raising=False)


def write_tree(root: Path, classes=("cat", "dog", "owl"), per_class: int = 6, size: int = 16,
               suffix: str = ".png", seed: int = 0) -> Path:
    """A class-folder tree root/<class>/<i><suffix> of random RGB images; returns root."""
    rng = np.random.default_rng(seed)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / c / f"{i:04d}{suffix}")
    return root


@pytest.fixture
def tree(tmp_path) -> Path:
    """tmp/ds/train/<3 classes>/6 images each, 16x16 PNG."""
    return write_tree(tmp_path / "ds" / "train").parent


def tiny_stepped(alpha: float, **options):
    """A tiny float64 toy model (16x16 images, 3 classes) in eval mode, every alpha = `alpha`,
    whose per-step batch-norm rows (the recipe's `StepBatchNorm`) all differ."""
    import torch

    from gattanet_sim import build_model
    from gattanet_sim.areas import StepBatchNorm

    torch.manual_seed(0)
    model = build_model("toy", num_classes=3, widths=(4, 6, 8), hidden=5, key_dim=3,
                        image_size=16, **options).double().eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, StepBatchNorm):
                module.running_mean.uniform_(-0.3, 0.3)  # (steps, C): every row its own
                module.running_var.uniform_(0.5, 2.0)
        for a in model.attention.alpha.values():
            a.fill_(alpha)
    return model


def tiny_images(batch: int = 4):
    """(batch, 3, 16, 16) float64 images in [0, 1], always the same."""
    import torch

    torch.manual_seed(1)
    return torch.rand(batch, 3, 16, 16, dtype=torch.float64)


class StopAfter:
    """Stands in for train's signal handler: 'receives' SIGINT after `steps` training steps."""

    steps = 5  # 3 steps an epoch (96 images, batch 32): stops at epoch 1, step 2

    def __init__(self) -> None:
        self.seen = 0

    @property
    def signal(self):
        import signal

        self.seen += 1
        return signal.SIGINT if self.seen >= self.steps else None


def assert_same_run(a, b) -> None:
    """Two run directories ended with the same weights and the same metrics (but the seconds)."""
    import json

    import torch

    wa = torch.load(a / "last.pt", weights_only=True)["model"]
    wb = torch.load(b / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    strip = lambda p: [{k: v for k, v in json.loads(line).items() if k != "seconds"}  # noqa: E731
                       for line in p.read_text().splitlines()]
    assert strip(a / "metrics.jsonl") == strip(b / "metrics.jsonl")

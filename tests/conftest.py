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

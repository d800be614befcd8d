"""Procedurally generated stimuli: an image set that exists on every machine, no download.

`shapes` draws ten classes of simple figures (disks, rings, squares, gratings...) at a random
position, size, colour and contrast on a noisy background: hard enough that a toy model has
something to learn, small enough to make in a second. Everything is a function of the seed.
"""

from __future__ import annotations

import torch

SHAPE_CLASSES = (
    "disk", "ring", "square", "frame", "cross",
    "horizontal", "vertical", "diagonal", "checker", "triangle",
)
SPLIT_OFFSETS = {"train": 0, "val": 1, "test": 2}


def _masks(dx: torch.Tensor, dy: torch.Tensor, r: torch.Tensor, freq: torch.Tensor) -> list:
    """Figure masks for every class; dx, dy (N, H, W) from the centre, r/freq (N, 1, 1)."""
    d = torch.sqrt(dx**2 + dy**2)
    box = torch.maximum(dx.abs(), dy.abs())
    in_box = box < 0.85 * r
    in_disk = d < r
    arm = 0.28 * r
    return [
        in_disk,
        in_disk & (d > 0.6 * r),
        in_box,
        in_box & (box > 0.55 * r),
        ((dx.abs() < arm) & (dy.abs() < r)) | ((dy.abs() < arm) & (dx.abs() < r)),
        in_box & (torch.sin(dy * freq) > 0),
        in_box & (torch.sin(dx * freq) > 0),
        in_disk & (torch.sin((dx + dy) * freq * 0.7) > 0),
        in_box & (torch.sin(dx * freq) * torch.sin(dy * freq) > 0),
        (dy < 0.7 * r) & (dy > -r) & (dx.abs() < 0.6 * (dy + r)),
    ]


def shapes(
    n_per_class: int = 200, image_size: int = 32, seed: int = 0, split: str = "train"
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Draw `n_per_class` images of every shape class.

    Returns images (N, 3, H, W) uint8, labels (N,) int64 and the class names. Splits draw
    from disjoint seeds, so "val" and "test" never repeat a "train" image.
    """
    if split not in SPLIT_OFFSETS:
        raise ValueError(f"split must be one of {', '.join(SPLIT_OFFSETS)}; got {split!r}")
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be at least 1, got {n_per_class}")
    g = torch.Generator().manual_seed(seed * 3 + SPLIT_OFFSETS[split])
    k = len(SHAPE_CLASSES)
    n = n_per_class * k
    labels = torch.arange(k).repeat_interleave(n_per_class)  # (N,)
    labels = labels[torch.randperm(n, generator=g)]

    def uniform(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(*shape, generator=g)

    s = image_size
    cx, cy = uniform(0.3, 0.7, n, 1, 1) * s, uniform(0.3, 0.7, n, 1, 1) * s
    r = uniform(0.2, 0.38, n, 1, 1) * s
    freq = uniform(1.2, 2.2, n, 1, 1) * torch.pi / r * 2
    ys, xs = torch.meshgrid(torch.arange(s) + 0.5, torch.arange(s) + 0.5, indexing="ij")
    dx, dy = xs - cx, ys - cy  # (N, H, W)
    masks = torch.stack(_masks(dx, dy, r, freq), dim=1)  # (N, classes, H, W)
    mask = masks[torch.arange(n), labels].float().unsqueeze(1)  # (N, 1, H, W)

    background = uniform(0.0, 1.0, n, 3, 1, 1)
    contrast = uniform(0.35, 1.0, n, 1, 1, 1) * torch.where(background.mean(1, True) > 0.5, -1, 1)
    figure = (background + contrast * uniform(0.6, 1.0, n, 3, 1, 1)).clamp(0, 1)
    images = background + mask * (figure - background)  # (N, 3, H, W)
    images = images + 0.06 * torch.randn(images.shape, generator=g)
    images = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    return images, labels, list(SHAPE_CLASSES)

"""Visual areas: the backbone as an ordered set of named brain areas.

An area splits into two stages so that the simulator can act between them, the way a
neuron's gain acts between its synaptic drive and its firing:

    drive = area.drive(input)        # linear part: conv or dense, batch norm, pooling
    rate  = area.activate(drive)     # the nonlinearity (identity for the read-out)

`Backbone.forward` chains the areas once with nothing in between: the plain feedforward
network that every simulation reduces to when attention is off.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# Per-channel statistics of the CIFAR-10 training images, used as a fixed "retina".
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


@dataclass(frozen=True)
class ReceptiveField:
    """Where an area's units look, in input pixels.

    Unit (row i, column j) of a conv area is centred on pixel coordinates
    (start + j * jump, start + i * jump) and sees `size` x `size` pixels. Dense areas see
    the whole image: jump 0, centred on the image.
    """

    size: float
    jump: float
    start: float


class StepBatchNorm(nn.Module):
    """Batch norm with running statistics of its own for each timestep (shared scale and shift).

    In a T-step simulation the activity of step t >= 1 is gain-modulated, so its statistics
    differ from step 0's. One set of running statistics for all steps is a mixture that fits
    no step in evaluation mode (recurrent batch normalisation, Cooijmans et al. 2017, keeps
    them per step). Steps beyond `steps - 1` share the last set.
    """

    def __init__(self, features: int, steps: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.steps, self.momentum, self.eps = steps, momentum, eps
        self.step = 0  # the timestep when forward is called without one (inside a torchvision block)
        self.batch_norm = F.batch_norm  # replaced by one synchronised over processes when distributed
        self.weight = nn.Parameter(torch.ones(features))
        self.bias = nn.Parameter(torch.zeros(features))
        self.register_buffer("running_mean", torch.zeros(steps, features))
        self.register_buffer("running_var", torch.ones(steps, features))

    def forward(self, x: torch.Tensor, t: int | None = None) -> torch.Tensor:
        s = min(self.step if t is None else t, self.steps - 1)
        return self.batch_norm(x, self.running_mean[s], self.running_var[s], self.weight, self.bias,
                               self.training, self.momentum, self.eps)  # updates row s in place


def _norm(features: int, batch_norm: bool, norm_steps: int, dims: int) -> nn.Module:
    if not batch_norm:
        return nn.Identity()
    if norm_steps > 1:
        return StepBatchNorm(features, norm_steps)
    return nn.BatchNorm2d(features) if dims == 2 else nn.BatchNorm1d(features)


class StepPointer:
    """Points every `StepBatchNorm` inside a module at timestep t, for layers (such as
    torchvision's residual blocks) that call their norms without one. The norms are found
    once, not on every call: this runs at every step of every area."""

    def __init__(self, module: nn.Module) -> None:
        self.norms = [m for m in module.modules() if isinstance(m, StepBatchNorm)]

    def __call__(self, t: int) -> None:
        for norm in self.norms:
            norm.step = t


def out_side(geometry: tuple[tuple[int, int, int], ...], side: int) -> int:
    """Side of a conv area's output grid from its input side, through its (kernel, stride,
    padding) layers."""
    for kernel, stride, padding in geometry:
        side = (side + 2 * padding - kernel) // stride + 1
    return side


class ConvArea(nn.Module):
    """3x3 conv, batch norm, 2x2 max-pool, ReLU.

    Pooling comes before the ReLU: the two commute (both are monotone), and this order puts
    the drive and the rate on the same grid, so a gain map of the area's output can act on
    either.
    """

    kind = "conv"
    geometry = ((3, 1, 1), (2, 2, 0))  # (kernel, stride, padding) of the conv, then the pool

    def __init__(self, in_channels: int, out_channels: int, batch_norm: bool = True,
                 norm_steps: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=not batch_norm)
        self.norm = _norm(out_channels, batch_norm, norm_steps, dims=2)
        self.pool = nn.MaxPool2d(2)
        self.units = out_channels

    def drive(self, x: torch.Tensor, t: int = 0) -> torch.Tensor:
        return self.integrate(self.synapse(x), t)

    def synapse(self, x: torch.Tensor) -> torch.Tensor:
        """The conv: linear in the input, so an unchanging input (the retina, for V1) needs it
        once per simulation, not once per step (the simulator keeps it)."""
        return self.conv(x)  # (B, C, H, W)

    def integrate(self, synaptic: torch.Tensor, t: int = 0) -> torch.Tensor:
        """Batch norm (of step t) and pooling of the synaptic input: the rest of the drive."""
        x = self.norm(synaptic, t) if isinstance(self.norm, StepBatchNorm) else self.norm(synaptic)
        return self.pool(x)  # (B, C, H/2, W/2)

    def activate(self, drive: torch.Tensor) -> torch.Tensor:
        return F.relu(drive)


class DenseArea(nn.Module):
    """A fully connected area; the read-out (class layer) is linear."""

    kind = "dense"

    def __init__(
        self, in_features: int, out_features: int, batch_norm: bool = False, readout: bool = False,
        norm_steps: int = 1, global_pool: bool = False,
    ) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.norm = _norm(out_features, batch_norm, norm_steps, dims=1)
        self.readout = readout
        self.global_pool = global_pool  # average a conv input over space first (a ResNet's head)
        self.units = out_features

    def drive(self, x: torch.Tensor, t: int = 0) -> torch.Tensor:
        x = x.mean(dim=(2, 3)) if self.global_pool else x.flatten(1)  # (B, C) | (B, C*H*W)
        x = self.linear(x)  # (B, N)
        return self.norm(x, t) if isinstance(self.norm, StepBatchNorm) else self.norm(x)

    def activate(self, drive: torch.Tensor) -> torch.Tensor:
        return drive if self.readout else F.relu(drive)


class Backbone(nn.Module):
    """An ordered set of named areas; the last one is the read-out.

    Inputs are images in [0, 1]; a fixed per-channel standardisation ("retina") comes first,
    so that noise added to images is in pixel units.
    """

    def __init__(
        self,
        areas: dict[str, nn.Module],
        image_size: int,
        mean: tuple[float, ...] = CIFAR_MEAN,
        std: tuple[float, ...] = CIFAR_STD,
    ) -> None:
        super().__init__()
        self.areas = nn.ModuleDict(areas)
        self.image_size = image_size
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def retina(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.mean) / self.std  # (B, 3, H, W)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.retina(images)
        for area in self.areas.values():
            x = area.activate(area.drive(x))
        return x  # (B, classes)

    def receptive_fields(self) -> dict[str, ReceptiveField]:
        """Receptive field of every area, by the usual size/jump/start recursion over each
        conv area's (kernel, stride, padding) layers (a residual stage: its main path)."""
        size, jump, start = 1.0, 1.0, 0.5
        fields = {}
        for name, area in self.areas.items():
            if area.kind == "conv":
                for kernel, stride, padding in area.geometry:
                    size += (kernel - 1) * jump
                    start += ((kernel - 1) / 2 - padding) * jump
                    jump *= stride
                fields[name] = ReceptiveField(size, jump, start)
            else:
                fields[name] = ReceptiveField(float(self.image_size), 0.0, self.image_size / 2)
        return fields

    def sides(self, image_size: int | None = None) -> dict[str, int]:
        """Side of every conv area's grid of positions (1 for a dense area)."""
        side, sides = image_size or self.image_size, {}
        for name, area in self.areas.items():
            side = out_side(area.geometry, side) if area.kind == "conv" else side
            sides[name] = side if area.kind == "conv" else 1
        return sides


def toy_backbone(
    num_classes: int = 10,
    widths: tuple[int, int, int] = (64, 128, 256),
    hidden: int = 256,
    batch_norm: bool = True,
    in_channels: int = 3,
    image_size: int = 32,
    norm_steps: int = 1,
) -> Backbone:
    """The paper's 5-layer toy model: three conv areas and two dense areas.

    Named like the ventral stream: V1, V2, V4 (conv), IT (hidden dense), readout (classes).
    `norm_steps` > 1 gives the first `norm_steps` timesteps batch-norm statistics of their own.
    """
    if norm_steps < 1:
        raise ValueError(f"norm_steps must be at least 1, got {norm_steps}")
    if image_size % 8:
        raise ValueError(f"image_size must be a multiple of 8, got {image_size}")
    c1, c2, c3 = widths
    side = image_size // 8
    mean, std = (CIFAR_MEAN, CIFAR_STD) if in_channels == 3 else ((0.5,) * in_channels, (0.25,) * in_channels)
    areas = {
        "V1": ConvArea(in_channels, c1, batch_norm, norm_steps),
        "V2": ConvArea(c1, c2, batch_norm, norm_steps),
        "V4": ConvArea(c2, c3, batch_norm, norm_steps),
        "IT": DenseArea(c3 * side * side, hidden, batch_norm, norm_steps=norm_steps),
        "readout": DenseArea(hidden, num_classes, readout=True),
    }
    return Backbone(areas, image_size, mean, std)

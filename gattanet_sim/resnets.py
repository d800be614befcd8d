"""ResNet backbones (He et al. 2016) as visual areas: torchvision's blocks, cut into areas.

    stem     conv (+ batch norm, + max-pool for ImageNet)       -> ReLU
    layer1   residual blocks; the last one up to its sum          -> ReLU
    ...
    layer4
    readout  global average pool, fully connected                 (linear)

Each area's drive ends where torchvision's block applies its last ReLU (the residual sum),
so a gain from the attention region multiplies the stage's output rate, exactly where the
toy model's gain acts. With ``per_block`` every residual block is an area of its own
(``layer1_0``, ``layer1_1``, ...). Two stems: ``cifar`` (3x3 conv, stride 1, no max-pool:
the usual choice for 32-pixel images) and ``imagenet`` (7x7 conv, stride 2, 3x3 max-pool).

Batch norm keeps per-timestep statistics (`StepBatchNorm`) when ``norm_steps`` > 1, as in
the toy model; torchvision's blocks call their norms without a timestep, so an area points
them at the current one (`StepPointer`) before it runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet as tv

from gattanet_sim.areas import Backbone, DenseArea, StepBatchNorm, StepPointer

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
STEMS = ("cifar", "imagenet")
DEPTHS = {18: (tv.BasicBlock, (2, 2, 2, 2)), 34: (tv.BasicBlock, (3, 4, 6, 3)),
          50: (tv.Bottleneck, (3, 4, 6, 3))}


def _geometry(conv: nn.Conv2d) -> tuple[int, int, int]:
    return conv.kernel_size[0], conv.stride[0], conv.padding[0]


def _block_sum(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A torchvision residual block up to its residual sum, before the final ReLU."""
    identity = x if block.downsample is None else block.downsample(x)  # (B, C', H', W')
    out = block.relu(block.bn1(block.conv1(x)))
    if isinstance(block, tv.Bottleneck):
        out = block.relu(block.bn2(block.conv2(out)))
        return block.bn3(block.conv3(out)) + identity  # (B, C', H', W')
    return block.bn2(block.conv2(out)) + identity  # (B, C', H', W')


class StemArea(nn.Module):
    """The first conv, batch norm and (ImageNet stem) max-pool; ReLU as activation.

    As in the toy model's areas the max-pool comes before the ReLU (they commute), so drive
    and rate share one grid."""

    kind = "conv"

    def __init__(self, conv: nn.Conv2d, norm: nn.Module, pool: nn.Module | None) -> None:
        super().__init__()
        self.conv, self.norm, self.pool = conv, norm, pool or nn.Identity()
        self.units = conv.out_channels
        self.geometry = (_geometry(conv),) + (((3, 2, 1),) if pool is not None else ())
        self.set_step = StepPointer(self)

    def drive(self, x: torch.Tensor, t: int = 0) -> torch.Tensor:
        return self.integrate(self.synapse(x), t)

    def synapse(self, x: torch.Tensor) -> torch.Tensor:
        """The conv, linear in the (unchanging) image: computed once per simulation."""
        return self.conv(x)  # (B, C, H, W)

    def integrate(self, synaptic: torch.Tensor, t: int = 0) -> torch.Tensor:
        self.set_step(t)
        return self.pool(self.norm(synaptic))  # (B, C, H', W')

    def activate(self, drive: torch.Tensor) -> torch.Tensor:
        return F.relu(drive)


class ResidualArea(nn.Module):
    """A run of residual blocks as one area: all but the last run whole, the last one up to
    its residual sum (the drive); the ReLU is the activation."""

    kind = "conv"

    def __init__(self, blocks: list[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*blocks)
        last = blocks[-1]
        self.units = (last.conv3 if isinstance(last, tv.Bottleneck) else last.conv2).out_channels
        convs = [c for b in blocks for c in (b.conv1, b.conv2, getattr(b, "conv3", None)) if c is not None]
        self.geometry = tuple(_geometry(c) for c in convs)  # the main path sets the field
        self.set_step = StepPointer(self)

    def drive(self, x: torch.Tensor, t: int = 0) -> torch.Tensor:
        self.set_step(t)
        for block in self.blocks[:-1]:
            x = block(x)  # (B, C, H, W)
        return _block_sum(self.blocks[-1], x)  # (B, C', H', W')

    def activate(self, drive: torch.Tensor) -> torch.Tensor:
        return F.relu(drive)


def _step_norms(module: nn.Module, steps: int) -> None:
    """Replace every BatchNorm2d inside `module` by a StepBatchNorm with its parameters, its
    running statistics copied into every timestep's row."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            norm = StepBatchNorm(child.num_features, steps, child.momentum, child.eps)
            with torch.no_grad():
                norm.weight.copy_(child.weight)
                norm.bias.copy_(child.bias)
                norm.running_mean.copy_(child.running_mean.expand(steps, -1))
                norm.running_var.copy_(child.running_var.expand(steps, -1))
            setattr(module, name, norm)
        else:
            _step_norms(child, steps)


def load_weights(net: nn.Module, path: Path | str) -> list[str]:
    """Initialise a torchvision ResNet from a local weights file (a state dict, as
    torchvision saves them); tensors whose shape differs (a CIFAR stem, another number of
    classes) are left at their initialisation. Returns the names left out."""
    from gattanet_sim.io import safe_load

    try:
        state = safe_load(path)
    except Exception as err:  # not a zip/pickle file at all, or one torch refuses
        raise ValueError(f"{path} is not a torchvision weights file ({type(err).__name__})") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} is not a torchvision weights file (no state dict of tensors)")
    own = net.state_dict()
    unknown = [k for k in state if k not in own]
    if unknown:
        raise ValueError(f"{path} is not a torchvision ResNet of this depth (unknown: {unknown[0]})")
    skipped = [k for k, v in state.items() if v.shape != own[k].shape]
    net.load_state_dict({k: v for k, v in state.items() if k not in skipped}, strict=False)
    return skipped


def resnet_backbone(
    depth: int = 18,
    num_classes: int = 10,
    stem: str = "cifar",
    per_block: bool = False,
    norm_steps: int = 1,
    image_size: int = 32,
    weights: Path | str | None = None,
) -> Backbone:
    """A torchvision ResNet-`depth` cut into areas (see the module docstring).

    `weights`: a local torchvision state dict to start from (never downloaded).
    """
    if depth not in DEPTHS:
        raise ValueError(f"ResNet depth must be one of {', '.join(map(str, DEPTHS))}, got {depth}")
    if stem not in STEMS:
        raise ValueError(f"stem must be one of {', '.join(STEMS)}, got {stem!r}")
    if norm_steps < 1:
        raise ValueError(f"norm_steps must be at least 1, got {norm_steps}")
    block, layers = DEPTHS[depth]
    net = tv.ResNet(block, list(layers))
    if weights is not None:
        skipped = load_weights(net, weights)
        if skipped:
            print(f"note: {weights}: kept the initialisation of {', '.join(skipped)} "
                  "(shapes differ)", file=sys.stderr)
    if stem == "cifar":
        net.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
        nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
    if norm_steps > 1:
        _step_norms(net, norm_steps)
    areas: dict[str, nn.Module] = {
        "stem": StemArea(net.conv1, net.bn1, net.maxpool if stem == "imagenet" else None)}
    for i in range(1, 5):
        blocks = list(getattr(net, f"layer{i}"))
        if per_block:
            areas.update({f"layer{i}_{j}": ResidualArea([b]) for j, b in enumerate(blocks)})
        else:
            areas[f"layer{i}"] = ResidualArea(blocks)
    readout = DenseArea(net.fc.in_features, num_classes, readout=True, global_pool=True)
    if weights is not None and num_classes == net.fc.out_features:
        readout.linear = net.fc
    areas["readout"] = readout
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if stem == "imagenet" else (None, None)
    backbone = Backbone(areas, image_size, *((mean, std) if mean else ()))
    if min(s for n, s in backbone.sides().items() if n != "readout") < 1:
        raise ValueError(f"image_size {image_size} is too small for the {stem} stem")
    return backbone

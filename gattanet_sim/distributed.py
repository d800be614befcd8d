"""Training on several processes with PyTorch's own engine (`torchrun`), and what it needs.

    torchrun --nproc_per_node 4 -m gattanet_sim.train --timesteps 2 ...

`torchrun` sets RANK, LOCAL_RANK and WORLD_SIZE; `setup` joins the process group (NCCL on
GPUs, gloo on CPUs), one GPU per process. `--batch-size` stays the *global* batch: every
process takes its share of each batch (`data.batches(shard=...)`), and the model is wrapped in
DistributedDataParallel. Batch norm is synchronised (`synchronise_batch_norm`): its
statistics span the whole global batch, as in a one-process run, so the two follow the same
trajectory (up to float rounding; `tests/test_distributed.py` checks it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from gattanet_sim.areas import StepBatchNorm
from gattanet_sim.io import UsageError


@dataclass(frozen=True)
class Context:
    """Where this process stands: rank among world processes (rank 0 writes)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def _launcher_int(name: str, default: str | None = None) -> int:
    """A whole number the launcher set in the environment; a UsageError naming it otherwise
    (WORLD_SIZE set by hand without torchrun leaves RANK unset)."""
    value = os.environ.get(name, default)
    if value is None or not value.strip().isdigit():
        raise UsageError(f"{name} is {'not set' if value is None else repr(value)} while WORLD_SIZE="
                         f"{os.environ.get('WORLD_SIZE')!r}: start several processes with torchrun "
                         "(it sets RANK, LOCAL_RANK and WORLD_SIZE), or unset WORLD_SIZE")
    return int(value)


def from_environment() -> Context:
    """This process's place as torchrun set it, without joining a process group (for work
    that needs no communication, such as recording a share of the images)."""
    world = _launcher_int("WORLD_SIZE", "1")
    if world <= 1:
        return Context()
    rank = _launcher_int("RANK")
    return Context(rank, world, _launcher_int("LOCAL_RANK", str(rank)))


def launched() -> bool:
    """Started by torchrun (or another launcher setting WORLD_SIZE) with more than one process."""
    return _launcher_int("WORLD_SIZE", "1") > 1


def setup(device_name: str, timeout_s: float | None = None) -> tuple[Context, torch.device]:
    """Join the process group if launched with several processes; the device of this process.
    `timeout_s`: how long a collective waits for a process that stopped (gloo's and NCCL's
    default is 30 minutes) before every process fails with an error."""
    if not launched():
        return Context(), torch.device(device_name)
    rank, world = _launcher_int("RANK"), _launcher_int("WORLD_SIZE")
    local_rank = _launcher_int("LOCAL_RANK", str(rank))
    cuda = device_name.startswith("cuda")
    if cuda:
        torch.cuda.set_device(local_rank)
    timeout = {} if timeout_s is None else {"timeout": timedelta(seconds=timeout_s)}
    dist.init_process_group("nccl" if cuda else "gloo", **timeout)
    return Context(rank, world, local_rank), torch.device(f"cuda:{local_rank}" if cuda else "cpu")


class PeerLost(ValueError):
    """A collective failed because another process of the job stopped (killed, crashed)."""


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__


def lost_peer(err: BaseException) -> bool:
    """Whether a collective's error says a peer went away (gloo: connection closed or reset, a
    timeout), rather than a bug of our own, which must keep its traceback."""
    if isinstance(err, dist.DistError):
        return True
    text = str(err).lower()
    return "gloo" in text or "connection closed" in text or "connection reset" in text or "timed out" in text


def teardown(context: Context) -> None:
    """Leave the process group; after a lost peer that can fail too, and then nothing is left
    to clean."""
    if context.distributed and dist.is_initialized():
        try:
            dist.destroy_process_group()
        except (RuntimeError, dist.DistError):
            pass


def reduce_sum(values: torch.Tensor, context: Context) -> torch.Tensor:
    """Sum a tensor over every process (a no-op alone)."""
    if context.distributed:
        values = values.clone()
        dist.all_reduce(values)
    return values


def any_process(flag: bool, context: Context, device: torch.device) -> bool:
    """True on every process when it is true on one (so all stop at the same step)."""
    if not context.distributed:
        return flag
    return bool(reduce_sum(torch.tensor([float(flag)], device=device), context).item() > 0)


class _AllReduceSum(torch.autograd.Function):
    """y = sum over processes of x; every process's y depends on every x, so the gradient of
    x is the sum over processes of the gradients of y."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def distributed_batch_norm(x: torch.Tensor, running_mean: torch.Tensor, running_var: torch.Tensor,
                           weight: torch.Tensor, bias: torch.Tensor, training: bool,
                           momentum: float, eps: float) -> torch.Tensor:
    """`F.batch_norm` whose training statistics span the batch of every process.

    The sums are all-reduced with autograd (`_AllReduceSum`), so gradients flow through
    the global mean and variance as they would in one process holding the whole batch.
    """
    if not training:
        return torch.nn.functional.batch_norm(x, running_mean, running_var, weight, bias, False,
                                              momentum, eps)
    dims = [0, *range(2, x.dim())]
    c = x.shape[1]
    count = x.new_tensor([x.numel() // c], dtype=torch.float32)
    stats = torch.cat([x.float().sum(dims), (x.float() ** 2).sum(dims), count])  # (2C + 1,)
    stats = _AllReduceSum.apply(stats)  # (2C + 1,) over every process
    n = stats[-1]
    mean = stats[:c] / n  # (C,)
    var = (stats[c:2 * c] / n - mean ** 2).clamp_min(0)  # (C,) biased, as batch norm normalises
    with torch.no_grad():
        running_mean.lerp_(mean.to(running_mean), momentum)
        running_var.lerp_((var * n / (n - 1).clamp_min(1)).to(running_var), momentum)
    shape = (1, c) + (1,) * (x.dim() - 2)
    scale = torch.rsqrt(var + eps) * weight  # (C,)
    return ((x - mean.view(shape).to(x)) * scale.view(shape).to(x) + bias.view(shape)).to(x.dtype)


class SynchronisedBatchNorm(nn.modules.batchnorm._BatchNorm):
    """`nn.BatchNorm1d/2d` with statistics over every process; the same parameters and buffers
    (so the same state dict)."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() not in (2, 3, 4, 5):
            raise ValueError(f"expected a 2D to 5D input, got {x.dim()}D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.num_batches_tracked.add_(1)
        return distributed_batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                      self.training, self.momentum, self.eps)


def synchronise_batch_norm(module: nn.Module) -> nn.Module:
    """Make every batch norm inside `module` compute its statistics over all processes."""
    for name, child in module.named_children():
        if isinstance(child, StepBatchNorm):
            child.batch_norm = distributed_batch_norm
        elif isinstance(child, nn.modules.batchnorm._BatchNorm):
            synced = SynchronisedBatchNorm(child.num_features, child.eps, child.momentum,
                                           child.affine, child.track_running_stats)
            synced.weight, synced.bias = child.weight, child.bias
            synced.running_mean, synced.running_var = child.running_mean, child.running_var
            synced.num_batches_tracked = child.num_batches_tracked
            setattr(module, name, synced)
        else:
            synchronise_batch_norm(child)
    return module

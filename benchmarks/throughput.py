"""Training and evaluation throughput (images/s), the plain backbone against attention at T = 2, 4.

    python benchmarks/throughput.py [--models toy,resnet18,resnet50] [--steps 20] [--device cuda]

On whatever device is present. Models and inputs: toy (32 px, widths 64/128/256), resnet18
(32 px, CIFAR stem), resnet50 (224 px, ImageNet stem); 10 classes, synthetic images held as
uint8 like a dataset. Training runs the training loop's own step (`train.loss_fn`,
`train.make_optimizer`, `train.device_policy`: bf16 autocast and channels-last on a GPU,
the data resident on the GPU, no wait for the device inside the step); on a GPU the same
step is also measured "as before" (fp32, contiguous layout, data on the host, `loss.item()`
and the accuracy count read back at every step, as the loop did until it was changed), so the
speed-up is measured in the same run. Configurations are interleaved round by round so a
drift in the machine's speed hits all alike; the medians of the per-round rates are compared.
The last lines print every rate as a ratio to the baseline of its model.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gattanet_sim import build_model  # noqa: E402
from gattanet_sim.data import ImageSet, batches  # noqa: E402
from gattanet_sim.train import device_policy, loss_fn, make_optimizer, resident  # noqa: E402

SIZES = {"toy": 32, "resnet18": 32, "resnet50": 224}
CONFIGS = [("baseline", False, 1), ("attention T=2", True, 2), ("attention T=4", True, 4)]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def make(name: str, attention: bool, device: torch.device, lean: bool):
    torch.manual_seed(0)
    model = build_model(name, num_classes=10, attention=attention, image_size=SIZES[name]).to(device)
    if model.attention is not None:
        with torch.no_grad():
            for a in model.attention.alpha.values():
                a.fill_(0.1)  # the gain really acts
    if lean:
        model = device_policy(model, device)[0]
    return model


def timed(stream, steps: int, device: torch.device, body) -> float:
    """Images per second of `body(images, labels)` over `steps` batches, after one warm-up."""
    seen, start = 0, None
    for k, (images, labels) in enumerate(stream):
        if k == 1:
            sync(device)
            start = time.perf_counter()
        if k > steps:
            break
        body(images, labels)
        seen += len(labels) if k >= 1 else 0
    sync(device)
    return seen / (time.perf_counter() - start)


def policy(model, device: torch.device, lean: bool):
    """The lean path's autocast and input layout, or fp32 and contiguous "as before"."""
    if lean:
        return device_policy(model, device, change=False)[1:]
    return contextlib.nullcontext(), torch.contiguous_format


def train_rate(model, data, args, timesteps: int, device: torch.device, lean: bool) -> float:
    opts = SimpleNamespace(lr=0.01, alpha_lr=None, weight_decay=5e-4, optimizer="sgd",
                           timesteps=timesteps, loss_all_steps=False, label_smoothing=0.1, mode="sweep")
    optimizer = make_optimizer(model, opts)
    autocast, layout = policy(model, device, lean)
    model.train()

    def step(images, labels):
        with autocast:
            loss, logits = loss_fn(model, images.contiguous(memory_format=layout), labels, opts)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if not lean:  # the old loop's waits: the loss, its finiteness and the accuracy count
            loss.item(), torch.isfinite(loss).item(), (logits.argmax(1) == labels).sum().item()

    stream = batches(data, args.batch_size, device, generator=torch.Generator().manual_seed(0))
    return timed(stream, args.steps, device, step)


@torch.no_grad()
def eval_rate(model, data, args, timesteps: int, device: torch.device, lean: bool) -> float:
    autocast, layout = policy(model, device, lean)
    model.eval()

    def step(images, labels):
        with autocast:
            model(images.contiguous(memory_format=layout), timesteps=timesteps)

    return timed(batches(data, args.batch_size, device), args.steps, device, step)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="toy,resnet18,resnet50")
    p.add_argument("--steps", type=int, default=10, help="timed steps per configuration and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    device = torch.device(args.device)
    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m not in SIZES]
    if unknown or args.steps < 1 or args.rounds < 1:
        p.error(f"unknown model(s) {unknown}" if unknown else "--steps and --rounds must be >= 1")
    ways = [True, False] if device.type == "cuda" else [True]  # "as before" only differs on a GPU
    print(f"device {device_name(device)}, batch {args.batch_size}, {args.steps} steps x {args.rounds} rounds")
    rates: dict[tuple, list[float]] = {}
    for name in models:
        side = SIZES[name]
        n = args.batch_size * (args.steps + 1)
        g = torch.Generator().manual_seed(0)
        host = ImageSet(torch.randint(0, 256, (n, 3, side, side), dtype=torch.uint8, generator=g),
                        torch.randint(0, 10, (n,), generator=g), [str(c) for c in range(10)])
        nets = {(label, lean): make(name, attention, device, lean)
                for label, attention, _ in CONFIGS for lean in ways}
        for _ in range(args.rounds):
            for label, _, timesteps in CONFIGS:
                for lean in ways:
                    data = resident(host, device) if lean else host
                    net = nets[label, lean]
                    for phase, rate in (("train", train_rate), ("eval", eval_rate)):
                        rates.setdefault((name, label, lean, phase), []).append(
                            rate(net, data, args, timesteps, device, lean))
        del nets
    print(f"{'model':<10}{'configuration':<16}{'path':<11}{'train img/s':>13}{'eval img/s':>12}")
    for name in models:
        for label, _, _ in CONFIGS:
            for lean in ways:
                tr = statistics.median(rates[name, label, lean, "train"])
                ev = statistics.median(rates[name, label, lean, "eval"])
                print(f"{name:<10}{label:<16}{'lean' if lean else 'as before':<11}{tr:>13.1f}{ev:>12.1f}")
    print("ratios (median rate of the baseline of the same model and path / rate: the cost, x):")
    for name in models:
        for lean in ways:
            base = {ph: statistics.median(rates[name, "baseline", lean, ph]) for ph in ("train", "eval")}
            cells = "  ".join(f"{label} train "
                              f"{base['train'] / statistics.median(rates[name, label, lean, 'train']):.2f}"
                              f" eval {base['eval'] / statistics.median(rates[name, label, lean, 'eval']):.2f}"
                              for label, _, _ in CONFIGS[1:])
            print(f"  {name} {'lean' if lean else 'as before'}: {cells}")
        if len(ways) == 2:
            for label, _, _ in CONFIGS:
                speedup = (statistics.median(rates[name, label, True, "train"])
                           / statistics.median(rates[name, label, False, "train"]))
                print(f"  {name} {label}: lean training {speedup:.2f}x as fast as before")


if __name__ == "__main__":
    main()

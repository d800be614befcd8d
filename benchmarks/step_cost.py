"""Cost of one training step with attention at T = 1, 2, 4, relative to the plain backbone.

    python benchmarks/step_cost.py [--batch-size 128] [--repeats 15] [--widths 64,128,256]

All configurations train on the same batches, interleaved step by step (so a drift in the
machine's speed hits all of them alike); the medians of the step times give the ratios.
T sweeps cannot cost less than about T baseline steps ("two plain sweeps" measures that
floor: the backbone run twice in one graph); the attention system's own cost is what lies
above it: target T=2 ratio <= 2.1 (overhead <= 5% of two sweeps).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from gattanet_sim import build_model

CONFIGS = [("baseline", False, 1), ("two plain sweeps", False, 2), ("attention T=1", True, 1),
           ("attention T=2", True, 2), ("attention T=4", True, 4)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--widths", default="64,128,256")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    if args.repeats < 1 or args.batch_size < 1 or args.warmup < 0:
        p.error("--repeats and --batch-size must be at least 1, --warmup at least 0")
    widths = tuple(int(w) for w in args.widths.split(","))
    device = torch.device(args.device)
    torch.manual_seed(0)
    models, optims = {}, {}
    for name, attention, _ in CONFIGS:
        torch.manual_seed(0)
        models[name] = build_model("toy", num_classes=10, attention=attention, widths=widths).to(device)
        optims[name] = torch.optim.SGD(models[name].parameters(), lr=0.01, momentum=0.9)
    for m in models.values():  # non-zero alphas: the gain really acts
        if m.attention is not None:
            for a in m.attention.alpha.values():
                a.data.fill_(0.1)
    times = {name: [] for name, _, _ in CONFIGS}
    for r in range(args.warmup + args.repeats):
        images = torch.rand(args.batch_size, 3, 32, 32, device=device)
        labels = torch.randint(0, 10, (args.batch_size,), device=device)
        for name, _, timesteps in CONFIGS:
            model, opt = models[name], optims[name]
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            if model.attention is None and timesteps == 2:  # the floor: two sweeps, no attention
                loss = F.cross_entropy(model.backbone(images) + model.backbone(images), labels)
            else:
                loss = F.cross_entropy(model(images, timesteps=timesteps), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if r >= args.warmup:
                times[name].append(time.perf_counter() - start)
    base = statistics.median(times["baseline"])
    where = (f"cuda ({torch.cuda.get_device_name(device)})" if device.type == "cuda"
             else f"cpu ({torch.get_num_threads()} threads)")
    print(f"device {where}, batch {args.batch_size}, widths {widths}, {args.repeats} steps each; "
          f"baseline step {base * 1000:.1f} ms (median)")
    print(f"{'configuration':<16}{'ratio to baseline':>19}{'ratio / T':>11}")
    for name, _, timesteps in CONFIGS:
        ratio = statistics.median(times[name]) / base
        print(f"{name:<16}{ratio:>19.3f}{ratio / timesteps:>11.3f}")
    t2 = statistics.median(times["attention T=2"]) / base
    floor = statistics.median(times["two plain sweeps"]) / base
    t4 = statistics.median(times["attention T=4"]) / base
    print(f"T=2 ratio {t2:.3f} (target <= 2.1): {'met' if t2 <= 2.1 else 'NOT met'}; "
          f"T=4 ratio {t4:.3f} (target <= 4.2): {'met' if t4 <= 4.2 else 'NOT met'}; "
          f"attention's own overhead over two plain sweeps: {100 * (t2 / floor - 1):.1f}%")


if __name__ == "__main__":
    main()

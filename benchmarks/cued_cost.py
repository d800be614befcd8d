"""Cost of a training epoch of the cued task relative to the recipe's, at the same T.

    python benchmarks/cued_cost.py [--batch-size 128] [--repeats 15] [--timesteps 2,4]

One run, interleaved step by step so that a drift in the machine's speed hits every kind alike:
a recipe training step (classification), and the cued task's two kinds of step, a
classification batch (the recipe's step on a model with cue templates and a feature gain) and a
detection batch (building the search arrays from the batch and a pool of training-sized images,
drawing cues, the forward pass with the cue as query, binary cross-entropy, backward, update).
An epoch of the cued task mixes them (`--detection-fraction`, train's default 0.5), so its cost
relative to the recipe's epoch is the mix of the medians. Target (issue 21): <= 1.5.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from gattanet_sim import build_model, cued_task


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--widths", default="32,64,128")
    p.add_argument("--timesteps", default="2,4")
    p.add_argument("--detection-fraction", type=float, default=0.5)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    if args.repeats < 1 or args.batch_size < 1 or not 0 <= args.detection_fraction <= 1:
        p.error("--repeats and --batch-size must be >= 1, --detection-fraction in [0, 1]")
    widths = tuple(int(w) for w in args.widths.split(","))
    device = torch.device(args.device)
    pool = torch.randint(0, 256, (5000, 3, 32, 32), dtype=torch.uint8, device=device)
    pool_labels = torch.arange(5000, device=device) % 10
    print(f"device {device}, batch {args.batch_size}, widths {widths}, {args.repeats} steps each "
          f"(medians), detection fraction {args.detection_fraction}")
    for T in (int(t) for t in args.timesteps.split(",")):
        models = {}
        for name, extra in (("recipe", {}), ("cued", {"gain_map": "both", "cue_classes": 10})):
            torch.manual_seed(0)
            model = build_model("toy", num_classes=10, widths=widths, timesteps=T, **extra).to(device)
            for a in model.attention.alpha.values():
                a.data.fill_(0.1)  # the gain really acts
            models[name] = (model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9))
        times = {"recipe": [], "cued classification": [], "cued detection": []}
        g = torch.Generator().manual_seed(0)
        for r in range(args.warmup + args.repeats):
            images = torch.rand(args.batch_size, 3, 32, 32, device=device)
            labels = torch.randint(0, 10, (args.batch_size,), device=device)
            for kind in times:
                model, opt = models["recipe" if kind == "recipe" else "cued"]
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                if kind == "cued detection":
                    trial = cued_task.detection_batch(images, labels, pool, pool_labels, model.attention.cues, g)
                    logits = model(trial["images"], timesteps=T, query=trial["query"])
                    loss = cued_task.detection_loss(logits, trial["question"], trial["present"])
                else:
                    loss = F.cross_entropy(model(images, timesteps=T), labels)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                if r >= args.warmup:
                    times[kind].append(time.perf_counter() - start)
        med = {k: statistics.median(v) for k, v in times.items()}
        f = args.detection_fraction
        epoch = (1 - f) * med["cued classification"] + f * med["cued detection"]
        ratio = epoch / med["recipe"]
        print(f"T={T}: recipe step {1000 * med['recipe']:.1f} ms; cued classification step "
              f"{1000 * med['cued classification']:.1f} ms, detection step {1000 * med['cued detection']:.1f} ms; "
              f"epoch ratio {ratio:.3f} (target <= 1.5): {'met' if ratio <= 1.5 else 'NOT met'}")


if __name__ == "__main__":
    main()

"""Train a model end to end on the read-out of its last timestep.

    python -m gattanet_sim.train --timesteps 4
    python -m gattanet_sim.train --dataset cifar10 --data-root ../datasets --no-attention

A run directory (`--out-dir`) receives `config.json`, one line per epoch in `metrics.jsonl`,
checkpoints `last.pt` (every epoch, and on SIGINT/SIGTERM) and `best.pt` (best validation
accuracy at the last timestep), and `summary.json` at the end. `--resume` continues a run
from `last.pt`, mid-epoch included, with the same data order, augmentation and RNG draws.

Recipe (defaults): SGD with Nesterov momentum 0.9, one-cycle learning rate peaking at
`--lr` 0.1, weight decay 5e-4 (not on the alphas), label smoothing 0.1, batch 128,
pad-and-crop + flip augmentation. For T > 2 the recipe also gives every timestep batch-norm
statistics of its own, a gain relaxing to its target with a time constant of 2 steps, and
trains each batch at a T drawn from 2..T (evaluated at T): the changes that made later
timesteps no worse than earlier ones (results/README.md, "Time"); `--norm-steps 2 --gain-tau 1
--no-random-timesteps` gives the earlier recipe back.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from gattanet_sim import cued_task, distributed
from gattanet_sim.areas import StepBatchNorm
from gattanet_sim.attention import (
    ALPHA_SIGNS,
    FEATURE_POOLS,
    GAIN_FORMS,
    GAIN_MAPS,
    GAIN_POSITIONS,
    KEY_POSITIONS,
    KEY_TIMES,
    NORMALISATIONS,
)
from gattanet_sim.cli import (
    Parser,
    UsageError,
    add_data_arguments,
    int_list,
    load_data,
    main_guard,
    name_list,
    non_negative_float,
    pick_device,
    positive_int,
    set_threads,
)
from gattanet_sim.data import ImageSet, balanced_subset, batches, epoch_order
from gattanet_sim.dynamics import MODES, GAttANet, parse_feedback_delays
from gattanet_sim.evaluate import accuracy_per_timestep, load_checkpoint
from gattanet_sim.io import atomic_path, atomic_save, git_commit, package_versions, safe_load, write_json
from gattanet_sim.models import ATTENTION_OPTIONS, PRESETS, build_model, list_models, resolve_options, time_recipe
from gattanet_sim.resnets import STEMS
from gattanet_sim.signal_detection import sdt
from gattanet_sim.stimuli import detection_arrays
from gattanet_sim.templates import from_model

# Arguments that may differ between a run and its resumption (the preset only names defaults:
# the options it resolves to are compared one by one).
RESUMABLE = ("resume", "device", "quiet", "preset", "precision", "compile", "dist_timeout")
# options newer than some saved runs: their value then, before the option existed
LATER = {"query_leak": 0.0, "gain_tau": 1.0, "stem": None, "per_block": False, "weights": None,
         "attention_areas": None, "random_timesteps": False, "alpha_sign": "free",
         "gain_map": "position", "key_position": "none", "cue_classes": 0, "task": "classify",
         "init": None, "cue_validity": 0.8, "cue_neutral": 0.2, "cue_beta": 1.0, "detection_fraction": 0.5,
         "grid": 2, "feedback_delays": None, "shared_noise": 0.0, "feature_pool": "none", "cue_on": "class"}
TASKS = ("classify", "cued-detection")
DETECTION_VAL = 2000  # validation arrays of the cued task (fixed, from the validation images)


SYNC_EVERY = 50  # on a GPU: steps between the loop's waits for the device (finiteness, progress)
CPU_SYNC_EVERY = 1  # on the CPU a wait costs nothing: check every step


def feedback_delays_argument(text: str) -> list[int] | dict[str, int]:
    """--feedback-delays D,D,.. (one per area, in order) or AREA=D,.. (the rest 0)."""
    try:
        return parse_feedback_delays(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


class TrainingDiverged(ValueError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = Parser(prog="python -m gattanet_sim.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    m = p.add_argument_group("model")
    m.add_argument("--model", choices=list_models(), default="toy")
    m.add_argument("--timesteps", type=positive_int, default=2, help="T (paper: 2)")
    m.add_argument("--mode", choices=MODES, default="sweep")
    m.add_argument("--attention", action=argparse.BooleanOptionalAction, default=True)
    m.add_argument("--key-dim", type=positive_int, default=16)
    m.add_argument("--widths", type=int_list, default=(64, 128, 256), help="toy: V1,V2,V4 channels")
    m.add_argument("--hidden", type=positive_int, default=256, help="toy: IT units")
    m.add_argument("--stem", choices=STEMS, default=None,
                   help="ResNets: cifar (3x3 conv, no max-pool) or imagenet; default: cifar up to "
                        "64-pixel images")
    m.add_argument("--per-block", action="store_true", help="ResNets: every residual block an area")
    m.add_argument("--weights", type=Path, default=None,
                   help="ResNets: start from this local torchvision weights file")
    m.add_argument("--attention-areas", type=name_list, default=None,
                   help="comma-separated areas the attention region reads and gains (default: all)")
    m.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, default=True)
    m.add_argument("--preset", choices=sorted(PRESETS), default="recipe",
                   help="defaults of the options below: recipe (best measured) or paper (literal)")
    m.add_argument("--norm-steps", type=positive_int, default=None,
                   help="timesteps with batch-norm statistics of their own (1: shared; recipe: 2, "
                        "or T for T > 2)")
    m.add_argument("--normalization", choices=NORMALISATIONS, default=None,
                   help="of each agreement map (default: the preset's, none)")
    m.add_argument("--gain-form", choices=GAIN_FORMS, default=None,
                   help="recipe: positive 2 sigmoid(alpha a); paper: linear 1 + alpha a; "
                        "divisive: the positive one, divided by the pooled drive it gains")
    m.add_argument("--readout-gain", action=argparse.BooleanOptionalAction, default=None)
    m.add_argument("--alpha-init", type=float, default=None)
    m.add_argument("--keys", choices=KEY_TIMES, default=None)
    m.add_argument("--gain-position", choices=GAIN_POSITIONS, default=None)
    m.add_argument("--query-leak", type=non_negative_float, default=None,
                   help="lambda of q(t) = lambda q(t-1) + (1 - lambda) q_new (0: no memory)")
    m.add_argument("--gain-tau", type=non_negative_float, default=None,
                   help="time constant of the gain, in steps (1: instantaneous; recipe: 1, or 2 for T > 2)")
    m.add_argument("--alpha-sign", choices=ALPHA_SIGNS, default=None,
                   help="free (the paper) or positive: alpha = softplus(rho) >= 0")
    m.add_argument("--gain-map", choices=GAIN_MAPS, default=None,
                   help="position (the paper), feature (a gain per channel from W_k^T q, global "
                        "over positions: feature-based attention) or both")
    m.add_argument("--feature-pool", choices=FEATURE_POOLS, default=None,
                   help="none (each feature gain on its own) or divisive: the feature gains share "
                        "one budget, divided by their drive-weighted mean (the normalization model)")
    m.add_argument("--key-position", choices=KEY_POSITIONS, default=None,
                   help="none (the paper), learned or sinusoidal: a position code added to the "
                        "keys (and queries), so that a cue can name a location")
    m.add_argument("--noise-std", type=non_negative_float, default=0.0, help="unit noise sd")
    m.add_argument("--shared-noise", type=non_negative_float, default=0.0, metavar="RHO",
                   help="fraction of the unit noise's variance shared by an area's units, drawn "
                        "once per trial (0: independent, the default)")
    m.add_argument("--feedback-delays", type=feedback_delays_argument, default=None, metavar="D,D,..",
                   help="steps the attention gain is withheld from each area, D,D,.. in area order "
                        "or AREA=D,.. (default: none; see gattanet_sim.dynamics)")
    d = p.add_argument_group("data")
    add_data_arguments(d, dataset_default=None)
    d.add_argument("--train-limit", type=positive_int, default=None,
                   help="train on N training images, the same number of each class (seeded)")
    d.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True)
    o = p.add_argument_group("optimisation")
    o.add_argument("--epochs", type=positive_int, default=15)
    o.add_argument("--batch-size", type=positive_int, default=128)
    o.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    o.add_argument("--lr", type=non_negative_float, default=0.1, help="peak learning rate")
    o.add_argument("--alpha-lr", type=non_negative_float, default=None,
                   help="peak learning rate of the alphas (default: --lr)")
    o.add_argument("--weight-decay", type=non_negative_float, default=5e-4)
    o.add_argument("--label-smoothing", type=non_negative_float, default=0.1)
    o.add_argument("--loss-all-steps", action="store_true",
                   help="average the loss over every timestep the read-out fired in")
    o.add_argument("--random-timesteps", action=argparse.BooleanOptionalAction, default=None,
                   help="train each batch at a T drawn from 2..T (cascade: arrival+1..T); "
                        "evaluate at T (default: the recipe's for T > 2)")
    c = p.add_argument_group("task (gattanet_sim.cued_task)")
    c.add_argument("--task", choices=TASKS, default="classify",
                   help="classify (the paper), or cued-detection: classification batches mixed with "
                        "cued present/absent detection in search arrays")
    c.add_argument("--init", type=Path, default=None, metavar="RUN_DIR",
                   help="start from a trained run's weights (its best.pt): fine-tuning")
    c.add_argument("--cue-validity", type=float, default=0.8,
                   help="cued-detection: P(valid) among cued trials (the rest invalid)")
    c.add_argument("--cue-neutral", type=float, default=0.2,
                   help="cued-detection: P(neutral cue); 1 trains with neutral cues only (a control)")
    c.add_argument("--cue-beta", type=float, default=1.0,
                   help="cued-detection: weight of the cue in the global query, beta cue + (1 - beta) "
                        "bottom-up: 1 replaces the bottom-up query (default), below 1 biases it "
                        "(biased competition); experiments on the run use the same")
    c.add_argument("--detection-fraction", type=float, default=0.5,
                   help="cued-detection: fraction of batches that are detection batches")
    c.add_argument("--grid", type=positive_int, default=2, help="cued-detection: cells per side")
    c.add_argument("--cue-on", choices=cued_task.CUE_ON, default="class",
                   help="cued-detection: what a cue names, the question's class (feature-based "
                        "attention) or a cell of the array (spatial attention; needs --key-position)")
    c.add_argument("--train-only", choices=("all", "control"), default="all",
                   help="control: train only attention's control parameters (alphas, feature alphas, "
                        "cue templates), keeping every other weight and batch-norm statistic fixed: "
                        "top-down signals learned on a fixed visual system")
    r = p.add_argument_group("run")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    r.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="on a GPU: bf16 autocast (auto) or fp32; the CPU always computes in fp32")
    r.add_argument("--compile", action="store_true",
                   help="torch.compile the T-step simulation (fewer, fused kernels; compiling "
                        "takes a minute or more)")
    r.add_argument("--dist-timeout", type=positive_int, default=None, metavar="SECONDS",
                   help="under torchrun: how long the processes wait for one that stopped before "
                        "all fail (default: torch's 30 minutes)")
    r.add_argument("--out-dir", type=Path, default=None)
    r.add_argument("--resume", action="store_true", help="continue the run in --out-dir")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    if len(args.widths) != 3:
        p.error(f"--widths takes 3 values (V1,V2,V4), got {len(args.widths)}")
    if args.model != "toy" and not args.batch_norm:
        p.error("--no-batch-norm applies to the toy model only")
    if args.model == "toy" and (args.stem or args.per_block or args.weights):
        p.error("--stem, --per-block and --weights apply to the ResNets only")
    if args.weights is not None and not args.weights.is_file():
        p.error(f"--weights {args.weights}: no such file")
    if args.label_smoothing >= 1:
        p.error("--label-smoothing must be below 1")
    if args.shared_noise > 1 or (args.shared_noise > 0 and args.noise_std == 0):
        p.error(f"--shared-noise must lie in [0, 1] and needs --noise-std > 0, got {args.shared_noise}")
    for name in ("cue_validity", "cue_neutral"):
        if not 0 <= getattr(args, name) <= 1:
            p.error(f"--{name.replace('_', '-')} must lie in [0, 1], got {getattr(args, name)}")
    if not 0 < args.cue_beta <= 1:  # 0 would be no cue at all: the bottom-up network
        p.error(f"--cue-beta must lie in (0, 1], got {args.cue_beta}")
    if not 0 <= args.detection_fraction < 1:  # some classification batches stay: the paper's task
        p.error(f"--detection-fraction must lie in [0, 1), got {args.detection_fraction}")
    if args.task == "cued-detection" and not args.attention:
        p.error("--task cued-detection needs the attention region (a cue acts only through it)")
    if args.cue_on == "location" and args.task != "cued-detection":
        p.error("--cue-on location applies to --task cued-detection")
    if args.init is not None and not args.init.exists():
        p.error(f"--init {args.init}: no such run or checkpoint")
    keys = ("norm_steps", *ATTENTION_OPTIONS)
    resolved = resolve_options(args.preset, args.attention, args.timesteps,
                               **{k: getattr(args, k, None) for k in keys})
    for key in keys:  # explicit in config.json, whatever the presets become
        setattr(args, key, resolved.get(key))
    if args.cue_on == "location" and args.key_position == "none":
        p.error("--cue-on location needs keys with a position code: --key-position learned or sinusoidal")
    if args.attention and args.feature_pool != "none" and args.gain_map == "position":
        p.error("--feature-pool acts on feature gains: it needs --gain-map feature or both")
    if args.random_timesteps is None:
        args.random_timesteps = args.attention and time_recipe(args.preset, args.timesteps)
    if args.attention and args.timesteps > 2 and args.normalization == "none" and args.gain_form == "linear":
        print("warning: a raw agreement with a linear gain can feed on itself over timesteps "
              "(it diverged at T = 4, see README); --normalization standardize prevents it", file=sys.stderr)
    return args


def model_options(args: argparse.Namespace, num_classes: int, image_size: int) -> dict:
    """The build_model keyword arguments of a run (JSON-safe: saved in every checkpoint)."""
    options = {"num_classes": num_classes, "attention": args.attention, "key_dim": args.key_dim,
               "preset": args.preset, "norm_steps": args.norm_steps,
               "image_size": image_size, "mode": args.mode, "noise_std": args.noise_std}
    if getattr(args, "feedback_delays", None) is not None:  # hypotheses: only when given
        options["feedback_delays"] = args.feedback_delays
    if getattr(args, "shared_noise", 0.0):
        options["shared_noise"] = args.shared_noise
    if args.model == "toy":
        options.update(widths=list(args.widths), hidden=args.hidden, batch_norm=args.batch_norm)
    else:
        options.update(stem=args.stem, per_block=args.per_block,
                       weights=None if args.weights is None else str(args.weights))
    if args.attention and getattr(args, "attention_areas", None):
        options["attention_areas"] = list(args.attention_areas)
    if args.attention:
        options.update(normalization=args.normalization, gain_form=args.gain_form,
                       readout_gain=args.readout_gain, alpha_init=args.alpha_init,
                       keys=args.keys, gain_position=args.gain_position,
                       query_leak=args.query_leak, gain_tau=args.gain_tau,
                       alpha_sign=args.alpha_sign, gain_map=args.gain_map,
                       key_position=args.key_position, cue_classes=args.cue_classes,
                       feature_pool=args.feature_pool)
    return options


def control(name: str) -> bool:
    """Whether a parameter sets how attention acts rather than what the areas compute: the
    alphas (and feature alphas), the learned cue templates and a learned position code of the
    keys (where attention can look: a location cue needs it). They train at `--alpha-lr`,
    without weight decay (which would pull the cues towards the zero query)."""
    return "alpha" in name or name.endswith("attention.cues") or "attention.position." in name


def make_optimizer(model: GAttANet, args: argparse.Namespace) -> torch.optim.Optimizer:
    """Two parameter groups: attention's control parameters, the alphas and cue templates
    (own learning rate, no weight decay; `control`), and the rest. `--train-only control`
    freezes the rest (no gradient, no optimizer state)."""
    alphas = [p for n, p in model.named_parameters() if control(n)]
    others = [p for n, p in model.named_parameters() if not control(n)]
    groups = [{"params": others, "lr": args.lr, "weight_decay": args.weight_decay}]
    if getattr(args, "train_only", "all") == "control":
        if not alphas:
            raise UsageError("--train-only control: this model has no attention control parameters")
        for p in others:
            p.requires_grad_(False)
        groups = []
    if alphas:
        alpha_lr = args.lr if args.alpha_lr is None else args.alpha_lr
        groups.append({"params": alphas, "lr": alpha_lr, "weight_decay": 0.0})
    if args.optimizer == "sgd":
        return torch.optim.SGD(groups, momentum=0.9, nesterov=True)
    return torch.optim.AdamW(groups)


def hold_statistics(model: torch.nn.Module) -> None:
    """Batch-norm layers back in eval mode: with `--train-only control` the areas' running
    statistics must stay the trained run's, or detection arrays would shift them."""
    for m in model.modules():
        if isinstance(m, (torch.nn.modules.batchnorm._BatchNorm, StepBatchNorm)):
            m.eval()


def make_scheduler(optimizer: torch.optim.Optimizer, total_steps: int):
    """One-cycle learning rate, 25% warm-up (at least 2 steps, so a tiny run of 3 to 7 steps has
    a warm-up too); a run of 1 or 2 steps, too short for a cycle, keeps the peak rate."""
    if total_steps < 3:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=total_steps,
        pct_start=max(0.25, 2 / total_steps))


def loss_fn(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
            args: argparse.Namespace, weight: float | None = None,
            timesteps: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy on the last timestep, or averaged over every step the read-out fired.

    `model` may be a DistributedDataParallel wrapper. `weight`: a process's share of the
    global batch's mean, its summed loss times `weight` (world size / global batch); DDP's
    average of the gradients then equals the gradient of the global batch's mean loss.
    `timesteps`: this batch's T (`--random-timesteps`), else `args.timesteps`.
    """
    timesteps = timesteps or args.timesteps
    reduction = "mean" if weight is None else "sum"

    def ce(logits: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(logits, labels, label_smoothing=args.label_smoothing, reduction=reduction)
        return loss if weight is None else loss * weight

    if args.loss_all_steps:
        logits = model(images, timesteps=timesteps, every_step=True)  # (T, B, K)
        logits = logits[getattr(model, "module", model).arrival_steps - 1:]  # (T', B, K): fired
        return torch.stack([ce(step) for step in logits]).mean(), logits[-1]
    logits = model(images, timesteps=timesteps)  # (B, K)
    return ce(logits), logits


def batch_timesteps(args: argparse.Namespace, arrival: int, epoch: int, step: int) -> int:
    """T of one training batch: `args.timesteps`, or with `--random-timesteps` drawn uniformly
    from arrival + 1 .. T (at least one attended step) as a function of (seed, epoch, step)
    alone, so a resumed run and every process of a distributed one draw the same."""
    if not args.random_timesteps or args.timesteps <= arrival + 1:
        return args.timesteps
    g = torch.Generator().manual_seed(args.seed * 1_000_003 + epoch * 100_019 + step)
    return int(torch.randint(arrival + 1, args.timesteps + 1, (1,), generator=g))



class StopFlag:
    """SIGINT/SIGTERM ask the loop to checkpoint and stop at the next step."""

    def __init__(self) -> None:
        self.signal: int | None = None
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame) -> None:
        self.signal = signum


def default_out_dir(args: argparse.Namespace) -> Path:
    kind = "attn" if args.attention else "base"
    return Path("runs") / f"{args.model}-{args.dataset}-{kind}-T{args.timesteps}-s{args.seed}"


def run_config(args: argparse.Namespace) -> dict:
    config = {k: (list(v) if isinstance(v, tuple) else str(v) if isinstance(v, Path) else v)
              for k, v in vars(args).items()}
    return config


def check_resumable(saved: dict, config: dict) -> None:
    changed = [k for k in config if k not in RESUMABLE and saved.get(k, LATER.get(k)) != config[k]]
    if changed:
        raise UsageError("--resume with different arguments: " + ", ".join(
            f"--{k.replace('_', '-')} was {saved.get(k)!r}, now {config[k]!r}" for k in changed))


def write_metrics(history: list[dict], path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(row) + "\n" for row in history))


@main_guard
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    set_threads()
    device = pick_device(args.device)
    context, device = distributed.setup(str(device), args.dist_timeout)
    try:
        return _main(args, context, device)
    except RuntimeError as err:  # torch.distributed.DistError is one
        if not context.distributed or not distributed.lost_peer(err):
            raise
        raise distributed.PeerLost(f"rank {context.rank}: another process of this torchrun job stopped or cannot "
                                   f"be reached ({distributed.first_line(err)}); {args.out_dir}/last.pt holds the "
                                   "last checkpoint: start again with --resume") from None
    finally:
        distributed.teardown(context)


def _main(args: argparse.Namespace, context: distributed.Context, device: torch.device) -> int:
    if args.out_dir and (args.out_dir / "last.pt").exists() and not args.resume:
        raise UsageError(f"{args.out_dir} already holds a run: pass --resume to continue it, "
                         "or another --out-dir")
    fallback = args.dataset is None
    dataset = args.dataset or "cifar10"
    val_size = 5000 if args.val_size is None else args.val_size
    train_set, dataset = load_data(dataset, "train", args.data_root, val_size, args.image_size, fallback)
    val_set, _ = load_data(dataset, "val", args.data_root, val_size, args.image_size, False)
    args.dataset, args.val_size = dataset, val_size
    out = args.out_dir or default_out_dir(args)
    if (out / "last.pt").exists() and not args.resume:
        raise UsageError(f"{out} already holds a run: pass --resume to continue it, or another --out-dir")
    if args.train_limit:
        train_set = train_set.subset(balanced_subset(train_set.labels, args.train_limit, args.seed))
    if args.task == "cued-detection":
        if context.distributed:
            raise UsageError("--task cued-detection runs in one process (the cues are not yet "
                             "shared across processes)")
        if not isinstance(train_set, ImageSet):
            raise UsageError("--task cued-detection needs an in-memory image set (not a streamed one)")
        args.cue_classes = args.grid ** 2 if args.cue_on == "location" else len(train_set.classes)
    config = run_config(args)
    saved = safe_load(out / "last.pt") if args.resume and (out / "last.pt").exists() else None
    if saved is not None:
        check_resumable(saved["config"], config)
    fresh = not out.exists()
    try:
        summary = train(args, config, train_set, val_set, device, out, saved, context)
    except BaseException:  # an unreadable image, a diverged loss, an interrupt: before any
        if fresh and out.is_dir() and {p.name for p in out.iterdir()} <= {"config.json"}:  # checkpoint,
            shutil.rmtree(out, ignore_errors=True)  # no directory that looks like a run is left
        raise
    if isinstance(summary, int):  # stopped by a signal: the shell's convention, 128 + signal
        return 128 + summary
    if context.main:
        accs = " ".join(f"t{t}={a:.4f}" for t, a in enumerate(summary["val_accuracy"]))
        print(f"best val accuracy (epoch {summary['best_epoch']}): {accs}  -> {out}")
    return 0


def device_policy(model: GAttANet, device: torch.device, precision: str = "auto", change: bool = True):
    """How a model runs on `device`: (model, autocast context, memory format of its inputs).

    On a GPU: bf16 autocast (unless `precision` is fp32) and channels-last, the layout its
    convolution kernels prefer; on the CPU: fp32, contiguous, as always (so CPU runs stay
    bit-identical to those before). `change` False leaves the model's layout as it is.
    """
    if device.type != "cuda":
        return model, contextlib.nullcontext(), torch.contiguous_format
    if change:
        model = model.to(memory_format=torch.channels_last)
    autocast = torch.autocast("cuda", torch.bfloat16, enabled=precision != "fp32")
    return model, autocast, torch.channels_last


def resident(data, device: torch.device, budget: float = 4e9):
    """An in-memory image set moved onto a GPU when it fits (`budget` bytes), so batches and
    augmentation never wait for the host; on the CPU, or too large, as it is."""
    if device.type != "cuda" or not isinstance(data, ImageSet) or data.images.numel() > budget:
        return data
    return ImageSet(data.images.to(device), data.labels.to(device), data.classes, data.name)


@dataclass
class Progress:
    """Where a run stands: what `last.pt` keeps and `--resume` restores."""

    epoch: int = 0
    step: int = 0  # batches done in this epoch
    history: list[dict] = field(default_factory=list)  # one row per finished epoch
    best: float = -1.0  # the best validation accuracy at the last step so far
    totals: list = field(default_factory=lambda: [0.0, 0, 0])  # this epoch's loss sum, correct, images
    detected: list = field(default_factory=lambda: [0, 0])  # this epoch's cued-task right answers, arrays
    augment_rng: torch.Generator | None = None  # this epoch's augmentation draws

    @classmethod
    def restore(cls, saved: dict, model: GAttANet, optimizer, scheduler) -> Progress:
        """The state of a `last.pt`, loaded into the model, optimizer, scheduler and RNG."""
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["rng"])
        rng = saved.get("augment_rng")
        return cls(saved["epoch"], saved["step"], saved["history"], saved["best"], saved["totals"],
                   saved.get("detected", [0, 0]), None if rng is None else torch.Generator().set_state(rng))


def train(args, config, train_set, val_set, device, out: Path, saved: dict | None,
          context: distributed.Context | None = None) -> dict | int:
    """The training loop; returns the summary, or the signal number that stopped it.

    On a GPU the step never waits for the host: metrics add up on the device and the loss's
    finiteness is checked every `SYNC_EVERY` steps and before any checkpoint, so a diverged
    run never overwrites the last good one; on the CPU, where waiting costs nothing, every step.
    """
    context = context or distributed.Context()
    torch.manual_seed(args.seed)
    model, autocast, layout = build(args, train_set, device, context, fine_tune=saved is None)
    optimizer = make_optimizer(model, args)
    steps_per_epoch = math.ceil(len(train_set) / args.batch_size)
    scheduler = make_scheduler(optimizer, args.epochs * steps_per_epoch)
    at = Progress() if saved is None else Progress.restore(saved, model, optimizer, scheduler)
    if saved is not None and context.main:
        print(f"resuming {out} at epoch {at.epoch} step {at.step}", file=sys.stderr)
    if context.main:
        out.mkdir(parents=True, exist_ok=True)
        write_json(config, out / "config.json")
    stop = StopFlag()
    net = for_training(model, args, context, device)
    train_data = resident(train_set, device)
    cued = args.task == "cued-detection"
    probe = detection_probe(val_set, len(train_set.classes), args.grid, args.cue_on) if cued else None
    every = SYNC_EVERY if device.type == "cuda" else CPU_SYNC_EVERY  # steps between waits for the device
    versions = package_versions()

    def checkpoint(path: Path, **extra) -> None:
        if context.main:
            atomic_save({"model": model.state_dict(), "model_config": model.config, "config": config,
                         "versions": versions, **extra}, path)

    def save_last(running: torch.Tensor, detected: torch.Tensor) -> None:
        rng = at.augment_rng
        checkpoint(out / "last.pt", optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                   epoch=at.epoch, step=at.step, history=at.history, best=at.best,
                   totals=distributed.reduce_sum(running, context).tolist(), detected=detected.tolist(),
                   rng=torch.get_rng_state(), augment_rng=None if rng is None else rng.get_state())

    while at.epoch < args.epochs:
        model.train()
        if args.train_only == "control":
            hold_statistics(model)
        if at.augment_rng is None:
            at.augment_rng = torch.Generator().manual_seed(args.seed * 1_000_003 + at.epoch)
        started = time.perf_counter()
        order = epoch_order(len(train_set), args.seed, at.epoch)
        stream = batches(train_data, args.batch_size, device, order,
                         at.augment_rng if args.augment else None, start=at.step,
                         shard=(context.rank, context.world))
        bar = tqdm(stream, total=steps_per_epoch, initial=at.step,  # None: a bar only on a terminal
                   disable=args.quiet or not context.main or None,
                   desc=f"epoch {at.epoch + 1}/{args.epochs}", unit="batch", leave=False)
        # loss sum, correct, images (of the whole epoch so far on rank 0: the ranks' sums add up)
        running = torch.tensor(at.totals if context.main else [0.0, 0, 0], dtype=torch.float64, device=device)
        detected = torch.tensor(at.detected, dtype=torch.long, device=device)  # right answers, arrays
        first_bad = (torch.full((), -1, dtype=torch.long, device=device),  # step, loss of the first
                     torch.zeros((), device=device))  # non-finite loss since the last check
        for images, labels in bar:
            weight = None
            if context.distributed:  # this process's part of a global batch of `whole` images
                weight = context.world / min(args.batch_size, len(train_set) - at.step * args.batch_size)
            timesteps = batch_timesteps(args, model.arrival_steps, at.epoch, at.step)
            task = detection_draws(args, at.epoch, at.step) if cued else None
            images = images.contiguous(memory_format=layout)
            if task is not None:
                loss, right = detection_step(net, model, images, labels, train_data, task, args, autocast,
                                             layout, timesteps)
                detected[0] += right.sum()
                detected[1] += len(right)
            else:
                with autocast:
                    loss, logits = loss_fn(net, images, labels, args, weight, timesteps)
            loss_sum = loss.detach() * len(labels) if weight is None else loss.detach() / weight
            new = ~torch.isfinite(loss.detach()) & (first_bad[0] < 0)
            first_bad = (torch.where(new, at.step, first_bad[0]),
                         torch.where(new, loss.detach().float(), first_bad[1]))
            if at.step % every == every - 1:
                check_finite(first_bad, at.epoch, out)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            at.step += 1
            if task is None:
                running[0] += loss_sum.double()  # in place on the device: no copy, no wait
                running[1] += (logits.argmax(1) == labels).sum()
                running[2] += len(labels)
            if at.step % every == 0 and not args.quiet and context.main:
                shown = running.tolist()
                bar.set_postfix(loss=f"{shown[0] / shown[2]:.3f}", acc=f"{shown[1] / shown[2]:.3f}")
            if at.step % every == 0 and distributed.any_process(stop.signal is not None, context, device):
                check_finite(first_bad, at.epoch, out)
                save_last(running, detected)
                print(f"stopped by signal {stop.signal}: {out / 'last.pt'} saved at epoch {at.epoch} "
                      f"step {at.step}; continue with the same arguments plus --resume", file=sys.stderr)
                return stop.signal
        bar.close()
        check_finite(first_bad, at.epoch, out)
        row = epoch_row(model, val_set, probe, args, context, device, running, detected,
                        time.perf_counter() - started, at.epoch, scheduler.get_last_lr()[0])
        at.history.append(row)
        improved = row["val_accuracy"][-1] > at.best
        at = Progress(at.epoch + 1, 0, at.history, max(at.best, row["val_accuracy"][-1]))  # the next epoch
        if improved:
            checkpoint(out / "best.pt", epoch=at.epoch, val_accuracy=row["val_accuracy"])
        save_last(torch.zeros(3, dtype=torch.float64, device=device), torch.zeros(2, dtype=torch.long, device=device))
        if context.main:
            write_metrics(at.history, out / "metrics.jsonl")

    counts = {"backbone": sum(p.numel() for p in model.backbone.parameters()),
              "attention": sum(p.numel() for p in model.attention.parameters()) if model.attention else 0}
    summary = run_summary(at.history, args, config, len(train_set), len(val_set), counts, device, context.world,
                          versions)
    if context.main:
        write_json(summary, out / "summary.json")
    return summary


def build(args: argparse.Namespace, train_set, device: torch.device, context: distributed.Context,
          fine_tune: bool = True):
    """The model a run trains, on its device: (model, autocast context, input layout). A
    fine-tuning run (`--init`) starts from the trained run's weights (unless `fine_tune` is
    False: a resumed run loads its own)."""
    options = model_options(args, len(train_set.classes), train_set.image_size)
    try:
        model = build_model(args.model, **options).to(device)
    except ValueError as err:
        raise UsageError(str(err)) from None
    if model.arrival_steps > args.timesteps:
        raise UsageError(f"{args.mode} mode needs --timesteps >= {model.arrival_steps} "
                         "for the input to reach the read-out")
    if fine_tune and args.init is not None:
        start_from(model, args, train_set, device)
    model, autocast, layout = device_policy(model, device, args.precision)
    if context.distributed:
        distributed.synchronise_batch_norm(model)
    return model, autocast, layout


def for_training(model: GAttANet, args: argparse.Namespace, context: distributed.Context,
                 device: torch.device) -> torch.nn.Module:
    """The module the loop calls: the model, wrapped for several processes and/or compiled."""
    net = model
    if context.distributed:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=model.attention is not None and (args.mode == "cascade" or args.timesteps < 2
                                                                  or any(model.feedback_delays.values())))
    return torch.compile(net) if args.compile else net


def epoch_row(model: GAttANet, val_set, probe: dict | None, args: argparse.Namespace,
              context: distributed.Context, device: torch.device, running: torch.Tensor, detected: torch.Tensor,
              seconds: float, epoch: int, lr: float) -> dict:
    """A finished epoch's line of metrics.jsonl: training loss and accuracy, validation per
    timestep, the alphas and (cued task) detection; printed on the main process."""
    val = validate(model, val_set, args.timesteps, device, context)
    totals = distributed.reduce_sum(running, context).tolist()
    seen = totals[2] or math.nan  # images of classification batches (all but the cued task's)
    row = {"epoch": epoch + 1, "train_loss": totals[0] / seen, "train_accuracy": totals[1] / seen,
           "val_accuracy": val["accuracy"], "val_loss": val["loss"], "lr": lr, "seconds": seconds}
    if model.attention is not None:
        row["alpha"] = {n: round(a, 5) for n, a in model.attention.alpha_values().items()}
    if probe is not None:
        done = detected.tolist()
        row["train_detection_accuracy"] = done[0] / done[1] if done[1] else math.nan
        row["val_detection"] = validate_detection(model, probe, args.timesteps, args.cue_beta)
    if context.main:
        print(f"epoch {epoch + 1}: loss {row['train_loss']:.3f} train {row['train_accuracy']:.4f} "
              f"val {' '.join(f'{a:.4f}' for a in val['accuracy'])} ({seconds:.0f} s)", file=sys.stderr)
    return row


def run_summary(history: list[dict], args: argparse.Namespace, config: dict, train_images: int,
                val_images: int, counts: dict, device: torch.device, processes: int, versions: dict) -> dict:
    """A finished run's summary.json: its best epoch's validation accuracy, what it ran on."""
    best_row = max(history, key=lambda r: r["val_accuracy"][-1])
    return {
        "val_accuracy": best_row["val_accuracy"], "best_epoch": best_row["epoch"],
        "final_val_accuracy": history[-1]["val_accuracy"], "val_images": val_images,
        "train_images": train_images, "parameters": counts,
        "seconds_per_epoch": sum(r["seconds"] for r in history) / len(history),
        "epochs": args.epochs, "device": str(device), "seed": args.seed, "config": config,
        # float sums split over threads round differently: bit-identical runs need the same count
        "threads": torch.get_num_threads(), "processes": processes,
        "versions": versions, "git_commit": git_commit(),
    }


def detection_step(net: torch.nn.Module, model: GAttANet, images: torch.Tensor, labels: torch.Tensor,
                   train_data: ImageSet, task: torch.Generator, args: argparse.Namespace, autocast,
                   layout: torch.memory_format, timesteps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch of the cued task: arrays around `images`, each cue's query, the detection loss;
    returns the loss and, per array, whether the question's read-out answered right."""
    trial = cued_task.detection_batch(images, labels, train_data.images, train_data.labels,
                                      model.attention.cues, task, args.cue_validity, args.cue_neutral, args.grid,
                                      args.cue_beta, args.cue_on, len(train_data.classes))
    with autocast:
        logits = net(trial["images"].contiguous(memory_format=layout), timesteps=timesteps,
                     query=trial["query"])  # (B, K)
        loss = cued_task.detection_loss(logits, trial["question"], trial["present"])
    answer = logits.detach().gather(1, trial["question"][:, None]).squeeze(1) > 0  # (B,)
    return loss, answer == trial["present"]


def detection_draws(args: argparse.Namespace, epoch: int, step: int) -> torch.Generator | None:
    """Whether a batch of the cued task is a detection batch, and then the generator of its
    arrays and cues: a function of (seed, epoch, step) alone, so that a resumed run draws the same."""
    g = torch.Generator().manual_seed(args.seed * 1_000_033 + epoch * 100_043 + step + 7)
    return g if float(torch.rand((), generator=g)) < args.detection_fraction else None


def detection_probe(val_set, num_classes: int, grid: int, cue_on: str = "class") -> dict:
    """The fixed validation arrays of the cued task: up to `DETECTION_VAL` arrays built around
    validation images (seeded, the same every epoch and every run); with location cues, the
    item's cell, which a valid cue names."""
    g = torch.Generator().manual_seed(12_345)
    n = min(DETECTION_VAL, len(val_set))
    index = torch.randperm(len(val_set), generator=g)[:n]
    arrays, question, present, cell = detection_arrays(val_set.images[index], val_set.labels[index],
                                                       val_set.images, val_set.labels, num_classes, g, grid)
    return {"arrays": arrays, "question": question, "present": present,
            "cell": cell if cue_on == "location" else None}


def validate_detection(model: GAttANet, probe: dict, timesteps: int, beta: float = 1.0) -> dict:
    """Hit and false-alarm rates, d' and c (log-linear corrected) of the validation arrays at
    the last step, per cue type (valid, neutral, invalid)."""
    counts = cued_task.detection_counts(model, probe["arrays"], probe["question"], probe["present"],
                                        timesteps, beta=beta, cell=probe.get("cell"))
    rows = {}
    for kind, (hits, n_present, fas, n_absent) in counts.items():
        d, c = sdt(hits, n_present, fas, n_absent)
        rows[kind] = {"hit_rate": hits / n_present, "fa_rate": fas / n_absent,
                      "d_prime": round(float(d), 4), "criterion": round(float(c), 4)}
    return rows


def start_from(model: GAttANet, args: argparse.Namespace, train_set, device: torch.device) -> None:
    """Fine-tuning: load a trained run's weights (`--init`). Parameters the run has not got
    start where they are neutral (a feature gain's alpha at 0, a learned position code at 0);
    a cue-trained model's cue templates start as the run's class templates (the mean query of 100 training
    images per class, pooled with attention off)."""
    try:
        trained, _, path = load_checkpoint(args.init, device)
    except (FileNotFoundError, ValueError) as err:
        raise UsageError(f"--init: {err}") from None
    try:
        missing, unexpected = model.load_state_dict(trained.state_dict(), strict=False)
    except RuntimeError as err:
        raise UsageError(f"--init {path} does not fit this model: {str(err).splitlines()[1].strip()}") from None
    new = ("attention.cues", "attention.feature_alpha.", "attention.position.")  # options' own,
    if unexpected or [k for k in missing if not k.startswith(new)]:  # each starting neutral
        raise UsageError(f"--init {path} does not fit this model: missing "
                         f"{', '.join(missing) or 'nothing'}, unexpected {', '.join(unexpected) or 'nothing'}")
    if model.attention is not None and model.attention.cues is not None and "attention.cues" in missing:
        keep = torch.cat([torch.nonzero(train_set.labels == c).flatten()[:100]
                          for c in range(len(train_set.classes))])
        images = train_set.images[keep].float() / 255
        made = from_model(model, images, train_set.labels[keep].tolist())
        classes = torch.stack([made[str(c)] for c in range(len(train_set.classes))])  # (K, d)
        with torch.no_grad():
            if args.cue_on == "location":
                model.attention.cues.copy_(location_cues(classes, len(model.attention.cues), args.seed))
            else:
                model.attention.cues.copy_(classes)


def location_cues(class_templates: torch.Tensor, cells: int, seed: int) -> torch.Tensor:
    """Starting cell templates of a location cue: the mean class template (where a class cue's
    neutral query starts) plus seeded noise of a tenth of its norm, (K, d) -> (cells, d). The
    start's keys carry no position yet (the code starts at 0), so no template can be made from a
    location; the noise only breaks the symmetry between cells, and training makes them."""
    mean = class_templates.mean(0)  # (d,)
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(cells, len(mean), generator=g).to(mean)  # (cells, d)
    return mean + 0.1 * mean.norm() * noise / math.sqrt(len(mean))


def check_finite(first_bad: tuple[torch.Tensor, torch.Tensor], epoch: int, out: Path) -> None:
    """Raise `TrainingDiverged` if a loss since the last check was NaN or infinite, naming the
    first (one wait for the device)."""
    step, loss = first_bad
    if step.item() >= 0:
        raise TrainingDiverged(f"loss became {loss.item()} at epoch {epoch + 1} step {step.item() + 1}; "
                               f"{out / 'last.pt'} keeps the last good state")


def validate(model: GAttANet, val_set, timesteps: int, device: torch.device,
             context: distributed.Context) -> dict:
    """Validation accuracy and loss per timestep; with several processes each takes every
    world-th image and the sums are reduced."""
    if not context.distributed:
        return accuracy_per_timestep(model, val_set, timesteps, device=device)
    part = val_set.subset(torch.arange(context.rank, len(val_set), context.world))
    val = accuracy_per_timestep(model, part, timesteps, device=device)
    sums = torch.tensor([val["correct"] + val["loss_sum"] + [val["images"]]], dtype=torch.float64,
                        device=device)
    sums = distributed.reduce_sum(sums, context).flatten().tolist()
    n = sums[-1]
    return {"accuracy": [c / n for c in sums[:timesteps]],
            "loss": [v / n for v in sums[timesteps:2 * timesteps]], "images": int(n)}


def ensure_run(path: Path | str, fallback_dir: Path | str, small: bool = False, mode: str = "sweep",
               timesteps: int | None = None) -> Path:
    """The trained run `path` if it exists, else a small run in `fallback_dir` (trained if needed).

    For notebooks and walkthroughs that must work without a trained run (CI, a fresh checkout):
    the fallback is the recipe trained on the embedded `stimuli` set (no download), in `mode`
    with `timesteps` (default 2, or 6 in cascade mode: one per area plus one), seed 0. With
    `small` it is tiny (widths 16/16/16, enough for a probe of channels 0-9; 32 IT units; one
    epoch on 400 images, batch 32: seconds, near chance accuracy), else widths 32/64/128 for 4
    epochs on the 2,000 training images.
    A finished fallback trained with the same arguments is reused, a killed one resumed, one
    trained with other arguments refused. Raises RuntimeError when training fails.
    """
    path, out = Path(path), Path(fallback_dir)
    if path.exists():
        if path.is_file():
            safe_load(path)  # a checkpoint, or one line saying what the file is instead
            return path
        if (path / "best.pt").exists() or (path / "last.pt").exists():
            return path
        raise RuntimeError(f"{path} holds no checkpoint (best.pt or last.pt): not a trained run")
    size = ({"widths": "16,16,16", "hidden": "32", "epochs": "1", "train-limit": "400",
             "batch-size": "32"} if small
            else {"widths": "32,64,128", "epochs": "4"})
    options = {**size, "mode": mode, "timesteps": str(timesteps or (2 if mode == "sweep" else 6))}
    argv = ["--dataset", "stimuli", "--seed", "0", "--quiet", "--out-dir", str(out)]
    argv += [item for key, value in options.items() for item in (f"--{key}", value)]
    if (out / "summary.json").exists() and (out / "best.pt").exists():
        saved = json.loads((out / "summary.json").read_text())["config"]
        asked = run_config(parse_args(argv))
        if all(saved.get(key) == asked[key] for key in (k.replace("-", "_") for k in options)):
            return out
        raise RuntimeError(f"{out} holds a run trained with other arguments; delete it or pass "
                           "another fallback_dir")
    code = main(argv + (["--resume"] if (out / "last.pt").exists() else []))
    if code != 0:
        raise RuntimeError(f"training the fallback run into {out} failed (exit status {code})")
    return out


if __name__ == "__main__":
    sys.exit(main())

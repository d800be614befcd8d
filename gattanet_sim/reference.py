"""The reference: attention built in, not learned. A gain set from each unit's tuning.

    python -m gattanet_sim.reference runs/toy_cifar10/positive-gain-s0 --beta 0.25 \\
        --out runs/toy_cifar10/reference-s0

A scorecard must be able to say "agrees". This model is the positive control: the recipe's
trained backbone with its learned attention region replaced by the feature-similarity gain of
Lindsay & Miller 2018 (eLife 7:e38105): when a class (or an orientation) k is attended, every
channel c of every conv area is scaled by

    g_c = max(0, 1 + beta * f_c(k)),     f_c(k) = (rbar_c(k) - mean_j rbar_c(j)) / std_j rbar_c(j)

where rbar_c(j) is the channel's spatially averaged response to the images of group j: its
tuning, z-scored over the attended groups (`TunedGain.calibrate`). One gain per channel, the
same at every position (global feature-based attention, Treue & Martinez-Trujillo 1999). The
attended groups are the experiment's templates: a template here is the mean of the query,
which for this region is the vector of every channel's spatial mean response (so the mean query
of group k is rbar(k)), and `experiment` calibrates the region with the templates it made. The
neutral cue, the mean template, gives f = 0 and g = 1 exactly: the unattended network. Under
bottom-up the current image's own channel means set f (the features present are amplified).

beta = 0.25 was fixed before any scorecard was computed: a channel whose response to the
attended feature lies one standard deviation above its mean is scaled by 1.25, the size of
V4's median attentional enhancement (+26%, McAdams & Maunsell 1999). Lindsay & Miller applied
such gains at every conv layer; so does this reference (V1, V2, V4; not the dense IT or the
read-out, which would act as a prior on the answer). Every step uses the batch-norm statistics
of the backbone's first, unattended sweep (`build_reference` copies them to every step), so
that a gain of 1 is exactly the plain network and `off` equals `neutral`.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch
from torch import nn

from gattanet_sim.attention import AttentionState, QuerySource
from gattanet_sim.cli import Parser, UsageError, main_guard
from gattanet_sim.io import atomic_save, safe_load, sha256, write_json

BETA = 0.25  # fixed a priori: see the module docstring


class TunedGain(nn.Module):
    """An attention region without learned parameters: a gain per channel from its tuning.

    It speaks the simulator's interface of `gattanet_sim.attention.AttentionRegion` (observe,
    agreement_map, feature_gain; gain_map "feature"), so every experiment and recording runs
    on it unchanged. The query is d = sum of the channels of the conv areas: the concatenated
    spatial mean response of every channel.

    Args:
        areas: area name -> (kind, units); only the conv areas are read and gained.
        beta: the strength of the gain (g = 1 + beta f).
    """

    gain_map = "feature"
    gain_form = "positive"
    gain_position = "post"
    gain_tau = 1.0
    keys = "previous"
    normalization = "none"
    alpha_sign = "free"
    key_position = "none"
    feature_pool = "none"
    cues = None

    def __init__(self, areas: dict[str, tuple[str, int]], beta: float = BETA) -> None:
        super().__init__()
        if not beta >= 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        conv = {name: units for name, (kind, units) in areas.items() if kind == "conv"}
        if not conv:
            raise ValueError("a tuned gain needs at least one conv area")
        self.beta = float(beta)
        self.kinds = {name: "conv" for name in conv}
        self.gained = list(conv)
        self.query = self.key = dict.fromkeys(conv)  # what dynamics asks: which areas it reads / gains
        bounds, start = {}, 0
        for name, units in conv.items():
            bounds[name] = (start, start + units)
            start += units
        self.slices = bounds
        self.key_dim = start
        # Tuning statistics over the attended groups; scale inf (f = 0, g = 1) until calibrated.
        self.register_buffer("centre", torch.zeros(start))
        self.register_buffer("scale", torch.full((start,), float("inf")))

    def alpha_values(self) -> dict[str, float]:
        return {"beta": self.beta}

    def calibrate(self, templates: torch.Tensor) -> None:
        """Set the tuning statistics from the templates (K, d), one per attended group: the
        mean and standard deviation over groups of each channel's response (Lindsay & Miller's
        z-score over categories). A channel that does not vary over groups gets f = 0."""
        if templates.dim() != 2 or templates.shape[1] != self.key_dim or len(templates) < 2:
            raise ValueError(f"calibration needs >= 2 templates of {self.key_dim} dimensions; "
                             f"got shape {tuple(templates.shape)}")
        t = templates.to(self.centre)  # (K, d)
        sd = t.std(dim=0, unbiased=False)  # (d,)
        self.centre.copy_(t.mean(dim=0))
        self.scale.copy_(torch.where(sd > 1e-8 * sd.max().clamp_min(1e-30), sd, torch.full_like(sd, float("inf"))))

    def tuning(self, name: str, query: torch.Tensor) -> torch.Tensor:
        """f of every channel of an area for the query (B, d): its z-score, (B, C)."""
        lo, hi = self.slices[name]
        return (query[:, lo:hi] - self.centre[lo:hi]) / self.scale[lo:hi]  # (B, C)

    def observe(self, rates: dict[str, torch.Tensor | None], source: QuerySource | None = None,
                previous: AttentionState | None = None) -> AttentionState | None:
        """The query: every conv area's channel means, concatenated; a template replaces it."""
        read = {n: r for n, r in rates.items() if r is not None and n in self.slices}
        if not read:
            return previous
        area_queries = {}
        for name, rate in read.items():
            q = rate.new_zeros(rate.shape[0], self.key_dim)  # (B, d)
            lo, hi = self.slices[name]
            q[:, lo:hi] = rate.mean(dim=(2, 3))  # (B, C, H, W) -> (B, C)
            area_queries[name] = q
        pooled = torch.stack(list(area_queries.values())).sum(dim=0)  # (B, d): slices are disjoint
        query = pooled if source is None else source.query(pooled)  # (B, d)
        return AttentionState(query, area_queries, read, pooled)

    def agreement_map(self, name: str, rate: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """How much each position carries the attended features: r(x) . f / C, (B, HW)."""
        f = self.tuning(name, query)  # (B, C)
        return (f.unsqueeze(1) @ rate.flatten(2)).squeeze(1) / f.shape[1]  # (B, 1, C) @ (B, C, HW)

    def feature_gain(self, name: str, query: torch.Tensor, rate: torch.Tensor | None = None) -> torch.Tensor:
        """g_c = max(0, 1 + beta f_c): (B, d) -> (B, C)."""
        return (1 + self.beta * self.tuning(name, query)).clamp_min(0)


def first_sweep_statistics(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict whose per-step batch-norm statistics all equal those of step 0."""
    out = {}
    for key, value in state.items():
        if key.endswith(("running_mean", "running_var")) and value.dim() == 2:
            value = value[:1].expand_as(value).clone()  # (steps, C): every row = row 0
        out[key] = value
    return out


def build_reference(run: Path, beta: float = BETA):
    """The reference model on the trained backbone of `run` and its checkpoint dict."""
    from gattanet_sim.evaluate import load_checkpoint  # the CLI layer, above this module
    from gattanet_sim.models import from_config

    model, config, path = load_checkpoint(run, torch.device("cpu"))
    model_config = {**model.config, "attention": True, "attention_kind": "tuned", "tuned_beta": beta}
    reference = from_config(copy.deepcopy(model_config))
    backbone = {k: v for k, v in model.state_dict().items() if k.startswith("backbone.")}
    missing = reference.load_state_dict(first_sweep_statistics(backbone), strict=False)
    if missing.unexpected_keys or [k for k in missing.missing_keys if k.startswith("backbone.")]:
        raise ValueError(f"{path}: its backbone does not fit the reference model")
    reference.attention.centre.zero_()
    config = {**config, "reference": {"from": str(path), "from_sha256": sha256(path), "beta": beta}}
    return reference, {"model": reference.state_dict(), "model_config": reference.config, "config": config}


def _check_replaceable(path: Path) -> None:
    """Only an earlier reference checkpoint may be replaced, never a trained run's."""
    if not path.exists():
        return
    try:
        old = safe_load(path)
    except Exception:  # unreadable: certainly not a reference we wrote
        old = None
    if not (isinstance(old, dict) and isinstance(old.get("config"), dict) and "reference" in old["config"]):
        raise UsageError(f"refusing to replace {path}: it is not a reference checkpoint")


@main_guard
def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="python -m gattanet_sim.reference", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="a trained run directory (its backbone is used)")
    p.add_argument("--beta", type=float, default=BETA, help=f"gain strength (default {BETA})")
    p.add_argument("--out", type=Path, required=True, help="run directory to write (best.pt, config.json)")
    args = p.parse_args(argv)
    if not args.beta >= 0:
        raise UsageError(f"--beta must be >= 0, got {args.beta}")
    if args.out.resolve() == args.run.resolve():
        raise UsageError("--out must differ from the trained run")
    _check_replaceable(args.out / "best.pt")
    _, checkpoint = build_reference(args.run, args.beta)
    atomic_save(checkpoint, args.out / "best.pt")
    write_json({**checkpoint["config"], "model_config": checkpoint["model_config"]}, args.out / "config.json")
    print(f"reference (beta {args.beta:g}) on the backbone of {checkpoint['config']['reference']['from']} "
          f"-> {args.out / 'best.pt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

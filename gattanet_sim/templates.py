"""Top-down templates: d-vectors that replace the global query, as a cue from a higher region.

A template is the mean global query over a group of images: the images of a class, a
stimulus shown alone at one location, the gratings of one orientation. Set as the query
(`QuerySource("template", ...)`), it makes every area amplify what agrees with that group's
features. By default the query of time bin 0 is averaged: the one pooled from the first,
unattended sweep, which depends on the stimulus alone (later queries already carry the
network's own attention).

Templates come from a recording (`from_recording`, any assembly with a `global_query`) or
from a model on the fly (`from_model`), and are saved as small JSON files.

Raw templates are nearly one vector: queries project spatially averaged ReLU rates, so a
component common to every group dominates (class templates of a trained toy model have cosines
0.93-0.999). `Templates.centred(lam)` keeps their mean q_bar and scales what sets each apart,
q_bar + lam (q_c - q_bar); `cosines` measures how alike they are.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from gattanet_sim.dynamics import GAttANet
from gattanet_sim.io import atomic_path, check_replaceable


class TemplateError(ValueError):
    """A template file or request that cannot be used."""


@dataclass
class Templates:
    """Named templates, each a (d,) vector, with how they were made (JSON-safe `source`)."""

    vectors: dict[str, torch.Tensor]
    source: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.vectors:
            raise TemplateError("no templates: every group was empty")
        dims = {v.shape for v in self.vectors.values()}
        if len(dims) != 1 or len(next(iter(dims))) != 1:
            raise TemplateError(f"templates must all be (d,) vectors of one size, got {sorted(dims)}")
        bad = [name for name, v in self.vectors.items() if not torch.isfinite(v).all()]
        if bad:
            raise TemplateError(f"template {bad[0]!r} holds NaN or infinite values"
                                + (f" ({len(bad)} templates do)" if len(bad) > 1 else ""))

    @property
    def names(self) -> list[str]:
        return list(self.vectors)

    @property
    def key_dim(self) -> int:
        return next(iter(self.vectors.values())).shape[0]

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self.vectors:
            raise TemplateError(f"no template {name!r}; there are {', '.join(self.names)}")
        return self.vectors[name]

    def mean(self) -> torch.Tensor:
        """The mean of all templates, (d,): a neutral cue that favours no group."""
        return torch.stack(list(self.vectors.values())).mean(0)

    def centred(self, lam: float = 1.0) -> Templates:
        """q_bar + lam (q_c - q_bar): the mean template plus `lam` times each one's own part
        (lam 1: the raw templates; 0: every one the neutral mean; > 1: their differences
        amplified). The neutral cue, their mean, stays q_bar."""
        if not math.isfinite(lam):
            raise TemplateError(f"the centring lambda must be a finite number, got {lam}")
        mean = self.mean()  # (d,)
        vectors = {k: mean + lam * (v - mean) for k, v in self.vectors.items()}
        return Templates(vectors, {**self.source, "centring": lam})

    def cosines(self) -> dict:
        """Cosine similarity between templates: the matrix (names in order) and the mean over
        distinct pairs (nan for a single template)."""
        stacked = torch.stack(list(self.vectors.values())).double()  # (K, d)
        unit = stacked / stacked.norm(dim=1, keepdim=True).clamp_min(1e-12)
        matrix = unit @ unit.T  # (K, K)
        k = len(stacked)
        off = matrix[~torch.eye(k, dtype=torch.bool)]
        return {"names": self.names, "matrix": matrix.tolist(),
                "mean": off.mean().item() if k > 1 else float("nan")}

    def to_json(self) -> str:
        return json.dumps({"key_dim": self.key_dim, "source": self.source,
                           "templates": {k: v.tolist() for k, v in self.vectors.items()}})

    def save(self, path: Path | str, force: bool = False) -> Path:
        """Write the templates as JSON; an existing file is replaced only if it holds templates
        (or with `force`)."""
        check_replaceable(path, "templates", force)
        with atomic_path(path) as tmp:
            tmp.write_text(self.to_json() + "\n")
        return Path(path)

    @classmethod
    def from_json(cls, text: str, where: str = "templates") -> Templates:
        try:
            raw = json.loads(text)
            vectors = {str(k): torch.tensor(v, dtype=torch.float32) for k, v in raw["templates"].items()}
            source = dict(raw.get("source", {}))
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise TemplateError(f"{where} is not a templates file ({type(err).__name__}: {err})") from None
        try:
            return cls(vectors, source)
        except TemplateError as err:  # NaN, inf or mismatched sizes: say which file
            raise TemplateError(f"{where}: {err}") from None

    @classmethod
    def load(cls, path: Path | str) -> Templates:
        path = Path(path)
        if not path.is_file():
            raise TemplateError(f"no such templates file: {path}")
        return cls.from_json(path.read_text(), str(path))


def from_queries(queries: torch.Tensor, groups: Sequence, source: dict | None = None) -> Templates:
    """Mean query per group: queries (N, d), groups N labels (named by their str)."""
    groups = [str(g) for g in groups]
    if len(groups) != len(queries):
        raise TemplateError(f"{len(queries)} queries but {len(groups)} group labels")
    vectors = {}
    for name in dict.fromkeys(groups):  # first-seen order
        members = torch.tensor([g == name for g in groups])
        vectors[name] = queries[members].mean(0).float().cpu()  # (d,)
    return Templates(vectors, source or {})


def from_recording(ds, by: str, time_bin: int = 0, condition: str | None = "bottom-up") -> Templates:
    """Templates from a recording: the mean `global_query` at `time_bin` per value of the
    presentation coordinate `by` (e.g. "label", "orientation", "target"), over the
    presentations of `condition` where the recording has a `condition` coordinate."""
    if "global_query" not in ds:
        raise TemplateError("the recording has no global_query (record with --signals query)")
    if by not in ds.coords:
        raise TemplateError(f"the recording has no presentation coordinate {by!r}")
    query = ds["global_query"]
    if condition is not None and "condition" in query.coords:
        query = query.where(query["condition"] == condition, drop=True)
    if time_bin not in query["time_bin"].values:
        raise TemplateError(f"time bin {time_bin} was not recorded")
    values = torch.as_tensor(np.asarray(query.sel(time_bin=time_bin).transpose("presentation", "key_dim")))
    return from_queries(values, query[by].values.tolist(),
                        {"from": "recording", "by": by, "time_bin": time_bin, "condition": condition})


@torch.no_grad()
def from_model(model: GAttANet, images: torch.Tensor, groups: Sequence, batch_size: int = 256,
               source: dict | None = None) -> Templates:
    """Templates on the fly: the mean query per group, pooled with no gain acting.

    The query is read when every area has fired once with attention off: the first sweep
    (sweep mode), or step n-1 of an n-area cascade. images (N, C, H, W) in [0, 1]; eval mode
    without unit noise, so a template does not depend on a noise draw.
    """
    if model.attention is None:
        raise TemplateError("the model has no attention region, so no query to make templates of")
    was_training, noise = model.training, model.noise_std
    model.eval()
    model.noise_std = 0.0
    try:
        device = model.backbone.mean.device
        queries = [model.simulate(images[i:i + batch_size].to(device), model.arrival_steps,
                                  query="off").query[-1]
                   for i in range(0, len(images), batch_size)]  # (b, d) each
    finally:
        model.train(was_training)
        model.noise_std = noise
    return from_queries(torch.cat(queries), groups, {"from": "model", "time_bin": model.arrival_steps - 1,
                                                  "condition": "off", **(source or {})})

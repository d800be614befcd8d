"""The attention region: one global attention system reading from and writing to every area.

The equations of GAttANet (VanRullen & Alamia 2021), one short function each:

    k_i(x), q_i(x) = W_k^i r_i(x), W_q^i r_i(x)      conv area: 1x1 projection, no bias
    k_i(c), q_i(c) = r_i(c) K_i[c], r_i(c) Q_i[c]    dense area: the unit's rate times its vector
    q   = mean_i mean_x q_i(x)                       `global_query`: ONE query, (B, d)
    a_i(x) = k_i(x) . q                              `agreement`: the agreement map of area i
    g_i(x) = 1 + alpha_i a_i(x)                      `gain_from_agreement`: sent back to area i

The region's state between timesteps is an `AttentionState` (the global query and every
area's keys), carried by the simulator like the hidden state of a recurrent network.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

NORMALISATIONS = ("none", "standardize", "softmax")
GAIN_FORMS = ("linear", "bounded", "positive")
KEY_TIMES = ("previous", "current")
GAIN_POSITIONS = ("post", "pre")


@dataclass
class AttentionState:
    """What the attention region holds after a timestep."""

    query: torch.Tensor  # (B, d) the global query
    keys: dict[str, torch.Tensor]  # area -> (B, P, d), P positions or units
    area_queries: dict[str, torch.Tensor]  # area -> (B, d) the area's mean query


def global_query(area_queries: list[torch.Tensor]) -> torch.Tensor:
    """q = mean over areas of the per-area mean query; inputs (B, d) each, output (B, d)."""
    return torch.stack(area_queries).mean(dim=0)


def agreement(keys: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """a(x) = k(x) . q for every position or unit: (B, P, d), (B, d) -> (B, P)."""
    return torch.einsum("bpd,bd->bp", keys, query)


def normalise(a: torch.Tensor, how: str) -> torch.Tensor:
    """Optional normalisation of an agreement map over its positions/units, (B, P) -> (B, P).

    `standardize` gives every map mean 0 and sd 1 (a layer norm without affine part);
    `softmax` gives P * softmax(a) - 1, also mean 0, so the mean gain stays 1.
    """
    if how == "none":
        return a
    if how == "standardize":
        return (a - a.mean(dim=1, keepdim=True)) / (a.std(dim=1, correction=0, keepdim=True) + 1e-5)
    return a.shape[1] * torch.softmax(a, dim=1) - 1


def gain_from_agreement(alpha: torch.Tensor, a: torch.Tensor, form: str) -> torch.Tensor:
    """g = 1 + alpha * a (the paper), or a bounded / always-positive variant; 1 at alpha = 0."""
    if form == "linear":
        return 1 + alpha * a
    if form == "bounded":
        return 1 + alpha * torch.tanh(a)
    return 2 * torch.sigmoid(alpha * a)


def _check(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


class AttentionRegion(nn.Module):
    """Keys and queries of every area, the pooled global query, agreement maps and gains.

    Args:
        areas: area name -> (kind, units): kind "conv" (units = channels) or "dense".
        key_dim: d, the dimension of keys and queries (16 in the paper's toy model).
        normalization: of the agreement map: "none" (paper), "standardize" or "softmax".
        gain_form: "linear" 1 + alpha a (paper), "bounded" 1 + alpha tanh(a), or
            "positive" 2 sigmoid(alpha a).
        readout_gain: whether the last area (the class layer) receives a gain too (paper: yes).
        alpha_init: initial value of every alpha; 0 leaves an untrained network unchanged.
        keys: "previous" (default, causal in time): the gain at step t uses keys of step t-1;
            "current": keys of the area's own activity at step t, before its gain.
        gain_position: "post" (default): the gain multiplies the area's rate, after the
            nonlinearity; "pre": it multiplies the drive, before the nonlinearity.
    """

    def __init__(
        self,
        areas: dict[str, tuple[str, int]],
        key_dim: int = 16,
        normalization: str = "none",
        gain_form: str = "linear",
        readout_gain: bool = True,
        alpha_init: float = 0.0,
        keys: str = "previous",
        gain_position: str = "post",
    ) -> None:
        super().__init__()
        if key_dim < 1:
            raise ValueError(f"key_dim must be at least 1, got {key_dim}")
        _check("normalization", normalization, NORMALISATIONS)
        _check("gain_form", gain_form, GAIN_FORMS)
        _check("keys", keys, KEY_TIMES)
        _check("gain_position", gain_position, GAIN_POSITIONS)
        self.kinds = {name: kind for name, (kind, _) in areas.items()}
        self.key_dim = key_dim
        self.normalization = normalization
        self.gain_form = gain_form
        self.keys = keys
        self.gain_position = gain_position
        names = list(areas)
        self.gained = names if readout_gain else names[:-1]
        self.query = nn.ParameterDict({n: self._projection(*areas[n]) for n in names})
        self.key = nn.ParameterDict({n: self._projection(*areas[n]) for n in self.gained})
        self.alpha = nn.ParameterDict(
            {n: nn.Parameter(torch.tensor(float(alpha_init))) for n in self.gained}
        )

    def _projection(self, kind: str, units: int) -> nn.Parameter:
        """Conv: a (d, C) 1x1 projection, initialised like nn.Conv2d; dense: (N, d) vectors."""
        if kind == "conv":
            bound = 1 / math.sqrt(units)
            return nn.Parameter(torch.empty(self.key_dim, units).uniform_(-bound, bound))
        return nn.Parameter(torch.randn(units, self.key_dim) / math.sqrt(self.key_dim))

    def project(self, name: str, weight: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
        """Keys or queries of every position/unit of an area: -> (B, P, d)."""
        if self.kinds[name] == "conv":
            return torch.einsum("bchw,dc->bhwd", rate, weight).flatten(1, 2)  # (B, HW, d)
        return rate.unsqueeze(-1) * weight  # (B, N, 1) * (N, d) -> (B, N, d)

    def observe(self, rates: dict[str, torch.Tensor | None]) -> AttentionState:
        """Read every active area (None = silent, not yet reached) and pool the global query."""
        area_queries, keys = {}, {}
        for name, rate in rates.items():
            if rate is None:
                continue
            area_queries[name] = self.project(name, self.query[name], rate).mean(dim=1)  # (B, d)
            if name in self.key:
                keys[name] = self.project(name, self.key[name], rate)  # (B, P, d)
        query = global_query(list(area_queries.values()))  # (B, d)
        return AttentionState(query, keys, area_queries)

    def agreement_map(self, name: str, keys: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """The (normalised) agreement of an area's keys with the global query, (B, P)."""
        return normalise(agreement(keys, query), self.normalization)

    def gain(self, name: str, a: torch.Tensor) -> torch.Tensor:
        """The gain sent to an area from its agreement map, (B, P) -> (B, P)."""
        return gain_from_agreement(self.alpha[name], a, self.gain_form)

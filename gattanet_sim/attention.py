"""The attention region: one global attention system reading from and writing to every area.

The equations of GAttANet (VanRullen & Alamia 2021), one short function each:

    k_i(x), q_i(x) = W_k^i r_i(x), W_q^i r_i(x)   `AttentionRegion.project`
        conv area: 1x1 projection, no bias; dense area: k_i(c) = r_i(c) K_i[c]
    mean_x q_i(x)                                 `AttentionRegion.mean_query`
    q = mean_i mean_x q_i(x)                      `global_query`: ONE query, (B, d)
    a_i(x) = k_i(x) . q                           `AttentionRegion.agreement_map`
    g_i(x) = 1 + alpha_i a_i(x)                   `gain_from_agreement`: sent back to area i
    g_i(x) = A(x) (1+s) <E> / (s <E> + <A E>)     `divisive_gain`: normalization model (option)
    q = beta q_template + (1 - beta) q            `top_down_query`: a cue from a higher region
    q(t) = lambda q(t-1) + (1 - lambda) q_new     `leaky_query`: the region's own state (option)
    g(t) = g(t-1) + (g_target(t) - g(t-1)) / tau  `relax_gain`: a gain with a time constant (option)
    f_i = W_k^i^T q,  g_i(c) = 2 sigmoid(alpha z(f)_c)  `AttentionRegion.feature_gain`: a gain per
        feature (channel or unit; z standardises over them), the same at every position:
        feature-based attention (option)
    g_i(c) = A(c) (1+s) <E> / (s <E> + <A E>)     `AttentionRegion.feature_gain` with `feature_pool`
        "divisive": the feature gains share one budget, the normalization model over features
    k_i(x) = W_k^i r_i(x) + P_i(x)                `AttentionRegion.position_code`: keys that carry
        their position (option), so that a query can name a location: spatial attention

Keys and queries are linear in the rates, so the region never needs a d-vector at every
position: the mean query is the projection of the mean rate, and k(x) . q = r(x) . (W_k^T q).
Same numbers (the tests check them against the literal per-position formulas), several times
cheaper. The region's state between timesteps is an `AttentionState` (the global query and
the rates it read), carried by the simulator like the hidden state of a recurrent network.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import nn

NORMALISATIONS = ("none", "standardize", "softmax")
GAIN_FORMS = ("linear", "bounded", "positive", "divisive")
SEMI_SATURATION = 1.0  # s of `divisive_gain`, in units of the area's mean drive
KEY_TIMES = ("previous", "current")
GAIN_POSITIONS = ("post", "pre")
CONDITIONS = ("bottom-up", "template", "mixed", "off")
ALPHA_SIGNS = ("free", "positive")
GAIN_MAPS = ("position", "feature", "both")
KEY_POSITIONS = ("none", "learned", "sinusoidal")
FEATURE_POOLS = ("none", "divisive")


@dataclass
class AttentionState:
    """What the attention region holds after a timestep."""

    query: torch.Tensor  # (B, d) the global query
    area_queries: dict[str, torch.Tensor]  # area -> (B, d) the area's mean query
    rates: dict[str, torch.Tensor]  # area -> its rate as read: the keys are W_k of it
    pooled: torch.Tensor | None = None  # (B, d) the bottom-up query, integrated over time


def global_query(area_queries: list[torch.Tensor]) -> torch.Tensor:
    """q = mean over areas of the per-area mean query; inputs (B, d) each, output (B, d)."""
    return torch.stack(area_queries).mean(dim=0)


def top_down_query(pooled: torch.Tensor, template: torch.Tensor, beta: float) -> torch.Tensor:
    """q = beta * template + (1 - beta) * pooled: a top-down cue mixed into the bottom-up query.

    pooled (B, d); template (d,) or (B, d). beta 1 is a pure template, 0 the bottom-up query.
    """
    return beta * template.to(pooled).expand_as(pooled) + (1 - beta) * pooled  # (B, d)


@dataclass(frozen=True)
class QuerySource:
    """Where the global query comes from: the attention condition of an experiment.

    - ``bottom-up`` (the paper, the default): the query pooled from every area's activity;
    - ``template``: a fixed d-vector (one per image, (B, d), or one for all, (d,)) replaces
      it, a top-down cue from a region above the visual hierarchy (a pre-cue, Posner 1980);
    - ``mixed``: ``beta * template + (1 - beta) * bottom-up``;
    - ``off``: the region still reads the areas (the pooled query is recorded) but sends no
      gain back: the unattended reference of the same network (an inactivated attention
      region). Every area is then normalised with the batch-norm statistics of its own
      first step (the first, unattended sweep; in cascade mode the step it first fires),
      fitted to activity no gain acted on (see `gattanet_sim.dynamics`).

    GAttANet's keys carry features, not positions: a template attends to whatever carries
    the features it agrees with, wherever that is. Attending "to a location" then means
    attending to the features of what is there (a template made from a stimulus shown alone
    there); with `key_position` the keys also carry a position code, which a template can name.
    """

    condition: str = "bottom-up"
    template: torch.Tensor | None = None
    beta: float = 1.0

    def __post_init__(self) -> None:
        _check("condition", self.condition, CONDITIONS)
        needs = self.condition in ("template", "mixed")
        if needs and self.template is None:
            raise ValueError(f"the {self.condition} condition needs a template")
        if not needs and self.template is not None:
            raise ValueError(f"the {self.condition} condition takes no template")
        if needs and self.template.dim() not in (1, 2):
            raise ValueError(f"a template is (d,) or (B, d); got shape {tuple(self.template.shape)}")
        if not 0 <= self.beta <= 1:
            raise ValueError(f"beta must lie in [0, 1], got {self.beta}")

    @property
    def off(self) -> bool:
        return self.condition == "off"

    def query(self, pooled: torch.Tensor) -> torch.Tensor:
        """The global query sent to the areas, from the pooled bottom-up one: (B, d) -> (B, d)."""
        if self.template is None:
            return pooled
        if self.template.shape[-1] != pooled.shape[-1]:
            raise ValueError(f"template has {self.template.shape[-1]} dimensions, the attention "
                             f"region's query {pooled.shape[-1]}")
        return top_down_query(pooled, self.template, self.beta if self.condition == "mixed" else 1.0)


def as_query_source(query: QuerySource | str | torch.Tensor | None) -> QuerySource:
    """None or "bottom-up", "off", a template tensor, or a `QuerySource` as it is."""
    if query is None:
        return QuerySource()
    if isinstance(query, QuerySource):
        return query
    if isinstance(query, torch.Tensor):
        return QuerySource("template", query)
    return QuerySource(query)


def leaky_query(previous: torch.Tensor, new: torch.Tensor, leak: float) -> torch.Tensor:
    """q(t) = leak * q(t-1) + (1 - leak) * q_new: a query with a memory, (B, d) each."""
    return leak * previous + (1 - leak) * new


def relax_gain(previous: torch.Tensor, target: torch.Tensor, tau: float) -> torch.Tensor:
    """g(t) = g(t-1) + (g_target - g(t-1)) / tau: a gain relaxing towards its target.

    tau = 1 is the paper's instantaneous gain; a convex combination of gains stays within
    their bounds (0 to 2 for the positive form)."""
    return previous + (target - previous) / tau


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


def divisive_gain(field: torch.Tensor, drive: torch.Tensor, s: float = SEMI_SATURATION) -> torch.Tensor:
    """The normalization model of attention (Reynolds & Heeger 2009) as a gain; field, drive
    and gain share one shape, (B, H, W) or (B, N):

        g(x) = A(x) (1 + s) mean_x E / (s mean_x E + mean_x A(x) E(x))

    the attention field A (here 2 sigmoid(alpha a), in (0, 2)) times the stimulus drive E,
    divided by the suppressive drive pooled over the whole area, and scaled so that A = 1
    gives g = 1 exactly. Attention then redistributes an area's activity more than it adds to
    it: attended positions gain what the others lose. The semi-saturation s, in units of the
    mean drive, keeps the gain scale-free and below 2 (1 + s) / s; a silent area (E = 0) takes
    A (1 + s) / s, acting on nothing."""
    e, a = drive.flatten(1), field.flatten(1)  # (B, P): P positions or units
    mean_e = e.mean(dim=1, keepdim=True)  # (B, 1)
    pooled = (a * e).mean(dim=1, keepdim=True) / mean_e.clamp_min(1e-12)  # (B, 1): E-weighted mean of A
    return (a * (1 + s) / (s + pooled)).view_as(field)  # (B, P) -> the field's shape


@functools.lru_cache(maxsize=64)
def sinusoidal_code(key_dim: int, height: int, width: int) -> torch.Tensor:
    """A fixed 2-D position code, (d, H, W), of unit norm at every position.

    Positions are the centres of the area's grid in coordinates of the visual field, (0, 1)
    on each axis, so one point of the field has (nearly) one code in every area whatever its
    grid. A quarter of the dimensions each is sin and cos of x and of y at angular frequencies
    w_k = pi k / n, k = 1..n: P(x) . P(y) = mean over axes and k of cos(w_k (x - y)), 1 at
    x = y; no frequency turns more than half a cycle over the field, so it falls monotonically
    with distance (a broad spotlight, without the side lobes of higher frequencies). d not a
    multiple of 4 leaves the last dimensions 0. Cached: every step of every area asks for it
    (callers must not write into it)."""
    n = key_dim // 4
    if n < 1:
        raise ValueError(f"a sinusoidal position code needs key_dim >= 4, got {key_dim}")
    omega = math.pi * torch.arange(1, n + 1) / n  # (n,)

    def axis(size: int) -> torch.Tensor:
        u = (torch.arange(size) + 0.5) / size  # (size,) centres in (0, 1)
        angle = omega[:, None] * u[None]  # (n, size)
        return torch.cat([angle.sin(), angle.cos()])  # (2n, size)

    code = torch.cat([axis(width)[:, None, :].expand(2 * n, height, width),
                      axis(height)[:, :, None].expand(2 * n, height, width)])  # (4n, H, W)
    code = code / math.sqrt(2 * n)  # unit norm at every position
    return torch.cat([code, code.new_zeros(key_dim - 4 * n, height, width)])  # (d, H, W)


def _check(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


class AttentionRegion(nn.Module):
    """Keys and queries of every area, the pooled global query, agreement maps and gains.

    Args:
        areas: area name -> (kind, units): kind "conv" (units = channels) or "dense".
        key_dim: d, the dimension of keys and queries (16 in the paper's toy model).
        normalization: of the agreement map: "none" (paper), "standardize" or "softmax".
        gain_form: "linear" 1 + alpha a (paper), "bounded" 1 + alpha tanh(a),
            "positive" 2 sigmoid(alpha a), or "divisive": the positive one as the attention
            field of the normalization model (`divisive_gain`).
        readout_gain: whether the last area (the class layer) receives a gain too (paper: yes).
        alpha_init: initial value of every alpha; 0 leaves an untrained network unchanged.
        keys: "previous" (default, causal in time): the gain at step t uses keys of step t-1;
            "current": keys of the area's own activity at step t, before its gain.
        gain_position: "post" (default): the gain multiplies the area's rate, after the
            nonlinearity; "pre": it multiplies the drive, before the nonlinearity.
        query_leak: lambda of `leaky_query` (0: the paper, a query without memory).
        gain_tau: tau of `relax_gain`, in timesteps (1: the paper, an instantaneous gain).
        alpha_sign: "free" (the paper) or "positive": alpha = softplus(rho) >= 0, so that
            agreeing with the query can only raise the gain. Started at `alpha_init` when it is
            above 0, else at softplus(0) = ln 2 (a softplus started near 0 would barely learn:
            its slope there is its value).
        gain_map: "position" (the paper: one gain per position, shared by every channel),
            "feature" (one gain per channel or unit, 2 sigmoid(alpha z_c) with z the
            standardised f = W_k^T q, the same at every position: global feature-based
            attention, `feature_gain`), or "both" (their
            product; the feature gain then has an alpha of its own, `feature_alpha`, at 0).
        key_position: "none" (the paper: keys carry features only), "learned" (a code P(x)
            per conv area, started at 0) or "sinusoidal" (`sinusoidal_code`, fixed) added to
            every key, k(x) = W_k r(x) + P(x), and to every query weighted by the position's
            mean rate m(x), q(x) = W_q r(x) + m(x) P(x), so that the pooled query points where
            the activity is and a template made from a stimulus shown alone names its place.
        sides: area -> side of its grid of positions (needed by learned position codes).
        cue_classes: K > 0 gives the region K learned templates (`cues`, (K, d)), one per
            class, the top-down cues of a cued task (`train --task cued-detection`).
        feature_pool: "none" (each feature gain on its own) or "divisive": the feature gains,
            as the attention field, divided by their drive-weighted mean over the area's
            channels or units (`divisive_gain` over features, Reynolds & Heeger 2009's
            suppressive pool): attention as a limited resource, so that raising the features
            a cue names lowers the others. Only with gain_map "feature" or "both".
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
        query_leak: float = 0.0,
        gain_tau: float = 1.0,
        alpha_sign: str = "free",
        gain_map: str = "position",
        key_position: str = "none",
        sides: dict[str, int] | None = None,
        cue_classes: int = 0,
        feature_pool: str = "none",
    ) -> None:
        super().__init__()
        if key_dim < 1:
            raise ValueError(f"key_dim must be at least 1, got {key_dim}")
        _check("normalization", normalization, NORMALISATIONS)
        _check("gain_form", gain_form, GAIN_FORMS)
        _check("keys", keys, KEY_TIMES)
        _check("gain_position", gain_position, GAIN_POSITIONS)
        if not 0 <= query_leak < 1:
            raise ValueError(f"query_leak must lie in [0, 1), got {query_leak}")
        if not gain_tau >= 1:
            raise ValueError(f"gain_tau must be at least 1, got {gain_tau}")
        _check("alpha_sign", alpha_sign, ALPHA_SIGNS)
        _check("gain_map", gain_map, GAIN_MAPS)
        _check("key_position", key_position, KEY_POSITIONS)
        if cue_classes < 0:
            raise ValueError(f"cue_classes must be >= 0, got {cue_classes}")
        _check("feature_pool", feature_pool, FEATURE_POOLS)
        if feature_pool != "none" and gain_map == "position":
            raise ValueError("feature_pool acts on feature gains: it needs gain_map feature or both")
        self.kinds = {name: kind for name, (kind, _) in areas.items()}
        self.key_dim = key_dim
        self.normalization = normalization
        self.gain_form = gain_form
        self.keys = keys
        self.gain_position = gain_position
        self.query_leak = query_leak
        self.gain_tau = gain_tau
        self.alpha_sign = alpha_sign
        self.gain_map = gain_map
        self.key_position = key_position
        self.feature_pool = feature_pool
        names = list(areas)
        self.gained = names if readout_gain else names[:-1]
        self.query = nn.ParameterDict({n: self._projection(*areas[n]) for n in names})
        self.key = nn.ParameterDict({n: self._projection(*areas[n]) for n in self.gained})
        start = float(alpha_init)
        if alpha_sign == "positive":  # rho with softplus(rho) = alpha_init, or 0 (alpha ln 2)
            start = math.log(math.expm1(start)) if start > 0 else 0.0
        self.alpha = nn.ParameterDict({n: nn.Parameter(torch.tensor(start)) for n in self.gained})
        if gain_map == "both":
            self.feature_alpha = nn.ParameterDict(  # free: 0, neutral; positive: ln 2
                {n: nn.Parameter(torch.tensor(0.0)) for n in self.gained})
        conv = [n for n in names if areas[n][0] == "conv"]
        if key_position == "learned":
            if sides is None or any(n not in sides for n in conv):
                raise ValueError("learned position codes need the side of every conv area")
            self.position = nn.ParameterDict(
                {n: nn.Parameter(torch.zeros(key_dim, sides[n], sides[n])) for n in conv})
        self.cues = nn.Parameter(torch.randn(cue_classes, key_dim) / math.sqrt(key_dim)) \
            if cue_classes else None

    def _projection(self, kind: str, units: int) -> nn.Parameter:
        """Conv: a (d, C) 1x1 projection, initialised like nn.Conv2d; dense: (N, d) vectors."""
        if kind == "conv":
            bound = 1 / math.sqrt(units)
            return nn.Parameter(torch.empty(self.key_dim, units).uniform_(-bound, bound))
        return nn.Parameter(torch.randn(units, self.key_dim) / math.sqrt(self.key_dim))

    def alpha_of(self, name: str, feature: bool = False) -> torch.Tensor:
        """The alpha that sets an area's gain (its feature gain's with `feature` and gain_map
        "both"): the parameter itself, or its softplus when alphas are kept >= 0."""
        raw = self.feature_alpha[name] if feature and self.gain_map == "both" else self.alpha[name]
        return nn.functional.softplus(raw) if self.alpha_sign == "positive" else raw

    def alpha_values(self) -> dict[str, float]:
        """Every area's alpha as it acts (feature alphas as "AREA:feature"), for logs."""
        values = {n: self.alpha_of(n).item() for n in self.gained}
        if self.gain_map == "both":
            values.update({f"{n}:feature": self.alpha_of(n, True).item() for n in self.gained})
        return values

    def position_code(self, name: str, rate: torch.Tensor) -> torch.Tensor | None:
        """P of a conv area whose rate is `rate` (B, C, H, W): (d, H, W); None without one."""
        if self.key_position == "none" or self.kinds[name] != "conv":
            return None
        if self.key_position == "learned":
            return self.position[name]
        return sinusoidal_code(self.key_dim, *rate.shape[2:]).to(rate)  # (d, H, W)

    def project(self, name: str, weight: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
        """The feature part of the keys or queries of every position/unit of an area: -> (B, P, d)
        (the literal formula; `mean_query` and `agreement_map` add the position code)."""
        if self.kinds[name] == "conv":
            return (weight @ rate.flatten(2)).transpose(1, 2)  # (d, C) @ (B, C, HW) -> (B, HW, d)
        return rate.unsqueeze(-1) * weight  # (B, N, 1) * (N, d) -> (B, N, d)

    def mean_query(self, name: str, rate: torch.Tensor) -> torch.Tensor:
        """mean_x q_i(x) = W_q mean_x r_i(x): project the area's mean rate, (B, d)."""
        if self.kinds[name] == "conv":
            q = rate.mean(dim=(2, 3)) @ self.query[name].T  # (B, C) @ (C, d)
            code = self.position_code(name, rate)  # (d, H, W) | None
            if code is not None:  # + mean_x m(x) P(x), m(x) the position's mean rate
                q = q + torch.einsum("bhw,dhw->bd", rate.mean(dim=1), code) / code[0].numel()
            return q  # (B, d)
        return rate @ self.query[name] / rate.shape[1]  # (B, N) @ (N, d), mean over units

    def observe(self, rates: dict[str, torch.Tensor | None], source: QuerySource | None = None,
                previous: AttentionState | None = None) -> AttentionState | None:
        """Read every active area (None = silent, not yet reached) and pool the global query,
        integrated with the `previous` state's when `query_leak` > 0; `source` may replace it
        by a top-down template (default: bottom-up)."""
        read = {name: rate for name, rate in rates.items() if rate is not None and name in self.query}
        if not read:  # cascade mode: no area it reads has fired yet
            return previous
        area_queries = {name: self.mean_query(name, rate) for name, rate in read.items()}
        pooled = global_query(list(area_queries.values()))  # (B, d)
        if self.query_leak > 0 and previous is not None and previous.pooled is not None:
            pooled = leaky_query(previous.pooled, pooled, self.query_leak)  # (B, d)
        query = pooled if source is None else source.query(pooled)  # (B, d)
        return AttentionState(query, area_queries, read, pooled)

    def agreement_map(self, name: str, rate: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """a_i(x) = k_i(x) . q of an area whose rate is `rate`, normalised: (B, P).

        Computed as r(x) . (W_k^T q), the same number without a d-vector per position.
        """
        if self.kinds[name] == "conv":
            w = query @ self.key[name]  # (B, d) @ (d, C) -> (B, C)
            a = (w.unsqueeze(1) @ rate.flatten(2)).squeeze(1)  # (B, 1, C) @ (B, C, HW) -> (B, HW)
            code = self.position_code(name, rate)  # (d, H, W) | None
            if code is not None:
                a = a + query @ code.flatten(1)  # + P(x) . q: (B, d) @ (d, HW) -> (B, HW)
        else:
            a = rate * (query @ self.key[name].T)  # (B, N) * ((B, d) @ (d, N)) -> (B, N)
        return normalise(a, self.normalization)

    def feature_loading(self, name: str, query: torch.Tensor) -> torch.Tensor:
        """f = W_k^T q, how much each channel (conv) or unit (dense) of an area agrees with the
        query, wherever it is: a(x) = r(x) . f is the agreement map. (B, d) -> (B, C) | (B, N)."""
        if self.kinds[name] == "conv":
            return query @ self.key[name]  # (B, d) @ (d, C) -> (B, C)
        return query @ self.key[name].T  # (B, d) @ (d, N) -> (B, N)

    def feature_gain(self, name: str, query: torch.Tensor, rate: torch.Tensor | None = None) -> torch.Tensor:
        """One gain per channel or unit from its loading on the query, the same at every
        position: 2 sigmoid(alpha z_c) (the region's form; the divisive one divides positions
        only, so its features take the positive form), z the loading f standardised over the
        area's channels or units. Standardised, f keeps only the query's ranking of the
        features, as a feature-similarity gain does (Treue & Martinez-Trujillo 1999), and alpha
        alone sets how strongly it acts, whatever the scale of keys and query: with the raw f
        (~0.01 in a trained toy model) the feature alphas hardly moved in training. With
        `feature_pool` "divisive" that gain is the attention field of `divisive_gain` over the
        features, their drive E_c the mean |rate| of channel c (the area's ungained `rate` of
        this step). (B, d) -> (B, C) | (B, N)."""
        f = normalise(self.feature_loading(name, query), "standardize")  # (B, C) | (B, N)
        form = "positive" if self.gain_form == "divisive" else self.gain_form
        field = gain_from_agreement(self.alpha_of(name, feature=True), f, form)  # (B, C) | (B, N)
        if self.feature_pool == "none":
            return field
        if rate is None:
            raise ValueError("a divisive feature pool needs the area's rate")
        drive = rate.abs().mean(dim=(2, 3)) if rate.dim() == 4 else rate.abs()  # E: (B, C) | (B, N)
        return divisive_gain(field, drive)  # (B, C) | (B, N)

    def gain(self, name: str, a: torch.Tensor, rate: torch.Tensor | None = None) -> torch.Tensor:
        """The gain sent to an area from its agreement map, (B, P) -> (B, P); the divisive form
        also needs the area's ungained `rate` of this step, its stimulus drive."""
        if self.gain_form != "divisive":
            return gain_from_agreement(self.alpha_of(name), a, self.gain_form)
        if rate is None:
            raise ValueError("the divisive gain needs the area's rate")
        field = gain_from_agreement(self.alpha_of(name), a, "positive")  # A: (B, H, W) | (B, N)
        drive = rate.abs().sum(dim=1) if rate.dim() == 4 else rate.abs()  # E: (B, H, W) | (B, N)
        return divisive_gain(field, drive)

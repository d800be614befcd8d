"""The simulator: visual areas and the attention region as a dynamical system over T steps.

Two modes of time:

- ``sweep`` (the paper's): every timestep is one full feedforward sweep through all areas.
  At t = 0 no gain acts; at t >= 1 every area's rate is multiplied by the gain the attention
  region computed from step t-1. T = 1 is the plain backbone.
- ``cascade`` (as CORnet-RT): area i at step t reads its input area's output of step t-1,
  so activity enters one area per step. Area i first fires at t = i; the read-out of an
  n-area backbone first fires at t = n-1, so **the input needs n timesteps to reach the
  read-out** (5 for the toy model). Areas not reached yet are silent: they are not run,
  send nothing to the attention region, and read as zeros in a trajectory. The global query
  is the mean over the areas that fired.

Where the global query comes from is the attention condition (`QuerySource`, argument
``query`` of `GAttANet.simulate` and `GAttANet.forward`): ``bottom-up`` (the paper), a
top-down ``template``, a ``mixed`` of both, or ``off`` (no gain acts). Under ``off`` every
area is normalised at every step with the batch-norm statistics of its own first step (step
0 in sweep mode, step i for area i in cascade mode, where it first fires and no gain has
acted on it yet): with per-step statistics (``norm_steps`` > 1) the later rows are fitted
to gain-modulated activity (mean gains of 0.7-1.0 in a trained model) and would mis-scale
activity that no gain touched. In sweep mode ``off`` is the network's own unattended sweep,
repeated, equal at every step to the plain backbone (with unit noise: up to the noise).

Optional Gaussian noise (``noise_std``) is added to every unit's drive before the
nonlinearity, at every timestep, in training and evaluation alike: trial-to-trial
variability of a simulated neuron. It is independent between units unless ``shared_noise``
= rho > 0 (slow fluctuations shared by a population, Mitchell et al. 2009, Neuron 63:879):
then it is sqrt(1 - rho) independent noise plus sqrt(rho) one draw per area and trial (batch
row), shared by the area's units and held over the trial's timesteps. Each unit's noise
variance stays ``noise_std``^2; two units of an area correlate by rho.

``feedback_delays`` (a hypothesis about timing; default all 0, no delay) withholds the
attention region's gain from area i for delay_i steps after it could first act
(`GAttANet.feedback_onset`): with keys "previous" (the presets') it is gained from step
first_step(i) + 1 + delay_i on (keys "current": first_step(i) + delay_i, and not before step
1), with gain 1 before, as if no feedback had arrived. Give a mapping ``{"V1": 2}`` (areas not
named: 0) or a comma list in area order, ``"3,2,1,0,0"`` (or ``"V1=3,V2=2"``). In cascade mode
area i is then first gained at step i + 1 + delay_i: ``4,3,2,1,0`` gains the toy model's 5
areas all at step 5; the hypothesis that attention reaches **higher areas first** (Buffalo et
al. 2010) is a delay falling faster than the areas rise, delay_i = 2 (n - 1 - i), e.g.
``8,6,4,2,0``: the read-out gained from step 5, IT from 6, ... V1 from 9 (run T >= 10).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Integral

import torch
from torch import nn

from gattanet_sim.areas import Backbone
from gattanet_sim.attention import (
    AttentionRegion,
    AttentionState,
    QuerySource,
    as_query_source,
    relax_gain,
)

MODES = ("sweep", "cascade")


def feature_key(name: str) -> str:
    """Where a step's gains keep an area's feature gain (gain_map "feature" or "both")."""
    return f"{name}:feature"


def parse_feedback_delays(text: str) -> list[int] | dict[str, int]:
    """A delay list as typed: "3,2,1,0" (area order) or "V1=3,IT=1" (areas not named: 0)."""
    items = [item.strip() for item in text.split(",")]
    named = ["=" in item for item in items]
    if any(named) and not all(named):
        raise ValueError(f"feedback delays are D,D,.. or AREA=D,..; got {text!r}")
    pairs = [item.split("=", 1) if "=" in item else ("", item) for item in items]
    values = [value.strip() for _, value in pairs]
    if not all(v.isascii() and v.isdigit() for v in values):  # "-1", "1.5", "" and the like
        raise ValueError(f"feedback delays must be integers >= 0; got {text!r}")
    if all(named):
        return {name.strip(): int(v) for (name, _), v in zip(pairs, values)}
    return [int(v) for v in values]


def feedback_delays(names: list[str], value: Mapping | Sequence | str | None) -> tuple[int, ...]:
    """Every area's feedback delay, in the order of `names` (None: all 0); see the module."""
    if isinstance(value, str):
        value = parse_feedback_delays(value)
    if value is None:
        value = [0] * len(names)
    if isinstance(value, Mapping):
        unknown = [str(n) for n in value if n not in names]
        if unknown:
            raise ValueError(f"feedback delays name unknown area(s) {', '.join(unknown)}; "
                             f"the areas are {', '.join(names)}")
        value = [value.get(n, 0) for n in names]
    if not isinstance(value, Sequence) or len(value) != len(names):
        raise ValueError(f"feedback delays take one value per area ({', '.join(names)}); got {value!r}")
    if any(isinstance(d, bool) or not isinstance(d, Integral) or d < 0 for d in value):
        raise ValueError(f"feedback delays must be integers >= 0; got {list(value)!r}")
    return tuple(int(d) for d in value)


def _map_shape(drive: torch.Tensor) -> tuple[int, ...]:
    """Shape of an area's agreement/gain map: one value per position (conv) or unit (dense)."""
    return (drive.shape[0], *drive.shape[2:]) if drive.dim() == 4 else tuple(drive.shape)


@dataclass
class Trajectory:
    """Everything a simulation did, stacked over time (first dim T).

    ``gain[area][t]`` and ``agreement[area][t]`` are what acted on the area during step t
    (gain 1 and agreement 0 where nothing acted, e.g. t = 0); ``query[t]`` is the global
    query pooled from the activity of step t, which sets the gains of step t+1.
    """

    logits: torch.Tensor  # (T, B, classes)
    query: torch.Tensor | None = None  # (T, B, d)
    area_queries: dict[str, torch.Tensor] = field(default_factory=dict)  # area -> (T, B, d)
    agreement: dict[str, torch.Tensor] = field(default_factory=dict)  # (T, B, H, W) | (T, B, N)
    gain: dict[str, torch.Tensor] = field(default_factory=dict)  # same shapes as agreement
    feature_gain: dict[str, torch.Tensor] = field(default_factory=dict)  # (T, B, C) | (T, B, N)
    activity: dict[str, torch.Tensor] = field(default_factory=dict)  # (T, B, C, H, W) | (T, B, N)

    @property
    def timesteps(self) -> int:
        return self.logits.shape[0]


class GAttANet(nn.Module):
    """A backbone of visual areas plus (optionally) the global attention region.

    ``model(images, timesteps=T)`` returns the last step's logits (B, classes);
    ``model.simulate(images, timesteps=T)`` returns the whole `Trajectory`.
    Images are (B, C, H, W) in [0, 1]. ``query`` sets the attention condition: None or
    "bottom-up", "off", a template tensor (d,) or (B, d), or a `QuerySource`
    (e.g. ``QuerySource("mixed", template, beta=0.5)``).
    """

    def __init__(
        self,
        backbone: Backbone,
        attention: AttentionRegion | None = None,
        mode: str = "sweep",
        noise_std: float = 0.0,
        feedback_delays: Mapping | Sequence | str | None = None,
        shared_noise: float = 0.0,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
        if noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std}")
        self.backbone = backbone
        self.attention = attention
        self.mode = mode
        self.noise_std = noise_std
        self.feedback_delays = feedback_delays
        self.shared_noise = shared_noise
        self.config: dict = {}  # set by build_model: enough to rebuild the model

    @property
    def areas(self) -> nn.ModuleDict:
        return self.backbone.areas

    @property
    def arrival_steps(self) -> int:
        """Timesteps the input needs to reach the read-out: 1 in sweep mode, n in cascade."""
        return 1 if self.mode == "sweep" else len(self.areas)

    def first_step(self, index: int) -> int:
        """The step at which area number `index` first fires: 0 in sweep mode, `index` in cascade."""
        return index if self.mode == "cascade" else 0

    @property
    def feedback_delays(self) -> dict[str, int]:
        """Steps the attention region's gain is withheld from each area (see the module)."""
        return dict(zip(self.areas, self._delays))

    @feedback_delays.setter
    def feedback_delays(self, value: Mapping | Sequence | str | None) -> None:
        self._delays = feedback_delays(list(self.areas), value)

    @property
    def shared_noise(self) -> float:
        """rho: the fraction of the unit noise's variance shared by an area's units (see the module)."""
        return self._shared_noise

    @shared_noise.setter
    def shared_noise(self, rho: float) -> None:
        if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not 0 <= rho <= 1:
            raise ValueError(f"shared_noise must be a fraction in [0, 1]; got {rho!r}")
        self._shared_noise = float(rho)

    def feedback_onset(self, index: int) -> int:
        """The first step at which attention may gain area number `index`: the first at which
        it has keys to be judged by (the step after it first fires, with keys "previous"; never
        step 0, which has no query), plus its feedback delay."""
        previous = self.attention is None or self.attention.keys == "previous"
        ready = max(self.first_step(index) + previous, 1)
        return ready + self._delays[index]

    def forward(self, images: torch.Tensor, timesteps: int = 2,
                query: QuerySource | str | torch.Tensor | None = None,
                every_step: bool = False) -> torch.Tensor:
        """The last step's logits (B, classes), or with `every_step` those of each (T, B, classes)
        (through `forward`, so that a DistributedDataParallel wrapper sees the call)."""
        if timesteps < self.arrival_steps:
            raise ValueError(
                f"in {self.mode} mode the input needs {self.arrival_steps} timesteps to reach "
                f"the read-out; got timesteps={timesteps}"
            )
        if every_step:
            return self.simulate(images, timesteps, query=query).logits  # (T, B, classes)
        return self._run(images, timesteps, trajectory=None, source=as_query_source(query))

    def simulate(
        self, images: torch.Tensor, timesteps: int = 2, activity: bool = False,
        query: QuerySource | str | torch.Tensor | None = None,
    ) -> Trajectory:
        """Run T steps and keep the logits, query, agreement and gain (and rates) of each."""
        record: dict[str, list] = {"logits": [], "query": [], "area_queries": [],
                                   "agreement": [], "gain": [], "activity": [] if activity else None}
        self._run(images, timesteps, trajectory=record, source=as_query_source(query))
        return self._stack(record, images.shape[0], images.shape[-1])

    def _run(self, images: torch.Tensor, timesteps: int, trajectory: dict | None,
             source: QuerySource | None = None) -> torch.Tensor:
        source = source or QuerySource()
        if timesteps < 1:
            raise ValueError(f"timesteps must be at least 1, got {timesteps}")
        if self.attention is None and source.condition != "bottom-up":
            raise ValueError(f"the {source.condition} condition needs an attention region; "
                             "this model has none")
        names = list(self.areas)
        retina = self.backbone.retina(images)  # (B, C, H, W)
        rates: dict[str, torch.Tensor | None] = dict.fromkeys(names)
        state: AttentionState | None = None
        static = (self.attention is None or source.off) and self.mode == "sweep" and self.noise_std == 0
        gains: dict[str, torch.Tensor] = {}
        held: dict = {}
        for t in range(timesteps):
            if static and t > 0:  # nothing changes between sweeps: repeat the first
                if trajectory is not None:
                    self._observe_step(trajectory, rates, state, {}, {})
                continue
            rates, agreements, gains = self._step(retina, rates, None if source.off else state,
                                                  None if source.off else t, gains, held)
            last = t == timesteps - 1
            if self.attention is not None and (trajectory is not None or not last):
                state = self.attention.observe(rates, source, state)
            if trajectory is not None:
                self._observe_step(trajectory, rates, state, agreements, gains)
        logits = rates[names[-1]]
        if logits is None:  # cascade mode before arrival: the read-out is silent
            logits = retina.new_zeros(images.shape[0], self.areas[names[-1]].units)
        return logits  # (B, classes)

    def _step(
        self,
        retina: torch.Tensor,
        previous: dict[str, torch.Tensor | None],
        state: AttentionState | None,
        t: int | None = 0,
        previous_gains: dict[str, torch.Tensor] | None = None,
        held: dict | None = None,
    ) -> tuple[dict, dict, dict]:
        """One timestep through every area; returns the new rates, agreements and gains.

        `held` (a dict kept over one simulation) holds what stays fixed during a trial: the
        first area's synaptic input, `area.synapse(retina)`, computed at the first step and
        reused (the image does not change, so neither does it: the same numbers, a conv less
        per step), and the shared noise of each area (`_noisy`).

        `t` picks the batch-norm statistics; None: each area's first step (attention off).
        No `state` means no gain acts. With `gain_tau` > 1 a gain relaxes from the one that
        acted at the previous step (`previous_gains`; 1 where none did) towards its target.
        """
        rates, agreements, gains = {}, {}, {}
        x: torch.Tensor | None = retina
        if held is not None and "first" not in held:  # the first area's input never changes
            first = next(iter(self.areas.values()))
            held["first"] = first.synapse(retina) if hasattr(first, "synapse") else None
        for i, (name, area) in enumerate(self.areas.items()):
            if self.mode == "cascade":
                x = retina if i == 0 else previous[list(self.areas)[i - 1]]
                if x is None:
                    rates[name] = None
                    continue
            step = self.first_step(i) if t is None else t
            if i == 0 and held is not None and held["first"] is not None:
                drive = area.integrate(held["first"], step)  # (B, C, H, W)
            else:
                drive = area.drive(x, step)  # (B, C, H, W) | (B, N)
            drive = self._noisy(name, drive, held)  # (B, C, H, W) | (B, N)
            gain = features = None
            if state is not None and name in self.attention.key and t >= self.feedback_onset(i):
                gain, features = self._attend(name, area, drive, state, previous_gains, agreements, gains)
            rates[name] = self._activate(area, drive, gain, features)
            x = rates[name]
        return rates, agreements, gains

    def _attend(self, name: str, area: nn.Module, drive: torch.Tensor, state: AttentionState,
                previous_gains: dict | None, agreements: dict, gains: dict
                ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """What the attention region feeds back to one area at one step: a gain per position
        from the area's agreement with the global query and/or a gain per feature from the
        query's loading on its channels, each relaxed towards its target (`gain_tau`). Records
        the agreement and the gains in `agreements` and `gains`; returns (gain, feature gain),
        None where that kind of gain is off."""
        a = self._agreement(name, area, drive, state)  # (B, P) or None
        if a is None:
            return None, None
        gain = features = None
        agreements[name] = a.view(_map_shape(drive))  # (B, H, W) | (B, N)
        pooled = self.attention.gain_form == "divisive" or self.attention.feature_pool != "none"
        plain = area.activate(drive) if pooled else None  # the ungained rate: a divisive gain's drive
        if self.attention.gain_map != "feature":
            gain = self.attention.gain(name, agreements[name], plain)  # the target
            gain = gains[name] = self._relax(gain, previous_gains, name)
        if self.attention.gain_map != "position":
            features = self.attention.feature_gain(name, state.query, plain)  # (B, C) | (B, N)
            key = feature_key(name)
            features = gains[key] = self._relax(features, previous_gains, key)
        return gain, features

    def _noisy(self, name: str, drive: torch.Tensor, held: dict | None) -> torch.Tensor:
        """The drive plus unit noise of sd `noise_std`, drawn per unit and step; with
        `shared_noise` rho > 0, sqrt(1 - rho) times that plus sqrt(rho) times a draw shared by
        the area's units, made once per trial (batch row) and kept in `held` over its steps."""
        if self.noise_std == 0:
            return drive
        independent = torch.randn_like(drive)  # (B, C, H, W) | (B, N)
        if self.shared_noise == 0:
            return drive + self.noise_std * independent
        key = f"shared noise:{name}"
        shared = (held or {}).get(key)
        if shared is None:  # the area's first step of this trial
            shape = (drive.shape[0],) + (1,) * (drive.dim() - 1)  # (B, 1, 1, 1) | (B, 1)
            shared = torch.randn(shape, dtype=drive.dtype, device=drive.device)
            if held is not None:
                held[key] = shared
        rho = self.shared_noise
        noise = math.sqrt(1 - rho) * independent + math.sqrt(rho) * shared  # (B, C, H, W) | (B, N)
        return drive + self.noise_std * noise

    def _relax(self, target: torch.Tensor, previous_gains: dict | None, key: str) -> torch.Tensor:
        """The gain of this step: its target, or with `gain_tau` > 1 a step towards it from the
        gain of the previous step (1 where none acted)."""
        if self.attention.gain_tau == 1:
            return target
        before = (previous_gains or {}).get(key)
        return relax_gain(torch.ones_like(target) if before is None else before, target,
                          self.attention.gain_tau)

    def _agreement(self, name: str, area: nn.Module, drive: torch.Tensor, state: AttentionState):
        """Agreement that sets this step's gain: keys of step t-1, or of this step's ungained rate."""
        if self.attention.keys == "previous":
            rate = state.rates.get(name)  # None if the area was silent at t-1
        else:
            rate = area.activate(drive)
        return None if rate is None else self.attention.agreement_map(name, rate, state.query)

    def _activate(self, area: nn.Module, drive: torch.Tensor, gain: torch.Tensor | None,
                  features: torch.Tensor | None = None):
        """Rate of an area: the gain multiplies the drive ("pre") or the rate ("post"); a gain
        per position, per feature (channel or unit), or both."""
        if gain is None and features is None:
            return area.activate(drive)
        if drive.dim() == 4:
            gain = None if gain is None else gain.unsqueeze(1)  # (B, 1, H, W): per position
            features = None if features is None else features[:, :, None, None]  # (B, C, 1, 1)
        if gain is None or features is None:
            gain = features if gain is None else gain
        else:
            gain = gain * features  # (B, C, H, W) | (B, N)
        if self.attention.gain_position == "pre":
            return area.activate(drive * gain)
        return area.activate(drive) * gain

    def _observe_step(self, record: dict, rates: dict, state, agreements: dict, gains: dict) -> None:
        record["logits"].append(rates[list(self.areas)[-1]])
        record["query"].append(None if state is None else state.query)
        record["area_queries"].append({} if state is None else state.area_queries)
        record["agreement"].append(agreements)
        record["gain"].append(gains)
        if record["activity"] is not None:
            record["activity"].append(dict(rates))

    def _stack(self, record: dict, batch: int, side: int) -> Trajectory:
        """Stack per-step records over time, filling silent steps with zeros (gain with 1)."""
        shapes = self._shapes(batch, side)
        names = list(self.areas)
        like = {"device": self.backbone.mean.device, "dtype": self.backbone.mean.dtype}

        def stack(items: list, fill: float, shape: tuple) -> torch.Tensor:
            return torch.stack([torch.full(shape, fill, **like) if v is None else v for v in items])

        traj = Trajectory(stack(record["logits"], 0.0, shapes[names[-1]]))
        if self.attention is not None:
            d = self.attention.key_dim
            traj.query = stack(record["query"], 0.0, (batch, d))
            traj.area_queries = {n: stack([q.get(n) for q in record["area_queries"]], 0.0, (batch, d))
                                 for n in self.attention.query}
            for n in self.attention.gained:
                map_shape = _map_shape(torch.empty(shapes[n], device="meta"))
                traj.agreement[n] = stack([a.get(n) for a in record["agreement"]], 0.0, map_shape)
                traj.gain[n] = stack([g.get(n) for g in record["gain"]], 1.0, map_shape)
                if self.attention.gain_map != "position":
                    traj.feature_gain[n] = stack([g.get(feature_key(n)) for g in record["gain"]], 1.0,
                                                 shapes[n][:2])
        if record["activity"] is not None:
            traj.activity = {n: stack([r[n] for r in record["activity"]], 0.0, shapes[n]) for n in names}
        return traj

    def _shapes(self, batch: int, side: int) -> dict[str, tuple]:
        """Shape of every area's rate, silent or not."""
        sides = self.backbone.sides(side)
        return {name: (batch, area.units, sides[name], sides[name]) if area.kind == "conv"
                else (batch, area.units) for name, area in self.areas.items()}

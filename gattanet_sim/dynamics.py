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
variability of a simulated neuron.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from gattanet_sim.areas import Backbone
from gattanet_sim.attention import (
    AttentionRegion, AttentionState, QuerySource, as_query_source, relax_gain,
)

MODES = ("sweep", "cascade")


def feature_key(name: str) -> str:
    """Where a step's gains keep an area's feature gain (gain_map "feature" or "both")."""
    return f"{name}:feature"


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
             source: QuerySource = QuerySource()) -> torch.Tensor:
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
        synaptic: dict = {}
        for t in range(timesteps):
            if static and t > 0:  # nothing changes between sweeps: repeat the first
                if trajectory is not None:
                    self._observe_step(trajectory, rates, state, {}, {})
                continue
            rates, agreements, gains = self._step(retina, rates, None if source.off else state,
                                                  None if source.off else t, gains, synaptic)
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
        synaptic: dict | None = None,
    ) -> tuple[dict, dict, dict]:
        """One timestep through every area; returns the new rates, agreements and gains.

        `synaptic` (a dict kept over one simulation) holds the first area's synaptic input,
        `area.synapse(retina)`, computed at the first step and reused: the image does not
        change, so neither does it (the same numbers, a conv less per step).

        `t` picks the batch-norm statistics; None: each area's first step (attention off).
        No `state` means no gain acts. With `gain_tau` > 1 a gain relaxes from the one that
        acted at the previous step (`previous_gains`; 1 where none did) towards its target.
        """
        rates, agreements, gains = {}, {}, {}
        x: torch.Tensor | None = retina
        if synaptic is not None and "first" not in synaptic:  # the first area's input never changes
            first = next(iter(self.areas.values()))
            synaptic["first"] = first.synapse(retina) if hasattr(first, "synapse") else None
        for i, (name, area) in enumerate(self.areas.items()):
            if self.mode == "cascade":
                x = retina if i == 0 else previous[list(self.areas)[i - 1]]
                if x is None:
                    rates[name] = None
                    continue
            step = self.first_step(i) if t is None else t
            if i == 0 and synaptic is not None and synaptic["first"] is not None:
                drive = area.integrate(synaptic["first"], step)  # (B, C, H, W)
            else:
                drive = area.drive(x, step)  # (B, C, H, W) | (B, N)
            if self.noise_std > 0:
                drive = drive + self.noise_std * torch.randn_like(drive)
            gain = features = None
            if state is not None and name in self.attention.key:
                a = self._agreement(name, area, drive, state)  # (B, P) or None
                if a is not None:
                    agreements[name] = a.view(_map_shape(drive))  # (B, H, W) | (B, N)
                    if self.attention.gain_map != "feature":
                        plain = area.activate(drive) if self.attention.gain_form == "divisive" else None
                        gain = self.attention.gain(name, agreements[name], plain)  # the target
                        gain = gains[name] = self._relax(gain, previous_gains, name)
                    if self.attention.gain_map != "position":
                        features = self.attention.feature_gain(name, state.query)  # (B, C) | (B, N)
                        key = feature_key(name)
                        features = gains[key] = self._relax(features, previous_gains, key)
            rates[name] = self._activate(area, drive, gain, features)
            x = rates[name]
        return rates, agreements, gains

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

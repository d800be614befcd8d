"""The model as an experimental subject, the way Brain-Score talks to its models.

    subject = ModelSubject(model)                        # bottom-up attention, the run's T
    subject.start_recording("V4", time_bins=[(70, 170), (170, 270)])
    assembly = subject.look_at(stimulus_set, number_of_trials=10)   # presentation x neuroid x time_bin

Brain-Score's `BrainModel` interface, without depending on Brain-Score (it pins old xarray and
numpy): `visual_degrees()`, `start_recording(region, time_bins)` and `look_at(stimuli,
number_of_trials)`. A requested time bin (start, end) in ms is served by the model timestep
whose window (`gattanet_sim.recording.time_mapping`) has the nearest centre, as Brain-Score's
CORnet wrappers do; the returned bins carry the requested `time_bin_start` / `time_bin_end`
and the `timestep` that served them. Stimuli are a `gattanet_sim.stimuli.StimulusSet` or a
Brain-Score-style table (pandas DataFrame with `stimulus_id` and `filename`, e.g. the CSV that
`StimulusSet.to_brainscore` writes), whose images are resized to the model's input.
Repeated trials are repeated presentations (coordinate `repetition`); they differ only where
the simulator's unit noise (`noise_std`) is on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import xarray as xr
from PIL import Image

from gattanet_sim.attention import QuerySource
from gattanet_sim.dynamics import GAttANet
from gattanet_sim.recording import Probe, place, read_out, time_mapping
from gattanet_sim.stimuli import StimulusSet


class ModelSubject:
    """A trained `GAttANet` behind Brain-Score's recording interface.

    Args:
        model: the network (put in eval mode here).
        timesteps: steps per presentation (default: enough to reach the read-out, at least 2).
        query: the attention condition of every presentation (see `QuerySource`).
        units: the probe (`gattanet_sim.recording.Probe` units): "all" by default.
        visual_degrees: the visual angle the model's input spans (Brain-Score's default 8).
    """

    def __init__(self, model: GAttANet, timesteps: int | None = None,
                 query: QuerySource | str | torch.Tensor | None = None, units: str | int = "all",
                 visual_degrees: float = 8.0, batch_size: int = 128, identifier: str = "gattanet_sim") -> None:
        self.model = model.eval()
        self.timesteps = timesteps or max(2, model.arrival_steps)
        self.query = query
        self.units = units
        self._visual_degrees = visual_degrees
        self.batch_size = batch_size
        self.identifier = identifier
        self.region: str | None = None
        self.time_bins: list[tuple[float, float]] = []

    def visual_degrees(self) -> float:
        return self._visual_degrees

    def start_recording(self, recording_target: str, time_bins: list[tuple[float, float]]) -> None:
        """Record area `recording_target` in the given (start, end) ms bins from now on."""
        if recording_target not in self.model.areas:
            raise ValueError(f"no region {recording_target!r}; this model has {', '.join(self.model.areas)}")
        bins = [tuple(float(v) for v in b) for b in time_bins]
        if not bins or any(len(b) != 2 or b[1] <= b[0] for b in bins):
            raise ValueError(f"time_bins must be (start, end) pairs in ms with end > start, got {time_bins}")
        self.region, self.time_bins = recording_target, bins

    def timestep_of(self, time_bin: tuple[float, float]) -> int:
        """The timestep whose window's centre is nearest the bin's centre."""
        start, width = time_mapping(self.model.mode, list(self.model.areas))[self.region]
        centres = start + width * (np.arange(self.timesteps) + 0.5)
        return int(np.abs(centres - (time_bin[0] + time_bin[1]) / 2).argmin())

    @torch.no_grad()
    def look_at(self, stimuli: StimulusSet | pd.DataFrame, number_of_trials: int = 1) -> xr.DataArray:
        """The recorded region's rates: presentation x neuroid x time_bin."""
        if self.region is None:
            raise ValueError("call start_recording(region, time_bins) before look_at")
        if number_of_trials < 1:
            raise ValueError(f"number_of_trials must be at least 1, got {number_of_trials}")
        images, meta = self._images(stimuli)
        steps = [self.timestep_of(b) for b in self.time_bins]
        side = self.model.backbone.image_size
        placement = place(Probe(units=self.units, regions=[self.region], signals=("activity",)),
                          self.model, side)
        device = self.model.backbone.mean.device
        parts = []
        for _ in range(number_of_trials):
            for i in range(0, len(images), self.batch_size):
                traj = self.model.simulate(images[i:i + self.batch_size].to(device), self.timesteps,
                                           activity=True, query=self.query)
                parts.append(read_out(traj, placement, "activity", steps))  # (b, neuroid, bins)
        coords = placement.coords(self.model.backbone.receptive_fields(), side)
        presentation = {name: ("presentation", np.tile(meta[name].to_numpy(), number_of_trials))
                        for name in meta.columns}
        presentation["repetition"] = ("presentation", np.repeat(np.arange(number_of_trials), len(meta)))
        assembly = xr.DataArray(
            np.concatenate(parts), dims=("presentation", "neuroid", "time_bin"),
            coords={**presentation, **{k: ("neuroid", v) for k, v in coords.items()},
                    "time_bin_start": ("time_bin", [b[0] for b in self.time_bins]),
                    "time_bin_end": ("time_bin", [b[1] for b in self.time_bins]),
                    "timestep": ("time_bin", steps)},
            name=self.region,
            attrs={"model_identifier": self.identifier, "region": self.region,
                   "stimulus_set_identifier": getattr(stimuli, "identifier", "")},
        )
        return assembly.set_index(time_bin=["time_bin_start", "time_bin_end"])

    def _images(self, stimuli) -> tuple[torch.Tensor, pd.DataFrame]:
        """(N, 3, H, W) images in [0, 1] at the model's size, and the metadata table."""
        side = self.model.backbone.image_size
        if isinstance(stimuli, StimulusSet):
            images, meta = stimuli.images, stimuli.meta
        elif isinstance(stimuli, pd.DataFrame):
            if not {"stimulus_id", "filename"} <= set(stimuli.columns):
                raise ValueError("a stimulus table needs the columns stimulus_id and filename")
            root = Path(stimuli.attrs.get("root", "."))
            arrays = []
            for name in stimuli["filename"]:
                path = Path(name) if Path(name).is_absolute() else root / name
                arrays.append(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255)
            images = torch.stack([torch.from_numpy(a).permute(2, 0, 1) for a in arrays])  # (N, 3, h, w)
            meta = stimuli.drop(columns=["filename"])
        else:
            raise ValueError(f"stimuli must be a StimulusSet or a DataFrame, got {type(stimuli).__name__}")
        images = images.float()
        if images.shape[-1] != side or images.shape[-2] != side:
            images = F.interpolate(images, size=(side, side), mode="bilinear", antialias=True,
                                   align_corners=False)  # (N, 3, side, side)
        return images, meta.reset_index(drop=True)


def read_stimulus_table(csv: Path | str) -> pd.DataFrame:
    """A Brain-Score stimulus CSV (stimulus_id, filename, metadata), filenames relative to it."""
    table = pd.read_csv(csv)
    table.attrs["root"] = str(Path(csv).parent)
    return table

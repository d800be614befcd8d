"""Recording: a simulation's activity over timesteps as a neuroscience-style assembly.

The layout is BrainIO's / Brain-Score's NeuroidAssembly, in netCDF:

    activity, gain, agreement   (presentation, neuroid, time_bin)
    global_query                (presentation, key_dim, time_bin)
    area_queries                (presentation, area, key_dim, time_bin)   only when asked for
    logits                      (presentation, class, time_bin)

with neuroid coordinates ``neuroid_id, region, channel, x, y, rf_size`` (receptive-field
centre and size in input pixels), presentation coordinates ``stimulus_id, label, split``
(plus whatever the stimulus set carries) and ``time_bin`` (the timestep). ``gain`` and
``agreement`` are, per neuroid, the gain that acted on it during the step and the agreement
that set that gain (1 and 0 where nothing acted). With a gain per feature (`gain_map`
"feature" or "both") a unit's gain is its position's gain times its channel's: all that
multiplied its rate. ``area_queries`` (signal "area_queries", not recorded by default) is each
area's own mean query, whose mean over areas is the bottom-up global query (`area` names the
areas the attention region reads, in hierarchy order): what the query is made of, e.g. to
leave the read-out's share out of it.

A `Probe` says what to record, like an electrode array: which areas, which units, which
signals, which timesteps. `RecordingWriter` streams chunks of presentations to a temporary
file renamed on success, so no recording needs the whole array in memory and a killed
recording never leaves a file that looks complete. `open_recording` opens one lazily.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import netCDF4
import numpy as np
import torch
import xarray as xr

from gattanet_sim.attention import QuerySource
from gattanet_sim.dynamics import GAttANet, Trajectory
from gattanet_sim.io import UsageError, check_replaceable, honour_umask

SIGNALS = ("activity", "gain", "agreement", "query", "logits")  # the default probe's
EXTRA_SIGNALS = ("area_queries",)  # recorded only when asked for
NEUROID_SIGNALS = ("activity", "gain", "agreement")
NEUROID_COORDS = ("neuroid_id", "region", "channel", "x", "y", "rf_size")
FLOAT16_BITS = 11  # float16's mantissa precision: 10 stored bits + the implicit one


class ProbeError(UsageError):
    """A probe that cannot be placed on this model."""


@dataclass
class Probe:
    """What to record.

    units: "all"; an int N (N random units per area, drawn from `seed`: an electrode
        array); "channels:0,5,9" (every position of those channels); "location:X,Y" (in every
        conv area, all channels at the position whose receptive-field centre is nearest
        image pixel (X, Y); dense areas: all units); "channel-mean" (each channel averaged
        over space).
    regions: area names (default: all). timesteps: time bins (default: all).
    """

    units: str | int = 256
    regions: list[str] | None = None
    signals: tuple[str, ...] = SIGNALS
    timesteps: list[int] | None = None
    seed: int = 0

    @classmethod
    def parse(cls, units: str = "256", signals: str = ",".join(SIGNALS), regions: str | None = None,
              timesteps: str | None = None, seed: int = 0) -> Probe:
        """A probe from command-line strings; a `ProbeError` names what is wrong."""
        units = units.strip()
        if units.isdigit():
            if int(units) < 1:
                raise ProbeError("--units N needs N >= 1")
            units = int(units)
        elif not (units in ("all", "channel-mean") or units.startswith(("channels:", "location:"))):
            raise ProbeError(f"unknown unit spec {units!r}: use all, N, channels:I,J,.., "
                             "location:X,Y or channel-mean")
        wanted = tuple(s.strip() for s in signals.split(",") if s.strip())
        unknown = [s for s in wanted if s not in SIGNALS + EXTRA_SIGNALS]
        if unknown or not wanted:
            raise ProbeError(f"unknown signal(s) {', '.join(unknown) or '(none)'}; "
                             f"choose from {', '.join(SIGNALS + EXTRA_SIGNALS)}")
        steps = None
        if timesteps:
            try:
                steps = sorted({int(t) for t in timesteps.split(",")})
            except ValueError:
                raise ProbeError(f"time bins must be whole numbers, got {timesteps!r}") from None
        names = [r.strip() for r in regions.split(",")] if regions else None
        return cls(units, names, wanted, steps, seed)


@dataclass
class Placement:
    """Where a probe's electrodes sit: per area, the channel/row/column of each neuroid."""

    regions: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    mean_over_space: bool = False

    @property
    def size(self) -> int:
        return sum(len(r["channel"]) for r in self.regions.values())

    def coords(self, fields: dict, image_size: int) -> dict[str, np.ndarray]:
        """Neuroid coordinate arrays (see NEUROID_COORDS), concatenated over areas.

        Dense areas and channel means see the whole image: centred on it, rf_size its side.
        """
        cols: dict[str, list] = {k: [] for k in NEUROID_COORDS}
        for name, r in self.regions.items():
            rf, n = fields[name], len(r["channel"])
            if r["kind"] == "dense" or self.mean_over_space:
                x = y = np.full(n, image_size / 2)
                size = np.full(n, float(image_size))
            else:
                x, y = rf.start + r["col"] * rf.jump, rf.start + r["row"] * rf.jump
                size = np.full(n, rf.size)
            cols["neuroid_id"] += [f"{name}.{c}.{i}.{j}" for c, i, j in zip(r["channel"], r["row"], r["col"])]
            cols["region"] += [name] * n
            cols["channel"] += list(r["channel"])
            cols["x"] += list(x)
            cols["y"] += list(y)
            cols["rf_size"] += list(size)
        types = {"neuroid_id": object, "region": object, "channel": np.int32}
        return {k: np.asarray(v, dtype=types.get(k, np.float32)) for k, v in cols.items()}


def place(probe: Probe, model: GAttANet, image_size: int) -> Placement:
    """Choose the recorded units of every probed area (channel, row, column of each)."""
    names = probe.regions or list(model.areas)
    unknown = [n for n in names if n not in model.areas]
    if unknown:
        raise ProbeError(f"no area {', '.join(unknown)} in this model; it has {', '.join(model.areas)}")
    if model.attention is None and set(probe.signals) & {"gain", "agreement", "query", "area_queries"}:
        raise ProbeError("this model has no attention region: record activity,logits only")
    fields = model.backbone.receptive_fields()
    rng = np.random.default_rng(probe.seed)
    sides = model.backbone.sides(image_size)
    placement = Placement(mean_over_space=probe.units == "channel-mean")
    for name, area in model.areas.items():
        side = sides[name]
        if name not in names:
            continue
        channel, row, col = np.indices((area.units, side, side)).reshape(3, -1)  # channel-major
        keep = _select(probe, name, area, channel, row, col, fields[name].start + np.arange(side)
                       * fields[name].jump, rng, image_size)
        placement.regions[name] = {"channel": channel[keep], "row": row[keep], "col": col[keep],
                                   "kind": area.kind}
    return placement


def _select(probe: Probe, name: str, area, channel: np.ndarray, row: np.ndarray, col: np.ndarray,
            centres: np.ndarray, rng: np.random.Generator, image_size: int | None = None) -> np.ndarray:
    """Boolean mask of an area's recorded units."""
    units = probe.units
    if isinstance(units, int):
        keep = np.zeros(len(channel), bool)
        keep[rng.choice(len(channel), min(units, len(channel)), replace=False)] = True
        return keep
    if units == "channel-mean":
        return (row == 0) & (col == 0)
    if units.startswith("channels:"):
        wanted = _ints(units[9:], "channels")
        bad = [c for c in wanted if not 0 <= c < area.units]
        if bad:
            raise ProbeError(f"channel {bad[0]} does not exist in {name} ({area.units} channels)")
        return np.isin(channel, wanted)
    if units.startswith("location:") and area.kind == "conv":
        xy = _ints(units[9:], "location")
        if len(xy) != 2:
            raise ProbeError(f"location needs X,Y, got {units[9:]!r}")
        if image_size is not None and not all(0 <= v < image_size for v in xy):
            raise ProbeError(f"location {xy[0]},{xy[1]} lies outside the {image_size}x{image_size}-pixel "
                             f"image (pixels 0 to {image_size - 1})")
        return (row == np.abs(centres - xy[1]).argmin()) & (col == np.abs(centres - xy[0]).argmin())
    return np.ones(len(channel), bool)


def _ints(text: str, what: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise ProbeError(f"{what} takes comma-separated whole numbers, got {text!r}") from None


def read_out(traj: Trajectory, placement: Placement, signal: str, steps: list[int]) -> np.ndarray:
    """One neuroid signal of a trajectory at the probe's units: (B, neuroid, time_bin).

    Units are gathered before time bins are chosen, so the full activity is never copied.
    """
    parts = []
    batch = traj.logits.shape[1]
    for name, r in placement.regions.items():
        n = len(r["channel"])
        channel, row, col = (torch.as_tensor(r[k]) for k in ("channel", "row", "col"))
        if signal != "activity" and name not in traj.gain:  # an area that receives no gain
            values = torch.full((traj.timesteps, batch, n), 1.0 if signal == "gain" else 0.0)
        elif signal == "activity":
            source = traj.activity[name]  # (T, B, C, H, W) | (T, B, N)
            if r["kind"] == "dense":
                values = source[..., channel]  # (T, B, n)
            elif placement.mean_over_space:
                values = source.mean(dim=(-2, -1))[..., channel]  # (T, B, n)
            else:
                values = source[:, :, channel, row, col]  # (T, B, n)
        else:
            source = (traj.gain if signal == "gain" else traj.agreement)[name]  # (T, B, H, W) | (T, B, N)
            if r["kind"] == "dense":
                values = source[..., channel]  # (T, B, n)
            elif placement.mean_over_space:
                values = source.mean(dim=(-2, -1)).unsqueeze(-1).expand(-1, -1, n)  # (T, B, n)
            else:
                values = source[:, :, row, col]  # (T, B, n): the gain at each unit's position
            if signal == "gain" and name in traj.feature_gain:  # times its channel's gain
                values = values * traj.feature_gain[name][..., channel]  # (T, B, n)
        if list(steps) != list(range(traj.timesteps)):
            values = values[torch.as_tensor(steps)]  # (T', B, n)
        parts.append(values.permute(1, 2, 0).float().cpu())  # (B, n, T')
    return torch.cat(parts, dim=1).numpy()


# Milliseconds of each timestep, per area, so that a recording lines up with physiology (as
# Brain-Score's CORnet wrappers map their timesteps: CORnet-S onsets V1 50, V2 70, V4 90 ms).
# `sweep`: area i (0 = the first) answers 50 + 20 i ms after stimulus onset and every sweep
# lasts 50 ms, so step t of area i is [50 + 20 i + 50 t, 100 + 20 i + 50 t). `cascade`: a
# step is one area-to-area transmission of 20 ms and area i first fires at step i, so step t
# of every area is [50 + 20 t, 70 + 20 t): area i's first bin starts at 50 + 20 i ms, as in
# a sweep. Change the constants here (they are written into every recording's attributes).
ONSET_MS, AREA_DELAY_MS, SWEEP_MS, CASCADE_MS = 50.0, 20.0, 50.0, 20.0


def time_mapping(mode: str, areas: list[str]) -> dict[str, tuple[float, float]]:
    """Area -> (start of step 0 in ms, duration of a step in ms) for the simulator's mode."""
    if mode == "cascade":
        return {name: (ONSET_MS, CASCADE_MS) for name in areas}
    return {name: (ONSET_MS + AREA_DELAY_MS * i, SWEEP_MS) for i, name in enumerate(areas)}


def time_bin_ms(mapping: dict[str, tuple[float, float]], regions: np.ndarray,
                steps: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """time_bin_start and time_bin_end (ms) of every neuroid and step: two (neuroid, time_bin)."""
    start = np.array([mapping[r][0] for r in regions])[:, None]  # (neuroid, 1)
    width = np.array([mapping[r][1] for r in regions])[:, None]
    t = np.asarray(steps, dtype=float)[None, :]  # (1, time_bin)
    return start + width * t, start + width * (t + 1)


def coordinate_kinds(names: list[str] | dict[str, str]) -> dict[str, str]:
    """Presentation coordinates -> kind ("str", "int" or "float"); a plain list gives the
    usual ones their kinds and every other coordinate "float"."""
    if isinstance(names, dict):
        return dict(names)
    known = {"stimulus_id": "str", "label": "int", "split": "str"}
    return {name: known.get(name, "float") for name in names}


NC_TYPES = {"str": str, "int": "i8", "float": "f8"}
VARIABLES = {"query": "global_query"}  # a signal's variable in the file, where the names differ


def remove_stale_partials(path: Path) -> list[Path]:
    """Delete the temporary files of earlier recordings in `path`'s directory whose process is
    gone (a killed recording leaves one, hidden, as large as the recording, whatever its name):
    `.NAME.<pid>.<random>.partial`."""
    removed = []
    for partial in path.parent.glob(".*.partial"):
        parts = partial.name[1:-len(".partial")].rsplit(".", 2)  # NAME, pid, mkstemp's random part
        pid = parts[1] if len(parts) == 3 else ""
        if not pid.isdigit() or _alive(int(pid)):
            continue
        partial.unlink(missing_ok=True)
        removed.append(partial)
    return removed


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


class RecordingWriter:
    """Streams presentations into a netCDF file, appended chunk by chunk.

    Writes to a temporary file beside `path` and renames it onto `path` in `close()`, after
    which the file carries the global attribute ``complete = 1``; `abort()` (or an
    exception inside a ``with`` block) deletes the temporary file. `presentation_coords`
    names the presentation coordinates (a dict gives each its kind: "str", "int", "float");
    `time_ms`, if given, is (time_bin_start, time_bin_end), each (neuroid, time_bin), in ms.
    `areas` names the attention region's areas in the order area_queries are written, the
    hierarchy's (needed for the "area_queries" signal).
    """

    def __init__(self, path: Path | str, neuroids: dict[str, np.ndarray], time_bins: list[int],
                 signals: tuple[str, ...], key_dim: int, classes: list[str],
                 presentation_coords: list[str] | dict[str, str], attrs: dict, float16: bool = False,
                 time_ms: tuple[np.ndarray, np.ndarray] | None = None,
                 areas: Sequence[str] = (), force: bool = False) -> None:
        if "area_queries" in signals and not areas:
            raise ProbeError("the area_queries signal needs the attention region's areas: "
                             "record it with gattanet_sim.experiment")
        self.path = Path(path)
        check_replaceable(self.path, "recording", force)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(self.path)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.{os.getpid()}.", suffix=".partial",
                                   dir=self.path.parent)
        os.close(fd)
        honour_umask(tmp)
        self.tmp = Path(tmp)
        self.signals = signals
        self.areas = list(areas)
        self.kinds = {"stimulus_id": "str", "label": "int", **coordinate_kinds(presentation_coords)}
        self.n = 0
        nc = self.nc = netCDF4.Dataset(self.tmp, "w", format="NETCDF4")
        nc.createDimension("presentation", None)
        nc.createDimension("time_bin", len(time_bins))
        nc.createDimension("class", len(classes))
        nc.createVariable("time_bin", "i4", ("time_bin",))[:] = np.asarray(time_bins)
        neuroid_coords = list(NEUROID_COORDS)
        has_neuroids = bool(set(signals) & set(NEUROID_SIGNALS))  # else no neuroid dimension at all
        if has_neuroids:
            nc.createDimension("neuroid", len(neuroids["neuroid_id"]))
            for name, values in neuroids.items():
                var = nc.createVariable(name, str if values.dtype == object else values.dtype, ("neuroid",))
                var[:] = values
        if time_ms is not None and has_neuroids:
            for name, values in zip(("time_bin_start", "time_bin_end"), time_ms):
                var = nc.createVariable(name, "f4", ("neuroid", "time_bin"))
                var[:] = values
                var.setncattr("units", "ms")
            neuroid_coords += ["time_bin_start", "time_bin_end"]
        if {"query", "area_queries"} & set(signals):
            nc.createDimension("key_dim", key_dim)
            nc.createVariable("key_dim", "i4", ("key_dim",))[:] = np.arange(key_dim)
        if "area_queries" in signals:
            nc.createDimension("area", len(areas))
            nc.createVariable("area", str, ("area",))[:] = np.asarray(list(areas), dtype=object)
        cls = nc.createVariable("class", str, ("class",))
        cls[:] = np.asarray(classes, dtype=object)
        for name, kind in self.kinds.items():
            nc.createVariable(name, NC_TYPES[kind], ("presentation",))
        pres = " ".join(self.kinds)
        quantize = {"significant_digits": FLOAT16_BITS, "quantize_mode": "BitRound",
                    "zlib": True, "complevel": 1} if float16 else {}
        dims = {"activity": ("neuroid",), "gain": ("neuroid",), "agreement": ("neuroid",),
                "query": ("key_dim",), "logits": ("class",), "area_queries": ("area", "key_dim")}
        for signal in signals:
            widths = tuple(len(nc.dimensions[d]) for d in dims[signal])
            width = int(np.prod(widths))
            var = nc.createVariable(VARIABLES.get(signal, signal), "f4",
                                    ("presentation", *dims[signal], "time_bin"),
                                    chunksizes=(max(1, min(64, 2**22 // max(1, width * len(time_bins)))),
                                                *widths, len(time_bins)), **quantize)
            extra_coords = " ".join(neuroid_coords) if dims[signal] == ("neuroid",) else ""
            var.setncattr("coordinates", f"{pres} {extra_coords}".strip())
        nc.setncatts({k: str(v) for k, v in attrs.items()})
        nc.setncattr("complete", 0)

    def append(self, signals: dict[str, np.ndarray], coords: dict[str, Sequence]) -> None:
        """Add a chunk of presentations: each signal (B, width, time_bin), area_queries
        (B, area, key_dim, time_bin); `coords` holds every presentation coordinate the writer
        was made with (B values each)."""
        missing = [name for name in self.kinds if name not in coords]
        if missing:
            raise ValueError(f"presentation coordinate(s) {', '.join(missing)} missing from a chunk")
        b = len(coords["stimulus_id"])
        sl = slice(self.n, self.n + b)
        for name, kind in self.kinds.items():
            values = coords[name]
            if kind == "str":
                self.nc[name][sl] = np.asarray([str(v) for v in values], dtype=object)
            else:
                self.nc[name][sl] = np.asarray(values, dtype=np.int64 if kind == "int" else np.float64)
        for signal in self.signals:
            self.nc[VARIABLES.get(signal, signal)][sl] = signals[signal]
        self.n += b

    def close(self) -> Path:
        try:
            self.nc.setncattr("complete", 1)
            self.nc.setncattr("presentations", self.n)
            self.nc.close()
            os.replace(self.tmp, self.path)
        finally:
            self.tmp.unlink(missing_ok=True)
        return self.path

    def abort(self) -> None:
        try:
            self.nc.close()
        finally:
            self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def trajectory_signals(traj: Trajectory, placement: Placement, signals: tuple[str, ...],
                       steps: list[int], areas: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Every recorded signal of one batch, as (B, width, time_bin) arrays (area_queries:
    (B, area, d, time_bin), areas in the order of `areas`, default `traj.area_queries`'s)."""
    out = {}
    for signal in signals:
        if signal in NEUROID_SIGNALS:
            out[signal] = read_out(traj, placement, signal, steps)
        elif signal == "query":
            out[signal] = traj.query[steps].permute(1, 2, 0).float().cpu().numpy()  # (B, d, T')
        elif signal == "area_queries":
            order = list(areas) or list(traj.area_queries)
            stacked = torch.stack([traj.area_queries[a] for a in order], dim=2)  # (T, B, area, d)
            out[signal] = stacked[steps].permute(1, 2, 3, 0).float().cpu().numpy()  # (B, area, d, T')
        else:
            out[signal] = traj.logits[steps].permute(1, 2, 0).float().cpu().numpy()  # (B, K, T')
    return out


def recording_attrs(model: GAttANet, **extra) -> dict:
    """Global attributes: enough to re-create the recording."""
    import json

    from gattanet_sim.io import git_commit, package_versions

    return {"model": model.config.get("name", ""), "model_config": json.dumps(model.config),
            "mode": model.mode, "versions": json.dumps(package_versions()),
            "git_commit": git_commit(), "created": datetime.now(timezone.utc).isoformat(), **extra}


@dataclass
class Presentations:
    """A batch to show the model: images (B, C, H, W) in [0, 1], their presentation
    coordinates (B values each; stimulus_id and label at least) and the attention condition."""

    images: torch.Tensor
    coords: dict[str, Sequence]
    query: QuerySource | None = None


def record(model: GAttANet, stream: Iterable[Presentations], writer: RecordingWriter,
           placement: Placement, timesteps: int, steps: list[int]) -> int:
    """Simulate every batch of `stream` and append what the probe sees; returns presentations."""
    model.eval()
    with torch.no_grad():
        for batch in stream:
            traj = model.simulate(batch.images, timesteps, activity="activity" in writer.signals,
                                  query=batch.query)
            signals = trajectory_signals(traj, placement, writer.signals, steps, writer.areas)
            for name, values in signals.items():  # never a recording that looks complete and is not
                if not np.isfinite(values).all():
                    first = batch.coords["stimulus_id"][int(np.flatnonzero(~np.isfinite(values))[0]
                                                            // (values.size // len(values)))]
                    raise NonFiniteRecording(
                        f"the simulation gave NaN or infinite {name} (first at stimulus {first}); "
                        "nothing was written: check the templates, the checkpoint and --unit-noise")
            writer.append(signals, batch.coords)
    return writer.n


class NonFiniteRecording(ValueError):
    """A simulation whose recorded signals are NaN or infinite (a bad template, a diverged model)."""


class IncompleteRecording(ValueError):
    """A recording that was not closed: killed or failed half way."""


def part_path(path: Path | str, rank: int, world: int) -> Path:
    """The file of process `rank`'s share of a recording made by `world` processes."""
    path = Path(path)
    return path.with_name(f"{path.stem}.rank{rank}-of-{world}{path.suffix}")


def _open_parts(path: Path) -> xr.Dataset | None:
    """A recording written in parts by several processes, joined along presentation (loaded
    into memory: a join of lazily read netCDF files would need dask); None if there are none."""
    parts = sorted(path.parent.glob(f"{path.stem}.rank*-of-*{path.suffix}"))
    if not parts:
        return None
    world = int(parts[0].stem.rsplit("-of-", 1)[1])
    expected = [part_path(path, r, world) for r in range(world)]
    missing = [p.name for p in expected if not p.exists()]
    if missing:
        raise IncompleteRecording(f"{path} is incomplete: part(s) {', '.join(missing)} are missing")
    opened = [open_recording(p) for p in expected]
    try:
        joined = xr.concat([ds.load() for ds in opened], dim="presentation", combine_attrs="drop")
    finally:
        for ds in opened:
            ds.close()
    joined.attrs = {k: v for k, v in opened[0].attrs.items() if k != "rank"}
    return joined


def refuse_non_finite(ds: xr.Dataset, path: Path | str, chunk: int = 4096) -> None:
    """Raise `NonFiniteRecording`, naming the file and variable, if any recorded value is NaN or
    infinite: an analysis must never turn such values into a table that looks like a result.
    Reads the floating-point variables `chunk` presentations at a time (bounded memory)."""
    for name, var in ds.data_vars.items():
        if not np.issubdtype(var.dtype, np.floating) or "presentation" not in var.dims:
            continue
        for start in range(0, ds.sizes["presentation"], chunk):
            values = var.isel(presentation=slice(start, start + chunk)).values
            if not np.isfinite(values).all():
                raise NonFiniteRecording(f"{path}: the recorded {name} holds NaN or infinite values; "
                                         "re-record it (nothing was analysed)")


def open_recording(path: Path | str, check_finite: bool = True) -> xr.Dataset:
    """Open a recording lazily, with BrainIO-style indexes on neuroid and presentation.

    ``ds.activity.sel(region="V1")`` selects an area; ``.sel(time_bin=3)`` a timestep.
    A recording made by several processes (NAME.rank<r>-of-<N>.nc) opens as one. With
    `check_finite` (default) a recording holding NaN or infinite values is refused
    (`refuse_non_finite`; the experiment never writes one, but a file can be edited or made
    elsewhere): this reads every value once.
    """
    path = Path(path)
    if not path.exists():
        joined = _open_parts(path)
        if joined is not None:
            if check_finite:
                refuse_non_finite(joined, path)
            return joined
        raise FileNotFoundError(f"no such recording: {path}")
    newer = [part for part in path.parent.glob(f"{glob_escape(path.stem)}.rank*-of-*{path.suffix}")
             if part.stat().st_mtime > path.stat().st_mtime]
    if newer:  # a later run by several processes: which one is meant?
        raise ValueError(f"{path} is older than the parts {newer[0].name}... written by several processes "
                         "since: remove the one you do not mean")
    try:
        ds = xr.open_dataset(path)
    except (OSError, ValueError) as err:
        reason = str(err).split(". ")[0]  # xarray's hint to install engines would not help
        raise ValueError(f"{path} is not a readable netCDF recording ({reason})") from None
    if int(ds.attrs.get("complete", 0)) != 1:
        ds.close()
        raise IncompleteRecording(f"{path} is incomplete: the recording did not finish")
    missing = [c for c in ("stimulus_id", "label") if c not in ds.coords]
    if "neuroid" in ds.dims:
        missing += [c for c in NEUROID_COORDS if c not in ds.coords]
    if missing:
        ds.close()
        raise ValueError(f"{path} lacks coordinate(s) {', '.join(missing)}")
    if check_finite:
        try:
            refuse_non_finite(ds, path)
        except NonFiniteRecording:
            ds.close()
            raise
    if "neuroid" in ds.dims:
        ds = ds.set_index(neuroid=list(NEUROID_COORDS))
    return ds

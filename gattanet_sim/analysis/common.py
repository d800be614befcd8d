"""What every analysis needs: one-line refusals of unfit assemblies, confidence intervals."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping

import numpy as np
import xarray as xr
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 2000


class AnalysisError(ValueError):
    """An assembly that lacks what an analysis needs; the message names what is missing."""


def require(ds: xr.Dataset, analysis: str, variables: tuple[str, ...] = (),
            coords: tuple[str, ...] = ()) -> None:
    """Refuse, in one line, an assembly without the variables or coordinates an analysis reads."""
    missing = [f"variable {v!r}" for v in variables if v not in ds.data_vars]
    missing += [f"coordinate {c!r}" for c in coords if c not in ds.coords]
    if missing:
        raise AnalysisError(f"{analysis} needs {', '.join(missing)} in the recording")


def parse_selection(text: str) -> dict[str, str]:
    """A command line's selection: "cue=valid" or "condition=template,attended=45" -> a dict."""
    parts = [part.split("=", 1) for part in text.split(",")]
    if not text or any(len(p) != 2 or not p[0] for p in parts):
        raise argparse.ArgumentTypeError(f"expected COORD=VALUE[,COORD=VALUE], got {text!r}")
    return dict(parts)


def describe(where: Mapping[str, object]) -> str:
    """{"cue": "valid"} -> "cue=valid" (for titles)."""
    return ", ".join(f"{k}={v}" for k, v in where.items())


def typed_selection(data: xr.DataArray | xr.Dataset, where: Mapping[str, object]) -> dict[str, object]:
    """Selection values given as text (a command line's) in the coordinate's own type."""
    typed = {}
    for name, value in where.items():
        kind = data[name].dtype.kind if name in data.coords else "O"
        if isinstance(value, str) and kind in "iuf":
            try:
                value = float(value) if kind == "f" else int(value)
            except ValueError:
                raise AnalysisError(f"coordinate {name!r} holds numbers, not {value!r}") from None
        typed[name] = value
    return typed


def select(data: xr.DataArray, **where) -> xr.DataArray:
    """Presentations whose coordinates equal the given values (a non-index `sel`)."""
    mask = np.ones(data.sizes["presentation"], bool)
    for name, value in where.items():
        mask &= data[name].values == value
    return data.isel(presentation=np.flatnonzero(mask))


def last_time_bin(data: xr.DataArray) -> int:
    return int(data["time_bin"].values[-1])


def bootstrap_ci(samples: tuple[np.ndarray, ...], statistic: Callable, seed: int = 0,
                 paired: bool = True) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of `statistic(*samples)` (resampling rows together
    when paired), seeded; (nan, nan) when there are too few samples."""
    if min(len(s) for s in samples) < 2:
        return float("nan"), float("nan")
    result = stats.bootstrap(samples, statistic, paired=paired, vectorized=False,
                             n_resamples=RESAMPLES, confidence_level=CONFIDENCE, method="percentile",
                             random_state=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def proportion_ci(successes: int, n: int) -> tuple[float, float]:
    """Wilson 95% interval of a proportion (accuracy over images)."""
    if n == 0:
        return float("nan"), float("nan")
    ci = stats.binomtest(successes, n).proportion_ci(CONFIDENCE, method="wilson")
    return float(ci.low), float(ci.high)

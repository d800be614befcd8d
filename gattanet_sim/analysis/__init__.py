"""Analyses of recorded activity: each takes an xarray assembly (never a live model) and
returns a tidy pandas DataFrame, with 95% confidence intervals on every number it reports."""

from gattanet_sim.analysis.common import AnalysisError

__all__ = ["AnalysisError"]

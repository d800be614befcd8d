"""Writing an analysis's table and figure: CSV, PNG and SVG, each through a temporary file."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from gattanet_sim.io import atomic_path  # noqa: E402


def write_table(table: pd.DataFrame, path: Path) -> Path:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    return path


def write_figure(figure: plt.Figure, stem: Path) -> list[Path]:
    """stem.png and stem.svg."""
    paths = []
    for suffix in (".png", ".svg"):
        path = stem.with_suffix(suffix)
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format=suffix[1:], dpi=130, bbox_inches="tight")
        paths.append(path)
    plt.close(figure)
    return paths

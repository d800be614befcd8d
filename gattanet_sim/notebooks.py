"""What the walkthrough notebooks share: a small-mode figure mark.

With `GATTANET_SMALL=1` a notebook runs on a tiny model trained in seconds (what the test suite
executes); its figures show only that the plumbing works, and each one must say so on it, or a
reader would take a flat, near-chance curve for a result.
"""

from __future__ import annotations

MARK = "small model: plumbing only"


def stamp_open_figures() -> None:
    """Write `MARK` across every open matplotlib figure that does not carry it yet."""
    import matplotlib.pyplot as plt

    for number in plt.get_fignums():
        figure = plt.figure(number)
        if not any(text.get_text() == MARK for text in figure.texts):
            figure.text(0.5, 0.5, MARK, ha="center", va="center", fontsize=26, color="crimson",
                        alpha=0.35, rotation=15, zorder=10)


def mark_small_figures(small: bool) -> None:
    """In small mode, stamp every figure a cell draws before the notebook shows it: the stamp
    runs after each cell, registered before the inline backend's own display step."""
    if not small:
        return
    from IPython import get_ipython

    shell = get_ipython()
    if shell is not None:
        shell.events.register("post_execute", stamp_open_figures)

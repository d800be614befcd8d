"""Cued detection: sensitivity d' and criterion c of "is a <question> present?" per cue type.

    python analyses/detection.py RECORDING.nc --out results/detection

The recording (`python -m gattanet_sim.experiment RUN --paradigm cued_detection ...`) holds
logits (presentation, class, time_bin) and, per presentation, question, present (0/1), cue
(its type: valid, neutral, invalid, shuffled, negated, none), attended (the class it names),
display (array or grey) and stimulus_id (each display once under every cue type). The model answers
"yes" when the question class's logit is > 0.

Writes detection.csv (per display, cue type and time bin: hit and false-alarm rates with
Wilson 95% CIs; d' and c with bootstrap 95% CIs over displays; the paired difference to the
--reference cue type with its bootstrap 95% CI) and detection.png/.svg (last time bin).
A cue that raises d' helps the model see; one that only lowers c makes it say "yes" more.
"""

from __future__ import annotations

import sys

import matplotlib.pyplot as plt
import numpy as np

from gattanet_sim.analysis.detection import detection_table
from gattanet_sim.analysis.output import all_or_nothing, write_figure, write_table
from gattanet_sim.cli import analysis_parser, main_guard
from gattanet_sim.recording import open_recording


def _points(ax, table, column: str, color: str, label: str | None = None, shift: float = 0.0) -> None:
    """Values with 95% CI whiskers, one per cue type."""
    x = np.arange(len(table)) + shift
    value = table[column].to_numpy(float)
    low, high = table[f"{column}_ci_low"].to_numpy(float), table[f"{column}_ci_high"].to_numpy(float)
    ax.errorbar(x, value, yerr=[value - low, high - value], fmt="o", color=color, capsize=4, label=label)
    ax.set_xticks(np.arange(len(table)), table.cue_type, rotation=20)


@main_guard
@all_or_nothing
def main(argv: list[str] | None = None) -> int:
    p = analysis_parser("detection", __doc__)
    p.add_argument("--reference", default="neutral", help="cue type differences are taken to")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = p.parse_args(argv)
    ds = open_recording(args.recording)
    table = detection_table(ds, reference=args.reference, seed=args.seed)
    write_table(table, args.out / "detection.csv")
    last = table[table.time_bin == table.time_bin.max()]
    array = last[last.display == "array"].reset_index(drop=True)
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for ax, column, title in ((axes[0], "d_prime", "Sensitivity d'"), (axes[1], "criterion", "Criterion c")):
        _points(ax, array, column, "#4c72b0")
        ax.axhline(0, color="grey", linestyle=":")
        ax.set(ylabel=f"{column} (95% CI)", title=f"{title}, search arrays, time bin {last.time_bin.max()}")
    for k, (display, color) in enumerate((("array", "#c44e52"), ("grey", "#8c8c8c"))):
        part = last[last.display == display].set_index("cue_type").reindex(array.cue_type).reset_index()
        if part.fa_rate.notna().any():
            _points(axes[2], part, "fa_rate", color, f"{display} display", shift=0.15 * (k - 0.5))
    axes[2].set(ylabel="false-alarm rate (95% CI)", ylim=(0, 1), title="False alarms (grey: identical images, so\n"
                 "its CI counts repeats of each question, not independent draws)")
    axes[2].legend(fontsize=8)
    for ax in axes:
        ax.title.set_fontsize(10)
    fig.tight_layout()
    write_figure(fig, args.out / "detection")
    print(table.round(4).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

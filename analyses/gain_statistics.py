"""What the attention gain does to each area: its distribution per region and timestep.

    python -m gattanet_sim.record RUN_DIR --split val --limit 1000 --signals gain \\
        --out data/recordings/NAME.nc
    python analyses/gain_statistics.py data/recordings/NAME.nc [--csv OUT.csv]

Reads a recording only (never a model). A mean gain far from 1 means attention rescales the
whole area, which moves the statistics the next batch norm sees; the sd is the spatial /
unit-wise modulation proper; a negative gain flips the sign of a unit's rate; `change`, the
gain's mean absolute change since the previous step, goes to 0 if the dynamics settle. With
the query recorded (--signals gain,query) it also prints the global query's relative change
from step to step.
"""

from __future__ import annotations

import sys
from pathlib import Path

from gattanet_sim.analysis.gain_statistics import gain_statistics, query_change
from gattanet_sim.cli import UsageError, analysis_parser, main_guard
from gattanet_sim.io import atomic_path, check_replaceable
from gattanet_sim.recording import open_recording


@main_guard
def main(argv: list[str] | None = None) -> int:
    p = analysis_parser("gain_statistics", __doc__, outputs=None)
    p.add_argument("--csv", type=Path, default=None, help="also write the table here")
    args = p.parse_args(argv)
    check_replaceable(args.csv, "table")  # before anything is computed or printed
    ds = open_recording(args.recording)
    if "gain" not in ds:
        raise UsageError(f"{args.recording} has no gain recorded (record with --signals gain)")
    if "region" not in ds["gain"].coords:
        raise UsageError(f"{args.recording} lacks the neuroid coordinate 'region'")
    table = gain_statistics(ds["gain"])
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if "global_query" in ds:
        print("\nthe global query over time:")
        print(query_change(ds["global_query"]).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.csv:
        with atomic_path(args.csv) as tmp:
            table.to_csv(tmp, index=False, float_format="%.4f")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The global query's space (the paper's Fig. 2b) and representational geometry per condition.

    python -m gattanet_sim.experiment RUN_DIR --paradigm noisy --n 5000 --sigmas 0 \\
        --conditions bottom-up,off --units 64 --out data/recordings/clean.nc
    python analyses/query_space.py data/recordings/clean.nc --out results/query_space

Writes query_space.csv (cross-validated logistic-regression accuracy of the query: all
classes, and animals vs vehicles for CIFAR-10; Wilson 95% CIs over images; chance; two
controls: shuffled_accuracy with shuffled_ci_low/high, the same classifier on labels permuted
--permutations times, and rows signal=query_without_readout, the mean of every area's query
but the read-out's, where the recording has area_queries: record it with
--signals activity,gain,agreement,logits,query,area_queries; else column note says so),
query_embedding.csv (2-D PCA, or --method umap, of every image's query), class_rdms.csv and
representational_geometry.csv (rsatoolbox RDMs of the class means of the query and of each
area's activity per condition, and their cosine / tau-a similarity between conditions with
stratified bootstrap 95% CIs), and query_space.png/.svg. The noisy paradigm takes the first
--n images of the split: a class-sorted split needs all of it to hold every class.
Biology: category is linearly decodable from the signals that bias visual cortex.
"""

from __future__ import annotations

import sys

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from gattanet_sim.analysis.common import AnalysisError
from gattanet_sim.analysis.output import all_or_nothing, error_bars, write_figure, write_table
from gattanet_sim.analysis.query_space import (
    SHUFFLES,
    class_rdms,
    query_embedding,
    query_space,
    representational_geometry,
)
from gattanet_sim.cli import analysis_parser, main_guard, positive_int
from gattanet_sim.recording import open_recording


@main_guard
@all_or_nothing
def main(argv: list[str] | None = None) -> int:
    p = analysis_parser("query_space", __doc__)
    p.add_argument("--time-bin", type=int, default=0, help="time bin of the query (default 0)")
    p.add_argument("--condition", default="bottom-up", help="condition of the query (default bottom-up)")
    p.add_argument("--method", choices=("pca", "umap"), default="pca", help="2-D embedding")
    p.add_argument("--geometry-time-bin", type=int, default=None,
                   help="time bin of the RDMs (default: the last, where gains have acted)")
    p.add_argument("--resamples", type=positive_int, default=1000, help="bootstrap resamples of the RDMs")
    p.add_argument("--seed", type=int, default=0, help="cross-validation, permutation and bootstrap seed")
    p.add_argument("--permutations", type=positive_int, default=SHUFFLES,
                   help=f"label permutations of the shuffled-label control (default {SHUFFLES})")
    args = p.parse_args(argv)
    ds = open_recording(args.recording)
    table = query_space(ds, args.time_bin, args.condition, seed=args.seed, permutations=args.permutations)
    if (table.note != "").any():
        print(f"note: {table.note[table.note != ''].iloc[0]}", file=sys.stderr)
    embedding = query_embedding(ds, args.time_bin, args.condition, args.method, seed=args.seed)
    write_table(table, args.out / "query_space.csv")
    write_table(embedding, args.out / "query_embedding.csv")
    try:
        geometry = representational_geometry(ds, args.geometry_time_bin, resamples=args.resamples,
                                             seed=args.seed)
        rdms = class_rdms(ds, args.geometry_time_bin)
    except AnalysisError as err:  # one condition only: the query space still stands
        print(f"note: no representational geometry ({err})", file=sys.stderr)
        geometry = rdms = None
    if geometry is not None:
        write_table(geometry, args.out / "representational_geometry.csv")
        write_table(rdms, args.out / "class_rdms.csv")

    panels = 1 if geometry is None else 3
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.6), squeeze=False,
                             gridspec_kw={"width_ratios": [1.25] + [1] * (panels - 1)})
    ax = axes[0, 0]
    classes = list(dict.fromkeys(np.asarray(ds["class"].values).astype(str))) if "class" in ds.coords \
        else sorted(embedding["class"].unique())
    markers = {g: m for g, m in zip(sorted(embedding.group.unique()), ["o", "^", "s", "D", "v"])}
    sns.scatterplot(embedding, x="dim1", y="dim2", hue="class", hue_order=classes, style="group",
                    markers=markers, palette="tab10", s=10, alpha=0.6, linewidth=0, ax=ax)
    ax.legend(fontsize=7, markerscale=1.5, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    names = {"query": "", "query_without_readout": " w/o read-out"}
    lines = [f"{r.task}{names.get(r.signal, ' ' + r.signal)}: {r.accuracy:.2f} [{r.ci_low:.2f}, "
             f"{r.ci_high:.2f}], shuffled {r.shuffled_accuracy:.2f} [{r.shuffled_ci_low:.2f}, "
             f"{r.shuffled_ci_high:.2f}], chance {r.chance:.2f}" for r in table.itertuples()]
    if args.method == "pca":
        ax.set(xlabel=f"PC1 ({embedding.explained_1.iloc[0]:.0%} var.)",
               ylabel=f"PC2 ({embedding.explained_2.iloc[0]:.0%} var.)")
    ax.set_title(f"Global query, {args.condition}, t={args.time_bin} ({len(embedding)} images)\n"
                 "5-fold logistic decoding:\n" + "\n".join(lines), fontsize=7)
    if geometry is not None:
        ax = axes[0, 1]
        t = int(rdms.time_bin.iloc[0])
        first = rdms[(rdms.signal == "query") & (rdms.condition == rdms.condition.iloc[0])]
        names = list(dict.fromkeys(list(first.class_a) + list(first.class_b)))
        matrix = np.zeros((len(names), len(names)))
        for a, b, d in zip(first.class_a, first.class_b, first.distance):
            i, j = names.index(a), names.index(b)
            matrix[i, j] = matrix[j, i] = d
        sns.heatmap(matrix, xticklabels=names, yticklabels=names, cmap="viridis", square=True, ax=ax,
                    cbar_kws={"label": "1 - r of class means", "shrink": 0.8})
        ax.tick_params(labelsize=7)
        ax.set_title(f"Query RDM, {rdms.condition.iloc[0]}, t={t}", fontsize=9)
        ax = axes[0, 2]
        pair = geometry.condition_a + " vs " + geometry.condition_b
        signals = list(dict.fromkeys(geometry.signal))
        for k, (method, part) in enumerate(geometry.groupby("method", sort=False)):
            for m, (name, sub) in enumerate(part.groupby(pair.loc[part.index], sort=False)):
                x = np.array([signals.index(s) for s in sub.signal]) + 0.15 * (2 * k - 1) + 0.05 * m
                ax.errorbar(x, sub.similarity, yerr=error_bars(sub.similarity, sub.ci_low, sub.ci_high),
                            fmt="o", capsize=3, label=f"{method}, {name}")
        ax.set_xticks(range(len(signals)), signals)
        ax.axhline(1, color="grey", linestyle=":", linewidth=1)
        ax.set(ylabel="RDM similarity between conditions (95% CI)")
        ax.set_title(f"Representational geometry kept under attention, t={t}", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    write_figure(fig, args.out / "query_space")
    print(table.round(4).to_string(index=False))
    if geometry is not None:
        print()
        print(geometry.round(4).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

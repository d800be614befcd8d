"""The global query's space (VanRullen & Alamia 2021, Fig. 2b) and representational geometry.

The paper embeds the global query of many images in 2-D and finds animal and vehicle classes
apart: the one query the attention region pools already carries the image's category, as
category is decodable from the prefrontal and inferotemporal signals that bias visual cortex
in the brain. Here:

`query_embedding`: the query of each image (one condition, one time bin) in 2-D, by PCA of
    the centred queries (UMAP with method="umap", only where umap-learn is installed).
`query_space`: how well a linear read-out of the query separates the classes and the groups
    (CIFAR-10: vehicles = airplane, automobile, ship, truck; animals the other six).
    Cross-validated accuracy of a logistic regression on the standardised query: 5 folds,
    stratified by class, shuffled with `seed`, grouped by stimulus_id so repeated trials of an
    image never sit on both sides. Every image is predicted once, by the model that did not
    see it; accuracy is the fraction right, with a Wilson 95% CI over images. Chance is the
    share of the most frequent class or group (what always guessing it would score).
    Two controls. Shuffled labels: the same classifier, the labels permuted over stimuli
    (`permutations` seeded draws); the mean accuracy and the central 95% of the draws are
    the classifier's own chance range, which the real accuracy must leave. The query
    without the read-out: the bottom-up query is the mean of every area's query, the class
    layer's among them, so it holds a linear projection of the logits and would separate
    the classes even if nothing else in it did; the mean of the other areas' queries
    (variable `area_queries`, recorded with `--signals ...,area_queries`) is scored the same
    way (rows signal = "query_without_readout"; column `note` says when it was not measured).
    The area queries are always the bottom-up ones of that step (no `query_leak` memory, no
    template): compare them with the bottom-up condition's query.
`class_rdms` / `representational_geometry`: representational dissimilarity matrices (RDMs;
    rsatoolbox, correlation distance 1 - r between the class-mean patterns) of the global
    query and of each area's activity under each attention condition, and how similar an
    area's RDM stays between two conditions (rsatoolbox.rdm.compare: cosine, or another of
    its methods, e.g. "tau-a"). The 95% CI is a stratified, paired bootstrap over images:
    images are resampled within each class, the same images under both conditions, and the
    class means, RDMs and similarity recomputed (`resamples` times, seeded percentiles).
    Resampling noise can only blur the class means, so replicate similarities lean low and a
    point estimate may sit at the top of its interval.
    Attention that only scales responses keeps the geometry (similarity near 1); one that
    reshapes which classes look alike lowers it (cf. the sharpened category representations
    under attention in human cortex, Cukur et al. 2013).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from gattanet_sim.analysis.common import (
    CONFIDENCE,
    AnalysisError,
    last_time_bin,
    proportion_ci,
    require,
)

CIFAR10_GROUPS = {"vehicle": ("airplane", "automobile", "ship", "truck"),
                  "animal": ("bird", "cat", "deer", "dog", "frog", "horse")}
QUERY = "global_query"
AREA_QUERIES = "area_queries"
SHUFFLES = 20  # label permutations of the shuffled-label control
NO_AREA_QUERIES = ("query_without_readout not measured: the recording has no area_queries "
                   "(record with --signals ...,area_queries)")


def _part(ds: xr.Dataset, analysis: str, condition: str | None) -> xr.Dataset:
    """The presentations of `condition` (all of them without a condition coordinate)."""
    if condition is None or "condition" not in ds.coords:
        return ds
    keep = np.flatnonzero(ds["condition"].values == condition)
    if len(keep) == 0:
        raise AnalysisError(f"{analysis}: no presentation of condition {condition!r}; the recording has "
                            f"{', '.join(dict.fromkeys(ds['condition'].values.tolist()))}")
    return ds.isel(presentation=keep)


def _class_names(ds: xr.Dataset, labels: np.ndarray) -> np.ndarray:
    """Each presentation's class name: the `class` coordinate at its label, else the label."""
    if "class" in ds.coords:
        names = np.asarray([str(c) for c in ds["class"].values])
        return names[labels]
    return labels.astype(str)


def default_groups(classes: Sequence[str]) -> dict[str, tuple[str, ...]] | None:
    """Animals vs vehicles when the classes are CIFAR-10's, else None."""
    known = {c for group in CIFAR10_GROUPS.values() for c in group}
    return CIFAR10_GROUPS if set(classes) == known else None


def _query_at(ds: xr.Dataset, analysis: str, time_bin: int, condition: str | None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, xr.Dataset]:
    """Queries (image, key_dim), class names (image,) and stimulus ids of one condition."""
    require(ds, analysis, variables=(QUERY,), coords=("label",))
    if time_bin not in ds["time_bin"].values:
        raise AnalysisError(f"{analysis}: no time bin {time_bin}; the recording has "
                            f"{', '.join(map(str, ds['time_bin'].values))}")
    part = _part(ds, analysis, condition)
    query = np.asarray(part[QUERY].sel(time_bin=time_bin).transpose("presentation", "key_dim").values,
                       dtype=np.float64)  # (image, key_dim)
    labels = part["label"].values.astype(int)
    ids = part["stimulus_id"].values if "stimulus_id" in part.coords else np.arange(len(labels))
    return query, _class_names(ds, labels), ids, part


def query_embedding(ds: xr.Dataset, time_bin: int = 0, condition: str | None = "bottom-up",
                    method: str = "pca", groups: Mapping[str, Sequence[str]] | None = None,
                    seed: int = 0) -> pd.DataFrame:
    """One row per presentation: stimulus_id, label, class, group, dim1, dim2 (PCA of the
    centred queries, or UMAP). The PCA rows carry each axis's share of the variance."""
    query, names, ids, part = _query_at(ds, "query_embedding", time_bin, condition)
    if method == "pca":
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2, random_state=seed).fit(query)
        xy = pca.transform(query)  # (image, 2)
        explained = pca.explained_variance_ratio_
    elif method == "umap":
        if importlib.util.find_spec("umap") is None:
            raise AnalysisError("query_embedding: method 'umap' needs umap-learn, which is not installed")
        import umap

        xy = umap.UMAP(n_components=2, random_state=seed).fit_transform(query)
        explained = (np.nan, np.nan)
    else:
        raise AnalysisError(f"query_embedding: unknown method {method!r}; use pca or umap")
    groups = default_groups(sorted(set(names))) if groups is None else groups
    member = {c: g for g, cs in (groups or {}).items() for c in cs}
    return pd.DataFrame({"stimulus_id": ids, "label": part["label"].values, "class": names,
                         "group": [member.get(c, "") for c in names], "dim1": xy[:, 0], "dim2": xy[:, 1],
                         "method": method, "explained_1": explained[0], "explained_2": explained[1]})


def readout_area(ds: xr.Dataset) -> str | None:
    """The model's read-out (class layer): the last area of the `time_mapping` attribute,
    which lists every area in order; without it, the last area of `area_queries`."""
    mapping = json.loads(ds.attrs.get("time_mapping", "") or "{}")
    if mapping:
        return list(mapping)[-1]
    return str(ds[AREA_QUERIES]["area"].values[-1]) if AREA_QUERIES in ds.data_vars else None


def query_without_readout(part: xr.Dataset, time_bin: int, readout: str | None
                          ) -> tuple[np.ndarray, str] | None:
    """(image, key_dim): the mean of the area queries of every area but the read-out, and a
    note; None without `area_queries`. The number of areas averaged only scales the features,
    which the standardised decoder ignores (in cascade mode, areas not yet reached are 0)."""
    if AREA_QUERIES not in part.data_vars:
        return None
    queries = part[AREA_QUERIES].sel(time_bin=time_bin).transpose("presentation", "area", "key_dim")
    areas = [str(a) for a in queries["area"].values]
    keep = [i for i, a in enumerate(areas) if a != readout]
    if not keep:
        raise AnalysisError(f"query_space: area_queries holds only the read-out ({readout})")
    note = "" if len(keep) < len(areas) else \
        f"the attention region does not read the read-out {readout}: the mean of every area's query"
    values = np.asarray(queries.values, dtype=np.float64)  # (image, area, key_dim)
    return values[:, keep].mean(axis=1), note  # (image, key_dim)


def permuted(targets: np.ndarray, ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The targets permuted over stimuli: every presentation of a stimulus keeps one (new)
    target, and each target keeps its count. (n,) -> (n,)."""
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    return rng.permutation(targets[first])[inverse.ravel()]  # (n,)


def decode(features: np.ndarray, targets: np.ndarray, ids: np.ndarray, seed: int = 0,
           folds: int = 5) -> np.ndarray:
    """Cross-validated predictions of a standardised logistic regression: (n,) predicted
    targets, each from the fold model that did not see the image (folds stratified by target,
    grouped by stimulus id, shuffled with `seed`)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    kinds, counts = np.unique(targets, return_counts=True)
    if len(kinds) < 2 or counts.min() < folds:
        raise AnalysisError(f"decoding needs at least 2 classes with {folds} images each; got "
                            f"{len(kinds)} ({', '.join(map(str, kinds[:3]))}{', ...' if len(kinds) > 3 else ''}), "
                            f"the smallest with {counts.min()}")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return cross_val_predict(model, features, targets, groups=ids, cv=splitter)


def query_space(ds: xr.Dataset, time_bin: int = 0, condition: str | None = "bottom-up",
                groups: Mapping[str, Sequence[str]] | None = None, seed: int = 0,
                permutations: int = SHUFFLES) -> pd.DataFrame:
    """Linear separability of the query: rows "class" (every class) and "group" (animals vs
    vehicles, or the given `groups`: name -> class names; classes in no group are left out),
    for signal "query" and, where the recording has `area_queries`, "query_without_readout".
    Columns: images, accuracy, Wilson 95% CI, chance (most frequent target's share),
    shuffled_accuracy and shuffled_ci_low/high (mean and central 95% of the accuracy over
    `permutations` seeded label permutations), note (see the module docstring)."""
    if permutations < 2:
        raise AnalysisError(f"query_space: the shuffled-label control needs at least 2 permutations, "
                            f"got {permutations}")
    query, names, ids, part = _query_at(ds, "query_space", time_bin, condition)
    groups = default_groups(sorted(set(names))) if groups is None else groups
    tasks = [("class", "+".join(sorted(set(names))), np.ones(len(names), bool), names)]
    if groups:
        member = {c: g for g, cs in groups.items() for c in cs}
        grouped = np.array([member.get(c, "") for c in names], dtype=object)
        tasks.append(("group", " vs ".join(groups), grouped != "", grouped))
    without = query_without_readout(part, time_bin, readout_area(ds))
    signals = {"query": (query, "" if without is not None else NO_AREA_QUERIES)}
    if without is not None:
        signals["query_without_readout"] = without
    tail = (1 - CONFIDENCE) / 2 * 100
    rows = []
    for signal, (features, note) in signals.items():
        for task, what, keep, targets in tasks:
            x, y, stimuli = features[keep], targets[keep], ids[keep]  # (image, key_dim), (image,), (image,)
            hits = decode(x, y, stimuli, seed) == y
            low, high = proportion_ci(int(hits.sum()), len(hits))
            _, counts = np.unique(y, return_counts=True)
            rng = np.random.default_rng(seed)  # the same permutations for every signal
            shuffled = []
            for _ in range(permutations):
                fake = permuted(y, stimuli, rng)  # (image,)
                shuffled.append(np.mean(decode(x, fake, stimuli, seed) == fake))
            rows.append({"condition": condition or "", "time_bin": time_bin, "signal": signal, "task": task,
                         "targets": what, "images": int(keep.sum()), "accuracy": hits.mean(),
                         "ci_low": low, "ci_high": high, "chance": counts.max() / counts.sum(),
                         "shuffled_accuracy": np.mean(shuffled),
                         "shuffled_ci_low": np.percentile(shuffled, tail),
                         "shuffled_ci_high": np.percentile(shuffled, 100 - tail), "note": note})
    return pd.DataFrame(rows)


# --- representational geometry --------------------------------------------------------


def _signals(ds: xr.Dataset, time_bin: int) -> dict[str, xr.DataArray]:
    """Signal name -> (presentation, feature) at `time_bin`: the query and each area's activity."""
    out = {}
    if QUERY in ds.data_vars:
        out["query"] = ds[QUERY].sel(time_bin=time_bin).transpose("presentation", "key_dim")
    if "activity" in ds.data_vars:
        regions = ds["region"].values
        for region in dict.fromkeys(regions.tolist()):
            out[region] = ds["activity"].isel(neuroid=np.flatnonzero(regions == region)).sel(time_bin=time_bin)
    return out


def _aligned(ds: xr.Dataset, conditions: list[str]) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Per condition, the presentation indices of the images every condition shows, in one
    order (stimulus_id, repetition); and those images' labels and stimulus ids."""
    reps = ds["repetition"].values if "repetition" in ds.coords else np.zeros(ds.sizes["presentation"], int)
    keys = pd.Series([f"{s}#{r}" for s, r in zip(ds["stimulus_id"].values, reps)])
    cond = ds["condition"].values
    common = None
    for c in conditions:
        these = set(keys[cond == c])
        common = these if common is None else common & these
    order = sorted(common)
    index = {}
    for c in conditions:
        where = pd.Series(np.flatnonzero(cond == c), index=keys[cond == c].values)
        index[c] = where[~where.index.duplicated()].loc[order].to_numpy()
    first = index[conditions[0]]
    return index, ds["label"].values[first].astype(int), ds["stimulus_id"].values[first]


def _class_means(x: np.ndarray, labels: np.ndarray, classes: np.ndarray,
                 weights: np.ndarray | None = None) -> np.ndarray:
    """(image, feature) -> (class, feature) means, each image counted `weights` times (a
    bootstrap draw's multiplicities; default once)."""
    onehot = (labels[None, :] == classes[:, None]).astype(np.float64)  # (class, image)
    if weights is not None:
        onehot = onehot * weights[None, :]
    return onehot @ x / onehot.sum(axis=1, keepdims=True)  # (class, feature)


def _rdms(patterns: list[np.ndarray]):
    """rsatoolbox RDMs (correlation distance, 1 - r) of class-mean patterns, one per
    (class, feature) array of the list."""
    from rsatoolbox.data import Dataset
    from rsatoolbox.rdm import calc_rdm

    data = [Dataset(m, obs_descriptors={"class": np.arange(len(m))}) for m in patterns]
    return calc_rdm(data, method="correlation", descriptor="class")


def _check_geometry(ds: xr.Dataset, time_bin: int | None) -> tuple[int, list[str]]:
    require(ds, "representational_geometry", coords=("condition", "label", "stimulus_id"))
    if QUERY not in ds.data_vars and "activity" not in ds.data_vars:
        raise AnalysisError("representational_geometry needs variable 'global_query' or 'activity' "
                            "in the recording")
    source = ds[QUERY] if QUERY in ds.data_vars else ds["activity"]
    t = last_time_bin(source) if time_bin is None else time_bin
    if t not in ds["time_bin"].values:
        raise AnalysisError(f"representational_geometry: no time bin {t}")
    return t, list(dict.fromkeys(ds["condition"].values.tolist()))


def class_rdms(ds: xr.Dataset, time_bin: int | None = None) -> pd.DataFrame:
    """Long table of every RDM: signal, condition, class_a, class_b, distance (1 - r between
    the two classes' mean patterns), each pair once (a < b)."""
    t, conditions = _check_geometry(ds, time_bin)
    classes = np.unique(ds["label"].values.astype(int))
    names = _class_names(ds, classes)
    rows = []
    for signal, data in _signals(ds, t).items():
        values = np.asarray(data.values, dtype=np.float64)  # (presentation, feature)
        for c in conditions:
            mask = ds["condition"].values == c
            rdm = _rdms([_class_means(values[mask], ds["label"].values[mask].astype(int), classes)])
            a, b = np.triu_indices(len(classes), 1)
            rows += [{"signal": signal, "condition": c, "time_bin": t, "class_a": names[i], "class_b": names[j],
                      "distance": d} for i, j, d in zip(a, b, rdm.dissimilarities[0])]
    return pd.DataFrame(rows)


def representational_geometry(ds: xr.Dataset, time_bin: int | None = None,
                              methods: Sequence[str] = ("cosine", "tau-a"), resamples: int = 1000,
                              seed: int = 0) -> pd.DataFrame:
    """Similarity of each signal's class RDM between every two conditions: signal, condition_a,
    condition_b, method, images, similarity and its 95% CI (see the module docstring). Cosine
    of two correlation-distance RDMs sits near 1 whenever all distances are positive; tau-a
    (rank agreement of the class pairs) tells geometries apart more sharply."""
    from rsatoolbox.rdm import compare

    t, conditions = _check_geometry(ds, time_bin)
    if len(conditions) < 2:
        raise AnalysisError("representational_geometry compares conditions; the recording has only "
                            f"{conditions[0]!r}")
    index, labels, _ = _aligned(ds, conditions)
    classes = np.unique(labels)
    if len(classes) < 3:
        raise AnalysisError(f"representational_geometry needs at least 3 classes, got {len(classes)}")
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(labels == c) for c in classes]
    weights = [np.bincount(np.concatenate([rng.choice(m, len(m)) for m in members]), minlength=len(labels))
               for _ in range(resamples)]  # (image,) multiplicities of each stratified draw
    tail = (1 - CONFIDENCE) / 2 * 100
    rows = []
    for signal, data in _signals(ds, t).items():
        rdms = {}  # condition -> (point RDM, bootstrap RDMs)
        for c in conditions:
            x = np.asarray(data.values[index[c]], dtype=np.float64)  # (image, feature)
            rdms[c] = (_rdms([_class_means(x, labels, classes)]),
                       _rdms([_class_means(x, labels, classes, w) for w in weights]))
        for i, a in enumerate(conditions):
            for b in conditions[i + 1:]:
                for method in methods:
                    point = float(compare(rdms[a][0], rdms[b][0], method=method)[0, 0])
                    boot = np.array([compare(rdms[a][1][k], rdms[b][1][k], method=method)[0, 0]
                                     for k in range(resamples)])
                    boot = boot[np.isfinite(boot)]
                    low, high = np.percentile(boot, [tail, 100 - tail]) if len(boot) else (np.nan, np.nan)
                    rows.append({"signal": signal, "condition_a": a, "condition_b": b, "time_bin": t,
                                 "method": method, "images": len(labels), "similarity": point,
                                 "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows)

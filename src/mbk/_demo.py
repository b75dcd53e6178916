"""``mbk demo``: the classic example in one command.

Clusters the California housing table (shipped in the package) on median income, latitude
and longitude into 6 clusters, prints the first districts with their cluster and a summary
per cluster, writes the districts with a ``Cluster`` column (and a map of the clusters when
matplotlib is installed), and times the same fit with scikit-learn when it is installed. With
``rows``, a generated data set of that many rows instead, for the speed comparison.
"""

import os
import time

import numpy as np

from ._dense import isa
from ._files import write_atomically
from ._kmeans import MiniBatchKMeans
from .datasets import load_housing

FEATURES = ("median_income", "latitude", "longitude")
N_CLUSTERS = 6
OUTPUT_CSV = "housing_clusters.csv"
OUTPUT_PNG = "housing_clusters.png"


def generated_rows(n_rows, seed):
    """n_rows x 3 float32 rows around N_CLUSTERS centers (the ``--rows`` data set)."""
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-10, 10, size=(N_CLUSTERS, len(FEATURES)))
    which = rng.integers(0, N_CLUSTERS, n_rows)
    return (centers[which] + rng.normal(size=(n_rows, len(FEATURES)))).astype(np.float32)


def _timed_fit(estimator, X):
    started = time.perf_counter()
    labels = estimator.fit_predict(X)
    return labels, time.perf_counter() - started


def _compare_with_sklearn(X, labels, seconds, seed, echo):
    try:
        from sklearn.cluster import MiniBatchKMeans as SklearnMiniBatchKMeans
    except ImportError:
        echo("scikit-learn is not installed: pip install scikit-learn to time it beside mbk.")
        return
    reference = SklearnMiniBatchKMeans(n_clusters=N_CLUSTERS, random_state=seed)
    theirs, their_seconds = _timed_fit(reference, X)
    same = bool(np.array_equal(labels, theirs))
    echo(f"scikit-learn: {their_seconds * 1e3:.1f} ms for the same fit, "
         f"{their_seconds / seconds:.1f}x mbk's time; "
         f"clusters {'identical' if same else 'different'} ({np.mean(labels == theirs):.2%} "
         "of the rows in the same cluster).")  # fmt: skip


def _summary(X, labels, centers, echo):
    """Rows and share per cluster, and the center in the input's units."""
    header = f"{'Cluster':>7}  {'rows':>7}  {'share':>6}  " + "  ".join(
        f"{name:>13}" for name in FEATURES
    )
    echo(header)
    counts = np.bincount(labels, minlength=centers.shape[0])
    for cluster, center in enumerate(centers):
        values = "  ".join(f"{value:>13.4f}" for value in center)
        echo(f"{cluster:>7}  {counts[cluster]:>7}  {counts[cluster] / len(X):>6.1%}  {values}")


def _write_clusters_csv(path, X, labels, force):
    def write(out):
        out.write((",".join((*FEATURES, "Cluster")) + "\n").encode())
        for row, label in zip(X, labels, strict=True):
            out.write((",".join(repr(float(value)) for value in row) + f",{label}\n").encode())

    write_atomically(path, write, force)


def _write_map(path, X, labels, centers, force, echo):
    """A map of the clusters (longitude against latitude, true proportions at California's
    latitude), when matplotlib is installed."""
    from .plotting import _write_clusters_png

    try:
        _write_clusters_png(path, X, labels, centers, FEATURES, force=force,
                            title=f"California housing: {N_CLUSTERS} clusters")  # fmt: skip
    except ImportError:
        echo("matplotlib is not installed: pip install matplotlib for a map of the clusters.")
        return False
    return True


def run(out_dir, *, rows=None, seed=0, n_threads=None, force=False, echo=print):
    """The demo; returns the paths it wrote. ``rows``: a generated data set of that many
    rows instead of the housing table (nothing is written then)."""
    if rows is not None:
        X = generated_rows(rows, seed)
        echo(f"mbk demo: {rows:,} generated rows x {X.shape[1]} features (float32), "
             f"{N_CLUSTERS} clusters")  # fmt: skip
    else:
        X, _ = load_housing(FEATURES)
        echo(f"mbk demo: California housing, {len(X):,} districts, clustered on "
             f"{', '.join(FEATURES)} into {N_CLUSTERS} clusters")  # fmt: skip
    model = MiniBatchKMeans(n_clusters=N_CLUSTERS, random_state=seed, n_threads=n_threads)
    labels, seconds = _timed_fit(model, X)
    echo(f"mbk: {seconds * 1e3:.1f} ms, {model.n_steps_} steps, inertia {model.inertia_:.6g} "
         f"(mbk.kernel_variant() = {isa()})")  # fmt: skip
    written = []
    if rows is None:
        echo("")
        echo("  ".join(f"{name:>13}" for name in (*FEATURES, "Cluster")))
        for row, label in zip(X[:5], labels[:5], strict=True):
            echo("  ".join(f"{value:>13.4f}" for value in row) + f"  {label:>13}")
        echo("")
        _summary(X, labels, model.cluster_centers_, echo)
        echo("")
    _compare_with_sklearn(X, labels, seconds, seed, echo)
    if rows is None:
        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, OUTPUT_CSV)
        _write_clusters_csv(path, X, labels, force)
        written.append(path)
        path = os.path.join(out_dir, OUTPUT_PNG)
        if _write_map(path, X, labels, model.cluster_centers_, force, echo):
            written.append(path)
        for path in written:
            echo(f"wrote {path}")
    return written


def new_output_dir(base="mbk-demo"):
    """A folder name in the working directory that does not exist yet: base, base-2, ..."""
    if not os.path.exists(base):
        return base
    number = 2
    while os.path.exists(f"{base}-{number}"):
        number += 1
    return f"{base}-{number}"

"""Initial centers: greedy k-means++, random rows, a callable, or the centers given.

scikit-learn's draws in scikit-learn's order: a set of initial centers is seeded on init_size
rows drawn from the data with replacement (all rows when init_size covers them), so the same
random_state gives the same centers.
"""

import numpy as np

from . import _sampling_kernels
from ._kmeans_plusplus import kmeans_plusplus_seeds
from ._sources import DenseSource, is_sparse, open_dense


def given_centers(params, n_features, dtype):
    """The init array as a C-ordered copy in the data's dtype, checked; None for the other
    kinds of init."""
    if params.init_kind != "array":
        return None
    centers = open_dense(params.init, input_name="init", dtype=dtype, names=False).X
    centers = np.array(centers, dtype=dtype, order="C", copy=True)
    check_center_shape(centers, params.n_clusters, n_features)
    return centers


def check_center_shape(centers, n_clusters, n_features):
    if centers.shape[0] != n_clusters:
        raise ValueError(
            f"The shape of the initial centers {centers.shape} does not match the number "
            f"of clusters {n_clusters}."
        )
    if centers.shape[1] != n_features:
        raise ValueError(
            f"The shape of the initial centers {centers.shape} does not match the number "
            f"of features of the data {n_features}."
        )


def draw_initial_centers(source, params, settings, random_state, given, n_threads):
    """One set of initial centers, seeded on settings.init_size rows drawn from the source.

    The subsample is drawn as scikit-learn draws it (the random stream stays the same) and
    gathered only when the seeding reads it: given centers do not. While the source's rows
    are not scanned for NaN and infinity, k-means++ scans the rows it seeds on first.
    """
    if settings.init_size < source.n_samples:
        subsample = _sampling_kernels.randint(random_state, source.n_samples, settings.init_size)
        if given is not None:
            return given
        X, weights = source.gather(subsample), source.weights_at(subsample)
    elif given is not None:
        return given
    else:  # (every row seeds: a chunked source reads them all only here)
        X, weights = source.X, source.sample_weight
    return seed_centers(X, weights, params, random_state, n_threads,
                        scan_rows=source.finite is None)  # fmt: skip


def seed_centers(X, sample_weight, params, random_state, n_threads, scan_rows=False):
    """Centers seeded on the rows X (k-means++, random rows or the callable).

    X may be dense or CSR (scipy); the centers are dense. sample_weight may be None (unit
    weights). ``scan_rows``: X has not been scanned for NaN
    and infinity, which k-means++ then does first.
    """
    n_clusters = params.n_clusters
    # Rows whose weights cannot seed (all zero, or for "random" fewer positive weights than
    # clusters) are seeded with equal weights; scikit-learn fails in NumPy's choice there
    # (found by the property tests).
    positive = X.shape[0] if sample_weight is None else np.count_nonzero(sample_weight > 0)
    if positive == 0 or (params.init == "random" and positive < n_clusters):
        sample_weight = None
    if sample_weight is None:
        sample_weight = np.ones(X.shape[0], dtype=X.dtype)
    if params.init == "k-means++":
        if scan_rows:  # (CSR rows are checked when their source is opened)
            DenseSource(X).check_finite(n_threads)
        centers, _ = kmeans_plusplus_seeds(
            X, n_clusters, sample_weight, random_state, n_threads=n_threads
        )
        return centers
    if params.init == "random":
        seeds = random_state.choice(
            X.shape[0], size=n_clusters, replace=False, p=sample_weight / sample_weight.sum()
        )
        return X[seeds].toarray() if is_sparse(X) else X[seeds]
    centers = params.init(X, n_clusters, random_state=random_state)
    centers = open_dense(centers, input_name="the centers returned by init", dtype=X.dtype,
                         names=False).X  # fmt: skip
    centers = np.array(centers, order="C", copy=True)
    check_center_shape(centers, n_clusters, X.shape[1])
    return centers

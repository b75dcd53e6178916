"""Greedy k-means++ seeding (Arthur & Vassilvitskii 2007, with local trials).

The arithmetic follows scikit-learn 1.9 operation by operation (norm expansion, float64
upcast for float32 data, plain cumulative sums, BLAS matrix products of the same shapes), and
the random draws come in the same order, so the same ``random_state`` picks the same seeds.
"""

import numpy as np

from ._validation import as_float_array, check_random_state, check_sample_weight


def _row_sq_norms(X):
    return np.einsum("ij,ij->i", X, X)


def _sq_distances(A, X, X_sq_norms):
    """Squared distances from each row of A (few rows) to each row of X, clipped at 0.

    ||a||^2 - 2 a.x + ||x||^2 in float64; float32 data is upcast first and its norms are
    recomputed in float64 (the float32 norms would lose the small distances).
    """
    if X.dtype == np.float32:
        A64 = A.astype(np.float64)
        X64 = X.astype(np.float64)
        distances = -2 * (A64 @ X64.T)
        distances += _row_sq_norms(A64)[:, None]
        distances += _row_sq_norms(X64)[None, :]
        distances = distances.astype(np.float32, copy=False)
    else:
        distances = -2 * (A @ X.T)
        distances += _row_sq_norms(A)[:, None]
        distances += X_sq_norms[None, :]
    np.maximum(distances, 0, out=distances)
    return distances


def kmeans_plusplus_seeds(X, n_clusters, sample_weight, random_state, n_local_trials=None):
    """Seeds from validated data: returns (centers, indices). No input checks here.

    sample_weight is an array of X's dtype (not None); random_state a RandomState.
    """
    n_samples = X.shape[0]
    if n_local_trials is None:
        # Arthur & Vassilvitskii's suggestion, as scikit-learn uses it: 2 + floor(ln k).
        n_local_trials = 2 + int(np.log(n_clusters))
    X_sq_norms = None if X.dtype == np.float32 else _row_sq_norms(X)
    centers = np.empty((n_clusters, X.shape[1]), dtype=X.dtype)
    indices = np.full(n_clusters, -1, dtype=np.intp)

    first = random_state.choice(n_samples, p=sample_weight / sample_weight.sum())
    centers[0] = X[first]
    indices[0] = first
    closest_sq = _sq_distances(X[first][np.newaxis], X, X_sq_norms)  # (1, n_samples)
    potential = closest_sq @ sample_weight  # (1,)

    for c in range(1, n_clusters):
        # Sample candidates with probability proportional to w * D^2 ...
        targets = random_state.uniform(size=n_local_trials) * potential
        candidates = np.searchsorted(np.cumsum(sample_weight * closest_sq), targets)
        np.clip(candidates, None, n_samples - 1, out=candidates)
        # ... and keep the one that lowers the potential most (first one on ties).
        candidate_sq = _sq_distances(X[candidates], X, X_sq_norms)
        np.minimum(closest_sq, candidate_sq, out=candidate_sq)
        candidate_potentials = candidate_sq @ sample_weight.reshape(-1, 1)
        best = np.argmin(candidate_potentials)
        potential = candidate_potentials[best]
        closest_sq = candidate_sq[best]
        centers[c] = X[candidates[best]]
        indices[c] = candidates[best]
    return centers, indices


def kmeans_plusplus(
    X,
    n_clusters,
    *,
    sample_weight=None,
    x_squared_norms=None,
    random_state=None,
    n_local_trials=None,
):
    """Choose initial cluster centers with greedy k-means++.

    The same seeds as ``sklearn.cluster.kmeans_plusplus`` for the same ``random_state``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The data to pick seeds from.
    n_clusters : int
        The number of seeds, 1 <= n_clusters <= n_samples.
    sample_weight : array-like of shape (n_samples,), default=None
        Weights of the rows; seeds are drawn in proportion to weight times squared distance.
        None gives every row weight 1.
    x_squared_norms : array-like of shape (n_samples,), default=None
        Accepted for scikit-learn compatibility and checked for length; mbk recomputes the
        norms it needs.
    random_state : int, RandomState instance or None, default=None
        Source of the random draws.
    n_local_trials : int, default=None
        Candidates tried per seed; None means 2 + floor(ln(n_clusters)). 1 gives plain
        k-means++.

    Returns
    -------
    centers : ndarray of shape (n_clusters, n_features)
        The seeds, in X's floating dtype.
    indices : ndarray of shape (n_clusters,)
        Row of X that each seed was taken from.
    """
    X = as_float_array(X)
    n_samples = X.shape[0]
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, (int, np.integer)):
        raise TypeError(f"n_clusters must be an int; got {n_clusters!r}.")
    if not 1 <= n_clusters <= n_samples:
        raise ValueError(f"n_samples={n_samples} should be >= n_clusters={n_clusters}.")
    if n_local_trials is not None and (
        isinstance(n_local_trials, bool)
        or not isinstance(n_local_trials, (int, np.integer))
        or n_local_trials < 1
    ):
        raise ValueError(f"n_local_trials must be an int >= 1 or None; got {n_local_trials!r}.")
    if x_squared_norms is not None and np.shape(x_squared_norms)[0] != n_samples:
        raise ValueError(
            f"The length of x_squared_norms {np.shape(x_squared_norms)[0]} should be equal "
            f"to the length of n_samples {n_samples}."
        )
    weights = check_sample_weight(sample_weight, n_samples, X.dtype)
    if weights is None:
        weights = np.ones(n_samples, dtype=X.dtype)
    elif (weights < 0).any():
        raise ValueError("sample_weight must be non-negative for k-means++ seeding.")
    return kmeans_plusplus_seeds(
        X, int(n_clusters), weights, check_random_state(random_state), n_local_trials
    )

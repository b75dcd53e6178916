"""Greedy k-means++ seeding (Arthur & Vassilvitskii 2007, with local trials).

The arithmetic follows scikit-learn 1.9 operation by operation (norm expansion, float64
upcast for float32 data, plain cumulative sums, BLAS matrix products of the same shapes), and
the random draws come in the same order, so the same ``random_state`` picks the same seeds.
Dense rows go through the compiled loop (_seeding_kernels); CSR rows through scipy's sparse
products, the ones scikit-learn uses, in the same shapes.
"""

import numpy as np

from . import _core, _seeding_kernels
from ._sources import BLOCK_ROWS, check_sample_weight, is_sparse, read_input, row_blocks
from ._validation import check_random_state, resolve_n_threads


def _row_sq_norms(X):
    return np.einsum("ij,ij->i", X, X)


def _sq_norms64(X):
    """Row norms in float64 as scikit-learn's distance code computes them: on C-ordered rows
    (the rounding of a row's sum depends on the layout), float32 widened first; in row
    blocks, so X is never copied whole."""
    if X.dtype == np.float64 and X.flags.c_contiguous:
        return _row_sq_norms(X)
    norms = np.empty(X.shape[0])
    for start, block in row_blocks(X, dtype=np.float64):
        norms[start : start + block.shape[0]] = _row_sq_norms(block)
    return norms


# Largest packed copy of X that k-means++ makes to speed up its distance passes
# (the init subsample of a fit is 3 * batch_size rows: far below).
_PACK_BYTES = 64 << 20


def _weighted_choice(random_state, weights):
    """``random_state.choice(len(weights), p=weights / weights.sum())``: the same row from
    the same draw, and the same errors for negative weights or a zero sum, for about half
    the time (p in the weights' dtype widened to float64, its cumsum normalised by its last
    value, one random_sample, searchsorted side "right")."""
    total = weights.sum()
    if (weights < 0).any():
        raise ValueError("probabilities are not non-negative")
    if not total > 0:
        raise ValueError("probabilities contain NaN")
    cdf = np.cumsum((weights / total).astype(np.float64, copy=False))
    cdf /= cdf[-1]
    return int(cdf.searchsorted(random_state.random_sample(), side="right"))


def kmeans_plusplus_seeds(
    X, n_clusters, sample_weight, random_state, n_local_trials=None, n_threads=None
):
    """Seeds from validated data: returns (centers, indices). No input checks here.

    X is a dense array or a checked CSR matrix (scipy); sample_weight an array of X's dtype
    (not None); random_state a RandomState. For dense X the loop over seeds is compiled
    (_seeding_kernels.kmeanspp_seeds); the matrix product that sums each candidate's
    potential is NumPy's, as in scikit-learn.
    """
    n_samples = X.shape[0]
    if n_local_trials is None:
        # Arthur & Vassilvitskii's suggestion, as scikit-learn uses it: 2 + floor(ln k).
        n_local_trials = 2 + int(np.log(n_clusters))
    if is_sparse(X):
        return _sparse_seeds(X, n_clusters, sample_weight, random_state, n_local_trials)
    n_threads = resolve_n_threads(n_threads)
    x_sq_norms = _sq_norms64(X)
    centers = np.empty((n_clusters, X.shape[1]), dtype=X.dtype)
    indices = np.full(n_clusters, -1, dtype=np.intp)
    # The kernel reads X in blocks of rows, feature-major: packed once here, unless that copy
    # would be large (then each call packs chunk by chunk, as it goes).
    packed = _seeding_kernels.pack_rows(X) if X.nbytes <= _PACK_BYTES else None
    # Two output buffers in turn: the closest distances are a row of the previous one.
    buffers = [np.empty((n_local_trials, n_samples), dtype=X.dtype) for _ in range(2)]
    candidates = np.empty(n_local_trials, dtype=np.intp)

    first = _weighted_choice(random_state, sample_weight)
    centers[0] = X[first]
    indices[0] = first
    closest_sq = buffers[0][:1]  # the first trials write buffers[1]
    # A row's norm does not depend on the rows computed beside it (tested), so a
    # candidate's norm is its row's.
    _seeding_kernels.kmeanspp_distances(
        X, packed, x_sq_norms, np.array([first], dtype=np.intp), x_sq_norms[first : first + 1],
        None, closest_sq, n_threads,
    )  # fmt: skip
    # (1, n) @ (n,), the product scikit-learn computes (the rounding depends on the BLAS call).
    potential = float((closest_sq @ sample_weight)[0])
    closest_sq = closest_sq[0]

    _seeding_kernels.kmeanspp_seeds(
        X, packed, x_sq_norms, sample_weight, random_state, buffers,
        candidates, closest_sq, potential, centers, indices, n_threads,
    )  # fmt: skip
    return centers, indices


class _SparseDistances:
    """Squared distances from rows (dense, or CSR) to every row of a CSR matrix X, in X's
    dtype, as scikit-learn's euclidean_distances computes them: -2 A.X^T + ||a||^2 + ||x||^2,
    at least 0, in float64 (float32 rows widened a block of X's rows at a time, the result
    rounded back).

    For CSR rows A the product is scipy's, term for term, computed by
    _core.csr_sq_distances_to_rows against the transposed blocks converted to CSR once (scipy
    converts them on every product) when they fit in _PACK_BYTES: k-means++ calls this once
    per seed, and scipy's overheads were most of the seeding's time.
    """

    def __init__(self, X):
        self.X = X
        self.dtype = X.dtype
        widened = X if X.dtype == np.float64 else X.astype(np.float64)
        self.sq_norms64 = _core.csr_row_sq_norms(widened.data, widened.indptr)
        itemsize = 12 if X.dtype == np.float64 else 24  # values and indices, times copies
        self.blocks = None
        if X.nnz * itemsize <= _PACK_BYTES:
            self.blocks = [(start, block, block.T.tocsr()) for start, block in self._blocks()]

    def _blocks(self):
        X = self.X
        if X.dtype == np.float64:
            yield 0, X
            return
        for start in range(0, X.shape[0], BLOCK_ROWS):
            yield start, X[start : start + BLOCK_ROWS].astype(np.float64)

    def __call__(self, A):
        A64 = A if self.dtype == np.float64 else A.astype(np.float64)
        sparse_rows = is_sparse(A64)
        a_sq = _core.csr_row_sq_norms(A64.data, A64.indptr) if sparse_rows else _row_sq_norms(A64)
        out = np.empty((A.shape[0], self.X.shape[0]), dtype=self.dtype)
        blocks = self.blocks
        if blocks is None:
            blocks = ((start, block, None) for start, block in self._blocks())
        for start, block, block_t in blocks:
            stop = start + block.shape[0]
            if sparse_rows and block_t is not None:
                index_dtype = block_t.indices.dtype
                _core.csr_sq_distances_to_rows(
                    A64.data, A64.indices.astype(index_dtype), A64.indptr.astype(index_dtype),
                    block_t.data, block_t.indices, block_t.indptr, a_sq,
                    self.sq_norms64[start:stop], out[:, start:stop],
                )  # fmt: skip
                continue
            if sparse_rows:
                product = (A64 @ block.T).toarray()
            else:
                product = np.asarray(A64 @ block.T)
            distances = -2 * product
            distances += a_sq[:, None]
            distances += self.sq_norms64[None, start:stop]
            out[:, start:stop] = distances
            np.maximum(out[:, start:stop], 0, out=out[:, start:stop])
        return out


def _sparse_seeds(X, n_clusters, sample_weight, random_state, n_local_trials):
    """Greedy k-means++ on CSR rows: scikit-learn's draws and products, the centers dense."""
    sq_distances = _SparseDistances(X)
    centers = np.empty((n_clusters, X.shape[1]), dtype=X.dtype)
    indices = np.full(n_clusters, -1, dtype=np.intp)
    first = _weighted_choice(random_state, sample_weight)
    centers[0] = X[[first]].toarray()
    indices[0] = first
    closest_sq = sq_distances(centers[:1])
    potential = closest_sq @ sample_weight  # (1, n) @ (n,): scikit-learn's product
    for seed in range(1, n_clusters):
        targets = random_state.uniform(size=n_local_trials) * potential
        candidates = np.searchsorted(np.cumsum(sample_weight * closest_sq), targets)
        np.clip(candidates, None, closest_sq.size - 1, out=candidates)  # rounding at the top
        trial_sq = sq_distances(X[candidates])
        np.minimum(closest_sq, trial_sq, out=trial_sq)
        trial_potentials = trial_sq @ sample_weight.reshape(-1, 1)
        best = np.argmin(trial_potentials)
        potential = trial_potentials[best]
        closest_sq = trial_sq[best]
        centers[seed] = X[[candidates[best]]].toarray()
        indices[seed] = candidates[best]
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
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        The data to pick seeds from. A scipy sparse matrix or array is read as CSR (other
        formats are converted, a copy), with 32- or 64-bit indices.
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
    source = read_input(X, names=False).open()
    n_samples = source.n_samples
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
    weights = check_sample_weight(sample_weight, n_samples, source.dtype)
    if weights is None:
        weights = np.ones(n_samples, dtype=source.dtype)
    elif (weights < 0).any():
        raise ValueError("sample_weight must be non-negative for k-means++ seeding.")
    return kmeans_plusplus_seeds(
        source.X, int(n_clusters), weights, check_random_state(random_state), n_local_trials
    )

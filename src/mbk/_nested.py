"""Nested mini-batch k-means (Newling & Fleuret, "Nested mini-batch k-means", NeurIPS 2016).

The batches grow and contain each other: batch t is the first b_t positions of one random
permutation of the rows, and b_{t+1} is b_t or 2 b_t. Because the rows of a batch stay in the
next one, each row keeps its label and distance bounds from round to round (Hamerly's upper
and lower bounds, the lower one split between the runner-up center and the others), and a
row whose bounds prove that its nearest center cannot have changed costs no distance
computation; on the whole data set (and when a seeding settles), rows far from any boundary
are left out of the rounds altogether until the centers have moved enough to matter (a
working set, see _nested_kernels). Each center is the weighted mean of the batch rows currently
labelled with it (a row that changes label leaves its old center's sums), so on a fixed
batch a round is exactly one Lloyd iteration, and a run that reaches the whole data set and
stops when no label changes ends at a Lloyd fixed point of the data.

When to double. A center estimated from n_j rows has a standard error of about
sigma_j = sqrt(sum_i w_i d_i^2) / W_j (d_i the rows' distances to it, W_j their weight).
Once every center moves by less than sigma_j / RHO in a round, further rounds on this batch
only fit its sampling noise (the paper's "premature fine-tuning"), so the batch doubles. A
round in which no label changes (a Lloyd fixed point of the batch) doubles it too.

Seeding. Each of n_init seedings (n_init="auto": NESTED_AUTO_N_INIT) is drawn on a sample of
the first batch and settled there by rounds up to a Lloyd fixed point; the one with the
lowest inertia on the sample goes on. Then single center moves ("swaps", see _best_swap) are
tried on the sample, each followed by rounds there and kept while they lower its inertia.
Lloyd's local minima are mostly decided by the seeding: on data with several (California
housing) a k-means++ seeding often ends in a poor one, which swaps do not leave, and the best
of several settled seedings rarely does (``bench/nested.py`` measures how rarely; the README
has its figures).

The compiled rounds are ``_nested_kernels.nested_rounds`` (which also applies the doubling
rule and the stopping rules); this module drives them: seeding and swaps, growing the batch,
max_iter. ``fit`` is the driver's entry, from a source to the state a fitted model keeps
(the estimator picks it with algorithm="nested").
"""

import math
from dataclasses import dataclass

import numpy as np

from . import _core, _nested_kernels, _sculley
from ._init import given_centers, seed_centers
from ._state import SculleyState
from ._validation import warn_user

# Rounds, not mini-batch steps: no step callbacks, an empty history_.
RUNS_STEPS = False
# Every round reads whole rows of the whole data set: chunked arrays are loaded whole.
READS_CHUNKS = False

# Parameters of Sculley's algorithm that nested runs do not use, with their defaults.
_SCULLEY_ONLY = {"max_no_improvement": 10, "reassignment_ratio": 0.01, "sampling": "auto"}

# Double the batch when every center's movement is below its standard error / RHO. Chosen by
# measurement on the benchmark workloads (bench/nested.py): smaller values double earlier.
RHO = 1.0
# With several seedings, each settles on the first part of the first batch: half of it, but
# at least this many rows per cluster (the local minima are decided by then, at half the
# cost).
_SETTLE_PER_CLUSTER = 128
# Swaps tried on the first batch after its rounds (see _best_swap): at most this many, each
# choosing among the rows farthest from their centers and rows drawn in proportion to
# w * d^2, and kept when, after rounds on the first batch, its inertia is lower by this
# fraction (the first that is not ends the swaps).
_MAX_SWAPS = 20
_SWAP_FARTHEST = 4
_SWAP_DRAWN = 8
_SWAP_GAIN = 1e-4
# A swap is only tried when, before any round, it lowers the first batch's inertia by this
# fraction: a missed cluster gains far more, and the rounds after a small gain rarely keep it.
_SWAP_PREDICTED_GAIN = 0.01
# Why _nested_kernels.nested_rounds returned.
_FIXED_POINT, _USED_UP, _TOL = 1, 2, 3


@dataclass
class NestedResult:
    centers: np.ndarray  # (n_clusters, n_features) in X's dtype
    labels: np.ndarray  # (n_samples,) int32, nearest center of every row of X
    inertia: float
    n_rounds: int
    n_passes: int  # passes over the data: rows visited / n_samples, rounded up
    converged: bool  # reached a Lloyd fixed point of the whole data set


class _State:
    """Per batch position: label (-1 until first labelled), bounds; per center: sums."""

    def __init__(self, n_samples, n_clusters, n_features):
        self.sums = np.zeros((n_clusters, n_features))
        self.weight_sums = np.zeros(n_clusters)
        self.counts = np.zeros(n_clusters, dtype=np.intp)
        self.labels = np.full(n_samples, -1, dtype=np.int32)
        self.upper = np.empty(n_samples)
        self.lower = np.empty(n_samples)
        self.runner = np.zeros(n_samples, dtype=np.int32)
        self.rest = np.empty(n_samples)
        self.movement = np.zeros(n_clusters)
        self.half_gap = np.zeros(n_clusters)
        self.changed = np.empty(n_samples, dtype=np.intp)
        self.moved_from = np.empty(n_samples, dtype=np.int32)

    def in_row_order(self, order, n_seen):
        """Move the state of the first n_seen positions to position order[i] (the row), and
        mark the other rows new: from then on position i is row i, and the rounds on the
        whole data set read X in its own order instead of scattered."""
        names = ("labels", "upper", "lower", "runner", "rest")
        moved = [np.empty_like(getattr(self, name)) for name in names]
        _nested_kernels.to_row_order(
            order, n_seen, *(getattr(self, name) for name in names), *moved
        )
        for name, values in zip(names, moved, strict=True):
            setattr(self, name, values)
        return np.arange(order.shape[0], dtype=np.intp)


def _run(X, sample_weight, centers, order, n_first, max_visits, tol, n_threads, verbose,
         first_batch_only=False, rho=RHO):  # fmt: skip
    """Nested rounds from the given centers (updated in place).

    Returns (NestedResult, rows visited); with ``first_batch_only``, stops as soon as the
    first batch would double and returns (None, rows visited).
    """
    n_samples, n_features = X.shape
    state = _State(n_samples, centers.shape[0], n_features)
    n_batch, visits, n_rounds = n_first, 0, 0
    converged = False
    if n_batch == n_samples:
        order = state.in_row_order(order, 0)
    while True:
        allowed = (max_visits - visits) // n_batch
        if n_rounds > 0 and allowed < 1:
            if verbose:
                print(f"Stopped: max_iter passes over the data used after {n_rounds} rounds")
            break
        # verbose > 1 prints every round, so the kernel runs one at a time.
        max_rounds = 1 if verbose > 1 else max(allowed, 1)
        ran, n_changes, n_full, reason = _nested_kernels.nested_rounds(
            X, order, sample_weight, centers, state.sums, state.weight_sums, state.counts,
            state.labels, state.upper, state.lower, state.runner, state.rest, state.movement,
            state.half_gap,
            state.changed, state.moved_from, n_batch, max_rounds, rho, tol, n_threads,
        )  # fmt: skip
        visits += ran * n_batch
        n_rounds += ran
        if verbose > 1:
            print(
                f"Nested round {n_rounds}: batch {n_batch}, {n_changes} labels changed, "
                f"{n_full} rows compared with every center, largest center move "
                f"{state.movement.max():.6g}"
            )
        if n_batch == n_samples:
            if reason == _FIXED_POINT:
                converged = True
                if verbose:
                    print(f"Converged (Lloyd fixed point) after {n_rounds} rounds")
                break
            if reason == _TOL:
                if verbose:
                    print(f"Converged (small centers change) after {n_rounds} rounds")
                break
        elif reason in (_FIXED_POINT, _USED_UP):
            if first_batch_only:
                return None, visits
            n_old, n_batch = n_batch, min(2 * n_batch, n_samples)
            if verbose:
                print(f"Nested round {n_rounds}: batch grows to {n_batch}")
            if n_batch == n_samples:
                order = state.in_row_order(order, n_old)
    if first_batch_only:
        return None, visits

    row_labels = np.empty(n_samples, dtype=np.int32)
    if converged:
        # Every row's label is exact for these centers (the last round moved nothing).
        row_labels[order] = state.labels
        inertia = _nested_kernels.labelled_inertia(X, centers, row_labels, sample_weight, n_threads)
    else:
        inertia = _core.assign_labels(X, centers, row_labels, None, sample_weight, n_threads)
    result = NestedResult(
        centers=centers,
        labels=row_labels,
        inertia=inertia,
        n_rounds=n_rounds,
        n_passes=0,
        converged=converged,
    )
    return result, visits


def _best_swap(X, sample_weight, centers, random_state, n_threads):
    """The single center move that lowers the inertia of X the most: (center, row) or None.

    Lloyd iterations cannot move a center across the data: k-means++ can leave two centers in
    one cluster and none in another (in high dimension, where the spread inside clusters is
    large, it often does), and Lloyd keeps them so. Removing center j sends its rows to their
    second-nearest center; a center at row p takes every row closer to p. For candidate rows
    p (the farthest from their centers, and rows drawn in proportion to w * d^2) and every j,
    the inertia after the move is computed exactly: sum_i w_i min(d_i^2, ||x_i - p||^2), with
    d_i the distance to the nearest center other than j. Returns the best pair when it beats
    the current inertia, else None.
    """
    n_rows, n_clusters = X.shape[0], centers.shape[0]
    if n_clusters < 2 or n_rows <= n_clusters:
        return None
    distances = np.empty((n_rows, n_clusters), dtype=X.dtype)
    _core.euclidean_distances(X, centers, distances, n_threads)
    labels = np.empty(n_rows, dtype=np.int32)
    first, second, cost = np.empty(n_rows), np.empty(n_rows), np.empty(n_rows)
    current = _nested_kernels.swap_nearest(distances, sample_weight, labels, first, second, cost)
    if not current > 0:
        return None
    farthest = np.argpartition(cost, n_rows - _SWAP_FARTHEST)[-_SWAP_FARTHEST:]
    drawn = random_state.choice(n_rows, size=_SWAP_DRAWN, p=cost / current)
    rows = np.unique(np.concatenate([farthest, drawn]))
    to_rows = np.empty((n_rows, rows.shape[0]), dtype=X.dtype)
    _core.euclidean_distances(X, np.ascontiguousarray(X[rows]), to_rows, n_threads)
    totals = np.empty((n_clusters, rows.shape[0]))
    _nested_kernels.swap_totals(to_rows, sample_weight, labels, first, second, totals)
    center, candidate = np.unravel_index(np.argmin(totals), totals.shape)
    if not totals[center, candidate] < current * (1 - _SWAP_PREDICTED_GAIN):
        return None
    return int(center), int(rows[candidate])


def _first_batch_inertia(X, sample_weight, centers, first, n_threads):
    labels = np.empty(first.shape[0], dtype=np.int32)
    return _core.assign_labels(X, centers, labels, first, sample_weight, n_threads)


def _settle_first_batch(X, sample_weight, centers, order, init_size, max_visits, tol,
                        n_threads, verbose):  # fmt: skip
    """Rounds on the first batch; returns the rows visited and the first batch's inertia."""
    args = (X, sample_weight, centers, order, init_size, max_visits, tol, n_threads, verbose)
    _, visits = _run(*args, first_batch_only=True, rho=0)
    inertia = _first_batch_inertia(X, sample_weight, centers, order[:init_size], n_threads)
    return visits, inertia


def _swap_first_batch(X, sample_weight, centers, order, init_size, max_visits, tol,
                      n_threads, verbose, random_state, inertia):  # fmt: skip
    """Swaps (each followed by rounds on the first batch) while they help.

    Returns the rows visited.
    """
    args = (X, sample_weight, centers, order, init_size, max_visits, tol, n_threads, verbose)
    visits = 0
    first = order[:init_size]
    X_first = X[first]
    weight_first = None if sample_weight is None else sample_weight[first]
    for swap in range(_MAX_SWAPS):
        move = _best_swap(X_first, weight_first, centers, random_state, n_threads)
        if move is None:
            break
        before = centers.copy()
        centers[move[0]] = X_first[move[1]]
        _, used = _run(*args, first_batch_only=True, rho=0)
        visits += used
        after = _first_batch_inertia(X, sample_weight, centers, first, n_threads)
        if verbose:
            print(f"Swap {swap + 1}: center {move[0]} to a row; first batch inertia {after}")
        if not after < inertia * (1 - _SWAP_GAIN):
            centers[:] = before
            break
        inertia = after
    return visits


def fit_nested(X, sample_weight, random_state, seed_centers, *, n_clusters, n_init, init_size,
               max_iter, tol, n_threads, verbose):  # fmt: skip
    """Nested mini-batch k-means from the best of n_init seedings.

    One permutation of the rows is drawn; its first ``init_size`` rows are the first batch.
    The seedings use a "settling" sample, the first rows of that batch: all of it with one
    seeding, else half of it but at least _SETTLE_PER_CLUSTER rows per cluster. Each seeding
    (``seed_centers(X_sample, weight_sample)``, so every seed is a row of the sample) is
    settled by rounds on that sample up to a Lloyd fixed point, and the one with the lowest
    inertia there goes on: Lloyd's local minima are decided early, and these rounds are
    cheap. Swaps on the same sample follow (see _swap_first_batch), then the nested rounds
    from the first batch to the end. ``max_iter`` bounds the rows visited, over all rounds,
    to max_iter * n_samples. ``tol`` (already scaled to the data) ends the run on the whole
    data set when the summed squared center movement of a round is at most tol; 0 runs to a
    Lloyd fixed point.
    """
    n_samples = X.shape[0]
    if sample_weight is not None and (sample_weight < 0).any():
        raise ValueError("algorithm='nested' needs non-negative sample_weight.")
    # Every round reads rows, many times over: a row spread over several cache lines (a
    # Fortran-ordered or strided X, as pandas' to_numpy gives) costs more than a copy.
    X = np.ascontiguousarray(X)
    max_visits = max_iter * n_samples
    order = random_state.permutation(n_samples).astype(np.intp)
    settle_size = init_size
    if n_init > 1:
        settle_size = min(init_size, max(init_size // 2, _SETTLE_PER_CLUSTER * n_clusters))
    sample = order[:settle_size]
    X_sample = X[sample]
    weight_sample = None if sample_weight is None else sample_weight[sample]
    visits = 0
    best_centers, best_inertia = None, None
    for init_index in range(n_init):
        centers = seed_centers(X_sample, weight_sample)
        centers = np.array(centers, dtype=X.dtype, order="C", copy=True)
        used, inertia = _settle_first_batch(
            X, sample_weight, centers, order, settle_size, max_visits, tol, n_threads, verbose
        )  # fmt: skip
        visits += used
        if verbose and n_init > 1:
            print(f"Init {init_index + 1}/{n_init}: inertia on the first batch {inertia}")
        if best_inertia is None or inertia < best_inertia:
            best_centers, best_inertia = centers, inertia
    visits += _swap_first_batch(
        X, sample_weight, best_centers, order, settle_size, max_visits, tol, n_threads,
        verbose, random_state, best_inertia,
    )  # fmt: skip
    result, used = _run(
        X, sample_weight, best_centers, order, init_size, max(max_visits - visits, 1), tol,
        n_threads, verbose,
    )  # fmt: skip
    result.n_passes = math.ceil((visits + used) / n_samples)
    return result


# Its rounds, bounds and swaps are written for dense rows.
ACCEPTS_SPARSE = False


def working_bytes(params, settings, incoming):
    """An estimate of the memory a nested fit allocates besides the rows, in bytes: the
    seeding's (as Sculley's), and per row the permutation, labels, three bounds, runner,
    change lists and a round's working set; a copy of X when its rows are not contiguous."""
    n_samples, n_features = incoming.shape
    copy = 0 if incoming.c_contiguous else n_samples * n_features * incoming.dtype.itemsize
    return _sculley.working_bytes(params, settings, incoming) + n_samples * 88 + copy


def fit(source, params, settings, random_state, n_threads):
    """fit with algorithm="nested" on the source's rows; returns the SculleyState (whose
    running weights let a later partial_fit with algorithm="sculley" continue)."""
    source.check_finite(n_threads)  # every round reads all of the rows
    given = given_centers(params, source.n_features, source.dtype)
    for name, default in _SCULLEY_ONLY.items():
        if getattr(params, name) != default:
            warn_user(
                f"{name}={getattr(params, name)!r} has no effect with algorithm='nested' "
                "(it belongs to Sculley's algorithm).",
                UserWarning,
            )
    tol = _sculley.scaled_tol(params, source)

    def seed(X_sample, weight_sample):
        if given is not None:
            return given
        return seed_centers(X_sample, weight_sample, params, random_state, n_threads)

    result = fit_nested(
        source.X,
        source.sample_weight,
        random_state,
        seed,
        n_clusters=params.n_clusters,
        n_init=settings.n_init,
        init_size=settings.init_size,
        max_iter=params.max_iter,
        tol=tol,
        n_threads=n_threads,
        verbose=params.verbose,
    )
    # Running weights for a later partial_fit: each center has seen the weight of its rows.
    weights = None if source.sample_weight is None else source.sample_weight.astype(np.float64)
    return SculleyState(
        centers=result.centers,
        weight_sums=np.bincount(result.labels, weights, params.n_clusters).astype(np.float64),
        settings=settings,
        n_steps=result.n_rounds,
        n_iter=result.n_passes,
        feature_names=source.feature_names,
        inertia=result.inertia,
        labels=result.labels if params.compute_labels else None,
    )

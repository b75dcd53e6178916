"""Compiled k-means++: squared distances from candidate seeds to every row, in scikit-learn's
arithmetic, the weighted running sum the candidates are drawn from, and the loop over
seeds (the potentials' matrix product is NumPy's, as in scikit-learn).
"""

from cython cimport floating
from cython.parallel cimport prange, threadid

import numpy as np

from mbk._dense cimport ScratchArena, active_kernels
from mbk._rows cimport CHUNK_ROWS, Rows, _fill_rows, _round_up
from mbk._sampling_kernels cimport RandomStream
from mbk._tuning cimport clamp_threads

# ---------------------------------------------------------------------------------------------
# k-means++ candidate distances
# ---------------------------------------------------------------------------------------------

cdef void _pack_rows(
        const Rows* rows, const floating* data, Py_ssize_t start, Py_ssize_t end,
        floating* packed,        # OUT round_up(end - start, block) * n_features values
        Py_ssize_t block,        # rows per block (the kernel's candidate_rows)
) noexcept nogil:
    """Rows [start, end) in blocks of ``block`` rows, each block feature-major (the k-means++
    kernel's layout: one vector load reads one feature of consecutive rows, and a block's
    features follow each other in memory); the last block padded with zero rows."""
    cdef Py_ssize_t i, f, n = end - start, n_features = rows.n_features
    cdef const floating* row
    cdef floating* out
    for i in range(_round_up(n, block)):
        out = packed + (i // block * n_features) * block + i % block
        if i < n:
            row = data + (start + i) * rows.row_stride
            for f in range(n_features):
                out[f * block] = row[f * rows.col_stride]
        else:
            for f in range(n_features):
                out[f * block] = 0


def candidate_block_rows():
    """Rows per block of the k-means++ kernel's packed layout (see pack_rows; tests only)."""
    return active_kernels().candidate_rows


def pack_rows(const floating[:, :] X):
    """X in the k-means++ kernel's layout, in X's dtype (see _pack_rows): built once per
    seeding instead of once per candidate. Returns a 1-D array of
    round_up(n_samples, candidate_block_rows()) * n_features values."""
    cdef Rows rows
    cdef const Py_ssize_t[::1] all_rows = None
    cdef Py_ssize_t block = active_kernels().candidate_rows
    packed = np.empty(_round_up(X.shape[0], block) * X.shape[1],
                      dtype=np.float32 if floating is float else np.float64)
    cdef floating[::1] out = packed
    _fill_rows(&rows, X, all_rows, None)
    if X.shape[0] > 0 and X.shape[1] > 0:
        with nogil:
            _pack_rows(&rows, &X[0, 0], 0, X.shape[0], &out[0], block)
    return packed


def draw_candidates(
        const floating[::1] weights,            # IN (n_samples,)
        const floating[::1] values,             # IN (n_samples,) squared distances
        random_state,                           # IN/OUT numpy.random.RandomState
        double potential,                       # IN sum of weights * values, as NumPy has it
        Py_ssize_t[::1] out):                   # OUT (n_candidates,) rows
    """Tests only (kmeanspp_seeds draws its candidates inside its loop): the candidate rows
    scikit-learn draws, from random_state's stream:
    ``out = min(np.cumsum(weights * values).searchsorted(random_state.uniform(size=n) *
    potential), n_samples - 1)``, in one pass without the running-sum array.

    uniform(0, 1) is random_sample (0 + 1 * u), drawn here through the bit generator; the
    targets are u * potential in float64, as NumPy multiplies them. The running sum rounds as
    NumPy's cumsum (each product rounded to the dtype, then added one after another in the
    dtype) and is compared with the float64 targets exactly, as searchsorted compares them
    (side "left": the first row whose sum reaches the target). The pass stops at the largest
    target's row.
    """
    _draw_candidates(weights, values, RandomStream(random_state), potential, out)


cdef int _draw_candidates(
        const floating[::1] weights, const floating[::1] values, RandomStream stream,
        double potential, Py_ssize_t[::1] out) except -1:
    """draw_candidates' work (see there)."""
    cdef Py_ssize_t n = weights.shape[0], n_targets = out.shape[0], i, t, u, found = 0
    cdef floating total = 0, product
    cdef ScratchArena arena = ScratchArena()
    cdef Py_ssize_t* order
    cdef double* targets
    if values.shape[0] != n or n < 1:
        raise ValueError("weights and values must have the same, non-zero length")
    if n_targets < 1:
        return 0
    targets = <double*> arena.take(n_targets * sizeof(double))
    order = <Py_ssize_t*> arena.take(n_targets * sizeof(Py_ssize_t))
    stream.doubles(targets, n_targets)
    with nogil:
        for t in range(n_targets):
            targets[t] = targets[t] * potential
        # The targets' order, smallest first (insertion sort: a handful of values).
        for t in range(n_targets):
            u = t
            while u > 0 and targets[order[u - 1]] > targets[t]:
                order[u] = order[u - 1]
                u -= 1
            order[u] = t
        for i in range(n):
            product = weights[i] * values[i]
            total = total + product
            while found < n_targets and <double> total >= targets[order[found]]:
                out[order[found]] = i
                found += 1
            if found == n_targets:
                break
        while found < n_targets:  # beyond the last sum: searchsorted's n, clipped
            out[order[found]] = n - 1
            found += 1
    return 0


def kmeanspp_distances(
        const floating[:, :] X,                 # IN (n_samples, n_features)
        packed,                                 # IN pack_rows(X), or None
        const double[::1] x_sq_norms,           # IN (n_samples,) in float64
        const Py_ssize_t[::1] candidates,       # IN (n_candidates,) rows of X
        const double[::1] candidate_sq_norms,   # IN (n_candidates,) in float64
        closest,                                # IN floating[::1] (n_samples,) or None
        floating[:, ::1] out,                   # OUT (n_candidates, n_samples)
        int n_threads=1):
    """Squared distances from candidate seeds to every row, as scikit-learn's k-means++.

    ``out[cand, i] = min(closest[i], max(0, (-2 c_l.x_i + ||c_l||^2) + ||x_i||^2))`` with the
    arithmetic in float64 (float32 data is widened, as scikit-learn does) and the result
    rounded to X's dtype. Only the dot products are computed differently (accumulated
    feature by feature instead of by BLAS), so the distances agree with scikit-learn's to the
    last bit or so, and the seeds drawn from them are the same.

    The kernel reads X packed in blocks of rows (rows in vector lanes): from ``packed`` when
    given, else each thread packs its chunk of rows on every call.
    """
    cdef const floating[::1] closest_view
    if candidate_sq_norms.shape[0] != candidates.shape[0]:
        raise ValueError("one squared norm per row and per candidate is needed")
    if closest is None:
        closest_view = None
    else:
        closest_view = closest
    _candidate_distances(X, packed, x_sq_norms, candidates, &candidate_sq_norms[0]
                         if candidates.shape[0] > 0 else NULL, closest_view, out, n_threads)


def kmeanspp_seeds(
        const floating[:, :] X,                 # IN (n_samples, n_features)
        packed,                                 # IN pack_rows(X), or None
        const double[::1] x_sq_norms,           # IN (n_samples,) in float64
        const floating[::1] weights,            # IN (n_samples,)
        random_state,                           # IN/OUT numpy.random.RandomState
        trials,                                 # TMP two (n_trials, n_samples) arrays
        Py_ssize_t[::1] candidates,             # TMP (n_trials,)
        const floating[::1] closest,            # IN (n_samples,) distances to seed 0
        double potential,                       # IN sum of weights * closest, as NumPy has it
        floating[:, ::1] centers,               # INOUT (n_clusters, n_features): row 0 set
        Py_ssize_t[::1] indices,                # INOUT (n_clusters,): entry 0 set
        int n_threads=1):
    """Seeds 1 .. n_clusters - 1 of greedy k-means++, each from its trials: candidates
    drawn (_draw_candidates), their distances to every row (_candidate_distances), their
    potentials ``trial_distances @ weights[:, None]`` (the matrix product scikit-learn computes:
    its rounding is the BLAS call's, so NumPy's), and the lowest potential kept (the first
    on ties, as argmin). One call for all seeds: between seeds, Python and NumPy calls would
    find their code and data evicted by the distance pass."""
    cdef Py_ssize_t n_clusters = centers.shape[0], c, t, best, f, row
    cdef floating[:, ::1] trial_sq
    cdef const floating[:, :] trial_potentials
    cdef RandomStream stream = RandomStream(random_state)
    weight_column = np.asarray(weights).reshape(-1, 1)  # a view: scikit-learn's shape
    for c in range(1, n_clusters):
        trial_sq = trials[c % 2]  # closest is a row of the other one
        _draw_candidates(weights, closest, stream, potential, candidates)
        _candidate_distances(X, packed, x_sq_norms, candidates, NULL, closest, trial_sq,
                             n_threads)
        trial_potentials = trials[c % 2] @ weight_column
        best = 0
        for t in range(1, candidates.shape[0]):
            if trial_potentials[t, 0] < trial_potentials[best, 0]:
                best = t
        potential = trial_potentials[best, 0]
        closest = trial_sq[best]
        row = candidates[best]
        for f in range(X.shape[1]):
            centers[c, f] = X[row, f]
        indices[c] = row


cdef int _candidate_distances(
        const floating[:, :] X, packed, const double[::1] x_sq_norms,
        const Py_ssize_t[::1] candidates,
        const double* candidate_sq_norms,      # NULL: x_sq_norms[candidates]
        const floating[::1] closest,           # None: no closest distances yet
        floating[:, ::1] out, int n_threads) except -1:
    """kmeanspp_distances' work (see there)."""
    cdef Rows rows
    cdef ScratchArena arena = ScratchArena()
    cdef Py_ssize_t n_samples = X.shape[0], n_features = X.shape[1]
    cdef Py_ssize_t n_candidates = candidates.shape[0], cand, f, chunk, start, end, n_chunks
    cdef Py_ssize_t block = active_kernels().candidate_rows
    cdef Py_ssize_t chunk_rows = _round_up(CHUNK_ROWS, block), per_thread
    cdef double* candidate_rows
    cdef floating* xt
    cdef floating* packing
    cdef const floating[::1] packed_view
    cdef const floating* packed_ptr = NULL
    cdef const floating* closest_ptr = NULL
    cdef double* candidate_norms
    cdef const Py_ssize_t[::1] all_rows = None
    _fill_rows(&rows, X, all_rows, None)
    if x_sq_norms.shape[0] != n_samples:
        raise ValueError("one squared norm per row and per candidate is needed")
    if out.shape[0] != n_candidates or out.shape[1] != n_samples or n_candidates < 1:
        raise ValueError("out must have shape (n_candidates, n_samples), n_candidates >= 1")
    for cand in range(n_candidates):
        if not 0 <= candidates[cand] < n_samples:
            raise ValueError("candidate rows must be rows of X")
    if closest is not None:
        if closest.shape[0] != n_samples:
            raise ValueError("closest must have one entry per row of X")
        closest_ptr = &closest[0]
    if packed is not None:
        packed_view = packed
        if packed_view.shape[0] != _round_up(n_samples, block) * n_features:
            raise ValueError("packed must be pack_rows(X) for the kernel variant in use")
        packed_ptr = &packed_view[0]
    n_threads = clamp_threads(n_threads, n_samples, n_candidates, n_features)
    n_chunks = (n_samples + chunk_rows - 1) // chunk_rows
    per_thread = 0 if packed is not None else n_features * chunk_rows
    candidate_rows = <double*> arena.take(n_candidates * (n_features + 1) * sizeof(double))
    packing = <floating*> arena.take(n_threads * per_thread * sizeof(floating))
    candidate_norms = candidate_rows + n_candidates * n_features
    with nogil:
        for cand in range(n_candidates):
            for f in range(n_features):
                candidate_rows[cand * n_features + f] = X[candidates[cand], f]
            # A row's norm does not depend on the rows computed beside it (tested), so a
            # candidate's is its row's.
            candidate_norms[cand] = (candidate_sq_norms[cand] if candidate_sq_norms != NULL
                                     else x_sq_norms[candidates[cand]])
        for chunk in prange(n_chunks, schedule="static", num_threads=n_threads):
            start = chunk * chunk_rows
            end = min(start + chunk_rows, n_samples)
            if packed_ptr != NULL:
                xt = <floating*> packed_ptr + start * n_features
            else:
                xt = packing + threadid() * per_thread
                _pack_rows(&rows, &X[0, 0], start, end, xt, block)
            if floating is float:
                active_kernels().candidates_float(
                    xt, end - start, n_features, candidate_rows, <int> n_candidates,
                    candidate_norms, &x_sq_norms[start],
                    closest_ptr + start if closest_ptr != NULL else NULL,
                    &out[0, start], n_samples)
            else:
                active_kernels().candidates_double(
                    xt, end - start, n_features, candidate_rows, <int> n_candidates,
                    candidate_norms, &x_sq_norms[start],
                    closest_ptr + start if closest_ptr != NULL else NULL,
                    &out[0, start], n_samples)
    return 0

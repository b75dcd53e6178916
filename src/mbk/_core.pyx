"""mbk's compiled entry points: assign, step (assign then update), accumulate and apply (the
update's two halves), distances and the finiteness scan; and for CSR rows the check of a
matrix, its rows' norms, assign and distances.

Each ``def`` here takes arrays, checks their shapes, builds the row view (_rows.pxd) and its
scratch, releases the GIL and calls a kernel family (_dense, _sparse). Python validates the
data once per public call before it gets here (mbk._sources); the steps with their schedule
(reassignment, early stopping) have theirs in _sculley_loop.
"""

from cython cimport floating
from cython.parallel cimport prange, threadid

from mbk._dense cimport (
    Centers, FiniteScan, ScratchArena, StepScratch, _accumulate, _apply, _assign_rows,
    _batch_weights, _check_centers, _distance_chunk, _finish_scan, _minibatch_step,
    _padded_count, _prepare_centers, _scan_until, _start_scan, _step_setup, _tile_scratch,
)
from mbk._kernels cimport MBK_OPENMP_ENABLED, mbk_omp_max_threads
from mbk._rows cimport CHUNK_ROWS, CsrRows, Rows, csr_index, _fill_csr_rows, _fill_rows, _n_chunks
from mbk._sparse cimport FeatureMajorCenters, _assign_csr, _csr_distance_chunk, _double_norms
from mbk._tuning cimport SCAN_CHUNK_BYTES, clamp_threads, threads_for

import numpy as np

OPENMP_ENABLED = bool(MBK_OPENMP_ENABLED)
CHUNK_SIZE = CHUNK_ROWS


def omp_max_threads():
    """Threads an OpenMP region would use now (honours OMP_NUM_THREADS and threadpoolctl)."""
    return mbk_omp_max_threads()


# ---------------------------------------------------------------------------------------------
# Assignment and distances
# ---------------------------------------------------------------------------------------------

def assign_labels(
        const floating[:, :] X,                              # IN
        const floating[:, ::1] centers,                      # IN
        int[::1] labels,                                     # OUT
        const Py_ssize_t[::1] sample_indices=None,           # IN rows of X to use; None = all
        sample_weight=None,             # IN floating[::1] per row of X; None = unit
        int n_threads=1,
        bint compute_inertia=True,
        bint check_finite=False):
    """Write each row's nearest center to ``labels`` and return the weighted inertia.

    Returns the sum over rows of ``w * ||x - c_label||^2`` as a Python float (accumulated in
    float64 per chunk of 256 rows, chunks added in order); 0.0 without ``compute_inertia``.
    With ``check_finite`` (all rows only), X is scanned for NaN and infinity on the same
    pass, while its rows are in cache, and None is returned if it holds any: the labels are
    then meaningless.
    """
    cdef Rows rows
    cdef Centers prepared
    cdef ScratchArena arena = ScratchArena()
    cdef Py_ssize_t n_clusters = centers.shape[0], n_features = X.shape[1], chunk
    cdef Py_ssize_t n_chunks
    cdef char* chunk_finite = NULL
    cdef bint finite = True
    cdef double inertia
    cdef floating* prepared_storage
    cdef floating* row_tiles
    cdef double* chunk_inertia

    _fill_rows(&rows, X, sample_indices, sample_weight)
    _check_centers(centers, n_features)
    if labels.shape[0] != rows.n_rows:
        raise ValueError("labels must have one entry per assigned row")
    if check_finite and sample_indices is not None:
        raise ValueError("check_finite scans all rows: pass no sample_indices")
    if rows.n_rows == 0:
        return 0.0
    n_chunks = _n_chunks(rows.n_rows)
    n_threads = clamp_threads(n_threads, rows.n_rows, n_clusters, n_features)
    prepared_storage = <floating*> arena.take(
        _padded_count(n_clusters, floating is double) * (n_features + 1) * sizeof(floating))
    row_tiles = <floating*> arena.take(n_threads * _tile_scratch(n_features) * sizeof(floating))
    chunk_inertia = <double*> arena.take(n_chunks * sizeof(double))
    if check_finite:
        chunk_finite = <char*> arena.take(n_chunks)
    with nogil:
        _prepare_centers(&prepared, centers, prepared_storage)
        inertia = _assign_rows(&rows, &prepared, &labels[0], row_tiles, chunk_inertia,
                               n_threads, NULL, compute_inertia, chunk_finite)
        if check_finite:
            for chunk in range(n_chunks):
                finite &= chunk_finite[chunk]
    return inertia if finite else None


def euclidean_distances(
        const floating[:, :] X,               # IN
        const floating[:, ::1] centers,       # IN
        floating[:, ::1] out,                 # OUT (n_samples, n_clusters)
        int n_threads=1):
    """Euclidean distance from every row of X to every center, by direct differences."""
    cdef Rows rows
    cdef Centers prepared
    cdef ScratchArena arena = ScratchArena()
    cdef Py_ssize_t n_clusters = centers.shape[0], n_features = X.shape[1]
    cdef Py_ssize_t chunk, start, end, n_chunks
    cdef const Py_ssize_t[::1] all_rows = None
    cdef floating* prepared_storage
    cdef floating* row_tiles
    _fill_rows(&rows, X, all_rows, None)
    _check_centers(centers, n_features)
    if out.shape[0] != rows.n_rows or out.shape[1] != n_clusters:
        raise ValueError("out must have shape (n_samples, n_clusters)")
    if rows.n_rows == 0:
        return
    n_threads = clamp_threads(n_threads, rows.n_rows, n_clusters, n_features)
    n_chunks = _n_chunks(rows.n_rows)
    prepared_storage = <floating*> arena.take(
        _padded_count(n_clusters, floating is double) * (n_features + 1) * sizeof(floating))
    row_tiles = <floating*> arena.take(n_threads * _tile_scratch(n_features) * sizeof(floating))
    with nogil:
        _prepare_centers(&prepared, centers, prepared_storage)
        for chunk in prange(n_chunks, schedule="static", num_threads=n_threads):
            start = chunk * CHUNK_ROWS
            end = min(start + CHUNK_ROWS, rows.n_rows)
            _distance_chunk(&rows, &prepared, start, end, &out[0, 0],
                            row_tiles + threadid() * _tile_scratch(n_features))


# ---------------------------------------------------------------------------------------------
# The finiteness scan
# ---------------------------------------------------------------------------------------------

def all_finite(const floating[:, :] X, int n_threads=1, Py_ssize_t rows_in_pieces=0):
    """Whether X holds no NaN and no infinity (a parallel scan, in place, any layout).

    The first ``rows_in_pieces`` rows are scanned a piece at a time on this thread first,
    as fit's steps scan X (tests only pass it)."""
    cdef FiniteScan scan
    cdef bint finite
    cdef int never = 0
    if X.shape[0] == 0 or X.shape[1] == 0:
        return True
    _start_scan(&scan, X)
    with nogil:
        _scan_until(&scan, &never, rows_in_pieces, &X[0, 0])
        finite = _finish_scan(&scan, n_threads, &X[0, 0])
    return finite


# ---------------------------------------------------------------------------------------------
# The step, and the update's two halves
# ---------------------------------------------------------------------------------------------

def minibatch_step(
        const floating[:, :] X,                              # IN
        const floating[:, ::1] centers_old,                  # IN
        floating[:, ::1] centers_new,                        # OUT (may be centers_old)
        double[::1] weight_sums,                             # INOUT (n_clusters,)
        int[::1] labels,                                     # OUT (n_batch,)
        const Py_ssize_t[::1] sample_indices=None,           # IN the batch; None = all rows
        sample_weight=None,             # IN floating[::1] per row of X; None = unit
        int n_threads=1,
        bint check_finite=False):
    """One mini-batch step: label the batch with centers_old, then move each center
    (accumulate from center * running weight, then apply: scikit-learn's order).

    The step alone, without its schedule, for tests and callers of the kernels (mbk's loops
    run it with the schedule: _sculley_loop).

    Returns the batch's weighted inertia against centers_old. Random reassignment of
    low-weight centers is the caller's job (it draws random numbers). With
    ``check_finite``, the batch's rows are scanned for NaN and infinity on the assignment
    pass (while they are in cache), and if there are any no center moves and None is
    returned.
    """
    cdef Rows rows
    cdef StepScratch scratch
    cdef ScratchArena arena = ScratchArena()
    cdef double inertia
    cdef char* chunk_finite
    cdef bint finite = True
    _step_setup(&rows, &scratch, &chunk_finite, arena, X, sample_indices, sample_weight,
                centers_old, centers_new, weight_sums, labels.shape[0], n_threads, check_finite)
    with nogil:
        inertia = _minibatch_step(&rows, centers_old, centers_new, &weight_sums[0],
                                  &labels[0], &scratch, NULL, chunk_finite, &finite)
    return inertia if finite else None


cdef int _check_labels(const int[::1] labels, Py_ssize_t n_rows, Py_ssize_t n_clusters) except -1:
    cdef Py_ssize_t i
    if labels.shape[0] != n_rows:
        raise ValueError("labels must have one entry per batch row")
    for i in range(n_rows):
        if not 0 <= labels[i] < n_clusters:
            raise ValueError(f"labels must be centers 0 .. {n_clusters - 1}; got {labels[i]}")
    return 0


def accumulate(
        const floating[:, :] X,                              # IN
        const int[::1] labels,                               # IN (n_batch,) each row's center
        double[:, ::1] sums,                                 # OUT (n_clusters, n_features)
        double[::1] batch_weights,                           # OUT (n_clusters,)
        const Py_ssize_t[::1] sample_indices=None,           # IN the batch; None = all rows
        sample_weight=None,             # IN floating[::1] per row of X; None = unit
        centers=None,                   # IN floating[:, ::1] with weight_sums: the seed
        weight_sums=None):              # IN double[::1] (n_clusters,)
    """The update's first half: each center's weighted sum of its batch rows, and the weight
    it received. Not called by mbk itself yet: it is what a worker holding rows will run
    (the Dask issue); tests hold it to the step's bits.

    ``sums[j] = s_j + sum_{i: labels[i] = j} w_i x_i`` (rows added in batch order, in
    float64) and ``batch_weights[j] = sum_{i: labels[i] = j} w_i``, where the seed s_j is
    ``centers[j] * weight_sums[j]`` when they are given (the in-memory step's order: apply
    with ``seeded=True`` then gives its bits) and 0 otherwise (a worker's partial sums, which
    a caller may add up before applying them with ``seeded=False``).
    """
    cdef Rows rows
    cdef Py_ssize_t n_clusters = sums.shape[0]
    cdef const floating[:, ::1] seed_centers
    cdef const double[::1] seed_weights
    cdef const floating* seed_ptr = NULL
    cdef const double* seed_weight_ptr = NULL
    _fill_rows(&rows, X, sample_indices, sample_weight)
    if sums.shape[1] != X.shape[1] or batch_weights.shape[0] != n_clusters or n_clusters < 1:
        raise ValueError("sums must be (n_clusters, n_features), batch_weights (n_clusters,)")
    _check_labels(labels, rows.n_rows, n_clusters)
    if (centers is None) != (weight_sums is None):
        raise ValueError("the seed needs both centers and weight_sums")
    if centers is not None:
        seed_centers = centers
        seed_weights = weight_sums
        _check_centers(seed_centers, X.shape[1])
        if seed_centers.shape[0] != n_clusters or seed_weights.shape[0] != n_clusters:
            raise ValueError("centers and weight_sums must have one entry per center")
        seed_ptr = &seed_centers[0, 0]
        seed_weight_ptr = &seed_weights[0]
    with nogil:
        _batch_weights(&rows, <const floating*> rows.data, &labels[0] if rows.n_rows else NULL,
                       n_clusters, &batch_weights[0])
        _accumulate(&rows, &labels[0] if rows.n_rows else NULL, n_clusters, seed_ptr,
                    seed_weight_ptr, &sums[0, 0])


def apply(
        const floating[:, ::1] centers_old,                  # IN
        floating[:, ::1] centers_new,                        # OUT (may be centers_old)
        double[::1] weight_sums,                             # INOUT (n_clusters,)
        const double[:, ::1] sums,                           # IN (n_clusters, n_features)
        const double[::1] batch_weights,                     # IN (n_clusters,)
        bint seeded):
    """The update's second half: each center's incremental mean from its sums (see
    accumulate: what the client of a worker will run).

    For every center with batch weight W_j > 0: ``v_j += W_j`` and ``c_j = (s + S_j) *
    (1 / v_j)``, where S_j = sums[j] and s = 0 when ``seeded`` (the sums start from
    ``c_j * v_j``, see accumulate), else s = c_j * v_j (old values). Centers with no weight
    stay.
    """
    cdef Py_ssize_t n_clusters = centers_old.shape[0], n_features = centers_old.shape[1]
    _check_centers(centers_old, n_features)
    if (centers_new.shape[0] != n_clusters or centers_new.shape[1] != n_features
            or weight_sums.shape[0] != n_clusters):
        raise ValueError("centers_new and weight_sums must match centers_old")
    if (sums.shape[0] != n_clusters or sums.shape[1] != n_features
            or batch_weights.shape[0] != n_clusters):
        raise ValueError("sums and batch_weights must match the centers")
    with nogil:
        _apply(centers_old, centers_new, &weight_sums[0], &sums[0, 0], &batch_weights[0],
               seeded)


# ---------------------------------------------------------------------------------------------
# CSR rows
# ---------------------------------------------------------------------------------------------

# What check_csr finds, by bit.
cdef enum:
    INDEX_OUT_OF_RANGE = 1
    HAS_NAN = 2
    HAS_INFINITY = 4


cdef int _check_entries(
        const floating* data, const csr_index* indices, Py_ssize_t start, Py_ssize_t end,
        Py_ssize_t n_features) noexcept nogil:
    cdef Py_ssize_t p
    cdef int found = 0
    cdef floating x
    for p in range(start, end):
        if not 0 <= indices[p] < n_features:
            found |= INDEX_OUT_OF_RANGE
        x = data[p]
        if x - x != 0:  # NaN or infinity
            found |= HAS_NAN if x != x else HAS_INFINITY
    return found


def check_csr(
        const floating[::1] data,
        const csr_index[::1] indices,
        const csr_index[::1] indptr,
        Py_ssize_t n_features,
        int n_threads=1):
    """What makes (data, indices, indptr) an unusable CSR matrix of n_features columns, as a
    phrase ("indptr ...", "an index ...", "NaN", "infinity"), or None when it is sound: indptr
    starts at 0, never decreases and ends within indices and data; every stored column is in
    [0, n_features); every stored value is finite. The kernels rely on all of it."""
    cdef Py_ssize_t n_rows = indptr.shape[0] - 1, i, nnz, chunk, n_chunks
    cdef Py_ssize_t per_chunk = SCAN_CHUNK_BYTES // sizeof(floating)
    cdef int found = 0
    cdef ScratchArena arena = ScratchArena()
    cdef int* chunk_found
    if n_rows < 0:
        return "indptr is empty"
    if indptr[0] != 0:
        return f"indptr starts at {indptr[0]}, not 0"
    for i in range(n_rows):
        if indptr[i + 1] < indptr[i]:
            return f"indptr decreases from {indptr[i]} to {indptr[i + 1]} at row {i}"
    nnz = indptr[n_rows]
    if nnz > indices.shape[0] or nnz > data.shape[0]:
        return (f"indptr ends at {nnz} but indices and data hold {indices.shape[0]} and "
                f"{data.shape[0]} entries")
    if nnz == 0:
        return None
    n_chunks = (nnz + per_chunk - 1) // per_chunk
    chunk_found = <int*> arena.take(n_chunks * sizeof(int))
    n_threads = threads_for(n_threads, n_chunks, 0.25 * nnz)
    with nogil:
        for chunk in prange(n_chunks, schedule="static", num_threads=n_threads):
            chunk_found[chunk] = _check_entries(
                &data[0], &indices[0], chunk * per_chunk, min((chunk + 1) * per_chunk, nnz),
                n_features)
        for chunk in range(n_chunks):
            found = found | chunk_found[chunk]
    if found & INDEX_OUT_OF_RANGE:
        return f"an index in indices is outside [0, {n_features})"
    if found & HAS_NAN:
        return "NaN"
    if found & HAS_INFINITY:
        return "infinity"
    return None


def csr_row_sq_norms(const floating[::1] data, const csr_index[::1] indptr):
    """Each row's squared norm, the stored values' squares summed in stored order in the
    data's type (scikit-learn's row_norms of a CSR matrix; duplicates count one by one)."""
    cdef Py_ssize_t n_rows = indptr.shape[0] - 1, i, p
    out = np.zeros(n_rows, dtype=np.float32 if floating is float else np.float64)
    cdef floating[::1] norms = out
    cdef floating total
    with nogil:
        for i in range(n_rows):
            total = 0
            for p in range(indptr[i], indptr[i + 1]):
                total = total + data[p] * data[p]
            norms[i] = total
    return out


cdef int _check_held(
        FeatureMajorCenters centers, Py_ssize_t n_features, bint is_double) except -1:
    if centers.view.n_features != n_features:
        raise ValueError(f"centers have {centers.view.n_features} features, X has {n_features}")
    if centers.is_double != is_double:
        raise ValueError("the centers and X must have the same dtype")
    return 0


def assign_labels_csr(
        const floating[::1] data,                            # IN a checked CSR matrix
        const csr_index[::1] indices,                        # IN
        const csr_index[::1] indptr,                         # IN
        Py_ssize_t n_features,
        FeatureMajorCenters centers,                         # IN
        int[::1] labels,                                     # OUT
        const Py_ssize_t[::1] sample_indices=None,           # IN rows to use; None = all
        sample_weight=None,             # IN floating[::1] per row; None = unit
        int n_threads=1,
        bint compute_inertia=True):
    """Write each CSR row's nearest center to ``labels`` and return the weighted inertia
    (scikit-learn's sparse formula, per row; float64 per chunk of 256 rows, chunks added in
    order); 0.0 without ``compute_inertia``. The matrix must pass check_csr."""
    cdef CsrRows rows
    cdef ScratchArena arena = ScratchArena()
    cdef Py_ssize_t n_padded = centers.view.n_padded, n_chunks
    cdef double inertia
    cdef floating* dots
    cdef double* chunk_inertia
    _fill_csr_rows(&rows, data, indices, indptr, n_features, sample_indices, sample_weight)
    _check_held(centers, n_features, floating is double)
    if labels.shape[0] != rows.n_rows:
        raise ValueError("labels must have one entry per assigned row")
    if rows.n_rows == 0:
        return 0.0
    n_chunks = _n_chunks(rows.n_rows)
    n_threads = threads_for(n_threads, n_chunks, 32.0 * rows.n_rows * n_padded)
    dots = <floating*> arena.take(n_threads * n_padded * sizeof(floating))
    chunk_inertia = <double*> arena.take(n_chunks * sizeof(double))
    with nogil:
        inertia = _assign_csr(&rows, <const floating*> rows.data,
                              <const csr_index*> rows.indices, &indptr[0], &centers.view,
                              &labels[0], dots, chunk_inertia, n_threads, compute_inertia)
    return inertia


def euclidean_distances_csr(
        const floating[::1] data,               # IN a checked CSR matrix
        const csr_index[::1] indices,           # IN
        const csr_index[::1] indptr,            # IN
        Py_ssize_t n_features,
        FeatureMajorCenters centers,            # IN
        floating[:, ::1] out,                   # OUT (n_samples, n_clusters)
        int n_threads=1):
    """Squared Euclidean distance from every CSR row to every center, scikit-learn's way for
    sparse rows (the norms' expansion, in float64, at least 0), rounded to out's type."""
    cdef CsrRows rows
    cdef ScratchArena arena = ScratchArena()
    cdef const Py_ssize_t[::1] all_rows = None
    cdef Py_ssize_t n_padded = centers.view.n_padded, chunk, start, n_chunks
    cdef double* dots
    cdef double* sq_norms
    _fill_csr_rows(&rows, data, indices, indptr, n_features, all_rows, None)
    _check_held(centers, n_features, floating is double)
    if out.shape[0] != rows.n_rows or out.shape[1] != centers.view.n_clusters:
        raise ValueError("out must have shape (n_samples, n_clusters)")
    if rows.n_rows == 0:
        return
    n_chunks = _n_chunks(rows.n_rows)
    n_threads = threads_for(n_threads, n_chunks, 32.0 * rows.n_rows * n_padded)
    dots = <double*> arena.take(n_threads * n_padded * sizeof(double))
    sq_norms = <double*> arena.take(centers.view.n_clusters * sizeof(double))
    with nogil:
        _double_norms(&centers.view, centers.is_double, sq_norms)
        for chunk in prange(n_chunks, schedule="dynamic", num_threads=n_threads):
            start = chunk * CHUNK_ROWS
            _csr_distance_chunk(&rows, <const floating*> rows.data,
                                <const csr_index*> rows.indices, &indptr[0], &centers.view,
                                sq_norms, start, min(start + CHUNK_ROWS, rows.n_rows),
                                &out[0, 0], dots + threadid() * n_padded)


ctypedef fused distance_out:
    float
    double


def csr_sq_distances_to_rows(
        const double[::1] a_data,                 # IN rows A as CSR (float64: widened)
        const csr_index[::1] a_indices,           # IN
        const csr_index[::1] a_indptr,            # IN
        const double[::1] t_data,                 # IN X transposed, as CSR (features x rows)
        const csr_index[::1] t_indices,           # IN
        const csr_index[::1] t_indptr,            # IN
        const double[::1] a_sq_norms,             # IN (n_a,) A's squared norms, float64
        const double[::1] x_sq_norms,             # IN (n_x,) X's squared norms, float64
        distance_out[:, ::1] out):                # OUT (n_a, n_x)
    """Squared distances from each row of A to each row of X as scikit-learn computes them
    on sparse rows: max(-2 (A X^T) + ||a||^2 + ||x||^2, 0), rounded to out's type before
    the clip. The product is scipy's sparse product's, term for term: for each entry (k, a)
    of a row of A in stored order, a * b added for each entry (j, b) of row k of X^T in
    stored order (k-means++ on CSR; the caller converts X^T once)."""
    cdef Py_ssize_t n_a = a_indptr.shape[0] - 1, n_x = x_sq_norms.shape[0], i, j, p, q, k
    cdef double a, d
    cdef distance_out v
    cdef double[::1] sums = np.zeros(n_x)
    if out.shape[0] != n_a or out.shape[1] != n_x or a_sq_norms.shape[0] != n_a:
        raise ValueError("out must be (rows of A, rows of X), with a norm per row")
    if t_indptr.shape[0] < 1 or (n_x > 0 and t_indices.shape[0] < t_indptr[t_indptr.shape[0] - 1]):
        raise ValueError("X^T's indptr must be within its indices")
    with nogil:
        for i in range(n_a):
            for j in range(n_x):
                sums[j] = 0
            for p in range(a_indptr[i], a_indptr[i + 1]):
                k = a_indices[p]
                a = a_data[p]
                for q in range(t_indptr[k], t_indptr[k + 1]):
                    sums[t_indices[q]] += a * t_data[q]
            for j in range(n_x):
                d = -2 * sums[j]
                d = d + a_sq_norms[i]
                d = d + x_sq_norms[j]
                v = <distance_out> d
                out[i, j] = 0 if v < 0 else v

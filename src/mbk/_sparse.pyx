"""The CSR kernel family: centers prepared feature-major, the nearest-center assignment with
scikit-learn's sparse inertia, distances to every center, the center update in scikit-learn's
order, the mini-batch step made of them, and the reassignment of small centers onto CSR rows.
Declarations shared with the other modules are in _sparse.pxd; the entry points that check
their arguments and raise are in _core (and the loops' scheduled step in _sculley_loop).

Each worker has one body per float type and per index type (fused ``floating`` and
``csr_index``), and follows the dense family's rules for thread-count invariance: rows in
fixed chunks of CHUNK_ROWS, chunk inertias summed in chunk order, and each center updated by
the one thread that owns it.

Why feature-major: a stored entry (column f, value x) adds x * c[j, f] to the dot product of
its row with every center j. With the centers row-major, that is k reads k x n_features
values apart, one cache miss each on large problems; feature-major, it is one run of k
values. The products are summed over the row's stored entries in stored order, center by
center, as scikit-learn sums them, so the labels keep scikit-learn's bits.
"""

from cython.parallel cimport prange, threadid
from libc.float cimport DBL_MAX, FLT_MAX
from libc.math cimport sqrt

from mbk._dense cimport (
    _apply_center, _restart_small_weights, _seed_sums, _small_centers,
)
from mbk._rows cimport CHUNK_ROWS, _csr_row, _n_chunks, _weight
from mbk._tuning cimport threads_for

# Features per block of the transpose: a block of the feature-major copy (FEATURE_BLOCK x
# n_clusters values) stays in cache while every center writes its part of it.
cdef enum:
    FEATURE_BLOCK = 64


# ---------------------------------------------------------------------------------------------
# Centers
# ---------------------------------------------------------------------------------------------

cdef Py_ssize_t _csr_centers_size(Py_ssize_t n_clusters, Py_ssize_t n_features) noexcept nogil:
    """Values of storage the prepared centers need."""
    return n_clusters * (n_features + 1)


cdef void _transpose_block(
        const floating* rows, floating* transposed, Py_ssize_t n_clusters,
        Py_ssize_t n_features, Py_ssize_t first) noexcept nogil:
    cdef Py_ssize_t last = min(first + FEATURE_BLOCK, n_features), j, f
    for j in range(n_clusters):
        for f in range(first, last):
            transposed[f * n_clusters + j] = rows[j * n_features + f]


cdef void _prepare_csr_centers(
        CsrCenters* prepared,
        const floating[:, ::1] centers,
        floating* storage,      # OUT _csr_centers_size values
        int n_threads,
) noexcept nogil:
    cdef Py_ssize_t n_clusters = centers.shape[0], n_features = centers.shape[1]
    cdef Py_ssize_t j, f, block, n_blocks = (n_features + FEATURE_BLOCK - 1) // FEATURE_BLOCK
    cdef floating* transposed = storage
    cdef floating* sq_norms = storage + n_clusters * n_features
    cdef const floating* rows = &centers[0, 0]
    cdef floating norm
    # Squared norms as the dense family computes them (features in order, in the centers'
    # type), and as scikit-learn's labelling uses them.
    for j in range(n_clusters):
        norm = 0
        for f in range(n_features):
            norm = norm + rows[j * n_features + f] * rows[j * n_features + f]
        sq_norms[j] = norm
    # A copy: the thread count changes nothing but its speed.
    n_threads = threads_for(n_threads, n_blocks, 0.25 * n_clusters * n_features)
    for block in prange(n_blocks, schedule="static", num_threads=n_threads):
        _transpose_block(rows, transposed, n_clusters, n_features, block * FEATURE_BLOCK)
    prepared.rows = rows
    prepared.transposed = transposed
    prepared.sq_norms = sq_norms
    prepared.n_clusters = n_clusters
    prepared.n_features = n_features


# ---------------------------------------------------------------------------------------------
# Nearest-center assignment and distances
# ---------------------------------------------------------------------------------------------

cdef inline void _csr_dots(
        const floating* data, const csr_index* indices, Py_ssize_t start, Py_ssize_t end,
        const floating* transposed, Py_ssize_t n_clusters,
        floating* dots,         # OUT (n_clusters,) sum over the entries of x * c[j, column]
) noexcept nogil:
    """A row's dot product with every center, over its stored entries in stored order."""
    cdef Py_ssize_t p, j
    cdef const floating* column
    cdef floating x
    for j in range(n_clusters):
        dots[j] = 0
    for p in range(start, end):
        x = data[p]
        column = transposed + indices[p] * n_clusters
        for j in range(n_clusters):
            dots[j] += column[j] * x


cdef inline int _nearest(
        const floating* dots, const floating* sq_norms, Py_ssize_t n_clusters) noexcept nogil:
    """argmin over centers of ||c||^2 - 2 x.c; ties go to the lowest index."""
    cdef floating least = FLT_MAX if floating is float else DBL_MAX, distance
    cdef int label = 0
    cdef Py_ssize_t j
    for j in range(n_clusters):
        distance = sq_norms[j] - 2 * dots[j]
        if distance < least:
            least = distance
            label = <int> j
    return label


cdef inline floating _sparse_sq_distance(
        const floating* data, const csr_index* indices, Py_ssize_t start, Py_ssize_t end,
        const floating* center, floating center_sq_norm) noexcept nogil:
    """||x - c||^2 as scikit-learn's sparse inertia computes it: the sum over stored entries
    of (x - c)^2 - c^2, plus ||c||^2, at least 0 (duplicate entries count one by one)."""
    cdef floating result = 0, b, t
    cdef Py_ssize_t p
    for p in range(start, end):
        b = center[indices[p]]
        t = data[p] - b
        result += t * t - b * b
    result += center_sq_norm
    return result if result > 0 else 0


cdef double _assign_csr_chunk(
        const CsrRows* rows, const floating* data, const csr_index* indices,
        const csr_index* indptr, const CsrCenters* centers, Py_ssize_t start, Py_ssize_t end,
        int* labels, floating* dots, bint with_inertia) noexcept nogil:
    """Label positions [start, end) of the view; returns their weighted inertia."""
    cdef Py_ssize_t i, r, n_clusters = centers.n_clusters, n_features = centers.n_features
    cdef const floating* transposed = <const floating*> centers.transposed
    cdef const floating* sq_norms = <const floating*> centers.sq_norms
    cdef const floating* center_rows = <const floating*> centers.rows
    cdef int label
    cdef double inertia = 0
    for i in range(start, end):
        r = _csr_row(rows, i)
        _csr_dots(data, indices, indptr[r], indptr[r + 1], transposed, n_clusters, dots)
        label = _nearest(dots, sq_norms, n_clusters)
        labels[i] = label
        if with_inertia:
            inertia += (_sparse_sq_distance(data, indices, indptr[r], indptr[r + 1],
                                            center_rows + label * n_features, sq_norms[label])
                        * _weight(<const floating*> rows.weights, r))
    return inertia


cdef double _assign_csr(
        const CsrRows* rows,
        const floating* data,              # rows.data, typed
        const csr_index* indices,          # rows.indices, typed
        const csr_index* indptr,           # rows.indptr, typed
        const CsrCenters* centers,
        int* labels,                       # OUT (rows.n_rows,)
        floating* dots,                    # TMP (n_threads, n_clusters)
        double* chunk_inertia,             # TMP (n_chunks,)
        int n_threads,
        bint with_inertia,
) noexcept nogil:
    """Label every row of the view; return the weighted inertia (chunks summed in order)."""
    cdef Py_ssize_t chunk, start, n_chunks = _n_chunks(rows.n_rows)
    cdef double inertia = 0
    for chunk in prange(n_chunks, schedule="static", num_threads=n_threads):
        start = chunk * CHUNK_ROWS
        chunk_inertia[chunk] = _assign_csr_chunk(
            rows, data, indices, indptr, centers, start, min(start + CHUNK_ROWS, rows.n_rows),
            labels, dots + threadid() * centers.n_clusters, with_inertia)
    for chunk in range(n_chunks):
        inertia += chunk_inertia[chunk]
    return inertia


cdef void _csr_distance_chunk(
        const CsrRows* rows, const floating* data, const csr_index* indices,
        const csr_index* indptr, const CsrCenters* centers, const double* sq_norms,
        Py_ssize_t start, Py_ssize_t end,
        floating* out,          # OUT (rows.n_rows, n_clusters)
        double* dots,           # TMP (n_clusters,)
) noexcept nogil:
    """Euclidean distances of positions [start, end) to every center, as scikit-learn's
    euclidean_distances computes them for sparse rows: sqrt(max(-2 x.c + ||x||^2 + ||c||^2,
    0)) in float64 (float32 rows and centers widened first, the result rounded back).
    sq_norms: the centers' squared norms in float64."""
    cdef Py_ssize_t i, r, p, j, n_clusters = centers.n_clusters
    cdef const floating* transposed = <const floating*> centers.transposed
    cdef const floating* column
    cdef double x, x_sq, distance
    cdef floating* row_out
    for i in range(start, end):
        r = _csr_row(rows, i)
        x_sq = 0
        for j in range(n_clusters):
            dots[j] = 0
        for p in range(indptr[r], indptr[r + 1]):
            x = data[p]
            x_sq += x * x
            column = transposed + indices[p] * n_clusters
            for j in range(n_clusters):
                dots[j] += <double> column[j] * x
        row_out = out + i * n_clusters
        for j in range(n_clusters):
            distance = -2 * dots[j] + x_sq + sq_norms[j]
            row_out[j] = <floating> (distance if distance > 0 else 0)
            row_out[j] = <floating> sqrt(row_out[j])


# ---------------------------------------------------------------------------------------------
# The update
# ---------------------------------------------------------------------------------------------
#
# scikit-learn's order, as in the dense family: each center's sums start from center *
# running weight, its batch rows' stored entries are added in batch order (and within a row
# in stored order), then the sums are scaled by 1 / (running weight + batch weight). Every
# feature of a center that received rows is rescaled, which is what keeps scikit-learn's bits:
# O(n_features) per such center, plus O(stored entries).

cdef void _update_csr_center(
        const CsrRows* rows, const floating* data, const csr_index* indices,
        const csr_index* indptr, const floating* center_old, floating* center_new,
        double* weight_sum, double batch_weight, const Py_ssize_t* members,
        Py_ssize_t n_members, double* sums,
) noexcept nogil:
    """One center from its members (batch positions in batch order); sums is (n_features,)
    scratch."""
    cdef Py_ssize_t q, r, p
    cdef floating w
    if batch_weight > 0:
        _seed_sums(center_old, weight_sum[0], sums, rows.n_features)
        for q in range(n_members):
            r = _csr_row(rows, members[q])
            w = _weight(<const floating*> rows.weights, r)
            for p in range(indptr[r], indptr[r + 1]):
                sums[indices[p]] += data[p] * w
    _apply_center(center_old, center_new, weight_sum, batch_weight, sums, rows.n_features,
                  True)


cdef void _update_csr(
        const CsrRows* rows, const floating* data, const csr_index* indices,
        const csr_index* indptr,
        const floating[:, ::1] centers_old,  # IN
        floating[:, ::1] centers_new,        # OUT (may be centers_old)
        double* weight_sums,                 # INOUT (n_clusters,)
        const int* labels,                   # IN (n_batch,)
        const StepScratch* scratch,          # TMP
) noexcept nogil:
    """Every center from its batch rows, center by center on the thread that owns it."""
    cdef Py_ssize_t n_clusters = centers_old.shape[0], n_batch = rows.n_rows, i, j
    cdef double* batch_weights = scratch.batch_weights
    cdef Py_ssize_t* offsets = scratch.offsets
    cdef Py_ssize_t* members = scratch.members
    for j in range(n_clusters):
        batch_weights[j] = 0
    for i in range(n_batch):
        batch_weights[labels[i]] += _weight(<const floating*> rows.weights, _csr_row(rows, i))
    # Batch positions grouped by center, in batch order inside each group (counting sort).
    for j in range(n_clusters + 1):
        offsets[j] = 0
    for i in range(n_batch):
        offsets[labels[i] + 1] += 1
    for j in range(n_clusters):
        offsets[j + 1] += offsets[j]
    for i in range(n_batch):
        members[offsets[labels[i]]] = i
        offsets[labels[i]] += 1
    for j in range(n_clusters, 0, -1):
        offsets[j] = offsets[j - 1]
    offsets[0] = 0
    for j in prange(n_clusters, schedule="static", num_threads=scratch.n_update_threads):
        _update_csr_center(rows, data, indices, indptr, &centers_old[j, 0], &centers_new[j, 0],
                           &weight_sums[j], batch_weights[j], members + offsets[j],
                           offsets[j + 1] - offsets[j],
                           scratch.sums + threadid() * rows.n_features)


# ---------------------------------------------------------------------------------------------
# The mini-batch step
# ---------------------------------------------------------------------------------------------

cdef int _csr_step_scratch(
        StepScratch* out, ScratchArena arena, const CsrRows* rows, Py_ssize_t n_clusters,
        size_t itemsize, int n_threads) except -1:
    """Allocate (owned by ``arena``) the scratch of a step on the view's rows."""
    cdef Py_ssize_t n_batch = rows.n_rows, n_features = rows.n_features
    cdef Py_ssize_t n_chunks = _n_chunks(n_batch)
    n_threads = max(n_threads, 1)
    out.batch_order = False
    out.packed_rows = NULL
    out.n_threads = threads_for(n_threads, n_chunks, 32.0 * n_batch * n_clusters)
    # Each updated center is rescaled whole: work in n_features per center.
    out.n_update_threads = threads_for(n_threads, n_clusters, 2.0 * n_clusters * n_features)
    out.prepared_centers = arena.take(_csr_centers_size(n_clusters, n_features) * itemsize)
    out.row_tiles = arena.take(out.n_threads * n_clusters * itemsize)
    out.chunk_inertia = <double*> arena.take(n_chunks * sizeof(double))
    out.sums = <double*> arena.take(out.n_update_threads * n_features * sizeof(double))
    out.batch_weights = <double*> arena.take(n_clusters * sizeof(double))
    out.offsets = <Py_ssize_t*> arena.take((n_clusters + 1 + n_batch) * sizeof(Py_ssize_t))
    out.members = out.offsets + n_clusters + 1
    return 0


cdef double _csr_minibatch_step(
        const CsrRows* rows, const floating* data, const csr_index* indices,
        const csr_index* indptr,
        const floating[:, ::1] centers_old,  # IN
        floating[:, ::1] centers_new,        # OUT (may be centers_old)
        double* weight_sums,                 # INOUT (n_clusters,)
        int* labels,                         # OUT (n_batch,)
        const StepScratch* scratch,          # TMP
) noexcept nogil:
    """Label the batch with centers_old, move every center; return the batch inertia."""
    cdef CsrCenters prepared
    cdef double inertia
    _prepare_csr_centers(&prepared, centers_old, <floating*> scratch.prepared_centers,
                         scratch.n_threads)
    inertia = _assign_csr(rows, data, indices, indptr, &prepared, labels,
                          <floating*> scratch.row_tiles, scratch.chunk_inertia,
                          scratch.n_threads, True)
    _update_csr(rows, data, indices, indptr, centers_old, centers_new, weight_sums, labels,
                scratch)
    return inertia


# ---------------------------------------------------------------------------------------------
# Reassignment of small centers
# ---------------------------------------------------------------------------------------------

cdef Py_ssize_t _reassign_small_centers_csr(
        const CsrRows* batch, const floating* data, const csr_index* indices,
        const csr_index* indptr,
        floating[:, ::1] centers,        # INOUT
        double[::1] weight_sums,         # INOUT the running weights
        double ratio,
        RandomStream stream,             # the draws
        Py_ssize_t* order,               # TMP (batch.n_rows,)
        signed char* small,              # TMP (n_clusters,)
) except -1:
    """scikit-learn's random reassignment onto CSR batch rows: the same centers onto the same
    rows as for dense ones (_small_centers), each moved center set to its row as scikit-learn
    copies one (zeros, then each stored entry written in stored order: of two entries in the
    same column, the later one stays). Returns how many centers moved."""
    cdef Py_ssize_t n_small = _small_centers(weight_sums, ratio, batch.n_rows, stream, order,
                                             small)
    cdef Py_ssize_t j, f, p, r, k = 0
    if n_small == 0:
        return 0
    for j in range(weight_sums.shape[0]):
        if small[j]:
            r = _csr_row(batch, order[k])
            for f in range(batch.n_features):
                centers[j, f] = 0
            for p in range(indptr[r], indptr[r + 1]):
                centers[j, indices[p]] = data[p]
            k += 1
    _restart_small_weights(weight_sums, small, n_small)
    return n_small

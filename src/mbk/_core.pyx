"""Compiled kernels of mbk: dispatch, row access, the nearest-center assignment, the input
scan, distances; and the declarations every compiled module shares (_core.pxd, with the
module map).

Everything here is deterministic: random draws happen on a NumPy RandomState (in Python or
through its bit generator), so the kernels only see row indices. Python validates its inputs
once per public call; the ``def`` entry points check shapes, allocate their scratch and raise
before releasing the GIL; the ``cdef ... noexcept nogil`` workers run on raw pointers.

Thread-count invariance (same bits for any number of threads) comes from three rules:
- rows are processed in fixed chunks of ``CHUNK_ROWS``; a row only writes its own label;
- per-chunk partial inertias are summed serially in chunk order after the parallel loop;
- the center update is "owner computes": one thread owns a cluster and adds that cluster's
  rows in batch order, so no sum is ever split between threads.

X is read through (row stride, column stride) in elements, so C-ordered, Fortran-ordered,
strided, read-only and memory-mapped arrays are all used in place without a copy.
"""

from cython.parallel cimport prange, threadid
from libc.math cimport INFINITY
from libc.stdlib cimport free, malloc

from mbk._kernels cimport (
    MBK_MAX_FEW_FEATURES, MBK_OPENMP_ENABLED, mbk_flag_raised, mbk_omp_max_threads,
    mbk_prefetch_row, mbk_prefetch_span,
)
from mbk._sampling_kernels cimport _search_rows

# The micro-kernels and their runtime dispatch (the types are in _kernels.pxd).
cdef extern from "_tiles.h":
    const mbk_variant* mbk_active
    int mbk_supported_variants(const mbk_variant** out) noexcept nogil
    const mbk_variant* mbk_variant_for(Py_ssize_t n_columns, int is_double) noexcept nogil


def available_isas():
    """Kernel variants this CPU can run, best first (e.g. ["avx512", "avx2", "baseline"])."""
    cdef const mbk_variant* variants[4]
    cdef int n = mbk_supported_variants(variants)
    return [variants[i].name.decode() for i in range(n)]


def isa():
    """Name of the widest kernel variant in use: "avx512", "avx2" or "baseline" (chosen at
    import as the best this CPU supports; problems with few centers use a narrower one)."""
    return mbk_active.name.decode()


def isa_for(Py_ssize_t n_clusters, dtype):
    """The variant that runs for n_clusters centers of the given dtype."""
    return mbk_variant_for(n_clusters, dtype == "float64").name.decode()


def use_isa(name):
    """Switch kernel variant (tests and benchmarks); returns the previous one's name."""
    global mbk_active
    cdef const mbk_variant* variants[4]
    cdef int n = mbk_supported_variants(variants), i
    previous = isa()
    for i in range(n):
        if variants[i].name.decode() == name:
            mbk_active = variants[i]
            return previous
    raise ValueError(f"kernel variant {name!r} is not available here; have {available_isas()}")


use_isa(available_isas()[0])
isa_for(1, "float32")  # fills mbk_variant_for's table now, before any thread can race on it


cdef enum:
    # How far ahead of the tile being computed scattered batch rows are requested: enough
    # rows for a memory latency's worth of arithmetic on small problems.
    PREFETCH_ROWS = 48

OPENMP_ENABLED = bool(MBK_OPENMP_ENABLED)
CHUNK_SIZE = CHUNK_ROWS


def omp_max_threads():
    """Threads an OpenMP region would use now (honours OMP_NUM_THREADS and threadpoolctl)."""
    return mbk_omp_max_threads()


# ---------------------------------------------------------------------------------------------
# Row access
# ---------------------------------------------------------------------------------------------

cdef int _fill_rows(
        Rows* rows,
        const floating[:, :] X,
        const Py_ssize_t[::1] sample_indices,   # None: every row of X in order
        object sample_weight,                   # None, or floating[::1] of X's dtype
) except -1:
    cdef Py_ssize_t itemsize = sizeof(floating)
    if X.strides[0] % itemsize or X.strides[1] % itemsize:
        raise ValueError("X's strides must be multiples of its item size")
    rows.data = &X[0, 0]
    rows.row_stride = X.strides[0] // itemsize
    rows.col_stride = X.strides[1] // itemsize
    rows.n_features = X.shape[1]
    rows.index = NULL
    rows.n_rows = X.shape[0]
    rows.weights = NULL
    if sample_indices is not None:
        rows.n_rows = sample_indices.shape[0]
        if rows.n_rows > 0:
            rows.index = &sample_indices[0]
    _weights_of(sample_weight, X.shape[0], <const floating**> &rows.weights)
    return 0


cdef int _weights_of(object sample_weight, Py_ssize_t n_rows, const floating** out) except -1:
    """out[0] = the values of sample_weight (floating[::1], n_rows of them), or NULL for None.

    The pointer is into the caller's array, which must outlive its use."""
    cdef const floating[::1] weights
    out[0] = NULL
    if sample_weight is not None:
        weights = sample_weight
        if weights.shape[0] != n_rows:
            raise ValueError("sample_weight must have one entry per row of X")
        out[0] = &weights[0]
    return 0


cdef int _check_centers(const floating[:, ::1] centers, Py_ssize_t n_features) except -1:
    if centers.shape[0] < 1:
        raise ValueError("at least one center is needed")
    if centers.shape[1] != n_features:
        raise ValueError(
            f"centers have {centers.shape[1]} features, X has {n_features}")
    return 0


# ---------------------------------------------------------------------------------------------
# Nearest-center assignment
# ---------------------------------------------------------------------------------------------


cdef const mbk_variant* active_kernels() noexcept nogil:
    return mbk_active


cdef const mbk_variant* kernels_for(Py_ssize_t n_columns, bint is_double) noexcept nogil:
    return mbk_variant_for(n_columns, is_double)


# Whether the assignment may use nearest_few (tests turn it off to compare with the tiles).
cdef bint few_centers_kernel = True


def set_few_centers_kernel(bint enabled):
    """Allow or forbid the rows-in-lanes kernel for few centers; returns the old setting."""
    global few_centers_kernel
    old = few_centers_kernel
    few_centers_kernel = enabled
    return old


cdef Py_ssize_t _padded_count(Py_ssize_t n_clusters, const floating* witness) noexcept nogil:
    """n_clusters rounded up to a whole number of vector lanes of its kernel variant."""
    cdef const mbk_variant* kernels = kernels_for(n_clusters, floating is double)
    cdef Py_ssize_t lanes = kernels.lanes_float if floating is float else kernels.lanes_double
    return _round_up(n_clusters, lanes)


cdef int _prepare_centers(
        Centers* prepared,
        const floating[:, ::1] centers,
        floating* storage,      # OUT n_padded * (n_features + 1) values
) noexcept nogil:
    cdef Py_ssize_t n_clusters = centers.shape[0], n_features = centers.shape[1]
    cdef Py_ssize_t n_padded = _padded_count(n_clusters, storage)
    cdef Py_ssize_t j, f, first, last, widest_block
    cdef floating* transposed = storage
    cdef floating* sq_norms = storage + n_padded * n_features
    cdef const floating* rows = &centers[0, 0]
    cdef floating norm
    for j in range(n_padded):
        if j < n_clusters:
            norm = 0
            for f in range(n_features):
                norm = norm + rows[j * n_features + f] * rows[j * n_features + f]
            sq_norms[j] = norm
        else:
            sq_norms[j] = INFINITY
    # The transpose by blocks of 16 centers: each write fills a cache line of one feature's
    # row. Center by center, every write lands in another page (n_padded values apart), and
    # for a thousand centers the serial transpose cost a tenth of a step.
    for first in range(0, n_padded, 16):
        last = min(first + 16, n_padded)
        for f in range(n_features):
            for j in range(first, last):
                transposed[f * n_padded + j] = rows[j * n_features + f] if j < n_clusters else 0
    prepared.rows = &centers[0, 0]
    prepared.transposed = transposed
    prepared.sq_norms = sq_norms
    prepared.n_clusters = n_clusters
    prepared.n_padded = n_padded
    prepared.kernels = kernels_for(n_clusters, floating is double)
    if floating is float:
        widest_block = mbk_active.block_float
    else:
        widest_block = mbk_active.block_double
    prepared.few = (few_centers_kernel and n_features <= MBK_MAX_FEW_FEATURES
                    and n_clusters < widest_block)
    return 0


cdef const floating* _tile_rows(
        const Rows* rows,
        const floating* data,   # rows.data, typed
        Py_ssize_t first,       # batch position of the tile's first row
        Py_ssize_t n_in_tile,   # rows present, <= tile_rows
        int tile_rows,
        floating* buffer,       # TMP (tile_rows, n_features)
        Py_ssize_t* stride,     # OUT: the returned tile's row stride, in elements
) noexcept nogil:
    """The tile's rows for a kernel: row r at result + r * stride.

    X itself when the rows are consecutive, with contiguous columns
    (a C-ordered batch is read in place); otherwise the rows copied into ``buffer``, rows
    past n_in_tile zero-filled.
    """
    # Strides and pointers live in locals: stores into the buffer could otherwise alias the
    # Rows struct, and the compiler would reload it on every element.
    cdef Py_ssize_t t, f, n_features = rows.n_features
    cdef Py_ssize_t chunk_end = min((first // CHUNK_ROWS + 1) * CHUNK_ROWS, rows.n_rows)
    cdef Py_ssize_t row_stride = rows.row_stride, col_stride = rows.col_stride
    cdef const Py_ssize_t* index = rows.index
    cdef Py_ssize_t row_bytes = n_features * sizeof(floating)
    cdef const floating* base
    cdef floating* row
    if index != NULL and col_stride != 1:
        # Strided rows (Fortran order): each value's line.
        for t in range(first + PREFETCH_ROWS, min(first + tile_rows + PREFETCH_ROWS, chunk_end)):
            mbk_prefetch_row(data + index[t] * row_stride, n_features, col_stride,
                             sizeof(floating))
        if first % CHUNK_ROWS == 0:
            for t in range(first, min(first + PREFETCH_ROWS, chunk_end)):
                mbk_prefetch_row(data + index[t] * row_stride, n_features, col_stride,
                                 sizeof(floating))
    elif index != NULL:
        # Batch rows are scattered over X: ask for the rows PREFETCH_ROWS ahead now, so many
        # cache misses are in flight while this tile computes. A chunk's first tile also asks
        # for the rows before that distance. Only this chunk's rows: the next chunk's may not
        # be drawn yet.
        for t in range(first + PREFETCH_ROWS, min(first + tile_rows + PREFETCH_ROWS, chunk_end)):
            mbk_prefetch_span(data + index[t] * row_stride, row_bytes)
        if first % CHUNK_ROWS == 0:
            for t in range(first, min(first + PREFETCH_ROWS, chunk_end)):
                mbk_prefetch_span(data + index[t] * row_stride, row_bytes)
    if index == NULL and col_stride == 1 and n_in_tile == tile_rows:
        stride[0] = row_stride
        return data + first * row_stride
    stride[0] = n_features
    for t in range(tile_rows):
        row = buffer + t * n_features
        if t < n_in_tile:
            base = data + (index[first + t] if index != NULL else first + t) * row_stride
            if col_stride == 1:
                for f in range(n_features):
                    row[f] = base[f]
            else:
                for f in range(n_features):
                    row[f] = base[f * col_stride]
        else:
            for f in range(n_features):
                row[f] = 0
    return buffer


cdef void _copy_rows(
        const Rows* rows, Py_ssize_t start, Py_ssize_t end,
        floating* out,                # OUT (end - start, n_features)
) noexcept nogil:
    """Rows [start, end) of the batch, one after another (rows are asked for 16 ahead)."""
    cdef Py_ssize_t t, f, n_features = rows.n_features
    cdef const floating* x
    cdef const floating* data = <const floating*> rows.data
    for t in range(start, end):
        if t + 16 < end:
            mbk_prefetch_row(data + _source_row(rows, t + 16) * rows.row_stride, n_features,
                             rows.col_stride, sizeof(floating))
        x = data + _source_row(rows, t) * rows.row_stride
        for f in range(n_features):
            out[(t - start) * n_features + f] = x[f * rows.col_stride]


cdef double _assign_chunk(
        const Rows* rows,             # IN
        const Centers* centers,       # IN
        Py_ssize_t start,
        Py_ssize_t end,
        int* labels,                  # OUT (n_rows,)
        floating* tile,               # TMP (n_features * MBK_MAX_TILE_ROWS,)
        bint with_inertia,
        floating* packed,             # OUT (n_rows, n_features) the rows, in batch order;
                                      # or NULL
) noexcept nogil:
    """Label rows [start, end) with their nearest center; return their weighted inertia
    (0 without ``with_inertia``: predict needs only the labels).

    With ``packed``, the rows are also copied there as they are read (the tiles are copied
    there in the first place): the center update then reads them from one small block of
    memory rather than from all over X.

    The nearest center minimises ||c||^2 - 2 x.c (||x||^2 is common to all centers); ties go
    to the lowest index (strict <). The inertia uses direct differences to that center.
    """
    cdef Py_ssize_t n_features = rows.n_features
    cdef const floating* center_rows = <const floating*> centers.rows
    cdef int best_index[MBK_MAX_TILE_ROWS]
    cdef floating best_dist[MBK_MAX_TILE_ROWS]
    cdef int tile_rows = centers.kernels.tile_rows
    cdef const floating* x
    cdef Py_ssize_t x_stride
    cdef Py_ssize_t i = start, t, f, n_in_tile
    cdef double inertia = 0
    cdef floating chunk_dist[CHUNK_ROWS]
    cdef floating* buffer
    cdef const floating* data
    # The chunk's rows in one block after the tiles (packed, or X itself), for the inertia's
    # distances in one call: by tile, 12 rows filled 16 lanes.
    cdef const floating* chunk_x = NULL
    cdef Py_ssize_t chunk_stride = n_features
    if packed != NULL:
        chunk_x = packed + start * n_features
    elif rows.index == NULL and rows.col_stride == 1:
        chunk_x = <const floating*> rows.data + start * rows.row_stride
        chunk_stride = rows.row_stride
    if centers.few:
        if rows.index != NULL or rows.col_stride != 1 or rows.row_stride != n_features:
            # Scattered or strided rows are copied into one block (packed, else the tile
            # scratch, a chunk of rows of few features) and the kernel loads them whole:
            # about 7.5 -> 5 ns a row for a batch of housing rows.
            buffer = packed + start * n_features if packed != NULL else tile
            _copy_rows(rows, start, end, buffer)
            data = buffer
        else:
            data = <const floating*> rows.data + start * n_features
        if floating is float:
            mbk_active.nearest_few_float(
                data, <int> (end - start), center_rows, <const float*> centers.sq_norms,
                centers.n_clusters, n_features, labels + start,
                chunk_dist if with_inertia else NULL)
        else:
            mbk_active.nearest_few_double(
                data, <int> (end - start), center_rows, <const double*> centers.sq_norms,
                centers.n_clusters, n_features, labels + start,
                chunk_dist if with_inertia else NULL)
        if with_inertia:
            inertia = _weighted_sum(rows, start, end, chunk_dist)
        return inertia
    while i < end:
        n_in_tile = min(<Py_ssize_t> tile_rows, end - i)
        # A whole tile is copied straight into its place in packed; a partial one needs the
        # zero-padded tile buffer (past its rows, packed holds the next chunk's).
        buffer = packed + i * n_features if packed != NULL and n_in_tile == tile_rows else tile
        x = _tile_rows(rows, <const floating*> rows.data, i, n_in_tile, tile_rows, buffer,
                       &x_stride)
        if packed != NULL and x != packed + i * n_features:
            for t in range(n_in_tile):
                for f in range(n_features):
                    packed[(i + t) * n_features + f] = x[t * x_stride + f]
        if floating is float:
            centers.kernels.nearest_float(
                x, x_stride, <const float*> centers.transposed,
                <const float*> centers.sq_norms, n_features, centers.n_padded, best_index,
                best_dist)
        else:
            centers.kernels.nearest_double(
                x, x_stride, <const double*> centers.transposed,
                <const double*> centers.sq_norms, n_features, centers.n_padded, best_index,
                best_dist)
        for t in range(n_in_tile):
            labels[i + t] = best_index[t]
        if with_inertia and chunk_x == NULL:
            _row_distances(x, x_stride, center_rows, best_index, n_features, n_in_tile,
                           chunk_dist + (i - start))
        i += n_in_tile
    if with_inertia and chunk_x != NULL:
        _row_distances(chunk_x, chunk_stride, center_rows, labels + start, n_features,
                       end - start, chunk_dist)
    if with_inertia:
        inertia = _weighted_sum(rows, start, end, chunk_dist)
    return inertia


cdef inline void _row_distances(
        const floating* x, Py_ssize_t x_stride, const floating* center_rows,
        const int* labels, Py_ssize_t n_features, Py_ssize_t n_rows, floating* out,
) noexcept nogil:
    """Each row's squared distance to its labelled center by direct differences, rounded
    as scikit-learn's (not the tiles' norm expansion, which cancels badly near a center)."""
    if floating is float:
        mbk_active.row_distances_float(x, x_stride, center_rows, labels, n_features,
                                       <int> n_rows, out)
    else:
        mbk_active.row_distances_double(x, x_stride, center_rows, labels, n_features,
                                        <int> n_rows, out)


cdef inline double _weighted_sum(
        const Rows* rows, Py_ssize_t start, Py_ssize_t end, const floating* distances,
) noexcept nogil:
    """sum of w * distance over batch rows [start, end), in float64: a float32 product of
    a large distance and a large weight would overflow to infinity (found by the property
    tests)."""
    cdef Py_ssize_t t
    cdef double total = 0
    for t in range(end - start):
        total += <double> distances[t] * <double> _weight(
            <const floating*> rows.weights, _source_row(rows, start + t))
    return total


cdef double _assign_rows(
        const Rows* rows,
        const Centers* centers,
        int* labels,
        floating* scratch,       # TMP n_threads * _tile_scratch(n_features)
        double* chunk_inertia,   # TMP (n_chunks,)
        int n_threads,
        const Sampling* sampling=NULL,  # a batch to draw first, chunk by chunk; or NULL
        bint with_inertia=True,
        char* chunk_finite=NULL,        # OUT (n_chunks,) whether each chunk's rows are
                                        # finite (scanned as they are read); or NULL
        floating* packed=NULL,          # OUT (n_rows, n_features) the rows in order; or NULL
) noexcept nogil:
    cdef Py_ssize_t n_chunks = (rows.n_rows + CHUNK_ROWS - 1) // CHUNK_ROWS
    cdef Py_ssize_t per_thread = _tile_scratch(rows.n_features)
    cdef Py_ssize_t chunk, start, end
    cdef floating* tile
    cdef double inertia = 0
    for chunk in prange(n_chunks, schedule="static", num_threads=n_threads):
        start = chunk * CHUNK_ROWS
        end = min(start + CHUNK_ROWS, rows.n_rows)
        tile = scratch + threadid() * per_thread
        if sampling != NULL:
            _search_rows(sampling, start, end)
        if chunk_finite != NULL:
            chunk_finite[chunk] = _rows_finite(rows, <const floating*> rows.data, start, end)
        chunk_inertia[chunk] = _assign_chunk(
            rows, centers, start, end, labels, tile, with_inertia, packed)
    # Serial, in chunk order: the same sum for any thread count.
    for chunk in range(n_chunks):
        inertia += chunk_inertia[chunk]
    return inertia


cdef class _Scratch:
    # Its fields are declared in _core.pxd.

    def __dealloc__(self):
        free(self.centers_storage)
        free(self.per_thread)
        free(self.per_chunk)
        free(self.members)
        free(self.extra)
        free(self.rows_copy)

    cdef void* take(self, size_t n_bytes) except NULL:
        cdef void* block = malloc(n_bytes if n_bytes > 0 else 1)
        if block == NULL:
            raise MemoryError(f"mbk kernel could not allocate {n_bytes} bytes of scratch")
        return block


# Below this much arithmetic per thread (multiply-adds), waking another thread costs more
# than it saves, and on a busy machine a descheduled peer can stall a parallel region for a
# whole time slice. Results do not depend on the thread count, so this is only about speed.
cdef double min_work_per_thread = 1 << 18


def set_min_work_per_thread(double work):
    """Set the parallelism threshold (tests use 0 to exercise every thread); return the old."""
    global min_work_per_thread
    old = min_work_per_thread
    min_work_per_thread = work
    return old


cdef int _threads_for(int n_threads, Py_ssize_t n_units, double work) noexcept nogil:
    """Threads worth using for n_units independent work items totalling ``work``."""
    cdef double useful = work / min_work_per_thread if min_work_per_thread > 0 else n_threads
    if n_threads > n_units:
        n_threads = <int> n_units
    if n_threads > useful:
        n_threads = <int> useful
    return max(n_threads, 1)


cdef int _clamp_threads(
        int n_threads, Py_ssize_t n_rows, Py_ssize_t n_clusters, Py_ssize_t n_features
) noexcept nogil:
    """Threads for a pass over n_rows rows against n_clusters centers."""
    return _threads_for(n_threads, (n_rows + CHUNK_ROWS - 1) // CHUNK_ROWS,
                        <double> n_rows * n_clusters * n_features)


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
    cdef _Scratch scratch = _Scratch()
    cdef Py_ssize_t n_clusters = centers.shape[0], n_features = X.shape[1], chunk
    cdef Py_ssize_t n_chunks
    cdef char* chunk_finite = NULL
    cdef bint finite = True
    cdef double inertia

    _fill_rows(&rows, X, sample_indices, sample_weight)
    _check_centers(centers, n_features)
    if labels.shape[0] != rows.n_rows:
        raise ValueError("labels must have one entry per assigned row")
    if check_finite and sample_indices is not None:
        raise ValueError("check_finite scans all rows: pass no sample_indices")
    if rows.n_rows == 0:
        return 0.0
    n_chunks = (rows.n_rows + CHUNK_ROWS - 1) // CHUNK_ROWS
    n_threads = _clamp_threads(n_threads, rows.n_rows, n_clusters, n_features)
    scratch.centers_storage = scratch.take(
        _padded_count(n_clusters, <floating*> NULL) * (n_features + 1) * sizeof(floating))
    scratch.per_thread = scratch.take(n_threads * _tile_scratch(n_features) * sizeof(floating))
    scratch.per_chunk = scratch.take(n_chunks * sizeof(double))
    if check_finite:
        scratch.extra = scratch.take(n_chunks)
        chunk_finite = <char*> scratch.extra
    with nogil:
        _prepare_centers(&prepared, centers, <floating*> scratch.centers_storage)
        inertia = _assign_rows(&rows, &prepared, &labels[0], <floating*> scratch.per_thread,
                               <double*> scratch.per_chunk, n_threads, NULL, compute_inertia,
                               chunk_finite)
        if check_finite:
            for chunk in range(n_chunks):
                finite &= chunk_finite[chunk]
    return inertia if finite else None


# ---------------------------------------------------------------------------------------------
# Input scan
# ---------------------------------------------------------------------------------------------

cdef inline bint _finite_run(const floating* x, Py_ssize_t n) noexcept nogil:
    if floating is float:
        return mbk_active.all_finite_float(x, n)
    else:
        return mbk_active.all_finite_double(x, n)


cdef bint _rows_finite(
        const Rows* rows, const floating* data, Py_ssize_t start, Py_ssize_t end,
) noexcept nogil:
    """Whether rows [start, end) of X (data: rows.data, typed) are finite, read in memory
    order where the layout allows."""
    cdef Py_ssize_t n_features = rows.n_features, i, f
    cdef bint finite = True
    if rows.col_stride == 1 and rows.row_stride == n_features:     # C-contiguous
        return _finite_run(data + start * n_features, (end - start) * n_features)
    if rows.row_stride == 1:                                        # columns contiguous
        for f in range(n_features):
            finite &= _finite_run(data + f * rows.col_stride + start, end - start)
        return finite
    if rows.col_stride == 1:                                        # rows contiguous
        for i in range(start, end):
            finite &= _finite_run(data + i * rows.row_stride, n_features)
        return finite
    for i in range(start, end):
        for f in range(n_features):
            finite &= (data[i * rows.row_stride + f * rows.col_stride]
                       - data[i * rows.row_stride + f * rows.col_stride]) == 0
    return finite


cdef enum:
    # Bytes of X a piecewise scan reads between looks at its stop flag: the thread that
    # raised it waits at most this long (about a microsecond) for the scan to notice.
    SCAN_PIECE_BYTES = 8192
    # Bytes per work item of a parallel scan.
    SCAN_CHUNK_BYTES = 1 << 18


cdef int _start_scan(FiniteScan* scan, const floating[:, :] X) except -1:
    """A scan of all of X, nothing of it read yet."""
    cdef const Py_ssize_t[::1] every_row = None
    _fill_rows(&scan.rows, X, every_row, None)
    scan.next = 0
    scan.finite = True
    return 0


cdef inline Py_ssize_t _rows_per(
        Py_ssize_t n_bytes, const Rows* rows, size_t itemsize) noexcept nogil:
    return max(1, n_bytes // max(1, rows.n_features * <Py_ssize_t> itemsize))


cdef void _scan_until(
        FiniteScan* scan, const int* stop, Py_ssize_t end_row, const floating* witness
) noexcept nogil:
    """Scan X a piece at a time until row end_row (or its last row) or until another thread
    raises stop."""
    cdef Py_ssize_t piece = _rows_per(SCAN_PIECE_BYTES, &scan.rows, sizeof(floating))
    cdef Py_ssize_t end
    end_row = min(end_row, scan.rows.n_rows)
    while scan.next < end_row and not mbk_flag_raised(stop):
        end = min(scan.next + piece, end_row)
        scan.finite &= _rows_finite(&scan.rows, <const floating*> scan.rows.data, scan.next,
                                    end)
        scan.next = end


cdef bint _finish_scan(
        FiniteScan* scan, int n_threads, const floating* witness) noexcept nogil:
    """Scan the rest of X on up to n_threads threads; return whether all of X is finite."""
    cdef Py_ssize_t first = scan.next, n_left = scan.rows.n_rows - scan.next
    cdef Py_ssize_t chunk_rows = _rows_per(SCAN_CHUNK_BYTES, &scan.rows, sizeof(floating))
    cdef Py_ssize_t n_chunks = (n_left + chunk_rows - 1) // chunk_rows, chunk
    cdef Py_ssize_t n_bad = 0
    if n_left > 0 and scan.rows.n_features > 0:
        n_threads = _threads_for(n_threads, n_chunks, <double> n_left * scan.rows.n_features)
        for chunk in prange(n_chunks, schedule="static", num_threads=n_threads):
            n_bad += <Py_ssize_t> (not _rows_finite(
                &scan.rows, <const floating*> scan.rows.data, first + chunk * chunk_rows,
                min(first + (chunk + 1) * chunk_rows, scan.rows.n_rows)))
        scan.finite &= n_bad == 0
    scan.next = scan.rows.n_rows
    return scan.finite


def all_finite(const floating[:, :] X, int n_threads=1, Py_ssize_t rows_in_pieces=0):
    """Whether X holds no NaN and no infinity (a parallel scan, in place, any layout).

    The first ``rows_in_pieces`` rows are scanned a piece at a time on this thread first,
    as fit's steps scan X (tests)."""
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
# Distances to every center (transform)
# ---------------------------------------------------------------------------------------------

cdef void _distance_chunk(
        const Rows* rows, const Centers* centers, Py_ssize_t start, Py_ssize_t end,
        floating* out,              # OUT (n_rows, n_clusters), C order
        floating* tile,             # TMP (n_features * MBK_MAX_TILE_ROWS,)
) noexcept nogil:
    cdef int tile_rows = centers.kernels.tile_rows
    cdef Py_ssize_t i = start, n_in_tile, x_stride
    cdef Py_ssize_t n_clusters = centers.n_clusters
    cdef const floating* x
    while i < end:
        n_in_tile = min(<Py_ssize_t> tile_rows, end - i)
        x = _tile_rows(rows, <const floating*> rows.data, i, n_in_tile, tile_rows, tile,
                       &x_stride)
        if floating is float:
            centers.kernels.distance_float(
                x, x_stride, <const float*> centers.transposed, rows.n_features,
                centers.n_padded, n_clusters, <int> n_in_tile, out + i * n_clusters)
        else:
            centers.kernels.distance_double(
                x, x_stride, <const double*> centers.transposed, rows.n_features,
                centers.n_padded, n_clusters, <int> n_in_tile, out + i * n_clusters)
        i += n_in_tile


def euclidean_distances(
        const floating[:, :] X,               # IN
        const floating[:, ::1] centers,       # IN
        floating[:, ::1] out,                 # OUT (n_samples, n_clusters)
        int n_threads=1):
    """Euclidean distance from every row of X to every center, by direct differences."""
    cdef Rows rows
    cdef Centers prepared
    cdef _Scratch scratch = _Scratch()
    cdef Py_ssize_t n_clusters = centers.shape[0], n_features = X.shape[1]
    cdef Py_ssize_t chunk, start, end, n_chunks
    cdef const Py_ssize_t[::1] all_rows = None
    _fill_rows(&rows, X, all_rows, None)
    _check_centers(centers, n_features)
    if out.shape[0] != rows.n_rows or out.shape[1] != n_clusters:
        raise ValueError("out must have shape (n_samples, n_clusters)")
    if rows.n_rows == 0:
        return
    n_threads = _clamp_threads(n_threads, rows.n_rows, n_clusters, n_features)
    n_chunks = (rows.n_rows + CHUNK_ROWS - 1) // CHUNK_ROWS
    scratch.centers_storage = scratch.take(
        _padded_count(n_clusters, <floating*> NULL) * (n_features + 1) * sizeof(floating))
    scratch.per_thread = scratch.take(n_threads * _tile_scratch(n_features) * sizeof(floating))
    with nogil:
        _prepare_centers(&prepared, centers, <floating*> scratch.centers_storage)
        for chunk in prange(n_chunks, schedule="static", num_threads=n_threads):
            start = chunk * CHUNK_ROWS
            end = min(start + CHUNK_ROWS, rows.n_rows)
            _distance_chunk(&rows, &prepared, start, end, &out[0, 0],
                            (<floating*> scratch.per_thread)
                            + threadid() * _tile_scratch(n_features))

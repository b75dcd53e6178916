# What mbk's compiled modules share: row access, prepared centers, the assignment, scratch
# memory and the thread policy, defined in _core.pyx (the small helpers inline, here).
#
# Module map: _core (this: kernel dispatch, rows, centers, assignment, input scan,
# distances), _sampling_kernels (drawing batch rows), _step_kernels (the center update, the
# mini-batch step, fit's loop), _seeding_kernels (k-means++), _nested_kernels (nested
# mini-batch k-means). The micro-kernels are C (_tiles.h, interface _kernels.h).

from cython cimport floating

from mbk._kernels cimport MBK_MAX_FEW_FEATURES, MBK_MAX_TILE_ROWS, mbk_variant
from mbk._sampling_kernels cimport Sampling


# Rows per parallel work item. Fixed (not derived from the thread count) so that the work
# split, and therefore every rounding, is the same whatever the number of threads.
cdef enum:
    CHUNK_ROWS = 256


cdef struct Rows:
    # A view of the data rows the kernel works on: row i of the batch is X[index[i]] (or X[i]
    # when index is NULL), read through element strides.
    const void* data
    Py_ssize_t row_stride
    Py_ssize_t col_stride
    const Py_ssize_t* index
    const void* weights     # NULL means unit weights; indexed like X's rows
    Py_ssize_t n_rows
    Py_ssize_t n_features


cdef struct Centers:
    # The centers laid out for the micro-kernels: transposed to (n_features, n_padded) so one
    # vector load reads the same feature of LANES consecutive centers. Padding centers are
    # zeros with an infinite squared norm, so they never win the assignment.
    const void* rows        # (n_clusters, n_features), C order
    void* transposed        # (n_features, n_padded)
    void* sq_norms          # (n_padded,)
    Py_ssize_t n_clusters
    Py_ssize_t n_padded
    const mbk_variant* kernels  # the variant for the whole call, chosen when prepared
    # Few centers (fewer than a register block) of few features: the assignment puts rows in
    # the vector lanes instead (nearest_few), with the widest variant.
    bint few


cdef struct FiniteScan:
    # A NaN/infinity scan of all of X that advances a piece at a time (fit does it in the
    # time a step leaves a thread idle): rows [0, next) are scanned, and finite says whether
    # they held only finite values.
    Rows rows               # every row of X, in order (index NULL)
    Py_ssize_t next
    bint finite


cdef class _Scratch:
    """Memory owned for the length of one kernel call, released even on error."""
    cdef void* centers_storage
    cdef void* per_thread
    cdef void* per_chunk
    cdef void* members
    cdef void* extra
    cdef void* rows_copy
    cdef void* take(self, size_t n_bytes) except NULL


# Kernel variants: the widest in use (the center update, the input scan and k-means++ take
# it), and the one for a problem with n_columns centers (the assignment).
cdef const mbk_variant* active_kernels() noexcept nogil
cdef const mbk_variant* kernels_for(Py_ssize_t n_columns, bint is_double) noexcept nogil

cdef int _fill_rows(
    Rows* rows, const floating[:, :] X, const Py_ssize_t[::1] sample_indices,
    object sample_weight) except -1
cdef int _weights_of(object sample_weight, Py_ssize_t n_rows, const floating** out) except -1
cdef int _check_centers(const floating[:, ::1] centers, Py_ssize_t n_features) except -1
cdef Py_ssize_t _padded_count(Py_ssize_t n_clusters, const floating* witness) noexcept nogil
cdef int _prepare_centers(
    Centers* prepared, const floating[:, ::1] centers, floating* storage) noexcept nogil
cdef const floating* _tile_rows(
    const Rows* rows, const floating* data, Py_ssize_t first, Py_ssize_t n_in_tile,
    int tile_rows, floating* buffer, Py_ssize_t* stride) noexcept nogil
cdef double _assign_rows(
    const Rows* rows, const Centers* centers, int* labels, floating* scratch,
    double* chunk_inertia, int n_threads, const Sampling* sampling=*, bint with_inertia=*,
    char* chunk_finite=*, floating* packed=*) noexcept nogil
cdef void _distance_chunk(
    const Rows* rows, const Centers* centers, Py_ssize_t start, Py_ssize_t end,
    floating* out, floating* tile) noexcept nogil
cdef int _start_scan(FiniteScan* scan, const floating[:, :] X) except -1
cdef void _scan_until(
    FiniteScan* scan, const int* stop, Py_ssize_t end_row, const floating* witness
) noexcept nogil
cdef bint _finish_scan(
    FiniteScan* scan, int n_threads, const floating* witness) noexcept nogil
cdef int _threads_for(int n_threads, Py_ssize_t n_units, double work) noexcept nogil
cdef int _clamp_threads(
    int n_threads, Py_ssize_t n_rows, Py_ssize_t n_clusters, Py_ssize_t n_features
) noexcept nogil


cdef inline Py_ssize_t _source_row(const Rows* rows, Py_ssize_t i) noexcept nogil:
    return rows.index[i] if rows.index != NULL else i


cdef inline const floating* _row_ptr(
        const Rows* rows,
        Py_ssize_t r,
        floating* row_buffer,  # TMP (n_features,): used when the columns are not contiguous
) noexcept nogil:
    cdef const floating* base = <const floating*> rows.data + r * rows.row_stride
    cdef Py_ssize_t f
    if rows.col_stride == 1:
        return base
    for f in range(rows.n_features):
        row_buffer[f] = base[f * rows.col_stride]
    return row_buffer


cdef inline floating _weight(const floating* weights, Py_ssize_t r) noexcept nogil:
    # weights is Rows.weights cast to the kernel's type; NULL means unit weights
    if weights == NULL:
        return 1
    return weights[r]


cdef inline floating _sq_euclidean(
        const floating* a, const floating* b, Py_ssize_t n_features) noexcept nogil:
    # One pair of rows, scalar: direct differences grouped by four as scikit-learn's
    # _euclidean_dense_dense (the tiles' inertia uses the vector kernel row_distances,
    # which rounds the same way).
    cdef floating result = 0
    cdef Py_ssize_t f, _, n_blocks = n_features // 4
    for _ in range(n_blocks):
        result += ((a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1])
                   + (a[2] - b[2]) * (a[2] - b[2]) + (a[3] - b[3]) * (a[3] - b[3]))
        a += 4
        b += 4
    for f in range(n_features % 4):
        result += (a[f] - b[f]) * (a[f] - b[f])
    return result


cdef inline Py_ssize_t _round_up(Py_ssize_t n, Py_ssize_t unit) noexcept nogil:
    return (n + unit - 1) // unit * unit


cdef inline Py_ssize_t _tile_scratch(Py_ssize_t n_features) noexcept nogil:
    """Values of per-thread scratch the assignment needs: one tile of copied rows, or for
    rows of few features a chunk of them (see _assign_chunk)."""
    if n_features <= MBK_MAX_FEW_FEATURES:
        return CHUNK_ROWS * n_features
    return MBK_MAX_TILE_ROWS * n_features

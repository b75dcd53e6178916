# The dense kernel family: what _dense.pyx shares with the other compiled modules (the entry
# points in _core, fit's loop in _sculley_loop, _seeding_kernels, _nested_kernels). It works
# on dense row views (_rows.pxd) against centers prepared once per call. The micro-kernels are
# C (_tiles.h, interface _kernels.h), compiled into _dense alone, which hands the variant in
# use out (active_kernels, kernels_for).

from cython cimport floating

from mbk._kernels cimport MBK_MAX_FEW_FEATURES, MBK_MAX_TILE_ROWS, mbk_variant
from mbk._rows cimport CHUNK_ROWS, Rows, _fill_rows, _n_chunks
from mbk._sampling_kernels cimport RandomStream, Sampling


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


cdef struct StepScratch:
    # Everything a mini-batch step needs besides its inputs, sized once for a batch shape.
    void* prepared_centers    # the Centers' storage (_prepare_centers)
    void* row_tiles           # _tile_scratch(n_features) values per assignment thread
    double* chunk_inertia     # one partial inertia per chunk of the batch
    int n_threads             # for the assignment
    int n_update_threads      # for the update
    bint batch_order          # the update's order (see Tuning.batch_order_sums)
    # The update's sums: (n_clusters, n_features) in batch order, else (n_features,) per
    # update thread; the batch's weight per center, (n_clusters,).
    double* sums
    double* batch_weights
    # Center by center only: where each center's rows start in members, (n_clusters + 1,),
    # and the batch positions grouped by center, (n_batch,).
    Py_ssize_t* offsets
    Py_ssize_t* members
    void* packed_rows         # (n_batch, n_features) the batch's rows in order, or NULL


cdef enum:
    # Blocks one ScratchArena holds, at most (a kernel call takes 14 at the most). The table
    # is inline so that nothing is allocated before a kernel's first block: the kernels are
    # sensitive to where their buffers land.
    ARENA_BLOCKS = 32


cdef class ScratchArena:
    # Memory for one kernel call: every block taken is freed with the arena, even on error.
    cdef void* blocks[ARENA_BLOCKS]
    cdef Py_ssize_t n_blocks
    cdef void* take(self, size_t n_bytes) except NULL


# Kernel variants: the widest in use (the center update, the input scan and k-means++ take
# it), and the one for a problem with n_columns centers (the assignment).
cdef const mbk_variant* active_kernels() noexcept nogil
cdef const mbk_variant* kernels_for(Py_ssize_t n_columns, bint is_double) noexcept nogil

# Centers
cdef int _check_centers(const floating[:, ::1] centers, Py_ssize_t n_features) except -1
cdef Py_ssize_t _padded_count(Py_ssize_t n_clusters, bint is_double) noexcept nogil
cdef int _prepare_centers(
    Centers* prepared, const floating[:, ::1] centers, floating* storage) noexcept nogil

# Assignment and distances
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

# The finiteness scan
cdef bint _rows_finite(
    const Rows* rows, const floating* data, Py_ssize_t start, Py_ssize_t end) noexcept nogil
cdef int _start_scan(FiniteScan* scan, const floating[:, :] X) except -1
cdef void _scan_until(
    FiniteScan* scan, const int* stop, Py_ssize_t end_row, const floating* witness
) noexcept nogil
cdef bint _finish_scan(
    FiniteScan* scan, int n_threads, const floating* witness) noexcept nogil

# The step: assignment, then the update in two halves (accumulate, apply)
cdef void _batch_weights(
    const Rows* rows, const floating* witness, const int* labels, Py_ssize_t n_clusters,
    double* batch_weights) noexcept nogil
cdef void _accumulate(
    const Rows* rows, const int* labels, Py_ssize_t n_clusters,
    const floating* seed_centers, const double* seed_weights, double* sums) noexcept nogil
cdef void _apply(
    const floating[:, ::1] centers_old, floating[:, ::1] centers_new, double* weight_sums,
    const double* sums, const double* batch_weights, bint seeded) noexcept nogil
cdef int _step_scratch(
    StepScratch* out, ScratchArena arena, Py_ssize_t n_batch, Py_ssize_t n_clusters,
    Py_ssize_t n_features, size_t itemsize, int n_threads, bint pack_rows) except -1
cdef bint _worth_packing(const Rows* rows, size_t itemsize) noexcept nogil
cdef double _minibatch_step(
    const Rows* rows, const floating[:, ::1] centers_old, floating[:, ::1] centers_new,
    double* weight_sums, int* labels, const StepScratch* scratch, const Sampling* sampling=*,
    char* chunk_finite=*, bint* finite=*, FiniteScan* scan=*) noexcept nogil
cdef int _check_step_shapes(
    const floating[:, ::1] centers_old, floating[:, ::1] centers_new,
    double[::1] weight_sums, Py_ssize_t n_labels, Py_ssize_t n_batch, Py_ssize_t n_features,
) except -1
cdef double _center_shift(
    const floating[:, ::1] a, const floating[:, ::1] b) noexcept nogil

# Reassignment of small centers onto batch rows: which centers move and onto which batch
# positions, their weights' restart (every kernel family), and the move onto dense rows
cdef Py_ssize_t _small_centers(
    double[::1] weight_sums, double ratio, Py_ssize_t n_batch, RandomStream stream,
    Py_ssize_t* order, signed char* small) except -1
cdef void _restart_small_weights(
    double[::1] weight_sums, const signed char* small, Py_ssize_t n_small) noexcept
cdef Py_ssize_t _reassign_small_centers(
    const Rows* batch, floating[:, ::1] centers, double[::1] weight_sums, double ratio,
    RandomStream stream, Py_ssize_t* order, signed char* small) except -1


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


cdef inline Py_ssize_t _tile_scratch(Py_ssize_t n_features) noexcept nogil:
    """Values of per-thread scratch the assignment needs: one tile of copied rows, or for
    rows of few features a chunk of them (see _assign_chunk)."""
    if n_features <= MBK_MAX_FEW_FEATURES:
        return CHUNK_ROWS * n_features
    return MBK_MAX_TILE_ROWS * n_features


cdef inline int _step_setup(
        Rows* rows,                          # OUT the view of X (or of X[sample_indices])
        StepScratch* scratch,                # OUT
        char** chunk_finite,                 # OUT with check_finite, the scan's chunk flags
        ScratchArena arena,                  # owns the scratch
        const floating[:, :] X,
        const Py_ssize_t[::1] sample_indices,
        object sample_weight,
        const floating[:, ::1] centers_old,
        floating[:, ::1] centers_new,
        double[::1] weight_sums,
        Py_ssize_t n_labels,
        int n_threads,
        bint check_finite,
) except -1:
    """What an entry point does before a step on a batch: the row view, the shapes checked,
    the step's scratch, and with check_finite the flags of the scan on the assignment pass,
    which reads the batch's chunks of X in place (so all rows of X only). Inline: compiled
    into the entry points that call it rather than into _dense, whose hot code it moved."""
    _fill_rows(rows, X, sample_indices, sample_weight)
    _check_step_shapes(centers_old, centers_new, weight_sums, n_labels, rows.n_rows,
                       X.shape[1])
    _step_scratch(scratch, arena, rows.n_rows, centers_old.shape[0], X.shape[1],
                  sizeof(floating), n_threads, _worth_packing(rows, sizeof(floating)))
    chunk_finite[0] = NULL
    if check_finite:
        if sample_indices is not None:
            raise ValueError("check_finite scans all rows of X: pass no sample_indices")
        chunk_finite[0] = <char*> arena.take(_n_chunks(rows.n_rows))
    return 0


# The update's arithmetic for one center, shared by every kernel family (inline: compiled into
# each family's update as it always was).

cdef inline void _seed_sums(
        const floating* center, double weight_sum, double* sums, Py_ssize_t n_features,
) noexcept nogil:
    """sums = center * weight_sum: the running mean's sum so far ("undo the scaling")."""
    cdef Py_ssize_t f
    for f in range(n_features):
        sums[f] = center[f] * weight_sum


cdef inline void _apply_center(
        const floating* center_old,
        floating* center_new,                # OUT (may be center_old)
        double* weight_sum,                  # INOUT this center's running weight
        double batch_weight,
        const double* sums,                  # IN this center's sums
        Py_ssize_t n_features,
        bint seeded,                         # sums start from center_old * weight_sum
) noexcept nogil:
    """One center's incremental mean from its sums, and its running weight."""
    cdef Py_ssize_t f
    cdef double alpha, weight_before = weight_sum[0]
    if not batch_weight > 0:
        # Nothing (or only zero/negative weight) landed here: the center stays put.
        if center_new != center_old:
            for f in range(n_features):
                center_new[f] = center_old[f]
        return
    weight_sum[0] = weight_before + batch_weight
    alpha = 1 / weight_sum[0]
    if seeded:
        for f in range(n_features):
            center_new[f] = <floating> (sums[f] * alpha)
    else:
        for f in range(n_features):
            center_new[f] = <floating> ((center_old[f] * weight_before + sums[f]) * alpha)

"""Compiled nested mini-batch k-means: one round on a growing, nested batch, and the sums
its driver (mbk._nested) needs.
"""

from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.math cimport INFINITY
from libc.math cimport sqrt as _sqrt

from mbk._core cimport (
    CHUNK_ROWS, Centers, Rows, _Scratch, _check_centers, _clamp_threads, _distance_chunk,
    _fill_rows, _padded_count, _prepare_centers, _row_ptr, _sq_euclidean, _threads_for,
    _tile_rows, _tile_scratch, _weight,
)
from mbk._kernels cimport MBK_MAX_TILE_ROWS

# ---------------------------------------------------------------------------------------------
# Nested mini-batch k-means (Newling & Fleuret 2016): one round on a growing, nested batch
# ---------------------------------------------------------------------------------------------
#
# Batch position i is row order[i] of X; the batch of a round is positions [0, n_batch), which
# holds the previous round's batch, so every batch contains the one before. Each batch
# position keeps its label (-1 until it is first labelled) and two Hamerly bounds on distances
# (not squared): upper[i] >= ||x - c_label|| and lower[i] <= min over other centers of ||x - c||.
# sums[j] and weight_sums[j] hold the weighted sum and weight of the rows currently labelled
# j, so each center is exactly the mean of its batch rows (each row counts once, with its
# current label): on a fixed batch a round is one Lloyd iteration, done incrementally.


cdef struct NestedState:
    const Py_ssize_t* order       # (n_samples,) row of X at each batch position
    int* labels                   # (n_samples,) per batch position
    double* upper
    double* lower
    const double* movement        # (n_clusters,) how far each center moved last round
    const double* half_gap        # (n_clusters,) half the distance to the nearest other center
    double move_max               # the largest movement, and the index and value of the
    Py_ssize_t move_argmax        # second largest: a row's lower bound drops by the largest
    double move_second            # movement among the centers other than its own
    Py_ssize_t* changed           # (n_samples,) OUT per chunk: positions whose label changed
    int* moved_from               # (n_samples,) OUT previous label of a changed position, or -1
    Py_ssize_t* chunk_changes     # (n_chunks,) OUT how many positions each chunk changed
    Py_ssize_t* chunk_distances   # (n_chunks,) OUT rows compared with every center


cdef void _nested_chunk(
        const Rows* rows,             # IN X with its weights (no index)
        const Centers* centers,       # IN current centers, prepared
        NestedState* state,           # INOUT
        Py_ssize_t chunk,
        Py_ssize_t n_batch,
        Py_ssize_t* pending,          # TMP (CHUNK_ROWS,) rows of X to compare with all centers
        Py_ssize_t* pending_at,       # TMP (CHUNK_ROWS,) their batch positions
        floating* tile,               # TMP _tile_scratch(n_features)
        floating* distances,          # TMP (MBK_MAX_TILE_ROWS * n_clusters,)
        floating* row_buffer,         # TMP (n_features,)
) noexcept nogil:
    """Label the batch positions of one chunk, skipping rows whose bounds prove the label.

    Hamerly's test: after the centers moved by p, upper += p[label] and lower -= the largest
    p of another center; the label cannot have changed while upper <= max(lower, half_gap).
    Otherwise upper is tightened to the exact distance and tested again; rows that still fail
    (and rows new to the batch, labelled -1) are compared with every center, by tiles.
    """
    cdef Py_ssize_t start = chunk * CHUNK_ROWS, end = min(start + CHUNK_ROWS, n_batch)
    cdef Py_ssize_t n_features = rows.n_features, n_clusters = centers.n_clusters
    cdef const floating* center_rows = <const floating*> centers.rows
    cdef Py_ssize_t i, r, t, j, n_pending = 0, n_in_tile, x_stride, at, n_changes = 0
    cdef int label, best
    cdef double bound, drop, first, second, value
    cdef Rows batch
    cdef const floating* x
    cdef int tile_rows = centers.kernels.tile_rows
    # The state's pointers and scalars in locals: the stores below could alias the struct.
    cdef const Py_ssize_t* order = state.order
    cdef const int* labels = state.labels
    cdef double* upper = state.upper
    cdef double* lower = state.lower
    cdef const double* movement = state.movement
    cdef const double* half_gap = state.half_gap
    cdef double move_max = state.move_max, move_second = state.move_second
    cdef Py_ssize_t move_argmax = state.move_argmax
    cdef double up
    for i in range(start, end):
        label = labels[i]
        if label < 0:
            pending[n_pending] = order[i]
            pending_at[n_pending] = i
            n_pending += 1
            continue
        drop = move_second if label == move_argmax else move_max
        up = upper[i] + movement[label]
        bound = lower[i] - drop
        lower[i] = bound
        if half_gap[label] > bound:
            bound = half_gap[label]
        if up > bound:
            x = _row_ptr(rows, order[i], row_buffer)
            up = _sqrt(<double> _sq_euclidean(x, center_rows + label * n_features, n_features))
            if up > bound:
                pending[n_pending] = order[i]
                pending_at[n_pending] = i
                n_pending += 1
        upper[i] = up

    # The rows that need every distance, a tile at a time: nearest and second nearest.
    batch = rows[0]
    batch.index = pending
    batch.n_rows = n_pending
    t = 0
    while t < n_pending:
        n_in_tile = min(<Py_ssize_t> tile_rows, n_pending - t)
        x = _tile_rows(&batch, <const floating*> rows.data, t, n_in_tile, tile_rows, tile,
                       &x_stride)
        if floating is float:
            centers.kernels.distance_float(
                x, x_stride, <const float*> centers.transposed, n_features, centers.n_padded,
                n_clusters, <int> n_in_tile, distances)
        else:
            centers.kernels.distance_double(
                x, x_stride, <const double*> centers.transposed, n_features,
                centers.n_padded, n_clusters, <int> n_in_tile, distances)
        for r in range(n_in_tile):
            first = INFINITY
            second = INFINITY
            best = 0
            for j in range(n_clusters):
                value = distances[r * n_clusters + j]
                if value < first:
                    second = first
                    first = value
                    best = <int> j
                elif value < second:
                    second = value
            at = pending_at[t + r]
            if state.labels[at] < 0:
                state.moved_from[at] = -1
                state.changed[start + n_changes] = at
                n_changes += 1
            elif state.labels[at] != best:
                state.moved_from[at] = state.labels[at]
                state.changed[start + n_changes] = at
                n_changes += 1
            state.labels[at] = best
            state.upper[at] = first
            state.lower[at] = second
        t += n_in_tile
    state.chunk_changes[chunk] = n_changes
    state.chunk_distances[chunk] = n_pending


cdef void _nested_update_center(
        const Rows* rows,                  # IN X with its weights
        const NestedState* state,          # IN labels and order
        Py_ssize_t j,
        const Py_ssize_t* removed,         # IN positions that left center j
        Py_ssize_t n_removed,
        const Py_ssize_t* added,           # IN positions that joined center j
        Py_ssize_t n_added,
        double* sums,                      # INOUT (n_features,) weighted sum of j's rows
        double* weight_sum,                # INOUT j's weight
        Py_ssize_t* count,                 # INOUT j's number of rows
        floating* center,                  # INOUT (n_features,)
        double* movement,                  # OUT how far the center moved
        floating* row_buffer,              # TMP (n_features,)
) noexcept nogil:
    """Take the leaving rows out of center j's sums, put the joining rows in, re-divide.

    Sums and weights are float64; a center that loses all its rows keeps its position (its
    sums restart from exact zeros), and so does one whose rows weigh nothing.
    """
    cdef Py_ssize_t n_features = rows.n_features, q, r, f
    cdef const floating* x
    cdef double w, diff, moved = 0, alpha
    cdef floating value
    for q in range(n_removed):
        r = state.order[removed[q]]
        x = _row_ptr(rows, r, row_buffer)
        w = _weight(<const floating*> rows.weights, r)
        for f in range(n_features):
            sums[f] -= w * x[f]
        weight_sum[0] -= w
    for q in range(n_added):
        r = state.order[added[q]]
        x = _row_ptr(rows, r, row_buffer)
        w = _weight(<const floating*> rows.weights, r)
        for f in range(n_features):
            sums[f] += w * x[f]
        weight_sum[0] += w
    count[0] += n_added - n_removed
    movement[0] = 0
    if count[0] == 0:
        weight_sum[0] = 0
        for f in range(n_features):
            sums[f] = 0
        return
    if not weight_sum[0] > 0 or (n_added == 0 and n_removed == 0):
        return
    alpha = 1 / weight_sum[0]
    for f in range(n_features):
        value = <floating> (sums[f] * alpha)
        diff = <double> value - <double> center[f]
        moved += diff * diff
        center[f] = value
    movement[0] = _sqrt(moved)


cdef Py_ssize_t _group_by(
        const Py_ssize_t* positions, Py_ssize_t n, const int* keys, Py_ssize_t n_keys,
        Py_ssize_t* offsets,      # OUT (n_keys + 1,)
        Py_ssize_t* grouped,      # OUT (n,) positions with key >= 0, grouped by key
) noexcept nogil:
    """Counting sort of positions by keys[position] (negative keys dropped), stable."""
    cdef Py_ssize_t q, j, key, total = 0
    for j in range(n_keys + 1):
        offsets[j] = 0
    for q in range(n):
        key = keys[positions[q]]
        if key >= 0:
            offsets[key + 1] += 1
    for j in range(n_keys):
        offsets[j + 1] += offsets[j]
    for q in range(n):
        key = keys[positions[q]]
        if key >= 0:
            grouped[offsets[key]] = positions[q]
            offsets[key] += 1
            total += 1
    for j in range(n_keys, 0, -1):
        offsets[j] = offsets[j - 1]
    offsets[0] = 0
    return total


def nested_round(
        const floating[:, :] X,                 # IN training data
        const Py_ssize_t[::1] order,            # IN (n_samples,) row of X at each position
        sample_weight,                          # IN floating[::1] per row of X, or None
        floating[:, ::1] centers,               # INOUT (n_clusters, n_features)
        double[:, ::1] sums,                    # INOUT (n_clusters, n_features)
        double[::1] weight_sums,                # INOUT (n_clusters,)
        Py_ssize_t[::1] counts,                 # INOUT (n_clusters,)
        int[::1] labels,                        # INOUT (n_samples,) per batch position
        double[::1] upper,                      # INOUT (n_samples,)
        double[::1] lower,                      # INOUT (n_samples,)
        double[::1] movement,                   # INOUT (n_clusters,) last round's; this one's
        double[::1] half_gap,                   # INOUT (n_clusters,)
        Py_ssize_t[::1] changed,                # TMP (n_samples,)
        int[::1] moved_from,                    # TMP (n_samples,)
        Py_ssize_t n_batch,
        int n_threads=1):
    """One round of nested mini-batch k-means on batch positions [0, n_batch).

    Positions with a label (>= 0) carry bounds from the previous round (whose center
    movement is ``movement``; ``half_gap`` is for the current centers); positions labelled -1
    are new. Labels every position (bounds skip most old ones), moves each center to the
    mean of its rows, then writes this round's ``movement`` and the new ``half_gap``.

    Returns (rows whose label changed, new rows included; rows compared with every center).
    ``order`` must hold rows of X and ``labels`` centers or -1 (not checked: the driver,
    ``_nested.py``, builds them; a check would cost a pass over the batch every round).
    """
    cdef Rows rows
    cdef Centers prepared
    cdef NestedState state
    cdef _Scratch owner = _Scratch()
    cdef Py_ssize_t n_samples = X.shape[0], n_features = X.shape[1]
    cdef Py_ssize_t n_clusters = centers.shape[0], n_padded, per_thread, j, q, chunk
    cdef Py_ssize_t n_chunks = (n_batch + CHUNK_ROWS - 1) // CHUNK_ROWS
    cdef Py_ssize_t n_changes = 0, n_distances = 0, n_removed, n_added
    cdef Py_ssize_t* all_changes
    cdef Py_ssize_t* add_offsets
    cdef Py_ssize_t* remove_offsets
    cdef Py_ssize_t* added
    cdef Py_ssize_t* removed
    cdef char* base
    cdef floating* scratch
    cdef int update_threads
    cdef const Py_ssize_t[::1] all_rows = None

    _fill_rows(&rows, X, all_rows, sample_weight)
    _check_centers(centers, n_features)
    if not 1 <= n_batch <= n_samples:
        raise ValueError("need 1 <= n_batch <= n_samples")
    if order.shape[0] != n_samples:
        raise ValueError("order must have one entry per row of X")
    for name, length in (("labels", labels.shape[0]), ("upper", upper.shape[0]),
                         ("lower", lower.shape[0]), ("changed", changed.shape[0]),
                         ("moved_from", moved_from.shape[0])):
        if length != n_samples:
            raise ValueError(f"{name} must have one entry per row of X")
    if (sums.shape[0] != n_clusters or sums.shape[1] != n_features
            or weight_sums.shape[0] != n_clusters or counts.shape[0] != n_clusters
            or movement.shape[0] != n_clusters or half_gap.shape[0] != n_clusters):
        raise ValueError("sums, weight_sums, counts, movement and half_gap must match centers")

    n_padded = _padded_count(n_clusters, <floating*> NULL)
    n_threads = _clamp_threads(n_threads, n_batch, n_clusters, n_features)
    # per thread: a row tile, a distance tile, a row buffer, two position lists
    per_thread = ((_tile_scratch(n_features) + MBK_MAX_TILE_ROWS * n_clusters + n_features)
                  * sizeof(floating) + 2 * CHUNK_ROWS * sizeof(Py_ssize_t))
    per_thread = (per_thread + 63) // 64 * 64
    owner.centers_storage = owner.take(n_padded * (n_features + 1) * sizeof(floating))
    owner.per_thread = owner.take(max(n_threads, 1) * per_thread)
    owner.per_chunk = owner.take(2 * n_chunks * sizeof(Py_ssize_t))

    state.order = &order[0]
    state.labels = &labels[0]
    state.upper = &upper[0]
    state.lower = &lower[0]
    state.movement = &movement[0]
    state.half_gap = &half_gap[0]
    state.changed = &changed[0]
    state.moved_from = &moved_from[0]
    state.chunk_changes = <Py_ssize_t*> owner.per_chunk
    state.chunk_distances = state.chunk_changes + n_chunks
    state.move_max = 0
    state.move_argmax = 0
    state.move_second = 0
    for j in range(n_clusters):
        if movement[j] > state.move_max:
            state.move_second = state.move_max
            state.move_max = movement[j]
            state.move_argmax = j
        elif movement[j] > state.move_second:
            state.move_second = movement[j]

    with nogil:
        _prepare_centers(&prepared, centers, <floating*> owner.centers_storage)
        for chunk in prange(n_chunks, schedule="static", num_threads=n_threads):
            base = (<char*> owner.per_thread) + threadid() * per_thread
            scratch = <floating*> (base + 2 * CHUNK_ROWS * sizeof(Py_ssize_t))
            _nested_chunk(&rows, &prepared, &state, chunk, n_batch,
                          <Py_ssize_t*> base, (<Py_ssize_t*> base) + CHUNK_ROWS, scratch,
                          scratch + _tile_scratch(n_features),
                          scratch + _tile_scratch(n_features) + MBK_MAX_TILE_ROWS * n_clusters)
        # Changed positions of every chunk, in chunk order (the same for any thread count).
        for chunk in range(n_chunks):
            for q in range(state.chunk_changes[chunk]):
                changed[n_changes] = changed[chunk * CHUNK_ROWS + q]
                n_changes += 1
            n_distances += state.chunk_distances[chunk]

    owner.members = owner.take((2 * (n_clusters + 1) + 2 * n_changes) * sizeof(Py_ssize_t))
    owner.extra = owner.take(max(n_threads, 1) * n_features * sizeof(floating))
    all_changes = &changed[0]
    add_offsets = <Py_ssize_t*> owner.members
    remove_offsets = add_offsets + n_clusters + 1
    added = remove_offsets + n_clusters + 1
    removed = added + n_changes
    update_threads = _threads_for(n_threads, n_clusters, <double> n_changes * n_features)
    with nogil:
        _group_by(all_changes, n_changes, &labels[0], n_clusters, add_offsets, added)
        _group_by(all_changes, n_changes, &moved_from[0], n_clusters, remove_offsets, removed)
        # Owner computes: one thread does all of center j's arithmetic, rows in batch order.
        for j in prange(n_clusters, schedule="static", num_threads=update_threads):
            n_removed = remove_offsets[j + 1] - remove_offsets[j]
            n_added = add_offsets[j + 1] - add_offsets[j]
            _nested_update_center(
                &rows, &state, j, removed + remove_offsets[j], n_removed,
                added + add_offsets[j], n_added, &sums[j, 0], &weight_sums[j], &counts[j],
                &centers[j, 0], &movement[j],
                (<floating*> owner.extra) + threadid() * n_features)
    _half_gaps(centers, half_gap, n_threads)
    return n_changes, n_distances


cdef int _half_gaps(const floating[:, ::1] centers, double[::1] half_gap, int n_threads) except -1:
    """half_gap[j] = half the distance from center j to its nearest other center."""
    cdef Rows rows
    cdef Centers prepared
    cdef _Scratch owner = _Scratch()
    cdef Py_ssize_t n_clusters = centers.shape[0], n_features = centers.shape[1]
    cdef Py_ssize_t chunk, start, end, j, other, n_chunks
    cdef floating* out
    cdef double best
    cdef const Py_ssize_t[::1] all_rows = None
    cdef const floating[:, :] center_view = centers
    if n_clusters == 1:
        half_gap[0] = INFINITY
        return 0
    _fill_rows(&rows, center_view, all_rows, None)
    n_threads = _clamp_threads(n_threads, n_clusters, n_clusters, n_features)
    n_chunks = (n_clusters + CHUNK_ROWS - 1) // CHUNK_ROWS
    owner.centers_storage = owner.take(
        _padded_count(n_clusters, <floating*> NULL) * (n_features + 1) * sizeof(floating))
    owner.per_thread = owner.take(n_threads * _tile_scratch(n_features) * sizeof(floating))
    owner.extra = owner.take(n_clusters * n_clusters * sizeof(floating))
    out = <floating*> owner.extra
    with nogil:
        _prepare_centers(&prepared, centers, <floating*> owner.centers_storage)
        for chunk in prange(n_chunks, schedule="static", num_threads=n_threads):
            start = chunk * CHUNK_ROWS
            end = min(start + CHUNK_ROWS, n_clusters)
            _distance_chunk(&rows, &prepared, start, end, out,
                            (<floating*> owner.per_thread)
                            + threadid() * _tile_scratch(n_features))
        for j in range(n_clusters):
            best = INFINITY
            for other in range(n_clusters):
                if other != j and out[j * n_clusters + other] < best:
                    best = out[j * n_clusters + other]
            half_gap[j] = best / 2
    return 0


def labelled_inertia(
        const floating[:, :] X,                 # IN
        const floating[:, ::1] centers,         # IN
        const int[::1] labels,                  # IN (n_samples,) a label per row of X
        sample_weight=None,                     # IN floating[::1] per row of X, or None
        int n_threads=1):
    """sum_i w_i ||x_i - c_labels[i]||^2, by direct differences, chunks summed in order."""
    cdef Rows rows
    cdef _Scratch owner = _Scratch()
    cdef Py_ssize_t n_samples = X.shape[0], n_features = X.shape[1], i, chunk, start, end
    cdef Py_ssize_t n_chunks = (n_samples + CHUNK_ROWS - 1) // CHUNK_ROWS
    cdef const floating* x
    cdef floating* buffer
    cdef double* partial
    cdef double inertia = 0
    cdef const Py_ssize_t[::1] all_rows = None
    _fill_rows(&rows, X, all_rows, sample_weight)
    _check_centers(centers, n_features)
    if labels.shape[0] != n_samples:
        raise ValueError("labels must have one entry per row of X")
    for i in range(n_samples):
        if not 0 <= labels[i] < centers.shape[0]:
            raise ValueError("labels must be center indices")
    n_threads = _threads_for(n_threads, n_chunks, <double> n_samples * n_features)
    owner.per_chunk = owner.take(n_chunks * sizeof(double))
    owner.per_thread = owner.take(n_threads * n_features * sizeof(floating))
    partial = <double*> owner.per_chunk
    with nogil:
        for chunk in prange(n_chunks, schedule="static", num_threads=n_threads):
            start = chunk * CHUNK_ROWS
            end = min(start + CHUNK_ROWS, n_samples)
            buffer = (<floating*> owner.per_thread) + threadid() * n_features
            partial[chunk] = 0
            for i in range(start, end):
                x = _row_ptr(&rows, i, buffer)
                partial[chunk] += _sq_euclidean(x, &centers[labels[i], 0], n_features) * _weight(
                    <const floating*> rows.weights, i)
        for chunk in range(n_chunks):
            inertia += partial[chunk]
    return inertia


def cluster_spread(
        const int[::1] labels,                  # IN (n_samples,) per batch position
        const double[::1] upper,                # IN (n_samples,) per batch position
        const Py_ssize_t[::1] order,            # IN (n_samples,) row of X at each position
        sample_weight,                          # IN floating[::1] per row of X, or None
        double[::1] out,                        # OUT (n_clusters,)
        Py_ssize_t n_batch):
    """out[j] = sum of w * upper^2 over the batch positions labelled j (serial, in order)."""
    cdef const float[::1] w32
    cdef const double[::1] w64
    cdef const float* weights32 = NULL
    cdef const double* weights64 = NULL
    cdef Py_ssize_t i, n_clusters = out.shape[0]
    cdef double w
    if n_batch > labels.shape[0] or n_batch > upper.shape[0] or n_batch > order.shape[0]:
        raise ValueError("n_batch exceeds the arrays")
    if sample_weight is not None:
        if sample_weight.dtype == "float32":
            w32 = sample_weight
            weights32 = &w32[0]
        else:
            w64 = sample_weight
            weights64 = &w64[0]
    with nogil:
        for i in range(n_clusters):
            out[i] = 0
        for i in range(n_batch):
            w = 1
            if weights32 != NULL:
                w = weights32[order[i]]
            elif weights64 != NULL:
                w = weights64[order[i]]
            out[labels[i]] += w * upper[i] * upper[i]

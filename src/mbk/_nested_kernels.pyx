"""Compiled nested mini-batch k-means: rounds on a growing, nested batch (with the doubling
and stopping rules), the swap search's reductions, and the sums its driver (mbk._nested)
needs.
"""

from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.math cimport INFINITY
from libc.math cimport sqrt as _sqrt
from libc.string cimport memcpy

from mbk._dense cimport (
    Centers, ScratchArena, _check_centers, _distance_chunk, _padded_count, _prepare_centers,
    _sq_euclidean, _tile_rows, _tile_scratch, active_kernels,
)
from mbk._rows cimport (
    CHUNK_ROWS, Rows, _fill_rows, _n_chunks, _row_ptr, _weight, _weights_of,
)
from mbk._tuning cimport clamp_threads, threads_for
from mbk._kernels cimport MBK_MAX_FEW_FEATURES, MBK_MAX_TILE_ROWS

# ---------------------------------------------------------------------------------------------
# Nested mini-batch k-means (Newling & Fleuret 2016): one round on a growing, nested batch
# ---------------------------------------------------------------------------------------------
#
# Batch position i is row order[i] of X; the batch of a round is positions [0, n_batch), which
# holds the previous round's batch, so every batch contains the one before. Each batch
# position keeps its label (-1 until it is first labelled) and bounds on distances (not
# squared): upper[i] >= ||x - c_label||, and, for its "runner" (runner[i], the second nearest
# center when the row was last compared with every center) lower[i] <= ||x - c_runner||, and
# rest[i] <= the distance to every other center. Hamerly's single lower bound is
# min(lower, rest); keeping the runner apart means a moving center only erodes the bounds of
# the rows it is the runner of, plus (through rest, which starts at the third distance) by
# much less than it would the single bound.
# sums[j] and weight_sums[j] hold the weighted sum and weight of the rows currently labelled
# j, so each center is exactly the mean of its batch rows (each row counts once, with its
# current label): on a fixed batch a round is one Lloyd iteration, done incrementally.


cdef struct NestedState:
    const Py_ssize_t* order       # (n_samples,) row of X at each batch position
    int* labels                   # (n_samples,) per batch position
    double* upper
    double* lower
    int* runner                   # (n_samples,) the center lower is for
    double* rest
    const double* movement        # (n_clusters,) how far each center moved last round
    const double* half_gap        # (n_clusters,) half the distance to the nearest other center
    # The bound tests' tables (see MBK_DEFINE_BOUND_TESTS), 2 n_clusters values each: for a
    # row labelled j, moves[j] is how far j moved last round and drops[j] the largest
    # movement among the other centers (how far the rest bound drops); for a row aside since
    # the last sweep, moves[n_clusters + j] and drops[n_clusters + j] are the summed
    # movements since then (the latter: the sum of each round's largest).
    const double* moves
    const double* drops
    const Py_ssize_t* active      # the round's positions; NULL: every position of the batch
    unsigned char* aside          # (n_samples,) 1: left out of the rounds since the last sweep
    Py_ssize_t* changed           # (n_samples,) OUT per chunk: positions whose label changed
    int* moved_from               # (n_samples,) OUT previous label of a changed position, or -1
    Py_ssize_t* chunk_changes     # (n_chunks,) OUT how many positions each chunk changed
    Py_ssize_t* chunk_distances   # (n_chunks,) OUT rows compared with every center


cdef inline void _push_three(
        double value, int j, double* low, double* next_low, double* third_low, int* at,
        int* next_at) noexcept nogil:
    """One more center into the three least values so far (ties keep the lower index).

    Without branches (minima, maxima and conditional moves): where a center ranks is
    unpredictable, and a mispredicted branch costs more than this arithmetic.
    """
    cdef double first = low[0], second = next_low[0]
    cdef double above_first = value if value > first else first
    cdef double above_second = value if value > second else second
    cdef int new_next = at[0] if value < first else j
    third_low[0] = above_second if above_second < third_low[0] else third_low[0]
    next_low[0] = above_first if above_first < second else second
    next_at[0] = new_next if value < second else next_at[0]
    at[0] = j if value < first else at[0]
    low[0] = value if value < first else first


cdef inline void _record_nearest(
        NestedState* state, Py_ssize_t at, int best, int next_best, double first,
        double second, double third, Py_ssize_t start, Py_ssize_t* n_changes) noexcept nogil:
    """Position at's exact label and bounds; a changed label joins its chunk's list."""
    if state.labels[at] < 0:
        state.moved_from[at] = -1
        state.changed[start + n_changes[0]] = at
        n_changes[0] += 1
    elif state.labels[at] != best:
        state.moved_from[at] = state.labels[at]
        state.changed[start + n_changes[0]] = at
        n_changes[0] += 1
    state.labels[at] = best
    state.upper[at] = first
    state.runner[at] = next_best
    state.lower[at] = second
    state.rest[at] = third


cdef void _nested_chunk(
        const Rows* rows,             # IN X with its weights (no index)
        const Centers* centers,       # IN current centers, prepared
        NestedState* state,           # INOUT
        Py_ssize_t chunk,
        Py_ssize_t n_list,            # positions in the round: the active list's or the batch's
        Py_ssize_t* pending,          # TMP (CHUNK_ROWS,) rows of X to compare with all centers
        Py_ssize_t* pending_at,       # TMP (CHUNK_ROWS,) their batch positions
        floating* tile,               # TMP _tile_scratch(n_features)
        floating* distances,          # TMP (MBK_MAX_TILE_ROWS * n_clusters,)
        floating* row_buffer,         # TMP (n_features,)
) noexcept nogil:
    """Label the positions of one chunk of the round, skipping rows whose bounds prove the label.

    Hamerly's test: after the centers moved by p, upper += p[label] and lower -= the largest
    p of another center; the label cannot have changed while upper <= max(lower, half_gap).
    Otherwise (above MBK_MAX_FEW_FEATURES features) upper is tightened to the exact distance
    and tested again; rows that still fail (and rows new to the batch, labelled -1) are
    compared with every center (by tiles; with few features, rows in vector lanes take every
    failing row). A row left aside since the last sweep gets the summed movements since then
    instead.
    """
    cdef Py_ssize_t start = chunk * CHUNK_ROWS, end = min(start + CHUNK_ROWS, n_list)
    cdef Py_ssize_t n_features = rows.n_features, n_clusters = centers.n_clusters
    cdef const floating* center_rows = <const floating*> centers.rows
    cdef Py_ssize_t i, r, t, j, n_pending = 0, n_in_tile, x_stride, n_changes = 0, n_failed
    cdef int label, best, next_best
    cdef double up, bound, other, first, second, third
    cdef bint tighten
    cdef Rows batch
    cdef const floating* x
    cdef int tile_rows = centers.kernels.tile_rows
    # The state's arrays in locals: the stores below could alias the struct.
    cdef const Py_ssize_t* order = state.order
    cdef const int* labels = state.labels
    cdef double* upper = state.upper
    cdef double* lower = state.lower
    cdef const int* runner = state.runner
    cdef const double* rest = state.rest
    cdef const double* half_gap = state.half_gap
    cdef unsigned char fail[CHUNK_ROWS]
    cdef Py_ssize_t failed[CHUNK_ROWS]
    cdef int few_best[CHUNK_ROWS]
    cdef int few_next[CHUNK_ROWS]
    cdef double few_first[CHUNK_ROWS]
    cdef double few_second[CHUNK_ROWS]
    cdef double few_third[CHUNK_ROWS]
    # Every position's bounds take the movements; the ones that fail the test come back.
    n_failed = active_kernels().bound_tests(
        end - start, state.active + start if state.active != NULL else NULL, start,
        labels, runner, upper, lower, state.rest, state.aside, state.moves, state.drops,
        half_gap, n_clusters, fail, failed)
    # Few features: every failing row is compared with every center at once, which beats
    # tightening first, whose exact distances and square roots end in unpredictable branches.
    tighten = n_features > MBK_MAX_FEW_FEATURES
    for t in range(n_failed):
        i = failed[t]
        label = labels[i]
        if label >= 0 and tighten:
            # Tighten: the exact distance to the own center, then to the runner.
            other = rest[i]
            bound = max(min(lower[i], other), half_gap[label])
            x = _row_ptr(rows, order[i], row_buffer)
            up = _sqrt(<double> _sq_euclidean(x, center_rows + label * n_features, n_features))
            upper[i] = up
            if up > bound and other > lower[i] and runner[i] != label:
                lower[i] = _sqrt(<double> _sq_euclidean(
                    x, center_rows + runner[i] * n_features, n_features))
                bound = max(min(lower[i], other), half_gap[label])
            if not up > bound:
                continue
        pending[n_pending] = order[i]
        pending_at[n_pending] = i
        n_pending += 1

    # The rows that need every distance: the nearest three centers.
    if n_features <= MBK_MAX_FEW_FEATURES and n_pending > 0:
        # Few features: rows in vector lanes, every center against them (the tiles would
        # spend more on picking three of each row's distances than on the distances).
        if floating is float:
            active_kernels().nearest_three_float(
                <const float*> rows.data, rows.row_stride, rows.col_stride, pending,
                <int> n_pending, <const float*> center_rows, n_clusters, n_features,
                few_best, few_next, few_first, few_second, few_third)
        else:
            active_kernels().nearest_three_double(
                <const double*> rows.data, rows.row_stride, rows.col_stride, pending,
                <int> n_pending, <const double*> center_rows, n_clusters, n_features,
                few_best, few_next, few_first, few_second, few_third)
        for t in range(n_pending):
            _record_nearest(state, pending_at[t], few_best[t], few_next[t], few_first[t],
                            few_second[t], few_third[t], start, &n_changes)
        state.chunk_changes[chunk] = n_changes
        state.chunk_distances[chunk] = n_pending
        return
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
            third = INFINITY
            best = 0
            next_best = 0
            for j in range(n_clusters):
                _push_three(distances[r * n_clusters + j], <int> j, &first, &second, &third,
                            &best, &next_best)
            _record_nearest(state, pending_at[t + r], best, next_best, first, second, third,
                            start, &n_changes)
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


cdef bint _batch_used_up(
        const NestedState* state,
        const Rows* rows,
        Py_ssize_t n_batch,
        Py_ssize_t n_clusters,
        const double* weight_sums,     # IN (n_clusters,)
        double rho,
        double* spread,                # TMP (n_clusters,)
        const floating* witness,       # NULL, of X's type (selects the weights' type)
) noexcept nogil:
    """The doubling rule: every center with weight moved less than its standard error / rho.

    sigma_j = sqrt(sum of w * upper^2 over j's positions) / weight_sums[j], summed serially in
    batch order (upper bounds the distance to the center before this round's move).
    """
    cdef Py_ssize_t i, j
    cdef double w
    for j in range(n_clusters):
        spread[j] = 0
    for i in range(n_batch):
        w = _weight(<const floating*> rows.weights, state.order[i])
        spread[state.labels[i]] += w * state.upper[i] * state.upper[i]
    for j in range(n_clusters):
        if weight_sums[j] > 0 and not state.movement[j] * rho < _sqrt(spread[j]) / weight_sums[j]:
            return False
    return True


cdef enum:
    NESTED_MARGIN_BINS = 16
    NESTED_SWEEP_PERIOD = 8    # rounds between sweeps at most
    NESTED_MARGIN_STRIDE = 8    # the margin's histogram reads one position in this many
    NESTED_ROW_WORK = 16       # a row's bound test, in multiply-adds (for the thread count)


cdef inline double _slack(double upper, double lower, double rest, double half_gap) noexcept nogil:
    """How far a position's centers can move before its label could change: max(min(lower,
    rest), half_gap) - upper. A half gap shrinks by at most (own movement + largest movement) / 2
    per round, so it decays no faster than the lower bound does."""
    cdef double bound = lower if lower < rest else rest
    return (bound if bound > half_gap else half_gap) - upper


cdef inline double _nested_slack(const NestedState* state, Py_ssize_t i) noexcept nogil:
    return _slack(state.upper[i], state.lower[i], state.rest[i],
                  state.half_gap[state.labels[i]])


cdef double _working_set_margin(
        const NestedState* state,
        Py_ssize_t n_batch,
        double step,                  # IN the drift one round is expected to add
        Py_ssize_t* bins,             # TMP (NESTED_MARGIN_BINS,)
        Py_ssize_t* period,           # OUT rounds until the next sweep, at most
) noexcept nogil:
    """The slack margin that minimises the rows visited per round, predicted.

    With margin step * 2^p, the rows with a smaller slack are visited every round and every
    row once per 2^p rounds (the next sweep, if each round adds ``step`` of drift): the cost
    per round is active(p) + n_batch / 2^p. active(p) is estimated from every
    NESTED_MARGIN_STRIDE-th position, binned by the exponent of slack / step. Returns -1
    when fewer than an eighth of the rows would be left aside: then the next round sweeps
    again rather than keep a list of nearly every row.
    """
    cdef Py_ssize_t i, p, best = 0, active = 0, best_active = 0
    cdef unsigned long long bits
    cdef double cost, best_cost = INFINITY, slack, inverse
    period[0] = 1
    if not step > 0:
        return 0
    inverse = 1 / step
    for p in range(NESTED_MARGIN_BINS):
        bins[p] = 0
    i = 0
    while i < n_batch:
        slack = _nested_slack(state, i) * inverse
        if slack <= 1:
            bins[0] += 1
        else:
            # The binary exponent e with 2^(e - 1) <= slack < 2^e, from the bits (as frexp,
            # cheaper); slack > 1 is a normal number, or infinite (the top bin).
            memcpy(&bits, &slack, sizeof(double))
            bins[min(<Py_ssize_t> ((bits >> 52) & 0x7ff) - 1022,
                     <Py_ssize_t> NESTED_MARGIN_BINS - 1)] += 1
        i += NESTED_MARGIN_STRIDE
    for p in range(NESTED_MARGIN_BINS - 1):
        active += bins[p]  # rows with slack < step * 2^p (up to rounding at the edges)
        cost = active * NESTED_MARGIN_STRIDE + <double> n_batch / (1 << p)
        if cost < best_cost:
            best_cost = cost
            best = p
            best_active = active * NESTED_MARGIN_STRIDE
    if 8 * (n_batch - best_active) < n_batch:
        return -1
    # Sweep again after the predicted period (within NESTED_SWEEP_PERIOD): the movements
    # shrink as the run settles, and a new sweep then leaves more rows aside.
    period[0] = min(<Py_ssize_t> 1 << best, <Py_ssize_t> NESTED_SWEEP_PERIOD)

    return step * (1 << best)


cdef Py_ssize_t _set_aside(
        NestedState* state,
        Py_ssize_t n_batch,
        double margin,
        Py_ssize_t* active_list,      # OUT the positions not set aside, in order
) noexcept nogil:
    """Set aside the positions whose slack is above margin; returns how many.

    Without branches: which rows are near a boundary is unpredictable. The state's arrays
    are read through locals, since the flag stores (chars) could alias them.
    """
    cdef const int* labels = state.labels
    cdef const double* upper = state.upper
    cdef const double* lower = state.lower
    cdef const double* rest = state.rest
    cdef const double* half_gap = state.half_gap
    cdef unsigned char* aside = state.aside
    cdef Py_ssize_t i, n_active = 0
    cdef bint far
    for i in range(n_batch):
        far = _slack(upper[i], lower[i], rest[i], half_gap[labels[i]]) > margin
        aside[i] = far
        active_list[n_active] = i
        n_active += not far
    return n_batch - n_active


cdef enum:
    # Why nested_rounds returned.
    NESTED_ROUND_LIMIT = 0   # max_rounds rounds ran
    NESTED_FIXED_POINT = 1   # a round changed no label: a Lloyd fixed point of the batch
    NESTED_USED_UP = 2       # the doubling rule holds
    NESTED_TOL = 3           # (whole data set) the centers moved by at most tol

# Rounds without the doubling rule (on the whole data set, or settling a seeding on a fixed
# batch) only visit the rows near a boundary ("active"): after a sweep over every row, a row
# whose slack (_nested_slack) is above a margin is left aside, and its label is proven for as
# long as the summed movements since the sweep (its center's, plus the largest of each
# round) stay below the margin; then the next round sweeps. _working_set_margin picks the
# margin. Which rows are aside changes how much work a round does; labels stay exact.


def nested_rounds(
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
        int[::1] runner,                        # INOUT (n_samples,)
        double[::1] rest,                       # INOUT (n_samples,)
        double[::1] movement,                   # INOUT (n_clusters,) last round's; this one's
        double[::1] half_gap,                   # INOUT (n_clusters,)
        Py_ssize_t[::1] changed,                # TMP (n_samples,)
        int[::1] moved_from,                    # TMP (n_samples,)
        Py_ssize_t n_batch,
        Py_ssize_t max_rounds=1,
        double rho=0,
        double tol=0,
        int n_threads=1):
    """Rounds of nested mini-batch k-means on batch positions [0, n_batch).

    Positions with a label (>= 0) carry bounds from the previous round (whose center
    movement is ``movement``; ``half_gap`` is for the current centers); positions labelled -1
    are new. A round labels every position (bounds skip most old ones), moves each center to
    the mean of its rows, then writes this round's ``movement`` and the new ``half_gap``.

    Rounds run until one changes no label (a Lloyd fixed point of the batch), or, on a part
    of the data set with rho > 0, the doubling rule holds (every center with weight moved by
    less than sigma_j / rho), or, on the whole data set with tol > 0, the summed squared
    movement is at most tol, or max_rounds rounds ran.

    Returns (rounds run, labels changed in the last round (new rows included), rows compared
    with every center over all rounds, why it stopped: 0 round limit, 1 fixed point,
    2 doubling rule, 3 tol). ``order`` must hold rows of X and ``labels`` centers or -1 (not
    checked: the driver, ``_nested.py``, builds them; a check would cost a pass over the
    batch).
    """
    cdef Rows rows
    cdef Centers prepared
    cdef NestedState state
    cdef ScratchArena arena = ScratchArena()
    cdef Py_ssize_t n_samples = X.shape[0], n_features = X.shape[1]
    cdef Py_ssize_t n_clusters = centers.shape[0], n_padded, per_thread, j, q, i, chunk
    cdef Py_ssize_t n_chunks, n_list, n_changes = 0, n_distances = 0, n_removed, n_added
    cdef Py_ssize_t n_rounds = 0, n_aside = 0, since_sweep = 0, sweep_period = 1
    cdef Py_ssize_t n_full = n_batch, distances_before
    cdef Py_ssize_t* add_offsets
    cdef Py_ssize_t* remove_offsets
    cdef Py_ssize_t* added
    cdef Py_ssize_t* removed
    cdef Py_ssize_t* active_list
    cdef Py_ssize_t* chunk_changes
    cdef Py_ssize_t* chunk_distances
    cdef char* thread_scratch
    cdef floating* prepared_storage
    cdef floating* row_buffers
    cdef double* moves
    cdef double* drift
    cdef double* drops
    cdef double move_max, move_second, drift_max = 0
    cdef Py_ssize_t move_argmax
    cdef double* spread
    cdef Py_ssize_t bins[NESTED_MARGIN_BINS]
    cdef char* base
    cdef floating* scratch
    cdef int round_threads, update_threads
    cdef int reason = NESTED_ROUND_LIMIT
    cdef bint working_set, sweep = True
    cdef double margin = 0, moved, largest
    cdef const Py_ssize_t[::1] all_rows = None

    _fill_rows(&rows, X, all_rows, sample_weight)
    _check_centers(centers, n_features)
    if not 1 <= n_batch <= n_samples:
        raise ValueError("need 1 <= n_batch <= n_samples")
    if max_rounds < 1:
        raise ValueError("need max_rounds >= 1")
    if order.shape[0] != n_samples:
        raise ValueError("order must have one entry per row of X")
    for name, length in (("labels", labels.shape[0]), ("upper", upper.shape[0]),
                         ("lower", lower.shape[0]), ("runner", runner.shape[0]),
                         ("rest", rest.shape[0]), ("changed", changed.shape[0]),
                         ("moved_from", moved_from.shape[0])):
        if length != n_samples:
            raise ValueError(f"{name} must have one entry per row of X")
    if (sums.shape[0] != n_clusters or sums.shape[1] != n_features
            or weight_sums.shape[0] != n_clusters or counts.shape[0] != n_clusters
            or movement.shape[0] != n_clusters or half_gap.shape[0] != n_clusters):
        raise ValueError("sums, weight_sums, counts, movement and half_gap must match centers")

    # The working set only where the doubling rule (which reads every position's bound) is
    # not used, and when several rounds may run.
    working_set = (n_batch == n_samples or not rho > 0) and max_rounds > 1
    n_padded = _padded_count(n_clusters, floating is double)
    n_chunks = _n_chunks(n_batch)
    n_threads = max(clamp_threads(n_threads, n_batch, n_clusters, n_features), 1)
    # per thread: a row tile, a distance tile, a row buffer, two position lists
    per_thread = ((_tile_scratch(n_features) + MBK_MAX_TILE_ROWS * n_clusters + n_features)
                  * sizeof(floating) + 2 * CHUNK_ROWS * sizeof(Py_ssize_t))
    per_thread = (per_thread + 63) // 64 * 64
    prepared_storage = <floating*> arena.take(n_padded * (n_features + 1) * sizeof(floating))
    thread_scratch = <char*> arena.take(n_threads * per_thread)
    row_buffers = <floating*> arena.take(n_threads * n_features * sizeof(floating))
    chunk_changes = <Py_ssize_t*> arena.take(n_chunks * sizeof(Py_ssize_t))
    chunk_distances = <Py_ssize_t*> arena.take(n_chunks * sizeof(Py_ssize_t))
    # The bound tests' tables, 2 n_clusters values each (see NestedState): moves is the last
    # round's movements followed by drift, the movements summed since the last sweep.
    moves = <double*> arena.take(2 * n_clusters * sizeof(double))
    drift = moves + n_clusters
    drops = <double*> arena.take(2 * n_clusters * sizeof(double))
    spread = <double*> arena.take(n_clusters * sizeof(double))
    add_offsets = <Py_ssize_t*> arena.take((n_clusters + 1) * sizeof(Py_ssize_t))
    remove_offsets = <Py_ssize_t*> arena.take((n_clusters + 1) * sizeof(Py_ssize_t))
    added = <Py_ssize_t*> arena.take(n_batch * sizeof(Py_ssize_t))
    removed = <Py_ssize_t*> arena.take(n_batch * sizeof(Py_ssize_t))
    active_list = NULL
    if working_set:
        active_list = <Py_ssize_t*> arena.take(n_batch * sizeof(Py_ssize_t))

    state.order = &order[0]
    state.labels = &labels[0]
    state.upper = &upper[0]
    state.lower = &lower[0]
    state.runner = &runner[0]
    state.rest = &rest[0]
    state.movement = &movement[0]
    state.half_gap = &half_gap[0]
    state.changed = &changed[0]
    state.moved_from = &moved_from[0]
    state.chunk_changes = chunk_changes
    state.chunk_distances = chunk_distances
    state.active = NULL
    state.aside = <unsigned char*> arena.take(n_batch) if working_set else NULL
    state.moves = moves
    state.drops = drops
    if working_set:
        for i in range(n_batch):
            state.aside[i] = 0
    for j in range(n_clusters):
        drift[j] = 0

    while True:
        move_max = 0
        move_argmax = 0
        move_second = 0
        for j in range(n_clusters):
            if movement[j] > move_max:
                move_second = move_max
                move_max = movement[j]
                move_argmax = j
            elif movement[j] > move_second:
                move_second = movement[j]
        if working_set and n_rounds > 0:
            # Movements since the last sweep; a round within the margin visits the active
            # rows only, one beyond it sweeps (and the rows aside take the summed movements).
            largest = 0
            for j in range(n_clusters):
                drift[j] += movement[j]
                largest = max(largest, drift[j])
            drift_max += move_max
            since_sweep += 1
            sweep = largest + drift_max > margin or since_sweep >= sweep_period
        for j in range(n_clusters):
            moves[j] = movement[j]
            drops[j] = move_second if j == move_argmax else move_max
            drops[n_clusters + j] = drift_max
        state.active = NULL if sweep else active_list
        n_list = n_batch if sweep else n_batch - n_aside
        n_chunks = (n_list + CHUNK_ROWS - 1) // CHUNK_ROWS
        # The work of a round: a bound test per row, and the rows compared with every center
        # (as many as last round; every row in a call's first round, which may add rows).
        round_threads = threads_for(
            n_threads, n_chunks, <double> n_list * NESTED_ROW_WORK
            + <double> min(n_full, n_list) * n_clusters * n_features)
        distances_before = n_distances
        n_changes = 0
        with nogil:
            _prepare_centers(&prepared, centers, prepared_storage)
            for chunk in prange(n_chunks, schedule="static", num_threads=round_threads):
                base = thread_scratch + threadid() * per_thread
                scratch = <floating*> (base + 2 * CHUNK_ROWS * sizeof(Py_ssize_t))
                _nested_chunk(&rows, &prepared, &state, chunk, n_list,
                              <Py_ssize_t*> base, (<Py_ssize_t*> base) + CHUNK_ROWS, scratch,
                              scratch + _tile_scratch(n_features),
                              scratch + _tile_scratch(n_features)
                              + MBK_MAX_TILE_ROWS * n_clusters)
            # Changed positions of every chunk, in chunk order (the same for any thread count).
            for chunk in range(n_chunks):
                for q in range(state.chunk_changes[chunk]):
                    changed[n_changes] = changed[chunk * CHUNK_ROWS + q]
                    n_changes += 1
                n_distances += state.chunk_distances[chunk]
            n_full = n_distances - distances_before

            update_threads = threads_for(n_threads, n_clusters, <double> n_changes * n_features)
            _group_by(&changed[0], n_changes, &labels[0], n_clusters, add_offsets, added)
            _group_by(&changed[0], n_changes, &moved_from[0], n_clusters, remove_offsets,
                      removed)
            # Owner computes: one thread does all of center j's arithmetic, rows in list order.
            for j in prange(n_clusters, schedule="static", num_threads=update_threads):
                n_removed = remove_offsets[j + 1] - remove_offsets[j]
                n_added = add_offsets[j + 1] - add_offsets[j]
                _nested_update_center(
                    &rows, &state, j, removed + remove_offsets[j], n_removed,
                    added + add_offsets[j], n_added, &sums[j, 0], &weight_sums[j], &counts[j],
                    &centers[j, 0], &movement[j],
                    row_buffers + threadid() * n_features)
        _half_gaps(centers, half_gap, n_threads)
        n_rounds += 1

        if n_changes == 0:
            reason = NESTED_FIXED_POINT
        elif n_batch == n_samples:
            if tol > 0:
                moved = 0
                for j in range(n_clusters):
                    moved += movement[j] * movement[j]
                if moved <= tol:
                    reason = NESTED_TOL
        elif rho > 0 and _batch_used_up(&state, &rows, n_batch, n_clusters, &weight_sums[0],
                                        rho, spread, <floating*> NULL):
            reason = NESTED_USED_UP
        if reason != NESTED_ROUND_LIMIT or n_rounds >= max_rounds:
            break
        if working_set and sweep:
            # After a sweep every bound is current: leave aside the rows with a wide slack.
            largest = 0
            for j in range(n_clusters):
                largest = max(largest, movement[j])
                drift[j] = 0
            drift_max = 0
            with nogil:
                margin = _working_set_margin(&state, n_batch, 2 * largest, bins, &sweep_period)
                if margin >= 0:
                    n_aside = _set_aside(&state, n_batch, margin, active_list)
                    sweep = False
                    since_sweep = 0

    if working_set and not sweep:
        # The rows still aside take the movements since the sweep (all but the last round's,
        # which ``movement`` holds as for every row), so every bound is current again.
        with nogil:
            for i in range(n_batch):
                if state.aside[i]:
                    upper[i] += drift[labels[i]]
                    lower[i] -= drift[runner[i]]
                    rest[i] -= drift_max
    return n_rounds, n_changes, n_distances, reason


cdef int _half_gaps(const floating[:, ::1] centers, double[::1] half_gap, int n_threads) except -1:
    """half_gap[j] = half the distance from center j to its nearest other center."""
    cdef Rows rows
    cdef Centers prepared
    cdef ScratchArena arena = ScratchArena()
    cdef Py_ssize_t n_clusters = centers.shape[0], n_features = centers.shape[1]
    cdef Py_ssize_t chunk, start, end, j, other, n_chunks
    cdef floating* out
    cdef floating* prepared_storage
    cdef floating* row_tiles
    cdef double best
    cdef const Py_ssize_t[::1] all_rows = None
    cdef const floating[:, :] center_view = centers
    if n_clusters == 1:
        half_gap[0] = INFINITY
        return 0
    _fill_rows(&rows, center_view, all_rows, None)
    n_threads = clamp_threads(n_threads, n_clusters, n_clusters, n_features)
    n_chunks = _n_chunks(n_clusters)
    prepared_storage = <floating*> arena.take(
        _padded_count(n_clusters, floating is double) * (n_features + 1) * sizeof(floating))
    row_tiles = <floating*> arena.take(n_threads * _tile_scratch(n_features) * sizeof(floating))
    out = <floating*> arena.take(n_clusters * n_clusters * sizeof(floating))
    with nogil:
        _prepare_centers(&prepared, centers, prepared_storage)
        for chunk in prange(n_chunks, schedule="static", num_threads=n_threads):
            start = chunk * CHUNK_ROWS
            end = min(start + CHUNK_ROWS, n_clusters)
            _distance_chunk(&rows, &prepared, start, end, out,
                            row_tiles + threadid() * _tile_scratch(n_features))
        for j in range(n_clusters):
            best = INFINITY
            for other in range(n_clusters):
                if other != j and out[j * n_clusters + other] < best:
                    best = out[j * n_clusters + other]
            half_gap[j] = best / 2
    return 0


def to_row_order(
        const Py_ssize_t[::1] order,            # IN (n,) row of X at each batch position
        Py_ssize_t n_seen,                      # IN positions [0, n_seen) carry a state
        const int[::1] labels,                  # IN (n,) per batch position, then:
        const double[::1] upper,                # IN
        const double[::1] lower,                # IN
        const int[::1] runner,                  # IN
        const double[::1] rest,                 # IN
        int[::1] row_labels,                    # OUT (n,) per row of X: -1 if not seen
        double[::1] row_upper,                  # OUT (n,) per row (unset if not seen)
        double[::1] row_lower,                  # OUT
        int[::1] row_runner,                    # OUT
        double[::1] row_rest):                  # OUT
    """The state of batch position i moved to row order[i], for the first n_seen positions;
    the other rows are marked new (label -1). One pass instead of five NumPy scatters."""
    cdef Py_ssize_t n = order.shape[0], i, r
    cdef bint bad = False
    for name, array in (("labels", labels), ("upper", upper), ("lower", lower),
                        ("runner", runner), ("rest", rest), ("row_labels", row_labels),
                        ("row_upper", row_upper), ("row_lower", row_lower),
                        ("row_runner", row_runner), ("row_rest", row_rest)):
        if array.shape[0] != n:
            raise ValueError(f"{name} must have one entry per position")
    if not 0 <= n_seen <= n:
        raise ValueError("need 0 <= n_seen <= len(order)")
    with nogil:
        for r in range(n):
            row_labels[r] = -1
        for i in range(n_seen):
            r = order[i]
            if not 0 <= r < n:
                bad = True
                break
            row_labels[r] = labels[i]
            row_upper[r] = upper[i]
            row_lower[r] = lower[i]
            row_runner[r] = runner[i]
            row_rest[r] = rest[i]
    if bad:
        raise ValueError("order must hold rows 0 .. len(order) - 1")


def swap_nearest(
        const floating[:, ::1] distances,       # IN (n_rows, n_clusters) to every center
        sample_weight,                          # IN floating[::1] per row, or None
        int[::1] labels,                        # OUT (n_rows,) nearest center
        double[::1] first,                      # OUT (n_rows,) squared distance to it
        double[::1] second,                     # OUT (n_rows,) to the second nearest
        double[::1] cost):                      # OUT (n_rows,) w * first
    """Nearest and second nearest center of every row, from its distances (serial, in order).

    Returns the sum of ``cost`` (the inertia).
    """
    cdef Py_ssize_t n_rows = distances.shape[0], n_clusters = distances.shape[1], i, j
    cdef const floating* weights = NULL
    cdef double value, low, next_low, third_low, total = 0
    cdef int at, next_at
    if (labels.shape[0] != n_rows or first.shape[0] != n_rows or second.shape[0] != n_rows
            or cost.shape[0] != n_rows):
        raise ValueError("labels, first, second and cost need one entry per row")
    _weights_of(sample_weight, n_rows, &weights)
    with nogil:
        for i in range(n_rows):
            low = INFINITY
            next_low = INFINITY
            third_low = INFINITY
            at = 0
            next_at = 0
            for j in range(n_clusters):
                value = distances[i, j]
                _push_three(value * value, <int> j, &low, &next_low, &third_low, &at, &next_at)
            labels[i] = at
            first[i] = low
            second[i] = next_low
            cost[i] = _weight(weights, i) * low
            total += cost[i]
    return total


def swap_totals(
        const floating[:, ::1] to_candidates,   # IN (n_rows, n_candidates) distances
        sample_weight,                          # IN floating[::1] per row, or None
        const int[::1] labels,                  # IN (n_rows,) from swap_nearest
        const double[::1] first,                # IN (n_rows,)
        const double[::1] second,               # IN (n_rows,)
        double[:, ::1] totals):                 # OUT (n_clusters, n_candidates)
    """totals[j, c]: the inertia after moving center j to candidate c, before any round.

    Each row keeps min(first, d_c^2), except the rows of center j, which take
    min(second, d_c^2); summed serially in row order.
    """
    cdef Py_ssize_t n_rows = to_candidates.shape[0], n_candidates = to_candidates.shape[1]
    cdef Py_ssize_t n_clusters = totals.shape[0], i, j, c
    cdef const floating* weights = NULL
    cdef double to_c, kept, w_i
    cdef ScratchArena arena = ScratchArena()
    cdef double* kept_sums
    if (labels.shape[0] != n_rows or first.shape[0] != n_rows or second.shape[0] != n_rows
            or totals.shape[1] != n_candidates):
        raise ValueError("labels, first, second and totals must match to_candidates")
    for i in range(n_rows):
        if not 0 <= labels[i] < n_clusters:
            raise ValueError("labels must be center indices")
    _weights_of(sample_weight, n_rows, &weights)
    kept_sums = <double*> arena.take(n_candidates * sizeof(double))
    with nogil:
        for c in range(n_candidates):
            kept_sums[c] = 0
        for j in range(n_clusters):
            for c in range(n_candidates):
                totals[j, c] = 0
        for i in range(n_rows):
            w_i = _weight(weights, i)
            j = labels[i]
            for c in range(n_candidates):
                to_c = to_candidates[i, c]
                to_c = to_c * to_c
                kept = first[i] if first[i] < to_c else to_c
                kept_sums[c] += w_i * kept
                totals[j, c] += w_i * ((second[i] if second[i] < to_c else to_c) - kept)
        for j in range(n_clusters):
            for c in range(n_candidates):
                totals[j, c] += kept_sums[c]


def labelled_inertia(
        const floating[:, :] X,                 # IN
        const floating[:, ::1] centers,         # IN
        const int[::1] labels,                  # IN (n_samples,) a label per row of X
        sample_weight=None,                     # IN floating[::1] per row of X, or None
        int n_threads=1):
    """sum_i w_i ||x_i - c_labels[i]||^2, by direct differences, chunks summed in order."""
    cdef Rows rows
    cdef ScratchArena arena = ScratchArena()
    cdef Py_ssize_t n_samples = X.shape[0], n_features = X.shape[1], i, chunk, start, end
    cdef Py_ssize_t n_chunks = _n_chunks(n_samples)
    cdef floating* row_buffers
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
    n_threads = threads_for(n_threads, n_chunks, <double> n_samples * n_features)
    partial = <double*> arena.take(n_chunks * sizeof(double))
    row_buffers = <floating*> arena.take(n_threads * n_features * sizeof(floating))
    with nogil:
        for chunk in prange(n_chunks, schedule="static", num_threads=n_threads):
            start = chunk * CHUNK_ROWS
            end = min(start + CHUNK_ROWS, n_samples)
            buffer = row_buffers + threadid() * n_features
            partial[chunk] = 0
            for i in range(start, end):
                x = _row_ptr(&rows, i, buffer)
                partial[chunk] += _sq_euclidean(x, &centers[labels[i], 0], n_features) * _weight(
                    <const floating*> rows.weights, i)
        for chunk in range(n_chunks):
            inertia += partial[chunk]
    return inertia

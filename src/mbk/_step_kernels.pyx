"""Compiled mini-batch steps: the per-center incremental mean, one step (assignment and
update), and fit's loop of steps with its random draws, reassignment schedule and early
stopping.
"""

from cpython.exc cimport PyErr_CheckSignals
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.math cimport INFINITY

from mbk._core cimport (
    CHUNK_ROWS, Centers, FiniteScan, Rows, _Scratch, _assign_rows, _check_centers,
    _clamp_threads, _fill_rows, _finish_scan, _padded_count, _prepare_centers, _scan_until,
    _source_row, _start_scan, _threads_for, _tile_scratch, _weight, active_kernels,
)
from mbk._kernels cimport mbk_raise_flag
from mbk._sampling_kernels cimport (
    Sampling, _bitgen_of, _draw_doubles, _prepare_sampling, _reads_state, _search_rows,
    _shuffled_range, mbk_bitgen,
)

from time import perf_counter

import numpy as np

# ---------------------------------------------------------------------------------------------
# The mini-batch step: assignment, then the per-center incremental mean
# ---------------------------------------------------------------------------------------------

cdef struct StepScratch:
    # Everything a mini-batch step needs besides its inputs, sized once for a batch shape.
    void* centers_storage     # prepared centers (_prepare_centers)
    double* per_thread        # _tile_scratch(n_features) doubles per thread
    double* per_chunk         # one partial inertia per 256-row chunk
    int n_threads             # for the assignment
    int n_update_threads      # for the update
    bint batch_order          # the update's order (see batch_order_sums)
    # The update's sums: (n_clusters, n_features) in batch order, else (n_features,) per
    # update thread; the batch's weight per center, (n_clusters,).
    double* sums
    double* batch_weights
    # Center by center only: where each center's rows start in members, (n_clusters + 1,),
    # and the batch positions grouped by center, (n_batch,).
    Py_ssize_t* offsets
    Py_ssize_t* members
    void* packed_rows         # (n_batch, n_features) the batch's rows in order, or NULL


# The update adds the batch's rows in batch order into the sums of all centers while those
# fit in L1 (W1: 64 x 32 float64 sums, 16 KiB: the update takes half the time it takes center
# by center, and needs no counting sort); beyond, center by center, each center's sums in L1
# (W3: 1024 x 64 sums, 512 KiB, ran 6% slower steps in batch order).
cdef Py_ssize_t batch_order_sums = 4096


def set_batch_order_sums(Py_ssize_t n_sums):
    """Set the largest n_clusters * n_features updated in batch order (tests use it to run
    both orders on the same data); return the old value."""
    global batch_order_sums
    old = batch_order_sums
    batch_order_sums = n_sums
    return old


cdef void _add_rows(
        const Rows* rows,                  # IN the batch
        const floating* data,              # IN rows.data
        const Py_ssize_t* order,           # IN (n,) batch positions, or NULL: 0 .. n - 1
        const int* labels,                 # IN (n_rows,) row of sums per position, or NULL: 0
        Py_ssize_t n,
        double* sums,                      # INOUT (n_clusters or 1, n_features)
) noexcept nogil:
    """sums[labels[i], f] += w_i * x_i[f] for the batch positions i in the order given
    (add_rows in _kernels.h): every center's sums receive its rows in scikit-learn's order."""
    cdef Py_ssize_t q, i, r, f, n_features = rows.n_features
    cdef const floating* x
    cdef double* s
    cdef double w
    if rows.col_stride == 1:
        if floating is float:
            active_kernels().add_rows_float(
                data, rows.row_stride, rows.index, order, labels, n,
                <const float*> rows.weights, n_features, sums)
        else:
            active_kernels().add_rows_double(
                data, rows.row_stride, rows.index, order, labels, n,
                <const double*> rows.weights, n_features, sums)
        return
    # Strided features (weighted rows in Fortran order; unit-weight ones come packed).
    for q in range(n):
        i = order[q] if order != NULL else q
        r = _source_row(rows, i)
        x = data + r * rows.row_stride
        s = sums + (labels[i] * n_features if labels != NULL else 0)
        w = _weight(<const floating*> rows.weights, r)
        for f in range(n_features):
            s[f] += x[f * rows.col_stride] * w


cdef inline void _finish_center(
        const floating* center_old, floating* center_new,
        double* weight_sum,                  # INOUT: this center's running weight
        double batch_weight, const double* sums, Py_ssize_t n_features,
) noexcept nogil:
    """center_new from its sums, and the running weight (see _update_centers)."""
    cdef Py_ssize_t f
    cdef double alpha
    if not batch_weight > 0:
        # Nothing (or only zero/negative weight) landed here: the center stays put.
        if center_new != center_old:
            for f in range(n_features):
                center_new[f] = center_old[f]
        return
    weight_sum[0] = weight_sum[0] + batch_weight
    alpha = 1 / weight_sum[0]
    for f in range(n_features):
        center_new[f] = <floating> (sums[f] * alpha)


cdef void _update_in_batch_order(
        const Rows* update_rows, const floating[:, ::1] centers_old,
        floating[:, ::1] centers_new, double* weight_sums, const double* batch_weights,
        const int* labels, double* sums,
) noexcept nogil:
    """Every center, the rows added in batch order into the sums of all centers,
    (n_clusters, n_features), on one thread (threads splitting the features would share
    the cache lines where their ranges meet, in every center's row)."""
    cdef Py_ssize_t n_clusters = centers_old.shape[0], n_features = centers_old.shape[1], j, f
    for j in range(n_clusters):
        for f in range(n_features):
            sums[j * n_features + f] = centers_old[j, f] * weight_sums[j]
    _add_rows(update_rows, <const floating*> update_rows.data, NULL, labels,
              update_rows.n_rows, sums)
    for j in range(n_clusters):
        _finish_center(&centers_old[j, 0], &centers_new[j, 0], &weight_sums[j],
                       batch_weights[j], sums + j * n_features, n_features)


cdef void _update_center(
        const Rows* update_rows, const floating* center_old, floating* center_new,
        double* weight_sum, double batch_weight, const Py_ssize_t* members,
        Py_ssize_t n_members, double* sums,
) noexcept nogil:
    """One center, from its members' rows (batch positions in batch order); sums is
    (n_features,) scratch."""
    cdef Py_ssize_t f, n_features = update_rows.n_features
    if batch_weight > 0:
        for f in range(n_features):
            sums[f] = center_old[f] * weight_sum[0]
        _add_rows(update_rows, <const floating*> update_rows.data, members, NULL, n_members,
                  sums)
    _finish_center(center_old, center_new, weight_sum, batch_weight, sums, n_features)


cdef void _update_centers(
        const Rows* rows,                    # IN the batch (weights from here)
        const Rows* update_rows,             # IN its rows (a packed copy, or rows itself)
        const floating[:, ::1] centers_old,  # IN
        floating[:, ::1] centers_new,        # OUT (may be centers_old)
        double* weight_sums,                 # INOUT (n_clusters,)
        const int* labels,                   # IN (n_batch,)
        const StepScratch* scratch,          # TMP
) noexcept nogil:
    """c_new = (c_old * v + sum_i w_i x_i) * (1 / (v + sum_i w_i)) for every center.

    The incremental mean with per-center learning rate W / (v + W): the same operations in
    the same order as scikit-learn, with the running weights and the sums kept in float64.
    Center by center, threads take separate centers (in batch order, one thread), so the
    thread count changes no result.
    """
    cdef Py_ssize_t n_clusters = centers_old.shape[0], n_features = rows.n_features
    cdef Py_ssize_t n_batch = rows.n_rows, i, j
    cdef double* batch_weights = scratch.batch_weights
    cdef Py_ssize_t* offsets = scratch.offsets
    cdef Py_ssize_t* members = scratch.members
    cdef int n_threads = scratch.n_update_threads
    for j in range(n_clusters):
        batch_weights[j] = 0
    for i in range(n_batch):
        batch_weights[labels[i]] += _weight(<const floating*> rows.weights, _source_row(rows, i))
    if scratch.batch_order:
        _update_in_batch_order(update_rows, centers_old, centers_new, weight_sums,
                               batch_weights, labels, scratch.sums)
    else:
        # Group batch positions by label, keeping batch order inside each group (counting
        # sort, O(n_batch + n_clusters)): every center then reads only its own rows.
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
        # Owner computes: the thread that owns center j does all of center j's arithmetic.
        for j in prange(n_clusters, schedule="static", num_threads=n_threads):
            _update_center(update_rows, &centers_old[j, 0], &centers_new[j, 0],
                           &weight_sums[j], batch_weights[j], members + offsets[j],
                           offsets[j + 1] - offsets[j], scratch.sums + threadid() * n_features)


cdef int _step_scratch(
        StepScratch* out, _Scratch owner, Py_ssize_t n_batch, Py_ssize_t n_clusters,
        Py_ssize_t n_features, Py_ssize_t padded_clusters, size_t itemsize, int n_threads,
        bint pack_rows,
) except -1:
    """Allocate (owned by ``owner``) the scratch of steps on batches of n_batch rows;
    with ``pack_rows``, a copy of the batch's rows for the update (see _minibatch_step)."""
    cdef Py_ssize_t n_sums, n_grouping
    n_threads = max(n_threads, 1)
    out.batch_order = n_clusters * n_features <= batch_order_sums
    # An update element (load, widen, add; half its rows in the other core's cache) counts as
    # two of the threshold's multiply-adds: measured on W3 (4096 x 64, 1024 centers), two
    # threads update 9% faster per step; a busy machine is left to ThreadChoice.
    out.n_update_threads = 1 if out.batch_order else _threads_for(
        n_threads, n_clusters, 2.0 * n_batch * n_features)
    out.n_threads = _clamp_threads(n_threads, n_batch, n_clusters, n_features)
    owner.centers_storage = owner.take(padded_clusters * (n_features + 1) * itemsize)
    owner.per_thread = owner.take(out.n_threads * _tile_scratch(n_features) * sizeof(double))
    owner.per_chunk = owner.take(((n_batch + CHUNK_ROWS - 1) // CHUNK_ROWS) * sizeof(double))
    n_sums = (n_clusters if out.batch_order else out.n_update_threads) * n_features
    n_grouping = 0 if out.batch_order else n_clusters + 1 + n_batch
    owner.members = owner.take((n_sums + n_clusters) * sizeof(double)
                               + n_grouping * sizeof(Py_ssize_t))
    out.centers_storage = owner.centers_storage
    out.per_thread = <double*> owner.per_thread
    out.per_chunk = <double*> owner.per_chunk
    out.sums = <double*> owner.members
    out.batch_weights = out.sums + n_sums
    out.offsets = out.members = NULL
    if not out.batch_order:
        out.offsets = <Py_ssize_t*> (out.batch_weights + n_clusters)
        out.members = out.offsets + n_clusters + 1
    out.packed_rows = NULL
    if pack_rows:
        owner.rows_copy = owner.take(n_batch * n_features * itemsize)
        out.packed_rows = owner.rows_copy
    return 0


cdef inline bint _worth_packing(const Rows* rows, size_t itemsize) noexcept nogil:
    """Whether the update should read a packed copy of the batch (see _minibatch_step), with
    unit weights (the copy does not carry them): for rows with strided features (Fortran
    order, as pandas gives), which the update could not add as vectors; and for scattered
    rows of a cache line or more (shorter ones cost the update little to gather again, less
    than the copy: the housing example's 24-byte C-ordered rows ran 8% faster without it)."""
    if rows.weights != NULL:
        return False
    return rows.col_stride != 1 or (rows.index != NULL and rows.n_features * itemsize >= 64)


cdef double _minibatch_step(
        const Rows* rows,                    # IN the batch
        const floating[:, ::1] centers_old,  # IN
        floating[:, ::1] centers_new,        # OUT (may be centers_old)
        double* weight_sums,                 # INOUT (n_clusters,)
        int* labels,                         # OUT (n_batch,)
        const StepScratch* scratch,          # TMP
        const Sampling* sampling=NULL,       # the batch's rows still to be drawn, or NULL
        char* chunk_finite=NULL,             # TMP (n_chunks,): scan the batch for NaN and
                                             # infinity on the assignment pass; or NULL
        bint* finite=NULL,                   # OUT with chunk_finite: whether it was finite
        FiniteScan* scan=NULL,               # INOUT a scan of X to advance while one
                                             # thread updates the centers; or NULL
) noexcept nogil:
    """Label the batch with centers_old, move every center; return the batch inertia.

    With chunk_finite, a batch holding NaN or infinity moves no center (finite is False).
    With scratch.packed_rows (unit weights only), the assignment leaves a copy of the
    batch's rows there, in batch order, and the update reads that copy: scattered batch rows
    come from all over X (a TLB and cache miss each), and by the update, which runs after
    the assignment and on whichever thread owns the center, they are out of the caches again.
    """
    cdef Centers prepared
    cdef Py_ssize_t n_batch = rows.n_rows
    cdef Py_ssize_t n_features = rows.n_features, i
    cdef double inertia
    cdef Rows packed
    cdef StepScratch one_updater
    cdef const Rows* update_rows = rows

    _prepare_centers(&prepared, centers_old, <floating*> scratch.centers_storage)
    inertia = _assign_rows(rows, &prepared, labels, <floating*> scratch.per_thread,
                           scratch.per_chunk, scratch.n_threads, sampling, True, chunk_finite,
                           <floating*> scratch.packed_rows)
    if scratch.packed_rows != NULL:
        packed.data = scratch.packed_rows
        packed.row_stride = n_features
        packed.col_stride = 1
        packed.index = NULL
        packed.weights = NULL
        packed.n_rows = n_batch
        packed.n_features = n_features
        update_rows = &packed
    if chunk_finite != NULL:
        finite[0] = True
        for i in range((n_batch + CHUNK_ROWS - 1) // CHUNK_ROWS):
            finite[0] &= chunk_finite[i]
        if not finite[0]:
            return inertia

    if scan != NULL and scan.next < scan.rows.n_rows and scratch.n_threads > 1:
        # The update on one thread beside the scan, even where two would share it: W3's
        # update takes as long on one (half its rows are in the other core's cache).
        one_updater = scratch[0]
        one_updater.n_update_threads = 1
        _update_beside_scan(rows, update_rows, centers_old, centers_new, weight_sums, labels,
                            &one_updater, scan)
    else:
        _update_centers(rows, update_rows, centers_old, centers_new, weight_sums, labels,
                        scratch)
    return inertia


cdef void _update_beside_scan(
        const Rows* rows, const Rows* update_rows, const floating[:, ::1] centers_old,
        floating[:, ::1] centers_new, double* weight_sums, const int* labels,
        const StepScratch* scratch, FiniteScan* scan,
) noexcept nogil:
    """The one-thread center update, while a second thread advances the scan of X until
    the update is done (fit's NaN scan, which would otherwise read all of X before the
    first step: a tenth of W1's fit)."""
    cdef int updated = 0
    cdef int* done = &updated
    cdef int part
    for part in prange(2, schedule="static", num_threads=2):
        if part == 0:
            _update_centers(rows, update_rows, centers_old, centers_new, weight_sums, labels,
                            scratch)
            mbk_raise_flag(done)
        else:
            # On a team of one, the update ran first and this scans nothing.
            _scan_until(scan, done, scan.rows.n_rows, &centers_old[0, 0])


cdef int _check_step_shapes(
        const floating[:, ::1] centers_old, floating[:, ::1] centers_new,
        double[::1] weight_sums, int[::1] labels, Py_ssize_t n_batch, Py_ssize_t n_features,
) except -1:
    _check_centers(centers_old, n_features)
    if (centers_new.shape[0] != centers_old.shape[0] or centers_new.shape[1] != n_features
            or weight_sums.shape[0] != centers_old.shape[0]):
        raise ValueError("centers_new and weight_sums must match centers_old")
    if labels.shape[0] != n_batch:
        raise ValueError("labels must have one entry per batch row")
    if n_batch == 0:
        raise ValueError("a mini-batch step needs at least one row")
    return 0


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
    """One mini-batch step: label the batch with centers_old, then move each center.

    Returns the batch's weighted inertia against centers_old. Random reassignment of
    low-weight centers is the caller's job (it draws random numbers). With
    ``check_finite``, the batch's rows are scanned for NaN and infinity on the assignment
    pass (while they are in cache), and if there are any no center moves and None is
    returned.
    """
    cdef Rows rows
    cdef StepScratch scratch
    cdef _Scratch owner = _Scratch()
    cdef double inertia
    cdef char* chunk_finite = NULL
    cdef bint finite = True
    _fill_rows(&rows, X, sample_indices, sample_weight)
    _check_step_shapes(centers_old, centers_new, weight_sums, labels, rows.n_rows, X.shape[1])
    _step_scratch(&scratch, owner, rows.n_rows, centers_old.shape[0], X.shape[1],
                  _padded_count(centers_old.shape[0], <floating*> NULL), sizeof(floating),
                  n_threads, _worth_packing(&rows, sizeof(floating)))
    if check_finite:
        if sample_indices is not None:
            # The scan reads the batch's chunks of X in place: rows of X, not of the batch.
            raise ValueError("check_finite scans all rows of X: pass no sample_indices")
        owner.extra = owner.take((rows.n_rows + CHUNK_ROWS - 1) // CHUNK_ROWS)
        chunk_finite = <char*> owner.extra
    with nogil:
        inertia = _minibatch_step(&rows, centers_old, centers_new, &weight_sums[0],
                                  &labels[0], &scratch, NULL, chunk_finite, &finite)
    return inertia if finite else None


# ---------------------------------------------------------------------------------------------
# The fit loop
# ---------------------------------------------------------------------------------------------


cdef bint _reassign_due(
        const double[::1] counts, Py_ssize_t* n_since, Py_ssize_t batch_size,
) noexcept nogil:
    """scikit-learn's schedule: reassign when a center is empty or every 10 * k rows."""
    cdef Py_ssize_t j, n_clusters = counts.shape[0]
    n_since[0] += batch_size
    for j in range(n_clusters):
        if counts[j] == 0:
            n_since[0] = 0
            return True
    if n_since[0] >= 10 * n_clusters:
        n_since[0] = 0
        return True
    return False


def reassign_due(const double[::1] counts, Py_ssize_t n_since, Py_ssize_t batch_size):
    """(due, new n_since): whether this step reassigns small centers (for partial_fit)."""
    due = _reassign_due(counts, &n_since, batch_size)
    return due, n_since


cdef Py_ssize_t _reassign_small_centers(
        const Rows* batch,               # IN the batch: its rows of X
        floating[:, ::1] centers,        # INOUT
        double[::1] counts,              # INOUT the running weights
        double ratio,
        random_state,
        Py_ssize_t* order,               # TMP (batch.n_rows,)
        signed char* small,              # TMP (n_clusters,)
) except -1:
    """scikit-learn's random reassignment; returns how many centers moved.

    The centers whose running weight is below ratio times the largest move onto rows of
    the batch drawn without replacement (``random_state.choice(n_batch, n, replace=False)``,
    the same draws), at most half a batch of them (the largest weights stay), and restart
    from the smallest weight that stays. Compiled because fit runs it between steps, when
    Python and NumPy are cold in the caches: their calls cost 0.3 ms there on W1.
    """
    cdef Py_ssize_t n_clusters = counts.shape[0], n_batch = batch.n_rows, j, f, k
    cdef Py_ssize_t n_small = 0
    cdef double largest = counts[0], smallest_kept = INFINITY
    cdef const floating* x
    for j in range(1, n_clusters):
        largest = max(largest, counts[j])
    for j in range(n_clusters):
        small[j] = counts[j] < ratio * largest
        n_small += small[j]
    if n_small == 0:
        return 0
    if n_small > 0.5 * n_batch:
        # Rare (more small centers than half a batch): NumPy's sort order, ties included,
        # decides which stay.
        for j in np.argsort(np.asarray(counts))[int(0.5 * n_batch):]:
            n_small -= small[j]
            small[j] = False
    if n_small > 0:
        with random_state._bit_generator.lock:
            _shuffled_range(_bitgen_of(random_state), order, n_batch)
        k = 0
        for j in range(n_clusters):
            if small[j]:
                x = (<const floating*> batch.data
                     + _source_row(batch, order[k]) * batch.row_stride)
                for f in range(batch.n_features):
                    centers[j, f] = x[f * batch.col_stride]
                k += 1
    if n_small < n_clusters:
        for j in range(n_clusters):
            if not small[j]:
                smallest_kept = min(smallest_kept, counts[j])
        for j in range(n_clusters):
            if small[j]:
                counts[j] = smallest_kept
    return n_small


def reassign_small_centers(
        const floating[:, :] X,          # IN the batch
        floating[:, ::1] centers,        # INOUT
        double[::1] counts,              # INOUT
        double ratio,
        random_state):
    """partial_fit's reassignment onto rows of its batch X (see _reassign_small_centers);
    returns how many centers moved."""
    cdef Rows batch
    cdef const Py_ssize_t[::1] every_row = None
    cdef Py_ssize_t[::1] order = np.empty(X.shape[0], dtype=np.intp)
    cdef signed char[::1] small = np.empty(counts.shape[0], dtype=np.int8)
    _fill_rows(&batch, X, every_row, None)
    _check_centers(centers, X.shape[1])
    if counts.shape[0] != centers.shape[0] or X.shape[0] == 0:
        raise ValueError("counts must match the centers, and the batch must have rows")
    return _reassign_small_centers(&batch, centers, counts, ratio, random_state, &order[0],
                                   &small[0])


cdef class EarlyStopping:
    """scikit-learn's stopping rules on the batch inertia: EWA stall, or small center moves.

    The first step's inertia is ignored (it measures the initialisation). The smoothed
    inertia is ewa <- ewa * (1 - a) + inertia * a with a = min(2 * batch / (n + 1), 1).
    """
    cdef public object ewa_inertia, ewa_inertia_min
    cdef public Py_ssize_t no_improvement
    cdef double alpha, tol
    cdef Py_ssize_t batch_size, n_steps, max_no_improvement
    cdef int verbose

    def __init__(self, Py_ssize_t batch_size, Py_ssize_t n_samples, Py_ssize_t n_steps,
                 double tol, max_no_improvement, int verbose):
        self.ewa_inertia = None
        self.ewa_inertia_min = None
        self.no_improvement = 0
        self.alpha = min(batch_size * 2.0 / (n_samples + 1), 1.0)
        self.tol = tol
        self.batch_size = batch_size
        self.n_steps = n_steps
        self.max_no_improvement = -1 if max_no_improvement is None else max_no_improvement
        self.verbose = verbose

    cdef bint converged(self, Py_ssize_t step, double batch_inertia,
                        double centers_squared_diff) except -1:
        cdef double mean_inertia = batch_inertia / self.batch_size
        step += 1
        if step == 1:
            if self.verbose:
                print(f"Minibatch step {step}/{self.n_steps}: mean batch inertia: "
                      f"{mean_inertia}")
            return False
        if self.ewa_inertia is None:
            self.ewa_inertia = mean_inertia
        else:
            self.ewa_inertia = (self.ewa_inertia * (1 - self.alpha)
                                + mean_inertia * self.alpha)
        if self.verbose:
            print(f"Minibatch step {step}/{self.n_steps}: mean batch inertia: "
                  f"{mean_inertia}, ewa inertia: {self.ewa_inertia}")
        if self.tol > 0.0 and centers_squared_diff <= self.tol:
            if self.verbose:
                print(f"Converged (small centers change) at step {step}/{self.n_steps}")
            return True
        if self.ewa_inertia_min is None or self.ewa_inertia < self.ewa_inertia_min:
            self.no_improvement = 0
            self.ewa_inertia_min = self.ewa_inertia
        else:
            self.no_improvement += 1
        if 0 <= self.max_no_improvement <= self.no_improvement:
            if self.verbose:
                print("Converged (lack of improvement in inertia) at step "
                      f"{step}/{self.n_steps}")
            return True
        return False


cdef double _squared_change(const floating[:, ::1] a, const floating[:, ::1] b) noexcept nogil:
    cdef Py_ssize_t j, f
    cdef double total = 0, diff
    for j in range(a.shape[0]):
        for f in range(a.shape[1]):
            diff = a[j, f] - b[j, f]
            total += diff * diff
    return total


# Graceful degradation on a busy machine. Results do not depend on the thread count, so fit
# may change it from one step to the next. On a quiet machine every thread helps; next to a
# process that keeps one core busy, a team of threads waits at every barrier for whichever of
# them the OS has descheduled, and one thread alone is faster. Nothing tells which case
# holds, so fit measures it: after PROBE_PERIOD steps, one step runs on the other thread
# count (a probe), and if it was clearly faster than the steps since the last probe, that
# count takes over at once. A probe that loses doubles the gap to the next one, up to
# MAX_PROBE_PERIOD steps: on a quiet machine a probe costs W1 most of a step again (one
# thread takes 1.7 times as long), 2.5% of a fit at a probe every 32 steps. A switch brings
# the gap back to PROBE_PERIOD.
cdef enum:
    PROBE_PERIOD = 32
    MAX_PROBE_PERIOD = 256

# The probe must beat the mean step time since the last probe by this factor to take over.
cdef double PROBE_GAIN = 0.8


def set_probe_gain(double gain):
    """Set the factor a probe step must beat (tests: 0 never switches, inf always does);
    returns the old one."""
    global PROBE_GAIN
    old = PROBE_GAIN
    PROBE_GAIN = gain
    return old


cdef struct ThreadChoice:
    bint adaptive            # more than one thread to choose from
    int incumbent            # 0: all the threads, 1: one
    Py_ssize_t next_probe    # the step that runs on the other thread count
    Py_ssize_t gap           # steps from the last probe to the next
    double incumbent_time    # seconds of the incumbent's steps since the last probe
    Py_ssize_t incumbent_steps


cdef void _start_choice(ThreadChoice* choice, bint adaptive) noexcept nogil:
    choice.adaptive = adaptive
    choice.incumbent = 0
    choice.next_probe = PROBE_PERIOD
    choice.gap = PROBE_PERIOD
    choice.incumbent_time = 0
    choice.incumbent_steps = 0


cdef inline int _step_threads(const ThreadChoice* choice, Py_ssize_t step) noexcept nogil:
    """Which thread count step runs on (0: all, 1: one)."""
    if choice.adaptive and step == choice.next_probe:
        return 1 - choice.incumbent
    return choice.incumbent


cdef void _record_step(
        ThreadChoice* choice, Py_ssize_t step, int used, double seconds) noexcept nogil:
    """Count a step's time; after a probe, switch to its thread count if it was faster."""
    if not choice.adaptive:
        return
    if used == choice.incumbent:
        choice.incumbent_time += seconds
        choice.incumbent_steps += 1
        return
    if (choice.incumbent_steps > 0
            and seconds < PROBE_GAIN * choice.incumbent_time / choice.incumbent_steps):
        choice.incumbent = used
        choice.gap = PROBE_PERIOD
    else:
        choice.gap = min(2 * choice.gap, <Py_ssize_t> MAX_PROBE_PERIOD)
    choice.next_probe = step + choice.gap
    choice.incumbent_time = 0
    choice.incumbent_steps = 0


def thread_choices(Py_ssize_t n_steps, double all_threads_seconds, double one_thread_seconds):
    """The thread count fit's steps would run on (0: all, 1: one), step by step, if every
    step on all the threads took all_threads_seconds and on one one_thread_seconds (tests)."""
    cdef ThreadChoice choice
    cdef Py_ssize_t step
    cdef int team
    _start_choice(&choice, True)
    teams = []
    for step in range(n_steps):
        team = _step_threads(&choice, step)
        _record_step(&choice, step, team,
                     one_thread_seconds if team == 1 else all_threads_seconds)
        teams.append(team)
    return teams


def fit_steps(
        const floating[:, :] X,                  # IN training data
        floating[:, ::1] centers_a,              # INOUT current centers
        floating[:, ::1] centers_b,              # TMP the other buffer
        double[::1] counts,                      # INOUT running weight per center
        Py_ssize_t[::1] rows,                    # TMP (batch_size,) the batch's rows
        int[::1] labels,                         # TMP (batch_size,)
        sampler,                                 # IN a mbk._sampling.WeightedRowSampler
        random_state,                            # IN/OUT numpy.random.RandomState
        EarlyStopping stopping,                  # INOUT
        Py_ssize_t n_steps,
        Py_ssize_t n_since_last_reassign,
        double reassignment_ratio,
        bint track_center_change,
        int n_threads,
        bint scan_x=False):
    """Run fit's steps until n_steps or early stopping; returns
    (steps run, index of the buffer holding the centers (0: a, 1: b), last batch inertia,
    n_since_last_reassign, whether X is finite).

    With ``scan_x``, X has not been scanned for NaN and infinity: the steps scan it, a piece
    while each update leaves a thread idle and the rest at the end, and if it is not finite
    the steps ran on meaningless values (the caller raises). Without, X counts as finite.

    Each step draws its batch (random_sample(batch) on random_state's stream, searched in
    the sampler's cdf), labels it and moves the centers from one buffer into the other,
    then on scikit-learn's schedule reassigns small centers onto rows of the batch.
    Steps run on n_threads threads or on one, whichever measures faster (see ThreadChoice).
    """
    cdef Rows batch
    cdef StepScratch scratch
    cdef _Scratch owner = _Scratch()
    cdef mbk_bitgen* bitgen = _bitgen_of(random_state)
    cdef bint from_state = _reads_state(random_state)
    cdef Py_ssize_t batch_size = rows.shape[0]
    cdef Py_ssize_t step = 0
    cdef double* uniforms
    cdef Sampling sampling
    cdef floating[:, ::1] current = centers_a
    cdef floating[:, ::1] following = centers_b
    cdef int current_index = 0
    cdef double inertia = 0, change = 0
    cdef bint due
    cdef StepScratch alone
    cdef const StepScratch* teams[2]
    cdef ThreadChoice choice
    cdef int team
    cdef double started
    cdef FiniteScan scan
    cdef FiniteScan* step_scan = NULL
    cdef Py_ssize_t[::1] order = np.empty(batch_size, dtype=np.intp)
    cdef signed char[::1] small = np.empty(counts.shape[0], dtype=np.int8)
    cdef Py_ssize_t n_moved
    lock = random_state._bit_generator.lock

    _fill_rows(&batch, X, rows, None)
    _check_step_shapes(centers_a, centers_b, counts, labels, batch_size, X.shape[1])
    _prepare_sampling(&sampling, sampler, X.shape[0])
    _step_scratch(&scratch, owner, batch_size, centers_a.shape[0], X.shape[1],
                  _padded_count(centers_a.shape[0], <floating*> NULL), sizeof(floating),
                  n_threads, _worth_packing(&batch, sizeof(floating)))
    owner.extra = owner.take(batch_size * sizeof(double))
    uniforms = <double*> owner.extra
    sampling.uniforms = uniforms
    sampling.rows = &rows[0]
    # The two thread counts a step may run on (see ThreadChoice).
    alone = scratch
    alone.n_threads = 1
    alone.n_update_threads = 1
    teams[0] = &scratch
    teams[1] = &alone
    _start_choice(&choice, scratch.n_threads > 1 or scratch.n_update_threads > 1)
    if scan_x:
        _start_scan(&scan, X)
        step_scan = &scan
    for step in range(n_steps):
        with lock:
            _draw_doubles(bitgen, from_state, uniforms, batch_size)
        due = _reassign_due(counts, &n_since_last_reassign, batch_size)
        team = _step_threads(&choice, step)
        started = perf_counter()
        with nogil:
            # With several threads, each searches the rows of the chunks it assigns; alone,
            # one pass over the whole batch keeps more cache misses in flight.
            if teams[team].n_threads == 1:
                _search_rows(&sampling, 0, batch_size)
            inertia = _minibatch_step(&batch, current, following, &counts[0], &labels[0],
                                      teams[team],
                                      &sampling if teams[team].n_threads > 1 else NULL,
                                      NULL, NULL, step_scan)
        _record_step(&choice, step, team, perf_counter() - started)
        if due and reassignment_ratio > 0:
            n_moved = _reassign_small_centers(&batch, following, counts, reassignment_ratio,
                                              random_state, &order[0], &small[0])
            if n_moved and stopping.verbose:
                print(f"[MiniBatchKMeans] Reassigning {n_moved} cluster centers.")
        if track_center_change:
            change = _squared_change(following, current)
        current, following = following, current
        current_index = 1 - current_index
        # Ctrl-C: Python's handler runs here, between steps, and raises KeyboardInterrupt.
        PyErr_CheckSignals()
        if stopping.converged(step, inertia, change):
            break
    if scan_x:
        with nogil:
            _finish_scan(&scan, n_threads, &X[0, 0])
    return step + 1, current_index, inertia, n_since_last_reassign, not scan_x or scan.finite

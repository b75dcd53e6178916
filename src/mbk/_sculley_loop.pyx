"""fit's loop of Sculley's steps, compiled, for dense rows in memory; and the scheduled step of
the step-by-step loop, for dense and CSR rows.

Each step draws its batch (uniforms from the random stream, searched in the sampler's cdf
inside the parallel assignment), labels it and moves the centers from one buffer into the
other (_dense._minibatch_step), reassigns small centers onto rows of the batch when the
schedule says so, and tells the schedule, which decides whether to stop (_schedule). The
step-by-step loop in Python (mbk._sculley.run_steps) makes the same calls one by one.

Steps run on n_threads threads or on one, whichever measures faster (ThreadChoice): the
result does not depend on it.
"""

from cpython.exc cimport PyErr_CheckSignals
from cython cimport floating
from libc.math cimport NAN
from libc.string cimport memcpy

from mbk._dense cimport (
    FiniteScan, ScratchArena, StepScratch, _center_shift, _check_step_shapes, _finish_scan,
    _minibatch_step, _reassign_small_centers, _start_scan, _step_scratch, _step_setup,
    _worth_packing,
)
from mbk._rows cimport CsrRows, Rows, csr_index, _fill_csr_rows, _fill_rows, _n_chunks
from mbk._sampling_kernels cimport RandomStream, RowTables, Sampling, _search_rows
from mbk._schedule cimport Schedule
from mbk._sparse cimport (
    FeatureMajorCenters, _batch_entries, _csr_center_shift, _csr_minibatch_step,
    _reassign_small_centers_csr,
)
from mbk._tuning cimport MAX_PROBE_PERIOD, PROBE_PERIOD, knobs, threads_for

from time import perf_counter

import numpy as np

# ---------------------------------------------------------------------------------------------
# Graceful degradation on a busy machine
# ---------------------------------------------------------------------------------------------
#
# Results do not depend on the thread count, so fit may change it from one step to the next.
# On a quiet machine every thread helps; next to a process that keeps one core busy, a team
# of threads waits at every barrier for whichever of them the OS has descheduled, and one
# thread alone is faster. Nothing tells which case holds, so fit measures it: after
# PROBE_PERIOD steps, one step runs on the other thread count (a probe), and if it was clearly
# faster (Tuning.probe_gain) than the steps since the last probe, that count takes over at
# once. A probe that loses doubles the gap to the next one, up to MAX_PROBE_PERIOD steps (on a
# quiet machine a probe costs most of a step again); a switch brings it back to PROBE_PERIOD.

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
            and seconds < knobs().probe_gain * choice.incumbent_time / choice.incumbent_steps):
        choice.incumbent = used
        choice.gap = PROBE_PERIOD
    else:
        choice.gap = min(2 * choice.gap, <Py_ssize_t> MAX_PROBE_PERIOD)
    choice.next_probe = step + choice.gap
    choice.incumbent_time = 0
    choice.incumbent_steps = 0


def thread_choices(Py_ssize_t n_steps, double all_threads_seconds, double one_thread_seconds):
    """The thread count fit's steps would run on (0: all, 1: one), step by step, if every
    step on all the threads took all_threads_seconds and on one one_thread_seconds (tests
    only: the probes' schedule without timing)."""
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


# ---------------------------------------------------------------------------------------------
# What follows every step
# ---------------------------------------------------------------------------------------------

cdef bint _after_step(
        Schedule schedule,
        bint reassign,                           # IN what the schedule said before the step
        const Rows* batch,                       # IN the step's batch
        floating[:, ::1] centers,                # INOUT the centers after the step
        const floating[:, ::1] before,           # IN the centers before it (for the shift)
        double[::1] weight_sums,                 # INOUT
        RandomStream stream,                     # IN/OUT the reassignment's draws
        double inertia,                          # IN the step's batch inertia
        Py_ssize_t* order,                       # TMP (batch.n_rows,)
        signed char* small,                      # TMP (n_clusters,)
) except -1:
    """Reassign small centers onto batch rows if the schedule said so, measure the centers'
    shift if it is wanted, and record the step; returns whether the loop stops."""
    cdef Py_ssize_t n_moved = 0
    cdef double shift = NAN
    if reassign:
        n_moved = _reassign_small_centers(batch, centers, weight_sums,
                                          schedule.reassignment_ratio, stream, order, small)
    if schedule.wants_center_shift:
        shift = _center_shift(centers, before)
    if schedule.listeners:
        schedule.latest_centers = centers.base
        schedule.latest_weight_sums = weight_sums.base
    return schedule.record(inertia, shift, n_moved)


def scheduled_step(
        const floating[:, :] X,                  # IN the batch's data
        floating[:, ::1] centers,                # INOUT moved in place
        double[::1] weight_sums,                 # INOUT running weight per center
        Schedule schedule,                       # INOUT
        RandomStream stream,                     # IN/OUT the reassignment's draws
        const Py_ssize_t[::1] sample_indices=None,   # IN the batch; None = all rows of X
        sample_weight=None,             # IN floating[::1] per row of X; None = unit
        int n_threads=1,
        bint check_finite=False):
    """One step of the step-by-step loop (mbk._sculley.run_steps) with its schedule: what
    fit's compiled loop does for each of its steps, on a batch given here.

    Returns whether the loop stops after it; or None when, with ``check_finite`` (all rows
    of X only), the batch holds NaN or infinity: then no center moved and the step is not
    recorded (the reassignment timing has advanced: the caller raises and drops the
    schedule).
    """
    cdef Rows batch
    cdef StepScratch scratch
    cdef ScratchArena arena = ScratchArena()
    cdef char* chunk_finite
    cdef bint finite = True, reassign
    cdef double inertia
    cdef int* labels
    cdef floating[:, ::1] before = centers
    cdef Py_ssize_t n_rows = X.shape[0] if sample_indices is None else sample_indices.shape[0]
    _step_setup(&batch, &scratch, &chunk_finite, arena, X, sample_indices, sample_weight,
                centers, centers, weight_sums, n_rows, n_threads, check_finite)
    labels = <int*> arena.take(batch.n_rows * sizeof(int))
    reassign = schedule.reassign_now(weight_sums)
    if schedule.wants_center_shift:
        before = np.array(centers, copy=True)
    with nogil:
        inertia = _minibatch_step(&batch, centers, centers, &weight_sums[0], labels, &scratch,
                                  NULL, chunk_finite, &finite)
    if not finite:
        return None
    return _after_step(schedule, reassign, &batch, centers, before, weight_sums, stream,
                       inertia,
                       <Py_ssize_t*> arena.take(batch.n_rows * sizeof(Py_ssize_t)),
                       <signed char*> arena.take(weight_sums.shape[0]))


def scheduled_step_csr(
        const floating[::1] data,                # IN a checked CSR matrix (_core.check_csr)
        const csr_index[::1] indices,            # IN
        const csr_index[::1] indptr,             # IN
        Py_ssize_t n_features,
        FeatureMajorCenters centers,             # INOUT moved in place
        double[::1] weight_sums,                 # INOUT running weight per center
        Schedule schedule,                       # INOUT
        RandomStream stream,                     # IN/OUT the reassignment's draws
        const Py_ssize_t[::1] sample_indices=None,   # IN the batch; None = all rows
        sample_weight=None,             # IN floating[::1] per row; None = unit
        int n_threads=1):
    """scheduled_step for a batch of CSR rows, on centers held feature-major: the CSR kernel
    family's step (_sparse), the reassignment onto CSR rows, and the same schedule. Returns
    whether the loop stops."""
    cdef CsrRows batch
    cdef ScratchArena arena = ScratchArena()
    cdef bint reassign
    cdef double inertia, shift = NAN
    cdef int* labels
    cdef floating* dots
    cdef floating* before = NULL
    cdef double* chunk_inertia
    cdef Py_ssize_t n_moved = 0, n_padded = centers.view.n_padded, n_values
    _fill_csr_rows(&batch, data, indices, indptr, n_features, sample_indices, sample_weight)
    if (centers.view.n_features != n_features
            or centers.is_double != (sizeof(floating) == sizeof(double))):
        raise ValueError("the centers must have X's features and dtype")
    if weight_sums.shape[0] != centers.view.n_clusters:
        raise ValueError("weight_sums must have one entry per center")
    if batch.n_rows == 0:
        raise ValueError("a mini-batch step needs at least one row")
    n_threads = threads_for(max(n_threads, 1), _n_chunks(batch.n_rows),
                            32.0 * batch.n_rows * n_padded)
    labels = <int*> arena.take(batch.n_rows * sizeof(int))
    dots = <floating*> arena.take(n_threads * n_padded * sizeof(floating))
    chunk_inertia = <double*> arena.take(_n_chunks(batch.n_rows) * sizeof(double))
    centers._reserve(_batch_entries(&batch, &indptr[0]), n_threads)
    reassign = schedule.reassign_now(weight_sums)
    if schedule.wants_center_shift:
        n_values = n_features * n_padded
        before = <floating*> arena.take(n_values * sizeof(floating))
        memcpy(before, centers.view.values, n_values * sizeof(floating))
    with nogil:
        inertia = _csr_minibatch_step(&batch, <const floating*> batch.data,
                                      <const csr_index*> batch.indices, &indptr[0],
                                      &centers.view, &centers.scratch, &weight_sums[0], labels,
                                      dots, chunk_inertia, n_threads)
    if reassign:
        n_moved = _reassign_small_centers_csr(
            &batch, <const floating*> batch.data, <const csr_index*> batch.indices,
            &indptr[0], &centers.view, &centers.scratch, weight_sums,
            schedule.reassignment_ratio, stream,
            <Py_ssize_t*> arena.take(batch.n_rows * sizeof(Py_ssize_t)),
            <signed char*> arena.take(weight_sums.shape[0]),
            <Py_ssize_t*> arena.take(weight_sums.shape[0] * sizeof(Py_ssize_t)), n_threads)
    if before != NULL:
        shift = _csr_center_shift(&centers.view, before)
    if schedule.listeners:
        schedule.latest_centers = centers
        schedule.latest_weight_sums = weight_sums.base
    return schedule.record(inertia, shift, n_moved)


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------

def fit_steps(
        const floating[:, :] X,                  # IN training data
        centers,                                 # IN floating (n_clusters, n_features), C order
        double[::1] weight_sums,                 # INOUT running weight per center
        RowTables sampler,                       # IN the batches' distribution
        RandomStream stream,                     # IN/OUT the random stream
        Schedule schedule,                       # INOUT batch size, stopping, records
        int n_threads,
        bint scan_x=False):
    """Run fit's steps from ``centers`` until the schedule stops them; returns (the array
    holding the final centers: ``centers`` or a second buffer, whether X is finite).

    With ``scan_x``, X has not been scanned for NaN and infinity: the steps scan it, a piece
    while each update leaves a thread idle and the rest at the end, and if it is not finite
    the steps ran on meaningless values (the caller raises). Without, X counts as finite.
    The steps use unit weights: the sampler draws rows in proportion to their weights.
    """
    cdef Py_ssize_t batch_size = schedule.batch_size, n_clusters, step = 0
    spare = np.empty_like(centers)
    cdef floating[:, ::1] current = centers
    cdef floating[:, ::1] following = spare
    cdef Rows batch
    cdef StepScratch scratch
    cdef StepScratch alone
    cdef const StepScratch* teams[2]
    cdef ScratchArena arena = ScratchArena()
    cdef Sampling sampling
    cdef Py_ssize_t[::1] rows = np.empty(batch_size, dtype=np.intp)
    cdef int[::1] labels = np.empty(batch_size, dtype=np.int32)
    cdef Py_ssize_t[::1] order = np.empty(batch_size, dtype=np.intp)
    cdef signed char[::1] small
    cdef double* uniforms
    cdef double inertia = 0, started
    cdef bint reassign, stop
    cdef ThreadChoice choice
    cdef int team
    cdef FiniteScan scan
    cdef FiniteScan* step_scan = NULL

    sampler.ready()
    sampling = sampler.tables
    if sampling.n_samples != X.shape[0]:
        raise ValueError("the sampler must have one entry per row of X")
    _fill_rows(&batch, X, rows, None)
    n_clusters = current.shape[0]
    _check_step_shapes(current, following, weight_sums, labels.shape[0], batch_size,
                       X.shape[1])
    small = np.empty(n_clusters, dtype=np.int8)
    _step_scratch(&scratch, arena, batch_size, n_clusters, X.shape[1], sizeof(floating),
                  n_threads, _worth_packing(&batch, sizeof(floating)))
    uniforms = <double*> arena.take(batch_size * sizeof(double))
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
    for step in range(schedule.n_steps):
        stream.doubles(uniforms, batch_size)
        reassign = schedule.reassign_now(weight_sums)
        team = _step_threads(&choice, step)
        started = perf_counter()
        with nogil:
            # With several threads, each searches the rows of the chunks it assigns; alone,
            # one pass over the whole batch keeps more cache misses in flight.
            if teams[team].n_threads == 1:
                _search_rows(&sampling, 0, batch_size)
            inertia = _minibatch_step(&batch, current, following, &weight_sums[0], &labels[0],
                                      teams[team],
                                      &sampling if teams[team].n_threads > 1 else NULL,
                                      NULL, NULL, step_scan)
        _record_step(&choice, step, team, perf_counter() - started)
        stop = _after_step(schedule, reassign, &batch, following, current, weight_sums, stream,
                           inertia, &order[0], &small[0])
        current, following = following, current
        # Ctrl-C: Python's handler runs here, between steps, and raises KeyboardInterrupt.
        PyErr_CheckSignals()
        if stop:
            break
    if scan_x:
        with nogil:
            _finish_scan(&scan, n_threads, &X[0, 0])
    final = centers if schedule.steps_run % 2 == 0 else spare
    return final, not scan_x or scan.finite

"""Sculley's mini-batch k-means (scikit-learn's MiniBatchKMeans): from a source to a state.

``fit`` seeds the centers (n_init candidates judged on one validation batch), runs the steps
and labels the rows; ``start`` and ``partial_fit`` are partial_fit's first seeding and its
step. Two loops run the steps, with the same schedule (``_schedule.Schedule``) and the same
compiled step: fit's compiled loop for rows in memory (``_sculley_loop.fit_steps``, which
draws each batch inside the kernel), and ``run_steps``, a loop in Python over batches
handed to it (partial_fit's one batch; tomorrow, the batches of sources whose rows are not
in memory).

Python owns every random draw: one RandomState stream consumed in scikit-learn's order
(validation batch, init subsamples, seeding, batches, reassignment), which is what makes the
results identical to scikit-learn's for the same random_state.
"""

import math

import numpy as np

from . import _sampling_kernels, _sculley_loop
from ._init import draw_initial_centers, given_centers
from ._sampling import WeightedRowSampler
from ._schedule import Schedule, clock
from ._state import SculleyState

# Every source: dense rows and CSR rows.
ACCEPTS_SPARSE = True
# Runs mini-batch steps: callbacks and history_ follow them.
RUNS_STEPS = True
# Reads chunked arrays a batch of touched chunks at a time (_sources.chunked).
READS_CHUNKS = True


def working_bytes(params, settings, incoming):
    """An estimate of the memory fit allocates besides the rows (read in place), in bytes."""
    n_samples, n_features = incoming.shape
    itemsize = incoming.dtype.itemsize
    n_clusters = int(params.n_clusters)  # a NumPy integer would overflow below
    centers = 3 * (n_clusters + 64) * (n_features + 1) * itemsize  # 2 buffers + the kernels'
    # init subsample, k-means++'s packed copy, its distance buffers, norms and sums
    init = int(settings.init_size) * (2 * incoming.row_bytes + 24 * itemsize + 40)
    batch = int(settings.batch_size) * 24 + n_clusters * 16
    labels = n_samples * 4 if params.compute_labels else 0
    return centers + init + batch + labels


def scaled_tol(params, source):
    """tol in the data's units: times the mean feature variance (scikit-learn's rule); 0 when
    tol is 0."""
    return params.tol * source.mean_variance() if params.tol > 0 else 0.0


def _scans_on_the_way(params, settings, n_samples):
    """Whether fit can leave the NaN scan of X, which reads all of it, until later: to the
    final labels pass (on the same read) or the steps (in a thread's idle time). Not when
    something before the steps reads all of X anyway or shows its values: a tolerance from
    X's variance, a callable init, k-means++ on all rows, verbose output. The steps and the
    seeding on an init subsample (scanned first) are safe on any values, and a non-finite X
    still raises the same ValueError."""
    return not (
        params.verbose
        or params.tol > 0
        or params.init_kind == "callable"
        or (params.init_kind == "k-means++" and settings.init_size >= n_samples)
    )


def fit(source, params, settings, random_state, n_threads, listeners=(), compiled_loop=True,
        center_shift=False):  # fmt: skip
    """fit on the source's rows; returns the new SculleyState.

    ``listeners`` receive each step's record (see _schedule), with each step's center shift
    when ``center_shift`` (or tol) asks for it; ``compiled_loop=False`` runs the steps one by
    one in Python (``run_steps``), as sources whose rows are not in memory will, with the
    same results.
    """
    started = clock()
    n_samples = source.n_samples
    if not _scans_on_the_way(params, settings, n_samples):
        source.check_finite(n_threads)
    given = given_centers(params, source.n_features, source.dtype)
    sampler = WeightedRowSampler(source.sample_weight, n_samples, source.dtype)
    tol = scaled_tol(params, source)
    centers = _best_initial_centers(source, params, settings, random_state, given, n_threads)
    state = SculleyState(
        centers=np.array(centers, dtype=source.dtype, order="C", copy=True),
        weight_sums=np.zeros(params.n_clusters, dtype=np.float64),
        settings=settings,
        feature_names=source.feature_names,
        tol=tol,
    )
    schedule = Schedule(
        settings.batch_size,
        params.n_clusters,
        params.reassignment_ratio,
        params.verbose,
        n_samples=n_samples,
        n_steps=(params.max_iter * n_samples) // settings.batch_size,
        tol=tol,
        max_no_improvement=params.max_no_improvement,
        listeners=listeners,
        history=state.history,
        center_shift=center_shift,
        started=started,
    )
    _run_loop(source, state, schedule, sampler, random_state, n_threads,
              scan_x=not params.compute_labels, compiled=compiled_loop)  # fmt: skip
    _take_schedule(state, schedule)
    state.n_iter = math.ceil(state.n_steps * settings.batch_size / n_samples)
    if params.compute_labels:
        state.labels, state.inertia = source.labels_inertia(source.centers_of(state, n_threads),
                                                            n_threads)  # fmt: skip
    else:
        # scikit-learn fails here when no step got past the first; mbk uses that step.
        ewa = state.ewa_inertia
        if ewa is None:
            ewa = schedule.last_batch_inertia / settings.batch_size
        weights = source.sample_weight
        state.inertia = ewa * float(n_samples if weights is None else weights.sum())
    return state


def _run_loop(source, state, schedule, sampler, random_state, n_threads, *, scan_x, compiled):
    """fit's steps from state.centers until the schedule stops them, in the compiled loop
    or step by step in Python: the same draws, steps and schedule, the same results.

    The loop draws each batch in proportion to the weights, so the steps use unit weights
    (scikit-learn >= 1.9): a weight counts once, not twice. ``scan_x``: the steps may scan
    the rows for NaN and infinity on the way (the compiled loop does, beside its center
    updates); otherwise they are left to the caller.
    """
    stream = _sampling_kernels.RandomStream(random_state)
    if compiled and source.compiled_loop:
        scan_x = scan_x and source.finite is None
        state.centers, finite = _sculley_loop.fit_steps(
            source.X, state.centers, state.weight_sums, sampler, stream, schedule, n_threads,
            scan_x,
        )  # fmt: skip
        if scan_x:
            source.record_scan(finite)
        return
    if scan_x:  # a step on drawn rows cannot scan all of them on the way
        source.check_finite(n_threads)
    batch_size = state.settings.batch_size
    draw_batches = getattr(source, "draw_batches", None)  # (a chunked source's sampling)
    if draw_batches is not None:
        batches = draw_batches(sampler, random_state, batch_size, schedule.n_steps)
    else:
        batches = (sampler.draw(random_state, batch_size) for _ in range(schedule.n_steps))
    run_steps(source, state, schedule, batches, stream, n_threads, weighted=False)


def _best_initial_centers(source, params, settings, random_state, given, n_threads):
    """n_init candidate sets of centers; the one with the lowest inertia on one validation
    batch (drawn first, as scikit-learn draws it, even when there is nothing to choose)."""
    n_init = settings.n_init
    validation_rows = _sampling_kernels.randint(random_state, source.n_samples,
                                                settings.init_size)  # fmt: skip
    best, best_inertia = None, None
    for init_index in range(n_init):
        if params.verbose:
            print(f"Init {init_index + 1}/{n_init} with method {params.init}")
        candidate = draw_initial_centers(source, params, settings, random_state, given, n_threads)
        if n_init == 1 and not params.verbose:
            return candidate
        _, inertia = source.labels_inertia(candidate, n_threads, rows=validation_rows)
        if params.verbose:
            print(f"Inertia for init {init_index + 1}/{n_init}: {inertia}")
        if best_inertia is None or inertia < best_inertia:
            best, best_inertia = candidate, inertia
    return best


def _take_schedule(state, schedule):
    """What a loop's schedule knows at its end, into the state."""
    state.n_steps = schedule.first_step + schedule.steps_run
    state.n_since_last_reassign = schedule.n_since_last_reassign
    state.stop_reason = schedule.stop_reason if schedule.early_stopping else None
    if schedule.early_stopping:
        state.ewa_inertia = schedule.ewa_inertia
        state.ewa_inertia_min = schedule.ewa_inertia_min
        state.no_improvement = schedule.no_improvement


def start(source, params, settings, random_state, n_threads):
    """partial_fit's first call: the centers seeded on its batch, no weight yet."""
    given = given_centers(params, source.n_features, source.dtype)
    centers = draw_initial_centers(source, params, settings, random_state, given, n_threads)
    return SculleyState(
        centers=np.array(centers, order="C", copy=True),
        weight_sums=np.zeros(params.n_clusters, dtype=np.float64),
        settings=settings,
        feature_names=source.feature_names,
        random_state=random_state,
    )


def partial_fit(source, state, n_threads, *, reassignment_ratio, verbose, compute_labels,
                listeners=(), center_shift=False):  # fmt: skip
    """One step on all the source's rows with their weights, the centers updated in place,
    appended to the state's history.

    The parameters are read as they are now (a later partial_fit follows set_params, as in
    scikit-learn); the batch size is the one resolved at the first fit.
    """
    schedule = Schedule(
        state.settings.batch_size,
        state.n_clusters,
        reassignment_ratio,
        verbose,
        n_since_last_reassign=state.n_since_last_reassign,
        first_step=state.n_steps,
        listeners=listeners,
        history=state.history,
        center_shift=center_shift,
    )
    stream = _sampling_kernels.RandomStream(state.random_state)
    run_steps(source, state, schedule, (None,), stream, n_threads, weighted=True)
    if compute_labels:
        state.labels, state.inertia = source.labels_inertia(source.centers_of(state, n_threads),
                                                            n_threads)  # fmt: skip


def run_steps(source, state, schedule, batches, stream, n_threads, *, weighted):
    """Sculley's steps one by one, on the source's rows given by each of ``batches`` (an
    index array into its rows, or None for all of them), each one compiled call that does
    what fit's compiled loop does for a step, with the same schedule. The centers move in
    place (state.centers keeps its identity, as partial_fit's must: a source may move them in
    its kernels' layout, held by the state, see SculleyState.hold_centers); the reassignment
    draws from ``stream``, a RandomStream.

    ``weighted``: the steps use the source's weights (partial_fit) or unit weights (fit,
    whose batches are drawn in proportion to the weights).
    """
    for rows in batches:
        if source.scheduled_step(state, schedule, stream, n_threads, rows=rows,
                                 weighted=weighted):  # fmt: skip
            break
    _take_schedule(state, schedule)

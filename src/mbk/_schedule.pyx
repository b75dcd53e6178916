"""The schedule of Sculley's mini-batch steps, one for every loop that runs them.

It decides, step after step, what scikit-learn decides: when the small centers are reassigned
(the first step, a step after which a center has no weight yet, and every 10 * n_clusters
rows), and when fit stops early (on the smoothed batch inertia or on the centers' shift); it
prints scikit-learn's verbose lines; and it keeps each step's record for whoever listens.

fit's compiled loop (``_sculley_loop.fit_steps``) and the step-by-step loop in Python
(``mbk._sculley.run_steps``, which partial_fit and sources whose rows are not in memory use)
call the same two methods, ``reassign_now`` before a step and ``record`` after it.

Every step is appended to a :class:`History` (the fitted model's ``history_``): a few numbers
written into arrays grown in chunks, so keeping it costs next to nothing. Listeners are
callables that receive a :class:`StepRecord` after every step; a listener returning True
stops the loop. With no listener no record object is made.
"""

from collections import namedtuple

import numpy as np

from libc.math cimport NAN, isnan
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

StepRecord = namedtuple(
    "StepRecord",
    ["step", "batch_inertia", "mean_batch_inertia", "ewa_inertia", "center_shift",
     "n_reassigned", "elapsed", "stop_reason"],
)
StepRecord.__doc__ = """One mini-batch step, as a listener sees it.

step : int
    The step's number, counting from 1 over the estimator's life (``n_steps_`` after it).
batch_inertia : float
    The batch's weighted inertia against the centers before the step.
mean_batch_inertia : float
    batch_inertia / batch_size, the value the early stopping smooths.
ewa_inertia : float or None
    The smoothed mean batch inertia after this step (None on fit's first step, which is
    ignored, and in partial_fit, which does not stop early).
center_shift : float or None
    The sum of the squared center moves of this step, reassignment included (None when
    neither tol nor ``set_callbacks(center_shift=True)`` asks for it).
n_reassigned : int
    Centers moved onto batch rows after the step.
elapsed : float
    Seconds from the start of the fit to the end of this step (see History).
stop_reason : str or None
    Why the loop stops after this step: "center_shift" (tol), "no_improvement"
    (max_no_improvement), "max_steps", "callback" (a listener asked to stop); None while it
    goes on.
"""

# The history's columns, in order, and their dtypes.
HISTORY_COLUMNS = {
    "batch_inertia": np.float64,
    "ewa_inertia": np.float64,
    "n_reassigned": np.int64,
    "elapsed": np.float64,
    "center_shift": np.float64,
}
cdef inline double _now() noexcept nogil:
    # (time.perf_counter's clock, without a Python call: a step may take only microseconds)
    cdef timespec now
    clock_gettime(CLOCK_MONOTONIC, &now)
    return now.tv_sec + now.tv_nsec * 1e-9


def clock():
    """Seconds on the schedule's clock (for ``Schedule(started=...)``)."""
    return _now()


# The first buffers hold this many steps; each growth doubles them.
cdef Py_ssize_t _FIRST_CAPACITY = 256

# Why a loop stopped (Schedule.stop_reason).
STOPPED_BY_SHIFT = "center_shift"
STOPPED_BY_INERTIA = "no_improvement"
STOPPED_AT_MAX_STEPS = "max_steps"
STOPPED_BY_LISTENER = "callback"


cdef class History:
    """Every mini-batch step of a model's life, one entry per step, in arrays.

    The columns (``HISTORY_COLUMNS``): ``batch_inertia`` (the batch's weighted inertia
    against the centers before the step), ``ewa_inertia`` (the smoothed mean batch inertia
    after it; NaN on fit's first step and in partial_fit, which does not smooth),
    ``n_reassigned`` (centers moved onto batch rows after it), ``elapsed`` (seconds from the
    start of the fit, seeding included, to the end of the step; partial_fit adds each call's
    time to the last value) and ``center_shift`` (the sum of the centers' squared moves, NaN
    when it was not computed). The buffers grow by doubling; ``columns()`` gives read-only
    views of the recorded part, which stay valid as the history grows.
    """

    def __init__(self, columns=None):
        self.n_steps = 0
        self.arrays = {}
        if columns is None:
            self._grow(0)
            return
        lengths = {np.shape(columns[name]) for name in HISTORY_COLUMNS}
        if len(lengths) != 1 or len(next(iter(lengths))) != 1:
            raise ValueError("the history's columns must be 1-D arrays of one length")
        n_steps = next(iter(lengths))[0]
        self._grow(n_steps)
        for name, dtype in HISTORY_COLUMNS.items():
            self.arrays[name][:n_steps] = np.asarray(columns[name], dtype=dtype)
        self.n_steps = n_steps

    def __reduce__(self):
        return History, ({name: np.array(view) for name, view in self.columns().items()},)

    def __len__(self):
        return self.n_steps

    @property
    def seconds(self):
        """The last step's elapsed time (0 before any step)."""
        return float(self.elapsed[self.n_steps - 1]) if self.n_steps else 0.0

    def columns(self):
        """{column: read-only 1-D array of the n_steps recorded values}."""
        views = {}
        for name, array in self.arrays.items():
            view = array[:self.n_steps]
            view.flags.writeable = False
            views[name] = view
        return views

    cdef int _grow(self, Py_ssize_t capacity) except -1:
        cdef Py_ssize_t size = _FIRST_CAPACITY
        while size < capacity:
            size *= 2
        for name, dtype in HISTORY_COLUMNS.items():
            grown = np.empty(size, dtype=dtype)
            if name in self.arrays:
                grown[:self.n_steps] = self.arrays[name][:self.n_steps]
            self.arrays[name] = grown
        self.batch_inertia = self.arrays["batch_inertia"]
        self.ewa_inertia = self.arrays["ewa_inertia"]
        self.n_reassigned = self.arrays["n_reassigned"]
        self.elapsed = self.arrays["elapsed"]
        self.center_shift = self.arrays["center_shift"]
        return 0

    cdef int append(self, double batch_inertia, double ewa_inertia, Py_ssize_t n_reassigned,
                    double elapsed, double center_shift) except -1:
        cdef Py_ssize_t i = self.n_steps
        if i == self.batch_inertia.shape[0]:
            self._grow(i + 1)
        self.batch_inertia[i] = batch_inertia
        self.ewa_inertia[i] = ewa_inertia
        self.n_reassigned[i] = n_reassigned
        self.elapsed[i] = elapsed
        self.center_shift[i] = center_shift
        self.n_steps = i + 1
        return 0


cdef class Schedule:
    """Reassignment timing, early stopping, verbose output and step records.

    Parameters
    ----------
    batch_size : int
        The batch size resolved at the first fit (scikit-learn's ``_batch_size``): the rows a
        step counts towards the reassignment, and the divisor of the mean batch inertia.
    n_clusters : int
        Reassignment happens every ``10 * n_clusters`` rows.
    reassignment_ratio : float
        0 never reassigns (the timing still advances).
    verbose : int
        Print scikit-learn's lines (reassignments; with early stopping, every step's
        inertias and why the loop stopped).
    n_samples : int or None
        Rows of the training data: the smoothing weight is ``min(2 * batch_size /
        (n_samples + 1), 1)``. None for partial_fit, which does not stop early.
    n_steps : int
        Steps fit plans (``max_iter * n_samples // batch_size``); the loop stops after them.
    tol : float
        Stop when a step moves the centers by a summed squared distance of at most tol
        (already scaled to the data); 0 disables this test.
    max_no_improvement : int or None
        Stop after this many steps without a new minimum of the smoothed inertia.
    n_since_last_reassign : int
        Rows seen since the last reassignment (carried over between partial_fit calls).
    first_step : int
        Steps the estimator ran before this schedule's first (for the records' numbers).
    listeners : sequence of callables
        Each receives a StepRecord after every step; one returning True stops the loop. One
        with an ``on_schedule`` method is first given the schedule (whose ``latest_centers``
        and ``latest_weight_sums`` it may read after each step).
    history : History or None
        Where each step is appended (a new History when None); its last elapsed time is the
        starting point of this schedule's.
    center_shift : bool
        Compute each step's center shift even when tol does not need it.
    started : float or None
        ``clock()`` when the fitting call began (None: now).
    """

    def __init__(self, Py_ssize_t batch_size, Py_ssize_t n_clusters, double reassignment_ratio,
                 int verbose, *, n_samples=None, Py_ssize_t n_steps=0, double tol=0.0,
                 max_no_improvement=None, Py_ssize_t n_since_last_reassign=0,
                 Py_ssize_t first_step=0, listeners=(), History history=None,
                 bint center_shift=False, started=None):
        self.batch_size = batch_size
        self.n_clusters = n_clusters
        self.reassignment_ratio = reassignment_ratio
        self.verbose = verbose
        self.n_steps = n_steps if n_samples is not None else 0
        self.alpha = min(batch_size * 2.0 / (n_samples + 1), 1.0) if n_samples else 0.0
        self.tol = tol
        self.max_no_improvement = -1 if max_no_improvement is None else max_no_improvement
        self.n_since_last_reassign = n_since_last_reassign
        self.first_step = first_step
        self.listeners = tuple(listeners)
        for listener in self.listeners:
            tell = getattr(listener, "on_schedule", None)
            if tell is not None:
                tell(self)
        self.history = History() if history is None else history
        self.elapsed_before = self.history.seconds
        self.early_stopping = self.n_steps > 0
        self.wants_center_shift = tol > 0 or center_shift
        self.steps_run = 0
        self.last_batch_inertia = 0
        self.no_improvement = 0
        self.stop_reason = None
        self.has_ewa = self.has_ewa_min = False
        self.started = _now() if started is None else started

    @property
    def ewa_inertia(self):
        return self.ewa if self.has_ewa else None

    @property
    def ewa_inertia_min(self):
        return self.ewa_min if self.has_ewa_min else None

    cpdef bint reassign_now(self, const double[::1] weight_sums) except -1:
        """Advance the reassignment timing by a step; whether the step after which it is
        called reassigns (scikit-learn: when a center has no weight, or every 10 * n_clusters
        rows, and only with reassignment_ratio > 0)."""
        cdef Py_ssize_t j
        cdef bint due = False
        self.n_since_last_reassign += self.batch_size
        for j in range(weight_sums.shape[0]):
            if weight_sums[j] == 0:
                due = True
                break
        if not due and self.n_since_last_reassign >= 10 * self.n_clusters:
            due = True
        if due:
            self.n_since_last_reassign = 0
        return due and self.reassignment_ratio > 0

    cpdef bint record(
            self, double batch_inertia, double center_shift, Py_ssize_t n_reassigned) except -1:
        """Take a step's results; return whether the loop stops after it.

        ``center_shift`` may be NaN when neither tol nor the history needs it.
        """
        cdef Py_ssize_t step = self.steps_run
        cdef double elapsed = self.elapsed_before + (_now() - self.started)
        self.steps_run += 1
        self.last_batch_inertia = batch_inertia
        if n_reassigned and self.verbose:
            print(f"[MiniBatchKMeans] Reassigning {n_reassigned} cluster centers.")
        if self.early_stopping:
            self._early_stop(step, batch_inertia / self.batch_size, center_shift)
            if self.stop_reason is None and self.steps_run >= self.n_steps:
                self.stop_reason = STOPPED_AT_MAX_STEPS
        self.history.append(batch_inertia,
                            self.ewa if self.early_stopping and self.has_ewa else NAN,
                            n_reassigned, elapsed, center_shift)
        if self.listeners:
            self._tell_listeners(batch_inertia, center_shift, n_reassigned, elapsed)
        return self.stop_reason is not None

    cdef int _early_stop(self, Py_ssize_t step, double mean_inertia,
                         double center_shift) except -1:
        """scikit-learn's stopping rules: small center moves, or no new minimum of the
        smoothed inertia for max_no_improvement steps. The first step is ignored (it
        measures the initialisation); then ewa <- ewa * (1 - alpha) + inertia * alpha."""
        step += 1
        if step == 1:
            if self.verbose:
                print(f"Minibatch step {step}/{self.n_steps}: mean batch inertia: "
                      f"{mean_inertia}")
            return 0
        if not self.has_ewa:
            self.ewa = mean_inertia
            self.has_ewa = True
        else:
            self.ewa = self.ewa * (1 - self.alpha) + mean_inertia * self.alpha
        if self.verbose:
            print(f"Minibatch step {step}/{self.n_steps}: mean batch inertia: "
                  f"{mean_inertia}, ewa inertia: {self.ewa}")
        if self.tol > 0.0 and center_shift <= self.tol:
            if self.verbose:
                print(f"Converged (small centers change) at step {step}/{self.n_steps}")
            self.stop_reason = STOPPED_BY_SHIFT
            return 0
        if not self.has_ewa_min or self.ewa < self.ewa_min:
            self.no_improvement = 0
            self.ewa_min = self.ewa
            self.has_ewa_min = True
        else:
            self.no_improvement += 1
        if 0 <= self.max_no_improvement <= self.no_improvement:
            if self.verbose:
                print("Converged (lack of improvement in inertia) at step "
                      f"{step}/{self.n_steps}")
            self.stop_reason = STOPPED_BY_INERTIA
        return 0

    cdef int _tell_listeners(self, double batch_inertia, double center_shift,
                             Py_ssize_t n_reassigned, double elapsed) except -1:
        record = StepRecord(
            step=self.first_step + self.steps_run,
            batch_inertia=batch_inertia,
            mean_batch_inertia=batch_inertia / self.batch_size,
            ewa_inertia=self.ewa_inertia if self.early_stopping else None,
            center_shift=None if isnan(center_shift) else center_shift,
            n_reassigned=n_reassigned,
            elapsed=elapsed,
            stop_reason=self.stop_reason,
        )
        stop = False
        for listener in self.listeners:
            stop = bool(listener(record)) or stop
        if stop and self.stop_reason is None:
            self.stop_reason = STOPPED_BY_LISTENER
        return 0

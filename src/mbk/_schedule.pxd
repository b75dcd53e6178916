# The schedule of Sculley's steps (see _schedule.pyx): shared by fit's compiled loop
# (_sculley_loop) and the step-by-step loop (mbk._sculley).

cimport cython


@cython.final
cdef class History:
    cdef readonly Py_ssize_t n_steps          # entries recorded
    cdef double[::1] batch_inertia
    cdef double[::1] ewa_inertia
    cdef long long[::1] n_reassigned
    cdef double[::1] elapsed
    cdef double[::1] center_shift
    cdef dict arrays                          # name -> the buffer (capacity >= n_steps)

    cdef int append(self, double batch_inertia, double ewa_inertia, Py_ssize_t n_reassigned,
                    double elapsed, double center_shift) except -1
    cdef int _grow(self, Py_ssize_t capacity) except -1


@cython.final
cdef class Schedule:
    # Settings
    cdef readonly Py_ssize_t batch_size       # the batch size resolved at the first fit
    cdef readonly Py_ssize_t n_clusters
    cdef readonly Py_ssize_t n_steps          # steps planned; 0: no early stopping (partial_fit)
    cdef readonly double reassignment_ratio
    cdef readonly double tol                  # scaled to the data; 0: no center-shift test
    cdef readonly Py_ssize_t max_no_improvement   # -1: no inertia test
    cdef readonly double alpha                # the EWA's weight of a new batch
    cdef readonly int verbose
    cdef readonly tuple listeners
    cdef readonly History history             # every step's record, appended to
    cdef readonly bint early_stopping         # whether the loop may stop before n_steps
    cdef readonly bint wants_center_shift     # tol, or the history asks for each step's shift
    # State
    cdef public Py_ssize_t n_since_last_reassign  # rows seen since the last reassignment
    cdef public Py_ssize_t no_improvement
    cdef readonly Py_ssize_t steps_run        # steps recorded by this schedule
    cdef readonly Py_ssize_t first_step       # steps before this schedule's first
    cdef readonly double last_batch_inertia   # the last step's
    cdef readonly object stop_reason
    # The centers and running weights after the latest step, for listeners that snapshot the
    # model (set by the loops only when there are listeners): an array or centers held in a
    # kernel family's layout, and the weights' array.
    cdef public object latest_centers
    cdef public object latest_weight_sums
    cdef bint has_ewa
    cdef bint has_ewa_min
    cdef double ewa
    cdef double ewa_min
    cdef double started                       # the clock when the fitting call began
    cdef double elapsed_before                # seconds the history counted before it

    cpdef bint reassign_now(self, const double[::1] weight_sums) except -1
    cpdef bint record(
        self, double batch_inertia, double center_shift, Py_ssize_t n_reassigned) except -1
    cdef int _early_stop(
        self, Py_ssize_t step, double mean_inertia, double center_shift) except -1
    cdef int _tell_listeners(
        self, double batch_inertia, double center_shift, Py_ssize_t n_reassigned,
        double elapsed) except -1

# The schedule of Sculley's steps (see _schedule.pyx): shared by fit's compiled loop
# (_sculley_loop) and the step-by-step loop (mbk._sculley).

cimport cython


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
    cdef readonly bint early_stopping         # whether the loop may stop before n_steps
    cdef readonly bint wants_center_shift     # tol or a listener needs each step's shift
    # State
    cdef public Py_ssize_t n_since_last_reassign  # rows seen since the last reassignment
    cdef public Py_ssize_t no_improvement
    cdef readonly Py_ssize_t steps_run        # steps recorded by this schedule
    cdef readonly Py_ssize_t first_step       # steps before this schedule's first
    cdef readonly double last_batch_inertia   # the last step's
    cdef readonly object stop_reason
    cdef bint has_ewa
    cdef bint has_ewa_min
    cdef double ewa
    cdef double ewa_min
    cdef double started

    cpdef bint reassign_now(self, const double[::1] weight_sums) except -1
    cpdef bint record(
        self, double batch_inertia, double center_shift, Py_ssize_t n_reassigned) except -1
    cdef int _early_stop(
        self, Py_ssize_t step, double mean_inertia, double center_shift) except -1
    cdef int _tell_listeners(
        self, double batch_inertia, double center_shift, Py_ssize_t n_reassigned) except -1

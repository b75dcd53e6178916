# Process-wide tuning of the compiled code: the knobs (read through knobs(), set from Python
# with the setters in _tuning.pyx, whose docstring lists every one), the constants chosen by
# measurement, and the thread policy the knobs steer. No knob changes a result: results are
# the same for any thread count, kernel variant and update order (tested).

cdef struct Tuning:
    # Below this much arithmetic per thread (multiply-adds), another thread costs more than
    # it saves (see threads_for).
    double min_work_per_thread
    # Whether the assignment may put rows in the vector lanes for few centers of few features.
    bint few_centers_kernel
    # The largest n_clusters * n_features the center update adds in batch order (all centers'
    # sums at once, while they fit in L1); beyond, center by center.
    Py_ssize_t batch_order_sums
    # The factor by which a thread-count probe step must beat the mean step time since the
    # last probe to take over (see _sculley_loop.ThreadChoice).
    double probe_gain


cdef enum:
    # How far ahead of the tile being computed scattered batch rows are requested: enough
    # rows for a memory latency's worth of arithmetic on small problems.
    PREFETCH_ROWS = 48
    # How far ahead (in bytes of center values) a CSR row's dot products request the runs of
    # the entries to come: far enough to hide a memory latency, near enough to stay in L1.
    CSR_PREFETCH_BYTES = 10240
    # Bytes of X a piecewise finiteness scan reads between looks at its stop flag: the thread
    # that raised it waits at most about a microsecond for the scan to notice.
    SCAN_PIECE_BYTES = 8192
    # Bytes per work item of a parallel finiteness scan.
    SCAN_CHUNK_BYTES = 1 << 18
    # fit's thread probes: the first after PROBE_PERIOD steps; a losing probe doubles the gap
    # to the next, up to MAX_PROBE_PERIOD steps.
    PROBE_PERIOD = 32
    MAX_PROBE_PERIOD = 256


cdef const Tuning* knobs() noexcept nogil
cdef int threads_for(int n_threads, Py_ssize_t n_units, double work) noexcept nogil
cdef int clamp_threads(
    int n_threads, Py_ssize_t n_rows, Py_ssize_t n_clusters, Py_ssize_t n_features
) noexcept nogil

"""Process-wide tuning of mbk's compiled code, in one place.

None of these changes a result: results are the same for any thread count, kernel variant and
update order (the tests run each setting against the others). They exist for tests, which
must exercise every path on small data, and for benchmarks. Each setter returns the old value.

==========================  =========  ==========================================================
knob                        default    what it steers
==========================  =========  ==========================================================
min_work_per_thread         2**18      multiply-adds a call needs per thread before it uses
                                       another: below, waking a thread costs more than it saves,
                                       and on a busy machine a descheduled peer can stall a
                                       parallel region for a whole time slice (tests: 0)
few_centers_kernel          True       whether the assignment may put rows in the vector lanes
                                       when there are fewer centers than a register block of
                                       few features (the housing example); False: the tiles
batch_order_sums            4096       the largest n_clusters * n_features whose sums the center
                                       update adds in batch order, all centers at once (they
                                       fit in L1); beyond, center by center, each center's sums
                                       in L1, threads owning centers
probe_gain                  0.8        fit's thread probes: a step on the other thread count
                                       takes over when it beats the mean step since the last
                                       probe by this factor (tests: 0 never, inf always)
kernel variant (use_isa)    widest     "avx512", "avx2" or "baseline": the micro-kernels
                                       (mbk.kernel_variant() names the one in use)
MT19937 variant             widest     0 baseline, 1 AVX2, 2 AVX-512: the direct draws from
(use_mt19937_variant)                  NumPy's MT19937 state
==========================  =========  ==========================================================

Compile-time constants chosen by measurement (prefetch distance, scan piece sizes, probe
periods) are in ``_tuning.pxd``; the measurements behind them are in CHANGELOG.md.
"""

from mbk._rows cimport _n_chunks

cdef Tuning _knobs = Tuning(
    min_work_per_thread=1 << 18,
    few_centers_kernel=True,
    batch_order_sums=4096,
    probe_gain=0.8,
)


cdef const Tuning* knobs() noexcept nogil:
    return &_knobs


def set_min_work_per_thread(double work):
    """Set the multiply-adds per thread below which calls use fewer threads; returns the old."""
    old = _knobs.min_work_per_thread
    _knobs.min_work_per_thread = work
    return old


def set_few_centers_kernel(bint enabled):
    """Allow or forbid the rows-in-lanes kernel for few centers; returns the old setting."""
    old = _knobs.few_centers_kernel
    _knobs.few_centers_kernel = enabled
    return old


def set_batch_order_sums(Py_ssize_t n_sums):
    """Set the largest n_clusters * n_features updated in batch order; returns the old."""
    old = _knobs.batch_order_sums
    _knobs.batch_order_sums = n_sums
    return old


def set_probe_gain(double gain):
    """Set the factor a thread-count probe step must beat; returns the old one."""
    old = _knobs.probe_gain
    _knobs.probe_gain = gain
    return old


def use_isa(name):
    """Switch the micro-kernels' variant ("avx512", "avx2", "baseline"); returns the old name."""
    from mbk import _dense

    return _dense.switch_variant(name)


def use_mt19937_variant(int isa):
    """Draw from MT19937 with variant isa (see _sampling_kernels.mt19937_variants); returns
    the variant used before."""
    from mbk import _sampling_kernels

    return _sampling_kernels.switch_mt19937_variant(isa)


cdef int threads_for(int n_threads, Py_ssize_t n_units, double work) noexcept nogil:
    """Threads worth using for n_units independent work items totalling ``work``
    multiply-adds (at most n_threads, at least one)."""
    cdef double floor = _knobs.min_work_per_thread
    cdef double useful = work / floor if floor > 0 else n_threads
    if n_threads > n_units:
        n_threads = <int> n_units
    if n_threads > useful:
        n_threads = <int> useful
    return max(n_threads, 1)


cdef int clamp_threads(
        int n_threads, Py_ssize_t n_rows, Py_ssize_t n_clusters, Py_ssize_t n_features
) noexcept nogil:
    """Threads for a pass over n_rows rows against n_clusters centers (one work item per
    chunk of rows)."""
    return threads_for(n_threads, _n_chunks(n_rows), <double> n_rows * n_clusters * n_features)

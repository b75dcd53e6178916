# The CSR kernel family: what _sparse.pyx shares with the entry points (_core) and the loops'
# scheduled step (_sculley_loop). It works on CSR row views (_rows.pxd) against centers held
# feature-major (FeatureMajorCenters) for as long as a public call runs: a stored entry reads
# the values of its feature for every center in one run, and the steps update the centers in
# that layout, so they are transposed once per call, not once per step.

from cython cimport floating

from libc.stdint cimport int32_t

from mbk._rows cimport CsrRows, csr_index
from mbk._sampling_kernels cimport RandomStream


cdef struct CsrCenters:
    # The centers feature-major: values[f * n_padded + j] is feature f of center j. Padding
    # centers (j >= n_clusters) are zeros and never win the assignment.
    void* values            # (n_features, n_padded), floating
    void* sq_norms          # (n_padded,) floating, in the order _range_norms defines
    Py_ssize_t n_clusters
    Py_ssize_t n_features
    Py_ssize_t n_padded


cdef struct CsrUpdateScratch:
    # The update's working set, kept by FeatureMajorCenters from step to step.
    Py_ssize_t* range_offsets     # (n_ranges + 1,) the batch's entries grouped by range
    # (capacity,) each grouped entry's place in its range's accumulators:
    # (feature - range start) * n_padded + center
    int32_t* entry_slots
    void* entry_values            # (capacity,) floating: its value times its row's weight
    double* scale_in              # (n_padded,) each center's running weight, or 1
    double* alpha                 # (n_padded,) 1 / its new running weight, or 1
    double* batch_weights         # (n_padded,)
    void* range_norms             # (n_ranges, n_padded) floating: the norms' partial sums
    double* acc                   # (n_threads, FEATURE_RANGE * n_padded) a range's sums
    Py_ssize_t capacity
    int n_threads


cdef class FeatureMajorCenters:
    # Centers in the CSR kernels' layout, with the update's scratch: loaded from row-major
    # centers (the model's), updated in place by the steps, stored back at the end.
    cdef object storage         # the values' and norms' memory (a NumPy array)
    cdef CsrCenters view
    cdef CsrUpdateScratch scratch
    cdef readonly bint is_double
    cdef readonly object dtype
    cdef int _reserve(self, Py_ssize_t n_entries, int n_threads) except -1


# Assignment (labels and scikit-learn's sparse inertia)
cdef double _assign_csr(
    const CsrRows* rows, const floating* data, const csr_index* indices,
    const csr_index* indptr, const CsrCenters* centers, int* labels, floating* dots,
    double* chunk_inertia, int n_threads, bint with_inertia) noexcept nogil

cdef void _double_norms(
    const CsrCenters* centers, bint is_double, double* out) noexcept nogil
cdef void _csr_distance_chunk(
    const CsrRows* rows, const floating* data, const csr_index* indices,
    const csr_index* indptr, const CsrCenters* centers, const double* sq_norms,
    Py_ssize_t start, Py_ssize_t end, floating* out, double* dots) noexcept nogil

# The step: assignment, then the update; the reassignment of small centers onto CSR rows
cdef Py_ssize_t _batch_entries(
    const CsrRows* rows, const csr_index* indptr) noexcept nogil
cdef double _csr_minibatch_step(
    const CsrRows* rows, const floating* data, const csr_index* indices,
    const csr_index* indptr, CsrCenters* centers, CsrUpdateScratch* scratch,
    double* weight_sums, int* labels, floating* dots, double* chunk_inertia,
    int n_threads) noexcept nogil
cdef double _csr_center_shift(
    const CsrCenters* centers, const floating* before) noexcept nogil
cdef Py_ssize_t _reassign_small_centers_csr(
    const CsrRows* batch, const floating* data, const csr_index* indices,
    const csr_index* indptr, CsrCenters* centers, CsrUpdateScratch* scratch,
    double[::1] weight_sums, double ratio, RandomStream stream, Py_ssize_t* order,
    signed char* small, Py_ssize_t* moved, int n_threads) except -1

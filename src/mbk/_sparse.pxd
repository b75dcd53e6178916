# The CSR kernel family: what _sparse.pyx shares with the entry points (_core) and the loops'
# scheduled step (_sculley_loop). It works on CSR row views (_rows.pxd) against centers
# prepared once per call in the layout a stored entry needs: feature-major (n_features,
# n_clusters), so an entry reads the values of its feature for every center in one run.

from cython cimport floating

from mbk._dense cimport ScratchArena, StepScratch
from mbk._rows cimport CsrRows, csr_index
from mbk._sampling_kernels cimport RandomStream


cdef struct CsrCenters:
    const void* rows        # (n_clusters, n_features), C order
    void* transposed        # (n_features, n_clusters): feature f of every center, in a run
    void* sq_norms          # (n_clusters,)
    Py_ssize_t n_clusters
    Py_ssize_t n_features


cdef Py_ssize_t _csr_centers_size(Py_ssize_t n_clusters, Py_ssize_t n_features) noexcept nogil
cdef void _prepare_csr_centers(
    CsrCenters* prepared, const floating[:, ::1] centers, floating* storage,
    int n_threads) noexcept nogil

# Assignment (labels and scikit-learn's sparse inertia) and distances
cdef double _assign_csr(
    const CsrRows* rows, const floating* data, const csr_index* indices,
    const csr_index* indptr, const CsrCenters* centers, int* labels, floating* dots,
    double* chunk_inertia, int n_threads, bint with_inertia) noexcept nogil
cdef void _csr_distance_chunk(
    const CsrRows* rows, const floating* data, const csr_index* indices,
    const csr_index* indptr, const CsrCenters* centers, const double* sq_norms,
    Py_ssize_t start, Py_ssize_t end, floating* out, double* dots) noexcept nogil

# The step: assignment, then the update (accumulate from center * running weight, apply)
cdef int _csr_step_scratch(
    StepScratch* out, ScratchArena arena, const CsrRows* rows, Py_ssize_t n_clusters,
    size_t itemsize, int n_threads) except -1
cdef double _csr_minibatch_step(
    const CsrRows* rows, const floating* data, const csr_index* indices,
    const csr_index* indptr, const floating[:, ::1] centers_old,
    floating[:, ::1] centers_new, double* weight_sums, int* labels,
    const StepScratch* scratch) noexcept nogil

# Reassignment of small centers onto CSR batch rows
cdef Py_ssize_t _reassign_small_centers_csr(
    const CsrRows* batch, const floating* data, const csr_index* indices,
    const csr_index* indptr, floating[:, ::1] centers, double[::1] weight_sums, double ratio,
    RandomStream stream, Py_ssize_t* order, signed char* small) except -1

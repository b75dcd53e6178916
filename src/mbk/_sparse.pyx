"""The CSR kernel family: centers held feature-major (FeatureMajorCenters), the nearest-center
assignment with scikit-learn's sparse inertia, distances to every center, the center update
in scikit-learn's order, the mini-batch step made of them, and the reassignment of small
centers onto CSR rows. Declarations shared with the other modules are in _sparse.pxd; the
entry points that check their arguments and raise are in _core (and the loops' scheduled step
in _sculley_loop).

Each worker has one body per float type and per index type (fused ``floating`` and
``csr_index``) and follows the dense family's rules for thread-count invariance: rows in fixed
chunks of CHUNK_ROWS, chunk inertias summed in chunk order, every value computed by one thread
in a fixed order (the update: each feature by the thread that takes its range of features; the
norms: partial sums over fixed ranges of features, added in range order). Since no result
depends on which thread takes a work item, the parallel loops hand items out dynamically: on
a shared machine, a thread the OS (or the hypervisor) holds back takes fewer of them, instead
of making the others wait for its static share.

Why feature-major: a stored entry (column f, value x) adds x * c[j, f] to its row's dot
product with every center j. Row-major, those are k reads n_features values apart (a cache
miss each, on large problems); feature-major, one run of k values. The products are summed
over the row's stored entries in stored order, center by center, as scikit-learn sums them,
so the labels keep scikit-learn's bits; and the update, which rescales every feature of every
center that received rows (that is what keeps scikit-learn's bits there), is one pass over
the same layout, so the centers are transposed once per public call, not once per step.
"""

from cython.parallel cimport prange, threadid
from libc.float cimport DBL_MAX, FLT_MAX
from libc.stdint cimport int32_t, int64_t, uintptr_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memset

from mbk._dense cimport _restart_small_weights, _small_centers, active_kernels
from mbk._kernels cimport mbk_prefetch
from mbk._rows cimport CHUNK_ROWS, _csr_row, _n_chunks, _round_up, _weight
from mbk._tuning cimport CSR_PREFETCH_BYTES, threads_for

import numpy as np

# The inner loops per instruction set (the variant follows the dense family's).
cdef extern from "_csr_tiles.h":
    int mbk_csr_level(const char* name) noexcept nogil
    void mbk_csr_dots(int level, bint is_double, bint wide_index, const void* data,
                      const void* indices, Py_ssize_t start, Py_ssize_t end, const void* next,
                      Py_ssize_t n_next, Py_ssize_t ahead, const void* values,
                      Py_ssize_t n_padded, void* dots) noexcept nogil
    void mbk_csr_update(int level, bint is_double, void* values, Py_ssize_t n_padded,
                        Py_ssize_t start, Py_ssize_t end, const int32_t* slots,
                        const void* entry_values, Py_ssize_t n_entries,
                        const double* scale_in, const double* alpha, double* acc,
                        void* partial) noexcept nogil
    void mbk_csr_load_group_float(const float* rows, Py_ssize_t n_clusters,
                                  Py_ssize_t n_features, float* values, Py_ssize_t n_padded,
                                  Py_ssize_t first, float* sq_norms) noexcept nogil
    void mbk_csr_load_group_double(const double* rows, Py_ssize_t n_clusters,
                                   Py_ssize_t n_features, double* values, Py_ssize_t n_padded,
                                   Py_ssize_t first, double* sq_norms) noexcept nogil
    void mbk_csr_store_group_float(const float* values, Py_ssize_t n_padded, Py_ssize_t first,
                                   Py_ssize_t n_clusters, Py_ssize_t n_features,
                                   float* rows) noexcept nogil
    void mbk_csr_store_group_double(const double* values, Py_ssize_t n_padded,
                                    Py_ssize_t first, Py_ssize_t n_clusters,
                                    Py_ssize_t n_features, double* rows) noexcept nogil


cdef int _csr_level() noexcept nogil:
    """The instruction-set level of the CSR loops: the dense family's variant in use."""
    return mbk_csr_level(active_kernels().name)


cdef enum:
    # Bytes of one feature's run that a group of centers fills: a cache line.
    LINE_BYTES = 64
    # Features per range of the update and of the norms' partial sums (fixed, so that the
    # order of every sum is the same whatever the thread count).
    FEATURE_RANGE = 256


cdef inline Py_ssize_t _n_ranges(Py_ssize_t n_features) noexcept nogil:
    return (n_features + FEATURE_RANGE - 1) // FEATURE_RANGE


# ---------------------------------------------------------------------------------------------
# Centers held feature-major
# ---------------------------------------------------------------------------------------------

cdef class FeatureMajorCenters:
    """Centers in the CSR kernels' layout for one public call: loaded from row-major centers
    (``FeatureMajorCenters(centers, n_threads)``), moved in place by the steps
    (_sculley_loop.scheduled_step_csr), written back with ``store(centers)``."""

    def __cinit__(self, centers, int n_threads=1):
        cdef Py_ssize_t n_clusters, n_features, itemsize, lanes
        cdef unsigned char[::1] storage
        cdef double[:, ::1] centers64
        cdef float[:, ::1] centers32
        if centers.ndim != 2 or centers.shape[0] < 1:
            raise ValueError("centers must be a 2-D array of at least one center")
        self.dtype = np.dtype(centers.dtype)
        if self.dtype not in (np.float32, np.float64):
            raise TypeError("centers must be float32 or float64")
        self.is_double = self.dtype == np.float64
        n_clusters, n_features = centers.shape
        itemsize = self.dtype.itemsize
        lanes = LINE_BYTES // itemsize
        self.view.n_clusters = n_clusters
        self.view.n_features = n_features
        # Runs of whole cache lines; fewer centers than a line holds are not padded (the
        # padding would be most of the memory).
        self.view.n_padded = _round_up(n_clusters, lanes) if n_clusters >= lanes else n_clusters
        # NumPy's allocation: large blocks get transparent huge pages where the system offers
        # them, which makes their first touch several times cheaper than malloc's pages.
        self.storage = np.empty((n_features + 1) * self.view.n_padded * itemsize + LINE_BYTES,
                                dtype=np.uint8)
        storage = self.storage
        # Each group of centers' run in a feature starts a cache line.
        self.view.values = <void*> ((<uintptr_t> &storage[0] + LINE_BYTES - 1)
                                    & ~(<uintptr_t> (LINE_BYTES - 1)))
        self.view.sq_norms = (<char*> self.view.values
                              + n_features * self.view.n_padded * itemsize)
        if self.is_double:
            centers64 = centers
            with nogil:
                _load(&self.view, centers64, n_threads)
        else:
            centers32 = centers
            with nogil:
                _load(&self.view, centers32, n_threads)

    def __dealloc__(self):
        free(self.scratch.range_offsets)
        free(self.scratch.entry_slots)
        free(self.scratch.entry_values)
        free(self.scratch.scale_in)

    @property
    def shape(self):
        """(n_clusters, n_features) of the centers held."""
        return (self.view.n_clusters, self.view.n_features)

    def to_array(self, int n_threads=1):
        """The centers held, as a new row-major array."""
        out = np.empty(self.shape, dtype=self.dtype)
        self.store(out, n_threads)
        return out

    def store(self, centers, int n_threads=1):
        """Write the centers held into ``centers`` (row-major, same shape and dtype)."""
        cdef double[:, ::1] centers64
        cdef float[:, ::1] centers32
        if tuple(centers.shape) != self.shape or np.dtype(centers.dtype) != self.dtype:
            raise ValueError("centers must have the shape and dtype of the centers held")
        if self.is_double:
            centers64 = centers
            with nogil:
                _store(&self.view, centers64, n_threads)
        else:
            centers32 = centers
            with nogil:
                _store(&self.view, centers32, n_threads)

    cdef int _reserve(self, Py_ssize_t n_entries, int n_threads) except -1:
        """The update's scratch, for a batch of n_entries stored entries on n_threads."""
        cdef CsrUpdateScratch* s = &self.scratch
        cdef Py_ssize_t n_padded = self.view.n_padded, itemsize = self.dtype.itemsize
        cdef Py_ssize_t n_doubles
        cdef void* grown
        n_threads = max(n_threads, 1)
        if s.range_offsets == NULL:
            s.range_offsets = <Py_ssize_t*> malloc(
                (_n_ranges(self.view.n_features) + 1) * sizeof(Py_ssize_t))
            if s.range_offsets == NULL:
                raise MemoryError("mbk: no memory for the CSR update")
        if n_entries > s.capacity or s.entry_slots == NULL:
            n_entries = max(n_entries, 2 * s.capacity, 1)
            grown = realloc(s.entry_slots, n_entries * sizeof(int32_t))
            if grown == NULL:
                raise MemoryError("mbk: no memory for the CSR update")
            s.entry_slots = <int32_t*> grown
            grown = realloc(s.entry_values, n_entries * itemsize)
            if grown == NULL:
                raise MemoryError("mbk: no memory for the CSR update")
            s.entry_values = grown
            s.capacity = n_entries
        if n_threads > s.n_threads or s.scale_in == NULL:
            # scale_in, alpha, batch_weights, the norms' partial sums, then the accumulators
            n_doubles = ((3 + _n_ranges(self.view.n_features)) * n_padded
                         + n_threads * FEATURE_RANGE * n_padded)
            grown = realloc(s.scale_in, n_doubles * sizeof(double))
            if grown == NULL:
                raise MemoryError("mbk: no memory for the CSR update")
            s.scale_in = <double*> grown
            s.alpha = s.scale_in + n_padded
            s.batch_weights = s.alpha + n_padded
            s.range_norms = s.batch_weights + n_padded
            s.acc = <double*> s.range_norms + _n_ranges(self.view.n_features) * n_padded
            s.n_threads = n_threads
        return 0


cdef void _load(
        CsrCenters* centers, const floating[:, ::1] rows, int n_threads) noexcept nogil:
    """Row-major centers into the feature-major layout, with their squared norms (partial sums
    over fixed ranges of FEATURE_RANGE features, in order, added in range order: the order of
    the update's norms and of the reassignment's), a group of centers per work item."""
    cdef Py_ssize_t lanes = LINE_BYTES // sizeof(floating), group
    cdef Py_ssize_t n_groups = (centers.n_padded + lanes - 1) // lanes
    n_threads = threads_for(n_threads, n_groups,
                            0.25 * centers.n_padded * centers.n_features)
    for group in prange(n_groups, schedule="dynamic", num_threads=n_threads):
        if floating is float:
            mbk_csr_load_group_float(&rows[0, 0], centers.n_clusters, centers.n_features,
                                     <float*> centers.values, centers.n_padded, group * lanes,
                                     <float*> centers.sq_norms)
        else:
            mbk_csr_load_group_double(&rows[0, 0], centers.n_clusters, centers.n_features,
                                      <double*> centers.values, centers.n_padded,
                                      group * lanes, <double*> centers.sq_norms)


cdef void _store(
        const CsrCenters* centers, floating[:, ::1] rows, int n_threads) noexcept nogil:
    cdef Py_ssize_t lanes = LINE_BYTES // sizeof(floating), group
    cdef Py_ssize_t n_groups = (centers.n_padded + lanes - 1) // lanes
    n_threads = threads_for(n_threads, n_groups,
                            0.25 * centers.n_padded * centers.n_features)
    for group in prange(n_groups, schedule="dynamic", num_threads=n_threads):
        if floating is float:
            mbk_csr_store_group_float(<const float*> centers.values, centers.n_padded,
                                      group * lanes, centers.n_clusters, centers.n_features,
                                      &rows[0, 0])
        else:
            mbk_csr_store_group_double(<const double*> centers.values, centers.n_padded,
                                       group * lanes, centers.n_clusters, centers.n_features,
                                       &rows[0, 0])


# ---------------------------------------------------------------------------------------------
# Nearest-center assignment and distances
# ---------------------------------------------------------------------------------------------

cdef inline void _csr_dots(
        int level, const floating* data, const csr_index* indices, Py_ssize_t start,
        Py_ssize_t end, const csr_index* next, Py_ssize_t n_next, Py_ssize_t ahead,
        const floating* values, Py_ssize_t n_padded,
        floating* dots,         # OUT (n_padded,) sum over the entries of x * c[j, column]
) noexcept nogil:
    """A row's dot product with every center, over its stored entries in stored order (the
    runs of the entries ``ahead`` places on, into the next row's ``next``, requested)."""
    mbk_csr_dots(level, floating is double, csr_index is int64_t, data, indices, start, end,
                 next, n_next, ahead, values, n_padded, dots)


cdef inline Py_ssize_t _entries_ahead(Py_ssize_t n_padded, size_t itemsize) noexcept nogil:
    """How many entries ahead the dot products request runs: about CSR_PREFETCH_BYTES."""
    return max(1, CSR_PREFETCH_BYTES // (n_padded * itemsize))


cdef inline int _nearest(
        const floating* dots, const floating* sq_norms, Py_ssize_t n_clusters) noexcept nogil:
    """argmin over centers of ||c||^2 - 2 x.c; ties go to the lowest index."""
    cdef floating least = FLT_MAX if floating is float else DBL_MAX, distance
    cdef int label = 0
    cdef Py_ssize_t j
    for j in range(n_clusters):
        distance = sq_norms[j] - 2 * dots[j]
        if distance < least:
            least = distance
            label = <int> j
    return label


cdef inline floating _sparse_sq_distance(
        const floating* data, const csr_index* indices, Py_ssize_t start, Py_ssize_t end,
        const floating* center, Py_ssize_t stride, floating center_sq_norm) noexcept nogil:
    """||x - c||^2 as scikit-learn's sparse inertia computes it: the sum over stored entries
    of (x - c)^2 - c^2, plus ||c||^2, at least 0 (duplicate entries count one by one).
    Feature f of the center is center[f * stride]."""
    cdef floating result = 0, b, t
    cdef Py_ssize_t p
    for p in range(start, end):
        b = center[indices[p] * stride]
        t = data[p] - b
        result += t * t - b * b
    result += center_sq_norm
    return result if result > 0 else 0


cdef double _assign_csr_chunk(
        const CsrRows* rows, const floating* data, const csr_index* indices,
        const csr_index* indptr, const CsrCenters* centers, Py_ssize_t start, Py_ssize_t end,
        int* labels, floating* dots, bint with_inertia) noexcept nogil:
    """Label positions [start, end) of the view; returns their weighted inertia."""
    cdef Py_ssize_t i, r, n_padded = centers.n_padded
    cdef const floating* values = <const floating*> centers.values
    cdef const floating* sq_norms = <const floating*> centers.sq_norms
    cdef int label, level = _csr_level()
    cdef double inertia = 0
    cdef Py_ssize_t next_row, ahead = _entries_ahead(n_padded, sizeof(floating))
    for i in range(start, end):
        r = _csr_row(rows, i)
        next_row = _csr_row(rows, i + 1) if i + 1 < end else r
        if rows.index != NULL and i + 2 < end:
            # Scattered rows: the row after next's place in indptr, and the next row's
            # entries, whose columns the dot products read ahead.
            mbk_prefetch(&indptr[_csr_row(rows, i + 2)])
            mbk_prefetch(indices + indptr[next_row])
            mbk_prefetch(data + indptr[next_row])
        _csr_dots(level, data, indices, indptr[r], indptr[r + 1], indices + indptr[next_row],
                  indptr[next_row + 1] - indptr[next_row] if next_row != r else 0, ahead,
                  values, n_padded, dots)
        label = _nearest(dots, sq_norms, centers.n_clusters)
        labels[i] = label
        if with_inertia:
            inertia += (_sparse_sq_distance(data, indices, indptr[r], indptr[r + 1],
                                            values + label, n_padded, sq_norms[label])
                        * _weight(<const floating*> rows.weights, r))
    return inertia


cdef double _assign_csr(
        const CsrRows* rows,
        const floating* data,              # rows.data, typed
        const csr_index* indices,          # rows.indices, typed
        const csr_index* indptr,           # rows.indptr, typed
        const CsrCenters* centers,
        int* labels,                       # OUT (rows.n_rows,)
        floating* dots,                    # TMP (n_threads, n_padded)
        double* chunk_inertia,             # TMP (n_chunks,)
        int n_threads,
        bint with_inertia,
) noexcept nogil:
    """Label every row of the view; return the weighted inertia (chunks summed in order)."""
    cdef Py_ssize_t chunk, start, n_chunks = _n_chunks(rows.n_rows)
    cdef double inertia = 0
    for chunk in prange(n_chunks, schedule="dynamic", num_threads=n_threads):
        start = chunk * CHUNK_ROWS
        chunk_inertia[chunk] = _assign_csr_chunk(
            rows, data, indices, indptr, centers, start, min(start + CHUNK_ROWS, rows.n_rows),
            labels, dots + threadid() * centers.n_padded, with_inertia)
    for chunk in range(n_chunks):
        inertia += chunk_inertia[chunk]
    return inertia


cdef double _column_norm64(
        const floating* values, Py_ssize_t n_padded, Py_ssize_t n_features,
        Py_ssize_t j) noexcept nogil:
    """Center j's squared norm in float64 (float32 values widened), in _load's order: partial
    sums over the fixed ranges of features, added in range order."""
    cdef Py_ssize_t start, f, range_index
    cdef double norm = 0, partial, v
    for range_index in range(_n_ranges(n_features)):
        start = range_index * FEATURE_RANGE
        partial = 0
        for f in range(start, min(start + FEATURE_RANGE, n_features)):
            v = values[f * n_padded + j]
            partial = partial + v * v
        norm = norm + partial
    return norm


cdef void _double_norms(
        const CsrCenters* centers, bint is_double, double* out) noexcept nogil:
    """The centers' squared norms in float64 (for distances), in _load's order."""
    cdef Py_ssize_t j
    for j in range(centers.n_clusters):
        if is_double:
            out[j] = _column_norm64(<const double*> centers.values, centers.n_padded,
                                    centers.n_features, j)
        else:
            out[j] = _column_norm64(<const float*> centers.values, centers.n_padded,
                                    centers.n_features, j)


cdef void _csr_distance_chunk(
        const CsrRows* rows, const floating* data, const csr_index* indices,
        const csr_index* indptr, const CsrCenters* centers, const double* sq_norms,
        Py_ssize_t start, Py_ssize_t end,
        floating* out,          # OUT (rows.n_rows, n_clusters)
        double* dots,           # TMP (n_padded,)
) noexcept nogil:
    """Squared Euclidean distances of positions [start, end) to every center, as
    scikit-learn's euclidean_distances computes them for sparse rows: max(-2 x.c + ||x||^2 +
    ||c||^2, 0) in float64 (float32 rows and centers widened first), rounded to the output's
    type (the caller takes the square root there). sq_norms: the centers' squared norms in
    float64."""
    cdef Py_ssize_t i, r, p, j, n_clusters = centers.n_clusters, n_padded = centers.n_padded
    cdef const floating* values = <const floating*> centers.values
    cdef const floating* column
    cdef double x, x_sq, distance
    cdef floating* row_out
    for i in range(start, end):
        r = _csr_row(rows, i)
        x_sq = 0
        for j in range(n_padded):
            dots[j] = 0
        for p in range(indptr[r], indptr[r + 1]):
            x = data[p]
            x_sq += x * x
            column = values + indices[p] * n_padded
            for j in range(n_padded):
                dots[j] += <double> column[j] * x
        row_out = out + i * n_clusters
        for j in range(n_clusters):
            distance = -2 * dots[j] + x_sq + sq_norms[j]
            row_out[j] = <floating> (distance if distance > 0 else 0)


# ---------------------------------------------------------------------------------------------
# The update
# ---------------------------------------------------------------------------------------------
#
# scikit-learn's arithmetic and order, feature-major: for a center that received weight W in
# this batch, every feature becomes (c * v + sum of x * w over its batch rows' entries in that
# feature, in batch order and stored order) * (1 / (v + W)), v the running weight (v += W).
# The batch's entries are first grouped by range of FEATURE_RANGE features (a stable counting
# sort), and each range is updated in a block of double sums that stays in cache, so that the
# update is one pass over the centers in memory; a center that received nothing is scaled by
# 1 and 1, which leaves it as it was.

cdef Py_ssize_t _batch_entries(const CsrRows* rows, const csr_index* indptr) noexcept nogil:
    """The number of stored entries in the view's rows."""
    cdef Py_ssize_t i, r, total = 0
    for i in range(rows.n_rows):
        r = _csr_row(rows, i)
        total += indptr[r + 1] - indptr[r]
    return total


cdef void _bucket_entries(
        const CsrRows* rows, const floating* data, const csr_index* indices,
        const csr_index* indptr, const int* labels, CsrUpdateScratch* scratch,
        Py_ssize_t n_padded, Py_ssize_t n_ranges) noexcept nogil:
    """The entries of the rows whose center received weight, grouped by range of features
    (a stable counting sort: batch order, then stored order, within a range): entry_slots and
    entry_values (x * w)."""
    cdef Py_ssize_t i, r, p, b, position
    cdef Py_ssize_t* offsets = scratch.range_offsets
    cdef floating* values = <floating*> scratch.entry_values
    cdef floating w
    cdef int label
    memset(offsets, 0, (n_ranges + 1) * sizeof(Py_ssize_t))
    for i in range(rows.n_rows):
        if scratch.batch_weights[labels[i]] > 0:
            r = _csr_row(rows, i)
            for p in range(indptr[r], indptr[r + 1]):
                offsets[indices[p] // FEATURE_RANGE + 1] += 1
    for b in range(n_ranges):
        offsets[b + 1] += offsets[b]
    for i in range(rows.n_rows):
        label = labels[i]
        if scratch.batch_weights[label] > 0:
            r = _csr_row(rows, i)
            w = _weight(<const floating*> rows.weights, r)
            for p in range(indptr[r], indptr[r + 1]):
                b = indices[p] // FEATURE_RANGE
                position = offsets[b]
                scratch.entry_slots[position] = <int32_t> (
                    (indices[p] - b * FEATURE_RANGE) * n_padded + label)
                values[position] = data[p] * w
                offsets[b] = position + 1
    for b in range(n_ranges, 0, -1):
        offsets[b] = offsets[b - 1]
    offsets[0] = 0


cdef void _update_range(
        CsrCenters* centers, const CsrUpdateScratch* scratch, Py_ssize_t range_index,
        const floating* entry_values, double* acc, int level) noexcept nogil:
    """The update of the features of one range, for every center; its norms' partial sums
    (mbk_csr_update in _csr_tiles.h)."""
    cdef Py_ssize_t n_padded = centers.n_padded
    cdef Py_ssize_t start = range_index * FEATURE_RANGE
    cdef Py_ssize_t end = min(start + FEATURE_RANGE, centers.n_features)
    cdef Py_ssize_t first = scratch.range_offsets[range_index]
    cdef Py_ssize_t n_entries = scratch.range_offsets[range_index + 1] - first
    cdef floating* partial = <floating*> scratch.range_norms + range_index * n_padded
    mbk_csr_update(level, floating is double, centers.values, n_padded, start, end,
                   scratch.entry_slots + first, entry_values + first, n_entries,
                   scratch.scale_in, scratch.alpha, acc, partial)


cdef double _csr_minibatch_step(
        const CsrRows* rows, const floating* data, const csr_index* indices,
        const csr_index* indptr,
        CsrCenters* centers,                 # INOUT moved in place, norms included
        CsrUpdateScratch* scratch,           # TMP reserved for this batch (_reserve)
        double* weight_sums,                 # INOUT (n_clusters,)
        int* labels,                         # OUT (n_batch,)
        floating* dots,                      # TMP (n_threads, n_padded)
        double* chunk_inertia,               # TMP (n_chunks,)
        int n_threads,
) noexcept nogil:
    """Label the batch with the centers, move every center; return the batch inertia."""
    cdef Py_ssize_t n_clusters = centers.n_clusters, n_padded = centers.n_padded, i, j
    cdef Py_ssize_t n_ranges = _n_ranges(centers.n_features), range_index
    cdef double inertia, weight
    cdef floating norm
    cdef floating* partial
    cdef int n_update_threads, level = _csr_level()
    inertia = _assign_csr(rows, data, indices, indptr, centers, labels, dots, chunk_inertia,
                          n_threads, True)
    for j in range(n_padded):
        scratch.batch_weights[j] = 0
        scratch.scale_in[j] = 1
        scratch.alpha[j] = 1
    for i in range(rows.n_rows):
        scratch.batch_weights[labels[i]] += _weight(<const floating*> rows.weights,
                                                    _csr_row(rows, i))
    for j in range(n_clusters):
        weight = scratch.batch_weights[j]
        if weight > 0:
            scratch.scale_in[j] = weight_sums[j]
            weight_sums[j] += weight
            scratch.alpha[j] = 1 / weight_sums[j]
    _bucket_entries(rows, data, indices, indptr, labels, scratch, n_padded, n_ranges)
    n_update_threads = threads_for(min(n_threads, scratch.n_threads), n_ranges,
                                   2.0 * n_padded * centers.n_features)
    for range_index in prange(n_ranges, schedule="dynamic", num_threads=n_update_threads):
        _update_range(centers, scratch, range_index, <const floating*> scratch.entry_values,
                      scratch.acc + threadid() * FEATURE_RANGE * n_padded, level)
    for j in range(n_padded):
        norm = 0
        for range_index in range(n_ranges):
            partial = <floating*> scratch.range_norms + range_index * n_padded
            norm = norm + partial[j]
        (<floating*> centers.sq_norms)[j] = norm
    return inertia


cdef double _csr_center_shift(
        const CsrCenters* centers, const floating* before) noexcept nogil:
    """sum over features and centers of (c - before)^2 (before: a copy of the values)."""
    cdef const floating* values = <const floating*> centers.values
    cdef Py_ssize_t i, n = centers.n_features * centers.n_padded
    cdef double total = 0, diff
    for i in range(n):
        diff = values[i] - before[i]
        total += diff * diff
    return total


# ---------------------------------------------------------------------------------------------
# Reassignment of small centers
# ---------------------------------------------------------------------------------------------

cdef void _zero_columns(
        floating* values, Py_ssize_t n_padded, Py_ssize_t n_features, Py_ssize_t range_index,
        const Py_ssize_t* moved, Py_ssize_t n_moved) noexcept nogil:
    """Zero the moved centers' values in the features of one range."""
    cdef Py_ssize_t f, m, start = range_index * FEATURE_RANGE
    cdef Py_ssize_t end = min(start + FEATURE_RANGE, n_features)
    cdef floating* row
    for f in range(start, end):
        row = values + f * n_padded
        for m in range(n_moved):
            row[moved[m]] = 0


cdef void _range_norms(
        const floating* values, Py_ssize_t n_padded, Py_ssize_t n_features,
        Py_ssize_t range_index, floating* partial) noexcept nogil:
    """Every center's partial squared norm over the features of one range, in order."""
    cdef Py_ssize_t f, j, start = range_index * FEATURE_RANGE
    cdef Py_ssize_t end = min(start + FEATURE_RANGE, n_features)
    cdef const floating* row
    for j in range(n_padded):
        partial[j] = 0
    for f in range(start, end):
        row = values + f * n_padded
        for j in range(n_padded):
            partial[j] = partial[j] + row[j] * row[j]


cdef Py_ssize_t _reassign_small_centers_csr(
        const CsrRows* batch, const floating* data, const csr_index* indices,
        const csr_index* indptr,
        CsrCenters* centers,             # INOUT
        CsrUpdateScratch* scratch,       # TMP reserved for this batch (_reserve)
        double[::1] weight_sums,         # INOUT the running weights
        double ratio,
        RandomStream stream,             # the draws
        Py_ssize_t* order,               # TMP (batch.n_rows,)
        signed char* small,              # TMP (n_clusters,)
        Py_ssize_t* moved,               # TMP (n_clusters,)
        int n_threads,
) except -1:
    """scikit-learn's random reassignment onto CSR batch rows: the same centers onto the same
    rows as for dense ones (_small_centers), each moved center set to its row as scikit-learn
    copies one (zeros, then each stored entry written in stored order: of two entries in the
    same column, the later one stays). Returns how many centers moved.

    Feature-major, a center is a column: the moved centers are zeroed in one pass over the
    features and their norms recomputed in another (_load's order), however many move."""
    cdef Py_ssize_t n_small = _small_centers(weight_sums, ratio, batch.n_rows, stream, order,
                                             small)
    cdef Py_ssize_t j, p, r, range_index, k = 0, n_padded = centers.n_padded
    cdef Py_ssize_t n_ranges = _n_ranges(centers.n_features)
    cdef floating* values = <floating*> centers.values
    cdef floating* sq_norms = <floating*> centers.sq_norms
    cdef floating* partials = <floating*> scratch.range_norms
    cdef floating norm
    if n_small == 0:
        return 0
    for j in range(centers.n_clusters):
        if small[j]:
            moved[k] = j
            k += 1
    n_threads = threads_for(min(n_threads, scratch.n_threads), n_ranges,
                            2.0 * n_padded * centers.n_features)
    with nogil:
        for range_index in prange(n_ranges, schedule="dynamic", num_threads=n_threads):
            _zero_columns(values, n_padded, centers.n_features, range_index, moved, n_small)
        for k in range(n_small):
            r = _csr_row(batch, order[k])
            for p in range(indptr[r], indptr[r + 1]):
                values[indices[p] * n_padded + moved[k]] = data[p]
        for range_index in prange(n_ranges, schedule="dynamic", num_threads=n_threads):
            _range_norms(values, n_padded, centers.n_features, range_index,
                         partials + range_index * n_padded)
        for k in range(n_small):
            norm = 0
            for range_index in range(n_ranges):
                norm = norm + partials[range_index * n_padded + moved[k]]
            sq_norms[moved[k]] = norm
    _restart_small_weights(weight_sums, small, n_small)
    return n_small

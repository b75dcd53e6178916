"""Compiled kernels of mbk.

Everything here is deterministic: random draws happen in Python on a NumPy RandomState, so the
kernels only see row indices. Python validates its inputs once per public call; the ``def``
entry points check shapes, allocate their scratch and raise before releasing the GIL; the
``cdef ... noexcept nogil`` workers run on raw pointers.

Thread-count invariance (same bits for any number of threads) comes from three rules:
- rows are processed in fixed chunks of ``CHUNK_ROWS``; a row only writes its own label;
- per-chunk partial inertias are summed serially in chunk order after the parallel loop;
- the center update is "owner computes": one thread owns a cluster and adds that cluster's
  rows in batch order, so no sum is ever split between threads.

X is read through (row stride, column stride) in elements, so C-ordered, Fortran-ordered,
strided, read-only and memory-mapped arrays are all used in place without a copy.
"""

from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.math cimport INFINITY
from libc.stdlib cimport free, malloc

import numpy as np

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int mbk_omp_max_threads(void) { return omp_get_max_threads(); }
    static const int MBK_OPENMP_ENABLED = 1;
    #else
    static int mbk_omp_max_threads(void) { return 1; }
    static const int MBK_OPENMP_ENABLED = 0;
    #endif
    """
    int mbk_omp_max_threads() noexcept nogil
    const int MBK_OPENMP_ENABLED


cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define mbk_prefetch(address) __builtin_prefetch(address)
    #else
    #define mbk_prefetch(address) ((void)0)
    #endif
    """
    void mbk_prefetch(const void* address) noexcept nogil


# NumPy's bit-generator interface (numpy/random/bitgen.h, a stable C ABI since NumPy 1.17):
# drawing doubles through it continues the very stream RandomState.random_sample reads, so
# the loop below consumes scikit-learn's random numbers in scikit-learn's order without a
# Python call per step.
cdef extern from *:
    """
    #include <stdint.h>
    typedef struct mbk_bitgen {
        void *state;
        uint64_t (*next_uint64)(void *st);
        uint32_t (*next_uint32)(void *st);
        double (*next_double)(void *st);
        uint64_t (*next_raw)(void *st);
    } mbk_bitgen;
    """
    ctypedef struct mbk_bitgen:
        void* state
        double (*next_double)(void* st) noexcept nogil

# The register-blocked micro-kernels (C with vector extensions) and their runtime dispatch.
cdef extern from "_tiles.h":
    # Every kernel reads the tile's rows at x + r * x_stride (see _tile_rows).
    ctypedef void (*mbk_nearest_float_fn)(const float*, Py_ssize_t, const float*, const float*,
                                          Py_ssize_t, Py_ssize_t, int*, float*) noexcept nogil
    ctypedef void (*mbk_nearest_double_fn)(const double*, Py_ssize_t, const double*,
                                           const double*, Py_ssize_t, Py_ssize_t, int*,
                                           double*) noexcept nogil
    ctypedef void (*mbk_distance_float_fn)(const float*, Py_ssize_t, const float*, Py_ssize_t,
                                           Py_ssize_t, Py_ssize_t, int, float*) noexcept nogil
    ctypedef void (*mbk_distance_double_fn)(const double*, Py_ssize_t, const double*,
                                            Py_ssize_t, Py_ssize_t, Py_ssize_t, int,
                                            double*) noexcept nogil
    ctypedef void (*mbk_add_rows_float_fn)(const float*, Py_ssize_t, const Py_ssize_t*,
                                           const Py_ssize_t*, Py_ssize_t, const float*,
                                           Py_ssize_t, double*) noexcept nogil
    ctypedef void (*mbk_add_rows_double_fn)(const double*, Py_ssize_t, const Py_ssize_t*,
                                            const Py_ssize_t*, Py_ssize_t, const double*,
                                            Py_ssize_t, double*) noexcept nogil
    ctypedef int (*mbk_all_finite_float_fn)(const float*, Py_ssize_t) noexcept nogil
    ctypedef int (*mbk_all_finite_double_fn)(const double*, Py_ssize_t) noexcept nogil
    ctypedef void (*mbk_row_distances_float_fn)(const float*, Py_ssize_t, const float*,
                                                const int*, Py_ssize_t, int,
                                                float*) noexcept nogil
    ctypedef void (*mbk_row_distances_double_fn)(const double*, Py_ssize_t, const double*,
                                                 const int*, Py_ssize_t, int,
                                                 double*) noexcept nogil
    ctypedef void (*mbk_candidates_float_fn)(const float*, Py_ssize_t, Py_ssize_t,
                                             const double*, int, const double*, const double*,
                                             const float*, float*, Py_ssize_t) noexcept nogil
    ctypedef void (*mbk_candidates_double_fn)(const double*, Py_ssize_t, Py_ssize_t,
                                              const double*, int, const double*,
                                              const double*, const double*, double*,
                                              Py_ssize_t) noexcept nogil
    ctypedef struct mbk_variant:
        const char* name
        int tile_rows
        Py_ssize_t lanes_float
        Py_ssize_t lanes_double
        Py_ssize_t block_float
        Py_ssize_t block_double
        mbk_nearest_float_fn nearest_float
        mbk_nearest_double_fn nearest_double
        mbk_distance_float_fn distance_float
        mbk_distance_double_fn distance_double
        mbk_add_rows_float_fn add_rows_float
        mbk_add_rows_double_fn add_rows_double
        mbk_all_finite_float_fn all_finite_float
        mbk_all_finite_double_fn all_finite_double
        mbk_row_distances_float_fn row_distances_float
        mbk_row_distances_double_fn row_distances_double
        mbk_candidates_float_fn candidates_float
        mbk_candidates_double_fn candidates_double
        Py_ssize_t candidate_rows
    const int MBK_MAX_TILE_ROWS
    const mbk_variant* mbk_active
    int mbk_supported_variants(const mbk_variant** out) noexcept nogil
    const mbk_variant* mbk_variant_for(Py_ssize_t n_columns, int is_double) noexcept nogil


def available_isas():
    """Kernel variants this CPU can run, best first (e.g. ["avx512", "avx2", "baseline"])."""
    cdef const mbk_variant* variants[4]
    cdef int n = mbk_supported_variants(variants)
    return [variants[i].name.decode() for i in range(n)]


def isa():
    """Name of the widest kernel variant in use: "avx512", "avx2" or "baseline" (chosen at
    import as the best this CPU supports; problems with few centers use a narrower one)."""
    return mbk_active.name.decode()


def isa_for(Py_ssize_t n_clusters, dtype):
    """The variant that runs for n_clusters centers of the given dtype."""
    return mbk_variant_for(n_clusters, dtype == "float64").name.decode()


def use_isa(name):
    """Switch kernel variant (tests and benchmarks); returns the previous one's name."""
    global mbk_active
    cdef const mbk_variant* variants[4]
    cdef int n = mbk_supported_variants(variants), i
    previous = isa()
    for i in range(n):
        if variants[i].name.decode() == name:
            mbk_active = variants[i]
            return previous
    raise ValueError(f"kernel variant {name!r} is not available here; have {available_isas()}")


use_isa(available_isas()[0])
isa_for(1, "float32")  # fills mbk_variant_for's table now, before any thread can race on it


# Rows per parallel work item. Fixed (not derived from the thread count) so that the work
# split, and therefore every rounding, is the same whatever the number of threads.
cdef enum:
    CHUNK_ROWS = 256
    # How far ahead of the tile being computed scattered batch rows are requested: enough
    # rows for a memory latency's worth of arithmetic on small problems.
    PREFETCH_ROWS = 48

OPENMP_ENABLED = bool(MBK_OPENMP_ENABLED)
CHUNK_SIZE = CHUNK_ROWS


def omp_max_threads():
    """Threads an OpenMP region would use now (honours OMP_NUM_THREADS and threadpoolctl)."""
    return mbk_omp_max_threads()


# ---------------------------------------------------------------------------------------------
# Row access
# ---------------------------------------------------------------------------------------------

cdef struct Rows:
    # A view of the data rows the kernel works on: row i of the batch is X[index[i]] (or X[i]
    # when index is NULL), read through element strides.
    const void* data
    Py_ssize_t row_stride
    Py_ssize_t col_stride
    const Py_ssize_t* index
    const void* weights     # NULL means unit weights; indexed like X's rows
    Py_ssize_t n_rows
    Py_ssize_t n_features


cdef struct Sampling:
    # A batch still to be drawn: row i of the batch is the first index with cdf > uniforms[i].
    # The uniforms come from the random stream in order (serially); the searches run inside
    # the parallel assignment, each thread searching the chunks it is about to assign.
    # The cdf is a table (cdf != NULL, with its guide table) or, for equal weights, straight
    # segments (see mbk._sampling.WeightedRowSampler).
    const double* cdf
    const Py_ssize_t* guide
    Py_ssize_t n_buckets
    const Py_ssize_t* segment_starts   # (n_segments + 1,), the last is n_samples
    const double* segment_values
    const double* segment_steps
    Py_ssize_t n_segments
    double last                        # the running sum's last value: cdf = sum / last
    Py_ssize_t n_samples
    const double* uniforms
    Py_ssize_t* rows          # OUT: the batch's rows (the Rows.index being assigned)


cdef inline Py_ssize_t _search_table(const Sampling* sampling, double u) noexcept nogil:
    """First index i with cdf[i] > u (``cdf.searchsorted(u, side="right")``).

    The guide table (Chen & Asau) holds, for each bucket b, the first index with
    cdf > b / n_buckets. n_buckets is a power of two, so the bucket of u, floor(u * n_buckets),
    is computed exactly, and the answer lies in [guide[b], guide[b + 1]]: a few entries,
    searched without branches.
    """
    cdef const double* cdf = sampling.cdf
    cdef Py_ssize_t b = <Py_ssize_t> (u * sampling.n_buckets)
    cdef Py_ssize_t base = sampling.guide[b], n = sampling.guide[b + 1] - base, half
    while n > 1:
        half = n >> 1
        base = base + half if cdf[base + half] <= u else base
        n -= half
    return base + (cdf[base] <= u)


cdef inline double _segment_cdf(const Sampling* sampling, Py_ssize_t i) noexcept nogil:
    """cdf[i] of equal weights, exactly as the table would hold it."""
    cdef const Py_ssize_t* starts = sampling.segment_starts
    cdef Py_ssize_t s = 0, n = sampling.n_segments, half
    while n > 1:
        half = n >> 1
        s = s + half if starts[s + half] <= i else s
        n -= half
    # (i - start) * step is exact (see _constant_step_segments), so is the sum; the division
    # rounds as NumPy's cdf /= cdf[-1] does.
    return (sampling.segment_values[s]
            + <double> (i - starts[s]) * sampling.segment_steps[s]) / sampling.last


cdef inline Py_ssize_t _search_segments(const Sampling* sampling, double u) noexcept nogil:
    """First index i with cdf[i] > u, for equal weights: cdf[i] is within a few rounding
    errors of (i + 1) / n, so floor(u * n) is the answer or next to it."""
    cdef Py_ssize_t i = min(<Py_ssize_t> (u * sampling.n_samples), sampling.n_samples - 1)
    while i > 0 and _segment_cdf(sampling, i - 1) > u:
        i -= 1
    while _segment_cdf(sampling, i) <= u:  # ends: the last entry is 1 > u
        i += 1
    return i


cdef void _search_rows(const Sampling* sampling, Py_ssize_t start, Py_ssize_t end) noexcept nogil:
    """Fill sampling.rows[start:end], in passes that keep many cache misses in flight.

    On a large X the cdf and guide table do not fit in cache: the guide entries of every
    draw are requested first, then the cdf entries they point to, then the searches run.
    """
    cdef const double* cdf = sampling.cdf
    cdef const Py_ssize_t* guide = sampling.guide
    cdef const double* uniforms = sampling.uniforms
    cdef Py_ssize_t n_buckets = sampling.n_buckets, i
    if cdf == NULL:
        for i in range(start, end):
            sampling.rows[i] = _search_segments(sampling, uniforms[i])
        return
    for i in range(start, end):
        mbk_prefetch(&guide[<Py_ssize_t> (uniforms[i] * n_buckets)])
    for i in range(start, end):
        mbk_prefetch(&cdf[guide[<Py_ssize_t> (uniforms[i] * n_buckets)]])
    for i in range(start, end):
        sampling.rows[i] = _search_table(sampling, uniforms[i])


cdef int _prepare_sampling(Sampling* sampling, sampler, Py_ssize_t n_samples) except -1:
    """Point ``sampling`` at a WeightedRowSampler's arrays (which must outlive its use)."""
    cdef const double[::1] cdf, values, steps
    cdef const Py_ssize_t[::1] guide, starts
    cdef Py_ssize_t n_buckets
    if sampler.n_samples != n_samples:
        raise ValueError("the sampler must have one entry per row of X")
    sampling.n_samples = n_samples
    sampling.cdf = NULL
    sampling.guide = NULL
    if sampler.segments is not None:
        starts, values, steps, sampling.last = sampler.segments
        sampling.n_segments = values.shape[0]
        if (sampling.n_segments < 1 or starts.shape[0] != sampling.n_segments + 1
                or steps.shape[0] != sampling.n_segments or starts[0] != 0
                or starts[sampling.n_segments] != n_samples):
            raise ValueError("malformed cdf segments")
        sampling.segment_starts = &starts[0]
        sampling.segment_values = &values[0]
        sampling.segment_steps = &steps[0]
        return 0
    cdf = sampler.cdf
    guide = sampler.guide
    n_buckets = guide.shape[0] - 1
    if cdf.shape[0] != n_samples or n_buckets < 1 or n_buckets & (n_buckets - 1):
        raise ValueError("a cdf of n_samples entries and a guide table of 2**m + 1 entries "
                         "are needed")
    sampling.cdf = &cdf[0]
    sampling.guide = &guide[0]
    sampling.n_buckets = n_buckets
    return 0


cdef inline Py_ssize_t _source_row(const Rows* rows, Py_ssize_t i) noexcept nogil:
    return rows.index[i] if rows.index != NULL else i


cdef inline const floating* _row_ptr(
        const Rows* rows,
        Py_ssize_t r,
        floating* row_buffer,  # TMP (n_features,): used when the columns are not contiguous
) noexcept nogil:
    cdef const floating* base = <const floating*> rows.data + r * rows.row_stride
    cdef Py_ssize_t f
    if rows.col_stride == 1:
        return base
    for f in range(rows.n_features):
        row_buffer[f] = base[f * rows.col_stride]
    return row_buffer


cdef inline floating _weight(const floating* weights, Py_ssize_t r) noexcept nogil:
    # weights is Rows.weights cast to the kernel's type; NULL means unit weights
    if weights == NULL:
        return 1
    return weights[r]


cdef inline floating _sq_euclidean(
        const floating* a, const floating* b, Py_ssize_t n_features) noexcept nogil:
    # One pair of rows, scalar: direct differences grouped by four as scikit-learn's
    # _euclidean_dense_dense (the tiles' inertia uses the vector kernel row_distances,
    # which rounds the same way).
    cdef floating result = 0
    cdef Py_ssize_t f, _, n_blocks = n_features // 4
    for _ in range(n_blocks):
        result += ((a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1])
                   + (a[2] - b[2]) * (a[2] - b[2]) + (a[3] - b[3]) * (a[3] - b[3]))
        a += 4
        b += 4
    for f in range(n_features % 4):
        result += (a[f] - b[f]) * (a[f] - b[f])
    return result


cdef int _fill_rows(
        Rows* rows,
        const floating[:, :] X,
        const Py_ssize_t[::1] sample_indices,   # None: every row of X in order
        object sample_weight,                   # None, or floating[::1] of X's dtype
) except -1:
    cdef Py_ssize_t itemsize = sizeof(floating)
    cdef const floating[::1] weights
    if X.strides[0] % itemsize or X.strides[1] % itemsize:
        raise ValueError("X's strides must be multiples of its item size")
    rows.data = &X[0, 0]
    rows.row_stride = X.strides[0] // itemsize
    rows.col_stride = X.strides[1] // itemsize
    rows.n_features = X.shape[1]
    rows.index = NULL
    rows.n_rows = X.shape[0]
    rows.weights = NULL
    if sample_indices is not None:
        rows.n_rows = sample_indices.shape[0]
        if rows.n_rows > 0:
            rows.index = &sample_indices[0]
    if sample_weight is not None:
        weights = sample_weight
        if weights.shape[0] != X.shape[0]:
            raise ValueError("sample_weight must have one entry per row of X")
        rows.weights = &weights[0]
    return 0


cdef int _check_centers(const floating[:, ::1] centers, Py_ssize_t n_features) except -1:
    if centers.shape[0] < 1:
        raise ValueError("at least one center is needed")
    if centers.shape[1] != n_features:
        raise ValueError(
            f"centers have {centers.shape[1]} features, X has {n_features}")
    return 0


# ---------------------------------------------------------------------------------------------
# Nearest-center assignment
# ---------------------------------------------------------------------------------------------

cdef struct Centers:
    # The centers laid out for the micro-kernels: transposed to (n_features, n_padded) so one
    # vector load reads the same feature of LANES consecutive centers. Padding centers are
    # zeros with an infinite squared norm, so they never win the assignment.
    const void* rows        # (n_clusters, n_features), C order
    void* transposed        # (n_features, n_padded)
    void* sq_norms          # (n_padded,)
    Py_ssize_t n_clusters
    Py_ssize_t n_padded
    const mbk_variant* kernels  # the variant for the whole call, chosen when prepared


cdef inline const mbk_variant* _variant_for(
        Py_ssize_t n_clusters, const floating* witness) noexcept nogil:
    return mbk_variant_for(n_clusters, floating is double)


cdef inline Py_ssize_t _round_up(Py_ssize_t n, Py_ssize_t unit) noexcept nogil:
    return (n + unit - 1) // unit * unit


cdef inline Py_ssize_t _padded_count(Py_ssize_t n_clusters, const floating* witness) noexcept nogil:
    """n_clusters rounded up to a whole number of vector lanes of its kernel variant."""
    cdef const mbk_variant* kernels = _variant_for(n_clusters, witness)
    cdef Py_ssize_t lanes = kernels.lanes_float if floating is float else kernels.lanes_double
    return _round_up(n_clusters, lanes)


cdef int _prepare_centers(
        Centers* prepared,
        const floating[:, ::1] centers,
        floating* storage,      # OUT n_padded * (n_features + 1) values
) noexcept nogil:
    cdef Py_ssize_t n_clusters = centers.shape[0], n_features = centers.shape[1]
    cdef Py_ssize_t n_padded = _padded_count(n_clusters, storage)
    cdef Py_ssize_t j, f
    cdef floating* transposed = storage
    cdef floating* sq_norms = storage + n_padded * n_features
    cdef floating norm
    for j in range(n_padded):
        if j < n_clusters:
            norm = 0
            for f in range(n_features):
                transposed[f * n_padded + j] = centers[j, f]
                norm = norm + centers[j, f] * centers[j, f]
            sq_norms[j] = norm
        else:
            for f in range(n_features):
                transposed[f * n_padded + j] = 0
            sq_norms[j] = INFINITY
    prepared.rows = &centers[0, 0]
    prepared.transposed = transposed
    prepared.sq_norms = sq_norms
    prepared.n_clusters = n_clusters
    prepared.n_padded = n_padded
    prepared.kernels = _variant_for(n_clusters, storage)
    return 0


cdef inline const floating* _tile_rows(
        const Rows* rows,
        const floating* data,   # rows.data, typed
        Py_ssize_t first,       # batch position of the tile's first row
        Py_ssize_t n_in_tile,   # rows present, <= tile_rows
        int tile_rows,
        floating* buffer,       # TMP (tile_rows, n_features)
        Py_ssize_t* stride,     # OUT: the returned tile's row stride, in elements
) noexcept nogil:
    """The tile's rows for a kernel: row r at result + r * stride.

    X itself when the rows are consecutive, with contiguous columns
    (a C-ordered batch is read in place); otherwise the rows copied into ``buffer``, rows
    past n_in_tile zero-filled.
    """
    # Strides and pointers live in locals: stores into the buffer could otherwise alias the
    # Rows struct, and the compiler would reload it on every element.
    cdef Py_ssize_t t, f, n_features = rows.n_features, line
    cdef Py_ssize_t chunk_end = min((first // CHUNK_ROWS + 1) * CHUNK_ROWS, rows.n_rows)
    cdef Py_ssize_t row_stride = rows.row_stride, col_stride = rows.col_stride
    cdef const Py_ssize_t* index = rows.index
    cdef Py_ssize_t row_bytes = n_features * col_stride * sizeof(floating)
    cdef const floating* base
    cdef floating* row
    if index != NULL:
        # Batch rows are scattered over X: ask for the rows PREFETCH_ROWS ahead now, so many
        # cache misses are in flight while this tile computes (the first lines of each row;
        # the hardware prefetcher follows a row once it is being read). A chunk's first tile
        # also asks for the rows before that distance. Only this chunk's rows: the next
        # chunk's may not be drawn yet.
        for t in range(first + PREFETCH_ROWS, min(first + tile_rows + PREFETCH_ROWS, chunk_end)):
            base = data + index[t] * row_stride
            for line in range(0, min(row_bytes, 256), 64):
                mbk_prefetch(<const char*> base + line)
        if first % CHUNK_ROWS == 0:
            for t in range(first, min(first + PREFETCH_ROWS, chunk_end)):
                base = data + index[t] * row_stride
                for line in range(0, min(row_bytes, 256), 64):
                    mbk_prefetch(<const char*> base + line)
    if index == NULL and col_stride == 1 and n_in_tile == tile_rows:
        stride[0] = row_stride
        return data + first * row_stride
    stride[0] = n_features
    for t in range(tile_rows):
        row = buffer + t * n_features
        if t < n_in_tile:
            base = data + (index[first + t] if index != NULL else first + t) * row_stride
            if col_stride == 1:
                for f in range(n_features):
                    row[f] = base[f]
            else:
                for f in range(n_features):
                    row[f] = base[f * col_stride]
        else:
            for f in range(n_features):
                row[f] = 0
    return buffer


cdef double _assign_chunk(
        const Rows* rows,             # IN
        const Centers* centers,       # IN
        Py_ssize_t start,
        Py_ssize_t end,
        int* labels,                  # OUT (n_rows,)
        floating* tile,               # TMP (n_features * MBK_MAX_TILE_ROWS,)
        bint with_inertia,
) noexcept nogil:
    """Label rows [start, end) with their nearest center; return their weighted inertia
    (0 without ``with_inertia``: predict needs only the labels).

    The nearest center minimises ||c||^2 - 2 x.c (||x||^2 is common to all centers); ties go
    to the lowest index (strict <). The inertia uses direct differences to that center.
    """
    cdef Py_ssize_t n_features = rows.n_features
    cdef const floating* center_rows = <const floating*> centers.rows
    cdef int best_index[MBK_MAX_TILE_ROWS]
    cdef floating best_dist[MBK_MAX_TILE_ROWS]
    cdef floating row_dist[MBK_MAX_TILE_ROWS]
    cdef int tile_rows = centers.kernels.tile_rows
    cdef const floating* x
    cdef Py_ssize_t x_stride
    cdef Py_ssize_t i = start, t, n_in_tile
    cdef double inertia = 0
    while i < end:
        n_in_tile = min(<Py_ssize_t> tile_rows, end - i)
        x = _tile_rows(rows, <const floating*> rows.data, i, n_in_tile, tile_rows, tile,
                       &x_stride)
        if floating is float:
            centers.kernels.nearest_float(
                x, x_stride, <const float*> centers.transposed,
                <const float*> centers.sq_norms, n_features, centers.n_padded, best_index,
                best_dist)
        else:
            centers.kernels.nearest_double(
                x, x_stride, <const double*> centers.transposed,
                <const double*> centers.sq_norms, n_features, centers.n_padded, best_index,
                best_dist)
        for t in range(n_in_tile):
            labels[i + t] = best_index[t]
        if with_inertia:
            # Direct differences to the chosen center, rounded as scikit-learn's (not the
            # tile's norm expansion, which cancels badly near a center).
            if floating is float:
                mbk_active.row_distances_float(x, x_stride, center_rows, best_index,
                                               n_features, <int> n_in_tile, row_dist)
            else:
                mbk_active.row_distances_double(x, x_stride, center_rows, best_index,
                                                n_features, <int> n_in_tile, row_dist)
            # Weighted in float64: a float32 product of a large distance and a large
            # weight would overflow to infinity (found by the property tests).
            for t in range(n_in_tile):
                inertia += <double> row_dist[t] * <double> _weight(
                    <const floating*> rows.weights, _source_row(rows, i + t))
        i += n_in_tile
    return inertia


cdef inline Py_ssize_t _tile_scratch(Py_ssize_t n_features) noexcept nogil:
    """Values of per-thread scratch the tile loops need: one tile of copied rows."""
    return MBK_MAX_TILE_ROWS * n_features


cdef double _assign_rows(
        const Rows* rows,
        const Centers* centers,
        int* labels,
        floating* scratch,       # TMP n_threads * _tile_scratch(n_features)
        double* chunk_inertia,   # TMP (n_chunks,)
        int n_threads,
        const Sampling* sampling=NULL,  # a batch to draw first, chunk by chunk; or NULL
        bint with_inertia=True,
        char* chunk_finite=NULL,        # OUT (n_chunks,) whether each chunk's rows are
                                        # finite (scanned as they are read); or NULL
) noexcept nogil:
    cdef Py_ssize_t n_chunks = (rows.n_rows + CHUNK_ROWS - 1) // CHUNK_ROWS
    cdef Py_ssize_t per_thread = _tile_scratch(rows.n_features)
    cdef Py_ssize_t chunk, start, end
    cdef floating* tile
    cdef double inertia = 0
    for chunk in prange(n_chunks, schedule="static", num_threads=n_threads):
        start = chunk * CHUNK_ROWS
        end = min(start + CHUNK_ROWS, rows.n_rows)
        tile = scratch + threadid() * per_thread
        if sampling != NULL:
            _search_rows(sampling, start, end)
        if chunk_finite != NULL:
            chunk_finite[chunk] = _rows_finite(rows, <const floating*> rows.data, start, end)
        chunk_inertia[chunk] = _assign_chunk(
            rows, centers, start, end, labels, tile, with_inertia)
    # Serial, in chunk order: the same sum for any thread count.
    for chunk in range(n_chunks):
        inertia += chunk_inertia[chunk]
    return inertia


cdef class _Scratch:
    """Memory owned for the length of one kernel call, released even on error."""
    cdef void* centers_storage
    cdef void* per_thread
    cdef void* per_chunk
    cdef void* members
    cdef void* extra

    def __dealloc__(self):
        free(self.centers_storage)
        free(self.per_thread)
        free(self.per_chunk)
        free(self.members)
        free(self.extra)

    cdef void* take(self, size_t n_bytes) except NULL:
        cdef void* block = malloc(n_bytes if n_bytes > 0 else 1)
        if block == NULL:
            raise MemoryError(f"mbk kernel could not allocate {n_bytes} bytes of scratch")
        return block


# Below this much arithmetic per thread (multiply-adds), waking another thread costs more
# than it saves, and on a busy machine a descheduled peer can stall a parallel region for a
# whole time slice. Results do not depend on the thread count, so this is only about speed.
cdef double min_work_per_thread = 1 << 18


def set_min_work_per_thread(double work):
    """Set the parallelism threshold (tests use 0 to exercise every thread); return the old."""
    global min_work_per_thread
    old = min_work_per_thread
    min_work_per_thread = work
    return old


cdef inline int _threads_for(int n_threads, Py_ssize_t n_units, double work) noexcept nogil:
    """Threads worth using for n_units independent work items totalling ``work``."""
    cdef double useful = work / min_work_per_thread if min_work_per_thread > 0 else n_threads
    if n_threads > n_units:
        n_threads = <int> n_units
    if n_threads > useful:
        n_threads = <int> useful
    return max(n_threads, 1)


cdef inline int _clamp_threads(
        int n_threads, Py_ssize_t n_rows, Py_ssize_t n_clusters, Py_ssize_t n_features
) noexcept nogil:
    """Threads for a pass over n_rows rows against n_clusters centers."""
    return _threads_for(n_threads, (n_rows + CHUNK_ROWS - 1) // CHUNK_ROWS,
                        <double> n_rows * n_clusters * n_features)


def assign_labels(
        const floating[:, :] X,                              # IN
        const floating[:, ::1] centers,                      # IN
        int[::1] labels,                                     # OUT
        const Py_ssize_t[::1] sample_indices=None,           # IN rows of X to use; None = all
        sample_weight=None,             # IN floating[::1] per row of X; None = unit
        int n_threads=1,
        bint compute_inertia=True,
        bint check_finite=False):
    """Write each row's nearest center to ``labels`` and return the weighted inertia.

    Returns the sum over rows of ``w * ||x - c_label||^2`` as a Python float (accumulated in
    float64 per chunk of 256 rows, chunks added in order); 0.0 without ``compute_inertia``.
    With ``check_finite`` (all rows only), X is scanned for NaN and infinity on the same
    pass, while its rows are in cache, and None is returned if it holds any: the labels are
    then meaningless.
    """
    cdef Rows rows
    cdef Centers prepared
    cdef _Scratch scratch = _Scratch()
    cdef Py_ssize_t n_clusters = centers.shape[0], n_features = X.shape[1], chunk
    cdef Py_ssize_t n_chunks
    cdef char* chunk_finite = NULL
    cdef bint finite = True
    cdef double inertia

    _fill_rows(&rows, X, sample_indices, sample_weight)
    _check_centers(centers, n_features)
    if labels.shape[0] != rows.n_rows:
        raise ValueError("labels must have one entry per assigned row")
    if check_finite and sample_indices is not None:
        raise ValueError("check_finite scans all rows: pass no sample_indices")
    if rows.n_rows == 0:
        return 0.0
    n_chunks = (rows.n_rows + CHUNK_ROWS - 1) // CHUNK_ROWS
    n_threads = _clamp_threads(n_threads, rows.n_rows, n_clusters, n_features)
    scratch.centers_storage = scratch.take(
        _padded_count(n_clusters, <floating*> NULL) * (n_features + 1) * sizeof(floating))
    scratch.per_thread = scratch.take(n_threads * _tile_scratch(n_features) * sizeof(floating))
    scratch.per_chunk = scratch.take(n_chunks * sizeof(double))
    if check_finite:
        scratch.extra = scratch.take(n_chunks)
        chunk_finite = <char*> scratch.extra
    with nogil:
        _prepare_centers(&prepared, centers, <floating*> scratch.centers_storage)
        inertia = _assign_rows(&rows, &prepared, &labels[0], <floating*> scratch.per_thread,
                               <double*> scratch.per_chunk, n_threads, NULL, compute_inertia,
                               chunk_finite)
        if check_finite:
            for chunk in range(n_chunks):
                finite &= chunk_finite[chunk]
    return inertia if finite else None


# ---------------------------------------------------------------------------------------------
# Input scan
# ---------------------------------------------------------------------------------------------

cdef inline bint _finite_run(const floating* x, Py_ssize_t n) noexcept nogil:
    if floating is float:
        return mbk_active.all_finite_float(x, n)
    else:
        return mbk_active.all_finite_double(x, n)


cdef bint _rows_finite(
        const Rows* rows, const floating* data, Py_ssize_t start, Py_ssize_t end,
) noexcept nogil:
    """Whether rows [start, end) of X (data: rows.data, typed) are finite, read in memory
    order where the layout allows."""
    cdef Py_ssize_t n_features = rows.n_features, i, f
    cdef bint finite = True
    if rows.col_stride == 1 and rows.row_stride == n_features:     # C-contiguous
        return _finite_run(data + start * n_features, (end - start) * n_features)
    if rows.row_stride == 1:                                        # columns contiguous
        for f in range(n_features):
            finite &= _finite_run(data + f * rows.col_stride + start, end - start)
        return finite
    if rows.col_stride == 1:                                        # rows contiguous
        for i in range(start, end):
            finite &= _finite_run(data + i * rows.row_stride, n_features)
        return finite
    for i in range(start, end):
        for f in range(n_features):
            finite &= (data[i * rows.row_stride + f * rows.col_stride]
                       - data[i * rows.row_stride + f * rows.col_stride]) == 0
    return finite


def all_finite(const floating[:, :] X, int n_threads=1):
    """Whether X holds no NaN and no infinity (a parallel scan, in place, any layout)."""
    cdef Rows rows
    cdef const Py_ssize_t[::1] every_row = None
    cdef _Scratch scratch = _Scratch()
    cdef Py_ssize_t chunk_rows = max(1, 65536 // max(1, X.shape[1]))
    cdef Py_ssize_t n_chunks = (X.shape[0] + chunk_rows - 1) // chunk_rows, chunk
    cdef char* finite
    cdef bint result = True
    if X.shape[0] == 0 or X.shape[1] == 0:
        return True
    _fill_rows(&rows, X, every_row, None)
    n_threads = _threads_for(n_threads, n_chunks, <double> X.shape[0] * X.shape[1])
    scratch.per_chunk = scratch.take(n_chunks)
    finite = <char*> scratch.per_chunk
    with nogil:
        for chunk in prange(n_chunks, schedule="static", num_threads=n_threads):
            finite[chunk] = _rows_finite(
                &rows, &X[0, 0], chunk * chunk_rows, min((chunk + 1) * chunk_rows, rows.n_rows))
        for chunk in range(n_chunks):
            result &= finite[chunk]
    return result


# ---------------------------------------------------------------------------------------------
# The mini-batch step: assignment, then the per-center incremental mean
# ---------------------------------------------------------------------------------------------

cdef void _update_center(
        const Rows* rows,                  # IN
        const floating* center_old,        # IN (n_features,)
        floating* center_new,              # OUT (n_features,), may alias center_old
        double* weight_sum,                # INOUT: this center's running weight
        const Py_ssize_t* members,         # IN batch positions labelled with this center
        Py_ssize_t n_members,
        double* sums,                      # TMP (n_features,)
        floating* row_buffer,              # TMP (n_features,)
) noexcept nogil:
    """c_new = (c_old * v + sum_i w_i x_i) * (1 / (v + sum_i w_i)).

    The incremental mean with per-center learning rate W / (v + W): the same operations in
    the same order as scikit-learn, with the running weight and the sums kept in float64.
    """
    cdef Py_ssize_t n_features = rows.n_features
    cdef Py_ssize_t q, r, f
    cdef const floating* x
    cdef double w, batch_weight = 0, count = weight_sum[0], alpha

    for q in range(n_members):
        batch_weight += _weight(<const floating*> rows.weights, _source_row(rows, members[q]))
    if not batch_weight > 0:
        # Nothing (or only zero/negative weight) landed here: the center stays put.
        if center_new != center_old:
            for f in range(n_features):
                center_new[f] = center_old[f]
        return
    for f in range(n_features):
        sums[f] = center_old[f] * count
    if rows.col_stride == 1:
        # Rows with contiguous features: the vector kernel, same bits (see add_rows).
        if floating is float:
            mbk_active.add_rows_float(
                <const float*> rows.data, rows.row_stride, rows.index, members, n_members,
                <const float*> rows.weights, n_features, sums)
        else:
            mbk_active.add_rows_double(
                <const double*> rows.data, rows.row_stride, rows.index, members, n_members,
                <const double*> rows.weights, n_features, sums)
    else:
        for q in range(n_members):
            r = _source_row(rows, members[q])
            x = _row_ptr(rows, r, row_buffer)
            w = _weight(<const floating*> rows.weights, r)
            for f in range(n_features):
                sums[f] += x[f] * w
    count = count + batch_weight
    weight_sum[0] = count
    alpha = 1 / count
    for f in range(n_features):
        center_new[f] = <floating> (sums[f] * alpha)


cdef struct StepScratch:
    # Everything a mini-batch step needs besides its inputs, sized once for a batch shape.
    void* centers_storage     # prepared centers (_prepare_centers)
    double* per_thread        # per_thread_stride doubles per thread
    Py_ssize_t per_thread_stride
    double* per_chunk         # one partial inertia per 256-row chunk
    Py_ssize_t* offsets       # (n_clusters + 1,) start of each cluster's rows in members
    Py_ssize_t* members       # (n_batch,) batch positions grouped by label
    int n_threads             # for the assignment
    int n_update_threads      # for the update


cdef int _step_scratch(
        StepScratch* out, _Scratch owner, Py_ssize_t n_batch, Py_ssize_t n_clusters,
        Py_ssize_t n_features, Py_ssize_t padded_clusters, size_t itemsize, int n_threads,
) except -1:
    """Allocate (owned by ``owner``) the scratch of steps on batches of n_batch rows."""
    n_threads = max(n_threads, 1)
    out.n_update_threads = _threads_for(n_threads, n_clusters, <double> n_batch * n_features)
    out.n_threads = _clamp_threads(n_threads, n_batch, n_clusters, n_features)
    # Per thread: a row tile for the assignment, or 2 * n_features doubles (sums, row buffer)
    # for the update; one double per value covers both.
    out.per_thread_stride = max(_tile_scratch(n_features), 2 * n_features)
    owner.centers_storage = owner.take(padded_clusters * (n_features + 1) * itemsize)
    owner.per_thread = owner.take(max(out.n_threads, out.n_update_threads)
                                  * out.per_thread_stride * sizeof(double))
    owner.per_chunk = owner.take(((n_batch + CHUNK_ROWS - 1) // CHUNK_ROWS) * sizeof(double))
    owner.members = owner.take((n_clusters + 1 + n_batch) * sizeof(Py_ssize_t))
    out.centers_storage = owner.centers_storage
    out.per_thread = <double*> owner.per_thread
    out.per_chunk = <double*> owner.per_chunk
    out.offsets = <Py_ssize_t*> owner.members
    out.members = out.offsets + n_clusters + 1
    return 0


cdef double _minibatch_step(
        const Rows* rows,                    # IN the batch
        const floating[:, ::1] centers_old,  # IN
        floating[:, ::1] centers_new,        # OUT (may be centers_old)
        double* weight_sums,                 # INOUT (n_clusters,)
        int* labels,                         # OUT (n_batch,)
        const StepScratch* scratch,          # TMP
        const Sampling* sampling=NULL,       # the batch's rows still to be drawn, or NULL
) noexcept nogil:
    """Label the batch with centers_old, move every center; return the batch inertia."""
    cdef Centers prepared
    cdef Py_ssize_t n_clusters = centers_old.shape[0], n_batch = rows.n_rows
    cdef Py_ssize_t n_features = rows.n_features, i, j
    cdef Py_ssize_t* offsets = scratch.offsets
    cdef Py_ssize_t* members = scratch.members
    cdef double* sums
    cdef double inertia

    _prepare_centers(&prepared, centers_old, <floating*> scratch.centers_storage)
    inertia = _assign_rows(rows, &prepared, labels, <floating*> scratch.per_thread,
                           scratch.per_chunk, scratch.n_threads, sampling)

    # Group batch positions by label, keeping batch order inside each group (counting sort,
    # O(n_batch + n_clusters)): every center then reads only its own rows.
    for j in range(n_clusters + 1):
        offsets[j] = 0
    for i in range(n_batch):
        offsets[labels[i] + 1] += 1
    for j in range(n_clusters):
        offsets[j + 1] += offsets[j]
    for i in range(n_batch):
        members[offsets[labels[i]]] = i
        offsets[labels[i]] += 1
    for j in range(n_clusters, 0, -1):
        offsets[j] = offsets[j - 1]
    offsets[0] = 0

    # Owner computes: the thread that owns center j does all of center j's arithmetic.
    for j in prange(n_clusters, schedule="static", num_threads=scratch.n_update_threads):
        sums = scratch.per_thread + threadid() * scratch.per_thread_stride
        _update_center(rows, &centers_old[j, 0], &centers_new[j, 0], &weight_sums[j],
                       members + offsets[j], offsets[j + 1] - offsets[j], sums,
                       <floating*> (sums + n_features))
    return inertia


cdef int _check_step_shapes(
        const floating[:, ::1] centers_old, floating[:, ::1] centers_new,
        double[::1] weight_sums, int[::1] labels, Py_ssize_t n_batch, Py_ssize_t n_features,
) except -1:
    _check_centers(centers_old, n_features)
    if (centers_new.shape[0] != centers_old.shape[0] or centers_new.shape[1] != n_features
            or weight_sums.shape[0] != centers_old.shape[0]):
        raise ValueError("centers_new and weight_sums must match centers_old")
    if labels.shape[0] != n_batch:
        raise ValueError("labels must have one entry per batch row")
    if n_batch == 0:
        raise ValueError("a mini-batch step needs at least one row")
    return 0


def minibatch_step(
        const floating[:, :] X,                              # IN
        const floating[:, ::1] centers_old,                  # IN
        floating[:, ::1] centers_new,                        # OUT (may be centers_old)
        double[::1] weight_sums,                             # INOUT (n_clusters,)
        int[::1] labels,                                     # OUT (n_batch,)
        const Py_ssize_t[::1] sample_indices=None,           # IN the batch; None = all rows
        sample_weight=None,             # IN floating[::1] per row of X; None = unit
        int n_threads=1):
    """One mini-batch step: label the batch with centers_old, then move each center.

    Returns the batch's weighted inertia against centers_old. Random reassignment of
    low-weight centers is the caller's job (it draws random numbers).
    """
    cdef Rows rows
    cdef StepScratch scratch
    cdef _Scratch owner = _Scratch()
    cdef double inertia
    _fill_rows(&rows, X, sample_indices, sample_weight)
    _check_step_shapes(centers_old, centers_new, weight_sums, labels, rows.n_rows, X.shape[1])
    _step_scratch(&scratch, owner, rows.n_rows, centers_old.shape[0], X.shape[1],
                  _padded_count(centers_old.shape[0], <floating*> NULL), sizeof(floating),
                  n_threads)
    with nogil:
        inertia = _minibatch_step(&rows, centers_old, centers_new, &weight_sums[0],
                                  &labels[0], &scratch)
    return inertia


# ---------------------------------------------------------------------------------------------
# Distances to every center (transform)
# ---------------------------------------------------------------------------------------------

cdef void _distance_chunk(
        const Rows* rows, const Centers* centers, Py_ssize_t start, Py_ssize_t end,
        floating* out,              # OUT (n_rows, n_clusters), C order
        floating* tile,             # TMP (n_features * MBK_MAX_TILE_ROWS,)
) noexcept nogil:
    cdef int tile_rows = centers.kernels.tile_rows
    cdef Py_ssize_t i = start, n_in_tile, x_stride
    cdef Py_ssize_t n_clusters = centers.n_clusters
    cdef const floating* x
    while i < end:
        n_in_tile = min(<Py_ssize_t> tile_rows, end - i)
        x = _tile_rows(rows, <const floating*> rows.data, i, n_in_tile, tile_rows, tile,
                       &x_stride)
        if floating is float:
            centers.kernels.distance_float(
                x, x_stride, <const float*> centers.transposed, rows.n_features,
                centers.n_padded, n_clusters, <int> n_in_tile, out + i * n_clusters)
        else:
            centers.kernels.distance_double(
                x, x_stride, <const double*> centers.transposed, rows.n_features,
                centers.n_padded, n_clusters, <int> n_in_tile, out + i * n_clusters)
        i += n_in_tile


def euclidean_distances(
        const floating[:, :] X,               # IN
        const floating[:, ::1] centers,       # IN
        floating[:, ::1] out,                 # OUT (n_samples, n_clusters)
        int n_threads=1):
    """Euclidean distance from every row of X to every center, by direct differences."""
    cdef Rows rows
    cdef Centers prepared
    cdef _Scratch scratch = _Scratch()
    cdef Py_ssize_t n_clusters = centers.shape[0], n_features = X.shape[1]
    cdef Py_ssize_t chunk, start, end, n_chunks
    cdef const Py_ssize_t[::1] all_rows = None
    _fill_rows(&rows, X, all_rows, None)
    _check_centers(centers, n_features)
    if out.shape[0] != rows.n_rows or out.shape[1] != n_clusters:
        raise ValueError("out must have shape (n_samples, n_clusters)")
    if rows.n_rows == 0:
        return
    n_threads = _clamp_threads(n_threads, rows.n_rows, n_clusters, n_features)
    n_chunks = (rows.n_rows + CHUNK_ROWS - 1) // CHUNK_ROWS
    scratch.centers_storage = scratch.take(
        _padded_count(n_clusters, <floating*> NULL) * (n_features + 1) * sizeof(floating))
    scratch.per_thread = scratch.take(n_threads * _tile_scratch(n_features) * sizeof(floating))
    with nogil:
        _prepare_centers(&prepared, centers, <floating*> scratch.centers_storage)
        for chunk in prange(n_chunks, schedule="static", num_threads=n_threads):
            start = chunk * CHUNK_ROWS
            end = min(start + CHUNK_ROWS, rows.n_rows)
            _distance_chunk(&rows, &prepared, start, end, &out[0, 0],
                            (<floating*> scratch.per_thread)
                            + threadid() * _tile_scratch(n_features))


# ---------------------------------------------------------------------------------------------
# k-means++ candidate distances
# ---------------------------------------------------------------------------------------------

cdef void _pack_rows(
        const Rows* rows, const floating* data, Py_ssize_t start, Py_ssize_t end,
        floating* packed,        # OUT round_up(end - start, block) * n_features values
        Py_ssize_t block,        # rows per block (the kernel's candidate_rows)
) noexcept nogil:
    """Rows [start, end) in blocks of ``block`` rows, each block feature-major (the k-means++
    kernel's layout: one vector load reads one feature of consecutive rows, and a block's
    features follow each other in memory); the last block padded with zero rows."""
    cdef Py_ssize_t i, f, n = end - start, n_features = rows.n_features
    cdef const floating* row
    cdef floating* out
    for i in range(_round_up(n, block)):
        out = packed + (i // block * n_features) * block + i % block
        if i < n:
            row = data + (start + i) * rows.row_stride
            for f in range(n_features):
                out[f * block] = row[f * rows.col_stride]
        else:
            for f in range(n_features):
                out[f * block] = 0


def candidate_block_rows():
    """Rows per block of the k-means++ kernel's packed layout (see pack_rows)."""
    return mbk_active.candidate_rows


def pack_rows(const floating[:, :] X):
    """X in the k-means++ kernel's layout, in X's dtype (see _pack_rows): built once per
    seeding instead of once per candidate. Returns a 1-D array of
    round_up(n_samples, candidate_block_rows()) * n_features values."""
    cdef Rows rows
    cdef const Py_ssize_t[::1] all_rows = None
    cdef Py_ssize_t block = mbk_active.candidate_rows
    packed = np.empty(_round_up(X.shape[0], block) * X.shape[1],
                      dtype=np.float32 if floating is float else np.float64)
    cdef floating[::1] out = packed
    _fill_rows(&rows, X, all_rows, None)
    if X.shape[0] > 0 and X.shape[1] > 0:
        with nogil:
            _pack_rows(&rows, &X[0, 0], 0, X.shape[0], &out[0], block)
    return packed


def weighted_cumsum(
        const floating[::1] weights, const floating[::1] values, floating[::1] out):
    """``out = np.cumsum(weights * values)`` with NumPy's rounding: each product rounded to
    the dtype, then added one after another in the dtype; without the temporary."""
    cdef Py_ssize_t i, n = out.shape[0]
    cdef floating total = 0, product
    if weights.shape[0] != n or values.shape[0] != n:
        raise ValueError("weights, values and out must have the same length")
    with nogil:
        for i in range(n):
            product = weights[i] * values[i]
            total = total + product
            out[i] = total


def kmeanspp_distances(
        const floating[:, :] X,                 # IN (n_samples, n_features)
        packed,                                 # IN pack_rows(X), or None
        const double[::1] x_sq_norms,           # IN (n_samples,) in float64
        const Py_ssize_t[::1] candidates,       # IN (n_candidates,) rows of X
        const double[::1] candidate_sq_norms,   # IN (n_candidates,) in float64
        closest,                                # IN floating[::1] (n_samples,) or None
        floating[:, ::1] out,                   # OUT (n_candidates, n_samples)
        int n_threads=1):
    """Squared distances from candidate seeds to every row, as scikit-learn's k-means++.

    ``out[cand, i] = min(closest[i], max(0, (-2 c_l.x_i + ||c_l||^2) + ||x_i||^2))`` with the
    arithmetic in float64 (float32 data is widened, as scikit-learn does) and the result
    rounded to X's dtype. Only the dot products are computed differently (accumulated
    feature by feature instead of by BLAS), so the distances agree with scikit-learn's to the
    last bit or so, and the seeds drawn from them are the same.

    The kernel reads X packed in blocks of rows (rows in vector lanes): from ``packed`` when
    given, else each thread packs its chunk of rows on every call.
    """
    cdef Rows rows
    cdef _Scratch owner = _Scratch()
    cdef Py_ssize_t n_samples = X.shape[0], n_features = X.shape[1]
    cdef Py_ssize_t n_candidates = candidates.shape[0], cand, f, chunk, start, end, n_chunks
    cdef Py_ssize_t block = mbk_active.candidate_rows
    cdef Py_ssize_t chunk_rows = _round_up(CHUNK_ROWS, block), per_thread
    cdef double* candidate_rows
    cdef floating* xt
    cdef const floating[::1] packed_view
    cdef const floating* packed_ptr = NULL
    cdef const floating[::1] closest_view
    cdef const floating* closest_ptr = NULL
    cdef const Py_ssize_t[::1] all_rows = None
    _fill_rows(&rows, X, all_rows, None)
    if x_sq_norms.shape[0] != n_samples or candidate_sq_norms.shape[0] != n_candidates:
        raise ValueError("one squared norm per row and per candidate is needed")
    if out.shape[0] != n_candidates or out.shape[1] != n_samples or n_candidates < 1:
        raise ValueError("out must have shape (n_candidates, n_samples), n_candidates >= 1")
    for cand in range(n_candidates):
        if not 0 <= candidates[cand] < n_samples:
            raise ValueError("candidate rows must be rows of X")
    if closest is not None:
        closest_view = closest
        if closest_view.shape[0] != n_samples:
            raise ValueError("closest must have one entry per row of X")
        closest_ptr = &closest_view[0]
    if packed is not None:
        packed_view = packed
        if packed_view.shape[0] != _round_up(n_samples, block) * n_features:
            raise ValueError("packed must be pack_rows(X) for the kernel variant in use")
        packed_ptr = &packed_view[0]
    n_threads = _clamp_threads(n_threads, n_samples, n_candidates, n_features)
    n_chunks = (n_samples + chunk_rows - 1) // chunk_rows
    per_thread = 0 if packed is not None else n_features * chunk_rows
    owner.centers_storage = owner.take(n_candidates * n_features * sizeof(double))
    owner.per_thread = owner.take(n_threads * per_thread * sizeof(floating))
    candidate_rows = <double*> owner.centers_storage
    with nogil:
        for cand in range(n_candidates):
            for f in range(n_features):
                candidate_rows[cand * n_features + f] = X[candidates[cand], f]
        for chunk in prange(n_chunks, schedule="static", num_threads=n_threads):
            start = chunk * chunk_rows
            end = min(start + chunk_rows, n_samples)
            if packed_ptr != NULL:
                xt = <floating*> packed_ptr + start * n_features
            else:
                xt = (<floating*> owner.per_thread) + threadid() * per_thread
                _pack_rows(&rows, &X[0, 0], start, end, xt, block)
            if floating is float:
                mbk_active.candidates_float(
                    xt, end - start, n_features, candidate_rows, <int> n_candidates,
                    &candidate_sq_norms[0], &x_sq_norms[start],
                    closest_ptr + start if closest_ptr != NULL else NULL,
                    &out[0, start], n_samples)
            else:
                mbk_active.candidates_double(
                    xt, end - start, n_features, candidate_rows, <int> n_candidates,
                    &candidate_sq_norms[0], &x_sq_norms[start],
                    closest_ptr + start if closest_ptr != NULL else NULL,
                    &out[0, start], n_samples)


# ---------------------------------------------------------------------------------------------
# Drawing a batch outside fit (WeightedRowSampler.draw)
# ---------------------------------------------------------------------------------------------

def draw_rows(
        sampler,                          # IN a mbk._sampling.WeightedRowSampler
        const double[::1] uniforms,       # IN draws in [0, 1)
        Py_ssize_t[::1] rows):            # OUT (len(uniforms),)
    """rows[i] = first index with cdf > uniforms[i], by the sampler's search."""
    cdef Sampling sampling
    if rows.shape[0] != uniforms.shape[0]:
        raise ValueError("rows must have one entry per uniform draw")
    _prepare_sampling(&sampling, sampler, sampler.n_samples)
    if rows.shape[0] == 0:
        return
    sampling.uniforms = &uniforms[0]
    sampling.rows = &rows[0]
    with nogil:
        _search_rows(&sampling, 0, rows.shape[0])


# ---------------------------------------------------------------------------------------------
# The fit loop
# ---------------------------------------------------------------------------------------------

from cpython.exc cimport PyErr_CheckSignals
from cpython.pycapsule cimport PyCapsule_GetPointer


cdef mbk_bitgen* _bitgen_of(random_state) except NULL:
    return <mbk_bitgen*> PyCapsule_GetPointer(random_state._bit_generator.capsule,
                                              b"BitGenerator")


def random_sample(random_state, Py_ssize_t n):
    """n doubles from the bit generator (what ``random_state.random_sample(n)`` returns)."""
    cdef mbk_bitgen* bitgen = _bitgen_of(random_state)
    cdef Py_ssize_t i
    out = [0.0] * n
    with random_state._bit_generator.lock:
        for i in range(n):
            out[i] = bitgen.next_double(bitgen.state)
    return out


cdef bint _reassign_due(
        const double[::1] counts, Py_ssize_t* n_since, Py_ssize_t batch_size,
) noexcept nogil:
    """scikit-learn's schedule: reassign when a center is empty or every 10 * k rows."""
    cdef Py_ssize_t j, n_clusters = counts.shape[0]
    n_since[0] += batch_size
    for j in range(n_clusters):
        if counts[j] == 0:
            n_since[0] = 0
            return True
    if n_since[0] >= 10 * n_clusters:
        n_since[0] = 0
        return True
    return False


def reassign_due(const double[::1] counts, Py_ssize_t n_since, Py_ssize_t batch_size):
    """(due, new n_since): whether this step reassigns small centers (for partial_fit)."""
    due = _reassign_due(counts, &n_since, batch_size)
    return due, n_since


cdef bint _any_small(const double[::1] counts, double ratio) noexcept nogil:
    """Whether any count is below ratio * max(counts) (a reassignment has work to do)."""
    cdef Py_ssize_t j
    cdef double largest = counts[0]
    for j in range(1, counts.shape[0]):
        largest = max(largest, counts[j])
    for j in range(counts.shape[0]):
        if counts[j] < ratio * largest:
            return True
    return False


cdef class EarlyStopping:
    """scikit-learn's stopping rules on the batch inertia: EWA stall, or small center moves.

    The first step's inertia is ignored (it measures the initialisation). The smoothed
    inertia is ewa <- ewa * (1 - a) + inertia * a with a = min(2 * batch / (n + 1), 1).
    """
    cdef public object ewa_inertia, ewa_inertia_min
    cdef public Py_ssize_t no_improvement
    cdef double alpha, tol
    cdef Py_ssize_t batch_size, n_steps, max_no_improvement
    cdef int verbose

    def __init__(self, Py_ssize_t batch_size, Py_ssize_t n_samples, Py_ssize_t n_steps,
                 double tol, max_no_improvement, int verbose):
        self.ewa_inertia = None
        self.ewa_inertia_min = None
        self.no_improvement = 0
        self.alpha = min(batch_size * 2.0 / (n_samples + 1), 1.0)
        self.tol = tol
        self.batch_size = batch_size
        self.n_steps = n_steps
        self.max_no_improvement = -1 if max_no_improvement is None else max_no_improvement
        self.verbose = verbose

    cdef bint converged(self, Py_ssize_t step, double batch_inertia,
                        double centers_squared_diff) except -1:
        cdef double mean_inertia = batch_inertia / self.batch_size
        step += 1
        if step == 1:
            if self.verbose:
                print(f"Minibatch step {step}/{self.n_steps}: mean batch inertia: "
                      f"{mean_inertia}")
            return False
        if self.ewa_inertia is None:
            self.ewa_inertia = mean_inertia
        else:
            self.ewa_inertia = (self.ewa_inertia * (1 - self.alpha)
                                + mean_inertia * self.alpha)
        if self.verbose:
            print(f"Minibatch step {step}/{self.n_steps}: mean batch inertia: "
                  f"{mean_inertia}, ewa inertia: {self.ewa_inertia}")
        if self.tol > 0.0 and centers_squared_diff <= self.tol:
            if self.verbose:
                print(f"Converged (small centers change) at step {step}/{self.n_steps}")
            return True
        if self.ewa_inertia_min is None or self.ewa_inertia < self.ewa_inertia_min:
            self.no_improvement = 0
            self.ewa_inertia_min = self.ewa_inertia
        else:
            self.no_improvement += 1
        if 0 <= self.max_no_improvement <= self.no_improvement:
            if self.verbose:
                print("Converged (lack of improvement in inertia) at step "
                      f"{step}/{self.n_steps}")
            return True
        return False


cdef double _squared_change(const floating[:, ::1] a, const floating[:, ::1] b) noexcept nogil:
    cdef Py_ssize_t j, f
    cdef double total = 0, diff
    for j in range(a.shape[0]):
        for f in range(a.shape[1]):
            diff = a[j, f] - b[j, f]
            total += diff * diff
    return total


def fit_steps(
        const floating[:, :] X,                  # IN training data
        floating[:, ::1] centers_a,              # INOUT current centers
        floating[:, ::1] centers_b,              # TMP the other buffer
        double[::1] counts,                      # INOUT running weight per center
        Py_ssize_t[::1] rows,                    # TMP (batch_size,) the batch's rows
        int[::1] labels,                         # TMP (batch_size,)
        sampler,                                 # IN a mbk._sampling.WeightedRowSampler
        random_state,                            # IN/OUT numpy.random.RandomState
        EarlyStopping stopping,                  # INOUT
        reassign,                                # callable(buffer_index): reassign on a buffer
        Py_ssize_t n_steps,
        Py_ssize_t n_since_last_reassign,
        double reassignment_ratio,
        bint track_center_change,
        int n_threads):
    """Run fit's steps until n_steps or early stopping; returns
    (steps run, index of the buffer holding the centers (0: a, 1: b), last batch inertia,
    n_since_last_reassign).

    Each step draws its batch (random_sample(batch) on random_state's stream, searched in
    the sampler's cdf), labels it and moves the centers from one buffer into the other. Reassigning
    small centers draws a data-dependent number of random values: it stays in Python
    (``reassign``), called only on steps where some center is small enough to move.
    """
    cdef Rows batch
    cdef StepScratch scratch
    cdef _Scratch owner = _Scratch()
    cdef mbk_bitgen* bitgen = _bitgen_of(random_state)
    cdef Py_ssize_t batch_size = rows.shape[0]
    cdef Py_ssize_t step = 0, i
    cdef double* uniforms
    cdef Sampling sampling
    cdef floating[:, ::1] current = centers_a
    cdef floating[:, ::1] following = centers_b
    cdef int current_index = 0
    cdef double inertia = 0, change = 0
    cdef bint due
    lock = random_state._bit_generator.lock

    _fill_rows(&batch, X, rows, None)
    _check_step_shapes(centers_a, centers_b, counts, labels, batch_size, X.shape[1])
    _prepare_sampling(&sampling, sampler, X.shape[0])
    _step_scratch(&scratch, owner, batch_size, centers_a.shape[0], X.shape[1],
                  _padded_count(centers_a.shape[0], <floating*> NULL), sizeof(floating),
                  n_threads)
    owner.extra = owner.take(batch_size * sizeof(double))
    uniforms = <double*> owner.extra
    sampling.uniforms = uniforms
    sampling.rows = &rows[0]
    for step in range(n_steps):
        with lock:
            for i in range(batch_size):
                uniforms[i] = bitgen.next_double(bitgen.state)
        due = _reassign_due(counts, &n_since_last_reassign, batch_size)
        with nogil:
            # With several threads, each searches the rows of the chunks it assigns; alone,
            # one pass over the whole batch keeps more cache misses in flight.
            if scratch.n_threads == 1:
                _search_rows(&sampling, 0, batch_size)
            inertia = _minibatch_step(&batch, current, following, &counts[0], &labels[0],
                                      &scratch, &sampling if scratch.n_threads > 1 else NULL)
        if due and reassignment_ratio > 0 and _any_small(counts, reassignment_ratio):
            reassign(1 - current_index)
        if track_center_change:
            change = _squared_change(following, current)
        current, following = following, current
        current_index = 1 - current_index
        # Ctrl-C: Python's handler runs here, between steps, and raises KeyboardInterrupt.
        PyErr_CheckSignals()
        if stopping.converged(step, inertia, change):
            break
    return step + 1, current_index, inertia, n_since_last_reassign


# ---------------------------------------------------------------------------------------------
# Nested mini-batch k-means (Newling & Fleuret 2016): one round on a growing, nested batch
# ---------------------------------------------------------------------------------------------
#
# Batch position i is row order[i] of X; the batch of a round is positions [0, n_batch), which
# holds the previous round's batch, so every batch contains the one before. Each batch
# position keeps its label (-1 until it is first labelled) and bounds on distances (not
# squared): upper[i] >= ||x - c_label||, and, for its "runner" (runner[i], the second nearest
# center when the row was last compared with every center) lower[i] <= ||x - c_runner||, and
# rest[i] <= the distance to every other center. Hamerly's single lower bound is
# min(lower, rest); keeping the runner apart means a moving center only erodes the bounds of
# the rows it is the runner of, plus (through rest, which starts at the third distance) by
# much less than it would the single bound.
# sums[j] and weight_sums[j] hold the weighted sum and weight of the rows currently labelled
# j, so each center is exactly the mean of its batch rows (each row counts once, with its
# current label): on a fixed batch a round is one Lloyd iteration, done incrementally.

from libc.string cimport memcpy
from libc.math cimport sqrt as _sqrt

cdef struct NestedState:
    const Py_ssize_t* order       # (n_samples,) row of X at each batch position
    int* labels                   # (n_samples,) per batch position
    double* upper
    double* lower
    int* runner                   # (n_samples,) the center lower is for
    double* rest
    const double* movement        # (n_clusters,) how far each center moved last round
    const double* half_gap        # (n_clusters,) half the distance to the nearest other center
    double move_max               # the largest movement, and the index and value of the
    Py_ssize_t move_argmax        # second largest: a row's lower bound drops by the largest
    double move_second            # movement among the centers other than its own
    const Py_ssize_t* active      # the round's positions; NULL: every position of the batch
    unsigned char* aside          # (n_samples,) 1: left out of the rounds since the last sweep
    const double* drift           # (n_clusters,) each center's movement since the last sweep
    double drift_max              # the sum of the largest movements since the last sweep
    Py_ssize_t* changed           # (n_samples,) OUT per chunk: positions whose label changed
    int* moved_from               # (n_samples,) OUT previous label of a changed position, or -1
    Py_ssize_t* chunk_changes     # (n_chunks,) OUT how many positions each chunk changed
    Py_ssize_t* chunk_distances   # (n_chunks,) OUT rows compared with every center


cdef enum:
    # Rows with at most this many features, against at least this many centers, are compared
    # with every center by _nearest_two rather than by tiles (measured on California housing:
    # 3 features, faster with 20 centers, slower with 6).
    NESTED_DIRECT_FEATURES = 8
    NESTED_DIRECT_CLUSTERS = 12


cdef inline void _nearest_two(
        const floating* x,            # IN (n_features,)
        const floating* transposed,   # IN (n_features, n_padded) the prepared centers
        Py_ssize_t n_features,
        Py_ssize_t n_padded,
        Py_ssize_t n_clusters,
        floating* sq,                 # TMP (n_clusters,)
        int* best,                    # OUT the nearest center (the lowest index on ties)
        int* next_best,               # OUT the second nearest
        double* first,                # OUT the distances to the nearest, the second nearest
        double* second,               # OUT
        double* third,                # OUT and the third nearest (INFINITY below 3 centers)
) noexcept nogil:
    """Direct squared differences, feature by feature over all centers, then the least three."""
    cdef Py_ssize_t f, j
    cdef floating xf, diff
    cdef const floating* column
    cdef double low = INFINITY, next_low = INFINITY, third_low = INFINITY
    cdef int at = 0, next_at = 0
    for j in range(n_clusters):
        sq[j] = 0
    for f in range(n_features):
        xf = x[f]
        column = transposed + f * n_padded
        for j in range(n_clusters):
            diff = xf - column[j]
            sq[j] += diff * diff
    for j in range(n_clusters):
        _push_three(sq[j], <int> j, &low, &next_low, &third_low, &at, &next_at)
    best[0] = at
    next_best[0] = next_at
    first[0] = _sqrt(low)
    second[0] = _sqrt(next_low)
    third[0] = _sqrt(third_low)


cdef inline void _push_three(
        double value, int j, double* low, double* next_low, double* third_low, int* at,
        int* next_at) noexcept nogil:
    """One more center into the three least values so far (ties keep the lower index).

    Without branches (minima, maxima and conditional moves): where a center ranks is
    unpredictable, and a mispredicted branch costs more than this arithmetic.
    """
    cdef double first = low[0], second = next_low[0]
    cdef double above_first = value if value > first else first
    cdef double above_second = value if value > second else second
    cdef int new_next = at[0] if value < first else j
    third_low[0] = above_second if above_second < third_low[0] else third_low[0]
    next_low[0] = above_first if above_first < second else second
    next_at[0] = new_next if value < second else next_at[0]
    at[0] = j if value < first else at[0]
    low[0] = value if value < first else first


cdef inline void _record_nearest(
        NestedState* state, Py_ssize_t at, int best, int next_best, double first,
        double second, double third, Py_ssize_t start, Py_ssize_t* n_changes) noexcept nogil:
    """Position at's exact label and bounds; a changed label joins its chunk's list."""
    if state.labels[at] < 0:
        state.moved_from[at] = -1
        state.changed[start + n_changes[0]] = at
        n_changes[0] += 1
    elif state.labels[at] != best:
        state.moved_from[at] = state.labels[at]
        state.changed[start + n_changes[0]] = at
        n_changes[0] += 1
    state.labels[at] = best
    state.upper[at] = first
    state.runner[at] = next_best
    state.lower[at] = second
    state.rest[at] = third


cdef void _nested_chunk(
        const Rows* rows,             # IN X with its weights (no index)
        const Centers* centers,       # IN current centers, prepared
        NestedState* state,           # INOUT
        Py_ssize_t chunk,
        Py_ssize_t n_list,            # positions in the round: the active list's or the batch's
        Py_ssize_t* pending,          # TMP (CHUNK_ROWS,) rows of X to compare with all centers
        Py_ssize_t* pending_at,       # TMP (CHUNK_ROWS,) their batch positions
        floating* tile,               # TMP _tile_scratch(n_features)
        floating* distances,          # TMP (MBK_MAX_TILE_ROWS * n_clusters,)
        floating* row_buffer,         # TMP (n_features,)
) noexcept nogil:
    """Label the positions of one chunk of the round, skipping rows whose bounds prove the label.

    Hamerly's test: after the centers moved by p, upper += p[label] and lower -= the largest
    p of another center; the label cannot have changed while upper <= max(lower, half_gap).
    Otherwise upper is tightened to the exact distance and tested again; rows that still fail
    (and rows new to the batch, labelled -1) are compared with every center (by tiles, or
    directly for few features). A row left aside since the last sweep gets the summed
    movements since then instead.
    """
    cdef Py_ssize_t start = chunk * CHUNK_ROWS, end = min(start + CHUNK_ROWS, n_list)
    cdef Py_ssize_t n_features = rows.n_features, n_clusters = centers.n_clusters
    cdef const floating* center_rows = <const floating*> centers.rows
    cdef Py_ssize_t q, i, r, t, j, n_pending = 0, n_in_tile, x_stride, n_changes = 0
    cdef int label, best
    cdef double bound, drop, first, second
    cdef Rows batch
    cdef const floating* x
    cdef int tile_rows = centers.kernels.tile_rows
    # The state's pointers and scalars in locals: the stores below could alias the struct.
    cdef const Py_ssize_t* order = state.order
    cdef const Py_ssize_t* active = state.active
    cdef unsigned char* aside = state.aside
    cdef const int* labels = state.labels
    cdef double* upper = state.upper
    cdef double* lower = state.lower
    cdef int* runner = state.runner
    cdef double* rest = state.rest
    cdef double other, third
    cdef int next_best
    cdef const double* movement = state.movement
    cdef const double* half_gap = state.half_gap
    cdef const double* drift = state.drift
    cdef double move_max = state.move_max, move_second = state.move_second
    cdef double drift_max = state.drift_max
    cdef Py_ssize_t move_argmax = state.move_argmax
    cdef double up
    for q in range(start, end):
        i = active[q] if active != NULL else q
        label = labels[i]
        if label < 0:
            pending[n_pending] = order[i]
            pending_at[n_pending] = i
            n_pending += 1
            continue
        if aside != NULL and aside[i]:
            aside[i] = 0
            up = upper[i] + drift[label]
            bound = lower[i] - drift[runner[i]]
            other = rest[i] - drift_max
        else:
            drop = move_second if label == move_argmax else move_max
            up = upper[i] + movement[label]
            bound = lower[i] - movement[runner[i]]
            other = rest[i] - drop
        lower[i] = bound
        rest[i] = other
        if other < bound:
            bound = other
        if half_gap[label] > bound:
            bound = half_gap[label]
        if up > bound:
            # Tighten: the exact distance to the own center, then to the runner.
            x = _row_ptr(rows, order[i], row_buffer)
            up = _sqrt(<double> _sq_euclidean(x, center_rows + label * n_features, n_features))
            if up > bound and other > lower[i] and runner[i] != label:
                lower[i] = _sqrt(<double> _sq_euclidean(
                    x, center_rows + runner[i] * n_features, n_features))
                bound = lower[i] if lower[i] < other else other
                if half_gap[label] > bound:
                    bound = half_gap[label]
            if up > bound:
                pending[n_pending] = order[i]
                pending_at[n_pending] = i
                n_pending += 1
        upper[i] = up

    # The rows that need every distance: nearest and second nearest.
    if n_features <= NESTED_DIRECT_FEATURES and n_clusters >= NESTED_DIRECT_CLUSTERS:
        # Few features: squared distances row by row, vectorised over the centers, and two
        # square roots per row (the tiles take one per center, which costs more here).
        for t in range(n_pending):
            x = _row_ptr(rows, pending[t], row_buffer)
            _nearest_two(x, <const floating*> centers.transposed, n_features,
                         centers.n_padded, n_clusters, distances, &best, &next_best, &first,
                         &second, &third)
            _record_nearest(state, pending_at[t], best, next_best, first, second, third,
                            start, &n_changes)
        state.chunk_changes[chunk] = n_changes
        state.chunk_distances[chunk] = n_pending
        return
    batch = rows[0]
    batch.index = pending
    batch.n_rows = n_pending
    t = 0
    while t < n_pending:
        n_in_tile = min(<Py_ssize_t> tile_rows, n_pending - t)
        x = _tile_rows(&batch, <const floating*> rows.data, t, n_in_tile, tile_rows, tile,
                       &x_stride)
        if floating is float:
            centers.kernels.distance_float(
                x, x_stride, <const float*> centers.transposed, n_features, centers.n_padded,
                n_clusters, <int> n_in_tile, distances)
        else:
            centers.kernels.distance_double(
                x, x_stride, <const double*> centers.transposed, n_features,
                centers.n_padded, n_clusters, <int> n_in_tile, distances)
        for r in range(n_in_tile):
            first = INFINITY
            second = INFINITY
            third = INFINITY
            best = 0
            next_best = 0
            for j in range(n_clusters):
                _push_three(distances[r * n_clusters + j], <int> j, &first, &second, &third,
                            &best, &next_best)
            _record_nearest(state, pending_at[t + r], best, next_best, first, second, third,
                            start, &n_changes)
        t += n_in_tile
    state.chunk_changes[chunk] = n_changes
    state.chunk_distances[chunk] = n_pending


cdef void _nested_update_center(
        const Rows* rows,                  # IN X with its weights
        const NestedState* state,          # IN labels and order
        Py_ssize_t j,
        const Py_ssize_t* removed,         # IN positions that left center j
        Py_ssize_t n_removed,
        const Py_ssize_t* added,           # IN positions that joined center j
        Py_ssize_t n_added,
        double* sums,                      # INOUT (n_features,) weighted sum of j's rows
        double* weight_sum,                # INOUT j's weight
        Py_ssize_t* count,                 # INOUT j's number of rows
        floating* center,                  # INOUT (n_features,)
        double* movement,                  # OUT how far the center moved
        floating* row_buffer,              # TMP (n_features,)
) noexcept nogil:
    """Take the leaving rows out of center j's sums, put the joining rows in, re-divide.

    Sums and weights are float64; a center that loses all its rows keeps its position (its
    sums restart from exact zeros), and so does one whose rows weigh nothing.
    """
    cdef Py_ssize_t n_features = rows.n_features, q, r, f
    cdef const floating* x
    cdef double w, diff, moved = 0, alpha
    cdef floating value
    for q in range(n_removed):
        r = state.order[removed[q]]
        x = _row_ptr(rows, r, row_buffer)
        w = _weight(<const floating*> rows.weights, r)
        for f in range(n_features):
            sums[f] -= w * x[f]
        weight_sum[0] -= w
    for q in range(n_added):
        r = state.order[added[q]]
        x = _row_ptr(rows, r, row_buffer)
        w = _weight(<const floating*> rows.weights, r)
        for f in range(n_features):
            sums[f] += w * x[f]
        weight_sum[0] += w
    count[0] += n_added - n_removed
    movement[0] = 0
    if count[0] == 0:
        weight_sum[0] = 0
        for f in range(n_features):
            sums[f] = 0
        return
    if not weight_sum[0] > 0 or (n_added == 0 and n_removed == 0):
        return
    alpha = 1 / weight_sum[0]
    for f in range(n_features):
        value = <floating> (sums[f] * alpha)
        diff = <double> value - <double> center[f]
        moved += diff * diff
        center[f] = value
    movement[0] = _sqrt(moved)


cdef Py_ssize_t _group_by(
        const Py_ssize_t* positions, Py_ssize_t n, const int* keys, Py_ssize_t n_keys,
        Py_ssize_t* offsets,      # OUT (n_keys + 1,)
        Py_ssize_t* grouped,      # OUT (n,) positions with key >= 0, grouped by key
) noexcept nogil:
    """Counting sort of positions by keys[position] (negative keys dropped), stable."""
    cdef Py_ssize_t q, j, key, total = 0
    for j in range(n_keys + 1):
        offsets[j] = 0
    for q in range(n):
        key = keys[positions[q]]
        if key >= 0:
            offsets[key + 1] += 1
    for j in range(n_keys):
        offsets[j + 1] += offsets[j]
    for q in range(n):
        key = keys[positions[q]]
        if key >= 0:
            grouped[offsets[key]] = positions[q]
            offsets[key] += 1
            total += 1
    for j in range(n_keys, 0, -1):
        offsets[j] = offsets[j - 1]
    offsets[0] = 0
    return total


cdef bint _batch_used_up(
        const NestedState* state,
        const Rows* rows,
        Py_ssize_t n_batch,
        Py_ssize_t n_clusters,
        const double* weight_sums,     # IN (n_clusters,)
        double rho,
        double* spread,                # TMP (n_clusters,)
        const floating* witness,       # NULL, of X's type (selects the weights' type)
) noexcept nogil:
    """The doubling rule: every center with weight moved less than its standard error / rho.

    sigma_j = sqrt(sum of w * upper^2 over j's positions) / weight_sums[j], summed serially in
    batch order (upper bounds the distance to the center before this round's move).
    """
    cdef Py_ssize_t i, j
    cdef double w
    for j in range(n_clusters):
        spread[j] = 0
    for i in range(n_batch):
        w = _weight(<const floating*> rows.weights, state.order[i])
        spread[state.labels[i]] += w * state.upper[i] * state.upper[i]
    for j in range(n_clusters):
        if weight_sums[j] > 0 and not state.movement[j] * rho < _sqrt(spread[j]) / weight_sums[j]:
            return False
    return True


cdef enum:
    NESTED_MARGIN_BINS = 16
    NESTED_SWEEP_PERIOD = 8    # rounds between sweeps at most
    NESTED_MARGIN_STRIDE = 4   # the margin's histogram reads one position in this many
    NESTED_ROW_WORK = 16       # a row's bound test, in multiply-adds (for the thread count)


cdef inline double _nested_slack(const NestedState* state, Py_ssize_t i) noexcept nogil:
    """How far position i's centers can move before its label could change: max(min(lower,
    rest), half_gap) - upper. A half gap shrinks by at most (own movement + largest movement) / 2
    per round, so it decays no faster than the lower bound does."""
    cdef double bound = min(state.lower[i], state.rest[i])
    cdef double gap = state.half_gap[state.labels[i]]
    return (bound if bound > gap else gap) - state.upper[i]


cdef double _working_set_margin(
        const NestedState* state,
        Py_ssize_t n_batch,
        double step,                  # IN the drift one round is expected to add
        Py_ssize_t* bins,             # TMP (NESTED_MARGIN_BINS,)
        Py_ssize_t* period,           # OUT rounds until the next sweep, at most
) noexcept nogil:
    """The slack margin that minimises the rows visited per round, predicted.

    With margin step * 2^p, the rows with a smaller slack are visited every round and every
    row once per 2^p rounds (the next sweep, if each round adds ``step`` of drift): the cost
    per round is active(p) + n_batch / 2^p. active(p) is estimated from every
    NESTED_MARGIN_STRIDE-th position, binned by the exponent of slack / step. Returns -1
    when fewer than an eighth of the rows would be left aside: then the next round sweeps
    again rather than keep a list of nearly every row.
    """
    cdef Py_ssize_t i, p, best = 0, active = 0, best_active = 0
    cdef unsigned long long bits
    cdef double cost, best_cost = INFINITY, slack, inverse
    period[0] = 1
    if not step > 0:
        return 0
    inverse = 1 / step
    for p in range(NESTED_MARGIN_BINS):
        bins[p] = 0
    i = 0
    while i < n_batch:
        slack = _nested_slack(state, i) * inverse
        if slack <= 1:
            bins[0] += 1
        else:
            # The binary exponent e with 2^(e - 1) <= slack < 2^e, from the bits (as frexp,
            # cheaper); slack > 1 is a normal number, or infinite (the top bin).
            memcpy(&bits, &slack, sizeof(double))
            bins[min(<Py_ssize_t> ((bits >> 52) & 0x7ff) - 1022,
                     <Py_ssize_t> NESTED_MARGIN_BINS - 1)] += 1
        i += NESTED_MARGIN_STRIDE
    for p in range(NESTED_MARGIN_BINS - 1):
        active += bins[p]  # rows with slack < step * 2^p (up to rounding at the edges)
        cost = active * NESTED_MARGIN_STRIDE + <double> n_batch / (1 << p)
        if cost < best_cost:
            best_cost = cost
            best = p
            best_active = active * NESTED_MARGIN_STRIDE
    if 8 * (n_batch - best_active) < n_batch:
        return -1
    # Sweep again after the predicted period (within NESTED_SWEEP_PERIOD): the movements
    # shrink as the run settles, and a new sweep then leaves more rows aside.
    period[0] = min(<Py_ssize_t> 1 << best, <Py_ssize_t> NESTED_SWEEP_PERIOD)

    return step * (1 << best)


cdef enum:
    # Why nested_rounds returned.
    NESTED_ROUND_LIMIT = 0   # max_rounds rounds ran
    NESTED_FIXED_POINT = 1   # a round changed no label: a Lloyd fixed point of the batch
    NESTED_USED_UP = 2       # the doubling rule holds
    NESTED_TOL = 3           # (whole data set) the centers moved by at most tol

# Rounds without the doubling rule (on the whole data set, or settling a seeding on a fixed
# batch) only visit the rows near a boundary ("active"): after a sweep over every row, a row
# whose slack (_nested_slack) is above a margin is left aside, and its label is proven for as
# long as the summed movements since the sweep (its center's, plus the largest of each
# round) stay below the margin; then the next round sweeps. _working_set_margin picks the
# margin. Which rows are aside changes how much work a round does; labels stay exact.


def nested_rounds(
        const floating[:, :] X,                 # IN training data
        const Py_ssize_t[::1] order,            # IN (n_samples,) row of X at each position
        sample_weight,                          # IN floating[::1] per row of X, or None
        floating[:, ::1] centers,               # INOUT (n_clusters, n_features)
        double[:, ::1] sums,                    # INOUT (n_clusters, n_features)
        double[::1] weight_sums,                # INOUT (n_clusters,)
        Py_ssize_t[::1] counts,                 # INOUT (n_clusters,)
        int[::1] labels,                        # INOUT (n_samples,) per batch position
        double[::1] upper,                      # INOUT (n_samples,)
        double[::1] lower,                      # INOUT (n_samples,)
        int[::1] runner,                        # INOUT (n_samples,)
        double[::1] rest,                       # INOUT (n_samples,)
        double[::1] movement,                   # INOUT (n_clusters,) last round's; this one's
        double[::1] half_gap,                   # INOUT (n_clusters,)
        Py_ssize_t[::1] changed,                # TMP (n_samples,)
        int[::1] moved_from,                    # TMP (n_samples,)
        Py_ssize_t n_batch,
        Py_ssize_t max_rounds=1,
        double rho=0,
        double tol=0,
        int n_threads=1):
    """Rounds of nested mini-batch k-means on batch positions [0, n_batch).

    Positions with a label (>= 0) carry bounds from the previous round (whose center
    movement is ``movement``; ``half_gap`` is for the current centers); positions labelled -1
    are new. A round labels every position (bounds skip most old ones), moves each center to
    the mean of its rows, then writes this round's ``movement`` and the new ``half_gap``.

    Rounds run until one changes no label (a Lloyd fixed point of the batch), or, on a part
    of the data set with rho > 0, the doubling rule holds (every center with weight moved by
    less than sigma_j / rho), or, on the whole data set with tol > 0, the summed squared
    movement is at most tol, or max_rounds rounds ran.

    Returns (rounds run, labels changed in the last round (new rows included), rows compared
    with every center over all rounds, why it stopped: 0 round limit, 1 fixed point,
    2 doubling rule, 3 tol). ``order`` must hold rows of X and ``labels`` centers or -1 (not
    checked: the driver, ``_nested.py``, builds them; a check would cost a pass over the
    batch).
    """
    cdef Rows rows
    cdef Centers prepared
    cdef NestedState state
    cdef _Scratch owner = _Scratch()
    cdef Py_ssize_t n_samples = X.shape[0], n_features = X.shape[1]
    cdef Py_ssize_t n_clusters = centers.shape[0], n_padded, per_thread, j, q, i, chunk
    cdef Py_ssize_t n_chunks, n_list, n_changes = 0, n_distances = 0, n_removed, n_added
    cdef Py_ssize_t n_rounds = 0, n_aside = 0, since_sweep = 0, sweep_period = 1
    cdef Py_ssize_t n_full = n_batch, distances_before
    cdef Py_ssize_t* add_offsets
    cdef Py_ssize_t* remove_offsets
    cdef Py_ssize_t* added
    cdef Py_ssize_t* removed
    cdef Py_ssize_t* active_list
    cdef double* drift
    cdef double* spread
    cdef Py_ssize_t bins[NESTED_MARGIN_BINS]
    cdef char* base
    cdef floating* scratch
    cdef int round_threads, update_threads
    cdef int reason = NESTED_ROUND_LIMIT
    cdef bint working_set, sweep = True
    cdef double margin = 0, moved, largest
    cdef const Py_ssize_t[::1] all_rows = None

    _fill_rows(&rows, X, all_rows, sample_weight)
    _check_centers(centers, n_features)
    if not 1 <= n_batch <= n_samples:
        raise ValueError("need 1 <= n_batch <= n_samples")
    if max_rounds < 1:
        raise ValueError("need max_rounds >= 1")
    if order.shape[0] != n_samples:
        raise ValueError("order must have one entry per row of X")
    for name, length in (("labels", labels.shape[0]), ("upper", upper.shape[0]),
                         ("lower", lower.shape[0]), ("runner", runner.shape[0]),
                         ("rest", rest.shape[0]), ("changed", changed.shape[0]),
                         ("moved_from", moved_from.shape[0])):
        if length != n_samples:
            raise ValueError(f"{name} must have one entry per row of X")
    if (sums.shape[0] != n_clusters or sums.shape[1] != n_features
            or weight_sums.shape[0] != n_clusters or counts.shape[0] != n_clusters
            or movement.shape[0] != n_clusters or half_gap.shape[0] != n_clusters):
        raise ValueError("sums, weight_sums, counts, movement and half_gap must match centers")

    # The working set only where the doubling rule (which reads every position's bound) is
    # not used, and when several rounds may run.
    working_set = (n_batch == n_samples or not rho > 0) and max_rounds > 1
    n_padded = _padded_count(n_clusters, <floating*> NULL)
    n_chunks = (n_batch + CHUNK_ROWS - 1) // CHUNK_ROWS
    n_threads = max(_clamp_threads(n_threads, n_batch, n_clusters, n_features), 1)
    # per thread: a row tile, a distance tile, a row buffer, two position lists
    per_thread = ((_tile_scratch(n_features) + MBK_MAX_TILE_ROWS * n_clusters + n_features)
                  * sizeof(floating) + 2 * CHUNK_ROWS * sizeof(Py_ssize_t))
    per_thread = (per_thread + 63) // 64 * 64
    owner.centers_storage = owner.take(n_padded * (n_features + 1) * sizeof(floating))
    owner.per_thread = owner.take(n_threads * per_thread)
    owner.per_chunk = owner.take(2 * n_chunks * sizeof(Py_ssize_t)
                                 + 2 * n_clusters * sizeof(double))
    owner.members = owner.take((2 * (n_clusters + 1) + 2 * n_batch) * sizeof(Py_ssize_t))
    owner.extra = owner.take(
        n_threads * n_features * sizeof(floating)
        + (n_batch * (sizeof(Py_ssize_t) + 1) if working_set else 0))
    add_offsets = <Py_ssize_t*> owner.members
    remove_offsets = add_offsets + n_clusters + 1
    added = remove_offsets + n_clusters + 1
    removed = added + n_batch
    drift = <double*> ((<Py_ssize_t*> owner.per_chunk) + 2 * n_chunks)
    spread = drift + n_clusters
    active_list = <Py_ssize_t*> ((<char*> owner.extra) + n_threads * n_features * sizeof(floating))

    state.order = &order[0]
    state.labels = &labels[0]
    state.upper = &upper[0]
    state.lower = &lower[0]
    state.runner = &runner[0]
    state.rest = &rest[0]
    state.movement = &movement[0]
    state.half_gap = &half_gap[0]
    state.changed = &changed[0]
    state.moved_from = &moved_from[0]
    state.chunk_changes = <Py_ssize_t*> owner.per_chunk
    state.chunk_distances = state.chunk_changes + n_chunks
    state.active = NULL
    state.aside = <unsigned char*> (active_list + n_batch) if working_set else NULL
    state.drift = drift
    state.drift_max = 0
    if working_set:
        for i in range(n_batch):
            state.aside[i] = 0
    for j in range(n_clusters):
        drift[j] = 0

    while True:
        state.move_max = 0
        state.move_argmax = 0
        state.move_second = 0
        for j in range(n_clusters):
            if movement[j] > state.move_max:
                state.move_second = state.move_max
                state.move_max = movement[j]
                state.move_argmax = j
            elif movement[j] > state.move_second:
                state.move_second = movement[j]
        if working_set and n_rounds > 0:
            # Movements since the last sweep; a round within the margin visits the active
            # rows only, one beyond it sweeps (and the rows aside take the summed movements).
            largest = 0
            for j in range(n_clusters):
                drift[j] += movement[j]
                largest = max(largest, drift[j])
            state.drift_max += state.move_max
            since_sweep += 1
            sweep = largest + state.drift_max > margin or since_sweep >= sweep_period
        state.active = NULL if sweep else active_list
        n_list = n_batch if sweep else n_batch - n_aside
        n_chunks = (n_list + CHUNK_ROWS - 1) // CHUNK_ROWS
        # The work of a round: a bound test per row, and the rows compared with every center
        # (as many as last round; every row in a call's first round, which may add rows).
        round_threads = _threads_for(
            n_threads, n_chunks, <double> n_list * NESTED_ROW_WORK
            + <double> min(n_full, n_list) * n_clusters * n_features)
        distances_before = n_distances
        n_changes = 0
        with nogil:
            _prepare_centers(&prepared, centers, <floating*> owner.centers_storage)
            for chunk in prange(n_chunks, schedule="static", num_threads=round_threads):
                base = (<char*> owner.per_thread) + threadid() * per_thread
                scratch = <floating*> (base + 2 * CHUNK_ROWS * sizeof(Py_ssize_t))
                _nested_chunk(&rows, &prepared, &state, chunk, n_list,
                              <Py_ssize_t*> base, (<Py_ssize_t*> base) + CHUNK_ROWS, scratch,
                              scratch + _tile_scratch(n_features),
                              scratch + _tile_scratch(n_features)
                              + MBK_MAX_TILE_ROWS * n_clusters)
            # Changed positions of every chunk, in chunk order (the same for any thread count).
            for chunk in range(n_chunks):
                for q in range(state.chunk_changes[chunk]):
                    changed[n_changes] = changed[chunk * CHUNK_ROWS + q]
                    n_changes += 1
                n_distances += state.chunk_distances[chunk]
            n_full = n_distances - distances_before

            update_threads = _threads_for(n_threads, n_clusters, <double> n_changes * n_features)
            _group_by(&changed[0], n_changes, &labels[0], n_clusters, add_offsets, added)
            _group_by(&changed[0], n_changes, &moved_from[0], n_clusters, remove_offsets,
                      removed)
            # Owner computes: one thread does all of center j's arithmetic, rows in list order.
            for j in prange(n_clusters, schedule="static", num_threads=update_threads):
                n_removed = remove_offsets[j + 1] - remove_offsets[j]
                n_added = add_offsets[j + 1] - add_offsets[j]
                _nested_update_center(
                    &rows, &state, j, removed + remove_offsets[j], n_removed,
                    added + add_offsets[j], n_added, &sums[j, 0], &weight_sums[j], &counts[j],
                    &centers[j, 0], &movement[j],
                    (<floating*> owner.extra) + threadid() * n_features)
        _half_gaps(centers, half_gap, n_threads)
        n_rounds += 1

        if n_changes == 0:
            reason = NESTED_FIXED_POINT
        elif n_batch == n_samples:
            if tol > 0:
                moved = 0
                for j in range(n_clusters):
                    moved += movement[j] * movement[j]
                if moved <= tol:
                    reason = NESTED_TOL
        elif rho > 0 and _batch_used_up(&state, &rows, n_batch, n_clusters, &weight_sums[0],
                                        rho, spread, <floating*> NULL):
            reason = NESTED_USED_UP
        if reason != NESTED_ROUND_LIMIT or n_rounds >= max_rounds:
            break
        if working_set and sweep:
            # After a sweep every bound is current: leave aside the rows with a wide slack.
            largest = 0
            for j in range(n_clusters):
                largest = max(largest, movement[j])
                drift[j] = 0
            state.drift_max = 0
            with nogil:
                margin = _working_set_margin(&state, n_batch, 2 * largest, bins, &sweep_period)
                if margin >= 0:
                    n_aside = 0
                    for i in range(n_batch):
                        if _nested_slack(&state, i) > margin:
                            state.aside[i] = 1
                            n_aside += 1
                        else:
                            active_list[i - n_aside] = i
                    sweep = False
                    since_sweep = 0

    if working_set and not sweep:
        # The rows still aside take the movements since the sweep (all but the last round's,
        # which ``movement`` holds as for every row), so every bound is current again.
        with nogil:
            for i in range(n_batch):
                if state.aside[i]:
                    upper[i] += drift[labels[i]]
                    lower[i] -= drift[runner[i]]
                    rest[i] -= state.drift_max
    return n_rounds, n_changes, n_distances, reason


cdef int _half_gaps(const floating[:, ::1] centers, double[::1] half_gap, int n_threads) except -1:
    """half_gap[j] = half the distance from center j to its nearest other center."""
    cdef Rows rows
    cdef Centers prepared
    cdef _Scratch owner = _Scratch()
    cdef Py_ssize_t n_clusters = centers.shape[0], n_features = centers.shape[1]
    cdef Py_ssize_t chunk, start, end, j, other, n_chunks
    cdef floating* out
    cdef double best
    cdef const Py_ssize_t[::1] all_rows = None
    cdef const floating[:, :] center_view = centers
    if n_clusters == 1:
        half_gap[0] = INFINITY
        return 0
    _fill_rows(&rows, center_view, all_rows, None)
    n_threads = _clamp_threads(n_threads, n_clusters, n_clusters, n_features)
    n_chunks = (n_clusters + CHUNK_ROWS - 1) // CHUNK_ROWS
    owner.centers_storage = owner.take(
        _padded_count(n_clusters, <floating*> NULL) * (n_features + 1) * sizeof(floating))
    owner.per_thread = owner.take(n_threads * _tile_scratch(n_features) * sizeof(floating))
    owner.extra = owner.take(n_clusters * n_clusters * sizeof(floating))
    out = <floating*> owner.extra
    with nogil:
        _prepare_centers(&prepared, centers, <floating*> owner.centers_storage)
        for chunk in prange(n_chunks, schedule="static", num_threads=n_threads):
            start = chunk * CHUNK_ROWS
            end = min(start + CHUNK_ROWS, n_clusters)
            _distance_chunk(&rows, &prepared, start, end, out,
                            (<floating*> owner.per_thread)
                            + threadid() * _tile_scratch(n_features))
        for j in range(n_clusters):
            best = INFINITY
            for other in range(n_clusters):
                if other != j and out[j * n_clusters + other] < best:
                    best = out[j * n_clusters + other]
            half_gap[j] = best / 2
    return 0


def swap_nearest(
        const floating[:, ::1] distances,       # IN (n_rows, n_clusters) to every center
        sample_weight,                          # IN floating[::1] per row, or None
        int[::1] labels,                        # OUT (n_rows,) nearest center
        double[::1] first,                      # OUT (n_rows,) squared distance to it
        double[::1] second,                     # OUT (n_rows,) to the second nearest
        double[::1] cost):                      # OUT (n_rows,) w * first
    """Nearest and second nearest center of every row, from its distances (serial, in order).

    Returns the sum of ``cost`` (the inertia).
    """
    cdef Py_ssize_t n_rows = distances.shape[0], n_clusters = distances.shape[1], i, j
    cdef const floating* weights = NULL
    cdef const floating[::1] w
    cdef double value, low, next_low, third_low, total = 0
    cdef int at, next_at
    if (labels.shape[0] != n_rows or first.shape[0] != n_rows or second.shape[0] != n_rows
            or cost.shape[0] != n_rows):
        raise ValueError("labels, first, second and cost need one entry per row")
    if sample_weight is not None:
        w = sample_weight
        if w.shape[0] != n_rows:
            raise ValueError("sample_weight needs one entry per row")
        weights = &w[0]
    with nogil:
        for i in range(n_rows):
            low = INFINITY
            next_low = INFINITY
            third_low = INFINITY
            at = 0
            next_at = 0
            for j in range(n_clusters):
                value = distances[i, j]
                _push_three(value * value, <int> j, &low, &next_low, &third_low, &at, &next_at)
            labels[i] = at
            first[i] = low
            second[i] = next_low
            cost[i] = _weight(weights, i) * low
            total += cost[i]
    return total


def swap_totals(
        const floating[:, ::1] to_candidates,   # IN (n_rows, n_candidates) distances
        sample_weight,                          # IN floating[::1] per row, or None
        const int[::1] labels,                  # IN (n_rows,) from swap_nearest
        const double[::1] first,                # IN (n_rows,)
        const double[::1] second,               # IN (n_rows,)
        double[:, ::1] totals):                 # OUT (n_clusters, n_candidates)
    """totals[j, c]: the inertia after moving center j to candidate c, before any round.

    Each row keeps min(first, d_c^2), except the rows of center j, which take
    min(second, d_c^2); summed serially in row order.
    """
    cdef Py_ssize_t n_rows = to_candidates.shape[0], n_candidates = to_candidates.shape[1]
    cdef Py_ssize_t n_clusters = totals.shape[0], i, j, c
    cdef const floating* weights = NULL
    cdef const floating[::1] w
    cdef double to_c, kept, w_i
    cdef _Scratch owner = _Scratch()
    cdef double* kept_sums
    if (labels.shape[0] != n_rows or first.shape[0] != n_rows or second.shape[0] != n_rows
            or totals.shape[1] != n_candidates):
        raise ValueError("labels, first, second and totals must match to_candidates")
    for i in range(n_rows):
        if not 0 <= labels[i] < n_clusters:
            raise ValueError("labels must be center indices")
    if sample_weight is not None:
        w = sample_weight
        if w.shape[0] != n_rows:
            raise ValueError("sample_weight needs one entry per row")
        weights = &w[0]
    owner.extra = owner.take(max(n_candidates, 1) * sizeof(double))
    kept_sums = <double*> owner.extra
    with nogil:
        for c in range(n_candidates):
            kept_sums[c] = 0
        for j in range(n_clusters):
            for c in range(n_candidates):
                totals[j, c] = 0
        for i in range(n_rows):
            w_i = _weight(weights, i)
            j = labels[i]
            for c in range(n_candidates):
                to_c = to_candidates[i, c]
                to_c = to_c * to_c
                kept = first[i] if first[i] < to_c else to_c
                kept_sums[c] += w_i * kept
                totals[j, c] += w_i * ((second[i] if second[i] < to_c else to_c) - kept)
        for j in range(n_clusters):
            for c in range(n_candidates):
                totals[j, c] += kept_sums[c]


def labelled_inertia(
        const floating[:, :] X,                 # IN
        const floating[:, ::1] centers,         # IN
        const int[::1] labels,                  # IN (n_samples,) a label per row of X
        sample_weight=None,                     # IN floating[::1] per row of X, or None
        int n_threads=1):
    """sum_i w_i ||x_i - c_labels[i]||^2, by direct differences, chunks summed in order."""
    cdef Rows rows
    cdef _Scratch owner = _Scratch()
    cdef Py_ssize_t n_samples = X.shape[0], n_features = X.shape[1], i, chunk, start, end
    cdef Py_ssize_t n_chunks = (n_samples + CHUNK_ROWS - 1) // CHUNK_ROWS
    cdef const floating* x
    cdef floating* buffer
    cdef double* partial
    cdef double inertia = 0
    cdef const Py_ssize_t[::1] all_rows = None
    _fill_rows(&rows, X, all_rows, sample_weight)
    _check_centers(centers, n_features)
    if labels.shape[0] != n_samples:
        raise ValueError("labels must have one entry per row of X")
    for i in range(n_samples):
        if not 0 <= labels[i] < centers.shape[0]:
            raise ValueError("labels must be center indices")
    n_threads = _threads_for(n_threads, n_chunks, <double> n_samples * n_features)
    owner.per_chunk = owner.take(n_chunks * sizeof(double))
    owner.per_thread = owner.take(n_threads * n_features * sizeof(floating))
    partial = <double*> owner.per_chunk
    with nogil:
        for chunk in prange(n_chunks, schedule="static", num_threads=n_threads):
            start = chunk * CHUNK_ROWS
            end = min(start + CHUNK_ROWS, n_samples)
            buffer = (<floating*> owner.per_thread) + threadid() * n_features
            partial[chunk] = 0
            for i in range(start, end):
                x = _row_ptr(&rows, i, buffer)
                partial[chunk] += _sq_euclidean(x, &centers[labels[i], 0], n_features) * _weight(
                    <const floating*> rows.weights, i)
        for chunk in range(n_chunks):
            inertia += partial[chunk]
    return inertia

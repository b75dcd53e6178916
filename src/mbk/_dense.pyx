"""The dense kernel family: centers prepared for the micro-kernels, the nearest-center
assignment, distances to every center, the NaN/infinity scan, the center update in its two
halves (accumulate, apply), the mini-batch step made of them, and the reassignment of small
centers onto batch rows. Declarations shared with the other modules are in _dense.pxd.

Everything here works on dense row views (_rows.pxd) and is deterministic: random draws come
through a RandomStream (_sampling_kernels), so the kernels only see row indices. The workers
are ``cdef ... noexcept nogil`` on raw pointers; the entry points that check their arguments
and raise are in _core (and fit's loop in _sculley_loop).

Thread-count invariance (same bits for any number of threads) comes from three rules:
- rows are processed in fixed chunks of ``CHUNK_ROWS``; a row only writes its own label;
- per-chunk partial inertias are summed serially in chunk order after the parallel loop;
- the center update is "owner computes": one thread owns a cluster and adds that cluster's
  rows in batch order, so no sum is ever split between threads.
"""

from cython.parallel cimport prange, threadid
from libc.math cimport INFINITY
from libc.stdlib cimport free, malloc

from mbk._kernels cimport mbk_prefetch_row, mbk_prefetch_span, mbk_raise_flag, mbk_flag_raised
from mbk._rows cimport (
    _fill_rows, _n_chunks, _packed_rows, _round_up, _source_row, _weight,
)
from mbk._sampling_kernels cimport _search_rows
from mbk._tuning cimport (
    PREFETCH_ROWS, SCAN_CHUNK_BYTES, SCAN_PIECE_BYTES, clamp_threads, knobs, threads_for,
)

import numpy as np

# The micro-kernels and their runtime dispatch (the types are in _kernels.pxd).
cdef extern from "_tiles.h":
    const mbk_variant* mbk_active
    int mbk_supported_variants(const mbk_variant** out) noexcept nogil
    const mbk_variant* mbk_variant_for(Py_ssize_t n_columns, int is_double) noexcept nogil


# ---------------------------------------------------------------------------------------------
# Kernel variants
# ---------------------------------------------------------------------------------------------

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
    """The variant that runs for n_clusters centers of the given dtype (tests only)."""
    return mbk_variant_for(n_clusters, dtype == "float64").name.decode()


def switch_variant(name):
    """Switch kernel variant; returns the previous one's name (set through
    _tuning.use_isa)."""
    global mbk_active
    cdef const mbk_variant* variants[4]
    cdef int n = mbk_supported_variants(variants), i
    previous = isa()
    for i in range(n):
        if variants[i].name.decode() == name:
            mbk_active = variants[i]
            return previous
    raise ValueError(f"kernel variant {name!r} is not available here; have {available_isas()}")


switch_variant(available_isas()[0])
isa_for(1, "float32")  # fills mbk_variant_for's table now, before any thread can race on it


cdef const mbk_variant* active_kernels() noexcept nogil:
    return mbk_active


cdef const mbk_variant* kernels_for(Py_ssize_t n_columns, bint is_double) noexcept nogil:
    return mbk_variant_for(n_columns, is_double)


# ---------------------------------------------------------------------------------------------
# Scratch memory
# ---------------------------------------------------------------------------------------------

cdef class ScratchArena:
    # Its fields are declared in _dense.pxd.

    def __dealloc__(self):
        cdef Py_ssize_t i
        for i in range(self.n_blocks):
            free(self.blocks[i])

    cdef void* take(self, size_t n_bytes) except NULL:
        """A new block of n_bytes (at least one), owned by the arena."""
        cdef void* block
        if self.n_blocks == ARENA_BLOCKS:
            raise MemoryError("mbk kernel asked for more scratch blocks than an arena holds")
        block = malloc(n_bytes if n_bytes > 0 else 1)
        if block == NULL:
            raise MemoryError(f"mbk kernel could not allocate {n_bytes} bytes of scratch")
        self.blocks[self.n_blocks] = block
        self.n_blocks += 1
        return block


# ---------------------------------------------------------------------------------------------
# Centers
# ---------------------------------------------------------------------------------------------

cdef int _check_centers(const floating[:, ::1] centers, Py_ssize_t n_features) except -1:
    if centers.shape[0] < 1:
        raise ValueError("at least one center is needed")
    if centers.shape[1] != n_features:
        raise ValueError(
            f"centers have {centers.shape[1]} features, X has {n_features}")
    return 0


cdef Py_ssize_t _padded_count(Py_ssize_t n_clusters, bint is_double) noexcept nogil:
    """n_clusters rounded up to a whole number of vector lanes of its kernel variant."""
    cdef const mbk_variant* kernels = kernels_for(n_clusters, is_double)
    return _round_up(n_clusters, kernels.lanes_double if is_double else kernels.lanes_float)


cdef int _prepare_centers(
        Centers* prepared,
        const floating[:, ::1] centers,
        floating* storage,      # OUT n_padded * (n_features + 1) values
) noexcept nogil:
    cdef Py_ssize_t n_clusters = centers.shape[0], n_features = centers.shape[1]
    cdef Py_ssize_t n_padded = _padded_count(n_clusters, floating is double)
    cdef Py_ssize_t j, f, first, last, widest_block
    cdef floating* transposed = storage
    cdef floating* sq_norms = storage + n_padded * n_features
    cdef const floating* rows = &centers[0, 0]
    cdef floating norm
    for j in range(n_padded):
        if j < n_clusters:
            norm = 0
            for f in range(n_features):
                norm = norm + rows[j * n_features + f] * rows[j * n_features + f]
            sq_norms[j] = norm
        else:
            sq_norms[j] = INFINITY
    # The transpose by blocks of 16 centers: each write fills a cache line of one feature's
    # row. Center by center, every write lands in another page (n_padded values apart), which
    # for a thousand centers costs a sizeable part of a step.
    for first in range(0, n_padded, 16):
        last = min(first + 16, n_padded)
        for f in range(n_features):
            for j in range(first, last):
                transposed[f * n_padded + j] = rows[j * n_features + f] if j < n_clusters else 0
    prepared.rows = &centers[0, 0]
    prepared.transposed = transposed
    prepared.sq_norms = sq_norms
    prepared.n_clusters = n_clusters
    prepared.n_padded = n_padded
    prepared.kernels = kernels_for(n_clusters, floating is double)
    if floating is float:
        widest_block = mbk_active.block_float
    else:
        widest_block = mbk_active.block_double
    prepared.few = (knobs().few_centers_kernel and n_features <= MBK_MAX_FEW_FEATURES
                    and n_clusters < widest_block)
    return 0

# ---------------------------------------------------------------------------------------------
# Nearest-center assignment
# ---------------------------------------------------------------------------------------------

cdef const floating* _tile_rows(
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
    cdef Py_ssize_t t, f, n_features = rows.n_features
    cdef Py_ssize_t chunk_end = min((first // CHUNK_ROWS + 1) * CHUNK_ROWS, rows.n_rows)
    cdef Py_ssize_t row_stride = rows.row_stride, col_stride = rows.col_stride
    cdef const Py_ssize_t* index = rows.index
    cdef Py_ssize_t row_bytes = n_features * sizeof(floating)
    cdef const floating* base
    cdef floating* row
    if index != NULL and col_stride != 1:
        # Strided rows (Fortran order): each value's line.
        for t in range(first + PREFETCH_ROWS, min(first + tile_rows + PREFETCH_ROWS, chunk_end)):
            mbk_prefetch_row(data + index[t] * row_stride, n_features, col_stride,
                             sizeof(floating))
        if first % CHUNK_ROWS == 0:
            for t in range(first, min(first + PREFETCH_ROWS, chunk_end)):
                mbk_prefetch_row(data + index[t] * row_stride, n_features, col_stride,
                                 sizeof(floating))
    elif index != NULL:
        # Batch rows are scattered over X: ask for the rows PREFETCH_ROWS ahead now, so many
        # cache misses are in flight while this tile computes. A chunk's first tile also asks
        # for the rows before that distance. Only this chunk's rows: the next chunk's may not
        # be drawn yet.
        for t in range(first + PREFETCH_ROWS, min(first + tile_rows + PREFETCH_ROWS, chunk_end)):
            mbk_prefetch_span(data + index[t] * row_stride, row_bytes)
        if first % CHUNK_ROWS == 0:
            for t in range(first, min(first + PREFETCH_ROWS, chunk_end)):
                mbk_prefetch_span(data + index[t] * row_stride, row_bytes)
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


cdef void _copy_rows(
        const Rows* rows, Py_ssize_t start, Py_ssize_t end,
        floating* out,                # OUT (end - start, n_features)
) noexcept nogil:
    """Rows [start, end) of the batch, one after another (rows are asked for 16 ahead)."""
    cdef Py_ssize_t t, f, n_features = rows.n_features
    cdef const floating* x
    cdef const floating* data = <const floating*> rows.data
    for t in range(start, end):
        if t + 16 < end:
            mbk_prefetch_row(data + _source_row(rows, t + 16) * rows.row_stride, n_features,
                             rows.col_stride, sizeof(floating))
        x = data + _source_row(rows, t) * rows.row_stride
        for f in range(n_features):
            out[(t - start) * n_features + f] = x[f * rows.col_stride]


cdef double _assign_chunk(
        const Rows* rows,             # IN
        const Centers* centers,       # IN
        Py_ssize_t start,
        Py_ssize_t end,
        int* labels,                  # OUT (n_rows,)
        floating* tile,               # TMP (n_features * MBK_MAX_TILE_ROWS,)
        bint with_inertia,
        floating* packed,             # OUT (n_rows, n_features) the rows, in batch order;
                                      # or NULL
) noexcept nogil:
    """Label rows [start, end) with their nearest center; return their weighted inertia
    (0 without ``with_inertia``: predict needs only the labels).

    With ``packed``, the rows are also copied there as they are read (the tiles are copied
    there in the first place): the center update then reads them from one small block of
    memory rather than from all over X.

    The nearest center minimises ||c||^2 - 2 x.c (||x||^2 is common to all centers); ties go
    to the lowest index (strict <). The inertia uses direct differences to that center.
    """
    cdef Py_ssize_t n_features = rows.n_features
    cdef const floating* center_rows = <const floating*> centers.rows
    cdef int best_index[MBK_MAX_TILE_ROWS]
    cdef floating best_dist[MBK_MAX_TILE_ROWS]
    cdef int tile_rows = centers.kernels.tile_rows
    cdef const floating* x
    cdef Py_ssize_t x_stride
    cdef Py_ssize_t i = start, t, f, n_in_tile
    cdef double inertia = 0
    cdef floating chunk_dist[CHUNK_ROWS]
    cdef floating* buffer
    cdef const floating* data
    # The chunk's rows in one block after the tiles (packed, or X itself), for the inertia's
    # distances in one call: by tile, 12 rows filled 16 lanes.
    cdef const floating* chunk_x = NULL
    cdef Py_ssize_t chunk_stride = n_features
    if packed != NULL:
        chunk_x = packed + start * n_features
    elif rows.index == NULL and rows.col_stride == 1:
        chunk_x = <const floating*> rows.data + start * rows.row_stride
        chunk_stride = rows.row_stride
    if centers.few:
        if rows.index != NULL or rows.col_stride != 1 or rows.row_stride != n_features:
            # Scattered or strided rows are copied into one block (packed, else the tile
            # scratch, a chunk of rows of few features), which the kernel loads whole.
            buffer = packed + start * n_features if packed != NULL else tile
            _copy_rows(rows, start, end, buffer)
            data = buffer
        else:
            data = <const floating*> rows.data + start * n_features
        if floating is float:
            mbk_active.nearest_few_float(
                data, <int> (end - start), center_rows, <const float*> centers.sq_norms,
                centers.n_clusters, n_features, labels + start,
                chunk_dist if with_inertia else NULL)
        else:
            mbk_active.nearest_few_double(
                data, <int> (end - start), center_rows, <const double*> centers.sq_norms,
                centers.n_clusters, n_features, labels + start,
                chunk_dist if with_inertia else NULL)
        if with_inertia:
            inertia = _weighted_sum(rows, start, end, chunk_dist)
        return inertia
    while i < end:
        n_in_tile = min(<Py_ssize_t> tile_rows, end - i)
        # A whole tile is copied straight into its place in packed; a partial one needs the
        # zero-padded tile buffer (past its rows, packed holds the next chunk's).
        buffer = packed + i * n_features if packed != NULL and n_in_tile == tile_rows else tile
        x = _tile_rows(rows, <const floating*> rows.data, i, n_in_tile, tile_rows, buffer,
                       &x_stride)
        if packed != NULL and x != packed + i * n_features:
            for t in range(n_in_tile):
                for f in range(n_features):
                    packed[(i + t) * n_features + f] = x[t * x_stride + f]
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
        if with_inertia and chunk_x == NULL:
            _row_distances(x, x_stride, center_rows, best_index, n_features, n_in_tile,
                           chunk_dist + (i - start))
        i += n_in_tile
    if with_inertia and chunk_x != NULL:
        _row_distances(chunk_x, chunk_stride, center_rows, labels + start, n_features,
                       end - start, chunk_dist)
    if with_inertia:
        inertia = _weighted_sum(rows, start, end, chunk_dist)
    return inertia


cdef inline void _row_distances(
        const floating* x, Py_ssize_t x_stride, const floating* center_rows,
        const int* labels, Py_ssize_t n_features, Py_ssize_t n_rows, floating* out,
) noexcept nogil:
    """Each row's squared distance to its labelled center by direct differences, rounded
    as scikit-learn's (not the tiles' norm expansion, which cancels badly near a center)."""
    if floating is float:
        mbk_active.row_distances_float(x, x_stride, center_rows, labels, n_features,
                                       <int> n_rows, out)
    else:
        mbk_active.row_distances_double(x, x_stride, center_rows, labels, n_features,
                                        <int> n_rows, out)


cdef inline double _weighted_sum(
        const Rows* rows, Py_ssize_t start, Py_ssize_t end, const floating* distances,
) noexcept nogil:
    """sum of w * distance over batch rows [start, end), in float64: a float32 product of
    a large distance and a large weight would overflow to infinity (found by the property
    tests)."""
    cdef Py_ssize_t t
    cdef double total = 0
    for t in range(end - start):
        total += <double> distances[t] * <double> _weight(
            <const floating*> rows.weights, _source_row(rows, start + t))
    return total


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
        floating* packed=NULL,          # OUT (n_rows, n_features) the rows in order; or NULL
) noexcept nogil:
    cdef Py_ssize_t n_chunks = _n_chunks(rows.n_rows)
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
            rows, centers, start, end, labels, tile, with_inertia, packed)
    # Serial, in chunk order: the same sum for any thread count.
    for chunk in range(n_chunks):
        inertia += chunk_inertia[chunk]
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

# ---------------------------------------------------------------------------------------------
# The NaN/infinity scan
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


cdef int _start_scan(FiniteScan* scan, const floating[:, :] X) except -1:
    """A scan of all of X, nothing of it read yet."""
    cdef const Py_ssize_t[::1] every_row = None
    _fill_rows(&scan.rows, X, every_row, None)
    scan.next = 0
    scan.finite = True
    return 0


cdef inline Py_ssize_t _rows_per(
        Py_ssize_t n_bytes, const Rows* rows, size_t itemsize) noexcept nogil:
    return max(1, n_bytes // max(1, rows.n_features * <Py_ssize_t> itemsize))


cdef void _scan_until(
        FiniteScan* scan, const int* stop, Py_ssize_t end_row, const floating* witness
) noexcept nogil:
    """Scan X a piece at a time until row end_row (or its last row) or until another thread
    raises stop."""
    cdef Py_ssize_t piece = _rows_per(SCAN_PIECE_BYTES, &scan.rows, sizeof(floating))
    cdef Py_ssize_t end
    end_row = min(end_row, scan.rows.n_rows)
    while scan.next < end_row and not mbk_flag_raised(stop):
        end = min(scan.next + piece, end_row)
        scan.finite &= _rows_finite(&scan.rows, <const floating*> scan.rows.data, scan.next,
                                    end)
        scan.next = end


cdef bint _finish_scan(
        FiniteScan* scan, int n_threads, const floating* witness) noexcept nogil:
    """Scan the rest of X on up to n_threads threads; return whether all of X is finite."""
    cdef Py_ssize_t first = scan.next, n_left = scan.rows.n_rows - scan.next
    cdef Py_ssize_t chunk_rows = _rows_per(SCAN_CHUNK_BYTES, &scan.rows, sizeof(floating))
    cdef Py_ssize_t n_chunks = (n_left + chunk_rows - 1) // chunk_rows, chunk
    cdef Py_ssize_t n_bad = 0
    if n_left > 0 and scan.rows.n_features > 0:
        n_threads = threads_for(n_threads, n_chunks, <double> n_left * scan.rows.n_features)
        for chunk in prange(n_chunks, schedule="static", num_threads=n_threads):
            n_bad += <Py_ssize_t> (not _rows_finite(
                &scan.rows, <const floating*> scan.rows.data, first + chunk * chunk_rows,
                min(first + (chunk + 1) * chunk_rows, scan.rows.n_rows)))
        scan.finite &= n_bad == 0
    scan.next = scan.rows.n_rows
    return scan.finite


# ---------------------------------------------------------------------------------------------
# The center update, in two halves: accumulate (per-center weighted sums of the batch rows)
# and apply (the incremental mean from those sums)
# ---------------------------------------------------------------------------------------------
#
# c_new = (c_old * v + sum_i w_i x_i) * (1 / (v + sum_i w_i)) for every center: the
# incremental mean with per-center learning rate W / (v + W), in scikit-learn's operations and
# order (the sums seeded with c_old * v, the rows added in batch order), with the running
# weights v and the sums in float64. A source whose rows are elsewhere (a worker) accumulates
# from zero and hands the sums over; applying unseeded sums adds c_old * v last, which rounds
# differently.

cdef void _add_rows(
        const Rows* rows,                  # IN the batch
        const floating* data,              # IN rows.data
        const Py_ssize_t* order,           # IN (n,) batch positions, or NULL: 0 .. n - 1
        const int* labels,                 # IN (n_rows,) row of sums per position, or NULL: 0
        Py_ssize_t n,
        double* sums,                      # INOUT (n_clusters or 1, n_features)
) noexcept nogil:
    """sums[labels[i], f] += w_i * x_i[f] for the batch positions i in the order given
    (add_rows in _kernels.h): every center's sums receive its rows in scikit-learn's order."""
    cdef Py_ssize_t q, i, r, f, n_features = rows.n_features
    cdef const floating* x
    cdef double* s
    cdef double w
    if rows.col_stride == 1:
        if floating is float:
            mbk_active.add_rows_float(
                data, rows.row_stride, rows.index, order, labels, n,
                <const float*> rows.weights, n_features, sums)
        else:
            mbk_active.add_rows_double(
                data, rows.row_stride, rows.index, order, labels, n,
                <const double*> rows.weights, n_features, sums)
        return
    # Strided features (weighted rows in Fortran order; unit-weight ones come packed).
    for q in range(n):
        i = order[q] if order != NULL else q
        r = _source_row(rows, i)
        x = data + r * rows.row_stride
        s = sums + (labels[i] * n_features if labels != NULL else 0)
        w = _weight(<const floating*> rows.weights, r)
        for f in range(n_features):
            s[f] += x[f * rows.col_stride] * w


cdef void _batch_weights(
        const Rows* rows,                  # IN the batch (its weights)
        const floating* witness,           # the data's type (not read)
        const int* labels,                 # IN (n_rows,)
        Py_ssize_t n_clusters,
        double* batch_weights,             # OUT (n_clusters,) the weight each center received
) noexcept nogil:
    cdef Py_ssize_t i, j
    for j in range(n_clusters):
        batch_weights[j] = 0
    for i in range(rows.n_rows):
        batch_weights[labels[i]] += _weight(<const floating*> rows.weights, _source_row(rows, i))


cdef void _accumulate(
        const Rows* rows,                  # IN the batch
        const int* labels,                 # IN (n_rows,)
        Py_ssize_t n_clusters,
        const floating* seed_centers,      # IN (n_clusters, n_features) C order, or NULL
        const double* seed_weights,        # IN (n_clusters,) with seed_centers
        double* sums,                      # OUT (n_clusters, n_features)
) noexcept nogil:
    """Each center's weighted sum of its batch rows, the rows added in batch order on one
    thread, starting from center * running weight (seed_centers given: scikit-learn's
    order) or from zero."""
    cdef Py_ssize_t j, f, n_features = rows.n_features
    for j in range(n_clusters):
        if seed_centers != NULL:
            _seed_sums(seed_centers + j * n_features, seed_weights[j], sums + j * n_features,
                       n_features)
        else:
            for f in range(n_features):
                sums[j * n_features + f] = 0
    _add_rows(rows, <const floating*> rows.data, NULL, labels, rows.n_rows, sums)


cdef void _apply(
        const floating[:, ::1] centers_old,  # IN
        floating[:, ::1] centers_new,        # OUT (may be centers_old)
        double* weight_sums,                 # INOUT (n_clusters,)
        const double* sums,                  # IN (n_clusters, n_features)
        const double* batch_weights,         # IN (n_clusters,)
        bint seeded,                         # sums start from center * running weight
) noexcept nogil:
    """Every center's incremental mean from its accumulated sums."""
    cdef Py_ssize_t j, n_features = centers_old.shape[1]
    for j in range(centers_old.shape[0]):
        _apply_center(&centers_old[j, 0], &centers_new[j, 0], &weight_sums[j],
                      batch_weights[j], sums + j * n_features, n_features, seeded)


cdef void _update_center(
        const Rows* update_rows, const floating* center_old, floating* center_new,
        double* weight_sum, double batch_weight, const Py_ssize_t* members,
        Py_ssize_t n_members, double* sums,
) noexcept nogil:
    """Both halves for one center, from its members' rows (batch positions in batch order);
    sums is (n_features,) scratch."""
    cdef Py_ssize_t n_features = update_rows.n_features
    if batch_weight > 0:
        _seed_sums(center_old, weight_sum[0], sums, n_features)
        _add_rows(update_rows, <const floating*> update_rows.data, members, NULL, n_members,
                  sums)
    _apply_center(center_old, center_new, weight_sum, batch_weight, sums, n_features, True)


cdef void _update_centers(
        const Rows* rows,                    # IN the batch (weights from here)
        const Rows* update_rows,             # IN its rows (a packed copy, or rows itself)
        const floating[:, ::1] centers_old,  # IN
        floating[:, ::1] centers_new,        # OUT (may be centers_old)
        double* weight_sums,                 # INOUT (n_clusters,)
        const int* labels,                   # IN (n_batch,)
        const StepScratch* scratch,          # TMP
) noexcept nogil:
    """The in-memory step's update: accumulate from center * running weight, then apply.

    In batch order (scratch.batch_order: all centers' sums fit in L1), the two halves run
    once over all centers, on one thread (threads splitting the features would share the
    cache lines where their ranges meet, in every center's row). Otherwise center by center,
    each center's sums in L1: threads take separate centers, so the thread count changes no
    result. Both orders add every center's rows in batch order: the same bits.
    """
    cdef Py_ssize_t n_clusters = centers_old.shape[0], n_features = rows.n_features
    cdef Py_ssize_t n_batch = rows.n_rows, i, j
    cdef double* batch_weights = scratch.batch_weights
    cdef Py_ssize_t* offsets = scratch.offsets
    cdef Py_ssize_t* members = scratch.members
    cdef int n_threads = scratch.n_update_threads
    _batch_weights(rows, &centers_old[0, 0], labels, n_clusters, batch_weights)
    if scratch.batch_order:
        _accumulate(update_rows, labels, n_clusters, &centers_old[0, 0], weight_sums,
                    scratch.sums)
        _apply(centers_old, centers_new, weight_sums, scratch.sums, batch_weights, True)
        return
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
    for j in prange(n_clusters, schedule="static", num_threads=n_threads):
        _update_center(update_rows, &centers_old[j, 0], &centers_new[j, 0],
                       &weight_sums[j], batch_weights[j], members + offsets[j],
                       offsets[j + 1] - offsets[j], scratch.sums + threadid() * n_features)


# ---------------------------------------------------------------------------------------------
# The mini-batch step: assignment, then the update
# ---------------------------------------------------------------------------------------------

cdef int _step_scratch(
        StepScratch* out, ScratchArena arena, Py_ssize_t n_batch, Py_ssize_t n_clusters,
        Py_ssize_t n_features, size_t itemsize, int n_threads, bint pack_rows,
) except -1:
    """Allocate (owned by ``arena``) the scratch of steps on batches of n_batch rows; with
    ``pack_rows``, a copy of the batch's rows for the update (see _minibatch_step)."""
    cdef Py_ssize_t n_sums, n_grouping
    cdef Py_ssize_t n_padded = _padded_count(n_clusters, itemsize == sizeof(double))
    n_threads = max(n_threads, 1)
    out.batch_order = n_clusters * n_features <= knobs().batch_order_sums
    # An update element (load, widen, add; half its rows in the other core's cache) counts as
    # two of the threshold's multiply-adds; a busy machine is left to fit's thread probes.
    out.n_update_threads = 1 if out.batch_order else threads_for(
        n_threads, n_clusters, 2.0 * n_batch * n_features)
    out.n_threads = clamp_threads(n_threads, n_batch, n_clusters, n_features)
    out.prepared_centers = arena.take(n_padded * (n_features + 1) * itemsize)
    # Row tiles sized in doubles whatever the dtype, and the update's working set in one block:
    # the kernels are sensitive to where their buffers land (see CHANGELOG), and this is the
    # placement they were tuned with.
    out.row_tiles = arena.take(out.n_threads * _tile_scratch(n_features) * sizeof(double))
    out.chunk_inertia = <double*> arena.take(_n_chunks(n_batch) * sizeof(double))
    # The update's working set: sums, batch weights, and center by center the grouping of the
    # batch by center.
    n_sums = (n_clusters if out.batch_order else out.n_update_threads) * n_features
    n_grouping = 0 if out.batch_order else n_clusters + 1 + n_batch
    out.sums = <double*> arena.take((n_sums + n_clusters) * sizeof(double)
                                    + n_grouping * sizeof(Py_ssize_t))
    out.batch_weights = out.sums + n_sums
    out.offsets = out.members = NULL
    if not out.batch_order:
        out.offsets = <Py_ssize_t*> (out.batch_weights + n_clusters)
        out.members = out.offsets + n_clusters + 1
    out.packed_rows = arena.take(n_batch * n_features * itemsize) if pack_rows else NULL
    return 0


cdef bint _worth_packing(const Rows* rows, size_t itemsize) noexcept nogil:
    """Whether the update should read a packed copy of the batch (see _minibatch_step), with
    unit weights (the copy does not carry them): for rows with strided features (Fortran
    order, as pandas gives), which the update could not add as vectors; and for scattered
    rows of a cache line or more (shorter ones cost the update less to gather again than the
    copy costs)."""
    if rows.weights != NULL:
        return False
    return rows.col_stride != 1 or (rows.index != NULL and rows.n_features * itemsize >= 64)


cdef double _minibatch_step(
        const Rows* rows,                    # IN the batch
        const floating[:, ::1] centers_old,  # IN
        floating[:, ::1] centers_new,        # OUT (may be centers_old)
        double* weight_sums,                 # INOUT (n_clusters,)
        int* labels,                         # OUT (n_batch,)
        const StepScratch* scratch,          # TMP
        const Sampling* sampling=NULL,       # the batch's rows still to be drawn, or NULL
        char* chunk_finite=NULL,             # TMP (n_chunks,): scan the batch for NaN and
                                             # infinity on the assignment pass; or NULL
        bint* finite=NULL,                   # OUT with chunk_finite: whether it was finite
        FiniteScan* scan=NULL,               # INOUT a scan of X to advance while one
                                             # thread updates the centers; or NULL
) noexcept nogil:
    """Label the batch with centers_old, move every center; return the batch inertia.

    With chunk_finite, a batch holding NaN or infinity moves no center (finite is False).
    With scratch.packed_rows (unit weights only), the assignment leaves a copy of the
    batch's rows there, in batch order, and the update reads that copy: scattered batch rows
    come from all over X (a TLB and cache miss each), and by the update, which runs after
    the assignment and on whichever thread owns the center, they are out of the caches again.
    """
    cdef Centers prepared
    cdef Py_ssize_t i
    cdef double inertia
    cdef Rows packed
    cdef StepScratch one_updater
    cdef const Rows* update_rows = rows

    _prepare_centers(&prepared, centers_old, <floating*> scratch.prepared_centers)
    inertia = _assign_rows(rows, &prepared, labels, <floating*> scratch.row_tiles,
                           scratch.chunk_inertia, scratch.n_threads, sampling, True,
                           chunk_finite, <floating*> scratch.packed_rows)
    if scratch.packed_rows != NULL:
        packed = _packed_rows(scratch.packed_rows, rows.n_rows, rows.n_features)
        update_rows = &packed
    if chunk_finite != NULL:
        finite[0] = True
        for i in range(_n_chunks(rows.n_rows)):
            finite[0] &= chunk_finite[i]
        if not finite[0]:
            return inertia

    if scan != NULL and scan.next < scan.rows.n_rows and scratch.n_threads > 1:
        # The update on one thread beside the scan, even where two would share it (half its
        # rows are in the other core's cache).
        one_updater = scratch[0]
        one_updater.n_update_threads = 1
        _update_beside_scan(rows, update_rows, centers_old, centers_new, weight_sums, labels,
                            &one_updater, scan)
    else:
        _update_centers(rows, update_rows, centers_old, centers_new, weight_sums, labels,
                        scratch)
    return inertia


cdef void _update_beside_scan(
        const Rows* rows, const Rows* update_rows, const floating[:, ::1] centers_old,
        floating[:, ::1] centers_new, double* weight_sums, const int* labels,
        const StepScratch* scratch, FiniteScan* scan,
) noexcept nogil:
    """The one-thread center update, while a second thread advances the scan of X until
    the update is done (fit's NaN scan, which would otherwise read all of X before the
    first step)."""
    cdef int updated = 0
    cdef int* done = &updated
    cdef int part
    for part in prange(2, schedule="static", num_threads=2):
        if part == 0:
            _update_centers(rows, update_rows, centers_old, centers_new, weight_sums, labels,
                            scratch)
            mbk_raise_flag(done)
        else:
            # On a team of one, the update ran first and this scans nothing.
            _scan_until(scan, done, scan.rows.n_rows, &centers_old[0, 0])


cdef int _check_step_shapes(
        const floating[:, ::1] centers_old, floating[:, ::1] centers_new,
        double[::1] weight_sums, Py_ssize_t n_labels, Py_ssize_t n_batch, Py_ssize_t n_features,
) except -1:
    _check_centers(centers_old, n_features)
    if (centers_new.shape[0] != centers_old.shape[0] or centers_new.shape[1] != n_features
            or weight_sums.shape[0] != centers_old.shape[0]):
        raise ValueError("centers_new and weight_sums must match centers_old")
    if n_labels != n_batch:
        raise ValueError("labels must have one entry per batch row")
    if n_batch == 0:
        raise ValueError("a mini-batch step needs at least one row")
    return 0


cdef double _center_shift(const floating[:, ::1] a, const floating[:, ::1] b) noexcept nogil:
    """sum over centers and features of (a - b)^2: how far a step moved the centers."""
    cdef Py_ssize_t j, f
    cdef double total = 0, diff
    for j in range(a.shape[0]):
        for f in range(a.shape[1]):
            diff = a[j, f] - b[j, f]
            total += diff * diff
    return total


# ---------------------------------------------------------------------------------------------
# Reassignment of small centers
# ---------------------------------------------------------------------------------------------

cdef Py_ssize_t _small_centers(
        double[::1] weight_sums,         # IN the running weights
        double ratio,
        Py_ssize_t n_batch,
        RandomStream stream,             # the draws
        Py_ssize_t* order,               # OUT (n_batch,) with centers to move: order[k] is the
                                         # batch position the k-th small center moves onto
        signed char* small,              # OUT (n_clusters,) which centers move
) except -1:
    """scikit-learn's choice of the centers to reassign; returns how many move.

    The centers whose running weight is below ratio times the largest move onto rows of
    the batch drawn without replacement (``random_state.choice(n_batch, n, replace=False)``,
    the same draws), at most half a batch of them (the largest weights stay). Compiled
    because fit runs it between steps, when Python and NumPy are cold in the caches.
    """
    cdef Py_ssize_t n_clusters = weight_sums.shape[0], j, n_small = 0
    cdef double largest = weight_sums[0]
    for j in range(1, n_clusters):
        largest = max(largest, weight_sums[j])
    for j in range(n_clusters):
        small[j] = weight_sums[j] < ratio * largest
        n_small += small[j]
    if n_small == 0:
        return 0
    if n_small > 0.5 * n_batch:
        # Rare (more small centers than half a batch): NumPy's sort order, ties included,
        # decides which stay.
        for j in np.argsort(np.asarray(weight_sums))[int(0.5 * n_batch):]:
            n_small -= small[j]
            small[j] = False
    if n_small > 0:
        stream.shuffled_range(order, n_batch)
    return n_small


cdef void _restart_small_weights(
        double[::1] weight_sums, const signed char* small, Py_ssize_t n_small) noexcept:
    """The moved centers restart from the smallest running weight that stays."""
    cdef Py_ssize_t n_clusters = weight_sums.shape[0], j
    cdef double smallest_kept = INFINITY
    if n_small == 0 or n_small == n_clusters:
        return
    for j in range(n_clusters):
        if not small[j]:
            smallest_kept = min(smallest_kept, weight_sums[j])
    for j in range(n_clusters):
        if small[j]:
            weight_sums[j] = smallest_kept


cdef Py_ssize_t _reassign_small_centers(
        const Rows* batch,               # IN the batch: its rows of X
        floating[:, ::1] centers,        # INOUT
        double[::1] weight_sums,         # INOUT the running weights
        double ratio,
        RandomStream stream,             # the draws
        Py_ssize_t* order,               # TMP (batch.n_rows,)
        signed char* small,              # TMP (n_clusters,)
) except -1:
    """scikit-learn's random reassignment onto dense batch rows (_small_centers); returns
    how many centers moved."""
    cdef Py_ssize_t n_small = _small_centers(weight_sums, ratio, batch.n_rows, stream, order,
                                             small)
    cdef Py_ssize_t j, f, k = 0
    cdef const floating* x
    if n_small == 0:
        return 0
    for j in range(weight_sums.shape[0]):
        if small[j]:
            x = (<const floating*> batch.data
                 + _source_row(batch, order[k]) * batch.row_stride)
            for f in range(batch.n_features):
                centers[j, f] = x[f * batch.col_stride]
            k += 1
    _restart_small_weights(weight_sums, small, n_small)
    return n_small

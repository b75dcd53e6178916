# Row views: how every kernel reads the rows it works on. Header only (no _rows.pyx): the
# helpers are inline, compiled into each module that cimports them.
#
# A kernel never sees an array, only a view of rows: a dense view (rows of X read through
# element strides, all of them in order or those of an index array, with optional per-row
# weights), a packed one (a batch's rows copied one after another), or a CSR view (the stored
# entries of rows of a compressed sparse row matrix, with 32- or 64-bit indices). A chunk of a
# larger source is a further member of this layer; see docs/architecture.md.

from cython cimport floating
from libc.stdint cimport int32_t, int64_t


# The index types of a CSR matrix (its indices and indptr): scipy makes int32 or int64.
ctypedef fused csr_index:
    int32_t
    int64_t


# Rows per parallel work item. Fixed (not derived from the thread count) so that the work
# split, and therefore every rounding, is the same whatever the number of threads.
cdef enum:
    CHUNK_ROWS = 256


cdef struct Rows:
    # Row i of the view is X[index[i]] (or X[i] when index is NULL), read through element
    # strides: C-ordered, Fortran-ordered, strided, read-only and memory-mapped arrays are all
    # read in place.
    const void* data
    Py_ssize_t row_stride
    Py_ssize_t col_stride
    const Py_ssize_t* index
    const void* weights     # NULL means unit weights; indexed like X's rows, not the view's
    Py_ssize_t n_rows
    Py_ssize_t n_features


cdef struct CsrRows:
    # Row i of the view is row index[i] of a CSR matrix (or row i when index is NULL): its
    # stored entries are data[p] in column indices[p], for p from indptr[r] to indptr[r + 1],
    # in stored order (unsorted columns, duplicates and explicit zeros are read as given).
    # data is floating, indices and indptr one csr_index type: the kernels take them typed.
    const void* data
    const void* indices
    const void* indptr
    const Py_ssize_t* index
    const void* weights     # NULL means unit weights; indexed like X's rows, not the view's
    Py_ssize_t n_rows
    Py_ssize_t n_features


cdef inline int _weights_of(
        object sample_weight, Py_ssize_t n_rows, const floating** out) except -1:
    """out[0] = the values of sample_weight (floating[::1], n_rows of them), or NULL for None.

    The pointer is into the caller's array, which must outlive its use."""
    cdef const floating[::1] weights
    out[0] = NULL
    if sample_weight is not None:
        weights = sample_weight
        if weights.shape[0] != n_rows:
            raise ValueError("sample_weight must have one entry per row of X")
        out[0] = &weights[0]
    return 0


cdef inline int _fill_rows(
        Rows* rows,
        const floating[:, :] X,
        const Py_ssize_t[::1] sample_indices,   # None: every row of X in order
        object sample_weight,                   # None, or floating[::1] of X's dtype
) except -1:
    """A dense view of X (or of its rows sample_indices), read in place."""
    cdef Py_ssize_t itemsize = sizeof(floating)
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
    _weights_of(sample_weight, X.shape[0], <const floating**> &rows.weights)
    return 0


cdef inline int _fill_csr_rows(
        CsrRows* rows,
        const floating[::1] data,
        const csr_index[::1] indices,
        const csr_index[::1] indptr,
        Py_ssize_t n_features,
        const Py_ssize_t[::1] sample_indices,   # None: every row in order
        object sample_weight,                   # None, or floating[::1] of data's dtype
) except -1:
    """A CSR view of a matrix's rows (or of its rows sample_indices), read in place. The
    matrix must have been checked (mbk._core.check_csr): indptr from 0, never decreasing,
    within indices and data, and every index within [0, n_features)."""
    cdef Py_ssize_t n_samples = indptr.shape[0] - 1
    if n_samples < 0 or indices.shape[0] < indptr[n_samples] or data.shape[0] < indptr[n_samples]:
        raise ValueError("indptr must have n_samples + 1 entries within indices and data")
    rows.data = &data[0] if data.shape[0] > 0 else NULL
    rows.indices = &indices[0] if indices.shape[0] > 0 else NULL
    rows.indptr = &indptr[0]
    rows.n_features = n_features
    rows.index = NULL
    rows.n_rows = n_samples
    rows.weights = NULL
    if sample_indices is not None:
        rows.n_rows = sample_indices.shape[0]
        if rows.n_rows > 0:
            rows.index = &sample_indices[0]
    _weights_of(sample_weight, n_samples, <const floating**> &rows.weights)
    return 0


cdef inline Rows _packed_rows(
        const void* data, Py_ssize_t n_rows, Py_ssize_t n_features) noexcept nogil:
    """A view of n_rows rows stored one after another at data, with unit weights."""
    cdef Rows packed
    packed.data = data
    packed.row_stride = n_features
    packed.col_stride = 1
    packed.index = NULL
    packed.weights = NULL
    packed.n_rows = n_rows
    packed.n_features = n_features
    return packed


cdef inline Py_ssize_t _source_row(const Rows* rows, Py_ssize_t i) noexcept nogil:
    """The row of X that position i of the view reads."""
    return rows.index[i] if rows.index != NULL else i


cdef inline Py_ssize_t _csr_row(const CsrRows* rows, Py_ssize_t i) noexcept nogil:
    """The row of the matrix that position i of the CSR view reads."""
    return rows.index[i] if rows.index != NULL else i


cdef inline const floating* _row_ptr(
        const Rows* rows,
        Py_ssize_t r,          # a row of X
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


cdef inline Py_ssize_t _n_chunks(Py_ssize_t n_rows) noexcept nogil:
    """The number of CHUNK_ROWS work items that n_rows rows make."""
    return (n_rows + CHUNK_ROWS - 1) // CHUNK_ROWS


cdef inline Py_ssize_t _round_up(Py_ssize_t n, Py_ssize_t unit) noexcept nogil:
    return (n + unit - 1) // unit * unit

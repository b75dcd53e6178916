"""Dense rows: where an array-like becomes rows the dense kernels read.

The dtype rule is scikit-learn's (float32 stays float32, every other number becomes float64;
2-D, non-empty, finite), with one difference that matters for large data: an array that
already has the right dtype is read in place, whatever its memory layout. Fortran-ordered,
strided, read-only and memory-mapped arrays are read by the kernels as they are.

Reading input is two steps, so that no copy is made before the memory check has counted it:
``DenseInput(X)`` checks and describes X (shape, dtype, column names, and which copy, if any,
reading it makes), and ``DenseInput.open`` checks the memory, makes that copy and returns the
``DenseSource`` that the drivers and kernels use. The copies: a cast to float64 (or to the
centers' dtype), and array-likes that have no memory of their own (``zarr.Array``,
``h5py.Dataset``, ``dask.array.Array``: anything ``np.asarray`` would read whole), which are
loaded as scikit-learn loads them, into one array of the target dtype, here a block of rows
at a time.
"""

import numbers

import numpy as np

from .. import _core, _sculley_loop
from .._validation import check_memory, format_bytes
from .common import RowsShape, check_sample_weight, feature_names_of, is_sparse

_FLOAT_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))
# Rows per block of a block-wise pass (bounded temporaries, C order whatever X's layout).
BLOCK_ROWS = 65536
# Bytes per block when an array-like without memory of its own is loaded.
_LOAD_BLOCK_BYTES = 64 << 20


def row_blocks(X, dtype=None):
    """(start, block) for consecutive blocks of BLOCK_ROWS rows of X, each C-ordered (a copy
    when X's rows are not) and in ``dtype`` when given: a pass over all rows with bounded
    temporaries whose rounding does not depend on X's layout."""
    for start in range(0, X.shape[0], BLOCK_ROWS):
        yield start, np.ascontiguousarray(X[start : start + BLOCK_ROWS], dtype=dtype)


def _has_extension_dtypes(X):
    dtypes = getattr(X, "dtypes", None)
    if dtypes is None or not hasattr(X, "to_numpy") or isinstance(X, np.ndarray):
        return False
    if not hasattr(dtypes, "__iter__"):  # a pandas Series has one dtype
        dtypes = [dtypes]
    return any(not isinstance(dtype, np.dtype) for dtype in dtypes)


def _has_own_memory(X):
    """Whether np.asarray(X) is a view or a conversion of memory X already holds, rather
    than a read of all of X from somewhere else (chunked or remote storage, a task graph)."""
    if isinstance(X, np.ndarray) or hasattr(X, "to_numpy"):  # pandas, xarray: views
        return True
    if any(hasattr(X, name) for name in ("__array_interface__", "__array_struct__", "__dlpack__")):
        return True  # (DLPack: torch and the like, whose np.asarray is a view)
    try:
        memoryview(X)
    except TypeError:
        # (a user's array-like needs only shape, dtype and row slicing)
        readable = hasattr(X, "__array__") or hasattr(X, "__getitem__")
        return not (hasattr(X, "shape") and hasattr(X, "dtype") and readable)
    return True


def _check_dtype(dtype, input_name):
    """The dtype the rows are read in: float32 and float64 stay, other numbers are float64."""
    if dtype.kind == "c":
        raise ValueError(f"Complex data not supported: {input_name} has dtype {dtype}.")
    if dtype.kind not in "biuf":
        raise TypeError(f"{input_name} must hold numbers; got an array of dtype {dtype}.")
    return dtype if dtype in _FLOAT_DTYPES else np.dtype(np.float64)


def _check_shape(shape, input_name):
    if len(shape) != 2:
        if len(shape) == 1:
            raise ValueError(
                f"Expected 2D array, got 1D array instead: {input_name} has shape "
                f"{shape}. Reshape your data either using array.reshape(-1, 1) if your "
                "data has a single feature or array.reshape(1, -1) if it contains a single "
                "sample."
            )
        raise ValueError(
            f"Expected 2D array, got {len(shape)}D array instead ({input_name} has shape {shape})."
        )
    if shape[0] < 1:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={shape}) while a minimum of 1 is required."
        )
    if shape[1] < 1:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={shape}) while a minimum of 1 is required."
        )


class DenseInput(RowsShape):
    """An array-like checked and described, before any copy of it is made.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The input.
    input_name : str, default="X"
        Its name in error messages.
    dtype : numpy dtype or None
        Force this dtype (new data for a fitted model is read in the centers' dtype).
    names : bool, default=True
        Read the column names of a DataFrame-like X (an estimator's data); False ignores
        them (centers, k-means++'s input), as scikit-learn does.

    Attributes
    ----------
    shape : (int, int)
    dtype : numpy dtype
        float32 or float64: the dtype the rows are read in.
    feature_names : ndarray of str objects or None
        The column names of a DataFrame-like X, when they are all strings.
    copy : str or None
        The copy reading X makes: None (read in place), "cast" (another dtype or byte
        order), "aligned" (misaligned or odd strides) or "loaded" (no memory of its own).
    copy_bytes : int
        The size of that copy.
    """

    __slots__ = ("input_name", "feature_names", "dtype", "shape", "copy", "copy_bytes",
                 "_array", "_unread")  # fmt: skip

    def __init__(self, X, *, input_name="X", dtype=None, names=True):
        self.input_name = input_name
        if type(X) is np.ndarray:  # the common case, without the checks it cannot fail
            self._init_from_array(X, dtype, None)
            return
        if is_sparse(X):  # (sources.read_input routes the data itself to CsrInput)
            raise TypeError(
                f"{input_name} must be a dense array, not a sparse {type(X).__name__}: "
                f"convert it with {input_name}.toarray() first."
            )
        if isinstance(X, np.matrix):
            raise TypeError(
                f"np.matrix is not supported for {input_name}; convert it with np.asarray first."
            )
        self.feature_names = feature_names_of(X) if names else None
        if _has_extension_dtypes(X):
            # pandas nullable columns (Float64, Int64, ...): missing values become NaN, which
            # the finiteness check then reports by name.
            X = X.to_numpy(dtype=np.float64, na_value=np.nan)
        if _has_own_memory(X):
            # np.asarray of an ndarray subclass (memmap, masked array) is a plain view; numbers
            # in an object array are fine.
            self._init_from_array(np.asarray(X), dtype, self.feature_names)
            return
        try:
            stored = np.dtype(X.dtype)
        except TypeError:  # not a NumPy dtype: left to np.asarray
            self._init_from_array(np.asarray(X), dtype, self.feature_names)
            return
        self._unread, self._array = X, None
        shape = tuple(X.shape)
        if any(not isinstance(size, numbers.Integral) for size in shape):
            raise ValueError(
                f"{input_name} has an unknown shape {shape}: its sizes must be known before "
                "it is read (for a dask array, X.compute_chunk_sizes())."
            )
        self.dtype = _check_dtype(stored, input_name)
        _check_shape(shape, input_name)
        if dtype is not None:
            self.dtype = dtype
        self.shape = shape
        self.copy = "loaded"
        self.copy_bytes = shape[0] * shape[1] * self.dtype.itemsize

    def _init_from_array(self, X, dtype, feature_names):
        self.feature_names = feature_names
        self._unread = None
        if X.dtype.kind in "OV":
            X = np.asarray(X, dtype=np.float64)
        self._array = X
        stored = X.dtype
        self.dtype = _check_dtype(stored, self.input_name)
        if X.ndim != 2 or 0 in X.shape:
            _check_shape(X.shape, self.input_name)
        if dtype is not None:
            self.dtype = dtype
        self.shape = X.shape
        # The copy reading X makes, if any: a cast, or an aligned copy for odd strides.
        itemsize = self.dtype.itemsize
        if stored != self.dtype or not stored.isnative:
            self.copy = "cast"
        elif not X.flags.aligned or X.strides[0] % itemsize or X.strides[1] % itemsize:
            self.copy = "aligned"
        else:
            self.copy = None
        self.copy_bytes = 0 if self.copy is None else X.shape[0] * X.shape[1] * itemsize

    @property
    def row_bytes(self):
        """Bytes a gathered row takes (memory estimates)."""
        return self.n_features * self.dtype.itemsize

    @property
    def c_contiguous(self):
        """Whether the rows, as the source will hold them, are C-ordered (a cast keeps the
        layout; the other copies are C-ordered)."""
        return self.copy in ("loaded", "aligned") or self._array.flags.c_contiguous

    def describe(self):
        """The data as error messages name it: n_samples x n_features dtype."""
        return f"{self.n_samples} x {self.n_features} {self.dtype}"

    def _needs_memory_for(self, what):
        """What a MemoryError names as needing the memory (``what``: a string, a function
        that makes it, or None)."""
        if callable(what):
            what = what()
        if what is None:
            what = f"Reading {self.input_name} ({self.describe()})"
        if self.copy == "loaded":
            what += (
                f" ({self.input_name} has no memory of its own and is loaded whole: "
                f"{format_bytes(self.copy_bytes)})"
            )
        return what

    def _read(self):
        """The copy of X the kernels read: a 2-D ndarray of self.dtype (see copy)."""
        if self.copy == "loaded":
            out = np.empty(self.shape, dtype=self.dtype)
            block = max(1, _LOAD_BLOCK_BYTES // (self.n_features * self.dtype.itemsize))
            for start in range(0, self.n_samples, block):
                stop = min(start + block, self.n_samples)
                out[start:stop] = np.asarray(self._unread[start:stop])
            return out
        if self.copy == "cast":
            return self._array.astype(self.dtype.newbyteorder("="))
        return np.ascontiguousarray(self._array)  # "aligned"

    def open(self, sample_weight=None, *, finite=True, n_threads=1, working_bytes=0, what=None):
        """The source of these rows: memory checked, the copy made, weights checked.

        Parameters
        ----------
        sample_weight : array-like of shape (n_samples,), number or None
            Row weights, cast to the rows' dtype; None for unit weights.
        finite : bool
            Scan the rows for NaN and infinity now (a ValueError names the problem);
            otherwise the source records that they are not scanned yet.
        working_bytes : int
            Memory the caller will need besides the rows: checked with the copy, before it
            is made (a MemoryError names the size).
        what : str, callable or None
            What needs the memory, for that error (a callable makes the string when it is
            needed).
        """
        if self.copy_bytes + working_bytes:
            check_memory(self.copy_bytes + working_bytes, lambda: self._needs_memory_for(what))
        X = self._array if self.copy is None else self._read()
        weights = None
        if sample_weight is not None:
            weights = check_sample_weight(sample_weight, self.n_samples, self.dtype)
        source = DenseSource(X, weights, self.feature_names, self.input_name)
        if finite:
            source.check_finite(n_threads)
        return source


class DenseSource:
    """Rows of a 2-D float32/float64 array in memory, read in place by the dense kernels.

    Built by DenseInput.open, once per public call. The drivers ask it for what they need:
    block-wise passes (mean_variance, the NaN report), gathered rows, and the kernel calls on
    its rows, which scan them for NaN and infinity on the way while they are not scanned yet.

    Attributes
    ----------
    X : ndarray of shape (n_samples, n_features)
        The rows, float32 or float64, in any layout.
    sample_weight : ndarray of shape (n_samples,) or None
        Row weights in X's dtype; None for unit weights.
    feature_names : ndarray or None
    finite : bool or None
        True once the rows are known to be finite; None while they are not scanned.
    """

    __slots__ = ("X", "sample_weight", "feature_names", "input_name", "finite")
    # fit's steps may run in the compiled loop (_sculley_loop.fit_steps), which reads X.
    compiled_loop = True

    def __init__(self, X, sample_weight=None, feature_names=None, input_name="X"):
        self.X = X
        self.sample_weight = sample_weight
        self.feature_names = feature_names
        self.input_name = input_name
        self.finite = None

    @property
    def n_samples(self):
        return self.X.shape[0]

    @property
    def n_features(self):
        return self.X.shape[1]

    @property
    def dtype(self):
        return self.X.dtype

    # -- finiteness -------------------------------------------------------------------------

    def check_finite(self, n_threads=1):
        """Scan the rows for NaN and infinity unless they are known to be finite."""
        if self.finite is None:
            self.record_scan(_core.all_finite(self.X, n_threads))

    def record_scan(self, finite):
        """Record what a scan of every row found; raise if it was not finite."""
        if not finite:
            self.raise_non_finite()
        self.finite = True

    def raise_non_finite(self):
        """Raise the ValueError that names what is wrong with rows known not to be finite."""
        has_nan = has_inf = False
        for _, block in row_blocks(self.X):
            has_nan = has_nan or bool(np.isnan(block).any())
            has_inf = has_inf or bool(np.isinf(block).any())
        if has_nan:
            raise ValueError(f"Input {self.input_name} contains NaN.")
        if has_inf:
            raise ValueError(
                f"Input {self.input_name} contains infinity or a value too large for "
                f"{self.dtype!r}."
            )
        raise AssertionError("a scan found non-finite values that are not there")

    # -- block-wise passes and gathered rows --------------------------------------------------

    def mean_variance(self):
        """mean_j Var(X[:, j]) (ddof=0) in float64, in row blocks (the tol scale)."""
        column_sums = np.zeros(self.n_features)
        for _, block in row_blocks(self.X):
            column_sums += block.sum(axis=0, dtype=np.float64)
        means = column_sums / self.n_samples
        sq_dev = np.zeros(self.n_features)
        for _, block in row_blocks(self.X):
            block = block - means
            sq_dev += np.einsum("ij,ij->j", block, block)
        return float(np.mean(sq_dev / self.n_samples))

    def gather(self, rows):
        """X[rows] as a new C-ordered array (take is several times faster on small rows,
        but copies any layout but C order whole first)."""
        return self.X.take(rows, axis=0) if self.X.flags.c_contiguous else self.X[rows]

    def weights_at(self, rows):
        return None if self.sample_weight is None else self.sample_weight.take(rows)

    # -- the kernels on these rows ----------------------------------------------------------

    def labels_inertia(self, centers, n_threads, *, rows=None, weighted=True,
                       compute_inertia=True):  # fmt: skip
        """Nearest center of each row (or of X[rows]) and the weighted inertia; a pass over
        every row scans it for NaN and infinity on the way if it is not scanned yet."""
        scan = rows is None and self.finite is None
        labels = np.empty(self.n_samples if rows is None else rows.shape[0], dtype=np.int32)
        weights = self.sample_weight if weighted else None
        inertia = _core.assign_labels(
            self.X, centers, labels, rows, weights, n_threads, compute_inertia, scan
        )
        if scan:
            self.record_scan(inertia is not None)
        return labels, inertia

    def distances(self, centers, n_threads):
        """Euclidean distances of every row to every center, (n_samples, n_clusters)."""
        out = np.empty((self.n_samples, centers.shape[0]), dtype=centers.dtype)
        _core.euclidean_distances(self.X, centers, out, n_threads)
        return out

    def centers_of(self, state, n_threads, *, hold=True):
        """The state's centers as the dense kernels take them: the row-major array."""
        return state.centers

    def scheduled_step(self, state, schedule, stream, n_threads, *, rows=None, weighted=True):
        """One step on every row (or on X[rows]) with its schedule (_sculley_loop): the state's
        centers move in place; returns whether the loop stops after it. A step on every row
        scans it on the assignment pass if it is not scanned yet, and moves nothing if it is
        not finite (then a ValueError)."""
        scan = rows is None and self.finite is None
        weights = self.sample_weight if weighted else None
        stop = _sculley_loop.scheduled_step(
            self.X, state.centers, state.weight_sums, schedule, stream, rows, weights, n_threads,
            scan,
        )  # fmt: skip
        if scan:
            self.record_scan(stop is not None)
        return stop


def open_dense(X, *, input_name="X", dtype=None, names=True):
    """DenseInput(X, ...).open(): the finite rows of an input no caller's memory comes with."""
    return DenseInput(X, input_name=input_name, dtype=dtype, names=names).open()

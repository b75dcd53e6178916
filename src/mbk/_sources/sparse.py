"""CSR rows: where a scipy sparse matrix becomes rows the CSR kernels read.

The rules are scikit-learn's for sparse input (CSR, float32 stays float32, every other number
becomes float64; other sparse formats are converted to CSR, a copy), with two differences:
64-bit indices are read as they are (scikit-learn refuses them), and a matrix that does not
make sense (indptr not starting at 0 or decreasing, an index outside the columns, arrays too
short) is refused with a ValueError before any kernel reads it (scikit-learn reads out of
bounds). The matrix is never densified, sorted, deduplicated or modified: unsorted columns,
duplicate entries and explicit zeros are read in stored order, which is what gives
scikit-learn's results on them.

As for dense input, reading is two steps so that no copy is made before the memory check has
counted it: ``CsrInput(X)`` checks and describes X, ``CsrInput.open`` makes the copy if any
(the conversion to CSR, a cast of the values, indices of one type) and returns the
``CsrSource``. scipy is imported only here, when sparse input arrives.
"""

import numpy as np

from .. import _core, _sculley_loop
from .._sparse import FeatureMajorCenters
from .._validation import check_memory, format_bytes
from .common import RowsShape, check_sample_weight
from .dense import _FLOAT_DTYPES, _check_dtype, _check_shape

_INDEX_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))


def _one_index_type(X):
    """X's (indices, indptr), both of the wider of their two types."""
    index_dtype = np.result_type(X.indices.dtype, X.indptr.dtype)
    return X.indices.astype(index_dtype, copy=False), X.indptr.astype(index_dtype, copy=False)


def _scipy_sparse():
    try:
        import scipy.sparse
    except ImportError as error:  # pragma: no cover - scipy comes with any sparse matrix
        raise ImportError("Sparse input needs scipy: pip install scipy") from error
    return scipy.sparse


class CsrInput(RowsShape):
    """A scipy sparse matrix or array checked and described, before any copy of it is made.

    Parameters
    ----------
    X : scipy sparse matrix or array of shape (n_samples, n_features)
        Any format; CSR is read in place, the others are converted (a copy).
    input_name : str, default="X"
    dtype : numpy dtype or None
        Force this dtype for the values (new data for a fitted model: the centers' dtype).

    Attributes
    ----------
    shape, dtype, feature_names (always None), copy (None, "converted", "cast" or
    "indices": the copy reading X makes), copy_bytes.
    """

    __slots__ = ("input_name", "feature_names", "dtype", "shape", "copy", "copy_bytes",
                 "_matrix", "_index_dtype")  # fmt: skip

    def __init__(self, X, *, input_name="X", dtype=None):
        self.input_name = input_name
        self.feature_names = None
        self._matrix = X
        self.shape = tuple(int(size) for size in X.shape)
        _check_shape(self.shape, input_name)
        stored = np.dtype(X.dtype)
        self.dtype = _check_dtype(stored, input_name) if dtype is None else np.dtype(dtype)
        nnz = int(X.nnz)
        value_bytes = nnz * self.dtype.itemsize
        if X.format != "csr":
            self.copy = "converted"
            self._index_dtype = None
            index_bytes = 8 * (nnz + self.shape[0] + 1)
            self.copy_bytes = nnz * stored.itemsize + index_bytes
            if stored != self.dtype or not stored.isnative:
                self.copy_bytes += value_bytes
            return
        for name in ("data", "indices", "indptr"):
            array = getattr(X, name)
            if not isinstance(array, np.ndarray) or array.ndim != 1:
                raise ValueError(f"{input_name} is not a valid CSR matrix: its {name} is not a "
                                 "1-D array.")  # fmt: skip
        index_dtype = np.result_type(X.indices.dtype, X.indptr.dtype)
        if index_dtype.kind not in "iu":
            raise ValueError(f"{input_name} is not a valid CSR matrix: its indices have dtype "
                             f"{index_dtype}.")  # fmt: skip
        self._index_dtype = index_dtype if index_dtype in _INDEX_DTYPES else np.dtype(np.int64)
        self.copy, self.copy_bytes = None, 0
        if stored != self.dtype or not stored.isnative:
            self.copy, self.copy_bytes = "cast", value_bytes
        for name in ("indices", "indptr"):
            array = getattr(X, name)
            if array.dtype != self._index_dtype or not array.dtype.isnative:
                self.copy = self.copy or "indices"
                self.copy_bytes += array.shape[0] * self._index_dtype.itemsize

    @property
    def row_bytes(self):
        """Bytes a gathered row takes on average (memory estimates): its stored values and
        their indices, and its entry of indptr."""
        per_entry = self.dtype.itemsize + 8
        return 8 + (per_entry * self._matrix.nnz + self.n_samples - 1) // self.n_samples

    def describe(self):
        """The data as error messages name it."""
        return (f"{self.n_samples} x {self.n_features} sparse {self.dtype} with "
                f"{self._matrix.nnz} stored values")  # fmt: skip

    def open(self, sample_weight=None, *, finite=True, n_threads=1, working_bytes=0, what=None):
        """The source of these rows: memory checked, the copy made, the matrix checked (its
        structure always; its values for NaN and infinity: always too, as ``finite`` asks
        for dense input, since the check is one pass over the stored values), weights
        checked. See DenseInput.open for the parameters."""
        if self.copy_bytes + working_bytes:
            check_memory(self.copy_bytes + working_bytes, lambda: self._needs_memory_for(what))
        data, indices, indptr = self._arrays()
        if indptr.shape[0] != self.n_samples + 1:
            raise ValueError(
                f"{self.input_name} is not a valid CSR matrix: indptr has {indptr.shape[0]} "
                f"entries for {self.n_samples} rows (expected {self.n_samples + 1})."
            )
        problem = _core.check_csr(data, indices, indptr, self.n_features, n_threads)
        if problem == "NaN":
            raise ValueError(f"Input {self.input_name} contains NaN.")
        if problem == "infinity":
            raise ValueError(
                f"Input {self.input_name} contains infinity or a value too large for "
                f"{self.dtype!r}."
            )
        if problem is not None:
            raise ValueError(f"{self.input_name} is not a valid CSR matrix: {problem}.")
        weights = None
        if sample_weight is not None:
            weights = check_sample_weight(sample_weight, self.n_samples, self.dtype)
        return CsrSource(data, indices, indptr, self.shape, weights, self.input_name)

    def _needs_memory_for(self, what):
        """What a MemoryError names as needing the memory (see DenseInput)."""
        what = what() if callable(what) else what
        if what is None:
            what = f"Reading {self.input_name} ({self.describe()})"
        if self.copy is not None:
            what += f" (a copy of {format_bytes(self.copy_bytes)})"
        return what

    def _arrays(self):
        """(data, indices, indptr) as the kernels read them: the values in self.dtype, the
        indices and indptr of one type, each C-contiguous; X's own arrays when they are."""
        X = self._matrix
        if self.copy == "converted":
            X = X.tocsr()
            index_dtype = np.result_type(X.indices.dtype, X.indptr.dtype)
            self._index_dtype = index_dtype if index_dtype in _INDEX_DTYPES else np.int64
        if X.dtype not in _FLOAT_DTYPES:
            # scikit-learn's conversion of other numbers: scipy's astype, which also merges
            # duplicate entries and sorts each row's columns (in the copy).
            X = X.astype(np.float64)
        data = np.ascontiguousarray(X.data, dtype=self.dtype.newbyteorder("="))
        indices = np.ascontiguousarray(X.indices, dtype=self._index_dtype)
        indptr = np.ascontiguousarray(X.indptr, dtype=self._index_dtype)
        return data, indices, indptr


class CsrSource(RowsShape):
    """Rows of a checked CSR matrix, read in place by the CSR kernels.

    Built by CsrInput.open, once per public call; the drivers use it as they use a
    DenseSource (finite from the start: the values were checked when it was opened).

    Attributes
    ----------
    data, indices, indptr : ndarray
        The matrix's arrays (float32/float64 values; int32 or int64 indices of one type).
    shape : (int, int)
    sample_weight : ndarray of shape (n_samples,) or None
    """

    __slots__ = ("data", "indices", "indptr", "shape", "sample_weight", "input_name")
    feature_names = None
    finite = True
    # fit runs its steps one compiled call each (_sculley.run_steps): a sparse step costs
    # milliseconds, the loop's Python microseconds.
    compiled_loop = False

    def __init__(self, data, indices, indptr, shape, sample_weight=None, input_name="X"):
        self.data, self.indices, self.indptr = data, indices, indptr
        self.shape = shape
        self.sample_weight = sample_weight
        self.input_name = input_name

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def X(self):
        """The rows as a scipy csr_array over the same arrays (no copy)."""
        return _scipy_sparse().csr_array((self.data, self.indices, self.indptr),
                                         shape=self.shape, copy=False)  # fmt: skip

    def check_finite(self, n_threads=1):
        """Nothing to do: the values were checked when the source was opened."""

    # -- passes and gathered rows -----------------------------------------------------------

    def mean_variance(self):
        """mean_j Var(X[:, j]) (ddof=0) in float64, over the stored values (the tol scale)."""
        nnz = int(self.indptr[-1])
        columns = self.indices[:nnz]
        values = self.data[:nnz].astype(np.float64)
        n = self.n_samples
        means = np.bincount(columns, weights=values, minlength=self.n_features) / n
        deviations = values - means[columns]
        sq_dev = np.bincount(columns, weights=deviations * deviations, minlength=self.n_features)
        stored = np.bincount(columns, minlength=self.n_features)
        # The rows a column stores nothing in are zeros, each mean^2 away from the mean.
        sq_dev += (n - stored) * means * means
        return float(np.mean(sq_dev / n))

    def gather(self, rows):
        """The CSR matrix of rows ``rows`` (a new matrix: the init subsample)."""
        return self.X[rows]

    def weights_at(self, rows):
        return None if self.sample_weight is None else self.sample_weight.take(rows)

    # -- the kernels on these rows ----------------------------------------------------------

    def centers_of(self, state, n_threads, *, hold=True):
        """The state's centers as the CSR kernels take them, feature-major: those the state
        holds, or loaded from its row-major centers, and with ``hold`` then held by it (the
        steps move them there; SculleyState.centers brings the row-major array up to date
        when it is read). predict and the like do not hold: they leave the state as it is,
        as calls from several threads at once must."""
        held = state.held_centers()
        if held is None:
            held = FeatureMajorCenters(state.centers, n_threads)
            if hold:
                state.hold_centers(held, n_threads)
        return held

    @staticmethod
    def _kernel_centers(centers, n_threads):
        """centers (row-major, or already FeatureMajorCenters) as the CSR kernels take them."""
        if isinstance(centers, FeatureMajorCenters):
            return centers
        return FeatureMajorCenters(centers, n_threads)

    def labels_inertia(self, centers, n_threads, *, rows=None, weighted=True,
                       compute_inertia=True):  # fmt: skip
        """Nearest center of each row (or of the rows ``rows``) and the weighted inertia;
        centers: row-major, or FeatureMajorCenters (centers_of)."""
        labels = np.empty(self.n_samples if rows is None else rows.shape[0], dtype=np.int32)
        weights = self.sample_weight if weighted else None
        inertia = _core.assign_labels_csr(
            self.data, self.indices, self.indptr, self.n_features,
            self._kernel_centers(centers, n_threads), labels, rows, weights, n_threads,
            compute_inertia,
        )  # fmt: skip
        return labels, inertia

    def distances(self, centers, n_threads):
        """Euclidean distances of every row to every center, (n_samples, n_clusters), as
        scikit-learn computes them: for float32 rows, on the rows widened to float64 by
        scipy, which merges duplicate entries and sorts the columns (a float64 copy of X
        when it is not in canonical form)."""
        out = np.empty((self.n_samples, centers.shape[0]), dtype=centers.dtype)
        X = self.X
        if self.dtype == np.float32 and not X.has_canonical_format:
            if isinstance(centers, FeatureMajorCenters):
                centers = centers.to_array()
            wide = X.astype(np.float64)
            squared = np.empty(out.shape)
            _core.euclidean_distances_csr(
                wide.data, *_one_index_type(wide), self.n_features,
                FeatureMajorCenters(centers.astype(np.float64), n_threads), squared, n_threads,
            )  # fmt: skip
            out[...] = squared
        else:
            _core.euclidean_distances_csr(
                self.data, self.indices, self.indptr, self.n_features,
                self._kernel_centers(centers, n_threads), out, n_threads,
            )  # fmt: skip
        return np.sqrt(out, out=out)

    def scheduled_step(self, state, schedule, stream, n_threads, *, rows=None, weighted=True):
        """One step on every row (or on the rows ``rows``) with its schedule; returns whether
        the loop stops after it. The state's centers move feature-major (centers_of)."""
        weights = self.sample_weight if weighted else None
        return _sculley_loop.scheduled_step_csr(
            self.data, self.indices, self.indptr, self.n_features,
            self.centers_of(state, n_threads), state.weight_sums, schedule, stream, rows,
            weights, n_threads,
        )  # fmt: skip

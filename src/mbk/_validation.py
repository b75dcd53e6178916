"""Input checks, run once per public call before any work.

The rule is scikit-learn's (float32 stays float32, every other number becomes float64; 2-D,
non-empty, finite), with one difference that matters for large data: an array that already has
the right dtype is used as it is, whatever its memory layout. Fortran-ordered, strided,
read-only and memory-mapped arrays are read in place by the kernels; nothing is copied.
"""

import numbers
import os
import warnings

import numpy as np

from . import _core

_FLOAT_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))
# Rows per block when an exact finiteness scan is needed (bounded temporary memory).
_SCAN_ROWS = 65536


class InvalidParameterError(ValueError, TypeError):
    """A constructor parameter has a wrong type or value.

    Both a ValueError and a TypeError, like scikit-learn's error of the same name, so code
    written for either estimator catches it.
    """


def _is_sparse(X):
    return hasattr(X, "tocsr") and hasattr(X, "nnz")


def feature_names_of(X):
    """Column names of a DataFrame-like X when they are all strings, else None."""
    columns = getattr(X, "columns", None)
    if columns is None or isinstance(X, np.ndarray):
        return None
    names = np.asarray(list(columns), dtype=object)
    if len(names) == 0:
        return None
    types = sorted({type(name).__qualname__ for name in names})
    if len(types) > 1 and "str" in types:
        raise TypeError(
            "Feature names are only supported if all input features have string names, "
            f"but your input has {types} as feature name / column name types. Convert them "
            "all to strings (X.columns = X.columns.astype(str)) or drop the names."
        )
    return names if types == ["str"] else None


def _has_extension_dtypes(X):
    dtypes = getattr(X, "dtypes", None)
    if dtypes is None or not hasattr(X, "to_numpy") or isinstance(X, np.ndarray):
        return False
    if not hasattr(dtypes, "__iter__"):  # a pandas Series has one dtype
        dtypes = [dtypes]
    return any(not isinstance(dtype, np.dtype) for dtype in dtypes)


def _target_dtype(dtype):
    return dtype if dtype in _FLOAT_DTYPES else np.dtype(np.float64)


def as_float_array(X, *, input_name="X", dtype=None, finite=True, n_threads=1):
    """X as a 2-D float32/float64 ndarray, copying only when the dtype or byte order must change.

    ``dtype`` forces a dtype (used after fit, where data is cast to the centers' dtype).
    ``finite=False`` skips the NaN/infinity scan, for a caller whose kernel scans X as it
    reads it (predict). ``n_threads`` threads run the scan.
    """
    if _is_sparse(X):
        raise TypeError(
            f"Sparse input is not supported yet: {input_name} is a sparse "
            f"{type(X).__name__}. Convert it with {input_name}.toarray() first."
        )
    if isinstance(X, np.matrix):
        raise TypeError(
            f"np.matrix is not supported for {input_name}; convert it with np.asarray first."
        )
    if _has_extension_dtypes(X):
        # pandas nullable columns (Float64, Int64, ...): missing values become NaN, which the
        # finiteness check then reports by name.
        X = X.to_numpy(dtype=np.float64, na_value=np.nan)
    # np.asarray of an ndarray subclass (memmap, masked array) is a plain view: no copy.
    array = np.asarray(X)
    if array.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: {input_name} has dtype {array.dtype}.")
    if array.dtype.kind not in "biuf":
        if array.dtype.kind in "OV":
            array = np.asarray(array, dtype=np.float64)  # numbers in an object array: fine
        else:
            raise TypeError(f"{input_name} must hold numbers; got an array of dtype {array.dtype}.")
    if array.ndim != 2:
        if array.ndim == 1:
            raise ValueError(
                f"Expected 2D array, got 1D array instead: {input_name} has shape "
                f"{array.shape}. Reshape your data either using array.reshape(-1, 1) if your "
                "data has a single feature or array.reshape(1, -1) if it contains a single "
                "sample."
            )
        raise ValueError(
            f"Expected 2D array, got {array.ndim}D array instead ({input_name} has shape "
            f"{array.shape})."
        )
    n_samples, n_features = array.shape
    if n_samples < 1:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={array.shape}) while a minimum of 1 is required."
        )
    if n_features < 1:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={array.shape}) while a minimum of 1 is required."
        )
    target = np.dtype(dtype) if dtype is not None else _target_dtype(array.dtype)
    if array.dtype != target or not array.dtype.isnative:
        array = array.astype(target.newbyteorder("="))
    elif (
        not array.flags.aligned
        or array.strides[0] % target.itemsize
        or (array.strides[1] % target.itemsize)
    ):
        array = np.ascontiguousarray(array)
    if finite:
        check_finite(array, input_name, n_threads)
    return array


def check_finite(array, input_name, n_threads=1):
    """Raise ValueError if the 2-D float array holds NaN or infinity (scanned in place)."""
    if _core.all_finite(array, n_threads):
        return
    report_non_finite(array, input_name)


def report_non_finite(array, input_name):
    """Raise the ValueError that names what is wrong with an array known to be non-finite."""
    has_nan = has_inf = False
    for start in range(0, array.shape[0], _SCAN_ROWS):
        block = array[start : start + _SCAN_ROWS]
        has_nan = has_nan or bool(np.isnan(block).any())
        has_inf = has_inf or bool(np.isinf(block).any())
    if has_nan:
        raise ValueError(f"Input {input_name} contains NaN.")
    if has_inf:
        raise ValueError(
            f"Input {input_name} contains infinity or a value too large for {array.dtype!r}."
        )


def check_sample_weight(sample_weight, n_samples, dtype):
    """Weights as a C-contiguous (n_samples,) array of ``dtype``, or None for unit weights."""
    if sample_weight is None:
        return None
    if isinstance(sample_weight, numbers.Number):
        weights = np.full(n_samples, sample_weight, dtype=dtype)
    else:
        if _is_sparse(sample_weight):
            raise TypeError("sample_weight must be a dense array, not a sparse matrix.")
        weights = np.asarray(sample_weight)
        if weights.dtype.kind not in "biuf":
            if weights.dtype.kind == "O":
                weights = weights.astype(np.float64)
            else:
                raise TypeError(f"sample_weight must hold real numbers; got dtype {weights.dtype}.")
        if weights.ndim != 1:
            raise ValueError(
                f"Sample weights must be 1D array or scalar, got {weights.ndim}D array. "
                f"Expected either a scalar value or a 1D array of length {n_samples}."
            )
        if weights.shape[0] != n_samples:
            raise ValueError(f"sample_weight.shape == {weights.shape}, expected {(n_samples,)}!")
        weights = np.ascontiguousarray(weights, dtype=dtype)
    if not np.isfinite(weights).all():
        kind = "NaN" if np.isnan(weights).any() else "infinity"
        raise ValueError(f"Input sample_weight contains {kind}.")
    if not weights.any():
        raise ValueError("Sample weights must contain at least one non-zero number.")
    return weights


class _NoEntropy(np.random.bit_generator.ISeedSequence):
    """A seed sequence of zeros, for a bit generator that is seeded right after."""

    def generate_state(self, n_words, dtype=np.uint32):
        return np.zeros(n_words, dtype=dtype)


def check_random_state(seed, validate_only=False):
    """A RandomState from None (NumPy's global one), an int, or a RandomState.

    An int gives the state of ``np.random.RandomState(seed)``, built without drawing OS
    entropy for a state that the seeding then overwrites (a third of the time; it matters
    on small fits). ``validate_only`` checks the seed and builds nothing.
    """
    if seed is None or seed is np.random:
        return np.random.mtrand._rand
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        if not 0 <= seed < 2**32:
            raise ValueError(f"random_state must be between 0 and 2**32 - 1; got {seed}.")
        if validate_only:
            return None
        random_state = np.random.RandomState(np.random.MT19937(_NoEntropy()))
        random_state.seed(seed)
        return random_state
    if isinstance(seed, np.random.RandomState):
        return seed
    raise ValueError(
        f"random_state must be None, an int or a numpy.random.RandomState; got {seed!r}."
    )


def available_memory():
    """Bytes of memory the process can still get: MemAvailable on Linux, else physical RAM,
    else None (unknown)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _format_bytes(n_bytes):
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n_bytes < 1024 or unit == "TiB":
            return f"{n_bytes:.1f} {unit}" if unit != "bytes" else f"{n_bytes} bytes"
        n_bytes /= 1024
    return None  # not reached


# Working sets below this are not checked against the available memory: reading it costs
# more than small fits take, and an allocation that small failing raises MemoryError anyway.
_UNCHECKED_BYTES = 64 << 20


def check_memory(n_bytes, what):
    """Raise MemoryError, before any work, if n_bytes cannot fit in the available memory."""
    if n_bytes < _UNCHECKED_BYTES:
        return
    available = available_memory()
    if available is not None and n_bytes > available:
        raise MemoryError(
            f"{what} needs about {_format_bytes(n_bytes)} of memory; "
            f"{_format_bytes(available)} is available."
        )


def usable_cpu_count():
    """CPUs this process may run on (affinity and cgroup-aware where the OS says so)."""
    if hasattr(os, "process_cpu_count"):
        count = os.process_cpu_count()
    elif hasattr(os, "sched_getaffinity"):
        count = len(os.sched_getaffinity(0))
    else:
        count = os.cpu_count()
    return max(count or 1, 1)


def resolve_n_threads(n_threads):
    """The OpenMP thread count for the next kernel call.

    None means every usable core, within what OMP_NUM_THREADS and threadpoolctl's
    ``threadpool_limits(..., user_api="openmp")`` allow at the time of the call.
    """
    if n_threads is None:
        return max(1, min(_core.omp_max_threads(), usable_cpu_count()))
    return int(n_threads)


def check_n_features(estimator, X, reset):
    n_features = X.shape[1]
    if reset:
        estimator.n_features_in_ = n_features
        return
    if n_features != estimator.n_features_in_:
        raise ValueError(
            f"X has {n_features} features, but {type(estimator).__name__} is expecting "
            f"{estimator.n_features_in_} features as input."
        )


def check_feature_names(estimator, names, reset):
    """Record the column names seen at fit, or check new data against them."""
    cls = type(estimator).__name__
    if reset:
        if names is not None:
            estimator.feature_names_in_ = names
        elif hasattr(estimator, "feature_names_in_"):
            del estimator.feature_names_in_
        return
    fitted = getattr(estimator, "feature_names_in_", None)
    if fitted is None and names is None:
        return
    if fitted is None:
        warnings.warn(
            f"X has feature names, but {cls} was fitted without feature names", stacklevel=4
        )
        return
    if names is None:
        warnings.warn(
            f"X does not have valid feature names, but {cls} was fitted with feature names",
            stacklevel=4,
        )
        return
    if len(fitted) == len(names) and np.all(fitted == names):
        return
    unseen = sorted(set(names) - set(fitted))
    missing = sorted(set(fitted) - set(names))

    def listing(values):
        shown = [f"- {value}\n" for value in values[:5]]
        return "".join(shown) + ("- ...\n" if len(values) > 5 else "")

    message = "The feature names should match those that were passed during fit.\n"
    if unseen:
        message += "Feature names unseen at fit time:\n" + listing(unseen)
    if missing:
        message += "Feature names seen at fit time, yet now missing:\n" + listing(missing)
    if not unseen and not missing:
        message += "Feature names must be in the same order as they were in fit.\n"
    raise ValueError(message)


def validate_data(estimator, X, *, reset, dtype=None, finite=True):
    """The one entry for data checks in the estimator: names, array, width."""
    names = feature_names_of(X)
    n_threads = resolve_n_threads(getattr(estimator, "n_threads", None))
    array = as_float_array(X, dtype=dtype, finite=finite, n_threads=n_threads)
    check_feature_names(estimator, names, reset)
    check_n_features(estimator, array, reset)
    return array

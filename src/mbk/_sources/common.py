"""What every source checks the same way: feature names, sample weights, sparse input."""

import numbers

import numpy as np

from .._validation import warn_user


class RowsShape:
    """n_samples and n_features from a ``shape`` attribute (inputs and sources)."""

    __slots__ = ()

    @property
    def n_samples(self):
        return self.shape[0]

    @property
    def n_features(self):
        return self.shape[1]


def is_sparse(X):
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


def check_feature_names(fitted, names, estimator_name):
    """Check new data's column names against those seen at fit (None: none were)."""
    if fitted is None and names is None:
        return
    if fitted is None:
        warn_user(f"X has feature names, but {estimator_name} was fitted without feature names",
                  UserWarning)  # fmt: skip
        return
    if names is None:
        warn_user(
            f"X does not have valid feature names, but {estimator_name} was fitted with "
            "feature names",
            UserWarning,
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


def check_n_features(n_features, fitted, estimator_name):
    if n_features != fitted:
        raise ValueError(
            f"X has {n_features} features, but {estimator_name} is expecting {fitted} "
            "features as input."
        )


def check_sample_weight(sample_weight, n_samples, dtype):
    """Weights as a C-contiguous (n_samples,) array of ``dtype``, or None for unit weights."""
    if sample_weight is None:
        return None
    if isinstance(sample_weight, numbers.Number):
        weights = np.full(n_samples, sample_weight, dtype=dtype)
    else:
        if is_sparse(sample_weight):
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

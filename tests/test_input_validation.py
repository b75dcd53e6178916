"""Bad input is refused with a ValueError or TypeError that names the problem, and the caller's
arrays are never modified. Accepted input types are converted by scikit-learn's dtype rule
(float32 stays float32, every other number becomes float64).
"""

import re

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import mbk
from conftest import make_blobs
from mbk import MiniBatchKMeans

N_SAMPLES, N_FEATURES, N_CLUSTERS = 40, 4, 3

# Methods that take X. The "again" variant is a second partial_fit after a good first one,
# where validation runs against the fitted state instead of resetting it.
TRAIN_METHODS = ["fit", "partial_fit", "fit_predict", "fit_transform"]
FITTED_METHODS = ["partial_fit_again", "predict", "transform", "score"]
ALL_METHODS = TRAIN_METHODS + FITTED_METHODS


def _data(dtype=np.float64):
    return make_blobs(N_SAMPLES, N_FEATURES, N_CLUSTERS, dtype=dtype)[0]


def _estimator(**params):
    params = {"n_clusters": N_CLUSTERS, "random_state": 0, "batch_size": 16, **params}
    return MiniBatchKMeans(**params)


def _call(method, X, **kwargs):
    """Run one public method on X: training methods on a new estimator, others after a fit."""
    if method in TRAIN_METHODS:
        return getattr(_estimator(), method)(X, **kwargs)
    if method == "partial_fit_again":
        return _estimator().partial_fit(_data()).partial_fit(X, **kwargs)
    return getattr(_estimator().fit(_data()), method)(X, **kwargs)


def _assert_refused(method, X, exception, match, **kwargs):
    """The call raises `exception` matching `match` and leaves X as it was."""
    before = X.copy() if isinstance(X, np.ndarray) else None
    with pytest.raises(exception, match=match):
        _call(method, X, **kwargs)
    if before is not None:
        assert_array_equal(X, before)
        assert X.dtype == before.dtype


# -- X: non-finite values ------------------------------------------------------------------------

NON_FINITE = [
    pytest.param(np.nan, "Input X contains NaN", id="nan"),
    pytest.param(np.inf, "Input X contains infinity", id="+inf"),
    pytest.param(-np.inf, "Input X contains infinity", id="-inf"),
]


@pytest.mark.parametrize("method", ALL_METHODS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("value, match", NON_FINITE)
def test_non_finite_X_is_refused(method, dtype, value, match):
    X = _data(dtype)
    X[N_SAMPLES - 1, N_FEATURES - 1] = value  # last cell: a scan that stops early misses it
    _assert_refused(method, X, ValueError, match)


@pytest.mark.parametrize("value, match", NON_FINITE)
def test_non_finite_X_in_a_large_array_is_refused(value, match):
    # Past the first scan block, so a blocked scan has to look at every block.
    X = np.zeros((70_000, 2))
    X[-1, 0] = value
    with pytest.raises(ValueError, match=match):
        _estimator(n_clusters=2).partial_fit(X)


def test_overflow_to_infinity_in_a_dtype_cast_is_refused():
    # 1e300 is finite in float64 but not in float32, the dtype of a float32 model.
    model = _estimator().fit(_data(np.float32))
    X = _data()
    X[0, 0] = 1e300
    with np.errstate(over="ignore"):
        with pytest.raises(ValueError, match="infinity or a value too large for dtype"):
            model.predict(X)


# -- X: shape and kind ---------------------------------------------------------------------------

BAD_X = [
    pytest.param(np.empty((0, N_FEATURES)), ValueError, r"0 sample\(s\)", id="0-rows"),
    pytest.param(np.empty((N_SAMPLES, 0)), ValueError, r"0 feature\(s\)", id="0-columns"),
    pytest.param(np.empty((0, 0)), ValueError, r"0 sample\(s\)", id="0x0"),
    pytest.param(np.ones(N_SAMPLES), ValueError, "Expected 2D array, got 1D array", id="1-D"),
    pytest.param(np.float64(1.0), ValueError, "Expected 2D array, got 0D array", id="scalar"),
    pytest.param(
        np.ones((N_SAMPLES, N_FEATURES, 2)), ValueError, "Expected 2D array, got 3D", id="3-D"
    ),
    pytest.param(
        np.ones((N_SAMPLES, N_FEATURES), dtype=complex), ValueError, "Complex data", id="complex"
    ),
    pytest.param(
        np.full((N_SAMPLES, N_FEATURES), "a"), TypeError, "X must hold numbers", id="str-array"
    ),
    pytest.param(
        [["a"] * N_FEATURES] * N_SAMPLES, TypeError, "X must hold numbers", id="list-of-str"
    ),
    pytest.param(
        np.full((N_SAMPLES, N_FEATURES), "a", dtype=object),
        ValueError,
        "could not convert string to float",
        id="object-str",
    ),
    pytest.param(
        np.full((N_SAMPLES, N_FEATURES), b"a"), TypeError, "X must hold numbers", id="bytes"
    ),
    pytest.param(
        np.zeros((N_SAMPLES, N_FEATURES), dtype="datetime64[s]"),
        TypeError,
        "X must hold numbers",
        id="datetime64",
    ),
]


@pytest.mark.parametrize("method", ALL_METHODS)
@pytest.mark.parametrize("X, exception, match", BAD_X)
def test_bad_X_is_refused(method, X, exception, match):
    _assert_refused(method, X, exception, match)


@pytest.mark.parametrize("method", ALL_METHODS)
@pytest.mark.parametrize("container", ["csr_matrix", "csr_array", "csc_matrix", "coo_array"])
def test_sparse_X_gives_the_dense_result(method, container):
    # Sparse X is read as CSR (other formats converted): every method returns what it
    # returns for the same data dense, up to the rounding of the sparse formulas.
    sparse = pytest.importorskip("scipy.sparse")
    X = _data()
    X[X < 0] = 0
    dense, sparse_result = _call(method, X), _call(method, getattr(sparse, container)(X))
    if isinstance(dense, MiniBatchKMeans):
        dense, sparse_result = dense.cluster_centers_, sparse_result.cluster_centers_
    np.testing.assert_allclose(sparse_result, dense, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", ["init", "sample_weight"])
def test_a_sparse_init_or_weight_is_refused(name):
    sparse = pytest.importorskip("scipy.sparse")
    X = _data()
    value = sparse.csr_matrix(X[:N_CLUSTERS] if name == "init" else X[:, :1].T)
    with pytest.raises(TypeError, match="(must be a dense array|not a sparse matrix)"):
        if name == "init":
            _estimator(init=value, n_init=1).fit(X)
        else:
            _estimator().fit(X, sample_weight=value)


def _subclass(kind, X):
    if kind == "matrix":
        return np.matrix(X)
    mask = np.zeros(X.shape, dtype=bool)
    mask[0, 0] = True
    return np.ma.masked_array(X, mask=mask)


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
@pytest.mark.parametrize("method", ALL_METHODS)
@pytest.mark.parametrize("kind", ["matrix", "masked-array"])
def test_ndarray_subclass_X_is_handled(kind, method):
    # Either the plain data is used (scikit-learn's np.asarray: the mask is ignored) and the
    # result equals the plain ndarray's, or a clear error names the type. Never a NumPy
    # error from deep inside the algorithm.
    X = _data()
    try:
        result = _call(method, _subclass(kind, X))
    except (TypeError, ValueError) as error:
        assert re.search("matrix|mask", str(error), re.IGNORECASE), error
        return
    expected = _call(method, X)
    if isinstance(expected, MiniBatchKMeans):
        result, expected = result.cluster_centers_, expected.cluster_centers_
    assert type(result) is type(expected)
    assert_array_equal(result, expected)


@pytest.mark.parametrize("method", ALL_METHODS)
@pytest.mark.parametrize("dtype", ["Float64", "Int64"])
def test_pandas_missing_values_are_refused_as_nan(method, dtype):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(np.round(_data())).astype(dtype)
    frame.iloc[N_SAMPLES - 1, 0] = pd.NA
    with pytest.raises(ValueError, match="Input X contains NaN"):
        _call(method, frame)


# -- Constructor parameters ----------------------------------------------------------------------

_WRONG_K_INIT = np.zeros((N_CLUSTERS - 1, N_FEATURES))
_WRONG_WIDTH_INIT = np.zeros((N_CLUSTERS, N_FEATURES + 1))
_NAN_INIT = np.full((N_CLUSTERS, N_FEATURES), np.nan)
_INF_INIT = np.full((N_CLUSTERS, N_FEATURES), np.inf)

BAD_PARAMS = [
    ({"n_clusters": 0}, ValueError, "n_clusters must be >= 1; got 0"),
    ({"n_clusters": -2}, ValueError, "n_clusters must be >= 1; got -2"),
    (
        {"n_clusters": N_SAMPLES + 1},
        ValueError,
        f"n_samples={N_SAMPLES} should be >= n_clusters={N_SAMPLES + 1}",
    ),
    ({"n_clusters": 3.0}, TypeError, "n_clusters must be an int"),
    ({"n_clusters": True}, TypeError, "n_clusters must be an int; got True"),
    ({"n_clusters": "3"}, TypeError, "n_clusters must be an int"),
    ({"n_clusters": None}, TypeError, "n_clusters must be an int"),
    ({"init": "foo"}, ValueError, "init must be 'k-means\\+\\+', 'random', a callable or an"),
    ({"init": 5}, TypeError, "init must be 'k-means\\+\\+', 'random', a callable or an"),
    (
        {"init": _WRONG_K_INIT},
        ValueError,
        r"initial centers \(2, 4\) does not match the number of clusters 3",
    ),
    (
        {"init": _WRONG_WIDTH_INIT},
        ValueError,
        r"initial centers \(3, 5\) does not match the number of features of the data 4",
    ),
    ({"init": _NAN_INIT}, ValueError, "Input init contains NaN"),
    ({"init": _INF_INIT}, ValueError, "Input init contains infinity"),
    ({"init": np.zeros(N_FEATURES)}, ValueError, "Expected 2D array, got 1D array"),
    ({"init": np.full((N_CLUSTERS, N_FEATURES), "a")}, TypeError, "init must hold numbers"),
    ({"max_iter": 0}, ValueError, "max_iter must be >= 1; got 0"),
    ({"max_iter": 1.5}, TypeError, "max_iter must be an int"),
    ({"batch_size": 0}, ValueError, "batch_size must be >= 1; got 0"),
    ({"batch_size": -1}, ValueError, "batch_size must be >= 1; got -1"),
    ({"batch_size": None}, TypeError, "batch_size must be an int"),
    ({"verbose": -1}, ValueError, "verbose must be >= 0; got -1"),
    ({"tol": -1}, ValueError, "tol must be finite and >= 0; got -1"),
    ({"tol": np.nan}, ValueError, "tol must be finite and >= 0; got nan"),
    ({"tol": np.inf}, ValueError, "tol must be finite and >= 0; got inf"),
    ({"tol": "0.1"}, TypeError, "tol must be a real number"),
    ({"max_no_improvement": -1}, ValueError, "max_no_improvement must be >= 0; got -1"),
    ({"max_no_improvement": 2.5}, TypeError, "max_no_improvement must be an int or None"),
    ({"init_size": 0}, ValueError, "init_size must be >= 1; got 0"),
    ({"init_size": 10.0}, TypeError, "init_size must be an int or None"),
    ({"n_init": 0}, ValueError, "n_init must be >= 1; got 0"),
    ({"n_init": "foo"}, ValueError, "n_init must be 'auto' or an int >= 1; got 'foo'"),
    ({"n_init": 2.0}, TypeError, "n_init must be an int"),
    ({"reassignment_ratio": -0.1}, ValueError, "reassignment_ratio must be finite and >= 0"),
    ({"reassignment_ratio": np.nan}, ValueError, "reassignment_ratio must be finite and >= 0"),
    ({"reassignment_ratio": None}, TypeError, "reassignment_ratio must be a real number"),
    ({"n_threads": 0}, ValueError, "n_threads must be >= 1; got 0"),
    ({"n_threads": -1}, ValueError, "n_threads must be >= 1; got -1"),
    ({"n_threads": 2.0}, TypeError, "n_threads must be an int or None"),
    ({"random_state": "x"}, ValueError, "random_state must be None, an int or a numpy.random"),
    ({"random_state": 1.5}, ValueError, "random_state must be None, an int or a numpy.random"),
    ({"compute_labels": "yes"}, TypeError, "compute_labels must be a bool; got 'yes'"),
    ({"compute_labels": 1}, TypeError, "compute_labels must be a bool; got 1"),
]


def _param_id(params):
    ((name, value),) = params.items()
    if isinstance(value, list):
        return f"{name}=list"
    if isinstance(value, np.random.RandomState):
        return f"{name}=RandomState"
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            return f"{name}={'nan' if np.isnan(value).any() else 'inf'}-array"
        shape = "x".join(map(str, value.shape))
        return f"{name}={value.dtype.kind}-array-{shape}"
    return f"{name}={value!r}"


@pytest.mark.parametrize("method", ["fit", "partial_fit", "fit_predict"])
@pytest.mark.parametrize(
    "params, exception, match",
    [pytest.param(*case, id=_param_id(case[0])) for case in BAD_PARAMS],
)
def test_bad_parameter_is_refused(method, params, exception, match):
    ((name, value),) = params.items()
    model = MiniBatchKMeans(**{"n_clusters": N_CLUSTERS, "random_state": 0, name: value})
    value_before = value.copy() if isinstance(value, np.ndarray) else None
    with pytest.raises(exception, match=match):
        getattr(model, method)(_data())
    assert not hasattr(model, "cluster_centers_")
    assert model.get_params()[name] is value  # parameters are never rewritten
    if value_before is not None:
        assert_array_equal(value, value_before)


# scikit-learn's `verbose` constraint accepts bools (and `verbose=True` is common in user code).
GOOD_PARAMS = [
    pytest.param(params, id=_param_id(params))
    for params in [
        {"n_clusters": np.int64(N_CLUSTERS)},
        {"n_clusters": N_SAMPLES},
        {"n_clusters": 1},
        {"compute_labels": np.True_},
        {"compute_labels": False},
        {"max_no_improvement": None},
        {"max_no_improvement": 0},
        {"tol": 0},
        {"tol": 1e-3},
        {"reassignment_ratio": 0},
        {"n_init": np.int32(2)},
        {"n_threads": 1},
        {"random_state": np.random.RandomState(0)},
        {"init": "random"},
        {"init": [[float(i)] * N_FEATURES for i in range(N_CLUSTERS)]},
        {"init_size": N_SAMPLES * 10},
        {"batch_size": N_SAMPLES * 10},
        {"verbose": np.int64(0)},
    ]
] + [pytest.param({"verbose": value}, id=f"verbose={value}") for value in (False, True)]


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
@pytest.mark.parametrize("params", GOOD_PARAMS)
def test_valid_edge_parameters_are_accepted(method, params):
    X = _data()
    model = getattr(_estimator(**params), method)(X)
    assert np.isfinite(model.cluster_centers_).all()
    assert model.cluster_centers_.shape == (model.n_clusters, N_FEATURES)


# -- sample_weight -------------------------------------------------------------------------------

BAD_WEIGHTS = [
    pytest.param(
        np.ones(N_SAMPLES - 1),
        ValueError,
        re.escape(f"sample_weight.shape == ({N_SAMPLES - 1},), expected ({N_SAMPLES},)"),
        id="wrong-length",
    ),
    pytest.param(
        np.ones((N_SAMPLES, 1)), ValueError, "Sample weights must be 1D array or scalar", id="2-D"
    ),
    pytest.param(
        np.r_[np.ones(N_SAMPLES - 1), np.nan], ValueError, "sample_weight contains NaN", id="nan"
    ),
    pytest.param(
        np.r_[np.ones(N_SAMPLES - 1), np.inf],
        ValueError,
        "sample_weight contains infinity",
        id="inf",
    ),
    pytest.param(np.zeros(N_SAMPLES), ValueError, "at least one non-zero number", id="all-zeros"),
    pytest.param(0.0, ValueError, "at least one non-zero number", id="scalar-zero"),
    pytest.param(
        np.full(N_SAMPLES, "a"), TypeError, "sample_weight must hold real numbers", id="str"
    ),
]


@pytest.mark.parametrize(
    "method", ["fit", "partial_fit", "partial_fit_again", "fit_predict", "fit_transform", "score"]
)
@pytest.mark.parametrize("sample_weight, exception, match", BAD_WEIGHTS)
def test_bad_sample_weight_is_refused(method, sample_weight, exception, match):
    before = np.copy(sample_weight)
    _assert_refused(method, _data(), exception, match, sample_weight=sample_weight)
    assert_array_equal(sample_weight, before)


@pytest.mark.parametrize("method", ["fit", "fit_predict", "fit_transform"])
@pytest.mark.parametrize(
    "sample_weight",
    [np.r_[-1.0, np.ones(N_SAMPLES - 1)], -np.ones(N_SAMPLES), -1.0],
    ids=["one-negative", "all-negative", "negative-scalar"],
)
def test_negative_sample_weight_is_refused_by_fit(method, sample_weight):
    # fit draws its batches in proportion to the weights, which needs them non-negative.
    _assert_refused(method, _data(), ValueError, "non-negative", sample_weight=sample_weight)


@pytest.mark.parametrize(
    "sample_weight",
    [np.r_[-1.0, np.ones(N_SAMPLES - 1)], -np.ones(N_SAMPLES)],
    ids=["one-negative", "all-negative"],
)
@pytest.mark.parametrize("seeded_by", ["previous-partial_fit", "init-array"])
def test_negative_sample_weight_is_accepted_by_partial_fit(sample_weight, seeded_by):
    # As in scikit-learn: a partial_fit step multiplies by the weights and does not sample.
    X = _data()
    if seeded_by == "init-array":
        model = _estimator(init=X[:N_CLUSTERS].copy())
    else:
        model = _estimator().partial_fit(X)
    model.partial_fit(X, sample_weight=sample_weight)
    assert model.cluster_centers_.shape == (N_CLUSTERS, N_FEATURES)
    assert model.labels_.shape == (N_SAMPLES,)


def test_negative_sample_weight_in_k_means_plus_plus_seeding_is_refused():
    # The first partial_fit seeds with k-means++, which samples in proportion to the weights
    # (scikit-learn refuses this case with the same NumPy message).
    sample_weight = np.r_[-1.0, np.ones(N_SAMPLES - 1)]
    with pytest.raises(ValueError, match="non-negative"):
        _estimator().partial_fit(_data(), sample_weight=sample_weight)


# -- Number of features after fit ----------------------------------------------------------------


@pytest.mark.parametrize("fitted_with", ["fit", "partial_fit"])
@pytest.mark.parametrize("method", ["predict", "transform", "score", "partial_fit"])
@pytest.mark.parametrize("n_features", [N_FEATURES - 1, N_FEATURES + 1])
def test_other_number_of_features_is_refused(fitted_with, method, n_features):
    X = _data()
    model = getattr(_estimator(), fitted_with)(X)
    centers = model.cluster_centers_.copy()
    X_other = make_blobs(10, n_features, 2, seed=1)[0]
    message = (
        f"X has {n_features} features, but MiniBatchKMeans is expecting {N_FEATURES} "
        "features as input"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        getattr(model, method)(X_other)
    # The fitted state is untouched by the refused call.
    assert model.n_features_in_ == N_FEATURES
    assert_array_equal(model.cluster_centers_, centers)


def test_refit_with_other_number_of_features_is_allowed():
    model = _estimator().fit(_data())
    X = make_blobs(N_SAMPLES, N_FEATURES + 2, N_CLUSTERS, seed=1)[0]
    model.fit(X)
    assert model.n_features_in_ == N_FEATURES + 2
    assert model.predict(X).shape == (N_SAMPLES,)


# -- Use before fit ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["predict", "transform", "score", "get_feature_names_out"])
def test_use_before_fit_raises_not_fitted_error(method):
    args = () if method == "get_feature_names_out" else (_data(),)
    with pytest.raises(mbk.NotFittedError, match="instance is not fitted yet"):
        getattr(_estimator(), method)(*args)


def test_not_fitted_error_is_value_and_attribute_error():
    # As scikit-learn's, so `except ValueError` and `hasattr` style code keep working.
    assert issubclass(mbk.NotFittedError, ValueError)
    assert issubclass(mbk.NotFittedError, AttributeError)


def test_not_fitted_error_is_scikit_learns():
    exceptions = pytest.importorskip("sklearn.exceptions")
    assert mbk.NotFittedError is exceptions.NotFittedError


def test_failed_first_fit_leaves_estimator_unfitted():
    model = _estimator(n_clusters=N_SAMPLES + 1)
    with pytest.raises(ValueError, match="should be >= n_clusters"):
        model.fit(_data())
    with pytest.raises(mbk.NotFittedError):
        model.predict(_data())


# -- Callable init -------------------------------------------------------------------------------


def _too_few_centers(X, n_clusters, random_state):
    return X[: n_clusters - 1].copy()


def _too_narrow_centers(X, n_clusters, random_state):
    return X[:n_clusters, :-1].copy()


def _nan_centers(X, n_clusters, random_state):
    return np.full((n_clusters, X.shape[1]), np.nan)


def _inf_centers(X, n_clusters, random_state):
    return np.full((n_clusters, X.shape[1]), -np.inf)


def _flat_centers(X, n_clusters, random_state):
    return X[:n_clusters].ravel()


def _no_centers(X, n_clusters, random_state):
    return None


BAD_CALLABLES = [
    pytest.param(
        _too_few_centers, r"\(2, 4\) does not match the number of clusters 3", id="wrong-k"
    ),
    pytest.param(
        _too_narrow_centers,
        r"\(3, 3\) does not match the number of features of the data 4",
        id="wrong-n_features",
    ),
    pytest.param(_nan_centers, "centers returned by init contains NaN", id="nan"),
    pytest.param(_inf_centers, "centers returned by init contains infinity", id="inf"),
    pytest.param(_flat_centers, "Expected 2D array, got 1D array", id="1-D"),
    pytest.param(_no_centers, "Expected 2D array, got 0D array", id="None"),
]


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
@pytest.mark.parametrize("init, match", BAD_CALLABLES)
def test_callable_init_returning_bad_centers_is_refused(method, init, match):
    X = _data()
    before = X.copy()
    model = _estimator(init=init)
    with pytest.raises(ValueError, match=match):
        getattr(model, method)(X)
    assert not hasattr(model, "cluster_centers_")
    assert_array_equal(X, before)


def test_callable_init_result_is_copied():
    # The centers a callable returns are owned by the caller too.
    returned = []

    def init(X, n_clusters, random_state):
        returned.append(X[:n_clusters].copy())
        return returned[-1]

    X = _data()
    model = _estimator(init=init, n_init=1).partial_fit(X)
    snapshot = returned[0].copy()
    model.partial_fit(X)
    assert not np.shares_memory(model.cluster_centers_, returned[0])
    assert_array_equal(returned[0], snapshot)


# -- The caller's arrays are never modified ------------------------------------------------------


def _frozen(array):
    """A read-only copy of the array in the layout given, and a pristine copy to compare."""
    frozen = array.copy(order="K")
    frozen.flags.writeable = False
    return frozen, array.copy()


INITS = ["k-means++", "random", "array", "callable"]


def _init_param(kind, X):
    if kind == "array":
        return _frozen(X[:N_CLUSTERS] + 0.5)
    if kind == "callable":
        return (lambda X, n_clusters, random_state: X[:n_clusters]), None
    return kind, None


@pytest.mark.parametrize("method", ["fit", "partial_fit", "fit_predict", "fit_transform"])
@pytest.mark.parametrize("init_kind", INITS)
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_training_leaves_caller_arrays_unchanged(method, init_kind, order, dtype):
    # Read-only inputs make an in-place write fail loudly; the copies catch anything else.
    X, X_before = _frozen(np.asarray(_data(dtype), order=order))
    weights, weights_before = _frozen(np.linspace(0.5, 2.0, N_SAMPLES).astype(dtype))
    init, init_before = _init_param(init_kind, X_before)
    model = _estimator(init=init)
    getattr(model, method)(X, sample_weight=weights)
    model.partial_fit(X, sample_weight=weights)
    assert_array_equal(X, X_before)
    assert_array_equal(weights, weights_before)
    if init_before is not None:
        assert_array_equal(init, init_before)
        assert not np.shares_memory(model.cluster_centers_, init)


@pytest.mark.parametrize("fitted_with", ["fit", "partial_fit"])
def test_partial_fit_after_array_init_leaves_init_unchanged(fitted_with):
    # The init array must be copied at fit: partial_fit updates cluster_centers_ in place.
    X = _data()
    init = X[:N_CLUSTERS] + 0.5  # writable, so an in-place update would go unnoticed
    init_before = init.copy()
    model = getattr(_estimator(init=init), fitted_with)(X)
    for start in range(0, N_SAMPLES, 10):
        model.partial_fit(X[start : start + 10])
    assert_array_equal(init, init_before)
    assert model.init is init
    assert not np.shares_memory(model.cluster_centers_, init)
    assert not np.array_equal(model.cluster_centers_, init_before)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_prediction_leaves_caller_arrays_and_model_unchanged(dtype):
    model = _estimator().fit(_data(dtype))
    centers = model.cluster_centers_.copy()
    X, X_before = _frozen(_data(dtype)[::-1])
    weights, weights_before = _frozen(np.linspace(0.5, 2.0, N_SAMPLES))
    model.predict(X)
    model.transform(X)
    model.score(X, sample_weight=weights)
    assert_array_equal(X, X_before)
    assert_array_equal(weights, weights_before)
    assert_array_equal(model.cluster_centers_, centers)


def test_labels_are_not_views_of_caller_data():
    X = _data()
    model = _estimator().fit(X)
    labels = model.fit_predict(X)
    assert not np.shares_memory(labels, X)
    assert not np.shares_memory(model.cluster_centers_, X)


# -- Accepted dtypes -----------------------------------------------------------------------------


def _as(dtype, X):
    if dtype is bool:
        return X > 0
    return np.round(X).astype(dtype) if np.dtype(dtype).kind in "iu" else X.astype(dtype)


@pytest.mark.parametrize(
    "dtype, centers_dtype",
    [
        (np.int64, np.float64),
        (np.int32, np.float64),
        (np.uint8, np.float64),
        (bool, np.float64),
        (np.float16, np.float64),
        (">f8", np.float64),
        (object, np.float64),
        (np.float64, np.float64),
        (np.float32, np.float32),
    ],
    ids=[
        "int64",
        "int32",
        "uint8",
        "bool",
        "float16",
        "big-endian-float64",
        "object",
        "float64",
        "float32",
    ],
)
@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_numeric_dtypes_are_accepted(dtype, centers_dtype, method):
    X = _as(dtype, np.abs(_data()))
    model = getattr(_estimator(), method)(X)
    assert model.cluster_centers_.dtype == centers_dtype
    assert model.cluster_centers_.dtype.isnative
    assert np.isfinite(model.cluster_centers_).all()
    assert model.transform(X).dtype == centers_dtype
    assert model.predict(X).shape == (N_SAMPLES,)
    assert np.isfinite(model.score(X))


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8], ids=["int64", "int32", "uint8"])
def test_integer_X_gives_the_results_of_float64_X(dtype):
    X_int = _as(dtype, np.abs(_data()))
    X_float = X_int.astype(np.float64)
    a = _estimator().fit(X_int)
    b = _estimator().fit(X_float)
    assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    assert_array_equal(a.labels_, b.labels_)
    assert a.inertia_ == b.inertia_
    assert_array_equal(a.transform(X_int), b.transform(X_float))
    assert a.score(X_int) == b.score(X_float)


def test_float64_data_after_a_float32_fit_is_computed_in_float32():
    model = _estimator().fit(_data(np.float32))
    X = _data()
    assert model.transform(X).dtype == np.float32
    assert_array_equal(model.predict(X), model.predict(X.astype(np.float32)))
    model.partial_fit(X)
    assert model.cluster_centers_.dtype == np.float32


@pytest.mark.parametrize("seed", [0, 1, 42, 2**31, 2**32 - 1])
def test_an_int_random_state_is_numpys_random_state_of_that_seed(seed):
    from mbk._validation import check_random_state

    ours, numpys = check_random_state(seed), np.random.RandomState(seed)
    for a, b in zip(ours.get_state(), numpys.get_state(), strict=True):
        assert np.array_equal(a, b)
    assert np.array_equal(ours.random_sample(10), numpys.random_sample(10))
    assert check_random_state(seed) is not check_random_state(seed)  # a fresh one each time


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("value, match", NON_FINITE)
def test_a_non_finite_batch_after_seeding_changes_nothing(dtype, value, match):
    # Once seeded, partial_fit scans a batch on the step's own pass: the error comes before
    # any center, running weight or counter moves, and the next batches continue exactly.
    rng = np.random.RandomState(0)
    batches = [rng.standard_normal((300, 4)).astype(dtype) for _ in range(4)]
    bad = batches[1].copy()
    bad[-1, -1] = value
    model = _estimator(n_clusters=3, batch_size=300).partial_fit(batches[0])
    reference = _estimator(n_clusters=3, batch_size=300).partial_fit(batches[0])
    before = {key: np.copy(val) for key, val in vars(model).items() if key.endswith("_")}
    with pytest.raises(ValueError, match=match):
        model.partial_fit(bad)
    for key, val in before.items():
        assert_array_equal(getattr(model, key), val)
    for batch in batches[1:]:
        model.partial_fit(batch)
        reference.partial_fit(batch)
    assert_array_equal(model.cluster_centers_, reference.cluster_centers_)

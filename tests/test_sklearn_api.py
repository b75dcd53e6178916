"""The estimator as a scikit-learn citizen: estimator checks, signature, clone, pipelines,
grid search, set_output, feature names, pickling; and that mbk works without scikit-learn.
"""

import inspect
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

pytest.importorskip("sklearn")

from sklearn.base import clone, is_clusterer  # noqa: E402
from sklearn.cluster import MiniBatchKMeans as SklearnMiniBatchKMeans  # noqa: E402
from sklearn.model_selection import GridSearchCV, KFold  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import (  # noqa: E402
    check_estimator,
    parametrize_with_checks,
)

from conftest import make_blobs  # noqa: E402
from mbk import MiniBatchKMeans  # noqa: E402

N_SAMPLES, N_FEATURES, N_CLUSTERS = 90, 3, 3


@pytest.fixture
def X():
    return make_blobs(N_SAMPLES, N_FEATURES, N_CLUSTERS)[0]


def _model(**params):
    return MiniBatchKMeans(**{"n_clusters": N_CLUSTERS, "random_state": 0, **params})


# -- scikit-learn's estimator checks -------------------------------------------------------------

# The same expected failures scikit-learn lists for its own MiniBatchKMeans: fit draws its
# batches in proportion to sample_weight, so a weight equals repeated rows only in
# distribution, not draw for draw, on dense and on sparse data alike (the estimator's tags
# say it takes sparse input, so the sparse variants of the checks run too).
EXPECTED_FAILED_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data": (
        "weighted batch sampling is equivalent to repetition only in expectation"
    ),
    "check_sample_weight_equivalence_on_sparse_data": (
        "weighted batch sampling is equivalent to repetition only in expectation"
    ),
}


# Array-API checks raise SkipTest without SCIPY_ARRAY_API=1; parametrize_with_checks lets pytest
# report them as skipped tests (no SkipTestWarning, which filterwarnings=error would turn into
# a failure under check_estimator's default on_skip="warn").
@parametrize_with_checks(
    [MiniBatchKMeans(n_clusters=2, n_init=2, max_iter=5, batch_size=10)],
    expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS,
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_check_estimator_fails_only_the_expected_checks():
    # The same suite through check_estimator, as a user would run it: nothing fails but the
    # listed checks, and only the array-API checks are skipped.
    results = check_estimator(
        MiniBatchKMeans(n_clusters=2, n_init=2, max_iter=5, batch_size=10),
        expected_failed_checks=EXPECTED_FAILED_CHECKS,
        on_skip=None,
        on_fail=None,
    )
    by_status = {}
    for result in results:
        by_status.setdefault(result["status"], set()).add(result["check_name"])
    assert "failed" not in by_status, by_status["failed"]
    assert by_status.get("xfail", set()) <= set(EXPECTED_FAILED_CHECKS)
    assert all("array_api" in name for name in by_status.get("skipped", ())), by_status
    assert len(by_status["passed"]) > 40


def test_is_a_clusterer_and_a_transformer():
    model = _model()
    assert is_clusterer(model)
    tags = model.__sklearn_tags__()
    assert tags.estimator_type == "clusterer"
    assert tags.transformer_tags is not None
    assert tags.input_tags.sparse


def test_tags_say_sparse_input_is_supported():
    # what makes scikit-learn's checks (and meta-estimators) pass sparse data to the estimator
    assert MiniBatchKMeans().__sklearn_tags__().input_tags.sparse is True


# -- Signature, clone, parameters, repr ----------------------------------------------------------


def test_signature_is_scikit_learns_plus_n_threads_algorithm_and_sampling():
    ours = inspect.signature(MiniBatchKMeans).parameters
    theirs = inspect.signature(SklearnMiniBatchKMeans).parameters
    assert list(ours) == [*theirs, "n_threads", "algorithm", "sampling"]
    for name, parameter in theirs.items():
        assert ours[name].kind == parameter.kind, name
        assert ours[name].default == parameter.default, name
        assert type(ours[name].default) is type(parameter.default), name
    assert ours["n_threads"].kind is inspect.Parameter.KEYWORD_ONLY
    assert ours["n_threads"].default is None
    assert ours["algorithm"].kind is inspect.Parameter.KEYWORD_ONLY
    assert ours["algorithm"].default == "sculley"  # issue 4: drop-in users see no change
    assert ours["sampling"].kind is inspect.Parameter.KEYWORD_ONLY
    assert ours["sampling"].default == "auto"  # issue 17: arrays in memory sample exactly


def test_default_params_are_scikit_learns():
    ours = MiniBatchKMeans().get_params()
    theirs = SklearnMiniBatchKMeans().get_params()
    assert ours.pop("n_threads") is None
    assert ours.pop("algorithm") == "sculley"
    assert ours.pop("sampling") == "auto"
    assert ours == theirs


def test_clone_copies_params_and_drops_fitted_state(X):
    init = X[:N_CLUSTERS].copy()
    model = _model(init=init, batch_size=20, n_threads=1).fit(X)
    copy = clone(model)
    assert type(copy) is MiniBatchKMeans
    assert not hasattr(copy, "cluster_centers_")
    params = copy.get_params()
    for name, value in model.get_params().items():
        if name == "init":
            assert_array_equal(params[name], value)
        else:
            assert params[name] == value, name
    # The clone fits to the same centers.
    assert_array_equal(copy.fit(X).cluster_centers_, model.cluster_centers_)


def test_get_params_set_params_round_trip():
    params = {
        "n_clusters": 5,
        "init": "random",
        "max_iter": 7,
        "batch_size": 33,
        "verbose": 0,
        "compute_labels": False,
        "random_state": 42,
        "tol": 1e-4,
        "max_no_improvement": None,
        "init_size": 60,
        "n_init": 4,
        "reassignment_ratio": 0.05,
        "n_threads": 2,
        "algorithm": "nested",
        "sampling": "blocks",
    }
    model = MiniBatchKMeans()
    assert model.set_params(**params) is model
    assert model.get_params() == params
    assert MiniBatchKMeans(**model.get_params()).get_params() == params


def test_set_params_refuses_unknown_names():
    with pytest.raises(ValueError, match="Invalid parameter 'n_cluster'"):
        MiniBatchKMeans().set_params(n_cluster=3)


@pytest.mark.parametrize(
    "model, expected",
    [
        (MiniBatchKMeans(), "MiniBatchKMeans()"),
        (
            MiniBatchKMeans(n_clusters=3, random_state=0),
            "MiniBatchKMeans(n_clusters=3, random_state=0)",
        ),
        (MiniBatchKMeans(n_threads=2), "MiniBatchKMeans(n_threads=2)"),
        (MiniBatchKMeans(init="random", n_init=3), "MiniBatchKMeans(init='random', n_init=3)"),
    ],
    ids=["defaults", "n_clusters-random_state", "n_threads", "init-n_init"],
)
def test_repr_shows_changed_params(model, expected):
    assert repr(model) == expected


# Values on both sides of each constraint. Left out on purpose: bools for the integer
# parameters other than verbose (scikit-learn takes them only because bool is an int),
# reassignment_ratio > 1 (scikit-learn 1.9 can fail with "zero-size array to reduction
# operation minimum" when every center is reassigned; mbk handles it) and init_size <
# n_clusters (a RuntimeWarning on both sides).
PARAMETER_VALUES = {
    "n_clusters": [1, 2, np.int64(2), np.uint8(3), 0, -1, 2.0, "2", None],
    "init": ["k-means++", "random", "foo", None, 5],
    "max_iter": [1, np.int64(3), 0, -1, 1.0, None],
    "batch_size": [1, 2**40, 0, 1.0, None],
    "verbose": [0, np.int64(0), -1, 1.0, None, False, True],
    "compute_labels": [True, False, np.True_, 1, 0, "yes", None],
    "random_state": [None, 0, 2**32 - 1, np.int64(3), -1, 2**32, "x", 1.5],
    "tol": [0, 0.0, 1, np.float32(0.1), -1, np.nan, np.inf, "0.1", None],
    "max_no_improvement": [None, 0, 5, -1, 1.5],
    "init_size": [None, 3, 1000, 0, 1.5],
    "n_init": ["auto", 1, np.int64(2), "foo", 0, 2.0, None],
    "reassignment_ratio": [0, 0.0, 0.5, 1, -0.1, np.nan, np.inf, None, "0.1"],
}


def _parameter_cases():
    for name, values in PARAMETER_VALUES.items():
        for value in values:
            yield pytest.param(name, value, id=f"{name}={value!r}")


def _fit_error(cls, name, value, X):
    params = {"n_clusters": 3, "random_state": 0, "max_iter": 2, "batch_size": 30, name: value}
    try:
        cls(**params).fit(X)
    except (TypeError, ValueError) as error:
        return error
    return None


@pytest.mark.parametrize("name, value", list(_parameter_cases()))
def test_accepts_exactly_the_parameter_values_scikit_learn_accepts(X, name, value):
    theirs = _fit_error(SklearnMiniBatchKMeans, name, value, X)
    ours = _fit_error(MiniBatchKMeans, name, value, X)
    if theirs is None:
        assert ours is None, f"scikit-learn accepts {name}={value!r}; mbk raised {ours!r}"
    else:
        assert ours is not None, f"scikit-learn refuses {name}={value!r} ({theirs}); mbk ran"
        # The message names the parameter, as scikit-learn's does.
        assert name in str(ours), ours


# -- Composition: pipelines and grid search ------------------------------------------------------


def test_pipeline_fit_predict(X):
    pipeline = make_pipeline(StandardScaler(), _model()).fit(X)
    scaled = StandardScaler().fit_transform(X)
    alone = _model().fit(scaled)
    assert_array_equal(pipeline[-1].cluster_centers_, alone.cluster_centers_)
    assert_array_equal(pipeline.predict(X), alone.predict(scaled))
    assert_array_equal(pipeline.predict(X), pipeline[-1].labels_)
    assert_allclose(pipeline.transform(X), alone.transform(scaled))
    assert pipeline.score(X) == alone.score(scaled)


def test_grid_search_over_n_clusters_with_default_score(X):
    grid = [2, 3, 4]
    cv = KFold(n_splits=3, shuffle=True, random_state=0)
    search = GridSearchCV(_model(), {"n_clusters": grid}, cv=cv).fit(X)
    # The default score is the estimator's: minus the inertia of the held-out rows.
    for i, n_clusters in enumerate(grid):
        scores = [
            _model(n_clusters=n_clusters).fit(X[train]).score(X[test])
            for train, test in cv.split(X)
        ]
        assert_allclose(search.cv_results_["mean_test_score"][i], np.mean(scores), rtol=1e-12)
    best = grid[int(np.argmax(search.cv_results_["mean_test_score"]))]
    assert search.best_params_ == {"n_clusters": best}
    assert search.best_estimator_.n_clusters == best
    assert_array_equal(search.predict(X), _model(n_clusters=best).fit(X).predict(X))


# -- set_output, DataFrames and feature names ----------------------------------------------------


def test_get_feature_names_out(X):
    model = _model().fit(X)
    names = model.get_feature_names_out()
    assert names.dtype == object
    assert_array_equal(names, [f"minibatchkmeans{i}" for i in range(N_CLUSTERS)])
    assert_array_equal(model.get_feature_names_out([f"x{i}" for i in range(N_FEATURES)]), names)
    with pytest.raises(ValueError, match="input_features should have length"):
        model.get_feature_names_out(["a"])


@pytest.mark.parametrize("method", ["fit-transform", "fit_transform"])
def test_set_output_pandas(X, method):
    pd = pytest.importorskip("pandas")
    model = _model().set_output(transform="pandas")
    index = pd.RangeIndex(100, 100 + N_SAMPLES)
    frame = pd.DataFrame(X, columns=["a", "b", "c"], index=index)
    if method == "fit_transform":
        out = model.fit_transform(frame)
    else:
        out = model.fit(frame).transform(frame)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == [f"minibatchkmeans{i}" for i in range(N_CLUSTERS)]
    assert out.index.equals(index)
    assert_allclose(out.to_numpy(), _model().fit(X).transform(X))


def test_dataframe_feature_names(X):
    pd = pytest.importorskip("pandas")
    columns = ["height", "width", "depth"]
    frame = pd.DataFrame(X, columns=columns)
    model = _model().fit(frame)
    assert_array_equal(model.feature_names_in_, columns)
    assert model.n_features_in_ == N_FEATURES
    assert_array_equal(model.predict(frame), _model().fit(X).predict(X))

    renamed = frame.rename(columns={"depth": "weight"})
    with pytest.raises(ValueError, match="feature names should match those that were passed"):
        model.predict(renamed)
    with pytest.raises(ValueError, match="Feature names unseen at fit time:\n- weight"):
        model.transform(renamed)
    with pytest.raises(ValueError, match="must be in the same order"):
        model.score(frame[columns[::-1]])

    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        labels = model.predict(X)
    assert_array_equal(labels, model.predict(frame))

    # Refitting on an ndarray forgets the names; a DataFrame then gets a warning.
    model.fit(X)
    assert not hasattr(model, "feature_names_in_")
    with pytest.warns(UserWarning, match="X has feature names, but MiniBatchKMeans was fitted"):
        model.predict(frame)


def test_partial_fit_checks_feature_names(X):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    model = _model().partial_fit(frame)
    assert_array_equal(model.feature_names_in_, ["a", "b", "c"])
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        model.partial_fit(X)
    with pytest.raises(ValueError, match="feature names should match"):
        model.partial_fit(frame.rename(columns={"a": "z"}))
    assert_array_equal(model.feature_names_in_, ["a", "b", "c"])


# -- Pickling ------------------------------------------------------------------------------------


def _batches(n_batches=6, size=15):
    rng = np.random.RandomState(1)
    return [
        make_blobs(size, N_FEATURES, N_CLUSTERS, seed=s)[0] for s in rng.randint(0, 99, n_batches)
    ]


@pytest.mark.parametrize("random_state", [0, "RandomState"], ids=["int", "RandomState"])
@pytest.mark.parametrize("fitted_with", ["fit", "partial_fit"])
def test_pickle_round_trip_continues_partial_fit_identically(X, fitted_with, random_state, capsys):
    if random_state == "RandomState":
        random_state = np.random.RandomState(0)
    # A high reassignment_ratio makes the steps draw from the random stream, so the stream's
    # state has to survive the round trip too.
    model = _model(random_state=random_state, batch_size=15, reassignment_ratio=0.9, verbose=1)
    if fitted_with == "fit":
        model.fit(X)
    else:
        for batch in _batches(3):
            model.partial_fit(batch)
    restored = pickle.loads(pickle.dumps(model))
    assert type(restored) is MiniBatchKMeans
    assert_array_equal(restored.cluster_centers_, model.cluster_centers_)
    assert restored.cluster_centers_.dtype == model.cluster_centers_.dtype
    assert_array_equal(restored.predict(X), model.predict(X))
    assert_array_equal(restored.transform(X), model.transform(X))
    assert restored.score(X) == model.score(X)
    assert restored.get_params().keys() == model.get_params().keys()

    capsys.readouterr()
    for batch in _batches():
        model.partial_fit(batch)
        restored.partial_fit(batch)
        assert_array_equal(restored.cluster_centers_, model.cluster_centers_)
        assert_array_equal(restored.labels_, model.labels_)
        assert restored.n_steps_ == model.n_steps_
    assert "Reassigning" in capsys.readouterr().out  # the random stream was used


def test_pickle_keeps_float32(X):
    model = _model().fit(X.astype(np.float32))
    restored = pickle.loads(pickle.dumps(model))
    assert restored.cluster_centers_.dtype == np.float32
    assert_array_equal(restored.transform(X), model.transform(X))


# -- fit_predict, fit_transform, score, transform ------------------------------------------------


@pytest.mark.parametrize("sample_weight", [None, "weights"], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("compute_labels", [True, False], ids=["labels", "no-labels"])
def test_fit_predict_equals_fitted_labels(X, compute_labels, sample_weight):
    if sample_weight is not None:
        sample_weight = np.linspace(0.5, 2.0, N_SAMPLES)
    labels = _model(compute_labels=compute_labels).fit_predict(X, sample_weight=sample_weight)
    model = _model(compute_labels=compute_labels).fit(X, sample_weight=sample_weight)
    expected = model.labels_ if compute_labels else model.predict(X)
    assert_array_equal(labels, expected)
    assert_array_equal(labels, model.predict(X))
    assert labels.shape == (N_SAMPLES,)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_fit_transform_equals_fit_then_transform(X, dtype):
    X = X.astype(dtype)
    distances = _model().fit_transform(X)
    assert distances.dtype == dtype
    assert_allclose(distances, _model().fit(X).transform(X))


@pytest.mark.parametrize(
    "dtype, rtol", [(np.float64, 1e-9), (np.float32, 1e-5)], ids=["float64", "float32"]
)
@pytest.mark.parametrize("sample_weight", [None, "weights"], ids=["unweighted", "weighted"])
def test_score_is_minus_training_inertia(X, dtype, rtol, sample_weight):
    X = X.astype(dtype)
    if sample_weight is not None:
        sample_weight = np.linspace(0.5, 2.0, N_SAMPLES)
    model = _model().fit(X, sample_weight=sample_weight)
    score = model.score(X, sample_weight=sample_weight)
    assert isinstance(score, float)
    assert score < 0
    assert_allclose(score, -model.inertia_, rtol=rtol)
    # ... and the inertia is the weighted sum of squared distances to the nearest center.
    weights = np.ones(N_SAMPLES) if sample_weight is None else sample_weight
    nearest = model.transform(X).astype(np.float64).min(axis=1)
    assert_allclose(-score, weights @ nearest**2, rtol=max(rtol, 1e-7) * 10)


@pytest.mark.parametrize(
    "dtype, rtol", [(np.float64, 1e-6), (np.float32, 1e-5)], ids=["float64", "float32"]
)
@pytest.mark.parametrize("n_clusters", [1, 3, 7])
def test_transform_is_euclidean_distance(X, dtype, rtol, n_clusters):
    X = X.astype(dtype)
    model = _model(n_clusters=n_clusters).fit(X)
    new = make_blobs(50, N_FEATURES, 4, seed=3)[0].astype(dtype)
    centers = model.cluster_centers_.astype(np.float64)
    for data in (X, new):
        expected = np.sqrt(
            ((data.astype(np.float64)[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
        )
        distances = model.transform(data)
        assert distances.shape == (len(data), n_clusters)
        assert_allclose(distances, expected, rtol=rtol, atol=1e-12)
        assert_array_equal(model.predict(data), np.argmin(expected, axis=1))


def test_transform_matches_scipy_cdist(X):
    distance = pytest.importorskip("scipy.spatial.distance")
    model = _model().fit(X)
    assert_allclose(model.transform(X), distance.cdist(X, model.cluster_centers_), rtol=1e-6)


# -- Without scikit-learn ------------------------------------------------------------------------

NO_SKLEARN_SCRIPT = textwrap.dedent(
    """
    import importlib.abc
    import pickle
    import sys


    class BlockScikitLearn(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "sklearn" or name.startswith("sklearn."):
                raise ImportError(f"{name} is blocked for this test")
            return None


    sys.meta_path.insert(0, BlockScikitLearn())
    import numpy as np

    import mbk

    assert not any(name.split(".")[0] == "sklearn" for name in sys.modules)
    try:
        import sklearn  # noqa: F401
    except ImportError:
        pass
    else:
        raise AssertionError("scikit-learn was not blocked")

    model = mbk.MiniBatchKMeans(n_clusters=3, random_state=0, batch_size=20)
    X = np.random.RandomState(0).normal(size=(60, 2)) + np.repeat([[0, 0], [9, 9], [0, 9]], 20, 0)
    for method, args in [("predict", (X,)), ("transform", (X,)), ("score", (X,)),
                         ("get_feature_names_out", ())]:
        try:
            getattr(model, method)(*args)
        except mbk.NotFittedError as error:
            assert isinstance(error, ValueError) and isinstance(error, AttributeError)
            assert "not fitted yet" in str(error)
        else:
            raise AssertionError(f"{method} before fit did not raise NotFittedError")

    assert model.fit(X) is model
    labels = model.predict(X)
    assert labels.shape == (60,) and len(set(labels.tolist())) == 3
    assert (model.fit_predict(X) == model.labels_).all()
    assert model.transform(X).shape == (60, 3)
    assert abs(model.score(X) + model.inertia_) <= 1e-9 * model.inertia_
    model.partial_fit(X[:10])
    assert list(model.get_feature_names_out()) == [f"minibatchkmeans{i}" for i in range(3)]

    params = model.get_params()
    assert params["n_clusters"] == 3 and params["n_threads"] is None, params
    assert sorted(params) == sorted(
        ["n_clusters", "init", "max_iter", "batch_size", "verbose", "compute_labels",
         "random_state", "tol", "max_no_improvement", "init_size", "n_init",
         "reassignment_ratio", "n_threads", "algorithm", "sampling"]
    )
    assert model.set_params(n_clusters=2, n_threads=1) is model
    assert model.get_params()["n_clusters"] == 2
    try:
        model.set_params(n_cluster=2)
    except ValueError as error:
        assert "Invalid parameter" in str(error)
    else:
        raise AssertionError("set_params accepted an unknown name")
    assert repr(mbk.MiniBatchKMeans()) == "MiniBatchKMeans()", repr(mbk.MiniBatchKMeans())
    expected = "MiniBatchKMeans(batch_size=20, n_clusters=2, n_threads=1, random_state=0)"
    assert repr(model) == expected, repr(model)
    restored = pickle.loads(pickle.dumps(model))
    assert (restored.predict(X) == model.predict(X)).all()
    try:
        import pandas as pd
    except ImportError:
        pass
    else:
        frame = pd.DataFrame(X, columns=["u", "v"])
        model.fit(frame)
        assert list(model.feature_names_in_) == ["u", "v"]
        try:
            model.predict(frame.rename(columns={"u": "w"}))
        except ValueError as error:
            assert "feature names should match" in str(error)
        else:
            raise AssertionError("predict accepted other column names")
    assert not any(name.split(".")[0] == "sklearn" for name in sys.modules)
    print("no-sklearn-ok")
    """
)


def test_works_without_scikit_learn():
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", NO_SKLEARN_SCRIPT],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "no-sklearn-ok", result.stdout

"""scikit-learn 1.9 as the oracle: same random_state, same draws, same results.

float64 results must agree to 1e-9 relative (in practice they are bitwise equal); float32
results to float32 rounding, since mbk keeps running weights and sums in float64.
"""

import contextlib
import io
import os

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import mbk
from conftest import make_blobs
from mbk._sampling import WeightedRowSampler

sklearn = pytest.importorskip("sklearn")
from sklearn.cluster import MiniBatchKMeans as SklearnMiniBatchKMeans  # noqa: E402
from sklearn.cluster import kmeans_plusplus as sklearn_kmeans_plusplus  # noqa: E402

pytestmark = pytest.mark.skipif(
    not sklearn.__version__.startswith("1.9"),
    reason="fit parity is defined against scikit-learn 1.9 (its batch sampling changed there)",
)

HOUSING_CSV = os.path.join(
    os.path.dirname(__file__), "..", "..", "shared", "data", "california_housing.csv"
)


def assert_same_fit(ours, theirs, dtype):
    assert ours.n_steps_ == theirs.n_steps_
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.cluster_centers_.dtype == theirs.cluster_centers_.dtype
    if dtype == np.float64:
        assert_allclose(ours.cluster_centers_, theirs.cluster_centers_, rtol=1e-9, atol=1e-12)
        assert_allclose(ours.inertia_, theirs.inertia_, rtol=1e-9)
        if hasattr(theirs, "labels_"):
            assert_array_equal(ours.labels_, theirs.labels_)
    else:
        scale = np.abs(theirs.cluster_centers_).max()
        assert_allclose(ours.cluster_centers_, theirs.cluster_centers_, rtol=0, atol=2e-5 * scale)
        assert_allclose(ours.inertia_, theirs.inertia_, rtol=1e-4)
        if hasattr(theirs, "labels_"):
            assert np.mean(ours.labels_ == theirs.labels_) > 0.999


def fit_both(X, sample_weight=None, **params):
    ours = mbk.MiniBatchKMeans(**params).fit(X, sample_weight=sample_weight)
    theirs = SklearnMiniBatchKMeans(**params).fit(X, sample_weight=sample_weight)
    return ours, theirs


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("weights", ["unit", "zeros-inside", "random"])
@pytest.mark.parametrize("n_samples", [3000, 200_000], ids=["small", "several-blocks"])
def test_sampler_draws_numpys_choice_indices(dtype, weights, n_samples):
    rng = np.random.RandomState(0)
    w = rng.uniform(0, 5, n_samples).astype(dtype) if weights == "random" else None
    if weights == "zeros-inside":
        w = np.ones(n_samples, dtype)
        w[::7] = 0  # rows with zero weight are never drawn
    ours, theirs = np.random.RandomState(42), np.random.RandomState(42)
    sampler = WeightedRowSampler(w, n_samples, np.dtype(dtype))
    p = (np.ones(n_samples, dtype) if w is None else w) / (
        np.ones(n_samples, dtype) if w is None else w
    ).sum()
    for _ in range(5):
        expected = theirs.choice(n_samples, 256, p=p, replace=True)
        assert_array_equal(sampler.draw(ours, 256), expected)
    assert ours.random_sample() == theirs.random_sample()  # streams still in step


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("n_clusters", [1, 5, 20])
@pytest.mark.parametrize("weights", [False, True], ids=["unweighted", "weighted"])
def test_kmeans_plusplus_picks_the_same_seeds(dtype, n_clusters, weights):
    X, _ = make_blobs(600, 4, 8, dtype=dtype, seed=3)
    w = np.random.RandomState(1).uniform(0.1, 3, 600) if weights else None
    ours, our_indices = mbk.kmeans_plusplus(X, n_clusters, sample_weight=w, random_state=7)
    theirs, their_indices = sklearn_kmeans_plusplus(X, n_clusters, sample_weight=w, random_state=7)
    assert_array_equal(our_indices, their_indices)
    assert_array_equal(ours, theirs)
    assert ours.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_kmeans_plusplus_same_seeds_on_larger_data(dtype):
    # Several 256-row chunks, padded candidate tiles, many seeds: the compiled distances
    # must keep every draw on scikit-learn's path.
    X, _ = make_blobs(3000, 16, 60, dtype=dtype, seed=12)
    ours, our_indices = mbk.kmeans_plusplus(X, 100, random_state=3)
    theirs, their_indices = sklearn_kmeans_plusplus(X, 100, random_state=3)
    assert_array_equal(our_indices, their_indices)
    assert_array_equal(ours, theirs)


FIT_CASES = {
    "defaults": {},
    "random-init": {"init": "random"},
    "n_init-3": {"n_init": 3},
    "small-batches": {"batch_size": 64},
    "no-reassignment": {"reassignment_ratio": 0.0},
    "heavy-reassignment": {"reassignment_ratio": 0.4, "batch_size": 50},
    "tol": {"tol": 1e-3},
    "no-early-stop": {"max_no_improvement": None, "max_iter": 3},
    "max_no_improvement-0": {"max_no_improvement": 0},
    "init_size": {"init_size": 100, "n_init": 2},
    "no-labels": {"compute_labels": False},
    "batch-larger-than-data": {"batch_size": 5000},
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", list(FIT_CASES))
def test_fit_matches_sklearn(dtype, case):
    X, _ = make_blobs(3000, 5, 10, dtype=dtype, seed=11)
    ours, theirs = fit_both(X, n_clusters=8, random_state=0, **FIT_CASES[case])
    assert_same_fit(ours, theirs, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("init", ["k-means++", "random", "array", "callable"])
def test_weighted_fit_matches_sklearn(dtype, init):
    X, _ = make_blobs(2000, 3, 6, dtype=dtype, seed=4)
    w = np.random.RandomState(5).uniform(0, 4, 2000)
    w[:100] = 0
    if init == "array":
        init = X[:6].copy()
    elif init == "callable":

        def init(data, k, random_state):
            return data[random_state.permutation(len(data))[:k]]

    ours, theirs = fit_both(
        X, sample_weight=w, n_clusters=6, init=init, random_state=3, batch_size=200
    )
    assert_same_fit(ours, theirs, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("weights", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("batch_size", [100, 1024], ids=["init-subsample", "whole-batch"])
def test_partial_fit_sequence_matches_sklearn(dtype, weights, batch_size):
    X, _ = make_blobs(4000, 4, 12, dtype=dtype, seed=8)
    w = np.random.RandomState(9).uniform(0.2, 3, 4000) if weights else None
    ours = mbk.MiniBatchKMeans(n_clusters=10, random_state=2, batch_size=batch_size)
    theirs = SklearnMiniBatchKMeans(n_clusters=10, random_state=2, batch_size=batch_size)
    for start in range(0, 4000, 400):
        batch = slice(start, start + 400)
        batch_w = None if w is None else w[batch]
        ours.partial_fit(X[batch], sample_weight=batch_w)
        theirs.partial_fit(X[batch], sample_weight=batch_w)
        assert_same_fit_partial(ours, theirs, dtype)


def assert_same_fit_partial(ours, theirs, dtype):
    assert ours.n_steps_ == theirs.n_steps_
    tol = {"rtol": 1e-9, "atol": 1e-12} if dtype == np.float64 else {"rtol": 1e-4, "atol": 1e-4}
    assert_allclose(ours.cluster_centers_, theirs.cluster_centers_, **tol)
    assert_allclose(ours.inertia_, theirs.inertia_, rtol=tol["rtol"])
    assert np.mean(ours.labels_ == theirs.labels_) > (0.999 if dtype == np.float32 else 1 - 1e-12)
    assert_allclose(ours._counts, theirs._counts, rtol=1e-6)


def test_partial_fit_after_fit_continues_like_sklearn():
    X, _ = make_blobs(3000, 4, 6, seed=1)
    ours, theirs = fit_both(X, n_clusters=6, random_state=4, batch_size=256)
    for start in range(0, 3000, 500):
        ours.partial_fit(X[start : start + 500])
        theirs.partial_fit(X[start : start + 500])
    assert_same_fit_partial(ours, theirs, np.float64)


def test_verbose_output_matches_sklearn():
    X, _ = make_blobs(1500, 3, 5, seed=2)
    outputs = []
    for cls in (mbk.MiniBatchKMeans, SklearnMiniBatchKMeans):
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            cls(
                n_clusters=5, random_state=0, verbose=1, batch_size=100, reassignment_ratio=0.2
            ).fit(X)
        outputs.append(buffer.getvalue().splitlines())
    ours, theirs = outputs
    assert len(ours) == len(theirs)
    for our_line, their_line in zip(ours, theirs, strict=True):
        # numbers may differ in the last digits of the inertia; the words may not
        our_words = [w for w in our_line.split() if not w[:1].isdigit()]
        their_words = [w for w in their_line.split() if not w[:1].isdigit()]
        assert our_words == their_words


@pytest.mark.skipif(not os.path.exists(HOUSING_CSV), reason="shared housing CSV not present")
def test_california_housing_classic_example_matches_sklearn():
    pd = pytest.importorskip("pandas")
    frame = pd.read_csv(HOUSING_CSV)[["median_income", "latitude", "longitude"]]
    for seed in range(3):
        ours, theirs = fit_both(frame, n_clusters=6, random_state=seed)
        assert_same_fit(ours, theirs, np.float64)
        assert list(ours.feature_names_in_) == ["median_income", "latitude", "longitude"]

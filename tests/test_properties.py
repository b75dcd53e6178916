"""Property-based tests (hypothesis): invariants that hold for any input mbk accepts.

Random shapes (down to one row, one feature, and as many clusters as rows), dtypes (float32,
float64, integers, float16, big-endian), memory layouts, weights (some zero, tiny, huge),
duplicated rows and values near the ends of the float range. For every fit: no crash, labels
in range, finite centers, predict equal to the nearest center by brute force, inertia equal
to the weighted squared distances, the caller's arrays untouched, and the same bits for any
layout and thread count.
"""

import os
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

import mbk

# Deterministic in CI (the same examples every run); explore freshly elsewhere.
settings.register_profile(
    "mbk",
    max_examples=40,
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("mbk")

DTYPES = ["float32", "float64", "int32", "int64", "float16", ">f8", "<f4"]
LAYOUTS = ["C", "F", "strided", "read-only", "memmap"]


@st.composite
def problems(draw):
    """(X, sample_weight or None, n_clusters, batch_size): X in the input dtype."""
    n_samples = draw(st.integers(1, 60))
    n_features = draw(st.integers(1, 6))
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    floating = dtype.kind == "f"
    # The scale: squared distances summed over a batch must stay finite in the dtype.
    limit = {2: 60.0, 4: 1e15, 8: 1e150}[dtype.itemsize] if floating else 1e6
    scale = draw(
        st.sampled_from([1.0, limit, 1 / limit if floating else 1.0, 1e-30 if floating else 1])
    )
    rng = np.random.RandomState(draw(st.integers(0, 2**31 - 1)))
    base = rng.normal(size=(n_samples, n_features))
    if draw(st.booleans()):  # duplicated rows
        base = base[rng.randint(0, max(1, n_samples // 3), n_samples)]
    X = (base * scale).astype(dtype)
    n_clusters = draw(st.integers(1, n_samples))
    weights = draw(st.sampled_from(["none", "random", "some-zero", "tiny", "huge"]))
    # Huge, but not so huge that weight times squared distance overflows the working dtype
    # (mbk computes in float32 for float32 data, float64 otherwise, as scikit-learn does).
    working_max = float(np.finfo(np.float32 if dtype == np.float32 else np.float64).max)
    huge = min(1e30, working_max / (64.0 * n_samples * n_features * max(scale, 1.0) ** 2))
    w = {
        "none": None,
        "random": rng.uniform(0.1, 3, n_samples),
        "some-zero": np.where(rng.rand(n_samples) < 0.3, 0.0, 1.0),
        "tiny": np.full(n_samples, 1e-30),
        "huge": np.full(n_samples, huge),
    }[weights]
    if w is not None and not w.any():
        w[0] = 1.0
    batch_size = draw(st.integers(1, 80))
    return X, w, n_clusters, batch_size


def in_layout(X, layout, directory):
    if layout == "C":
        return np.ascontiguousarray(X)
    if layout == "F":
        return np.asfortranarray(X)
    if layout == "strided":
        wide = np.zeros((2 * X.shape[0], 2 * X.shape[1]), dtype=X.dtype)
        wide[::2, ::2] = X
        return wide[::2, ::2]
    if layout == "read-only":
        view = X.copy()
        view.flags.writeable = False
        return view
    path = os.path.join(directory, "x.dat")
    mapped = np.memmap(path, dtype=X.dtype, mode="w+", shape=X.shape)
    mapped[:] = X
    mapped.flush()
    return np.memmap(path, dtype=X.dtype, mode="r", shape=X.shape)


def fit(X, w, n_clusters, batch_size, n_threads):
    return mbk.MiniBatchKMeans(
        n_clusters, batch_size=batch_size, max_iter=3, random_state=0, n_threads=n_threads
    ).fit(X, sample_weight=w)


def squared_distances(X, centers):
    """Direct differences in the centers' dtype: the precision the model works in (in
    float32, distances between rows of 1e-30 underflow to 0 for the model as here)."""
    X = np.asarray(X, dtype=centers.dtype)
    return ((X[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2, dtype=np.float64)


@given(problems(), st.sampled_from(LAYOUTS), st.sampled_from([1, 2]))
def test_any_accepted_input_gives_a_consistent_model(problem, layout, n_threads):
    X, w, n_clusters, batch_size = problem
    with tempfile.TemporaryDirectory() as directory:
        data = in_layout(X, layout, directory)
        data_before = np.array(data, copy=True)
        w_before = None if w is None else w.copy()

        model = fit(data, w, n_clusters, batch_size, n_threads)
        centers = model.cluster_centers_
        assert centers.shape == (n_clusters, X.shape[1])
        assert centers.dtype == (np.float32 if X.dtype == np.float32 else np.float64)
        assert np.isfinite(centers).all()
        assert ((model.labels_ >= 0) & (model.labels_ < n_clusters)).all()

        # predict: the nearest center (up to rounding between near-equal distances)
        labels = model.predict(data)
        distances = squared_distances(data, centers)
        chosen = distances[np.arange(len(labels)), labels]
        best = distances.min(axis=1)
        tolerance = 1e-5 if centers.dtype == np.float32 else 1e-12
        scale = squared_distances(data, np.zeros_like(centers[:1]))[:, 0] + (
            squared_distances(centers, np.zeros_like(centers[:1])).max()
        )
        assert (chosen - best <= tolerance * scale).all()

        # score: minus the weighted squared distances to the predicted centers
        weights = np.ones(len(X)) if w is None else w
        expected = float((weights * chosen).sum())
        assert_allclose(-model.score(data, sample_weight=w), expected, rtol=1e-4, atol=1e-300)

        # the caller's data and weights are untouched
        assert_array_equal(np.asarray(data), data_before)
        if w is not None:
            assert_array_equal(w, w_before)
        del data


@given(problems(), st.sampled_from(LAYOUTS[1:]))
def test_layout_and_thread_count_do_not_change_the_bits(problem, layout):
    X, w, n_clusters, batch_size = problem
    reference = fit(np.ascontiguousarray(X), w, n_clusters, batch_size, n_threads=1)
    with tempfile.TemporaryDirectory() as directory:
        other = fit(in_layout(X, layout, directory), w, n_clusters, batch_size, n_threads=3)
    assert_array_equal(other.cluster_centers_, reference.cluster_centers_)
    assert_array_equal(other.labels_, reference.labels_)
    assert other.inertia_ == reference.inertia_


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_values_near_the_smallest_normal_numbers(dtype):
    # Squared distances of such rows underflow to zero or subnormals: still no crash, and
    # finite centers in range.
    tiny = np.finfo(dtype).tiny
    X = (np.random.RandomState(0).rand(50, 3) * 8 * tiny).astype(dtype)
    model = fit(X, None, 4, 16, n_threads=2)
    assert np.isfinite(model.cluster_centers_).all()
    assert (model.cluster_centers_ >= 0).all() and (model.cluster_centers_ <= 8 * tiny).all()


@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_an_init_subsample_without_usable_weights_still_seeds(init):
    # Found by the tests above: the init subsample (drawn with replacement) can hold only
    # zero-weight rows. scikit-learn fails inside NumPy's choice; mbk seeds it with equal
    # weights.
    X = np.random.RandomState(0).normal(size=(300, 2))
    weights = np.zeros(300)
    weights[:2] = 1.0
    for seed in range(5):
        model = mbk.MiniBatchKMeans(3, init=init, init_size=3, batch_size=8, random_state=seed)
        model.fit(X, sample_weight=weights)
        assert np.isfinite(model.cluster_centers_).all()

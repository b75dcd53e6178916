"""Estimator behaviour of our own: toy cases, layouts, dtypes and thread-count invariance."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from threadpoolctl import threadpool_limits

import mbk
from _reference import nearest_centers
from conftest import make_blobs


def test_hand_computed_partial_fit_step():
    # Two centers at 0 and 10 with no history; one step on four rows moves each center to
    # the mean of its rows (weight sums start at 0, so the learning rate is 1).
    X = np.array([[1.0], [3.0], [9.0], [13.0]])
    model = mbk.MiniBatchKMeans(
        n_clusters=2, init=np.array([[0.0], [10.0]]), reassignment_ratio=0.0
    )
    model.partial_fit(X)
    assert_array_equal(model.cluster_centers_, [[2.0], [11.0]])
    assert_array_equal(model.labels_, [0, 0, 1, 1])
    assert model.inertia_ == pytest.approx(1 + 1 + 4 + 4)
    # Second step: counts are 2 and 2; a row at 5 (weight 2) pulls center 0 by 2/4 of the gap.
    model.partial_fit(np.array([[5.0]]), sample_weight=[2.0])
    assert_array_equal(model.cluster_centers_, [[3.5], [11.0]])
    assert_array_equal(model._counts, [4.0, 2.0])
    assert model.n_steps_ == 2


def test_first_step_reseeds_empty_clusters():
    # All rows sit next to center 0; the other centers are empty after the first step and
    # must be moved onto batch rows (scikit-learn's reassignment).
    X = np.random.RandomState(0).normal(size=(50, 2)) * 0.01
    init = np.array([[0.0, 0.0], [100.0, 100.0], [-100.0, 100.0]])
    model = mbk.MiniBatchKMeans(n_clusters=3, init=init, random_state=0).partial_fit(X)
    assert np.abs(model.cluster_centers_).max() < 1
    assert_allclose(model._counts, [50, 50, 50])


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_fit_finds_well_separated_blobs(dtype):
    X, truth = make_blobs(3000, 4, 5, dtype=dtype, seed=1, spread=0.1)
    model = mbk.MiniBatchKMeans(n_clusters=5, random_state=0).fit(X)
    assert model.cluster_centers_.dtype == dtype
    assert model.labels_.dtype == np.int32
    # every true blob maps to one label and back
    pairs = set(zip(truth.tolist(), model.labels_.tolist(), strict=True))
    assert len(pairs) == 5
    labels, sq = nearest_centers(X, model.cluster_centers_)
    assert_array_equal(model.predict(X), labels)
    assert model.inertia_ == pytest.approx(sq.sum(), rel=1e-4)
    assert model.score(X) == pytest.approx(-model.inertia_, rel=1e-9)


def test_counts_are_float64_for_float32_data():
    X, _ = make_blobs(500, 3, 2, dtype=np.float32)
    model = mbk.MiniBatchKMeans(n_clusters=2, random_state=0).fit(X)
    assert model._counts.dtype == np.float64
    assert model.cluster_centers_.dtype == np.float32
    assert model.transform(X).dtype == np.float32


def fit_in_layout(X, layout, tmp_path):
    if layout == "C":
        data = np.ascontiguousarray(X)
    elif layout == "F":
        data = np.asfortranarray(X)
    elif layout == "strided":
        wide = np.zeros((X.shape[0], 2 * X.shape[1]), dtype=X.dtype)
        wide[:, ::2] = X
        data = wide[:, ::2]
    elif layout == "readonly":
        data = X.copy()
        data.setflags(write=False)
    else:
        data = np.memmap(tmp_path / "x.dat", dtype=X.dtype, mode="w+", shape=X.shape)
        data[:] = X
        data.flush()
        data = np.memmap(tmp_path / "x.dat", dtype=X.dtype, mode="r", shape=X.shape)
    model = mbk.MiniBatchKMeans(n_clusters=4, random_state=0, batch_size=100).fit(data)
    return model, data


@pytest.mark.parametrize("layout", ["F", "strided", "readonly", "memmap"])
def test_layouts_give_the_c_order_result(layout, tmp_path):
    X, _ = make_blobs(1200, 5, 4, seed=3)
    expected, _ = fit_in_layout(X, "C", tmp_path)
    model, data = fit_in_layout(X, layout, tmp_path)
    assert_array_equal(model.cluster_centers_, expected.cluster_centers_)
    assert_array_equal(model.labels_, expected.labels_)
    assert model.inertia_ == expected.inertia_
    assert_array_equal(model.predict(data), expected.predict(X))
    assert_array_equal(model.transform(data), expected.transform(X))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_results_are_bitwise_identical_for_any_thread_count(dtype):
    # Large enough for several 256-row chunks per batch and many clusters per thread.
    X, _ = make_blobs(6000, 6, 20, dtype=dtype, seed=7)
    w = np.random.RandomState(0).uniform(0.5, 2, 6000)
    runs = []
    for n_threads in (1, 2, 3):
        with threadpool_limits(n_threads, user_api="openmp"):
            model = mbk.MiniBatchKMeans(
                n_clusters=20, random_state=0, batch_size=1000, tol=1e-4
            ).fit(X, sample_weight=w)
            partial = mbk.MiniBatchKMeans(n_clusters=20, random_state=0)
            for start in range(0, 6000, 1500):
                partial.partial_fit(X[start : start + 1500], sample_weight=w[start : start + 1500])
            runs.append(
                (
                    model.cluster_centers_,
                    model.labels_,
                    model.inertia_,
                    model.n_steps_,
                    partial.cluster_centers_,
                    partial.inertia_,
                    model.transform(X[:700]),
                    model.score(X),
                )
            )
    explicit = mbk.MiniBatchKMeans(
        n_clusters=20, random_state=0, batch_size=1000, tol=1e-4, n_threads=3
    ).fit(X, sample_weight=w)
    assert_array_equal(explicit.cluster_centers_, runs[0][0])
    for other in runs[1:]:
        for expected, got in zip(runs[0], other, strict=True):
            assert_array_equal(got, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_fit_may_change_its_thread_count_between_steps(dtype):
    # fit probes one thread against all of them every 32 steps and keeps the faster (for
    # busy machines); the thread count never changes a result. A gain of infinity makes
    # every probe win (the count alternates), 0 makes none win.
    from mbk import _tuning

    X, _ = make_blobs(6000, 6, 20, dtype=dtype, seed=3)
    fits = []
    for gain in (0.0, np.inf):
        old = _tuning.set_probe_gain(gain)
        try:
            model = mbk.MiniBatchKMeans(
                n_clusters=20,
                random_state=0,
                batch_size=512,
                max_iter=12,
                n_threads=2,
                max_no_improvement=None,
            ).fit(X)
        finally:
            _tuning.set_probe_gain(old)
        assert model.n_steps_ > 2 * 32
        fits.append((model.cluster_centers_, model.labels_, model.inertia_))
    for expected, got in zip(*fits, strict=True):
        assert_array_equal(got, expected)


def test_thread_probes_back_off_while_they_lose_and_switch_when_they_win():
    # On a quiet machine (all threads faster) the one-thread probe comes after 32 steps,
    # then ever more rarely, at most every 256 steps; next to a busy process (one thread
    # faster) the first probe takes over at once, and the all-threads probes back off.
    from mbk import _sculley_loop, _tuning

    def steps_on(teams, team):
        return [step for step, used in enumerate(teams) if used == team]

    quiet = _sculley_loop.thread_choices(1100, 1.0, 1.7)
    assert steps_on(quiet, 1) == [32, 96, 224, 480, 736, 992]
    busy = _sculley_loop.thread_choices(1100, 2.0, 1.0)
    assert steps_on(busy, 0) == list(range(32)) + [64, 128, 256, 512, 768, 1024]
    # A probe that wins brings the gap back to 32 steps: every one wins at an infinite gain.
    old = _tuning.set_probe_gain(np.inf)
    try:
        alternating = _sculley_loop.thread_choices(130, 1.0, 1.0)
    finally:
        _tuning.set_probe_gain(old)
    assert steps_on(alternating, 1) == list(range(32, 64)) + list(range(96, 128))


def test_n_threads_none_follows_threadpool_limits():
    from mbk._validation import resolve_n_threads

    with threadpool_limits(1, user_api="openmp"):
        assert resolve_n_threads(None) == 1
    assert resolve_n_threads(3) == 3
    assert resolve_n_threads(None) >= 1


def test_kmeans_plusplus_returns_rows_of_x():
    X, _ = make_blobs(300, 3, 4, seed=0)
    centers, indices = mbk.kmeans_plusplus(X, 4, random_state=0)
    assert_array_equal(centers, X[indices])
    assert len(set(indices.tolist())) == 4


def test_single_cluster_and_k_equals_n():
    X = np.arange(12, dtype=np.float64).reshape(6, 2)
    one = mbk.MiniBatchKMeans(n_clusters=1, random_state=0).fit(X)
    assert_array_equal(one.labels_, np.zeros(6))
    every = mbk.MiniBatchKMeans(n_clusters=6, random_state=0).fit(X)
    assert np.isfinite(every.cluster_centers_).all()
    assert set(every.predict(X).tolist()) <= set(range(6))


def test_duplicated_points_give_finite_centers():
    X = np.ones((40, 3))
    model = mbk.MiniBatchKMeans(n_clusters=3, random_state=0, init="random").fit(X)
    assert np.isfinite(model.cluster_centers_).all()
    assert model.inertia_ == 0.0


@pytest.mark.parametrize(
    "user_setting, expected",
    [({}, "10000"), ({"GOMP_SPINCOUNT": "5"}, "5"), ({"OMP_WAIT_POLICY": "ACTIVE"}, "unset")],
    ids=["unset", "user-spincount", "user-policy"],
)
def test_openmp_threads_spin_briefly_unless_the_user_chose(user_setting, expected):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(user_setting)
    code = (
        "import os, mbk; "
        "print('policy', os.environ.get('GOMP_SPINCOUNT', 'unset'), mbk.kernel_variant())"
    )
    stdout = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    out = next(line for line in stdout.splitlines() if line.startswith("policy")).split()[1:]
    assert out[0] == expected
    assert out[1] in ("avx512", "avx2", "baseline")

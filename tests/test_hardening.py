"""Robustness under use and abuse: persistence, concurrent callers, repeated fits (issue 5)."""

import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import mbk


def _fitted(blobs, dtype=np.float64, **params):
    X, _ = blobs(600, 5, 4, dtype=dtype, seed=1)
    params = {"n_clusters": 4, "batch_size": 64, "random_state": 0, "n_threads": 2} | params
    return mbk.MiniBatchKMeans(**params).fit(X), X


# -- persistence -------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_pickle_round_trip_keeps_every_result(blobs, dtype):
    model, X = _fitted(blobs, dtype)
    restored = pickle.loads(pickle.dumps(model))
    assert_array_equal(restored.cluster_centers_, model.cluster_centers_)
    assert_array_equal(restored.predict(X), model.predict(X))
    assert_array_equal(restored.transform(X), model.transform(X))
    assert restored.score(X) == model.score(X)
    assert restored.get_params() == model.get_params()


@pytest.mark.parametrize("start", ["fit", "partial_fit"])
def test_partial_fit_continues_exactly_after_pickling(blobs, start):
    X, _ = blobs(900, 3, 5, seed=2)
    batches = np.array_split(X, 9)
    model = mbk.MiniBatchKMeans(5, batch_size=100, random_state=3, n_threads=2)
    if start == "fit":
        model.fit(X[:300])
    else:
        for batch in batches[:3]:
            model.partial_fit(batch)
    copy = pickle.loads(pickle.dumps(model))
    for batch in batches[3:]:
        model.partial_fit(batch)
        copy.partial_fit(batch)
    assert_array_equal(copy.cluster_centers_, model.cluster_centers_)
    assert_array_equal(copy.labels_, model.labels_)
    assert copy.n_steps_ == model.n_steps_


def test_an_unfitted_estimator_pickles(blobs):
    restored = pickle.loads(pickle.dumps(mbk.MiniBatchKMeans(3, random_state=0)))
    with pytest.raises(mbk.NotFittedError):
        restored.predict(np.zeros((2, 2)))
    X, _ = blobs(200, 2, 3)
    assert restored.fit(X).cluster_centers_.shape == (3, 2)


def test_a_pickled_model_refuses_data_of_another_width(blobs):
    model, _ = _fitted(blobs)
    restored = pickle.loads(pickle.dumps(model))
    with pytest.raises(ValueError, match="X has 4 features, but MiniBatchKMeans is expecting 5"):
        restored.predict(np.zeros((3, 4)))


def _corrupt(model, name, value):
    state = model.__getstate__() if hasattr(model, "__getstate__") else dict(model.__dict__)
    state = dict(state)
    state[name] = value(state[name]) if callable(value) else value
    return state


CORRUPTIONS = {
    "centers-shape": ("cluster_centers_", lambda c: c[:, :-1].copy(), "shape"),
    "centers-rows": ("cluster_centers_", lambda c: c[:-1].copy(), "running weight"),
    "centers-nan": ("cluster_centers_", lambda c: np.where(c > 0, np.nan, c), "finite"),
    "centers-dtype": ("cluster_centers_", lambda c: c.astype(np.int64), "float32 or float64"),
    "centers-list": ("cluster_centers_", lambda c: c.tolist(), "float32 or float64"),
    "centers-fortran": ("cluster_centers_", lambda c: np.asfortranarray(c), "C-ordered"),
    "features": ("n_features_in_", 7, "shape"),
    "counts-length": ("_counts", lambda v: v[:-1].copy(), "running weight"),
    "counts-negative": ("_counts", lambda v: -v - 1, "running weight"),
    "counts-nan": ("_counts", lambda v: v * np.nan, "running weight"),
    "counts-missing": ("_counts", None, "running weight"),
    "steps": ("n_steps_", -1, "n_steps_"),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_unpickling_a_corrupted_state_raises_a_clear_error(blobs, case):
    model, _ = _fitted(blobs)
    name, change, message = CORRUPTIONS[case]
    state = _corrupt(model, name, change)
    blob = pickle.dumps(model)
    # Replace the state inside a real pickle: what a damaged file would hand to __setstate__.
    restored = mbk.MiniBatchKMeans.__new__(mbk.MiniBatchKMeans)
    with pytest.raises(ValueError, match=f"inconsistent state: .*{message}"):
        restored.__setstate__(state)
    assert pickle.loads(blob).n_steps_ == model.n_steps_  # the intact pickle still loads


# -- interruption ------------------------------------------------------------------------------


def _state(model):
    return {
        name: value.copy() if isinstance(value, np.ndarray) else value
        for name, value in model.__dict__.items()
    }


def _assert_same_state(model, before):
    assert set(model.__dict__) == set(before)
    for name, value in before.items():
        if isinstance(value, np.ndarray):
            assert_array_equal(model.__dict__[name], value, err_msg=name)
        else:
            assert model.__dict__[name] is value or model.__dict__[name] == value, name


@pytest.mark.skipif(not hasattr(signal, "raise_signal"), reason="needs signal.raise_signal")
@pytest.mark.parametrize("fitted_before", [False, True], ids=["unfitted", "fitted"])
def test_ctrl_c_stops_a_long_fit_and_leaves_the_estimator_as_it_was(blobs, fitted_before):
    X, _ = blobs(20_000, 8, 6, dtype=np.float32, seed=5)
    model = mbk.MiniBatchKMeans(
        6, batch_size=256, max_no_improvement=None, random_state=0, n_threads=2
    )
    if fitted_before:
        model.set_params(max_iter=1).fit(X[:2000])
    before = _state(model)
    # Uninterrupted, this fit would take minutes: the interrupt has to stop it.
    model.set_params(max_iter=100_000)
    before["max_iter"] = 100_000
    fired = []

    def press_ctrl_c():
        fired.append(time.monotonic())
        signal.raise_signal(signal.SIGINT)

    timer = threading.Timer(0.5, press_ctrl_c)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            model.fit(X)
        stopped = time.monotonic()
    finally:
        timer.cancel()
        timer.join()
    # Generous: the fit checks for signals after every step (well under a millisecond here).
    assert stopped - fired[0] < 5.0
    _assert_same_state(model, before)
    if fitted_before:
        model.predict(X)
    else:
        with pytest.raises(mbk.NotFittedError):
            model.predict(X)


def test_a_failing_fit_leaves_the_previous_fit_in_place(blobs):
    model, X = _fitted(blobs)
    before = _state(model)
    with pytest.raises(ValueError, match="contains NaN"):
        model.fit(np.where(X > 5, np.nan, X)[:, :3])  # another width, and NaN
    _assert_same_state(model, before)


@pytest.mark.parametrize("compute_labels", [True, False], ids=["labels", "no-labels"])
@pytest.mark.parametrize("init", ["k-means++", "random", "array"])
@pytest.mark.parametrize("row", [0, 7_777, -1], ids=["first", "middle", "last"])
@pytest.mark.parametrize(
    "bad, match", [(np.nan, "contains NaN"), (-np.inf, "contains infinity")], ids=["nan", "inf"]
)
def test_fit_finds_a_non_finite_value_it_scans_for_on_the_way(
    blobs, compute_labels, init, row, bad, match
):
    # Without tol or verbose, fit scans X for NaN in its final labels pass, or a piece per
    # step beside the center update and the rest after the steps, instead of before any
    # work: a value anywhere still fails the fit, which leaves the estimator as it was.
    X, _ = blobs(20_000, 4, 4, dtype=np.float32, seed=3)
    centers = X[:4].copy()
    model = mbk.MiniBatchKMeans(
        n_clusters=4,
        batch_size=256,
        max_iter=2,
        init=centers if init == "array" else init,
        n_init=1,
        compute_labels=compute_labels,
        random_state=0,
        n_threads=2,
    ).fit(X)
    before = _state(model)
    X[row, 2] = bad
    with pytest.raises(ValueError, match=match):
        model.fit(X)
    _assert_same_state(model, before)


# -- memory ------------------------------------------------------------------------------------


def test_fit_that_cannot_get_its_memory_fails_at_once_naming_the_size():
    # 10^8 rows that take no memory (one row, broadcast), and 10^7 centers of 1000 features:
    # the centers alone need tens of GiB. The error comes before any work (not even the
    # NaN scan of X's 10^11 values), and the estimator is left unfitted.
    X = np.broadcast_to(np.zeros(1000, np.float32), (10**8, 1000))
    model = mbk.MiniBatchKMeans(n_clusters=10**7)
    start = time.perf_counter()
    with pytest.raises(
        MemoryError, match=r"fit with n_clusters=10000000 .* needs about [\d.]+ GiB"
    ):
        model.fit(X)
    assert time.perf_counter() - start < 5.0  # generous: it is immediate
    assert not hasattr(model, "cluster_centers_")


# -- concurrent callers ------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["predict", "transform", "score"])
def test_one_model_serves_many_python_threads(blobs, method):
    # The kernels release the GIL: 8 threads call one fitted model at the same moment.
    model, _ = _fitted(blobs, n_clusters=6)
    rng = np.random.RandomState(0)
    inputs = [
        [rng.normal(scale=8, size=(rng.randint(1, 3000), 5)) for _ in range(3)] for _ in range(8)
    ]
    expected = [[getattr(model, method)(X) for X in mine] for mine in inputs]
    start = threading.Barrier(len(inputs))

    def calls(mine):
        start.wait()
        return [getattr(model, method)(X) for X in mine]

    with ThreadPoolExecutor(len(inputs)) as pool:
        results = list(pool.map(calls, inputs))
    for got, want in zip(results, expected, strict=True):
        for one, other in zip(got, want, strict=True):
            assert_array_equal(one, other)


# -- repeated use ------------------------------------------------------------------------------


def _resident_bytes():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _open_descriptors():
    return len(os.listdir("/proc/self/fd"))


def _os_threads():
    return len(os.listdir("/proc/self/task"))


def _address_sanitizer_loaded():
    with open("/proc/self/maps") as maps:
        return "libasan" in maps.read()


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
@pytest.mark.parametrize("layout", ["C", "fortran", "strided", "readonly"])
def test_fit_makes_no_copy_of_X(layout):
    # X is read in place whatever its layout: fit's NumPy allocations stay far below X's
    # size. (algorithm="nested" keeps O(n) state per row by design.)
    rng = np.random.RandomState(0)
    X = rng.standard_normal((200_000, 8))
    X = {
        "C": X,
        "fortran": np.asfortranarray(X),
        "strided": np.repeat(X, 2, axis=1)[:, ::2],
        "readonly": X,
    }[layout]
    if layout == "readonly":
        X.flags.writeable = False
    model = mbk.MiniBatchKMeans(8, batch_size=1024, random_state=0)
    tracemalloc.start()
    try:
        model.fit(X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < X.nbytes / 8, f"fit allocated {peak} bytes on a {X.nbytes}-byte X"


def test_a_thousand_fits_leak_no_memory_descriptors_or_threads(blobs):
    X, _ = blobs(120, 2, 2, seed=4)
    weights = np.random.RandomState(0).uniform(0.5, 2, len(X))

    def fits(n):
        for i in range(n):
            model = mbk.MiniBatchKMeans(2, batch_size=32, max_iter=1, random_state=i, n_threads=2)
            model.fit(X, sample_weight=weights if i % 2 else None).predict(X)

    fits(50)  # warm-up: lazy imports, the OpenMP pool, allocator arenas
    memory, descriptors, threads = _resident_bytes(), _open_descriptors(), _os_threads()
    fits(1000)
    # Measured growth is 0-4 KiB; a leak of 1 KiB per fit would add about 1 MiB. (Under
    # AddressSanitizer freed memory is held in quarantine: LeakSanitizer's job there.)
    if not _address_sanitizer_loaded():
        assert _resident_bytes() - memory < 512 << 10
    assert _open_descriptors() == descriptors
    assert _os_threads() == threads


def test_fit_finishes_next_to_a_cpu_bound_process(blobs):
    # 2 OpenMP threads on a machine whose cores are taken: no spin deadlock, and no
    # pathological slowdown (the bound is generous on purpose; bench/compare.py measures it).
    X, _ = blobs(60_000, 8, 10, dtype=np.float32, seed=6)
    params = {"batch_size": 1024, "max_iter": 3, "max_no_improvement": None, "n_threads": 2}

    def timed_fit():
        start = time.perf_counter()
        mbk.MiniBatchKMeans(10, random_state=0, **params).fit(X)
        return time.perf_counter() - start

    timed_fit()
    quiet = min(timed_fit() for _ in range(3))
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)  # let it take a core
        busy = timed_fit()
    finally:
        hog.kill()
        hog.wait()
    assert busy < 20 * quiet + 1.0

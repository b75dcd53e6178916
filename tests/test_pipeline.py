"""The pipeline's layers (issue 14): the schedule and its records, the two loops that share it,
the fitted state, and the source that reads the input."""

import pickle
import warnings

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import mbk
from conftest import make_blobs
from mbk import _sculley, _validation
from mbk._schedule import Schedule
from mbk._sources import DenseInput
from mbk._state import SculleyState
from mbk._validation import check_params, resolve_settings


def _fit_state(X, sample_weight=None, seed=0, listeners=(), compiled_loop=True,
               center_shift=False, **params):  # fmt: skip
    model = mbk.MiniBatchKMeans(**({"random_state": seed, "n_threads": 2} | params))
    settings = resolve_settings(check_params(model), X.shape[0])
    source = DenseInput(X).open(sample_weight, finite=False)
    return _sculley.fit(
        source,
        check_params(model),
        settings,
        np.random.RandomState(seed),
        2,
        listeners=listeners,
        compiled_loop=compiled_loop,
        center_shift=center_shift,
    )


def _assert_same_state(a, b):
    assert_array_equal(a.centers, b.centers)
    assert_array_equal(a.weight_sums, b.weight_sums)
    for name in ("n_steps", "n_iter", "ewa_inertia", "ewa_inertia_min", "no_improvement",
                 "n_since_last_reassign", "inertia", "tol"):  # fmt: skip
        assert getattr(a, name) == getattr(b, name), name
    if a.labels is None:
        assert b.labels is None
    else:
        assert_array_equal(a.labels, b.labels)


# -- one schedule, two loops ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"reassignment_ratio": 0.5, "max_no_improvement": None, "max_iter": 2},
        {"tol": 1e-3, "compute_labels": False},
        {"init": "random", "n_init": 3},
    ],
    ids=["default", "heavy-reassignment", "tol-no-labels", "random-inits"],
)
@pytest.mark.parametrize("weighted", [False, True], ids=["unit", "weighted"])
def test_the_step_loop_gives_the_compiled_loops_results(dtype, params, weighted):
    # The same draws, steps, reassignments and stopping decisions, bit for bit: both loops
    # run the schedule, each step one compiled call.
    X, _ = make_blobs(3000, 5, 6, dtype=dtype, seed=7)
    X = np.asfortranarray(X)
    weights = np.random.RandomState(1).uniform(0.5, 2, len(X)) if weighted else None
    params = {"n_clusters": 6, "batch_size": 200} | params
    compiled = _fit_state(X, weights, **params)
    step_by_step = _fit_state(X, weights, compiled_loop=False, **params)
    _assert_same_state(compiled, step_by_step)


def test_listeners_see_every_step_and_change_no_result():
    X, _ = make_blobs(4000, 3, 5, seed=2)
    # Five equal centers: every row goes to the first, and the others are reassigned.
    init = np.repeat(X[:1], 5, axis=0)
    params = {"n_clusters": 5, "batch_size": 128, "init": init, "reassignment_ratio": 0.3}
    quiet = _fit_state(X, **params)
    records, step_records = [], []
    heard = _fit_state(X, listeners=[records.append], center_shift=True, **params)
    _fit_state(X, listeners=[step_records.append], compiled_loop=False, center_shift=True,
               **params)  # fmt: skip
    _assert_same_state(quiet, heard)

    assert [r.step for r in records] == list(range(1, heard.n_steps + 1))
    # Both loops make the same records (the time aside).
    assert [r._replace(elapsed=0) for r in records] == [r._replace(elapsed=0) for r in step_records]
    # The smoothed inertia, recomputed from the records as scikit-learn defines it.
    alpha = min(2 * 128 / (len(X) + 1), 1)
    ewa = None
    for record in records:
        assert record.mean_batch_inertia == record.batch_inertia / 128
        if record.step > 1:
            mean = record.mean_batch_inertia
            ewa = mean if ewa is None else ewa * (1 - alpha) + mean * alpha
        assert record.ewa_inertia == ewa
        assert record.center_shift >= 0
    assert records[-1].ewa_inertia == heard.ewa_inertia
    assert records[-1].stop_reason == "no_improvement"
    assert all(r.stop_reason is None for r in records[:-1])
    assert any(r.n_reassigned for r in records)
    assert all(a.elapsed <= b.elapsed for a, b in zip(records, records[1:], strict=False))


@pytest.mark.parametrize("compiled_loop", [True, False], ids=["compiled", "step-by-step"])
def test_a_listener_stops_the_fit(compiled_loop):
    X, _ = make_blobs(3000, 3, 4, seed=3)
    state = _fit_state(
        X,
        n_clusters=4,
        batch_size=100,
        max_no_improvement=None,
        listeners=[lambda record: record.step == 7],
        compiled_loop=compiled_loop,
    )
    assert state.n_steps == 7


def _reference_early_stop(batch_inertias, shifts, batch_size, n_samples, tol, patience):
    """scikit-learn's _mini_batch_convergence, step by step: the step after which it stops."""
    alpha = min(batch_size * 2.0 / (n_samples + 1), 1.0)
    ewa = ewa_min = None
    no_improvement = 0
    for step, (inertia, shift) in enumerate(zip(batch_inertias, shifts, strict=True), start=1):
        mean = inertia / batch_size
        if step == 1:
            continue
        ewa = mean if ewa is None else ewa * (1 - alpha) + mean * alpha
        if tol > 0 and shift <= tol:
            return step, "center_shift"
        if ewa_min is None or ewa < ewa_min:
            no_improvement, ewa_min = 0, ewa
        else:
            no_improvement += 1
        if patience is not None and no_improvement >= patience:
            return step, "no_improvement"
    return len(batch_inertias), "max_steps"


@pytest.mark.parametrize("patience", [None, 0, 1, 3])
@pytest.mark.parametrize("tol", [0.0, 0.05])
@pytest.mark.parametrize("seed", range(4))
def test_the_schedule_stops_where_scikit_learn_does(patience, tol, seed):
    rng = np.random.RandomState(seed)
    n_steps = 60
    inertias = 100 * np.exp(-np.arange(n_steps) / 10) + rng.uniform(0, 5, n_steps)
    shifts = np.abs(rng.normal(0.3, 0.2, n_steps))
    schedule = Schedule(64, 5, 0.01, 0, n_samples=1000, n_steps=n_steps, tol=tol,
                        max_no_improvement=patience)  # fmt: skip
    for inertia, shift in zip(inertias, shifts, strict=True):
        if schedule.record(inertia, shift, 0):
            break
    expected = _reference_early_stop(inertias, shifts, 64, 1000, tol, patience)
    assert (schedule.steps_run, schedule.stop_reason) == expected


def test_the_schedule_reassigns_on_scikit_learns_timing():
    # When a center has no weight, and every 10 * n_clusters rows; the ratio 0 only
    # suppresses the reassignment, the timing runs on.
    k, batch = 4, 15
    for ratio in (0.01, 0.0):
        schedule = Schedule(batch, k, ratio, 0)
        weights = np.zeros(k)
        since, due = 0, []
        for _ in range(12):
            since += batch
            expected = bool((weights == 0).any() or since >= 10 * k)
            if expected:
                since = 0
            due.append(schedule.reassign_now(weights))
            assert due[-1] == (expected and ratio > 0)
            assert schedule.n_since_last_reassign == since
            weights = np.ones(k)  # weight everywhere after the first step
        assert any(due) == (ratio > 0)


# -- the fitted state -------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["fit", "partial_fit", "nested", "fit-then-partial_fit"])
def test_the_state_round_trips_through_its_flat_form(how):
    X, _ = make_blobs(900, 4, 3, seed=4)
    algorithm = "nested" if how == "nested" else "sculley"
    model = mbk.MiniBatchKMeans(3, batch_size=100, random_state=0, algorithm=algorithm)
    if how == "partial_fit":
        model.partial_fit(X[:300]).partial_fit(X[300:600])
    else:
        model.fit(X)
    if how == "fit-then-partial_fit":
        model.partial_fit(X[:300])
    state = model._fitted
    restored = SculleyState.from_flat(state.to_flat())
    _assert_same_state(state, restored)
    assert restored.settings == state.settings
    # The pickle stores that flat form, under scikit-learn's attribute names.
    blob = model.__getstate__()
    assert "_fitted" not in blob
    assert {"cluster_centers_", "_counts", "n_steps_", "_batch_size"} <= set(blob)
    _assert_same_state(pickle.loads(pickle.dumps(model))._fitted, state)


BAD_STATES = {
    "batch-size": ("_batch_size", 0, "_batch_size, _init_size and _n_init"),
    "tol": ("_tol", -1.0, "_tol must be"),
    "n-iter": ("n_iter_", -2, "n_iter_ must be"),
    "ewa": ("_ewa_inertia", np.nan, "_ewa_inertia must be a number"),
    "since": ("_n_since_last_reassign", -1, "_n_since_last_reassign must be"),
    "stream": ("_random_state", 42, "_random_state must be"),
    "labels-range": ("labels_", lambda labels: labels + 10, "labels_ must be"),
    "labels-dtype": ("labels_", lambda labels: labels.astype(np.int64), "labels_ must be"),
    "names": ("feature_names_in_", np.array(["a", "b"], dtype=object), "feature_names_in_"),
    "inertia": ("inertia_", np.nan, "inertia_ must be a number"),
}


@pytest.mark.parametrize("case", list(BAD_STATES))
def test_a_state_that_could_not_have_been_saved_is_refused(case):
    X, _ = make_blobs(500, 3, 3, seed=5)
    model = mbk.MiniBatchKMeans(3, batch_size=50, random_state=0, tol=1e-4).fit(X)
    model.partial_fit(X[:50])
    name, change, message = BAD_STATES[case]
    state = model.__getstate__()
    state[name] = change(state[name]) if callable(change) else change
    with pytest.raises(ValueError, match=f"inconsistent state: {message}"):
        mbk.MiniBatchKMeans.__new__(mbk.MiniBatchKMeans).__setstate__(state)


def test_a_pickle_of_the_earlier_layout_loads():
    # Earlier versions pickled every fitted attribute in __dict__, with two now derived.
    X, _ = make_blobs(400, 2, 3, seed=6)
    model = mbk.MiniBatchKMeans(3, batch_size=50, random_state=0).fit(X)
    old = model.__getstate__() | {"_n_threads": 2, "_n_features_out": 3}
    restored = mbk.MiniBatchKMeans.__new__(mbk.MiniBatchKMeans)
    restored.__setstate__(old)
    assert_array_equal(restored.predict(X), model.predict(X))
    assert "_n_threads" not in restored.__dict__


def test_fitted_attributes_are_views_of_the_state():
    X, _ = make_blobs(600, 3, 3, seed=8)
    model = mbk.MiniBatchKMeans(3, batch_size=60, random_state=0)
    names = ["cluster_centers_", "labels_", "inertia_", "n_iter_", "n_steps_", "n_features_in_"]
    for name in names:
        assert not hasattr(model, name)
    model.fit(X)
    state = model._fitted
    assert model.cluster_centers_ is state.centers and model.labels_ is state.labels
    assert (model.n_steps_, model.n_iter_, model.n_features_in_) == (
        state.n_steps,
        state.n_iter,
        3,
    )
    # partial_fit moves the centers in place, as scikit-learn's does.
    centers = model.cluster_centers_
    model.partial_fit(X[:60])
    assert model.cluster_centers_ is centers
    assert not hasattr(mbk.MiniBatchKMeans(3).partial_fit(X), "n_iter_")


# -- warnings point at the caller -----------------------------------------------------------


def test_warnings_name_the_line_that_called_mbk():
    pd = pytest.importorskip("pandas")
    X, _ = make_blobs(300, 2, 3, seed=9)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = mbk.MiniBatchKMeans(3, init_size=2, random_state=0).fit(X)
        model.predict(pd.DataFrame(X, columns=["a", "b"]))
    assert [w.category for w in caught] == [RuntimeWarning, UserWarning]
    assert all(w.filename == __file__ for w in caught)


# -- the source -------------------------------------------------------------------------------


def test_the_input_says_which_copy_reading_it_makes():
    X = np.arange(24, dtype=np.float32).reshape(6, 4)
    assert DenseInput(X).copy is None
    assert DenseInput(np.asfortranarray(X)).copy is None
    assert DenseInput(X[:, ::2]).copy is None
    assert DenseInput(X.astype(np.int64)).copy == "cast"
    assert DenseInput(X.astype(">f4")).copy == "cast"
    assert DenseInput(X, dtype=np.dtype(np.float64)).copy == "cast"
    misaligned = np.frombuffer(b"\0" + X.tobytes(), dtype=np.float32, offset=1).reshape(6, 4)
    assert DenseInput(misaligned).copy == "aligned"
    assert DenseInput(X.astype(np.int64)).copy_bytes == 6 * 4 * 8
    source = DenseInput(X).open()
    assert source.X is X and source.finite


def test_np_memmap_is_read_in_place(tmp_path):
    X, _ = make_blobs(1000, 4, 3, dtype=np.float32, seed=10)
    mapped = np.memmap(tmp_path / "x.dat", dtype=np.float32, mode="w+", shape=X.shape)
    mapped[:] = X
    assert DenseInput(mapped).copy is None
    assert np.shares_memory(DenseInput(mapped).open().X, mapped)
    ours = mbk.MiniBatchKMeans(3, random_state=0, batch_size=100).fit(mapped)
    theirs = mbk.MiniBatchKMeans(3, random_state=0, batch_size=100).fit(X)
    assert_array_equal(ours.cluster_centers_, theirs.cluster_centers_)


def test_the_memory_check_counts_a_copy_before_it_is_made(monkeypatch):
    monkeypatch.setattr(_validation, "_UNCHECKED_BYTES", 0)
    monkeypatch.setattr(_validation, "available_memory", lambda: 100_000)
    ints = np.ones((2000, 10), dtype=np.int64)  # a float64 copy of 160,000 bytes
    with pytest.raises(MemoryError, match=r"needs about 156\.2 KiB of memory; 97\.7 KiB"):
        DenseInput(ints).open()
    DenseInput(ints.astype(np.float64)).open()  # read in place: nothing to count
    with pytest.raises(MemoryError, match="MiniBatchKMeans.fit with n_clusters=3 on 2000 x 10"):
        mbk.MiniBatchKMeans(3).fit(ints)


def test_setting_the_centers_of_a_fitted_model_sets_the_states():
    X, _ = make_blobs(500, 3, 3, seed=13)
    model = mbk.MiniBatchKMeans(3, batch_size=50, random_state=0).fit(X)
    new = model.cluster_centers_[::-1] + 1.0
    model.cluster_centers_ = new.tolist()
    assert_array_equal(model._fitted.centers, new)
    assert model._fitted.centers.flags.c_contiguous
    assert_array_equal(model.predict(X[:5]), model.transform(X[:5]).argmin(axis=1))
    with pytest.raises(ValueError, match=r"keep its shape \(3, 3\)"):
        model.cluster_centers_ = new[:2]
    with pytest.raises(AttributeError, match="only be set on a fitted"):
        mbk.MiniBatchKMeans(3).cluster_centers_ = new


class _DLPackArray:
    """An in-memory array known only by __array__, shape, dtype (not NumPy's) and DLPack."""

    def __init__(self, values):
        self.values = values
        self.shape = values.shape
        self.dtype = "not a numpy dtype"

    def __array__(self, dtype=None, copy=None):
        return self.values

    def __dlpack__(self, stream=None):
        return self.values.__dlpack__()


def test_in_memory_array_likes_are_not_loaded_as_chunked_ones():
    X, _ = make_blobs(300, 3, 3, dtype=np.float32, seed=14)
    assert DenseInput(_DLPackArray(X)).copy is None
    assert np.shares_memory(DenseInput(_DLPackArray(X)).open().X, X)


def test_column_names_matter_only_for_the_estimators_data():
    pd = pytest.importorskip("pandas")
    X, _ = make_blobs(300, 2, 3, seed=15)
    mixed = pd.DataFrame(X, columns=["a", 1])
    with pytest.raises(TypeError, match="string names"):
        mbk.MiniBatchKMeans(3).fit(mixed)
    centers, _ = mbk.kmeans_plusplus(mixed, 3, random_state=0)
    assert_array_equal(centers, mbk.kmeans_plusplus(X, 3, random_state=0)[0])
    init = pd.DataFrame(X[:3], columns=["a", 1])
    assert mbk.MiniBatchKMeans(3, init=init, n_init=1).fit(X).cluster_centers_.shape == (3, 2)


def test_a_later_partial_fit_with_a_bad_thread_count_names_it():
    X, _ = make_blobs(300, 2, 3, seed=16)
    with pytest.raises(mbk.InvalidParameterError, match="n_threads must be an int"):
        mbk.MiniBatchKMeans(3, n_threads="two").partial_fit(X)

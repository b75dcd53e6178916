"""history_, stop_reason_ and set_callbacks (issue 16): every step recorded, plain functions
and scikit-learn 1.9's callbacks called after each step, a callback's stop a valid fit."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_array_equal
from sklearn.base import clone

import mbk
from conftest import make_blobs
from mbk._schedule import HISTORY_COLUMNS, History

COLUMNS = list(HISTORY_COLUMNS)


def _data(dtype=np.float64, sparse=False, seed=0):
    X, _ = make_blobs(3000, 4, 5, dtype=dtype, seed=seed)
    if sparse:
        X = np.where(np.abs(X) > 1.0, X, 0).astype(dtype)
        X = sp.csr_matrix(X)
    return X


def _model(**params):
    return mbk.MiniBatchKMeans(**({"n_clusters": 5, "batch_size": 100, "random_state": 0}
                                  | params))  # fmt: skip


# -- history_ ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_history_has_one_entry_per_step_and_matches_the_records(dtype, sparse):
    X = _data(dtype, sparse)
    records = []
    model = _model().set_callbacks(records.append).fit(X)
    history = model.history_
    assert list(history) == COLUMNS
    for name, column_dtype in HISTORY_COLUMNS.items():
        assert history[name].dtype == column_dtype
        assert history[name].shape == (model.n_steps_,)
        assert not history[name].flags.writeable
    assert_array_equal(history["batch_inertia"], [r.batch_inertia for r in records])
    assert_array_equal(history["n_reassigned"], [r.n_reassigned for r in records])
    assert_array_equal(history["elapsed"], [r.elapsed for r in records])
    ewa = [np.nan if r.ewa_inertia is None else r.ewa_inertia for r in records]
    assert_array_equal(history["ewa_inertia"], ewa)
    assert np.isnan(history["ewa_inertia"][0]) and not np.isnan(history["ewa_inertia"][1:]).any()
    assert model.history_["ewa_inertia"][-1] == model._fitted.ewa_inertia
    assert (np.diff(history["elapsed"]) >= 0).all() and history["elapsed"][0] > 0
    # No tol and no request: the shift is not computed.
    assert np.isnan(history["center_shift"]).all()


def test_history_is_recorded_without_callbacks_and_changes_no_result():
    X = _data()
    # Five equal centers: every row goes to the first, and the others are reassigned.
    params = {"init": np.repeat(X[:1], 5, axis=0), "reassignment_ratio": 0.3}
    quiet = _model(**params).fit(X)
    heard = _model(**params).set_callbacks(lambda record: None).fit(X)
    assert_array_equal(quiet.cluster_centers_, heard.cluster_centers_)
    assert quiet.n_steps_ == heard.n_steps_ == len(quiet.history_["batch_inertia"])
    for name in ("batch_inertia", "ewa_inertia", "n_reassigned"):
        assert_array_equal(quiet.history_[name], heard.history_[name])
    assert quiet.history_["n_reassigned"].sum() > 0


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_the_center_shift_is_recorded_when_asked_for_and_is_the_squared_move(sparse):
    X = _data(sparse=sparse)
    model = _model().set_callbacks(center_shift=True)
    moves = []
    for start in range(0, 1000, 200):
        before = model.cluster_centers_.copy() if start else None
        model.partial_fit(X[start : start + 200])
        if before is not None:
            moves.append(((model.cluster_centers_ - before) ** 2).sum())
    shifts = model.history_["center_shift"]
    assert shifts.shape == (5,)
    np.testing.assert_allclose(shifts[1:], moves, rtol=1e-12)
    # fit with tol > 0 computes it anyway.
    fitted = _model(tol=1e-4).fit(X)
    assert not np.isnan(fitted.history_["center_shift"]).any()


def test_partial_fit_appends_to_the_history_and_fit_starts_it_anew():
    X = _data()
    model = _model().fit(X)
    n_fit = model.n_steps_
    last_elapsed = model.history_["elapsed"][-1]
    kept = model.history_
    model.partial_fit(X[:300]).partial_fit(X[300:600])
    history = model.history_
    assert len(history["batch_inertia"]) == model.n_steps_ == n_fit + 2
    assert_array_equal(history["batch_inertia"][:n_fit], kept["batch_inertia"])
    assert np.isnan(history["ewa_inertia"][n_fit:]).all()  # partial_fit does not smooth
    assert (history["elapsed"][n_fit:] > last_elapsed).all()
    assert model.stop_reason_ is None
    # The arrays read before stay as they were.
    assert len(kept["batch_inertia"]) == n_fit
    model.fit(X)
    assert len(model.history_["batch_inertia"]) == model.n_steps_ == n_fit


def test_the_history_grows_past_its_first_buffers():
    X = _data()
    model = _model(batch_size=10, max_iter=2, max_no_improvement=None).fit(X)
    assert model.n_steps_ == 600
    assert len(model.history_["elapsed"]) == 600
    assert (np.diff(model.history_["elapsed"]) >= 0).all()


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"max_iter": 1, "max_no_improvement": None}, "max_steps"),
        ({"max_no_improvement": 2}, "no_improvement"),
        ({"tol": 10.0}, "center_shift"),
    ],
    ids=["max-steps", "no-improvement", "tol"],
)
def test_stop_reason(params, reason):
    model = _model(**params).fit(_data())
    assert model.stop_reason_ == reason
    if reason == "max_steps":
        assert model.n_steps_ == 3000 // 100


def test_history_and_stop_reason_survive_pickling_and_are_checked():
    model = _model().fit(_data())
    again = pickle.loads(pickle.dumps(model))
    for name in COLUMNS:
        assert_array_equal(again.history_[name], model.history_[name])
    assert again.stop_reason_ == model.stop_reason_
    state = model.__getstate__()
    bad = dict(state, history_=dict(state["history_"], elapsed=-state["history_"]["elapsed"]))
    with pytest.raises(ValueError, match=r"history_\['elapsed'\] must hold numbers >= 0"):
        pickle.loads(pickle.dumps(_Restorer(bad)))
    short = dict(state, history_=dict(state["history_"], batch_inertia=np.zeros(1)))
    with pytest.raises(ValueError, match="one length"):
        pickle.loads(pickle.dumps(_Restorer(short)))
    with pytest.raises(ValueError, match="stop_reason_ must be one of"):
        pickle.loads(pickle.dumps(_Restorer(dict(state, stop_reason_="bored"))))


class _Restorer:
    """Pickles as a MiniBatchKMeans with the given state."""

    def __init__(self, state):
        self.state = state

    def __reduce__(self):
        return _restore, (self.state,)


def _restore(state):
    model = mbk.MiniBatchKMeans.__new__(mbk.MiniBatchKMeans)
    model.__setstate__(state)
    return model


def test_a_history_without_entries_still_loads():
    # (pickles written before the history existed have none)
    state = _model().fit(_data()).__getstate__()
    del state["history_"]
    model = _restore(state)
    assert len(model.history_["batch_inertia"]) == 0
    assert len(History()) == 0


def test_history_is_absent_before_fit_and_empty_for_nested():
    model = _model()
    assert not hasattr(model, "history_") and not hasattr(model, "stop_reason_")
    nested = _model(algorithm="nested").fit(_data())
    assert all(len(column) == 0 for column in nested.history_.values())
    assert nested.stop_reason_ is None
    with pytest.warns(UserWarning, match="callback functions are not called"):
        _model(algorithm="nested").set_callbacks(lambda record: None).fit(_data())


# -- plain callbacks ------------------------------------------------------------------------


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_a_callback_returning_true_stops_fit_with_a_valid_model(sparse):
    X = _data(sparse=sparse)
    model = _model(max_no_improvement=None).set_callbacks(lambda record: record.step == 7)
    model.fit(X)
    assert model.n_steps_ == 7 and model.stop_reason_ == "callback"
    assert len(model.history_["batch_inertia"]) == 7
    assert_array_equal(model.labels_, model.predict(X))
    assert model.inertia_ == pytest.approx(-model.score(X), rel=1e-9)
    # The same centers as seven steps of an uninterrupted fit (its snapshots, below).
    snapshots = _Snapshots(sklearn_steps=True)
    _model(max_no_improvement=None).set_callbacks(snapshots).fit(X)
    assert_array_equal(snapshots.centers[6], model.cluster_centers_)


def test_every_callback_is_called_and_any_may_stop():
    calls = []
    model = _model(max_no_improvement=None).set_callbacks(
        lambda r: calls.append(("a", r.step)), lambda r: calls.append(("b", r.step)) or r.step == 3
    )
    model.fit(_data())
    assert calls == [(name, step) for step in (1, 2, 3) for name in "ab"]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt], ids=["error", "ctrl-c"])
def test_a_callback_that_raises_leaves_the_estimator_as_it_was(error):
    X = _data()
    model = _model().fit(X)
    before = model.cluster_centers_.copy(), model.n_steps_, model.history_

    def fail_at_step_4(record):
        if record.step == 4:
            raise error("stop")

    with pytest.raises(error):
        model.set_callbacks(fail_at_step_4).fit(X)
    assert_array_equal(model.cluster_centers_, before[0])
    assert model.n_steps_ == before[1]
    assert_array_equal(model.history_["batch_inertia"], before[2]["batch_inertia"])


def test_partial_fit_calls_the_callbacks_once_per_call():
    X = _data()
    records = []
    model = _model().set_callbacks(records.append)
    for start in (0, 200, 400):
        model.partial_fit(X[start : start + 200])
    assert [r.step for r in records] == [1, 2, 3]
    assert all(r.ewa_inertia is None and r.stop_reason is None for r in records)


def test_callbacks_are_not_parameters_and_never_pickled():
    function = _Counter()
    model = _model().set_callbacks(function)
    assert "callbacks" not in model.get_params()
    copy = clone(model)  # scikit-learn's clone keeps callbacks, by reference
    copy.fit(_data())
    assert function.calls == copy.n_steps_
    restored = pickle.loads(pickle.dumps(model.fit(_data())))
    assert "_step_callbacks" not in restored.__dict__
    calls = function.calls
    restored.fit(_data())
    assert function.calls == calls
    model.set_callbacks()
    assert "_step_callbacks" not in model.__dict__


class _Counter:
    def __init__(self):
        self.calls = 0

    def __call__(self, record):
        self.calls += 1


@pytest.mark.parametrize(
    ("callback", "message"),
    [
        (42, "got int"),
        (mbk.MiniBatchKMeans, "not the class MiniBatchKMeans"),
    ],
    ids=["number", "class"],
)
def test_set_callbacks_refuses_what_is_not_a_callback(callback, message):
    with pytest.raises(TypeError, match=message):
        _model().set_callbacks(callback)


# -- scikit-learn's callbacks -------------------------------------------------------------


class _Snapshots:
    """A scikit-learn FitCallback recording the task tree and each step's fitted model."""

    def __init__(self, sklearn_steps=False):
        self.events = []
        self.centers = []
        self.predictions = []

    def setup(self, estimator, context):
        self.events.append("setup")

    def teardown(self, estimator, context):
        self.events.append("teardown")

    def on_fit_task_begin(self, estimator, context, *, X=None):
        self.events.append(("begin", context.task_name))

    def on_fit_task_end(self, estimator, context, *, X=None, fitted_estimator=None):
        self.events.append(("end", context.task_name))
        if context.task_name == "step" and fitted_estimator is not None:
            self.centers.append(fitted_estimator.cluster_centers_.copy())
            self.predictions.append(fitted_estimator.predict(X[:50]))


def test_scikit_learn_callbacks_see_a_task_per_step_and_a_fitted_model():
    X = _data()
    snapshots = _Snapshots()
    model = _model(max_no_improvement=None, max_iter=1).set_callbacks(snapshots).fit(X)
    n_steps = model.n_steps_
    assert snapshots.events == (
        ["setup", ("begin", "fit")]
        + [event for _ in range(n_steps) for event in (("begin", "step"), ("end", "step"))]
        + [("end", "fit"), "teardown"]
    )
    assert len(snapshots.centers) == n_steps
    assert_array_equal(snapshots.centers[-1], model.cluster_centers_)
    assert not np.array_equal(snapshots.centers[0], snapshots.centers[-1])
    # Each snapshot predicts as a model stopped at that step would.
    stopped = _model(max_no_improvement=None).set_callbacks(lambda r: r.step == 3).fit(X)
    assert_array_equal(snapshots.centers[2], stopped.cluster_centers_)
    assert_array_equal(snapshots.predictions[2], stopped.predict(X[:50]))


def test_a_scikit_learn_callback_may_stop_fit():
    class StopAtFive(_Snapshots):
        def on_fit_task_end(self, estimator, context, *, X=None, fitted_estimator=None):
            super().on_fit_task_end(estimator, context, X=X, fitted_estimator=None)
            return context.task_name == "step" and len(self.events) >= 2 + 2 * 5

    callback = StopAtFive()
    model = _model(max_no_improvement=None).set_callbacks(callback).fit(_data())
    assert model.n_steps_ == 5 and model.stop_reason_ == "callback"
    assert callback.events[-2:] == [("end", "fit"), "teardown"]


def test_scikit_learn_progress_bar_runs_on_mbk(capsys):
    from sklearn.callback import ProgressBar

    X = _data()
    plain = _model().fit(X)
    model = _model().set_callbacks(ProgressBar()).fit(X)
    assert_array_equal(model.cluster_centers_, plain.cluster_centers_)
    assert "MiniBatchKMeans - fit" in capsys.readouterr().out
    model.partial_fit(X[:200])
    assert model.n_steps_ == plain.n_steps_ + 1


def test_scikit_learn_scoring_monitor_scores_every_step():
    from sklearn.callback import ScoringMonitor

    X = _data()
    monitor = ScoringMonitor(scoring={"score": lambda estimator, X, y: estimator.score(X)})
    model = _model(max_no_improvement=None, max_iter=1).set_callbacks(monitor)
    model.fit(X, np.zeros(len(X)))  # (its scores need a y)
    scores = [entry["score"] for entry in monitor.get_logs().data if "score" in entry]
    assert len(scores) == model.n_steps_ + 1  # every step, and the fit
    assert scores[-1] == pytest.approx(model.score(X), rel=1e-12)

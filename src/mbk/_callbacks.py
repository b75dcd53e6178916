"""Callbacks: one mechanism for plain functions and scikit-learn's callbacks.

``MiniBatchKMeans.set_callbacks`` keeps them outside the constructor's parameters (so
``get_params``, ``clone``'s parameters, pickles and model files never hold a callable). A
fitting call runs them through one ``CallbackRun``, a listener on the schedule:

- a plain function is called after every Sculley step with that step's ``StepRecord``;
- scikit-learn's callbacks (``sklearn.callback``, scikit-learn >= 1.9: ``ProgressBar``,
  ``ScoringMonitor``, or any object following its ``FitCallback`` protocol) see the call as
  its task tree: the root task ("fit" or "partial_fit") with one subtask per step, through
  the estimator's ``CallbackSupportMixin`` methods.

Any of them returning True stops fit after that step; the model is then fitted on the steps
done (labels and inertia computed as after any stop).
"""

import functools
from typing import NamedTuple

import numpy as np

try:  # scikit-learn >= 1.9
    from sklearn.callback import FitCallback, with_callbacks
except ImportError:  # pragma: no cover - the test extra has scikit-learn 1.9
    FitCallback = with_callbacks = None


class StepCallbacks(NamedTuple):
    """The plain functions set on an estimator, and whether steps measure the center shift."""

    functions: tuple = ()
    center_shift: bool = False


def split_callbacks(callbacks):
    """(scikit-learn callbacks, plain functions) from set_callbacks' arguments; TypeError for
    anything that is neither."""
    scikit_learn, functions = [], []
    for callback in callbacks:
        if isinstance(callback, type):
            raise TypeError(
                f"set_callbacks takes callback instances or functions, not the class "
                f"{callback.__name__}: call it first."
            )
        if FitCallback is not None and isinstance(callback, FitCallback):
            scikit_learn.append(callback)
        elif callable(callback):
            functions.append(callback)
        elif all(hasattr(callback, hook) for hook in ("setup", "on_fit_task_end")):
            raise TypeError(
                f"{type(callback).__name__} looks like a scikit-learn callback, which needs "
                "scikit-learn >= 1.9 (sklearn.callback); plain functions work without it."
            )
        else:
            raise TypeError(
                "set_callbacks takes functions (called with each step's record) and "
                f"scikit-learn callbacks; got {type(callback).__name__}."
            )
    return scikit_learn, tuple(functions)


def managed(fitting_method):
    """Run a fitting method inside scikit-learn's callback management (the callbacks'
    teardown runs whatever happens) when the estimator has scikit-learn callbacks."""

    @functools.wraps(fitting_method)
    def run(estimator, *args, **kwargs):
        if not estimator.__dict__.get("_skl_callbacks"):
            return fitting_method(estimator, *args, **kwargs)
        return with_callbacks(fitting_method)(estimator, *args, **kwargs)

    return run


class CallbackRun:
    """The callbacks of one fitting call, as a listener on its schedule.

    Parameters
    ----------
    estimator : MiniBatchKMeans
        The estimator being fitted (its callbacks, and the copy a scikit-learn callback may
        ask for as ``fitted_estimator``).
    task_name : str
        "fit" or "partial_fit": the root task of scikit-learn's task tree.
    max_steps : int
        The most steps the call can run (the root task's subtasks).
    X, y, sample_weight
        The call's data (y is not used by mbk), passed on to scikit-learn's hooks.
    settings, feature_names
        What a snapshot of the model needs besides its centers and weights.
    """

    def __init__(self, estimator, task_name, max_steps, X, y, sample_weight, settings,
                 feature_names):  # fmt: skip
        step_callbacks = estimator.__dict__.get("_step_callbacks") or StepCallbacks()
        self.functions = step_callbacks.functions
        self.center_shift = step_callbacks.center_shift
        self._estimator = estimator
        metadata = None if sample_weight is None else {"sample_weight": sample_weight}
        self._data = {"X": X, "y": y, "metadata": metadata}
        self._settings = settings
        self._feature_names = feature_names
        self._schedule = None
        self._step_context = None
        self._context = None
        self._max_steps = max(int(max_steps), 1)
        self._steps_begun = 0
        if estimator.__dict__.get("_skl_callbacks"):
            self._context = estimator._init_callback_context(
                task_name=task_name, max_subtasks=self._max_steps
            )

    @property
    def listeners(self):
        """What the schedule is given: this run, or nothing when no callback is set."""
        return (self,) if self.functions or self._context is not None else ()

    def on_schedule(self, schedule):
        """Told by the schedule it listens to (for the model's snapshots)."""
        self._schedule = schedule

    def begin(self):
        """Before the first step: scikit-learn's root task and first step begin."""
        if self._context is not None:
            self._context.call_on_fit_task_begin(estimator=self._estimator, **self._data)
            self._begin_step()

    def __call__(self, record):
        stop = False
        for function in self.functions:
            stop = bool(function(record)) or stop
        if self._context is not None:
            stop = self._step_context.call_on_fit_task_end(
                estimator=self._estimator, **self._data,
                reconstruction_attributes=lambda: {"_fitted": self._snapshot(record.step)},
            ) or stop  # fmt: skip
            self._step_context = None
            if not stop and record.stop_reason is None and self._steps_begun < self._max_steps:
                self._begin_step()
        return stop

    def end(self, state):
        """After the call: a step begun but not run is ended empty, then the root task ends
        with the fitted model."""
        if self._context is None:
            return
        if self._step_context is not None:
            self._step_context.call_on_fit_task_end(estimator=self._estimator)
        self._context.call_on_fit_task_end(
            estimator=self._estimator, **self._data,
            reconstruction_attributes=lambda: {"_fitted": state},
        )  # fmt: skip

    def _begin_step(self):
        self._steps_begun += 1
        self._step_context = self._context.subcontext(task_name="step")
        self._step_context.call_on_fit_task_begin(estimator=self._estimator, **self._data)

    def _snapshot(self, n_steps):
        """A state fitted as of the latest step: copies of its centers and weights."""
        from ._state import SculleyState

        centers = self._schedule.latest_centers
        centers = np.array(centers) if isinstance(centers, np.ndarray) else centers.to_array()
        return SculleyState(
            centers=centers,
            weight_sums=np.array(self._schedule.latest_weight_sums),
            settings=self._settings,
            n_steps=n_steps,
            feature_names=self._feature_names,
        )

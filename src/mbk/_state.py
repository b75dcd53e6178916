"""The fitted state of a MiniBatchKMeans, in one object.

``fit``, ``partial_fit`` and the nested driver write a ``SculleyState``; the estimator's fitted
attributes (``cluster_centers_``, ``labels_``, ``n_steps_``, ...) are views of it; a pickle
stores it as a flat mapping of named arrays and numbers (``to_flat``), the attribute names
scikit-learn's MiniBatchKMeans has, and ``from_flat`` refuses a mapping that could not have
been saved. Everything a later partial_fit continues from is here, so a model file that
stores the mapping resumes exactly.
"""

import numbers
from dataclasses import dataclass, field, fields

import numpy as np

from ._schedule import (
    HISTORY_COLUMNS,
    STOPPED_AT_MAX_STEPS,
    STOPPED_BY_INERTIA,
    STOPPED_BY_LISTENER,
    STOPPED_BY_SHIFT,
    History,
)
from ._validation import Settings

# The flat mapping's names: scikit-learn's attribute names, for each field.
_FLAT_NAMES = {
    "centers": "cluster_centers_",
    "weight_sums": "_counts",
    "n_steps": "n_steps_",
    "feature_names": "feature_names_in_",
    "tol": "_tol",
    "n_iter": "n_iter_",
    "ewa_inertia": "_ewa_inertia",
    "ewa_inertia_min": "_ewa_inertia_min",
    "no_improvement": "_no_improvement",
    "n_since_last_reassign": "_n_since_last_reassign",
    "random_state": "_random_state",
    "inertia": "inertia_",
    "labels": "labels_",
    "history": "history_",
    "stop_reason": "stop_reason_",
}
STOP_REASONS = (STOPPED_BY_SHIFT, STOPPED_BY_INERTIA, STOPPED_AT_MAX_STEPS, STOPPED_BY_LISTENER)
_SETTINGS_NAMES = {"batch_size": "_batch_size", "init_size": "_init_size", "n_init": "_n_init"}
# Names of fitted attributes that earlier versions pickled and that are derived now.
_DERIVED_NAMES = ("n_features_in_", "_n_features_out", "_n_threads")
FLAT_NAMES = (*_FLAT_NAMES.values(), *_SETTINGS_NAMES.values(), *_DERIVED_NAMES)


@dataclass(eq=False)
class SculleyState:
    """Everything a fitted model knows.

    Attributes
    ----------
    centers : ndarray of shape (n_clusters, n_features)
        C-ordered, float32 or float64 (the data's dtype).
    weight_sums : ndarray of shape (n_clusters,), float64
        Each center's running weight (scikit-learn's ``_counts``).
    settings : Settings
        The batch size, init size and number of inits resolved from the first data.
    n_steps : int
        Mini-batch steps run over the model's life (``n_steps_``).
    feature_names : ndarray of str objects or None
        The training data's column names.
    tol : float
        fit's tolerance scaled to its data (0: no center-shift test).
    n_iter : int or None
        Passes over the data made by the last fit (None after partial_fit alone).
    ewa_inertia, ewa_inertia_min : float or None
        fit's smoothed batch inertia and its minimum.
    no_improvement : int
        fit's steps since that minimum last improved.
    n_since_last_reassign : int
        Rows seen since the last reassignment of small centers.
    random_state : numpy RandomState or None
        partial_fit's random stream, created by its first call and kept for the estimator's
        life (a fit does not reset it, as in scikit-learn).
    inertia : float or None
        The inertia the last fit or partial_fit reports (``inertia_``).
    labels : ndarray of shape (n_samples,), int32, or None
        The nearest center of each training row, with compute_labels.
    history : History
        Every Sculley step of the model's life (fit starts a new one; partial_fit appends).
    stop_reason : str or None
        Why the last fit's steps stopped (one of STOP_REASONS); None after partial_fit.
    """

    centers: np.ndarray
    weight_sums: np.ndarray
    settings: Settings
    n_steps: int = 0
    feature_names: np.ndarray | None = None
    tol: float = 0.0
    n_iter: int | None = None
    ewa_inertia: float | None = None
    ewa_inertia_min: float | None = None
    no_improvement: int = 0
    n_since_last_reassign: int = 0
    random_state: np.random.RandomState | None = None
    inertia: float | None = None
    labels: np.ndarray | None = None
    history: History = field(default_factory=History)
    stop_reason: str | None = None

    @property
    def n_clusters(self):
        return self.__dict__["_rows"].shape[0]

    @property
    def n_features(self):
        return self.__dict__["_rows"].shape[1]

    @property
    def dtype(self):
        """The centers' dtype (float32 or float64)."""
        return self.__dict__["_rows"].dtype

    # -- the centers in a kernel family's layout ------------------------------------------------

    def held_centers(self):
        """The centers in the layout a kernel family moved them in last (the CSR kernels'
        FeatureMajorCenters), or None: then ``centers`` is all there is."""
        held = self.__dict__.get("_held")
        return None if held is None else held[0]

    def hold_centers(self, kernel_centers, n_threads):
        """Make ``kernel_centers`` the authoritative centers: the steps move them there, and
        ``centers`` is brought up to date from them (in place, on n_threads) when it is read
        next. partial_fit on CSR batches then transposes the centers neither in nor out."""
        self.__dict__["_held"] = (kernel_centers, n_threads)

    def __getstate__(self):
        # (pickles store to_flat(); a copy of the state itself carries the centers up to date)
        state = dict(self.__dict__)
        state["_rows"] = self.centers
        state["_held"] = None
        return state

    def to_flat(self):
        """The state as {name: array, number, str, RandomState or {column: array}}, with
        scikit-learn's attribute names (what a pickle stores; None values are left out; the
        history is a dict of its columns)."""
        flat = {_FLAT_NAMES[f.name]: getattr(self, f.name) for f in fields(self)
                if f.name not in ("settings", "history")
                and getattr(self, f.name) is not None}  # fmt: skip
        flat["history_"] = {name: np.array(column) for name, column in
                            self.history.columns().items()}  # fmt: skip
        for name, flat_name in _SETTINGS_NAMES.items():
            flat[flat_name] = getattr(self.settings, name)
        flat["n_features_in_"] = self.n_features
        return flat

    @classmethod
    def from_flat(cls, flat):
        """The state from a flat mapping; ValueError names what makes it impossible."""
        values = {name: flat.get(flat_name) for name, flat_name in _FLAT_NAMES.items()}
        settings = {name: flat.get(flat_name) for name, flat_name in _SETTINGS_NAMES.items()}
        problem = _problem(values, settings, flat.get("n_features_in_"))
        if problem is not None:
            raise ValueError(problem)
        for name, default in (("tol", 0.0), ("no_improvement", 0), ("n_since_last_reassign", 0)):
            if values[name] is None:
                values[name] = default
        values["history"] = History(values["history"])
        return cls(settings=Settings(**{k: int(v) for k, v in settings.items()}), **values)


def _is_int(value, minimum):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= minimum


def _is_real(value, minimum=-np.inf):
    """A real number >= minimum (infinity too: a sum of huge distances may overflow)."""
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and not np.isnan(value) and value >= minimum)  # fmt: skip


def _problem(values, settings, n_features):
    """What is wrong with a state's values, or None."""
    centers = values["centers"]
    if not isinstance(centers, np.ndarray) or centers.dtype not in (np.float32, np.float64):
        return "cluster_centers_ is not a float32 or float64 array"
    # (n_clusters may have been changed by set_params since the fit: not compared)
    if (
        not isinstance(n_features, int)
        or centers.ndim != 2
        or centers.shape[0] < 1
        or centers.shape[1] != n_features
    ):
        return (
            f"cluster_centers_ has shape {centers.shape}, expected (n_clusters, "
            f"{n_features}) from n_features_in_"
        )
    if not centers.flags.c_contiguous or not np.isfinite(centers).all():
        return "cluster_centers_ must be C-ordered and finite"
    n_clusters = centers.shape[0]
    counts = values["weight_sums"]
    if (
        not isinstance(counts, np.ndarray)
        or counts.dtype != np.float64
        or counts.shape != (n_clusters,)
        or not np.isfinite(counts).all()
        or (counts < 0).any()
    ):
        return "the running weight per center must be n_clusters finite float64 values >= 0"
    if not _is_int(values["n_steps"], 0):
        return "n_steps_ must be an int >= 0"
    if not all(_is_int(value, 1) for value in settings.values()):
        return "_batch_size, _init_size and _n_init must be ints >= 1"
    names = values["feature_names"]
    if names is not None and (
        not isinstance(names, np.ndarray)
        or names.shape != (n_features,)
        or not all(isinstance(name, str) for name in names)
    ):
        return "feature_names_in_ must be n_features_in_ strings"
    if values["tol"] is not None and not (_is_real(values["tol"], 0) and values["tol"] < np.inf):
        return "_tol must be a finite number >= 0"
    if values["n_iter"] is not None and not _is_int(values["n_iter"], 0):
        return "n_iter_ must be an int >= 0"
    for name in ("ewa_inertia", "ewa_inertia_min", "inertia"):
        if values[name] is not None and not _is_real(values[name]):
            return f"{_FLAT_NAMES[name]} must be a number"
    for name in ("no_improvement", "n_since_last_reassign"):
        if values[name] is not None and not _is_int(values[name], 0):
            return f"{_FLAT_NAMES[name]} must be an int >= 0"
    stream = values["random_state"]
    if stream is not None and not isinstance(stream, np.random.RandomState):
        return "_random_state must be a numpy RandomState"
    labels = values["labels"]
    if labels is not None and (
        not isinstance(labels, np.ndarray)
        or labels.dtype != np.int32
        or labels.ndim != 1
        or (labels.size and not 0 <= labels.min() <= labels.max() < n_clusters)
    ):
        return "labels_ must be int32 labels of the centers"
    reason = values["stop_reason"]
    if reason is not None and not (isinstance(reason, str) and reason in STOP_REASONS):
        return f"stop_reason_ must be one of {', '.join(STOP_REASONS)}"
    if values["history"] is not None:
        return _history_problem(values["history"], values["n_steps"])
    return None


def _history_problem(columns, n_steps):
    """What is wrong with a history's columns (from a pickle or a model file), or None."""
    if not isinstance(columns, dict) or set(columns) != set(HISTORY_COLUMNS):
        return f"history_ must have the columns {', '.join(HISTORY_COLUMNS)}"
    lengths = set()
    for name, dtype in HISTORY_COLUMNS.items():
        column = columns[name]
        if not isinstance(column, np.ndarray) or column.dtype != dtype or column.ndim != 1:
            return f"history_[{name!r}] must be a 1-D {np.dtype(dtype).name} array"
        lengths.add(column.shape[0])
    if len(lengths) != 1 or lengths.pop() > n_steps:
        return "history_'s columns must have one length, at most n_steps_"
    for name in ("batch_inertia", "n_reassigned", "elapsed"):
        if np.isnan(columns[name]).any() or (columns[name] < 0).any():
            return f"history_[{name!r}] must hold numbers >= 0"
    for name in ("ewa_inertia", "center_shift"):
        if (columns[name] < 0).any():  # (NaN where there is none)
            return f"history_[{name!r}] must hold numbers >= 0 or NaN"
    return None


def _current_centers(state):
    held = state.__dict__.get("_held")
    if held is not None:
        kernel_centers, n_threads = held
        kernel_centers.store(state.__dict__["_rows"], n_threads)
        state.__dict__["_held"] = None
    return state.__dict__["_rows"]


def _replace_centers(state, centers):
    state.__dict__["_rows"] = centers
    state.__dict__["_held"] = None


# The dataclass field ``centers`` through a property: reading it brings the row-major array
# up to date from centers a kernel family holds (hold_centers), in place, so that the array
# keeps its identity; setting it drops what was held.
SculleyState.centers = property(
    _current_centers,
    _replace_centers,
    doc="(n_clusters, n_features) C-ordered float32/float64 centers, up to date when read.",
)

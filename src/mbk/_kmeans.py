"""The estimator: parameters in, attributes out.

Each fitting method reads as its story: the parameters checked, the input made a source
(``mbk._sources``), the settings resolved, a driver run from the source to the fitted state
(``mbk._sculley`` or ``mbk._nested``), and the state kept. The fitted attributes are views of
that state (``mbk._state``), which is also what a pickle and a model file store.
"""

import functools

import numpy as np

from . import _nested, _sculley
from ._callbacks import CallbackRun, StepCallbacks, managed, split_callbacks
from ._compat import ESTIMATOR_BASES, NotFittedError
from ._sources import CsrInput, check_feature_names, check_n_features, read_input
from ._sources.chunked import BlockwiseSource, checked_output, loads_whole, open_chunked
from ._state import FLAT_NAMES, SculleyState
from ._validation import (
    InvalidParameterError,
    check_params,
    check_random_state,
    resolve_n_threads,
    resolve_settings,
    warn_user,
)

# The driver of each algorithm: working_bytes(params, settings, incoming) and
# fit(source, params, settings, random_state, n_threads) -> SculleyState, and, where
# RUNS_STEPS, fit's keywords listeners= and center_shift= (see _schedule); READS_CHUNKS: fit
# reads an array without memory of its own chunk by chunk (a ChunkedSource), not whole.
_DRIVERS = {"sculley": _sculley, "nested": _nested}
# What set_callbacks and scikit-learn's callback machinery keep on the estimator: never
# pickled (a pickle or model file holds no callable).
_CALLBACK_ATTRIBUTES = ("_skl_callbacks", "_step_callbacks", "_callback_fit_ctx",
                        "_skl_callbacks_to_teardown", "_parent_callback_ctx")  # fmt: skip


def _all_or_nothing(fit_method):
    """Make a fitting method leave the estimator as it was if it raises, Ctrl-C included.

    fit builds a new state and never changes the previous fit's in place, so a shallow copy
    of the attributes is enough to put them back.
    """

    @functools.wraps(fit_method)
    def run(self, *args, **kwargs):
        before = dict(self.__dict__)
        try:
            return fit_method(self, *args, **kwargs)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise

    return run


def _fitted_view(field, name):
    """A fitted attribute: the state's ``field``, absent (AttributeError) before a fit or
    when the state has none. Setting it on a fitted model sets the state's (as code written
    for scikit-learn sets ``cluster_centers_``); new centers must keep the centers' shape."""

    def get(self):
        state = self.__dict__.get("_fitted")
        value = None if state is None else getattr(state, field)
        if value is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return value

    def set(self, value):
        state = self.__dict__.get("_fitted")
        if state is None:
            raise AttributeError(f"{name} can only be set on a fitted {type(self).__name__}")
        if field == "centers":
            value = _replacement_centers(state.centers, value)
        setattr(state, field, value)

    return property(get, set, doc=f"View of the fitted state's {field} (see the class docstring).")


def _fitted_reading(name, read, doc):
    """A read-only fitted attribute: read(state), whatever it is (None included);
    AttributeError before a fit."""

    def get(self):
        state = self.__dict__.get("_fitted")
        if state is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return read(state)

    return property(get, doc=f"{doc} (see the class docstring)")


def _written(out, values, what):
    """values copied into a caller's out (checked), which is returned."""
    out = checked_output(out, values.shape, what)
    out[...] = values
    return out


def _replacement_centers(centers, value):
    """value as the model's new centers: the same shape and dtype, C-ordered and finite."""
    value = np.array(value, dtype=centers.dtype, order="C", copy=True)
    if value.shape != centers.shape or not np.isfinite(value).all():
        raise ValueError(
            f"cluster_centers_ must be finite and keep its shape {centers.shape}; got "
            f"{value.shape}."
        )
    return value


class MiniBatchKMeans(*ESTIMATOR_BASES):
    """Mini-batch k-means clustering, a drop-in for scikit-learn's ``MiniBatchKMeans``.

    With ``algorithm="sculley"`` (the default), each step draws a batch of rows, assigns them
    to their nearest center and moves every center toward the mean of its new rows with a
    per-center learning rate (its batch weight over its running weight). Same parameters,
    attributes, methods and, for the same ``random_state``, the same results as scikit-learn
    1.9; the kernels are compiled and parallel, read the data in place, and give bitwise
    identical results for any thread count.

    With ``algorithm="nested"``, ``fit`` runs nested mini-batch k-means (Newling & Fleuret,
    NeurIPS 2016): batches that grow by doubling and contain each other, distance bounds
    that let rows whose nearest center cannot have changed skip the distance work, and a
    stop at a Lloyd fixed point of the whole data set. In our measurements its inertia is
    lower than Sculley's algorithm's and as low as or lower than one Lloyd run's (k-means++
    seeding is followed by swaps on the first batch), in a fraction of Lloyd's time: a small
    one on large data. See the Notes.

    Parameters
    ----------
    n_clusters : int, default=8
        The number of clusters, 1 <= n_clusters <= n_samples.
    init : {"k-means++", "random"}, callable or array-like of shape (n_clusters, n_features), \
            default="k-means++"
        How to seed the centers: greedy k-means++, ``n_clusters`` distinct rows drawn at
        random (in proportion to ``sample_weight``), a callable
        ``init(X, n_clusters, random_state=...)`` returning the centers, or the centers
        themselves (copied, never modified).
    max_iter : int, default=100
        Passes over the data ``fit`` may make: it runs at most
        ``max_iter * n_samples // batch_size`` steps.
    batch_size : int, default=1024
        Rows per mini-batch (capped at n_samples).
    verbose : int, default=0
        Print the initial inertias, each step's batch inertia and why fitting stopped.
    compute_labels : bool, default=True
        Compute ``labels_`` and ``inertia_`` on the full data after ``fit`` (on the batch after
        ``partial_fit``). Without it ``inertia_`` is the smoothed batch inertia times the total
        weight.
    random_state : int, RandomState instance or None, default=None
        Source of all random draws (seeding, batches, reassignment).
    tol : float, default=0.0
        Stop when the squared movement of all centers in one step is at most
        ``tol * mean feature variance``. 0 disables this test.
    max_no_improvement : int or None, default=10
        Stop after this many steps without improvement of the smoothed batch inertia. None
        disables this test.
    init_size : int or None, default=None
        Rows randomly drawn to run the initialisation on; None means 3 * batch_size (at least
        3 * n_clusters), capped at n_samples.
    n_init : "auto" or int, default="auto"
        Initialisations tried; the one with the lowest inertia on a validation batch is kept.
        "auto" is 1 for "k-means++" or given centers, 3 for "random" or a callable
        (``algorithm="nested"``: see the Notes).
    reassignment_ratio : float, default=0.01
        Centers whose running weight falls below this fraction of the largest are moved to
        random rows of the batch.
    n_threads : int or None, default=None
        OpenMP threads for the kernels. None uses every usable core, within
        ``OMP_NUM_THREADS`` and ``threadpoolctl.threadpool_limits``. Results do not depend on
        it.
    algorithm : {"sculley", "nested"}, default="sculley"
        "sculley": scikit-learn's mini-batch algorithm (identical results). "nested": nested
        mini-batch k-means, run by ``fit`` only (``partial_fit`` raises). See the Notes for
        what each parameter means with it.
    sampling : {"auto", "exact", "blocks"}, default="auto"
        How ``fit`` (Sculley's) draws its batches from an array without memory of its own
        (zarr, HDF5, ...) too large to load whole. "exact": scikit-learn's draws, as in
        memory (the same result), each step reading every storage chunk its batch touches.
        "blocks": each step reads a few whole chunks (BLOCKS_PER_STEP, chosen in proportion
        to their rows, or weights) and draws its rows within them: far less reading, an
        unbiased batch, but correlated within a step (safe when the rows are shuffled on
        disk; on data stored sorted by cluster, batches vary much more). "auto": "blocks"
        for such arrays, "exact" otherwise. Arrays that fit in memory are loaded whole and
        sampled exactly whatever this says, as are arrays in memory and ``np.memmap``.

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
        The centers, in the data's dtype (float32 or float64).
    labels_ : ndarray of shape (n_samples,), dtype int32
        Nearest center of each training row (when ``compute_labels``).
    inertia_ : float
        Weighted sum of squared distances of the rows to their nearest center.
    n_iter_ : int
        Passes over the data made by ``fit``.
    n_steps_ : int
        Mini-batches processed.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names seen during ``fit``, when X had string column names.
    history_ : dict of str to ndarray
        One entry per mini-batch step of the model's life (``fit`` starts it anew,
        ``partial_fit`` appends), all of length ``n_steps_``: ``"batch_inertia"`` (the batch's
        weighted inertia before the step), ``"ewa_inertia"`` (the smoothed mean batch inertia
        the early stopping watches; NaN on fit's first step and for ``partial_fit``),
        ``"n_reassigned"`` (centers moved onto batch rows), ``"elapsed"`` (seconds from the
        start of ``fit`` to the end of the step; ``partial_fit`` adds its steps' time) and
        ``"center_shift"`` (the sum of the centers' squared moves, computed when ``tol > 0``
        or asked for with ``set_callbacks(center_shift=True)``, NaN otherwise). Read-only
        arrays. ``algorithm="nested"`` runs rounds, not mini-batch steps: its history is
        empty.
    stop_reason_ : str or None
        Why ``fit``'s steps stopped: "center_shift" (tol), "no_improvement"
        (max_no_improvement), "max_steps" (max_iter) or "callback" (a callback returned
        True); None after ``partial_fit`` and for ``algorithm="nested"``.

    Notes
    -----
    Running weights (counts) are kept in float64 for float32 data too: scikit-learn keeps
    them in float32, where a count stops growing at 2**24 and the learning rate freezes.

    With ``algorithm="nested"`` the parameters mean:

    - ``init``, ``random_state``, ``n_threads``, ``verbose``, ``compute_labels``: as above.
      One random permutation of the rows is drawn; its first ``init_size`` rows are the first
      batch. The seedings run on a sample of it (all of it with one seeding, else half of
      it, at least 128 rows per cluster), each is settled there by rounds up to a Lloyd
      fixed point, and the one with the lowest inertia there goes on. Then single center
      moves ("swaps") that lower the sample's inertia are applied, which repairs seedings
      that put two centers in one cluster and none in another.
    - ``init_size``: the first batch (default 3 * batch_size, at least 3 * n_clusters); it
      then doubles when every center moves less than its standard error (the center
      movement is dominated by batch noise) or when no label changes.
    - ``batch_size``: only through the default ``init_size``.
    - ``n_init``: seedings tried, as above. "auto" means 3 for every kind of ``init`` except
      given centers (1): a Lloyd run from one k-means++ seeding often ends in a poor local
      minimum on data with several (such as California housing), the best of three settled
      seedings rarely does, and settling costs little next to the run.
    - ``max_iter``: a bound on the passes over the data, counted as rows visited over all
      rounds divided by n_samples (``n_iter_``). ``n_steps_`` counts rounds.
    - ``tol``: 0 (default) runs until no label changes on the whole data set, a Lloyd fixed
      point: the centers are the weighted means of their rows and ``labels_`` are exact.
      With tol > 0 the run also stops, once the batch is the whole data set, when a round
      moves the centers by a summed squared distance of at most tol times the mean feature
      variance (scikit-learn ``KMeans``'s rule).
    - ``sample_weight``: multiplies each row's contribution (weight 2 = the row twice);
      weights must be non-negative. Unlike Sculley's ``fit``, rows are not drawn in
      proportion to their weights.
    - ``max_no_improvement``, ``reassignment_ratio``: not used (a warning says so when they
      differ from their defaults).

    Memory: up to about 90 bytes per row of X (labels, bounds, the permutation, a round's
    lists) on top of X, which is read in place when it is C-ordered (otherwise copied to C
    order once: every round reads whole rows).
    """

    def __init__(
        self,
        n_clusters=8,
        *,
        init="k-means++",
        max_iter=100,
        batch_size=1024,
        verbose=0,
        compute_labels=True,
        random_state=None,
        tol=0.0,
        max_no_improvement=10,
        init_size=None,
        n_init="auto",
        reassignment_ratio=0.01,
        n_threads=None,
        algorithm="sculley",
        sampling="auto",
    ):
        self.n_clusters = n_clusters
        self.init = init
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.verbose = verbose
        self.compute_labels = compute_labels
        self.random_state = random_state
        self.tol = tol
        self.max_no_improvement = max_no_improvement
        self.init_size = init_size
        self.n_init = n_init
        self.reassignment_ratio = reassignment_ratio
        self.n_threads = n_threads
        self.algorithm = algorithm
        self.sampling = sampling

    # -- fitted attributes: views of the state ----------------------------------------------

    cluster_centers_ = _fitted_view("centers", "cluster_centers_")
    labels_ = _fitted_view("labels", "labels_")
    inertia_ = _fitted_view("inertia", "inertia_")
    n_iter_ = _fitted_view("n_iter", "n_iter_")
    n_steps_ = _fitted_view("n_steps", "n_steps_")
    n_features_in_ = _fitted_view("n_features", "n_features_in_")
    feature_names_in_ = _fitted_view("feature_names", "feature_names_in_")
    # scikit-learn's private names, which its tests and users' code read
    _counts = _fitted_view("weight_sums", "_counts")
    _n_features_out = _fitted_view("n_clusters", "_n_features_out")

    history_ = _fitted_reading("history_", lambda state: state.history.columns(),
                               "Every mini-batch step's record, as read-only arrays.")  # fmt: skip
    stop_reason_ = _fitted_reading("stop_reason_", lambda state: state.stop_reason,
                                   "Why fit's steps stopped, or None.")  # fmt: skip
    # scikit-learn's name for the batch size resolved at the first fit
    _batch_size = _fitted_reading("_batch_size", lambda state: state.settings.batch_size,
                                  "The batch size resolved at the first fit.")  # fmt: skip

    # -- callbacks --------------------------------------------------------------------------

    def set_callbacks(self, *callbacks, center_shift=False):
        """Call these after every mini-batch step of fit and partial_fit (None: no callback).

        Parameters
        ----------
        *callbacks : functions or scikit-learn callbacks
            A function is called with each step's record (``mbk.StepRecord``: step,
            batch_inertia, mean_batch_inertia, ewa_inertia, center_shift, n_reassigned,
            elapsed, stop_reason). scikit-learn >= 1.9's callbacks (``sklearn.callback``:
            ``ProgressBar``, ``ScoringMonitor``, ...) see each fitting call as a task with
            one subtask per step. A callback returning True stops ``fit`` after that step:
            the estimator is then fitted on the steps done (``stop_reason_ == "callback"``),
            whereas Ctrl-C (KeyboardInterrupt) or an exception from a callback leaves it as
            it was before the call. No callbacks: none are called.
        center_shift : bool, default=False
            Compute each step's center shift (for the records and ``history_``) even when
            ``tol`` does not need it (one more pass over the centers per step).

        Returns
        -------
        self : MiniBatchKMeans
            The estimator. The callbacks are not parameters: ``get_params``, pickles and
            model files leave them out; ``sklearn.clone`` keeps them, by reference.
        """
        scikit_learn, functions = split_callbacks(callbacks)
        if scikit_learn:
            super().set_callbacks(*scikit_learn)
        else:
            self.__dict__.pop("_skl_callbacks", None)
        if functions or center_shift:
            self._step_callbacks = StepCallbacks(functions, bool(center_shift))
        else:
            self.__dict__.pop("_step_callbacks", None)
        return self

    def __sklearn_clone__(self):
        clone = super().__sklearn_clone__()  # (keeps scikit-learn's callbacks)
        if "_step_callbacks" in self.__dict__:
            clone._step_callbacks = self._step_callbacks
        return clone

    def _fitted_state(self):
        state = self.__dict__.get("_fitted")
        if state is None:
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                "appropriate arguments before using this estimator."
            )
        return state

    def __sklearn_is_fitted__(self):
        return "_fitted" in self.__dict__

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()  # (only called where scikit-learn is installed)
        tags.input_tags.sparse = True
        return tags

    # -- fitting ------------------------------------------------------------------------------

    @_all_or_nothing
    @managed
    def fit(self, X, y=None, sample_weight=None):
        """Compute the cluster centers from mini-batches drawn from X.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data. float32 stays float32, other numbers become float64; arrays of
            the right dtype are read in place whatever their layout (no copy). Array-likes
            without memory of their own (zarr, h5py, Dask arrays) are loaded whole first, after
            a memory check that counts the copy. A scipy sparse matrix or array is read as
            CSR in place (32- or 64-bit indices; other formats are converted, a copy) and
            never densified; ``algorithm="nested"`` takes dense data only.
        y : Ignored
            Present for API consistency.
        sample_weight : array-like of shape (n_samples,), default=None
            Row weights. ``fit`` draws batches in proportion to them (so weight 2 is the same
            as a repeated row); the initialisation uses them except for callable and array
            ``init``.

        Returns
        -------
        self : MiniBatchKMeans
            The fitted estimator.
        """
        params = check_params(self)
        incoming = read_input(X)
        settings = resolve_settings(params, incoming.n_samples, type(self).__name__)
        n_threads = resolve_n_threads(params.n_threads)
        driver = _DRIVERS[params.algorithm]
        if isinstance(incoming, CsrInput) and not driver.ACCEPTS_SPARSE:
            raise TypeError(
                f"algorithm={params.algorithm!r} does not take sparse input: its rounds "
                "read dense rows. Use algorithm='sculley' (the default) for sparse X, or "
                "densify it with X.toarray()."
            )
        # Before any work (and any copy): fail at once if the memory cannot be had.
        opened = {
            "working_bytes": driver.working_bytes(params, settings, incoming),
            "what": lambda: (
                f"{type(self).__name__}.fit with n_clusters={params.n_clusters} on "
                f"{incoming.describe()}"
            ),
        }
        if (driver.READS_CHUNKS and getattr(incoming, "copy", None) == "loaded"
                and not loads_whole(incoming, opened["working_bytes"])):  # fmt: skip
            source = open_chunked(incoming, sample_weight, batch_size=settings.batch_size,
                                  blocks=params.sampling != "exact", **opened)  # fmt: skip
        else:  # (the driver scans, up front or on the way)
            source = incoming.open(sample_weight, finite=False, n_threads=n_threads, **opened)
        callbacks = CallbackRun(self, "fit", params.max_iter * incoming.n_samples
                                // settings.batch_size, X, y, sample_weight, settings,
                                incoming.feature_names)  # fmt: skip
        steps = {}
        if driver.RUNS_STEPS:
            steps = {"listeners": callbacks.listeners, "center_shift": callbacks.center_shift}
        elif callbacks.functions:
            warn_user(
                f"algorithm={params.algorithm!r} runs rounds, not mini-batch steps: the "
                "callback functions are not called and history_ stays empty.",
                UserWarning,
            )
        callbacks.begin()
        state = driver.fit(source, params, settings, check_random_state(params.random_state),
                           n_threads, **steps)  # fmt: skip
        callbacks.end(state)
        previous = self.__dict__.get("_fitted")
        if previous is not None:  # partial_fit's stream outlives fits, as in scikit-learn
            state.random_state = previous.random_state
        self._fitted = state
        return self

    @managed
    def partial_fit(self, X, y=None, sample_weight=None):
        """Update the centers with one mini-batch.

        The first call seeds the centers on this batch; each call then runs one step on all
        its rows with their weights.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The mini-batch (dense, or scipy sparse read as CSR).
        y : Ignored
            Present for API consistency.
        sample_weight : array-like of shape (n_samples,), default=None
            Row weights: multipliers in the center update (and in the seeding, except for
            callable and array ``init``).

        Returns
        -------
        self : MiniBatchKMeans
            The updated estimator.
        """
        if self.algorithm == "nested":
            raise InvalidParameterError(
                "partial_fit runs Sculley's mini-batch step: algorithm='nested' grows its "
                "batches over the whole data set and has no streaming form. Use fit, or "
                "algorithm='sculley' for partial_fit."
            )
        state = self.__dict__.get("_fitted")
        if state is None:
            # The first call seeds the centers on this batch, scanned first.
            params = check_params(self)
            n_threads = resolve_n_threads(params.n_threads)
            incoming = read_input(X)
            source = incoming.open(sample_weight, n_threads=n_threads)
            settings = resolve_settings(params, incoming.n_samples, type(self).__name__)
            random_state = check_random_state(params.random_state)
            state = _sculley.start(source, params, settings, random_state, n_threads)
        else:
            # Later calls scan the batch on the step's own pass over it.
            n_threads = resolve_n_threads(self.n_threads)
            source = self._new_data(X, sample_weight, n_threads, finite=False)
            if state.random_state is None:  # fitted by fit: the stream starts now
                state.random_state = check_random_state(self.random_state)
        callbacks = CallbackRun(self, "partial_fit", 1, X, y, sample_weight, state.settings,
                                state.feature_names)  # fmt: skip
        callbacks.begin()
        _sculley.partial_fit(
            source,
            state,
            n_threads,
            reassignment_ratio=self.reassignment_ratio,
            verbose=self.verbose,
            compute_labels=self.compute_labels,
            listeners=callbacks.listeners,
            center_shift=callbacks.center_shift,
        )
        callbacks.end(state)
        self._fitted = state
        return self

    # -- new data -------------------------------------------------------------------------

    def _new_data(self, X, sample_weight=None, n_threads=1, *, finite=True, blockwise=False):
        """A source of new data for the fitted model: checked against the columns fit saw
        (before anything is read), read in the centers' dtype. With ``blockwise``, an
        array-like without memory of its own is read a block of rows at a time
        (BlockwiseSource) rather than loaded whole."""
        state = self.__dict__.get("_fitted") or self._fitted_state()  # (raises when unfitted)
        incoming = read_input(X, dtype=state.dtype)
        check_feature_names(state.feature_names, incoming.feature_names, type(self).__name__)
        check_n_features(incoming.n_features, state.n_features, type(self).__name__)
        if blockwise and getattr(incoming, "copy", None) == "loaded":
            return BlockwiseSource(incoming, sample_weight)
        return incoming.open(sample_weight, finite=finite, n_threads=n_threads)

    def predict(self, X, *, out=None):
        """Index of the nearest center of each row of X.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            New data (dense, or scipy sparse read as CSR). An array-like without memory of
            its own (zarr, h5py, ...) is read a block of rows at a time, never whole.
        out : array-like of shape (n_samples,), default=None
            Where to write the labels (an integer ndarray, memmap or zarr array, written
            block by block); None returns a new array.

        Returns
        -------
        labels : ndarray of shape (n_samples,), dtype int32, or out
            The nearest center (lowest index on ties).
        """
        # One pass over X: the kernel scans for NaN and infinity as it assigns.
        n_threads = resolve_n_threads(self.n_threads)
        source = self._new_data(X, n_threads=n_threads, finite=False, blockwise=True)
        centers = source.centers_of(self._fitted, n_threads, hold=False)
        if isinstance(source, BlockwiseSource):
            return source.labels_inertia(centers, n_threads, weighted=False,
                                         compute_inertia=False, out=out)[0]  # fmt: skip
        labels, _ = source.labels_inertia(centers, n_threads, weighted=False,
                                          compute_inertia=False)  # fmt: skip
        return labels if out is None else _written(out, labels, "labels")

    def transform(self, X, *, out=None):
        """Euclidean distance from each row of X to each center.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            New data (dense, or scipy sparse read as CSR). An array-like without memory of
            its own (zarr, h5py, ...) is read a block of rows at a time, never whole.
        out : array-like of shape (n_samples, n_clusters), default=None
            Where to write the distances (a float ndarray, memmap or zarr array, written
            block by block); None returns a new array.

        Returns
        -------
        distances : ndarray of shape (n_samples, n_clusters), or out
            Distances, in the centers' dtype.
        """
        n_threads = resolve_n_threads(self.n_threads)
        source = self._new_data(X, n_threads=n_threads, blockwise=True)
        centers = source.centers_of(self._fitted, n_threads, hold=False)
        if isinstance(source, BlockwiseSource):
            return source.distances(centers, n_threads, out=out)
        distances = source.distances(centers, n_threads)
        return distances if out is None else _written(out, distances, "distances")

    def score(self, X, y=None, sample_weight=None):
        """Opposite of the weighted inertia of X against the fitted centers.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            New data (dense, or scipy sparse read as CSR).
        y : Ignored
            Present for API consistency.
        sample_weight : array-like of shape (n_samples,), default=None
            Row weights; None gives every row weight 1.

        Returns
        -------
        score : float
            ``-sum_i w_i * min_j ||x_i - c_j||^2``.
        """
        # One pass over X: the kernel scans for NaN and infinity as it assigns.
        n_threads = resolve_n_threads(self.n_threads)
        source = self._new_data(X, sample_weight, n_threads, finite=False, blockwise=True)
        centers = source.centers_of(self._fitted, n_threads, hold=False)
        return -source.labels_inertia(centers, n_threads)[1]

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then return the label of each training row (``labels_``).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data (dense, or scipy sparse read as CSR).
        y : Ignored
            Present for API consistency.
        sample_weight : array-like of shape (n_samples,), default=None
            Row weights, as in ``fit``.

        Returns
        -------
        labels : ndarray of shape (n_samples,), dtype int32
        """
        self.fit(X, sample_weight=sample_weight)
        if self.compute_labels:
            return self.labels_
        return self.predict(X)

    def fit_transform(self, X, y=None, sample_weight=None):
        """Fit, then return the distances of the training rows to the centers.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data (dense, or scipy sparse read as CSR).
        y : Ignored
            Present for API consistency.
        sample_weight : array-like of shape (n_samples,), default=None
            Row weights, as in ``fit``.

        Returns
        -------
        distances : ndarray of shape (n_samples, n_clusters)
        """
        return self.fit(X, sample_weight=sample_weight).transform(X)

    def get_feature_names_out(self, input_features=None):
        """Names of the transform's output columns: ``minibatchkmeans0``, ...

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Only checked against ``feature_names_in_`` / ``n_features_in_``.

        Returns
        -------
        names : ndarray of str objects, shape (n_clusters,)
        """
        state = self._fitted_state()
        if input_features is not None:
            input_features = np.asarray(input_features, dtype=object)
            fitted = state.feature_names
            if fitted is not None and not np.array_equal(fitted, input_features):
                raise ValueError("input_features is not equal to feature_names_in_")
            if len(input_features) != state.n_features:
                raise ValueError(
                    "input_features should have length equal to number of features "
                    f"({state.n_features}), got {len(input_features)}"
                )
        prefix = type(self).__name__.lower()
        return np.asarray([f"{prefix}{i}" for i in range(self.n_clusters)], dtype=object)

    # -- persistence ------------------------------------------------------------------------

    def save(self, path):
        """Write the fitted model to a model file, which ``mbk.load`` reads back.

        One NumPy ``.npz`` archive of arrays and JSON metadata with no pickle anywhere, so
        a file from someone else is safe to load: the parameters, the fitted state (the
        centers, running weights, counters, feature names, partial_fit's random stream) and
        the format and mbk versions. A loaded model predicts and transforms identically and
        continues ``partial_fit`` bit for bit on the same kernel variant. The file is written
        under a temporary name and renamed: never half-written; an existing one is replaced.

        Parameters
        ----------
        path : str or path-like
            The file to write, used as given (``.npz`` is the usual ending).

        Raises
        ------
        NotFittedError
            If the model is not fitted.
        ValueError
            If ``init`` is a callable (a model file holds no code) or ``random_state`` a
            RandomState on another bit generator than MT19937.
        """
        from . import _model_file  # (which imports this module)

        _model_file.write(path, self)

    def __getstate__(self):
        """The parameters and the fitted state as one flat mapping (SculleyState.to_flat)."""
        get_state = getattr(super(), "__getstate__", None)
        state = dict(get_state() if get_state is not None else self.__dict__)
        for name in _CALLBACK_ATTRIBUTES:
            state.pop(name, None)
        fitted = state.pop("_fitted", None)
        if fitted is not None:
            state.update(fitted.to_flat())
        return state

    def __setstate__(self, state):
        """Restore a pickled estimator, refusing a state that could not have been saved.

        Every part of a fitted model's state is checked (SculleyState.from_flat), so a
        damaged or hand-edited pickle fails here with a clear ValueError rather than later
        inside a kernel.
        """
        state = dict(state)
        flat = {name: state.pop(name) for name in FLAT_NAMES if name in state}
        fitted = None
        if "cluster_centers_" in flat:
            try:
                fitted = SculleyState.from_flat(flat)
            except ValueError as problem:
                raise ValueError(
                    f"This pickled {type(self).__name__} has an inconsistent state: {problem}. "
                    "Refit it."
                ) from None
        restore = getattr(super(), "__setstate__", None)
        if restore is not None:
            restore(state)
        else:
            self.__dict__.update(state)
        if fitted is not None:
            self._fitted = fitted

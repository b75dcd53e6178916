"""The estimator: parameters, fit / partial_fit / predict, initialisation and early stopping.

Python decides what runs and owns every random draw (one ``RandomState`` stream, consumed in
scikit-learn's order); the compiled kernels (``_core`` and ``_*_kernels``) do the arithmetic on
row indices. That split is what makes results identical to scikit-learn for the same
``random_state`` and identical to themselves for any thread count.
"""

import functools
import math
import numbers
import warnings

import numpy as np

from . import _core, _sampling_kernels, _schedule, _sculley_loop
from ._compat import ESTIMATOR_BASES, NotFittedError
from ._kmeans_plusplus import kmeans_plusplus_seeds
from ._nested import NESTED_AUTO_N_INIT, fit_nested
from ._sampling import WeightedRowSampler
from ._validation import (
    InvalidParameterError,
    as_float_array,
    check_finite,
    check_memory,
    check_random_state,
    check_sample_weight,
    report_non_finite,
    resolve_n_threads,
    validate_data,
)

_MEAN_VARIANCE_ROWS = 65536
_ALGORITHMS = ("sculley", "nested")
# Parameters of Sculley's algorithm that nested runs do not use, with their defaults.
_SCULLEY_ONLY = {"max_no_improvement": 10, "reassignment_ratio": 0.01}


def _mean_variance(X):
    """mean_j Var(X[:, j]) (ddof=0) in float64, in row blocks: no full-size temporary.

    Each block is summed in C order (rows one after another), whatever X's layout, so the
    rounding, and the tolerance built from it, do not depend on the layout.
    """
    n_samples = X.shape[0]
    column_sums = np.zeros(X.shape[1])
    for start in range(0, n_samples, _MEAN_VARIANCE_ROWS):
        block = np.ascontiguousarray(X[start : start + _MEAN_VARIANCE_ROWS])
        column_sums += block.sum(axis=0, dtype=np.float64)
    means = column_sums / n_samples
    sq_dev = np.zeros(X.shape[1])
    for start in range(0, n_samples, _MEAN_VARIANCE_ROWS):
        block = np.ascontiguousarray(X[start : start + _MEAN_VARIANCE_ROWS]) - means
        sq_dev += np.einsum("ij,ij->j", block, block)
    return float(np.mean(sq_dev / n_samples))


def _check_int(name, value, minimum, allow_none=False, allow_bool=False):
    if value is None and allow_none:
        return
    if (isinstance(value, bool) and not allow_bool) or not isinstance(value, numbers.Integral):
        kind = "an int or None" if allow_none else "an int"
        raise InvalidParameterError(
            f"{name} must be {kind}; got {value!r} of type {type(value).__name__}."
        )
    if value < minimum:
        raise InvalidParameterError(f"{name} must be >= {minimum}; got {value}.")


def _check_real(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidParameterError(f"{name} must be a real number; got {value!r}.")
    if not minimum <= value < math.inf:  # also refuses NaN
        raise InvalidParameterError(f"{name} must be finite and >= {minimum}; got {value}.")


def _labels_inertia(
    X, centers, sample_weight, n_threads, rows=None, compute_inertia=True, check_finite=False
):
    """Nearest center of each row of X (or of X[rows]) and the weighted inertia.

    ``check_finite``: X has not been scanned for NaN and infinity yet; the kernel scans it
    on the same pass, and a ValueError names the problem.
    """
    labels = np.empty(X.shape[0] if rows is None else rows.shape[0], dtype=np.int32)
    inertia = _core.assign_labels(
        X, centers, labels, rows, sample_weight, n_threads, compute_inertia, check_finite
    )
    if inertia is None:
        report_non_finite(X, "X")
    return labels, inertia


def _all_or_nothing(fit_method):
    """Make a fitting method leave the estimator as it was if it raises, Ctrl-C included.

    fit builds its state in new arrays and never changes the previous fit's in place, so a
    shallow copy of the attributes is enough to put them back.
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


def _is_array_like(value):
    return hasattr(value, "__array__") or (hasattr(value, "__len__") and not isinstance(value, str))


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
      minimum on data with several (California housing: 5-7% above the best for one seed
      in four or five), the best of three settled seedings rarely does, and settling costs
      little next to the run.
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

    # -- parameter checks ----------------------------------------------------------------------

    def _validate_params(self):
        _check_int("n_clusters", self.n_clusters, 1)
        if isinstance(self.init, str):
            if self.init not in ("k-means++", "random"):
                raise InvalidParameterError(
                    f"init must be 'k-means++', 'random', a callable or an array; "
                    f"got {self.init!r}."
                )
        elif not callable(self.init) and not _is_array_like(self.init):
            raise InvalidParameterError(
                f"init must be 'k-means++', 'random', a callable or an array; got {self.init!r}."
            )
        _check_int("max_iter", self.max_iter, 1)
        _check_int("batch_size", self.batch_size, 1)
        _check_int("verbose", self.verbose, 0, allow_bool=True)
        if not isinstance(self.compute_labels, (bool, np.bool_)):
            raise InvalidParameterError(
                f"compute_labels must be a bool; got {self.compute_labels!r}."
            )
        _check_real("tol", self.tol, 0)
        _check_int("max_no_improvement", self.max_no_improvement, 0, allow_none=True)
        _check_int("init_size", self.init_size, 1, allow_none=True)
        if not (isinstance(self.n_init, str) and self.n_init == "auto"):
            if isinstance(self.n_init, str):
                raise InvalidParameterError(
                    f"n_init must be 'auto' or an int >= 1; got {self.n_init!r}."
                )
            _check_int("n_init", self.n_init, 1)
        _check_real("reassignment_ratio", self.reassignment_ratio, 0)
        _check_int("n_threads", self.n_threads, 1, allow_none=True)
        if not isinstance(self.algorithm, str) or self.algorithm not in _ALGORITHMS:
            raise InvalidParameterError(
                f"algorithm must be 'sculley' or 'nested'; got {self.algorithm!r}."
            )
        try:
            check_random_state(self.random_state, validate_only=True)
        except ValueError as error:
            raise InvalidParameterError(str(error)) from None

    def _settings_for(self, X):
        """Resolve the data-dependent settings, as scikit-learn does on the first data seen."""
        n_samples = X.shape[0]
        if n_samples < self.n_clusters:
            raise ValueError(f"n_samples={n_samples} should be >= n_clusters={self.n_clusters}.")
        self._batch_size = min(self.batch_size, n_samples)
        init_size = self.init_size
        if init_size is None:
            init_size = 3 * self._batch_size
            if init_size < self.n_clusters:
                init_size = 3 * self.n_clusters
        elif init_size < self.n_clusters:
            warnings.warn(
                f"init_size={init_size} should be larger than n_clusters={self.n_clusters}. "
                "Setting it to min(3*n_clusters, n_samples)",
                RuntimeWarning,
                stacklevel=3,
            )
            init_size = 3 * self.n_clusters
        self._init_size = min(init_size, n_samples)

        given_centers = not isinstance(self.init, str) and not callable(self.init)
        if isinstance(self.n_init, str) and self.algorithm == "nested":
            # "auto": 3 seedings, each settled on the first batch (see _nested.fit_nested)
            self._n_init = 1 if given_centers else NESTED_AUTO_N_INIT
        elif isinstance(self.n_init, str):  # "auto": 3 tries for the random kinds of init
            self._n_init = 1 if given_centers or self.init == "k-means++" else 3
        else:
            self._n_init = self.n_init
        if given_centers and self._n_init != 1:
            warnings.warn(
                "Explicit initial center position passed: performing only one init in "
                f"{type(self).__name__} instead of n_init={self._n_init}.",
                RuntimeWarning,
                stacklevel=3,
            )
            self._n_init = 1
        self._n_threads = resolve_n_threads(self.n_threads)

    def _working_bytes(self, X):
        """An estimate of the memory fit allocates besides X (read in place), in bytes."""
        n_samples, n_features = X.shape
        item = X.itemsize
        n_clusters = int(self.n_clusters)  # a NumPy integer would overflow below
        centers = 3 * (n_clusters + 64) * (n_features + 1) * item  # 2 buffers + the kernels'
        # init subsample, k-means++'s packed copy, its distance buffers, norms and sums
        init = int(self._init_size) * (2 * n_features * item + 24 * item + 40)
        batch = int(self._batch_size) * 24 + n_clusters * 16
        labels = n_samples * 4 if self.compute_labels else 0
        nested = 0
        if self.algorithm == "nested":
            # per row: permutation, labels, three bounds, runner, change lists and a round's
            # working set; a copy of X when its rows are not contiguous
            nested = n_samples * 88 + (0 if X.flags.c_contiguous else X.nbytes)
        return centers + init + batch + labels + nested

    def _given_centers(self, X):
        """The init array as a C-ordered copy in X's dtype, checked; None for other inits."""
        if isinstance(self.init, str) or callable(self.init):
            return None
        centers = as_float_array(self.init, input_name="init", dtype=X.dtype)
        centers = np.array(centers, dtype=X.dtype, order="C", copy=True)
        self._check_center_shape(X, centers)
        return centers

    def _check_center_shape(self, X, centers):
        if centers.shape[0] != self.n_clusters:
            raise ValueError(
                f"The shape of the initial centers {centers.shape} does not match the number "
                f"of clusters {self.n_clusters}."
            )
        if centers.shape[1] != X.shape[1]:
            raise ValueError(
                f"The shape of the initial centers {centers.shape} does not match the number "
                f"of features of the data {X.shape[1]}."
            )

    # -- initialisation --------------------------------------------------------------------------

    def _init_centroids(
        self, X, sample_weight, random_state, given_centers, scan_seeding_rows=False
    ):
        """One set of initial centers, on a random subsample of init_size rows.

        sample_weight may be None (unit weights). ``scan_seeding_rows``: X has not been
        scanned for NaN and infinity, so k-means++ scans its subsample first.
        """
        n_samples = X.shape[0]
        if self._init_size < n_samples:
            # Drawn as scikit-learn draws it (the random stream stays the same), gathered
            # only when the seeding reads it: given centers do not (on W5, 24,576 rows from
            # all over 320 MB).
            subsample = _sampling_kernels.randint(random_state, n_samples, self._init_size)
            if given_centers is None:
                # take: the same rows as X[subsample], several times faster on small rows,
                # but only on C-ordered X (it copies any other layout whole first)
                X = X.take(subsample, axis=0) if X.flags.c_contiguous else X[subsample]
                if sample_weight is not None:
                    sample_weight = sample_weight.take(subsample)
        if given_centers is not None:
            return given_centers
        # A subsample whose weights cannot seed (all zero, or for "random" fewer positive
        # weights than clusters) is seeded with equal weights; scikit-learn fails in NumPy's
        # choice there (found by the property tests).
        positive = X.shape[0] if sample_weight is None else np.count_nonzero(sample_weight > 0)
        if positive == 0 or (self.init == "random" and positive < self.n_clusters):
            sample_weight = None
        if sample_weight is None:
            sample_weight = np.ones(X.shape[0], dtype=X.dtype)
        if self.init == "k-means++":
            if scan_seeding_rows:
                check_finite(X, "X", self._n_threads)
            centers, _ = kmeans_plusplus_seeds(
                X, self.n_clusters, sample_weight, random_state, n_threads=self._n_threads
            )
            return centers
        if self.init == "random":
            seeds = random_state.choice(
                X.shape[0],
                size=self.n_clusters,
                replace=False,
                p=sample_weight / sample_weight.sum(),
            )
            return X[seeds]
        centers = self.init(X, self.n_clusters, random_state=random_state)
        centers = np.array(
            as_float_array(centers, input_name="the centers returned by init", dtype=X.dtype),
            order="C",
            copy=True,
        )
        self._check_center_shape(X, centers)
        return centers

    # -- the steps ---------------------------------------------------------------------------

    def _step(self, X, sample_weight, centers, random_state, reassign, check_finite):
        """partial_fit's step: all rows of X, centers updated in place (unless X, scanned on
        the step's pass with ``check_finite``, holds NaN or infinity: then a ValueError)."""
        labels = np.empty(X.shape[0], dtype=np.int32)
        inertia = _core.minibatch_step(
            X,
            centers,
            centers,
            self._counts,
            labels,
            None,
            sample_weight,
            self._n_threads,
            check_finite,
        )
        if inertia is None:
            report_non_finite(X, "X")
        if reassign:
            return _core.reassign_small_centers(
                X, centers, self._counts, self.reassignment_ratio, random_state
            )
        return 0

    # -- persistence ------------------------------------------------------------------------------

    def __setstate__(self, state):
        """Restore a pickled estimator, refusing a state that could not have been saved.

        A fitted model's centers, running weights and step count are checked, so a damaged
        or hand-edited pickle fails here with a clear ValueError rather than later inside a
        kernel.
        """
        restore = getattr(super(), "__setstate__", None)
        if restore is not None:
            restore(state)
        else:
            self.__dict__.update(state)
        problem = self._fitted_state_problem()
        if problem is not None:
            raise ValueError(
                f"This pickled {type(self).__name__} has an inconsistent state: {problem}. "
                "Refit it."
            )

    def _fitted_state_problem(self):
        """What is wrong with the fitted state, or None (also None when not fitted)."""
        if "cluster_centers_" not in self.__dict__:
            return None
        centers = self.cluster_centers_
        n_features = getattr(self, "n_features_in_", None)
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
        counts = getattr(self, "_counts", None)
        if (
            not isinstance(counts, np.ndarray)
            or counts.dtype != np.float64
            or counts.shape != (centers.shape[0],)
            or not np.isfinite(counts).all()
            or (counts < 0).any()
        ):
            return "the running weight per center must be n_clusters finite float64 values >= 0"
        if not isinstance(getattr(self, "n_steps_", None), int) or self.n_steps_ < 0:
            return "n_steps_ must be an int >= 0"
        return None

    # -- public API ------------------------------------------------------------------------------

    @_all_or_nothing
    def fit(self, X, y=None, sample_weight=None):
        """Compute the cluster centers from mini-batches drawn from X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data. float32 stays float32, other numbers become float64; arrays of
            the right dtype are read in place whatever their layout (no copy).
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
        self._validate_params()
        X = validate_data(self, X, reset=True, finite=False)
        n_samples = X.shape[0]
        self._settings_for(X)
        # Before any work: fail at once if the working memory cannot be had, naming the size.
        check_memory(
            self._working_bytes(X),
            f"{type(self).__name__}.fit with n_clusters={self.n_clusters} on "
            f"{n_samples} x {X.shape[1]} {X.dtype}",
        )
        # The NaN scan of X reads all of it: a tenth of a fit on a million rows. Unless
        # something before the steps reads all of X anyway or shows its values (a tolerance
        # from X's variance, a callable init, k-means++ on all rows, verbose output, the
        # nested algorithm), it is done on the way: by the final labels pass on the same
        # read, or else by the steps in a thread's idle time. The steps and the seeding on
        # the init subsample (scanned first) are safe on any values, and a non-finite X
        # still raises the same ValueError, with the estimator left as it was.
        scan_later = not (
            self.verbose
            or self.tol > 0
            or callable(self.init)
            or (
                isinstance(self.init, str)
                and self.init == "k-means++"
                and self._init_size >= n_samples
            )
            or self.algorithm == "nested"
        )
        if not scan_later:
            check_finite(X, "X", self._n_threads)
        random_state = check_random_state(self.random_state)
        sample_weight = check_sample_weight(sample_weight, n_samples, X.dtype)
        given_centers = self._given_centers(X)
        if self.algorithm == "nested":
            return self._fit_nested(X, sample_weight, random_state, given_centers)
        sampler = WeightedRowSampler(sample_weight, n_samples, X.dtype)
        self._tol = self.tol * _mean_variance(X) if self.tol > 0 else 0.0

        # Initialisation: n_init candidate sets, judged on one validation batch.
        validation_rows = _sampling_kernels.randint(random_state, n_samples, self._init_size)
        best_inertia = None
        for init_index in range(self._n_init):
            if self.verbose:
                print(f"Init {init_index + 1}/{self._n_init} with method {self.init}")
            candidate = self._init_centroids(
                X, sample_weight, random_state, given_centers, scan_seeding_rows=scan_later
            )
            if self._n_init == 1 and not self.verbose:
                centers = candidate  # nothing to choose between (the rows are still drawn)
                break
            _, inertia = _labels_inertia(
                X, candidate, sample_weight, self._n_threads, rows=validation_rows
            )
            if self.verbose:
                print(f"Inertia for init {init_index + 1}/{self._n_init}: {inertia}")
            if best_inertia is None or inertia < best_inertia:
                centers, best_inertia = candidate, inertia
        centers = np.array(centers, dtype=X.dtype, order="C", copy=True)

        self._counts = np.zeros(self.n_clusters, dtype=np.float64)
        n_steps = (self.max_iter * n_samples) // self._batch_size
        schedule = _schedule.Schedule(
            self._batch_size,
            self.n_clusters,
            self.reassignment_ratio,
            self.verbose,
            n_samples=n_samples,
            n_steps=n_steps,
            tol=self._tol,
            max_no_improvement=self.max_no_improvement,
        )
        centers, batch_inertia, finite = _sculley_loop.fit_steps(
            X,
            centers,
            self._counts,
            sampler,
            _sampling_kernels.RandomStream(random_state),
            schedule,
            self._n_threads,
            scan_later and not self.compute_labels,
        )
        if not finite:
            report_non_finite(X, "X")
        n_run = schedule.steps_run
        self._n_since_last_reassign = schedule.n_since_last_reassign
        self._ewa_inertia = schedule.ewa_inertia
        self._ewa_inertia_min = schedule.ewa_inertia_min
        self._no_improvement = schedule.no_improvement

        self.cluster_centers_ = centers
        self._n_features_out = self.n_clusters
        self.n_steps_ = n_run
        self.n_iter_ = int(np.ceil(n_run * self._batch_size / n_samples))
        if self.compute_labels:
            self.labels_, self.inertia_ = _labels_inertia(
                X, centers, sample_weight, self._n_threads, check_finite=scan_later
            )
        else:
            # scikit-learn fails here when no step got past the first; mbk uses that step.
            ewa = self._ewa_inertia
            if ewa is None:
                ewa = batch_inertia / self._batch_size
            total_weight = n_samples if sample_weight is None else sample_weight.sum()
            self.inertia_ = ewa * float(total_weight)
        return self

    def _fit_nested(self, X, sample_weight, random_state, given_centers):
        """fit with algorithm="nested" (see ``_nested``): runs to a Lloyd fixed point."""
        for name, default in _SCULLEY_ONLY.items():
            if getattr(self, name) != default:
                warnings.warn(
                    f"{name}={getattr(self, name)!r} has no effect with algorithm='nested' "
                    "(it belongs to Sculley's algorithm).",
                    UserWarning,
                    stacklevel=3,
                )
        tol = self.tol * _mean_variance(X) if self.tol > 0 else 0.0

        def seed_centers(X_sample, weight_sample):
            return self._init_centroids(X_sample, weight_sample, random_state, given_centers)

        result = fit_nested(
            X,
            sample_weight,
            random_state,
            seed_centers,
            n_clusters=self.n_clusters,
            n_init=self._n_init,
            init_size=self._init_size,
            max_iter=self.max_iter,
            tol=tol,
            n_threads=self._n_threads,
            verbose=self.verbose,
        )
        self.cluster_centers_ = result.centers
        self._n_features_out = self.n_clusters
        self.n_steps_ = result.n_rounds
        self.n_iter_ = result.n_passes
        self.inertia_ = result.inertia
        if self.compute_labels:
            self.labels_ = result.labels
        # Running weights for a later partial_fit with algorithm="sculley": each center has
        # seen the weight of its rows.
        weights = None if sample_weight is None else sample_weight.astype(np.float64)
        self._counts = np.bincount(result.labels, weights, self.n_clusters).astype(np.float64)
        self._n_since_last_reassign = 0
        return self

    def partial_fit(self, X, y=None, sample_weight=None):
        """Update the centers with one mini-batch.

        The first call seeds the centers on this batch; each call then runs one step on all
        its rows with their weights.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The mini-batch.
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
        has_centers = hasattr(self, "cluster_centers_")
        if not has_centers:
            self._validate_params()
        dtype = self.cluster_centers_.dtype if has_centers else None
        # Once seeded, the step scans the batch for NaN and infinity on its own pass over it
        # (and moves nothing if it finds any); the seeding call scans first.
        X = validate_data(self, X, reset=not has_centers, dtype=dtype, finite=not has_centers)
        sample_weight = check_sample_weight(sample_weight, X.shape[0], X.dtype)
        # One stream for the life of the estimator, as in scikit-learn (fit does not reset it).
        if not hasattr(self, "_random_state"):
            self._random_state = check_random_state(self.random_state)
        if not has_centers:
            self._settings_for(X)
            self.cluster_centers_ = self._init_centroids(
                X, sample_weight, self._random_state, self._given_centers(X)
            )
            self.cluster_centers_ = np.array(self.cluster_centers_, order="C", copy=True)
            self._counts = np.zeros(self.n_clusters, dtype=np.float64)
            self._n_since_last_reassign = 0
            self.n_steps_ = 0
            self._n_features_out = self.n_clusters

        centers = self.cluster_centers_
        schedule = _schedule.Schedule(
            self._batch_size,
            self.n_clusters,
            self.reassignment_ratio,
            self.verbose,
            n_since_last_reassign=self._n_since_last_reassign,
        )
        reassign = schedule.reassign_now(self._counts)
        n_moved = self._step(X, sample_weight, centers, self._random_state, reassign, has_centers)
        schedule.record(0.0, np.nan, n_moved)
        self._n_since_last_reassign = schedule.n_since_last_reassign
        if self.compute_labels:
            self.labels_, self.inertia_ = _labels_inertia(
                X, centers, sample_weight, self._n_threads
            )
        self.n_steps_ += 1
        return self

    def _check_fitted(self):
        if not hasattr(self, "cluster_centers_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                "appropriate arguments before using this estimator."
            )

    def _validate_new_data(self, X, finite=True):
        self._check_fitted()
        return validate_data(self, X, reset=False, dtype=self.cluster_centers_.dtype, finite=finite)

    def _threads(self):
        return resolve_n_threads(self.n_threads)

    def predict(self, X):
        """Index of the nearest center of each row of X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            New data.

        Returns
        -------
        labels : ndarray of shape (n_samples,), dtype int32
            The nearest center (lowest index on ties).
        """
        # One pass over X: the kernel scans for NaN and infinity as it assigns.
        X = self._validate_new_data(X, finite=False)
        labels, _ = _labels_inertia(
            X,
            self.cluster_centers_,
            None,
            self._threads(),
            compute_inertia=False,
            check_finite=True,
        )
        return labels

    def transform(self, X):
        """Euclidean distance from each row of X to each center.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            New data.

        Returns
        -------
        distances : ndarray of shape (n_samples, n_clusters)
            Distances, in the centers' dtype.
        """
        X = self._validate_new_data(X)
        out = np.empty((X.shape[0], self.n_clusters), dtype=self.cluster_centers_.dtype)
        _core.euclidean_distances(X, self.cluster_centers_, out, self._threads())
        return out

    def score(self, X, y=None, sample_weight=None):
        """Opposite of the weighted inertia of X against the fitted centers.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            New data.
        y : Ignored
            Present for API consistency.
        sample_weight : array-like of shape (n_samples,), default=None
            Row weights; None gives every row weight 1.

        Returns
        -------
        score : float
            ``-sum_i w_i * min_j ||x_i - c_j||^2``.
        """
        X = self._validate_new_data(X)
        sample_weight = check_sample_weight(sample_weight, X.shape[0], X.dtype)
        return -_labels_inertia(X, self.cluster_centers_, sample_weight, self._threads())[1]

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then return the label of each training row (``labels_``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
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
        X : array-like of shape (n_samples, n_features)
            Training data.
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
        self._check_fitted()
        if input_features is not None:
            input_features = np.asarray(input_features, dtype=object)
            fitted = getattr(self, "feature_names_in_", None)
            if fitted is not None and not np.array_equal(fitted, input_features):
                raise ValueError("input_features is not equal to feature_names_in_")
            if len(input_features) != self.n_features_in_:
                raise ValueError(
                    "input_features should have length equal to number of features "
                    f"({self.n_features_in_}), got {len(input_features)}"
                )
        prefix = type(self).__name__.lower()
        return np.asarray([f"{prefix}{i}" for i in range(self.n_clusters)], dtype=object)

    def __sklearn_is_fitted__(self):
        return hasattr(self, "cluster_centers_")

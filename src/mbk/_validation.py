"""Parameter checks, the settings resolved from the first data, and the process's resources.

``check_params`` turns the estimator's constructor parameters into a checked, frozen
``Params`` once per fit and first partial_fit, as scikit-learn validates them (a later
partial_fit reads them as they are, as scikit-learn's does);
``resolve_settings`` derives what scikit-learn derives from the first data it sees (the batch
size, the init subsample's size, the number of inits), which a fitted model keeps. The data
itself is checked where it becomes rows, in ``mbk._sources``.
"""

import math
import numbers
import os
import sys
import warnings
from dataclasses import dataclass

import numpy as np

from . import _core

ALGORITHMS = ("sculley", "nested")
SAMPLINGS = ("auto", "exact", "blocks")
# Seedings n_init="auto" tries with algorithm="nested": each is settled to a Lloyd fixed point
# of the first batch, and the best goes on (see mbk._nested; CHANGELOG has the measurements).
NESTED_AUTO_N_INIT = 3


class InvalidParameterError(ValueError, TypeError):
    """A constructor parameter has a wrong type or value.

    Both a ValueError and a TypeError, like scikit-learn's error of the same name, so code
    written for either estimator catches it.
    """


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def warn_user(message, category):
    """Warn, attributing the warning to the first caller outside mbk."""
    frame, level = sys._getframe(1), 2  # stacklevel 2: warn_user's caller
    while frame is not None and os.path.dirname(
        os.path.abspath(frame.f_code.co_filename)
    ).startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


# -- parameters -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Params:
    """The estimator's constructor parameters, checked (see MiniBatchKMeans for each)."""

    n_clusters: int
    init: object  # "k-means++", "random", a callable or an array-like of centers
    max_iter: int
    batch_size: int
    verbose: int
    compute_labels: bool
    random_state: object
    tol: float
    max_no_improvement: int | None
    init_size: int | None
    n_init: object  # "auto" or an int
    reassignment_ratio: float
    n_threads: int | None
    algorithm: str
    sampling: str

    @property
    def init_kind(self):
        """ "k-means++", "random", "callable" or "array"."""
        if isinstance(self.init, str):
            return self.init
        return "callable" if callable(self.init) else "array"


_PARAM_NAMES = tuple(Params.__dataclass_fields__)


def _check_int(name, value, minimum, allow_none=False, allow_bool=False):
    if type(value) is int and value >= minimum:  # the common case, without the ABC checks
        return
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
    if type(value) in (float, int) and minimum <= value < math.inf:  # the common case
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidParameterError(f"{name} must be a real number; got {value!r}.")
    if not minimum <= value < math.inf:  # also refuses NaN
        raise InvalidParameterError(f"{name} must be finite and >= {minimum}; got {value}.")


def _is_array_like(value):
    return hasattr(value, "__array__") or (hasattr(value, "__len__") and not isinstance(value, str))


def check_params(estimator):
    """The estimator's parameters, checked; InvalidParameterError names the first bad one."""
    params = Params(*[getattr(estimator, name) for name in _PARAM_NAMES])
    _check_int("n_clusters", params.n_clusters, 1)
    init = params.init
    if isinstance(init, str):
        if init not in ("k-means++", "random"):
            raise InvalidParameterError(
                f"init must be 'k-means++', 'random', a callable or an array; got {init!r}."
            )
    elif not callable(init) and not _is_array_like(init):
        raise InvalidParameterError(
            f"init must be 'k-means++', 'random', a callable or an array; got {init!r}."
        )
    _check_int("max_iter", params.max_iter, 1)
    _check_int("batch_size", params.batch_size, 1)
    _check_int("verbose", params.verbose, 0, allow_bool=True)
    if not isinstance(params.compute_labels, (bool, np.bool_)):
        raise InvalidParameterError(
            f"compute_labels must be a bool; got {params.compute_labels!r}."
        )
    _check_real("tol", params.tol, 0)
    _check_int("max_no_improvement", params.max_no_improvement, 0, allow_none=True)
    _check_int("init_size", params.init_size, 1, allow_none=True)
    if not (isinstance(params.n_init, str) and params.n_init == "auto"):
        if isinstance(params.n_init, str):
            raise InvalidParameterError(
                f"n_init must be 'auto' or an int >= 1; got {params.n_init!r}."
            )
        _check_int("n_init", params.n_init, 1)
    _check_real("reassignment_ratio", params.reassignment_ratio, 0)
    _check_int("n_threads", params.n_threads, 1, allow_none=True)
    if not isinstance(params.algorithm, str) or params.algorithm not in ALGORITHMS:
        raise InvalidParameterError(
            f"algorithm must be 'sculley' or 'nested'; got {params.algorithm!r}."
        )
    if not isinstance(params.sampling, str) or params.sampling not in SAMPLINGS:
        raise InvalidParameterError(
            f"sampling must be 'auto', 'exact' or 'blocks'; got {params.sampling!r}."
        )
    try:
        check_random_state(params.random_state, validate_only=True)
    except ValueError as error:
        raise InvalidParameterError(str(error)) from None
    return params


# -- settings resolved from the first data ---------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """What scikit-learn resolves from the first data it sees, kept by a fitted model.

    batch_size : rows per mini-batch, min(batch_size, n_samples).
    init_size : rows the initialisation runs on.
    n_init : initialisations tried.
    """

    batch_size: int
    init_size: int
    n_init: int


def resolve_settings(params, n_samples, estimator_name="MiniBatchKMeans"):
    """The settings for a first fit on n_samples rows, as scikit-learn resolves them (with
    its warnings for an init_size below n_clusters and for n_init with given centers)."""
    n_clusters = params.n_clusters
    if n_samples < n_clusters:
        raise ValueError(f"n_samples={n_samples} should be >= n_clusters={n_clusters}.")
    batch_size = min(params.batch_size, n_samples)
    init_size = params.init_size
    if init_size is None:
        init_size = 3 * batch_size
        if init_size < n_clusters:
            init_size = 3 * n_clusters
    elif init_size < n_clusters:
        warn_user(
            f"init_size={init_size} should be larger than n_clusters={n_clusters}. "
            "Setting it to min(3*n_clusters, n_samples)",
            RuntimeWarning,
        )
        init_size = 3 * n_clusters
    init_size = min(init_size, n_samples)

    given_centers = params.init_kind == "array"
    if isinstance(params.n_init, str) and params.algorithm == "nested":
        # "auto": 3 seedings, each settled on the first batch (see _nested.fit_nested)
        n_init = 1 if given_centers else NESTED_AUTO_N_INIT
    elif isinstance(params.n_init, str):  # "auto": 3 tries for the random kinds of init
        n_init = 1 if given_centers or params.init == "k-means++" else 3
    else:
        n_init = params.n_init
    if given_centers and n_init != 1:
        warn_user(
            "Explicit initial center position passed: performing only one init in "
            f"{estimator_name} instead of n_init={n_init}.",
            RuntimeWarning,
        )
        n_init = 1
    return Settings(batch_size=batch_size, init_size=init_size, n_init=n_init)


# -- random state -----------------------------------------------------------------------------


class _NoEntropy(np.random.bit_generator.ISeedSequence):
    """A seed sequence of zeros, for a bit generator that is seeded right after."""

    def generate_state(self, n_words, dtype=np.uint32):
        return np.zeros(n_words, dtype=dtype)


def check_random_state(seed, validate_only=False):
    """A RandomState from None (NumPy's global one), an int, or a RandomState.

    An int gives the state of ``np.random.RandomState(seed)``, built without drawing OS
    entropy for a state that the seeding then overwrites. ``validate_only`` checks the seed
    and builds nothing.
    """
    if seed is None or seed is np.random:
        return np.random.mtrand._rand
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        if not 0 <= seed < 2**32:
            raise ValueError(f"random_state must be between 0 and 2**32 - 1; got {seed}.")
        if validate_only:
            return None
        random_state = np.random.RandomState(np.random.MT19937(_NoEntropy()))
        random_state.seed(seed)
        return random_state
    if isinstance(seed, np.random.RandomState):
        return seed
    raise ValueError(
        f"random_state must be None, an int or a numpy.random.RandomState; got {seed!r}."
    )


# -- memory and threads -----------------------------------------------------------------------


def available_memory():
    """Bytes of memory the process can still get: MemAvailable on Linux, else physical RAM,
    else None (unknown)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def format_bytes(n_bytes):
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n_bytes < 1024 or unit == "TiB":
            return f"{n_bytes:.1f} {unit}" if unit != "bytes" else f"{n_bytes} bytes"
        n_bytes /= 1024
    return None  # not reached


# Working sets below this are not checked against the available memory: reading it costs
# more than small fits take, and an allocation that small failing raises MemoryError anyway.
_UNCHECKED_BYTES = 64 << 20


def check_memory(n_bytes, what):
    """Raise MemoryError, before any work, if n_bytes cannot fit in the available memory.

    ``what`` (a string, or a function that makes it) names what needs the memory."""
    if n_bytes < _UNCHECKED_BYTES:
        return
    available = available_memory()
    if available is not None and n_bytes > available:
        raise MemoryError(
            f"{what() if callable(what) else what} needs about {format_bytes(n_bytes)} of "
            f"memory; {format_bytes(available)} is available."
        )


def usable_cpu_count():
    """CPUs this process may run on (affinity and cgroup-aware where the OS says so)."""
    if hasattr(os, "process_cpu_count"):
        count = os.process_cpu_count()
    elif hasattr(os, "sched_getaffinity"):
        count = len(os.sched_getaffinity(0))
    else:
        count = os.cpu_count()
    return max(count or 1, 1)


def resolve_n_threads(n_threads):
    """The OpenMP thread count for the next kernel call.

    None means every usable core, within what OMP_NUM_THREADS and threadpoolctl's
    ``threadpool_limits(..., user_api="openmp")`` allow at the time of the call.
    """
    if n_threads is None:
        return max(1, min(_core.omp_max_threads(), usable_cpu_count()))
    return int(n_threads)

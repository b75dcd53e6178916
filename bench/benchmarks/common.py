"""What the benchmarks share: fixed-seed data, the data sets, and the mbk / scikit-learn switch.

Every benchmark takes ``implementation`` ("mbk" or "sklearn") as its first parameter, so each
figure has its scikit-learn comparison beside it. Threads: mbk gets ``n_threads=``,
scikit-learn an OpenMP limit from threadpoolctl (its kernels follow it); both are set in
``setup`` so the timed code is only the call being measured.

Default sizes keep the whole suite to a few minutes on 2 cores. ``MBK_BENCH_LARGE=1`` adds
the issue's workloads W1, W2, W3 and W5 (up to 5,000,000 rows; much longer).

``bench/compare.py`` imports ``blobs``, ``housing`` and ``sparse_rows`` from here, so both see
the same data.
"""

import os
import shutil
import tempfile
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse
import sklearn.cluster  # before mbk, which sets GOMP_SPINCOUNT for OpenMP loaded after it
from threadpoolctl import threadpool_limits

import mbk

LARGE = os.environ.get("MBK_BENCH_LARGE", "0") not in ("", "0")

HOUSING_CSV = os.path.join(
    os.path.dirname(__file__), "..", "..", "..", "shared", "data", "california_housing.csv"
)

_BLOCK_ROWS = 65536


def blobs(n_samples, n_features, n_centers, dtype, seed=0, order="C"):
    """Gaussian blobs: unit-variance noise around n_centers centers drawn in [-10, 10]^d.

    Rows are generated in blocks of 65,536 rows, so the peak memory is the array plus about
    one block, in either order. The same seed and shape give the same rows in either order
    (and in either dtype up to rounding); each shape is its own fixed data set.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), of the given dtype and order ("C" or "F")
    """
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-10, 10, size=(n_centers, n_features)).astype(dtype)
    X = np.empty((n_samples, n_features), dtype=dtype, order=order)
    block = np.empty((min(_BLOCK_ROWS, n_samples), n_features), dtype=dtype)
    for start in range(0, n_samples, _BLOCK_ROWS):
        rows = block[: min(_BLOCK_ROWS, n_samples - start)]
        rng.standard_normal(dtype=dtype, out=rows)
        rows += centers[rng.integers(0, n_centers, len(rows))]
        X[start : start + len(rows)] = rows
    return X


def sparse_rows(n_samples, n_features, density, index_dtype=np.int32, seed=0):
    """A random CSR matrix: ``density`` of its entries stored, values uniform in [0, 1), float64.

    Built by ``scipy.sparse.random_array`` (int32 indices, canonical: sorted, no duplicates);
    with ``index_dtype=np.int64`` the same matrix with 64-bit indptr and indices, as a
    ``csr_array`` (``csr_matrix`` would silently downcast them to int32).

    Returns
    -------
    X : scipy.sparse.csr_array of shape (n_samples, n_features)
    """
    X = scipy.sparse.random_array(
        (n_samples, n_features),
        density=density,
        format="csr",
        dtype=np.float64,
        rng=np.random.default_rng(seed),
    )
    if np.dtype(index_dtype) == np.int64:
        X = scipy.sparse.csr_array(
            (X.data, X.indices.astype(np.int64), X.indptr.astype(np.int64)), shape=X.shape
        )
    if X.indices.dtype != index_dtype or X.indptr.dtype != index_dtype:
        raise AssertionError(f"{X.indices.dtype}/{X.indptr.dtype} indices, not {index_dtype}")
    return X


def housing(dtype=np.float64):
    """California housing: median_income, latitude, longitude (20,640 x 3).

    Raises NotImplementedError (asv's "skip this benchmark") when the CSV is not there.
    """
    if not os.path.exists(HOUSING_CSV):
        raise NotImplementedError(f"{HOUSING_CSV} not found")
    import pandas as pd

    frame = pd.read_csv(HOUSING_CSV)
    return frame[["median_income", "latitude", "longitude"]].to_numpy(dtype=dtype)


@dataclass(frozen=True)
class DataSet:
    """A benchmark input: its shape, the k to cluster it into and the mini-batch size."""

    n_samples: int
    n_features: int
    n_clusters: int
    batch_size: int
    source: str = "blobs"  # or "housing"

    def load(self, dtype, order="C"):
        if self.source == "housing":
            return np.asarray(housing(dtype), order=order)
        return blobs(self.n_samples, self.n_features, self.n_clusters, dtype, order=order)


DATA_SETS = {
    "blobs 100k x 32, k=64": DataSet(100_000, 32, 64, 4096),
    "blobs 20k x 64, k=256": DataSet(20_000, 64, 256, 1024),
    "housing 20,640 x 3, k=6": DataSet(20_640, 3, 6, 1024, source="housing"),
}
if LARGE:
    DATA_SETS.update(
        {
            "W1 blobs 1M x 32, k=64": DataSet(1_000_000, 32, 64, 4096),
            "W2 blobs 200k x 784, k=100": DataSet(200_000, 784, 100, 1024),
            "W3 blobs 1M x 64, k=1024": DataSet(1_000_000, 64, 1024, 4096),
            "W5 blobs 5M x 16, k=16": DataSet(5_000_000, 16, 16, 8192),
        }
    )

IMPLEMENTATIONS = ["mbk", "sklearn"]
DTYPES = ["float32", "float64"]
THREADS = [1, 2]
LAYOUTS = ["C", "F", "read-only", "memmap"]


def make_estimator(implementation, n_threads, **params):
    """A MiniBatchKMeans of that implementation (scikit-learn's threads come from setup)."""
    if implementation == "mbk":
        return mbk.MiniBatchKMeans(n_threads=n_threads, **params)
    return sklearn.cluster.MiniBatchKMeans(**params)


def kmeans_plusplus(implementation):
    """mbk.kmeans_plusplus or sklearn.cluster.kmeans_plusplus."""
    return mbk.kmeans_plusplus if implementation == "mbk" else sklearn.cluster.kmeans_plusplus


def max_iter_for(data_set, n_steps):
    """The max_iter (passes over the data) that gives about n_steps steps of ``fit``."""
    return max(1, round(n_steps * data_set.batch_size / data_set.n_samples))


class FitStepsRate:
    """Mixin: steps per second of ``fit`` with an explicit init array, early stopping off
    and ``compute_labels=False``, about ``n_steps`` steps (whole passes over the data, at
    least one), best of 3 fits. ``fit_model()`` makes the estimator, in setup."""

    n_steps = 50

    def fit_model(self):
        self.model = self.estimator(
            max_iter=max_iter_for(self.data_set, self.n_steps),
            max_no_improvement=None,
            compute_labels=False,
        )

    def track_steps_per_second(self, *params):
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            self.model.fit(self.X)
            best = min(best, time.perf_counter() - start)
        return self.model.n_steps_ / best

    track_steps_per_second.unit = "steps/s"


class Benchmark:
    """Base class: fixed-seed data, init centers, thread limits, the estimator factory.

    The default grid is implementation x dtype x data set x threads; subclasses with other
    axes set their own ``params``/``param_names`` (``implementation`` first) and ``setup``,
    which calls ``prepare``.
    """

    params = [IMPLEMENTATIONS, DTYPES, list(DATA_SETS), THREADS]
    param_names = ["implementation", "dtype", "data", "threads"]
    timeout = 1800 if LARGE else 120
    # asv starts a fresh interpreter for every parameter combination, and importing
    # scikit-learn alone takes over a second on the project's VM: one round (not asv's
    # default two) keeps the suite to a few minutes. `asv run -a rounds=2` for steadier
    # numbers. Each combination: at least 3 samples, at most 10, stopping after 2 seconds.
    rounds = 1
    repeat = (3, 10, 2.0)

    def setup(self, implementation, dtype, data, threads):
        self.prepare(implementation, dtype, DATA_SETS[data], threads)

    def prepare(self, implementation, dtype, data_set, threads, layout="C", user_api="openmp"):
        """Make X (in the given layout) and init centers (its first n_clusters rows), and
        limit the threads (``user_api=None`` limits BLAS too)."""
        self.implementation = implementation
        self.threads = threads
        self.data_set = data_set
        self._tmpdir = None
        # Made in its final layout directly: peakmem_* counts setup's peak too, so a layout
        # conversion here would hide a copy made by fit.
        X = data_set.load(dtype, order="F" if layout == "F" else "C")
        self.init = X[: data_set.n_clusters].copy()
        if layout == "read-only":
            X.flags.writeable = False
        elif layout == "memmap":
            X = self._memmap(X)
        elif layout not in ("C", "F"):
            raise ValueError(f"unknown layout {layout!r}")
        self.X = X
        self._limits = threadpool_limits(threads, user_api=user_api)

    def teardown(self, *params):
        self._limits.restore_original_limits()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)

    def estimator(self, **params):
        """An estimator for this data set: its k and batch size, explicit init, seed 0."""
        defaults = {
            "n_clusters": self.data_set.n_clusters,
            "batch_size": self.data_set.batch_size,
            "init": self.init,
            "random_state": 0,
        }
        return make_estimator(self.implementation, self.threads, **{**defaults, **params})

    def fitted(self):
        """An estimator whose centers are about the init centers: one partial_fit step."""
        return self.estimator(compute_labels=False).partial_fit(self.X[: self.data_set.batch_size])

    def _memmap(self, X):
        """X saved to a temporary .npy file and opened as a read-only np.memmap."""
        self._tmpdir = tempfile.mkdtemp(prefix="mbk-bench-")
        path = os.path.join(self._tmpdir, "X.npy")
        np.save(path, X)
        return np.load(path, mmap_mode="r")

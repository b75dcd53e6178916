"""Sparse CSR input: partial_fit calls, fit's steps/s, predict and fit's peak memory, with
32-bit and 64-bit indices (scikit-learn rejects 64-bit ones: those combinations are skipped).

The default data set is RCV1-like but smaller, so the module runs in minutes on 2 cores;
``MBK_BENCH_LARGE=1`` adds issue 15's RCV1-like and 20-newsgroups-like shapes (the figures
``bench/compare.py --sparse`` prints beside scikit-learn and the floors).
"""

from threadpoolctl import threadpool_limits

from .common import IMPLEMENTATIONS, LARGE, Benchmark, DataSet, FitStepsRate, sparse_rows

# name: (shape, k and batch size; the fraction of entries stored)
SPARSE_SETS = {"RCV1-like 20k x 20k 0.2%, k=50": (DataSet(20_000, 20_000, 50, 1024), 0.002)}
if LARGE:
    SPARSE_SETS.update(
        {
            "RCV1-like 200k x 47k 0.16%, k=100": (DataSet(200_000, 47_000, 100, 1024), 0.0016),
            "20news-like 11k x 130k 0.1%, k=20": (DataSet(11_314, 130_107, 20, 1024), 0.001),
        }
    )
INDEX_DTYPES = ["int32", "int64"]


class SparseBenchmark(Benchmark):
    """Base class: float64 CSR rows from ``sparse_rows`` (fixed seed) with int32 or int64
    indptr and indices, init centers (the first k rows, dense), 2 threads."""

    params = [IMPLEMENTATIONS, INDEX_DTYPES, list(SPARSE_SETS)]
    param_names = ["implementation", "indices", "data"]

    def setup(self, implementation, indices, data):
        self.implementation = implementation
        self.threads = 2
        self._tmpdir = None
        self._limits = threadpool_limits(self.threads, user_api="openmp")  # teardown's
        if implementation == "sklearn" and indices == "int64":
            raise NotImplementedError("scikit-learn accepts 32-bit indices only")
        self.data_set, density = SPARSE_SETS[data]
        n_samples, n_features = self.data_set.n_samples, self.data_set.n_features
        self.X = sparse_rows(n_samples, n_features, density, index_dtype=indices)
        self.init = self.X[: self.data_set.n_clusters].toarray()


class SparsePartialFit(SparseBenchmark):
    """One ``partial_fit`` call on a batch of an already-seeded estimator, with
    ``compute_labels=True`` (the default: the step's labels, then ``labels_`` and
    ``inertia_``) and ``False``."""

    params = SparseBenchmark.params + [[True, False]]
    param_names = SparseBenchmark.param_names + ["compute_labels"]

    def setup(self, implementation, indices, data, compute_labels):
        super().setup(implementation, indices, data)
        batch_size = self.data_set.batch_size
        self.batch = self.X[batch_size : 2 * batch_size]
        self.model = self.estimator(compute_labels=compute_labels)
        self.model.partial_fit(self.X[:batch_size])

    def time_partial_fit(self, *params):
        self.model.partial_fit(self.batch)


class SparseFit(FitStepsRate, SparseBenchmark):
    """Steps per second of ``fit`` with an explicit init array, early stopping off and
    ``compute_labels=False``: about 50 steps, best of 3 fits (as ``steps.Fit``)."""

    def setup(self, implementation, indices, data):
        super().setup(implementation, indices, data)
        self.fit_model()


class SparsePredict(SparseBenchmark):
    """Labels of every row against k fixed centers (from one ``partial_fit`` step)."""

    def setup(self, implementation, indices, data):
        super().setup(implementation, indices, data)
        self.model = self.fitted()

    def time_predict(self, *params):
        self.model.predict(self.X)


class SparsePeakMemory(SparseBenchmark):
    """Peak RSS of the process (setup included: the CSR data) around a default ``fit``
    (k-means++ seeding, early stopping, labels)."""

    def peakmem_fit(self, *params):
        self.estimator(init="k-means++").fit(self.X)

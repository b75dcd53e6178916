"""Mini-batch steps: partial_fit in a loop, single partial_fit calls, and fit's steps/s."""

from .common import DATA_SETS, DTYPES, IMPLEMENTATIONS, THREADS, Benchmark, FitStepsRate


class Update(Benchmark):
    """Steady-state steps (assignment + center update): 10 ``partial_fit`` calls on
    consecutive batches of an already-seeded estimator, ``compute_labels=False``."""

    n_batches = 10

    def setup(self, implementation, dtype, data, threads):
        super().setup(implementation, dtype, data, threads)
        batch_size = self.data_set.batch_size
        n_batches = min(self.n_batches, self.X.shape[0] // batch_size)
        self.batches = [self.X[i * batch_size : (i + 1) * batch_size] for i in range(n_batches)]
        self.model = self.estimator(compute_labels=False).partial_fit(self.batches[0])

    def time_update(self, *params):
        for batch in self.batches:
            self.model.partial_fit(batch)


class PartialFit(Benchmark):
    """One public ``partial_fit`` call with default settings (``compute_labels=True``) on a
    small batch (per-call overhead dominates) and on a large one; k=64, 32 features."""

    params = [IMPLEMENTATIONS, DTYPES, [256, 4096], THREADS]
    param_names = ["implementation", "dtype", "batch_size", "threads"]

    def setup(self, implementation, dtype, batch_size, threads):
        self.prepare(implementation, dtype, DATA_SETS["blobs 100k x 32, k=64"], threads)
        self.batch = self.X[:batch_size]
        self.model = self.estimator(batch_size=batch_size).partial_fit(self.batch)

    def time_partial_fit(self, *params):
        self.model.partial_fit(self.batch)


class Fit(FitStepsRate, Benchmark):
    """Steps per second of ``fit`` with an explicit init array, early stopping off and
    ``compute_labels=False``: about 50 steps (whole passes over the data, at least one),
    best of 3 fits. A step includes drawing its batch; fit's once-per-fit work (input
    checks, the sampling table) is spread over the steps."""

    def setup(self, implementation, dtype, data, threads):
        super().setup(implementation, dtype, data, threads)
        self.fit_model()

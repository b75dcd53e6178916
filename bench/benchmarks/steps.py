"""Mini-batch steps: partial_fit in a loop, single partial_fit calls, fit's steps/s, and what
the step history costs."""

import time

import numpy as np

import mbk
from mbk._schedule import Schedule

from .common import DATA_SETS, DTYPES, IMPLEMENTATIONS, THREADS, Benchmark, FitStepsRate, blobs


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


class HistoryCost:
    """What keeping ``history_`` costs: the schedule's ``record`` (which appends each step
    to the history) timed on its own, as a share of a whole step of ``fit`` where steps are
    cheapest (2 features, k=4, float32, one thread), at two batch sizes. The share is an
    upper bound: here ``record`` is called from Python, in fit from compiled code."""

    params = [[64, 1024]]
    param_names = ["batch_size"]
    n_records = 100_000

    def setup(self, batch_size):
        X = blobs(200_000, 2, 4, np.float32)
        self.model = mbk.MiniBatchKMeans(
            4, init=X[:4].copy(), n_init=1, batch_size=batch_size, max_no_improvement=None,
            compute_labels=False, n_threads=1, max_iter=max(1, 20_000 * batch_size // len(X)),
        )  # fmt: skip
        self.X = X

    def track_history_share(self, batch_size):
        started = time.perf_counter()
        self.model.fit(self.X)
        per_step = (time.perf_counter() - started) / self.model.n_steps_
        schedule = Schedule(batch_size, 4, 0.01, 0, n_samples=len(self.X), n_steps=1 << 40)
        record = schedule.record
        started = time.perf_counter()
        for _ in range(self.n_records):
            record(1.0, 0.5, 0)
        per_record = (time.perf_counter() - started) / self.n_records
        return per_record / per_step

    track_history_share.unit = "share of a step"

"""Clustering quality: the inertia a default fit reaches (mbk promises scikit-learn's)."""

from .common import DATA_SETS, DTYPES, IMPLEMENTATIONS, Benchmark


class Inertia(Benchmark):
    """``inertia_`` on the whole data set after a default fit (k-means++, early stopping,
    random_state=0), 2 threads. Same random draws, so both should report the same value: to
    the last few bits in float64 (sums in another order), to float32 rounding in float32."""

    params = [IMPLEMENTATIONS, DTYPES, list(DATA_SETS)]
    param_names = ["implementation", "dtype", "data"]

    def setup(self, implementation, dtype, data):
        self.prepare(implementation, dtype, DATA_SETS[data], threads=2)

    def track_inertia(self, *params):
        return self.estimator(init="k-means++").fit(self.X).inertia_

    track_inertia.unit = "sum of squared distances"

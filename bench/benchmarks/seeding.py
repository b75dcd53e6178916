"""k-means++ seeding: mbk.kmeans_plusplus against sklearn.cluster.kmeans_plusplus."""

from .common import DTYPES, IMPLEMENTATIONS, LARGE, THREADS, Benchmark, DataSet, kmeans_plusplus

# Seeding runs on fit's init subsample: 3 * batch_size rows (at least 3 * n_clusters).
SEEDING_SETS = {"3,072 x 64, k=256": DataSet(3072, 64, 256, batch_size=1024)}
if LARGE:
    SEEDING_SETS["W3 init subsample 12,288 x 64, k=1024"] = DataSet(12_288, 64, 1024, 4096)


class KMeansPlusPlus(Benchmark):
    """Greedy k-means++ (2 + ln k local trials); matrix products, so BLAS threads are limited
    as well as OpenMP ones. Both pick the same seeds for the same random_state."""

    params = [IMPLEMENTATIONS, DTYPES, list(SEEDING_SETS), THREADS]
    param_names = ["implementation", "dtype", "data", "threads"]

    def setup(self, implementation, dtype, data, threads):
        self.prepare(implementation, dtype, SEEDING_SETS[data], threads, user_api=None)
        self.function = kmeans_plusplus(implementation)

    def time_kmeans_plusplus(self, *params):
        self.function(self.X, self.data_set.n_clusters, random_state=0)

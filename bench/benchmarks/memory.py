"""Peak memory of fit for each input layout: mbk reads X in place, scikit-learn may copy."""

from .common import DTYPES, IMPLEMENTATIONS, LARGE, LAYOUTS, Benchmark, DataSet

MEMORY_DATA = (
    DataSet(1_000_000, 32, 64, 4096)  # W1
    if LARGE
    else DataSet(200_000, 32, 64, 4096)
)


class PeakMemory(Benchmark):
    """Peak RSS of the process (setup included) around a default ``fit`` with an init array,
    on 200,000 x 32 rows (1,000,000 with MBK_BENCH_LARGE=1), 2 threads. Setup makes X in its
    final layout, so its own peak is the data itself: what fit adds shows above it."""

    params = [IMPLEMENTATIONS, DTYPES, LAYOUTS]
    param_names = ["implementation", "dtype", "layout"]

    def setup(self, implementation, dtype, layout):
        self.prepare(implementation, dtype, MEMORY_DATA, threads=2, layout=layout)

    def peakmem_fit(self, *params):
        self.estimator().fit(self.X)

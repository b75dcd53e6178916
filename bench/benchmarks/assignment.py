"""Nearest-center assignment: predict over a whole data set, and over each input layout."""

from .common import DATA_SETS, DTYPES, IMPLEMENTATIONS, LAYOUTS, Benchmark


class Assignment(Benchmark):
    """Labels of every row of the data set against k fixed centers (``predict(X)``)."""

    def setup(self, implementation, dtype, data, threads):
        super().setup(implementation, dtype, data, threads)
        self.model = self.fitted()

    def time_assign(self, *params):
        self.model.predict(self.X)


class Predict(Benchmark):
    """``predict`` on the first data set given as C, Fortran, read-only or memmap input,
    2 threads (``Assignment`` has the thread axis).

    scikit-learn makes a C-ordered copy of Fortran input; mbk reads every layout in place.
    """

    params = [IMPLEMENTATIONS, DTYPES, LAYOUTS]
    param_names = ["implementation", "dtype", "layout"]

    def setup(self, implementation, dtype, layout):
        data_set = next(iter(DATA_SETS.values()))
        self.prepare(implementation, dtype, data_set, threads=2, layout=layout)
        self.model = self.fitted()

    def time_predict(self, *params):
        self.model.predict(self.X)

"""mbk against scikit-learn, measured in the same run on the same data.

    python bench/compare.py            # every workload
    python bench/compare.py --quick    # smaller data, for a smoke run
    python bench/compare.py --only W4

For each workload it prints the time per step of ``fit`` and of ``partial_fit`` for
scikit-learn and mbk and their ratio, plus the time of a default ``fit``. Steps are timed with
an explicit init array (so seeding is not counted), ``compute_labels=False`` and early stopping
off; a step of ``fit`` includes drawing its batch. Each figure is the best of ``--repeat`` runs.
This machine is shared: read ratios, not absolute times, and run it twice.
"""

import argparse
import os
import platform
import time
from dataclasses import dataclass

import numpy as np

import mbk

try:
    from sklearn.cluster import MiniBatchKMeans as SklearnMiniBatchKMeans
except ImportError as error:  # pragma: no cover
    raise SystemExit("bench/compare.py needs scikit-learn: pip install '.[bench]'") from error

HOUSING_CSV = os.path.join(
    os.path.dirname(__file__), "..", "..", "shared", "data", "california_housing.csv"
)


@dataclass
class Workload:
    name: str
    description: str
    n_clusters: int
    batch_size: int


def blobs(n_samples, n_features, n_centers, dtype, seed=0):
    """Gaussian blobs around n_centers random centers, generated in blocks (low peak memory)."""
    rng = np.random.RandomState(seed)
    centers = rng.uniform(-10, 10, size=(n_centers, n_features))
    X = np.empty((n_samples, n_features), dtype=dtype)
    for start in range(0, n_samples, 100_000):
        stop = min(start + 100_000, n_samples)
        which = rng.randint(0, n_centers, stop - start)
        X[start:stop] = centers[which] + rng.normal(size=(stop - start, n_features))
    return X


class Blobs(Workload):
    def __init__(self, name, n_samples, n_features, n_clusters, batch_size, dtype):
        super().__init__(
            name,
            f"blobs {n_samples:,} x {n_features} {np.dtype(dtype).name}",
            n_clusters,
            batch_size,
        )
        self.shape = (n_samples, n_features)
        self.dtype = dtype

    def data(self, quick):
        n_samples = self.shape[0] // 10 if quick else self.shape[0]
        return blobs(n_samples, self.shape[1], self.n_clusters, self.dtype)


class Housing(Workload):
    def __init__(self):
        super().__init__("W4", "California housing 20,640 x 3 float64", 6, 1024)

    def data(self, quick):
        import pandas as pd

        frame = pd.read_csv(HOUSING_CSV)
        return frame[["median_income", "latitude", "longitude"]].to_numpy(dtype=np.float64)


WORKLOADS = [
    Blobs("W1", 1_000_000, 32, 64, 4096, np.float32),
    Blobs("W1-f64", 1_000_000, 32, 64, 4096, np.float64),
    Housing(),
]


def best_time(function, repeat):
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def fit_step_time(cls, X, workload, repeat):
    init = X[: workload.n_clusters].copy()
    n_steps = max(1, min(200, X.shape[0] // workload.batch_size * 3))
    # max_iter counts passes; pick the number of passes that gives about n_steps steps.
    max_iter = max(1, n_steps * workload.batch_size // X.shape[0])
    estimator = cls(
        n_clusters=workload.n_clusters,
        init=init,
        batch_size=workload.batch_size,
        max_iter=max_iter,
        max_no_improvement=None,
        compute_labels=False,
        random_state=0,
    )
    seconds = best_time(lambda: estimator.fit(X), repeat)
    return seconds / estimator.n_steps_


def partial_fit_step_time(cls, X, workload, repeat, n_calls=50):
    init = X[: workload.n_clusters].copy()
    batches = [
        X[i * workload.batch_size : (i + 1) * workload.batch_size]
        for i in range(min(n_calls, X.shape[0] // workload.batch_size))
    ]

    def run():
        estimator = cls(
            n_clusters=workload.n_clusters,
            init=init,
            batch_size=workload.batch_size,
            compute_labels=False,
            random_state=0,
        )
        for batch in batches:
            estimator.partial_fit(batch)

    return best_time(run, repeat) / len(batches)


def default_fit_time(cls, X, workload, repeat):
    estimator = cls(n_clusters=workload.n_clusters, batch_size=workload.batch_size, random_state=0)
    return best_time(lambda: estimator.fit(X), repeat), estimator.n_steps_


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the rows")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", nargs="*", help="workload names to run")
    args = parser.parse_args()

    print(
        f"# mbk {mbk.__version__} (OpenMP: {mbk.OPENMP_ENABLED}) vs scikit-learn "
        f"{__import__('sklearn').__version__}; numpy {np.__version__}"
    )
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"{time.strftime('%Y-%m-%d %H:%M')}"
    )
    header = (
        f"{'workload':8} {'data':40} {'k':>5} {'batch':>6} | {'measure':18} "
        f"{'sklearn':>10} {'mbk':>10} {'speed-up':>9}"
    )
    print(header)
    print("-" * len(header))
    for workload in WORKLOADS:
        if args.only and workload.name not in args.only:
            continue
        X = workload.data(args.quick)
        label = (
            f"{workload.name:8} {workload.description:40} {workload.n_clusters:5} "
            f"{workload.batch_size:6}"
        )
        rows = []
        for measure, timer in [
            ("fit, per step", fit_step_time),
            ("partial_fit, per call", partial_fit_step_time),
        ]:
            sk = timer(SklearnMiniBatchKMeans, X, workload, args.repeat)
            ours = timer(mbk.MiniBatchKMeans, X, workload, args.repeat)
            rows.append((measure, f"{sk * 1e3:8.3f}ms", f"{ours * 1e3:8.3f}ms", sk / ours))
        sk, sk_steps = default_fit_time(SklearnMiniBatchKMeans, X, workload, 1)
        ours, our_steps = default_fit_time(mbk.MiniBatchKMeans, X, workload, 1)
        rows.append((f"default fit ({our_steps} st)", f"{sk:9.3f}s", f"{ours:9.3f}s", sk / ours))
        for measure, sk_text, our_text, ratio in rows:
            print(f"{label} | {measure:18} {sk_text:>10} {our_text:>10} {ratio:8.1f}x")
            label = " " * len(label)


if __name__ == "__main__":
    main()

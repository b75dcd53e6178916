import numpy as np
import pytest


def make_blobs(n_samples, n_features, n_centers, dtype=np.float64, seed=0, spread=1.0):
    """Well-separated Gaussian blobs (no scikit-learn needed)."""
    rng = np.random.RandomState(seed)
    centers = rng.uniform(-10, 10, size=(n_centers, n_features))
    which = rng.randint(0, n_centers, n_samples)
    X = centers[which] + spread * rng.normal(size=(n_samples, n_features))
    return X.astype(dtype), which


@pytest.fixture
def blobs():
    return make_blobs


@pytest.fixture(autouse=True)
def every_thread_count_runs_in_parallel():
    """Let the kernels use every thread they are given, however small the test data.

    In normal use small calls run on one thread (cheaper); tests must exercise the parallel
    paths, so the threshold is lifted for every test.
    """
    from mbk import _tuning

    old = _tuning.set_min_work_per_thread(0)
    yield
    _tuning.set_min_work_per_thread(old)

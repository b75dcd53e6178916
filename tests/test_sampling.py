"""Batch sampling: the same rows as NumPy's RandomState.choice(n, b, p=w / w.sum())."""

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from mbk import _sampling_kernels
from mbk._sampling import WeightedRowSampler

DTYPES = [np.float32, np.float64]


def numpy_cdf(weights):
    """NumPy's choice(p=w / w.sum()): cumsum(p) / cumsum(p)[-1], p in the weights' dtype."""
    cdf = np.cumsum((weights / weights.sum()).astype(np.float64))
    return cdf / cdf[-1]


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("n_samples", [1, 2, 3, 7, 1000, 4099, 65537, 300_007])
@pytest.mark.parametrize("weights", ["unit", "equal", "heavy-tailed", "zeros-inside"])
def test_draw_rows_equals_searchsorted(dtype, n_samples, weights):
    rng = np.random.RandomState(n_samples)
    w = {
        "unit": None,
        "equal": np.full(n_samples, 0.3, dtype),
        "heavy-tailed": (rng.pareto(0.7, n_samples) + 1e-12).astype(dtype),
        "zeros-inside": np.where(rng.rand(n_samples) < 0.6, 0, rng.rand(n_samples)).astype(dtype),
    }[weights]
    if w is not None and not w.any():
        w[-1] = 1
    sampler = WeightedRowSampler(w, n_samples, np.dtype(dtype))
    # Equal weights need no table: the cdf is computed from a few straight segments.
    assert (sampler.cdf is None) == (w is None or bool((w == w[0]).all()))
    cdf = numpy_cdf(np.ones(n_samples, dtype) if w is None else w)
    # Random draws, every cdf value and its neighbours (for large n, a sample of them), and
    # the guide table's bucket edges and their neighbours.
    picked = cdf if n_samples < 5000 else cdf[rng.randint(0, n_samples, 5000)]
    n_buckets = 1024 if sampler.guide is None else len(sampler.guide) - 1
    edges = np.arange(n_buckets + 1) / n_buckets
    special = np.concatenate(
        [edges, picked, np.nextafter(edges, 0), np.nextafter(edges, 1), np.nextafter(picked, 0),
         np.nextafter(picked, 1), [0.0]]
    )  # fmt: skip
    uniforms = np.concatenate([rng.random_sample(5000), special])
    uniforms = uniforms[(uniforms >= 0) & (uniforms < 1)]
    rows = np.empty(len(uniforms), dtype=np.intp)
    _sampling_kernels.draw_rows(sampler, uniforms, rows)
    assert_array_equal(rows, cdf.searchsorted(uniforms, side="right"))
    if w is not None:
        assert w[rows].min() > 0  # a zero-weight row is never drawn


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_equal_weight_segments_are_numpys_running_sums(dtype):
    # Every n below 600 (many hit rounding ties, float64 more often), then some large ones.
    rng = np.random.RandomState(0)
    for n_samples in [*range(1, 600), *rng.randint(600, 2_000_000, 8), 2**20, 2**20 + 1]:
        p = float(dtype(1) / dtype(n_samples))
        starts, values, steps, last = _sampling_kernels.constant_step_segments(p, n_samples)
        expected = np.cumsum(np.full(n_samples, p))
        ours = np.concatenate(
            [
                values[s] + np.arange(starts[s + 1] - starts[s]) * steps[s]
                for s in range(len(values))
            ]
        )
        assert_array_equal(ours, expected, err_msg=f"n_samples={n_samples}")
        assert last == expected[-1]


@pytest.mark.parametrize("n_samples", [1, 2, 5, 1000, 1023, 1024, 1025, 20640, 300_007])
def test_segment_guide_starts_each_bucket_at_or_before_its_draws(n_samples):
    sampler = WeightedRowSampler(None, n_samples, np.dtype(np.float64))
    starts = sampler.segments[0]
    guide = sampler.segment_guide
    n_buckets = len(guide)
    assert n_buckets & (n_buckets - 1) == 0 and n_buckets <= min(1024, n_samples)
    for b, s in enumerate(guide):
        first_row = b * n_samples // n_buckets
        assert starts[s] <= first_row < starts[s + 1]
    sampler.segment_guide = np.full(n_buckets, len(starts), dtype=np.intp)
    with pytest.raises(ValueError, match="malformed segment guide"):
        _sampling_kernels.draw_rows(sampler, np.zeros(1), np.empty(1, dtype=np.intp))

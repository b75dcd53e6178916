"""Weighted row sampling for ``fit``: scikit-learn's draws at O(batch) per step.

scikit-learn 1.9 draws each mini-batch with ``RandomState.choice(n, b, p=w / w.sum())``, which
rebuilds an O(n) cumulative sum on every call. NumPy's choice (with replacement and p given)
is: ``cdf = cumsum(p); cdf /= cdf[-1]; cdf.searchsorted(random_sample(b), side="right")``. The
cdf only depends on the weights, so it is built once per fit, and each step then costs one
``random_sample(b)`` (the same draws from the same stream) and a short search per row, in the
compiled kernel.

Two forms of the cdf give the same draws:

- equal weights (no ``sample_weight``, the common case): the running sums of a constant p
  grow by a constant step within each binade [2**e, 2**(e+1)) of float64, so the cdf is a
  few dozen straight segments and any entry is computed exactly in O(1). No O(n) table
  exists: nothing to build, and no cache misses on it when drawing.
- other weights: the cdf as a table, with a guide table that brings each search down to
  about one bucket.
"""

import numpy as np

from . import _sampling_kernels
from ._sources import BLOCK_ROWS

# cdf entries per guide-table bucket, at least: a few, so a search touches a cache line or
# two, while the table costs at most a quarter of the cdf's memory.
_ROWS_PER_BUCKET = 4


# Buckets of the segments' guide, at most: a draw's search starts at its bucket's segment.
_SEGMENT_BUCKETS = 1024


class WeightedRowSampler(_sampling_kernels.RowTables):
    """Draws batches of row indices with probability proportional to the row weights.

    Its compiled base holds the tables for the kernels, which search them inside fit's loop.

    Parameters
    ----------
    sample_weight : ndarray of shape (n_samples,) or None
        Non-negative weights in X's dtype, not all zero; None for unit weights.
    n_samples : int
        Number of rows.
    dtype : numpy dtype
        X's dtype, in which scikit-learn computes the probabilities.

    Attributes
    ----------
    segments : tuple or None
        Equal weights: ``(starts, values, steps, last)``. Entry i of the cumulative sum, for
        ``starts[s] <= i < starts[s + 1]``, is ``values[s] + (i - starts[s]) * steps[s]``
        (exact in float64), and the cdf is that divided by ``last``. None otherwise.
    segment_guide : ndarray or None
        With ``segments``: for each of n_buckets (a power of two) equal parts of [0, 1), the
        segment holding row ``floor(b * n_samples / n_buckets)``, where a draw u of bucket
        ``floor(u * n_buckets)`` starts its search (its row is at or after that one).
    cdf, guide : ndarray or None
        Other weights: the cdf and its guide table (``guide[b]`` is the first index with
        ``cdf > b / n_buckets``; n_buckets is a power of two). None with ``segments``.
    """

    def __init__(self, sample_weight, n_samples, dtype):
        if sample_weight is not None and (sample_weight < 0).any():
            raise ValueError(
                "fit draws mini-batches in proportion to sample_weight, so weights must be "
                "non-negative; use partial_fit to apply negative weights."
            )
        self.n_samples = n_samples
        self.cdf = self.guide = self.segments = self.segment_guide = None
        # scikit-learn's p = w / w.sum() is computed in the data's dtype and widened to
        # float64 by NumPy's choice, then cumsum(p) / cumsum(p)[-1].
        if sample_weight is None:
            total = _sum_of_ones(n_samples, dtype)
            self.segments = _sampling_kernels.constant_step_segments(
                float(dtype.type(1) / total), n_samples
            )
        elif (sample_weight == sample_weight[0]).all():
            total = sample_weight.sum()
            self.segments = _sampling_kernels.constant_step_segments(
                float(sample_weight[0] / total), n_samples
            )
        if self.segments is None:
            weights = np.ones(n_samples, dtype) if sample_weight is None else sample_weight
            self._build_table(weights / weights.sum())
        else:
            self.segment_guide = _sampling_kernels.segment_guide(
                self.segments[0], n_samples, _SEGMENT_BUCKETS
            )

    def _build_table(self, p):
        # The cumulative sum runs block by block, carrying the running total in, which adds
        # in the same order as one np.cumsum.
        n_samples = len(p)
        self.cdf = np.empty(n_samples)
        carry = 0.0
        for start in range(0, n_samples, BLOCK_ROWS):
            stop = min(start + BLOCK_ROWS, n_samples)
            block = np.empty(stop - start + 1)
            block[0] = carry
            block[1:] = p[start:stop]
            np.cumsum(block, out=block)
            self.cdf[start:stop] = block[1:]
            carry = block[-1]
        self.cdf /= self.cdf[-1]
        # A power of two: the kernel then finds a draw's bucket exactly, floor(u * n_buckets).
        n_buckets = 1 << max(0, (n_samples // _ROWS_PER_BUCKET).bit_length() - 1)
        thresholds = np.arange(n_buckets + 1, dtype=np.float64) / n_buckets
        self.guide = self.cdf.searchsorted(thresholds, side="right").astype(np.intp)

    def draw(self, random_state, batch_size):
        """Row indices (intp) of one batch; consumes ``random_sample(batch_size)``.

        ``fit`` draws inside its compiled loop from the same tables.
        """
        rows = np.empty(batch_size, dtype=np.intp)
        _sampling_kernels.draw_rows(self, random_state.random_sample(batch_size), rows)
        return rows


def _sum_of_ones(n_samples, dtype):
    """np.ones(n_samples, dtype).sum() without the array: exact below 2**24 (float32)."""
    if dtype == np.float64 or n_samples <= 2**24:
        return dtype.type(n_samples)
    return np.ones(n_samples, dtype=dtype).sum()

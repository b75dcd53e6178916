"""Weighted row sampling for ``fit``: scikit-learn's draws at O(batch) per step.

scikit-learn 1.9 draws each mini-batch with ``RandomState.choice(n, b, p=w / w.sum())``, which
rebuilds an O(n) cumulative sum on every call. NumPy's choice (with replacement and p given)
is: ``cdf = cumsum(p); cdf /= cdf[-1]; cdf.searchsorted(random_sample(b), side="right")``. The
cdf only depends on the weights, so it is built once per fit, with a guide table that brings
each search down to about one bucket; each step then costs one ``random_sample(b)`` (the same
draws from the same stream) and a short search per row, in the compiled kernel.
"""

import numpy as np

from . import _core

# cdf entries per guide-table bucket, at least: a few, so a search touches a cache line or
# two, while the table costs at most a quarter of the cdf's memory.
_ROWS_PER_BUCKET = 4


# Rows per block while the cdf is built: bounds the temporaries to a few hundred KiB.
_BLOCK_ROWS = 65536


class WeightedRowSampler:
    """Draws batches of row indices with probability proportional to the row weights.

    Parameters
    ----------
    sample_weight : ndarray of shape (n_samples,) or None
        Non-negative weights in X's dtype, not all zero; None for unit weights.
    n_samples : int
        Number of rows.
    dtype : numpy dtype
        X's dtype, in which scikit-learn computes the probabilities.
    """

    def __init__(self, sample_weight, n_samples, dtype):
        if sample_weight is not None and (sample_weight < 0).any():
            raise ValueError(
                "fit draws mini-batches in proportion to sample_weight, so weights must be "
                "non-negative; use partial_fit to apply negative weights."
            )
        # scikit-learn's p = w / w.sum() is computed in the data's dtype and widened to
        # float64 by NumPy's choice, then cumsum(p) / cumsum(p)[-1]. The cumulative sum runs
        # block by block, carrying the running total in, which adds in the same order as
        # one np.cumsum; unit weights never exist as an array.
        if sample_weight is None:
            total = _sum_of_ones(n_samples, dtype)
        else:
            total = sample_weight.sum()
        self.cdf = np.empty(n_samples)
        carry = 0.0
        for start in range(0, n_samples, _BLOCK_ROWS):
            stop = min(start + _BLOCK_ROWS, n_samples)
            block = np.empty(stop - start + 1)
            block[0] = carry
            if sample_weight is None:
                block[1:] = dtype.type(1) / total
            else:
                block[1:] = sample_weight[start:stop] / total
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

        ``fit`` draws inside its compiled loop from the same cdf and guide table.
        """
        rows = np.empty(batch_size, dtype=np.intp)
        _core.draw_rows(self.cdf, self.guide, random_state.random_sample(batch_size), rows)
        return rows


def _sum_of_ones(n_samples, dtype):
    """np.ones(n_samples, dtype).sum() without the array: exact below 2**24 (float32)."""
    if dtype == np.float64 or n_samples <= 2**24:
        return dtype.type(n_samples)
    return np.ones(n_samples, dtype=dtype).sum()

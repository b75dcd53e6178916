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


class WeightedRowSampler:
    """Draws batches of row indices with probability proportional to ``sample_weight``.

    Parameters
    ----------
    sample_weight : ndarray of shape (n_samples,)
        Non-negative weights in X's dtype, not all zero.
    """

    def __init__(self, sample_weight):
        if (sample_weight < 0).any():
            raise ValueError(
                "fit draws mini-batches in proportion to sample_weight, so weights must be "
                "non-negative; use partial_fit to apply negative weights."
            )
        # p is computed in the data's dtype and widened to float64 afterwards, as NumPy's
        # choice receives and converts it in scikit-learn.
        probabilities = sample_weight / sample_weight.sum()
        self.cdf = np.cumsum(probabilities, dtype=np.float64)
        self.cdf /= self.cdf[-1]
        # A power of two: the kernel then finds a draw's bucket exactly, floor(u * n_buckets).
        n_buckets = 1 << max(0, (len(self.cdf) // _ROWS_PER_BUCKET).bit_length() - 1)
        thresholds = np.arange(n_buckets + 1, dtype=np.float64) / n_buckets
        self.guide = self.cdf.searchsorted(thresholds, side="right").astype(np.intp)

    def draw(self, random_state, batch_size):
        """Row indices (intp) of one batch; consumes ``random_sample(batch_size)``.

        ``fit`` draws inside its compiled loop from the same cdf and guide table.
        """
        rows = np.empty(batch_size, dtype=np.intp)
        _core.draw_rows(self.cdf, self.guide, random_state.random_sample(batch_size), rows)
        return rows

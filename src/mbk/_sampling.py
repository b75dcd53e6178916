"""Weighted row sampling for ``fit``: scikit-learn's draws at O(batch log n) per step.

scikit-learn 1.9 draws each mini-batch with ``RandomState.choice(n, b, p=w / w.sum())``, which
rebuilds an O(n) cumulative sum on every call. NumPy's choice (with replacement and p given)
is: ``cdf = cumsum(p); cdf /= cdf[-1]; cdf.searchsorted(random_sample(b), side="right")``. The
cdf only depends on the weights, so it is built once per fit; each step then costs one
``random_sample(b)`` (the same draws from the same stream) and a binary search per row.
"""

import numpy as np


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
        self._cdf = np.cumsum(probabilities, dtype=np.float64)
        self._cdf /= self._cdf[-1]

    def draw(self, random_state, batch_size):
        """Row indices (intp) of one batch; consumes ``random_sample(batch_size)``."""
        return self._cdf.searchsorted(random_state.random_sample(batch_size), side="right")

"""mbk: fast mini-batch k-means, a drop-in for scikit-learn's MiniBatchKMeans."""

from ._compat import NotFittedError
from ._core import OPENMP_ENABLED
from ._kmeans import MiniBatchKMeans
from ._kmeans_plusplus import kmeans_plusplus
from ._validation import InvalidParameterError

__version__ = "0.1.0"

__all__ = [
    "InvalidParameterError",
    "MiniBatchKMeans",
    "NotFittedError",
    "OPENMP_ENABLED",
    "__version__",
    "kmeans_plusplus",
]

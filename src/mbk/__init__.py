"""mbk: fast mini-batch k-means, a drop-in for scikit-learn's MiniBatchKMeans."""

import os

# Idle OpenMP threads spin before they sleep, by default for long enough (GNU OpenMP: 300,000
# spins) that on a busy machine a spinner is descheduled mid-spin and then stalls the next
# parallel region for a whole time slice, while threads that sleep at once cost every quiet
# step a wake-up. So unless the user chose a wait policy, threads spin briefly, then sleep
# (CHANGELOG has the measurements). GNU OpenMP reads this once, when it loads, so it is set
# before the kernels are imported.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "10000")

from ._compat import NotFittedError  # noqa: E402
from ._core import OPENMP_ENABLED  # noqa: E402
from ._dense import isa as kernel_variant  # noqa: E402
from ._kmeans import MiniBatchKMeans  # noqa: E402
from ._kmeans_plusplus import kmeans_plusplus  # noqa: E402
from ._model_file import load  # noqa: E402
from ._schedule import StepRecord  # noqa: E402
from ._validation import InvalidParameterError  # noqa: E402
from .plotting import plot_clusters, plot_convergence  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "InvalidParameterError",
    "MiniBatchKMeans",
    "NotFittedError",
    "OPENMP_ENABLED",
    "StepRecord",
    "__version__",
    "kernel_variant",
    "kmeans_plusplus",
    "load",
    "plot_clusters",
    "plot_convergence",
]

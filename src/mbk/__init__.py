"""mbk: fast mini-batch k-means, a drop-in for scikit-learn's MiniBatchKMeans."""

import os

# Idle OpenMP threads that spin steal the CPU from whatever else runs on a busy machine, and
# a spinner that gets descheduled stalls every parallel region until its next time slice
# (measured on 2 cores with one other busy process: steps 7x slower; with sleeping threads,
# no slower than one thread). Unless the user chose a policy, idle threads sleep. OpenMP
# reads this once, when it loads, so it is set before the kernels are imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from ._compat import NotFittedError  # noqa: E402
from ._core import OPENMP_ENABLED  # noqa: E402
from ._core import isa as kernel_variant  # noqa: E402
from ._kmeans import MiniBatchKMeans  # noqa: E402
from ._kmeans_plusplus import kmeans_plusplus  # noqa: E402
from ._validation import InvalidParameterError  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "InvalidParameterError",
    "MiniBatchKMeans",
    "NotFittedError",
    "OPENMP_ENABLED",
    "__version__",
    "kernel_variant",
    "kmeans_plusplus",
]

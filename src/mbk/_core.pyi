# Type stubs for src/mbk/_core.pyx: the compiled entry points.
import numpy as np
from numpy.typing import NDArray

OPENMP_ENABLED: bool
CHUNK_SIZE: int

_Float = np.float32 | np.float64

def omp_max_threads() -> int: ...
def assign_labels(
    X: NDArray[_Float],
    centers: NDArray[_Float],
    labels: NDArray[np.int32],
    sample_indices: NDArray[np.intp] | None = None,
    sample_weight: NDArray[_Float] | None = None,
    n_threads: int = 1,
    compute_inertia: bool = True,
    check_finite: bool = False,
) -> float | None: ...
def euclidean_distances(
    X: NDArray[_Float], centers: NDArray[_Float], out: NDArray[_Float], n_threads: int = 1
) -> None: ...
def all_finite(X: NDArray[_Float], n_threads: int = 1, rows_in_pieces: int = 0) -> bool: ...
def minibatch_step(
    X: NDArray[_Float],
    centers_old: NDArray[_Float],
    centers_new: NDArray[_Float],
    weight_sums: NDArray[np.float64],
    labels: NDArray[np.int32],
    sample_indices: NDArray[np.intp] | None = None,
    sample_weight: NDArray[_Float] | None = None,
    n_threads: int = 1,
    check_finite: bool = False,
) -> float | None: ...
def accumulate(
    X: NDArray[_Float],
    labels: NDArray[np.int32],
    sums: NDArray[np.float64],
    batch_weights: NDArray[np.float64],
    sample_indices: NDArray[np.intp] | None = None,
    sample_weight: NDArray[_Float] | None = None,
    centers: NDArray[_Float] | None = None,
    weight_sums: NDArray[np.float64] | None = None,
) -> None: ...
def apply(
    centers_old: NDArray[_Float],
    centers_new: NDArray[_Float],
    weight_sums: NDArray[np.float64],
    sums: NDArray[np.float64],
    batch_weights: NDArray[np.float64],
    seeded: bool,
) -> None: ...

# Type stubs for src/mbk/_nested_kernels.pyx: nested mini-batch k-means.
import numpy as np
from numpy.typing import NDArray

_Float = np.float32 | np.float64

def nested_round(
    X: NDArray[_Float],
    order: NDArray[np.intp],
    sample_weight: NDArray[_Float] | None,
    centers: NDArray[_Float],
    sums: NDArray[np.float64],
    weight_sums: NDArray[np.float64],
    counts: NDArray[np.intp],
    labels: NDArray[np.int32],
    upper: NDArray[np.float64],
    lower: NDArray[np.float64],
    movement: NDArray[np.float64],
    half_gap: NDArray[np.float64],
    changed: NDArray[np.intp],
    moved_from: NDArray[np.int32],
    n_batch: int,
    n_threads: int = 1,
) -> tuple[int, int]: ...
def labelled_inertia(
    X: NDArray[_Float],
    centers: NDArray[_Float],
    labels: NDArray[np.int32],
    sample_weight: NDArray[_Float] | None = None,
    n_threads: int = 1,
) -> float: ...
def cluster_spread(
    labels: NDArray[np.int32],
    upper: NDArray[np.float64],
    order: NDArray[np.intp],
    sample_weight: NDArray[_Float] | None,
    out: NDArray[np.float64],
    n_batch: int,
) -> None: ...

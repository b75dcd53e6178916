# Type stubs for src/mbk/_nested_kernels.pyx: nested mini-batch k-means.
import numpy as np
from numpy.typing import NDArray

_Float = np.float32 | np.float64

def nested_rounds(
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
    runner: NDArray[np.int32],
    rest: NDArray[np.float64],
    movement: NDArray[np.float64],
    half_gap: NDArray[np.float64],
    changed: NDArray[np.intp],
    moved_from: NDArray[np.int32],
    n_batch: int,
    max_rounds: int = 1,
    rho: float = 0.0,
    tol: float = 0.0,
    n_threads: int = 1,
) -> tuple[int, int, int, int]: ...
def to_row_order(
    order: NDArray[np.intp],
    n_seen: int,
    labels: NDArray[np.int32],
    upper: NDArray[np.float64],
    lower: NDArray[np.float64],
    runner: NDArray[np.int32],
    rest: NDArray[np.float64],
    row_labels: NDArray[np.int32],
    row_upper: NDArray[np.float64],
    row_lower: NDArray[np.float64],
    row_runner: NDArray[np.int32],
    row_rest: NDArray[np.float64],
) -> None: ...
def swap_nearest(
    distances: NDArray[_Float],
    sample_weight: NDArray[_Float] | None,
    labels: NDArray[np.int32],
    first: NDArray[np.float64],
    second: NDArray[np.float64],
    cost: NDArray[np.float64],
) -> float: ...
def swap_totals(
    to_candidates: NDArray[_Float],
    sample_weight: NDArray[_Float] | None,
    labels: NDArray[np.int32],
    first: NDArray[np.float64],
    second: NDArray[np.float64],
    totals: NDArray[np.float64],
) -> None: ...
def labelled_inertia(
    X: NDArray[_Float],
    centers: NDArray[_Float],
    labels: NDArray[np.int32],
    sample_weight: NDArray[_Float] | None = None,
    n_threads: int = 1,
) -> float: ...

# Type stubs for the compiled kernels (src/mbk/_core.pyx).
import numpy as np
from numpy.typing import NDArray

OPENMP_ENABLED: bool
CHUNK_SIZE: int

_Float = np.float32 | np.float64

def omp_max_threads() -> int: ...
def set_min_work_per_thread(work: float) -> float: ...
def assign_labels(
    X: NDArray[_Float],
    centers: NDArray[_Float],
    labels: NDArray[np.int32],
    sample_indices: NDArray[np.intp] | None = None,
    sample_weight: NDArray[_Float] | None = None,
    n_threads: int = 1,
    compute_inertia: bool = True,
) -> float: ...
def minibatch_step(
    X: NDArray[_Float],
    centers_old: NDArray[_Float],
    centers_new: NDArray[_Float],
    weight_sums: NDArray[np.float64],
    labels: NDArray[np.int32],
    sample_indices: NDArray[np.intp] | None = None,
    sample_weight: NDArray[_Float] | None = None,
    n_threads: int = 1,
) -> float: ...
def euclidean_distances(
    X: NDArray[_Float], centers: NDArray[_Float], out: NDArray[_Float], n_threads: int = 1
) -> None: ...
def draw_rows(
    cdf: NDArray[np.float64],
    guide: NDArray[np.intp],
    uniforms: NDArray[np.float64],
    rows: NDArray[np.intp],
) -> None: ...
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

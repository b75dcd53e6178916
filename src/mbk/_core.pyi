# Type stubs for the compiled kernels (src/mbk/_core.pyx).
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from ._sampling import WeightedRowSampler

OPENMP_ENABLED: bool
CHUNK_SIZE: int

_Float = np.float32 | np.float64

def available_isas() -> list[str]: ...
def isa() -> str: ...
def isa_for(n_clusters: int, dtype: str | np.dtype) -> str: ...
def use_isa(name: str) -> str: ...
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
    check_finite: bool = False,
) -> float | None: ...
def all_finite(X: NDArray[_Float], n_threads: int = 1) -> bool: ...
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
    sampler: WeightedRowSampler, uniforms: NDArray[np.float64], rows: NDArray[np.intp]
) -> None: ...
def weighted_cumsum(
    weights: NDArray[_Float], values: NDArray[_Float], out: NDArray[_Float]
) -> None: ...
def candidate_block_rows() -> int: ...
def pack_rows(X: NDArray[_Float]) -> NDArray[_Float]: ...
def kmeanspp_distances(
    X: NDArray[_Float],
    packed: NDArray[_Float] | None,
    x_sq_norms: NDArray[np.float64],
    candidates: NDArray[np.intp],
    candidate_sq_norms: NDArray[np.float64],
    closest: NDArray[_Float] | None,
    out: NDArray[_Float],
    n_threads: int = 1,
) -> None: ...
def random_sample(random_state: np.random.RandomState, n: int) -> list[float]: ...
def reassign_due(
    counts: NDArray[np.float64], n_since: int, batch_size: int
) -> tuple[bool, int]: ...

class EarlyStopping:
    ewa_inertia: float | None
    ewa_inertia_min: float | None
    no_improvement: int
    def __init__(
        self,
        batch_size: int,
        n_samples: int,
        n_steps: int,
        tol: float,
        max_no_improvement: int | None,
        verbose: int,
    ) -> None: ...

def fit_steps(
    X: NDArray[_Float],
    centers_a: NDArray[_Float],
    centers_b: NDArray[_Float],
    counts: NDArray[np.float64],
    rows: NDArray[np.intp],
    labels: NDArray[np.int32],
    sampler: WeightedRowSampler,
    random_state: np.random.RandomState,
    stopping: EarlyStopping,
    reassign: Callable[[int], None],
    n_steps: int,
    n_since_last_reassign: int,
    reassignment_ratio: float,
    track_center_change: bool,
    n_threads: int,
) -> tuple[int, int, float, int]: ...
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

# Type stubs for src/mbk/_step_kernels.pyx: the mini-batch step and fit's loop.
import numpy as np
from numpy.typing import NDArray

from ._sampling import WeightedRowSampler

_Float = np.float32 | np.float64

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
def set_probe_gain(gain: float) -> float: ...
def thread_choices(
    n_steps: int, all_threads_seconds: float, one_thread_seconds: float
) -> list[int]: ...
def set_batch_order_sums(n_sums: int) -> int: ...
def reassign_due(
    counts: NDArray[np.float64], n_since: int, batch_size: int
) -> tuple[bool, int]: ...
def reassign_small_centers(
    X: NDArray[_Float],
    centers: NDArray[_Float],
    counts: NDArray[np.float64],
    ratio: float,
    random_state: np.random.RandomState,
) -> int: ...

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
    n_steps: int,
    n_since_last_reassign: int,
    reassignment_ratio: float,
    track_center_change: bool,
    n_threads: int,
    scan_x: bool = False,
) -> tuple[int, int, float, int, bool]: ...

# Type stubs for src/mbk/_sculley_loop.pyx: fit's compiled loop and the loops' step.
import numpy as np
from numpy.typing import NDArray

from ._sampling_kernels import RandomStream, RowTables
from ._schedule import Schedule
from ._sparse import FeatureMajorCenters

_Float = np.float32 | np.float64

def thread_choices(
    n_steps: int, all_threads_seconds: float, one_thread_seconds: float
) -> list[int]: ...
def scheduled_step(
    X: NDArray[_Float],
    centers: NDArray[_Float],
    weight_sums: NDArray[np.float64],
    schedule: Schedule,
    stream: RandomStream,
    sample_indices: NDArray[np.intp] | None = None,
    sample_weight: NDArray[_Float] | None = None,
    n_threads: int = 1,
    check_finite: bool = False,
) -> bool | None: ...
def scheduled_step_csr(
    data: NDArray[_Float],
    indices: NDArray[np.int32 | np.int64],
    indptr: NDArray[np.int32 | np.int64],
    n_features: int,
    centers: FeatureMajorCenters,
    weight_sums: NDArray[np.float64],
    schedule: Schedule,
    stream: RandomStream,
    sample_indices: NDArray[np.intp] | None = None,
    sample_weight: NDArray[_Float] | None = None,
    n_threads: int = 1,
) -> bool: ...
def fit_steps(
    X: NDArray[_Float],
    centers: NDArray[_Float],
    weight_sums: NDArray[np.float64],
    sampler: RowTables,
    stream: RandomStream,
    schedule: Schedule,
    n_threads: int,
    scan_x: bool = False,
) -> tuple[NDArray[_Float], bool]: ...

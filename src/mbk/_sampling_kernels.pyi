# Type stubs for src/mbk/_sampling_kernels.pyx: random draws and batch rows.
import numpy as np
from numpy.typing import NDArray

from ._sampling import WeightedRowSampler

_Float = np.float32 | np.float64

def draw_rows(
    sampler: WeightedRowSampler, uniforms: NDArray[np.float64], rows: NDArray[np.intp]
) -> None: ...
def random_sample(random_state: np.random.RandomState, n: int) -> NDArray[np.float64]: ...
def _check_mt19937_layout() -> bool: ...

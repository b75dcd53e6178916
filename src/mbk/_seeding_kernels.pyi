# Type stubs for src/mbk/_seeding_kernels.pyx: k-means++.
import numpy as np
from numpy.typing import NDArray

_Float = np.float32 | np.float64

def draw_candidates(
    weights: NDArray[_Float],
    values: NDArray[_Float],
    random_state: np.random.RandomState,
    potential: float,
    out: NDArray[np.intp],
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
def kmeanspp_seeds(
    X: NDArray[_Float],
    packed: NDArray[_Float] | None,
    x_sq_norms: NDArray[np.float64],
    weights: NDArray[_Float],
    random_state: np.random.RandomState,
    trials: list[NDArray[_Float]],
    candidates: NDArray[np.intp],
    closest: NDArray[_Float],
    potential: float,
    centers: NDArray[_Float],
    indices: NDArray[np.intp],
    n_threads: int = 1,
) -> None: ...

# Type stubs for src/mbk/_core.pyx: the compiled entry points.
import numpy as np
from numpy.typing import NDArray

from mbk._sparse import FeatureMajorCenters

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

# CSR rows (data, indices, indptr: the arrays of a CSR matrix; indices and indptr both int32
# or both int64).
_Index = np.int32 | np.int64

def check_csr(
    data: NDArray[_Float],
    indices: NDArray[_Index],
    indptr: NDArray[_Index],
    n_features: int,
    n_threads: int = 1,
) -> str | None: ...
def csr_row_sq_norms(data: NDArray[_Float], indptr: NDArray[_Index]) -> NDArray[_Float]: ...
def assign_labels_csr(
    data: NDArray[_Float],
    indices: NDArray[_Index],
    indptr: NDArray[_Index],
    n_features: int,
    centers: FeatureMajorCenters,
    labels: NDArray[np.int32],
    sample_indices: NDArray[np.intp] | None = None,
    sample_weight: NDArray[_Float] | None = None,
    n_threads: int = 1,
    compute_inertia: bool = True,
) -> float: ...
def euclidean_distances_csr(
    data: NDArray[_Float],
    indices: NDArray[_Index],
    indptr: NDArray[_Index],
    n_features: int,
    centers: FeatureMajorCenters,
    out: NDArray[_Float],
    n_threads: int = 1,
) -> None: ...
def csr_sq_distances_to_rows(
    a_data: NDArray[np.float64],
    a_indices: NDArray[_Index],
    a_indptr: NDArray[_Index],
    t_data: NDArray[np.float64],
    t_indices: NDArray[_Index],
    t_indptr: NDArray[_Index],
    a_sq_norms: NDArray[np.float64],
    x_sq_norms: NDArray[np.float64],
    out: NDArray[_Float],
) -> None: ...

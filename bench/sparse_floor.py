"""bench/sparse_floor.c built at run time and loaded with ctypes: the floors of a sparse step.

``bench/compare.py --sparse`` times them beside mbk and scikit-learn on the same data and
threads; the C file says what each floor does and why it is a floor.
"""

import ctypes
import os
import subprocess
import tempfile

import numpy as np

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sparse_floor.c")
# -march=native: a floor must not be slower than the kernel variant mbk picks at run time.
FLAGS = ["-O3", "-march=native", "-fopenmp", "-shared", "-fPIC"]
# How far ahead the label pass requests center values: mbk's CSR_PREFETCH_BYTES
# (src/mbk/_tuning.pxd), far enough to hide a memory latency and near enough to stay in L1.
PREFETCH_BYTES = 10240


class SparseFloor:
    """The label and update floors, compiled with the C compiler named by $CC (else ``cc``).

    Parameters
    ----------
    n_threads : int
        OpenMP threads of each pass.
    """

    def __init__(self, n_threads):
        self.n_threads = n_threads
        with tempfile.TemporaryDirectory(prefix="mbk-floor-") as tmpdir:
            library = os.path.join(tmpdir, "sparse_floor.so")
            command = [os.environ.get("CC", "cc"), *FLAGS, SOURCE, "-o", library]
            built = subprocess.run(command, capture_output=True, text=True)
            if built.returncode != 0:
                raise RuntimeError(f"{' '.join(command)} failed:\n{built.stderr}")
            self._library = ctypes.CDLL(library)  # mapped now: the file may go
        pointer, int64 = ctypes.c_void_p, ctypes.c_int64
        self._library.label_floor.restype = ctypes.c_int
        self._library.label_floor.argtypes = [
            pointer, int64, pointer, pointer, ctypes.c_int, pointer, int64, int64, pointer,
            ctypes.c_int,
        ]  # fmt: skip
        self._library.update_floor.restype = None
        self._library.update_floor.argtypes = [pointer, int64, ctypes.c_double, ctypes.c_int]

    def labels(self, centers_t, X, rows, out, ahead_bytes=PREFETCH_BYTES):
        """The label pass over some rows of X.

        Parameters
        ----------
        centers_t : ndarray of shape (n_features, n_clusters), float64, C-ordered
            The centers, transposed: a feature's k values are contiguous.
        X : CSR matrix or array of shape (n_samples, n_features)
            indptr and indices both int32 or both int64.
        rows : ndarray of shape (n_rows,), int64
            The rows of X to label.
        out : ndarray of shape (n_rows,), int32
            Written: each row's "label" (the smallest of its k sums).
        ahead_bytes : int, default=PREFETCH_BYTES
            How far ahead, in bytes of center values, the runs of the entries to come are
            requested; 0: not at all.
        """
        index_dtype = X.indices.dtype
        if index_dtype not in (np.int32, np.int64) or X.indptr.dtype != index_dtype:
            raise ValueError(
                f"indptr {X.indptr.dtype} and indices {index_dtype}: not both int32/64"
            )
        if centers_t.dtype != np.float64 or not centers_t.flags.c_contiguous:
            raise ValueError("centers_t must be C-ordered float64")
        if centers_t.shape[0] != X.shape[1]:
            raise ValueError(f"centers_t has {centers_t.shape[0]} rows, X {X.shape[1]} columns")
        if rows.dtype != np.int64 or not rows.flags.c_contiguous or out.shape != rows.shape:
            raise ValueError("rows must be contiguous int64 and out of the same shape")
        if out.dtype != np.int32 or not out.flags.c_contiguous:
            raise ValueError("out must be contiguous int32")
        if len(rows) and (rows.min() < 0 or rows.max() >= X.shape[0]):
            raise ValueError("rows out of range")
        failed = self._library.label_floor(
            centers_t.ctypes.data,
            centers_t.shape[1],
            X.indptr.ctypes.data,
            X.indices.ctypes.data,
            int(index_dtype == np.int64),
            rows.ctypes.data,
            len(rows),
            max(1, ahead_bytes // centers_t[0].nbytes) if ahead_bytes > 0 else 0,
            out.ctypes.data,
            self.n_threads,
        )
        if failed:
            raise MemoryError("label_floor: no scratch for a thread")

    def update(self, centers, scale=1.0):
        """The update pass: centers *= scale, in place (one read and one write of each).

        Parameters
        ----------
        centers : ndarray, float64, C-ordered
        scale : float, default=1.0
        """
        if centers.dtype != np.float64 or not centers.flags.c_contiguous:
            raise ValueError("centers must be C-ordered float64")
        if not centers.flags.writeable:
            raise ValueError("centers must be writeable")
        self._library.update_floor(centers.ctypes.data, centers.size, scale, self.n_threads)

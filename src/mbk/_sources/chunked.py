"""Array-likes without memory of their own, read a block of rows at a time.

A ``zarr.Array``, an ``h5py.Dataset``, a ``dask.array.Array`` or any object with ``shape``,
``dtype`` and row slicing (``X[start:stop]``) that ``np.asarray`` would read whole: new data
for a fitted model (``predict``, ``transform``, ``score``) is read from it in blocks of whole
storage chunks (about ``BLOCK_BYTES`` each), each block labelled by the dense kernels before
the next is read, so memory stays bounded by a block and the outputs, which a caller may
give as an array of its own (``out=``: an ndarray, a memmap or a zarr array, written block
by block). Training on such arrays still loads them whole (``DenseInput``, counted by the
memory check); chunked training is the next step of issue 17.
"""

import numpy as np

from .._validation import check_memory
from .common import check_sample_weight
from .dense import DenseInput

# Bytes of rows per block: large enough that a block spans many storage chunks and the
# kernels' threads, small enough to stay far below memory.
BLOCK_BYTES = 32 << 20


def _storage_rows(X):
    """Rows per storage chunk of X (zarr's and h5py's ``chunks``; dask's first block), or 1."""
    chunks = getattr(X, "chunks", None)
    try:
        rows = chunks[0]
        rows = rows[0] if isinstance(rows, tuple) else rows  # dask: a tuple per axis
        return max(int(rows), 1)
    except (TypeError, IndexError, ValueError):
        return 1


class BlockwiseSource:
    """New data read in row blocks, for a fitted model's labels, inertia and distances.

    Parameters
    ----------
    incoming : DenseInput
        The described input, with no memory of its own (``incoming.copy == "loaded"``).
    sample_weight : array-like of shape (n_samples,) or None
        Row weights (read whole: one number per row).
    block_bytes : int or None
        Bytes of rows per block, rounded down to whole storage chunks when one fits (None:
        BLOCK_BYTES).
    """

    def __init__(self, incoming, sample_weight=None, block_bytes=None):
        block_bytes = BLOCK_BYTES if block_bytes is None else block_bytes
        self.X = incoming._unread
        self.input_name = incoming.input_name
        self.dtype = incoming.dtype
        self.n_samples, self.n_features = incoming.shape
        self.feature_names = incoming.feature_names
        self.sample_weight = None
        if sample_weight is not None:
            self.sample_weight = check_sample_weight(sample_weight, self.n_samples, self.dtype)
        chunk = _storage_rows(self.X)
        self.row_bytes = max(self.n_features * self.dtype.itemsize, 1)
        rows = max(block_bytes // self.row_bytes, 1)
        # Whole storage chunks when one fits in a block; otherwise part of one per block.
        self.block_rows = min(rows // chunk * chunk if rows >= chunk else rows, self.n_samples)

    def _new_output(self, shape, dtype, what):
        """A new array for the results, after a memory check that counts it and a block
        (read, then cast)."""
        n_bytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        check_memory(n_bytes + 2 * self.block_rows * self.row_bytes,
                     lambda: f"The {what} of {self.input_name} ({self.n_samples} x "
                             f"{self.n_features} {self.dtype}, read in blocks)")  # fmt: skip
        return np.empty(shape, dtype=dtype)

    def blocks(self, weighted=True):
        """(start, stop, DenseSource of rows start:stop) for consecutive blocks."""
        for start in range(0, self.n_samples, self.block_rows):
            stop = min(start + self.block_rows, self.n_samples)
            rows = np.asarray(self.X[start:stop])
            if rows.shape != (stop - start, self.n_features):
                raise ValueError(
                    f"{self.input_name}[{start}:{stop}] has shape {rows.shape}, not "
                    f"({stop - start}, {self.n_features}): row slicing must give the rows"
                )
            block = DenseInput(rows, input_name=f"{self.input_name} (rows {start} to {stop - 1})",
                               dtype=self.dtype, names=False)  # fmt: skip
            weights = None
            if weighted and self.sample_weight is not None:
                weights = self.sample_weight[start:stop]
            yield start, stop, block.open(weights, finite=False)

    def centers_of(self, state, n_threads, *, hold=True):
        return state.centers

    def labels_inertia(self, centers, n_threads, *, weighted=True, compute_inertia=True,
                       out=None):  # fmt: skip
        """Nearest center of each row, written to ``out`` (a new int32 array when None), and
        the weighted inertia (the blocks' inertias added in order)."""
        labels = (
            np.empty(self.n_samples, np.int32)
            if out is None
            else checked_output(out, (self.n_samples,), "labels")
        )
        inertia = 0.0
        for start, stop, block in self.blocks(weighted):
            block_labels, block_inertia = block.labels_inertia(
                centers, n_threads, weighted=weighted, compute_inertia=compute_inertia
            )
            labels[start:stop] = block_labels
            if compute_inertia:
                inertia += block_inertia
        return labels, inertia if compute_inertia else None

    def distances(self, centers, n_threads, *, out=None):
        """Euclidean distances of every row to every center, written to ``out`` (a new array
        of the centers' dtype when None)."""
        shape = (self.n_samples, centers.shape[0])
        distances = (self._new_output(shape, centers.dtype, "distances") if out is None
                     else checked_output(out, shape, "distances"))  # fmt: skip
        for start, stop, block in self.blocks(weighted=False):
            block.check_finite(n_threads)
            distances[start:stop] = block.distances(centers, n_threads)
        return distances


def checked_output(out, shape, what):
    """A caller's ``out`` checked as the destination of the ``what`` ("labels" or
    "distances"), of this shape."""
    if tuple(getattr(out, "shape", ())) != shape:
        raise ValueError(
            f"out must have the shape of the {what}, {shape}; it has "
            f"{tuple(getattr(out, 'shape', ()))}"
        )
    kind = np.dtype(getattr(out, "dtype", np.float64)).kind
    if (what == "labels" and kind not in "iu") or (what == "distances" and kind != "f"):
        raise TypeError(
            f"out must hold {'integers' if what == 'labels' else 'floats'} for the {what}; "
            f"its dtype is {out.dtype}"
        )
    if isinstance(out, np.ndarray) and not out.flags.writeable:
        raise ValueError("out is read-only")
    return out

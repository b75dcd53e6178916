"""Array-likes without memory of their own, read a block of rows at a time.

A ``zarr.Array``, an ``h5py.Dataset``, a ``dask.array.Array`` or any object with ``shape``,
``dtype`` and row slicing (``X[start:stop]``) that ``np.asarray`` would read whole: new data
for a fitted model (``predict``, ``transform``, ``score``) is read from it in blocks of whole
storage chunks (about ``BLOCK_BYTES`` each), each block labelled by the dense kernels before
the next is read, so memory stays bounded by a block and the outputs, which a caller may
give as an array of its own (``out=``: an ndarray, a memmap or a zarr array, written block
by block).

Sculley's ``fit`` loads such an array whole when it fits comfortably in memory
(``loads_whole``: the fastest way) and otherwise reads it chunk by chunk (``ChunkedSource``):
each step draws its batch exactly as in memory and reads the storage chunks the batch
touches, so the results are the in-memory ones, bit for bit, in memory bounded by a few
chunks and batch-sized buffers, at the price of reading, per step, every chunk a batch
touches (most of the array when it has fewer chunks than a batch has rows). Sampling whole
chunks (far less reading, unbiased but correlated batches) is the next step of issue 17.
"""

import numpy as np

from .. import _validation
from .._validation import check_memory, format_bytes
from .common import check_sample_weight
from .dense import DenseInput, DenseSource

# fit loads such an array whole when it and the working memory take at most this share of
# the available memory; otherwise it reads the array chunk by chunk (the same results).
LOAD_WHOLE_SHARE = 0.5
# sampling="blocks": the whole storage chunks a step reads (or all of them, when fewer).
BLOCKS_PER_STEP = 16
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
        self.stored = incoming._unread
        self.input_name = incoming.input_name
        self.dtype = incoming.dtype
        self.n_samples, self.n_features = incoming.shape
        self.feature_names = incoming.feature_names
        self.sample_weight = None
        if sample_weight is not None:
            self.sample_weight = check_sample_weight(sample_weight, self.n_samples, self.dtype)
        chunk = _storage_rows(self.stored)
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
            rows = np.asarray(self.stored[start:stop])
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


class ChunkedSource(BlockwiseSource):
    """Training rows read from an array without memory of its own, never loaded whole.

    Sculley's fit draws each batch as it does in memory (the same indices from the same
    random stream), reads the storage chunks the batch touches (each once per step, rows put
    back in draw order) and steps on the batch; the validation batch and the init subsample
    are read the same way, and the passes over every row (the NaN scan, the tol scale, the
    final labels) go block by block. So the result is the in-memory one: the same centers,
    labels and steps bit for bit, the inertia added block by block.

    The step loop is the step-by-step one (``compiled_loop = False``), each step one compiled
    call on the gathered batch.
    """

    compiled_loop = False

    def __init__(self, incoming, sample_weight=None, block_bytes=None, blocks=False):
        super().__init__(incoming, sample_weight, block_bytes)
        self.finite = None
        self._chunk_rows = _storage_rows(self.stored)
        self.blocks_sampling = blocks
        chunk = self.chunk_rows
        self._chunk_starts = np.arange(0, self.n_samples, chunk)
        self._chunk_sizes = np.minimum(chunk, self.n_samples - self._chunk_starts)

    @property
    def chunk_rows(self):
        """The rows a read takes at a time: a storage chunk's, or a block's without chunks."""
        return self._chunk_rows if self._chunk_rows > 1 else self.block_rows

    def draw_batches(self, sampler, random_state, batch_size, n_steps):
        """Each step's rows: the sampler's exact draws, or with block sampling rows drawn
        within BLOCKS_PER_STEP whole chunks chosen for the step (see block_rows_of)."""
        for _ in range(n_steps):
            if self.blocks_sampling:
                yield self.block_rows_of(random_state, batch_size)
            else:
                yield sampler.draw(random_state, batch_size)

    def block_rows_of(self, random_state, batch_size):
        """batch_size rows drawn within a few whole chunks: BLOCKS_PER_STEP picks of a chunk
        in proportion to its rows (or its weight), then each row one of the picks, uniformly,
        and a row of that chunk, uniformly (or in proportion to its weight). Every row has
        the chance it has in a uniform (weighted) draw; rows of one step are correlated."""
        weights = self.sample_weight
        if weights is None:
            mass = self._chunk_sizes.astype(np.float64)
        else:
            mass = np.add.reduceat(weights.astype(np.float64), self._chunk_starts)
        picks = random_state.choice(len(mass), size=min(BLOCKS_PER_STEP, len(mass)),
                                    p=mass / mass.sum())  # fmt: skip
        chunk = picks[random_state.randint(0, len(picks), size=batch_size)]
        uniform = random_state.random_sample(batch_size)
        if weights is None:
            offsets = (uniform * self._chunk_sizes[chunk]).astype(np.intp)
            return self._chunk_starts[chunk] + np.minimum(offsets, self._chunk_sizes[chunk] - 1)
        rows = np.empty(batch_size, dtype=np.intp)
        for c in np.unique(chunk):
            here = chunk == c
            start = self._chunk_starts[c]
            cumulative = np.cumsum(weights[start : start + self._chunk_sizes[c]],
                                   dtype=np.float64)  # fmt: skip
            found = np.searchsorted(cumulative, uniform[here] * cumulative[-1], side="right")
            rows[here] = start + np.minimum(found, self._chunk_sizes[c] - 1)
        return rows

    @property
    def X(self):
        """Every row in one array: read only by a seeding on every row (init_size >=
        n_samples, so the data are small)."""
        return self.gather(np.arange(self.n_samples))

    # -- finiteness and block-wise passes -----------------------------------------------------

    def check_finite(self, n_threads=1):
        """Scan every block for NaN and infinity unless the rows are known to be finite."""
        if self.finite is None:
            for _, _, block in self.blocks(weighted=False):
                block.check_finite(n_threads)
            self.finite = True

    def record_scan(self, finite):
        if not finite:  # (a pass found a non-finite value: the block-wise scan names it)
            self.finite = None
            self.check_finite()
        self.finite = True

    def mean_variance(self):
        """mean_j Var(X[:, j]) (ddof=0) in float64, in two passes over the blocks."""
        column_sums = np.zeros(self.n_features)
        for _, _, block in self.blocks(weighted=False):
            column_sums += block.X.sum(axis=0, dtype=np.float64)
        means = column_sums / self.n_samples
        sq_dev = np.zeros(self.n_features)
        for _, _, block in self.blocks(weighted=False):
            centred = block.X - means
            sq_dev += np.einsum("ij,ij->j", centred, centred)
        return float(np.mean(sq_dev / self.n_samples))

    # -- gathered rows -----------------------------------------------------------------------

    def gather(self, rows):
        """X[rows] in draw order (duplicates included) as a new C-ordered array: the storage
        chunks the rows fall in are read once each, in order, one at a time."""
        rows = np.asarray(rows, dtype=np.intp)
        wanted, back = np.unique(rows, return_inverse=True)
        out = np.empty((wanted.shape[0], self.n_features), dtype=self.dtype)
        chunk = self.chunk_rows
        which = wanted // chunk
        bounds = np.flatnonzero(np.diff(which)) + 1
        for first, last in zip(np.r_[0, bounds], np.r_[bounds, wanted.shape[0]], strict=True):
            start = int(which[first]) * chunk
            stop = min(start + chunk, self.n_samples)
            block = np.asarray(self.stored[start:stop])
            out[first:last] = block[wanted[first:last] - start]
        return out[back.reshape(-1)]

    def weights_at(self, rows):
        return None if self.sample_weight is None else self.sample_weight.take(rows)

    # -- the kernels on these rows -----------------------------------------------------------

    def labels_inertia(self, centers, n_threads, *, rows=None, weighted=True,
                       compute_inertia=True, out=None):  # fmt: skip
        """As BlockwiseSource's for every row; on the rows ``rows``, gathered first."""
        if rows is None:
            return super().labels_inertia(centers, n_threads, weighted=weighted,
                                          compute_inertia=compute_inertia, out=out)  # fmt: skip
        batch = DenseSource(self.gather(rows), self.weights_at(rows) if weighted else None)
        batch.finite = self.finite
        return batch.labels_inertia(centers, n_threads, weighted=weighted,
                                    compute_inertia=compute_inertia)  # fmt: skip

    def scheduled_step(self, state, schedule, stream, n_threads, *, rows=None, weighted=True):
        """One step on the rows ``rows`` (gathered, in draw order) with its schedule."""
        if rows is None:
            raise ValueError("a step on a chunked source takes drawn rows")
        batch = DenseSource(self.gather(rows), self.weights_at(rows) if weighted else None,
                            input_name=self.input_name)  # fmt: skip
        batch.finite = self.finite
        return batch.scheduled_step(state, schedule, stream, n_threads, weighted=weighted)


def loads_whole(incoming, working_bytes):
    """Whether fit should load an array without memory of its own whole (the fastest way,
    with the same results) rather than read it chunk by chunk: when the copy and the working
    memory take at most LOAD_WHOLE_SHARE of the available memory."""
    available = _validation.available_memory()
    return available is None or incoming.copy_bytes + working_bytes <= LOAD_WHOLE_SHARE * available


def open_chunked(incoming, sample_weight=None, *, batch_size, blocks=False, working_bytes=0,
                 what=None):  # fmt: skip
    """The ChunkedSource of a described input without memory of its own (``blocks``: with
    block sampling), after a memory check that counts the caller's working memory and two
    blocks, and a warning that says what each step will read."""
    source = ChunkedSource(incoming, sample_weight, blocks=blocks)

    def needs():
        text = what() if callable(what) else what
        if text is None:
            text = f"Reading {incoming.input_name} ({incoming.describe()})"
        return f"{text} (read in blocks, never whole)"

    check_memory(working_bytes + 2 * source.block_rows * source.row_bytes, needs)
    n_chunks = len(source._chunk_starts)
    if blocks:
        touched = min(BLOCKS_PER_STEP, n_chunks)
        how = "sampling='blocks': each step reads a few whole storage chunks and draws its "
        how += "batch within them"
        result = ("the batches are unbiased but correlated within a step (safe when the rows "
                  "are shuffled on disk); sampling='exact' gives the in-memory result")  # fmt: skip
    else:
        touched = n_chunks * (1 - (1 - 1 / n_chunks) ** min(batch_size, source.n_samples))
        how = "sampling='exact': each step reads the storage chunks its batch touches"
        result = ("the result is the in-memory one; sampling='blocks' reads far less, fewer "
                  "steps (max_iter) or larger chunks make it cheaper")  # fmt: skip
    _validation.warn_user(
        f"{incoming.input_name} ({incoming.describe()}, {format_bytes(incoming.copy_bytes)}) is "
        f"too large to load, so fit reads it chunk by chunk with {how}, about {touched:.0f} "
        f"of {n_chunks} ({format_bytes(touched * source.chunk_rows * source.row_bytes)}) a "
        f"step; {result}.",
        UserWarning,
    )
    return source

"""New data from arrays without memory of their own (issue 17, first part): predict,
transform and score read zarr arrays, HDF5 datasets and a user's array-like a block of rows
at a time, with the in-memory results, into an ``out=`` array of the caller's if asked."""

import tracemalloc

import h5py
import numpy as np
import pytest
import zarr
from numpy.testing import assert_array_equal

import mbk
from conftest import make_blobs
from mbk._sources import DenseInput, chunked


class RowSliced:
    """A user's array-like: shape, dtype and row slicing, nothing else."""

    def __init__(self, X):
        self._X = X
        self.shape = X.shape
        self.dtype = X.dtype
        self.reads = []

    def __getitem__(self, rows):
        self.reads.append((rows.start, rows.stop))
        return self._X[rows].copy()


def _zarr(path, X, chunk_rows):
    array = zarr.open_array(str(path / "X.zarr"), mode="w", shape=X.shape,
                            chunks=(chunk_rows, X.shape[1]), dtype=X.dtype)  # fmt: skip
    array[:] = X
    return array


def _hdf5(path, X, chunk_rows):
    file = h5py.File(path / "X.h5", "w")
    return file.create_dataset("X", data=X, chunks=(chunk_rows, X.shape[1]))


STORES = {"zarr": _zarr, "hdf5": _hdf5, "row-sliced": lambda path, X, chunk: RowSliced(X)}


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of about 40 KiB, so that a few thousand rows make many blocks."""
    monkeypatch.setattr(chunked, "BLOCK_BYTES", 40 << 10)


@pytest.mark.parametrize("store", list(STORES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_predict_transform_score_match_the_array_in_memory(store, dtype, tmp_path, small_blocks):
    X, _ = make_blobs(5003, 7, 4, dtype=dtype, seed=1)
    weights = np.random.default_rng(0).uniform(0.5, 2, len(X))
    model = mbk.MiniBatchKMeans(4, random_state=0, n_threads=2).fit(X)
    stored = STORES[store](tmp_path, X, 300)
    assert_array_equal(model.predict(stored), model.predict(X))
    assert_array_equal(model.transform(stored), model.transform(X))
    # The blocks' inertias are added block by block: the same sum in another order.
    assert model.score(stored) == pytest.approx(model.score(X), rel=1e-12)
    assert model.score(stored, sample_weight=weights) == pytest.approx(
        model.score(X, sample_weight=weights), rel=1e-12
    )


def test_blocks_are_whole_storage_chunks_and_cover_every_row_once(tmp_path, small_blocks):
    X, _ = make_blobs(5003, 7, 4, seed=2)
    model = mbk.MiniBatchKMeans(4, random_state=0).fit(X)
    stored = RowSliced(X)
    stored.chunks = (300, 7)
    model.predict(stored)
    starts = [start for start, _ in stored.reads]
    assert starts == list(range(0, len(X), starts[1]))
    assert starts[1] % 300 == 0 and starts[1] * 7 * 8 <= 40 << 10
    assert stored.reads[-1][1] == len(X)


@pytest.mark.parametrize("kind", ["ndarray", "memmap", "zarr"])
def test_out_receives_the_results_block_by_block(kind, tmp_path, small_blocks):
    X, _ = make_blobs(4000, 5, 3, seed=3)
    model = mbk.MiniBatchKMeans(3, random_state=0).fit(X)
    stored = _zarr(tmp_path, X, 250)
    if kind == "ndarray":
        labels, distances = np.empty(len(X), np.int64), np.empty((len(X), 3))
    elif kind == "memmap":
        labels = np.lib.format.open_memmap(tmp_path / "l.npy", "w+", np.int32, (len(X),))
        distances = np.lib.format.open_memmap(tmp_path / "d.npy", "w+", np.float64, (len(X), 3))
    else:
        labels = zarr.open_array(str(tmp_path / "l.zarr"), mode="w", shape=(len(X),),
                                 chunks=(1000,), dtype=np.int32)  # fmt: skip
        distances = zarr.open_array(str(tmp_path / "d.zarr"), mode="w", shape=(len(X), 3),
                                    chunks=(1000, 3), dtype=np.float64)  # fmt: skip
    assert model.predict(stored, out=labels) is labels
    assert model.transform(stored, out=distances) is distances
    assert_array_equal(labels[:], model.predict(X))
    assert_array_equal(distances[:], model.transform(X))
    # In-memory input writes to out too.
    again = np.empty(len(X), np.int32)
    assert model.predict(X, out=again) is again
    assert_array_equal(again, model.predict(X))


@pytest.mark.parametrize(
    ("out", "error", "message"),
    [
        (np.empty(10, np.int32), ValueError, "shape of the labels"),
        (np.empty(4000, np.float64), TypeError, "must hold integers"),
    ],
    ids=["shape", "dtype"],
)
def test_a_bad_out_is_refused(out, error, message, tmp_path):
    X, _ = make_blobs(4000, 5, 3, seed=3)
    model = mbk.MiniBatchKMeans(3, random_state=0).fit(X)
    for data in (X, _zarr(tmp_path, X, 250)):
        with pytest.raises(error, match=message):
            model.predict(data, out=out)
    read_only = np.empty((4000, 3))
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        model.transform(X, out=read_only)


def test_memory_stays_bounded_by_a_block(tmp_path, small_blocks):
    X, _ = make_blobs(60_000, 16, 4, seed=4)  # 7.3 MiB
    model = mbk.MiniBatchKMeans(4, random_state=0).fit(X[:5000])
    stored = _zarr(tmp_path, X, 500)
    labels = np.empty(len(X), np.int32)
    tracemalloc.start()
    model.predict(stored, out=labels)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < X.nbytes / 8, peak  # blocks of 40 KiB (and zarr's own chunk buffers)
    assert_array_equal(labels, model.predict(X))


def test_nan_in_a_block_names_its_rows(tmp_path, small_blocks):
    X, _ = make_blobs(3000, 4, 3, seed=5)
    model = mbk.MiniBatchKMeans(3, random_state=0).fit(X)
    X[2100, 1] = np.nan
    stored = _zarr(tmp_path, X, 200)
    for method in (model.predict, model.transform, model.score):
        with pytest.raises(ValueError, match=r"Input X \(rows \d+ to \d+\) contains NaN"):
            method(stored)


def test_a_user_array_like_whose_slices_lie_is_refused():
    X, _ = make_blobs(1000, 4, 3, seed=6)
    model = mbk.MiniBatchKMeans(3, random_state=0).fit(X)

    class Liar(RowSliced):
        def __getitem__(self, rows):
            return self._X[:2]

    with pytest.raises(ValueError, match=r"row slicing must give the rows"):
        model.predict(Liar(X))


# -- fit on arrays too large to load ------------------------------------------------------------


@pytest.fixture
def never_whole(monkeypatch, small_blocks):
    """fit reads chunked arrays chunk by chunk, whatever their size (and warns)."""
    monkeypatch.setattr(chunked, "LOAD_WHOLE_SHARE", 0.0)


CHUNK_BY_CHUNK = pytest.mark.filterwarnings("ignore:.*too large to load:UserWarning")


@pytest.mark.parametrize("store", list(STORES))
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"tol": 1e-3, "compute_labels": False},
        {"init": "random", "n_init": 2, "reassignment_ratio": 0.3},
        {"init_size": 5000},  # every row seeds: read whole for the seeding
    ],
    ids=["default", "tol-no-labels", "random-reassign", "seed-on-all"],
)
@CHUNK_BY_CHUNK
def test_fit_chunk_by_chunk_gives_the_in_memory_result(store, params, tmp_path, never_whole):
    X, _ = make_blobs(3000, 5, 4, dtype=np.float32, seed=7)
    weights = np.random.default_rng(1).uniform(0.5, 2, len(X))
    params = {"n_clusters": 4, "batch_size": 128, "random_state": 0, "n_threads": 2,
              "sampling": "exact"} | params  # fmt: skip
    stored = STORES[store](tmp_path, X, 200)
    for sample_weight in (None, weights):
        in_memory = mbk.MiniBatchKMeans(**params).fit(X, sample_weight=sample_weight)
        chunked_fit = mbk.MiniBatchKMeans(**params).fit(stored, sample_weight=sample_weight)
        assert_array_equal(chunked_fit.cluster_centers_, in_memory.cluster_centers_)
        assert chunked_fit.n_steps_ == in_memory.n_steps_
        assert_array_equal(chunked_fit._counts, in_memory._counts)
        assert chunked_fit.inertia_ == pytest.approx(in_memory.inertia_, rel=1e-12)
        if params.get("compute_labels", True):
            assert_array_equal(chunked_fit.labels_, in_memory.labels_)


@CHUNK_BY_CHUNK
def test_fit_chunk_by_chunk_reads_whole_chunks_and_never_all_rows(tmp_path, never_whole):
    X, _ = make_blobs(6000, 4, 3, seed=8)
    stored = RowSliced(X)
    stored.chunks = (500, 4)
    mbk.MiniBatchKMeans(3, batch_size=64, random_state=0, max_iter=1, sampling="exact").fit(stored)
    sizes = {stop - start for start, stop in stored.reads}
    assert max(sizes) < len(X)  # never the whole array at once
    steps_reads = [(start, stop) for start, stop in stored.reads if stop - start == 500]
    assert steps_reads and all(start % 500 == 0 for start, _ in steps_reads)


@CHUNK_BY_CHUNK
def test_fit_chunk_by_chunk_stays_within_a_few_chunks_of_memory(tmp_path, never_whole):
    # The memory a chunked fit takes does not grow with the rows (a fixed part, whatever
    # the process set up before, aside): 4 times the rows, not 4 times the memory.
    peaks = []
    for n_rows in (50_000, 200_000):
        X, _ = make_blobs(n_rows, 16, 4, dtype=np.float32, seed=9)
        folder = tmp_path / str(n_rows)
        folder.mkdir()
        stored = _zarr(folder, X, 1000)
        model = mbk.MiniBatchKMeans(4, batch_size=256, random_state=0, max_iter=1,
                                    compute_labels=False, max_no_improvement=3)  # fmt: skip
        tracemalloc.start()
        model.fit(stored)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 1.5 * peaks[0] + (1 << 20), peaks
    assert peaks[1] < X.nbytes / 4, (peaks, X.nbytes)


@CHUNK_BY_CHUNK
def test_fit_chunk_by_chunk_names_the_rows_of_a_nan(tmp_path, never_whole):
    X, _ = make_blobs(3000, 4, 3, seed=10)
    X[2500, 0] = np.nan
    stored = _zarr(tmp_path, X, 200)
    model = mbk.MiniBatchKMeans(3, random_state=0, tol=1e-3)  # (tol scans X up front)
    with pytest.raises(ValueError, match=r"Input X \(rows \d+ to \d+\) contains NaN"):
        model.fit(stored)
    assert not hasattr(model, "cluster_centers_")
    with pytest.raises(ValueError, match="contains NaN"):
        mbk.MiniBatchKMeans(3, random_state=0).fit(stored)


def test_a_small_array_like_is_loaded_whole_for_speed(tmp_path):
    X, _ = make_blobs(2000, 4, 3, seed=11)
    stored = RowSliced(X)
    model = mbk.MiniBatchKMeans(3, random_state=0).fit(stored)
    assert len(stored.reads) < 5  # loaded in a block or two, not read step by step
    assert_array_equal(
        model.cluster_centers_, mbk.MiniBatchKMeans(3, random_state=0).fit(X).cluster_centers_
    )


def test_fit_chunk_by_chunk_says_what_each_step_reads(tmp_path, never_whole):
    X, _ = make_blobs(6000, 4, 3, seed=12)
    stored = _zarr(tmp_path, X, 500)  # 12 chunks; a batch of 1024 rows touches all
    with pytest.warns(
        UserWarning,
        match=r"X \(6000 x 4 float64, 187\.5 KiB\) is too large to "
        r"load.*sampling='exact'.*about 12 of 12 \(187\.5 KiB\) a step",
    ):
        mbk.MiniBatchKMeans(3, random_state=0, max_iter=1, sampling="exact").fit(stored)
    big = _zarr(tmp_path / "..", np.concatenate([X] * 4), 500)  # 48 chunks
    with pytest.warns(UserWarning, match=r"sampling='blocks'.*about 16 of 48 \(250\.0 KiB\)"):
        mbk.MiniBatchKMeans(3, random_state=0, max_iter=1).fit(big)


# -- sampling="blocks" ------------------------------------------------------------------------


def _chunked_source(X, chunk_rows, sample_weight=None):
    stored = RowSliced(X)
    stored.chunks = (chunk_rows, X.shape[1])
    return chunked.ChunkedSource(DenseInput(stored), sample_weight, blocks=True)


@pytest.mark.parametrize("weighted", [False, True], ids=["unit", "weighted"])
def test_block_sampling_draws_every_row_with_its_uniform_chance(weighted):
    X = np.zeros((1030, 2))  # chunks of 100 rows, the last of 30
    weights = np.random.default_rng(0).uniform(0, 2, len(X)) if weighted else None
    source = _chunked_source(X, 100, weights)
    random_state = np.random.RandomState(0)
    counts = np.zeros(len(X))
    n_steps, batch = 4000, 64
    for _ in range(n_steps):
        rows = source.block_rows_of(random_state, batch)
        assert len(np.unique(rows // 100)) <= chunked.BLOCKS_PER_STEP
        np.add.at(counts, rows, 1)
    expected = np.full(len(X), 1 / len(X)) if weights is None else weights / weights.sum()
    # Per chunk, the share of the draws is the chunk's share of the rows (or weight).
    per_chunk = np.add.reduceat(counts, np.arange(0, len(X), 100)) / counts.sum()
    np.testing.assert_allclose(per_chunk, np.add.reduceat(expected, np.arange(0, len(X), 100)),
                               atol=0.006)  # fmt: skip
    if weighted:  # within a chunk too
        heavy, light = np.argsort(weights[:100])[-10:], np.argsort(weights[:100])[:10]
        assert counts[heavy].sum() > 3 * counts[light].sum()


@CHUNK_BY_CHUNK
def test_block_sampling_reads_a_few_chunks_a_step_and_fits_shuffled_data_well(
    tmp_path, never_whole
):
    X, _ = make_blobs(40_000, 4, 6, seed=13)
    X = X[np.random.default_rng(0).permutation(len(X))]  # shuffled on disk
    held_out = X[:5000]
    stored = RowSliced(X)
    stored.chunks = (1000, 4)
    params = {"n_clusters": 6, "batch_size": 256, "random_state": 0}
    blocks = mbk.MiniBatchKMeans(**params).fit(stored)
    steps = [stop - start for start, stop in stored.reads]
    in_memory = mbk.MiniBatchKMeans(**params).fit(X)
    assert blocks.n_steps_ > 10
    # Each step reads at most BLOCKS_PER_STEP chunks: far fewer than the 40 there are.
    assert len(steps) < 40 * 4 + chunked.BLOCKS_PER_STEP * blocks.n_steps_ + 50
    assert -blocks.score(held_out) <= 1.01 * -in_memory.score(held_out)


def test_sampling_is_checked_and_nested_says_it_does_not_use_it():
    X, _ = make_blobs(500, 3, 3, seed=14)
    with pytest.raises(mbk.InvalidParameterError, match="sampling must be 'auto', 'exact' or"):
        mbk.MiniBatchKMeans(3, sampling="rows").fit(X)
    with pytest.warns(UserWarning, match="sampling='exact' has no effect with algorithm"):
        mbk.MiniBatchKMeans(3, algorithm="nested", sampling="exact").fit(X)
    # In memory, the sampling is exact whatever it says.
    exact = mbk.MiniBatchKMeans(3, random_state=0).fit(X)
    blocks = mbk.MiniBatchKMeans(3, random_state=0, sampling="blocks").fit(X)
    assert_array_equal(exact.cluster_centers_, blocks.cluster_centers_)

"""Array-likes without memory of their own (zarr, HDF5, Dask) are read whole, knowingly
(issue 14): the same results as the in-memory array, and one too large for memory fails at
once with a MemoryError naming the size, before anything is read."""

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import mbk
from conftest import make_blobs
from mbk._sources import DenseInput

# More rows than fit in any memory this suite runs on (4 TB of float32), none of them stored.
HUGE = (1_000_000_000, 1000)


def _zarr(X, tmp_path):
    zarr = pytest.importorskip("zarr")
    return zarr.array(X, chunks=(250, X.shape[1]))


def _zarr_huge(tmp_path):
    zarr = pytest.importorskip("zarr")
    return zarr.zeros(HUGE, chunks=(1_000_000, HUGE[1]), dtype="f4")


def _hdf5(X, tmp_path):
    h5py = pytest.importorskip("h5py")
    return h5py.File(tmp_path / "x.h5", "w").create_dataset("X", data=X, chunks=(250, X.shape[1]))


def _hdf5_huge(tmp_path):
    h5py = pytest.importorskip("h5py")
    file = h5py.File(tmp_path / "huge.h5", "w")
    return file.create_dataset("X", shape=HUGE, dtype="f4", chunks=(100_000, HUGE[1]))


def _dask(X, tmp_path):
    da = pytest.importorskip("dask.array")
    return da.from_array(X, chunks=(250, X.shape[1]))


def _dask_huge(tmp_path):
    da = pytest.importorskip("dask.array")
    return da.zeros(HUGE, chunks=(1_000_000, HUGE[1]), dtype="f4")


KINDS = {"zarr": (_zarr, _zarr_huge), "hdf5": (_hdf5, _hdf5_huge), "dask": (_dask, _dask_huge)}


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32], ids=["f32", "f64", "i32"])
def test_an_array_like_gives_the_in_memory_result(kind, dtype, tmp_path):
    X, _ = make_blobs(2000, 4, 5, seed=11)
    X = (X * 10).astype(dtype)
    stored = KINDS[kind][0](X, tmp_path)
    assert DenseInput(stored).copy == "loaded"
    params = {"n_clusters": 5, "batch_size": 256, "random_state": 0, "n_threads": 2}
    ours = mbk.MiniBatchKMeans(**params).fit(stored)
    reference = mbk.MiniBatchKMeans(**params).fit(X)
    assert ours.cluster_centers_.dtype == reference.cluster_centers_.dtype
    assert_array_equal(ours.cluster_centers_, reference.cluster_centers_)
    assert_array_equal(ours.labels_, reference.labels_)
    assert ours.inertia_ == reference.inertia_
    assert_array_equal(ours.predict(stored), reference.predict(X))
    assert_array_equal(ours.transform(stored), reference.transform(X))
    assert ours.score(stored) == reference.score(X)
    ours.partial_fit(stored)
    reference.partial_fit(X)
    assert_array_equal(ours.cluster_centers_, reference.cluster_centers_)
    nested = mbk.MiniBatchKMeans(algorithm="nested", **params)
    assert_array_equal(nested.fit(stored).labels_, nested.fit(X).labels_)


@pytest.mark.parametrize("kind", list(KINDS))
def test_an_array_like_too_large_for_memory_fails_at_once(kind, tmp_path, monkeypatch):
    huge = KINDS[kind][1](tmp_path)
    # fit would read it chunk by chunk, which needs its labels_ (4 GB) and a few blocks:
    # with 1 GiB available, that fails at once too.
    monkeypatch.setattr("mbk._validation.available_memory", lambda: 1 << 30)
    with pytest.raises(
        MemoryError,
        match=r"on 1000000000 x 1000 float32 \(read in blocks, "
        r"never whole\) needs about 3\.\d GiB",
    ):
        mbk.MiniBatchKMeans(8).fit(huge)
    monkeypatch.undo()
    X, _ = make_blobs(500, HUGE[1], 3, dtype=np.float32, seed=12)
    model = mbk.MiniBatchKMeans(3, random_state=0).fit(X)
    with pytest.raises(MemoryError, match=r"Reading X \(1000000000 x 1000 float32\)"):
        model.partial_fit(huge)
    # predict, transform and score read it in blocks: only their outputs must fit.
    wide = mbk.MiniBatchKMeans(500, random_state=0).fit(X)
    with pytest.raises(
        MemoryError,
        match=r"The distances of X \(1000000000 x 1000 float32, "
        r"read in blocks\) needs about 1\.8 TiB",
    ):
        wide.transform(huge)
    with pytest.raises(MemoryError, match="loaded whole"):
        mbk.kmeans_plusplus(huge, 3)


def test_an_array_like_of_unknown_size_is_refused():
    da = pytest.importorskip("dask.array")
    X = da.from_array(np.ones((100, 3)), chunks=(10, 3))
    unknown = X[X[:, 0] > 0]  # boolean indexing leaves the row count unknown
    with pytest.raises(ValueError, match="unknown shape .*compute_chunk_sizes"):
        mbk.MiniBatchKMeans(2).fit(unknown)

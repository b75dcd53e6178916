"""The benchmark tools that are not Python: gather_floor.c includes the kernels' sources, so a
change to a kernel's interface must not leave it broken unnoticed; sparse_floor.c's floors
must do the work they stand for."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse

import mbk

GATHER_FLOOR = Path(__file__).resolve().parents[1] / "bench" / "gather_floor.c"


@pytest.fixture(scope="module")
def gather_floor(tmp_path_factory):
    """bench/gather_floor.c, built."""
    if shutil.which("gcc") is None:
        pytest.skip("needs GCC")
    if not GATHER_FLOOR.exists():
        pytest.skip("needs the repository's bench/")
    program = tmp_path_factory.mktemp("bench") / "gather_floor"
    subprocess.run(
        ["gcc", "-O1", "-fopenmp", str(GATHER_FLOOR), "-o", str(program), "-lm"],
        check=True,
        capture_output=True,
    )
    return program


def test_gather_floor_times_every_mode(gather_floor):
    if mbk.kernel_variant() != "avx512":
        pytest.skip("the program runs the AVX-512 kernels")
    result = subprocess.run(
        [str(gather_floor), "8192", "2"],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "2"},
    )
    lines = result.stdout.splitlines()
    assert lines[0].startswith("8192 rows of 32 float32, batch 4096, k=64")
    timed = [line.split() for line in lines[1:]]
    assert [" ".join(words[:-2]) for words in timed] == [
        "kernel, rows in cache",
        "gather only, prefetched",
        "scattered, no prefetch",
        "scattered, prefetched",
    ]
    assert all(words[-1] == "us" and float(words[-2]) > 0 for words in timed)


def test_gather_floor_refuses_an_array_smaller_than_its_batch(gather_floor):
    result = subprocess.run([str(gather_floor), "100"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "usage" in result.stderr


@pytest.fixture(scope="module")
def sparse_floor():
    """bench/sparse_floor.py's SparseFloor (it builds bench/sparse_floor.c), 2 threads."""
    if shutil.which(os.environ.get("CC", "cc")) is None:
        pytest.skip("needs a C compiler")
    bench = GATHER_FLOOR.parent
    if not (bench / "sparse_floor.c").exists():
        pytest.skip("needs the repository's bench/")
    sys.path.insert(0, str(bench))
    try:
        from sparse_floor import SparseFloor
    finally:
        sys.path.remove(str(bench))
    return SparseFloor(n_threads=2)


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64], ids=["int32", "int64"])
@pytest.mark.parametrize(
    "ahead_bytes", [0, 56, 560, 10240], ids=["no-prefetch", "1-ahead", "10-ahead", "default"]
)
def test_sparse_label_floor_reads_every_entry(sparse_floor, index_dtype, ahead_bytes):
    # Each row's label is the smallest of its k sums of center values over its stored
    # entries, in any order of rows (a unique smallest: random centers). Requests ahead
    # reach into the next row (1 and 10 entries on, about 8 a row) or past it.
    X = scipy.sparse.random_array(
        (300, 40), density=0.2, format="csr", rng=np.random.default_rng(0)
    )
    X = scipy.sparse.csr_array(
        (X.data, X.indices.astype(index_dtype), X.indptr.astype(index_dtype)), shape=X.shape
    )
    assert X.indices.dtype == index_dtype
    centers_t = np.random.default_rng(1).random((40, 7))
    rows = np.random.default_rng(2).integers(0, 300, 500)
    out = np.full(500, -1, np.int32)
    sparse_floor.labels(centers_t, X, rows, out, ahead_bytes)
    pattern = (X != 0).astype(np.float64)
    np.testing.assert_array_equal(out, (pattern[rows] @ centers_t).argmin(axis=1))


def test_sparse_label_floor_refuses_mixed_index_dtypes(sparse_floor):
    X = scipy.sparse.random_array((10, 5), density=0.5, format="csr", rng=0)
    X.indptr = X.indptr.astype(np.int64)
    with pytest.raises(ValueError, match="not both"):
        sparse_floor.labels(np.zeros((5, 2)), X, np.arange(10), np.empty(10, np.int32))


def test_sparse_update_floor_scales_in_place(sparse_floor):
    centers = np.random.default_rng(0).random((7, 1001))
    expected = centers * 0.5
    sparse_floor.update(centers, 0.5)
    np.testing.assert_array_equal(centers, expected)

"""The benchmark tools that are not Python: they include the kernels' sources, so a change to
a kernel's interface must not leave them broken unnoticed."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

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

"""Arrays without memory of their own: fit chunk by chunk and predict block by block, beside
the same rows in memory, measured in one run.

    python bench/chunked.py [--rows N] [--chunk-rows N] [--steps N]

A zarr array (N x 32 float32, chunks of --chunk-rows rows, zarr's default compressor) is
written to a temporary folder; then, k=64, batch 1024, early stopping off,
``compute_labels=False``, the same random_state:

- fit on the rows in memory, and on the zarr array read chunk by chunk (forced with
  ``mbk._sources.chunked.LOAD_WHOLE_SHARE = 0``, as for an array too large to load): time
  per step, whether the centers are the same bits, and the peak of the memory Python's
  allocators hand out during the fit (tracemalloc: NumPy's arrays and zarr's buffers);
- predict over all rows, in memory and block by block from zarr: time and peak memory.
"""

import argparse
import os
import sys
import tempfile
import time
import tracemalloc

import numpy as np
import zarr

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mbk  # noqa: E402
from benchmarks.common import blobs  # noqa: E402
from mbk._sources import chunked  # noqa: E402


def measured(function):
    tracemalloc.start()
    started = time.perf_counter()
    result = function()
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return result, seconds, peak


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-rows", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    X = blobs(args.rows, 32, 64, np.float32, seed=0)
    params = {"n_clusters": 64, "batch_size": 1024, "random_state": 0, "compute_labels": False,
              "max_no_improvement": None, "init": X[:64].copy(), "n_init": 1,
              "max_iter": max(1, args.steps * 1024 // args.rows)}  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        store = zarr.open_array(os.path.join(folder, "X.zarr"), mode="w", shape=X.shape,
                                chunks=(args.chunk_rows, 32), dtype=np.float32)  # fmt: skip
        store[:] = X
        print(f"# {args.rows:,} x 32 float32 ({X.nbytes / 2**20:.0f} MiB), zarr chunks of "
              f"{args.chunk_rows:,} rows; k=64, batch 1024; mbk.kernel_variant() = "
              f"{mbk.kernel_variant()}")  # fmt: skip
        memory, memory_s, memory_peak = measured(lambda: mbk.MiniBatchKMeans(**params).fit(X))
        chunked.LOAD_WHOLE_SHARE = 0.0
        stored, stored_s, stored_peak = measured(lambda: mbk.MiniBatchKMeans(**params).fit(store))
        same = np.array_equal(memory.cluster_centers_, stored.cluster_centers_)
        for name, model, seconds, peak in (("in memory", memory, memory_s, memory_peak),
                                           ("zarr, chunk by chunk", stored, stored_s,
                                            stored_peak)):  # fmt: skip
            print(f"fit {name:<22} {model.n_steps_:>5} steps  {seconds / model.n_steps_ * 1e3:8.2f}"
                  f" ms/step  peak {peak / 2**20:8.1f} MiB")  # fmt: skip
        print(f"same centers, bit for bit: {same}")
        labels, seconds, peak = measured(lambda: memory.predict(X))
        print(f"predict in memory             {seconds * 1e3:8.1f} ms  peak "
              f"{peak / 2**20:8.1f} MiB")  # fmt: skip
        out = np.empty(args.rows, np.int32)
        _, seconds, peak = measured(lambda: memory.predict(store, out=out))
        print(f"predict zarr, block by block  {seconds * 1e3:8.1f} ms  peak "
              f"{peak / 2**20:8.1f} MiB  (labels into out=)  same labels: "
              f"{np.array_equal(labels, out)}")  # fmt: skip


if __name__ == "__main__":
    main()

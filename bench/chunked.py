"""Arrays without memory of their own: fit chunk by chunk and predict block by block, beside
the same rows in memory, measured in one run.

    python bench/chunked.py [--rows N] [--chunk-rows N]

A zarr array (N x 32 float32 blobs in random order, chunks of --chunk-rows rows, zarr's
default compressor) is written to a temporary folder; then, k=64, batch 1024, one pass
(max_iter=1), early stopping off, ``compute_labels=False``, the same random_state:

- fit on the rows in memory, and on the zarr array read chunk by chunk (forced with
  ``mbk._sources.chunked.LOAD_WHOLE_SHARE = 0``, as for an array too large to load) with
  ``sampling="exact"`` and ``sampling="blocks"``: time per step, whether the centers are the
  in-memory bits, the inertia on 20,000 held-out rows against the in-memory fit's, and the
  peak of the memory Python's allocators hand out during the fit (tracemalloc: NumPy's
  arrays and zarr's buffers);
- predict over all rows, in memory and block by block from zarr: time and peak memory.
"""

import argparse
import os
import sys
import tempfile
import time
import tracemalloc
import warnings

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
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--chunk-rows", type=int, default=2_000)
    args = parser.parse_args()
    X = blobs(args.rows, 32, 64, np.float32, seed=0)
    held_out = blobs(20_000, 32, 64, np.float32, seed=0)  # (the same centers, other rows)
    params = {"n_clusters": 64, "batch_size": 1024, "random_state": 0, "compute_labels": False,
              "max_no_improvement": None, "n_init": 1, "max_iter": 1}  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        store = zarr.open_array(os.path.join(folder, "X.zarr"), mode="w", shape=X.shape,
                                chunks=(args.chunk_rows, 32), dtype=np.float32)  # fmt: skip
        store[:] = X
        print(f"# {args.rows:,} x 32 float32 ({X.nbytes / 2**20:.0f} MiB), zarr chunks of "
              f"{args.chunk_rows:,} rows; k=64, batch 1024; mbk.kernel_variant() = "
              f"{mbk.kernel_variant()}")  # fmt: skip
        memory, memory_s, memory_peak = measured(lambda: mbk.MiniBatchKMeans(**params).fit(X))
        chunked.LOAD_WHOLE_SHARE = 0.0
        warnings.simplefilter("ignore")  # (the chunk-by-chunk warning)
        reference = -memory.score(held_out)
        for name, model, seconds, peak in [("in memory", memory, memory_s, memory_peak)] + [
            (f"zarr, sampling={sampling!r}", *measured(
                lambda sampling=sampling: mbk.MiniBatchKMeans(sampling=sampling, **params).fit(
                    store)))
            for sampling in ("exact", "blocks")
        ]:  # fmt: skip
            same = np.array_equal(model.cluster_centers_, memory.cluster_centers_)
            per_step = seconds / model.n_steps_ * 1e3
            quality = -model.score(held_out) / reference
            print(f"fit {name:<24} {model.n_steps_:>4} steps {per_step:8.2f} ms/step  peak "
                  f"{peak / 2**20:6.1f} MiB  same bits: {str(same):<5}  held-out inertia / "
                  f"in memory: {quality:.4f}")  # fmt: skip
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

"""mbk against scikit-learn (and faiss, when installed), measured in the same run on the same data.

    python bench/compare.py                    # every dense workload and section (several minutes)
    python bench/compare.py --quick            # a tenth of the rows everywhere: a smoke run
    python bench/compare.py --only W1 W4       # some workloads; W1 includes W1-f64
    python bench/compare.py --repeat 5 --skip-memory --skip-contention
    python bench/compare.py --sparse           # only the sparse section (a few minutes)
    python bench/compare.py --sparse-full      # the same with the full RCV1-like shape

Workloads are Gaussian blobs around k true centers (``bench/benchmarks/common.py``, which the
asv suite uses too) and the California housing table (W4, which ``--quick`` leaves whole).
Everything runs on 2 threads: mbk with ``n_threads=2``, scikit-learn within
``threadpool_limits(2, user_api="openmp")``. Each figure is the best of ``--repeat`` runs.

The table, per workload:

- fit, per step: ``fit`` with an explicit init array (seeding not counted), reassignment on
  (default ratio), ``compute_labels=False`` and early stopping off, divided by its steps:
  about 200, and at least one pass over the data. A step includes drawing its batch; fit's
  once-per-fit work (input checks, the sampling table) is spread over the steps. W5 also
  runs as many steps on 100,000 rows of the same kind: the step-time ratio between the two
  sizes shows whether a step does O(n_samples) work (scikit-learn does: it rebuilds the
  sampling distribution every step). Without such work the ratio still exceeds 1: batch
  rows scattered over a larger array miss the caches and the TLB more often, and the
  once-per-fit work (above all the NaN scan of X, 50 times larger) is spread over the same
  number of steps. The "marginal step" row isolates the per-step work: the time of a fit of
  twice as many steps minus that of the fit above, per added step.
- partial_fit, per call: 50 calls on consecutive batches after a first seeding call.
- default fit: default settings (k-means++ seeding, early stopping, labels), each library's
  best of --repeat runs where scikit-learn's first run takes under a second, and of 20 at
  least where it takes under 0.1 s (W4: a fit of a few milliseconds varies by a third from
  run to run), a single run otherwise (scikit-learn's W5 fit takes a minute); "st" is its
  number of steps
  (scikit-learn's/mbk's when they differ: in float32, mbk's float64 running counts round
  differently from scikit-learn's float32 ones, which can move the early stop).
- GEMM: numpy ``A @ B.T`` with A of shape (batch, d) and B of shape (k, d) in the data's
  dtype, BLAS limited to the same 2 threads, best of 20: the matrix product that assigning a
  batch needs, at BLAS speed. mbk/GEMM is how far mbk's whole step is from it.
- faiss, mbk/faiss (float32 only, when ``import faiss`` works): ``IndexFlatL2.search`` of one
  batch against the k centers. faiss has no mini-batch update, so this is the assignment only.

Then, per workload, what a step is made of: mbk's ``predict`` on one contiguous batch that
stays in cache (the assignment kernel alone, against the GEMM), and NumPy's ``take`` of one
batch of rows drawn at random from all of X, one thread (the gather of scattered rows that no
step can skip; for W5 also from the 100,000-row X: how much more a gather from a larger array
costs, memory latency rather than O(n) work).

Then: predict throughput over all rows (W1, W3); k-means++ seeding on W3's init subsample
(12,288 rows, k=1024) and whether both pick the same rows; ``partial_fit`` per-call time on a
256 x 32 batch, k=64 (W1's kind); peak memory of ``fit`` for C, Fortran, read-only and
np.memmap input (W1's data); thread scaling, 1 vs 2 threads (W1, W3); and contention: the
step time while one other CPU-bound process spins, over the quiet time (W1, W3).

Memory is measured in a fresh subprocess per case. It makes the data (the np.memmap case
maps a file written by this process and reads it through once, so its pages are resident),
runs one small warm-up fit (lazy imports, thread pools), resets the kernel's peak-RSS mark
(writes 5 to /proc/self/clear_refs), reads VmRSS, runs ``fit`` (default settings with an init
array) and reads VmHWM. Peak growth = VmHWM - VmRSS: the kernel's own high-water mark, so no
short-lived copy is missed, and since the data and code are already resident, what grows is
anonymous memory allocated by fit. glibc's malloc is told to unmap every block over 64 KiB
when it is freed (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_), so memory freed before
the measurement cannot be silently reused by it. Without clear_refs, a thread samples
RssAnon every millisecond instead (the output says which method ran); that can miss peaks
shorter than its period.

Sparse section (``--sparse``, instead of all the above): CSR rows from
``scipy.sparse.random_array`` (``benchmarks.common.sparse_rows``: values uniform in [0, 1),
float64, fixed seed), batch 1024. RCV1-like: 20,000 x 47,000, 0.16% stored (about 75 entries a
row), k=100; ``--sparse-full`` makes it 200,000 rows (fit's steps stay capped at about 200:
one pass). 20-newsgroups-like: 11,314 x 130,107, 0.1% stored, k=20. ``--quick`` leaves both
whole. Each runs with 32-bit indices and then as the same matrix with 64-bit indptr and
indices (a ``csr_array``: ``csr_matrix`` would downcast them), which scikit-learn rejects: its
column says n/a and the ratio column compares mbk int64 with mbk int32 (each measure runs on
scikit-learn int32, mbk int32 and mbk int64 one after the other). Rows: ``partial_fit``
per call with ``compute_labels=True`` (the default) and ``False``: the median call of
``--repeat`` runs of up to 50 calls on consecutive batches after a seeding call; fit per step
and the default fit as in the table above; predict over all rows, centers from one
partial_fit step. Each is printed beside issue 15's target (the speed-up over scikit-learn;
int64 within 10% of int32) and beside its floor, measured in the same run on the same matrix
(``bench/sparse_floor.c``, compiled at run time with the system's C compiler and OpenMP,
-O3 -march=native, loaded with ctypes, 2 threads), with the target mbk/floor <= 1.5:

- label floor: for every stored entry of the rows labelled, the k center values of its
  feature read as one contiguous run of a d x k C-ordered array (the layout a sparse label
  pass needs) and summed into the row's k sums, whose smallest is the row's label; the runs of
  the entries about 10 KB on are requested meanwhile (software prefetching, as mbk's kernel
  does: without it the pass waits on memory latency and takes about twice as long). The
  nearest-center search without the multiplies, the norms and the inertia. Per batch, averaged
  over the same consecutive batches as partial_fit (for partial_fit) or over 50 batches of
  rows drawn at random (for fit's steps).
- update floor: ``centers *= 1.0`` in place over a k x d array on 2 threads, one read and one
  write of each value: the least a step whose update rescales every center does (scikit-learn's
  update order rescales every center that received rows).
- each floor is the best of 5 runs at least (10 for the update), measured just before and just
  after each of mbk's and scikit-learn's figures, the faster of the two: on this host the
  32 MiB L3 is shared with other tenants, and whether the centers (20-36 MiB) stay in it
  changes every figure by up to several times, memory-bound passes most.
- partial_fit = 2 label passes (the step's, then labels_ and inertia_) + update; with
  compute_labels=False, 1 + update; a fit step = 1 label pass on drawn rows + update; the
  default fit = its steps x a fit step + a label pass over all rows (labels_; k-means++
  seeding not counted); predict = a label pass over all rows.

Then peak memory growth of a default ``fit`` (k-means++) per matrix, each in a fresh
subprocess as above, against the bound 4 x the centers (k x d x 8 bytes) + batch-sized buffers
(k-means++'s subsample of 3 x batch_size rows and one batch, as CSR, and 32 bytes a row of
them) + labels_ (4 bytes a row).

This machine is shared: read ratios, not absolute times, and run it twice.
"""

import argparse
import contextlib
import functools
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

import numpy as np
import scipy
import scipy.sparse
from threadpoolctl import threadpool_info, threadpool_limits

# scikit-learn and faiss are imported before mbk, which sets GOMP_SPINCOUNT (unless a wait
# policy is set) for the OpenMP runtimes that load after it: each library keeps its default.
try:
    import sklearn
    from sklearn.cluster import MiniBatchKMeans as SklearnMiniBatchKMeans
    from sklearn.cluster import kmeans_plusplus as sklearn_kmeans_plusplus
except ImportError as error:  # pragma: no cover
    raise SystemExit("bench/compare.py needs scikit-learn: pip install '.[bench]'") from error

try:
    import faiss
except ImportError:
    faiss = None

import mbk
from benchmarks.common import blobs, housing, sparse_rows
from sparse_floor import SparseFloor

N_THREADS = 2
IMPLEMENTATIONS = {"sklearn": SklearnMiniBatchKMeans, "mbk": mbk.MiniBatchKMeans}


# -- workloads --------------------------------------------------------------------------------


@dataclass(eq=False)  # hashable by identity: load() caches per workload
class Workload:
    name: str
    n_clusters: int
    batch_size: int
    small_rows: int | None = None  # also time fit steps on this many rows of the same kind

    def describe(self, X):
        return f"{self.kind} {X.shape[0]:,} x {X.shape[1]} {X.dtype.name}"


class Blobs(Workload):
    kind = "blobs"

    def __init__(self, name, n_samples, n_features, n_clusters, batch_size, dtype, **kwargs):
        super().__init__(name, n_clusters, batch_size, **kwargs)
        self.shape = (n_samples, n_features)
        self.dtype = np.dtype(dtype)

    def data(self, quick, n_samples=None, order="C"):
        n_samples = n_samples or self.shape[0]
        n_samples = n_samples // 10 if quick else n_samples
        return blobs(n_samples, self.shape[1], self.n_clusters, self.dtype, order=order)


class Housing(Workload):
    kind = "California housing"

    def __init__(self):
        super().__init__("W4", 6, 1024)

    def data(self, quick):
        return housing(np.float64)


WORKLOADS = [
    Blobs("W1", 1_000_000, 32, 64, 4096, np.float32),
    Blobs("W1-f64", 1_000_000, 32, 64, 4096, np.float64),
    Blobs("W2", 200_000, 784, 100, 1024, np.float32),
    Blobs("W3", 1_000_000, 64, 1024, 4096, np.float32),
    Housing(),
    Blobs("W5", 5_000_000, 16, 16, 8192, np.float32, small_rows=100_000),
]


@functools.lru_cache(maxsize=2)
def load(workload, quick):
    """The workload's data; the last two stay cached (the sections after the table reuse
    W1 and W3)."""
    return workload.data(quick)


def selected(workload, only):
    return not only or workload.name in only or workload.name.split("-")[0] in only


# -- measurements -----------------------------------------------------------------------------


def best_time(function, repeat):
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def make_estimator(cls, n_threads, **params):
    """mbk gets n_threads; scikit-learn follows the threadpool limit set around the call."""
    if cls is mbk.MiniBatchKMeans:
        params["n_threads"] = n_threads
    return cls(**params)


def step_estimator(cls, X, workload, n_threads, **params):
    """Explicit init (X's first k rows, dense), seed 0: the setting every step measurement
    uses."""
    init = X[: workload.n_clusters]
    return make_estimator(
        cls,
        n_threads,
        n_clusters=workload.n_clusters,
        init=init.toarray() if scipy.sparse.issparse(init) else init.copy(),
        batch_size=workload.batch_size,
        random_state=0,
        **params,
    )


def fit_step_time(cls, X, workload, repeat, n_threads=N_THREADS, n_steps=200):
    """Seconds per step of fit with early stopping off, and the number of steps run."""
    # max_iter counts passes; pick the number of passes that gives about n_steps steps.
    max_iter = max(1, round(n_steps * workload.batch_size / X.shape[0]))
    estimator = step_estimator(
        cls,
        X,
        workload,
        n_threads,
        max_iter=max_iter,
        max_no_improvement=None,
        compute_labels=False,
    )
    with threadpool_limits(n_threads, user_api="openmp"):
        seconds = best_time(lambda: estimator.fit(X), repeat)
    return seconds / estimator.n_steps_, estimator.n_steps_


def marginal_step_time(cls, X, workload, repeat, n_steps, n_threads=N_THREADS):
    """Seconds per step added by running twice as many steps (once-per-fit work cancels).
    A difference of two times: noisier than either, so best of at least 5 runs each."""
    repeat = max(repeat, 5)
    once, steps = fit_step_time(cls, X, workload, repeat, n_threads, n_steps)
    twice, more_steps = fit_step_time(cls, X, workload, repeat, n_threads, 2 * n_steps)
    return (twice * more_steps - once * steps) / (more_steps - steps)


def partial_fit_step_time(cls, X, workload, repeat, n_threads=N_THREADS, n_calls=50):
    """Seconds per partial_fit call on consecutive batches, after a first (seeding) call."""
    batches = [
        X[i * workload.batch_size : (i + 1) * workload.batch_size]
        for i in range(min(n_calls + 1, X.shape[0] // workload.batch_size))
    ]

    def timed_calls():
        estimator = step_estimator(cls, X, workload, n_threads, compute_labels=False)
        estimator.partial_fit(batches[0])
        start = time.perf_counter()
        for batch in batches[1:]:
            estimator.partial_fit(batch)
        return time.perf_counter() - start

    with threadpool_limits(n_threads, user_api="openmp"):
        seconds = min(timed_calls() for _ in range(repeat))
    return seconds / (len(batches) - 1)


def default_fit_time(cls, X, workload, repeat, n_threads=N_THREADS):
    """Seconds of a fit with default settings (best of ``repeat`` runs), and its number of
    steps."""
    estimator = make_estimator(
        cls,
        n_threads,
        n_clusters=workload.n_clusters,
        batch_size=workload.batch_size,
        random_state=0,
    )
    with threadpool_limits(n_threads, user_api="openmp"):
        seconds = best_time(lambda: estimator.fit(X), repeat)
    return seconds, estimator.n_steps_


def sklearn_default_fit(X, workload, repeat):
    """scikit-learn's default_fit_time, its steps, and the number of runs it took: best of
    ``repeat`` where a fit is short, of 20 at least where it takes milliseconds (one such fit
    varies by a third from run to run on this shared host, for either library), a single run
    where it takes a second or more. mbk's fit then runs as many times."""
    seconds, steps = default_fit_time(SklearnMiniBatchKMeans, X, workload, 1)
    repeat = 1 if seconds >= 1.0 else repeat if seconds >= 0.1 else max(repeat, 20)
    if repeat > 1:
        seconds = min(seconds, default_fit_time(SklearnMiniBatchKMeans, X, workload, repeat - 1)[0])
    return seconds, steps, repeat


def gemm_time(workload, n_features, dtype, n_threads=N_THREADS, repeat=20):
    """Best time of numpy's (batch x d) @ (d x k) in dtype, BLAS on n_threads threads."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((workload.batch_size, n_features)).astype(dtype)
    B = rng.standard_normal((workload.n_clusters, n_features)).astype(dtype)
    with threadpool_limits(n_threads, user_api="blas"):
        A @ B.T  # warm-up: BLAS thread start
        return best_time(lambda: A @ B.T, repeat)


def faiss_index(centers, n_threads=N_THREADS):
    faiss.omp_set_num_threads(n_threads)
    index = faiss.IndexFlatL2(centers.shape[1])
    index.add(np.ascontiguousarray(centers, dtype=np.float32))
    return index


def faiss_assign_time(X, workload, n_threads=N_THREADS, repeat=20):
    """Best time of faiss's exact nearest-center search for one batch (float32 only)."""
    if faiss is None or X.dtype != np.float32:
        return None
    index = faiss_index(X[: workload.n_clusters], n_threads)
    batch = np.ascontiguousarray(X[-workload.batch_size :])
    index.search(batch, 1)
    return best_time(lambda: index.search(batch, 1), repeat)


def predict_time(cls, X, workload, repeat, n_threads=N_THREADS):
    """Best time of predict over all of X, centers from one partial_fit step."""
    estimator = step_estimator(cls, X, workload, n_threads, compute_labels=False)
    with threadpool_limits(n_threads, user_api="openmp"):
        estimator.partial_fit(X[: workload.batch_size])
        return best_time(lambda: estimator.predict(X), repeat)


def faiss_predict_time(X, workload, repeat, n_threads=N_THREADS):
    if faiss is None:
        return None
    index = faiss_index(X[: workload.n_clusters], n_threads)
    return best_time(lambda: index.search(X, 1), repeat)


def kmeans_plusplus_time(function, X, n_clusters, repeat, n_threads=N_THREADS):
    """Best time of a k-means++ function (BLAS and OpenMP limited), and the rows it picked."""
    with threadpool_limits(n_threads):
        seconds = best_time(lambda: function(X, n_clusters, random_state=0), repeat)
        _, indices = function(X, n_clusters, random_state=0)
    return seconds, indices


def partial_fit_call_time(cls, batch, n_clusters, repeat, compute_labels, n_calls=200):
    """Seconds per partial_fit call on one small batch, Python included."""
    estimator = make_estimator(
        cls,
        N_THREADS,
        n_clusters=n_clusters,
        init=batch[:n_clusters].copy(),
        batch_size=len(batch),
        random_state=0,
        compute_labels=compute_labels,
    )

    def calls():
        for _ in range(n_calls):
            estimator.partial_fit(batch)

    with threadpool_limits(N_THREADS, user_api="openmp"):
        estimator.partial_fit(batch)
        return best_time(calls, repeat) / n_calls


@contextlib.contextmanager
def cpu_hog():
    """One other CPU-bound process (a Python busy loop) for the duration of the block."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # let it start and reach its loop
        yield
    finally:
        hog.kill()
        hog.wait()


# -- memory (each case in a fresh subprocess) ---------------------------------------------------


def proc_status_kib(field):
    with open("/proc/self/status") as status:
        return int(re.search(rf"^{field}:\s+(\d+) kB", status.read(), re.MULTILINE).group(1))


def peak_growth(function):
    """(bytes, method): peak growth of resident memory while function runs."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")  # reset VmHWM to the current VmRSS (Linux >= 4.0)
    except OSError:
        return sampled_anon_growth(function), "RssAnon sampled every 1 ms"
    before = proc_status_kib("VmRSS")
    function()
    return (proc_status_kib("VmHWM") - before) * 1024, "VmHWM - VmRSS"


def sampled_anon_growth(function, period=0.001):
    before = peak = proc_status_kib("RssAnon")
    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, proc_status_kib("RssAnon"))
            time.sleep(period)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        function()
    finally:
        done.set()
        sampler.join()
    return (max(peak, proc_status_kib("RssAnon")) - before) * 1024


# glibc malloc in the child: blocks over 64 KiB always mmapped and unmapped on free, and the
# heap trimmed, so freed memory is given back and cannot hide later allocations (by default
# the mmap threshold grows to the largest block freed so far, and a later allocation can
# reuse resident memory that an earlier one left behind).
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "131072"}

LAYOUTS = {
    "C": "C-ordered",
    "F": "Fortran-ordered",
    "read-only": "read-only",
    "memmap": "np.memmap",
}


def memory_case(implementation, layout, quick, path):
    """Child process: print the peak growth during fit for one implementation and layout."""
    workload = WORKLOADS[0]  # W1
    if layout == "memmap":
        X = np.load(path, mmap_mode="r")
        for start in range(0, X.shape[0], 65536):  # make its pages resident
            X[start : start + 65536].sum()
    else:
        X = workload.data(quick, order="F" if layout == "F" else "C")
        X.flags.writeable = layout != "read-only"

    def fit(rows):
        estimator = step_estimator(IMPLEMENTATIONS[implementation], X, workload, N_THREADS)
        estimator.fit(X[:rows])

    with threadpool_limits(N_THREADS, user_api="openmp"):
        fit(20 * workload.batch_size)  # warm-up: lazy imports, OpenMP threads, BLAS buffers
        growth, method = peak_growth(lambda: fit(X.shape[0]))
    print("peak-growth", growth, method)


def fit_memory_growth(implementation, layout, quick, path):
    """(bytes, method) from a fresh `python compare.py --memory-case ...` process."""
    arguments = ["--memory-case", implementation, layout, path]
    return child_memory_growth(arguments + (["--quick"] if quick else []))


def child_memory_growth(arguments):
    """(bytes, method) printed by a fresh `python compare.py <arguments>` process."""
    output = subprocess.run(
        [sys.executable, __file__, *arguments],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **MALLOC_ENV},
    ).stdout
    # The last line; anything before it is build chatter from an editable install.
    _, growth, method = output.splitlines()[-1].split(maxsplit=2)
    return int(growth), method


# -- report -----------------------------------------------------------------------------------


def ms(seconds):
    return f"{seconds * 1e3:8.3f}ms"


def duration(seconds):
    """Milliseconds below a second (a housing fit), else seconds."""
    return ms(seconds) if seconds < 1 else f"{seconds:9.3f}s"


def ratio(numerator, denominator):
    if numerator is None or denominator is None:
        return "-"
    return f"{numerator / denominator:.1f}x"


def section(title):
    print()
    print(f"# {title}")


def print_header():
    print(
        f"# mbk {mbk.__version__} (OpenMP: {mbk.OPENMP_ENABLED}) vs scikit-learn "
        f"{sklearn.__version__}"
        + (f" and faiss {faiss.__version__}" if faiss is not None else "")
        + f"; numpy {np.__version__}; {N_THREADS} threads"
    )
    variant = getattr(mbk, "kernel_variant", None)  # newer mbk: the CPU kernel in use
    if variant is not None:
        print(f"# mbk kernel variant: {variant()}")
    print(
        f"# {cpu_model()}, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M')}; "
        f"NumPy's BLAS: {blas_core()}"
    )


def cpu_model():
    """The CPU's model name from /proc/cpuinfo (Linux), else what platform says."""
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def blas_core():
    """NumPy's BLAS library and the core type it runs its kernels for (OpenBLAS names it:
    SkylakeX, Haswell, Zen, ...), from threadpoolctl."""
    for pool in threadpool_info():
        if pool.get("user_api") == "blas" and "numpy" in pool.get("filepath", ""):
            return f"{pool.get('internal_api')} {pool.get('version')} ({pool.get('architecture')})"
    return "unknown"


def table_rows(workload, X, args):
    """(measure, sklearn, mbk, speed-up, GEMM, mbk/GEMM, faiss, mbk/faiss) cells."""
    sk_class, our_class = IMPLEMENTATIONS["sklearn"], IMPLEMENTATIONS["mbk"]
    gemm = gemm_time(workload, X.shape[1], X.dtype)
    faiss_seconds = faiss_assign_time(X, workload)
    faiss_cells = (ms(faiss_seconds) if faiss_seconds else "-",)

    def step_row(measure, sk, ours):
        return (
            (measure, ms(sk), ms(ours), ratio(sk, ours), ms(gemm), ratio(ours, gemm))
            + faiss_cells
            + (ratio(ours, faiss_seconds),)
        )

    sk, n_steps = fit_step_time(sk_class, X, workload, args.repeat)
    ours, _ = fit_step_time(our_class, X, workload, args.repeat)
    rows = [step_row("fit, per step", sk, ours)]
    if workload.small_rows:
        X_small = workload.data(args.quick, n_samples=workload.small_rows)
        sk_small, _ = fit_step_time(sk_class, X_small, workload, args.repeat, n_steps=n_steps)
        ours_small, _ = fit_step_time(our_class, X_small, workload, args.repeat, n_steps=n_steps)
        rows.append(step_row(f"  same, {X_small.shape[0]:,} rows", sk_small, ours_small))
        rows.append(
            (f"  {X.shape[0]:,}/{X_small.shape[0]:,}", ratio(sk, sk_small), ratio(ours, ours_small))
            + ("",) * 5
        )
        # mbk only: scikit-learn's W5 steps take a minute a fit (its per-step O(n) work shows
        # in the ratio above).
        marginal = marginal_step_time(our_class, X, workload, args.repeat, n_steps)
        marginal_small = marginal_step_time(our_class, X_small, workload, args.repeat, n_steps)
        rows.append(("  marginal step, ratio", "-", ratio(marginal, marginal_small)) + ("",) * 5)
    sk = partial_fit_step_time(sk_class, X, workload, args.repeat)
    ours = partial_fit_step_time(our_class, X, workload, args.repeat)
    rows.append(step_row("partial_fit, per call", sk, ours))
    sk, sk_steps, repeat = sklearn_default_fit(X, workload, args.repeat)
    ours, our_steps = default_fit_time(our_class, X, workload, repeat)
    steps = f"{our_steps}" if our_steps == sk_steps else f"{sk_steps}/{our_steps}"
    rows.append(
        (f"default fit ({steps} st)", duration(sk), duration(ours), ratio(sk, ours)) + ("",) * 4
    )
    return rows


def print_table(workloads, args):
    columns = ["sklearn", "mbk", "speed-up", "GEMM", "mbk/GEMM"]
    if faiss is not None:
        columns += ["faiss", "mbk/faiss"]
    header = f"{'workload':8} {'data':38} {'k':>5} {'batch':>6} | {'measure':22} " + " ".join(
        f"{column:>10}" for column in columns
    )
    print(header)
    print("-" * len(header))
    for workload in workloads:
        X = load(workload, args.quick)
        label = (
            f"{workload.name:8} {workload.describe(X):38} {workload.n_clusters:5} "
            f"{workload.batch_size:6}"
        )
        for row in table_rows(workload, X, args):
            print(f"{label} | {row[0]:22} " + " ".join(f"{cell:>10}" for cell in row[1:6]), end="")
            print(" " + " ".join(f"{cell:>10}" for cell in row[6:]) if faiss is not None else "")
            label = " " * len(label)


def gather_time(X, batch_size, repeat):
    """Best time of NumPy's take (one thread) of batch_size rows drawn at random from X, each
    run a fresh draw: fetching a batch's scattered rows, which a step on X cannot avoid."""
    rng = np.random.default_rng(0)
    draws = iter([rng.integers(0, X.shape[0], batch_size) for _ in range(repeat + 1)])
    out = np.empty((batch_size, X.shape[1]), X.dtype)
    X.take(next(draws), axis=0, out=out)
    return best_time(lambda: X.take(next(draws), axis=0, out=out), repeat)


def print_step_parts(workloads, args):
    section(
        "what a step is made of: GEMM (as in the table); mbk's predict on one contiguous "
        "batch in cache (the assignment kernel alone); NumPy's take of one batch of rows drawn "
        "from all of X (1 thread: the gather a step cannot avoid), and from the small X"
    )
    print(
        f"{'workload':8} | {'GEMM':>10} {'predict':>10} {'/GEMM':>10} | {'gather':>10} "
        f"{'small X':>10} {'+':>10}"
    )
    for workload in workloads:
        X = load(workload, args.quick)
        # GEMM last: OpenBLAS's threads spin for a while after a product, taking the cores
        # from mbk's.
        # predict over one contiguous batch, which stays in cache: the assignment kernel
        # without the gather of scattered rows and the center update a step adds
        batch = np.ascontiguousarray(X[: workload.batch_size])
        kernel = predict_time(mbk.MiniBatchKMeans, batch, workload, 20)
        gather = gather_time(X, workload.batch_size, 20)
        gemm = gemm_time(workload, X.shape[1], X.dtype)
        cells = [ms(gemm), ms(kernel), ratio(kernel, gemm), ms(gather)]
        if workload.small_rows:
            small = gather_time(
                workload.data(args.quick, n_samples=workload.small_rows), workload.batch_size, 20
            )
            cells += [ms(small), ms(gather - small)]
        print(f"{workload.name:8} | " + " ".join(f"{cell:>10}" for cell in cells))


def print_predict(workloads, args):
    section(
        f"predict over all rows, {N_THREADS} threads: M rows/s (higher is better; "
        "mbk/faiss is a time ratio, as in the table)"
    )
    columns = ["sklearn", "mbk", "speed-up"]
    if faiss is not None:
        columns += ["faiss", "mbk/faiss"]
    print(f"{'workload':8} {'data':38} {'k':>5} | " + " ".join(f"{c:>10}" for c in columns))
    for workload in workloads:
        X = load(workload, args.quick)
        rate = {
            name: X.shape[0] / predict_time(cls, X, workload, args.repeat) / 1e6
            for name, cls in IMPLEMENTATIONS.items()
        }
        cells = [
            f"{rate['sklearn']:.2f}",
            f"{rate['mbk']:.2f}",
            ratio(rate["mbk"], rate["sklearn"]),
        ]
        if faiss is not None:
            rate["faiss"] = X.shape[0] / faiss_predict_time(X, workload, args.repeat) / 1e6
            cells += [f"{rate['faiss']:.2f}", ratio(rate["faiss"], rate["mbk"])]
        print(
            f"{workload.name:8} {workload.describe(X):38} {workload.n_clusters:5} | "
            + " ".join(f"{cell:>10}" for cell in cells)
        )


def print_kmeans_plusplus(workload, args):
    X = load(workload, args.quick)
    n_rows = 3 * workload.batch_size // (10 if args.quick else 1)
    # fit's init subsample: init_size = 3 * batch_size rows drawn with replacement.
    X_init = X[np.random.RandomState(0).randint(0, X.shape[0], n_rows)]
    section(
        f"k-means++ seeding on {workload.name}'s init subsample: {n_rows:,} x {X.shape[1]} "
        f"{X.dtype.name}, k={workload.n_clusters}, {N_THREADS} threads"
    )
    sk, sk_indices = kmeans_plusplus_time(
        sklearn_kmeans_plusplus, X_init, workload.n_clusters, args.repeat
    )
    ours, our_indices = kmeans_plusplus_time(
        mbk.kmeans_plusplus, X_init, workload.n_clusters, args.repeat
    )
    same = "yes" if np.array_equal(sk_indices, our_indices) else "NO"
    print(f"sklearn {sk:.3f}s   mbk {ours:.3f}s   speed-up {ratio(sk, ours)}   same seeds: {same}")


def print_partial_fit_overhead(workload, args):
    X = load(workload, args.quick)
    batch = X[:256]
    section(
        f"partial_fit on one 256 x {X.shape[1]} {X.dtype.name} batch, k={workload.n_clusters}, "
        f"{N_THREADS} threads: microseconds per call, Python included"
    )
    print(f"{'':24} {'sklearn':>10} {'mbk':>10} {'speed-up':>10}")
    for compute_labels in (False, True):
        sk, ours = (
            partial_fit_call_time(cls, batch, workload.n_clusters, args.repeat, compute_labels)
            for cls in IMPLEMENTATIONS.values()
        )
        print(
            f"{f'compute_labels={compute_labels}':24} {sk * 1e6:10.1f} {ours * 1e6:10.1f} "
            f"{ratio(sk, ours):>10}"
        )


def print_memory(workload, args):
    X = load(workload, args.quick)
    section(
        f"peak memory growth during fit (default settings, init array), {workload.name}: "
        f"{X.shape[0]:,} x {X.shape[1]} {X.dtype.name} = {X.nbytes / 2**20:.0f} MiB, "
        "fresh process per case"
    )
    print(f"{'input':16} {'sklearn':>10} {'mbk':>10}")
    methods = set()
    with tempfile.TemporaryDirectory(prefix="mbk-compare-") as tmpdir:
        path = os.path.join(tmpdir, "X.npy")
        np.save(path, X)
        for layout, name in LAYOUTS.items():
            cells = []
            for implementation in IMPLEMENTATIONS:
                growth, method = fit_memory_growth(implementation, layout, args.quick, path)
                methods.add(method)
                cells.append(f"{growth / 2**20:7.1f}MiB")
            print(f"{name:16} " + " ".join(f"{cell:>10}" for cell in cells))
    print(f"(measured as {', '.join(sorted(methods))})")


def print_thread_scaling(workloads, args):
    section("thread scaling: fit step time on 1 and 2 threads")
    print(
        f"{'workload':8} | {'sklearn 1t':>10} {'2t':>10} {'speed-up':>10} | "
        f"{'mbk 1t':>10} {'2t':>10} {'speed-up':>10}"
    )
    for workload in workloads:
        X = load(workload, args.quick)
        cells = []
        for cls in IMPLEMENTATIONS.values():
            one, _ = fit_step_time(cls, X, workload, args.repeat, n_threads=1)
            two, _ = fit_step_time(cls, X, workload, args.repeat, n_threads=2)
            cells.append(f"{ms(one):>10} {ms(two):>10} {ratio(one, two):>10}")
        print(f"{workload.name:8} | " + " | ".join(cells))


def print_contention(workloads, args):
    section(
        f"contention: fit step time on {N_THREADS} threads, quiet and with one other "
        "CPU-bound process running"
    )
    print(
        f"{'workload':8} | {'sklearn':>10} {'busy':>10} {'slowdown':>10} | "
        f"{'mbk':>10} {'busy':>10} {'slowdown':>10}"
    )
    for workload in workloads:
        X = load(workload, args.quick)
        cells = []
        for cls in IMPLEMENTATIONS.values():
            quiet, _ = fit_step_time(cls, X, workload, args.repeat)
            with cpu_hog():
                busy, _ = fit_step_time(cls, X, workload, args.repeat)
            cells.append(f"{ms(quiet):>10} {ms(busy):>10} {ratio(busy, quiet):>10}")
        print(f"{workload.name:8} | " + " | ".join(cells))


# -- sparse CSR input (--sparse) ----------------------------------------------------------------


class SparseRows(Workload):
    """Random CSR rows of a text-like shape (``benchmarks.common.sparse_rows``), float64."""

    def __init__(self, name, kind, n_samples, n_features, density, n_clusters, full_samples):
        super().__init__(name, n_clusters, 1024)
        self.kind = kind
        self.shape = (n_samples, n_features)
        self.density = density
        self.full_samples = full_samples

    def data(self, full, index_dtype):
        n_samples = self.full_samples if full else self.shape[0]
        return sparse_rows(n_samples, self.shape[1], self.density, index_dtype)

    def describe(self, X):
        density = X.nnz / (X.shape[0] * X.shape[1])
        return f"{self.kind} {X.shape[0]:,} x {X.shape[1]:,} {density:.2%} {X.indices.dtype.name}"


SPARSE_WORKLOADS = [
    SparseRows("RCV1", "RCV1-like", 20_000, 47_000, 0.0016, 100, full_samples=200_000),
    SparseRows("20NG", "20news-like", 11_314, 130_107, 0.001, 20, full_samples=11_314),
]

# Issue 15's targets: mbk's speed-up over scikit-learn, per measure; with 64-bit indices at
# most 10% slower than with 32-bit ones; every mbk figure within 1.5x of its floor.
SPEED_UP_TARGETS = {
    "partial_fit, per call": 8,
    "  compute_labels=False": 5,
    "fit, per step": 8,
    "default fit": 10,
    "predict, all rows": 5,
}
INT64_TARGET = 1.10
FLOOR_TARGET = 1.5


def partial_fit_median_time(cls, X, workload, repeat, compute_labels, n_calls=50):
    """Median seconds of a partial_fit call on consecutive batches after a first (seeding)
    call, over ``repeat`` runs of up to n_calls calls each: on this shared host one slow call
    moves a median less than a mean."""
    batches = [
        X[i * workload.batch_size : (i + 1) * workload.batch_size]
        for i in range(min(n_calls + 1, X.shape[0] // workload.batch_size))
    ]
    if batches[0].indices.dtype != X.indices.dtype:
        raise AssertionError(f"a batch of {X.indices.dtype} X has {batches[0].indices.dtype}")
    seconds = []
    with threadpool_limits(N_THREADS, user_api="openmp"):
        for _ in range(repeat):
            estimator = step_estimator(cls, X, workload, N_THREADS, compute_labels=compute_labels)
            estimator.partial_fit(batches[0])
            for batch in batches[1:]:
                start = time.perf_counter()
                estimator.partial_fit(batch)
                seconds.append(time.perf_counter() - start)
    return float(np.median(seconds))


def sparse_floor_times(floor, X, workload, repeat, n_batches=50):
    """Seconds of the floors on X (``bench/sparse_floor.c``), each the best of several runs.

    Returns (consecutive, drawn, all_rows, update): the label pass on one batch, averaged
    over the consecutive batches partial_fit_median_time calls on and over n_batches batches
    of rows drawn at random as fit draws them; the label pass over all rows; the update pass
    over a k x d array.
    """
    n_samples, batch_size = X.shape[0], workload.batch_size
    centers = X[: workload.n_clusters].toarray()
    centers_t = np.ascontiguousarray(centers.T)
    rng = np.random.default_rng(0)
    consecutive = [
        np.arange(i * batch_size, (i + 1) * batch_size, dtype=np.int64)
        for i in range(1, min(n_batches + 1, n_samples // batch_size))
    ]
    drawn = [rng.integers(0, n_samples, batch_size, dtype=np.int64) for _ in range(n_batches)]
    out = np.empty(n_samples, np.int32)

    def per_batch(batches):
        def passes():
            for rows in batches:
                floor.labels(centers_t, X, rows, out[: len(rows)])

        return best_time(passes, max(repeat, 5)) / len(batches)

    all_rows = np.arange(n_samples, dtype=np.int64)
    return (
        per_batch(consecutive),
        per_batch(drawn),
        best_time(lambda: floor.labels(centers_t, X, all_rows, out), max(repeat, 5)),
        best_time(lambda: floor.update(centers), max(repeat, 10)),
    )


def sparse_measures(workload, matrices, args, floor):
    """mbk on each matrix (the same rows with int32, then int64 indices) and scikit-learn on
    the first, one measure after the other so that the figures of a measure are taken close
    together in time.

    Returns
    -------
    rows : list of (measure, sklearn seconds, [mbk seconds per matrix], [floor seconds per
        matrix], [default fit's steps per matrix, "sklearn's/mbk's" where they differ] or None)
    """
    our_class = IMPLEMENTATIONS["mbk"]

    def all_of(seconds_of, **params):
        """seconds_of(cls, X, workload, args.repeat, **params): scikit-learn's on the first
        matrix and mbk's on each."""
        sk = seconds_of(SklearnMiniBatchKMeans, matrices[0], workload, args.repeat, **params)
        ours = [seconds_of(our_class, X, workload, args.repeat, **params) for X in matrices]
        return sk, ours

    fit_steps = {}  # the default fits' steps: scikit-learn's, and mbk's per matrix

    def default_fit():
        sk, fit_steps["sklearn"], repeat = sklearn_default_fit(matrices[0], workload, args.repeat)
        ours = [default_fit_time(our_class, X, workload, repeat) for X in matrices]
        fit_steps["mbk"] = [n_steps for _, n_steps in ours]
        return sk, [seconds for seconds, _ in ours]

    # (measure, its seconds, its floor from the label pass on a consecutive batch, on a drawn
    # batch, over all rows, the update pass, and the matrix's position)
    measures = [
        (
            "partial_fit, per call",
            lambda: all_of(partial_fit_median_time, compute_labels=True),
            lambda consecutive, drawn, all_rows, update, i: 2 * consecutive + update,
        ),  # the step's label pass, then labels_ and inertia_
        (
            "  compute_labels=False",
            lambda: all_of(partial_fit_median_time, compute_labels=False),
            lambda consecutive, drawn, all_rows, update, i: consecutive + update,
        ),
        (
            "fit, per step",
            lambda: all_of(lambda *arguments: fit_step_time(*arguments)[0]),
            lambda consecutive, drawn, all_rows, update, i: drawn + update,
        ),
        (
            "default fit",
            default_fit,
            lambda consecutive, drawn, all_rows, update, i: (
                fit_steps["mbk"][i] * (drawn + update) + all_rows
            ),
        ),  # its steps, then labels_ over all rows; seeding not counted
        (
            "predict, all rows",
            lambda: all_of(predict_time),
            lambda consecutive, drawn, all_rows, update, i: all_rows,
        ),
    ]

    def floor_times():
        return [sparse_floor_times(floor, X, workload, args.repeat) for X in matrices]

    # The floors just before and just after each measure, the faster of the two: this host's
    # 32 MiB L3 is shared with other tenants, and whether the centers (20-36 MiB) stay in it
    # changes every figure here by up to several times, the floors' and scikit-learn's most.
    rows = []
    floors_before = floor_times()
    for measure, seconds, floor_of in measures:
        sk, ours = seconds()
        floors_after = floor_times()
        floor_seconds = [
            floor_of(*map(min, before, after), i)
            for i, (before, after) in enumerate(zip(floors_before, floors_after, strict=True))
        ]
        floors_before = floors_after
        steps = None
        if measure == "default fit":
            sk_steps = fit_steps["sklearn"]
            steps = [f"{n}" if n == sk_steps else f"{sk_steps}/{n}" for n in fit_steps["mbk"]]
        rows.append((measure, sk, ours, floor_seconds, steps))
    return rows


def verdict(value, target, at_least):
    return "ok" if (value >= target if at_least else value <= target) else "NO"


def print_sparse(args):
    section(
        f"sparse CSR input (scipy {scipy.__version__} random_array, float64, batch 1024), "
        f"{N_THREADS} threads. ratio: sklearn/mbk on int32 rows (target: the speed-up), "
        f"mbk int64/mbk int32 on int64 rows (target <= {INT64_TARGET:.2f}x); "
        f"mbk/floor target <= {FLOOR_TARGET}x"
    )
    print(
        "# floors: label pass = per stored entry, the k center values of its feature (d x k "
        "array) summed, in C, prefetched 10 KB ahead, no multiply; update = one read and one "
        "write of the k x d centers. partial_fit: 2 label passes (1 with "
        "compute_labels=False) + update; fit step: 1 label pass on drawn rows + update; "
        "default fit: steps x that + a label pass over all rows (seeding not counted); "
        "predict: a label pass over all rows"
    )
    widths = (10, 10, 7, 8, 3, 10, 9, 3)

    def cells_line(cells):
        return " ".join(f"{cell:>{width}}" for cell, width in zip(cells, widths, strict=True))

    header = f"{'workload':8} {'data':42} {'k':>4} | {'measure':22} " + cells_line(
        ["sklearn", "mbk", "ratio", "target", "", "floor", "mbk/floor", ""]
    )
    print(header)
    print("-" * len(header))
    floor = SparseFloor(N_THREADS)
    for workload in SPARSE_WORKLOADS:
        matrices = [workload.data(args.sparse_full, dtype) for dtype in (np.int32, np.int64)]
        rows = sparse_measures(workload, matrices, args, floor)
        for i, X in enumerate(matrices):
            label = f"{workload.name:8} {workload.describe(X):42} {workload.n_clusters:4}"
            for measure, sk, ours, floor_seconds, steps in rows:
                if i == 0:
                    value, target, at_least = sk / ours[0], SPEED_UP_TARGETS[measure], True
                    cells = [duration(sk), duration(ours[0]), f"{value:.1f}x", f">={target}x"]
                else:
                    value, target, at_least = ours[i] / ours[0], INT64_TARGET, False
                    cells = ["n/a", duration(ours[i]), f"{value:.2f}x", f"<={target:.2f}x"]
                floor_ratio = ours[i] / floor_seconds[i]
                cells += [
                    verdict(value, target, at_least),
                    duration(floor_seconds[i]),
                    f"{floor_ratio:.2f}x",
                    verdict(floor_ratio, FLOOR_TARGET, at_least=False),
                ]
                name = f"{measure} ({steps[i]} st)" if steps else measure
                print(f"{label} | {name:22} " + cells_line(cells))
                label = " " * len(label)
    if not args.skip_memory:
        print_sparse_memory(args)


def sparse_memory_bound(workload, X):
    """(centers, batch-sized buffers, labels_) in bytes: the bound on fit's peak growth is
    4 x centers + buffers + labels_. Batch-sized buffers: k-means++'s subsample (init_size =
    3 x batch_size rows) and one batch, as CSR, and 32 bytes per row of them (labels,
    distances, weights, row numbers)."""
    rows = 4 * workload.batch_size
    entries = X.nnz / X.shape[0] * rows
    csr = entries * (X.data.itemsize + X.indices.itemsize) + rows * X.indptr.itemsize
    return workload.n_clusters * X.shape[1] * 8, csr + 32 * rows, X.shape[0] * 4


def sparse_memory_case(implementation, name, index_dtype, full):
    """Child process: print the peak growth during a default fit (k-means++) on sparse rows."""
    workload = next(workload for workload in SPARSE_WORKLOADS if workload.name == name)
    X = workload.data(full, np.dtype(index_dtype))

    def fit(X):
        make_estimator(
            IMPLEMENTATIONS[implementation],
            N_THREADS,
            n_clusters=workload.n_clusters,
            batch_size=workload.batch_size,
            random_state=0,
        ).fit(X)

    with threadpool_limits(N_THREADS, user_api="openmp"):
        fit(X[: 4 * workload.batch_size])  # warm-up; X itself below: a slice would be a copy
        growth, method = peak_growth(lambda: fit(X))
    print("peak-growth", growth, method)


def print_sparse_memory(args):
    section(
        "peak memory growth during fit (default settings: k-means++, early stopping, labels), "
        "fresh process per case; bound = 4 x centers + batch-sized buffers + labels_"
    )
    print(
        f"{'workload':8} {'data':42} | {'sklearn':>10} {'mbk':>10} {'bound':>10} "
        f"{'mbk/bound':>9}   (4 x centers + buffers + labels_)"
    )
    methods = set()
    for workload in SPARSE_WORKLOADS:
        for index_dtype in ("int32", "int64"):
            X = workload.data(args.sparse_full, index_dtype)
            growth = {}
            for implementation in IMPLEMENTATIONS:
                if implementation == "sklearn" and index_dtype == "int64":
                    continue  # scikit-learn rejects 64-bit indices
                arguments = ["--sparse-memory-case", implementation, workload.name, index_dtype]
                growth[implementation], method = child_memory_growth(
                    arguments + (["--sparse-full"] if args.sparse_full else [])
                )
                methods.add(method)
            centers, buffers, labels = sparse_memory_bound(workload, X)
            bound = 4 * centers + buffers + labels
            cells = [
                f"{growth[name] / 2**20:7.1f}MiB" if name in growth else "n/a"
                for name in ("sklearn", "mbk")
            ]
            print(
                f"{workload.name:8} {workload.describe(X):42} | "
                + " ".join(f"{cell:>10}" for cell in cells)
                + f" {bound / 2**20:7.1f}MiB {growth['mbk'] / bound:8.2f}x   "
                f"(4 x {centers / 2**20:.1f} + {buffers / 2**20:.1f} + {labels / 2**20:.2f} MiB)"
            )
    print(f"(measured as {', '.join(sorted(methods))})")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the rows")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    parser.add_argument("--only", nargs="*", help="workload names to run (W1 ... W5)")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-contention", action="store_true")
    parser.add_argument(
        "--sparse",
        action="store_true",
        help="only the sparse section: RCV1-like and 20-newsgroups-like CSR rows",
    )
    parser.add_argument(
        "--sparse-full",
        action="store_true",
        help="the sparse section with the full RCV1-like shape (200,000 rows)",
    )
    parser.add_argument("--memory-case", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--sparse-memory-case", nargs=3, help=argparse.SUPPRESS)
    return parser.parse_args()


def main():
    args = parse_args()
    if args.memory_case:
        memory_case(*args.memory_case[:2], args.quick, args.memory_case[2])
        return
    if args.sparse_memory_case:
        sparse_memory_case(*args.sparse_memory_case, args.sparse_full)
        return
    print_header()
    if args.sparse or args.sparse_full:
        print_sparse(args)
        return
    workloads = [workload for workload in WORKLOADS if selected(workload, args.only)]
    print_table(workloads, args)
    print_step_parts(workloads, args)
    named = {workload.name: workload for workload in workloads}
    w1_w3 = [named[name] for name in ("W1", "W3") if name in named]
    if w1_w3:
        print_predict(w1_w3, args)
    if "W3" in named:
        print_kmeans_plusplus(named["W3"], args)
    if "W1" in named:
        print_partial_fit_overhead(named["W1"], args)
        if not args.skip_memory:
            print_memory(named["W1"], args)
    if w1_w3:
        print_thread_scaling(w1_w3, args)
        if not args.skip_contention:
            print_contention(w1_w3, args)


if __name__ == "__main__":
    main()

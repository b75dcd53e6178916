/* Floors for a mini-batch step on CSR rows: the least work any implementation of the step
 * does, timed by bench/compare.py (--sparse) against mbk and scikit-learn.
 *
 * label_floor: the labelling pass. Every stored entry (row i, feature f) of a CSR row needs
 * the k center values of feature f; in a d x k C-ordered array they are one contiguous run of
 * k doubles, which this pass reads and adds into the row's k running sums, then takes the
 * smallest. That is the nearest-center search without the multiply by the entry's value, the
 * squared norms and the distances: what remains is reading nnz runs of 8 k bytes from an
 * array that does not fit in the caches (RCV1-like: about 77,000 runs of 800 bytes per batch of
 * 1024 rows, from 37.6 MB), which is where a sparse label pass spends its time. The rows are
 * split into equal static blocks between the threads. The runs of the entries `ahead` places
 * on are requested while a run is summed (bench/compare.py asks for about 10 KB ahead, as
 * mbk's CSR_PREFETCH_BYTES does); ahead = 0 leaves prefetching to the hardware.
 *
 * update_floor: one read and one write of every center value, in place (centers *= scale):
 * what a center update that touches every center does at least. scale comes from the caller
 * so the compiler cannot drop the pass as a no-op.
 *
 * Built at run time as a shared library and loaded with ctypes (bench/compare.py does both):
 *   cc -O3 -march=native -fopenmp -shared -fPIC bench/sparse_floor.c -o sparse_floor.so
 * -march=native because a floor must not be slower than what mbk's run-time dispatch reaches.
 */
#include <stdint.h>
#include <stdlib.h>

/* The index of stored entry p: CSR arrays of 32- or 64-bit integers. The test is the same
 * for every entry, so it costs a predicted branch next to a run of k doubles. */
static inline int64_t entry(const void *array, int64_t p, int wide) {
    return wide ? ((const int64_t *)array)[p] : ((const int32_t *)array)[p];
}

/* Request the k center values of the entry `ahead` stored entries after p: in this row
 * (ending at end), else in the next row (next_start .. next_end). The runs are scattered, so
 * the hardware prefetcher cannot guess them, and a pass that waits for each one is limited by
 * memory latency, not bandwidth: mbk requests them ahead, so must a floor. */
static inline void request_run(const double *centers_t, int64_t n_clusters, const void *indices,
                               int wide, int64_t p, int64_t end, int64_t next_start,
                               int64_t next_end, int64_t ahead) {
    int64_t q = p + ahead;
    if (q >= end) {
        q = next_start + (q - end);
        if (q >= next_end) return;
    }
    const char *run = (const char *)(centers_t + entry(indices, q, wide) * n_clusters);
    for (int64_t offset = 0; offset < n_clusters * (int64_t)sizeof(double); offset += 64)
        __builtin_prefetch(run + offset);
}

/* One labelling pass over rows[0..n_rows) of a CSR matrix whose indptr and indices have
 * 64-bit integers when wide, else 32-bit. centers_t: (n_features, n_clusters) C-ordered;
 * labels: (n_rows,), written; ahead: how many entries ahead runs are requested (0: none).
 * Returns 0, or -1 when a thread's scratch was not allocated. */
int label_floor(const double *centers_t, int64_t n_clusters, const void *indptr,
                const void *indices, int wide, const int64_t *rows, int64_t n_rows,
                int64_t ahead, int32_t *labels, int n_threads) {
    int failed = 0;
#pragma omp parallel num_threads(n_threads) reduction(| : failed)
    {
        double *restrict sums = malloc(n_clusters * sizeof(double));
        failed = sums == NULL;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < n_rows; r++) {
            if (failed) continue;
            int64_t start = entry(indptr, rows[r], wide), end = entry(indptr, rows[r] + 1, wide);
            /* static schedule: row r + 1 is this thread's next one (but at its block's end) */
            int64_t next = r + 1 < n_rows ? rows[r + 1] : rows[r];
            int64_t next_start = entry(indptr, next, wide);
            int64_t next_end = next == rows[r] ? next_start : entry(indptr, next + 1, wide);
            for (int64_t j = 0; j < n_clusters; j++) sums[j] = 0.0;
            for (int64_t p = start; p < end; p++) {
                const double *run = centers_t + entry(indices, p, wide) * n_clusters;
                if (ahead > 0)
                    request_run(centers_t, n_clusters, indices, wide, p, end, next_start,
                                next_end, ahead);
                for (int64_t j = 0; j < n_clusters; j++) sums[j] += run[j];
            }
            int32_t best = 0;
            for (int64_t j = 1; j < n_clusters; j++) best = sums[j] < sums[best] ? j : best;
            labels[r] = best; /* depends on every value read: the reads cannot be dropped */
        }
        free(sums);
    }
    return failed ? -1 : 0;
}

void update_floor(double *centers, int64_t size, double scale, int n_threads) {
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (int64_t i = 0; i < size; i++) centers[i] *= scale;
}

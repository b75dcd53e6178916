/* How much a batch of scattered rows costs the assignment, measured without Python, OpenMP
 * scheduling of chunks or anything else of mbk's but its distance kernel (src/mbk/_tiles.h).
 *
 * W1's shape by default: a batch of 4096 rows of 32 float32 drawn at random from an array of
 * n_rows rows, 64 centers, tiles of 12 rows, 2 threads (OMP_NUM_THREADS) each taking half of
 * the batch. The array starts 16 bytes into a page, as NumPy's large arrays do, so a 128-byte
 * row spans three cache lines. Each line printed is the best of `repeats` batches:
 *
 *   kernel, rows in cache     the batch's rows consecutive, every tile copied and assigned
 *   gather only, prefetched   the tiles copied from scattered rows, no arithmetic
 *   scattered, no prefetch    copied from scattered rows, then assigned
 *   scattered, prefetched     the same, asking for the rows 48 ahead as mbk's _tile_rows does
 *
 * With an array far larger than the last-level cache, "scattered, prefetched" minus "kernel,
 * rows in cache" is what fetching the rows from memory adds to a step that overlaps it with
 * the arithmetic as well as software prefetching can; compare it with the gap between a
 * fit step on W1 and predict on one in-cache batch (bench/compare.py).
 *
 * GCC on x86-64 with AVX-512 (the kernel variant it calls):
 *   gcc -O3 -fopenmp bench/gather_floor.c -o /tmp/gather_floor -lm
 *   OMP_NUM_THREADS=2 /tmp/gather_floor 8000000     # 1 GiB of rows; 1000000 is W1's size
 */
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

typedef intptr_t Py_ssize_t; /* what the kernels take from Python.h */
#include "../src/mbk/_tiles.h"

/* AHEAD is PREFETCH_ROWS of src/mbk/_tuning.pxd (a Cython constant C cannot include) */
enum { N_FEATURES = 32, N_CLUSTERS = 64, TILE_ROWS = 12, BATCH = 4096, AHEAD = 48 };
enum { IN_CACHE, GATHER_ONLY, NO_PREFETCH, PREFETCHED, N_MODES };
static const char *mode_names[N_MODES] = {"kernel, rows in cache", "gather only, prefetched",
                                          "scattered, no prefetch", "scattered, prefetched"};

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static const float *row_of(const float *x, const Py_ssize_t *rows, Py_ssize_t i, int mode) {
    return x + (mode == IN_CACHE ? i : rows[i]) * N_FEATURES;
}

/* Rows [start, end) of the batch, tile by tile; returns a value that depends on the labels. */
static long assign_part(const float *x, const Py_ssize_t *rows, Py_ssize_t start,
                        Py_ssize_t end, const float *ct, const float *norms, int mode) {
    float tile[TILE_ROWS * N_FEATURES];
    int best_index[TILE_ROWS];
    float best_dist[TILE_ROWS];
    long checksum = 0;
    int prefetch = mode == GATHER_ONLY || mode == PREFETCHED;
    for (Py_ssize_t i = start; prefetch && i < start + AHEAD && i < end; i++)
        mbk_prefetch_span(row_of(x, rows, i, mode), N_FEATURES * sizeof(float));
    for (Py_ssize_t first = start; first < end; first += TILE_ROWS) {
        Py_ssize_t n = end - first < TILE_ROWS ? end - first : TILE_ROWS;
        for (Py_ssize_t i = first + AHEAD; prefetch && i < first + AHEAD + n && i < end; i++)
            mbk_prefetch_span(row_of(x, rows, i, mode), N_FEATURES * sizeof(float));
        for (Py_ssize_t r = 0; r < TILE_ROWS; r++)
            memcpy(tile + r * N_FEATURES, row_of(x, rows, first + (r < n ? r : 0), mode),
                   N_FEATURES * sizeof(float));
        if (mode == GATHER_ONLY) {
            checksum += (long)tile[0];
            continue;
        }
        mbk_variant_avx512.nearest_float(tile, N_FEATURES, ct, norms, N_FEATURES, N_CLUSTERS,
                                         best_index, best_dist);
        checksum += best_index[0];
    }
    return checksum;
}

int main(int argc, char **argv) {
    Py_ssize_t n_rows = argc > 1 ? atol(argv[1]) : 8000000;
    int repeats = argc > 2 ? atoi(argv[2]) : 40;
    if (n_rows < BATCH || repeats < 1 || !__builtin_cpu_supports("avx512f")) {
        fprintf(stderr, "usage: gather_floor [n_rows >= %d] [repeats]; needs AVX-512\n", BATCH);
        return 2;
    }
    size_t huge = 2 << 20, bytes = (n_rows * N_FEATURES * sizeof(float) + 16 + huge) / huge * huge;
    char *block = aligned_alloc(huge, bytes);
    if (block == NULL) return 1;
    madvise(block, bytes, MADV_HUGEPAGE); /* as NumPy asks for large arrays */
    float *x = (float *)(block + 16);
    for (Py_ssize_t i = 0; i < n_rows * N_FEATURES; i++) x[i] = (float)(i % 97) * 0.01f;
    /* centers transposed and their squared norms, laid out as _prepare_centers does */
    static float ct[N_FEATURES * N_CLUSTERS] __attribute__((aligned(64))), norms[N_CLUSTERS];
    for (int j = 0; j < N_CLUSTERS; j++) {
        norms[j] = 0;
        for (int f = 0; f < N_FEATURES; f++) {
            ct[f * N_CLUSTERS + j] = (float)((j * 31 + f * 7) % 97) * 0.01f;
            norms[j] += ct[f * N_CLUSTERS + j] * ct[f * N_CLUSTERS + j];
        }
    }
    Py_ssize_t *rows = malloc(BATCH * sizeof(Py_ssize_t));
    if (rows == NULL) return 1;
    uint64_t state = 0x9E3779B97F4A7C15u;
    long checksum = 0;
    printf("%ld rows of %d float32, batch %d, k=%d, %d threads, best of %d:\n", (long)n_rows,
           N_FEATURES, BATCH, N_CLUSTERS, omp_get_max_threads(), repeats);
    for (int mode = 0; mode < N_MODES; mode++) {
        double best = 1e9;
        for (int rep = 0; rep < repeats; rep++) {
            for (int i = 0; i < BATCH; i++) { /* a fresh batch each time: xorshift64 */
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                rows[i] = (Py_ssize_t)(state % (uint64_t)n_rows);
            }
            double start = seconds();
#pragma omp parallel reduction(+ : checksum)
            {
                int t = omp_get_thread_num(), n_threads = omp_get_num_threads();
                checksum += assign_part(x, rows, (Py_ssize_t)BATCH * t / n_threads,
                                        (Py_ssize_t)BATCH * (t + 1) / n_threads, ct, norms, mode);
            }
            double elapsed = seconds() - start;
            best = elapsed < best ? elapsed : best;
        }
        printf("  %-24s %7.1f us\n", mode_names[mode], best * 1e6);
    }
    if (checksum == 42) puts(""); /* uses the result, so the compiler keeps the work */
    return 0;
}

/* The interface of mbk's micro-kernels: the function types of every kernel and the
 * variant table that holds one instruction set's kernels. Every compiled module includes
 * this; only _dense includes _tiles.h, the kernels themselves, and hands variants out
 * (kernels_for, active_kernels), so there is one copy of the kernels and of the choice of
 * variant. Needs Py_ssize_t (include it after Python.h, as Cython's generated C does).
 */
#ifndef MBK_KERNELS_H
#define MBK_KERNELS_H

#include <math.h>
#include <stddef.h>
#include <string.h>

#define MBK_MAX_TILE_ROWS 12

typedef void (*mbk_nearest_float_fn)(const float *x, Py_ssize_t x_stride, const float *ct, const float *norms,
                                     Py_ssize_t n_features, Py_ssize_t n_padded,
                                     int *best_index, float *best_dist);
typedef void (*mbk_nearest_double_fn)(const double *x, Py_ssize_t x_stride, const double *ct, const double *norms,
                                      Py_ssize_t n_features, Py_ssize_t n_padded,
                                      int *best_index, double *best_dist);
typedef void (*mbk_distance_float_fn)(const float *x, Py_ssize_t x_stride, const float *ct, Py_ssize_t n_features,
                                      Py_ssize_t n_padded, Py_ssize_t n_clusters, int n_rows,
                                      float *out);
typedef void (*mbk_distance_double_fn)(const double *x, Py_ssize_t x_stride, const double *ct,
                                       Py_ssize_t n_features, Py_ssize_t n_padded,
                                       Py_ssize_t n_clusters, int n_rows, double *out);
/* The center update's sums, in double, rows added one after another in the order given:
 * for q = 0 .. n - 1, batch position i = order[q] (or q without order),
 * sums[labels[i] * n_features + f] += x[f] * w for every feature f (row 0 of sums without
 * labels), x = data + row * row_stride (row = index[i], or i without index),
 * w = weights[row] (no product without weights: x * 1 == x). */
typedef void (*mbk_add_rows_float_fn)(const float *data, Py_ssize_t row_stride, const Py_ssize_t *index,
                                      const Py_ssize_t *order, const int *labels, Py_ssize_t n,
                                      const float *weights, Py_ssize_t n_features, double *sums);
typedef void (*mbk_add_rows_double_fn)(const double *data, Py_ssize_t row_stride, const Py_ssize_t *index,
                                       const Py_ssize_t *order, const int *labels, Py_ssize_t n,
                                       const double *weights, Py_ssize_t n_features, double *sums);
/* out[r] = ||x_r - centers[labels[r]]||^2 for the n_rows rows x_r = x + r * x_stride, rounded
 * exactly as scikit-learn's _euclidean_dense_dense: features in groups of four,
 * result += ((d0^2 + d1^2) + d2^2) + d3^2, then the remaining features one by one, in T. */
typedef void (*mbk_row_distances_float_fn)(const float *x, Py_ssize_t x_stride, const float *centers,
                                           const int *labels, Py_ssize_t n_features, int n_rows,
                                           float *out);
typedef void (*mbk_row_distances_double_fn)(const double *x, Py_ssize_t x_stride, const double *centers,
                                            const int *labels, Py_ssize_t n_features, int n_rows,
                                            double *out);
/* k-means++ candidates, rows in lanes: for the rows [0, n_rows) packed in blocks of B =
 * candidate_rows rows, each block feature-major (row i, feature f at
 * xt[(i / B * n_features + f) * B + i % B], in the data's type, widened to float64 as it is
 * loaded; the last block padded with zero rows),
 * out[c * out_stride + i] = min(closest[i], max(0, (-2 c.x_i + ||c||^2) + ||x_i||^2)), rounded
 * to the output type, for the n_candidates candidate rows cand[c * n_features + f]. */
typedef void (*mbk_candidates_float_fn)(const float *xt, Py_ssize_t n_rows,
                                        Py_ssize_t n_features, const double *cand, int n_candidates,
                                        const double *cand_sq_norms, const double *x_sq_norms,
                                        const float *closest, float *out, Py_ssize_t out_stride);
typedef void (*mbk_candidates_double_fn)(const double *xt, Py_ssize_t n_rows,
                                         Py_ssize_t n_features, const double *cand, int n_candidates,
                                         const double *cand_sq_norms, const double *x_sq_norms,
                                         const double *closest, double *out, Py_ssize_t out_stride);
/* Nearest centers of n_rows contiguous rows x (n_rows, n_features) of at most
 * MBK_MAX_FEW_FEATURES features, rows in lanes (see MBK_DEFINE_NEAREST_FEW in _tiles.h). */
#define MBK_MAX_FEW_FEATURES 8
typedef void (*mbk_nearest_few_float_fn)(const float *x, int n_rows, const float *centers,
                                         const float *norms, Py_ssize_t n_clusters,
                                         Py_ssize_t n_features, int *labels, float *out_dist);
typedef void (*mbk_nearest_few_double_fn)(const double *x, int n_rows, const double *centers,
                                          const double *norms, Py_ssize_t n_clusters,
                                          Py_ssize_t n_features, int *labels, double *out_dist);
/* The nearest three centers of rows with at most MBK_MAX_FEW_FEATURES features, rows in lanes
 * (see MBK_DEFINE_NEAREST_THREE in _tiles.h): nested mini-batch k-means' bounds. */
typedef void (*mbk_nearest_three_float_fn)(const float *data, Py_ssize_t row_stride, Py_ssize_t col_stride,
                                           const Py_ssize_t *index, int n_rows, const float *centers,
                                           Py_ssize_t n_clusters, Py_ssize_t n_features, int *best,
                                           int *next_best, double *first, double *second,
                                           double *third);
typedef void (*mbk_nearest_three_double_fn)(const double *data, Py_ssize_t row_stride, Py_ssize_t col_stride,
                                            const Py_ssize_t *index, int n_rows, const double *centers,
                                            Py_ssize_t n_clusters, Py_ssize_t n_features, int *best,
                                            int *next_best, double *first, double *second,
                                            double *third);
/* Nested mini-batch k-means' bound tests (see MBK_DEFINE_BOUND_TESTS in _tiles.h). */
typedef Py_ssize_t (*mbk_bound_tests_fn)(Py_ssize_t n, const Py_ssize_t *positions, Py_ssize_t first,
                                         const int *labels, const int *runner, double *upper,
                                         double *lower, double *rest, unsigned char *aside,
                                         const double *moves, const double *drops,
                                         const double *half_gap, Py_ssize_t n_clusters,
                                         unsigned char *fail, Py_ssize_t *failed);
/* Whether x[0], ..., x[n - 1] are all finite (neither NaN nor infinite). */
typedef int (*mbk_all_finite_float_fn)(const float *x, Py_ssize_t n);
typedef int (*mbk_all_finite_double_fn)(const double *x, Py_ssize_t n);

/* One instruction-set variant: its tile height, its padding unit, its kernels. */
typedef struct {
    const char *name;
    int tile_rows;             /* MR */
    Py_ssize_t lanes_float;    /* n_padded is a multiple of this, for float data */
    Py_ssize_t lanes_double;
    Py_ssize_t block_float;    /* centers per register block: lanes x vectors per block */
    Py_ssize_t block_double;
    mbk_nearest_float_fn nearest_float;
    mbk_nearest_double_fn nearest_double;
    mbk_distance_float_fn distance_float;
    mbk_distance_double_fn distance_double;
    mbk_add_rows_float_fn add_rows_float;
    mbk_add_rows_double_fn add_rows_double;
    mbk_all_finite_float_fn all_finite_float;
    mbk_all_finite_double_fn all_finite_double;
    mbk_row_distances_float_fn row_distances_float;
    mbk_row_distances_double_fn row_distances_double;
    mbk_candidates_float_fn candidates_float;
    mbk_candidates_double_fn candidates_double;
    Py_ssize_t candidate_rows;  /* rows per block of the candidates kernel: pad xt to this */
    mbk_nearest_few_float_fn nearest_few_float;
    mbk_nearest_few_double_fn nearest_few_double;
    mbk_nearest_three_float_fn nearest_three_float;
    mbk_nearest_three_double_fn nearest_three_double;
    mbk_bound_tests_fn bound_tests;
} mbk_variant;

/* Ask for every cache line of [p, p + n_bytes), at most the first 256 bytes: a row that
 * starts inside a line ends in the next one (NumPy aligns arrays to 16 bytes, so a 64-byte
 * row spans two lines), and the hardware prefetcher follows a longer row once it is read.
 * Into L2 (prefetcht1), not L1: with scattered rows in flight by the hundred, prefetches
 * into L1 wait for its few fill buffers and stall the arithmetic behind them. */
static inline void mbk_prefetch_span(const void *p, Py_ssize_t n_bytes) {
#if defined(__GNUC__) || defined(__clang__)
    const char *line = (const char *)((size_t)p & ~(size_t)63);
    const char *end = (const char *)p + (n_bytes < 256 ? n_bytes : 256);
    for (; line < end; line += 64) __builtin_prefetch(line, 0, 2);
#else
    (void)p;
    (void)n_bytes;
#endif
}

/* Ask for the cache lines of a row of n_features values of size item_bytes, col_stride items
 * apart: its span for contiguous values (see mbk_prefetch_span), else the line of each of its
 * first 16 values (a Fortran-ordered row's values lie a column apart; the span from the
 * first value would hold none of the others). */
static inline void mbk_prefetch_row(const void *p, Py_ssize_t n_features, Py_ssize_t col_stride,
                                    Py_ssize_t item_bytes) {
    if (col_stride == 1) {
        mbk_prefetch_span(p, n_features * item_bytes);
        return;
    }
#if defined(__GNUC__) || defined(__clang__)
    for (Py_ssize_t f = 0; f < n_features && f < 16; f++)
        __builtin_prefetch((const char *)p + f * col_stride * item_bytes);
#endif
}

#endif /* MBK_KERNELS_H */

/* The CSR kernel family's inner loops, per instruction set (compiled into _sparse alone).
 *
 * Two loops carry a sparse step: a row's dot products with every center (one run of n_padded
 * center values per stored entry, feature-major) and the update of a range of features of
 * every center. Both are plain loops over the centers, which the compiler vectorizes for the
 * instruction set of each function's target attribute (SSE2, AVX2, AVX-512); the variant in
 * use follows the dense family's (mbk._dense.isa(), set with _tuning.use_isa).
 *
 * Rounding: every value is computed the same way in every variant. Each center's dot product
 * adds the entries' products in stored order, and the update scales, adds and rescales in
 * scikit-learn's order; the vectors only hold several centers at once. The module is built
 * with -ffp-contract=off and these functions are not given FMA, so no multiply and add are
 * fused (that would change scikit-learn's bits).
 */
#ifndef MBK_CSR_TILES_H
#define MBK_CSR_TILES_H

#include <stddef.h>
#include <stdint.h>
#include <Python.h>

/* Request the run of the entry `ahead` places after p, which may be in the next row
 * (next[0 .. n_next)): the runs are scattered over the centers, so the hardware cannot guess
 * them, and without this the pass waits for memory at every entry. */
#define MBK_CSR_PREFETCH(T, indices, p, end, next, n_next, ahead, values, n_padded)           \
    do {                                                                                      \
        Py_ssize_t q_ = (p) + (ahead), o_;                                                    \
        Py_ssize_t column_ = q_ < (end) ? (Py_ssize_t)(indices)[q_]                           \
                             : (q_ - (end) < (n_next) ? (Py_ssize_t)(next)[q_ - (end)] : -1); \
        if (column_ >= 0) {                                                                   \
            const char *run_ = (const char *)((values) + column_ * (n_padded));               \
            for (o_ = 0; o_ < (Py_ssize_t)((n_padded) * sizeof(T)); o_ += 64)                 \
                __builtin_prefetch(run_ + o_);                                                \
        }                                                                                     \
    } while (0)

/* dots[j] = sum over the stored entries p of [start, end), in order, of
 * values[indices[p] * n_padded + j] * data[p], for j < n_padded; the runs of the entries
 * `ahead` places on are requested meanwhile (next: the next row's n_next indices). */
#define MBK_DEFINE_CSR_DOTS(NAME, T, IT, ATTRS)                                               \
    ATTRS static void NAME(const T *restrict data, const IT *restrict indices,                \
                           Py_ssize_t start, Py_ssize_t end, const IT *restrict next,         \
                           Py_ssize_t n_next, Py_ssize_t ahead, const T *restrict values,     \
                           Py_ssize_t n_padded, T *restrict dots) {                           \
        Py_ssize_t p, j;                                                                      \
        for (j = 0; j < n_padded; j++) dots[j] = 0;                                           \
        for (p = start; p < end; p++) {                                                       \
            const T x = data[p];                                                              \
            const T *restrict column = values + (Py_ssize_t)indices[p] * n_padded;            \
            MBK_CSR_PREFETCH(T, indices, p, end, next, n_next, ahead, values, n_padded);      \
            for (j = 0; j < n_padded; j++) dots[j] += column[j] * x;                          \
        }                                                                                     \
    }

/* Features [start, end) of every center (a range of at most RANGE features): feature f's
 * run, row = values + f * n_padded, becomes (row * scale_in + its entries) * alpha, in
 * double; partial[j] = the sum over the range, in order, of the new values squared (in T).
 * The range's entries come in batch order (then stored order): entry e adds entry_values[e]
 * to acc[slots[e]], slot (f - start) * n_padded + j. acc holds the whole range, so each
 * feature's run is read from memory once, scaled, added to and rescaled from cache. */
#define MBK_DEFINE_CSR_UPDATE(NAME, T, ATTRS)                                                 \
    ATTRS static void NAME(T *restrict values, Py_ssize_t n_padded, Py_ssize_t start,         \
                           Py_ssize_t end, const int32_t *restrict slots,                     \
                           const T *restrict entry_values, Py_ssize_t n_entries,              \
                           const double *restrict scale_in, const double *restrict alpha,     \
                           double *restrict acc, T *restrict partial) {                       \
        Py_ssize_t f, j, e;                                                                   \
        for (f = start; f < end; f++) {                                                       \
            const T *restrict row = values + f * n_padded;                                    \
            double *restrict sums = acc + (f - start) * n_padded;                             \
            for (j = 0; j < n_padded; j++) sums[j] = row[j] * scale_in[j];                    \
        }                                                                                     \
        for (e = 0; e < n_entries; e++) acc[slots[e]] += entry_values[e];                     \
        for (j = 0; j < n_padded; j++) partial[j] = 0;                                        \
        for (f = start; f < end; f++) {                                                       \
            T *restrict row = values + f * n_padded;                                          \
            const double *restrict sums = acc + (f - start) * n_padded;                       \
            for (j = 0; j < n_padded; j++) {                                                  \
                T v = (T)(sums[j] * alpha[j]);                                                \
                row[j] = v;                                                                   \
                partial[j] = partial[j] + v * v;                                              \
            }                                                                                 \
        }                                                                                     \
    }

/* The same for float64 centers, in place: the run is its own double accumulator (what
 * scikit-learn does), so a range's block is the only block in cache. */
#define MBK_DEFINE_CSR_UPDATE_IN_PLACE(NAME, ATTRS)                                           \
    ATTRS static void NAME(double *restrict values, Py_ssize_t n_padded, Py_ssize_t start,    \
                           Py_ssize_t end, const int32_t *restrict slots,                     \
                           const double *restrict entry_values, Py_ssize_t n_entries,         \
                           const double *restrict scale_in, const double *restrict alpha,     \
                           double *restrict acc, double *restrict partial) {                  \
        Py_ssize_t f, j, e;                                                                   \
        double *restrict block = values + start * n_padded;                                   \
        (void)acc;                                                                            \
        for (f = start; f < end; f++) {                                                       \
            double *restrict row = values + f * n_padded;                                     \
            for (j = 0; j < n_padded; j++) row[j] = row[j] * scale_in[j];                     \
        }                                                                                     \
        for (e = 0; e < n_entries; e++) block[slots[e]] += entry_values[e];                   \
        for (j = 0; j < n_padded; j++) partial[j] = 0;                                        \
        for (f = start; f < end; f++) {                                                       \
            double *restrict row = values + f * n_padded;                                     \
            for (j = 0; j < n_padded; j++) {                                                  \
                double v = row[j] * alpha[j];                                                 \
                row[j] = v;                                                                   \
                partial[j] = partial[j] + v * v;                                              \
            }                                                                                 \
        }                                                                                     \
    }

#define MBK_DEFINE_CSR_VARIANT(ISA, ATTRS)                                                    \
    MBK_DEFINE_CSR_DOTS(mbk_csr_dots_float_i32_##ISA, float, int32_t, ATTRS)                  \
    MBK_DEFINE_CSR_DOTS(mbk_csr_dots_float_i64_##ISA, float, int64_t, ATTRS)                  \
    MBK_DEFINE_CSR_DOTS(mbk_csr_dots_double_i32_##ISA, double, int32_t, ATTRS)                \
    MBK_DEFINE_CSR_DOTS(mbk_csr_dots_double_i64_##ISA, double, int64_t, ATTRS)                \
    MBK_DEFINE_CSR_UPDATE(mbk_csr_update_float_##ISA, float, ATTRS)                           \
    MBK_DEFINE_CSR_UPDATE_IN_PLACE(mbk_csr_update_double_##ISA, ATTRS)

MBK_DEFINE_CSR_VARIANT(baseline, )
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MBK_CSR_X86 1
MBK_DEFINE_CSR_VARIANT(avx2, __attribute__((target("avx2"))))
MBK_DEFINE_CSR_VARIANT(avx512, __attribute__((target("avx512f"))))
#endif

/* level: 2 AVX-512, 1 AVX2, 0 baseline (mbk_csr_level). */
#ifdef MBK_CSR_X86
#define MBK_CSR_DISPATCH(NAME, level, ...)                                                    \
    do {                                                                                      \
        if ((level) == 2) NAME##_avx512(__VA_ARGS__);                                         \
        else if ((level) == 1) NAME##_avx2(__VA_ARGS__);                                      \
        else NAME##_baseline(__VA_ARGS__);                                                    \
    } while (0)
#else
#define MBK_CSR_DISPATCH(NAME, level, ...) NAME##_baseline(__VA_ARGS__)
#endif

#define MBK_CSR_DOTS_BODY(NAME, T, IT)                                                        \
    static inline void NAME(int level, const void *data, const void *indices,                 \
                            Py_ssize_t start, Py_ssize_t end, const void *next,               \
                            Py_ssize_t n_next, Py_ssize_t ahead, const void *values,          \
                            Py_ssize_t n_padded, void *dots) {                                \
        MBK_CSR_DISPATCH(NAME, level, (const T *)data, (const IT *)indices, start, end,       \
                         (const IT *)next, n_next, ahead, (const T *)values, n_padded,        \
                         (T *)dots);                                                          \
    }
MBK_CSR_DOTS_BODY(mbk_csr_dots_float_i32, float, int32_t)
MBK_CSR_DOTS_BODY(mbk_csr_dots_float_i64, float, int64_t)
MBK_CSR_DOTS_BODY(mbk_csr_dots_double_i32, double, int32_t)
MBK_CSR_DOTS_BODY(mbk_csr_dots_double_i64, double, int64_t)

#define MBK_CSR_UPDATE_BODY(NAME, T)                                                          \
    static inline void NAME(int level, void *values, Py_ssize_t n_padded, Py_ssize_t start,   \
                            Py_ssize_t end, const int32_t *slots, const void *entry_values,   \
                            Py_ssize_t n_entries, const double *scale_in,                     \
                            const double *alpha, double *acc, void *partial) {                \
        MBK_CSR_DISPATCH(NAME, level, (T *)values, n_padded, start, end, slots,               \
                         (const T *)entry_values, n_entries, scale_in, alpha, acc,            \
                         (T *)partial);                                                       \
    }
MBK_CSR_UPDATE_BODY(mbk_csr_update_float, float)
MBK_CSR_UPDATE_BODY(mbk_csr_update_double, double)

/* The entry points the CSR kernels call: the float type and the index width picked at run
 * time from the arguments' types (fused in Cython), then the instruction set. */
static inline void mbk_csr_dots(int level, int is_double, int wide_index, const void *data,
                                const void *indices, Py_ssize_t start, Py_ssize_t end,
                                const void *next, Py_ssize_t n_next, Py_ssize_t ahead,
                                const void *values, Py_ssize_t n_padded, void *dots) {
    if (is_double && wide_index)
        mbk_csr_dots_double_i64(level, data, indices, start, end, next, n_next, ahead, values,
                                n_padded, dots);
    else if (is_double)
        mbk_csr_dots_double_i32(level, data, indices, start, end, next, n_next, ahead, values,
                                n_padded, dots);
    else if (wide_index)
        mbk_csr_dots_float_i64(level, data, indices, start, end, next, n_next, ahead, values,
                               n_padded, dots);
    else
        mbk_csr_dots_float_i32(level, data, indices, start, end, next, n_next, ahead, values,
                               n_padded, dots);
}

static inline void mbk_csr_update(int level, int is_double, void *values, Py_ssize_t n_padded,
                                  Py_ssize_t start, Py_ssize_t end, const int32_t *slots,
                                  const void *entry_values, Py_ssize_t n_entries,
                                  const double *scale_in, const double *alpha, double *acc,
                                  void *partial) {
    if (is_double)
        mbk_csr_update_double(level, values, n_padded, start, end, slots, entry_values,
                              n_entries, scale_in, alpha, acc, partial);
    else
        mbk_csr_update_float(level, values, n_padded, start, end, slots, entry_values,
                             n_entries, scale_in, alpha, acc, partial);
}

/* The level of the variant named `name` ("avx512", "avx2", anything else: baseline). */
static inline int mbk_csr_level(const char *name) {
#ifdef MBK_CSR_X86
    if (name[0] == 'a' && name[1] == 'v' && name[2] == 'x') return name[3] == '5' ? 2 : 1;
#endif
    (void)name;
    return 0;
}

/* ---- the layout: row-major centers to feature-major and back, a group of centers at a time
 * (the centers whose values for one feature fill a cache line), in tiles of as many
 * features: each tile is read and written within L1. */

#define MBK_DEFINE_CSR_LAYOUT(T, RANGE)                                                       \
    /* Centers first .. first + lanes into values; their squared norms (partial sums over    \
     * ranges of RANGE features in order, added in range order) into sq_norms. */             \
    static void mbk_csr_load_group_##T(const T *restrict rows, Py_ssize_t n_clusters,         \
                                       Py_ssize_t n_features, T *restrict values,             \
                                       Py_ssize_t n_padded, Py_ssize_t first,                 \
                                       T *restrict sq_norms) {                                \
        enum { LANES = 64 / sizeof(T) };                                                      \
        T norm[LANES], partial[LANES];                                                        \
        Py_ssize_t start, f0, ff, jj, n_tile;                                                 \
        /* (the last group may be narrower: fewer centers than a line holds are unpadded) */  \
        Py_ssize_t width = n_padded - first < LANES ? n_padded - first : LANES;               \
        for (jj = 0; jj < LANES; jj++) norm[jj] = 0;                                          \
        for (start = 0; start < n_features; start += RANGE) {                                 \
            Py_ssize_t end = start + RANGE < n_features ? start + RANGE : n_features;         \
            for (jj = 0; jj < width; jj++) partial[jj] = 0;                                   \
            for (f0 = start; f0 < end; f0 += LANES) {                                         \
                n_tile = end - f0 < LANES ? end - f0 : LANES;                                 \
                for (jj = 0; jj < width; jj++) {                                              \
                    Py_ssize_t j = first + jj;                                                \
                    T *out = values + f0 * n_padded + j;                                      \
                    if (j < n_clusters) {                                                     \
                        const T *in = rows + j * n_features + f0;                             \
                        for (ff = 0; ff < n_tile; ff++) out[ff * n_padded] = in[ff];          \
                    } else {                                                                  \
                        for (ff = 0; ff < n_tile; ff++) out[ff * n_padded] = 0;               \
                    }                                                                         \
                }                                                                             \
                for (ff = 0; ff < n_tile; ff++) {                                             \
                    const T *line = values + (f0 + ff) * n_padded + first;                    \
                    for (jj = 0; jj < width; jj++)                                            \
                        partial[jj] = partial[jj] + line[jj] * line[jj];                      \
                }                                                                             \
            }                                                                                 \
            for (jj = 0; jj < width; jj++) norm[jj] = norm[jj] + partial[jj];                 \
        }                                                                                     \
        for (jj = 0; jj < width; jj++) sq_norms[first + jj] = norm[jj];                       \
    }                                                                                         \
    /* Centers first .. first + lanes (those below n_clusters) from values into rows. */      \
    static void mbk_csr_store_group_##T(const T *restrict values, Py_ssize_t n_padded,        \
                                        Py_ssize_t first, Py_ssize_t n_clusters,              \
                                        Py_ssize_t n_features, T *restrict rows) {            \
        enum { LANES = 64 / sizeof(T) };                                                      \
        Py_ssize_t f0, ff, jj, n_tile;                                                        \
        Py_ssize_t n_lanes = n_clusters - first < LANES ? n_clusters - first : LANES;         \
        for (f0 = 0; f0 < n_features; f0 += LANES) {                                          \
            n_tile = n_features - f0 < LANES ? n_features - f0 : LANES;                       \
            for (jj = 0; jj < n_lanes; jj++) {                                                \
                const T *in = values + f0 * n_padded + first + jj;                            \
                T *out = rows + (first + jj) * n_features + f0;                               \
                for (ff = 0; ff < n_tile; ff++) out[ff] = in[ff * n_padded];                  \
            }                                                                                 \
        }                                                                                     \
    }

MBK_DEFINE_CSR_LAYOUT(float, 256)
MBK_DEFINE_CSR_LAYOUT(double, 256)

#endif /* MBK_CSR_TILES_H */

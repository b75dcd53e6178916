/* Register-blocked micro-kernels of mbk, chosen at import for the CPU (runtime dispatch).
 *
 * A tile is MR data rows against the centers, MR rows at a time and NV vectors of centers at
 * a time, the MR x NV accumulators held in vector registers (the GEMM micro-kernel shape, with
 * the argmin fused in). The rows come as they are, row r at x + r * x_stride (a contiguous
 * batch is read in place; the caller copies scattered rows into a small buffer first), and
 * the centers transposed and padded, ct[f * n_padded + j], so one vector load reads feature
 * f of `lanes` consecutive centers and one broadcast reads feature f of a row.
 *
 * Written with GCC/Clang vector extensions, so one source serves SSE2, AVX2, AVX-512 and ARM;
 * the one intrinsic widens floats to doubles on x86 (MBK_WIDEN_X86), where GCC's lowering of
 * the portable conversion is slow. The x86-64 variants are compiled with per-function target
 * attributes and picked with __builtin_cpu_supports, never with -march=native, so a wheel
 * runs everywhere.
 *
 * Rounding: each (row, center) dot product is accumulated feature by feature in order, in
 * every variant, so the thread count never changes a result. The AVX2 and AVX-512 variants
 * fuse multiply and add (FMA): on those machines a near-tie between two centers can resolve
 * differently than on a machine without FMA. Inertia (computed elsewhere) and the center
 * update's sums (add_rows) use no FMA and do not depend on the variant.
 */
#ifndef MBK_TILES_H
#define MBK_TILES_H

#include "_kernels.h"

#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 9
#error "mbk's kernels need GCC 9 or later (__builtin_convertvector), or Clang"
#endif

#if defined(__GNUC__) || defined(__clang__)

/* 0, 1, 2, ...: lane numbers, loaded as a vector constant (MBK_LANE_NUMBERS). Built with a
 * loop instead, GCC assembles the vector lane by lane on every call. */
static const int mbk_lane_numbers_int[16] __attribute__((aligned(64))) = {
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
static const long long mbk_lane_numbers_long[16] __attribute__((aligned(64))) = {
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
#define MBK_LANE_NUMBERS(VI, IT, out)                                                         \
    memcpy(&(out), sizeof(IT) == 4 ? (const void *)mbk_lane_numbers_int                       \
                                   : (const void *)mbk_lane_numbers_long, sizeof(VI))

/* `out`, a vector of doubles, from the values of type T (float or double) at `src`. GCC 12
 * lowers __builtin_convertvector from floats to doubles as two half-width converts, an extract
 * and an insert (three of the five on the shuffle port). The x86 variants widen with the
 * intrinsic instead: one vcvtps2pd, its load folded in (the WIDEN of MBK_DEFINE_VARIANT). */
#define MBK_WIDEN_PORTABLE(VD, T, src, out)                                                   \
    do {                                                                                      \
        typedef T narrow_t_ __attribute__((vector_size(sizeof(VD) / 8 * sizeof(T))));         \
        narrow_t_ narrow_;                                                                    \
        memcpy(&narrow_, (src), sizeof narrow_);                                              \
        (out) = __builtin_convertvector(narrow_, VD);                                         \
    } while (0)

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#define MBK_WIDEN_X86(VD, T, src, out, INTRINSIC, LOAD)                                       \
    do {                                                                                      \
        if (sizeof(T) == sizeof(float)) {                                                     \
            __typeof__(INTRINSIC(LOAD((const float *)(src)))) wide_ =                         \
                INTRINSIC(LOAD((const float *)(src)));                                        \
            memcpy(&(out), &wide_, sizeof(out));                                              \
        } else {                                                                              \
            MBK_WIDEN_PORTABLE(VD, T, src, out);                                              \
        }                                                                                     \
    } while (0)
#define MBK_WIDEN_AVX2(VD, T, src, out)                                                       \
    MBK_WIDEN_X86(VD, T, src, out, _mm256_cvtps_pd, _mm_loadu_ps)
#define MBK_WIDEN_AVX512(VD, T, src, out)                                                     \
    MBK_WIDEN_X86(VD, T, src, out, _mm512_cvtps_pd, _mm256_loadu_ps)
#endif

/* Select a where mask is set, else b (C has no vector ?:). */
#define MBK_SELECT(V, VI, mask, a, b) ((V)(((VI)(a) & (mask)) | ((VI)(b) & ~(mask))))

/* Lanes picked by indices known only at run time: lane l of MBK_SHUFFLE2 is lane mask[l] of
 * the 2 * lanes lanes of a then b, and of MBK_PERMUTE lane mask[l] of a. GCC's __builtin_shuffle
 * does this; Clang has no such builtin (its __builtin_shufflevector takes constant indices), so
 * there the lanes are moved one by one. Either way only values move: the results are the same
 * bits. */
#if defined(__GNUC__) && !defined(__clang__)
#define MBK_SHUFFLE2(V, a, b, mask) __builtin_shuffle((a), (b), (mask))
#define MBK_PERMUTE(V, a, mask) __builtin_shuffle((a), (mask))
#else
#define MBK_SHUFFLE2(V, a, b, mask)                                                           \
    __extension__({                                                                           \
        V sh_a_ = (a), sh_b_ = (b), sh_out_;                                                  \
        const int sh_n_ = (int)(sizeof(V) / sizeof(sh_a_[0]));                                \
        for (int sh_l_ = 0; sh_l_ < sh_n_; sh_l_++) {                                         \
            int sh_i_ = (int)(mask)[sh_l_] & (2 * sh_n_ - 1);                                 \
            sh_out_[sh_l_] = sh_i_ < sh_n_ ? sh_a_[sh_i_] : sh_b_[sh_i_ - sh_n_];             \
        }                                                                                     \
        sh_out_;                                                                              \
    })
#define MBK_PERMUTE(V, a, mask)                                                               \
    __extension__({                                                                           \
        V sh_a_ = (a), sh_out_;                                                               \
        const int sh_n_ = (int)(sizeof(V) / sizeof(sh_a_[0]));                                \
        for (int sh_l_ = 0; sh_l_ < sh_n_; sh_l_++)                                           \
            sh_out_[sh_l_] = sh_a_[(int)(mask)[sh_l_] & (sh_n_ - 1)];                         \
        sh_out_;                                                                              \
    })
#endif

/* ---- the shared inner loop ---------------------------------------------------------------- */

/* acc[r][v] (MR rows x NVB vectors of centers from center jb) accumulates ADD(acc, x, c) over
 * the features in order: the register-blocked loop every tile kernel runs. */
#define MBK_ACCUMULATE(T, V, MR, NVB, ADD, acc)                                               \
    do {                                                                                      \
        const T *c_ = ct + jb, *x_ = x;                                                       \
        for (int r_ = 0; r_ < MR; r_++)                                                       \
            for (int v_ = 0; v_ < NVB; v_++) acc[r_][v_] = (V){0};                            \
        for (Py_ssize_t f_ = 0; f_ < n_features; f_++, c_ += n_padded, x_++) {                \
            V cv_[NVB];                                                                       \
            for (int v_ = 0; v_ < NVB; v_++) memcpy(&cv_[v_], c_ + v_ * lanes, sizeof(V));    \
            for (int r_ = 0; r_ < MR; r_++)                                                   \
                for (int v_ = 0; v_ < NVB; v_++)                                              \
                    ADD(V, acc[r_][v_], x_[r_ * x_stride], cv_[v_]);                          \
        }                                                                                     \
    } while (0)

#define MBK_ADD_PRODUCT(V, acc, x, c) ((acc) += (x) * (c))
#define MBK_ADD_SQUARED_DIFFERENCE(V, acc, x, c)                                              \
    do {                                                                                      \
        V diff_ = (x) - (c);                                                                  \
        (acc) += diff_ * diff_;                                                               \
    } while (0)

/* ---- nearest center --------------------------------------------------------------------- */

/* Fold the first 2 * HALF bytes of (dist, at) in halves: lane l keeps the better of lanes l
 * and l + HALF / sizeof(T) (smaller distance, or equal distance and lower index). */
#define MBK_FOLD_HALVES(T, IT, HALF, dist, at)                                                \
    do {                                                                                      \
        typedef T H_ __attribute__((vector_size(HALF)));                                      \
        typedef IT HI_ __attribute__((vector_size(HALF)));                                    \
        H_ low_, high_;                                                                       \
        HI_ low_at_, high_at_, take_;                                                         \
        memcpy(&low_, (dist), HALF);                                                          \
        memcpy(&high_, (const char *)(dist) + (HALF), HALF);                                  \
        memcpy(&low_at_, (at), HALF);                                                         \
        memcpy(&high_at_, (const char *)(at) + (HALF), HALF);                                 \
        take_ = (high_ < low_) | ((high_ == low_) & (high_at_ < low_at_));                    \
        low_ = MBK_SELECT(H_, HI_, take_, high_, low_);                                       \
        low_at_ = (high_at_ & take_) | (low_at_ & ~take_);                                    \
        memcpy((dist), &low_, HALF);                                                          \
        memcpy((at), &low_at_, HALF);                                                         \
    } while (0)

/* One block of NVB vectors of centers starting at center jb, for the MR rows of the tile:
 * accumulate the dot products, then fold ||c||^2 - 2 x.c into each lane's running minimum.
 * A lane only ever sees increasing center indices and replaces its best on a strict <, so
 * the final lowest-index tie-break below is the same as a sequential strict-< scan. */
#define MBK_NEAREST_BLOCK(T, V, VI, IT, MR, NVB)                                              \
    do {                                                                                      \
        V acc_[MR][NVB];                                                                      \
        MBK_ACCUMULATE(T, V, MR, NVB, MBK_ADD_PRODUCT, acc_);                                 \
        for (int v_ = 0; v_ < NVB; v_++) {                                                    \
            V norm_;                                                                          \
            VI index_ = lane_index + (IT)(jb + v_ * lanes);                                   \
            memcpy(&norm_, norms + jb + v_ * lanes, sizeof(V));                               \
            for (int r_ = 0; r_ < MR; r_++) {                                                 \
                V dist_ = norm_ - (T)2 * acc_[r_][v_];                                        \
                VI closer_ = dist_ < best[r_];                                                \
                best[r_] = MBK_SELECT(V, VI, closer_, dist_, best[r_]);                       \
                best_at[r_] = (index_ & closer_) | (best_at[r_] & ~closer_);                  \
            }                                                                                 \
        }                                                                                     \
        jb += NVB * lanes;                                                                    \
    } while (0)

/* Across lanes, for each of the MR rows: the smallest distance in its vector, the lowest index
 * among equals. */
#if defined(__GNUC__) && !defined(__clang__)
/* GCC: the rows are reduced together, `lanes` rows at a time, in a tree of two-vector
 * shuffles. At a level where each vector holds rows in segments of m lanes, two vectors A
 * and B become one holding all their rows in segments of m / 2: one shuffle takes every
 * segment's low half (A's rows, then B's), another the high halves, and a lane-wise
 * compare keeps the better of the two. After log2(lanes) levels, lane t holds row t. The
 * comparison is symmetric (smaller distance, or equal distance and lower index), so the
 * order of the tree does not matter. No branch, no store to memory, no dependency chain
 * per row. */
#define MBK_ACROSS_LANES(T, IT, V, VI, MR, best, best_at, best_dist, best_index)              \
    do {                                                                                      \
        for (int g_ = 0; g_ < MR; g_ += lanes) {                                              \
            V d_[lanes];                                                                      \
            VI i_[lanes];                                                                     \
            _Pragma("GCC unroll 16") for (int r_ = 0; r_ < lanes; r_++) {                     \
                if (g_ + r_ < MR) {                                                           \
                    d_[r_] = best[g_ + r_];                                                   \
                    i_[r_] = best_at[g_ + r_];                                                \
                } else {                                                                      \
                    d_[r_] = (V){0} + (T)INFINITY;                                            \
                    i_[r_] = (VI){0};                                                         \
                }                                                                             \
            }                                                                                 \
            VI lane_;                                                                         \
            MBK_LANE_NUMBERS(VI, IT, lane_);                                                  \
            _Pragma("GCC unroll 8") for (int m_ = lanes; m_ > 1; m_ /= 2) {                   \
                int rows_ = lanes / m_, half_ = m_ / 2;                                       \
                /* Lane t reads segment t / half_ (A's rows, then B's: in the concatenation   \
                 * of A and B, segment s starts at s * m_), low half or high half. */         \
                VI low_ = lane_ / (IT)half_ * (IT)m_ + lane_ % (IT)half_;                     \
                VI high_ = low_ + (IT)half_;                                                  \
                /* lanes / rows_ vectors at this level, combined in pairs */                  \
                _Pragma("GCC unroll 8") for (int v_ = 0; v_ < lanes / 2 / rows_; v_++) {      \
                    V p_ = __builtin_shuffle(d_[2 * v_], d_[2 * v_ + 1], low_);               \
                    V q_ = __builtin_shuffle(d_[2 * v_], d_[2 * v_ + 1], high_);              \
                    VI pi_ = __builtin_shuffle(i_[2 * v_], i_[2 * v_ + 1], low_);             \
                    VI qi_ = __builtin_shuffle(i_[2 * v_], i_[2 * v_ + 1], high_);            \
                    VI take_ = (q_ < p_) | ((q_ == p_) & (qi_ < pi_));                        \
                    d_[v_] = MBK_SELECT(V, VI, take_, q_, p_);                                \
                    i_[v_] = (qi_ & take_) | (pi_ & ~take_);                                  \
                }                                                                             \
            }                                                                                 \
            for (int t_ = 0; t_ < lanes && g_ + t_ < MR; t_++) {                              \
                best_dist[g_ + t_] = d_[0][t_];                                               \
                best_index[g_ + t_] = (int)i_[0][t_];                                         \
            }                                                                                 \
        }                                                                                     \
    } while (0)
#else
/* Other compilers: each row alone, wide vectors folded in halves (vector compare and
 * select), then the last 16 bytes scanned without branches: which lane wins is
 * data-dependent and a branch would mispredict. */
#define MBK_ACROSS_LANES(T, IT, V, VI, MR, best, best_at, best_dist, best_index)              \
    do {                                                                                      \
        for (int r = 0; r < MR; r++) {                                                        \
            T fold_dist[lanes];                                                               \
            IT fold_at[lanes];                                                                \
            memcpy(fold_dist, &best[r], sizeof(V));                                           \
            memcpy(fold_at, &best_at[r], sizeof(V));                                          \
            if (sizeof(V) >= 64) MBK_FOLD_HALVES(T, IT, 32, fold_dist, fold_at);              \
            if (sizeof(V) >= 32) MBK_FOLD_HALVES(T, IT, 16, fold_dist, fold_at);              \
            T dist = fold_dist[0];                                                            \
            IT at = fold_at[0];                                                               \
            for (int l = 1; l < (int)(16 / sizeof(T)); l++) {                                 \
                T lane_dist = fold_dist[l];                                                   \
                IT lane_at = fold_at[l];                                                      \
                int better = (lane_dist < dist) | ((lane_dist == dist) & (lane_at < at));     \
                dist = better ? lane_dist : dist;                                             \
                at = better ? lane_at : at;                                                   \
            }                                                                                 \
            best_dist[r] = dist;                                                              \
            best_index[r] = (int)at;                                                          \
        }                                                                                     \
    } while (0)
#endif

#define MBK_DEFINE_NEAREST(NAME, T, IT, VBYTES, MR, NV, ATTRS)                                \
    ATTRS static void NAME(const T *x, Py_ssize_t x_stride, const T *ct, const T *norms,      \
                           Py_ssize_t n_features,                                             \
                           Py_ssize_t n_padded, int *best_index, T *best_dist) {              \
        typedef T V __attribute__((vector_size(VBYTES)));                                     \
        typedef IT VI __attribute__((vector_size(VBYTES)));                                   \
        enum { lanes = VBYTES / sizeof(T) };                                                  \
        V best[MR];                                                                           \
        VI best_at[MR], lane_index;                                                           \
        Py_ssize_t jb = 0;                                                                    \
        MBK_LANE_NUMBERS(VI, IT, lane_index);                                                 \
        for (int r = 0; r < MR; r++) {                                                        \
            for (int l = 0; l < lanes; l++) best[r][l] = (T)INFINITY;                         \
            best_at[r] = (VI){0};                                                             \
        }                                                                                     \
        while (jb + NV * lanes <= n_padded) MBK_NEAREST_BLOCK(T, V, VI, IT, MR, NV);          \
        while (jb < n_padded) MBK_NEAREST_BLOCK(T, V, VI, IT, MR, 1);                         \
        MBK_ACROSS_LANES(T, IT, V, VI, MR, best, best_at, best_dist, best_index);             \
    }

/* ---- rows in vector lanes ---------------------------------------------------------------- */

/* x[f] for f < D: feature f of `lanes` consecutive contiguous rows of D values from src
 * (lane l: src[l * D + f]), from D whole-vector loads and D - 1 two-vector shuffles per
 * feature (masks[f][k - 1] merges vector k in). Loading value by value instead, GCC merges
 * each into its vector in turn: a chain of dependent inserts. The masks are built once per
 * call by MBK_TRANSPOSE_MASKS (GCC does not fold them to constants). */
#define MBK_TRANSPOSE_MASKS(VI, IT, D, n_lanes, masks)                                        \
    do {                                                                                      \
        for (int f_ = 0; f_ < (D); f_++)                                                      \
            for (int k_ = 1; k_ < (D); k_++)                                                  \
                for (int l_ = 0; l_ < (n_lanes); l_++) {                                      \
                    int at_ = l_ * (int)(D) + f_; /* the value's place in the D vectors */    \
                    int from_ = at_ / (n_lanes), keep_ = k_ == 1 ? at_ % (n_lanes) : l_;      \
                    /* k == 1 shuffles vectors 0 and 1; later ones the result and vector k */ \
                    (masks)[f_][k_ - 1][l_] =                                                 \
                        (IT)(from_ == k_ ? (n_lanes) + at_ % (n_lanes)                        \
                                         : from_ < k_ ? keep_ : 0);                           \
                }                                                                             \
    } while (0)
#define MBK_TRANSPOSE_ROWS(V, D, src, masks, x)                                               \
    do {                                                                                      \
        enum { n_lanes_ = sizeof(V) / sizeof((src)[0]) };                                     \
        V v_[MBK_MAX_FEW_FEATURES];                                                           \
        for (int k_ = 0; k_ < (D); k_++) memcpy(&v_[k_], (src) + k_ * n_lanes_, sizeof(V));   \
        for (int f_ = 0; f_ < (D); f_++) {                                                    \
            V cur_ = v_[0];                                                                   \
            for (int k_ = 1; k_ < (D); k_++)                                                  \
                cur_ = MBK_SHUFFLE2(V, k_ == 1 ? v_[0] : cur_, v_[k_], (masks)[f_][k_ - 1]);  \
            (x)[f_] = cur_;                                                                   \
        }                                                                                     \
    } while (0)

/* ---- nearest center among few centers, for rows with few features: rows in lanes ---------- */

/* With fewer centers than a register block the tiles would mostly multiply padding. Here each
 * vector holds one feature of `lanes` rows instead, and every center is compared with all of
 * them. The rows are contiguous (X in C order, or a batch's rows copied together by the
 * caller: loaded value by value from all over X, 8 rows cost 24 dependent inserts) and are
 * loaded whole and transposed in registers. The arithmetic per (row, center) is the tiles'
 * without FMA: dot = sum_f x_f * c_f in feature order, dist = ||c||^2 - 2 dot, the lowest
 * index among equal distances: the same bits as the baseline tiles, in every variant. With
 * out_dist, also each row's squared distance to its center by direct differences, rounded as
 * row_distances; labels and out_dist get one entry per row. */
/* One case per feature count, 1 to MBK_MAX_FEW_FEATURES: each calls a copy of the body whose
 * loops over features unroll (CASE(NAME, D) is one case). */
#define MBK_SWITCH_FEW_FEATURES(CASE, NAME)                                                   \
    switch (n_features) {                                                                     \
    CASE(NAME, 1) CASE(NAME, 2) CASE(NAME, 3) CASE(NAME, 4)                                   \
    CASE(NAME, 5) CASE(NAME, 6) CASE(NAME, 7) CASE(NAME, 8)                                   \
    default: break; /* the caller only asks for 1 to MBK_MAX_FEW_FEATURES features */         \
    }
#define MBK_FEW_CASE(NAME, D)                                                                 \
    case D:                                                                                   \
        NAME##_body(data, n_rows, centers, norms, n_clusters, D, labels, out_dist);           \
        break;
#define MBK_DEFINE_NEAREST_FEW(NAME, T, IT, VBYTES, ATTRS)                                    \
    ATTRS static inline __attribute__((always_inline)) void NAME##_body(                      \
        const T *data, int n_rows, const T *centers, const T *norms, Py_ssize_t n_clusters,   \
        const Py_ssize_t n_features, int *labels, T *out_dist) {                              \
        typedef T V __attribute__((vector_size(VBYTES)));                                     \
        typedef IT VI __attribute__((vector_size(VBYTES)));                                   \
        enum { lanes = VBYTES / sizeof(T) };                                                  \
        typedef int VL32 __attribute__((vector_size(lanes * sizeof(int))));                   \
        Py_ssize_t n_grouped = n_features / 4 * 4;                                            \
        VI masks[MBK_MAX_FEW_FEATURES][MBK_MAX_FEW_FEATURES - 1];                             \
        MBK_TRANSPOSE_MASKS(VI, IT, n_features, lanes, masks);                                \
        /* table[f], lane j: feature f of center j, when every center has a lane. */          \
        int by_permute = n_clusters <= lanes;                                                 \
        V table[MBK_MAX_FEW_FEATURES];                                                        \
        for (Py_ssize_t f = 0; f < n_features; f++) {                                        \
            table[f] = (V){0};                                                                \
            for (Py_ssize_t j = 0; j < n_clusters && by_permute; j++)                         \
                table[f][j] = centers[j * n_features + f];                                    \
        }                                                                                     \
        for (int g = 0; g < n_rows; g += lanes) {                                             \
            V x[MBK_MAX_FEW_FEATURES];                                                        \
            int n_valid = n_rows - g < lanes ? n_rows - g : lanes;                            \
            if (n_valid == lanes) {                                                           \
                MBK_TRANSPOSE_ROWS(V, n_features, data + g * n_features, masks, x);           \
            } else {                                                                          \
                /* The last rows, and copies of the first of them in the spare lanes. */      \
                T last[MBK_MAX_FEW_FEATURES * lanes];                                         \
                for (int l = 0; l < lanes; l++) {                                             \
                    const T *row = data + (g + (l < n_valid ? l : 0)) * n_features;           \
                    for (Py_ssize_t f = 0; f < n_features; f++) last[l * n_features + f] = row[f]; \
                }                                                                             \
                MBK_TRANSPOSE_ROWS(V, n_features, last, masks, x);                            \
            }                                                                                 \
            V best = (V){0} + (T)INFINITY;                                                    \
            VI best_at = (VI){0};                                                             \
            /* The nearest center's features, selected along with it (gathering them by       \
             * label afterwards took a scalar load and a lane extract per value); with no     \
             * more centers than lanes, permuted out of `table` by label afterwards. */       \
            V best_c[MBK_MAX_FEW_FEATURES];                                                   \
            for (Py_ssize_t f = 0; f < n_features; f++) best_c[f] = (V){0};                   \
            for (Py_ssize_t j = 0; j < n_clusters; j++) {                                     \
                const T *c = centers + j * n_features;                                        \
                V dot = (V){0};                                                               \
                for (Py_ssize_t f = 0; f < n_features; f++) dot += x[f] * c[f];               \
                V dist = norms[j] - (T)2 * dot;                                               \
                VI closer = dist < best;                                                      \
                best = MBK_SELECT(V, VI, closer, dist, best);                                 \
                best_at = (((VI){0} + (IT)j) & closer) | (best_at & ~closer);                 \
                if (!by_permute && out_dist)                                                  \
                    for (Py_ssize_t f = 0; f < n_features; f++)                               \
                        best_c[f] = MBK_SELECT(V, VI, closer, (V){0} + c[f], best_c[f]);      \
            }                                                                                 \
            if (by_permute && out_dist)                                                       \
                for (Py_ssize_t f = 0; f < n_features; f++)                                   \
                    best_c[f] = MBK_PERMUTE(V, table[f], best_at);                            \
            /* Whole vectors out when every lane is a row: lane by lane, the stores of        \
             * the stack copies stalled the loads that read them back. */                     \
            if (n_valid == lanes) {                                                           \
                VL32 at32 = __builtin_convertvector(best_at, VL32);                           \
                memcpy(labels + g, &at32, sizeof(at32));                                      \
            } else {                                                                          \
                for (int l = 0; l < n_valid; l++) labels[g + l] = (int)best_at[l];            \
            }                                                                                 \
            if (out_dist) {                                                                   \
                V total = (V){0}, group = (V){0};                                             \
                for (Py_ssize_t f = 0; f < n_features; f++) {                                 \
                    V d = x[f] - best_c[f];                                                   \
                    MBK_JOIN_FEATURE(f, d * d, n_grouped, group, total);                      \
                }                                                                             \
                if (n_valid == lanes)                                                         \
                    memcpy(out_dist + g, &total, sizeof(V));                                  \
                else                                                                          \
                    for (int l = 0; l < n_valid; l++) out_dist[g + l] = total[l];             \
            }                                                                                 \
        }                                                                                     \
    }                                                                                         \
    /* One copy of the body per feature count: its loops over features unroll, and the        \
     * rows' features stay in registers. */                                                   \
    ATTRS static void NAME(const T *data, int n_rows, const T *centers, const T *norms,       \
                           Py_ssize_t n_clusters, Py_ssize_t n_features, int *labels,         \
                           T *out_dist) {                                                     \
        MBK_SWITCH_FEW_FEATURES(MBK_FEW_CASE, NAME)                                           \
    }

/* ---- nearest three centers of rows with few features: rows in lanes ---------------------- */

/* Nested mini-batch k-means keeps, for each row, its nearest center, the second nearest (the
 * runner) and the third distance (a bound for every other center). Each row's squared
 * distance to each center is summed from direct differences feature by feature, in T and
 * without FMA, so a result depends on the row and the centers only. The three least values
 * are kept per lane with selects (where a center ranks is unpredictable; branches would
 * mispredict), the lower index winning ties. For the n_rows rows X[index[r]]:
 * best[r], next_best[r], and first/second/third[r], the distances (square roots, in
 * double) to the nearest, second and third nearest (INFINITY where there are fewer centers). */
#define MBK_THREE_CASE(NAME, D)                                                               \
    case D:                                                                                   \
        NAME##_body(data, row_stride, col_stride, index, n_rows, centers, n_clusters, D,      \
                    best, next_best, first, second, third);                                   \
        break;
#define MBK_DEFINE_NEAREST_THREE(NAME, T, IT, VBYTES, ATTRS)                                  \
    ATTRS static inline __attribute__((always_inline)) void NAME##_body(                      \
        const T *data, Py_ssize_t row_stride, Py_ssize_t col_stride, const Py_ssize_t *index, \
        int n_rows, const T *centers, Py_ssize_t n_clusters, const Py_ssize_t n_features,     \
        int *best, int *next_best, double *first, double *second, double *third) {            \
        typedef T V __attribute__((vector_size(VBYTES)));                                     \
        typedef IT VI __attribute__((vector_size(VBYTES)));                                   \
        enum { lanes = VBYTES / sizeof(T), ahead = 4 * (VBYTES / sizeof(T)) };                \
        for (int r = 0; r < ahead && r < n_rows; r++)                                         \
            mbk_prefetch_row(data + index[r] * row_stride, n_features, col_stride,            \
                             (Py_ssize_t)sizeof(T));                                          \
        for (int g = 0; g < n_rows; g += lanes) {                                             \
            const T *row[lanes];                                                              \
            V x[MBK_MAX_FEW_FEATURES];                                                        \
            int n_valid = n_rows - g < lanes ? n_rows - g : lanes;                            \
            for (int r = g + ahead; r < g + ahead + lanes && r < n_rows; r++)                 \
                mbk_prefetch_row(data + index[r] * row_stride, n_features, col_stride,        \
                                 (Py_ssize_t)sizeof(T));                                      \
            for (int l = 0; l < lanes; l++) /* spare lanes: a copy of the group's first row */ \
                row[l] = data + index[g + (l < n_valid ? l : 0)] * row_stride;                \
            for (Py_ssize_t f = 0; f < n_features; f++)                                       \
                for (int l = 0; l < lanes; l++) x[f][l] = row[l][f * col_stride];             \
            V low = (V){0} + (T)INFINITY, next_low = low, third_low = low;                    \
            VI at = (VI){0}, next_at = (VI){0};                                               \
            for (Py_ssize_t j = 0; j < n_clusters; j++) {                                     \
                const T *c = centers + j * n_features;                                        \
                V d = (V){0};                                                                 \
                for (Py_ssize_t f = 0; f < n_features; f++) {                                 \
                    V diff = x[f] - c[f];                                                     \
                    d += diff * diff;                                                         \
                }                                                                             \
                VI below_first = d < low, below_second = d < next_low;                        \
                VI below_third = d < third_low, here = (VI){0} + (IT)j;                       \
                third_low = MBK_SELECT(V, VI, below_second, next_low,                         \
                                       MBK_SELECT(V, VI, below_third, d, third_low));         \
                next_low = MBK_SELECT(V, VI, below_first, low,                                \
                                      MBK_SELECT(V, VI, below_second, d, next_low));          \
                next_at = (at & below_first)                                                  \
                          | (((here & below_second) | (next_at & ~below_second))              \
                             & ~below_first);                                                 \
                low = MBK_SELECT(V, VI, below_first, d, low);                                 \
                at = (here & below_first) | (at & ~below_first);                              \
            }                                                                                 \
            for (int l = 0; l < n_valid; l++) {                                               \
                best[g + l] = (int)at[l];                                                     \
                next_best[g + l] = (int)next_at[l];                                           \
                first[g + l] = sqrt((double)low[l]);                                          \
                second[g + l] = sqrt((double)next_low[l]);                                    \
                third[g + l] = sqrt((double)third_low[l]);                                    \
            }                                                                                 \
        }                                                                                     \
    }                                                                                         \
    ATTRS static void NAME(const T *data, Py_ssize_t row_stride, Py_ssize_t col_stride,       \
                           const Py_ssize_t *index, int n_rows, const T *centers,             \
                           Py_ssize_t n_clusters, Py_ssize_t n_features, int *best,           \
                           int *next_best, double *first, double *second, double *third) {    \
        MBK_SWITCH_FEW_FEATURES(MBK_THREE_CASE, NAME)                                         \
    }

/* ---- nested mini-batch k-means: the rows' bound tests --------------------------------------- */

/* Hamerly's test for the positions positions[0 .. n) (or first, first + 1, ... when positions
 * is NULL) of a nested round, after the centers moved. A labelled position's bounds take the
 * movements: upper += moves[label], lower -= moves[runner], rest -= drops[label] (the largest
 * movement among the other centers), or, for a position set aside since the last sweep
 * (aside[i], then cleared), the summed movements since then, at moves[n_clusters + j] and
 * drops[n_clusters + j]. The position fails when upper > max(min(lower, rest), half_gap[label]);
 * positions without a label (-1) fail too. Writes the failing positions, in order, to failed
 * and returns how many. A listed position is never aside (the list holds the rows that are
 * not): with positions, aside is not read.
 *
 * A plain loop without branches, which the compiler vectorises with gathers (GATHER_ATTRS ask
 * for them: GCC's generic tuning leaves such loops scalar), then a branchless compaction of
 * the flags: which rows fail is unpredictable.
 * A position appears once in a list, so the loop's stores never meet its loads (ivdep). */
#define MBK_DEFINE_BOUND_TESTS(NAME, ATTRS)                                                   \
    ATTRS static inline __attribute__((always_inline)) void NAME##_flags(                     \
        Py_ssize_t n, const Py_ssize_t *restrict positions, Py_ssize_t first,                 \
        const int *restrict labels, const int *restrict runner, double *restrict upper,       \
        double *restrict lower, double *restrict rest, unsigned char *restrict aside,         \
        const int with_aside, const double *restrict moves, const double *restrict drops,     \
        const double *restrict half_gap, int n_clusters, unsigned char *restrict fail) {      \
        _Pragma("GCC ivdep") for (Py_ssize_t q = 0; q < n; q++) {                             \
            Py_ssize_t i = positions ? positions[q] : first + q;                              \
            int label = labels[i], unlabelled = label < 0;                                    \
            int own = unlabelled ? 0 : label, other = unlabelled ? 0 : runner[i];             \
            int since = with_aside ? aside[i] * n_clusters : 0;                               \
            double up = upper[i] + moves[own + since];                                        \
            double low = lower[i] - moves[other + since];                                     \
            double rest_low = rest[i] - drops[own + since];                                   \
            double bound = low < rest_low ? low : rest_low, gap = half_gap[own];              \
            bound = bound > gap ? bound : gap;                                                \
            upper[i] = up;                                                                    \
            lower[i] = low;                                                                   \
            rest[i] = rest_low;                                                               \
            if (with_aside) aside[i] = 0;                                                     \
            fail[q] = (unsigned char)(unlabelled | (up > bound));                             \
        }                                                                                     \
    }                                                                                         \
    ATTRS static Py_ssize_t NAME(                                                             \
        Py_ssize_t n, const Py_ssize_t *positions, Py_ssize_t first, const int *labels,       \
        const int *runner, double *upper, double *lower, double *rest, unsigned char *aside,  \
        const double *moves, const double *drops, const double *half_gap,                     \
        Py_ssize_t n_clusters, unsigned char *fail, Py_ssize_t *failed) {                     \
        Py_ssize_t n_failed = 0;                                                              \
        int k = (int)n_clusters;                                                              \
        /* One copy of the loop per case, so that each is a plain loop. */                    \
        if (positions)                                                                        \
            NAME##_flags(n, positions, first, labels, runner, upper, lower, rest, NULL, 0,    \
                         moves, drops, half_gap, k, fail);                                    \
        else if (aside)                                                                       \
            NAME##_flags(n, NULL, first, labels, runner, upper, lower, rest, aside, 1, moves, \
                         drops, half_gap, k, fail);                                           \
        else                                                                                  \
            NAME##_flags(n, NULL, first, labels, runner, upper, lower, rest, NULL, 0, moves,  \
                         drops, half_gap, k, fail);                                           \
        for (Py_ssize_t q = 0; q < n; q++) {                                                  \
            failed[n_failed] = positions ? positions[q] : first + q;                          \
            n_failed += fail[q];                                                              \
        }                                                                                     \
        return n_failed;                                                                      \
    }

/* ---- distances to every center (transform) ------------------------------------------------ */

#define MBK_DISTANCE_BLOCK(T, V, MR, NVB)                                                     \
    do {                                                                                      \
        V acc_[MR][NVB];                                                                      \
        MBK_ACCUMULATE(T, V, MR, NVB, MBK_ADD_SQUARED_DIFFERENCE, acc_);                      \
        for (int r_ = 0; r_ < n_rows; r_++)                                                   \
            for (int v_ = 0; v_ < NVB; v_++)                                                  \
                for (int l_ = 0; l_ < lanes && jb + v_ * lanes + l_ < n_clusters; l_++)       \
                    out[r_ * n_clusters + jb + v_ * lanes + l_] = (T)sqrt(acc_[r_][v_][l_]);  \
        jb += NVB * lanes;                                                                    \
    } while (0)

#define MBK_DEFINE_DISTANCE(NAME, T, VBYTES, MR, NV, ATTRS)                                   \
    ATTRS static void NAME(const T *x, Py_ssize_t x_stride, const T *ct,                      \
                           Py_ssize_t n_features,                                             \
                           Py_ssize_t n_padded, Py_ssize_t n_clusters, int n_rows, T *out) {  \
        typedef T V __attribute__((vector_size(VBYTES)));                                     \
        enum { lanes = VBYTES / sizeof(T) };                                                  \
        Py_ssize_t jb = 0;                                                                    \
        while (jb + NV * lanes <= n_padded) MBK_DISTANCE_BLOCK(T, V, MR, NV);                 \
        while (jb < n_padded) MBK_DISTANCE_BLOCK(T, V, MR, 1);                                \
    }

/* ---- k-means++ candidates, rows in lanes --------------------------------------------------- */

/* NCB candidates from c0 against NV vectors of rows from i0: the dot products accumulate
 * feature by feature in order (as the tiles do), then scikit-learn's expansion, rounding,
 * clipping and minimum, stored for the rows below n_rows. */
#define MBK_CANDIDATE_BLOCK(OT, V, VO, NCB, NV, WIDEN)                                        \
    do {                                                                                      \
        V acc_[NCB][NV];                                                                      \
        for (int c_ = 0; c_ < NCB; c_++)                                                      \
            for (int v_ = 0; v_ < NV; v_++) acc_[c_][v_] = (V){0};                            \
        const OT *x_ = xt + i0 * n_features; /* this block, feature-major */                  \
        for (Py_ssize_t f_ = 0; f_ < n_features; f_++, x_ += NV * lanes) {                    \
            V xv_[NV];                                                                        \
            for (int v_ = 0; v_ < NV; v_++) WIDEN(V, OT, x_ + v_ * lanes, xv_[v_]);           \
            for (int c_ = 0; c_ < NCB; c_++) {                                                \
                double cf_ = cand[(c0 + c_) * n_features + f_];                               \
                for (int v_ = 0; v_ < NV; v_++) acc_[c_][v_] += xv_[v_] * cf_;                \
            }                                                                                 \
        }                                                                                     \
        for (int v_ = 0; v_ < NV; v_++) {                                                     \
            Py_ssize_t i_ = i0 + v_ * lanes;                                                  \
            if (i_ >= n_rows) break;                                                          \
            V xn_ = (V){0};                                                                   \
            VO near_ = (VO){0};                                                               \
            int whole_ = n_rows - i_ >= lanes;                                                \
            int n_valid_ = whole_ ? lanes : (int)(n_rows - i_);                               \
            if (whole_) {                                                                     \
                memcpy(&xn_, x_sq_norms + i_, sizeof(V));                                     \
                if (closest != NULL) memcpy(&near_, closest + i_, sizeof(VO));                \
            } else {                                                                          \
                for (int l_ = 0; l_ < n_valid_; l_++) {                                       \
                    xn_[l_] = x_sq_norms[i_ + l_];                                            \
                    if (closest != NULL) near_[l_] = closest[i_ + l_];                        \
                }                                                                             \
            }                                                                                 \
            for (int c_ = 0; c_ < NCB; c_++) {                                                \
                V value_ = -2.0 * acc_[c_][v_];                                               \
                value_ = value_ + cand_sq_norms[c0 + c_];                                     \
                value_ = value_ + xn_;                                                        \
                VO d_ = __builtin_convertvector(value_, VO);                                  \
                d_ = MBK_SELECT(VO, VOI, d_ < (OT)0, (VO){0}, d_);                            \
                if (closest != NULL) d_ = MBK_SELECT(VO, VOI, near_ < d_, near_, d_);         \
                OT *o_ = out + (c0 + c_) * out_stride + i_;                                   \
                if (whole_)                                                                   \
                    memcpy(o_, &d_, sizeof(VO));                                              \
                else                                                                          \
                    for (int l_ = 0; l_ < n_valid_; l_++) o_[l_] = d_[l_];                    \
            }                                                                                 \
        }                                                                                     \
    } while (0)

#define MBK_DEFINE_CANDIDATES(NAME, OT, OIT, VBYTES, NC, NV, ATTRS, WIDEN)                    \
    ATTRS static void NAME(const OT *xt, Py_ssize_t n_rows,                                   \
                           Py_ssize_t n_features, const double *cand, int n_candidates,       \
                           const double *cand_sq_norms, const double *x_sq_norms,             \
                           const OT *closest, OT *out, Py_ssize_t out_stride) {               \
        typedef double V __attribute__((vector_size(VBYTES)));                                \
        enum { lanes = VBYTES / sizeof(double) };                                             \
        typedef OT VO __attribute__((vector_size(lanes * sizeof(OT))));                       \
        typedef OIT VOI __attribute__((vector_size(lanes * sizeof(OT))));                     \
        for (Py_ssize_t i0 = 0; i0 < n_rows; i0 += NV * lanes) {                              \
            int c0 = 0;                                                                       \
            for (; c0 + NC <= n_candidates; c0 += NC)                                         \
                MBK_CANDIDATE_BLOCK(OT, V, VO, NC, NV, WIDEN);                                \
            for (; c0 + NC / 2 <= n_candidates; c0 += NC / 2)                                 \
                MBK_CANDIDATE_BLOCK(OT, V, VO, NC / 2, NV, WIDEN);                            \
            for (; c0 < n_candidates; c0++) MBK_CANDIDATE_BLOCK(OT, V, VO, 1, NV, WIDEN);     \
        }                                                                                     \
    }

/* ---- the center update's sums ---------------------------------------------------------- */

/* Rows are added one after another in the order given, whole vectors of features at a time
 * (each sum still takes its rows one by one: the same bits as the scalar loop).
 * - Batch order, each row into its center's row of sums (labels): the sums of all centers
 *   are read and written in place, a few KiB that stay in L1, and consecutive rows mostly
 *   belong to different centers, so their additions overlap; a packed batch is read from
 *   front to back.
 * - One center's rows (order: its members; labels NULL): up to MBK_ADD_VECTORS vectors of
 *   its sums stay in registers while every row is added (wider rows take several passes),
 *   for many centers, whose sums would not stay in cache together. */
#define MBK_ADD_VECTORS 8
#define MBK_ADD_AHEAD 16
#define MBK_DEFINE_ADD_ROWS(NAME, T, VBYTES, ATTRS, WIDEN)                                    \
    ATTRS static void NAME(const T *data, Py_ssize_t row_stride, const Py_ssize_t *index,     \
                           const Py_ssize_t *order, const int *labels, Py_ssize_t n,          \
                           const T *weights, Py_ssize_t n_features, double *sums) {           \
        typedef double VD __attribute__((vector_size(VBYTES)));                               \
        enum { lanes = VBYTES / sizeof(double) };                                             \
        /* Rows of a cache line or more, not read in order: ask for them ahead. (Shorter      \
         * ones come from a small X, in cache.) */                                            \
        int prefetch = (index != NULL || order != NULL)                                       \
                       && n_features * (Py_ssize_t)sizeof(T) >= 64;                           \
        int one_center = labels == NULL;                                                      \
        Py_ssize_t pass = one_center ? MBK_ADD_VECTORS * lanes : n_features;                  \
        for (Py_ssize_t f0 = 0; f0 < n_features; f0 += pass) {                                \
            Py_ssize_t width = n_features - f0 < pass ? n_features - f0 : pass;               \
            int n_vectors = (int)(width / lanes);                                             \
            VD acc[MBK_ADD_VECTORS];                                                          \
            if (one_center)                                                                   \
                for (int v = 0; v < MBK_ADD_VECTORS; v++)                                     \
                    if (v < n_vectors) memcpy(&acc[v], sums + f0 + v * lanes, sizeof(VD));    \
            for (Py_ssize_t q = 0; q < n; q++) {                                              \
                Py_ssize_t at = order != NULL ? order[q] : q;                                 \
                Py_ssize_t row = index != NULL ? index[at] : at;                              \
                if (prefetch && q + MBK_ADD_AHEAD < n) {                                      \
                    Py_ssize_t next = order != NULL ? order[q + MBK_ADD_AHEAD]                \
                                                    : q + MBK_ADD_AHEAD;                      \
                    if (index != NULL) next = index[next];                                    \
                    mbk_prefetch_span(data + next * row_stride + f0,                          \
                                      width * (Py_ssize_t)sizeof(T));                         \
                }                                                                             \
                const T *x = data + row * row_stride + f0;                                    \
                double *s = sums + f0                                                         \
                            + (one_center ? 0 : (Py_ssize_t)labels[at] * n_features);         \
                double w = weights != NULL ? (double)weights[row] : 1.0;                      \
                if (one_center) {                                                             \
                    for (int v = 0; v < MBK_ADD_VECTORS; v++) {                               \
                        if (v < n_vectors) {                                                  \
                            VD xd;                                                            \
                            WIDEN(VD, T, x + v * lanes, xd);                                  \
                            acc[v] += weights != NULL ? xd * w : xd;                          \
                        }                                                                     \
                    }                                                                         \
                } else {                                                                      \
                    for (int v = 0; v < n_vectors; v++) {                                     \
                        VD xd, sum;                                                           \
                        WIDEN(VD, T, x + v * lanes, xd);                                      \
                        memcpy(&sum, s + v * lanes, sizeof(VD));                              \
                        sum += weights != NULL ? xd * w : xd;                                 \
                        memcpy(s + v * lanes, &sum, sizeof(VD));                              \
                    }                                                                         \
                }                                                                             \
                for (Py_ssize_t f = n_vectors * lanes; f < width; f++)                        \
                    s[f] += weights != NULL ? (double)x[f] * w : (double)x[f];                \
            }                                                                                 \
            if (one_center)                                                                   \
                for (int v = 0; v < MBK_ADD_VECTORS; v++)                                     \
                    if (v < n_vectors) memcpy(sums + f0 + v * lanes, &acc[v], sizeof(VD));    \
        }                                                                                     \
    }

/* ---- the finiteness scan of the input ---------------------------------------------------- */

/* x - x is 0 for a finite x and NaN for NaN or an infinity (no compiler may fold it without
 * -ffinite-math-only); four vectors per iteration keep the loads streaming. */
#define MBK_DEFINE_ALL_FINITE(NAME, T, IT, VBYTES, ATTRS)                                     \
    ATTRS static int NAME(const T *x, Py_ssize_t n) {                                         \
        typedef T V __attribute__((vector_size(VBYTES)));                                     \
        typedef IT VI __attribute__((vector_size(VBYTES)));                                   \
        enum { lanes = VBYTES / sizeof(T) };                                                  \
        VI bad = (VI){0};                                                                     \
        Py_ssize_t i = 0;                                                                     \
        for (; i + 4 * lanes <= n; i += 4 * lanes) {                                          \
            V a, b, c, d;                                                                     \
            memcpy(&a, x + i, sizeof(V));                                                     \
            memcpy(&b, x + i + lanes, sizeof(V));                                             \
            memcpy(&c, x + i + 2 * lanes, sizeof(V));                                         \
            memcpy(&d, x + i + 3 * lanes, sizeof(V));                                         \
            bad |= ((a - a) != (V){0}) | ((b - b) != (V){0}) | ((c - c) != (V){0})            \
                   | ((d - d) != (V){0});                                                     \
        }                                                                                     \
        int finite = 1;                                                                       \
        for (int l = 0; l < lanes; l++) finite &= bad[l] == 0;                                \
        for (; i < n; i++) finite &= (x[i] - x[i]) == (T)0;                                   \
        return finite;                                                                        \
    }

/* ---- squared distances of rows to their assigned centers (inertia) ---------------------- */

/* One squared difference s of feature f (0-based) joins the running distance: features
 * in whole groups of four are summed as ((s0 + s1) + s2) + s3 into `group`, which then joins
 * `total`; the features after the last whole group join `total` one by one. */
#define MBK_JOIN_FEATURE(f, s, n_grouped, group, total)                                       \
    do {                                                                                      \
        if ((f) >= (n_grouped)) {                                                             \
            total = total + (s);                                                              \
        } else if ((f) % 4 == 0) {                                                            \
            group = (s);                                                                      \
        } else {                                                                              \
            group = group + (s);                                                              \
            if ((f) % 4 == 3) total = total + group;                                          \
        }                                                                                     \
    } while (0)

/* The formula on one row, scalar, from feature `first` (a multiple of 4) on, added to total. */
#define MBK_ROW_DISTANCE_TAIL(T, a, b, first, n_features, total)                              \
    do {                                                                                      \
        Py_ssize_t n_grouped_ = (n_features) / 4 * 4;                                         \
        T group_ = 0;                                                                         \
        for (Py_ssize_t f_ = (first); f_ < (n_features); f_++) {                              \
            T d_ = (a)[f_] - (b)[f_];                                                         \
            MBK_JOIN_FEATURE(f_, d_ * d_, n_grouped_, group_, total);                         \
        }                                                                                     \
    } while (0)

#if defined(__GNUC__) && !defined(__clang__)
/* GCC: `lanes` rows at a time, one row per lane, over the features in whole blocks of
 * `lanes` (a multiple of four: blocks hold whole groups). Each row's squared differences
 * are computed along its features (vector loads), then the lanes x lanes block is transposed
 * in registers (log2(lanes) rounds of two-vector shuffles), so that every addition of the
 * formula runs for all rows at once, in the formula's order. The features after the last
 * whole block go row by row. */
#define MBK_DEFINE_ROW_DISTANCES(NAME, T, IT, VBYTES, ATTRS)                                  \
    ATTRS static void NAME(const T *x, Py_ssize_t x_stride, const T *centers,                 \
                           const int *labels, Py_ssize_t n_features, int n_rows, T *out) {    \
        typedef T V __attribute__((vector_size(VBYTES)));                                     \
        typedef IT VI __attribute__((vector_size(VBYTES)));                                   \
        enum { lanes = VBYTES / sizeof(T) };                                                  \
        /* whole blocks of whole groups of four */                                            \
        Py_ssize_t n_blocked = lanes % 4 ? 0 : n_features / 4 * 4 / lanes * lanes;            \
        VI lane;                                                                              \
        MBK_LANE_NUMBERS(VI, IT, lane);                                                       \
        for (int g = 0; g < n_rows; g += lanes) {                                             \
            V total = (V){0};                                                                 \
            for (Py_ssize_t f0 = 0; f0 < n_blocked; f0 += lanes) {                            \
                V t[lanes];                                                                   \
                _Pragma("GCC unroll 16") for (int r = 0; r < lanes; r++) {                    \
                    int at = g + r < n_rows ? g + r : g; /* spare lanes repeat a row */       \
                    V a, b;                                                                   \
                    memcpy(&a, x + at * x_stride + f0, sizeof(V));                            \
                    memcpy(&b, centers + (Py_ssize_t)labels[at] * n_features + f0, sizeof(V)); \
                    V d = a - b;                                                              \
                    t[r] = d * d;                                                             \
                }                                                                             \
                /* transpose: afterwards t[j] holds feature f0 + j of every row */            \
                _Pragma("GCC unroll 8") for (int b = 1; b < lanes; b *= 2) {                  \
                    /* Rows i and i + b swap their off-diagonal b x b blocks: lane l of the   \
                     * first takes its own lane l, or lane l - b of the second (at lanes +    \
                     * l - b in the concatenation) where bit b of l is set; the second,       \
                     * the same shifted by b. */                                              \
                    VI low = lane + ((VI)((lane & (IT)b) != 0) & (IT)(lanes - b));            \
                    VI high = low + (IT)b;                                                    \
                    _Pragma("GCC unroll 16") for (int i = 0; i < lanes; i++) {                \
                        if ((i / b) % 2) continue;                                            \
                        V first = __builtin_shuffle(t[i], t[i + b], low);                     \
                        t[i + b] = __builtin_shuffle(t[i], t[i + b], high);                   \
                        t[i] = first;                                                         \
                    }                                                                         \
                }                                                                             \
                _Pragma("GCC unroll 4") for (int q = 0; q < lanes; q += 4)                    \
                    total = total + (((t[q] + t[q + 1]) + t[q + 2]) + t[q + 3]);              \
            }                                                                                 \
            for (int r = 0; r < lanes && g + r < n_rows; r++) {                               \
                T row_total = total[r];                                                       \
                MBK_ROW_DISTANCE_TAIL(T, x + (g + r) * x_stride,                              \
                                      centers + (Py_ssize_t)labels[g + r] * n_features,       \
                                      n_blocked, n_features, row_total);                      \
                out[g + r] = row_total;                                                       \
            }                                                                                 \
        }                                                                                     \
    }
#else
#define MBK_DEFINE_ROW_DISTANCES(NAME, T, IT, VBYTES, ATTRS)                                  \
    ATTRS static void NAME(const T *x, Py_ssize_t x_stride, const T *centers,                 \
                           const int *labels, Py_ssize_t n_features, int n_rows, T *out) {    \
        for (int r = 0; r < n_rows; r++) {                                                    \
            T total = 0;                                                                      \
            MBK_ROW_DISTANCE_TAIL(T, x + r * x_stride,                                        \
                                  centers + (Py_ssize_t)labels[r] * n_features, 0,            \
                                  n_features, total);                                         \
            out[r] = total;                                                                   \
        }                                                                                     \
    }
#endif

/* ATTRS may allow contracting a * b + c into an FMA (the tiles only decide an argmin);
 * PLAIN_ATTRS select the instruction set only, for the center update, which must round like
 * scikit-learn's separate multiply and add; GATHER_ATTRS add a tuning under which GCC
 * vectorises loops that gather (the instruction set stays the variant's, so the wheel still
 * runs on every CPU of that set). */
#define MBK_DEFINE_VARIANT(ISA, VBYTES, MR, NV_FLOAT, NV_DOUBLE, NC_CANDIDATES, ATTRS,        \
                           PLAIN_ATTRS, GATHER_ATTRS, WIDEN)                                  \
    MBK_DEFINE_NEAREST(mbk_nearest_float_##ISA, float, int, VBYTES, MR, NV_FLOAT, ATTRS)      \
    MBK_DEFINE_NEAREST(mbk_nearest_double_##ISA, double, long long, VBYTES, MR, NV_DOUBLE,    \
                       ATTRS)                                                                 \
    MBK_DEFINE_DISTANCE(mbk_distance_float_##ISA, float, VBYTES, MR, NV_FLOAT, ATTRS)         \
    MBK_DEFINE_DISTANCE(mbk_distance_double_##ISA, double, VBYTES, MR, NV_DOUBLE, ATTRS)      \
    MBK_DEFINE_ADD_ROWS(mbk_add_rows_float_##ISA, float, VBYTES, PLAIN_ATTRS, WIDEN)          \
    MBK_DEFINE_ADD_ROWS(mbk_add_rows_double_##ISA, double, VBYTES, PLAIN_ATTRS, WIDEN)        \
    MBK_DEFINE_ALL_FINITE(mbk_all_finite_float_##ISA, float, int, VBYTES, PLAIN_ATTRS)        \
    MBK_DEFINE_ALL_FINITE(mbk_all_finite_double_##ISA, double, long long, VBYTES, PLAIN_ATTRS) \
    MBK_DEFINE_ROW_DISTANCES(mbk_row_distances_float_##ISA, float, int, VBYTES, PLAIN_ATTRS)  \
    MBK_DEFINE_ROW_DISTANCES(mbk_row_distances_double_##ISA, double, long long, VBYTES,       \
                             PLAIN_ATTRS)                                                     \
    MBK_DEFINE_NEAREST_FEW(mbk_nearest_few_float_##ISA, float, int, VBYTES, PLAIN_ATTRS)      \
    MBK_DEFINE_NEAREST_FEW(mbk_nearest_few_double_##ISA, double, long long, VBYTES,           \
                           PLAIN_ATTRS)                                                       \
    MBK_DEFINE_NEAREST_THREE(mbk_nearest_three_float_##ISA, float, int, VBYTES, PLAIN_ATTRS)  \
    MBK_DEFINE_NEAREST_THREE(mbk_nearest_three_double_##ISA, double, long long, VBYTES,       \
                             PLAIN_ATTRS)                                                     \
    MBK_DEFINE_BOUND_TESTS(mbk_bound_tests_##ISA, GATHER_ATTRS)                               \
    MBK_DEFINE_CANDIDATES(mbk_candidates_float_##ISA, float, int, VBYTES, NC_CANDIDATES, 3,   \
                          ATTRS, WIDEN)                                                       \
    MBK_DEFINE_CANDIDATES(mbk_candidates_double_##ISA, double, long long, VBYTES,             \
                          NC_CANDIDATES, 3, ATTRS, WIDEN)                                     \
    static const mbk_variant mbk_variant_##ISA = {                                            \
        #ISA, MR, VBYTES / sizeof(float), VBYTES / sizeof(double),                            \
        NV_FLOAT * (VBYTES / sizeof(float)), NV_DOUBLE * (VBYTES / sizeof(double)),           \
        mbk_nearest_float_##ISA, mbk_nearest_double_##ISA,                                    \
        mbk_distance_float_##ISA, mbk_distance_double_##ISA,                                  \
        mbk_add_rows_float_##ISA, mbk_add_rows_double_##ISA,                                  \
        mbk_all_finite_float_##ISA, mbk_all_finite_double_##ISA,                              \
        mbk_row_distances_float_##ISA, mbk_row_distances_double_##ISA,                        \
        mbk_candidates_float_##ISA, mbk_candidates_double_##ISA,                              \
        3 * (VBYTES / sizeof(double)),                                                        \
        mbk_nearest_few_float_##ISA, mbk_nearest_few_double_##ISA,                            \
        mbk_nearest_three_float_##ISA, mbk_nearest_three_double_##ISA,                        \
        mbk_bound_tests_##ISA};

/* Baseline: 16-byte vectors (SSE2 on x86-64, NEON on ARM), no FMA. */
MBK_DEFINE_VARIANT(baseline, 16, 4, 3, 3, 4, , , , MBK_WIDEN_PORTABLE)

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MBK_X86_DISPATCH 1
/* Register blocks: 6x2 fills AVX2's 16 vector registers, 12x2 AVX-512's 32. */
MBK_DEFINE_VARIANT(avx2, 32, 6, 2, 2, 4,
                   __attribute__((target("avx2,fma"), optimize("fp-contract=fast"))),
                   __attribute__((target("avx2"))),
                   __attribute__((target("avx2,tune=icelake-server"))), MBK_WIDEN_AVX2)
MBK_DEFINE_VARIANT(avx512, 64, 12, 2, 2, 8,
                   __attribute__((target("avx512f"), optimize("fp-contract=fast"))),
                   __attribute__((target("avx512f"))),
                   __attribute__((target("avx512f,tune=icelake-server"))), MBK_WIDEN_AVX512)
#endif

#else
#error "mbk's kernels are written with GCC/Clang vector extensions: build with GCC or Clang"
#endif

/* ---- dispatch ----------------------------------------------------------------------------- */

static const mbk_variant *mbk_active = &mbk_variant_baseline;

/* The variants this CPU can run, best first; returns how many were written (at most 3). */
static int mbk_supported_variants(const mbk_variant **out) {
    int n = 0;
#ifdef MBK_X86_DISPATCH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) out[n++] = &mbk_variant_avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) out[n++] = &mbk_variant_avx2;
#endif
    out[n++] = &mbk_variant_baseline;
    return n;
}

/* The variant for a problem with n_columns centers (or candidates): the widest one, no wider
 * than mbk_active, whose register block is not wider than n_columns. Padding six centers to a
 * 32-center block would mostly multiply zeros, and the per-row argmin over wide vectors costs
 * more than the arithmetic it saves. The choice depends on the problem's shape and the CPU
 * only, never on the thread count. */
static const mbk_variant *mbk_variant_for(Py_ssize_t n_columns, int is_double) {
    static const mbk_variant *variants[4];
    static int n_variants = 0;
    int i, start = 0;
    if (n_variants == 0) n_variants = mbk_supported_variants(variants);
    for (i = 0; i < n_variants; i++)
        if (variants[i] == mbk_active) start = i;
    for (i = start; i < n_variants; i++) {
        Py_ssize_t block = is_double ? variants[i]->block_double : variants[i]->block_float;
        if (block <= n_columns) return variants[i];
    }
    return variants[n_variants - 1];
}

#endif /* MBK_TILES_H */

/* Many doubles at once from NumPy's MT19937, the generator behind RandomState.
 *
 * NumPy draws a double as two 32-bit words, a = w0 >> 5 and b = w1 >> 6, giving
 * (a * 2**26 + b) / 2**53; each word is one tempered entry of the 624-word state, and the
 * state is regenerated (the "twist") every 624 words. Calling NumPy's next_double per draw
 * costs an indirect call and the tempering one word at a time; here the words of a whole
 * run are tempered and converted in a loop the compiler vectorises, and the state (key and
 * position) is left exactly as NumPy's own calls would leave it.
 *
 * The state layout is NumPy's mt19937_state (numpy/random/src/mt19937/mt19937.h, unchanged
 * since NumPy 1.17). mbk checks it at import against NumPy's own draws and falls back to
 * next_double if it ever differs (see _sampling_kernels.RandomStream).
 */
#ifndef MBK_MT19937_H
#define MBK_MT19937_H

#include <stdint.h>

#define MBK_MT_N 624
#define MBK_MT_M 397

typedef struct {
    uint32_t key[MBK_MT_N];
    int pos;
} mbk_mt19937_state;

/* Inlined into each instruction-set variant below (always_inline: the twist would otherwise
 * stay one baseline copy). */
#define MBK_MT_INLINE static inline __attribute__((always_inline))

MBK_MT_INLINE uint32_t mbk_mt_twist_word(uint32_t upper, uint32_t lower, uint32_t far) {
    uint32_t y = (upper & 0x80000000U) | (lower & 0x7fffffffU);
    return far ^ (y >> 1) ^ ((0U - (y & 1U)) & 0x9908b0dfU);
}

/* The twist: the next 624 words (Matsumoto & Nishimura's generation step, as NumPy's). */
MBK_MT_INLINE void mbk_mt19937_generate(mbk_mt19937_state *state) {
    uint32_t *key = state->key;
    int i;
    for (i = 0; i < MBK_MT_N - MBK_MT_M; i++)
        key[i] = mbk_mt_twist_word(key[i], key[i + 1], key[i + MBK_MT_M]);
    for (; i < MBK_MT_N - 1; i++)
        key[i] = mbk_mt_twist_word(key[i], key[i + 1], key[i + MBK_MT_M - MBK_MT_N]);
    key[MBK_MT_N - 1] = mbk_mt_twist_word(key[MBK_MT_N - 1], key[0], key[MBK_MT_M - 1]);
    state->pos = 0;
}

MBK_MT_INLINE uint32_t mbk_mt_temper(uint32_t y) {
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680U;
    y ^= (y << 15) & 0xefc60000U;
    y ^= y >> 18;
    return y;
}

MBK_MT_INLINE uint32_t mbk_mt_next_word(mbk_mt19937_state *state) {
    if (state->pos == MBK_MT_N) mbk_mt19937_generate(state);
    return mbk_mt_temper(state->key[state->pos++]);
}

MBK_MT_INLINE double mbk_mt_double(uint32_t w0, uint32_t w1) {
    /* Exact: a * 2**26 + b < 2**53, and dividing by 2**53 only moves the exponent. */
    return ((double)(w0 >> 5) * 67108864.0 + (double)(w1 >> 6)) / 9007199254740992.0;
}

/* out[0..n) = the next n doubles of RandomState.random_sample on this state. */
#define MBK_DEFINE_MT_DOUBLES(NAME, ATTRS)                                                    \
    ATTRS static void NAME(mbk_mt19937_state *state, double *out, Py_ssize_t n) {             \
        Py_ssize_t i = 0;                                                                     \
        while (i < n) {                                                                       \
            if (state->pos == MBK_MT_N) mbk_mt19937_generate(state);                          \
            Py_ssize_t pairs = (MBK_MT_N - state->pos) / 2;                                   \
            if (pairs == 0) {                                                                 \
                /* One word left: the double straddles a twist. */                            \
                uint32_t w0 = mbk_mt_next_word(state);                                        \
                uint32_t w1 = mbk_mt_next_word(state);                                        \
                out[i++] = mbk_mt_double(w0, w1);                                             \
                continue;                                                                     \
            }                                                                                 \
            if (pairs > n - i) pairs = n - i;                                                 \
            const uint32_t *key = state->key + state->pos;                                    \
            for (Py_ssize_t j = 0; j < pairs; j++)                                            \
                out[i + j] = mbk_mt_double(mbk_mt_temper(key[2 * j]),                         \
                                           mbk_mt_temper(key[2 * j + 1]));                    \
            state->pos += (int)(2 * pairs);                                                   \
            i += pairs;                                                                       \
        }                                                                                     \
    }

MBK_DEFINE_MT_DOUBLES(mbk_mt19937_doubles_baseline, )

/* The twist and the tempering vectorise: AVX2 and AVX-512 variants of the draws, which run
 * on the fit loop's serial path. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
MBK_DEFINE_MT_DOUBLES(mbk_mt19937_doubles_avx2, __attribute__((target("avx2"))))
MBK_DEFINE_MT_DOUBLES(mbk_mt19937_doubles_avx512, __attribute__((target("avx512f"))))
#endif

/* The smallest all-ones mask covering rng: NumPy's legacy bounded draws (randint, and the
 * shuffle behind choice without replacement) keep a word masked to it if it is <= rng. */
static inline uint32_t mbk_covering_mask(uint32_t rng) {
    rng |= rng >> 1;
    rng |= rng >> 2;
    rng |= rng >> 4;
    rng |= rng >> 8;
    rng |= rng >> 16;
    return rng;
}

/* out[0..n) = RandomState.randint(0, rng + 1, n), rng < 2**32: NumPy's legacy bounded
 * integers (masked rejection: a word masked to the smallest all-ones mask covering rng, drawn
 * again while above rng; no word at all for rng = 0), leaving the state where NumPy would. */
static void mbk_mt19937_randint(mbk_mt19937_state *state, uint32_t rng, int64_t *out,
                                Py_ssize_t n) {
    uint32_t mask = mbk_covering_mask(rng), word;
    Py_ssize_t i = 0;
    if (rng == 0) {
        for (; i < n; i++) out[i] = 0;
        return;
    }
    /* Every word is written at out[i] and kept by moving i on: no branch on the rejections,
     * which are unpredictable (a third of the words for 20,640 rows). */
    while (i < n) {
        if (state->pos == MBK_MT_N) mbk_mt19937_generate(state);
        int j = state->pos;
        for (; j < MBK_MT_N && i < n; j++) {
            word = mbk_mt_temper(state->key[j]) & mask;
            out[i] = word;
            i += word <= rng;
        }
        state->pos = j;
    }
}

/* The widest variant this CPU runs: 2 (AVX-512), 1 (AVX2) or 0; lower ones may be chosen
 * with mbk_mt19937_use (tests run every variant). */
static int mbk_mt19937_best(void) {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") ? 2 : __builtin_cpu_supports("avx2") ? 1 : 0;
#else
    return 0;
#endif
}

static int mbk_mt19937_isa = -1; /* -1: not chosen yet */

/* Use variant isa (at most mbk_mt19937_best()); returns the one in use before. */
static int mbk_mt19937_use(int isa) {
    int old = mbk_mt19937_isa < 0 ? mbk_mt19937_best() : mbk_mt19937_isa;
    mbk_mt19937_isa = isa < 0 ? 0 : isa > mbk_mt19937_best() ? mbk_mt19937_best() : isa;
    return old;
}

static void mbk_mt19937_doubles(mbk_mt19937_state *state, double *out, Py_ssize_t n) {
    /* Called with the bit generator's lock held: one thread at a time. */
    if (mbk_mt19937_isa < 0) mbk_mt19937_isa = mbk_mt19937_best();
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
    if (mbk_mt19937_isa == 2) {
        mbk_mt19937_doubles_avx512(state, out, n);
        return;
    }
    if (mbk_mt19937_isa == 1) {
        mbk_mt19937_doubles_avx2(state, out, n);
        return;
    }
#endif
    mbk_mt19937_doubles_baseline(state, out, n);
}

#endif /* MBK_MT19937_H */

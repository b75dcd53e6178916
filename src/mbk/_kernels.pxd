# The micro-kernels' interface (_kernels.h), and small C helpers every compiled module uses.
# Declarations only: there is no _kernels.pyx. The kernels themselves (_tiles.h) are compiled
# into _dense alone, which hands variants out (see _dense.pxd: kernels_for, active_kernels).

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int mbk_omp_max_threads(void) { return omp_get_max_threads(); }
    static const int MBK_OPENMP_ENABLED = 1;
    #else
    static int mbk_omp_max_threads(void) { return 1; }
    static const int MBK_OPENMP_ENABLED = 0;
    #endif
    #if defined(__GNUC__) || defined(__clang__)
    #define mbk_prefetch(address) __builtin_prefetch(address)
    /* A flag one thread raises and another polls while it works (release / acquire). */
    #define mbk_raise_flag(flag) __atomic_store_n((flag), 1, __ATOMIC_RELEASE)
    #define mbk_flag_raised(flag) __atomic_load_n((flag), __ATOMIC_ACQUIRE)
    #else
    #define mbk_prefetch(address) ((void)0)
    #define mbk_raise_flag(flag) (*(volatile int *)(flag) = 1)
    #define mbk_flag_raised(flag) (*(volatile const int *)(flag))
    #endif
    """
    int mbk_omp_max_threads() noexcept nogil
    const int MBK_OPENMP_ENABLED
    void mbk_prefetch(const void* address) noexcept nogil
    void mbk_raise_flag(int* flag) noexcept nogil
    int mbk_flag_raised(const int* flag) noexcept nogil


cdef extern from "_kernels.h":
    # Every kernel reads the tile's rows at x + r * x_stride (see _tile_rows).
    ctypedef void (*mbk_nearest_float_fn)(const float*, Py_ssize_t, const float*, const float*,
                                          Py_ssize_t, Py_ssize_t, int*, float*) noexcept nogil
    ctypedef void (*mbk_nearest_double_fn)(const double*, Py_ssize_t, const double*,
                                           const double*, Py_ssize_t, Py_ssize_t, int*,
                                           double*) noexcept nogil
    ctypedef void (*mbk_distance_float_fn)(const float*, Py_ssize_t, const float*, Py_ssize_t,
                                           Py_ssize_t, Py_ssize_t, int, float*) noexcept nogil
    ctypedef void (*mbk_distance_double_fn)(const double*, Py_ssize_t, const double*,
                                            Py_ssize_t, Py_ssize_t, Py_ssize_t, int,
                                            double*) noexcept nogil
    ctypedef void (*mbk_add_rows_float_fn)(const float*, Py_ssize_t, const Py_ssize_t*,
                                           const Py_ssize_t*, const int*, Py_ssize_t,
                                           const float*, Py_ssize_t, double*) noexcept nogil
    ctypedef void (*mbk_add_rows_double_fn)(const double*, Py_ssize_t, const Py_ssize_t*,
                                            const Py_ssize_t*, const int*, Py_ssize_t,
                                            const double*, Py_ssize_t, double*) noexcept nogil
    ctypedef int (*mbk_all_finite_float_fn)(const float*, Py_ssize_t) noexcept nogil
    ctypedef int (*mbk_all_finite_double_fn)(const double*, Py_ssize_t) noexcept nogil
    ctypedef void (*mbk_row_distances_float_fn)(const float*, Py_ssize_t, const float*,
                                                const int*, Py_ssize_t, int,
                                                float*) noexcept nogil
    ctypedef void (*mbk_row_distances_double_fn)(const double*, Py_ssize_t, const double*,
                                                 const int*, Py_ssize_t, int,
                                                 double*) noexcept nogil
    ctypedef void (*mbk_candidates_float_fn)(const float*, Py_ssize_t, Py_ssize_t,
                                             const double*, int, const double*, const double*,
                                             const float*, float*, Py_ssize_t) noexcept nogil
    ctypedef void (*mbk_candidates_double_fn)(const double*, Py_ssize_t, Py_ssize_t,
                                              const double*, int, const double*,
                                              const double*, const double*, double*,
                                              Py_ssize_t) noexcept nogil
    ctypedef void (*mbk_nearest_few_float_fn)(const float*, int, const float*, const float*,
                                              Py_ssize_t, Py_ssize_t, int*,
                                              float*) noexcept nogil
    ctypedef void (*mbk_nearest_few_double_fn)(const double*, int, const double*,
                                               const double*, Py_ssize_t, Py_ssize_t, int*,
                                               double*) noexcept nogil
    ctypedef void (*mbk_nearest_three_float_fn)(const float*, Py_ssize_t, Py_ssize_t,
                                                const Py_ssize_t*, int, const float*, Py_ssize_t,
                                                Py_ssize_t, int*, int*, double*, double*,
                                                double*) noexcept nogil
    ctypedef void (*mbk_nearest_three_double_fn)(const double*, Py_ssize_t, Py_ssize_t,
                                                 const Py_ssize_t*, int, const double*,
                                                 Py_ssize_t, Py_ssize_t, int*, int*, double*,
                                                 double*, double*) noexcept nogil
    ctypedef Py_ssize_t (*mbk_bound_tests_fn)(Py_ssize_t, const Py_ssize_t*, Py_ssize_t,
                                              const int*, const int*, double*, double*,
                                              double*, unsigned char*, const double*,
                                              const double*, const double*, Py_ssize_t,
                                              unsigned char*, Py_ssize_t*) noexcept nogil
    ctypedef struct mbk_variant:
        const char* name
        int tile_rows
        Py_ssize_t lanes_float
        Py_ssize_t lanes_double
        Py_ssize_t block_float
        Py_ssize_t block_double
        mbk_nearest_float_fn nearest_float
        mbk_nearest_double_fn nearest_double
        mbk_distance_float_fn distance_float
        mbk_distance_double_fn distance_double
        mbk_add_rows_float_fn add_rows_float
        mbk_add_rows_double_fn add_rows_double
        mbk_all_finite_float_fn all_finite_float
        mbk_all_finite_double_fn all_finite_double
        mbk_row_distances_float_fn row_distances_float
        mbk_row_distances_double_fn row_distances_double
        mbk_candidates_float_fn candidates_float
        mbk_candidates_double_fn candidates_double
        Py_ssize_t candidate_rows
        mbk_nearest_few_float_fn nearest_few_float
        mbk_nearest_few_double_fn nearest_few_double
        mbk_nearest_three_float_fn nearest_three_float
        mbk_nearest_three_double_fn nearest_three_double
        mbk_bound_tests_fn bound_tests
    const int MBK_MAX_TILE_ROWS
    const int MBK_MAX_FEW_FEATURES
    void mbk_prefetch_span(const void* p, Py_ssize_t n_bytes) noexcept nogil
    void mbk_prefetch_row(const void* p, Py_ssize_t n_features, Py_ssize_t col_stride,
                          Py_ssize_t item_bytes) noexcept nogil

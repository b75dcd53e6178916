# Random draws and batch rows: NumPy's random stream read in C (RandomStream, the one bridge),
# and the sampling distribution searched: shared with _dense (whose assignment searches each
# chunk's rows), _sculley_loop (which draws the uniforms), the reassignment and
# _seeding_kernels (k-means++'s candidates).

# NumPy's bit-generator interface (numpy/random/bitgen.h, a stable C ABI since NumPy 1.17):
# drawing doubles through it continues the very stream RandomState.random_sample reads, so
# fit's loop consumes scikit-learn's random numbers in scikit-learn's order without a
# Python call per step.
cdef extern from *:
    """
    #include <stdint.h>
    typedef struct mbk_bitgen {
        void *state;
        uint64_t (*next_uint64)(void *st);
        uint32_t (*next_uint32)(void *st);
        double (*next_double)(void *st);
        uint64_t (*next_raw)(void *st);
    } mbk_bitgen;
    """
    ctypedef struct mbk_bitgen:
        void* state
        unsigned int (*next_uint32)(void* st) noexcept nogil
        double (*next_double)(void* st) noexcept nogil

cdef struct Sampling:
    # A batch still to be drawn: row i of the batch is the first index with cdf > uniforms[i].
    # The uniforms come from the random stream in order (serially); the searches run inside
    # the parallel assignment, each thread searching the chunks it is about to assign.
    # The cdf is a table (cdf != NULL, with its guide table) or, for equal weights, straight
    # segments (see mbk._sampling.WeightedRowSampler).
    const double* cdf
    const Py_ssize_t* guide
    Py_ssize_t n_buckets
    const Py_ssize_t* segment_starts   # (n_segments + 1,), the last is n_samples
    const double* segment_values
    const double* segment_steps
    Py_ssize_t n_segments
    const Py_ssize_t* segment_guide    # (n_segment_buckets,) where each bucket's search starts
    Py_ssize_t n_segment_buckets
    double last                        # the running sum's last value: cdf = sum / last
    double inverse_last                # 1 / last, rounded
    Py_ssize_t n_samples
    const double* uniforms
    Py_ssize_t* rows          # OUT: the batch's rows (the Rows.index being assigned)


cdef void _search_rows(const Sampling* sampling, Py_ssize_t start, Py_ssize_t end) noexcept nogil


cdef class RowTables:
    # The sampling distribution of fit's batches in compiled form: the base class of
    # mbk._sampling.WeightedRowSampler, which builds the tables.
    cdef Sampling tables      # valid once ready(); uniforms and rows: each caller sets its own
    cdef object checked       # the tables `tables` points into, as ready() checked them
    cdef int ready(self) except -1


cdef class RandomStream:
    # The one bridge from NumPy's random stream into compiled code: every compiled draw goes
    # through here, in the order and with the values RandomState's own methods would give.
    cdef readonly object random_state
    cdef object lock
    cdef mbk_bitgen* bitgen
    cdef bint from_state      # MT19937 whose state _mt19937.h reads directly
    cdef int doubles(self, double* out, Py_ssize_t n) except -1
    cdef int shuffled_range(self, Py_ssize_t* out, Py_ssize_t n) except -1

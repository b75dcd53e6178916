# Drawing batch rows from the sampling distribution, shared with _core (whose assignment
# searches each chunk's rows) and _step_kernels (whose fit loop draws the uniforms).

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
    Py_ssize_t n_samples
    const double* uniforms
    Py_ssize_t* rows          # OUT: the batch's rows (the Rows.index being assigned)


cdef void _search_rows(const Sampling* sampling, Py_ssize_t start, Py_ssize_t end) noexcept nogil
cdef int _prepare_sampling(Sampling* sampling, sampler, Py_ssize_t n_samples) except -1

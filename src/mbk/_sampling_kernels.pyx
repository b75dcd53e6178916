"""Compiled random draws and batch drawing: NumPy's random stream read in C, and rows of X
from uniform draws, by the sampler's cdf.

A batch row is the first index whose cdf exceeds a uniform draw, as
``RandomState.choice(n, p=...)`` finds it; ``mbk._sampling.WeightedRowSampler`` builds the
distribution once per fit (a cdf with a guide table, or exact straight segments for equal
weights) and these searches run per draw, inside the parallel assignment during fit.
"""

from cpython.pycapsule cimport PyCapsule_GetPointer
from libc.math cimport floor, frexp, ldexp
from libc.stdint cimport int64_t, uint32_t

from mbk._kernels cimport mbk_prefetch

import numpy as np

# The same doubles, many at a time, straight from MT19937's state (see _mt19937.h).
cdef extern from "_mt19937.h":
    ctypedef struct mbk_mt19937_state:
        pass
    void mbk_mt19937_doubles(mbk_mt19937_state* state, double* out, Py_ssize_t n) noexcept nogil
    int mbk_mt19937_best()
    int mbk_mt19937_use(int isa)
    void mbk_mt19937_randint(mbk_mt19937_state* state, uint32_t rng, int64_t* out,
                             Py_ssize_t n) noexcept nogil
    uint32_t mbk_covering_mask(uint32_t rng) noexcept nogil


def mt19937_variants():
    """The instruction-set variants of the direct MT19937 draws this CPU runs, best first
    (0: baseline, 1: AVX2, 2: AVX-512; tests run each against NumPy)."""
    return list(range(mbk_mt19937_best(), -1, -1))


def switch_mt19937_variant(int isa):
    """Draw with variant isa (see mt19937_variants); returns the variant used before
    (set through _tuning.use_mt19937_variant)."""
    return mbk_mt19937_use(isa)


# ---------------------------------------------------------------------------------------------
# NumPy's random stream: the bridge
# ---------------------------------------------------------------------------------------------

# Whether NumPy's MT19937 state has the layout _mt19937.h reads (checked once, at import).
cdef bint mt19937_layout_ok = False


cdef class RandomStream:
    """A RandomState's stream, drawn from compiled code.

    The only place that reads a RandomState's private parts: its bit generator's C interface
    (``_bit_generator.capsule``, numpy/random/bitgen.h, a stable ABI since NumPy 1.17) and the
    lock that serialises its users. Drawing through the interface continues the very stream
    RandomState's methods read, so compiled code consumes scikit-learn's random numbers in
    scikit-learn's order without a Python call per draw. For MT19937 whose state has the
    layout _mt19937.h expects (checked at import), doubles and bounded integers are drawn
    from the state directly, many at a time, with the same values.
    """

    def __init__(self, random_state):
        bit_generator = random_state._bit_generator
        self.random_state = random_state
        self.lock = bit_generator.lock
        self.bitgen = <mbk_bitgen*> PyCapsule_GetPointer(bit_generator.capsule, b"BitGenerator")
        self.from_state = mt19937_layout_ok and type(bit_generator) is np.random.MT19937

    cdef int doubles(self, double* out, Py_ssize_t n) except -1:
        """out[0..n) = the stream's next n doubles (random_sample(n))."""
        cdef Py_ssize_t i
        if n <= 0:
            return 0
        with self.lock:
            if self.from_state:
                mbk_mt19937_doubles(<mbk_mt19937_state*> self.bitgen.state, out, n)
            else:
                for i in range(n):
                    out[i] = self.bitgen.next_double(self.bitgen.state)
        return 0

    cdef int shuffled_range(self, Py_ssize_t* out, Py_ssize_t n) except -1:
        """out[0..n) = RandomState.permutation(n), n < 2**32: 0 .. n - 1 shuffled by NumPy's
        legacy Fisher-Yates (from the end, each swap partner a masked-rejection draw of one
        32-bit word in [0, i]), drawing what NumPy draws."""
        cdef Py_ssize_t i, j, swapped
        cdef uint32_t mask, word
        cdef mbk_bitgen* bitgen = self.bitgen
        for i in range(n):
            out[i] = i
        with self.lock:
            for i in range(n - 1, 0, -1):
                mask = mbk_covering_mask(<uint32_t> i)
                word = bitgen.next_uint32(bitgen.state) & mask
                while word > i:
                    word = bitgen.next_uint32(bitgen.state) & mask
                j = word
                swapped = out[j]
                out[j] = out[i]
                out[i] = swapped
        return 0

    def randint(self, Py_ssize_t high, Py_ssize_t size):
        """``random_state.randint(0, high, size)`` as intp: the same values and stream (from
        MT19937's state directly where it can: several times faster than NumPy's call)."""
        if not (self.from_state and 1 <= high <= 2**32 and size >= 0):
            return self.random_state.randint(0, high, size).astype(np.intp, copy=False)
        out = np.empty(size, dtype=np.int64)
        cdef int64_t[::1] view = out
        if size > 0:
            with self.lock:
                mbk_mt19937_randint(<mbk_mt19937_state*> self.bitgen.state,
                                    <uint32_t> (high - 1), &view[0], size)
        return out.astype(np.intp, copy=False)


def random_sample(random_state, Py_ssize_t n):
    """n doubles from the stream (what ``random_state.random_sample(n)`` returns)."""
    cdef RandomStream stream = RandomStream(random_state)
    out = np.empty(n)
    cdef double[::1] view = out
    if n > 0:
        stream.doubles(&view[0], n)
    return out


def randint(random_state, Py_ssize_t high, Py_ssize_t size):
    """``random_state.randint(0, high, size)`` as intp (see RandomStream.randint)."""
    return RandomStream(random_state).randint(high, size)


def choice_without_replacement(random_state, Py_ssize_t n, Py_ssize_t size):
    """``random_state.choice(n, size, replace=False)`` as intp: the same values and the same
    draws (a shuffle of all n, of which the first size are kept). Tests only: mbk draws these
    inside the reassignment."""
    if not (0 <= size <= n < 2**32):
        return random_state.choice(n, size, replace=False).astype(np.intp, copy=False)
    cdef RandomStream stream = RandomStream(random_state)
    order = np.empty(n, dtype=np.intp)
    cdef Py_ssize_t[::1] view = order
    if n > 0:
        stream.shuffled_range(&view[0], n)
    return order[:size].copy()


def _check_mt19937_layout():
    """Turn on direct draws from MT19937's state if they give NumPy's own doubles: runs of
    several twists, from an even and an odd position in the state."""
    global mt19937_layout_ok
    mt19937_layout_ok = True
    try:
        for skip_word in (False, True):
            ours, numpys = np.random.RandomState(20261129), np.random.RandomState(20261129)
            if skip_word:  # one 32-bit word: the doubles then straddle each twist
                ours.bytes(4)
                numpys.bytes(4)
            if not (np.array_equal(random_sample(ours, 1500), numpys.random_sample(1500))
                    and np.array_equal(ours.random_sample(7), numpys.random_sample(7))):
                mt19937_layout_ok = False
    except Exception:
        mt19937_layout_ok = False
    return mt19937_layout_ok


_check_mt19937_layout()


# ---------------------------------------------------------------------------------------------
# Equal weights: the running sums as straight segments
# ---------------------------------------------------------------------------------------------

cdef Py_ssize_t _segments(
        double p, Py_ssize_t n_samples, Py_ssize_t* starts, double* values, double* steps,
        double* last) noexcept nogil:
    """constant_step_segments' work: the number of segments, written to the arrays when
    they are not NULL; -1 when the sums stop growing."""
    cdef Py_ssize_t i = 0, n = 0, run
    cdef long long units
    cdef int exponent
    cdef double value = p, ulp, top, remainder, step
    while i < n_samples:
        frexp(value, &exponent)
        ulp = ldexp(1.0, exponent - 53)
        top = ldexp(1.0, exponent)  # the binade is [top / 2, top)
        units = <long long> floor(p / ulp)  # exact: ulp is a power of two
        remainder = p - <double> units * ulp
        if remainder > ulp / 2:
            units += 1
        elif remainder == ulp / 2:
            if (<long long> (value / ulp)) % 2:
                units = 0  # an odd start: a segment of one value
            else:
                units += units % 2
        elif units == 0:
            return -1
        if units:
            run = min((<Py_ssize_t> ((top - value) / ulp) + units - 1) // units, n_samples - i)
        else:
            run = 1
        step = <double> units * ulp
        if starts != NULL:
            starts[n] = i
            values[n] = value
            steps[n] = step
        n += 1
        # Exact: the run's values are multiples of ulp below top, so below 2**53 ulps.
        last[0] = value + <double> (run - 1) * step
        i += run
        value = last[0] + p
    if starts != NULL:
        starts[n] = n_samples
    return n


def constant_step_segments(double p, Py_ssize_t n_samples):
    """The running sums c_i = fl(c_{i-1} + p), c_0 = p > 0, i < n_samples >= 1, as straight
    segments.

    While c stays in one binade of float64, whose spacing is ulp, c + p rounds to c plus p
    rounded to a multiple of ulp: the same step every time. The one exception is a tie (p's
    remainder is exactly ulp / 2), rounded to even: from an even multiple of ulp the step is
    then the even one of the two candidates, every time, and an odd start gets a segment of
    its own. Where c leaves a binade the next value is computed by the addition itself.

    Returns (starts, values, steps, last), see WeightedRowSampler.segments; or None when p
    is below half a spacing of the sums (some 2**52 rows), where the sums stop growing.
    """
    cdef double last = 0
    cdef Py_ssize_t n = _segments(p, n_samples, NULL, NULL, NULL, &last)
    if n < 0:
        return None
    starts = np.empty(n + 1, dtype=np.intp)
    values = np.empty(n)
    steps = np.empty(n)
    cdef Py_ssize_t[::1] starts_view = starts
    cdef double[::1] values_view = values, steps_view = steps
    _segments(p, n_samples, &starts_view[0], &values_view[0], &steps_view[0], &last)
    return starts, values, steps, last


def segment_guide(const Py_ssize_t[::1] starts, Py_ssize_t n_samples, Py_ssize_t max_buckets):
    """The segment of row floor(b * n_samples / n_buckets) for each bucket b, n_buckets the
    largest power of two at most max_buckets and n_samples (see
    WeightedRowSampler.segment_guide). A draw u in bucket b has u * n_samples >=
    b * n_samples / n_buckets, and so does its rounded product (rounding is monotone), so its
    search never needs a segment before the bucket's."""
    cdef Py_ssize_t n_buckets = 1, b, s = 0, first_row
    while 2 * n_buckets <= min(max_buckets, n_samples):
        n_buckets *= 2
    guide = np.empty(n_buckets, dtype=np.intp)
    cdef Py_ssize_t[::1] out = guide
    for b in range(n_buckets):
        first_row = <Py_ssize_t> (<long long> b * n_samples // n_buckets)  # exact
        while starts[s + 1] <= first_row:
            s += 1
        out[b] = s
    return guide


# ---------------------------------------------------------------------------------------------
# Searching the cdf
# ---------------------------------------------------------------------------------------------

cdef inline Py_ssize_t _search_table(const Sampling* sampling, double u) noexcept nogil:
    """First index i with cdf[i] > u (``cdf.searchsorted(u, side="right")``).

    The guide table (Chen & Asau) holds, for each bucket b, the first index with
    cdf > b / n_buckets. n_buckets is a power of two, so the bucket of u, floor(u * n_buckets),
    is computed exactly, and the answer lies in [guide[b], guide[b + 1]]: a few entries,
    searched without branches.
    """
    cdef const double* cdf = sampling.cdf
    cdef Py_ssize_t b = <Py_ssize_t> (u * sampling.n_buckets)
    cdef Py_ssize_t base = sampling.guide[b], n = sampling.guide[b + 1] - base, half
    while n > 1:
        half = n >> 1
        base = base + half if cdf[base + half] <= u else base
        n -= half
    return base + (cdf[base] <= u)


cdef inline double _segment_sum(
        const Sampling* sampling, Py_ssize_t s, Py_ssize_t i) noexcept nogil:
    """The running sum at row i of segment s (exact, see _constant_step_segments)."""
    return (sampling.segment_values[s]
            + <double> (i - sampling.segment_starts[s]) * sampling.segment_steps[s])


# Around a draw u, the band u * (1 +- SEGMENT_BAND) where the estimate sum * (1 / last)
# cannot decide cdf <= u (see _segment_cdf_at_most).
cdef double SEGMENT_BAND = 1e-15


cdef inline bint _segment_cdf_at_most(
        const Sampling* sampling, Py_ssize_t s, Py_ssize_t i, double u) noexcept nogil:
    """Whether cdf[i] <= u, for equal weights and i in segment s, with cdf[i] exactly as the
    table would hold it: the running sum (exact, see _constant_step_segments) divided by the
    last one, rounded as NumPy's cdf /= cdf[-1].

    The division only decides near u: the running sum times the reciprocal of the last one is
    within 2**-51 (relative) of the quotient, so outside u * (1 +- 1e-15) that product gives
    the answer. Draws are random and the cdf's steps are 1 / n apart, so that band is almost
    never hit, and the draws are searched with multiplications (a division takes several
    times longer).
    """
    cdef double total = _segment_sum(sampling, s, i)
    cdef double estimate = total * sampling.inverse_last
    if estimate < u - u * SEGMENT_BAND:
        return True
    if estimate > u + u * SEGMENT_BAND:
        return False
    return total / sampling.last <= u


cdef inline Py_ssize_t _search_segments(const Sampling* sampling, double u) noexcept nogil:
    """First index i with cdf[i] > u, for equal weights: cdf[i] is within a few rounding
    errors of (i + 1) / n, so floor(u * n) is the answer or next to it.

    Its segment s comes from the guide (the bucket's segment, then forward); the row before
    i is in s or the segment before.
    """
    cdef const Py_ssize_t* starts = sampling.segment_starts
    cdef Py_ssize_t i = min(<Py_ssize_t> (u * sampling.n_samples), sampling.n_samples - 1)
    cdef Py_ssize_t s = sampling.segment_guide[<Py_ssize_t> (u * sampling.n_segment_buckets)]
    cdef Py_ssize_t before
    cdef double below, at, band
    if starts[s] < i < starts[s + 1]:
        # Nearly always: i - 1 and i in the bucket's segment, and both decided by the
        # estimates (cdf[i - 1] <= u < cdf[i]), tested together, without the loops below.
        below = _segment_sum(sampling, s, i - 1) * sampling.inverse_last
        at = _segment_sum(sampling, s, i) * sampling.inverse_last
        band = u * SEGMENT_BAND
        if (below < u - band) & (at > u + band):
            return i
    while starts[s + 1] <= i:
        s += 1
    while i > 0:
        before = s - 1 if i - 1 < starts[s] else s
        if _segment_cdf_at_most(sampling, before, i - 1, u):
            break
        i -= 1
        s = before
    while _segment_cdf_at_most(sampling, s, i, u):  # ends: the last entry is 1 > u
        i += 1
        if starts[s + 1] <= i:
            s += 1
    return i


cdef void _search_rows(const Sampling* sampling, Py_ssize_t start, Py_ssize_t end) noexcept nogil:
    """Fill sampling.rows[start:end], in passes that keep many cache misses in flight.

    On a large X the cdf and guide table do not fit in cache: the guide entries of every
    draw are requested first, then the cdf entries they point to, then the searches run.
    """
    cdef const double* cdf = sampling.cdf
    cdef const Py_ssize_t* guide = sampling.guide
    cdef const double* uniforms = sampling.uniforms
    cdef Py_ssize_t n_buckets = sampling.n_buckets, i
    if cdf == NULL:
        for i in range(start, end):
            sampling.rows[i] = _search_segments(sampling, uniforms[i])
        return
    for i in range(start, end):
        mbk_prefetch(&guide[<Py_ssize_t> (uniforms[i] * n_buckets)])
    for i in range(start, end):
        mbk_prefetch(&cdf[guide[<Py_ssize_t> (uniforms[i] * n_buckets)]])
    for i in range(start, end):
        sampling.rows[i] = _search_table(sampling, uniforms[i])


cdef class RowTables:
    """The tables of fit's batch distribution, for the kernels: the base of
    WeightedRowSampler, whose attributes ``n_samples``, ``segments``, ``segment_guide``,
    ``cdf`` and ``guide`` (documented there) they are.

    The first kernel call after any of them changed checks them all (``ready``) and takes
    their pointers, so the kernels search ``tables`` without reading a Python object.
    """

    cdef int ready(self) except -1:
        """Check the tables (once after each change) and point ``tables`` at them: the
        equal-weight segments (starts, values, steps, last) with their guide, or else the
        cdf with its guide table."""
        cdef const double[::1] cdf_view, values, steps
        cdef const Py_ssize_t[::1] guide_view, starts, segment_guide_view
        cdef Py_ssize_t n_buckets, b, n_samples
        cdef Sampling* tables = &self.tables
        current = (self.n_samples, self.segments, self.segment_guide, self.cdf, self.guide)
        if self.checked is not None and all(
                now is then for now, then in zip(current, self.checked)):
            return 0
        n_samples = current[0]
        tables.n_samples = n_samples
        tables.cdf = NULL
        tables.guide = NULL
        tables.uniforms = NULL
        tables.rows = NULL
        if current[1] is not None:
            starts, values, steps, tables.last = current[1]
            tables.inverse_last = 1 / tables.last
            tables.n_segments = values.shape[0]
            if (tables.n_segments < 1 or starts.shape[0] != tables.n_segments + 1
                    or steps.shape[0] != tables.n_segments or starts[0] != 0
                    or starts[tables.n_segments] != n_samples):
                raise ValueError("malformed cdf segments")
            segment_guide_view = current[2]
            n_buckets = segment_guide_view.shape[0]
            if n_buckets < 1 or n_buckets & (n_buckets - 1):
                raise ValueError("a segment guide of 2**m entries is needed")
            for b in range(n_buckets):
                if not 0 <= segment_guide_view[b] < tables.n_segments:
                    raise ValueError("malformed segment guide")
            tables.segment_starts = &starts[0]
            tables.segment_values = &values[0]
            tables.segment_steps = &steps[0]
            tables.segment_guide = &segment_guide_view[0]
            tables.n_segment_buckets = n_buckets
        else:
            if current[3] is None or current[4] is None:
                raise ValueError("the sampler has no tables")
            cdf_view = current[3]
            guide_view = current[4]
            n_buckets = guide_view.shape[0] - 1
            if cdf_view.shape[0] != n_samples or n_buckets < 1 or n_buckets & (n_buckets - 1):
                raise ValueError("a cdf of n_samples entries and a guide table of 2**m + 1 "
                                 "entries are needed")
            tables.cdf = &cdf_view[0]
            tables.guide = &guide_view[0]
            tables.n_buckets = n_buckets
        self.checked = current
        return 0


# ---------------------------------------------------------------------------------------------
# Drawing a batch outside fit (WeightedRowSampler.draw)
# ---------------------------------------------------------------------------------------------

def draw_rows(
        RowTables sampler,                # IN a mbk._sampling.WeightedRowSampler
        const double[::1] uniforms,       # IN draws in [0, 1)
        Py_ssize_t[::1] rows):            # OUT (len(uniforms),)
    """rows[i] = first index with cdf > uniforms[i], by the sampler's search."""
    cdef Sampling sampling
    sampler.ready()
    sampling = sampler.tables
    if rows.shape[0] != uniforms.shape[0]:
        raise ValueError("rows must have one entry per uniform draw")
    if rows.shape[0] == 0:
        return
    sampling.uniforms = &uniforms[0]
    sampling.rows = &rows[0]
    with nogil:
        _search_rows(&sampling, 0, rows.shape[0])

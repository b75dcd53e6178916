"""The compiled kernels against the plain-NumPy reference, across dtypes, shapes and layouts."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from _reference import distances, inertia, minibatch_update, nearest_centers
from mbk import _core, _dense, _sampling_kernels, _seeding_kernels, _tuning

CHUNK = _core.CHUNK_SIZE


@pytest.fixture(autouse=True, params=_dense.available_isas())
def kernel_variant(request):
    """Run every kernel test on every instruction-set variant this CPU supports."""
    previous = _tuning.use_isa(request.param)
    yield request.param
    _tuning.use_isa(previous)


DTYPES = [np.float32, np.float64]
RTOL = {np.float32: 1e-5, np.float64: 1e-12}


def random_problem(n_rows, n_features, n_clusters, dtype, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n_rows, n_features)).astype(dtype)
    centers = rng.normal(size=(n_clusters, n_features)).astype(dtype)
    return X, centers


def assert_nearest(X, centers, labels, dtype):
    """Labels are the reference's; in float32 a near-tie may go either way."""
    ref_labels, ref_sq = nearest_centers(X, centers)
    if dtype == np.float64:
        assert_array_equal(labels, ref_labels)
    else:
        chosen = ((X.astype(np.float64) - centers[labels].astype(np.float64)) ** 2).sum(axis=1)
        assert np.all(chosen <= ref_sq + 1e-4 * (1 + ref_sq))


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("n_rows", [1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 7])
@pytest.mark.parametrize("n_features", [1, 3, 4, 5, 17])
@pytest.mark.parametrize("n_clusters", [1, 2, 7, 33])
def test_assign_labels_matches_reference(dtype, n_rows, n_features, n_clusters):
    X, centers = random_problem(n_rows, n_features, n_clusters, dtype)
    labels = np.full(n_rows, -1, dtype=np.int32)
    result = _core.assign_labels(X, centers, labels, n_threads=2)
    assert_nearest(X, centers, labels, dtype)
    assert_allclose(result, inertia(X, centers, labels), rtol=RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_assign_labels_with_indices_and_weights(dtype):
    X, centers = random_problem(700, 6, 9, dtype)
    rng = np.random.RandomState(1)
    rows = rng.randint(0, 700, 555).astype(np.intp)
    weights = rng.uniform(0, 3, 700).astype(dtype)
    labels = np.empty(555, dtype=np.int32)
    result = _core.assign_labels(X, centers, labels, rows, weights, n_threads=2)
    expected_labels, _ = nearest_centers(X[rows], centers)
    if dtype == np.float64:
        assert_array_equal(labels, expected_labels)
    assert_allclose(result, inertia(X[rows], centers, labels, weights[rows]), rtol=RTOL[dtype])


def test_ties_go_to_the_lowest_index():
    X = np.array([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]])
    centers = np.array([[1.0, 1.0], [1.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
    labels = np.empty(3, dtype=np.int32)
    _core.assign_labels(X, centers, labels)
    assert_array_equal(labels, [2, 0, 0])


@pytest.fixture(params=["batch-order", "by-center"])
def update_order(request):
    """Run the test with the center update in batch order into every center's sums, then
    center by center (which one a problem gets depends on its n_clusters * n_features)."""
    old = _tuning.set_batch_order_sums(2**62 if request.param == "batch-order" else 0)
    yield request.param
    _tuning.set_batch_order_sums(old)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("n_batch", [1, CHUNK - 1, CHUNK + 1, 2 * CHUNK + 5])
# 17 and 70 features: vector remainders, and more features than one register pass holds
@pytest.mark.parametrize("n_features", [1, 5, 8, 17, 70])
@pytest.mark.parametrize("weighted", [False, True], ids=["unit", "weighted"])
def test_minibatch_step_matches_reference(dtype, n_batch, n_features, weighted, update_order):
    n_clusters = 6
    X, centers = random_problem(2 * n_batch + 3, n_features, n_clusters, dtype, seed=n_batch)
    rng = np.random.RandomState(2)
    rows = rng.randint(0, X.shape[0], n_batch).astype(np.intp)
    weights = rng.uniform(0.1, 2, X.shape[0]).astype(dtype) if weighted else None
    weight_sums = rng.randint(0, 5, n_clusters).astype(np.float64)
    labels = np.empty(n_batch, dtype=np.int32)
    centers_new = np.empty_like(centers)
    new_sums = weight_sums.copy()

    batch_inertia = _core.minibatch_step(
        X, centers, centers_new, new_sums, labels, rows, weights, n_threads=2
    )

    batch_weights = None if weights is None else weights[rows]
    assert_allclose(
        batch_inertia, inertia(X[rows], centers, labels, batch_weights), rtol=RTOL[dtype]
    )
    expected_centers, expected_sums = minibatch_update(
        X[rows], batch_weights, centers, weight_sums, labels
    )
    assert centers_new.dtype == dtype
    assert_allclose(centers_new, expected_centers, rtol=RTOL[dtype], atol=RTOL[dtype])
    assert_allclose(new_sums, expected_sums, rtol=1e-12)


def test_minibatch_step_in_place_equals_two_buffers(update_order):
    X, centers = random_problem(900, 7, 10, np.float64)
    sums_a = np.zeros(10)
    sums_b = np.zeros(10)
    separate = np.empty_like(centers)
    in_place = centers.copy()
    labels = np.empty(900, dtype=np.int32)
    _core.minibatch_step(X, centers, separate, sums_a, labels)
    _core.minibatch_step(X, in_place, in_place, sums_b, labels)
    assert_array_equal(separate, in_place)
    assert_array_equal(sums_a, sums_b)


def test_minibatch_step_scans_its_batch_for_non_finite_values_only_without_indices():
    X, centers = random_problem(3 * CHUNK + 5, 4, 3, np.float64)
    labels = np.empty(len(X), dtype=np.int32)
    X[CHUNK + 1, 2] = np.nan
    before = centers.copy()
    assert _core.minibatch_step(X, centers, centers, np.zeros(3), labels, check_finite=True) is None
    assert_array_equal(centers, before)  # a batch holding NaN moves no center
    with pytest.raises(ValueError, match="pass no sample_indices"):
        _core.minibatch_step(
            X, centers, centers, np.zeros(3), labels[:2], np.arange(2), check_finite=True
        )


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("layout", ["C", "fortran"])
def test_both_update_orders_give_the_same_bits(dtype, layout):
    # Every center's sums take its rows in batch order either way.
    X, centers = random_problem(3 * CHUNK + 5, 19, 9, dtype, seed=4)
    X = np.asfortranarray(X) if layout == "fortran" else X
    rng = np.random.RandomState(5)
    rows = rng.randint(0, len(X), 2 * CHUNK + 3).astype(np.intp)
    weights = rng.uniform(0.5, 2, len(X)).astype(dtype)
    results = []
    for n_sums in (2**62, 0):
        old = _tuning.set_batch_order_sums(n_sums)
        try:
            for row_weights in (None, weights):
                new = np.empty_like(centers)
                sums = np.arange(9, dtype=np.float64)
                labels = np.empty(len(rows), dtype=np.int32)
                _core.minibatch_step(X, centers, new, sums, labels, rows, row_weights, 2)
                results.append((new, sums))
        finally:
            _tuning.set_batch_order_sums(old)
    for expected, got in zip(results[:2], results[2:], strict=True):
        assert_array_equal(got[0], expected[0])
        assert_array_equal(got[1], expected[1])


def test_empty_and_zero_weight_clusters_stay_put(update_order):
    X = np.array([[0.0], [0.1], [10.0]])
    centers = np.array([[0.0], [10.0], [100.0]])
    weights = np.array([1.0, 1.0, 0.0])
    sums = np.array([1.0, 2.0, 3.0])
    new = np.empty_like(centers)
    labels = np.empty(3, dtype=np.int32)
    _core.minibatch_step(X, centers, new, sums, labels, None, weights)
    # Center 0 gets rows 0 and 1: (0 * 1 + 0 + 0.1) / 3; center 1 only a zero-weight row.
    assert_allclose(new[:, 0], [0.1 / 3, 10.0, 100.0])
    assert_array_equal(sums, [3.0, 2.0, 3.0])


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("n_rows", [1, CHUNK + 1])
def test_euclidean_distances_matches_reference(dtype, n_rows):
    X, centers = random_problem(n_rows, 5, 4, dtype)
    out = np.empty((n_rows, 4), dtype=dtype)
    _core.euclidean_distances(X, centers, out, n_threads=2)
    assert_allclose(out, distances(X, centers), rtol=RTOL[dtype] * 10)


def layouts(X):
    """The same rows as X in other memory layouts, each read in place by the kernels."""
    fortran = np.asfortranarray(X)
    wide = np.zeros((X.shape[0] * 2, X.shape[1] * 3), dtype=X.dtype)
    wide[::2, ::3] = X
    readonly = X.copy()
    readonly.setflags(write=False)
    reversed_rows = X[::-1].copy()[::-1]
    return {
        "fortran": fortran,
        "strided": wide[::2, ::3],
        "readonly": readonly,
        "negative-strides": reversed_rows,
    }


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("layout", ["fortran", "strided", "readonly", "negative-strides"])
def test_layouts_give_identical_results(dtype, layout, update_order):
    # 19 features: a vector remainder in every variant's center update
    X, centers = random_problem(3 * CHUNK + 11, 19, 5, dtype)
    weights = np.random.RandomState(1).uniform(0.5, 2, len(X)).astype(dtype)
    other = layouts(X)[layout]
    assert not np.shares_memory(other, X) or layout == "negative-strides"

    def run(data):
        labels = np.empty(len(data), dtype=np.int32)
        total = _core.assign_labels(data, centers, labels, n_threads=2)
        out = np.empty((len(data), 5), dtype=dtype)
        _core.euclidean_distances(data, centers, out, n_threads=2)
        new = np.empty_like(centers)
        sums = np.zeros(5)
        rows = np.arange(0, len(data), 3, dtype=np.intp)
        step_labels = np.empty(len(rows), dtype=np.int32)
        step = _core.minibatch_step(data, centers, new, sums, step_labels, rows, None, 2)
        weighted = np.empty_like(centers)
        weighted_sums = np.ones(5)
        _core.minibatch_step(data, centers, weighted, weighted_sums, step_labels, rows, weights, 2)
        return labels, total, out, new, sums, step, weighted, weighted_sums

    for expected, got in zip(run(X), run(other), strict=True):
        assert_array_equal(got, expected)


def padded_rows(X):
    """X's rows with a gap after each (contiguous features, row stride > n_features)."""
    padded = np.zeros((X.shape[0], X.shape[1] + 3), dtype=X.dtype)
    padded[:, : X.shape[1]] = X
    return padded[:, : X.shape[1]]


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("n_features", [1, 3, 17, 67])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_all_finite_finds_any_non_finite_value_in_any_layout(dtype, n_features, bad):
    rng = np.random.RandomState(n_features)
    n_rows = 3 * 65536 // n_features + 5  # several scan chunks, and a partial one
    X = rng.normal(size=(n_rows, n_features)).astype(dtype)
    X[rng.randint(0, n_rows, 20), rng.randint(0, n_features, 20)] = np.finfo(dtype).max
    cells = [(0, 0), (n_rows - 1, n_features - 1), (n_rows // 2, n_features // 2)]
    cells += [tuple(cell) for cell in rng.randint(0, [n_rows, n_features], size=(3, 2))]
    # Some rows a piece at a time first, as fit's steps scan X, then the rest in parallel.
    for threads, in_pieces in [(1, 0), (2, 0), (2, n_rows // 3), (1, n_rows)]:
        for data in [X, padded_rows(X), *layouts(X).values()]:
            assert _core.all_finite(data, threads, in_pieces)
        for cell in cells:
            Y = X.copy()
            Y[cell] = bad
            for data in [Y, padded_rows(Y), *layouts(Y).values()]:
                assert not _core.all_finite(data, threads, in_pieces), (cell, data.strides)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_assign_labels_can_scan_for_non_finite_rows_on_its_pass(dtype):
    X, centers = random_problem(3 * CHUNK + 11, 5, 4, dtype)
    labels = np.empty(len(X), dtype=np.int32)
    expected = np.empty(len(X), dtype=np.int32)
    assert _core.assign_labels(X, centers, labels, n_threads=2, check_finite=True) is not None
    _core.assign_labels(X, centers, expected, n_threads=2)
    assert_array_equal(labels, expected)
    for row in (0, CHUNK, len(X) - 1):
        Y = X.copy()
        Y[row, 4] = np.nan
        for data in [Y, *layouts(Y).values()]:
            assert (
                _core.assign_labels(data, centers, labels, n_threads=2, check_finite=True) is None
            )
            assert labels.min() >= 0 and labels.max() < 4  # meaningless, but in range
    with pytest.raises(ValueError, match="all rows"):
        _core.assign_labels(X, centers, labels[:3], np.arange(3), check_finite=True)


def test_memmap_input(tmp_path):
    X, centers = random_problem(600, 4, 3, np.float64)
    path = tmp_path / "x.dat"
    mapped = np.memmap(path, dtype=np.float64, mode="w+", shape=X.shape)
    mapped[:] = X
    mapped.flush()
    readonly = np.memmap(path, dtype=np.float64, mode="r", shape=X.shape)
    labels_a = np.empty(600, dtype=np.int32)
    labels_b = np.empty(600, dtype=np.int32)
    assert _core.assign_labels(readonly, centers, labels_a) == _core.assign_labels(
        X, centers, labels_b
    )
    assert_array_equal(labels_a, labels_b)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_kernels_are_bitwise_identical_for_any_thread_count(dtype, update_order):
    X, centers = random_problem(5 * CHUNK + 3, 9, 12, dtype, seed=5)
    rows = np.random.RandomState(0).randint(0, len(X), 4 * CHUNK + 1).astype(np.intp)
    weights = np.random.RandomState(1).uniform(0.5, 2, len(X)).astype(dtype)
    results = []
    for n_threads in (1, 2, 3):
        labels = np.empty(len(X), dtype=np.int32)
        total = _core.assign_labels(X, centers, labels, None, weights, n_threads)
        new = np.empty_like(centers)
        sums = np.arange(12, dtype=np.float64)
        step_labels = np.empty(len(rows), dtype=np.int32)
        step = _core.minibatch_step(X, centers, new, sums, step_labels, rows, weights, n_threads)
        out = np.empty((len(X), 12), dtype=dtype)
        _core.euclidean_distances(X, centers, out, n_threads)
        results.append((labels, total, new, sums, step, out))
    for other in results[1:]:
        for expected, got in zip(results[0], other, strict=True):
            assert_array_equal(got, expected)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_center_update_is_bitwise_identical_on_every_variant(dtype, kernel_variant, update_order):
    # The update never fuses multiply and add, so every variant must give the scalar loop's
    # bits (the Fortran-ordered copy takes the scalar loop). Rows far apart from each other
    # relative to the noise, so the labels cannot depend on the variant either.
    rng = np.random.RandomState(3)
    centers = (rng.normal(size=(7, 70)) * 100).astype(dtype)
    X = (centers[rng.randint(0, 7, 2 * CHUNK + 9)] + rng.normal(size=(2 * CHUNK + 9, 70))).astype(
        dtype
    )
    weights = rng.uniform(0.5, 2, len(X)).astype(dtype)
    rows = rng.randint(0, len(X), CHUNK + 40).astype(np.intp)

    def step(data):
        new = np.empty_like(centers)
        sums = np.arange(7, dtype=np.float64)
        labels = np.empty(len(rows), dtype=np.int32)
        _core.minibatch_step(data, centers, new, sums, labels, rows, weights, 2)
        return new, sums

    for expected, got in zip(step(np.asfortranarray(X)), step(X), strict=True):
        assert_array_equal(got, expected)


def test_kernel_argument_checks():
    X, centers = random_problem(10, 3, 2, np.float64)
    with pytest.raises(ValueError, match="features"):
        _core.assign_labels(X, centers[:, :2].copy(), np.empty(10, np.int32))
    with pytest.raises(ValueError, match="labels"):
        _core.assign_labels(X, centers, np.empty(9, np.int32))
    with pytest.raises(ValueError, match="sample_weight"):
        _core.assign_labels(X, centers, np.empty(10, np.int32), None, np.ones(9))
    with pytest.raises(ValueError, match="match centers_old"):
        _core.minibatch_step(X, centers, np.empty((3, 3)), np.zeros(2), np.empty(10, np.int32))
    with pytest.raises(ValueError, match="out must have shape"):
        _core.euclidean_distances(X, centers, np.empty((10, 3)))


def sklearn_sq_distance(a, b):
    """scikit-learn's _euclidean_dense_dense, squared, in a's dtype, in its order: features in
    groups of four, ((d0^2 + d1^2) + d2^2) + d3^2 added to the total, then the rest one by
    one."""
    total = a.dtype.type(0)
    n_grouped = len(a) // 4 * 4
    for f in range(0, n_grouped, 4):
        d = a[f : f + 4] - b[f : f + 4]
        total += ((d[0] * d[0] + d[1] * d[1]) + d[2] * d[2]) + d[3] * d[3]
    for f in range(n_grouped, len(a)):
        total += (a[f] - b[f]) * (a[f] - b[f])
    return total


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("n_features", [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33, 67])
def test_inertia_rounds_as_scikit_learn(dtype, n_features):
    # Every row's squared distance in scikit-learn's order (bitwise), then weighted and
    # added in float64 in row order (one chunk).
    X, centers = random_problem(CHUNK - 3, n_features, 9, dtype, seed=n_features)
    X *= 1 + np.random.RandomState(1).rand(*X.shape).astype(dtype)  # no exact ties in sums
    weights = np.random.RandomState(2).uniform(0.5, 2, len(X)).astype(dtype)
    labels = np.empty(len(X), dtype=np.int32)
    inertia = _core.assign_labels(X, centers, labels, None, weights)
    expected = 0.0
    for row, label, weight in zip(X, labels, weights, strict=True):
        expected += float(sklearn_sq_distance(row, centers[label])) * float(weight)
    assert inertia == expected


def test_variants_agree_and_best_is_default():
    assert _dense.isa() == _dense.available_isas()[0] or _dense.isa() in _dense.available_isas()
    X, centers = random_problem(1000, 13, 37, np.float64, seed=3)
    results = []
    for name in _dense.available_isas():
        previous = _tuning.use_isa(name)
        labels = np.empty(1000, dtype=np.int32)
        _core.assign_labels(X, centers, labels, n_threads=2)
        _tuning.use_isa(previous)
        results.append(labels)
    for labels in results[1:]:
        assert_array_equal(labels, results[0])
    with pytest.raises(ValueError, match="not available"):
        _tuning.use_isa("no-such-isa")


def test_bit_generator_draws_continue_random_states_stream():
    # fit's compiled loop reads RandomState's stream through NumPy's bit-generator C API; the
    # draws must be random_sample's and leave the stream where random_sample would.
    ours, theirs = np.random.RandomState(123), np.random.RandomState(123)
    ours.randint(0, 10, 7)
    theirs.randint(0, 10, 7)
    assert_array_equal(_sampling_kernels.random_sample(ours, 1000), theirs.random_sample(1000))
    assert ours.randint(0, 2**31) == theirs.randint(0, 2**31)


def test_randint_is_randomstates_at_any_position():
    # fit's init subsample and validation rows: the same integers as RandomState.randint,
    # and the stream left where it leaves it (every range kind: one value, powers of two,
    # odd ranges, up to 2**32; runs across twists, from any position).
    for high in (1, 2, 3, 7, 1024, 20640, 1000003, 2**31, 2**32):
        for size in (0, 1, 5, 700, 3072):
            for skipped_words in (0, 1, 300, 623):
                ours = np.random.RandomState(high % 1000 + size)
                theirs = np.random.RandomState(high % 1000 + size)
                ours.bytes(4 * skipped_words)
                theirs.bytes(4 * skipped_words)
                got = _sampling_kernels.randint(ours, high, size)
                assert got.dtype == np.intp
                assert_array_equal(got, theirs.randint(0, high, size))
                assert ours.random_sample() == theirs.random_sample()
    # Other bit generators and ranges go through NumPy's own call.
    ours = np.random.RandomState(np.random.PCG64(5))
    theirs = np.random.RandomState(np.random.PCG64(5))
    assert_array_equal(_sampling_kernels.randint(ours, 10, 50), theirs.randint(0, 10, 50))
    ours, theirs = np.random.RandomState(3), np.random.RandomState(3)
    assert_array_equal(_sampling_kernels.randint(ours, 2**40, 9), theirs.randint(0, 2**40, 9))


def test_choice_without_replacement_is_randomstates_at_any_position():
    # The reassignment's draws: the same rows as RandomState.choice(n, size, replace=False),
    # the stream left where it leaves it, for any bit generator.
    for n in (1, 2, 3, 64, 1000, 4096):
        for size in {0, 1, min(n, 3), n // 2, n}:
            for skipped_words in (0, 1, 623):
                ours, theirs = np.random.RandomState(n + size), np.random.RandomState(n + size)
                ours.bytes(4 * skipped_words)
                theirs.bytes(4 * skipped_words)
                got = _sampling_kernels.choice_without_replacement(ours, n, size)
                assert got.dtype == np.intp
                assert_array_equal(got, theirs.choice(n, size, replace=False))
                assert ours.random_sample() == theirs.random_sample()
    ours = np.random.RandomState(np.random.PCG64(5))
    theirs = np.random.RandomState(np.random.PCG64(5))
    assert_array_equal(
        _sampling_kernels.choice_without_replacement(ours, 100, 7),
        theirs.choice(100, 7, replace=False),
    )
    assert ours.random_sample() == theirs.random_sample()


@pytest.mark.parametrize("isa", _sampling_kernels.mt19937_variants())
def test_draws_from_mt19937s_state_are_random_samples_at_any_position(isa):
    # fit draws its batches straight from MT19937's state, many doubles at a time: every run
    # length, from even and odd positions in the 624-word state, across twists; the stream
    # stays in step afterwards; in every instruction-set variant. Other bit generators go
    # through NumPy's next_double.
    old = _tuning.use_mt19937_variant(isa)
    try:
        assert _sampling_kernels._check_mt19937_layout()
        for skipped_words in (0, 1, 2, 623):
            for n in (1, 2, 311, 312, 313, 623, 624, 1000, 4096):
                ours, theirs = np.random.RandomState(n), np.random.RandomState(n)
                ours.bytes(4 * skipped_words)
                theirs.bytes(4 * skipped_words)
                assert_array_equal(
                    _sampling_kernels.random_sample(ours, n), theirs.random_sample(n)
                )
                assert ours.randint(0, 2**31) == theirs.randint(0, 2**31)
    finally:
        _tuning.use_mt19937_variant(old)
    ours = np.random.RandomState(np.random.PCG64(5))
    theirs = np.random.RandomState(np.random.PCG64(5))
    assert_array_equal(_sampling_kernels.random_sample(ours, 50), theirs.random_sample(50))


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
# 1 to 13 candidates: every block size of every variant's kernel, and their remainders
@pytest.mark.parametrize("n_candidates", [1, 2, 3, 4, 5, 8, 9, 13])
@pytest.mark.parametrize("with_closest", [False, True], ids=["first", "later"])
def test_kmeanspp_distances_match_the_expansion(dtype, n_candidates, with_closest):
    X, _ = random_problem(2 * CHUNK + 9, 7, 1, dtype, seed=n_candidates)
    rng = np.random.RandomState(0)
    candidates = rng.randint(0, len(X), n_candidates).astype(np.intp)
    X64 = X.astype(np.float64)
    x_norms = (X64**2).sum(axis=1)
    c_norms = x_norms[candidates]
    closest = rng.uniform(0, 30, len(X)).astype(dtype) if with_closest else None
    expected = ((-2 * (X64[candidates] @ X64.T)) + c_norms[:, None]) + x_norms[None, :]
    expected = np.maximum(expected.astype(dtype), 0)
    if closest is not None:
        expected = np.minimum(closest, expected)
    results = []
    # X packed once, or transposed chunk by chunk on the call (also from a Fortran copy)
    for data, packed in [
        (X, _seeding_kernels.pack_rows(X)),
        (X, None),
        (np.asfortranarray(X), None),
    ]:
        out = np.empty((n_candidates, len(X)), dtype=dtype)
        _seeding_kernels.kmeanspp_distances(
            data, packed, x_norms, candidates, c_norms, closest, out, 2
        )
        assert_allclose(out, expected, rtol=RTOL[dtype], atol=1e-9)
        assert (out[np.arange(n_candidates), candidates] <= 1e-9 * x_norms.max()).all()
        results.append(out)
    for other in results[1:]:
        assert_array_equal(other, results[0])


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_draw_candidates_is_numpys_uniform_cumsum_and_searchsorted(dtype):
    rng = np.random.RandomState(0)
    for n in (1, 7, 12_289):
        weights = rng.uniform(0, 3, n).astype(dtype)
        values = (rng.pareto(1.0, n) * 1e3).astype(dtype)
        cumulative = np.cumsum(weights * values)
        potential = (values @ weights).reshape(1)  # as k-means++ has it: a 1-element array
        for n_targets in (1, 8, 40):
            ours, theirs = np.random.RandomState(n_targets), np.random.RandomState(n_targets)
            out = np.empty(n_targets, dtype=np.intp)
            _seeding_kernels.draw_candidates(weights, values, ours, float(potential[0]), out)
            targets = theirs.uniform(size=n_targets) * potential
            assert_array_equal(out, np.minimum(cumulative.searchsorted(targets), n - 1))
            assert ours.randint(0, 2**31) == theirs.randint(0, 2**31)  # streams in step
        # targets on the sums themselves, a hair either side, and past the last sum: found
        # by drawing 0.5 against a potential that makes 0.5 * potential such a value
        exact = cumulative[rng.randint(0, n, 3)].astype(np.float64)
        for target in [*exact, *np.nextafter(exact, 0), *np.nextafter(exact, np.inf), 1e300]:
            ours = np.random.RandomState(1)
            u = np.random.RandomState(1).random_sample()
            out = np.empty(1, dtype=np.intp)
            _seeding_kernels.draw_candidates(weights, values, ours, target / u, out)
            expected = np.minimum(cumulative.searchsorted(u * (target / u)), n - 1)
            assert out[0] == expected


def test_a_rows_norm_does_not_depend_on_the_rows_beside_it():
    # k-means++ takes the candidates' norms from the norms of all rows
    from mbk._kmeans_plusplus import _sq_norms64

    rng = np.random.RandomState(1)
    for dtype, n_features in [(np.float32, 64), (np.float64, 3), (np.float32, 17)]:
        X = (rng.normal(size=(3000, n_features)) * rng.uniform(0.1, 100, n_features)).astype(dtype)
        rows = rng.randint(0, 3000, 9)
        assert_array_equal(_sq_norms64(X[rows]), _sq_norms64(X)[rows])


def test_packed_rows_must_match_the_kernel():
    X, _ = random_problem(50, 3, 1, np.float64)
    packed = _seeding_kernels.pack_rows(X)
    block = _seeding_kernels.candidate_block_rows()
    n_blocks = -(-50 // block)
    assert packed.dtype == X.dtype
    blocks = packed.reshape(n_blocks, 3, block)  # feature-major blocks of rows
    assert_array_equal(blocks.transpose(0, 2, 1).reshape(-1, 3)[:50], X)
    assert not blocks.transpose(0, 2, 1).reshape(-1, 3)[50:].any()
    out = np.empty((1, 50))
    args = (np.zeros(50), np.zeros(1, np.intp), np.zeros(1), None, out)
    with pytest.raises(ValueError, match="pack_rows"):
        _seeding_kernels.kmeanspp_distances(X, packed[:-1], *args)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("n_features", [1, 2, 3, 4, 5, 8])
@pytest.mark.parametrize("n_clusters", [1, 2, 3, 6, 7])
def test_few_centers_kernel_has_the_baseline_tiles_bits(
    dtype, n_features, n_clusters, kernel_variant
):
    # Rows in lanes for few centers (every variant) against the baseline tiles, which also
    # add without FMA: the same labels and the same inertia bits, for contiguous rows (loaded
    # whole), Fortran and strided rows and scattered batch rows (copied together first), and
    # weights, around the chunk size.
    rng = np.random.RandomState(n_features * 10 + n_clusters)
    X = rng.standard_normal((700, n_features)).astype(dtype)
    X[5] = X[6]  # duplicated rows tie on every center
    centers = np.ascontiguousarray(X[rng.choice(700, n_clusters, replace=False)])
    centers[-1] = centers[0] if n_clusters > 1 else centers[-1]  # tied centers
    weights = rng.uniform(0, 2, 700).astype(dtype)
    rows = rng.randint(0, 700, 513).astype(np.intp)
    cases = [(X, None, None), (np.asfortranarray(X), None, weights), (X[::2], None, None),
             (X, rows, weights), (X[:257], None, None), (X[:1], None, None)]  # fmt: skip

    def assign(data, indices, w):
        labels = np.empty(len(data) if indices is None else len(indices), dtype=np.int32)
        total = _core.assign_labels(data, centers, labels, indices, w, 2)
        return labels, total

    few = [assign(*case) for case in cases]
    variant = _tuning.use_isa("baseline")
    previous = _tuning.set_few_centers_kernel(False)
    try:
        tiles = [assign(*case) for case in cases]
    finally:
        _tuning.set_few_centers_kernel(previous)
        _tuning.use_isa(variant)
    for (labels, total), (expected_labels, expected_total) in zip(few, tiles, strict=True):
        assert_array_equal(labels, expected_labels)
        assert total == expected_total


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_labels_without_inertia_are_the_same_labels(dtype):
    X, centers = random_problem(3 * CHUNK + 5, 9, 20, dtype, seed=4)
    with_inertia = np.empty(len(X), dtype=np.int32)
    without = np.empty(len(X), dtype=np.int32)
    assert _core.assign_labels(X, centers, with_inertia, n_threads=2) > 0
    assert _core.assign_labels(X, centers, without, None, None, 2, False) == 0.0
    assert_array_equal(without, with_inertia)


# -- the update's two halves: accumulate, then apply (issue 14) -------------------------------

LAYOUTS = {
    "C": lambda X: X,
    "F": np.asfortranarray,
    "strided": lambda X: np.repeat(X, 2, axis=1)[:, ::2],
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("weighted", [False, True], ids=["unit", "weighted"])
@pytest.mark.parametrize("n_features", [1, 5, 17])
def test_accumulate_then_apply_is_the_step_bit_for_bit(
    dtype, layout, weighted, n_features, update_order
):
    # Seeded with center * running weight, the two halves add in the step's order.
    X, centers = random_problem(3 * CHUNK + 11, n_features, 9, dtype, seed=n_features)
    X = LAYOUTS[layout](X)
    rng = np.random.RandomState(3)
    rows = rng.randint(0, X.shape[0], 2 * CHUNK + 5).astype(np.intp)
    weights = rng.uniform(0.1, 2, X.shape[0]).astype(dtype) if weighted else None
    weight_sums = rng.randint(0, 5, 9).astype(np.float64)
    weight_sums[4] = 0  # a center without history
    labels = np.empty(rows.shape[0], dtype=np.int32)
    stepped, stepped_sums = np.empty_like(centers), weight_sums.copy()
    _core.minibatch_step(X, centers, stepped, stepped_sums, labels, rows, weights, 2)

    sums = np.empty((9, n_features))
    batch_weights = np.empty(9)
    _core.accumulate(X, labels, sums, batch_weights, rows, weights, centers, weight_sums)
    applied, applied_sums = np.empty_like(centers), weight_sums.copy()
    _core.apply(centers, applied, applied_sums, sums, batch_weights, True)
    assert_array_equal(applied, stepped)
    assert_array_equal(applied_sums, stepped_sums)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unit", "weighted"])
def test_unseeded_sums_are_each_centers_weighted_row_sums(dtype, weighted):
    # From zero, the sums are what a worker hands over; apply adds center * weight itself.
    X, centers = random_problem(CHUNK + 40, 6, 7, dtype, seed=4)
    rng = np.random.RandomState(5)
    labels = rng.randint(0, 7, X.shape[0]).astype(np.int32)
    labels[labels == 3] = 2  # center 3 receives nothing
    weights = rng.uniform(0.1, 2, X.shape[0]).astype(dtype) if weighted else None
    sums, batch_weights = np.full((7, 6), np.nan), np.full(7, np.nan)
    _core.accumulate(X, labels, sums, batch_weights, sample_weight=weights)
    w = np.ones(X.shape[0]) if weights is None else weights.astype(np.float64)
    expected_sums, expected_weights = np.zeros((7, 6)), np.zeros(7)
    np.add.at(expected_sums, labels, w[:, None] * X.astype(np.float64))
    np.add.at(expected_weights, labels, w)
    assert_allclose(sums, expected_sums, rtol=1e-12, atol=1e-12)
    assert_allclose(batch_weights, expected_weights, rtol=1e-12)

    weight_sums = rng.randint(0, 5, 7).astype(np.float64)
    new_centers, new_sums = np.empty_like(centers), weight_sums.copy()
    _core.apply(centers, new_centers, new_sums, sums, batch_weights, False)
    expected, expected_new_sums = minibatch_update(X, weights, centers, weight_sums, labels)
    assert_allclose(new_centers, expected, rtol=RTOL[dtype], atol=RTOL[dtype])
    assert_allclose(new_sums, expected_new_sums, rtol=1e-12)
    assert_array_equal(new_centers[3], centers[3])  # no weight: the center stays


def test_accumulate_and_apply_refuse_what_they_cannot_use():
    X, centers = random_problem(10, 3, 4, np.float64)
    sums, batch_weights = np.empty((4, 3)), np.empty(4)
    labels = np.zeros(10, dtype=np.int32)
    with pytest.raises(ValueError, match="centers 0 .. 3; got 4"):
        _core.accumulate(X, np.full(10, 4, dtype=np.int32), sums, batch_weights)
    with pytest.raises(ValueError, match="one entry per batch row"):
        _core.accumulate(X, labels[:9], sums, batch_weights)
    with pytest.raises(ValueError, match="sums must be"):
        _core.accumulate(X, labels, np.empty((4, 2)), batch_weights)
    with pytest.raises(ValueError, match="both centers and weight_sums"):
        _core.accumulate(X, labels, sums, batch_weights, centers=centers)
    with pytest.raises(ValueError, match="must match the centers"):
        _core.apply(centers, centers.copy(), np.zeros(4), np.empty((3, 3)), batch_weights, True)
    with pytest.raises(ValueError, match="must match centers_old"):
        _core.apply(centers, centers.copy(), np.zeros(3), sums, batch_weights, True)

"""algorithm="nested" (issue 4): Lloyd fixed points, dtypes, threads, weights, parameters."""

import os

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from threadpoolctl import threadpool_limits

import mbk
from _reference import inertia, nearest_centers
from conftest import make_blobs
from mbk import _dense, _nested_kernels, _tuning

HOUSING_CSV = os.path.join(
    os.path.dirname(__file__), "..", "..", "shared", "data", "california_housing.csv"
)


@pytest.fixture(params=_dense.available_isas())
def kernel_variant(request):
    """Run a test on every instruction-set variant this CPU supports."""
    previous = _tuning.use_isa(request.param)
    yield request.param
    _tuning.use_isa(previous)


def lloyd_means(X, labels, n_clusters, sample_weight=None):
    """The weighted mean of each cluster's rows, in float64 (plain NumPy)."""
    X = np.asarray(X, dtype=np.float64)
    weights = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight, float)
    sums = np.zeros((n_clusters, X.shape[1]))
    np.add.at(sums, labels, weights[:, None] * X)
    return sums / np.bincount(labels, weights, n_clusters)[:, None]


def assert_lloyd_fixed_point(X, model, sample_weight=None, rtol=1e-12):
    """Every row is labelled with its nearest center, and every center is its rows' mean."""
    labels, sq = nearest_centers(X, model.cluster_centers_)
    assert_array_equal(model.labels_, labels)
    assert_allclose(
        model.cluster_centers_,
        lloyd_means(X, labels, model.n_clusters, sample_weight),
        rtol=rtol,
        atol=rtol * np.abs(X).max(),
    )
    expected = inertia(X, model.cluster_centers_, labels, sample_weight)
    assert model.inertia_ == pytest.approx(expected, rel=max(rtol, 1e-12) * 100)


def nested(n_clusters, **params):
    params.setdefault("random_state", 0)
    return mbk.MiniBatchKMeans(n_clusters, algorithm="nested", **params)


@pytest.mark.parametrize(
    "dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)], ids=["float64", "float32"]
)
def test_converged_run_is_a_lloyd_fixed_point(dtype, rtol):
    # Overlapping blobs, so labels keep changing for many rounds and the batch doubles from
    # 96 rows to all 3000 before the run stops.
    X, _ = make_blobs(3000, 4, 6, dtype=dtype, seed=3, spread=4.0)
    model = nested(6, batch_size=32).fit(X)
    assert model.cluster_centers_.dtype == dtype
    assert model.labels_.dtype == np.int32
    assert model.n_iter_ < model.max_iter  # stopped by the fixed point, not by max_iter
    assert model.n_steps_ > 4
    assert_lloyd_fixed_point(X, model, rtol=rtol)


def test_float32_and_float64_agree():
    X, _ = make_blobs(2000, 3, 5, seed=4, spread=1.5)
    m64 = nested(5, batch_size=64).fit(X)
    m32 = nested(5, batch_size=64).fit(X.astype(np.float32))
    assert_array_equal(m32.labels_, m64.labels_)
    assert_allclose(m32.cluster_centers_, m64.cluster_centers_, rtol=1e-5, atol=1e-5)
    assert m32.inertia_ == pytest.approx(m64.inertia_, rel=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize(
    "n_features, n_clusters", [(10, 7), (5, 7), (3, 16)], ids=["tiles", "few-7", "few-16"]
)
def test_bitwise_identical_for_any_thread_count(dtype, n_features, n_clusters):
    # 4100 rows: chunks of 256 with a partial last one, and batches crossing chunk edges.
    # Up to 8 features, rows are compared with every center in vector lanes, not by tiles.
    X, _ = make_blobs(4100, n_features, n_clusters, dtype=dtype, seed=5, spread=3.0)
    results = []
    for n_threads in (1, 2, 3):
        with threadpool_limits(n_threads, user_api="openmp"):
            results.append(nested(n_clusters, batch_size=100).fit(X))
    for other in results[1:]:
        assert_array_equal(other.cluster_centers_, results[0].cluster_centers_)
        assert_array_equal(other.labels_, results[0].labels_)
        assert other.inertia_ == results[0].inertia_
        assert other.n_steps_ == results[0].n_steps_


def test_weights_act_as_repeated_rows():
    X, _ = make_blobs(1500, 3, 4, seed=6, spread=2.0)
    weights = np.random.RandomState(0).randint(0, 4, len(X)).astype(np.float64)
    model = nested(4, batch_size=50).fit(X, sample_weight=weights)
    assert_lloyd_fixed_point(X[weights > 0], _restricted(model, weights > 0), weights[weights > 0])
    # The weighted fixed point is a fixed point of the data with each row repeated w times.
    repeated = np.repeat(X, weights.astype(int), axis=0)
    labels, _ = nearest_centers(repeated, model.cluster_centers_)
    assert_allclose(model.cluster_centers_, lloyd_means(repeated, labels, 4), rtol=1e-12)
    assert model.inertia_ == pytest.approx(
        inertia(repeated, model.cluster_centers_, labels), rel=1e-10
    )


def _restricted(model, keep):
    """A view of a fitted model's labels on some rows, for assert_lloyd_fixed_point."""

    class View:
        pass

    view = View()
    view.cluster_centers_ = model.cluster_centers_
    view.labels_ = model.labels_[keep]
    view.n_clusters = model.n_clusters
    view.inertia_ = model.inertia_
    return view


def test_negative_weights_are_refused():
    X, _ = make_blobs(100, 2, 2)
    weights = np.ones(100)
    weights[3] = -1
    with pytest.raises(ValueError, match="non-negative"):
        nested(2).fit(X, sample_weight=weights)


def test_unit_weights_give_the_unweighted_result():
    X, _ = make_blobs(1200, 3, 4, seed=7, spread=2.0)
    plain = nested(4, batch_size=40).fit(X)
    weighted = nested(4, batch_size=40).fit(X, sample_weight=np.ones(len(X)))
    assert_array_equal(plain.cluster_centers_, weighted.cluster_centers_)
    assert_array_equal(plain.labels_, weighted.labels_)


def test_reproducible_and_input_untouched():
    X, _ = make_blobs(800, 3, 3, seed=8)
    weights = np.linspace(0.5, 2, len(X))
    X_before, weights_before = X.copy(), weights.copy()
    first = nested(3, random_state=11).fit(X, sample_weight=weights)
    second = nested(3, random_state=11).fit(X, sample_weight=weights)
    assert_array_equal(first.cluster_centers_, second.cluster_centers_)
    assert_array_equal(X, X_before)
    assert_array_equal(weights, weights_before)


@pytest.mark.parametrize("layout", ["F", "read-only", "strided"])
def test_layouts_give_the_c_order_result(layout):
    X, _ = make_blobs(900, 4, 3, seed=9, spread=2.0)
    expected = nested(3, batch_size=30).fit(X)
    if layout == "F":
        data = np.asfortranarray(X)
    elif layout == "read-only":
        data = X.copy()
        data.flags.writeable = False
    else:
        data = np.repeat(X, 2, axis=1)[:, ::2]
    model = nested(3, batch_size=30).fit(data)
    assert_array_equal(model.cluster_centers_, expected.cluster_centers_)
    assert_array_equal(model.labels_, expected.labels_)


def test_init_kinds_and_n_init():
    X, _ = make_blobs(1000, 2, 4, seed=10, spread=1.0)
    init = X[:4].copy()
    given = nested(4, init=init, batch_size=40).fit(X)
    assert_array_equal(init, X[:4])  # the init array is copied, not moved
    assert_lloyd_fixed_point(X, given)
    for kind in ("random", lambda X, k, random_state: X[:k]):
        assert_lloyd_fixed_point(X, nested(4, init=kind, batch_size=40).fit(X))
    several = nested(4, n_init=3, batch_size=40).fit(X)
    assert_lloyd_fixed_point(X, several)


def test_swap_recovers_a_cluster_that_seeding_missed():
    # Two centers start inside blob 0 and none in blob 3: Lloyd alone cannot fix that, the
    # swap on the first batch does.
    X, truth = make_blobs(2000, 2, 4, seed=12, spread=0.3)
    in_zero = X[truth == 0]
    init = np.vstack([in_zero[0], in_zero[1], X[truth == 1][0], X[truth == 2][0]])
    model = nested(4, init=init, batch_size=100).fit(X)
    assert len(set(zip(truth.tolist(), model.labels_.tolist(), strict=True))) == 4


def test_max_iter_bounds_the_passes_and_labels_stay_exact():
    X, _ = make_blobs(3000, 4, 6, seed=3, spread=4.0)
    model = nested(6, batch_size=32, max_iter=2).fit(X)
    assert model.n_iter_ <= 2
    labels, sq = nearest_centers(X, model.cluster_centers_)
    assert_array_equal(model.labels_, labels)
    assert model.inertia_ == pytest.approx(sq.sum(), rel=1e-10)


def test_tol_stops_earlier():
    X, _ = make_blobs(3000, 4, 6, seed=3, spread=4.0)
    exact = nested(6, batch_size=32).fit(X)
    loose = nested(6, batch_size=32, tol=1e-2).fit(X)
    assert loose.n_steps_ < exact.n_steps_
    labels, _ = nearest_centers(X, loose.cluster_centers_)
    assert_array_equal(loose.labels_, labels)


def test_compute_labels_false_keeps_the_inertia():
    X, _ = make_blobs(500, 2, 3, seed=13)
    model = nested(3, compute_labels=False).fit(X)
    assert not hasattr(model, "labels_")
    _, sq = nearest_centers(X, model.cluster_centers_)
    assert model.inertia_ == pytest.approx(sq.sum(), rel=1e-10)
    assert_array_equal(model.fit_predict(X), nearest_centers(X, model.cluster_centers_)[0])


def test_single_cluster_and_k_equals_n():
    X, _ = make_blobs(40, 2, 2, seed=14)
    one = nested(1).fit(X)
    assert_allclose(one.cluster_centers_[0], X.mean(axis=0))
    every = nested(40).fit(X)
    assert every.inertia_ == pytest.approx(0, abs=1e-12)


def test_bad_algorithm_and_sculley_only_parameters():
    X, _ = make_blobs(200, 2, 2)
    with pytest.raises(ValueError, match="algorithm must be 'sculley' or 'nested'"):
        mbk.MiniBatchKMeans(2, algorithm="elkan").fit(X)
    with pytest.raises(TypeError, match="algorithm"):
        mbk.MiniBatchKMeans(2, algorithm=None).fit(X)
    with pytest.warns(UserWarning, match="max_no_improvement=3 has no effect"):
        nested(2, max_no_improvement=3).fit(X)
    with pytest.warns(UserWarning, match="reassignment_ratio=0.5 has no effect"):
        nested(2, reassignment_ratio=0.5).fit(X)
    with pytest.raises(ValueError, match="no streaming form"):
        nested(2).partial_fit(X)


def test_partial_fit_with_sculley_after_a_nested_fit():
    X, _ = make_blobs(600, 2, 3, seed=15)
    model = nested(3, compute_labels=False).fit(X)
    assert_allclose(model._counts.sum(), len(X))
    model.set_params(algorithm="sculley").partial_fit(X[:50])
    assert model.n_steps_ > 1


def test_default_stays_sculley():
    assert mbk.MiniBatchKMeans().algorithm == "sculley"


def test_round_kernel_checks_its_arguments():
    X = np.zeros((10, 2))
    centers = np.zeros((2, 2))
    state = [
        np.arange(10, dtype=np.intp),
        None,
        centers,
        np.zeros((2, 2)),
        np.zeros(2),
        np.zeros(2, dtype=np.intp),
        np.full(10, -1, dtype=np.int32),
        np.zeros(10),
        np.zeros(10),
        np.zeros(10, dtype=np.int32),
        np.zeros(10),
        np.zeros(2),
        np.zeros(2),
        np.zeros(10, dtype=np.intp),
        np.zeros(10, dtype=np.int32),
    ]
    with pytest.raises(ValueError, match="n_batch"):
        _nested_kernels.nested_rounds(X, *state, 11)
    bad = list(state)
    bad[7] = np.zeros(9)
    with pytest.raises(ValueError, match="upper"):
        _nested_kernels.nested_rounds(X, *bad, 10)
    bad = list(state)
    bad[0] = np.zeros(9, dtype=np.intp)
    with pytest.raises(ValueError, match="order must have one entry per row"):
        _nested_kernels.nested_rounds(X, *bad, 10)


def test_state_moves_to_row_order():
    # Positions 0..3 of order [7, 2, 5, 0, ...] carry a state; it moves to those rows.
    order = np.array([7, 2, 5, 0, 1, 3, 4, 6], dtype=np.intp)
    labels = np.arange(8, dtype=np.int32)
    upper, lower, rest = np.arange(8.0), np.arange(8.0) + 10, np.arange(8.0) + 20
    runner = labels[::-1].copy()
    out = [np.empty_like(a) for a in (labels, upper, lower, runner, rest)]
    _nested_kernels.to_row_order(order, 4, labels, upper, lower, runner, rest, *out)
    row_labels, row_upper, row_lower, row_runner, row_rest = out
    assert_array_equal(row_labels, [3, -1, 1, -1, -1, 2, -1, 0])
    seen = order[:4]
    assert_array_equal(row_upper[seen], upper[:4])
    assert_array_equal(row_lower[seen], lower[:4])
    assert_array_equal(row_runner[seen], runner[:4])
    assert_array_equal(row_rest[seen], rest[:4])
    with pytest.raises(ValueError, match="order must hold rows"):
        _nested_kernels.to_row_order(order + 1, 8, labels, upper, lower, runner, rest, *out)
    with pytest.raises(ValueError, match="n_seen"):
        _nested_kernels.to_row_order(order, 9, labels, upper, lower, runner, rest, *out)
    with pytest.raises(ValueError, match="rest must have"):
        _nested_kernels.to_row_order(order, 4, labels, upper, lower, runner, rest[:7], *out)


@pytest.mark.skipif(not os.path.exists(HOUSING_CSV), reason="housing CSV not in ../shared")
def test_california_housing_reaches_a_fixed_point():
    pd = pytest.importorskip("pandas")
    frame = pd.read_csv(HOUSING_CSV)
    X = frame[["median_income", "latitude", "longitude"]].to_numpy()
    model = nested(6, random_state=0).fit(frame[["median_income", "latitude", "longitude"]])
    assert list(model.feature_names_in_) == ["median_income", "latitude", "longitude"]
    assert_lloyd_fixed_point(X, model, rtol=1e-9)


def plain_lloyd(X, centers, sample_weight=None, max_rounds=500):
    """Lloyd iterations in plain NumPy float64 until no label changes: (centers, labels)."""
    centers = np.array(centers, dtype=np.float64)
    labels = None
    for _ in range(max_rounds):
        new_labels, _ = nearest_centers(X, centers)
        if labels is not None and np.array_equal(new_labels, labels):
            break
        labels = new_labels
        means = lloyd_means(X, labels, len(centers), sample_weight)
        filled = np.bincount(labels, minlength=len(centers)) > 0
        centers[filled] = means[filled]
    return centers, labels


def fresh_state(n, n_clusters, n_features, centers, weights=None):
    """nested_rounds' arguments after X for n rows at positions in row order, none labelled."""
    return [
        np.arange(n, dtype=np.intp), weights, centers, np.zeros((n_clusters, n_features)),
        np.zeros(n_clusters), np.zeros(n_clusters, dtype=np.intp),
        np.full(n, -1, dtype=np.int32), np.zeros(n), np.zeros(n), np.zeros(n, dtype=np.int32),
        np.zeros(n), np.zeros(n_clusters), np.zeros(n_clusters),
        np.zeros(n, dtype=np.intp), np.zeros(n, dtype=np.int32),
    ]  # fmt: skip


@pytest.mark.parametrize(
    "n_features, n_clusters, weighted",
    [(3, 6, False), (3, 16, False), (3, 16, True), (12, 9, False), (12, 9, True)],
    ids=["few-6", "few-16", "few-weighted", "tiles", "tiles-weighted"],
)
def test_rounds_on_the_whole_data_are_lloyd_iterations(
    n_features, n_clusters, weighted, kernel_variant
):
    # Rounds on the whole data set from given centers, with the working set, the runner
    # bounds and the sweeps at work (overlapping blobs: many rounds with few changes), end
    # where plain Lloyd from the same centers ends.
    X, _ = make_blobs(6000, n_features, n_clusters, seed=21, spread=6.0)
    weights = np.random.RandomState(1).uniform(0.5, 2, len(X)) if weighted else None
    start = X[:: len(X) // n_clusters][:n_clusters].copy()
    centers = start.copy()
    n = len(X)
    state = fresh_state(n, n_clusters, n_features, centers, weights)
    n_rounds, n_changes, _, reason = _nested_kernels.nested_rounds(X, *state, n, 1000, 0.0, 0.0, 2)
    assert (n_changes, reason) == (0, 1)  # stopped at a fixed point
    assert n_rounds > 10
    expected_centers, expected_labels = plain_lloyd(X, start, weights)
    assert_array_equal(state[6], expected_labels)
    assert_allclose(centers, expected_centers, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("n_features", [1, 3, 8, 9])
@pytest.mark.parametrize("n_clusters", [1, 2, 3, 21])
def test_first_round_finds_the_nearest_three_centers(dtype, n_features, n_clusters, kernel_variant):
    # A first round compares every row with every center (8 features or fewer: rows in
    # vector lanes; 9: tiles): labels, runners and the three distances against NumPy's, on
    # small integers, so that many rows are tied between centers (the lower index wins).
    rng = np.random.RandomState(n_features * 100 + n_clusters)
    X = rng.randint(0, 3, size=(700, n_features)).astype(dtype)
    centers = rng.randint(0, 3, size=(n_clusters, n_features)).astype(dtype)
    if n_clusters > 2:
        centers[2] = centers[0]  # duplicate centers: ties on every row
    state = fresh_state(len(X), n_clusters, n_features, centers.copy())
    _nested_kernels.nested_rounds(X, *state, len(X), 1, 0.0, 0.0, 2)
    sq = np.zeros((len(X), n_clusters), dtype=dtype)
    for f in range(n_features):  # direct differences, summed in feature order, in dtype
        sq += (X[:, f, None] - centers[None, :, f]) ** 2
    ranked = np.argsort(sq, axis=1, kind="stable")
    nearest = np.sqrt(np.take_along_axis(sq, ranked, axis=1).astype(np.float64))
    nearest = np.hstack([nearest, np.full((len(X), 3), np.inf)])
    labels, upper, lower, runner, rest = state[6:11]
    assert_array_equal(labels, ranked[:, 0])
    if n_clusters > 1:
        assert_array_equal(runner, ranked[:, 1])
    if n_features <= 8:  # the tiles expand the norms: equal up to rounding
        assert_array_equal(upper, nearest[:, 0])
        assert_array_equal(lower, nearest[:, 1])
        assert_array_equal(rest, nearest[:, 2])
    else:
        assert_allclose(np.c_[upper, lower, rest], nearest[:, :3], rtol=1e-5, atol=1e-6)


def test_round_limit_leaves_exact_bounds(kernel_variant):
    # Stopping after a few rounds (rows left aside by the working set) and going on in
    # another call ends where one call ends.
    X, _ = make_blobs(5000, 3, 16, seed=22, spread=6.0)
    n, k = len(X), 16

    def fresh():
        return fresh_state(n, k, 3, X[:k].copy())

    once = fresh()
    total, _, _, _ = _nested_kernels.nested_rounds(X, *once, n, 1000)
    pieces = fresh()
    done, reason = 0, 0
    while reason != 1:
        ran, _, _, reason = _nested_kernels.nested_rounds(X, *pieces, n, 5)
        done += ran
    assert done == total
    assert_array_equal(pieces[2], once[2])
    assert_array_equal(pieces[6], once[6])


def test_swap_kernels_match_numpy():
    rng = np.random.RandomState(3)
    X = rng.normal(size=(300, 4))
    centers = rng.normal(size=(5, 4))
    candidates = X[[3, 50, 99]]
    weights = rng.uniform(0, 2, len(X))
    distances = np.sqrt(((X[:, None] - centers[None]) ** 2).sum(axis=2))
    to_candidates = np.sqrt(((X[:, None] - candidates[None]) ** 2).sum(axis=2))
    labels = np.empty(len(X), dtype=np.int32)
    first, second, cost = np.empty(len(X)), np.empty(len(X)), np.empty(len(X))
    current = _nested_kernels.swap_nearest(distances, weights, labels, first, second, cost)
    sq = np.sort(distances**2, axis=1)
    assert_array_equal(labels, distances.argmin(axis=1))
    assert_allclose(first, sq[:, 0], rtol=1e-14)
    assert_allclose(second, sq[:, 1], rtol=1e-14)
    assert current == pytest.approx((weights * sq[:, 0]).sum(), rel=1e-12)
    totals = np.empty((5, 3))
    _nested_kernels.swap_totals(to_candidates, weights, labels, first, second, totals)
    for j in range(5):
        for c in range(3):
            moved = np.delete(centers, j, axis=0)
            moved = np.vstack([moved, candidates[c]])
            _, nearest = nearest_centers(X, moved)
            assert totals[j, c] == pytest.approx((weights * nearest).sum(), rel=1e-12)


def test_auto_n_init_settles_three_seedings(capsys):
    X, _ = make_blobs(2000, 2, 4, seed=23, spread=1.0)
    nested(4, batch_size=100, verbose=1).fit(X)
    assert "Init 3/3" in capsys.readouterr().out
    nested(4, batch_size=100, verbose=1, init=X[:4]).fit(X)
    assert "Init " not in capsys.readouterr().out
    nested(4, batch_size=100, verbose=1, n_init=1).fit(X)
    assert "Init " not in capsys.readouterr().out

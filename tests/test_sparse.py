"""Sparse (CSR) input: scikit-learn 1.9 as the oracle on the same matrices, non-canonical CSR
used as given, 64-bit indices, thread-count invariance, the caller's matrix left alone, and bad
matrices refused.

float64 results must agree with scikit-learn to 1e-9 relative, float32 results to float32
rounding, as in test_sklearn_parity.py. scikit-learn refuses 64-bit indices, so int64 input is
checked against mbk's own result on the int32 copy of the same matrix: bitwise equal.
"""

import contextlib
import io
import re
import tracemalloc

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from threadpoolctl import threadpool_limits

import mbk
from conftest import make_blobs

sparse = pytest.importorskip("scipy.sparse")
sklearn = pytest.importorskip("sklearn")
from sklearn.cluster import MiniBatchKMeans as SklearnMiniBatchKMeans  # noqa: E402
from sklearn.cluster import kmeans_plusplus as sklearn_kmeans_plusplus  # noqa: E402

needs_sklearn_19 = pytest.mark.skipif(
    not sklearn.__version__.startswith("1.9"),
    reason="fit parity is defined against scikit-learn 1.9 (its batch sampling changed there)",
)

DTYPES = pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])


# -- Data ----------------------------------------------------------------------------------------


def random_csr(seed, n_samples=500, n_features=50, density=0.1, dtype=np.float64):
    """A canonical csr_array with int32 indices and uniform [0, 1) values: no clusters."""
    X = sparse.random_array(
        (n_samples, n_features), density=density, format="csr", dtype=dtype, rng=seed
    )
    assert X.indices.dtype == np.int32 and X.has_canonical_format
    return X


def sparse_blobs(seed=0, n_samples=500, n_features=60, n_centers=6, dtype=np.float64):
    """Clusters in sparse data, like documents on topics: each cluster has its own fifth of the
    features (its words), stored in 80% of its rows; any other feature is stored in 3% of the
    rows, as noise. Returns a canonical csr_array (density about 0.2) and the true clusters."""
    rng = np.random.RandomState(seed)
    support = rng.uniform(size=(n_centers, n_features)) < 0.2
    centers = np.where(support, rng.uniform(1, 5, (n_centers, n_features)), 0.0)
    which = rng.randint(0, n_centers, n_samples)
    dense = centers[which] + 0.3 * rng.normal(size=(n_samples, n_features))
    stored = np.where(
        support[which], rng.uniform(size=dense.shape) < 0.8, rng.uniform(size=dense.shape) < 0.03
    )
    X = sparse.csr_array(np.where(stored, dense, 0.0).astype(dtype))
    assert X.indices.dtype == np.int32 and X.has_canonical_format
    return X, which


DATA = {
    "random-0": lambda dtype: random_csr(0, dtype=dtype),
    "random-1": lambda dtype: random_csr(
        1, n_samples=400, n_features=80, density=0.25, dtype=dtype
    ),
    "blobs": lambda dtype: sparse_blobs(dtype=dtype)[0],
}


def structure(X):
    """The ways in which X is not canonical, read from its arrays (not from scipy's flags)."""
    found = set()
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    within_a_row = rows[1:] == rows[:-1]
    if (within_a_row & (np.diff(X.indices.astype(np.int64)) < 0)).any():
        found.add("unsorted")
    cells = rows.astype(np.int64) * X.shape[1] + X.indices
    if len(np.unique(cells)) < len(cells):
        found.add("duplicates")
    if (X.data == 0).any():
        found.add("explicit-zeros")
    if (np.diff(X.indptr) == 0).any():
        found.add("empty-rows")
    if len(np.unique(X.indices[X.data != 0])) < X.shape[1]:
        found.add("zero-columns")
    return found


NON_CANONICAL_KINDS = [
    "unsorted",
    "duplicates",
    "explicit-zeros",
    "empty-rows",
    "zero-columns",
    "all-of-them",
]


def non_canonical(kind, seed=0, dtype=np.float64, **blob_params):
    """sparse_blobs' matrix made non-canonical in one way (or all of them), built by hand from
    (data, indices, indptr) so that scipy neither sorts nor merges anything."""
    base, _ = sparse_blobs(seed, dtype=dtype, **blob_params)
    assert structure(base) == set()
    n_samples, n_features = base.shape
    rng = np.random.RandomState(seed + 100)
    rows = [
        (base.indices[a:b].copy(), base.data[a:b].copy())
        for a, b in zip(base.indptr[:-1], base.indptr[1:], strict=True)
    ]
    steps = NON_CANONICAL_KINDS[:-1] if kind == "all-of-them" else [kind]
    # The order matters for "all-of-them": entries are removed first, shuffled last.
    for step in ["zero-columns", "empty-rows", "explicit-zeros", "duplicates", "unsorted"]:
        if step not in steps:
            continue
        for r, (columns, values) in enumerate(rows):
            if step == "zero-columns":
                # the first and last columns and every fifth one lose all their entries
                keep = (columns % 5 != 0) & (columns != n_features - 1)
                rows[r] = (columns[keep], values[keep])
            elif step == "empty-rows" and (r % 7 == 0 or r == n_samples - 1):
                rows[r] = (columns[:0], values[:0])
            elif step == "explicit-zeros":
                values[rng.uniform(size=len(values)) < 0.2] = 0
            elif step == "duplicates" and len(columns) and r % 2 == 0:
                # a second entry for a stored column, next to the first: still sorted
                p = rng.randint(len(columns))
                extra = values.dtype.type(rng.uniform(0.5, 3))
                rows[r] = (np.insert(columns, p + 1, columns[p]), np.insert(values, p + 1, extra))
            elif step == "unsorted":
                order = rng.permutation(len(columns))
                rows[r] = (columns[order], values[order])
    indptr = np.concatenate([[0], np.cumsum([len(columns) for columns, _ in rows])])
    X = sparse.csr_array(
        (
            np.concatenate([values for _, values in rows]),
            np.concatenate([columns for columns, _ in rows]).astype(np.int32),
            indptr.astype(np.int32),
        ),
        shape=base.shape,
    )
    assert structure(X) == set(steps)
    assert X.data.dtype == dtype and X.indices.dtype == np.int32
    if "unsorted" in steps:
        assert not X.has_sorted_indices
    if "duplicates" in steps:
        assert not X.has_canonical_format
    return X


def with_index_dtype(X, index_dtype, container="csr_array", data=None):
    """A copy of X with the same entries in the same order, with index_dtype indices and
    indptr, as a csr_array or csr_matrix (and data in place of X.data if given)."""
    data = X.data.copy() if data is None else data
    indices, indptr = X.indices.astype(index_dtype), X.indptr.astype(index_dtype)
    if container == "csr_array":
        Y = sparse.csr_array((data, indices, indptr), shape=X.shape)
    else:
        Y = sparse.csr_matrix((data, indices, indptr), shape=X.shape)
        # csr_matrix narrows small 64-bit indices to 32 bits: widen them again
        Y.indices, Y.indptr = indices, indptr
    assert type(Y) is getattr(sparse, container)
    assert Y.indices.dtype == index_dtype and Y.indptr.dtype == index_dtype
    assert structure(Y) == structure(X)
    return Y


# -- Comparing fits ------------------------------------------------------------------------------


def assert_mostly_equal_labels(ours, theirs):
    # float32: a row almost equally far from two centers may go either way (at most 1 in 500)
    assert np.mean(ours == theirs) >= 0.998, np.flatnonzero(ours != theirs)


def assert_same_fit(ours, theirs, dtype):
    assert ours.n_steps_ == theirs.n_steps_
    assert ours.n_iter_ == theirs.n_iter_
    assert type(ours.cluster_centers_) is np.ndarray
    assert ours.cluster_centers_.dtype == theirs.cluster_centers_.dtype
    if dtype == np.float64:
        assert_allclose(ours.cluster_centers_, theirs.cluster_centers_, rtol=1e-9, atol=1e-12)
        assert_allclose(ours.inertia_, theirs.inertia_, rtol=1e-9)
        assert_allclose(ours._counts, theirs._counts, rtol=1e-9)
        if hasattr(theirs, "labels_"):
            assert_array_equal(ours.labels_, theirs.labels_)
    else:
        scale = np.abs(theirs.cluster_centers_).max()
        assert_allclose(ours.cluster_centers_, theirs.cluster_centers_, rtol=0, atol=2e-5 * scale)
        assert_allclose(ours.inertia_, theirs.inertia_, rtol=1e-4)
        assert_allclose(ours._counts, theirs._counts, rtol=1e-5)
        if hasattr(theirs, "labels_"):
            assert_mostly_equal_labels(ours.labels_, theirs.labels_)


def assert_same_partial_fit(ours, theirs, dtype):
    assert ours.n_steps_ == theirs.n_steps_
    if dtype == np.float64:
        assert_allclose(ours.cluster_centers_, theirs.cluster_centers_, rtol=1e-9, atol=1e-12)
        assert_allclose(ours.inertia_, theirs.inertia_, rtol=1e-9)
        assert_allclose(ours._counts, theirs._counts, rtol=1e-9)
        assert_array_equal(ours.labels_, theirs.labels_)
    else:
        assert_allclose(ours.cluster_centers_, theirs.cluster_centers_, rtol=1e-4, atol=1e-4)
        assert_allclose(ours.inertia_, theirs.inertia_, rtol=1e-4)
        assert_allclose(ours._counts, theirs._counts, rtol=1e-5)
        assert_mostly_equal_labels(ours.labels_, theirs.labels_)


def assert_fits_identical(a, b):
    """Bitwise the same fit (same centers, labels, inertia, counters, running weights)."""
    assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    assert a.cluster_centers_.dtype == b.cluster_centers_.dtype
    assert a.inertia_ == b.inertia_
    assert a.n_steps_ == b.n_steps_
    assert_array_equal(a._counts, b._counts)
    if hasattr(b, "labels_"):
        assert_array_equal(a.labels_, b.labels_)


def fit_both(X, sample_weight=None, **params):
    """mbk's and scikit-learn's fits on X, and scikit-learn's log (verbose=1, which changes no
    result: it shows what the fit went through)."""
    ours = mbk.MiniBatchKMeans(**params).fit(X, sample_weight=sample_weight)
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        theirs = SklearnMiniBatchKMeans(verbose=1, **params).fit(X, sample_weight=sample_weight)
    return ours, theirs, log.getvalue()


def centers_reassigned(log):
    return sum(int(n) for n in re.findall(r"Reassigning (\d+) cluster centers", log))


def pick_rows(data, n_clusters, random_state):
    """A callable init written for scikit-learn, which hands it the sparse init sample."""
    return data[random_state.permutation(data.shape[0])[:n_clusters]].toarray()


def resolve_init(init, X, n_clusters):
    if init == "array":
        return X[:n_clusters].toarray()
    if init == "callable":
        return pick_rows
    return init


# -- fit against scikit-learn --------------------------------------------------------------------

BASE_PARAMS = {"n_clusters": 8, "batch_size": 100, "random_state": 0}

# Each case with a check of scikit-learn's log that the fit really went through what the case
# is about.
FIT_CASES = {
    "k-means++": ({}, None),
    "random-init": ({"init": "random"}, None),
    "array-init": ({"init": "array"}, None),
    "callable-init": ({"init": "callable"}, None),
    "n_init-3": ({"n_init": 3}, lambda log: "Init 3/3 with method k-means++" in log),
    "random-init-n_init-3": ({"init": "random", "n_init": 3}, lambda log: "Init 3/3" in log),
    "reassignment-0.5": (
        {"n_clusters": 20, "reassignment_ratio": 0.5, "batch_size": 50},
        lambda log: centers_reassigned(log) >= 40,
    ),
    "reassignment-1.0": (
        {"n_clusters": 20, "reassignment_ratio": 1.0, "batch_size": 64},
        lambda log: centers_reassigned(log) >= 40,
    ),
    "no-reassignment": ({"reassignment_ratio": 0.0}, lambda log: centers_reassigned(log) == 0),
    "tol": (
        {"tol": 0.01, "max_no_improvement": None},
        lambda log: "Converged (small centers change)" in log,
    ),
    "max_no_improvement-2": (
        {"max_no_improvement": 2},
        lambda log: "Converged (lack of improvement in inertia)" in log,
    ),
    "no-early-stop": ({"max_no_improvement": None, "max_iter": 3}, None),
    "init_size-below-n_samples": ({"init_size": 60, "n_init": 2}, None),
    "init_size-above-n_samples": ({"init_size": 5000}, None),
    "whole-data-batches": ({"batch_size": 1024}, None),
    "no-labels": ({"compute_labels": False}, None),
}


@needs_sklearn_19
@DTYPES
@pytest.mark.parametrize("case", list(FIT_CASES))
@pytest.mark.parametrize("data", list(DATA))
def test_fit_matches_sklearn(data, case, dtype):
    X = DATA[data](dtype)
    changes, log_check = FIT_CASES[case]
    params = {**BASE_PARAMS, **changes}
    params["init"] = resolve_init(params.get("init", "k-means++"), X, params["n_clusters"])
    ours, theirs, log = fit_both(X, **params)
    if log_check is not None:
        assert log_check(log), log
    assert_same_fit(ours, theirs, dtype)


@needs_sklearn_19
@DTYPES
@pytest.mark.parametrize("init", ["k-means++", "random", "array", "callable"])
@pytest.mark.parametrize("data", ["random-0", "blobs"])
def test_weighted_fit_matches_sklearn(data, init, dtype):
    X = DATA[data](dtype)
    w = np.random.RandomState(5).uniform(0, 4, X.shape[0])
    w[:50] = 0  # rows never drawn
    init = resolve_init(init, X, 6)
    ours, theirs, _ = fit_both(
        X, sample_weight=w, n_clusters=6, init=init, random_state=3, batch_size=80
    )
    assert_same_fit(ours, theirs, dtype)


@needs_sklearn_19
@DTYPES
@pytest.mark.parametrize(
    "params",
    [
        # k-means++ on a 150-row init sample; reassignment copies batch rows into centers
        {"n_clusters": 12, "batch_size": 50, "reassignment_ratio": 0.5},
        # every row in the init sample (init_size >= n_samples); whole-data batches
        {"n_clusters": 8, "init": "random", "batch_size": 1024, "n_init": 2},
    ],
    ids=["k-means++-reassignment", "random-init-whole-data"],
)
@pytest.mark.parametrize("kind", NON_CANONICAL_KINDS)
def test_non_canonical_csr_gives_sklearns_fit(kind, params, dtype):
    X = non_canonical(kind, dtype=dtype)
    ours, theirs, log = fit_both(X, random_state=1, **params)
    if params.get("reassignment_ratio"):
        assert centers_reassigned(log) >= 12, log
    assert_same_fit(ours, theirs, dtype)


@needs_sklearn_19
def test_fit_predict_and_fit_transform_match_sklearn():
    X = non_canonical("all-of-them")
    params = {"n_clusters": 6, "random_state": 2, "batch_size": 64}
    labels = mbk.MiniBatchKMeans(**params).fit_predict(X)
    assert_array_equal(labels, SklearnMiniBatchKMeans(**params).fit_predict(X))
    distances = mbk.MiniBatchKMeans(**params).fit_transform(X)
    assert type(distances) is np.ndarray
    assert_allclose(distances, SklearnMiniBatchKMeans(**params).fit_transform(X), rtol=1e-9)


# -- partial_fit against scikit-learn ------------------------------------------------------------


@needs_sklearn_19
@DTYPES
@pytest.mark.parametrize("weights", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("reassignment_ratio", [0.01, 0.5])
@pytest.mark.parametrize("kind", ["canonical", "all-of-them"])
def test_partial_fit_sequence_matches_sklearn(kind, reassignment_ratio, weights, dtype):
    if kind == "canonical":
        X, _ = sparse_blobs(4, n_samples=1200, dtype=dtype)
    else:
        X = non_canonical(kind, seed=4, n_samples=1200, dtype=dtype)
    w = np.random.RandomState(9).uniform(0.2, 3, X.shape[0]) if weights else None
    params = {"n_clusters": 10, "random_state": 2, "reassignment_ratio": reassignment_ratio}
    ours = mbk.MiniBatchKMeans(**params)
    theirs = SklearnMiniBatchKMeans(verbose=1, **params)
    log = io.StringIO()
    for start in range(0, X.shape[0], 150):
        batch = slice(start, start + 150)
        batch_w = None if w is None else w[batch]
        ours.partial_fit(X[batch], sample_weight=batch_w)
        with contextlib.redirect_stdout(log):
            theirs.partial_fit(X[batch], sample_weight=batch_w)
        assert_same_partial_fit(ours, theirs, dtype)
    if reassignment_ratio == 0.5:
        assert centers_reassigned(log.getvalue()) >= 10, log.getvalue()


@needs_sklearn_19
@pytest.mark.parametrize("first", ["dense", "sparse"])
def test_partial_fit_may_switch_between_dense_and_sparse_like_sklearn(first):
    X, _ = sparse_blobs(6, n_samples=900)
    ours = mbk.MiniBatchKMeans(n_clusters=6, random_state=0, batch_size=150)
    theirs = SklearnMiniBatchKMeans(n_clusters=6, random_state=0, batch_size=150)
    starting_dense = first == "dense"
    ours.fit(X[:300].toarray() if starting_dense else X[:300])
    theirs.fit(X[:300].toarray() if starting_dense else X[:300])
    for i, start in enumerate(range(300, 900, 100)):
        batch = X[start : start + 100]
        if (i % 2 == 0) == starting_dense:
            batch = batch.toarray()
        ours.partial_fit(batch)
        theirs.partial_fit(batch)
        assert_same_partial_fit(ours, theirs, np.float64)


# -- predict, transform, score against scikit-learn ----------------------------------------------


def assert_same_predictions(ours, theirs, X, dtype):
    """ours and theirs hold the same centers: the same answers on X."""
    labels = ours.predict(X)
    distances = ours.transform(X)
    score = ours.score(X)
    assert type(labels) is np.ndarray and labels.dtype == np.int32
    assert type(distances) is np.ndarray and distances.dtype == dtype
    assert isinstance(score, float)
    if dtype == np.float64:
        assert_array_equal(labels, theirs.predict(X))
        # A distance near 0 is what is left of ||x||^2 - 2 x.c + ||c||^2: its rounding is about
        # sqrt(eps) times the norms, not relative to the distance (a row that is a center
        # gives 1e-7 or 0 depending on the order of the sums).
        norms = np.sqrt(X.multiply(X).sum(axis=1).max() + (theirs.cluster_centers_**2).sum(1).max())
        assert_allclose(distances, theirs.transform(X), rtol=1e-9, atol=4e-8 * norms)
        assert_allclose(score, theirs.score(X), rtol=1e-9)
    else:
        assert_mostly_equal_labels(labels, theirs.predict(X))
        scale = np.abs(theirs.transform(X)).max()
        assert_allclose(distances, theirs.transform(X), rtol=1e-4, atol=1e-5 * scale)
        assert_allclose(score, theirs.score(X), rtol=1e-4)


@needs_sklearn_19
@DTYPES
@pytest.mark.parametrize("data", ["random-1", "blobs", *NON_CANONICAL_KINDS])
def test_predict_transform_score_match_sklearn_on_the_same_centers(data, dtype):
    if data in NON_CANONICAL_KINDS:
        X_train, X_new = non_canonical(data, dtype=dtype), non_canonical(data, 1, dtype=dtype)
    elif data == "blobs":
        X_train, X_new = sparse_blobs(dtype=dtype)[0], sparse_blobs(1, dtype=dtype)[0]
    else:
        X_train = random_csr(1, 400, 80, 0.25, dtype=dtype)
        X_new = random_csr(2, 300, 80, 0.25, dtype=dtype)
    theirs = SklearnMiniBatchKMeans(n_clusters=7, random_state=0).fit(X_train)
    ours = mbk.MiniBatchKMeans(n_clusters=7, random_state=0).fit(X_train)
    ours.cluster_centers_ = theirs.cluster_centers_
    for X in (X_train, X_new):
        assert_same_predictions(ours, theirs, X, dtype)
    w = np.random.RandomState(0).uniform(0, 2, X_new.shape[0])
    assert_allclose(
        ours.score(X_new, sample_weight=w),
        theirs.score(X_new, sample_weight=w),
        rtol=1e-9 if dtype == np.float64 else 1e-4,
    )


# -- kmeans_plusplus against scikit-learn --------------------------------------------------------


@needs_sklearn_19
@DTYPES
@pytest.mark.parametrize("n_clusters", [1, 5, 20])
@pytest.mark.parametrize("weights", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("data", ["random-0", "blobs", "all-of-them"])
def test_kmeans_plusplus_picks_sklearns_seeds(data, weights, n_clusters, dtype):
    X = non_canonical(data, dtype=dtype) if data == "all-of-them" else DATA[data](dtype)
    w = np.random.RandomState(1).uniform(0.1, 3, X.shape[0]) if weights else None
    ours, our_indices = mbk.kmeans_plusplus(X, n_clusters, sample_weight=w, random_state=7)
    theirs, their_indices = sklearn_kmeans_plusplus(X, n_clusters, sample_weight=w, random_state=7)
    assert_array_equal(our_indices, their_indices)
    assert type(ours) is np.ndarray and ours.dtype == dtype
    assert_allclose(ours, theirs, rtol=1e-12 if dtype == np.float64 else 1e-6, atol=0)


# -- 64-bit indices: the int32 result, bit for bit -----------------------------------------------


def _fit_story(X, container):
    """Everything a 64-bit index could change: a fit (k-means++ on an init sample,
    reassignment, early stopping), partial_fit steps, the predictions, and k-means++ seeds."""
    fitted = mbk.MiniBatchKMeans(
        n_clusters=10, random_state=0, batch_size=60, reassignment_ratio=0.5, tol=1e-4
    ).fit(X)
    stepped = mbk.MiniBatchKMeans(n_clusters=10, random_state=1, init="random")
    for start in range(0, X.shape[0], 100):
        # (slicing a csr_matrix narrows its indices to 32 bits: widened again)
        stepped.partial_fit(with_index_dtype(X[start : start + 100], X.indices.dtype, container))
    seeds, indices = mbk.kmeans_plusplus(X, 10, random_state=3)
    predictions = (fitted.predict(X), fitted.transform(X), fitted.score(X))
    return fitted, stepped, predictions, (seeds, indices)


@DTYPES
@pytest.mark.parametrize("container", ["csr_array", "csr_matrix"])
@pytest.mark.parametrize("kind", ["canonical", "all-of-them"])
def test_int64_indices_give_the_int32_result(kind, container, dtype):
    X32 = sparse_blobs(2, dtype=dtype)[0] if kind == "canonical" else non_canonical(kind, 2, dtype)
    X32 = with_index_dtype(X32, np.int32, container)
    X64 = with_index_dtype(X32, np.int64, container)
    expected, got = _fit_story(X32, container), _fit_story(X64, container)
    assert X64.indices.dtype == np.int64 and X64.indptr.dtype == np.int64
    for model_expected, model_got in zip(expected[:2], got[:2], strict=True):
        assert_fits_identical(model_got, model_expected)
    for a, b in zip(expected[2] + expected[3], got[2] + got[3], strict=True):
        assert_array_equal(b, a)


# -- Input kinds ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "container",
    ["csc_array", "csc_matrix", "coo_array", "coo_matrix", "lil_array", "dok_matrix"],
)
def test_other_sparse_formats_give_the_csr_result(container):
    X = sparse_blobs(3)[0]
    other = getattr(sparse, container)(X)
    params = {"n_clusters": 6, "random_state": 0, "batch_size": 100}
    expected = mbk.MiniBatchKMeans(**params).fit(X)
    model = mbk.MiniBatchKMeans(**params).fit(other)
    assert_fits_identical(model, expected)
    assert_array_equal(model.predict(other), expected.predict(X))
    assert_array_equal(model.transform(other), expected.transform(X))
    assert model.score(other) == expected.score(X)
    assert_array_equal(
        mbk.kmeans_plusplus(other, 6, random_state=0)[1],
        mbk.kmeans_plusplus(X, 6, random_state=0)[1],
    )


def test_csr_matrix_and_csr_array_give_the_same_result():
    X = non_canonical("all-of-them", 5)
    as_matrix = with_index_dtype(X, np.int32, "csr_matrix")
    params = {"n_clusters": 6, "random_state": 0, "batch_size": 100}
    expected = mbk.MiniBatchKMeans(**params).fit(X)
    model = mbk.MiniBatchKMeans(**params).fit(as_matrix)
    assert_fits_identical(model, expected)
    distances = model.transform(as_matrix)
    assert type(distances) is np.ndarray  # not np.matrix
    assert_array_equal(distances, expected.transform(X))


@needs_sklearn_19
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.float16, bool])
def test_other_numeric_data_dtypes_give_the_float64_result(dtype):
    # As scikit-learn converts them: scipy's astype(float64), which also merges duplicate
    # entries (and so sorts the rows).
    X = non_canonical("all-of-them", 1)
    if dtype is bool:
        data = X.data > 2
    elif np.dtype(dtype).kind in "iu":
        data = np.round(X.data * 10).astype(dtype)
    else:
        data = X.data.astype(dtype)
    X_other = with_index_dtype(X, np.int32, data=data)
    X_float = X_other.astype(np.float64)
    params = {"n_clusters": 5, "random_state": 0, "batch_size": 100}
    model = mbk.MiniBatchKMeans(**params).fit(X_other)
    assert model.cluster_centers_.dtype == np.float64
    assert_same_fit(model, SklearnMiniBatchKMeans(**params).fit(X_other), np.float64)
    expected = mbk.MiniBatchKMeans(**params).fit(X_float)
    assert_fits_identical(model, expected)
    assert model.transform(X_other).dtype == np.float64
    assert_array_equal(model.transform(X_other), expected.transform(X_float))
    assert model.score(X_other) == expected.score(X_float)


@pytest.mark.parametrize("fitted_on", ["dense", "sparse"])
@DTYPES
def test_dense_and_sparse_input_mix_after_fit(fitted_on, dtype):
    # (no duplicate entries: with them, scikit-learn's sparse distances differ from the dense
    # ones, see test_non_canonical_csr_gives_sklearns_fit)
    X_train, X_new = sparse_blobs(0, dtype=dtype)[0], non_canonical("unsorted", 1, dtype)
    model = mbk.MiniBatchKMeans(n_clusters=6, random_state=0, batch_size=100)
    model.fit(X_train.toarray() if fitted_on == "dense" else X_train)
    tolerance = {"rtol": 1e-9} if dtype == np.float64 else {"rtol": 1e-4, "atol": 1e-4}
    for X in (X_train, X_new):
        dense = X.toarray()
        assert_allclose(model.transform(X), model.transform(dense), **tolerance)
        assert_allclose(model.score(X), model.score(dense), rtol=tolerance["rtol"])
        labels, dense_labels = model.predict(X), model.predict(dense)
        # a label may differ only where two centers are equally far (up to rounding)
        exact = np.sqrt(
            ((dense.astype(np.float64)[:, None, :] - model.cluster_centers_[None]) ** 2).sum(2)
        )
        rows = np.flatnonzero(labels != dense_labels)
        assert_allclose(exact[rows, labels[rows]], exact[rows, dense_labels[rows]], **tolerance)
        assert len(rows) <= len(labels) // 500


@pytest.mark.parametrize("container", ["csr_array", "csr_matrix"])
def test_outputs_are_dense_ndarrays(container):
    X = with_index_dtype(non_canonical("all-of-them"), np.int32, container)
    model = mbk.MiniBatchKMeans(n_clusters=4, random_state=0).fit(X)
    centers = model.cluster_centers_
    assert type(centers) is np.ndarray and centers.flags.c_contiguous
    assert centers.shape == (4, X.shape[1])
    assert type(model.labels_) is np.ndarray and model.labels_.shape == (X.shape[0],)
    assert type(model.transform(X)) is np.ndarray
    assert type(model.fit_transform(X)) is np.ndarray
    assert type(model.predict(X)) is np.ndarray
    assert type(model.fit_predict(X)) is np.ndarray
    assert type(mbk.kmeans_plusplus(X, 4, random_state=0)[0]) is np.ndarray
    assert isinstance(model.score(X), float)


def test_sparse_input_is_never_densified():
    # 4000 x 5000 float64 is 160 MB dense; its stored entries take 256 kB. A dense copy of X,
    # of fit's 3072-row init sample (123 MB) or of a 1024-row batch (41 MB) would show here.
    X = random_csr(0, n_samples=4000, n_features=5000, density=0.001)
    dense_bytes = X.shape[0] * X.shape[1] * X.dtype.itemsize
    model = mbk.MiniBatchKMeans(n_clusters=8, random_state=0)
    model.fit(random_csr(1, 50, 5000, 0.01))  # imports and first-call setup outside the trace
    tracemalloc.start()
    try:
        model.fit(X)
        model.partial_fit(X[:1500])
        model.predict(X)
        model.transform(X)
        model.score(X)
        mbk.kmeans_plusplus(X, 8, random_state=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < dense_bytes / 10, f"peak {peak / 1e6:.1f} MB"


# -- Thread-count invariance ---------------------------------------------------------------------


@DTYPES
@pytest.mark.parametrize("kind", ["canonical", "all-of-them"])
def test_results_are_bitwise_identical_for_any_thread_count(kind, dtype):
    # Several 256-row chunks per batch and many clusters per thread.
    blob_params = {"n_samples": 2500, "n_features": 80, "n_centers": 20, "dtype": dtype}
    if kind == "canonical":
        X = sparse_blobs(7, **blob_params)[0]
    else:
        X = non_canonical(kind, 7, **blob_params)
    w = np.random.RandomState(0).uniform(0.5, 2, X.shape[0])
    runs = []
    for n_threads in (1, 2, 3):
        params = {"n_clusters": 20, "random_state": 0, "n_threads": n_threads}
        fitted = mbk.MiniBatchKMeans(
            batch_size=600, tol=1e-4, reassignment_ratio=0.3, **params
        ).fit(X, sample_weight=w)
        stepped = mbk.MiniBatchKMeans(reassignment_ratio=0.3, **params)
        for start in range(0, X.shape[0], 700):
            stepped.partial_fit(X[start : start + 700], sample_weight=w[start : start + 700])
        with threadpool_limits(n_threads, user_api="openmp"):
            seeds = mbk.kmeans_plusplus(X, 20, sample_weight=w, random_state=0)
        runs.append(
            (
                fitted.cluster_centers_,
                fitted.labels_,
                fitted.inertia_,
                fitted.n_steps_,
                stepped.cluster_centers_,
                stepped.labels_,
                stepped.inertia_,
                stepped._counts,
                fitted.predict(X),
                fitted.transform(X),
                fitted.score(X, sample_weight=w),
                *seeds,
            )
        )
    for other in runs[1:]:
        for expected, got in zip(runs[0], other, strict=True):
            assert_array_equal(got, expected)


# -- The caller's matrix -------------------------------------------------------------------------

N_SAMPLES, N_FEATURES, N_CLUSTERS = 40, 4, 3
TRAIN_METHODS = ["fit", "partial_fit", "fit_predict", "fit_transform"]
FITTED_METHODS = ["partial_fit_again", "predict", "transform", "score"]
ALL_METHODS = [*TRAIN_METHODS, *FITTED_METHODS, "kmeans_plusplus"]


def small_csr(seed=0, n_samples=N_SAMPLES, n_features=N_FEATURES, dtype=np.float64):
    """A small canonical csr_array with at least one stored entry in every row."""
    rng = np.random.RandomState(seed)
    dense = make_blobs(n_samples, n_features, N_CLUSTERS, dtype=dtype, seed=seed)[0]
    stored = rng.uniform(size=dense.shape) < 0.5
    stored[np.arange(n_samples), rng.randint(0, n_features, n_samples)] = True
    return sparse.csr_array(np.where(stored, dense, 0).astype(dtype))


def _call(method, X, **kwargs):
    """Run one public method on X: training methods on a new estimator, the others after a
    fit on another matrix of the same width."""
    if method == "kmeans_plusplus":
        return mbk.kmeans_plusplus(X, N_CLUSTERS, random_state=0, **kwargs)
    model = mbk.MiniBatchKMeans(n_clusters=N_CLUSTERS, random_state=0, batch_size=16)
    if method in TRAIN_METHODS:
        return getattr(model, method)(X, **kwargs)
    model.partial_fit(small_csr(1, n_features=X.shape[1]))
    if method == "partial_fit_again":
        return model.partial_fit(X, **kwargs)
    return getattr(model, method)(X, **kwargs)


@pytest.mark.parametrize("method", ALL_METHODS)
@pytest.mark.parametrize("data_dtype", [np.float64, np.float32, np.int64])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("container", ["csr_array", "csr_matrix"])
def test_callers_matrix_is_left_as_it_was(container, index_dtype, data_dtype, method):
    # Non-canonical, so that sorting or merging entries would show.
    X = non_canonical("all-of-them", n_samples=120, n_features=30)
    data = np.round(X.data * 10).astype(data_dtype)
    X = with_index_dtype(X, index_dtype, container, data=data)
    arrays = {name: getattr(X, name) for name in ("data", "indices", "indptr")}
    copies = {name: array.copy() for name, array in arrays.items()}
    shape, found, sorted_flag = X.shape, structure(X), X.has_sorted_indices
    _call(method, X)
    assert type(X) is getattr(sparse, container)
    assert X.shape == shape
    for name, array in arrays.items():
        assert getattr(X, name) is array, name
        assert array.dtype == copies[name].dtype, name
        assert_array_equal(array, copies[name], err_msg=name)
    assert structure(X) == found
    assert X.has_sorted_indices == sorted_flag


# -- Refused input -------------------------------------------------------------------------------

NON_FINITE = [
    pytest.param(np.nan, "contains NaN", id="nan"),
    pytest.param(np.inf, "contains infinity", id="+inf"),
    pytest.param(-np.inf, "contains infinity", id="-inf"),
]


@pytest.mark.parametrize("method", ALL_METHODS)
@DTYPES
@pytest.mark.parametrize("value, match", NON_FINITE)
def test_non_finite_stored_value_is_refused(value, match, dtype, method):
    X = small_csr(dtype=dtype)
    X.data[-1] = value  # the last stored value: a scan that stops early misses it
    with pytest.raises(ValueError, match=match):
        _call(method, X)


@DTYPES
@pytest.mark.parametrize("value, match", NON_FINITE)
def test_a_non_finite_sparse_batch_changes_nothing(value, match, dtype):
    # As for dense batches: the error comes before any center, weight or counter moves, and
    # the next batches continue exactly as if the bad one had never been given.
    batches = [sparse_blobs(seed, n_samples=300, dtype=dtype)[0] for seed in range(4)]
    bad = batches[1].copy()
    bad.data[-1] = value
    model = mbk.MiniBatchKMeans(n_clusters=3, random_state=0).partial_fit(batches[0])
    reference = mbk.MiniBatchKMeans(n_clusters=3, random_state=0).partial_fit(batches[0])
    with pytest.raises(ValueError, match=match):
        model.partial_fit(bad)
    assert_fits_identical(model, reference)
    for batch in batches[1:]:
        model.partial_fit(batch)
        reference.partial_fit(batch)
    assert_fits_identical(model, reference)


def _break(X, how):
    """Make the valid CSR matrix X malformed by assigning broken arrays to it (scipy's
    constructors would check some of these)."""
    n_samples, n_features = X.shape
    indptr, indices = X.indptr.copy(), X.indices.copy()
    middle = n_samples // 2
    if how == "indptr-decreasing":
        indptr[middle] = indptr[middle + 1] + 1
        assert indptr[middle] <= indptr[-1]
        X.indptr = indptr
    elif how == "indptr-not-starting-at-0":
        assert indptr[1] >= 1  # row 0 has an entry: still non-decreasing
        indptr[0] = 1
        X.indptr = indptr
    elif how == "negative-index":
        indices[-1] = -1  # the last entry: a scan that stops early misses it
        X.indices = indices
    elif how == "index-equal-to-n_features":
        indices[-1] = n_features
        X.indices = indices
    elif how == "index-past-2**32":
        # a narrowing to 32 bits would read column 1, a valid one
        indices[-1] = 2**32 + 1
        X.indices = indices
    elif how == "indptr-one-short":
        X.indptr = indptr[:-1]
    elif how == "indptr-one-long":
        X.indptr = np.append(indptr, indptr[-1])
    elif how == "indices-shorter-than-indptr":
        X.indices = indices[:-1]
    elif how == "data-shorter-than-indptr":
        X.data = X.data[:-1].copy()
    return X


MALFORMED = [
    "indptr-decreasing",
    "indptr-not-starting-at-0",
    "negative-index",
    "index-equal-to-n_features",
    "index-past-2**32",
    "indptr-one-short",
    "indptr-one-long",
    "indices-shorter-than-indptr",
    "data-shorter-than-indptr",
]


MALFORMED_CASES = [
    pytest.param(index_dtype, how, id=f"{np.dtype(index_dtype).name}-{how}")
    for index_dtype in (np.int32, np.int64)
    for how in MALFORMED
    if not (how == "index-past-2**32" and index_dtype == np.int32)  # no such int32 index
]


@pytest.mark.parametrize("method", ALL_METHODS)
@pytest.mark.parametrize("index_dtype, how", MALFORMED_CASES)
@pytest.mark.parametrize("container", ["csr_array", "csr_matrix"])
def test_malformed_csr_is_refused(container, index_dtype, how, method):
    X = _break(with_index_dtype(small_csr(), index_dtype, container), how)
    assert X.indices.dtype == index_dtype and X.indptr.dtype == index_dtype
    with pytest.raises(ValueError, match="not a valid CSR matrix"):
        _call(method, X)


@pytest.mark.parametrize("fitted_on", ["dense", "sparse"])
@pytest.mark.parametrize("method", ["predict", "transform", "score", "partial_fit"])
@pytest.mark.parametrize("n_features", [N_FEATURES - 1, N_FEATURES + 1])
def test_other_number_of_features_is_refused(n_features, method, fitted_on):
    X = small_csr()
    model = mbk.MiniBatchKMeans(n_clusters=N_CLUSTERS, random_state=0)
    model.fit(X.toarray() if fitted_on == "dense" else X)
    centers = model.cluster_centers_.copy()
    message = (
        f"X has {n_features} features, but MiniBatchKMeans is expecting {N_FEATURES} "
        "features as input."
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        getattr(model, method)(small_csr(1, n_features=n_features))
    assert model.n_features_in_ == N_FEATURES
    assert_array_equal(model.cluster_centers_, centers)


@pytest.mark.parametrize("method", ["fit", "fit_predict", "fit_transform"])
def test_nested_algorithm_refuses_sparse_input(method):
    model = mbk.MiniBatchKMeans(n_clusters=N_CLUSTERS, random_state=0, algorithm="nested")
    with pytest.raises(TypeError) as raised:
        getattr(model, method)(small_csr())
    assert "algorithm='nested'" in str(raised.value)
    assert "algorithm='sculley'" in str(raised.value)
    assert not hasattr(model, "cluster_centers_")

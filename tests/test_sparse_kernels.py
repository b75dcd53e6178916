"""The CSR kernel family on its own terms: the feature-major layout, the instruction-set
variants, and the centers the state holds in that layout between calls.

Parity with scikit-learn is tests/test_sparse.py; here the kernels are held to a NumPy
reference and to each other (every variant, any thread count, the same bits), and the
estimator's view of held centers is held to what scikit-learn's in-place updates show.
"""

import copy
import pickle

import numpy as np
import pytest

sparse = pytest.importorskip("scipy.sparse")

from mbk import MiniBatchKMeans, _core, _dense, _sparse, _tuning  # noqa: E402


def _csr(n_samples, n_features, density=0.2, seed=0, dtype=np.float64, index_dtype=np.int32):
    X = sparse.random_array((n_samples, n_features), density=density, format="csr", rng=seed,
                            dtype=dtype)  # fmt: skip
    return sparse.csr_array(
        (X.data, X.indices.astype(index_dtype), X.indptr.astype(index_dtype)), shape=X.shape
    )


@pytest.fixture(params=_dense.available_isas())
def isa(request):
    previous = _tuning.use_isa(request.param)
    yield request.param
    _tuning.use_isa(previous)


# -- the layout ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_clusters", [1, 7, 8, 9, 17])
@pytest.mark.parametrize("n_features", [1, 5, 255, 256, 257, 600])
def test_feature_major_centers_store_what_they_load(dtype, n_clusters, n_features):
    centers = np.random.default_rng(0).normal(size=(n_clusters, n_features)).astype(dtype)
    held = _sparse.FeatureMajorCenters(centers, 2)
    assert held.shape == centers.shape
    np.testing.assert_array_equal(held.to_array(), centers)
    out = np.empty_like(centers)
    held.store(out, 1)
    np.testing.assert_array_equal(out, centers)


def test_feature_major_centers_refuse_other_shapes_and_dtypes():
    held = _sparse.FeatureMajorCenters(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="shape and dtype"):
        held.store(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="shape and dtype"):
        held.store(np.zeros((3, 4), dtype=np.float32))
    with pytest.raises(TypeError, match="float32 or float64"):
        _sparse.FeatureMajorCenters(np.zeros((3, 4), dtype=np.int64))


# -- the kernels against NumPy, on every variant ---------------------------------------------


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("n_clusters", [3, 9, 40])
def test_labels_and_inertia_follow_the_reference(isa, index_dtype, n_clusters):
    X = _csr(700, 300, density=0.05, seed=1, index_dtype=index_dtype)
    centers = np.random.default_rng(2).normal(size=(n_clusters, 300)) * 0.1
    labels = np.empty(X.shape[0], dtype=np.int32)
    held = _sparse.FeatureMajorCenters(centers, 2)
    inertia = _core.assign_labels_csr(X.data, X.indices, X.indptr, 300, held, labels, None,
                                      None, 2, True)  # fmt: skip
    dense = X.toarray()
    distances = ((dense[:, None, :] - centers[None]) ** 2).sum(axis=2)
    np.testing.assert_array_equal(labels, distances.argmin(axis=1))
    np.testing.assert_allclose(inertia, distances.min(axis=1).sum(), rtol=1e-10)
    out = np.empty((X.shape[0], n_clusters))
    _core.euclidean_distances_csr(X.data, X.indices, X.indptr, 300, held, out, 2)
    np.testing.assert_allclose(np.sqrt(out), np.sqrt(distances), rtol=1e-9, atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_variant_gives_the_same_bits(dtype):
    # Large runs (many centers) and rows scattered over X: every loop's vector and remainder
    # parts, and the prefetches into the next row of the view.
    X = _csr(900, 700, density=0.03, seed=3, dtype=dtype)
    results = {}
    for name in _dense.available_isas():
        previous = _tuning.use_isa(name)
        try:
            model = MiniBatchKMeans(n_clusters=37, batch_size=128, max_iter=3, random_state=0,
                                    n_threads=2, reassignment_ratio=0.3).fit(X)  # fmt: skip
            streamed = MiniBatchKMeans(n_clusters=37, random_state=0, n_threads=2)
            for start in range(0, 900, 300):
                streamed.partial_fit(X[start : start + 300])
            results[name] = (model.cluster_centers_, model.labels_, model.inertia_,
                             streamed.cluster_centers_, streamed.transform(X))  # fmt: skip
        finally:
            _tuning.use_isa(previous)
    reference = results.pop("baseline")
    for name, result in results.items():
        for ours, theirs in zip(result, reference, strict=True):
            np.testing.assert_array_equal(ours, theirs, err_msg=name)


# -- centers held between calls ------------------------------------------------------------------


def _streamed(X, n_calls, **params):
    model = MiniBatchKMeans(n_clusters=5, random_state=0, **params)
    for start in range(0, n_calls * 100, 100):
        model.partial_fit(X[start : start + 100])
    return model


def test_held_centers_are_what_the_model_shows():
    X = _csr(600, 40, seed=4)
    model = _streamed(X, 2)
    centers = model.cluster_centers_
    model.partial_fit(X[200:300])
    # The array keeps its identity and shows the step, as scikit-learn's in-place update does.
    assert model.cluster_centers_ is centers
    expected = _streamed(X, 3).cluster_centers_
    np.testing.assert_array_equal(centers, expected)


def test_a_model_copied_or_pickled_between_calls_carries_the_centers():
    X = _csr(600, 40, seed=5)
    model = _streamed(X, 3)  # nothing has read cluster_centers_ since the last call
    pickled = pickle.loads(pickle.dumps(model))
    copied = copy.deepcopy(model)
    expected = _streamed(X, 3).cluster_centers_
    for other in (pickled, copied, model):
        np.testing.assert_array_equal(other.cluster_centers_, expected)
    # And each continues the same way.
    for other in (pickled, copied, model):
        other.partial_fit(X[300:400])
    np.testing.assert_array_equal(pickled.cluster_centers_, model.cluster_centers_)
    np.testing.assert_array_equal(copied.cluster_centers_, model.cluster_centers_)


def test_centers_set_or_written_between_calls_are_the_ones_used():
    X = _csr(600, 40, seed=6)
    model, twin = _streamed(X, 2), _streamed(X, 2)
    replacement = np.random.default_rng(0).random((5, 40))
    model.cluster_centers_ = replacement.copy()
    twin.cluster_centers_[...] = replacement  # in place, as a user may
    for m in (model, twin):
        m.partial_fit(X[200:300])
    np.testing.assert_array_equal(model.cluster_centers_, twin.cluster_centers_)
    assert not np.array_equal(model.cluster_centers_, _streamed(X, 3).cluster_centers_)


def test_predict_transform_score_read_the_held_centers():
    X = _csr(600, 40, seed=7)
    model = _streamed(X, 3)
    labels, distances, score = model.predict(X), model.transform(X), model.score(X)
    fresh = _streamed(X, 3)
    fresh.cluster_centers_  # noqa: B018 - brings the row-major centers up to date first
    np.testing.assert_array_equal(labels, fresh.predict(X))
    np.testing.assert_array_equal(distances, fresh.transform(X))
    assert score == fresh.score(X)


def test_dense_data_after_sparse_calls_continues_from_the_held_centers():
    X = _csr(600, 40, seed=8)
    model = _streamed(X, 2)
    model.partial_fit(X[200:300].toarray())
    twin = _streamed(X, 2)
    twin.cluster_centers_  # noqa: B018
    twin.partial_fit(X[200:300].toarray())
    np.testing.assert_array_equal(model.cluster_centers_, twin.cluster_centers_)


def test_predict_leaves_the_state_as_it_is():
    # (calls from several threads at once must not race to change what the state holds)
    X = _csr(600, 40, seed=9)
    model = _streamed(X, 2)
    model.cluster_centers_  # noqa: B018 - now nothing is held
    model.predict(X), model.transform(X), model.score(X)
    assert model._fitted.held_centers() is None
    model.partial_fit(X[200:300])
    assert model._fitted.held_centers() is not None


@pytest.mark.parametrize("out_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_candidate_distances_are_scipys_product_term_for_term(out_dtype, index_dtype):
    # Unsorted columns, duplicates and explicit zeros in both operands: the compiled product
    # must add the same terms in the same order as scipy's A @ X.T.
    rng = np.random.default_rng(10)
    X = _csr(300, 50, density=0.2, seed=11, index_dtype=index_dtype)
    order = np.concatenate([rng.permutation(np.arange(a, b)) for a, b in
                            zip(X.indptr[:-1], X.indptr[1:], strict=True)])  # fmt: skip
    indices, data = X.indices[order].copy(), X.data[order].copy()
    indices[1::7] = indices[::7][: indices[1::7].shape[0]]  # duplicates (some across rows)
    data[::11] = 0.0
    X = sparse.csr_array((data, indices, X.indptr), shape=X.shape)
    deduplicated = X.copy()
    deduplicated.sum_duplicates()
    assert deduplicated.nnz < X.nnz and not X.has_sorted_indices
    A = X[[3, 17, 17, 250]]
    a_sq = _core.csr_row_sq_norms(A.data, A.indptr)
    x_sq = _core.csr_row_sq_norms(X.data, X.indptr)
    out = np.empty((4, 300), dtype=out_dtype)
    XT = X.T.tocsr()
    _core.csr_sq_distances_to_rows(A.data, A.indices.astype(XT.indices.dtype),
                                   A.indptr.astype(XT.indices.dtype), XT.data, XT.indices,
                                   XT.indptr, a_sq, x_sq, out)  # fmt: skip
    expected = -2 * (A @ X.T).toarray()
    expected += a_sq[:, None]
    expected += x_sq[None, :]
    expected = expected.astype(out_dtype)
    np.maximum(expected, 0, out=expected)
    np.testing.assert_array_equal(out, expected)


def test_a_fit_whose_centers_cannot_fit_in_memory_fails_at_once():
    # The dense centers of a wide sparse matrix are counted before anything is allocated.
    X = _csr(20_000, 10_000_000, density=1e-7, seed=12)
    with pytest.raises(MemoryError, match=r"n_clusters=10000 on 20000 x 10000000 sparse float64"):
        MiniBatchKMeans(n_clusters=10_000, n_init=1, random_state=0).fit(X)


def test_a_sparse_fit_leaves_the_memory_check_what_it_needs():
    # An init subsample of sparse rows is counted as sparse rows, not as dense ones: a shape
    # whose init subsample would need 32 GB dense fits.
    X = _csr(2000, 1_000_000, density=5e-6, seed=13)
    model = MiniBatchKMeans(n_clusters=2, batch_size=1024, max_iter=1, random_state=0).fit(X)
    assert model.cluster_centers_.shape == (2, 1_000_000)

"""ONNX export through skl2onnx (issue 16, part 5): onnxruntime's labels and distances against
``predict`` and ``transform``.

The graph computes ``||x||^2 - 2 x.c + ||c||^2`` in the input's type, and ``transform`` and
``predict`` compute the same squared distances in their own order. Against the exact value (in
float64 from the same rows and centers), a side's squared distance is off by at most
``2 (n_features + 6) u S``, with ``S = ||x||^2 + ||c||^2`` and ``u`` the unit roundoff (2^-24 in
float32, 2^-53 in float64): ``n_features u S`` for the dot product and as much for the norms
(Higham's bound for a sum of n terms), ``u S`` for the centers' norms rounded to the input's
type, ``4 u S`` for the two additions (``|d^2| <= 2 S``) and ``6 u S`` for the square root and
this file's squaring of the distance it returns, with ``u S`` to spare. So the two
sides agree within twice that, ``4 (n_features + 6) u S`` (in float32 with 3 features, 2.1e-6 S),
and their labels may differ only where the two smallest exact squared distances are that
close: those near-ties are left out of the label comparison (and must be a tiny share of the
rows). Distances are compared squared: near zero the square root magnifies the rounding of the
difference (a row on a center of norm 16 gets 0.008 or NaN in float32, not 0).
"""

import json
import subprocess
import sys

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import mbk
from conftest import make_blobs

ort = pytest.importorskip("onnxruntime")  # (the onnx extra, which the test extra holds)
skl2onnx = pytest.importorskip("skl2onnx")
import mbk.onnx  # noqa: E402

MAX_NEAR_TIES = 0.005  # share of the rows whose labels are left out of the comparison

DTYPES = pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])


def _session(onnx_model):
    return ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])


def _run(onnx_model, X):
    labels, distances = _session(onnx_model).run(None, {"X": X})
    return labels, distances


def _tolerance(X, centers, dtype):
    """Per (row, center): how far two float computations of ||x - c||^2 may be apart, twice
    one's bound ``2 (n_features + 6) u S`` (see the module's docstring)."""
    u = np.finfo(dtype).eps / 2
    x64, c64 = X.astype(np.float64), centers.astype(np.float64)
    scale = (x64**2).sum(axis=1)[:, None] + (c64**2).sum(axis=1)[None, :]
    return 2 * 2 * (X.shape[1] + 6) * u * scale


def _exact_sq_distances(X, centers):
    x64, c64 = X.astype(np.float64), centers.astype(np.float64)
    return ((x64[:, None, :] - c64[None, :, :]) ** 2).sum(axis=2)


def _near_ties(X, centers, dtype):
    """Rows whose two nearest centers are within the rounding tolerance of each other."""
    exact = _exact_sq_distances(X, centers)
    if centers.shape[0] == 1:
        return np.zeros(X.shape[0], dtype=bool)
    order = np.argsort(exact, axis=1, kind="stable")
    rows = np.arange(X.shape[0])
    gap = exact[rows, order[:, 1]] - exact[rows, order[:, 0]]
    tolerance = np.maximum(
        _tolerance(X, centers, dtype)[rows, order[:, 0]],
        _tolerance(X, centers, dtype)[rows, order[:, 1]],
    )
    return gap <= tolerance


def assert_labels_match(labels, expected, X, centers, dtype):
    """Equal labels except at near-ties, which must be rare."""
    ties = _near_ties(X, centers, dtype)
    assert ties.mean() <= MAX_NEAR_TIES, f"{ties.sum()} near-ties in {len(ties)} rows"
    assert_array_equal(labels[~ties], expected[~ties])


def assert_distances_match(distances, expected, X, centers, dtype):
    """Squared distances within the rounding tolerance; NaN (a square root of a squared
    distance rounded below zero) only where the squared distance is within it of zero."""
    tolerance = _tolerance(X, centers, dtype)
    nan = np.isnan(distances)
    assert np.all(expected[nan] ** 2 <= tolerance[nan])
    difference = np.abs(distances.astype(np.float64) ** 2 - expected.astype(np.float64) ** 2)
    assert np.all(difference[~nan] <= tolerance[~nan])


def _overlapping_blobs(n_samples, n_features, k, dtype, seed=0):
    # spread 4 with centers in [-10, 10]: clusters overlap, so many rows are near a boundary
    X, _ = make_blobs(n_samples, n_features, max(k, 2), dtype=dtype, seed=seed, spread=4.0)
    return X


# -- labels and distances against predict and transform --------------------------------------


SHAPES = [(1, 1), (1, 4), (2, 3), (3, 8), (7, 5), (17, 20), (64, 33)]


@DTYPES
@pytest.mark.parametrize(
    ("n_features", "k"), SHAPES, ids=[f"{n_features}features-k{k}" for n_features, k in SHAPES]
)
def test_labels_and_distances_match_predict_and_transform(dtype, n_features, k):
    X = _overlapping_blobs(4000, n_features, k, dtype)
    model = mbk.MiniBatchKMeans(k, random_state=0, n_init=1).fit(X)
    onnx_model = mbk.onnx.to_onnx(model, X[:1])

    X_new = _overlapping_blobs(3000, n_features, k, dtype, seed=1)
    labels, distances = _run(onnx_model, X_new)
    assert labels.dtype == np.int64 and labels.shape == (3000,)
    assert distances.dtype == dtype and distances.shape == (3000, k)
    centers = model.cluster_centers_
    assert_labels_match(labels, model.predict(X_new), X_new, centers, dtype)
    assert_distances_match(distances, model.transform(X_new), X_new, centers, dtype)


@DTYPES
def test_rows_on_the_centers(dtype):
    # Exactly on a center the graph's squared distance rounds to about 0, either sign: its
    # distance is NaN or a small number where transform gives 0; the label is still right.
    X = _overlapping_blobs(2000, 5, 6, dtype)
    model = mbk.MiniBatchKMeans(6, random_state=0, n_init=1).fit(X)
    centers = model.cluster_centers_
    labels, distances = _run(mbk.onnx.to_onnx(model), centers)
    assert_array_equal(labels, np.arange(6))
    assert_distances_match(distances, model.transform(centers), centers, centers, dtype)


@DTYPES
def test_exact_ties_go_to_the_lowest_index(dtype):
    # Two equal centers give the same squared distances bit for bit, on both sides.
    X = _overlapping_blobs(500, 3, 4, dtype)
    model = mbk.MiniBatchKMeans(4, random_state=0, n_init=1).fit(X)
    centers = model.cluster_centers_.copy()
    centers[3] = centers[1]
    model.cluster_centers_ = centers
    labels, _ = _run(mbk.onnx.to_onnx(model), X)
    assert_array_equal(labels, model.predict(X))
    assert not np.any(labels == 3)


@DTYPES
@pytest.mark.parametrize("target_opset", [13, 18, None], ids=["opset13", "opset18", "default"])
@pytest.mark.parametrize("gemm", [True, False], ids=["gemm", "matmul"])
def test_opsets_and_the_gemm_option(dtype, target_opset, gemm):
    X = _overlapping_blobs(1500, 4, 5, dtype)
    model = mbk.MiniBatchKMeans(5, random_state=0, n_init=1).fit(X)
    onnx_model = mbk.onnx.to_onnx(model, target_opset=target_opset, options={"gemm": gemm})
    if target_opset is not None:
        assert {op.domain: op.version for op in onnx_model.opset_import}[""] == target_opset
    op_types = {node.op_type for node in onnx_model.graph.node}
    assert ("Gemm" in op_types) == gemm and ("MatMul" in op_types) != gemm
    labels, distances = _run(onnx_model, X)
    centers = model.cluster_centers_
    assert_labels_match(labels, model.predict(X), X, centers, dtype)
    assert_distances_match(distances, model.transform(X), X, centers, dtype)


def test_the_graph_follows_the_models_dtype_unless_told():
    X = _overlapping_blobs(1500, 4, 5, np.float32)
    model = mbk.MiniBatchKMeans(5, random_state=0, n_init=1).fit(X)
    # X's dtype does not choose the input's: the model computes in float32
    float32_graph = mbk.onnx.to_onnx(model, X[:1].astype(np.float64))
    assert float32_graph.graph.input[0].type.tensor_type.elem_type == 1  # FLOAT
    # float64 asked for: the float32 centers are widened and the graph computes in float64
    double_graph = mbk.onnx.to_onnx(model, dtype=np.float64)
    assert double_graph.graph.input[0].type.tensor_type.elem_type == 11  # DOUBLE
    labels, distances = _run(double_graph, X.astype(np.float64))
    assert distances.dtype == np.float64
    centers = model.cluster_centers_
    assert_labels_match(labels, model.predict(X), X, centers, np.float32)
    assert_distances_match(distances, model.transform(X), X, centers, np.float32)
    with pytest.raises(ValueError, match="float32 or float64"):
        mbk.onnx.to_onnx(model, dtype=np.int64)


# -- through skl2onnx's own entry points --------------------------------------------------------


@DTYPES
def test_skl2onnx_converts_a_registered_model(dtype):
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    mbk.onnx.register()
    mbk.onnx.register()  # again: no harm
    X = _overlapping_blobs(2000, 6, 7, dtype)
    model = mbk.MiniBatchKMeans(7, random_state=0, n_init=1).fit(X)
    centers = model.cluster_centers_
    tensor_type = FloatTensorType if dtype == np.float32 else DoubleTensorType
    for onnx_model in (
        skl2onnx.to_onnx(model, X[:1]),
        skl2onnx.convert_sklearn(model, initial_types=[("X", tensor_type([None, 6]))]),
    ):
        labels, distances = _run(onnx_model, X)
        assert_labels_match(labels, model.predict(X), X, centers, dtype)
        assert_distances_match(distances, model.transform(X), X, centers, dtype)


def test_skl2onnx_converts_a_pipeline_ending_in_mbk():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    mbk.onnx.register()
    X = _overlapping_blobs(2000, 4, 5, np.float32)
    pipeline = make_pipeline(StandardScaler(), mbk.MiniBatchKMeans(5, random_state=0, n_init=1))
    pipeline.fit(X)
    labels, distances = _run(skl2onnx.to_onnx(pipeline, X[:1]), X)
    # The graph scales in float32 too: compare on the scaled rows, with the same tolerance for
    # the scaling's rounding (relative u per coordinate, well inside it).
    scaled = pipeline[:-1].transform(X)
    centers = pipeline[-1].cluster_centers_
    assert_labels_match(labels, pipeline.predict(X), scaled, centers, np.float32)
    assert_distances_match(distances, pipeline.transform(X), scaled, centers, np.float32)


# -- feature names ---------------------------------------------------------------------------


def test_dataframe_columns_are_checked_and_kept_in_the_metadata():
    pd = pytest.importorskip("pandas")
    X = _overlapping_blobs(1500, 3, 4, np.float64)
    frame = pd.DataFrame(X, columns=["income", "latitude", "longitude"])
    model = mbk.MiniBatchKMeans(4, random_state=0, n_init=1).fit(frame)
    onnx_model = mbk.onnx.to_onnx(model, frame.head(1))
    metadata = {entry.key: entry.value for entry in onnx_model.metadata_props}
    assert json.loads(metadata["feature_names_in"]) == ["income", "latitude", "longitude"]
    session = _session(onnx_model)
    assert session.get_modelmeta().custom_metadata_map["feature_names_in"]
    labels, distances = session.run(None, {"X": frame.to_numpy()})
    centers = model.cluster_centers_
    assert_labels_match(labels, model.predict(frame), X, centers, np.float64)
    assert_distances_match(distances, model.transform(frame), X, centers, np.float64)

    with pytest.raises(ValueError, match="same order"):
        mbk.onnx.to_onnx(model, frame[["latitude", "income", "longitude"]].head(1))
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        mbk.onnx.to_onnx(model, X[:1])  # as predict warns


def test_no_feature_names_no_metadata():
    X = _overlapping_blobs(500, 3, 4, np.float64)
    model = mbk.MiniBatchKMeans(4, random_state=0, n_init=1).fit(X)
    assert not any(e.key == "feature_names_in" for e in mbk.onnx.to_onnx(model).metadata_props)
    with pytest.raises(ValueError, match="X has 2 features"):
        mbk.onnx.to_onnx(model, X[:1, :2])


# -- errors ------------------------------------------------------------------------------------


def test_an_unfitted_model_raises_not_fitted():
    model = mbk.MiniBatchKMeans(3)
    with pytest.raises(mbk.NotFittedError):
        mbk.onnx.to_onnx(model)
    mbk.onnx.register()
    X = np.zeros((1, 2), dtype=np.float32)
    with pytest.raises(mbk.NotFittedError):
        skl2onnx.to_onnx(model, X)


def test_n_clusters_changed_after_fit_raises():
    X = _overlapping_blobs(500, 3, 4, np.float64)
    model = mbk.MiniBatchKMeans(4, random_state=0, n_init=1).fit(X)
    model.set_params(n_clusters=5)
    with pytest.raises(ValueError, match="fit it again"):
        mbk.onnx.to_onnx(model)


def test_only_mbk_models():
    from sklearn.cluster import MiniBatchKMeans

    with pytest.raises(TypeError, match="mbk.MiniBatchKMeans"):
        mbk.onnx.to_onnx(MiniBatchKMeans(3))


def test_missing_skl2onnx_names_the_extra(monkeypatch):
    model = mbk.MiniBatchKMeans(2, random_state=0, n_init=1).fit(np.arange(8.0).reshape(4, 2))
    monkeypatch.setitem(sys.modules, "skl2onnx", None)  # import skl2onnx raises ImportError
    with pytest.raises(ImportError, match=r'pip install "mbk\[onnx\]"'):
        mbk.onnx.register()
    with pytest.raises(ImportError, match=r'pip install "mbk\[onnx\]"'):
        mbk.onnx.to_onnx(model)


def test_importing_mbk_onnx_imports_no_onnx_package():
    code = (
        "import sys, mbk, mbk.onnx\n"
        "loaded = {'skl2onnx', 'onnx', 'onnxruntime'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

"""ONNX export through skl2onnx (the ``onnx`` extra: ``pip install "mbk[onnx]"``).

mbk's estimator is registered with skl2onnx under skl2onnx's own k-means converter and shape
calculator, which read the fitted ``cluster_centers_`` and ``n_clusters``. The graph has one
input, ``X`` of shape (n_samples, n_features), and two outputs: ``label`` (int64, the nearest
center, the lowest index on ties) and ``scores`` (the distance to each center, what
``transform`` returns). It computes ``||x||^2 - 2 x.c + ||c||^2`` in the input's type, so its
labels may differ from ``predict`` where two centers are nearly equally near, and its distances
equal ``transform``'s to that type's rounding; a squared distance that rounds below zero (a row
on a center) gives NaN, where ``transform`` gives 0.

skl2onnx, onnx and onnxruntime are imported only when a function here is called: mbk's runtime
dependencies stay numpy and threadpoolctl.
"""

import json

import numpy as np

from ._kmeans import MiniBatchKMeans
from ._sources import check_feature_names, check_n_features, read_input

# The name mbk's estimator is registered under (skl2onnx's aliases: library, then model).
ALIAS = "MbkMiniBatchKMeans"


def _skl2onnx():
    """The skl2onnx module, or an ImportError that names the extra to install."""
    try:
        import skl2onnx
    except ImportError as error:
        raise ImportError(
            'ONNX export needs skl2onnx, onnx and onnxruntime: pip install "mbk[onnx]"'
        ) from error
    return skl2onnx


def _check_exportable(model):
    """The model's fitted state; NotFittedError before a fit, ValueError if ``n_clusters`` was
    changed since (the shape calculator declares ``n_clusters`` distance columns)."""
    state = model._fitted_state()
    if model.n_clusters != state.n_clusters:
        raise ValueError(
            f"n_clusters={model.n_clusters} but the model was fitted with "
            f"{state.n_clusters} clusters: fit it again before exporting it."
        )
    return state


def register():
    """Register ``mbk.MiniBatchKMeans`` with skl2onnx.

    After it, ``skl2onnx.to_onnx(model, X[:1])`` and ``skl2onnx.convert_sklearn`` convert a
    fitted mbk model (alone or inside a scikit-learn pipeline) as they convert scikit-learn's
    ``MiniBatchKMeans``, with the same converter and its option ``gemm`` (True: one Gemm,
    False: a MatMul). Calling it again does no harm.

    Raises
    ------
    ImportError
        When skl2onnx is not installed (``pip install "mbk[onnx]"``).
    """
    skl2onnx = _skl2onnx()
    from skl2onnx.operator_converters.k_means import convert_sklearn_kmeans
    from skl2onnx.shape_calculators.k_means import calculate_sklearn_kmeans_output_shapes

    def shapes(operator):
        # The converter reads cluster_centers_, which an unfitted mbk model lacks: say so
        # with the NotFittedError predict raises, before any node is made.
        _check_exportable(operator.raw_operator)
        calculate_sklearn_kmeans_output_shapes(operator)

    skl2onnx.update_registered_converter(
        MiniBatchKMeans,
        ALIAS,
        shapes,
        convert_sklearn_kmeans,
        options={"gemm": [True, False]},
    )


def to_onnx(model, X=None, *, dtype=None, target_opset=None, options=None, name=None):
    """Export a fitted model as an ONNX model (registering it with skl2onnx first).

    Parameters
    ----------
    model : MiniBatchKMeans
        A fitted model.
    X : {array-like, sparse matrix} of shape (n_samples, n_features), default=None
        Sample rows, only checked against the columns fit saw (their number, and their names
        for a DataFrame); the input's width comes from the model. skl2onnx itself makes one
        input per column of a DataFrame, which its k-means converter refuses; here the
        graph's input is one tensor whose columns are ``feature_names_in_`` in that order.
    dtype : {np.float32, np.float64}, default=None
        Type of the graph's input, its computation and its distances; None: the centers'
        dtype, which is what ``predict`` and ``transform`` compute in.
    target_opset : int, default=None
        ONNX opset to target; None: skl2onnx's default.
    options : dict, default=None
        skl2onnx options for the converter, e.g. ``{"gemm": False}``.
    name : str, default=None
        Name of the graph; None: skl2onnx's (``"ONNX(MiniBatchKMeans)"``).

    Returns
    -------
    onnx_model : onnx.ModelProto
        Input ``X`` of shape (None, n_features); outputs ``label`` (int64, shape (None,)) and
        ``scores`` (shape (None, n_clusters), the distances). With feature names, the
        metadata entry ``feature_names_in`` lists them as JSON.

    Raises
    ------
    NotFittedError
        When the model is not fitted.
    ImportError
        When skl2onnx is not installed (``pip install "mbk[onnx]"``).
    """
    if not isinstance(model, MiniBatchKMeans):
        raise TypeError(f"model must be an mbk.MiniBatchKMeans, not {type(model).__name__}.")
    state = _check_exportable(model)
    if X is not None:
        incoming = read_input(X, dtype=state.dtype)
        check_feature_names(state.feature_names, incoming.feature_names, type(model).__name__)
        check_n_features(incoming.n_features, state.n_features, type(model).__name__)
    dtype = state.dtype if dtype is None else np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64; got {dtype}.")

    skl2onnx = _skl2onnx()
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    register()
    tensor_type = FloatTensorType if dtype == np.float32 else DoubleTensorType
    onnx_model = skl2onnx.to_onnx(
        model,
        name=name,
        initial_types=[("X", tensor_type([None, state.n_features]))],
        target_opset=target_opset,
        options=None if options is None else {id(model): options},
    )
    if state.feature_names is not None:
        entry = onnx_model.metadata_props.add()
        entry.key = "feature_names_in"
        entry.value = json.dumps([str(name) for name in state.feature_names])
    return onnx_model

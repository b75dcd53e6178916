"""The command line's ``fit``, ``predict`` and ``info``: tables in, a Cluster column out.

Each command takes the parsed arguments and an ``echo`` for its report, and raises
``_tables.DataError`` (or ``ModelFileError``, ``TooFewRows``) for what the user can fix;
``_cli.main`` turns those into one line and an exit code.
"""

import json
import math
import os
import sys
import time

import numpy as np

from . import _model_file, _tables
from ._kmeans import MiniBatchKMeans
from ._progress import ProgressLine

EXIT_TOO_FEW_ROWS, EXIT_MODEL_FILE = 9, 10


class TooFewRows(_tables.DataError):
    exit_code = EXIT_TOO_FEW_ROWS


class ModelFileError(_tables.DataError):
    exit_code = EXIT_MODEL_FILE


# -- fit ----------------------------------------------------------------------------------------


def fit(args, echo):
    table = _tables.read_table(args.data, args.delimiter)
    columns, skipped = _feature_columns(table, args.columns, args.weights)
    X = table.numbers(columns)
    weights = table.numbers([args.weights])[:, 0] if args.weights else None
    keep = _rows_to_keep(table, X, weights, args.dropna, echo)
    if keep is not None:
        X = X[keep]
        weights = None if weights is None else weights[keep]
    if weights is not None and (weights < 0).any():
        raise _tables.DataError(f"{args.data}: column {args.weights!r} holds negative weights")
    if len(X) < args.clusters:
        raise TooFewRows(
            f"{args.data}: {len(X):,} rows{' left' if keep is not None else ''} for "
            f"{args.clusters} clusters; ask for at most {len(X)} clusters"
        )
    means, scales = _standard_scaling(X) if args.scale == "standard" else (None, None)
    features = X if means is None else (X - means) / scales
    model = MiniBatchKMeans(
        n_clusters=args.clusters, init=args.init, max_iter=args.max_iter,
        batch_size=args.batch_size, random_state=args.seed, n_threads=args.threads,
        algorithm=args.algorithm,
    )  # fmt: skip
    progress = _progress_line(args, model, len(X))
    if progress is not None:
        model.set_callbacks(progress)
    started = time.perf_counter()
    try:
        labels = model.fit_predict(features, sample_weight=weights)
    finally:
        if progress is not None:
            progress.close()
    seconds = time.perf_counter() - started
    model.set_callbacks()
    centers = model.cluster_centers_.astype(np.float64)
    if means is not None:
        centers = centers * scales + means
    preprocessing = {
        "columns": columns,
        "scale": args.scale,
        "means": None if means is None else means.tolist(),
        "scales": None if scales is None else scales.tolist(),
    }
    written = _write_outputs(args, table, labels, keep, model, preprocessing, X, centers)
    summary = {
        "command": "fit",
        "data": str(args.data),
        "rows": int(len(X)),
        "dropped_rows": 0 if keep is None else int((~keep).sum()),
        "columns": columns,
        "skipped_columns": skipped,
        "weights": args.weights,
        "clusters": _clusters(labels, centers, columns, weights),
        # (in the input's units: with scaling, the scaled fit's labels against its centers)
        "inertia": float(model.inertia_)
        if means is None
        else _inertia(X, labels, centers, weights),  # fmt: skip
        "steps": int(model.n_steps_),
        "iterations": int(model.n_iter_),
        "stop_reason": model.stop_reason_,
        "seconds": seconds,
        "written": written,
    }
    _report(summary, args.json, echo)
    return summary


def _feature_columns(table, requested, weights):
    """The columns to cluster on, and the numeric ones left out (no --columns: every
    numeric column but the weights'; the others are named as skipped)."""
    if requested:
        names = [name.strip() for name in requested.split(",") if name.strip()]
        table.numbers(names)  # (names a missing or non-numeric column)
        if weights in names:
            raise _tables.DataError(f"column {weights!r} cannot be both a feature and weights")
        return names, []
    names, skipped = [], []
    for name in table.names:
        if name == weights:
            continue
        (names if table.is_numeric(name) else skipped).append(name)
    if not names:
        raise _tables.NonNumericColumn(
            f"{table.path}: no numeric column to cluster on (columns: {', '.join(table.names)})"
        )
    return names, skipped


def _rows_to_keep(table, X, weights, dropna, echo):
    """None (every row), or with --dropna the rows without NaN; MissingValues otherwise."""
    bad = np.isnan(X).any(axis=1)
    if weights is not None:
        bad |= np.isnan(weights)
    n_bad = int(bad.sum())
    if not n_bad:
        return None
    if not dropna:
        first = int(np.flatnonzero(bad)[0])
        raise _tables.MissingValues(
            f"{table.path}: {n_bad:,} rows have missing values in the chosen columns (the "
            f"first is data row {first + 1}); use --dropna to leave them out"
        )
    echo(f"dropped {n_bad:,} rows with missing values ({n_bad / len(X):.1%})")
    return ~bad


def _standard_scaling(X):
    """Column means and standard deviations (1 where a column is constant)."""
    means = X.mean(axis=0)
    scales = X.std(axis=0)
    scales[scales == 0] = 1.0
    return means, scales


def _progress_line(args, model, n_rows):
    if args.quiet or args.json or not sys.stderr.isatty():
        return None
    batch_size = min(model.batch_size, n_rows)
    return ProgressLine(sys.stderr, model.max_iter * n_rows // batch_size, batch_size)


def _write_outputs(args, table, labels, keep, model, preprocessing, X, centers):
    written = {}
    if args.out:
        table.write_rows(args.out, labels, keep, args.force)
        written["out"] = str(args.out)
    if args.model:
        _model_file.write(args.model, model, preprocessing=preprocessing,
                          overwrite=args.force)  # fmt: skip
        written["model"] = str(args.model)
    if args.plot:
        from .plotting import _write_clusters_png

        title = f"{model.n_clusters} clusters of {os.path.basename(str(args.data))}"
        _write_clusters_png(args.plot, X, labels, centers, preprocessing["columns"],
                            force=args.force, title=title)  # fmt: skip
        written["plot"] = str(args.plot)
    return written


def _inertia(X, labels, centers, weights):
    squared = ((X - centers[labels]) ** 2).sum(axis=1)
    return float(squared.sum() if weights is None else (weights * squared).sum())


def _clusters(labels, centers, columns, weights):
    counts = np.bincount(labels, minlength=len(centers))
    return [
        {"cluster": j, "rows": int(counts[j]), "share": float(counts[j] / len(labels)),
         "center": dict(zip(columns, map(float, centers[j]), strict=True))}
        for j in range(len(centers))
    ]  # fmt: skip


def _report(summary, as_json, echo):
    if as_json:
        echo(json.dumps(summary, indent=2, allow_nan=False, default=_json_default))
        return
    if summary.get("skipped_columns"):
        echo(f"skipped non-numeric columns: {', '.join(summary['skipped_columns'])}")
    columns = summary["columns"]
    width = max(12, *(len(name) for name in columns))
    echo(f"{'Cluster':>7}  {'rows':>9}  {'share':>6}  "
         + "  ".join(f"{name:>{width}}" for name in columns))  # fmt: skip
    for cluster in summary["clusters"]:
        values = "  ".join(f"{value:>{width}.6g}" for value in cluster["center"].values())
        echo(f"{cluster['cluster']:>7}  {cluster['rows']:>9,}  {cluster['share']:>6.1%}  "
             f"{values}")  # fmt: skip
    if summary["command"] == "fit":
        echo(f"{summary['rows']:,} rows, inertia {summary['inertia']:.6g}, "
             f"{summary['steps']:,} steps ({summary['stop_reason'] or 'nested rounds'}), "
             f"{_duration(summary['seconds'])}")  # fmt: skip
    for what, path in summary["written"].items():
        echo(f"wrote {path} ({what})")


def _duration(seconds):
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _json_default(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


# -- predict and info -------------------------------------------------------------------------


def _read_model(path):
    try:
        return _model_file.read(path)
    except FileNotFoundError:
        raise _tables.UnreadableFile(f"{path}: no such file") from None
    except OSError as error:
        raise _tables.UnreadableFile(f"{path}: cannot be read ({error})") from None
    except ValueError as error:
        raise ModelFileError(str(error)) from None


def predict(args, echo):
    model, preprocessing = _read_model(args.model)
    table = _tables.read_table(args.data, args.delimiter)
    columns = _model_columns(model, preprocessing, table)
    X = table.numbers(columns)
    keep = _rows_to_keep(table, X, None, args.dropna, echo)
    if keep is not None:
        X = X[keep]
    features = X
    if preprocessing is not None and preprocessing["scale"] == "standard":
        features = (X - np.asarray(preprocessing["means"])) / np.asarray(preprocessing["scales"])
    labels = model.predict(features)
    table.write_rows(args.out, labels, keep, args.force)
    centers = model.cluster_centers_.astype(np.float64)
    if preprocessing is not None and preprocessing["scale"] == "standard":
        centers = centers * np.asarray(preprocessing["scales"]) + np.asarray(preprocessing["means"])
    summary = {
        "command": "predict",
        "model": str(args.model),
        "data": str(args.data),
        "rows": int(len(X)),
        "dropped_rows": 0 if keep is None else int((~keep).sum()),
        "columns": columns,
        "clusters": _clusters(labels, centers, columns, None),
        "written": {"out": str(args.out)},
    }
    _report(summary, args.json, echo)
    return summary


def _model_columns(model, preprocessing, table):
    """The data's columns the model was fitted on: the command line's, the model's feature
    names, or (a model fitted on an array) the table's first n_features numeric columns."""
    if preprocessing is not None:
        return list(preprocessing["columns"])
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        return [str(name) for name in names]
    numeric = [name for name in table.names if table.is_numeric(name)]
    if len(numeric) != model.n_features_in_:
        raise _tables.MissingColumn(
            f"{table.path}: the model has {model.n_features_in_} features and no column names;"
            f" the table has {len(numeric)} numeric columns ({', '.join(numeric)})"
        )
    return numeric


def info(args, echo):
    model, preprocessing = _read_model(args.model)
    with np.load(args.model, allow_pickle=False) as archive:
        metadata = json.loads(bytes(archive["metadata"]).decode("utf-8"))
    history = model.history_
    columns = (
        preprocessing["columns"] if preprocessing is not None
        else [str(n) for n in getattr(model, "feature_names_in_", range(model.n_features_in_))]
    )  # fmt: skip
    summary = {
        "command": "info",
        "model": str(args.model),
        "format_version": metadata["format_version"],
        "mbk_version": metadata["mbk_version"],
        "class": metadata["class"],
        "dtype": metadata["dtype"],
        "n_clusters": int(model.cluster_centers_.shape[0]),
        "n_features": int(model.n_features_in_),
        "features": columns,
        "params": {name: _plain(value) for name, value in model.get_params().items()},
        "steps": int(model.n_steps_),
        "iterations": None if getattr(model, "n_iter_", None) is None else int(model.n_iter_),
        "stop_reason": model.stop_reason_,
        "inertia": getattr(model, "inertia_", None),
        "history_steps": int(len(history["batch_inertia"])),
        "fit_seconds": float(history["elapsed"][-1]) if len(history["elapsed"]) else None,
        "preprocessing": preprocessing,
    }
    if args.json:
        echo(json.dumps(summary, indent=2, allow_nan=False, default=_json_default))
        return summary
    scale = "none" if preprocessing is None else preprocessing["scale"]
    stopped = summary["stop_reason"] or "nothing (partial_fit, or nested rounds)"
    seconds = "" if summary["fit_seconds"] is None else f", {_duration(summary['fit_seconds'])}"
    for line in (
        f"{args.model}: {summary['class']}, model file format {summary['format_version']}, "
        f"written by mbk {summary['mbk_version']}",
        f"  {summary['n_clusters']} clusters x {summary['n_features']} features "
        f"({summary['dtype']}): {', '.join(columns)}",
        f"  scaling: {scale}",
        f"  fitted: {summary['steps']:,} steps, {summary['iterations']} passes{seconds}; "
        f"stopped by {stopped}; inertia {summary['inertia']:.6g}",
    ):
        echo(line)
    echo("  parameters: " + ", ".join(f"{k}={v!r}" for k, v in summary["params"].items()))
    return summary


def _plain(value):
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape}"
    if isinstance(value, np.generic):
        return value.item()
    return value

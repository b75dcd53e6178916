"""Plots of a clustering and of a fit's convergence.

matplotlib is an optional extra (``pip install "mbk[plot]"``; ``mbk[cli]`` has it too): it is
imported when a plot is drawn, never with mbk. Each function draws on the Axes it is given,
or on a new ``matplotlib.figure.Figure`` of its own (no pyplot: no global state, no display
needed), and returns the Axes; nothing is ever shown. Save a plot with
``ax.figure.savefig(path)``.
"""

import math
import numbers
from types import SimpleNamespace

import numpy as np

from ._compat import NotFittedError
from ._sources.common import is_sparse

__all__ = ["plot_clusters", "plot_convergence"]

_INSTALL_HINT = 'mbk\'s plots need matplotlib: pip install "mbk[plot]" (or "mbk[cli]").'

# Column names that make plot_clusters draw a map (compared in lower case).
_LONGITUDE_NAMES = frozenset({"longitude", "lon", "lng", "long"})
_LATITUDE_NAMES = frozenset({"latitude", "lat"})

# California's border, approximate (a few hundredths of a degree at best), as (longitude,
# latitude) vertices clockwise from the Oregon border on the coast: the 42nd parallel, the
# 120th meridian down to Lake Tahoe, the oblique line to the Colorado River, the river down
# to the Mexican border, that border to the Pacific, and the coast back north. Enough to
# place the points on a map at a glance, drawn offline.
_CALIFORNIA_BORDER = (
    (-124.21, 42.00), (-120.00, 42.00), (-120.00, 39.00), (-114.63, 35.00),
    (-114.64, 34.87), (-114.47, 34.71), (-114.34, 34.45), (-114.14, 34.27),
    (-114.43, 34.08), (-114.53, 33.93), (-114.50, 33.69), (-114.72, 33.41),
    (-114.70, 33.08), (-114.47, 32.85), (-114.62, 32.73), (-114.72, 32.72),
    (-117.12, 32.53), (-117.24, 32.67), (-117.26, 32.86), (-117.33, 33.12),
    (-117.41, 33.24), (-117.71, 33.46), (-118.00, 33.65), (-118.20, 33.75),
    (-118.41, 33.74), (-118.39, 33.86), (-118.52, 34.03), (-118.80, 34.00),
    (-119.22, 34.15), (-119.40, 34.32), (-119.70, 34.40), (-120.47, 34.45),
    (-120.64, 34.57), (-120.61, 34.88), (-120.64, 35.14), (-120.89, 35.44),
    (-121.28, 35.66), (-121.50, 35.90), (-121.90, 36.31), (-121.97, 36.58),
    (-121.79, 36.80), (-122.02, 36.96), (-122.40, 37.18), (-122.50, 37.50),
    (-122.51, 37.78), (-122.80, 37.90), (-123.02, 38.00), (-122.97, 38.24),
    (-123.07, 38.30), (-123.38, 38.60), (-123.74, 38.95), (-123.82, 39.40),
    (-123.85, 39.83), (-124.11, 40.10), (-124.41, 40.44), (-124.17, 40.80),
    (-124.15, 41.06), (-124.07, 41.46), (-124.20, 41.75), (-124.21, 42.00),
)  # fmt: skip
# (west, east, south, north): the border is drawn when every point lies inside.
_CALIFORNIA_BOX = (-124.5, -114.1, 32.5, 42.05)

# Why a fit stopped early (stop_reason_), as plot_convergence labels the step it marks; a
# fit that ran all its steps (stop_reason_ "max_steps" or None) is not marked.
_EARLY_STOPS = {
    "center_shift": "the centers settled (tol)",
    "no_improvement": "no improvement (max_no_improvement)",
    "callback": "a callback",
}


def _matplotlib():
    """The matplotlib pieces the plots use, or the ImportError that says how to install it."""
    try:
        import matplotlib  # first: a submodule imported earlier must not hide a missing package
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import BoundaryNorm, ListedColormap
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
    except ImportError as error:
        raise ImportError(_INSTALL_HINT) from error
    return SimpleNamespace(
        colormaps=matplotlib.colormaps,
        ScalarMappable=ScalarMappable,
        BoundaryNorm=BoundaryNorm,
        ListedColormap=ListedColormap,
        Figure=Figure,
        Line2D=Line2D,
    )


def _new_axes(mpl, ax, figsize):
    if ax is not None:
        return ax
    return mpl.Figure(figsize=figsize, layout="constrained").add_subplot()


class _Columns:
    """X read a column at a time: only the columns a plot draws are converted, so a
    DataFrame may hold text columns elsewhere and a large X is never copied whole."""

    def __init__(self, X, feature_names):
        if is_sparse(X):
            self._kind, self._X = "sparse", X
            self.names = None
        elif hasattr(X, "columns") and hasattr(X, "iloc"):  # a pandas DataFrame
            self._kind, self._X = "frame", X
            self.names = [str(name) for name in X.columns]
        else:
            X = np.asarray(X)
            self._kind, self._X = "array", X
            self.names = None
        if len(self._X.shape) != 2:
            raise ValueError(
                f"X must be 2-D, of shape (n_samples, n_features); got shape {self._X.shape}."
            )
        self.n_samples, self.n_features = (int(size) for size in self._X.shape)
        if self.n_samples == 0 or self.n_features == 0:
            raise ValueError(f"X is empty (shape {self._X.shape}): there is nothing to plot.")
        if feature_names is not None:
            names = [str(name) for name in feature_names]
            if len(names) != self.n_features:
                raise ValueError(
                    f"feature_names has {len(names)} names; X has {self.n_features} columns."
                )
            self.names = names

    def index(self, key, which):
        """The position of column ``key`` (an index or a name) given as argument ``which``."""
        last = self.n_features - 1
        if isinstance(key, (bool, np.bool_)):
            raise TypeError(f"{which}={key!r}: select a column by index (int) or name (str).")
        if isinstance(key, numbers.Integral):
            if not 0 <= key <= last:
                raise ValueError(
                    f"{which}={key} is out of range: X has {self.n_features} columns "
                    f"(indices 0 to {last})."
                )
            return int(key)
        if isinstance(key, str):
            if self.names is None:
                raise ValueError(
                    f"{which}={key!r} names a column, but X has no column names: select "
                    f"columns by index (0 to {last}) or pass feature_names=[...]."
                )
            if key not in self.names:
                shown = ", ".join(repr(name) for name in self.names[:20])
                more = f", ... ({self.n_features} in all)" if self.n_features > 20 else ""
                raise ValueError(f"X has no column {key!r}; its columns are {shown}{more}.")
            return self.names.index(key)
        raise TypeError(
            f"{which} must be a column index (int) or name (str), not {type(key).__name__}."
        )

    def name(self, index):
        return self.names[index] if self.names is not None else f"column {index}"

    def values(self, index):
        """Column ``index`` as a 1-D numeric array (a view where X is an array)."""
        if self._kind == "frame":
            column = self._X.iloc[:, index]
            dtype = column.dtype
        else:
            dtype = self._X.dtype
        if getattr(dtype, "kind", "O") not in "biuf":
            raise TypeError(
                f"Column {self.name(index)!r} is not numeric (dtype {dtype}): choose numeric "
                "columns to plot."
            )
        if self._kind == "frame":
            return column.to_numpy(dtype=np.float64, na_value=np.nan)
        if self._kind == "sparse":
            return np.asarray(self._X[:, [index]].toarray()).ravel()
        return self._X[:, index]


def _check_labels(labels, n_samples, n_clusters):
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != n_samples:
        raise ValueError(
            f"labels must have one entry per row of X ({n_samples}); got shape {labels.shape}."
        )
    if labels.dtype.kind not in "iu":
        raise TypeError(f"labels must be integer cluster numbers, not dtype {labels.dtype}.")
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= n_clusters:
        raise ValueError(
            f"labels must be cluster numbers 0 to {n_clusters - 1} (one per center); they "
            f"range from {low} to {high}."
        )
    return labels


def _not_fitted(model, what):
    return NotFittedError(
        f"This {type(model).__name__} instance is not fitted yet: fit it before plotting {what}."
    )


def _centers_and_names(centers):
    """The centers' array, and the column names of the model they came from (or None)."""
    if not (hasattr(centers, "fit") and hasattr(centers, "predict")):
        return centers, None
    is_fitted = getattr(centers, "__sklearn_is_fitted__", None)
    if is_fitted is not None and not is_fitted():
        raise _not_fitted(centers, "its clusters")
    names = getattr(centers, "feature_names_in_", None)
    return centers.cluster_centers_, None if names is None else [str(name) for name in names]


def _check_centers(centers, n_features):
    centers = np.asarray(centers)
    if centers.dtype.kind not in "biuf":
        raise TypeError(f"centers must be numeric, not dtype {centers.dtype}.")
    if centers.ndim != 2 or centers.shape[0] == 0:
        raise ValueError(
            f"centers must be 2-D, of shape (n_clusters, n_features); got shape {centers.shape}."
        )
    if centers.shape[1] != n_features:
        raise ValueError(
            f"centers have {centers.shape[1]} columns; X has {n_features}: the centers must "
            "be in X's columns."
        )
    return centers


def _cluster_colors(mpl, n_clusters):
    """One RGBA colour per cluster: a qualitative colormap's (tab10, tab20) up to 20
    clusters, beyond that turbo's at evenly spaced points (told apart by a colorbar)."""
    if n_clusters <= 20:
        palette = mpl.colormaps["tab10" if n_clusters <= 10 else "tab20"]
        return [palette(j) for j in range(n_clusters)]
    return [tuple(rgba) for rgba in mpl.colormaps["turbo"](np.linspace(0, 1, n_clusters))]


def _marker_size(n_samples):
    """Scatter marker area in points^2: smaller the more rows, down to about a pixel."""
    return float(np.clip(30_000 / n_samples, 0.4, 30.0))


def _map_axes(columns, x, y, xs, ys):
    """(x, y, xs, ys, is_map): longitude on x and latitude on y when the two columns are
    named so (in either order) and the latitudes are degrees."""
    roles = []
    for index in (x, y):
        name = columns.name(index).strip().lower()
        roles.append(
            "lon" if name in _LONGITUDE_NAMES else "lat" if name in _LATITUDE_NAMES else None
        )
    if set(roles) != {"lat", "lon"}:
        return x, y, xs, ys, False
    latitudes = xs if roles[0] == "lat" else ys
    latitudes = latitudes[np.isfinite(latitudes)]
    if latitudes.size == 0 or not np.all(np.abs(latitudes) <= 90):
        return x, y, xs, ys, False  # named so, but not in degrees: the columns as asked
    if roles[0] == "lat":
        x, y, xs, ys = y, x, ys, xs
    return x, y, xs, ys, True


def _inside_california(xs, ys):
    west, east, south, north = _CALIFORNIA_BOX
    finite = np.isfinite(xs) & np.isfinite(ys)
    xs, ys = xs[finite], ys[finite]
    return bool(
        xs.size
        and xs.min() >= west
        and xs.max() <= east
        and ys.min() >= south
        and ys.max() <= north
    )


def plot_clusters(X, labels, centers, x=0, y=1, ax=None, *, feature_names=None, border=True):
    """Draw two columns of X as a scatter coloured by cluster, with the centers marked.

    When the two columns are named longitude and latitude (``"longitude"``/``"lon"``/
    ``"lng"`` and ``"latitude"``/``"lat"``, any case, in either order) the plot is a map:
    longitude on x, latitude on y, in true proportions at the points' mean latitude (aspect
    1 / cos(mean latitude)), and, when every point lies inside California's bounding box
    and ``border`` is true, California's border as a thin line (an approximate outline
    shipped with mbk: no download).

    Parameters
    ----------
    X : ndarray, DataFrame or array-like of shape (n_samples, n_features)
        The data. Anything with ``__array__`` works, and scipy sparse matrices; only the two
        plotted columns are read (as float where X is a DataFrame), so a DataFrame may hold
        text columns elsewhere.
    labels : array-like of int, shape (n_samples,)
        The cluster of each row, 0 to n_clusters - 1 (``model.labels_``, ``model.predict(X)``).
    centers : array-like of shape (n_clusters, n_features) or fitted estimator
        The cluster centers in X's columns, or a fitted model (mbk's or scikit-learn's
        k-means), whose ``cluster_centers_`` are used and whose ``feature_names_in_`` name
        X's columns when X has no names of its own.
    x, y : int or str, default=0, 1
        The columns on the horizontal and vertical axes: a position (an int, always a
        position, 0 to n_features - 1) or a name. Names come from ``feature_names``, else a
        DataFrame's columns, else the model's ``feature_names_in_``.
    ax : matplotlib.axes.Axes, default=None
        The Axes to draw on; None draws on a new Figure (``ax.figure``), which is not shown.
    feature_names : sequence of str, default=None
        Names of X's columns (n_features of them), for an array without names of its own.
    border : bool, default=True
        Draw California's border on a map of points inside California's bounding box.

    Returns
    -------
    ax : matplotlib.axes.Axes
        The Axes drawn on. Its collections: one per cluster, labelled ``"cluster j"``
        (drawn largest first, so that a small cluster stays visible; rasterized, so a saved
        PDF or SVG stays small whatever n_samples), then ``"centers"`` (n_clusters points,
        an ``X`` in each cluster's colour with a black edge). A legend names the clusters
        up to 20 of them, a colorbar beyond.

    Raises
    ------
    ImportError
        matplotlib is not installed.
    ValueError
        X is empty or not 2-D; a column name or index that X does not have; labels of
        another length than X or outside 0 to n_clusters - 1; centers of another width.
    TypeError
        A plotted column, the labels or the centers are not numeric.
    """
    mpl = _matplotlib()
    centers, model_names = _centers_and_names(centers)
    columns = _Columns(X, feature_names)
    if columns.names is None and model_names is not None:
        columns.names = model_names if len(model_names) == columns.n_features else None
    x = columns.index(x, "x")
    y = columns.index(y, "y")
    centers = _check_centers(centers, columns.n_features)
    n_clusters = centers.shape[0]
    labels = _check_labels(labels, columns.n_samples, n_clusters)
    xs, ys = columns.values(x), columns.values(y)
    x, y, xs, ys, is_map = _map_axes(columns, x, y, xs, ys)

    ax = _new_axes(mpl, ax, (6.0, 6.4) if is_map else (6.4, 4.8))
    palette = _cluster_colors(mpl, n_clusters)
    # One single-coloured collection per cluster: matplotlib draws those as stamped markers,
    # ten to twenty times faster than one collection with a colour per point (a million rows
    # in a fraction of a second). Rows grouped by cluster with one stable sort, not a mask
    # per cluster (n_samples * n_clusters).
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(n_clusters + 1))
    sizes = np.diff(bounds)
    size = _marker_size(columns.n_samples)
    for cluster in np.argsort(-sizes, kind="stable"):
        rows = order[bounds[cluster] : bounds[cluster + 1]]
        ax.scatter(
            xs[rows], ys[rows], s=size, color=palette[cluster], marker="o", linewidths=0,
            rasterized=True, label=f"cluster {cluster}",
        )  # fmt: skip
    ax.scatter(
        centers[:, x], centers[:, y], s=110, c=palette, marker="X", edgecolors="black",
        linewidths=1.2, zorder=3, label="centers",
    )  # fmt: skip

    if is_map:
        mean_latitude = float(np.mean(ys[np.isfinite(ys)], dtype=np.float64))
        ax.set_aspect(1.0 / math.cos(math.radians(min(abs(mean_latitude), 89.0))))
        if border and _inside_california(xs, ys):
            outline = np.array(_CALIFORNIA_BORDER)
            # add_artist, not plot: the border does not widen the view beyond the points.
            ax.add_artist(
                mpl.Line2D(outline[:, 0], outline[:, 1], color="0.35", linewidth=0.8, zorder=1.5)
            )
    ax.set_xlabel(columns.name(x))
    ax.set_ylabel(columns.name(y))

    if n_clusters <= 20:
        handles = [
            mpl.Line2D([], [], linestyle="", marker="o", markersize=6, color=color, label=str(j))
            for j, color in enumerate(palette)
        ]
        handles.append(
            mpl.Line2D(
                [], [], linestyle="", marker="X", markersize=9, markerfacecolor="white",
                markeredgecolor="black", label="center",
            )
        )  # fmt: skip
        # A fixed corner (the one a map of California leaves empty): "best" would test every
        # point against each candidate place, as costly as drawing them.
        ax.legend(
            handles=handles, title="cluster", loc="upper right", fontsize="small",
            ncol=2 if n_clusters > 10 else 1, framealpha=0.85,
        )  # fmt: skip
    else:
        mappable = mpl.ScalarMappable(
            norm=mpl.BoundaryNorm(np.arange(n_clusters + 1) - 0.5, n_clusters),
            cmap=mpl.ListedColormap(palette),
        )
        ax.figure.colorbar(mappable, ax=ax, label="cluster")
    return ax


def _history_of(model):
    """The fitted model's history_ checked: (its arrays, the number of steps)."""
    is_fitted = getattr(model, "__sklearn_is_fitted__", None)
    history = getattr(model, "history_", None)  # (a NotFittedError is an AttributeError)
    if (is_fitted is not None and not is_fitted()) or (is_fitted is None and history is None):
        raise _not_fitted(model, "its convergence")
    if history is None:
        raise TypeError(
            f"{type(model).__name__} has no history_: plot_convergence plots the per-step "
            "record of a fitted mbk.MiniBatchKMeans."
        )
    needed = ("batch_inertia", "ewa_inertia", "n_reassigned")
    missing = [key for key in needed if key not in history]
    if missing:
        raise ValueError(f"history_ has no {', '.join(missing)}: it has {sorted(history)}.")
    arrays = {key: np.asarray(value) for key, value in history.items()}
    lengths = {key: value.shape for key, value in arrays.items()}
    n_steps = arrays["batch_inertia"].shape[0] if arrays["batch_inertia"].ndim == 1 else -1
    if any(shape != (n_steps,) for shape in lengths.values()):
        raise ValueError(f"history_ must hold 1-D arrays of one length; their shapes: {lengths}.")
    if n_steps == 0:
        raise ValueError(
            "The model's history_ is empty: no mini-batch step was recorded, so there is no "
            "convergence to plot."
        )
    return arrays, n_steps


def plot_convergence(model, ax=None):
    """Plot a fit's inertia step by step, with its reassignments and early stop marked.

    Draws the mean inertia of each mini-batch (its inertia against the centers before the
    step, divided by the batch size: thin, light) and the smoothed mean that early stopping
    watches (EWA inertia: bold; none on fit's first step and in partial_fit), on a log scale
    when they span two decades or more. The steps after which centers were reassigned are
    ticks along the bottom; an early stop (``stop_reason_`` "center_shift",
    "no_improvement" or "callback") is a dashed vertical line at the last step, labelled
    with the reason in the legend.

    Parameters
    ----------
    model : fitted MiniBatchKMeans
        A model with ``history_`` (a dict of equal-length arrays, one entry per step:
        ``batch_inertia``, ``ewa_inertia``, ``n_reassigned``, and ``elapsed`` seconds, used
        when present), ``stop_reason_`` and ``_batch_size``.
    ax : matplotlib.axes.Axes, default=None
        The Axes to draw on; None draws on a new Figure (``ax.figure``), which is not shown.

    Returns
    -------
    ax : matplotlib.axes.Axes

    Raises
    ------
    ImportError
        matplotlib is not installed.
    NotFittedError
        The model is not fitted.
    ValueError
        The history is empty, or its arrays are missing or of different lengths.
    """
    mpl = _matplotlib()
    history, n_steps = _history_of(model)
    steps = np.arange(1, n_steps + 1)
    mean_inertia = history["batch_inertia"].astype(np.float64) / model._batch_size
    ewa = history["ewa_inertia"].astype(np.float64)
    reassigned = np.flatnonzero(history["n_reassigned"] > 0)

    ax = _new_axes(mpl, ax, (6.4, 4.0))
    ax.plot(steps, mean_inertia, color="C0", linewidth=0.7, alpha=0.5,
            label="batch inertia / batch size")  # fmt: skip
    if np.isfinite(ewa).any():
        ax.plot(steps, ewa, color="C1", linewidth=2.0, label="EWA inertia (smoothed)")
    shown = np.concatenate([mean_inertia, ewa])
    shown = shown[np.isfinite(shown)]
    if shown.size and shown.min() > 0 and shown.max() >= 100 * shown.min():
        ax.set_yscale("log")
    if reassigned.size:
        # A rug at the bottom: x in steps, y in axes fractions, whatever the y scale.
        ax.plot(steps[reassigned], np.full(reassigned.size, 0.02), linestyle="",
                marker="|", markersize=9, color="C2", transform=ax.get_xaxis_transform(),
                label=f"centers reassigned ({reassigned.size} steps)")  # fmt: skip
    reason = getattr(model, "stop_reason_", None)
    if reason in _EARLY_STOPS:
        ax.axvline(n_steps, color="0.25", linestyle="--", linewidth=1.0,
                   label=f"early stop: {_EARLY_STOPS[reason]}")  # fmt: skip
    ax.set_xlabel("mini-batch step")
    ax.set_ylabel("batch inertia / batch size")
    elapsed = history.get("elapsed")
    title = f"{n_steps} steps"
    if elapsed is not None and np.isfinite(elapsed[-1]):
        seconds = float(elapsed[-1])
        title += f" in {seconds:.3g} s" if seconds >= 1 else f" in {seconds * 1e3:.3g} ms"
    # "best" is cheap here: a few lines, one vertex per step.
    ax.legend(title=title, loc="best", fontsize="small", framealpha=0.85)
    return ax


def _write_clusters_png(path, X, labels, centers, feature_names, *, force, title=None):
    """The command line's plot of the clusters, written to path through a temporary file:
    longitude against latitude when both are among the columns (a map), else the first two
    columns. ImportError (naming the extra) without matplotlib."""
    from ._files import write_atomically

    lowered = [name.lower() for name in feature_names]
    longitude = next((j for j, name in enumerate(lowered) if name in _LONGITUDE_NAMES), None)
    latitude = next((j for j, name in enumerate(lowered) if name in _LATITUDE_NAMES), None)
    if longitude is not None and latitude is not None:
        x, y = longitude, latitude
    else:
        x, y = 0, min(1, len(feature_names) - 1)
    ax = plot_clusters(X, labels, centers, x=x, y=y, feature_names=list(feature_names))
    if title is not None:
        ax.set_title(title)
    write_atomically(path, lambda out: ax.figure.savefig(out, format="png", dpi=100), force)

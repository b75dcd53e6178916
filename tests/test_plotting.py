"""mbk.plot_clusters and mbk.plot_convergence: what they draw, the PNGs they save, every
error they raise (issue 16, part 4). Files go to tmp_path only."""

import math
import struct
import subprocess
import sys

import numpy as np
import pytest

import mbk
from conftest import make_blobs
from mbk import plotting

matplotlib = pytest.importorskip("matplotlib")
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

N_CLUSTERS = 4


def png_size(path):
    """(width, height) from a PNG's IHDR chunk, which the format puts first."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    return struct.unpack(">II", data[16:24])


def saved_png(ax, path, dpi=50):
    """Save ax's figure; check the file is a PNG of the figure's size at dpi, and that
    matplotlib reads it back at that size."""
    ax.figure.savefig(path, dpi=dpi)
    width, height = (round(inches * dpi) for inches in ax.figure.get_size_inches())
    assert png_size(path) == (width, height)
    assert matplotlib.image.imread(path).shape[:2] == (height, width)


def cluster_collections(ax):
    return {c.get_label(): c for c in ax.collections if c.get_label().startswith("cluster ")}


def centers_collection(ax):
    (centers,) = [c for c in ax.collections if c.get_label() == "centers"]
    return centers


@pytest.fixture(scope="module")
def fitted():
    X, _ = make_blobs(600, 3, N_CLUSTERS, seed=1)
    model = mbk.MiniBatchKMeans(n_clusters=N_CLUSTERS, random_state=0, n_init=1).fit(X)
    return X, model.labels_, model.cluster_centers_


# -- plot_clusters -----------------------------------------------------------------------------


def test_plot_clusters_returns_axes_and_saves_a_png_of_the_figure_size(fitted, tmp_path):
    X, labels, centers = fitted
    ax = mbk.plot_clusters(X, labels, centers)
    assert isinstance(ax, Axes) and isinstance(ax.figure, Figure)
    assert ax.get_xlabel() == "column 0" and ax.get_ylabel() == "column 1"
    saved_png(ax, tmp_path / "clusters.png")


def test_one_point_per_row_in_its_cluster_and_one_marker_per_center(fitted):
    X, labels, centers = fitted
    ax = mbk.plot_clusters(X, labels, centers, x=2, y=0)
    drawn = cluster_collections(ax)
    assert sorted(drawn) == [f"cluster {j}" for j in range(N_CLUSTERS)]
    assert sum(len(c.get_offsets()) for c in drawn.values()) == len(X)
    for j in range(N_CLUSTERS):
        # (in row order: the rows are grouped by a stable sort)
        np.testing.assert_array_equal(
            drawn[f"cluster {j}"].get_offsets(), X[labels == j][:, [2, 0]]
        )
    np.testing.assert_array_equal(centers_collection(ax).get_offsets(), centers[:, [2, 0]])
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["0", "1", "2", "3", "center"]


def test_names_and_indices_select_the_same_columns(fitted):
    pd = pytest.importorskip("pandas")
    X, labels, centers = fitted
    frame = pd.DataFrame(X, columns=["alpha", "beta", "gamma"])

    def drawn(ax):
        return {k: np.asarray(c.get_offsets()) for k, c in cluster_collections(ax).items()}

    by_index = drawn(mbk.plot_clusters(X, labels, centers, x=2, y=1))
    for ax in (
        mbk.plot_clusters(frame, labels, centers, x="gamma", y="beta"),
        mbk.plot_clusters(frame, labels, centers, x=2, y="beta"),
        mbk.plot_clusters(X, labels, centers, x="gamma", y="beta", feature_names=frame.columns),
    ):
        assert ax.get_xlabel() == "gamma" and ax.get_ylabel() == "beta"
        got = drawn(ax)
        assert got.keys() == by_index.keys()
        for key, points in by_index.items():
            np.testing.assert_array_equal(got[key], points)


def test_a_fitted_model_gives_the_centers_and_its_column_names():
    pd = pytest.importorskip("pandas")
    X, _ = make_blobs(300, 3, 3, seed=2)
    frame = pd.DataFrame(X, columns=["alpha", "beta", "gamma"])
    model = mbk.MiniBatchKMeans(n_clusters=3, random_state=0, n_init=1).fit(frame)
    ax = mbk.plot_clusters(X, model.labels_, model, x="gamma", y="alpha")
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("gamma", "alpha")
    np.testing.assert_array_equal(
        centers_collection(ax).get_offsets(), model.cluster_centers_[:, [2, 0]]
    )
    with pytest.raises(mbk.NotFittedError, match="before plotting its clusters"):
        mbk.plot_clusters(X, model.labels_, mbk.MiniBatchKMeans(n_clusters=3))


def test_a_dataframe_with_text_columns_elsewhere_and_nullable_numbers():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(
        {
            "name": ["a", "b", "c", "d"],
            "size": pd.array([1, 2, None, 4], dtype="Int64"),
            "price": [1.0, 2.0, 3.0, 4.0],
        }
    )
    centers = np.zeros((2, 3))
    ax = mbk.plot_clusters(frame, [0, 1, 0, 1], centers, x="size", y="price")
    points = np.concatenate([c.get_offsets() for c in cluster_collections(ax).values()])
    assert np.isnan(points[:, 0]).sum() == 1  # pandas' missing value drawn as NaN (not at all)
    with pytest.raises(TypeError, match=r"Column 'name' is not numeric \(dtype (object|str)\)"):
        mbk.plot_clusters(frame, [0, 1, 0, 1], centers, x="name", y="price")


def test_sparse_x_draws_its_two_columns(fitted):
    sp = pytest.importorskip("scipy.sparse")
    X, labels, centers = fitted
    dense = cluster_collections(mbk.plot_clusters(X, labels, centers, x=1, y=2))
    sparse = cluster_collections(mbk.plot_clusters(sp.csr_matrix(X), labels, centers, x=1, y=2))
    for key, collection in dense.items():
        np.testing.assert_array_equal(sparse[key].get_offsets(), collection.get_offsets())


def test_draws_on_the_axes_it_is_given(fitted):
    X, labels, centers = fitted
    figure = Figure()
    left, right = figure.subplots(1, 2)
    assert mbk.plot_clusters(X, labels, centers, ax=right) is right
    assert not left.collections and len(right.collections) == N_CLUSTERS + 1


def test_more_than_twenty_clusters_get_a_colorbar_not_a_legend():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 2))
    labels = np.arange(500) % 25
    centers = np.array([X[labels == j].mean(axis=0) for j in range(25)])
    ax = mbk.plot_clusters(X, labels, centers)
    assert ax.get_legend() is None
    assert len(ax.figure.axes) == 2  # the colorbar's
    assert len(cluster_collections(ax)) == 25 and len(centers_collection(ax).get_offsets()) == 25


def test_a_million_rows_are_rasterized_small_markers(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1_000_000, 2)).astype(np.float32)
    labels = (X[:, 0] > 0).astype(np.int64) + 2 * (X[:, 1] > 0)
    centers = np.array([X[labels == j].mean(axis=0) for j in range(4)])
    ax = mbk.plot_clusters(X, labels, centers)
    for collection in cluster_collections(ax).values():
        assert collection.get_rasterized()
        assert collection.get_sizes()[0] < 1  # points^2: about a pixel at 100 dpi
    saved_png(ax, tmp_path / "million.png", dpi=40)


# -- the map ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def housing():
    from mbk.datasets import load_housing

    names = ["median_income", "latitude", "longitude"]
    X, _ = load_housing(names)
    model = mbk.MiniBatchKMeans(n_clusters=6, random_state=0).fit(X)
    return X, model.labels_, model.cluster_centers_, names


@pytest.mark.parametrize(
    "x, y", [("longitude", "latitude"), ("latitude", "longitude"), (2, 1)], ids=str
)
def test_longitude_and_latitude_make_a_map_of_california(housing, x, y, tmp_path):
    X, labels, centers, names = housing
    ax = mbk.plot_clusters(X, labels, centers, x=x, y=y, feature_names=names)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("longitude", "latitude")  # either order
    assert ax.get_aspect() == pytest.approx(1 / math.cos(math.radians(X[:, 1].mean())))
    (border,) = ax.lines
    assert len(border.get_xdata()) == len(plotting._CALIFORNIA_BORDER)
    points = np.concatenate([c.get_offsets() for c in cluster_collections(ax).values()])
    assert points[:, 0].min() == X[:, 2].min() and points[:, 1].max() == X[:, 1].max()
    saved_png(ax, tmp_path / "map.png")


def test_the_border_is_optional_and_only_around_california(housing):
    X, labels, centers, _ = housing
    names = ["income", "LAT", "Lon"]  # any case, the short names too
    ax = mbk.plot_clusters(X, labels, centers, x="Lon", y="LAT", feature_names=names)
    assert len(ax.lines) == 1 and ax.get_aspect() != "auto"
    ax = mbk.plot_clusters(X, labels, centers, x="Lon", y="LAT", feature_names=names, border=False)
    assert not ax.lines and ax.get_aspect() != "auto"
    paris = X + [0, 48.86 - 36, 2.35 + 120]  # the same districts around Paris
    ax = mbk.plot_clusters(paris, labels, centers + [0, 12.86, 122.35], x=2, y=1,
                           feature_names=names)  # fmt: skip
    assert not ax.lines
    assert ax.get_aspect() == pytest.approx(1 / math.cos(math.radians(paris[:, 1].mean())))


def test_the_border_does_not_widen_the_view(housing):
    X, labels, centers, names = housing
    south = X[:, 1] < 34.5  # southern California, and the centers up to 38.6 degrees north
    ax = mbk.plot_clusters(X[south], labels[south], centers, x=2, y=1, feature_names=names)
    top = max(X[south, 1].max(), centers[:, 1].max())
    assert len(ax.lines) == 1 and top < ax.get_ylim()[1] < top + 1 < 42


def test_not_a_map_without_degrees_or_without_the_names(housing):
    X, labels, centers, _ = housing
    ax = mbk.plot_clusters(X, labels, centers, x=2, y=1)  # no names: not known to be a map
    assert ax.get_aspect() == "auto" and not ax.lines
    scaled = X * [1, 10, 10]  # "latitude" beyond 90: not degrees
    ax = mbk.plot_clusters(scaled, labels, centers * [1, 10, 10], x=1, y=2,
                           feature_names=["m", "latitude", "longitude"])  # fmt: skip
    assert ax.get_aspect() == "auto" and not ax.lines
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("latitude", "longitude")  # as asked


# -- plot_clusters' errors -----------------------------------------------------------------


def _case(name, error, message, **changes):
    return pytest.param(changes, error, message, id=name)


@pytest.mark.parametrize(
    "changes, error, message",
    [
        _case("unknown name", ValueError,
              "X has no column 'nope'; its columns are 'a', 'b', 'c'.",
              x="nope", feature_names=["a", "b", "c"]),
        _case("name without names", ValueError,
              "y='b' names a column, but X has no column names", y="b"),
        _case("index too large", ValueError,
              r"x=3 is out of range: X has 3 columns \(indices 0 to 2\)", x=3),
        _case("negative index", ValueError, "y=-1 is out of range", y=-1),
        _case("bool index", TypeError, "x=True: select a column by index", x=True),
        _case("float index", TypeError,
              r"x must be a column index \(int\) or name \(str\), not float", x=1.0),
        _case("labels too short", ValueError,
              r"labels must have one entry per row of X \(600\); got shape \(599,\)",
              labels=np.zeros(599, np.int64)),
        _case("labels 2-D", ValueError, "one entry per row", labels=np.zeros((600, 1), np.int64)),
        _case("float labels", TypeError, "labels must be integer cluster numbers",
              labels=np.zeros(600)),
        _case("label without a center", ValueError,
              r"labels must be cluster numbers 0 to 3 \(one per center\); they range from 4 to 4",
              labels=np.full(600, 4)),
        _case("negative label", ValueError, "range from -1 to -1", labels=np.full(600, -1)),
        _case("centers too narrow", ValueError, "centers have 2 columns; X has 3",
              centers=np.zeros((4, 2))),
        _case("centers 1-D", ValueError, "centers must be 2-D", centers=np.zeros(3)),
        _case("no centers", ValueError, "centers must be 2-D", centers=np.zeros((0, 3))),
        _case("text centers", TypeError, "centers must be numeric", centers=np.full((4, 3), "a")),
        _case("empty X", ValueError, r"X is empty \(shape \(0, 3\)\)", X=np.zeros((0, 3))),
        _case("1-D X", ValueError, r"X must be 2-D.*got shape \(3,\)", X=np.zeros(3)),
        _case("text X", TypeError, "Column 'column 0' is not numeric",
              X=np.full((600, 3), "text")),
        _case("feature_names too short", ValueError, "feature_names has 2 names; X has 3",
              feature_names=["a", "b"]),
    ],
)  # fmt: skip
def test_plot_clusters_errors(fitted, changes, error, message):
    X, labels, centers = fitted
    arguments = {"X": X, "labels": labels, "centers": centers, **changes}
    with pytest.raises(error, match=message):
        mbk.plot_clusters(**arguments)


def test_many_column_names_are_shortened_in_the_message():
    names = [f"f{i}" for i in range(30)]
    with pytest.raises(ValueError, match=r"'f19', \.\.\. \(30 in all\)\.$"):
        mbk.plot_clusters(np.zeros((2, 30)), [0, 0], np.zeros((1, 30)), x="g",
                          feature_names=names)  # fmt: skip


# -- plot_convergence --------------------------------------------------------------------------


class FittedStandIn:
    """What plot_convergence reads from a fitted model (the history_ contract of issue 16)."""

    def __init__(self, n_steps=60, stop_reason="no_improvement", batch_size=256, fitted=True,
                 **history):  # fmt: skip
        rng = np.random.default_rng(0)
        steps = np.arange(n_steps)
        mean = 5.0 + 40.0 * np.exp(-steps / 5.0) + rng.random(n_steps)
        ewa = np.full(n_steps, np.nan)
        for i in range(1, n_steps):
            ewa[i] = mean[i] if i == 1 else 0.9 * ewa[i - 1] + 0.1 * mean[i]
        reassigned = np.zeros(n_steps, np.int64)
        if n_steps > 15:
            reassigned[[0, 7, 15]] = [4, 1, 2]
        self.history_ = {
            "batch_inertia": mean * batch_size,
            "ewa_inertia": ewa,
            "n_reassigned": reassigned,
            "elapsed": np.linspace(0.001, 0.2, n_steps),
            "center_shift": np.full(n_steps, np.nan),
            **history,
        }
        self.stop_reason_ = stop_reason
        self._batch_size = batch_size
        self._fitted = fitted

    def __sklearn_is_fitted__(self):
        return self._fitted


def line(ax, label):
    (found,) = [artist for artist in ax.lines if artist.get_label() == label]
    return found


def test_plot_convergence_returns_axes_and_saves_a_png_of_the_figure_size(tmp_path):
    ax = mbk.plot_convergence(FittedStandIn())
    assert isinstance(ax, Axes) and isinstance(ax.figure, Figure)
    saved_png(ax, tmp_path / "convergence.png", dpi=60)
    figure = Figure(figsize=(3, 2))
    given = figure.add_subplot()
    assert mbk.plot_convergence(FittedStandIn(), ax=given) is given
    saved_png(given, tmp_path / "given.png", dpi=80)
    assert png_size(tmp_path / "given.png") == (240, 160)


def test_plot_convergence_draws_the_mean_and_smoothed_inertia_per_step():
    model = FittedStandIn()
    ax = mbk.plot_convergence(model)
    batch = line(ax, "batch inertia / batch size")
    np.testing.assert_array_equal(batch.get_xdata(), np.arange(1, 61))
    np.testing.assert_allclose(batch.get_ydata(), model.history_["batch_inertia"] / 256)
    ewa = line(ax, "EWA inertia (smoothed)")
    np.testing.assert_array_equal(ewa.get_ydata(), model.history_["ewa_inertia"])
    assert ewa.get_linewidth() > batch.get_linewidth()
    assert ax.get_yscale() == "linear"  # 5 to 46: not two decades
    assert ax.get_legend().get_title().get_text() == "60 steps in 200 ms"


def test_reassignments_are_ticks_at_their_steps():
    ax = mbk.plot_convergence(FittedStandIn())
    ticks = line(ax, "centers reassigned (3 steps)")
    np.testing.assert_array_equal(ticks.get_xdata(), [1, 8, 16])
    assert ticks.get_marker() == "|"
    none = FittedStandIn(n_reassigned=np.zeros(60, np.int64))
    assert not [a for a in mbk.plot_convergence(none).lines if "reassigned" in a.get_label()]


@pytest.mark.parametrize("reason", ["center_shift", "no_improvement", "callback"])
def test_an_early_stop_is_a_line_at_the_last_step_labelled_with_the_reason(reason):
    ax = mbk.plot_convergence(FittedStandIn(stop_reason=reason))
    (stop,) = [a for a in ax.lines if a.get_label().startswith("early stop")]
    assert list(stop.get_xdata()) == [60, 60]
    assert stop.get_label() == f"early stop: {plotting._EARLY_STOPS[reason]}"


@pytest.mark.parametrize("reason", ["max_steps", None])
def test_a_fit_that_ran_all_its_steps_is_not_marked(reason):
    ax = mbk.plot_convergence(FittedStandIn(stop_reason=reason))
    assert not [a for a in ax.lines if a.get_label().startswith("early stop")]


def test_log_scale_when_the_inertia_spans_decades():
    n_steps = 50
    mean = 1e4 * 0.8 ** np.arange(n_steps)
    model = FittedStandIn(n_steps=n_steps, batch_inertia=mean * 256,
                          ewa_inertia=np.full(n_steps, np.nan))  # fmt: skip
    ax = mbk.plot_convergence(model)
    assert ax.get_yscale() == "log"
    assert not [a for a in ax.lines if a.get_label().startswith("EWA")]  # all NaN: not drawn


def test_plot_convergence_refuses_an_unfitted_model():
    with pytest.raises(mbk.NotFittedError, match="MiniBatchKMeans instance is not fitted"):
        mbk.plot_convergence(mbk.MiniBatchKMeans())
    with pytest.raises(mbk.NotFittedError, match="FittedStandIn instance is not fitted"):
        mbk.plot_convergence(FittedStandIn(fitted=False))
    with pytest.raises(mbk.NotFittedError, match="object instance is not fitted"):
        mbk.plot_convergence(object())


@pytest.mark.parametrize(
    "history, message",
    [
        ({"batch_inertia": [], "ewa_inertia": [], "n_reassigned": []}, "history_ is empty"),
        ({"batch_inertia": [1.0], "ewa_inertia": [np.nan]}, "history_ has no n_reassigned"),
        ({"batch_inertia": [1.0, 2.0], "ewa_inertia": [np.nan], "n_reassigned": [0, 0]},
         "1-D arrays of one length"),
    ],
    ids=["empty", "a key missing", "unequal lengths"],
)  # fmt: skip
def test_plot_convergence_refuses_a_history_it_cannot_plot(history, message):
    model = FittedStandIn()
    model.history_ = history
    with pytest.raises(ValueError, match=message):
        mbk.plot_convergence(model)


def test_a_fitted_model_without_history_is_a_type_error():
    model = FittedStandIn()
    del model.history_
    with pytest.raises(TypeError, match="FittedStandIn has no history_"):
        mbk.plot_convergence(model)


def test_plot_convergence_of_a_real_fit_that_stops_early(tmp_path):
    X, _ = make_blobs(20_000, 4, 5, seed=3)
    model = mbk.MiniBatchKMeans(n_clusters=5, batch_size=256, max_no_improvement=3,
                                random_state=0).fit(X)  # fmt: skip
    assert model.stop_reason_ == "no_improvement"
    ax = mbk.plot_convergence(model)
    batch = line(ax, "batch inertia / batch size")
    assert len(batch.get_xdata()) == model.n_steps_
    assert line(ax, "early stop: no improvement (max_no_improvement)").get_xdata()[0] == (
        model.n_steps_
    )
    saved_png(ax, tmp_path / "real.png")


# -- matplotlib is optional ------------------------------------------------------------------


def test_without_matplotlib_the_plots_say_which_extra_to_install(fitted, monkeypatch):
    X, labels, centers = fitted
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r'pip install "mbk\[plot\]" \(or "mbk\[cli\]"\)'):
        mbk.plot_clusters(X, labels, centers)
    with pytest.raises(ImportError, match=r'pip install "mbk\[plot\]"'):
        mbk.plot_convergence(FittedStandIn())


def test_importing_mbk_imports_no_matplotlib_and_the_plots_no_pyplot():
    code = (
        "import sys, numpy as np, mbk\n"
        "assert 'matplotlib' not in sys.modules\n"
        "ax = mbk.plot_clusters(np.eye(3), [0, 1, 2], np.eye(3))\n"
        "ax.figure.savefig(sys.argv[1] if len(sys.argv) > 1 else __import__('io').BytesIO())\n"
        "assert 'matplotlib' in sys.modules and 'matplotlib.pyplot' not in sys.modules\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "ok"  # (after an editable install's rebuild lines)

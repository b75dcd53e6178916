"""``mbk fit``, ``mbk predict`` and ``mbk info`` (issue 16), run in process through
``_cli.main``: the Cluster column against the Python API, every format, the scaling kept in
the model file, the summary, the progress line, and each error path with its exit code."""

import csv
import gzip
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import mbk
from mbk import _cli
from mbk._progress import ProgressLine
from mbk._schedule import StepRecord
from mbk.datasets import housing_csv_bytes, load_housing

SHARED_TABLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "california_housing.csv"
FEATURES = ["median_income", "latitude", "longitude"]


def _read_csv(path):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", newline="") as table:
        rows = list(csv.reader(table))
    return rows[0], rows[1:]


def _labels(path):
    header, rows = _read_csv(path)
    assert header[-1] == "Cluster"
    return np.array([int(row[-1]) for row in rows])


def _run(argv, capsys):
    code = _cli.main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def housing_csv(tmp_path):
    """The housing table as a user has it: the shared CSV (or the one mbk ships)."""
    path = tmp_path / "housing.csv"
    path.write_bytes(SHARED_TABLE.read_bytes() if SHARED_TABLE.exists() else housing_csv_bytes())
    return path


def _blobs_csv(path, n_rows=2000, delimiter=",", seed=0):
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(c, 1.0, size=(n_rows // 4, 3)) for c in (-6, -2, 2, 6)])
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt", newline="") as out:
        writer = csv.writer(out, delimiter=delimiter)
        writer.writerow(["a", "b", "c", "name"])
        for i, row in enumerate(X):
            writer.writerow([*(repr(float(v)) for v in row), f"row {i}"])
    return X


# -- fit, predict, info -----------------------------------------------------------------------


def test_fit_writes_the_housing_rows_with_the_apis_clusters(housing_csv, tmp_path, capsys):
    out, model = tmp_path / "clusters.csv", tmp_path / "housing.mbk"
    code, printed, _ = _run(["fit", housing_csv, "--clusters", 6, "--columns", ",".join(FEATURES),
                             "--out", out, "--model", model], capsys)  # fmt: skip
    assert code == _cli.EXIT_OK
    X, _ = load_housing(FEATURES)
    expected = mbk.MiniBatchKMeans(n_clusters=6, random_state=0).fit(X)
    assert_array_equal(_labels(out), expected.labels_)
    header, rows = _read_csv(out)
    _, original = _read_csv(housing_csv)
    assert header[:-1] == _read_csv(housing_csv)[0]
    assert [row[:-1] for row in rows] == original  # the input rows as they were
    assert "20,640 rows" in printed and "share" in printed and f"wrote {out}" in printed
    # The model file predicts the same clusters.
    again = tmp_path / "again.csv"
    assert _run(["predict", model, housing_csv, "--out", again], capsys)[0] == _cli.EXIT_OK
    assert_array_equal(_labels(again), expected.labels_)
    code, printed, _ = _run(["info", model], capsys)
    assert code == _cli.EXIT_OK
    assert "6 clusters x 3 features (float64)" in printed and "median_income" in printed
    assert f"mbk {mbk.__version__}" in printed


def test_fit_without_columns_takes_the_numeric_ones_and_drops_missing_rows_on_request(
    housing_csv, tmp_path, capsys
):
    out = tmp_path / "all.csv"
    code, _, err = _run(["fit", housing_csv, "--clusters", 4, "--out", out], capsys)
    assert code == 8 and "207 rows have missing values" in err and "--dropna" in err
    assert not out.exists()
    code, printed, _ = _run(["fit", housing_csv, "--clusters", 4, "--out", out, "--dropna",
                             "--json"], capsys)  # fmt: skip
    assert code == _cli.EXIT_OK
    summary = json.loads(printed[printed.index("{") :])
    assert summary["skipped_columns"] == ["ocean_proximity"]
    assert len(summary["columns"]) == 9 and summary["dropped_rows"] == 207
    assert "dropped 207 rows" in printed
    assert summary["rows"] == 20640 - 207 == len(_labels(out))
    assert sum(c["rows"] for c in summary["clusters"]) == summary["rows"]


@pytest.mark.parametrize("name", ["blobs.csv.gz", "blobs.csv"])
def test_fit_reads_compressed_csv_with_any_delimiter(name, tmp_path, capsys):
    data = tmp_path / name
    X = _blobs_csv(data, delimiter=";")
    out = tmp_path / "out.csv.gz"
    code, printed, _ = _run(["fit", data, "--delimiter", ";", "--clusters", 4, "--out", out,
                             "--seed", 3, "--batch-size", 256], capsys)  # fmt: skip
    assert code == _cli.EXIT_OK and "skipped non-numeric columns: name" in printed
    expected = mbk.MiniBatchKMeans(4, random_state=3, batch_size=256).fit_predict(X)
    assert_array_equal(_labels(out), expected)
    assert _read_csv(out)[1][5][3] == "row 5"


def test_parquet_in_and_out(tmp_path, capsys):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rng = np.random.default_rng(1)
    X = rng.normal(size=(1500, 2)) + rng.integers(0, 3, (1500, 1)) * 5
    table = pa.table({"x": X[:, 0], "y": X[:, 1].astype(np.float32), "tag": ["t"] * 1500})
    data = tmp_path / "points.parquet"
    pq.write_table(table, data)
    out = tmp_path / "labelled.parquet"
    code, _, _ = _run(["fit", data, "--clusters", 3, "--out", out], capsys)
    assert code == _cli.EXIT_OK
    written = pq.read_table(out)
    assert written.column_names == ["x", "y", "tag", "Cluster"]
    expected = mbk.MiniBatchKMeans(3, random_state=0).fit_predict(
        np.column_stack([X[:, 0], X[:, 1].astype(np.float32).astype(np.float64)])
    )
    assert_array_equal(written.column("Cluster").to_numpy(), expected)
    # CSV in, Parquet out keeps every column.
    csv_data = tmp_path / "blobs.csv"
    _blobs_csv(csv_data)
    assert _run(["fit", csv_data, "--clusters", 2, "--out", out, "--force"], capsys)[0] == 0
    assert pq.read_table(out).column_names == ["a", "b", "c", "name", "Cluster"]


def test_npy_in_labels_out(tmp_path, capsys):
    X = np.random.default_rng(2).normal(size=(3000, 4))
    data, out = tmp_path / "X.npy", tmp_path / "labels.npy"
    np.save(data, X)
    code, _, _ = _run(["fit", data, "--clusters", 5, "--columns", "0,2", "--out", out], capsys)
    assert code == _cli.EXIT_OK
    assert_array_equal(
        np.load(out), mbk.MiniBatchKMeans(5, random_state=0).fit_predict(X[:, [0, 2]])
    )


def test_standard_scaling_is_kept_in_the_model_and_applied_by_predict(tmp_path, capsys):
    data = tmp_path / "blobs.csv"
    X = _blobs_csv(data)
    X[:, 1] *= 1000  # (what scaling is for: columns of different units)
    with open(data, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["a", "b", "c"])
        writer.writerows(X.tolist())
    out, model = tmp_path / "out.csv", tmp_path / "m.mbk"
    code, printed, _ = _run(["fit", data, "--clusters", 4, "--scale", "standard", "--out", out,
                             "--model", model, "--json"], capsys)  # fmt: skip
    assert code == _cli.EXIT_OK
    means, scales = X.mean(axis=0), X.std(axis=0)
    reference = mbk.MiniBatchKMeans(4, random_state=0).fit((X - means) / scales)
    assert_array_equal(_labels(out), reference.labels_)
    summary = json.loads(printed)
    centers = np.array([list(c["center"].values()) for c in summary["clusters"]])
    np.testing.assert_allclose(centers, reference.cluster_centers_ * scales + means, rtol=1e-12)
    assert summary["inertia"] == pytest.approx(
        ((X - centers[reference.labels_]) ** 2).sum(), rel=1e-9
    )
    _, preprocessing = mbk._model_file.read(model)
    assert preprocessing["scale"] == "standard"
    np.testing.assert_allclose(preprocessing["means"], means)
    again = tmp_path / "again.csv"
    assert _run(["predict", model, data, "--out", again], capsys)[0] == _cli.EXIT_OK
    assert_array_equal(_labels(again), reference.labels_)
    code, printed, _ = _run(["info", model, "--json"], capsys)
    assert json.loads(printed)["preprocessing"]["scale"] == "standard"


def test_weights_column(tmp_path, capsys):
    data = tmp_path / "w.csv"
    rng = np.random.default_rng(4)
    X, w = rng.normal(size=(1000, 2)), rng.uniform(0.5, 2, 1000)
    with open(data, "w", newline="") as out:
        csv.writer(out).writerows([["x", "y", "w"], *np.column_stack([X, w]).tolist()])
    out = tmp_path / "out.npy"
    code, printed, _ = _run(["fit", data, "--clusters", 3, "--weights", "w", "--out", out,
                             "--json"], capsys)  # fmt: skip
    assert code == _cli.EXIT_OK and json.loads(printed)["columns"] == ["x", "y"]
    expected = mbk.MiniBatchKMeans(3, random_state=0).fit_predict(X, sample_weight=w)
    assert_array_equal(np.load(out), expected)


# -- errors -------------------------------------------------------------------------------------


def _write(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("make", "argv", "code", "message"),
    [
        (None, ["fit", "{tmp}/missing.csv"], 4, "no such file"),
        (
            lambda tmp: _write(tmp / "x.xlsx", "a"),
            ["fit", "{tmp}/x.xlsx"],
            5,
            "unknown input format",
        ),
        (lambda tmp: _write(tmp / "x.csv", "a,b\n1,2\n3\n"), ["fit", "{tmp}/x.csv"], 5, "line 3"),
        (lambda tmp: _write(tmp / "x.csv", ""), ["fit", "{tmp}/x.csv"], 4, "empty"),
        (
            lambda tmp: _write(tmp / "x.csv.gz", "not gzip"),
            ["fit", "{tmp}/x.csv.gz"],
            4,
            "cannot be read",
        ),
        (
            lambda tmp: _write(tmp / "x.parquet", "not parquet"),
            ["fit", "{tmp}/x.parquet"],
            5,
            "not a Parquet file",
        ),
        (
            lambda tmp: _write(tmp / "x.csv", "a,b\n1,2\n"),
            ["fit", "{tmp}/x.csv", "--columns", "a,z"],
            6,
            "no column 'z'; its columns are a, b",
        ),
        (
            lambda tmp: _write(tmp / "x.csv", "a,b\n1,x\n2,y\n"),
            ["fit", "{tmp}/x.csv", "--columns", "a,b"],
            7,
            "column 'b' is not numeric (it holds 'x')",
        ),
        (
            lambda tmp: _write(tmp / "x.csv", "a,b\nx,y\n"),
            ["fit", "{tmp}/x.csv"],
            7,
            "no numeric column",
        ),
        (
            lambda tmp: _write(tmp / "x.csv", "a,b\n1,2\n,3\n"),
            ["fit", "{tmp}/x.csv"],
            8,
            "1 rows have missing values",
        ),
        (
            lambda tmp: _write(tmp / "x.csv", "a\n1\n2\n3\n"),
            ["fit", "{tmp}/x.csv", "--clusters", 5],
            9,
            "3 rows for 5 clusters",
        ),
        (
            lambda tmp: _write(tmp / "m.mbk", "not a model"),
            ["info", "{tmp}/m.mbk"],
            10,
            "not a valid mbk model file",
        ),
        (
            lambda tmp: _write(tmp / "x.csv", "a\n1\n2\n3\n"),
            ["fit", "{tmp}/x.csv", "--clusters", 2, "--out", "{tmp}/x.csv"],
            3,
            "use --force",
        ),
    ],
    ids=[
        "missing-file",
        "unknown-format",
        "ragged-csv",
        "empty-csv",
        "bad-gzip",
        "bad-parquet",
        "missing-column",
        "non-numeric",
        "nothing-numeric",
        "missing-values",
        "too-few-rows",
        "bad-model",
        "output-exists",
    ],  # fmt: skip
)
def test_each_error_is_one_line_with_its_exit_code(make, argv, code, message, tmp_path, capsys):
    if make is not None:
        make(tmp_path)
    before = sorted(os.listdir(tmp_path))
    argv = [str(arg).replace("{tmp}", str(tmp_path)) for arg in argv]
    got, _, err = _run(argv, capsys)
    assert got == code, err
    assert err.startswith("mbk: ") and message in err and err.count("\n") == 1
    assert "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == before  # nothing written, no partial file


def test_force_overwrites_an_output(tmp_path, capsys):
    data = tmp_path / "blobs.csv"
    _blobs_csv(data)
    out = tmp_path / "out.csv"
    out.write_text("keep me")
    assert _run(["fit", data, "--clusters", 2, "--out", out], capsys)[0] == _cli.EXIT_EXISTS
    assert out.read_text() == "keep me"
    assert _run(["fit", data, "--clusters", 2, "--out", out, "--force"], capsys)[0] == 0
    assert len(_labels(out)) == 2000


def test_help_teaches_the_commands_and_lists_every_exit_code(capsys):
    with pytest.raises(SystemExit) as exited:
        _cli.main(["--help"])
    assert exited.value.code == 0
    printed = capsys.readouterr().out
    assert "mbk demo" in printed and "mbk fit housing.csv" in printed
    for code in _cli.EXIT_CODES:
        assert f"  {code:>2}  " in printed
    for command in ("fit", "predict", "info"):
        with pytest.raises(SystemExit):
            _cli.main([command, "--help"])
        assert "usage: mbk " + command in capsys.readouterr().out


# -- the progress line --------------------------------------------------------------------------


def _record(step, elapsed, ewa=None, stop=None):
    return StepRecord(step, 10.0, 0.1, ewa, None, 0, elapsed, stop)


def test_the_progress_line_shows_steps_rate_inertia_and_eta():
    stream = io.StringIO()
    ticks = iter([0.0, 0.05, 0.5, 1.0])
    line = ProgressLine(stream, max_steps=100, batch_size=1000, clock=lambda: next(ticks))
    line(_record(1, 0.01))
    line(_record(2, 0.02, ewa=0.5))  # within a tenth of a second: not redrawn
    line(_record(50, 1.0, ewa=0.25))
    assert stream.getvalue().count("\r") == 2
    last = stream.getvalue().rsplit("\r", 1)[1]
    assert last.startswith("[" + "#" * 10 + "." * 10 + "]")
    assert "50/100 steps" in last and "50.0k rows/s" in last and "ewa inertia 0.25" in last
    assert "ETA 1s" in last
    line(_record(60, 1.2, ewa=0.2, stop="no_improvement"))  # the last step is always drawn
    assert "stopped: no improvement" in stream.getvalue()
    line.close()
    assert stream.getvalue().endswith("\n")


def test_fit_draws_progress_on_a_terminal_only(tmp_path, capsys, monkeypatch):
    data = tmp_path / "blobs.csv"
    _blobs_csv(data)
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    _, _, err = _run(["fit", data, "--clusters", 2], capsys)
    assert "\r[" in err and "steps" in err
    _, _, err = _run(["fit", data, "--clusters", 2, "--quiet"], capsys)
    assert err == ""


def test_fit_draws_the_clusters(housing_csv, tmp_path, capsys):
    import struct

    png = tmp_path / "map.png"
    columns = ",".join(FEATURES)
    assert _run(["fit", housing_csv, "--clusters", 6, "--columns", columns, "--plot", png],
                capsys)[0] == _cli.EXIT_OK  # fmt: skip
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (600, 640)  # the map's 6 x 6.4 inches, dpi 100
    other = tmp_path / "scatter.png"
    assert _run(["fit", housing_csv, "--clusters", 3, "--columns", "median_income,total_rooms",
                 "--plot", other], capsys)[0] == _cli.EXIT_OK  # fmt: skip
    assert struct.unpack(">II", other.read_bytes()[16:24]) == (640, 480)


def test_the_readme_lists_every_exit_code():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = readme[readme.index("| code | meaning |") :]
    for code in _cli.EXIT_CODES:
        assert f"\n| {code} | " in table


def test_predict_needs_the_models_columns(tmp_path, capsys):
    data = tmp_path / "blobs.csv"
    _blobs_csv(data)
    model = tmp_path / "m.mbk"
    assert _run(["fit", data, "--clusters", 2, "--model", model], capsys)[0] == _cli.EXIT_OK
    other = _write(tmp_path / "other.csv", "a,b\n1,2\n")
    code, _, err = _run(["predict", model, other, "--out", tmp_path / "o.csv"], capsys)
    assert code == 6 and "no column 'c'; its columns are a, b" in err
    assert not (tmp_path / "o.csv").exists()

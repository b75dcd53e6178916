"""The ``mbk`` command line: ``mbk demo`` and its outputs, run in process (one subprocess
checks ``python -m mbk`` itself)."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mbk import MiniBatchKMeans, _cli, _demo
from mbk.datasets import housing_csv_bytes, load_housing

SHARED_TABLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "california_housing.csv"


def _read_clusters(path):
    with open(path, newline="") as table:
        rows = list(csv.reader(table))
    return rows[0], np.array(rows[1:], dtype=np.float64)


def test_the_shipped_table_is_the_classic_one():
    if not SHARED_TABLE.exists():
        pytest.skip("../shared/data is not beside the repository")
    assert housing_csv_bytes() == SHARED_TABLE.read_bytes()
    values, names = load_housing(("median_income", "latitude", "longitude", "total_bedrooms"))
    assert values.shape == (20640, 4) and len(names) == 10
    assert np.isnan(values[:, 3]).sum() == 207  # the table's missing total_bedrooms


def test_demo_writes_the_districts_with_their_cluster(tmp_path, capsys):
    assert _cli.main(["demo", "--out", str(tmp_path), "--threads", "2"]) == _cli.EXIT_OK
    header, table = _read_clusters(tmp_path / _demo.OUTPUT_CSV)
    assert header == ["median_income", "latitude", "longitude", "Cluster"]
    X, _ = load_housing(_demo.FEATURES)
    np.testing.assert_array_equal(table[:, :3], X)
    expected = MiniBatchKMeans(n_clusters=6, random_state=0).fit_predict(X)
    np.testing.assert_array_equal(table[:, 3], expected)
    printed = capsys.readouterr().out
    assert "20,640 districts" in printed and "share" in printed
    assert "clusters identical" in printed  # scikit-learn is a test dependency
    png = tmp_path / _demo.OUTPUT_PNG
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_second_demo_never_clobbers_the_first(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        assert _cli.main(["demo"]) == _cli.EXIT_OK
    assert sorted(os.listdir(tmp_path)) == ["mbk-demo", "mbk-demo-2"]
    # An explicit folder is refused when it holds the outputs, unless --force.
    assert _cli.main(["demo", "--out", "mbk-demo"]) == _cli.EXIT_EXISTS
    assert "use --force" in capsys.readouterr().err
    assert _cli.main(["demo", "--out", "mbk-demo", "--force"]) == _cli.EXIT_OK
    assert not [name for name in os.listdir("mbk-demo") if ".partial" in name]


def test_export_writes_the_table_for_the_quick_start(tmp_path):
    path = tmp_path / "housing.csv"
    assert _cli.main(["demo", "--export", str(path)]) == _cli.EXIT_OK
    assert path.read_bytes() == housing_csv_bytes()
    assert _cli.main(["demo", "--export", str(path)]) == _cli.EXIT_EXISTS


def test_generated_rows_are_clustered_and_nothing_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert _cli.main(["demo", "--rows", "5000"]) == _cli.EXIT_OK
    assert "5,000 generated rows" in capsys.readouterr().out
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("argv", [["demo", "--rows", "0"], ["demo", "--rows", "x"], ["fit"], []])
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        _cli.main(argv)
    assert exited.value.code == _cli.EXIT_USAGE
    assert "usage: mbk" in capsys.readouterr().err


def test_an_unwritable_output_is_a_one_line_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert _cli.main(["demo", "--out", str(blocker / "sub")]) == _cli.EXIT_ERROR
    error = capsys.readouterr().err
    assert error.startswith("mbk: ") and "Traceback" not in error


def test_python_dash_m_mbk_runs_the_command_line():
    done = subprocess.run([sys.executable, "-m", "mbk", "--version"], capture_output=True,
                          text=True, check=False)  # fmt: skip
    # (the last line: an editable install may print its rebuild first)
    assert done.returncode == 0 and done.stdout.splitlines()[-1].startswith("mbk ")


def test_mbk_fit_in_a_subprocess_exits_with_its_codes(tmp_path):
    data = tmp_path / "housing.csv"
    data.write_bytes(housing_csv_bytes())
    columns = "median_income,latitude,longitude"
    done = subprocess.run(
        [sys.executable, "-m", "mbk", "fit", str(data), "--clusters", "6", "--columns", columns,
         "--out", str(tmp_path / "out.csv"), "--json"],
        capture_output=True, text=True, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == _cli.EXIT_OK, done.stderr
    summary = json.loads(done.stdout[done.stdout.index("{\n") :])
    X, _ = load_housing(_demo.FEATURES)
    expected = MiniBatchKMeans(n_clusters=6, random_state=0).fit(X)
    assert summary["rows"] == len(X) and summary["steps"] == expected.n_steps_
    assert summary["inertia"] == expected.inertia_
    done = subprocess.run(
        [sys.executable, "-m", "mbk", "fit", str(data), "--columns", "median_income,rooms"],
        capture_output=True, text=True, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 6
    assert done.stderr.splitlines()[-1].startswith("mbk: ") and "Traceback" not in done.stderr

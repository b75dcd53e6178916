"""Data sets shipped inside the package: the California housing table of the classic example.

The 20,640-row StatLib California housing table (``housing.csv`` as distributed with Géron's
*Hands-On Machine Learning*: ten columns, one of them text) is stored gzip-compressed, so the
demo needs no network and no file from outside. Read it with NumPy alone.
"""

import csv
import gzip
import io
from importlib import resources

import numpy as np

HOUSING_FILE = "california_housing.csv.gz"


def housing_csv_bytes():
    """The table as the CSV file's bytes (uncompressed)."""
    with resources.files("mbk").joinpath("data", HOUSING_FILE).open("rb") as raw:
        return gzip.decompress(raw.read())


def load_housing(columns=("median_income", "latitude", "longitude")):
    """The California housing table's numeric ``columns`` as a float64 array.

    Parameters
    ----------
    columns : sequence of str
        Column names of the table (all but ``ocean_proximity`` are numeric). A district
        with a missing value in one of them (only ``total_bedrooms`` has any) is NaN there.

    Returns
    -------
    values : ndarray of shape (20640, len(columns)), float64
    names : list of str
        The table's ten column names, in file order.
    """
    reader = csv.reader(io.StringIO(housing_csv_bytes().decode("ascii")))
    names = next(reader)
    missing = [name for name in columns if name not in names]
    if missing:
        raise ValueError(f"The housing table has no column {missing[0]!r}; it has {names}.")
    if "ocean_proximity" in columns:
        raise ValueError("ocean_proximity is text: choose numeric columns.")
    where = [names.index(name) for name in columns]
    rows = [[float(row[i]) if row[i] else np.nan for i in where] for row in reader]
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(where)), names

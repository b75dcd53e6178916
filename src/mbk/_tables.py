"""Tables for the command line: CSV (also gzip-compressed), Parquet and .npy in and out.

``read_table`` gives a ``Table``: named columns read as they are, numbers taken from them on
request (``numbers``), with the problems a user can fix raised as ``DataError`` subclasses,
each with the command line's exit code. ``write_rows`` writes the input rows with a
``Cluster`` column in the format OUT's extension names (labels alone for ``.npy``), through
a temporary file, so never a half-written one. CSV needs nothing beyond the standard
library; Parquet needs pyarrow (the ``parquet`` extra).
"""

import csv
import gzip
import io
import os

import numpy as np

from ._files import write_atomically

# The command line's exit codes for problems with the data (the others are in _cli).
EXIT_UNREADABLE, EXIT_FORMAT, EXIT_COLUMN, EXIT_NON_NUMERIC, EXIT_MISSING = 4, 5, 6, 7, 8

_FORMATS = {".csv": "csv", ".csv.gz": "csv.gz", ".parquet": "parquet", ".npy": "npy"}


class DataError(ValueError):
    """A problem with the user's data or files, with the exit code that reports it."""

    exit_code = 1


class UnreadableFile(DataError):
    exit_code = EXIT_UNREADABLE


class UnknownFormat(DataError):
    exit_code = EXIT_FORMAT


class MissingColumn(DataError):
    exit_code = EXIT_COLUMN


class NonNumericColumn(DataError):
    exit_code = EXIT_NON_NUMERIC


class MissingValues(DataError):
    exit_code = EXIT_MISSING


def file_format(path, what="file"):
    """ "csv", "csv.gz", "parquet" or "npy" from path's extension; UnknownFormat otherwise."""
    name = os.fspath(path).lower()
    for extension in sorted(_FORMATS, key=len, reverse=True):
        if name.endswith(extension):
            return _FORMATS[extension]
    raise UnknownFormat(
        f"{path}: unknown {what} format; use one of {', '.join(_FORMATS)} (by extension)"
    )


class Table:
    """Columns by name, in file order, as read (strings for CSV, arrays otherwise).

    ``source`` keeps what the file was (its format, and the rows or arrow table written
    back out with a Cluster column).
    """

    def __init__(self, path, kind, names, columns, n_rows, rows=None, arrow=None):
        self.path = path
        self.kind = kind
        self.names = list(names)
        self._columns = columns
        self.n_rows = n_rows
        self._rows = rows  # CSV: the rows' fields as read
        self._arrow = arrow  # Parquet: the pyarrow table
        self._numbers = {}

    def is_numeric(self, name):
        try:
            self.numbers([name])
        except NonNumericColumn:
            return False
        return True

    def numbers(self, names):
        """The named columns as an (n_rows, len(names)) float64 array; MissingColumn or
        NonNumericColumn name the problem."""
        missing = [name for name in names if name not in self._columns]
        if missing:
            raise MissingColumn(
                f"{self.path}: no column {', '.join(map(repr, missing))}; its columns are "
                f"{', '.join(self.names)}"
            )
        out = np.empty((self.n_rows, len(names)), dtype=np.float64)
        for j, name in enumerate(names):
            if name not in self._numbers:
                self._numbers[name] = _as_numbers(self._columns[name], name, self.path)
            out[:, j] = self._numbers[name]
        return out

    def write_rows(self, path, labels, keep, force):
        """The input rows where ``keep`` (a boolean mask, or None for all) with a Cluster
        column, in OUT's format (labels alone for .npy)."""
        kind = file_format(path, "output")
        if kind == "npy":
            write_atomically(path, lambda out: np.save(out, np.asarray(labels, np.int32)), force)
        elif kind == "parquet":
            _write_parquet(path, self._as_arrow(keep), labels, force)
        else:
            _write_csv(path, kind, self.names, self._text_rows(keep), labels, force)

    def _text_rows(self, keep):
        if self._rows is not None:
            rows = self._rows
        else:
            columns = [self._text_column(name) for name in self.names]
            rows = zip(*columns, strict=True)
        return rows if keep is None else (row for row, kept in zip(rows, keep, strict=True) if kept)

    def _text_column(self, name):
        column = self._columns[name]
        if isinstance(column, np.ndarray) and column.dtype.kind == "f":
            return ["" if np.isnan(value) else repr(float(value)) for value in column]
        return ["" if value is None else str(value) for value in column]

    def _as_arrow(self, keep):
        pa = _pyarrow("write Parquet")
        if self._arrow is not None:
            table = self._arrow
        else:
            table = pa.table({name: self._arrow_column(name) for name in self.names})
        return table if keep is None else table.filter(pa.array(keep))

    def _arrow_column(self, name):
        if self._rows is not None and self.is_numeric(name):
            return self._numbers[name]
        column = self._columns[name]
        return column if isinstance(column, np.ndarray) else list(column)


def read_table(path, delimiter=None):
    """The table in path (CSV, CSV.gz, Parquet or .npy, by extension)."""
    kind = file_format(path, "input")
    if not os.path.exists(path):
        raise UnreadableFile(f"{path}: no such file")
    try:
        if kind == "npy":
            return _read_npy(path)
        if kind == "parquet":
            return _read_parquet(path)
        return _read_csv(path, kind, delimiter)
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise UnreadableFile(f"{path}: cannot be read ({error})") from None


def _read_csv(path, kind, delimiter):
    opener = gzip.open if kind == "csv.gz" else open
    with opener(path, "rt", newline="", encoding="utf-8") as text:
        reader = csv.reader(text, delimiter=delimiter or ",")
        header = next(reader, None)
        if not header:
            raise UnreadableFile(f"{path}: the file is empty (a header line is needed)")
        if len(set(header)) != len(header):
            raise UnknownFormat(f"{path}: the header repeats a column name")
        rows = []
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise UnknownFormat(
                    f"{path}, line {line}: {len(row)} fields where the header has "
                    f"{len(header)} (is the delimiter {delimiter or ','!r}?)"
                )
            rows.append(row)
    columns = {name: [row[j] for row in rows] for j, name in enumerate(header)}
    return Table(path, kind, header, columns, len(rows), rows=rows)


def _read_npy(path):
    try:
        X = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as error:
        raise UnknownFormat(f"{path}: not a NumPy array file of numbers ({error})") from None
    if X.ndim != 2 or X.dtype.kind not in "biuf":
        raise UnknownFormat(f"{path}: a .npy input must be a 2-D array of numbers; "
                            f"it is {X.ndim}-D {X.dtype}")  # fmt: skip
    names = [str(j) for j in range(X.shape[1])]
    columns = {name: X[:, j] for j, name in enumerate(names)}
    return Table(path, "npy", names, columns, X.shape[0])


def _read_parquet(path):
    pa = _pyarrow("read Parquet")
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except pa.ArrowInvalid as error:
        raise UnknownFormat(f"{path}: not a Parquet file ({error})") from None
    columns = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
            columns[name] = column.to_numpy(zero_copy_only=False).astype(np.float64)
            if column.null_count:
                columns[name][np.asarray(column.is_null())] = np.nan
        else:
            columns[name] = column.to_pylist()
    return Table(path, "parquet", table.column_names, columns, table.num_rows, arrow=table)


def _as_numbers(column, name, path):
    if isinstance(column, np.ndarray) and column.dtype.kind in "biuf":
        return column.astype(np.float64)
    try:
        return np.array(["nan" if value in ("", None) else value for value in column],
                        dtype=np.float64)  # fmt: skip
    except (ValueError, TypeError):
        example = next((v for v in column if v not in ("", None) and not _is_number(v)), "?")
        raise NonNumericColumn(
            f"{path}: column {name!r} is not numeric (it holds {example!r})"
        ) from None


def _is_number(value):
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _write_csv(path, kind, names, rows, labels, force):
    # (an input's own Cluster column is replaced by the new one)
    kept = [j for j, name in enumerate(names) if name != "Cluster"]
    every = len(kept) == len(names)

    def write(out):
        binary = gzip.GzipFile(fileobj=out, mode="wb") if kind == "csv.gz" else out
        text = io.TextIOWrapper(binary, encoding="utf-8", newline="")
        writer = csv.writer(text)
        writer.writerow([*(names[j] for j in kept), "Cluster"])
        for row, label in zip(rows, labels, strict=True):
            fields = row if every else [row[j] for j in kept]
            writer.writerow([*fields, int(label)])
        text.flush()
        text.detach()
        if binary is not out:
            binary.close()

    write_atomically(path, write, force)


def _write_parquet(path, table, labels, force):
    pa = _pyarrow("write Parquet")
    import pyarrow.parquet as pq

    if "Cluster" in table.column_names:
        table = table.drop_columns(["Cluster"])
    table = table.append_column("Cluster", pa.array(np.asarray(labels, dtype=np.int32)))
    write_atomically(path, lambda out: pq.write_table(table, out), force)


def _pyarrow(what):
    try:
        import pyarrow
    except ImportError:
        raise ImportError(
            f"pyarrow is needed to {what}: pip install pyarrow (or mbk's parquet extra)"
        ) from None
    return pyarrow

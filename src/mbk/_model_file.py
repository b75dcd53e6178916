"""Model files: a fitted MiniBatchKMeans in one portable file, with no pickle anywhere.

A model file is a NumPy ``.npz`` archive, a zip of ``.npy`` arrays, read with
``np.load(path, allow_pickle=False)``:

- ``metadata``: uint8, the UTF-8 bytes of one strict JSON object (no NaN or Infinity)::

      {"format": "mbk-model", "format_version": 1, "mbk_version": "0.1.0",
       "class": "MiniBatchKMeans", "dtype": "float64",
       "params": {name: record},       # get_params()
       "state": {name: record},        # SculleyState.to_flat(): scikit-learn's names
       "preprocessing": null or {"columns": [...], "scale": "none" or "standard",
                                 "means": [...] or null, "scales": [...] or null}}

- one entry for each array a record names: the state's arrays under their own names
  (``cluster_centers_``, ``_counts``, ``labels_``, ``feature_names_in_``), a dict of columns
  under ``name/column`` (``history_/batch_inertia``), a random stream's MT19937 key under
  ``name/key`` (``_random_state/key``), a parameter's array under ``params/name``
  (``params/init``). So ``np.load(path)["cluster_centers_"]`` reads the centers without mbk.

A record says how one value is stored, by the value's type::

    {"type": "none"}
    {"type": "bool" | "int" | "float" | "str", "value": ...}   (a float that is not finite:
                                                               "inf", "-inf" or "nan")
    {"type": "array", "dtype": "float64", "shape": [8, 3]}     (dtype "str": str objects)
    {"type": "columns", "columns": {column: array record}}     (a dict of arrays)
    {"type": "random_state", "bit_generator": "MT19937", "pos": 0..624, "has_gauss": 0 or 1,
     "cached_gaussian": a finite float}                        (the key: 624 uint32)
    {"type": "random_state", "same_as": name}                  (the same RandomState object
                                                               as the one stored under name)

Whatever ``to_flat`` gives is written by its type, so fields added to the state later are
stored without a change here. Reading checks everything before it builds the model: the
archive, the format version, each record against its entry (present, declared dtype and
shape, nothing undeclared), the random stream's integers, the parameters (``set_params``
and ``check_params``) and the fitted state (``SculleyState.from_flat``, the checks a pickle
gets); each problem is a ValueError that names it.
"""

import json
import math
import numbers
import zipfile
import zlib

import numpy as np

from ._files import write_atomically
from ._kmeans import MiniBatchKMeans
from ._state import FLAT_NAMES, SculleyState
from ._validation import check_memory, check_params

FORMAT = "mbk-model"
FORMAT_VERSION = 1
SCALES = ("none", "standard")

_METADATA_KEYS = {"format", "format_version", "mbk_version", "class", "dtype", "params",
                  "state", "preprocessing"}  # fmt: skip
_PREPROCESSING_KEYS = {"columns", "scale", "means", "scales"}
# Array dtypes a model file holds (the same on every platform), and "str" for str objects.
_ARRAY_DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                 "uint64", "float32", "float64")  # fmt: skip
_RECORD_KEYS = {
    "none": {"type"},
    "bool": {"type", "value"},
    "int": {"type", "value"},
    "float": {"type", "value"},
    "str": {"type", "value"},
    "array": {"type", "dtype", "shape"},
    "columns": {"type", "columns"},
    "random_state": {"type", "bit_generator", "pos", "has_gauss", "cached_gaussian"},
}
_NOT_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}
# MT19937's state: 624 32-bit words, and the position of the next one in 0..624.
_MT_WORDS = 624
# Every member gets this time stamp (zip's earliest), so the same model gives the same bytes.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class _Invalid(ValueError):
    """What makes a file not a valid model file (read() adds the file's name)."""


class _Newer(ValueError):
    """The file's format version is newer than this mbk reads (read() adds the name)."""


# What reading a damaged zip member may raise: zipfile's errors (a bad CRC, an unknown
# compression method, encryption), zlib's, NumPy's for a bad .npy header.
_READ_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error,
                NotImplementedError, RuntimeError)  # fmt: skip


def _mbk_version():
    from . import __version__  # (mbk/__init__.py imports this module before it sets it)

    return __version__


# -- writing --------------------------------------------------------------------------------


def write(path, model, *, preprocessing=None, overwrite=True):
    """Write a fitted model (and the command line's preprocessing) to a model file.

    The file is written under a temporary name in the same folder and renamed, so ``path``
    is never half-written; an existing file is replaced, or with ``overwrite=False`` left
    alone (``_files.OutputExists``). NotFittedError for an unfitted model; ValueError for
    what a model file cannot hold (a callable init, a RandomState on another bit generator
    than MT19937) and for bad preprocessing.
    """
    state = model._fitted_state()
    if callable(model.init):
        raise ValueError(
            f"init={model.init!r} is a callable, which a model file cannot hold (it holds no "
            "code). Set init to the fitted centers first, model.set_params("
            "init=model.cluster_centers_), or to 'k-means++' or 'random'."
        )
    check_params(model)  # (a file must load again: its parameters are checked there too)
    preprocessing = check_preprocessing(preprocessing, state.n_features)
    entries, stored_streams = {}, {}
    params = {name: _record(value, f"params/{name}", entries, stored_streams)
              for name, value in model.get_params(deep=False).items()}  # fmt: skip
    fitted = {name: _record(value, name, entries, stored_streams)
              for name, value in state.to_flat().items()}  # fmt: skip
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "mbk_version": _mbk_version(),
        "class": type(model).__name__,
        "dtype": state.dtype.name,
        "params": params,
        "state": fitted,
        "preprocessing": preprocessing,
    }
    text = json.dumps(metadata, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    arrays = {"metadata": np.frombuffer(text.encode("utf-8"), dtype=np.uint8), **entries}
    write_atomically(path, lambda out: _write_archive(out, arrays), overwrite)


def _record(value, name, entries, stored_streams):
    """The JSON record of one value; its arrays go to entries under ``name`` (and
    ``name/...``). ``stored_streams``: id of each RandomState stored so far -> its name."""
    if value is None:
        return {"type": "none"}
    if isinstance(value, (bool, np.bool_)):
        return {"type": "bool", "value": bool(value)}
    if isinstance(value, numbers.Integral):
        return {"type": "int", "value": int(value)}
    if isinstance(value, numbers.Real):
        return {"type": "float", "value": _json_float(value)}
    if isinstance(value, str):
        return {"type": "str", "value": value}
    if isinstance(value, np.random.RandomState):
        return _stream_record(value, name, entries, stored_streams)
    if isinstance(value, dict):
        columns = {}
        for column, array in value.items():
            if not isinstance(column, str) or not isinstance(array, np.ndarray):
                raise ValueError(f"cannot store {name}: a dict of other things than arrays")
            columns[column] = _array_record(array, f"{name}/{column}", entries)
        return {"type": "columns", "columns": columns}
    if isinstance(value, (np.ndarray, list, tuple)) or hasattr(value, "__array__"):
        return _array_record(np.asarray(value), name, entries)
    raise ValueError(f"cannot store {name}: a model file holds no {type(value).__name__}")


def _json_float(value):
    value = float(value)
    if math.isfinite(value):
        return value  # (JSON numbers round-trip Python floats exactly)
    return "nan" if math.isnan(value) else "inf" if value > 0 else "-inf"


def _array_record(array, name, entries):
    if array.dtype == object:
        if not all(isinstance(item, str) for item in array.flat):
            raise ValueError(f"cannot store {name}: an object array of other things than str")
        array, dtype = array.astype(str), "str"
    elif array.dtype.kind == "U":
        dtype = "str"
    elif array.dtype.name in _ARRAY_DTYPES:
        dtype = array.dtype.name
    else:
        raise ValueError(f"cannot store {name}: an array of {array.dtype}")
    entries[name] = np.ascontiguousarray(array)
    return {"type": "array", "dtype": dtype, "shape": list(array.shape)}


def _stream_record(random_state, name, entries, stored_streams):
    """A RandomState as validated integers: MT19937's key (an entry), position, and the
    cached Gaussian of the legacy normal draws."""
    if id(random_state) in stored_streams:  # the same object: restored as one object
        return {"type": "random_state", "same_as": stored_streams[id(random_state)]}
    state = random_state.get_state(legacy=False)
    if state["bit_generator"] != "MT19937":
        raise ValueError(
            f"cannot store {name}: a RandomState on {state['bit_generator']}; model files "
            "store MT19937 streams (RandomState's own)"
        )
    stored_streams[id(random_state)] = name
    entries[f"{name}/key"] = np.array(state["state"]["key"], dtype=np.uint32)
    return {
        "type": "random_state",
        "bit_generator": "MT19937",
        "pos": int(state["state"]["pos"]),
        "has_gauss": int(state["has_gauss"]),
        "cached_gaussian": float(state["gauss"]),
    }


def _write_archive(out, arrays):
    """The arrays as an .npz archive (deflated), through NumPy's .npy writer, which may not
    pickle."""
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            _write_entry(archive, name, array)


def _write_entry(archive, name, array):
    member = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
    member.compress_type = zipfile.ZIP_DEFLATED
    member.external_attr = 0o644 << 16  # (rw-r--r-- where an unzip tool extracts it)
    with archive.open(member, "w", force_zip64=True) as out:
        np.lib.format.write_array(out, array, allow_pickle=False)


def check_preprocessing(preprocessing, n_features):
    """The command line's preprocessing as a model file stores it: None, or a dict
    ``{"columns": n_features str, "scale": "none" | "standard", "means": n_features finite
    floats or None, "scales": n_features finite floats > 0 or None}`` (numbers with
    "standard", None with "none"). ValueError names what is wrong."""
    if preprocessing is None:
        return None
    if not isinstance(preprocessing, dict) or set(preprocessing) != _PREPROCESSING_KEYS:
        raise ValueError(
            "preprocessing must be None or a dict with the keys columns, scale, means and "
            f"scales; got {preprocessing!r}"
        )
    columns = _as_list(preprocessing["columns"])
    if (
        columns is None
        or len(columns) != n_features
        or not all(isinstance(column, str) for column in columns)
    ):
        raise ValueError(f"preprocessing's columns must be {n_features} str (n_features_in_)")
    scale = preprocessing["scale"]
    if not isinstance(scale, str) or scale not in SCALES:
        raise ValueError(f"preprocessing's scale must be 'none' or 'standard'; got {scale!r}")
    checked = {"columns": columns, "scale": scale}
    for name, minimum in (("means", -math.inf), ("scales", 0.0)):
        values = preprocessing[name]
        if scale == "none":
            if values is not None:
                raise ValueError(f"preprocessing's {name} must be None with scale 'none'")
            checked[name] = None
            continue
        values = _as_list(values)
        if (
            values is None
            or len(values) != n_features
            or not all(isinstance(value, numbers.Real) and not isinstance(value, bool)
                       and minimum < value < math.inf for value in values)
        ):  # fmt: skip
            above = "> 0" if minimum == 0 else "finite"
            raise ValueError(
                f"preprocessing's {name} must be {n_features} {above} numbers with scale 'standard'"
            )
        checked[name] = [float(value) for value in values]
    return checked


def _as_list(values):
    if isinstance(values, (list, tuple)):
        return list(values)
    if isinstance(values, np.ndarray) and values.ndim == 1:
        return values.tolist()
    return None


# -- reading --------------------------------------------------------------------------------


def load(path):
    """Read a model file written by ``MiniBatchKMeans.save``.

    Nothing in the file is unpickled or run: it holds arrays and JSON, and every part is
    checked before the model is built, so a file from someone else is safe to load.

    Parameters
    ----------
    path : str or path-like
        The model file.

    Returns
    -------
    model : MiniBatchKMeans
        The fitted model, as it was saved: it predicts and transforms identically and
        continues ``partial_fit`` where it stopped (bit for bit, on the same kernel variant).

    Raises
    ------
    ValueError
        If the file is not a model file, is damaged or tampered with (a missing, extra or
        malformed entry, NaN, a negative weight, an impossible random state, a parameter
        ``set_params`` refuses), or is from a newer format version than this mbk reads; the
        message names the problem.
    OSError
        If the file cannot be opened.
    MemoryError
        If an entry would not fit in the available memory (checked before it is read).
    """
    return read(path)[0]


def read(path):
    """(model, preprocessing) from a model file; ValueError names what is wrong with it."""
    try:
        with open(path, "rb") as file:
            if file.read(4) != b"PK\x03\x04":
                raise _Invalid("it is not a zip archive (a model file is an .npz archive)")
            file.seek(0)
            try:
                npz = np.load(file, allow_pickle=False)
            except _READ_ERRORS as error:
                raise _Invalid(f"its zip archive is damaged or truncated ({error})") from error
            with npz:
                return _read_archive(_Entries(npz))
    except _Newer as problem:
        raise ValueError(f"{path} is an mbk model file of {problem}") from None
    except _Invalid as problem:
        raise ValueError(f"{path} is not a valid mbk model file: {problem}") from problem.__cause__


def _read_archive(entries):
    metadata = _read_metadata(entries)
    stored_streams = {}
    params = _values(metadata["params"], "params/", entries, stored_streams, "params")
    state = _values(metadata["state"], "", entries, stored_streams, "state")
    extra = entries.names - entries.read
    if extra:
        raise _Invalid(f"it has entries its metadata does not name: {', '.join(sorted(extra))}")
    init = params.get("init")
    if isinstance(init, np.ndarray) and not (
        init.ndim == 2 and init.dtype.kind in "iuf" and np.isfinite(init).all()
    ):
        # (check_params leaves the centers to fit, which compares them with its data)
        raise _Invalid("its init centers must be a 2-D array of finite numbers")
    model = MiniBatchKMeans()
    try:
        model.set_params(**params)
        check_params(model)
    except (ValueError, TypeError) as error:
        raise _Invalid(f"its parameters are refused: {error}") from None
    unknown = set(state) - set(FLAT_NAMES)
    if unknown:
        raise _Invalid(
            f"its state has fields this mbk ({_mbk_version()}) does not know: "
            f"{', '.join(sorted(unknown))} (it was written by mbk {metadata['mbk_version']})"
        )
    try:
        fitted = SculleyState.from_flat(state)
    except ValueError as error:
        raise _Invalid(f"its fitted state is impossible: {error}") from None
    if metadata["dtype"] != fitted.dtype.name:
        raise _Invalid(
            f"its metadata says dtype {metadata['dtype']!r}, but cluster_centers_ holds "
            f"{fitted.dtype.name}"
        )
    try:
        preprocessing = check_preprocessing(metadata["preprocessing"], fitted.n_features)
    except ValueError as error:
        raise _Invalid(str(error)) from None
    model._fitted = fitted
    return model, preprocessing


def _read_metadata(entries):
    """The metadata entry's JSON object, its version and keys checked."""
    data = entries.array("metadata", "uint8", None)
    try:
        metadata = json.loads(data.tobytes().decode("utf-8"), parse_constant=_no_constant,
                              object_pairs_hook=_object_without_repeats)  # fmt: skip
    except (ValueError, RecursionError) as error:
        if isinstance(error, _Invalid):
            raise
        raise _Invalid(f"its metadata is not JSON in UTF-8 ({error})") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise _Invalid(f"its metadata does not say format {FORMAT!r}")
    version = metadata.get("format_version")
    if not _is_json_int(version) or version < 1:
        raise _Invalid(f"its format_version must be an int >= 1; got {version!r}")
    if version > FORMAT_VERSION:
        raise _Newer(
            f"format version {version}: this mbk ({_mbk_version()}) reads model files of "
            f"format version {FORMAT_VERSION} and older; upgrade mbk to load it"
        )
    if set(metadata) != _METADATA_KEYS:
        missing, unknown = _METADATA_KEYS - set(metadata), set(metadata) - _METADATA_KEYS
        raise _Invalid(
            "its metadata must have the keys "
            f"{', '.join(sorted(_METADATA_KEYS))} (missing: {', '.join(sorted(missing)) or '-'}"
            f"; unknown: {', '.join(sorted(unknown)) or '-'})"
        )
    if not isinstance(metadata["mbk_version"], str):
        raise _Invalid("its mbk_version must be a str")
    if metadata["class"] != MiniBatchKMeans.__name__:
        raise _Invalid(f"it holds a {metadata['class']!r}, not a MiniBatchKMeans")
    if metadata["dtype"] not in ("float32", "float64"):
        raise _Invalid(f"its dtype must be 'float32' or 'float64'; got {metadata['dtype']!r}")
    for name in ("params", "state"):
        if not isinstance(metadata[name], dict):
            raise _Invalid(f"its {name} must be a JSON object")
    return metadata


def _no_constant(constant):
    raise _Invalid(f"its metadata is not strict JSON (it has {constant})")


def _object_without_repeats(pairs):
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        raise _Invalid(f"its metadata repeats a key in one object ({', '.join(names)})")
    return dict(pairs)


def _is_json_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_json_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _values(records, prefix, entries, stored_streams, what):
    """{name: value} from the records of the params or the state."""
    values = {}
    for name, record in records.items():
        try:
            if what == "params" and isinstance(record, dict) and record.get("type") == "columns":
                raise _Invalid("a parameter is never a dict of arrays")
            values[name] = _value(record, prefix + name, entries, stored_streams)
        except _Invalid as problem:
            raise _Invalid(f"{what} {name!r}: {problem}") from problem.__cause__
    return values


def _value(record, name, entries, stored_streams):
    """The value one record describes (its arrays read from the entries)."""
    if not isinstance(record, dict):
        raise _Invalid("its record is not a JSON object")
    kind = record.get("type")
    if kind not in _RECORD_KEYS:
        raise _Invalid(f"its record's type {kind!r} is not one of {', '.join(_RECORD_KEYS)}")
    if kind == "random_state" and "same_as" in record:
        if set(record) != {"type", "same_as"} or record["same_as"] not in stored_streams:
            raise _Invalid("same_as must name a random state stored before it")
        return stored_streams[record["same_as"]]
    if set(record) != _RECORD_KEYS[kind]:
        raise _Invalid(
            f"a {kind} record has the keys {', '.join(sorted(_RECORD_KEYS[kind]))}; got "
            f"{', '.join(sorted(record))}"
        )
    value = record.get("value")
    if kind == "none":
        return None
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind == "int" and _is_json_int(value):
        return value
    if kind == "float" and (_is_json_number(value) or value in _NOT_FINITE):
        return float(value) if _is_json_number(value) else _NOT_FINITE[value]
    if kind == "str" and isinstance(value, str):
        return value
    if kind == "array":
        return entries.array(name, record["dtype"], record["shape"])
    if kind == "columns":
        columns = record["columns"]
        if not isinstance(columns, dict):
            raise _Invalid("columns must be a JSON object of array records")
        arrays = {}
        for column, column_record in columns.items():
            if not isinstance(column_record, dict) or column_record.get("type") != "array":
                raise _Invalid(f"column {column!r} must be an array record")
            arrays[column] = _value(column_record, f"{name}/{column}", entries, stored_streams)
        return arrays
    if kind == "random_state":
        random_state = _stream(record, name, entries)
        stored_streams[name] = random_state
        return random_state
    raise _Invalid(f"a record of type {kind} needs a JSON {kind} value; got {value!r}")


def _stream(record, name, entries):
    """A RandomState from its validated integers."""
    if record["bit_generator"] != "MT19937":
        raise _Invalid(f"bit_generator must be 'MT19937'; got {record['bit_generator']!r}")
    pos, has_gauss, gaussian = record["pos"], record["has_gauss"], record["cached_gaussian"]
    if not _is_json_int(pos) or not 0 <= pos <= _MT_WORDS:
        raise _Invalid(f"pos must be an int in 0..{_MT_WORDS}; got {pos!r}")
    if not _is_json_int(has_gauss) or has_gauss not in (0, 1):
        raise _Invalid(f"has_gauss must be 0 or 1; got {has_gauss!r}")
    if not _is_json_number(gaussian) or not math.isfinite(gaussian):
        raise _Invalid(f"cached_gaussian must be a finite number; got {gaussian!r}")
    key = entries.array(f"{name}/key", "uint32", [_MT_WORDS])
    # The state is the top bit of key[0] and the other 623 words: all zero, MT19937 draws
    # zeros forever (NumPy's seeding never makes it).
    if not (key[0] & 0x80000000 or key[1:].any()):
        raise _Invalid("its MT19937 key is all zeros, a state no seeding makes")
    random_state = np.random.RandomState(0)
    random_state.set_state({"bit_generator": "MT19937", "state": {"key": key, "pos": pos},
                            "has_gauss": has_gauss, "gauss": float(gaussian)})  # fmt: skip
    return random_state


class _Entries:
    """The archive's arrays, each checked against its record before it is read."""

    def __init__(self, npz):
        self.npz = npz
        members = npz.zip.namelist()
        self.names = set(npz.files)
        if len(self.names) != len(members):
            repeated = sorted({name for name in npz.files if npz.files.count(name) > 1})
            raise _Invalid(f"it has an entry twice: {', '.join(repeated)}")
        self.members = dict(zip(npz.files, members, strict=True))
        self.read = set()

    def array(self, name, dtype, shape):
        """The entry's array in native byte order (str: an object array of str), with the
        dtype and shape (None: any 1-D) its record declares."""
        if not (isinstance(dtype, str) and (dtype in _ARRAY_DTYPES or dtype == "str")):
            raise _Invalid(f"dtype {dtype!r} is not one a model file holds")
        if shape is not None and not (
            isinstance(shape, list) and all(_is_json_int(n) and n >= 0 for n in shape)
        ):
            raise _Invalid(f"shape {shape!r} is not a list of ints >= 0")
        if name not in self.names:
            raise _Invalid(f"the entry {name!r} is missing")
        self.read.add(name)
        self._check_header(name, dtype, shape)
        try:
            array = self.npz[name]
        except _READ_ERRORS as error:
            raise _Invalid(f"the entry {name!r} is damaged ({error})") from error
        if not array.dtype.isnative:
            array = array.astype(array.dtype.newbyteorder("="))
        return array.astype(object) if dtype == "str" else array

    def _check_header(self, name, dtype, shape):
        """Compare the entry's .npy header with its record, and its size with the header,
        before NumPy allocates what the header says."""
        member = self.members[name]
        try:
            with self.npz.zip.open(member) as data:
                version = np.lib.format.read_magic(data)
                if version == (1, 0):
                    found_shape, _, found = np.lib.format.read_array_header_1_0(data)
                elif version == (2, 0):
                    found_shape, _, found = np.lib.format.read_array_header_2_0(data)
                else:
                    raise _Invalid(f"the entry {name!r} has .npy version {version}")
                header_bytes = data.tell()
        except _READ_ERRORS as error:
            if isinstance(error, _Invalid):
                raise
            raise _Invalid(f"the entry {name!r} is not a readable .npy array ({error})") from error
        if found.hasobject:
            raise _Invalid(
                f"the entry {name!r} holds Python objects (a pickle), which a model file "
                "never holds; it was not read"
            )
        found_name = "str" if found.kind == "U" else found.name
        if found_name != dtype or (
            len(found_shape) != 1 if shape is None else list(found_shape) != shape
        ):
            expected = "any length" if shape is None else tuple(shape)
            raise _Invalid(
                f"the entry {name!r} holds {found_name} of shape {found_shape}, not {dtype} of "
                f"shape {expected}"
            )
        n_bytes = math.prod(found_shape) * found.itemsize
        stored = self.npz.zip.getinfo(member).file_size - header_bytes
        if stored != n_bytes:
            raise _Invalid(
                f"the entry {name!r} is truncated or padded: its header promises {n_bytes} "
                f"bytes of data, it holds {stored}"
            )
        check_memory(n_bytes, lambda: f"loading the entry {name!r} of a model file")

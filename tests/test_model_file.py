"""Model files: save, load, resume, and refuse what is not a model file (issue 16, part 5)."""

import io
import json
import os
import pickle
import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from numpy.testing import assert_array_equal

import mbk
from conftest import make_blobs
from mbk import _files, _model_file
from mbk._state import FLAT_NAMES, SculleyState

# -- models, and what their files hold ----------------------------------------------------------


def _data(dtype=np.float64, sparse=False, n_samples=900, seed=2):
    X, _ = make_blobs(n_samples, 4, 5, dtype=dtype, seed=seed)
    if sparse:
        X[np.abs(X) < 4] = 0  # about half the entries stored
        return sp.csr_matrix(X)
    return X


def _rich_model():
    """A model whose file holds every kind of entry: feature names, an init array, a
    RandomState parameter, partial_fit's stream and labels."""
    X = pd.DataFrame(_data(), columns=["a", "b", "c", "d"])
    init = X.to_numpy()[:5].copy()
    model = mbk.MiniBatchKMeans(
        5, init=init, batch_size=100, n_threads=2, random_state=np.random.RandomState(1)
    )
    model.fit(X[:600]).partial_fit(X[600:700])
    # (another stream than partial_fit's, so that each has an entry of its own)
    return model.set_params(random_state=np.random.RandomState(2)), X


def _documented_entries(model):
    """The entries the format's documentation gives a model's file."""
    names = ["metadata"]
    values = [(f"params/{name}", value) for name, value in model.get_params().items()]
    for name, value in [*values, *model._fitted.to_flat().items()]:
        if isinstance(value, np.ndarray):
            names.append(name)
        elif isinstance(value, dict):
            names.extend(f"{name}/{column}" for column in value)
        elif isinstance(value, np.random.RandomState):
            names.append(f"{name}/key")
    return names


RICH = _rich_model()[0]
ENTRIES = _documented_entries(RICH)
RICH_STATE = RICH._fitted.to_flat()
# Entries where NaN, or a negative number, is a value a model may have.
NAN_IS_A_VALUE = {"history_/ewa_inertia", "history_/center_shift"}
MAY_BE_NEGATIVE = {"cluster_centers_", "params/init"}


def _saved(tmp_path, model=None, name="model.npz"):
    model = _rich_model()[0] if model is None else model
    path = tmp_path / name
    model.save(path)
    return path


def _read_members(path):
    """{member name without .npy: ndarray (bytes if not an array)}, and the metadata."""
    arrays = {}
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            data = archive.read(member)
            if data.startswith(b"\x93NUMPY"):
                data = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
            arrays[member.removesuffix(".npy")] = data
    return json.loads(arrays["metadata"].tobytes()), arrays


def _write_members(path, arrays):
    """Write an archive as a model file's writer would, from arrays (pickled if they are
    object arrays) or raw bytes, in order."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, value in arrays:
            if isinstance(value, np.ndarray):
                out = io.BytesIO()
                np.lib.format.write_array(out, value, allow_pickle=True)
                value, name = out.getvalue(), f"{name}.npy"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # (zipfile warns of a repeated name)
                archive.writestr(name, value)


def _tamper(path, change):
    """Rewrite the file after change(metadata, arrays) (metadata re-encoded unless the
    change replaced arrays["metadata"] itself)."""
    metadata, arrays = _read_members(path)
    original = arrays["metadata"]
    change(metadata, arrays)
    if arrays.get("metadata") is original:
        text = json.dumps(metadata).encode()
        arrays["metadata"] = np.frombuffer(text, dtype=np.uint8)
    _write_members(path, list(arrays.items()))


def _record_of(metadata, entry):
    """The record that declares an entry (None for the metadata and a stream's key)."""
    if entry == "metadata" or entry.endswith("/key"):
        return None
    if entry.startswith("params/"):
        return metadata["params"][entry.removeprefix("params/")]
    name, _, column = entry.partition("/")
    record = metadata["state"][name]
    return record["columns"][column] if column else record


def _field(entry):
    """What an error about an entry's values names."""
    if entry == "_counts":
        return "running weight"
    return entry.removeprefix("params/").split("/")[0]


def _load_fails(path, *fragments):
    with pytest.raises(ValueError) as raised:
        mbk.load(path)
    message = str(raised.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message
    return message


# -- round trips -------------------------------------------------------------------------------


def _assert_same_stream(loaded, random_state):
    (name, key, *rest), (expected_name, expected_key, *expected) = (
        loaded.get_state(),
        random_state.get_state(),
    )
    assert name == expected_name and rest == expected
    assert_array_equal(key, expected_key)


def _assert_same_model(loaded, model, X):
    assert type(loaded) is mbk.MiniBatchKMeans
    for name in ("cluster_centers_", "_counts", "labels_", "feature_names_in_"):
        expected = getattr(model, name, None)
        if expected is None:
            assert getattr(loaded, name, None) is None, name
            continue
        assert getattr(loaded, name).dtype == expected.dtype, name
        assert_array_equal(getattr(loaded, name), expected, err_msg=name)
    for name in ("inertia_", "n_iter_", "n_steps_", "n_features_in_"):
        assert getattr(loaded, name, None) == getattr(model, name, None), name
    params, expected = loaded.get_params(), model.get_params()
    assert params.keys() == expected.keys()
    for name, value in expected.items():
        if isinstance(value, np.ndarray):
            assert_array_equal(params[name], value, err_msg=name)
        elif isinstance(value, np.random.RandomState):
            _assert_same_stream(params[name], value)
        else:
            assert params[name] == value, name
    assert_array_equal(loaded.predict(X), model.predict(X))
    assert_array_equal(loaded.transform(X), model.transform(X))
    assert loaded.score(X) == model.score(X)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("start", ["fit", "partial_fit"])
def test_a_loaded_model_predicts_and_continues_partial_fit_bit_for_bit(
    tmp_path, start, dtype, sparse
):
    X = _data(dtype, sparse)
    batches = [X[i : i + 100] for i in range(0, 900, 100)]
    weights = np.random.RandomState(0).uniform(0.5, 2, 100)

    def run_until_saved():
        model = mbk.MiniBatchKMeans(5, batch_size=100, random_state=3, n_threads=2)
        if start == "fit":
            model.fit(X[:400])
        for batch in batches[4:6]:
            model.partial_fit(batch)
        return model

    saved, never_saved = run_until_saved(), run_until_saved()
    loaded = mbk.load(_saved(tmp_path, saved))
    _assert_same_model(loaded, never_saved, X)
    for i, batch in enumerate(batches[6:]):
        weight = weights if i % 2 else None
        loaded.partial_fit(batch, sample_weight=weight)
        never_saved.partial_fit(batch, sample_weight=weight)
    _assert_same_model(loaded, never_saved, X)
    _assert_same_stream(loaded._fitted.random_state, never_saved._fitted.random_state)


def test_feature_names_come_back_and_are_checked(tmp_path):
    model, X = _rich_model()
    loaded = mbk.load(_saved(tmp_path, model))
    assert loaded.feature_names_in_.dtype == object
    assert [type(name) for name in loaded.feature_names_in_] == [str] * 4
    _assert_same_model(loaded, model, X)
    renamed = X.rename(columns={"a": "z"})
    with pytest.raises(ValueError, match="Feature names") as expected:
        model.predict(renamed)
    with pytest.raises(ValueError, match="Feature names") as raised:
        loaded.predict(renamed)
    assert str(raised.value) == str(expected.value)


def test_an_init_array_and_a_random_state_parameter_come_back(tmp_path):
    model, X = _rich_model()
    loaded = mbk.load(_saved(tmp_path, model))
    assert isinstance(loaded.init, np.ndarray) and loaded.init is not model.init
    assert_array_equal(loaded.init, model.init)
    # Refitting from the loaded parameters is refitting from the saved ones.
    assert_array_equal(loaded.fit(X).cluster_centers_, model.fit(X).cluster_centers_)


def test_a_stream_shared_by_the_parameter_and_partial_fit_stays_shared(tmp_path):
    X = _data()
    model = mbk.MiniBatchKMeans(5, batch_size=100, random_state=np.random.RandomState(4))
    model.partial_fit(X[:100])
    assert model.random_state is model._fitted.random_state
    loaded = mbk.load(_saved(tmp_path, model))
    assert loaded.random_state is loaded._fitted.random_state
    # A fit draws from the shared stream, so the partial_fit after it sees the same draws.
    for each in (model, loaded):
        each.fit(X[:500]).partial_fit(X[500:600])
    _assert_same_model(loaded, model, X)


def test_a_nested_model_and_one_without_labels_round_trip(tmp_path):
    X = _data()
    nested = mbk.MiniBatchKMeans(5, algorithm="nested", random_state=0, n_threads=2).fit(X)
    _assert_same_model(mbk.load(_saved(tmp_path, nested, "nested.npz")), nested, X)
    unlabelled = mbk.MiniBatchKMeans(5, compute_labels=False, random_state=0).fit(X)
    loaded = mbk.load(_saved(tmp_path, unlabelled, "unlabelled.npz"))
    assert not hasattr(loaded, "labels_")
    _assert_same_model(loaded, unlabelled, X)


def test_the_file_holds_the_documented_entries_and_no_object_array(tmp_path):
    path = _saved(tmp_path)
    with np.load(path, allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted(ENTRIES)
        for name in npz.files:
            assert npz[name].dtype != object, name  # (every entry loads without pickle)
        text = npz["metadata"].tobytes().decode("utf-8")
    metadata = json.loads(text, parse_constant=pytest.fail)  # strict JSON
    assert metadata["format"] == "mbk-model" and metadata["format_version"] == 1
    assert metadata["mbk_version"] == mbk.__version__
    assert metadata["class"] == "MiniBatchKMeans" and metadata["dtype"] == "float64"
    assert metadata["params"]["n_clusters"] == {"type": "int", "value": 5}
    assert metadata["state"]["_random_state"]["bit_generator"] == "MT19937"
    assert set(metadata["state"]) <= set(FLAT_NAMES)


def test_a_file_written_on_a_big_endian_machine_loads(tmp_path):
    model, X = _rich_model()
    path = _saved(tmp_path, model)

    def big_endian(metadata, arrays):
        for name, array in arrays.items():
            if name != "metadata" and array.dtype.byteorder != "|":
                arrays[name] = array.astype(array.dtype.newbyteorder(">"))

    _tamper(path, big_endian)
    with np.load(path, allow_pickle=False) as npz:
        assert npz["cluster_centers_"].dtype.str == ">f8"
    loaded = mbk.load(path)
    assert loaded.cluster_centers_.dtype.isnative
    _assert_same_model(loaded, model, X)


def test_the_same_model_gives_the_same_bytes(tmp_path):
    model = _rich_model()[0]
    first, second = _saved(tmp_path, model, "a.npz"), _saved(tmp_path, model, "b.npz")
    assert first.read_bytes() == second.read_bytes()


def test_a_str_and_a_dict_of_arrays_in_the_state_are_stored_by_their_types(tmp_path, monkeypatch):
    # What to_flat will also give (the last fit's stop reason, the history's columns): stored
    # and read back by type, through from_flat, with no change to the format's code.
    extra = {
        "stop_reason_": "max_no_improvement",
        "history_": {
            "batch_inertia": np.array([3.5, 2.25, np.nan]),
            "n_reassigned": np.array([0, 2, 1], dtype=np.int64),
        },
    }
    to_flat, from_flat = SculleyState.to_flat, SculleyState.from_flat
    given = {}

    def from_flat_seen(flat):
        given.update(flat)
        return from_flat({name: value for name, value in flat.items() if name not in extra})

    monkeypatch.setattr(SculleyState, "to_flat", lambda state: {**to_flat(state), **extra})
    monkeypatch.setattr(SculleyState, "from_flat", from_flat_seen)
    monkeypatch.setattr(_model_file, "FLAT_NAMES", (*FLAT_NAMES, *extra))
    path = _saved(tmp_path)
    with np.load(path, allow_pickle=False) as npz:
        assert {"history_/batch_inertia", "history_/n_reassigned"} <= set(npz.files)
    mbk.load(path)
    assert given["stop_reason_"] == "max_no_improvement"
    assert given["history_"].keys() == extra["history_"].keys()
    for name, column in extra["history_"].items():
        assert given["history_"][name].dtype == column.dtype
        assert_array_equal(given["history_"][name], column)


@pytest.mark.parametrize("scale", ["none", "standard"])
def test_preprocessing_is_stored_beside_the_model(tmp_path, scale):
    model, _ = _rich_model()
    preprocessing = {
        "columns": ["a", "b", "c", "d"],
        "scale": scale,
        "means": None if scale == "none" else np.array([0.5, -1.0, 2.0, 1e-300]),
        "scales": None if scale == "none" else [1.0, 2.0, 0.1, 1e300],
    }
    path = tmp_path / "model.npz"
    _model_file.write(path, model, preprocessing=preprocessing)
    loaded, stored = _model_file.read(path)
    if scale == "standard":
        preprocessing["means"] = preprocessing["means"].tolist()
    assert stored == preprocessing
    assert _model_file.read(_saved(tmp_path, loaded, "resaved.npz"))[1] is None


# -- what cannot be saved -----------------------------------------------------------------------


def test_saving_an_unfitted_model_raises_not_fitted(tmp_path):
    with pytest.raises(mbk.NotFittedError):
        mbk.MiniBatchKMeans(3).save(tmp_path / "model.npz")
    assert not os.listdir(tmp_path)


def test_a_callable_init_cannot_be_saved(tmp_path):
    def first_rows(X, n_clusters, random_state):
        return X[:n_clusters]

    model = mbk.MiniBatchKMeans(5, init=first_rows, random_state=0).fit(_data())
    with pytest.raises(ValueError, match=r"init=<function .*first_rows.* is a callable"):
        model.save(tmp_path / "model.npz")
    assert not os.listdir(tmp_path)


def test_what_would_not_load_again_is_not_saved(tmp_path):
    model = mbk.MiniBatchKMeans(5, random_state=0).fit(_data())
    with pytest.raises(mbk.InvalidParameterError, match="tol must be a real number"):
        model.set_params(tol="small").save(tmp_path / "model.npz")
    model.set_params(tol=0.0, random_state=np.random.RandomState(np.random.PCG64(0)))
    with pytest.raises(ValueError, match="a RandomState on PCG64; model files store MT19937"):
        model.save(tmp_path / "model.npz")
    assert not os.listdir(tmp_path)


GOOD_PREPROCESSING = {
    "columns": ["a", "b", "c", "d"],
    "scale": "standard",
    "means": [0.0] * 4,
    "scales": [1.0] * 4,
}


def _with(**changes):
    return lambda good: good | changes


BAD_PREPROCESSING = {
    "not-a-dict": (lambda good: "standard", "must be None or a dict"),
    "a-key-missing": (
        lambda good: {name: good[name] for name in ("columns", "scale", "means")},
        "with the keys columns, scale, means and scales",
    ),
    "columns-short": (_with(columns=["a", "b"]), "columns must be 4 str"),
    "columns-not-str": (_with(columns=[1, 2, 3, 4]), "columns must be 4 str"),
    "scale-unknown": (_with(scale="minmax"), "scale must be 'none' or 'standard'"),
    "means-short": (_with(means=[0.0] * 3), "means must be 4 finite numbers"),
    "means-nan": (_with(means=[0.0, np.nan, 0.0, 0.0]), "means must be 4 finite numbers"),
    "means-inf": (_with(means=[0.0, np.inf, 0.0, 0.0]), "means must be 4 finite numbers"),
    "means-bool": (_with(means=[True] * 4), "means must be 4 finite numbers"),
    "scales-zero": (_with(scales=[1.0, 0.0, 1.0, 1.0]), "scales must be 4 > 0 numbers"),
    "scales-negative": (_with(scales=[1.0, -1.0, 1.0, 1.0]), "scales must be 4 > 0 numbers"),
    "scales-missing": (_with(scales=None), "scales must be 4 > 0 numbers"),
    "means-with-none": (_with(scale="none", scales=None), "means must be None with scale"),
}
# (strict JSON has no NaN or infinity: such a file is refused before its preprocessing is read)
NOT_JSON = {"means-nan", "means-inf"}


@pytest.mark.parametrize("case", list(BAD_PREPROCESSING))
def test_bad_preprocessing_is_refused_on_writing_and_on_reading(tmp_path, case):
    change, message = BAD_PREPROCESSING[case]
    preprocessing = change(dict(GOOD_PREPROCESSING))
    with pytest.raises(ValueError, match=message):
        _model_file.write(tmp_path / "model.npz", RICH, preprocessing=preprocessing)
    assert not os.listdir(tmp_path)
    path = _saved(tmp_path, RICH)
    _tamper(path, _meta(lambda metadata: metadata.update(preprocessing=preprocessing)))
    _load_fails(path, "not strict JSON" if case in NOT_JSON else message)


# -- atomic writes ------------------------------------------------------------------------------


def test_saving_replaces_an_existing_file_only_when_it_is_done(tmp_path, monkeypatch):
    X = _data()
    old = mbk.MiniBatchKMeans(5, random_state=0).fit(X)
    new = mbk.MiniBatchKMeans(5, random_state=1).fit(X)
    path = _saved(tmp_path, old)
    before = path.read_bytes()
    write_entry, written = _model_file._write_entry, []

    def fail_at_the_second_entry(archive, name, array):
        if written:
            raise OSError("no space left on device")
        written.append(name)
        write_entry(archive, name, array)

    monkeypatch.setattr(_model_file, "_write_entry", fail_at_the_second_entry)
    with pytest.raises(OSError, match="no space left"):
        new.save(path)
    assert written == ["metadata"]  # the fault came mid-write
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.npz"]  # no temporary file left behind
    assert_array_equal(mbk.load(path).cluster_centers_, old.cluster_centers_)
    monkeypatch.undo()
    new.save(path)
    assert_array_equal(mbk.load(path).cluster_centers_, new.cluster_centers_)
    assert os.listdir(tmp_path) == ["model.npz"]


def test_writing_without_overwrite_leaves_an_existing_file(tmp_path):
    model = _rich_model()[0]
    path = tmp_path / "model.npz"
    path.write_bytes(b"a user's file")
    with pytest.raises(_files.OutputExists):
        _model_file.write(path, model, overwrite=False)
    assert path.read_bytes() == b"a user's file"


# -- every entry tampered with ------------------------------------------------------------------

UNPICKLED = []


def _unpickled():
    UNPICKLED.append(True)
    return "ran"


class _Payload:
    """What a pickle in a tampered file would run when unpickled."""

    def __reduce__(self):
        return _unpickled, ()


def _with_an_axis(metadata, arrays, entry):
    arrays[entry] = arrays[entry][np.newaxis]
    return arrays[entry]


def _changes(entry):
    """entry -> (change(metadata, arrays), what the message says), for each corruption that
    leaves the entry's record as it was."""

    def declare(metadata, array):
        record = _record_of(metadata, entry)
        if record is not None:  # the record says what the entry holds, consistently
            record["shape"] = list(array.shape)
            record["dtype"] = "str" if array.dtype.kind == "U" else array.dtype.name

    def removed(metadata, arrays):
        del arrays[entry]

    def extra(metadata, arrays):
        arrays[f"{entry}.copy"] = arrays[entry]

    def other_shape(metadata, arrays):
        _with_an_axis(metadata, arrays, entry)

    def other_dtype(metadata, arrays):
        arrays[entry] = np.zeros(arrays[entry].shape, dtype=np.int16)

    def declared_shape(metadata, arrays):
        declare(metadata, _with_an_axis(metadata, arrays, entry))

    def declared_dtype(metadata, arrays):
        arrays[entry] = np.ones(arrays[entry].shape, dtype=bool)
        declare(metadata, arrays[entry])

    def pickled(metadata, arrays):
        arrays[entry] = np.array([_Payload()] * max(arrays[entry].size, 1), dtype=object)

    def truncated(metadata, arrays):
        out = io.BytesIO()
        np.lib.format.write_array(out, arrays.pop(entry))
        arrays[f"{entry}.npy"] = out.getvalue()[:-1]

    named = f"{entry!r}"
    return {
        "removed": (removed, (f"the entry {named} is missing",)),
        "extra": (extra, (f"entries its metadata does not name: {entry}.copy",)),
        "other-shape": (other_shape, (f"the entry {named} holds", ", not ")),
        "other-dtype": (other_dtype, (f"the entry {named} holds int16", ", not ")),
        "declared-shape": (declared_shape, (_field(entry),)),
        "declared-dtype": (declared_dtype, (_field(entry),)),
        "pickled": (pickled, (f"the entry {named} holds Python objects (a pickle)",)),
        "truncated": (truncated, (f"the entry {named} is truncated",)),
    }


CHANGES = list(_changes("any"))


@pytest.mark.parametrize("change", CHANGES)
@pytest.mark.parametrize("entry", ENTRIES)
def test_a_tampered_entry_is_refused_naming_the_problem(tmp_path, entry, change):
    path = _saved(tmp_path)
    corrupt, fragments = _changes(entry)[change]
    _tamper(path, lambda metadata, arrays: corrupt(metadata, arrays))
    _load_fails(path, *fragments)
    assert not UNPICKLED


@pytest.mark.parametrize("entry", ENTRIES)
def test_nan_and_negative_values_are_refused_where_a_model_has_none(tmp_path, entry):
    path = _saved(tmp_path)
    metadata, arrays = _read_members(path)
    kind = arrays[entry].dtype.kind
    for value, applies, allowed in (
        (np.nan, kind == "f", NAN_IS_A_VALUE),
        (-1, kind in "if", MAY_BE_NEGATIVE),
    ):
        if not applies:
            continue

        def set_first(metadata, arrays, value=value):
            arrays[entry] = arrays[entry].copy()
            arrays[entry].flat[0] = value

        tampered = tmp_path / f"{value}.npz"
        tampered.write_bytes(path.read_bytes())
        _tamper(tampered, set_first)
        if entry in allowed:
            mbk.load(tampered)
        else:
            _load_fails(tampered, _field(entry))


def _set(entry, value):
    def change(metadata, arrays):
        arrays[entry] = arrays[entry].copy()
        arrays[entry].flat[-1] = value

    return change


def _key_of_zeros(metadata, arrays):
    arrays["_random_state/key"] = np.zeros(624, dtype=np.uint32)


def _raw_metadata(text):
    def change(metadata, arrays):
        arrays["metadata"] = np.frombuffer(text, dtype=np.uint8)

    return change


OUT_OF_RANGE = {
    "centers-inf": (_set("cluster_centers_", np.inf), "cluster_centers_ must be C-ordered and"),
    "label-too-large": (_set("labels_", 5), "labels_ must be int32 labels of the centers"),
    "key-zeros": (_key_of_zeros, "its MT19937 key is all zeros"),
    "init-inf": (_set("params/init", -np.inf), "init centers must be a 2-D array of finite"),
    "metadata-not-utf8": (_raw_metadata(b'{"format": "\xff"}'), "not JSON in UTF-8"),
    "metadata-not-json": (_raw_metadata(b"{format: 1}"), "not JSON in UTF-8"),
    "metadata-nan-token": (
        _raw_metadata(b'{"format": "mbk-model", "format_version": NaN}'),
        "not strict JSON (it has NaN)",
    ),
    "metadata-repeated-key": (
        _raw_metadata(b'{"format": "mbk-model", "format": "mbk-model"}'),
        "repeats a key",
    ),
    "metadata-a-list": (_raw_metadata(b"[1, 2]"), "does not say format 'mbk-model'"),
}


def _tampered_file_fails(tmp_path, change, message):
    path = _saved(tmp_path)
    _tamper(path, change)
    _load_fails(path, message)


@pytest.mark.parametrize("case", list(OUT_OF_RANGE))
def test_values_out_of_range_are_refused(tmp_path, case):
    _tampered_file_fails(tmp_path, *OUT_OF_RANGE[case])


# -- the metadata's fields tampered with -------------------------------------------------------


def _meta(change):
    def apply(metadata, arrays):
        change(metadata)

    return apply


def _stream(**fields):
    return _meta(lambda metadata: metadata["state"]["_random_state"].update(fields))


def _without(name):
    """The state without a field: its record and its entry."""

    def change(metadata, arrays):
        del metadata["state"][name], arrays[name]

    return change


def _param(name, record):
    """A parameter's record replaced (the entries of the old one dropped)."""

    def change(metadata, arrays):
        metadata["params"][name] = record
        for entry in [entry for entry in arrays if entry.startswith(f"params/{name}/")]:
            del arrays[entry]

    return change


METADATA = {
    "format-other": (_meta(lambda m: m.update(format="npz")), "does not say format 'mbk-model'"),
    "version-zero": (_meta(lambda m: m.update(format_version=0)), "format_version must be"),
    "version-str": (_meta(lambda m: m.update(format_version="1")), "format_version must be"),
    "version-bool": (_meta(lambda m: m.update(format_version=True)), "format_version must be"),
    "key-missing": (_meta(lambda m: m.pop("dtype")), "(missing: dtype; unknown: -)"),
    "key-unknown": (_meta(lambda m: m.update(note="hi")), "(missing: -; unknown: note)"),
    "mbk-version-int": (_meta(lambda m: m.update(mbk_version=1)), "mbk_version must be a str"),
    "class-other": (_meta(lambda m: m.update({"class": "KMeans"})), "holds a 'KMeans', not"),
    "dtype-other": (_meta(lambda m: m.update(dtype="float32")), "says dtype 'float32', but"),
    "dtype-unknown": (_meta(lambda m: m.update(dtype="float16")), "dtype must be 'float32'"),
    "params-a-list": (_meta(lambda m: m.update(params=[])), "its params must be a JSON object"),
    "param-unknown": (_param("colour", {"type": "str", "value": "red"}), "Invalid parameter"),
    "param-bad-value": (
        _param("n_clusters", {"type": "int", "value": 0}),
        "its parameters are refused: n_clusters must be >= 1",
    ),
    "param-bad-type": (
        _param("compute_labels", {"type": "int", "value": 1}),
        "compute_labels must be a bool",
    ),
    "param-bad-algorithm": (
        _param("algorithm", {"type": "str", "value": "lloyd"}),
        "algorithm must be 'sculley' or 'nested'",
    ),
    "param-nan": (_param("tol", {"type": "float", "value": "nan"}), "tol must be finite"),
    "param-seed": (
        _param("random_state", {"type": "int", "value": 2**40}),
        "random_state must be between 0 and 2**32 - 1",
    ),
    "param-record-key": (
        _param("tol", {"type": "float", "value": 0.0, "x": 1}),
        "a float record has the keys type, value; got type, value, x",
    ),
    "param-record-type": (
        _param("tol", {"type": "complex", "value": 0.0}),
        "its record's type 'complex' is not one of none, bool",
    ),
    "param-columns": (
        _param("init", {"type": "columns", "columns": {}}),
        "params 'init': a parameter is never a dict of arrays",
    ),
    "param-same-as": (
        _param("random_state", {"type": "random_state", "same_as": "nothing"}),
        "same_as must name a random state stored before it",
    ),
    "stream-pos-high": (_stream(pos=625), "pos must be an int in 0..624; got 625"),
    "stream-pos-negative": (_stream(pos=-1), "pos must be an int in 0..624; got -1"),
    "stream-pos-float": (_stream(pos=3.0), "pos must be an int in 0..624; got 3.0"),
    "stream-gauss-flag": (_stream(has_gauss=2), "has_gauss must be 0 or 1; got 2"),
    "stream-gauss-inf": (_stream(cached_gaussian="inf"), "cached_gaussian must be a finite"),
    "stream-generator": (_stream(bit_generator="PCG64"), "bit_generator must be 'MT19937'"),
    "stream-field-missing": (
        _meta(lambda m: m["state"]["_random_state"].pop("pos")),
        "a random_state record has the keys",
    ),
    "state-field-unknown": (
        _meta(lambda m: m["state"].update(colour={"type": "none"})),
        f"its state has fields this mbk ({mbk.__version__}) does not know: colour (it was "
        f"written by mbk {mbk.__version__})",
    ),
    "state-counts-missing": (_without("_counts"), "the running weight per center"),
    "state-centers-missing": (_without("cluster_centers_"), "cluster_centers_ is not a float"),
    "state-columns-not-arrays": (
        _meta(lambda m: m["state"].update(history_={"type": "columns", "columns": {"a": 1}})),
        "column 'a' must be an array record",
    ),
}


@pytest.mark.parametrize("case", list(METADATA))
def test_tampered_metadata_is_refused_naming_the_problem(tmp_path, case):
    _tampered_file_fails(tmp_path, *METADATA[case])


def test_a_file_of_a_newer_format_version_says_which_versions(tmp_path):
    path = _saved(tmp_path)
    _tamper(path, _meta(lambda m: m.update(format_version=2, layout="something new")))
    with pytest.raises(ValueError) as raised:
        mbk.load(path)
    assert str(raised.value) == (
        f"{path} is an mbk model file of format version 2: this mbk ({mbk.__version__}) reads "
        "model files of format version 1 and older; upgrade mbk to load it"
    )


SCALARS = [name for name, value in RICH_STATE.items() if isinstance(value, (int, float, str))]
IMPOSSIBLE = {"int": -1, "float": "nan", "str": "no such value"}


@pytest.mark.parametrize("name", SCALARS)
def test_an_impossible_number_in_the_state_is_refused(tmp_path, name):
    path = _saved(tmp_path)

    def change(metadata):
        record = metadata["state"][name]
        record["value"] = IMPOSSIBLE[record["type"]]

    _tamper(path, _meta(change))
    _load_fails(path, "its fitted state is impossible", name)


@pytest.mark.parametrize("name", list(RICH_STATE))
def test_a_state_record_of_the_wrong_type_is_refused(tmp_path, name):
    path = _saved(tmp_path)
    _tamper(path, _meta(lambda m: m["state"].update({name: {"type": "int", "value": "3"}})))
    _load_fails(path, f"state {name!r}: a record of type int needs a JSON int value")


# -- not a model file at all --------------------------------------------------------------------


@pytest.mark.parametrize(
    "keep", [0.0, 0.1, 0.5, 0.9, -1], ids=["empty", "10%", "50%", "90%", "all-but-1"]
)
def test_a_truncated_file_is_refused(tmp_path, keep):
    path = _saved(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 1 if keep == -1 else int(len(data) * keep)])
    message = _load_fails(path)
    assert "not a zip archive" in message or "damaged or truncated" in message


@pytest.mark.parametrize("kind", ["text", "npy", "pickle"])
def test_a_file_of_another_kind_is_refused(tmp_path, kind):
    path = tmp_path / "model.npz"
    if kind == "text":
        path.write_text("cluster_centers_ = [[1, 2]]\n")
    elif kind == "npy":
        with open(path, "wb") as out:  # (np.save would add .npy to a name)
            np.save(out, np.zeros((2, 2)), allow_pickle=False)
    else:
        path.write_bytes(pickle.dumps(_Payload()))
    _load_fails(path, "it is not a zip archive")
    assert not UNPICKLED


def test_a_damaged_member_is_refused(tmp_path):
    path = _saved(tmp_path)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        member = archive.getinfo("cluster_centers_.npy")
    # The member's data starts after its local header (30 bytes, the name, the extra field).
    start = member.header_offset + 30 + len(member.filename) + len(member.extra)
    data[start + member.compress_size - 2] ^= 0xFF
    path.write_bytes(bytes(data))
    message = _load_fails(path, "'cluster_centers_'")
    assert "is damaged" in message or "is not a readable .npy array" in message


def test_an_entry_stored_twice_is_refused(tmp_path):
    path = _saved(tmp_path)
    _, arrays = _read_members(path)
    _write_members(path, [*arrays.items(), ("cluster_centers_", arrays["cluster_centers_"])])
    _load_fails(path, "it has an entry twice: cluster_centers_")


def test_a_file_that_is_not_there_raises_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        mbk.load(tmp_path / "missing.npz")

"""arrayloss.io: chunked readers give np.load's numbers for every format, every
malformed file is a DataError naming it, and the writers round-trip (the outputs' atomicity is `Outputs`', tested in test_output.py)."""

from __future__ import annotations

import gzip
import os
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from arrayloss import io as alio


def _read_all(src: alio.Source, chunk: int) -> np.ndarray:
    parts = []
    while True:
        part = src.read(chunk)
        if part.shape[0] == 0:
            break
        assert part.shape[0] <= chunk
        parts.append(part)
    src.close()
    return np.concatenate(parts)


@pytest.fixture
def arr(rng):
    return rng.normal(size=(53, 6))


# --------------------------------------------------------------------------- #
# .npy / .npz
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("chunk", [1, 7, 53, 1000])
@pytest.mark.parametrize(
    "variant",
    ["c", "fortran", "big-endian", "float32", "int16", "npz", "npz-compressed"],
)
def test_npy_and_npz_round_trip(tmp_path, arr, chunk, variant):
    a = {
        "c": arr,
        "fortran": np.asfortranarray(arr),
        "big-endian": arr.astype(">f8"),
        "float32": arr.astype(np.float32),
        "int16": (arr * 100).astype(np.int16),
    }.get(variant, arr)
    if variant.startswith("npz"):
        path = str(tmp_path / "a.npz")
        save = np.savez_compressed if variant == "npz-compressed" else np.savez
        save(path, other=np.zeros(3), logits=a)
    else:
        path = str(tmp_path / "a.npy")
        np.save(path, a)
    src = alio.open_array(path, "scores")
    assert (src.n_rows, src.n_cols) == a.shape
    out = _read_all(src, chunk)
    np.testing.assert_array_equal(out, a)
    assert out.dtype.str[1:] == a.dtype.str[1:]  # concatenate makes it native-endian


def test_npy_labels_shapes(tmp_path):
    y = np.arange(10)
    for shape in [(10,), (10, 1)]:
        np.save(tmp_path / "y.npy", y.reshape(shape))
        src = alio.open_array(str(tmp_path / "y.npy"), "labels")
        np.testing.assert_array_equal(_read_all(src, 3), y)
    np.save(tmp_path / "y.npy", np.array(["cat", "dog"]))
    src = alio.open_array(str(tmp_path / "y.npy"), "labels")
    assert _read_all(src, 1).tolist() == ["cat", "dog"]


def test_npz_keys(tmp_path, arr):
    path = str(tmp_path / "a.npz")
    np.savez(path, first=arr, second=arr)
    with pytest.raises(
        alio.DataError, match=r"no array of scores by a usual name .*--scores-key"
    ):
        alio.open_array(path, "scores")
    with pytest.raises(
        alio.DataError, match=r"has no array 'third' \(it has 'first', 'second'\)"
    ):
        alio.open_array(path, "scores", key="third")
    src = alio.open_array(path, "scores", key="second")
    np.testing.assert_array_equal(_read_all(src, 10), arr)
    np.savez(path, only=arr)
    with alio.open_array(path, "scores") as src:
        assert src.n_rows == 53


@pytest.mark.parametrize(
    ("make", "message"),
    [
        ("missing", r"cannot read SCORES '.*nope.npy': No such file or directory"),
        (
            "truncated",
            r"is truncated: its header says shape \(53, 6\) \(2544 bytes of data\) but only 1000",
        ),
        ("garbage", r"is not a valid .npy file"),
        ("empty", r"is empty \(0 bytes\), not an .npy file"),
        ("object", r"holds Python objects"),
        ("3d", r"must be a 2-D array \(rows, classes\); its shape is \(2, 3, 4\)"),
        ("complex", r"has dtype complex128, which cannot hold scores"),
        ("npz-garbage", r"is not a valid .npz file"),
        (
            "negative-rows",
            r"not a valid .npy file \(negative dimension in shape \(-1, 6\)",
        ),
        (
            "negative-cols",
            r"not a valid .npy file \(negative dimension in shape \(53, -6\)",
        ),
        (
            "version-9",
            r"not a valid .npy file \(format version 9.0, which NumPy does not",
        ),
    ],
)
def test_npy_errors(tmp_path, arr, make, message):
    path = tmp_path / ("a.npz" if make.startswith("npz") else "a.npy")
    if make == "missing":
        path = tmp_path / "nope.npy"
    elif make == "truncated":
        np.save(path, arr)
        data = path.read_bytes()
        path.write_bytes(data[: 128 + 1000])
    elif make in ("garbage", "npz-garbage"):
        path.write_bytes(b"this is not numpy" * 10)
    elif make == "empty":
        path.write_bytes(b"")
    elif make == "object":
        np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    elif make == "3d":
        np.save(path, np.zeros((2, 3, 4)))
    elif make == "complex":
        np.save(path, arr.astype(complex))
    elif make.startswith("negative"):
        np.save(path, arr)
        data = path.read_bytes()
        bad = b"(-1, 6), }" if make == "negative-rows" else b"(53, -6)} "
        path.write_bytes(data.replace(b"(53, 6), }", bad, 1))
    elif make == "version-9":
        np.save(path, arr)
        path.write_bytes(path.read_bytes().replace(b"NUMPY\x01", b"NUMPY\x09", 1))
    with pytest.raises(alio.DataError, match=message):
        alio.open_array(str(path), "scores")


def test_npy_format_version_3_is_read(tmp_path, arr):
    """Version 3.0 (a UTF-8 header) is a valid .npy file, read like the others."""
    path = tmp_path / "a.npy"
    with open(path, "wb") as f:
        np.lib.format.write_array(f, arr, version=(3, 0))
    np.testing.assert_array_equal(
        _read_all(alio.open_array(str(path), "scores"), 7), arr
    )


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
@pytest.mark.parametrize("cut", [0, 100])
def test_npy_from_a_pipe_is_streamed(tmp_path, arr, cut):
    """A named pipe of .npy bytes is read as a stream (no size, no seek): it was
    'cannot use: Illegal seek', naming no file; a short one is truncated."""
    import threading

    path = tmp_path / "s.npy"
    os.mkfifo(path)
    np.save(tmp_path / "a.npy", arr)
    data = (tmp_path / "a.npy").read_bytes()
    data = data[: len(data) - cut]

    def feed():
        with open(path, "wb") as f:
            f.write(data)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        with alio.open_array(str(path), "scores") as src:
            if cut:
                with pytest.raises(
                    alio.DataError, match=r"s.npy' is truncated: it ends"
                ):
                    _read_all(src, 7)
            else:
                np.testing.assert_array_equal(_read_all(src, 7), arr)
    finally:
        writer.join(30)


def test_truncated_zip_member_detected_while_reading(tmp_path, arr):
    """A stream whose size is not known ahead still fails cleanly at the end."""
    import io

    from arrayloss.io._npy import _NpyStream

    buf = io.BytesIO()
    np.save(buf, arr)
    raw = io.BytesIO(buf.getvalue()[:-100])
    src = _NpyStream(raw, "SCORES 'x'", "scores", available=None)
    with pytest.raises(
        alio.DataError, match=r"SCORES 'x' is truncated: it ends in row 50 of 53"
    ):
        _read_all(src, 10)


# --------------------------------------------------------------------------- #
# Text
# --------------------------------------------------------------------------- #


def _write_csv(path, arr, labels=None, header=True, delimiter=","):
    lines = []
    if header:
        names = [f"c{j}" for j in range(arr.shape[1])] + (
            ["label"] if labels is not None else []
        )
        lines.append(delimiter.join(names))
    for i, row in enumerate(arr):
        cells = [repr(float(v)) for v in row]
        if labels is not None:
            cells.append(str(labels[i]))
        lines.append(delimiter.join(cells))
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("header", [True, False])
@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
def test_text_scores(tmp_path, arr, header, suffix):
    path = tmp_path / f"s{suffix}"
    _write_csv(path, arr, header=header, delimiter="\t" if suffix == ".tsv" else ",")
    scores, labels = alio.open_table(str(path))
    assert labels is None
    assert scores.n_cols == 6
    np.testing.assert_array_equal(_read_all(scores, 7), arr)


@pytest.mark.parametrize("column", ["label", "6", "-1"])
def test_text_label_column(tmp_path, arr, column):
    names = np.array(["cat", "dog", "emu"])[np.arange(53) % 3]
    path = tmp_path / "s.csv"
    _write_csv(path, arr, labels=names, header=column == "label")
    scores, labels = alio.open_table(str(path), alio.TableSpec(label_column=column))
    got_s, got_l = [], []
    with scores:
        while True:
            s = scores.read(10)
            lab = labels.read(10)
            assert len(s) == len(lab)
            if not len(s):
                break
            got_s.append(s)
            got_l.append(lab)
    np.testing.assert_array_equal(np.concatenate(got_s), arr)
    assert np.concatenate(got_l).tolist() == names.tolist()


def test_text_blank_lines_bom_and_spaces(tmp_path):
    path = tmp_path / "s.csv"
    path.write_bytes("\ufeffa,b,label\n\n1.5, 2,cat\n\n3,4, dog\n\n".encode())
    scores, labels = alio.open_table(str(path), alio.TableSpec(label_column="label"))
    with scores:
        np.testing.assert_array_equal(scores.read(10), [[1.5, 2], [3, 4]])
        assert labels.read(10).tolist() == ["cat", "dog"]


@pytest.mark.parametrize(
    ("drop", "kept"),
    [(("junk*",), [[1, 2], [5, 6]]), (("junk1:junk2",), [[1, 2], [5, 6]]),
     (("2:4",), [[1, 2], [5, 6]]), (("junk2", "junk1"), [[1, 2], [5, 6]]),
     (("a,junk2",), [[2, 3], [6, 7]])],
)  # fmt: skip
def test_text_drop_columns_take_a_column_spec(tmp_path, drop, kept):
    """--drop-column takes the specs of --score-columns in text as it does in
    Parquet and Feather (a pattern or a range was 'no column named')."""
    path = tmp_path / "s.csv"
    path.write_text("a,b,junk1,junk2\n1,2,3,4\n5,6,7,8\n")
    got = _open_and_read(str(path), drop_columns=drop)
    np.testing.assert_array_equal(got, kept)


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        ("a,b\n1,2\n3\n", {}, r"line 3: expected 2 fields, found 1 \(ragged rows\)"),
        ("a,b\n1,2\n3,x\n", {}, r"line 3, column 'b': 'x' is not a number"),
        ("1,2\n3,\n", {"header": False}, r"line 2, column 1: an empty cell$"),
        # the file's column numbers, not those among the score columns
        ("0,1,2\n1,3,x\n", {"label_column": "0"}, r"line 2, column 2: 'x' is not"),
        ("1,2,3\n4,5,x\n", {"drop_columns": ("1",)}, r"line 2, column 2: 'x' is not"),
        ("1,2,3\n4,5,x\n", {"score_columns": "2,0"}, r"line 2, column 2: 'x' is not"),
        (
            "1,0.5,0.5\n2,1,x\n",
            {"label_column": "1:", "soft": True, "score_columns": "0"},
            r"line 2, column 2: 'x' is not",
        ),
        ("", {}, r"SCORES '.*s.csv' is empty"),
        (
            "a,b\n1,2\n",
            {"label_column": "y"},
            r"has no column named 'y' \(columns: a, b\)",
        ),
        ("1,2\n", {"label_column": "5"}, r"has 2 columns; column 5 is out of range"),
        ("label\ncat\n", {"label_column": "label"}, r"has no score columns"),
        (
            "a,y,y\n1,0,1\n",
            {"label_column": "y"},
            r"2 columns named 'y' \(columns 1, 2\)",
        ),
        ("a,a,y\n1,0,1\n", {"drop_columns": ("a",)}, r"2 columns named 'a'"),
        (  # a delimiter at the end of every line: the hint names the column
            "0.1,0.9,\n0.5,0.5,\n",
            {"header": False},
            r"line 1, column 2: an empty cell \(a delimiter at the end of each line "
            r"makes an empty last column: --drop-column 2 leaves it out\)$",
        ),
    ],
)
def test_text_errors(tmp_path, text, kwargs, message):
    path = tmp_path / "s.csv"
    path.write_text(text)
    with pytest.raises(alio.DataError, match=message):
        _open_and_read(str(path), **kwargs)


@pytest.mark.parametrize("delimiter", [None, ","])
@pytest.mark.parametrize("bad_line", [2, 31, 4000])
def test_text_that_is_not_utf8_names_its_line(tmp_path, bad_line, delimiter):
    """The line of the first byte that is not UTF-8, not that of the block of
    text being decoded (line 1 for a bad byte in the first 8 KB)."""
    lines = [b"0.25,0.5,0.25"] * 5000
    lines[bad_line - 1] = b"0.25,0.5,\xe9"
    path = tmp_path / "s.csv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    pattern = rf"SCORES '.*s.csv' line {bad_line}: byte 0xe9 is not UTF-8 text"
    with pytest.raises(alio.DataError, match=pattern):
        _open_and_read(str(path), delimiter=delimiter)
    labels = tmp_path / "y.txt"
    labels.write_bytes(b"\n".join([b"0"] * (bad_line - 1) + [b"\xff"] + [b"1"] * 9))
    pattern = rf"LABELS '.*y.txt' line {bad_line}: byte 0xff is not UTF-8 text"
    with pytest.raises(alio.DataError, match=pattern):
        _read_all(alio.open_array(str(labels), "labels"), 7)


@pytest.mark.parametrize("long_line", [1, 300])
def test_line_without_an_end_is_an_error_not_unbounded_memory(
    tmp_path, monkeypatch, long_line
):
    """/dev/zero, or gigabytes of NULs named .csv: no line end ever comes, and
    the reader held it all (killed for memory); a line longer than the limit is
    an error naming it."""
    from arrayloss.io import _text

    monkeypatch.setattr(_text, "MAX_LINE", 1000)
    lines = ["0.25,0.75"] * 400
    lines[long_line - 1] = "\0" * 5000
    path = tmp_path / "s.csv"
    path.write_text("\n".join(lines) + "\n")
    pattern = rf"SCORES '.*s.csv' line {long_line}: longer than 1000 characters"
    for delimiter in (None, ","):
        with pytest.raises(alio.DataError, match=pattern):
            _open_and_read(str(path), delimiter=delimiter, header=False)


@pytest.mark.parametrize(
    ("head", "what"),
    [
        (gzip.compress(b"1,2\n3,4\n"), "gzip-compressed"),
        (b"PAR1\x15\x04\x15\x80", "a Parquet file"),
        (b"\x93NUMPY\x01\x00v\x00{", "a NumPy .npy file"),
        ("a,b\n1,2\n".encode("utf-16"), "UTF-16 text"),
    ],
    ids=["gzip", "parquet", "npy", "utf-16"],
)
def test_binary_file_named_as_text_says_what_it_is(tmp_path, head, what):
    path = tmp_path / "s.csv"
    path.write_bytes(head + bytes(range(128, 256)))
    with pytest.raises(alio.DataError, match=rf"SCORES '.*s.csv' is {what}"):
        _open_and_read(str(path))


def _open_and_read(path, **kwargs):
    scores, _ = alio.open_table(path, alio.TableSpec(**kwargs))
    with scores:
        return _read_all(scores, 10)


def test_text_vectors(tmp_path):
    (tmp_path / "y.txt").write_text("label\n1\n2\n0\n")
    src = alio.open_array(str(tmp_path / "y.txt"), "labels")
    assert _read_all(src, 2).tolist() == ["1", "2", "0"]
    (tmp_path / "y.csv").write_text("cat\ndog\n")  # a class name is data, not a header
    src = alio.open_array(
        str(tmp_path / "y.csv"), "labels", spec=alio.TableSpec(classes=("cat", "dog"))
    )
    assert _read_all(src, 2).tolist() == ["cat", "dog"]
    (tmp_path / "w.csv").write_text("weight\n0.5\n2\n")
    src = alio.open_array(str(tmp_path / "w.csv"), "weights")
    np.testing.assert_array_equal(_read_all(src, 5), [0.5, 2.0])
    (tmp_path / "two.csv").write_text("id,label\n7,1\n8,0\n")
    with pytest.raises(
        alio.DataError,
        match=r"has 2 columns; one column of labels is needed \(say which with --label-column; ",
    ):
        alio.open_array(str(tmp_path / "two.csv"), "labels")
    src = alio.open_array(
        str(tmp_path / "two.csv"), "labels", spec=alio.TableSpec(label_column="label")
    )
    assert _read_all(src, 5).tolist() == ["1", "0"]


# --------------------------------------------------------------------------- #
# Labels
# --------------------------------------------------------------------------- #


def test_label_indices():
    kw = {"n_classes": 3, "classes": None, "start": 10, "label": "LABELS 'y'"}
    np.testing.assert_array_equal(
        alio.label_indices(np.array([0, 2, 1], np.uint8), **kw), [0, 2, 1]
    )
    np.testing.assert_array_equal(
        alio.label_indices(np.array([0.0, 2.0]), **kw), [0, 2]
    )
    np.testing.assert_array_equal(
        alio.label_indices(np.array(["2", "0", "1.0"]), **kw), [2, 0, 1]
    )
    named = {**kw, "classes": ("a", "b", "c")}
    np.testing.assert_array_equal(
        alio.label_indices(np.array(["c", "a", "c"]), **named), [2, 0, 2]
    )
    np.testing.assert_array_equal(alio.label_indices(np.array([b"b"]), **named), [1])
    with pytest.raises(
        alio.DataError,
        match=r"LABELS 'y' row 11: label 3 is out of range for 3 classes \(0 to 2\)",
    ):
        alio.label_indices(np.array([0, 3]), **kw)
    with pytest.raises(alio.DataError, match=r"row 10: label -1 is out of range"):
        alio.label_indices(np.array([-1]), **kw)
    with pytest.raises(
        alio.DataError, match=r"row 11: 1.5 is not an integer class index"
    ):
        alio.label_indices(np.array([1.0, 1.5]), **kw)
    with pytest.raises(
        alio.DataError, match=r"row 12: 'emu' is not one of the --classes"
    ):
        alio.label_indices(np.array(["a", "b", "emu"]), **named)
    with pytest.raises(
        alio.DataError,
        match=r"row 10: 'cat' is not a class index; for class names, give --classes",
    ):
        alio.label_indices(np.array(["cat"]), **kw)


def test_classes_from(tmp_path):
    assert alio.classes_from("a, b,c") == ("a", "b", "c")
    (tmp_path / "names.txt").write_text("cat\ndog\n\n")
    assert alio.classes_from(str(tmp_path / "names.txt")) == ("cat", "dog")
    (tmp_path / "latin.txt").write_bytes(b"ant\nb\xe9e\ncat\n")
    with pytest.raises(
        alio.DataError, match=r"--classes '.*latin.txt' line 2: byte 0xe9 is not UTF-8"
    ):
        alio.classes_from(str(tmp_path / "latin.txt"))


# --------------------------------------------------------------------------- #
# Reading in step
# --------------------------------------------------------------------------- #


def test_iter_aligned(tmp_path, arr):
    np.save(tmp_path / "s.npy", arr)
    np.save(tmp_path / "y.npy", np.arange(53) % 6)
    np.save(tmp_path / "w.npy", np.ones(53))
    s = alio.open_array(str(tmp_path / "s.npy"), "scores")
    y = alio.open_array(str(tmp_path / "y.npy"), "labels")
    w = alio.open_array(str(tmp_path / "w.npy"), "weights")
    with s, y, w:
        chunks = list(alio.iter_aligned(s, y, w, 10))
    assert [c.start for c in chunks] == [0, 10, 20, 30, 40, 50]
    np.testing.assert_array_equal(np.concatenate([c.scores for c in chunks]), arr)
    assert sum(len(c.weights) for c in chunks) == 53


def test_iter_aligned_mismatch(tmp_path, arr):
    np.save(tmp_path / "s.npy", arr)
    np.save(tmp_path / "y.npy", np.zeros(50, int))
    s = alio.open_array(str(tmp_path / "s.npy"), "scores")
    y = alio.open_array(str(tmp_path / "y.npy"), "labels")
    with (
        s,
        y,
        pytest.raises(
            alio.DataError,
            match=r"SCORES '.*s.npy' has 53 rows but LABELS '.*y.npy' has 50",
        ),
    ):
        list(alio.iter_aligned(s, y, None, 10))
    # sizes found only while reading (text): fewer labels, then more labels
    for n_labels, message in [
        (50, r"LABELS '.*y.txt' has 50 rows but SCORES '.*s.npy' has more"),
        (60, r"LABELS '.*y.txt' has more rows than SCORES '.*s.npy' \(53\)"),
    ]:
        (tmp_path / "y.txt").write_text("\n".join(["0"] * n_labels) + "\n")
        s = alio.open_array(str(tmp_path / "s.npy"), "scores")
        y = alio.open_array(str(tmp_path / "y.txt"), "labels")
        with s, y, pytest.raises(alio.DataError, match=message):
            list(alio.iter_aligned(s, y, None, 10))
    np.save(tmp_path / "e.npy", np.zeros((0, 3)))
    np.save(tmp_path / "y.npy", np.zeros(0, int))
    s = alio.open_array(str(tmp_path / "e.npy"), "scores")
    y = alio.open_array(str(tmp_path / "y.npy"), "labels")
    with s, y, pytest.raises(alio.DataError, match=r"has no rows"):
        list(alio.iter_aligned(s, y, None, 10))


# --------------------------------------------------------------------------- #
# Writers
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("suffix", [".npy", ".csv", ".tsv"])
def test_writers_round_trip(tmp_path, rng, suffix):
    block = rng.normal(size=(25, 2)) * 1e3
    path = str(tmp_path / f"p{suffix}")
    if suffix == ".npy":
        w = alio.NpyWriter(path, ["a", "b"])
    else:
        w = alio.TextWriter(
            path, ["a", "b"], delimiter="\t" if suffix == ".tsv" else ","
        )
    for i in range(0, 25, 10):
        w.write(block[i : i + 10])
    w.close()
    if suffix == ".npy":
        got = np.load(path)
    else:
        got = np.loadtxt(path, delimiter="\t" if suffix == ".tsv" else ",", skiprows=1)
        # one line end throughout: the header ended in "\r\n" (csv's default),
        # the rows in "\n", so `cut -f2` of the header gave "b\r"
        text = (tmp_path / f"p{suffix}").read_bytes()
        assert b"\r" not in text
        assert text.count(b"\n") == 26
    np.testing.assert_array_equal(got, block)  # %.17g round-trips float64 exactly


# --------------------------------------------------------------------------- #
# Properties: the header decision and the reported label values
# --------------------------------------------------------------------------- #

_cells = st.floats(allow_nan=False, allow_infinity=False, width=64)
_names = st.text(alphabet="abcdefghij_", min_size=1, max_size=6)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    hnp.arrays(
        np.float64, st.tuples(st.integers(1, 6), st.integers(1, 4)), elements=_cells
    ),
    st.one_of(st.none(), st.lists(_names, min_size=4, max_size=4)),
)
def test_header_decision_never_drops_a_data_row(tmp_path, table, names):
    """A numeric table is never read as header + data; a row of names is."""
    rows = [",".join(repr(float(v)) for v in r) for r in table]
    head = None if names is None else ",".join(names[: table.shape[1]])
    path = tmp_path / "t.csv"
    path.write_text("\n".join(([head] if head else []) + rows) + "\n")
    scores, _ = alio.open_table(str(path))
    np.testing.assert_array_equal(_read_all(scores, 4), table)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 5), st.sampled_from(["1.2.3", "", " ", "--1", "1e", "x1"]))
def test_a_malformed_first_row_is_reported_not_skipped(tmp_path, column, cell):
    table = np.arange(12.0).reshape(2, 6)
    first = [repr(float(v)) for v in table[0]]
    first[column] = cell
    path = tmp_path / "m.csv"
    path.write_text(",".join(first) + "\n" + ",".join(map(repr, table[1])) + "\n")
    scores, _ = alio.open_table(str(path))
    with scores, pytest.raises(alio.DataError, match=rf"line 1, column {column}: "):
        scores.read(4)


@given(
    st.sampled_from(["int8", "int16", "int32", "int64", "uint8", "uint32", "uint64"]),
    st.data(),
)
def test_out_of_range_labels_are_reported_as_themselves(dtype, data):
    info = np.iinfo(dtype)
    bad = data.draw(
        st.one_of(
            st.integers(int(info.min), -1) if info.min < 0 else st.nothing(),
            st.integers(3, int(info.max)),
        )
    )
    raw = np.array([0, bad, 1], dtype=dtype)
    with pytest.raises(alio.DataError, match=rf"row 1: label {bad} is out of range"):
        alio.label_indices(raw, n_classes=3, classes=None, start=0, label="LABELS")


@given(
    st.floats(allow_nan=False, allow_infinity=False).filter(
        lambda v: v.is_integer() and not 0 <= v < 3
    )
)
def test_out_of_range_float_labels_are_reported_as_themselves(value):
    raw = np.array([0.0, value])
    shown = str(int(value)) if abs(value) < 2**64 else repr(value)
    with pytest.raises(
        alio.DataError, match=re.escape(f"label {shown} is out of range")
    ):
        alio.label_indices(raw, n_classes=3, classes=None, start=0, label="LABELS")


def test_table_spec_of_a_labels_file_keeps_what_applies_to_it():
    """A separate LABELS file shares the label column, delimiter and class names
    with SCORES; the header, score and dropped columns and soft flag are SCORES'."""
    spec = alio.TableSpec(
        label_column="y", score_columns="p*", drop_columns=("id",), soft=True,
        header=True, delimiter=";", classes=("a", "b"),
    )  # fmt: skip
    assert spec.of_labels_file() == alio.TableSpec(
        label_column="y", delimiter=";", classes=("a", "b")
    )
    assert spec.replace(label_column=None).label_column is None
    assert spec.label_column == "y"  # frozen: replace makes a copy


def test_text_labels_with_numeric_class_names_are_names_only():
    """With ``--classes 1,2,3`` a text label ``1`` is the name of class 0, but a
    label ``0``, no name, was read as class index 0: labels ``0,1,2`` mapped to
    classes 0, 0, 1 without a word.  Where some class names are numbers other
    than their own index, every text label is now read as a name (an unknown one
    is an error), so no label can mean either."""
    kw = {"n_classes": 3, "start": 0, "label": "LABELS 'y'"}
    np.testing.assert_array_equal(
        alio.label_indices(np.array(["1", "3", "2"]), classes=("1", "2", "3"), **kw),
        [0, 2, 1],
    )
    with pytest.raises(
        alio.DataError,
        match=r"^LABELS 'y' row 0: '0' is not one of the --classes \(they are "
        r"numbers, so a number label is a class name, not a class index\)$",
    ):
        alio.label_indices(np.array(["0", "1", "2"]), classes=("1", "2", "3"), **kw)
    # numbers naming their own index: either reading gives the same class
    np.testing.assert_array_equal(
        alio.label_indices(np.array(["2.0", "0", "1"]), classes=("0", "1", "2"), **kw),
        [2, 0, 1],
    )
    # names that are no numbers: a number is a class index, as without --classes
    np.testing.assert_array_equal(
        alio.label_indices(np.array(["2", "0", "b"]), classes=("a", "b", "c"), **kw),
        [2, 0, 1],
    )


@pytest.mark.parametrize("classes", [None, ("a", "b", "c")])
def test_empty_text_label_is_named_missing(classes):
    """A missing label in a CSV (pandas writes NaN as an empty cell) was "'' is
    not a class index; for class names, give --classes", a hint that does not
    apply; it is now named a missing label."""
    kw = {"n_classes": 3, "start": 0, "label": "LABELS 'y'", "classes": classes}
    with pytest.raises(
        alio.DataError, match=r"^LABELS 'y' row 1: a missing label \(an empty cell\)$"
    ):
        alio.label_indices(np.array(["1" if classes is None else "b", " "]), **kw)


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"flag": 1}, "is encrypted, password required"),
        ({"method": 98}, "That compression method is not supported"),
    ],
)
def test_npz_member_zipfile_cannot_open_is_bad_data(tmp_path, patch, message):
    """An encrypted member (RuntimeError) or one of a compression method zipfile
    lacks (NotImplementedError) was an internal error of eval."""
    from conftest import patched_npz

    p = patched_npz(tmp_path / "s.npz", scores=np.zeros((3, 2)), **patch)
    with pytest.raises(alio.DataError, match=message):
        alio.open_array(str(p), "scores").read(3)

"""``arrayloss eval`` on CSV/TSV files as people have them: the delimiter sniffed
(``, tab ; |``) or given, a byte-order mark, CRLF line ends, quoted fields, and
pandas' leading index column (detected, or ``--drop-column``); files written by
pandas when it is installed, and by hand."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import invoke_eval as invoke
from conftest import one_error_line

from arrayloss import io as alio
from arrayloss import metrics as M

N, C = 60, 3


@pytest.fixture
def data(rng):
    p = rng.dirichlet(np.ones(C), size=N)
    y = rng.integers(0, C, size=N)
    return p, y


def _nll(args):
    result = invoke([*args, "--input", "probs", "--metric", "nll", "--format", "json"])
    out = json.loads(result.stdout)
    assert out["n_samples"] == N
    assert out["n_classes"] == C
    return out["metrics"]["nll"]


def _rows(p, y=None, sep=","):
    lines = []
    for i, row in enumerate(p):
        cells = [repr(float(v)) for v in row]
        if y is not None:
            cells.append(str(y[i]))
        lines.append(sep.join(cells))
    return lines


# --------------------------------------------------------------------------- #
# Sniffing
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("sample", "default", "want"),
    [
        ("a,b,c\n1,2,3\n", ",", ","),
        ("a;b;c\n1;2;3\n", ",", ";"),
        ("a\tb\n1\t2\n", ",", "\t"),
        ("a|b|c\n1|2|3\n", ",", "|"),
        ('"x;y",b\n1,2\n', ",", ","),  # a delimiter inside quotes does not count
        ("1\n2\n3\n", "\t", "\t"),  # one column: the suffix's default
        ("0.1;0.9\n0.5;0.5\n", "\t", ";"),
        ("", ",", ","),
        ("1.0e-01 9.0e-01\n5.0e-01 5.0e-01\n", ",", " "),  # numpy.savetxt
        ("  0.100   0.900\n  0.500  0.500\n", ",", " "),  # aligned columns
        ("p0 p1\n0.1 0.9\n", ",", " "),  # a header of names, then numbers
        ("0.1, 0.9\n0.5, 0.5\n", ",", ","),  # a space after the comma
        ("cat dog\nbig bird\n", ",", ","),  # names with a space: one column
    ],
)
def test_sniff_delimiter(sample, default, want):
    assert alio.sniff_delimiter(sample, default) == want


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"fmt": "%12.9f"},
        {"fmt": "%.17g", "delimiter": "\t"},
        {"header": "a b c", "comments": ""},
    ],
)
@pytest.mark.parametrize("delimiter", [None, " "])
def test_numpy_savetxt_files(tmp_path, data, kwargs, delimiter):
    """Text as `numpy.savetxt` writes it (space-separated by default, or padded
    to a width) is read as `numpy.loadtxt` reads it: sniffed, or ``--delimiter
    ' '``, a run of white space (tabs too) being one delimiter."""
    p, y = data
    np.savetxt(tmp_path / "p.txt", p, **kwargs)
    np.savetxt(tmp_path / "y.txt", y, fmt="%d")
    loaded = np.loadtxt(tmp_path / "p.txt", skiprows=1 if "header" in kwargs else 0)
    want = float(M.nll(loaded, y, input="probs"))
    extra = [] if delimiter is None else ["--delimiter", delimiter]
    args = [str(tmp_path / "p.txt"), str(tmp_path / "y.txt"), *extra]
    assert _nll(args) == pytest.approx(want, rel=1e-15)


# --------------------------------------------------------------------------- #
# Files written by pandas
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("default.csv", {}),
        ("semicolon.csv", {"sep": ";"}),
        ("tab.tsv", {"sep": "\t"}),
        ("tab.csv", {"sep": "\t"}),  # sniffed, not taken from the suffix
        ("pipe.txt", {"sep": "|"}),
        ("crlf.csv", {"lineterminator": "\r\n"}),
        ("bom.csv", {"encoding": "utf-8-sig"}),
        ("quoted.csv", {"quoting": 1}),  # csv.QUOTE_ALL
    ],
)
def test_pandas_files(tmp_path, data, name, kwargs):
    pd = pytest.importorskip("pandas")
    p, y = data
    want = float(M.nll(p, y, input="probs"))
    df = pd.DataFrame(p)  # integer column names 0, 1, 2: a header of numbers
    df.to_csv(tmp_path / name, **kwargs)
    sep = kwargs.get("sep", ",")
    pd.Series(y).to_csv(tmp_path / "y.csv", sep=sep)  # index, then the labels
    got = _nll([str(tmp_path / name), str(tmp_path / "y.csv")])
    assert got == pytest.approx(want, rel=1e-15)
    # with the labels as a named column of the same file
    df["label"] = y
    df.to_csv(tmp_path / name, **kwargs)
    got = _nll([str(tmp_path / name), "--label-column", "label"])
    assert got == pytest.approx(want, rel=1e-15)


def test_pandas_named_columns_and_no_index(tmp_path, data):
    pd = pytest.importorskip("pandas")
    p, y = data
    want = float(M.nll(p, y, input="probs"))
    df = pd.DataFrame(p, columns=["cat", "dog", "eel"])
    df.to_csv(tmp_path / "noindex.csv", index=False, sep=";")
    np.save(tmp_path / "y.npy", y)
    assert _nll(
        [str(tmp_path / "noindex.csv"), str(tmp_path / "y.npy")]
    ) == pytest.approx(want, rel=1e-15)
    df.index = [f"id{i}" for i in range(N)]  # a text index: --drop-column
    df.index.name = "id"
    df.to_csv(tmp_path / "ids.csv")
    args = [str(tmp_path / "ids.csv"), str(tmp_path / "y.npy")]
    got = _nll([*args, "--drop-column", "id"])
    assert got == pytest.approx(want, rel=1e-15)
    result = invoke([*args, "--input", "probs"], exit_code=1)
    assert "'id0' is not a number" in result.stderr
    assert result.stderr.count("\n") == 1


# --------------------------------------------------------------------------- #
# Hand-written files
# --------------------------------------------------------------------------- #


def _write(path, text, *, bom=False, crlf=False):
    if crlf:
        text = text.replace("\n", "\r\n")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return str(path)


@pytest.mark.parametrize("bom", [False, True])
@pytest.mark.parametrize("crlf", [False, True])
@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_hand_written(tmp_path, data, bom, crlf, sep):
    p, y = data
    want = float(M.nll(p, y, input="probs"))
    head = sep.join(f'"p {j}"' for j in range(C)) + sep + "label"
    body = "\n".join(_rows(p, y, sep))
    f = _write(tmp_path / "h.csv", head + "\n" + body + "\n", bom=bom, crlf=crlf)
    assert _nll([f, "--label-column", "label"]) == pytest.approx(want, rel=1e-15)
    quoted = "\n".join(
        sep.join(f'"{c}"' for c in line.split(sep)) for line in _rows(p, y, sep)
    )
    f = _write(tmp_path / "q.csv", quoted + "\n", bom=bom, crlf=crlf)
    assert _nll([f, "--label-column", str(C)]) == pytest.approx(want, rel=1e-15)
    index = "\n".join(f"{i}{sep}{line}" for i, line in enumerate(_rows(p, y, sep)))
    head = sep + sep.join(str(j) for j in range(C)) + sep + "label"
    f = _write(tmp_path / "i.csv", head + "\n" + index + "\n", bom=bom, crlf=crlf)
    assert _nll([f, "--label-column", "label"]) == pytest.approx(want, rel=1e-15)


def test_explicit_delimiter(tmp_path, data):
    p, y = data
    want = float(M.nll(p, y, input="probs"))
    body = "\n".join(_rows(p, y, ";"))
    f = _write(tmp_path / "s.csv", body + "\n")
    assert _nll([f, "--label-column", str(C), "--delimiter", ";"]) == pytest.approx(
        want, rel=1e-15
    )
    t = _write(tmp_path / "t.csv", body.replace(";", "\t") + "\n")
    assert _nll([t, "--label-column", str(C), "--delimiter", "tab"]) == pytest.approx(
        want, rel=1e-15
    )
    result = invoke([f, "--label-column", str(C), "--delimiter", ","], exit_code=1)
    assert "has 1 columns" in result.stderr  # the comma does not split these rows


@pytest.mark.parametrize("value", ["ab", "1", '"', "", "."])
def test_bad_delimiter_is_usage_error(tmp_path, data, value):
    p, y = data
    f = _write(tmp_path / "s.csv", "\n".join(_rows(p, y)) + "\n")
    out = tmp_path / "out.json"
    result = invoke(
        [f, "--label-column", str(C), "--delimiter", value, "-o", str(out)], exit_code=2
    )
    assert "--delimiter" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_chunk_sizes_identical(tmp_path, data):
    pd = pytest.importorskip("pandas")
    p, y = data
    df = pd.DataFrame(p)
    df["label"] = y
    df.to_csv(tmp_path / "p.csv", sep=";")
    args = [str(tmp_path / "p.csv"), "--label-column", "label", "--input", "probs"]
    outs = [
        invoke([*args, "--format", "json", "--chunk-size", k]).stdout
        for k in ("1", "7", str(N))
    ]
    assert json.loads(outs[0])["losses"] == json.loads(outs[1])["losses"]
    assert json.loads(outs[1])["losses"] == json.loads(outs[2])["losses"]


@pytest.mark.parametrize("sep", [",", ";"])
def test_ragged_csv_names_the_line(tmp_path, data, sep):
    p, y = data
    lines = _rows(p, y, sep)
    lines[9] += sep + "0.5"  # file line 10
    f = _write(tmp_path / "r.csv", "\n".join(lines) + "\n")
    old = tmp_path / "out.json"
    old.write_text("old")
    result = invoke([f, "--label-column", str(C), "-o", str(old)], exit_code=1)
    assert result.stderr.startswith("Error: ")
    assert result.stderr.count("\n") == 1
    assert "line 10" in result.stderr
    assert "ragged" in result.stderr
    assert old.read_text() == "old"
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".part")]


def test_index_with_no_header_flag_is_data(tmp_path, data):
    """--no-header turns the index detection off: the first row is data."""
    p, y = data
    head = "," + ",".join(str(j) for j in range(C)) + ",label"
    index = "\n".join(f"{i},{line}" for i, line in enumerate(_rows(p, y)))
    f = _write(tmp_path / "i.csv", head + "\n" + index + "\n")
    result = invoke([f, "--label-column", str(C + 1), "--no-header"], exit_code=1)
    assert "line 1" in result.stderr


@pytest.mark.parametrize("sep", [",", ";", "\t"])
def test_header_with_a_trailing_delimiter(tmp_path, data, sep):
    """A header ``a,b,c,`` above rows ``1,2,3,`` (a delimiter at the end of every
    line, header included) was read as data ("'a' is not a number", and with
    ``--drop-column 3`` too); it is a header now, so the empty last column gets
    the hint of the trailing delimiter, by number, and ``--drop-column`` reads
    the file."""
    p, y = data
    want = float(M.nll(p, y, input="probs"))
    head = sep.join(f"p{j}" for j in range(C)) + sep
    body = "".join(line + sep + "\n" for line in _rows(p, sep=sep))
    f = _write(tmp_path / "t.csv", head + "\n" + body)
    np.save(tmp_path / "y.npy", y)
    args = [f, str(tmp_path / "y.npy")]
    result = invoke([*args, "--input", "probs"], exit_code=1)
    assert result.stderr == (
        f"Error: SCORES '{f}' line 2, column {C}: an empty cell (a delimiter at the "
        f"end of each line makes an empty last column: --drop-column {C} leaves it "
        "out)\n"
    )
    assert _nll([*args, "--drop-column", str(C)]) == pytest.approx(want, rel=1e-15)
    # the labels as the last named column, before the trailing delimiter
    head = sep.join([*(f"p{j}" for j in range(C)), "label"]) + sep
    body = "".join(line + sep + "\n" for line in _rows(p, y, sep))
    f = _write(tmp_path / "l.csv", head + "\n" + body)
    got = _nll([f, "--label-column", "label", "--drop-column", str(C + 1)])
    assert got == pytest.approx(want, rel=1e-15)


def _csv_shards(folder, p, y, *, header):
    """``p``, ``y`` as three CSV shards (``part-0`` to ``part-2``) of ``folder``,
    the labels a column ``label`` of each; the folder."""
    folder.mkdir()
    head = ",".join([*(f"p{j}" for j in range(C)), "label"]) + "\n"
    for i, part in enumerate(np.array_split(np.arange(N), 3)):
        body = "".join(line + "\n" for line in _rows(p[part], y[part]))
        (folder / f"part-{i}.csv").write_text((head if header else "") + body)
    return folder


@pytest.mark.parametrize("where", ["part-00.csv", "part-1b.csv", "part-9.csv"])
@pytest.mark.parametrize("blank", ["", "\n\r\n  \n"])
@pytest.mark.parametrize("header", [True, False])
def test_zero_byte_csv_shard_adds_nothing(tmp_path, data, where, blank, header):
    """A zero-byte (or blank) CSV shard among others, first, in the middle or
    last, was "is empty", exit 1, where a shard without rows adds nothing: it has
    no header and no rows, so it adds nothing too, also when the others' headers
    name the label column (--label-column label: nothing to look it up in)."""
    p, y = data
    want = float(M.nll(p, y, input="probs"))
    folder = _csv_shards(tmp_path / "s", p, y, header=header)
    (folder / where).write_text(blank)
    label = "label" if header else str(C)
    assert _nll([str(folder), "--label-column", label]) == pytest.approx(
        want, rel=1e-15
    )
    # separate labels files: a zero-byte one beside the zero-byte scores
    (tmp_path / "y").mkdir()
    for i, part in enumerate(np.array_split(np.arange(N), 3)):
        text = "".join(f"{v}\n" for v in y[part])
        (tmp_path / "y" / f"part-{i}.csv").write_text(
            ("label\n" if header else "") + text
        )
        lines = (folder / f"part-{i}.csv").read_text().splitlines(keepends=True)
        cut = [",".join(ln.split(",")[:C]) + "\n" for ln in lines]
        (folder / f"part-{i}.csv").write_text("".join(cut))
    (tmp_path / "y" / where).write_text(blank)
    got = _nll([str(folder), str(tmp_path / "y")])
    assert got == pytest.approx(want, rel=1e-15)


def test_zero_byte_csv_shards_errors(tmp_path, data):
    """Every shard zero-byte: none has rows (exit 1); one file alone: "is empty";
    a zero-byte labels shard beside scores with rows: the row counts differ."""
    p, y = data
    (tmp_path / "e").mkdir()
    for name in ("a.csv", "b.csv"):
        (tmp_path / "e" / name).write_text("")
    np.save(tmp_path / "y.npy", y)
    args = [str(tmp_path / "e"), "--label-column", "label"]
    result = invoke(args, exit_code=1)
    assert result.stderr == "Error: SCORES: none of its 2 files has rows\n"
    result = invoke(
        [str(tmp_path / "e" / "a.csv"), str(tmp_path / "y.npy")], exit_code=1
    )
    assert result.stderr == f"Error: SCORES '{tmp_path / 'e' / 'a.csv'}' is empty\n"
    folder = _csv_shards(tmp_path / "s", p, y, header=False)
    (tmp_path / "y").mkdir()
    for i, part in enumerate(np.array_split(np.arange(N), 3)):
        (tmp_path / "y" / f"part-{i}.csv").write_text(
            "" if i == 1 else "".join(f"{v}\n" for v in y[part])
        )
    out = tmp_path / "out.json"
    out.write_text("old")
    result = invoke(
        [str(folder), str(tmp_path / "y"), "--score-columns", f"0:{C}", "-o", str(out)],
        exit_code=1,
    )
    assert result.stderr == (
        f"Error: LABELS '{tmp_path / 'y' / 'part-1.csv'}' has 0 rows but "
        f"SCORES '{folder / 'part-1.csv'}' has more\n"
    )
    assert out.read_text() == "old"


def test_pandas_default_column_names_without_index(tmp_path, data, rng):
    """``pd.DataFrame(proba).to_csv(index=False)`` writes the header ``0,1,2`` (the
    default column names), and ``pd.Series(y).to_csv(index=False)`` the header
    ``0``: the first was read as a row of data, so with the second (read as a
    label 0) eval counted one sample more and gave a wrong loss, without a word.
    A first row ``0,1,...`` above a row with a number that is no integer is now
    the header; a labels file of integers starting with ``0`` stays data, and
    the extra row it makes is an error naming that header."""
    pd = pytest.importorskip("pandas")
    p, y = data
    want = float(M.nll(p, y, input="probs"))
    pd.DataFrame(p).to_csv(tmp_path / "p.csv", index=False)
    np.save(tmp_path / "y.npy", y)
    assert _nll([str(tmp_path / "p.csv"), str(tmp_path / "y.npy")]) == pytest.approx(
        want, rel=1e-15
    )
    # weights and class names as a Series saved without its index: header "0"
    w = rng.random(N)
    pd.Series(w).to_csv(tmp_path / "w.csv", index=False)
    names = np.array(["cat", "dog", "eel"])
    pd.Series(names[y]).to_csv(tmp_path / "names.csv", index=False)
    args = [
        str(tmp_path / "p.csv"),
        str(tmp_path / "names.csv"),
        "--classes",
        "cat,dog,eel",
    ]
    got = _nll([*args, "--weights", str(tmp_path / "w.csv")])
    assert got == pytest.approx(float(M.nll(p, y, weights=w, input="probs")), rel=1e-14)
    # integer labels below the header "0": data, so one row too many
    pd.Series(y).to_csv(tmp_path / "y.csv", index=False)
    out = tmp_path / "out.json"
    out.write_text("old")
    result = invoke(
        [
            str(tmp_path / "p.csv"),
            str(tmp_path / "y.csv"),
            "--input",
            "probs",
            "-o",
            str(out),
        ],
        exit_code=1,
    )
    assert result.stderr == (
        f"Error: LABELS '{tmp_path / 'y.csv'}' has more rows than SCORES "
        f"'{tmp_path / 'p.csv'}' ({N}); its first line, '0', may be the header "
        "pandas writes for an unnamed Series (to_csv(index=False)): save the "
        "labels with header=False\n"
    )
    assert out.read_text() == "old"
    # a first row 0,1,2 above integer rows stays data (integer scores)
    ints = rng.integers(-3, 4, size=(N, C))
    text = "0,1,2\n" + "".join(",".join(map(str, r)) + "\n" for r in ints)
    (tmp_path / "i.csv").write_text(text)
    np.save(tmp_path / "y1.npy", np.concatenate([[0], y]))
    result = invoke(
        [str(tmp_path / "i.csv"), str(tmp_path / "y1.npy"), "--format", "json"]
    )
    assert json.loads(result.stdout)["n_samples"] == N + 1


def test_decimal_comma_is_named(tmp_path, data):
    """``to_csv(sep=';', decimal=',')`` (a European spreadsheet's CSV) was "'0,25'
    is not a number", which does not say why; the message now names the decimal
    comma (no guess at what it means: a comma may also group thousands)."""
    pd = pytest.importorskip("pandas")
    p, y = data
    df = pd.DataFrame(p, columns=["a", "b", "c"])
    df["label"] = y
    df.to_csv(tmp_path / "eu.csv", index=False, sep=";", decimal=",")
    cell = repr(float(p[0, 0])).replace(".", ",")
    result = invoke([str(tmp_path / "eu.csv"), "--label-column", "label"], exit_code=1)
    assert result.stderr == (
        f"Error: SCORES '{tmp_path / 'eu.csv'}' line 2, column 'a': '{cell}' is not "
        "a number (a decimal comma: write the file with a decimal point, "
        "to_csv(decimal='.'))\n"
    )


@pytest.mark.parametrize("kind", ["labels", "weights"])
def test_trailing_delimiter_in_a_one_column_file_is_named(tmp_path, data, kind):
    """A labels or weights file with a delimiter at the end of each line (``2,``)
    was "has 2 columns; one column of labels is needed", which does not say where
    the second column comes from; the message now names the trailing delimiter,
    as for the scores."""
    p, y = data
    np.savetxt(tmp_path / "p.csv", p, delimiter=",")
    if kind == "labels":
        (tmp_path / "y.csv").write_text("".join(f"{v},\n" for v in y))
        args = [str(tmp_path / "p.csv"), str(tmp_path / "y.csv")]
        hint = "--label-column 0 picks the labels"
    else:
        np.save(tmp_path / "y.npy", y)
        (tmp_path / "w.csv").write_text("1.5,\n" * N)
        args = [str(tmp_path / "p.csv"), str(tmp_path / "y.npy")]
        args += ["--weights", str(tmp_path / "w.csv")]
        hint = "write it without"
    result = invoke([*args, "--input", "probs"], exit_code=1)
    name = "LABELS 'y.csv'" if kind == "labels" else "--weights 'w.csv'"
    name = name.replace("'y.csv'", f"'{tmp_path / 'y.csv'}'").replace(
        "'w.csv'", f"'{tmp_path / 'w.csv'}'"
    )
    assert result.stderr == (
        f"Error: {name} has 2 columns; one column of {kind} is needed (a "
        f"delimiter at the end of each line makes an empty last column: {hint})\n"
    )
    if kind == "labels":
        assert _nll([*args, "--label-column", "0"]) == pytest.approx(
            float(M.nll(p, y, input="probs")), rel=1e-15
        )


def test_numbered_label_column_does_not_make_a_header(tmp_path, data):
    """``--label-column 0`` for a labels file ``0,7`` / ``2,7`` / ... (no header)
    read its first row as a header whenever that row held a ``0`` (the column
    number taken for a name), dropping a label: "has 59 rows but SCORES has
    more".  A number picks the column by position and makes no header."""
    p, y = data
    y = y.copy()
    y[0] = 0
    np.savetxt(tmp_path / "p.csv", p, delimiter=",")
    (tmp_path / "y.csv").write_text("".join(f"{v},7\n" for v in y))
    got = _nll(
        [str(tmp_path / "p.csv"), str(tmp_path / "y.csv"), "--label-column", "0"]
    )
    assert got == pytest.approx(float(M.nll(p, y, input="probs")), rel=1e-15)


@pytest.mark.parametrize("kind", ["logits", "probs"])
def test_one_score_column_is_named(tmp_path, data, kind):
    """A binary classifier's ``predict_proba(X)[:, 1]`` saved alone is one score
    column: read as one class, it was "label 1 is out of range for 1 classes"
    (logits) or "probabilities sum to 0.40, not 1" (probs), neither saying what
    is wrong.  One score column is bad data now, with what to save instead."""
    p, y = data
    (tmp_path / "p1.csv").write_text("".join(f"{v!r}\n" for v in p[:, 1].tolist()))
    np.save(tmp_path / "y.npy", y)
    args = [str(tmp_path / "p1.csv"), str(tmp_path / "y.npy"), "--input", kind]
    result = invoke(args, exit_code=1)
    assert result.stderr == (
        f"Error: SCORES '{tmp_path / 'p1.csv'}' has 1 score column; scores need one "
        "column per class, two or more (a binary classifier's probability of "
        "class 1 alone: save both columns, predict_proba(X))\n"
    )


def test_drop_column_keeps_dropping_the_pandas_index(tmp_path, data):
    """A pandas CSV with its index (header ``,a,b,c,junk,label``) and
    ``--drop-column junk``: --drop-column turned the index detection off, so the
    index 0, 1, 2, ... was read as one more class's scores (4 classes of 3, a
    wrong loss, exit 0).  The index is dropped with --drop-column too (and the
    trailing-delimiter hint's --drop-column, applied, reads such a file)."""
    pd = pytest.importorskip("pandas")
    p, y = data
    want = float(M.nll(p, y, input="probs"))
    df = pd.DataFrame(p, columns=["a", "b", "c"])
    df["junk"] = 7.0
    df["label"] = y
    df.to_csv(tmp_path / "i.csv")
    args = [str(tmp_path / "i.csv"), "--label-column", "label"]
    assert _nll([*args, "--drop-column", "junk"]) == pytest.approx(want, rel=1e-15)
    assert _nll([*args, "--drop-column", "0,junk"]) == pytest.approx(want, rel=1e-15)
    text = (tmp_path / "i.csv").read_text().replace("\n", ",\n")  # a,b,...,label,
    (tmp_path / "t.csv").write_text(text)
    result = invoke([str(tmp_path / "t.csv"), "--label-column", "label"], exit_code=1)
    assert "--drop-column 6 leaves it out" in result.stderr
    got = _nll(
        [str(tmp_path / "t.csv"), "--label-column", "label", "--drop-column", "junk,6"]
    )
    assert got == pytest.approx(want, rel=1e-15)


@pytest.mark.parametrize("sep", [",", ";", "\t"])
def test_excel_sep_line(tmp_path, data, sep):
    """Excel's first line ``sep=;`` (the delimiter, for Excel to open the file)
    was read as the header ("has no column named 'label' (columns: sep=, )"); it
    now gives the delimiter and is no row, and lines keep their numbers."""
    p, y = data
    want = float(M.nll(p, y, input="probs"))
    head = sep.join(["a", "b", "c", "label"])
    body = "".join(line + "\n" for line in _rows(p, y, sep))
    f = _write(tmp_path / "x.csv", f"sep={sep}\n{head}\n{body}", bom=True, crlf=True)
    assert _nll([f, "--label-column", "label"]) == pytest.approx(want, rel=1e-15)
    lines = body.splitlines()
    lines[2] = lines[2].replace(lines[2].split(sep)[1], "x", 1)  # file line 5
    _write(tmp_path / "bad.csv", f"sep={sep}\n{head}\n" + "\n".join(lines) + "\n")
    result = invoke([str(tmp_path / "bad.csv"), "--label-column", "label"], exit_code=1)
    assert "line 5, column 'b': 'x' is not a number" in result.stderr


@pytest.mark.parametrize("sep", [",", ";", "\t"])
def test_excel_sep_line_with_delimiter(tmp_path, data, sep):
    """With --delimiter, the ``sep=`` line was read as the header (the file
    could not be read: "has no column named 'label' (columns: sep=, )"); it is
    no row with the delimiter it names, and an error naming both with another."""
    p, y = data
    want = float(M.nll(p, y, input="probs"))
    head = sep.join(["a", "b", "c", "label"])
    body = "".join(line + "\n" for line in _rows(p, y, sep))
    f = _write(tmp_path / "x.csv", f"sep={sep}\n{head}\n{body}", bom=True, crlf=True)
    args = [f, "--label-column", "label"]
    assert _nll([*args, "--delimiter", sep]) == pytest.approx(want, rel=1e-15)
    other = "|"
    line = one_error_line(invoke([*args, "--delimiter", other], exit_code=1))
    assert line == (
        f"Error: SCORES '{f}' line 1 is Excel's {'sep=' + sep!r}, but --delimiter "
        f"is {other!r}: give --delimiter {sep!r}, or none\n"
    )


@pytest.mark.parametrize("sep", [",", ";", "\t", " "])
@pytest.mark.parametrize("newline", ["", "\n"])
def test_a_quote_left_open_at_the_end_is_a_cut_file(tmp_path, data, sep, newline):
    """A file that ends inside a quoted field (cut short in a quoted cell) is an
    error naming the line the row starts on; `csv` alone reads it as if the
    quote were closed, so the row's last value would count.  A quoted field that
    is closed, even across lines, is read."""
    p, y = data
    lines = _rows(p, y, sep)
    good = [*lines[:-1], sep.join([*lines[-1].split(sep)[:-1], f'"{y[-1]}"'])]
    fine = _write(tmp_path / "q.csv", "\n".join(good) + "\n")
    args = ["--label-column", str(C), "--format", "json"]
    if sep == " ":
        args += ["--delimiter", " "]
    plain = _write(tmp_path / "p.csv", "\n".join(lines) + "\n")
    got, want = (json.loads(invoke([f, *args]).stdout) for f in (fine, plain))
    assert (got["losses"], got["metrics"]) == (want["losses"], want["metrics"])
    cut = [*lines[:-1], sep.join([*lines[-1].split(sep)[:-1], f'"{y[-1]}'])]
    for extra in ([], [sep.join(["0.5"] * (C + 1))]):  # the quote takes the rest
        f = _write(tmp_path / "c.csv", "\n".join(cut + extra) + newline)
        old = tmp_path / "out.json"
        old.write_text("old")
        result = invoke([f, *args, "-o", str(old)], exit_code=1)
        line = one_error_line(result)
        assert f"line {len(lines)}: a quote opened in this row is not closed" in line
        assert old.read_text() == "old"

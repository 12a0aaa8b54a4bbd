"""``arrayloss eval`` on files as a careless user has them: rows of missing
values, percentages, a headerless file with column names asked for, float and
NaN text labels.  Each case gave a wrong number, a silently dropped row or a
misleading message before."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import eval_json, one_error_line
from conftest import invoke_eval as invoke


def p(folder, name):
    return str(folder / name)


def probs(n=10, c=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(c), size=n), rng.integers(0, c, n)


def write_csv(path, p_rows, labels, *, header="p0,p1,p2,y", fmt="{!r}"):
    lines = [header] if header else []
    for row, y in zip(p_rows, labels, strict=True):
        lines.append(",".join([*(fmt.format(float(v)) for v in row), str(y)]))
    path.write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------- #
# A row of empty cells: pandas' row of NaN
# --------------------------------------------------------------------------- #


def test_a_row_of_empty_cells_is_a_missing_value_not_skipped(tmp_path):
    """``,,,`` (``df.loc[5] = np.nan; df.to_csv()``) was skipped as a blank
    line: 11 samples of 12, no word.  One empty cell was an error already."""
    rows, y = probs(12)
    write_csv(tmp_path / "t.csv", rows, y)
    lines = (tmp_path / "t.csv").read_text().splitlines()
    lines[6] = ",,,"
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    args = [p(tmp_path, "t.csv"), "--label-column", "y", "--input", "probs"]
    line = one_error_line(invoke(args, 1))
    assert "t.csv' line 7: a row of empty cells, missing values" in line
    # the scores alone, the labels in a file of their own: the same error, not
    # "LABELS has more rows than SCORES"
    lines = [",".join(x.split(",")[:3]) for x in lines]
    (tmp_path / "s.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "y.txt").write_text("\n".join(map(str, y)) + "\n")
    line = one_error_line(invoke([p(tmp_path, "s.csv"), p(tmp_path, "y.txt")], 1))
    assert "s.csv' line 7: a row of empty cells" in line


def test_rows_of_empty_cells_at_the_end_are_no_rows(tmp_path):
    """Excel's empty rows after the data (``,,,``) and a trailing empty line:
    no rows, as before."""
    rows, y = probs(5)
    write_csv(tmp_path / "t.csv", rows, y)
    with open(tmp_path / "t.csv", "a") as f:
        f.write(",,,\n,,,\n\n")
    args = [p(tmp_path, "t.csv"), "--label-column", "y", "--input", "probs", "-q"]
    assert eval_json(args)["n_samples"] == 5


# --------------------------------------------------------------------------- #
# Percentages
# --------------------------------------------------------------------------- #


def test_percentages_read_as_logits_are_warned_of(tmp_path):
    rows, y = probs(8)
    write_csv(tmp_path / "t.csv", rows * 100, y)
    result = invoke([p(tmp_path, "t.csv"), "--label-column", "y", "-q"])
    assert "looks like percentages (no negative score, each row summing to 100)" in (
        result.stderr
    )
    assert "divide them by 100 and give --input probs" in result.stderr
    write_csv(tmp_path / "p.csv", rows, y)  # probabilities: the other warning
    result = invoke([p(tmp_path, "p.csv"), "--label-column", "y", "-q"])
    assert "looks like probabilities" in result.stderr
    assert "looks like percentages" not in result.stderr


@pytest.mark.parametrize("renormalize", [False, True])
def test_percentages_as_probabilities_say_divide_by_100(tmp_path, renormalize):
    rows, y = probs(8)
    write_csv(tmp_path / "t.csv", rows * 100, y, fmt="{:.2f}")
    args = [p(tmp_path, "t.csv"), "--label-column", "y", "--input", "probs"]
    line = one_error_line(invoke([*args, *(["--renormalize"] * renormalize)], 1))
    assert "probabilities sum to 100" in line
    assert "; percentages? divide the scores by 100; " in line
    write_csv(tmp_path / "o.csv", rows * 3, y)  # sums of 3: no such hint
    args[0] = p(tmp_path, "o.csv")
    assert "divide the scores by 100" not in one_error_line(invoke(args, 1))


def test_rows_not_summing_to_1_name_the_score_columns(tmp_path):
    """A column that is no class score (``fold``) read as one: the error that
    the rows sum to 2 names the score columns, so the stray one is seen."""
    rows, y = probs(6)
    text = "p0,p1,p2,fold,y\n" + "".join(
        ",".join([*(repr(float(v)) for v in r), "1", str(c)]) + "\n"
        for r, c in zip(rows, y, strict=True)
    )
    (tmp_path / "t.csv").write_text(text)
    args = [p(tmp_path, "t.csv"), "--label-column", "y", "--input", "probs"]
    for size in ("1", "6"):
        line = one_error_line(invoke([*args, "--chunk-size", size], 1))
        assert "probabilities sum to 2" in line
        assert "the 4 score columns are p0,p1,p2,fold (leave out any other" in line
    np.save(tmp_path / "z.npy", rows * 2)  # no names to give: as before
    np.save(tmp_path / "y.npy", y)
    line = one_error_line(
        invoke([p(tmp_path, "z.npy"), p(tmp_path, "y.npy"), "--input", "probs"], 1)
    )
    assert line.endswith("(--input probs)\n")


# --------------------------------------------------------------------------- #
# Column names asked of a file without a header
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--score-columns", "p*"], "--score-columns 'p*'"),
        (["--label-column", "y"], "--label-column 'y'"),
        (["--drop-column", "id"], "--drop-column 'id'"),
    ],
)
def test_names_asked_of_a_headerless_file_say_it_has_no_header(tmp_path, flags, named):
    """``np.savetxt`` writes no header: a column name asked of it took the
    first row of numbers for the header ("no column matches 'p*' (columns:
    1.588044816767998357e-01, ...)")."""
    rows, y = probs(6)
    np.savetxt(tmp_path / "s.csv", np.c_[rows, y], delimiter=",")
    np.save(tmp_path / "y.npy", y)
    args = [p(tmp_path, "s.csv"), *flags, "--input", "probs"]
    if flags[0] != "--label-column":
        args.insert(1, p(tmp_path, "y.npy"))
    line = one_error_line(invoke(args, 1))
    assert "s.csv' has no header row (its first line is numbers), but " in line
    assert f"{named} names columns: give 0-based column numbers (0 to 3" in line


def test_a_header_of_numbers_is_still_a_header(tmp_path):
    """``pd.DataFrame(proba).to_csv(index=False)`` names its columns 0, 1, 2:
    a pattern that matches none of them says so, with their names."""
    rows, y = probs(4)
    text = (
        "0,1,2\n" + "\n".join(",".join(repr(float(v)) for v in r) for r in rows) + "\n"
    )
    (tmp_path / "s.csv").write_text(text)
    np.save(tmp_path / "y.npy", y)
    args = [p(tmp_path, "s.csv"), p(tmp_path, "y.npy"), "--score-columns", "p*"]
    line = one_error_line(invoke(args, 1))
    assert "no column matches the --score-columns pattern 'p*' (columns: 0, 1, 2)" in (
        line
    )


# --------------------------------------------------------------------------- #
# Text labels that are numbers but no class index
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("label", "said"),
    [
        ("1.5", "'1.5' is not an integer class index"),
        ("nan", "a missing label ('nan')"),
        ("NaN", "a missing label ('NaN')"),
    ],
)
def test_number_labels_that_are_no_index_say_so(tmp_path, label, said):
    """A label ``1.5`` (or ``nan``) in a table with named score columns was
    told to give --classes, as if it were a class name."""
    rows, y = probs(5)
    labels = [str(v) for v in y]
    labels[3] = label
    write_csv(tmp_path / "t.csv", rows, labels)
    args = [p(tmp_path, "t.csv"), "--label-column", "y", "--input", "probs"]
    line = one_error_line(invoke(args, 1))
    assert line.endswith(f"row 3: {said}\n")


# --------------------------------------------------------------------------- #
# pandas' index of sample ids (text)
# --------------------------------------------------------------------------- #


def test_an_index_of_sample_ids_is_the_index(tmp_path):
    """``df.index = ids; df.to_csv()``: the unnamed first column of text is
    pandas' index, as an integer one is (it was read as a score column: "'s0'
    is not a number"); a labels Series with such an index too (it was "has 2
    columns")."""
    pd = pytest.importorskip("pandas")
    rows, y = probs(8)
    ids = [f"s{i}" for i in range(8)]
    df = pd.DataFrame(rows, columns=["p0", "p1", "p2"], index=ids)
    df.assign(y=y).to_csv(tmp_path / "t.csv")
    want = eval_json(
        [p(tmp_path, "t.csv"), "--label-column", "y", "--input", "probs", "-q"]
    )
    df.to_csv(tmp_path / "s.csv", index=False)
    pd.Series(y, index=ids, name="label").to_csv(tmp_path / "y.csv")
    got = eval_json([p(tmp_path, "s.csv"), p(tmp_path, "y.csv"), "--input", "probs"])
    np.save(tmp_path / "z.npy", rows)
    np.save(tmp_path / "y.npy", y)
    ref = eval_json([p(tmp_path, "z.npy"), p(tmp_path, "y.npy"), "--input", "probs"])
    assert want["n_classes"] == got["n_classes"] == 3
    assert want["metrics"] == got["metrics"] == ref["metrics"]


def test_an_unnamed_first_column_of_labels_stays_the_labels(tmp_path):
    """``df.index = labels``: with --label-column 0 the text column is the
    labels, not an index to drop."""
    pd = pytest.importorskip("pandas")
    rows, y = probs(8)
    names = np.array(["a", "b", "c"])
    df = pd.DataFrame(rows, columns=["a", "b", "c"], index=names[y])
    df.to_csv(tmp_path / "t.csv")
    args = [p(tmp_path, "t.csv"), "--label-column", "0", "--input", "probs", "-q"]
    got = eval_json([*args, "--per-class"])
    assert got["n_classes"] == 3
    assert [got["per_class"][n]["support"] for n in names] == np.bincount(
        y, minlength=3
    ).tolist()


def test_an_id_column_read_as_scores_is_warned_of(tmp_path):
    """A first column ``id`` of 100, 101, ... read as the scores of class 0:
    four classes of nonsense without a word (row numbers 0, 1, 2 were warned
    of already)."""
    rows, y = probs(8)
    text = "id,p0,p1,p2,y\n" + "".join(
        ",".join([str(100 + i), *(repr(float(v)) for v in r), str(c)]) + "\n"
        for i, (r, c) in enumerate(zip(rows, y, strict=True))
    )
    (tmp_path / "t.csv").write_text(text)
    result = invoke([p(tmp_path, "t.csv"), "--label-column", "y", "-q"])
    assert "the first score column of SCORES '" in result.stderr
    said = (
        "'id', holds consecutive integers (100, 101, 102, ...), read as the "
        "scores of class 0: an index column? leave it out (--drop-column id)"
    )
    assert said in result.stderr
    args = [p(tmp_path, "t.csv"), "--label-column", "y", "--drop-column", "id"]
    assert eval_json([*args, "--input", "probs", "-q"])["n_classes"] == 3


@pytest.mark.parametrize(
    ("cell", "hint"),
    [
        ("50%", "'50%' is not a number (a percentage: write the probabilities as "),
        ("abc", "'abc' is not a number (a column of text: --drop-column p0 leaves"),
    ],
)
def test_cells_that_are_no_number_say_what_they_look_like(tmp_path, cell, hint):
    rows, y = probs(4)
    text = "p0,p1,p2,y\n" + "".join(
        ",".join([cell, *(repr(float(v)) for v in r[1:]), str(c)]) + "\n"
        for r, c in zip(rows, y, strict=True)
    )
    (tmp_path / "t.csv").write_text(text)
    args = [p(tmp_path, "t.csv"), "--label-column", "y", "--input", "probs"]
    assert hint in one_error_line(invoke(args, 1))


def test_one_text_cell_among_numbers_is_not_a_text_column(tmp_path):
    rows, y = probs(4)
    lines = ["p0,p1,p2,y"]
    for i, (r, c) in enumerate(zip(rows, y, strict=True)):
        first = "abc" if i == 2 else repr(float(r[0]))
        lines.append(",".join([first, *(repr(float(v)) for v in r[1:]), str(c)]))
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    args = [p(tmp_path, "t.csv"), "--label-column", "y", "--input", "probs"]
    assert one_error_line(invoke(args, 1)).endswith(
        "line 4, column 'p0': 'abc' is not a number\n"
    )


def test_rounded_probabilities_read_as_logits_are_warned_of(tmp_path):
    """``df.round(2).to_csv()``: rows summing to 0.99 or 1.01 read as logits
    were taken without a word (only rows summing to 1 within 1e-4 warned)."""
    rows, y = probs(40, seed=3)
    write_csv(tmp_path / "t.csv", rows, y, fmt="{:.2f}")
    sums = np.round(rows, 2).sum(axis=1)
    assert np.abs(sums - 1).max() > 1e-3  # some rows off by the rounding
    args = [p(tmp_path, "t.csv"), "--label-column", "y", "-q"]
    err = invoke(args).stderr
    assert "looks like probabilities (no negative score, each row summing to 1 " in err
    assert "up to the rounding of its digits)" in err
    assert err.rstrip().endswith("give --input probs --renormalize")
    got = invoke([*args, "--input", "probs", "--renormalize", "--format", "json"])
    assert json.loads(got.stdout)["n_samples"] == 40  # (a 0.00 is clipped: warned)
    rng = np.random.default_rng(4)  # logits that are no probabilities: no warning
    write_csv(tmp_path / "z.csv", rng.random((40, 3)), y, fmt="{:.2f}")
    assert invoke([p(tmp_path, "z.csv"), "--label-column", "y", "-q"]).stderr == ""


def test_a_table_of_one_hot_labels_is_told_of_soft_labels(tmp_path):
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 8)
    text = "a,b,c\n" + "".join(
        ",".join(map(str, r)) + "\n" for r in np.eye(3, dtype=int)[y]
    )
    (tmp_path / "y.csv").write_text(text)
    np.save(tmp_path / "z.npy", rng.normal(size=(8, 3)))
    args = [p(tmp_path, "z.npy"), p(tmp_path, "y.csv")]
    line = one_error_line(invoke(args, 1))
    assert "has 3 columns; one column of labels is needed (say which with " in line
    assert "for one-hot or soft labels, a column per class, add --soft-labels)" in line
    got = eval_json([*args, "--soft-labels", "-q"])
    np.save(tmp_path / "y.npy", y)
    want = eval_json([p(tmp_path, "z.npy"), p(tmp_path, "y.npy"), "-q"])
    assert got["metrics"]["accuracy"] == want["metrics"]["accuracy"]


def test_the_levels_of_an_unnamed_multiindex_are_the_index(tmp_path):
    """``df.groupby(...)`` results keep a MultiIndex, whose unnamed levels
    pandas writes as leading empty header fields (``,,p0,p1,p2,y``): they were
    read as two score columns ("sum to 2")."""
    pd = pytest.importorskip("pandas")
    rows, y = probs(8)
    df = pd.DataFrame(rows, columns=["p0", "p1", "p2"]).assign(y=y)
    flat = eval_json(
        [*_saved(tmp_path / "flat.csv", df), "--label-column", "y", "--input", "probs"]
    )
    df.index = pd.MultiIndex.from_arrays(
        [np.arange(8) // 4, [f"s{i}" for i in range(8)]]
    )
    args = [
        *_saved(tmp_path / "multi.csv", df),
        "--label-column",
        "y",
        "--input",
        "probs",
    ]
    got = eval_json(args)
    assert got["n_classes"] == 3
    assert got["metrics"] == flat["metrics"]


def _saved(path, df):
    df.to_csv(path)
    return [str(path)]


@pytest.mark.parametrize("fmt", ["npy", "csv"])
def test_transposed_scores_say_so(tmp_path, fmt):
    """Scores saved as (classes, samples): the row-count error says the score
    columns are as many as the labels' rows."""
    rng = np.random.default_rng(8)
    z = rng.normal(size=(50, 3))
    np.save(tmp_path / "y.npy", rng.integers(0, 3, 50))
    if fmt == "npy":
        np.save(tmp_path / "z.npy", z.T.copy())
    else:
        np.savetxt(tmp_path / "z.npy", z.T, delimiter=",")
        (tmp_path / "z.npy").rename(tmp_path / "z.csv")
    scores = p(tmp_path, f"z.{fmt}")
    line = one_error_line(invoke([scores, p(tmp_path, "y.npy")], 1))
    assert f"z.{fmt}' has 50 columns, one a sample? (transposed: the scores " in line
    np.save(tmp_path / "y3.npy", np.array([0, 1, 2, 1]))  # 4 labels, 3 rows
    line = one_error_line(invoke([scores, p(tmp_path, "y3.npy")], 1))
    assert "one a sample?" not in line


def test_a_headerless_labels_series_with_its_index_is_told_which_column(tmp_path):
    """``pd.Series(y).to_csv(header=False)`` writes ``0,2`` lines (index,
    label): the two-column error says the first column is pandas' index and
    that --label-column 1 picks the labels."""
    rows, y = probs(5)
    np.save(tmp_path / "z.npy", rows)
    text = "".join(f"{i},{v}\n" for i, v in enumerate(y))
    (tmp_path / "y.csv").write_text(text)
    args = [p(tmp_path, "z.npy"), p(tmp_path, "y.csv"), "--input", "probs"]
    line = one_error_line(invoke(args, 1))
    assert "its first column holds the row numbers 0, 1, ..., pandas' index" in line
    assert line.endswith("--label-column 1 picks the labels)\n")
    got = eval_json([*args, "--label-column", "1", "-q"])
    np.save(tmp_path / "y.npy", y)
    ref = eval_json([p(tmp_path, "z.npy"), p(tmp_path, "y.npy"), "--input", "probs"])
    assert got["metrics"] == ref["metrics"]


def test_all_weights_zero_says_so(tmp_path):
    """Weights of -0.0 leave no weight: the error said "`reduction='mean'`
    needs at least one sample with non-zero weight (got 8)", the 8 reading as
    a count of such samples."""
    rows, y = probs(8)
    np.save(tmp_path / "z.npy", rows)
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "w.npy", np.full(8, -0.0))
    args = [p(tmp_path, "z.npy"), p(tmp_path, "y.npy"), "--input", "probs"]
    args += ["--weights", p(tmp_path, "w.npy"), "--metric", "accuracy"]
    line = one_error_line(invoke(args, 1))
    assert "every one of the 8 samples has weight 0 (its --weights" in line
    assert line.endswith("the mean loss needs a sample with non-zero weight\n")


def test_a_probability_rounded_below_0_is_told_to_clip(tmp_path):
    """``1 - p.sum()`` for the last class can give ``-1e-17``: the error (kept:
    no probability is negative) says it looks like rounding; ``-0.2`` does not."""
    rows, y = probs(4)
    rows[1, 0] = -1e-17
    np.save(tmp_path / "z.npy", rows)
    np.save(tmp_path / "y.npy", y)
    args = [p(tmp_path, "z.npy"), p(tmp_path, "y.npy"), "--input", "probs"]
    line = one_error_line(invoke(args, 1))
    assert "row 1 has a negative probability (-1e-17)" in line
    assert line.endswith("clip the probabilities to [0, 1] first\n")
    rows[1, 0] = -0.2
    np.save(tmp_path / "z.npy", rows)
    assert "clip" not in one_error_line(invoke(args, 1))


def test_space_separated_text_labels_are_told_of_the_delimiter(tmp_path):
    """``df.to_csv(sep=" ")`` with class names: white space is sniffed only
    above rows of numbers (names may hold spaces), so the file was one column
    and the error said only "no column named 'y' (columns: p0 p1 p2 y)".  It
    now names ``--delimiter ' '``, which reads the file."""
    rows, y = probs(6)
    names = np.array(["cat", "dog", "eel"])
    lines = ["p0 p1 p2 y"]
    for row, c in zip(rows, y, strict=True):
        lines.append(" ".join([*map(repr, row.tolist()), names[c]]))
    (tmp_path / "s.txt").write_text("\n".join(lines) + "\n")
    args = [p(tmp_path, "s.txt"), "--label-column", "y", "--input", "probs"]
    args += ["--classes", "cat,dog,eel"]
    line = one_error_line(invoke(args, 1))
    assert line.endswith(
        "has no column named 'y' (columns: p0 p1 p2 y); for columns separated by "
        "white space, give --delimiter ' '\n"
    )
    out = eval_json([*args, "--delimiter", " "])
    assert out["n_samples"] == 6
    assert out["metrics"]["nll"] == pytest.approx(
        float(-np.log(rows[np.arange(6), y]).mean()), rel=1e-14
    )


def test_a_first_row_read_as_the_numbered_header_is_told_of(tmp_path):
    """``np.savetxt(proba, fmt="%g")`` of a binary classifier writes a certain
    sample as ``0,1``: the header pandas writes for numbered columns, above a
    row of fractions.  The row was dropped as that header and the error said
    only "LABELS ... has more rows than SCORES ... (2)"; it now names the line
    and --no-header, which reads it as a row."""
    rows = np.array([[0.0, 1.0], [0.3, 0.7], [0.6, 0.4]])
    np.savetxt(tmp_path / "p.csv", rows, delimiter=",", fmt="%g")
    np.save(tmp_path / "y.npy", np.array([1, 0, 0]))
    args = [p(tmp_path, "p.csv"), p(tmp_path, "y.npy"), "--input", "probs"]
    line = one_error_line(invoke(args, 1))
    assert line.endswith(
        "has more rows than SCORES "
        f"'{tmp_path / 'p.csv'}' (2); its first line, '0,1', was read as the "
        "header pandas writes for numbered columns (to_csv(index=False)): if it "
        "is a row of scores, give --no-header\n"
    )
    out = eval_json([*args, "--no-header"])
    assert out["n_samples"] == 3
    assert out["metrics"]["accuracy"] == pytest.approx(2 / 3, rel=1e-15)

"""``arrayloss eval`` on the gaps found in review: rounded probabilities under
--renormalize, the class count the per-class report takes, boolean and
categorical labels, Ctrl-C at start-up, zero-byte binary shards and CSV reports
a spreadsheet would run as formulas."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest
from conftest import WITH_DEFAULT_SIGINT, eval_json, one_error_line
from conftest import invoke_eval as invoke

import arrayloss.cli._report as report_module

MAX_REPORT_CLASSES = getattr(report_module, "MAX_REPORT_CLASSES", 10_000)


def p(folder, name):
    return str(folder / name)


# --------------------------------------------------------------------------- #
# --per-class / --confusion: a class count beyond the limit
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("flags", [["--confusion"], ["--per-class", "--confusion"]])
def test_report_beyond_its_class_limit_is_usage_before_allocating(tmp_path, flags):
    c = MAX_REPORT_CLASSES + 1
    np.save(tmp_path / "z.npy", np.zeros((2, c), dtype=np.float32))
    np.save(tmp_path / "y.npy", np.array([0, 1]))
    result = invoke([p(tmp_path, "z.npy"), p(tmp_path, "y.npy"), *flags], 2)
    line = one_error_line(result)
    assert "--confusion with" in line
    assert f"{c} classes" in line
    assert f"at most {MAX_REPORT_CLASSES}" in line
    assert ("--per-class alone has no class limit" in line) == ("--per-class" in flags)


def test_per_class_alone_has_no_class_limit(tmp_path):
    """--per-class without --confusion keeps O(C) sums, not the C x C matrix:
    past the --confusion limit it runs (it was refused at 10,001 classes)."""
    c = MAX_REPORT_CLASSES + 1
    z = np.zeros((3, c), dtype=np.float32)
    z[0, 5], z[1, c - 1], z[2, 7] = 1.0, 1.0, 1.0
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "y.npy", np.array([5, c - 1, 3]))
    doc = eval_json([p(tmp_path, "z.npy"), p(tmp_path, "y.npy"), "--per-class", "-q"])
    per_class = doc["per_class"]
    assert len(per_class) == c + 2  # the classes and the two averages
    assert per_class["5"]["precision"] == per_class["5"]["recall"] == 1.0
    assert per_class[str(c - 1)]["support"] == 1
    assert per_class["3"]["recall"] == 0.0
    assert per_class["7"]["precision"] == 0.0
    assert per_class["macro avg"]["recall"] == 2 / c


@pytest.mark.parametrize("flag", ["--confusion", "--per-class"])
def test_report_limit_is_checked_on_the_class_count(tmp_path, monkeypatch, flag):
    """A lowered limit shows the check without a large file; it holds for
    --confusion only."""
    monkeypatch.setattr(report_module, "MAX_REPORT_CLASSES", 8, raising=False)
    np.save(tmp_path / "z.npy", np.zeros((3, 9)))
    np.save(tmp_path / "y.npy", np.array([0, 1, 8]))
    args = [p(tmp_path, "z.npy"), p(tmp_path, "y.npy"), flag]
    if flag == "--per-class":
        assert len(eval_json([*args, "-q"])["per_class"]) == 9 + 2
        return
    line = one_error_line(invoke(args, 2))
    assert f"{flag} with 9 classes" in line
    assert "9 x 9" in line


def test_report_within_its_class_limit_runs(tmp_path):
    c = 50  # the check is on the count only: a small run stays allowed
    rng = np.random.default_rng(0)
    np.save(tmp_path / "z.npy", rng.normal(size=(30, c)))
    np.save(tmp_path / "y.npy", rng.integers(0, c, 30))
    doc = eval_json([p(tmp_path, "z.npy"), p(tmp_path, "y.npy"), "--confusion", "-q"])
    assert len(doc["confusion"]["matrix"]) == c


# --------------------------------------------------------------------------- #
# Boolean labels: the classes 0 (False) and 1 (True)
# --------------------------------------------------------------------------- #


@pytest.fixture
def binary(tmp_path):
    """Two-class probabilities as predict_proba gives them, bool and 0/1 labels."""
    rng = np.random.default_rng(3)
    p1 = rng.random(40)
    probs = np.column_stack([1 - p1, p1])
    y = rng.random(40) < p1
    np.save(tmp_path / "p.npy", probs)
    np.save(tmp_path / "y_int.npy", y.astype(np.int64))
    return tmp_path, probs, y


def _bool_inputs(folder, probs, y, kind):
    if kind == "npy":
        np.save(folder / "y.npy", y)
        return [p(folder, "p.npy"), p(folder, "y.npy")]
    if kind == "lower-txt":
        (folder / "y.txt").write_text("".join(f"{str(v).lower()}\n" for v in y))
        return [p(folder, "p.npy"), p(folder, "y.txt")]
    pd = pytest.importorskip("pandas")  # the tables below are written as pandas does
    df = pd.DataFrame(probs, columns=["False", "True"])
    df["y"] = y
    if kind == "csv":
        df.to_csv(folder / "t.csv", index=False)
        return [p(folder, "t.csv"), "--label-column", "y"]
    if kind == "labels-csv":
        df[["y"]].to_csv(folder / "y.csv", index=False)  # header "y", then True/False
        return [p(folder, "p.npy"), p(folder, "y.csv")]
    if kind == "header-of-booleans":  # columns named by the classes, False, True
        df[["False", "True"]].to_csv(folder / "s.csv", index=False)
        (folder / "y.txt").write_text("".join(f"{v}\n" for v in y))
        return [p(folder, "s.csv"), p(folder, "y.txt")]
    pytest.importorskip("pyarrow")
    if kind == "parquet":
        df.to_parquet(folder / "t.parquet")
        return [p(folder, "t.parquet"), "--label-column", "y"]
    df.to_feather(folder / "t.feather")
    return [p(folder, "t.feather"), "--label-column", "y"]


@pytest.mark.parametrize(
    "kind",
    [
        "npy",
        "csv",
        "labels-csv",
        "header-of-booleans",
        "lower-txt",
        "parquet",
        "feather",
    ],
)
def test_boolean_labels_are_classes_0_and_1(binary, kind):
    folder, probs, y = binary
    args = _bool_inputs(folder, probs, y, kind)
    got = eval_json([*args, "--input", "probs", "--confusion", "-q"])
    ints = [p(folder, "p.npy"), p(folder, "y_int.npy")]
    want = eval_json([*ints, "--input", "probs", "--confusion", "-q"])
    assert got["n_samples"] == 40
    assert got["metrics"] == want["metrics"]
    assert got["losses"] == want["losses"]
    assert got["confusion"]["matrix"] == want["confusion"]["matrix"]


def test_boolean_text_with_classes_is_a_name(binary):
    """With --classes the labels are names: True is not one of a,b."""
    folder, probs, y = binary
    args = _bool_inputs(folder, probs, y, "csv")
    result = invoke([*args, "--input", "probs", "--classes", "a,b", "-q"], 1)
    assert "is not one of the --classes" in one_error_line(result)


# --------------------------------------------------------------------------- #
# Categorical (dictionary) label columns name the classes
# --------------------------------------------------------------------------- #

CATS = ["cat", "dog", "eel"]


@pytest.fixture
def categorical(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    rng = np.random.default_rng(5)
    probs = rng.dirichlet(np.ones(3), 60)
    y = rng.choice(CATS, 60)

    def frame(columns=CATS, categories=CATS, rows=slice(None)):
        df = pd.DataFrame(probs[rows], columns=columns)
        df["y"] = pd.Categorical(y[rows], categories=categories)
        return df

    return tmp_path, frame


def _per_class(args):
    return eval_json([*args, "--input", "probs", "--per-class", "--confusion", "-q"])


@pytest.mark.parametrize("suffix", ["parquet", "feather"])
def test_categorical_label_column_names_the_classes(categorical, suffix):
    folder, frame = categorical
    path = folder / f"t.{suffix}"
    getattr(frame(), f"to_{suffix}")(path)
    got = _per_class([str(path), "--label-column", "y"])
    want = _per_class([str(path), "--label-column", "y", "--classes", ",".join(CATS)])
    assert got["confusion"]["classes"] == CATS
    assert list(got["per_class"])[:3] == CATS
    assert got["metrics"] == want["metrics"]
    assert got["per_class"] == want["per_class"]


def test_categorical_labels_file_names_the_classes(categorical):
    folder, frame = categorical
    df = frame(columns=["p0", "p1", "p2"])  # score columns named otherwise: fine
    df[["p0", "p1", "p2"]].to_parquet(folder / "s.parquet")
    df[["y"]].to_parquet(folder / "y.parquet")
    got = _per_class([p(folder, "s.parquet"), p(folder, "y.parquet")])
    assert got["confusion"]["classes"] == CATS


@pytest.mark.parametrize("suffix", ["parquet", "feather"])
def test_categories_in_another_order_than_the_score_columns_match_by_name(
    categorical, suffix
):
    """``pd.Categorical(y)`` sorts its categories; score columns named by the
    classes in another order name the classes, and the labels are matched to them
    by name, as text labels are (this was an error)."""
    folder, frame = categorical
    order = ["dog", "cat", "eel"]
    df = frame(columns=order)
    getattr(df, f"to_{suffix}")(folder / f"t.{suffix}")
    text = df.assign(y=df["y"].astype(str))
    text.to_csv(folder / "t.csv", index=False)
    got = _per_class([p(folder, f"t.{suffix}"), "--label-column", "y"])
    want = _per_class([p(folder, "t.csv"), "--label-column", "y"])
    assert got["confusion"]["classes"] == order
    for key in ("losses", "metrics", "per_class", "confusion"):
        assert got[key] == want[key], key
    (folder / "shards").mkdir()  # and in shards, each a categorical column
    frame(columns=order, rows=slice(0, 25)).to_parquet(folder / "shards/a.parquet")
    frame(columns=order, rows=slice(25, None)).to_parquet(folder / "shards/b.parquet")
    sharded = _per_class([p(folder, "shards"), "--label-column", "y"])
    for key in ("losses", "metrics", "per_class", "confusion"):
        assert sharded[key] == want[key], key


def test_categories_not_one_a_score_column_fail(categorical):
    """Four categories beside three score columns named otherwise: which column
    is which class is unknown, an error naming the fix."""
    folder, frame = categorical
    frame(columns=["p0", "p1", "p2"], categories=[*CATS, "fox"]).to_parquet(
        folder / "t.parquet"
    )
    line = one_error_line(
        invoke([p(folder, "t.parquet"), "--label-column", "y", "--input", "probs"], 1)
    )
    assert "4 categories" in line
    assert "--classes" in line


def test_unused_categories_beside_columns_named_by_classes_match_by_name(
    categorical,
):
    """A filtered pandas frame keeps every category: score columns named by
    classes among them name the classes (in any order), the labels matched by
    name, as text labels are; a label that is a category but no score column is
    an error naming its row and the columns (this was "4 categories ... but
    there are 3 score columns")."""
    pd = pytest.importorskip("pandas")
    folder, frame = categorical
    df = frame(columns=["eel", "cat", "dog"], categories=["fox", *CATS])
    df.to_parquet(folder / "t.parquet")
    df.assign(y=df["y"].astype(str)).to_csv(folder / "t.csv", index=False)
    got = _per_class([p(folder, "t.parquet"), "--label-column", "y"])
    want = _per_class([p(folder, "t.csv"), "--label-column", "y"])
    assert got["confusion"]["classes"] == ["eel", "cat", "dog"]
    for key in ("losses", "metrics", "per_class", "confusion"):
        assert got[key] == want[key], key
    labels = df["y"].astype(str).tolist()
    labels[4] = "fox"
    df["y"] = pd.Categorical(labels, categories=["fox", *CATS])
    df.to_parquet(folder / "fox.parquet")
    line = one_error_line(
        invoke([p(folder, "fox.parquet"), "--label-column", "y", "--input", "probs"], 1)
    )
    assert "row 4: 'fox' is not one of the score columns' names" in line
    assert "--classes" in line


def test_categories_that_differ_between_shards_fail(categorical):
    folder, frame = categorical
    (folder / "s").mkdir()
    frame(rows=slice(0, 30)).to_parquet(folder / "s" / "a.parquet")
    frame(categories=["dog", "cat", "eel"], rows=slice(30, 60)).to_parquet(
        folder / "s" / "b.parquet"
    )
    args = [p(folder, "s"), "--label-column", "y", "--input", "probs"]
    line = one_error_line(invoke(args, 1))
    assert "b.parquet" in line
    assert "['dog', 'cat', 'eel']" in line
    # with --classes the labels are matched by name, whatever each file's order
    doc = eval_json([*args, "--classes", ",".join(CATS), "-q"])
    assert doc["n_samples"] == 60


def test_categories_replaced_within_an_ipc_stream_fail(tmp_path):
    pa = pytest.importorskip("pyarrow")
    rng = np.random.default_rng(2)
    probs = rng.dirichlet(np.ones(2), 8)

    def batch(rows, names):
        y = pa.DictionaryArray.from_arrays(pa.array([0] * 4, pa.int32()), names)
        return pa.table({"a": probs[rows, 0], "b": probs[rows, 1], "y": y})

    first, second = batch(slice(0, 4), ["a", "b"]), batch(slice(4, 8), ["b", "a"])
    with pa.ipc.new_stream(str(tmp_path / "t.arrow"), first.schema) as w:
        w.write_table(first)
        w.write_table(second)
    args = [p(tmp_path, "t.arrow"), "--label-column", "y", "--input", "probs"]
    line = one_error_line(invoke([*args, "-q"], 1))
    assert "row 4" in line
    assert "['b', 'a']" in line
    assert eval_json([*args, "--classes", "a,b", "-q"])["n_samples"] == 8


# --------------------------------------------------------------------------- #
# Ctrl-C while `import arrayloss` runs (the command's start-up)
# --------------------------------------------------------------------------- #

# The console script pip writes (argv[0] its path), with SIGINT sent to itself
# while `import arrayloss` imports its metrics: deterministic, no timing.
INTERRUPTED_START = """
import os, signal, sys
class Interrupt:
    def find_spec(self, name, path=None, target=None):
        if name == "arrayloss.metrics":
            os.kill(os.getpid(), signal.SIGINT)
        return None
sys.meta_path.insert(0, Interrupt())
sys.argv = [os.path.join(os.path.dirname(sys.executable), "arrayloss"),
            "eval", "--example", "-q"]
from arrayloss.cli import main
sys.exit(main())
"""


def test_ctrl_c_during_import_arrayloss_is_one_line_and_130():
    cmd = [sys.executable, "-c", INTERRUPTED_START]
    proc = subprocess.run(
        [sys.executable, "-c", WITH_DEFAULT_SIGINT, *cmd],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert (proc.returncode, proc.stderr, proc.stdout) == (
        130,
        "Error: interrupted\n",
        "",
    )


@pytest.mark.parametrize(
    ("argv0", "orig", "expected"),
    [
        ("/venv/bin/arrayloss", ["python", "/venv/bin/arrayloss"], True),
        ("C:/venv/Scripts/arrayloss.exe", ["arrayloss.exe"], True),
        ("-m", ["python", "-m", "arrayloss", "eval"], True),
        ("-m", ["python", "-X", "dev", "-marrayloss"], True),
        ("-m", ["python", "-m", "arrayloss.cli"], False),
        ("train.py", ["python", "train.py"], False),
        ("-c", ["python", "-c", "import arrayloss"], False),
        (  # a Dask worker the command spawned: multiprocessing sets its argv
            "/venv/bin/arrayloss",
            ["python", "-c", "spawn_main()", "--multiprocessing-fork"],
            False,
        ),
    ],
)
def test_only_the_command_guards_its_start_up(monkeypatch, argv0, orig, expected):
    from arrayloss import _startup

    monkeypatch.setattr(sys, "argv", [argv0])
    monkeypatch.setattr(sys, "orig_argv", orig, raising=False)
    assert _startup._is_command() is expected


def test_a_library_import_leaves_sigint_alone():
    code = (
        "import signal, arrayloss; "
        "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", WITH_DEFAULT_SIGINT, sys.executable, "-c", code],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.stdout == "True\n", proc.stderr


# --------------------------------------------------------------------------- #
# Zero-byte binary shards among others
# --------------------------------------------------------------------------- #


def _shards(folder, fmt):
    rng = np.random.default_rng(4)
    for sub in ("z", "y", "w"):
        (folder / sub).mkdir()
    for i in range(2):
        z, y, w = rng.normal(size=(10, 3)), rng.integers(0, 3, 10), rng.random(10)
        if fmt == "npy":
            np.save(folder / "z" / f"part-{i}.npy", z)
            np.save(folder / "y" / f"part-{i}.npy", y)
            np.save(folder / "w" / f"part-{i}.npy", w)
            continue
        pd = pytest.importorskip("pandas")
        for sub, frame in (
            ("z", pd.DataFrame(z, columns=list("abc"))),
            ("y", pd.DataFrame({"y": y})),
            ("w", pd.DataFrame({"w": w})),
        ):
            getattr(frame, f"to_{fmt}")(folder / sub / f"part-{i}.{fmt}")


@pytest.mark.parametrize("fmt", ["npy", "parquet", "feather"])
@pytest.mark.parametrize("role", ["z", "y", "w"])
def test_zero_byte_binary_shard_is_one_line_naming_it(tmp_path, fmt, role):
    if fmt != "npy":
        pytest.importorskip("pyarrow")
    _shards(tmp_path, fmt)
    for sub in ("z", "y", "w"):  # a third shard; the one of `role` has no bytes
        src = tmp_path / sub / f"part-0.{fmt}"
        dst = tmp_path / sub / f"part-2.{fmt}"
        dst.write_bytes(b"" if sub == role else src.read_bytes())
    (tmp_path / "out.json").write_text("old")
    args = [p(tmp_path, "z"), p(tmp_path, "y"), "--weights", p(tmp_path, "w")]
    result = invoke([*args, "-o", p(tmp_path, "out.json"), "-q"], 1)
    line = one_error_line(result)
    assert f"part-2.{fmt}' is empty (0 bytes)" in line
    assert (tmp_path / "out.json").read_text() == "old"


# --------------------------------------------------------------------------- #
# CSV reports: class names a spreadsheet would run as formulas
# --------------------------------------------------------------------------- #

RISKY = ["=1+2", "+x", "-y", "@z", "-1", "plain"]


@pytest.fixture
def risky(tmp_path):
    rng = np.random.default_rng(6)
    c = len(RISKY)
    np.save(tmp_path / "z.npy", rng.normal(size=(60, c)))
    # as names: with a numeric class name (-1), a number label is a name too
    (tmp_path / "y.txt").write_text("".join(f"{RISKY[i % c]}\n" for i in range(60)))
    return [p(tmp_path, "z.npy"), p(tmp_path, "y.txt"), "--classes", ",".join(RISKY)]


SAFE = ["'=1+2", "'+x", "'-y", "'@z", "-1", "plain"]


def test_per_class_csv_escapes_formula_names(tmp_path, risky):
    import csv

    invoke([*risky, "--per-class", p(tmp_path, "r.csv"), "-q"])
    with open(tmp_path / "r.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert [r[0] for r in rows[1 : 1 + len(RISKY)]] == SAFE


def test_csv_output_escapes_formula_names_json_keeps_them(risky):
    import csv
    import io

    out = invoke([*risky, "--per-class", "--confusion", "--format", "csv", "-q"])
    rows = list(csv.reader(io.StringIO(out.stdout)))
    named = {r[1] for r in rows if r[0].startswith(("per_class:", "confusion:"))}
    assert named >= set(SAFE)
    assert not named & {"=1+2", "+x", "-y", "@z"}
    doc = eval_json([*risky, "--per-class", "--confusion", "-q"])
    assert doc["confusion"]["classes"] == RISKY
    assert list(doc["per_class"])[: len(RISKY)] == RISKY


# --------------------------------------------------------------------------- #
# --renormalize: rows rounded to the digits they are written with
# --------------------------------------------------------------------------- #


def _softmax_rows(n, c, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=3.0, size=(n, c))
    p = np.exp(z - z.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True), rng.integers(0, c, n)


def _same_as_divided(folder, args, written, kind="probs"):
    """``eval ARGS`` gives the metrics of the rows ``written`` divided by their
    sums, saved at full precision (no --renormalize needed)."""
    import json

    probs = written if kind == "probs" else np.exp(written)
    np.save(folder / "q.npy", probs / probs.sum(axis=1, keepdims=True))
    got = json.loads(invoke([*args, "--format", "json", "-q"]).stdout)
    plain = [str(folder / "q.npy"), str(folder / "y.npy"), "--input", "probs"]
    want = json.loads(invoke([*plain, "--format", "json", "-q"]).stdout)
    assert got["n_samples"] == want["n_samples"]
    for key, value in want["metrics"].items():
        assert got["metrics"][key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


@pytest.mark.parametrize(
    ("c", "how"),
    [
        (10, "savetxt %.3g"),
        (100, "savetxt %.3g"),
        (3, "pandas %.3g"),
        (10, "pandas %.3f"),
        (2, "savetxt %.2g"),
    ],
)
def test_renormalize_takes_rows_rounded_as_written(tmp_path, c, how):
    """%.3g rows are up to 0.005 off (0.5 * 10**(1 - 3), whatever C), 1-3 % of
    a softmax's rows beyond the old fixed 0.001; %.3f rows up to C * 0.0005."""
    pd = pytest.importorskip("pandas")
    probs, y = _softmax_rows(2000, c)
    path = tmp_path / "p.csv"
    tool, fmt = how.split()
    if tool == "savetxt":
        np.savetxt(path, probs, fmt=fmt, delimiter=",")
    else:
        pd.DataFrame(probs).to_csv(path, index=False, float_format=fmt)
    written = np.loadtxt(path, delimiter=",", skiprows=int(tool == "pandas"))
    off = np.abs(written.sum(axis=1) - 1)
    assert off.max() > 1e-3  # refused by the fixed 0.001 before
    np.save(tmp_path / "y.npy", y)
    args = [str(path), p(tmp_path, "y.npy"), "--input", "probs", "--renormalize"]
    _same_as_divided(tmp_path, args, written)


def test_renormalize_takes_rounded_logprobs(tmp_path):
    probs, y = _softmax_rows(2000, 10, seed=1)
    np.savetxt(tmp_path / "lp.csv", np.log(probs), fmt="%.3g", delimiter=",")
    written = np.loadtxt(tmp_path / "lp.csv", delimiter=",")
    assert np.abs(np.exp(written).sum(axis=1) - 1).max() > 1e-3
    np.save(tmp_path / "y.npy", y)
    args = [str(tmp_path / "lp.csv"), str(tmp_path / "y.npy")]
    args += ["--input", "logprobs", "--renormalize"]
    _same_as_divided(tmp_path, args, written, kind="logprobs")


@pytest.mark.parametrize(
    ("row", "why"),
    [
        ([0.6, 0.5], "1 digit: 0.1 off, more than the 5 % that any rounding gets"),
        ([1.0, 1.0, 0.0], "one-hot twice"),
        ([0.502, 0.4955], "4 digits: 0.0025 off, more than the 0.001"),
        ([0.5, 0.4979999999999], "full precision: only the 0.001"),
        ([0.731, 0.881, 0.269], "sigmoid outputs, %.3g"),
    ],
)
def test_renormalize_still_refuses_rows_rounding_cannot_explain(tmp_path, row, why):
    np.save(tmp_path / "p.npy", np.array([[0.5, 0.5, 0.0][: len(row)], row]))
    np.save(tmp_path / "y.npy", np.array([0, 1]))
    args = [p(tmp_path, "p.npy"), p(tmp_path, "y.npy"), "--input", "probs"]
    line = one_error_line(invoke([*args, "--renormalize"], 1))
    assert "row 1" in line, why
    assert "further from 1 than rounding explains" in line, why


def test_the_hint_names_what_the_rows_digits_allow(tmp_path):
    """Without --renormalize, a %.3g row 0.0036 off is told to add it."""
    row = [0.1] * 9 + [0.0964]  # 0.1004 x 9 + 0.0964 = 1, written with 3 digits
    np.save(tmp_path / "p.npy", np.array([row]))
    np.save(tmp_path / "y.npy", np.array([0]))
    args = [p(tmp_path, "p.npy"), p(tmp_path, "y.npy"), "--input", "probs"]
    line = one_error_line(invoke(args, 1))
    assert "digits explain 0.00455" in line
    assert "add --renormalize" in line
    assert eval_json([*args, "--renormalize", "-q"])["n_samples"] == 1


# --------------------------------------------------------------------------- #
# A named index column read as scores (a wrong number, silently, before)
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("how", ["rename_axis", "reset_index"])
def test_a_named_index_column_read_as_scores_is_warned_about(tmp_path, how):
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(8)
    df = pd.DataFrame(rng.normal(size=(40, 3)), columns=list("abc"))
    df["y"] = rng.integers(0, 3, 40)
    if how == "rename_axis":
        df.rename_axis("id").to_csv(tmp_path / "t.csv")
        name = "id"
    else:
        df.reset_index().to_csv(tmp_path / "t.csv", index=False)
        name = "index"
    args = [p(tmp_path, "t.csv"), "--label-column", "y", "-q"]
    result = invoke(args)
    assert result.stderr.count("\n") == 1
    assert f"first score column of SCORES '{tmp_path / 't.csv'}', '{name}'" in (
        result.stderr
    )
    assert f"(--drop-column {name})" in result.stderr
    doc = eval_json([*args, "--drop-column", name])  # no warning then
    assert doc["n_classes"] == 3


def test_a_blank_line_among_one_column_labels_is_a_missing_value(tmp_path):
    """pandas writes NaN in a one-column CSV as an empty line, which was skipped:
    the labels then had a row too few, reported as a row count mismatch."""
    pd = pytest.importorskip("pandas")
    np.save(tmp_path / "z.npy", np.zeros((4, 3)))
    pd.Series([0, 1, np.nan, 2], name="y").to_csv(tmp_path / "y.csv", index=False)
    line = one_error_line(invoke([p(tmp_path, "z.npy"), p(tmp_path, "y.csv")], 1))
    assert "y.csv' line 4: an empty line between values, a missing value" in line
    (tmp_path / "y.txt").write_text("\n0\n1\n2\n0\n\n\n")  # around them: fine
    assert eval_json([p(tmp_path, "z.npy"), p(tmp_path, "y.txt")])["n_samples"] == 4


# --------------------------------------------------------------------------- #
# Numeric --classes and integer-typed labels (sklearn's classes_ = [1, 2, 3])
# --------------------------------------------------------------------------- #


@pytest.fixture
def one_based(tmp_path):
    rng = np.random.default_rng(9)
    probs = rng.dirichlet(np.ones(3), 30)
    y = rng.integers(1, 3, 30)  # classes 1, 2 (and 3) of classes_ = [1, 2, 3]
    np.save(tmp_path / "p.npy", probs)
    np.save(tmp_path / "y.npy", y)
    (tmp_path / "y.txt").write_text("".join(f"{v}\n" for v in y))
    return tmp_path, y


def test_integer_labels_are_numeric_class_names_as_text_ones_are(one_based):
    """Labels 1, 2 with --classes 1,2,3 were names when read as text but class
    indices when an int .npy or Parquet column: columns 1 and 2 instead of 0
    and 1, a wrong number without a word when no label 3 came."""
    folder, y = one_based
    base = [p(folder, "p.npy"), "--input", "probs", "--classes", "1,2,3", "-q"]
    text = eval_json([base[0], p(folder, "y.txt"), *base[1:]])
    ints = eval_json([base[0], p(folder, "y.npy"), *base[1:]])
    assert ints["metrics"] == text["metrics"]
    np.save(folder / "y0.npy", y - 1)  # the same classes as indices
    plain = eval_json([base[0], p(folder, "y0.npy"), "--input", "probs", "-q"])
    assert ints["metrics"] == plain["metrics"]


def test_integer_labels_under_numeric_classes_keep_ignore_label(one_based):
    folder, y = one_based
    marked = y.copy()
    marked[:4] = -100
    np.save(folder / "ym.npy", marked)
    args = [p(folder, "p.npy"), p(folder, "ym.npy"), "--input", "probs"]
    doc = eval_json([*args, "--classes", "1,2,3", "--ignore-label", "-100", "-q"])
    assert doc["n_ignored"] == 4


def test_integer_label_not_among_numeric_classes_fails(one_based):
    folder, _ = one_based
    args = [p(folder, "p.npy"), p(folder, "y.npy"), "--input", "probs"]
    line = one_error_line(invoke([*args, "--classes", "2,3,4"], 1))
    assert "1 is not one of the --classes" in line


def test_a_header_of_numbered_classes_read_as_data_is_explained(tmp_path):
    """pd.DataFrame(proba, columns=clf.classes_) for classes 1, 2, 3 writes the
    header 1,2,3, a row of numbers read as data: the error said only that the
    files' row counts differ."""
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(10)
    probs = rng.dirichlet(np.ones(3), 20)
    y = rng.integers(1, 4, 20)
    pd.DataFrame(probs, columns=[1, 2, 3]).to_csv(tmp_path / "p.csv", index=False)
    (tmp_path / "y.txt").write_text("".join(f"{v}\n" for v in y))
    args = [p(tmp_path, "p.csv"), p(tmp_path, "y.txt"), "--input", "probs"]
    line = one_error_line(invoke(args, 1))
    assert "its first line, '1,2,3', may be a header of class names" in line
    assert "--header and --classes 1,2,3" in line
    doc = eval_json([*args, "--header", "--classes", "1,2,3", "-q"])
    assert doc["n_samples"] == 20


def test_name_labels_without_classes_are_the_score_columns_names(tmp_path):
    """``pd.DataFrame(clf.predict_proba(X), columns=clf.classes_)`` beside the
    name labels: the score columns' names are the classes, as --classes would
    give them (it was an error asking for --classes)."""
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(11)
    names = ["setosa", "versicolor", "virginica"]
    df = pd.DataFrame(rng.dirichlet(np.ones(3), 10), columns=names)
    df["y"] = rng.choice(names, 10)
    df.to_csv(tmp_path / "t.csv", index=False)
    args = [p(tmp_path, "t.csv"), "--label-column", "y", "--input", "probs"]
    report = ["--per-class", "--confusion", "-q"]
    got = eval_json([*args, *report])
    want = eval_json([*args, *report, "--classes", ",".join(names)])
    for key in ("metrics", "per_class", "confusion"):
        assert got[key] == want[key], key
    assert list(got["per_class"])[:3] == names
    assert got["confusion"]["classes"] == names
    for size in ("1", "3"):
        streamed = eval_json([*args, *report, "--chunk-size", size])
        assert streamed["per_class"] == got["per_class"]
    if importlib.util.find_spec("pyarrow") is not None:  # the same from Parquet
        df.to_parquet(tmp_path / "t.parquet")
        table = eval_json([p(tmp_path, "t.parquet"), *args[1:], *report])
        assert table["per_class"] == got["per_class"]
    pd.DataFrame(df[names].to_numpy()).assign(y=df["y"]).to_csv(
        tmp_path / "n.csv", index=False
    )  # numbered columns (0, 1, 2) name no classes: as before
    args[0] = p(tmp_path, "n.csv")
    assert one_error_line(invoke(args, 1)).endswith(
        "is not a class index; for class names, give --classes\n"
    )


def test_name_labels_matching_no_score_column_name_say_so(tmp_path):
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(12)
    df = pd.DataFrame(rng.dirichlet(np.ones(3), 10), columns=["a", "b", "c"])
    df["y"] = rng.choice(["cat", "dog", "fish"], 10)
    df.to_csv(tmp_path / "t.csv", index=False)
    args = [p(tmp_path, "t.csv"), "--label-column", "y", "--input", "probs"]
    line = one_error_line(invoke(args, 1))
    assert "is not a class index, nor one of the score columns' " in line
    assert "names (a,b,c)" in line
    assert line.endswith("for other names, give --classes\n")


def test_name_labels_are_all_score_column_names_or_an_error(tmp_path):
    """Once the first label is one of the score columns' names, every label
    must be one: a number among them is no class index (no silent mix of the
    two), and the other way round, at every chunk size."""
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(13)
    names = ["cat", "dog", "fish"]
    df = pd.DataFrame(rng.dirichlet(np.ones(3), 30), columns=names)
    df["y"] = rng.choice(names, 30)
    df.loc[25, "y"] = "1"
    df.to_csv(tmp_path / "t.csv", index=False)
    args = [p(tmp_path, "t.csv"), "--label-column", "y", "--input", "probs"]
    for size in ("1", "7", "30"):
        line = one_error_line(invoke([*args, "--chunk-size", size], 1))
        assert "row 25: '1' is not one of the score columns' names" in line
        assert "(cat,dog,fish; else give --classes)" in line
    df["y"] = rng.integers(0, 3, 30).astype(str)  # indices, then a name
    df.loc[4, "y"] = "dog"
    df.to_csv(tmp_path / "t.csv", index=False)
    for size in ("1", "3", "30"):
        line = one_error_line(invoke([*args, "--chunk-size", size], 1))
        assert "row 4: 'dog' is a score column's name, but the first label is a " in (
            line
        )


@pytest.mark.parametrize("size", ["1", "2", "6"])
def test_ignored_first_labels_do_not_decide_the_names(tmp_path, size):
    """The --ignore-label rows before the first name label leave the score
    columns' names the classes (a chunk of ignored labels alone decided
    against them: "'cat' is not a class index, nor one of ... (cat,dog,fish)")."""
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(16)
    names = ["cat", "dog", "fish"]
    df = pd.DataFrame(rng.dirichlet(np.ones(3), 6), columns=names)
    df["y"] = ["-100", "-100", "cat", "fish", "dog", "-100"]
    df.to_csv(tmp_path / "t.csv", index=False)
    args = [p(tmp_path, "t.csv"), "--label-column", "y", "--input", "probs"]
    got = eval_json(
        [*args, "--ignore-label", "-100", "--per-class", "-q", "--chunk-size", size]
    )
    assert list(got["per_class"])[:3] == names
    assert [got["per_class"][n]["support"] for n in names] == [1, 1, 1]


def test_integer_labels_beside_named_score_columns_stay_indices(tmp_path):
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(14)
    df = pd.DataFrame(rng.dirichlet(np.ones(3), 12), columns=["p_a", "p_b", "p_c"])
    df["y"] = rng.integers(0, 3, 12)
    df.to_csv(tmp_path / "t.csv", index=False)
    args = [p(tmp_path, "t.csv"), "--label-column", "y", "--input", "probs"]
    got = eval_json([*args, "--per-class", "-q"])
    assert list(got["per_class"])[:3] == ["0", "1", "2"]


def test_a_labels_file_of_names_under_a_header_is_read(tmp_path):
    """A separate labels CSV with a header line (``label``) above class names
    that are the score columns' names: the header is found (it was read as a
    label, "has more rows than SCORES")."""
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(15)
    names = ["cat", "dog", "fish"]
    pd.DataFrame(rng.dirichlet(np.ones(3), 10), columns=names).to_csv(
        tmp_path / "s.csv"
    )
    y = rng.choice(names, 10)
    pd.DataFrame({"label": y}).to_csv(tmp_path / "y.csv", index=False)
    pd.Series(y).to_csv(tmp_path / "bare.csv", index=False, header=False)
    args = ["--input", "probs", "--per-class", "-q"]
    got = eval_json([p(tmp_path, "s.csv"), p(tmp_path, "y.csv"), *args])
    bare = eval_json([p(tmp_path, "s.csv"), p(tmp_path, "bare.csv"), *args])
    assert got["n_samples"] == bare["n_samples"] == 10
    assert got["per_class"] == bare["per_class"]
    assert list(got["per_class"])[:3] == names


def test_header_classes_takes_words_only():
    from arrayloss.io import header_classes

    assert header_classes(["cat", "dog"], 2) == ("cat", "dog")
    for names in (["0", "1"], ["1", "2"], ["a", "a"], ["a", ""], ["False", "True"]):
        assert header_classes(names, 2) is None, names
    assert header_classes(["a", "b"], 3) is None
    assert header_classes(None, 2) is None


@pytest.mark.parametrize("c", [2, 3, 7, 10, 50])
@pytest.mark.parametrize("fmt", ["%.2g", "%.3g", "%.4g", "%.6g", "%.2f", "%.3f"])
@pytest.mark.parametrize("kind", ["probs", "logprobs"])
def test_rounding_tolerance_bounds_what_rounding_does(c, fmt, kind):
    """Property: rows of probabilities (Dirichlet, peaked and flat) written with
    ``fmt`` sum within `rounding_tolerance` of 1 wherever that bound is below
    the 0.05 cap; rows at full precision get 0.001 (a row of 1.0 and values
    below 1e-12 reads as written with one digit, and sums to 1 anyway)."""
    from arrayloss._rounding import MAX_ROUNDING, rounding_tolerance

    rng = np.random.default_rng(c)
    rows = np.concatenate(
        [rng.dirichlet(np.full(c, a), 300) for a in (0.05, 0.3, 1.0, 10.0)]
    )
    rows = rows[(rows > 1e-300).all(axis=1)]
    values = rows if kind == "probs" else np.log(rows)
    written = np.array([[float(fmt % v) for v in r] for r in values])
    probs = written if kind == "probs" else np.exp(written)
    off = np.abs(probs.sum(axis=1) - 1)
    tol = rounding_tolerance(written, kind)
    capped = tol >= MAX_ROUNDING
    assert (off[~capped] <= tol[~capped] * (1 + 1e-9) + 1e-15).all()
    exact = ((rows > 1e-12) & (rows < 1)).all(axis=1)  # not 1.0 and a zero
    assert (rounding_tolerance(values[exact], kind) == 1e-3).all()


def test_a_label_column_read_as_scores_is_warned_about(tmp_path):
    """A CSV of logits with its labels last, no header, against a LABELS file:
    the label column was the logits of a 4th class, without a word."""
    rng = np.random.default_rng(12)
    probs = rng.normal(size=(30, 3))  # logits
    y = rng.integers(0, 3, 30)
    np.savetxt(tmp_path / "t.csv", np.column_stack([probs, y]), delimiter=",")
    np.save(tmp_path / "y.npy", y)
    args = [p(tmp_path, "t.csv"), p(tmp_path, "y.npy"), "-q"]
    result = invoke(args)
    assert result.stderr.startswith("warning: score column 3 of SCORES")
    assert "(--drop-column 3)" in result.stderr
    assert eval_json([*args, "--drop-column", "3"])["n_classes"] == 3
    np.savetxt(tmp_path / "f.csv", np.column_stack([y, probs]), delimiter=",")
    first = invoke([p(tmp_path, "f.csv"), p(tmp_path, "y.npy"), "-q"])
    assert first.stderr.startswith("warning: score column 0 of SCORES")
    onehot = np.column_stack([1 - y % 2, y % 2]).astype(float)  # scores [1-y, y]
    np.save(tmp_path / "o.npy", onehot)
    np.save(tmp_path / "b.npy", y % 2)
    eval_json([p(tmp_path, "o.npy"), p(tmp_path, "b.npy"), "-q"])  # no warning
    np.save(tmp_path / "zy.npy", np.column_stack([probs, y]))  # an .npy: no option
    npy = invoke([p(tmp_path, "zy.npy"), p(tmp_path, "y.npy"), "-q"])
    assert "score column 3 of SCORES" in npy.stderr
    assert "(save the scores without it)" in npy.stderr


def test_an_index_column_of_a_headerless_csv_is_warned_about(tmp_path):
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(13)
    df = pd.DataFrame(rng.normal(size=(40, 3)))
    df.to_csv(tmp_path / "t.csv", header=False)  # the index, no header
    np.save(tmp_path / "y.npy", rng.integers(0, 3, 40))
    args = [p(tmp_path, "t.csv"), p(tmp_path, "y.npy"), "-q"]
    result = invoke(args)
    assert "first score column of SCORES" in result.stderr
    assert "(column 0) holds the row numbers" in result.stderr
    assert "(--drop-column 0)" in result.stderr
    assert eval_json([*args, "--drop-column", "0"])["n_classes"] == 3
    np.save(tmp_path / "z.npy", np.arange(40.0)[:, None] * [1, 2, 3])  # integers
    eval_json([p(tmp_path, "z.npy"), p(tmp_path, "y.npy"), "-q"])  # no warning


@pytest.mark.parametrize(
    ("make", "said"),
    [
        ("npy", "is a NumPy .npy file, not CSV (standard input is read as CSV"),
        ("gzip-npy", "is gzip-compressed data, not CSV (its content is not CSV"),
        ("gzip-csv", None),  # decompressed and read
    ],
)
def test_a_binary_file_on_standard_input_is_named(tmp_path, make, said):
    """`cat scores.npy | arrayloss eval - ...` said only that byte 0x93 at
    position 0 was not UTF-8 (a file path's first bytes were already looked at);
    compressed CSV on standard input is read decompressed."""
    import gzip

    np.save(tmp_path / "y.npy", np.array([0, 1]))
    np.save(tmp_path / "z.npy", np.zeros((2, 3)))
    data = (tmp_path / "z.npy").read_bytes()
    if make == "gzip-npy":
        data = gzip.compress(data)
    elif make == "gzip-csv":
        data = gzip.compress(b"0.1,0.9\n0.5,0.5\n")
    cmd = [sys.executable, "-m", "arrayloss", "eval", "-", p(tmp_path, "y.npy")]
    proc = subprocess.run(
        [*cmd, "--input", "probs", "--format", "json", "-q"],
        input=data, capture_output=True, timeout=120,
    )  # fmt: skip
    if said is None:
        assert proc.returncode == 0, proc.stderr
        assert '"n_samples": 2' in proc.stdout.decode()
        return
    assert proc.returncode == 1, proc.stderr
    assert said in proc.stderr.decode()
    assert proc.stderr.decode().count("\n") == 1


# --------------------------------------------------------------------------- #
# Compressed text: df.to_csv("preds.csv.gz")
# --------------------------------------------------------------------------- #


@pytest.fixture
def table(tmp_path):
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(14)
    df = pd.DataFrame(rng.dirichlet(np.ones(3), 50), columns=list("abc"))
    df["y"] = rng.integers(0, 3, 50)
    df.to_csv(tmp_path / "t.csv", index=False)
    return tmp_path, df


@pytest.mark.parametrize("suffix", [".csv.gz", ".tsv.bz2", ".csv.xz"])
def test_compressed_text_is_read_as_its_text(table, suffix):
    folder, df = table
    df.to_csv(folder / f"t{suffix}", index=False, sep="\t" if "tsv" in suffix else ",")
    args = ["--label-column", "y", "--input", "probs", "-q"]
    plain = eval_json([p(folder, "t.csv"), *args])
    packed = eval_json([p(folder, f"t{suffix}"), *args])
    assert packed["metrics"] == plain["metrics"]
    df[["y"]].to_csv(folder / "y.csv.gz", index=False)  # labels too, and shards
    (folder / "s").mkdir()
    df.iloc[:20].to_csv(folder / "s" / "part-0.csv.gz", index=False)
    df.iloc[20:].to_csv(folder / "s" / "part-1.csv.gz", index=False)
    sharded = eval_json([p(folder, "s"), *args])
    assert sharded["metrics"] == pytest.approx(plain["metrics"], rel=1e-12)
    two = [p(folder, "t.csv"), p(folder, "y.csv.gz"), "--score-columns", "a:c"]
    labels = eval_json([*two, *args[2:]])
    assert labels["metrics"] == plain["metrics"]


@pytest.mark.parametrize(
    ("damage", "said"),
    [("cut", "the compressed file is cut short"), ("npy", "a compressed .npy file")],
)
def test_a_broken_or_binary_compressed_file_is_one_line(table, damage, said):
    import gzip

    folder, df = table
    df.to_csv(folder / "t.csv.gz", index=False)
    data = (folder / "t.csv.gz").read_bytes()
    path = folder / "t.csv.gz"
    if damage == "cut":
        path.write_bytes(data[: len(data) // 2])
        args = [str(path), "--label-column", "y", "--input", "probs"]
    else:
        np.save(folder / "z.npy", np.zeros((3, 3)))
        path = folder / "z.npy.gz"
        path.write_bytes(gzip.compress((folder / "z.npy").read_bytes()))
        np.save(folder / "y.npy", np.zeros(3, dtype=int))
        args = [str(path), p(folder, "y.npy")]
    assert said in one_error_line(invoke(args, 1))


def test_a_numbered_header_with_a_named_label_column_is_a_header(table):
    """pd.DataFrame(proba).assign(y=y).to_csv(index=False) writes 0,1,2,y: it was
    read as a row of data when the labels came from another file."""
    folder, df = table
    numbered = df.rename(columns={"a": 0, "b": 1, "c": 2})
    numbered.to_csv(folder / "n.csv", index=False)
    np.save(folder / "y.npy", df["y"].to_numpy())
    args = [p(folder, "n.csv"), p(folder, "y.npy"), "--input", "probs", "-q"]
    doc = eval_json([*args, "--drop-column", "y"])
    assert doc["n_samples"] == 50


# --------------------------------------------------------------------------- #
# 1-based labels (R, MATLAB): an error that says so, never a shift
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("threads", ["1", "3"])
@pytest.mark.parametrize("size", ["1", "2", "7", "40"])
@pytest.mark.parametrize("fmt", ["npy", "float", "csv"])
def test_one_based_labels_are_told_so(tmp_path, monkeypatch, threads, size, fmt):
    """Labels 1..C for C score columns: the out-of-range error says they look
    1-based and how to fix them, at every chunk size and thread count."""
    monkeypatch.setenv("ARRAYLOSS_EVAL_THREADS", threads)
    rng = np.random.default_rng(21)
    np.save(tmp_path / "z.npy", rng.normal(size=(40, 4)))
    y = np.arange(40) % 3 + 1
    y[9] = 4
    if fmt == "npy":
        np.save(tmp_path / "y.npy", y)
        labels = p(tmp_path, "y.npy")
    elif fmt == "float":  # as pandas writes an int column with a NaN once
        np.save(tmp_path / "y.npy", y.astype(np.float64))
        labels = p(tmp_path, "y.npy")
    else:
        np.savetxt(tmp_path / "y.csv", y, fmt="%d")
        labels = p(tmp_path, "y.csv")
    args = [p(tmp_path, "z.npy"), labels, "--chunk-size", size]
    line = one_error_line(invoke(args, 1))
    assert "row 9: label 4 is out of range for 4 classes (0 to 3); " in line
    assert "the labels look 1-based (up to this row they run from 1 to 4" in line
    assert "subtracting 1 from each label" in line
    y[4] = 0  # a 0 before it: not 1-based, a class too many
    np.save(tmp_path / "y0.npy", y)
    args[1] = p(tmp_path, "y0.npy")
    line = one_error_line(invoke(args, 1))
    assert line.endswith("label 4 is out of range for 4 classes (0 to 3)\n")


def test_one_based_hint_skips_ignored_labels(tmp_path):
    """A --ignore-label row (read as a stand-in class 0) is no label 0."""
    np.save(tmp_path / "z.npy", np.zeros((6, 3)))
    np.save(tmp_path / "y.npy", np.array([-100, 1, 2, 3, 1, 2]))
    args = [p(tmp_path, "z.npy"), p(tmp_path, "y.npy"), "--ignore-label", "-100"]
    for size in ("1", "6"):
        line = one_error_line(invoke([*args, "--chunk-size", size], 1))
        assert "row 3: label 3 is out of range" in line
        assert "look 1-based" in line


def test_labels_one_to_c_minus_one_read_as_indices(tmp_path):
    """Labels 1..C-1 cannot be told from 0-based ones that never name class 0:
    read as they are (class 0 has no support), never shifted."""
    rng = np.random.default_rng(22)
    np.save(tmp_path / "z.npy", rng.normal(size=(30, 4)))
    np.save(tmp_path / "y.npy", np.arange(30) % 3 + 1)
    doc = eval_json([p(tmp_path, "z.npy"), p(tmp_path, "y.npy"), "--per-class", "-q"])
    assert doc["per_class"]["0"]["support"] == 0
    assert [doc["per_class"][c]["support"] for c in "123"] == [10, 10, 10]


def test_label_range_error_survives_pickling():
    """A Dask worker's error is pickled back to the client: the 1-based
    labels' error keeps its message and what `one_based` needs."""
    import pickle

    from arrayloss.io import label_indices
    from arrayloss.io._labels import LabelRangeError

    with pytest.raises(LabelRangeError) as info:
        label_indices(
            np.array([1, 2, 3]), n_classes=3, classes=None, start=5, label="L"
        )
    back = pickle.loads(pickle.dumps(info.value))
    assert str(back) == str(info.value)
    assert "row 7: label 3 is out of range" in str(back)
    assert "look 1-based" in str(back)
    assert (back.value, back.index, back.row, back.n_classes) == (3, 2, 7, 3)
    assert "look 1-based" not in str(back.one_based(zero_before=True))

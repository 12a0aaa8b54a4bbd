"""``arrayloss eval`` on the gaps found in review: rounded probabilities under
--renormalize, the class count the per-class report takes, boolean and
categorical labels, Ctrl-C at start-up, zero-byte binary shards and CSV reports
a spreadsheet would run as formulas."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import eval_json, one_error_line
from conftest import invoke_eval as invoke

import arrayloss.cli._report as report_module

MAX_REPORT_CLASSES = getattr(report_module, "MAX_REPORT_CLASSES", 10_000)


def p(folder, name):
    return str(folder / name)


# --------------------------------------------------------------------------- #
# --per-class / --confusion: a class count beyond the limit
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--confusion"], "--confusion"),
        (["--per-class"], "--per-class"),
        (["--per-class", "--confusion"], "--per-class and --confusion"),
    ],
)
def test_report_beyond_its_class_limit_is_usage_before_allocating(
    tmp_path, flags, named
):
    c = MAX_REPORT_CLASSES + 1
    np.save(tmp_path / "z.npy", np.zeros((2, c), dtype=np.float32))
    np.save(tmp_path / "y.npy", np.array([0, 1]))
    result = invoke([p(tmp_path, "z.npy"), p(tmp_path, "y.npy"), *flags], 2)
    line = one_error_line(result)
    assert named in line
    assert f"{c} classes" in line
    assert f"at most {MAX_REPORT_CLASSES}" in line


@pytest.mark.parametrize("flag", ["--confusion", "--per-class"])
def test_report_limit_is_checked_on_the_class_count(tmp_path, monkeypatch, flag):
    """A lowered limit shows the check without a large file."""
    monkeypatch.setattr(report_module, "MAX_REPORT_CLASSES", 8, raising=False)
    np.save(tmp_path / "z.npy", np.zeros((3, 9)))
    np.save(tmp_path / "y.npy", np.array([0, 1, 8]))
    line = one_error_line(invoke([p(tmp_path, "z.npy"), p(tmp_path, "y.npy"), flag], 2))
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
    import pandas as pd

    df = pd.DataFrame(probs, columns=["False", "True"])
    df["y"] = y
    if kind == "npy":
        np.save(folder / "y.npy", y)
        return [p(folder, "p.npy"), p(folder, "y.npy")]
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
    if kind == "lower-txt":
        (folder / "y.txt").write_text("".join(f"{str(v).lower()}\n" for v in y))
        return [p(folder, "p.npy"), p(folder, "y.txt")]
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

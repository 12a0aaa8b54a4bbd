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

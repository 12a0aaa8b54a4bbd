"""Numbers a reader sees are generated (issue 12, defect 9): the glance table of
docs/study/README.md against the committed runs.csv files, and the backend page
that README links to."""

from __future__ import annotations

import csv
import importlib.util
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def glance():
    return _load(ROOT / "scripts" / "study_glance.py", "study_glance")


def test_glance_table_matches_the_committed_runs(glance):
    """Defect 9 (issue 12): the glance table was copied by hand.  It is now
    generated from docs/study/runs.csv and docs/study/digits/runs.csv; this fails
    when the committed block no longer matches them (run
    ``python scripts/study_glance.py``)."""
    got = glance.committed()
    assert got.count("\n| ") == 9  # the header and the eight losses: it compared rows
    assert got == glance.block()


def test_glance_check_fails_on_a_changed_run(glance, tmp_path):
    """The comparison above can fail: one changed accuracy in a copy of the runs
    changes the generated block."""
    study = tmp_path / "study"
    shutil.copytree(ROOT / "docs" / "study", study)
    runs = study / "runs.csv"
    with runs.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        if row["loss"] == "tanimoto" and float(row["noise"]) == 0.4:
            row["test_accuracy"] = "0.9"
    with runs.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert glance.block(study) != glance.committed()
    assert "| tanimoto | 0.554 | 0.501 | **0.900** |" in glance.block(study)


def test_readme_links_to_the_generated_backend_page():
    """Defect 9: README held backend ratios typed by hand; it now links to the
    page ``bench/bench_backends.py --markdown`` writes, which says how it was made."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/benchmarks/backends.md" in readme
    assert "1.00× / 1.00×" not in readme  # the old hand-copied ratio column
    page = (ROOT / "docs" / "benchmarks" / "backends.md").read_text(encoding="utf-8")
    for stamp in (
        "- command: `python bench/bench_backends.py",
        "- date: ",
        "- commit: `",
    ):
        assert stamp in page
    assert "| numpy | cross_entropy | float32 |" in page

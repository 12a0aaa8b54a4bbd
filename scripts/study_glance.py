"""docs/study/README.md, summary.md and the figures, from the committed runs.

Fills ``scripts/study_README.template.md`` with what ``docs/study/runs.csv`` and
``docs/study/study.json`` give: the setup, the plateau rule and whether every run
reached it, the version and commit stamp, the
glance table of verdicts, the accuracy tables, each paper's claim checked by the
written rule (`CLAIMS`), and the cost; renders ``summary.md`` and the three
figures (with ``curves.csv``) again from the same files, as the study does.
``scripts/run_study.sh`` calls it after the runs; ``tests/test_study_docs.py``
fails when a committed page no longer matches what the committed runs give.

Usage::

    python scripts/study_glance.py            # rewrite the pages and figures
    python scripts/study_glance.py --check    # exit 1 if README.md or summary.md is stale
    python scripts/study_glance.py --print    # print README.md
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STUDY = ROOT / "docs" / "study"
TEMPLATE = ROOT / "scripts" / "study_README.template.md"

sys.path.insert(0, str(ROOT))
from arrayloss.cli import _study_report as report  # noqa: E402
from arrayloss.cli._study_report import Claim  # noqa: E402

# The papers' claims, as tests on the verdicts (the rule is in the template).
CLAIMS = (
    Claim(
        "Janocha & Czarnecki (2017)",
        "the expectation losses L1∘σ and L2∘σ are the most robust to label noise",
        ("expectation", "regularised_expectation"),
        "noisy",
        "better",
    ),
    Claim(
        "Janocha & Czarnecki (2017)",
        "Tanimoto and Cauchy–Schwarz are viable classification losses",
        ("tanimoto", "cauchy_schwarz"),
        "clean",
        "not worse",
    ),
    Claim(
        "Dräger & Dunkelau (2022)",
        "Keras' KL divergence can beat cross-entropy",
        ("keras.kl_divergence",),
        "all",
        "better",
    ),
    Claim(
        "Berrada, Zisserman & Kumar (2018)",
        "the smooth top-5 SVM beats cross-entropy on top-5 accuracy under label noise",
        ("smooth_topk_svm",),
        "noisy",
        "better",
        metric="top_k_accuracy",
    ),
    Claim(
        "Berrada, Zisserman & Kumar (2018)",
        "... and on top-1 accuracy under label noise",
        ("smooth_topk_svm",),
        "noisy",
        "better",
    ),
    Claim(
        "Zhang & Sabuncu (2018)",
        "generalized cross-entropy is more robust to label noise than cross-entropy",
        ("generalized_cross_entropy",),
        "noisy",
        "better",
    ),
    Claim(
        "Wang et al. (2019)",
        "symmetric cross-entropy is more robust to label noise than cross-entropy",
        ("symmetric_cross_entropy",),
        "noisy",
        "better",
    ),
    Claim(
        "Ma et al. (2020)",
        "the active-passive pair NCE+RCE is more robust to label noise than "
        "cross-entropy",
        ("nce_rce",),
        "noisy",
        "better",
    ),
    Claim(
        "Leng et al. (2022)",
        "Poly-1 improves on cross-entropy on clean labels",
        ("poly1",),
        "clean",
        "better",
    ),
    Claim(
        "Martins & Astudillo (2016)",
        "the sparsemax loss classifies about as well as cross-entropy",
        ("sparsemax_loss",),
        "clean",
        "not worse",
    ),
)


def load(study: Path = STUDY) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The runs and the settings of a study folder."""
    rows = report.read_runs((study / "runs.csv").read_text(encoding="utf-8"))
    meta = json.loads((study / "study.json").read_text(encoding="utf-8"))
    return rows, meta


def _cost(meta: dict[str, Any]) -> str:
    return (
        f"{meta['runs']} runs (tuning included) took {meta['wall_seconds']:g} s of "
        f"wall-clock time and {meta['cpu_seconds']:g} s of CPU time with "
        f"{meta['jobs']} worker processes; the study had estimated "
        f"{meta['estimated_cpu_seconds']:g} s of CPU time before it started. The "
        "machine's two cores were shared with other jobs, so the wall time says "
        "little. Every run is seeded and each worker uses one BLAS thread, so the "
        "numbers do not depend on the load or on --jobs. A run's own time is in "
        "`runs.csv`."
    )


def readme(study: Path = STUDY, template: Path = TEMPLATE) -> str:
    """README.md as the runs of ``study`` give it."""
    rows, meta = load(study)
    fields = {
        "stamp": report.stamp(meta),
        "docs_command": meta.get("command", "") or "arrayloss study ...",
        "curve_noise": f"{meta['curve_noise']:g}",
        "setup": report.describe(meta),
        "plateau_rule": report.plateau_rule(meta),
        "plateau_check": report.plateau_check(rows, meta),
        "min_epochs": str(meta["epochs"]),
        "patience": str(meta["patience"]),
        "glance": report.glance(rows),
        "accuracy_es": report.accuracy_table(rows, "es"),
        "accuracy_final": report.accuracy_table(rows, "final"),
        "claims": report.claims(rows, CLAIMS, k=int(meta.get("top_k", 5))),
        "cost": _cost(meta),
    }
    text = template.read_text(encoding="utf-8")
    missing = sorted(set(re.findall(r"\{\{(\w+)\}\}", text)) - fields.keys())
    if missing:
        msg = f"{template}: unknown placeholders {missing}"
        raise SystemExit(msg)
    for key, value in fields.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def summary(study: Path = STUDY) -> str:
    """summary.md as the runs of ``study`` give it."""
    rows, meta = load(study)
    plots = (study / "accuracy_vs_noise.png").exists()
    return report.summary_page(rows, meta, plots=plots)


def figures(study: Path = STUDY) -> None:
    """Draw the three figures of ``study`` again (matplotlib needed)."""
    rows, meta = load(study)
    curves = report.read_curves((study / "curves.csv").read_text(encoding="utf-8"))
    for name, blob in report.figures(rows, curves, meta):
        tmp = study / f".{name}.tmp{os.getpid()}"
        tmp.write_bytes(blob)
        tmp.replace(study / name)


def stale(study: Path = STUDY) -> list[str]:
    """The generated pages of ``study`` that differ from what its runs give."""
    out = []
    if (study / "README.md").read_text(encoding="utf-8") != readme(study):
        out.append("README.md")
    if (study / "summary.md").read_text(encoding="utf-8") != summary(study):
        out.append("summary.md")
    return out


def _write(path: Path, text: str) -> bool:
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", type=Path, default=STUDY, help="the study folder")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", action="store_true", help="exit 1 if stale")
    group.add_argument("--print", action="store_true", help="print README.md")
    args = parser.parse_args()
    if args.print:
        print(readme(args.study), end="")
        return 0
    if args.check:
        bad = stale(args.study)
        for name in bad:
            print(
                f"{args.study / name}: stale; run scripts/run_study.sh or "
                f"{sys.argv[0]}",
                file=sys.stderr,
            )
        return 1 if bad else 0
    for name, text in (
        ("summary.md", summary(args.study)),
        ("README.md", readme(args.study)),
    ):
        changed = _write(args.study / name, text)
        print(f"{args.study / name}: {'updated' if changed else 'already up to date'}")
    figures(args.study)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The "Results at a glance" block of docs/study/README.md, from the committed runs.

Reads ``docs/study/runs.csv`` (synthetic100) and ``docs/study/digits/runs.csv``
and writes the table of mean test accuracies (and the top-5 line) between the
``<!-- glance:begin -->`` and ``<!-- glance:end -->`` markers of the README, so
the numbers a reader sees are the runs' and not copied by hand.
``scripts/run_study.sh`` calls it after the runs; ``tests/test_study_docs.py``
fails when the committed block no longer matches what the CSV files give.

Usage::

    python scripts/study_glance.py            # rewrite the block in place
    python scripts/study_glance.py --check    # exit 1 if the block is stale
    python scripts/study_glance.py --print    # print the block
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STUDY = ROOT / "docs" / "study"
README = STUDY / "README.md"
BEGIN, END = "<!-- glance:begin -->", "<!-- glance:end -->"

# Losses and their labels in the table, in order; the noise columns per data set.
LABELS = {
    "cross_entropy": "cross_entropy",
    "expectation": "expectation (L1∘σ)",
    "regularised_expectation": "regularised_expectation (L2∘σ)",
    "squared_hinge": "squared_hinge",
    "tanimoto": "tanimoto",
    "cauchy_schwarz": "cauchy_schwarz",
    "keras.kl_divergence": "keras.kl_divergence",
    "smooth_topk_svm": "smooth_topk_svm (k=5)",
}
SYNTHETIC_NOISE = ("0", "0.2", "0.4", "0.6")
DIGITS_NOISE = ("0", "0.6")


def means(path: Path, column: str) -> dict[tuple[str, str], float]:
    """Mean of ``column`` over the seeds of each ``(loss, noise)`` of a runs.csv
    (failed runs, which have an ``error``, left out)."""
    values: dict[tuple[str, str], list[float]] = defaultdict(list)
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row.get("error"):
                continue
            noise = f"{float(row['noise']):g}"
            values[(row["loss"], noise)].append(float(row[column]))
    return {key: statistics.fmean(v) for key, v in values.items()}


def block(study: Path = STUDY) -> str:
    """The generated Markdown between the markers (without them)."""
    synth = means(study / "runs.csv", "test_accuracy")
    digits = means(study / "digits" / "runs.csv", "test_accuracy")
    top5 = means(study / "runs.csv", "test_top_k_accuracy")
    columns = [(synth, n) for n in SYNTHETIC_NOISE] + [
        (digits, n) for n in DIGITS_NOISE
    ]
    cells = {
        loss: [f"{table[(loss, n)]:.3f}" for table, n in columns] for loss in LABELS
    }
    best = [max(float(cells[loss][j]) for loss in LABELS) for j in range(len(columns))]
    head = " | ".join(
        [
            f"synthetic100, noise {SYNTHETIC_NOISE[0]}",
            *SYNTHETIC_NOISE[1:],
            f"digits, noise {DIGITS_NOISE[0]}",
            *DIGITS_NOISE[1:],
        ]
    )
    lines = [
        "Test accuracy, mean of 5 seeds (generated from `runs.csv` and "
        "`digits/runs.csv` by `python scripts/study_glance.py`; full tables with "
        "standard deviations in the summaries):",
        "",
        f"| loss | {head} |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for loss, label in LABELS.items():
        shown = [
            f"**{c}**" if float(c) == best[j] else c for j, c in enumerate(cells[loss])
        ]
        lines.append(f"| {label} | " + " | ".join(shown) + " |")

    def series(loss: str) -> str:
        return " / ".join(f"{top5[(loss, n)]:.3f}" for n in SYNTHETIC_NOISE)

    lines += [
        "",
        f"Top-5 accuracy on synthetic100: cross-entropy {series('cross_entropy')} at "
        f"noise {' / '.join(SYNTHETIC_NOISE)}; smooth top-5 SVM "
        f"{series('smooth_topk_svm')}.",
    ]
    return "\n".join(lines)


def committed(readme: Path = README) -> str:
    """The block as it stands in the README (between the markers)."""
    text = readme.read_text(encoding="utf-8")
    try:
        start = text.index(BEGIN) + len(BEGIN)
        stop = text.index(END, start)
    except ValueError:
        msg = f"{readme}: no {BEGIN} ... {END} block"
        raise SystemExit(msg) from None
    return text[start:stop].strip("\n")


def update(readme: Path = README) -> bool:
    """Rewrite the block in place (atomically); True if it changed."""
    text = readme.read_text(encoding="utf-8")
    old = committed(readme)
    new = block()
    if old == new:
        return False
    start = text.index(BEGIN) + len(BEGIN)
    stop = text.index(END, start)
    text = text[:start] + "\n" + new + "\n" + text[stop:]
    tmp = readme.with_name(f".{readme.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(readme)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", action="store_true", help="exit 1 if stale")
    group.add_argument("--print", action="store_true", help="print the block")
    args = parser.parse_args()
    if args.print:
        print(block())
        return 0
    if args.check:
        if committed() != block():
            print(
                f"{README}: the glance table is stale; run {sys.argv[0]}",
                file=sys.stderr,
            )
            return 1
        return 0
    print(f"{README}: {'updated' if update() else 'already up to date'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

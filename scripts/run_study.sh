#!/usr/bin/env bash
# Regenerate docs/study/ with one command.
#
# 1. The default `arrayloss study` -> docs/study/{summary.md,runs.csv,accuracy_vs_noise.png}:
#    synthetic 100-class data, the eight default losses, label noise 0/0.2/0.4/0.6,
#    5 seeds, 2 worker processes (160 runs; 4 to 8 minutes on 2 shared CPU cores).
# 2. The same study on the bundled digits (10 classes, as in Janocha & Czarnecki)
#    -> docs/study/digits/ (2 to 3 more minutes).
#
# docs/study/README.md, the reading of the results, is written by hand, except its
# "Results at a glance" block, which scripts/study_glance.py generates from the runs.
# Needs matplotlib: pip install -e ".[plot]". Extra arguments go to both commands.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m arrayloss study --out docs/study "$@"
python -m arrayloss study --data digits --target 0.9 --out docs/study/digits "$@"
python scripts/study_glance.py

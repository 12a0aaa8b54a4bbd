#!/usr/bin/env bash
# Regenerate all of docs/study/ with one command, from a clean checkout.
#
# 1. `arrayloss study --grid full` on synthetic100, digits and MNIST-1D, the 14
#    default losses, label noise 0/0.3/0.6, 5 seeds at the learning rate each loss
#    chose from 1e-3/3e-3/1e-2 on a separate tuning seed, batch 64, each run at
#    least 40 epochs and then until its noisy-validation accuracy has not improved
#    for 10 epochs, at most 200 (1008 runs):
#    -> docs/study/{runs.csv,curves.csv,study.json,summary.md,*.png}.
#    It prints its estimate of the CPU time first.
# 2. scripts/study_glance.py renders summary.md, the figures and README.md (from
#    scripts/study_README.template.md) again from those files: every number,
#    table and verdict on the pages is generated.
#
# Needs matplotlib and mnist1d: pip install -e ".[plot,data]". Commit the code
# first: the pages are stamped with the commit the runs came from. Extra
# arguments go to the study (e.g. --jobs 1).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's arrayloss
python -m arrayloss study --grid full --data synthetic --data digits --data mnist1d \
    --out docs/study "$@"
python scripts/study_glance.py

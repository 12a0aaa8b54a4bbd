r"""
Evaluate a scikit-learn model's saved probabilities
===================================================

A model's predictions are often saved to a file and evaluated later, elsewhere.
Here a scikit-learn classifier's ``predict_proba`` is saved by pandas as CSV, one
column per class plus the true label, and ``arrayloss eval`` computes losses and
metrics from the file: ``--input probs`` says the columns are probabilities (the
losses see their logarithm), ``--label-column`` names the label column.

.. code-block:: bash

    arrayloss eval predictions.csv --input probs --label-column label --format json

pandas writes its row index as a first, unnamed column unless told not to, so the
frame is saved with ``index=False``.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss

from arrayloss.datasets import load_digits, split

parts = split(load_digits(), seed=0)
model = LogisticRegression(max_iter=2000).fit(parts.x_train, parts.y_train)
proba = model.predict_proba(parts.x_test)

frame = pd.DataFrame(proba, columns=[f"p{c}" for c in model.classes_])
frame["label"] = parts.y_test
print(frame.head(3).round(3).to_string())

# %%
# Save it, and evaluate the file with the command line, as a shell would.
workdir = Path(tempfile.mkdtemp())
path = workdir / "predictions.csv"
frame.to_csv(path, index=False)

command = [
    "arrayloss", "eval", str(path), "--input", "probs", "--label-column", "label",
    "--loss", "cross_entropy", "--loss", "smooth_topk_svm:k=2", "--format", "json",
]  # fmt: skip
run = subprocess.run(
    [sys.executable, "-m", *command], capture_output=True, text=True, check=True
)
report = json.loads(run.stdout)
print(json.dumps({"losses": report["losses"], "metrics": report["metrics"]}, indent=2))

# %%
# The file's numbers are scikit-learn's: accuracy and log loss agree (the CSV
# keeps every digit of the probabilities by default).
assert report["n_samples"] == len(parts.y_test)
assert report["metrics"]["accuracy"] == accuracy_score(parts.y_test, proba.argmax(1))
assert abs(report["metrics"]["nll"] - log_loss(parts.y_test, proba)) < 1e-9

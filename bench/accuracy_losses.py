"""Worst relative error of the noise-robust and sparse losses against 50-digit
mpmath references (the ones ``tests/test_robust.py`` and ``tests/test_sparse.py``
assert bounds on).

Usage::

    python bench/accuracy_losses.py

For each loss and dtype: the worst per-row relative error of the value over the
row families of ``tests/mpref.py`` (random, huge spread: float64 +-1e4 and
float32 +-80, ties, near one-hot), with index and soft labels, and the worst
normwise relative error of the gradient on the near-one-hot and huge rows (index
labels) against mpmath's differentiation.
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))

from mpref import (
    REFS,
    families,
    reference,
    reference_grad,
    rel_errors,
    soft_labels,
)

import arrayloss as al


def main() -> None:
    print(f"{'loss':28s} {'dtype':8s} {'value':>9s} {'(family)':22s} {'gradient':>9s}")
    for name in REFS:
        for dtype in (np.float64, np.float32):
            worst, where, gworst = 0.0, "", 0.0
            for family, (z, y) in families(dtype).items():
                for labels in (y, soft_labels(*z.shape).astype(dtype)):
                    v, g = al.LOSSES[name].value_and_grad(z, labels, reduction="none")
                    err = float(rel_errors(v, reference(name, z, labels)).max())
                    if err > worst:
                        kind = "soft" if labels.ndim == 2 else "index"
                        worst, where = err, f"{family}/{kind}"
                    if family in ("near_one_hot", "huge") and labels.ndim == 1:
                        ref = reference_grad(name, z, labels)
                        scale = max(float(np.abs(ref).max()), 1e-300)
                        gworst = max(gworst, float(np.abs(g - ref).max()) / scale)
            label = np.dtype(dtype).name
            where = f"({where})"
            print(f"{name:28s} {label:8s} {worst:9.2e} {where:22s} {gworst:9.2e}")


if __name__ == "__main__":
    main()

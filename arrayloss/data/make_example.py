"""Regenerate the bundled example predictions: ``python -m arrayloss.data.make_example``.

A simulated 10-class image classifier (CIFAR-10 class names) on 2,000 samples:

* ``example_logits.npy``: float32 logits, shape (2000, 10);
* ``example_labels.npy``: int64 true classes, shape (2000,);
* ``example_classes.txt``: the class names, one a line, in column order.

Each sample has a difficulty; the true class gets a signal that shrinks with it,
and confusable pairs (automobile/truck, cat/dog, deer/horse, airplane/ship) share
part of it.  The logits are then scaled by 1.6, which makes the model
overconfident, so the calibration error is visible.  About 80 % top-1 and 98 %
top-5 accuracy.  Fixed seed: the files are reproducible with NumPy's PCG64.
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np

CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
PARTNER = np.array(
    [8, 9, 6, 5, 7, 3, 2, 4, 0, 1]
)  # the class each one is confused with
SEED = 20261125
N = 2000


def make(n: int = N, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """The example ``(logits float32 (n, 10), labels int64 (n,))``."""
    rng = np.random.default_rng(seed)
    c = len(CLASSES)
    labels = rng.integers(0, c, size=n)
    difficulty = rng.gamma(shape=2.0, scale=0.5, size=n)
    signal = 5.5 / (1.0 + difficulty)
    logits = rng.normal(0.0, 1.0, size=(n, c))
    rows = np.arange(n)
    logits[rows, labels] += signal
    logits[rows, PARTNER[labels]] += 0.6 * signal * rng.random(n)
    logits = 1.6 * logits + rng.normal(0.0, 0.3, size=(n, 1))  # overconfident
    return logits.astype(np.float32), labels.astype(np.int64)


def write(directory: pathlib.Path) -> None:
    """Write the three example files into ``directory``."""
    logits, labels = make()
    directory.mkdir(parents=True, exist_ok=True)
    np.save(directory / "example_logits.npy", logits)
    np.save(directory / "example_labels.npy", labels)
    (directory / "example_classes.txt").write_text("\n".join(CLASSES) + "\n")


def main() -> None:
    """Command line: ``--out DIR`` (default: this package folder)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=pathlib.Path, default=pathlib.Path(__file__).parent
    )
    write(parser.parse_args().out)


if __name__ == "__main__":
    main()

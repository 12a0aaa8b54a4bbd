"""Forward+backward time of every registered loss, against PyTorch cross-entropy.

Usage::

    python bench/bench_losses.py [--batch 256] [--classes 1000] [--repeats 30]
                                 [--loss NAME ...] [--threads 1]

For each dtype, every loss's ``value_and_grad`` (NumPy, batch mean) and
``torch.nn.functional.cross_entropy`` forward + backward (CPU, ``--threads``
threads) are timed in the same process, round-robin, and the median is reported
with the ratio to torch.  Without torch the ratio column is left empty.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

from _common import best_medians


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="round-robin passes; the best median is kept",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--loss", action="append", default=None)
    args = parser.parse_args()

    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import numpy as np

    import arrayloss as al

    try:
        import torch
        import torch.nn.functional as F

        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None

    names = args.loss or list(al.LOSSES)
    rng = np.random.default_rng(0)
    z64 = rng.normal(size=(args.batch, args.classes))
    y = rng.integers(0, args.classes, size=args.batch)
    print(
        f"# (B, C) = ({args.batch}, {args.classes}); median of {args.repeats} x {args.rounds} rounds; "
        f"numpy {np.__version__}; torch {torch.__version__ if torch else 'absent'} ({args.threads} thread)"
    )
    print(f"{'loss':40s} {'dtype':8s} {'ms':>9s} {'x torch CE':>11s}")
    for dtype in (np.float32, np.float64):
        z = z64.astype(dtype)
        tasks: dict[str, Callable[[], object]] = {
            name: (lambda info=al.LOSSES[name], z=z: info.value_and_grad(z, y))
            for name in names
        }
        if torch is not None:
            tz = torch.tensor(z, requires_grad=True)
            ty = torch.tensor(y)

            def torch_ce(tz=tz, ty=ty) -> None:
                tz.grad = None
                F.cross_entropy(tz, ty).backward()

            tasks["torch.nn.functional.cross_entropy"] = torch_ce
        best = best_medians(tasks, args.repeats, args.rounds)
        ref = best.get("torch.nn.functional.cross_entropy")
        for key, ms in best.items():
            ratio = f"{ms / ref:10.2f}x" if ref else ""
            print(f"{key:40s} {np.dtype(dtype).name:8s} {ms:9.3f} {ratio:>11s}")


if __name__ == "__main__":
    main()

"""Sparsemax and 1.5-entmax losses, fwd+bwd: the packed-candidate threshold against
the plain sort over all classes, and both against PyTorch cross-entropy.

Usage::

    python bench/bench_sparse.py [--batch 256] [--classes 1000] [--repeats 50]
                                 [--rounds 5] [--threads 1]

The plain sort is the same code with the packing switched off (the candidates are
then all ``C`` classes), timed round-robin in the same process as the packed path
and ``torch.nn.functional.cross_entropy`` forward + backward; the best median of
the rounds is reported with the ratio to torch.  The scores are N(0, 1) and
N(0, 3) (wider: fewer candidates) with random labels.
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
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import numpy as np

    import arrayloss as al
    from arrayloss.losses import _sparse

    try:
        import torch
        import torch.nn.functional as F

        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None

    packable = _sparse._can_pack

    def plain(fn: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            _sparse._can_pack = lambda x, *, xp: False
            try:
                return fn()
            finally:
                _sparse._can_pack = packable

        return run

    rng = np.random.default_rng(0)
    y = rng.integers(0, args.classes, size=args.batch)
    print(
        f"# (B, C) = ({args.batch}, {args.classes}); best median of {args.repeats} "
        f"x {args.rounds} rounds; numpy {np.__version__}; "
        f"torch {torch.__version__ if torch else 'absent'} ({args.threads} thread)"
    )
    print(f"{'loss':34s} {'scores':8s} {'dtype':8s} {'ms':>9s} {'x torch CE':>11s}")
    for scale in (1.0, 3.0):
        z64 = scale * rng.normal(size=(args.batch, args.classes))
        for dtype in (np.float32, np.float64):
            z = z64.astype(dtype)
            tasks: dict[str, Callable[[], object]] = {}
            for name in ("sparsemax_loss", "entmax15_loss"):
                info = al.LOSSES[name]

                def packed(info: al.LossInfo = info, z: object = z) -> object:
                    return info.value_and_grad(z, y)

                tasks[name] = packed
                tasks[name + " (plain sort)"] = plain(packed)
            if torch is not None:
                tz = torch.tensor(z, requires_grad=True)
                ty = torch.tensor(y)

                def torch_ce(tz: object = tz, ty: object = ty) -> None:
                    tz.grad = None  # type: ignore[attr-defined]
                    F.cross_entropy(tz, ty).backward()

                tasks["torch.nn.functional.cross_entropy"] = torch_ce
            best = best_medians(tasks, args.repeats, args.rounds)
            ref = best.get("torch.nn.functional.cross_entropy")
            for key, ms in best.items():
                ratio = f"{ms / ref:10.2f}x" if ref else ""
                print(
                    f"{key:34s} {f'N(0,{scale:g})':8s} {np.dtype(dtype).name:8s} "
                    f"{ms:9.3f} {ratio:>11s}"
                )


if __name__ == "__main__":
    main()

"""Benchmark ``arrayloss eval`` against loading the file and computing in memory.

Writes a float32 ``.npy`` of logits (default 250 000 x 1000, 1 GB) and its labels
to a temporary folder, then times, each in a fresh child process:

* ``numpy``: ``np.load`` + the cross-entropy in plain NumPy (max shift);
* ``arrayloss``: ``np.load`` + ``arrayloss.cross_entropy`` in memory;
* ``eval``: ``arrayloss eval`` with cross-entropy, top-1/top-5 accuracy and ECE,
  streaming the file in chunks.

Each is run ``--repeat`` times (the file is in the page cache after it is
written); the best wall time and the peak RSS of the child (``wait4``) are
reported, with the eval time as a multiple of each in-memory baseline.  The
temporary folder is removed at the end.  Targets: eval <= 1.5x the in-memory
time, peak RSS <= 300 MB.

    python bench/bench_eval.py                       # 1 GB
    python bench/bench_eval.py --rows 20000 --classes 100
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

from _common import run_child, write_predictions

NUMPY = """
import sys, numpy as np
z = np.load(sys.argv[1]); y = np.load(sys.argv[2])
m = z.max(axis=1, keepdims=True)
lse = np.log(np.exp(z - m).sum(axis=1)) + m[:, 0]
print(float((lse - z[np.arange(len(y)), y]).mean()))
"""

ARRAYLOSS = """
import sys, numpy as np, arrayloss as al
z = np.load(sys.argv[1]); y = np.load(sys.argv[2])
print(float(al.cross_entropy(z, y)))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=250_000)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument(
        "--dir", default=None, help="where to write the data (default: a temp dir)"
    )
    args = parser.parse_args()

    folder = tempfile.mkdtemp(prefix="bench_eval_", dir=args.dir)
    try:
        t0 = time.perf_counter()
        zpath = os.path.join(folder, "logits.npy")
        ypath = os.path.join(folder, "labels.npy")
        write_predictions(zpath, ypath, args.rows, args.classes)
        size = os.path.getsize(zpath) / 1e6
        print(
            f"data: {args.rows} x {args.classes} float32 = {size:.0f} MB "
            f"(written in {time.perf_counter() - t0:.1f} s) in {folder}"
        )
        eval_cmd = [
            sys.executable, "-m", "arrayloss", "eval", zpath, ypath, "--quiet",
            "--loss", "cross_entropy", "--metric", "top_k_accuracy", "--top-k", "1,5",
            "--metric", "ece", "--format", "json",
        ]  # fmt: skip
        if args.chunk_size:
            eval_cmd += ["--chunk-size", str(args.chunk_size)]
        cases = {
            "numpy": [sys.executable, "-c", NUMPY, zpath, ypath],
            "arrayloss": [sys.executable, "-c", ARRAYLOSS, zpath, ypath],
            "eval": eval_cmd,
        }
        best: dict[str, tuple[float, float, str]] = {}
        for _ in range(args.repeat):
            for name, cmd in cases.items():
                wall, rss, out = run_child(cmd)
                if name not in best or wall < best[name][0]:
                    best[name] = (wall, max(rss, best.get(name, (0, 0, ""))[1]), out)
        result = json.loads(best["eval"][2])
        ce = result["losses"]["cross_entropy"]
        ref = float(best["numpy"][2])
        print(
            f"cross-entropy: eval {ce!r}, in memory {ref!r} (rel diff {abs(ce - ref) / ref:.1e})"
        )
        print(f"metrics: {json.dumps(result['metrics'])}")
        print(f"{'case':<10} {'best wall s':>11} {'peak RSS MB':>12}")
        for name, (wall, rss, _) in best.items():
            print(f"{name:<10} {wall:>11.2f} {rss:>12.0f}")
        t_eval = best["eval"][0]
        print(f"eval / numpy     = {t_eval / best['numpy'][0]:.2f}x  (target <= 1.5x)")
        print(f"eval / arrayloss = {t_eval / best['arrayloss'][0]:.2f}x")
        print(f"eval peak RSS    = {best['eval'][1]:.0f} MB  (target <= 300 MB)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

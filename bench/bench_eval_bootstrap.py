"""Benchmark ``arrayloss eval --bootstrap N`` against the same eval without it.

Writes a float32 ``.npy`` of logits (default 100 000 x 1000, 400 MB) and its labels
to a temporary folder, then times, each in a fresh child process and alternating
so both see the same machine load:

* ``eval``: ``arrayloss eval`` with its default report (cross-entropy, accuracy,
  top-5 accuracy, NLL, Brier, ECE);
* ``eval --bootstrap N``: the same, with percentile intervals of all six from N
  Poisson bootstrap replicates (default 200), in the same pass.

Each is run ``--repeat`` times (the file is in the page cache after it is
written); the best wall time and the largest peak RSS of the child (``wait4``)
are reported, with the bootstrap time as a multiple of the plain one.  The
temporary folder is removed at the end.  Targets: ratio <= 2x, peak RSS <= 100 MB.

    python bench/bench_eval_bootstrap.py
    python bench/bench_eval_bootstrap.py --rows 20000 --classes 100 --replicates 1000
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile

from _common import compile_bytecode, prediction_files, run_child


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument(
        "--dir", default=None, help="where to write the data (default: a temp dir)"
    )
    args = parser.parse_args()

    folder = tempfile.mkdtemp(prefix="bench_boot_", dir=args.dir)
    try:
        zpath, ypath, line = prediction_files(folder, args.rows, args.classes)
        print(f"{line} in {folder}")
        print(compile_bytecode())
        plain = [
            sys.executable, "-m", "arrayloss", "eval", zpath, ypath, "--quiet",
            "--format", "json",
        ]  # fmt: skip
        if args.chunk_size:
            plain += ["--chunk-size", str(args.chunk_size)]
        boot_name = f"eval --bootstrap {args.replicates}"
        cases = {
            "eval": plain,
            boot_name: [*plain, "--bootstrap", str(args.replicates)],
        }
        best: dict[str, tuple[float, float, str]] = {}
        for _ in range(args.repeat):
            for name, cmd in cases.items():
                wall, rss, out = run_child(cmd)
                old = best.get(name)
                if old is None or wall < old[0]:
                    best[name] = (wall, max(rss, old[1] if old else 0.0), out)
                else:
                    best[name] = (old[0], max(rss, old[1]), old[2])
        plain_out = json.loads(best["eval"][2])
        boot_out = json.loads(best[boot_name][2])
        same = all(
            plain_out[g] == boot_out[g] for g in ("losses", "metrics")
        )  # the point estimates do not change
        print(f"point estimates identical with and without --bootstrap: {same}")
        for group in ("losses", "metrics"):
            for key, value in boot_out[group].items():
                lo, hi = boot_out["intervals"][group][key]
                print(f"  {key:<16} {value:.6g}  [{lo:.6g}, {hi:.6g}]")
        print(f"{'case':<22} {'best wall s':>11} {'peak RSS MB':>12}")
        for name, (wall, rss, _) in best.items():
            print(f"{name:<22} {wall:>11.2f} {rss:>12.0f}")
        ratio = best[boot_name][0] / best["eval"][0]
        print(f"bootstrap / eval = {ratio:.2f}x  (target <= 2x)")
        print(f"bootstrap peak RSS = {best[boot_name][1]:.0f} MB  (target <= 100 MB)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Benchmark ``arrayloss eval --dask`` on a sharded prediction set.

Writes ``--shards`` float32 ``.npy`` shards of logits (default 4 x 125 000 x 1000,
2 GB) and their labels to a temporary folder, then times, each in a fresh child
process and ``--repeat`` times (best wall time kept; the files are in the page
cache after they are written):

* ``stream``: ``arrayloss eval 'logits/part-*.npy' labels/`` in one process;
* ``dask N``: the same with ``--dask --dask-workers N`` (a local cluster of N
  processes with one thread each), for each N of ``--workers``.

Every run computes cross-entropy, accuracy, top-5 accuracy and ECE, and must give
the streaming numbers (1e-12 relative).  Wall times include the start of Python
and, with ``--dask``, the start and close of the cluster; a ``--dask`` run on a
single 1000-row shard measures that fixed cost, and the ``net`` columns subtract
it.  Rows/s and GB/s are of the logits.  The folder is removed at the end.

    python bench/bench_eval_dask.py                          # 2 GB, 1 and 2 workers
    python bench/bench_eval_dask.py --rows 20000 --shards 4 --classes 100
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

from _common import compile_bytecode, run_child, write_predictions


def write_shard(folder: str, name: str, seed: int, rows: int, classes: int) -> None:
    """Write ``folder/logits/name`` and ``folder/labels/name``."""
    zpath, ypath = (os.path.join(folder, sub, name) for sub in ("logits", "labels"))
    write_predictions(zpath, ypath, rows, classes, seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=125_000, help="rows per shard")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--workers", default="1,2", help="worker counts to time")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--chunk-size", type=int, default=None, help="rows a block")
    parser.add_argument(
        "--dir", default=None, help="where to write the data (default: a temp dir)"
    )
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",")]

    folder = tempfile.mkdtemp(prefix="bench_eval_dask_", dir=args.dir)
    try:
        t0 = time.perf_counter()
        for shard in range(args.shards):
            write_shard(folder, f"part-{shard}.npy", shard, args.rows, args.classes)
        tiny_folder = os.path.join(folder, "tiny")  # the fixed cost of --dask
        write_shard(tiny_folder, "part-0.npy", 0, 1000, args.classes)
        n_rows = args.shards * args.rows
        gb = args.shards * args.rows * args.classes * 4 / 1e9
        print(
            f"data: {args.shards} shards x {args.rows} x {args.classes} float32 = "
            f"{gb:.2f} GB (written in {time.perf_counter() - t0:.1f} s) in {folder}"
        )
        print(compile_bytecode())

        def eval_cmd(logits: str, labels: str, *extra: str) -> list[str]:
            cmd = [
                sys.executable, "-m", "arrayloss", "eval", logits, labels, "--quiet",
                "--loss", "cross_entropy", "--metric", "accuracy",
                "--metric", "top_k_accuracy", "--top-k", "5", "--metric", "ece",
                "--format", "json", *extra,
            ]  # fmt: skip
            if args.chunk_size:
                cmd += ["--chunk-size", str(args.chunk_size)]
            return cmd

        shards = (os.path.join(folder, "logits", "part-*.npy"), f"{folder}/labels")
        tiny = (f"{tiny_folder}/logits", f"{tiny_folder}/labels")
        cases: dict[str, list[str]] = {"stream": eval_cmd(*shards)}
        for n in workers:
            dask = ("--dask", "--dask-workers", str(n))
            cases[f"dask {n}"] = eval_cmd(*shards, *dask)
            cases[f"start {n}"] = eval_cmd(*tiny, *dask)
        best: dict[str, tuple[float, str]] = {}
        for _ in range(args.repeat):
            for name, cmd in cases.items():
                wall, _, out = run_child(cmd)
                if name not in best or wall < best[name][0]:
                    best[name] = (wall, out)

        ref = json.loads(best["stream"][1])
        for name in cases:
            if name.startswith("dask"):
                out = json.loads(best[name][1])
                for group in ("losses", "metrics"):
                    for key, value in ref[group].items():
                        rel = abs(out[group][key] - value) / abs(value)
                        assert rel < 1e-12, (name, key, out[group][key], value)
        print(f"results (all runs agree to 1e-12): {json.dumps(ref['losses'])} "
              f"{json.dumps(ref['metrics'])}")  # fmt: skip
        print(
            f"{'case':<10} {'wall s':>7} {'rows/s':>10} {'GB/s':>6}   "
            f"{'fixed s':>7} {'net s':>6} {'net rows/s':>10} {'net GB/s':>8}"
        )
        for name, (wall, _) in best.items():
            if name.startswith("start"):
                continue
            line = f"{name:<10} {wall:>7.2f} {n_rows / wall:>10.0f} {gb / wall:>6.2f}"
            if name.startswith("dask"):
                fixed = best[f"start {name.split()[1]}"][0]
                net = wall - fixed
                if net > 0.05 * wall:
                    line += f"   {fixed:>7.2f} {net:>6.2f} {n_rows / net:>10.0f} {gb / net:>8.2f}"
                else:  # the data is too small to tell the work from the start-up
                    line += f"   {fixed:>7.2f} {'-':>6} {'-':>10} {'-':>8}"
            print(line)
        if len(workers) > 1:
            a, b = workers[0], workers[-1]
            speed = best[f"dask {a}"][0] / best[f"dask {b}"][0]
            print(f"speed-up {a} -> {b} workers (wall): {speed:.2f}x")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

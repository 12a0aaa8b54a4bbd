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
import subprocess
import sys
import tempfile
import time

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


GENERATE = """
import sys, numpy as np
zpath, ypath, rows, classes = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rng = np.random.default_rng(0)
z = np.lib.format.open_memmap(zpath, mode="w+", dtype=np.float32, shape=(rows, classes))
y = rng.integers(0, classes, size=rows)
block = 10_000
for i in range(0, rows, block):
    part = rng.normal(0.0, 2.0, size=(min(block, rows - i), classes)).astype(np.float32)
    part[np.arange(part.shape[0]), y[i : i + block]] += 3.0  # the label a bit ahead
    z[i : i + block] = part
z.flush()
np.save(ypath, y)
"""


def write_data(folder: str, rows: int, classes: int) -> tuple[str, str]:
    """Write the logits and labels in a child process.

    The parent stays small on purpose: Linux charges a child's ``ru_maxrss`` with
    the RSS of the process it was forked from until its ``exec``.
    """
    zpath, ypath = (
        os.path.join(folder, "logits.npy"),
        os.path.join(folder, "labels.npy"),
    )
    cmd = [sys.executable, "-c", GENERATE, zpath, ypath, str(rows), str(classes)]
    subprocess.run(cmd, check=True)
    return zpath, ypath


def run(cmd: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MB, stdout) of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    out = proc.stdout.read().decode() if proc.stdout else ""
    err = proc.stderr.read().decode() if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err}")
    return wall, usage.ru_maxrss / 1024, out  # ru_maxrss is in KiB on Linux


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
        zpath, ypath = write_data(folder, args.rows, args.classes)
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
                wall, rss, out = run(cmd)
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

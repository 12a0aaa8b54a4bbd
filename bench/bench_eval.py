"""Benchmark ``arrayloss eval`` against a plain streaming NumPy pass over the same file.

Writes a float32 ``.npy`` of logits (default 100 000 x 1000, 400 MB) and its labels
to a temporary folder, then times whole child processes (interpreter start and
imports included), interleaved, ``--repeat`` rounds (the file is in the page cache
after it is written):

* ``plain``: ``bench/stream_ce_numpy.py``, a streaming pass that does only what any
  cross-entropy needs: read a chunk (eval's default rows per chunk), one max, one
  exp, one log;
* ``plain, reused buffers``: the same pass writing its temporaries into buffers
  allocated once, so that no chunk pays page faults for fresh memory;
* ``eval``: ``arrayloss eval`` with its default metrics (accuracy, top-1 and top-5
  accuracy, NLL, Brier, ECE) and loss (cross-entropy), on its default threads;
* ``eval, thread pool``: the same with ``ARRAYLOSS_EVAL_THREADS=0`` (a pool of the
  usable CPUs; the default is one thread), whose JSON must be identical;
* with ``--extra-args "..."`` (report options such as ``--per-class --confusion
  --bootstrap 200``), both evals again with those options added;
* ``startup``: ``arrayloss eval --help``, the interpreter and the imports alone.

Reported: the environment, each case's best and median wall time, its best CPU
time (user + system of the child, the steadier figure on a loaded machine), its
peak RSS (``wait4``), and the best wall and CPU times as multiples of ``plain``
and of ``eval``.  Targets: eval at most 2.0x plain, the report options at most
2.0x eval, peak RSS under 100 MB.  The temporary folder is removed at the end.
``--gb 1`` sizes the file to 1 GB (250 000 rows of 1000 float32 scores).

    python bench/bench_eval.py
    python bench/bench_eval.py --gb 1 --repeat 3 --extra-args "--per-class --confusion --bootstrap 200"
    python bench/bench_eval.py --rows 20000 --classes 100 --repeat 3
    python bench/bench_eval.py --extra-args "--per-class --confusion --bootstrap 200"
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile

from _common import compile_bytecode, prediction_files, run_child_usage

PLAIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "stream_ce_numpy.py")
THREAD_VARS = (
    "ARRAYLOSS_EVAL_THREADS",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
)
_ENVIRONMENT = """
import json, numpy as np
from arrayloss.cli._engine import default_threads, eval_threads
cfg = getattr(np.__config__, "CONFIG", {}).get("Build Dependencies", {})
blas = cfg.get("blas", {})
print(json.dumps({"numpy": np.__version__, "blas": f"{blas.get('name')} {blas.get('version')}",
    "default_threads": default_threads(), "eval_threads": eval_threads()}))
"""


def environment() -> dict[str, str]:
    """Versions, BLAS and threads, as a child process sees them."""
    out = subprocess.run(
        [sys.executable, "-c", _ENVIRONMENT], capture_output=True, text=True, check=True
    )
    env = json.loads(out.stdout)
    env["python"] = platform.python_version()
    env["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs"
    env.update({k: os.environ.get(k, "(unset)") for k in THREAD_VARS})
    return env


def load() -> str:
    """The load averages (1, 5, 15 minutes), or '?' off Unix."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument(
        "--gb",
        type=float,
        default=None,
        help="size the file to this many GB of float32 scores (sets --rows)",
    )
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument(
        "--extra-args",
        default="",
        help='eval options to time as well, e.g. "--per-class --confusion"',
    )
    parser.add_argument(
        "--dir", default=None, help="where to write the data (default: a temp dir)"
    )
    args = parser.parse_args()
    if args.gb is not None:
        args.rows = max(1, round(args.gb * 1e9 / (4 * args.classes)))

    from arrayloss.cli._engine import chunk_rows

    rows = args.chunk_size or chunk_rows(args.classes)
    folder = tempfile.mkdtemp(prefix="bench_eval_", dir=args.dir)
    try:
        zpath, ypath, line = prediction_files(folder, args.rows, args.classes)
        print(f"{line}, {rows} rows a chunk")
        print(f"  {compile_bytecode()}")
        for key, value in environment().items():
            print(f"  {key}: {value}")
        print(f"  load average at start: {load()}")

        arrayloss = [sys.executable, "-m", "arrayloss", "eval"]
        eval_cmd = [*arrayloss, zpath, ypath, "--quiet", "--top-k", "1,5"]
        eval_cmd += ["--format", "json", "--chunk-size", str(rows)]
        pool = {"ARRAYLOSS_EVAL_THREADS": "0"}  # the usable CPUs (default: 1 thread)
        cases: dict[str, tuple[list[str], dict[str, str]]] = {
            "plain": ([sys.executable, PLAIN, zpath, ypath, str(rows)], {}),
            "plain, reused buffers": (
                [sys.executable, PLAIN, zpath, ypath, str(rows), "--reuse"],
                {},
            ),
            "eval": (eval_cmd, {}),
            "eval, thread pool": (eval_cmd, pool),
        }
        extra = shlex.split(args.extra_args)
        if extra:
            cases["eval +extra"] = ([*eval_cmd, *extra], {})
            cases["eval +extra, thread pool"] = ([*eval_cmd, *extra], pool)
        cases["startup"] = ([*arrayloss, "--help"], {})

        walls: dict[str, list[float]] = {name: [] for name in cases}
        cpus: dict[str, list[float]] = {name: [] for name in cases}
        peak: dict[str, float] = dict.fromkeys(cases, 0.0)
        outs: dict[str, str] = {}
        for _ in range(args.repeat):
            for name, (cmd, env) in cases.items():
                wall, cpu, rss, out = run_child_usage(cmd, env={**os.environ, **env})
                walls[name].append(wall)
                cpus[name].append(cpu)
                peak[name] = max(peak[name], rss)
                outs[name] = out
        print(f"  load average at end: {load()}")

        result = json.loads(outs["eval"])
        ce = result["losses"]["cross_entropy"]
        ref = float(outs["plain"])
        print(
            f"cross-entropy: eval {ce!r}, plain {ref!r} (rel diff {abs(ce - ref) / ref:.1e})"
        )
        print(f"metrics: {json.dumps(result['metrics'])}")
        for name in [n for n in cases if n.endswith(", thread pool")]:
            same = outs[name] == outs[name.removesuffix(", thread pool")]
            print(
                f"{name.removesuffix(', thread pool')}: threads on vs off identical: {same}"
            )

        base, base_cpu = min(walls["plain"]), min(cpus["plain"])
        print(
            f"{'case':<24} {'best s':>7} {'median s':>9} {'CPU s':>7} "
            f"{'peak RSS MB':>12} {'/ plain':>8} {'CPU / plain':>12}"
        )
        for name in cases:
            best, median = min(walls[name]), statistics.median(walls[name])
            cpu = min(cpus[name])
            print(
                f"{name:<24} {best:>7.3f} {median:>9.3f} {cpu:>7.3f} "
                f"{peak[name]:>12.0f} {best / base:>7.2f}x {cpu / base_cpu:>11.2f}x"
            )
        reused = min(walls["plain, reused buffers"])
        print(
            f"eval / plain = {min(walls['eval']) / base:.2f}x (target <= 2.0x), "
            f"eval / plain with reused buffers = {min(walls['eval']) / reused:.2f}x, "
            f"eval peak RSS = {peak['eval']:.0f} MB (target < 100 MB)"
        )
        if extra:
            ev, ev_cpu = min(walls["eval"]), min(cpus["eval"])
            print(
                f"eval +extra / eval = {min(walls['eval +extra']) / ev:.2f}x wall, "
                f"{min(cpus['eval +extra']) / ev_cpu:.2f}x CPU (target <= 2.0x), "
                f"peak RSS = {peak['eval +extra']:.0f} MB (target < 100 MB)"
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

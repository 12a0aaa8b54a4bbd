"""Helpers shared by the benchmarks (run as ``python bench/<name>.py``): timing
in-process, prediction files and child processes."""

from __future__ import annotations

import compileall
import importlib.util
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from typing import TypeVar

K = TypeVar("K", bound=Hashable)


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``fn``, in milliseconds."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def best_medians(
    tasks: Mapping[K, Callable[[], object]], repeats: int, rounds: int
) -> dict[K, float]:
    """Each task's best median over ``rounds`` round-robin passes (after a warm-up
    call each, which also triggers any JIT compilation)."""
    for fn in tasks.values():
        fn()
    best = dict.fromkeys(tasks, float("inf"))
    for _ in range(rounds):
        for key, fn in tasks.items():
            best[key] = min(best[key], median_ms(fn, repeats))
    return best


_GENERATE = """
import sys, numpy as np
zpath, ypath, seed, rows, classes = sys.argv[1:3] + [int(a) for a in sys.argv[3:]]
rng = np.random.default_rng(seed)
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


def prediction_files(folder: str, rows: int, classes: int) -> tuple[str, str, str]:
    """``logits.npy`` and ``labels.npy`` written into ``folder`` by
    `write_predictions`, and a line describing them (size, time to write)."""
    t0 = time.perf_counter()
    zpath = os.path.join(folder, "logits.npy")
    ypath = os.path.join(folder, "labels.npy")
    write_predictions(zpath, ypath, rows, classes)
    size = os.path.getsize(zpath) / 1e6
    line = (
        f"data: {rows} x {classes} float32 = {size:.0f} MB "
        f"(written in {time.perf_counter() - t0:.1f} s)"
    )
    return zpath, ypath, line


def write_predictions(
    zpath: str, ypath: str, rows: int, classes: int, seed: int = 0
) -> None:
    """Write float32 logits (``.npy``, N(0, 2) with the label 3 ahead) and their
    labels, in a child process: the parent stays small, because Linux charges a
    child's ``ru_maxrss`` with the RSS of the process it was forked from until its
    ``exec``."""
    for path in (zpath, ypath):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    args = [zpath, ypath, str(seed), str(rows), str(classes)]
    subprocess.run([sys.executable, "-c", _GENERATE, *args], check=True)


def compile_bytecode() -> str:
    """Compile arrayloss's modules to bytecode (``__pycache__``), as ``pip install``
    does, and return a line that says so.

    A child process started from a checkout with ``PYTHONDONTWRITEBYTECODE`` set
    (as on some CI machines) would otherwise compile every module of the package
    from source at each start, a cost an installed package never pays, and one
    that is the same in every case timed (it would shrink their ratios).  Found
    with `importlib.util.find_spec`, which does not import the package."""
    spec = importlib.util.find_spec("arrayloss")
    folders = list(spec.submodule_search_locations or ()) if spec else []
    if not folders:
        return "bytecode: arrayloss not found (the children will fail)"
    ok = all(compileall.compile_dir(f, quiet=2) for f in folders)
    if ok:
        return f"bytecode: arrayloss compiled in {', '.join(folders)}"
    return (
        f"bytecode: could not be written in {', '.join(folders)}; each child "
        "compiles what it imports"
    )


def run_child(
    cmd: list[str], env: Mapping[str, str] | None = None
) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MB, stdout) of one child process, in environment ``env`` (default:
    this one's); exits with its stderr if it fails."""
    wall, _, rss, out = run_child_usage(cmd, env)
    return wall, rss, out


def run_child_usage(
    cmd: list[str], env: Mapping[str, str] | None = None
) -> tuple[float, float, float, str]:
    """(wall seconds, CPU seconds (user + system), peak RSS in MB, stdout) of one
    child process, as `run_child`; the CPU time is the steadier figure on a
    loaded machine."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    # Drain both pipes while the child runs (a report larger than the pipe's
    # buffer would otherwise block it forever), then reap it with its usage.
    streams: dict[str, bytes] = {}
    readers = [
        threading.Thread(target=lambda k=k, f=f: streams.__setitem__(k, f.read()))
        for k, f in (("out", proc.stdout), ("err", proc.stderr))
        if f is not None
    ]
    for reader in readers:
        reader.start()
    _, status, usage = os.wait4(proc.pid, 0)
    for reader in readers:
        reader.join()
    wall = time.perf_counter() - t0
    out = streams.get("out", b"").decode()
    err = streams.get("err", b"").decode()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({code}):\n{err}")
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, usage.ru_maxrss / 1024, out  # ru_maxrss is in KiB on Linux

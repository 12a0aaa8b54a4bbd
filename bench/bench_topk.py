"""Benchmark of the smooth top-k SVM loss against comparators timed in the same run.

Every number in the table is measured by this run; nothing is typed in.  For each
(B, C, k) and dtype the candidates are called in rounds (one call of each per
round, in a fresh random order, so that load from other processes and the state
left by the previous call hit them alike) and the table
shows the **minimum** over the rounds in milliseconds, the least disturbed call on
a shared machine; the ratios are ratios of those minima.  Columns:

- ``auto``/``direct``/``fft``: ``smooth_topk_svm_and_grad`` (forward+backward,
  batch mean) with that ``method``; ``fwd``: the forward alone (``method="auto"``).
  On NumPy with numba installed, ``auto`` and ``direct`` run the compiled kernel
  (``arrayloss/_esp_numba.py``, one thread: it has no parallel loops);
- ``array``: ``auto`` on the array-API tree (``ARRAYLOSS_NUMBA=0``), the path every
  other backend runs and NumPy's without numba;
- ``prev``: the same forward+backward with the algorithms (``arrayloss/esp.py``) of
  the git revision ``--prev REV``, loaded from git into this process;
- ``naive``: the sequential log-space ESP recursion (``logaddexp`` over the classes,
  vectorised over the batch, NumPy, forward only): the simple correct baseline;
- ``torchCE``: ``torch.nn.functional.cross_entropy`` forward+backward on one
  thread (``torch.set_num_threads(1)``), when torch is installed;
- ratios ``array/CE``, ``array/auto`` (the compiled kernel's gain), ``auto/CE`` (with the target of issue 19 where it has one: f32 (256,
  1000, 5) <= 2.5x, f32 (256, 1000, 50) <= 8x, f64 (256, 1000, 5) <= 3x),
  ``fwd/auto``, ``naive/fwd``, ``prev/auto`` and ``direct/auto`` (the FFT gain at
  k >= 64).

The reference implementation (oval-group/smooth-topk) is not a dependency and is
not timed here.  The environment (versions, BLAS, threads, CPUs, load average
before and after) is printed first.

``--instructions`` instead counts the instructions of one forward+backward call
with ``valgrind --tool=callgrind`` (a child process doing ``--calls`` calls minus
one doing none, divided by ``--calls``), for this tree and for ``--prev``: a
load-independent before/after measure of our own code (slow: about a minute per
count).

Usage::

    python bench/bench_topk.py [--backend numpy|cupy|torch] [--quick] [--repeats N]
                               [--case B,C,k ...] [--prev REV] [--instructions]

``--case B,C,k`` (repeatable) times those cases instead of the default list
(``scripts/gpu_check.sh`` passes the GPU cases and k = 200 for the FFT path).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.util
import inspect
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from arrayloss import _esp_compiled
from arrayloss.losses import _topk
from arrayloss.losses._topk import smooth_topk_svm, smooth_topk_svm_and_grad

ROOT = Path(__file__).resolve().parent.parent
CASES = [
    (256, 100, 5),
    (256, 1000, 5),
    (64, 10000, 5),
    (256, 1000, 50),
    (64, 2000, 200),
]
# On a GPU (--backend cupy): against torch CUDA cross-entropy.
GPU_CASES = [(4096, 1000, 5), (4096, 1000, 50)]
# Issue 19: forward+backward at most this many times torch CE (1 thread).
TARGETS = {
    ("float32", 256, 1000, 5): 2.5,
    ("float32", 256, 1000, 50): 8.0,
    ("float64", 256, 1000, 5): 3.0,
}
INSTRUCTION_CASES = [("float32", 256, 1000, 5), ("float32", 256, 1000, 50)]


def naive_log_space(
    z: np.ndarray, y: np.ndarray, k: int, tau: float, alpha: float
) -> np.ndarray:
    """Smooth top-k loss rows by the sequential log-space recursion (forward only)."""
    b, c = z.shape
    x = z / (k * tau)  # a fresh array
    x[np.arange(b), y] = -np.inf
    loge = np.full((b, k + 1), -np.inf, dtype=z.dtype)
    loge[:, 0] = 0
    for j in range(c):
        loge[:, 1:] = np.logaddexp(loge[:, 1:], loge[:, :-1] + x[:, j : j + 1])
    r = alpha / tau + loge[:, k] - loge[:, k - 1] - z[np.arange(b), y] / (k * tau)
    return tau * np.logaddexp(0, r)


# --------------------------------------------------------------------------------------
# The previous algorithm, from git.
# --------------------------------------------------------------------------------------


def load_previous(rev: str) -> Any:
    """``arrayloss/esp.py`` of git revision ``rev`` as a module of this package."""
    src = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:arrayloss/esp.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="bench_topk_")) / "esp_prev.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("arrayloss._esp_prev", path)
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@contextlib.contextmanager
def array_path() -> Iterator[None]:
    """Run NumPy smooth top-k on the array-API tree (the compiled kernel off)."""
    saved = os.environ.get(_esp_compiled.ENV_VAR)
    os.environ[_esp_compiled.ENV_VAR] = "0"
    try:
        yield
    finally:
        if saved is None:
            del os.environ[_esp_compiled.ENV_VAR]
        else:
            os.environ[_esp_compiled.ENV_VAR] = saved


def _with_ref(fn: Callable[..., Any]) -> Callable[..., Any]:
    """An engine of before the ``ref`` argument (it returned ``log(e_k/e_{k-1})``
    and handed that to ``coef``) behind today's interface, which returns and
    hands on ``log(e_k/e_{k-1}) - ref``; ``ref`` travels as ``aux`` so that it is
    subset with the fallback rows."""
    if "ref" in inspect.signature(fn).parameters:
        return fn

    def adapted(x: Any, k: int, *, coef: Any = None, ref: Any = None, **kw: Any) -> Any:
        if ref is None:
            return fn(x, k, coef=coef, **kw)
        kw.pop("aux", None)
        inner = None if coef is None else (lambda r, a: coef(r - a, None))
        rho, g = fn(x, k, coef=inner, aux=ref, **kw)
        return rho - ref, g

    return adapted


@contextlib.contextmanager
def engine(mod: Any) -> Iterator[None]:
    """Run the top-k kernel on the ESP engine of module ``mod``."""
    saved = _topk._log_ratio_and_grad
    _topk._log_ratio_and_grad = _with_ref(mod._log_ratio_and_grad)
    try:
        yield
    finally:
        _topk._log_ratio_and_grad = saved


# --------------------------------------------------------------------------------------
# Environment.
# --------------------------------------------------------------------------------------


def environment(torch_threads: int | None) -> list[str]:
    lines = [
        f"python {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable)",
    ]
    blas = "?"
    try:
        cfg: Any = np.show_config(mode="dicts")
        dep = cfg["Build Dependencies"]["blas"]
        blas = f"{dep.get('name', '?')} {dep.get('version', '')}".strip()
    except (TypeError, KeyError):  # older NumPy: no dict mode
        pass
    lines.append(f"numpy {np.__version__}, BLAS {blas}")
    try:
        import threadpoolctl

        pools = threadpoolctl.threadpool_info()
        lines.append(
            "thread pools: "
            + (
                ", ".join(f"{p['internal_api']} {p['num_threads']}" for p in pools)
                or "-"
            )
        )
    except ImportError:
        pass
    env = {
        v: os.environ[v]
        for v in (
            "OMP_NUM_THREADS",
            "OPENBLAS_NUM_THREADS",
            "MKL_NUM_THREADS",
            "MALLOC_MMAP_THRESHOLD_",
            "MALLOC_TRIM_THRESHOLD_",
        )
        if v in os.environ
    }
    lines.append(f"env: {env or 'no thread or malloc variables set'}")
    if _esp_compiled.available():
        import numba

        lines.append(
            f"numba {numba.__version__} (compiled top-k kernel, serial: 1 thread; "
            f"NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS} unused)"
        )
    else:
        lines.append("numba not installed: auto = array (the array-API tree)")
    if torch_threads is not None:
        import torch

        lines.append(f"torch {torch.__version__}, {torch_threads} thread(s)")
    return lines


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


# --------------------------------------------------------------------------------------
# Timing.
# --------------------------------------------------------------------------------------


def _sync(backend: str) -> Callable[[], None]:
    if backend == "cupy":
        import cupy

        return cupy.cuda.Device().synchronize  # type: ignore[no-any-return]
    return lambda: None


def _candidates(
    z: Any,
    y: Any,
    z_np: np.ndarray,
    y_np: np.ndarray,
    k: int,
    naive: bool,
    ce_device: str | None,
    prev: Any,
) -> dict[str, Callable[[], Any]]:
    fns: dict[str, Callable[[], Any]] = {
        "auto": lambda: smooth_topk_svm_and_grad(z, y, k=k),
        "fwd": lambda: smooth_topk_svm(z, y, k=k),
        "direct": lambda: smooth_topk_svm_and_grad(z, y, k=k, method="direct"),
    }
    if _esp_compiled.available():

        def array() -> Any:
            with array_path():
                return smooth_topk_svm_and_grad(z, y, k=k)

        fns["array"] = array
    if k >= 16:
        fns["fft"] = lambda: smooth_topk_svm_and_grad(z, y, k=k, method="fft")
    if prev is not None:

        def previous() -> Any:
            with engine(prev), array_path():
                return smooth_topk_svm_and_grad(z, y, k=k)

        fns["prev"] = previous
    if naive:
        fns["naive"] = lambda: naive_log_space(z_np, y_np, k, 1.0, 1.0)
    if ce_device is not None:
        import torch
        import torch.nn.functional as F

        zt = torch.tensor(z_np, device=ce_device, requires_grad=True)
        yt = torch.tensor(y_np, device=ce_device)

        def ce() -> None:
            zt.grad = None
            F.cross_entropy(zt, yt).backward()
            if zt.is_cuda:
                torch.cuda.synchronize()

        fns["torchCE"] = ce
    return fns


def measure(
    fns: dict[str, Callable[[], Any]], sync: Callable[[], None], repeats: int
) -> dict[str, float]:
    """Minimum milliseconds of each function over ``repeats`` round-robin rounds.

    Each round calls the functions in a fresh random order (seeded), so that no
    candidate always runs right after the same neighbour (cache state, torch's
    thread pool): rotations of one order kept the neighbours, and ``auto``, run
    after torch CE, read slower than the same kernel as ``direct``."""
    best = dict.fromkeys(fns, float("inf"))
    for f in fns.values():  # warm up
        f()
    sync()
    order = list(fns.items())
    shuffle = np.random.default_rng(1)
    for _ in range(repeats):
        for i in shuffle.permutation(len(order)):
            name, f = order[i]
            t0 = time.perf_counter()
            f()
            sync()
            best[name] = min(best[name], 1e3 * (time.perf_counter() - t0))
    return best


def _cell(med: dict[str, float], name: str, width: int = 8) -> str:
    return f"{med[name]:{width}.2f}" if name in med else " " * (width - 1) + "-"


def _ratio(a: float | None, b: float | None, width: int) -> str:
    if a is None or b is None:
        return " " * (width - 1) + "-"
    return f"{a / b:.2f}x".rjust(width)


def run(
    backend: str,
    quick: bool,
    repeats: int,
    prev_rev: str | None,
    cases: list[tuple[int, int, int]] | None = None,
) -> None:
    if backend == "cupy":
        import cupy as mod
    elif backend == "torch":
        import torch as mod
    else:
        mod = np
    sync = _sync(backend)
    ce_device: str | None = None
    torch_threads = None
    try:
        import torch

        torch.set_num_threads(1)
        torch_threads = torch.get_num_threads()
        if backend != "cupy":
            ce_device = "cpu"
        elif torch.cuda.is_available():  # never compare a GPU with a CPU baseline
            ce_device = "cuda"
    except ImportError:
        pass
    prev = load_previous(prev_rev) if prev_rev else None
    if cases is None:
        cases = GPU_CASES if backend == "cupy" else CASES
        if quick and backend != "cupy":
            cases = [CASES[1], CASES[3]]
    for line in environment(torch_threads):
        print(line)
    print(
        f"backend={backend}, {repeats} round-robin rounds, minimum over rounds (ms), "
        f"torch CE on {ce_device}; prev = {prev_rev or '-'}; {load()}"
    )
    rng = np.random.default_rng(0)
    head = (
        f"{'dtype':7} {'(B, C, k)':>16} | {'auto':>7} {'array':>7} {'fwd':>6}"
        f" {'direct':>7} {'fft':>7} {'prev':>7} {'naive':>7} {'torchCE':>7} |"
        f" {'array/CE':>8} {'array/auto':>10} {'auto/CE':>7}"
        f" {'target':>6} {'fwd/auto':>8} {'naive/fwd':>9} {'prev/auto':>9}"
        f" {'direct/auto':>11}"
    )
    print(head)
    print("-" * len(head))
    for dtype in ("float32", "float64"):
        for B, C, k in cases:
            z_np = rng.standard_normal((B, C)).astype(dtype)
            y_np = rng.integers(0, C, B)
            z, y = (
                (z_np, y_np)
                if backend == "numpy"
                else (mod.asarray(z_np), mod.asarray(y_np))
            )
            naive = backend != "cupy" and C <= 2000
            fns = _candidates(z, y, z_np, y_np, k, naive, ce_device, prev)
            t = measure(fns, sync, repeats)
            cell = functools.partial(_cell, t)
            goal = TARGETS.get((dtype, B, C, k))
            verdict = "-"
            if goal is not None and "torchCE" in t:
                met = t["auto"] / t["torchCE"] <= goal
                verdict = f"{goal:g}x{'' if met else '!'}"
            print(
                f"{dtype:7} {(B, C, k)!s:>16} | {cell('auto', 7)} {cell('array', 7)}"
                f" {cell('fwd', 6)} {cell('direct', 7)} {cell('fft', 7)}"
                f" {cell('prev', 7)} {cell('naive', 7)} {cell('torchCE', 7)} |"
                f" {_ratio(t.get('array'), t.get('torchCE'), 8)}"
                f" {_ratio(t.get('array'), t['auto'], 10)}"
                f" {_ratio(t['auto'], t.get('torchCE'), 7)} {verdict:>6}"
                f" {_ratio(t['fwd'], t['auto'], 8)}"
                f" {_ratio(t.get('naive'), t['fwd'], 9)}"
                f" {_ratio(t.get('prev'), t['auto'], 9)}"
                f" {_ratio(t['direct'], t['auto'], 11)}",
                flush=True,
            )
    print(f"{load()}; '!' after a target: missed")


# --------------------------------------------------------------------------------------
# Instruction counts (callgrind).
# --------------------------------------------------------------------------------------


def _child(
    dtype: str, B: int, C: int, k: int, calls: int, prev_rev: str | None
) -> None:
    """Set up, call once (warm-up, caches, arena), then ``calls`` more times."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal((B, C)).astype(dtype)
    y = rng.integers(0, C, B)
    ctx = engine(load_previous(prev_rev)) if prev_rev else contextlib.nullcontext()
    with ctx:
        for _ in range(calls + 1):
            smooth_topk_svm_and_grad(z, y, k=k)


def _count(case: tuple[str, int, int, int], calls: int, prev_rev: str | None) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        cmd = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            ",".join(map(str, case)),
            "--calls",
            str(calls),
        ]
        if prev_rev:
            cmd += ["--prev", prev_rev]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        m = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.MULTILINE)
        assert m is not None, "no instruction total in the callgrind output"
        return int(m.group(1))


def instructions(calls: int, prev_rev: str | None) -> None:
    print(
        f"callgrind instructions per forward+backward call "
        f"({calls} calls minus none, one child process each); prev = {prev_rev or '-'}"
    )
    print(f"{'case':>30} | {'this tree':>14} {'prev':>14} {'prev/this':>9}")
    for case in INSTRUCTION_CASES:
        now = (_count(case, calls, None) - _count(case, 0, None)) / calls
        cell_prev, ratio = " " * 13 + "-", " " * 8 + "-"
        if prev_rev:
            before = (_count(case, calls, prev_rev) - _count(case, 0, prev_rev)) / calls
            cell_prev, ratio = f"{before:14.4g}", f"{before / now:8.2f}x"
        print(f"{case!s:>30} | {now:14.4g} {cell_prev} {ratio}", flush=True)


def _case(text: str) -> tuple[int, int, int]:
    """``B,C,k`` as three integers with 1 <= k < C (argparse's type)."""
    try:
        B, C, k = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected B,C,k (three integers), got {text!r}"
        ) from None
    if B < 1 or not 1 <= k < C:
        raise argparse.ArgumentTypeError(f"need B >= 1 and 1 <= k < C, got {text!r}")
    return B, C, k


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--backend", choices=["numpy", "cupy", "torch"], default="numpy"
    )
    parser.add_argument("--quick", action="store_true", help="two cases, 10 rounds")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument(
        "--case",
        action="append",
        type=_case,
        default=None,
        metavar="B,C,k",
        help="time this (B, C, k) instead of the default cases (repeatable)",
    )
    parser.add_argument("--prev", default=None, help="git revision to compare with")
    parser.add_argument(
        "--instructions", action="store_true", help="count instructions (valgrind)"
    )
    parser.add_argument("--calls", type=int, default=3, help=argparse.SUPPRESS)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        dtype, *dims = args.child.split(",")
        B, C, k = map(int, dims)
        _child(dtype, B, C, k, args.calls, args.prev)
        return
    if args.instructions:
        instructions(args.calls, args.prev)
        return
    repeats = args.repeats or (10 if args.quick else 40)
    run(args.backend, args.quick, repeats, args.prev, args.case)


if __name__ == "__main__":
    main()

"""Benchmark of the smooth top-k SVM loss (forward, forward+backward).

Columns, for each (B, C, k) and dtype (milliseconds, median of repeats taken in
round-robin order inside one process):

- ``auto``/``direct``/``fft``: ``arrayloss`` forward+backward (``smooth_topk_svm_and_grad``)
  with that ``method``; ``fwd`` is the forward alone (``method="auto"``);
- ``naive``: a log-space sequential ESP recursion (``logaddexp`` over the classes,
  vectorised over the batch, NumPy, forward only): the simple correct baseline;
- ``torchCE``: ``torch.nn.functional.cross_entropy`` forward+backward with
  ``torch.set_num_threads(1)``, when torch is installed;
- ratios: ``auto/CE``, ``fwd/auto``, ``naive/fwd``, ``direct/auto`` (the FFT speed-up
  at k >= 64) and ``ref/auto`` against the oval-group/smooth-topk timings of
  docs/design/topk.md Table 1 (same machine class, torch 2 threads).

Targets (docs/design/topk.md §6): f32 (256, 1000, 5) <= 8x torch CE and <= 6 ms; k=50 <= 30x
torch CE; at k=200 the FFT path >= 1.5x faster than direct.

With ``--backend cupy`` the cases are (4096, 1000, 5) and (4096, 1000, 50) on the
GPU, against ``torch.nn.functional.cross_entropy`` on the same device (target:
<= 3x at k = 5), and the CPU-only ``naive`` column is left out.

Usage::

    python bench/bench_topk.py [--backend numpy|cupy|torch] [--quick] [--repeats N]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from arrayloss.losses._topk import smooth_topk_svm, smooth_topk_svm_and_grad

CASES = [
    (256, 100, 5),
    (256, 1000, 5),
    (64, 10000, 5),
    (256, 1000, 50),
    (64, 2000, 200),
]
# On a GPU (--backend cupy): the sizes, against torch CUDA cross-entropy.
GPU_CASES = [(4096, 1000, 5), (4096, 1000, 50)]
# oval-group/smooth-topk forward+backward, ms (docs/design/topk.md Table 1, default malloc).
REFERENCE_MS = {
    ("float32", 256, 100, 5): 9.79,
    ("float32", 256, 1000, 5): 49.6,
    ("float32", 64, 10000, 5): 108.9,
    ("float32", 256, 1000, 50): 575.6,
    ("float64", 256, 100, 5): 10.8,
    ("float64", 256, 1000, 5): 60.6,
    ("float64", 64, 10000, 5): 191.5,
    ("float64", 256, 1000, 50): 615.5,
}


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


def _timer(backend: str) -> Callable[[], None]:
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
) -> dict[str, Callable[[], Any]]:
    fns: dict[str, Callable[[], Any]] = {
        "auto": lambda: smooth_topk_svm_and_grad(z, y, k=k),
        "fwd": lambda: smooth_topk_svm(z, y, k=k),
        "direct": lambda: smooth_topk_svm_and_grad(z, y, k=k, method="direct"),
    }
    if k >= 16:
        fns["fft"] = lambda: smooth_topk_svm_and_grad(z, y, k=k, method="fft")
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


def _measure(
    fns: dict[str, Callable[[], Any]], sync: Callable[[], None], repeats: int
) -> dict[str, float]:
    """Median milliseconds of each function, called in round-robin order."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for f in fns.values():  # warm up
        f()
    sync()
    for _ in range(repeats):
        for name, f in fns.items():
            t0 = time.perf_counter()
            f()
            sync()
            times[name].append(1e3 * (time.perf_counter() - t0))
    return {name: statistics.median(v) for name, v in times.items()}


def _cell(med: dict[str, float], name: str, width: int = 8) -> str:
    return f"{med[name]:{width}.2f}" if name in med else " " * (width - 1) + "-"


def _ratio(a: float | None, b: float | None, width: int) -> str:
    if a is None or b is None:
        return " " * (width - 1) + "-"
    return f"{a / b:.1f}x".rjust(width)


def run(backend: str, quick: bool, repeats: int) -> None:
    if backend == "cupy":
        import cupy as mod
    elif backend == "torch":
        import torch as mod
    else:
        mod = np
    sync = _timer(backend)
    ce_device: str | None = None
    try:
        import torch

        torch.set_num_threads(1)
        if backend != "cupy":
            ce_device = "cpu"
        elif torch.cuda.is_available():  # never compare a GPU with a CPU baseline
            ce_device = "cuda"
    except ImportError:
        pass
    if backend == "cupy":
        cases = GPU_CASES
    else:
        cases = [CASES[0], CASES[1], CASES[3]] if quick else CASES
    rng = np.random.default_rng(0)
    head = (
        f"{'dtype':7} {'(B, C, k)':>16} | {'auto':>8} {'fwd':>7} {'direct':>8} {'fft':>8}"
        f" {'naive':>8} {'torchCE':>8} | {'auto/CE':>7} {'fwd/auto':>8} {'naive/fwd':>9}"
        f" {'direct/auto':>11} {'ref/auto':>8}"
    )
    print(f"backend={backend}, repeats={repeats}, torch CE on {ce_device} (1 thread)")
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
            naive = backend != "cupy" and (not quick or C <= 1000)
            med = _measure(
                _candidates(z, y, z_np, y_np, k, naive, ce_device), sync, repeats
            )
            ref = REFERENCE_MS.get((dtype, B, C, k))
            cell = functools.partial(_cell, med)
            print(
                f"{dtype:7} {(B, C, k)!s:>16} | {cell('auto')} {cell('fwd', 7)}"
                f" {cell('direct')} {cell('fft')} {cell('naive')} {cell('torchCE')} |"
                f" {_ratio(med['auto'], med.get('torchCE'), 7)}"
                f" {_ratio(med['fwd'], med['auto'], 8)}"
                f" {_ratio(med.get('naive'), med['fwd'], 9)}"
                f" {_ratio(med['direct'], med['auto'], 11)}"
                f" {_ratio(ref, med['auto'], 8)}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--backend", choices=["numpy", "cupy", "torch"], default="numpy"
    )
    parser.add_argument("--quick", action="store_true", help="fewer cases and repeats")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    repeats = args.repeats or (5 if args.quick else 21)
    run(args.backend, args.quick, repeats)


if __name__ == "__main__":
    main()

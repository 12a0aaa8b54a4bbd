"""Forward+backward time of cross-entropy and smooth top-k on every array backend.

For each installed backend (NumPy, array_api_strict, PyTorch CPU, JAX eager and
``jax.jit``, Dask, CuPy on a CUDA device) the same arrayloss calls,
``cross_entropy_and_grad`` and ``smooth_topk_svm_and_grad(k=5)``, are timed on one
(B, C) batch, float32 and float64, with the ratio to NumPy's time for the same loss
and dtype measured in the same run.  The frameworks' own cross-entropy (forward +
backward by autodiff) is timed alongside as the outside yardstick:
``torch.nn.functional.cross_entropy`` and a jitted ``jax.value_and_grad`` of
``-mean(log_softmax)``.

Every timing includes the wait for the result: JAX ``block_until_ready``, Dask
``compute`` (graph construction included, synchronous scheduler at 1 thread),
CuPy device synchronisation.  Medians of ``--repeats`` calls, taken round-robin,
the best of ``--rounds`` passes.

Usage::

    python bench/bench_backends.py [--batch 256] [--classes 1000] [--k 5]
        [--repeats 30] [--rounds 3] [--threads 1] [--backends numpy,torch,...]
        [--markdown docs/benchmarks/backends.md]

``--markdown PATH`` also writes the table as a Markdown page stamped with the
command, the date, the git commit and the library versions: the README links to
that generated page instead of holding numbers typed by hand.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from _common import best_medians

BACKENDS = ("numpy", "array_api_strict", "torch", "jax", "jax.jit", "dask", "cupy")


def _set_threads(threads: int) -> None:
    """Pin every library to ``threads`` threads before any of them is imported."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(threads))
    if threads == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = (
            f"{flags} --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        ).strip()


def _backend(
    name: str, threads: int, dask_chunk: int
) -> tuple[Any, Callable[[Any], Any]] | str:
    """(to_array, wait) for one backend, or the reason it cannot run here."""
    import numpy as np

    try:
        if name == "numpy":
            return np.asarray, lambda r: r
        if name == "array_api_strict":
            import array_api_strict

            return array_api_strict.asarray, lambda r: r
        if name == "torch":
            import torch

            torch.set_num_threads(threads)
            return torch.asarray, lambda r: r
        if name in ("jax", "jax.jit"):
            import jax

            jax.config.update("jax_enable_x64", True)
            import jax.numpy as jnp

            return jnp.asarray, jax.block_until_ready
        if name == "dask":
            import dask
            import dask.array as da

            if threads == 1:
                dask.config.set(scheduler="synchronous")

            def to_dask(a: Any) -> Any:
                return da.from_array(a, chunks=(dask_chunk, *a.shape[1:]))

            return to_dask, lambda r: dask.compute(*r)
        if name == "cupy":
            import cupy

            if cupy.cuda.runtime.getDeviceCount() < 1:
                return "no CUDA device"
            sync = cupy.cuda.Device().synchronize

            def wait(r: Any) -> Any:
                sync()
                return r

            return cupy.asarray, wait
    except ImportError as exc:
        return f"not installed ({exc.name})"
    except Exception as exc:  # e.g. CuPy without a driver
        return f"unavailable ({type(exc).__name__}: {exc})"
    raise ValueError(name)


def _tasks(
    name: str, to_array: Any, wait: Callable[[Any], Any], z: Any, y: Any, k: int
) -> dict[str, Callable[[], object]]:
    import arrayloss as al

    zb, yb = to_array(z), to_array(y)
    ce: Callable[..., Any] = al.cross_entropy_and_grad
    topk: Callable[..., Any] = lambda z, y: al.smooth_topk_svm_and_grad(z, y, k=k)  # noqa: E731
    if name == "jax.jit":
        import jax

        ce, topk = jax.jit(ce), jax.jit(topk)
    return {
        "cross_entropy": lambda: wait(ce(zb, yb)),
        f"smooth_top{k}_svm": lambda: wait(topk(zb, yb)),
    }


def _native_ce(name: str, z: Any, y: Any) -> Callable[[], object] | None:
    """The framework's own cross-entropy, forward + backward by autodiff."""
    if name == "torch":
        import torch
        import torch.nn.functional as F

        tz = torch.tensor(z, requires_grad=True)
        ty = torch.tensor(y)

        def torch_ce() -> None:
            tz.grad = None
            F.cross_entropy(tz, ty).backward()

        return torch_ce
    if name == "jax.jit":
        import jax
        import jax.numpy as jnp

        def loss(s: Any, t: Any) -> Any:
            logp = jax.nn.log_softmax(s, axis=-1)
            return -jnp.mean(jnp.take_along_axis(logp, t[:, None], axis=-1))

        f = jax.jit(jax.value_and_grad(loss))
        jz, jy = jnp.asarray(z), jnp.asarray(y)
        return lambda: jax.block_until_ready(f(jz, jy))
    if name == "cupy":
        try:
            import torch
            import torch.nn.functional as F
        except ImportError:
            return None
        if not torch.cuda.is_available():
            return None
        cz = torch.tensor(z, device="cuda", requires_grad=True)
        cy = torch.tensor(y, device="cuda")

        def cuda_ce() -> None:
            cz.grad = None
            F.cross_entropy(cz, cy).backward()
            torch.cuda.synchronize()

        return cuda_ce
    return None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--dask-chunk", type=int, default=64, help="rows per Dask block"
    )
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument(
        "--markdown", metavar="PATH", help="also write the table as a Markdown page"
    )
    parser.add_argument(
        "--note", default="", help="a line for the page, e.g. the machine's load"
    )
    args = parser.parse_args()
    names = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(names) - set(BACKENDS))
    if unknown:
        parser.error(f"unknown backend(s) {unknown}; choose from {list(BACKENDS)}")

    _set_threads(args.threads)
    import numpy as np

    rng = np.random.default_rng(0)
    z64 = rng.normal(size=(args.batch, args.classes))
    y = rng.integers(0, args.classes, size=args.batch)
    print(
        f"# (B, C) = ({args.batch}, {args.classes}), k = {args.k}; {args.threads} thread(s); "
        f"median of {args.repeats} calls, best of {args.rounds} rounds"
    )
    print(f"{'backend':18s} {'loss':22s} {'dtype':8s} {'ms':>9s} {'x NumPy':>8s}")
    skipped: dict[str, str] = {}
    results: list[tuple[str, str, str, float, float | None]] = []
    for dtype in ("float32", "float64"):
        z = z64.astype(dtype)
        tasks: dict[tuple[str, str], Callable[[], object]] = {}
        for name in names:
            got = _backend(name, args.threads, args.dask_chunk)
            if isinstance(got, str):
                skipped[name] = got
                continue
            to_array, wait = got
            for loss, fn in _tasks(name, to_array, wait, z, y, args.k).items():
                tasks[(name, loss)] = fn
            native = _native_ce(name, z, y)
            if native is not None:
                tasks[(name, "native CE")] = native
        best = best_medians(tasks, args.repeats, args.rounds)
        for (name, loss), ms in best.items():
            base = best.get(("numpy", "cross_entropy" if loss == "native CE" else loss))
            ratio = f"{ms / base:7.2f}x" if base else ""
            print(f"{name:18s} {loss:22s} {dtype:8s} {ms:9.3f} {ratio:>8s}")
            results.append((name, loss, dtype, ms, ms / base if base else None))
    for name, why in skipped.items():
        print(f"# {name}: skipped, {why}")
    if args.markdown:
        write_markdown(args.markdown, args, results, skipped)
        print(f"# wrote {args.markdown}")


def _git_commit() -> str:
    """The checkout's commit, ``-dirty`` when tracked files differ from it."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=here, check=True,
            capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
            check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return sha + ("-dirty" if dirty else "")


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = [f"Python {platform.python_version()}"]
    for dist in ("numpy", "scipy", "array-api-strict", "torch", "jax", "dask", "cupy"):
        try:
            parts.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            continue
    return ", ".join(parts)


def write_markdown(
    path: str,
    args: argparse.Namespace,
    results: list[tuple[str, str, str, float, float | None]],
    skipped: dict[str, str],
) -> None:
    """The run as a Markdown page: command, date, commit, machine, then the table.

    Written to a temporary file beside ``path`` and renamed over it, so an
    interrupted run leaves the previous page whole.
    """
    command = "python bench/bench_backends.py " + " ".join(
        shlex.quote(a) for a in sys.argv[1:]
    )
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Backend timings (generated)",
        "",
        "Generated by a benchmark run; do not edit by hand, run the command again.",
        "",
        f"- command: `{command.strip()}`",
        f"- date: {now}",
        f"- commit: `{_git_commit()}`",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPU(s), "
        f"{platform.system()} {platform.release()}",
        f"- libraries: {_versions()}",
        f"- batch (B, C) = ({args.batch}, {args.classes}), k = {args.k}, "
        f"{args.threads} thread(s); median of {args.repeats} calls, best of "
        f"{args.rounds} rounds; forward + backward, the wait for the result included",
        *([f"- note: {args.note}"] if args.note else []),
        "",
        "The ratio is to NumPy's time for the same loss and dtype in the same run "
        "(`native CE`: the framework's own cross-entropy, against NumPy's "
        "`cross_entropy_and_grad`).",
        "",
        "| backend | loss | dtype | ms | × NumPy |",
        "|---|---|---|---:|---:|",
    ]
    for name, loss, dtype, ms, ratio in results:
        r = f"{ratio:.2f}×" if ratio is not None else "–"
        lines.append(f"| {name} | {loss} | {dtype} | {ms:.3f} | {r} |")
    if skipped:
        lines.append("")
        lines.extend(f"- {name}: skipped, {why}" for name, why in skipped.items())
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


if __name__ == "__main__":
    main()

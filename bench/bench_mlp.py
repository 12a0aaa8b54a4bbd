"""Time per epoch of the arrayloss MLP (NumPy) against the same MLP in PyTorch (CPU).

Both train a 784-256-256-10 ReLU network with cross-entropy, plain SGD with
momentum 0.9, batch 128, float32, on synthetic data (60 000 x 784 by default),
in one process per thread count: the environment sets OMP/OpenBLAS/MKL threads
before NumPy or PyTorch load, and ``torch.set_num_threads`` matches it. PyTorch
uses autograd and ``torch.optim.SGD``; arrayloss uses ``arrayloss.mlp.fit`` (manual
backpropagation from ``arrayloss.value_and_grad``). After a warm-up epoch on a
slice of the data, each side runs ``--epochs`` full epochs; the median epoch time
is reported, with the ratio NumPy / PyTorch (target: at most 1.3).

    python bench/bench_mlp.py                    # 60 000 samples, 1 and 2 threads
    python bench/bench_mlp.py --n 10000 --epochs 2 --threads 1
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time

SIZES = (784, 256, 256, 10)


def _data(n: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, SIZES[0])).astype(np.float32)
    teacher = rng.normal(size=(SIZES[0], SIZES[-1])).astype(np.float32)
    y = np.argmax(x @ teacher, axis=1).astype(np.int64)  # learnable labels
    return x, y


def _numpy_epochs(
    x, y, epochs: int, batch: int, lr: float
) -> tuple[list[float], list[float]]:
    from arrayloss import mlp

    warm = mlp.init(SIZES, seed=0)
    mlp.fit(warm, x[: 20 * batch], y[: 20 * batch], epochs=1, batch_size=batch,
            optimizer=mlp.SGD(lr=lr, momentum=0.9))  # fmt: skip
    times, losses = [], []
    stamp = [time.perf_counter()]

    def on_epoch(epoch, params, loss):
        now = time.perf_counter()
        times.append(now - stamp[0])
        losses.append(loss)
        stamp[0] = now

    net = mlp.init(SIZES, seed=0)
    stamp[0] = time.perf_counter()
    mlp.fit(net, x, y, epochs=epochs, batch_size=batch, seed=0,
            optimizer=mlp.SGD(lr=lr, momentum=0.9), on_epoch=on_epoch)  # fmt: skip
    return times, losses


def _torch_epochs(
    x, y, epochs: int, batch: int, lr: float
) -> tuple[list[float], list[float]]:
    import torch

    torch.manual_seed(0)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    n = xt.shape[0]

    def make():
        layers = []
        for i, (a, b) in enumerate(itertools.pairwise(SIZES)):
            layers.append(torch.nn.Linear(a, b))
            if i < len(SIZES) - 2:
                layers.append(torch.nn.ReLU())
        model = torch.nn.Sequential(*layers)
        return model, torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)

    loss_fn = torch.nn.CrossEntropyLoss()

    def epoch(model, opt, m):
        total = 0.0
        perm = torch.randperm(m)
        for start in range(0, m, batch):
            idx = perm[start : start + batch]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            total += loss.item() * idx.shape[0]
        return total / m

    model, opt = make()
    epoch(model, opt, 20 * batch)  # warm-up
    model, opt = make()
    times, losses = [], []
    for _ in range(epochs):
        t0 = time.perf_counter()
        losses.append(epoch(model, opt, n))
        times.append(time.perf_counter() - t0)
    return times, losses


def worker(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    x, y = _data(args.n)
    np_times, np_losses = _numpy_epochs(x, y, args.epochs, args.batch, args.lr)
    t_times, t_losses = _torch_epochs(x, y, args.epochs, args.batch, args.lr)
    try:
        from threadpoolctl import threadpool_info

        blas = sorted(
            {f"{i['internal_api']}:{i['num_threads']}" for i in threadpool_info()}
        )
    except ImportError:
        blas = []
    print(json.dumps({
        "threads": args.threads, "numpy": np_times, "torch": t_times,
        "numpy_loss": np_losses, "torch_loss": t_losses, "blas": blas,
        "torch_threads": torch.get_num_threads(), "numpy_version": np.__version__,
        "torch_version": torch.__version__,
    }))  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--n", type=int, default=60000, help="training samples (default 60000)"
    )
    p.add_argument("--epochs", type=int, default=3, help="timed epochs per side")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        args.threads = int(args.threads)
        worker(args)
        return

    rows = []
    for t in (int(v) for v in args.threads.split(",")):
        env = dict(os.environ)
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(t)
        cmd = [sys.executable, __file__, "--worker", "--threads", str(t), "--n", str(args.n),
               "--epochs", str(args.epochs), "--batch", str(args.batch), "--lr", str(args.lr)]  # fmt: skip
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))

    print(f"MLP {'-'.join(map(str, SIZES))}, batch {args.batch}, SGD momentum 0.9, "
          f"cross-entropy, float32, {args.n} samples; median of {args.epochs} epochs")  # fmt: skip
    print(f"numpy {rows[0]['numpy_version']}, torch {rows[0]['torch_version']}, "
          f"BLAS {', '.join(rows[0]['blas']) or 'unknown'}")  # fmt: skip
    print()
    print("| threads | arrayloss (NumPy) s/epoch | PyTorch s/epoch | ratio |")
    print("|---:|---:|---:|---:|")
    for r in rows:
        a, b = statistics.median(r["numpy"]), statistics.median(r["torch"])
        print(f"| {r['threads']} | {a:.3f} | {b:.3f} | {a / b:.2f}x |")
    print()
    for r in rows:
        print(f"threads {r['threads']}: mean training loss per epoch, "
              f"numpy {[round(v, 3) for v in r['numpy_loss']]}, "
              f"torch {[round(v, 3) for v in r['torch_loss']]}")  # fmt: skip


if __name__ == "__main__":
    main()

"""Benchmark ``arrayloss eval`` on the same predictions as ``.npy``, Parquet and
Feather.

Writes float32 logits (default 1 000 000 x 100, 400 MB) and their labels as
``.npy`` to a temporary folder and, in a child process, the same frame (one
float32 column per class and a ``label`` column) as pandas saves it:
``df.to_parquet()`` (``parquet``: snappy, dictionary pages, and row groups of up
to 1 Mi rows, so the default file is one row group) and ``df.to_feather()``
(``feather``: lz4, record batches of 64 Ki rows), and as pyarrow writes it in
pieces of 65 536 rows (``pq-64k``: one row group each, snappy and dictionary, and
``plain``: no dictionary, no compression).  It then times ``arrayloss eval`` on
each, as whole child processes (start-up included), ``--repeat`` times in turn;
the pandas-written Parquet file also without reading ahead in a thread
(``pq-sync``: ``ARRAYLOSS_ARROW_PREFETCH=0``) and with pyarrow's own memory pools
(``pq-mimal``: ``ARROW_DEFAULT_MEMORY_POOL=mimalloc``, as the wheels have it),
and, as a floor, pyarrow reading that file alone as eval reads it (``pq-read``:
its record batches, threads and memory pools, imports included, but no
conversion into rows and no evaluation).  arrayloss's modules are compiled to
bytecode first, as an installed package has them.
The best wall time, the best CPU time (user + system of the child: the steadier
figure on a loaded machine; pyarrow's reader threads count) and the peak RSS of
each child (``wait4``) are printed, with the times as multiples of the ``.npy``
run's, and the results are checked to be identical.  Target: the pandas-written
Parquet file within 1.5x of ``.npy``.  Needs pyarrow (``pip install
"arrayloss[io]"``) and pandas.

    python bench/bench_eval_formats.py                    # 400 MB
    python bench/bench_eval_formats.py --rows 50000 --classes 1000
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time

from _common import compile_bytecode, run_child, run_child_usage, write_predictions

CONVERT = """
import sys, numpy as np, pandas as pd, pyarrow as pa, pyarrow.ipc, pyarrow.parquet as pq
zpath, ypath, ppath, fpath, gpath, plain = sys.argv[1:7]
z = np.load(zpath, mmap_mode="r"); y = np.load(ypath)
names = [f"p{i}" for i in range(z.shape[1])]
# as a user saves predict_proba (or logits): one float32 column per class
frame = pd.DataFrame(np.asarray(z), columns=names)
frame["label"] = y
frame.to_parquet(ppath)  # snappy, dictionary pages, row groups of 1Mi rows
frame.to_feather(fpath)  # lz4, record batches of 64Ki rows
del frame
schema = pa.schema([*(pa.field(n, pa.float32()) for n in names), ("label", pa.int64())])
with pq.ParquetWriter(gpath, schema) as gw, \\
        pq.ParquetWriter(plain, schema, use_dictionary=False, compression="none") as uw:
    for i in range(0, z.shape[0], 65536):
        block = np.ascontiguousarray(z[i : i + 65536])
        cols = [pa.array(block[:, j]) for j in range(block.shape[1])]
        table = pa.Table.from_arrays([*cols, pa.array(y[i : i + 65536])], schema=schema)
        gw.write_table(table)
        uw.write_table(table)
"""

READ_ONLY = """
import sys
from arrayloss import _arrow
_arrow.own_memory_pool()  # as the command line does
f = _arrow._ArrowFile(sys.argv[1], "the file")
f.start([c for c in range(len(f.names)) if c not in f.index_columns()])
rows = 0
while (batch := f._next()) is not None:
    rows += batch.num_rows
print(rows)
"""
# the pandas-written file read as eval reads it (its batches, threads and memory
# pools, imports included), without the conversion into rows or the evaluation

ENV_KNOBS = ("ARRAYLOSS_ARROW_PREFETCH", "ARROW_DEFAULT_MEMORY_POOL")
"""Variables the runs set themselves (``pq-sync``, ``pq-mimal``), unset for the
others."""

LAYOUT = """
import sys, pyarrow.parquet as pq
md = pq.ParquetFile(sys.argv[1]).metadata
col = md.row_group(0).column(0)
print(f"{md.num_row_groups} row groups of <= {max(md.row_group(i).num_rows for i in range(md.num_row_groups))} rows, {col.compression.lower()}, {'/'.join(col.encodings).lower()}")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--dir", default=None, help="where to write the data (default: a temp dir)"
    )
    args = parser.parse_args()
    # not imported here: a child's peak RSS counts this process's until its exec
    if not all(importlib.util.find_spec(m) for m in ("pyarrow", "pandas")):
        raise SystemExit(
            'this benchmark needs pyarrow and pandas: pip install "arrayloss[io]" pandas'
        )
    versions = ", ".join(
        f"{m} {importlib.metadata.version(m)}" for m in ("pyarrow", "pandas")
    )
    print(versions)
    print(compile_bytecode())

    folder = tempfile.mkdtemp(prefix="bench_eval_formats_", dir=args.dir)
    try:
        t0 = time.perf_counter()
        paths = {
            k: os.path.join(folder, f)
            for k, f in (
                ("npy", "logits.npy"),
                ("labels", "labels.npy"),
                ("parquet", "preds.parquet"),
                ("feather", "preds.feather"),
                ("pq-64k", "groups.parquet"),
                ("plain", "plain.parquet"),
            )
        }
        write_predictions(paths["npy"], paths["labels"], args.rows, args.classes)
        files = ("parquet", "feather", "pq-64k", "plain")
        convert = [paths[k] for k in ("npy", "labels", *files)]
        run_child([sys.executable, "-c", CONVERT, *convert])
        print(
            f"data: {args.rows} x {args.classes} float32 (written in "
            f"{time.perf_counter() - t0:.1f} s) in {folder}"
        )
        for k in ("npy", *files):
            layout = ""
            if k != "npy" and k != "feather":
                _, _, out = run_child([sys.executable, "-c", LAYOUT, paths[k]])
                layout = f": {out.strip()}"
            print(f"  {k:<8} {os.path.getsize(paths[k]) / 1e6:5.0f} MB{layout}")
        common = [
            "--quiet", "--loss", "cross_entropy", "--metric", "accuracy",
            "--metric", "nll", "--metric", "ece", "--format", "json",
        ]  # fmt: skip
        base = [sys.executable, "-m", "arrayloss", "eval"]
        pq_cmd = [*base, paths["parquet"], "--label-column", "label", *common]
        cases = {
            ".npy": [*base, paths["npy"], paths["labels"], *common],
            "parquet": pq_cmd,
            "pq-sync": pq_cmd,
            "pq-mimal": pq_cmd,
            "feather": [*base, paths["feather"], "--label-column", "label", *common],
            "pq-64k": [*base, paths["pq-64k"], "--label-column", "label", *common],
            "plain": [*base, paths["plain"], "--label-column", "label", *common],
            "pq-read": [sys.executable, "-c", READ_ONLY, paths["parquet"]],
        }
        env = {k: v for k, v in os.environ.items() if k not in ENV_KNOBS}
        envs = {
            "pq-sync": {**env, "ARRAYLOSS_ARROW_PREFETCH": "0"},
            "pq-mimal": {**env, "ARROW_DEFAULT_MEMORY_POOL": "mimalloc"},
        }
        best: dict[str, tuple[float, float, float, str]] = {}
        for _ in range(args.repeat):
            for name, cmd in cases.items():
                wall, cpu, rss, out = run_child_usage(cmd, envs.get(name, env))
                old = best.get(name)
                if old is not None:
                    wall, cpu, rss = (
                        min(wall, old[0]),
                        min(cpu, old[1]),
                        max(rss, old[2]),
                    )
                best[name] = (wall, cpu, rss, out)
        results = {
            name: json.loads(out)
            for name, (*_, out) in best.items()
            if name != "pq-read"
        }
        ref = results[".npy"]
        same = all(
            r["losses"] == ref["losses"] and r["metrics"] == ref["metrics"]
            for r in results.values()
        )
        print(f"results identical across formats: {same}")
        t_npy, c_npy = best[".npy"][0], best[".npy"][1]
        print(
            f"{'input':<8} {'best wall s':>11} {'x .npy':>7} {'best CPU s':>10} "
            f"{'x .npy':>7} {'peak RSS MB':>12}"
        )
        for name, (wall, cpu, rss, _) in best.items():
            print(
                f"{name:<8} {wall:>11.2f} {wall / t_npy:>7.2f} {cpu:>10.2f} "
                f"{cpu / c_npy:>7.2f} {rss:>12.0f}"
            )
        print(
            f"parquet / .npy = {best['parquet'][0] / t_npy:.2f}x wall, "
            f"{best['parquet'][1] / c_npy:.2f}x CPU  (pandas' to_parquet; target "
            f"<= 1.5x; {best['pq-sync'][0] / t_npy:.2f}x wall without reading ahead)"
        )
        print(
            f"pyarrow reading the file alone (pq-read) = {best['pq-read'][0] / t_npy:.2f}x "
            f"wall, {best['pq-read'][1] / c_npy:.2f}x CPU of the whole .npy eval"
        )
        if not same:
            raise SystemExit("the formats gave different results")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

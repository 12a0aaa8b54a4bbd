"""``arrayloss eval --dask``: the shards as Dask arrays, reduced on a cluster.

The graph, built on this machine from the files' headers alone:

1. **Dask arrays over the shards.**  Each ``.npy`` shard is cut into blocks of rows
   (about 4M scores a block, or ``--chunk-size`` rows); an ``.npz`` shard is one
   block, because a compressed member can only be read from its start.  The
   scores ``(n, C)``, labels ``(n, 1)`` and weights ``(n, 1)`` of a run of shards
   stored alike are Dask arrays made by `dask.array.map_blocks`: block ``i`` is a
   read of rows ``start:stop`` of its shard's files on the worker
   (`arrayloss.io.read_rows`: one seek and positioned reads, no memory map,
   nothing sent from here).
2. **Exact tallies per block, by the streaming code itself.**  A third
   ``map_blocks`` turns each block of the three arrays into its tallies
   (`_block_tallies`): it hands the block, in cache-sized chunks, to the very
   function the streaming path runs on a chunk (`_engine.evaluate_chunk`), with the
   same checks (finite scores, probabilities, labels in range, weights; each
   error one line naming the file and row, raised on the worker and re-raised
   here), the same array-API metric and loss code (`_metric_rows._Rows`, the registry
   losses with ``reduction="none"``) and the same exact sums (float64 within a
   chunk, fractions across chunks), starting from empty tallies.  All three maps
   are blockwise, so Dask fuses reading and evaluating a block into one task,
   and a block never leaves the worker that read it.
3. **Tree reduction.**  The block tallies are merged (``merge``: exact, order
   free) in a tree of fan-in 8 on the cluster; only the root comes back.

The result equals the single-process run up to the float64 rounding of the
per-chunk sums (about 1e-16 relative).  ``ece:strategy=quantile`` works too: its
tallies keep each sample's confidence, hit and weight (~10-18 bytes a sample),
which the tree gathers to this machine, where the edges are computed as without
``--dask``.

Why not the lazy array-API path: the losses and metrics do run on Dask arrays
(`arrayloss` skips value checks on lazy arrays), but then every array operation is
a task per block, about 35 for cross-entropy with the five metrics and 200 more
for ``smooth_topk_svm``.  At a few milliseconds of scheduling a task, 4,000 x 10
scores in 14 blocks with those three losses took about 40 s that way on a 2-worker
local cluster, against 0.3 s with one task a block (2.3 s when the workers first
import arrayloss).

Dask and distributed are imported only when ``--dask`` is given.  Workers of a
remote cluster must have arrayloss installed and see the files under the same
paths; they run about twice as fast started without distributed's default
``MALLOC_TRIM_THRESHOLD_`` (see `local_cluster`): set
``distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_`` to null in the
Dask config of the machines that start them.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import reduce
from typing import Any

import numpy as np

from arrayloss._errors import UsageError
from arrayloss._errors import one_line as _one_line
from arrayloss.io import Chunk, DataError, read_rows
from arrayloss.io._labels import LabelRangeError

from ._engine import (
    ClipTally,
    IgnoreTally,
    LossTally,
    ProbInput,
    Tallies,
    backend_converter,
    chunk_rows,
    evaluate_chunk,
)
from ._shards import ShardInfo

__all__ = ["cluster_client", "evaluate_on_cluster", "local_cluster"]

BLOCK_ELEMENTS = 1 << 22
"""Scores per block by default: 16 MB of float32, 32 MB of float64."""

FAN_IN = 8
"""Block tallies merged by one task of the tree reduction."""

_Bundle = tuple[
    int, dict[str, Any], dict[str, tuple[Fraction, Fraction]], ClipTally, dict[str, Any]
]
"""Rows, metric tallies, loss sums, clipping, and the extras (``ignored``: an
`IgnoreTally`, ``boot``: a `BootstrapTally`; each merged with ``merge``)."""


def _module(name: str) -> Any:
    """An untyped handle on a Dask module (imported here, on first use)."""
    return importlib.import_module(name)


# --------------------------------------------------------------------------- #
# The cluster
# --------------------------------------------------------------------------- #


def local_cluster(n_workers: int) -> Any:
    """A `distributed.LocalCluster` of ``n_workers`` processes with one thread each.

    * No dashboard, and the scheduler's HTTP server (health checks) on a free port
      of 127.0.0.1: the default, port 8787, is often taken by another cluster, and
      distributed then warns on standard error.
    * Logs below CRITICAL are silenced: a task's error comes back to the client,
      which reports it on one line; the worker's log of it would add a traceback.
    * The workers start without distributed's ``MALLOC_TRIM_THRESHOLD_=65536``.
      Setting it switches off glibc's adaptive mmap threshold, so every NumPy
      temporary above 128 KB (a chunk's (rows, C) arrays are ~2 MB) is a fresh
      memory map, faulted in page by page: that made a block twice as slow.
    """
    dask = _module("dask")
    distributed = _module("distributed")
    trim = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"
    with dask.config.set({trim: None}):
        return distributed.LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
            silence_logs=logging.CRITICAL,  # errors come back to us, one line each
        )


@contextlib.contextmanager
def cluster_client(
    address: str | None, *, n_workers: int, timeout: float
) -> Iterator[Any]:
    """A `distributed.Client` of the scheduler at ``address``, or of a local cluster.

    Without an address, a `local_cluster` of ``n_workers`` is started and closed on
    exit.  An unreachable scheduler is a `DataError` (exit 1) naming the address.
    """
    distributed = _module("distributed")
    if address is None:
        try:
            cluster = local_cluster(n_workers)
        except Exception as exc:
            msg = f"cannot start a local Dask cluster ({_one_line(exc)})"
            raise DataError(msg) from None
        with cluster, distributed.Client(cluster, set_as_default=False) as client:
            yield client
        return
    _probe(address, timeout)
    try:
        client = distributed.Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        msg = f"cannot reach the Dask scheduler at {address} ({_one_line(exc)})"
        raise DataError(msg) from None
    with client:
        yield client


def _probe(address: str, timeout: float) -> None:
    """Check that ``address`` is a Dask scheduler, within ``timeout`` seconds.

    An unknown scheme is a `UsageError` (exit 2); a service that does not answer
    (nothing listening, or a server that accepts and says nothing, where
    `distributed.Client` would wait past its timeout) or answers as something else
    is a `DataError` (exit 1).  Only ``tcp://`` addresses are probed (others need
    the cluster's security settings, which `distributed.Client` reads itself).
    """
    import asyncio

    addressing = _module("distributed.comm.addressing")
    registry = _module("distributed.comm.registry")
    core = _module("distributed.core")
    try:
        scheme, _ = addressing.parse_address(address, strict=False)
        registry.get_backend(scheme)
    except ValueError as exc:
        msg = f"--dask {address}: {_one_line(exc)}"
        raise UsageError(msg) from None
    if scheme != "tcp":
        return

    async def identity() -> Any:
        remote = core.rpc(address)
        try:
            return await remote.identity()
        finally:
            await remote.close_rpc()

    try:
        info = asyncio.run(asyncio.wait_for(identity(), timeout))
    except (TimeoutError, asyncio.TimeoutError):
        msg = (
            f"cannot reach the Dask scheduler at {address}: no answer within "
            f"{timeout:g} s (is a scheduler listening there? see --dask-timeout)"
        )
        raise DataError(msg) from None
    except Exception as exc:  # the peer spoke, but not distributed's protocol
        msg = f"cannot reach the Dask scheduler at {address} ({type(exc).__name__}: {_one_line(exc)})"
        raise DataError(msg) from None
    kind = info.get("type") if isinstance(info, dict) else None
    if kind != "Scheduler":
        msg = f"{address} is not a Dask scheduler (it answers as {kind or 'something else'})"
        raise DataError(msg)


def evaluate_on_cluster(
    client: Any,
    infos: Sequence[ShardInfo],
    *,
    input_kind: str,
    n_classes: int,
    class_names: Sequence[str] | None,
    tallies: Tallies,
    block_rows: int | None,
    prob: ProbInput | None = None,
) -> int:
    """Add every shard to ``tallies``; return the row count.

    Rows are numbered across the shards in order, as the streaming path numbers
    them (for ``tallies.boot``'s draws).  ``tallies.metrics`` must be empty metric
    tallies; they are replaced by the totals, and the loss tallies' exact sums,
    ``clips``, ``ignored`` and ``boot`` are added to, as the streaming path does
    chunk by chunk.
    """
    loss_tallies, clips = tallies.losses, tallies.clips
    ignored, boot = tallies.ignored, tallies.boot
    delayed = _module("dask").delayed
    rows = block_rows or max(1, BLOCK_ELEMENTS // n_classes)
    setup = _Setup(
        input_kind=input_kind,
        n_classes=n_classes,
        class_names=None if class_names is None else tuple(class_names),
        tallies=dict(tallies.metrics),
        losses=tuple((t.spec, t.name, t.params) for t in loss_tallies.values()),
        sharded=len(infos) > 1,
        prob=prob or ProbInput(),
        ignore_label=None if ignored is None else ignored.label,
        boot=None if boot is None else boot.empty(),
        offsets=_offsets(infos),
    )
    bundles = []
    with_rows = [info for info in infos if info.n_rows != 0]  # empty shards: none
    if not with_rows:
        msg = (
            f"{infos[0].scores_label} has no rows"
            if len(infos) == 1
            else f"SCORES: none of its {len(infos)} files has rows"
        )
        raise DataError(msg)
    for run in _runs(with_rows):
        blocks = _Blocks([(info, a, b) for info in run for a, b in _spans(info, rows)])
        per_block = _block_tallies_array(blocks, setup)
        bundles += list(per_block.to_delayed(optimize_graph=True).ravel())
    while True:  # at least one level, which unwraps the blocks' arrays
        bundles = [
            delayed(_merge, pure=True)(*bundles[i : i + FAN_IN])
            for i in range(0, len(bundles), FAN_IN)
        ]
        if len(bundles) == 1:
            break
    n, metric_totals, loss_totals, clip_totals, extras = _gather(client, bundles[0])
    tallies.metrics.update(metric_totals)
    if ignored is not None:
        ignored.count += extras["ignored"].count
    if boot is not None:
        boot.merge(extras["boot"])
    if clips is not None:
        merged = clips.merge(clip_totals)
        clips.count, clips.moved = merged.count, merged.moved
        clips.infinite, clips.eps = merged.infinite, merged.eps
    for t in loss_tallies.values():
        total, weight = loss_totals[t.spec]
        t.total += total
        t.weight += weight
    return int(n)


def _gather(client: Any, root: Any) -> _Bundle:
    """Compute the root of the tree on the cluster and bring it here."""
    future = client.compute(root)
    try:
        bundle: _Bundle = future.result()
    except ImportError as exc:  # unpickling a task on a worker without arrayloss
        msg = (
            f"the Dask workers cannot run arrayloss ({_one_line(exc)}); install the "
            "same arrayloss on every worker"
        )
        raise DataError(msg) from None
    except Exception as exc:
        if type(exc).__name__ == "KilledWorker":
            msg = f"a Dask worker died while evaluating (out of memory?): {_one_line(exc)}"
            raise DataError(msg) from None
        raise
    finally:
        future.release()
    return bundle


# --------------------------------------------------------------------------- #
# Building the graph (on this machine)
# --------------------------------------------------------------------------- #


@dataclass(frozen=True, kw_only=True, eq=False)
class _Setup:
    """What every block task needs besides its data (``offsets``: `_offsets`)."""

    input_kind: str
    n_classes: int
    class_names: tuple[str, ...] | None
    tallies: dict[str, Any]
    losses: tuple[tuple[str, str, dict[str, Any]], ...]
    sharded: bool
    prob: ProbInput
    ignore_label: int | None
    boot: Any
    offsets: dict[str, int]

    def __dask_tokenize__(self) -> Any:
        boot = None if self.boot is None else repr(self.boot.spec)
        return (
            "arrayloss-setup", self.input_kind, self.n_classes, self.class_names,
            repr(self.tallies), repr(self.losses), self.sharded, repr(self.prob),
            self.ignore_label, boot, sorted(self.offsets.items()),
        )  # fmt: skip


@dataclass(frozen=True, eq=False)
class _Blocks:
    """The blocks of a run of shards: block ``i`` is rows ``start:stop`` of a shard."""

    spans: list[tuple[ShardInfo, int, int]]

    def __dask_tokenize__(self) -> Any:
        return ("arrayloss-blocks", *((repr(i), a, b) for i, a, b in self.spans))


def _runs(infos: Sequence[ShardInfo]) -> list[list[ShardInfo]]:
    """Consecutive shards stored alike: each run is one set of Dask arrays."""
    runs: list[list[ShardInfo]] = []
    for info in infos:
        kind = (info.dtype, info.labels_dtype, info.weights_dtype)
        last = runs[-1][-1] if runs else None
        if last is not None and kind == (
            last.dtype, last.labels_dtype, last.weights_dtype
        ):  # fmt: skip
            runs[-1].append(info)
        else:
            runs.append([info])
    return runs


def _offsets(infos: Sequence[ShardInfo]) -> dict[str, int]:
    """The number, in the whole input, of each shard's first row (by scores path)."""
    out, start = {}, 0
    for info in infos:
        out[info.shard.scores] = start
        start += info.n_rows or 0
    return out


def _spans(info: ShardInfo, rows: int) -> list[tuple[int, int]]:
    """The (start, stop) rows of each block of a shard."""
    n = info.n_rows
    assert n is not None  # and n > 0: shards without rows have no blocks
    step = n if info.shard.scores.lower().endswith(".npz") else rows
    return [(a, min(n, a + step)) for a in range(0, n, step)]


def _block_tallies_array(blocks: _Blocks, setup: _Setup) -> Any:
    """The Dask arrays of a run of shards, and its ``(blocks, 1)`` array of tallies.

    ``scores (n, C)``, ``labels (n, 1)`` and ``weights (n, 1)`` are read block by
    block on the workers (`_read_block`), as stored; `_block_tallies` maps each set
    of blocks to its tallies.  All three are blockwise, so Dask fuses reading and
    evaluating a block into one task.
    """
    da = _module("dask.array")
    first = blocks.spans[0][0]
    rows = tuple(b - a for _, a, b in blocks.spans)

    def read(kind: str, width: int, dtype: Any) -> Any:
        return da.map_blocks(
            _read_block, blocks, kind, chunks=(rows, (width,)), dtype=dtype,
            meta=np.empty((0, width), dtype=dtype),
        )  # fmt: skip

    assert first.n_cols is not None  # .npy/.npz shards: always a known width
    scores = read("scores", first.n_cols, first.dtype)
    labels = read("labels", 1, first.labels_dtype)
    weights = None
    if first.shard.weights is not None:
        weights = read("weights", 1, first.weights_dtype)
    return da.map_blocks(
        _block_tallies, scores, labels, weights, blocks, setup,
        chunks=((1,) * len(rows), (1,)), dtype=object,
        meta=np.empty((0, 0), dtype=object),
    )  # fmt: skip


# --------------------------------------------------------------------------- #
# Tasks (on the workers)
# --------------------------------------------------------------------------- #


def _read_block(blocks: _Blocks, kind: str, block_id: tuple[int, int]) -> np.ndarray:
    """Block ``block_id`` of the scores, labels or weights (2-D), as stored."""
    info, start, stop = blocks.spans[block_id[0]]
    if kind == "scores":
        return read_rows(info.shard.scores, kind, start, stop, key=info.scores_key)
    if kind == "labels":
        out = read_rows(info.labels_path, kind, start, stop, key=info.labels_key)
    else:
        assert info.shard.weights is not None
        out = read_rows(info.shard.weights, kind, start, stop)
    return out[:, None]


def _block_tallies(
    scores: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray | None,
    blocks: _Blocks,
    setup: _Setup,
    block_id: tuple[int, int],
) -> np.ndarray:
    """The exact tallies of one block, ``(rows, metric tallies, loss sums)``, in a
    ``(1, 1)`` object array (a block of the tallies' Dask array)."""
    info, start, _ = blocks.spans[block_id[0]]
    into = Tallies(
        dict(setup.tallies),
        {spec: LossTally(spec, name, params) for spec, name, params in setup.losses},
        ClipTally(),
        None if setup.ignore_label is None else IgnoreTally(setup.ignore_label),
        None if setup.boot is None else setup.boot.empty(),
    )
    to_numpy = backend_converter("numpy")
    offset = setup.offsets.get(info.shard.scores, 0)
    n = int(scores.shape[0])
    step = chunk_rows(setup.n_classes)
    for a in range(0, n, step):  # cache-sized chunks, as the streaming path reads
        b = min(n, a + step)
        try:
            evaluate_chunk(
                Chunk(
                    start + a,
                    scores[a:b],
                    labels[a:b, 0],
                    None if weights is None else weights[a:b, 0],
                ),
                setup.input_kind,
                setup.n_classes,
                setup.class_names,
                info.scores_label if setup.sharded else "SCORES",
                info.labels_label,
                info.weights_label or "",
                to_numpy,
                into,
                want_rows=False,
                prob=setup.prob,
                first_row=offset + start + a,
            )
        except LabelRangeError as exc:  # the rows before this block are not seen
            raise exc.one_based(exc.zero_before or offset + start > 0) from None
    sums = {spec: (t.total, t.weight) for spec, t in into.losses.items()}
    extras: dict[str, Any] = {}
    if into.ignored is not None:
        extras["ignored"] = into.ignored
    if into.boot is not None:
        extras["boot"] = into.boot
    out = np.empty((1, 1), dtype=object)
    out[0, 0] = (n, into.metrics, sums, into.clips, extras)
    return out


def _merge(*parts: np.ndarray | _Bundle) -> _Bundle:
    """Several blocks' tallies as one (exact); blocks come as ``(1, 1)`` arrays."""
    bundles = [p[0, 0] if isinstance(p, np.ndarray) else p for p in parts]
    first = bundles[0]
    metrics = {
        key: reduce(lambda a, b: a.merge(b), [bundle[1][key] for bundle in bundles])
        for key in first[1]
    }
    losses = {
        spec: (
            sum((bundle[2][spec][0] for bundle in bundles), Fraction(0)),
            sum((bundle[2][spec][1] for bundle in bundles), Fraction(0)),
        )
        for spec in first[2]
    }
    clips = reduce(lambda a, b: a.merge(b), [bundle[3] for bundle in bundles])
    extras = {
        key: reduce(lambda a, b: a.merge(b), [bundle[4][key] for bundle in bundles])
        for key in first[4]
    }
    return sum(bundle[0] for bundle in bundles), metrics, losses, clips, extras

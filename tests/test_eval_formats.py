"""``arrayloss eval`` on Parquet and Feather/Arrow IPC files (pyarrow, the ``io``
extra), ``--score-columns`` on tables, soft labels (``--soft-labels``), and the bad
inputs of those formats: one error line, exit 1 or 2, no output file left."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
from conftest import invoke_eval as invoke
from conftest import one_error_line
from hypothesis import given, settings
from hypothesis import strategies as st

import arrayloss as al
from arrayloss import io as alio
from arrayloss.io import DataError, TableSpec

N, C = 50, 4
pa = pytest.importorskip("pyarrow", reason="pyarrow (the io extra) is not installed")
pq = pytest.importorskip("pyarrow.parquet")
feather = pytest.importorskip("pyarrow.feather")

NAMES = [f"p{i}" for i in range(C)]


@pytest.fixture
def data(rng):
    z = rng.standard_normal((N, C))
    y = rng.integers(0, C, size=N)
    w = rng.uniform(0.1, 2.0, size=N)
    return z, y, w


def _json(args):
    result = invoke([*args, "--format", "json"])
    return json.loads(result.stdout)


def _numbers(out):
    return out["losses"], out["metrics"]


LOSSES = ["--loss", "cross_entropy", "--loss", "smooth_topk_svm:k=2", "--loss", "l2"]


def _table(z, y=None, *, dtype=np.float64, names=NAMES):
    cols = {n: z[:, i].astype(dtype) for i, n in enumerate(names)}
    if y is not None:
        cols["label"] = y
    return pa.table(cols)


def _write(table, path, fmt, size=None):
    """``table`` as Parquet (row groups of 13 rows: they cut the chunks),
    Feather (lz4-compressed batches of 11) or an Arrow IPC stream (batches of 9)."""
    if fmt == "parquet":
        pq.write_table(table, path, row_group_size=size or 13)
    elif fmt == "feather":
        feather.write_feather(table, path, chunksize=size or 11)
    else:
        sink = pa.OSFile(str(path), "wb")
        with sink, pa.ipc.new_stream(sink, table.schema) as writer:
            for batch in table.to_batches(max_chunksize=size or 9):
                writer.write_batch(batch)


FORMATS = [("parquet", "p.parquet"), ("feather", "p.feather"), ("stream", "p.arrow")]


# --------------------------------------------------------------------------- #
# The same numbers as .npy, at every chunk size
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(("fmt", "name"), FORMATS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_arrow_equals_npy_at_every_chunk_size(
    tmp_path, data, fmt, name, dtype, monkeypatch
):
    from arrayloss import _arrow

    monkeypatch.setenv(_arrow.PREFETCH_ENV, "")  # restored after the test
    z, y, w = data
    np.save(tmp_path / "z.npy", z.astype(dtype))
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "w.npy", w)
    pq.write_table(pa.table({"w": w}), tmp_path / "w.parquet")
    _write(_table(z, y, dtype=dtype), tmp_path / name, fmt)
    npy = [str(tmp_path / "z.npy"), str(tmp_path / "y.npy"), *LOSSES]
    ref = _numbers(_json([*npy, "--weights", str(tmp_path / "w.npy")]))
    for k, ahead in ((1, "2"), (7, "2"), (7, "0"), (N, "1")):
        os.environ[_arrow.PREFETCH_ENV] = ahead  # 0: read on the calling thread
        out = _json(
            [str(tmp_path / name), "--label-column", "label", *LOSSES,
             "--weights", str(tmp_path / "w.parquet"), "--chunk-size", str(k)]
        )  # fmt: skip
        assert out["n_samples"] == N
        assert out["n_classes"] == C
        assert _numbers(out) == ref  # identical, not close


def test_mixed_column_types(tmp_path, data):
    """float32, float64 and integer columns meet in float64, as NumPy would."""
    z, y, _ = data
    z = z.copy()
    z[:, 0] = z[:, 0].astype(np.float32)
    z[:, 3] = np.round(3 * z[:, 3])
    cols = {"a": z[:, 0].astype(np.float32), "b": z[:, 1], "c": z[:, 2]}
    cols.update({"d": z[:, 3].astype(np.int16), "y": y})
    pq.write_table(pa.table(cols), tmp_path / "m.parquet")
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "y.npy", y)
    ref = _numbers(_json([str(tmp_path / "z.npy"), str(tmp_path / "y.npy")]))
    out = _json(
        [str(tmp_path / "m.parquet"), "--label-column", "y", "--chunk-size", "9"]
    )
    assert _numbers(out) == ref


@settings(max_examples=25, deadline=None)
@given(
    rows=st.integers(1, 40),
    group=st.integers(1, 16),
    batch=st.integers(1, 10),
    reads=st.lists(st.integers(1, 12), min_size=1, max_size=6),
    fmt=st.sampled_from(["parquet", "feather", "stream"]),
    ahead=st.sampled_from(["0", "1", "2"]),
)
def test_reads_cut_batches_anywhere(
    tmp_path_factory, rows, group, batch, reads, fmt, ahead
):
    """Whatever the row groups or record batches, the batches a Parquet row
    group is read in (``batch`` rows), the sizes asked for and the blocks read
    ahead (``ahead``; 0: none, no thread), the rows come back in order, each
    exactly once, with their labels, each read C-contiguous."""
    from unittest import mock

    from arrayloss import _arrow
    from arrayloss._arrow import open_arrow

    d = tmp_path_factory.mktemp("cut")
    z = np.arange(rows * 3, dtype=np.float64).reshape(rows, 3)
    y = np.arange(rows) % 3
    table = _table(z, y, names=["a", "b", "c"])
    path = d / ("t.parquet" if fmt == "parquet" else "t.arrow")
    _write(table, path, fmt, group)
    with (
        mock.patch.object(_arrow, "BATCH_ROWS", batch),
        mock.patch.dict(os.environ, {_arrow.PREFETCH_ENV: ahead}),
    ):
        src, labels = open_arrow(
            str(path), "T", "scores", TableSpec(label_column="label"), with_labels=True
        )
        got, got_y = [], []
        with src:
            i = 0
            while True:
                part = src.read(reads[i % len(reads)])
                got_y.append(labels.read(0))
                i += 1
                if not len(part):
                    break
                assert part.flags.c_contiguous
                got.append(part)
    np.testing.assert_array_equal(np.concatenate(got), z)
    np.testing.assert_array_equal(np.concatenate(got_y), y)


def test_parquet_row_group_read_in_batches(tmp_path, data, monkeypatch):
    """A row group larger than a batch (``df.to_parquet()`` writes row groups of
    a million rows) is read batch by batch, not decoded whole, and gives the
    numbers of ``.npy`` at every chunk size."""
    from arrayloss import _arrow

    z, y, _ = data
    pq.write_table(_table(z, y, dtype=np.float32), tmp_path / "g.parquet")
    assert pq.ParquetFile(tmp_path / "g.parquet").metadata.num_row_groups == 1
    np.save(tmp_path / "z.npy", z.astype(np.float32))
    np.save(tmp_path / "y.npy", y)
    ref = _numbers(_json([str(tmp_path / "z.npy"), str(tmp_path / "y.npy")]))
    monkeypatch.setattr(_arrow, "BATCH_VALUES", 8 * (C + 1))  # 8 rows a batch
    monkeypatch.delenv(_arrow.PREFETCH_ENV, raising=False)
    src, _ = _arrow.open_arrow(
        str(tmp_path / "g.parquet"), "T", "scores", TableSpec(label_column="label"),
        with_labels=True,
    )  # fmt: skip
    with src:
        assert src.read(3).shape == (3, C)
        # blocks of 6 rows (two reads of 3): the one read, PREFETCH waiting and
        # the one being made; 8 rows a batch, not the 50 rows decoded at once
        ahead = -(-(_arrow.PREFETCH + 2) * 6 // 8)
        assert 1 <= src._f._read_batches <= ahead < -(-N // 8)
        src.read(N)
        assert src._f._read_batches == -(-N // 8)
    for k in (1, 7, N):
        out = _json(
            [str(tmp_path / "g.parquet"), "--label-column", "label",
             "--chunk-size", str(k)]
        )  # fmt: skip
        assert _numbers(out) == ref


def _reader_threads():
    import threading

    return [t for t in threading.enumerate() if t.name == "arrayloss-arrow-reader"]


@pytest.mark.parametrize("ahead", ["0", "2"])
@pytest.mark.parametrize("fmt", ["parquet", "feather"])
def test_error_ahead_comes_after_the_rows_before_it(
    tmp_path, data, fmt, ahead, monkeypatch
):
    """The rows are converted ahead in a thread: a missing value found there is
    raised by the read that reaches its row, after every row before it (as when
    each block is read on the calling thread, ``ahead`` 0)."""
    from arrayloss import _arrow

    monkeypatch.setenv(_arrow.PREFETCH_ENV, ahead)

    z, y, _ = data
    table = _table(z, y).set_column(2, "p2", pa.array([*z[:37, 2], None, *z[38:, 2]]))
    path = tmp_path / f"t.{fmt}"
    _write(table, path, fmt, 8)
    monkeypatch.setattr(_arrow, "BATCH_VALUES", 8 * (C + 1))  # 8 rows a batch
    src, labels = _arrow.open_arrow(
        str(path), "T", "scores", TableSpec(label_column="label"), with_labels=True
    )
    got = []
    with src:
        for _ in range(7):  # rows 0-34
            got.append(src.read(5))
            np.testing.assert_array_equal(labels.read(5), y[5 * len(got) - 5 :][:5])
        with pytest.raises(DataError, match=r"T row 37, column 'p2': a missing value"):
            src.read(5)
    np.testing.assert_array_equal(np.concatenate(got), z[:35])
    assert not _reader_threads()


def test_closing_stops_the_reading_thread(tmp_path, data, monkeypatch):
    """Closing a source half read ends its reading thread (blocked on blocks
    not taken); a source dropped unclosed ends it too; the rows read before are
    the file's."""
    import gc
    import time

    from arrayloss import _arrow

    z, y, _ = data
    pq.write_table(_table(z, y), tmp_path / "t.parquet", row_group_size=N)
    monkeypatch.setattr(_arrow, "BATCH_VALUES", 2 * (C + 1))  # 2 rows a batch
    monkeypatch.delenv(_arrow.PREFETCH_ENV, raising=False)
    for close in (True, False):
        src, labels = _arrow.open_arrow(
            str(tmp_path / "t.parquet"), "T", "scores", TableSpec(label_column="label"),
            with_labels=True,
        )  # fmt: skip
        np.testing.assert_array_equal(src.read(3), z[:3])
        assert len(_reader_threads()) == 1
        if close:
            src.close()
        else:
            del src, labels
            gc.collect()
            deadline = time.monotonic() + 10
            while _reader_threads() and time.monotonic() < deadline:
                time.sleep(0.01)
        assert not _reader_threads()
        assert not _arrow._LIVE


def test_exit_with_a_source_half_read(tmp_path, data):
    """A program that ends with a source half read and never closed exits
    cleanly: its reading thread is stopped before the interpreter ends."""
    z, y, _ = data
    pq.write_table(_table(z, y), tmp_path / "t.parquet", row_group_size=N)
    code = (
        "import sys; from arrayloss import _arrow; from arrayloss.io import TableSpec; "
        "_arrow.BATCH_VALUES = 2 * 5; "
        f"src, _ = _arrow.open_arrow({str(tmp_path / 't.parquet')!r}, 'T', 'scores', "
        "TableSpec(label_column='label'), with_labels=True); print(src.read(3).shape); "
        "print(len(_arrow._LIVE))"
    )
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    environ.pop("ARRAYLOSS_ARROW_PREFETCH", None)
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environ,
        check=False, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["(3,", f"{C})", "1"]
    assert run.stderr == ""


@pytest.mark.parametrize("value", ["x", "-1", "1.5"])
def test_bad_prefetch_variable_is_usage_error(tmp_path, data, value):
    from arrayloss._arrow import PREFETCH_ENV

    z, y, _ = data
    pq.write_table(_table(z, y), tmp_path / "t.parquet")
    line = _fails(
        [str(tmp_path / "t.parquet"), "--label-column", "label"], 2,
        env={PREFETCH_ENV: value},
    )  # fmt: skip
    assert f"{PREFETCH_ENV} must be a non-negative integer (got {value!r})" in line


def test_prefetch_variable_beyond_the_bound_is_usage_error(tmp_path, data):
    """Each block read ahead is held in memory: more than `MAX_PREFETCH` is bad
    usage before any reading; the bound itself is taken."""
    from arrayloss._arrow import MAX_PREFETCH, PREFETCH_ENV

    z, y, _ = data
    pq.write_table(_table(z, y), tmp_path / "t.parquet")
    args = [str(tmp_path / "t.parquet"), "--label-column", "label"]
    line = _fails(args, 2, env={PREFETCH_ENV: str(MAX_PREFETCH + 1)})
    want = f"{PREFETCH_ENV} must be at most {MAX_PREFETCH} (got '{MAX_PREFETCH + 1}')"
    assert want in line
    result = invoke([*args, "--format", "json"], env={PREFETCH_ENV: str(MAX_PREFETCH)})
    assert json.loads(result.stdout)["n_samples"] == z.shape[0]


@pytest.mark.parametrize("env", ["", "jemalloc", "mimalloc"])
def test_arrow_default_pool_chosen_before_import(env):
    """The command line's process imports pyarrow with the system allocator as
    Arrow's own default pool (the one the Parquet and IPC readers' page buffers
    come from, which `pyarrow.set_memory_pool` does not change), unless
    ``ARROW_DEFAULT_MEMORY_POOL`` names one; the environment is left as it was."""
    code = (
        "import os, sys; from arrayloss._arrow import own_memory_pool, _pyarrow; "
        "own_memory_pool(); assert 'pyarrow' not in sys.modules; pa = _pyarrow('T'); "
        "print(pa.default_memory_pool().backend_name, "
        "os.environ.get('ARROW_DEFAULT_MEMORY_POOL', '-'))"
    )
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    environ.pop("ARROW_DEFAULT_MEMORY_POOL", None)
    if env:
        environ["ARROW_DEFAULT_MEMORY_POOL"] = env
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environ,
        check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    backend, left = run.stdout.split()
    if env and env not in run.stdout and "Unsupported backend" in run.stderr:
        pytest.skip(f"this pyarrow has no {env} pool")
    assert (backend, left) == ((env, env) if env else ("system", "-"))


@pytest.mark.parametrize(
    "dtype",
    ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
     "float16", "float32", "float64"],
)  # fmt: skip
def test_numpy_view_of_arrow_values(dtype):
    """The view of an Arrow array's buffer is its values, sliced arrays included
    (an offset into the buffer), as pyarrow's own conversion gives them."""
    from arrayloss._arrow import _numpy

    values = (np.arange(23) % 7).astype(dtype)
    arr = pa.array(values)
    for part in (arr, arr.slice(5), arr.slice(3, 9), arr.slice(23)):
        got = _numpy(part)
        want = part.to_numpy(zero_copy_only=False)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
        assert len(got) == len(part)


def test_reading_parquet_does_not_import_pandas(tmp_path, data):
    """pyarrow's ``to_numpy`` imports pandas (~0.3 s of a run): the reader does
    without it."""
    pytest.importorskip("pandas", reason="pandas is not installed: nothing to check")
    z, y, _ = data
    pq.write_table(_table(z, y), tmp_path / "t.parquet")
    code = (
        "import sys; from arrayloss.cli import main\n"
        "try:\n    main(sys.argv[1:])\n"
        "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "print('pandas' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    run = subprocess.run(
        [sys.executable, "-c", code, "eval", str(tmp_path / "t.parquet"),
         "--label-column", "label", "--quiet", "--format", "json"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout[: run.stdout.rindex("}") + 1])["n_samples"] == N
    assert run.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.parametrize(
    ("env", "owned"), [("", True), ("mimalloc", True), ("", False)]
)
def test_parquet_memory_pool(env, owned):
    """In the command line's process, opening a Parquet file makes jemalloc (or
    the system allocator) pyarrow's pool instead of mimalloc (whose huge pages
    cost seconds of system time); a pool chosen with ``ARROW_DEFAULT_MEMORY_POOL``,
    and a library caller's pool, are left alone."""
    own = (
        "from arrayloss._arrow import own_memory_pool; own_memory_pool(); "
        if owned
        else ""
    )
    code = (
        "import pyarrow as pa; print(pa.default_memory_pool().backend_name); "
        f"{own}from arrayloss._arrow import _pyarrow; _pyarrow('T'); "
        "print(pa.default_memory_pool().backend_name)"
    )
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    environ.pop("ARROW_DEFAULT_MEMORY_POOL", None)
    if env:
        environ["ARROW_DEFAULT_MEMORY_POOL"] = env
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environ,
        check=False,
    )  # fmt: skip
    if run.returncode and "mimalloc" in run.stderr:
        pytest.skip("this pyarrow has no mimalloc pool")
    assert run.returncode == 0, run.stderr
    before, after = run.stdout.split()
    if before != "mimalloc":
        pytest.skip(f"pyarrow's default pool is {before}: nothing to replace")
    if env or not owned:
        assert after == "mimalloc"
    else:
        assert after in ("jemalloc", "system")


@pytest.mark.parametrize("layout", ["fixed_size_list", "list"])
def test_list_column_of_scores(tmp_path, data, layout):
    z, y, _ = data
    flat = pa.array(z.ravel())
    if layout == "fixed_size_list":
        col = pa.FixedSizeListArray.from_arrays(flat, C)
    else:
        col = pa.array(list(z))
    pq.write_table(pa.table({"scores": col, "y": y}), tmp_path / "s.parquet")
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "y.npy", y)
    ref = _numbers(_json([str(tmp_path / "z.npy"), str(tmp_path / "y.npy")]))
    for k in (3, N):
        out = _json(
            [str(tmp_path / "s.parquet"), "--label-column", "y", "--chunk-size", str(k)]
        )
        assert _numbers(out) == ref


def test_ragged_list_column_is_data_error(tmp_path):
    col = pa.array([[0.1, 0.9], [0.2, 0.3, 0.5]])
    pq.write_table(pa.table({"s": col, "y": [0, 1]}), tmp_path / "s.parquet")
    line = _fails([str(tmp_path / "s.parquet"), "--label-column", "y"], 1)
    assert "row 1: 3 scores in column 's', not 2" in line


def test_pandas_frames(tmp_path, data):
    """What pandas writes: its index (stored as a column when it is not a
    RangeIndex) is left out, class-name labels and categoricals are read."""
    pd = pytest.importorskip("pandas")
    z, y, _ = data
    classes = ["cat", "dog", "eel", "fox"]
    frame = pd.DataFrame(z, columns=classes, index=np.arange(N) * 3 + 100)
    frame["label"] = pd.Categorical([classes[i] for i in y])
    frame.to_parquet(tmp_path / "f.parquet")
    frame.reset_index(drop=True).to_feather(tmp_path / "f.feather")
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "y.npy", y)
    ref = _numbers(_json([str(tmp_path / "z.npy"), str(tmp_path / "y.npy")]))
    for name in ("f.parquet", "f.feather"):
        out = _json(
            [str(tmp_path / name), "--label-column", "label", "--classes",
             ",".join(classes)]
        )  # fmt: skip
        assert out["n_classes"] == C
        assert _numbers(out) == ref
    # labels in their own file, a Series saved by pandas
    pd.DataFrame({"label": y}).to_parquet(tmp_path / "y.parquet")
    frame.drop(columns="label").to_parquet(tmp_path / "s.parquet")
    out = _json([str(tmp_path / "s.parquet"), str(tmp_path / "y.parquet")])
    assert _numbers(out) == ref


def test_directory_of_parquet_shards(tmp_path, data):
    z, y, _ = data
    (tmp_path / "s").mkdir()
    for i, part in enumerate(np.array_split(np.arange(N), 3)):
        _write(
            _table(z[part], y[part]), tmp_path / "s" / f"part-{i}.parquet", "parquet"
        )
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "y.npy", y)
    ref = _numbers(_json([str(tmp_path / "z.npy"), str(tmp_path / "y.npy")]))
    out = _json([str(tmp_path / "s"), "--label-column", "label", "--chunk-size", "4"])
    assert out["n_files"] == 3
    assert _numbers(out) == ref


# --------------------------------------------------------------------------- #
# --score-columns
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ("b,a", [1, 0]),
        ("a:c", [0, 1, 2]),
        ("1:3", [1, 2]),
        ("-2:", [3, 4]),
        ("p_*", [3, 4]),
        ("p_?,a", [3, 4, 0]),
        ("2", [2]),
        ("c,0:2", [2, 0, 1]),
    ],
)
def test_select_columns(spec, want):
    header = ["a", "b", "c", "p_1", "p_2"]
    assert alio.select_columns(spec, header, 5, "T") == want


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ("p[1]", [1]),  # the pattern p[1] matches p1 (column 2)
        ("p[0],p[1]", [0, 1]),  # the pattern p[0] matched nothing: an error
        ("t:0", [3]),  # a range from t to 0 was an error
        ("p[1]*", [2]),  # not a name: a pattern still
        ("p?", [2]),
    ],
)
def test_a_column_named_like_a_pattern_or_range_is_that_column(spec, want):
    """pandas names columns ``p[1]`` (``df.add_prefix``, a MultiIndex flattened)
    or ``t:0``: such a whole name was read as a glob pattern or a range, so
    ``--drop-column 'p[1]'`` dropped the column ``p1``, a score column, and left
    ``p[1]`` among the scores."""
    header = ["p[0]", "p[1]", "p1", "t:0"]
    assert alio.select_columns(spec, header, 4, "T") == want


def test_drop_column_named_like_a_pattern_drops_that_column(tmp_path):
    z = np.array([[1.0, 2.0, 9.0], [1.0, 2.0, -9.0], [3.0, 0.5, 0.0]])
    y = [0, 1, 1]
    rows = "".join(
        f"{a!r},{b!r},{c!r},{t}\n" for (a, b, c), t in zip(z.tolist(), y, strict=True)
    )
    (tmp_path / "t.csv").write_text("p0,p1,p[1],y\n" + rows)
    args = [str(tmp_path / "t.csv"), "--label-column", "y", "--drop-column", "p[1]"]
    out = _json(args)
    assert out["losses"]["cross_entropy"] == pytest.approx(
        float(al.cross_entropy(z[:, :2], np.array(y))), rel=1e-14
    )


@pytest.mark.parametrize(
    ("spec", "header", "pattern"),
    [
        (
            "zz",
            ["a", "b"],
            r"no column named 'zz' \(columns: a, b\) \(in --score-columns\)",
        ),
        ("q*", ["a", "b"], r"no column matches the --score-columns pattern 'q\*'"),
        ("b:a", ["a", "b"], r"range 'b:a' runs backwards"),
        ("a:zz", ["a", "b"], r"no column named 'zz' \(in the --score-columns range"),
        ("a,a", ["a", "b"], r"column 'a' is selected twice"),
        ("5:9", ["a", "b"], r"the --score-columns range '5:9' selects none"),
        ("a", None, r"no column named 'a' \(it has no header row\)"),
        ("p*", None, r"needs a header row"),
        ("7", ["a", "b"], r"column 7 is out of range"),
        # a name two columns have: not silently the first
        ("a", ["a", "a"], r"has 2 columns named 'a' \(columns 0, 1\); give the one"),
        ("a:b", ["a", "b", "a"], r"has 2 columns named 'a' \(columns 0, 2\)"),
    ],
)
def test_select_columns_errors(spec, header, pattern):
    with pytest.raises(DataError, match=pattern):
        alio.select_columns(spec, header, 2, "T")


@settings(max_examples=40)
@given(
    width=st.integers(1, 12),
    lo=st.one_of(st.none(), st.integers(-14, 14)),
    hi=st.one_of(st.none(), st.integers(-14, 14)),
)
def test_positional_range_is_a_python_slice(width, lo, hi):
    want = list(range(width))[lo:hi]
    spec = f"{'' if lo is None else lo}:{'' if hi is None else hi}"
    if not want:
        with pytest.raises(DataError, match="selects none"):
            alio.select_columns(spec, None, width, "T")
    else:
        assert alio.select_columns(spec, None, width, "T") == want


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_score_columns_pick_and_order(tmp_path, data, fmt):
    """The classes stored out of order, among other columns, are picked back in
    class order by name list, name range, glob and positional range."""
    z, y, _ = data
    order = [2, 0, 3, 1]
    cols = {"id": np.arange(N), "y": y, "junk": np.ones(N)}
    cols.update({f"c{i}": z[:, i] for i in order})
    path = tmp_path / f"t.{fmt}"
    if fmt == "csv":
        names = list(cols)
        rows = np.column_stack([cols[n] for n in names])
        lines = [",".join(names)] + [
            ",".join(repr(float(v)) if j >= 2 else str(int(v)) for j, v in enumerate(r))
            for r in rows
        ]
        path.write_text("\n".join(lines) + "\n")
    else:
        pq.write_table(pa.table(cols), path)
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "y.npy", y)
    ref = _numbers(_json([str(tmp_path / "z.npy"), str(tmp_path / "y.npy")]))
    for spec in ("c0,c1,c2,c3", "c0:c0,c1,c2:c2,c3", "4,6,3,5"):
        out = _json([str(path), "--label-column", "y", "--score-columns", spec])
        assert _numbers(out) == ref
    # a glob, a name range and a positional range keep the file's order
    np.save(tmp_path / "zs.npy", z[:, order])
    moved = _numbers(_json([str(tmp_path / "zs.npy"), str(tmp_path / "y.npy")]))
    assert moved != ref
    for spec in ("c*", "c2:c1", "3:7", "-4:"):
        out = _json([str(path), "--label-column", "y", "--score-columns", spec])
        assert _numbers(out) == moved


def test_score_columns_usage(tmp_path, data):
    z, y, _ = data
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "y.npy", y)
    _fails(
        [str(tmp_path / "z.npy"), str(tmp_path / "y.npy"), "--score-columns", "0:2"], 2
    )
    line = _fails(
        [str(tmp_path / "z.npy"), str(tmp_path / "y.npy"), "--score-columns", "a,,b"], 2
    )
    assert "empty column name" in line
    pq.write_table(_table(z, y), tmp_path / "t.parquet")
    line = _fails(
        [str(tmp_path / "t.parquet"), "--label-column", "label", "--score-columns",
         "p*,label"], 1,
    )  # fmt: skip
    assert "column 'label' is both a score and a label column" in line


def test_label_column_of_an_npy_labels_file_is_usage(tmp_path, data):
    """``t.parquet y.npy --label-column label``: the option names a column of
    LABELS, which an .npy has none of; it was ignored, and the label column of
    SCORES silently read as one more class."""
    z, y, _ = data
    np.save(tmp_path / "y.npy", y)
    np.savez(tmp_path / "y.npz", labels=y)
    pq.write_table(_table(z, y), tmp_path / "t.parquet")
    for labels in ("y.npy", "y.npz"):
        line = _fails(
            [str(tmp_path / "t.parquet"), str(tmp_path / labels),
             "--label-column", "label"], 2,
        )  # fmt: skip
        assert "--label-column picks a column of a table LABELS" in line
    # an .npz SCORES without LABELS: its labels array was read instead, silently
    np.savez(tmp_path / "zy.npz", scores=z, labels=y)
    line = _fails([str(tmp_path / "zy.npz"), "--label-column", "label"], 2)
    assert "--label-column picks a column of a table SCORES" in line


# --------------------------------------------------------------------------- #
# Soft labels
# --------------------------------------------------------------------------- #

SOFT_LOSSES = ["cross_entropy", "kl_divergence", "l2", "focal", "sparsemax_loss"]


@pytest.fixture
def soft(rng):
    z = rng.standard_normal((N, C))
    t = rng.dirichlet(np.ones(C), size=N)
    return z, t


def test_soft_labels_equal_the_library(tmp_path, soft):
    """Every soft-label loss equals the library's mean on the whole arrays, in
    .npy, in CSV columns and in Parquet columns, at every chunk size; the
    metrics are those of the arg-max class."""
    z, t = soft
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "t.npy", t)
    np.save(tmp_path / "y.npy", np.argmax(t, axis=1))
    tnames = [f"t{i}" for i in range(C)]
    cols = {
        **{n: z[:, i] for i, n in enumerate(NAMES)},
        **{n: t[:, i] for i, n in enumerate(tnames)},
    }
    pq.write_table(pa.table(cols), tmp_path / "s.parquet")
    header = ",".join(["", *cols])
    body = [
        ",".join([str(i), *(repr(float(cols[n][i])) for n in cols)]) for i in range(N)
    ]
    (tmp_path / "s.csv").write_text("\n".join([header, *body]) + "\n")  # pandas-like
    args = [a for name in SOFT_LOSSES for a in ("--loss", name)]
    want = {name: float(al.value_and_grad(name, z, t)[0]) for name in SOFT_LOSSES}
    hard = _json([str(tmp_path / "z.npy"), str(tmp_path / "y.npy")])["metrics"]
    runs = [
        [str(tmp_path / "z.npy"), str(tmp_path / "t.npy")],
        [str(tmp_path / "s.csv"), "--label-column", "t*"],
        [str(tmp_path / "s.parquet"), "--label-column", "t0:t3"],
        [str(tmp_path / "s.parquet"), "--label-column", "4:", "--score-columns", ":4"],
    ]
    outs = []
    for run in runs:
        for k in (1, 7, N):
            out = _json([*run, "--soft-labels", *args, "--chunk-size", str(k)])
            outs.append(_numbers(out))
            for name in SOFT_LOSSES:
                assert out["losses"][name] == pytest.approx(want[name], rel=1e-12)
            assert out["metrics"] == hard
    assert all(o == outs[0] for o in outs)  # identical across files and chunks


def test_soft_labels_bad_rows(tmp_path, soft):
    z, t = soft
    np.save(tmp_path / "z.npy", z)
    t = t.copy()
    t[17] *= 1.01
    np.save(tmp_path / "t.npy", t)
    line = _fails(
        [str(tmp_path / "z.npy"), str(tmp_path / "t.npy"), "--soft-labels"], 1
    )
    assert re.search(r"LABELS '.*t\.npy' row 17: soft labels sum to 1.01, not 1", line)
    t[17] /= 1.01
    t[3, 0] = -0.1
    np.save(tmp_path / "t.npy", t)
    line = _fails(
        [str(tmp_path / "z.npy"), str(tmp_path / "t.npy"), "--soft-labels"], 1
    )
    assert "row 3: soft labels must be finite and non-negative" in line
    np.save(tmp_path / "t3.npy", t[:, :3])
    line = _fails(
        [str(tmp_path / "z.npy"), str(tmp_path / "t3.npy"), "--soft-labels"], 1
    )
    assert "3 soft-label columns but the scores have 4 classes" in line
    # without the flag, a 2-D labels file says how to read it
    line = _fails([str(tmp_path / "z.npy"), str(tmp_path / "t.npy")], 1)
    assert "add --soft-labels" in line


@pytest.mark.parametrize(
    ("loss", "pattern"),
    [
        ("smooth_topk_svm:k=2", r"takes class indices, not soft labels"),
        ("crammer_singer", r"takes class indices, not soft labels"),
        ("keras.hinge", r"batch-wide"),
    ],
)
def test_soft_labels_refuse_index_losses(tmp_path, soft, loss, pattern):
    z, t = soft
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "t.npy", t)
    line = _fails(
        [
            str(tmp_path / "z.npy"),
            str(tmp_path / "t.npy"),
            "--soft-labels",
            "--loss",
            loss,
        ],
        2,
    )
    assert re.search(pattern, line), line
    assert "--soft-labels" in line


def test_soft_labels_refuse_ignore_label(tmp_path, soft):
    """Soft labels have no class index to ignore: --ignore-label was silently
    without effect (n_ignored 0)."""
    z, t = soft
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "t.npy", t)
    line = _fails(
        [str(tmp_path / "z.npy"), str(tmp_path / "t.npy"), "--soft-labels",
         "--ignore-label", "-100"], 2,
    )  # fmt: skip
    assert "--ignore-label applies to class indices, not --soft-labels" in line


# --------------------------------------------------------------------------- #
# Bad inputs: one line, exit 1 or 2, no output file
# --------------------------------------------------------------------------- #


def _fails(args, code, **kwargs):
    result = invoke(args, exit_code=code, **kwargs)
    err = result.stderr
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("Error: ")]
    assert len(lines) == 1, err
    if code == 1:
        assert err == lines[0] + "\n", err
    assert result.stdout == ""
    return lines[0]


def _bad_inputs(d, z, y):
    np.save(d / "z.npy", z)
    np.save(d / "y.npy", y)
    (d / "z.xlsx").write_bytes(b"PK\x03\x04 not a table")
    (d / "ragged.csv").write_text("0.1,0.9,0\n0.2,0.8\n")
    (d / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    (d / "broken.feather").write_bytes(b"ARROW1\x00\x00 nor this")
    pq.write_table(_table(z, y), d / "t.parquet")
    nulls = _table(z, y).set_column(1, "p1", pa.array([None, *z[1:, 1]]))
    pq.write_table(nulls, d / "null.parquet")
    pq.write_table(pa.table({"a": z[:, 0], "s": ["x"] * N}), d / "text.parquet")
    return {
        "suffix": ([d / "z.xlsx", d / "y.npy"], 1, r"unsupported suffix '\.xlsx'"),
        "suffix labels": (
            [d / "z.npy", d / "z.xlsx"],
            1,
            r"LABELS .* unsupported suffix",
        ),
        "ragged": (
            [d / "ragged.csv", "--label-column", "2"],
            1,
            r"line 2: expected 3 fields, found 2",
        ),
        "unknown label column": (
            [d / "t.parquet", "--label-column", "lbl"],
            1,
            r"no column named 'lbl'",
        ),
        "two label columns": (
            [d / "t.parquet", "--label-column", "p*"],
            1,
            r"--label-column 'p\*' selects 4 columns; one is needed \(for soft labels, add --soft-labels\)",
        ),
        "unknown score column": (
            [d / "t.parquet", "--label-column", "label", "--score-columns", "p0,p9"],
            1,
            r"no column named 'p9'",
        ),
        "unknown csv column": (
            [d / "ragged.csv", d / "y.npy", "--score-columns", "x"],
            1,
            r"has no header row \(its first line is numbers\), but --score-columns 'x'",
        ),
        "corrupt parquet": (
            [d / "broken.parquet", d / "y.npy"],
            1,
            r"is not a valid Parquet file",
        ),
        "corrupt feather": (
            [d / "broken.feather", d / "y.npy"],
            1,
            r"is not a valid Feather",
        ),
        "null": (
            [d / "null.parquet", "--label-column", "label", "--chunk-size", "7"],
            1,
            r"row 0, column 'p1': a missing value",
        ),
        "text column": (
            [d / "text.parquet", d / "y.npy"],
            1,
            r"column 's' has type .*string, not numbers",
        ),
        "missing file": ([d / "nope.parquet", d / "y.npy"], 1, r"cannot read SCORES"),
        "dask": (
            [d / "t.parquet", d / "y.npy", "--dask"],
            2,
            r"--dask reads \.npy and \.npz",
        ),
        "eps": (
            [d / "z.npy", d / "y.npy", "--input", "probs", "--eps", "0.5"],
            2,
            r"--eps",
        ),
    }


CASES = [
    "suffix", "suffix labels", "ragged", "unknown label column", "two label columns",
    "unknown score column",
    "unknown csv column", "corrupt parquet", "corrupt feather", "null", "text column",
    "missing file", "dask", "eps",
]  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_bad_input_leaves_no_output(tmp_path, data, case):
    """Every other case has an old output file, which stays as it was; in the
    others no output file appears."""
    z, y, _ = data
    old = CASES.index(case) % 2 == 1
    if case == "dask":
        pytest.importorskip("distributed")
    args, code, pattern = _bad_inputs(tmp_path, z, y)[case]
    out = tmp_path / "out.json"
    if old:
        out.write_text("old results")
    line = _fails([*map(str, args), "-o", str(out)], code)
    assert re.search(pattern, line), line
    if old:
        assert out.read_text() == "old results"
    else:
        assert not out.exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".") or "tmp" in p]


def test_missing_pyarrow_names_the_extra(tmp_path, data):
    """Without pyarrow (hidden from the import system) a Parquet SCORES is bad
    usage naming the extra (that .npy files need no pyarrow is
    `test_import_arrayloss_does_not_import_pyarrow`)."""
    z, y, _ = data
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "y.npy", y)
    pq.write_table(_table(z, y), tmp_path / "t.parquet")
    out = tmp_path / "out.json"
    code = (
        "import sys; sys.modules['pyarrow'] = None; "
        "from arrayloss.cli import main; main(sys.argv[1:])"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    run = subprocess.run(
        [sys.executable, "-c", code, "eval", str(tmp_path / "t.parquet"),
         "--label-column", "label", "-o", str(out)],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert run.stderr == (
        "Error: reading SCORES 't.parquet' needs pyarrow, which is not installed "
        '(pip install "arrayloss[io]")\n'
    ).replace("'t.parquet'", f"'{tmp_path / 't.parquet'}'")
    assert not out.exists()


def test_import_arrayloss_does_not_import_pyarrow():
    code = "import sys, arrayloss, arrayloss.io, arrayloss.cli; print('pyarrow' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    run = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert run.stdout.strip() == "False"


# --------------------------------------------------------------------------- #
# README's example, run as written
# --------------------------------------------------------------------------- #


@pytest.mark.slow  # scikit-learn and pandas: ~9 s on a loaded machine
def test_readme_sklearn_example(tmp_path, monkeypatch):
    """README's scikit-learn example: its Python block saves the CSV, its shell
    line evaluates it, and the nll it shows is scikit-learn's ``log_loss``; the
    Parquet file of the same frame, read as README says, gives the same numbers."""
    pytest.importorskip("pandas")
    pytest.importorskip("sklearn")
    import shlex
    from pathlib import Path

    from sklearn.metrics import log_loss

    text = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    start = text.index("A scikit-learn model's `predict_proba` saved by pandas:")
    code = re.search(r"```python\n(.*?)```", text[start:], re.S)
    shown = re.search(r"```\n\$ (arrayloss eval .*?)\n(.*?)```", text[start:], re.S)
    assert code is not None
    assert shown is not None
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code.group(1), "README.md", "exec"), namespace)
    command = shlex.split(shown.group(1))
    result = invoke([*command[2:], "--format", "json"])
    out = json.loads(result.stdout)
    proba, y_test = namespace["proba"], namespace["y_test"]
    sk = log_loss(y_test, proba.drop(columns="label").to_numpy())
    assert out["metrics"]["nll"] == pytest.approx(sk, rel=1e-12, abs=0)
    table = shown.group(2)
    assert re.search(rf"n_samples +{len(y_test)}\n", table)
    assert f"{out['metrics']['nll']:.8g}" in table  # the figure README shows
    assert f"log_loss: {sk!r}" in table
    # README's Parquet variant
    proba.to_parquet("proba.parquet")
    same = json.loads(
        invoke(
            ["proba.parquet", "--label-column", "label", "--input", "probs",
             "--score-columns", "digit_*", "--metric", "nll", "--format", "json"]
        ).stdout
    )  # fmt: skip
    assert _numbers(same) == _numbers(out)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "feather"])
def test_same_table_as_scores_and_labels(tmp_path, data, fmt):
    """The same table given as SCORES and LABELS (``eval t.csv t.csv
    --label-column label``): --label-column picked the labels of LABELS, and
    every column of SCORES, the label column too, was read as a class score (4
    classes of 3, a wrong loss, exit 0).  It is bad usage now (exit 2, nothing
    written), unless --score-columns says which columns are scores."""
    z, y, _ = data
    path = tmp_path / f"t.{fmt}"
    if fmt == "csv":
        text = ",".join([*NAMES, "label"]) + "\n"
        text += "".join(
            ",".join([*(repr(float(v)) for v in row), str(c)]) + "\n"
            for row, c in zip(z, y, strict=True)
        )
        path.write_text(text)
    else:
        _write(_table(z, y), path, fmt)
    out = tmp_path / "out.json"
    out.write_text("old")
    for extra in (["--label-column", "label"], []):
        result = invoke([str(path), str(path), *extra, "-o", str(out)], exit_code=2)
        lines = result.stderr.strip().splitlines()
        assert lines[-1] == (
            f"Error: LABELS '{path}' is the SCORES file itself, whose label column "
            "would be read as a class score too: give --label-column without "
            "LABELS (or --score-columns)"
        ), result.stderr
        assert out.read_text() == "old"
    ref = _json([str(path), "--label-column", "label"])
    assert ref["n_classes"] == C
    assert ref["losses"]["cross_entropy"] == pytest.approx(
        float(al.cross_entropy(z, y)), rel=1e-14
    )
    got = _json(
        [str(path), str(path), "--label-column", "label", "--score-columns", "p0:p3"]
    )
    assert _numbers(got) == _numbers(ref)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "feather"])
def test_classes_in_another_order_than_the_named_columns(tmp_path, data, fmt):
    """Score columns named ``p1,p0,p2,p3`` with ``--classes p0,p1,p2,p3`` (the
    classes listed alphabetically, not in column order) named column 0 ``p0``:
    every label given as a name was scored against another class's column, a
    wrong loss without a word.  The same names in another order are bad data
    now, naming the first column that differs; in column order they are fine."""
    z, y, _ = data
    order = ["p1", "p0", "p2", "p3"]
    path = tmp_path / f"t.{fmt}"
    cols = {n: z[:, NAMES.index(n)] for n in order}
    cols["label"] = np.array(NAMES)[y]
    if fmt == "csv":
        import pandas as pd

        pd.DataFrame(cols).to_csv(path, index=False)
    else:
        _write(pa.table(cols), path, fmt)
    args = [str(path), "--label-column", "label"]
    result = invoke([*args, "--classes", ",".join(NAMES)], exit_code=1)
    assert result.stderr == (
        f"Error: SCORES '{path}' names its score column 0 'p1' but --classes "
        "names it 'p0': the same names in another order (--classes lists the "
        "classes in column order: reorder it, or pick the columns in its order "
        "with --score-columns)\n"
    )
    want = float(al.cross_entropy(z, y))
    got = _json([*args, "--classes", ",".join(order)])
    assert got["losses"]["cross_entropy"] == pytest.approx(
        float(
            al.cross_entropy(
                z[:, [1, 0, 2, 3]],
                np.array([order.index(n) for n in np.array(NAMES)[y]]),
            )
        ),
        rel=1e-14,
    )
    got = _json(
        [*args, "--classes", ",".join(NAMES), "--score-columns", ",".join(NAMES)]
    )
    assert got["losses"]["cross_entropy"] == pytest.approx(want, rel=1e-14)


def test_shards_with_their_columns_in_another_order(tmp_path, data):
    """Parquet shards whose score columns come in another order (two writers)
    were read by position, so one shard's classes were swapped; such a shard is
    bad data now."""
    z, y, _ = data
    (tmp_path / "s").mkdir()
    _write(_table(z[:20], y[:20]), tmp_path / "s" / "part-0.parquet", "parquet")
    swapped = _table(z[20:], y[20:]).select(["p1", "p0", "p2", "p3", "label"])
    _write(swapped, tmp_path / "s" / "part-1.parquet", "parquet")
    result = invoke([str(tmp_path / "s"), "--label-column", "label"], exit_code=1)
    assert result.stderr == (
        f"Error: SCORES '{tmp_path / 's' / 'part-1.parquet'}' names its score "
        f"column 0 'p1' but SCORES '{tmp_path / 's' / 'part-0.parquet'}' names it "
        "'p0': the same names in another order\n"
    )


@pytest.mark.parametrize("fmt", ["parquet", "feather"])
def test_string_view_labels(tmp_path, data, fmt):
    """polars writes text as Arrow's ``string_view`` (Utf8View) in Feather/IPC
    files: a label column of that type was "has type string_view, which cannot
    hold class labels"; it is read as the text it holds, as ``string``."""
    if not hasattr(pa, "string_view"):
        pytest.skip("pyarrow without string_view")
    z, y, _ = data
    labels = pa.array(np.array(NAMES)[y]).cast(pa.string_view())
    table = _table(z).append_column("label", labels)
    path = tmp_path / f"t.{fmt}"
    try:
        _write(table, path, fmt)
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        pytest.skip(f"this pyarrow cannot write string_view to {fmt}")
    args = ["--label-column", "label", "--classes", ",".join(NAMES)]
    out = _json([str(path), *args])
    assert out["losses"]["cross_entropy"] == pytest.approx(
        float(al.cross_entropy(z, y)), rel=1e-14
    )
    dictionary = pa.DictionaryArray.from_arrays(
        pa.array(y.astype(np.int32)), pa.array(NAMES).cast(pa.string_view())
    )
    other = tmp_path / "d.feather"
    _write(_table(z).append_column("label", dictionary), other, "feather")
    assert _numbers(_json([str(other), *args])) == _numbers(out)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_label_column_named_among_the_scores_of_another_file(tmp_path, data, fmt):
    """``eval preds.csv labels.csv --label-column label`` where preds.csv holds a
    ``label`` column too: --label-column picks the column of LABELS, and the
    one of SCORES was read as one more class score (5 classes of 4, a wrong
    loss, exit 0).  It is bad data now, unless --drop-column or
    --score-columns leaves it out."""
    z, y, _ = data
    scores = tmp_path / f"preds.{fmt}"
    if fmt == "csv":
        import pandas as pd

        frame = pd.DataFrame(dict(zip(NAMES, z.T, strict=True)))
        frame["label"] = y
        frame.to_csv(scores, index=False)
    else:
        _write(_table(z, y), scores, fmt)
    (tmp_path / "labels.csv").write_text(
        "id,label\n" + "".join(f"{i},{v}\n" for i, v in enumerate(y))
    )
    args = [str(scores), str(tmp_path / "labels.csv"), "--label-column", "label"]
    result = invoke(args, exit_code=1)
    assert result.stderr == (
        f"Error: SCORES '{scores}' has a score column 'label', the name "
        "--label-column gives the labels of LABELS by: leave it out of the scores "
        "with --drop-column label, or pick them with --score-columns\n"
    )
    out = _json([*args, "--drop-column", "label"])
    assert out["n_classes"] == C
    assert out["losses"]["cross_entropy"] == pytest.approx(
        float(al.cross_entropy(z, y)), rel=1e-14
    )


@pytest.mark.parametrize("fmt", ["parquet", "feather"])
def test_a_column_named_as_another_is_never_read_in_its_place(tmp_path, fmt):
    """pyarrow writes columns of one name (pandas refuses to): with ``a, b, c, y``
    and a second ``a`` of ones left out (``--drop-column 4``), Parquet, which
    reads its columns by name, read the wrong ``a`` and gave another
    cross-entropy, exit 0.  It is an error naming both columns; Feather, whose
    columns are selected by number, reads the file."""
    pa = pytest.importorskip("pyarrow")
    z = np.random.default_rng(0).normal(size=(6, 3))
    y = np.array([0, 1, 2, 0, 1, 2])
    cols = [pa.array(z[:, 0]), pa.array(z[:, 1]), pa.array(z[:, 2]), pa.array(y)]
    table = pa.Table.from_arrays(
        [*cols, pa.array(np.ones(6))], names=["a", "b", "c", "y", "a"]
    )
    path = tmp_path / f"t.{fmt}"
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, path)
    else:
        import pyarrow.feather as pf

        pf.write_feather(table, path)
    args = [str(path), "--label-column", "y", "--drop-column", "4"]
    if fmt == "parquet":
        line = one_error_line(invoke(args, exit_code=1))
        assert line == (
            f"Error: SCORES '{path}' has 2 columns named 'a' (columns 0, 4), read by "
            "name even when given by number: give each column a name of its own\n"
        )
    else:
        want = float(al.cross_entropy(z, y))
        assert _json(args)["losses"]["cross_entropy"] == pytest.approx(want, rel=1e-14)


@pytest.mark.parametrize(
    ("made", "named", "said"),
    [
        ("parquet", "npy", r"is a Parquet file \(it needs the suffix .parquet\)"),
        ("parquet", "feather", r"is a Parquet file"),
        ("feather", "parquet", r"is a Feather / Arrow IPC file \(it needs the suff"),
        ("feather", "npz", r"is a Feather / Arrow IPC file"),
        ("npy", "parquet", r"is a NumPy .npy file \(it needs the suffix .npy\)"),
        ("npy", "npz", r"is a NumPy .npy file"),
        ("npy.gz", "npy", r"is gzip-compressed \(decompress it first\)$"),
        ("feather1", "feather", r"is a Feather v1 file \(save it again with pandas"),
    ],
)
def test_a_file_under_another_formats_suffix_says_what_it_is(
    tmp_path, made, named, said
):
    """A Parquet file renamed .npy was "not a valid .npy file (the magic string
    is not correct; expected b'\\x93NUMPY', got b'PAR1...')", a Feather file
    renamed .parquet "Parquet magic bytes not found in footer", a Feather v1 file
    "Expected to read 826361158 metadata bytes": the error now says what the file
    is, from its first bytes, as it does for a binary file named .csv."""
    pa = pytest.importorskip("pyarrow")
    import gzip

    import pyarrow.feather as pf
    import pyarrow.parquet as pq

    z = np.random.default_rng(0).normal(size=(6, 3))
    table = pa.table({"a": z[:, 0], "b": z[:, 1], "c": z[:, 2], "y": [0, 1, 2] * 2})
    path = tmp_path / f"t.{named}"
    if made == "parquet":
        pq.write_table(table, path)
    elif made == "feather":
        pf.write_feather(table, path)
    elif made == "feather1":
        with warnings.catch_warnings():  # v1 is deprecated: files of it remain
            warnings.simplefilter("ignore")
            pf.write_feather(table, path, version=1)
    else:
        np.save(tmp_path / "z.npy", z)
        data = (tmp_path / "z.npy").read_bytes()
        path.write_bytes(gzip.compress(data) if made == "npy.gz" else data)
    np.save(tmp_path / "y.npy", np.array([0, 1, 2] * 2))
    args = [str(path), str(tmp_path / "y.npy")]
    if named in ("parquet", "feather"):
        args = [str(path), "--label-column", "y"]
    line = one_error_line(invoke(args, exit_code=1))
    assert re.search(rf"^Error: SCORES '.*t\.{named}' {said}", line), line

"""``arrayloss eval`` on a thread pool: the same bytes as the one-thread path.

Chunks are evaluated on worker threads and merged in file order
(`arrayloss.cli._engine.stream`); every output (JSON results, ``--per-sample``
rows, the first error in file order) must be identical to
``ARRAYLOSS_EVAL_THREADS=1``.  Also: the pipeline itself (order, bounded memory,
error order), the grouped exact sums the ECE tally uses, and the Brier fast path.
"""

from __future__ import annotations

import threading
import time
from fractions import Fraction

import numpy as np
import pytest
from conftest import invoke_eval as invoke
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arrayloss import _exact, _metric_rows
from arrayloss import metrics as M
from arrayloss.cli import _engine

N, C = 300, 7
ONE = {_engine.THREADS_ENV: "1"}
MANY = {_engine.THREADS_ENV: "3"}


@pytest.fixture
def files(tmp_path, rng):
    z = rng.normal(0.0, 3.0, size=(N, C)).astype(np.float32)
    z[5, :] = z[5, 0]  # a row of ties: the tie rules of accuracy and top-k
    z[17, 2] = z[17, 4]
    y = rng.integers(0, C, size=N)
    w = rng.random(N)
    w[::11] = 0.0
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[3, y[3]] = 0.0  # a clipped true-class probability
    p[3] /= p[3].sum()
    out = {}
    for name, arr in {"z": z, "y": y, "w": w, "p": p.astype(np.float64)}.items():
        out[name] = str(tmp_path / f"{name}.npy")
        np.save(out[name], arr)
    shards = tmp_path / "shards"
    shards.mkdir()
    for i, (a, b) in enumerate([(0, 100), (100, 130), (130, N)]):
        np.save(shards / f"z-{i}.npy", z[a:b])
        np.save(shards / f"y-{i}.npy", y[a:b])
    out["zs"] = str(shards / "z-*.npy")
    out["ys"] = str(shards / "y-*.npy")
    out["dir"] = str(tmp_path)
    return out


def both(args, **kwargs):
    """stdout of eval ``args`` on one thread and on three; they must agree."""
    one = invoke(args, env=ONE, **kwargs)
    many = invoke(args, env=MANY, **kwargs)
    assert one.stderr == many.stderr
    assert one.stdout == many.stdout
    assert one.stdout  # compared something
    return one.stdout


ALL = ["--metric", "accuracy", "--metric", "top_k_accuracy", "--top-k", "1,2,5"]
ALL += ["--metric", "nll", "--metric", "brier", "--metric", "ece"]
ALL += ["--metric", "ece:n_bins=7,strategy=quantile", "--format", "json"]


@pytest.mark.parametrize("chunk", ["5", "64", "1000"])
def test_logits_weighted_identical(files, chunk):
    args = [files["z"], files["y"], "--weights", files["w"], *ALL]
    args += ["--loss", "cross_entropy", "--loss", "hinge", "--chunk-size", chunk]
    assert '"top_5_accuracy"' in both(args)


@pytest.mark.parametrize("weighted", [False, True])
def test_report_and_bootstrap_identical(files, weighted):
    """The per-class tally (added to in place, merged in place on the pool) and
    the buffered bootstrap give the same bytes on one thread and on three."""
    args = [files["z"], files["y"], "--per-class", "--confusion", "--metric", "mce"]
    args += ["--bootstrap", "15", "--chunk-size", "17", "--format", "json"]
    if weighted:
        args += ["--weights", files["w"]]
    out = both(args)
    assert '"per_class"' in out
    assert '"confusion"' in out


def test_probs_with_clipping_identical(files):
    args = [files["p"], files["y"], "--input", "probs", *ALL, "--chunk-size", "9"]
    out = both(args)
    assert '"n_clipped": 1' in out


def test_shards_and_per_sample_identical(files, tmp_path):
    rows = {}
    for name, env in (("one", ONE), ("many", MANY)):
        path = str(tmp_path / f"rows-{name}.npy")
        result = invoke(
            [files["zs"], files["ys"], *ALL, "--chunk-size", "8", "--per-sample", path],
            env=env,
        )
        with open(path, "rb") as f:
            rows[name] = (result.stdout, f.read())
    assert rows["one"] == rows["many"]
    assert len(rows["one"][1]) > 8 * N  # the per-sample file holds every row


def test_equals_default_chunks(files):
    """Threads and small chunks give the bytes of one thread and one chunk."""
    base = invoke([files["z"], files["y"], *ALL], env=ONE).stdout
    many = invoke([files["z"], files["y"], *ALL, "--chunk-size", "13"], env=MANY)
    assert many.stdout == base


def test_first_error_in_file_order(files, tmp_path):
    """A bad row in an early chunk is reported, not a later one nor the short
    labels file that reading reaches first."""
    z = np.load(files["z"])
    z[197, 1] = np.nan  # in the chunk just before the labels run out
    z[250, 0] = np.inf
    np.save(tmp_path / "bad.npy", z)
    short = _short_labels(files, tmp_path)
    for labels in (files["y"], short):
        args = [str(tmp_path / "bad.npy"), labels, "--chunk-size", "5"]
        one = invoke(args, exit_code=1, env=ONE)
        many = invoke(args, exit_code=1, env=MANY)
        assert "row 197 contains NaN" in one.stderr
        assert many.stderr == one.stderr


def _short_labels(files, tmp_path):
    """A text file of the first 200 labels: its length shows only when read."""
    path = tmp_path / "short.txt"
    path.write_text("".join(f"{c}\n" for c in np.load(files["y"])[:200]))
    return str(path)


def test_read_error_after_the_good_chunks(files, tmp_path):
    args = [files["z"], _short_labels(files, tmp_path), "--chunk-size", "6"]
    one = invoke(args, exit_code=1, env=ONE)
    many = invoke(args, exit_code=1, env=MANY)
    assert "200 rows" in one.stderr
    assert many.stderr == one.stderr


@pytest.mark.parametrize("value", ["-1", "two", "1.5"])
def test_bad_thread_count_is_usage_error(files, value):
    result = invoke(
        [files["z"], files["y"]], exit_code=2, env={_engine.THREADS_ENV: value}
    )
    assert _engine.THREADS_ENV in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr == (
        f"Error: {_engine.THREADS_ENV} must be a non-negative integer (got {value!r})\n"
    )


def test_eval_threads_default_and_zero(monkeypatch):
    monkeypatch.delenv(_engine.THREADS_ENV, raising=False)
    assert _engine.eval_threads() == 1
    assert 1 <= _engine.default_threads() <= _engine.MAX_THREADS
    monkeypatch.setenv(_engine.THREADS_ENV, "0")
    assert _engine.eval_threads() == _engine.default_threads()
    monkeypatch.setenv(_engine.THREADS_ENV, " 5 ")
    assert _engine.eval_threads() == 5


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, 7), ("", 7), ("  ", 7), ("0", 0), (" 5 ", 5), ("-1", None), ("1.5", None)],
)
def test_env_count(monkeypatch, raw, expected):
    """`env_count`, the reader of `THREADS_ENV` and of the Arrow prefetch depth:
    the default when unset or blank, else a non-negative integer, else a
    `UsageError` naming the variable and the value."""
    from arrayloss._errors import UsageError
    from arrayloss._validation import env_count

    name = "ARRAYLOSS_TEST_COUNT"
    if raw is None:
        monkeypatch.delenv(name, raising=False)
    else:
        monkeypatch.setenv(name, raw)
    if expected is not None:
        assert env_count(name, 7) == expected
        return
    with pytest.raises(UsageError) as info:
        env_count(name, 7)
    assert str(info.value) == f"{name} must be a non-negative integer (got {raw!r})"


# --------------------------------------------------------------------------- #
# The pipeline
# --------------------------------------------------------------------------- #


def test_pipeline_keeps_order_and_bounds_work_in_flight():
    lock = threading.Lock()
    state = {"now": 0, "most": 0, "read": 0}
    added = []

    def items():
        for i in range(40):
            state["read"] += 1
            # never more than `threads` items read but not yet added, plus this one
            assert state["read"] - len(added) <= 3 + 1
            yield i

    def work(i):
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        time.sleep(0.002 * (i % 3))  # finish out of order
        with lock:
            state["now"] -= 1
        return i * i

    _engine._pipeline(items(), work, added.append, 3)
    assert added == [i * i for i in range(40)]
    assert 1 <= state["most"] <= 3


def test_pipeline_raises_the_earlier_error_first():
    added = []

    def items():
        yield from range(3)
        raise OSError("read failed")

    def work(i):
        if i == 1:
            raise ValueError("item 1")
        return i

    with pytest.raises(ValueError, match="item 1"):
        _engine._pipeline(items(), work, added.append, 4)
    assert added == [0]

    with pytest.raises(OSError, match="read failed"):
        _engine._pipeline(items(), lambda i: i, added.append, 4)
    assert added == [0, 0, 1, 2]


def test_keep_freed_memory_is_idempotent():
    first = _engine.keep_freed_memory()
    assert isinstance(first, bool)
    assert _engine.keep_freed_memory() is first


# --------------------------------------------------------------------------- #
# Cheaper exactness and fewer temporaries: the same numbers
# --------------------------------------------------------------------------- #

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(finite, finite, st.integers(0, 4)), min_size=0, max_size=40))
def test_grouped_exact_sums_match_fractions(rows):
    t = np.array([r[0] for r in rows], dtype=np.float64)
    w = np.abs(np.array([r[1] for r in rows], dtype=np.float64))
    g = np.array([r[2] for r in rows], dtype=np.int64)
    sums = _exact.exact_sums_by_group(t, g, 5)
    dots = _exact.exact_dots_by_group(w, t, g, 5)
    for b in range(5):
        inside = [r for r in rows if r[2] == b]
        assert sums[b] == sum((Fraction(r[0]) for r in inside), Fraction(0))
        want = sum((Fraction(abs(r[1])) * Fraction(r[0]) for r in inside), Fraction(0))
        assert dots[b] == want
    assert _exact.exact_dot(w, t) == sum(dots, Fraction(0))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(1, 30),
    st.integers(2, 9),
    st.sampled_from([np.float32, np.float64]),
    st.integers(0, 2**32 - 1),
    st.booleans(),
)
def test_brier_fast_path_is_the_generic_one_bit_for_bit(n, c, dtype, seed, logits):
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 4, size=(n, c)).astype(dtype)
    kind = "logits" if logits else "probs"
    if not logits:
        z = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    y = rng.integers(0, c, size=n)
    xp = M._xp.array_namespace(z)
    fast = _metric_rows._Rows(z, y, None, input=kind, xp=xp, eager=True)
    generic = _metric_rows._Rows(z, y, None, input=kind, xp=xp, eager=False)
    np.testing.assert_array_equal(fast.brier, generic.brier)
    assert fast.brier.dtype == z.dtype


def test_indicator_sums_are_counts_and_selected_weights(rng):
    hit = rng.random(50) < 0.4
    w = rng.random(50)
    assert _metric_rows._exact_sums(hit, (None, 0)) == (
        Fraction(int(hit.sum())),
        Fraction(50),
    )
    total, weight = _metric_rows._exact_sums(hit, (w, 3))
    assert total == _exact.exact_dot(w, hit.astype(np.float64)) * 8
    assert weight == _exact.exact_sum(w) * 8


@settings(max_examples=30, deadline=None)
@given(
    st.integers(0, 20),
    st.sampled_from([8, 16, 1000, 2040, 7, 2048]),
    st.floats(0.0, 1.0),
    st.integers(0, 2**32 - 1),
)
def test_packed_row_counts_are_count_nonzero(n, c, density, seed):
    mask = np.random.default_rng(seed).random((n, c)) < density
    mask[: n // 3] = True  # full rows: the largest count a byte lane holds
    counts = _metric_rows._count_rows(mask, xp=np)
    np.testing.assert_array_equal(counts, np.count_nonzero(mask, axis=1))
    assert counts.dtype == np.int64


def test_default_eval_skips_the_compat_numpy_namespace(files):
    """Startup: a default eval of a NumPy file never imports array-api-compat's
    NumPy namespace (whose first import loads every lazy NumPy submodule)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from arrayloss.cli import main\n"
        f"r = CliRunner().invoke(main, ['eval', {files['z']!r}, {files['y']!r}])\n"
        "assert r.exit_code == 0, r.output\n"
        "print('array_api_compat.numpy' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"

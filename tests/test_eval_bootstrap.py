"""``arrayloss eval --bootstrap N --seed S`` and ``--ignore-label N``.

* The draws: Poisson(1) (mean, variance, frequencies against the pmf), a function
  of (seed, replicate, row) alone.
* The exact replicate sums: digits and accumulators against `fractions.Fraction`
  sums, for any cut of the rows (hypothesis).
* The command: intervals identical at chunk sizes 1, 7 and all, over shards and
  with ``--dask``; each replicate equal to a direct NumPy computation from the
  same draws; the percentile intervals cover a known accuracy about 95 % of the
  time; bad usage exits 2 with one line.
* Per-class precision, recall and F1, MCE and RMSCE: intervals identical at every
  chunk size (JSON and the ``--per-class`` table), replicates equal to NumPy's
  from the same draws, a coverage check of one class's recall.
* ``--ignore-label``: the ignored rows count for nothing (the numbers of the file
  without them), are not range-checked, are counted; all ignored exits 1.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from functools import partial

import numpy as np
import pytest
from conftest import eval_json, one_error_line
from conftest import invoke_eval as invoke
from hypothesis import given, settings
from hypothesis import strategies as st

import arrayloss as al
from arrayloss.cli import _bootstrap as B

C = 6
N = 120


run_json = partial(eval_json, quiet=True)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """float64 logits, labels, weights (some zero), and the same as 3 shards."""
    root = tmp_path_factory.mktemp("boot")
    rng = np.random.default_rng(20261202)
    z = rng.normal(0.0, 2.0, size=(N, C))
    y = rng.integers(0, C, size=N)
    z[np.arange(N), y] += 1.5
    w = rng.random(N) * 3
    w[::13] = 0.0
    np.save(root / "z.npy", z)
    np.save(root / "y.npy", y)
    np.save(root / "w.npy", w)
    for sub in ("zs", "ys", "ws"):
        (root / sub).mkdir()
    for i, (a, b) in enumerate(((0, 50), (50, 53), (53, N))):
        np.save(root / "zs" / f"part-{i}.npy", z[a:b])
        np.save(root / "ys" / f"part-{i}.npy", y[a:b])
        np.save(root / "ws" / f"part-{i}.npy", w[a:b])
    return root


def paths(data, *, sharded=False):
    if sharded:
        return [str(data / "zs"), str(data / "ys")]
    return [str(data / "z.npy"), str(data / "y.npy")]


BOOT = ["--bootstrap", "40", "--seed", "7", "--loss", "cross_entropy"]
BOOT += ["--loss", "hinge"]


# --------------------------------------------------------------------------- #
# The draws
# --------------------------------------------------------------------------- #


def pmf(k):
    return math.exp(-1) / math.factorial(k)


def test_thresholds_are_the_poisson_cdf():
    t = B._cdf_thresholds().astype(np.float64) / 2.0**32
    cdf = [math.fsum(pmf(j) for j in range(k + 1)) for k in range(t.shape[0])]
    np.testing.assert_allclose(t, cdf, rtol=0, atol=2**-32)
    # the largest draw, len(t), takes the tail P(K > len(t)) < 2**-32 too
    assert math.fsum(pmf(j) for j in range(t.shape[0] + 1, 40)) < 2**-32


def test_draws_are_poisson_one():
    """Mean and variance 1, frequencies of 0..6 as the pmf: each within 5 standard
    errors over 10**6 draws (a failure by chance has probability below 1e-5)."""
    k = B.poisson_weights(12345, 200, np.arange(5000)).astype(np.float64)
    n = k.size
    assert abs(k.mean() - 1) < 5 * math.sqrt(1 / n)
    # var of the sample variance of Poisson(1): (mu4 - sigma**4) / n = (1 + 3 - 1) / n
    assert abs(k.var() - 1) < 5 * math.sqrt(3 / n)
    counts = np.bincount(k.astype(np.int64).ravel(), minlength=8)
    for j in range(7):
        p = pmf(j)
        assert abs(counts[j] / n - p) < 5 * math.sqrt(p * (1 - p) / n), j
    # no visible dependence between neighbouring rows or replicates
    centred = k - 1
    assert abs(np.mean(centred[1:] * centred[:-1])) < 5 / math.sqrt(n)
    assert abs(np.mean(centred[:, 1:] * centred[:, :-1])) < 5 / math.sqrt(n)


def test_draws_depend_on_seed_replicate_and_row_only():
    full = B.poisson_weights(3, 30, np.arange(2000))
    some = np.array([1999, 5, 0, 700, 701])
    np.testing.assert_array_equal(B.poisson_weights(3, 30, some), full[some])
    np.testing.assert_array_equal(B.poisson_weights(3, 10, some), full[some, :10])
    np.testing.assert_array_equal(B._one_replicate(3, 17, some), full[some, 17])
    other = B.poisson_weights(4, 30, np.arange(2000))
    assert np.mean(other == full) < 0.5  # another seed, other draws


def test_poisson_lookup_agrees_with_a_search_of_the_whole_table():
    rng = np.random.default_rng(0)
    u = rng.integers(0, 2**32, size=200_000, dtype=np.uint32, endpoint=False)
    t = B._cdf_thresholds()
    u[:50] = t[-10:].repeat(5)[:50] - np.uint32(1)  # the crowded top buckets
    u[50:60] = t[:10]
    expected = np.searchsorted(t, u, side="right")
    np.testing.assert_array_equal(B._poisson_from_uniform(u), expected)


# --------------------------------------------------------------------------- #
# Exact replicate sums
# --------------------------------------------------------------------------- #


def exact_replicate_sums(draws, values, weights):
    return [
        sum(
            (Fraction(int(k)) * Fraction(float(w)) * Fraction(float(v)))
            for k, v, w in zip(draws[:, b], values, weights, strict=True)
        )
        for b in range(draws.shape[1])
    ]


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=30, deadline=None)
@given(
    values=st.lists(finite, min_size=1, max_size=40),
    weights_seed=st.integers(0, 2**32 - 1),
    cut=st.integers(0, 40),
)
def test_replicate_sums_are_exact_for_any_cut(values, weights_seed, cut):
    """Any finite terms and weights (subnormal to 1e308), cut into two blocks
    added in either order: the exact sum of draws * weights * terms."""
    t = np.array(values)
    rng = np.random.default_rng(weights_seed)
    w = np.ldexp(rng.random(t.shape[0]), rng.integers(-1074, 1, size=t.shape[0]))
    draws = B.poisson_weights(weights_seed, 3, np.arange(t.shape[0]))
    expected = exact_replicate_sums(draws, t, w)
    cut = min(cut, t.shape[0])
    for order in ((0, cut, t.shape[0]), (cut, t.shape[0], 0)):
        acc = B._Digits(3, 1)
        pieces = [(0, cut), (cut, t.shape[0])]
        if order[0] != 0:
            pieces.reverse()
        for a, b in pieces:
            if a == b:
                continue
            c = B._contribution(0, t, w, 0, a, b)
            for low, block, rows in B._block_sums(draws[a:b], [c]):
                acc.add(low, block, rows)
        ints, power = acc.integers()
        got = [Fraction(int(v)) * (Fraction(2) ** power) for v in ints[:, 0].tolist()]
        assert got == expected


def test_accumulator_merge_is_exact():
    rng = np.random.default_rng(5)
    t = rng.normal(size=500) * np.exp(rng.normal(0, 30, size=500))
    draws = B.poisson_weights(1, 4, np.arange(500))
    parts = []
    for a, b in ((0, 123), (123, 500)):
        acc = B._Digits(4, 1)
        c = B._contribution(0, t, None, 0, a, b)
        for low, block, rows in B._block_sums(draws[a:b], [c]):
            acc.add(low, block, rows)
        parts.append(acc)
    parts[1].merge(parts[0])
    ints, power = parts[1].integers()
    got = [Fraction(int(v)) * Fraction(2) ** power for v in ints[:, 0].tolist()]
    assert got == exact_replicate_sums(draws, t, np.ones(500))


@settings(max_examples=25, deadline=None)
@given(
    keys=st.lists(st.integers(0, 9), min_size=0, max_size=60),
    seed=st.integers(0, 2**32 - 1),
)
def test_keyed_row_sums_equal_a_scatter_add(keys, seed):
    """The rank-wise row sums of the per-class counts: every key's draws summed
    (np.add.at), whatever the repeats."""
    rng = np.random.default_rng(seed)
    draws = B.poisson_weights(seed, 5, np.arange(30))
    keys = np.array(keys, dtype=np.int64)
    src = rng.integers(0, 30, size=keys.size)
    expected = np.zeros((10, 5), dtype=np.int64)
    np.add.at(expected, keys, draws[src].astype(np.int64))
    if keys.size == 0:
        return
    ids, sums = B._keyed_row_sums(draws, src, keys)
    np.testing.assert_array_equal(ids, np.unique(keys))
    np.testing.assert_array_equal(sums, expected[ids])
    assert sums.dtype == np.int32


def report_run(z, y, w, pieces, seed):
    """The bootstrap tally with the per-class report and terms of equal value
    (nll and cross-entropy, accuracy and top-1 accuracy) of ``pieces`` (row
    ranges) fed to the chunk engine, each its own chunk."""
    from arrayloss import metrics as M
    from arrayloss.cli._engine import (
        LossTally,
        Tallies,
        backend_converter,
        evaluate_chunk,
    )
    from arrayloss.io import Chunk

    c = z.shape[1]
    tallies = {"accuracy": M.Accuracy(), "top_1": M.TopKAccuracy(k=1)}
    tallies |= {"nll": M.NLL(), "ece": M.ECE(n_bins=4), "mce": M.MCE(n_bins=3)}
    tallies["per-class report"] = M.ClassReport(c, 4)
    losses = {"cross_entropy": LossTally("cross_entropy", "cross_entropy", {})}
    boot = B.BootstrapTally(B.BootstrapSpec(12, seed), tallies, list(losses))
    for a, b in pieces:
        chunk = Chunk(a, z[a:b], y[a:b], None if w is None else w[a:b])
        evaluate_chunk(
            chunk, "logits", c, None, "S", "L", "W", backend_converter("numpy"),
            Tallies(tallies, losses, boot=boot), want_rows=False, first_row=a,
        )  # fmt: skip
    return boot


@pytest.mark.parametrize("weights", ["none", "unit", "real"])
def test_whole_blocks_and_the_rest_give_the_same_sums(monkeypatch, weights):
    """Blocks of 16 rows from chunks of 7 (a block's rest waits for the next
    chunk) and one block of every row: the same exact sums, per-class counts,
    averages and intervals; terms of equal value (float32 or float64) share
    their sums."""
    rng = np.random.default_rng(11)
    n, c = 100, 5
    z = rng.normal(0, 2, size=(n, c)).astype(np.float32)
    y = rng.integers(0, c, size=n)
    w = {
        "none": None,
        "unit": (rng.random(n) < 0.8).astype(np.float64),
        "real": rng.random(n) * 3,
    }[weights]
    whole = report_run(z, y, w, [(0, n)], 3)
    whole.flush()  # one block of every row
    monkeypatch.setattr(B, "BLOCK_ROWS", 16)
    assert B.block_rows(12) == 16
    cut = report_run(z, y, w, [(a, min(n, a + 7)) for a in range(0, n, 7)], 3)
    assert cut.n_pending == n % 16  # whole blocks only, the rest waits
    cut.flush()
    assert not cut.pending
    np.testing.assert_array_equal(cut.sums.integers()[0], whole.sums.integers()[0])
    assert cut.sums.integers()[1] == whole.sums.integers()[1]
    for got, want in (
        (cut.class_replicates(), whole.class_replicates()),
        (cut.average_replicates(), whole.average_replicates()),
    ):
        assert got is not None
        assert want is not None
        for key in want:
            np.testing.assert_array_equal(got[key], want[key])
    assert cut.intervals("mean") == whole.intervals("mean")
    assert cut.class_intervals() == whole.class_intervals()
    reps = whole.replicates("mean")
    np.testing.assert_array_equal(
        reps["losses"]["cross_entropy"], reps["metrics"]["nll"]
    )
    np.testing.assert_array_equal(reps["metrics"]["accuracy"], reps["metrics"]["top_1"])
    # the block sums against NumPy: accuracy and the per-class support
    kw = B.poisson_weights(3, 12, np.arange(n)).astype(float)
    if w is not None:  # weights in the scores' dtype, as the engine reads them
        kw *= w.astype(z.dtype)[:, None]
    hit = (z.argmax(axis=1) == y).astype(float)
    np.testing.assert_allclose(
        reps["metrics"]["accuracy"], hit @ kw / kw.sum(0), rtol=1e-12
    )
    averages = cut.average_replicates()
    assert averages is not None
    np.testing.assert_allclose(
        averages["recall"][:, 1], hit @ kw / kw.sum(0), rtol=1e-12
    )  # the weighted average recall is the accuracy


def tally_run(z, y, w, pieces, seed):
    """The bootstrap tally of ``pieces`` (row ranges, in the order given) fed to
    the chunk engine, each its own chunk."""
    from arrayloss import metrics as M
    from arrayloss.cli._engine import (
        LossTally,
        Tallies,
        backend_converter,
        evaluate_chunk,
    )
    from arrayloss.io import Chunk

    tallies = {"accuracy": M.Accuracy(), "nll": M.NLL(), "ece": M.ECE(n_bins=4)}
    tallies["ece:q"] = M.ECE(n_bins=3, strategy="quantile")
    losses = {"hinge": LossTally("hinge", "hinge", {})}
    boot = B.BootstrapTally(B.BootstrapSpec(8, seed), tallies, list(losses))
    for a, b in pieces:
        chunk = Chunk(a, z[a:b], y[a:b], w[a:b])
        evaluate_chunk(
            chunk, "logits", z.shape[1], None, "S", "L", "W",
            backend_converter("numpy"), Tallies(tallies, losses, boot=boot),
            want_rows=False, first_row=a,
        )  # fmt: skip
    return boot


@settings(max_examples=8, deadline=None)
@given(
    seed=st.integers(0, 2**64 - 1),
    cuts=st.lists(st.integers(1, 39), max_size=5, unique=True),
    backwards=st.booleans(),
)
def test_tallies_are_the_same_for_any_cut_and_order(seed, cuts, backwards):
    """The replicate sums and intervals of the chunk engine do not depend on how
    the rows are cut into chunks or in which order the chunks come."""
    rng = np.random.default_rng(seed % 2**32)
    z = rng.normal(0, 3, size=(40, 4))
    y = rng.integers(0, 4, size=40)
    w = np.where(
        rng.random(40) < 0.2, 0.0, rng.random(40) * 10.0 ** rng.integers(-5, 5)
    )
    edges = [0, *sorted(cuts), 40]
    pieces = list(itertools.pairwise(edges))
    if backwards:
        pieces.reverse()
    whole = tally_run(z, y, w, [(0, 40)], seed)
    cut = tally_run(z, y, w, pieces, seed)
    np.testing.assert_array_equal(cut.sums.integers()[0], whole.sums.integers()[0])
    assert cut.sums.integers()[1] == whole.sums.integers()[1]
    assert cut.intervals("mean") == whole.intervals("mean")


# --------------------------------------------------------------------------- #
# The command
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("weighted", [False, True])
def test_intervals_are_identical_at_every_chunk_size(data, weighted):
    extra = ["--weights", str(data / "w.npy")] if weighted else []
    outs = [
        run_json([*paths(data), *BOOT, *extra, "--chunk-size", str(size)])
        for size in (1, 7, N)
    ]
    sharded = run_json(
        [*paths(data, sharded=True), *BOOT, "--chunk-size", "7"]
        + (["--weights", str(data / "ws")] if weighted else [])
    )
    for out in [*outs[1:], sharded]:
        assert out["intervals"] == outs[0]["intervals"]
        assert out["losses"] == outs[0]["losses"]
    first = outs[0]
    assert first["bootstrap"] == {"replicates": 40, "seed": 7, "confidence": 0.95}
    assert set(first["intervals"]["metrics"]) == set(first["metrics"])
    assert set(first["intervals"]["losses"]) == set(first["losses"]) != set()
    for group in ("losses", "metrics"):
        for key, (lo, hi) in first["intervals"][group].items():
            assert lo <= hi
            assert lo - 0.2 < first[group][key] < hi + 0.2  # near the estimate


def direct_replicates(z, y, w, seed, replicates, n_bins):
    """Replicates of cross-entropy, hinge, accuracy, nll and ECE computed with
    NumPy from the draws (float64, no exact sums)."""
    from arrayloss import losses

    n = z.shape[0]
    kw = B.poisson_weights(seed, replicates, np.arange(n)).astype(float) * w[:, None]
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    nll = -np.log(p[np.arange(n), y])
    hinge = np.asarray(losses.hinge(z, y, reduction="none"))
    hit = (z.argmax(axis=1) == y).astype(float)
    conf = p.max(axis=1)
    bins = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    gaps = np.stack([((bins == j) * (hit - conf)) @ kw for j in range(n_bins)])
    total = kw.sum(axis=0)
    return {
        "cross_entropy": nll @ kw / total,
        "hinge": hinge @ kw / total,
        "accuracy": hit @ kw / total,
        "nll": nll @ kw / total,
        "ece:n_bins=5": np.abs(gaps).sum(axis=0) / total,
    }


def test_replicates_equal_a_direct_computation(data):
    """Each replicate of each scalar, from the chunk engine and from the command,
    as NumPy computes it from the same draws."""
    from arrayloss import metrics as M
    from arrayloss.cli._engine import (
        LossTally,
        Tallies,
        backend_converter,
        evaluate_chunk,
    )
    from arrayloss.io import Chunk

    z, y, w = (np.load(data / f"{k}.npy") for k in "zyw")
    expected = direct_replicates(z, y, w, 7, 40, 5)
    tallies = {"accuracy": M.Accuracy(), "nll": M.NLL(), "ece:n_bins=5": M.ECE(5)}
    losses = {s: LossTally(s, s, {}) for s in ("cross_entropy", "hinge")}
    boot = B.BootstrapTally(B.BootstrapSpec(40, 7), tallies, list(losses))
    for a in range(0, N, 7):
        evaluate_chunk(
            Chunk(a, z[a : a + 7], y[a : a + 7], w[a : a + 7]), "logits", C, None,
            "S", "L", "W", backend_converter("numpy"),
            Tallies(tallies, losses, boot=boot), want_rows=False,
        )  # fmt: skip
    got = boot.replicates("mean")
    got = {**got["losses"], **got["metrics"]}
    assert got.keys() == expected.keys()
    for key, want in expected.items():
        np.testing.assert_allclose(got[key], want, rtol=1e-12, atol=1e-15, err_msg=key)

    args = [*paths(data), *BOOT, "--weights", str(data / "w.npy")]
    args += ["--metric", "accuracy", "--metric", "nll", "--metric", "ece:n_bins=5"]
    out = run_json([*args, "--chunk-size", "7"])
    shown = {**out["intervals"]["losses"], **out["intervals"]["metrics"]}
    assert shown.keys() == expected.keys()  # an interval of each, compared below
    for group in ("losses", "metrics"):
        for key, (lo, hi) in out["intervals"][group].items():
            want = np.quantile(expected[key], [0.025, 0.975])
            assert [lo, hi] == pytest.approx(want, rel=1e-12), key


def test_reduction_sum_and_confidence(data):
    out = run_json([*paths(data), *BOOT, "--reduction", "sum", "--confidence", "0.5"])
    lo, hi = out["intervals"]["losses"]["cross_entropy"]
    wide = run_json([*paths(data), *BOOT, "--reduction", "sum"])
    wlo, whi = wide["intervals"]["losses"]["cross_entropy"]
    assert wlo < lo < out["losses"]["cross_entropy"] < hi < whi
    assert out["bootstrap"]["confidence"] == 0.5


def test_quantile_ece_has_an_interval_identical_at_every_chunk_size(data):
    args = [*paths(data), "--bootstrap", "30", "--metric", "ece:strategy=quantile"]
    a = run_json([*args, "--chunk-size", "1"])
    b = run_json([*args, "--chunk-size", "64"])
    assert a["intervals"] == b["intervals"]
    lo, hi = a["intervals"]["metrics"]["ece:strategy=quantile"]
    assert 0 <= lo <= hi <= 1


def test_table_and_csv_show_the_interval(data):
    table = invoke([*paths(data), *BOOT, "--quiet"]).stdout
    head, *lines = table.splitlines()
    assert head.split()[-2:] == ["95%", "interval"]
    acc = next(line for line in lines if " accuracy " in line)
    assert acc.rstrip().endswith("]")
    assert "[" in acc
    csv_out = invoke([*paths(data), *BOOT, "--format", "csv"]).stdout.splitlines()
    assert csv_out[0] == "kind,name,value,low,high"
    assert csv_out[1].startswith("data,n_samples,120,,")
    row = next(r for r in csv_out if r.startswith("metric,accuracy,")).split(",")
    assert float(row[3]) <= float(row[2]) <= float(row[4])


def test_coverage_of_a_known_accuracy():
    """A classifier right with probability 0.8 on n = 400 samples; over 600 seeds
    (master seed 2026) the 95 % percentile interval from 200 replicates of the
    same draws the command uses should cover 0.8 in about 95 % of the runs.  The
    percentile interval of a proportion at this n covers about 94-95 %; the test
    allows 0.95 +- 0.035, over 3.9 binomial standard errors (0.0089) of 600 runs:
    a correct generator fails it with probability below 1e-4, and one whose
    draws were, say, 30 % too dispersed would not pass."""
    truth, n, runs, reps = 0.8, 400, 600, 200
    master = np.random.default_rng(2026)
    hits = master.random((runs, n)) < truth
    seeds = master.integers(0, 2**63, size=runs)
    covered = 0
    for r in range(runs):
        k = B.poisson_weights(int(seeds[r]), reps, np.arange(n)).astype(np.float64)
        acc = hits[r] @ k / k.sum(axis=0)
        lo, hi = np.quantile(acc, [0.025, 0.975])
        covered += lo <= truth <= hi
    assert abs(covered / runs - 0.95) < 0.035, covered / runs


REPORT = ["--metric", "mce:n_bins=5", "--metric", "rmsce:n_bins=5"]
REPORT += ["--metric", "mce:strategy=quantile,n_bins=4"]


@pytest.mark.parametrize("weighted", [False, True])
def test_per_class_and_calibration_intervals_identical_at_every_chunk_size(
    data, weighted, tmp_path
):
    extra = ["--weights", str(data / "w.npy")] if weighted else []
    outs, tables = [], []
    for size in (1, 7, N):
        table = tmp_path / f"classes-{size}.csv"
        outs.append(
            run_json(
                [*paths(data), *BOOT, *REPORT, *extra, "--chunk-size", str(size),
                 "--per-class", str(table)]
            )
        )  # fmt: skip
        tables.append(table.read_text())
    for out, table in zip(outs[1:], tables[1:], strict=True):
        assert out["intervals"] == outs[0]["intervals"]
        assert table == tables[0]
    first = outs[0]
    per = first["intervals"]["per_class"]
    assert list(per) == [*(str(c) for c in range(C)), "macro avg", "weighted avg"]
    assert list(per) == list(first["per_class"])  # every row of the report
    for name, spans in per.items():
        assert set(spans) == set(B.CLASS_METRICS)
        for metric, (lo, hi) in spans.items():
            assert 0 <= lo <= hi <= 1
            assert lo - 0.3 < first["per_class"][name][metric] < hi + 0.3
    for key in ("mce:n_bins=5", "rmsce:n_bins=5", "mce:strategy=quantile,n_bins=4"):
        lo, hi = first["intervals"]["metrics"][key]
        assert lo <= first["metrics"][key] <= hi + 0.2
    head, row = tables[0].splitlines()[:2]
    assert head.endswith("f1-score_low,f1-score_high")
    cells = row.split(",")
    assert float(cells[7]) == per["0"]["precision"][0]
    assert float(cells[12]) == per["0"]["f1-score"][1]
    last = tables[0].splitlines()[-1].split(",")  # weighted avg: its intervals
    assert last[0] == "weighted avg"
    assert [float(x) for x in last[7:]] == [
        x for m in B.CLASS_METRICS for x in per["weighted avg"][m]
    ]


def test_per_class_and_calibration_replicates_equal_a_direct_computation(data):
    """Per replicate: each class's precision, recall and F1, and MCE and RMSCE,
    from the chunk engine and as NumPy computes them from the same draws."""
    from arrayloss import metrics as M
    from arrayloss.cli._engine import Tallies, backend_converter, evaluate_chunk
    from arrayloss.io import Chunk

    z, y, w = (np.load(data / f"{k}.npy") for k in "zyw")
    n_bins, reps = 5, 40
    tallies = {"mce": M.MCE(n_bins), "rmsce": M.RMSCE(n_bins)}
    tallies["per-class report"] = M.ClassReport(C, n_bins)
    boot = B.BootstrapTally(B.BootstrapSpec(reps, 7), tallies, [])
    for a in range(0, N, 7):
        evaluate_chunk(
            Chunk(a, z[a : a + 7], y[a : a + 7], w[a : a + 7]), "logits", C, None,
            "S", "L", "W", backend_converter("numpy"),
            Tallies(tallies, {}, boot=boot), want_rows=False,
        )  # fmt: skip
    kw = B.poisson_weights(7, reps, np.arange(N)).astype(float) * w[:, None]
    pred = z.argmax(axis=1)
    got = boot.class_replicates()
    assert got is not None
    for c in range(C):
        sup, prd = (y == c) @ kw, (pred == c) @ kw
        tp = ((y == c) & (pred == c)) @ kw
        want = {
            "precision": np.where(prd > 0, tp / np.where(prd > 0, prd, 1), 0),
            "recall": np.where(sup > 0, tp / np.where(sup > 0, sup, 1), 0),
            "f1-score": 2 * tp / (sup + prd),
        }
        for metric, values in want.items():
            np.testing.assert_allclose(got[metric][:, c], values, rtol=1e-12)
    # the macro and weighted averages of each replicate
    averages = boot.average_replicates()
    assert averages is not None
    sup = np.stack([(y == c) @ kw for c in range(C)], axis=1)  # (reps, C)
    for metric in B.CLASS_METRICS:
        values = got[metric]
        np.testing.assert_allclose(
            averages[metric][:, 0], values.mean(axis=1), rtol=1e-12
        )
        np.testing.assert_allclose(
            averages[metric][:, 1],
            (values * sup).sum(axis=1) / sup.sum(axis=1),
            rtol=1e-12,
        )
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    conf, hit = p.max(axis=1), (pred == y).astype(float)
    bins = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    gaps = np.stack([((bins == j) * (hit - conf)) @ kw for j in range(n_bins)])
    weight = np.stack([(bins == j) @ kw for j in range(n_bins)])
    mean_gap = np.where(weight > 0, gaps / np.where(weight > 0, weight, 1), 0)
    scalars = boot.replicates("mean")["metrics"]
    np.testing.assert_allclose(scalars["mce"], np.abs(mean_gap).max(axis=0), rtol=1e-12)
    rms = np.sqrt((mean_gap * gaps).sum(axis=0) / kw.sum(axis=0))
    np.testing.assert_allclose(scalars["rmsce"], rms, rtol=1e-12)


def test_coverage_of_a_known_recall():
    """Class 0 of three, recalled with probability 0.8 (n = 240, ~80 of class 0):
    over 120 simulated data sets the 95 % interval of its recall from 100
    replicates, through the per-class sums of the tally, should cover 0.8 in about
    95 % of the runs (the percentile interval of a proportion at this size covers
    ~93-95 %).  Allowed: 0.94 +- 0.075, over 3.5 binomial standard errors
    (0.021) of 120 runs, so a correct tally fails with probability ~1e-3 while
    one whose intervals were a third too narrow (coverage ~0.82) does not pass."""
    from arrayloss import metrics as M
    from arrayloss.cli._engine import Tallies, backend_converter, evaluate_chunk
    from arrayloss.io import Chunk

    truth, n, runs = 0.8, 240, 120
    master = np.random.default_rng(2027)
    covered = 0
    for r in range(runs):
        y = master.integers(0, 3, size=n)
        right = master.random(n) < truth
        pred = np.where(right, y, (y + master.integers(1, 3, size=n)) % 3)
        z = np.zeros((n, 3))
        z[np.arange(n), pred] = 2.0
        tallies = {"per-class report": M.ClassReport(3, 5)}
        boot = B.BootstrapTally(B.BootstrapSpec(100, r), tallies, [])
        evaluate_chunk(
            Chunk(0, z, y, None), "logits", 3, None, "S", "L", "W",
            backend_converter("numpy"), Tallies(tallies, {}, boot=boot),
            want_rows=False,
        )  # fmt: skip
        spans = boot.class_intervals()
        assert spans is not None
        lo, hi = spans["recall"][0]
        covered += lo <= truth <= hi
    assert abs(covered / runs - 0.94) < 0.075, covered / runs


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--bootstrap", "0"], "--bootstrap"),
        (["--bootstrap", "-5"], "--bootstrap"),
        (["--seed", "3"], "--seed"),
        (["--confidence", "0.9"], "--confidence"),
        (["--bootstrap", "10", "--seed", "-1"], "--seed"),
        (["--bootstrap", "10", "--seed", str(2**64)], "--seed"),
        (["--bootstrap", "10", "--confidence", "1"], "--confidence"),
        (["--bootstrap", "10", "--confidence", "0"], "--confidence"),
        (["--bootstrap", "10001"], "at most 10000"),
        (["--bootstrap", "200", "--metric", "ece:n_bins=10000"], "fewer replicates"),
    ],
)
def test_bad_usage_is_one_line_exit_2(data, args, needle):
    result = invoke([*paths(data), *args], exit_code=2)
    assert needle in one_error_line(result)


# --------------------------------------------------------------------------- #
# --ignore-label
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def ignored(data, tmp_path_factory):
    """The labels with every 5th set to -100, and the file without those rows."""
    root = tmp_path_factory.mktemp("ignore")
    z, y, w = (np.load(data / f"{k}.npy") for k in "zyw")
    drop = np.arange(N) % 5 == 2
    y_ign = y.copy()
    y_ign[drop] = -100
    np.save(root / "y_ign.npy", y_ign)
    np.save(root / "z_kept.npy", z[~drop])
    np.save(root / "y_kept.npy", y[~drop])
    np.save(root / "w_kept.npy", w[~drop])
    y_all = np.full(N, 7)
    np.save(root / "y_all.npy", y_all)
    return root, int(drop.sum())


LOSSES = ["--loss", "cross_entropy", "--loss", "hinge", "--loss", "smooth_topk_svm:k=2"]


@pytest.mark.parametrize("weighted", [False, True])
def test_ignored_rows_count_for_nothing(data, ignored, weighted):
    root, n_drop = ignored
    wz = ["--weights", str(data / "w.npy")] if weighted else []
    wk = ["--weights", str(root / "w_kept.npy")] if weighted else []
    base = run_json([str(root / "z_kept.npy"), str(root / "y_kept.npy"), *LOSSES, *wk])
    for size in ("1", str(N)) if weighted else ("7",):
        out = run_json(
            [str(data / "z.npy"), str(root / "y_ign.npy"), *LOSSES, *wz,
             "--ignore-label", "-100", "--chunk-size", size]
        )  # fmt: skip
        assert out["n_ignored"] == n_drop
        assert out["ignore_label"] == -100
        assert out["n_samples"] == N
        assert out["losses"] == base["losses"]
        assert out["metrics"] == base["metrics"]


def test_ignored_labels_are_not_range_checked(data, ignored):
    root, _ = ignored
    result = invoke([str(data / "z.npy"), str(root / "y_ign.npy")], exit_code=1)
    assert "-100 is out of range" in one_error_line(result)
    table = invoke(
        [str(data / "z.npy"), str(root / "y_ign.npy"), "--ignore-label", "-100"]
    ).stdout
    assert any(line.split()[:2] == ["data", "n_ignored"] for line in table.splitlines())


def test_per_sample_losses_of_ignored_rows_are_nan(data, ignored, tmp_path):
    root, _ = ignored
    out = tmp_path / "rows.npy"
    args = [str(data / "z.npy"), str(root / "y_ign.npy"), "--ignore-label", "-100"]
    invoke([*args, "--per-sample", str(out)])
    rows = np.load(out)[:, -1]  # id, predicted, confidence, p_true, the loss
    drop = np.load(root / "y_ign.npy") == -100
    assert np.isnan(rows[drop]).all()
    assert np.isfinite(rows[~drop]).all()


def test_all_ignored_is_one_line_exit_1(data, ignored):
    root, _ = ignored
    result = invoke(
        [str(data / "z.npy"), str(root / "y_all.npy"), "--ignore-label", "7"],
        exit_code=1,
    )
    assert "all 120 samples have the ignored label 7" in one_error_line(result)


def test_ignore_label_in_a_csv_and_with_probabilities(tmp_path):
    rng = np.random.default_rng(3)
    p = rng.dirichlet(np.ones(3), size=12)
    p[0] = [0.0, 1.0, 0.0]  # clipped if kept: label 0 has probability 0
    y = rng.integers(0, 3, size=12)
    y[0] = 0
    y[[0, 4]] = -1
    lines = ["a,b,c,label"] + [
        ",".join(repr(float(v)) for v in row) + f",{lab}"
        for row, lab in zip(p, y, strict=True)
    ]
    path = tmp_path / "p.csv"
    path.write_text("\n".join(lines) + "\n")
    out = run_json(
        [
            str(path),
            "--label-column",
            "label",
            "--input",
            "probs",
            "--ignore-label",
            "-1",
        ]
    )
    assert out["n_ignored"] == 2
    assert out["n_clipped"] == 0  # the ignored row is not counted as clipped
    keep = y != -1
    nll = -np.log(p[keep][np.arange(keep.sum()), y[keep]]).mean()
    assert out["metrics"]["nll"] == pytest.approx(nll, rel=1e-12)


@pytest.mark.parametrize("text", ["-100.0", " -100 ", "-1e2", "-100"])
def test_ignored_text_label_is_matched_as_the_labels_are_read(tmp_path, text):
    """A text label is the class index its number gives ('2.0' is class 2: a
    float column as pandas writes it), so '-100.0' is the ignored label -100 too
    (it was range-checked: 'label -100 is out of range' beside --ignore-label
    -100)."""
    rng = np.random.default_rng(4)
    z = rng.normal(size=(10, 3))
    y = rng.integers(0, 3, size=10)
    np.save(tmp_path / "z.npy", z)
    cells = [f"{v}.0" for v in y]
    cells[3] = cells[7] = text
    (tmp_path / "y.txt").write_text("\n".join(cells) + "\n")
    out = run_json([str(tmp_path / "z.npy"), str(tmp_path / "y.txt"),
                    "--ignore-label", "-100"])  # fmt: skip
    assert out["n_ignored"] == 2
    keep = np.ones(10, bool)
    keep[[3, 7]] = False
    want = float(al.cross_entropy(z[keep], y[keep]))
    assert out["losses"]["cross_entropy"] == pytest.approx(want, rel=1e-14)


def test_ignore_label_with_bootstrap_is_chunk_invariant(data, ignored):
    root, _ = ignored
    args = [
        str(data / "z.npy"),
        str(root / "y_ign.npy"),
        *BOOT,
        "--ignore-label",
        "-100",
    ]
    a = run_json([*args, "--chunk-size", "7"])
    b = run_json([*args, "--chunk-size", "64"])
    assert a["intervals"] == b["intervals"]


# --------------------------------------------------------------------------- #
# --dask
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def cluster():
    pytest.importorskip("dask.array")
    pytest.importorskip("distributed")
    from arrayloss.cli._dask_eval import local_cluster

    with local_cluster(2) as local:
        yield local.scheduler_address


@pytest.mark.slow  # a cluster of 2 processes: ~10 s on 2 busy cores
def test_dask_gives_the_same_intervals_and_ignored_count(data, ignored, cluster):
    root, n_drop = ignored
    args = [*BOOT, "--ignore-label", "-100", "--metric", "accuracy"]
    args += ["--metric", "ece", "--metric", "ece:strategy=quantile"]
    shards = [str(data / "zs"), str(data / "ys"), "--weights", str(data / "ws")]
    whole = [str(data / "z.npy"), str(data / "y.npy"), "--weights", str(data / "w.npy")]
    stream = run_json([*whole, *BOOT, *REPORT, "--per-class", "--chunk-size", "7"])
    on_dask = run_json(
        [
            *shards,
            *BOOT,
            *REPORT,
            "--per-class",
            "--dask",
            cluster,
            "--chunk-size",
            "50",
        ]
    )
    assert "per_class" in on_dask["intervals"]
    assert on_dask["intervals"] == stream["intervals"]
    assert on_dask["losses"] == stream["losses"]
    ign = [str(data / "z.npy"), str(root / "y_ign.npy"), *args]
    a = run_json([*ign, "--chunk-size", "7"])
    b = run_json([*ign, "--dask", cluster, "--chunk-size", "40"])
    assert b["n_ignored"] == a["n_ignored"] == n_drop
    assert b["intervals"] == a["intervals"]

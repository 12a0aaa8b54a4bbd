"""The eval report: MCE and RMSCE, the per-class report, the confusion matrix, the
reliability diagram (``--per-class``, ``--confusion``, ``--plot``) and the exact
grouped sums under them.

Library results are checked against scikit-learn and direct NumPy computations;
the command's against the library, identical at every ``--chunk-size`` (the Dask
run is in ``test_eval_dask.py``, which has the cluster).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import sys
from fractions import Fraction
from functools import partial

import numpy as np
import pytest
from conftest import eval_json, one_error_line
from conftest import invoke_eval as invoke
from hypothesis import given, settings
from hypothesis import strategies as st

from arrayloss import metrics as M
from arrayloss._exact_groups import ExactVector, group_sums

N, C = 160, 5


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def data():
    """Logits of 5 classes: class 4 never a label, class 3 never predicted."""
    rng = np.random.default_rng(20261202)
    y = rng.integers(0, 4, size=N)
    z = rng.normal(0.0, 1.5, size=(N, C))
    z[np.arange(N), y] += 1.2
    z[:, 3] -= 30.0
    w = rng.random(N)
    w[::11] = 0.0
    return z, y, w


@pytest.fixture(scope="module")
def files(tmp_path_factory, data):
    d = tmp_path_factory.mktemp("report")
    z, y, w = data
    np.save(d / "z.npy", z)
    np.save(d / "y.npy", y)
    np.save(d / "w.npy", w)
    return d


# --------------------------------------------------------------------------- #
# MCE and RMSCE
# --------------------------------------------------------------------------- #


def direct_calibration(p, y, w, n_bins, strategy):
    """ECE, MCE and RMSCE by the textbook formulas, in NumPy."""
    conf, hit = p.max(axis=1), (p.argmax(axis=1) == y).astype(float)
    w = np.ones(len(y)) if w is None else w
    if strategy == "uniform":
        edges = np.arange(1, n_bins) / n_bins
    else:
        # the weighted inverted-CDF quantile, by brute force: the smallest
        # confidence c with sum(w[conf <= c]) >= q * sum(w)
        below = np.array([w[conf <= c].sum() for c in conf])
        edges = [conf[below >= b / n_bins * w.sum()].min() for b in range(1, n_bins)]
    bins = np.searchsorted(edges, conf, side="left")
    W = np.bincount(bins, weights=w, minlength=n_bins)
    gap = np.bincount(bins, weights=w * (hit - conf), minlength=n_bins)
    full = W > 0
    mean_gap = gap[full] / W[full]
    total = W.sum()
    ece = np.sum(np.abs(gap)) / total
    return ece, np.max(np.abs(mean_gap)), np.sqrt(np.sum(W[full] * mean_gap**2) / total)


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
@pytest.mark.parametrize("weighted", [False, True])
def test_mce_rmsce_against_numpy(data, strategy, weighted):
    z, y, w = data
    w = w if weighted else None
    p = softmax(z)
    ece, mce, rmsce = direct_calibration(p, y, w, 10, strategy)
    kw = {"n_bins": 10, "strategy": strategy, "weights": w}
    assert float(M.ece(z, y, **kw)) == pytest.approx(ece, rel=1e-12)
    assert float(M.mce(z, y, **kw)) == pytest.approx(mce, rel=1e-12)
    assert float(M.rmsce(z, y, **kw)) == pytest.approx(rmsce, rel=1e-12)
    assert float(M.mce(p, y, input="probs", **kw)) == pytest.approx(mce, rel=1e-12)
    for cls, ref in ((M.MCE, mce), (M.RMSCE, rmsce)):
        tally = cls(n_bins=10, strategy=strategy).update(z, y, weights=w)
        assert tally.result() == pytest.approx(ref, rel=1e-12)


@pytest.mark.parametrize("cls", [M.MCE, M.RMSCE])
def test_mce_rmsce_tallies_are_chunk_independent(data, cls):
    z, y, w = data
    results = set()
    for step in (1, 7, N):
        tally = cls(n_bins=12)
        for a in range(0, N, step):
            tally = tally.update(
                z[a : a + step], y[a : a + step], weights=w[a : a + step]
            )
        results.add(tally.result())
    assert len(results) == 1
    with pytest.raises(TypeError, match="cannot merge"):
        M.MCE().merge(M.ECE())


@settings(max_examples=25)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 60),
    n_bins=st.integers(1, 20),
    strategy=st.sampled_from(["uniform", "quantile"]),
)
def test_ece_le_rmsce_le_mce(seed, n, n_bins, strategy):
    """The mean, the quadratic mean and the maximum of the bins' gaps."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 3.0, size=(n, 4))
    y = rng.integers(0, 4, size=n)
    kw = {"n_bins": n_bins, "strategy": strategy}
    ece, rms, mce = (float(f(z, y, **kw)) for f in (M.ece, M.rmsce, M.mce))
    assert ece <= rms * (1 + 1e-12) + 1e-15
    assert rms <= mce * (1 + 1e-12) + 1e-15


# --------------------------------------------------------------------------- #
# The per-class report and the confusion matrix (library)
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("weighted", [False, True])
def test_class_report_equals_sklearn(data, weighted):
    from sklearn.metrics import classification_report, confusion_matrix

    z, y, w = data
    w = w if weighted else None
    pred = z.argmax(axis=1)
    tally = M.ClassReport(C).update(z, y, weights=w)
    got = tally.result()
    # zero_division=0 is the default "warn" without the warning (-W error)
    ref = classification_report(
        y, pred, labels=range(C), output_dict=True, zero_division=0, sample_weight=w
    )
    assert got[str(3)]["precision"] == 0.0  # never predicted: zero division
    assert got[str(4)]["recall"] == 0.0  # never a label: zero division
    assert got["4"]["nll"] is None
    for key in [*map(str, range(C)), "macro avg", "weighted avg"]:
        for field in ("precision", "recall", "f1-score", "support"):
            assert got[key][field] == pytest.approx(ref[key][field], rel=1e-12, abs=0)
            if not weighted and field == "support":
                assert isinstance(got[key][field], int)
    assert got["accuracy"] == pytest.approx(ref["accuracy"], rel=1e-12)
    matrix = tally.confusion()
    expected = confusion_matrix(y, pred, labels=range(C), sample_weight=w)
    if weighted:
        np.testing.assert_allclose(matrix, expected, rtol=1e-13)
    else:
        assert matrix.dtype == np.int64
        np.testing.assert_array_equal(matrix, expected)


@pytest.mark.parametrize("weighted", [False, True])
def test_per_class_nll_and_classwise_ece_direct(data, weighted):
    z, y, w = data
    w = np.ones(N) if not weighted else w
    n_bins = 8
    got = (
        M.ClassReport(C, n_bins).update(z, y, weights=w if weighted else None).result()
    )
    p = softmax(z)
    nll = -np.log(p[np.arange(N), y])
    edges = np.arange(1, n_bins) / n_bins
    eces = []
    for c in range(C):
        mask = y == c
        if w[mask].sum() > 0:
            ref = np.sum(w[mask] * nll[mask]) / np.sum(w[mask])
            assert got[str(c)]["nll"] == pytest.approx(ref, rel=1e-12)
        bins = np.searchsorted(edges, p[:, c], side="left")
        gap = np.bincount(bins, weights=w * (mask - p[:, c]), minlength=n_bins)
        eces.append(np.sum(np.abs(gap)) / w.sum())
        assert got[str(c)]["ece"] == pytest.approx(eces[-1], rel=1e-12, abs=1e-16)
    assert got["classwise_ece"] == pytest.approx(np.mean(eces), rel=1e-12)


def test_class_report_is_exact_under_streaming_and_merging(data):
    z, y, w = data
    for weights in (None, w):
        seen = []
        for step in (1, 7, N):
            tally = M.ClassReport(C, 10)
            for a in range(0, N, step):
                part = slice(a, a + step)
                tally = tally.update(
                    z[part], y[part], weights=None if weights is None else weights[part]
                )
            seen.append((json.dumps(tally.result()), tally.confusion().tolist()))
        half = N // 2
        wa = None if weights is None else weights[:half]
        wb = None if weights is None else weights[half:]
        a = M.ClassReport(C, 10).update(z[:half], y[:half], weights=wa)
        b = M.ClassReport(C, 10).update(z[half:], y[half:], weights=wb)
        seen.append((json.dumps(b.merge(a).result()), a.merge(b).confusion().tolist()))
        assert all(s == seen[0] for s in seen)


def test_update_and_merge_leave_their_inputs_unchanged(data):
    z, y, _ = data
    first = M.ClassReport(C).update(z[:50], y[:50])
    before = json.dumps(first.result())
    second = first.update(z[50:], y[50:])
    first.merge(second)
    assert json.dumps(first.result()) == before
    assert second.count == N
    assert json.dumps(second.result()) == json.dumps(
        M.ClassReport(C).update(z, y).result()
    )
    with pytest.raises(ValueError, match="different settings"):
        M.ClassReport(C).merge(M.ClassReport(C, 3))


def test_owned_adds_and_merges_equal_the_copying_ones(data):
    """The engine's in-place path (``owned=True``) gives the sums of the copying
    one, and never changes the tally merged in."""
    from arrayloss.metrics import _prepare

    z, y, w = data
    for weights in (None, w):
        copied = owned = M.ClassReport(C, 6)
        for a in range(0, N, 13):
            wa = None if weights is None else weights[a : a + 13]
            rows = _prepare(
                "t", z[a : a + 13], y[a : a + 13], wa, axis=-1, input="logits"
            )
            copied = copied._add(rows)
            owned = owned._add(rows, owned=True)
        assert json.dumps(owned.result()) == json.dumps(copied.result())
        other = M.ClassReport(C, 6).update(z[:40], y[:40])
        before = json.dumps(other.result())
        total = M.ClassReport(C, 6).merge(other, owned=True)
        total = total.merge(other, owned=True)
        assert json.dumps(other.result()) == before
        assert total.confusion().tolist() == (2 * other.confusion()).tolist()


@settings(max_examples=30)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 200),
    groups=st.integers(1, 30),
    weighted=st.booleans(),
)
def test_group_sums_are_exact(seed, n, groups, weighted):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, size=n)
    v = rng.normal(size=n) * 10.0 ** rng.integers(-300, 300, size=n)
    v[::5] = 0.0
    w = rng.random(n) * 10.0 ** rng.integers(-300, 5, size=n) if weighted else None
    acc = ExactVector(groups)
    for a in range(0, n, 17):  # in pieces: exact however cut
        acc.add(g[a : a + 17], v[a : a + 17], None if w is None else w[a : a + 17])
    ids, _, _ = group_sums(g, v, w)
    assert list(ids) == sorted(set(ids.tolist()))
    for k in range(groups):
        m = g == k
        terms = [
            Fraction(x) * (1 if w is None else Fraction(u))
            for x, u in zip(v[m], (w if w is not None else v)[m], strict=True)
        ]
        assert acc.fraction(k) == sum(terms, Fraction(0))


# --------------------------------------------------------------------------- #
# The command
# --------------------------------------------------------------------------- #


run_json = partial(eval_json, quiet=True)


REPORT = [
    "--per-class", "--confusion", "--metric", "ece", "--metric", "mce:n_bins=7",
    "--metric", "rmsce:strategy=quantile",
]  # fmt: skip


@pytest.mark.parametrize("weighted", [False, True])
def test_report_is_identical_at_every_chunk_size(files, data, weighted):
    z, y, w = data
    args = [str(files / "z.npy"), str(files / "y.npy"), *REPORT]
    if weighted:
        args += ["--weights", str(files / "w.npy")]
    runs = [run_json([*args, "--chunk-size", str(k)]) for k in (1, 7, N)]
    for out in runs[1:]:
        for key in ("per_class", "confusion", "metrics"):
            assert out[key] == runs[0][key], key
    out = runs[0]
    tally = M.ClassReport(C).update(z, y, weights=w if weighted else None)
    ref = tally.result()
    assert out["metrics"]["classwise_ece"] == ref.pop("classwise_ece")
    ref.pop("accuracy")
    assert out["per_class"] == json.loads(json.dumps(ref))
    assert out["confusion"] == {
        "classes": [str(c) for c in range(C)],
        "matrix": tally.confusion().tolist(),
    }
    wk = w if weighted else None
    assert out["metrics"]["mce:n_bins=7"] == pytest.approx(
        float(M.mce(z, y, n_bins=7, weights=wk)), rel=1e-14
    )


@pytest.mark.parametrize(
    "matrix",
    [
        np.array([[0, 3, 1023], [1024, 2**40, 7]], dtype=np.int64),  # small and not
        np.array([[0.0, 2.5], [1e300, 0.1]]),  # weighted: float64 sums
        np.zeros((0, 0), dtype=np.int64),
    ],
    ids=["counts", "weights", "empty"],
)
def test_count_rows_give_the_text_of_the_nested_lists(matrix):
    """The confusion matrix as `CountRows` (encoded row by row from its array)
    gives the same JSON text as the nested lists it stands for."""
    from arrayloss.cli._render import CountRows, _json_text

    def doc(rows):
        return {"n": 2, "confusion": {"classes": ["a", "b"], "matrix": rows}}

    rows = CountRows(matrix)
    assert rows == matrix.tolist()
    assert len(rows) == matrix.shape[0]
    assert _json_text(doc(rows)) == _json_text(doc(matrix.tolist()))


def test_json_puts_each_row_entry_and_interval_on_one_line(files):
    """JSON at C = 1000 stays readable: each confusion row, per-class entry and
    interval is one compact line of the indented document (which parses to the
    same values as json's own indented text)."""
    args = [str(files / "z.npy"), str(files / "y.npy"), "--per-class", "--confusion"]
    text = invoke([*args, "--bootstrap", "20", "--format", "json"]).stdout
    doc = json.loads(text)
    lines = text.splitlines()
    for row in doc["confusion"]["matrix"]:
        assert sum(ln.strip().rstrip(",") == json.dumps(row) for ln in lines) >= 1
    for name, entry in doc["per_class"].items():
        assert f"{json.dumps(name)}: {json.dumps(entry)}" in text
    for name, entry in doc["intervals"]["per_class"].items():
        assert f"{json.dumps(name)}: {json.dumps(entry)}" in text
    for name, span in doc["intervals"]["metrics"].items():
        assert f"{json.dumps(name)}: {json.dumps(span)}" in text
    n_items = C + len(doc["per_class"]) + len(doc["intervals"]["per_class"])
    assert len(lines) < n_items + 60


def test_tables_and_csv_output(files, tmp_path):
    base = [str(files / "z.npy"), str(files / "y.npy")]
    table = invoke([*base, "--per-class", "--confusion", "--classes", "a,b,c,d,e"])
    lines = table.stdout.splitlines()
    assert any(ln.split()[:1] == ["macro"] for ln in lines)
    assert any(
        ln.startswith("true \\ predicted") and ln.split()[-1] == "e" for ln in lines
    )
    assert "classwise_ece" in table.stdout
    csv_out = invoke([*base, "--per-class", "--confusion", "--format", "csv"]).stdout
    assert "per_class:f1-score,macro avg," in csv_out
    assert "\nconfusion:0,0," in csv_out
    # --per-class before SCORES leaves SCORES a path; FILE must be a table name
    out = run_json(["--per-class", *base])
    assert "per_class" in out
    per = tmp_path / "per.tsv"
    invoke([*base, "--per-class", str(per), "--quiet"])
    header = per.read_text().splitlines()[0]
    assert header == "class\tprecision\trecall\tf1-score\tsupport\tnll\tece"


def test_wide_reports_point_to_the_file(tmp_path):
    """At C = 1000 the terminal shows a line, not a 1000-row table."""
    rng = np.random.default_rng(5)
    n, c = 400, 1000
    z = rng.normal(size=(n, c))
    y = rng.integers(0, c, size=n)
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "y.npy", y)
    base = [str(tmp_path / "z.npy"), str(tmp_path / "y.npy")]
    per = tmp_path / "per.csv"
    out = invoke([*base, "--per-class", str(per), "--confusion", "--quiet"]).stdout
    assert len(out.splitlines()) < 20
    assert f"per-class report (1000 classes): {per}" in out
    assert "confusion matrix (1000 x 1000): too wide" in out
    rows = per.read_text().splitlines()
    assert len(rows) == 1 + c + 2
    assert rows[-1].startswith("weighted avg,")
    out = invoke([*base, "--per-class", "--quiet"]).stdout
    assert "use --per-class FILE.csv or --format json" in out
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".part")]


def test_plot_is_a_readable_png(files, tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib import image

    base = [str(files / "z.npy"), str(files / "y.npy")]
    png = tmp_path / "plot.png"
    out = run_json([*base, "--plot", str(png), "--confusion"])
    assert png.stat().st_size > 0
    pixels = image.imread(str(png))
    assert pixels.ndim == 3
    assert pixels.shape[0] > 300
    assert pixels.shape[1] > 900  # the second panel: the confusion matrix
    diagram = out["reliability"]
    assert diagram["ece"] == out["metrics"]["ece"]  # the same exact sums
    assert sum(diagram["weight"]) == pytest.approx(1.0)


def test_reliability_tally_is_exact_under_streaming(data):
    z, y, w = data
    whole = M.Reliability(10).update(z, y, weights=w)
    parts = [
        M.Reliability(10).update(z[a : a + 7], y[a : a + 7], weights=w[a : a + 7])
        for a in range(0, N, 7)
    ]
    merged = parts[0]
    for part in parts[1:]:
        merged = part.merge(merged)
    assert merged.result() == whole.result()
    assert whole.result()["ece"] == M.ECE(10).update(z, y, weights=w).result()


def test_plot_without_matplotlib(files, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    png = tmp_path / "p.png"
    result = invoke(
        [str(files / "z.npy"), str(files / "y.npy"), "--plot", str(png)], exit_code=2
    )
    assert "pip install 'arrayloss[plot]'" in one_error_line(result)
    assert not png.exists()


def test_bad_data_leaves_no_report_file(files, tmp_path):
    z = np.load(files / "z.npy")
    z[17, 2] = np.nan
    np.save(tmp_path / "bad.npy", z)
    per, png = tmp_path / "per.csv", tmp_path / "p.png"
    args = [str(tmp_path / "bad.npy"), str(files / "y.npy"), "--per-class", str(per)]
    if _has_matplotlib():
        args += ["--plot", str(png)]
    result = invoke(args, exit_code=1)
    assert "row 17" in one_error_line(result)
    assert os.listdir(tmp_path) == ["bad.npy"]


def _has_matplotlib():
    try:
        import matplotlib  # noqa: F401, ICN001
    except ImportError:
        return False
    return True


def test_report_file_that_is_an_input_is_bad_usage(files, tmp_path):
    labels = tmp_path / "y.csv"
    labels.write_text("".join(f"{v}\n" for v in np.load(files / "y.npy")))
    before = labels.read_bytes()
    result = invoke(
        [str(files / "z.npy"), str(labels), f"--per-class={labels}"], exit_code=2
    )
    assert "also an input" in one_error_line(result)
    assert labels.read_bytes() == before


@pytest.mark.parametrize("name", ["report.json", "report.parquet", "report.npy"])
def test_per_class_file_of_another_format_is_bad_usage(files, tmp_path, name):
    """``--per-class=report.json`` wrote a CSV table under a JSON name (and
    ``.parquet``, ``.npy`` alike), which its suffix's readers cannot open: bad
    usage before anything is read, as ``--per-sample`` and ``--plot`` are."""
    result = invoke(
        [str(files / "z.npy"), str(files / "y.npy"), f"--per-class={tmp_path / name}"],
        exit_code=2,
    )
    line = one_error_line(result)
    assert re.search(
        rf"--per-class writes a CSV/TSV table .*{name}' has the suffix", line
    )
    assert not (tmp_path / name).exists()


def test_per_class_tab_file_is_tsv_as_per_sample_writes_it(files, tmp_path):
    """``.tab`` is TSV to the readers and to ``--per-sample``; the per-class table
    was written with commas under it."""
    args = [str(files / "z.npy"), str(files / "y.npy"), "--quiet"]
    invoke(
        [
            *args,
            f"--per-class={tmp_path / 'r.tab'}",
            f"--per-sample={tmp_path / 's.tab'}",
        ]
    )
    invoke([*args, f"--per-class={tmp_path / 'r.tsv'}"])
    table = (tmp_path / "r.tab").read_text()
    assert table == (tmp_path / "r.tsv").read_text()
    assert table.startswith("class\tprecision\trecall\t")
    assert (tmp_path / "s.tab").read_text().split("\n", 1)[0].count("\t") >= 4


def test_per_class_nll_of_probabilities_follows_eps(tmp_path):
    """Default eps: each class's NLL is log_loss of its samples; --eps 0 makes the
    class with a zero true-class probability inf, as it makes nll."""
    from sklearn.metrics import log_loss

    p = np.array(
        [[1.0, 0, 0], [0.2, 0.3, 0.5], [0, 1, 0], [0.5, 0.5, 0], [0, 0.4, 0.6]]
    )
    y = np.array([1, 2, 1, 0, 1])
    np.save(tmp_path / "p.npy", p)
    np.save(tmp_path / "y.npy", y)
    args = [str(tmp_path / "p.npy"), str(tmp_path / "y.npy"), "--input", "probs"]
    clipped = invoke([*args, "--per-class", "--format", "json"])
    assert "clipping 1 true-class probabilities" in clipped.stderr
    out = json.loads(clipped.stdout)
    for c in range(3):
        ref = log_loss(y[y == c], p[y == c], labels=range(3))
        assert out["per_class"][str(c)]["nll"] == pytest.approx(ref, rel=1e-12)
    zero = invoke([*args, "--per-class", "--eps", "0", "--format", "json"])
    doc = json.loads(zero.stdout)
    assert doc["per_class"]["1"]["nll"] == "inf"
    assert doc["per_class"]["2"]["nll"] == pytest.approx(-np.log(0.5))
    assert doc["metrics"]["nll"] == "inf"


@settings(max_examples=15)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 80),
    cut=st.floats(0.0, 1.0),
    weighted=st.booleans(),
    input=st.sampled_from(["logits", "probs"]),
)
def test_class_report_does_not_depend_on_the_cut(seed, n, cut, weighted, input):
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 2.0, size=(n, 4))
    if input == "probs":
        z = softmax(z)
    y = rng.integers(0, 4, size=n)
    w = rng.random(n) if weighted else None
    k = int(cut * n)
    whole = M.ClassReport(4, 6).update(z, y, weights=w, input=input)
    parts = M.ClassReport(4, 6)
    for part in (slice(0, k), slice(k, n)):
        parts = parts.update(
            z[part], y[part], weights=None if w is None else w[part], input=input
        )
    assert json.dumps(parts.result()) == json.dumps(whole.result())
    np.testing.assert_array_equal(parts.confusion(), whole.confusion())


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 120),
    cuts=st.lists(st.integers(0, 120), max_size=4),
    weighted=st.booleans(),
    input=st.sampled_from(["logits", "probs"]),
)
def test_report_without_the_matrix_equals_the_one_with_it(
    seed, n, cuts, weighted, input
):
    """``matrix=False`` (``--per-class`` alone: 3 C sums, no C x C matrix) gives
    the report of the confusion matrix bit for bit, however the rows are cut and
    merged, and has no `confusion`."""
    rng = np.random.default_rng(seed)
    c = 6
    z = rng.normal(0.0, 2.0, size=(n, c))
    if input == "probs":
        z = softmax(z)
    y = rng.integers(0, c, size=n)
    w = None
    if weighted:
        w = rng.random(n) * 10.0 ** rng.integers(-8, 8, size=n)
        w[::4] = 0.0
    whole = M.ClassReport(c, 5).update(z, y, weights=w, input=input)
    bounds = [0, *sorted(min(k, n) for k in cuts), n]
    parts = []
    for a, b in itertools.pairwise(bounds):
        wa = None if w is None else w[a:b]
        part = M.ClassReport(c, 5, matrix=False)
        parts.append(part.update(z[a:b], y[a:b], weights=wa, input=input))
    streamed = M.ClassReport(c, 5, matrix=False)
    for a, b in itertools.pairwise(bounds):
        wa = None if w is None else w[a:b]
        streamed = streamed.update(z[a:b], y[a:b], weights=wa, input=input)
    merged = parts[-1]
    for part in reversed(parts[:-1]):
        merged = merged.merge(part)
    if weighted and not w.any():
        return  # no weight: no report either way
    want = json.dumps(whole.result())
    assert json.dumps(streamed.result()) == want
    assert json.dumps(merged.result()) == want
    with pytest.raises(ValueError, match="no confusion matrix"):
        streamed.confusion()
    with pytest.raises(ValueError, match="different settings"):
        whole.merge(streamed)


def test_report_without_the_matrix_equals_sklearn_at_many_classes():
    """1,500 classes, weighted: ``matrix=False`` against
    ``classification_report`` (and never a C x C array)."""
    from sklearn.metrics import classification_report

    rng = np.random.default_rng(5)
    c, n = 1500, 4000
    y = rng.integers(0, c, size=n)
    z = rng.normal(size=(n, c)).astype(np.float32)
    z[np.arange(n), y] += 3.0
    w = rng.random(n)
    got = M.ClassReport(c, matrix=False).update(z, y, weights=w).result()
    assert got == M.ClassReport(c).update(z, y, weights=w).result()
    ref = classification_report(
        y, z.argmax(axis=1), labels=range(c), output_dict=True, zero_division=0,
        sample_weight=w,
    )  # fmt: skip
    for key in ("0", "1499", "macro avg", "weighted avg"):
        for field in ("precision", "recall", "f1-score", "support"):
            assert got[key][field] == pytest.approx(ref[key][field], rel=1e-12)


@pytest.mark.parametrize("weighted", [False, True])
def test_per_class_alone_is_the_report_with_the_matrix(files, weighted):
    """The command's --per-class alone (no matrix) and with --confusion: the same
    per-class report and metrics at every chunk size, and its table too."""
    args = [str(files / "z.npy"), str(files / "y.npy"), "--metric", "ece"]
    if weighted:
        args += ["--weights", str(files / "w.npy")]
    want = run_json([*args, "--per-class", "--confusion"])
    for k in (1, 7, N):
        out = run_json([*args, "--per-class", "--chunk-size", str(k)])
        assert "confusion" not in out
        assert out["per_class"] == want["per_class"]
        assert out["metrics"] == want["metrics"]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.floats(min_value=0.0, max_value=1e300, allow_subnormal=True),
        min_size=0,
        max_size=20,
    ),
    st.integers(0, 2**70),
)
def test_float_sum_is_exact(values: list[float], factor: int) -> None:
    """The report's exact float sums (macro and weighted averages) are the
    exact sums of the floats, as integers over ``2**-1074``."""
    from arrayloss._classwise import _FLOAT_BITS, _float_sum

    scale = Fraction(2) ** _FLOAT_BITS
    assert _float_sum(values) == sum(map(Fraction, values), Fraction(0)) * scale
    factors = [factor + i for i in range(len(values))]
    weighted = sum(
        (Fraction(v) * f for v, f in zip(values, factors, strict=True)), Fraction(0)
    )
    assert _float_sum(values, factors) == weighted * scale


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("spread", [1.0, 30.0, 400.0])
def test_scaled_softmax_matches_probabilities(dtype: type, spread: float) -> None:
    """Logits take a shortcut (the softmax's division by ``s 2**-60``): the
    report is that of the same probabilities handed over as ``probs``, bit for
    bit, tiny and subnormal probabilities included (a wide spread of logits)."""
    from arrayloss._classwise import ClassReport

    rng = np.random.default_rng(7)
    z = (rng.normal(0.0, spread, (300, 11))).astype(dtype)
    y = rng.integers(0, 11, 300)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1)[:, None]  # as the batch's `probs`
    assert spread == 1.0 or (p < 2.0**-36).any()  # q(p) rounds some
    for n_bins in (1, 15, 300):
        got = ClassReport(11, n_bins).update(z, y).result()
        want = ClassReport(11, n_bins).update(p, y, input="probs").result()
        for name in map(str, range(11)):
            assert got[name]["ece"] == want[name]["ece"], (n_bins, name)
        assert got["classwise_ece"] == want["classwise_ece"]


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    rows=st.integers(1, 700),
    n_bins=st.sampled_from([1, 3, 15]),
    spread=st.sampled_from([0.5, 3.0, 40.0]),
)
def test_calibration_sums_by_either_path_are_exact(seed, rows, n_bins, spread):
    """The bin sums of ``q(p) = rint(p 2**60)`` of float32 probabilities, by the
    float64 column sums of the entries above ``2**36`` (the others one by one) or
    by the 30-bit halves of every entry: both the exact integer sums, computed
    here in Python integers (tiny, zero and above-edge probabilities included)."""
    from arrayloss import _classwise as CW

    c = 5
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, spread, (rows, c)).astype(np.float32)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1)[:, None]
    tiny = rng.random(p.shape) < 0.02  # below 2**-24: rounded one by one
    p[tiny] = (10.0 ** rng.uniform(-44, -8, tiny.sum())).astype(np.float32)
    p[rng.random(p.shape) < 0.005] = 0.0  # zeros count among the tiny ones
    q = p * np.float32(2.0**60)
    edges = np.asarray([b / n_bins for b in range(1, n_bins)], np.float32)
    scaled = edges * np.float32(2.0**60)
    want = [0] * (c * n_bins)
    for i in range(rows):
        for j in range(c):
            b = int(np.searchsorted(edges, p[i, j], side="left"))
            want[j * n_bins + b] += int(np.rint(np.float64(q[i, j])))
    for skip in (0, 1):  # the column sums when they may, then the halves
        state = CW._State(c, n_bins, True)
        state.dense_skip = skip
        CW._add_quantized_sums(state, q.copy(), scaled, c, n_bins)
        tiny = np.count_nonzero(q < 2.0**36)
        sparse = skip == 0 and tiny <= q.size // 32  # else the halves
        assert state.dense_skip == (0 if sparse or skip else CW._DENSE_SKIP)
        hi = state.pending["psum_hi"].tolist()
        lo = state.pending["psum_lo"].tolist()
        assert [(h << 30) + v for h, v in zip(hi, lo, strict=True)] == want


def test_class_names_cannot_drive_the_terminal(files, tmp_path):
    """Class names from a --classes file went into the per-class and confusion
    tables as they were: an escape sequence (``\\x1b[2J`` clears the screen)
    reached the terminal and the columns lost their alignment.  The tables now
    escape control characters, as the error messages do; the CSV and JSON keep
    the names as given."""
    z, y = str(files / "z.npy"), str(files / "y.npy")
    (tmp_path / "names.txt").write_text(
        "cat\n\x1b[2Jdog\nemu\u202e\n" + "".join(f"c{i}\n" for i in range(3, C))
    )
    args = [
        z,
        y,
        "--classes",
        str(tmp_path / "names.txt"),
        "--per-class",
        "--confusion",
    ]
    table = invoke(args).stdout
    assert "\x1b" not in table
    assert "\u202e" not in table
    assert "\\x1b[2Jdog" in table
    assert "emu\\u202e" in table
    out = json.loads(invoke([*args, "--format", "json"]).stdout)
    assert out["confusion"]["classes"][1] == "\x1b[2Jdog"

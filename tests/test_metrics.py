"""arrayloss.metrics: agreement with scikit-learn, ECE against its formula, every
backend, the streaming tallies against the in-memory functions, and validation."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_allclose, to_numpy

from arrayloss import metrics as M

N, C = 300, 7


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture
def data(rng):
    z = rng.normal(0.0, 2.0, size=(N, C))
    y = rng.integers(0, C, size=N)
    w = rng.random(N)
    w[::17] = 0.0  # zero weights remove samples
    return z, y, w


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


# --------------------------------------------------------------------------- #
# scikit-learn
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("weighted", [False, True])
def test_match_sklearn(data, weighted):
    skm = pytest.importorskip("sklearn.metrics")
    z, y, w = data
    sw = w if weighted else None
    kw = {"weights": sw}
    p = _softmax(z)
    labels = list(range(C))
    want = {
        "accuracy": skm.accuracy_score(y, z.argmax(1), sample_weight=sw),
        "nll": skm.log_loss(y, p, labels=labels, sample_weight=sw),
        "brier": skm.brier_score_loss(
            y, p, labels=labels, sample_weight=sw, scale_by_half=False
        ),
    }
    got = {
        "accuracy": float(M.accuracy(z, y, **kw)),
        "nll": float(M.nll(z, y, **kw)),
        "brier": float(M.brier(z, y, **kw)),
    }
    for name in want:
        assert _rel(got[name], want[name]) < 1e-12, name
    for k in range(1, C):
        sk = skm.top_k_accuracy_score(y, z, k=k, labels=labels, sample_weight=sw)
        assert _rel(float(M.top_k_accuracy(z, y, k=k, **kw)), sk) < 1e-12, k


def test_tie_rules_match_sklearn(rng):
    """Heavily tied scores: top-k gives ties to the higher index, accuracy to the
    lower, exactly as top_k_accuracy_score and accuracy_score(argmax)."""
    skm = pytest.importorskip("sklearn.metrics")
    z = rng.integers(0, 3, size=(400, 6)).astype(float)
    y = rng.integers(0, 6, size=400)
    for k in range(1, 6):
        sk = skm.top_k_accuracy_score(y, z, k=k, labels=range(6))
        assert float(M.top_k_accuracy(z, y, k=k)) == sk
    assert float(M.accuracy(z, y)) == skm.accuracy_score(y, z.argmax(1))
    # the two rules differ on tied rows, as documented
    tie = np.array([[1.0, 1.0, 0.0]])
    assert float(M.accuracy(tie, np.array([0]))) == 1.0
    assert float(M.top_k_accuracy(tie, np.array([0]), k=1)) == 0.0
    assert float(M.top_k_accuracy(tie, np.array([1]), k=1)) == 1.0


def test_docstring_conventions():
    # brier is never halved, also for two classes; k >= C gives 1
    p = np.array([[0.8, 0.2], [0.3, 0.7]])
    y = np.array([0, 0])
    assert float(M.brier(p, y, input="probs")) == pytest.approx((0.08 + 0.98) / 2)
    assert float(M.top_k_accuracy(p, y, k=2, input="probs")) == 1.0


@pytest.mark.parametrize("input", ["probs", "logprobs"])
def test_inputs_agree(data, input):
    z, y, w = data
    p = _softmax(z)
    s = p if input == "probs" else np.log(p)
    for f in (M.accuracy, M.nll, M.brier, M.ece):
        a = float(f(z, y, weights=w))
        b = float(f(s, y, weights=w, input=input))
        assert _rel(b, a) < 1e-12, f.__name__
    b = float(M.top_k_accuracy(s, y, k=3, input=input))
    assert b == float(M.top_k_accuracy(z, y, k=3))


def test_zero_probability_is_clipped_to_eps():
    """A zero probability is clipped to the dtype's machine epsilon (as
    scikit-learn's log_loss), or with eps=0 gives inf."""
    p = np.array([[1.0, 0.0], [0.0, 1.0]])
    y = np.array([1, 1])
    want = (-np.log(np.finfo(np.float64).eps) + 0.0) / 2
    assert float(M.nll(p, y, input="probs")) == pytest.approx(want)
    lp = np.array([[0.0, -np.inf], [-np.inf, 0.0]])
    assert float(M.nll(lp, y, input="logprobs")) == pytest.approx(want)
    assert float(M.nll(p, y, input="probs", eps=0)) == np.inf


# --------------------------------------------------------------------------- #
# ECE
# --------------------------------------------------------------------------- #


def _ece_direct(conf, hit, w, edges):
    """Sum over bins of |sum w (hit - conf)| / sum w, bins (e_b, e_b+1]."""
    total, out = w.sum(), 0.0
    lo = -np.inf
    for hi in [*edges, np.inf]:
        inside = (conf > lo) & (conf <= hi)
        out += abs(np.sum(w[inside] * (hit[inside] - conf[inside])))
        lo = hi
    return out / total


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n_bins", [1, 10, 15])
def test_ece_uniform_formula(data, weighted, n_bins):
    z, y, w = data
    w = w if weighted else np.ones(N)
    p = _softmax(z)
    conf, hit = p.max(1), (p.argmax(1) == y).astype(float)
    want = _ece_direct(conf, hit, w, [b / n_bins for b in range(1, n_bins)])
    got = float(M.ece(z, y, n_bins=n_bins, weights=w if weighted else None))
    assert _rel(got, want) < 1e-12


@pytest.mark.parametrize("weighted", [False, True])
def test_ece_quantile_formula(data, weighted):
    z, y, w = data
    p = _softmax(z)
    conf, hit = p.max(1), (p.argmax(1) == y).astype(float)
    q = [b / 10 for b in range(1, 10)]
    if weighted:
        edges = np.quantile(conf, q, method="inverted_cdf", weights=w)
    else:
        srt = np.sort(conf)  # the ceil(b n / B)-th smallest
        edges = [srt[-(-b * N // 10) - 1] for b in range(1, 10)]
        np.testing.assert_array_equal(
            edges, np.quantile(conf, q, method="inverted_cdf")
        )
    want = _ece_direct(conf, hit, w if weighted else np.ones(N), edges)
    got = float(
        M.ece(z, y, n_bins=10, strategy="quantile", weights=w if weighted else None)
    )
    assert _rel(got, want) < 1e-12


def test_ece_quantile_ties_and_order(rng):
    """Tied confidences share a bin, so the result ignores the sample order."""
    conf = rng.choice([0.5, 0.6, 0.9, 1.0], size=200)
    p = np.stack([conf, 1 - conf], axis=1)
    y = rng.integers(0, 2, size=200)
    a = float(M.ece(p, y, n_bins=7, strategy="quantile", input="probs"))
    perm = rng.permutation(200)
    b = float(M.ece(p[perm], y[perm], n_bins=7, strategy="quantile", input="probs"))
    assert a == pytest.approx(b, rel=1e-14)
    hit = (p.argmax(1) == y).astype(float)
    edges = np.quantile(conf, [b / 7 for b in range(1, 7)], method="inverted_cdf")
    assert a == pytest.approx(_ece_direct(conf, hit, np.ones(200), edges), rel=1e-12)


def test_ece_example():
    p = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.8, 0.2]])
    y = np.array([0, 1, 1, 0])
    # bins of width 0.2: {0.6}: |0 - 0.6|, {0.7, 0.8}: |2 - 1.5|, {0.9}: |1 - 0.9|
    assert float(M.ece(p, y, n_bins=5, input="probs")) == pytest.approx(1.2 / 4)


# --------------------------------------------------------------------------- #
# Backends
# --------------------------------------------------------------------------- #

_ALL = [
    ("accuracy", {}),
    ("top_k_accuracy", {"k": 3}),
    ("nll", {}),
    ("brier", {}),
    ("ece", {}),
    ("ece", {"strategy": "quantile", "n_bins": 8}),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_backend(backend, data, dtype):
    """Each metric on each backend equals NumPy float64 on the same numbers, as a
    0-d array of the backend in the scores' dtype."""
    z, y, w = data
    z = z.astype(dtype)
    module = type(backend.asarray(z)).__module__.split(".")[0]
    for name, opts in _ALL if dtype == np.float64 else _ALL[2:5]:
        f = getattr(M, name)
        want = float(f(z.astype(np.float64), y, weights=w, **opts))
        got = f(
            backend.asarray(z), backend.asarray(y),
            weights=backend.asarray(w, dtype), **opts,
        )  # fmt: skip
        assert type(got).__module__.split(".")[0] == module
        out = to_numpy(got)
        assert out.shape == ()
        assert out.dtype == dtype
        if dtype == np.float64:
            assert_allclose(got, want, rtol=1e-12)
        else:
            assert_allclose(got, want, rtol=2e-5, atol=1e-6)


def test_axis_and_batch_shape(data):
    z, y, w = data
    z3 = np.moveaxis(z.reshape(15, 20, C), -1, 0)  # classes first, batch (15, 20)
    y2, w2 = y.reshape(15, 20), w.reshape(15, 20)
    for f in (M.accuracy, M.nll, M.brier, M.ece):
        assert float(f(z3, y2, weights=w2, axis=0)) == pytest.approx(
            float(f(z, y, weights=w)), rel=1e-13
        )


def test_integer_scores_promote(data):
    z, y, _ = data
    zi = np.round(z * 3).astype(np.int64)
    assert to_numpy(M.nll(zi, y)).dtype == np.float64
    assert float(M.nll(zi, y)) == pytest.approx(
        float(M.nll(zi.astype(float), y)), rel=1e-14
    )


# --------------------------------------------------------------------------- #
# Streaming tallies
# --------------------------------------------------------------------------- #

_TALLIES = [
    (M.Accuracy(), M.accuracy, {}),
    (M.TopKAccuracy(3), M.top_k_accuracy, {"k": 3}),
    (M.NLL(), M.nll, {}),
    (M.Brier(), M.brier, {}),
    (M.ECE(), M.ece, {}),
    (M.ECE(12, "quantile"), M.ece, {"n_bins": 12, "strategy": "quantile"}),
]


@pytest.mark.parametrize("chunk", [1, 7, 1000, N])
@pytest.mark.parametrize("weighted", [False, True])
def test_streaming_equals_in_memory(data, chunk, weighted):
    z, y, w = data
    w = w if weighted else None
    for empty, f, opts in _TALLIES:
        tally = empty
        for i in range(0, N, chunk):
            part = None if w is None else w[i : i + chunk]
            tally = tally.update(z[i : i + chunk], y[i : i + chunk], weights=part)
        want = float(f(z, y, weights=w, **opts))
        assert _rel(tally.result(), want) < 1e-12, (type(empty).__name__, chunk)
        assert tally.count == N


def test_merge_is_exact_and_order_free(data):
    z, y, w = data
    for empty, _, _ in _TALLIES:
        parts = [
            empty.update(z[i : i + 50], y[i : i + 50], weights=w[i : i + 50])
            for i in range(0, N, 50)
        ]
        forward = parts[0]
        for p in parts[1:]:
            forward = forward.merge(p)
        backward = parts[-1]
        for p in reversed(parts[:-1]):
            backward = p.merge(backward)
        assert forward.result() == backward.result()
        assert forward.merge(empty).result() == forward.result()


def test_merge_mismatch():
    with pytest.raises(ValueError, match="different settings"):
        M.TopKAccuracy(1).merge(M.TopKAccuracy(5))
    with pytest.raises(ValueError, match="different settings"):
        M.ECE(10).merge(M.ECE(15))
    with pytest.raises(TypeError, match="cannot merge a NLL with a Brier"):
        M.NLL().merge(M.Brier())


def test_empty_tally():
    for empty, _, _ in _TALLIES:
        with pytest.raises(ValueError, match="at least one sample"):
            empty.result()


def test_tally_on_torch(data):
    torch = pytest.importorskip("torch")
    z, y, w = data
    t = M.ECE().update(torch.asarray(z), torch.asarray(y), weights=torch.asarray(w))
    assert _rel(t.result(), float(M.ece(z, y, weights=w))) < 1e-12


@pytest.mark.parametrize("name", sorted(M.METRICS))
@pytest.mark.parametrize("weighted", [False, True])
def test_scores_that_require_grad_do_not_warn(data, name, weighted):
    """Monitoring a metric on a model's outputs raised torch's UserWarning
    "torch.asarray: unspecified requires_grad ..." (an error under
    ``-W error``, as in this suite)."""
    torch = pytest.importorskip("torch")
    z, y, w = data
    zt = torch.tensor(z, requires_grad=True)
    kw = {"weights": torch.tensor(w)} if weighted else {}
    always = torch.is_warn_always_enabled()
    torch.set_warn_always(True)  # torch warns once per process otherwise
    try:
        got = getattr(M, name)(zt, torch.tensor(y), **kw)
    finally:
        torch.set_warn_always(always)
    assert isinstance(got, torch.Tensor)
    assert got.shape == ()
    want = getattr(M, name)(z, y, **({"weights": w} if weighted else {}))
    assert _rel(float(got.detach()), float(want)) < 1e-12


# --------------------------------------------------------------------------- #
# Validation
# --------------------------------------------------------------------------- #


def test_validation_messages(data):
    z, y, _ = data
    p = _softmax(z)
    with pytest.raises(ValueError, match="`input` must be one of"):
        M.nll(z, y, input="scores")
    bad = z.copy()
    bad[5, 2] = np.nan
    with pytest.raises(ValueError, match="`scores` row 5 contains NaN"):
        M.accuracy(bad, y)
    bad[5, 2] = np.inf
    with pytest.raises(ValueError, match="row 5 contains an infinite value"):
        M.nll(bad, y)
    with pytest.raises(ValueError, match=r"row 0 probabilities sum to .*, not 1"):
        M.brier(np.abs(z), y, input="probs")
    q = p.copy()
    q[3] = [1.2, -0.2, 0, 0, 0, 0, 0]
    with pytest.raises(ValueError, match=r"row 3 has a negative probability \(-0.2\)"):
        M.brier(q, y, input="probs")
    with pytest.raises(ValueError, match=r"exp\(log-probabilities\) sum to"):
        M.nll(z, y, input="logprobs")
    with pytest.raises(ValueError, match=r"class indices in \[0, 6\]"):
        M.accuracy(z, y + 1)
    with pytest.raises(ValueError, match="`ece` takes integer class indices only"):
        M.ece(z, p)
    with pytest.raises(ValueError, match="`k` must be an integer >= 1"):
        M.top_k_accuracy(z, y, k=0)
    with pytest.raises(ValueError, match="`n_bins` must be an integer >= 1"):
        M.ece(z, y, n_bins=0)
    with pytest.raises(ValueError, match="`strategy` must be one of"):
        M.ECE(strategy="equal")
    with pytest.raises(ValueError, match="at least one sample with non-zero weight"):
        M.nll(z, y, weights=np.zeros(N))
    with pytest.raises(ValueError, match="at least one sample"):
        M.ece(z[:0], y[:0])
    # the calibration errors and the quantile ECE tally say it as the others do
    for metric in (M.ece, M.mce, M.rmsce):
        with pytest.raises(ValueError, match=rf"non-zero weight \(got {N} samples\)"):
            metric(z, y, weights=np.zeros(N))
    with pytest.raises(ValueError, match=r"non-zero weight \(got 0 samples\)"):
        M.ECE(strategy="quantile").result()
    with pytest.raises(TypeError, match="`scores` must be an array"):
        M.nll([[1.0, 2.0]], y)
    # -inf is a valid log-probability (p = 0), +inf is not
    p0 = p.copy()
    p0[0] = [0.5, 0.5, 0, 0, 0, 0, 0]
    with np.errstate(divide="ignore"):
        lp = np.log(p0)
    M.nll(lp, y, input="logprobs")
    lp[1, 0] = np.inf
    with pytest.raises(ValueError, match="row 1 contains an infinite value"):
        M.nll(lp, y, input="logprobs")


# --------------------------------------------------------------------------- #
# Issue 12 defect 2, issue 11 numerics, and the shared front end
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("order", ["weighted_first", "unweighted_first"])
def test_ece_quantile_streams_weighted_and_unweighted_batches(data, order):
    """Defect 2 (issue 12): `ECE(strategy="quantile")` streaming a mix of weighted
    and unweighted batches raised IndexError (weights were concatenated only for
    the weighted ones).  An unweighted batch weighs 1 per sample."""
    z, y, w = data
    half = N // 2
    w_all = np.concatenate([w[:half], np.ones(N - half)])
    parts = [(z[:half], y[:half], w[:half]), (z[half:], y[half:], None)]
    if order == "unweighted_first":
        parts = parts[::-1]
        w_all = np.concatenate([np.ones(N - half), w[:half]])
        z = np.concatenate([z[half:], z[:half]])
        y = np.concatenate([y[half:], y[:half]])
    tally = M.ECE(n_bins=10, strategy="quantile")
    for zb, yb, wb in parts:
        tally = tally.update(zb, yb, weights=wb)
    want = float(M.ece(z, y, n_bins=10, strategy="quantile", weights=w_all))
    assert _rel(tally.result(), want) < 1e-12


@pytest.mark.parametrize(
    "tally",
    [
        M.Accuracy(),
        M.NLL(),
        M.Brier(),
        M.TopKAccuracy(k=2),
        M.ECE(),
        M.ECE(strategy="quantile"),
    ],
)
@pytest.mark.parametrize("scale", [1e308, 5e-324])
def test_streaming_tallies_are_scale_invariant(data, tally, scale):
    """Issue 11: weights of 1e308 overflowed the exact tallies' float64 sums
    (OverflowError from ``Fraction(inf)``) and subnormal weights lost bits; the
    tallies now scale each batch by a power of two, exactly."""
    z, y, _ = data
    ones = np.ones(N)
    ref = tally
    big = tally
    for sl in (slice(0, 100), slice(100, N)):
        ref = ref.update(z[sl], y[sl], weights=ones[sl])
        big = big.update(z[sl], y[sl], weights=ones[sl] * scale)
    assert _rel(big.result(), ref.result()) < 1e-15


def test_tiny_float64_weights_with_float32_scores_stream(data):
    """Issue 11: float32 scores with tiny float64 weights claimed "no non-zero
    weight" in the tallies too (weights went through float32)."""
    z, y, w = data
    z32 = z.astype(np.float32)
    got = M.NLL().update(z32, y, weights=w * 1e-300).result()
    want = M.NLL().update(z32, y, weights=w).result()
    assert _rel(got, want) < 1e-12


def test_metrics_share_the_losses_front_end(data):
    """One front end (issue 12): a metric and a loss reject the same bad batch
    with the same message, from the same code (`arrayloss._api.prepare`)."""
    import arrayloss as al

    z, y, _ = data
    bad_y = y.copy()
    bad_y[3] = C
    msgs = []
    for f in (al.cross_entropy, M.accuracy):
        with pytest.raises(ValueError, match=r"`labels` must be class indices") as e:
            f(z, bad_y)
        msgs.append(str(e.value))
    assert msgs[0] == msgs[1]
    with pytest.raises(ValueError, match="`weights` must be non-negative"):
        M.brier(z, y, weights=-np.ones(N))


@pytest.mark.parametrize(
    "name", ["accuracy", "top_k_accuracy", "nll", "brier", "ece", "mce", "rmsce"]
)
def test_metric_docstrings_are_filled(name):
    doc = getattr(M, name).__doc__
    assert "%(" not in doc
    assert "\n    scores : array of shape (..., C)\n" in doc
    assert "\n    Returns\n    -------\n" in doc
    assert "\n    >>> from arrayloss import metrics\n" in doc
    if name in ("ece", "mce", "rmsce"):
        assert "\n    n_bins : int >= 1\n" in doc


def test_tallies_share_one_update():
    """The report tallies and the metrics' tallies take ``update`` from one home
    (which does not import `arrayloss.metrics` back: tests/test_imports.py)."""
    from arrayloss import _metric_rows

    for cls in (M.Accuracy, M.TopKAccuracy, M.NLL, M.Brier, M.ECE, M.MCE, M.RMSCE):
        assert cls.update is _metric_rows._Batches.update, cls
    for cls in (M.ClassReport, M.Reliability):
        assert cls.update is _metric_rows._Batches.update, cls


_EVERY_TALLY = [
    M.Accuracy(),
    M.TopKAccuracy(2),
    M.NLL(),
    M.Brier(),
    M.ECE(),
    M.ECE(strategy="quantile"),
    M.MCE(),
    M.RMSCE(),
    M.Reliability(),
    M.ClassReport(3),
]


@pytest.mark.parametrize("empty", _EVERY_TALLY, ids=lambda t: type(t).__name__)
def test_tallies_refuse_a_batch_of_another_class_count(rng, empty):
    """A batch of 4 classes after batches of 3 was added to every tally but
    ClassReport (a mean over rows of different problems); every tally now refuses
    it, as ClassReport does, in ``update`` and in ``merge``."""
    z3, z4 = rng.normal(size=(6, 3)), rng.normal(size=(6, 4))
    y = np.array([0, 1, 2, 0, 1, 2])
    three = empty.update(z3, y)
    name = type(empty).__name__
    want = f"a batch of 4 classes in a {name} of 3 classes"
    with pytest.raises(ValueError, match=f"^{want}$"):
        three.update(z4, y)
    with pytest.raises(ValueError, match=r"^a batch of 4 classes"):
        three.update(z4[:0], y[:0])  # an empty batch too: its width is wrong
    if isinstance(empty, M.ClassReport):
        return
    four = empty.update(z4, y)
    with pytest.raises(
        ValueError, match=f"^cannot merge a {name} of 3 classes with one of 4$"
    ):
        three.merge(four)
    assert three.merge(empty).result() == three.result()  # a fresh tally: any count
    assert empty.merge(three).update(z3, y).count == 12

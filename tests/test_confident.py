"""Confident samples: tiny losses and gradients keep their relative accuracy.

A sample whose label holds nearly all the probability has a loss of about
``rest = sum_{j != y} exp(s_j - s_y)``, far below the float's epsilon.  Written as
``log(sum exp(s - max))`` it rounds ``1 + rest`` first and returns ``0`` (or keeps a
digit or two), and the label's gradient ``p_y - 1`` cancels the same way; the
references are 50-digit mpmath values of the exact inputs.
"""

from __future__ import annotations

import numpy as np
import pytest

from arrayloss._registry import LOSSES

mp = pytest.importorskip("mpmath")
mp.mp.dps = 50

# (scores, label): 1 + rest rounds to 1 (rest 8.5e-18), keeps one digit (1.16e-15),
# a label tied with another class, and a confident sample among ordinary ones.
ROWS = [
    ([40.0, 0.0, 0.0], 0),
    ([37.5, -2.0, 3.1], 0),
    ([0.0, 50.0, 12.0, -3.0], 1),
    ([5.0, 5.0, -30.0], 1),
    ([1.0, 2.0, 0.5], 2),
]


def _reference(row: list[float], label: int, smoothing: float = 0.0):
    z = [mp.mpf(v) for v in row]
    m = max(z)
    e = [mp.exp(v - m) for v in z]
    s = mp.fsum(e)
    c = len(z)
    q = [
        (1 - mp.mpf(smoothing)) * (j == label) + mp.mpf(smoothing) / c for j in range(c)
    ]
    lse = m + mp.log(s)
    loss = mp.fsum(qj * (lse - zj) for qj, zj in zip(q, z, strict=True))
    # p_y - 1 = -(sum of the other e) / s: no cancellation in the reference.
    others = mp.fsum(e[:label] + e[label + 1 :])
    grad = [e[j] / s - q[j] if j != label else -others / s for j in range(c)]
    return loss, grad


def _rel(got, want):
    return float(abs(mp.mpf(float(got)) - want) / abs(want))


@pytest.mark.parametrize("name", ["cross_entropy", "keras.categorical_crossentropy"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("row", "label"), ROWS)
def test_cross_entropy_of_a_confident_sample(name, dtype, row, label):
    """The loss and every gradient entry to a few ulp times the conditioning of the
    shifted scores ``s - max s`` (was a loss of 0 and a label gradient of 0 for
    [40, 0, 0], and 4% off for [37.5, -2, 3.1])."""
    z = np.array([row], dtype=dtype)
    rounded = [float(v) for v in z[0]]
    loss, grad = _reference(rounded, label)
    v, g = LOSSES[name].value_and_grad(z, np.array([label]), reduction="none")
    assert v.dtype == dtype
    assert g.dtype == dtype
    u = float(np.finfo(dtype).eps) * max(1.0, max(rounded) - min(rounded))
    assert _rel(v[0], loss) <= 8 * u, (float(v[0]), loss)
    for j, want in enumerate(grad):
        assert _rel(g[0, j], want) <= 8 * u, (j, float(g[0, j]), want)


@pytest.mark.parametrize(("row", "label"), ROWS)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_confident_rows_in_a_batch(row, label, reduction):
    """The fused mean scale and the batch path give the same accuracy."""
    z = np.array([row, [0.1, -0.2] + [0.3] * (len(row) - 2)])
    y = np.array([label, 0])
    _, g = LOSSES["cross_entropy"].value_and_grad(z, y, reduction=reduction)
    _, grad = _reference([float(v) for v in z[0]], label)
    scale = 0.5 if reduction == "mean" else 1.0
    for j, want in enumerate(grad):
        assert _rel(g[0, j], scale * want) <= 8 * np.finfo(np.float64).eps


@pytest.mark.parametrize(("row", "label"), ROWS)
def test_label_smoothing_loss_of_a_confident_sample(row, label):
    """With smoothing the loss is O(1), but its log-sum-exp is the same one."""
    z = np.array([row])
    loss, _ = _reference(row, label, smoothing=0.1)
    v = LOSSES["cross_entropy"].value(
        z, np.array([label]), reduction="none", label_smoothing=0.1
    )
    assert _rel(v[0], loss) <= 8 * np.finfo(np.float64).eps


def test_cross_entropy_confident_on_other_backends(backend):
    """The array-API path (no in-place scatter) gives the same digits."""
    from conftest import to_numpy

    z = backend.asarray(np.array([[40.0, 0.0, 0.0], [37.5, -2.0, 3.1]]), np.float64)
    y = backend.asarray(np.array([0, 0]))
    v, g = LOSSES["cross_entropy"].value_and_grad(z, y, reduction="none")
    v, g = to_numpy(v), to_numpy(g)
    for i, row in enumerate([[40.0, 0.0, 0.0], [37.5, -2.0, 3.1]]):
        loss, grad = _reference(row, 0)
        assert _rel(v[i], loss) <= 8 * np.finfo(np.float64).eps
        assert _rel(g[i, 0], grad[0]) <= 8 * np.finfo(np.float64).eps


def _brier_reference(row: list[float], label: int):
    z = [mp.mpf(v) for v in row]
    m = max(z)
    e = [mp.exp(v - m) for v in z]
    s = mp.fsum(e)
    p = [v / s for v in e]
    d = [pj - (j == label) for j, pj in enumerate(p)]
    dp = mp.fsum(a * b for a, b in zip(d, p, strict=True))
    return [2 * pj * (dj - dp) for pj, dj in zip(p, d, strict=True)]


# The label is the largest score: its probability is within 1e-15 of 1.
CONFIDENT = [row for row in ROWS if max(row[0]) == row[0][row[1]] and row[0][1] != 5.0]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("row", "label"), CONFIDENT)
def test_regularised_expectation_gradient_of_a_confident_sample(dtype, row, label):
    """The chain rule through softmax at the largest probability,
    ``pg (1 - p) - p sum' pg``: the label's gradient was 0 for [40, 0, 0] (the
    reference -2.2e-34), 4% off for [37.5, -2, 3.1]."""
    z = np.array([row], dtype=dtype)
    rounded = [float(v) for v in z[0]]
    grad = _brier_reference(rounded, label)
    _, g = LOSSES["regularised_expectation"].value_and_grad(
        z, np.array([label]), reduction="none"
    )
    assert g.dtype == dtype
    u = float(np.finfo(dtype).eps) * max(1.0, max(rounded) - min(rounded))
    assert _rel(g[0, label], grad[label]) <= 16 * u, (float(g[0, label]), grad[label])
    norm = mp.sqrt(mp.fsum(x * x for x in grad))
    err = mp.sqrt(
        mp.fsum((mp.mpf(float(a)) - b) ** 2 for a, b in zip(g[0], grad, strict=True))
    )
    assert float(err / norm) <= 16 * u


@pytest.mark.parametrize(("row", "label"), ROWS)
def test_metrics_nll_and_brier_of_a_confident_sample(row, label):
    """From logits, `metrics.nll` is the cross-entropy (it was 0 for [40, 0, 0])
    and `metrics.brier` forms ``p_y - 1`` without cancellation (it was a third of
    the exact 1.08e-34 there)."""
    from arrayloss import metrics

    z = np.array([row])
    y = np.array([label])
    loss, _ = _reference(row, label)
    zz = [mp.mpf(v) for v in row]
    e = [mp.exp(v - max(zz)) for v in zz]
    s = mp.fsum(e)
    others = mp.fsum(e[:label] + e[label + 1 :]) / s
    brier = others**2 + mp.fsum((e[j] / s) ** 2 for j in range(len(e)) if j != label)
    u = float(np.finfo(np.float64).eps)
    assert _rel(metrics.nll(z, y), loss) <= 8 * u
    assert _rel(metrics.brier(z, y), brier) <= 16 * u


def test_metrics_nll_confident_on_other_backends(backend):
    """The path without in-place writes (and lazy arrays) gives the same digits."""
    from conftest import to_numpy

    from arrayloss import metrics

    z = backend.asarray(np.array([[40.0, 0.0, 0.0]]), np.float64)
    y = backend.asarray(np.array([0]))
    loss, _ = _reference([40.0, 0.0, 0.0], 0)
    got = float(to_numpy(metrics.nll(z, y)))
    assert _rel(got, loss) <= 8 * np.finfo(np.float64).eps
    got = float(to_numpy(metrics.brier(z, y)))
    assert _rel(got, mp.mpf("1.0829108327072491e-34")) <= 1e-15


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("row", "label"), ROWS)
def test_tanimoto_gradient_of_a_confident_sample(dtype, row, label):
    """``dL/dp_y`` has the closed form ``-(c_y (1 + p_y) + sum' p_j^2) / D^2``
    (``2 N p_y - (D + N)`` cancelled): the gradient was 67% off (normwise) for
    [40, 0, 0] (about 2e-34), 3% for [37.5, -2, 3.1]."""
    z = np.array([row], dtype=dtype)
    rounded = [float(v) for v in z[0]]
    zz = [mp.mpf(v) for v in rounded]
    e = [mp.exp(v - max(zz)) for v in zz]
    s = mp.fsum(e)
    p = [v / s for v in e]
    n = p[label]
    d = mp.fsum(v * v for v in p) + 1 - n
    c_y = mp.fsum(e[:label] + e[label + 1 :]) / s
    others = mp.fsum(p[j] ** 2 for j in range(len(p)) if j != label)
    g = [2 * n * pj / d**2 for pj in p]
    g[label] = -(c_y * (1 + n) + others) / d**2
    gp = mp.fsum(a * b for a, b in zip(g, p, strict=True))
    grad = [pj * (gj - gp) for pj, gj in zip(p, g, strict=True)]
    # the gradient's own cancellation at the label: g_y - <g, p> over the others
    rest = [j for j in range(len(p)) if j != label]
    grad[label] = p[label] * mp.fsum(p[j] * (g[label] - g[j]) for j in rest)
    _, got = LOSSES["tanimoto"].value_and_grad(z, np.array([label]), reduction="none")
    assert got.dtype == dtype
    u = float(np.finfo(dtype).eps) * max(1.0, max(rounded) - min(rounded))
    norm = mp.sqrt(mp.fsum(x * x for x in grad))
    err = mp.sqrt(
        mp.fsum((mp.mpf(float(a)) - b) ** 2 for a, b in zip(got[0], grad, strict=True))
    )
    assert float(err / norm) <= 32 * u, (got[0].tolist(), grad)


# Rows whose gradient is tiny in every entry although no probability is near 1:
# the label is far below two tied classes, or below one class with a tied runner-up.
SATURATED = [
    ([-40.0, 0.0, 0.0], 0),
    ([3.0, 3.0, -50.0], 2),
    ([-40.0, -40.0, 0.0], 0),
    ([20.0, 20.0, -20.0, 5.0], 2),
    ([20.0, 20.0, -20.0, 5.0], 3),
]


def _through_softmax_reference(p, g):
    """``p_j sum_k p_k (g_j - g_k)``: the chain rule without cancellation."""
    return [pj * mp.fsum(pk * (gj - gk) for pk, gk in zip(p, g, strict=True))
            for pj, gj in zip(p, g, strict=True)]  # fmt: skip


def _normwise(got, ref) -> float:
    norm = mp.sqrt(mp.fsum(x * x for x in ref))
    err = mp.sqrt(
        mp.fsum((mp.mpf(float(a)) - b) ** 2 for a, b in zip(got, ref, strict=True))
    )
    return float(err / norm)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("row", "label"), SATURATED + CONFIDENT)
@pytest.mark.parametrize("name", ["regularised_expectation", "tanimoto"])
def test_chain_rule_keeps_every_entry_of_a_tiny_gradient(name, dtype, row, label):
    """The refined chain rule (`_xp.through_softmax_from_g`): for [-40, 0, 0] with
    label 0 the two tied classes' entries were 0 (reference 6.4e-18 each, a 50%
    normwise error), and so were the tied classes' of [3, 3, -50] with label 2."""
    z = np.array([row], dtype=dtype)
    rounded = [float(v) for v in z[0]]
    zz = [mp.mpf(v) for v in rounded]
    e = [mp.exp(v - max(zz)) for v in zz]
    p = [v / mp.fsum(e) for v in e]
    q = [mp.mpf(j == label) for j in range(len(p))]
    if name == "regularised_expectation":
        g = [2 * (pj - qj) for pj, qj in zip(p, q, strict=True)]
    else:
        n = p[label]
        d = mp.fsum(v * v for v in p) + 1 - n
        g = [(2 * n * pj - (d + n) * qj) / d**2 for pj, qj in zip(p, q, strict=True)]
    ref = _through_softmax_reference(p, g)
    _, got = LOSSES[name].value_and_grad(z, np.array([label]), reduction="none")
    assert got.dtype == dtype
    u = float(np.finfo(dtype).eps) * max(1.0, max(rounded) - min(rounded))
    assert _normwise(got[0], ref) <= 32 * u, (got[0].tolist(), ref)

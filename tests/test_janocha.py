"""Janocha & Czarnecki's losses (``_janocha.py``) and the exact KL divergence.

Reference values are those of ``docs/design/refvalues.txt`` (s = [1, 2.5, -0.3, 0.7, 3.1],
y = 2); identities are the one-hot collapses of docs/design/losses.md §1.3.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_allclose, covering, to_numpy

from arrayloss._kinks._svm import KINKS
from arrayloss.losses._cross_entropy import cross_entropy, cross_entropy_and_grad
from arrayloss.losses._janocha import (
    cauchy_schwarz,
    cauchy_schwarz_and_grad,
    chebyshev,
    chebyshev_and_grad,
    expectation,
    expectation_and_grad,
    l1,
    l1_and_grad,
    l2,
    l2_and_grad,
    regularised_expectation,
    regularised_expectation_and_grad,
    squared_log,
    squared_log_and_grad,
    tanimoto,
    tanimoto_and_grad,
)
from arrayloss.losses._kl import kl_divergence, kl_divergence_and_grad

PAIRS = {
    "l1": (l1, l1_and_grad),
    "l2": (l2, l2_and_grad),
    "expectation": (expectation, expectation_and_grad),
    "regularised_expectation": (
        regularised_expectation,
        regularised_expectation_and_grad,
    ),
    "chebyshev": (chebyshev, chebyshev_and_grad),
    "squared_log": (squared_log, squared_log_and_grad),
    "tanimoto": (tanimoto, tanimoto_and_grad),
    "cauchy_schwarz": (cauchy_schwarz, cauchy_schwarz_and_grad),
    "kl_divergence": (kl_divergence, kl_divergence_and_grad),
}
# Bounded for any finite scores (the others overflow where the true value does).
BOUNDED = (
    "expectation",
    "regularised_expectation",
    "chebyshev",
    "tanimoto",
    "cauchy_schwarz",
    "kl_divergence",
    "l1",
)

S = np.array([[1.0, 2.5, -0.3, 0.7, 3.1]])
Y = np.array([2])

# docs/design/refvalues.txt, "Janocha table"
REFERENCE = {
    "l1": (8.6, [1, 1, -1, 1, 1]),
    "l2": (19.04, [2, 5, -2.6, 1.4, 6.2]),
    "expectation": (
        1.96282274,
        [0.002535756806, 0.01136447356, -0.03648618615, 0.001878534845, 0.02070742093],
    ),
    "regularised_expectation": (
        1.374055685,
        [-0.04425789395, -0.05316499111, -0.05108362615, -0.03457356876, 0.18308008],
    ),
    "chebyshev": (
        0.9814113698,
        [
            0.001267878403,
            0.005682236781,
            -0.01824309307,
            0.0009392674225,
            0.01035371047,
        ],
    ),
    "squared_log": (
        15.88186018,
        [0.5436393633, 2.436422593, -7.822251314, 0.4027379458, 4.439451412],
    ),
    "tanimoto": (
        -0.01334772278,
        [
            0.000474071525,
            0.003516160044,
            -0.01341436517,
            0.0003340780736,
            0.009090055531,
        ],
    ),
    "cauchy_schwarz": (
        3.540907439,
        [0.01131286305, 0.2272249286, -0.9991597532, 0.006208630882, 0.7544133307],
    ),
    # KL(e_y || p) = CE, spec "log (CE)" row
    "kl_divergence": (
        3.985205162,
        [0.06820719903, 0.3056834584, -0.9814113698, 0.05052913582, 0.5569915765],
    ),
}


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _batch(rng, n=7, c=5, scale=2.0):
    z = rng.normal(scale=scale, size=(n, c))
    y = rng.integers(0, c, size=n)
    return z, y


def _soft(rng, n=7, c=5):
    t = rng.dirichlet(np.full(c, 0.7), size=n)
    t[0] = 0.0  # one row with zeros in it
    t[0, :2] = [0.25, 0.75]
    return t


def _rtol(dtype) -> float:
    return 1e-9 if dtype == np.float64 else 1e-5


# --------------------------------------------------------------------------- reference


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(REFERENCE))
def test_reference_values(backend, name, dtype):
    value, grad = REFERENCE[name]
    f, fg = PAIRS[name]
    s, y = backend.asarray(S, dtype), backend.asarray(Y)
    v, g = fg(s, y)
    assert to_numpy(v).dtype == dtype
    assert to_numpy(g).dtype == dtype
    assert_allclose(v, value, rtol=_rtol(dtype))
    assert_allclose(f(s, y), value, rtol=_rtol(dtype))
    assert_allclose(g, [grad], rtol=_rtol(dtype))


# --------------------------------------------------------------------------- identities


@pytest.mark.parametrize(("backend", "name"), covering(PAIRS), indirect=["backend"])
def test_index_labels_equal_one_hot(backend, rng, name):
    _, fg = PAIRS[name]
    z, y = _batch(rng)
    onehot = np.eye(z.shape[1])[y]
    v1, g1 = fg(backend.asarray(z), backend.asarray(y), reduction="none")
    v2, g2 = fg(backend.asarray(z), backend.asarray(onehot), reduction="none")
    assert_allclose(v1, to_numpy(v2), rtol=1e-12, atol=1e-15)
    assert_allclose(g1, to_numpy(g2), rtol=1e-12, atol=1e-15)


def test_expectation_is_twice_miss_probability(backend, rng):
    z, y = _batch(rng)
    p_y = _softmax(z)[np.arange(len(y)), y]
    v, g = expectation_and_grad(
        backend.asarray(z), backend.asarray(y), reduction="none"
    )
    assert_allclose(v, 2 * (1 - p_y), rtol=1e-12)
    expected = 2 * p_y[:, None] * (_softmax(z) - np.eye(z.shape[1])[y])
    assert_allclose(g, expected, rtol=1e-12, atol=1e-16)


def test_regularised_expectation_one_hot_form(backend, rng):
    z, y = _batch(rng)
    p = _softmax(z)
    p_y = p[np.arange(len(y)), y]
    v = regularised_expectation(
        backend.asarray(z), backend.asarray(y), reduction="none"
    )
    assert_allclose(v, 1 - 2 * p_y + (p * p).sum(axis=1), rtol=1e-12)


@pytest.mark.parametrize("labels", ["index", "one-hot"])
def test_chebyshev_is_half_expectation_for_one_hot(backend, rng, labels):
    z, y = _batch(rng)
    lab = backend.asarray(y if labels == "index" else np.eye(z.shape[1])[y])
    zz = backend.asarray(z)
    vc, gc = chebyshev_and_grad(zz, lab, reduction="none")
    ve, ge = expectation_and_grad(zz, lab, reduction="none")
    assert_allclose(vc, to_numpy(ve) / 2, rtol=1e-12)
    assert_allclose(gc, to_numpy(ge) / 2, rtol=1e-12, atol=1e-16)
    p_y = _softmax(z)[np.arange(len(y)), y]
    assert_allclose(vc, 1 - p_y, rtol=1e-12)


def test_chebyshev_differs_from_half_expectation_for_soft(rng):
    z, _ = _batch(rng)
    t = _soft(rng)
    vc = chebyshev(z, t, reduction="none")
    ve = expectation(z, t, reduction="none")
    d = np.abs(_softmax(z) - t)
    np.testing.assert_allclose(vc, d.max(axis=1), rtol=1e-12)
    np.testing.assert_allclose(ve, d.sum(axis=1), rtol=1e-12)
    # max |d| <= sum |d| / 2 since sum d = 0; equality is special to one-hot targets
    assert np.all(vc <= ve / 2 + 1e-15)
    assert np.any(vc < ve / 2 - 1e-3)


@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_cauchy_schwarz_is_half_ce_at_double_logits(backend, rng, reduction):
    z, y = _batch(rng)
    zz, yy = backend.asarray(z), backend.asarray(y)
    v, g = cauchy_schwarz_and_grad(zz, yy, reduction=reduction)
    v_ce, g_ce = cross_entropy_and_grad(backend.asarray(2 * z), yy, reduction=reduction)
    assert_allclose(v, to_numpy(v_ce) / 2, rtol=1e-12)
    # d/ds [CE(2s)/2] = (softmax(2s) - e_y), the CE gradient evaluated at 2s
    assert_allclose(g, to_numpy(g_ce), rtol=1e-12, atol=1e-16)


def test_cauchy_schwarz_soft_definition(rng):
    z, _ = _batch(rng)
    t = _soft(rng)
    p = _softmax(z)
    expected = -np.log(
        (p * t).sum(axis=1) / np.linalg.norm(p, axis=1) / np.linalg.norm(t, axis=1)
    )
    v = cauchy_schwarz(z, t, reduction="none")
    np.testing.assert_allclose(v, expected, rtol=1e-10)
    # differs from 1/2 CE(2s) once the target is soft
    half_ce = cross_entropy(2 * z, t, reduction="none") / 2
    assert np.all(np.abs(v - half_ce) > 1e-3)


def test_kl_equals_cross_entropy_for_index_labels(backend, rng):
    z, y = _batch(rng)
    zz, yy = backend.asarray(z), backend.asarray(y)
    v, g = kl_divergence_and_grad(zz, yy, reduction="none")
    v_ce, g_ce = cross_entropy_and_grad(zz, yy, reduction="none")
    assert_allclose(v, to_numpy(v_ce), rtol=1e-12)
    assert_allclose(g, to_numpy(g_ce), rtol=1e-12, atol=1e-16)


def test_kl_soft_is_ce_minus_entropy(backend, rng):
    z, _ = _batch(rng)
    t = _soft(rng)
    zz, tt = backend.asarray(z), backend.asarray(t)
    v, g = kl_divergence_and_grad(zz, tt, reduction="none")
    v_ce, g_ce = cross_entropy_and_grad(zz, tt, reduction="none")
    safe = np.where(t > 0, t, 1.0)
    entropy = -(t * np.log(safe)).sum(axis=1)  # 0 log 0 = 0
    assert_allclose(v, to_numpy(v_ce) - entropy, rtol=1e-10)
    assert_allclose(g, to_numpy(g_ce), rtol=1e-10, atol=1e-15)
    # KL(t || softmax(log t)) = 0 (rows without zeros) and KL >= 0
    v_self = kl_divergence(
        backend.asarray(np.log(t[1:])), backend.asarray(t[1:]), reduction="none"
    )
    assert_allclose(v_self, np.zeros(len(t) - 1), rtol=0, atol=1e-13)
    assert np.all(to_numpy(v) >= 0)


def test_squared_log_is_positive_square_of_ce(backend, rng):
    z, y = _batch(rng)
    t = _soft(rng)
    for lab in (y, t):
        zz, ll = backend.asarray(z), backend.asarray(lab)
        v, g = squared_log_and_grad(zz, ll, reduction="none")
        ce, g_ce = cross_entropy_and_grad(zz, ll, reduction="none")
        ce = to_numpy(ce)
        assert_allclose(v, ce**2, rtol=1e-12)
        assert_allclose(g, 2 * ce[:, None] * to_numpy(g_ce), rtol=1e-11, atol=1e-15)
    # The positive square: improving the label's score lowers the loss.
    v0 = squared_log(np.array([[0.0, 0.0, 0.0]]), np.array([0]))
    v1 = squared_log(np.array([[1.0, 0.0, 0.0]]), np.array([0]))
    assert float(v1) < float(v0)


def test_tanimoto_one_hot_form(backend, rng):
    z, y = _batch(rng)
    p = _softmax(z)
    p_y = p[np.arange(len(y)), y]
    v = tanimoto(backend.asarray(z), backend.asarray(y), reduction="none")
    assert_allclose(v, -p_y / (1 + (p * p).sum(axis=1) - p_y), rtol=1e-12)
    assert np.all((to_numpy(v) > -1) & (to_numpy(v) < 0))


def test_l1_l2_soft_labels(rng):
    z, _ = _batch(rng)
    t = _soft(rng)
    np.testing.assert_allclose(l1(z, t, reduction="none"), np.abs(z - t).sum(axis=1))
    np.testing.assert_allclose(l2(z, t, reduction="none"), ((z - t) ** 2).sum(axis=1))


def test_expectation_soft_kink_subgradient():
    # p = softmax(0, 0) = (1/2, 1/2) = t: every sign is 0, so the subgradient is 0.
    _, g = expectation_and_grad(np.zeros((1, 2)), np.array([[0.5, 0.5]]))
    np.testing.assert_array_equal(g, np.zeros((1, 2)))


# --------------------------------------------------------------------------- gradients


def _central_difference(f, z, labels, h=1e-3):
    """Fourth-order central differences of the per-sample losses."""
    out = np.empty_like(z)
    for j in range(z.shape[1]):
        vals = []
        for k in (2, 1, -1, -2):
            zk = z.copy()
            zk[:, j] += k * h
            vals.append(f(zk, labels, reduction="none"))
        out[:, j] = (-vals[0] + 8 * vals[1] - 8 * vals[2] + vals[3]) / (12 * h)
    return out


@pytest.mark.parametrize("labels", ["index", "soft"])
@pytest.mark.parametrize("name", list(PAIRS))
def test_gradient_matches_finite_differences(rng, name, labels):
    f, fg = PAIRS[name]
    n, c = 40, 6
    z = rng.normal(scale=2.0, size=(n, c))
    lab = rng.integers(0, c, size=n) if labels == "index" else _soft(rng, n, c)
    if name in KINKS:
        keep = KINKS[name](z, lab, {}) > 1e-2
        z, lab = z[keep], lab[keep]
    assert len(z) > 10
    _, g = fg(z, lab, reduction="none")
    np.testing.assert_allclose(g, _central_difference(f, z, lab), rtol=0, atol=1e-8)


# --------------------------------------------------------------------------- plumbing


@pytest.mark.parametrize("name", list(PAIRS))
def test_reductions_and_weights(backend, rng, name):
    f, fg = PAIRS[name]
    z, y = _batch(rng)
    w = rng.uniform(0.5, 2.0, size=len(y))
    w[1] = 0.0
    zz, yy = backend.asarray(z), backend.asarray(y)
    v_none, g_none = fg(zz, yy, reduction="none")
    v_none, g_none = to_numpy(v_none), to_numpy(g_none)
    assert v_none.shape == (len(y),)
    assert g_none.shape == z.shape
    v_sum, g_sum = fg(zz, yy, reduction="sum")
    assert_allclose(v_sum, v_none.sum(), rtol=1e-12)
    assert_allclose(g_sum, g_none, rtol=1e-12)
    v_mean, g_mean = fg(zz, yy, weights=backend.asarray(w))
    assert_allclose(v_mean, (w * v_none).sum() / w.sum(), rtol=1e-12)
    assert_allclose(g_mean, w[:, None] * g_none / w.sum(), rtol=1e-12, atol=1e-17)
    assert_allclose(f(zz, yy), v_none.mean(), rtol=1e-12)


@pytest.mark.parametrize("name", list(PAIRS))
def test_class_axis(backend, rng, name):
    _, fg = PAIRS[name]
    z, y = _batch(rng, n=6)
    z3 = z.reshape(2, 3, 5)
    v, g = fg(backend.asarray(np.moveaxis(z3, -1, 0)), backend.asarray(y.reshape(2, 3)),
              axis=0, reduction="none")  # fmt: skip
    v_ref, g_ref = fg(z, y, reduction="none")
    assert_allclose(v, v_ref.reshape(2, 3), rtol=1e-12)
    assert_allclose(g, np.moveaxis(g_ref.reshape(2, 3, 5), -1, 0), rtol=1e-12)


@pytest.mark.parametrize("labels", ["index", "soft"])
@pytest.mark.parametrize(("backend", "name"), covering(PAIRS), indirect=["backend"])
def test_extreme_logits_float32(backend, rng, name, labels):
    _, fg = PAIRS[name]
    z = rng.choice([-1e4, 0.0, 1e4, 3.0], size=(8, 5))
    lab = rng.integers(0, 5, size=8) if labels == "index" else _soft(rng, 8, 5)
    v, g = fg(backend.asarray(z, np.float32), backend.asarray(lab), reduction="none")
    v, g = to_numpy(v), to_numpy(g)
    assert v.dtype == np.float32
    assert g.dtype == np.float32
    assert np.all(np.isfinite(v))
    assert np.all(np.isfinite(g))


@pytest.mark.parametrize("labels", ["index", "soft"])
@pytest.mark.parametrize(("backend", "name"), covering(BOUNDED), indirect=["backend"])
def test_extreme_logits_float64(backend, rng, name, labels):
    _, fg = PAIRS[name]
    z = rng.choice([-1e300, 0.0, 1e300, 3.0], size=(8, 5))
    lab = rng.integers(0, 5, size=8) if labels == "index" else _soft(rng, 8, 5)
    v, g = fg(backend.asarray(z), backend.asarray(lab), reduction="none")
    assert np.all(np.isfinite(to_numpy(v)))
    assert np.all(np.isfinite(to_numpy(g)))


@pytest.mark.parametrize("name", ["squared_log", "cauchy_schwarz", "kl_divergence"])
def test_confident_samples_keep_relative_accuracy(name):
    # -log p_y ~ 4.1e-18: computed with log1p, not lost to log(1 + tiny) = 0.
    z = np.array([[40.0, 0.0, 0.0, -3.0]])
    ce = 2 * np.exp(-40.0) + np.exp(-43.0)
    expected = {"squared_log": ce**2, "kl_divergence": ce}.get(name)
    if name == "cauchy_schwarz":
        expected = (2 * np.exp(-80.0) + np.exp(-86.0)) / 2
    f, _ = PAIRS[name]
    np.testing.assert_allclose(f(z, np.array([0])), expected, rtol=1e-12)

"""The hinge family (``_hinge.py``): Janocha's one-vs-all hinge, squared and cubed
hinge, Weston–Watkins and Crammer–Singer.

Reference values are those of ``docs/design/refvalues.txt`` and the CS231n examples of
docs/design/losses.md §3.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_allclose, to_numpy

from arrayloss._kinks._svm import KINKS
from arrayloss.losses._hinge import (
    crammer_singer,
    crammer_singer_and_grad,
    cubed_hinge,
    cubed_hinge_and_grad,
    hinge,
    hinge_and_grad,
    multiclass_hinge,
    multiclass_hinge_and_grad,
    squared_hinge,
    squared_hinge_and_grad,
)

PAIRS = {
    "hinge": (hinge, hinge_and_grad),
    "squared_hinge": (squared_hinge, squared_hinge_and_grad),
    "cubed_hinge": (cubed_hinge, cubed_hinge_and_grad),
    "multiclass_hinge": (multiclass_hinge, multiclass_hinge_and_grad),
    "crammer_singer": (crammer_singer, crammer_singer_and_grad),
}
ONE_VS_ALL = ("hinge", "squared_hinge", "cubed_hinge")
INDEX_ONLY = ("multiclass_hinge", "crammer_singer")

S = np.array([[1.0, 2.5, -0.3, 0.7, 3.1]])
Y = np.array([2])

# docs/design/refvalues.txt: Janocha table (m = 1/2 and m = 1) and the SVM family
REFERENCE = [
    ("hinge", 0.5, 10.1, [1, 1, -1, 1, 1]),
    ("squared_hinge", 0.5, 26.29, [3, 6, -1.6, 2.4, 7.2]),
    ("cubed_hinge", 0.5, 79.271, [6.75, 27, -1.92, 4.32, 38.88]),
    ("hinge", 1.0, 12.6, [1, 1, -1, 1, 1]),
    ("squared_hinge", 1.0, 37.64, [4, 7, -2.6, 3.4, 8.2]),  # = Tang's L2-SVM
    ("cubed_hinge", 1.0, 126.906, [12, 36.75, -5.07, 8.67, 50.43]),
    ("multiclass_hinge", 1.0, 12.5, [1, 1, -4, 1, 1]),
    ("crammer_singer", 1.0, 4.4, [0, 0, -1, 0, 1]),
]

CS231N_SCORES = np.array([[3.2, 5.1, -1.7], [1.3, 4.9, 2.0], [2.2, 2.5, -3.1]])
CS231N_LABELS = np.array([0, 1, 2])


def _batch(rng, n=7, c=5, scale=2.0):
    return rng.normal(scale=scale, size=(n, c)), rng.integers(0, c, size=n)


def _soft(rng, n=7, c=5):
    return rng.dirichlet(np.full(c, 0.7), size=n)


def _rtol(dtype) -> float:
    return 1e-9 if dtype == np.float64 else 1e-5


def _one_vs_all_reference(z, t, margin, power):
    yhat = 2 * t - 1
    h = np.maximum(margin - yhat * z, 0)
    return (h**power).sum(axis=1), -power * yhat * h ** (power - 1) * (h > 0)


# --------------------------------------------------------------------------- reference


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("name", "margin", "value", "grad"), REFERENCE)
def test_reference_values(backend, name, margin, value, grad, dtype):
    f, fg = PAIRS[name]
    s, y = backend.asarray(S, dtype), backend.asarray(Y)
    v, g = fg(s, y, margin=margin)
    assert to_numpy(v).dtype == dtype
    assert to_numpy(g).dtype == dtype
    assert_allclose(v, value, rtol=_rtol(dtype))
    assert_allclose(f(s, y, margin=margin), value, rtol=_rtol(dtype))
    assert_allclose(g, [grad], rtol=_rtol(dtype))


def test_defaults_match_the_reference_margins():
    assert float(hinge(S, Y)) == pytest.approx(10.1, rel=1e-12)
    assert float(squared_hinge(S, Y)) == pytest.approx(26.29, rel=1e-12)
    assert float(cubed_hinge(S, Y)) == pytest.approx(79.271, rel=1e-12)
    assert float(multiclass_hinge(S, Y)) == pytest.approx(12.5, rel=1e-12)
    assert float(crammer_singer(S, Y)) == pytest.approx(4.4, rel=1e-12)


def test_tang_l2_svm(backend, rng):
    # Tang (2013): sum_j max(0, 1 - t_j s_j)^2 with t = 2 e_y - 1.
    z, y = _batch(rng)
    t = np.eye(z.shape[1])[y]
    ref_v, ref_g = _one_vs_all_reference(z, t, 1.0, 2)
    v, g = squared_hinge_and_grad(
        backend.asarray(z), backend.asarray(y), margin=1.0, reduction="none"
    )
    assert_allclose(v, ref_v, rtol=1e-12)
    assert_allclose(g, ref_g, rtol=1e-12)
    assert_allclose(squared_hinge(backend.asarray(S), backend.asarray(Y), margin=1.0),
                    37.64, rtol=1e-12)  # fmt: skip


def test_cs231n_example(backend):
    s, y = backend.asarray(CS231N_SCORES), backend.asarray(CS231N_LABELS)
    assert_allclose(multiclass_hinge(s, y, reduction="none"), [2.9, 0.0, 12.9],
                    rtol=1e-12, atol=1e-15)  # fmt: skip
    assert_allclose(multiclass_hinge(s, y), 5.266666666666667, rtol=1e-12)
    notes = multiclass_hinge(
        backend.asarray(np.array([[13.0, -7.0, 11.0]])),
        backend.asarray(np.array([0])),
        margin=10.0,
    )
    assert_allclose(notes, 8.0, rtol=1e-12)


# --------------------------------------------------------------------------- identities


@pytest.mark.parametrize("name", ONE_VS_ALL)
def test_index_labels_equal_one_hot(backend, rng, name):
    _, fg = PAIRS[name]
    z, y = _batch(rng)
    onehot = np.eye(z.shape[1])[y]
    v1, g1 = fg(backend.asarray(z), backend.asarray(y), reduction="none")
    v2, g2 = fg(backend.asarray(z), backend.asarray(onehot), reduction="none")
    assert_allclose(v1, to_numpy(v2), rtol=1e-12)
    assert_allclose(g1, to_numpy(g2), rtol=1e-12)


@pytest.mark.parametrize("margin", [0.0, 0.5, 1.0])
@pytest.mark.parametrize(
    ("name", "power"), [(n, k + 1) for k, n in enumerate(ONE_VS_ALL)]
)
def test_one_vs_all_soft_labels_use_2t_minus_1(backend, rng, name, power, margin):
    _, fg = PAIRS[name]
    z = rng.normal(scale=2.0, size=(7, 5))
    t = _soft(rng)
    ref_v, ref_g = _one_vs_all_reference(z, t, margin, power)
    v, g = fg(backend.asarray(z), backend.asarray(t), margin=margin, reduction="none")
    assert_allclose(v, ref_v, rtol=1e-12)
    assert_allclose(g, ref_g, rtol=1e-12, atol=1e-15)


def test_multiclass_hinge_formula(backend, rng):
    z, y = _batch(rng)
    rows = np.arange(len(y))
    h = np.maximum(z - z[rows, y][:, None] + 1.0, 0)
    h[rows, y] = 0
    g = (h > 0).astype(float)
    g[rows, y] = -g.sum(axis=1)
    v_, g_ = multiclass_hinge_and_grad(
        backend.asarray(z), backend.asarray(y), reduction="none"
    )
    assert_allclose(v_, h.sum(axis=1), rtol=1e-12)
    assert_allclose(g_, g, rtol=1e-12)


def test_weston_watkins_equals_crammer_singer_for_two_classes(backend, rng):
    z, y = _batch(rng, n=9, c=2)
    zz, yy = backend.asarray(z), backend.asarray(y)
    v1, g1 = multiclass_hinge_and_grad(zz, yy, reduction="none")
    v2, g2 = crammer_singer_and_grad(zz, yy, reduction="none")
    assert_allclose(v1, to_numpy(v2), rtol=1e-12)
    assert_allclose(g1, to_numpy(g2), rtol=1e-12)


def test_crammer_singer_tie_picks_lowest_index(backend):
    s = backend.asarray(np.array([[2.0, 0.0, 2.0, 1.0], [0.0, 3.0, 3.0, 3.0]]))
    y = backend.asarray(np.array([3, 0]))
    v, g = crammer_singer_and_grad(s, y, reduction="none")
    assert_allclose(v, [2.0, 4.0], rtol=1e-12)
    assert_allclose(g, [[1, 0, 0, -1], [-1, 1, 0, 0]], rtol=0)


def test_subgradient_is_zero_at_the_kink(backend):
    # every margin term exactly 0: 1[0 > 0] = 0
    s = backend.asarray(np.array([[-0.5, 0.5, -0.5]]))
    y = backend.asarray(np.array([1]))
    for name in ONE_VS_ALL:
        v, g = PAIRS[name][1](s, y, margin=0.5)
        assert_allclose(v, 0.0, rtol=0)
        assert_allclose(g, np.zeros((1, 3)), rtol=0)
    s = backend.asarray(np.array([[0.0, 1.0, 0.0]]))
    for name in INDEX_ONLY:
        v, g = PAIRS[name][1](s, y, margin=1.0)
        assert_allclose(v, 0.0, rtol=0)
        assert_allclose(g, np.zeros((1, 3)), rtol=0)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("name", list(PAIRS))
def test_negative_margin_is_rejected(name):
    f, fg = PAIRS[name]
    with pytest.raises(
        ValueError, match=r"`margin` must be non-negative.*margin=-0\.5"
    ):
        f(S, Y, margin=-0.5)
    with pytest.raises(ValueError, match="`margin`"):
        fg(S, Y, margin=-1.0)
    with pytest.raises(ValueError, match="`margin`"):
        f(S, Y, margin=float("inf"))
    with pytest.raises(TypeError, match="`margin` must be a real number"):
        f(S, Y, margin="1")


@pytest.mark.parametrize("name", INDEX_ONLY)
def test_soft_labels_are_rejected(backend, name):
    f, fg = PAIRS[name]
    t = backend.asarray(np.array([[0.1, 0.2, 0.3, 0.2, 0.2]]))
    s = backend.asarray(S)
    with pytest.raises(ValueError, match=f"`{name}` takes integer class indices only"):
        f(s, t)
    with pytest.raises(ValueError, match="not soft labels"):
        fg(s, t)


def test_crammer_singer_needs_two_classes():
    with pytest.raises(ValueError, match="at least 2 classes"):
        crammer_singer(np.array([[1.0]]), np.array([0]))
    # Weston–Watkins and the one-vs-all losses are defined for one class
    assert float(multiclass_hinge(np.array([[1.0]]), np.array([0]))) == 0.0
    assert float(hinge(np.array([[1.0]]), np.array([0]))) == 0.0


# --------------------------------------------------------------------------- gradients


def _central_difference(f, z, labels, params, h=1e-3):
    """Fourth-order central differences of the per-sample losses."""
    out = np.empty_like(z)
    for j in range(z.shape[1]):
        vals = []
        for k in (2, 1, -1, -2):
            zk = z.copy()
            zk[:, j] += k * h
            vals.append(f(zk, labels, reduction="none", **params))
        out[:, j] = (-vals[0] + 8 * vals[1] - 8 * vals[2] + vals[3]) / (12 * h)
    return out


@pytest.mark.parametrize("margin", [0.0, 0.5, 1.0])
@pytest.mark.parametrize(
    ("name", "labels"),
    [(n, "index") for n in PAIRS] + [(n, "soft") for n in ONE_VS_ALL],
)
def test_gradient_matches_finite_differences(rng, name, margin, labels):
    f, fg = PAIRS[name]
    n, c = 40, 6
    z = rng.normal(scale=2.0, size=(n, c))
    lab = rng.integers(0, c, size=n) if labels == "index" else _soft(rng, n, c)
    params = {"margin": margin}
    keep = KINKS[name](z, lab, params) > 1e-2
    z, lab = z[keep], lab[keep]
    assert len(z) > 10
    _, g = fg(z, lab, reduction="none", **params)
    fd = _central_difference(f, z, lab, params)
    np.testing.assert_allclose(g, fd, rtol=1e-10, atol=1e-8)


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
    assert_allclose(g_mean, w[:, None] * g_none / w.sum(), rtol=1e-12)
    assert_allclose(f(zz, yy), v_none.mean(), rtol=1e-12)


@pytest.mark.parametrize("name", list(PAIRS))
def test_class_axis(backend, rng, name):
    _, fg = PAIRS[name]
    z, y = _batch(rng, n=6)
    z3 = np.moveaxis(z.reshape(2, 3, 5), -1, 1)
    v, g = fg(backend.asarray(z3), backend.asarray(y.reshape(2, 3)), axis=1,
              reduction="none")  # fmt: skip
    v_ref, g_ref = fg(z, y, reduction="none")
    assert_allclose(v, v_ref.reshape(2, 3), rtol=1e-12)
    assert_allclose(g, np.moveaxis(g_ref.reshape(2, 3, 5), -1, 1), rtol=1e-12)


@pytest.mark.parametrize("name", list(PAIRS))
def test_extreme_logits_float32(backend, rng, name):
    _, fg = PAIRS[name]
    z = rng.choice([-1e4, 0.0, 1e4, 3.0], size=(8, 5))
    y = rng.integers(0, 5, size=8)
    v, g = fg(backend.asarray(z, np.float32), backend.asarray(y), reduction="none")
    v, g = to_numpy(v), to_numpy(g)
    assert v.dtype == np.float32
    assert g.dtype == np.float32
    assert np.all(np.isfinite(v))
    assert np.all(np.isfinite(g))


@pytest.mark.parametrize("name", ["hinge", "multiclass_hinge", "crammer_singer"])
def test_extreme_logits_float64(backend, rng, name):
    # Piecewise-linear losses stay finite at 1e300; the squared and cubed hinge
    # overflow there because their true values exceed the float64 range.
    _, fg = PAIRS[name]
    z = rng.choice([-1e300, 0.0, 1e300, 3.0], size=(8, 5))
    y = rng.integers(0, 5, size=8)
    v, g = fg(backend.asarray(z), backend.asarray(y), reduction="none")
    assert np.all(np.isfinite(to_numpy(v)))
    assert np.all(np.isfinite(to_numpy(g)))


@pytest.mark.parametrize("name", ["squared_hinge", "cubed_hinge"])
def test_overflow_is_inf_not_nan(name):
    _, fg = PAIRS[name]
    z = np.array([[1e300, -1e300, 0.0]])
    with np.errstate(over="ignore"):
        v, g = fg(z, np.array([1]), reduction="none")
    assert np.isinf(v).all()
    assert not np.isnan(g).any()

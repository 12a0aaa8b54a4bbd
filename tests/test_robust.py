"""The noise-robust losses: 50-digit references, identities, peers, validation.

Gradients against finite differences, the backend matrix and the shared
invariants come from the registry-wide tests (test_gradients.py,
test_invariants.py); here the gradients of the hard rows are also checked against
mpmath's own differentiation.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from mpref import families, reference, reference_grad, rel_errors, soft_labels

import arrayloss as al

ROBUST = [
    "focal", "generalized_cross_entropy", "poly1", "taylor_cross_entropy",
    "symmetric_cross_entropy", "normalized_cross_entropy", "nce_rce", "nce_mae",
]  # fmt: skip
# worst relative error allowed against the 50-digit value (measured: 3e-15 / 2e-6)
TOL = {np.float64: 2e-14, np.float32: 5e-6}
# mpref names the Taylor order `order` (the public name `t` is the target there)
REF_PARAMS = {"taylor_cross_entropy": {"order": 2}}


@pytest.mark.parametrize("soft", [False, True], ids=["index", "soft"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ROBUST)
def test_values_against_mpmath(name, dtype, soft):
    """Random, huge-spread (f64 +-1e4, f32 +-80), tied and near-one-hot rows."""
    for family, (z, y) in families(dtype).items():
        labels = soft_labels(*z.shape).astype(dtype) if soft else y
        v = al.LOSSES[name].value(z, labels, reduction="none")
        assert v.dtype == dtype
        ref = reference(name, z, labels, **REF_PARAMS.get(name, {}))
        err = rel_errors(v, ref)
        assert err.max() <= TOL[dtype], (family, err)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ROBUST)
def test_gradient_of_near_one_hot_rows_against_mpmath(name, dtype):
    z, y = families(dtype)["near_one_hot"]
    _, g = al.LOSSES[name].value_and_grad(z, y, reduction="none")
    ref = reference_grad(name, z, y, **REF_PARAMS.get(name, {}))
    # per row, relative to the row's largest entry (the gradient is ~1e-13 when
    # the label dominates)
    scale = np.abs(ref).max(axis=1, keepdims=True)
    assert np.all(np.abs(g - ref) <= 30 * np.finfo(dtype).eps * scale)


# ----------------------------------------------------------------------------- identities


def _close(a, b, rtol=1e-13, atol=1e-15):
    for x, r in zip(a, b, strict=True):
        np.testing.assert_allclose(x, r, rtol=rtol, atol=atol)


@pytest.fixture(params=["index", "soft"])
def batch(request, rng):
    z = 3.0 * rng.normal(size=(9, 5))
    y = rng.integers(0, 5, size=9)
    return z, (y if request.param == "index" else soft_labels(9, 5))


def test_focal_gamma_zero_is_cross_entropy(batch):
    z, t = batch
    _close(al.focal_and_grad(z, t, gamma=0.0), al.cross_entropy_and_grad(z, t))


def test_poly1_epsilon_zero_is_cross_entropy(batch):
    z, t = batch
    _close(al.poly1_and_grad(z, t, epsilon=0.0), al.cross_entropy_and_grad(z, t))


def test_sce_beta_zero_is_alpha_cross_entropy(batch):
    z, t = batch
    v, g = al.symmetric_cross_entropy_and_grad(z, t, alpha=0.3, beta=0.0)
    ce, ce_g = al.cross_entropy_and_grad(z, t)
    _close((v, g), (0.3 * ce, 0.3 * ce_g))


def test_gce_tends_to_cross_entropy(batch):
    z, t = batch
    q = 1e-7  # (1 - p^q)/q = -log p - q log(p)^2 / 2 + ...
    _close(
        al.generalized_cross_entropy_and_grad(z, t, q=q),
        al.cross_entropy_and_grad(z, t),
        rtol=1e-5,
        atol=1e-7,
    )


def test_gce_q_one_and_taylor_order_one_are_half_the_expectation(rng):
    """One-hot: expectation = sum_j |p_j - t_j| = 2 (1 - p_y); GCE(q=1) = 1 - p_y."""
    z, y = 3.0 * rng.normal(size=(9, 5)), rng.integers(0, 5, size=9)
    v, g = al.expectation_and_grad(z, y, reduction="none")
    half = (v / 2, g / 2)
    _close(al.generalized_cross_entropy_and_grad(z, y, q=1.0, reduction="none"), half)
    _close(al.taylor_cross_entropy_and_grad(z, y, t=1, reduction="none"), half)


def test_taylor_tends_to_cross_entropy(rng):
    z, y = rng.normal(size=(9, 5)), rng.integers(0, 5, size=9)
    z[np.arange(9), y] += 2.0  # p_y > 1/2: the series converges fast
    _close(
        al.taylor_cross_entropy_and_grad(z, y, t=200),
        al.cross_entropy_and_grad(z, y),
        rtol=1e-12,
    )


def test_nce_pairs_reduce_to_nce(batch):
    z, t = batch
    nce = al.normalized_cross_entropy_and_grad(z, t)
    _close(al.nce_rce_and_grad(z, t, beta=0.0), nce)
    _close(al.nce_mae_and_grad(z, t, beta=0.0), nce)
    mae = al.expectation_and_grad(z, t)
    v, g = al.nce_mae_and_grad(z, t, alpha=0.0, beta=2.0)
    _close((v, g), (2 * mae[0], 2 * mae[1]))


def test_nce_over_all_labels_sums_to_one(rng):
    z = 3.0 * rng.normal(size=(4, 6))
    total = sum(
        al.normalized_cross_entropy(z, np.full(4, k), reduction="none")
        for k in range(6)
    )
    np.testing.assert_allclose(total, 1.0, rtol=1e-14)


def test_rce_one_hot_is_minus_a_times_one_minus_p(rng):
    z, y = 3.0 * rng.normal(size=(9, 5)), rng.integers(0, 5, size=9)
    v = al.symmetric_cross_entropy(z, y, alpha=0.0, beta=1.0, A=-3.0, reduction="none")
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(v, 3.0 * (1 - p[np.arange(9), y]), rtol=1e-13)


@given(
    arrays(np.float64, (3, 4), elements=st.floats(-50, 50)),
    st.integers(0, 3),
    st.floats(0.0, 5.0),
)
def test_focal_is_below_cross_entropy_and_gce_is_bounded(z, label, gamma):
    y = np.full(3, label)
    # kl_divergence is CE for one-hot targets, with log1p where p_y is near 1
    ce = al.kl_divergence(z, y, reduction="none")
    focal = al.focal(z, y, gamma=gamma, reduction="none")
    assert np.all(focal <= ce * (1 + 1e-13) + 1e-300)
    assert np.all(focal >= 0)
    gce = al.generalized_cross_entropy(z, y, q=0.5, reduction="none")
    assert np.all((gce >= 0) & (gce <= 2.0))
    nce = al.normalized_cross_entropy(z, y, reduction="none")
    assert np.all((nce >= 0) & (nce <= 1))


# ----------------------------------------------------------------------------- peers


def test_keras_categorical_focal_crossentropy(rng):
    """Keras 3's focal loss on logits, alpha = 1 (no clipping at these scores)."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras = pytest.importorskip("keras")
    z = (2.0 * rng.normal(size=(8, 5))).astype(np.float32)
    y = rng.integers(0, 5, size=8)
    for gamma in (0.5, 2.0):
        f = keras.losses.CategoricalFocalCrossentropy(
            alpha=1.0, gamma=gamma, from_logits=True, reduction=None
        )
        ref = np.asarray(f(np.eye(5, dtype=np.float32)[y], z))
        np.testing.assert_allclose(
            al.focal(z, y, gamma=gamma, reduction="none"), ref, rtol=2e-5
        )


def test_optax_poly_loss_cross_entropy(rng):
    optax = pytest.importorskip("optax")
    z = 2.0 * rng.normal(size=(8, 5))
    t = soft_labels(8, 5)
    ref = np.asarray(optax.losses.poly_loss_cross_entropy(z, t, epsilon=2.0))
    np.testing.assert_allclose(
        al.poly1(z, t, epsilon=2.0, reduction="none"), ref, rtol=1e-5
    )


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("name", "params", "exc", "match"),
    [
        (
            "focal",
            {"gamma": -1.0},
            ValueError,
            r"`gamma` must be .* \(got gamma=-1.0\)",
        ),
        (
            "generalized_cross_entropy",
            {"q": 0.0},
            ValueError,
            r"`q` must be .*got q=0.0",
        ),
        (
            "generalized_cross_entropy",
            {"q": 1.5},
            ValueError,
            r"`q` must be .*got q=1.5",
        ),
        (
            "poly1",
            {"epsilon": -2.0},
            ValueError,
            r"`epsilon` must be .*got epsilon=-2.0",
        ),
        ("taylor_cross_entropy", {"t": 0}, ValueError, r"`t` must be an integer"),
        ("taylor_cross_entropy", {"t": 1.5}, TypeError, r"`t` must be an integer"),
        # summed term by term: t=10**9 ran for hours a call, the CLI's probe too
        ("taylor_cross_entropy", {"t": 10_001}, ValueError, r"1 <= t <= 10000"),
        ("symmetric_cross_entropy", {"A": 1.0}, ValueError, r"`A` must be .*got A=1.0"),
        ("nce_rce", {"alpha": -1.0}, ValueError, r"`alpha` must be .*got alpha=-1.0"),
        ("nce_mae", {"beta": "x"}, TypeError, r"`beta` must be a real number"),
    ],
)
def test_bad_parameters(name, params, exc, match):
    with pytest.raises(exc, match=match):
        al.LOSSES[name].value(np.zeros((2, 3)), np.array([0, 1]), **params)


def test_normalized_losses_need_two_classes():
    for name in ("normalized_cross_entropy", "nce_rce", "nce_mae"):
        with pytest.raises(ValueError, match="needs at least 2 classes"):
            al.LOSSES[name].value(np.zeros((2, 1)), np.array([0, 0]))

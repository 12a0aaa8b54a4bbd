"""Sparsemax, 1.5-entmax and their Fenchel–Young losses: 50-digit references
(sort for sparsemax, bisection for entmax), exact one-hot rows, peers (``entmax``,
Optax), the mappings on every backend, declared kinks."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_allclose, to_numpy
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from mpref import (
    _mp,
    entmax15,
    families,
    reference,
    reference_grad,
    rel_errors,
    soft_labels,
    sparsemax,
)

import arrayloss as al
from arrayloss.losses import _sparse

LOSSES = ["sparsemax_loss", "entmax15_loss"]
MAPS = {"sparsemax": (al.sparsemax, sparsemax), "entmax15": (al.entmax15, entmax15)}
# measured: 2.3e-15 / 7.3e-7
TOL = {np.float64: 2e-14, np.float32: 5e-6}


@pytest.mark.parametrize("c", [6, 40])  # 40: the candidates are packed (C >= 16)
@pytest.mark.parametrize("soft", [False, True], ids=["index", "soft"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", LOSSES)
def test_losses_against_mpmath(name, dtype, soft, c):
    for family, (z, y) in families(dtype, c).items():
        labels = soft_labels(*z.shape).astype(dtype) if soft else y
        v, g = al.LOSSES[name].value_and_grad(z, labels, reduction="none")
        err = rel_errors(v, reference(name, z, labels))
        assert err.max() <= TOL[dtype], (family, err)
        # the gradient is mapping(z) - t
        p = MAPS[name.removesuffix("_loss")][0](z)
        t = labels if soft else np.eye(z.shape[1], dtype=dtype)[y]
        np.testing.assert_allclose(g, p - t, rtol=0, atol=4 * np.finfo(dtype).eps)


@pytest.mark.parametrize("c", [6, 40])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(MAPS))
def test_mappings_against_mpmath(name, dtype, c):
    ours, ref = MAPS[name]
    for family, (z, _) in families(dtype, c).items():
        p = ours(z)
        assert p.dtype == dtype
        exact = np.array([[float(v) for v in ref(_mp(row))] for row in z])
        np.testing.assert_allclose(
            p, exact, rtol=0, atol=8 * np.finfo(dtype).eps, err_msg=family
        )
        assert np.all((p == 0) == (exact == 0)), family  # the same support


@pytest.mark.parametrize("name", LOSSES)
def test_gradient_of_hard_rows_against_mpmath(name):
    z, y = families(np.float64)["near_one_hot"]
    _, g = al.LOSSES[name].value_and_grad(z, y, reduction="none")
    np.testing.assert_allclose(g, reference_grad(name, z, y), rtol=0, atol=1e-15)


def test_dominant_score_gives_one_hot_and_zero_loss():
    z = np.array([[3.0, 1.9, 0.0, -4.0], [0.0, 0.0, 2.5, 1.4]])
    y = np.array([0, 2])
    np.testing.assert_array_equal(al.sparsemax(z), np.eye(4)[y])
    np.testing.assert_array_equal(al.sparsemax_loss(z, y, reduction="none"), 0.0)
    assert np.all(al.sparsemax_loss(z, (y + 1) % 4, reduction="none") > 1)
    z2 = 2 * z + 0.5  # entmax15 is one-hot when z/2 leads by >= 1
    np.testing.assert_array_equal(al.entmax15(z2), np.eye(4)[y])
    np.testing.assert_array_equal(al.entmax15_loss(z2, y, reduction="none"), 0.0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(MAPS))
def test_dominant_large_score_gives_one_hot(backend, name, dtype):
    """Scores past 2**54 (float64) or 2**25 (float32) gave the uniform mapping, a
    loss of 1/3 and a gradient pointing away from the winner: the clip at
    ``max - 2`` rounded to ``max`` and flattened the row."""
    big = float(np.finfo(dtype).max)
    rows = [[1e8, 0.0, 0.0], [2.0**60 if dtype == np.float64 else 1e30, 0.0, -5.0],
            [big, -big, 0.0], [3e7, -3e7, 1.0]]  # fmt: skip
    z = np.array(rows, dtype=dtype)
    y = np.zeros(len(rows), dtype=np.int64)
    mapping, _ = MAPS[name]
    s, t = backend.asarray(z), backend.asarray(y)
    np.testing.assert_array_equal(to_numpy(mapping(s)), np.eye(3, dtype=dtype)[y])
    v, g = al.LOSSES[name + "_loss"].value_and_grad(s, t, reduction="none")
    np.testing.assert_array_equal(to_numpy(v), 0.0)
    np.testing.assert_array_equal(to_numpy(g), 0.0)


@pytest.mark.parametrize("name", sorted(MAPS))
def test_fenchel_young_loss_is_zero_at_its_own_mapping(rng, name):
    z = rng.normal(size=(20, 7))
    p = MAPS[name][0](z)
    v, g = al.LOSSES[name + "_loss"].value_and_grad(z, p, reduction="none")
    np.testing.assert_allclose(v, 0.0, atol=1e-15)
    np.testing.assert_allclose(g, 0.0, atol=1e-16)


@given(
    arrays(np.float64, (4, 6), elements=st.floats(-1e3, 1e3)),
    st.floats(-1e3, 1e3),
)
def test_mappings_are_distributions_that_keep_the_order(z, shift):
    for name, (f, _) in MAPS.items():
        p = f(z)
        assert np.all(p >= 0), name
        np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)
        order = np.argsort(z, axis=1, kind="stable")
        assert np.all(np.diff(np.take_along_axis(p, order, axis=1), axis=1) >= 0)
        np.testing.assert_allclose(f(z + shift), p, atol=1e-9)


# ----------------------------------------------------------------------------- peers


def test_entmax_package():
    torch = pytest.importorskip("torch")
    entmax = pytest.importorskip("entmax")
    z, y = families(np.float64)["random"]
    tz = torch.asarray(z)
    np.testing.assert_allclose(
        al.entmax15(z), entmax.entmax15(tz, dim=-1).numpy(), atol=1e-14
    )
    ref = entmax.Entmax15Loss(reduction="none")(tz, torch.asarray(y)).numpy()
    # theirs, H(p) + <p - e_y, z>, cancels to eps of the O(1) terms near zero
    np.testing.assert_allclose(
        al.entmax15_loss(z, y, reduction="none"), ref, rtol=1e-12, atol=1e-14
    )


def test_optax_sparsemax():
    pytest.importorskip("optax")
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import optax

    z, y = families(np.float64)["random"]
    ref = np.asarray(optax.losses.multiclass_sparsemax_loss(z, y))
    np.testing.assert_allclose(
        al.sparsemax_loss(z, y, reduction="none"), ref, rtol=1e-12
    )
    proj = np.asarray(optax.projections.projection_simplex(z[0]))
    np.testing.assert_allclose(al.sparsemax(z[0]), proj, atol=1e-14)


# ----------------------------------------------------------------------------- the mappings


@pytest.mark.parametrize("c", [5, 40])  # 40: packed where the namespace scatters
@pytest.mark.parametrize("name", sorted(MAPS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_mappings_on_every_backend(backend, rng, name, dtype, c):
    f = MAPS[name][0]
    z = 2.0 * rng.normal(size=(3, c, 4))
    ref = f(z.astype(dtype), axis=1)
    out = f(backend.asarray(z, dtype), axis=1)
    assert out.dtype == backend.asarray(z, dtype).dtype
    assert_allclose(out, ref, rtol=0, atol=8 * np.finfo(dtype).eps)
    np.testing.assert_allclose(to_numpy(out).sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(
        ref, np.moveaxis(f(np.moveaxis(z, 1, -1).astype(dtype)), -1, 1)
    )


@pytest.mark.parametrize("name", LOSSES)
def test_losses_on_every_backend_with_many_classes(backend, rng, name):
    z = 2.0 * rng.normal(size=(6, 40))
    y = rng.integers(0, 40, size=6)
    info = al.LOSSES[name]
    v, g = info.value_and_grad(z, y, reduction="none")
    bv, bg = info.value_and_grad(
        backend.asarray(z, np.float64), backend.asarray(y), reduction="none"
    )
    assert_allclose(bv, v, rtol=1e-13, atol=1e-15)
    assert_allclose(bg, g, rtol=0, atol=1e-15)


def test_mapping_errors():
    with pytest.raises(ValueError, match="at least one dimension"):
        al.sparsemax(np.float64(1.0))
    with pytest.raises(ValueError, match="out of range"):
        al.entmax15(np.zeros((2, 3)), axis=2)
    with pytest.raises(TypeError, match="must be an integer"):
        al.sparsemax(np.zeros((2, 3)), axis=1.0)
    with pytest.raises(TypeError, match="real floating or integer"):
        al.sparsemax(np.array([True, False]))
    np.testing.assert_array_equal(al.sparsemax(np.array([3, 0])), [1.0, 0.0])


# ----------------------------------------------------------------------------- kinks


def test_gradcheck_leaves_out_rows_on_a_support_change():
    # sparsemax([1, 0, -5]): tau = 0 = z_2, so the second class is on the edge
    z = np.array([[1.0, 0.0, -5.0], [0.3, 0.0, -5.0], [1.0, 0.0, -5.0]])
    z[2, 1] = 1e-6  # within 1e-3 of the kink
    res = al.gradcheck("sparsemax_loss", z, np.array([0, 1, 0]), rtol=1e-8)
    assert res.checked.tolist() == [False, True, False]
    assert res.ok
    # entmax15: tau = 0 at z/2 = [1, 0, ...]
    res = al.gradcheck("entmax15_loss", 2 * z, np.array([0, 1, 0]), rtol=1e-8)
    assert res.checked.tolist() == [False, True, False]
    assert res.ok


# ----------------------------------------------------------------------------- packing


def _hard_rows(dtype):
    """Rows of 64 whose scores crowd the candidate bounds: entries at and just
    around ``max - 1`` (sparsemax) and ``max - 2`` (entmax-1.5's -1 on half the
    scores), many near-ties at the top, one dominant score, a 2-level row."""
    rng = np.random.default_rng(3)
    c = 64
    eps = np.finfo(dtype).eps
    rows = [
        rng.normal(size=c),
        np.concatenate([[0.0], -1.0 + eps * rng.integers(-4, 5, size=c - 1)]),
        np.concatenate([[0.0], -2.0 + 2 * eps * rng.integers(-4, 5, size=c - 1)]),
        1e-3 * rng.normal(size=c),
        np.concatenate([[5.0], rng.normal(size=c - 1)]),
        np.where(np.arange(c) < 17, 0.0, -0.5),
        np.linspace(0.0, -3.0, c),
        4.0 * rng.normal(size=c),
    ]
    return np.asarray(rows).astype(dtype)


def _unpacked(monkeypatch, f, z):
    with monkeypatch.context() as m:
        m.setattr(_sparse, "_can_pack", lambda x, *, xp: False)
        return f(z)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(MAPS))
def test_packed_candidates_give_the_sort_based_mapping(monkeypatch, name, dtype):
    f, ref = MAPS[name]
    z = _hard_rows(dtype)
    p, q = f(z), _unpacked(monkeypatch, f, z)
    assert np.all((p == 0) == (q == 0))  # the same support
    np.testing.assert_allclose(p, q, rtol=0, atol=4 * np.finfo(dtype).eps)
    exact = np.array([[float(v) for v in ref(_mp(row))] for row in z])
    np.testing.assert_allclose(p, exact, rtol=0, atol=8 * np.finfo(dtype).eps)


def test_packing_happens_and_shrinks(rng):
    import array_api_compat.numpy as xp

    x = rng.normal(size=(8, 500))
    x = np.clip(x - x.max(axis=1, keepdims=True), -2.0, None)
    packed = _sparse._candidates(x, -1.0, xp=xp)
    assert 0 < packed.shape[1] < x.shape[1] // 2
    for row, out in zip(x, packed, strict=True):  # its entries above -1, in order
        k = int(np.sum(row > -1))
        np.testing.assert_array_equal(out[:k], row[row > -1])
        np.testing.assert_array_equal(out[k:], -2.0)  # then padding
    assert not _sparse._can_pack(x[:, :8], xp=xp)  # too few classes to gain


def test_packed_path_keeps_nan_rows_nan():
    z = np.zeros((2, 32))
    z[0, 3] = np.nan
    for name, (f, _) in MAPS.items():
        with np.errstate(
            invalid="ignore", divide="ignore"
        ):  # entmax15 warns (ever has)
            p = f(z)
        assert np.isnan(p[0]).all(), name
        np.testing.assert_allclose(p[1], 1 / 32, err_msg=name)


@given(
    arrays(np.float64, (3, 24), elements=st.floats(-4, 4)),
    st.sampled_from([np.float64, np.float32]),
)
def test_packed_equals_unpacked(z, dtype):
    z = z.astype(dtype)
    for name, (f, _) in MAPS.items():
        with pytest.MonkeyPatch.context() as m:
            m.setattr(_sparse, "_can_pack", lambda x, *, xp: False)
            q = f(z)
        p = f(z)
        assert np.all((p == 0) == (q == 0)), name
        np.testing.assert_allclose(p, q, rtol=0, atol=4 * np.finfo(dtype).eps)

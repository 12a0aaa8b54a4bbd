"""Invariants every registered loss must keep, on every backend.

One parametrised test per property over ``LOSSES`` (scikit-learn's checkers-table
idea): adding a loss to the registry puts it through all of them.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_allclose, to_numpy

import arrayloss as al

NAMES = sorted(al.LOSSES)
N_CLASSES = 8


def _soft_ok(name: str) -> bool:
    return "soft" in al.LOSSES[name].targets


def _data(rng: np.random.Generator, n: int = 6, c: int = N_CLASSES):
    return 2.0 * rng.normal(size=(n, c)), rng.integers(0, c, size=n)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_backend_matches_numpy_and_keeps_dtype(backend, rng, name, dtype):
    z, y = _data(rng)
    info = al.LOSSES[name]
    ref_v, ref_g = info.value_and_grad(z, y, reduction="none")
    v, g = info.value_and_grad(
        backend.asarray(z, dtype), backend.asarray(y), reduction="none"
    )
    assert v.dtype == backend.asarray(z, dtype).dtype
    assert g.dtype == v.dtype
    if dtype == np.float32:
        # as accurate as float32 allows (against float64), and NumPy's own float32
        # result to 1e-5
        assert_allclose(v, ref_v, rtol=2e-5, atol=2e-5 * np.max(np.abs(ref_v)))
        assert_allclose(g, ref_g, rtol=2e-5, atol=2e-5 * np.max(np.abs(ref_g)))
        ref_v, ref_g = info.value_and_grad(z.astype(dtype), y, reduction="none")
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    assert_allclose(v, ref_v, rtol=rtol, atol=rtol * np.max(np.abs(ref_v)))
    assert_allclose(g, ref_g, rtol=rtol, atol=rtol * np.max(np.abs(ref_g)))


@pytest.mark.parametrize("name", NAMES)
def test_torch_float32_kept_under_float64_default(rng, name):
    """Arrays a loss creates must not lift float32 to torch's default dtype.

    The backend fixture runs torch with its own default (float32), where a created
    float32 array in a float64 computation would show as lost precision; this is
    the other direction.
    """
    torch = pytest.importorskip("torch")
    z, y = _data(rng)
    ref_v, ref_g = al.LOSSES[name].value_and_grad(z, y, reduction="none")
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        zt = torch.asarray(z.astype(np.float32))
        v, g = al.LOSSES[name].value_and_grad(zt, torch.asarray(y), reduction="none")
        m, gm = al.LOSSES[name].value_and_grad(zt, torch.asarray(y))
    finally:
        torch.set_default_dtype(old)
    assert v.dtype == g.dtype == m.dtype == gm.dtype == torch.float32
    assert_allclose(v, ref_v, rtol=2e-5, atol=2e-5 * np.max(np.abs(ref_v)))
    assert_allclose(g, ref_g, rtol=2e-5, atol=2e-5 * np.max(np.abs(ref_g)))


@pytest.mark.parametrize("name", NAMES)
def test_jax_default_config_float32(rng, name):
    """JAX as installed: without ``jax_enable_x64`` (int32 default integers, no
    float64); no warning (the suite turns warnings into errors), float32 kept."""
    jax = pytest.importorskip("jax")
    z, y = _data(rng)
    info = al.LOSSES[name]
    ref_v, ref_g = info.value_and_grad(z, y, reduction="none")
    jax.config.update("jax_enable_x64", False)
    try:
        zj = jax.numpy.asarray(z.astype(np.float32))
        yj = jax.numpy.asarray(y.astype(np.int32))
        v, g = info.value_and_grad(zj, yj, reduction="none")
        vj, gj = jax.jit(lambda s, t: info.value_and_grad(s, t))(zj, yj)
        v, g, vj, gj = (np.asarray(a) for a in (v, g, vj, gj))
    finally:
        jax.config.update("jax_enable_x64", True)
    assert v.dtype == g.dtype == vj.dtype == gj.dtype == np.float32
    tol = {"rtol": 2e-5, "atol": 2e-5 * np.max(np.abs(ref_g))}
    np.testing.assert_allclose(v, ref_v, rtol=2e-5, atol=2e-5 * np.max(np.abs(ref_v)))
    np.testing.assert_allclose(g, ref_g, **tol)
    np.testing.assert_allclose(vj, np.mean(ref_v), rtol=2e-5)
    np.testing.assert_allclose(gj, ref_g / len(y), rtol=2e-5, atol=tol["atol"] / len(y))


@pytest.mark.parametrize("name", NAMES)
def test_under_jax_jit_matches_numpy(rng, name):
    """Inside ``jax.jit`` (tracers: value checks skipped, no host round trips)."""
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    z, y = _data(rng)
    info = al.LOSSES[name]
    ref_v, ref_g = info.value_and_grad(z, y, reduction="none")
    step = jax.jit(lambda s, t: info.value_and_grad(s, t, reduction="none"))
    v, g = step(jax.numpy.asarray(z), jax.numpy.asarray(y))
    assert_allclose(v, ref_v, rtol=1e-12, atol=1e-12 * np.max(np.abs(ref_v)))
    assert_allclose(g, ref_g, rtol=1e-12, atol=1e-12 * np.max(np.abs(ref_g)))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_reduction_shapes_and_consistency(rng, name, reduction):
    z = 2.0 * rng.normal(size=(2, 3, N_CLASSES))
    y = rng.integers(0, N_CLASSES, size=(2, 3))
    info = al.LOSSES[name]
    v, g = info.value_and_grad(z, y, reduction=reduction)
    rows, row_grads = info.value_and_grad(z, y, reduction="none")
    assert g.shape == z.shape
    assert rows.shape == (2, 3)
    if reduction == "none":
        np.testing.assert_array_equal(v, rows)
        return
    assert v.shape == ()
    scale = 1.0 if reduction == "sum" else 1.0 / 6
    np.testing.assert_allclose(v, rows.sum() * scale, rtol=1e-12)
    np.testing.assert_allclose(g, row_grads * scale, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(info.value(z, y, reduction=reduction), v, rtol=1e-14)


@pytest.mark.parametrize("name", NAMES)
def test_axis_equals_moveaxis(rng, name):
    z = 2.0 * rng.normal(size=(N_CLASSES, 4, 3))
    y = rng.integers(0, N_CLASSES, size=(4, 3))
    info = al.LOSSES[name]
    v, g = info.value_and_grad(z, y, axis=0, reduction="none")
    v0, g0 = info.value_and_grad(np.moveaxis(z, 0, -1), y, reduction="none")
    np.testing.assert_allclose(v, v0, rtol=1e-13)
    np.testing.assert_allclose(g, np.moveaxis(g0, -1, 0), rtol=1e-13, atol=1e-300)


@pytest.mark.parametrize("name", NAMES)
def test_weights_ones_and_zeros(rng, name):
    z, y = _data(rng, n=7)
    info = al.LOSSES[name]
    plain = info.value_and_grad(z, y)
    ones = info.value_and_grad(z, y, weights=np.ones(7))
    np.testing.assert_allclose(ones[0], plain[0], rtol=1e-13)
    np.testing.assert_allclose(ones[1], plain[1], rtol=1e-13, atol=1e-300)
    w = np.array([1.0, 0.0, 2.0, 0.0, 0.5, 1.0, 3.0])
    keep = w > 0
    weighted = info.value_and_grad(z, y, weights=w)
    dropped = info.value_and_grad(z[keep], y[keep], weights=w[keep])
    np.testing.assert_allclose(weighted[0], dropped[0], rtol=1e-13)
    np.testing.assert_allclose(weighted[1][keep], dropped[1], rtol=1e-13, atol=1e-300)
    assert np.all(weighted[1][~keep] == 0)


@pytest.mark.parametrize("name", [n for n in NAMES if _soft_ok(n)])
def test_index_labels_equal_one_hot(backend, rng, name):
    z, y = _data(rng)
    info = al.LOSSES[name]
    a = info.value_and_grad(backend.asarray(z), backend.asarray(y), reduction="none")
    b = info.value_and_grad(z, np.eye(N_CLASSES)[y], reduction="none")
    assert_allclose(a[0], b[0], rtol=1e-12, atol=1e-14)
    assert_allclose(a[1], b[1], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", [n for n in NAMES if not _soft_ok(n)])
def test_soft_labels_rejected(rng, name):
    z, y = _data(rng)
    with pytest.raises(ValueError, match="integer class indices only"):
        al.LOSSES[name].value(z, np.eye(N_CLASSES)[y])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("scale", [1e4, -1e4])
def test_finite_at_extreme_float32_scores(rng, name, scale):
    z, y = _data(rng)
    pattern = np.sign(rng.normal(size=z.shape))
    for logits in (
        scale * pattern,
        np.full_like(z, scale),
        scale * (rng.uniform(size=z.shape)),
    ):
        v, g = al.LOSSES[name].value_and_grad(
            logits.astype(np.float32), y, reduction="none"
        )
        assert v.dtype == np.float32
        assert np.all(np.isfinite(v)), (name, logits[0], v)
        assert np.all(np.isfinite(g)), (name, logits[0], g)


@pytest.mark.parametrize("name", NAMES)
def test_huge_float64_scores_give_no_nan(rng, name):
    z, y = _data(rng)
    with np.errstate(over="ignore"):  # cubed hinge at 1e150 is inf: honest overflow
        v, g = al.LOSSES[name].value_and_grad(1e150 * np.sign(z), y, reduction="none")
    assert not np.any(np.isnan(v))
    assert not np.any(np.isnan(g))


@pytest.mark.parametrize("name", NAMES)
def test_inputs_unchanged(rng, name):
    z, y = _data(rng)
    z0, y0 = z.copy(), y.copy()
    z.flags.writeable = False
    y.flags.writeable = False
    al.LOSSES[name].value_and_grad(z, y, reduction="none")
    al.LOSSES[name].value_and_grad(z.T, y, axis=0)
    np.testing.assert_array_equal(z, z0)
    np.testing.assert_array_equal(y, y0)


@pytest.mark.parametrize("name", NAMES)
def test_lazy_dask_matches_numpy(rng, name):
    da = pytest.importorskip("dask.array")
    z, y = _data(rng, n=8)
    v, g = al.LOSSES[name].value_and_grad(
        da.from_array(z, chunks=(4, N_CLASSES)), da.from_array(y, chunks=4)
    )
    ref = al.LOSSES[name].value_and_grad(z, y)
    np.testing.assert_allclose(to_numpy(v), ref[0], rtol=1e-12)
    np.testing.assert_allclose(to_numpy(g), ref[1], rtol=1e-12, atol=1e-300)

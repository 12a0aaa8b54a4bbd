"""The helpers that have one home (issue 12, "one home per helper"): `to_numpy`,
`logsumexp`, the softmax chain rule and "scores without the label", each tested
here once, on every backend."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import assert_allclose

from arrayloss import _xp
from arrayloss._api import Targets


def test_to_numpy_every_backend(backend):
    a = np.arange(6.0).reshape(2, 3)
    got = _xp.to_numpy(backend.asarray(a))
    assert isinstance(got, np.ndarray)
    np.testing.assert_array_equal(got, a)


def test_to_numpy_numbers_and_lists():
    np.testing.assert_array_equal(_xp.to_numpy([1.0, 2.0]), [1.0, 2.0])
    assert _xp.to_numpy(3.5) == 3.5
    a = np.ones(3)
    assert _xp.to_numpy(a) is a  # NumPy arrays are not copied


def test_to_numpy_bfloat16_tensor():
    """NumPy has no bfloat16: ``.numpy()`` raised torch's "Got unsupported
    ScalarType BFloat16" (so did `arrayloss.gradcheck` on such logits)."""
    torch = pytest.importorskip("torch")
    t = torch.tensor(
        [[1.5, -2.0], [0.25, 3.0]], dtype=torch.bfloat16, requires_grad=True
    )
    got = _xp.to_numpy(t)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, [[1.5, -2.0], [0.25, 3.0]])


def test_copies_are_gone():
    """The four copies of `to_numpy` (metrics, mlp, _gradcheck, the tests) are
    imports of the one in `_xp` now."""
    from arrayloss import _gradcheck, metrics, mlp

    for mod in (metrics, mlp, _gradcheck):
        assert mod.to_numpy is _xp.to_numpy


def test_logsumexp_keeps_a_dominated_row_accurate(backend):
    """``m + log1p(rest)``: the form that keeps ``lse - m`` accurate when the
    other terms are tiny (``log(1 + 4e-18)`` rounds to 0; log1p does not)."""
    x = backend.asarray(np.array([[0.0, -40.0, -41.0], [3.0, 3.0, 3.0]]))
    got = _xp.to_numpy(_xp.logsumexp(x, xp=backend.xp, axis=1))
    want0 = math.log1p(math.exp(-40.0) + math.exp(-41.0))
    assert got[0] == pytest.approx(want0, rel=1e-15)
    assert got[1] == pytest.approx(3.0 + math.log(3.0), rel=1e-15)


def test_logsumexp_special_rows():
    x = np.array(
        [
            [-np.inf, -np.inf, -np.inf],
            [0.0, np.inf, 1.0],
            [0.0, np.nan, 1.0],
            [-np.inf, 2.0, -np.inf],
        ]
    )
    with np.errstate(all="raise"):
        got = _xp.logsumexp(x, xp=np, axis=1)
    assert got[0] == -np.inf
    assert got[1] == np.inf
    assert np.isnan(got[2])
    assert got[3] == 2.0


def test_logsumexp_axis_and_keepdims(rng):
    from scipy.special import logsumexp

    x = rng.normal(size=(3, 4, 5)) * 30
    for axis in (0, 1, 2, -1):
        got = _xp.logsumexp(x, xp=np, axis=axis, keepdims=True)
        np.testing.assert_allclose(
            got, logsumexp(x, axis=axis, keepdims=True), rtol=1e-15
        )


def test_through_softmax_is_the_chain_rule(rng):
    """``dL/ds = J^T g`` with the softmax Jacobian ``J = diag(p) - p p^T``."""
    s = rng.normal(size=(4, 6))
    g = rng.normal(size=(4, 6))
    p = np.exp(s - s.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    got = _xp.through_softmax(p, p * g, xp=np)
    for i in range(4):
        jac = np.diag(p[i]) - np.outer(p[i], p[i])
        np.testing.assert_allclose(got[i], jac.T @ g[i], rtol=1e-13, atol=1e-15)


def test_without_label(backend):
    z_np = np.arange(12.0).reshape(3, 4)
    z = backend.asarray(z_np)
    y = backend.asarray(np.array([0, 3, 1]))
    t = Targets(index=y, soft=None, n_classes=4, dtype=z.dtype, xp=backend.xp)
    got = t.without_label(z)
    want = z_np.copy()
    want[[0, 1, 2], [0, 3, 1]] = -np.inf
    assert_allclose(got, want, rtol=0)
    assert_allclose(z, z_np, rtol=0)  # the input is untouched
    if backend.name == "numpy":
        own = z_np + 0
        assert t.without_label(own, overwrite=True) is own  # written in place
    soft = Targets(index=None, soft=z, n_classes=4, dtype=z.dtype, xp=backend.xp)
    with pytest.raises(TypeError, match="soft labels"):
        soft.without_label(z)

"""The mean of per-sample losses is finite wherever it is (`arrayloss._api.mean_of`).

Before, ``reduction="mean"`` summed the losses in their own dtype: 1000 float16
losses of 70 summed to inf (NumPy's own ``mean`` sums float16 in float32), and 100
float32 losses of ``1e37`` overflowed float32, both with an 'overflow encountered
in reduce' warning, where the mean is 70 and ``1e37``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import arrayloss as al
from arrayloss._xp import to_numpy

LOSSES = ["cross_entropy", "focal", "hinge", "l1", "smooth_topk_svm"]


def _rows(n, top, dtype):
    """``n`` rows of 3 scores whose cross-entropy for label 0 is about ``top``."""
    z = np.zeros((n, 3), dtype=dtype)
    z[:, 1] = top
    return z, np.zeros(n, dtype=np.int64)


@pytest.mark.parametrize(
    ("n", "top", "dtype"),
    [(1000, 70.0, np.float16), (100, 1e37, np.float32), (10, 1e308, np.float64)],
)
def test_a_mean_whose_sum_overflows_is_finite_and_quiet(backend, n, top, dtype):
    if backend.name == "array_api_strict" and dtype == np.float16:
        pytest.skip("array_api_strict has no float16")
    z, y = _rows(n, top, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = al.cross_entropy(backend.asarray(z), backend.asarray(y))
        if backend.name == "dask":
            value = value.compute()
        per_sample = al.cross_entropy(z, y, reduction="none")
    got = float(to_numpy(value))
    want = float(per_sample[0])  # every row alike: the mean is one row's loss
    assert np.all(per_sample == per_sample[0])
    assert got == pytest.approx(want, rel=1e-3 if dtype == np.float16 else 1e-6)
    assert str(to_numpy(value).dtype) == np.dtype(dtype).name


@pytest.mark.parametrize("name", LOSSES)
def test_ordinary_means_are_unchanged_bit_for_bit(backend, name):
    """The scale is 1 where the sum cannot overflow: ``sum / count`` as before
    (bit for bit on NumPy unweighted; weighted means divide by scaled weights)."""
    rng = np.random.default_rng(3)
    for dtype in (np.float32, np.float64):
        z = (5 * rng.standard_normal((37, 6))).astype(dtype)
        y = rng.integers(0, 6, 37)
        w = rng.uniform(0.1, 2.0, 37).astype(dtype)
        loss = getattr(al, name)
        for weights in (None, w):
            rows = loss(z, y, reduction="none", weights=weights)
            count = 37 if weights is None else np.sum(w)
            want = np.sum(rows) / count
            zz, yy = backend.asarray(z), backend.asarray(y)
            ww = None if weights is None else backend.asarray(w)
            got = loss(zz, yy, weights=ww)
            if backend.name == "dask":
                got, want = got.compute(), float(want)
                assert float(got) == pytest.approx(want, rel=1e-6)  # block sums
            elif backend.name in ("numpy", "numpy:readonly") and weights is None:
                assert to_numpy(got).tobytes() == np.asarray(want, dtype).tobytes()
            else:
                assert float(to_numpy(got)) == pytest.approx(float(want), rel=1e-6)


def test_metrics_and_adapters_share_the_mean():
    z, y = _rows(100, 1e37, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert float(al.metrics.nll(z, y)) == pytest.approx(1e37, rel=1e-6)
        torch = pytest.importorskip("torch")
        t = torch.tensor(z, requires_grad=True)
        value = al.torch.cross_entropy(t, torch.tensor(y))
        value.backward()
        assert float(value.detach()) == pytest.approx(1e37, rel=1e-6)
        assert torch.isfinite(t.grad).all()
    jnp = pytest.importorskip("jax.numpy")
    assert float(al.jax.cross_entropy(jnp.asarray(z), jnp.asarray(y))) == pytest.approx(
        1e37, rel=1e-6
    )


def test_a_sum_beyond_the_range_is_still_inf():
    """``reduction="sum"`` is the sum: inf where it is beyond the dtype's range."""
    z, y = _rows(100, 1e37, np.float32)
    with np.errstate(over="ignore"):
        assert np.isinf(al.cross_entropy(z, y, reduction="sum"))

"""The shared wrapper, exercised through cross-entropy: shapes, axis, weights,
reductions, dtypes, label handling and every validation message."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_allclose, to_numpy

import arrayloss as al

S = np.array([1.0, 2.5, -0.3, 0.7, 3.1])
P = np.exp(S - S.max()) / np.exp(S - S.max()).sum()
CE = 3.985205162131887


def _ce_rows(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    m = z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z - m).sum(axis=1)) + m[:, 0]
    return lse - z[np.arange(len(y)), y]


def test_reference_value_and_gradient(backend):
    for dtype, rtol in ((np.float64, 1e-12), (np.float32, 1e-6)):
        s = backend.asarray(S[None], dtype)
        y = backend.asarray(np.array([2]))
        v, g = al.cross_entropy_and_grad(s, y)
        assert_allclose(v, CE, rtol=rtol)
        want = P.copy()
        want[2] -= 1
        assert_allclose(g, want[None], rtol=rtol, atol=rtol)
        assert to_numpy(v).dtype == dtype
        assert to_numpy(g).dtype == dtype


def test_cs231n_example():
    s = np.array([[3.2, 5.1, -1.7], [1.3, 4.9, 2.0], [2.2, 2.5, -3.1]])
    y = np.array([0, 1, 2])
    rows = al.cross_entropy(s, y, reduction="none")
    np.testing.assert_allclose(rows, [2.04036, 0.0791318, 6.15648], rtol=1e-5)
    np.testing.assert_allclose(al.cross_entropy(s, y), 2.758654710918577, rtol=1e-14)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_reductions_and_shapes(backend, rng, reduction):
    z = rng.normal(size=(3, 4, 6))
    y = rng.integers(0, 6, size=(3, 4))
    v, g = al.cross_entropy_and_grad(
        backend.asarray(z), backend.asarray(y), reduction=reduction
    )
    rows = _ce_rows(z.reshape(12, 6), y.reshape(12)).reshape(3, 4)
    want = {"mean": rows.mean(), "sum": rows.sum(), "none": rows}[reduction]
    assert tuple(v.shape) == np.shape(want)
    assert_allclose(v, want, rtol=1e-12)
    assert tuple(g.shape) == z.shape
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    row_grad = p - np.eye(6)[y]
    scale = {"mean": 1 / 12, "sum": 1.0, "none": 1.0}[reduction]
    assert_allclose(g, row_grad * scale, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("axis", [0, 1, -3])
def test_axis_equals_moveaxis(backend, rng, axis):
    z = rng.normal(size=(5, 4, 3))
    zc = np.moveaxis(z, axis, -1)
    y = rng.integers(0, z.shape[axis], size=zc.shape[:-1])
    v, g = al.cross_entropy_and_grad(backend.asarray(z), backend.asarray(y), axis=axis)
    v0, g0 = al.cross_entropy_and_grad(zc, y)
    assert_allclose(v, v0, rtol=1e-12)
    assert_allclose(g, np.moveaxis(g0, -1, axis), rtol=1e-12, atol=1e-15)


def test_index_labels_equal_one_hot(backend, rng):
    z = rng.normal(size=(7, 5))
    y = rng.integers(0, 5, size=7)
    a = al.cross_entropy_and_grad(backend.asarray(z), backend.asarray(y))
    b = al.cross_entropy_and_grad(backend.asarray(z), backend.asarray(np.eye(5)[y]))
    assert_allclose(a[0], to_numpy(b[0]), rtol=1e-12)
    assert_allclose(a[1], to_numpy(b[1]), rtol=1e-12, atol=1e-15)


def test_label_smoothing_matches_soft_targets(rng):
    z = rng.normal(size=(6, 4))
    y = rng.integers(0, 4, size=6)
    eps = 0.2
    soft = (1 - eps) * np.eye(4)[y] + eps / 4
    a = al.cross_entropy_and_grad(z, y, label_smoothing=eps)
    b = al.cross_entropy_and_grad(z, soft)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-13)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-13, atol=1e-16)


def test_weights(backend, rng):
    z = rng.normal(size=(8, 5))
    y = rng.integers(0, 5, size=8)
    w = rng.uniform(0.5, 2.0, size=8)
    w[[1, 4]] = 0.0
    v, g = al.cross_entropy_and_grad(
        backend.asarray(z), backend.asarray(y), weights=backend.asarray(w)
    )
    rows = _ce_rows(z, y)
    assert_allclose(v, (w * rows).sum() / w.sum(), rtol=1e-12)
    keep = w > 0
    v2, g2 = al.cross_entropy_and_grad(z[keep], y[keep], weights=w[keep])
    assert_allclose(v, v2, rtol=1e-12)
    gn = to_numpy(g)
    np.testing.assert_array_equal(gn[~keep], 0.0)
    np.testing.assert_allclose(gn[keep], g2, rtol=1e-12)
    ones = al.cross_entropy_and_grad(z, y, weights=np.ones(8))
    plain = al.cross_entropy_and_grad(z, y)
    np.testing.assert_allclose(ones[0], plain[0], rtol=1e-14)
    np.testing.assert_allclose(ones[1], plain[1], rtol=1e-14)


def test_weighted_none_and_sum_agree(rng):
    z = rng.normal(size=(5, 3))
    y = rng.integers(0, 3, size=5)
    w = rng.uniform(size=5)
    none = al.cross_entropy(z, y, weights=w, reduction="none")
    np.testing.assert_allclose(
        none.sum(), al.cross_entropy(z, y, weights=w, reduction="sum")
    )


def test_float32_kept_and_integer_logits_promoted(backend):
    z32 = backend.asarray(np.array([[1.0, 2.0, 3.0]]), np.float32)
    y = backend.asarray(np.array([0]))
    v, g = al.cross_entropy_and_grad(z32, y)
    assert v.dtype == z32.dtype
    assert g.dtype == z32.dtype
    zi = backend.asarray(np.array([[1, 2, 3]]))
    v, g = al.cross_entropy_and_grad(zi, y)
    assert backend.xp.isdtype(v.dtype, "real floating")
    assert_allclose(
        v, _ce_rows(np.array([[1.0, 2.0, 3.0]]), np.array([0]))[0], rtol=1e-6
    )


def test_inputs_not_modified(rng):
    z = rng.normal(size=(4, 3))
    y = rng.integers(0, 3, size=4)
    z0, y0 = z.copy(), y.copy()
    al.cross_entropy_and_grad(z, y)
    al.cross_entropy_and_grad(z.T, y, axis=0)
    np.testing.assert_array_equal(z, z0)
    np.testing.assert_array_equal(y, y0)


def test_extreme_scores_are_finite():
    z = np.array([[1e4, -1e4, 0.0]], dtype=np.float32)
    for y in (0, 1, 2):
        v, g = al.cross_entropy_and_grad(z, np.array([y]))
        assert np.isfinite(v)
        assert np.all(np.isfinite(g))
    v, g = al.cross_entropy_and_grad(np.array([[1e300, -1e300, 0.0]]), np.array([1]))
    assert v == pytest.approx(2e300)
    assert np.all(np.isfinite(g))


def test_outputs_are_arrays_not_scalars():
    v = al.cross_entropy(np.zeros((2, 3)), np.array([0, 1]))
    assert isinstance(v, np.ndarray)
    assert v.shape == ()


# ---------------------------------------------------------------------------
# Validation: one message per mistake.


def _ce(z, y, **kw):
    return al.cross_entropy(np.asarray(z), np.asarray(y), **kw)


@pytest.mark.parametrize(
    ("z", "y", "kw", "err", "match"),
    [
        (
            np.zeros((2, 3)),
            np.array([0, 3]),
            {},
            ValueError,
            r"class indices in \[0, 2\].*found 3",
        ),
        (np.zeros((2, 3)), np.array([-1, 0]), {}, ValueError, r"found -1"),
        (np.zeros((2, 3)), np.array([0, 1, 2]), {}, ValueError, r"batch shape \(2,\)"),
        (np.zeros((2, 3)), np.array([0.0, 1.0]), {}, ValueError, r"integer dtype"),
        (np.zeros((2, 3)), np.full((2, 3), 0.5), {}, ValueError, r"sum to 1"),
        (
            np.zeros((2, 3)),
            np.array([[1.5, -0.5, 0.0]] * 2),
            {},
            ValueError,
            r"non-negative",
        ),
        (np.zeros((2, 3)), np.array([True, False]), {}, TypeError, r"bool"),
        (
            np.array([[0.0, np.nan, 1.0]]),
            np.array([0]),
            {},
            ValueError,
            r"`logits` contains NaN",
        ),
        (np.array([[0.0, np.inf, 1.0]]), np.array([0]), {}, ValueError, r"infinite"),
        (
            np.zeros(()),
            np.zeros((), dtype=int),
            {},
            ValueError,
            r"at least one dimension",
        ),
        (
            np.zeros((2, 3)),
            np.array([0, 1]),
            {"axis": 2},
            ValueError,
            r"`axis` 2 is out of range",
        ),
        (
            np.zeros((2, 3)),
            np.array([0, 1]),
            {"reduction": "avg"},
            ValueError,
            r"`reduction` must be",
        ),
        (
            np.zeros((2, 3)),
            np.array([0, 1]),
            {"label_smoothing": 1.5},
            ValueError,
            r"`label_smoothing` must be.*1\.5",
        ),
        (
            np.zeros((2, 3)),
            np.array([0, 1]),
            {"label_smoothing": "x"},
            TypeError,
            r"`label_smoothing` must be a real",
        ),
        (
            np.zeros((2, 3)),
            np.array([0, 1]),
            {"weights": np.ones(3)},
            ValueError,
            r"`weights` must have the batch shape",
        ),
        (
            np.zeros((2, 3)),
            np.array([0, 1]),
            {"weights": np.array([1.0, -1.0])},
            ValueError,
            r"non-negative",
        ),
        (
            np.zeros((2, 3)),
            np.array([0, 1]),
            {"weights": np.zeros(2)},
            ValueError,
            r"non-zero weight",
        ),
        (np.zeros((0, 3)), np.zeros(0, dtype=int), {}, ValueError, r"non-zero weight"),
        (
            np.zeros((2, 3), dtype=complex),
            np.array([0, 1]),
            {},
            TypeError,
            r"real floating or integer",
        ),
    ],
)
def test_bad_input_messages(z, y, kw, err, match):
    with pytest.raises(err, match=match):
        _ce(z, y, **kw)


def test_non_arrays_and_mixed_namespaces():
    with pytest.raises(TypeError, match="`logits` must be an array"):
        al.cross_entropy([[0.0, 1.0]], np.array([0]))
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="one array library"):
        al.cross_entropy(torch.zeros((1, 2)), np.array([0]))


def test_empty_batch_sum_is_zero():
    v, g = al.cross_entropy_and_grad(
        np.zeros((0, 3)), np.zeros(0, dtype=int), reduction="sum"
    )
    assert float(v) == 0.0
    assert g.shape == (0, 3)


def test_dask_value_checks_run_at_compute():
    """Dask builds the graph without computing; bad values raise on compute."""
    da = pytest.importorskip("dask.array")
    rng = np.random.default_rng(0)
    z, y, w = rng.normal(size=(10, 6)), rng.integers(0, 6, 10), rng.random(10)
    soft = rng.dirichlet(np.ones(6), 10)

    def lazy(a, rows=3):
        return da.from_array(a, chunks=(rows, *a.shape[1:]))

    bad_y, nan_z, neg_w, off_soft = y.copy(), z.copy(), w.copy(), soft.copy()
    bad_y[7] = 6
    nan_z[8, 2] = np.nan
    neg_w[1] = -1.0
    off_soft[4] *= 1.1
    cases = [
        ((lazy(z), lazy(bad_y)), {}, r"class indices in \[0, 5\].*found 6"),
        ((lazy(nan_z), lazy(y)), {}, "contains NaN"),
        ((lazy(z), lazy(y)), {"weights": lazy(neg_w)}, "non-negative"),
        ((lazy(z), lazy(off_soft)), {}, "must sum to 1"),
    ]
    for args, kw, match in cases:
        value, grad = al.cross_entropy_and_grad(*args, **kw)  # no error yet
        with pytest.raises(ValueError, match=match):
            value.compute()
        with pytest.raises(ValueError, match=match):
            grad.compute()
    value = al.cross_entropy(lazy(z), lazy(y), weights=lazy(w))
    np.testing.assert_allclose(
        value.compute(), al.cross_entropy(z, y, weights=w), rtol=1e-12
    )


@pytest.mark.parametrize("name", ["cross_entropy", "smooth_topk_svm", "keras.hinge"])
def test_dask_any_chunking(name):
    """Blocks that split the class axis, and labels/weights chunked unlike the
    scores, give the in-memory result (soft labels for the soft-label losses)."""
    da = pytest.importorskip("dask.array")
    rng = np.random.default_rng(1)
    z, y, w = rng.normal(size=(11, 6)), rng.integers(0, 6, 11), rng.random(11)
    info = al.LOSSES[name]
    targets = [y] + ([rng.dirichlet(np.ones(6), 11)] if "soft" in info.targets else [])
    for t in targets:
        ref_v, ref_g = info.value_and_grad(z, t, weights=w)
        lab = da.from_array(t, chunks=(5, 2)[: t.ndim])
        v, g = info.value_and_grad(
            da.from_array(z, chunks=(3, 4)), lab, weights=da.from_array(w, chunks=2)
        )
        np.testing.assert_allclose(v.compute(), ref_v, rtol=1e-12)
        np.testing.assert_allclose(g.compute(), ref_g, rtol=1e-12, atol=1e-15)


def test_value_checks_on_every_backend(backend):
    """Concrete arrays of every library are checked at the call (JAX included:
    array-api-compat calls every JAX array lazy; only tracers are), Dask's when
    computed."""
    z = np.random.default_rng(0).normal(size=(4, 5))
    nan_z = z.copy()
    nan_z[2, 1] = np.nan
    good, bad = np.array([0, 1, 2, 3]), np.array([0, 1, 9, 3])
    for f in (al.cross_entropy, al.smooth_topk_svm):
        kw = {"k": 2} if f is al.smooth_topk_svm else {}
        with pytest.raises(ValueError, match=r"class indices in \[0, 4\].*found 9"):
            to_numpy(f(backend.asarray(z), backend.asarray(bad), **kw))
        with pytest.raises(ValueError, match="contains NaN"):
            to_numpy(f(backend.asarray(nan_z), backend.asarray(good), **kw))

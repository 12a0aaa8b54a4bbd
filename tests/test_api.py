"""The shared wrapper, exercised through cross-entropy: shapes, axis, weights,
reductions, dtypes, label handling and every validation message."""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
from conftest import assert_allclose, to_numpy
from hypothesis import example, given, settings

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
        (
            np.array([[0.0, np.inf, 1.0]]),
            np.array([0]),
            {},
            ValueError,
            r"\+inf values",
        ),
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
        al.cross_entropy(torch.zeros((1, 2)), torch.tensor([0]), weights=np.ones(1))
    # NumPy labels next to torch logits are moved to torch (issue 13).
    assert float(al.cross_entropy(torch.zeros((1, 2)), np.array([0]))) > 0


@pytest.mark.parametrize("metric", [False, True])
@pytest.mark.parametrize("scalar", [2.0, 2, True])
def test_scalar_weights_are_a_type_error_not_an_attribute_error(metric, scalar):
    """``weights=2.0`` (or ``class_weights=2.0``) named the argument nowhere: an
    AttributeError from inside the front end."""
    z, y = np.zeros((2, 3)), np.array([0, 1])
    f = al.metrics.nll if metric else al.cross_entropy
    with pytest.raises(TypeError, match=r"`weights` must be an array \(got"):
        f(z, y, weights=scalar)
    if not metric:
        with pytest.raises(TypeError, match=r"`class_weights` must be an array"):
            al.cross_entropy(z, y, class_weights=scalar)
    with pytest.raises(TypeError, match=r"`weights` must be an array \(got list\)"):
        f(z, y, weights=[1.0, 1.0])


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


# --------------------------------------------------------------------------- #
# Issue 12 defects and issue 11 numerics of the shared front end
# --------------------------------------------------------------------------- #

_K_LOSSES = (
    "smooth_topk_svm",
    "topk_svm",
    "topk_hinge_alpha",
    "topk_hinge_beta",
    "topk_entropy",
    "truncated_topk_entropy",
)


@pytest.mark.parametrize("name", _K_LOSSES)
def test_k_against_class_count_is_checked_at_the_call_on_dask(name):
    """Defect 1 (issue 12): on Dask, ``k >= n_classes`` was raised only at
    ``.compute()``, inside the kernels; `Kernel.check_params` now receives the
    class count and raises at the call, before any graph exists."""
    da = pytest.importorskip("dask.array")
    z = da.from_array(np.zeros((4, 3)), chunks=2)
    y = da.from_array(np.array([0, 1, 2, 0]), chunks=2)
    info = al.LOSSES[name]
    with pytest.raises(ValueError, match=r"`k` must be an integer with 1 <= k"):
        info.value(z, y, k=3)
    with pytest.raises(ValueError, match=r"n_classes=3\)"):
        info.value_and_grad(z, y, k=5)
    v = info.value(z, y, k=2)  # an allowed k still builds a lazy graph
    assert np.isfinite(float(v.compute()))


@pytest.mark.parametrize("name", sorted(al.LOSSES))
@pytest.mark.parametrize("axis", [1.0, "1", None, True, np.float64(1.0)])
def test_non_integer_axis_is_a_type_error_everywhere(name, axis):
    """Defect 5 (issue 12): a non-integer ``axis`` was a ValueError in
    `esp.log_elementary_symmetric` and a TypeError in every loss; one front end
    (`_api.normalize_axis`) now gives TypeError in losses, metrics and esp."""
    z, y = np.zeros((2, 6)), np.array([0, 1])
    with pytest.raises(TypeError, match=r"`axis` must be an integer"):
        al.LOSSES[name].value(z, y, axis=axis)
    with pytest.raises(TypeError, match=r"`axis` must be an integer"):
        al.metrics.accuracy(z, y, axis=axis)
    with pytest.raises(TypeError, match=r"`axis` must be an integer"):
        al.esp.log_elementary_symmetric(z, 2, axis=axis)


@pytest.mark.parametrize("axis", [np.int64(0), np.int32(-2), np.uint8(0)])
def test_numpy_integer_axis_is_an_integer(axis):
    """``axis=np.int64(0)`` was "`axis` must be an integer" (as `ignore_index`,
    NumPy integers are integers), in losses, metrics and esp alike."""
    z, y = np.random.default_rng(0).normal(size=(6, 2)), np.array([0, 1])
    v, g = al.cross_entropy_and_grad(z, y, axis=axis)
    want_v, want_g = al.cross_entropy_and_grad(z, y, axis=int(axis))
    assert v == want_v
    np.testing.assert_array_equal(g, want_g)
    assert al.metrics.accuracy(z, y, axis=axis) == al.metrics.accuracy(z, y, axis=0)
    np.testing.assert_array_equal(
        al.esp.log_elementary_symmetric(z, 2, axis=axis),
        al.esp.log_elementary_symmetric(z, 2, axis=0),
    )


def test_integer_axis_out_of_range_stays_a_value_error():
    """Defect 5: the other kind of mistake keeps its own type everywhere."""
    z, y = np.zeros((2, 6)), np.array([0, 1])
    for call in (
        lambda: al.cross_entropy(z, y, axis=2),
        lambda: al.metrics.nll(z, y, axis=-3),
        lambda: al.esp.log_elementary_symmetric(z, 2, axis=2),
    ):
        with pytest.raises(ValueError, match=r"`axis` -?\d+ is out of range"):
            call()


def test_jax_compiled_kernel_applies_the_fused_mean_scale():
    """Defect 11 (issue 12): the JAX-compile branch dropped ``grad_scale`` while
    `_reduce` assumed the kernel had applied it, so a kernel both fused and
    compiled returned an n times too large "mean" gradient."""
    jnp = pytest.importorskip("jax.numpy")
    from arrayloss._api import Kernel
    from arrayloss.losses import _cross_entropy

    kernel = Kernel(
        "ce_compiled",
        _cross_entropy._rows,
        check_params=_cross_entropy._check,
        fused_scale=True,
        jax_compile=(),
    )
    rng = np.random.default_rng(3)
    z = rng.normal(size=(7, 4)).astype(np.float32)
    y = rng.integers(0, 4, 7)
    v, g = kernel.value_and_grad(
        jnp.asarray(z), jnp.asarray(y), axis=-1, reduction="mean", weights=None
    )
    v_ref, g_ref = al.cross_entropy_and_grad(z, y)
    assert_allclose(v, v_ref, rtol=1e-6)
    assert_allclose(g, g_ref, rtol=1e-5, atol=1e-7)


def _rows_and_mean(z, y, w):
    rows = _ce_rows(z, y)
    return rows, float(np.sum(w / w.max() * rows) / np.sum(w / w.max()))


def test_huge_weights_give_the_weighted_mean_not_nan():
    """Issue 11: weights of 1e308 each gave NaN (inf / inf); the mean is scale
    invariant, so it must equal the unweighted mean."""
    rng = np.random.default_rng(0)
    z, y = rng.normal(size=(6, 5)), rng.integers(0, 5, 6)
    w = np.full(6, 1e308)
    with np.errstate(all="raise"):
        v, g = al.cross_entropy_and_grad(z, y, weights=w)
    v_ref, g_ref = al.cross_entropy_and_grad(z, y)
    np.testing.assert_allclose(v, v_ref, rtol=1e-15)
    np.testing.assert_allclose(g, g_ref, rtol=1e-14, atol=1e-17)
    assert float(al.metrics.nll(z, y, weights=w)) == pytest.approx(float(v_ref))


def test_subnormal_weights_are_exact_to_rounding():
    """Issue 11: subnormal weights gave a 4e-5 relative error (products of
    subnormals lose bits); dividing by the largest weight first makes them exact
    to rounding."""
    rng = np.random.default_rng(1)
    z, y = rng.normal(size=(3, 4)), rng.integers(0, 4, 3)
    w = np.array([5e-324, 1e-323, 1.5e-323])  # 1, 2 and 3 times the smallest
    rows = _ce_rows(z, y)
    want = (rows[0] + 2 * rows[1] + 3 * rows[2]) / 6
    for f in (al.cross_entropy, al.metrics.nll):
        np.testing.assert_allclose(float(f(z, y, weights=w)), want, rtol=1e-15)


def test_tiny_float64_weights_with_float32_logits():
    """Issue 11: float32 logits with tiny float64 weights claimed "no non-zero
    weight" (the weights were cast to float32, where they are 0, before use)."""
    rng = np.random.default_rng(2)
    z, y = rng.normal(size=(4, 3)).astype(np.float32), rng.integers(0, 3, 4)
    w = np.array([1e-300, 2e-300, 0.0, 1e-300])
    v = al.cross_entropy(z, y, weights=w)
    assert v.dtype == np.float32
    rows = _ce_rows(z.astype(np.float64), y)
    want = (rows[0] + 2 * rows[1] + rows[3]) / 4
    np.testing.assert_allclose(float(v), want, rtol=1e-6)
    np.testing.assert_allclose(float(al.metrics.nll(z, y, weights=w)), want, rtol=1e-6)


def test_all_zero_weights_still_raise():
    z, y = np.zeros((3, 4)), np.array([0, 1, 2])
    with pytest.raises(ValueError, match="non-zero weight"):
        al.cross_entropy(z, y, weights=np.zeros(3))
    with pytest.raises(ValueError, match="non-zero weight"):
        al.metrics.accuracy(z, y, weights=np.zeros(3))
    # "sum" and "none" do not divide: zero weights are fine there
    assert float(al.cross_entropy(z, y, weights=np.zeros(3), reduction="sum")) == 0


@pytest.mark.parametrize("what", ["value", "grad", "metric"])
def test_dask_all_zero_weights_raise_like_numpy(what):
    """Issue 11: Dask with all-zero weights returned NaN where NumPy raises; the
    lazy mean now raises the same ValueError when computed."""
    da = pytest.importorskip("dask.array")
    z = da.from_array(np.zeros((4, 3)), chunks=2)
    y = da.from_array(np.array([0, 1, 2, 0]), chunks=2)
    w = da.from_array(np.zeros(4), chunks=2)
    if what == "metric":
        out = al.metrics.nll(z, y, weights=w)
    else:
        v, g = al.cross_entropy_and_grad(z, y, weights=w)
        out = v if what == "value" else g
    with pytest.raises(ValueError, match="non-zero weight"):
        out.compute()


def test_dask_zero_rows_raise_like_numpy():
    """Issue 11: Dask with 0 rows returned NaN; the row count is known at the
    call, so the mean raises there, as on NumPy."""
    da = pytest.importorskip("dask.array")
    z = da.from_array(np.zeros((0, 3)), chunks=1)
    y = da.from_array(np.zeros(0, dtype=int), chunks=1)
    for call in (
        lambda: al.cross_entropy(np.zeros((0, 3)), np.zeros(0, dtype=int)),
        lambda: al.cross_entropy(z, y),
        lambda: al.smooth_topk_svm_and_grad(z, y, k=2),
        lambda: al.metrics.brier(z, y),
    ):
        with pytest.raises(ValueError, match="non-zero weight"):
            call()


def test_dask_huge_weights_match_numpy():
    """Issue 11: the scale-safe mean on a lazy batch (largest weight lazy too)."""
    da = pytest.importorskip("dask.array")
    rng = np.random.default_rng(5)
    z, y = rng.normal(size=(6, 4)), rng.integers(0, 4, 6)
    w = np.full(6, 1e308)
    v, g = al.cross_entropy_and_grad(
        da.from_array(z, chunks=3), da.from_array(y, chunks=3),
        weights=da.from_array(w, chunks=3),
    )  # fmt: skip
    v_ref, g_ref = al.cross_entropy_and_grad(z, y)
    np.testing.assert_allclose(v.compute(), v_ref, rtol=1e-14)
    np.testing.assert_allclose(g.compute(), g_ref, rtol=1e-13, atol=1e-17)


@settings(max_examples=40, deadline=None)
@given(
    w=hnp.arrays(
        np.float64,
        st.integers(1, 8),
        elements=st.floats(0, 1e6, allow_subnormal=False),
    ).filter(lambda w: w.max() > 0),
    exponent=st.integers(-1100, 1030),
    factor=st.floats(1e-250, 1e250),
)
@example(w=np.array([3.0, 3.0, 3.0]), exponent=1022, factor=1.0)  # sum overflows
@example(w=np.array([1.0, 2.0, 3.0]), exponent=-1074, factor=1.0)  # subnormal
@example(w=np.array([1.0, 0.0, 5.0]), exponent=-1070, factor=1.0)
def test_weighted_mean_is_scale_invariant(w, exponent, factor):
    """Issue 11 (property): ``mean(w)`` equals ``mean(c w)`` for every scale ``c``:
    exactly for a power of two ``c`` whose scaling of the weights is exact (the
    sums of weights of 1e308 overflowed, subnormal weights lost bits), and to
    rounding for any other factor that keeps the weights finite and normal."""
    n = w.shape[0]
    rng = np.random.default_rng(n)
    z, y = rng.normal(size=(n, 4)), rng.integers(0, 4, n)
    ref = float(al.cross_entropy(z, y, weights=w))
    scaled = np.ldexp(w, exponent)
    if np.isfinite(scaled).all() and (np.ldexp(scaled, -exponent) == w).all():
        # Overflow and invalid operations raise; a tiny weight divided by the
        # largest may underflow (it then weighs nothing, in ``ref`` as well).
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            assert float(al.cross_entropy(z, y, weights=scaled)) == ref
            got = float(al.metrics.nll(z, y, weights=scaled))
        np.testing.assert_allclose(got, ref, rtol=1e-14)
    with np.errstate(over="ignore", under="ignore"):
        c_w = w * factor
    if np.isfinite(c_w).all() and (c_w[w > 0] >= 2.0**-1022).all():
        got = float(al.cross_entropy(z, y, weights=c_w))
        np.testing.assert_allclose(got, ref, rtol=1e-13)
        np.testing.assert_allclose(
            float(al.metrics.nll(z, y, weights=c_w)), ref, rtol=1e-13
        )


@pytest.mark.parametrize("which", ["logits", "labels", "weights"])
def test_masked_entries_are_refused_not_mixed_into_a_number(which):
    """A NumPy masked array went through NumPy's masked operations: masked logits
    gave 1.39 for a batch whose loss is 1.65 (the masked maxima and sums mixed
    with unmasked exps), masked weights and labels were read through the mask."""
    z = np.random.default_rng(0).standard_normal((5, 4))
    arrays = {"logits": z, "labels": np.array([0, 1, 2, 3, 0]), "weights": np.ones(5)}
    mask = np.zeros(arrays[which].shape, dtype=bool)
    mask.flat[0] = True
    arrays[which] = np.ma.masked_array(arrays[which], mask=mask)
    with pytest.raises(
        TypeError, match=rf"`{which}` is a masked array with 1 masked entry"
    ):
        al.cross_entropy(arrays["logits"], arrays["labels"], weights=arrays["weights"])
    named = "scores" if which == "logits" else which  # the metrics' name
    with pytest.raises(TypeError, match=rf"`{named}` is a masked array"):
        al.metrics.nll(arrays["logits"], arrays["labels"], weights=arrays["weights"])


def test_a_masked_array_without_masked_entries_is_its_data():
    z = np.random.default_rng(1).standard_normal((5, 4))
    y = np.array([0, 1, 2, 3, 0])
    got = al.cross_entropy(np.ma.masked_array(z, mask=np.zeros(z.shape, bool)), y)
    assert float(got) == float(al.cross_entropy(z, y))


def test_esp_refuses_masked_entries():
    from arrayloss.esp import log_elementary_symmetric

    x = np.ma.masked_array(np.zeros(3), mask=[True, False, False])
    with pytest.raises(TypeError, match="`x` is a masked array"):
        log_elementary_symmetric(x, 2)


def test_dask_unknown_chunk_sizes_are_a_clear_error():
    """After boolean indexing a Dask array's shape is ``(nan, C)``: the front end
    raised "cannot convert float NaN to integer"."""
    da = pytest.importorskip("dask.array")
    z = np.random.default_rng(2).standard_normal((6, 4))
    keep = da.from_array(z[:, 0], chunks=2) > -10
    logits = da.from_array(z, chunks=2)[keep]
    labels = da.from_array(np.arange(6) % 4, chunks=2)[keep]
    with pytest.raises(
        ValueError, match=r"`logits` has unknown dimensions.*compute_chunk_sizes"
    ):
        al.cross_entropy(logits, labels)
    logits.compute_chunk_sizes()
    labels.compute_chunk_sizes()
    assert float(al.cross_entropy(logits, labels).compute()) == pytest.approx(
        float(al.cross_entropy(z, np.arange(6) % 4))
    )

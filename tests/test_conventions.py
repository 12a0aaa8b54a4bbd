"""PyTorch's conventions in the core's one front end (issue 13, part 3).

``ignore_index``, ``class_weights``, labels moved to the logits' namespace,
``(n, 1)`` labels, the integer one-hot error, the soft-label tolerance in the
labels' own dtype; through ``value_and_grad``, `gradcheck` and both adapters.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import arrayloss as al
from arrayloss._kinks import KINKS
from arrayloss._registry import LOSSES, value_and_grad

IGNORE = -100
INDEX_LOSSES = sorted(LOSSES)
REDUCTIONS = ("mean", "sum", "none")


def _batch(
    n: int = 7, c: int = 5, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, c)) * 2
    y = rng.integers(0, c, size=n)
    y[[1, 4]] = IGNORE
    cw = rng.uniform(0.2, 3.0, size=c)
    return z, y, cw


# --------------------------------------------------------------------------- #
# Against PyTorch's F.cross_entropy
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("with_weight", [False, True])
def test_cross_entropy_matches_torch(reduction: str, with_weight: bool) -> None:
    torch = pytest.importorskip("torch")
    f = torch.nn.functional
    z, y, cw = _batch()
    kw = {"class_weights": cw} if with_weight else {}
    value, grad = value_and_grad(
        "cross_entropy", z, y, ignore_index=IGNORE, reduction=reduction, **kw
    )
    zt = torch.tensor(z, requires_grad=True)
    weight = torch.tensor(cw) if with_weight else None
    ref = f.cross_entropy(
        zt, torch.tensor(y), weight=weight, ignore_index=IGNORE, reduction=reduction
    )
    ref.sum().backward()
    np.testing.assert_allclose(value, ref.detach().numpy(), rtol=1e-13, atol=1e-15)
    if reduction != "none":  # "none" gives per-row gradients: compare them too
        np.testing.assert_allclose(grad, zt.grad.numpy(), rtol=1e-12, atol=1e-15)
    else:
        np.testing.assert_allclose(grad, zt.grad.numpy(), rtol=1e-12, atol=1e-15)
    assert np.all(grad[y == IGNORE] == 0)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_core_loss_on_tensors_gives_the_weights_gradient_with_conventions(
    reduction: str,
) -> None:
    """`arrayloss.cross_entropy` itself on tensors (the shared wrapper's autograd
    hook, which hands the node the conventions' per-sample factors): the weights'
    gradient with ``ignore_index`` and ``class_weights`` is PyTorch's."""
    torch = pytest.importorskip("torch")

    z, y, cw = _batch()
    zt = torch.tensor(z, requires_grad=True)
    wt = torch.tensor(np.linspace(0.5, 2, z.shape[0]), requires_grad=True)
    yt, cwt = torch.tensor(y), torch.tensor(cw)
    value = al.cross_entropy(
        zt, yt, weights=wt, ignore_index=IGNORE, class_weights=cwt,
        reduction=reduction,
    )  # fmt: skip
    gz, gw = torch.autograd.grad(value, (zt, wt))
    rows = torch.nn.functional.cross_entropy(
        zt, yt, weight=cwt, ignore_index=IGNORE, reduction="none"
    )
    ref = (wt * rows).sum()
    if reduction == "mean":
        ref = ref / (wt * torch.where(yt == IGNORE, 0.0, cwt[yt.clamp(min=0)])).sum()
    rz, rw = torch.autograd.grad(ref, (zt, wt))
    torch.testing.assert_close(value, ref, rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(gz, rz, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(gw, rw, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", ["cross_entropy", "keras.categorical_crossentropy"])
def test_torch_adapter_matches_autograd_of_f_cross_entropy(name: str) -> None:
    torch = pytest.importorskip("torch")
    import arrayloss.torch as alt

    fn = (
        alt.cross_entropy
        if name == "cross_entropy"
        else alt.keras.categorical_crossentropy
    )
    z, y, cw = _batch()
    zt = torch.tensor(z, requires_grad=True)
    wt = torch.tensor(np.linspace(0.5, 2, z.shape[0]), requires_grad=True)
    yt, cwt = torch.tensor(y), torch.tensor(cw)
    value = fn(zt, yt, weights=wt, ignore_index=IGNORE, class_weights=cwt)
    gz, gw = torch.autograd.grad(value, (zt, wt))
    assert type(value.grad_fn).__name__ == "_AnalyticLossBackward"  # one node
    rows = torch.nn.functional.cross_entropy(
        zt, yt, weight=cwt, ignore_index=IGNORE, reduction="none"
    )
    c = torch.where(yt == IGNORE, 0.0, cwt[yt.clamp(min=0)])
    ref = (wt * rows).sum() / (wt * c).sum()
    rz, rw = torch.autograd.grad(ref, (zt, wt))
    torch.testing.assert_close(value, ref, rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(gz, rz, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(gw, rw, rtol=1e-12, atol=1e-15)
    module = alt.loss(name, ignore_index=IGNORE)
    torch.testing.assert_close(
        module(zt, yt), torch.nn.functional.cross_entropy(zt, yt), rtol=1e-13, atol=0
    )


def test_torch_gradcheck_with_conventions() -> None:
    torch = pytest.importorskip("torch")
    import arrayloss.torch as alt

    z, y, cw = _batch(5, 4)
    zt = torch.tensor(z, requires_grad=True)
    wt = torch.tensor(np.linspace(0.5, 2, 5), requires_grad=True)
    yt, cwt = torch.tensor(y), torch.tensor(cw)
    assert torch.autograd.gradcheck(
        lambda a, w: alt.smooth_topk_svm(
            a, yt, k=2, weights=w, ignore_index=IGNORE, class_weights=cwt
        ),
        (zt, wt),
    )


def test_jax_adapter_passes_conventions() -> None:
    jax = pytest.importorskip("jax")
    torch = pytest.importorskip("torch")
    import jax.numpy as jnp

    import arrayloss.jax as alj

    z, y, cw = _batch()
    z32, cw32 = z.astype(np.float32), cw.astype(np.float32)
    w = np.linspace(0.5, 2, z.shape[0]).astype(np.float32)

    def f(a: object, b: object) -> object:
        return alj.cross_entropy(
            a, jnp.asarray(y), weights=b, ignore_index=IGNORE,
            class_weights=jnp.asarray(cw32),
        )  # fmt: skip

    value, (gz, gw) = jax.jit(jax.value_and_grad(f, argnums=(0, 1)))(
        jnp.asarray(z32), jnp.asarray(w)
    )
    zt = torch.tensor(z32, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    yt, cwt = torch.tensor(y), torch.tensor(cw32)
    rows = torch.nn.functional.cross_entropy(
        zt, yt, weight=cwt, ignore_index=IGNORE, reduction="none"
    )
    c = torch.where(yt == IGNORE, 0.0, cwt[yt.clamp(min=0)])
    ref = (wt * rows).sum() / (wt * c).sum()
    rz, rw = torch.autograd.grad(ref, (zt, wt))
    np.testing.assert_allclose(float(value), ref.item(), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(gz), rz.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.asarray(gw), rw.numpy(), rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------- #
# Every loss: ignoring rows is dropping them; class weights are sample weights
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("name", INDEX_LOSSES)
def test_every_loss_ignore_equals_drop_and_class_weights(name: str) -> None:
    z, y, cw = _batch(6, 8, seed=3)  # k=5 by default needs C > 5
    kept = y != IGNORE
    info = LOSSES[name]
    value, grad = value_and_grad(name, z, y, ignore_index=IGNORE, class_weights=cw)
    ref, ref_grad = info.value_and_grad(
        z[kept], y[kept], weights=cw[y[kept]], reduction="mean"
    )
    np.testing.assert_allclose(value, ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(grad[kept], ref_grad, rtol=1e-12, atol=1e-14)
    assert np.all(grad[~kept] == 0)


@pytest.mark.parametrize("name", ["cross_entropy", "smooth_topk_svm", "focal"])
def test_gradcheck_takes_conventions(name: str) -> None:
    z, y, cw = _batch(5, 6, seed=1)
    result = al.gradcheck(name, z, y, ignore_index=IGNORE, class_weights=cw)
    assert result.n_checked == 5
    assert result.n_failed == 0


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 8),
    c=st.integers(3, 6),
    seed=st.integers(0, 2**16),
    reduction=st.sampled_from(["mean", "sum"]),
)
def test_property_ignoring_rows_is_dropping_them(
    n: int, c: int, seed: int, reduction: str
) -> None:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, c)) * 3
    y = rng.integers(0, c, size=n)
    drop = rng.random(n) < 0.4
    drop[rng.integers(0, n)] = False  # at least one sample kept
    y_ign = np.where(drop, IGNORE, y)
    w = rng.uniform(0.1, 2, size=n)
    value, grad = al.losses.smooth_topk_svm_and_grad(
        z[~drop], y[~drop], weights=w[~drop], reduction=reduction, k=2
    )
    v2, g2 = value_and_grad(
        "smooth_topk_svm", z, y_ign, weights=w, reduction=reduction, k=2,
        ignore_index=IGNORE,
    )  # fmt: skip
    np.testing.assert_allclose(v2, value, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g2[~drop], grad, rtol=1e-12, atol=1e-14)
    assert np.all(g2[drop] == 0)


# --------------------------------------------------------------------------- #
# Errors and edge cases
# --------------------------------------------------------------------------- #


def test_all_ignored() -> None:
    z = np.zeros((3, 4))
    y = np.full(3, IGNORE)
    with pytest.raises(
        ValueError, match=r"every sample has the label ignore_index=-100"
    ):
        value_and_grad("cross_entropy", z, y, ignore_index=IGNORE)
    value, grad = value_and_grad(
        "cross_entropy", z, y, ignore_index=IGNORE, reduction="sum"
    )
    assert float(value) == 0
    assert np.all(grad == 0)


def test_convention_errors() -> None:
    z, y, cw = _batch()
    with pytest.raises(ValueError, match=r"\[0, 4\] or ignore_index=-1 "):
        value_and_grad("cross_entropy", z, y, ignore_index=-1)
    with pytest.raises(TypeError, match="`ignore_index` must be an integer"):
        value_and_grad("cross_entropy", z, np.abs(y) % 5, ignore_index=1.5)
    with pytest.raises(ValueError, match=r"`class_weights` must have shape \(5,\)"):
        value_and_grad("cross_entropy", z, y, ignore_index=IGNORE, class_weights=cw[:3])
    with pytest.raises(ValueError, match="`class_weights` must be non-negative"):
        value_and_grad("cross_entropy", z, y, ignore_index=IGNORE, class_weights=-cw)
    soft = np.full(z.shape, 0.2)
    with pytest.raises(ValueError, match="`ignore_index` applies to integer"):
        value_and_grad("cross_entropy", z, soft, ignore_index=IGNORE)
    with pytest.raises(ValueError, match="`class_weights` applies to integer"):
        value_and_grad("cross_entropy", z, soft, class_weights=cw)


def test_ignore_index_outside_the_label_dtype_matches_no_label(backend) -> None:
    """``ignore_index=-100`` with uint8 labels was an OverflowError on
    array_api_strict; ``255`` with int8 labels was wrapped to -1 by JAX, which then
    silently ignored a label -1 instead of refusing it."""
    z, y, _ = _batch()
    y = np.abs(y) % 5
    ref = al.cross_entropy(z, y, reduction="none")
    for dtype, ignore in ((np.uint8, -100), (np.int8, 255), (np.int64, 2**70),
                          (np.int64, -(2**70)), (np.int32, 2**40)):  # fmt: skip
        got = al.cross_entropy(
            backend.asarray(z), backend.asarray(y, dtype), ignore_index=ignore,
            reduction="none",
        )  # fmt: skip
        np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-6)
    bad = y.astype(np.int8)
    bad[2] = -1
    with pytest.raises(ValueError, match=r"\[0, 4\].*found -1"):
        np.asarray(  # Dask: checked when computed
            al.cross_entropy(backend.asarray(z), backend.asarray(bad), ignore_index=255)
        )


def test_numpy_integer_ignore_index_is_an_integer() -> None:
    """``ignore_index=np.int64(-100)`` was a TypeError saying it must be an integer."""
    z, y, cw = _batch()
    ref = value_and_grad("cross_entropy", z, y, ignore_index=IGNORE, class_weights=cw)
    for ignore in (np.int64(IGNORE), np.int16(IGNORE)):
        got = value_and_grad(
            "cross_entropy", z, y, ignore_index=ignore, class_weights=cw
        )
        np.testing.assert_array_equal(got[0], ref[0])
        np.testing.assert_array_equal(got[1], ref[1])
    with pytest.raises(TypeError, match="`ignore_index` must be an integer"):
        value_and_grad("cross_entropy", z, y, ignore_index=np.float64(IGNORE))
    with pytest.raises(TypeError, match="`ignore_index` must be an integer"):
        value_and_grad("cross_entropy", z, y, ignore_index=np.bool_(True))


def test_numpy_integer_ignore_index_in_the_jax_weights_cotangent() -> None:
    """The JAX adapter dropped a non-``int`` ignore_index from the factors of the
    weights' gradient (harmless only while such an index was refused)."""
    jax = pytest.importorskip("jax")
    import arrayloss.jax as alj

    z, y, _ = _batch()
    w = np.linspace(0.5, 2.0, len(y), dtype=np.float32)
    z = z.astype(np.float32)
    keep = y != IGNORE
    zj, yj, wj = (jax.numpy.asarray(a) for a in (z, y, w))
    got = jax.grad(
        lambda w_: alj.cross_entropy(zj, yj, weights=w_, ignore_index=np.int64(IGNORE))
    )(wj)
    kept = jax.grad(lambda w_: alj.cross_entropy(zj[keep], yj[keep], weights=w_))(
        wj[keep]
    )  # dropping the ignored rows
    ref = np.zeros_like(w)
    ref[keep] = np.asarray(kept)
    np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-5, atol=1e-7)


def test_column_labels_and_integer_one_hot() -> None:
    z, y, _ = _batch()
    y = np.abs(y) % 5
    np.testing.assert_array_equal(
        al.cross_entropy(z, y[:, None], reduction="none"),
        al.cross_entropy(z, y, reduction="none"),
    )
    one_hot = np.eye(5, dtype=np.int64)[y]
    with pytest.raises(ValueError, match=r"one-hot rows as floats"):
        al.cross_entropy(z, one_hot)
    np.testing.assert_allclose(
        al.cross_entropy(z, one_hot.astype(float)), al.cross_entropy(z, y), rtol=1e-14
    )


def test_numpy_and_list_labels_follow_torch_logits() -> None:
    torch = pytest.importorskip("torch")
    z, y, cw = _batch()
    zt = torch.tensor(z)
    ref, _ = value_and_grad(
        "cross_entropy", zt, torch.tensor(y), ignore_index=IGNORE,
        class_weights=torch.tensor(cw),
    )  # fmt: skip
    for labels in (y, y.tolist(), y.astype(np.int32)):
        out, grad = value_and_grad(
            "cross_entropy", zt, labels, ignore_index=IGNORE, class_weights=cw
        )
        assert isinstance(out, torch.Tensor)
        assert isinstance(grad, torch.Tensor)
        assert out.item() == ref.item()
    y0 = np.abs(y) % 5
    np.testing.assert_allclose(
        al.cross_entropy(zt, y0.tolist()).item(), al.cross_entropy(z, y0), rtol=1e-14
    )


def test_numpy_labels_follow_jax_logits() -> None:
    jnp = pytest.importorskip("jax.numpy")
    z, y, _ = _batch()
    y = np.abs(y) % 5
    out = al.cross_entropy(jnp.asarray(z), y)
    np.testing.assert_allclose(float(out), float(al.cross_entropy(z, y)), rtol=1e-6)


def test_float32_soft_labels_with_float64_logits() -> None:
    rng = np.random.default_rng(5)
    z = rng.normal(size=(64, 1000))
    p = rng.dirichlet(np.full(1000, 0.1), size=64).astype(np.float32)
    p /= p.sum(axis=1, keepdims=True)  # exact to float32 rounding, not float64
    assert np.abs(p.astype(np.float64).sum(axis=1) - 1).max() > 1.5e-8
    value = al.cross_entropy(z, p)
    assert np.isfinite(value)
    with pytest.raises(ValueError, match="must sum to 1"):
        al.cross_entropy(z, (p * 1.01).astype(np.float32))


# --------------------------------------------------------------------------- #
# -inf logits: masked classes
# --------------------------------------------------------------------------- #

MASKABLE = sorted(al._api.MASKABLE)


def _masked_batch(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(5, 6)) * 2
    y = np.array([1, 2, 3, 5, 0])
    z[0, 2] = z[1, [0, 5]] = z[3, 4] = z[4, 1] = -np.inf
    return z, y


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_masked_cross_entropy_matches_torch(reduction: str) -> None:
    torch = pytest.importorskip("torch")
    z, y = _masked_batch()
    value, grad = value_and_grad(
        "cross_entropy", z, y, reduction=reduction, ignore_index=IGNORE
    )
    zt = torch.tensor(z, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(zt, torch.tensor(y), reduction=reduction)
    ref.sum().backward()
    np.testing.assert_allclose(value, ref.detach().numpy(), rtol=1e-13)
    np.testing.assert_allclose(grad, zt.grad.numpy(), rtol=1e-12, atol=1e-16)
    assert np.all(grad[np.isinf(z)] == 0)
    assert np.all(np.isfinite(value))


@pytest.mark.parametrize("name", MASKABLE)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_ignored_or_zero_weight_rows_on_a_masked_class_do_not_warn(
    name: str, reduction: str
) -> None:
    """Padding with label -100 next to a masked class 0, or a zero weight on a
    sample whose true class is masked: right values, but NumPy warned 'invalid
    value encountered in multiply' (0 * inf, then discarded); an error under
    ``-W error``, as in this suite."""
    z = np.array([[-np.inf, 1.0, 2.0], [0.5, -np.inf, 1.0], [1.0, 2.0, 3.0]])
    keep = np.array([False, True, True])  # row 0: class 0 masked, the sample out
    for kw, y in (
        ({"ignore_index": IGNORE}, np.array([IGNORE, 0, 2])),
        ({"weights": keep.astype(float)}, np.array([0, 0, 2])),
        ({"class_weights": np.array([0.0, 1.0, 1.0])}, np.array([0, 2, 2])),
    ):
        ref = value_and_grad(name, z[keep], y[keep], reduction=reduction)
        value, grad = value_and_grad(name, z, y, reduction=reduction, **kw)
        assert np.all(grad[~keep] == 0)
        if reduction == "none":
            np.testing.assert_array_equal(value[~keep], 0)
            np.testing.assert_allclose(value[keep], ref[0], rtol=1e-15)
        else:
            np.testing.assert_allclose(value, ref[0], rtol=1e-15)
        np.testing.assert_allclose(grad[keep], ref[1], rtol=1e-15)


def test_masked_kl_divergence_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    z, _ = _masked_batch()
    rng = np.random.default_rng(2)
    t = rng.dirichlet(np.ones(6), size=5)
    t[np.isinf(z)] = 0
    t /= t.sum(axis=1, keepdims=True)
    value, grad = value_and_grad("kl_divergence", z, t, reduction="sum")
    zt = torch.tensor(z, requires_grad=True)
    logp = torch.log_softmax(zt, dim=1)
    tt = torch.tensor(t)
    ref = torch.where(tt > 0, tt * (torch.log(tt) - logp), 0.0).sum()
    ref.backward()
    np.testing.assert_allclose(value, ref.item(), rtol=1e-13)
    np.testing.assert_allclose(grad, zt.grad.numpy(), rtol=1e-12, atol=1e-16)
    assert np.all(grad[np.isinf(z)] == 0)


@pytest.mark.parametrize("name", MASKABLE)
def test_masking_a_class_is_dropping_its_column(name: str) -> None:
    rng = np.random.default_rng(4)
    z = rng.normal(size=(4, 6)) * 2
    y = np.array([0, 3, 5, 2])
    masked = z.copy()
    masked[:, 1] = -np.inf
    kept = [0, 2, 3, 4, 5]
    y_kept = np.searchsorted(kept, y)
    value, grad = value_and_grad(name, masked, y, reduction="none")
    ref, ref_grad = value_and_grad(name, z[:, kept], y_kept, reduction="none")
    np.testing.assert_allclose(value, ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(grad[:, kept], ref_grad, rtol=1e-12, atol=1e-15)
    assert np.all(grad[:, 1] == 0)


def test_masked_true_class() -> None:
    z = np.array([[0.0, -np.inf, 1.0]])
    y = np.array([1])
    for name in sorted(al._api.INFINITE_AT_MASKED_TARGET):
        assert float(value_and_grad(name, z, y)[0]) == np.inf
    np.testing.assert_allclose(al.expectation(z, y), 2.0)  # 2 (1 - p_y), p_y = 0
    smoothed = value_and_grad("cross_entropy", z, np.array([2]), label_smoothing=0.1)
    assert float(smoothed[0]) == np.inf  # the smoothing puts mass on class 1


def test_masked_errors() -> None:
    z = np.array([[0.0, -np.inf, 1.0]])
    y = np.array([0])
    with pytest.raises(ValueError, match=r"-inf for a masked class is taken by"):
        al.multiclass_hinge(z, y)
    with pytest.raises(ValueError, match="NaN"):
        al.cross_entropy(np.array([[0.0, np.nan]]), y)
    with pytest.raises(ValueError, match=r"\+inf"):
        al.cross_entropy(np.array([[0.0, np.inf]]), y)
    with pytest.raises(ValueError, match="every score is -inf"):
        al.cross_entropy(np.full((1, 3), -np.inf), y)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**16), scale=st.sampled_from([1.0, 30.0, 1e4]))
def test_property_masked_softmax_rows(seed: int, scale: float) -> None:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(6, 5)) * scale
    y = rng.integers(0, 5, size=6)
    mask = rng.random((6, 5)) < 0.4
    mask[np.arange(6), y] = False
    z32 = np.where(mask, -np.inf, z).astype(np.float32)
    value, grad = al.losses.cross_entropy_and_grad(z32, y, reduction="none")
    assert value.dtype == np.float32
    assert np.all(np.isfinite(value))
    assert np.all(grad[mask] == 0)
    np.testing.assert_allclose(grad.sum(axis=1), 0, atol=1e-5)


def test_dask_batch_takes_the_conventions() -> None:
    da = pytest.importorskip("dask.array")
    z, y, cw = _batch(8, 5)
    value, grad = value_and_grad(
        "cross_entropy", z, y, ignore_index=IGNORE, class_weights=cw
    )
    for labels in (da.from_array(y, chunks=3), y):
        lazy, lazy_grad = value_and_grad(
            "cross_entropy", da.from_array(z, chunks=(3, 5)), labels,
            ignore_index=IGNORE, class_weights=cw,
        )  # fmt: skip
        np.testing.assert_allclose(float(lazy), float(value), rtol=1e-14)
        np.testing.assert_allclose(lazy_grad.compute(), grad, rtol=1e-14, atol=0)


def test_dask_bad_class_weights_are_named() -> None:
    """Negative class weights on a Dask batch raised "`weights` must be
    non-negative" from compute(): the block check saw only the product."""
    da = pytest.importorskip("dask.array")
    z, y, cw = _batch(8, 5)
    lazy_z = da.from_array(z, chunks=(3, 5))
    for bad, match in ((-cw, "`class_weights` must be non-negative"),
                       (cw * np.nan, "`class_weights` contain NaN")):  # fmt: skip
        for weights in (bad, da.from_array(bad)):
            with pytest.raises(ValueError, match=match):
                np.asarray(
                    al.cross_entropy(
                        lazy_z, y, ignore_index=IGNORE, class_weights=weights
                    )
                )


def test_torch_adapter_masked_and_ignored() -> None:
    torch = pytest.importorskip("torch")
    import arrayloss.torch as alt

    z, y = _masked_batch()
    y[2] = IGNORE
    zt = torch.tensor(z, requires_grad=True)
    value = alt.cross_entropy(zt, torch.tensor(y), ignore_index=IGNORE)
    value.backward()
    z2 = torch.tensor(z, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(z2, torch.tensor(y), ignore_index=IGNORE)
    ref.backward()
    torch.testing.assert_close(value, ref, rtol=1e-13, atol=0)
    torch.testing.assert_close(zt.grad, z2.grad, rtol=1e-12, atol=1e-16)
    assert torch.all(zt.grad[torch.isinf(zt.detach())] == 0)


# --------------------------------------------------------------------------- #
# The conventions are ordinary keywords of the public functions
# --------------------------------------------------------------------------- #


def test_no_context_variable_carries_the_conventions() -> None:
    import arrayloss._api as api
    import arrayloss._registry as registry

    assert not hasattr(api, "conventions")
    assert not hasattr(registry, "forwarding")


@pytest.mark.parametrize("name", ["cross_entropy", "keras.huber", "topk_svm"])
def test_public_function_takes_the_conventions_directly(name: str) -> None:
    z, y, cw = _batch(6, 8, seed=2)
    info = LOSSES[name]
    kept = y != IGNORE
    value = info.value(z, y, ignore_index=IGNORE, class_weights=cw)
    ref = info.value(z[kept], y[kept], weights=cw[y[kept]])
    np.testing.assert_allclose(value, ref, rtol=1e-12)
    v2, g2 = info.value_and_grad(z, y, ignore_index=IGNORE, class_weights=cw)
    np.testing.assert_allclose(v2, ref, rtol=1e-12)
    assert np.all(g2[~kept] == 0)


def test_conventions_with_soft_labels_are_a_clear_error() -> None:
    z = np.zeros((2, 3))
    soft = np.full((2, 3), 1 / 3)
    with pytest.raises(ValueError, match="`ignore_index` applies to integer"):
        al.cross_entropy(z, soft, ignore_index=IGNORE)
    with pytest.raises(ValueError, match="`class_weights` applies to integer"):
        al.cross_entropy(z, soft, class_weights=np.ones(3))


KINKED = sorted(n for n in LOSSES if n in KINKS)


@pytest.mark.parametrize("name", KINKED)
def test_gradcheck_takes_ignore_index_on_kinked_losses(name: str) -> None:
    # Before: the kink oracle indexed the scores with the label -100 (IndexError).
    z, y, cw = _batch(6, 8, seed=5)
    result = al.gradcheck(name, z, y, ignore_index=IGNORE, class_weights=cw)
    assert result.n_failed == 0, result.reason
    assert result.n_checked >= 2  # the two ignored rows are smooth (loss 0)
    assert result.checked[y == IGNORE].all()

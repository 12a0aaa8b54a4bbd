"""The public API on each backend at its edges: label dtypes, narrow weights,
tensors that require grad, calibration errors under ``jax.jit`` and on Dask.
Each result is compared with NumPy's for the same call."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_allclose

import arrayloss as al
from arrayloss import metrics as M
from arrayloss._xp import to_numpy

METRICS = {
    "accuracy": M.accuracy,
    "top_k_accuracy": lambda z, y, **kw: M.top_k_accuracy(z, y, k=2, **kw),
    "nll": M.nll,
    "brier": M.brier,
    "ece": M.ece,
    "mce": M.mce,
    "rmsce": lambda z, y, **kw: M.rmsce(z, y, strategy="quantile", **kw),
}


def _metric_close(got, want: float, *, rtol: float, name: str) -> None:
    np.testing.assert_allclose(to_numpy(got), want, rtol=rtol, atol=1e-15, err_msg=name)


def _data(n: int = 9, c: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(20261207)
    return rng.normal(size=(n, c)), rng.integers(0, c, size=n)


@pytest.mark.parametrize("label_dtype", ["int8", "uint8", "int16", "int32", "uint64"])
def test_any_integer_label_dtype(backend, label_dtype):
    """Torch's gathers take int64 indices only: every metric raised torch's
    RuntimeError ("take_along_dim(): dtype of indices should be Long") on int8 to
    int32 labels (the losses cast them, the metrics did not); array_api_strict
    raised "int64 and uint64 cannot be type promoted together" from every loss.
    Labels are now the default integer dtype wherever a kernel sees them."""
    if backend.name == "torch" and label_dtype == "uint64":
        pytest.skip("torch: uint64 tensors lack the basic operations")
    z, y = _data()
    zb, yb = backend.asarray(z), backend.asarray(y, label_dtype)
    for name, f in METRICS.items():
        _metric_close(f(zb, yb), float(f(z, y)), rtol=1e-12, name=name)
    for name in ("cross_entropy", "multiclass_hinge"):
        want_v, want_g = al.LOSSES[name].value_and_grad(z, y)
        v, g = al.LOSSES[name].value_and_grad(zb, yb)
        assert_allclose(v, want_v, rtol=1e-12)
        assert_allclose(g, want_g, rtol=1e-12, atol=1e-15)


def test_uint8_labels_beside_more_than_256_classes(backend):
    """The metrics' class numbers were cast to the labels' dtype: past 255 they
    wrapped (class 256 read as class 0), and `brier` on array_api_strict, JAX and
    Dask counted column 256 as the label of every sample of class 0."""
    rng = np.random.default_rng(3)
    z = rng.normal(size=(4, 300))
    y = np.array([0, 5, 255, 3])
    z[:, 256] = z.max() + 1  # class 256 on top of every row
    zb, yb = backend.asarray(z), backend.asarray(y, "uint8")
    for name, f in METRICS.items():
        _metric_close(f(zb, yb), float(f(z, y)), rtol=1e-12, name=name)


@pytest.mark.parametrize("weight_dtype", ["float16", "float32"])
def test_narrower_weights_are_divided_in_the_scores_dtype(backend, weight_dtype):
    """Weights narrower than the scores were divided by their largest one in
    their own dtype: float16 weights moved a float64 mean by about 1e-4 (and JAX
    by another amount than NumPy), float32 ones by about 1e-8.  The mean is now
    that of the same weights given in float64."""
    if backend.name == "array_api_strict" and weight_dtype == "float16":
        pytest.skip("array_api_strict has no float16")
    z, y = _data()
    w = np.random.default_rng(1).uniform(0.05, 1.0, size=9).astype(weight_dtype)
    exact = w.astype(np.float64)
    zb, yb, wb = backend.asarray(z), backend.asarray(y), backend.asarray(w)
    want_v, want_g = al.cross_entropy_and_grad(z, y, weights=exact)
    v, g = al.cross_entropy_and_grad(zb, yb, weights=wb)
    assert_allclose(v, want_v, rtol=1e-13)
    assert_allclose(g, want_g, rtol=1e-13, atol=1e-16)
    for name, f in METRICS.items():
        want = float(f(z, y, weights=exact))
        _metric_close(f(zb, yb, weights=wb), want, rtol=1e-13, name=name)


def test_metrics_of_tensors_that_require_grad_are_quiet():
    """Reading the largest weight (and a probability row's sum for a message) as
    a Python float warned "Converting a tensor with requires_grad=True to a
    scalar" for weights that require grad; the metric stays differentiable."""
    torch = pytest.importorskip("torch")
    z, y = _data()
    always = torch.is_warn_always_enabled()
    torch.set_warn_always(True)  # else torch warns once per process
    try:
        zt = torch.asarray(z, requires_grad=True)
        wt = torch.asarray(np.linspace(0.5, 1.0, 9), requires_grad=True)
        for name, f in METRICS.items():
            got = f(zt, torch.asarray(y), weights=wt)
            assert got.requires_grad, name
            want = float(f(z, y, weights=np.linspace(0.5, 1.0, 9)))
            assert float(got.detach()) == pytest.approx(want, rel=1e-12), name
        p = torch.softmax(zt, dim=0)  # rows that do not sum to 1
        with pytest.raises(ValueError, match=r"row 0 probabilities sum to"):
            M.nll(p, torch.asarray(y), input="probs")
        with pytest.raises(ValueError, match=r"must be non-negative \(found -1"):
            M.nll(zt, torch.asarray(y), weights=wt - 1.5)
    finally:
        torch.set_warn_always(always)


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
@pytest.mark.parametrize("name", ["ece", "mce", "rmsce"])
def test_calibration_errors_under_jax_jit(name, strategy):
    """They read their total weight as a Python float: under `jax.jit`,
    JAX's ConcretizationTypeError.  Traced, the check is left out, as the other
    metrics' and the losses' value checks are."""
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    z, y = _data()
    w = np.linspace(0.0, 1.0, 9)
    f = getattr(M, name)
    run = jax.jit(lambda z, y, w: f(z, y, weights=w, strategy=strategy))
    got = run(jnp.asarray(z), jnp.asarray(y), jnp.asarray(w))
    assert float(got) == pytest.approx(float(f(z, y, weights=w, strategy=strategy)),
                                       rel=1e-12)  # fmt: skip


@pytest.mark.parametrize("name", ["ece", "mce", "rmsce"])
def test_dask_calibration_errors_stay_lazy(name):
    """On Dask they computed the total weight at the call (raising there on all
    zero weights); now nothing is computed until asked, and the all-zero error
    is raised by ``compute()``, as for the other metrics."""
    da = pytest.importorskip("dask.array")
    z, y = _data()
    zd, yd = da.from_array(z, chunks=3), da.from_array(y, chunks=3)
    out = getattr(M, name)(zd, yd, weights=da.zeros(9, chunks=3))
    with pytest.raises(ValueError, match="non-zero weight"):
        out.compute()
    got = getattr(M, name)(zd, yd).compute()
    assert float(got) == pytest.approx(float(getattr(M, name)(z, y)), rel=1e-12)


def _bad_batches() -> dict[str, tuple[np.ndarray, np.ndarray, dict[str, object], str]]:
    z, y = _data()
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    nan = z.copy()
    nan[7, 1] = np.nan
    off = p.copy()
    off[4] *= 1.5
    return {
        "nan": (nan, y, {}, "row 7 contains NaN"),
        "label": (z, np.where(np.arange(9) == 5, 4, y), {}, r"found 4\)"),
        "probs": (off, y, {"input": "probs"}, "row 4 probabilities sum to"),
        "weights": (z, y, {"weights": np.linspace(-0.5, 1.0, 9)}, "non-negative"),
    }


@pytest.mark.parametrize("case", ["nan", "label", "probs", "weights"])
def test_dask_metrics_check_values_when_computed(case):
    """The metrics ran no value check on Dask: NaN scores, an out-of-range label
    or negative weights gave NaN and probabilities that do not sum to 1 a number,
    where NumPy raises.  The blocks check now, when computed (`_api.dask_checked`),
    with NumPy's message (the row counted in the whole batch)."""
    da = pytest.importorskip("dask.array")
    z, y, kw, match = _bad_batches()[case]
    for name, f in METRICS.items():
        with pytest.raises(ValueError, match=match) as want:
            f(z, y, **kw)
        lazy = {k: da.from_array(v, chunks=3) if isinstance(v, np.ndarray) else v
                for k, v in kw.items()}  # fmt: skip
        out = f(da.from_array(z, chunks=3), da.from_array(y, chunks=3), **lazy)
        with pytest.raises(ValueError, match=match) as got:
            out.compute()
        assert str(got.value) == str(want.value), name


def test_esp_of_a_tensor_that_requires_grad_is_quiet():
    """`log_elementary_symmetric` read its input's largest and smallest entries
    as Python floats: "Converting a tensor with requires_grad=True to a scalar"
    for a tensor that requires grad.  Autograd's gradient is still the exact one."""
    torch = pytest.importorskip("torch")
    from arrayloss.esp import log_elementary_symmetric

    always = torch.is_warn_always_enabled()
    torch.set_warn_always(True)  # else torch warns once per process
    try:
        x = np.random.default_rng(4).normal(size=(3, 5))
        for k in (1, 3):
            xt = torch.asarray(x, requires_grad=True)
            out = log_elementary_symmetric(xt, k)
            assert_allclose(out, log_elementary_symmetric(x, k), rtol=1e-13)
            assert torch.autograd.gradcheck(
                lambda a, k=k: log_elementary_symmetric(a, k), (xt,)
            )
    finally:
        torch.set_warn_always(always)

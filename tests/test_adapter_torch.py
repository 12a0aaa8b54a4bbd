"""`arrayloss.torch`: every loss as one autograd node with the analytic gradient,
and the core's own handling of tensors that require grad (issue 11's crashes)."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import arrayloss as al

torch = pytest.importorskip("torch")
alt = pytest.importorskip("arrayloss.torch")
F = torch.nn.functional

NAMES = list(al.LOSSES)
N, C = 6, 7
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _fn(name):
    if name.startswith("keras."):
        return getattr(alt.keras, name.split(".", 1)[1])
    return getattr(alt, name)


def _inputs(seed=0, dtype=torch.float64, device="cpu", n=N, c=C):
    g = torch.Generator().manual_seed(seed)
    z = (2 * torch.randn(n, c, generator=g, dtype=dtype)).to(device)
    y = torch.randint(0, c, (n,), generator=g).to(device)
    soft = torch.softmax(torch.randn(n, c, generator=g, dtype=dtype), dim=1)
    return z, y, soft.to(device)


def _core(name, z, labels, **options):
    """The core's value and gradient as the adapter computes them: on NumPy views
    for CPU tensors (see `arrayloss._torch_compat`), with torch on CUDA."""
    info = al.LOSSES[name]
    if z.device.type != "cpu":
        return info.value_and_grad(z.detach(), labels, **options)
    w = options.pop("weights", None)
    v, g = info.value_and_grad(
        z.detach().numpy(), labels.numpy(), weights=None if w is None else w.numpy(),
        **options,
    )  # fmt: skip
    return torch.from_numpy(np.asarray(v)), torch.from_numpy(g)


def _single_node(value, leaf):
    """``value.grad_fn`` is one node whose inputs are the leaves (no graph inside)."""
    fn = value.grad_fn
    assert type(fn).__name__ == "_AnalyticLossBackward"
    nexts = [f for f, _ in fn.next_functions if f is not None]
    assert nexts, "the loss node has no input"
    assert all(type(f).__name__ == "AccumulateGrad" for f in nexts)
    assert any(f.variable is leaf for f in nexts)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("name", NAMES)
def test_every_loss_matches_the_core_value_and_gradient(name, reduction, device):
    z0, y, soft = _inputs(device=device)
    cases = [y] + ([soft] if "soft" in al.LOSSES[name].targets else [])
    for labels in cases:
        z = z0.clone().requires_grad_(True)
        value = _fn(name)(z, labels, reduction=reduction)
        _single_node(value, z)
        ct = torch.linspace(0.5, 2.0, N, dtype=z.dtype, device=device)
        (value * ct).sum().backward() if reduction == "none" else value.backward()
        ref_v, ref_g = _core(name, z0, labels, reduction=reduction)
        if reduction == "none":
            ref_g = ref_g * ct[:, None]
        assert value.dtype == z0.dtype
        assert value.device == z0.device
        torch.testing.assert_close(value.detach(), ref_v, rtol=0, atol=0)
        torch.testing.assert_close(z.grad, ref_g, rtol=0, atol=0)
        # The torch kernels (the core on detached tensors) agree to rounding.
        tv, tg = al.LOSSES[name].value_and_grad(z0, labels, reduction=reduction)
        tg = tg * ct[:, None] if reduction == "none" else tg
        torch.testing.assert_close(value.detach(), tv, rtol=1e-12, atol=1e-300)
        torch.testing.assert_close(z.grad, tg, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("name", NAMES)
def test_gradcheck_in_float64(name):
    # Scores in a kink-free region with overwhelming probability for the piecewise
    # losses (finite differences of 1e-6 rarely straddle a kink).
    z, y, _ = _inputs(seed=3)
    z.requires_grad_(True)
    fn = _fn(name)
    assert torch.autograd.gradcheck(lambda s: fn(s, y, reduction="none"), (z,))
    assert torch.autograd.gradcheck(lambda s: fn(s, y), (z,))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", ["cross_entropy", "smooth_topk_svm"])
def test_gradcheck_with_weights_that_require_grad(name, reduction):
    z, y, _ = _inputs(seed=4)
    z.requires_grad_(True)
    w = torch.linspace(0.1, 2.0, N, dtype=torch.float64).requires_grad_(True)
    fn = _fn(name)
    assert torch.autograd.gradcheck(
        lambda s, v: fn(s, y, weights=v, reduction=reduction, axis=1), (z, w)
    )


def test_class_axis_and_batch_dims():
    g = torch.Generator().manual_seed(5)
    z = torch.randn(3, C, 4, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, C, (3, 4), generator=g)
    assert torch.autograd.gradcheck(
        lambda s: alt.smooth_topk_svm(s, y, k=2, axis=1, reduction="none"), (z,)
    )


def test_cross_entropy_through_a_linear_layer_equals_torch():
    g = torch.Generator().manual_seed(6)
    x = torch.randn(32, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, C, (32,), generator=g)
    class_w = torch.rand(C, generator=g, dtype=torch.float64) + 0.1
    for kw, ref_kw in (
        ({}, {}),
        ({"label_smoothing": 0.1}, {"label_smoothing": 0.1}),
        ({"weights": class_w[y]}, {"weight": class_w}),  # PyTorch's `weight=`
        ({"reduction": "sum"}, {"reduction": "sum"}),
    ):
        grads = []
        for loss in (alt.cross_entropy, F.cross_entropy):
            torch.manual_seed(0)
            layer = torch.nn.Linear(5, C, dtype=torch.float64)
            out = loss(layer(x), y, **(kw if loss is alt.cross_entropy else ref_kw))
            out.backward()
            grads.append((out.detach(), layer.weight.grad, layer.bias.grad))
        for ours, ref in zip(*grads, strict=True):
            torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-15)


def _smooth_topk_reference(s, y, k, tau=1.0, alpha=1.0):
    """The smooth top-k SVM in plain torch ops (log-space ESP recursion), for autograd."""
    n, c = s.shape
    x = s / (k * tau)
    # A huge finite "log 0" (exp underflows to exactly 0): -inf would make the
    # gradients of logaddexp NaN.
    log0 = -1e30
    others = x.masked_fill(F.one_hot(y, c).bool(), log0)
    # log e_j for j = 0..k over the classes seen so far, e_0 = 1.
    log_e = [torch.zeros(n, dtype=s.dtype)] + [
        torch.full((n,), log0, dtype=s.dtype) for _ in range(k)
    ]
    for i in range(c):
        xi = others[:, i]
        log_e = [log_e[0]] + [
            torch.logaddexp(log_e[j], log_e[j - 1] + xi) for j in range(1, k + 1)
        ]
    r = alpha / tau + log_e[k] - log_e[k - 1] - x.gather(1, y[:, None])[:, 0]
    return (tau * F.softplus(r)).mean()


def test_smooth_topk_through_a_linear_layer_equals_autograd_of_the_maths():
    g = torch.Generator().manual_seed(7)
    x = torch.randn(16, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, C, (16,), generator=g)
    grads = []
    for loss in (
        lambda s: alt.smooth_topk_svm(s, y, k=3, tau=0.5),
        lambda s: _smooth_topk_reference(s, y, k=3, tau=0.5),
    ):
        torch.manual_seed(0)
        layer = torch.nn.Linear(5, C, dtype=torch.float64)
        out = loss(layer(x))
        out.backward()
        grads.append((out.detach(), layer.weight.grad, layer.bias.grad))
    for ours, ref in zip(*grads, strict=True):
        torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-14)


def test_float32_stays_float32_and_never_warns():
    z, y, _ = _inputs(dtype=torch.float32)
    z.requires_grad_(True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = alt.smooth_topk_svm(z, y, k=2)
        value.backward()
    assert value.dtype == torch.float32
    assert z.grad.dtype == torch.float32
    zb = z.detach().to(torch.bfloat16).requires_grad_(True)  # torch kernels (no NumPy)
    alt.cross_entropy(zb, y).backward()
    assert zb.grad.dtype == torch.bfloat16


def test_the_core_on_a_tensor_that_requires_grad():
    """Issue 11: no UserWarning, no graph inside, and ``value.backward()`` works."""
    z0, y, _ = _inputs(seed=8)
    z = z0.clone().requires_grad_(True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = al.smooth_topk_svm(z, y, k=2)
        _single_node(value, z)
        value.backward()
        v2, g2 = al.smooth_topk_svm_and_grad(z, y, k=2)
    _, ref = _core("smooth_topk_svm", z0, y, k=2)
    torch.testing.assert_close(z.grad, ref, rtol=0, atol=0)
    assert v2.grad_fn is not None
    assert not g2.requires_grad
    torch.testing.assert_close(g2, ref, rtol=0, atol=0)
    with torch.no_grad():
        assert al.cross_entropy(z, y).grad_fn is None


@pytest.mark.parametrize(
    "dtype", ["int8", "int16", "int32", "uint8"], ids=lambda d: f"labels-{d}"
)
def test_every_integer_label_dtype_works(dtype):
    """Issue 11: torch int32/int16/uint8 labels raised torch errors."""
    z, y, _ = _inputs(seed=9)
    for name, info in al.LOSSES.items():
        ref_v, ref_g = info.value_and_grad(z, y)
        v, g = info.value_and_grad(z, y.to(getattr(torch, dtype)))
        torch.testing.assert_close(v, ref_v, rtol=0, atol=0, msg=name)
        torch.testing.assert_close(g, ref_g, rtol=0, atol=0, msg=name)
    zz = z.clone().requires_grad_(True)
    alt.topk_svm(zz, y.to(getattr(torch, dtype)), k=2).backward()
    assert torch.isfinite(zz.grad).all()


def test_module():
    crit = alt.loss("smooth_topk_svm", k=3, tau=0.5)
    assert isinstance(crit, torch.nn.Module)
    assert repr(crit) == "Loss('smooth_topk_svm', k=3, tau=0.5)"
    z, y, _ = _inputs(seed=10)
    z.requires_grad_(True)
    w = torch.linspace(0.5, 1.5, N, dtype=torch.float64)
    value = crit(z, y, w)
    value.backward()
    ref_v, ref_g = _core("smooth_topk_svm", z, y, k=3, tau=0.5, weights=w)
    torch.testing.assert_close(value.detach(), ref_v)
    torch.testing.assert_close(z.grad, ref_g)
    assert alt.loss("keras.huber", delta=0.5)(z, y).grad_fn is not None


def test_module_pickles_as_part_of_a_model():
    """`torch.save(model)` (pickle) of a model holding the loss module, and a
    deep copy: the loss comes back computing the same value and gradient."""
    import copy
    import io
    import pickle

    crit = alt.loss("cross_entropy", label_smoothing=0.1, ignore_index=2)
    model = torch.nn.Sequential(torch.nn.Linear(C, C, dtype=torch.float64))
    model.crit = crit
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    for other in (loaded.crit, pickle.loads(pickle.dumps(crit)), copy.deepcopy(crit)):
        assert repr(other) == repr(crit)
        z, y, _ = _inputs(seed=3)
        a, b = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
        va, vb = crit(a, y), other(b, y)
        va.backward()
        vb.backward()
        torch.testing.assert_close(vb, va)
        torch.testing.assert_close(b.grad, a.grad)


@pytest.mark.parametrize("which", ["logits", "labels", "weights"])
@pytest.mark.parametrize("core", [True, False])
def test_meta_tensors_are_a_clear_error(core, which):
    """A 'meta' tensor holds no values: a `TypeError` naming it, not torch's
    "Tensor.item() cannot be called on meta tensors" from a value check."""
    z, y, _ = _inputs()
    w = torch.ones(N, dtype=torch.float64)
    arrays = {"logits": z.requires_grad_(True), "labels": y, "weights": w}
    arrays[which] = arrays[which].detach().to("meta")
    f = al.cross_entropy if core else alt.cross_entropy
    with pytest.raises(TypeError, match=rf"`{which}` is a tensor on the 'meta'"):
        f(arrays["logits"], arrays["labels"], weights=arrays["weights"])


@pytest.mark.parametrize("device", DEVICES)
def test_module_class_weights_move_with_the_module(device):
    """Tensor class weights are a buffer, as `torch.nn.CrossEntropyLoss`'s
    ``weight``: `.to(device)` moved the model but left them behind (a device
    mismatch on CUDA), and `state_dict` had no entry for them."""
    cw = torch.linspace(0.5, 2.0, C, dtype=torch.float64)
    crit = alt.loss("cross_entropy", class_weights=cw, label_smoothing=0.1)
    assert list(crit.state_dict()) == ["class_weights"]
    crit = crit.to(device)
    assert crit.class_weights.device.type == device
    assert "class_weights=tensor(" in repr(crit)
    z, y, _ = _inputs(device=device)
    z.requires_grad_(True)
    value = crit(z, y)
    want = al.cross_entropy(z.detach(), y, class_weights=cw.to(device),
                            label_smoothing=0.1)  # fmt: skip
    torch.testing.assert_close(value.detach(), want)
    half = alt.loss("cross_entropy", class_weights=cw).to(torch.float32)
    assert half.class_weights.dtype == torch.float32  # as a buffer converts


def test_module_and_function_errors():
    with pytest.raises(ValueError, match="unknown loss 'smooth_topk'"):
        alt.loss("smooth_topk")
    with pytest.raises(TypeError, match="bogus"):
        alt.loss("cross_entropy", bogus=1)
    with pytest.raises(TypeError, match="pass `weights` to `forward`"):
        alt.loss("cross_entropy", weights=torch.ones(3))
    z, y, soft = _inputs()
    with pytest.raises(TypeError, match="takes torch tensors"):
        alt.cross_entropy(z.numpy(), y.numpy())
    with pytest.raises(
        ValueError, match=r"`k` must be an integer with 1 <= k < n_classes"
    ):
        alt.smooth_topk_svm(z.requires_grad_(True), y, k=C)
    with pytest.raises(ValueError, match="no gradient with respect to soft `labels`"):
        alt.kl_divergence(z, soft.requires_grad_(True))


@pytest.mark.parametrize("logits_grad", [True, False])
@pytest.mark.parametrize("core", [True, False])
def test_class_weights_that_require_grad_are_refused(core, logits_grad):
    """They got no gradient (``cw.grad`` stayed None), or with logits that do not
    require grad one autograd took through the front end: refused as soft labels
    are, and as PyTorch refuses a ``weight=`` that requires grad."""
    z, y, _ = _inputs()
    z.requires_grad_(logits_grad)
    cw = torch.linspace(0.5, 2.0, C, dtype=torch.float64, requires_grad=True)
    f = al.cross_entropy if core else alt.cross_entropy
    with pytest.raises(ValueError, match=r"`class_weights` is provided.*detach\(\)"):
        f(z, y, class_weights=cw)
    value = f(z, y, class_weights=cw.detach())  # the advice works
    ref = torch.nn.functional.cross_entropy(z, y, weight=cw.detach())
    torch.testing.assert_close(value, ref)
    with torch.no_grad():  # nothing to differentiate: no error
        torch.testing.assert_close(f(z, y, class_weights=cw), ref.detach())


def test_names_and_signatures_follow_the_registry():
    import inspect

    for name, info in al.LOSSES.items():
        fn = _fn(name)
        assert fn.__name__ == name.rsplit(".", 1)[-1]
        assert inspect.signature(fn) == inspect.signature(info.value)


# PyTorch 2.13's own `torch.compile` start-up warns about its deprecated TorchScript.
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated")
def test_torch_compile_around_the_loss():
    """The loss is one opaque call: the layers around it compile (``aot_eager``:
    dynamo and AOTAutograd without a C++ build; ``inductor`` works the same)."""
    g = torch.Generator().manual_seed(11)
    x = torch.randn(8, 5, generator=g)
    y = torch.randint(0, C, (8,), generator=g)
    layer = torch.nn.Linear(5, C)

    def step(x, y):
        return alt.smooth_topk_svm(torch.tanh(layer(x)), y, k=2)

    grads = []
    for fn in (step, torch.compile(step, backend="aot_eager")):
        layer.zero_grad()
        value = fn(x, y)
        value.backward()
        grads.append((value.detach(), layer.weight.grad.clone()))
    torch.testing.assert_close(grads[0], grads[1])


@given(
    n=st.integers(1, 5),
    c=st.integers(2, 6),
    scale=st.floats(0.1, 10.0),
    reduction=st.sampled_from(["mean", "sum", "none"]),
    seed=st.integers(0, 2**16),
)
def test_backward_is_the_saved_gradient_times_grad_output(n, c, scale, reduction, seed):
    """For any cotangent, backward = analytic gradient times it (chain rule)."""
    z, y, _ = _inputs(seed=seed, n=n, c=c)
    z = (scale * z).requires_grad_(True)
    value = alt.cross_entropy(z, y, reduction=reduction)
    ct = torch.rand(
        value.shape, dtype=z.dtype, generator=torch.Generator().manual_seed(seed)
    )
    (g,) = torch.autograd.grad(value, z, ct)
    _, ref = _core("cross_entropy", z, y, reduction=reduction)
    expect = ref * (ct[:, None] if reduction == "none" else ct)
    torch.testing.assert_close(g, expect, rtol=0, atol=0)


def test_import_arrayloss_imports_neither_torch_nor_jax():
    code = (
        "import sys, arrayloss; "
        "bad = [m for m in ('torch', 'jax') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _readme_block(marker: str) -> str:
    text = (Path(__file__).parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    found = [b for b in blocks if marker in b]
    assert len(found) == 1, f"README has {len(found)} blocks with {marker!r}"
    return textwrap.dedent(found[0])


def test_readme_training_loop_runs():
    code = _readme_block("import arrayloss.torch")
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    losses = np.asarray(namespace["history"])
    assert losses[-1] < losses[0]


# --------------------------------------------------------------------------- #
# torch.func: grad, vmap, jacrev (the autograd node's setup_context and vmap rule)
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("core", [False, True])
@pytest.mark.parametrize("name", ["cross_entropy", "smooth_topk_svm", "kl_divergence"])
def test_torch_func_grad_equals_autograd(name, core):
    z0, y, soft = _inputs(seed=21)
    labels = soft if name == "kl_divergence" else y
    fn = al.LOSSES[name].value if core else _fn(name)
    got = torch.func.grad(lambda s: fn(s, labels))(z0)
    z = z0.clone().requires_grad_(True)
    fn(z, labels).backward()
    torch.testing.assert_close(got, z.grad, rtol=0, atol=0)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_torch_func_grad_of_the_weights_equals_autograd(reduction):
    z, y, _ = _inputs(seed=22)
    w0 = torch.linspace(0.1, 2.0, N, dtype=torch.float64)
    cw = torch.linspace(0.5, 2.0, C, dtype=torch.float64)

    def f(w):
        v = alt.cross_entropy(z, y, weights=w, reduction=reduction,
                              ignore_index=int(y[0]), class_weights=cw)  # fmt: skip
        return v.sum()

    got = torch.func.grad(f)(w0)
    w = w0.clone().requires_grad_(True)
    f(w).backward()
    torch.testing.assert_close(got, w.grad, rtol=0, atol=0)


@pytest.mark.parametrize("core", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_torch_func_vmap_equals_a_loop(reduction, core):
    g = torch.Generator().manual_seed(23)
    zs = torch.randn(3, N, C, generator=g, dtype=torch.float64)
    ys = torch.randint(0, C, (3, N), generator=g)
    ws = torch.rand(3, N, generator=g, dtype=torch.float64)
    fn = al.smooth_topk_svm if core else alt.smooth_topk_svm
    # The core on CPU tensors that need no grad runs the torch kernels, the
    # autograd node (which vmap goes through) the NumPy ones: equal to rounding.
    tol = {"rtol": 1e-13, "atol": 1e-15} if core else {"rtol": 0, "atol": 0}

    def f(z, y, w):
        return fn(z, y, weights=w, k=2, reduction=reduction)

    got = torch.func.vmap(f)(zs, ys, ws)
    want = torch.stack([f(zs[i], ys[i], ws[i]) for i in range(3)])
    torch.testing.assert_close(got, want, **tol)
    # Shared labels (in_dims None), the batch on another dimension.
    got = torch.func.vmap(lambda z: fn(z, ys[0], k=2), in_dims=1)(zs.movedim(0, 1))
    want = torch.stack([fn(zs[i], ys[0], k=2) for i in range(3)])
    torch.testing.assert_close(got, want, **tol)


def test_torch_func_per_sample_gradients_equal_a_loop():
    """``vmap(grad(f))``: the per-sample gradients of the logits and weights."""
    g = torch.Generator().manual_seed(24)
    zs = torch.randn(4, N, C, generator=g, dtype=torch.float64)
    ys = torch.randint(0, C, (4, N), generator=g)
    ws = torch.rand(4, N, generator=g, dtype=torch.float64)

    def f(z, w, y):
        return alt.cross_entropy(z, y, weights=w, label_smoothing=0.1)

    gz, gw = torch.func.vmap(torch.func.grad(f, argnums=(0, 1)))(zs, ws, ys)
    for i in range(4):
        z, w = zs[i].clone().requires_grad_(True), ws[i].clone().requires_grad_(True)
        f(z, w, ys[i]).backward()
        torch.testing.assert_close(gz[i], z.grad, rtol=0, atol=0)
        torch.testing.assert_close(gw[i], w.grad, rtol=0, atol=0)


def test_autograd_and_torch_func_grad_through_vmap():
    """``grad(vmap(f))`` and a backward through a vmapped loss: each slice's node
    is on the graph."""
    g = torch.Generator().manual_seed(29)
    zs = torch.randn(3, N, C, generator=g, dtype=torch.float64)
    ys = torch.randint(0, C, (3, N), generator=g)

    def batched(z):
        return torch.func.vmap(lambda s, t: alt.smooth_topk_svm(s, t, k=2))(z, ys)

    z1 = zs.clone().requires_grad_(True)
    sum(alt.smooth_topk_svm(z1[i], ys[i], k=2) for i in range(3)).backward()
    got = torch.func.grad(lambda z: batched(z).sum())(zs)
    torch.testing.assert_close(got, z1.grad, rtol=0, atol=1e-15)
    z2 = zs.clone().requires_grad_(True)
    batched(z2).sum().backward()
    torch.testing.assert_close(z2.grad, z1.grad, rtol=0, atol=1e-15)


def test_torch_func_vjp_pullback_called_after_the_transform():
    """`torch.func.vjp`'s pullback runs outside the transform, with the graph
    built (``create_graph`` defaults to grad mode): it is the autograd gradient,
    not the eager refusal of ``create_graph=True``."""
    z, y, _ = _inputs(seed=28)
    w = torch.linspace(0.1, 2.0, N, dtype=torch.float64)

    def f(s, v):
        return alt.smooth_topk_svm(s, y, weights=v, k=2, reduction="none")

    _, pull = torch.func.vjp(f, z, w)
    ct = torch.linspace(0.5, 2.0, N, dtype=torch.float64)
    gz, gw = pull(ct)
    z1, w1 = z.clone().requires_grad_(True), w.clone().requires_grad_(True)
    (f(z1, w1) * ct).sum().backward()
    torch.testing.assert_close(gz, z1.grad, rtol=0, atol=0)
    torch.testing.assert_close(gw, w1.grad, rtol=0, atol=0)


def test_torch_func_jacrev_of_reduction_none_is_the_stacked_gradients():
    z, y, _ = _inputs(seed=25)
    jac = torch.func.jacrev(lambda s: alt.smooth_topk_svm(s, y, k=3, reduction="none"))(
        z
    )
    assert jac.shape == (N, N, C)
    _, rows = _core("smooth_topk_svm", z, y, k=3, reduction="none")
    want = torch.zeros(N, N, C, dtype=z.dtype)
    want[torch.arange(N), torch.arange(N)] = rows  # loss i depends on row i only
    torch.testing.assert_close(jac, want, rtol=0, atol=0)


def test_torch_func_keeps_the_eager_errors_and_refuses_second_derivatives():
    g = torch.Generator().manual_seed(26)
    zs = torch.randn(3, N, C, generator=g, dtype=torch.float64)
    ys = torch.randint(0, C, (3, N), generator=g)
    ys[1, 2] = C
    with pytest.raises(ValueError, match="class indices in") as eager:
        alt.cross_entropy(zs[1], ys[1])
    with pytest.raises(ValueError, match="class indices in") as vmapped:
        torch.func.vmap(alt.cross_entropy)(zs, ys)
    assert str(vmapped.value) == str(eager.value)
    with pytest.raises(ValueError, match="no gradient with respect to soft `labels`"):
        torch.func.grad(lambda t: alt.kl_divergence(zs[0], t))(torch.softmax(zs[0], 1))
    y = ys[0]
    with pytest.raises(RuntimeError, match="first derivatives only"):
        torch.func.grad(
            lambda z: torch.func.grad(lambda s: alt.cross_entropy(s, y))(z).sum()
        )(zs[0])
    with pytest.raises(RuntimeError, match="first derivatives only"):
        torch.func.jacrev(torch.func.grad(lambda s: alt.cross_entropy(s, y)))(zs[0])
    with pytest.raises(NotImplementedError, match="over `class_weights`"):
        torch.func.vmap(lambda cw: alt.cross_entropy(zs[0], y, class_weights=cw))(
            torch.rand(3, C, dtype=torch.float64)
        )


@pytest.mark.parametrize("how", ["function", "module", "core", "grad"])
def test_numpy_weights_are_refused_naming_the_argument_and_the_fix(how):
    """As `torch.nn.functional.cross_entropy` refuses a NumPy ``weight=``, with a
    message that names `weights` and how to convert them (not a list of
    array_api_compat modules)."""
    z, y, _ = _inputs()
    w = np.linspace(0.5, 2.0, N)
    msg = (
        "`weights` is a NumPy array but `logits` is a torch tensor: the arrays must "
        "be of one array library; pass `torch.as_tensor(weights, device=logits.device)`"
    )
    call = {
        "function": lambda: alt.cross_entropy(z, y, weights=w),
        "module": lambda: alt.loss("cross_entropy")(z, y, w),
        "core": lambda: al.cross_entropy(z, y, weights=w),
        "grad": lambda: alt.cross_entropy(z.requires_grad_(True), y, weights=w),
    }[how]
    with pytest.raises(TypeError) as err:
        call()
    assert str(err.value) == msg
    # The advice works.
    value = alt.cross_entropy(z, y, weights=torch.as_tensor(w, device=z.device))
    torch.testing.assert_close(
        value.detach(), al.cross_entropy(z.detach(), y, weights=torch.as_tensor(w))
    )


def test_code_ported_from_torch_nn_cross_entropy_gets_the_arrayloss_spelling():
    """PyTorch's ``weight=``, its default ``ignore_index=-100`` and its
    (N, C, d1, ...) layout: the errors say what arrayloss calls them."""
    z, y, _ = _inputs()
    cw = torch.linspace(0.5, 2.0, C, dtype=torch.float64)
    hint = r"PyTorch's `weight=` is `class_weights=` here"
    with pytest.raises(
        TypeError, match=r"`cross_entropy` has no parameter 'weight'.*" + hint
    ):
        alt.loss("cross_entropy", weight=cw)
    with pytest.raises(
        TypeError, match=r"`cross_entropy` has no parameter 'weight'.*" + hint
    ):
        alt.cross_entropy(z, y, weight=cw)
    with pytest.raises(TypeError, match=r"PyTorch's `size_average=` is `reduction=`"):
        alt.loss("cross_entropy", size_average=False)
    torch.testing.assert_close(
        alt.loss("cross_entropy", class_weights=cw)(z, y),
        F.cross_entropy(z, y, weight=cw),
    )
    y100 = y.clone()
    y100[0] = -100
    with pytest.raises(
        ValueError, match=r"\(found -100\); PyTorch ignores -100 by default"
    ):
        alt.cross_entropy(z, y100)
    torch.testing.assert_close(
        alt.cross_entropy(z, y100, ignore_index=-100), F.cross_entropy(z, y100)
    )
    g = torch.Generator().manual_seed(27)
    z4 = torch.randn(2, C, 3, 4, generator=g, dtype=torch.float64)
    y4 = torch.randint(0, C, (2, 3, 4), generator=g)
    with pytest.raises(ValueError, match=r"classes on axis 1: pass axis=1"):
        alt.cross_entropy(z4, y4, reduction="none")
    got = alt.cross_entropy(z4, y4, axis=1, reduction="none")
    assert got.shape == (2, 3, 4)
    torch.testing.assert_close(got, F.cross_entropy(z4, y4, reduction="none"))


# --------------------------------------------------------------------------- #
# torch.func.vmap as one call; forward mode; second derivatives refused
# --------------------------------------------------------------------------- #


# PyTorch 2.13's forward mode loads its decompositions on first use through the
# deprecated `torch.jit.script` (torch's own warning, once per process).
_TORCH_FORWARD_AD_WARNS = pytest.mark.filterwarnings(
    "ignore:`torch.jit.script` is deprecated:DeprecationWarning"
)


def _count_forwards(monkeypatch):
    """The number of times the autograd node's forward runs the core."""
    from arrayloss import _torch_compat

    seen = []
    real = _torch_compat._as_numpy

    def counted(*args):
        seen.append(1)
        return real(*args)

    monkeypatch.setattr(_torch_compat, "_as_numpy", counted)
    return seen


def _batched_inputs(seed, *batch, c=C):
    g = torch.Generator().manual_seed(seed)
    z = 2 * torch.randn(*batch, c, generator=g, dtype=torch.float64)
    y = torch.randint(0, c, batch, generator=g)
    soft = torch.softmax(torch.randn(*batch, c, generator=g, dtype=torch.float64), -1)
    w = torch.rand(*batch, generator=g, dtype=torch.float64)
    return z, y, soft, w


def _options(conv, y):
    if conv == "ignore_index":
        return {"ignore_index": int(y.reshape(-1)[0])}
    if conv == "class_weights":
        return {"class_weights": torch.linspace(0.2, 2.0, C, dtype=torch.float64)}
    return {}


@pytest.mark.parametrize("name", NAMES)
def test_torch_func_vmap_is_one_call_equal_to_the_loop_bit_for_bit(name, monkeypatch):
    """The vmapped slices run as one call on their rows end to end, each reduced
    on its own: the value and the per-sample gradients (``vmap(grad(f))``) are
    those of a call per slice, bit for bit, for every reduction, hard and soft
    labels, weights and the conventions, and shared (unbatched) labels and
    weights.  Keras' hinge losses with soft labels convert the labels batch-wide:
    a call per slice."""
    b = 3
    zs, ys, soft, ws = _batched_inputs(31, b, N)
    f = _fn(name)
    labels = [ys] + (
        [soft] if "soft" in al.LOSSES[name].targets else []
    )  # fmt: skip
    seen = _count_forwards(monkeypatch)
    for lab in labels:
        convs = (
            [None]
            if lab.dtype.is_floating_point
            else [None, "ignore_index", "class_weights"]
        )
        per_slice = name in ("keras.hinge", "keras.squared_hinge") and lab is soft
        for reduction in ("mean", "sum", "none"):
            for conv in convs:
                kw = {"reduction": reduction, **_options(conv, ys)}
                for dims in ((0, 0, 0), (0, None, None), (1, 0, None)):
                    z_in = zs.movedim(0, 1) if dims[0] == 1 else zs
                    t_in = lab if dims[1] == 0 else lab[0]
                    w_in = ws if dims[2] == 0 else ws[0]

                    def h(z, t, w, kw=kw):
                        return f(z, t, weights=w, **kw)

                    def slice_of(i, dims=dims, t_in=t_in, w_in=w_in):
                        t = t_in[i] if dims[1] == 0 else t_in
                        w = w_in[i] if dims[2] == 0 else w_in
                        return t, w

                    seen.clear()
                    got = torch.func.vmap(h, in_dims=dims)(z_in, t_in, w_in)
                    # the tried call, then one per slice
                    assert len(seen) == (1 + b if per_slice else 1), (
                        reduction,
                        conv,
                        dims,
                    )
                    want = torch.stack([h(zs[i], *slice_of(i)) for i in range(b)])
                    assert torch.equal(got, want), (reduction, conv, dims)
                    grads = torch.func.vmap(
                        torch.func.grad(lambda z, t, w, h=h: h(z, t, w).sum()),
                        in_dims=dims,
                    )(z_in, t_in, w_in)
                    for i in range(b):
                        z = zs[i].clone().requires_grad_(True)
                        h(z, *slice_of(i)).sum().backward()
                        assert torch.equal(grads[i], z.grad), (reduction, conv, dims)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(
    ("shape", "axis"), [((C,), -1), ((C, 5), 0), ((3, C, 4), 1)], ids=str
)
def test_vmap_one_call_with_the_class_axis_anywhere(
    shape, axis, reduction, monkeypatch
):
    """Slices of one sample, classes first, classes in the middle of batch
    dimensions: one call, each slice's value and gradient bit for bit."""
    b = 4
    g = torch.Generator().manual_seed(45)
    zs = torch.randn(b, *shape, generator=g, dtype=torch.float64)
    batch = tuple(d for i, d in enumerate(shape) if i != axis % len(shape))
    ys = torch.randint(0, C, (b, *batch), generator=g)

    def f(z, y):
        return alt.smooth_topk_svm(z, y, k=2, axis=axis, reduction=reduction)

    seen = _count_forwards(monkeypatch)
    got = torch.func.vmap(f)(zs, ys)
    assert len(seen) == 1
    assert torch.equal(got, torch.stack([f(zs[i], ys[i]) for i in range(b)]))
    grads = torch.func.vmap(torch.func.grad(lambda z, y: f(z, y).sum()))(zs, ys)
    for i in range(b):
        z = zs[i].clone().requires_grad_(True)
        f(z, ys[i]).sum().backward()
        assert torch.equal(grads[i], z.grad)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_vmap_of_a_core_function_is_one_call_too(reduction, monkeypatch):
    """The core function on tensors (whose node is given the kernel, not the
    registry's function): one call for the slices, each slice's value and
    gradient those of `arrayloss.torch`'s call per slice, bit for bit."""
    zs, ys, _, ws = _batched_inputs(46, 3, N)

    def f(fn, z, y, w):
        return fn(z, y, weights=w, label_smoothing=0.1, reduction=reduction)

    seen = _count_forwards(monkeypatch)
    got = torch.func.vmap(lambda z, y, w: f(al.cross_entropy, z, y, w))(zs, ys, ws)
    assert len(seen) == 1
    want = torch.stack([f(alt.cross_entropy, zs[i], ys[i], ws[i]) for i in range(3)])
    assert torch.equal(got, want)
    seen.clear()
    grads = torch.func.vmap(
        torch.func.grad(lambda z, y, w: f(al.cross_entropy, z, y, w))
    )(zs, ys, ws)
    assert len(seen) == 1
    for i in range(3):
        z = zs[i].clone().requires_grad_(True)
        f(alt.cross_entropy, z, ys[i], ws[i]).backward()
        assert torch.equal(grads[i], z.grad)


@pytest.mark.parametrize("conv", [None, "ignore_index", "class_weights"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", ["cross_entropy", "smooth_topk_svm", "keras.huber"])
def test_nested_vmap_with_autograd_through_it(name, reduction, conv, monkeypatch):
    """``vmap(vmap(f))`` (one call for both levels) with weights and logits that
    require grad: value and both gradients equal the double loop's, bit for bit.
    The weights' gradient was lost under vmap (``w.grad`` None)."""
    zs, ys, _, ws = _batched_inputs(32, 2, 3, N)
    f = _fn(name)
    kw = {"reduction": reduction, **_options(conv, ys)}

    def h(z, t, w):
        return f(z, t, weights=w, **kw)

    seen = _count_forwards(monkeypatch)
    z1, w1 = zs.clone().requires_grad_(True), ws.clone().requires_grad_(True)
    got = torch.func.vmap(torch.func.vmap(h))(z1, ys, w1)
    assert len(seen) == 1
    got.sum().backward()
    z2, w2 = zs.clone().requires_grad_(True), ws.clone().requires_grad_(True)
    want = torch.stack(
        [
            torch.stack([h(z2[i, j], ys[i, j], w2[i, j]) for j in range(3)])
            for i in range(2)
        ]
    )
    want.sum().backward()
    assert torch.equal(got, want)
    assert torch.equal(z1.grad, z2.grad)
    assert w1.grad is not None
    assert torch.equal(w1.grad, w2.grad)
    # torch.func.grad of the vmapped loss: the grouped node's backward.
    gz, gw = torch.func.grad(
        lambda z, w: torch.func.vmap(torch.func.vmap(h))(z, ys, w).sum(), argnums=(0, 1)
    )(zs, ws)
    assert torch.equal(gz, z2.grad)
    assert torch.equal(gw, w2.grad)


def test_vmap_falls_back_to_a_call_per_slice_where_one_call_cannot_be_exact(
    monkeypatch,
):
    """Labels of another shape than the slice's batch ((n, 1) labels), and a
    weighted mean whose weights times class weights overflow (the scale of the
    mean is each slice's own largest product): a call per slice, as eagerly."""
    zs, ys, _, ws = _batched_inputs(33, 3, N)
    seen = _count_forwards(monkeypatch)
    got = torch.func.vmap(alt.cross_entropy)(zs, ys[..., None])
    assert len(seen) == 3
    torch.testing.assert_close(
        got, torch.func.vmap(alt.cross_entropy)(zs, ys), rtol=0, atol=0
    )
    big = ws * 1e308
    cw = torch.full((C,), 10.0, dtype=torch.float64)
    seen.clear()
    got = torch.func.vmap(
        lambda z, y, w: alt.cross_entropy(z, y, weights=w, class_weights=cw)
    )(zs, ys, big)
    assert len(seen) > 1
    want = torch.stack(
        [
            alt.cross_entropy(zs[i], ys[i], weights=big[i], class_weights=cw)
            for i in range(3)
        ]
    )
    assert torch.equal(got, want)


@_TORCH_FORWARD_AD_WARNS
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", NAMES)
def test_forward_mode_equals_reverse_mode(name, reduction):
    """`torch.func.jvp`, `torch.func.jacfwd` and `torch.autograd.forward_ad` (the
    node's `jvp`: ``<grad, dz>`` per sample or reduced) give jacrev's numbers,
    with respect to the logits and to the weights; also under `vmap` (one call)."""
    from torch.autograd import forward_ad

    z, y, _ = _inputs(seed=34)
    w = torch.linspace(0.1, 2.0, N, dtype=torch.float64)
    dz = torch.randn(
        N, C, generator=torch.Generator().manual_seed(35), dtype=torch.float64
    )
    dw = torch.linspace(-1.0, 1.0, N, dtype=torch.float64)
    fn = _fn(name)

    def f(s, v):
        return fn(s, y, weights=v, reduction=reduction)

    jz, jw = torch.func.jacrev(f, argnums=(0, 1))(z, w)
    want = (jz * dz).sum((-2, -1)) + (jw * dw).sum(-1)
    value, tangent = torch.func.jvp(f, (z, w), (dz, dw))
    torch.testing.assert_close(value, f(z, w), rtol=0, atol=0)
    torch.testing.assert_close(tangent, want, rtol=1e-12, atol=1e-14)
    fz, fw = torch.func.jacfwd(f, argnums=(0, 1))(z, w)
    torch.testing.assert_close(fz, jz, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(fw, jw, rtol=1e-12, atol=1e-14)
    with forward_ad.dual_level():
        out = f(forward_ad.make_dual(z, dz), forward_ad.make_dual(w, dw))
        torch.testing.assert_close(
            forward_ad.unpack_dual(out).tangent, want, rtol=1e-12, atol=1e-14
        )
    zs, ys, _, ws = _batched_inputs(36, 2, N)
    _, tangents = torch.func.jvp(
        lambda s, v: torch.func.vmap(
            lambda a, b, c: fn(a, b, weights=c, reduction=reduction)
        )(s, ys, v),
        (zs, ws),
        (zs.flip(-1), ws.flip(-1)),
    )
    for i in range(2):
        _, t = torch.func.jvp(
            lambda s, v, i=i: fn(s, ys[i], weights=v, reduction=reduction),
            (zs[i], ws[i]),
            (zs[i].flip(-1), ws[i].flip(-1)),
        )
        torch.testing.assert_close(tangents[i], t, rtol=1e-13, atol=1e-15)


@_TORCH_FORWARD_AD_WARNS
@pytest.mark.parametrize("name", NAMES)
def test_gradcheck_forward_mode_and_batched_in_float64(name):
    """First-order gradcheck of the logits and weights, with the forward-mode
    and the batched (vmap) checks."""
    z, y, _ = _inputs(seed=3)
    w = torch.linspace(0.1, 2.0, N, dtype=torch.float64).requires_grad_(True)
    z.requires_grad_(True)
    fn = _fn(name)
    for reduction in ("mean", "none"):
        assert torch.autograd.gradcheck(
            lambda s, v, r=reduction: fn(s, y, weights=v, reduction=r),
            (z, w),
            check_forward_ad=True,
            check_batched_grad=True,
            check_batched_forward_grad=True,
        )


@_TORCH_FORWARD_AD_WARNS
def test_second_derivatives_are_refused_with_one_message():
    """Every way to a second derivative raises the one message that names the
    limit and the alternatives, instead of a silent zero or torch's own error."""
    from arrayloss._torch_compat import _SECOND_ORDER

    z, y, _ = _inputs(seed=37)

    def f(s):
        return alt.cross_entropy(s, y)

    def create_graph():
        s = z.clone().requires_grad_(True)
        layer = torch.nn.Linear(C, C, dtype=torch.float64)  # a path around the loss
        torch.autograd.grad(f(layer(s)), s, create_graph=True)

    def forward_then_backward():
        from torch.autograd import forward_ad

        s = z.clone().requires_grad_(True)
        with forward_ad.dual_level():
            out = f(forward_ad.make_dual(s, torch.ones_like(s)))
            forward_ad.unpack_dual(out).tangent.backward()

    for second in (
        create_graph,
        forward_then_backward,
        lambda: torch.func.hessian(f)(z),
        lambda: torch.func.jacfwd(torch.func.jacrev(f))(z),
        lambda: torch.func.jacrev(torch.func.jacfwd(f))(z),
        lambda: torch.func.jacfwd(torch.func.jacfwd(f))(z),
        lambda: torch.func.grad(lambda s: torch.func.grad(f)(s).sum())(z),
        lambda: torch.autograd.gradgradcheck(f, (z.clone().requires_grad_(True),)),
    ):
        with pytest.raises(RuntimeError) as err:
            second()
        assert str(err.value) == _SECOND_ORDER
    assert "analytic first derivatives only" in _SECOND_ORDER
    assert "finite differences of the analytic gradient" in _SECOND_ORDER


@_TORCH_FORWARD_AD_WARNS
def test_forward_mode_tangents_of_soft_labels_or_class_weights_are_refused():
    """A tangent of soft labels or class weights: the error backward gives, not a
    silent zero (`forward_ad` dropped it) or torch's 'jvp not implemented'."""
    from torch.autograd import forward_ad

    z, y, soft = _inputs(seed=38)
    cw = torch.linspace(0.5, 2.0, C, dtype=torch.float64)
    with pytest.raises(ValueError, match="no gradient with respect to soft `labels`"):
        torch.func.jvp(lambda t: alt.kl_divergence(z, t), (soft,), (soft.flip(1),))
    soft_labels = "no gradient with respect to soft `labels`"
    with pytest.raises(ValueError, match=soft_labels), forward_ad.dual_level():
        alt.kl_divergence(z, forward_ad.make_dual(soft, soft.flip(1)))
    with pytest.raises(ValueError, match="no gradient with respect to `class_weights`"):
        torch.func.jvp(lambda c: alt.cross_entropy(z, y, class_weights=c), (cw,), (cw,))
    with forward_ad.dual_level():  # the advice works
        out = alt.kl_divergence(
            forward_ad.make_dual(z, z), forward_ad.make_dual(soft, soft).detach()
        )
        assert forward_ad.unpack_dual(out).tangent is not None


@_TORCH_FORWARD_AD_WARNS
def test_the_core_on_a_dual_tensor_gives_its_tangent():
    """`al.cross_entropy` on a `forward_ad` dual tensor (no requires_grad) went
    round autograd: the tangent was dropped (None, a silent zero)."""
    from torch.autograd import forward_ad

    z, y, _ = _inputs(seed=39)
    dz = torch.linspace(-1.0, 1.0, N * C, dtype=torch.float64).reshape(N, C)
    _, grad = _core("smooth_topk_svm", z, y, k=2)
    with torch.no_grad(), forward_ad.dual_level():  # forward mode needs no grad mode
        out = al.smooth_topk_svm(forward_ad.make_dual(z, dz), y, k=2)
        tangent = forward_ad.unpack_dual(out).tangent
    assert tangent is not None
    torch.testing.assert_close(tangent, (grad * dz).sum(), rtol=1e-13, atol=1e-15)

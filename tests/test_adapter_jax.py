"""`arrayloss.jax`: every loss as a `jax.custom_jvp` function with the analytic
gradient; eager blocks for the compiled kernels; `check_inputs`.

Compilations are slow, so the whole registry runs eagerly (the top-k kernels at one
shape, sharing their compiled programs) and a representative subset under `jit`.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import numpy as np
import pytest

import arrayloss as al

jax = pytest.importorskip("jax")
alj = pytest.importorskip("arrayloss.jax")
jax.config.update("jax_enable_x64", True)  # as the suite's JAX backend does
jnp = jax.numpy

NAMES = list(al.LOSSES)
N, C = 6, 7


def _fn(name):
    if name.startswith("keras."):
        return getattr(alj.keras, name.split(".", 1)[1])
    return getattr(alj, name)


def _inputs(seed=0, n=N, c=C, dtype=np.float64):
    rng = np.random.default_rng(seed)
    z = (2 * rng.standard_normal((n, c))).astype(dtype)
    y = rng.integers(0, c, n)
    p = rng.random((n, c))
    return (
        jnp.asarray(z),
        jnp.asarray(y),
        jnp.asarray((p / p.sum(1, keepdims=True)).astype(dtype)),
    )


def _np(*arrays):
    """NumPy copies: the core's NumPy path is the reference (no JAX compilation)."""
    return [np.asarray(a) for a in arrays]


def _close(a, b, rtol=1e-12, atol=1e-300):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)


@pytest.mark.parametrize("name", NAMES)
def test_every_loss_eagerly_matches_the_core(name):
    z, y, soft = _inputs()
    cases = [y] + ([soft] if "soft" in al.LOSSES[name].targets else [])
    fn = _fn(name)
    for labels in cases:
        value, grad = jax.value_and_grad(fn)(z, labels)
        ref_v, ref_g = al.LOSSES[name].value_and_grad(*_np(z, labels))
        _close(value, ref_v)
        _close(grad, ref_g)
        _close(fn(z, labels), ref_v)
        # reduction="none": the cotangent multiplies each row.
        rows, vjp = jax.vjp(lambda s, t=labels: fn(s, t, reduction="none"), z)
        ct = jnp.linspace(0.5, 2.0, N)
        (g,) = vjp(ct)
        ref_r, ref_gr = al.LOSSES[name].value_and_grad(
            *_np(z, labels), reduction="none"
        )
        _close(rows, ref_r)
        _close(g, ref_gr * np.asarray(ct)[:, None])


@pytest.mark.parametrize(
    "name", ["cross_entropy", "smooth_topk_svm", "topk_svm", "keras.kl_divergence"]
)
def test_jit_grad_uses_the_analytic_gradient(name):
    z, y, _ = _inputs(seed=1)
    opts = {"k": 2} if "topk" in name else {}
    fn = _fn(name)
    step = jax.jit(jax.value_and_grad(lambda s: fn(s, y, **opts)))
    value, grad = step(z)
    ref_v, ref_g = al.LOSSES[name].value_and_grad(*_np(z, y), **opts)
    _close(value, ref_v, rtol=1e-12)
    _close(grad, ref_g, rtol=1e-10, atol=1e-15)
    # The derivative is the custom rule: its jaxpr calls the custom_jvp primitive.
    jaxpr = str(jax.make_jaxpr(lambda s: fn(s, y, **opts))(z))
    assert "custom_jvp_call" in jaxpr


def test_vmap_of_per_sample_losses_and_gradients():
    z, y, _ = _inputs(seed=2)

    def one(s, t):  # one sample: (C,) scores, a 0-d label
        return alj.cross_entropy(s, t, label_smoothing=0.2)

    values = jax.vmap(one)(z, y)
    grads = jax.vmap(jax.grad(one))(z, y)
    ref_v, ref_g = al.cross_entropy_and_grad(
        z, y, label_smoothing=0.2, reduction="none"
    )
    _close(values, ref_v)
    _close(grads, ref_g)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_weights_get_their_gradient(reduction):
    z, y, _ = _inputs(seed=3)
    w = jnp.linspace(0.1, 2.0, N)

    def total(s, v):
        return jnp.sum(alj.cross_entropy(s, y, weights=v, reduction=reduction))

    gz, gw = jax.grad(total, argnums=(0, 1))(z, w)
    rows = al.cross_entropy(z, y, reduction="none")
    if reduction == "mean":
        expect = (rows - jnp.sum(w * rows) / jnp.sum(w)) / jnp.sum(w)
    else:
        expect = rows
    _close(gw, expect, rtol=1e-12)
    _, ref_g = al.cross_entropy_and_grad(z, y, weights=w, reduction=reduction)
    _close(gz, ref_g)


@pytest.mark.parametrize("jit", [False, True])
def test_weights_with_conventions_get_their_gradient(jit):
    z, y, _ = _inputs(seed=3)
    w = jnp.linspace(0.1, 2.0, N)
    cw = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]
    ignore = int(y[0])

    def total(v, s):
        return alj.cross_entropy(s, y, weights=v, ignore_index=ignore, class_weights=cw)

    grad = jax.grad(total)
    gw = (jax.jit(grad) if jit else grad)(w, z)
    c = np.asarray(cw)[np.asarray(y)] * (np.asarray(y) != ignore)
    rows = np.asarray(al.cross_entropy(z, y, reduction="none")) * c
    wc = np.asarray(w) * c
    mean = np.sum(np.asarray(w) * rows) / np.sum(wc)
    _close(gw, (rows - c * mean) / np.sum(wc), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("jit", [False, True])
def test_differentiating_with_respect_to_soft_labels_is_refused(jit):
    """No gradient with respect to soft labels is provided: asking JAX for one
    raises (as `arrayloss.torch` refuses labels that require grad) instead of a
    silent zero; the logits' gradient with constant labels is unchanged."""
    z, _, soft = _inputs(seed=12)
    msg = r"no gradient with respect to soft `labels`.*jax\.lax\.stop_gradient"

    def wrap(f):
        return jax.jit(f) if jit else f

    for name in ("kl_divergence", "cross_entropy", "keras.kl_divergence"):
        fn = _fn(name)
        with pytest.raises(ValueError, match=msg):
            wrap(jax.grad(fn, argnums=1))(z, soft)
        with pytest.raises(ValueError, match=msg):
            wrap(jax.grad(fn, argnums=(0, 1)))(z, soft)
        with pytest.raises(ValueError, match=msg):
            jax.vjp(wrap(fn), z, soft)
        # Distillation without stop_gradient: the teacher depends on the logits.
        with pytest.raises(ValueError, match=msg):
            wrap(jax.grad(lambda s, f=fn: f(s, jax.nn.softmax(2 * s))))(z)

        # The advice works: the logits' gradient is the core's.
        def held(s, t, f=fn):
            return f(s, jax.lax.stop_gradient(t))

        gz, gt = wrap(jax.grad(held, argnums=(0, 1)))(z, soft)
        _close(gz, al.LOSSES[name].value_and_grad(*_np(z, soft))[1])
        assert not np.any(np.asarray(gt))  # stop_gradient's own zero, asked for
    # Integer labels are not differentiable: nothing to refuse.
    _, y, _ = _inputs(seed=12)
    _, pull = jax.vjp(alj.cross_entropy, z, y)
    assert pull(jnp.ones(()))[1].dtype == jax.dtypes.float0


@pytest.mark.parametrize("name", ["cross_entropy", "smooth_topk_svm"])
def test_jit_and_vmap_with_the_logits_closed_over(name):
    """Inside `jax.jit` even a concrete array's operations are traced: logits
    closed over (a jit over the weights or the labels only) skip the value
    checks as traced logits do, instead of failing with
    TracerBoolConversionError; so do weights batched by `jax.vmap` beside
    concrete logits."""
    z, y, _ = _inputs(seed=13)
    w = jnp.linspace(0.5, 2.0, N)
    opts = {"k": 2} if "topk" in name else {}
    core, fn = al.LOSSES[name].value, _fn(name)
    want = core(*_np(z, y), weights=np.asarray(w), **opts)
    _close(jax.jit(lambda v: core(z, y, weights=v, **opts))(w), want, rtol=1e-12)
    _close(jax.jit(lambda t: core(z, t, weights=w, **opts))(y), want, rtol=1e-12)
    _close(jax.jit(lambda: core(z, y, weights=w, **opts))(), want, rtol=1e-12)
    _close(jax.vmap(lambda v: core(z, y, weights=v, **opts))(jnp.stack([w, w]))[1], want,
           rtol=1e-12)  # fmt: skip
    gw = jax.jit(jax.grad(lambda v: fn(z, y, weights=v, **opts)))(w)
    _close(gw, jax.grad(lambda v: fn(z, y, weights=v, **opts))(w), rtol=1e-12)
    # Eagerly the values are still checked.
    with pytest.raises(ValueError, match="class indices in"):
        core(z, y.at[0].set(C), **opts)


def test_cross_entropy_through_a_linear_layer_equals_autodiff_of_the_maths():
    rng = np.random.default_rng(4)
    x = jnp.asarray(rng.standard_normal((32, 5)))
    y = jnp.asarray(rng.integers(0, C, 32))
    w0 = jnp.asarray(rng.standard_normal((5, C)))

    def ours(w):
        return alj.cross_entropy(x @ w, y, label_smoothing=0.1)

    def maths(w):
        logp = jax.nn.log_softmax(x @ w, axis=1)
        target = 0.9 * jax.nn.one_hot(y, C) + 0.1 / C
        return -jnp.mean(jnp.sum(target * logp, axis=1))

    _close(jax.grad(ours)(w0), jax.grad(maths)(w0), rtol=1e-12, atol=1e-15)


def test_xla_top_k_traces_its_kernel_once_per_class_count_and_k(monkeypatch):
    """XLA's path: the kernel program is traced (so compiled) once per class count
    and k, whatever the batch size (blocks of `alj.BLOCK` rows, here
    16): counted at the tree's entry point, which runs only while a program is
    traced.  The values are the host kernel's."""
    from arrayloss import _api
    from arrayloss.losses import _topk

    z, y, _ = _inputs(seed=13, n=40, c=13)
    ref_rows, ref_grads = al.smooth_topk_svm_and_grad(*_np(z, y), k=4, reduction="none")
    monkeypatch.setattr(alj, "HOST_KERNELS", False)
    monkeypatch.setattr(alj, "BLOCK", 16)
    _api._jax_program.cache_clear()  # fresh compiled programs for this test
    traces: list[tuple[tuple[int, ...], bool]] = []
    inner = _topk._log_ratio_and_grad

    def counted(x, k, **kw):
        assert isinstance(x, jax.core.Tracer), "the kernel ran outside its program"
        traces.append((tuple(x.shape), kw.get("coef") is not None))
        return inner(x, k, **kw)

    monkeypatch.setattr(_topk, "_log_ratio_and_grad", counted)
    for n in (1, 5, 40):  # one padded block, one, three
        value, grad = jax.value_and_grad(alj.smooth_topk_svm)(z[:n], y[:n], k=4)
        _close(value, np.mean(ref_rows[:n]), rtol=1e-13)
        _close(grad, ref_grads[:n] / n, rtol=1e-12, atol=1e-17)
    assert traces == [((16, 13), True)], traces


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_xla_path_equals_the_host_path(monkeypatch, dtype):
    """The same losses and gradients from XLA's program (GPUs) and the host's NumPy
    kernel under `jit`, to rounding, for class counts below and above the looped
    levels of the tree (there with identity padding: 40 leaves, 5 nodes of degree
    k padded to 8)."""
    tol = 1e-12 if dtype == np.float64 else 2e-5
    for c, k, n in ((9, 2, 4), (40, 5, 3)):
        z, y, _ = _inputs(seed=c, n=n, c=c, dtype=dtype)

        def step(s, t, k=k):
            smooth = jax.value_and_grad(alj.smooth_topk_svm)(s, t, k=k, tau=0.5)
            return (*smooth, jax.grad(alj.topk_svm)(s, t, k=k, reduction="sum"))

        results = []
        for host in (True, False):
            monkeypatch.setattr(alj, "HOST_KERNELS", host)
            results.append(jax.jit(step)(z, y))
        for host_out, xla_out in zip(*results, strict=True):
            assert xla_out.dtype == host_out.dtype == dtype
            scale = float(np.max(np.abs(np.asarray(host_out))))
            _close(xla_out, host_out, rtol=tol, atol=tol * scale)


def test_eager_blocks_keep_axis_weights_and_checks(monkeypatch):
    monkeypatch.setattr(alj, "HOST_KERNELS", False)
    rng = np.random.default_rng(6)
    z = jnp.asarray(rng.standard_normal((3, 5, 4)))
    y = jnp.asarray(rng.integers(0, 5, (3, 4)))
    w = jnp.asarray(rng.random((3, 4)))
    for reduction in ("mean", "sum", "none"):
        fn = alj.topk_svm
        value = fn(z, y, k=2, axis=1, weights=w, reduction=reduction)
        ref = al.topk_svm(z, y, k=2, axis=1, weights=w, reduction=reduction)
        _close(value, ref, rtol=1e-13)
    with pytest.raises(ValueError, match=r"class indices in \[0, 4\]"):
        alj.topk_svm(z, y.at[0, 0].set(5), k=2, axis=1)
    with pytest.raises(
        ValueError, match="needs at least one sample with non-zero weight"
    ):
        alj.topk_svm(z, y, k=2, axis=1, weights=jnp.zeros((3, 4)))


def test_cpu_top_k_runs_the_host_kernel_under_jit_and_vmap():
    """On CPU the compiled kernels are the NumPy ones through `jax.pure_callback`:
    nothing of the kernel for XLA to compile, and the value checks run even under
    `jit` (JAX raises an error carrying the core's message)."""
    z, y, _ = _inputs(seed=12, n=40, c=9)
    fn = jax.jit(jax.value_and_grad(lambda s, t: alj.smooth_topk_svm(s, t, k=3)))
    assert "pure_callback" in str(jax.make_jaxpr(fn)(z, y))
    value, grad = fn(z, y)
    ref_v, ref_g = al.smooth_topk_svm_and_grad(*_np(z, y), k=3)
    _close(value, ref_v, rtol=0, atol=0)
    _close(grad, ref_g, rtol=0, atol=0)
    rows = jax.vmap(lambda s, t: alj.smooth_topk_svm(s, t, k=3))(z[:5], y[:5])
    _close(rows, al.smooth_topk_svm(*_np(z[:5], y[:5]), k=3, reduction="none"))
    errors = (ValueError, jax.errors.JaxRuntimeError)  # JAX wraps it, as either
    with pytest.raises(errors, match=r"class indices in \[0, 8\]"):
        fn(z, y.at[0].set(9))
    with pytest.raises(ValueError, match="`k` must be an integer"):  # at trace time
        jax.jit(lambda s: alj.smooth_topk_svm(s, y, k=9))(z)


def test_loss_objects():
    crit = alj.loss("topk_svm", k=2, alpha=0.5)
    assert repr(crit) == "Loss('topk_svm', k=2, alpha=0.5)"
    assert hash(crit) == hash(alj.loss("topk_svm", k=2, alpha=0.5))
    z, y, _ = _inputs(seed=7)
    w = jnp.linspace(0.5, 1.5, N)
    ref = al.topk_svm(*_np(z, y), k=2, alpha=0.5, weights=np.asarray(w))
    _close(crit(z, y, w), ref)
    step = jax.jit(lambda s, t, f: jax.grad(f)(s, t), static_argnums=2)
    _close(step(z, y, crit), al.topk_svm_and_grad(*_np(z, y), k=2, alpha=0.5)[1])
    with pytest.raises(ValueError, match="unknown loss"):
        alj.loss("smoth_topk_svm")
    with pytest.raises(TypeError, match="bogus"):
        alj.loss("cross_entropy", bogus=1)
    with pytest.raises(TypeError, match="pass `weights` at the call"):
        alj.loss("cross_entropy", weights=w)


def test_class_weights_are_checked_as_the_core_checks_them():
    """They were flattened to a tuple of floats: shape (1, C) or (C/2, 2) and bool
    class weights, which the core refuses, passed; and `alj.loss(...,
    class_weights=array)` was not hashable, so not a `jit` static argument."""
    z, y, _ = _inputs(seed=9)
    good = np.linspace(0.5, 2.0, C)
    for bad, err, match in (
        (good[None, :], ValueError, r"must have shape \(7,\)"),
        (np.ones(C, dtype=bool), TypeError, "real floating or integer dtype"),
    ):
        with pytest.raises(err, match=match):
            al.cross_entropy(z, y, class_weights=bad)  # the core
        with pytest.raises(err, match=match):
            alj.cross_entropy(z, y, class_weights=bad)
        with pytest.raises(err, match=match):
            alj.loss("cross_entropy", class_weights=bad)(z, y)
    # Equal values of another kind are another cache entry, not the bool one.
    with pytest.raises(TypeError):
        alj.cross_entropy(z, y, class_weights=np.ones(C, dtype=bool))
    ref = al.cross_entropy(*_np(z, y), class_weights=np.ones(C))
    _close(alj.cross_entropy(z, y, class_weights=np.ones(C)), ref)
    crit = alj.loss("cross_entropy", class_weights=good)
    assert hash(crit) == hash(alj.loss("cross_entropy", class_weights=good.copy()))
    step = jax.jit(lambda s, t, f: jax.grad(f)(s, t), static_argnums=2)
    _close(
        step(z, y, crit), al.cross_entropy_and_grad(*_np(z, y), class_weights=good)[1]
    )


def test_check_inputs():
    z, y, soft = _inputs(seed=8)
    alj.check_inputs("smooth_topk_svm", z, y, k=2)
    alj.check_inputs("keras.kl_divergence", z, soft)
    with pytest.raises(ValueError, match=r"class indices in \[0, 6\]"):
        alj.check_inputs("cross_entropy", z, y.at[0].set(C))
    with pytest.raises(ValueError, match="NaN"):
        alj.check_inputs("cross_entropy", z.at[0, 0].set(jnp.nan), y)
    with pytest.raises(ValueError, match="sum to 1"):
        alj.check_inputs("cross_entropy", z, 2 * soft)
    with pytest.raises(ValueError, match="integer class indices only"):
        alj.check_inputs("smooth_topk_svm", z, soft)
    with pytest.raises(ValueError, match="`k` must be an integer"):
        alj.check_inputs("smooth_topk_svm", z, y, k=C)
    with pytest.raises(ValueError, match="non-negative"):
        alj.check_inputs("cross_entropy", z, y, weights=-jnp.ones(N))
    with pytest.raises(TypeError, match=r"outside `jax\.jit`"):
        jax.jit(lambda s: alj.check_inputs("cross_entropy", s, y))(z)


def test_under_jit_values_are_not_checked():
    """Documented: tracing skips the value checks (what `check_inputs` is for)."""
    z, y, _ = _inputs(seed=9)
    value = jax.jit(lambda s, t: alj.cross_entropy(s, t))(z, y.at[0].set(C + 3))
    assert np.isfinite(float(value)) or np.isnan(float(value))  # no error raised
    with pytest.raises(ValueError, match="class indices"):
        alj.cross_entropy(z, y.at[0].set(C + 3))


def test_names_and_signatures_follow_the_registry():
    import inspect

    for name, info in al.LOSSES.items():
        fn = _fn(name)
        assert fn.__name__ == name.rsplit(".", 1)[-1]
        assert inspect.signature(fn) == inspect.signature(info.value)


def test_readme_training_loop_runs():
    text = (Path(__file__).parents[1] / "README.md").read_text()
    blocks = [
        b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S)
        if "import arrayloss.jax" in b
    ]  # fmt: skip
    assert len(blocks) == 1, blocks
    namespace: dict[str, object] = {}
    exec(compile(textwrap.dedent(blocks[0]), "README.md", "exec"), namespace)
    history = np.asarray(namespace["history"])
    assert history[-1] < history[0]


# --------------------------------------------------------------------------- #
# Forward mode (jax.jvp, jax.jacfwd), vmap, second derivatives
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", NAMES)
def test_forward_mode_equals_reverse_mode(name, reduction):
    """`jax.jvp` and `jax.jacfwd` (the `jax.custom_jvp` rule: ``<grad, dz>`` plus
    the weights' term) give `jax.jacrev`'s numbers, for the logits and weights."""
    z, y, _ = _inputs(seed=40)
    w = jnp.linspace(0.1, 2.0, N)
    rng = np.random.default_rng(41)
    dz, dw = jnp.asarray(rng.standard_normal((N, C))), jnp.linspace(-1.0, 1.0, N)
    fn = _fn(name)

    def f(s, v):
        return fn(s, y, weights=v, reduction=reduction)

    jz, jw = jax.jacrev(f, argnums=(0, 1))(z, w)
    value, tangent = jax.jvp(f, (z, w), (dz, dw))
    _close(value, f(z, w), rtol=0)
    want = np.sum(np.asarray(jz) * np.asarray(dz), axis=(-2, -1)) + np.sum(
        np.asarray(jw) * np.asarray(dw), axis=-1
    )
    _close(tangent, want, rtol=1e-12, atol=1e-14)
    fz, fw = jax.jacfwd(f, argnums=(0, 1))(z, w)
    _close(fz, jz, rtol=1e-12, atol=1e-14)
    _close(fw, jw, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ["cross_entropy", "smooth_topk_svm", "keras.huber"])
def test_forward_mode_under_jit_and_vmap(name):
    """`jax.jvp` inside `jax.jit`, and `jax.vmap` over it with batched and shared
    (``in_axes=None``) labels and weights, nested: each slice's own tangent."""
    rng = np.random.default_rng(42)
    zs = jnp.asarray(rng.standard_normal((2, 3, N, C)))
    ys = jnp.asarray(rng.integers(0, C, (2, 3, N)))
    ws = jnp.asarray(rng.random((2, 3, N)))
    fn = _fn(name)

    def tangent(s, t, v):
        return jax.jvp(lambda a, b: fn(a, t, weights=b), (s, v), (s[::-1], v[::-1]))[1]

    want = np.array(
        [
            [float(tangent(zs[i, j], ys[i, j], ws[i, j])) for j in range(3)]
            for i in range(2)
        ]
    )
    got = jax.jit(jax.vmap(jax.vmap(tangent)))(zs, ys, ws)
    _close(got, want, rtol=1e-12, atol=1e-14)
    shared = jax.vmap(tangent, in_axes=(0, None, None))(zs[0], ys[0, 0], ws[0, 0])
    want = [float(tangent(zs[0, j], ys[0, 0], ws[0, 0])) for j in range(3)]
    _close(shared, want, rtol=1e-12, atol=1e-14)
    moved = jax.vmap(tangent, in_axes=(1, 0, None))(
        jnp.moveaxis(zs[0], 0, 1), ys[0], ws[0, 0]
    )
    want = [float(tangent(zs[0, j], ys[0, j], ws[0, 0])) for j in range(3)]
    _close(moved, want, rtol=1e-12, atol=1e-14)


def test_forward_mode_with_respect_to_soft_labels_is_refused():
    z, _, soft = _inputs(seed=43)
    with pytest.raises(
        ValueError, match=r"no gradient with respect to soft `labels`.*jax\.jvp"
    ):
        jax.jvp(lambda t: alj.kl_divergence(z, t), (soft,), (soft[::-1],))
    with pytest.raises(ValueError, match="no gradient with respect to soft `labels`"):
        jax.jacfwd(lambda t: alj.cross_entropy(z, t))(soft)
    # The logits' tangent with constant soft labels is the core's gradient's.
    _, t = jax.jvp(lambda s: alj.kl_divergence(s, soft), (z,), (z,))
    _, g = al.LOSSES["kl_divergence"].value_and_grad(*_np(z, soft))
    _close(t, np.sum(g * np.asarray(z)), rtol=1e-12)


def _fd_hessian(grad, z):
    """Central differences of the analytic gradient ``grad`` (NumPy)."""
    z0 = np.asarray(z)
    cols = []
    for k in range(z0.size):
        e = np.zeros(z0.size)
        e[k] = 1e-6
        e = e.reshape(z0.shape)
        cols.append(((grad(z0 + e) - grad(z0 - e)) / 2e-6).reshape(-1))
    return np.stack(cols, axis=1)


@pytest.mark.parametrize(
    "name",
    ["cross_entropy", "keras.huber", "focal", "smooth_topk_svm", "sparsemax_loss"],
)
def test_hessian_is_the_derivative_of_the_analytic_gradient(name, monkeypatch):
    """`jax.hessian` differentiates the analytic gradient's code (the core runs on
    JAX arrays): central differences of that gradient.  The host kernels (CPU
    top-k and sparse losses) run NumPy, which JAX cannot differentiate: one clear
    error naming the way to their XLA kernel, not JAX's 'Pure callbacks do not
    support JVP'."""
    z, y, _ = _inputs(seed=44, n=3, c=5)
    opts = {"k": 2} if name == "smooth_topk_svm" else {}

    def f(s):
        return _fn(name)(s, y, **opts)

    if alj._compiled_kernel(name):
        for second in (
            jax.hessian,
            lambda g: jax.jacrev(jax.jacrev(g)),
            lambda g: jax.jit(jax.hessian(g)),
        ):
            with pytest.raises(ValueError, match=r"HOST_KERNELS = False") as err:
                second(f)(z)
            assert f"second derivative of `{name}`" in str(err.value)
        monkeypatch.setattr(alj, "HOST_KERNELS", False)
    hess = np.asarray(jax.hessian(f)(z)).reshape(z.size, z.size)
    grad = lambda s: al.LOSSES[name].value_and_grad(s, np.asarray(y), **opts)[1]  # noqa: E731
    _close(hess, _fd_hessian(grad, z), rtol=1e-5, atol=1e-7)

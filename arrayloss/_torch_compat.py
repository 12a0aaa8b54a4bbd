"""PyTorch autograd for the core losses: one ``torch.autograd.Function``.

A loss called on a tensor that requires grad (with grad mode on) returns a value
whose ``grad_fn`` is a single node, `_AnalyticLoss`: its forward runs the loss's
``value_and_grad`` once on detached tensors (so no graph is built through the
hundreds of array operations inside), and its backward returns the saved analytic
gradient times the incoming gradient (first derivatives only: a backward with
``create_graph=True`` raises rather than give a Hessian of zero, `_SECOND_ORDER`),

.. math::

    \\frac{\\partial L}{\\partial z} = g \\cdot \\nabla_z \\ell, \\qquad
    g = \\texttt{grad\\_output}

(``g`` broadcast along the class axis for ``reduction="none"``).  Sample weights
that require grad get their exact gradient too: ``l_i`` for ``"sum"`` and
``"none"``, ``(l_i - L) / sum(w)`` for the weighted mean ``L = sum(w l) / sum(w)``
(``l_i`` the unweighted per-sample loss, computed only when asked for).

Forward mode (the node's ``jvp``: `torch.autograd.forward_ad`, `torch.func.jvp`,
`jacfwd`) uses the same saved gradient: the value's tangent is ``<grad, dz>`` (per
sample for ``"none"``), plus ``sum_i (d value / d w_i) dw_i`` for weights with a
tangent.  Soft labels and class weights with a tangent are refused as those that
require grad are.

The node has the `torch.func` form (``forward`` without ``ctx``, ``setup_context``,
``jvp`` and a ``vmap`` rule), so `torch.func.grad`, `vjp`, `jacrev`, `jvp`,
`jacfwd` and `vmap` compose with it.  The ``vmap`` rule puts the ``B`` slices'
rows end to end, ``(B * n, C)``, and runs the node once with ``groups = B``: the
node passes that to the loss (the private keyword ``_groups`` of
`arrayloss._api.Kernel.value_and_grad` and of the public ``_and_grad`` twins), and
the front end reduces each slice's rows on its own
(its own weights' scale and count, its own ``1 / n``), so the numbers are a call
per slice's, bit for bit; its value checks run on all the rows.  Where one call
cannot give them (labels or weights not of the slice's batch shape, Keras'
batch-wide soft-label conversion, weights times class weights beyond the float
range) or where it raises, the rule runs the node on each slice and stacks the
results: each slice an eager call, with the eager errors.  Nested ``vmap``
multiplies the groups.  `torch.func` always builds the graph of a backward; there
the gradients (and forward mode's tangents) leave through `_FirstOrderOnly`, whose
own backward and ``jvp`` raise, so a second derivative (``grad(grad(f))``,
``jacrev(grad(f))``, `torch.func.hessian`) is refused as eagerly rather than a
silent zero.

`plain` is the other half of the hook in ``arrayloss/_api.py``: it detaches the
tensors the kernels see and gives integer labels torch's index dtype (``int64``),
which ``take_along_dim`` and advanced indexing require.

On CPU the autograd forward runs the NumPy kernels on zero-copy NumPy views of the
(detached) tensors and wraps the results back with ``torch.from_numpy``: same
dtype, CPU, no copies, and 2-4x faster than the torch kernels for the top-k family
(in-place updates and SciPy's FFT; ``bench/bench_adapters.py``).  CUDA tensors use
the torch kernels.

Nothing here imports torch unless a torch tensor is passed.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
from array_api_compat import is_torch_array

from ._typing import Array

__all__ = [
    "Ungroupable",
    "apply",
    "plain",
    "refuse_grad",
    "refuse_meta",
    "tracks_grad",
    "weights_need_grad",
]


class Ungroupable(Exception):
    """Raised by the front end where slices put end to end would not give each
    slice the numbers of its own call: the `vmap` rule then runs each slice."""


def tracks_grad(logits: Array, labels: Array, weights: Array | None) -> bool:
    """True if autograd must see this call: a torch tensor that requires grad,
    with grad mode on, or one a `torch.func` transform wraps (`vmap` batches it:
    the autograd node's `vmap` rule runs the loss on each slice)."""
    if not is_torch_array(logits):
        return False
    import torch

    if any(_wrapped(x) or _has_tangent(x) for x in (logits, labels, weights)):
        return True  # forward mode (`torch.autograd.forward_ad`) in any grad mode
    if not torch.is_grad_enabled():
        return False
    return bool(logits.requires_grad) or (
        weights is not None and is_torch_array(weights) and bool(weights.requires_grad)
    )


def weights_need_grad(weights: Array | None) -> bool:
    """True if ``weights`` is a torch tensor that requires grad (with grad mode on
    where `tracks_grad` is asked first) or carries a forward-mode tangent: its
    derivative needs the per-sample losses and the conventions' factors."""
    return is_torch_array(weights) and (
        bool(weights.requires_grad) or _has_tangent(weights)
    )


def _has_tangent(x: Any) -> bool:
    """True for a torch tensor with a forward-mode tangent (a dual tensor of
    `torch.autograd.forward_ad`, or one `torch.func.jvp` pushes a tangent through)."""
    if not is_torch_array(x):
        return False
    from torch.autograd import forward_ad

    try:
        return forward_ad.unpack_dual(x).tangent is not None  # type: ignore[no-untyped-call,unused-ignore]
    except RuntimeError:  # batched by `vmap`: the `vmap` rule asks again, unwrapped
        return False


def refuse_grad(labels: Array, class_weights: Any) -> None:
    """`ValueError` for soft ``labels`` or ``class_weights`` that require grad
    (with grad mode on) or carry a forward-mode tangent: no derivative with
    respect to them is provided, and a silent zero (or one autograd takes through
    the front end's operations) would be wrong."""
    if not (is_torch_array(labels) or is_torch_array(class_weights)):
        return
    import torch

    grad_mode = torch.is_grad_enabled()
    for name, x in (("soft `labels`", labels), ("`class_weights`", class_weights)):
        if is_torch_array(x) and ((grad_mode and x.requires_grad) or _has_tangent(x)):
            raise ValueError(_no_derivative(name))


def _no_derivative(name: str) -> str:
    """The message refusing a derivative with respect to ``name`` (soft
    ``labels`` or ``class_weights``): reverse mode and forward mode alike."""
    hint = {
        "soft `labels`": "teacher probabilities are constants",
        "`class_weights`": "PyTorch's `weight=` takes none either",
    }[name]
    arg = name.split("`")[1]
    return (
        f"no gradient with respect to {name} is provided (nor a forward-mode "
        f"tangent): pass `{arg}.detach()` ({hint})"
    )


def refuse_meta(named: Iterable[tuple[str, Any]]) -> None:
    """`TypeError` for a tensor on the ``meta`` device among the ``(name, array)``
    pairs: it holds no values, and the losses read values (the label range, the
    finiteness checks) before any result is made."""
    for name, x in named:
        if is_torch_array(x) and x.device.type == "meta":
            msg = (
                f"`{name}` is a tensor on the 'meta' device, which holds no values; "
                "arrayloss reads the values (label range, finiteness): pass tensors "
                "on a real device"
            )
            raise TypeError(msg)


def plain(
    logits: Array, labels: Array, weights: Array | None
) -> tuple[Array, Array, Array | None]:
    """Detached tensors, and integer torch labels as ``int64`` (others unchanged)."""
    if is_torch_array(logits):
        logits = logits.detach()
    if is_torch_array(weights):
        weights = weights.detach()
    if is_torch_array(labels):
        import torch

        labels = labels.detach()
        if labels.dtype in (torch.uint8, torch.int8, torch.int16, torch.int32):
            labels = labels.to(torch.int64)
    return logits, labels, weights


def apply(
    loss: Any,
    logits: Array,
    labels: Array,
    weights: Array | None,
    *,
    axis: int,
    reduction: str,
    params: Mapping[str, Any],
    factors_of: Callable[..., Array | None],
) -> tuple[Array, Array]:
    """``(value, grad)`` of ``loss`` with ``value`` differentiable by autograd.

    ``loss`` is a `Kernel` or a `LossInfo`: anything with ``value`` and
    ``value_and_grad`` methods taking ``(logits, labels, *, axis, reduction,
    weights, **params)``.  When the weights require grad (`weights_need_grad`)
    the node also computes the per-sample losses and the conventions' factors
    their gradient needs, the latter by ``factors_of`` (`arrayloss._api.sample_factors`,
    passed in by the front end, which imports this module).

    ``grad`` (the analytic gradient with respect to ``logits``) is returned
    detached.  Soft labels and class weights that require grad are refused
    (`refuse_grad`).
    """
    refuse_grad(labels, params.get("class_weights"))
    want_rows = weights_need_grad(weights)
    value, grad, _, _ = _function().apply(
        logits,
        labels,
        weights,
        loss,
        axis,
        reduction,
        dict(params),
        want_rows,
        factors_of,
        1,
    )
    return value, grad


def _as_numpy(
    logits: Array, labels: Array, weights: Array | None
) -> tuple[Array, Array, Array | None, bool]:
    """Zero-copy NumPy views of float32/float64 CPU tensors (``True`` if made)."""
    import torch

    arrays = [a for a in (logits, labels, weights) if a is not None]
    cpu = all(is_torch_array(a) and a.device.type == "cpu" for a in arrays)
    if not cpu or logits.dtype not in (torch.float32, torch.float64):
        return logits, labels, weights, False
    if labels.dtype in (torch.bfloat16, torch.bool) or (
        weights is not None and weights.dtype == torch.bfloat16
    ):
        return logits, labels, weights, False  # NumPy has no bfloat16
    views = [None if a is None else a.resolve_neg().resolve_conj().numpy() for a in
             (logits, labels, weights)]  # fmt: skip
    return views[0], views[1], views[2], True


def _like(v: Any, on_numpy: bool) -> Any:
    """A tensor option (``class_weights``) detached, as a NumPy view on the NumPy
    path (CPU tensors); anything else unchanged."""
    if not is_torch_array(v):
        return v
    v = v.detach()
    if on_numpy and v.device.type == "cpu" and v.dtype.is_floating_point:
        return v.resolve_neg().resolve_conj().numpy()
    return v


def _from_numpy(a: Array) -> Any:
    import torch

    a = np.asarray(a)
    return torch.from_numpy(a if a.flags.writeable else a.copy())


_SECOND_ORDER = (
    "arrayloss losses have analytic first derivatives only: a second derivative "
    "(backward with create_graph=True, torch.func.hessian, grad of grad, jacfwd "
    "or jvp of a gradient) is not supported; for Hessian-vector products take "
    "finite differences of the analytic gradient, or differentiate a loss written "
    "in torch operations (torch.nn.functional.cross_entropy)"
)


def _transformed() -> bool:
    """True inside a `torch.func` transform (`grad`, `vmap`, `jacrev`, ...)."""
    import torch

    return bool(torch._C._are_functorch_transforms_active())


def _wrapped(x: Any) -> bool:
    """True for a tensor a `torch.func` transform wraps (batched by `vmap`, tracked
    by `grad`)."""
    import torch

    return is_torch_array(x) and bool(
        torch._C._functorch.is_functorch_wrapped_tensor(x)
    )


def _rows_and_factors(
    loss: Any,
    z: Array,
    t: Array,
    axis: int,
    params: dict[str, Any],
    factors_of: Callable[..., Array | None],
) -> tuple[Array, Array | None]:
    """The unweighted per-sample losses (``c_i l_i`` under the conventions) and the
    conventions' factors ``c_i`` (``None`` without them, `apply`'s ``factors_of``):
    the weights' gradient."""
    rows = loss.value(z, t, axis=axis, reduction="none", weights=None, **params)
    return rows, factors_of(z, t, params, axis=axis)


def _per_row(x: Any, groups: int, n: int) -> Any:
    """A value per group (``(groups,)``) repeated for each of the group's rows (of
    ``n`` in all); ``x`` itself for one group."""
    return x if groups == 1 else x.repeat_interleave(n // groups)


def _per_group(x: Any, groups: int) -> Any:
    """The sum of ``x`` over each group's rows (``(groups,)``), or over all of it."""
    return x.sum() if groups == 1 else x.reshape(groups, -1).sum(1)


def _weights_coef(ctx: Any, rows: Any, value: Any, w: Any, factors: Any) -> Any:
    """d value / d w_i per sample: ``l_i`` (``c_i l_i`` with the conventions) for
    ``"sum"`` and ``"none"``, ``(l_i - c_i L) / sum(w c)`` for the weighted mean
    ``L`` (each group's own for a grouped call)."""
    if ctx.reduction != "mean":
        return rows
    n = rows.shape[0] if rows.ndim else 1
    if not ctx.factors:
        total = _per_group(w, ctx.groups)
        return (rows - _per_row(value, ctx.groups, n)) / _per_row(total, ctx.groups, n)
    f = factors.to(rows.dtype)  # rows: c_i l_i; the mean's weights w c
    total = _per_group(w * f, ctx.groups)
    mean = _per_row(value, ctx.groups, n)
    return (rows - f * mean) / _per_row(total, ctx.groups, n)


def _reduce_like(ctx: Any, x: Any, *, classes: bool) -> Any:
    """``x`` (per element of the logits if ``classes``, else per sample) reduced
    as the value is: over the class axis for ``"none"``, else over each group."""
    if ctx.reduction == "none":
        return x.sum(ctx.axis) if classes else x
    return _per_group(x, ctx.groups)


@functools.cache
def _function() -> Any:
    """The `torch.autograd.Function`, defined on first use (torch imported then)."""
    import torch

    class _FirstOrderOnly(torch.autograd.Function):
        """``out`` unchanged, with a backward and a forward-mode rule that refuse to
        differentiate it with respect to ``deps``: a derivative of the loss's
        derivative (a second derivative) raises instead of being a silent zero."""

        generate_vmap_rule = True

        @staticmethod
        def forward(out: Any, *deps: Any) -> Any:
            return out.clone()

        @staticmethod
        def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
            pass

        @staticmethod
        def backward(ctx: Any, g: Any) -> tuple[Any, ...]:
            if any(ctx.needs_input_grad[1:]):
                raise RuntimeError(_SECOND_ORDER)
            return (g, *(None for _ in ctx.needs_input_grad[1:]))

        @staticmethod
        def jvp(ctx: Any, g: Any, *g_deps: Any) -> Any:
            if any(d is not None for d in g_deps):
                raise RuntimeError(_SECOND_ORDER)
            return g

    class _AnalyticLoss(torch.autograd.Function):
        """One autograd node: the core's analytic gradient times ``grad_output``
        (reverse mode), and ``<gradient, tangent>`` (forward mode).

        The `torch.func` form (``forward`` without ``ctx``, `setup_context`, `jvp`,
        a `vmap` rule), so `torch.func.grad`, `vmap`, `jacrev`, `vjp`, `jvp` and
        `jacfwd` work.  Outputs: the value, its gradient with respect to the
        logits and, when ``want_rows`` (the weights require grad or carry a
        tangent), the per-sample losses and the conventions' factors the weights'
        derivative needs (else empty tensors).  ``groups > 1`` (the `vmap` rule's
        call): the rows are that many vmapped slices end to end, each reduced as
        its own call (the value has shape ``(groups,)`` for "mean" and "sum").
        """

        @staticmethod
        def forward(
            logits: Any,
            labels: Any,
            weights: Any,
            loss: Any,
            axis: int,
            reduction: str,
            params: dict[str, Any],
            want_rows: bool,
            factors_of: Callable[..., Array | None],
            groups: int,
        ) -> tuple[Any, Any, Any, Any]:
            z, t, w, on_numpy = _as_numpy(*plain(logits, labels, weights))
            params = {k: _like(v, on_numpy) for k, v in params.items()}
            value, grad = loss.value_and_grad(
                z, t, axis=axis, reduction=reduction, weights=w, **params,
                _groups=groups,
            )  # fmt: skip
            rows = factors = None
            if want_rows and w is not None:
                rows, factors = _rows_and_factors(loss, z, t, axis, params, factors_of)
            if on_numpy:
                value, grad = _from_numpy(value), _from_numpy(grad)
                rows = None if rows is None else _from_numpy(rows)
                factors = None if factors is None else _from_numpy(factors)
            empty = grad.new_empty(0)
            rows = empty if rows is None else rows
            factors = empty if factors is None else factors
            return value, grad, rows, factors

        @staticmethod
        def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
            logits, _, weights, _, axis, reduction, params, want_rows, _, groups = (
                inputs
            )
            value, grad, rows, factors = output
            ctx.mark_non_differentiable(grad, rows, factors)
            # Made inside `torch.func` (`grad`, `vjp`, ...), whose backward (also a
            # `torch.func.vjp` pullback called later) always builds a graph: the
            # second-order guard, which needs the logits.  Eagerly they are not
            # saved, so an in-place change of them after the call stays allowed.
            ctx.func = _transformed()
            z = logits if ctx.func else None
            ctx.save_for_backward(z, grad, weights, rows, value, factors)
            ctx.save_for_forward(logits, grad, weights, rows, value, factors)  # `jvp`
            ctx.set_materialize_grads(False)  # no tangent: None, not zeros
            ctx.axis = axis % logits.ndim
            ctx.reduction = reduction
            ctx.rows = bool(want_rows) and weights is not None
            conv = ("ignore_index", "class_weights")
            ctx.factors = any(params.get(k) is not None for k in conv)
            ctx.groups = groups

        @staticmethod
        def backward(
            ctx: Any, g_value: Any, *_: Any
        ) -> tuple[Any, None, Any, None, None, None, None, None, None, None]:
            guard = torch.is_grad_enabled()  # create_graph=True
            if guard and not ctx.func:  # eagerly: refused at once
                raise RuntimeError(_SECOND_ORDER)
            z, grad, w, rows, value, factors = ctx.saved_tensors
            if g_value is None:  # only the non-differentiable outputs were used
                return (None,) * 10
            if ctx.reduction == "none":
                g, g_rows = g_value.unsqueeze(ctx.axis), g_value
            else:
                g_rows = _per_row(g_value, ctx.groups, grad.shape[0])
                g = g_rows if ctx.groups == 1 else g_rows[:, None]
            dz = grad * g if ctx.needs_input_grad[0] else None
            dw = None
            if ctx.rows and ctx.needs_input_grad[2]:
                dw = _weights_coef(ctx, rows, value, w, factors) * g_rows
            if guard:  # `torch.func` builds this graph: no silent zero Hessian
                deps = [x for x in (z, w) if x is not None]
                dz = None if dz is None else first_order(dz, *deps)
                dw = None if dw is None else first_order(dw, *deps)
            return dz, None, dw, None, None, None, None, None, None, None

        @staticmethod
        def jvp(ctx: Any, dz: Any, dt: Any, dw: Any, *_: Any) -> tuple[Any, ...]:
            """d value = ``<grad, dz>`` (per sample for "none", per group for a
            grouped call) plus the weights' term ``sum_i (d value / d w_i) dw_i``."""
            if dt is not None:
                raise ValueError(_no_derivative("soft `labels`"))
            z, grad, w, rows, value, factors = ctx.saved_tensors
            terms = []
            if dz is not None:
                terms.append(_reduce_like(ctx, grad * dz, classes=True))
            if dw is not None:
                if not ctx.rows:  # never silently zero
                    msg = "internal error: weights' tangent without per-sample losses"
                    raise RuntimeError(msg)
                coef = _weights_coef(ctx, rows, value, w, factors)
                terms.append(_reduce_like(ctx, coef * dw, classes=False))
            if not terms:
                return torch.zeros_like(value), None, None, None
            out = terms[0] if len(terms) == 1 else terms[0] + terms[1]
            deps = [x for x in (z, w) if x is not None]
            return first_order(out, *deps), None, None, None

        @staticmethod
        def vmap(
            info: Any, in_dims: Any, *inputs: Any
        ) -> tuple[tuple[Any, ...], tuple[int, ...]]:
            """`torch.func.vmap`: the slices put end to end and run as one call,
            each slice reduced on its own (`_stacked`): the numbers of a call per
            slice.  Where that cannot be (`_stacked` returns ``None``), and where
            the one call raises, the loss of each slice as its own eager call,
            stacked: its errors and messages are those of the eager call.
            ``inputs`` are `forward`'s."""
            if any(d is not None for d in torch.utils._pytree.tree_leaves(in_dims[6])):
                msg = (
                    "`torch.func.vmap` over `class_weights` is not supported: "
                    "vmap over the logits, labels or weights"
                )
                raise NotImplementedError(msg)
            if info.batch_size == 0:
                msg = (
                    "`torch.func.vmap` over a dimension of size 0: arrayloss runs the "
                    "loss on each slice and there is none"
                )
                raise ValueError(msg)
            # A batched tensor does not say that it requires grad; unwrapped here,
            # the weights do (else their gradient would be left out: None).
            want_rows = inputs[7] or weights_need_grad(inputs[2])
            inputs = (*inputs[:7], want_rows, *inputs[8:])
            out = _stacked(info.batch_size, in_dims, inputs)
            if out is not None:
                return out, (0, 0, 0, 0)

            def part(x: Any, dim: int | None, i: int) -> Any:
                return x if dim is None else x.select(dim, i)

            tensors, rest = inputs[:3], inputs[3:]
            outs = [
                node(
                    *(part(x, d, i) for x, d in zip(tensors, in_dims, strict=False)),
                    *rest,
                )
                for i in range(info.batch_size)
            ]
            return tuple(torch.stack(o) for o in zip(*outs, strict=True)), (0, 0, 0, 0)

    def _stacked(size: int, in_dims: Any, inputs: Any) -> tuple[Any, ...] | None:
        """The vmap rule's outputs from one call on the ``size`` slices end to end
        as ``(size * m, C)`` rows (``m`` samples a slice), ``size * groups``
        groups; ``None`` where the slices' labels or weights are not tensors of
        the slice's batch shape, the axis is not valid, or the call raises (an
        eager check, or `Ungroupable`)."""
        logits, labels, weights, loss, axis, reduction = inputs[:6]
        params, want_rows, factors_of, groups = inputs[6:]

        def front(x: Any, d: int | None) -> Any:
            return x.expand(size, *x.shape) if d is None else x.movedim(d, 0)

        if not (
            is_torch_array(labels) and (weights is None or is_torch_array(weights))
        ):
            return None
        z = front(logits, in_dims[0])
        shape = tuple(z.shape[1:])
        if not shape or isinstance(axis, bool) or not isinstance(axis, int):
            return None
        if not -len(shape) <= axis < len(shape):
            return None
        ax = axis % len(shape)
        batch, c = shape[:ax] + shape[ax + 1 :], shape[ax]
        m = math.prod(batch)

        def rows_of(x: Any) -> Any:
            return x.movedim(1 + ax, -1).reshape(size * m, c)

        t = front(labels, in_dims[1])
        if t.dtype.is_floating_point and tuple(t.shape[1:]) == shape:
            tc = rows_of(t)
        elif (
            t.dtype not in (torch.bool,)
            and not t.dtype.is_floating_point
            and (tuple(t.shape[1:]) == batch)
        ):
            tc = t.reshape(size * m)
        else:
            return None
        wc = None
        if weights is not None:
            wb = front(weights, in_dims[2])
            if tuple(wb.shape[1:]) != batch:
                return None
            wc = wb.reshape(size * m)
        try:
            value, grad, rows, factors = node(
                rows_of(z), tc, wc, loss, -1, reduction, params, want_rows,
                factors_of, size * groups,
            )  # fmt: skip
        except Exception:  # each slice's own call raises its error
            return None
        one = batch if reduction == "none" else (() if groups == 1 else (groups,))
        if value.numel() != size * math.prod(one):  # not reduced per slice
            return None
        grad = grad.reshape(size, *batch, c).movedim(-1, 1 + ax)

        def per_slice(x: Any) -> Any:  # the per-sample outputs, or empty ones
            full = bool(want_rows) and wc is not None and x.numel() == size * m
            return x.reshape(size, *batch) if full else x.new_empty(size, 0)

        return value.reshape(size, *one), grad, per_slice(rows), per_slice(factors)

    first_order: Any = _FirstOrderOnly.apply
    node: Any = _AnalyticLoss.apply
    return _AnalyticLoss

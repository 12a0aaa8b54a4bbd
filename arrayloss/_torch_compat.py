"""PyTorch autograd for the core losses: one ``torch.autograd.Function``.

A loss called on a tensor that requires grad (with grad mode on) returns a value
whose ``grad_fn`` is a single node, `_AnalyticLoss`: its forward runs the loss's
``value_and_grad`` once on detached tensors (so no graph is built through the
hundreds of array operations inside), and its backward returns the saved analytic
gradient times the incoming gradient (first derivatives only: a backward with
``create_graph=True`` raises rather than give a Hessian of zero),

.. math::

    \\frac{\\partial L}{\\partial z} = g \\cdot \\nabla_z \\ell, \\qquad
    g = \\texttt{grad\\_output}

(``g`` broadcast along the class axis for ``reduction="none"``).  Sample weights
that require grad get their exact gradient too: ``l_i`` for ``"sum"`` and
``"none"``, ``(l_i - L) / sum(w)`` for the weighted mean ``L = sum(w l) / sum(w)``
(``l_i`` the unweighted per-sample loss, computed only when asked for).

The node has the `torch.func` form (``forward`` without ``ctx``, ``setup_context``
and a ``vmap`` rule), so `torch.func.grad`, `vjp`, `jacrev` and `vmap` compose with
it.  The ``vmap`` rule runs the node on each slice and stacks the results: the
front end's value checks read values (data-dependent control flow that a batched
tensor cannot take), so each slice is an eager call with the eager errors.
`torch.func` always builds the graph of a backward; there the gradients leave the
backward through `_FirstOrderOnly`, whose own backward raises, so a second
derivative (``grad(grad(f))``, ``jacrev(grad(f))``) is refused as eagerly rather
than a silent zero.

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
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
from array_api_compat import is_torch_array

from ._typing import Array

__all__ = [
    "apply",
    "plain",
    "refuse_grad",
    "refuse_meta",
    "tracks_grad",
    "weights_need_grad",
]


def tracks_grad(logits: Array, labels: Array, weights: Array | None) -> bool:
    """True if autograd must see this call: a torch tensor that requires grad,
    with grad mode on, or one a `torch.func` transform wraps (`vmap` batches it:
    the autograd node's `vmap` rule runs the loss on each slice)."""
    if not is_torch_array(logits):
        return False
    import torch

    if any(_wrapped(x) for x in (logits, labels, weights)):
        return True
    if not torch.is_grad_enabled():
        return False
    return bool(logits.requires_grad) or (
        weights is not None and is_torch_array(weights) and bool(weights.requires_grad)
    )


def weights_need_grad(weights: Array | None) -> bool:
    """True if ``weights`` is a torch tensor that requires grad (with grad mode on
    where `tracks_grad` is asked first): its gradient needs the conventions'
    per-sample factors."""
    return is_torch_array(weights) and bool(weights.requires_grad)


def refuse_grad(labels: Array, class_weights: Any) -> None:
    """`ValueError` for soft ``labels`` or ``class_weights`` that require grad
    (with grad mode on): no gradient with respect to them is provided, and a
    silent zero (or one autograd takes through the front end's operations) would
    be wrong."""
    if not (is_torch_array(labels) or is_torch_array(class_weights)):
        return
    import torch

    if not torch.is_grad_enabled():
        return
    for name, x, hint in (
        ("soft `labels`", labels, "teacher probabilities are constants"),
        ("`class_weights`", class_weights, "PyTorch's `weight=` takes none either"),
    ):
        if is_torch_array(x) and x.requires_grad:
            arg = name.split("`")[1]
            msg = (
                f"no gradient with respect to {name} is provided: pass "
                f"`{arg}.detach()` ({hint})"
            )
            raise ValueError(msg)


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
    "arrayloss losses give first derivatives only: "
    "backward with create_graph=True is not supported"
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
    factors = factors_of(
        z, t, axis=axis, ignore_index=params.get("ignore_index"),
        class_weights=params.get("class_weights"),
    )  # fmt: skip
    return rows, factors


@functools.cache
def _function() -> Any:
    """The `torch.autograd.Function`, defined on first use (torch imported then)."""
    import torch

    class _FirstOrderOnly(torch.autograd.Function):
        """``out`` unchanged, with a backward that refuses to differentiate it with
        respect to ``deps``: inside `torch.func` (which always builds the graph of
        a backward) a second derivative through the loss raises instead of being
        a silent zero."""

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

    class _AnalyticLoss(torch.autograd.Function):
        """One autograd node: the core's analytic gradient times ``grad_output``.

        The `torch.func` form (``forward`` without ``ctx``, `setup_context`, a
        `vmap` rule), so `torch.func.grad`, `vmap`, `jacrev` and `vjp` work.
        Outputs: the value, its gradient with respect to the logits and, when
        ``want_rows`` (the weights require grad), the per-sample losses and the
        conventions' factors the weights' gradient needs (else empty tensors).
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
        ) -> tuple[Any, Any, Any, Any]:
            z, t, w, on_numpy = _as_numpy(*plain(logits, labels, weights))
            params = {k: _like(v, on_numpy) for k, v in params.items()}
            value, grad = loss.value_and_grad(
                z, t, axis=axis, reduction=reduction, weights=w, **params
            )
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
            logits, _, weights, _, axis, reduction, params, want_rows, _ = inputs
            value, grad, rows, factors = output
            ctx.mark_non_differentiable(grad, rows, factors)
            # Made inside `torch.func` (`grad`, `vjp`, ...), whose backward (also a
            # `torch.func.vjp` pullback called later) always builds a graph: the
            # second-order guard, which needs the logits.  Eagerly they are not
            # saved, so an in-place change of them after the call stays allowed.
            ctx.func = _transformed()
            z = logits if ctx.func else None
            ctx.save_for_backward(z, grad, weights, rows, value, factors)
            ctx.axis = axis % logits.ndim
            ctx.reduction = reduction
            ctx.rows = bool(want_rows) and weights is not None
            conv = ("ignore_index", "class_weights")
            ctx.factors = any(params.get(k) is not None for k in conv)

        @staticmethod
        def backward(
            ctx: Any, g_value: Any, *_: Any
        ) -> tuple[Any, None, Any, None, None, None, None, None, None]:
            guard = torch.is_grad_enabled()  # create_graph=True
            if guard and not ctx.func:  # eagerly: refused at once
                raise RuntimeError(_SECOND_ORDER)
            z, grad, w, rows, value, factors = ctx.saved_tensors
            g = g_value.unsqueeze(ctx.axis) if ctx.reduction == "none" else g_value
            dz = grad * g if ctx.needs_input_grad[0] else None
            dw = None
            if ctx.rows and ctx.needs_input_grad[2]:
                if ctx.reduction == "mean" and not ctx.factors:
                    dw = (rows - value) / w.sum() * g_value
                elif ctx.reduction == "mean":
                    f = factors.to(rows.dtype)  # rows: c_i l_i; the mean's weights w c
                    dw = (rows - f * value) / (w * f).sum() * g_value
                else:
                    dw = rows * g_value
            if guard:  # `torch.func` builds this graph: no silent zero Hessian
                deps = [x for x in (z, w) if x is not None]
                dz = None if dz is None else first_order(dz, *deps)
                dw = None if dw is None else first_order(dw, *deps)
            return dz, None, dw, None, None, None, None, None, None

        @staticmethod
        def vmap(
            info: Any, in_dims: Any, *inputs: Any
        ) -> tuple[tuple[Any, ...], tuple[int, ...]]:
            """`torch.func.vmap`: the loss of each slice, stacked (the front end's
            value checks read values, so each slice is one eager call: the
            errors and messages are those of the eager call).  ``inputs`` are
            `forward`'s: the logits, labels and weights are sliced, the rest
            passed on."""
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

    first_order: Any = _FirstOrderOnly.apply
    node: Any = _AnalyticLoss.apply
    return _AnalyticLoss

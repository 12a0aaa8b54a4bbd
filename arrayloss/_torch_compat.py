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
from collections.abc import Iterable, Mapping
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


def tracks_grad(logits: Array, weights: Array | None) -> bool:
    """True if autograd must see this call: a torch tensor that requires grad,
    with grad mode on."""
    if not is_torch_array(logits):
        return False
    import torch

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
    factors: Array | None,
) -> tuple[Array, Array]:
    """``(value, grad)`` of ``loss`` with ``value`` differentiable by autograd.

    ``loss`` is a `Kernel` or a `LossInfo`: anything with ``value`` and
    ``value_and_grad`` methods taking ``(logits, labels, *, axis, reduction,
    weights, **params)``.  ``factors`` is what the conventions multiply each
    sample's weight by (``arrayloss._api.sample_factors``, a tensor of the batch
    shape, or ``None``), which the weights' gradient needs: the caller, which
    owns the front end, computes it when `weights_need_grad`.

    ``grad`` (the analytic gradient with respect to ``logits``) is returned
    detached.  Soft labels and class weights that require grad are refused
    (`refuse_grad`).
    """
    refuse_grad(labels, params.get("class_weights"))
    value, grad = _function().apply(
        logits, labels, weights, loss, axis, reduction, dict(params), factors
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


@functools.cache
def _function() -> Any:
    """The `torch.autograd.Function`, defined on first use (torch imported then)."""
    import torch

    class _AnalyticLoss(torch.autograd.Function):
        """One autograd node: the core's analytic gradient times ``grad_output``."""

        @staticmethod
        def forward(
            ctx: Any,
            logits: Any,
            labels: Any,
            weights: Any,
            loss: Any,
            axis: int,
            reduction: str,
            params: dict[str, Any],
            factors: Any,
        ) -> tuple[Any, Any]:
            z, t, w, on_numpy = _as_numpy(*plain(logits, labels, weights))
            params = {k: _like(v, on_numpy) for k, v in params.items()}
            value, grad = loss.value_and_grad(
                z, t, axis=axis, reduction=reduction, weights=w, **params
            )
            rows = None
            if w is not None and ctx.needs_input_grad[2]:
                rows = loss.value(
                    z, t, axis=axis, reduction="none", weights=None, **params
                )
            else:
                factors = None
            if on_numpy:
                value, grad = _from_numpy(value), _from_numpy(grad)
                w = None if w is None else weights.detach()
                rows = None if rows is None else _from_numpy(rows)
            ctx.mark_non_differentiable(grad)
            ctx.save_for_backward(grad, w, rows, value, factors)
            ctx.axis = axis % z.ndim
            ctx.reduction = reduction
            return value, grad

        @staticmethod
        def backward(
            ctx: Any, g_value: Any, g_grad: Any
        ) -> tuple[Any, None, Any, None, None, None, None, None]:
            if torch.is_grad_enabled():  # create_graph=True: a silent zero Hessian
                msg = (
                    "arrayloss losses give first derivatives only: "
                    "backward with create_graph=True is not supported"
                )
                raise RuntimeError(msg)
            grad, w, rows, value, factors = ctx.saved_tensors
            g = g_value.unsqueeze(ctx.axis) if ctx.reduction == "none" else g_value
            dz = grad * g if ctx.needs_input_grad[0] else None
            dw = None
            if rows is not None:
                if ctx.reduction == "mean" and factors is None:
                    dw = (rows - value) / w.sum() * g_value
                elif ctx.reduction == "mean":
                    f = factors.to(rows.dtype)  # rows: c_i l_i; the mean's weights w c
                    dw = (rows - f * value) / (w * f).sum() * g_value
                else:
                    dw = rows * g_value
            return dz, None, dw, None, None, None, None, None

    return _AnalyticLoss

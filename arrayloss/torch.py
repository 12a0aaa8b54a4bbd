"""Every registry loss as a differentiable PyTorch function, and as a module.

``import arrayloss.torch`` (the ``torch`` extra) gives, for each name in
`arrayloss.LOSSES`, a function of the same name and signature as the core one
(``arrayloss.torch.smooth_topk_svm``, ``arrayloss.torch.keras.kl_divergence``)
whose result autograd differentiates with the loss's exact analytic gradient:

- the forward calls the core's ``value_and_grad`` once, on detached tensors, so no
  graph is built through its operations: the result's ``grad_fn`` is one node;
- the backward returns the saved gradient times ``grad_output`` (per sample for
  ``reduction="none"``); weights that require grad get theirs too.  Forward mode
  (`torch.autograd.forward_ad`, `torch.func.jvp`, `torch.func.jacfwd`) uses the
  same gradient: the tangent of the value is ``<grad, dz>`` (per sample for
  ``"none"``), plus the weights' term.  A second derivative (``create_graph=True``,
  `torch.func.hessian`, ``grad(grad(f))``, ``jacfwd(jacrev(f))``) raises one
  message: first derivatives only.
- `torch.func` transforms work: `torch.func.grad`, `vjp`, `jacrev`, `jvp`,
  `jacfwd` and `vmap` (``vmap(grad(f))`` gives per-sample gradients).  Under
  `vmap` the slices run as one call on their rows end to end, each slice reduced
  on its own: the numbers, and the errors, of a call per slice (where one call
  cannot give them, each slice is its own call).  Batching `class_weights` under
  `vmap` is a `NotImplementedError`.

`loss` wraps one as a `torch.nn.Module`.  Results keep the logits' dtype and
device; on CPU the forward runs the NumPy kernels on zero-copy views of the tensors
(faster than the torch kernels), on CUDA the torch kernels.  Under `torch.compile` the loss is
one opaque call (`torch.compiler.disable`): the layers around it compile, the
loss runs as it does eagerly.

The core functions do the same for tensors that require grad (this module adds the
tensor check, the module wrapper and the `torch.compile` boundary).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from . import _torch_compat
from ._adapter import check_options, export, present
from ._api import sample_factors
from ._registry import LOSSES, LossInfo, get_loss

__all__ = ["Loss", "keras", "loss", *(n for n in LOSSES if "." not in n)]


def _function(info: LossInfo) -> Callable[..., torch.Tensor]:
    """The differentiable ``info.value`` (same name, signature and defaults)."""

    def run(
        logits: torch.Tensor,
        labels: torch.Tensor,
        /,
        *,
        axis: int = -1,
        reduction: str = "mean",
        weights: torch.Tensor | None = None,
        **params: Any,
    ) -> torch.Tensor:
        if not isinstance(logits, torch.Tensor):
            msg = (
                f"`arrayloss.torch.{info.name}` takes torch tensors (got "
                f"{type(logits).__name__}); `arrayloss.{info.name}` takes any array"
            )
            raise TypeError(msg)
        value, _ = _torch_compat.apply(
            info, logits, labels, weights,
            axis=axis, reduction=reduction, params=params, factors_of=sample_factors,
        )  # fmt: skip
        return value  # type: ignore[no-any-return]

    @torch.compiler.disable  # type: ignore[untyped-decorator]
    def fn(logits: torch.Tensor, labels: torch.Tensor, /, **options: Any) -> Any:
        return run(logits, labels, **options)

    how = (
        "as a differentiable torch function: the result's backward uses the exact "
        "analytic gradient"
    )
    present(fn, info, __name__, how)
    result: Callable[..., torch.Tensor] = fn
    return result


keras = export(globals(), __name__, _function)


class Loss(torch.nn.Module):
    """One registry loss as a `torch.nn.Module` (build it with `loss`).

    Parameters
    ----------
    name : str
        A key of `arrayloss.LOSSES`.
    **params
        The loss's options (``k``, ``tau``, ``reduction``, ``axis``, ...,
        ``ignore_index``, ``class_weights``); checked against its signature here,
        their values at the first call.  Tensor ``class_weights`` are a buffer (as
        `torch.nn.CrossEntropyLoss`'s ``weight``): `.to` moves them with the
        module and `state_dict` holds them.
    """

    def __init__(self, name: str, **params: Any) -> None:
        super().__init__()
        info = check_options(
            name, params, "to `forward`, not to the loss's constructor"
        )
        self.name = name
        self.params = dict(params)
        if isinstance(self.params.get("class_weights"), torch.Tensor):
            # A buffer, as `torch.nn.CrossEntropyLoss`'s ``weight``: `.to(device)`
            # moves it along with the model, `state_dict` holds it.
            self.register_buffer("class_weights", self.params.pop("class_weights"))
        self._fn = _function(info)

    def __getstate__(self) -> dict[str, Any]:
        """The state without the loss function (a closure, which pickle cannot
        take): `torch.save` of a model holding the loss, `copy.deepcopy`."""
        state = self.__dict__.copy()
        state.pop("_fn", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)  # type: ignore[no-untyped-call,unused-ignore]
        self._fn = _function(get_loss(self.name))

    def forward(
        self,
        logits: torch.Tensor,
        labels: torch.Tensor,
        weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The loss of ``logits`` against ``labels`` (optional per-sample weights)."""
        return self._fn(logits, labels, weights=weights, **self._options())

    def _options(self) -> dict[str, Any]:
        """The options of the call: ``params`` and the ``class_weights`` buffer."""
        if "class_weights" not in self._buffers:
            return self.params
        return {**self.params, "class_weights": self._buffers["class_weights"]}

    def extra_repr(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self._options().items())
        return f"{self.name!r}{opts}"


def loss(name: str, **params: Any) -> Loss:
    """``arrayloss.LOSSES[name]`` as a `torch.nn.Module`.

    ``forward(logits, labels, weights=None)`` returns the loss, differentiable with
    its analytic gradient.

    Examples
    --------
    >>> import torch
    >>> import arrayloss.torch as alt
    >>> crit = alt.loss("smooth_topk_svm", k=2)
    >>> crit
    Loss('smooth_topk_svm', k=2)
    >>> z = torch.tensor([[1.0, 2.5, -0.3, 0.7, 3.1]], requires_grad=True)
    >>> value = crit(z, torch.tensor([2]))
    >>> value.backward()
    >>> round(value.item(), 6), abs(z.grad.sum().item()) < 1e-6  # rows sum to 0
    (2.588917, True)
    """
    return Loss(name, **params)

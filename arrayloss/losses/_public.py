"""The public pair of a loss: a hand-written value function and its ``_and_grad`` twin.

A loss module writes ``name(logits, labels, /, *, <params>, axis, reduction,
weights)`` by hand (the signature and numpydoc docstring the registry and the
documentation read), with the body ``return call(_KERNEL, locals())``, and gets the
companion from it::

    name_and_grad = grad_twin(_KERNEL, name)

The twin has the value function's signature (return type ``tuple[Array, Array]``),
the one ``_and_grad`` docstring, its name and module, and calls
`arrayloss._api.Kernel.value_and_grad` with the same defaults (and the private
``_groups`` of the torch ``vmap`` rule, `arrayloss._torch_compat`, not in the
signature).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from .._api import CONVENTIONS, Kernel, unknown_parameter
from .._doc import DOCS, fill
from .._typing import Array

__all__ = ["GradFunction", "call", "grad_twin"]

GradFunction = Callable[..., tuple[Array, Array]]

_ARRAYS = ("logits", "labels")
_COMMON = ("axis", "reduction", "weights", *CONVENTIONS)


def call(kernel: Kernel, args: Mapping[str, Any]) -> Array:
    """``kernel.value`` on the arguments of a value function (its ``locals()``)."""
    kw = dict(args)
    return kernel.value(kw.pop("logits"), kw.pop("labels"), **kw)


def grad_twin(kernel: Kernel, value: Callable[..., Array]) -> GradFunction:
    """The ``<name>_and_grad`` companion of the hand-written value function ``value``.

    Parameters
    ----------
    kernel : Kernel
        The loss's kernel; the twin calls its ``value_and_grad``.
    value : callable
        ``name(logits, labels, /, *, ...)``, whose keyword parameters and defaults
        the twin takes.

    Returns
    -------
    callable
        ``name_and_grad(logits, labels, /, *, ...) -> (value, gradient)``, with
        ``value``'s signature, the ``grad`` block of `arrayloss._doc.DOCS` as its
        docstring and ``value``'s module.

    Raises
    ------
    TypeError
        When called with a keyword that ``value`` does not take, with the
        message of `arrayloss._api.unknown_parameter`.
    """
    sig = inspect.signature(value)
    defaults = {
        p.name: p.default for p in sig.parameters.values() if p.name not in _ARRAYS
    }
    name = value.__name__ + "_and_grad"
    own = [k for k in defaults if k not in _COMMON]

    def twin(
        logits: Array, labels: Array, /, *, _groups: int = 1, **params: Any
    ) -> tuple[Array, Array]:
        unknown = params.keys() - defaults.keys()
        if unknown:
            raise unknown_parameter(kernel.name, min(unknown), own)
        return kernel.value_and_grad(
            logits, labels, **{**defaults, **params}, _groups=_groups
        )

    annotations = dict(getattr(value, "__annotations__", {}))
    annotations["return"] = "tuple[Array, Array]"
    twin.__signature__ = sig.replace(  # type: ignore[attr-defined]
        return_annotation="tuple[Array, Array]"
    )
    twin.__annotations__ = annotations
    twin.__name__ = twin.__qualname__ = name
    twin.__module__ = value.__module__
    twin.__doc__ = fill(DOCS["grad"], {"name": value.__name__})
    twin.__wrapped__ = value  # type: ignore[attr-defined]
    return twin

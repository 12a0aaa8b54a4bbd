"""What the framework adapters (`arrayloss.torch`, `arrayloss.jax`) share: one
function per registry loss under the loss's name and signature, the ``keras``
submodule, and the check of a loss object's fixed options.

Imports no framework: each adapter passes its own function factory.
"""

from __future__ import annotations

import inspect
import sys
import types
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

from ._api import unknown_parameter
from ._registry import CONVENTIONS, LOSSES, LossInfo, get_loss

__all__ = ["check_options", "export", "present"]


def present(fn: Callable[..., Any], info: LossInfo, module: str, how: str) -> None:
    """Give ``fn`` the name, module, signature and docstring of ``info``'s adapter
    function in ``module`` (``module.keras`` for a Keras loss); ``how`` says in the
    docstring how its derivative is made."""
    fn.__name__ = fn.__qualname__ = info.name.rsplit(".", 1)[-1]
    fn.__module__ = module if "." not in info.name else f"{module}.keras"
    fn.__signature__ = inspect.signature(info.value)  # type: ignore[attr-defined]
    fn.__doc__ = (
        f"`arrayloss.{info.name}` ({_rst(info.summary)}) {how}.\n\n"
        f"Same parameters as `arrayloss.{info.name}`."
    )


def _rst(text: str) -> str:
    """``text`` with the characters reStructuredText would read as markup escaped."""
    return text.replace("|", "\\|").replace("*", "\\*")


def export(
    namespace: MutableMapping[str, Any],
    module: str,
    make: Callable[[LossInfo], Callable[..., Any]],
) -> types.ModuleType:
    """Put ``make(info)`` for every registry loss into the adapter's ``namespace``
    (a Keras loss into the returned ``module.keras`` submodule, also importable as
    ``import <module>.keras``)."""
    keras = types.ModuleType(f"{module}.keras", "The `arrayloss.keras` losses.")
    for name, info in LOSSES.items():
        if name.startswith("keras."):
            setattr(keras, name.split(".", 1)[1], make(info))
        else:
            namespace[name] = make(info)
    keras.__all__ = sorted(n for n in vars(keras) if not n.startswith("_"))  # type: ignore[attr-defined]
    sys.modules[keras.__name__] = keras
    return keras


def check_options(name: str, params: Mapping[str, Any], where: str) -> LossInfo:
    """``LOSSES[name]``, with ``params`` checked against its signature (names only:
    values are checked at the call); ``weights`` belong to the call (``where``
    says where to pass them)."""
    info = get_loss(name)
    if "weights" in params:
        msg = f"pass `weights` {where}"
        raise TypeError(msg)
    own = {k: v for k, v in params.items() if k not in CONVENTIONS}
    sig = inspect.signature(info.value)
    unknown = sorted(k for k in own if k not in sig.parameters)
    if unknown:
        raise unknown_parameter(name, unknown[0], info.params)
    sig.bind_partial(None, None, **own)
    return info

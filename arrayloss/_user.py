"""Users' own losses: a user-level registry beside the read-only built-in table.

`register_loss` wraps a row function in the same `Kernel` as every built-in loss,
so the shared wrapper (axis, reduction, weights, validation, every backend),
`value_and_grad`, `gradcheck` and the command line's ``--loss`` work on it
unchanged.  ``arrayloss.LOSSES`` stays the built-in table; the user's entries are
in ``arrayloss.USER_LOSSES`` (a read-only view, beside ``LOSSES`` in
`arrayloss._registry`, which this module fills) and `get_loss` looks in both.
"""

from __future__ import annotations

import importlib
import inspect
import keyword
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._api import CONVENTIONS, Kernel, Targets, unknown_parameter
from ._errors import blame_user_loss
from ._registry import _USER, LOSSES, LossInfo
from ._typing import Array, Namespace
from .losses._public import grad_twin

__all__ = [
    "import_spec",
    "register_again",
    "register_loss",
    "unregister_loss",
    "user_references",
]

_RAW: dict[str, Callable[..., Any]] = {}
# name -> (module, function) `import_spec` resolved it from (function None: the
# module's import registered it), for other processes (`user_references`)
_SOURCES: dict[str, tuple[str, str | None]] = {}
_TARGETS = ("index", "soft", "both")
_COMMON = ("axis", "reduction", "weights")


def _rows(
    name: str, fn: Callable[..., Any], targets: str
) -> Callable[..., tuple[Array, Array | None]]:
    def rows(
        z: Array, t: Targets, *, xp: Namespace, want_grad: bool, **params: Any
    ) -> tuple[Array, Array | None]:
        if targets == "soft" or (targets == "both" and t.index is None):
            labels = t.probs
        else:
            labels = t.index
        try:
            out = fn(z, labels, **params)
        except Exception as exc:  # their code, not arrayloss: the CLI says so
            blame_user_loss(exc, name)
            raise
        if not (isinstance(out, tuple) and len(out) == 2):
            msg = f"user loss {name!r} must return a pair (values, gradients), got {type(out).__name__}"
            raise TypeError(msg)
        loss, grad = out
        n, c = z.shape
        for what, x, shape in (("values", loss, (n,)), ("gradients", grad, (n, c))):
            if not hasattr(x, "shape") or not hasattr(x, "dtype"):
                msg = (
                    f"user loss {name!r} returned {what} of type {type(x).__name__}; "
                    f"expected an array of shape {shape}"
                )
                raise TypeError(msg)
        if tuple(loss.shape) != (n,):
            msg = (
                f"user loss {name!r} returned values of shape {tuple(loss.shape)}; "
                f"expected one value per row, shape ({n},)"
            )
            raise ValueError(msg)
        if tuple(grad.shape) != (n, c):
            msg = (
                f"user loss {name!r} returned gradients of shape {tuple(grad.shape)}; "
                f"expected the row gradients, shape ({n}, {c})"
            )
            raise ValueError(msg)
        if loss.dtype != z.dtype:
            loss = xp.astype(loss, z.dtype)
        if not want_grad:
            return loss, None
        return loss, (grad if grad.dtype == z.dtype else xp.astype(grad, z.dtype))

    return rows


def _blamed(
    name: str, kinks: Callable[[Any, Any, dict[str, Any]], Any]
) -> Callable[[Any, Any, dict[str, Any]], Any]:
    """The user's ``kinks`` of loss ``name``, its exceptions marked as theirs
    (`blame_user_loss`), as those of the loss itself are in `_rows`."""

    def distances(z: Any, y: Any, params: dict[str, Any]) -> Any:
        try:
            return kinks(z, y, params)
        except Exception as exc:
            blame_user_loss(exc, name)
            raise

    return distances


def _checker(name: str, defaults: Mapping[str, Any]) -> Callable[..., dict[str, Any]]:
    def check(*, n_classes: int, **params: Any) -> dict[str, Any]:
        unknown = sorted(set(params) - set(defaults))
        if unknown:
            raise unknown_parameter(name, unknown[0], defaults)
        return {**defaults, **params}

    return check


def _defaults(fn: Callable[..., Any]) -> dict[str, Any]:
    """The keyword parameters of ``fn`` that have defaults (after the two arrays)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return {}
    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    out = {}
    for i, p in enumerate(sig.parameters.values()):
        if i >= 2 and p.kind in kinds and p.default is not p.empty:
            out[p.name] = p.default
    return out


def _public(
    name: str, kernel: Kernel, defaults: Mapping[str, Any], doc: str | None
) -> tuple[Callable[..., Array], Callable[..., tuple[Array, Array]]]:
    """The pair of a user loss: a value function with the signature of a built-in
    one (its own parameters, then the common ones) and its `grad_twin`."""
    common = {"axis": -1, "reduction": "mean", "weights": None}
    common |= dict.fromkeys(CONVENTIONS)

    def value(logits: Array, labels: Array, /, **params: Any) -> Array:
        return kernel.value(logits, labels, **{**common, **params})

    P = inspect.Parameter
    own = {**defaults, **common}
    value.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            P("logits", P.POSITIONAL_ONLY),
            P("labels", P.POSITIONAL_ONLY),
            *(P(k, P.KEYWORD_ONLY, default=v) for k, v in own.items()),
        ]
    )
    value.__name__ = value.__qualname__ = name.replace(".", "_")
    value.__doc__ = doc or f"The user loss {name!r}."
    return value, grad_twin(kernel, value)


def register_loss(
    name: str,
    value_and_grad: Callable[..., Any],
    *,
    targets: str = "soft",
    kinks: Callable[[Any, Any, dict[str, Any]], Any] | None = None,
    params: Mapping[str, Any] | None = None,
    summary: str | None = None,
    replace: bool = False,
) -> LossInfo:
    """Add your own loss to a user-level registry, behind the shared wrapper.

    Parameters
    ----------
    name : str
        The name ``get_loss``, ``value_and_grad``, ``gradcheck`` and the CLI's
        ``--loss`` know it by.  It may not be a built-in name nor contain ``:``.
    value_and_grad : callable
        ``value_and_grad(logits, labels, **params) -> (values, gradients)`` on a
        batch of rows: ``logits`` is ``(n, C)`` with the classes last, in the
        caller's namespace, dtype and device (NumPy blocks for a Dask batch);
        ``values`` must have shape ``(n,)`` and ``gradients`` ``(n, C)`` with row
        ``i`` = d values_i / d logits_i.  Use only array-API calls on
        ``array_api_compat.array_namespace(logits)`` to run on every backend.
    targets : {"soft", "index", "both"}
        What ``labels`` the function receives: ``"soft"`` the ``(n, C)`` target
        distribution (index labels arrive one-hot); ``"index"`` the ``(n,)``
        integer class indices (soft labels are then rejected); ``"both"``
        whichever the caller gave.
    kinks : callable, optional
        ``kinks(logits, labels, params) -> (n,)`` distances to the nearest point
        where the loss is not differentiable (float64 NumPy in and out), for
        `arrayloss.gradcheck` (see ``arrayloss._kinks``).
    params : mapping, optional
        The loss's own keyword parameters and their defaults; by default those of
        ``value_and_grad``'s signature.  Unknown parameters are a `TypeError`.
    summary : str, optional
        One line for listings.
    replace : bool
        Allow replacing an earlier user registration of ``name``.

    Returns
    -------
    LossInfo
        The entry, also in `arrayloss.USER_LOSSES`.

    Examples
    --------
    >>> import numpy as np
    >>> import arrayloss as al
    >>> def squared_margin(z, y, *, margin=1.0):
    ...     zy = np.take_along_axis(z, y[:, None], axis=1)
    ...     r = np.maximum(margin + z - zy, 0) ** 2
    ...     r[np.arange(len(y)), y] = 0
    ...     g = 2 * np.sqrt(r)
    ...     g[np.arange(len(y)), y] = -g.sum(axis=1)
    ...     return r.sum(axis=1), g
    >>> info = al.register_loss("squared_margin", squared_margin, targets="index")
    >>> dict(info.params)
    {'margin': 1.0}
    >>> float(al.value_and_grad("squared_margin", np.array([[2.0, 1.5]]), np.array([0]))[0])
    0.25
    >>> al.unregister_loss("squared_margin")
    """
    if not isinstance(name, str) or not name or ":" in name:
        msg = f"`name` must be a non-empty string without ':' (got name={name!r})"
        raise ValueError(msg)
    if name in LOSSES:
        msg = f"{name!r} is a built-in loss; the built-in table is read-only"
        raise ValueError(msg)
    if name in _USER and not replace:
        msg = f"a user loss {name!r} is already registered (pass replace=True)"
        raise ValueError(msg)
    if not callable(value_and_grad):
        msg = f"`value_and_grad` must be callable (got {type(value_and_grad).__name__})"
        raise TypeError(msg)
    if targets not in _TARGETS:
        msg = f"`targets` must be one of 'both', 'index', 'soft' (got targets={targets!r})"
        raise ValueError(msg)
    if kinks is not None and not callable(kinks):
        msg = f"`kinks` must be callable or None (got {type(kinks).__name__})"
        raise TypeError(msg)
    defaults = dict(_defaults(value_and_grad) if params is None else params)
    for key in defaults:
        if (
            not key.isidentifier()
            or keyword.iskeyword(key)
            or key in (*_COMMON, *CONVENTIONS)
        ):
            msg = f"`params` key {key!r} is not a valid loss parameter name"
            raise ValueError(msg)
    kernel = Kernel(
        name,
        _rows(name, value_and_grad, targets),
        soft_labels=targets != "index",
        check_params=_checker(name, defaults),
    )
    value, grad = _public(name, kernel, defaults, inspect.getdoc(value_and_grad))
    kind = "index" if targets == "index" else "index|soft"
    info = LossInfo(name, value, grad, kind, summary or f"user loss {name}")
    from ._kinks import KINKS  # NumPy oracles, with SciPy: not at `import arrayloss`

    KINKS.pop(name, None)
    if kinks is not None:
        KINKS[name] = _blamed(name, kinks)
    _USER[name] = info
    _RAW[name] = value_and_grad
    return info


def unregister_loss(name: str) -> None:
    """Remove a loss added with `register_loss` (a `KeyError` if there is none)."""
    if name not in _USER:
        msg = f"no user loss {name!r} is registered"
        raise KeyError(msg)
    from ._kinks import KINKS

    del _USER[name]
    del _RAW[name]
    _SOURCES.pop(name, None)
    KINKS.pop(name, None)


def import_spec(spec: str) -> str:
    """Resolve a ``package.module:function[:k=v,...]`` loss spec.

    The module is imported (which may register losses itself); the function is
    the raw function or a public function of a user loss, else it is registered
    as ``package.module.function`` (``targets="soft"``, parameters from its
    signature).  Returns the spec with the registered name in front; other specs
    come back unchanged.  A `ValueError` says what failed.
    """
    head, sep, rest = spec.strip().partition(":")
    func, sep2, params = rest.partition(":")
    func = func.strip()
    if not sep or not func.isidentifier() or head in LOSSES or head in _USER:
        return spec
    module = head.strip()
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # any import-time failure is the user's module's
        msg = f"--loss {spec!r}: cannot import {module!r} ({type(exc).__name__}: {exc})"
        raise ValueError(msg) from None
    obj = getattr(mod, func, None)
    if obj is None or not callable(obj):
        msg = f"--loss {spec!r}: module {module!r} has no function {func!r}"
        raise ValueError(msg)
    name = next(
        (n for n, i in _USER.items() if obj in (_RAW[n], i.value, i.value_and_grad)),
        None,
    )
    if name is None:
        name = f"{module}.{func}"
        register_loss(name, obj, replace=True)
        _SOURCES[name] = (module, func)
    else:  # importing the module registered it (or it was registered before)
        _SOURCES.setdefault(name, (module, None))
    return name + (":" + params if sep2 else "")


def user_references(names: Iterable[str]) -> dict[str, tuple[str, str | None]]:
    """How another process (a study's worker) finds each user loss among
    ``names``: ``(module, attribute)`` of its function, as `import_spec`
    registered it, or ``(module, None)`` where importing its module registers it.

    Raises `ValueError` for a loss that no import finds (registered by code at
    run time, not by a module).
    """
    out: dict[str, tuple[str, str | None]] = {}
    for name in names:
        fn = _RAW.get(name)
        if fn is None:
            continue
        if name in _SOURCES:
            out[name] = _SOURCES[name]
            continue
        module, _, attr = name.rpartition(".")
        try:
            found = (
                getattr(importlib.import_module(module), attr, None) if module else None
            )
        except Exception:  # not a module: the name is the user's own
            found = None
        if found is fn:
            out[name] = (module, attr)
            continue
        home = getattr(fn, "__module__", None)
        if not home or home == "__main__":
            msg = f"user loss {name!r} is registered by code, not by a module that another process can import"
            raise ValueError(msg)
        out[name] = (home, None)
    return out


def register_again(references: Mapping[str, tuple[str, str | None]]) -> None:
    """Register in this process the user losses of `user_references` (importing
    their modules, which may register them itself), as `import_spec` registered
    them in the process that gave them."""
    for name, (module, attr) in references.items():
        mod = importlib.import_module(module)
        if name not in _USER and attr is not None:
            register_loss(name, getattr(mod, attr), replace=True)

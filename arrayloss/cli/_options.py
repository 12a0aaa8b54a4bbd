"""Options shared by the subcommands, defined once (pip-tools' ``options.py`` pattern).

``NAME[:key=value,...]`` specs name a loss (or a metric) and its parameters; each
value is cast to the type of that parameter's default, so ``k=5`` is an int where
the default is an int and a float where it is a float.  Every problem is a
`click.BadParameter` (exit code 2) naming the spec.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import click

__all__ = [
    "LOSS",
    "LOSS_HELP",
    "LossSpec",
    "check_loss_params",
    "format_spec",
    "loss_option",
    "parse_int_list",
    "parse_loss_spec",
    "parse_spec",
]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _cast(key: str, text: str, default: Any, spec: str) -> Any:
    """``text`` as the type of ``default`` (bool, int, float or str)."""
    kind = type(default)
    try:
        if isinstance(default, bool):
            low = text.lower()
            if low in _TRUE | _FALSE:
                return low in _TRUE
            raise ValueError
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            value = float(text)
            if math.isnan(value):
                raise ValueError
            return value
    except ValueError:
        names = {bool: "true or false", int: "an integer", float: "a number"}
        msg = (
            f"{spec!r}: `{key}` must be {names.get(kind, kind.__name__)} (got {text!r})"
        )
        raise click.BadParameter(msg) from None
    if default is None:  # no type to go by: None, or the most specific literal
        if text.lower() == "none":
            return None
        for convert in (int, float):
            try:
                return convert(text)
            except ValueError:
                pass
    return text


def parse_spec(
    spec: str, catalogue: Mapping[str, Mapping[str, Any]], *, what: str = "loss"
) -> tuple[str, dict[str, Any]]:
    """Split ``NAME[:k=v,...]`` and cast each value to its default's type.

    ``catalogue`` maps each known name to its parameters and their defaults.
    Raises `click.BadParameter` for an unknown name, an unknown or repeated
    parameter, or a malformed or ill-typed value.
    """
    spec = spec.strip()
    name, sep, rest = spec.partition(":")
    name = name.strip()
    if name not in catalogue:
        import difflib

        close = difflib.get_close_matches(name, list(catalogue), n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        known = "" if close else f" (known: {', '.join(sorted(catalogue))})"
        msg = f"unknown {what} {name!r}{hint}{known}"
        raise click.BadParameter(msg)
    defaults = catalogue[name]
    params: dict[str, Any] = {}
    if sep and not rest.strip():
        msg = f"{spec!r}: nothing after ':' (expected {name}:key=value,...)"
        raise click.BadParameter(msg)
    for item in rest.split(",") if rest.strip() else ():
        key, eq, text = item.partition("=")
        key, text = key.strip(), text.strip()
        if not eq or not key or not text:
            msg = f"{spec!r}: {item.strip()!r} is not key=value"
            raise click.BadParameter(msg)
        if key not in defaults:
            have = ", ".join(defaults) if defaults else "none"
            msg = f"{spec!r}: {what} {name!r} has no parameter {key!r} (parameters: {have})"
            raise click.BadParameter(msg)
        if key in params:
            msg = f"{spec!r}: parameter {key!r} is given twice"
            raise click.BadParameter(msg)
        params[key] = _cast(key, text, defaults[key], spec)
    return name, params


def parse_loss_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"smooth_topk_svm:k=5,tau=0.5"`` -> ``("smooth_topk_svm", {"k": 5, "tau": 0.5})``.

    Names come from `arrayloss.LOSSES`; each value takes the type of the loss's
    default for that parameter (``LOSSES[name].params``).  Values are not range
    checked here: `check_loss_params` does that once the number of classes is known.
    """
    from arrayloss._registry import LOSSES
    from arrayloss._user import USER_LOSSES, import_spec

    try:
        spec = import_spec(spec)  # package.module:function[:k=v,...]
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    catalogue = {n: i.params for n, i in {**LOSSES, **USER_LOSSES}.items()}
    return parse_spec(spec, catalogue, what="loss")


def format_spec(name: str, params: Mapping[str, Any]) -> str:
    """The canonical spec string, ``name`` or ``name:k=v,...`` in the given order."""
    if not params:
        return name
    return name + ":" + ",".join(f"{k}={v}" for k, v in params.items())


def check_loss_params(
    name: str,
    params: Mapping[str, Any],
    n_classes: int,
    *,
    param_hint: str = "'--loss'",
) -> None:
    """Run the loss once on two zero rows of ``n_classes`` scores.

    A parameter out of range (``k >= n_classes`` for top-k, a negative margin) or
    too few classes for the loss raises `click.BadParameter` with the loss's own
    message.
    """
    import numpy as np

    from arrayloss._registry import get_loss

    info = get_loss(name)
    logits = np.zeros((2, n_classes))
    labels = np.zeros(2, dtype=np.int64)
    try:
        info.value(logits, labels, **params)
    except (ValueError, TypeError) as exc:
        spec = format_spec(name, params)
        msg = f"{spec!r} with {n_classes} classes: {exc}"
        raise click.BadParameter(msg, param_hint=param_hint) from None


class LossSpec(click.ParamType):  # type: ignore[type-arg]
    """A click type for ``NAME[:key=value,...]`` loss specs -> ``(name, params)``."""

    name = "loss"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, dict[str, Any]]:
        if isinstance(value, tuple):
            return value
        try:
            return parse_loss_spec(str(value))
        except click.BadParameter as exc:
            self.fail(exc.message, param, ctx)

    def get_metavar(
        self, param: click.Parameter, ctx: click.Context | None = None
    ) -> str:
        return "NAME[:K=V,...]"


LOSS = LossSpec()


def parse_int_list(text: str, *, name: str, low: int = 1) -> tuple[int, ...]:
    """``"1,5"`` -> ``(1, 5)``; `click.BadParameter` naming option ``name`` otherwise."""
    out = []
    for part in text.split(","):
        try:
            value = int(part.strip())
        except ValueError:
            msg = f"must be a comma-separated list of integers (got {text!r})"
            raise click.BadParameter(msg, param_hint=[name]) from None
        if value < low:
            msg = f"values must be >= {low} (got {value})"
            raise click.BadParameter(msg, param_hint=[name])
        out.append(value)
    return tuple(dict.fromkeys(out))


LOSS_HELP = (
    "A loss by its registry name, with parameters after a colon, e.g. "
    "smooth_topk_svm:k=5,tau=0.5 (`arrayloss list` shows the names). "
    "Repeat for several."
)

loss_option = click.option(
    "--loss",
    "losses",
    type=LOSS,
    multiple=True,
    metavar="NAME[:K=V,...]",
    help=LOSS_HELP,
)

"""Options shared by the subcommands, defined once (pip-tools' ``options.py`` pattern).

Each shared option is a decorator factory here (`loss_option`, `backend_option`,
`top_k_option`, and the training options of ``train`` and ``study``:
`data_option`, `hidden_option`, `epochs_option`, `batch_size_option`,
`optimizer_option`, `lr_option`, `weight_decay_option`, `noise_kind_option`), so a
flag has one spelling, one type and one help text in every command.  Each option
that takes more than a plain value has a `click.ParamType` here, so click checks
it before any work (exit 2): `Real` for every real-valued option (finite, in
range), `IntList`, `HiddenWidths`, and ``eval``'s `Eps`, `Delimiter` and
`ColumnSpec`.

``NAME[:key=value,...]`` specs name a loss (or a metric) and its parameters; each
value is cast to the type of that parameter's default, so ``k=5`` is an int where
the default is an int and a float where it is a float.  Every problem is a
`click.BadParameter` (exit code 2) naming the spec.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import click

__all__ = [
    "LOSS",
    "LOSS_HELP",
    "MAX_EPOCHS",
    "ColumnSpec",
    "Delimiter",
    "Eps",
    "HiddenWidths",
    "IntList",
    "LossSpec",
    "Real",
    "backend_option",
    "batch_size_option",
    "check_loss_params",
    "check_top_k",
    "choice_option",
    "count_option",
    "data_option",
    "epochs_option",
    "format_option",
    "format_spec",
    "fraction_option",
    "hidden_option",
    "json_params",
    "loss_option",
    "lr_option",
    "noise_kind_option",
    "optimizer_option",
    "parse_int_list",
    "parse_loss_spec",
    "parse_spec",
    "top_k_given",
    "top_k_option",
    "weight_decay_option",
]

F = TypeVar("F", bound=Callable[..., Any])
Decorator = Callable[[F], F]

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
            # '1e400' too: no built-in loss takes an infinite value (a user's loss
            # whose default is infinite may)
            if math.isinf(value) and math.isfinite(default):
                msg = f"{spec!r}: `{key}` must be a finite number (got {text!r})"
                raise click.BadParameter(msg)
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
    from arrayloss._registry import LOSSES, USER_LOSSES
    from arrayloss._user import import_spec

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


def json_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """A loss's parameters as strict JSON values: a non-finite float becomes its
    text (``"inf"``, as in a spec)."""
    return {
        k: str(v) if isinstance(v, float) and not math.isfinite(v) else v
        for k, v in params.items()
    }


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
    message; so does any exception from a user's loss (their code, not ours).
    """
    import numpy as np

    from arrayloss._errors import one_line
    from arrayloss._registry import _USER, LOSSES, get_loss

    info = get_loss(name)
    if not params and info is LOSSES.get("cross_entropy") and n_classes >= 1:
        # the default loss, without parameters, takes any class count: skipping the
        # run skips array-api-compat's NumPy namespace, ~0.1 s of eval's startup
        return
    logits = np.zeros((2, n_classes))
    labels = np.zeros(2, dtype=np.int64)
    try:
        # Only the checks matter: an overflow of the probe's value (a margin of
        # 1e308 on 2 classes) is no error here, and no warning on stderr.
        with np.errstate(all="ignore"):
            info.value(logits, labels, **params)
    except (ValueError, TypeError) as exc:
        spec = format_spec(name, params)
        msg = f"{spec!r} with {n_classes} classes: {one_line(exc)}"
        raise click.BadParameter(msg, param_hint=param_hint) from None
    except Exception as exc:
        if name not in _USER:
            raise  # a built-in loss failing is an internal error
        spec = format_spec(name, params)
        msg = f"{spec!r} with {n_classes} classes raised {type(exc).__name__}: {one_line(exc)}"
        raise click.BadParameter(msg, param_hint=param_hint) from None


def top_k_given(ctx: click.Context | None) -> bool:
    """Whether ``--top-k`` was given (not its default) in ``ctx``."""
    return ctx is not None and (
        ctx.get_parameter_source("top_k") is not click.core.ParameterSource.DEFAULT
    )


def check_top_k(
    k: int, n_classes: int, where: str, *, param_hint: str = "'--top-k'"
) -> None:
    """`click.BadParameter` (exit 2) for a top-k accuracy asked with ``k`` above
    the ``n_classes`` classes of ``where``: every sample's class is among the top
    ``k`` there, a perfect score that measures nothing (a typing slip, or data of
    fewer classes than meant).  The default ``k`` is never refused: train and
    study measure it at most the class count, eval leaves it out."""
    if k > n_classes:
        msg = (
            f"k={k} is more than the {n_classes} classes of {where} (a top-{k} "
            f"accuracy of 1 always); give at most {n_classes}"
        )
        raise click.BadParameter(msg, param_hint=param_hint)


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


class Real(click.FloatRange):
    """A finite number in a range: `click.FloatRange` without NaN or infinity.

    The one validation type for every real-valued option (``--lr``, ``--rtol``,
    ``--target``, ...): NaN and ``inf`` are bad usage (exit 2), checked by click
    before any work starts.
    """

    name = "number"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> Any:
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return super().convert(number, param, ctx)


class IntList(click.ParamType):  # type: ignore[type-arg]
    """``"1,5"`` -> ``(1, 5)``: comma-separated integers ``>= low``, repeats dropped."""

    name = "integers"

    def __init__(self, low: int = 1) -> None:
        self.low = low

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[int, ...]:
        if isinstance(value, tuple):
            return value
        name = param.opts[0] if param is not None and param.opts else "value"
        try:
            return parse_int_list(str(value), name=name, low=self.low)
        except click.BadParameter as exc:
            self.fail(exc.message, param, ctx)


class HiddenWidths(click.ParamType):  # type: ignore[type-arg]
    """``"128,64"`` -> ``(128, 64)``; ``""`` or ``"none"`` -> ``()`` (a linear model)."""

    name = "widths"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[int, ...]:
        if isinstance(value, tuple):
            return value
        text = str(value).strip().lower()
        if text in ("", "none"):
            return ()
        widths = []
        for part in text.split(","):
            try:
                w = int(part)
            except ValueError:
                msg = f"hidden layer widths must be integers separated by commas (got {value!r})"
                self.fail(msg, param, ctx)
            if w < 1:
                self.fail(
                    f"hidden layer widths must be >= 1 (got {w} in {value!r})",
                    param,
                    ctx,
                )
            widths.append(w)
        return tuple(widths)


class Delimiter(click.ParamType):  # type: ignore[type-arg]
    """``--delimiter``: one character; ``tab`` (or ``\\t``) for a tab."""

    name = "delimiter"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> str:
        text = str(value)
        if text.lower() in ("tab", "\\t"):
            return "\t"
        if len(text) != 1 or text in '\r\n"' or text.isalnum() or text in ".+-":
            msg = f"{text!r} is not a delimiter (one character such as , ; | or tab)"
            self.fail(msg, param, ctx)
        return text


class ColumnSpec(click.ParamType):  # type: ignore[type-arg]
    """A column spec of a table (`arrayloss.io.select_columns`), checked for its
    form (the columns themselves are checked against the file)."""

    name = "columns"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> str:
        from arrayloss.io import check_column_spec  # not at --help

        why = check_column_spec(str(value))
        if why is not None:
            self.fail(why, param, ctx)
        return str(value)


class Eps(click.ParamType):  # type: ignore[type-arg]
    """``--eps``: ``auto`` (``None``: the scores' machine epsilon) or a number in
    ``[0, 0.5)``."""

    name = "eps"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float | None:
        if value is None or (
            isinstance(value, str) and value.strip().lower() == "auto"
        ):
            return None
        try:
            eps = float(value)
        except ValueError:
            eps = math.nan
        if not 0 <= eps < 0.5:
            self.fail(
                f"{value!r} is not 'auto' or a number with 0 <= EPS < 0.5", param, ctx
            )
        return eps


LOSS_HELP = (
    "A loss by its registry name, with parameters after a colon, e.g. "
    "smooth_topk_svm:k=5,tau=0.5 (`arrayloss list` shows the names)."
)


def loss_option(
    dest: str = "losses",
    *,
    multiple: bool = True,
    default: str | None = None,
    help: str = "",
    callback: Callable[..., Any] | None = None,
) -> Decorator[Any]:
    """``--loss NAME[:K=V,...]``, parsed to ``(name, params)`` by `LOSS`.

    ``multiple``: repeatable (a tuple of pairs; empty when not given); otherwise
    one pair, ``default`` when not given.  ``help`` is appended to `LOSS_HELP`.
    """
    text = LOSS_HELP + (" Repeat for several." if multiple else "")
    return click.option(
        "--loss",
        dest,
        type=LOSS,
        multiple=multiple,
        default=default if not multiple else None,
        show_default=default is not None,
        metavar="NAME[:K=V,...]",
        callback=callback,
        help=f"{text} {help}".strip(),
    )


def choice_option(
    *decls: str,
    choices: Sequence[str],
    default: str | None = None,
    help: str | None = None,
) -> Decorator[Any]:
    """An option taking one of ``choices``, the first by default, shown in ``--help``."""
    return click.option(
        *decls,
        type=click.Choice(list(choices)),
        default=choices[0] if default is None else default,
        show_default=True,
        help=help,
    )


BACKENDS = ("numpy", "torch", "jax", "cupy")


def backend_option(
    choices: Sequence[str] = BACKENDS, *, help: str | None = None
) -> Decorator[Any]:
    """``--backend``: the array library a command computes with (default NumPy)."""
    return choice_option(
        "--backend",
        choices=choices,
        default="numpy",
        help=help or "Array library for the computation.",
    )


def top_k_option(
    *, many: bool = False, default: int = 5, help: str | None = None
) -> Decorator[Any]:
    """``--top-k``: the k of the top-k accuracy; ``many`` takes ``K[,K...]``."""
    if many:
        return click.option(
            "--top-k",
            "top_k",
            type=IntList(low=1),
            default=str(default),
            show_default=True,
            metavar="K[,K...]",
            help=help or "The k of top_k_accuracy, e.g. 1,5.",
        )
    return click.option(
        "--top-k",
        "top_k",
        type=click.IntRange(min=1),
        default=default,
        show_default=True,
        help=help
        or "k of the top-k accuracy, at most the number of classes (a larger k is "
        "an error; the default is lowered to the class count).",
    )


def data_option(default: str = "digits", *, help: str | None = None) -> Decorator[Any]:
    """``--data digits|synthetic|mnist1d|PATH``: the data set to train on."""
    return click.option(
        "--data",
        default=default,
        show_default=True,
        metavar="digits|synthetic|mnist1d|PATH",
        help=help
        or "Bundled digits, the synthetic 100-class set, MNIST-1D (with the 'data' "
        "extra), or a file: .npz with x and y, or MNIST IDX files (a directory or "
        "an images file).",
    )


def hidden_option(default: str = "128") -> Decorator[Any]:
    """``--hidden W1,W2,...``: hidden layer widths (`HiddenWidths`)."""
    return click.option(
        "--hidden",
        type=HiddenWidths(),
        default=default,
        show_default=True,
        metavar="W1,W2,...",
        help="Hidden layer widths ('none' for a linear model).",
    )


MAX_EPOCHS = 100_000
"""The most epochs of a run (``--epochs``, and study's ``--max-epochs`` and
``--patience``): more is a typing slip (``--epochs 1000000000000``), which would
train for ever without a word, not a run; bad usage (exit 2) before any work."""


def epochs_option(default: int) -> Decorator[Any]:
    """``--epochs N``, ``1 <= N <=`` `MAX_EPOCHS`."""
    return count_option(
        "--epochs",
        default=default,
        high=MAX_EPOCHS,
        help="Epochs of training.",
    )


def batch_size_option(default: int) -> Decorator[Any]:
    """``--batch-size N``."""
    return click.option(
        "--batch-size", type=click.IntRange(min=1), default=default, show_default=True
    )


def optimizer_option(default: str = "sgd") -> Decorator[Any]:
    """``--optimizer sgd|adam``."""
    return choice_option("--optimizer", choices=("sgd", "adam"), default=default)


def lr_option() -> Decorator[Any]:
    """``--lr``: a finite learning rate > 0 (default: the optimizer's)."""
    return click.option(
        "--lr",
        type=Real(min=0, min_open=True),
        default=None,
        help="Learning rate  [default: 0.1 for sgd, 0.001 for adam]",
    )


def weight_decay_option() -> Decorator[Any]:
    """``--weight-decay``: a finite L2 penalty >= 0."""
    return click.option(
        "--weight-decay",
        type=Real(min=0),
        default=0.0,
        show_default=True,
        help="L2 penalty on the weights.",
    )


def noise_kind_option() -> Decorator[Any]:
    """``--noise-kind symmetric|pairflip``: how training labels are flipped."""
    return choice_option("--noise-kind", choices=("symmetric", "pairflip"))


def format_option(
    choices: Sequence[str] = ("table", "json"), *, help: str | None = None
) -> Decorator[Any]:
    """``--format``: how a command prints its result (the first choice by default)."""
    return choice_option(
        "--format",
        "fmt",
        choices=choices,
        help=help or "Output format (json: the keys listed above).",
    )


def count_option(
    *decls: str,
    default: int | None,
    help: str,
    low: int = 1,
    high: int | None = None,
    metavar: str | None = None,
) -> Decorator[Any]:
    """An integer option in ``[low, high]`` (no upper bound: ``high=None``) with its
    default shown (``--seeds``, ``--jobs``, ``--epochs``); ``default=None``: the
    command fills it in (and says how in ``help``)."""
    return click.option(
        *decls,
        type=click.IntRange(min=low, max=high),
        default=default,
        show_default=default is not None,
        metavar=metavar,
        help=help,
    )


def fraction_option(
    *decls: str, default: float, help: str, metavar: str | None = None
) -> Decorator[Any]:
    """A finite number in ``[0, 1)`` with its default shown (``--label-noise``)."""
    return click.option(
        *decls,
        type=Real(0, 1, max_open=True),
        default=default,
        show_default=True,
        metavar=metavar,
        help=help,
    )

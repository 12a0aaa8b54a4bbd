"""Shared numpydoc blocks for the loss docstrings, filled by one decorator.

In the style of SciPy's ``doccer``: a docstring names a block as ``%(name)s`` alone
on its line, and `fill_doc` replaces that line with the block, indented as the
placeholder was.  Nothing else in the docstring is touched (a ``%`` elsewhere stays
as written), and a name that is not a block is a `KeyError` at import time.

The blocks (`DOCS`) are the parameters every loss shares, one home for their
wording: ``logits``, ``logits_c2`` (at least two classes), ``labels``,
``labels_index`` (class indices only), ``axis``, ``reduction``, ``weights``,
``ignore_index``, ``class_weights``, ``common`` (the last five in signature
order), ``returns`` (the ``Returns`` section) and ``grad`` (the ``_and_grad``
twin's docstring, with ``%(name)s`` naming the value function).  A module adds its
own blocks with `filler`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TypeVar

__all__ = ["DOCS", "fill", "fill_doc", "filler"]

F = TypeVar("F", bound=Callable[..., object])

_LOGITS = "Real scores; the class axis is ``axis``."
_AXIS = """\
axis : int
    The class axis of ``logits`` (and of soft ``labels``)."""
_REDUCTION = """\
reduction : {"mean", "sum", "none"}
    ``"mean"`` is the (weighted) mean over samples, ``sum(w*l)/sum(w)``."""
_WEIGHTS = """\
weights : array of the batch shape, optional
    Non-negative sample weights; a zero weight removes a sample."""
_IGNORE_INDEX = """\
ignore_index : int, optional
    PyTorch's ``ignore_index``: samples with this label add nothing (a zero loss
    and gradient row) and leave the mean; a ``"mean"`` of only ignored samples is
    a `ValueError` (PyTorch returns NaN).  Class indices only."""
_CLASS_WEIGHTS = """\
class_weights : array of shape (C,), optional
    PyTorch's ``weight=``: sample ``i`` weighs ``class_weights[labels[i]]`` times
    its ``weights``, and the mean divides by the sum of those weights.  Class
    indices only."""

DOCS: Mapping[str, str] = {
    "logits": f"logits : array of shape (..., C)\n    {_LOGITS}",
    "logits_c2": "logits : array of shape (..., C)\n    Real scores, ``C >= 2``; "
    "the class axis is ``axis``.",
    "labels": """\
labels : integer array of the batch shape, or float array of ``logits``' shape
    Class indices, or soft labels whose rows sum to 1.""",
    "labels_index": """\
labels : integer array of the batch shape
    Class indices in ``[0, C - 1]``; soft labels are a `ValueError`.""",
    "axis": _AXIS,
    "reduction": _REDUCTION,
    "weights": _WEIGHTS,
    "ignore_index": _IGNORE_INDEX,
    "class_weights": _CLASS_WEIGHTS,
    "common": "\n".join((_AXIS, _REDUCTION, _WEIGHTS, _IGNORE_INDEX, _CLASS_WEIGHTS)),
    "returns": """\
Returns
-------
array
    0-d for ``"mean"``/``"sum"``, the batch shape for ``"none"``; in the dtype
    and on the device of ``logits``.""",
    "grad": """\
Value of :func:`%(name)s` and its gradient with respect to ``logits``.

The gradient has ``logits``' shape: the gradient of the reduced scalar for
``"mean"``/``"sum"``; for ``"none"``, row ``i`` holds d loss_i / d logits_i.""",
}

_PLACEHOLDER = re.compile(r"^(?P<indent>[ \t]*)%\((?P<name>\w+)\)s[ \t]*$", re.M)
_INLINE = re.compile(r"%\((?P<name>\w+)\)s")


def fill(doc: str, blocks: Mapping[str, str] = DOCS) -> str:
    """``doc`` with each line ``%(name)s`` replaced by ``blocks[name]``, indented
    like the placeholder, and each other ``%(name)s`` by the (one-line) block.

    Raises
    ------
    KeyError
        For a placeholder that names no block.
    """

    def block(match: re.Match[str]) -> str:
        indent = match["indent"]
        text = blocks[match["name"]]
        return "\n".join(indent + line if line else "" for line in text.splitlines())

    doc = _PLACEHOLDER.sub(block, doc)
    return _INLINE.sub(lambda m: blocks[m["name"]], doc)


def filler(extra: Mapping[str, str] | None = None) -> Callable[[F], F]:
    """A decorator that fills a function's docstring from `DOCS` plus ``extra``."""
    blocks = {**DOCS, **(extra or {})}

    def decorate(fn: F) -> F:
        if fn.__doc__:  # None under python -OO
            fn.__doc__ = fill(fn.__doc__, blocks)
        return fn

    return decorate


fill_doc = filler()
"""Fill a function's docstring from `DOCS` (see the module docstring)."""

"""Shared numpydoc blocks for the loss docstrings, filled by one decorator.

In the style of SciPy's ``doccer``: a docstring names a block as ``%(name)s`` alone
on its line, and `fill_doc` replaces that line with the block, indented as the
placeholder was.  Nothing else in the docstring is touched (a ``%`` elsewhere stays
as written), and a name that is not a block is a `KeyError` at import time.

The blocks (`DOCS`) are the parameters every loss shares, one home for their
wording: ``logits``, ``logits_c2`` (at least two classes), ``labels``,
``labels_index`` (class indices only), ``axis``, ``reduction``, ``weights``,
``ignore_index``, ``class_weights``, ``returns`` (the ``Returns`` section),
``examples`` (the ``Examples`` header and the doctests' common first lines),
``references_janocha`` (the paper several modules cite, as a section) and ``grad`` (the
``_and_grad`` twin's docstring, with ``%(name)s`` naming the value function);
and compounds of them in the order a docstring lists them: ``arrays``
(``logits`` and ``labels``), ``arrays_index``, ``common`` (``axis`` to
``class_weights``), ``common_returns``, ``parameters`` (the section's header,
``logits`` and ``labels``), ``parameters_index``, ``parameters_c2_index`` and ``parameters_returns``
(both sections of a loss without parameters of its own).  A module adds its
own blocks with `filler`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TypeVar

__all__ = ["DOCS", "fill", "fill_doc", "filler"]

F = TypeVar("F", bound=Callable[..., object])

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

_COMMON = "\n".join((_AXIS, _REDUCTION, _WEIGHTS, _IGNORE_INDEX, _CLASS_WEIGHTS))
_RETURNS = """\
Returns
-------
array
    0-d for ``"mean"``/``"sum"``, the batch shape for ``"none"``; in the dtype
    and on the device of ``logits``."""
_LOGITS = (
    "logits : array of shape (..., C)\n    Real scores; the class axis is ``axis``."
)
_LOGITS_C2 = """\
logits : array of shape (..., C)
    Real scores, ``C >= 2``; the class axis is ``axis``."""
_LABELS = """\
labels : integer array of the batch shape, or float array of ``logits``' shape
    Class indices, or soft labels whose rows sum to 1."""
_LABELS_INDEX = """\
labels : integer array of the batch shape
    Class indices in ``[0, C - 1]``; soft labels are a `ValueError`."""

DOCS: Mapping[str, str] = {
    "logits": _LOGITS,
    "logits_c2": _LOGITS_C2,
    "labels": _LABELS,
    "labels_index": _LABELS_INDEX,
    "arrays": f"{_LOGITS}\n{_LABELS}",
    "arrays_index": f"{_LOGITS}\n{_LABELS_INDEX}",
    "axis": _AXIS,
    "reduction": _REDUCTION,
    "weights": _WEIGHTS,
    "ignore_index": _IGNORE_INDEX,
    "class_weights": _CLASS_WEIGHTS,
    "common": _COMMON,
    "returns": _RETURNS,
    "common_returns": f"{_COMMON}\n\n{_RETURNS}",
    "parameters": f"Parameters\n----------\n{_LOGITS}\n{_LABELS}",
    "parameters_index": f"Parameters\n----------\n{_LOGITS}\n{_LABELS_INDEX}",
    "parameters_c2_index": f"Parameters\n----------\n{_LOGITS_C2}\n{_LABELS_INDEX}",
    "parameters_returns": f"Parameters\n----------\n{_LOGITS}\n{_LABELS}\n"
    f"{_COMMON}\n\n{_RETURNS}",
    "examples": """\
Examples
--------
>>> import numpy as np
>>> import arrayloss as al
>>> s = np.array([[1.0, 2.5, -0.3, 0.7, 3.1]])""",
    "references_janocha": """\
References
----------
.. [1] K. Janocha and W. M. Czarnecki, "On Loss Functions for Deep Neural
   Networks in Classification", Schedae Informaticae 25, 2016;
   arXiv:1702.05659.""",
    "grad": """\
Value of :func:`%(name)s` and its gradient with respect to ``logits``.

The gradient has ``logits``' shape: the gradient of the reduced scalar for
``"mean"``/``"sum"``; for ``"none"``, row ``i`` holds d loss_i / d logits_i.""",
}

_PLACEHOLDER = re.compile(r"^(?P<indent>[ \t]*)%\((?P<name>\w+)\)s[ \t]*$", re.M)
_INLINE = re.compile(r"%\((?P<name>\w+)\)s")
_DEPTH = 4


def fill(doc: str, blocks: Mapping[str, str] = DOCS) -> str:
    """``doc`` with each line ``%(name)s`` replaced by ``blocks[name]``, indented
    like the placeholder, and each other ``%(name)s`` by the (one-line) block;
    placeholders in a block are filled in turn.

    Raises
    ------
    KeyError
        For a placeholder that names no block.
    """

    def block(match: re.Match[str]) -> str:
        indent = match["indent"]
        text = blocks[match["name"]]
        return "\n".join(indent + line if line else "" for line in text.splitlines())

    for _ in range(_DEPTH):  # a block may name other blocks
        doc, n = _PLACEHOLDER.subn(block, doc)
        if not n:
            break
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

"""The docstring filler (`arrayloss._doc`): one home for the shared blocks."""

from __future__ import annotations

import inspect

import pytest

from arrayloss import _doc
from arrayloss._registry import LOSSES


def test_fill_indents_blocks_like_the_placeholder():
    doc = "Title.\n\n    Parameters\n    ----------\n    %(weights)s\n    k : int\n"
    out = _doc.fill(doc)
    assert "    weights : array of the batch shape, optional\n" in out
    assert "\n        Non-negative sample weights" in out
    assert out.endswith("    k : int\n")


def test_fill_leaves_other_percent_signs_and_refuses_unknown_blocks():
    assert _doc.fill("100% of %d\n") == "100% of %d\n"
    with pytest.raises(KeyError):
        _doc.fill("    %(no_such_block)s\n")
    assert _doc.fill("see %(name)s.", {"name": "x"}) == "see x."


def test_filler_adds_module_blocks():
    @_doc.filler({"extra": "a : int\n    An extra."})
    def f() -> None:
        """Do.

        Parameters
        ----------
        %(extra)s
        %(axis)s
        """

    assert f.__doc__ is not None
    assert "        a : int\n            An extra.\n        axis : int" in f.__doc__


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_docstring_is_filled_and_documents_its_signature(name):
    docscrape = pytest.importorskip("numpydoc.docscrape", reason="the docs extra")
    FunctionDoc = docscrape.FunctionDoc

    fn = LOSSES[name].value
    assert "%(" not in (fn.__doc__ or ""), name
    documented = set()
    for p in FunctionDoc(fn)["Parameters"]:
        documented |= {n.strip() for n in p.name.split(",")}
    params = set(inspect.signature(fn).parameters)
    assert params <= documented, (name, params - documented)
    assert {"ignore_index", "class_weights"} <= documented


def test_the_conventions_page_examples_run():
    import doctest
    from pathlib import Path

    page = Path(__file__).resolve().parent.parent / "docs" / "guide" / "conventions.md"
    result = doctest.testfile(str(page), module_relative=False, verbose=False)
    assert result.attempted >= 6
    assert result.failed == 0


def test_a_block_may_name_other_blocks():
    blocks = {"outer": "A\n%(inner)s\nB", "inner": "x : int\n    An x."}
    out = _doc.fill("    %(outer)s\n", blocks)
    assert out == "    A\n    x : int\n        An x.\n    B\n"

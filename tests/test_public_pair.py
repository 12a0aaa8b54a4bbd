"""The generated ``_and_grad`` twin of a hand-written value function (losses/_public)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import arrayloss as al
from arrayloss.losses import _hinge
from arrayloss.losses._public import GRAD_DOC


def test_twin_takes_the_value_functions_signature():
    value, twin = al.hinge, al.hinge_and_grad
    sv, sg = inspect.signature(value), inspect.signature(twin)
    assert list(sv.parameters.values()) == list(sg.parameters.values())
    assert sg.return_annotation == "tuple[Array, Array]"
    assert twin.__name__ == twin.__qualname__ == "hinge_and_grad"
    assert twin.__module__ == value.__module__ == _hinge.__name__
    assert twin.__doc__ == GRAD_DOC.format(name="hinge")
    assert inspect.unwrap(twin) is value


def test_twin_uses_the_defaults_and_the_given_keywords():
    rng = np.random.default_rng(0)
    z, y = rng.normal(size=(6, 4)), rng.integers(0, 4, size=6)
    for kw in ({}, {"margin": 1.5}, {"margin": 1.5, "reduction": "none"}):
        v, g = al.hinge_and_grad(z, y, **kw)
        np.testing.assert_array_equal(v, al.hinge(z, y, **kw))
        assert g.shape == z.shape
    assert not np.array_equal(al.hinge_and_grad(z, y, margin=1.5)[0], al.hinge(z, y))


def test_twin_refuses_an_unknown_keyword():
    with pytest.raises(TypeError, match=r"hinge_and_grad.*'marginn'"):
        al.hinge_and_grad(np.zeros((1, 3)), np.array([0]), marginn=1.0)
    with pytest.raises(TypeError):
        al.hinge_and_grad(np.zeros((1, 3)), np.array([0]), 1.0)

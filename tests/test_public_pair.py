"""The generated ``_and_grad`` twin of a hand-written value function (losses/_public)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import arrayloss as al
from arrayloss._doc import DOCS, fill
from arrayloss.losses import _hinge


def test_twin_takes_the_value_functions_signature():
    value, twin = al.hinge, al.hinge_and_grad
    sv, sg = inspect.signature(value), inspect.signature(twin)
    assert list(sv.parameters.values()) == list(sg.parameters.values())
    assert sg.return_annotation == "tuple[Array, Array]"
    assert twin.__name__ == twin.__qualname__ == "hinge_and_grad"
    assert twin.__module__ == value.__module__ == _hinge.__name__
    assert twin.__doc__ == fill(DOCS["grad"], {"name": "hinge"})
    assert twin.__doc__.startswith("Value of :func:`hinge` and its gradient")
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
    # The kernel's own message, as for a user loss (`arrayloss._api.unknown_parameter`).
    with pytest.raises(
        TypeError, match=r"`hinge` has no parameter 'marginn' \(parameters: margin\)"
    ):
        al.hinge_and_grad(np.zeros((1, 3)), np.array([0]), marginn=1.0)
    with pytest.raises(TypeError):
        al.hinge_and_grad(np.zeros((1, 3)), np.array([0]), 1.0)


def test_every_pair_takes_the_conventions_in_its_signature():
    from arrayloss._registry import LOSSES

    for name, info in LOSSES.items():
        for fn in (info.value, info.value_and_grad):
            params = inspect.signature(fn).parameters
            assert params["ignore_index"].default is None, name
            assert params["ignore_index"].kind is inspect.Parameter.KEYWORD_ONLY
            assert params["class_weights"].default is None, name
            names = list(params)
            assert names[-5:] == [
                "axis", "reduction", "weights", "ignore_index", "class_weights"
            ]  # fmt: skip
        assert "ignore_index" not in info.params  # not the loss's own parameter
        assert "class_weights" not in info.params


def test_user_pair_is_built_by_grad_twin():
    def brier(z, t):
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        return ((p - t) ** 2).sum(axis=1), np.zeros_like(z)

    info = al.register_loss("pair_brier", brier)
    try:
        twin = info.value_and_grad
        assert twin.__name__ == "pair_brier_and_grad"
        assert inspect.unwrap(twin) is info.value
        assert twin.__doc__ == fill(DOCS["grad"], {"name": "pair_brier"})
        assert (
            inspect.signature(twin).parameters
            == inspect.signature(info.value).parameters
        )
        z, y = np.zeros((3, 2)), np.array([0, -100, 1])
        v, g = twin(z, y, ignore_index=-100, reduction="sum")
        np.testing.assert_allclose(v, 1.0)  # two kept rows of 0.5, one ignored
        assert np.all(g[1] == 0)
        with pytest.raises(TypeError, match="`pair_brier` has no parameter 'k'"):
            twin(z, np.array([0, 1, 1]), k=3)
        with pytest.raises(TypeError, match="`pair_brier` has no parameter 'k'"):
            info.value(z, np.array([0, 1, 1]), k=3)
    finally:
        al.unregister_loss("pair_brier")

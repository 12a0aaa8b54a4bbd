"""`arrayloss._exact`: exact float64 sums and dot products, against fractions."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from arrayloss._exact import exact_dot, exact_sum

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
vectors = hnp.arrays(np.float64, st.integers(0, 40), elements=finite)


def _fsum(values) -> Fraction:
    return sum(map(Fraction, np.asarray(values).tolist()), Fraction(0))


@given(vectors)
def test_exact_sum_is_the_sum_of_fractions(x):
    assert exact_sum(x) == _fsum(x)


@given(vectors, st.integers(1, 7))
def test_exact_sum_does_not_depend_on_the_grouping(x, step):
    parts = sum(
        (exact_sum(x[a : a + step]) for a in range(0, x.size, step)), Fraction(0)
    )
    assert parts == exact_sum(x) == exact_sum(x[::-1])


@given(
    hnp.arrays(
        np.float64,
        st.integers(0, 30),
        elements=st.floats(0, 1e300, allow_nan=False, allow_infinity=False),
    ),
    st.data(),
)
def test_exact_dot_is_the_dot_of_fractions(w, data):
    t = data.draw(hnp.arrays(np.float64, w.shape, elements=st.floats(-1e300, 1e300)))
    want = sum(
        (
            Fraction(a) * Fraction(b)
            for a, b in zip(w.tolist(), t.tolist(), strict=True)
        ),
        Fraction(0),
    )
    assert exact_dot(w, t) == want


@pytest.mark.parametrize(
    "x",
    [
        [1e308, 1e308, -1e308],  # the float64 sum overflows, the exact one does not
        [5e-324] * 3,  # subnormals
        [1.0, 1e-300, -1.0],  # cancellation
        [-0.0, 0.0],
        [],
    ],
)
def test_exact_sum_edge_cases(x):
    assert exact_sum(np.array(x, dtype=np.float64)) == _fsum(x)


def test_exact_sum_of_large_blocks():
    """More values than one exact bincount block holds (2**22)."""
    x = np.full((1 << 22) + 5, 2.0**52 + 1.0)
    assert exact_sum(x) == Fraction(x.size) * Fraction(2**52 + 1)

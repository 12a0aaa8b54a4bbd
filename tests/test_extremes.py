"""Finite scores near the largest float: no spurious floating-point warnings.

Every loss of the registry, on rows whose spreads reach ``+-max`` (``+-1.7e308`` in
float64), must not warn (pytest runs with ``-W error``) whenever its value and
gradient are finite: an overflowing ``s_j - max s`` is ``-inf`` and its ``exp`` is
``0``, an overflowing hinge term is clipped to ``0``, so nothing went wrong.  The
quiet helpers that make this so (`arrayloss._xp.sub`, `arrayloss._xp.logaddexp`)
are checked bit for bit against the plain NumPy operations.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import pytest
from conftest import to_numpy
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from arrayloss import _xp
from arrayloss._registry import LOSSES

C = 4
_M64 = float(np.finfo(np.float64).max)


def _patterns(dtype: Any) -> list[list[float]]:
    m = float(np.finfo(dtype).max)
    big = 0.99 * m
    return [
        [m, -m, 0.0, 1.0],
        [-m, m, 3.0, -2.0],
        [m, m, -m, 0.0],
        [big, 0.9 * m, 0.5 * m, -m],
        [-big, -0.9 * m, -0.5 * m, -m],
        [0.0, -m, -m, -m],
        [m, -m, -m, -m],
        [-m, m, m, m],
        [0.6 * m, -0.6 * m, 0.0, 0.0],
        [-m, 0.0, 0.0, 0.0],
        [m, 0.0, 0.0, 0.0],
        [1.0, -m, 2.0, -m],
    ]


def _targets(info: Any, label: int, dtype: Any) -> list[tuple[str, np.ndarray]]:
    out = [("index", np.array([label]))]
    if "soft" in info.targets:
        soft = np.full((1, C), 0.1, dtype=dtype)
        soft[0, label] = 0.7
        out.append(("soft", soft))
    return out


def _options(info: Any) -> dict[str, Any]:
    return {"k": 2} if "k" in info.params else {}


# The losses of the scores' own size overflow there: l2's squares (``max**2``) on
# every row, l1's sums of ``|s_j - t_j|`` (``2 max``) on the mean's rows.  Nothing
# finite to compare for them; any other loss must have finite results.
EVERY_CASE_OVERFLOWS = {"l2"}
MEAN_OVERFLOWS = {"l1", "l2"}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_no_overflow_warning_when_the_result_is_finite(name, dtype):
    info = LOSSES[name]
    finite = 0
    for pattern in _patterns(dtype):
        z = np.array([pattern], dtype=dtype)
        for label in range(C):
            for kind, y in _targets(info, label, dtype):
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    v, g = info.value_and_grad(z, y, reduction="none", **_options(info))
                if not (np.all(np.isfinite(v)) and np.all(np.isfinite(g))):
                    continue  # an overflowing result may warn
                finite += 1
                messages = [str(w.message) for w in caught]
                assert not messages, (name, kind, pattern, label, messages)
    if name in EVERY_CASE_OVERFLOWS:
        assert finite == 0, f"{name} has finite cases now: drop it from the set"
    else:
        assert finite > 0, f"{name}: every extreme case overflows (nothing compared)"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("k", [1, C - 1])
@pytest.mark.parametrize("name", sorted(n for n in LOSSES if "k" in LOSSES[n].params))
def test_no_overflow_warning_at_the_extreme_k(name, k, dtype):
    """k = 1 and k = C - 1 take their own paths (smooth_topk_svm's k = 1 form,
    topk_entropy's prefix sums of k competitors): just as quiet (they warned
    'overflow encountered in subtract' / 'in accumulate' with a finite result)."""
    info = LOSSES[name]
    for pattern in _patterns(dtype):
        z = np.array([pattern], dtype=dtype)
        for label in range(C):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                v, g = info.value_and_grad(z, np.array([label]), reduction="none", k=k)
            if not (np.all(np.isfinite(v)) and np.all(np.isfinite(g))):
                continue
            messages = [str(w.message) for w in caught]
            assert not messages, (name, k, pattern, label, messages)


# (scores as multiples of the largest float, label, NCE = CE / sum_j CE_j): CE and
# the sum are both beyond the largest float, their ratio is not.
NCE_AT_MAX = [
    ([1.0, -1.0, 0.0, 0.0], 1, 2 / 4),  # CE_1 = 2M; U = 0 + 2M + M + M
    ([-1.0, 1.0, 1.0, 0.0], 0, 2 / 3),  # CE_0 = 2M; U = 2M + 0 + 0 + M
    ([1.0, -1.0, -1.0, -1.0], 2, 2 / 6),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("case", NCE_AT_MAX)
@pytest.mark.parametrize("name", ["normalized_cross_entropy", "nce_rce", "nce_mae"])
def test_normalized_cross_entropy_is_finite_at_the_largest_float(
    name, case, soft, dtype
):
    """NCE is in [0, 1] for any finite scores: it was inf / inf = nan (with an
    'invalid value' warning) where z - max z overflowed."""
    scale, label, nce = case
    z = np.array([scale], dtype=dtype) * np.finfo(dtype).max
    y: np.ndarray = np.array([label])
    want = nce
    if soft:  # 0.7 on the label, 0.1 elsewhere: CE = 0.7 CE_y + 0.1 sum_{j != y} CE_j
        y = np.full((1, C), 0.1, dtype=dtype)
        y[0, label] = 0.7
        ce = np.array([0.0 if s_j == max(scale) else max(scale) - s_j for s_j in scale])
        want = float(y[0] @ ce) / float(ce.sum())
    info = LOSSES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        v, g = info.value_and_grad(z, y, reduction="none")
        nce_only = {} if name == "normalized_cross_entropy" else {"beta": 0.0}
        loss = info.value(z, y, reduction="none", **nce_only)
    assert np.all(np.isfinite(v))
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(float(loss[0]), want, rtol=1e-6)


@pytest.mark.parametrize("soft", [False, True])
def test_symmetric_cross_entropy_without_its_ce_term(soft):
    """alpha = 0 leaves beta RCE, finite, where CE overflows (was 0 * inf = nan)."""
    m = np.finfo(np.float64).max
    z = np.array([[m, -m, 0.0, 1.0]])
    y: np.ndarray = np.array([1])
    want = 4.0  # -A (1 - p_y), p_y = 0
    if soft:
        y = np.array([[0.1, 0.7, 0.1, 0.1]])
        want = -np.log(0.1)  # -sum_k p_k log t_k, p = e_0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        v, g = LOSSES["symmetric_cross_entropy"].value_and_grad(
            z, y, reduction="none", alpha=0.0
        )
    np.testing.assert_allclose(v, [want], rtol=1e-12)
    assert np.all(np.isfinite(g))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("gamma", [0.5, 2.0])
@pytest.mark.parametrize("soft", [False, True])
def test_focal_gradient_is_finite_where_its_loss_overflows(gamma, soft, dtype):
    """At p_y = 0 (log p_y below -max) the focal gradient is the cross-entropy's,
    p - t (p log p -> 0); it was nan from 0 * -inf, with a warning."""
    m = np.finfo(dtype).max
    z = np.array([[m, -m, 0.0, 1.0]], dtype=dtype)
    y: np.ndarray = np.array([1])
    if soft:
        y = np.array([[0.0, 1.0, 0.0, 0.0]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        v, g = LOSSES["focal"].value_and_grad(z, y, reduction="none", gamma=gamma)
    assert v[0] == np.inf  # CE = 2 max
    np.testing.assert_array_equal(g, [[1.0, -1.0, 0.0, 0.0]])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_mean_reduction_is_quiet_too(name, dtype):
    """The wrapper's checks (finiteness, weights) do not overflow on such scores."""
    info = LOSSES[name]
    m = float(np.finfo(dtype).max)
    z = np.array([[m, -m, 0.0, 1.0], [1.0, 0.0, -m, 0.5]], dtype=dtype)
    y = np.array([0, 0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        v, g = info.value_and_grad(z, y, **_options(info))
    finite = bool(np.isfinite(v) and np.all(np.isfinite(g)))
    if name in MEAN_OVERFLOWS:
        assert not finite, f"{name}'s mean is finite now: drop it from the set"
        return
    assert finite, f"{name}: the mean overflows at these scores"
    assert not [str(w.message) for w in caught]


# --------------------------------------------------------------------------------------
# The quiet helpers are the plain operations, bit for bit.
# --------------------------------------------------------------------------------------


def _bits(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    return a.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[a.itemsize])


def _extreme_floats(dtype: Any) -> st.SearchStrategy[float]:
    m = float(np.finfo(dtype).max)
    width = np.dtype(dtype).itemsize * 8
    return st.one_of(
        st.floats(width=width, allow_nan=False, allow_infinity=False),
        st.sampled_from([m, -m, 0.5 * m, -0.5 * m, 0.0, -0.0, 1.0]),
        st.floats(0.5 * m, m, width=width) | st.floats(-m, -0.5 * m, width=width),
    )


@settings(max_examples=200, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([np.float32, np.float64]))
def test_sub_is_bitwise_a_minus_b_without_warnings(data, dtype):
    shape = data.draw(st.sampled_from([(3, 4), (5,)]))
    elems = _extreme_floats(dtype)
    a = data.draw(hnp.arrays(dtype, shape, elements=elems))
    b = data.draw(hnp.arrays(dtype, (*shape[:-1], 1), elements=elems))
    with np.errstate(all="ignore"):
        want = a - b
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = _xp.sub(a, b, xp=np)
    assert got.dtype == want.dtype
    assert np.array_equal(_bits(got), _bits(want))
    top = np.max(a, axis=-1, keepdims=True)  # the shift: a <= top
    with np.errstate(all="ignore"):
        want = a - top
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = _xp.sub(a, top, xp=np, below=True)
    assert np.array_equal(_bits(got), _bits(want))


@settings(max_examples=200, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([np.float32, np.float64]))
def test_logaddexp_is_bitwise_numpy_without_warnings(data, dtype):
    elems = st.one_of(_extreme_floats(dtype), st.just(-np.inf))
    a = data.draw(hnp.arrays(dtype, (6,), elements=elems))
    b = data.draw(hnp.arrays(dtype, (6,), elements=elems))
    with np.errstate(all="ignore"):
        want = np.logaddexp(a, b)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = _xp.logaddexp(a, b, xp=np)
    assert np.array_equal(_bits(got), _bits(want))


@settings(max_examples=200, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([np.float32, np.float64]))
def test_times_mass_with_scores_is_the_product_where_the_shift_is_finite(data, dtype):
    """`_xp.times_mass` with ``scores``: the plain product (bit for bit) wherever
    ``z - max z`` did not overflow; where it did, ``q (z - max z)`` of the exact
    difference rounded, and never a warning."""
    from fractions import Fraction

    z = data.draw(hnp.arrays(dtype, (3, 4), elements=_extreme_floats(dtype)))
    mass = st.sampled_from([0.0, 1.0, 0.5, 1e-30, 1e-300, 0.3])
    q = data.draw(hnp.arrays(dtype, (3, 4), elements=mass))
    top = np.max(z, axis=1, keepdims=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        w = _xp.sub(z, top, xp=np, below=True)
        got = _xp.times_mass(q, w, xp=np, scores=z)
    fmax = float(np.finfo(dtype).max)
    for (i, j), x in np.ndenumerate(w):
        if np.isfinite(x) or q[i, j] == 0:
            with np.errstate(all="ignore"):
                plain = q[i, j] * (0.0 if np.isinf(x) else x)
            assert _bits(np.array([got[i, j]])) == _bits(np.array([plain], dtype))
            continue
        exact = Fraction(float(q[i, j])) * (
            Fraction(float(z[i, j])) - Fraction(float(top[i, 0]))
        )
        if abs(exact) > fmax:
            assert got[i, j] == -np.inf
        else:
            assert abs(Fraction(float(got[i, j])) - exact) <= abs(exact) * Fraction(
                2.0**-20 if dtype == np.float32 else 2.0**-50
            ) + Fraction(float(np.finfo(dtype).smallest_subnormal))


def test_sub_overflow_cases_are_signed_infinities():
    m = np.finfo(np.float64).max
    a = np.array([-m, m, m, -m, 1.0])
    b = np.array([m, -m, m, -m, 2.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = _xp.sub(a, b, xp=np)
    np.testing.assert_array_equal(got, [-np.inf, np.inf, 0.0, 0.0, -1.0])


def test_sub_on_other_namespaces(backend):
    """Every backend: the same values (where it cannot warn, plain ``a - b``)."""
    m = 1e300
    a = backend.asarray(np.array([[m, -m, 1.0]]), np.float64)
    b = backend.asarray(np.array([[-m], [m]]), np.float64)
    got = to_numpy(_xp.sub(a, b, xp=backend.xp))
    want = np.array([[2 * m, 0.0, 1.0 + m], [0.0, -2 * m, 1.0 - m]])
    np.testing.assert_array_equal(got, want)


# --------------------------------------------------------------------------------------
# Smooth top-k at scores of 1e30: the value and gradient of the exact inputs.
# --------------------------------------------------------------------------------------

# (scores, label, k, tau): ties at -1e30 that hold the k-th place, a label tied
# with the best other class (k = 1 kept alpha/tau only with alpha taken apart),
# rows of equal scores (the compiled kernel lost alpha/tau and the log ratio
# beside the tilt of -1e30 / (k tau): loss tau log 2).
TOPK_HUGE = [
    ([-1e30] * 7 + [1e30], 0, 2, 0.1),
    ([-1e30] * 7 + [1e30], 3, 3, 0.5),
    ([1e30, -1e30, -1e30, 1e30, -1e30, -1e30], 1, 2, 1.0),
    ([1e30, 1e30] + [-1e30] * 6, 0, 1, 0.1),
    ([1e30, 1e30] + [-1e30] * 6, 0, 2, 0.1),
    ([1e30] * 8, 0, 2, 0.1),
    ([-1e30] * 6, 3, 3, 1.0),
    ([1e30] * 12, 5, 9, 0.5),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", TOPK_HUGE, ids=[str(i) for i in range(len(TOPK_HUGE))])
def test_smooth_topk_at_1e30_against_mpmath(backend, case, dtype):
    """Every backend (and NumPy's compiled kernel): the loss and its gradient at
    ``+-1e30`` agree with the 50-digit sequential recursion to the accuracy table
    (the array tree gave 5e29 for the first row, whose loss is 1.18)."""
    pytest.importorskip("mpmath")
    from conftest import numpy_path
    from mpref import reference_sequential

    from arrayloss import _esp_compiled
    from arrayloss.losses._topk import smooth_topk_svm_and_grad

    if backend.name == "jax" and dtype == np.float32 and case is not TOPK_HUGE[0]:
        pytest.skip("each shape compiles on JAX: float32 runs the first row only")
    paths = ["array"]
    if backend.name == "numpy" and _esp_compiled.available():
        paths.append("numba")
    s, g, k, tau = case
    row = np.array(s, dtype=dtype)
    ref_v, ref_g = reference_sequential(row.astype(np.float64), g, k, tau, 1.0)
    tol = 1e-13 if dtype == np.float64 else 5e-6
    for path in paths:
        with numpy_path(path), warnings.catch_warnings():
            warnings.simplefilter("error")
            v, gr = smooth_topk_svm_and_grad(
                backend.asarray(row[None, :]), backend.asarray(np.array([g])),
                k=k, tau=tau, reduction="none",
            )  # fmt: skip
        v, gr = to_numpy(v)[0], to_numpy(gr)[0]
        assert abs(float(v) - ref_v) <= tol * abs(ref_v), (path, float(v), ref_v)
        err = np.max(np.abs(gr.astype(np.float64) - ref_g))
        assert err <= tol * np.max(np.abs(ref_g)), (path, gr, ref_g)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(
    "convention",
    [
        {"weights": np.array([0.0, 1.0])},
        {"class_weights": np.array([0.0, 1.0, 1.0])},
        {"ignore_index": 0},
    ],
    ids=["weights", "class_weights", "ignore_index"],
)
def test_a_left_out_sample_with_an_infinite_loss_is_quiet(convention, reduction):
    """A sample whose label is a masked class (-inf, loss +inf) with weight 0, or
    ignored, adds exactly 0 without a warning (0 * inf warned 'invalid value')."""
    z = np.array([[-np.inf, 0.0, 1.0], [0.1, 0.2, 0.3]])
    y = np.array([0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        v, g = LOSSES["cross_entropy"].value_and_grad(
            z, y, reduction=reduction, **convention
        )
    want, want_g = LOSSES["cross_entropy"].value_and_grad(z[1:], y[1:], reduction="sum")
    np.testing.assert_allclose(np.asarray(v).reshape(-1)[-1], want, rtol=1e-15)
    np.testing.assert_array_equal(g[0], 0.0)
    np.testing.assert_allclose(g[1], want_g[0], rtol=1e-15)


# --------------------------------------------------------------------------------------
# Smooth top-k where s / (k tau) overflows: the value and gradient of the exact inputs.
# --------------------------------------------------------------------------------------

# (scores, label, k, tau): losses of 1e307 (k = 1, 2, 3), losses near 1 beside
# scores of +-1e307 (ties and near-ties at the k-th place, two dominant classes),
# c - s_y beyond the largest float with k tau < 1, a label far above the rest (loss
# 0) and a label tied with a dominant class.  All were NaN or inf.
TOPK_WIDE = [
    ([1e307, -1e307, 5e306, 0.0, 2e306], 1, 1, 1e-3),
    ([1e307, -1e307, 5e306, 0.0, 2e306], 1, 2, 1e-3),
    ([1e307, -1e307, 5e306, 0.0, 2e306], 1, 3, 1e-3),
    ([1e307, 0.5, 0.5, -1e307, 0.5], 4, 2, 1e-3),
    ([1e307, 0.5, 0.501, -1e307, 0.4995], 4, 2, 1e-3),
    ([1e307, 2e306, 0.5, 0.501, 0.499, -1e307], 4, 3, 1e-3),
    ([1.7e308, -1.7e308, 0.0, 1.0], 1, 2, 0.4),
    ([1e307, -1e307, 0.0, 1.0], 1, 1, 0.1),
    ([1e307, 0.5, 0.25, -1e307], 0, 2, 1e-3),
    ([1e307, 1e307, -1e307, 0.0], 0, 1, 1e-3),
    ([1e307, 1e307, -1e307, 0.0], 0, 2, 1e-3),
]


@pytest.mark.parametrize("case", TOPK_WIDE, ids=[str(i) for i in range(len(TOPK_WIDE))])
def test_smooth_topk_where_scores_over_k_tau_overflow(backend, case):
    """Every backend (and NumPy's compiled kernel): the loss and gradient where
    ``s / (k tau)`` is beyond the largest float agree with the 800-digit recursion,
    without a warning (they were NaN, or inf where the loss is 8.5e307)."""
    from conftest import numpy_path
    from mpref import reference_sequential

    from arrayloss import _esp_compiled
    from arrayloss.losses._topk import smooth_topk_svm_and_grad

    if backend.name == "jax" and case is not TOPK_WIDE[4]:
        pytest.skip("each shape compiles on JAX: one row")
    paths = ["array"]
    if backend.name == "numpy" and _esp_compiled.available():
        paths.append("numba")
    s, g, k, tau = case
    ref_v, ref_g = reference_sequential(s, g, k, tau, 1.0, dps=800)
    for path in paths:
        with numpy_path(path), warnings.catch_warnings():
            warnings.simplefilter("error")
            v, gr = smooth_topk_svm_and_grad(
                backend.asarray(np.array([s])), backend.asarray(np.array([g])),
                k=k, tau=tau, reduction="none",
            )  # fmt: skip
        v, gr = to_numpy(v)[0], to_numpy(gr)[0]
        assert abs(float(v) - ref_v) <= 1e-14 * abs(ref_v), (path, float(v), ref_v)
        assert np.max(np.abs(gr - ref_g)) <= 1e-14, (path, gr, ref_g)


def test_smooth_topk_wide_rows_among_ordinary_ones():
    """A batch mixing both: the ordinary rows keep their values bit for bit (the
    wide rows are split off), the wide ones get theirs, in float32 too."""
    from mpref import reference_sequential

    from arrayloss.losses._topk import smooth_topk_svm_and_grad

    rng = np.random.default_rng(3)
    for dtype, big in ((np.float64, 1e307), (np.float32, 3e38)):
        z = rng.standard_normal((5, 5)).astype(dtype)
        y = np.array([4, 0, 4, 1, 2])
        z[[0, 2]] = np.array([big, 0.5, 0.501, -big, 0.4995], dtype=dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            v, g = smooth_topk_svm_and_grad(z, y, k=2, tau=1e-3, reduction="none")
        v_ord, g_ord = smooth_topk_svm_and_grad(
            z[[1, 3, 4]], y[[1, 3, 4]], k=2, tau=1e-3, reduction="none"
        )
        np.testing.assert_array_equal(v[[1, 3, 4]], v_ord)
        np.testing.assert_array_equal(g[[1, 3, 4]], g_ord)
        row = [float(u) for u in z[0]]
        ref_v, ref_g = reference_sequential(row, 4, 2, 1e-3, 1.0, dps=800)
        tol = 1e-14 if dtype == np.float64 else 1e-6
        for i in (0, 2):
            assert abs(float(v[i]) - ref_v) <= tol * ref_v
            assert np.max(np.abs(g[i] - ref_g)) <= tol


@pytest.mark.parametrize("k", [1, 2, 3])
def test_smooth_topk_wide_rows_inside_jax_jit(k):
    """Inside ``jax.jit`` (and `arrayloss.jax` without host kernels, under
    ``jax.grad``) the wide rows get the 800-digit values too, as eagerly; they were
    NaN there (the traced program took the regular path on every row).  The
    ordinary rows of the batch equal those of a batch of that shape without wide
    rows."""
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp
    from mpref import reference_sequential

    import arrayloss.jax as alj
    from arrayloss.losses._topk import smooth_topk_svm_and_grad

    jax.config.update("jax_enable_x64", True)  # as the suite's JAX backend does
    rows = [row for row in TOPK_WIDE if row[2] == k]
    zw = [row[0] + [0.0] * (6 - len(row[0])) for row in rows]  # padded: -> 6 classes
    rng = np.random.default_rng(2)
    z_ord = rng.standard_normal((3, 6))
    y_ord = np.array([0, 3, 5])
    z = np.concatenate([np.array(zw), z_ord])
    y = np.concatenate([[row[1] for row in rows], y_ord])
    tau = np.array([row[3] for row in rows])
    for tau_i in np.unique(tau):
        sel = np.concatenate([tau == tau_i, np.ones(3, bool)])
        zz, yy = jnp.asarray(z[sel]), jnp.asarray(y[sel])

        def f(a, b, tau_i=float(tau_i)):
            return smooth_topk_svm_and_grad(a, b, k=k, tau=tau_i, reduction="none")

        v, g = (np.asarray(x) for x in jax.jit(f)(zz, yy))
        old = alj.HOST_KERNELS
        alj.HOST_KERNELS = False
        try:
            total = jax.jit(jax.grad(
                lambda a, b, tau_i=float(tau_i): alj.smooth_topk_svm(
                    a, b, k=k, tau=tau_i, reduction="sum")))  # fmt: skip
            g_ad = np.asarray(total(zz, yy))
        finally:
            alj.HOST_KERNELS = old
        # Against the same shape (XLA's results may depend on the batch size).
        plain = np.concatenate([np.repeat(z_ord[:1], int(sel.sum()) - 3, 0), z_ord])
        v_o, g_o = (np.asarray(x)[-3:] for x in jax.jit(f)(jnp.asarray(plain), yy))
        np.testing.assert_array_equal(v[-3:], v_o)
        np.testing.assert_array_equal(g[-3:], g_o)
        np.testing.assert_array_equal(g_ad, g)
        for i in range(int(sel.sum()) - 3):
            ref_v, ref_g = reference_sequential(
                [float(u) for u in z[sel][i]], int(y[sel][i]), k, float(tau_i), 1.0,
                dps=800,
            )  # fmt: skip
            assert abs(float(v[i]) - ref_v) <= 1e-14 * abs(ref_v), (i, v[i], ref_v)
            assert np.max(np.abs(g[i] - ref_g)) <= 1e-14, (i, g[i], ref_g)


# --------------------------------------------------------------------------------------
# Weights near the largest float: the weighted mean does not depend on their scale.
# --------------------------------------------------------------------------------------

# (scores' dtype, weights' dtype, a weight near the largest float of the latter)
HUGE_WEIGHTS = [
    (np.float64, np.float64, 1e308),
    (np.float32, np.float32, 3e38),
    (np.float32, np.float64, 1e308),
]


@pytest.mark.parametrize(("zdt", "wdt", "big"), HUGE_WEIGHTS)
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_weighted_mean_with_huge_weights(name, zdt, wdt, big):
    """``weights`` and ``class_weights`` near the largest float, alone and together:
    the mean is the one of the same weights scaled down, without a warning.  Both
    together gave NaN ('overflow encountered in multiply' in their product, then
    inf / inf), and float64 weights next to float32 scores warned 'overflow
    encountered in cast' (keras.categorical_crossentropy's fused-scale check)."""
    info = LOSSES[name]
    opts = _options(info)
    z = np.random.default_rng(5).standard_normal((3, C)).astype(zdt)
    y = np.array([0, 2, 1])
    w = np.array([1.0, 1.0, 0.5], dtype=wdt)
    cw = np.array([1.0, 0.25, 1.0, 1.0], dtype=wdt)
    for kw in (
        {"weights": w},
        {"class_weights": cw},
        {"weights": w, "class_weights": cw},
    ):
        huge = {key: big * value for key, value in kw.items()}
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            v, g = info.value_and_grad(z, y, **huge, **opts)
            v_only = info.value(z, y, **huge, **opts)
        want, want_g = info.value_and_grad(z, y, **kw, **opts)
        rtol = 1e-12 if zdt == np.float64 else 1e-5
        np.testing.assert_allclose(v, want, rtol=rtol)
        np.testing.assert_allclose(v_only, want, rtol=rtol)
        np.testing.assert_allclose(g, want_g, rtol=rtol, atol=1e-30)


@pytest.mark.parametrize("reduction", ["none", "sum"])
def test_weights_beyond_the_range_times_a_zero_loss(reduction):
    """A weight beyond the range of the scores' dtype (float64 weights of 1e308 next
    to float32 scores, or a product of weight and class weight past 1.8e308) is
    inf there; a sample whose loss is 0 adds exactly 0 (was NaN from inf * 0, with
    'invalid value' warnings)."""
    z = np.array([[5.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # topk_svm k=1: losses 0 and 2
    y = np.array([0, 1])
    cases = [
        (z.astype(np.float32), {"weights": np.array([1e308, 1.0])}),
        (z, {"weights": np.array([1e308, 1.0]), "class_weights": np.array([1e308, 1.0, 1.0])}),
    ]  # fmt: skip
    for zz, kw in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            v, g = LOSSES["topk_svm"].value_and_grad(
                zz, y, reduction=reduction, k=1, **kw
            )
        np.testing.assert_array_equal(g[0], 0.0)
        np.testing.assert_array_equal(g[1], [0.0, -1.0, 1.0])
        np.testing.assert_array_equal(v, [0.0, 2.0] if reduction == "none" else 2.0)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_dask_huge_weights_agree_with_numpy(name, reduction):
    """On Dask, ``weights`` times ``class_weights`` past the float range (and
    float64 weights beyond float32 scores) give NumPy's values exactly, silently:
    the product overflowed with a warning in a block and the check of the
    weights' blocks then said "`weights` contain NaN or infinite values"."""
    da = pytest.importorskip("dask.array")
    info = LOSSES[name]
    opts = _options(info)
    rng = np.random.default_rng(7)
    z = rng.standard_normal((6, C))
    y = np.array([0, 2, 1, 3, 0, 2])
    w = np.array([1e300, 1.0, 2.0, 1e200, 0.0, 1e-300])
    cw = np.array([1e10, 2.0, 1e290, 0.5])  # w cw: inf, 1e290, 4, 5e199, 0, 1e-10
    z32 = z.astype(np.float32)
    for zz, kw in (
        (z, {"weights": w, "class_weights": cw}),
        (z, {"weights": w, "class_weights": cw, "ignore_index": 1}),
        (z32, {"weights": w * 1e8}),
        (z32, {"weights": w * 1e8, "class_weights": cw}),
    ):
        want, want_g = info.value_and_grad(zz, y, reduction=reduction, **kw, **opts)
        lazy = {k: da.from_array(v, chunks=4) if k != "ignore_index" else v
                for k, v in kw.items()}  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            v, g = info.value_and_grad(
                da.from_array(zz, chunks=(4, C)), da.from_array(y, chunks=4),
                reduction=reduction, **lazy, **opts,
            )  # fmt: skip
            v, g = np.asarray(v), np.asarray(g)
        np.testing.assert_array_equal(v, want)
        np.testing.assert_array_equal(g, want_g)


def test_dask_bad_weights_with_class_weights_are_named():
    """Bad ``weights`` next to ``class_weights`` on Dask are named as NumPy names
    them (the check saw their product with the class weights)."""
    da = pytest.importorskip("dask.array")
    z = da.from_array(np.zeros((4, 3)), chunks=(2, 3))
    y = da.from_array(np.array([0, 1, 2, 0]), chunks=2)
    cw = np.array([1.0, 1e300, 2.0])
    for bad, match in (
        ([1.0, np.nan, 1.0, 1.0], "`weights` contain NaN or infinite"),
        ([1.0, 1.0, np.inf, 1.0], "`weights` contain NaN or infinite"),
        ([1.0, 1.0, 1.0, -1.0], "`weights` must be non-negative"),
    ):
        weights = da.from_array(np.array(bad), chunks=2)
        for ii in (None, 1):
            with pytest.raises(ValueError, match=match):
                np.asarray(
                    LOSSES["cross_entropy"].value(
                        z, y, weights=weights, class_weights=cw, ignore_index=ii
                    )
                )


# Soft-label losses that are also silent where the value is finite on these rows
# (the others warn about overflows inside their soft-label paths).
ONE_HOT_SPREAD_QUIET = {
    "cross_entropy", "focal", "poly1", "symmetric_cross_entropy",
    "keras.categorical_crossentropy", "sparsemax_loss", "entmax15_loss",
    "cauchy_schwarz", "kl_divergence",
}  # fmt: skip


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "name",
    sorted(n for n, i in LOSSES.items() if "soft" in i.targets),
)
def test_one_hot_soft_labels_at_the_float_range(name, dtype):
    """Soft one-hot labels on rows spread to ``+-max`` give the values of the class
    index (finite or inf), some without a warning where finite: a class of no
    mass whose ``log p`` overflowed to ``-inf`` made ``0 * -inf`` NaN (and 'invalid
    value' warnings) in cross_entropy, focal, poly1, symmetric_cross_entropy,
    squared_log and keras.categorical_crossentropy, and sparsemax_loss and
    entmax15_loss were NaN with an 'overflow' warning from ``z - max z``;
    cauchy_schwarz's gradient was NaN where the loss is inf; kl_divergence warned
    'invalid value'."""
    info = LOSSES[name]
    opts = _options(info)
    for pattern in _patterns(dtype):
        z = np.array([pattern], dtype=dtype)
        for label in range(C):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # an overflowing loss may warn
                want, want_g = info.value_and_grad(
                    z, np.array([label]), reduction="none", **opts
                )
            soft = np.zeros((1, C), dtype=dtype)
            soft[0, label] = 1.0
            quiet = name in ONE_HOT_SPREAD_QUIET
            with warnings.catch_warnings():
                finite = np.all(np.isfinite(want)) and np.all(np.isfinite(want_g))
                warnings.simplefilter("error" if quiet and finite else "ignore")
                v, g = info.value_and_grad(z, soft, reduction="none", **opts)
            assert not np.any(np.isnan(v)), (pattern, label, v)
            assert not np.any(np.isnan(g)), (pattern, label, g)
            np.testing.assert_allclose(v, want, rtol=1e-6)
            np.testing.assert_allclose(g, want_g, rtol=1e-6, atol=1e-30)


# --------------------------------------------------------------------------------------
# A tiny target mass on a class about 2 max below the others: a finite loss term.
# --------------------------------------------------------------------------------------


def _soft_refs() -> dict[str, Any]:
    import mpmath as mp
    import mpref

    def kl(z: Any, t: Any) -> Any:
        entropy = mp.fsum(tj * mp.log(tj) for tj in t if tj > 0)
        return mpref.cross_entropy(z, t) + entropy

    return {
        "cross_entropy": mpref.cross_entropy,
        "keras.categorical_crossentropy": mpref.cross_entropy,
        "focal": mpref.focal,
        "poly1": mpref.poly1,
        "symmetric_cross_entropy": mpref.symmetric_cross_entropy,
        "kl_divergence": kl,
        "squared_log": lambda z, t: mpref.cross_entropy(z, t) ** 2,
    }


# (scores as multiples of the largest float, soft label): the mass ``tiny`` sits on
# a class 2 max below the maximum, so ``z_j - max z`` overflows to -inf, but its
# term of the loss, ``tiny * 2 max``, is finite.
TINY_MASS = [
    ([1.0, -1.0, 0.0, 0.0], [None, "tiny", 0.0, 0.0]),
    ([1.0, -1.0, -1.0, 0.5], [0.5, "tiny", 0.25, None]),
    ([-1.0, 1.0, 1.0, 1.0], ["tiny", 0.3, 0.3, None]),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", TINY_MASS, ids=[str(i) for i in range(len(TINY_MASS))])
@pytest.mark.parametrize("name", sorted(_soft_refs()))
def test_a_tiny_mass_far_below_the_others_against_mpmath(name, case, dtype):
    """A soft label of 1e-300 (float32: 1e-37) on a class whose score is 2 max below
    the others adds ``1e-300 * 3.6e308 = 3.6e8`` to the cross-entropy: the loss
    was inf (``t_j * (z_j - max z)`` with the difference overflowed to -inf) in
    every loss that shares the soft-label term, now the 50-digit value, quietly."""
    import mpref

    scale, labels = case
    m = float(np.finfo(dtype).max)
    tiny = 1e-300 if dtype == np.float64 else 1e-37
    t = [tiny if v == "tiny" else v for v in labels]
    rest = 1.0 - sum(v for v in t if v is not None)
    t = np.array([[rest if v is None else v for v in t]], dtype=dtype)
    z = np.array([scale], dtype=dtype) * dtype(m)
    want = _soft_refs()[name](mpref._mp(z[0]), mpref._mp(t[0]))
    finite = abs(want) <= m  # squared_log: the square of 0.6 max is not
    with warnings.catch_warnings():
        warnings.simplefilter("error" if finite else "ignore")
        v, g = LOSSES[name].value_and_grad(z, t, reduction="none")
        v_only = LOSSES[name].value(z, t, reduction="none")
    if not finite:
        assert v[0] == np.inf
        return
    err = mpref.rel_errors(v, [want])[0]
    assert err <= (1e-13 if dtype == np.float64 else 1e-6), (v, want)
    np.testing.assert_array_equal(v_only, v)
    assert np.all(np.isfinite(g)), g


@pytest.mark.parametrize("name", ["sparsemax_loss", "entmax15_loss"])
def test_fenchel_young_tiny_mass_far_below(name):
    """sparsemax_loss and entmax15_loss: the mass ``t_1 = 1e-300`` on a class
    ``2 max`` below the label's adds ``t_1 (tau - z_1) = 1e-300 * 3.6e308`` to the
    loss of the one-hot label, 0 (the loss as defined, ``1/2 |p - t|^2 + sum_j t_j
    (tau - z_j)_+`` for sparsemax, whose labels need not sum to 1 exactly): it was
    inf (``t_j * inf`` from the overflowed ``z_j - max z``)."""
    import mpmath as mp

    m = float(np.finfo(np.float64).max)
    z = np.array([[m, -m, 0.0, 1.0], [-m, m, 1.0, -m]])
    t = np.array([[1.0, 1e-300, 0.0, 0.0], [1e-300, 1.0, 0.0, 1e-300]])
    want = [mp.mpf(1e-300) * 2 * mp.mpf(m), mp.mpf(2e-300) * 2 * mp.mpf(m)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        v, g = LOSSES[name].value_and_grad(z, t, reduction="none")
    for got, ref in zip(v, want, strict=True):
        assert abs(mp.mpf(float(got)) - ref) <= 1e-15 * ref, (got, ref)
    assert np.all(np.isfinite(g))


def test_label_smoothing_at_the_float_range():
    """Label smoothing puts mass on every class: ``eps / C`` on a class 2 max below
    the maximum is a finite ``0.1 max`` in all, was inf."""
    import mpref

    m = float(np.finfo(np.float64).max)
    z = np.array([[m, -m, 0.0, 0.0]])
    t = [0.925, 0.025, 0.025, 0.025]  # (1 - 0.1) e_0 + 0.1 / 4
    want = mpref.cross_entropy(mpref._mp(z[0]), mpref._mp(t))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in ("cross_entropy", "keras.categorical_crossentropy"):
            v, g = LOSSES[name].value_and_grad(
                z, np.array([0]), reduction="none", label_smoothing=0.1
            )
            assert mpref.rel_errors(v, [want])[0] <= 1e-13, (name, v, want)
            np.testing.assert_allclose(g, [[0.075, -0.025, -0.025, -0.025]], rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_cauchy_schwarz_with_subnormal_masses_is_quiet(dtype):
    """float16 scores near ``-max`` beside a subnormal mass: ``z + log q`` is below
    the range (``-65504 - 16.6`` rounds to ``-inf``) where the loss is finite
    (42720 here); it warned 'overflow encountered in add'.  The values are the
    ones computed with the warning silenced, bit for bit."""
    m = float(np.finfo(dtype).max)
    sub = float(np.finfo(dtype).smallest_subnormal)
    z = np.array(
        [[-m, -7988.0, -37440.0, m, 22784.0], [-m, 1.0, 0.0, 2.0, -m]], dtype=dtype
    )
    t = np.array([[sub, 0.0, 0.0, 0.0, 1.0], [sub, 0.5, 0.0, 0.5, 0.0]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want, want_g = LOSSES["cauchy_schwarz"].value_and_grad(z, t, reduction="none")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        v, g = LOSSES["cauchy_schwarz"].value_and_grad(z, t, reduction="none")
    assert np.all(np.isfinite(v))
    assert np.all(np.isfinite(g))
    assert np.array_equal(_bits(v), _bits(want))
    assert np.array_equal(_bits(g), _bits(want_g))


# --------------------------------------------------------------------------------------
# Rows that add nothing (weight 0) do not warn, whatever their scores.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(
    "backend", ["numpy", "array_api_strict", "dask"], indirect=True
)
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_a_row_of_weight_zero_at_the_float_range_is_quiet(backend, name, reduction):
    """A row of ``+-max`` scores with weight 0 adds exactly nothing, silently:
    l1, l2, the hinges, squared_log, sparsemax_loss and entmax15_loss warned
    'overflow' (``z^2``, ``sum |z|``, ``z - max z`` inside the kernel) for a row
    whose contribution is zeroed anyway.  The values are those of the other rows
    alone."""
    info = LOSSES[name]
    opts = _options(info)
    m = float(np.finfo(np.float64).max)
    z = np.array([[m, -m, m, -m], [0.1, 0.2, -0.3, 0.4], [-m, m, -m, m]])
    w = np.array([0.0, 2.0, 0.0])
    labels = [np.array([1, 2, 0])]
    if "soft" in info.targets:  # soft labels too (l1, l2, the hinges warned so)
        labels.append(
            np.array([[0.7, 0.1, 0.1, 0.1], [0.25] * 4, [0.0, 0.5, 0.5, 0.0]])
        )
    for y in labels:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            v, g = info.value_and_grad(
                backend.asarray(z), backend.asarray(y), weights=backend.asarray(w),
                reduction=reduction, **opts,
            )  # fmt: skip
            v, g = to_numpy(v), to_numpy(g)
        want, want_g = info.value_and_grad(
            z[1:2], y[1:2], weights=w[1:2], reduction=reduction, **opts
        )
        np.testing.assert_array_equal(g[[0, 2]], 0.0)
        np.testing.assert_allclose(g[1:2], want_g, rtol=1e-14)
        if reduction == "none":
            np.testing.assert_array_equal(v[[0, 2]], 0.0)
            v = v[1:2]
        np.testing.assert_allclose(v, want, rtol=1e-14)


@pytest.mark.parametrize(
    ("scores", "labels"),
    [
        ([-1.0, 1e292, 1e292], [0]),
        ([-1.0, 1e292, 1e292], [[1.0, 0.0, 0.0]]),
        ([-1.0, 1e292, 1e292], [[0.5, 0.5, 0.0]]),
        ([-1e292, 1.0, -1e292], [[0.5, 0.0, 0.5]]),
    ],
    ids=["index", "one-hot", "soft", "soft-sum"],
)
def test_symmetric_cross_entropy_where_only_ce_overflows(scores, labels):
    """alpha CE with a CE just past the largest float (``z_y - max z`` below
    ``-max``, or the sum ``<q, z - max z>`` below it) is finite for alpha = 0.1:
    it was inf (``-log p_y`` or the sum overflowed before the product, the sum
    with a warning); now the 50-digit value, quietly.  (Scores of magnitude 1 are
    multiples of the largest float.)"""
    import mpref

    m = float(np.finfo(np.float64).max)
    z = np.array([[m * v if abs(v) == 1 else v for v in scores]])
    y = np.array(labels)
    t = np.eye(3)[y] if y.ndim == 1 else y
    want = mpref.symmetric_cross_entropy(mpref._mp(z[0]), mpref._mp(t[0]))
    assert abs(want) < m
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        v, g = LOSSES["symmetric_cross_entropy"].value_and_grad(z, y, reduction="none")
        # alpha = 0: the CE term is not formed at all (its sum warned)
        rce = LOSSES["symmetric_cross_entropy"].value(z, y, reduction="none", alpha=0.0)
    assert mpref.rel_errors(v, [want])[0] <= 1e-14, (v, want)
    assert np.all(np.isfinite(g))
    want_rce = mpref.symmetric_cross_entropy(
        mpref._mp(z[0]), mpref._mp(t[0]), alpha=0.0
    )
    assert mpref.rel_errors(rce, [want_rce])[0] <= 1e-14, (rce, want_rce)


# (loss, scores, labels): rows spread to the float range where the loss and its
# gradient are finite; gradcheck's kink oracles warned 'overflow' there.
GRADCHECK_AT_RANGE = [
    ("chebyshev", [[-1e292, _M64, _M64]], [[1.0, 0.0, 0.0]]),
    ("nce_mae", [[_M64, -1e292, -1e292]], [[1.0, 0.0, 0.0]]),
    ("keras.hinge", [[0.0, 0.0, 0.0]], [[1.0, 0.0, 5e-324]]),
    ("keras.huber", [[_M64, -1e292, -1e292]], [0]),
    ("multiclass_hinge", [[_M64, -1e292, -1e292]], [0]),
    ("sparsemax_loss", [[1e292, -_M64, 1e292]], [0]),
    ("entmax15_loss", [[1e292, -_M64, 1e292]], [0]),
    ("topk_entropy", [[_M64, -1e292, -1e292]], [0]),
    ("truncated_topk_entropy", [[_M64, -1e292, -1e292]], [0]),
    ("topk_hinge_beta", [[1e292, -_M64, -_M64]], [0]),
    ("topk_svm", [[_M64, -1e292, -1e292]], [0]),
]


@pytest.mark.parametrize(
    ("name", "z", "y"), GRADCHECK_AT_RANGE, ids=[c[0] for c in GRADCHECK_AT_RANGE]
)
def test_gradcheck_is_quiet_at_the_float_range(name, z, y):
    """`arrayloss.gradcheck` on such rows checks or leaves them out without a
    warning (where warnings are errors it raised 'overflow encountered in
    subtract' from the kink oracles: ``z - max z``, ``z - z_y``, ``1 / t``)."""
    from arrayloss import gradcheck

    z, y = np.array(z), np.array(y)
    opts = _range_options(name, z.shape[1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        v, g = LOSSES[name].value_and_grad(z, y, reduction="none", **opts)
        res = gradcheck(name, z, y, **opts)
    assert np.all(np.isfinite(v))
    assert np.all(np.isfinite(g))
    assert res.n_failed == 0, res


# --------------------------------------------------------------------------------------
# Every loss on scores from the whole float range: finite where the loss is, quiet,
# and the gradient of the finite differences where they resolve it.
# --------------------------------------------------------------------------------------

# The oracle of "finite": the loss in 80-bit long double (x86: exponents to 1e4932),
# where no intermediate of a float64 or float32 input can overflow.
WIDE = np.finfo(np.longdouble).maxexp > 4096
RANGE_EXAMPLES = int(os.environ.get("ARRAYLOSS_RANGE_EXAMPLES", "30"))
RANGE_DTYPES = [np.float64, np.float32, np.float16]


def _range_floats(dtype: Any) -> st.SearchStrategy[float]:
    info = np.finfo(dtype)
    m, tiny, sub = float(info.max), float(info.tiny), float(info.smallest_subnormal)
    width = info.bits
    return st.one_of(
        st.floats(width=width, allow_nan=False, allow_infinity=False),
        st.sampled_from([m, -m, 0.5 * m, -0.5 * m, tiny, -tiny, sub, -sub, 0.0, 1.0]),
        st.floats(-10, 10, width=width),
    )


@st.composite
def _range_case(draw: Any, name: str) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
    dtype = draw(st.sampled_from(RANGE_DTYPES))
    c = draw(st.integers(3, 5))
    n = draw(st.integers(1, 3))
    z = draw(hnp.arrays(dtype, (n, c), elements=_range_floats(dtype)))
    if "soft" in LOSSES[name].targets and draw(st.booleans()):
        sub = float(np.finfo(dtype).smallest_subnormal)
        mass = st.sampled_from([0.0, 0.0, 1.0, 1e-300, 1e-37, sub, 0.3, 0.7])
        raw = np.array(draw(st.lists(mass, min_size=n * c, max_size=n * c)))
        raw = raw.reshape(n, c)
        raw[:, draw(st.integers(0, c - 1))] += 1.0  # every row has mass
        y = (raw / raw.sum(axis=1, keepdims=True)).astype(dtype)
    else:
        y = np.array(draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    weight = st.sampled_from([1.0, 0.5, 1e-300, 1e300, float(np.finfo(dtype).max)])
    w = np.array(draw(st.lists(weight, min_size=n, max_size=n)))
    return dtype, z, y, w


def _range_options(name: str, c: int) -> dict[str, Any]:
    return {"k": min(2, c - 1)} if "k" in LOSSES[name].params else {}


# Values of the losses' own parameters for the range test of the parametrised ones.
RANGE_PARAMS: dict[str, list[Any]] = {
    "label_smoothing": [0.0, 0.1, 1.0],
    "tau": [1e-3, 0.1, 1.0, 100.0],
    "alpha": [0.0, 0.3, 1.0],
    "beta": [0.0, 0.5, 1.0],
    "gamma": [0.0, 0.5, 2.0, 5.0],
    "margin": [0.0, 0.5, 1.0, 10.0],
    "q": [1e-3, 0.7, 1.0],
    "epsilon": [1e-30, 1e-7, 0.5],
    "A": [-1e3, -4.0, 0.0],
    "t": [1, 2, 5],
    "delta": [1e-3, 1.0, 10.0],
}
PARAMETRISED = sorted(
    n for n, i in LOSSES.items() if "k" in i.params or set(i.params) & set(RANGE_PARAMS)
)


def _range_check(
    name: str,
    dtype: Any,
    z: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    opts: dict[str, Any] | None = None,
) -> None:
    """The checks of `test_every_loss_on_scores_from_the_whole_float_range`; ``w``
    weighs the finite rows in a weighted mean (the others get weight 0)."""
    info = LOSSES[name]
    if opts is None:
        opts = _range_options(name, z.shape[1])
    fmax = float(np.finfo(dtype).max)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        v, g = info.value_and_grad(z, y, reduction="none", **opts)
    yl = y
    if y.dtype.kind == "f":  # to the sum of one of long double (the labels' check)
        yl = y.astype(np.longdouble)
        yl = yl / yl.sum(axis=1, keepdims=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref_v, ref_g = info.value_and_grad(
            z.astype(np.longdouble), yl, reduction="none", **opts
        )
    if np.any(np.isnan(ref_v)) or np.any(np.isnan(ref_g)):
        return  # no oracle (a NaN of long double itself is caught elsewhere)
    # well inside the dtype's range: rounding to the dtype cannot overflow
    finite = (np.abs(ref_v) < 0.5 * fmax) & np.all(np.abs(ref_g) < 0.5 * fmax, axis=1)
    assert not np.any(np.isnan(v)), (z, y, v)
    assert not np.any(np.isnan(g)), (z, y, g)
    if not np.any(finite):
        return
    assert np.all(np.isfinite(v[finite])), (z, y, v, ref_v)
    assert np.all(np.isfinite(g[finite])), (z, y, g, ref_g)
    if np.all(finite):
        assert not [str(m.message) for m in caught], (z, y)
    rows = np.flatnonzero(finite)
    namespaces = [np]
    if dtype != np.float16:  # array_api_strict has no float16
        namespaces.append(pytest.importorskip("array_api_strict"))
    for xp in namespaces:
        zz, yy = xp.asarray(z), xp.asarray(y)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            # the finite rows alone, and in the batch with weight 0 on the others
            part = info.value_and_grad(
                xp.asarray(z[rows]), xp.asarray(y[rows]), reduction="none", **opts
            )
            mean = info.value_and_grad(
                zz, yy, weights=xp.asarray(np.where(finite, w, 0.0)), **opts
            )
        for a in (*part, *mean):
            assert np.all(np.isfinite(np.asarray(a))), (xp.__name__, z, y, w, a)
    if dtype == np.float64:
        from arrayloss import gradcheck

        res = gradcheck(name, z[rows], y[rows], **opts)
        assert res.n_failed == 0, (z[rows], y[rows], res)


@pytest.mark.skipif(not WIDE, reason="long double is float64 here: no range oracle")
@pytest.mark.parametrize("name", sorted(LOSSES))
@settings(max_examples=RANGE_EXAMPLES, deadline=None)
@given(data=st.data())
def test_every_loss_on_scores_from_the_whole_float_range(name, data):
    """Scores from the whole float range (``+-max``, subnormals, huge beside tiny),
    index and soft labels (masses of 1e-300 and subnormals among them), float64,
    float32 and float16: a loss whose value and gradient are finite (in long
    double, well inside the dtype's range) is finite here too, without a warning
    (NumPy and array_api_strict; alone, and in a weighted mean beside rows of
    weight 0 that overflow), and its float64 gradient agrees with finite
    differences wherever they resolve it."""
    _range_check(name, *data.draw(_range_case(name)))


@pytest.mark.parametrize("k", [2, 3])
def test_topk_hinge_beta_mean_of_terms_past_the_range(k):
    """topk_hinge_beta is the mean of k hinged margins: finite where their sum
    (or a margin itself) is past the largest float but the mean is not; it was
    inf, with 'overflow encountered in reduce'.  Against the exact rational."""
    from fractions import Fraction

    m = float(np.finfo(np.float64).max)
    z = np.array([[m, 1e292, 0.0, 0.0], [m, -m, -m / 2, 0.0], [1.0, 2.0, 3.0, 4.0]])
    y = np.array([2, 2, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        v, g = LOSSES["topk_hinge_beta"].value_and_grad(z, y, reduction="none", k=k)
        plain = LOSSES["topk_hinge_beta"].value(z[2:], y[2:], reduction="none", k=k)
    for i in range(2):
        zi = [Fraction(s) for s in z[i]]
        a = sorted((1 + zi[j] - zi[y[i]] for j in range(4) if j != y[i]), reverse=True)
        want = sum(max(x, Fraction(0)) for x in a[:k]) / k
        assert abs(Fraction(float(v[i])) - want) <= Fraction(1e-15) * want, (i, v[i])
    np.testing.assert_array_equal(v[2], plain[0])  # an ordinary row, bit for bit
    assert np.all(np.isfinite(g))


def test_nce_with_a_soft_ce_at_the_largest_float_is_quiet():
    """normalized_cross_entropy and nce_mae with soft labels where ``<t, -log p>``
    rounds past the largest float (scores ``[0, 0, 0, 0, max]``): the ratio was
    right (from the halves) but the sum warned 'overflow encountered in reduce'."""
    m = float(np.finfo(np.float64).max)
    z = np.zeros((2, 5))
    z[1, 4] = m
    raw = np.array([[1.0, 0, 1, 0.3, 0], [1.0, 0, 1, 0.3, 0]])
    t = raw / raw.sum(axis=1, keepdims=True)
    for name, want in (("normalized_cross_entropy", 0.25), ("nce_mae", 2.25)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            v, g = LOSSES[name].value_and_grad(z, t, reduction="none")
        np.testing.assert_allclose(v[1], want, rtol=1e-15)
        assert np.all(np.isfinite(g))


@pytest.mark.skipif(not WIDE, reason="long double is float64 here: no range oracle")
@pytest.mark.parametrize("name", PARAMETRISED)
@settings(max_examples=RANGE_EXAMPLES, deadline=None)
@given(data=st.data())
def test_parametrised_losses_on_scores_from_the_whole_float_range(name, data):
    """`test_every_loss_on_scores_from_the_whole_float_range` with the losses' own
    parameters drawn too (``k`` from 1 to C - 1, small and large ``tau``,
    ``margin``, ``gamma``, ``alpha = 0`` ...)."""
    info = LOSSES[name]
    dtype, z, y, w = data.draw(_range_case(name))
    keys = sorted(set(info.params) & set(RANGE_PARAMS))
    opts = {key: data.draw(st.sampled_from(RANGE_PARAMS[key])) for key in keys}
    if "k" in info.params:
        opts["k"] = data.draw(st.integers(1, z.shape[1] - 1))
    _range_check(name, dtype, z, y, w, opts)


@pytest.mark.parametrize(
    "convention",
    [{"ignore_index": 3}, {"class_weights": np.array([1.0, 1.0, 1.0, 0.0])}],
    ids=["ignore_index", "class_weights"],
)
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_a_left_out_row_at_the_float_range_is_quiet(name, convention):
    """An ignored label, or a class weight of zero, leaves a row of ``+-max``
    scores out as quietly as a zero weight (l2's ``z^2`` warned 'overflow')."""
    info = LOSSES[name]
    opts = _options(info)
    m = float(np.finfo(np.float64).max)
    z = np.array([[m, -m, m, -m], [0.1, 0.2, -0.3, 0.4]])
    y = np.array([3, 2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        v, g = info.value_and_grad(z, y, reduction="sum", **convention, **opts)
    want, want_g = info.value_and_grad(z[1:], y[1:], reduction="sum", **opts)
    np.testing.assert_array_equal(g[0], 0.0)
    np.testing.assert_allclose(g[1:], want_g, rtol=1e-14)
    np.testing.assert_allclose(v, want, rtol=1e-14)

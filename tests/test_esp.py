"""The elementary-symmetric-polynomial engine, `arrayloss.esp`.

Oracles: enumeration of subsets (small ``n``) and the sequential recursion
``e_m <- e_m + y e_{m-1}`` in 50-digit mpmath (``n`` up to 1000), on inputs rounded
to the tested dtype; identities of the inclusion probabilities.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from conftest import assert_allclose, to_numpy

from arrayloss import esp
from arrayloss.esp import log_elementary_symmetric

mp = pytest.importorskip("mpmath")


def mp_log_esp(x: np.ndarray, k: int) -> np.ndarray:
    """log e_0..e_k of exp(x) by the sequential recursion, 50 digits."""
    with mp.workdps(50):
        e = [mp.mpf(1)] + [mp.mpf(0)] * k
        for v in x:
            if np.isneginf(v):
                continue
            y = mp.exp(mp.mpf(float(v)))
            for m in range(k, 0, -1):
                e[m] += y * e[m - 1]
        return np.array([float(mp.log(v)) if v > 0 else -np.inf for v in e])


def brute_log_esp(x: np.ndarray, k: int) -> np.ndarray:
    """log e_m by enumerating the m-subsets."""
    with mp.workdps(50):
        out = []
        for m in range(k + 1):
            tot = mp.fsum(
                mp.exp(mp.fsum(mp.mpf(float(x[j])) for j in sub))
                for sub in itertools.combinations(range(len(x)), m)
                if not any(np.isneginf(x[j]) for j in sub)
            )
            out.append(float(mp.log(tot)) if tot > 0 else -np.inf)
        return np.array(out)


def assert_log_close(got, ref, dtype, scale):
    """Absolute error of log e_m within a few ulps of its condition (u * m * max|x|)."""
    got = np.asarray(got, dtype=np.float64)
    assert np.array_equal(np.isneginf(got), np.isneginf(ref)), (got, ref)
    fin = np.isfinite(ref)
    u = np.finfo(dtype).eps / 2
    m = np.arange(ref.shape[-1])
    tol = 200 * u * (1 + np.abs(ref) + m * scale)
    err = np.abs(got - ref)
    assert np.all(err[fin] <= tol[fin]), np.max(err[fin] / tol[fin])


@pytest.mark.parametrize("method", ["auto", "direct", "fft"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_against_subset_enumeration(rng, dtype, method):
    for n, k, scale in [
        (1, 1, 1.0),
        (4, 4, 2.0),
        (7, 3, 10.0),
        (9, 6, 30.0),
        (10, 10, 1.0),
    ]:
        x = (scale * rng.standard_normal(n)).astype(dtype)
        got = log_elementary_symmetric(x, k, method=method)
        assert got.dtype == dtype
        assert got.shape == (k + 1,)
        assert_log_close(got, brute_log_esp(x, k), dtype, np.max(np.abs(x)))


CASES = [
    ("randn", 300, 40, 1.0),
    ("randn", 1000, 5, 10.0),
    ("ties", 1000, 200, 0.0),  # 216 decades between e_0 and e_200
    ("wide", 500, 60, 200.0),
    ("hardtail", 400, 70, 1.0),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("kind", "n", "k", "scale"), CASES)
def test_against_mpmath_recursion(kind, n, k, scale, dtype):
    rng = np.random.default_rng(n + k)
    if kind == "randn":
        x = scale * rng.standard_normal(n)
    elif kind == "ties":
        x = np.full(n, 0.3)
    elif kind == "wide":
        x = rng.uniform(-scale, scale, n)
    else:
        x = rng.standard_normal(n)
        x[: k // 2] = 60.0
    x = x.astype(dtype)
    ref = mp_log_esp(x, k)
    for method in ("auto", "direct", "fft"):
        got = log_elementary_symmetric(x[None, :], k, method=method)[0]
        assert np.all(np.isfinite(got))
        assert_log_close(got, ref, dtype, max(1.0, float(np.max(np.abs(x)))))


def test_absent_entries_and_degrees_beyond_n():
    x = np.array([0.0, -np.inf, np.log(2.0), -np.inf])
    got = log_elementary_symmetric(x, 5)
    np.testing.assert_allclose(np.exp(got[:3]), [1.0, 3.0, 2.0], rtol=1e-15)
    assert np.all(np.isneginf(got[3:]))
    assert np.all(log_elementary_symmetric(np.full(3, -np.inf), 2)[1:] == -np.inf)
    empty = log_elementary_symmetric(np.zeros((2, 0)), 2)
    np.testing.assert_array_equal(empty, [[0.0, -np.inf, -np.inf]] * 2)
    np.testing.assert_array_equal(log_elementary_symmetric(np.ones(4), 0), [0.0])


def test_nan_and_plus_inf_rows_are_nan():
    x = np.array([[0.0, 1.0, 2.0], [0.0, np.nan, 1.0], [np.inf, 0.0, 0.0]])
    got = log_elementary_symmetric(x, 2)
    assert np.all(np.isfinite(got[0]))
    assert np.all(np.isnan(got[1:]))


def test_axis_batch_and_dtypes(rng):
    x = rng.standard_normal((2, 7, 3))
    got = log_elementary_symmetric(x, 4, axis=1)
    assert got.shape == (2, 3, 5)
    ref = log_elementary_symmetric(np.moveaxis(x, 1, -1), 4)
    np.testing.assert_allclose(got, ref, rtol=1e-15)
    ints = log_elementary_symmetric(np.arange(4), 2)
    assert ints.dtype == np.float64
    half = log_elementary_symmetric(x.astype(np.float16), 3)
    assert half.dtype == np.float16


def test_backends_match_numpy(backend, rng):
    x = 3 * rng.standard_normal((4, 37))
    x[1, 5] = -np.inf
    x[2, :3] = 500.0
    ref = log_elementary_symmetric(x, 9)
    for dtype, rtol in ((np.float64, 1e-12), (np.float32, 2e-5)):
        got = log_elementary_symmetric(backend.asarray(x, dtype), 9)
        assert got.dtype == backend.asarray(x, dtype).dtype
        assert_allclose(got, ref, rtol=rtol, atol=rtol * 10)


def test_validation():
    with pytest.raises(
        ValueError, match=r"`k` must be an integer non-negative \(got k=-1\)"
    ):
        log_elementary_symmetric(np.zeros(3), -1)
    with pytest.raises(TypeError, match=r"`k` must be an integer \(got k=1.5\)"):
        log_elementary_symmetric(np.zeros(3), 1.5)
    with pytest.raises(ValueError, match=r"`method` must be one of .*got method='x'"):
        log_elementary_symmetric(np.zeros(3), 1, method="x")
    with pytest.raises(ValueError, match="at least one dimension"):
        log_elementary_symmetric(np.float64(1.0), 1)
    with pytest.raises(ValueError, match="`axis`"):
        log_elementary_symmetric(np.zeros(3), 1, axis=2)


# --------------------------------------------------------------------------------------
# The private pieces the loss uses.
# --------------------------------------------------------------------------------------


def _xp():
    import array_api_compat.numpy as xp

    return xp


@pytest.mark.parametrize("method", ["direct", "fft"])
@pytest.mark.parametrize("k", [2, 3, 6])
def test_ratio_and_inclusion_probabilities(rng, k, method):
    """rho = log(e_k/e_{k-1}); c1 pi^(k) - c2 pi^(k-1) with pi by enumeration."""
    n = 9
    x = 2 * rng.standard_normal((3, n))
    x[0, 4] = -np.inf  # an absent entry (the loss's label)
    one, zero = np.ones(3), np.zeros(3)
    rho, pk = esp._log_ratio_and_grad(
        x, k, xp=_xp(), method=method, coef=lambda r, aux: (one, zero)
    )
    _, pk1 = esp._log_ratio_and_grad(
        x, k, xp=_xp(), method=method, coef=lambda r, aux: (zero, -one)
    )
    le = log_elementary_symmetric(x, k)
    np.testing.assert_allclose(rho, le[:, k] - le[:, k - 1], rtol=1e-13)
    for i in range(3):
        w = np.exp(x[i])
        for m, p in ((k, pk[i]), (k - 1, pk1[i])):
            subs = list(itertools.combinations(range(n), m))
            tot = sum(math.prod(w[list(s)]) for s in subs)
            incl = [
                sum(math.prod(w[list(s)]) for s in subs if j in s) / tot
                for j in range(n)
            ]
            np.testing.assert_allclose(p, incl, rtol=1e-12, atol=1e-15)
        assert pk[i].sum() == pytest.approx(k, rel=1e-13)  # sum of inclusion probs
    assert pk[0, 4] == 0.0


def test_fallback_and_fft_floor_paths(rng):
    """Rows whose lse-tilted coefficients underflow (and FFT rows) stay exact."""
    x = rng.standard_normal((4, 300))
    x[0, 10] = 4000.0  # the lse tilt makes q_k underflow: mean-matching fallback
    x[1, :3] = 800.0
    x[:, 7] = -np.inf
    for k in (3, 40, 90):
        ra, _ = esp._log_ratio_and_grad(x, k, xp=_xp(), method="auto")
        rd, _ = esp._log_ratio_and_grad(x, k, xp=_xp(), method="direct")
        rf, _ = esp._log_ratio_and_grad(x, k, xp=_xp(), method="fft")
        ref = np.array([mp_log_esp(r, k)[k] - mp_log_esp(r, k)[k - 1] for r in x])
        for got in (ra, rd, rf):
            np.testing.assert_allclose(got, ref, rtol=1e-13, atol=1e-12)


def test_fftconvolve_path_matches_direct(rng):
    """The CuPy branch's ``fftconvolve(..., axes=0)`` convention, with SciPy's."""
    import array_api_compat.numpy as xp
    from scipy.signal import fftconvolve

    eng = esp._Engine(xp, np.float64, None)
    A = rng.uniform(size=(5, 1, 3, 4))
    B = rng.uniform(size=(7, 2, 3, 4))
    direct = eng.conv(A, 2, B, 3, 6, fft=False)
    full = esp._fftconvolve_axis0(fftconvolve, A, B)  # degrees 2 .. 12
    np.testing.assert_allclose(full[1:7], direct, rtol=1e-12)
    np.testing.assert_allclose(eng.conv(A, 2, B, 3, 6, fft=True), direct, rtol=1e-12)


def test_generic_conv_matches_numpy(backend, rng):
    xp = backend.xp
    A = rng.uniform(size=(4, 1, 5))
    B = rng.uniform(size=(6, 2, 5))
    ref = esp._Engine(_xp(), np.float64, None).conv(A, 1, B, 2, 9, fft=False)
    eng = esp._Engine(xp, xp.float64, None)
    got = eng.conv(backend.asarray(A), 1, backend.asarray(B), 2, 9, fft=False)
    assert_allclose(got, ref, rtol=1e-14)
    ref_lo = esp._Engine(_xp(), np.float64, None).conv(A, 0, B, 0, 3, fft=False)
    got_lo = eng.conv(backend.asarray(A), 0, backend.asarray(B), 0, 3, fft=False)
    assert_allclose(to_numpy(got_lo), ref_lo, rtol=1e-14)
    # Degrees past the full product (8 here) are zero; none in range gives zeros.
    ref_hi = esp._Engine(_xp(), np.float64, None).conv(A, 0, B, 5, 6, fft=False)
    assert np.all(ref_hi[4:] == 0)
    assert_allclose(
        eng.conv(backend.asarray(A), 0, backend.asarray(B), 5, 6, fft=False),
        ref_hi,
        rtol=1e-14,
    )
    none = eng.conv(backend.asarray(A), 0, backend.asarray(B), 20, 2, fft=False)
    assert tuple(none.shape) == (2, 2, 5)
    assert_allclose(none, np.zeros((2, 2, 5)), rtol=0)


def test_layout_helpers():
    assert [esp._next_fast_len(n) for n in (1, 7, 11, 17, 97, 121)] == [
        1,
        8,
        12,
        18,
        100,
        125,
    ]
    for n in (2, 3, 31, 32, 33, 100, 1000, 1025, 10000):
        N = esp._n_leaves(n)
        assert N % 2 == 0
        assert n <= N <= n + max(1, n // 16)
        for k in (1, 2, 5, 64):
            _check_plan(esp._plan(N, k), N, k)


def _check_plan(plan: list[tuple[int, int]], n_leaves: int, k: int) -> None:
    """The tree `esp._plan` describes: level ``i`` holds polynomials of degree
    ``min(2**i, k)`` (``+1`` coefficients), every level but the root an even number
    of nodes, each level half the one below (rounded up), one root."""
    assert plan[0] == (2, n_leaves + n_leaves % 2)
    for i, (coefs, nodes) in enumerate(plan):
        assert coefs == min(2**i, k) + 1, (i, plan)
        if i < len(plan) - 1:
            assert nodes % 2 == 0, (i, plan)
            assert plan[i + 1][1] in (nodes // 2, nodes // 2 + 1), (i, plan)
            assert plan[i + 1][1] == 1 or plan[i + 1][1] % 2 == 0, (i, plan)
    assert plan[-1][1] == 1
    assert len(plan) == 1 + math.ceil(math.log2(n_leaves)), plan


def test_plan_check_can_fail():
    """Defect 4 (issue 12): the old assertion ``plan[-1] == (...) or plan[-1][1] ==
    1`` could not fail (`_plan` always ends with one node).  The check that
    replaced it rejects a plan with a wrong root degree, an odd level, a level
    that does not halve, or a missing level."""
    good = esp._plan(esp._n_leaves(100), 5)
    _check_plan(good, esp._n_leaves(100), 5)
    wrong_root = [*good[:-1], (5, 1)]
    odd_level = [good[0], (good[1][0], good[1][1] + 1), *good[2:]]
    no_halving = [good[0], good[0], *good[2:]]
    missing = good[:2] + good[3:]
    for bad in (wrong_root, odd_level, no_halving, missing):
        with pytest.raises(AssertionError):
            _check_plan(bad, esp._n_leaves(100), 5)


# Rows with entries near the largest float: (multiples of max, k).  Degrees whose
# exact value is within range (m + (-m) + 0 = 0, log 2 from a tie at -max) were
# NaN or -inf; those beyond it were inf with a handful of overflow warnings.
WIDE_ROWS = [
    [1.0, -1.0, 0.0],
    [-1.0, -1.0, 0.0],
    [1.0, -1.0, -1.0],
    [1.0, 1.0, 0.0],
    [1.0, 0.9, 1e-300],
    [-1.0, -1.0, -1.0],
    [1.0, -np.inf, 0.5, -0.5, 0.0],
    [0.5, 0.5, -0.25, 0.0],
]


def _log_esp_mp(row: list[float], k: int) -> list[float]:
    """log e_0..log e_k by subset enumeration at 400 digits (the integer parts of
    1e308 cancel), rounded to float (inf past the range)."""
    mp = pytest.importorskip("mpmath")
    with mp.workdps(400):
        x = [mp.mpf(v) for v in row if v != -np.inf]
        out = []
        for m in range(k + 1):
            terms = [mp.exp(mp.fsum(s)) for s in itertools.combinations(x, m)]
            out.append(float(mp.log(mp.fsum(terms))) if terms else -math.inf)
        return out


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("row", WIDE_ROWS, ids=[str(i) for i in range(len(WIDE_ROWS))])
def test_entries_near_the_float_range(backend, row, dtype):
    """Every degree is the exact value rounded (to a few ulps of ``log(n)``
    absolute, or of itself), ``+-inf`` exactly where that is beyond the range, and
    nothing warns; ordinary rows in the same batch keep their bits."""
    import warnings

    top = float(np.finfo(dtype).max)
    x = np.array([[v * top for v in row], [0.3, -1.2, 2.0] + [0.1] * (len(row) - 3)])
    x = x.astype(dtype)
    k = len(row)
    want = _log_esp_mp([float(v) for v in x[0]], k)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = to_numpy(log_elementary_symmetric(backend.asarray(x), k))
        alone = to_numpy(log_elementary_symmetric(backend.asarray(x[1:]), k))
    if backend.name == "jax":  # compiled alone, eager next to a wide row
        np.testing.assert_allclose(got[1], alone[0], rtol=64 * np.finfo(dtype).eps)
    else:
        np.testing.assert_array_equal(got[1], alone[0])
    eps = float(np.finfo(dtype).eps)
    for m, (g, w) in enumerate(zip(got[0], want, strict=True)):
        if math.isinf(w) or abs(w) > top:
            assert g == (math.inf if w > 0 else -math.inf), (m, g, w)
        else:
            assert abs(float(g) - w) <= 64 * eps * (1 + abs(w)), (m, g, w)

"""The smooth top-k SVM (Berrada, Zisserman & Kumar 2018) and its hard limit.

Oracles: the 50-digit reference values of docs/design/refvalues.txt, an mpmath reference
(subset enumeration for small ``n``, the sequential ESP recursion with prefix/suffix
products for the gradient up to ``n = 1000``) on the adversarial input families of
docs/design/topk.md §5, computed on the inputs *after* rounding to the tested dtype, and the
identities of docs/design/losses.md §4 (cross-entropy at k=1, gradient structure, bounds).
"""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import assert_allclose, numpy_path, to_numpy
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from mpref import reference_sequential

import arrayloss
from arrayloss import _esp_compiled
from arrayloss._kinks import KINKS
from arrayloss.losses._topk import (
    smooth_topk_svm,
    smooth_topk_svm_and_grad,
    topk_svm,
    topk_svm_and_grad,
)

mp = pytest.importorskip("mpmath")

# --------------------------------------------------------------------------------------
# Reference values (docs/design/refvalues.txt, "Smooth top-k"): s, y = 2 (0-based).
# --------------------------------------------------------------------------------------

S = np.array([1.0, 2.5, -0.3, 0.7, 3.1])
Y = 2
# (k, tau, alpha, L, grad, hard l_k, reference code would use the hard loss)
REF = [
    (2, 1.0, 1.0, 2.58891738722,
     [0.09926501884, 0.1425021043, -0.4624493491, 0.08886764055, 0.1318145854],
     2.4, False),
    (1, 1.0, 0.0, 3.98520516213,
     [0.06820719903, 0.3056834584, -0.9814113698, 0.05052913582, 0.5569915765],
     3.4, False),
    (1, 1.0, 1.0, 4.97338532695,
     [0.06901818027, 0.3093180242, -0.9930803171, 0.0511299255, 0.5636141871],
     4.4, False),
    (2, 0.1, 1.0, 2.39520904918,
     [0.000276991248, 0.4759498154, -0.5, 6.18064206e-05, 0.02371138689],
     2.4, True),
    (3, 1.0, 1.0, 1.52770042793,
     [0.07322334385, 0.06111687388, -0.2609886068, 0.07278852673, 0.05385986232],
     1.433333333, False),
    (4, 1.0, 1.0, 0.751788280093,
     [0.03935955573, 0.02705140067, -0.132119354, 0.0424250413, 0.02328335633],
     1.25, False),
    (2, 1.0, 0.0, 1.71028970882,
     [0.08791943729, 0.1262147025, -0.4095932991, 0.07871043639, 0.1167487229],
     1.4, False),
]  # fmt: skip
REF_IDS = [f"k{r[0]}-tau{r[1]}-alpha{r[2]}" for r in REF]


@pytest.mark.parametrize("method", ["auto", "direct", "fft"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("row", REF, ids=REF_IDS)
def test_reference_values(backend, row, dtype, method):
    k, tau, alpha, value, grad, _, _ = row
    z = backend.asarray(S[None, :], dtype)
    y = backend.asarray(np.array([Y]))
    v, g = smooth_topk_svm_and_grad(
        z, y, k=k, tau=tau, alpha=alpha, method=method, reduction="none"
    )
    assert v.dtype == z.dtype
    assert g.dtype == z.dtype
    rtol = 1e-9 if dtype == np.float64 else 1e-5
    assert_allclose(v, [value], rtol=rtol)
    assert_allclose(g, [grad], rtol=rtol, atol=rtol * np.max(np.abs(grad)))
    if backend.name != "jax":  # (saves a compilation)
        v_only = smooth_topk_svm(z, y, k=k, tau=tau, alpha=alpha, method=method)
        assert_allclose(v_only, value, rtol=rtol)


@pytest.mark.parametrize("row", REF, ids=REF_IDS)
def test_opt_in_hard_switch_reproduces_reference_code(row):
    k, tau, alpha, value, grad, hard, code_uses_hard = row
    v, g = smooth_topk_svm_and_grad(
        S[None, :], np.array([Y]), k=k, tau=tau, alpha=alpha, hard_threshold=1e3
    )
    if code_uses_hard:  # k=2, tau=0.1: s_[2] - s_[3] = 1.5 >= 0.2 ln(1000)
        np.testing.assert_allclose(v, hard, rtol=1e-9)
        expect = np.zeros(5)
        expect[1], expect[Y] = 1 / k, -1 / k  # k-th best other class (2.5), label
        np.testing.assert_allclose(g[0], expect, atol=1e-15)
    else:
        np.testing.assert_allclose(v, value, rtol=1e-9)
        np.testing.assert_allclose(g[0], grad, rtol=1e-9, atol=1e-12)
    # The default is the exact smooth loss everywhere.
    np.testing.assert_allclose(
        smooth_topk_svm(S[None, :], np.array([Y]), k=k, tau=tau, alpha=alpha),
        value,
        rtol=1e-9,
    )


@pytest.mark.parametrize("row", REF, ids=REF_IDS)
def test_hard_topk_svm_reference(backend, row):
    k, _, alpha, _, _, hard, _ = row
    v, g = topk_svm_and_grad(
        backend.asarray(S[None, :]), backend.asarray(np.array([Y])), k=k, alpha=alpha
    )
    assert_allclose(v, hard, rtol=1e-9)
    g = to_numpy(g)[0]
    assert g[Y] == pytest.approx(-1 / k)
    kth_other = np.argsort(-np.where(np.arange(5) == Y, -np.inf, S))[k - 1]
    assert g[kth_other] == pytest.approx(1 / k)
    assert np.count_nonzero(g) == 2


# --------------------------------------------------------------------------------------
# mpmath references.
# --------------------------------------------------------------------------------------


def reference_subsets(s, g: int, k: int, tau: float, alpha: float):
    """Loss and gradient from the definition over k-subsets (docs/design/losses.md §4.1, §4.4).

    ``L = tau log(1 + Z_out / Z_in)`` with ``Z_in``/``Z_out`` the weights of the
    subsets with/without the label; the gradient ``(P_all(j) - P_y(j)) / k`` is a
    difference, so the working precision grows with the range of the exponents.
    """
    spread = (2 * float(np.max(np.abs(s))) + alpha) / tau
    with mp.workdps(50 + int(spread / math.log(10))):
        n = len(s)
        sv = [mp.mpf(float(v)) for v in s]
        w_in, w_out = [], []
        for sub in itertools.combinations(range(n), k):
            base = mp.fsum(sv[j] for j in sub) / k
            if g in sub:
                w_in.append((sub, mp.exp(base / tau)))
            else:
                w_out.append((sub, mp.exp((alpha + base) / tau)))
        z_in = mp.fsum(w for _, w in w_in)
        z_out = mp.fsum(w for _, w in w_out)
        loss = tau * mp.log1p(z_out / z_in)
        grad = []
        for j in range(n):
            m_in = mp.fsum(w for sub, w in w_in if j in sub)
            m_out = mp.fsum(w for sub, w in w_out if j in sub)
            p_all, p_y = (m_in + m_out) / (z_in + z_out), m_in / z_in
            grad.append(float((p_all - p_y) / k))
        return float(loss), np.array(grad)


FAMILIES = [
    "randn1", "randn10", "randn100", "huge", "huge_gt", "ties", "topties",
    "hardtail", "wide",
]  # fmt: skip


def family(
    name: str, n: int, k: int, rng: np.random.Generator
) -> tuple[np.ndarray, int]:
    """One score row and label of an input family of docs/design/topk.md §5."""
    g = int(rng.integers(n))
    others = np.array([j for j in range(n) if j != g])
    if name.startswith("randn"):
        return float(name[5:]) * rng.standard_normal(n), g
    if name == "huge":  # one non-label score of 1e4
        s = rng.standard_normal(n)
        s[rng.choice(others)] = 1e4
        return s, g
    if name == "huge_gt":  # the label's score is 1e4
        s = rng.standard_normal(n)
        s[g] = 1e4
        return s, g
    if name == "ties":
        return np.full(n, 0.7), g
    if name == "topties":  # k+3 scores tied at the top, the rest 35 below
        s = -34.0 + 0.1 * rng.standard_normal(n)
        s[rng.choice(n, size=min(k + 3, n), replace=False)] = 1.0
        return s, g
    if name == "hardtail":  # k-1 scores at 200, the rest N(0, 1)
        s = rng.standard_normal(n)
        s[rng.choice(others, size=k - 1, replace=False)] = 200.0
        return s, g
    if name == "wide":
        return rng.uniform(-1000, 1000, n), g
    raise ValueError(name)


def tolerance(dtype, s: np.ndarray, k: int, tau: float) -> float:
    """docs/design/topk.md §5 accuracy targets for one row."""
    u = float(np.finfo(dtype).eps) / 2
    scale = float(np.max(np.abs(s))) / (k * tau)
    if scale <= 100:
        return 1e-13 if dtype == np.float64 else 5e-6
    return 50 * u * max(1.0, scale)


def rel_errors(dtype, v, g, ref_v, ref_g) -> tuple[float, float]:
    """Loss relative error and gradient normwise relative error (docs/design/topk.md §5)."""
    tiny = float(np.finfo(dtype).tiny)
    ev = abs(float(v) - ref_v) / max(abs(ref_v), tiny)
    eg = float(np.max(np.abs(np.asarray(g, dtype=np.float64) - ref_g)))
    return ev, eg / max(float(np.max(np.abs(ref_g))), tiny)


# The NumPy paths: the array-API tree, and the compiled kernel where numba is
# installed (``method`` "auto"/"direct"; arrayloss/_esp_compiled.py).
HAVE_NUMBA = _esp_compiled.available()
PATHS = ("array", "numba") if HAVE_NUMBA else ("array",)
COMPILED = ("auto", "direct")
needs_numba = pytest.mark.skipif(not HAVE_NUMBA, reason="numba is not installed")


# Measured errors, gathered for the report by ``python tests/test_topk.py``.
MEASURED: dict[tuple[str, str, str], list[float]] = {}


def _check_case(name, dtype, n, k, tau, rng, methods=("direct", "fft")):
    s, g = family(name, n, k, rng)
    s = s.astype(dtype)  # the reference sees the rounded inputs
    spread = 2 * float(np.max(np.abs(s))) / tau  # the subset oracle's extra digits
    small = math.comb(n, k) <= 5000 and spread < 3000
    ref = (reference_subsets if small else reference_sequential)(
        s.astype(np.float64), g, k, tau, 1.0
    )
    tol = tolerance(dtype, s, k, tau)
    runs = [(m, p) for m in methods for p in PATHS if p == "array" or m in COMPILED]
    for method, path in runs:
        with numpy_path(path):
            v, gr = smooth_topk_svm_and_grad(
                s[None, :], np.array([g]), k=k, tau=tau, method=method,
                reduction="none",
            )  # fmt: skip
        assert v.dtype == dtype
        assert np.all(np.isfinite(v))
        assert np.all(np.isfinite(gr))
        ev, eg = rel_errors(dtype, v[0], gr[0], *ref)
        key = (name, np.dtype(dtype).name, method if path == "array" else "numba")
        worst = MEASURED.setdefault(key, [0.0, 0.0])
        worst[0], worst[1] = max(worst[0], ev), max(worst[1], eg)
        assert ev <= tol, (name, n, k, tau, method, "loss", ev, tol)
        assert eg <= tol, (name, n, k, tau, method, "grad", eg, tol)


FAST_CASES = [(10, 1, 1.0), (10, 2, 1.0), (10, 5, 1.0), (12, 3, 0.1),
              (100, 1, 1.0), (100, 2, 0.1), (100, 5, 1.0), (100, 10, 1.0),
              (100, 50, 1.0)]  # fmt: skip


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", FAMILIES)
def test_accuracy_against_mpmath(name, dtype):
    rng = np.random.default_rng([FAMILIES.index(name), 7])
    for n, k, tau in FAST_CASES:
        _check_case(name, dtype, n, k, tau, rng)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_k1_tiny_loss_keeps_relative_accuracy(backend, dtype):
    """k = 1 with the label far ahead: the loss ~ e^-8 (and e^-40) must not come
    from log(1 + tiny) (it had a relative error of 7e-4 in float32)."""
    s = np.array([-4.4, 8.25, -8.5, -12.5, -7.25, -0.625, 3.5, -30.0], dtype=dtype)
    for lead, tau in ((0.0, 1.0), (32.0, 1.0), (0.0, 0.5)):
        row = s.copy()
        row[1] += lead
        ref_v, ref_g = reference_subsets(row.astype(np.float64), 1, 1, tau, 1.0)
        v, g = smooth_topk_svm_and_grad(
            backend.asarray(row[None, :]), backend.asarray(np.array([1])),
            k=1, tau=tau, reduction="none",
        )  # fmt: skip
        ev, eg = rel_errors(dtype, to_numpy(v)[0], to_numpy(g)[0], ref_v, ref_g)
        tol = 1e-14 if dtype == np.float64 else 1e-6
        assert ev <= tol, (lead, tau, ev)
        assert eg <= tol, (lead, tau, eg)


# float64 in the slow step (CI runs it): about 10 s of JAX compiles and mpmath each
@pytest.mark.parametrize(
    "dtype", [pytest.param(np.float64, marks=pytest.mark.slow), np.float32]
)
def test_accuracy_of_the_compiled_jax_schedule(dtype):
    """JAX runs a fixed schedule (no host-side health check and fallback): every
    family at every fast case, one batch of rows per case, to the same targets."""
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    for n, k, tau in FAST_CASES:
        rows, labels, refs, tols = [], [], [], []
        for name in FAMILIES:
            rng = np.random.default_rng([FAMILIES.index(name), 7, n, k])
            s, g = family(name, n, k, rng)
            s = s.astype(dtype)
            spread = 2 * float(np.max(np.abs(s))) / tau
            small = math.comb(n, k) <= 5000 and spread < 3000
            oracle = reference_subsets if small else reference_sequential
            refs.append(oracle(s.astype(np.float64), g, k, tau, 1.0))
            rows.append(s)
            labels.append(g)
            tols.append(tolerance(dtype, s, k, tau))
        v, gr = smooth_topk_svm_and_grad(
            jnp.asarray(np.stack(rows)), jnp.asarray(np.array(labels)), k=k, tau=tau,
            reduction="none",
        )  # fmt: skip
        v, gr = np.asarray(v), np.asarray(gr)
        assert v.dtype == dtype
        for i, name in enumerate(FAMILIES):
            ev, eg = rel_errors(dtype, v[i], gr[i], *refs[i])
            assert ev <= tols[i], (name, n, k, tau, "loss", ev, tols[i])
            assert eg <= tols[i], (name, n, k, tau, "grad", eg, tols[i])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ["randn1", "huge", "wide"])
def test_accuracy_against_mpmath_n1000(name, dtype):
    _check_case(name, dtype, 1000, 5, 1.0, np.random.default_rng([11, len(name)]))


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", FAMILIES)
def test_accuracy_against_mpmath_large(name, dtype):
    rng = np.random.default_rng([FAMILIES.index(name), 13])
    for n, k in [(1000, 5), (1000, 50), (300, 10)]:
        _check_case(name, dtype, n, k, 1.0, rng, methods=("auto", "direct", "fft"))


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_accuracy_fft_path_k100(dtype):
    """k >= 64: ``auto`` multiplies by FFT at the top levels (mean-matching tilt)."""
    rng = np.random.default_rng(5)
    for name in ["randn1", "randn10", "hardtail", "ties", "wide"]:
        _check_case(name, dtype, 400, 100, 1.0, rng, methods=("auto", "direct"))


def test_fft_path_k70_against_direct():
    rng = np.random.default_rng(3)
    z = 5 * rng.standard_normal((6, 300))
    z[1, 7] = 1e4  # a row that needs the fallback
    y = rng.integers(0, 300, 6)
    va, ga = smooth_topk_svm_and_grad(z, y, k=70, reduction="none")
    vd, gd = smooth_topk_svm_and_grad(z, y, k=70, method="direct", reduction="none")
    np.testing.assert_allclose(va, vd, rtol=1e-13)
    np.testing.assert_allclose(ga, gd, rtol=0, atol=1e-13 * np.max(np.abs(gd)))


# --------------------------------------------------------------------------------------
# Identities and structure.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("k", [2, 5, 17])
def test_gradient_structure(rng, k, dtype):
    tau = 0.7
    z = (4 * rng.standard_normal((16, 40))).astype(dtype)
    y = rng.integers(0, 40, 16)
    v, g = smooth_topk_svm_and_grad(z, y, k=k, tau=tau, reduction="none")
    rows = np.arange(16)
    u = np.finfo(dtype).eps
    gmax = np.max(np.abs(g), axis=1)
    np.testing.assert_array_less(
        np.abs(g.sum(axis=1)), 10 * u * gmax * np.sqrt(40) + 1e-30
    )
    off = np.ones_like(g, dtype=bool)
    off[rows, y] = False
    assert np.all(g[off] >= 0)
    # d/ds_y = -sigma(r)/k, and sigma(r) = 1 - exp(-L/tau) since L = tau softplus(r).
    expect = np.expm1(-v.astype(np.float64) / tau) / k
    np.testing.assert_allclose(g[rows, y], expect, rtol=50 * u)


@pytest.mark.parametrize("k", [1, 3, 8])
def test_shift_invariance(rng, k):
    z = 3 * rng.standard_normal((5, 30))
    y = rng.integers(0, 30, 5)
    shift = np.array([-1e3, -5.0, 0.0, 7.5, 250.0])[:, None]
    a = smooth_topk_svm_and_grad(z, y, k=k, reduction="none")
    b = smooth_topk_svm_and_grad(z + shift, y, k=k, reduction="none")
    np.testing.assert_allclose(b[0], a[0], rtol=1e-11)
    np.testing.assert_allclose(b[1], a[1], rtol=0, atol=1e-11)


def test_k1_alpha0_tau1_is_cross_entropy(backend, rng):
    z = 3 * rng.standard_normal((7, 9))
    y = rng.integers(0, 9, 7)
    zb, yb = backend.asarray(z), backend.asarray(y)
    v, g = smooth_topk_svm_and_grad(zb, yb, k=1, tau=1.0, alpha=0.0, reduction="none")
    cv, cg = arrayloss.cross_entropy_and_grad(zb, yb, reduction="none")
    assert_allclose(v, to_numpy(cv), rtol=1e-12)
    assert_allclose(g, to_numpy(cg), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("tau", [1e-2, 3e-3])
@pytest.mark.parametrize("k", [1, 2, 4])
def test_bounds_around_the_hard_loss(rng, k, tau):
    """l_k - tau log C(n-1, k-1) <= L <= l_k + tau log C(n, k) (docs/design/losses.md §4.2)."""
    n = 12
    z = rng.standard_normal((20, n))
    y = rng.integers(0, n, 20)
    smooth = smooth_topk_svm(z, y, k=k, tau=tau, reduction="none")
    hard = topk_svm(z, y, k=k, reduction="none")
    assert np.all(smooth >= hard - tau * math.log(math.comb(n - 1, k - 1)) - 1e-12)
    assert np.all(smooth <= hard + tau * math.log(math.comb(n, k)) + 1e-12)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_hard_loss_against_subset_definition(rng, k):
    n = 7
    z = rng.standard_normal((6, n))
    y = rng.integers(0, n, 6)
    v, g = topk_svm_and_grad(z, y, k=k, alpha=0.8, reduction="none")
    for i in range(6):
        best = max(
            0.8 * (y[i] not in sub) + z[i, list(sub)].sum() / k
            for sub in itertools.combinations(range(n), k)
        )
        with_y = max(
            z[i, list(sub)].sum() / k
            for sub in itertools.combinations(range(n), k)
            if y[i] in sub
        )
        assert v[i] == pytest.approx(best - with_y, abs=1e-12)
        assert g[i].sum() == pytest.approx(0.0, abs=1e-15)
        assert g[i, y[i]] == (-1 / k if v[i] > 0 else 0.0)


def test_hard_loss_gradient_matches_finite_differences(rng):
    z = rng.standard_normal((30, 9))
    y = rng.integers(0, 9, 30)
    params = {"k": 3, "alpha": 0.4}
    keep = KINKS["topk_svm"](z, y, params) > 1e-3
    assert keep.mean() > 0.5
    z, y = z[keep], y[keep]
    _, g = topk_svm_and_grad(z, y, reduction="none", **params)
    h = 1e-6
    for j in range(9):
        dz = np.zeros_like(z)
        dz[:, j] = h
        fd = (topk_svm(z + dz, y, reduction="none", **params)
              - topk_svm(z - dz, y, reduction="none", **params)) / (2 * h)  # fmt: skip
        np.testing.assert_allclose(g[:, j], fd, atol=1e-8)


def test_smooth_gradient_matches_finite_differences(rng):
    z = 2 * rng.standard_normal((4, 11))
    y = rng.integers(0, 11, 4)
    for k, tau, alpha in [(1, 0.5, 1.0), (3, 1.0, 0.3), (6, 0.2, 1.0)]:
        _, g = smooth_topk_svm_and_grad(
            z, y, k=k, tau=tau, alpha=alpha, reduction="none"
        )
        h = 1e-6
        for j in range(11):
            dz = np.zeros_like(z)
            dz[:, j] = h
            fd = (smooth_topk_svm(z + dz, y, k=k, tau=tau, alpha=alpha, reduction="none")
                  - smooth_topk_svm(z - dz, y, k=k, tau=tau, alpha=alpha, reduction="none")
                  ) / (2 * h)  # fmt: skip
            np.testing.assert_allclose(g[:, j], fd, atol=2e-8)


def test_fallback_rows_merge_like_single_rows(backend, rng):
    """Rows that need the mean-matching fallback, batched with rows that don't."""
    z = rng.standard_normal((6, 50))
    y = rng.integers(0, 50, 6)
    z[1, (y[1] + 1) % 50] = 1e4  # huge: the lse tilt underflows
    z[3, :4] = 200.0  # hardtail-like
    z[4] *= 100
    for k in (2, 5):
        v, g = smooth_topk_svm_and_grad(
            backend.asarray(z), backend.asarray(y), k=k, reduction="none"
        )
        for i in range(6):
            vi, gi = smooth_topk_svm_and_grad(
                z[i : i + 1], y[i : i + 1], k=k, reduction="none"
            )
            assert_allclose(to_numpy(v)[i : i + 1], vi, rtol=1e-12)
            assert_allclose(to_numpy(g)[i : i + 1], gi, rtol=0, atol=1e-14)


def _bits(a: np.ndarray) -> np.ndarray:
    """The raw bit patterns (``-0.0`` and ``0.0`` differ, NaNs compare)."""
    a = np.ascontiguousarray(a)
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


def _assert_rows_alone(z, y, **params):
    """Each row's loss and gradient are bit-identical to the row computed alone."""
    v, g = smooth_topk_svm_and_grad(z, y, reduction="none", **params)
    for i in range(z.shape[0]):
        vi, gi = smooth_topk_svm_and_grad(
            z[i : i + 1].copy(), y[i : i + 1].copy(), reduction="none", **params
        )
        assert np.array_equal(_bits(v[i : i + 1]), _bits(vi)), (i, v[i], vi[0])
        assert np.array_equal(_bits(g[i : i + 1]), _bits(gi)), i


@pytest.mark.parametrize("k", [2, 5, 70])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_independent_of_its_batch(rng, dtype, k):
    """A row's result does not depend on the batch it sits in (issue: float32
    smooth top-k of a row alone differed in the last bits from the same row in a
    batch; ``eval --chunk-size 1`` must equal the default chunk)."""
    B, n = 24, 300
    z = (3 * rng.standard_normal((B, n))).astype(dtype)
    y = rng.integers(0, n, B)
    z[1, (y[1] + 1) % n] = 1e4  # the lse tilt underflows: mean-tilt fallback rows
    z[2, (y[2] + 2) % n] = 5e3
    z[5] *= 100
    _assert_rows_alone(z, y, k=k)
    if k < 70:
        _assert_rows_alone(z, y, k=k, method="fft", tau=0.3)


@settings(max_examples=40, deadline=None)
@given(
    data=st.data(),
    dtype=st.sampled_from([np.float32, np.float64]),
    n=st.integers(3, 200),
    batch=st.integers(1, 12),
)
def test_row_bit_identical_alone_in_a_batch_and_at_any_position(data, dtype, n, batch):
    """Property: the loss and gradient of a row are the same bits alone, in any
    batch and at any position of it, on NumPy float32 and float64."""
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    scale = data.draw(st.sampled_from([1.0, 10.0, 100.0, 1e4]))
    k = data.draw(st.integers(1, min(n - 1, 12)))
    tau = data.draw(st.sampled_from([0.05, 1.0, 7.0]))
    method = data.draw(st.sampled_from(["auto", "direct", "fft"]))
    row = (scale * rng.standard_normal(n)).astype(dtype)
    label = int(rng.integers(n))
    others = (scale * rng.standard_normal((batch, n))).astype(dtype)
    if data.draw(st.booleans()):  # a huge entry in a neighbour: a fallback row
        others[0, int(rng.integers(n))] = dtype(1e4)
    pos = data.draw(st.integers(0, batch))
    z = np.insert(others, pos, row, axis=0)
    y = np.insert(rng.integers(0, n, batch), pos, label)
    params = {"k": k, "tau": tau, "method": method}
    v, g = smooth_topk_svm_and_grad(z, y, reduction="none", **params)
    v1, g1 = smooth_topk_svm_and_grad(
        row[None].copy(), np.array([label]), reduction="none", **params
    )
    assert np.array_equal(_bits(v[pos : pos + 1]), _bits(v1))
    assert np.array_equal(_bits(g[pos : pos + 1]), _bits(g1))
    # and inside a batch of copies of itself (every row takes the same path)
    vc, gc = smooth_topk_svm_and_grad(
        np.repeat(row[None], 3, axis=0), np.full(3, label), reduction="none", **params
    )
    assert np.array_equal(_bits(vc), _bits(np.repeat(v1, 3)))
    assert np.array_equal(_bits(gc), _bits(np.repeat(g1, 3, axis=0)))


@pytest.mark.parametrize("n", [3, 31, 33, 100, 257, 1025])
def test_tree_shapes(rng, n):
    """Odd levels, identity padding and single-node tops give the reference."""
    s = rng.standard_normal(n)
    g = int(rng.integers(n))
    k = min(n - 1, 4)
    ref = reference_sequential(s, g, k, 1.0, 1.0)
    for method in ("direct", "fft"):
        v, gr = smooth_topk_svm_and_grad(s[None], np.array([g]), k=k, method=method)
        ev, eg = rel_errors(np.float64, v, gr[0], *ref)
        assert ev < 1e-13
        assert eg < 1e-13


def test_every_k_for_small_n(rng):
    """Every 2 <= k < n: truncation, window and identity-partner edge cases."""
    for n in range(3, 19):
        for k in range(2, n):
            s = 3 * rng.standard_normal(n)
            g = int(rng.integers(n))
            ref = reference_sequential(s, g, k, 1.0, 1.0)
            for method in ("direct", "fft"):
                v, gr = smooth_topk_svm_and_grad(
                    s[None], np.array([g]), k=k, method=method
                )
                ev, eg = rel_errors(np.float64, v, gr[0], *ref)
                assert max(ev, eg) < 1e-13, (n, k, method, ev, eg)


def test_batch_axis_and_reductions(rng):
    z = rng.standard_normal((2, 10, 3))
    y = rng.integers(0, 10, (2, 3))
    v, g = smooth_topk_svm_and_grad(z, y, k=3, axis=1, reduction="none")
    v0, g0 = smooth_topk_svm_and_grad(np.moveaxis(z, 1, -1), y, k=3, reduction="none")
    np.testing.assert_allclose(v, v0, rtol=1e-14)
    np.testing.assert_allclose(g, np.moveaxis(g0, -1, 1), rtol=1e-14)
    m, gm = smooth_topk_svm_and_grad(z, y, k=3, axis=1)
    np.testing.assert_allclose(m, v.mean(), rtol=1e-14)
    np.testing.assert_allclose(gm, g / 6, rtol=1e-14)


def test_empty_batch():
    v, g = smooth_topk_svm_and_grad(
        np.zeros((0, 6)), np.zeros(0, dtype=int), k=2, reduction="none"
    )
    assert v.shape == (0,)
    assert g.shape == (0, 6)


@settings(max_examples=40, deadline=None)
@given(
    data=st.data(),
    dtype=st.sampled_from([np.float32, np.float64]),
    n=st.integers(2, 24),
)
def test_finite_for_any_finite_scores(data, dtype, n):
    bound = 1e4 if dtype == np.float32 else 1e150
    z = data.draw(
        hnp.arrays(
            dtype,
            (3, n),
            elements=st.floats(-bound, bound, width=np.dtype(dtype).itemsize * 8),
        )
    )
    y = np.array(data.draw(st.lists(st.integers(0, n - 1), min_size=3, max_size=3)))
    k = data.draw(st.integers(1, n - 1))
    tau = data.draw(st.sampled_from([1e-3, 0.1, 1.0, 30.0]))
    alpha = data.draw(st.sampled_from([0.0, 1.0, 5.0]))
    method = data.draw(st.sampled_from(["auto", "direct", "fft"]))
    v, g = smooth_topk_svm_and_grad(
        z, y, k=k, tau=tau, alpha=alpha, method=method, reduction="none"
    )
    assert np.all(np.isfinite(v)), (z, y, k)
    assert np.all(np.isfinite(g)), (z, y, k)
    assert np.all(v >= 0)


# --------------------------------------------------------------------------------------
# Validation.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [smooth_topk_svm, topk_svm])
def test_k_must_be_below_n_classes(fn):
    z, y = np.zeros((2, 5)), np.array([0, 1])
    with pytest.raises(
        ValueError, match=r"1 <= k < n_classes \(got k=7, n_classes=5\)"
    ):
        fn(z, y, k=7)
    with pytest.raises(ValueError, match=r"got k=5, n_classes=5"):
        fn(z, y, k=5)
    with pytest.raises(ValueError, match=r"`k`.*got k=0"):
        fn(z, y, k=0)
    with pytest.raises(TypeError, match=r"`k` must be an integer \(got k=2.5\)"):
        fn(z, y, k=2.5)
    with pytest.raises(ValueError, match=r"`alpha`.*got alpha=-1"):
        fn(z, y, k=2, alpha=-1)
    with pytest.raises(ValueError, match="integer class indices only"):
        fn(z, np.eye(5)[y], k=2)


def test_smooth_parameter_errors():
    z, y = np.zeros((2, 5)), np.array([0, 1])
    with pytest.raises(ValueError, match=r"`tau` must be positive \(got tau=0"):
        smooth_topk_svm(z, y, k=2, tau=0)
    with pytest.raises(ValueError, match=r"got tau=-1"):
        smooth_topk_svm(z, y, k=2, tau=-1.0)
    with pytest.raises(ValueError, match=r"`method`.*got method='ffft'"):
        smooth_topk_svm(z, y, k=2, method="ffft")
    with pytest.raises(ValueError, match=r"`hard_threshold`.*got hard_threshold=0.5"):
        smooth_topk_svm(z, y, k=2, hard_threshold=0.5)
    with pytest.raises(ValueError, match="at least 2 classes"):
        smooth_topk_svm(np.zeros((2, 1)), y * 0, k=1)


def test_kink_distance_is_small_on_ties():
    z = np.array([[0.0, 1.0, 1.0, 1.0, -3.0], [0.0, 3.0, 2.0, 1.0, -1.0]])
    y = np.array([0, 0])
    d = KINKS["topk_svm"](z, y, {"k": 2, "alpha": 1.0})
    assert d[0] == 0.0
    assert d[1] > 0.4


# --------------------------------------------------------------------------------------
# The compiled kernel (numba) against the array path.
# --------------------------------------------------------------------------------------


def _both_paths(z, y, **params):
    out = {}
    for path in ("numba", "array"):
        with numpy_path(path):
            out[path] = smooth_topk_svm_and_grad(z, y, reduction="none", **params)
    return out["numba"], out["array"]


def _assert_paths_agree(z, y, k, tau, **params):
    (v, g), (v0, g0) = _both_paths(z, y, k=k, tau=tau, **params)
    assert v.dtype == v0.dtype == z.dtype
    assert g.dtype == g0.dtype == z.dtype
    for i in range(z.shape[0]):
        tol = 2 * tolerance(z.dtype.type, z[i], k, tau)
        ev, eg = rel_errors(z.dtype.type, v[i], g[i], float(v0[i]), g0[i])
        assert ev <= tol, (i, "loss", ev, tol)
        assert eg <= tol, (i, "grad", eg, tol)


def test_import_arrayloss_does_not_import_numba():
    code = (
        "import sys, numpy as np, arrayloss as al; assert 'numba' not in sys.modules; "
        "z, y = np.zeros((2, 5)), np.array([0, 1]); "
        "al.smooth_topk_svm(z, y, k=1); al.smooth_topk_svm(z, y, k=2, method='fft'); "
        "assert 'numba' not in sys.modules; al.smooth_topk_svm(z, y, k=2); "
        "print('numba' in sys.modules)"
    )
    # Without ARRAYLOSS_NUMBA=0 from the caller's environment (it keeps numba out).
    env = {k: v for k, v in os.environ.items() if k != _esp_compiled.ENV_VAR}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env=env,
    ).stdout  # fmt: skip
    assert out.strip() == str(HAVE_NUMBA)


@needs_numba
def test_compiled_dispatch():
    import array_api_strict

    z = np.zeros((2, 5))
    with numpy_path("numba"):
        assert _esp_compiled.applies(np, z, "auto")
        assert _esp_compiled.applies(np, z.astype(np.float32), "direct")
        assert not _esp_compiled.applies(np, z, "fft")
        assert not _esp_compiled.applies(np, z.astype(np.float16), "auto")
        zs = array_api_strict.asarray(z)
        assert not _esp_compiled.applies(array_api_strict, zs, "auto")
    with numpy_path("array"):
        assert not _esp_compiled.applies(np, z, "auto")


@needs_numba
@settings(max_examples=25, deadline=None)
@given(
    data=st.data(),
    dtype=st.sampled_from([np.float32, np.float64]),
    n=st.integers(3, 40),
    batch=st.integers(1, 40),
)
def test_compiled_matches_array_path(data, dtype, n, batch):
    """Property: the compiled kernel and the array tree agree to the accuracy
    targets, over shapes that cross the kernel's blocks of rows, any k, tau,
    alpha, and rows that need the mean-matching fallback."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    scale = data.draw(st.sampled_from([0.1, 1.0, 10.0, 100.0]))
    z = scale * rng.standard_normal((batch, n))
    for i in range(batch):
        if data.draw(st.booleans()):  # a huge score (fallback rows)
            z[i, int(rng.integers(n))] = data.draw(st.sampled_from([1e3, 1e4, -1e4]))
    z = z.astype(dtype)
    y = rng.integers(0, n, batch)
    k = data.draw(st.integers(2, n - 1))
    tau = data.draw(st.sampled_from([0.05, 0.3, 1.0, 7.0]))
    alpha = data.draw(st.sampled_from([0.0, 1.0, 3.0]))
    method = data.draw(st.sampled_from(["auto", "direct"]))
    _assert_paths_agree(z, y, k, tau, alpha=alpha, method=method)


@needs_numba
@settings(max_examples=25, deadline=None)
@given(
    data=st.data(),
    dtype=st.sampled_from([np.float32, np.float64]),
    n=st.integers(3, 30),
)
def test_compiled_finite_for_extreme_scores(data, dtype, n):
    """Scores of +-1e30 (and a mix with ordinary ones): finite, non-negative loss,
    a gradient >= 0 off the label that sums to zero."""
    values = st.sampled_from([-1e30, 1e30, -1e20, 1e20, 0.0, 1.0, -2.5])
    z = np.array(
        data.draw(st.lists(values, min_size=4 * n, max_size=4 * n)), dtype=dtype
    ).reshape(4, n)
    y = np.array(data.draw(st.lists(st.integers(0, n - 1), min_size=4, max_size=4)))
    k = data.draw(st.integers(2, n - 1))
    tau = data.draw(st.sampled_from([0.1, 1.0, 30.0]))
    with numpy_path("numba"):
        v, g = smooth_topk_svm_and_grad(z, y, k=k, tau=tau, reduction="none")
    assert np.all(np.isfinite(v)), (z, y, k)
    assert np.all(np.isfinite(g)), (z, y, k)
    assert np.all(v >= 0)
    off = np.ones(g.shape, dtype=bool)
    off[np.arange(4), y] = False
    assert np.all(g[off] >= 0)
    sums = np.abs(g.astype(np.float64).sum(axis=1))
    assert np.all(sums <= 1e-5 * np.max(np.abs(g), axis=1) + 1e-30)


@needs_numba
@pytest.mark.parametrize(("k", "n"), [(3, 61), (7, 61), (20, 61), (20, 150)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_rows_alone_across_blocks(rng, dtype, k, n):
    """Rows in every lane of the kernel's vectors (16 rows), a partial last block,
    the W x W transposes and a partial tile of classes, segments of odd length (k
    <= 8: 16 classes; k > 8: 64, four classes per forward and backward pass,
    with the remainders of one, two and three), the three forms of
    the kernel (k <= 5, k <= 8, k > 8), and fallback rows: each bit-identical to
    the row alone."""
    B = 70
    z = (3 * rng.standard_normal((B, n))).astype(dtype)
    y = rng.integers(0, n, B)
    for i in (1, 31, 32, 69):
        z[i, (y[i] + 1) % n] = 1e4  # the lse tilt underflows
    with numpy_path("numba"):
        _assert_rows_alone(z, y, k=k)


@needs_numba
@pytest.mark.parametrize("k", [2, 5, 6, 8, 9, 33])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_forms_match_array_path(rng, dtype, k):
    """Each form of the kernel (degrees in registers for k <= 5 and k <= 8, in an
    array above) against the array tree, on a batch with a partial block, an odd
    number of classes (a partial tile, an odd last segment) and fallback rows."""
    z = (2 * rng.standard_normal((37, 141))).astype(dtype)
    y = rng.integers(0, 141, 37)
    z[3, (y[3] + 2) % 141] = 1e4
    z[36, (y[36] + 2) % 141] = -1e4
    _assert_paths_agree(z, y, k, 1.0, alpha=1.0)


# (C, k): the k > 8 backward takes the classes of each segment (64 for these k) in
# blocks of four from the segment's first; C = 13, 10 and 50, 15, 1003 leave a last
# block of one, two and three classes, 1000 none.
ENTRYWISE_CASES = [(10, 9), (13, 9), (15, 12), (50, 16), (50, 40), (1000, 40),
                   (1003, 16)]  # fmt: skip


@needs_numba
@pytest.mark.parametrize(("n", "k"), ENTRYWISE_CASES)
def test_compiled_gradient_entrywise_against_mpmath(n, k):
    """Every gradient entry of the compiled kernel (the k > 8 form, blocks of four
    classes backward) within the accuracy target relative to itself, against the
    50-digit sequential reference, in float64 and float32 (the scores are float32
    numbers, so one reference serves both)."""
    rng = np.random.default_rng([n, k, 19])
    s = (3 * rng.standard_normal(n)).astype(np.float32)
    g = int(rng.integers(n))
    ref_v, ref_g = reference_sequential(s.astype(np.float64), g, k, 1.0, 1.0)
    assert np.all(ref_g != 0)
    for dtype in (np.float64, np.float32):
        tol = 1e-13 if dtype == np.float64 else 5e-6
        with numpy_path("numba"):
            v, gr = smooth_topk_svm_and_grad(
                s.astype(dtype)[None, :], np.array([g]), k=k, tau=1.0,
                alpha=1.0, reduction="none",
            )  # fmt: skip
        err = np.abs(gr[0].astype(np.float64) - ref_g) / np.abs(ref_g)
        assert float(np.max(err)) <= tol, (n, k, dtype, int(np.argmax(err)))
        assert abs(float(v[0]) - ref_v) <= tol * abs(ref_v)


@needs_numba
def test_compiled_exp_is_accurate():
    """The kernel's vector exp (Cody-Waite reduction, degree-13 Taylor polynomial,
    two powers of two) against NumPy's: within 2 ulp where normal, within one
    subnormal step below, 0 exactly where NumPy's is 0 (``-inf`` included)."""
    from arrayloss import _esp_numba

    rng = np.random.default_rng(4)
    x = np.concatenate([
        -rng.uniform(0, 760, 4000), -rng.uniform(0, 1, 4000),
        -rng.exponential(1e-9, 100), -np.logspace(-320, 2.8, 200),
        [0.0, -0.0, -np.inf, -1e300, -745.13, -745.14, -708.39, -708.4, -5e-324],
    ])  # fmt: skip
    x = np.concatenate([x, np.zeros(-len(x) % _esp_numba.W)])
    got = np.empty_like(x)
    _esp_numba.exp_lanes(x, got)
    ref = np.exp(x)
    normal = ref >= np.finfo(np.float64).smallest_normal
    assert np.all(np.abs(got - ref)[normal] <= 2 * np.spacing(ref[normal]))
    assert np.all(np.abs(got - ref)[~normal] <= 5e-324)
    assert np.array_equal(got == 0, ref == 0)
    assert np.any(~normal & (ref > 0))  # the subnormal range was tried


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_work_buffers_are_not_returned_or_shared(rng, dtype):
    """Results are the caller's own (the kernel's work arrays are its own, per
    call): a result survives the next call, and threads running at once get what
    each gets alone."""
    import threading

    zs = [(2 * rng.standard_normal((40, 50))).astype(dtype) for _ in range(4)]
    ys = [rng.integers(0, 50, 40) for _ in range(4)]
    with numpy_path("numba"):
        alone = [smooth_topk_svm_and_grad(z, y, k=3, reduction="none")
                 for z, y in zip(zs, ys, strict=True)]  # fmt: skip
        kept = [(v.copy(), g.copy()) for v, g in alone]
        got: list = [None] * 4

        def work(i: int) -> None:
            for _ in range(5):
                got[i] = smooth_topk_svm_and_grad(zs[i], ys[i], k=3, reduction="none")

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for (v, g), (v0, g0), res in zip(alone, kept, got, strict=True):
        np.testing.assert_array_equal(v, v0)  # not overwritten by later calls
        np.testing.assert_array_equal(g, g0)
        np.testing.assert_array_equal(res[0], v0)
        np.testing.assert_array_equal(res[1], g0)


@needs_numba
def test_compiled_large_k_uses_the_mean_tilt():
    """k above the monic bound (256): every row takes the Poisson-binomial factors."""
    rng = np.random.default_rng(2)
    z = 2 * rng.standard_normal((2, 300))
    y = np.array([4, 250])
    _assert_paths_agree(z, y, 260, 1.0, method="direct")


@needs_numba
def test_compiled_axis_weights_and_reductions(rng):
    z = rng.standard_normal((12, 3, 2)).astype(np.float32)  # classes on axis 0
    y = rng.integers(0, 12, (3, 2))
    w = rng.uniform(0, 2, (3, 2))
    res = {}
    for path in ("numba", "array"):
        with numpy_path(path):
            res[path] = smooth_topk_svm_and_grad(
                z, y, k=4, axis=0, weights=w, reduction="sum"
            )
    (v, g), (v0, g0) = res["numba"], res["array"]
    assert g.shape == z.shape
    assert g.dtype == np.float32
    np.testing.assert_allclose(v, v0, rtol=1e-5)
    np.testing.assert_allclose(g, g0, rtol=0, atol=1e-6 * np.max(np.abs(g0)))


if __name__ == "__main__":  # the accuracy table of the report
    for dt in (np.float64, np.float32):
        for name in FAMILIES:
            rng = np.random.default_rng([FAMILIES.index(name), 7])
            for n, k, tau in FAST_CASES:
                _check_case(name, dt, n, k, tau, rng)
            rng = np.random.default_rng([FAMILIES.index(name), 13])
            for n, k in [(1000, 5), (1000, 50), (300, 10)]:
                _check_case(name, dt, n, k, 1.0, rng, methods=("auto", "direct", "fft"))
    print("family dtype method: loss rel / grad normwise rel")
    for key in sorted(MEASURED):
        print(*key, "{:.1e} / {:.1e}".format(*MEASURED[key]))

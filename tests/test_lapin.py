"""Lapin, Hein & Schiele's top-k losses: reference values, identities, gradients
(finite differences, and a brute-force maximisation for the top-k entropy), ties,
extreme scores and validation messages."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_allclose, covering, to_numpy
from scipy.optimize import minimize

import arrayloss as al
from arrayloss._kinks._lapin import KINKS
from arrayloss.losses import _lapin as L

S = np.array([1.0, 2.5, -0.3, 0.7, 3.1])
Y = 2

PAIRS = {
    "topk_hinge_alpha": (L.topk_hinge_alpha, L.topk_hinge_alpha_and_grad),
    "topk_hinge_beta": (L.topk_hinge_beta, L.topk_hinge_beta_and_grad),
    "topk_entropy": (L.topk_entropy, L.topk_entropy_and_grad),
    "truncated_topk_entropy": (
        L.truncated_topk_entropy,
        L.truncated_topk_entropy_and_grad,
    ),
}
NAMES = tuple(PAIRS)

# docs/design/refvalues.txt, "Lapin top-k losses": k -> (alpha, beta, entropy, truncated)
REF = {
    1: (4.4, 4.4, 3.985205162, 3.985205162),
    2: (4.1, 4.1, 3.976169153, 3.171038668),
    3: (3.5, 3.5, 3.805887839, 1.999800008),
}
# docs/design/refvalues.txt prints 10 significant digits; the hinges are exact decimals
REF_RTOL = {"topk_hinge_alpha": 1e-12, "topk_hinge_beta": 1e-12}


# ----------------------------------------------------------------- NumPy oracles


def _competitors(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``b_j = s_j - s_y`` for ``j != y``, sorted decreasing, ``(n, C - 1)``."""
    rows = np.arange(len(y))
    b = z - z[rows, y][:, None]
    b[rows, y] = -np.inf
    return -np.sort(-b, axis=1)[:, :-1]


def _ce(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    m = z.max(axis=1, keepdims=True)
    return np.log(np.exp(z - m).sum(axis=1)) + m[:, 0] - z[np.arange(len(y)), y]


def _crammer_singer(z: np.ndarray, y: np.ndarray, margin: float = 1.0) -> np.ndarray:
    return np.maximum(0.0, margin + _competitors(z, y)[:, 0])


def _entropy_brute(b: np.ndarray, k: int) -> tuple[float, np.ndarray]:
    """Maximise the top-k entropy objective over Δ_k numerically (SLSQP)."""
    m = b.size

    tiny = 1e-300

    def neg(x: np.ndarray) -> float:
        # SLSQP may step slightly outside Δ_k: evaluate on its closure
        x = np.maximum(x, tiny)
        r = max(1 - x.sum(), tiny)
        return -(b @ x - r * np.log(r) - np.sum(x * np.log(x)))

    def neg_grad(x: np.ndarray) -> np.ndarray:
        x = np.maximum(x, tiny)
        return -(b + np.log(max(1 - x.sum(), tiny)) - np.log(x))

    cons = [
        {"type": "ineq", "fun": lambda x: 1 - 1e-12 - x.sum()},
        {"type": "ineq", "fun": lambda x: x.sum() / k - x},
    ]
    best = None
    for x0 in (np.full(m, 0.5 / m), np.full(m, 0.9 / m)):
        res = minimize(
            neg, x0, jac=neg_grad, method="SLSQP", constraints=cons,
            bounds=[(tiny, 1.0)] * m, options={"ftol": 1e-15, "maxiter": 1000},
        )  # fmt: skip
        if best is None or res.fun < best.fun:
            best = res
    return -best.fun, best.x


def _fd_grad(f, z: np.ndarray, y: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central differences of the per-sample losses, row by row."""
    g = np.empty_like(z)
    for j in range(z.shape[1]):
        e = np.zeros_like(z)
        e[:, j] = h
        g[:, j] = (f(z + e, y) - f(z - e, y)) / (2 * h)
    return g


def _away_from_kinks(
    rng: np.random.Generator, name: str, n: int, c: int, params: dict, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    z = rng.normal(scale=scale, size=(4 * n, c))
    y = rng.integers(0, c, size=4 * n)
    if name in KINKS:
        keep = KINKS[name](z, y, params) > 1e-3
        z, y = z[keep], y[keep]
    assert len(y) >= n
    return z[:n], y[:n]


# ------------------------------------------------------------- reference values


@pytest.mark.parametrize("k", sorted(REF))
def test_reference_values(backend, k):
    for dtype, tol in ((np.float64, 1e-9), (np.float32, 1e-5)):
        s = backend.asarray(S[None], dtype)
        y = backend.asarray(np.array([Y]))
        for want, name in zip(REF[k], NAMES, strict=True):
            value, grad = PAIRS[name][1](s, y, k=k)
            rtol = tol if dtype == np.float32 else REF_RTOL.get(name, tol)
            assert_allclose(value, want, rtol=rtol)
            assert_allclose(PAIRS[name][0](s, y, k=k), want, rtol=rtol)
            assert to_numpy(value).dtype == dtype
            assert to_numpy(grad).dtype == dtype


def test_reference_gradients_hinges(backend):
    s = backend.asarray(S[None])
    y = backend.asarray(np.array([Y]))
    # competitors by score: class 4 (3.1), 1 (2.5), 0 (1.0), 3 (0.7)
    want = {
        1: [0, 0, -1, 0, 1],
        2: [0, 0.5, -1, 0, 0.5],
        3: [1 / 3, 1 / 3, -1, 0, 1 / 3],
    }
    for k, g in want.items():
        for f in (L.topk_hinge_alpha_and_grad, L.topk_hinge_beta_and_grad):
            assert_allclose(f(s, y, k=k)[1], [g], rtol=1e-12, atol=1e-15)


def test_reference_gradients_entropies():
    b = _competitors(S[None], np.array([Y]))[0]
    for k in (1, 2, 3, 4):
        _, x = _entropy_brute(b, k)
        want = np.zeros(5)
        want[[4, 1, 0, 3]] = x  # b sorted: classes 4, 1, 0, 3
        want[Y] = -x.sum()
        g = L.topk_entropy_and_grad(S[None], np.array([Y]), k=k)[1][0]
        np.testing.assert_allclose(g, want, atol=1e-6)
    # truncated, k=2: class 4 is dropped, the rest is a softmax against "1 +"
    g = L.truncated_topk_entropy_and_grad(S[None], np.array([Y]), k=2)[1][0]
    e = np.exp(S - S[Y])
    e[4] = 0.0
    want = e / e.sum()
    want[Y] -= 1
    np.testing.assert_allclose(g, want, rtol=1e-12, atol=1e-15)


# ----------------------------------------------------------------- identities


def test_k1_identities(backend, rng):
    z = rng.normal(scale=3.0, size=(40, 6))
    y = rng.integers(0, 6, size=40)
    s, t = backend.asarray(z), backend.asarray(y)
    cs = _crammer_singer(z, y)
    for f in (L.topk_hinge_alpha, L.topk_hinge_beta):
        assert_allclose(f(s, t, k=1, reduction="none"), cs, rtol=1e-12, atol=1e-12)
        v = f(s, t, k=1, margin=0.25, reduction="none")
        assert_allclose(v, _crammer_singer(z, y, 0.25), rtol=1e-12, atol=1e-12)
    ce, ce_grad = al.cross_entropy_and_grad(s, t, reduction="none")
    for f in (L.topk_entropy_and_grad, L.truncated_topk_entropy_and_grad):
        v, g = f(s, t, k=1, reduction="none")
        assert_allclose(v, to_numpy(ce), rtol=1e-12)
        assert_allclose(g, to_numpy(ce_grad), rtol=1e-10, atol=1e-15)


def test_orderings(rng):
    z = rng.normal(scale=2.0, size=(200, 7))
    y = rng.integers(0, 7, size=200)
    ce = _ce(z, y)
    prev = {}
    for k in range(1, 7):
        alpha = L.topk_hinge_alpha(z, y, k=k, reduction="none")
        beta = L.topk_hinge_beta(z, y, k=k, reduction="none")
        ent = L.topk_entropy(z, y, k=k, reduction="none")
        trunc = L.truncated_topk_entropy(z, y, k=k, reduction="none")
        assert np.all(beta >= alpha - 1e-12)
        assert np.all(ent <= ce + 1e-12)
        assert np.all(trunc <= ce + 1e-12)
        assert np.all(trunc > 0)
        assert np.all(ent > 0)
        # Δ_{k+1} ⊂ Δ_k, and a mean of the top k sorted values falls with k
        for name, v in (("a", alpha), ("b", beta), ("e", ent), ("t", trunc)):
            if name in prev:
                assert np.all(v <= prev[name] + 1e-12), (name, k)
            prev[name] = v


def test_hinges_against_direct_formula(rng):
    z = rng.normal(scale=2.0, size=(100, 8))
    y = rng.integers(0, 8, size=100)
    b = _competitors(z, y)
    for k in (1, 3, 7):
        for margin in (0.0, 1.0, 2.5):
            a = margin + b[:, :k]
            alpha = L.topk_hinge_alpha(z, y, k=k, margin=margin, reduction="none")
            beta = L.topk_hinge_beta(z, y, k=k, margin=margin, reduction="none")
            np.testing.assert_allclose(alpha, np.maximum(0, a.mean(1)), atol=1e-12)
            np.testing.assert_allclose(beta, np.maximum(0, a).sum(1) / k, atol=1e-12)


def test_entropy_closed_form_at_largest_k(rng):
    # k = C - 1 caps every competitor: log(1 + k exp(mean b))
    z = rng.normal(scale=3.0, size=(50, 6))
    y = rng.integers(0, 6, size=50)
    b = _competitors(z, y)
    want = np.log1p(5 * np.exp(b.mean(axis=1)))
    got = L.topk_entropy(z, y, k=5, reduction="none")
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_truncated_against_direct_formula(rng):
    z = rng.normal(scale=2.0, size=(100, 6))
    y = rng.integers(0, 6, size=100)
    b = _competitors(z, y)
    for k in range(1, 6):
        want = np.log1p(np.exp(b[:, k - 1 :]).sum(axis=1))
        got = L.truncated_topk_entropy(z, y, k=k, reduction="none")
        np.testing.assert_allclose(got, want, rtol=1e-12)


# ------------------------------------------------------------------ gradients


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("c", "k"), [(2, 1), (4, 1), (4, 2), (4, 3), (7, 3), (9, 5)])
def test_gradient_finite_differences(rng, name, c, k):
    value, value_and_grad = PAIRS[name]
    for scale in (0.3, 3.0, 20.0):
        params = {"k": k}
        z, y = _away_from_kinks(rng, name, 30, c, params, scale)
        _, g = value_and_grad(z, y, k=k, reduction="none")
        fd = _fd_grad(lambda a, b: value(a, b, k=k, reduction="none"), z, y)
        np.testing.assert_allclose(g, fd, atol=1e-7, rtol=1e-6)
        np.testing.assert_allclose(g.sum(axis=1), 0.0, atol=1e-12)


@pytest.mark.parametrize("margin", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("name", ["topk_hinge_alpha", "topk_hinge_beta"])
def test_hinge_gradient_with_margin(rng, name, margin):
    value, value_and_grad = PAIRS[name]
    params = {"k": 3, "margin": margin}
    z, y = _away_from_kinks(rng, name, 30, 6, params, 1.0)
    _, g = value_and_grad(z, y, reduction="none", **params)
    fd = _fd_grad(lambda a, b: value(a, b, reduction="none", **params), z, y)
    np.testing.assert_allclose(g, fd, atol=1e-8)


@pytest.mark.parametrize(("c", "k"), [(3, 1), (3, 2), (4, 2), (5, 2), (5, 3), (6, 4)])
def test_topk_entropy_against_brute_force(rng, c, k):
    for scale in (0.5, 2.0, 4.0):
        z = rng.normal(scale=scale, size=(6, c))
        y = rng.integers(0, c, size=6)
        v, g = L.topk_entropy_and_grad(z, y, k=k, reduction="none")
        for i in range(len(y)):
            others = np.delete(np.arange(c), y[i])
            want, x = _entropy_brute(z[i, others] - z[i, y[i]], k)
            assert v[i] == pytest.approx(want, abs=1e-9)
            np.testing.assert_allclose(g[i, others], x, atol=2e-5)
            assert g[i, y[i]] == pytest.approx(-g[i, others].sum(), abs=1e-14)


def test_gradient_reduction_and_weights(rng):
    z = rng.normal(size=(10, 6))
    y = rng.integers(0, 6, size=10)
    w = rng.uniform(0.5, 2.0, size=10)
    for name in NAMES:
        value_and_grad = PAIRS[name][1]
        _, rows = value_and_grad(z, y, k=2, reduction="none")
        v_sum, g_sum = value_and_grad(z, y, k=2, reduction="sum", weights=w)
        v_mean, g_mean = value_and_grad(z, y, k=2, weights=w)
        np.testing.assert_allclose(g_sum, w[:, None] * rows, rtol=1e-12)
        np.testing.assert_allclose(g_mean, g_sum / w.sum(), rtol=1e-12)
        np.testing.assert_allclose(v_mean, v_sum / w.sum(), rtol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_backends_match_numpy(backend, rng, name):
    value_and_grad = PAIRS[name][1]
    z = rng.normal(scale=2.0, size=(3, 4, 7))
    y = rng.integers(0, 7, size=(3, 4))
    want_v, want_g = value_and_grad(z, y, k=3, reduction="none")
    s, t = backend.asarray(z), backend.asarray(y)
    v, g = value_and_grad(s, t, k=3, reduction="none")
    assert_allclose(v, want_v, rtol=1e-12)
    assert_allclose(g, want_g, rtol=1e-12, atol=1e-15)
    # class axis first
    zt, s0 = np.moveaxis(z, -1, 0), backend.asarray(np.moveaxis(z, -1, 0))
    v0, g0 = value_and_grad(s0, t, k=3, axis=0, reduction="none")
    assert_allclose(v0, want_v, rtol=1e-12)
    assert_allclose(g0, np.moveaxis(want_g, -1, 0), rtol=1e-12, atol=1e-15)
    assert zt.shape == tuple(g0.shape)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("reduction", ["sum", "none"])
def test_empty_batch_on_every_backend(backend, name, reduction):
    """No rows: on torch, `topk_hinge_alpha` and `topk_entropy` raised torch's
    RuntimeError (``Tensor.size`` is a method, so the empty guard never fired)."""
    value_and_grad = PAIRS[name][1]
    v, g = value_and_grad(
        backend.asarray(np.zeros((0, 5))), backend.asarray(np.zeros(0, dtype=np.int64)),
        k=2, reduction=reduction,
    )  # fmt: skip
    assert tuple(g.shape) == (0, 5)
    if reduction == "sum":
        assert float(to_numpy(v)) == 0.0
    else:
        assert tuple(v.shape) == (0,)


# ------------------------------------------------------ ties and extreme scores


def test_tie_subgradients(backend):
    # competitors 0 and 1 tie at rank k = 1: the lower class index is taken
    z = backend.asarray(np.array([[2.0, 2.0, 0.5, 1.0]]))
    y = backend.asarray(np.array([2]))
    for f in (L.topk_hinge_alpha_and_grad, L.topk_hinge_beta_and_grad):
        v, g = f(z, y, k=1)
        assert float(to_numpy(v)) == pytest.approx(2.5)
        np.testing.assert_array_equal(to_numpy(g), [[1.0, 0.0, -1.0, 0.0]])
    # truncated, k = 2: the lower index of the tie is dropped, the other kept
    v, g = L.truncated_topk_entropy_and_grad(z, y, k=2)
    e = np.exp(to_numpy(z)[0] - 0.5)
    assert float(to_numpy(v)) == pytest.approx(np.log1p(e[1] + e[3]))
    g = to_numpy(g)
    assert g[0, 0] == 0.0
    assert g[0, 1] > 0.0
    # top-k entropy does not depend on the tie-breaking: the two get equal mass
    g = to_numpy(L.topk_entropy_and_grad(z, y, k=2)[1])
    assert g[0, 0] == pytest.approx(g[0, 1], rel=1e-14)
    # a three-way tie across rank k = 3 (label 0, one competitor above): classes
    # 2 and 4 are in, 5 is out; with k = 2 only class 2 is
    z3 = backend.asarray(np.array([[0.0, 3.0, 1.0, -1.0, 1.0, 1.0]]))
    y3 = backend.asarray(np.array([0]))
    for k, members in ((3, [1, 2, 4]), (2, [1, 2])):
        want = np.zeros((1, 6))
        want[0, members], want[0, 0] = 1 / k, -len(members) / k
        for f in (L.topk_hinge_alpha_and_grad, L.topk_hinge_beta_and_grad):
            np.testing.assert_allclose(to_numpy(f(z3, y3, k=k)[1]), want, rtol=1e-15)
    # truncated, k = 3: the two largest (classes 1, 2) dropped, 3, 4, 5 kept
    g = to_numpy(L.truncated_topk_entropy_and_grad(z3, y3, k=3)[1])
    np.testing.assert_array_equal(g[0, 1:] > 0, [False, False, True, True, True])
    # exactly at the hinge the subgradient is zero
    z = np.array([[0.0, 1.0, 0.0]])
    for f in (L.topk_hinge_alpha_and_grad, L.topk_hinge_beta_and_grad):
        v, g = f(z, np.array([1]), k=1)
        assert float(v) == 0.0
        np.testing.assert_array_equal(g, np.zeros((1, 3)))


@pytest.mark.parametrize(("backend", "name"), covering(NAMES), indirect=["backend"])
def test_finite_at_extreme_scores_float32(backend, name):
    z = np.array(
        [
            [1e4, -1e4, 0.0, 3.0, -5.0],
            [-1e4, 1e4, 1e4, -1e4, 0.0],
            [1e4, 1e4, 1e4, 1e4, 1e4],
            [-1e4, -1e4, 2.0, -1e4, 1e4],
        ]
    )
    y = np.array([1, 0, 3, 2])
    s, t = backend.asarray(z, np.float32), backend.asarray(y)
    for k in (1, 2, 4):
        v, g = PAIRS[name][1](s, t, k=k, reduction="none")
        v, g = to_numpy(v), to_numpy(g)
        assert v.dtype == np.float32
        assert g.dtype == np.float32
        assert np.all(np.isfinite(v))
        assert np.all(np.isfinite(g))
        want = PAIRS[name][0](z, y, k=k, reduction="none")
        np.testing.assert_allclose(v, want, rtol=1e-5, atol=1e-3)


def test_extreme_entropy_values():
    # one competitor far ahead: k = 2 caps it, so the loss is about b_[1] / 2
    z = np.array([[1e4, 0.0, 0.0, 0.0], [1e300, 0.0, 1.0, -1e300]])
    y = np.array([1, 1])
    v, g = L.topk_entropy_and_grad(z, y, k=2, reduction="none")
    assert np.all(np.isfinite(v))
    assert np.all(np.isfinite(g))
    b = np.array([0.0, 0.0])  # the uncapped rest of row 0
    c = 1e4 / 2 + 0.5 * np.log(2) + 0.5 * (np.log(np.exp(b).sum()) + np.log(2))
    assert v[0] == pytest.approx(c, rel=1e-15)
    np.testing.assert_allclose(g[0], [0.5, -1.0, 0.25, 0.25], atol=1e-15)


def test_inputs_not_modified(rng):
    z = rng.normal(size=(5, 6))
    y = rng.integers(0, 6, size=5)
    z0, y0 = z.copy(), y.copy()
    for name in NAMES:
        PAIRS[name][1](z, y, k=3)
    np.testing.assert_array_equal(z, z0)
    np.testing.assert_array_equal(y, y0)


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize("name", NAMES)
def test_validation(name):
    value = PAIRS[name][0]
    z, y = S[None], np.array([Y])
    with pytest.raises(
        ValueError, match=r"1 <= k <= n_classes - 1 \(got k=5, n_classes=5\)"
    ):
        value(z, y)  # the default k=5 needs six classes
    with pytest.raises(ValueError, match=r"\(got k=7, n_classes=5\)"):
        value(z, y, k=7)
    with pytest.raises(ValueError, match=r"`k` must be an integer >= 1 \(got k=0\)"):
        value(z, y, k=0)
    with pytest.raises(TypeError, match=r"`k` must be an integer \(got k=2.0\)"):
        value(z, y, k=2.0)
    with pytest.raises(TypeError, match=r"`k` must be an integer \(got k=True\)"):
        value(z, y, k=True)
    with pytest.raises(ValueError, match="takes integer class indices only"):
        value(z, np.eye(5)[[Y]], k=2)
    with pytest.raises(ValueError, match="needs at least 2 classes"):
        value(np.zeros((3, 1)), np.zeros(3, dtype=int), k=1)
    with pytest.raises(ValueError, match=r"class indices in \[0, 4\]"):
        value(z, np.array([5]), k=2)


@pytest.mark.parametrize("name", ["topk_hinge_alpha", "topk_hinge_beta"])
def test_margin_validation(name):
    value = PAIRS[name][0]
    z, y = S[None], np.array([Y])
    with pytest.raises(
        ValueError, match=r"`margin` must be non-negative \(got margin=-1\)"
    ):
        value(z, y, k=2, margin=-1)
    with pytest.raises(
        ValueError, match=r"`margin` must be non-negative \(got margin=nan\)"
    ):
        value(z, y, k=2, margin=float("nan"))
    with pytest.raises(TypeError, match=r"`margin` must be a real number"):
        value(z, y, k=2, margin="1")


@pytest.mark.parametrize("name", ["topk_entropy", "truncated_topk_entropy"])
def test_entropies_take_no_margin(name):
    with pytest.raises(TypeError, match="margin"):
        PAIRS[name][0](S[None], np.array([Y]), k=2, margin=1.0)

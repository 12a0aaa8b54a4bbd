"""50-digit mpmath references for the noise-robust and sparse losses, and the
adversarial row families they are checked on (used by test_robust.py and
test_sparse.py).

Each reference takes one row of scores and one target distribution (lists of
mpmath numbers) and evaluates the loss's defining formula directly, with none of
the rewriting the array code does: the sparse mappings' thresholds come from a
plain sort (sparsemax) or from bisection (entmax-1.5), and the Fenchel–Young losses
from ``Omega*(z) + Omega(t) - <z, t>``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mpmath as mp
import numpy as np

mp.mp.dps = 50

Row = list[Any]


def _mp(row: Any) -> Row:
    return [mp.mpf(float(v)) for v in row]


def softmax(z: Row) -> tuple[Row, Row, Row]:
    """Probabilities, log-probabilities and complements ``1 - p_j``, the last as
    the sum of the other probabilities (so that it keeps its digits where ``p_j``
    is within 1e-50 of 1; then also ``log p_j = log1p(-(1 - p_j))``)."""
    m = max(z)
    e = [mp.exp(v - m) for v in z]
    s = mp.fsum(e)
    p = [v / s for v in e]
    c = [mp.fsum(e[:j] + e[j + 1 :]) / s for j in range(len(e))]
    lp = [
        mp.log1p(-cj) if pj > 0.5 else mp.log(pj) for pj, cj in zip(p, c, strict=True)
    ]
    return p, lp, c


def focal(z: Row, t: Row, gamma: float = 2.0) -> Any:
    _, lp, c = softmax(z)
    return -mp.fsum(tj * cj**gamma * lj for tj, cj, lj in zip(t, c, lp, strict=True))


def generalized_cross_entropy(z: Row, t: Row, q: float = 0.7) -> Any:
    _, lp, _ = softmax(z)
    q = mp.mpf(q)  # 1 - p^q = -expm1(q log p): all digits where p is near 1
    return mp.fsum(-tj * mp.expm1(q * lj) / q for tj, lj in zip(t, lp, strict=True))


def poly1(z: Row, t: Row, epsilon: float = 1.0) -> Any:
    _, lp, c = softmax(z)
    ce = -mp.fsum(tj * lj for tj, lj in zip(t, lp, strict=True))
    # 1 - sum_j t_j p_j = sum_j t_j (1 - p_j)
    return ce + epsilon * mp.fsum(tj * cj for tj, cj in zip(t, c, strict=True))


def taylor_cross_entropy(z: Row, t: Row, order: int = 2) -> Any:
    _, _, c = softmax(z)
    terms = [mp.fsum(cj**i / i for i in range(1, order + 1)) for cj in c]
    return mp.fsum(tj * s for tj, s in zip(t, terms, strict=True))


def _rce(p: Row, t: Row, A: float) -> Any:
    return -mp.fsum(
        pj * (mp.log(tj) if tj > 0 else mp.mpf(A)) for pj, tj in zip(p, t, strict=True)
    )


def symmetric_cross_entropy(
    z: Row, t: Row, alpha: float = 0.1, beta: float = 1.0, A: float = -4.0
) -> Any:
    p, lp, _ = softmax(z)
    return alpha * -mp.fsum(
        tj * lj for tj, lj in zip(t, lp, strict=True)
    ) + beta * _rce(p, t, A)


def normalized_cross_entropy(z: Row, t: Row) -> Any:
    _, lp, _ = softmax(z)
    return mp.fsum(tj * lj for tj, lj in zip(t, lp, strict=True)) / mp.fsum(lp)


def nce_rce(
    z: Row, t: Row, alpha: float = 1.0, beta: float = 1.0, A: float = -4.0
) -> Any:
    p, _, _ = softmax(z)
    return alpha * normalized_cross_entropy(z, t) + beta * _rce(p, t, A)


def nce_mae(z: Row, t: Row, alpha: float = 1.0, beta: float = 1.0) -> Any:
    p, _, c = softmax(z)
    # |p_j - 1| = 1 - p_j for a one-hot target
    mae = mp.fsum(
        cj if tj == 1 else abs(pj - tj) for pj, cj, tj in zip(p, c, t, strict=True)
    )
    return alpha * normalized_cross_entropy(z, t) + beta * mae


def cross_entropy(z: Row, t: Row) -> Any:
    _, lp, _ = softmax(z)
    return -mp.fsum(tj * lj for tj, lj in zip(t, lp, strict=True))


def sparsemax(z: Row) -> Row:
    srt = sorted(z, reverse=True)
    total, k, best = mp.mpf(0), 0, mp.mpf(0)
    for i, v in enumerate(srt, 1):
        total += v
        if 1 + i * v > total:
            k, best = i, total
    tau = (best - 1) / k
    return [max(v - tau, mp.mpf(0)) for v in z]


def entmax15(z: Row) -> Row:
    """By bisection on ``tau``: ``sum (z/2 - tau)_+^2 = 1``, to 2^-300."""
    x = [v / 2 for v in z]
    lo, hi = max(x) - 1, max(x)
    for _ in range(300):
        mid = (lo + hi) / 2
        if mp.fsum(max(v - mid, 0) ** 2 for v in x) > 1:
            lo = mid
        else:
            hi = mid
    tau = (lo + hi) / 2
    return [max(v - tau, mp.mpf(0)) ** 2 for v in x]


def sparsemax_loss(z: Row, t: Row) -> Any:
    p = sparsemax(z)
    inner = mp.fsum(zj * (pj - tj) for zj, pj, tj in zip(z, p, t, strict=True))
    return inner - mp.fsum(v * v for v in p) / 2 + mp.fsum(v * v for v in t) / 2


def _tsallis15(p: Row) -> Any:
    return (1 - mp.fsum(v * mp.sqrt(v) for v in p)) / mp.mpf(0.75)


def entmax15_loss(z: Row, t: Row) -> Any:
    p = entmax15(z)
    inner = mp.fsum(zj * (pj - tj) for zj, pj, tj in zip(z, p, t, strict=True))
    return inner + _tsallis15(p) - _tsallis15(t)


REFS: dict[str, Callable[..., Any]] = {
    f.__name__: f
    for f in (
        focal, generalized_cross_entropy, poly1, taylor_cross_entropy,
        symmetric_cross_entropy, normalized_cross_entropy, nce_rce, nce_mae,
        sparsemax_loss, entmax15_loss,
    )
}  # fmt: skip


def families(dtype: Any, c: int = 6, seed: int = 7) -> dict[str, tuple[Any, Any]]:
    """``(logits, labels)`` row families of ``dtype``: random, huge spread
    (float64 +-1e4, float32 +-80), ties, near one-hot (the label, or another
    class, 30 above the rest)."""
    rng = np.random.default_rng(seed)
    n = 4
    y = rng.integers(0, c, size=n)
    spread = 1e4 if np.dtype(dtype) == np.float64 else 80.0
    ties = np.zeros((n, c))
    ties[1, :2] = 2.0  # two tied maxima
    ties[2] = 5.0
    ties[3, ::2] = -1.0
    near = rng.normal(size=(n, c))
    rows = np.arange(n)
    dominant = np.where(rows % 2 == 0, y, (y + 1) % c)
    near[rows, dominant] += 30.0
    return {
        "random": ((3.0 * rng.normal(size=(n, c))).astype(dtype), y),
        "huge": (rng.uniform(-spread, spread, size=(n, c)).astype(dtype), y),
        "ties": (ties.astype(dtype), y),
        "near_one_hot": (near.astype(dtype), y),
    }


def soft_labels(n: int, c: int, seed: int = 8) -> Any:
    """Dirichlet(0.5) rows, with some exact zeros (every other row keeps 3)."""
    rng = np.random.default_rng(seed)
    t = rng.dirichlet(np.full(c, 0.5), size=n)
    t[1::2, 3:] = 0.0
    return t / t.sum(axis=1, keepdims=True)


def reference(name: str, z: Any, t: Any, **params: Any) -> list[Any]:
    """The 50-digit loss of each row; ``t`` is ``(n,)`` labels or ``(n, C)``."""
    f = REFS[name]
    c = z.shape[1]
    out = []
    for i in range(z.shape[0]):
        if t.ndim == 1:
            ti = [mp.mpf(1) if j == t[i] else mp.mpf(0) for j in range(c)]
        else:
            ti = _mp(t[i])
        out.append(f(_mp(z[i]), ti, **params))
    return out


def rel_errors(values: Any, refs: list[Any]) -> Any:
    """Per-row relative error, against ``max(|reference|, tiny)`` of the values'
    dtype (a true value below the normal range cannot keep its relative digits);
    a zero reference needs an exact zero."""
    tiny = mp.mpf(float(np.finfo(np.asarray(values).dtype).tiny))
    out = []
    for v, r in zip(np.asarray(values, dtype=np.float64), refs, strict=True):
        if r == 0:
            out.append(0.0 if v == 0 else np.inf)
        else:
            out.append(float(abs(mp.mpf(float(v)) - r) / max(abs(r), tiny)))
    return np.array(out)


def reference_grad(name: str, z: Any, t: Any, **params: Any) -> Any:
    """d loss / d z of each row by mpmath's high-precision differentiation."""
    f = REFS[name]
    n, c = z.shape
    g = np.empty((n, c))
    for i in range(n):
        zi = _mp(z[i])
        if t.ndim == 1:
            ti = [mp.mpf(1) if j == t[i] else mp.mpf(0) for j in range(c)]
        else:
            ti = _mp(t[i])
        for j in range(c):

            def along(x: Any, j: int = j, zi: Row = zi, ti: Row = ti) -> Any:
                return f([x if k == j else v for k, v in enumerate(zi)], ti, **params)

            g[i, j] = float(mp.diff(along, zi[j]))
    return g


# Smooth top-k SVM (Berrada et al. 2018; used by test_topk.py and test_extremes.py).


def _esp_prefixes(ys: list, k: int) -> list[list]:
    """ESPs (degrees 0..k) of ``ys[:j]`` for j = 0..len(ys), in mpmath."""
    e = [mp.mpf(1)] + [mp.mpf(0)] * k
    out = [e[:]]
    for y in ys:
        for m in range(k, 0, -1):
            e[m] += y * e[m - 1]
        out.append(e[:])
    return out


def _softplus(r):
    return r + mp.log1p(mp.exp(-r)) if r > 0 else mp.log1p(mp.exp(r))


def reference_sequential(s, g: int, k: int, tau: float, alpha: float, *, dps: int = 50):
    """Loss and gradient, ``dps`` digits: sequential ESP recursion (prefix/suffix).

    Scores whose ``s / (k tau)`` reach ``1e310`` need ``dps`` beyond 310 + 50:
    ``log e_k - log e_{k-1}`` cancels the integer digits."""
    with mp.workdps(dps):
        n = len(s)
        kt = mp.mpf(k) * mp.mpf(tau)
        x = [mp.mpf(float(v)) / kt for v in s]
        idx = [j for j in range(n) if j != g]
        ys = [mp.exp(x[j]) for j in idx]
        pre = _esp_prefixes(ys, k)
        suf = _esp_prefixes(ys[::-1], k)[::-1]
        e = pre[-1]
        r = mp.mpf(alpha) / mp.mpf(tau) + mp.log(e[k]) - mp.log(e[k - 1]) - x[g]
        loss = mp.mpf(tau) * _softplus(r)
        sig = 1 / (1 + mp.exp(-r))
        grad = [mp.mpf(0)] * n
        for p, j in enumerate(idx):
            a, b = pre[p], suf[p + 1]
            c1 = mp.mpf(0)  # e_{k-1}(y without j)
            for i in range(k):
                c1 += a[i] * b[k - 1 - i]
            c2 = mp.mpf(0)  # e_{k-2}(y without j)
            for i in range(k - 1):
                c2 += a[i] * b[k - 2 - i]
            grad[j] = sig / k * ys[p] * (c1 / e[k] - c2 / e[k - 1])
        grad[g] = -sig / k
        return float(loss), np.array([float(v) for v in grad])


# The Keras 2.10 catalogue (`arrayloss.keras`; used by test_keras.py): each loss's
# formula on q = softmax(z), with Keras' clipping and ε = 1e-7 (its float64 value).

KERAS_EPS = 1e-7


def keras(name: str, z: Row, t: Row) -> Any:
    """The loss ``keras.<name>`` of one row (default parameters); ``t`` binary
    rows are Keras' hinge labels ``2t - 1``."""
    c = len(z)
    p, lp, _ = softmax(z)
    eps = mp.mpf(KERAS_EPS)
    d = [pj - tj for pj, tj in zip(p, t, strict=True)]
    pt = list(zip(p, t, strict=True))
    if name == "categorical_crossentropy":
        return -mp.fsum(tj * lj for tj, lj in zip(t, lp, strict=True))
    if name == "kl_divergence":
        tc = [min(max(tj, eps), 1) for tj in t]
        return mp.fsum(
            a * (mp.log(a) - mp.log(max(pj, eps)))
            for (pj, _), a in zip(pt, tc, strict=True)
        )
    if name == "poisson":
        return mp.fsum(pj - tj * mp.log(pj + eps) for pj, tj in pt) / c
    if name == "categorical_hinge":
        pos = mp.fsum(tj * pj for pj, tj in pt)
        return max(max((1 - tj) * pj for pj, tj in pt) - pos + 1, 0)
    if name in ("hinge", "squared_hinge"):
        ts = [2 * tj - 1 for tj in t] if all(tj in (0, 1) for tj in t) else t
        m = [max(1 - a * pj, 0) for a, pj in zip(ts, p, strict=True)]
        return mp.fsum(m if name == "hinge" else [x * x for x in m]) / c
    if name == "mean_squared_error":
        return mp.fsum(x * x for x in d) / c
    if name == "mean_absolute_error":
        return mp.fsum(abs(x) for x in d) / c
    if name == "mean_absolute_percentage_error":
        return (
            100
            * mp.fsum(abs(x) / max(abs(tj), eps) for x, tj in zip(d, t, strict=True))
            / c
        )
    if name == "mean_squared_logarithmic_error":
        a = [mp.log1p(max(pj, eps)) - mp.log1p(max(tj, eps)) for pj, tj in pt]
        return mp.fsum(x * x for x in a) / c
    if name == "log_cosh":
        return mp.fsum(mp.log(mp.cosh(x)) for x in d) / c
    if name == "huber":  # delta = 1
        return (
            mp.fsum(x * x / 2 if abs(x) <= 1 else abs(x) - mp.mpf(1) / 2 for x in d) / c
        )
    if name == "cosine_similarity":  # tf.math.l2_normalize: floor 1e-12 on |x|^2
        floor = mp.mpf(1e-12)
        nq = mp.sqrt(max(mp.fsum(x * x for x in p), floor))
        nt = mp.sqrt(max(mp.fsum(x * x for x in t), floor))
        return -mp.fsum(pj * tj for pj, tj in pt) / (nq * nt)
    raise KeyError(name)


def keras_and_grad(name: str, z: Any, t: Any) -> tuple[Any, list[Any]]:
    """`keras` of one row and its gradient in the scores (mpmath's
    high-precision differentiation), from float rows."""
    zi, ti = _mp(z), _mp(t)

    def along(x: Any, j: int) -> Any:
        return keras(name, [x if k == j else v for k, v in enumerate(zi)], ti)

    return keras(name, zi, ti), [
        mp.diff(lambda x, j=j: along(x, j), zi[j]) for j in range(len(zi))
    ]

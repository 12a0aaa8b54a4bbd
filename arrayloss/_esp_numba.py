r"""Numba kernels of the smooth top-k SVM, row by row (imported lazily).

Only `arrayloss._esp_compiled` imports this module, and only when a NumPy float32 or
float64 smooth top-k loss is computed with numba installed; ``import arrayloss``
never imports numba.

Per row, with :math:`x_j = s_j / (k\tau)` over the classes :math:`j \ne y`, the work
is a sequential product of the linear factors :math:`a_j + b_j X` truncated at
degree ``k``, in float64 whatever the input dtype:

- *prefix* (forward) table :math:`F_i = \prod_{j < i}(a_j + b_j X)`, degrees
  ``0..k-1`` stored for every ``i`` (``(C+1) k`` numbers), plus the running degree
  ``k``: the root coefficients :math:`q_k, q_{k-1}`;
- *suffix* (backward) sweep :math:`S_i = \prod_{j > i}(a_j + b_j X)`, degrees
  ``0..k-1``, kept in one vector, and for every ``j`` the leave-one-out
  coefficients

  .. math::

      A_j = [X^{k-1}]\, F_j S_j = \sum_{l=0}^{k-1} F_{j,l} S_{j,k-1-l}, \qquad
      B_j = [X^{k-2}]\, F_j S_j ,

  so that :math:`\pi^{(k)}_j = b_j A_j / q_k` and
  :math:`\pi^{(k-1)}_j = b_j B_j / q_{k-1}`.

Every number formed is a sum of products of non-negative numbers (no "leave one
out" by division or subtraction from the full product, which is unstable), so each
is accurate to ``O(C k u)`` relative; the only subtraction is the final
:math:`\pi^{(k)}_j - \pi^{(k-1)}_j \ge 0`, whose relative gap is at least ``1/k``
(Newton's inequalities).  ``O(C k)`` work per row: ``k`` multiply-adds per entry
forward, ``3k`` backward.

Tilts (as in `arrayloss.esp`): the default is the lse tilt with monic factors
``1 + y_j X``, ``y_j = k exp(x_j) / sum exp(x)`` (so ``sum y = k`` and every
coefficient stays below ``e^k``), for ``k <= MONIC_MAX_K``; a row whose
``min(q_k, q_{k-1})`` falls below ``sqrt(tiny)`` (underflow), and every row for larger
``k``, is computed with the Poisson-binomial factors ``a_j = sigma(-x_j - t)``,
``b_j = sigma(x_j + t)`` at the mean-matching tilt ``sum_j b_j = k - 1/2``
(safeguarded Newton, the same iteration as `arrayloss.esp._mean_tilt`), where every
coefficient is a probability; such a row is first shifted by its k-th largest entry,
so that the tilt is not on the coarse grid of ``|x| ~ 1e30``.

The lse-tilt rows go in blocks of ``L``, one row per lane of each loop over the
block (`smooth_topk_rows`), which LLVM vectorises; there the prefix table is not
stored whole: the forward pass keeps a checkpoint every ``S`` classes
(`_prefix_run`), and the backward sweep rebuilds one segment's ``S`` prefixes at a
time from its checkpoint (`_prefix_table`, the same operations, hence the same
bits) while it walks the segment down with the suffix (`_leave_one_out`).  The
mean-tilt rows go alone (`_row_mean_tilt`, `_forward`, `_backward`).  The exponentials of the leaves come
from NumPy's vectorised ``exp`` (`arrayloss._esp_compiled`).

References
----------
.. [1] L. Berrada, A. Zisserman and M. P. Kumar, "Smooth Loss Functions for Deep
   Top-k Classification", ICLR 2018, arXiv:1802.07595.
.. [2] Y. H. Wang, "On the number of successes in independent trials",
   Statistica Sinica 3 (1993): the Poisson-binomial distribution and its mode.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

MONIC_MAX_K = 256
"""Largest ``k`` on the lse-tilt monic path (``e^k`` stays far below float64's max)."""

_TINY = float(np.finfo(np.float64).smallest_normal)
_FLOOR = math.sqrt(_TINY)  # q_k, q_{k-1} below this: redo with the mean-matching tilt
_BOUND = math.log(float(np.finfo(np.float64).max)) - 8.0
_NEWTON_TOL = 0.25
_NEWTON_STEPS = 60

_jit = njit(cache=True, nogil=True, error_model="numpy")


@_jit
def _softplus(r: float) -> float:
    return max(r, 0.0) + math.log1p(math.exp(-abs(r)))


@_jit
def _sigmoid(r: float) -> float:
    e = math.exp(-abs(r))
    return 1.0 / (1.0 + e) if r >= 0 else e / (1.0 + e)


@_jit
def _mean_tilt(x: np.ndarray, g: int, k: int, work: np.ndarray) -> float:
    """Per-row ``t`` with ``sum_{j != g} sigmoid(x_j + t) ~= k - 1/2`` (within 1/4).

    The iteration of `arrayloss.esp._mean_tilt` (eager form) for one row: start at
    ``log k - logsumexp`` of the entries without the ``k - 1`` largest, clipped to
    the bracket ``[log c - lse, log c - log(n - c) - min x]``; safeguarded Newton on
    ``log sum sigmoid``, bisecting when a step leaves the bracket; the best tilt
    seen (an overshoot ranked at a quarter of its distance) is returned.
    """
    n = x.shape[0]
    target = k - 0.5
    log_c = math.log(target)
    cnt = 0
    m = -np.inf
    xmin = np.inf
    for j in range(n):
        if j != g:
            work[cnt] = x[j]
            cnt += 1
            m = max(m, x[j])
            xmin = min(xmin, x[j])
    s = 0.0
    for j in range(cnt):
        s += math.exp(work[j] - m)
    lse = m + math.log(s)
    lo = log_c - lse
    hi = log_c - math.log(cnt - target) - xmin
    srt = np.sort(work[:cnt])
    keep = cnt - (k - 1)
    m2 = srt[keep - 1]
    s = 0.0
    for j in range(keep):
        s += math.exp(srt[j] - m2)
    start = math.log(k) - (m2 + math.log(s))
    t = min(max(start, lo), hi) if math.isfinite(start) else lo
    best_t, best_err = t, np.inf
    for _ in range(_NEWTON_STEPS):
        f = 0.0
        fp = 0.0
        for j in range(n):
            if j != g:
                y = math.exp(min(x[j] + t, _BOUND))
                a = 1.0 / (1.0 + y)
                sj = y * a
                f += sj
                fp += sj * a
        err = abs(f - target)
        score = err if f < target else 0.25 * err
        if score < best_err:
            best_t, best_err = t, score
        if f < target:
            lo = t
        else:
            hi = t
        if err <= _NEWTON_TOL:
            break
        f_safe = max(f, _TINY)
        step = (log_c - math.log(f_safe)) * (f_safe / max(fp, _TINY))
        t_new = t + step
        if not (lo < t_new < hi):
            t_new = 0.5 * (lo + hi)
        t = t_new
    return best_t


@_jit
def _sigmoid_factors(
    x: np.ndarray, g: int, t: float, a: np.ndarray, b: np.ndarray
) -> None:
    """``a_j = 1/(1+y)``, ``b_j = y/(1+y)``, ``y = exp(min(x_j + t, bound))``; the
    label is the identity factor ``a = 1, b = 0``."""
    for j in range(x.shape[0]):
        y = math.exp(min(x[j] + t, _BOUND))
        aj = 1.0 / (1.0 + y)
        a[j] = aj
        b[j] = y * aj
    a[g] = 1.0
    b[g] = 0.0


@_jit
def _forward(
    a: np.ndarray, b: np.ndarray, k: int, F: np.ndarray
) -> tuple[float, float]:
    """Prefix table ``F[i, :] = prod_{j < i}(a_j + b_j X)`` (degrees ``0..k-1``);
    returns ``(q_k, q_{k-1})`` of the whole product."""
    n = b.shape[0]
    for m in range(k):
        F[0, m] = 0.0
    F[0, 0] = 1.0
    qk = 0.0
    for i in range(n):
        ai, bi = a[i], b[i]
        prev = F[i]
        cur = F[i + 1]
        qk = ai * qk + bi * prev[k - 1]
        cur[0] = ai * prev[0]
        for m in range(1, k):
            cur[m] = ai * prev[m] + bi * prev[m - 1]
    return qk, F[n, k - 1]


@_jit
def _backward(
    a: np.ndarray,
    b: np.ndarray,
    k: int,
    F: np.ndarray,
    w1: float,
    w2: float,
    r: np.ndarray,
    out: np.ndarray,
) -> None:
    """``out[j] = b_j max(w1 A_j - w2 B_j, 0)`` (``A_j, B_j``: degrees ``k-1``, ``k-2``
    of the product of every factor but ``j``), by a suffix sweep.

    ``r`` holds the suffix product reversed, ``r[l] = S[k-1-l]``, so that both
    leave-one-out coefficients are forward dot products with a row of ``F``.
    """
    n = b.shape[0]
    for m in range(k):
        r[m] = 0.0
    r[k - 1] = 1.0
    for j in range(n - 1, -1, -1):
        fj = F[j]
        A = 0.0
        B = 0.0
        for m in range(k - 1):
            fm = fj[m]
            A += fm * r[m]
            B += fm * r[m + 1]
        A += fj[k - 1] * r[k - 1]
        bj = b[j]
        v = w1 * A - w2 * B
        out[j] = bj * v if v > 0.0 else 0.0
        aj = a[j]
        for m in range(k - 1):
            r[m] = aj * r[m] + bj * r[m + 1]
        r[k - 1] *= aj


@_jit
def _row_mean_tilt(
    row: np.ndarray,
    xg: float,
    g: int,
    k: int,
    tau: float,
    alpha: float,
    out: np.ndarray,
) -> float:
    """One row alone with the Poisson-binomial factors at the mean-matching tilt:
    returns the loss and writes the gradient row into ``out`` (if not empty).

    The row is first shifted by its k-th largest entry ``c`` (``rho`` moves by
    ``c``, the gradient not at all): with scores of 1e30 the tilt ``t ~ -c`` would
    sit on a grid of spacing ``u |c|``, too coarse to reach the target when the
    entries that matter are tied.
    """
    n = row.shape[0]
    x = np.empty(n)
    cnt = 0
    for j in range(n):
        if j != g:
            x[cnt] = row[j]
            cnt += 1
    c = np.sort(x[:cnt])[cnt - k]
    for j in range(n):
        x[j] = row[j] - c  # -inf at the label stays
    xg = xg - c
    a = np.empty(n)
    b = np.empty(n)
    F = np.empty((n + 1, k))
    t = _mean_tilt(x, g, k, np.empty(n))
    _sigmoid_factors(x, g, t, a, b)
    qk, qk1 = _forward(a, b, k, F)
    # Below the floor only if the tilt could not reach the target (|x| ~ 1e150):
    # clamping keeps the row finite.
    qk = max(qk, _FLOOR)
    qk1 = max(qk1, _FLOOR)
    rr = alpha / tau + (math.log(qk / qk1) - t) - xg
    if out.shape[0] > 0:
        w = _sigmoid(rr) / k
        _backward(a, b, k, F, w / qk, w / qk1, np.empty(k), out)
        out[g] = -w
    return tau * _softplus(rr)


@_jit
def _leaves(
    E: np.ndarray, i0: int, nl: int, k: int, b: np.ndarray, s: np.ndarray
) -> None:
    """``b[j, p] = k E[i0 + p, j] / sum_j E[i0 + p, j]`` (a sequential sum per lane)
    and ``s[p]`` the scale ``k / sum``; the lanes past ``nl`` are padded with ones."""
    n, L = b.shape
    for p in range(L):
        s[p] = 0.0
    for j in range(n):
        for p in range(nl):
            e = E[i0 + p, j]
            b[j, p] = e
            s[p] += e
        for p in range(nl, L):
            b[j, p] = 1.0
            s[p] += 1.0
    for p in range(L):
        s[p] = k / s[p]
    for j in range(n):
        for p in range(L):
            b[j, p] *= s[p]


@_jit
def _prefix_run(b: np.ndarray, j0: int, j1: int, F: np.ndarray, qk: np.ndarray) -> None:
    """Multiply the running prefix ``F = prod_{i < j0}(1 + b_i X)`` (degrees
    ``0..k-1``, ``(k, L)``, in place) by the factors ``j0 .. j1-1``; ``qk``
    accumulates the degree ``k``."""
    k, L = F.shape
    for j in range(j0, j1):
        for p in range(L):
            qk[p] += b[j, p] * F[k - 1, p]
        # From the top degree down: F[m - 1] is read before it is replaced (one
        # array expression for the read and the write of F[m], so that LLVM
        # vectorises the lanes without an overlap check that in-place fails).
        for m in range(k - 1, 0, -1):
            for p in range(L):
                F[m, p] += b[j, p] * F[m - 1, p]


@_jit
def _prefix_table(b: np.ndarray, j0: int, j1: int, F: np.ndarray) -> None:
    """``F[j - j0 + 1] = F[j - j0] (1 + b_j X)`` (degrees ``0..k-1``) for the
    factors ``j0 .. j1-1``: the backward sweep's segment table from its first
    prefix ``F[0]``; the same operations as `_prefix_run`, so the same bits."""
    k, L = F.shape[1], F.shape[2]
    for j in range(j0, j1):
        src = F[j - j0]
        dst = F[j - j0 + 1]
        for m in range(k - 1, 0, -1):
            for p in range(L):
                dst[m, p] = src[m, p] + b[j, p] * src[m - 1, p]
        for p in range(L):
            dst[0, p] = 1.0


@_jit
def _leave_one_out(
    f: np.ndarray,
    r: np.ndarray,
    b: np.ndarray,
    j: int,
    k: int,
    A: np.ndarray,
    B: np.ndarray,
) -> None:
    """``A += sum_{m < k-1} f[m] r[m]``, ``B += sum_m f[m] r[m+1]`` (in order of
    ``m``) and ``r[m] += b_j r[m+1]`` (``r`` moved past factor ``j``), per lane.

    Four degrees per pass over the lanes: ``A``, ``B``, ``b_j`` and the shared
    ``r[m+1]`` stay in registers (2 loads and a store per degree and lane, where
    one degree per pass took 5 loads and 3 stores); the sums are the same, in the
    same order.
    """
    L = r.shape[1]
    m = 0
    while m + 4 <= k - 1:
        for p in range(L):
            bj = b[j, p]
            a_ = A[p]
            b_ = B[p]
            r0 = r[m, p]
            r1 = r[m + 1, p]
            f0 = f[m, p]
            a_ += f0 * r0
            b_ += f0 * r1
            r[m, p] = r0 + bj * r1
            r2 = r[m + 2, p]
            f1 = f[m + 1, p]
            a_ += f1 * r1
            b_ += f1 * r2
            r[m + 1, p] = r1 + bj * r2
            r3 = r[m + 3, p]
            f2 = f[m + 2, p]
            a_ += f2 * r2
            b_ += f2 * r3
            r[m + 2, p] = r2 + bj * r3
            r4 = r[m + 4, p]
            f3 = f[m + 3, p]
            a_ += f3 * r3
            b_ += f3 * r4
            r[m + 3, p] = r3 + bj * r4
            A[p] = a_
            B[p] = b_
        m += 4
    while m < k - 1:
        for p in range(L):
            fm = f[m, p]
            rn = r[m + 1, p]
            A[p] += fm * r[m, p]
            B[p] += fm * rn
            r[m, p] += b[j, p] * rn
        m += 1


@_jit
def smooth_topk_rows(
    X: np.ndarray,
    xg: np.ndarray,
    labels: np.ndarray,
    E: np.ndarray,
    mx: np.ndarray,
    params: np.ndarray,
    loss: np.ndarray,
    grad: np.ndarray,
    L: int,
    S: int,
) -> None:
    r"""Smooth top-k SVM loss rows (and gradient rows) of ``(B, C)`` scores ``z``.

    ``loss[i] = tau softplus(r_i)``, ``r = alpha/tau + log(e_k/e_{k-1}) - x_y`` with
    ``x = z / (k tau)`` over the classes other than ``labels[i]``; with a ``grad``
    of ``X``'s shape (an empty one: the loss alone), ``grad[i, j] = sigma(r)/k
    (pi^(k)_j - pi^(k-1)_j)`` off the label and ``-sigma(r)/k`` at it.
    ``params = (k, tau, alpha)``.  Everything is float64 (one compiled signature):
    ``X = x`` with ``-inf`` at the label, ``xg`` the label's ``x``, ``mx`` the row
    maximum of ``X`` and ``E = exp(X - mx)``; ``2 <= k < C``; ``z`` finite.

    Rows go in blocks of ``L``, one per lane of every loop over the block (a
    partial last block is padded): each row sees the same operations wherever it
    sits, so it is bit-identical alone or in any batch.  ``L`` is a run-time
    value on purpose: LLVM then vectorises the loops over the lanes (with run-time
    overlap checks) instead of unrolling them into scalar code.

    The forward pass keeps only the running prefix and a checkpoint of it every
    ``S`` classes; the backward sweep recomputes each segment's ``S`` prefixes from
    its checkpoint (the same operations, so the same bits) and walks it down with
    the suffix.  Its work stays in a ``(S + 1) k L`` table that fits in the cache,
    where the whole ``(C + 1) k L`` prefix table (6 MB at ``C = 1000``, ``k = 50``)
    was written and read back from memory.

    A row that fails the health check (or any row for ``k > MONIC_MAX_K``) is
    computed alone by `_row_mean_tilt`.
    """
    nb, n = X.shape
    k = int(params[0])
    tau, alpha = params[1], params[2]
    want_grad = grad.shape[0] > 0
    shift = alpha / tau
    gr = np.empty(n if want_grad else 0)
    if k > MONIC_MAX_K:
        for i in range(nb):
            loss[i] = _row_mean_tilt(X[i], xg[i], labels[i], k, tau, alpha, gr)
            if want_grad:
                grad[i] = gr
        return
    nseg = (n + S - 1) // S
    b = np.empty((n, L))
    Fc = np.empty((nseg, k, L))  # the prefix at the start of each segment
    Fs = np.empty((S + 1, k, L))
    r = np.empty((k, L))
    s = np.empty(L)
    qk = np.empty(L)
    A = np.empty(L)
    B = np.empty(L)
    w1 = np.empty(L)
    w2 = np.empty(L)
    cs = np.empty(L)
    alone = np.zeros(L, dtype=np.bool_)
    G = np.empty((n, L))
    for i0 in range(0, nb, L):
        nl = min(L, nb - i0)
        _leaves(E, i0, nl, k, b, s)
        # Forward: Fs[0] = prod_{i < j}(1 + b_i X), degrees 0..k-1; qk = degree k.
        for m in range(k):
            for p in range(L):
                Fs[0, m, p] = 0.0
        for p in range(L):
            Fs[0, 0, p] = 1.0
            qk[p] = 0.0
        for g in range(nseg):
            Fc[g] = Fs[0]
            _prefix_run(b, g * S, min(n, g * S + S), Fs[0], qk)
        for p in range(nl):
            i = i0 + p
            q1, q0 = qk[p], Fs[0, k - 1, p]
            t = math.log(s[p]) - mx[i]
            w1[p] = 0.0
            w2[p] = 0.0
            alone[p] = not (min(q1, q0) >= _FLOOR)
            if alone[p]:  # underflow: this row alone, tilted
                loss[i] = _row_mean_tilt(X[i], xg[i], labels[i], k, tau, alpha, gr)
                if want_grad:
                    grad[i] = gr
                continue
            rr = shift + (math.log(q1 / q0) - t) - xg[i]
            loss[i] = tau * _softplus(rr)
            c = _sigmoid(rr) / k
            w1[p] = c / q1
            w2[p] = c / q0
            cs[p] = c
        if not want_grad:
            continue
        # Backward: r[m] = S[k-1-m], S the product of the factors after j.  One
        # pass over the degrees reads F_j and r for both leave-one-out sums and
        # moves r past factor j (r[m + 1] is read before it is updated).
        for m in range(k):
            for p in range(L):
                r[m, p] = 0.0
        for p in range(L):
            r[k - 1, p] = 1.0
        for g in range(nseg - 1, -1, -1):
            j0, j1 = g * S, min(n, g * S + S)
            Fs[0] = Fc[g]
            _prefix_table(b, j0, j1 - 1, Fs)
            for j in range(j1 - 1, j0 - 1, -1):
                f = Fs[j - j0]
                for p in range(L):
                    A[p] = f[k - 1, p] * r[k - 1, p]
                    B[p] = 0.0
                _leave_one_out(f, r, b, j, k, A, B)
                for p in range(L):
                    v = w1[p] * A[p] - w2[p] * B[p]
                    G[j, p] = b[j, p] * v if v > 0.0 else 0.0
        for p in range(nl):
            if not alone[p]:
                i = i0 + p
                for j in range(n):
                    grad[i, j] = G[j, p]
                grad[i, labels[i]] = -cs[p]

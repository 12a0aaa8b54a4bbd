r"""Numba kernels of the smooth top-k SVM, row by row (imported lazily).

Only `arrayloss._esp_compiled` imports this module, and only when a NumPy float32 or
float64 smooth top-k loss is computed with numba installed; ``import arrayloss``
never imports numba.

Per row, with :math:`x_j = s_j / (k\tau)` over the classes :math:`j \ne y`, the work
is a sequential product of the linear factors :math:`a_j + b_j X` truncated at
degree ``k``, in float64 whatever the input dtype:

- *prefix* (forward) table :math:`F_i = \prod_{j < i}(a_j + b_j X)`, degrees
  ``0..k-1`` for every ``i`` (checkpointed and rebuilt, below), plus the running
  degree ``k``: the root coefficients :math:`q_k, q_{k-1}`;
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
forward, ``4k`` backward (``k`` of them rebuilding the prefixes; ``3.25 k`` for
``k > 8``, where the classes go backward in blocks of four).

Tilts (as in `arrayloss.esp`): the default is the lse tilt with monic factors
``1 + y_j X``, ``y_j = k exp(x_j) / sum exp(x)`` (so ``sum y = k`` and every
coefficient stays below ``e^k``), for ``k <= MONIC_MAX_K``; a row whose
``min(q_k, q_{k-1})`` falls below ``sqrt(tiny)`` (underflow), and every row for larger
``k``, is computed with the Poisson-binomial factors ``a_j = sigma(-x_j - t)``,
``b_j = sigma(x_j + t)`` at the mean-matching tilt ``sum_j b_j = k - 1/2``
(safeguarded Newton, the same iteration as `arrayloss.esp._mean_tilt`), where every
coefficient is a probability; such a row is first shifted by its k-th largest entry,
so that the tilt is not on the coarse grid of ``|x| ~ 1e30``.

The lse-tilt rows go in blocks of ``W = 16``, one row per lane of explicit
``<16 x double>`` vectors (`vec`: a numba type over an LLVM vector, with
intrinsics for loads, stores, ``fma`` and the rest; LLVM splits each operation
over the machine's registers, two AVX-512 or four AVX2, as independent chains).
Explicit vectors keep a row's state in registers across classes, which loops over
the lanes of arrays could not: there each degree's lane loop paid its run-time
overlap checks and prologue for 16-64 elements.  Per block (`smooth_topk_rows`):

- the leaves: the block's rows are transposed into lanes by ``W x W`` tiles of
  shuffles (`vtile`), ``exp(x_j - max x)`` by a vector exponential (`vexp`:
  Cody-Waite reduction, degree-13 Taylor polynomial, within 2 ulp of the correctly
  rounded value) and ``y_j = k exp / sum`` (the sum in order of ``j``);
- the forward pass in the coordinates ``g_d = F[k-1-d]`` (so that ``A_j = sum_d
  g_d s_d``, ``B_j = sum_{d>=1} g_d s_{d-1}`` with ``s_d = S_{j,d}`` pair the same
  index whatever ``k``), keeping a checkpoint of ``g`` every ``S`` classes; the
  backward sweep rebuilds one segment's prefixes at a time from its checkpoint
  (the same operations, hence the same bits) and walks the segment down with the
  suffix.  For ``k <= R = 8`` the coefficients live in registers (`_forward_reg`,
  `_backward_reg`; the degrees 5-7 skipped for ``k <= 5``); above, in small arrays,
  four classes per pass over the degrees, one load and store per degree and pass:
  forward (`_forward_mem`, `_four_factors`, remainders by `_two_factors`) and in the
  rebuild (`_four_factors` again, so the same bits) with the operations of one class at
  a time; in the walk down (`_backward_mem`) a block of four classes shares one pass,
  which forms the five sums ``M_e = sum_d P_d s_{d-e}`` of the prefix before the block
  and the suffix past it and moves the suffix past the block by the block's elementary
  symmetric polynomials; each class's ``A, B`` are then ``M`` weighted by those of the
  block's other three ``y`` (still sums of non-negative products, about a third less
  work than class by class);
- the gradient rows go back by the same tiles.

The mean-tilt rows go alone, in scalar code (`_row_mean_tilt`, `_forward`,
`_backward`).

References
----------
.. [1] L. Berrada, A. Zisserman and M. P. Kumar, "Smooth Loss Functions for Deep
   Top-k Classification", ICLR 2018, arXiv:1802.07595.
.. [2] Y. H. Wang, "On the number of successes in independent trials",
   Statistica Sinica 3 (1993): the Poisson-binomial distribution and its mode.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from llvmlite import ir  # type: ignore[import-untyped, import-not-found, unused-ignore]
from numba import njit, types
from numba.extending import intrinsic, models, register_model

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


# ---------------------------------------------------------------------------------
# Vectors of W float64 lanes (one row of the block per lane).
# ---------------------------------------------------------------------------------

W = 16
"""Lanes (rows) per vector: LLVM splits ``<16 x double>`` into the machine's
registers (two AVX-512, four AVX2), so each operation runs as independent chains."""

_VT = ir.VectorType(ir.DoubleType(), W)
_IT = ir.VectorType(ir.IntType(64), W)


class _VecType(types.Type):
    def __init__(self) -> None:
        super().__init__(name=f"float64x{W}")


vec = _VecType()


@register_model(_VecType)
class _VecModel(models.PrimitiveModel):
    def __init__(self, dmm: Any, fe_type: Any) -> None:
        super().__init__(dmm, fe_type, _VT)  # type: ignore[no-untyped-call, unused-ignore]


def _intrinsic(fn: Any) -> Any:
    """numba's ``intrinsic`` (typed ``Any``: the decorated functions are called in
    compiled code only)."""
    return intrinsic(fn)


def _vptr(context: Any, builder: Any, aty: Any, arr: Any, idx: Any) -> Any:
    data = context.make_array(aty)(context, builder, arr).data
    return builder.bitcast(builder.gep(data, [idx]), _VT.as_pointer())


def _vfn(builder: Any, name: str, n: int) -> Any:
    full = f"{name}.v{W}f64"
    fn = builder.module.globals.get(full)
    return fn or ir.Function(builder.module, ir.FunctionType(_VT, [_VT] * n), full)


def _splat(builder: Any, x: Any) -> Any:
    v = builder.insert_element(
        ir.Constant(_VT, ir.Undefined), x, ir.Constant(ir.IntType(32), 0)
    )
    zeros = ir.Constant(ir.VectorType(ir.IntType(32), W), [0] * W)
    return builder.shuffle_vector(v, ir.Constant(_VT, ir.Undefined), zeros)


def _const(x: float) -> Any:
    return ir.Constant(_VT, [x] * W)


@_intrinsic
def vload(typingctx: Any, arr: Any, idx: Any) -> Any:
    """``arr[idx : idx + W]`` (a contiguous 1-D float64 array) as a vector."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return builder.load(_vptr(context, builder, sig.args[0], *args), align=8)

    return vec(arr, idx), codegen


@_intrinsic
def vstore(typingctx: Any, arr: Any, idx: Any, v: Any) -> Any:
    """``arr[idx : idx + W] = v``."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        ptr = _vptr(context, builder, sig.args[0], args[0], args[1])
        builder.store(args[2], ptr, align=8)
        return context.get_dummy_value()

    return types.none(arr, idx, v), codegen


@_intrinsic
def vsplat(typingctx: Any, x: Any) -> Any:
    """The vector of ``W`` copies of the float ``x``."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return _splat(
            builder, context.cast(builder, args[0], sig.args[0], types.float64)
        )

    return vec(x), codegen


@_intrinsic
def vfma(typingctx: Any, a: Any, b: Any, c: Any) -> Any:
    """``a b + c`` lane by lane, with one rounding (``llvm.fma``)."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return builder.call(_vfn(builder, "llvm.fma", 3), args)

    return vec(vec, vec, vec), codegen


def _binary(op: str) -> Any:
    def typer(typingctx: Any, a: Any, b: Any) -> Any:
        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            return getattr(builder, op)(*args)

        return vec(vec, vec), codegen

    return typer


vadd = _intrinsic(_binary("fadd"))
vsub = _intrinsic(_binary("fsub"))
vmul = _intrinsic(_binary("fmul"))
vdiv = _intrinsic(_binary("fdiv"))


@njit(inline="always")
def vfma3(c: Any, a1: Any, b1: Any, a2: Any, b2: Any, a3: Any, b3: Any) -> Any:
    """``c + a1 b1 + a2 b2 + a3 b3``: three `vfma` from the left, inlined in numba's
    IR (so the operations and bits of the three calls)."""
    return vfma(a3, b3, vfma(a2, b2, vfma(a1, b1, c)))


@_intrinsic
def vpos(typingctx: Any, a: Any) -> Any:
    """``max(a, 0)`` lane by lane (``0`` where ``a`` is NaN)."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        zero = _const(0.0)
        return builder.select(builder.fcmp_ordered(">", args[0], zero), args[0], zero)

    return vec(vec), codegen


@_intrinsic
def vmax(typingctx: Any, a: Any, b: Any) -> Any:
    """``a if a > b else b`` lane by lane."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return builder.select(builder.fcmp_ordered(">", args[0], args[1]), *args)

    return vec(vec, vec), codegen


# exp on [-745.2, 0]: x = n ln2 + r, |r| <= ln2/2, exp(r) by its Taylor polynomial
# of degree 13 (truncation below 2e-17 relative), 2^n as two normal powers of two
# so that the subnormal results are rounded once.
_LOG2E = 1.4426950408889634
_LN2_HI = 0.6931471805599453  # ln 2 rounded; _LN2_LO its remainder
_LN2_LO = 2.3190468138462996e-17
_EXP_DEGREE = 13


@_intrinsic
def vexp(typingctx: Any, a: Any) -> Any:
    """``exp(a)`` lane by lane for ``a <= 0`` (``-inf`` included: 0), within two
    units in the last place of the correctly rounded value."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        fma = _vfn(builder, "llvm.fma", 3)
        x = builder.select(
            builder.fcmp_ordered(">", args[0], _const(-746.0)), args[0], _const(-746.0)
        )
        n = builder.call(
            _vfn(builder, "llvm.rint", 1), [builder.fmul(x, _const(_LOG2E))]
        )
        r = builder.call(fma, [builder.fneg(n), _const(_LN2_HI), x])
        r = builder.call(fma, [builder.fneg(n), _const(_LN2_LO), r])
        p = _const(1.0 / math.factorial(_EXP_DEGREE))
        for m in range(_EXP_DEGREE - 1, -1, -1):
            p = builder.call(fma, [p, r, _const(1.0 / math.factorial(m))])
        ni = builder.fptosi(n, _IT)
        n1 = builder.ashr(ni, ir.Constant(_IT, [1] * W))
        n2 = builder.sub(ni, n1)
        bias = ir.Constant(_IT, [1023] * W)
        shift = ir.Constant(_IT, [52] * W)
        s1 = builder.bitcast(builder.shl(builder.add(n1, bias), shift), _VT)
        s2 = builder.bitcast(builder.shl(builder.add(n2, bias), shift), _VT)
        return builder.fmul(builder.fmul(p, s1), s2)

    return vec(vec), codegen


def _tile_ptr(context: Any, builder: Any, aty: Any, arr: Any, idx: Any) -> Any:
    """Pointer to ``W`` elements of ``arr`` (float32 or float64) from ``idx``, and
    their vector type."""
    vty = ir.VectorType(context.get_value_type(aty.dtype), W)
    data = context.make_array(aty)(context, builder, arr).data
    return builder.bitcast(builder.gep(data, [idx]), vty.as_pointer()), vty


@_intrinsic
def vtile(
    typingctx: Any, src: Any, soff: Any, sstride: Any, dst: Any, doff: Any, dstride: Any
) -> Any:
    """Transpose a ``W x W`` tile: ``dst[doff + q dstride + p] = src[soff + p sstride
    + q]`` for ``p, q < W`` (flat contiguous float32 or float64 arrays, converted
    exactly to float64 and rounded to nearest back to float32), by ``log2 W``
    rounds of shuffles that swap the off-diagonal blocks of each diagonal block."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        sty, _, _, dty, _, _ = sig.args
        v = []
        for p in range(W):
            off = builder.add(
                args[1], builder.mul(args[2], ir.Constant(args[2].type, p))
            )
            ptr, vty = _tile_ptr(context, builder, sty, args[0], off)
            x = builder.load(ptr, align=4)
            v.append(x if vty == _VT else builder.fpext(x, _VT))
        b = W // 2
        while b:
            lo = [q if q & b == 0 else W + q - b for q in range(W)]
            hi = [q + b if q & b == 0 else W + q for q in range(W)]
            mlo = ir.Constant(ir.VectorType(ir.IntType(32), W), lo)
            mhi = ir.Constant(ir.VectorType(ir.IntType(32), W), hi)
            for i in range(W):
                if i & b == 0:
                    a, c = v[i], v[i + b]
                    v[i] = builder.shuffle_vector(a, c, mlo)
                    v[i + b] = builder.shuffle_vector(a, c, mhi)
            b //= 2
        for q in range(W):
            off = builder.add(
                args[4], builder.mul(args[5], ir.Constant(args[5].type, q))
            )
            ptr, vty = _tile_ptr(context, builder, dty, args[3], off)
            x = v[q] if vty == _VT else builder.fptrunc(v[q], vty)
            builder.store(x, ptr, align=4)
        return context.get_dummy_value()

    return types.none(src, soff, sstride, dst, doff, dstride), codegen


@_intrinsic
def vlane(typingctx: Any, v: Any, i: Any) -> Any:
    """Lane ``i`` of ``v`` (a float)."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return builder.extract_element(args[0], args[1])

    return types.float64(vec, i), codegen


# ---------------------------------------------------------------------------------
# The lse-tilt rows, W at a time.
# ---------------------------------------------------------------------------------

R = 8
"""Largest ``k`` whose coefficients stay in registers (`_forward_reg`,
`_backward_reg`); a larger ``k`` keeps them in a small array (`_forward_mem`,
`_backward_mem`)."""


@_jit
def _aligned(n: int) -> np.ndarray:
    """A float64 work array of ``n`` elements on a ``8 W``-byte boundary."""
    buf = np.empty(n + W)
    off = (-(buf.ctypes.data // 8)) % W
    return buf[off : off + n]


@_jit
def _leaves(
    Z: np.ndarray,
    inv: float,
    labels: np.ndarray,
    i0: int,
    nl: int,
    Y: np.ndarray,
    mx: np.ndarray,
) -> Any:
    """``Y[j] = exp(x_j - max x)`` in lane ``p``, ``x_j = Z[i0 + p, j] inv`` (in
    float64) and ``-inf`` at the label; ``1`` in the lanes past ``nl``.  Writes
    ``max x`` into ``mx`` (``W`` lanes) and returns the vector of the lanes' sums
    (in order of ``j``).

    A full block is transposed into ``Y`` by ``W x W`` tiles (`vtile`), the rest
    of the classes and a partial block element by element.  ``max x`` is ``inv``
    times the largest score (rounding is monotone)."""
    n = Z.shape[1]
    j0 = 0
    if nl == W:
        Zf = Z.reshape(Z.shape[0] * n)
        while j0 + W <= n:
            vtile(Zf, i0 * n + j0, n, Y, j0 * W, W)
            j0 += W
    for p in range(nl):
        row = Z[i0 + p]
        for j in range(j0, n):
            Y[j * W + p] = row[j]
        Y[labels[i0 + p] * W + p] = -np.inf
    for p in range(nl, W):
        for j in range(n):
            Y[j * W + p] = 0.0
    top = vsplat(-np.inf)
    for j in range(n):
        top = vmax(top, vload(Y, j * W))
    iv = vsplat(inv)
    m = vmul(top, iv)
    vstore(mx, 0, m)
    s = vsplat(0.0)
    for j in range(n):
        e = vexp(vsub(vmul(vload(Y, j * W), iv), m))
        vstore(Y, j * W, e)
        s = vadd(s, e)
    return s


@_jit
def _reg_factor(
    y: Any,
    g0: Any,
    g1: Any,
    g2: Any,
    g3: Any,
    g4: Any,
    g5: Any,
    g6: Any,
    g7: Any,
    big: bool,
) -> Any:
    """The factor ``1 + y X`` on the register state: ``g_d += y g_{d+1}`` (``g_7``
    stays; with ``big`` false, ``g_4..g_6`` too, the degrees 5-7 being ``0``)."""
    g0 = vfma(y, g1, g0)
    g1 = vfma(y, g2, g1)
    g2 = vfma(y, g3, g2)
    g3 = vfma(y, g4, g3)
    if big:
        g4 = vfma(y, g5, g4)
        g5 = vfma(y, g6, g5)
        g6 = vfma(y, g7, g6)
    return g0, g1, g2, g3, g4, g5, g6


@_jit
def _forward_reg(Y: np.ndarray, c: Any, k: int, S: int, CK: np.ndarray) -> Any:
    """Scale the leaves, ``Y[j] *= c``, and multiply the factors ``1 + Y[j] X``.

    The state ``g_d = F[k-1-d]`` (``d < R``; zero for ``d >= k``) of the prefix ``F
    = prod_{i < j}(1 + y_i X)`` lives in registers; ``g`` before the first factor
    of each segment of ``S`` goes to the checkpoints ``CK``.  Returns ``(q_k,
    q_{k-1})``.
    """
    n = Y.shape[0] // W
    big = k > 5  # else g_5, g_6, g_7 stay 0: their operations are skipped
    z = vsplat(0.0)
    q = z
    g0 = z
    g1 = vsplat(1.0 if k == 2 else 0.0)
    g2 = vsplat(1.0 if k == 3 else 0.0)
    g3 = vsplat(1.0 if k == 4 else 0.0)
    g4 = vsplat(1.0 if k == 5 else 0.0)
    g5 = vsplat(1.0 if k == 6 else 0.0)
    g6 = vsplat(1.0 if k == 7 else 0.0)
    g7 = vsplat(1.0 if k == 8 else 0.0)
    for seg in range((n + S - 1) // S):
        o = seg * R * W
        vstore(CK, o, g0)
        vstore(CK, o + W, g1)
        vstore(CK, o + 2 * W, g2)
        vstore(CK, o + 3 * W, g3)
        vstore(CK, o + 4 * W, g4)
        vstore(CK, o + 5 * W, g5)
        vstore(CK, o + 6 * W, g6)
        vstore(CK, o + 7 * W, g7)
        for j in range(seg * S, min(n, seg * S + S)):
            y = vmul(vload(Y, j * W), c)
            vstore(Y, j * W, y)
            q = vfma(y, g0, q)
            g0, g1, g2, g3, g4, g5, g6 = _reg_factor(
                y, g0, g1, g2, g3, g4, g5, g6, g7, big
            )
    return q, g0


@_jit
def _backward_reg(
    Y: np.ndarray, k: int, S: int, CK: np.ndarray, TB: np.ndarray, w1: Any, w2: Any
) -> None:
    """``Y[j] = y_j max(w1 A_j - w2 B_j, 0)`` for every ``j``, segment by segment
    from the last: the segment's prefixes ``g`` go from its checkpoint into the
    table ``TB`` (the operations of `_forward_reg`, so the same bits), then the
    segment is walked down with the suffix ``s_d = S[d]`` (``s_0 = 1``) in
    registers, ``A = sum_d g_d s_d``, ``B = sum_{d >= 1} g_d s_{d-1}``."""
    n = Y.shape[0] // W
    big = k > 5  # as in `_forward_reg`
    z = vsplat(0.0)
    s1 = z
    s2 = z
    s3 = z
    s4 = z
    s5 = z
    s6 = z
    s7 = z
    for seg in range((n + S - 1) // S - 1, -1, -1):
        j0, j1 = seg * S, min(n, seg * S + S)
        o = seg * R * W
        g0 = vload(CK, o)
        g1 = vload(CK, o + W)
        g2 = vload(CK, o + 2 * W)
        g3 = vload(CK, o + 3 * W)
        g4 = vload(CK, o + 4 * W)
        g5 = vload(CK, o + 5 * W)
        g6 = vload(CK, o + 6 * W)
        g7 = vload(CK, o + 7 * W)
        for j in range(j0, j1):
            t = (j - j0) * R * W
            vstore(TB, t, g0)
            vstore(TB, t + W, g1)
            vstore(TB, t + 2 * W, g2)
            vstore(TB, t + 3 * W, g3)
            vstore(TB, t + 4 * W, g4)
            if big:
                vstore(TB, t + 5 * W, g5)
                vstore(TB, t + 6 * W, g6)
                vstore(TB, t + 7 * W, g7)
            y = vload(Y, j * W)
            g0, g1, g2, g3, g4, g5, g6 = _reg_factor(
                y, g0, g1, g2, g3, g4, g5, g6, g7, big
            )
        for j in range(j1 - 1, j0 - 1, -1):
            t = (j - j0) * R * W
            h0 = vload(TB, t)
            h1 = vload(TB, t + W)
            h2 = vload(TB, t + 2 * W)
            h3 = vload(TB, t + 3 * W)
            h4 = vload(TB, t + 4 * W)
            y = vload(Y, j * W)
            a = vfma3(vfma(h1, s1, h0), h2, s2, h3, s3, h4, s4)
            b = vfma3(h1, h2, s1, h3, s2, h4, s3)
            if big:
                h5 = vload(TB, t + 5 * W)
                h6 = vload(TB, t + 6 * W)
                h7 = vload(TB, t + 7 * W)
                a = vfma3(a, h5, s5, h6, s6, h7, s7)
                b = vfma3(b, h5, s4, h6, s5, h7, s6)
                s7 = vfma(y, s6, s7)
                s6 = vfma(y, s5, s6)
                s5 = vfma(y, s4, s5)
            vstore(Y, j * W, vmul(y, vpos(vsub(vmul(w1, a), vmul(w2, b)))))
            s4 = vfma(y, s3, s4)
            s3 = vfma(y, s2, s3)
            s2 = vfma(y, s1, s2)
            s1 = vadd(s1, y)


@_jit
def _forward_mem(
    Y: np.ndarray, c: Any, k: int, S: int, CK: np.ndarray, G: np.ndarray
) -> Any:
    """`_forward_reg` for any ``k > 8``, the state ``G[d W:(d + 1) W] = g_d`` (``d
    < k``; ``k + 4`` slots, the last four zero) in an array.

    Four factors per pass over the degrees (`_four_factors`), then two
    (`_two_factors`) and one: one load and one store of the state per degree and
    pass, the operations of one factor at a time."""
    n = Y.shape[0] // W
    for i in range((k + 4) * W):
        G[i] = 0.0
    vstore(G, (k - 1) * W, vsplat(1.0))
    q = vsplat(0.0)
    for seg in range((n + S - 1) // S):
        o = seg * k * W
        for i in range(0, k * W, W):
            vstore(CK, o + i, vload(G, i))
        j, j1 = seg * S, min(n, seg * S + S)
        while j < j1:
            ya = vmul(vload(Y, j * W), c)
            vstore(Y, j * W, ya)
            if j + 3 < j1:
                yb = vmul(vload(Y, (j + 1) * W), c)
                vstore(Y, (j + 1) * W, yb)
                yc = vmul(vload(Y, (j + 2) * W), c)
                vstore(Y, (j + 2) * W, yc)
                yd = vmul(vload(Y, (j + 3) * W), c)
                vstore(Y, (j + 3) * W, yd)
                q = _four_factors(G, 0, 0, k, ya, yb, yc, yd, q)
                j += 4
            elif j + 1 < j1:
                yb = vmul(vload(Y, (j + 1) * W), c)
                vstore(Y, (j + 1) * W, yb)
                q = vfma(ya, vload(G, 0), q)
                q = vfma(yb, vfma(ya, vload(G, W), vload(G, 0)), q)
                _two_factors(G, k, ya, yb)
                j += 2
            else:
                cur = vload(G, 0)
                q = vfma(ya, cur, q)
                for d in range(k - 1):
                    nxt = vload(G, (d + 1) * W)
                    vstore(G, d * W, vfma(ya, nxt, cur))
                    cur = nxt
                j += 1
    return q, vload(G, 0)


@_jit
def _four_factors(
    T: np.ndarray,
    so: int,
    do: int,
    k: int,
    y0: Any,
    y1: Any,
    y2: Any,
    y3: Any,
    q: Any,
) -> Any:
    """The factors ``1 + y_t X``, ``t = 0..3``, on ``g`` from ``T[so:]`` into
    ``T[do:]`` (degrees ``d < k``; ``do = so``: in place) in one pass up the
    degrees, each stage one factor behind the previous by one degree (``g^t`` the
    state after ``t`` factors, ``g^t_d = g^{t-1}_d + y_{t-1} g^{t-1}_{d+1}``; the
    four slots of the source past ``k - 1`` read as ``0``, so that ``g_{k-1}``
    stays, exactly); returns ``q`` moved past the four factors."""
    a0 = vload(T, so)
    a1 = vload(T, so + W)
    a2 = vload(T, so + 2 * W)
    a3 = vload(T, so + 3 * W)
    b0 = vfma(y0, a1, a0)
    b1 = vfma(y0, a2, a1)
    b2 = vfma(y0, a3, a2)
    c0 = vfma(y1, b1, b0)
    c1 = vfma(y1, b2, b1)
    e0 = vfma(y2, c1, c0)
    q = vfma(y0, a0, q)
    q = vfma(y1, b0, q)
    q = vfma(y2, c0, q)
    q = vfma(y3, e0, q)
    g0, g1, g2, g3 = a3, b2, c1, e0  # g^0_{d+3}, g^1_{d+2}, g^2_{d+1}, g^3_d
    for d in range(k):
        n0 = vload(T, so + (d + 4) * W)
        n1 = vfma(y0, n0, g0)
        n2 = vfma(y1, n1, g1)
        n3 = vfma(y2, n2, g2)
        vstore(T, do + d * W, vfma(y3, n3, g3))
        g0, g1, g2, g3 = n0, n1, n2, n3
    return q


@_jit
def _two_factors(G: np.ndarray, k: int, ya: Any, yb: Any) -> None:
    """``g'_d = g_d + y_a g_{d+1}``, ``g''_d = g'_d + y_b g'_{d+1}`` (``g_k = 0``) on
    ``G[d W:(d + 1) W] = g_d`` in place, in one pass up the degrees (``g_d`` is not
    read after ``g''_d`` is written)."""
    g0c = vload(G, 0)
    g0n = vload(G, W)
    g1c = vfma(ya, g0n, g0c)
    g0c = g0n
    for d in range(k - 2):
        g0n = vload(G, (d + 2) * W)
        g1n = vfma(ya, g0n, g0c)
        vstore(G, d * W, vfma(yb, g1n, g1c))
        g0c = g0n
        g1c = g1n
    # g'_{k-1} = g_{k-1} (times y_a g_k = 0, exactly)
    vstore(G, (k - 2) * W, vfma(yb, g0c, g1c))
    vstore(G, (k - 1) * W, g0c)


@_jit
def _backward_mem(
    Y: np.ndarray,
    k: int,
    S: int,
    CK: np.ndarray,
    TB: np.ndarray,
    SS: np.ndarray,
    w1: Any,
    w2: Any,
) -> None:
    """`_backward_reg` for any ``k > 8``, four classes per pass over the degrees.

    A segment's classes go in blocks of four from its first (the last block padded with
    factors ``y = 0``, which are exactly ``1``). The table holds the prefix before each
    block, ``TB[b (k + 4) W + d W] = g_d`` before class ``j0 + 4 b`` (`_four_factors`
    from the checkpoint, ``q`` unused; four zero slots past each row's degree ``k -
    1``). The walk down takes a block at a time: with ``P`` the prefix before it and
    ``s`` the suffix past it (``SS[d W:(d + 1) W] = s_d``, ``s_0 = 1``), one pass up the
    degrees forms the five sums ``M_e = sum_d P_d s_{d-e}`` (``e = 0..4``) and moves
    ``s`` past the block, ``s_d += E_1 s_{d-1} + ... + E_4 s_{d-4}`` (``E``: the
    elementary symmetric polynomials of the block's four ``y``). Class ``i`` of the
    block has the prefix ``P prod_{l < i}`` and the suffix ``s prod_{l > i}`` of the
    block's factors, so that with ``L_{i,e}`` the elementary symmetric polynomials of
    the other three ``y``

    ``A_i = M_0 + L_{i,1} M_1 + L_{i,2} M_2 + L_{i,3} M_3`` and
    ``B_i = M_1 + L_{i,1} M_2 + L_{i,2} M_3 + L_{i,3} M_4``:

    sums of products of non-negative numbers, as one class at a time; the work per
    class and degree is ``1.25`` multiply-adds for the sums and ``1`` for the
    suffix (against ``3.5`` class by class)."""
    n = Y.shape[0] // W
    kw = k * W
    kp = (k + 4) * W  # a table row and its four zero slots
    for i in range(kw):
        SS[i] = 0.0
    zero = vsplat(0.0)
    vstore(SS, 0, vsplat(1.0))
    for r in range(S // 4):
        for i in range(kw, kp, W):
            vstore(TB, r * kp + i, zero)
    for seg in range((n + S - 1) // S - 1, -1, -1):
        j0, j1 = seg * S, min(n, seg * S + S)
        nb = (j1 - j0 + 3) // 4
        for i in range(0, kw, W):
            vstore(TB, i, vload(CK, seg * kw + i))
        for b in range(1, nb):
            j = j0 + 4 * (b - 1)
            _four_factors(
                TB,
                (b - 1) * kp,
                b * kp,
                k,
                vload(Y, j * W),
                vload(Y, (j + 1) * W),
                vload(Y, (j + 2) * W),
                vload(Y, (j + 3) * W),
                zero,
            )
        for b in range(nb - 1, -1, -1):
            j = j0 + 4 * b
            m = min(4, j1 - j)
            c0 = vload(Y, j * W)
            c1 = vload(Y, (j + 1) * W) if m > 1 else zero
            c2 = vload(Y, (j + 2) * W) if m > 2 else zero
            c3 = vload(Y, (j + 3) * W) if m > 3 else zero
            u01 = vmul(c0, c1)
            u23 = vmul(c2, c3)
            p01 = vadd(c0, c1)
            p23 = vadd(c2, c3)
            e1 = vadd(p01, p23)
            e2 = vfma(p01, p23, vadd(u01, u23))
            e3 = vfma(u01, p23, vmul(u23, p01))
            e4 = vmul(u01, u23)
            t = b * kp
            m0 = zero
            m1 = zero
            m2 = zero
            m3 = zero
            m4 = zero
            s1 = zero  # s_{d-1}, ..., s_{d-4}
            s2 = zero
            s3 = zero
            s4 = zero
            for d in range(k):
                p = vload(TB, t + d * W)
                sd = vload(SS, d * W)
                m0 = vfma(p, sd, m0)
                m1 = vfma(p, s1, m1)
                m2 = vfma(p, s2, m2)
                m3 = vfma(p, s3, m3)
                m4 = vfma(p, s4, m4)
                v = vfma3(vfma(e1, s1, sd), e2, s2, e3, s3, e4, s4)
                vstore(SS, d * W, v)
                s4, s3, s2, s1 = s3, s2, s1, sd
            for i in range(m):
                if i == 0:
                    l1, l2, l3 = vadd(c1, p23), vfma(c1, p23, u23), vmul(c1, u23)
                    y = c0
                elif i == 1:
                    l1, l2, l3 = vadd(c0, p23), vfma(c0, p23, u23), vmul(c0, u23)
                    y = c1
                elif i == 2:
                    l1, l2, l3 = vadd(p01, c3), vfma(p01, c3, u01), vmul(u01, c3)
                    y = c2
                else:
                    l1, l2, l3 = vadd(p01, c2), vfma(p01, c2, u01), vmul(u01, c2)
                    y = c3
                a = vfma3(m0, l1, m1, l2, m2, l3, m3)
                bb = vfma3(m1, l1, m2, l2, m3, l3, m4)
                vstore(Y, (j + i) * W, vmul(y, vpos(vsub(vmul(w1, a), vmul(w2, bb)))))


_PLAIN_MAX = 64.0
"""Largest ``|max x|`` at which `_ratio_minus_label` forms ``r`` through the tilt
``t = log c - max x`` (absolute error ``u |max x|``, at most ``64 u``)."""


@_jit
def _ratio_minus_label(
    shift: float, q1: float, q0: float, c: float, mx: float, xg: float
) -> float:
    """``r = alpha/tau + log(q_k/q_{k-1}) - t - x_y`` of a monic row with the lse
    tilt ``t = log c - max x``.

    As ``(log(q_k/q_{k-1}) - log c) + (max x - x_y)`` where ``|max x|`` exceeds
    `_PLAIN_MAX`: through ``t`` itself, ``log(q_k/q_{k-1}) - t`` is about ``max x``
    and the sum loses ``alpha/tau`` and the log ratio next to it (a row of equal
    scores of 1e30 gave ``r = 0``, the loss ``tau log 2``).  Below, the form through
    ``t`` (every ordinary row's bits as before)."""
    if abs(mx) > _PLAIN_MAX:
        return shift + ((math.log(q1 / q0) - math.log(c)) + (mx - xg))
    return shift + (math.log(q1 / q0) - (math.log(c) - mx)) - xg


@_jit
def _x_row(Z: np.ndarray, i: int, g: int, inv: float, x: np.ndarray) -> float:
    """``x = Z[i] inv`` in float64 with ``-inf`` at the label ``g``; returns
    ``x_g``."""
    for j in range(Z.shape[1]):
        x[j] = Z[i, j] * inv
    xg = float(x[g])
    x[g] = -np.inf
    return xg


@_jit
def _rows(
    Z: np.ndarray,
    labels: np.ndarray,
    params: np.ndarray,
    loss: np.ndarray,
    grad: np.ndarray,
    S: int,
) -> None:
    """`smooth_topk_rows` for scores ``Z`` and gradient ``grad`` of one dtype."""
    nb, n = Z.shape
    k = int(params[0])
    tau, alpha, inv, gscale = params[1], params[2], params[3], params[4]
    want_grad = grad.shape[0] > 0
    shift = alpha / tau
    gr = np.empty(n if want_grad else 0)
    xr = np.empty(n)
    if k > MONIC_MAX_K:
        for i in range(nb):
            xg = _x_row(Z, i, labels[i], inv, xr)
            loss[i] = _row_mean_tilt(xr, xg, labels[i], k, tau, alpha, gr)
            if want_grad:
                for j in range(n):
                    grad[i, j] = gscale * gr[j]
        return
    nseg = (n + S - 1) // S
    reg = k <= R
    depth = R if reg else k
    Y = _aligned(n * W)
    CK = _aligned(nseg * depth * W)
    TB = _aligned(S * depth * W)
    G = _aligned(0 if reg else (k + 4) * W)
    lane = _aligned(3 * W)
    cs = np.empty(W)
    empty = np.empty(0)
    gf = grad.reshape(grad.shape[0] * grad.shape[1])
    alone = np.zeros(W, dtype=np.bool_)
    for i0 in range(0, nb, W):
        nl = min(W, nb - i0)
        s = _leaves(Z, inv, labels, i0, nl, Y, lane[2 * W :])
        c = vdiv(vsplat(float(k)), s)
        if reg:
            q1v, q0v = _forward_reg(Y, c, k, S, CK)
        else:
            q1v, q0v = _forward_mem(Y, c, k, S, CK, G)
        for p in range(W):
            lane[p] = 0.0
            lane[W + p] = 0.0
            alone[p] = False
        for p in range(nl):
            i = i0 + p
            g = labels[i]
            q1, q0 = vlane(q1v, p), vlane(q0v, p)
            xg = Z[i, g] * inv
            alone[p] = not (min(q1, q0) >= _FLOOR)
            if alone[p]:  # underflow: this row alone, tilted (its gradient below)
                _x_row(Z, i, g, inv, xr)
                loss[i] = _row_mean_tilt(xr, xg, g, k, tau, alpha, empty)
                continue
            rr = _ratio_minus_label(shift, q1, q0, vlane(c, p), lane[2 * W + p], xg)
            loss[i] = tau * _softplus(rr)
            cp = gscale * (_sigmoid(rr) / k)
            lane[p] = cp / q1
            lane[W + p] = cp / q0
            cs[p] = cp
        if not want_grad:
            continue
        w1, w2 = vload(lane, 0), vload(lane, W)
        if reg:
            _backward_reg(Y, k, S, CK, TB, w1, w2)
        else:
            _backward_mem(Y, k, S, CK, TB, G, w1, w2)
        j0 = 0
        if nl == W:
            while j0 + W <= n:
                vtile(Y, j0 * W, W, gf, i0 * n + j0, n)
                j0 += W
        for p in range(nl):
            i = i0 + p
            if alone[p]:
                xg = _x_row(Z, i, labels[i], inv, xr)
                _row_mean_tilt(xr, xg, labels[i], k, tau, alpha, gr)
                for j in range(n):
                    grad[i, j] = gscale * gr[j]
            else:
                for j in range(j0, n):
                    grad[i, j] = Y[j * W + p]
                grad[i, labels[i]] = -cs[p]


@_jit
def smooth_topk_rows(
    z64: np.ndarray,
    z32: np.ndarray,
    labels: np.ndarray,
    params: np.ndarray,
    loss: np.ndarray,
    g64: np.ndarray,
    g32: np.ndarray,
    S: int,
) -> None:
    r"""Smooth top-k SVM loss rows (and gradient rows) of ``(B, C)`` scores ``z``.

    ``loss[i] = tau softplus(r_i)``, ``r = alpha/tau + log(e_k/e_{k-1}) - x_y`` with
    ``x = z / (k tau)`` over the classes other than ``labels[i]``; ``grad[i, j] = c
    sigma(r)/k (pi^(k)_j - pi^(k-1)_j)`` off the label and ``-c sigma(r)/k`` at it.
    ``params = (k, tau, alpha, 1 / (k tau), c)``; ``2 <= k < C``; ``z`` finite and
    C-contiguous.  The scores come as ``z64`` (float64) or ``z32`` (float32, then
    ``z64`` is empty), the gradient goes into ``g64`` or ``g32`` of the same dtype
    (both empty: the loss alone), so that the kernel has one compiled signature.
    The arithmetic is float64 for either dtype; ``loss`` is float64.

    Rows go in blocks of ``W``, one per lane of the vectors (a partial last block is
    padded): each row sees the same operations wherever it sits, so it is
    bit-identical alone or in any batch.  The forward pass keeps a checkpoint of the
    prefix every ``S`` classes; the backward sweep recomputes each segment's
    prefixes from its checkpoint (the same operations, so the same bits) and walks
    it down with the suffix.

    A row that fails the health check (or any row for ``k > MONIC_MAX_K``) is
    computed alone by `_row_mean_tilt`.
    """
    if z32.shape[0] > 0:
        _rows(z32, labels, params, loss, g32, S)
    else:
        _rows(z64, labels, params, loss, g64, S)


@_jit
def exp_lanes(x: np.ndarray, out: np.ndarray) -> None:
    """``out = exp(x)`` by `vexp`, ``W`` entries at a time (``x <= 0`` contiguous,
    its length a multiple of ``W``): the kernel's exponential, for the tests."""
    for i in range(0, x.shape[0], W):
        vstore(out, i, vexp(vload(x, i)))

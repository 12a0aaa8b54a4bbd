r"""Elementary symmetric polynomials of ``exp(x)``, computed in a tilted linear space.

The :math:`m`-th elementary symmetric polynomial of :math:`y_1..y_n` is

.. math::

    e_m(y) = \sum_{|S| = m} \prod_{j \in S} y_j ,
    \qquad \prod_j (1 + y_j X) = \sum_m e_m(y) X^m .

For ``y = exp(x)`` these numbers span hundreds of decades, so the engine never forms
them.  It multiplies *tilted* factors instead (the Poisson-binomial view): with a
per-row shift ``t``,

.. math::

    b_j = \sigma(x_j + t), \quad a_j = \sigma(-x_j - t), \qquad
    \prod_j (a_j + b_j X) = \sum_m q_m X^m, \qquad
    q_m = e^{m t} e_m(y) \prod_j a_j ,

and every :math:`q_m` is a probability (that of ``m`` successes among independent
Bernoulli(:math:`b_j`) trials).  All arithmetic is sums of products of non-negative
numbers, so the direct (shift-multiply-add) product is forward stable componentwise;
only underflow can hurt, and a per-row check catches it: a row whose target
coefficients fall below ``sqrt(tiny)`` is recomputed with the *mean-matching* tilt,
``sum_j sigma(x_j + t) = m - 1/2`` (safeguarded Newton), which puts the mode of the
Poisson binomial at the degrees wanted.

The product is a divide-and-conquer tree truncated at degree ``k`` (pairing node
``i`` with node ``i + N/2`` so each operand is one contiguous block), ``O(n k)``
work in ``O(k log n)`` array operations.  At operand degree >= 64 the products may
use FFT convolution (``scipy.fft`` on NumPy, ``cupyx.scipy.signal.fftconvolve`` on
CuPy, ``xp.fft`` elsewhere); FFT error is absolute (``u`` times the largest
coefficient), so the FFT path always uses the mean-matching tilt and its rows must
keep the target coefficients above ``1e-3`` or they are redone directly.

On JAX the levels from degree ``k`` up, the tilt's Newton steps and its argmax
drops run as compiled loops (`_upsweep_loop`, `_downsweep_loop`): a small program
for XLA to compile.

Gradients come from the reverse ("down") sweep of the same tree: the complement
products :math:`C_j = \prod_{i \ne j}(a_i + b_i X)`, kept only on the window of
degrees that can still reach the target, give the inclusion probabilities
:math:`\pi^{(m)}_j = \partial \log e_m / \partial x_j = b_j C_j[m-1] / q_m`.

References
----------
.. [1] L. Berrada, A. Zisserman and M. P. Kumar, "Smooth Loss Functions for Deep
   Top-k Classification", ICLR 2018, arXiv:1802.07595.
.. [2] I. G. Macdonald, *Symmetric Functions and Hall Polynomials*, 2nd ed.,
   Oxford University Press, 1995, ch. I.2.
.. [3] Y. H. Wang, "On the number of successes in independent trials",
   Statistica Sinica 3 (1993): the Poisson-binomial distribution and its mode.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import array_api_extra as xpx
from array_api_compat import (
    is_cupy_namespace,
    is_dask_namespace,
    is_jax_namespace,
    is_numpy_namespace,
)

from . import _xp
from ._api import as_rows, refuse_unreadable
from ._typing import Array, Namespace
from ._validation import check_choice, check_int

__all__ = ["FFT_MIN_DEGREE", "log_elementary_symmetric"]

FFT_MIN_DEGREE = 64
"""Operand degree from which ``method="auto"`` multiplies polynomials by FFT."""

_METHODS = ("auto", "direct", "fft")
_FFT_ALL = 2  # method="fft": every product above the leaf level
_FFT_FLOOR = 1e-3  # FFT path: target coefficients must stay above this
_NEWTON_TOL = 0.25  # mean-matching: |sum sigma - target| within this is enough
_NEWTON_EAGER = 60
_NEWTON_LAZY = 8
_ARGMAX_DROP_MAX = 32  # lazy mean tilt: drop the largest entries by argmax up to this
_MONIC_MAX_K = 32  # monic (1 + y X) leaves on the lse-tilt direct path up to this k


# --------------------------------------------------------------------------------------
# Array plumbing: NumPy/CuPy get ufuncs with ``out=``; every other namespace is generic
# (in place through ``xpx.at`` where the library allows it, functional on JAX).
# --------------------------------------------------------------------------------------


class _Engine:
    """Namespace, dtype, limits and the few kernels the tree needs.

    On NumPy every internal buffer of one call is carved from a single arena: one
    large block per call is recycled by the C allocator (its dynamic mmap threshold
    rises to the block's size), where dozens of fresh megabyte-sized temporaries
    are returned to the OS and page-faulted in again on every call (docs/design/topk.md §6).
    """

    def __init__(self, xp: Namespace, dtype: Any, device: Any) -> None:
        self.xp = xp
        self.dtype = dtype
        self.device = device
        self.mod: Any = None
        self.kind = "generic"
        if is_numpy_namespace(xp):
            import numpy as np

            self.mod, self.kind = np, "numpy"
        elif is_cupy_namespace(xp):
            import cupy

            self.mod, self.kind = cupy, "cupy"
        fi = xp.finfo(dtype)
        self.tiny = float(fi.smallest_normal)
        self.eps = float(fi.eps)
        self.floor = math.sqrt(self.tiny)  # direct path: q_m >= sqrt(tiny)
        # exp(bound) leaves headroom for 1 + y and keeps 1/(1 + y) a normal number.
        self.bound = math.log(float(fi.max)) - 8.0
        self._arena: Any = None
        self._used = 0
        self._scratch: Any = None

    # -- memory -------------------------------------------------------------------------
    def reserve(self, size: int, scratch: int) -> None:
        """One block for the next ``size`` elements of `alloc` plus the scratch."""
        if self.kind == "numpy":
            self._arena = self.mod.empty(size + scratch, dtype=self.dtype)
            self._used = 0
            self._scratch = self._arena[size:]

    def alloc(self, shape: tuple[int, ...]) -> Array:
        """An uninitialised work array (zeros outside NumPy/CuPy)."""
        if self.mod is None:
            return self.xp.zeros(shape, dtype=self.dtype, device=self.device)
        size = math.prod(shape)
        arena = self._arena
        if arena is not None and self._used + size <= arena.size - self._scratch.size:
            view = arena[self._used : self._used + size].reshape(shape)
            self._used += size
            return view
        return self.mod.empty(shape, dtype=self.dtype)

    def zeros(self, shape: tuple[int, ...]) -> Array:
        return self.xp.zeros(shape, dtype=self.dtype, device=self.device)

    def scratch(self, shape: tuple[int, ...], offset: int = 0) -> Array:
        """A reusable work array (NumPy/CuPy only): no fresh temporaries per product."""
        size = math.prod(shape)
        if self._scratch is None or self._scratch.size < offset + size:
            self._scratch = self.mod.empty(max(offset + size, 1), dtype=self.dtype)
        return self._scratch[offset : offset + size].reshape(shape)

    # -- polynomial products ------------------------------------------------------------
    def conv(
        self,
        A: Array,
        a0: int,
        B: Array,
        c0: int,
        nc: int,
        fft: bool,
        out: Array | None = None,
    ) -> Array:
        """Degrees ``c0 .. c0+nc-1`` of the product of two coefficient stacks.

        ``A[i]`` is the coefficient of degree ``a0 + i`` and ``B[j]`` of degree ``j``
        (axis 0); the other axes broadcast.  ``out`` (NumPy/CuPy) receives the result.
        """
        if fft:
            return self._conv_fft(A, a0, B, c0, nc, out)
        return self._conv_direct(A, a0, B, c0, nc, out)

    def _conv_direct(
        self, A: Array, a0: int, B: Array, c0: int, nc: int, out: Array | None
    ) -> Array:
        na, nb = A.shape[0], B.shape[0]
        # Loop over the shorter stack; each step is one slab multiply(-add).
        if na <= nb:
            X, Y = A, B
        else:
            X, Y = B, A
        top = c0 + nc - 1
        covered = c0 >= a0 and top <= a0 + na + nb - 2
        if self.mod is not None:
            if out is None:
                shape = (nc, *_broadcast(tuple(A.shape[1:]), tuple(B.shape[1:])))
                out = self.alloc(shape)
            done = c0 - 1
            if not covered:  # some output degrees get no term: start from zeros
                out[...] = 0
                done = top
            _conv_ufunc(
                self.mod, X, a0, Y, c0, out, done, self.scratch(tuple(out.shape))
            )
            return out
        shape = (nc, *_broadcast(tuple(A.shape[1:]), tuple(B.shape[1:])))
        xp = self.xp
        if _xp.scatter_supported(xp):  # PyTorch: add into slices of our own array
            res = self.zeros(shape)
            for i in range(X.shape[0]):
                deg = a0 + i  # degree of X[i] * Y[0]
                lo, hi = max(c0, deg), min(top, deg + Y.shape[0] - 1)
                if lo <= hi:
                    res[lo - c0 : hi - c0 + 1, ...] += (
                        X[i, ...] * Y[lo - deg : hi - deg + 1, ...]
                    )
            return res
        # Functional namespaces (JAX, Dask, ...): one slab product per coefficient of
        # the shorter stack, each a static slice of the longer one placed between
        # zero blocks (XLA fuses these; a gather of the Toeplitz matrix ran ~10x
        # slower on XLA's CPU backend).
        ny = Y.shape[0]
        rest = shape[1:]
        res = None
        for i in range(X.shape[0]):
            deg = a0 + i
            lo, hi = max(c0, deg), min(top, deg + ny - 1)
            if lo > hi:
                continue
            term = X[i, ...] * Y[lo - deg : hi - deg + 1, ...]
            if term.shape[1:] != rest:
                term = xp.broadcast_to(term, (hi - lo + 1, *rest))
            parts = [term]
            if lo > c0:
                parts.insert(0, self.zeros((lo - c0, *rest)))
            if hi < top:
                parts.append(self.zeros((top - hi, *rest)))
            term = xp.concat(parts, axis=0) if len(parts) > 1 else term
            res = term if res is None else res + term
        return self.zeros(shape) if res is None else res

    def _conv_fft(
        self, A: Array, a0: int, B: Array, c0: int, nc: int, out: Array | None
    ) -> Array:
        na, nb = A.shape[0], B.shape[0]
        full = na + nb - 1
        lo = c0 - a0  # index of degree c0 in the full product
        xp = self.xp
        if self.kind == "numpy":
            import scipy.fft as sfft

            n = sfft.next_fast_len(full, real=True)
            prod = sfft.irfft(
                sfft.rfft(A, n=n, axis=0) * sfft.rfft(B, n=n, axis=0), n=n, axis=0
            )
        elif self.kind == "cupy":
            from cupyx.scipy.signal import fftconvolve

            prod = _fftconvolve_axis0(fftconvolve, A, B)
        else:
            if is_dask_namespace(xp):  # dask transforms one chunk along the axis
                A, B = A.rechunk({0: -1}), B.rechunk({0: -1})
            n = _next_fast_len(full)
            fa = xp.fft.rfft(A, n=n, axis=0)
            fb = xp.fft.rfft(B, n=n, axis=0)
            prod = xp.fft.irfft(fa * fb, n=n, axis=0)
        hi = min(lo + nc, full)
        if out is not None:
            out[: hi - lo] = prod[lo:hi]
            if hi - lo < nc:
                out[hi - lo :] = 0
            return out
        res = xp.astype(prod[lo:hi, ...], self.dtype, copy=False)
        if hi - lo < nc:  # degrees above the full product are zero
            pad = self.zeros((nc - (hi - lo), *res.shape[1:]))
            res = xp.concat([res, pad], axis=0)
        return res

    # -- layout helpers -----------------------------------------------------------------
    def halves(self, P: Array) -> Array:
        """``(d+1, N, B)`` as ``(d+1, 2, N/2, B)``: left and right children."""
        d1, n, b = P.shape
        if self.mod is not None:
            return P.reshape(d1, 2, n // 2, b)
        return self.xp.reshape(P, (d1, 2, n // 2, b))

    def swapped_halves(self, P: Array) -> Array:
        """Like `halves`, with the two halves exchanged (each node's sibling)."""
        H = self.halves(P)
        if self.mod is not None:
            return H[:, ::-1]
        # Two slices, not ``flip``: XLA's CPU backend fused a reverse of each tree
        # level into the down-sweep ~20x slower than this.
        return self.xp.concat([H[:, 1:, ...], H[:, :1, ...]], axis=1)

    def append_identity(self, P: Array, monic: bool = False) -> Array:
        """Add one node equal to the constant polynomial 1 (an odd level's partner)."""
        xp = self.xp
        d1, _, b = P.shape
        if monic:
            return xp.concat([P, self.zeros((d1, 1, b))], axis=1)
        one = xp.ones((1, 1, b), dtype=self.dtype, device=self.device)
        node = xp.concat([one, self.zeros((d1 - 1, 1, b))], axis=0) if d1 > 1 else one
        return xp.concat([P, node], axis=1)


def _broadcast(s1: tuple[int, ...], s2: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(max(a, b) for a, b in zip(s1, s2, strict=True))


def _conv_ufunc(
    mod: Any,
    X: Array,
    a0: int,
    Y: Array,
    c0: int,
    out: Array,
    done: int,
    scr: Array,
) -> None:
    """``out[m - c0] (+)= sum_i X[i] Y[m - a0 - i]`` with NumPy/CuPy ufuncs and ``out=``.

    Degrees up to ``done`` already hold a value and are accumulated into; the first
    term of each higher degree is written directly.  Accumulation goes through the
    scratch ``scr`` (of ``out``'s shape): no fresh temporaries, at most three ufunc
    calls per step.
    """
    mul, add = mod.multiply, mod.add
    ny = Y.shape[0]
    top = c0 + out.shape[0] - 1
    for i in range(X.shape[0]):
        deg = a0 + i
        lo = c0 if c0 > deg else deg
        hi = deg + ny - 1
        if hi > top:
            hi = top
        if lo > hi:
            continue
        xi = X[i]
        if hi > done:
            f = lo if lo > done else done + 1
            mul(xi, Y[f - deg : hi - deg + 1], out=out[f - c0 : hi - c0 + 1])
        acc = hi if hi < done else done
        if acc >= lo:
            tmp = scr[: acc - lo + 1]
            mul(xi, Y[lo - deg : acc - deg + 1], out=tmp)
            dst = out[lo - c0 : acc - c0 + 1]
            add(dst, tmp, out=dst)
        if hi > done:
            done = hi


def _next_fast_len(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def _fftconvolve_axis0(fftconvolve: Callable[..., Array], A: Array, B: Array) -> Array:
    """Full linear convolution along axis 0 with a SciPy-style ``fftconvolve``."""
    return fftconvolve(A, B, mode="full", axes=0)


# --------------------------------------------------------------------------------------
# Tree layout, leaves, tilts and the two sweeps.
# --------------------------------------------------------------------------------------


def _n_leaves(n: int) -> int:
    """``n`` padded (with identity leaves) to an even number, and for ``n >= 32`` to a
    multiple of ``2**floor(log2(n/16))`` (at most 1/16 extra), so that the levels
    that hold most of the data halve without a partner node."""
    if n < 32:
        return n + n % 2
    step = 1 << math.floor(math.log2(n / 16))
    return -(-n // step) * step


def _plan(n_leaves: int, k: int) -> list[tuple[int, int]]:
    """``(coefficients, nodes)`` of the stack at each level, leaves first, root last.

    Every level but the root has an even number of nodes: an odd level gets an
    identity partner node.
    """
    plan = []
    N, d = n_leaves, 1
    while N > 1:
        N += N % 2
        plan.append((d + 1, N))
        N, d = N // 2, min(2 * d, k)
    plan.append((d + 1, 1))
    return plan


def _arena_size(
    plan: list[tuple[int, int]], nb: int, k: int, grad: bool
) -> tuple[int, int]:
    """Elements of the NumPy arena (leaves, levels, down-sweep buffers) and scratch."""
    levels = sum(c * n for c, n in plan) * nb
    biggest = max(c * n for c, n in plan[1:]) * nb
    down = 0
    if grad:
        down = max(min(k, 1 << lvl) * n for lvl, (_, n) in enumerate(plan[:-1])) * nb
        biggest = max(biggest, down)
    return levels + 2 * down, max(biggest, plan[0][1] * nb)


def _leaves_from(
    eng: _Engine, x: Array, t: Array | None, target: Array | float, monic: bool = False
) -> tuple[Array, Array]:
    """Leaf stack ``(2, N, B)`` (``a = 1/(1+y)``, ``b = y/(1+y)``) and the tilt ``t``.

    With ``monic`` the factors are ``1 + y X`` instead, stored as ``(1, N, B)``
    (only ``y``; the constant coefficient 1 is implicit at every node).

    ``y = exp(x + t)`` for each ``(B, n)`` row.  With ``t=None`` the tilt is the
    "lse" tilt ``t = log(target) - logsumexp(x)``: then ``sum_j y_j = target``, so no
    ``y`` overflows, and it costs one exp per entry.  A given ``t`` is applied with
    ``x + t`` capped at ``bound`` (those factors are ``b = 1`` to working precision).
    Padding leaves, and entries with ``x = -inf``, are the identity ``a = 1, b = 0``.
    """
    xp = eng.xp
    nb, n = x.shape
    N = _n_leaves(n)
    if eng.mod is not None:
        mod = eng.mod
        P = eng.alloc((1 if monic else 2, N, nb))
        Y = P[-1, :n]
        if t is None:
            # In the rows' own layout: a sum along a contiguous row takes the same
            # (pairwise) order for every batch, where a sum over the leaf axis of the
            # transposed stack would be sequential for B >= 2 and pairwise for B = 1.
            m = mod.max(x, axis=1)
            E = eng.scratch((nb, n))  # free until the first product
            mod.subtract(x, m[:, None], out=E)
            mod.exp(E, out=E)
            scale = target / mod.sum(E, axis=1)
            mod.multiply(E.T, scale, out=Y)
            t = mod.log(scale) - m
        else:
            mod.add(x.T, t, out=Y)
            mod.minimum(Y, eng.bound, out=Y)
            mod.exp(Y, out=Y)
        P[-1, n:] = 0
        if monic:
            return P, t
        mod.add(P[1], 1, out=P[0])
        mod.divide(1.0, P[0], out=P[0])
        mod.multiply(P[1], P[0], out=P[1])
        return P, t
    if t is None:
        m = xp.max(x, axis=1)
        y = xp.exp(x - m[:, None])
        scale = target / xp.sum(y, axis=1)
        y = y * scale[:, None]
        t = xp.log(scale) - m
    else:
        y = xp.exp(xp.minimum(x + t[:, None], eng.bound))
    yt = xp.permute_dims(y, (1, 0))
    if n < N:
        yt = xp.concat([yt, eng.zeros((N - n, nb))], axis=0)
    if monic:
        return yt[None, ...], t
    a = 1 / (1 + yt)
    return xp.stack([a, yt * a], axis=0), t


def _mean_tilt(
    eng: _Engine,
    x: Array,
    target: Array,
    lazy: bool,
    m_max: int | None = None,
    rest: Array | None = None,
) -> Array:
    """Per-row ``t`` with ``sum_j sigmoid(x_j + t) ~= target`` (within 1/4).

    ``x`` is ``(B, n)``, finite or ``-inf`` (an absent entry); ``target`` is ``(B,)``
    and below the number of finite entries of its row.  The start is the "upper"
    tilt ``log m - logsumexp`` of the entries left after removing the ``m - 1``
    largest, ``m = target + 1/2`` (docs/design/topk.md §2.1: it puts the mode of the Poisson
    binomial at or above ``m``).  Then safeguarded Newton on ``log sum sigmoid``,
    keeping a bracket ``[lo, hi]`` with ``f(lo) <= target <= f(hi)`` and bisecting
    whenever a step leaves it; eager arrays iterate to the tolerance, lazy ones take
    a fixed number of steps (no data-dependent control flow); for them ``m_max``
    bounds ``m`` (known from the caller's degrees).  ``rest``, if given, is ``x``
    without the ``m - 1`` largest entries of each row (from `_kth_largest`).
    """
    xp = eng.xp
    _nb, n = x.shape
    log_c = xp.log(target)
    lse = _xp.logsumexp(x, xp=xp, axis=1)
    lo = log_c - lse  # sum sigmoid(x + lo) <= sum exp(x + lo) = target
    finite = xp.isfinite(x)
    inf = xp.asarray(xp.inf, dtype=eng.dtype, device=eng.device)
    xmin = xp.min(xp.where(finite, x, inf), axis=1)
    count = xp.sum(xp.astype(finite, eng.dtype), axis=1)
    hi = log_c - xp.log(count - target) - xmin  # every sigmoid >= target / count
    m = xp.round(target + 0.5)
    if rest is not None:
        start = xp.log(m) - _xp.logsumexp(rest, xp=xp, axis=1)
    elif lazy:  # per-row: without the m-1 largest (m <= m_max, a static bound)
        rest = _without_largest(eng, x, m - 1, max(0, (m_max or n) - 1))
        start = xp.log(m) - _xp.logsumexp(rest, xp=xp, axis=1)
    else:  # one partition at the largest m (a start only: Newton does the rest)
        drop = int(_xp.read_float(xp.max(m))) - 1
        if 0 < drop < n:
            rest = xpx.partition(x, n - drop, axis=1, xp=xp)[:, : n - drop]
            start = xp.log(m) - _xp.logsumexp(rest, xp=xp, axis=1)
        else:
            start = xp.log(m) - lse
    t = xp.where(xp.isfinite(start), xp.clip(start, lo, hi), lo)
    state = (t, lo, hi, t, xp.full_like(t, xp.inf))
    if lazy and _loops(eng):  # one compiled step, run a fixed number of times
        import jax

        def body(_: Any, st: _Tilt) -> _Tilt:
            return _newton_step(eng, x, target, log_c, st)[0]

        return jax.lax.fori_loop(0, _NEWTON_LAZY, body, state)[3]
    for _ in range(_NEWTON_LAZY if lazy else _NEWTON_EAGER):
        state, done = _newton_step(eng, x, target, log_c, state)
        if not lazy and bool(xp.all(done)):
            break
    return state[3]


_Tilt = tuple[Array, Array, Array, Array, Array]  # t, lo, hi, best t, its score


def _newton_step(
    eng: _Engine, x: Array, target: Array, log_c: Array, state: _Tilt
) -> tuple[_Tilt, Array]:
    """One safeguarded Newton step of `_mean_tilt` and the rows already within
    tolerance (whose ``t`` it leaves unchanged)."""
    xp = eng.xp
    t, lo, hi, best_t, best_err = state
    tiny = eng.tiny
    y = xp.exp(xp.minimum(x + t[:, None], eng.bound))
    a = 1 / (1 + y)
    s = y * a
    f = xp.sum(s, axis=1)
    fp = xp.sum(s * a, axis=1)
    err = xp.abs(f - target)
    # Keep the best tilt seen: with |x| ~ 1e150 the grid of x + t is too coarse
    # to reach the target, and the bracket's ends are then all there is.  An
    # overshoot keeps mass at degree k (ties at sigmoid = 1/2), an undershoot may
    # leave none: rank overshoots as a quarter of their distance.
    score = xp.where(f < target, err, 0.25 * err)
    better = score < best_err
    best_t = xp.where(better, t, best_t)
    best_err = xp.where(better, score, best_err)
    below = f < target
    lo = xp.where(below, t, lo)
    hi = xp.where(below, hi, t)
    done = err <= _NEWTON_TOL
    f_safe = xp.maximum(f, tiny)
    step = (log_c - xp.log(f_safe)) * (f_safe / xp.maximum(fp, tiny))
    t_new = t + step
    inside = (t_new > lo) & (t_new < hi)  # false for NaN too
    t_new = xp.where(inside, t_new, 0.5 * (lo + hi))
    t = xp.where(done, t, t_new)
    return (t, lo, hi, best_t, best_err), done


def _without_largest(eng: _Engine, x: Array, count: Array, most: int) -> Array:
    """``x`` with the ``count[i]`` largest entries of row ``i`` set to ``-inf``.

    ``count <= most``; a static ``most`` up to `_ARGMAX_DROP_MAX` costs that many
    argmax passes (a full sort was ~5x slower on XLA's CPU backend at k = 5).
    """
    xp = eng.xp
    n = x.shape[1]
    cols = xp.astype(xp.arange(n, device=eng.device), eng.dtype)[None, :]
    if most > _ARGMAX_DROP_MAX:  # ascending sort: keep the n - count smallest
        return xp.where(cols < (n - count)[:, None], xp.sort(x, axis=1), -xp.inf)

    def drop(j: Any, x: Array) -> Array:
        top = xp.astype(xp.argmax(x, axis=1), eng.dtype)
        return xp.where((cols == top[:, None]) & (j < count)[:, None], -xp.inf, x)

    if _loops(eng):
        import jax

        return jax.lax.fori_loop(0, min(most, n), drop, x)
    for j in range(min(most, n)):
        x = drop(j, x)
    return x


def _upsweep(
    eng: _Engine, P: Array, k: int, fft_from: int, keep: bool, monic: bool = False
) -> tuple[list[Array], Array]:
    """Multiply the leaves pairwise up to the root, truncating at degree ``k``.

    Returns the level stacks (each ``(d+1, N, B)`` with ``N`` even, kept only when
    ``keep``) and the root coefficients ``(k'+1, B)``, ``k' = min(k, n)``.  Node
    ``i`` is paired with node ``i + N/2``, so each operand is one contiguous block.
    With ``monic`` the stacks hold degrees ``1..d`` only (the constant term is 1):
    a product is ``L + R + L*R``, which saves the multiplications by the constants.
    """
    levels: list[Array] = []
    xp = eng.xp
    s = 1 if monic else 0  # lowest stored degree
    while P.shape[1] > 1:
        if _loops(eng) and not monic and P.shape[0] > k and (levels or not keep):
            return _upsweep_loop(eng, P, k, fft_from, keep, levels)
        if P.shape[1] % 2:
            P = eng.append_identity(P, monic)
        if keep:
            levels.append(P)
        d = P.shape[0] - 1 + s
        H = eng.halves(P)
        M = H.shape[2]
        d_new = min(2 * d, k)
        fft = d >= fft_from
        L, R = H[:, 0, ...], H[:, 1, ...]
        if eng.mod is not None:
            # Room for the identity partner of an odd next level, written in place.
            out = eng.alloc((d_new + 1 - s, M + (M % 2 if M > 1 else 0), P.shape[2]))
            o = out[:, :M]
            if not monic:
                eng.conv(L, 0, R, 0, d_new + 1, fft=fft, out=o)
            else:
                eng.mod.add(L, R, out=o[:d])
                if d_new >= 2:
                    _conv_ufunc(eng.mod, L, 2, R, 2, o[1:], d, eng.scratch(o[1:].shape))
            if out.shape[1] > M:
                out[:, M] = 0
                if not monic:
                    out[0, M] = 1
            P = out
        elif not monic:
            P = eng.conv(L, 0, R, 0, d_new + 1, fft=fft)
        else:
            P = L + R
            if d_new >= 2:
                prod = eng.conv(L, 2, R, 2, d_new - 1, fft=False)  # degrees 2..d_new
                body = P[1:, ...]
                if d_new > d:
                    body = xp.concat(
                        [body, eng.zeros((d_new - d, *P.shape[1:]))], axis=0
                    )
                P = xp.concat([P[:1, ...], body + prod], axis=0)
    return levels, P[:, 0, :]


def _downsweep(
    eng: _Engine,
    levels: list[Array],
    w1: Array,
    w2: Array,
    k: int,
    fft_from: int,
    out_t: Array | None,
    monic: bool = False,
) -> Array:
    r"""Reverse sweep: ``U_j = b_j (w1 C_j[k-1] - w2 C_j[k-2])`` for every leaf.

    Propagates :math:`\hat C_v = (w_1 - w_2 X) \prod_{i \notin v}(a_i + b_i X)` from
    the root (where it is ``w1 - w2 X``) to the leaves, keeping at a node of ``s``
    leaves only the degrees ``max(0, k-s) .. k-1`` that can still reach degree
    ``k - 1``.  This is reverse-mode differentiation of the tree by hand; every
    coefficient is a sum whose rounding error is bounded by ``u`` times the sum of
    the magnitudes of its terms, the same bound as for the complement products
    themselves, and the only cancellation is the final
    :math:`\pi^{(k)} - \pi^{(k-1)} \ge 0`, whose relative gap is at least about
    ``1/k`` (Newton's inequalities).

    Returns ``U`` as ``(n, B)`` (the leaf rows of the real entries); on NumPy it is
    written into ``out_t``.  With ``monic`` (leaves ``1 + y X``, stacks without the
    constant term) the sibling's constant 1 contributes a copy of the parent's
    window, and ``a = 1``, ``b = y`` at the leaves.
    """
    xp = eng.xp
    nb = w1.shape[0]
    C = xp.stack([w1, -w2], axis=0)[:, None, :]  # root, degrees 0..1
    c_lo = 0
    if levels and isinstance(levels[-1], _LoopLevels):  # JAX: the top levels' loop
        C = _downsweep_loop(eng, levels[-1], C[:, 0, :], k, fft_from)
        levels = levels[:-1]
    bufs: list[Array] = []
    if eng.mod is not None and len(levels) > 1:
        size = max(
            min(k, 1 << lvl) * levels[lvl].shape[1] for lvl in range(1, len(levels))
        )
        bufs = [eng.alloc((size * nb,)), eng.alloc((size * nb,))]
    for lvl in range(len(levels) - 1, 0, -1):
        P = levels[lvl]
        d1, n, _ = P.shape
        M = n // 2
        C = C[:, :M, ...]  # drop the partner added to an odd parent level
        lo = max(0, k - (1 << lvl))
        nc = k - lo
        sib = eng.swapped_halves(P)  # (d+1, 2, M, B)
        fft = min(C.shape[0], d1) - 1 >= fft_from
        out = None
        if bufs:
            out = bufs[lvl % 2][: nc * n * nb].reshape(nc, 2, M, nb)
        if not monic:
            Cc = eng.conv(C[:, None, ...], c_lo, sib, lo, nc, fft=fft, out=out)
        else:
            # The sibling's constant term 1 passes the parent's degrees lo..k-1 on
            # (the root's window stops at degree 1: the rest is zero).
            keep = max(0, min(nc, c_lo + C.shape[0] - lo))
            if out is not None:
                out[:keep] = C[lo - c_lo : lo - c_lo + keep, None, ...]
                out[keep:] = 0
                X, Y = (
                    (sib, C[:, None, ...])
                    if d1 < C.shape[0]
                    else (C[:, None, ...], sib)
                )
                _conv_ufunc(
                    eng.mod, X, c_lo + 1, Y, lo, out, k - 1, eng.scratch(out.shape)
                )
                Cc = out
            else:
                Cc = eng.conv(C[:, None, ...], c_lo + 1, sib, lo, nc, fft=False)
                head = C[lo - c_lo : lo - c_lo + keep, None, ...]
                if keep < nc:
                    head = xp.concat(
                        [head, eng.zeros((nc - keep, *head.shape[1:]))], axis=0
                    )
                Cc = Cc + head
        C = xp.reshape(Cc, (nc, n, nb))
        c_lo = lo
    P = levels[0]
    M = P.shape[1] // 2
    C = C[:, :M, ...]
    c1 = C[k - 1 - c_lo, ...]
    c2 = C[k - 2 - c_lo, ...] if k - 2 >= c_lo else None
    if monic:  # leaves 1 + y X: a = 1 (None below), b = y
        left, right = (None, P[0, :M, ...]), (None, P[0, M:, ...])
    else:
        left, right = (P[0, :M, ...], P[1, :M, ...]), (P[0, M:, ...], P[1, M:, ...])
    return _leaf_gradient(eng, left, right, c1, c2, out_t)


# JAX: the levels of degree k as one compiled loop.  XLA compiles every operation of
# an unrolled tree, and ten levels of products made a program that took seconds to
# compile; from the level where the degree reaches k every level is the same
# product, so they run as one `jax.lax.scan` (`jax.lax.fori_loop`) body over a
# fixed-width stack: the 2^s nodes padded with identity nodes, node ``2i`` paired
# with ``2i + 1`` and the W/2 products followed by W/2 identities.  That is
# log2(W) W/2 products instead of W - 1 (for n = 1000, k = 5 about the work of the
# unrolled levels again), yet the step measured no slower on XLA's CPU backend
# (fewer, larger kernels; bench/bench_adapters.py times it).


def _loops(eng: _Engine) -> bool:
    """True where the tree's repeated steps run as compiled loops (JAX)."""
    return bool(is_jax_namespace(eng.xp))


class _LoopLevels:
    """The stacks of the looped levels, ``(steps, k+1, W, B)``, and the number
    ``n`` of real nodes of the first (the rest of its ``W`` are identities)."""

    def __init__(self, stack: Array, n: int) -> None:
        self.stack = stack
        self.n = n


def _identity_nodes(eng: _Engine, d1: int, count: int, nb: int) -> Array:
    """``count`` nodes equal to the polynomial 1, as a ``(d1, count, nb)`` stack."""
    xp = eng.xp
    one = xp.ones((1, count, nb), dtype=eng.dtype, device=eng.device)
    return xp.concat([one, eng.zeros((d1 - 1, count, nb))], axis=0)


def _upsweep_loop(
    eng: _Engine, P: Array, k: int, fft_from: int, keep: bool, levels: list[Array]
) -> tuple[list[Array], Array]:
    """`_upsweep` from a stack ``P`` of degree ``k`` (``(k+1, n, B)``, ``n >= 2``) to
    the root, as one loop; with ``keep``, ``levels`` gets a `_LoopLevels`."""
    import jax

    xp = eng.xp
    d1, n, nb = P.shape
    steps = (n - 1).bit_length()
    W = 1 << steps
    if n < W:
        P = xp.concat([P, _identity_nodes(eng, d1, W - n, nb)], axis=1)
    ident = _identity_nodes(eng, d1, W // 2, nb)
    fft = k >= fft_from

    def step(P: Array) -> Array:
        Q = xp.reshape(P, (d1, W // 2, 2, nb))
        prod = eng.conv(Q[:, :, 0, :], 0, Q[:, :, 1, :], 0, d1, fft=fft)
        return xp.concat([prod, ident], axis=1)

    if keep:
        root, stack = jax.lax.scan(lambda P, _: (step(P), P), P, None, length=steps)
        levels.append(_LoopLevels(stack, n))
    else:
        root = jax.lax.fori_loop(0, steps, lambda _, P: step(P), P)
    return levels, root[:, 0, :]


def _downsweep_loop(
    eng: _Engine, lv: _LoopLevels, root: Array, k: int, fft_from: int
) -> Array:
    """`_downsweep` through the looped levels: from the root's ``(2, B)``
    complement ``w1 - w2 X`` to the degrees ``0..k-1`` of the complements of the
    first looped level's ``n`` nodes, ``(k, n, B)``."""
    import jax

    xp = eng.xp
    _steps, d1, W, nb = lv.stack.shape
    head = xp.concat([root, eng.zeros((k - 2, nb))], axis=0)[:, None, :]
    C = xp.concat([head, eng.zeros((k, W - 1, nb))], axis=1)
    fft = min(k, d1) - 1 >= fft_from

    def step(C: Array, P: Array) -> tuple[Array, None]:
        Q = xp.reshape(P, (d1, W // 2, 2, nb))
        sib = xp.concat([Q[:, :, 1:, :], Q[:, :, :1, :]], axis=2)
        Cc = eng.conv(C[:, : W // 2, None, :], 0, sib, 0, k, fft=fft)
        return xp.reshape(Cc, (k, W, nb)), None

    C, _ = jax.lax.scan(step, C, lv.stack, reverse=True)
    return C[:, : lv.n, :]


Leaf = tuple["Array | None", Array]  # (a, b) of the leaves a + b X; a None means 1


def _leaf_gradient(
    eng: _Engine,
    left: Leaf,
    right: Leaf,
    c1: Array,
    c2: Array | None,
    out_t: Array | None,
) -> Array:
    """``U_j = b_j max(a_s c1 + b_s c2, 0)`` for the leaves of both halves (``s``:
    each leaf's sibling), as ``(n, B)``; on NumPy/CuPy written into ``out_t``."""
    xp = eng.xp
    pairs = ((left, right), (right, left))
    if eng.mod is not None and out_t is not None:
        mod = eng.mod
        M, nb = c1.shape
        t1, t2 = eng.scratch((M, nb)), eng.scratch((M, nb), offset=M * nb)
        starts = (0, M)
        for ((_, b_self), (a_sib, b_sib)), start in zip(pairs, starts, strict=True):
            if a_sib is None:  # c1 + b_sib c2 (c2 exists: monic leaves need k >= 2)
                mod.multiply(b_sib, c2, out=t1)
                mod.add(t1, c1, out=t1)
            else:
                mod.multiply(a_sib, c1, out=t1)
                if c2 is not None:
                    mod.multiply(b_sib, c2, out=t2)
                    mod.add(t1, t2, out=t1)
            mod.maximum(t1, 0, out=t1)  # >= 0 exactly; rounding may dip below
            m = min(M, out_t.shape[0] - start)
            mod.multiply(b_self[:m], t1[:m], out=out_t[start : start + m])
        return out_t
    zero = xp.zeros_like(c1)
    parts = []
    for (_, b_self), (a_sib, b_sib) in pairs:
        v = c1 if a_sib is None else a_sib * c1
        if c2 is not None:
            v = v + b_sib * c2
        parts.append(b_self * xp.maximum(v, zero))
    return xp.concat(parts, axis=0)


# --------------------------------------------------------------------------------------
# The pieces the smooth top-k loss needs: log(e_k/e_{k-1}) and c1 pi^(k) - c2 pi^(k-1).
# --------------------------------------------------------------------------------------

CoefFn = Callable[[Array, Any], tuple[Array, Array]]


def _fft_from(method: str, k: int) -> int:
    if method == "direct":
        return k + 1  # never
    if method == "fft":
        return _FFT_ALL
    return FFT_MIN_DEGREE


def _ratio_rows(
    eng: _Engine,
    x: Array,
    k: int,
    *,
    t: Array | None,
    fft_from: int,
    coef: CoefFn | None,
    aux: Any,
    off: Array,
) -> tuple[Array, Array | None, Array]:
    """One pass of the tree for ``(B, n)`` rows: ``(rho + off, G, q_min)``.

    ``t=None`` uses the lse tilt; otherwise the given per-row tilt.  ``q_min`` is
    ``min(q_k, q_{k-1})`` for the health check; ``off`` is added to ``rho``
    before ``coef`` sees it.
    """
    xp = eng.xp
    nb, n = x.shape
    grad = coef is not None
    size, scratch = _arena_size(_plan(_n_leaves(n), k), nb, k, grad)
    eng.reserve(size, scratch)
    # Monic leaves on the default path: the lse tilt keeps every coefficient below
    # e^k (sum_j y_j = k), and with k <= 32 the down-sweep stays below e^k/sqrt(tiny).
    monic = t is None and k <= _MONIC_MAX_K and fft_from > k
    P0, t = _leaves_from(eng, x, t, float(k), monic)
    levels, q = _upsweep(eng, P0, k, fft_from, keep=grad, monic=monic)
    s = 1 if monic else 0
    qk, qk1 = q[k - s, ...], q[k - 1 - s, ...]
    q_min = xp.minimum(qk, qk1)
    # Rows below the floor fail the health check and are redone; clamping them keeps
    # their (discarded) down-sweep finite: |C^| <= e^k / (k sqrt(tiny)).
    qk = xp.maximum(qk, eng.floor)
    qk1 = xp.maximum(qk1, eng.floor)
    rho = (xp.log(qk / qk1) - t) + off
    if coef is None:
        return rho, None, q_min
    c1, c2 = coef(rho, aux)
    if eng.mod is not None:
        G = eng.mod.empty((nb, n), dtype=eng.dtype)  # returned: not from the arena
        _downsweep(eng, levels, c1 / qk, c2 / qk1, k, fft_from, G.T, monic)
    else:
        U = _downsweep(eng, levels, c1 / qk, c2 / qk1, k, fft_from, None, monic)
        G = xp.permute_dims(U[:n, ...], (1, 0))
    return rho, G, q_min


def _take_rows(xp: Namespace, a: Any, idx: Array) -> Any:
    if a is None:
        return None
    return xp.take(a, idx, axis=0)


def _merge_rows(
    eng: _Engine, full: Array, part: Array, fail: Array, idx: Array
) -> Array:
    """``full`` with the rows ``idx`` (where ``fail``) replaced by ``part``."""
    xp = eng.xp
    if _xp.scatter_supported(xp):
        full[idx, ...] = part  # our own array: write in place
        return full
    nb = full.shape[0]
    pos = xp.cumulative_sum(xp.astype(fail, _xp.default_int(xp, eng.device))) - 1
    rows = xp.arange(nb, device=eng.device)
    index = xp.where(fail, nb + pos, rows)
    return xp.take(xp.concat([full, part], axis=0), index, axis=0)


def _kth_largest(eng: _Engine, x: Array, k: int, lazy: bool) -> tuple[Array, Array]:
    """The ``k``-th largest entry of each row of ``x`` (``(B,)``), and ``x`` without
    its ``k - 1`` largest entries (a partition; ``k - 1`` argmax drops when lazy)."""
    xp = eng.xp
    nb, n = x.shape
    if lazy:
        drop = xp.full((nb,), float(k - 1), dtype=eng.dtype, device=eng.device)
        rest = _without_largest(eng, x, drop, k - 1)
    else:
        rest = xpx.partition(x, n - k + 1, axis=1, xp=xp)[:, : n - k + 1]
    return xp.max(rest, axis=1), rest


def _tilted_kth(
    eng: _Engine, x: Array, k: int, lazy: bool, ref: Array | None
) -> tuple[Array, Array, Array]:
    """Rows shifted by their ``k``-th largest entry ``c`` for the mean-matching
    tilt: ``(x - c, t, c - ref)``.

    With entries of ``1e30`` the tilt ``t ~ -c`` of the unshifted rows would sit on
    a grid of spacing ``u |c|``, too coarse to reach the target when the entries
    that matter are tied; after the shift the target degrees sit at ``x ~ 0``.
    """
    xp = eng.xp
    nb = x.shape[0]
    c, rest = _kth_largest(eng, x, k, lazy)
    xs = _xp.sub(x, c[:, None], xp=xp)
    rest = _xp.sub(rest, c[:, None], xp=xp)
    tgt = xp.full((nb,), k - 0.5, dtype=eng.dtype, device=eng.device)
    t = _mean_tilt(eng, xs, tgt, lazy, rest=rest)
    off = c if ref is None else _xp.sub(c, ref, xp=xp)
    return xs, t, off


def _log_ratio_and_grad(
    x: Array,
    k: int,
    *,
    xp: Namespace,
    method: str = "auto",
    coef: CoefFn | None = None,
    aux: Any = None,
    ref: Array | None = None,
) -> tuple[Array, Array | None]:
    r"""``rho = log(e_k / e_{k-1}) - ref`` of ``y = exp(x)`` per row, and optionally a
    gradient.

    ``x`` is ``(B, n)`` real (``-inf`` marks an absent entry; each row needs at least
    ``k`` finite entries), ``2 <= k < n``; ``ref`` is an optional ``(B,)`` array
    (zero if ``None``).  With ``coef``, ``c1, c2 = coef(rho, aux)`` (``aux`` is any
    per-row array, subset along with the rows on a fallback) and the second output
    is ``G = c1 pi^(k) - c2 pi^(k-1)``, ``(B, n)``, with
    :math:`\pi^{(m)}_j = \partial \log e_m / \partial x_j` the inclusion
    probabilities.  ``x`` is not modified.

    Every row is computed shifted, ``x - c`` (the row maximum on the lse path, the
    ``k``-th largest entry for the mean-matching tilt), and ``rho`` is formed as
    ``log(e_k(x - c) / e_{k-1}(x - c)) + (c - ref)``: with scores of ``1e30`` and a
    ``ref`` of the same size (the loss's label score) the difference keeps the
    digits that ``log(e_k/e_{k-1}) - ref`` would lose.
    """
    _nb, _n = x.shape
    eng = _Engine(xp, x.dtype, _xp.xp_device(x))
    fft_from = _fft_from(method, k)
    uses_fft = fft_from <= k
    lazy = _xp.is_lazy(x)
    if lazy or uses_fft:
        xs, t, off = _tilted_kth(eng, x, k, lazy, ref)
    else:
        c = xp.max(x, axis=1)
        xs, t = x - c[:, None], None  # the subtraction the lse tilt makes anyway
        off = c if ref is None else _xp.sub(c, ref, xp=xp)
    rho, G, q_min = _ratio_rows(
        eng, xs, k, t=t, fft_from=fft_from, coef=coef, aux=aux, off=off
    )
    if lazy:
        return rho, G
    fail = ~(q_min >= (_FFT_FLOOR if uses_fft else eng.floor))
    if not bool(xp.any(fail)):
        return rho, G
    # Rows whose coefficients underflowed (or, on the FFT path, are too small for
    # FFT's absolute error): redo them directly with the mean-matching tilt.
    (idx,) = xp.nonzero(fail)
    ref_f = _take_rows(xp, ref, idx)
    xs, ts, off_f = _tilted_kth(eng, xp.take(x, idx, axis=0), k, False, ref_f)
    rho_f, G_f, _ = _ratio_rows(
        eng, xs, k, t=ts, fft_from=k + 1, coef=coef, aux=_take_rows(xp, aux, idx),
        off=off_f,
    )  # fmt: skip
    rho = _merge_rows(eng, rho, rho_f, fail, idx)
    if G is not None:
        G = _merge_rows(eng, G, G_f, fail, idx)
    return rho, G


# --------------------------------------------------------------------------------------
# Public: log e_0 .. log e_k.
# --------------------------------------------------------------------------------------


def log_elementary_symmetric(
    x: Array, k: int, /, *, axis: int = -1, method: str = "auto"
) -> Array:
    r"""Logarithms of the elementary symmetric polynomials of ``exp(x)``.

    .. math::

        \log e_m(e^{x}) = \log \sum_{S \subseteq \{1..n\},\ |S| = m}
        \exp\Big(\sum_{j \in S} x_j\Big), \qquad m = 0, 1, \dots, k,

    the coefficients of :math:`\prod_j (1 + e^{x_j} X)`.  ``e_0 = 1`` (log 0) and
    ``e_m = 0`` (log ``-inf``) for ``m`` larger than the number of finite entries.

    Computed in a tilted linear space (the coefficients of
    :math:`\prod_j (\sigma(-x_j-t) + \sigma(x_j+t) X)` are Poisson-binomial
    probabilities) by a divide-and-conquer product truncated at degree ``k``:
    ``O(n k)`` work, no overflow, and componentwise forward-stable direct products.
    Degrees whose tilted coefficient underflows are recomputed with a tilt that puts
    the Poisson-binomial mode at them, so every degree is accurate to a few ulps of
    its condition number (``u * sum_j |x_j| pi_j``), however wide the range of the
    ``e_m``.  See the module docstring for the algorithm.

    **Entries near the float range.**  A row with an entry beyond ``max / (4 n)``
    in magnitude is computed degree by degree in its own units, around its
    ``m``-th largest entry: every degree whose value is within the float range is
    finite and accurate (``[max, -max, 0]`` gives ``0, max, max, 0``; it gave NaN
    for the last two), and one beyond it is ``+inf`` or ``-inf`` **without a
    warning**, since only the result overflows.  Other rows are computed as
    always.  (Inside a traced JAX program such rows are not detected; concrete
    JAX arrays with them run eagerly instead of compiled.)

    Parameters
    ----------
    x : array of shape (..., n)
        Real values, finite or ``-inf`` (an absent entry, ``exp(x) = 0``); ``+inf``
        or NaN make their row NaN.  Integers promote to the default float; float32
        is computed in float32.
    k : int
        Highest degree wanted, ``k >= 0``.
    axis : int
        The axis of ``x`` holding the ``n`` variables; it is removed, and the ``k+1``
        degrees form the new last axis.
    method : {"auto", "direct", "fft"}
        Polynomial products by direct shift-multiply-add, or by FFT convolution
        (``"fft"``: every product above the leaves; ``"auto"``: products of operand
        degree >= 64).  FFT products are accurate only near the Poisson-binomial mode
        (their error is relative to the largest coefficient), so with FFT the other
        degrees are obtained in extra passes with other tilts.

    Returns
    -------
    array of shape (..., k+1)
        ``log e_0 .. log e_k`` along the last axis, in ``x``'s floating dtype and
        namespace.

    References
    ----------
    .. [1] L. Berrada, A. Zisserman and M. P. Kumar, "Smooth Loss Functions for Deep
       Top-k Classification", ICLR 2018, arXiv:1802.07595 (Section 4: the
       divide-and-conquer product).
    .. [2] I. G. Macdonald, *Symmetric Functions and Hall Polynomials*, 2nd ed., 1995.

    Examples
    --------
    >>> import numpy as np
    >>> from arrayloss.esp import log_elementary_symmetric
    >>> x = np.log(np.array([1.0, 2.0, 3.0]))
    >>> np.exp(log_elementary_symmetric(x, 3)).round(10)  # 1, 1+2+3, 2+3+6, 6
    array([ 1.,  6., 11.,  6.])
    """
    refuse_unreadable([("x", x)])
    xp = _xp.array_namespace(x)
    k = check_int("k", k, low=0)
    method = check_choice("method", method, _METHODS)
    # the losses' front end: float promotion, axis (TypeError if not an integer)
    rows, batch, _ = as_rows(x, name="x", axis=axis, xp=xp, what="the variables' axis")
    dtype = rows.dtype
    x2 = xp.astype(rows, _xp.work_dtype(dtype, xp=xp), copy=False)
    if is_dask_namespace(xp):  # rows are independent: run eagerly on each chunk
        x2 = x2.rechunk({1: -1})
        out = x2.map_blocks(
            _log_esp_block, k, method, dtype=x2.dtype, chunks=(x2.chunks[0], (k + 1,)),
            meta=x2._meta,
        )  # fmt: skip
    elif is_jax_namespace(xp) and not _xp.is_lazy(x2) and not _any_wide(x2):
        out = _jax_log_esp(k, method)(x2)  # one compiled program
    else:
        out = _log_esp_rows(x2, k, method, xp=xp)
    return _xp.round_to(xp.reshape(out, (*batch, k + 1)), dtype, xp=xp)


def _log_esp_block(x: Array, k: int, method: str) -> Array:
    return _log_esp_rows(x, k, method, xp=_xp.array_namespace(x))


@functools.lru_cache(maxsize=32)
def _jax_log_esp(k: int, method: str) -> Any:
    import jax

    return jax.jit(lambda x: _log_esp_rows(x, k, method, xp=_xp.array_namespace(x)))


def _log_esp_rows(x: Array, k: int, method: str, *, xp: Namespace) -> Array:
    nb, n = x.shape
    eng = _Engine(xp, x.dtype, _xp.xp_device(x))
    kk = min(k, n)
    degrees = xp.arange(k + 1, device=eng.device)
    if nb == 0 or kk == 0:
        zero = xp.zeros((nb, k + 1), dtype=eng.dtype, device=eng.device)
        return xp.where(degrees == 0, zero, -xp.inf)
    bad = xp.any(xp.isnan(x) | (x == xp.inf), axis=1)
    x = xp.where(bad[:, None], xp.zeros_like(x), x)
    count = xp.sum(
        xp.astype(xp.isfinite(x), _xp.default_int(xp, eng.device)), axis=1
    )  # non-zero weights
    lazy = _xp.is_lazy(x)
    fft_from = _fft_from(method, kk)
    wide = None if lazy else _wide_rows(eng, x)
    if lazy:
        res = _log_esp_lazy(eng, x, kk, count, fft_from)
    elif wide is None:
        res = _log_esp_eager(eng, x, kk, count, fft_from)
    else:  # the ordinary rows as always, the wide ones in score units
        res = xp.full((nb, kk + 1), -xp.inf, dtype=eng.dtype, device=eng.device)
        for sel in (~wide, wide):
            (idx,) = xp.nonzero(sel)
            if idx.shape[0] == 0:
                continue
            xs = xp.take(x, idx, axis=0)
            if sel is wide:
                part = _log_esp_wide(eng, xs, kk)
            else:
                part = _log_esp_eager(eng, xs, kk, xp.take(count, idx), fft_from)
            res = _merge_rows(eng, res, part, sel, idx)
    if kk < k:
        res = xp.concat(
            [res, xp.full((nb, k - kk), -xp.inf, dtype=eng.dtype, device=eng.device)],
            axis=1,
        )
    res = xp.where(degrees[None, :] <= count[:, None], res, -xp.inf)
    res = xp.where(degrees[None, :] == 0, xp.zeros_like(res), res)
    return xp.where(bad[:, None], xp.nan, res)


def _wide_bound(eng: _Engine, n: int) -> float:
    """Entries beyond ``max / (4 n)`` in magnitude may overflow the tilted pass
    (``x + t``, ``m t``, the sum of ``n`` softplus terms)."""
    return float(eng.xp.finfo(eng.dtype).max) / (4 * max(n, 1))


def _any_wide(x: Array) -> bool:
    """Whether an eager ``(..., n)`` array has a finite entry past `_wide_bound`."""
    xp = _xp.array_namespace(x)
    if x.size == 0 or not xp.isdtype(x.dtype, "real floating"):
        return False
    eng = _Engine(xp, x.dtype, _xp.xp_device(x))
    bound = _wide_bound(eng, int(x.shape[-1]))
    hi, lo = _xp.read_float(xp.max(x)), _xp.read_float(xp.min(x))  # NaN: wide
    if hi <= bound and lo >= -bound:
        return False
    finite = xp.isfinite(x)
    return bool(
        xp.any(finite & (xp.abs(xp.where(finite, x, xp.zeros_like(x))) > bound))
    )


def _wide_rows(eng: _Engine, x: Array) -> Array | None:
    """The rows with a finite entry past `_wide_bound` (two reductions say that
    none has, the usual case: ``None``)."""
    xp = eng.xp
    if x.shape[0] == 0:
        return None
    bound = _wide_bound(eng, x.shape[1])
    if _xp.read_float(xp.max(x)) <= bound and _xp.read_float(xp.min(x)) >= -bound:
        return None
    finite = xp.isfinite(x)
    mag = xp.abs(xp.where(finite, x, xp.zeros_like(x)))
    wide = xp.max(mag, axis=1) > bound
    return wide if bool(xp.any(wide)) else None


def _log_esp_wide(eng: _Engine, x: Array, kk: int) -> Array:
    """``log e_0 .. log e_kk`` of rows with entries near the float range.

    Degree ``m`` is computed in score units around the row's ``m``-th largest
    entry ``c``: with ``d = x - c`` and ``G = 2 log(1/eps) + log(n kk)``, the
    entries with ``d > G`` (the set ``D``, at most ``m - 1`` of them) are in every
    ``m``-subset that counts and those with ``d < -G`` in none (what they change
    weighs ``exp(-G)`` against the ``m``-th largest: no digit), so
    ``log e_m = sum_D x_j + (m - |D|) c + log e_{m-|D|}(d')`` with ``d'`` the
    other entries of ``d``.  The sum is formed scaled by ``2^-p <= 1/(n + 1)``, so
    that only a result beyond the range overflows, to ``+-inf`` without a warning.
    Degrees above the number of finite entries are left to the caller.
    """
    xp = eng.xp
    nw, n = x.shape
    fmax = float(xp.finfo(eng.dtype).max)
    width = 2 * math.log(1 / float(xp.finfo(eng.dtype).eps)) + math.log(n * kk)
    scale = 2.0 ** -math.ceil(math.log2(n + 1))
    srt = xp.sort(x, axis=1, descending=True)
    zero = xp.zeros_like(x)
    absent = xp.full_like(x, -xp.inf)
    int_dtype = _xp.default_int(xp, eng.device)
    cols = [xp.zeros((nw,), dtype=eng.dtype, device=eng.device)]
    for m in range(1, kk + 1):
        c = srt[:, m - 1]
        c = xp.where(xp.isfinite(c), c, xp.zeros_like(c))  # fewer than m: masked later
        d = _xp.sub(x, c[:, None], xp=xp)  # -inf stays -inf; +-inf past the range
        dom = d > width
        rest = xp.where(dom | (d < -width), absent, d)
        nd = xp.sum(xp.astype(dom, int_dtype), axis=1)
        logs = _log_esp_rows(rest, m, "direct", xp=xp)  # degrees 0..m
        lm = _xp.take_along_axis(logs, (m - nd)[:, None], xp=xp, axis=1)[:, 0]
        free = xp.astype(m - nd, eng.dtype)
        a_s = xp.sum(xp.where(dom, x * scale, zero), axis=1) + free * (c * scale)
        r_s = a_s + lm * scale
        fits = xp.abs(r_s) <= fmax * scale
        r = xp.where(fits, r_s, xp.zeros_like(r_s)) / scale
        inf = xp.full_like(r, xp.inf)
        cols.append(xp.where(fits, r, xp.where(r_s > 0, inf, -inf)))
    return xp.stack(cols, axis=1)


def _log_esp_pass(
    eng: _Engine, x: Array, K: int, t: Array | None, target: Array, fft_from: int
) -> tuple[Array, Array]:
    """One tree for rows ``x``: ``(log e_0..log e_K, q_0..q_K)``, both ``(B, K+1)``."""
    xp = eng.xp
    size, scratch = _arena_size(_plan(_n_leaves(x.shape[1]), K), x.shape[0], K, False)
    eng.reserve(size, scratch)
    P0, t = _leaves_from(eng, x, t, target)
    _, q = _upsweep(eng, P0, K, fft_from, keep=False)
    q = xp.permute_dims(q, (1, 0))  # (B, K+1)
    # log e_m = log q_m - m t - sum_j log a_j, with -log a_j = softplus(x_j + t).
    norm = xp.sum(_xp.softplus(x + t[:, None], xp=xp), axis=1)
    m = xp.astype(xp.arange(K + 1, device=eng.device), eng.dtype)
    qpos = xp.where(q > 0, q, xp.ones_like(q))
    loge = xp.log(qpos) - m[None, :] * t[:, None] + norm[:, None]
    loge = xp.where(q > 0, loge, -xp.inf)
    return loge, q


def _log_esp_eager(
    eng: _Engine, x: Array, kk: int, count: Array, fft_from: int
) -> Array:
    """Adaptive: accept each degree from the first pass that keeps it healthy."""
    xp = eng.xp
    nb = x.shape[0]
    deg = xp.arange(kk + 1, device=eng.device)
    res = xp.full((nb, kk + 1), -xp.inf, dtype=eng.dtype, device=eng.device)
    # Degree 0 and degrees above the number of finite entries are known.
    accepted = (deg[None, :] == 0) | (deg[None, :] > count[:, None])
    first = True
    while True:
        todo = ~accepted
        rows_todo = xp.any(todo, axis=1)
        if not bool(xp.any(rows_todo)):
            return res
        (idx,) = xp.nonzero(rows_todo)
        xs = xp.take(x, idx, axis=0)
        todo_s = xp.take(todo, idx, axis=0)
        # Target: the highest degree still missing in each row.
        top = xp.max(xp.where(todo_s, deg[None, :], 0), axis=1)
        K = int(xp.max(top))
        target = xp.astype(top, eng.dtype)
        fft_here = fft_from if fft_from <= K else K + 1
        uses_fft = fft_here <= K
        t = None if first and not uses_fft else _mean_tilt(eng, xs, target - 0.5, False)
        loge, q = _log_esp_pass(eng, xs, K, t, target, fft_here)
        floor = _FFT_FLOOR if uses_fft else eng.floor
        degs = deg[None, : K + 1]
        ok = q >= floor
        if not first:  # the degree a mean-matching tilt aims at is always taken
            ok = ok | (degs == top[:, None])
        new = todo_s[:, : K + 1] & ok & (degs <= top[:, None])
        if kk > K:
            pad = xp.zeros((xs.shape[0], kk - K), dtype=xp.bool, device=eng.device)
            new = xp.concat([new, pad], axis=1)
            loge = xp.concat(
                [
                    loge,
                    xp.full(
                        (xs.shape[0], kk - K),
                        -xp.inf,
                        dtype=eng.dtype,
                        device=eng.device,
                    ),
                ],
                axis=1,
            )
        old = xp.take(res, idx, axis=0)
        acc_old = xp.take(accepted, idx, axis=0)
        upd = xp.where(new, loge, old)
        res = _merge_rows(eng, res, upd, rows_todo, idx)
        accepted = _merge_rows(eng, accepted, acc_old | new, rows_todo, idx)
        first = False


def _log_esp_lazy(
    eng: _Engine, x: Array, kk: int, count: Array, fft_from: int
) -> Array:
    """Fixed schedule for lazy arrays: tilts aimed at degrees kk, kk/2, kk/4, ..., 1.

    The passes are stacked along the batch axis (one tree, no data-dependent control
    flow), and each degree takes its value from the pass whose tilted coefficient
    was largest.
    """
    xp = eng.xp
    nb = x.shape[0]
    targets = [kk]
    while targets[-1] > 1:
        targets.append((targets[-1] + 1) // 2)
    R = len(targets)
    cnt = xp.astype(count, eng.dtype)
    goal = xp.concat(
        [xp.clip(xp.minimum(cnt, float(m)), 1.0, None) for m in targets], axis=0
    )
    xs = xp.concat([x] * R, axis=0)
    t = _mean_tilt(eng, xs, goal - 0.5, True, m_max=kk)
    loge, q = _log_esp_pass(eng, xs, kk, t, goal, fft_from)
    loge = xp.reshape(loge, (R, nb, kk + 1))
    q = xp.reshape(q, (R, nb, kk + 1))
    best, score = loge[0, ...], q[0, ...]
    for r in range(1, R):
        better = q[r, ...] > score
        best = xp.where(better, loge[r, ...], best)
        score = xp.where(better, q[r, ...], score)
    return best

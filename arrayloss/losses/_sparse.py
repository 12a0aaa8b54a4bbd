"""Sparse probability mappings, sparsemax and 1.5-entmax, and their Fenchel–Young
losses.

Both mappings are ``p = [(alpha - 1) z - tau]_+^{1/(alpha - 1)}`` (``alpha = 2``:
sparsemax, ``alpha = 1.5``: entmax-1.5) with the threshold ``tau`` that makes ``p``
sum to one, found exactly by sorting (Martins & Astudillo 2016; Peters, Niculae &
Martins 2019, Algorithm 2).  After the max shift every threshold lies in
``[-1, 0]``, so scores below ``-2`` are clipped there before the cumulative sums:
they never enter the support, and the sums stay of the size of the support.  The
threshold is then recomputed from the support alone (for entmax-1.5 with a
two-pass variance), so it does not carry the cumulative sums' rounding.

Only a few entries a row can be in the support, so on NumPy, CuPy and PyTorch the
sort runs on the candidates alone: the entries above a lower bound of ``tau``
(``-1``; for entmax-1.5 tightened by damped Newton steps from the left), packed
into a narrow array.  Lowering the others to -2 changes neither the support nor
``tau``, so the result is that of the sort over all classes, to rounding.

The Fenchel–Young loss ``L(z, t) = Omega*(z) + Omega(t) - <z, t>`` has the gradient
``mapping(z) - t``.  With ``u = (alpha - 1) z - tau`` and ``v = u_+`` it is a sum of
non-negative terms (no cancellation, zero exactly when ``p = t``):

- sparsemax: ``1/2 ||p - t||^2 + sum_j t_j (v_j - u_j)``;
- entmax-1.5: ``sum_j 2/3 (sqrt(t_j) - v_j)^2 (2 sqrt(t_j) + v_j) + 2 t_j (v_j - u_j)``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

from array_api_compat import (
    is_cupy_namespace,
    is_dask_namespace,
    is_jax_namespace,
    is_numpy_namespace,
)

from .. import _xp
from .._api import Kernel, Targets, normalize_axis
from .._doc import filler
from .._typing import Array, Namespace
from ._public import call, grad_twin

__all__ = [
    "entmax15",
    "entmax15_loss",
    "entmax15_loss_and_grad",
    "sparsemax",
    "sparsemax_loss",
    "sparsemax_loss_and_grad",
]

# ----------------------------------------------------------------------------- maps


def _support(ok: Array, *, xp: Namespace) -> Array:
    """``(..., 1)`` integer index of the last sorted entry in the support (``ok``
    is true for the leading ranks ``1..k*``)."""
    k = xp.sum(xp.astype(ok, xp.float32), axis=-1, keepdims=True)  # exact: C < 2^24
    return xp.astype(k, _xp.default_int(xp, _xp.xp_device(ok))) - 1


def _sort_neg(x: Array, *, xp: Namespace) -> Array:
    """``-x`` sorted increasing along the last axis, i.e. ``-x_(k)`` with ``x_(k)``
    the decreasing order statistics: a contiguous array (a descending sort is a
    reversed view on some namespaces, and cumulative sums over it are slow).  Only
    the values matter, so the sort need not be stable."""
    return xp.sort(-x, axis=-1, stable=False)


def _positive_part_(x: Array, *, xp: Namespace) -> Array:
    """``x_+``, written into ``x`` itself on NumPy and CuPy (only for arrays this
    module created: a fresh ``(n, C)`` temporary costs a page fault per 4 KiB)."""
    if is_numpy_namespace(xp) or is_cupy_namespace(xp):
        return xp.maximum(x, 0, out=x)
    return xp.clip(x, min=0.0)


def _can_pack(x: Array, *, xp: Namespace) -> bool:
    """Whether :func:`_candidates` may pack ``x`` (a scattering namespace, enough
    classes to gain from it, no empty axis)."""
    return _xp.scatter_supported(xp) and x.shape[-1] >= 16 and math.prod(x.shape) > 0


def _candidates(x: Array, lower: float | Array, *, xp: Namespace) -> Array:
    """The entries of each row of ``x`` (max-shifted, clipped at -2) above
    ``lower``, a lower bound of the row's threshold in ``[-1, 0]``, packed to the
    front in their order and padded with -2 to the longest row's count; ``x``
    itself where that saves nothing or the namespace cannot scatter.

    An entry at or below a lower bound of ``tau`` never enters the support, and
    lowering it to -2 changes neither the support nor ``tau``: the sort-based
    threshold of the candidates is exactly that of ``x`` (the same sorted prefix,
    the same cumulative sums), at the cost of sorting a few entries a row
    instead of all ``C``.
    """
    n_classes = x.shape[-1]
    if not _can_pack(x, xp=xp):
        return x
    device = _xp.xp_device(x)
    # the flat positions of the kept entries (and a take below: NumPy's boolean
    # getitem is ~4x slower), increasing; each row's count is where its block
    # of positions starts and ends (cheaper than a boolean sum along the rows)
    where = xp.nonzero(xp.reshape(x > lower, (-1,)))[0]
    n_rows = math.prod(x.shape[:-1])
    edges = xp.arange(n_rows + 1, dtype=where.dtype, device=device) * n_classes
    ends = xp.searchsorted(where, edges)
    count = xp.reshape(ends[1:] - ends[:-1], (*x.shape[:-1], 1))
    width = int(xp.max(count))
    if width == 0 or 2 * width > n_classes:  # (0: NaN rows only)
        return x
    out = xp.full((*x.shape[:-1], width), -2.0, dtype=x.dtype, device=device)
    # boolean indexing is row-major: row i's kept entries land in its first
    # count_i slots, in their order
    slots = xp.arange(width, dtype=count.dtype, device=device) < count
    out[slots] = xp.take(xp.reshape(x, (-1,)), where)
    return out


def sparsemax_threshold(x: Array, *, xp: Namespace) -> Array:
    """``tau`` with ``sum_j (x_j - tau)_+ = 1`` along the last axis, ``(..., 1)``;
    ``x`` is max-shifted (its maximum is 0) and clipped at -2."""
    x = _candidates(x, -1.0, xp=xp)  # tau >= -1: the maximum alone gives -1
    n_classes = x.shape[-1]
    s = _sort_neg(x, xp=xp)
    rank = xp.arange(1, n_classes + 1, dtype=x.dtype, device=_xp.xp_device(x))
    # -tau_k = (1 - sum_{j<=k} x_(j)) / k in the cumulative sum's own buffer; the
    # support is the ranks with x_(k) > tau_k, and tau = tau_{k*}
    neg_tau = xp.cumulative_sum(s, axis=-1)
    neg_tau += 1
    neg_tau /= rank
    last = _support(s < neg_tau, xp=xp)
    return -_xp.take_along_axis(neg_tau, last, xp=xp, axis=-1)


def _entmax15_lower(x: Array, tau: Array, steps: int, *, xp: Namespace) -> Array:
    """A lower bound of the entmax-1.5 threshold of each row, ``(..., 1)``:
    damped Newton steps on the convex, decreasing ``f(tau) = sum_j (x_j -
    tau)_+^2 - 1`` from a lower bound ``tau`` (``-1`` or an earlier result).
    Newton from the left of the root stays left of it; each step is shortened by
    a tenth and by a margin far above the rounding of ``f`` (``2^-8 + 4 C eps``),
    so that rounding cannot carry it past the root."""
    margin = 2.0**-8 + 4 * x.shape[-1] * _xp.finfo_eps(x.dtype, xp=xp)
    for _ in range(steps):
        w = _positive_part_(x - tau, xp=xp)
        f = xp.vecdot(w, w, axis=-1)[..., None] - 1
        slope = 2 * xp.sum(w, axis=-1, keepdims=True)  # > 0: the maximum's w = -tau
        tau = xp.maximum(tau, tau + (0.9 * (f / slope) - margin))
    return tau


def entmax15_threshold(x: Array, *, xp: Namespace) -> Array:
    """``tau`` with ``sum_j (x_j - tau)_+^2 = 1`` along the last axis, ``(..., 1)``;
    ``x`` (half the scores) is max-shifted and clipped at -2."""
    if _can_pack(x, xp=xp):
        # tau >= -1 (the maximum alone); three Newton steps on those candidates
        # tighten the bound, and fewer are sorted
        x = _candidates(x, -1.0, xp=xp)
        device = _xp.xp_device(x)
        lower = xp.full((*x.shape[:-1], 1), -1.0, dtype=x.dtype, device=device)
        x = _candidates(x, _entmax15_lower(x, lower, 3, xp=xp), xp=xp)
    n_classes = x.shape[-1]
    s = _sort_neg(x, xp=xp)
    rank = xp.arange(1, n_classes + 1, dtype=x.dtype, device=_xp.xp_device(x))
    neg_mean = xp.cumulative_sum(s, axis=-1)
    neg_mean /= rank
    delta = xp.cumulative_sum(s * s, axis=-1)
    delta /= rank
    delta -= neg_mean * neg_mean  # the variance of the top k ...
    delta = 1 / rank - delta  # ... and delta_k = (1 - k var_k) / k
    neg_mean += xp.sqrt(xp.clip(delta, min=0.0))  # -tau_k
    last = _support(neg_mean >= s, xp=xp)
    # certified finish: the closed form on the support, with a two-pass variance
    k = xp.astype(last + 1, x.dtype)
    inside = x >= -_xp.take_along_axis(s, last, xp=xp, axis=-1)
    zero = xp.zeros_like(x)
    m = xp.sum(xp.where(inside, x, zero), axis=-1, keepdims=True) / k
    dev = xp.where(inside, x - m, zero)
    d = (1 - xp.vecdot(dev, dev, axis=-1)[..., None]) / k
    return m - xp.sqrt(xp.clip(d, min=0.0))


def _shifted(z: Array, scale: float, *, xp: Namespace) -> tuple[Array, Array]:
    """``scale (z - max z)`` clipped at -2 along the last axis (one fresh array),
    and ``max z``."""
    m = xp.max(z, axis=-1, keepdims=True)
    # Clipped after the shift: ``m - 2 / scale`` rounds to ``m`` once the ulp of
    # ``m`` exceeds 2 (``|m| > 2**54`` in float64, ``2**25`` in float32), which
    # clipped every score to the maximum (a uniform mapping).
    x = xp.clip(_xp.sub(z, m, xp=xp, below=True), min=-2 / scale)
    if scale != 1:
        x *= scale  # our own array (JAX and Dask rebind)
    return x, m


def _projected(
    z: Array, scale: float, threshold: Callable[..., Array], *, xp: Namespace
) -> tuple[Array, Array, Array]:
    """``(x - tau)_+`` for ``x, m = _shifted(z, scale)`` and ``tau = threshold(x)``
    (in ``x``, one fresh array), with ``m = max z`` and ``tau``."""
    x, m = _shifted(z, scale, xp=xp)
    tau = threshold(x, xp=xp)
    x -= tau
    return _positive_part_(x, xp=xp), m, tau


def _sparsemax_last(z: Array, *, xp: Namespace) -> Array:
    return _projected(z, 1.0, sparsemax_threshold, xp=xp)[0]


def _entmax15_last(z: Array, *, xp: Namespace) -> Array:
    v = _projected(z, 0.5, entmax15_threshold, xp=xp)[0]
    v *= v
    return v


def _mapping(z: Array, axis: int, fn: Callable[..., Array], name: str) -> Array:
    xp = _xp.array_namespace(z)
    z = _xp.as_floating(z, "z", xp=xp)
    if z.ndim < 1:
        msg = f"`{name}` needs at least one dimension (the class axis); got a 0-d array"
        raise ValueError(msg)
    axis = normalize_axis(axis, z.ndim, name="z")
    last = axis == z.ndim - 1
    x = z if last else xp.moveaxis(z, axis, -1)
    if is_dask_namespace(xp):
        x = x.rechunk({x.ndim - 1: -1})
        out = x.map_blocks(lambda b: fn(b, xp=_xp.array_namespace(b)), dtype=x.dtype)
    elif is_jax_namespace(xp) and not _xp.is_jax_tracer(x):
        out = _jax_program(fn)(x)  # one compiled program, not ~30 dispatches
    else:
        out = fn(x, xp=xp)
    return out if last else xp.moveaxis(out, -1, axis)


@functools.lru_cache(maxsize=4)
def _jax_program(fn: Callable[..., Array]) -> Any:
    import jax

    return jax.jit(lambda x: fn(x, xp=_xp.array_namespace(x)))


_fill = filler(
    {
        "mapping": """Parameters
----------
z : array
    Real scores; integer arrays are promoted to the default float.
axis : int
    The class axis.

Returns
-------
array
    Probabilities of ``z``'s shape, dtype and device, summing to 1 along
    ``axis``, with zeros outside the support.""",
        "martins": """.. [1] A. F. T. Martins and R. F. Astudillo, "From Softmax to Sparsemax: A
   Sparse Model of Attention and Multi-Label Classification", ICML 2016,
   arXiv:1602.02068.""",
        "peters": """.. [1] B. Peters, V. Niculae and A. F. T. Martins, "Sparse Sequence-to-Sequence
   Models", ACL 2019, arXiv:1905.05702.""",
        "blondel": """.. [2] M. Blondel, A. F. T. Martins and V. Niculae, "Learning with
   Fenchel-Young Losses", JMLR 21(35), 2020.""",
        "references_sparsemax": "References\n----------\n%(martins)s\n%(blondel)s",
        "references_entmax15": "References\n----------\n%(peters)s\n%(blondel)s",
    }
)
"""`arrayloss._doc.fill_doc` with the mappings' sections and the References
sections of the sparsemax and the 1.5-entmax pairs (mapping and loss)."""


@_fill
def sparsemax(z: Array, /, axis: int = -1) -> Array:
    r"""Sparsemax, the Euclidean projection onto the probability simplex.

    .. math::

        \operatorname{sparsemax}(z) = \operatorname*{argmin}_{p \in \Delta}
            \lVert p - z \rVert^2 = [z - \tau(z)]_+,
        \qquad \tau = \frac{\sum_{j \le k} z_{(j)} - 1}{k},

    with ``k`` the largest rank such that ``1 + k z_(k) > sum_{j<=k} z_(j)``
    (``z_(j)`` sorted decreasing).  Exact, by one sort along ``axis`` (of the
    entries within 1 of the maximum, the only ones that can be in the support);
    a score far above the others gives an exactly one-hot row.  Its Jacobian is
    ``diag(s) - s s^T / |S|`` on the support ``S`` (``s`` its indicator).

    %(mapping)s

    %(references_sparsemax)s

    %(examples)s
    >>> print(al.sparsemax(s))
    [[0.  0.2 0.  0.  0.8]]

    A score at least 1 above all others gives an exactly one-hot row:

    >>> print(al.sparsemax(np.array([3.0, 0.5, -1.0])))
    [1. 0. 0.]
    """
    return _mapping(z, axis, _sparsemax_last, "sparsemax")


@_fill
def entmax15(z: Array, /, axis: int = -1) -> Array:
    r"""1.5-entmax (Peters, Niculae & Martins 2019): between softmax and sparsemax.

    .. math::

        \operatorname{entmax}_{1.5}(z) = \operatorname*{argmax}_{p \in \Delta}
            \langle p, z \rangle + \mathsf{H}^{\mathrm{T}}_{1.5}(p)
            = \bigl[z/2 - \tau\bigr]_+^2,

    with the Tsallis entropy ``H_1.5(p) = (1 - sum_j p_j^1.5) / 0.75`` and ``tau``
    from the exact sort-based algorithm (Algorithm 2 of the paper; on the entries
    above a certified lower bound of ``tau`` only), finished by the closed form on
    the support.  Its Jacobian is ``diag(v) - v v^T / sum(v)`` with
    ``v = sqrt(p)`` (times 1/2 for ``z``).

    %(mapping)s

    %(references_entmax15)s

    %(examples)s
    >>> print(al.entmax15(s))
    [[0.  0.2926... 0.  0.  0.7073...]]
    """
    return _mapping(z, axis, _entmax15_last, "entmax15")


# ----------------------------------------------------------------------------- losses


def _label_grad(p: Array, t: Targets, *, xp: Namespace) -> tuple[Array, Array]:
    """``p - e_y`` with ``p_y - 1`` written as minus the sum of the others, and
    that sum, ``(n,)``; on our own ``p``, in place where the namespace allows."""
    if _xp.scatter_supported(xp):
        rows = xp.arange(p.shape[0], device=_xp.xp_device(p))
        p[rows, t.index] = 0
        rest = xp.sum(p, axis=1)
        p[rows, t.index] = -rest
        return p, rest
    rest = xp.sum(xp.where(t.mask, xp.zeros_like(p), p), axis=1)
    return xp.where(t.mask, -rest[:, None], p), rest


def _sparsemax_loss_rows(
    z: Array, t: Targets, *, xp: Namespace, want_grad: bool
) -> tuple[Array, Array | None]:
    p, m, tau = _projected(z, 1.0, sparsemax_threshold, xp=xp)
    if t.index is not None:
        u_y = (t.pick(z) - m[:, 0]) - tau[:, 0]
        gap_y = xp.clip(-u_y, min=0.0)  # (tau - x_y)_+
        g, _ = _label_grad(p, t, xp=xp)
        # 1/2 ||p - e_y||^2 = 1/2 ||g||^2, with g_y = -(sum of the others) exact
        loss = 0.5 * xp.vecdot(g, g, axis=-1) + gap_y
        return loss, (g if want_grad else None)
    q = t.probs
    d = p - q
    # z - m is -inf (quietly) past the float range; a class of no mass adds 0.
    gap = xp.clip(tau - _xp.sub(z, m, xp=xp, below=True), min=0.0)
    gap = _xp.massless_zeroed(q, gap, xp=xp)
    mass = xp.vecdot(q, gap, axis=-1)
    over = xp.isinf(mass)
    if _xp.is_lazy(over) or bool(xp.any(over)):
        # a class of mass whose gap ~ max z - z_j overflowed: q_j gap_j from the
        # halves (finite wherever it is: 1e-300 * 3.6e308)
        terms = _xp.times_mass(q, gap, xp=xp, scores=z, top=m)
        mass = xp.where(over, xp.sum(terms, axis=1), mass)
    loss = 0.5 * xp.vecdot(d, d, axis=-1) + mass
    return loss, (d if want_grad else None)


def _entmax15_loss_rows(
    z: Array, t: Targets, *, xp: Namespace, want_grad: bool
) -> tuple[Array, Array | None]:
    v, m, tau = _projected(z, 0.5, entmax15_threshold, xp=xp)
    p = v * v
    if t.index is not None:
        u_y = 0.5 * (t.pick(z) - m[:, 0]) - tau[:, 0]
        v_y = xp.clip(u_y, min=0.0)
        gap_y = v_y - u_y
        g, rest = _label_grad(p, t, xp=xp)
        # sum_{j != y} v_j^3 = <g, v> + rest v_y  (g_y = -rest, g_j = p_j)
        cube = xp.vecdot(g, v, axis=-1) + rest * v_y
        one_minus = rest / (1 + v_y)  # 1 - sqrt(p_y), exactly
        loss = (2 / 3) * (one_minus * one_minus * (2 + v_y) + cube) + 2 * gap_y
        return loss, (g if want_grad else None)
    q = t.probs
    s = xp.sqrt(q)
    d = s - v
    # z - m is -inf (quietly) past the float range: 0 there for a class of no
    # mass, whose term is then 0 (not 0 * inf).
    zm = _xp.massless_zeroed(q, _xp.sub(z, m, xp=xp, below=True), xp=xp)
    gap = v - (0.5 * zm - tau)
    # 2 q gap, with gap ~ (max z - z_j) / 2 from the halves where that overflowed
    # (a class of mass 1e-300 two max below the others adds 3.6e8, not inf)
    mass = _xp.times_mass(2 * q, gap, xp=xp, scores=0.5 * z, top=0.5 * m)
    terms = (2 / 3) * d * d * (2 * s + v) + mass
    return xp.sum(terms, axis=1), (p - q if want_grad else None)


# On JAX each kernel is one compiled program per shape (about 30 operations).
_SPARSEMAX = Kernel("sparsemax_loss", _sparsemax_loss_rows, jax_compile=())
_ENTMAX15 = Kernel("entmax15_loss", _entmax15_loss_rows, jax_compile=())


@_fill
def sparsemax_loss(
    logits: Array,
    labels: Array,
    /,
    *,
    axis: int = -1,
    reduction: str = "mean",
    weights: Array | None = None,
    ignore_index: int | None = None,
    class_weights: Array | None = None,
) -> Array:
    r"""Sparsemax loss (Martins & Astudillo 2016), the Fenchel–Young loss of
    :func:`sparsemax`.

    .. math::

        \ell(z, t) = \tfrac12 \lVert p - t \rVert^2
            + \sum_j t_j\, (\tau - z_j)_+,
        \quad p = \operatorname{sparsemax}(z),
        \qquad \frac{\partial \ell}{\partial z} = p - t;

    for a one-hot target this is the paper's
    ``-z_y + 1/2 sum_{j in S} (z_j^2 - tau^2) + 1/2``, written as a sum of
    non-negative terms.  It is zero exactly when ``sparsemax(z) = t``, convex, and
    its gradient is continuous but piecewise linear: it has kinks where the support
    changes (``z_j = tau``), declared for `arrayloss.gradcheck`.  Optax's
    ``sparsemax_loss`` / ``multiclass_sparsemax_loss`` compute the same values.

    %(parameters_returns)s

    %(references_sparsemax)s

    %(examples)s
    >>> print(f"{float(al.sparsemax_loss(s, np.array([2]))):.6f}")
    3.440000
    """
    return call(_SPARSEMAX, locals())


sparsemax_loss_and_grad = grad_twin(_SPARSEMAX, sparsemax_loss)


@_fill
def entmax15_loss(
    logits: Array,
    labels: Array,
    /,
    *,
    axis: int = -1,
    reduction: str = "mean",
    weights: Array | None = None,
    ignore_index: int | None = None,
    class_weights: Array | None = None,
) -> Array:
    r"""1.5-entmax loss (Peters, Niculae & Martins 2019), the Fenchel–Young loss
    of :func:`entmax15`.

    .. math::

        \ell(z, t) = \langle z, p - t \rangle + \mathsf{H}_{1.5}(p)
            - \mathsf{H}_{1.5}(t),
        \quad p = \operatorname{entmax}_{1.5}(z),
        \quad \mathsf{H}_{1.5}(p) = \frac{1 - \sum_j p_j^{3/2}}{0.75},
        \qquad \frac{\partial \ell}{\partial z} = p - t,

    computed as the sum of non-negative terms
    ``2/3 (sqrt(t_j) - v_j)^2 (2 sqrt(t_j) + v_j) + 2 t_j (v_j - u_j)`` with
    ``u = z/2 - tau`` and ``v = sqrt(p) = u_+``: zero exactly when ``p = t``, and
    accurate for confident rows.  For index labels it equals the ``entmax``
    package's ``Entmax15Loss``.  Smooth (twice differentiable; the third derivative
    jumps where the support changes, declared for `arrayloss.gradcheck`).

    %(parameters_returns)s

    %(references_entmax15)s

    %(examples)s
    >>> print(f"{float(al.entmax15_loss(s, np.array([2]))):.6f}")
    3.553442
    """
    return call(_ENTMAX15, locals())


entmax15_loss_and_grad = grad_twin(_ENTMAX15, entmax15_loss)

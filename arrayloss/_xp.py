"""Namespace, dtype and device helpers, the stable log-sum-exp family, and the
one way to bring an array to the host.

Everything here takes the namespace ``xp`` as a keyword argument and works on any
array-API array.  Nothing here writes into its arguments, except `exp_`, which
exists to do so (for arrays the caller created itself).
"""

from __future__ import annotations

import math
from typing import Any

from array_api_compat import (
    array_namespace,
    is_array_api_strict_namespace,
    is_cupy_array,
    is_cupy_namespace,
    is_dask_array,
    is_dask_namespace,
    is_jax_array,
    is_lazy_array,
    is_numpy_array,
    is_numpy_namespace,
    is_torch_array,
    is_torch_namespace,
)
from array_api_compat import device as xp_device

from ._typing import Array, Namespace

__all__ = [
    "array_namespace",
    "as_0d",
    "as_floating",
    "default_float",
    "default_int",
    "exp_",
    "finfo_eps",
    "is_jax_tracer",
    "is_lazy",
    "jax_staging",
    "log_softmax",
    "logaddexp",
    "logsumexp",
    "massless_zeroed",
    "near_range_rows",
    "owns_writable_buffer",
    "read_float",
    "round_to",
    "row_max_at",
    "scatter_supported",
    "sigmoid",
    "softmax",
    "softplus",
    "sub",
    "sum_leaving_out",
    "take_along_axis",
    "through_softmax",
    "through_softmax_from_g",
    "times_mass",
    "to_numpy",
    "warns",
    "work_dtype",
    "xp_device",
]


def as_0d(x: Array, *, xp: Namespace) -> Array:
    """A reduction's result as a 0-d array, never a NumPy scalar; a torch tensor
    as it is (torch 2.13 warns on ``asarray`` of one that requires grad)."""
    if is_torch_array(x):
        return x
    return xp.asarray(x)


def read_float(x: Array) -> float:
    """The value of a 0-d array as a Python float; a torch tensor detached first
    (reading one that requires grad warns "Converting a tensor with
    requires_grad=True to a scalar")."""
    if is_torch_array(x):
        x = x.detach()
    return float(x)


def is_jax_tracer(x: Array) -> bool:
    """True for a JAX array being traced (inside ``jax.jit``): it has no values."""
    if not is_jax_array(x):
        return False
    import jax

    return isinstance(x, jax.core.Tracer)


def is_lazy(x: Array) -> bool:
    """True when ``x``'s values cannot be read here: a Dask array (reading computes
    it) or a JAX tracer.  Concrete JAX arrays are eager (``array_api_compat``'s
    ``is_lazy_array`` counts every JAX array as lazy)."""
    if is_jax_array(x):
        return is_jax_tracer(x) or jax_staging()
    return bool(is_lazy_array(x))


def jax_staging() -> bool:
    """True while JAX stages operations into a program (inside `jax.jit`, and
    under a transform within it): then even a concrete array's operations give
    tracers, so no value can be read (a ``jit`` over weights or labels with
    logits closed over).  JAX has no public test for it: this reads its trace
    context, and says ``False`` (tracer arguments only) where that is not there."""
    try:
        from jax._src.core import trace_ctx
        from jax._src.interpreters.partial_eval import DynamicJaxprTrace
    except ImportError:  # pragma: no cover - another JAX layout
        return False
    trace = trace_ctx.trace
    while trace is not None:
        if isinstance(trace, DynamicJaxprTrace):
            return True
        trace = getattr(trace, "parent_trace", None)
    return False


def default_float(xp: Namespace, device: object = None) -> object:
    """The namespace's default real floating dtype on ``device``."""
    info = getattr(xp, "__array_namespace_info__", None)
    if info is None:  # pragma: no cover - every supported namespace has it
        return xp.float64
    return info().default_dtypes(device=device)["real floating"]


def default_int(xp: Namespace, device: object = None) -> object:
    """The namespace's default integer dtype (int32 on JAX without x64)."""
    info = getattr(xp, "__array_namespace_info__", None)
    if info is None:  # pragma: no cover - every supported namespace has it
        return xp.int64
    return info().default_dtypes(device=device)["integral"]


def as_floating(x: Array, name: str, *, xp: Namespace) -> Array:
    """Return ``x`` if it is real floating; promote integers to the default float.

    Booleans and complex numbers are rejected with a `TypeError` naming ``name``.
    """
    if xp.isdtype(x.dtype, "real floating"):
        return x
    if xp.isdtype(x.dtype, "integral") and not xp.isdtype(x.dtype, "bool"):
        return xp.astype(x, default_float(xp, xp_device(x)))
    msg = f"`{name}` must have a real floating or integer dtype (got {x.dtype})"
    raise TypeError(msg)


def work_dtype(dtype: object, *, xp: Namespace) -> object:
    """The dtype to compute in for results of ``dtype``: float32 for the 16-bit
    floats (float16, bfloat16), whose range and precision the intermediate steps
    exceed; ``dtype`` itself otherwise.  Results are rounded to ``dtype`` once."""
    return xp.float32 if xp.finfo(dtype).bits < 32 else dtype


def round_to(x: Array, dtype: object, *, xp: Namespace) -> Array:
    """``x`` rounded to the narrower floating ``dtype`` (`work_dtype`'s results):
    what a cast gives, ``+-inf`` where it is beyond the range, without NumPy's
    'overflow encountered in cast' warning."""
    if x.dtype == dtype:
        return x
    info = xp.finfo(dtype)
    big = float(info.max)
    if float(xp.finfo(x.dtype).max) > big:
        # From fmax + half its spacing on, round to nearest (even) gives inf.
        edge = big + float(info.eps) * 2.0 ** (math.frexp(big)[1] - 2)
        inf = xp.full_like(x, xp.inf)
        near = xp.clip(x, min=-big, max=big)  # below the edge: rounds to +-fmax
        x = xp.where(x >= edge, inf, xp.where(x <= -edge, -inf, near))
    return xp.astype(x, dtype)


def finfo_eps(dtype: object, *, xp: Namespace) -> float:
    """Machine epsilon of a floating dtype, as a Python float."""
    return float(xp.finfo(dtype).eps)


def warns(xp: Namespace) -> bool:
    """Whether the namespace warns about floating-point overflow and invalid
    operations (NumPy's errstate): NumPy, array_api_strict and Dask (NumPy in its
    blocks).  The others give the IEEE results silently."""
    return bool(
        is_numpy_namespace(xp)
        or is_array_api_strict_namespace(xp)
        or is_dask_namespace(xp)
    )


def _fits(
    a: Array, b: Array, fmax: float, *, xp: Namespace, below: bool = False
) -> bool:
    """Whether eager ``a`` and ``b`` are empty or their ranges keep every ``a - b``
    within ``+-fmax`` (two max/min reductions; ``below``: `sub`'s promise ``a <=
    b``, only the negative side); ``False`` for lazy arrays, inf and NaN."""
    if is_lazy(a) or is_lazy(b):
        return False
    if a.size == 0 or b.size == 0:
        return True
    hi = 0.0 if below else float(xp.max(a)) - float(xp.min(b))  # Python floats
    lo = float(xp.min(a)) - float(xp.max(b))
    return hi <= fmax and lo >= -fmax


def sub(a: Array, b: Array, *, xp: Namespace, below: bool = False) -> Array:
    """``a - b``, bit for bit, without NumPy's overflow warning.

    A difference of finite numbers beyond the largest float is ``+-inf`` either
    way (IEEE rounding); this only keeps NumPy from warning about it, so that a
    loss whose result is finite (``exp(-inf) = 0``, ``max(-inf, 0) = 0``) stays
    silent under ``-W error``.  Namespaces that never warn get ``a - b``.  Eager
    arrays whose ranges cannot overflow (two max/min reductions, the usual case)
    also get ``a - b``; otherwise the overflowing entries are found from the
    halves, ``a/2 - b/2`` (exact, and it never overflows): ``fl(a - b)``
    overflows exactly when ``|fl(a/2 - b/2)| > max/2``, since scaling by 2
    commutes with rounding.  ``a`` and ``b`` are finite or ``-inf``/``+inf``
    with the difference defined.  ``below=True`` promises ``a <= b`` (``b`` a
    maximum of ``a``, the usual shift): only the negative overflow is looked for.
    """
    if not warns(xp):
        return a - b
    fmax = float(xp.finfo(xp.result_type(a, b)).max)
    if _fits(a, b, fmax, xp=xp, below=below):
        return a - b
    half = a * 0.5 - b * 0.5
    over = half > 0.5 * fmax
    under = half < -0.5 * fmax
    out = over | under
    zero = xp.zeros_like(half)
    d = xp.where(out, zero, a) - xp.where(out, zero, b)
    inf = xp.full_like(d, xp.inf)
    return xp.where(over, inf, xp.where(under, -inf, d))


def logaddexp(a: Array, b: Array, *, xp: Namespace) -> Array:
    """``xp.logaddexp(a, b)``, bit for bit, without NumPy's overflow warning.

    NumPy forms ``a - b`` inside, and warns when it overflows (``logaddexp(-1e308,
    1e308)``) although the result, ``max(a, b)``, is exact; those entries are taken
    as ``max(a, b)`` and the others from ``xp.logaddexp``, as in `sub`.
    """
    if not warns(xp):
        return xp.logaddexp(a, b)
    fmax = float(xp.finfo(xp.result_type(a, b)).max)
    if _fits(a, b, fmax, xp=xp):
        return xp.logaddexp(a, b)
    a, b = xp.broadcast_arrays(a, b)
    zero = xp.zeros_like(a)
    same = a == b  # equal infinities: no inf - inf below
    half = xp.where(same, zero, a) * 0.5 - xp.where(same, zero, b) * 0.5
    far = xp.abs(half) > 0.5 * fmax  # a - b overflows (False for NaN)
    near = xp.logaddexp(xp.where(far, zero, a), xp.where(far, zero, b))
    return xp.where(far, xp.maximum(a, b) + zero, near)  # + 0: as NumPy, -0 -> 0


def logsumexp(
    x: Array, *, xp: Namespace, axis: int = -1, keepdims: bool = False
) -> Array:
    """``log(sum(exp(x)))`` along ``axis``, as ``m + log1p(sum_{j != j*} exp(x_j - m))``.

    ``m = x_{j*}`` is the largest entry (the first, on ties), left out of the sum
    and added exactly, so a row dominated by its maximum keeps full relative
    accuracy in ``logsumexp - m`` (SciPy >= 1.15 uses the same form).  Rows of
    ``-inf`` give ``-inf``, a ``+inf`` entry ``+inf`` and NaN propagates, without
    floating-point warnings.
    """
    axis = axis % x.ndim
    m0 = xp.max(x, axis=axis, keepdims=True)
    finite = xp.isfinite(m0)
    m = xp.where(finite, m0, xp.zeros_like(m0))
    e = xp.exp(sub(x, m, xp=xp, below=True))
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    cols = xp.reshape(xp.arange(x.shape[axis], device=xp_device(x)), tuple(shape))
    top = cols == xp.argmax(x, axis=axis, keepdims=True)
    rest = xp.sum(xp.where(top, xp.zeros_like(e), e), axis=axis, keepdims=True)
    out = xp.where(finite, m + xp.log1p(rest), m0)
    return out if keepdims else xp.squeeze(out, axis=axis)


def log_softmax(x: Array, *, xp: Namespace, axis: int = -1) -> Array:
    """x - logsumexp(x): finite for finite ``x`` however large."""
    return sub(x, logsumexp(x, xp=xp, axis=axis, keepdims=True), xp=xp, below=True)


def softmax(x: Array, *, xp: Namespace, axis: int = -1) -> Array:
    """exp(x - max) / sum(exp(x - max))."""
    e = xp.exp(sub(x, xp.max(x, axis=axis, keepdims=True), xp=xp, below=True))
    return e / xp.sum(e, axis=axis, keepdims=True)


def through_softmax(p: Array, pg: Array, *, xp: Namespace) -> Array:
    """The chain rule through ``p = softmax(s)`` along rows: ``p ⊙ (g − ⟨g, p⟩)``,
    from ``p`` and ``pg = p ⊙ g`` (``g = dL/dp``): ``dL/ds = pg − p Σ pg``.

    At each row's largest probability (the first, at ties) ``pg − p Σ pg`` cancels
    when that probability is near 1, so there it is ``pg (1 − p) − p Σ' pg`` with
    ``1 − p`` and ``Σ'`` the sums over the other classes: all digits of a confident
    row's tiny gradient.  Elsewhere ``p <= 1/2`` and the plain form is accurate.

    ``p`` and ``pg`` are the caller's own arrays: where the namespace writes into
    arrays (`scatter_supported`) the two sums leave the top entries out in place
    and put them back (`sum_leaving_out`: two passes more than the plain form, not
    six), and the top entries of the result are set by index.
    """
    top = xp.argmax(p, axis=1)
    in_place = scatter_supported(xp)
    c_top = sum_leaving_out(p, top, xp=xp, in_place=in_place)[:, None]
    pg_others = sum_leaving_out(pg, top, xp=xp, in_place=in_place)[:, None]
    if in_place:
        rows = xp.arange(p.shape[0], device=xp_device(p))
        p_top, pg_top = p[rows, top][:, None], pg[rows, top][:, None]
        out = pg - p * (pg_others + pg_top)
        out[rows, top] = (pg_top * c_top - p_top * pg_others)[:, 0]
        return out
    classes = xp.arange(p.shape[1], device=xp_device(p))
    first = classes == xp.astype(top, classes.dtype)[:, None]
    zero = xp.zeros_like(p)
    p_top = xp.sum(xp.where(first, p, zero), axis=1, keepdims=True)
    pg_top = xp.sum(xp.where(first, pg, zero), axis=1, keepdims=True)
    out = pg - p * (pg_others + pg_top)
    return xp.where(first, pg_top * c_top - p_top * pg_others, out)


def times_mass(
    q: Array,
    x: Array,
    *,
    xp: Namespace,
    scores: Array | None = None,
    top: Array | None = None,
) -> Array:
    """``q * x`` for target masses ``q``, with ``0`` where a class without mass
    (``q == 0``) has an infinite ``x`` (``log p`` overflowed at scores spread to
    the float range): NaN and an 'invalid value' warning otherwise.  Every other
    entry is the plain product, bit for bit.

    ``scores``: the ``(n, C)`` scores ``z`` whose shift ``z - max z`` (along rows)
    ``x`` is, up to its sign and terms of ``log C`` size (``w``, ``log p``, ``-log
    p``, ``log q - log p``).  Where that shift overflowed (``x`` infinite, ``z``
    finite) but a class has mass, the product is formed from the halves, ``2 q |z/2
    - max z/2|`` with the sign of ``x``: finite wherever the product is (a mass of
    ``1e-300`` on a class ``2 max`` below the others adds ``3.6e8``, not ``inf``),
    ``+-inf`` beyond the range, without a warning.  ``top``: the maxima ``max z``
    (``scores`` then of ``x``'s shape, the entries of ``z`` that ``x`` shifts, as
    ``z_y`` beside ``log p_y``); by default ``max(scores, axis=1)``."""
    if scores is None:
        return q * massless_zeroed(q, x, xp=xp)
    inf = xp.isinf(x)
    out = q * xp.where((q == 0) & inf, xp.zeros_like(x), x)  # massless_zeroed's
    if not is_lazy(inf) and not bool(xp.any(inf)):
        return out  # nothing overflowed (the usual case): two passes more
    m = xp.max(scores, axis=1, keepdims=True) if top is None else top
    over = inf & (q != 0) & xp.isfinite(scores) & xp.isfinite(m)
    mag = q * (m * 0.5 - scores * 0.5)  # >= 0, finite: |halves| <= max
    beyond = mag > 0.5 * float(xp.finfo(mag.dtype).max)
    zero = xp.zeros_like(mag)
    val = xp.where(beyond, xp.full_like(mag, xp.inf), 2 * xp.where(beyond, zero, mag))
    return xp.where(over, xp.where(x < 0, -val, val), out)


def near_range_rows(x: Array, *, xp: Namespace) -> Array | None:
    """The boolean ``(n,)`` rows of ``(n, C)`` terms of one sign whose sum along the
    rows is near or past the float range (``|sum| > max / 2``, from the mean, which
    cannot overflow), or ``None`` where no row's sum can overflow (eager arrays with
    every ``|x| <= max / C``, the usual case: one reduction).  For sums that must
    not warn: those rows are formed otherwise."""
    n = x.shape[1]
    fmax = float(xp.finfo(x.dtype).max)
    if n == 0 or x.shape[0] == 0:
        return None
    if not is_lazy(x) and float(xp.max(xp.abs(x))) <= fmax / n:
        return None
    return xp.abs(xp.sum(x / n, axis=1)) > 0.5 * fmax / n


def massless_zeroed(q: Array, x: Array, *, xp: Namespace) -> Array:
    """``x`` with ``0`` where ``q == 0`` and ``x`` is infinite (`times_mass`'s
    factor, for products formed otherwise: ``vecdot``, ``2 * q * x``)."""
    void = (q == 0) & xp.isinf(x)
    return xp.where(void, xp.zeros_like(x), x)


def through_softmax_from_g(p: Array, g: Array, *, xp: Namespace) -> Array:
    """`through_softmax` from ``g = dL/dp`` itself, finite everywhere (a bounded
    gradient): every entry keeps its digits, not only each row's largest.

    ``p ⊙ ((g − h) − r)`` with ``h = Σ p g`` and ``r = Σ p (g − h) / Σ p``: one
    step of iterative refinement of ``⟨g, p⟩``, so that ``g_j − ⟨g, p⟩``, which
    cancels wherever ``g_j`` is near the mean (two tied top classes, a confident
    row), is ``(g_j − h) − r`` with ``g_j − h`` exact there (Sterbenz) and ``r``
    the small remainder, itself a sum of small terms.  It is the pairwise form
    ``p_j Σ_k p_k (g_j − g_k) / Σ p`` to working precision, at four passes over
    the rows more than the plain form (``p ⊙ g``, its sum, ``pg − p Σ pg``).
    """
    h = xp.sum(p * g, axis=1, keepdims=True)
    dev = g - h
    r = xp.sum(p * dev, axis=1, keepdims=True) / xp.sum(p, axis=1, keepdims=True)
    return p * (dev - r)


def row_max_at(z: Array, top: Array, *, xp: Namespace) -> Array:
    """The row maxima ``z[i, top[i]]`` of ``(n, C)`` scores, ``top`` their arg-max,
    shape ``(n, 1)``: a gather where the namespace has ``take_along_axis`` (not a
    second pass over the rows after the arg-max), else ``max``."""
    if hasattr(xp, "take_along_axis"):
        return xp.take_along_axis(z, top[:, None], axis=1)
    return xp.max(z, axis=1, keepdims=True)


def sum_leaving_out(e: Array, top: Array, *, xp: Namespace, in_place: bool) -> Array:
    """``sum(e, axis=1)`` without each row's entry ``top[i]``, shape ``(n,)`` (the
    softmax's sum less the first maximum's ``exp(0) = 1``, with all its digits
    where the whole sum rounds to 1).  ``in_place``: ``e`` is the caller's own
    array on a namespace that writes into arrays, whose entries are set to 0 for
    the sum and put back (O(n) more work); else a masked copy."""
    if in_place:
        rows = xp.arange(e.shape[0], device=xp_device(e))
        kept = e[rows, top]
        e[rows, top] = 0
        out = xp.sum(e, axis=1)
        e[rows, top] = kept
        return out
    classes = xp.arange(e.shape[1], device=xp_device(e))
    first = classes == xp.astype(top, classes.dtype)[:, None]
    return xp.sum(xp.where(first, xp.zeros_like(e), e), axis=1)


def sigmoid(x: Array, *, xp: Namespace) -> Array:
    """1 / (1 + exp(-x)) without overflow warnings: exp of a non-positive number."""
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


def softplus(x: Array, *, xp: Namespace) -> Array:
    """log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|))."""
    return xp.maximum(x, xp.zeros_like(x)) + xp.log1p(xp.exp(-xp.abs(x)))


def take_along_axis(
    x: Array, indices: Array, *, xp: Namespace, axis: int = -1
) -> Array:
    """``xp.take_along_axis``, with a gather by one-hot masks where a namespace
    lacks it (array-api-compat's Dask wrapper): exact, at O(size * k) cost."""
    if hasattr(xp, "take_along_axis"):
        return xp.take_along_axis(x, indices, axis=axis)
    axis = axis % x.ndim
    n = x.shape[axis]
    classes = xp.arange(n, device=xp_device(x))
    shape = [1] * (x.ndim + 1)
    shape[axis + 1] = n
    classes = xp.reshape(classes, tuple(shape))
    hit = xp.expand_dims(indices, axis=axis + 1) == classes
    picked = xp.where(
        hit, xp.expand_dims(x, axis=axis), xp.zeros_like(xp.expand_dims(x, axis=axis))
    )
    return xp.sum(picked, axis=axis + 1)


def exp_(x: Array, *, xp: Namespace) -> Array:
    """``exp(x)``, written into ``x`` itself on NumPy and CuPy.

    Only for arrays the caller created: on these machines a fresh large temporary
    costs a page fault per 4 KiB, more than the exponential itself.
    """
    if is_numpy_namespace(xp) or is_cupy_namespace(xp):
        return xp.exp(x, out=x)
    return xp.exp(x)


def owns_writable_buffer(x: Array, *, xp: Namespace) -> bool:
    """True for a NumPy/CuPy array that owns its writable memory (not a view)."""
    if is_numpy_namespace(xp):
        return bool(x.flags.owndata and x.flags.writeable)
    if is_cupy_namespace(xp):
        return bool(x.flags.owndata)
    return False


def scatter_supported(xp: Namespace) -> bool:
    """Whether in-place integer-array assignment works (NumPy, CuPy, PyTorch)."""
    return is_numpy_namespace(xp) or is_cupy_namespace(xp) or is_torch_namespace(xp)


def to_numpy(x: Any) -> Any:
    """Any backend's array (or a Python number or list) as a NumPy array on the host.

    NumPy arrays come back as they are (no copy); the others are copied: CuPy from
    the device, PyTorch detached and from its device, Dask computed, JAX and
    array_api_strict through DLPack or the buffer protocol.
    """
    import numpy as np

    if is_numpy_array(x):
        return np.asarray(x)
    if is_cupy_array(x):
        return np.asarray(x.get())
    if is_torch_array(x):
        import torch

        x = x.detach().cpu()
        if x.dtype == torch.bfloat16:  # NumPy has none; float32 holds it exactly
            x = x.float()
        return np.asarray(x.numpy())
    if is_dask_array(x):
        return np.asarray(_compute(x))
    if hasattr(x, "__dlpack__"):
        try:
            return np.from_dlpack(x)
        except (TypeError, RuntimeError, BufferError, AttributeError, ValueError):
            pass
    return np.asarray(x)


def _compute(x: Any) -> Any:
    # ``x`` typed Any here, so the (untyped) call type-checks with and without Dask
    return x.compute()

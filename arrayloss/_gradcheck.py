"""Check an analytic gradient against SciPy's finite differences.

The check runs in float64 NumPy whatever the input's backend: the inputs are copied
to the host, the analytic row gradients come from the loss itself (with
``reduction="none"``), and the reference from `scipy.differentiate.derivative`
(Richardson-extrapolated central differences), one partial derivative per logit.
Because a per-sample loss depends only on its own row, perturbing logit ``(i, j)``
changes only ``loss_i``: all ``n*C`` partials are evaluated as one vectorised batch
of perturbed rows, so any row-wise loss function can be checked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._registry import get_loss
from ._typing import Array
from ._xp import to_numpy

if TYPE_CHECKING:
    from ._kinks import KinkDistance

__all__ = ["GradcheckResult", "gradcheck", "to_numpy"]

_MAX_ROWS_PER_CALL = 1 << 16


@dataclass(frozen=True)
class GradcheckResult:
    """Outcome of `gradcheck`.

    Attributes
    ----------
    max_abs_error : float
        max |analytic - numeric| over the entries of the checked rows.
    max_rel_error : float
        ``max_abs_error / max(max |numeric|, tiny)``: the normwise relative error.
    ok : bool
        ``max_abs_error <= atol + rtol * max |numeric|`` and a finite gradient.
    analytic, numeric : numpy.ndarray
        The two ``(n, C)`` row gradients, in float64.
    fd_error : numpy.ndarray
        SciPy's own error estimate for each numeric entry.
    checked : numpy.ndarray
        Boolean ``(n,)``: rows compared.  Rows closer than ``min_kink_distance``
        to a kink of a non-smooth loss are left out (their numeric entries are NaN).
    """

    max_abs_error: float
    max_rel_error: float
    ok: bool
    checked: Any = field(repr=False)
    analytic: Any = field(repr=False)
    numeric: Any = field(repr=False)
    fd_error: Any = field(repr=False)


def gradcheck(
    loss: str | Callable[..., Any] | tuple[Callable[..., Any], Callable[..., Any]],
    logits: Array,
    labels: Array,
    /,
    *,
    rtol: float = 1e-6,
    atol: float | None = None,
    initial_step: float = 0.5,
    min_kink_distance: float = 1e-3,
    **params: Any,
) -> GradcheckResult:
    """Compare a loss's analytic gradient with SciPy finite differences.

    Parameters
    ----------
    loss : str, callable or (value_fn, grad_fn)
        A registry name (``"smooth_topk_svm"``), a public loss function of
        arrayloss (``arrayloss.tanimoto``) or a pair of your own functions.  Your
        ``value_fn(logits, labels, **params)`` must return per-sample losses of
        shape ``(n,)`` for ``(n, C)`` logits, and ``grad_fn(logits, labels,
        **params)`` the ``(n, C)`` row gradients (row ``i`` = d loss_i / d
        logits_i).  Both receive float64 NumPy arrays.
    logits : array of shape (n, C)
        Points at which to check, from any backend (copied to float64 NumPy).
    labels : array of shape (n,) or (n, C)
        Class indices or soft labels.
    rtol, atol : float
        Pass when ``max |analytic - numeric| <= atol + rtol * max |numeric|``.
        The default ``atol`` is ``1e-10 * max(1, max |loss|)``, the noise floor of
        float64 finite differences: where the gradient itself is smaller than that
        (saturated softmax outputs, clipped regions), only absolute agreement can
        be checked.
    initial_step : float
        First (largest) finite-difference step.  For the non-smooth losses of the
        registry it is reduced per row to half the distance to the nearest kink.
    min_kink_distance : float
        Rows closer than this to a kink are not compared (see ``checked``).
    **params
        The loss's own parameters (``k=5``, ``margin=1.0``, ...).

    Returns
    -------
    GradcheckResult

    Notes
    -----
    The derivatives come from `scipy.differentiate.derivative` (order 8).  At a
    kink of a piecewise loss (hinges, clipping, sorting) the analytic value is one
    subgradient and finite differences straddle it, so registry losses with kinks
    (`arrayloss._kinks`) get smaller steps near them and rows on them are left out.
    With your own ``(value_fn, grad_fn)``, choose points farther than
    ``initial_step`` from every kink.

    Examples
    --------
    >>> import numpy as np
    >>> import arrayloss as al
    >>> rng = np.random.default_rng(0)
    >>> res = al.gradcheck("cross_entropy", rng.normal(size=(4, 5)), np.array([0, 1, 2, 3]))
    >>> res.ok, res.max_rel_error < 1e-10
    (True, True)
    """
    import numpy as np
    from scipy.differentiate import derivative

    z = np.array(to_numpy(logits), dtype=np.float64)
    y = to_numpy(labels)
    if z.ndim != 2:
        msg = f"`logits` must have shape (n, C) for gradcheck (got shape {z.shape})"
        raise ValueError(msg)
    if not np.issubdtype(y.dtype, np.integer):
        y = y.astype(np.float64)
    value_fn, grad_fn, kinks = _resolve(loss, params)
    analytic = np.asarray(to_numpy(grad_fn(z, y)), dtype=np.float64)
    if atol is None:
        values = np.asarray(to_numpy(value_fn(z, y)), dtype=np.float64)
        atol = 1e-10 * max(1.0, float(np.max(np.abs(values), initial=0.0)))
    if analytic.shape != z.shape:
        msg = f"the gradient has shape {analytic.shape}, expected {z.shape}"
        raise ValueError(msg)

    n, c = z.shape
    step = np.full(n, float(initial_step))
    checked = np.ones(n, dtype=bool)
    if kinks is not None and y.ndim == 1:
        distance = np.asarray(kinks(z, y, params), dtype=np.float64)
        step = np.minimum(step, distance / 2)
        checked = distance >= min_kink_distance
        step[~checked] = initial_step
    rows = np.broadcast_to(np.arange(n)[:, None], (n, c))
    cols = np.broadcast_to(np.arange(c)[None, :], (n, c))

    def perturbed(x: Any, i: Any, j: Any) -> Any:
        # x: the value of logit (i, j), one per active element and point.
        x, i, j = np.broadcast_arrays(x, i, j)
        flat_x, flat_i, flat_j = (
            x.ravel(),
            i.ravel().astype(np.intp),
            j.ravel().astype(np.intp),
        )
        out = np.empty(flat_x.shape)
        step = max(1, _MAX_ROWS_PER_CALL // max(c, 1))
        for start in range(0, flat_x.size, step):
            sl = slice(start, start + step)
            zz = z[flat_i[sl]].copy()
            zz[np.arange(zz.shape[0]), flat_j[sl]] = flat_x[sl]
            out[sl] = to_numpy(value_fn(zz, y[flat_i[sl]]))
        return out.reshape(x.shape)

    res = derivative(
        perturbed, z, args=(rows, cols), initial_step=step[:, None], order=8,
        # Few halvings: beyond ~3 the stencil's rounding noise outgrows the
        # truncation error it removes (measured: 100x worse at maxiter=10).
        tolerances={"atol": 0.0, "rtol": 1e-14}, maxiter=3,
    )  # fmt: skip
    numeric = np.where(checked[:, None], np.asarray(res.df, dtype=np.float64), np.nan)
    diff = np.abs(analytic - numeric)[checked]
    max_abs = float(np.max(diff)) if diff.size else 0.0
    scale = float(np.max(np.abs(numeric[checked]))) if diff.size else 0.0
    rel = max_abs / max(scale, np.finfo(np.float64).tiny)
    ok = bool(max_abs <= atol + rtol * scale) and bool(np.all(np.isfinite(analytic)))
    return GradcheckResult(
        max_abs, rel, ok, checked, analytic, numeric, np.asarray(res.error)
    )


def _resolve(
    loss: str | Callable[..., Any] | tuple[Callable[..., Any], Callable[..., Any]],
    params: dict[str, Any],
) -> tuple[Callable[[Any, Any], Any], Callable[[Any, Any], Any], KinkDistance | None]:
    if isinstance(loss, tuple):
        if len(loss) != 2 or not all(callable(f) for f in loss):
            msg = "`loss` given as a tuple must be a pair (value_fn, grad_fn) of callables"
            raise TypeError(msg)
        user_value, user_grad = loss
        return (
            lambda z, y: user_value(z, y, **params),
            lambda z, y: user_grad(z, y, **params),
            None,
        )
    from ._kinks import KINKS

    if callable(loss):
        from ._registry import LOSSES

        match = [i for i in LOSSES.values() if loss in (i.value, i.value_and_grad)]
        if not match:
            msg = (
                f"{getattr(loss, '__name__', loss)!r} is not an arrayloss loss; pass a "
                "registry name or a (value_fn, grad_fn) pair"
            )
            raise TypeError(msg)
        info = match[0]
    else:
        info = get_loss(loss)
    return (
        lambda z, y: info.value(z, y, reduction="none", **params),
        lambda z, y: info.value_and_grad(z, y, reduction="none", **params)[1],
        KINKS.get(info.name),
    )

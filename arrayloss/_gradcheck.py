"""Check an analytic gradient against SciPy's finite differences.

The check runs in float64 NumPy whatever the input's backend: the inputs are copied
to the host, the analytic row gradients come from the loss itself (with
``reduction="none"``), and the reference from `scipy.differentiate.derivative`
(Richardson-extrapolated central differences), one partial derivative per logit.
Because a per-sample loss depends only on its own row, perturbing logit ``(i, j)``
changes only ``loss_i``: all ``n*C`` partials are evaluated as one vectorised batch
of perturbed rows, so any row-wise loss function can be checked.

Each row gets one of five verdicts: *checked* and agreeing, *checked* and failing
(after refinement, see `gradcheck`), *at a kink* (not compared), *infinite*: the
loss's value at the row is infinite, where finite differences measure nothing (not
compared), or *unresolved*: the value is finite but so large that its rounding,
the row's finite-difference noise floor, exceeds 1 and the row's largest gradient
entry (no error of either size would show), or the row disagrees while its scores
are too coarse for the steps (``fl(s + h) - s != h``: an error the rounded
perturbations alone may cause); not compared.  A check that compared no row is neither
a pass nor a failure: its `GradcheckResult.status` is ``"skipped"`` and ``ok`` is
``False``; one with a row of infinite value (and none failed) is ``"infinite"``,
one with an unresolved row ``"unresolved"``, neither ``ok``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ._api import CONVENTIONS
from ._registry import get_loss
from ._typing import Array
from ._validation import check_real
from ._xp import to_numpy

if TYPE_CHECKING:
    from ._kinks import KinkDistance

__all__ = ["GradcheckResult", "gradcheck", "to_numpy"]

_MAX_ROWS_PER_CALL = 1 << 16
# Steps tried, as fractions of the first one, for rows whose first estimate
# disagrees: the cheap stencil resolves almost every row; a loss with curvature on
# a finer scale than the step (smooth top-k at small tau, scale k*tau) needs these.
_REFINEMENTS = (8.0**-1, 8.0**-2, 8.0**-3, 8.0**-4, 8.0**-5)
# Rows whose value changes by more than this (relative) when the rest of the batch
# changes are not row-wise.
_ROWWISE_RTOL = 1e-12
# The default absolute tolerance per unit of |loss|: the rounding noise of float64
# finite differences of a value of that size.
_NOISE_FLOOR = 1e-10
# A bound on the finite-difference error per unit of ``spacing(z) / step *
# |gradient|`` from perturbed scores rounded to the float grid (the stencil's
# weights and Richardson extrapolation amplify each point's rounding).
_PERTURBATION_GAIN = 10.0

Status = Literal["passed", "failed", "skipped", "infinite", "unresolved"]


@dataclass(frozen=True)
class GradcheckResult:
    """Outcome of `gradcheck`.

    Attributes
    ----------
    max_abs_error : float
        ``max |analytic - numeric|`` over the entries of the checked rows (``nan``
        when no row was checked).
    max_rel_error : float
        ``max_abs_error / max(max |numeric|, tiny)``: the normwise relative error
        (``nan`` when no row was checked).
    n_checked : int
        Rows compared (``checked.sum()``).
    n_at_kink : int
        Rows not compared because they lie within ``min_kink_distance`` of a kink
        of the loss (where the analytic gradient is one subgradient among many).
    n_failed : int
        Checked rows that disagree at every finite-difference step tried, plus
        rows (checked or at a kink) whose analytic gradient is not finite.
    checked : numpy.ndarray
        Boolean ``(n,)``: rows compared.  The numeric entries of the other rows
        are NaN.
    failed : numpy.ndarray
        Boolean ``(n,)``: the rows counted in ``n_failed``.
    analytic, numeric : numpy.ndarray
        The two ``(n, C)`` row gradients, in float64.
    fd_error : numpy.ndarray
        SciPy's own error estimate for each numeric entry.
    tolerance : float
        The bound ``atol + rtol * max |numeric|`` each row's error was held to.
    atol : float
        The absolute part of ``tolerance`` (the default noise floor if not given).
        Where ``atol > rtol * max |numeric|`` the gradient is below the
        finite-difference noise floor and only absolute agreement was checked
        (``max_rel_error`` may then exceed ``rtol`` in a pass).
    n_infinite : int
        Rows not compared because the loss's value there is infinite (``+-inf``):
        finite differences of an infinite value measure nothing, so neither a
        pass nor a failure can be told there (their analytic gradient is not
        examined either).
    infinite : numpy.ndarray
        Boolean ``(n,)``: the rows counted in ``n_infinite``.
    n_unresolved : int
        Rows not compared because, with the default ``atol``, their own noise
        floor ``1e-10 * |loss_i|`` exceeds 1 and their largest analytic gradient
        entry (a loss of ``1e200`` whose gradient is of order 1), or that
        disagree while their scores are too coarse for the steps (``|s| ~
        1e15``, where ``fl(s + h) - s != h``): finite differences cannot
        resolve the gradient there.
    unresolved : numpy.ndarray
        Boolean ``(n,)``: the rows counted in ``n_unresolved``.
    unresolved_reason : str
        Why those rows are unresolved (the loss too large, the scores too
        coarse, or both, with the largest such value); ``""`` when none is.

    Notes
    -----
    ``status`` is ``"passed"`` (``ok``) when at least one row was compared and
    none failed, was infinite or unresolved, ``"failed"`` when a row failed,
    ``"infinite"`` when none failed but the value is infinite at a row,
    ``"unresolved"`` when none failed or was infinite but a row was unresolved,
    and ``"skipped"`` when no row was compared for another reason (kinks): a
    check that compared nothing, or left a point unchecked because finite
    differences cannot check it, never passes.
    """

    max_abs_error: float
    max_rel_error: float
    n_checked: int
    n_at_kink: int
    n_failed: int
    checked: Any = field(repr=False)
    failed: Any = field(repr=False)
    analytic: Any = field(repr=False)
    numeric: Any = field(repr=False)
    fd_error: Any = field(repr=False)
    tolerance: float = field(default=math.nan, repr=False)
    atol: float = field(default=math.nan, repr=False)
    n_infinite: int = 0
    infinite: Any = field(default=None, repr=False)
    n_unresolved: int = 0
    unresolved: Any = field(default=None, repr=False)
    unresolved_reason: str = field(default="", repr=False)

    @property
    def below_noise_floor(self) -> bool:
        """True when the absolute tolerance dominated the relative one."""
        return bool(self.atol > self.tolerance - self.atol)

    @property
    def status(self) -> Status:
        """``"passed"``, ``"failed"``, ``"infinite"`` (the value is infinite at a
        row), ``"unresolved"`` (a row's noise floor exceeds 1 and its gradient) or
        ``"skipped"`` (no row compared)."""
        if self.n_failed:
            return "failed"
        if self.n_infinite:
            return "infinite"
        if self.n_unresolved:
            return "unresolved"
        return "passed" if self.n_checked else "skipped"

    @property
    def ok(self) -> bool:
        """True when at least one row was compared and every row agreed."""
        return self.status == "passed"

    @property
    def reason(self) -> str:
        """One line saying why the status is what it is."""

        n = len(self.checked)
        kink = f", {self.n_at_kink} at a kink" if self.n_at_kink else ""
        agree = f"; {self.n_checked} of {n} rows agree" if self.n_checked else ""
        if self.status == "infinite":
            return (
                f"the loss is infinite at {self.n_infinite} of {n} rows "
                f"(row {_rows_shown(self.infinite)}): finite differences cannot "
                f"check a gradient there{agree}{kink}"
            )
        if self.status == "unresolved":
            return (
                f"finite differences cannot resolve the gradient at "
                f"{self.n_unresolved} of {n} rows (row {_rows_shown(self.unresolved)}): "
                f"{self.unresolved_reason}{agree}{kink}"
            )
        if self.status == "skipped":
            return (
                f"nothing compared: all {n} rows lie within min_kink_distance of a "
                "kink of the loss"
            )
        if self.status == "failed":
            return (
                f"{self.n_failed} of {n} rows disagree (max relative error "
                f"{self.max_rel_error:.2e}){kink}"
            )
        return f"{self.n_checked} of {n} rows agree{kink}"


def _rows_shown(mask: Any) -> str:
    """The first few rows of a boolean ``(n,)`` mask, for a message."""
    import numpy as np

    rows = np.flatnonzero(mask)
    return ", ".join(str(i) for i in rows[:5]) + (", ..." if rows.size > 5 else "")


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
        shape ``(n,)`` for ``(n, C)`` logits, row ``i`` depending on row ``i``
        only (with soft labels, the label handling may look across the batch:
        every evaluation of perturbed rows carries the whole batch along), and
        ``grad_fn(logits, labels, **params)`` the ``(n, C)`` row
        gradients (row ``i`` = d loss_i / d logits_i).  Both receive float64
        NumPy arrays.
    logits : array of shape (n, C)
        Finite points at which to check, from any backend (copied to float64
        NumPy); ``n >= 1``, ``C >= 1``.
    labels : array of shape (n,) or (n, C)
        Class indices or soft labels.
    rtol, atol : float
        Pass when every checked row has ``max |analytic - numeric| <= atol +
        rtol * max |numeric|`` (the maximum of ``|numeric|`` over all checked
        rows).  ``0 <= rtol < 1``.  The default ``atol`` is ``1e-10 * max(1, max
        |loss|)`` over the compared rows, the noise floor of float64 finite
        differences: where the gradient itself is smaller than that (saturated
        softmax outputs, clipped regions), only absolute agreement can be
        checked.  A row whose own floor ``1e-10 * |loss_i|`` exceeds 1 and its
        largest analytic gradient entry is not compared (*unresolved*: no error
        of order one or of the gradient's size would show), so that one huge
        loss neither passes unchecked nor loosens the check of the other rows.  ``atol >= 0``; ``rtol`` and
        ``atol`` may not both be 0.
    initial_step : float
        First (largest) finite-difference step, ``> 0``.  For the non-smooth
        losses of the registry it is reduced per row to half the distance to the
        nearest kink.
    min_kink_distance : float
        Rows closer than this (``>= 0``) to a kink are not compared (see
        ``checked`` and ``n_at_kink``); a row exactly on a kink never is.
    **params
        The loss's own parameters (``k=5``, ``margin=1.0``, ...) and, for a
        registry loss, the conventions ``ignore_index`` and ``class_weights``
        (ignored rows have the constant loss 0 and are compared as smooth).
        A pair of your own functions receives them all as given.

    Returns
    -------
    GradcheckResult
        ``ok`` only if at least one row was compared and all compared rows
        agree; ``status`` is ``"skipped"`` when no row was compared,
        ``"infinite"`` when the loss's value is infinite at a row (and no row
        failed), and ``"unresolved"`` when it is finite but too large at a row
        for its gradient to be resolved (see ``atol``): finite differences cannot
        check a gradient there, so such a point is neither passed nor failed.

    Raises
    ------
    ValueError
        Logits that are not a non-empty finite ``(n, C)`` array, labels of
        another batch shape, a tolerance or step that is negative, NaN or
        infinite, a value function that does not return ``(n,)`` per-row values
        (or whose row ``i`` depends on other rows), a gradient of the wrong
        shape, or the loss's own parameter errors.
    TypeError
        Logits of a dtype the losses refuse (bool, complex, object), a
        callable that is not an arrayloss loss, a malformed pair, a
        tolerance that is not a real number, or ``reduction`` or ``weights``
        given for a registry loss (the check is of per-sample gradients).

    Notes
    -----
    The derivatives come from `scipy.differentiate.derivative` (order 8),
    first with ``initial_step`` and three halvings.  A row whose estimate then
    disagrees is not failed yet: it is recomputed with steps 8, 64, ...,
    32768 times smaller, and fails only if no step resolves it.  A correct
    gradient whose curvature lives on a finer scale than the first step (the
    smooth top-k SVM at ``tau=0.01`` varies on the scale ``k * tau``) is then
    accepted; a wrong one disagrees at every step.  The reported ``numeric``
    row is the estimate that agreed, or for a failed row the one with the
    smallest SciPy error estimate.

    At a kink of a piecewise loss (hinges, clipping, sorting) the analytic value
    is one subgradient and finite differences straddle it, so registry losses
    with kinks (`arrayloss._kinks`, for class indices and soft labels) get
    smaller steps near them and rows on them are left out.  With your own
    ``(value_fn, grad_fn)``, choose points farther than ``initial_step`` from
    every kink.

    Examples
    --------
    >>> import numpy as np
    >>> import arrayloss as al
    >>> rng = np.random.default_rng(0)
    >>> res = al.gradcheck("cross_entropy", rng.normal(size=(4, 5)), np.array([0, 1, 2, 3]))
    >>> res.ok, res.n_checked, res.max_rel_error < 1e-10
    (True, 4, True)
    >>> res = al.gradcheck("l1", np.zeros((2, 3)), np.array([0, 1]))
    >>> res.status, res.ok
    ('skipped', False)
    >>> z = np.array([[0.0, -1e308, 1e308]])  # its loss for class 1 is 2e308: inf
    >>> res = al.gradcheck("cross_entropy", z, np.array([1]))
    >>> res.status, res.ok, res.n_infinite
    ('infinite', False, 1)
    >>> z = np.array([[0.0, -1e300, 1.0], [0.0, 1.0, 2.0]])  # loss 1e300, gradient ~1
    >>> res = al.gradcheck("cross_entropy", z, np.array([1, 0]))
    >>> res.status, res.n_unresolved, res.n_checked
    ('unresolved', 1, 1)
    """
    import numpy as np

    rtol = check_real("rtol", rtol, low=0)
    if rtol >= 1:
        msg = (
            f"`rtol` must be < 1: a larger one passes any gradient (got rtol={rtol!r})"
        )
        raise ValueError(msg)
    if atol is not None:
        atol = check_real("atol", atol, low=0)
        if atol == 0 and rtol == 0:
            msg = "`rtol` and `atol` are both 0: no finite-difference estimate can pass"
            raise ValueError(msg)
    initial_step = check_real("initial_step", initial_step, low=0, low_open=True)
    min_kink_distance = check_real("min_kink_distance", min_kink_distance, low=0)

    z_host = np.asarray(to_numpy(logits))
    if z_host.dtype.kind not in "iuf":  # as every loss refuses it
        msg = (
            f"`logits` must have a real floating or integer dtype (got {z_host.dtype})"
        )
        raise TypeError(msg)
    z = np.array(z_host, dtype=np.float64)
    y = to_numpy(labels)
    if z.ndim != 2 or 0 in z.shape:
        msg = (
            "`logits` must have shape (n, C) with n >= 1 and C >= 1 for gradcheck "
            f"(got shape {z.shape})"
        )
        raise ValueError(msg)
    n, c = z.shape
    if not np.all(np.isfinite(z)):
        msg = "`logits` must be finite for gradcheck (got NaN or infinite entries)"
        raise ValueError(msg)
    if y.shape not in ((n,), (n, c)):
        msg = (
            f"`labels` must have shape ({n},) (class indices) or ({n}, {c}) "
            f"(soft labels) for logits of shape {z.shape} (got shape {y.shape})"
        )
        raise ValueError(msg)
    if not np.issubdtype(y.dtype, np.integer):
        y = y.astype(np.float64)
    value_fn, grad_fn, kinks = _resolve(loss, params)
    values = _row_values(value_fn, z, y, what="value function")
    _require_rowwise(value_fn, z, y, values)
    analytic = np.asarray(to_numpy(grad_fn(z, y)), dtype=np.float64)
    if analytic.shape != z.shape:
        msg = (
            f"the gradient function returned shape {analytic.shape}, expected "
            f"{z.shape} (row i = d loss_i / d logits_i)"
        )
        raise ValueError(msg)
    step = np.full(n, initial_step)
    smooth = np.ones(n, dtype=bool)
    if kinks is not None:
        distance = _kink_distance(kinks, z, y, params)
        step = np.minimum(step, distance / 2)
        # A row on a kink (distance 0) is never compared, whatever the option.
        smooth = (distance >= min_kink_distance) & (distance > 0)
    # Finite differences of an infinite value measure nothing: not compared.
    infinite = np.isinf(values)
    good_analytic = np.all(np.isfinite(analytic), axis=1)
    unresolved = np.zeros(n, dtype=bool)
    if atol is None:
        # Each row's own noise floor; a row whose floor exceeds 1 and its own
        # gradient cannot be resolved (no error of either size would show): not
        # compared, and not let loosen the other rows' tolerance.
        with np.errstate(invalid="ignore"):
            floor = _NOISE_FLOOR * np.maximum(1.0, np.abs(values))
            largest = np.max(np.abs(analytic), axis=1, initial=0.0)
            unresolved = (
                smooth & ~infinite & good_analytic & (floor > np.maximum(largest, 1.0))
            )
        compared = smooth & ~infinite & ~unresolved
        atol = float(np.max(floor[compared], initial=_NOISE_FLOOR))
    checked = smooth & ~infinite & ~unresolved
    active = np.flatnonzero(checked)
    numeric = np.full((n, c), np.nan)
    fd_error = np.full((n, c), np.nan)
    if active.size:
        numeric[active], fd_error[active] = _estimate(
            value_fn, z, y, active, step[active]
        )

    def scale_of(num: Any) -> float:
        vals = np.abs(num[checked])
        vals = vals[np.isfinite(vals)]
        return float(np.max(vals, initial=0.0))

    def row_error(rows: Any, num: Any) -> Any:
        err = np.max(np.abs(analytic[rows] - num), axis=1)
        return np.where(np.isnan(err), np.inf, err)

    bound = atol + rtol * scale_of(numeric)
    bad = active[row_error(active, numeric[active]) > bound]
    best = np.where(np.isnan(fd_error), np.inf, fd_error).max(axis=1)
    for factor in _REFINEMENTS:
        if bad.size == 0:
            break
        num, err = _estimate(value_fn, z, y, bad, step[bad] * factor)
        agrees = row_error(bad, num) <= bound
        row_err = np.where(np.isnan(err), np.inf, err).max(axis=1)
        better = agrees | (row_err < best[bad])
        numeric[bad[better]], fd_error[bad[better]] = num[better], err[better]
        best[bad[better]] = row_err[better]
        bad = bad[~agrees]

    scale = scale_of(numeric)
    tolerance = atol + rtol * scale
    errors = np.full(n, np.nan)
    errors[active] = row_error(active, numeric[active])
    failed = (checked & ~(errors <= tolerance)) | (~good_analytic & ~infinite)
    # A disagreeing row whose scores are too coarse for the steps is not resolved
    # either: the perturbed scores are not the stencil's (fl(z + h) - z != h), an
    # error that may exceed the tolerance.  Not a failure, not compared.
    with np.errstate(all="ignore"):
        coarse_error = (
            _PERTURBATION_GAIN
            * np.max(np.spacing(np.abs(z)), axis=1)
            / (step / 8)
            * np.max(np.abs(analytic), axis=1, initial=0.0)
        )
    coarse = failed & checked & good_analytic & (coarse_error > tolerance)
    floor_unresolved = unresolved
    if coarse.any():
        failed, checked = failed & ~coarse, checked & ~coarse
        unresolved = unresolved | coarse
        numeric[coarse] = fd_error[coarse] = np.nan
        errors[coarse] = np.nan
        active = np.flatnonzero(checked)
    if active.size:
        max_abs = float(np.max(errors[active]))
        rel = max_abs / max(scale, np.finfo(np.float64).tiny)
    else:
        max_abs = rel = math.nan
    return GradcheckResult(
        max_abs_error=max_abs,
        max_rel_error=rel,
        n_checked=int(active.size),
        n_at_kink=int(np.sum(~smooth & ~infinite)),
        n_failed=int(np.sum(failed)),
        checked=checked,
        failed=failed,
        analytic=analytic,
        numeric=numeric,
        fd_error=fd_error,
        tolerance=tolerance,
        atol=atol,
        n_infinite=int(np.sum(infinite)),
        infinite=infinite,
        n_unresolved=int(np.sum(unresolved)),
        unresolved=unresolved,
        unresolved_reason=_unresolved_reason(values, z, floor_unresolved, coarse),
    )


def _unresolved_reason(values: Any, z: Any, floor: Any, coarse: Any) -> str:
    """Why the unresolved rows are so: a loss too large for its gradient
    (``floor``), scores too coarse for the steps (``coarse``); ``""`` if none."""
    import numpy as np

    why = []
    if floor.any():
        largest = float(np.max(np.abs(values[floor])))
        why.append(
            f"the loss there (up to {largest:.3g}) rounds by more than 1 and than "
            "its largest gradient entry"
        )
    if coarse.any():
        largest = float(np.max(np.abs(z[coarse])))
        why.append(
            f"the scores there (up to {largest:.3g}) are too coarse for the "
            "finite-difference steps"
        )
    return "; ".join(why)


def _kink_distance(kinks: KinkDistance, z: Any, y: Any, params: dict[str, Any]) -> Any:
    """The oracle's ``(n,)`` distances to a kink (NaN read as on a kink).

    The oracles know the loss's own parameters only: a row whose label is
    ``ignore_index`` has the constant loss 0 (no kink, infinite distance) and is
    given to the oracle as class 0; ``class_weights`` scale a row's loss and move
    no kink.
    """
    import numpy as np

    own = {k: v for k, v in params.items() if k not in CONVENTIONS}
    ignore = params.get("ignore_index")
    ignored = np.zeros(z.shape[0], dtype=bool)
    if ignore is not None and y.ndim == 1:
        ignored = y == ignore
        y = np.where(ignored, 0, y)
    # The oracles are plain float64 NumPy: at scores spread to the float range
    # their differences overflow to +-inf (a distance beyond any step, or NaN, read
    # as on a kink) with NumPy's warnings, which are the oracles' own, not the
    # caller's problem (they were errors where warnings are).
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        distance = np.asarray(kinks(z, y, own), dtype=np.float64)
    distance = np.where(np.isnan(distance), 0.0, distance)
    return np.where(ignored, np.inf, distance)


def _row_values(
    value_fn: Callable[[Any, Any], Any], z: Any, y: Any, *, what: str
) -> Any:
    """``value_fn(z, y)`` as float64 NumPy, required to have shape ``(len(z),)``."""
    import numpy as np

    values = np.asarray(to_numpy(value_fn(z, y)), dtype=np.float64)
    if values.shape != (z.shape[0],):
        msg = (
            f"the {what} returned shape {values.shape} for logits of shape {z.shape}: "
            f"gradcheck needs per-sample losses of shape ({z.shape[0]},) "
            "(registry losses: reduction='none')"
        )
        raise ValueError(msg)
    return values


def _in_context(
    value_fn: Callable[[Any, Any], Any], zz: Any, yy: Any, z: Any, y: Any
) -> Any:
    """Per-row values of the rows ``(zz, yy)``; with soft labels evaluated together
    with the whole batch ``(z, y)`` appended, so that a loss whose label handling
    looks across the batch (Keras' hinge conversion, which asks whether *every*
    target is 0 or 1) treats the rows as it does in the batch."""
    import numpy as np

    if y.ndim != 2:
        return _row_values(value_fn, zz, yy, what="value function")
    both = _row_values(
        value_fn,
        np.concatenate([zz, z]),
        np.concatenate([yy, y]),
        what="value function",
    )
    return both[: zz.shape[0]]


def _require_rowwise(
    value_fn: Callable[[Any, Any], Any], z: Any, y: Any, values: Any
) -> None:
    """Each half of the batch on its own must give the same per-row values."""
    import numpy as np

    n = z.shape[0]
    if n < 2:
        return
    half = n // 2
    parts = np.concatenate(
        [
            _in_context(value_fn, z[:half], y[:half], z, y),
            _in_context(value_fn, z[half:], y[half:], z, y),
        ]
    )
    both = np.isfinite(values) & np.isfinite(parts)
    with np.errstate(invalid="ignore"):  # inf - inf at rows of infinite value
        same = np.abs(parts - values) <= _ROWWISE_RTOL * np.maximum(1.0, np.abs(values))
    if not np.all(np.where(both, same, np.isnan(values) == np.isnan(parts))):
        i = int(np.argmin(np.where(both, same, True)))
        where = "in half of it" if y.ndim == 1 else "in a larger batch"
        msg = (
            f"the loss is not row-wise: row {i}'s value is {float(values[i])!r} in the "
            f"whole batch but {float(parts[i])!r} {where}; gradcheck needs each "
            "row's loss to depend on that row only"
        )
        raise ValueError(msg)


def _estimate(
    value_fn: Callable[[Any, Any], Any], z: Any, y: Any, rows: Any, step: Any
) -> tuple[Any, Any]:
    """SciPy's central-difference partials of rows ``rows``, each with its step."""
    import numpy as np
    from scipy.differentiate import derivative

    n, c = len(rows), z.shape[1]
    ii = np.broadcast_to(np.asarray(rows)[:, None], (n, c))
    jj = np.broadcast_to(np.arange(c)[None, :], (n, c))

    def perturbed(x: Any, i: Any, j: Any) -> Any:
        # x: the value of logit (i, j), one per active element and point.
        x, i, j = np.broadcast_arrays(x, i, j)
        flat_x, flat_i, flat_j = (
            x.ravel(),
            i.ravel().astype(np.intp),
            j.ravel().astype(np.intp),
        )
        out = np.empty(flat_x.shape)
        chunk = max(1, _MAX_ROWS_PER_CALL // max(c, 1))
        for start in range(0, flat_x.size, chunk):
            sl = slice(start, start + chunk)
            zz = z[flat_i[sl]].copy()
            zz[np.arange(zz.shape[0]), flat_j[sl]] = flat_x[sl]
            out[sl] = _in_context(value_fn, zz, y[flat_i[sl]], z, y)
        return out.reshape(x.shape)

    with np.errstate(all="ignore"):
        res = derivative(
            perturbed, z[rows], args=(ii, jj), initial_step=np.asarray(step)[:, None],
            order=8,
            # Few halvings: beyond ~3 the stencil's rounding noise outgrows the
            # truncation error it removes (measured: 100x worse at maxiter=10).
            tolerances={"atol": 0.0, "rtol": 1e-14}, maxiter=3,
        )  # fmt: skip
    return (
        np.array(res.df, dtype=np.float64),
        np.array(res.error, dtype=np.float64),
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
    elif isinstance(loss, str):
        info = get_loss(loss)
    else:
        msg = (
            "`loss` must be a registry name, an arrayloss loss function or a "
            f"(value_fn, grad_fn) pair (got {type(loss).__name__})"
        )
        raise TypeError(msg)
    for key in ("reduction", "weights"):
        if key in params:
            msg = (
                f"`gradcheck` takes no `{key}`: it checks each sample's gradient "
                "of the per-sample losses (reduction='none', unweighted)"
            )
            raise TypeError(msg)
    if params.get("class_weights") is not None:  # to NumPy, as the logits
        params = {**params, "class_weights": to_numpy(params["class_weights"])}
    return (
        lambda z, y: info.value(z, y, reduction="none", **params),
        lambda z, y: info.value_and_grad(z, y, reduction="none", **params)[1],
        KINKS.get(info.name),
    )

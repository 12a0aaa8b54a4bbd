"""Dispatch of the smooth top-k SVM to the compiled per-row kernel (optional numba).

The NumPy path of `arrayloss.losses._topk` calls `smooth_topk_rows` here when
`applies` says so: NumPy float32/float64 scores, ``method`` ``"auto"`` or
``"direct"`` (``"fft"`` asks for the array tree's FFT products), numba importable
(the ``fast`` extra: ``pip install "arrayloss[fast]"``), and the environment
variable ``ARRAYLOSS_NUMBA`` not set to ``0``.  Every other case runs the array-API
tree of `arrayloss.esp`, which remains the reference and the fallback.

numba is imported on the first such call, never by ``import arrayloss``.  The
kernel has one signature (a float64 and a float32 slot for the scores and for the
gradient, the unused one empty; float64 arithmetic for both), compiled on
first use (about 12 s on one core) and cached on disk (``cache=True``: next to the
module, or in numba's user-wide cache directory ``~/.cache/numba`` when the
installation is read-only; ``NUMBA_CACHE_DIR`` overrides); a later process loads
it in well under a second.  The algorithm is
described in `arrayloss._esp_numba`.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from typing import Any

from array_api_compat import is_numpy_namespace

from ._typing import Array, Namespace

__all__ = ["ENV_VAR", "applies", "available", "smooth_topk_rows"]

ENV_VAR = "ARRAYLOSS_NUMBA"
"""Set to ``0`` to run the array path on NumPy too (for comparison)."""

_METHODS = ("auto", "direct")


@functools.cache
def available() -> bool:
    """Whether numba can be imported (looked up once, without importing it)."""
    return importlib.util.find_spec("numba") is not None


def applies(xp: Namespace, z: Array, method: str) -> bool:
    """Whether the compiled kernel computes this smooth top-k call."""
    if not is_numpy_namespace(xp) or method not in _METHODS:
        return False
    if os.environ.get(ENV_VAR, "1").strip() == "0" or not available():
        return False
    import numpy as np

    return z.dtype in (np.float32, np.float64)


def _segment(k: int) -> int:
    """Classes per backward segment of the compiled kernel (a multiple of four).

    Its checkpoints hold ``(C / S) d W`` float64 and its segment table ``S d W``
    (``d = 8`` degrees for ``k <= 8``, in registers otherwise) or ``S (k + 4) W / 4``
    (``k > 8``), ``W = 16`` rows: few checkpoints, a table of at most 256 kB."""
    return 16 if k <= 8 else max(4, min(64, 4096 // k)) // 4 * 4


def smooth_topk_rows(
    z: Array, labels: Array, *, k: int, tau: float, alpha: float, want_grad: bool
) -> tuple[Array, Array | None]:
    """Loss rows ``(n,)`` and gradient rows ``(n, C)`` (or ``None``) in ``z``'s dtype.

    ``z`` is ``(n, C)`` finite NumPy float32/float64, ``labels`` ``(n,)`` integer
    class indices, ``2 <= k < C``.  Neither is written into.
    """
    import numpy as np

    from . import _esp_numba

    zc: Any = z
    # Copies: a read-only or non-contiguous array is another numba type, and would
    # compile the kernel a second time.
    lab = np.array(labels, dtype=np.intp)
    if not (zc.flags.c_contiguous and zc.flags.writeable):
        zc = np.array(zc, order="C")
    n, c = zc.shape
    f64 = zc.dtype == np.float64
    loss = np.empty(n)
    grad = np.empty((n, c) if want_grad else (0, 0), dtype=zc.dtype)  # returned
    params = np.array([k, tau, alpha, 1.0 / (k * tau), 1.0], dtype=np.float64)
    _esp_numba.smooth_topk_rows(
        zc if f64 else _empty("float64"),
        _empty("float32") if f64 else zc,
        lab,
        params,
        loss,
        grad if f64 else _empty("float64"),
        _empty("float32") if f64 else grad,
        _segment(k),
    )
    if not f64:
        loss = loss.astype(zc.dtype)
    return loss, (grad if want_grad else None)


def _empty(dtype: str) -> Any:
    """A ``(0, 0)`` array: the kernel's argument of the dtype not in use."""
    import numpy as np

    return np.empty((0, 0), dtype=dtype)

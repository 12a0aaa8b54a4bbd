"""arrayloss: classification losses with exact analytic gradients for any array
library that follows the Python array API standard (NumPy, CuPy, PyTorch, JAX,
Dask).

Every loss is a pair of functions, ``name(logits, labels, /, **options)`` and
``name_and_grad(...)``; ``LOSSES`` maps the canonical names to them, and
``gradcheck`` verifies a gradient against SciPy's finite differences.
"""

from . import esp, keras, losses, metrics
from ._gradcheck import GradcheckResult, gradcheck
from ._registry import LOSSES, USER_LOSSES, LossInfo, value_and_grad
from ._user import register_loss, unregister_loss
from .losses import *  # noqa: F403

__version__ = "0.1.0"

__all__ = [
    "LOSSES",
    "USER_LOSSES",
    "GradcheckResult",
    "LossInfo",
    "__version__",
    "esp",
    "gradcheck",
    "keras",
    "metrics",
    "register_loss",
    "unregister_loss",
    "value_and_grad",
]
__all__ += losses.__all__
__all__.sort()

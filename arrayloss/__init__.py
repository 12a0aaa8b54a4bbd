"""arrayloss: classification losses with exact analytic gradients for any array
library that follows the Python array API standard (NumPy, CuPy, PyTorch, JAX,
Dask).

Every loss is a pair of functions, ``name(logits, labels, /, **options)`` and
``name_and_grad(...)``; ``LOSSES`` maps the canonical names to them, and
``gradcheck`` verifies a gradient against SciPy's finite differences.

The heavier submodules (``datasets``, ``io``, ``mlp`` and the adapters ``torch`` and
``jax``) load on first use, as SciPy's do: ``arrayloss.io`` works after a plain
``import arrayloss`` without making that import slower.
"""

# first of all (it guards the command's Ctrl-C until its handler takes over)
from . import _startup  # noqa: F401  # isort: skip

import importlib as _importlib
import types as _types
from typing import TYPE_CHECKING

from . import esp, keras, losses, metrics
from ._gradcheck import GradcheckResult, gradcheck
from ._registry import LOSSES, USER_LOSSES, LossInfo, value_and_grad
from ._user import register_loss, unregister_loss
from .losses import *  # noqa: F403

if TYPE_CHECKING:
    from . import datasets as datasets
    from . import io as io
    from . import jax as jax
    from . import mlp as mlp
    from . import torch as torch

__version__ = "0.1.0"

# Submodules imported on first attribute access (PEP 562), not by `import arrayloss`.
_LAZY_SUBMODULES = ("datasets", "io", "jax", "mlp", "torch")


def __getattr__(name: str) -> _types.ModuleType:
    if name in _LAZY_SUBMODULES:
        return _importlib.import_module(f"{__name__}.{name}")
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY_SUBMODULES})


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

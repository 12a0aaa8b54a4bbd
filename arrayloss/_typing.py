"""Type aliases. Array typing is still immature across libraries, so (like SciPy and
array-api-extra) arrays are typed as ``Any``."""

from types import ModuleType
from typing import Any, TypeAlias

Array: TypeAlias = Any
Namespace: TypeAlias = ModuleType

__all__ = ["Array", "Namespace"]

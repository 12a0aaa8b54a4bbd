"""The loss functions, one private module per family, re-exported here.

Each family module's ``__all__`` lists its public functions; this package exports
their union (sorted), so a new loss is listed in one place.
"""

from . import (
    _cross_entropy,
    _hinge,
    _janocha,
    _kl,
    _lapin,
    _normalized,
    _robust,
    _sparse,
    _topk,
)
from ._cross_entropy import *  # noqa: F403
from ._hinge import *  # noqa: F403
from ._janocha import *  # noqa: F403
from ._kl import *  # noqa: F403
from ._lapin import *  # noqa: F403
from ._normalized import *  # noqa: F403
from ._robust import *  # noqa: F403
from ._sparse import *  # noqa: F403
from ._topk import *  # noqa: F403

__all__: list[str] = []
__all__ += _cross_entropy.__all__
__all__ += _hinge.__all__
__all__ += _janocha.__all__
__all__ += _kl.__all__
__all__ += _lapin.__all__
__all__ += _normalized.__all__
__all__ += _robust.__all__
__all__ += _sparse.__all__
__all__ += _topk.__all__
__all__.sort()

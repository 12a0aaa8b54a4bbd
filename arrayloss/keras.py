"""The Keras 2.10 loss catalogue on softmax outputs (registry names ``keras.<name>``).

Each loss applies Keras' own formula, with its ``ε = 1e-7`` clipping, to
``q = softmax(logits)``; gradients are with respect to the logits, and an active
clip passes no gradient, exactly as in Keras.  These are the losses compared by
Dräger & Dunkelau (2022).  Several collapse to simpler losses for one-hot targets
(MAE and hinge to the expectation loss over ``C``, Huber to MSE/2, ...) but are kept
separate because they differ for soft targets.

>>> import numpy as np
>>> import arrayloss.keras
>>> s = np.array([[1.0, 2.5, -0.3, 0.7, 3.1]])
>>> print(f"{float(arrayloss.keras.mean_absolute_error(s, np.array([2]))):.6f}")
0.392565
"""

from .losses._keras import *  # noqa: F403 (its __all__: the catalogue)
from .losses._keras import __all__ as __all__

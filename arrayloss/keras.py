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

from .losses._keras import (
    categorical_crossentropy,
    categorical_crossentropy_and_grad,
    categorical_hinge,
    categorical_hinge_and_grad,
    cosine_similarity,
    cosine_similarity_and_grad,
    hinge,
    hinge_and_grad,
    huber,
    huber_and_grad,
    kl_divergence,
    kl_divergence_and_grad,
    log_cosh,
    log_cosh_and_grad,
    mean_absolute_error,
    mean_absolute_error_and_grad,
    mean_absolute_percentage_error,
    mean_absolute_percentage_error_and_grad,
    mean_squared_error,
    mean_squared_error_and_grad,
    mean_squared_logarithmic_error,
    mean_squared_logarithmic_error_and_grad,
    poisson,
    poisson_and_grad,
    squared_hinge,
    squared_hinge_and_grad,
)

__all__ = [
    "categorical_crossentropy",
    "categorical_crossentropy_and_grad",
    "categorical_hinge",
    "categorical_hinge_and_grad",
    "cosine_similarity",
    "cosine_similarity_and_grad",
    "hinge",
    "hinge_and_grad",
    "huber",
    "huber_and_grad",
    "kl_divergence",
    "kl_divergence_and_grad",
    "log_cosh",
    "log_cosh_and_grad",
    "mean_absolute_error",
    "mean_absolute_error_and_grad",
    "mean_absolute_percentage_error",
    "mean_absolute_percentage_error_and_grad",
    "mean_squared_error",
    "mean_squared_error_and_grad",
    "mean_squared_logarithmic_error",
    "mean_squared_logarithmic_error_and_grad",
    "poisson",
    "poisson_and_grad",
    "squared_hinge",
    "squared_hinge_and_grad",
]

"""``LOSSES``: every loss by its canonical name, as one literal mapping."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from . import keras as K
from . import losses as L
from ._api import CONVENTIONS
from ._typing import Array

__all__ = [
    "CONVENTIONS",
    "LOSSES",
    "USER_LOSSES",
    "LossInfo",
    "get_loss",
    "value_and_grad",
]

_COMMON = ("axis", "reduction", "weights")


@dataclass(frozen=True)
class LossInfo:
    """What the registry knows about one loss.

    Attributes
    ----------
    name : str
        The canonical name (the registry key).
    value, value_and_grad : callable
        The public functions ``f(logits, labels, /, **options)``.
    targets : str
        ``"index"`` (class indices only) or ``"index|soft"`` (also soft labels).
    summary : str
        One line saying what the loss is.
    """

    name: str
    value: Callable[..., Array]
    value_and_grad: Callable[..., tuple[Array, Array]]
    targets: str
    summary: str

    @property
    def params(self) -> Mapping[str, Any]:
        """The loss's own keyword parameters and their defaults."""
        sig = inspect.signature(self.value)
        return MappingProxyType(
            {
                p.name: p.default
                for p in sig.parameters.values()
                if p.kind is p.KEYWORD_ONLY and p.name not in (*_COMMON, *CONVENTIONS)
            }
        )


def _info(
    name: str,
    value: Callable[..., Any],
    grad: Callable[..., Any],
    targets: str,
    summary: str,
) -> LossInfo:
    return LossInfo(name, value, grad, targets, summary)


LOSSES: Mapping[str, LossInfo] = MappingProxyType(
    {
        "cross_entropy": _info(
            "cross_entropy", L.cross_entropy, L.cross_entropy_and_grad, "index|soft",
            "softmax cross-entropy lse(s) - <t, s>, optional label smoothing",
        ),
        "l1": _info(
            "l1", L.l1, L.l1_and_grad, "index|soft",
            "L1 distance of the raw logits to the one-hot/soft target, summed over classes",
        ),
        "l2": _info(
            "l2", L.l2, L.l2_and_grad, "index|soft",
            "squared L2 distance of the raw logits to the target, summed over classes",
        ),
        "expectation": _info(
            "expectation", L.expectation, L.expectation_and_grad, "index|soft",
            "L1 distance of softmax to the target; 2(1 - p_y) for one-hot",
        ),
        "regularised_expectation": _info(
            "regularised_expectation", L.regularised_expectation, L.regularised_expectation_and_grad, "index|soft",
            "squared L2 distance of softmax to the target (Brier score)",
        ),
        "chebyshev": _info(
            "chebyshev", L.chebyshev, L.chebyshev_and_grad, "index|soft",
            "L-infinity distance of softmax to the target; 1 - p_y for one-hot",
        ),
        "hinge": _info(
            "hinge", L.hinge, L.hinge_and_grad, "index|soft",
            "one-vs-all hinge on raw logits, y = 2t - 1, margin 0.5",
        ),
        "squared_hinge": _info(
            "squared_hinge", L.squared_hinge, L.squared_hinge_and_grad, "index|soft",
            "one-vs-all squared hinge, margin 0.5; Tang's L2-SVM at margin=1",
        ),
        "cubed_hinge": _info(
            "cubed_hinge", L.cubed_hinge, L.cubed_hinge_and_grad, "index|soft",
            "one-vs-all cubed hinge on raw logits, margin 0.5",
        ),
        "squared_log": _info(
            "squared_log", L.squared_log, L.squared_log_and_grad, "index|soft",
            "positive square of the cross-entropy, (log p_y)^2",
        ),
        "tanimoto": _info(
            "tanimoto", L.tanimoto, L.tanimoto_and_grad, "index|soft",
            "minus the Tanimoto similarity of softmax and the target",
        ),
        "cauchy_schwarz": _info(
            "cauchy_schwarz", L.cauchy_schwarz, L.cauchy_schwarz_and_grad, "index|soft",
            "Cauchy-Schwarz divergence; CE(2s)/2 for one-hot",
        ),
        "kl_divergence": _info(
            "kl_divergence", L.kl_divergence, L.kl_divergence_and_grad, "index|soft",
            "exact KL(t || softmax(s)) with 0 log 0 = 0; CE for one-hot",
        ),
        "multiclass_hinge": _info(
            "multiclass_hinge", L.multiclass_hinge, L.multiclass_hinge_and_grad, "index",
            "Weston-Watkins (CS231n) multiclass SVM, margin 1",
        ),
        "crammer_singer": _info(
            "crammer_singer", L.crammer_singer, L.crammer_singer_and_grad, "index",
            "Crammer-Singer multiclass SVM, margin 1",
        ),
        "smooth_topk_svm": _info(
            "smooth_topk_svm", L.smooth_topk_svm, L.smooth_topk_svm_and_grad, "index",
            "smooth top-k SVM (Berrada et al. 2018); k=1, tau=1, alpha=0 is CE",
        ),
        "topk_svm": _info(
            "topk_svm", L.topk_svm, L.topk_svm_and_grad, "index",
            "hard top-k SVM max(alpha + (s_[k] - s_y)/k, 0) (Berrada et al. 2018)",
        ),
        "topk_hinge_alpha": _info(
            "topk_hinge_alpha", L.topk_hinge_alpha, L.topk_hinge_alpha_and_grad, "index",
            "Lapin top-k hinge alpha: hinge of the mean top-k margin; k=1 is Crammer-Singer",
        ),
        "topk_hinge_beta": _info(
            "topk_hinge_beta", L.topk_hinge_beta, L.topk_hinge_beta_and_grad, "index",
            "Lapin top-k hinge beta: mean of the top-k hinged margins; k=1 is Crammer-Singer",
        ),
        "topk_entropy": _info(
            "topk_entropy", L.topk_entropy, L.topk_entropy_and_grad, "index",
            "Lapin convex top-k entropy; k=1 is cross-entropy",
        ),
        "truncated_topk_entropy": _info(
            "truncated_topk_entropy", L.truncated_topk_entropy, L.truncated_topk_entropy_and_grad, "index",
            "Lapin truncated top-k entropy, drops the k-1 strongest competitors",
        ),
        "focal": _info(
            "focal", L.focal, L.focal_and_grad, "index|soft",
            "focal loss -(1 - p_y)^gamma log p_y (Lin et al. 2017); gamma=0 is CE",
        ),
        "generalized_cross_entropy": _info(
            "generalized_cross_entropy", L.generalized_cross_entropy, L.generalized_cross_entropy_and_grad, "index|soft",
            "generalized CE (1 - p_y^q)/q (Zhang & Sabuncu 2018); q->0 CE, q=1 expectation/2",
        ),
        "symmetric_cross_entropy": _info(
            "symmetric_cross_entropy", L.symmetric_cross_entropy, L.symmetric_cross_entropy_and_grad, "index|soft",
            "alpha CE + beta reverse CE, log 0 = A (Wang et al. 2019)",
        ),
        "normalized_cross_entropy": _info(
            "normalized_cross_entropy", L.normalized_cross_entropy, L.normalized_cross_entropy_and_grad, "index|soft",
            "CE / sum_j(-log p_j), in [0, 1] (Ma et al. 2020)",
        ),
        "nce_rce": _info(
            "nce_rce", L.nce_rce, L.nce_rce_and_grad, "index|soft",
            "active-passive alpha NCE + beta RCE (Ma et al. 2020)",
        ),
        "nce_mae": _info(
            "nce_mae", L.nce_mae, L.nce_mae_and_grad, "index|soft",
            "active-passive alpha NCE + beta MAE, MAE = expectation (Ma et al. 2020)",
        ),
        "poly1": _info(
            "poly1", L.poly1, L.poly1_and_grad, "index|soft",
            "Poly-1 CE + epsilon (1 - p_y) (Leng et al. 2022); epsilon=0 is CE",
        ),
        "taylor_cross_entropy": _info(
            "taylor_cross_entropy", L.taylor_cross_entropy, L.taylor_cross_entropy_and_grad, "index|soft",
            "Taylor CE sum_{i<=t} (1 - p_y)^i / i (Feng et al. 2020)",
        ),
        "sparsemax_loss": _info(
            "sparsemax_loss", L.sparsemax_loss, L.sparsemax_loss_and_grad, "index|soft",
            "sparsemax Fenchel-Young loss (Martins & Astudillo 2016); grad sparsemax(s) - t",
        ),
        "entmax15_loss": _info(
            "entmax15_loss", L.entmax15_loss, L.entmax15_loss_and_grad, "index|soft",
            "1.5-entmax Fenchel-Young loss (Peters et al. 2019); grad entmax15(s) - t",
        ),
        "keras.categorical_crossentropy": _info(
            "keras.categorical_crossentropy", K.categorical_crossentropy, K.categorical_crossentropy_and_grad, "index|soft",
            "Keras CCE on a softmax output (its exact logits path); equals cross_entropy",
        ),
        "keras.kl_divergence": _info(
            "keras.kl_divergence", K.kl_divergence, K.kl_divergence_and_grad, "index|soft",
            "Keras KL with t, q clipped to [eps, 1]: zero gradient where q < eps",
        ),
        "keras.poisson": _info(
            "keras.poisson", K.poisson, K.poisson_and_grad, "index|soft",
            "Keras Poisson mean(q - t log(q + eps)); about (CE + 1)/C for one-hot",
        ),
        "keras.categorical_hinge": _info(
            "keras.categorical_hinge", K.categorical_hinge, K.categorical_hinge_and_grad, "index|soft",
            "Keras max(0, 1 + max_j (1-t_j) q_j - <t, q>): Crammer-Singer on probabilities",
        ),
        "keras.hinge": _info(
            "keras.hinge", K.hinge, K.hinge_and_grad, "index|soft",
            "Keras mean max(0, 1 - t q), t mapped to +-1; expectation loss for one-hot",
        ),
        "keras.squared_hinge": _info(
            "keras.squared_hinge", K.squared_hinge, K.squared_hinge_and_grad, "index|soft",
            "Keras mean max(0, 1 - t q)^2, t mapped to +-1",
        ),
        "keras.mean_squared_error": _info(
            "keras.mean_squared_error", K.mean_squared_error, K.mean_squared_error_and_grad, "index|soft",
            "Keras mean (q - t)^2 = regularised_expectation / C",
        ),
        "keras.mean_absolute_error": _info(
            "keras.mean_absolute_error", K.mean_absolute_error, K.mean_absolute_error_and_grad, "index|soft",
            "Keras mean |q - t|; 2(1 - p_y)/C for one-hot",
        ),
        "keras.mean_absolute_percentage_error": _info(
            "keras.mean_absolute_percentage_error", K.mean_absolute_percentage_error, K.mean_absolute_percentage_error_and_grad, "index|soft",
            "Keras 100 mean |t - q| / max(|t|, eps); about 1e9/C (1 - p_y)",
        ),
        "keras.mean_squared_logarithmic_error": _info(
            "keras.mean_squared_logarithmic_error", K.mean_squared_logarithmic_error, K.mean_squared_logarithmic_error_and_grad, "index|soft",
            "Keras mean (log1p(max(q, eps)) - log1p(max(t, eps)))^2",
        ),
        "keras.log_cosh": _info(
            "keras.log_cosh", K.log_cosh, K.log_cosh_and_grad, "index|soft",
            "Keras mean log cosh(q - t)",
        ),
        "keras.huber": _info(
            "keras.huber", K.huber, K.huber_and_grad, "index|soft",
            "Keras mean Huber(q - t, delta); MSE/2 for delta >= 1",
        ),
        "keras.cosine_similarity": _info(
            "keras.cosine_similarity", K.cosine_similarity, K.cosine_similarity_and_grad, "index|soft",
            "Keras -<t/|t|, q/|q|>; -p_y/|p| for one-hot",
        ),
    }
)  # fmt: skip


_USER: dict[str, LossInfo] = {}
USER_LOSSES: Mapping[str, LossInfo] = MappingProxyType(_USER)
"""The losses added with `arrayloss.register_loss` (which fills ``_USER``), by name."""


def get_loss(name: str) -> LossInfo:
    """The registry entry for ``name`` (built in, or added with
    `arrayloss.register_loss`), or a `ValueError` suggesting close names."""
    try:
        return LOSSES[name]
    except (KeyError, TypeError):
        pass
    try:
        return USER_LOSSES[name]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(name), [*LOSSES, *USER_LOSSES], n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        msg = f"unknown loss {name!r}{hint} (`arrayloss list` shows all {len(LOSSES)})"
        raise ValueError(msg) from None


def value_and_grad(
    name: str, logits: Array, labels: Array, /, **params: Any
) -> tuple[Array, Array]:
    """Loss ``name`` and its gradient with respect to ``logits``.

    ``params`` are the loss's own parameters plus ``axis``, ``reduction`` and
    ``weights``; see ``LOSSES[name].params`` for the defaults.  Every loss also
    takes PyTorch's conventions ``ignore_index`` and ``class_weights`` (index
    labels; see :doc:`/guide/conventions`).
    """
    result: tuple[Array, Array] = get_loss(name).value_and_grad(
        logits, labels, **params
    )
    return result

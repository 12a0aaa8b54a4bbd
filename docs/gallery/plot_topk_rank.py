r"""
Top-k losses against the rank of the true class
===============================================

A top-k loss should charge little while the true class is among the k highest
scores. Here 10 classes have competitor scores :math:`8, 7, \dots, 0` and the true
class is placed halfway between two of them, at rank :math:`r = 1, \dots, 10`
(rank 1: the highest score). Each loss of :data:`arrayloss.LOSSES` that has a ``k``
parameter is drawn at its registry default ``k`` (marked by the dashed line) and
at ``k = 2``.

Inside the top k a loss still charges for the margin the true class is short of
(``alpha`` for the SVMs, ``margin`` for Lapin's hinges; the competitors here are
only 1 apart). The gradient panel shows how hard each loss pushes the true class
up at each rank: the hard top-k SVM pushes equally at every rank, Lapin's
:math:`\alpha` hinge not at all once the margin is met, and the smooth top-k SVM
and the top-k entropies less the higher the true class already ranks.
"""

import matplotlib.pyplot as plt
import numpy as np

import arrayloss as al

C = 10
competitors = np.arange(C - 2, -1, -1.0)  # 8, 7, ..., 0
ranks = np.arange(1, C + 1)
logits = np.empty((C, C))
for i, r in enumerate(ranks):
    above = competitors[r - 2] if r > 1 else competitors[0] + 1.0
    below = competitors[r - 1] if r < C else competitors[-1] - 1.0
    logits[i, 0] = (above + below) / 2  # the true class 0, at rank r
    logits[i, 1:] = competitors
labels = np.zeros(C, dtype=np.int64)

topk = [name for name, info in al.LOSSES.items() if "k" in info.params]
fig, axes = plt.subplots(
    len(topk), 2, figsize=(8, 1.6 * len(topk) + 0.8), sharex=True, squeeze=False,
    layout="constrained",
)  # fmt: skip
for (ax_loss, ax_grad), name in zip(axes, topk, strict=True):
    default_k = al.LOSSES[name].params["k"]
    for k, style in ((default_k, "o-"), (2, "s:")):
        loss, grad = al.value_and_grad(name, logits, labels, k=k, reduction="none")
        ax_loss.plot(ranks, loss, style, ms=3, label=f"k={k}")
        ax_grad.plot(ranks, grad[:, 0], style, ms=3)
    for ax in (ax_loss, ax_grad):
        ax.axvline(default_k + 0.5, color="0.6", ls="--", lw=0.8)
    ax_loss.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
axes[0, 0].legend(fontsize=7)
axes[0, 0].set_title("loss")
axes[0, 1].set_title(r"$\partial \ell / \partial s_y$")
for ax in axes[-1]:
    ax.set_xlabel("rank of the true class")
    ax.set_xticks(ranks)
plt.show()

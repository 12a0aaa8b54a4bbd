r"""
Every loss against the true-class margin
========================================

One figure per family: for each loss, the loss of one sample (left) and its
gradient with respect to the true-class score :math:`s_y` (right), against the
true-class margin

.. math::

    m = s_y - \max_{j \ne y} s_j ,

with 10 classes, every competitor scoring 0 and each loss at its registry
defaults. The losses are taken from :data:`arrayloss.LOSSES` and grouped by
family; a loss in a module of its own forms a family named by that module.

What to look for:

- **saturation**: a loss that goes flat as :math:`m \to -\infty` (its gradient goes
  to 0) stops learning from confidently wrong samples, which is what makes the
  expectation losses robust to label noise and slow to recover from a bad start;
- **boundedness**: the softmax-distance losses are bounded, cross-entropy and the
  raw-logit L1/L2 losses are not;
- **kinks**: hinge-type losses have jumps in the gradient at the margin; the Keras
  losses' :math:`\varepsilon = 10^{-7}` clipping zeroes the gradient of samples
  whose true-class probability is below it.
"""

import sys

import matplotlib.pyplot as plt
import numpy as np

import arrayloss as al

# Known families, in reading order; any other loss is grouped by its module.
FAMILIES = {
    "Softmax cross-entropy": ["cross_entropy", "kl_divergence"],
    "Janocha & Czarnecki (2017)": [
        "l1", "l2", "expectation", "regularised_expectation", "chebyshev", "hinge",
        "squared_hinge", "cubed_hinge", "squared_log", "tanimoto", "cauchy_schwarz",
    ],
    "Multiclass SVMs": ["multiclass_hinge", "crammer_singer"],
    "Top-k, Berrada et al. (2018)": ["smooth_topk_svm", "topk_svm"],
    "Top-k, Lapin et al. (2015, 2016)": [
        "topk_hinge_alpha", "topk_hinge_beta", "topk_entropy", "truncated_topk_entropy",
    ],
}  # fmt: skip


def families():
    """``{title: [loss names]}`` covering every registered loss exactly once."""
    groups = {t: [n for n in names if n in al.LOSSES] for t, names in FAMILIES.items()}
    known = {n for names in groups.values() for n in names}
    for name, info in al.LOSSES.items():
        if name in known:
            continue
        if name.startswith("keras."):
            title = "Keras 2.10 (Dräger & Dunkelau 2022)"
        else:
            module = sys.modules[info.value.__module__]
            doc = (module.__doc__ or module.__name__).strip().splitlines()[0]
            title = doc.rstrip(".")
        groups.setdefault(title, []).append(name)
    return {t: names for t, names in groups.items() if names}


C = 10
margin = np.linspace(-6.0, 6.0, 481)
logits = np.zeros((margin.size, C))
logits[:, 0] = margin  # the true class is 0; all competitors score 0
labels = np.zeros(margin.size, dtype=np.int64)

for title, names in families().items():
    fig, axes = plt.subplots(
        len(names), 2, figsize=(8, 1.35 * len(names) + 0.8), sharex=True,
        squeeze=False, layout="constrained",
    )  # fmt: skip
    for (ax_loss, ax_grad), name in zip(axes, names, strict=True):
        loss, grad = al.value_and_grad(name, logits, labels, reduction="none")
        ax_loss.plot(margin, loss)
        ax_loss.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
        ax_grad.plot(margin, grad[:, 0], color="C1")
        ax_grad.axhline(0, color="0.8", lw=0.8)
    axes[0, 0].set_title("loss")
    axes[0, 1].set_title(r"$\partial \ell / \partial s_y$")
    for ax in axes[-1]:
        ax.set_xlabel("true-class margin $m$")
    fig.suptitle(title)
    plt.show()

"""Every registered loss's analytic gradient against SciPy finite differences.

`arrayloss.gradcheck` (scipy.differentiate, float64) on 200 random rows plus the
adversarial families of ``arrayloss check`` (scores of size 1e3, exact ties, near
one-hot rows), with integer and, where accepted, soft labels.  Agreement is
required to ``1e-8`` relative to the largest gradient entry, or to the float64
finite-difference noise floor ``1e-10 * max(1, |loss|)`` where the gradient is
smaller than that (saturated softmax rows).  Non-smooth losses
are checked away from their kinks (``arrayloss._kinks``); the test also requires
that most rows were actually checked, so a kink table that rejects everything
fails.
"""

from __future__ import annotations

import numpy as np
import pytest

import arrayloss as al
from arrayloss._kinks import KINKS
from arrayloss.cli._check import input_families

N_CLASSES = 10

# Parameter sets beyond the defaults, for losses whose parameters change the code path.
VARIANTS: dict[str, list[dict]] = {
    "cross_entropy": [{"label_smoothing": 0.1}],
    "hinge": [{"margin": 1.0}],
    "squared_hinge": [{"margin": 1.0}],
    "cubed_hinge": [{"margin": 1.0}],
    "multiclass_hinge": [{"margin": 0.3}],
    "crammer_singer": [{"margin": 2.0}],
    "smooth_topk_svm": [
        {"k": 1, "alpha": 0.0},
        {"k": 1},
        {"k": 2, "tau": 0.1},
        {"k": 3, "tau": 2.0, "alpha": 0.5},
        {"k": 9},
    ],
    "topk_svm": [{"k": 1}, {"k": 3, "alpha": 0.5}],
    "topk_hinge_alpha": [{"k": 1}, {"k": 3}],
    "topk_hinge_beta": [{"k": 1}, {"k": 3}],
    "topk_entropy": [{"k": 1}, {"k": 3}],
    "truncated_topk_entropy": [{"k": 1}, {"k": 3}],
    "keras.huber": [{"delta": 0.05}],
    "keras.categorical_crossentropy": [{"label_smoothing": 0.2}],
}

CASES = [
    pytest.param(name, params, id=f"{name}-{params}" if params else name)
    for name in sorted(al.LOSSES)
    for params in [{}, *VARIANTS.get(name, [])]
]

RTOL = 1e-8


def _families() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    fam = input_families(50, N_CLASSES, seed=1)
    random = input_families(200, N_CLASSES, seed=2)["random"]
    fam["random"] = random
    return fam


FAMILIES = _families()


@pytest.mark.parametrize(("name", "params"), CASES)
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_gradient_matches_finite_differences(name, params, family):
    z, y = FAMILIES[family]
    res = al.gradcheck(name, z, y, rtol=RTOL, **params)
    frac = res.checked.mean()
    if family != "ties":  # ties sit on every kink of the hinge-type losses
        assert frac >= 0.5 or name not in KINKS, (
            f"only {frac:.0%} of rows away from kinks"
        )
    assert res.ok, (res.max_rel_error, res.max_abs_error)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        c
        for c in CASES
        if "soft" in al.LOSSES[c.values[0]].targets and c.values[0] not in KINKS
    ],
)
def test_gradient_with_soft_labels(rng, name, params):
    z = 2.0 * rng.normal(size=(60, N_CLASSES))
    soft = rng.dirichlet(np.full(N_CLASSES, 0.5), size=60)
    res = al.gradcheck(name, z, soft, rtol=RTOL, **params)
    assert res.ok, (res.max_rel_error, res.max_abs_error)


def test_gradcheck_catches_a_wrong_gradient(rng):
    z = rng.normal(size=(5, 4))
    y = rng.integers(0, 4, size=5)

    def value(z, y):
        return al.cross_entropy(z, y, reduction="none")

    def wrong_grad(z, y):
        return 1.01 * al.cross_entropy_and_grad(z, y, reduction="none")[1]

    res = al.gradcheck((value, wrong_grad), z, y)
    assert not res.ok
    assert res.max_rel_error > 1e-3


def test_gradcheck_accepts_public_functions_and_other_backends(backend, rng):
    z = rng.normal(size=(3, 4))
    y = np.array([0, 1, 3])
    res = al.gradcheck(al.cross_entropy, backend.asarray(z), backend.asarray(y))
    assert res.ok
    assert res.max_rel_error < 1e-9


def test_gradcheck_rejects_unknown_callables():
    with pytest.raises(TypeError, match="not an arrayloss loss"):
        al.gradcheck(np.sum, np.zeros((1, 2)), np.array([0]))
    with pytest.raises(ValueError, match=r"shape \(n, C\)"):
        al.gradcheck("cross_entropy", np.zeros(3), np.array([0]))

"""Every registered loss's analytic gradient against SciPy finite differences.

`arrayloss.gradcheck` (scipy.differentiate, float64) on 200 random rows plus the
adversarial families of ``arrayloss check`` (scores of size 1e3, exact ties, near
one-hot rows), with integer and, where accepted, soft labels.  Agreement is
required to ``1e-8`` relative to the largest gradient entry, or to the float64
finite-difference noise floor ``1e-10 * max(1, |loss|)`` where the gradient is
smaller than that (saturated softmax rows).  Non-smooth losses
are checked away from their kinks (``arrayloss._kinks``); every test requires that
rows were actually compared (most rows, outside the ties family), so a kink table
that rejects everything fails instead of passing on nothing.
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
    # Ties sit on many kinks of the hinge-type losses, but the family's tie levels
    # leave some rows of every loss away from them: each test compares something.
    assert res.n_checked > 0, res.reason
    frac = res.n_checked / len(y)
    if family != "ties":
        assert frac >= 0.5 or name not in KINKS, (
            f"only {frac:.0%} of rows away from kinks"
        )
    assert res.ok, res.reason
    assert res.n_checked + res.n_at_kink == len(y)


@pytest.mark.parametrize(
    ("name", "params"),
    [c for c in CASES if "soft" in al.LOSSES[c.values[0]].targets],
)
def test_gradient_with_soft_labels(rng, name, params):
    """Every soft-label loss, the non-smooth ones (l1, chebyshev, hinges, Keras'
    absolute errors and Huber) with their soft-label kinks declared."""
    z = 2.0 * rng.normal(size=(60, N_CLASSES))
    soft = rng.dirichlet(np.full(N_CLASSES, 0.5), size=60)
    res = al.gradcheck(name, z, soft, rtol=RTOL, **params)
    assert res.n_checked >= 30, res.reason
    assert res.ok, res.reason


@pytest.mark.parametrize("tau", [0.01, 0.001])
@pytest.mark.parametrize("k", [1, 5])
def test_smooth_topk_small_tau_is_not_a_false_failure(tau, k):
    """The loss varies on the scale k*tau, far below the first step (0.5): the
    cheap stencil fails some rows of a correct gradient, the refinement resolves
    them (before: max relative error 1e-6 at tau=0.01, 3e-2 at tau=0.001)."""
    z, y = input_families(50, N_CLASSES, seed=3)["random"]
    res = al.gradcheck("smooth_topk_svm", z, y, rtol=RTOL, k=k, tau=tau)
    assert res.n_checked == len(y)
    assert res.ok, res.reason


def test_refinement_does_not_rescue_a_wrong_gradient(rng):
    """A 1e-4 relative error in the gradient of a loss that needs the refinement
    (tau=0.01) still fails: no step size makes a wrong gradient agree."""
    z, y = input_families(20, N_CLASSES, seed=4)["random"]

    def value(z, y):
        return al.smooth_topk_svm(z, y, tau=0.01, reduction="none")

    def grad(z, y):
        return (1 + 1e-4) * al.smooth_topk_svm_and_grad(
            z, y, tau=0.01, reduction="none"
        )[1]

    res = al.gradcheck((value, grad), z, y, rtol=RTOL)
    assert res.status == "failed"
    assert res.n_failed > 0
    assert not res.ok


def test_zero_rows_checked_is_skipped_not_passed():
    """Defect: ``ok`` was True with nothing compared (all rows on a kink)."""
    res = al.gradcheck("l1", np.zeros((4, 3)), np.array([0, 1, 2, 0]))
    assert res.n_checked == 0
    assert res.n_at_kink == 4
    assert res.status == "skipped"
    assert not res.ok
    assert "nothing compared" in res.reason
    assert np.isnan(res.max_rel_error)


def test_gradcheck_catches_a_wrong_gradient(rng):
    z = rng.normal(size=(5, 4))
    y = rng.integers(0, 4, size=5)

    def value(z, y):
        return al.cross_entropy(z, y, reduction="none")

    def wrong_grad(z, y):
        return 1.01 * al.cross_entropy_and_grad(z, y, reduction="none")[1]

    res = al.gradcheck((value, wrong_grad), z, y)
    assert not res.ok
    assert res.status == "failed"
    assert res.n_failed == 5
    assert res.max_rel_error > 1e-3


def test_gradcheck_accepts_public_functions_and_other_backends(backend, rng):
    z = rng.normal(size=(3, 4))
    y = np.array([0, 1, 3])
    res = al.gradcheck(al.cross_entropy, backend.asarray(z), backend.asarray(y))
    assert res.ok
    assert res.n_checked == 3
    assert res.max_rel_error < 1e-9


def test_gradcheck_rejects_unknown_callables():
    with pytest.raises(TypeError, match="not an arrayloss loss"):
        al.gradcheck(np.sum, np.zeros((1, 2)), np.array([0]))
    with pytest.raises(ValueError, match=r"shape \(n, C\)"):
        al.gradcheck("cross_entropy", np.zeros(3), np.array([0]))

"""`arrayloss.gradcheck` against a careless user and an attacker.

Classes of cases:

- tolerances and steps: negative, NaN, infinite, non-numbers, rtol >= 1, all zero;
- shapes and values: wrong ranks, empty batches, mismatched labels, NaN logits;
- user functions: values that are not per-row (a scalar, a column, a batch-wide
  normalisation), gradients of the wrong shape, NaN and infinite gradients;
- wrong gradients: every way a gradient can be slightly wrong is a failure, and
  refinement of the step never rescues one;
- kinks versus errors: rows on a declared kink are "at kink", never failed,
  never passed; a check with nothing compared is "skipped";
- the kink oracles read the registry's defaults (no hard-coded parameters);
- every registry loss at extreme parameter values (tau, k, alpha, margin,
  label smoothing, delta, epsilon): a pass with rows compared, or the loss's own
  clean ValueError.
"""

from __future__ import annotations

import inspect
import math
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import arrayloss as al
from arrayloss._kinks import KINKS

RNG = np.random.default_rng(11)
Z = RNG.normal(size=(6, 4))
Y = np.array([0, 1, 2, 3, 0, 1])


def ce_value(z, y):
    return al.cross_entropy(z, y, reduction="none")


def ce_grad(z, y):
    return al.cross_entropy_and_grad(z, y, reduction="none")[1]


# ------------------------------------------------------------ tolerances, steps


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("rtol", -1.0),
        ("rtol", -1e-300),
        ("rtol", math.nan),
        ("rtol", math.inf),
        ("rtol", -math.inf),
        ("rtol", 1.0),
        ("rtol", 1e10),
        ("atol", -1e-12),
        ("atol", math.nan),
        ("atol", math.inf),
        ("initial_step", 0.0),
        ("initial_step", -0.5),
        ("initial_step", math.nan),
        ("initial_step", math.inf),
        ("min_kink_distance", -1e-3),
        ("min_kink_distance", math.nan),
        ("min_kink_distance", math.inf),
    ],
)
def test_bad_tolerance_is_a_value_error(option, value):
    with pytest.raises(ValueError, match=f"`{option}`"):
        al.gradcheck("cross_entropy", Z, Y, **{option: value})


@pytest.mark.parametrize("value", ["1e-6", True, None, [1e-6], 1j])
def test_tolerance_of_the_wrong_kind_is_a_type_error(value):
    with pytest.raises(TypeError, match="`rtol` must be a real number"):
        al.gradcheck("cross_entropy", Z, Y, rtol=value)


@pytest.mark.parametrize(
    ("option", "value", "error", "message"),
    [
        ("rtol", "1e-6", TypeError, "`rtol` must be a real number (got rtol='1e-6')"),
        ("atol", -1.0, ValueError, "`atol` must be non-negative (got atol=-1.0)"),
        ("initial_step", 0.0, ValueError, "`initial_step` must be positive (got initial_step=0.0)"),
        ("min_kink_distance", math.nan, ValueError, "`min_kink_distance` must be non-negative (got min_kink_distance=nan)"),
    ],
)  # fmt: skip
def test_tolerance_messages_are_the_parameter_checks_own(option, value, error, message):
    # one check of a real hyperparameter (_validation.check_real), one message,
    # the losses' and gradcheck's alike
    with pytest.raises(error) as info:
        al.gradcheck("cross_entropy", Z, Y, **{option: value})
    assert str(info.value) == message


def test_zero_rtol_and_atol_is_refused():
    with pytest.raises(ValueError, match="both 0"):
        al.gradcheck("cross_entropy", Z, Y, rtol=0.0, atol=0.0)


def test_numpy_scalars_are_accepted_as_tolerances():
    res = al.gradcheck("cross_entropy", Z, Y, rtol=np.float32(1e-6), atol=np.float64(0))
    assert res.ok


def test_largest_rtol_still_fails_a_sign_flipped_gradient():
    res = al.gradcheck((ce_value, lambda z, y: -ce_grad(z, y)), Z, Y, rtol=0.999)
    assert res.status == "failed"
    # the tolerance is normwise over the batch: the row with the largest
    # gradient entry fails whatever rtol < 1 is
    worst = np.unravel_index(np.nanargmax(np.abs(res.numeric)), res.numeric.shape)[0]
    assert res.failed[worst]


def test_huge_atol_passes_only_what_it_says():
    """A huge atol is the user's explicit choice: documented, and the reported
    tolerance says how loose the check was."""
    res = al.gradcheck((ce_value, lambda z, y: 0 * z), Z, Y, atol=10.0)
    assert res.ok
    assert res.tolerance >= 10.0
    assert res.max_abs_error > 0.1  # the error is still reported


def test_rtol_zero_with_atol_checks_absolutely():
    res = al.gradcheck("cross_entropy", Z, Y, rtol=0.0, atol=1e-9)
    assert res.ok
    assert res.tolerance == 1e-9


# ------------------------------------------------------------ shapes and values


@pytest.mark.parametrize(
    "logits",
    [
        np.zeros(3),
        np.zeros((2, 3, 4)),
        np.float64(1.0),
        np.zeros((0, 4)),
        np.zeros((3, 0)),
    ],
    ids=["1d", "3d", "0d", "no-rows", "no-classes"],
)
def test_logits_of_the_wrong_shape(logits):
    with pytest.raises(ValueError, match=r"shape \(n, C\)"):
        al.gradcheck("cross_entropy", logits, np.zeros(len(np.atleast_1d(logits))))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_logits(bad):
    z = Z.copy()
    z[2, 1] = bad
    with pytest.raises(ValueError, match="finite"):
        al.gradcheck("cross_entropy", z, Y)
    with pytest.raises(ValueError, match="finite"):
        al.gradcheck((ce_value, ce_grad), z, Y)


@pytest.mark.parametrize(
    "labels",
    [
        np.zeros(5, dtype=np.int64),
        np.zeros(7, dtype=np.int64),
        np.zeros((6, 5)),
        np.zeros((6, 1), dtype=np.int64),
        np.int64(0),
    ],
    ids=["short", "long", "soft-too-wide", "column", "scalar"],
)
def test_labels_of_the_wrong_shape_name_both_shapes(labels):
    # the user pair never sees them: the shape is checked before any call
    def never(*args):
        raise AssertionError("called")

    with pytest.raises(ValueError, match=r"`labels` must have shape \(6,\)"):
        al.gradcheck((never, never), Z, labels)


def test_nested_lists_and_float32_inputs_are_checked_in_float64():
    res = al.gradcheck("cross_entropy", Z.astype(np.float32).tolist(), Y.tolist())
    assert res.ok
    assert res.analytic.dtype == np.float64


def test_torch_inputs_with_torch_class_weights_and_bfloat16_logits():
    """The logits were copied to NumPy but torch ``class_weights`` were not: "must
    be an array of the scores' array library (got Tensor)" for one library; and
    bfloat16 logits raised torch's "unsupported ScalarType BFloat16"."""
    torch = pytest.importorskip("torch")
    cw = np.array([1.0, 2.0, 0.5, 3.0])
    want = al.gradcheck("cross_entropy", Z, Y, class_weights=cw)
    for weights in (torch.tensor(cw), torch.tensor(cw, requires_grad=True)):
        got = al.gradcheck(
            "cross_entropy", torch.tensor(Z), torch.tensor(Y), class_weights=weights
        )
        assert got.ok
        np.testing.assert_array_equal(got.analytic, want.analytic)
    with pytest.raises(ValueError, match=r"`class_weights` must have shape \(4,\)"):
        al.gradcheck("cross_entropy", torch.tensor(Z), Y, class_weights=torch.ones(2))
    assert al.gradcheck("cross_entropy", torch.tensor(Z).bfloat16(), Y).ok


def test_one_row_one_class():
    res = al.gradcheck("l2", np.array([[0.3]]), np.array([0]))
    assert res.ok
    assert res.n_checked == 1


def test_label_out_of_range_is_the_loss_error():
    with pytest.raises(ValueError, match="class indices"):
        al.gradcheck("cross_entropy", Z, np.array([0, 1, 2, 3, 4, 0]))


def test_inputs_are_not_modified():
    z, y = Z.copy(), Y.copy()
    al.gradcheck("smooth_topk_svm", z, y, k=2, tau=0.01)
    np.testing.assert_array_equal(z, Z)
    np.testing.assert_array_equal(y, Y)


# ------------------------------------------------------------ user functions


@pytest.mark.parametrize(
    ("value", "shape"),
    [
        (lambda z, y: al.cross_entropy(z, y), r"\(\)"),
        (lambda z, y: ce_value(z, y)[:, None], r"\(6, 1\)"),
        (lambda z, y: np.broadcast_to(ce_value(z, y)[:, None], z.shape), r"\(6, 4\)"),
        (lambda z, y: ce_value(z, y)[:-1], r"\(5,\)"),
        (lambda z, y: float(np.sum(z)), r"\(\)"),
    ],
    ids=["mean", "column", "matrix", "short", "python-float"],
)
def test_value_that_is_not_per_row_is_a_shape_error(value, shape):
    """Issue 15: a plain (value, grad) pair whose value is not per-row is a
    shape error, not a huge relative error."""
    with pytest.raises(ValueError, match=f"returned shape {shape}.*per-sample"):
        al.gradcheck((value, ce_grad), Z, Y)


@pytest.mark.parametrize(
    "value",
    [
        lambda z, y: (z**2).sum(axis=1) / (z**2).sum(),
        lambda z, y: ce_value(z, y) - ce_value(z, y).mean(),
        lambda z, y: ce_value(z, y) * len(z),
    ],
    ids=["normalised-by-batch", "centred", "scaled-by-batch-size"],
)
def test_value_that_depends_on_other_rows_is_refused(value):
    with pytest.raises(ValueError, match="not row-wise"):
        al.gradcheck((value, ce_grad), Z, Y)


@pytest.mark.parametrize("name", ["keras.hinge", "keras.squared_hinge"])
def test_keras_hinge_batch_wide_soft_labels_are_checked_in_their_batch(name):
    """Keras converts soft labels to ±1 only if every target of the batch is 0
    or 1: a batch mixing one-hot and soft rows keeps them all unconverted.  The
    perturbed rows are evaluated with the whole batch alongside, so the check
    sees the loss the batch defines (before: a perturbed chunk of one-hot rows
    alone was converted, and a correct gradient could fail)."""
    z = 2 * np.random.default_rng(331).normal(size=(6, 4))
    soft = np.array(
        [[1.0, 0, 0, 0], [0.2, 0.3, 0.4, 0.1], [0, 1.0, 0, 0], [0, 0, 1.0, 0],
         [0, 0, 0, 1.0], [1.0, 0, 0, 0]]
    )  # fmt: skip
    res = al.gradcheck(name, z, soft, rtol=1e-8)
    assert res.ok, res.reason
    assert res.n_checked == 6
    # all soft, or all one-hot
    assert al.gradcheck(
        name, z, np.random.default_rng(340).dirichlet(np.ones(4), size=6), rtol=1e-8
    ).ok
    assert al.gradcheck(name, z, np.eye(4)[[0, 1, 2, 3, 0, 1]], rtol=1e-8).ok


def test_value_depending_on_other_rows_is_refused_with_soft_labels_too():
    soft = np.random.default_rng(345).dirichlet(np.ones(4), size=6)

    def value(z, y):
        return al.cross_entropy(z, y, reduction="none") / len(z)

    with pytest.raises(ValueError, match=r"not row-wise.*larger batch"):
        al.gradcheck((value, ce_grad), Z, soft)


@pytest.mark.parametrize(
    "grad",
    [
        lambda z, y: ce_grad(z, y).T[:, :4] if z.shape[0] > 4 else ce_grad(z, y).T,
        lambda z, y: ce_grad(z, y)[:, :-1],
        lambda z, y: ce_grad(z, y).sum(axis=0),
        lambda z, y: ce_grad(z, y)[None],
    ],
    ids=["transposed", "narrow", "summed", "3d"],
)
def test_gradient_of_the_wrong_shape(grad):
    with pytest.raises(ValueError, match="gradient function returned shape"):
        al.gradcheck((ce_value, grad), Z, Y)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_gradient_fails_its_rows(bad):
    def grad(z, y):
        g = ce_grad(z, y).copy()
        g[1, 2] = bad
        return g

    res = al.gradcheck((ce_value, grad), Z, Y)
    assert res.status == "failed"
    assert res.failed.tolist() == [False, True, False, False, False, False]


def test_nan_values_everywhere_fail():
    res = al.gradcheck(
        (lambda z, y: np.full(len(z), np.nan), lambda z, y: np.zeros_like(z)), Z, Y
    )
    assert res.status == "failed"
    assert res.n_failed == len(Y)


def test_infinite_value_is_its_own_outcome_not_a_failure_nor_a_pass():
    """Where the loss is infinite finite differences measure nothing: such rows
    are "infinite" (not compared, not failed), and the check does not pass."""
    z = np.array([[0.0, -1e308, 1e308], [0.3, -0.2, 1.1]])  # row 0's loss: 2e308
    res = al.gradcheck("cross_entropy", z, np.array([1, 2]))
    assert res.status == "infinite"
    assert not res.ok
    assert (res.n_infinite, res.n_checked, res.n_at_kink, res.n_failed) == (1, 1, 0, 0)
    assert res.infinite.tolist() == [True, False]
    assert res.checked.tolist() == [False, True]
    assert np.isnan(res.numeric[0]).all()
    assert res.reason.startswith("the loss is infinite at 1 of 2 rows (row 0): ")
    assert "finite differences cannot check" in res.reason
    assert "disagree" not in res.reason
    # Every row infinite, with a non-finite analytic gradient there: still the
    # same outcome, nothing compared.
    inf_rows = (
        lambda z, y: np.full(len(z), np.inf),
        lambda z, y: np.full_like(z, np.inf),
    )
    res = al.gradcheck(inf_rows, Z, Y)
    assert (res.status, res.n_infinite, res.n_checked, res.n_failed) == (
        "infinite", len(Y), 0, 0,
    )  # fmt: skip

    # A wrong gradient on a finite row is still a failure.
    def value(z, y):
        v = ce_value(z, y)
        return np.where(np.arange(len(z)) == 0, -np.inf, v)

    res = al.gradcheck((value, lambda z, y: 2 * ce_grad(z, y)), Z, Y)
    assert res.status == "failed"
    assert res.failed.tolist() == [False, True, True, True, True, True]
    assert res.n_infinite == 1


def test_a_loss_too_large_to_resolve_is_unresolved_and_blinds_no_other_row():
    """A finite loss so large that its rounding exceeds its gradient (1e300, a
    gradient of order 1): the default noise floor of that row, 1e290, would let
    any estimate agree, and as the batch's tolerance it let every other row pass
    too (finite differences of -4e285 'agreed' with -1).  Such a row is
    "unresolved" (not compared), and the others keep their own floor."""
    z = np.array([[0.0, -1e300, 1.0], [0.3, -0.2, 1.1]])
    res = al.gradcheck("cross_entropy", z, np.array([1, 2]))
    assert res.status == "unresolved"
    assert not res.ok
    counts = (res.n_unresolved, res.n_checked, res.n_infinite, res.n_failed)
    assert counts == (1, 1, 0, 0)
    assert res.unresolved.tolist() == [True, False]
    assert np.isnan(res.numeric[0]).all()
    assert res.atol < 1e-9  # the finite row's own floor, not 1e290
    assert res.reason.startswith(
        "finite differences cannot resolve the gradient at 1 of 2 rows (row 0)"
    )
    assert "1e+300" in res.reason

    # The wrong gradient of the ordinary row is caught beside the huge one.
    def wrong(z, y):
        g = ce_grad(z, y)
        g[1] *= 1.5
        return g

    res = al.gradcheck((ce_value, wrong), z, np.array([1, 2]))
    assert res.status == "failed"
    assert res.failed.tolist() == [False, True]
    # A hinge whose margin is 1e200: every row unresolved, not a vacuous pass.
    res = al.gradcheck("hinge", Z, Y, margin=1e200)
    assert (res.status, res.n_unresolved, res.n_checked) == ("unresolved", len(Y), 0)
    # A saturated softmax (gradient below the floor, loss of order 1) is still
    # compared: only absolute agreement, as documented.
    res = al.gradcheck("cross_entropy", np.array([[0.0, 40.0]]), np.array([1]))
    assert (res.status, res.n_checked) == ("passed", 1)
    # An explicit atol is the caller's (no floor rule), but a score of -1e300 is
    # too coarse for the steps: row 0 is unresolved for that reason instead.
    res = al.gradcheck("cross_entropy", z, np.array([1, 2]), atol=1e-8)
    assert (res.status, res.n_unresolved, res.n_failed) == ("unresolved", 1, 0)
    assert "the loss there" not in res.reason
    assert "too coarse for the finite-difference steps" in res.reason


@pytest.mark.parametrize(
    "name", ["cross_entropy", "tanimoto", "focal", "sparsemax_loss"]
)
@pytest.mark.parametrize("scale", [1e15, 1e16, 1e20, 1e100])
def test_scores_too_coarse_for_the_steps_are_unresolved_not_failed(name, scale):
    """At scores of 1e15 the float grid (spacing 0.125) is coarser than the
    finite-difference steps: the perturbed scores are not the stencil's, and a
    correct gradient "disagreed" (relative error 3e14).  Such rows are
    unresolved, not failed; the ordinary row beside them is still compared."""
    z = np.array([[scale, scale, 0.0], [0.2, 0.1, 0.0]])  # row 0: a tie, loss ~1
    res = al.gradcheck(name, z, np.array([0, 1]))
    assert res.status == "unresolved", res.reason
    assert (res.n_failed, res.n_checked, res.unresolved.tolist()) == (
        0,
        1,
        [True, False],
    )
    assert "too coarse for the finite-difference steps" in res.reason


def test_a_wrong_gradient_at_scores_the_steps_resolve_still_fails():
    """Scores of 1e4 (the check's "large" family): a wrong gradient fails."""
    z = 1e4 * np.array([[1.0, 1.0 + 1e-4, 0.0]])

    def wrong(z, y):
        return 1.01 * ce_grad(z, y)

    res = al.gradcheck((ce_value, wrong), z, np.array([0]))
    assert res.status == "failed"


@given(
    data=st.data(),
    name=st.sampled_from(["cross_entropy", "tanimoto", "focal", "squared_hinge", "l2"]),
    c=st.integers(2, 4),
)
@settings(max_examples=60, deadline=None)
def test_a_correct_gradient_never_fails_at_any_magnitude(data, name, c):
    """Scores from 1e-300 to 1e300 in size: a correct gradient is compared and
    agrees, or is unresolved (loss too large, scores too coarse), never failed."""
    values = st.floats(-1e300, 1e300, allow_nan=False, allow_infinity=False)
    z = np.array(data.draw(st.lists(values, min_size=2 * c, max_size=2 * c))).reshape(
        2, c
    )
    y = np.array(data.draw(st.lists(st.integers(0, c - 1), min_size=2, max_size=2)))
    with np.errstate(all="ignore"):
        res = al.gradcheck(name, z, y)
    assert res.status != "failed", res.reason
    assert res.n_checked + res.n_at_kink + res.n_infinite + res.n_unresolved == 2


def test_constant_loss_with_zero_gradient_passes():
    res = al.gradcheck(
        (lambda z, y: np.ones(len(z)), lambda z, y: np.zeros_like(z)), Z, Y
    )
    assert res.ok
    assert res.max_abs_error == 0.0


def test_user_params_reach_both_functions():
    seen = []

    def value(z, y, *, scale):
        seen.append(scale)
        return scale * ce_value(z, y)

    def grad(z, y, *, scale):
        return scale * ce_grad(z, y)

    assert al.gradcheck((value, grad), Z, Y, scale=3.0).ok
    assert set(seen) == {3.0}


_NOT_A_PAIR = (
    r"`loss` given as a tuple must be a pair \(value_fn, grad_fn\) of callables"
)
_NOT_A_LOSS = r"`loss` must be a registry name, an arrayloss loss function or a"


@pytest.mark.parametrize(
    ("loss", "message"),
    [
        ((ce_value,), _NOT_A_PAIR),
        ((ce_value, ce_grad, ce_grad), _NOT_A_PAIR),
        ((ce_value, "grad"), _NOT_A_PAIR),
        (3, _NOT_A_LOSS + r".* \(got int\)"),
        (None, _NOT_A_LOSS + r".* \(got NoneType\)"),
        (np.sum, "'sum' is not an arrayloss loss"),
    ],
    ids=["one", "three", "not-callable", "int", "none", "foreign"],
)
def test_malformed_loss_argument_is_a_type_error(loss, message):
    # the check's own message: not a TypeError from calling what is no function
    with pytest.raises(TypeError, match=message):
        al.gradcheck(loss, Z, Y)


def test_unknown_name_and_unknown_parameter():
    with pytest.raises(ValueError, match="unknown loss"):
        al.gradcheck("cross_entropyy", Z, Y)
    with pytest.raises(TypeError, match="bogus"):
        al.gradcheck("cross_entropy", Z, Y, bogus=1)


@pytest.mark.parametrize("loss", ["cross_entropy", al.cross_entropy])
@pytest.mark.parametrize(
    "option",
    [{"reduction": "sum"}, {"reduction": "none"}, {"weights": np.ones(len(Y))}],
)
def test_reduction_and_weights_are_a_clear_type_error(loss, option):
    """``reduction`` was "got multiple values for keyword argument"; ``weights`` of
    the batch shape a ValueError about a batch shape of 2 (the oracle's sub-batch)."""
    key = next(iter(option))
    with pytest.raises(TypeError, match=f"`gradcheck` takes no `{key}`"):
        al.gradcheck(loss, Z, Y, **option)


@pytest.mark.parametrize("dtype", [bool, complex, object])
def test_logits_of_a_dtype_the_losses_refuse_are_refused(dtype):
    """Bool logits were checked as 0.0/1.0, though every loss refuses them."""
    z = np.zeros((2, 3), dtype=dtype)
    with pytest.raises(TypeError, match="real floating or integer dtype"):
        al.gradcheck("cross_entropy", z, np.array([0, 1]))


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("smooth_topk_svm", {"k": 2, "tau": math.nan}),
        ("smooth_topk_svm", {"k": 2, "alpha": math.inf}),
        ("smooth_topk_svm", {"k": 2, "hard_threshold": math.nan}),
        ("hinge", {"margin": math.nan}),
        ("cross_entropy", {"label_smoothing": math.nan}),
        ("keras.huber", {"delta": math.nan}),
        ("topk_svm", {"k": 4}),
        ("topk_svm", {"k": 0}),
    ],
)
def test_bad_parameters_are_the_loss_value_error(name, params):
    with pytest.raises(ValueError, match=list(params)[-1]):
        al.gradcheck(name, Z, Y, **params)


# ------------------------------------------------------------ wrong gradients


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda g: g * (1 + 1e-5),
        lambda g: -g,
        lambda g: g[:, ::-1],
        lambda g: g + 1e-5,
        lambda g: np.zeros_like(g),
        # the row with the largest gradient (a saturated row's may be 0)
        lambda g: np.where(
            np.arange(g.shape[0])[:, None] == np.argmax(np.abs(g).max(axis=1)), 2 * g, g
        ),
    ],
    ids=["scaled", "negated", "permuted-classes", "shifted", "zero", "one-row"],
)
@pytest.mark.parametrize("name", ["cross_entropy", "tanimoto", "smooth_topk_svm"])
def test_every_wrong_gradient_fails(name, corrupt):
    params = {"k": 2, "tau": 0.01} if name == "smooth_topk_svm" else {}
    info = al.LOSSES[name]

    def value(z, y):
        return info.value(z, y, reduction="none", **params)

    def grad(z, y):
        return corrupt(info.value_and_grad(z, y, reduction="none", **params)[1])

    rng = np.random.default_rng(12)
    z = 2.0 * rng.normal(size=(8, 4))
    y = rng.integers(0, 4, size=8)
    res = al.gradcheck((value, grad), z, y, rtol=1e-8)
    assert res.status == "failed", res.reason
    assert not res.ok


def test_the_gradient_of_another_loss_fails():
    res = al.gradcheck(
        (lambda z, y: al.l1(z, y, reduction="none"),
         lambda z, y: al.l2_and_grad(z, y, reduction="none")[1]),
        3 * Z, Y,
    )  # fmt: skip
    assert res.status == "failed"


def test_failed_rows_are_exactly_the_wrong_ones():
    def grad(z, y):
        g = ce_grad(z, y).copy()
        g[[1, 4]] *= 1.001
        return g

    res = al.gradcheck((ce_value, grad), Z, Y)
    assert np.flatnonzero(res.failed).tolist() == [1, 4]
    assert res.n_failed == 2
    assert "2 of 6 rows disagree" in res.reason


# ------------------------------------------------------------ kinks versus errors


def test_rows_on_a_kink_are_at_kink_not_failed():
    """l1 is not differentiable where a logit equals its target: a wrong
    subgradient there is not compared; rows away from kinks are."""
    z = 3 * np.random.default_rng(510).normal(size=(6, 4))
    z[[0, 3], 1] = 0.0  # on the kink z_j = t_j (= 0 for labels 0 and 3)
    res = al.gradcheck("l1", z, Y)
    assert res.checked.tolist() == [False, True, True, False, True, True]
    assert (res.n_checked, res.n_at_kink, res.n_failed) == (4, 2, 0)
    assert res.ok
    assert "2 at a kink" in res.reason
    assert np.all(np.isnan(res.numeric[[0, 3]]))


def test_wrong_gradient_away_from_kinks_still_fails():
    z = 3 * np.random.default_rng(521).normal(size=(6, 4))
    z[0, 1] = 0.0

    def grad(z, y):
        return 1.01 * al.l1_and_grad(z, y, reduction="none")[1]

    res = al.gradcheck((lambda z, y: al.l1(z, y, reduction="none"), grad), z, Y)
    assert res.status == "failed"  # a user pair has no declared kinks


def test_exact_kink_excluded_even_at_min_kink_distance_zero():
    z = np.zeros((2, 3))
    res = al.gradcheck("l1", z, np.array([0, 1]), min_kink_distance=0.0)
    assert res.status == "skipped"


def test_huge_min_kink_distance_skips_kinked_losses_only():
    res = al.gradcheck("hinge", 3 * Z, Y, min_kink_distance=1e6)
    assert res.status == "skipped"
    assert not res.ok
    assert "nothing compared" in res.reason
    smooth = al.gradcheck("cross_entropy", Z, Y, min_kink_distance=1e6)
    assert smooth.ok  # no kinks declared: every row compared
    assert smooth.n_checked == len(Y)


def test_non_finite_analytic_at_a_kink_row_is_still_a_failure():
    def grad(z, y):
        g = al.l1_and_grad(z, y, reduction="none")[1].copy()
        g[0] = np.nan
        return g

    z = 3 * np.random.default_rng(553).normal(size=(6, 4))
    z[0, 1] = 0.0
    # through a registry name the kinks are declared; patch the gradient in
    info = al.LOSSES["l1"]
    res = al.gradcheck((lambda z, y: info.value(z, y, reduction="none"), grad), z, Y)
    assert res.failed[0]


@pytest.mark.parametrize("name", sorted(KINKS))
def test_kinked_loss_all_tied_rows_never_pass_on_nothing(name):
    """All-zero scores sit on kinks of most non-smooth losses; whatever the
    oracle says, the verdict is consistent: no rows compared means skipped."""
    info = al.LOSSES[name]
    params = {"k": 2} if "k" in info.params else {}
    z = np.zeros((3, 4))
    res = al.gradcheck(name, z, np.array([0, 1, 2]), **params)
    assert res.n_checked + res.n_at_kink == 3
    if res.n_checked == 0:
        assert res.status == "skipped"
        assert not res.ok
    else:
        assert res.ok, res.reason


# ------------------------------------------------------------ kink oracle defaults


def test_kink_oracles_read_defaults_from_the_registry():
    """Defect 7: the oracles hard-coded the losses' default parameters."""
    z = 2 * np.random.default_rng(582).normal(size=(40, 6))
    y = np.random.default_rng(583).integers(0, 6, size=40)
    for name, oracle in KINKS.items():
        defaults = dict(al.LOSSES[name].params)
        if "k" in defaults:
            defaults["k"] = 2
        partial = {"k": 2} if "k" in defaults else {}
        np.testing.assert_array_equal(oracle(z, y, partial), oracle(z, y, defaults))


def test_kink_sources_hard_code_no_parameter_default():
    import arrayloss._kinks as kinks_pkg

    folder = Path(inspect.getfile(kinks_pkg)).parent
    for path in folder.glob("*.py"):
        text = path.read_text()
        assert not re.search(r"params\.get\(", text), path.name


def test_every_kink_oracle_names_a_registry_loss():
    assert set(KINKS) <= set(al.LOSSES)


# ------------------------------------------------------------ extreme parameters

EXTREMES: dict[str, list] = {
    "k": ["one", "max"],
    "tau": [1e-4, 1e-3, 1e2, 1e4],
    "alpha": [0.0, 10.0, 1e3],
    "margin": [0.0, 1e-9, 1e-3, 10.0, 1e6],
    "label_smoothing": [0.0, 0.99, 1.0],
    "delta": [1e-6, 1e-3, 10.0],
    "epsilon": [1e-12, 1e-2, 0.4],
    "hard_threshold": [1.0, 1e6],
}
C = 5


def _extreme_cases():
    for name, info in sorted(al.LOSSES.items()):
        for param, values in EXTREMES.items():
            if param not in info.params:
                continue
            for v in values:
                params = {param: v}
                if v == "one":
                    params = {"k": 1}
                elif v == "max":
                    params = {"k": C - 1}
                elif "k" in info.params:
                    params["k"] = 2
                yield pytest.param(name, params, id=f"{name}-{params}")


@pytest.mark.parametrize(("name", "params"), list(_extreme_cases()))
def test_extreme_parameters(name, params):
    """Every extreme value is a valid parameter: a pass with rows compared."""
    rng = np.random.default_rng(5)
    z = 3.0 * rng.normal(size=(30, C))
    y = rng.integers(0, C, size=30)
    res = al.gradcheck(name, z, y, rtol=1e-7, **params)
    assert res.n_checked >= 10, res.reason
    assert res.ok, res.reason


@pytest.mark.parametrize("scale", [1e-8, 1e2, 1e4])
@pytest.mark.parametrize("name", ["cross_entropy", "smooth_topk_svm", "tanimoto"])
def test_extreme_score_scales(name, scale):
    rng = np.random.default_rng(6)
    z = scale * rng.normal(size=(20, C))
    y = rng.integers(0, C, size=20)
    params = {"k": 2, "tau": 0.05} if name == "smooth_topk_svm" else {}
    res = al.gradcheck(name, z, y, **params)
    assert res.n_checked == 20
    assert res.ok, res.reason


# ------------------------------------------------------------ properties


@given(
    data=st.data(),
    name=st.sampled_from(sorted(al.LOSSES)),
    n=st.integers(1, 5),
    c=st.integers(2, 5),
    soft=st.booleans(),
)
@settings(max_examples=60, deadline=None)
def test_verdicts_are_consistent_and_never_cry_wolf(data, name, n, c, soft):
    """Every registry loss, on any finite scores (ties, integers, large and
    small values drawn by hypothesis), with index or soft labels: a correct
    gradient is never failed, and the counts add up."""
    info = al.LOSSES[name]
    params = {"k": data.draw(st.integers(1, c - 1))} if "k" in info.params else {}
    grid = st.one_of(
        st.integers(-3, 3).map(float),
        st.floats(-50, 50, allow_nan=False, allow_subnormal=False),
    )
    z = np.array(data.draw(st.lists(grid, min_size=n * c, max_size=n * c))).reshape(
        n, c
    )
    if soft and "soft" in info.targets:
        w = np.array(
            data.draw(st.lists(st.integers(0, 4), min_size=n * c, max_size=n * c))
        )
        w = w.reshape(n, c).astype(np.float64)
        w[:, 0] += 1.0
        y = w / w.sum(axis=1, keepdims=True)
    else:
        y = np.array(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    res = al.gradcheck(name, z, y, **params)
    assert res.n_checked + res.n_at_kink + res.n_infinite + res.n_unresolved == n
    assert res.n_checked == int(res.checked.sum())
    assert res.status != "failed", res.reason
    assert res.ok == (res.n_checked > 0)
    assert (res.status == "skipped") == (res.n_checked == 0)

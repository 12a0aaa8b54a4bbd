"""Users' own losses through `register_loss`: the shared wrapper, every backend,
`gradcheck` with declared kinks, `value_and_grad` and the CLI's
``--loss package.module:function``."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import assert_allclose

import arrayloss as al
from arrayloss._kinks import KINKS
from arrayloss.cli import main

# The Brier score (regularised_expectation) written the way a user would.
BRIER = '''
from array_api_compat import array_namespace


def brier(logits, labels, *, scale=1.0):
    """Brier score of softmax(logits) against `labels` (rows of probabilities)."""
    xp = array_namespace(logits)
    e = xp.exp(logits - xp.max(logits, axis=1, keepdims=True))
    p = e / xp.sum(e, axis=1, keepdims=True)
    d = p - labels
    g = 2 * d
    grad = p * (g - xp.sum(g * p, axis=1, keepdims=True))
    return scale * xp.sum(d * d, axis=1), scale * grad
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_losses.py").write_text(textwrap.dedent(BRIER))
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    mod = importlib.import_module("my_losses")
    yield mod
    monkeypatch.delitem(__import__("sys").modules, "my_losses", raising=False)


@pytest.fixture
def clean():
    """Every test leaves the user registry as it found it."""
    before = dict(al.USER_LOSSES)
    yield
    for name in list(al.USER_LOSSES):
        if name not in before:
            al.unregister_loss(name)


@pytest.fixture
def brier(user_module, clean):
    return al.register_loss("brier", user_module.brier)


def test_registered_loss_is_a_loss(brier, rng):
    assert brier.params == {"scale": 1.0}
    assert brier.targets == "index|soft"
    assert "brier" not in al.LOSSES
    assert al.USER_LOSSES["brier"] is brier
    z, y = 2.0 * rng.normal(size=(7, 5)), rng.integers(0, 5, size=7)
    w = rng.random(7)
    for labels in (y, rng.dirichlet(np.ones(5), size=7)):
        for kw in ({}, {"reduction": "sum"}, {"weights": w}, {"reduction": "none"}):
            got = al.value_and_grad("brier", z, labels, scale=2.0, **kw)
            want = al.regularised_expectation_and_grad(z, labels, **kw)
            np.testing.assert_allclose(got[0], 2 * want[0], rtol=1e-13)
            np.testing.assert_allclose(got[1], 2 * want[1], rtol=1e-13, atol=1e-16)
    v = brier.value(z.T, y, axis=0, reduction="none")
    np.testing.assert_allclose(v, al.regularised_expectation(z, y, reduction="none"))


def test_registered_loss_on_every_backend(brier, backend, rng):
    z, y = 2.0 * rng.normal(size=(6, 4)), rng.integers(0, 4, size=6)
    ref = al.regularised_expectation_and_grad(z, y, reduction="none")
    for dtype, tol in ((np.float64, 1e-12), (np.float32, 2e-5)):
        v, g = brier.value_and_grad(
            backend.asarray(z, dtype), backend.asarray(y), reduction="none"
        )
        assert v.dtype == g.dtype == backend.asarray(z, dtype).dtype
        assert_allclose(v, ref[0], rtol=tol, atol=tol)
        assert_allclose(g, ref[1], rtol=tol, atol=tol)


def test_gradcheck_by_name(brier, rng):
    res = al.gradcheck("brier", rng.normal(size=(20, 6)), rng.integers(0, 6, 20))
    assert res.ok
    assert res.max_rel_error < 1e-9
    assert al.gradcheck("brier", rng.normal(size=(5, 3)), np.eye(3)[[0, 1, 2, 0, 1]]).ok


def test_declared_kinks_reach_gradcheck(clean, rng):
    def hinge(z, y, *, margin=1.0):
        return al.multiclass_hinge_and_grad(z, y, margin=margin, reduction="none")

    z = 3.0 * rng.normal(size=(30, 5))
    y = rng.integers(1, 5, size=30)
    z[:10, 0] = z[np.arange(10), y[:10]] - 1.0  # on a kink: s_0 = s_y - margin
    al.register_loss("my_hinge", hinge, targets="index")
    assert not al.gradcheck("my_hinge", z, y, rtol=1e-8).ok  # steps across the kinks
    al.register_loss(
        "my_hinge",
        hinge,
        targets="index",
        kinks=KINKS["multiclass_hinge"],
        replace=True,
    )
    res = al.gradcheck("my_hinge", z, y, rtol=1e-8)
    assert res.ok
    assert not res.checked[:10].any()
    assert res.checked[10:].mean() > 0.5
    al.unregister_loss("my_hinge")
    assert "my_hinge" not in KINKS


def test_targets_decide_what_the_function_sees(clean, rng):
    seen = []

    def spy(z, labels):
        seen.append((labels.ndim, labels.dtype.kind))
        return z[:, 0] * 0, z * 0

    z, y = rng.normal(size=(3, 4)), np.array([0, 1, 3])
    soft = np.eye(4)[y]
    al.register_loss("spy_index", spy, targets="index")
    al.register_loss("spy_soft", spy, targets="soft")
    al.register_loss("spy_both", spy, targets="both")
    al.value_and_grad("spy_index", z, y)
    al.value_and_grad("spy_soft", z, y)
    al.value_and_grad("spy_both", z, y)
    al.value_and_grad("spy_both", z, soft)
    assert seen == [(1, "i"), (2, "f"), (1, "i"), (2, "f")]
    with pytest.raises(ValueError, match="integer class indices only"):
        al.value_and_grad("spy_index", z, soft)


def test_bad_user_functions_get_clear_errors(clean, rng):
    z, y = rng.normal(size=(3, 4)), np.array([0, 1, 3])
    al.register_loss("not_per_row", lambda z, y: (z, z), targets="index")
    with pytest.raises(ValueError, match=r"one value per row, shape \(3,\)"):
        al.value_and_grad("not_per_row", z, y)
    al.register_loss("bad_grad", lambda z, y: (z[:, 0], z[:, :2]), targets="index")
    with pytest.raises(ValueError, match=r"row gradients, shape \(3, 4\)"):
        al.value_and_grad("bad_grad", z, y)
    al.register_loss("no_pair", lambda z, y: z[:, 0], targets="index")
    with pytest.raises(TypeError, match="must return a pair"):
        al.value_and_grad("no_pair", z, y)
    # Python numbers: an AttributeError ('float' object has no attribute 'shape')
    al.register_loss("scalars", lambda z, y: (1.0, 2.0), targets="index")
    with pytest.raises(TypeError, match=r"values of type float; expected an array"):
        al.value_and_grad("scalars", z, y)
    al.register_loss("list_grad", lambda z, y: (z[:, 0], [[0.0] * 4] * 3),
                     targets="index")  # fmt: skip
    with pytest.raises(TypeError, match=r"gradients of type list; expected an array"):
        al.value_and_grad("list_grad", z, y)


def test_registration_errors(brier, user_module):
    with pytest.raises(
        ValueError, match="built-in loss; the built-in table is read-only"
    ):
        al.register_loss("cross_entropy", user_module.brier)
    with pytest.raises(ValueError, match="already registered"):
        al.register_loss("brier", user_module.brier)
    with pytest.raises(ValueError, match="without ':'"):
        al.register_loss("a:b", user_module.brier)
    with pytest.raises(ValueError, match="`targets` must be one of"):
        al.register_loss("x", user_module.brier, targets="hard")
    with pytest.raises(TypeError, match="must be callable"):
        al.register_loss("x", 3)
    with pytest.raises(ValueError, match="not a valid loss parameter"):
        al.register_loss("x", user_module.brier, params={"axis": 0})
    with pytest.raises(TypeError, match="`brier` has no parameter 'k'"):
        al.value_and_grad("brier", np.zeros((1, 2)), np.array([0]), k=3)
    with pytest.raises(TypeError):
        al.USER_LOSSES["x"] = al.USER_LOSSES["brier"]  # read-only view
    al.unregister_loss("brier")
    with pytest.raises(ValueError, match="unknown loss 'brier'"):
        al.value_and_grad("brier", np.zeros((1, 2)), np.array([0]))
    with pytest.raises(KeyError):
        al.unregister_loss("brier")


# ----------------------------------------------------------------------------- CLI


def _eval(args, exit_code=0):
    result = CliRunner().invoke(main, ["eval", "--example", *args])
    assert result.exit_code == exit_code, (result.stdout, result.stderr)
    return result


def test_cli_loss_from_a_module(user_module, clean):
    out = json.loads(
        _eval(["--loss", "my_losses:brier", "--loss", "my_losses:brier:scale=2.0",
               "--loss", "regularised_expectation", "--format", "json"]).stdout
    )  # fmt: skip
    losses = out["losses"]
    assert set(losses) == {
        "my_losses.brier",
        "my_losses.brier:scale=2.0",
        "regularised_expectation",
    }
    # float32 example scores: the two sum in different orders
    assert losses["my_losses.brier"] == pytest.approx(
        losses["regularised_expectation"], rel=1e-6
    )
    assert losses["my_losses.brier:scale=2.0"] == pytest.approx(
        2 * losses["my_losses.brier"], rel=1e-12
    )


def test_cli_loss_registered_by_its_module(user_module, clean):
    al.register_loss("brier_by_module", user_module.brier, targets="soft")
    out = json.loads(_eval(["--loss", "my_losses:brier", "--format", "json"]).stdout)
    assert list(out["losses"]) == ["brier_by_module"]


def test_cli_check_on_a_user_loss(user_module, clean):
    result = CliRunner().invoke(
        main, ["check", "--loss", "my_losses:brier", "--samples", "5"]
    )
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "my_losses.brier" in result.stdout


@pytest.mark.parametrize(
    ("spec", "label"),
    [
        ("my_losses:brier:scale=2.0", "my_losses.brier:scale=2.0"),
        ("lambda_losses:brier", "lambda_losses.brier"),  # no pickle by reference
        ("self_registering:brier", "brier_of_its_own"),  # its import registers it
    ],
)
def test_cli_study_with_workers_on_a_user_loss(
    user_module, clean, tmp_path, monkeypatch, spec, label
):
    """``study --loss module:function -j 2``: the loss was registered in the
    parent only, so every worker's run failed with "unknown loss
    'my_losses.brier'" once the options were accepted and the estimate made (and
    a function defined by a lambda was an internal PicklingError)."""
    import os
    import sys

    (tmp_path / "lambda_losses.py").write_text(
        "import my_losses\nbrier = lambda logits, labels: my_losses.brier(logits, labels)\n"
    )
    (tmp_path / "self_registering.py").write_text(
        "import arrayloss, my_losses\nbrier = my_losses.brier\n"
        "arrayloss.register_loss('brier_of_its_own', brier, replace=True)\n"
    )
    for module in ("lambda_losses", "self_registering"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    out = tmp_path / "s"
    result = CliRunner().invoke(main, [
        "study", "--data", "digits", "--loss", "cross_entropy", "--loss", spec,
        "--noise", "0", "--seeds", "2", "--epochs", "1", "--max-epochs", "1",
        "--hidden", "4", "--lr-grid", "0.01", "-j", "2", "-q", "--no-plot", "--out",
        str(out)])  # fmt: skip
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "with 2 jobs" in result.stderr
    assert f"| {label} |" in (out / "summary.md").read_text()


def test_cli_study_user_loss_no_worker_can_import_is_usage(user_module, clean):
    """A loss registered by code (a function of ``__main__``) cannot reach a
    worker process: one line before any run, saying to pass -j 1."""
    import click

    from arrayloss.cli import _study

    def by_code(logits, labels):
        return user_module.brier(logits, labels)

    by_code.__module__ = "__main__"
    al.register_loss("by_code", by_code)
    with pytest.raises(click.UsageError, match="pass -j 1"):
        _study._user_losses([("by_code", {})])


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("no_such_module_xyz:f", "cannot import 'no_such_module_xyz'"),
        ("my_losses:nothing", "has no function 'nothing'"),
        ("my_losses:brier:k=1", "has no parameter 'k'"),
    ],
)
def test_cli_bad_module_specs_are_usage_errors(user_module, clean, spec, match):
    result = _eval(["--loss", spec], exit_code=2)
    assert match in result.stderr
    assert "Traceback" not in result.stderr


BROKEN = """
def raises(logits, labels):
    raise KeyError("inside my loss")


def scalars(logits, labels):
    return 1.0, 2.0
"""


@pytest.mark.parametrize(
    ("function", "match"),
    [
        ("raises", "raised KeyError: 'inside my loss'"),
        ("scalars", "returned values of type float"),
    ],
)
@pytest.mark.parametrize("command", ["eval", "check", "train"])
def test_cli_broken_user_loss_is_a_usage_error_not_an_internal_one(
    tmp_path, monkeypatch, clean, command, function, match
):
    """Both were 'internal error (...); please report it', exit 1: the user's
    code, not arrayloss, failed."""
    (tmp_path / "broken_losses.py").write_text(BROKEN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, "broken_losses", raising=False)
    args = {"eval": ["eval", "--example"], "check": ["check", "--samples", "2"],
            "train": ["train", "--epochs", "1", "-q"]}[command]  # fmt: skip
    result = CliRunner().invoke(main, [*args, "--loss", f"broken_losses:{function}"])
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert match in result.stderr
    assert "internal error" not in result.stderr
    assert "Traceback" not in result.stderr


LATE = """
import multiprocessing


def late(logits, labels):
    if float(abs(logits).max()) > 0:  # the probe's scores are zeros: it passes
        raise RuntimeError("not on real scores")
    return logits[:, 0] * 0, logits * 0


def late_value(logits, labels):
    if float(abs(logits).max()) > 0:
        raise ValueError("not on real scores")
    return logits[:, 0] * 0, logits * 0


def in_worker(logits, labels):
    if multiprocessing.parent_process() is not None:  # a study's worker
        raise RuntimeError("not on real scores")
    return logits[:, 0] * 0, logits * 0
"""


@pytest.mark.parametrize(
    ("command", "function"),
    [("train", "late"), ("study", "late"), ("study -j 2", "in_worker")],
)
def test_cli_user_loss_failing_after_the_probe_names_it(
    tmp_path, monkeypatch, clean, command, function
):
    """A user loss that passed the probe and raised on the training's scores (or
    in a study's worker process) was 'internal error (RuntimeError: ...); please
    report it': the user's code, not arrayloss, failed.  One line naming the
    loss, exit 1, no file written."""
    import os

    (tmp_path / "late_losses.py").write_text(LATE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, "late_losses", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    out = tmp_path / "out"
    tiny = ["--epochs", "1", "--hidden", "4", "-q"]
    args = (
        ["train", *tiny, "--save", str(out)]
        if command == "train"
        else ["study", "--data", "digits", "--loss", "cross_entropy", "--noise", "0",
              "--seeds", "1", "--max-epochs", "1", "--lr-grid", "0.01", "--no-plot",
              "-j", "2" if "-j 2" in command else "1", "--out", str(out), *tiny]
    )  # fmt: skip
    result = CliRunner().invoke(main, [*args, "--loss", f"late_losses:{function}"])
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert result.stderr.splitlines()[-1] == (
        f"Error: the loss 'late_losses.{function}' raised RuntimeError: not on real "
        "scores (ARRAYLOSS_DEBUG=1 shows the traceback)"
    )
    assert not out.exists()


@pytest.mark.parametrize("command", ["train", "study", "eval"])
def test_cli_user_loss_value_error_after_the_probe_names_it(
    tmp_path, monkeypatch, clean, command
):
    """A ValueError of the user's loss was bad data as the library's own are,
    its bare message ("Error: not on real scores") naming no loss."""
    (tmp_path / "late_losses.py").write_text(LATE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, "late_losses", raising=False)
    tiny = ["--epochs", "1", "--hidden", "4", "-q"]
    args = {
        "train": ["train", *tiny],
        "study": ["study", "--data", "digits", "--loss", "cross_entropy", "--noise",
                  "0", "--seeds", "1", "--max-epochs", "1", "--lr-grid", "0.01",
                  "--no-plot", "-j", "1", "--out", str(tmp_path / "out"), *tiny],
        "eval": ["eval", "--example"],
    }[command]  # fmt: skip
    result = CliRunner().invoke(main, [*args, "--loss", "late_losses:late_value"])
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert result.stderr.splitlines()[-1] == (
        "Error: the loss 'late_losses.late_value' raised ValueError: not on real scores"
    )


def test_cli_check_of_a_user_loss_failing_on_some_scores(tmp_path, monkeypatch, clean):
    """``check`` of such a loss ended in an internal error, no report; now each
    family it raised on is an "error" family with the exception, exit 1."""
    (tmp_path / "late_losses.py").write_text(LATE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, "late_losses", raising=False)
    args = ["check", "--loss", "late_losses:late", "--samples", "2"]
    result = CliRunner().invoke(main, [*args, "--format", "json"])
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "internal error" not in result.stderr
    (loss,) = json.loads(result.stdout)["losses"]
    assert {f["status"] for f in loss["families"].values()} == {"error"}
    assert {f["message"] for f in loss["families"].values()} == {
        "RuntimeError: not on real scores"
    }


def test_library_keeps_the_user_loss_exception(clean, rng):
    """The library raises the user's own exception, unchanged but for the mark
    the command line reads."""
    from arrayloss._errors import user_loss_of

    def bad(z, t):
        raise KeyError("mine")

    al.register_loss("bad_one", bad)
    with pytest.raises(KeyError, match="mine") as info:
        al.value_and_grad("bad_one", rng.normal(size=(3, 4)), np.array([0, 1, 2]))
    assert user_loss_of(info.value) == "bad_one"
    assert user_loss_of(KeyError("other")) is None


def test_cli_check_of_a_user_loss_whose_kinks_raise(brier, user_module, clean, rng):
    """The user's ``kinks`` function is their code too: its exception ended
    ``check`` in 'internal error (RuntimeError: ...); please report it'."""
    from arrayloss._errors import user_loss_of

    def kinks(z, y, params):
        raise RuntimeError("kink bug")

    al.register_loss("kinky", user_module.brier, kinks=kinks)
    with pytest.raises(RuntimeError, match="kink bug") as info:
        al.gradcheck("kinky", rng.normal(size=(2, 3)), np.array([0, 1]))
    assert user_loss_of(info.value) == "kinky"
    result = CliRunner().invoke(
        main, ["check", "--loss", "kinky", "--samples", "2", "--format", "json"]
    )
    assert result.exit_code == 1, (result.stdout, result.stderr)
    (loss,) = json.loads(result.stdout)["losses"]
    assert {f["message"] for f in loss["families"].values()} == {
        "RuntimeError: kink bug"
    }

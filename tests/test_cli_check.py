"""``arrayloss check`` and ``arrayloss list`` through click's CliRunner and as a
subprocess: output, exit codes, errors on stderr."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

import arrayloss as al
from arrayloss.cli import main


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, args: list[str], exit_code: int = 0):
    result = runner.invoke(main, args, catch_exceptions=False)
    assert result.exit_code == exit_code, (
        f"args={args}\nstdout={result.stdout}\nstderr={result.stderr}"
    )
    return result


def test_list_shows_every_loss_with_parameters(runner):
    out = invoke(runner, ["list"]).stdout
    for name, info in al.LOSSES.items():
        assert name in out
        for param in info.params:
            assert param in out
    names = invoke(runner, ["list", "--names-only"]).stdout.split()
    assert names == list(al.LOSSES)


def test_check_passes_for_every_loss(runner):
    out = invoke(runner, ["check", "--samples", "6", "--classes", "7"]).stdout
    assert "FAIL" not in out
    for name in al.LOSSES:
        assert name in out


def test_check_with_parameters(runner):
    out = invoke(
        runner,
        ["check", "--loss", "cross_entropy:label_smoothing=0.2", "--samples", "4"],
    ).stdout
    assert "cross_entropy:label_smoothing=0.2" in out
    assert " ok" in out


def test_check_reports_failure_with_exit_1(runner, monkeypatch):
    import arrayloss._gradcheck as gc

    real = gc.gradcheck

    def broken(*args, **kwargs):
        res = real(*args, **kwargs)
        return gc.GradcheckResult(
            1.0, 1.0, res.n_checked, res.n_at_kink, 1, res.checked, res.checked,
            res.analytic, res.numeric, res.fd_error,
        )  # fmt: skip

    monkeypatch.setattr(al, "gradcheck", broken)
    result = invoke(
        runner, ["check", "--loss", "cross_entropy", "--samples", "3"], exit_code=1
    )
    assert "FAIL" in result.stdout
    assert "disagree" in result.stderr
    assert "cross_entropy" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check", "--loss", "nope"], "unknown loss"),
        (["check", "--loss", "cross_entropy:bogus=1"], "bogus"),
        (["check", "--loss", "cross_entropy:label_smoothing=abc"], "label_smoothing"),
        (["check", "--classes", "1"], "--classes"),
        (["check", "--rtol", "-1"], "--rtol"),
        (["check", "--rtol", "0"], "--rtol"),
        (["check", "--rtol", "1"], "--rtol"),
        (["check", "--rtol", "nan"], "--rtol"),
        (["check", "--rtol", "inf"], "--rtol"),
        (["check", "--rtol", "abc"], "--rtol"),
        (["check", "--atol", "-1e-9"], "--atol"),
        (["check", "--atol", "nan"], "--atol"),
        (["check", "--samples", "0"], "--samples"),
        (["check", "--format", "xml"], "--format"),
        (["check", "--loss", "smooth_topk_svm:hard_threshold=abc"], "hard_threshold"),
        (["check", "--loss", "smooth_topk_svm:hard_threshold=0.5"], "hard_threshold"),
        (["check", "--loss", "smooth_topk_svm:hard_threshold=nan"], "hard_threshold"),
        (["check", "--loss", "smooth_topk_svm:hard_threshold=inf"], "hard_threshold"),
        (["check", "--loss", "smooth_topk_svm:tau=0"], "tau"),
        (["check", "--loss", "smooth_topk_svm:tau=nan"], "tau"),
        (["check", "--loss", "smooth_topk_svm:k=0"], "k"),
        (["check", "--loss", "smooth_topk_svm:k=2.5"], "k"),
        (["check", "--loss", "topk_svm:k=5", "--classes", "3"], "k"),
        (["check", "--loss", "hinge:margin=-1"], "margin"),
        (["check", "--loss", "keras.huber:delta=0"], "delta"),
        (["check", "--loss", "cross_entropy:"], "nothing after"),
        (
            [
                "check",
                "--loss",
                "cross_entropy:label_smoothing=0.1,label_smoothing=0.2",
            ],
            "twice",
        ),
        (["list", "--format", "yaml"], "--format"),
    ],
)
def test_check_usage_errors_exit_2(runner, args, message):
    result = invoke(runner, args, exit_code=2)
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    # one line naming the problem (after click's usage lines)
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1


def test_check_bad_parameter_value_exit_2(runner):
    result = invoke(
        runner, ["check", "--loss", "cross_entropy:label_smoothing=2"], exit_code=2
    )
    assert "label_smoothing" in result.stderr


def test_module_entry_point():
    out = subprocess.run(
        [sys.executable, "-m", "arrayloss", "check", "--loss", "cross_entropy", "--samples", "3"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "cross_entropy" in out.stdout


# ----------------------------------------------------------------- false verdicts


def test_check_classes_3_adapts_top_k_and_says_so(runner):
    """Before: stopped with exit 2 on the top-k losses' default k=5."""
    result = invoke(runner, ["check", "--classes", "3", "--samples", "4"])
    out = result.stdout
    assert "FAIL" not in out
    for name in ("smooth_topk_svm", "topk_svm", "topk_hinge_alpha", "topk_entropy"):
        assert f"{name}:k=2" in out
        assert f"note: {name}:k=2: default k=5 needs more than 3 classes" in out


def test_check_classes_2_adapts_to_k_1(runner):
    doc = json.loads(
        invoke(
            runner, ["check", "--classes", "2", "--samples", "3", "--format", "json"]
        ).stdout
    )
    by_name = {x["name"]: x for x in doc["losses"]}
    assert by_name["topk_svm"]["params"] == {"k": 1}
    assert "k=1" in by_name["topk_svm"]["note"]
    assert doc["status"] == "passed"


def test_check_small_tau_is_not_a_false_failure(runner):
    """Before: smooth_topk_svm:tau=0.01 FAILed with correct gradients."""
    out = invoke(
        runner, ["check", "--loss", "smooth_topk_svm:tau=0.01", "--samples", "20"]
    ).stdout
    assert "FAIL" not in out
    assert " ok" in out


def test_check_all_rows_at_a_kink_is_not_a_pass(runner, monkeypatch):
    """A loss named with --loss whose rows all sit on kinks compared nothing:
    exit 1 and 'at kink' cells, never 'ok'."""
    import numpy as np

    import arrayloss.cli._check as chk

    def all_ties(n, c, seed):
        zeros = (np.zeros((n, c)), np.zeros(n, dtype=np.int64))
        return dict.fromkeys(chk.FAMILIES, zeros)

    monkeypatch.setattr(chk, "input_families", all_ties)
    result = invoke(runner, ["check", "--loss", "l1", "--samples", "3"], exit_code=1)
    assert "at kink" in result.stdout
    assert " ok" not in result.stdout
    assert "nothing was compared for l1" in result.stderr
    doc = json.loads(
        invoke(
            runner,
            ["check", "--loss", "l1", "--samples", "3", "--format", "json"],
            exit_code=1,
        ).stdout
    )
    assert doc["status"] == "skipped"
    assert doc["losses"][0]["checked"] == 0
    assert doc["losses"][0]["at_kink"] == 12
    assert {f["status"] for f in doc["losses"][0]["families"].values()} == {"skipped"}


def test_check_ties_family_compares_rows_of_every_loss(runner):
    """Before: the ties family compared nothing for 7 kinked losses and passed."""
    doc = json.loads(
        invoke(runner, ["check", "--samples", "20", "--format", "json"]).stdout
    )
    assert [x["name"] for x in doc["losses"]] == list(al.LOSSES)
    for loss in doc["losses"]:
        ties = loss["families"]["ties"]
        assert ties["checked"] > 0, loss["loss"]
        assert ties["status"] == "passed", loss["loss"]


def test_check_error_inside_a_loss_is_a_failure_not_a_traceback(runner, monkeypatch):
    import arrayloss as al_mod

    def raising(*args, **kwargs):
        raise ValueError("boom\non two lines")

    monkeypatch.setattr(al_mod, "gradcheck", raising)
    result = invoke(runner, ["check", "--loss", "l2", "--samples", "2"], exit_code=1)
    assert "error: boom on two lines" in result.stdout
    assert "Traceback" not in result.stderr
    doc = json.loads(
        invoke(
            runner, ["check", "--loss", "l2", "--format", "json"], exit_code=1
        ).stdout
    )
    fam = doc["losses"][0]["families"]["random"]
    assert fam["status"] == "error"
    assert fam["message"] == "boom on two lines"


def test_check_of_a_loss_that_raised_does_not_say_it_disagrees(runner, monkeypatch):
    """A loss whose check raised an error ended in "analytic gradients disagree
    with finite differences", which nothing had compared; the line now tells an
    error from a disagreement, and names both kinds."""
    import arrayloss._gradcheck as gc

    real = gc.gradcheck

    def by_loss(name, *args, **kwargs):
        if name == "l2":
            raise ValueError("boom")
        res = real(name, *args, **kwargs)
        if name == "l1":  # a disagreement
            return gc.GradcheckResult(
                1.0, 1.0, res.n_checked, res.n_at_kink, 1, res.checked, res.checked,
                res.analytic, res.numeric, res.fd_error,
            )  # fmt: skip
        return res

    monkeypatch.setattr(al, "gradcheck", by_loss)
    result = invoke(runner, ["check", "--loss", "l2", "--samples", "2"], exit_code=1)
    assert result.stderr.splitlines() == [
        "Error: an error was raised on some inputs (see the notes): l2"
    ]
    args = ["check", "--loss", "l1", "--loss", "l2", "--loss", "tanimoto"]
    result = invoke(runner, [*args, "--samples", "2"], exit_code=1)
    assert result.stderr.splitlines() == [
        "Error: analytic gradients disagree with finite differences: l1; an error "
        "was raised on some inputs (see the notes): l2"
    ]


# ----------------------------------------------------------------- --format json


CHECK_KEYS = {
    "command",
    "classes",
    "samples",
    "seed",
    "rtol",
    "atol",
    "status",
    "losses",
}
LOSS_KEYS = {"loss", "name", "params", "status", "note", "rows", "checked", "at_kink",
             "failed", "infinite", "unresolved", "families"}  # fmt: skip
FAMILY_KEYS = {"status", "rows", "checked", "at_kink", "failed", "infinite",
               "unresolved",
               "max_abs_error", "max_rel_error", "below_noise_floor",
               "message"}  # fmt: skip


def test_check_json_has_the_documented_keys(runner):
    result = invoke(
        runner,
        ["check", "--loss", "crammer_singer", "--loss", "smooth_topk_svm:k=2,tau=0.5",
         "--samples", "5", "--rtol", "1e-7", "--format", "json"],
    )  # fmt: skip
    doc = json.loads(result.stdout)
    assert set(doc) == CHECK_KEYS
    assert doc["command"] == "check"
    assert (doc["classes"], doc["samples"], doc["seed"]) == (10, 5, 0)
    assert doc["rtol"] == 1e-7
    assert doc["atol"] is None
    assert doc["status"] == "passed"
    assert [x["loss"] for x in doc["losses"]] == [
        "crammer_singer",
        "smooth_topk_svm:k=2,tau=0.5",
    ]
    for loss in doc["losses"]:
        assert set(loss) == LOSS_KEYS
        assert loss["status"] == "passed"
        assert set(loss["families"]) == {"random", "large", "ties", "near_one_hot"}
        assert loss["rows"] == 20
        assert loss["checked"] + loss["at_kink"] == loss["rows"]
        for fam in loss["families"].values():
            assert set(fam) == FAMILY_KEYS
            assert fam["rows"] == 5
            assert fam["failed"] == 0
            assert fam["max_rel_error"] is None or fam["max_rel_error"] >= 0
    assert doc["losses"][1]["params"] == {"k": 2, "tau": 0.5}
    help_text = invoke(runner, ["check", "--help"]).stdout
    for key in CHECK_KEYS | LOSS_KEYS | FAMILY_KEYS:
        assert key in help_text


def test_check_json_every_loss_parses_and_agrees_with_table(runner):
    args = ["check", "--samples", "4", "--classes", "5"]
    doc = json.loads(invoke(runner, [*args, "--format", "json"]).stdout)
    table = invoke(runner, args).stdout
    assert [x["name"] for x in doc["losses"]] == list(al.LOSSES)
    for loss in doc["losses"]:
        assert f"{loss['checked']}/{loss['rows']}" in table
        assert loss["status"] == "passed", loss


def test_check_json_atol_is_reported(runner):
    doc = json.loads(
        invoke(
            runner,
            [
                "check",
                "--loss",
                "l2",
                "--atol",
                "1e-9",
                "--samples",
                "2",
                "--format",
                "json",
            ],
        ).stdout
    )
    assert doc["atol"] == 1e-9


def test_list_json_has_the_documented_keys(runner):
    doc = json.loads(invoke(runner, ["list", "--format", "json"]).stdout)
    assert set(doc) == {"losses"}
    assert [x["name"] for x in doc["losses"]] == list(al.LOSSES)
    for entry in doc["losses"]:
        assert set(entry) == {"name", "params", "targets", "summary"}
        info = al.LOSSES[entry["name"]]
        assert entry["params"] == dict(info.params)
        assert set(entry["targets"]) <= {"index", "soft"}
        assert entry["targets"] == info.targets.split("|")
        assert entry["summary"] == info.summary
    assert doc["losses"][0]["params"] == {"label_smoothing": 0.0}
    topk = next(x for x in doc["losses"] if x["name"] == "smooth_topk_svm")
    assert topk["params"]["hard_threshold"] is None
    help_text = invoke(runner, ["list", "--help"]).stdout
    for key in ("losses", "name", "params", "targets", "summary"):
        assert key in help_text


def test_list_json_names_only(runner):
    names = json.loads(
        invoke(runner, ["list", "--names-only", "--format", "json"]).stdout
    )
    assert names == list(al.LOSSES)


# ----------------------------------------------------------------- adversarial


@pytest.mark.parametrize(
    "args",
    [
        ["check", "--seed", "-1"],
        ["check", "--classes", "1001"],
        ["check", "--samples", "10001"],
        ["check", "--classes", "abc"],
        ["check", "--samples", "2.5"],
        ["check", "--rtol", ""],
        ["check", "--atol", "inf"],
        ["check", "--loss", ""],
        ["check", "--loss", ":k=2"],
        ["check", "--loss", "smooth_topk_svm:k"],
        ["check", "--loss", "smooth_topk_svm:k=2,,tau=1"],
        ["check", "--loss", "smooth_topk_svm:k=1e400"],
        ["check", "--loss", "smooth_topk_svm:tau=1e400"],
        ["check", "--loss", "smooth_topk_svm:alpha=-1"],
        ["check", "--loss", "topk_entropy:k=10"],
        ["check", "--loss", "cross_entropy:label_smoothing=1.5"],
        ["check", "--bogus"],
        ["list", "--bogus"],
    ],
)
def test_check_adversarial_usage_exit_2_one_line(runner, args):
    result = invoke(runner, args, exit_code=2)
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1


def test_check_of_a_loss_that_overflows_is_one_line(runner):
    """``hinge:margin=1e308`` is infinite: its families say so (not that the
    gradients disagree), exit 1, with no NumPy overflow warnings on stderr (an
    internal error where warnings are errors)."""
    args = ["check", "--loss", "hinge:margin=1e308", "--samples", "2"]
    result = invoke(runner, args, exit_code=1)
    assert result.stderr.splitlines() == [
        "Error: the loss is infinite at some rows: hinge:margin=1e+308 (finite "
        "differences cannot check a gradient there)"
    ]
    (row,) = [line for line in result.stdout.splitlines() if line.startswith("hinge")]
    assert row.split()[-1] == "infinite"
    assert "FAIL" not in result.stdout
    doc = json.loads(invoke(runner, [*args, "--format", "json"], exit_code=1).stdout)
    assert doc["status"] == "infinite"
    (loss,) = doc["losses"]
    assert (loss["status"], loss["infinite"], loss["failed"]) == ("infinite", 8, 0)
    assert {f["status"] for f in loss["families"].values()} == {"infinite"}


def test_check_of_a_loss_too_large_to_resolve_is_not_a_pass(runner):
    """``hinge:margin=1e200`` is finite (~1e200) with a gradient of order 1: the
    default noise floor, 1e190, let any estimate agree, and the check printed
    "ok" with exit 0.  Its families are "unresolved", exit 1, one line."""
    args = ["check", "--loss", "hinge:margin=1e200", "--samples", "2"]
    result = invoke(runner, args, exit_code=1)
    assert result.stderr.splitlines() == [
        "Error: the loss is too large to resolve its gradient at some rows: "
        "hinge:margin=1e+200 (its rounding exceeds the gradient)"
    ]
    (row,) = [line for line in result.stdout.splitlines() if line.startswith("hinge")]
    assert row.split()[-1] == "unresolved"
    doc = json.loads(invoke(runner, [*args, "--format", "json"], exit_code=1).stdout)
    assert doc["status"] == "unresolved"
    (loss,) = doc["losses"]
    assert (loss["status"], loss["unresolved"], loss["checked"]) == ("unresolved", 8, 0)
    assert {f["status"] for f in loss["families"].values()} == {"unresolved"}


def test_check_one_sample_every_loss(runner):
    doc = json.loads(
        invoke(runner, ["check", "--samples", "1", "--format", "json"]).stdout
    )
    assert doc["status"] == "passed"
    assert [x["name"] for x in doc["losses"]] == list(al.LOSSES)
    for loss in doc["losses"]:
        assert loss["rows"] == 4
        assert loss["status"] in {"passed", "skipped"}


def test_check_json_on_failure_still_parses(runner, monkeypatch):
    import arrayloss._gradcheck as gc

    real = gc.gradcheck

    def broken(*args, **kwargs):
        res = real(*args, **kwargs)
        return gc.GradcheckResult(
            0.5, 0.5, res.n_checked, res.n_at_kink, res.n_checked, res.checked,
            res.checked, res.analytic, res.numeric, res.fd_error,
        )  # fmt: skip

    monkeypatch.setattr(al, "gradcheck", broken)
    result = invoke(
        runner,
        ["check", "--loss", "l2", "--loss", "tanimoto", "--samples", "2", "--format", "json"],
        exit_code=1,
    )  # fmt: skip
    doc = json.loads(result.stdout)
    assert doc["status"] == "failed"
    assert [x["status"] for x in doc["losses"]] == ["failed", "failed"]
    assert doc["losses"][0]["families"]["random"]["failed"] == 2
    assert "l2, tanimoto" in result.stderr


def test_check_same_loss_twice_and_spaces(runner):
    out = invoke(
        runner,
        ["check", "--loss", " l2 ", "--loss", "l2:", "--samples", "2"],
        exit_code=2,
    )
    assert "nothing after" in out.stderr
    out = invoke(runner, ["check", "--loss", " l2 ", "--loss", "l2", "--samples", "2"])
    assert out.stdout.count("\nl2 ") == 2


@pytest.mark.parametrize(
    "spec", ["smooth_topk_svm:hard_threshold=abc", "smooth_topk_svm:hard_threshold=0"]
)
def test_check_bad_hard_threshold_as_a_process(spec):
    """Before: a TypeError traceback for a non-numeric hard_threshold."""
    out = subprocess.run(
        [sys.executable, "-m", "arrayloss", "check", "--loss", spec],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "hard_threshold" in out.stderr
    assert out.stdout == ""


def test_check_hard_threshold_switch_is_checked_away_from_it(runner):
    doc = json.loads(
        invoke(
            runner,
            [
                "check",
                "--loss",
                "smooth_topk_svm:k=2,hard_threshold=1e3",
                "--samples",
                "20",
                "--format",
                "json",
            ],
        ).stdout
    )
    loss = doc["losses"][0]
    assert loss["status"] == "passed"
    assert loss["checked"] > 0


def test_check_marks_families_below_the_noise_floor(runner):
    """Saturated Keras KL rows have gradients below atol: the table marks the
    meaningless relative error instead of printing 1e+00 next to 'ok' unexplained."""
    args = ["check", "--loss", "keras.kl_divergence", "--samples", "5"]
    doc = json.loads(invoke(runner, [*args, "--format", "json"]).stdout)
    fams = doc["losses"][0]["families"]
    assert fams["large"]["below_noise_floor"] is True
    assert fams["random"]["below_noise_floor"] is False
    out = invoke(runner, args).stdout
    assert "*" in out.splitlines()[2]
    assert "only absolute agreement" in out


def test_check_caps_classes_times_samples(runner, monkeypatch):
    """``--classes 1000 --samples 10000`` (each within its own range) asked the
    finite differences for about 7.5 GB and hours per loss, without a word.  More
    than `MAX_SCORES` scores per input family is bad usage before any work."""
    import arrayloss.cli._check as chk

    def no_work(*args, **kwargs):
        raise AssertionError("work started")

    monkeypatch.setattr(chk, "input_families", no_work)
    result = invoke(runner, ["check", "--classes", "1000", "--samples", "1001"], 2)
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert errors == [
        "Error: --classes 1000 x --samples 1001 = 1,001,000 scores per input "
        "family, more than 1,000,000 (the finite differences hold about 0.75 KB "
        "a score); lower --samples or --classes"
    ]
    assert "Traceback" not in result.stderr
    monkeypatch.undo()
    monkeypatch.setattr(chk, "MAX_SCORES", 6)  # the limit itself is allowed
    args = ["check", "--loss", "cross_entropy", "--classes", "3"]
    assert "ok" in invoke(runner, [*args, "--samples", "2"]).stdout
    invoke(runner, [*args, "--samples", "3"], exit_code=2)

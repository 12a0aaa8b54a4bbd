"""``arrayloss check`` and ``arrayloss list`` through click's CliRunner and as a
subprocess: output, exit codes, errors on stderr."""

from __future__ import annotations

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
            1.0, 1.0, False, res.checked, res.analytic, res.numeric, res.fd_error
        )

    monkeypatch.setattr(al, "gradcheck", broken)
    result = invoke(
        runner, ["check", "--loss", "cross_entropy", "--samples", "3"], exit_code=1
    )
    assert "FAIL" in result.stdout
    assert "disagree" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check", "--loss", "nope"], "unknown loss"),
        (["check", "--loss", "cross_entropy:bogus=1"], "bogus"),
        (["check", "--loss", "cross_entropy:label_smoothing=abc"], "label_smoothing"),
        (["check", "--classes", "1"], "--classes"),
    ],
)
def test_check_usage_errors_exit_2(runner, args, message):
    result = invoke(runner, args, exit_code=2)
    assert message in result.stderr
    assert "Traceback" not in result.stderr


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

"""The command line's one error handler and its module structure.

- Every expected error class becomes one line on standard error with its exit
  status, for every command: `DataError` and `OSError` exit 1, `UsageError` exit
  2, Ctrl-C exit 130; anything else is an "internal error" line (a traceback only
  with ``ARRAYLOSS_DEBUG=1``).
- Each ``arrayloss.cli`` module imports on its own in a fresh interpreter, and
  ``_dask_eval`` needs the engine and the shards, never the command (that no
  module's imports form a cycle is tests/test_imports.py).
"""

from __future__ import annotations

import ast
import errno
import os
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import INTERRUPTED, WITH_DEFAULT_SIGINT, signal_when_ready

import arrayloss.cli as cli
from arrayloss._errors import DataError, UsageError

CLI_DIR = Path(cli.__file__).parent
MODULES = sorted(p.stem for p in CLI_DIR.glob("*.py") if p.stem != "__init__")

# --------------------------------------------------------------------------- #
# The handler
# --------------------------------------------------------------------------- #

RAISED: list[BaseException] = []


@click.command("boom")
def boom() -> None:
    """A command that raises whatever the test put in RAISED."""
    raise RAISED[0]


@pytest.fixture
def run_boom(monkeypatch):
    monkeypatch.setitem(cli._COMMANDS, "boom", (__name__, "boom"))

    def run(exc: BaseException):
        RAISED[:] = [exc]
        return CliRunner().invoke(cli.main, ["boom"])

    return run


@pytest.mark.parametrize(
    ("exc", "code", "line"),
    [
        (DataError("bad\nfile"), 1, "Error: bad file"),
        (
            UsageError("two outputs name one file"),
            2,
            "Error: two outputs name one file",
        ),
        (
            OSError(errno.ENOSPC, "No space left on device", "/x/out.json"),
            1,
            "Error: cannot use '/x/out.json': No space left on device",
        ),
        (
            PermissionError(errno.EACCES, "Permission denied"),
            1,
            "Error: cannot use: Permission denied",
        ),
        (
            RuntimeError("boom\nsecond line"),
            1,
            "Error: internal error (RuntimeError: boom second line); please report it",
        ),
        (KeyError("x"), 1, "Error: internal error (KeyError: 'x'); please report it"),
        (
            ZeroDivisionError(),
            1,
            "Error: internal error (ZeroDivisionError: ZeroDivisionError); please report it",
        ),
        (
            MemoryError("cannot allocate"),
            1,
            "Error: out of memory (cannot allocate); try a smaller model or data set",
        ),
        (KeyboardInterrupt(), 130, "Error: interrupted"),
        # a file's name or header cannot drive the terminal
        (
            DataError("cannot read SCORES 'a\x1b[2J\u202eb.npy'"),
            1,
            "Error: cannot read SCORES 'a\\x1b[2J\\u202eb.npy'",
        ),
        (
            OSError(errno.ENOSPC, "No space left on device", "x\x07.json"),
            1,
            "Error: cannot use 'x\\x07.json': No space left on device",
        ),
    ],
)
def test_each_error_class_is_one_line(run_boom, monkeypatch, exc, code, line):
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    result = run_boom(exc)
    assert result.exit_code == code, (result.stderr, result.exception)
    assert result.stderr == line + "\n"
    assert result.stdout == ""


def test_debug_shows_the_internal_error(run_boom, monkeypatch):
    monkeypatch.setenv(cli.DEBUG_ENV, "1")
    result = run_boom(RuntimeError("boom"))
    assert isinstance(result.exception, RuntimeError)
    monkeypatch.setenv(cli.DEBUG_ENV, "0")
    assert run_boom(RuntimeError("boom")).stderr.startswith("Error: internal error")


def test_click_exceptions_pass_unchanged(run_boom):
    result = run_boom(click.BadParameter("nope", param_hint=["--x"]))
    assert result.exit_code == 2
    assert "Error: Invalid value for '--x': nope" in result.stderr
    result = run_boom(click.ClickException("checked and failed"))
    assert (result.exit_code, result.stderr) == (1, "Error: checked and failed\n")


@pytest.mark.parametrize("command", ["eval", "check", "list", "train", "study"])
def test_every_command_runs_under_the_handler(monkeypatch, command):
    """An unexpected error deep inside any command is one line, exit 1."""
    module_name, attr = cli._COMMANDS[command]
    module = __import__(module_name, fromlist=[attr])
    cmd = getattr(module, attr)

    def explode(*_args, **_kwargs):
        raise RuntimeError("deep\ninside")

    monkeypatch.setattr(cmd, "callback", explode)
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    result = CliRunner().invoke(cli.main, [command])
    assert result.exit_code == 1
    assert (
        result.stderr
        == "Error: internal error (RuntimeError: deep inside); please report it\n"
    )


def test_eval_library_value_errors_are_bad_data(monkeypatch, tmp_path):
    from arrayloss.cli import _eval

    def refuse(*_args, **_kwargs):
        raise ValueError("`weights` sum to zero")

    monkeypatch.setattr(_eval, "_evaluate", refuse)
    np.save(tmp_path / "z.npy", np.zeros((2, 3)))
    np.save(tmp_path / "y.npy", np.zeros(2, dtype=int))
    result = CliRunner().invoke(
        cli.main, ["eval", str(tmp_path / "z.npy"), str(tmp_path / "y.npy")]
    )
    assert (result.exit_code, result.stderr) == (1, "Error: `weights` sum to zero\n")


def test_ctrl_c_in_a_subprocess(tmp_path):
    """SIGINT during a long eval: exit 130, one line, no temporary file left."""
    rng = np.random.default_rng(0)
    n = 2_000_000  # chunks of 50 rows: seconds of work, however fast eval gets
    np.save(tmp_path / "z.npy", rng.normal(size=(n, 4)))
    np.save(tmp_path / "y.npy", rng.integers(0, 4, size=n))
    cmd = [
        sys.executable, "-m", "arrayloss", "eval", str(tmp_path / "z.npy"),
        str(tmp_path / "y.npy"), "--chunk-size", "50", "-q",
        "--per-sample", str(tmp_path / "rows.npy"),
    ]  # fmt: skip
    code, err = signal_when_ready(
        cmd, lambda: any(p.endswith(".part") for p in os.listdir(tmp_path)),
        settle=0.1,
    )  # fmt: skip
    assert code in INTERRUPTED, err
    assert err == "Error: interrupted\n"
    assert sorted(os.listdir(tmp_path)) == ["y.npy", "z.npy"]


# What the command imports from the start of ``import arrayloss`` until its
# start-up guard (arrayloss._startup) holds SIGINT: each is a window in which
# Ctrl-C prints a traceback.  Run as pip's script runs (argv[0] its path).
UNGUARDED_IMPORTS = """
import os, signal, sys
seen = []
class Spy:
    def find_spec(self, name, path=None, target=None):
        if (name == "arrayloss" or seen) and (
                signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            seen.append(name)
        if name == sys.argv[1]:
            os.kill(os.getpid(), signal.SIGINT)
        return None
sys.meta_path.insert(0, Spy())
sys.argv = [os.path.join(os.path.dirname(sys.executable), "arrayloss"), "--version"]
try:
    from arrayloss.cli import main
finally:
    print(",".join(seen), file=sys.stderr)
sys.exit(main())
"""


@pytest.mark.parametrize("at", ["", "__future__"])
def test_start_up_imports_nothing_before_its_ctrl_c_guard(at):
    """Before the guard, ``_startup`` imported ``__future__`` (its ``from
    __future__ import annotations``): Ctrl-C there, a quarter of the ~0.7 ms of
    the window that is arrayloss's own, ended in a KeyboardInterrupt traceback."""
    cmd = [sys.executable, "-c", UNGUARDED_IMPORTS, at]
    proc = subprocess.run(
        [sys.executable, "-c", WITH_DEFAULT_SIGINT, *cmd],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    *_, seen = proc.stderr.splitlines() or [""]
    assert seen == "arrayloss,arrayloss._startup", proc.stderr
    if at:  # imported later, if at all: the guard's one line
        assert proc.returncode in (0, *INTERRUPTED), proc.stderr
        assert "Traceback" not in proc.stderr
        if proc.returncode:
            assert proc.stderr.startswith("Error: interrupted\n"), proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr


def test_broken_pipe_is_quiet(tmp_path):
    """``arrayloss list | head -1``: no traceback when the reader goes away."""
    proc = subprocess.run(
        f"{sys.executable} -m arrayloss list | head -1",
        shell=True, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0
    assert "Traceback" not in proc.stderr
    assert proc.stdout.startswith("name")


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["check", "--classes", "1", "--format", "json"], 2),  # click's own
        (["check", "--classes", "1000", "--samples", "1001", "--format", "json"], 2),
        (["train", "--data", "NPZ", "--epochs", "1"], 1),  # one class: bad data
    ],
)
def test_errors_with_standard_error_closed_stay_off_standard_output(
    tmp_path, args, code
):
    """``arrayloss check --format json 2>&- > out.json``: with standard error
    closed click printed "Usage: ..." and "Error: ..." on standard output, after
    or instead of the JSON a script reads there.  Now they are lost, as closing
    standard error asks, and standard output holds nothing but the results."""
    import shlex

    data = tmp_path / "one_class.npz"
    np.savez(data, x=np.zeros((10, 2)), y=np.zeros(10, dtype=np.int64))
    argv = [str(data) if a == "NPZ" else a for a in args]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.run(
        f"{shlex.quote(sys.executable)} -m arrayloss {shlex.join(argv)} 2>&-",
        shell=True, stdout=subprocess.PIPE, text=True,
        timeout=120, check=False, env=env,
    )  # fmt: skip
    assert (proc.returncode, proc.stdout) == (code, "")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
@pytest.mark.parametrize("args", [["--help"], ["--version"], ["list", "--help"]])
def test_help_and_version_on_a_full_disk_are_one_line(args):
    """``arrayloss --help > /dev/full``: the group's --help and --version print
    while its options are parsed, before the one handler ran; they ended in a
    traceback."""
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "arrayloss", *args], stdout=full,
            stderr=subprocess.PIPE, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert (proc.returncode, proc.stderr) == (
        1,
        "Error: cannot write to standard output: No space left on device\n",
    )


def test_version_without_an_installed_distribution(monkeypatch):
    """``arrayloss --version`` asked the installed distribution's metadata: run
    from a checkout that is not installed, click raised "RuntimeError: 'arrayloss'
    is not installed" (a traceback), and with another version installed it
    printed that one.  It prints the version of the code that runs."""
    import importlib.metadata

    import arrayloss

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    result = CliRunner().invoke(cli.main, ["--version"])
    assert (result.exit_code, result.stdout) == (
        0,
        f"arrayloss, version {arrayloss.__version__}\n",
    )


def test_per_sample_to_a_pipe_whose_reader_went_away_is_quiet(tmp_path):
    """``eval ... --per-sample /dev/stdout | head -1``: the per-sample rows end
    as the results on standard output do when the reader goes away (click's
    quiet exit), not with 'cannot write --per-sample ...: Broken pipe'."""
    rng = np.random.default_rng(0)
    np.save(tmp_path / "z.npy", rng.normal(size=(200_000, 4)).astype(np.float32))
    np.save(tmp_path / "y.npy", rng.integers(0, 4, 200_000))
    cmd = (
        f"{sys.executable} -m arrayloss eval {tmp_path / 'z.npy'} "
        f"{tmp_path / 'y.npy'} --quiet --per-sample /dev/stdout"
    )
    proc = subprocess.run(
        f"set -o pipefail; {cmd} | head -1", shell=True, executable="/bin/bash",
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.stdout.startswith("id,predicted")
    assert proc.stderr == ""
    assert proc.returncode == 1  # click's exit status for a reader that went away


# --------------------------------------------------------------------------- #
# Module structure
# --------------------------------------------------------------------------- #


def _cli_imports(module: str) -> set[str]:
    """The ``arrayloss.cli`` modules ``module`` imports at its top level."""
    tree = ast.parse((CLI_DIR / f"{module}.py").read_text())
    found = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            name = node.module or ""
            if node.level == 1 and name in MODULES:
                found.add(name)
            elif name.startswith("arrayloss.cli.") and name.split(".")[-1] in MODULES:
                found.add(name.split(".")[-1])
            elif node.level == 1 and not name:
                found |= {a.name for a in node.names if a.name in MODULES}
    return found


def test_dask_eval_needs_the_engine_and_shards_only():
    """``_dask_eval`` imports the engine and the shards, never the command, and
    those two import no other CLI module (no cycle at all: tests/test_imports.py)."""
    graph = {m: _cli_imports(m) for m in MODULES}
    assert "_eval" not in graph["_dask_eval"]
    assert {"_engine", "_shards"} <= graph["_dask_eval"]
    assert graph["_engine"] == set()
    assert graph["_shards"] == set()


def test_each_cli_module_imports_alone():
    script = "; ".join(
        f"subprocess.run([sys.executable, '-c', 'import arrayloss.cli.{m}'], check=True)"
        for m in MODULES
    )
    subprocess.run(
        [sys.executable, "-c", f"import subprocess, sys; {script}"],
        check=True, timeout=300, env={**os.environ, "PYTHONWARNINGS": "error"},
    )  # fmt: skip


def test_loss_option_is_defined_once():
    """``--loss`` is spelled in one place: `_options.loss_option`."""
    spelled = [
        m
        for m in MODULES
        if m != "_options" and '"--loss"' in (CLI_DIR / f"{m}.py").read_text()
    ]
    allowed = {"_check", "_train", "_study"}  # switching, owned by other work
    assert set(spelled) <= allowed, spelled
    assert "_eval" not in spelled


# --------------------------------------------------------------------------- #
# Shared options
# --------------------------------------------------------------------------- #


def _toy():
    from arrayloss.cli import _options as o

    @click.command()
    @o.loss_option("loss", multiple=False, default="cross_entropy")
    @o.data_option()
    @o.hidden_option()
    @o.epochs_option(3)
    @o.batch_size_option(8)
    @o.optimizer_option("adam")
    @o.lr_option()
    @o.weight_decay_option()
    @o.noise_kind_option()
    @o.top_k_option()
    @o.backend_option(["numpy", "cupy"])
    def toy(**kwargs):
        click.echo(repr(sorted(kwargs.items())))

    return toy


def test_shared_training_options_parse():
    result = CliRunner().invoke(
        _toy(), ["--loss", "smooth_topk_svm:k=2", "--hidden", "4,2", "--lr", "0.5"]
    )
    assert result.exit_code == 0, result.output
    got = dict(eval(result.stdout))
    assert got["loss"] == ("smooth_topk_svm", {"k": 2})
    assert got["hidden"] == (4, 2)
    assert (got["lr"], got["weight_decay"], got["optimizer"]) == (0.5, 0.0, "adam")
    assert (got["epochs"], got["batch_size"], got["top_k"]) == (3, 8, 5)
    default = dict(eval(CliRunner().invoke(_toy(), []).stdout))
    assert default["loss"] == ("cross_entropy", {})
    assert default["hidden"] == (128,)


@pytest.mark.parametrize(
    "args",
    [
        ["--lr", "nan"],
        ["--lr", "inf"],
        ["--lr", "0"],
        ["--weight-decay", "nan"],
        ["--weight-decay", "-1"],
        ["--hidden", "4,x"],
        ["--hidden", "0"],
        ["--top-k", "0"],
        ["--loss", "nope"],
        ["--backend", "torch"],
        ["--epochs", "0"],
    ],
)
def test_shared_training_options_refuse_bad_values(args):
    result = CliRunner().invoke(_toy(), args)
    assert result.exit_code == 2
    assert f"Invalid value for '{args[0]}'" in result.stderr

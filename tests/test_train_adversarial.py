"""Adversarial cases for ``arrayloss train`` and ``arrayloss study``.

Think like an attacker, a careless user and a full disk: every bad input is one
line on stderr with exit 1 (bad data) or 2 (bad usage), no traceback, checked
before any training, and no output file replaced, truncated or left behind.
The classes of issue 11 head each section. Tiny data and one epoch keep it fast.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import json
import math
import os
import pickle
import shlex
import signal
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import INTERRUPTED, WITH_DEFAULT_SIGINT, signal_when_ready

from arrayloss import mlp
from arrayloss.cli import main

TINY = ["--epochs", "1", "--hidden", "4", "--batch-size", "16", "-q"]
STUDY = ["study", "--epochs", "1", "--max-epochs", "1", "--hidden", "4", "--seeds", "1", "--noise", "0",
         "--lr-grid", "0.001", "--loss", "cross_entropy", "-j", "1", "-q",
         "--no-plot"]  # fmt: skip
SAVED = ("model.npz", "test_logits.npy", "test_labels.npy", "metrics.json")
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def invoke(args: list[str], exit_code: int) -> Any:
    """Run the CLI; the exit code must match and a failure must be one clean line."""
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=True)
    everything = result.stdout + result.stderr
    assert result.exit_code == exit_code, (
        f"arrayloss {' '.join(map(str, args))} exited {result.exit_code}, expected "
        f"{exit_code}\n{everything}\n{result.exception!r}"
    )
    assert "Traceback" not in everything
    if exit_code in (1, 2):
        errors = [
            line for line in result.stderr.splitlines() if line.startswith("Error")
        ]
        assert len(errors) == 1, result.stderr
        assert "internal error" not in result.stderr, result.stderr
    return result


def error_line(result: Any) -> str:
    return next(line for line in result.stderr.splitlines() if line.startswith("Error"))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """30 samples, 4 features, 3 classes."""
    rng = np.random.default_rng(0)
    p = tmp_path / "data.npz"
    np.savez(p, x=rng.normal(size=(30, 4)), y=np.arange(30) % 3)
    return p


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Training fails loudly: a test using this proves its error came before any work."""

    def fit(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("training started before the options were checked")

    monkeypatch.setattr(mlp, "fit", fit)


def leftovers(folder: Path) -> list[str]:
    """Hidden temporary files anywhere below ``folder``."""
    return [
        os.path.join(d, f)
        for d, _, files in os.walk(folder)
        for f in files
        if f.endswith(".part") or f.startswith(".")
    ]


class FullDisk:
    """A writer that accepts ``budget`` bytes in all, then raises ENOSPC.

    Installed in place of the one function that opens output files, so every
    output of train and study meets it.
    """

    def __init__(self, budget: int, fail_at_file: int = 0) -> None:
        self.budget, self.fail_at_file, self.opened = budget, fail_at_file, 0

    def __call__(self, path: str) -> Any:
        index = self.opened
        self.opened += 1
        return _Writer(open(path, "wb"), self, armed=index >= self.fail_at_file)


class _Writer:
    def __init__(self, f: Any, disk: FullDisk, *, armed: bool) -> None:
        self.f, self.disk, self.armed = f, disk, armed

    def write(self, data: Any) -> int:
        data = bytes(data)
        if self.armed:
            if len(data) > self.disk.budget:
                self.f.write(data[: self.disk.budget])  # a partial write first
                self.disk.budget = 0
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.disk.budget -= len(data)
        return self.f.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.f, name)

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.f.close()


def fill_disk(
    monkeypatch: pytest.MonkeyPatch, budget: int, fail_at_file: int = 0
) -> FullDisk:
    from arrayloss.cli import _train

    disk = FullDisk(budget, fail_at_file)
    monkeypatch.setattr(_train, "_open_output", disk)
    return disk


def old_outputs(folder: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"old " + name.encode())
    return {name: (folder / name).read_bytes() for name in names}


# == Data replaced or lost ===========================================================


@pytest.mark.parametrize("fail_at_file", [0, 1, 2, 3])
@pytest.mark.parametrize("budget", [0, 100])
def test_full_disk_during_save_keeps_the_old_set(
    tmp_path, data, monkeypatch, fail_at_file, budget
):
    out = tmp_path / "run"
    before = old_outputs(out, SAVED)
    fill_disk(monkeypatch, budget, fail_at_file)
    r = invoke(["train", "--data", data, *TINY, "--save", out], exit_code=1)
    assert "No space left on device" in error_line(r)
    assert {p: (out / p).read_bytes() for p in SAVED} == before
    assert leftovers(tmp_path) == []
    assert "saved" not in r.stdout


def test_full_disk_new_save_folder_is_removed(tmp_path, data, monkeypatch):
    out = tmp_path / "a" / "b" / "run"
    fill_disk(monkeypatch, 0, fail_at_file=3)
    invoke(["train", "--data", data, *TINY, "--save", out], exit_code=1)
    assert not (tmp_path / "a").exists()
    assert leftovers(tmp_path) == []


def test_save_folder_made_meanwhile_by_another_run_is_used(tmp_path, data, monkeypatch):
    """Two runs saving to one new folder: the one that came second to create it
    failed with 'cannot create directory ...: File exists' and lost its results.
    Now it writes into the folder (the other run's: an error would not remove it)."""
    out = tmp_path / "shared" / "run"
    real_mkdir = Path.mkdir

    def raced(self: Path, *args: Any, **kwargs: Any) -> None:
        real_mkdir(self, *args, **kwargs)  # the other run, a moment earlier
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(self))

    monkeypatch.setattr(Path, "mkdir", raced)
    invoke(["train", "--data", data, *TINY, "--save", out], exit_code=0)
    assert sorted(os.listdir(out)) == sorted(SAVED)


@pytest.mark.parametrize("budget", [0, 1000])
def test_full_disk_writing_the_plot_leaves_no_png(tmp_path, data, monkeypatch, budget):
    pytest.importorskip("matplotlib")
    png = tmp_path / "curves.png"
    fill_disk(monkeypatch, budget)
    invoke(["train", "--data", data, *TINY, "--plot", png], exit_code=1)
    assert not png.exists()  # no 0-byte or truncated PNG
    assert leftovers(tmp_path) == []


def test_full_disk_at_the_plot_keeps_the_saved_set_old(tmp_path, data, monkeypatch):
    """The plot is the fifth file of one set: when it fails, none of the set lands."""
    pytest.importorskip("matplotlib")
    out, png = tmp_path / "run", tmp_path / "curves.png"
    before = old_outputs(out, SAVED)
    png.write_bytes(b"old png")
    fill_disk(monkeypatch, 0, fail_at_file=4)
    invoke(["train", "--data", data, *TINY, "--save", out, "--plot", png], exit_code=1)
    assert {p: (out / p).read_bytes() for p in SAVED} == before
    assert png.read_bytes() == b"old png"
    assert leftovers(tmp_path) == []


def test_plot_failure_commits_nothing(tmp_path, data, monkeypatch):
    pytest.importorskip("matplotlib")
    from arrayloss.cli import _train

    def broken(*args: Any) -> bytes:
        raise RuntimeError("renderer exploded")

    monkeypatch.setattr(_train, "_plot_curves", broken)
    out = tmp_path / "run"
    r = CliRunner().invoke(
        main, ["train", "--data", str(data), *TINY, "--save", str(out),
               "--plot", str(tmp_path / "c.png")],
    )  # fmt: skip
    assert r.exit_code == 1
    assert "Traceback" not in r.stderr
    assert "renderer exploded" in r.stderr  # an internal error, said in one line
    assert not out.exists()
    assert leftovers(tmp_path) == []


def test_signal_while_writing_cleans_up(tmp_path, data, monkeypatch):
    """SIGTERM becomes SystemExit (install_signal_handlers): the same clean-up runs."""
    from arrayloss.cli import _train

    out = tmp_path / "run"
    before = old_outputs(out, SAVED)
    calls = []

    def killed(path: str) -> Any:
        calls.append(path)
        if len(calls) == 3:
            raise SystemExit(143)
        return open(path, "wb")

    monkeypatch.setattr(_train, "_open_output", killed)
    r = CliRunner().invoke(
        main, ["train", "--data", str(data), *TINY, "--save", str(out)]
    )
    assert r.exit_code == 143
    assert {p: (out / p).read_bytes() for p in SAVED} == before
    assert leftovers(tmp_path) == []


def test_save_writes_through_a_symlink(tmp_path, data):
    out = tmp_path / "run"
    out.mkdir()
    real = tmp_path / "elsewhere.npy"
    real.write_bytes(b"old")
    (out / "test_logits.npy").symlink_to(real)
    invoke(["train", "--data", data, *TINY, "--save", out], exit_code=0)
    assert (out / "test_logits.npy").is_symlink()
    assert np.load(real).shape == (6, 3)


def test_save_folder_that_is_a_dangling_link_is_made_through_it(tmp_path, data):
    """The check looked through the link (its target, to be created) but the
    writing did not: the run trained to the end, then failed with "No such file
    or directory" (train and study alike)."""
    for command, option in (("train", "--save"), ("study", "--out")):
        link, target = tmp_path / f"{command}-link", tmp_path / f"{command}-new"
        link.symlink_to(target)
        args = [command, *TINY] if command == "train" else STUDY
        invoke([*args, "--data", data, option, link], exit_code=0)
        assert link.is_symlink()
        wanted = SAVED if command == "train" else ("runs.csv", "summary.md")
        assert all((target / name).is_file() for name in wanted)


def test_plot_writes_through_a_symlink(tmp_path, data):
    pytest.importorskip("matplotlib")
    real = tmp_path / "real.png"
    real.write_bytes(b"old")
    link = tmp_path / "link.png"
    link.symlink_to(real)
    invoke(["train", "--data", data, *TINY, "--plot", link], exit_code=0)
    assert link.is_symlink()
    assert real.read_bytes()[:4] == b"\x89PNG"


def test_plot_linked_to_a_saved_file_is_refused_first(tmp_path, data, no_training):
    pytest.importorskip("matplotlib")  # the --plot check needs it first
    out = tmp_path / "run"
    out.mkdir()
    link = tmp_path / "c.png"
    link.symlink_to(out / "model.npz")
    r = invoke(["train", "--data", data, *TINY, "--save", out, "--plot", link], 2)
    assert "name the same file" in error_line(r)
    assert list(out.iterdir()) == []


def test_save_over_the_input_data_is_refused_first(tmp_path, no_training):
    rng = np.random.default_rng(0)
    p = tmp_path / "model.npz"
    np.savez(p, x=rng.normal(size=(30, 4)), y=np.arange(30) % 3)
    before = p.read_bytes()
    r = invoke(["train", "--data", p, *TINY, "--save", tmp_path], exit_code=2)
    assert "is the input" in error_line(r)
    assert p.read_bytes() == before


def test_study_out_over_the_input_data_is_refused_first(tmp_path, no_training):
    rng = np.random.default_rng(0)
    real = tmp_path / "d.npz"
    np.savez(real, x=rng.normal(size=(30, 4)), y=np.arange(30) % 3)
    before = real.read_bytes()
    (tmp_path / "summary.md").symlink_to(real)  # writing summary.md would replace it
    r = invoke([*STUDY, "--data", real, "--out", tmp_path], exit_code=2)
    assert "is the input" in error_line(r)
    assert real.read_bytes() == before


@pytest.mark.parametrize("command", ["train", "study"])
def test_output_hard_linked_to_the_input_is_refused_first(
    tmp_path, data, no_training, command
):
    """An output that is a hard link to the input data (or to another output)
    was found only when the files were written, after all the training."""
    out = tmp_path / "out"
    out.mkdir()
    name = "model.npz" if command == "train" else "summary.md"
    os.link(data, out / name)
    args = ["train", "--data", data, *TINY, "--save", out] if command == "train" else [
        *STUDY, "--data", data, "--out", out]  # fmt: skip
    r = invoke(args, exit_code=2)
    assert f"{name}' is the input" in error_line(r)
    if command == "train":
        (out / name).unlink()
        (out / "test_logits.npy").write_bytes(b"old")
        os.link(out / "test_logits.npy", out / "test_labels.npy")
        r = invoke(args, exit_code=2)
        assert "and --save file test_logits.npy" in error_line(r)


@pytest.mark.parametrize("fail_at_file", [0, 3, 6])
def test_study_full_disk_keeps_the_old_set(tmp_path, data, monkeypatch, fail_at_file):
    pytest.importorskip("matplotlib")
    out = tmp_path / "s"
    names = ("runs.csv", "curves.csv", "study.json", "summary.md",
             "accuracy_vs_noise.png", "paired_differences.png", "curves.png")  # fmt: skip
    before = old_outputs(out, names)
    fill_disk(monkeypatch, 10, fail_at_file)
    args = [a for a in STUDY if a != "--no-plot"]
    r = invoke([*args, "--data", data, "--out", out], exit_code=1)
    assert "No space left on device" in error_line(r)
    assert {p: (out / p).read_bytes() for p in names} == before
    assert leftovers(tmp_path) == []


def test_study_full_disk_new_folder_is_removed(tmp_path, data, monkeypatch):
    fill_disk(monkeypatch, 0, fail_at_file=1)
    invoke([*STUDY, "--data", data, "--out", tmp_path / "x" / "s"], exit_code=1)
    assert not (tmp_path / "x").exists()


def test_divergence_writes_nothing(tmp_path, data):
    pytest.importorskip("matplotlib")
    out, png = tmp_path / "run", tmp_path / "c.png"
    invoke(["train", "--data", data, *TINY, "--lr", "1e30", "--save", out,
            "--plot", png], exit_code=1)  # fmt: skip
    assert not out.exists()
    assert not png.exists()


def test_bad_data_creates_no_folder(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"")
    invoke(["train", "--data", bad, *TINY, "--save", tmp_path / "run"], exit_code=1)
    invoke([*STUDY, "--data", bad, "--out", tmp_path / "s"], exit_code=1)
    assert sorted(os.listdir(tmp_path)) == ["bad.npz"]


@pytest.mark.parametrize("name", SAVED)
def test_save_file_that_is_a_directory_fails_first(tmp_path, data, no_training, name):
    out = tmp_path / "run"
    (out / name).mkdir(parents=True)
    r = invoke(["train", "--data", data, *TINY, "--save", out], exit_code=1)
    assert "is a directory" in error_line(r)
    assert os.listdir(out) == [name]


@pytest.mark.parametrize("name", SAVED)
def test_save_over_a_read_only_file_fails_first(
    tmp_path, data, no_training, monkeypatch, name
):
    """A saved file made read-only is not renamed over, before any training (as
    root, who may write it, a user's view of the permissions is faked)."""
    out = tmp_path / "run"
    out.mkdir()
    kept = out / name
    kept.write_text("old")
    kept.chmod(stat.S_IRUSR)
    real = os.access
    monkeypatch.setattr(
        os,
        "access",
        lambda path, mode: False if os.path.samefile(path, kept) else real(path, mode),
    )
    r = invoke(["train", "--data", data, *TINY, "--save", out], exit_code=1)
    assert f"{name}': the file is read-only" in error_line(r)
    assert kept.read_text() == "old"
    assert os.listdir(out) == [name]


def test_save_under_a_file_fails_first(tmp_path, data, no_training):
    r = invoke(["train", "--data", data, *TINY, "--save", data / "sub"], exit_code=1)
    assert "is not a directory" in error_line(r)
    r = invoke([*STUDY, "--data", data, "--out", data / "sub"], exit_code=1)
    assert "is not a directory" in error_line(r)


@pytest.mark.skipif(IS_ROOT, reason="root may write anywhere")
def test_save_in_a_read_only_folder_fails_first(tmp_path, data, no_training):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        r = invoke(["train", "--data", data, *TINY, "--save", ro / "run"], 1)
        assert "no permission" in error_line(r)
    finally:
        ro.chmod(stat.S_IRWXU)


def test_save_where_writing_is_not_permitted_fails_first(
    tmp_path, data, no_training, monkeypatch
):
    """The permission check itself (as root, `os.access` never says no: fake it)."""
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    r = invoke(["train", "--data", data, *TINY, "--save", tmp_path / "run"], 1)
    assert "no permission to write in" in error_line(r)
    r = invoke([*STUDY, "--data", data, "--out", tmp_path / "s"], 1)
    assert "no permission to write in" in error_line(r)
    assert sorted(os.listdir(tmp_path)) == ["data.npz"]


@pytest.mark.skipif(not hasattr(os, "statvfs"), reason="POSIX")
def test_save_on_a_read_only_file_system_says_so(
    tmp_path, data, no_training, monkeypatch
):
    """A folder on a file system mounted read-only was "no permission to write
    in" it, which misled root; the line now names the read-only file system (a
    real mount needs root: faked, as `os.access` is above)."""
    import types

    real = os.statvfs
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    monkeypatch.setattr(
        os, "statvfs", lambda p: types.SimpleNamespace(f_flag=os.ST_RDONLY)
    )
    for args in (
        ["train", "--data", data, *TINY, "--save", tmp_path / "run"],
        [*STUDY, "--data", data, "--out", tmp_path / "s"],
    ):
        line = error_line(invoke(args, 1))
        assert line.endswith(f"{str(tmp_path)!r} is on a read-only file system")
    monkeypatch.setattr(os, "statvfs", real)
    args = ["train", "--data", data, *TINY, "--save", tmp_path / "run"]
    assert error_line(invoke(args, 1)).endswith(
        f"no permission to write in {str(tmp_path)!r}"
    )
    assert sorted(os.listdir(tmp_path)) == ["data.npz"]


def test_sigterm_during_training_leaves_nothing(tmp_path, data):
    """A real SIGTERM while training: no folder, no hidden file (no files exist yet;
    the writing phase's clean-up on SIGTERM is `test_signal_while_writing_cleans_up`)."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "a" / "run"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "arrayloss", "train", "--data", str(data), "--epochs",
         "100000", "--hidden", "4", "-q", "--save", str(out)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(2.0)
    proc.send_signal(signal.SIGTERM)
    # Killed by the signal, or (with the CLI's handlers) SystemExit(128 + SIGTERM).
    assert proc.wait(timeout=60) in (-signal.SIGTERM, 128 + signal.SIGTERM)
    assert os.listdir(tmp_path) == ["data.npz"]


@pytest.mark.parametrize("which", ["--plot", "--save"])
def test_output_that_is_a_loop_of_links_fails_first(tmp_path, data, no_training, which):
    """An output named by a loop of symbolic links was found only when written,
    after the training ('Too many levels of symbolic links')."""
    if which == "--plot":
        pytest.importorskip("matplotlib")  # the --plot check needs it first
    out = tmp_path / "out"
    out.mkdir()
    a = out / ("curves.png" if which == "--plot" else "model.npz")
    a.symlink_to(out / "b")
    (out / "b").symlink_to(a)
    r = invoke(
        ["train", "--data", data, *TINY, which, a if which == "--plot" else out], 1
    )
    assert "Too many levels of symbolic links" in error_line(r)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="no /proc")
@pytest.mark.parametrize("command", ["train", "study"])
def test_folder_where_no_file_can_be_made_fails_first(
    tmp_path, data, no_training, command
):
    """A folder that os.access calls writable but where no file can be created
    (/proc for root; a root-squashed NFS share) was found only when the outputs
    were written, after the training."""
    if command == "train":
        pytest.importorskip("matplotlib")  # the --plot check needs it first
    args = ["train", "--data", data, *TINY, "--plot", "/proc/curves.png"] if (
        command == "train") else [*STUDY, "--data", data, "--out", "/proc/study"]  # fmt: skip
    r = invoke(args, exit_code=1)
    assert "cannot write" in error_line(r)
    assert "'/proc'" in error_line(r)


def test_plot_in_a_missing_folder_fails_first(tmp_path, data, no_training):
    """The check passed (the nearest existing folder was writable) and the run
    failed only after training, at the write: 'No such file or directory'."""
    pytest.importorskip("matplotlib")  # the --plot check needs it first
    png = tmp_path / "nowhere" / "c.png"
    r = invoke(["train", "--data", data, *TINY, "--plot", png], exit_code=1)
    assert f"the folder {str(png.parent)!r} does not exist" in error_line(r)
    # The --save folder is created, so a plot in it (not below it) is fine.
    r = CliRunner().invoke(
        main, ["train", "--data", str(data), *TINY, "--save", str(png.parent),
               "--plot", str(png)],
    )  # fmt: skip
    assert "training started before the options were checked" in r.stderr
    deeper = png.parent / "sub" / "c.png"
    r = invoke(["train", "--data", data, *TINY, "--save", png.parent, "--plot", deeper],
               exit_code=1)  # fmt: skip
    assert "does not exist" in error_line(r)
    assert sorted(os.listdir(tmp_path)) == ["data.npz"]


def test_overlong_output_names_fail_first(tmp_path, data, no_training):
    pytest.importorskip("matplotlib")  # the --plot check needs it first
    long = "n" * 300
    r = invoke(["train", "--data", data, *TINY, "--save", tmp_path / long / "x"], 1)
    assert "longer than" in error_line(r)
    r = invoke(["train", "--data", data, *TINY, "--plot", tmp_path / f"{long}.png"], 1)
    assert "longer than" in error_line(r)
    r = invoke([*STUDY, "--data", data, "--out", tmp_path / long], 1)
    assert "longer than" in error_line(r)


def test_save_dir_that_is_a_file_is_usage(tmp_path, data, no_training):
    before = data.read_bytes()
    invoke(["train", "--data", data, *TINY, "--save", data], exit_code=2)
    invoke([*STUDY, "--data", data, "--out", data], exit_code=2)
    assert data.read_bytes() == before


def test_plot_that_is_a_directory_is_usage(tmp_path, data, no_training):
    d = tmp_path / "c.png"
    d.mkdir()
    invoke(["train", "--data", data, *TINY, "--plot", d], exit_code=2)


def test_saved_set_is_complete_and_strict_json(tmp_path, data):
    out = tmp_path / "run"
    invoke(["train", "--data", data, *TINY, "--save", out], exit_code=0)
    assert sorted(os.listdir(out)) == sorted(SAVED)

    def no_constants(name: str) -> None:
        raise AssertionError(f"metrics.json holds {name}")

    json.loads((out / "metrics.json").read_text(), parse_constant=no_constants)
    mlp.load(out / "model.npz")


# == Wrong numbers ===================================================================


def _npz(tmp_path: Path, **arrays: Any) -> Path:
    p = tmp_path / "d.npz"
    np.savez(p, **arrays)
    return p


def test_uint64_label_is_not_reported_as_minus_one(tmp_path, no_training):
    x = np.zeros((30, 2))
    y = np.full(30, 2**64 - 1, dtype=np.uint64)
    r = invoke(["train", "--data", _npz(tmp_path, x=x, y=y), *TINY], exit_code=1)
    message = error_line(r).split("d.npz: ", 1)[1]
    assert "18446744073709551615" in message
    assert "-1" not in message


def test_fractional_class_count_is_not_truncated(tmp_path, no_training):
    x, y = np.zeros((30, 2)), np.arange(30) % 2
    r = invoke(["train", "--data", _npz(tmp_path, x=x, y=y, n_classes=2.5), *TINY], 1)
    assert "n_classes must be one integer" in error_line(r)


def test_class_count_larger_than_the_labels_is_used(tmp_path):
    x, y = np.random.default_rng(0).normal(size=(30, 2)), np.arange(30) % 2
    r = invoke(["train", "--data", _npz(tmp_path, x=x, y=y, n_classes=7), *TINY], 0)
    assert ": 7 classes" in r.stdout
    assert "model      2-4-7 relu" in r.stdout


def test_features_overflowing_float32_are_an_error_not_inf(tmp_path, no_training):
    x, y = np.full((30, 2), 1e300), np.arange(30) % 2
    p = _npz(tmp_path, x=x, y=y)
    r = invoke(["train", "--data", p, *TINY], exit_code=1)
    assert "overflow float32" in error_line(r)
    assert "--dtype float64" in error_line(r)
    invoke([*STUDY, "--data", p, "--out", tmp_path / "s"], exit_code=1)


@pytest.mark.parametrize(("dtype", "big"), [("float32", 3e38), ("float64", 1.7e308)])
def test_test_features_near_the_largest_float_give_a_finite_nll(tmp_path, dtype, big):
    """Training features of a normal size, test features near the largest float:
    the sum of the test NLL overflowed, and train printed an NLL of inf or nan,
    with NumPy's warning, and saved it as ``Infinity`` or ``NaN`` in
    metrics.json, which is no JSON.  The mean is finite (`_api.mean_of`): it is
    printed in three significant digits and saved as a number."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 4))
    x_test = x.copy()
    x_test[:, 0] = big
    p = _npz(
        tmp_path, x=x, y=np.arange(30) % 3, x_test=x_test, y_test=np.arange(30) % 3
    )
    out = tmp_path / "run"
    args = ["train", "--data", p, *TINY, "--dtype", dtype, "--save", out]
    r = invoke(args, exit_code=0)
    assert "Warning" not in r.stderr
    (row,) = [line for line in r.stdout.splitlines() if line.startswith("nll")]
    test_nll = row.split()[-1]
    assert "e+" in test_nll, row
    assert len(row.split()) == 3, row  # label, train, test: apart
    doc = json.loads((out / "metrics.json").read_text(), parse_constant=_no_constant)
    nll = doc["metrics"]["test"]["nll"]
    assert math.isfinite(nll)
    assert nll > 1e30
    assert float(test_nll) == pytest.approx(nll, rel=1e-2)


def _no_constant(name):
    raise AssertionError(f"metrics.json holds {name}, which is no JSON")


def test_metrics_that_are_not_finite_are_bad_data():
    """The guard behind the saved metrics: a metric that is not finite (scores
    that overflowed) is a `DataError` naming it, never a number written out."""
    from arrayloss._errors import DataError
    from arrayloss.cli._train import check_metrics

    ok = {"train": {"nll": 1.0}, "test": {"nll": 1e300}}
    check_metrics(ok, "d.npz", "float32", 1.0)
    bad = {"train": {"nll": 1.0}, "test": {"nll": math.inf, "ece": math.nan}}
    with pytest.raises(
        DataError, match=r"test metrics are not finite \(nll inf, ece nan\)"
    ):
        check_metrics(bad, "d.npz", "float32", 3e38)


def test_data_file_whose_name_is_no_utf8(tmp_path, data):
    """A file named with bytes that are no UTF-8 (``\\xff.npz``): train's --plot and
    every study ended in an internal error after the training, on the name's
    surrogate escape ('surrogates not allowed', matplotlib's TypeError). The name
    is now shown with U+FFFD in every output."""
    pytest.importorskip("matplotlib")
    p = Path(os.fsdecode(os.fsencode(tmp_path) + b"/\xff.npz"))
    try:
        p.write_bytes(data.read_bytes())
    except OSError:  # pragma: no cover - a file system of UTF-8 names only
        pytest.skip("this file system takes no such name")
    out, image = tmp_path / "run", tmp_path / "curves.svg"
    invoke(["train", "--data", p, *TINY, "--save", out, "--plot", image], exit_code=0)
    assert json.loads((out / "metrics.json").read_text())["config"]["data"] == str(
        p
    ).replace("\udcff", "\ufffd")
    assert "\ufffd.npz" in image.read_text(encoding="utf-8")
    study = [a for a in STUDY if a != "--no-plot"]
    invoke([*study, "--data", p, "--out", tmp_path / "s"], exit_code=0)
    assert "Data: \ufffd.npz (" in (tmp_path / "s" / "summary.md").read_text()


def test_data_file_named_with_control_characters_or_a_pipe(tmp_path, data):
    """A data file named ``e<ESC>[31m.npz`` drove the terminal that printed
    train's results; one named with a newline split study's tables over two
    lines, and ``a|b.npz`` split each Markdown row into one cell more."""
    for name in ("e\x1b[31mred.npz", "n\nl.npz", "a|b.npz"):
        (tmp_path / name).write_bytes(data.read_bytes())
    r = invoke(["train", "--data", tmp_path / "e\x1b[31mred.npz", *TINY], 0)
    assert r.stdout.startswith("data       e\\x1b[31mred.npz: 3 classes")
    assert "\x1b" not in r.stdout
    out = tmp_path / "s"
    args = [*STUDY, "--loss", "focal", "--seeds", "2", "--out", out]
    r = invoke(
        [*args, "--data", tmp_path / "n\nl.npz", "--data", tmp_path / "a|b.npz"], 0
    )
    assert "| loss | n\\nl.npz 0 | a\\|b.npz 0 |" in r.stdout
    page = (out / "summary.md").read_text()
    for line in page.splitlines():
        if line.startswith("| "):  # every row has the cells of its header
            assert line.replace("\\|", "").count("|") in (3, 4, 9), line
    assert "## a\\|b.npz" not in page  # a heading needs no escape
    assert "## n\\nl.npz" in page


@pytest.mark.parametrize("name", ["$\\bad{$.npz", "a$x^$.npz"])
def test_data_named_with_dollars_is_drawn_as_given(tmp_path, data, name):
    """matplotlib parsed a name between two ``$`` as TeX: a ValueError of mathtext
    when the figure was saved, an internal error after all the training (and
    after a whole study)."""
    pytest.importorskip("matplotlib")
    p = tmp_path / name
    p.write_bytes(data.read_bytes())
    image = tmp_path / "curves.svg"
    invoke(["train", "--data", p, *TINY, "--plot", image], exit_code=0)
    assert f"{name}, cross_entropy" in image.read_text()  # drawn as given
    study = [a for a in STUDY if a != "--no-plot"]
    invoke([*study, "--data", p, "--out", tmp_path / "s"], exit_code=0)
    assert (tmp_path / "s" / "curves.png").stat().st_size


def test_eval_plot_of_classes_named_with_dollars(tmp_path):
    """eval's reliability diagram and confusion matrix (the same drawing helper)
    said 'Error: x^ ^ ParseSyntaxException: Expected {phantom | llap ...' for a
    class named '$x^$'."""
    pytest.importorskip("matplotlib")
    (tmp_path / "p.csv").write_text("a,b,label\n0.1,0.9,$x^$\n0.8,0.2,ok\n")
    image = tmp_path / "e.png"
    args = ["eval", tmp_path / "p.csv", "--label-column", "label", "--input", "probs",
            "--classes", "$x^$,ok", "--plot", image, "--confusion", "-q"]  # fmt: skip
    invoke(args, exit_code=0)
    assert image.read_bytes().startswith(b"\x89PNG")


def test_data_named_in_a_script_the_font_lacks(tmp_path, data):
    """A data set named 日本.npz: every plot printed matplotlib's "Glyph ...
    missing from font" warning per character, which is an internal error where
    warnings are errors (PYTHONWARNINGS=error, and this test suite)."""
    pytest.importorskip("matplotlib")
    p = tmp_path / "日本.npz"
    p.write_bytes(data.read_bytes())
    r = invoke(["train", "--data", p, *TINY, "--plot", tmp_path / "c.png"], 0)
    assert "Warning" not in r.stderr
    study = [a for a in STUDY if a != "--no-plot"]
    r = invoke([*study, "--data", p, "--out", tmp_path / "s"], exit_code=0)
    assert "Warning" not in r.stderr
    assert (tmp_path / "s" / "curves.png").exists()


def test_huge_features_in_float64_diverge_with_a_hint(tmp_path):
    x = np.random.default_rng(0).normal(size=(30, 2)) * 1e200
    p = _npz(tmp_path, x=x, y=np.arange(30) % 2)
    r = invoke(["train", "--data", p, *TINY, "--dtype", "float64"], exit_code=1)
    assert "diverged in epoch 1" in error_line(r)
    assert "rescale the features" in error_line(r)


@pytest.mark.parametrize(
    ("optimizer", "lr", "loss"),
    [
        ("adam", "1e10", "cross_entropy"),  # issue 11: "succeeded" with NLL 2.8e21
        ("adam", "1e10", "expectation"),  # a bounded loss: only the scores show it
        ("adam", "1e10", "tanimoto"),
        ("sgd", "1e20", "cross_entropy"),
        ("sgd", "1e6", "squared_hinge"),
    ],
)
def test_divergence_is_detected_for_every_optimizer(data, optimizer, lr, loss):
    r = invoke(["train", "--data", data, *TINY, "--optimizer", optimizer, "--lr", lr,
                "--loss", loss], exit_code=1)  # fmt: skip
    line = error_line(r)
    assert "training diverged in epoch" in line
    assert f"try a smaller --lr than {float(lr):g}" in line
    assert "nll" not in r.stdout  # no table of meaningless numbers


def test_divergence_in_the_only_step_is_detected(data):
    """One epoch of one batch: the parameters after the last step are checked too."""
    args = ["--epochs", "1", "--hidden", "4", "--batch-size", "1000", "-q"]
    r = invoke(
        ["train", "--data", data, *args, "--optimizer", "adam", "--lr", "1e10"], 1
    )
    assert "after the last step" in error_line(r)


def test_study_marks_diverged_runs_instead_of_averaging_them(tmp_path, data):
    out = tmp_path / "s"
    r = invoke([*STUDY, "--data", data, "--out", out, "--optimizer", "adam",
                "--lr-grid", "1e10"], exit_code=0)  # fmt: skip
    assert "| cross_entropy | diverged |" in (out / "summary.md").read_text()
    assert "1 run(s) diverged" in r.stderr
    rows = (out / "runs.csv").read_text().splitlines()
    assert "training diverged in epoch" in rows[1]


def test_study_with_a_loss_that_diverges_at_once_marks_its_runs(tmp_path, data):
    """A loss that is infinite from the first step made the CPU-time estimate's probe
    raise: 'internal error (TrainingDiverged ...); please report it', exit 1, before
    any run."""
    out = tmp_path / "s"
    r = invoke([*STUDY, "--data", data, "--out", out, "--loss", "hinge:margin=1e300"],
               exit_code=0)  # fmt: skip
    assert "estimated" in r.stderr
    assert "| hinge:margin=1e+300 | diverged |" in (out / "summary.md").read_text()
    assert "1 run(s) diverged" in r.stderr


def test_loss_whose_probe_overflows_gives_one_line(tmp_path, data):
    """The parameter probe (two zero rows) of ``hinge:margin=1e308`` overflowed:
    NumPy's "overflow encountered in reduce" warning on stderr before the error
    (an internal error where warnings are errors)."""
    r = invoke(["train", "--data", data, *TINY, "--loss", "hinge:margin=1e308"], 1)
    assert r.stderr.splitlines() == [error_line(r)]
    assert "diverged" in error_line(r)
    r = invoke([*STUDY, "--data", data, "--out", tmp_path / "s",
                "--loss", "hinge:margin=1e308"], exit_code=0)  # fmt: skip
    assert "Warning" not in r.stderr


def test_loss_infinite_before_any_step_blames_the_loss_not_the_lr(tmp_path, data):
    """A loss that is inf or NaN on the first batch, at the initial parameters,
    said 'try a smaller --lr than 0.1', which cannot help: no step was taken."""
    for spec, shown in (
        ("hinge:margin=1e308", "hinge:margin=1e+308"),
        ("smooth_topk_svm:k=2,tau=1e-300", "smooth_topk_svm:k=2,tau=1e-300"),
    ):
        r = invoke(["train", "--data", data, *TINY, "--loss", spec], exit_code=1)
        line = error_line(r)
        assert "on the first batch, before any step, so no smaller --lr helps" in line
        assert f"check the parameters of --loss {shown!r}" in line
        assert "try a smaller" not in line
    r = invoke(["train", "--data", data, *TINY, "--lr", "1e308"], exit_code=1)
    assert "try a smaller --lr than 1e+308" in error_line(r)
    # the penalty of a weight decay of 1e308 overflows alone: it blamed the loss
    r = invoke(["train", "--data", data, *TINY, "--weight-decay", "1e308"], 1)
    assert error_line(r).endswith(
        "check the parameters of --loss 'cross_entropy' and --weight-decay 1e+308"
    )
    out = tmp_path / "s"
    invoke([*STUDY, "--data", data, "--out", out, "--loss", "hinge:margin=1e300"], 0)
    text = (out / "runs.csv").read_text()
    assert "no smaller learning rate helps" in text
    assert "try a smaller" not in text


def test_gradient_not_finite_before_any_step_blames_the_loss_not_the_lr(tmp_path, data):
    """``focal:gamma=1e39`` in float32: the first batch's loss is finite (0) but
    its gradient NaN (gamma overflows float32), so the first step made every
    parameter NaN and the line said 'try a smaller --lr than 0.1', which cannot
    help.  It names the gradient and the loss's parameters, as for a loss that is
    not finite; float64 trains."""
    args = ["train", "--data", data, *TINY, "--loss", "focal:gamma=1e39"]
    assert error_line(invoke(args, exit_code=1)) == (
        "Error: training diverged in epoch 1 (the gradient is not finite on the "
        "first batch, before any step, so no smaller --lr helps); check the "
        "parameters of --loss 'focal:gamma=1e+39'"
    )
    invoke([*args, "--dtype", "float64"], exit_code=0)
    out = tmp_path / "s"
    invoke([*STUDY, "--data", data, "--out", out, "--loss", "focal:gamma=1e39"], 0)
    text = (out / "runs.csv").read_text()
    assert "(the gradient is not finite); at the initial parameters" in text
    assert "try a smaller" not in text


def test_convergent_aggressive_training_is_not_flagged(data):
    invoke(["train", "--data", data, *TINY, "--optimizer", "adam", "--lr", "0.5"], 0)
    invoke(["train", "--data", data, *TINY, "--lr", "1", "--momentum", "0.9"], 0)


# == Crashes and tracebacks: malformed data, for train and for study ===================


def _idx(a: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
    return header + a.astype(np.uint8).tobytes()


X, Y = np.zeros((30, 3)), np.arange(30) % 3
BAD_NPZ = {
    "n_classes float": (
        {"x": X, "y": Y, "n_classes": 3.0},
        "n_classes must be one integer",
    ),
    "n_classes array": (
        {"x": X, "y": Y, "n_classes": [3, 4]},
        "n_classes must be one integer",
    ),
    "n_classes text": (
        {"x": X, "y": Y, "n_classes": "three"},
        "n_classes must be one integer",
    ),
    "n_classes bool": (
        {"x": X, "y": Y, "n_classes": True},
        "n_classes must be one integer",
    ),
    "n_classes 1": (
        {"x": X, "y": np.zeros(30, int), "n_classes": 1},
        "n_classes must be in",
    ),
    "n_classes negative": ({"x": X, "y": Y, "n_classes": -3}, "n_classes must be in"),
    "n_classes huge": ({"x": X, "y": Y, "n_classes": 2**62}, "n_classes must be in"),
    "n_classes too small": ({"x": X, "y": Y, "n_classes": 2}, "out of range"),
    "1 sample": ({"x": X[:1], "y": Y[:1]}, "too few samples to split"),
    "2 samples": ({"x": X[:2], "y": Y[:2]}, "too few samples to split"),
    "one class": ({"x": X, "y": np.zeros(30, int)}, "every label is 0: one class"),
    "one class of 3": (
        {"x": X, "y": np.ones(30, int), "n_classes": 3},
        "every label is 1: one class",
    ),
    "0 samples": ({"x": X[:0], "y": Y[:0]}, "n >= 1"),
    "x 1-d": ({"x": X[:, 0], "y": Y}, "shape (n, d, ...)"),
    "x no features": ({"x": np.zeros((30, 0)), "y": Y}, "d >= 1"),
    "x scalar": ({"x": np.float64(1), "y": Y}, "shape (n, d, ...)"),
    "y 2-d": ({"x": X, "y": Y[:, None]}, "1-d integer"),
    "y float": ({"x": X, "y": Y.astype(float)}, "1-d integer"),
    "y bool": ({"x": X, "y": Y.astype(bool)}, "1-d integer"),
    "y text": ({"x": X, "y": Y.astype(str)}, "1-d integer"),
    "y short": ({"x": X, "y": Y[:29]}, "29 labels for 30 samples"),
    "y negative": ({"x": X, "y": Y - 1}, ">= 0"),
    "y huge": ({"x": X, "y": Y + 2**40}, "too large"),
    "x nan": ({"x": np.where(X == 0, np.nan, X), "y": Y}, "NaN"),
    "x inf": ({"x": np.full((30, 3), -np.inf), "y": Y}, "NaN or infinite"),
    "x complex": ({"x": X + 1j, "y": Y}, "real numbers"),
    # timedelta64 is an np.integer to np.issubdtype: internal errors (TypeError)
    "x timedelta": ({"x": X.astype("m8[s]"), "y": Y}, "real numbers"),
    "x datetime": ({"x": X.astype("M8[s]"), "y": Y}, "real numbers"),
    "y timedelta": ({"x": X, "y": Y.astype("m8[s]")}, "1-d integer"),
    "n_classes timedelta": (
        {"x": X, "y": Y, "n_classes": np.timedelta64(3, "s")},
        "n_classes must be one integer",
    ),
    "x text": ({"x": X.astype(str), "y": Y}, "real numbers"),
    "no y": ({"x": X}, "needs arrays 'x' and 'y'"),
    "nothing": ({}, "found none"),
    "x_test alone": ({"x": X, "y": Y, "x_test": X}, "has x_test but no y_test"),
    "y_test alone": ({"x": X, "y": Y, "y_test": Y}, "has y_test but no x_test"),
    "x_test width": ({"x": X, "y": Y, "x_test": X[:, :2], "y_test": Y}, "x_test has 2"),
    "y_test range": (
        {"x": X, "y": Y, "x_test": X, "y_test": Y + 5, "n_classes": 3},
        "out of range",
    ),
    "x_test nan": ({"x": X, "y": Y, "x_test": X * np.nan, "y_test": Y}, "NaN"),
}


@pytest.mark.parametrize("command", ["train", "study"])
@pytest.mark.parametrize("case", list(BAD_NPZ))
def test_malformed_npz(tmp_path, no_training, command, case):
    arrays, message = BAD_NPZ[case]
    p = _npz(tmp_path, **arrays)
    args = ["train", "--data", p, *TINY] if command == "train" else [
        *STUDY, "--data", p, "--out", tmp_path / "s"]  # fmt: skip
    r = invoke(args, exit_code=1)
    assert message in error_line(r)
    assert "d.npz" in error_line(r)  # names the file
    assert not (tmp_path / "s").exists()


def _write(kind: str, tmp_path: Path) -> Path:
    if kind == "empty":
        p = tmp_path / "e.npz"
        p.write_bytes(b"")
    elif kind == "text":
        p = tmp_path / "t.npz"
        p.write_text("x,y\n1,2\n")
    elif kind == "truncated":
        good = _npz(tmp_path, x=X, y=Y)
        p = tmp_path / "cut.npz"
        p.write_bytes(good.read_bytes()[:200])
    elif kind == "bad crc":
        good = _npz(tmp_path, x=np.arange(90.0).reshape(30, 3), y=Y)
        raw = bytearray(good.read_bytes())
        at = raw.index(b"x.npy") + 200  # inside x's data
        raw[at] ^= 0xFF
        p = tmp_path / "crc.npz"
        p.write_bytes(bytes(raw))
    elif kind == "npy":
        p = tmp_path / "one.npz"
        with open(p, "wb") as f:
            np.save(f, X)
    elif kind == "pickle":
        p = tmp_path / "p.npz"
        p.write_bytes(pickle.dumps({"x": X, "y": Y}))
    elif kind == "object":
        p = tmp_path / "o.npz"
        np.savez(p, x=np.array([object()] * 30, dtype=object), y=Y)
    elif kind == "directory":
        p = tmp_path / "dir.npz"
        p.mkdir()
    elif kind == "fifo":
        p = tmp_path / "f.npz"
        os.mkfifo(p)
    elif kind == "dangling link":
        p = tmp_path / "gone.npz"
        p.symlink_to(tmp_path / "nowhere.npz")
    elif kind == "idx magic":
        p = tmp_path / "train-images-idx3-ubyte"
        p.write_bytes(b"not idx at all")
    elif kind == "idx gzip":
        p = tmp_path / "train-images-idx3-ubyte.gz"
        p.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"\xff" * 20)
    elif kind == "idx no labels":
        p = tmp_path / "train-images-idx3-ubyte"
        p.write_bytes(_idx(np.zeros((5, 2, 2))))
    elif kind == "idx truncated":
        p = tmp_path / "train-images-idx3-ubyte"
        p.write_bytes(_idx(np.zeros((5, 2, 2)))[:-3])
    elif kind == "idx 1-d images":
        p = tmp_path / "train-images-idx3-ubyte"
        p.write_bytes(_idx(np.zeros(5)))
        (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx(np.zeros(5)))
    elif kind == "idx labels 2-d":
        p = tmp_path / "train-images-idx3-ubyte"
        p.write_bytes(_idx(np.zeros((5, 2, 2))))
        (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx(np.zeros((5, 1))))
    elif kind in ("encrypted", "unknown method"):
        from conftest import patched_npz

        patch = {"flag": 1} if kind == "encrypted" else {"method": 98}
        p = patched_npz(tmp_path / "z.npz", x=X, y=Y, **patch)
    elif kind == "gzip bomb-ish":
        p = tmp_path / "train-images-idx3-ubyte.gz"
        p.write_bytes(gzip.compress(b"\0\0\x08\x03" + b"\xff" * 12))  # 4 GB promised
    else:  # pragma: no cover
        raise AssertionError(kind)
    return p


UNREADABLE = {
    "empty": "not a readable .npz",
    "text": "not a readable .npz",
    "truncated": "not a readable .npz",
    "bad crc": "not a readable .npz",
    "npy": "not an .npz archive",
    "pickle": "not a readable .npz",
    "object": "not a readable .npz",
    "directory": "no train-images-idx3-ubyte",
    "fifo": "not a regular file",  # reading it would block for ever
    "dangling link": "broken symbolic link",
    "idx magic": "not an IDX file",
    "idx gzip": "cannot read IDX file",
    "idx no labels": "no such file",
    "idx truncated": "bytes of data",
    "idx 1-d images": "shape (n, d, ...)",
    "idx labels 2-d": "1-d integer",
    "gzip bomb-ish": "more than this machine's memory",
    # a RuntimeError and a NotImplementedError of zipfile: internal errors
    "encrypted": "is encrypted, password required",
    "unknown method": "That compression method is not supported",
}


@pytest.mark.parametrize("command", ["train", "study"])
@pytest.mark.parametrize("kind", list(UNREADABLE))
def test_unreadable_data(tmp_path, no_training, command, kind):
    p = _write(kind, tmp_path)
    args = ["train", "--data", p, *TINY] if command == "train" else [
        *STUDY, "--data", p, "--out", tmp_path / "s"]  # fmt: skip
    r = invoke(args, exit_code=1)
    assert UNREADABLE[kind] in error_line(r)


@pytest.mark.parametrize("command", ["train", "study"])
def test_broken_matplotlib_setting_is_found_before_training(tmp_path, data, command):
    """``MPLBACKEND=nonsense``: matplotlib refuses to import, which ended the
    command in an internal error when the plot was drawn, after all the training."""
    pytest.importorskip("matplotlib")
    args = ["train", "--data", data, *TINY, "--plot", tmp_path / "c.png"] if (
        command == "train") else [*[a for a in STUDY if a != "--no-plot"],
                                  "--data", data, "--out", tmp_path / "s"]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "arrayloss", *map(str, args)], capture_output=True,
        text=True, timeout=300, check=False, env={**os.environ, "MPLBACKEND": "nonsense"},
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""  # nothing trained
    (line,) = proc.stderr.splitlines()
    assert "matplotlib cannot start" in line
    assert "MPLBACKEND is 'nonsense'" in line
    assert sorted(os.listdir(tmp_path)) == ["data.npz"]


def test_out_of_memory_is_one_line(data, monkeypatch):
    from arrayloss import datasets

    monkeypatch.setattr(datasets, "_memory", lambda: None)  # no check beforehand
    r = invoke(["train", "--data", data, *TINY, "--hidden", "100000000000"], 1)
    assert "out of memory" in error_line(r)


@pytest.mark.parametrize("width", [2**62, 10**23])
@pytest.mark.parametrize("checked", [True, False])
def test_model_too_large_for_an_array_is_bad_data(
    tmp_path, data, width, checked, monkeypatch
):
    """NumPy's ValueError for a layer no array can hold ("array is too big",
    "Maximum allowed dimension exceeded") was an internal error of study's
    CPU-time probe; train said it as bad data already.  (Now found before, by
    the model's size; without that check, by NumPy.)"""
    if not checked:
        from arrayloss import datasets

        monkeypatch.setattr(datasets, "_memory", lambda: None)
    r = invoke(["train", "--data", data, *TINY, "--hidden", width], exit_code=1)
    line = error_line(r)
    r = invoke([*STUDY, "--data", data, "--out", tmp_path / "s", "--hidden", width], 1)
    if checked:
        assert "more than this machine's memory" in line
        assert "more than this machine's memory" in error_line(r)
    else:
        assert error_line(r) == line
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("command", ["train", "study"])
def test_model_whose_layers_fit_one_by_one_but_not_together_is_refused_first(
    tmp_path, data, no_training, monkeypatch, command
):
    """Layers that each fit in memory and together do not were allocated one
    after another until the system killed the process: no message, exit 137
    (``--hidden 30000,30000,30000`` on a machine of 24 GiB).  On a machine of
    32 MiB, here, a model of 4e6 parameters is refused before any allocation."""
    from arrayloss import datasets, mlp

    monkeypatch.setattr(datasets, "_memory", lambda: 32 << 20)
    monkeypatch.setattr(mlp, "init", no_training_init)
    args = ["--hidden", "2000,2000"]
    r = invoke(
        ["train", "--data", data, *TINY, *args] if command == "train"
        else [*STUDY, "--data", data, "--out", tmp_path / "s", *args],
        exit_code=1,
    )  # fmt: skip
    line = error_line(r)
    assert "the model 4-2000-2000-3 has 4.02e+06 parameters" in line
    assert "more than this machine's memory (0.0312 GiB)" in line
    assert not (tmp_path / "s").exists()
    from arrayloss.cli._train import check_model_memory

    check_model_memory([4, 200, 200, 3], rows=64, dtype="float64", optimizer="adam")


def no_training_init(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the model was allocated before its size was checked")


def test_failed_study_run_is_one_line(tmp_path, data, monkeypatch):
    """A run that fails for a reason other than divergence ends the study cleanly."""
    from arrayloss.cli import _study

    def broken(task: dict[str, Any]) -> dict[str, Any]:
        raise ValueError("the loss refused these labels")

    monkeypatch.setattr(_study, "run_one", broken)
    r = invoke([*STUDY, "--data", data, "--out", tmp_path / "s"], exit_code=1)
    assert "the loss refused these labels" in error_line(r)
    assert not (tmp_path / "s").exists()


def _die(task: dict[str, Any]) -> dict[str, Any]:
    """A worker killed mid-run (never the test process itself)."""
    import multiprocessing

    if multiprocessing.parent_process() is None:
        raise AssertionError("the run was not in a worker process")
    os._exit(9)


def test_dead_study_worker_is_one_line(tmp_path, data, monkeypatch):
    from arrayloss.cli import _study

    monkeypatch.setattr(_study, "run_one", _die)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    args = [*STUDY, "--seeds", "2", "--data", data, "-j", "2", "--out", tmp_path / "s"]
    r = invoke(args, exit_code=1)
    assert "worker process died" in error_line(r)
    assert not (tmp_path / "s").exists()


def _slow(task: dict[str, Any]) -> dict[str, Any]:
    """A run that marks its start and, after a long while, its end."""
    folder = Path(task["data"]).parent
    (folder / f"started.{os.getpid()}").touch()
    time.sleep(15)
    (folder / f"finished.{os.getpid()}").touch()
    raise AssertionError("a run of an interrupted study went on to its end")


def test_interrupted_study_ends_its_runs_in_flight(tmp_path, data):
    """Ctrl-C (or SIGTERM) during a study with workers: cancelling the futures
    could not reach the runs in flight nor those already queued for a worker, so
    the study waited for them to train to the end before it exited."""
    script = (
        "import os, sys; sys.path.insert(0, sys.argv[1]); "
        "import test_train_adversarial as t; from arrayloss.cli import _study, main; "
        "_study.run_one = t._slow; os.cpu_count = lambda: 2; main(sys.argv[2:])"
    )
    args = [*STUDY, "--seeds", "4", "--data", data, "-j", "2", "--out", tmp_path / "s"]
    cmd = [sys.executable, "-c", script, str(Path(__file__).parent), *map(str, args)]
    code, err = signal_when_ready(
        cmd, lambda: any(p.name.startswith("started.") for p in tmp_path.iterdir()),
        timeout=120,
    )  # fmt: skip
    assert code in INTERRUPTED, err
    assert err.splitlines()[1:] == ["Error: interrupted"], err  # after the estimate
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith("finished.")]
    assert not (tmp_path / "s").exists()


def test_study_workers_leave_ctrl_c_to_the_parent(monkeypatch):
    """Ctrl-C reaches every process of the terminal's job: a worker idle at that
    moment printed 'Process SpawnProcess-2:' and its traceback on stderr beside
    the parent's one line. Workers now ignore SIGINT; the parent stops them."""
    from arrayloss.cli import _study

    monkeypatch.setattr(_study, "_one_blas_thread", lambda: None)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(var, os.environ.get(var, "1"))  # restored afterwards
    before = signal.getsignal(signal.SIGINT)
    try:
        _study._init_worker({}, {})
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)


SLOW_WORKER_START = """
import os, signal, sys, time
if "--multiprocessing-fork" in getattr(sys, "orig_argv", ()):  # a study's worker
    held = signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    ready = os.path.join(os.environ["READY_DIR"], f"starting.{os.getpid()}")
    with open(ready + ".part", "w") as f:
        f.write("held" if held else "open")
    os.replace(ready + ".part", ready)  # whole when seen
    time.sleep(3)  # starting up (importing NumPy), slowed down
"""


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="POSIX")
def test_ctrl_c_while_study_workers_start_is_one_line(tmp_path, data):
    """Ctrl-C reaches every process of the terminal's job: a worker still starting
    up (before `_init_worker` ignores SIGINT) printed its KeyboardInterrupt
    traceback beside the parent's line, in nearly every Ctrl-C of the first half
    second of a study with workers.  They start with SIGINT blocked; the parent
    acts on it once they are started."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SLOW_WORKER_START)
    path = os.pathsep.join([str(site), str(Path(__file__).parents[1])])
    env = {**os.environ, "READY_DIR": str(tmp_path), "PYTHONPATH": path}
    script = "import os, sys; from arrayloss.cli import main; "
    script += "os.cpu_count = lambda: 2; main(sys.argv[1:])"
    args = [*STUDY, "--seeds", "2", "--data", data, "-j", "2", "--out", tmp_path / "s"]
    proc = subprocess.Popen(
        [sys.executable, "-c", WITH_DEFAULT_SIGINT, sys.executable, "-c", script,
         *map(str, args)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group, as a terminal's job
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and not list(tmp_path.glob("starting.*[0-9]")):
            assert time.monotonic() < deadline, "no worker started"
            time.sleep(0.02)
        assert proc.poll() is None, "finished before it could be signalled"
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: to every process of the job
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode in INTERRUPTED, err
    assert err.splitlines()[1:] == ["Error: interrupted"], err  # after the estimate
    assert not (tmp_path / "s").exists()
    # not only when the parent stopped it first: it could not take the signal
    assert {p.read_text() for p in tmp_path.glob("starting.*[0-9]")} == {"held"}


# == Hangs ===========================================================================


def test_study_with_absurd_run_count_stops_at_once(data, no_training):
    r = invoke([*STUDY, "--data", data, "--seeds", "100000000"], exit_code=2)
    assert "100000000 runs" in error_line(r)


def test_study_jobs_capped_by_the_cpus(tmp_path, data, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    args = [*STUDY, "--data", data, "--out", tmp_path / "s", "-j", "100000"]
    r = invoke(args, exit_code=0)  # the last -j wins
    assert "with 1 job" in r.stdout


# == Messages and exit codes =========================================================


BAD_TRAIN_OPTIONS = [
    (["--lr", "nan"], "'nan' is not a finite number"),
    (["--lr", "inf"], "'inf' is not a finite number"),
    (["--lr", "-inf"], "'-inf' is not a finite number"),
    (["--lr", "1e400"], "not a finite number"),
    (["--lr", "0"], "--lr"),
    (["--lr", "-1"], "--lr"),
    (["--lr", "fast"], "--lr"),
    (["--weight-decay", "nan"], "not a finite number"),
    (["--weight-decay", "-1"], "--weight-decay"),
    (["--weight-decay", "inf"], "not a finite number"),
    (["--label-noise", "nan"], "not a finite number"),
    (["--label-noise", "1"], "--label-noise"),
    (["--momentum", "nan"], "not a finite number"),
    (["--momentum", "1"], "--momentum"),
    (["--momentum", "-0.5"], "--momentum"),
    (["--seed", "-1"], "--seed"),
    (["--seed", "1.5"], "--seed"),
    (["--epochs", "-3"], "--epochs"),
    # a typing slip trained for ever without a word
    (["--epochs", "1000000000000"], "not in the range 1<=x<=100000"),
    (["--epochs", "100001"], "not in the range 1<=x<=100000"),
    (["--batch-size", "0"], "--batch-size"),
    (["--top-k", "0"], "--top-k"),
    (["--hidden", "4,,4"], "integers separated by commas"),
    (["--hidden", "-4"], ">= 1"),
    (["--hidden", "1e3"], "integers separated by commas"),
    (["--plot", "curves.xyz"], "cannot tell the image type"),
    (["--plot", "curves"], "no extension"),
    (["--plot", "curves.png."], "no extension"),
    (["--plot", "curves.npz"], "'.npz'"),
    (["--data", ""], "is not 'digits'"),
    (["--save", ""], "an empty path"),
    (["--save", "-"], "'-' (standard output) cannot take these files"),  # a folder '-'
    (["--save", "  "], "an empty path"),
    (["--plot", ""], "an empty path"),
    (["--data", "   "], "is not 'digits'"),
    (["--data", "Digits"], "is not 'digits'"),
    (["--loss", "cross_entropy:label_smoothing=nan"], "label_smoothing"),
    (["--loss", "smooth_topk_svm:k=3"], "'smooth_topk_svm:k=3' with 3 classes"),
    (["--loss", "cross_entropy:"], "nothing after ':'"),
    # an infinite value was passed on and refused as "must be non-negative (got
    # gamma=inf)", naming a spec 'focal:gamma=inf' that was not the one typed
    (
        ["--loss", "focal:gamma=1e400"],
        "'focal:gamma=1e400': `gamma` must be a finite number (got '1e400')",
    ),
    (["--loss", "focal:gamma=inf"], "`gamma` must be a finite number (got 'inf')"),
    (["--loss", "poly1:epsilon=-inf"], "`epsilon` must be a finite number"),
    (["--loss", "taylor_cross_entropy:t=10001"], "1 <= t <= 10000"),
    (["--dtype", "float16"], "--dtype"),
    (["--noise-kind", "random"], "--noise-kind"),
]


@pytest.mark.parametrize(("args", "message"), BAD_TRAIN_OPTIONS)
def test_train_bad_options_exit_2_before_work(
    tmp_path, data, no_training, args, message
):
    r = invoke(["train", "--data", data, *TINY, *args], exit_code=2)
    assert message in error_line(r)


def test_empty_hidden_is_a_linear_model(data):
    r = invoke(["train", "--data", data, *TINY, "--hidden", ""], exit_code=0)
    assert "model      4-3 relu" in r.stdout


BAD_STUDY_OPTIONS = [
    (["--lr-grid", "nan"], "learning rates must be finite and > 0"),
    (["--lr-grid", "0"], "learning rates must be finite and > 0"),
    (["--lr-grid", "inf,0.1"], "learning rates must be finite and > 0"),
    (["--tune-seed", "-1"], "--tune-seed"),
    (["--weight-decay", "nan"], "not a finite number"),
    (["--weight-decay", "-1e-9"], "--weight-decay"),
    (["--noise", "nan"], "noise rates must lie in [0, 1)"),
    (["--noise", "inf"], "noise rates must lie in [0, 1)"),
    (["--noise", "1"], "noise rates must lie in [0, 1)"),
    (["--noise", ","], "noise rates must lie in [0, 1)"),
    (["--noise", "0;0.2"], "comma-separated numbers"),
    (["--seeds", "0"], "--seeds"),
    (["--epochs", "1000000000000"], "'--epochs': 1000000000000 is not in the range"),
    (["--max-epochs", "1000000000000"], "'--max-epochs': 1000000000000 is not in"),
    (["--patience", "1000000000000"], "'--patience': 1000000000000 is not in"),
    (["--jobs", "-1"], "--jobs"),
    (["--loss", "cross_entropy"], "given twice"),  # STUDY already names it
    # a default given explicitly is the same loss (it ran twice, as two losses)
    (["--loss", "cross_entropy:label_smoothing=0"], "is 'cross_entropy' again"),
    (["--loss", "nope"], "nope"),
    (["--data", "mnist"], "is not 'digits'"),
    (["--out", ""], "an empty path"),
    (["--out", "-"], "'-' (standard output) cannot take these files"),
]


@pytest.mark.parametrize(("args", "message"), BAD_STUDY_OPTIONS)
def test_study_bad_options_exit_2_before_work(
    tmp_path, data, no_training, args, message
):
    r = invoke([*STUDY, "--data", data, "--out", tmp_path / "s", *args], exit_code=2)
    assert message in error_line(r)
    assert not (tmp_path / "s").exists()


def test_library_divergence_is_a_floating_point_error():
    """The library error keeps its documented type; the CLI words it for the user."""
    rng = np.random.default_rng(0)
    net = mlp.init([3, 4, 3], seed=0)
    with pytest.raises(FloatingPointError) as info:
        mlp.fit(net, rng.normal(size=(30, 3)), np.arange(30) % 3,
                optimizer=mlp.Adam(lr=1e10), epochs=2)  # fmt: skip
    assert isinstance(info.value, mlp.TrainingDiverged)
    assert info.value.epoch == 1


def test_user_loss_whose_default_is_infinite_takes_inf():
    """Only a finite default makes an infinite value bad usage."""
    import click

    from arrayloss.cli._options import parse_spec

    catalogue = {"mine": {"clip": math.inf, "scale": 1.0}}
    assert parse_spec("mine:clip=inf", catalogue) == ("mine", {"clip": math.inf})
    with pytest.raises(click.BadParameter, match="`scale` must be a finite number"):
        parse_spec("mine:scale=1e999", catalogue)


@pytest.mark.parametrize("error", ["RuntimeError", "ValueError"])
@pytest.mark.parametrize("command", ["train", "check"])
def test_user_loss_raising_a_message_of_several_lines_is_one_line(
    tmp_path, data, monkeypatch, no_training, error, command
):
    """The probe of a user's loss printed the message of its exception as it
    was: 'raised RuntimeError: boom' and 'second line' on a line of its own."""
    module = f"multiline_{error.lower()}"
    (tmp_path / f"{module}.py").write_text(
        f"def bad(z, y):\n    raise {error}('boom\\nsecond line')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    args = ["--loss", f"{module}:bad"]
    try:
        r = invoke(
            ["train", "--data", data, *TINY, *args] if command == "train"
            else ["check", *args, "--classes", "3"],
            exit_code=2,
        )  # fmt: skip
    finally:
        import arrayloss

        if f"{module}.bad" in arrayloss.USER_LOSSES:
            arrayloss.unregister_loss(f"{module}.bad")
    assert error_line(r).endswith(": boom second line")
    assert r.stderr.splitlines()[-1] == error_line(r)


@pytest.mark.parametrize("command", ["train", "study"])
def test_closed_standard_error_is_no_internal_error(tmp_path, data, command):
    """``arrayloss train ... 2>&-``: with standard error closed, ``sys.stderr`` is
    None, and asking it whether it is a terminal (for the progress bar) ended
    the command in 'internal error (AttributeError ...)' (on standard output),
    the study's files unwritten."""
    out = tmp_path / "s"
    args = ["train", "--data", data, *[a for a in TINY if a != "-q"], "--save", out]
    if command == "study":
        args = [*[a for a in STUDY if a != "-q"], "--data", data, "--out", out]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.run(
        ["sh", "-c", 'exec "$@" 2>&-', "sh", sys.executable, "-m", "arrayloss",
         *map(str, args)],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout
    assert "internal error" not in proc.stdout
    assert sorted(os.listdir(out))


def run_cli(args: list[Any], **streams: Any) -> subprocess.CompletedProcess[str]:
    """``python -m arrayloss ARGS`` of this checkout in a subprocess; ``streams``
    its ``stdout`` and ``stderr`` (captured unless given)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **streams}
    return subprocess.run(
        [sys.executable, "-m", "arrayloss", *map(str, args)], text=True,
        timeout=300, env=env, check=False, **streams,
    )  # fmt: skip


@contextlib.contextmanager
def reader_gone() -> Any:
    """The writing end of a pipe whose reader has gone (a broken pipe)."""
    read, write = os.pipe()
    os.close(read)
    try:
        yield write
    finally:
        os.close(write)


@pytest.mark.parametrize("stdout", ["closed pipe", "full disk"])
@pytest.mark.parametrize("command", ["train", "study"])
def test_results_that_cannot_be_printed_still_write_the_files(
    tmp_path, data, command, stdout
):
    """``arrayloss study ... | head -3`` with ``head`` gone before the table is
    printed: the table's broken pipe ended the command before its files were
    written, the whole study lost.  Now the files are written, then the command
    ends as the error of standard output says (click's quiet exit 1 for the
    pipe; one line for the full disk)."""
    if stdout == "full disk" and not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    out = tmp_path / "s"
    args = ["train", "--data", data, *TINY, "--save", out] if command == "train" else [
        *STUDY, "--data", data, "--out", out]  # fmt: skip
    with reader_gone() if stdout == "closed pipe" else open("/dev/full", "w") as sink:
        proc = run_cli(args, stdout=sink)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    if stdout == "full disk":
        assert proc.stderr.splitlines()[-1] == (
            "Error: cannot write to standard output: No space left on device"
        )
    want = SAVED if command == "train" else ("curves.csv", "runs.csv", "study.json",
                                              "summary.md")  # fmt: skip
    assert sorted(os.listdir(out)) == sorted(want)


def test_study_whose_progress_cannot_be_written_still_writes_its_files(tmp_path, data):
    """``arrayloss study 2>&1 | head -2``: the progress line after ``head`` had
    gone ended the study in a broken pipe, every run lost and no file written.
    Its estimate, progress and notes on standard error are now lost alone."""
    out = tmp_path / "s"
    args = [*[a for a in STUDY if a != "-q"], "--seeds", "3", "--data", data,
            "--out", out]  # fmt: skip
    with reader_gone() as sink:
        proc = run_cli(args, stderr=sink)
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout.splitlines()[-1].startswith(f"wrote {out}/runs.csv")
    assert sorted(os.listdir(out)) == ["curves.csv", "runs.csv", "study.json",
                                       "summary.md"]  # fmt: skip


def test_infinite_user_loss_parameter_is_strict_json_in_the_outputs(
    tmp_path, data, monkeypatch
):
    """``--loss mod:fn:clip=inf`` (a user loss whose default is infinite) ended
    ``train --save`` after the training in "internal error (ValueError: Out of
    range float values are not JSON compliant: inf)", and wrote ``{"clip":
    Infinity}`` (no JSON) into study's runs.csv.  Both write ``"inf"``, as
    ``check --format json`` does."""
    import arrayloss

    (tmp_path / "clipping.py").write_text(
        "import math\n\n"
        "def ce(z, t, clip=math.inf):\n"
        "    import numpy as np\n"
        "    p = np.exp(z - z.max(1, keepdims=True))\n"
        "    p /= p.sum(1, keepdims=True)\n"
        "    return np.minimum(-(t * np.log(p)).sum(1), clip), p - t\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    args = ["--loss", "clipping:ce:clip=inf"]
    try:
        invoke(["train", "--data", data, *TINY, *args, "--save", tmp_path / "m"], 0)
        invoke([*STUDY, "--data", data, *args, "--out", tmp_path / "s"], 0)
    finally:
        if "clipping.ce" in arrayloss.USER_LOSSES:
            arrayloss.unregister_loss("clipping.ce")
    strict = {"parse_constant": lambda c: pytest.fail(f"not JSON: {c}")}
    config = json.loads((tmp_path / "m" / "metrics.json").read_text(), **strict)
    assert config["config"]["loss_params"] == {"clip": "inf"}
    import csv

    with open(tmp_path / "s" / "runs.csv", newline="") as f:
        cells = [row["loss_params"] for row in csv.DictReader(f)]
    assert [json.loads(c, **strict) for c in cells] == [{}, {"clip": "inf"}]


def test_no_plot_study_removes_an_earlier_studys_figures(tmp_path, data, monkeypatch):
    """``study --no-plot --out DIR`` into the folder of an earlier study with
    figures left those PNGs beside the new report: one folder, two runs.  They
    are removed with the commit (all or none); files of other names stay."""
    out = tmp_path / "s"
    old = old_outputs(out, ("curves.png", "paired_differences.png", "notes.png"))
    fill_disk(monkeypatch, budget=100)  # a failed study removes nothing
    invoke([*STUDY, "--data", data, "--out", out], 1)
    assert {n: (out / n).read_bytes() for n in old} == old
    monkeypatch.undo()
    invoke([*STUDY, "--data", data, "--out", out], 0)
    assert sorted(os.listdir(out)) == [
        "curves.csv", "notes.png", "runs.csv", "study.json", "summary.md"
    ]  # fmt: skip


def test_summary_shows_user_text_as_written(tmp_path, data, monkeypatch):
    """summary.md escaped only ``|``: a data file named with ``*``, ``_``,
    backticks, brackets or ``$`` was set in italics, code, a link or math, and a
    backtick in the recorded command closed its code span early."""
    markdown_it = pytest.importorskip("markdown_it")
    name = "a*b*_c_ `d` [e](f) $g$ <h>.npz"
    (tmp_path / name).write_bytes(data.read_bytes())
    out = tmp_path / "s"
    args = [*STUDY, "--data", str(tmp_path / name), "--out", str(out)]
    monkeypatch.setattr(sys, "argv", ["arrayloss", *args])
    invoke(args, 0)
    page = (out / "summary.md").read_text()
    tokens = markdown_it.MarkdownIt("commonmark").enable("table").parse(page)
    inline = [t for t in tokens if t.type == "inline"]
    heading = next(
        tokens[i - 1]
        for i, t in enumerate(tokens)
        if t.type == "heading_close" and t.tag == "h2"
    )
    assert [c.content for c in heading.children] == [name]  # text alone
    spans = [c.content for t in inline for c in t.children if c.type == "code_inline"]
    assert len(spans) == 2  # the commit and the command, whole
    assert shlex.split(spans[1]) == ["arrayloss", *args]
    kinds = {c.type for t in inline for c in t.children}
    assert not kinds & {"em_open", "link_open", "html_inline"}, kinds
    about = next(t for t in inline if t.content.startswith("Data: "))
    assert "".join(c.content for c in about.children).startswith(f"Data: {name} (")


def test_top_k_above_the_classes_is_refused(tmp_path, data):
    """``train --top-k 4`` on 3 classes was measured as the top-3 accuracy
    (shown as 'top-3 acc', a perfect 1 that measures nothing) and ``eval --top-k
    4`` as 'top_4_accuracy' 1: a k given above the class count is now bad usage
    in all three commands, naming k and the classes; the default k is still
    lowered to the class count (train, study) or left out (eval)."""
    want = "k=4 is more than the 3 classes of data.npz"
    r = invoke(["train", "--data", data, *TINY, "--top-k", "4"], 2)
    assert want in r.stderr
    r = invoke([*STUDY, "--data", data, "--top-k", "4", "--out", tmp_path / "s"], 2)
    assert want in r.stderr
    assert not (tmp_path / "s").exists()
    assert "top-3 acc " in invoke(["train", "--data", data, *TINY], 0).stdout
    invoke(["train", "--data", data, *TINY, "--top-k", "3"], 0)
    invoke([*STUDY, "--data", data, "--out", tmp_path / "s"], 0)
    assert (
        "**Test top-3 accuracy at the final epoch**"
        in (tmp_path / "s" / "summary.md").read_text()
    )
    rng = np.random.default_rng(0)
    np.save(tmp_path / "z.npy", rng.normal(size=(6, 3)))
    np.save(tmp_path / "y.npy", np.arange(6) % 3)
    scores = [tmp_path / "z.npy", tmp_path / "y.npy"]
    for extra in (["--top-k", "1,4"], ["--metric", "top_k_accuracy:k=4"]):
        r = invoke(["eval", *scores, *extra], 2)
        assert "k=4 is more than the 3 classes of the scores" in r.stderr
    assert "top_3_accuracy" in invoke(["eval", *scores, "--top-k", "3"], 0).stdout
    assert "top_" not in invoke(["eval", *scores], 0).stdout  # default 5: left out


@pytest.mark.parametrize("end", ["/", "/.", "/.."])
def test_file_output_ending_in_a_slash_is_refused(tmp_path, end):
    """eval's ``-o o/e.json/`` (a name for a folder) wrote the file ``o/e.json``.
    It is bad usage, nothing written."""
    np.save(tmp_path / "z.npy", np.zeros((4, 3)))
    np.save(tmp_path / "y.npy", np.arange(4) % 3)
    scores = [tmp_path / "z.npy", tmp_path / "y.npy"]
    out = f"{tmp_path / 'e.json'}{end}"
    r = invoke(["eval", *scores, "-o", out], 2)
    tail = end.lstrip("/") or "/"
    assert f"'{out}' names a folder (it ends in '{tail}')" in r.stderr
    assert sorted(os.listdir(tmp_path)) == ["y.npy", "z.npy"]


@pytest.mark.parametrize("end", ["/", "/.", "/.."])
def test_plot_ending_in_a_slash_is_refused(tmp_path, data, end):
    """``--plot o/x.png/`` wrote the file ``o/x.png`` in train and eval."""
    pytest.importorskip("matplotlib")  # the --plot check needs it first
    image = f"{tmp_path / 'x.png'}{end}"
    r = invoke(["train", "--data", data, *TINY, "--plot", image], 2)
    tail = end.lstrip("/") or "/"
    assert f"'{image}' names a folder (it ends in '{tail}')" in r.stderr
    np.save(tmp_path / "z.npy", np.zeros((4, 3)))
    np.save(tmp_path / "y.npy", np.arange(4) % 3)
    scores = [tmp_path / "z.npy", tmp_path / "y.npy"]
    r = invoke(["eval", *scores, "--plot", image], 2)
    assert f"'{image}' names a folder" in r.stderr
    assert sorted(os.listdir(tmp_path)) == ["data.npz", "y.npy", "z.npy"]

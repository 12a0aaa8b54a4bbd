"""`arrayloss.cli._output.Outputs`: atomic for regular files, through links, direct
to FIFOs, one destination per file, nothing left behind on an error."""

from __future__ import annotations

import contextlib
import os
import stat

import pytest

from arrayloss._errors import DataError, UsageError
from arrayloss.cli._output import Outputs


def _leftovers(folder) -> list[str]:
    return [p for p in os.listdir(folder) if p.endswith(".part")]


def test_regular_file_replaced_only_on_success(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")

    def fail() -> None:
        with Outputs() as out:
            with open(out.add(str(target), "output file"), "w") as f:
                f.write("new")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail()
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []
    with Outputs() as out:
        path = out.add(str(target), "output file")
        with open(path, "w") as f:
            f.write("new")
    assert target.read_text() == "new"
    assert _leftovers(tmp_path) == []


def test_symlink_written_through(tmp_path):
    real = tmp_path / "real.txt"
    real.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    with Outputs() as out, open(out.add(str(link), "output file"), "w") as f:
        f.write("new")
    assert link.is_symlink()
    assert real.read_text() == "new"


def test_fifo_written_directly(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with Outputs() as out:
        path = out.add(str(fifo), "output file")
    assert path == str(fifo)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_same_file_twice_and_input_as_output(tmp_path):
    a = tmp_path / "a.csv"
    a.write_text("x")
    out = Outputs(inputs=[str(a)])
    with pytest.raises(UsageError, match="also an input"):
        out.add(str(a), "output file")
    b = str(tmp_path / "b.csv")
    out.add(b, "output file")
    with pytest.raises(UsageError, match="name the same file"):
        out.add(str(tmp_path / "." / "b.csv"), "per-sample file")
    out.discard()
    assert _leftovers(tmp_path) == []


def test_unwritable_destinations(tmp_path):
    with pytest.raises(DataError, match="is a directory"):
        Outputs().add(str(tmp_path), "output file")
    with pytest.raises(DataError, match="cannot write"):
        Outputs().add(str(tmp_path / "missing" / "x.csv"), "output file")


def test_read_only_file_is_not_replaced(tmp_path, monkeypatch):
    """A file made read-only is refused as the shell's ``>`` refuses it (renaming
    over it needs only the folder's permission); through a link too.  As root,
    who may write any file, a user's view of the permissions is simulated."""
    old = tmp_path / "kept.json"
    old.write_text("old")
    os.chmod(old, 0o444)
    link = tmp_path / "link.json"
    link.symlink_to(old)
    if os.access(old, os.W_OK):  # root
        real = os.access

        def user_access(path, mode, **kwargs):
            if mode & os.W_OK and not os.stat(path).st_mode & stat.S_IWUSR:
                return False
            return real(path, mode, **kwargs)

        monkeypatch.setattr(os, "access", user_access)
    for path in (old, link):
        with pytest.raises(DataError, match="the file is read-only"):
            Outputs().add(str(path), "output file")
    assert old.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.json", "link.json"]


def test_new_file_mode_follows_umask_and_existing_mode_is_kept(tmp_path):
    mask = os.umask(0o022)
    try:
        new = tmp_path / "new.txt"
        with Outputs() as out, open(out.add(str(new), "output file"), "w") as f:
            f.write("x")
        assert stat.S_IMODE(os.stat(new).st_mode) == 0o644
        old = tmp_path / "old.txt"
        old.write_text("old")
        os.chmod(old, 0o600)
        with Outputs() as out, open(out.add(str(old), "output file"), "w") as f:
            f.write("new")
        assert stat.S_IMODE(os.stat(old).st_mode) == 0o600
        assert old.read_text() == "new"
    finally:
        os.umask(mask)


def test_signal_exit_removes_temporary_files(tmp_path):
    """SystemExit (what SIGTERM becomes) inside the block: nothing left, old kept."""
    target = tmp_path / "out.txt"
    target.write_text("old")

    def killed() -> None:
        with Outputs() as out:
            with open(out.add(str(target), "output file"), "w") as f:
                f.write("half")
            raise SystemExit(143)

    with pytest.raises(SystemExit):
        killed()
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_install_signal_handlers_turns_sigterm_into_system_exit():
    import signal

    from arrayloss.cli._output import install_signal_handlers

    old = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        install_signal_handlers()
        with pytest.raises(SystemExit) as info:
            signal.raise_signal(signal.SIGTERM)
        assert info.value.code == 128 + signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, old)


@pytest.mark.skipif(not os.path.isdir("/dev/fd"), reason="no /dev/fd here")
def test_descriptor_of_a_pipe_written_directly(tmp_path):
    """``/dev/stdout`` piped on, or ``>(cmd)``: ``/dev/fd/N`` links to a pipe
    with no path of its own (``pipe:[...]``), written through its link."""
    r, w = os.pipe()
    try:
        link = f"/dev/fd/{w}"
        with Outputs() as out:
            path = out.add(link, "output file")
            with open(path, "w") as f:
                f.write("rows\n")
        assert os.read(r, 100) == b"rows\n"
    finally:
        os.close(r)
        os.close(w)
    assert _leftovers(tmp_path) == []


def test_empty_name_is_bad_usage(tmp_path, monkeypatch):
    """``-o ''`` named the working folder: a temporary file was made beside it
    and the run failed only at the end, 'cannot write ... Is a directory'."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match="output file needs a file name"):
        Outputs().add("", "output file")
    assert os.listdir(tmp_path) == []
    assert _leftovers(tmp_path.parent) == []


@pytest.mark.parametrize("links", [True, False])
def test_a_failing_rename_puts_back_the_files_replaced_before_it(
    tmp_path, monkeypatch, links
):
    """Three outputs; the third rename fails: the first two destinations get their
    old contents back (the one that did not exist is removed), nothing hidden is
    left behind.  Without hard links (``links=False``) an old file cannot be kept:
    it stays replaced (the new destination is still removed)."""
    old = tmp_path / "old.txt"
    old.write_text("old")
    old.chmod(0o640)
    new = tmp_path / "new.txt"
    third = tmp_path / "third.txt"
    third.write_text("third")
    real_replace = os.replace

    def replace(src, dst):
        if str(dst) == str(third):
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    if not links:

        def no_link(src, dst):
            raise OSError(1, "Operation not permitted")

        monkeypatch.setattr(os, "link", no_link)
    out = Outputs()
    for path in (old, new, third):
        with open(out.add(str(path), "output file"), "w") as f:
            f.write("written")
    with pytest.raises(DataError, match=r"third\.txt': No space left on device"):
        out.commit()
    assert third.read_text() == "third"
    assert not new.exists()
    if links:
        assert old.read_text() == "old"
        assert stat.S_IMODE(os.stat(old).st_mode) == 0o640
    else:
        assert old.read_text() == "written"
    assert sorted(os.listdir(tmp_path)) == ["old.txt", "third.txt"]


def test_commit_leaves_no_kept_copy(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with Outputs() as out, open(out.add(str(target), "output file"), "w") as f:
        f.write("new")
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_commit_locks_the_folder_so_two_runs_never_mix(tmp_path, monkeypatch):
    """Two runs saving one set to one folder at once renamed their files in
    turn, leaving, say, one run's model beside the other's metrics. Each commit
    now holds an exclusive lock on the folder through its renames (the other
    waits), so the set is all one run's."""
    fcntl = pytest.importorskip("fcntl")
    real_replace = os.replace
    renamed = []

    def replace(src, dst):
        fd = os.open(tmp_path, os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):  # another run would wait here
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
        renamed.append(os.path.basename(dst))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with Outputs() as out:
        for name in ("model.npz", "metrics.json"):
            with open(out.add(str(tmp_path / name), "output file"), "w") as f:
                f.write(name)
    assert renamed == ["model.npz", "metrics.json"]
    fd = os.open(tmp_path, os.O_RDONLY)  # and released after
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)


@pytest.mark.parametrize("when", ["waiting", "renaming"])
def test_interrupt_during_commit_is_all_or_none(tmp_path, monkeypatch, when):
    """Ctrl-C (or SIGTERM's SystemExit) between two renames of a commit left the
    first file replaced and the second's temporary file behind; now the first is
    put back and no temporary file stays, as for an error."""
    from arrayloss.cli import _output

    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("old a")
    real_replace = os.replace

    def replace(src, dst):
        if str(dst) == str(second):
            raise KeyboardInterrupt
        real_replace(src, dst)

    if when == "renaming":
        monkeypatch.setattr(os, "replace", replace)
    else:

        @contextlib.contextmanager
        def interrupted(folders):
            raise KeyboardInterrupt
            yield

        monkeypatch.setattr(_output, "_locked", interrupted)
    out = Outputs()
    for path in (first, second):
        with open(out.add(str(path), "output file"), "w") as f:
            f.write("new")
    with pytest.raises(KeyboardInterrupt):
        out.commit()
    assert first.read_text() == "old a"
    assert sorted(os.listdir(tmp_path)) == ["a.txt"]


def test_removed_files_go_with_the_commit_all_or_none(tmp_path, monkeypatch):
    """`Outputs.remove`: an earlier run's file that this run does not write is
    removed in the commit; a commit that fails later puts it back, as it does the
    files it replaced."""
    new, gone, link = tmp_path / "a.txt", tmp_path / "b.png", tmp_path / "c.png"
    new.write_text("old a")
    gone.write_text("old b")
    link.symlink_to(new)
    with Outputs() as out:
        with open(out.add(str(new), "output file"), "w") as f:
            f.write("new a")
        out.remove(str(gone), "old figure")
        out.remove(str(link), "old link")  # not a regular file: it stays
        out.remove(str(tmp_path / "missing.png"), "old figure")  # gone: nothing
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "c.png"]
    assert new.read_text() == "new a"

    gone.write_text("old b")
    later = tmp_path / "z.png"
    later.write_text("old z")
    real = os.replace

    def replace(src, dst):
        if str(src) == str(later):
            raise OSError(5, "Input/output error")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    out = Outputs()
    with open(out.add(str(new), "output file"), "w") as f:
        f.write("newer a")
    out.remove(str(gone), "old figure")
    out.remove(str(later), "old figure")
    with pytest.raises(DataError, match="old figure"):
        out.commit()
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "b.png", "c.png", "z.png"]
    assert (new.read_text(), gone.read_text()) == ("new a", "old b")

"""The one routine through which every command writes its output files.

`Outputs` collects the files a command writes and commits them together:

- a regular file (or a new path) is written to a hidden temporary file beside it and
  renamed onto it only when the whole command succeeds, so an error, a full disk or
  a signal leaves the old file as it was and no temporary file behind; the renames
  are all or none (a rename that fails puts back the files the earlier ones
  replaced, kept under hard links until the last succeeds), and two commands
  committing to one folder at once take turns (a lock on the folder), so a set of
  files is never half one run's and half another's;
- a symbolic link is written *through*: the file it points to is replaced, the link
  stays;
- a character device, FIFO or socket (``/dev/null``, a named pipe) is opened and
  written directly, never renamed over;
- a file its permissions make read-only for the user is not replaced (a
  `DataError`), as the shell's ``>`` would not write it;
- ``-`` is standard output;
- a path ending in a slash (``o/x.png/``) names a folder: a `UsageError`, where
  the file ``o/x.png`` was written;
- a file registered with `Outputs.remove` (an earlier run's output that this run
  does not write) is removed in the same commit, all or none with the renames
  (moved aside under a hidden name first, put back should a later step fail);
- two outputs that name one file, or an output that is one of the command's
  inputs, are a `UsageError` before anything is written.

Use::

    with Outputs(inputs=[scores_path]) as out:
        path = out.add(args.output, "output file")   # where to write it now
        ...write to path...
    # renamed into place here; on an exception every temporary file is removed

`install_signal_handlers` turns SIGTERM (and SIGHUP) into `SystemExit`, so that the
``with`` block's clean-up runs when a command is killed politely.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import FrameType, TracebackType

from .._errors import DataError, UsageError

__all__ = [
    "Outputs",
    "file_identity",
    "folder_name_error",
    "install_signal_handlers",
]

STDOUT = "-"


@dataclass
class _Target:
    label: str
    final: str  # the path the data end up at (links resolved)
    write_to: str  # where the command writes now
    temporary: bool  # write_to is a temporary file renamed onto final at commit
    remove: bool = False  # final is removed at commit (write_to unused)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_only_error(path: str, label: str) -> DataError | None:
    """The error for an existing regular file (through links) that its
    permissions make read-only for this user, else None.  Renaming over it needs
    only the folder's permission: it is refused as the shell's ``>`` refuses it
    (root, who may write any file, writes it)."""
    real = os.path.realpath(path)
    if os.path.isfile(real) and not os.access(real, os.W_OK):
        return DataError(f"cannot write {label} '{path}': the file is read-only")
    return None


def folder_name_error(path: str) -> str | None:
    """Why the file output ``path`` names a folder (it ends in a slash, or in
    ``.`` or ``..``), else None: ``o/x.png/`` wrote the file ``o/x.png``."""
    seps = tuple(s for s in (os.sep, os.altsep) if s)
    tail = path[-1:] if path.endswith(seps) else os.path.basename(path)
    if tail in (*seps, ".", ".."):
        return f"'{path}' names a folder (it ends in {tail!r}); give a file name"
    return None


def file_identity(path: str) -> tuple[int, int] | str:
    """``(device, inode)`` of an existing file, else its absolute real path: what
    two names of one file share, through links, hard links included."""
    try:
        st = os.stat(path)
    except OSError:
        return os.path.realpath(path)
    return (st.st_dev, st.st_ino)


class Outputs:
    """The output files of one command, committed together; see the module doc."""

    def __init__(
        self,
        *,
        inputs: Iterable[str] = (),
        reads: Callable[[str], str | None] | None = None,
    ) -> None:
        self._inputs = {
            file_identity(p): p for p in inputs if p != STDOUT and os.path.exists(p)
        }
        self._reads = reads  # the input that would read a file at a path, if any
        self._targets: list[_Target] = []
        self._seen: dict[tuple[int, int] | str, str] = {}

    def add(self, path: str, label: str) -> str:
        """Register ``path`` as an output; return the path to write to now.

        Raises `UsageError` if ``path`` names an input or another output, or a
        file that an input directory or pattern would read (``reads``), and
        `DataError` if it cannot be written (a directory, a missing folder, no
        permission).
        """
        if path == STDOUT:
            return path
        if not path:  # else the working folder, found out only at the rename
            msg = f"{label} needs a file name (got '')"
            raise UsageError(msg)
        folder = folder_name_error(path)
        if folder is not None:
            msg = f"{label} {folder}"
            raise UsageError(msg)
        ident = self._unclaimed(path, label, "file")
        reader = self._reads(path) if self._reads is not None else None
        if reader is not None:
            msg = (
                f"{label} '{path}' would be read as one more shard of {reader} by "
                "the next run; write it elsewhere"
            )
            raise UsageError(msg)
        self._seen[ident] = f"{label} '{path}'"
        try:
            mode = os.stat(path).st_mode  # through links
        except FileNotFoundError:
            mode = None
        except OSError as exc:
            msg = f"cannot write {label} '{path}': {exc.strerror or exc}"
            raise DataError(msg) from None
        if mode is not None and stat.S_ISDIR(mode):
            msg = f"cannot write {label} '{path}': it is a directory"
            raise DataError(msg)
        if mode is not None and not stat.S_ISREG(mode):
            # A device, FIFO or socket: write to it directly, never rename over it,
            # by the name given (/dev/stdout on a pipe resolves to "pipe:[N]",
            # which is no path).
            self._targets.append(_Target(label, path, path, temporary=False))
            return path
        final = os.path.realpath(path)  # write through links
        read_only = read_only_error(path, label)
        if read_only is not None:
            raise read_only
        directory = os.path.dirname(final)
        try:
            fd, tmp = tempfile.mkstemp(
                dir=directory, prefix=f".{os.path.basename(final)}.", suffix=".part"
            )
        except OSError as exc:
            msg = f"cannot write {label} '{path}': {exc.strerror or exc}"
            raise DataError(msg) from None
        os.close(fd)
        self._targets.append(_Target(label, final, tmp, temporary=True))
        return tmp

    def _unclaimed(self, path: str, label: str, other: str) -> tuple[int, int] | str:
        """The `file_identity` of ``path``, or a `UsageError` if it is an input
        (``choose another`` ``other``) or already an output of this command."""
        ident = file_identity(path)
        if ident in self._inputs:
            msg = f"{label} '{path}' is also an input ({self._inputs[ident]}); choose another {other}"
            raise UsageError(msg)
        if ident in self._seen:
            msg = f"{label} '{path}' and {self._seen[ident]} name the same file"
            raise UsageError(msg)
        return ident

    def remove(self, path: str, label: str) -> None:
        """Register the regular file ``path`` (not a link) to be removed at commit,
        with the renames: an earlier run's output that this run does not write.
        Gone by then: nothing to do.  `UsageError` if it is an input or an output."""
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):
                return  # a link, a folder: not this command's to remove
        except FileNotFoundError:
            return
        except OSError as exc:
            msg = f"cannot remove {label} '{path}': {exc.strerror or exc}"
            raise DataError(msg) from None
        ident = self._unclaimed(path, label, "folder")
        read_only = read_only_error(path, label)
        if read_only is not None:  # as `rm` asks first: not removed unasked
            raise read_only
        self._seen[ident] = f"{label} '{path}'"
        self._targets.append(_Target(label, path, path, temporary=True, remove=True))

    def commit(self) -> None:
        """Rename every temporary file onto its destination, all or none.

        Each destination that exists is first kept under a hard link of its own
        (`_keep`), so that a rename failing after others have succeeded puts those
        destinations back as they were; where the file system makes no hard link,
        a destination replaced before the failure stays replaced.
        """
        done: list[tuple[_Target, str | None, bool]] = []  # renamed, old file, existed
        backup: str | None = None
        # Another command committing to the same folder (two runs saving to one
        # place) waits, so a set is never half one run's and half the other's.
        folders = [os.path.dirname(t.final) for t in self._targets if t.temporary]
        target: _Target | None = None
        try:
            with _locked(folders):
                try:
                    for target in self._targets:
                        if not target.temporary:
                            continue
                        if target.remove:
                            _remove_into(target, done)
                            continue
                        try:
                            mode = os.stat(target.final).st_mode & 0o7777
                        except OSError:
                            mode = 0o666 & ~_umask()
                        existed = os.path.lexists(target.final)
                        backup = _keep(target.final)
                        os.chmod(target.write_to, mode)
                        os.replace(target.write_to, target.final)
                        target.temporary = False
                        done.append((target, backup, existed))
                        backup = None
                except BaseException:
                    _put_back(done, backup)
                    raise
        except BaseException as exc:  # a signal too (even while waiting): all or none
            self.discard()
            if not isinstance(exc, OSError) or target is None:
                raise
            msg = f"cannot write {target.label} '{target.final}': {exc.strerror or exc}"
            raise DataError(msg) from None
        for _, kept, _ in done:
            if kept is not None:
                with contextlib.suppress(OSError):
                    os.unlink(kept)
        self._targets.clear()

    def discard(self) -> None:
        """Remove every temporary file not yet committed."""
        for target in self._targets:
            if target.temporary and not target.remove:
                with contextlib.suppress(OSError):
                    os.unlink(target.write_to)
        self._targets.clear()

    def __enter__(self) -> Outputs:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


@contextlib.contextmanager
def _locked(folders: Iterable[str]) -> Iterator[None]:
    """An exclusive `fcntl.flock` on each folder while the block runs (in sorted
    order, so two commits cannot deadlock), where the system has it; a folder that
    cannot be opened or locked is not locked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    fds: list[int] = []
    try:
        for folder in sorted(set(folders)):
            try:
                fd = os.open(folder, os.O_RDONLY)
            except OSError:
                continue
            fds.append(fd)
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        for fd in fds:
            os.close(fd)  # and with it the lock


def _remove_into(target: _Target, done: list[tuple[_Target, str | None, bool]]) -> None:
    """Move the regular file ``target.final`` aside under a hidden name (removed
    with the other kept files once the commit succeeds, put back by `_put_back`
    should it fail); a path that is gone, or not a regular file, stays as it is."""
    try:
        if not stat.S_ISREG(os.lstat(target.final).st_mode):
            return
    except FileNotFoundError:
        return
    folder, name = os.path.split(target.final)
    kept = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.old")
    while os.path.lexists(kept):  # pragma: no cover - 2**32 names
        kept = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.old")
    os.replace(target.final, kept)
    target.temporary = False
    done.append((target, kept, True))


def _keep(path: str) -> str | None:
    """A hard link to the regular file ``path`` under a new hidden name beside it
    (the old file, should a later output fail), or ``None`` when there is no such
    file or no link can be made."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None
    except OSError:
        return None
    folder, name = os.path.split(path)
    for _ in range(100):
        kept = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.old")
        try:
            os.link(path, kept)
        except FileExistsError:
            continue
        except OSError:
            return None
        return kept
    return None


def _put_back(done: list[tuple[_Target, str | None, bool]], failed: str | None) -> None:
    """Undo the renames of `Outputs.commit` (latest first): each destination gets
    its old file back (``kept``), or is removed where it had none (not
    ``existed``); ``failed``: the old file kept for the rename that failed,
    removed."""
    for target, kept, existed in reversed(done):
        with contextlib.suppress(OSError):
            if kept is not None:
                os.replace(kept, target.final)
            elif not existed:
                os.unlink(target.final)
    if failed is not None:
        with contextlib.suppress(OSError):
            os.unlink(failed)


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def install_signal_handlers() -> None:
    """Make SIGTERM and SIGHUP raise `SystemExit` so clean-up code runs."""
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is None:
            continue
        with contextlib.suppress(ValueError, OSError):  # not the main thread
            if signal.getsignal(sig) in (signal.SIG_DFL, None):
                signal.signal(sig, _raise_exit)

"""``.npy`` and ``.npz`` sources: streamed with positioned reads (a memory map for
Fortran-ordered arrays), members picked by key or by a usual name."""

from __future__ import annotations

import contextlib
import math
import os
import stat
import zipfile
import zlib
from collections.abc import Sequence
from typing import IO, Any

import numpy as np

from .._errors import DataError
from .._errors import one_line as _one_line
from ._source import Source, _open_binary, empty_file
from ._text import misnamed

ZIP_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    NotImplementedError,  # a compression method zipfile lacks (PPMd, AES)
    RuntimeError,  # an encrypted member ("password required for extraction")
)
"""What opening and reading an archive's member raises for a damaged or an
unreadable archive: bad data, never an internal error."""

_SCORE_KEYS = ("scores", "logits", "probs", "logprobs")
_LABEL_KEYS = ("labels", "y", "targets")
_WEIGHT_KEYS = ("weights", "sample_weight")


def _check_dtype(dtype: np.dtype[Any], label: str, kind: str) -> None:
    if dtype.hasobject:
        msg = f"{label} holds Python objects (a pickled array), which are not read"
        raise DataError(msg)
    if dtype.names is not None or dtype.subdtype is not None:
        msg = f"{label} has a structured dtype {dtype}; a plain numeric array is needed"
        raise DataError(msg)
    allowed = "biuf" if kind != "labels" else "biufUS"
    if dtype.kind not in allowed:
        msg = f"{label} has dtype {dtype}, which cannot hold {kind}"
        raise DataError(msg)


def _check_shape(
    shape: tuple[int, ...], label: str, kind: str
) -> tuple[int, int | None]:
    """(rows, row width or None) of an array that should hold ``kind``."""
    if kind in ("scores", "soft"):
        if len(shape) != 2:
            msg = f"{label} must be a 2-D array (rows, classes); its shape is {shape}"
            raise DataError(msg)
        return shape[0], shape[1]
    if len(shape) == 1 or (len(shape) == 2 and shape[1] == 1):
        return shape[0], None
    hint = " (for soft labels, add --soft-labels)" if kind == "labels" else ""
    msg = f"{label} must be a 1-D array of {kind}; its shape is {shape}{hint}"
    raise DataError(msg)


class _NpyStream(Source):
    """Rows of an ``.npy`` stream, read into fresh buffers (C order only)."""

    def __init__(
        self,
        f: IO[bytes],
        label: str,
        kind: str,
        *,
        available: int | None,
        owners: Sequence[Any] = (),
    ) -> None:
        self.label = label
        self._f = f
        self._owners = owners
        self._pos = 0
        try:
            shape, fortran, dtype = _read_npy_header(f)
        except Exception as exc:
            self.close()
            msg = f"{label} is not a valid .npy file ({_one_line(exc)})"
            raise DataError(msg) from None
        try:
            _check_dtype(dtype, label, kind)
            self.n_rows, self.n_cols = _check_shape(shape, label, kind)
        except DataError:
            self.close()
            raise
        self.fortran = fortran and len(shape) == 2 and shape[1] > 1
        self.dtype = dtype
        self._tail = () if self.n_cols is None else (self.n_cols,)
        self._row_bytes = dtype.itemsize * math.prod(self._tail)
        need = self._row_bytes * self.n_rows
        if available is not None:
            available -= f.tell()
            if available < need:
                self.close()
                msg = (
                    f"{label} is truncated: its header says shape {shape} "
                    f"({need} bytes of data) but only {available} bytes follow"
                )
                raise DataError(msg)

    def read(self, n: int) -> np.ndarray:
        assert self.n_rows is not None
        m = max(0, min(n, self.n_rows - self._pos))
        out = np.empty((m, *self._tail), dtype=self.dtype)
        want = m * self._row_bytes
        if want:
            buf = out.reshape(-1).view(np.uint8).data
            got = 0
            while got < want:
                k = self._readinto(buf[got:])
                if not k:
                    msg = (
                        f"{self.label} is truncated: it ends in row {self._pos + got // self._row_bytes} "
                        f"of {self.n_rows}"
                    )
                    raise DataError(msg)
                got += k
        self._pos += m
        if self._owners and self._pos == self.n_rows and want:
            # a zip member checks its CRC only once read to its end: read past the
            # last row so corrupt data fail here instead of giving wrong numbers
            self._readinto(bytearray(1))
        return out

    def _readinto(self, buf: Any) -> int:
        try:
            return int(self._f.readinto(buf))  # type: ignore[attr-defined]
        except ZIP_ERRORS as exc:
            msg = f"{self.label} is corrupt or unreadable ({_one_line(exc)})"
            raise DataError(msg) from None

    def skip(self, n: int) -> None:
        assert self.n_rows is not None
        m = max(0, min(n, self.n_rows - self._pos))
        f: Any = self._f
        if m and f.seekable():  # a plain file, or a zip member (read forward)
            try:
                f.seek(m * self._row_bytes, os.SEEK_CUR)
            except ZIP_ERRORS as exc:
                msg = f"{self.label} is corrupt or unreadable ({_one_line(exc)})"
                raise DataError(msg) from None
            self._pos += m
        else:
            super().skip(m)

    def progress(self) -> tuple[int, int] | None:
        return (self._pos, self.n_rows or 0)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._f.close()
        for owner in self._owners:
            with contextlib.suppress(Exception):
                owner.close()


def _read_npy_header(f: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """(shape, Fortran order, dtype) of an ``.npy`` header, or an exception
    saying what is wrong with it (a version NumPy does not write, a negative
    dimension)."""
    fmt = np.lib.format
    version = fmt.read_magic(f)
    if version == (1, 0):
        header = fmt.read_array_header_1_0(f)
    elif version == (2, 0):
        header = fmt.read_array_header_2_0(f)
    elif version == (3, 0):  # a UTF-8 header; its reader is private in NumPy 2
        impl = getattr(fmt, "_read_array_header", None)
        if impl is None:
            from numpy.lib import _format_impl

            impl = _format_impl._read_array_header  # type: ignore[attr-defined]
        header = impl(f, version)
    else:
        msg = f"format version {version[0]}.{version[1]}, which NumPy does not write"
        raise ValueError(msg)
    shape = header[0]
    if any(d < 0 for d in shape):
        msg = f"negative dimension in shape {shape}"
        raise ValueError(msg)
    return header


class _ArraySource(Source):
    """Rows of an array already in memory or memory-mapped."""

    def __init__(self, arr: np.ndarray, label: str, kind: str) -> None:
        self.label = label
        _check_dtype(arr.dtype, label, kind)
        self.n_rows, self.n_cols = _check_shape(tuple(arr.shape), label, kind)
        self.dtype = arr.dtype
        self._arr = arr if self.n_cols is not None else arr.reshape(-1)
        self._pos = 0

    def read(self, n: int) -> np.ndarray:
        out = np.array(self._arr[self._pos : self._pos + n], order="C")
        self._pos += out.shape[0]
        return out

    def skip(self, n: int) -> None:
        assert self.n_rows is not None
        self._pos = min(self.n_rows, self._pos + max(0, n))

    def progress(self) -> tuple[int, int] | None:
        return (self._pos, self.n_rows or 0)


def _open_npy(path: str, label: str, kind: str) -> Source:
    empty = empty_file(label, path, "an .npy")
    if empty is not None:
        raise empty
    f = _open_binary(path, label)
    st = os.fstat(f.fileno())
    regular = stat.S_ISREG(st.st_mode)  # else a pipe: a stream, its end unknown
    if regular:  # another format under the suffix .npy?
        what = misnamed(f.read(8), b"\x93NUMPY")
        f.seek(0)
        if what is not None:
            f.close()
            msg = f"{label} is {what}"
            raise DataError(msg)
    src = _NpyStream(f, label, kind, available=st.st_size if regular else None)
    if src.fortran and not regular:
        src.close()
        msg = f"{label} is Fortran-ordered, which is read from a file, not a pipe"
        raise DataError(msg)
    if src.fortran:
        src.close()
        mm = np.load(path, mmap_mode="r", allow_pickle=False)
        return _ArraySource(mm, label, kind)
    return src


def _open_npz(path: str, key: str | None, label: str, kind: str) -> Source:
    empty = empty_file(label, path, "an .npz")
    if empty is not None:
        raise empty
    f = _open_binary(path, label)
    try:
        zf = zipfile.ZipFile(f)
    except ZIP_ERRORS as exc:
        what = None
        with contextlib.suppress(OSError, ValueError):
            f.seek(0)
            what = misnamed(f.read(8), b"PK\x03\x04")
        f.close()
        msg = f"{label} is not a valid .npz file ({_one_line(exc)})"
        if what is not None:  # another format under the suffix .npz
            msg = f"{label} is {what}"
        raise DataError(msg) from None
    names = [n[:-4] for n in zf.namelist() if n.endswith(".npy")]
    try:
        member = _pick_key(names, key, kind, label)
    except DataError:
        zf.close()
        f.close()
        raise
    info = zf.getinfo(member + ".npy")
    label = f"{label}[{member!r}]"
    try:
        stream = zf.open(info)
        src = _NpyStream(stream, label, kind, available=info.file_size, owners=(zf, f))
    except ZIP_ERRORS as exc:
        zf.close()
        f.close()
        msg = f"{label} cannot be read ({_one_line(exc)})"
        raise DataError(msg) from None
    if src.fortran:
        src.close()
        with np.load(path, allow_pickle=False) as npz:
            return _ArraySource(npz[member], label, kind)
    return src


def _pick_key(names: Sequence[str], key: str | None, kind: str, label: str) -> str:
    if key is not None:
        if key in names:
            return key
        msg = f"{label} has no array {key!r} (it has {_listing(names)})"
        raise DataError(msg)
    defaults = {
        "scores": _SCORE_KEYS,
        "labels": _LABEL_KEYS,
        "soft": _LABEL_KEYS,
        "weights": _WEIGHT_KEYS,
    }
    for k in defaults[kind]:
        if k in names:
            return k
    if len(names) == 1:
        return names[0]
    option = {"scores": "--scores-key", "labels": "--labels-key"}.get(
        kind, "--labels-key" if kind == "soft" else "a key"
    )
    msg = f"{label} has no array of {kind} by a usual name (it has {_listing(names)}); name one with {option}"
    raise DataError(msg)


def _listing(names: Sequence[str]) -> str:
    return ", ".join(repr(n) for n in names) if names else "no arrays"

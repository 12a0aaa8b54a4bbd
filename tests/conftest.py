"""Backends and helpers shared by the test suite.

The ``xp`` fixture runs a test once per array backend: ``numpy``,
``numpy:readonly`` (every array handed out is read-only, so an in-place write on a
caller's array fails), ``array_api_strict`` (the reference namespace, which rejects
anything outside the standard), and ``torch``, ``jax``, ``dask`` and ``cupy`` where
they are installed (CuPy also needs a CUDA device).  Absent backends are skipped
with a reason; a backend that is present and fails is a bug.

Tests build inputs in NumPy and move them with ``backend.asarray``; results come
back with ``to_numpy`` for comparison.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import settings

from arrayloss import _esp_compiled
from arrayloss._xp import to_numpy

settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=300, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

BACKENDS = (
    "numpy",
    "numpy:readonly",
    "array_api_strict",
    "torch",
    "jax",
    "dask",
    "cupy",
)


# Where a call costs far more than on the others: JAX compiles every operation
# anew for each new shape (about 80 % of the loss tests' time was JAX's).
COSTLY_BACKENDS = ("jax",)


def covering(names: Any, *, every: int = 3) -> list[Any]:
    """``(backend, name)`` cases for a property checked per loss and per backend
    where the backend matters little: every name on each backend, except that a
    costly backend (`COSTLY_BACKENDS`) takes every ``every``-th name only (at
    least one).  Every loss and every backend stays covered; the full
    loss x backend product stays in ``test_invariants.py``'s
    ``test_backend_matches_numpy_and_keeps_dtype``.

    Use as ``@pytest.mark.parametrize(("backend", "name"), covering(NAMES),
    indirect=["backend"])``.
    """
    names = list(names)
    return [
        pytest.param(b, n, id=f"{b}-{n}")
        for b in BACKENDS
        for i, n in enumerate(names)
        if b not in COSTLY_BACKENDS or i % every == 0
    ]


@dataclass(frozen=True)
class Backend:
    """One array library as the tests see it."""

    name: str
    xp: Any
    module: Any

    def asarray(self, a: Any, dtype: Any = None) -> Any:
        """A backend array holding the NumPy data ``a`` (optionally cast)."""
        a = np.asarray(a)
        if dtype is not None:
            a = a.astype(dtype)
        if self.name == "numpy:readonly":
            a = a.copy()
            a.flags.writeable = False
            return a
        if self.name == "numpy":
            return a.copy()
        if self.name == "array_api_strict":
            return self.module.asarray(a)
        if self.name == "torch":
            return self.module.asarray(a.copy())
        if self.name == "jax":
            return self.module.numpy.asarray(a)
        if self.name == "dask":
            chunks = (max(1, a.shape[0] // 2), *a.shape[1:]) if a.ndim else ()
            return self.module.array.from_array(a, chunks=chunks)
        if self.name == "cupy":
            return self.module.asarray(a)
        raise AssertionError(self.name)


def _load(name: str) -> Backend:
    from array_api_compat import array_namespace

    modname = {"numpy:readonly": "numpy", "dask": "dask"}.get(name, name)
    module = pytest.importorskip(modname)
    if name == "dask":
        importlib.import_module("dask.array")
    if name == "jax":
        module.config.update("jax_enable_x64", True)
        importlib.import_module("jax.numpy")
    if name == "cupy":
        try:
            if module.cuda.runtime.getDeviceCount() < 1:
                pytest.skip("cupy: no CUDA device")
        except Exception as exc:
            pytest.skip(f"cupy: no CUDA device ({exc})")
    probe = Backend(name, None, module).asarray(np.zeros(1))
    return Backend(name, array_namespace(probe), module)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each array backend in turn (skipped where not installed)."""
    return _load(request.param)


@pytest.fixture
def xp(backend: Backend) -> Any:
    """The array namespace of ``backend``."""
    return backend.xp


@pytest.fixture
def rng() -> np.random.Generator:
    """A fixed-seed NumPy generator."""
    return np.random.default_rng(20261125)


def tolerance(dtype: Any) -> float:
    """Relative tolerance for comparing a backend result with float64 NumPy."""
    return 1e-12 if np.dtype(dtype) == np.float64 else 1e-5


def assert_allclose(
    actual: Any, desired: Any, *, rtol: float, atol: float = 0.0
) -> None:
    """Compare any backend's result with NumPy data."""
    np.testing.assert_allclose(
        to_numpy(actual), np.asarray(desired), rtol=rtol, atol=atol
    )


def invoke_eval(args: list[str], exit_code: int = 0, **kwargs: Any) -> Any:
    """Run ``arrayloss eval ARGS`` in-process; on an unexpected exit code, raise
    with its stdout, stderr and exception."""
    from click.testing import CliRunner

    from arrayloss.cli import main

    result = CliRunner().invoke(main, ["eval", *args], **kwargs)
    if result.exit_code != exit_code:
        raise AssertionError(
            f"eval {args} exited {result.exit_code}, expected {exit_code}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}\n"
            f"exception: {result.exception!r}"
        )
    return result


def eval_json(args: list[str], *, quiet: bool = False, **kwargs: Any) -> Any:
    """The JSON report of ``arrayloss eval ARGS --format json`` (``--quiet`` too
    when ``quiet``), which must write nothing on stderr."""
    extra = ["--format", "json", *(["--quiet"] if quiet else [])]
    result = invoke_eval([*args, *extra], **kwargs)
    assert result.stderr == ""
    return json.loads(result.stdout)


def one_error_line(result: Any) -> str:
    """The single ``Error: ...`` line that makes up the whole of stderr."""
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("Error: ")
    return str(result.stderr)


@contextlib.contextmanager
def numpy_path(path: str):
    """Run NumPy smooth top-k on the compiled kernel or on the array path."""
    saved = os.environ.get(_esp_compiled.ENV_VAR)
    os.environ[_esp_compiled.ENV_VAR] = "1" if path == "numba" else "0"
    try:
        yield
    finally:
        if saved is None:
            del os.environ[_esp_compiled.ENV_VAR]
        else:
            os.environ[_esp_compiled.ENV_VAR] = saved


WITH_DEFAULT_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)
"""``[sys.executable, "-c", WITH_DEFAULT_SIGINT, *cmd]`` runs ``cmd`` with SIGINT at
its default disposition: exec keeps SIG_DFL, and the new Python then installs its
KeyboardInterrupt handler.  A terminal's foreground job gets SIGINT so; a job
started with ``&`` from a non-interactive shell (as CI may be) inherits it ignored,
and then Python, rightly, never raises KeyboardInterrupt.  (Not ``preexec_fn``: a
fork hook, JAX's when another test imported it, would run in the child and warn.)"""


INTERRUPTED = (130, -signal.SIGINT)
"""The exit statuses of a command that SIGINT interrupted: 130 from its handler,
or killed by SIGINT itself (which a shell also reports as 130): CPython re-raises
the signal at exit when the interrupt landed in code it ran with ``PyRun_*`` (a
lazy import), even though the handler caught it."""


def signal_when_ready(
    cmd: Sequence[str],
    ready: Callable[[], bool],
    sig: int = signal.SIGINT,
    *,
    timeout: float = 60,
    settle: float = 0.0,
) -> tuple[int, str]:
    """Run ``cmd`` with SIGINT at its default (`WITH_DEFAULT_SIGINT`), wait until
    ``ready()`` (polled every 20 ms, for at most ``timeout`` seconds), ``settle``
    seconds more, send it ``sig``; its ``(returncode, stderr)``.  Fails when the
    command ended, or was never ready, before the signal; kills it if it hangs."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WITH_DEFAULT_SIGINT, *map(str, cmd)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None and not ready():
            time.sleep(0.02)
        assert proc.poll() is None, "finished before it could be signalled"
        assert ready(), "never ready to be signalled"
        time.sleep(settle)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, err


def patched_npz(
    path: Any, *, flag: int | None = None, method: int | None = None, **arrays: Any
) -> Any:
    """An ``.npz`` of ``arrays`` whose every member's zip headers (local and
    central) say general-purpose ``flag`` (1: encrypted) or compression
    ``method`` (98: PPMd, which zipfile cannot read)."""
    import io as _io
    import struct

    buf = _io.BytesIO()
    np.savez(buf, **arrays)
    raw = bytearray(buf.getvalue())
    for magic, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = raw.find(magic)
        while i >= 0:
            if flag is not None:
                raw[i + at : i + at + 2] = struct.pack("<H", flag)
            if method is not None:
                raw[i + at + 2 : i + at + 4] = struct.pack("<H", method)
            i = raw.find(magic, i + 4)
    path.write_bytes(bytes(raw))
    return path

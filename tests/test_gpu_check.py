"""``scripts/gpu_check.sh``, the GPU check of issue 18, without a GPU: its usage
errors, and its ``--dry-run``, which runs every step's plumbing on the CPU (the
install as pip's dry run, the test selection collected, the benchmarks' device
options parsed, tiny NumPy benchmark cases)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gpu_check.sh"

pytestmark = pytest.mark.skipif(
    shutil.which("bash") is None or shutil.which("timeout") is None,
    reason="needs bash and timeout (coreutils)",
)


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": sys.executable, **env},
        timeout=300,
        check=False,
    )


def test_script_parses() -> None:
    result = subprocess.run(
        ["bash", "-n", str(SCRIPT)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("args", [(), ("--dry-run",), ("a", "b")])
def test_usage_error_is_exit_2(args: tuple[str, ...]) -> None:
    result = _run(*args)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: bash scripts/gpu_check.sh")


@pytest.mark.slow
def test_dry_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _run("--dry-run", str(out), GPU_CHECK_TESTS="tests/test_xp.py")
    assert result.returncode == 0, result.stdout + result.stderr
    summary = (out / "summary.txt").read_text()
    steps = [line.split()[0] for line in summary.splitlines()]
    assert steps == [
        "env",
        "install",
        "pytest",
        "options_topk",
        "options_backends",
        "options_adapters",
        "bench_topk",
        "bench_backends",
    ]
    for line in summary.splitlines():
        assert re.search(r"rc=(0|skip) ", line), line
    # The selection is not empty: the device run would check something.
    assert re.search(
        r"^\d+/\d+ tests collected", (out / "pytest.txt").read_text(), re.M
    )
    # The device run's options, parsed by the benchmarks themselves.
    topk = (out / "options_topk.txt").read_text()
    assert "'backend': 'cupy'" in topk
    assert "'case': [(4096, 1000, 5), (4096, 1000, 50), (4096, 1000, 200)]" in topk
    assert "'backends': 'numpy,cupy'" in (out / "options_backends.txt").read_text()
    assert "'device': 'cuda'" in (out / "options_adapters.txt").read_text()
    # The tiny CPU stand-ins printed their tables.
    table = (out / "bench_topk.txt").read_text()
    assert re.search(r"^float32 +\(8, 40, 20\) \|", table, re.M), table
    backends = (out / "bench_backends.txt").read_text()
    assert re.search(r"^numpy +cross_entropy +float64", backends, re.M), backends
    assert "# cupy: skipped" in backends

"""Adversarial ``arrayloss eval``: an attacker, a careless user and a full disk.

Each test belongs to one class of broken promise (the module-level lists at the
end count them): data replaced or lost, wrong numbers, crashes and tracebacks,
hangs, and unclear messages or exit codes.  Every failure must be one line on
standard error with exit 1 (bad data) or 2 (bad usage), no traceback, no output
file replaced and none left behind.
"""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import zipfile

import numpy as np
import pytest
from conftest import INTERRUPTED, eval_json, signal_when_ready
from conftest import invoke_eval as invoke

import arrayloss as al
from arrayloss import metrics as M

N, C = 120, 5

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")


@pytest.fixture
def d(tmp_path, rng):
    """A folder with scores, labels and weights files, and old outputs."""
    z = rng.normal(0.0, 2.0, size=(N, C))
    y = rng.integers(0, C, size=N)
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "w.npy", rng.random(N))
    (tmp_path / "old.json").write_text("old results")
    (tmp_path / "old.npy").write_bytes(b"old rows")
    return tmp_path


def p(folder, name):
    return str(folder / name)


def leftovers(folder):
    return sorted(n for n in os.listdir(folder) if n.endswith(".part"))


def fails(args, code, pattern, **kwargs):
    """Run eval expecting exit ``code`` with one error line matching ``pattern``."""
    result = invoke(args, exit_code=code, **kwargs)
    err = result.stderr
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("Error: ")]
    assert len(lines) == 1, err
    if code == 1:
        assert err == lines[0] + "\n", err  # the whole of stderr is that line
    assert re.search(pattern, lines[0]), lines[0]
    assert result.stdout == ""
    return lines[0]


run_json = eval_json


def old_outputs_intact(folder):
    assert (folder / "old.json").read_text() == "old results"
    assert (folder / "old.npy").read_bytes() == b"old rows"
    assert leftovers(folder) == []


# =========================================================================== #
# Data replaced or lost
# =========================================================================== #


def test_output_through_a_symlink(d):
    (d / "link.json").symlink_to(d / "old.json")
    invoke([p(d, "z.npy"), p(d, "y.npy"), "-o", p(d, "link.json"), "--format", "json"])
    assert (d / "link.json").is_symlink()
    assert json.loads((d / "old.json").read_text())["n_samples"] == N
    assert leftovers(d) == []


def test_per_sample_through_a_symlink_chain(d):
    (d / "a.npy").symlink_to(d / "old.npy")
    (d / "b.npy").symlink_to(d / "a.npy")
    invoke([p(d, "z.npy"), p(d, "y.npy"), "--per-sample", p(d, "b.npy")])
    assert (d / "b.npy").is_symlink()
    assert (d / "a.npy").is_symlink()
    assert np.load(d / "old.npy").shape == (N, 5)


def test_output_through_a_dangling_symlink(d):
    (d / "link.json").symlink_to(d / "new.json")
    invoke([p(d, "z.npy"), p(d, "y.npy"), "-o", p(d, "link.json")])
    assert (d / "link.json").is_symlink()
    assert "cross_entropy" in (d / "new.json").read_text()


def _read_fifo(path, into):
    with open(path, "rb") as f:
        into.append(f.read())


@needs_fifo
def test_output_to_a_fifo_is_written_directly(d):
    fifo = d / "results.pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=_read_fifo, args=(fifo, got), daemon=True)
    reader.start()
    invoke([p(d, "z.npy"), p(d, "y.npy"), "-o", str(fifo), "--format", "json"])
    reader.join(30)
    assert not reader.is_alive()
    assert json.loads(got[0])["n_samples"] == N
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # never replaced by a file
    assert leftovers(d) == []


@needs_fifo
@pytest.mark.parametrize("suffix", [".npy", ".csv"])
def test_per_sample_to_a_fifo(d, suffix):
    """An .npy to a pipe cannot rewrite its header: it is spooled, then sent."""
    fifo = d / f"rows{suffix}"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=_read_fifo, args=(fifo, got), daemon=True)
    reader.start()
    invoke(
        [p(d, "z.npy"), p(d, "y.npy"), "--per-sample", str(fifo), "--chunk-size", "7"]
    )
    reader.join(30)
    assert not reader.is_alive()
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    invoke([p(d, "z.npy"), p(d, "y.npy"), "--per-sample", p(d, f"file{suffix}")])
    assert got[0] == (d / f"file{suffix}").read_bytes()


@needs_fifo
@pytest.mark.parametrize("option", ["--plot", "--per-class"])
def test_report_to_a_fifo(d, option):
    """``--plot`` to a pipe (``--plot >(viewer)``, a FIFO) was "cannot write
    --plot: File or stream is not seekable", exit 1: PIL seeks in the file it
    writes.  The PNG is drawn in memory and then sent, as to a file."""
    if option == "--plot":
        pytest.importorskip("matplotlib")
    name = "fig.png" if option == "--plot" else "report.csv"
    fifo = d / f"pipe-{name}"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=_read_fifo, args=(fifo, got), daemon=True)
    reader.start()
    invoke([p(d, "z.npy"), p(d, "y.npy"), f"{option}={fifo}", "--quiet"])
    reader.join(30)
    assert not reader.is_alive()
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    invoke([p(d, "z.npy"), p(d, "y.npy"), f"{option}={d / name}", "--quiet"])
    assert got[0] == (d / name).read_bytes()
    assert got[0].startswith(b"\x89PNG" if option == "--plot" else b"class,")


@pytest.mark.parametrize(
    "second",
    ["same", "dot", "symlink", "hardlink"],
)
def test_two_outputs_naming_one_file(d, second):
    target = d / "old.npy"
    other = {
        "same": str(target),
        "dot": str(d / "." / "old.npy"),
        "symlink": str(d / "alias.npy"),
        "hardlink": str(d / "hard.npy"),
    }[second]
    if second == "symlink":
        os.symlink(target, other)
    if second == "hardlink":
        os.link(target, other)
    fails(
        [p(d, "z.npy"), p(d, "y.npy"), "-o", str(target), "--per-sample", other],
        2,
        r"name the same file",
    )
    old_outputs_intact(d)


@pytest.mark.parametrize(
    ("which", "option"),
    [
        ("z.npy", "-o"),
        ("y.npy", "-o"),
        ("w.npy", "--per-sample"),
        ("classes.txt", "-o"),
        ("scores link", "--per-sample"),
        ("shard", "-o"),
    ],
)
def test_an_input_is_never_an_output(d, which, option):
    args = [p(d, "z.npy"), p(d, "y.npy"), "--weights", p(d, "w.npy")]
    (d / "classes.txt").write_text("a\nb\nc\nd\ne\n")
    args += ["--classes", p(d, "classes.txt")]
    target = p(d, which)
    if which == "scores link":
        os.symlink(d / "z.npy", target)
    if which == "shard":
        (d / "s").mkdir()
        np.save(d / "s" / "part-1.npy", np.load(d / "z.npy"))
        args[0] = str(d / "s")
        target = str(d / "s" / "part-1.npy")
    before = {n: (d / n).read_bytes() for n in ("z.npy", "y.npy", "w.npy")}
    fails([*args, option, target], 2, r"is also an input")
    assert {n: (d / n).read_bytes() for n in before} == before
    assert leftovers(d) == []


def _enospc(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("where", ["npy write", "npy close", "csv write", "csv close"])
def test_full_disk_while_writing_per_sample(d, monkeypatch, where):
    from arrayloss import io as alio

    kind, method = where.split()
    writer = alio.NpyWriter if kind == "npy" else alio.TextWriter

    def failing_close(self):
        self._f.close()  # a failed flush still closes the file, then raises
        _enospc()

    monkeypatch.setattr(writer, method, _enospc if method == "write" else failing_close)
    dest = d / ("old.npy" if kind == "npy" else "old.csv")
    (d / "old.csv").write_text("old rows")
    before = dest.read_bytes()
    fails(
        [
            p(d, "z.npy"),
            p(d, "y.npy"),
            "--per-sample",
            str(dest),
            "-o",
            p(d, "old.json"),
        ],
        1,
        r"cannot write --per-sample '.*old\.(npy|csv)': No space left on device",
    )
    assert dest.read_bytes() == before
    old_outputs_intact(d)


def test_full_disk_while_writing_the_results(d, monkeypatch):
    from arrayloss.cli import _eval

    monkeypatch.setattr(_eval, "open", _enospc, raising=False)
    fails(
        [p(d, "z.npy"), p(d, "y.npy"), "-o", p(d, "old.json")],
        1,
        r"cannot write --output '.*old.json': No space left on device",
    )
    old_outputs_intact(d)


def test_failed_rename_keeps_the_old_files(d, monkeypatch):
    from arrayloss.cli import _output

    def refuse(*_args):
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    monkeypatch.setattr(_output.os, "replace", refuse)
    fails(
        [
            p(d, "z.npy"),
            p(d, "y.npy"),
            "-o",
            p(d, "old.json"),
            "--per-sample",
            p(d, "old.npy"),
        ],
        1,
        r"cannot write --output",
    )
    old_outputs_intact(d)


def test_bad_data_in_the_last_chunk_keeps_the_old_files(d):
    z = np.load(d / "z.npy")
    z[-1, 2] = np.nan
    np.save(d / "zbad.npy", z)
    fails(
        [p(d, "zbad.npy"), p(d, "y.npy"), "--chunk-size", "10", "-o", p(d, "old.json"),
         "--per-sample", p(d, "old.npy")],
        1,
        rf"SCORES row {N - 1} contains NaN",
    )  # fmt: skip
    old_outputs_intact(d)


@pytest.mark.parametrize("cell", ["1.2.3", "", " ", "nan?", "0x1p3"])
def test_headerless_csv_with_a_malformed_first_row_keeps_every_row(d, cell):
    """The first row must not be taken for a header because one cell is bad."""
    z = np.load(d / "z.npy")
    rows = [",".join(repr(float(v)) for v in r) for r in z]
    first = rows[0].split(",")
    first[1] = cell
    rows[0] = ",".join(first)
    (d / "s.csv").write_text("\n".join(rows) + "\n")
    fails(
        [p(d, "s.csv"), p(d, "y.npy")],
        1,
        r"'.*s.csv' line 1, column 1: (.* is not a number|an empty cell)$",
    )


def test_headerless_csv_with_a_malformed_later_row(d):
    z = np.load(d / "z.npy")
    rows = [",".join(repr(float(v)) for v in r) for r in z]
    cells = rows[40].split(",")
    cells[4] = ""
    rows[40] = ",".join(cells)
    (d / "s.csv").write_text("\n".join(rows) + "\n")
    fails([p(d, "s.csv"), p(d, "y.npy")], 1, r"line 41, column 4: an empty cell")


def test_csv_header_still_recognised(d):
    z, y = np.load(d / "z.npy"), np.load(d / "y.npy")
    rows = [",".join(repr(float(v)) for v in r) for r in z]
    (d / "h.csv").write_text("a,b,c,d,e\n" + "\n".join(rows) + "\n")
    (d / "y.txt").write_text("label\n" + "\n".join(map(str, y)) + "\n")
    out = run_json([p(d, "h.csv"), p(d, "y.txt")])
    assert out["n_samples"] == N
    assert out["losses"]["cross_entropy"] == pytest.approx(
        float(al.cross_entropy(z, y)), rel=1e-14
    )


def test_single_numeric_row_is_data(d):
    (d / "one.csv").write_text("0.1,0.2,0.7\n")
    (d / "one.txt").write_text("2\n")
    assert run_json([p(d, "one.csv"), p(d, "one.txt")])["n_samples"] == 1


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_sigterm_during_a_long_per_sample_write_leaves_nothing(tmp_path, rng, sig):
    """A killed run (SIGTERM, or Ctrl-C's SIGINT) removes its temporary files;
    old files stay."""
    n = 200_000
    np.save(tmp_path / "z.npy", rng.normal(size=(n, 4)))
    np.save(tmp_path / "y.npy", rng.integers(0, 4, size=n))
    (tmp_path / "rows.csv").write_text("old rows")
    cmd = [
        sys.executable, "-m", "arrayloss", "eval", str(tmp_path / "z.npy"),
        str(tmp_path / "y.npy"), "--per-sample", str(tmp_path / "rows.csv"),
        "--chunk-size", "50", "--loss", "cross_entropy", "--loss", "l1", "-q",
    ]  # fmt: skip
    code, err = signal_when_ready(
        cmd, lambda: bool(leftovers(tmp_path)), getattr(signal, sig), settle=0.3
    )  # settle: well into the streaming
    allowed = INTERRUPTED if sig == "SIGINT" else (128 + signal.SIGTERM,)
    assert code in allowed, err
    assert "Traceback" not in err
    assert leftovers(tmp_path) == []
    assert (tmp_path / "rows.csv").read_text() == "old rows"


def test_per_sample_to_standard_output_is_refused(d):
    fails(
        [p(d, "z.npy"), p(d, "y.npy"), "--per-sample", "-"],
        2,
        r"--per-sample needs a file",
    )


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
def test_results_to_a_full_standard_output(d):
    """``eval ... > /dev/full``: the error names standard output, exit 1."""
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "arrayloss", "eval", p(d, "z.npy"), p(d, "y.npy")],
            stdout=full, stderr=subprocess.PIPE, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == (
        "Error: cannot write the results to standard output: No space left on device\n"
    )


def test_results_to_a_closed_standard_output(d):
    """``eval ... >&-``: the results are not silently lost with exit 0."""
    proc = subprocess.run(
        ["sh", "-c", 'exec "$@" >&-', "sh", sys.executable, "-m", "arrayloss",
         "eval", p(d, "z.npy"), p(d, "y.npy")],
        stderr=subprocess.PIPE, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == (
        "Error: standard output is closed: give -o FILE for the results\n"
    )


@pytest.mark.parametrize("dest", ["folder", "missing/x.json", "readonly/x.json"])
def test_unwritable_output(d, dest):
    (d / "folder").mkdir()
    (d / "readonly").mkdir()
    os.chmod(d / "readonly", 0o500)
    try:
        if dest.startswith("readonly") and os.access(d / "readonly", os.W_OK):
            pytest.skip("running as root: the folder stays writable")
        fails(
            [p(d, "z.npy"), p(d, "y.npy"), "-o", p(d, dest)],
            1,
            r"cannot write --output",
        )
    finally:
        os.chmod(d / "readonly", 0o700)
    old_outputs_intact(d)


# =========================================================================== #
# Wrong numbers
# =========================================================================== #


@pytest.mark.parametrize("scale", [1e308, 1e-320, 2.0**-1074, 3.0])
def test_weighted_loss_is_scale_invariant(d, scale):
    z, y = np.load(d / "z.npy"), np.load(d / "y.npy")
    np.save(d / "ws.npy", np.full(N, scale))
    args = [
        p(d, "z.npy"),
        p(d, "y.npy"),
        "--weights",
        p(d, "ws.npy"),
        "--format",
        "json",
    ]
    args += ["--loss", "cross_entropy:label_smoothing=0.1", "--loss", "l1"]
    args += ["--chunk-size", "7", "--metric", "accuracy"]
    from click.testing import CliRunner

    from arrayloss.cli import main

    result = CliRunner().invoke(main, ["eval", *args])
    # the metrics' sums are exact: no scale of the weights makes them overflow
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)["losses"]
    want_ce = float(al.cross_entropy(z, y, label_smoothing=0.1))
    want_l1 = float(al.l1(z, y))
    assert out["cross_entropy:label_smoothing=0.1"] == pytest.approx(want_ce, rel=1e-15)
    assert out["l1"] == pytest.approx(want_l1, rel=1e-15)


def test_weights_that_float32_cannot_hold_are_refused_not_dropped(d):
    np.save(d / "z32.npy", np.load(d / "z.npy").astype(np.float32))
    w = np.ones(N)
    w[17] = 1e-50
    np.save(d / "wt.npy", w)
    fails(
        [p(d, "z32.npy"), p(d, "y.npy"), "--weights", p(d, "wt.npy")],
        1,
        r"--weights '.*wt.npy' row 17: weight 1e-50 is outside the range of the scores' float32",
    )


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("weighted", [False, True])
def test_every_loss_is_exactly_chunk_invariant(d, dtype, weighted):
    """README: the result equals the in-memory one at any chunk size (equality)."""
    np.save(d / "zt.npy", np.load(d / "z.npy").astype(dtype))
    args = [p(d, "zt.npy"), p(d, "y.npy"), "--metric", "accuracy"]
    if weighted:
        args += ["--weights", p(d, "w.npy")]
    names = [
        n for n in al.LOSSES if not (n == "smooth_topk_svm" and dtype == "float32")
    ]
    specs = [name + (":k=2" if "topk" in name else "") for name in names]
    for spec in specs:
        args += ["--loss", spec]
    outs = [
        run_json([*args, "--chunk-size", c])["losses"] for c in ("1", "7", "64", str(N))
    ]
    assert sorted(outs[0]) == sorted(specs)  # every loss reported: a loop over them
    for key in outs[0]:
        assert len({o[key] for o in outs}) == 1, (key, [o[key] for o in outs])


def test_float32_smooth_topk_chunk_invariance(d):
    """Issue 11: a float32 smooth top-k row no longer depends on its batch, so the
    streamed loss is identical at every chunk size."""
    rng = np.random.default_rng(3)
    np.save(d / "zt.npy", rng.normal(0, 2, size=(300, 8)).astype(np.float32))
    np.save(d / "yt.npy", rng.integers(0, 8, 300))
    args = [p(d, "zt.npy"), p(d, "yt.npy"), "--metric", "accuracy"]
    args += ["--loss", "smooth_topk_svm:k=3"]
    outs = {
        run_json([*args, "--chunk-size", c])["losses"]["smooth_topk_svm:k=3"]
        for c in ("1", "7", "300")
    }
    assert len(outs) == 1, sorted(outs)


def test_metrics_identical_at_every_chunk_size(d):
    """Metric tallies are exact sums too (`arrayloss._exact`): every metric is
    identical, not merely close, at chunk sizes 1, 7 and all, weighted or not."""
    rng = np.random.default_rng(5)
    np.save(d / "zm.npy", rng.normal(0, 3, size=(301, 6)))
    np.save(d / "ym.npy", rng.integers(0, 6, 301))
    np.save(d / "wm.npy", rng.uniform(0, 1e300, 301))
    base = [p(d, "zm.npy"), p(d, "ym.npy")]
    for extra in ([], ["--weights", p(d, "wm.npy")]):
        outs = [
            run_json([*base, *extra, "--chunk-size", c])["metrics"]
            for c in ("1", "7", "301")
        ]
        assert outs[0], "no metric was compared"
        assert outs[0] == outs[1] == outs[2], (extra, outs)


def test_losses_near_the_float64_limit(d):
    """Finite per-sample losses whose sum overflows: the mean is still right, the
    sum is a clear error."""
    z = np.zeros((4, 3))
    z[:, 1] = 1.2e308  # cross-entropy of label 0 is ~1.2e308 per row
    np.save(d / "zl.npy", z)
    np.save(d / "yl.npy", np.zeros(4, dtype=np.int64))
    out = run_json([p(d, "zl.npy"), p(d, "yl.npy"), "--metric", "accuracy"])
    assert out["losses"]["cross_entropy"] == pytest.approx(1.2e308, rel=1e-15)
    fails(
        [p(d, "zl.npy"), p(d, "yl.npy"), "--metric", "accuracy", "--reduction", "sum"],
        1,
        r"the sum of loss 'cross_entropy' over 4 samples exceeds the float64 range",
    )


def test_corrupt_member_data_is_not_read_as_numbers(d, rng):
    """A flipped byte deep inside a stored .npz member fails its CRC."""
    z = rng.normal(size=(5000, C))
    path = d / "big.npz"
    np.savez(path, scores=z, labels=rng.integers(0, C, 5000))
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("scores.npy")
    data[info.header_offset + 30 + len("scores.npy") + 20_000] ^= 0x10
    path.write_bytes(bytes(data))
    fails(
        [str(path), "--chunk-size", "100"],
        1,
        r"SCORES '.*big.npz'\['scores'\] is corrupt .*CRC",
    )


def test_ece_with_many_bins_is_right(d):
    z, y = np.load(d / "z.npy"), np.load(d / "y.npy")
    out = run_json(
        [
            p(d, "z.npy"),
            p(d, "y.npy"),
            "--metric",
            "ece:n_bins=10000",
            "--chunk-size",
            "30",
        ]
    )
    assert out["metrics"]["ece:n_bins=10000"] == pytest.approx(
        float(M.ece(z, y, n_bins=10000)), rel=1e-12
    )


@pytest.mark.parametrize("cell", ["1_0", "\u0661"])  # 1_0, Arabic-Indic one
@pytest.mark.parametrize("where", ["score", "label", "weight"])
def test_numbers_only_python_reads_are_not_numbers(d, cell, where):
    """``float("1_0")`` is 10.0 and ``float("\u0661")`` is 1.0, and NumPy's cast
    reads them alike: a score, label or weight cell ``1_0`` was read as 10 where
    ``numpy.loadtxt`` and pandas read text.  It is a cell that is no number now;
    white space beyond ASCII around a number is still read, as loadtxt reads it."""
    z, y, w = np.load(d / "z.npy"), np.load(d / "y.npy"), np.load(d / "w.npy")
    lines = {
        "score": [",".join(repr(float(v)) for v in r) for r in z],
        "label": [str(int(v)) for v in y],
        "weight": [repr(float(v)) for v in w],
    }[where]
    lines[3] = f"{cell},1,1,1,1" if where == "score" else cell
    (d / "bad.csv").write_text("\n".join(lines) + "\n")
    bad, zs, ys = p(d, "bad.csv"), p(d, "z.npy"), p(d, "y.npy")
    argv = {
        "score": [bad, ys],
        "label": [zs, bad],
        "weight": [zs, ys, "--weights", bad],
    }[where]
    said = rf"'.*bad.csv' (line 4|row 3).*'{cell}' is not a (number|class index)"
    fails([*argv, "-o", p(d, "old.json")], 1, said)
    old_outputs_intact(d)
    spaced = "\n".join(f"\u2007{v!r}\u3000" for v in w.tolist())
    (d / "spaced.csv").write_text(spaced + "\n")
    out = run_json([zs, ys, "--weights", p(d, "spaced.csv")])
    assert out["losses"]["cross_entropy"] == pytest.approx(
        float(al.cross_entropy(z, y, weights=w)), rel=1e-14
    )


@pytest.mark.parametrize("soft", [True, False])
def test_an_npz_of_one_array_is_not_its_own_labels(d, soft):
    """``np.savez(path, proba)`` holds one array, ``arr_0``: without LABELS it was
    picked as the labels too, so ``--soft-labels`` gave the cross-entropy of the
    probabilities against themselves (their entropy), exit 0; without, the error
    named a LABELS the user never gave.  Both are one error naming the array."""
    z = np.load(d / "z.npy")
    proba = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.savez(d / "one.npz", proba)
    args = [p(d, "one.npz"), "--input", "probs", *(["--soft-labels"] if soft else [])]
    fails(
        [*args, "-o", p(d, "old.json")],
        1,
        r"^Error: SCORES '.*one.npz'\['arr_0'\] would be both the scores and the "
        r"labels: give a LABELS file",
    )
    old_outputs_intact(d)
    np.savez(d / "two.npz", scores=proba, labels=proba)  # named: read as asked
    if soft:
        out = run_json([p(d, "two.npz"), "--input", "probs", "--soft-labels"])
        assert out["n_samples"] == N


def test_an_npy_given_as_its_own_labels_is_refused(d):
    """``eval student.npy student.npy --soft-labels`` (a typo for teacher.npy):
    the soft labels were the scores' own probabilities, their entropy came out
    as the cross-entropy, exit 0.  The same file (by any path) as LABELS is bad
    usage, as a table SCORES named as LABELS is."""
    z = np.load(d / "z.npy")
    np.save(d / "p.npy", np.exp(z) / np.exp(z).sum(axis=1, keepdims=True))
    (d / "same.npy").symlink_to(d / "p.npy")
    for other in ("p.npy", "same.npy"):
        fails(
            [p(d, "p.npy"), p(d, other), "--input", "probs", "--soft-labels",
             "-o", p(d, "old.json")],
            2,
            rf"LABELS '.*{other}' is the SCORES file itself: give the file of the true",
        )  # fmt: skip
    old_outputs_intact(d)


# =========================================================================== #
# Crashes and tracebacks
# =========================================================================== #


def test_loss_that_overflows_is_a_clear_error(d):
    z = np.full((4, 3), 1e200)
    z[:, 0] = -1e200
    np.save(d / "zo.npy", z)
    np.save(d / "yo.npy", np.array([0, 1, 2, 0]))
    fails(
        [p(d, "zo.npy"), p(d, "yo.npy"), "--loss", "l2"],
        1,
        r"loss 'l2' is inf at SCORES row 0: it overflows float64",
    )


@pytest.mark.parametrize(
    ("make", "pattern"),
    [
        ("truncated", r"is not a valid .npz file"),
        ("garbage", r"is not a valid .npz file"),
        ("empty", r"is empty \(0 bytes\), not an .npz file"),
        ("member not npy", r"is not a valid .npy file"),
        ("header crc", r"(corrupt|not a valid).*CRC"),
    ],
)
def test_corrupt_npz(d, rng, make, pattern):
    path = d / "c.npz"
    np.savez(path, scores=rng.normal(size=(30, C)), labels=rng.integers(0, C, 30))
    data = path.read_bytes()
    if make == "truncated":
        data = data[: len(data) // 2]
    elif make == "garbage":
        data = b"PK\x03\x04" + bytes(rng.integers(0, 256, 500, dtype=np.uint8))
    elif make == "empty":
        data = b""
    elif make == "member not npy":
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("scores.npy", b"not an array")
            zf.writestr("labels.npy", b"nor this")
        data = path.read_bytes()
    else:
        arr = bytearray(data)
        arr[60] ^= 0xFF
        data = bytes(arr)
    path.write_bytes(data)
    fails([str(path)], 1, pattern)


@pytest.mark.parametrize(
    ("labels", "pattern"),
    [
        (
            np.array([0, 1, 2**64 - 1, 0], dtype=np.uint64),
            r"label 18446744073709551615 is out of range",
        ),
        (np.array([0, 1, 1e300, 0]), r"label 1e\+300 is out of range"),
        (np.array([0, 1, -1e300, 0]), r"label -1e\+300 is out of range"),
        (np.array([0, 1, 2.0**63, 0]), r"label 9223372036854775808 is out of range"),
        (
            np.array([0, 1, -(2**63), 0], dtype=np.int64),
            r"label -9223372036854775808 is out of range",
        ),
        (np.array([0, 1, np.nan, 0]), r"nan is not an integer class index"),
        (np.array([0, 1, np.inf, 0]), r"inf is not an integer class index"),
        (np.array([0, 1, 2.5, 0]), r"2.5 is not an integer class index"),
        (np.array([0, 1, 255, 0], dtype=np.uint8), r"label 255 is out of range"),
    ],
)
def test_label_values_reported_as_themselves(d, labels, pattern):
    # (boolean labels are the classes 0 and 1: test_eval_gaps.py)
    np.save(d / "z4.npy", np.zeros((4, 3)))
    np.save(d / "yl.npy", labels)
    fails([p(d, "z4.npy"), p(d, "yl.npy")], 1, r"LABELS '.*yl.npy' row 2: " + pattern)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        (
            "0\n1\n18446744073709551615\n0\n",
            r"row 2: label 18446744073709551615 is out of range for 3",
        ),
        ("0\n1\n1e999\n0\n", r"row 2: '1e999' is not an integer class index"),
        ("0\n1\n-1\n0\n", r"row 2: label -1 is out of range"),
        ("0\n1\n\xff\xfe\n0\n", r"line 3: byte 0xff is not UTF-8 text"),
    ],
)
def test_text_label_values(d, text, pattern):
    np.save(d / "z4.npy", np.zeros((4, 3)))
    (d / "yl.txt").write_bytes(text.encode("latin-1"))
    fails([p(d, "z4.npy"), p(d, "yl.txt")], 1, pattern)


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        (b"", r"is empty \(0 bytes\), not an .npy file"),
        (b"\x93NUMPY\x01\x00", r"is not a valid .npy file"),
        (b"\x93NUMPY\x09\x00xxxx", r"is not a valid .npy file"),
        (b"0.1,0.\x002,0.3,0.1,0.3\n", r"line 1, column 1: .* is not a number"),
    ],
)
def test_garbage_scores(d, content, pattern):
    name = "g.npy" if content.startswith(b"\x93") or not content else "g.csv"
    (d / name).write_bytes(content)
    fails([p(d, name), p(d, "y.npy")], 1, pattern)


def test_object_array_is_not_unpickled(d):
    np.save(d / "obj.npy", np.array([{"a": 1}] * N, dtype=object), allow_pickle=True)
    fails([p(d, "z.npy"), p(d, "obj.npy")], 1, r"holds Python objects")


def test_metric_beyond_float64_without_a_loss_that_says_so_first(d):
    z = np.zeros((3, 3))
    z[1] = [1.7e308, -1.7e308, 0.0]
    np.save(d / "zh.npy", z)
    np.save(d / "yh.npy", np.array([0, 1, 2]))
    fails(
        [p(d, "zh.npy"), p(d, "yh.npy"), "--loss", "l1", "--metric", "nll"],
        1,
        r"metric 'nll' (overflows|is inf)",
    )


def test_nll_beyond_float64_is_a_clear_error(d):
    z = np.zeros((3, 3))
    z[1] = [1.7e308, -1.7e308, 0.0]
    np.save(d / "zh.npy", z)
    np.save(d / "yh.npy", np.array([0, 1, 2]))
    fails(
        [p(d, "zh.npy"), p(d, "yh.npy")],
        1,
        r"(loss 'cross_entropy' is inf at SCORES row 1|overflows)",
    )


# =========================================================================== #
# Hangs
# =========================================================================== #


def test_huge_ece_bin_count_is_refused_at_once(d):
    t0 = time.perf_counter()
    fails(
        [p(d, "z.npy"), p(d, "y.npy"), "--metric", "ece:n_bins=100000000"],
        2,
        r"'ece:n_bins=100000000': `n_bins` must be at most 10000",
    )
    assert time.perf_counter() - t0 < 30


@pytest.fixture
def silent_server():
    """A TCP server on 127.0.0.1 that accepts connections and never speaks."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    conns = []
    stop = threading.Event()

    def serve():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conns.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(5)
    for c in conns:
        c.close()
    server.close()


def _subprocess_eval(args, timeout):
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "arrayloss", "eval", *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    return proc, time.perf_counter() - t0


def test_dask_address_of_a_silent_service_does_not_hang(d, silent_server):
    pytest.importorskip("distributed")
    proc, took = _subprocess_eval(
        [p(d, "z.npy"), p(d, "y.npy"), "--dask", f"127.0.0.1:{silent_server}",
         "--dask-timeout", "1"],
        timeout=90,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "no answer within 1 s" in proc.stderr
    assert took < 60


def test_dask_address_of_a_service_speaking_another_protocol(d):
    """An HTTP-like server that answers garbage and hangs up: one line, exit 1."""
    pytest.importorskip("distributed")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn = server.accept()[0]
            except OSError:
                continue
            with conn:
                conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n" + b"\xff" * 64)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        proc, took = _subprocess_eval(
            [p(d, "z.npy"), p(d, "y.npy"), "--dask",
             f"127.0.0.1:{server.getsockname()[1]}", "--dask-timeout", "2"],
            timeout=90,
        )  # fmt: skip
    finally:
        stop.set()
        thread.join(5)
        server.close()
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith(
        "Error: cannot reach the Dask scheduler at 127.0.0.1:"
    )
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert took < 60


def test_dask_unknown_scheme_is_one_line(d):
    pytest.importorskip("distributed")
    proc, took = _subprocess_eval(
        [p(d, "z.npy"), p(d, "y.npy"), "--dask", "bogus://x", "--dask-timeout", "1"],
        timeout=90,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (
        "Error: --dask bogus://x: unknown address scheme 'bogus' (known schemes: "
        + proc.stderr.split("(known schemes: ", 1)[1]
    )
    assert proc.stderr.count("\n") == 1
    assert took < 60


@needs_fifo
def test_fifo_as_scores_input(d):
    """A named pipe of CSV is read as a stream (no size, no seek)."""
    z, y = np.load(d / "z.npy"), np.load(d / "y.npy")
    fifo = d / "in.csv"
    os.mkfifo(fifo)
    text = "\n".join(",".join(repr(float(v)) for v in r) for r in z) + "\n"

    def feed():
        with open(fifo, "w") as f:
            f.write(text)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    out = run_json([str(fifo), p(d, "y.npy"), "--metric", "accuracy"])
    writer.join(30)
    assert out["losses"]["cross_entropy"] == pytest.approx(
        float(al.cross_entropy(z, y)), rel=1e-14
    )


# =========================================================================== #
# Unclear or wrong messages and exit codes
# =========================================================================== #


def test_class_names_without_classes_are_diagnosed_as_such(d):
    names = np.array(["ant", "bee", "cat", "dog", "eel"])[np.load(d / "y.npy")]
    (d / "names.txt").write_text("\n".join(names) + "\n")
    fails(
        [p(d, "z.npy"), p(d, "names.txt")],
        1,
        rf"LABELS '.*names.txt' row 0: '{names[0]}' is not a class index; for class names, give --classes",
    )
    (d / "names.txt").write_text("label\n" + "\n".join(names) + "\n")
    out = run_json(
        [p(d, "z.npy"), p(d, "names.txt"), "--classes", "ant,bee,cat,dog,eel"]
    )
    assert out["n_samples"] == N


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "-1", "1e999", "x"])
def test_dask_timeout_must_be_a_finite_positive_number(d, value):
    fails(
        [p(d, "z.npy"), p(d, "y.npy"), "--dask-timeout", value],
        2,
        r"Invalid value for '--dask-timeout'",
    )


@pytest.mark.parametrize(
    ("extra", "pattern"),
    [
        (["--top-k", "0"], r"'--top-k': values must be >= 1"),
        (["--top-k", ""], r"'--top-k': must be a comma-separated list"),
        (["--top-k", "1e3"], r"'--top-k': must be a comma-separated list"),
        (["--chunk-size", "0"], r"'--chunk-size'"),
        (["--chunk-size", "-5"], r"'--chunk-size'"),
        (["--dask-workers", "0"], r"'--dask-workers'"),
        (["--metric", "ece:n_bins=-1"], r"`n_bins` must be an integer >= 1"),
        (["--metric", "ece:n_bins=1e9"], r"`n_bins` must be an integer"),
        (["--metric", "ece:strategy=magic"], r"strategy"),
        (["--metric", "top_k_accuracy:k=0"], r"'--metric'"),
        (["--loss", "smooth_topk_svm:tau=nan"], r"must be a number"),
        (["--loss", "smooth_topk_svm:tau=inf"], r"'--loss'"),
        (["--loss", "smooth_topk_svm:k=5"], r"with 5 classes"),
        (["--loss", "hinge:margin=-1e999"], r"'--loss'"),
        (["--backend", "tensorflow"], r"'--backend'"),
        (["--format", "xml"], r"'--format'"),
        (["--reduction", "none"], r"'--reduction'"),
        # ignored, so the column meant to be left out was a class score
        (["--drop-column", "0"], r"--drop-column leaves out columns of a table"),
    ],
)
def test_bad_options_are_usage_errors(d, extra, pattern):
    fails([p(d, "z.npy"), p(d, "y.npy"), *extra, "-o", p(d, "old.json")], 2, pattern)
    old_outputs_intact(d)


@pytest.mark.parametrize(
    ("setup", "args", "pattern"),
    [
        ("labelcol", ["--label-column", "nope"], r"has no column named 'nope'"),
        ("labelcol", ["--label-column", "99"], r"column 99 is out of range"),
        ("headeronly", [], r"has no rows"),
        ("emptycsv", [], r"is empty"),
        ("ragged", [], r"expected 5 fields, found 3"),
        ("fortran", [], None),
    ],
)
def test_table_messages(d, setup, args, pattern):
    z, y = np.load(d / "z.npy"), np.load(d / "y.npy")
    rows = [",".join(repr(float(v)) for v in r) for r in z]
    if setup == "labelcol":
        text = "a,b,c,d,e,label\n" + "".join(
            f"{r},{c}\n" for r, c in zip(rows, y, strict=True)
        )
        (d / "t.csv").write_text(text)
        fails([p(d, "t.csv"), *args], 1, pattern)
    elif setup == "headeronly":
        (d / "t.csv").write_text("a,b,c,d,e\n")
        fails([p(d, "t.csv"), p(d, "y.npy")], 1, pattern)
    elif setup == "emptycsv":
        (d / "t.csv").write_text("\n\n")
        fails([p(d, "t.csv"), p(d, "y.npy")], 1, pattern)
    elif setup == "ragged":
        rows[5] = "1,2,3"
        (d / "t.csv").write_text("\n".join(rows) + "\n")
        fails([p(d, "t.csv"), p(d, "y.npy")], 1, pattern)
    else:  # a Fortran-ordered array gives the same numbers
        np.save(d / "f.npy", np.asfortranarray(z))
        out = run_json([p(d, "f.npy"), p(d, "y.npy"), "--chunk-size", "7"])
        assert out["losses"]["cross_entropy"] == pytest.approx(
            float(al.cross_entropy(z, y)), rel=1e-14
        )


def test_stdin_twice_and_example_with_files(d):
    fails(["-", "-"], 2, r"only one of SCORES and LABELS can be standard input")
    # the weights read what SCORES left of standard input: "(standard input) is
    # empty", exit 1, or with LABELS too, rows of labels as weights
    for args, which in (
        (["-", p(d, "y.npy")], "SCORES"),
        ([p(d, "z.npy"), "-"], "LABELS"),
    ):
        fails(
            [*args, "--weights", "-"],
            2,
            rf"only one of {which} and --weights can be standard input",
            input="1\n" * N,
        )
    fails(
        ["--example", "-o", p(d, "old.json"), p(d, "z.npy")], 2, r"--example takes no"
    )
    old_outputs_intact(d)


def test_scores_without_classes_are_bad_data(d):
    """A (rows, 0) array, or a list column of empty lists, is bad data (it was bad
    usage of --loss, with the usage banner)."""
    np.save(d / "z0.npy", np.zeros((N, 0)))
    fails(
        [p(d, "z0.npy"), p(d, "y.npy")],
        1,
        r"SCORES '.*z0.npy' has no classes \(0 score columns\)",
    )
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    lists = pa.array([[] for _ in range(N)], pa.list_(pa.float64()))
    pq.write_table(pa.table({"s": lists, "y": np.load(d / "y.npy")}), d / "t.parquet")
    fails(
        [p(d, "t.parquet"), "--label-column", "y"], 1, r"'.*t.parquet' has no classes"
    )


@pytest.mark.parametrize(
    ("option", "name", "pattern"),
    [
        (
            "--plot",
            "fig.pdf",
            r"--plot writes a PNG file; '.*fig.pdf' has the suffix '.pdf'",
        ),
        ("--plot", "fig.jpg", r"name it \.png"),
        ("--per-sample", "rows.parquet", r"--per-sample writes \.npy or CSV/TSV"),
        ("--per-sample", "rows.json", r"rows.json' has the suffix '.json'"),
        # the results as a text table under a binary format's name
        ("-o", "eval.npy", r"-o writes the results as text .*eval.npy' has the"),
        ("-o", "eval.parquet", r"'.*eval.parquet' has the suffix '.parquet'"),
        ("-o", "eval.json.gz", r"'.*eval.json.gz' has the suffix '.gz'"),
        ("-o", "eval.pdf", r"'.*eval.pdf' has the suffix '.pdf'"),
        ("-o", "eval.xlsx", r"'.*eval.xlsx' has the suffix '.xlsx'"),
    ],
)
def test_output_suffix_of_another_format_is_refused(d, option, name, pattern):
    """A PNG written under a .pdf name, or CSV under .parquet (and the results'
    text under .npy or .gz), was a file that its suffix's readers cannot open:
    bad usage, before anything is read."""
    fails([p(d, "z.npy"), p(d, "y.npy"), option, p(d, name)], 2, pattern)
    assert not (d / name).exists()
    old_outputs_intact(d)


def test_zero_total_weight_is_bad_data(d):
    np.save(d / "w0.npy", np.zeros(N))
    fails(
        [
            p(d, "z.npy"),
            p(d, "y.npy"),
            "--weights",
            p(d, "w0.npy"),
            "--metric",
            "accuracy",
        ],
        1,
        r"non-zero weight",
    )


# The classes of the tests above, for the report (counted by test function and
# parametrisation in test_adversarial_counts).
CLASSES = {
    "data replaced or lost": [
        "test_output_through_a_symlink", "test_per_sample_through_a_symlink_chain",
        "test_output_through_a_dangling_symlink",
        "test_output_to_a_fifo_is_written_directly", "test_per_sample_to_a_fifo",
        "test_report_to_a_fifo",
        "test_two_outputs_naming_one_file", "test_an_input_is_never_an_output",
        "test_full_disk_while_writing_per_sample",
        "test_full_disk_while_writing_the_results",
        "test_failed_rename_keeps_the_old_files",
        "test_bad_data_in_the_last_chunk_keeps_the_old_files",
        "test_headerless_csv_with_a_malformed_first_row_keeps_every_row",
        "test_headerless_csv_with_a_malformed_later_row",
        "test_csv_header_still_recognised", "test_single_numeric_row_is_data",
        "test_sigterm_during_a_long_per_sample_write_leaves_nothing",
        "test_per_sample_to_standard_output_is_refused", "test_unwritable_output",
        "test_results_to_a_full_standard_output",
        "test_results_to_a_closed_standard_output",
    ],
    "wrong numbers": [
        "test_weighted_loss_is_scale_invariant",
        "test_weights_that_float32_cannot_hold_are_refused_not_dropped",
        "test_every_loss_is_exactly_chunk_invariant",
        "test_float32_smooth_topk_chunk_invariance",
        "test_metrics_identical_at_every_chunk_size",
        "test_losses_near_the_float64_limit",
        "test_corrupt_member_data_is_not_read_as_numbers",
        "test_ece_with_many_bins_is_right",
        "test_numbers_only_python_reads_are_not_numbers",
        "test_an_npz_of_one_array_is_not_its_own_labels",
        "test_an_npy_given_as_its_own_labels_is_refused",
    ],
    "crashes and tracebacks": [
        "test_loss_that_overflows_is_a_clear_error", "test_corrupt_npz",
        "test_label_values_reported_as_themselves", "test_text_label_values",
        "test_garbage_scores", "test_object_array_is_not_unpickled",
        "test_nll_beyond_float64_is_a_clear_error",
        "test_metric_beyond_float64_without_a_loss_that_says_so_first",
        "test_eval_with_standard_error_closed_is_no_internal_error",
    ],
    "hangs": [
        "test_huge_ece_bin_count_is_refused_at_once",
        "test_dask_address_of_a_silent_service_does_not_hang",
        "test_dask_unknown_scheme_is_one_line", "test_fifo_as_scores_input",
        "test_dask_address_of_a_service_speaking_another_protocol",
    ],
    "messages and exit codes": [
        "test_class_names_without_classes_are_diagnosed_as_such",
        "test_dask_timeout_must_be_a_finite_positive_number",
        "test_bad_options_are_usage_errors", "test_table_messages",
        "test_stdin_twice_and_example_with_files", "test_zero_total_weight_is_bad_data",
        "test_scores_without_classes_are_bad_data",
        "test_output_suffix_of_another_format_is_refused",
    ],
}  # fmt: skip


def test_every_test_here_has_a_class():
    named = {n for names in CLASSES.values() for n in names}
    defined = {n for n in globals() if n.startswith("test_")} - {
        "test_every_test_here_has_a_class"
    }
    assert named == defined


def test_eval_with_standard_error_closed_is_no_internal_error():
    """``arrayloss eval --example 2>&-``: ``sys.stderr`` is None, and asking it
    whether it is a terminal (for the progress bar) printed 'internal error
    (AttributeError ...)' on standard output, exit 1, instead of the report."""
    from pathlib import Path

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.run(
        ["sh", "-c", 'exec "$@" 2>&-', "sh", sys.executable, "-m", "arrayloss",
         "eval", "--example", "--format", "json"],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout
    assert "internal error" not in proc.stdout
    assert json.loads(proc.stdout)["metrics"]["accuracy"] > 0

"""`arrayloss.cli._output.Outputs`: atomic for regular files, through links, direct
to FIFOs, one destination per file, nothing left behind on an error."""

from __future__ import annotations

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

"""``arrayloss eval``: exact streaming, every input format, outputs, and each error
case with its exit code and one-line message (CliRunner, and once as a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import click
import numpy as np
import pytest
from conftest import eval_json
from conftest import invoke_eval as invoke

import arrayloss as al
from arrayloss import metrics as M
from arrayloss.cli._options import check_loss_params, parse_loss_spec, parse_spec

N, C = 400, 6
NAMES = ("ant", "bee", "cat", "dog", "eel", "fox")


run_json = eval_json


@pytest.fixture
def files(tmp_path, rng):
    z = rng.normal(0.0, 2.0, size=(N, C))
    y = rng.integers(0, C, size=N)
    w = rng.random(N)
    w[::13] = 0.0
    f = {k: str(tmp_path / k) for k in ("z.npy", "y.npy", "w.npy", "zy.npz", "zyc.npz")}
    np.save(f["z.npy"], z)
    np.save(f["y.npy"], y)
    np.save(f["w.npy"], w)
    np.savez(f["zy.npz"], logits=z, labels=y)
    np.savez_compressed(f["zyc.npz"], scores=z, y=y)
    rows = [",".join(repr(float(v)) for v in r) for r in z]
    head = ",".join(f"s{j}" for j in range(C))
    f["named.csv"] = str(tmp_path / "named.csv")
    with open(f["named.csv"], "w") as fh:
        fh.write(head + ",label\n")
        fh.writelines(f"{r},{NAMES[c]}\n" for r, c in zip(rows, y, strict=True))
    f["plain.csv"] = str(tmp_path / "plain.csv")
    with open(f["plain.csv"], "w") as fh:
        fh.writelines(r + "\n" for r in rows)
    f["z.tsv"] = str(tmp_path / "z.tsv")
    with open(f["z.tsv"], "w") as fh:
        fh.writelines(r.replace(",", "\t") + "\n" for r in rows)
    f["y.txt"] = str(tmp_path / "y.txt")
    with open(f["y.txt"], "w") as fh:
        fh.writelines(f"{c}\n" for c in y)
    f["ynames.npy"] = str(tmp_path / "ynames.npy")
    np.save(f["ynames.npy"], np.array(NAMES)[y])
    f["classes.txt"] = str(tmp_path / "classes.txt")
    with open(f["classes.txt"], "w") as fh:
        fh.write("\n".join(NAMES) + "\n")
    return {"z": z, "y": y, "w": w, "dir": tmp_path, **f}


def _rel(a, b):
    return abs(a - b) / max(abs(b), 1e-300)


# --------------------------------------------------------------------------- #
# Results
# --------------------------------------------------------------------------- #


def test_example():
    result = invoke(["--example"])
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["kind", "name", "value"]
    assert [ln.split()[1] for ln in lines[1:]] == [
        "n_samples", "n_classes", "cross_entropy",
        "accuracy", "top_5_accuracy", "nll", "brier", "ece",
    ]  # fmt: skip
    out = run_json(["--example"])
    z = np.load(out["scores"]).astype(np.float64)
    y = np.load(out["labels"])
    assert (out["n_samples"], out["n_classes"]) == (2000, 10)
    want = {
        "accuracy": M.accuracy(z, y),
        "top_5_accuracy": M.top_k_accuracy(z, y, k=5),
        "nll": M.nll(z, y),
        "brier": M.brier(z, y),
        "ece": M.ece(z, y),
    }
    for key, value in want.items():  # the file is float32: computed in float32
        assert out["metrics"][key] == pytest.approx(float(value), rel=1e-5, abs=1e-6)


def test_example_data_is_reproducible():
    """The bundled files are what arrayloss/data/make_example.py writes."""
    from importlib.resources import files as package_files

    from arrayloss.data import make_example

    data = package_files("arrayloss") / "data"
    logits, labels = make_example.make()
    np.testing.assert_array_equal(np.load(str(data / "example_logits.npy")), logits)
    np.testing.assert_array_equal(np.load(str(data / "example_labels.npy")), labels)
    names = (data / "example_classes.txt").read_text().split()
    assert tuple(names) == make_example.CLASSES
    total = sum(
        (data / n).stat().st_size for n in ("example_logits.npy", "example_labels.npy")
    )
    assert total < 300_000


@pytest.mark.parametrize("chunk", ["1", "7", "1000", str(N), None])
def test_streaming_equals_in_memory(files, chunk):
    z, y, w = files["z"], files["y"], files["w"]
    args = [
        files["z.npy"], files["y.npy"], "--weights", files["w.npy"],
        "--loss", "cross_entropy", "--loss", "cross_entropy:label_smoothing=0.2",
        "--metric", "accuracy", "--metric", "top_k_accuracy", "--top-k", "1,3",
        "--metric", "nll", "--metric", "brier", "--metric", "ece",
        "--metric", "ece:n_bins=9,strategy=quantile",
    ]  # fmt: skip
    if chunk is not None:
        args += ["--chunk-size", chunk]
    out = run_json(args)
    want = {
        "cross_entropy": al.cross_entropy(z, y, weights=w),
        "cross_entropy:label_smoothing=0.2": al.cross_entropy(
            z, y, weights=w, label_smoothing=0.2
        ),
        "accuracy": M.accuracy(z, y, weights=w),
        "top_1_accuracy": M.top_k_accuracy(z, y, k=1, weights=w),
        "top_3_accuracy": M.top_k_accuracy(z, y, k=3, weights=w),
        "nll": M.nll(z, y, weights=w),
        "brier": M.brier(z, y, weights=w),
        "ece": M.ece(z, y, weights=w),
        "ece:n_bins=9,strategy=quantile": M.ece(
            z, y, n_bins=9, strategy="quantile", weights=w
        ),
    }
    got = {**out["losses"], **out["metrics"]}
    assert list(got) == list(want)
    for key, value in want.items():
        assert _rel(got[key], float(value)) < 1e-12, key


def test_every_registered_loss_streams_exactly(files):
    """Each loss in the registry, with its defaults, chunked == in memory."""
    z, y, w = files["z"], files["y"], files["w"]
    args = [
        files["z.npy"],
        files["y.npy"],
        "--weights",
        files["w.npy"],
        "--chunk-size",
        "7",
    ]
    for name in al.LOSSES:
        args += ["--loss", name]
    out = run_json([*args, "--metric", "accuracy"])
    assert list(out["losses"]) == list(al.LOSSES)
    for name, info in al.LOSSES.items():
        want = float(info.value(z, y, weights=w))
        assert _rel(out["losses"][name], want) < 1e-12, name


def test_float32_streaming_is_chunk_independent(files):
    """float32 scores keep float32 per-sample values, but every sum over samples is
    float64 and exact across chunks, so the chunk size does not show."""
    path = str(files["dir"] / "z32.npy")
    np.save(path, files["z"].astype(np.float32))
    args = [path, files["y.npy"], "--weights", files["w.npy"], "--top-k", "1,3"]
    args += ["--metric", "top_k_accuracy", "--metric", "nll", "--metric", "brier"]
    args += ["--metric", "ece", "--metric", "ece:strategy=quantile"]
    base = run_json(args)
    for chunk in ("1", "7", "64"):
        out = run_json([*args, "--chunk-size", chunk])
        for group in ("losses", "metrics"):
            assert out[group] == pytest.approx(base[group], rel=1e-14, abs=0), chunk


def test_reduction_sum(files):
    z, y, w = files["z"], files["y"], files["w"]
    out = run_json(
        [
            files["z.npy"],
            files["y.npy"],
            "--reduction",
            "sum",
            "--weights",
            files["w.npy"],
        ]
    )
    want = float(al.cross_entropy(z, y, weights=w, reduction="sum"))
    assert _rel(out["losses"]["cross_entropy"], want) < 1e-12
    assert _rel(out["metrics"]["nll"], float(M.nll(z, y, weights=w))) < 1e-12


def test_every_format_gives_the_same_numbers(files):
    f = files
    runs = {
        "npy": [f["z.npy"], f["y.npy"]],
        "npz": [f["zy.npz"]],
        "npz-compressed+keys": [f["zyc.npz"], "--chunk-size", "33"],
        "npz labels file": [f["z.npy"], f["zy.npz"], "--labels-key", "labels"],
        "csv named labels": [
            f["named.csv"],
            "--label-column",
            "label",
            "--classes",
            ",".join(NAMES),
        ],
        "csv classes file": [
            f["named.csv"],
            "--label-column",
            "label",
            "--classes",
            f["classes.txt"],
        ],
        "csv label by number": [
            f["named.csv"],
            "--label-column",
            "6",
            "--classes",
            f["classes.txt"],
            "--header",
        ],
        "csv no header": [f["plain.csv"], f["y.txt"], "--chunk-size", "50"],
        "tsv": [f["z.tsv"], f["y.npy"]],
        "npy names": [f["z.npy"], f["ynames.npy"], "--classes", f["classes.txt"]],
    }
    base = run_json(runs.pop("npy"))
    for name, args in runs.items():
        out = run_json(args)
        for group in ("losses", "metrics"):
            assert out[group] == pytest.approx(base[group], rel=1e-15), name
    with open(f["named.csv"]) as fh:
        text = fh.read()
    out = run_json(
        ["-", "--label-column", "label", "--classes", ",".join(NAMES)], input=text
    )
    assert out["metrics"] == pytest.approx(base["metrics"], rel=1e-15)


@pytest.mark.parametrize("kind", ["probs", "logprobs"])
def test_probability_inputs(files, kind):
    z = files["z"]
    lp = (
        z
        - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True))
        - z.max(1, keepdims=True)
    )
    path = str(files["dir"] / f"{kind}.npy")
    np.save(path, np.exp(lp) if kind == "probs" else lp)
    base = run_json([files["z.npy"], files["y.npy"]])
    out = run_json([path, files["y.npy"], "--input", kind])
    for group in ("losses", "metrics"):
        for key, value in base[group].items():
            assert _rel(out[group][key], value) < 1e-12, key


@pytest.mark.parametrize(
    ("name", "fmt", "starts"),
    [
        ("eval.json", None, "{"),
        ("eval.JSON", None, "{"),
        ("eval.csv", None, "kind,name,value"),
        ("eval.txt", None, "kind "),
        ("eval", None, "kind "),
        ("eval.json", "json", "{"),
        ("eval.txt", "json", "{"),
    ],
)
def test_output_format_from_its_suffix(files, name, fmt, starts):
    """``-o eval.json`` is JSON when ``--format`` is not given (it wrote the
    default table under that name)."""
    dest = files["dir"] / name
    extra = [] if fmt is None else ["--format", fmt]
    invoke([files["z.npy"], files["y.npy"], "-o", str(dest), *extra])
    assert dest.read_text().startswith(starts)


@pytest.mark.parametrize("spec", ["", " "])
def test_empty_label_column_is_usage(files, spec):
    """``--label-column ''`` was read as no label column: 'no labels: give a
    LABELS file, ...'."""
    result = invoke([files["z.npy"], "--label-column", spec], exit_code=2)
    assert "--label-column" in result.stderr
    assert "needs a column name or number" in result.stderr


@pytest.mark.parametrize(
    ("name", "fmt"), [("eval.json", "table"), ("eval.csv", "json")]
)
def test_output_format_contradicting_its_suffix_is_usage(files, name, fmt):
    dest = files["dir"] / name
    result = invoke(
        [files["z.npy"], files["y.npy"], "-o", str(dest), "--format", fmt], exit_code=2
    )
    assert f"is {name.split('.')[1]} by its suffix, not {fmt}" in result.stderr
    assert not dest.exists()


@pytest.mark.parametrize("suffix", [".npy", ".csv"])
def test_per_sample_and_output_file(files, suffix):
    z, y = files["z"], files["y"]
    per = str(files["dir"] / f"per{suffix}")
    dest = str(files["dir"] / "out.json")
    result = invoke([
        files["z.npy"], files["y.npy"], "--chunk-size", "64", "--per-sample", per,
        "--loss", "cross_entropy", "--loss", "cross_entropy:label_smoothing=0.1",
        "--output", dest, "--format", "json",
    ])  # fmt: skip
    assert result.stdout == ""
    assert result.stderr == ""
    with open(dest) as fh:
        assert set(json.load(fh)["losses"]) == {
            "cross_entropy",
            "cross_entropy:label_smoothing=0.1",
        }
    if suffix == ".npy":
        got = np.load(per)
    else:
        with open(per) as fh:
            assert (
                fh.readline().strip() == "id,predicted,confidence,p_true,"
                "cross_entropy,cross_entropy:label_smoothing=0.1"
            )
        got = np.loadtxt(per, delimiter=",", skiprows=1)
    assert got.shape == (N, 6)
    np.testing.assert_array_equal(got[:, 0], np.arange(N))
    np.testing.assert_array_equal(got[:, 1], z.argmax(axis=1))
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(got[:, 2], p.max(axis=1), rtol=1e-13)
    np.testing.assert_allclose(got[:, 3], p[np.arange(N), y], rtol=1e-13)
    got = got[:, 4:]
    np.testing.assert_allclose(
        got[:, 0], al.cross_entropy(z, y, reduction="none"), rtol=1e-13
    )
    np.testing.assert_allclose(
        got[:, 1],
        al.cross_entropy(z, y, reduction="none", label_smoothing=0.1),
        rtol=1e-13,
    )
    assert not [n for n in os.listdir(files["dir"]) if n.endswith(".part")]


@pytest.mark.parametrize("fmt", ["table", "csv"])
def test_text_formats(files, fmt):
    out = invoke([files["z.npy"], files["y.npy"], "--format", fmt]).stdout
    if fmt == "csv":
        lines = out.splitlines()
        assert lines[0] == "kind,name,value"
        assert lines[1] == f"data,n_samples,{N}"
        values = {ln.split(",")[1]: float(ln.split(",")[2]) for ln in lines[3:]}
        # every digit of the exact tally (the in-memory float mean agrees to ~1e-15)
        assert values["nll"] == M.NLL().update(files["z"], files["y"]).result()
    else:
        assert "cross_entropy" in out
        assert out.endswith("\n")


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_other_backends_agree(files, backend):
    pytest.importorskip(backend)
    common = [files["z.npy"], files["y.npy"], "--weights", files["w.npy"]]
    common += ["--loss", "cross_entropy", "--loss", "smooth_topk_svm:k=2"]
    common += ["--chunk-size", "7"]
    base = run_json(common)
    out = run_json([*common, "--backend", backend])
    for group in ("losses", "metrics"):
        assert out[group].keys() == base[group].keys()
        for key, value in base[group].items():
            assert _rel(out[group][key], value) < 1e-12, key


def test_help_documents_exit_codes():
    out = invoke(["--help"]).stdout
    assert "Exit codes: 0 success; 1 bad data" in " ".join(out.split())
    assert "2 bad usage" in " ".join(out.split())


def test_progress_bar_only_on_a_terminal(monkeypatch, files):
    import io

    from arrayloss import io as alio
    from arrayloss.cli import _engine

    class Tty(io.StringIO):
        def isatty(self):
            return True

    for quiet, shown in [(False, True), (True, False)]:
        err = Tty()
        monkeypatch.setattr(sys, "stderr", err)
        with (
            alio.open_array(files["z.npy"], "scores") as s,
            alio.open_array(files["y.npy"], "labels") as y,
        ):
            chunks = list(
                _engine.with_progress(alio.iter_aligned(s, y, None, 100), s, quiet)
            )
        assert len(chunks) == 4
        assert ("eval" in err.getvalue()) is shown


# --------------------------------------------------------------------------- #
# Loss specs
# --------------------------------------------------------------------------- #


def test_parse_loss_spec_casts_to_the_default_type():
    assert parse_loss_spec("cross_entropy") == ("cross_entropy", {})
    name, params = parse_loss_spec(" cross_entropy : label_smoothing = 0 ")
    assert (name, params) == ("cross_entropy", {"label_smoothing": 0.0})
    assert isinstance(params["label_smoothing"], float)
    catalogue = {
        "toy": {"k": 5, "tau": 1.0, "hard": False, "method": "auto", "x": None}
    }
    name, params = parse_spec("toy:k=3,tau=2,hard=yes,method=fft,x=4.5", catalogue)
    assert params == {"k": 3, "tau": 2.0, "hard": True, "method": "fft", "x": 4.5}
    assert [type(v) for v in params.values()] == [int, float, bool, str, float]
    assert parse_spec("toy:x=none", catalogue)[1] == {"x": None}


def test_every_registered_loss_parses_with_its_defaults():
    for name, info in al.LOSSES.items():
        assert parse_loss_spec(name) == (name, {})
        if info.params:
            spec = name + ":" + ",".join(f"{k}={v}" for k, v in info.params.items())
            _, params = parse_loss_spec(spec)
            assert params == dict(info.params)
            assert [type(v) for v in params.values()] == [
                type(v) for v in info.params.values()
            ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("crossentropy", r"unknown loss 'crossentropy'; did you mean 'cross_entropy'"),
        ("zzz", r"unknown loss 'zzz' \(known: .*cross_entropy"),
        ("cross_entropy:", r"nothing after ':'"),
        ("cross_entropy:label_smoothing", r"'label_smoothing' is not key=value"),
        ("cross_entropy:label_smoothing=", r"is not key=value"),
        (
            "cross_entropy:smoothing=0.1",
            r"loss 'cross_entropy' has no parameter 'smoothing' \(parameters: label_smoothing\)",
        ),
        (
            "cross_entropy:label_smoothing=abc",
            r"`label_smoothing` must be a number \(got 'abc'\)",
        ),
        ("cross_entropy:label_smoothing=nan", r"must be a number"),
        ("cross_entropy:label_smoothing=0.1,label_smoothing=0.2", r"given twice"),
    ],
)
def test_parse_loss_spec_errors(spec, message):
    with pytest.raises(click.BadParameter, match=message):
        parse_loss_spec(spec)


def test_int_and_bool_casts():
    catalogue = {"toy": {"k": 5, "hard": False}}
    with pytest.raises(
        click.BadParameter, match=r"`k` must be an integer \(got '2.5'\)"
    ):
        parse_spec("toy:k=2.5", catalogue)
    with pytest.raises(
        click.BadParameter, match=r"`hard` must be true or false \(got 'maybe'\)"
    ):
        parse_spec("toy:hard=maybe", catalogue)


def test_check_loss_params():
    check_loss_params("cross_entropy", {"label_smoothing": 0.5}, 4)
    with pytest.raises(
        click.BadParameter,
        match=r"'cross_entropy:label_smoothing=2.0' with 4 classes: `label_smoothing` must be",
    ):
        check_loss_params("cross_entropy", {"label_smoothing": 2.0}, 4)


# --------------------------------------------------------------------------- #
# Errors: exit code, one line on stderr, no traceback, no output left behind
# --------------------------------------------------------------------------- #


def _setup(case, f):
    """Write the bad file a case needs; return the arguments."""
    d = f["dir"]
    z, y = f["z"], f["y"]
    if case == "missing scores":
        return [str(d / "nope.npy"), f["y.npy"]]
    if case == "missing labels":
        return [f["z.npy"], str(d / "nope.npy")]
    if case == "truncated npy":
        data = (d / "z.npy").read_bytes()
        (d / "t.npy").write_bytes(data[: len(data) // 2])
        return [str(d / "t.npy"), f["y.npy"]]
    if case == "not npy":
        (d / "bad.npy").write_text("hello")
        return [str(d / "bad.npy"), f["y.npy"]]
    if case == "ragged csv":
        text = (d / "plain.csv").read_text().splitlines()
        text[200] = text[200].rsplit(",", 1)[0]
        (d / "r.csv").write_text("\n".join(text) + "\n")
        return [str(d / "r.csv"), f["y.npy"]]
    if case == "not a number":
        text = (d / "plain.csv").read_text().splitlines()
        text[9] = "x" + text[9][text[9].index(",") :]
        (d / "n.csv").write_text("\n".join(text) + "\n")
        return [str(d / "n.csv"), f["y.npy"], "--no-header"]
    if case == "row counts":
        np.save(d / "y399.npy", y[:-1])
        return [f["z.npy"], str(d / "y399.npy")]
    if case == "row counts (text)":
        (d / "y401.txt").write_text("\n".join(map(str, [*y, 0])) + "\n")
        return [f["z.npy"], str(d / "y401.txt")]
    if case == "label out of range":
        bad = y.copy()
        bad[123] = C
        np.save(d / "yb.npy", bad)
        return [f["z.npy"], str(d / "yb.npy")]
    if case == "unknown class name":
        return [f["z.npy"], f["ynames.npy"], "--classes", "a,b,c,d,e,f"]
    if case == "names without classes":
        return [f["z.npy"], f["ynames.npy"]]
    if case in ("nan", "inf"):
        bad = z.copy()
        bad[77, 3] = np.nan if case == "nan" else -np.inf
        np.save(d / "zb.npy", bad)
        return [str(d / "zb.npy"), f["y.npy"]]
    if case == "not probabilities":
        return [f["z.npy"], f["y.npy"], "--input", "probs"]
    if case == "negative weight":
        w = f["w"].copy()
        w[5] = -1.0
        np.save(d / "wb.npy", w)
        return [f["z.npy"], f["y.npy"], "--weights", str(d / "wb.npy")]
    if case == "class count":
        return [f["z.npy"], f["y.npy"], "--classes", "a,b"]
    if case == "npz key":
        return [f["zy.npz"], "--scores-key", "nope"]
    if case == "output dir":
        return [f["z.npy"], f["y.npy"], "--output", str(d / "no" / "out.json")]
    return {
        "unknown loss": [f["z.npy"], f["y.npy"], "--loss", "crossentropy"],
        "unknown parameter": [f["z.npy"], f["y.npy"], "--loss", "cross_entropy:k=5"],
        "malformed parameter": [
            f["z.npy"],
            f["y.npy"],
            "--loss",
            "cross_entropy:label_smoothing",
        ],
        "parameter out of range": [
            f["z.npy"],
            f["y.npy"],
            "--loss",
            "cross_entropy:label_smoothing=3",
        ],
        "unknown metric": [f["z.npy"], f["y.npy"], "--metric", "f1"],
        "bad metric option": [f["z.npy"], f["y.npy"], "--metric", "ece:n_bins=0"],
        "bad top-k": [f["z.npy"], f["y.npy"], "--top-k", "1,x"],
        "example and files": ["--example", f["z.npy"]],
        "no scores": [],
        "no labels": [f["z.npy"]],
        "unknown option": [f["z.npy"], f["y.npy"], "--colour"],
        "bad input kind": [f["z.npy"], f["y.npy"], "--input", "odds"],
        "duplicate classes": [f["z.npy"], f["y.npy"], "--classes", "a,a,b,c,d,e"],
        # a mistyped file name was one class name: "--classes lists 1 names"
        "classes file missing": [f["z.npy"], f["y.npy"], "--classes", "classes.txt"],
        "classes directory": [f["z.npy"], f["y.npy"], "--classes", str(f["dir"])],
    }[case]


ERRORS = [
    (
        "missing scores",
        1,
        r"cannot read SCORES '.*nope.npy': No such file or directory",
    ),
    (
        "missing labels",
        1,
        r"cannot read LABELS '.*nope.npy': No such file or directory",
    ),
    (
        "truncated npy",
        1,
        r"SCORES '.*t.npy' is truncated: its header says shape \(400, 6\)",
    ),
    ("not npy", 1, r"SCORES '.*bad.npy' is not a valid .npy file"),
    (
        "ragged csv",
        1,
        r"SCORES '.*r.csv' line 201: expected 6 fields, found 5 \(ragged rows\)",
    ),
    ("not a number", 1, r"SCORES '.*n.csv' line 10, column 0: 'x' is not a number"),
    ("row counts", 1, r"SCORES '.*z.npy' has 400 rows but LABELS '.*y399.npy' has 399"),
    (
        "row counts (text)",
        1,
        r"LABELS '.*y401.txt' has more rows than SCORES '.*z.npy' \(400\)",
    ),
    (
        "label out of range",
        1,
        r"LABELS '.*yb.npy' row 123: label 6 is out of range for 6 classes \(0 to 5\)",
    ),
    (
        "unknown class name",
        1,
        r"LABELS '.*ynames.npy' row \d+: '[a-z]+' is not one of the --classes",
    ),
    (
        "names without classes",
        1,
        r"LABELS '.*ynames.npy' row 0: '[a-z]+' is not a class index; for class names, give --classes",
    ),
    ("nan", 1, r"SCORES row 77 contains NaN \(--input logits\)"),
    ("inf", 1, r"SCORES row 77 contains an infinite value \(--input logits\)"),
    (
        "not probabilities",
        1,
        r"SCORES row 0 has a negative probability \(-[0-9.]+\) \(--input probs\)",
    ),
    (
        "negative weight",
        1,
        r"--weights '.*wb.npy' row 5: weight -1.0 is not finite and non-negative",
    ),
    ("class count", 1, r"--classes lists 2 names but SCORES '.*z.npy' has 6 columns"),
    (
        "npz key",
        1,
        r"SCORES '.*zy.npz' has no array 'nope' \(it has 'logits', 'labels'\)",
    ),
    ("output dir", 1, r"cannot write --output '.*out.json': No such file or directory"),
    (
        "unknown loss",
        2,
        r"Invalid value for '--loss': unknown loss 'crossentropy'; did you mean 'cross_entropy'",
    ),
    (
        "unknown parameter",
        2,
        r"'cross_entropy:k=5': loss 'cross_entropy' has no parameter 'k'",
    ),
    ("malformed parameter", 2, r"'label_smoothing' is not key=value"),
    (
        "parameter out of range",
        2,
        r"Invalid value for '--loss': 'cross_entropy:label_smoothing=3.0' with 6 classes: `label_smoothing` must be",
    ),
    (
        "unknown metric",
        2,
        r"Invalid value for '--metric': unknown metric 'f1' \(known: accuracy, brier, ece, mce, nll, rmsce, top_k_accuracy\)",
    ),
    (
        "bad metric option",
        2,
        r"Invalid value for '--metric': 'ece:n_bins=0': `n_bins` must be an integer >= 1",
    ),
    (
        "bad top-k",
        2,
        r"Invalid value for '--top-k': must be a comma-separated list of integers \(got '1,x'\)",
    ),
    ("example and files", 2, r"--example takes no SCORES or LABELS"),
    ("no scores", 2, r"missing SCORES \(or use --example\)"),
    ("no labels", 2, r"no labels: give a LABELS file, --label-column for a CSV SCORES"),
    ("unknown option", 2, r"No such option '--colour'"),
    (
        "bad input kind",
        2,
        r"Invalid value for '--input': 'odds' is not one of 'logits', 'probs', 'logprobs'",
    ),
    (
        "duplicate classes",
        2,
        r"Invalid value for '--classes': class 'a' is listed twice",
    ),
    (
        "classes file missing",
        2,
        r"Invalid value for '--classes': 'classes.txt' is no file, and one class "
        r"name cannot name two or more score columns: give the names as A,B,\.\.\. "
        r"or a file of one name a line$",
    ),
    (
        "classes directory",
        2,
        r"Invalid value for '--classes': '.*' is a directory, and one class name",
    ),
]


@pytest.mark.parametrize(
    ("case", "code", "message"), ERRORS, ids=[e[0] for e in ERRORS]
)
def test_errors(files, case, code, message):
    import re

    args = _setup(case, files)
    before = set(os.listdir(files["dir"]))
    extra = []
    if case not in ("no scores", "output dir"):
        extra = [
            "--output", str(files["dir"] / "result.json"),
            "--per-sample", str(files["dir"] / "per.npy"),
        ]  # fmt: skip
    result = invoke([*args, *extra], exit_code=code)
    assert result.stdout == ""
    err = result.stderr
    assert "Traceback" not in err
    error_lines = [ln for ln in err.splitlines() if ln.startswith("Error: ")]
    assert len(error_lines) == 1, err
    if code == 1:
        assert err == error_lines[0] + "\n"  # the whole of stderr is one line
    assert re.search(message, error_lines[0]), error_lines[0]
    assert set(os.listdir(files["dir"])) == before  # no output, no temp file


def test_cupy_backend_missing_is_a_usage_error(files):
    try:
        import cupy  # noqa: F401
    except ImportError:
        result = invoke(
            [files["z.npy"], files["y.npy"], "--backend", "cupy"], exit_code=2
        )
        assert "Invalid value for '--backend': CuPy is not installed" in result.stderr
    else:  # pragma: no cover - only on GPU machines
        pytest.skip("cupy is installed")


def test_internal_errors_are_one_line(monkeypatch, files):
    from arrayloss.cli import _eval

    def boom(*_args, **_kwargs):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(_eval, "render", boom)
    result = invoke([files["z.npy"], files["y.npy"]], exit_code=1)
    assert (
        result.stderr
        == "Error: internal error (RuntimeError: boom second line); please report it\n"
    )


# --------------------------------------------------------------------------- #
# As a subprocess
# --------------------------------------------------------------------------- #


def test_subprocess(files):
    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "arrayloss", "eval", *args],
            capture_output=True, text=True, check=False,
        )  # fmt: skip

    ok = run("--example", "--format", "json", "--metric", "accuracy")
    assert ok.returncode == 0, ok.stderr
    assert ok.stderr == ""
    assert json.loads(ok.stdout)["metrics"]["accuracy"] == pytest.approx(0.804)
    missing = run(str(files["dir"] / "nope.npy"), files["y.npy"])
    assert missing.returncode == 1
    assert missing.stdout == ""
    assert missing.stderr.startswith("Error: cannot read SCORES")
    assert missing.stderr.count("\n") == 1
    usage = run(files["z.npy"], files["y.npy"], "--loss", "nope")
    assert usage.returncode == 2
    assert "Traceback" not in usage.stderr
    assert usage.stderr.splitlines()[-1].startswith(
        "Error: Invalid value for '--loss': unknown loss 'nope'"
    )

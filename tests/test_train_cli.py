"""``arrayloss train`` and ``arrayloss study`` through click's CliRunner."""

from __future__ import annotations

import csv
import importlib.util
import json
import re

import click
import numpy as np
import pytest
from click.testing import CliRunner

from arrayloss import metrics, mlp
from arrayloss.cli import main

HAS_MPL = importlib.util.find_spec("matplotlib") is not None


def invoke(args: list[str], exit_code: int = 0):
    """Run the CLI; on an unexpected exit code fail with everything it printed."""
    result = CliRunner().invoke(main, args, catch_exceptions=True)
    if result.exit_code != exit_code:
        raise AssertionError(
            f"arrayloss {' '.join(args)} exited {result.exit_code}, expected {exit_code}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}\n"
            f"exception: {result.exception!r}"
        )
    return result


def _metric(stdout: str, row: str) -> tuple[float, float]:
    m = re.search(rf"^{re.escape(row)}\s+(\S+)\s+(\S+)$", stdout, re.MULTILINE)
    assert m, stdout
    return float(m[1]), float(m[2])


TINY = ["--epochs", "2", "--hidden", "16", "--batch-size", "32", "-q"]


def test_train_digits_saves_consistent_predictions(tmp_path):
    out = tmp_path / "run"
    r = invoke(["train", *TINY, "--label-noise", "0.1", "--save", str(out)])
    assert "digits: 10 classes; 1079 train, 359 validation, 359 test" in r.stdout
    assert "108 training labels flipped" in r.stdout
    assert r.stderr == ""  # no progress bar without a terminal
    logits = np.load(out / "test_logits.npy")
    labels = np.load(out / "test_labels.npy")
    assert logits.shape == (359, 10)
    assert labels.shape == (359,)
    # The saved test logits reproduce the printed test metrics.
    acc, nll = _metric(r.stdout, "accuracy")[1], _metric(r.stdout, "nll")[1]
    top5, ece = _metric(r.stdout, "top-5 acc")[1], _metric(r.stdout, "ece")[1]
    assert float(metrics.accuracy(logits, labels)) == pytest.approx(acc, abs=5e-5)
    assert float(metrics.nll(logits, labels)) == pytest.approx(nll, abs=5e-5)
    assert float(metrics.top_k_accuracy(logits, labels, k=5)) == pytest.approx(
        top5, abs=5e-5
    )
    assert float(metrics.ece(logits, labels)) == pytest.approx(ece, abs=5e-5)
    # ... and so does the saved model.
    net, meta = mlp.load(out / "model.npz")
    assert meta["loss"] == "cross_entropy"
    assert meta["label_noise"] == 0.1
    from arrayloss.datasets import load_digits, split

    s = split(load_digits(), seed=0)
    np.testing.assert_array_equal(mlp.to_numpy(mlp.predict(net, s.x_test)), logits)
    np.testing.assert_array_equal(s.y_test, labels)
    # `arrayloss eval` reads the saved predictions and agrees.
    files = [str(out / "test_logits.npy"), str(out / "test_labels.npy")]
    ev = json.loads(invoke(["eval", *files, "--format", "json"]).stdout)
    assert ev["n_samples"] == 359
    assert ev["metrics"]["accuracy"] == pytest.approx(acc, abs=5e-5)
    assert ev["metrics"]["nll"] == pytest.approx(nll, abs=5e-5)
    assert ev["metrics"]["top_5_accuracy"] == pytest.approx(top5, abs=5e-5)
    assert ev["metrics"]["ece"] == pytest.approx(ece, abs=5e-5)
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["metrics"]["test"]["accuracy"] == pytest.approx(acc, abs=5e-5)
    assert len(summary["history"]) == 2


def test_train_is_deterministic():
    a = invoke(["train", *TINY, "--seed", "3", "--optimizer", "adam", "--lr", "0.01"])
    b = invoke(["train", *TINY, "--seed", "3", "--optimizer", "adam", "--lr", "0.01"])
    strip = re.compile(r"\(\d+\.\d s\)")
    assert strip.sub("", a.stdout) == strip.sub("", b.stdout)


def test_train_reaches_090_on_digits():
    r = invoke(["train", "--epochs", "6", "--hidden", "64", "-q"])
    assert _metric(r.stdout, "accuracy")[1] >= 0.9


def test_train_loss_with_parameters_and_synthetic():
    r = invoke(
        ["train", "--data", "synthetic", "--loss", "cross_entropy:label_smoothing=0.1",
         "--epochs", "1", "--hidden", "none", "--top-k", "3", "-q"]
    )  # fmt: skip
    assert "loss cross_entropy:label_smoothing=0.1" in r.stdout
    assert "model      32-100 relu" in r.stdout
    assert "top-3 acc" in r.stdout


def test_train_npz_and_mnist_files(tmp_path):
    rng = np.random.default_rng(0)
    p = tmp_path / "d.npz"
    np.savez(p, x=rng.normal(size=(60, 5)), y=np.arange(60) % 3)
    r = invoke(["train", "--data", str(p), *TINY])
    assert "d.npz: 3 classes; 36 train, 12 validation, 12 test" in r.stdout


@pytest.mark.skipif(not HAS_MPL, reason="matplotlib not installed")
def test_train_plot(tmp_path):
    png = tmp_path / "curves.png"
    invoke(["train", *TINY, "--plot", str(png)])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--data", "mnist"], 2, "'mnist' is not 'digits', 'synthetic', 'mnist1d' or"),
        (["--label-noise", "1.0"], 2, "0<=x<1"),
        (["--label-noise", "-0.1"], 2, "0<=x<1"),
        (["--hidden", "0"], 2, "hidden layer widths must be >= 1"),
        (["--hidden", "12,x"], 2, "integers separated by commas"),
        (["--loss", "no_such_loss"], 2, "no_such_loss"),
        (["--loss", "cross_entropy:label_smoothing=3"], 2, "label_smoothing"),
        (["--epochs", "0"], 2, "--epochs"),
        (["--optimizer", "lbfgs"], 2, "--optimizer"),
        (["--lr", "nan"], 2, "'nan' is not a finite number"),
        (["--weight-decay", "nan"], 2, "'nan' is not a finite number"),
        (["--label-noise", "nan"], 2, "'nan' is not a finite number"),
        (["--lr", "inf"], 2, "'inf' is not a finite number"),
        (["--seed", "-1"], 2, "--seed"),
        (["--plot", "curves.xyz"], 2, "cannot tell the image type"),
        (["--plot", "curves"], 2, "no extension"),
    ],
)
def test_train_usage_errors(args, code, message):
    r = invoke(["train", *args], exit_code=code)
    assert message in r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    error_lines = [line for line in r.stderr.splitlines() if line.startswith("Error")]
    assert len(error_lines) == 1


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("train-images-idx3-ubyte", b"not an idx file", "not an IDX file"),
        ("x.npz", b"PK\x03\x04 truncated zip", "not a readable .npz"),
    ],
)
def test_train_data_errors(tmp_path, name, content, message):
    p = tmp_path / name
    p.write_bytes(content)
    r = invoke(["train", "--data", str(p), *TINY], exit_code=1)
    assert r.stderr.startswith("Error: ")
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr


def test_train_plot_without_matplotlib(monkeypatch, tmp_path):
    import importlib.util as util

    real = util.find_spec
    monkeypatch.setattr(
        util, "find_spec", lambda n, *a: None if n == "matplotlib" else real(n, *a)
    )
    r = invoke(["train", *TINY, "--plot", str(tmp_path / "c.png")], exit_code=1)
    assert "pip install 'arrayloss[plot]'" in r.stderr
    r = invoke(["study", "--data", "digits", "--out", str(tmp_path / "s")], exit_code=1)
    assert "--no-plot" in r.stderr


@pytest.mark.skipif(
    importlib.util.find_spec("cupy") is not None, reason="cupy installed"
)
def test_train_cupy_missing():
    r = invoke(["train", *TINY, "--backend", "cupy"], exit_code=2)
    assert "cupy is not installed" in r.stderr


def test_train_divergence_is_a_data_error():
    r = invoke(["train", *TINY, "--lr", "1e20", "--hidden", "8"], exit_code=1)
    assert "diverged" in r.stderr
    assert "Traceback" not in r.stderr


def test_train_adam_huge_lr_does_not_succeed():
    """Issue 11: Adam at --lr 1e10 used to "succeed" with a test NLL of 2.8e21."""
    r = invoke(["train", *TINY, "--optimizer", "adam", "--lr", "1e10"], exit_code=1)
    line = r.stderr.strip()
    assert line.startswith("Error: training diverged in epoch 1 (")
    assert line.endswith("try a smaller --lr than 1e+10")
    assert len(r.stderr.strip().splitlines()) == 1
    assert "nll" not in r.stdout


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"n_classes": 2.5}, "n_classes must be one integer"),
        ({"n_classes": np.array([3, 4])}, "n_classes must be one integer"),
        ({"n": 2}, "too few samples to split"),
    ],
)
@pytest.mark.parametrize("command", ["train", "study"])
def test_malformed_npz_is_one_line(tmp_path, command, arrays, message):
    arrays = dict(arrays)  # the parameters are shared between the commands
    n = arrays.pop("n", 60)
    p = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    np.savez(p, x=rng.normal(size=(n, 5)), y=np.arange(n) % 3, **arrays)
    study = ["--loss", "cross_entropy", "--no-plot", "--out", str(tmp_path / "s")]
    args = (
        ["train", "--data", str(p), *TINY]
        if command == "train"
        else [*STUDY, "--data", str(p), *study]
    )
    r = invoke(args, exit_code=1)
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr


def test_train_save_set_is_all_or_none(tmp_path, monkeypatch):
    """A full disk while writing the third file leaves the old set whole."""
    import errno

    from arrayloss.cli import _train

    out = tmp_path / "run"
    invoke(["train", *TINY, "--save", str(out)])
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    opened = []

    def full(path: str):
        opened.append(path)
        if len(opened) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return open(path, "wb")

    monkeypatch.setattr(_train, "_open_output", full)
    r = invoke(["train", *TINY, "--seed", "1", "--save", str(out)], exit_code=1)
    assert "No space left on device" in r.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


# -- study (more in test_study_cli.py) ------------------------------------------------


STUDY = ["study", "--data", "digits", "--epochs", "2", "--max-epochs", "2", "--hidden", "16",
         "--noise", "0,0.5", "--seeds", "2", "--lr-grid", "0.001,0.01"]  # fmt: skip


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_study_tiny(tmp_path, jobs):
    out = tmp_path / "study"
    extra = [] if HAS_MPL else ["--no-plot"]
    r = invoke([*STUDY, "--loss", "cross_entropy", "--loss", "cross_entropy:label_smoothing=0.2",
                "--jobs", jobs, "--out", str(out), *extra])  # fmt: skip
    assert "16 runs (tuning included)" in r.stdout  # 2 losses x 2 rates x (2 + 2)
    assert "| cross_entropy:label_smoothing=0.2 |" in r.stdout
    assert "16 runs (8 tuning, 8 reported); estimated" in r.stderr
    with open(out / "runs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 16
    report = [r for r in rows if r["phase"] == "report"]
    assert {(r["loss"], r["noise"], r["seed"]) for r in report} == {
        (loss, noise, seed)
        for loss in ("cross_entropy", "cross_entropy:label_smoothing=0.2")
        for noise in ("0", "0.5")
        for seed in ("0", "1")
    }
    assert {r["seed"] for r in rows if r["phase"] == "tune"} == {"1000"}
    for r in rows:
        for key in ("test_accuracy_final", "test_accuracy_es", "val_accuracy_best"):
            assert 0 <= float(r[key]) <= 1
        assert float(r["val_accuracy_best"]) >= float(r["val_accuracy_final"])
        assert 1 <= int(r["best_epoch"]) <= 2
    page = (out / "summary.md").read_text()
    assert page.startswith("# Loss study")
    assert "**Paired difference to cross-entropy, test accuracy**" in page
    meta = json.loads((out / "study.json").read_text())
    assert meta["runs"] == 16
    assert meta["lr_grid"] == [0.001, 0.01]
    assert meta["data_sets"]["digits"]["classes"] == 10
    if HAS_MPL:
        for name in ("accuracy_vs_noise.png", "paired_differences.png", "curves.png"):
            assert (out / name).read_bytes()[:4] == b"\x89PNG"


def test_study_runs_match_train():
    """A study run and `train` with the same settings give the same test accuracy
    (the study's noisy validation part changes what is selected, not the training)."""
    from arrayloss.cli._study import run_one

    row = run_one(
        {"data": "digits", "loss": "cross_entropy", "loss_params": {}, "label": "ce",
         "noise": 0.2, "noise_kind": "symmetric", "phase": "report", "seed": 1,
         "hidden": (16,), "epochs": 2, "batch_size": 32, "optimizer": "sgd",
         "lr": None, "weight_decay": 0.0, "top_k": 5}
    )  # fmt: skip
    r = invoke(["train", *TINY, "--label-noise", "0.2", "--seed", "1"])
    assert row["test_accuracy_final"] == pytest.approx(
        _metric(r.stdout, "accuracy")[1], abs=5e-5
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--loss", "nonexistent"], "nonexistent"),
        (["--noise", "0,1.2"], "noise rates must lie in [0, 1)"),
        (["--noise", "0,abc"], "comma-separated numbers"),
        (["--data", "nowhere"], "is not 'digits'"),
        (["--jobs", "0"], "--jobs"),
        (["--lr-grid", "nan"], "learning rates must be finite and > 0"),
        (["--lr-grid", "0.1,0"], "learning rates must be finite and > 0"),
        (["--grid", "huge"], "--grid"),
        (["--weight-decay", "nan"], "'nan' is not a finite number"),
    ],
)
def test_study_usage_errors(tmp_path, args, message):
    r = invoke(["study", "--out", str(tmp_path / "s"), *args], exit_code=2)
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_study_without_matplotlib_says_so_after_usage_checks(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "matplotlib" else real(name, *a),
    )
    out = ["study", "--out", str(tmp_path / "s")]
    r = invoke([*out, "--data", "nowhere"], exit_code=2)  # usage first
    assert "is not 'digits'" in r.stderr
    r = invoke([*out, "--data", "digits"], exit_code=1)
    assert "the plot needs matplotlib" in r.stderr
    assert "--no-plot" in r.stderr
    assert not (tmp_path / "s").exists()  # nothing ran


def test_choice_options_default_to_their_first_choice_and_refuse_others():
    import click

    from arrayloss.cli._options import choice_option

    @click.command()
    @choice_option("--dtype", choices=("float32", "float64"))
    @choice_option("--mode", choices=("a", "b"), default="b", help="A mode.")
    def cmd(dtype: str, mode: str) -> None:
        click.echo(f"{dtype} {mode}")

    runner = CliRunner()
    assert runner.invoke(cmd, []).output == "float32 b\n"
    assert runner.invoke(cmd, ["--dtype", "float64"]).output == "float64 b\n"
    bad = runner.invoke(cmd, ["--dtype", "float16"])
    assert bad.exit_code == 2
    assert "float16" in bad.output
    shown = runner.invoke(cmd, ["--help"]).output
    assert "[default: float32]" in shown
    assert "A mode." in shown
    assert "[default: b]" in shown


def test_help_says_what_each_option_takes_by_default():
    """train's --help named digits, synthetic and a path but not mnist1d, which
    --data takes, and --top-k did not say it is clipped to the classes; study's
    --noise was the one value option of study whose help gave no default (the
    --grid preset's)."""
    from arrayloss.cli._study import study
    from arrayloss.cli._train import DATA_NAMES

    for command in ("train", "study"):
        text = " ".join(invoke([command, "--help"]).stdout.split())
        assert all(
            name in text.split("--data ", 1)[1].split()[0] for name in DATA_NAMES
        )
        # top_k_accuracy takes at most the classes, as the reports say
        assert "top-k accuracy, at most the number of classes (a larger k is" in text
    ctx = click.Context(study)
    for param in study.params:
        if isinstance(param, click.Option) and not param.is_flag:
            record = param.get_help_record(ctx)
            assert record is not None
            assert "default:" in record[1], param.name

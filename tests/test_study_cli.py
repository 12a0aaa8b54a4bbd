"""``arrayloss study``, second edition (issue 17): selection on a noisy validation
part, the learning-rate grid, paired statistics and their verdicts, MNIST-1D.

Tiny grids only (digits, a few hidden units, one or two epochs)."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import random
import shlex
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from arrayloss import datasets as ds
from arrayloss import mlp
from arrayloss._errors import DataError, UsageError
from arrayloss.cli import _study, main
from arrayloss.cli import _study_report as report
from arrayloss.cli._train import VAL_NOISE_SEED, data_errors, run

HAS_MNIST1D = importlib.util.find_spec("mnist1d") is not None
needs_mnist1d = pytest.mark.skipif(not HAS_MNIST1D, reason="mnist1d not installed")


def invoke(args: list[str], exit_code: int = 0):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=True)
    assert result.exit_code == exit_code, (
        f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}\n"
        f"{result.exception!r}"
    )
    assert "Traceback" not in result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def digits_split():
    return ds.split(ds.load_digits(), seed=2)


# -- one run ---------------------------------------------------------------------------


def _run(s, **kw):
    args = {"loss": "cross_entropy", "loss_params": {}, "hidden": (8,), "epochs": 2,
            "batch_size": 64, "optimizer": "adam", "lr": 1e-2, "label_noise": 0.4,
            "seed": 2}  # fmt: skip
    return run(s, **{**args, **kw})


def test_noisy_validation_flips_the_validation_labels(digits_split):
    s = digits_split
    res = _run(s, noisy_validation=True, track_test=True)
    noisy = ds.add_label_noise(s.y_val, 0.4, n_classes=10, seed=VAL_NOISE_SEED + 2)
    assert int(np.sum(noisy != s.y_val)) == round(0.4 * s.y_val.size)
    last = res.history[-1]
    assert last["val_accuracy"] == mlp.evaluate(res.params, s.x_val, noisy)["accuracy"]
    clean = mlp.evaluate(res.params, s.x_val, s.y_val)["accuracy"]
    assert last["val_accuracy"] != clean  # 40 % of the labels moved
    # track_test: the last epoch's test numbers are the final test metrics.
    assert last["test_accuracy"] == res.metrics["test"]["accuracy"]
    assert last["test_top_k_accuracy"] == res.metrics["test"]["top_k_accuracy"]


def test_validation_stays_clean_by_default(digits_split):
    s = digits_split
    res = _run(s)
    last = res.history[-1]
    assert (
        last["val_accuracy"] == mlp.evaluate(res.params, s.x_val, s.y_val)["accuracy"]
    )
    assert "test_accuracy" not in last


def test_early_stopping_reads_the_first_best_noisy_epoch():
    task = {"data": "digits", "loss": "cross_entropy", "loss_params": {},
            "label": "cross_entropy", "noise": 0.5, "noise_kind": "symmetric",
            "phase": "report", "seed": 0, "hidden": (4,), "epochs": 4,
            "patience": None, "max_epochs": None, "batch_size": 64,
            "optimizer": "adam", "lr": 0.05, "weight_decay": 0.0,
            "top_k": 5}  # fmt: skip
    row = _study.run_one(task)
    val = [v for v, _ in row["curve"]]
    assert len(val) == 4
    assert row["epochs"] == 4
    assert row["best_epoch"] == val.index(max(val)) + 1
    assert row["val_accuracy_best"] == max(val)
    assert row["test_accuracy_es"] == row["curve"][row["best_epoch"] - 1][1]
    assert row["test_accuracy_final"] == row["curve"][-1][1]


def _first_best(history) -> int:
    val = [h["val_accuracy"] for h in history]
    return val.index(max(val)) + 1


_CAP = 12


@pytest.fixture(scope="module")
def fixed_run(digits_split):
    return _run(digits_split, epochs=_CAP, noisy_validation=True, track_test=True)


@pytest.mark.parametrize(("minimum", "patience"), [(3, 2), (1, 1), (6, 30)])
def test_patience_stops_at_the_first_plateau(
    digits_split, fixed_run, minimum, patience
):
    """Training ends at the first epoch e >= the minimum with e - b >= patience (b
    the first best epoch), or at the cap; its epochs are those of a fixed run."""
    cap, fixed = _CAP, fixed_run
    res = _run(digits_split, epochs=minimum, patience=patience, max_epochs=cap,
               noisy_validation=True, track_test=True)  # fmt: skip
    val = [h["val_accuracy"] for h in fixed.history]
    stop = next(
        (e for e in range(minimum, cap + 1)
         if e - (val[:e].index(max(val[:e])) + 1) >= patience),
        cap,
    )  # fmt: skip
    assert len(res.history) == stop
    assert res.history == fixed.history[:stop]
    if stop < cap:
        assert stop == max(minimum, _first_best(res.history) + patience)
    # The model kept is the one of the last epoch trained.
    assert res.metrics["test"]["accuracy"] == res.history[-1]["test_accuracy"]


# -- the learning-rate grid --------------------------------------------------------------


def _row(lr: float, score: float, error: str = "") -> dict:
    return {"lr": lr, "val_accuracy_best": score, "error": error}


def test_plan_runs_the_seeds_at_the_best_tuning_rate():
    plan = _study._Plan([{"data": "d", "label": "ce"}], [1e-3, 1e-2, 1e-1], 2, 77)
    tasks = plan.start()
    assert [(t["phase"], t["seed"], t["lr"]) for t in tasks] == [
        ("tune", 77, 1e-3), ("tune", 77, 1e-2), ("tune", 77, 1e-1)
    ]  # fmt: skip
    assert plan.total == 5
    assert plan.done(tasks[0], _row(1e-3, 0.5)) == []
    assert plan.done(tasks[2], _row(1e-1, 0.9, error="diverged")) == []  # never chosen
    report_tasks = plan.done(tasks[1], _row(1e-2, 0.6))
    assert [(t["phase"], t["seed"], t["lr"]) for t in report_tasks] == [
        ("report", 0, 1e-2), ("report", 1, 1e-2)
    ]  # fmt: skip


def test_plan_ties_go_to_the_smaller_rate_and_one_rate_skips_tuning():
    plan = _study._Plan([{"data": "d", "label": "ce"}], [1e-3, 1e-2], 1, 0)
    t = plan.start()
    plan.done(t[1], _row(1e-2, 0.7))
    assert plan.done(t[0], _row(1e-3, 0.7))[0]["lr"] == 1e-3
    single = _study._Plan([{"data": "d", "label": "ce"}], [3e-3], 2, 0)
    assert [(t["phase"], t["lr"]) for t in single.start()] == [("report", 3e-3)] * 2
    assert single.total == 2


# -- paired statistics and the verdict rule ------------------------------------------------


@settings(max_examples=8, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=2, max_size=8
    ).filter(lambda pairs: len({round(a - b, 9) for a, b in pairs}) > 1)
)
def test_paired_interval_is_scipys_paired_t_interval(pairs):
    from scipy import stats

    a = {i: x for i, (x, _) in enumerate(pairs)}
    b = {i: y for i, (_, y) in enumerate(pairs)}
    p = report.paired(a, b)
    ci = stats.ttest_rel([x for x, _ in pairs], [y for _, y in pairs])
    low, high = ci.confidence_interval(0.95)
    assert p.n == len(pairs)
    assert p.low == pytest.approx(low, abs=1e-12)
    assert p.high == pytest.approx(high, abs=1e-12)
    assert p.wins + p.ties + p.losses == p.n
    assert p.wins == sum(x > y for x, y in pairs)


def test_paired_drops_diverged_pairs():
    p = report.paired({0: 0.5, 1: math.nan, 2: 0.7}, {0: 0.4, 1: 0.4, 2: 0.5})
    assert p.n == 2
    assert p.mean == pytest.approx(0.15)
    assert (p.wins, p.ties, p.losses) == (2, 0, 0)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((5, 0.02, 0.01, 0.03, 5, 0, 0), "better"),
        ((5, -0.02, -0.03, -0.001, 0, 0, 5), "worse"),
        ((5, 0.02, -0.01, 0.05, 4, 0, 1), "no clear difference"),
        ((5, 0.0, 0.0, 0.0, 0, 5, 0), "identical"),
        ((1, 0.02, math.nan, math.nan, 1, 0, 0), "too few seeds"),
        ((5, 0.001, 0.0, 0.002, 4, 1, 0), "no clear difference"),  # 0 is inside
    ],
)
def test_verdict_rule(args, expected):
    assert report.Paired(*args).verdict == expected


@pytest.mark.parametrize(
    ("verdicts", "want", "status"),
    [
        (["better", "better"], "better", "supported"),
        (["better", "no clear difference"], "better", "partly supported"),
        (["no clear difference", "identical"], "better", "not supported"),
        (["better", "worse"], "better", "mixed"),
        (["worse", "no clear difference"], "better", "contradicted"),
        (["no clear difference", "better"], "not worse", "not contradicted"),
        (["worse", "better"], "not worse", "partly contradicted"),
        (["worse", "worse"], "not worse", "contradicted"),
        ([], "better", "not tested"),
    ],
)
def test_claim_status_rule(verdicts, want, status):
    assert report._status(verdicts, want) == status


def test_tables_come_from_the_csv_text():
    rows = [
        {"data": "d", "loss": loss, "loss_params": "{}", "noise": 0.2,
         "noise_kind": "symmetric", "phase": "report", "seed": s, "lr": 1e-3,
         "epochs": 3, "test_accuracy_final": acc + 0.01 * s, "test_accuracy_es": acc,
         "top_k_accuracy_final": 1.0, "top_k_accuracy_es": 1.0, "test_nll_final": 1.0,
         "test_ece_final": 0.1, "train_accuracy_final": 0.5, "val_accuracy_final": 0.4,
         "val_accuracy_best": 0.45, "best_epoch": 2, "final_loss": 1.0,
         "seconds": 0.1, "error": ""}
        for loss, acc in (("cross_entropy", 0.5), ("focal", 0.6))
        for s in range(3)
    ]  # fmt: skip
    parsed = report.read_runs(report.write_runs(rows))
    assert parsed == rows
    table = report.glance(parsed)
    # focal is 0.1 above cross-entropy on every seed: better, with zero spread.
    assert "| focal | + / + |" in table


def test_cross_entropy_alone_says_there_is_nothing_to_compare():
    """A study of cross_entropy alone printed the glance's header and no row,
    and summary.md two paired-difference tables without a row."""
    rows = [
        {"data": "d", "loss": "cross_entropy", "loss_params": "{}", "noise": 0.2,
         "noise_kind": "symmetric", "phase": "report", "seed": s, "lr": 1e-3,
         "epochs": 3, "test_accuracy_final": 0.5, "test_accuracy_es": 0.5,
         "top_k_accuracy_final": 1.0, "top_k_accuracy_es": 1.0, "test_nll_final": 1.0,
         "test_ece_final": 0.1, "train_accuracy_final": 0.5, "val_accuracy_final": 0.4,
         "val_accuracy_best": 0.45, "best_epoch": 2, "final_loss": 1.0,
         "seconds": 0.1, "error": ""}
        for s in range(2)
    ]  # fmt: skip
    nothing = "Only cross_entropy among the losses, nothing to compare it with"
    assert report.glance(rows) == f"({nothing}: no paired comparison.)"
    meta = {"top_k": 5, "epochs": 3, "patience": 1, "max_epochs": 3}
    page = report.summary(rows, meta)
    assert "Paired difference" not in page
    assert f"({nothing}: no paired comparison.)" in page
    assert report.claims(rows, []) == f"({nothing}: no claim can be checked.)"


# -- the command --------------------------------------------------------------------------


def test_study_progress_estimate_and_curves(tmp_path):
    out = tmp_path / "s"
    r = invoke(["study", "--data", "digits", "--loss", "cross_entropy", "--loss",
                "focal", "--noise", "0,0.3", "--seeds", "2", "--epochs", "2",
                "--max-epochs", "2", "--hidden", "4", "--lr-grid", "0.01",
                "--jobs", "1", "--no-plot", "--out", out])  # fmt: skip
    lines = r.stderr.splitlines()
    assert lines[0].startswith("8 runs (0 tuning, 8 reported); estimated ")
    assert lines[-1].startswith("[8/8] digits ")  # a line per run off a terminal
    with open(out / "curves.csv", newline="") as f:
        curves = list(csv.DictReader(f))
    # The curves' noise rate is the one nearest 0.4; 2 losses x 2 epochs.
    assert {(c["loss"], c["noise"], c["epoch"], c["runs"]) for c in curves} == {
        (loss, "0.3", e, "2") for loss in ("cross_entropy", "focal") for e in "12"
    }
    meta = json.loads((out / "study.json").read_text())
    assert meta["curve_noise"] == 0.3
    assert meta["commit"]
    assert (meta["epochs"], meta["patience"], meta["max_epochs"]) == (2, 10, 2)
    assert not (out / "curves.png").exists()
    # Capped at the minimum: every run is cut before the plateau, and says so.
    summary = (out / "summary.md").read_text()
    assert "**8 of 8 finished runs were cut at 2 epochs before the plateau" in summary
    assert "0.01; " in summary
    assert "2 cut**" in summary


def test_study_labels_say_what_was_measured(tmp_path):
    """``--noise -0`` was reported as noise -0 in runs.csv and every table (a
    ``--top-k`` above the classes, once titled by the k asked, is now an error:
    test_top_k_above_the_classes_is_refused)."""
    out = tmp_path / "s"
    invoke(["study", "--data", "digits", "--loss", "cross_entropy", "--noise", "-0",
            "--seeds", "1", "--epochs", "1", "--max-epochs", "1", "--hidden", "4",
            "--lr-grid", "0.01", "--jobs", "1", "-q", "--no-plot",
            "--out", out])  # fmt: skip
    with open(out / "runs.csv", newline="") as f:
        assert [r["noise"] for r in csv.DictReader(f)] == ["0"]
    summary = (out / "summary.md").read_text()
    assert "-0" not in summary
    assert "**Test top-5 accuracy at the final epoch**" in summary


def test_estimate_on_a_coarse_cpu_clock(tmp_path, monkeypatch):
    """A CPU clock that reads the same before and after the estimate's probe (a
    16 ms tick, as on Windows, and a small data set) ended the study in an
    internal error: division by zero."""
    monkeypatch.setattr(_study.time, "process_time", lambda: 1.0)
    r = invoke(["study", "--data", "digits", "--loss", "cross_entropy", "--loss",
                "focal", "--noise", "0", "--seeds", "1", "--epochs", "1",
                "--max-epochs", "1", "--hidden", "4", "--lr-grid", "0.01", "--jobs",
                "1", "-q", "--no-plot", "--out", tmp_path / "s"])  # fmt: skip
    assert "estimated 0.0 CPU minutes" in r.stderr


def test_recorded_command_runs_again_as_written(tmp_path, monkeypatch):
    """study.json's and summary.md's command joined the arguments with spaces: a
    data file named 'my data.npz' came back as two arguments."""
    rng = np.random.default_rng(0)
    data = tmp_path / "my data.npz"
    np.savez(data, x=rng.normal(size=(30, 4)), y=np.arange(30) % 3)
    args = ["study", "--data", str(data), "--loss", "cross_entropy", "--noise", "0",
            "--seeds", "1", "--epochs", "1", "--max-epochs", "1", "--hidden", "4",
            "--lr-grid", "0.01", "--jobs", "1", "-q", "--no-plot", "--out",
            str(tmp_path / "s")]  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["arrayloss", *args])
    invoke(args)
    command = json.loads((tmp_path / "s" / "study.json").read_text())["command"]
    assert shlex.split(command) == ["arrayloss", *args]


@pytest.mark.skipif(shutil.which("git") is None, reason="no git")
def test_recorded_commit_is_the_checkouts_whatever_git_dir_says(tmp_path, monkeypatch):
    """With GIT_DIR (or GIT_WORK_TREE) in the environment, as in a git hook, the
    study recorded the commit of that other repository, or 'unknown'."""
    own = _study._git_commit()
    other = tmp_path / "other"
    subprocess.run(["git", "init", "-q", str(other)], check=True)
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(other))
    assert _study._git_commit() == own


def test_max_epochs_below_epochs_is_usage(tmp_path):
    r = invoke(["study", "--data", "digits", "--epochs", "5", "--max-epochs", "4",
                "--out", tmp_path / "s"], exit_code=2)  # fmt: skip
    assert "--max-epochs 4 is below --epochs 5" in r.stderr
    assert not (tmp_path / "s").exists()


def _curve_row(seed: int, curve: list[tuple[float, float]]) -> dict:
    return {"phase": "report", "noise": 0.3, "data": "d", "loss": "ce",
            "seed": seed, "curve": curve}  # fmt: skip


def test_curves_keep_a_stopped_run_at_its_last_model():
    rows = [_curve_row(0, [(0.1, 0.2), (0.3, 0.4)]),
            _curve_row(1, [(0.5, 0.6), (0.7, 0.8), (0.9, 1.0)])]  # fmt: skip
    curves = _study._curves(rows, 0.3)
    assert [c["epoch"] for c in curves] == [1, 2, 3]
    assert [c["runs"] for c in curves] == [2, 2, 1]
    assert curves[2]["test_accuracy"] == pytest.approx((0.4 + 1.0) / 2)
    assert curves[2]["val_accuracy"] == pytest.approx((0.3 + 0.9) / 2)


def _ran(best: int, epochs: int, error: str = "") -> dict:
    return {"data": "d", "loss": "ce", "noise": 0.0, "phase": "report", "seed": 0,
            "lr": 1e-3, "best_epoch": best, "epochs": epochs, "error": error}  # fmt: skip


def test_cut_runs_are_those_short_of_the_plateau_rule():
    meta = {"epochs": 10, "patience": 5, "max_epochs": 30}
    ok = [_ran(3, 10), _ran(7, 12), _ran(25, 30)]
    cut = [_ran(26, 30), _ran(30, 30), _ran(2, 8)]
    diverged = _ran(-1, 4, error="training diverged in epoch 4")
    assert report.cut_runs([*ok, *cut, diverged], meta) == cut
    assert report.plateau_check(ok, meta).startswith(
        "All 3 finished runs (tuning included) reached the plateau rule: best "
        "noisy-validation epochs 3–25 (median 7), runs of 10–30 epochs"
    )
    text = report.plateau_check([*ok, *cut], meta)
    assert text.startswith("**3 of 6 finished runs were cut at 30 epochs")
    assert "(best epoch 26 of 30)" in text
    assert "e − b ≥ 5" in report.plateau_rule(meta)


def test_study_data_given_twice_is_usage(tmp_path):
    r = invoke(["study", "--data", "digits", "--data", "digits", "--out", tmp_path / "s"],
               exit_code=2)  # fmt: skip
    assert "'digits' is given twice" in r.stderr


@pytest.mark.parametrize("link", ["symbolic", "hard"])
def test_study_data_given_twice_under_two_names_is_usage(tmp_path, link):
    """A link to a data set was a second data set: the same runs twice over, as
    two columns of every table."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(30, 4)), y=np.arange(30) % 3)
    other = tmp_path / "other.npz"
    if link == "symbolic":
        other.symlink_to(tmp_path / "d.npz")
    else:
        os.link(tmp_path / "d.npz", other)
    args = ["study", "--data", tmp_path / "d.npz", "--data", other, "--out",
            tmp_path / "s"]  # fmt: skip
    r = invoke(args, exit_code=2)
    assert f"'{other}' and '{tmp_path / 'd.npz'}' are one file" in r.stderr
    assert not (tmp_path / "s").exists()


def test_tuning_seed_must_be_separate(tmp_path):
    r = invoke(["study", "--data", "digits", "--seeds", "3", "--tune-seed", "2",
                "--out", tmp_path / "s"], exit_code=2)  # fmt: skip
    assert "--tune-seed 2 is one of the reported seeds 0..2" in r.stderr


def test_data_errors_is_the_one_conversion():
    with pytest.raises(DataError, match="bad labels"), data_errors():
        raise ValueError("bad\nlabels")
    with pytest.raises(UsageError), data_errors():
        raise UsageError("kept")
    with pytest.raises(TypeError), data_errors():
        raise TypeError("a bug stays a bug")


# -- MNIST-1D --------------------------------------------------------------------------------


@pytest.fixture
def no_mnist1d(monkeypatch):
    """Imports of mnist1d fail, as without the extra."""
    monkeypatch.setitem(sys.modules, "mnist1d", None)
    monkeypatch.setitem(sys.modules, "mnist1d.data", None)
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name.startswith("mnist1d") else real(name, *a),
    )


def test_mnist1d_without_the_extra_names_it(no_mnist1d, tmp_path):
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'arrayloss\[data\]'"):
        ds.load_mnist1d()
    r = invoke(["train", "--data", "mnist1d", "-q"], exit_code=1)
    assert "arrayloss[data]" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    # The default study leaves it out with a note (the bad --loss stops it there).
    r = invoke(["study", "--loss", "smooth_topk_svm:k=50", "--out", tmp_path / "s"],
               exit_code=2)  # fmt: skip
    assert "note: mnist1d left out; it needs pip install 'arrayloss[data]'" in r.stderr


@needs_mnist1d
def test_mnist1d_generates_offline_reproducibly(monkeypatch, tmp_path):
    def no_network(*args, **kwargs):
        raise AssertionError("mnist1d tried to use the network")

    importlib.import_module("mnist1d.data")  # its imports (requests, ssl) first
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.chdir(tmp_path)
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    a = ds.load_mnist1d(n_samples=200)
    b = ds.load_mnist1d(n_samples=200)
    assert a.x.shape == (160, 40)
    assert a.x_test.shape == (40, 40)
    assert a.x.dtype == np.float64
    assert a.y.dtype == np.int64
    assert set(np.unique(a.y)) <= set(range(10))
    assert a.n_classes == 10
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x, ds.load_mnist1d(n_samples=200, seed=1).x)
    # The package seeds the global generators; they are given back unchanged.
    assert random.getstate() == py_state
    after = np.random.get_state()  # noqa: NPY002
    np.testing.assert_array_equal(after[1], np_state[1])
    assert list(tmp_path.iterdir()) == []  # no cache file written


def test_mnist1d_bad_arguments():
    with pytest.raises(ValueError, match="n_samples"):
        ds.load_mnist1d(n_samples=5)
    with pytest.raises(ValueError, match="seed"):
        ds.load_mnist1d(seed=-1)


@needs_mnist1d
@pytest.mark.slow
def test_mnist1d_by_name_has_the_published_sizes():
    d = ds.load("mnist1d")
    assert (d.x.shape, d.x_test.shape) == ((4000, 40), (1000, 40))
    s = ds.split(d, seed=0)
    assert (s.y_train.size, s.y_val.size, s.y_test.size) == (3200, 800, 1000)
    np.testing.assert_array_equal(np.bincount(np.concatenate([d.y, d.y_test])),
                                  np.full(10, 500))  # fmt: skip

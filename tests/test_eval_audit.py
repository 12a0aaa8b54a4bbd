"""``arrayloss eval`` on the gaps of the option audit: reading options given for
a format they do not apply to, --renormalize of rounded soft labels, an --eps
below the smallest normal number, the classes x bins of --per-class and the
bound of ARRAYLOSS_EVAL_THREADS."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from conftest import eval_json, one_error_line
from conftest import invoke_eval as invoke

HAS_PYARROW = importlib.util.find_spec("pyarrow") is not None
HAS_DASK = importlib.util.find_spec("distributed") is not None


def p(folder, name):
    return str(folder / name)


# --------------------------------------------------------------------------- #
# Reading options for a format they do not apply to
# --------------------------------------------------------------------------- #


@pytest.fixture
def files(tmp_path):
    """The same 12 x 3 logits and labels as .npy, .npz, CSV and (with pyarrow)
    Parquet."""
    rng = np.random.default_rng(0)
    z, y = rng.normal(size=(12, 3)), rng.integers(0, 3, 12)
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "y.npy", y)
    np.savez(tmp_path / "zy.npz", scores=z, labels=y)
    rows = [
        ",".join(repr(float(v)) for v in r) + f",{k}" for r, k in zip(z, y, strict=True)
    ]
    (tmp_path / "t.csv").write_text("a,b,c,y\n" + "\n".join(rows) + "\n")
    (tmp_path / "y.csv").write_text("\n".join(str(k) for k in y) + "\n")
    if HAS_PYARROW:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({"a": z[:, 0], "b": z[:, 1], "c": z[:, 2], "y": y})
        pq.write_table(table, tmp_path / "t.parquet")
    return tmp_path


_PARQUET = pytest.mark.skipif(not HAS_PYARROW, reason="needs pyarrow")


@pytest.mark.parametrize(
    ("inputs", "extra", "expected"),
    [
        (["z.npy", "y.npy"], ["--delimiter", ";"], "--delimiter applies to CSV/TSV inputs, not to an .npy SCORES and an .npy LABELS"),
        (["zy.npz"], ["--delimiter", "tab"], "--delimiter applies to CSV/TSV inputs, not to an .npz SCORES"),
        (["z.npy", "y.npy"], ["--header"], "--header applies to a CSV/TSV SCORES, not to an .npy SCORES"),
        (["z.npy", "y.csv"], ["--no-header"], "--no-header applies to a CSV/TSV SCORES, not to an .npy SCORES"),
        (["z.npy", "y.npy"], ["--scores-key", "scores"], "--scores-key picks an array of an .npz SCORES, not of an .npy SCORES"),
        (["t.csv"], ["--label-column", "y", "--scores-key", "x"], "--scores-key picks an array of an .npz SCORES, not of a CSV/TSV SCORES"),
        (["t.csv"], ["--label-column", "y", "--labels-key", "x"], "--labels-key picks an array of an .npz SCORES, not of a CSV/TSV SCORES (the labels of a table: --label-column)"),
        (["zy.npz", "y.npy"], ["--labels-key", "labels"], "--labels-key picks an array of an .npz LABELS, not of an .npy LABELS"),
        pytest.param(["t.parquet"], ["--label-column", "y", "--delimiter", ","], "--delimiter applies to CSV/TSV inputs, not to a Parquet SCORES", marks=_PARQUET),
        pytest.param(["t.parquet"], ["--label-column", "y", "--no-header"], "--no-header applies to a CSV/TSV SCORES, not to a Parquet SCORES", marks=_PARQUET),
        pytest.param(["t.parquet"], ["--label-column", "y", "--labels-key", "y"], "--labels-key picks an array of an .npz SCORES, not of a Parquet SCORES", marks=_PARQUET),
        pytest.param(["z.npy", "t.parquet"], ["--label-column", "y", "--delimiter", ","], "--delimiter applies to CSV/TSV inputs, not to an .npy SCORES and a Parquet LABELS", marks=_PARQUET),
    ],
)  # fmt: skip
def test_an_option_of_another_format_is_bad_usage(files, inputs, extra, expected):
    """They were ignored, exit 0: a --delimiter or --scores-key meant for another
    file changed nothing, and nothing said so."""
    result = invoke([*(p(files, name) for name in inputs), *extra, "-q"], 2)
    assert expected in one_error_line(result)


@pytest.mark.skipif(not HAS_DASK, reason="needs dask[distributed]")
def test_an_option_of_another_format_is_bad_usage_with_dask(files):
    """--dask checks every shard's headers before it starts a cluster."""
    args = [p(files, "z.npy"), p(files, "y.npy"), "--dask", "--delimiter", ";", "-q"]
    line = one_error_line(invoke(args, 2))
    assert "--delimiter applies to CSV/TSV inputs, not to an .npy SCORES" in line


@pytest.mark.parametrize(
    ("inputs", "extra"),
    [
        (["z.npy", "y.csv"], ["--delimiter", ","]),  # the text LABELS file's
        (["t.csv"], ["--label-column", "y", "--delimiter", ",", "--header"]),
        (["zy.npz"], ["--scores-key", "scores", "--labels-key", "labels"]),
        (["z.npy", "zy.npz"], ["--labels-key", "labels"]),
    ],
)
def test_an_option_of_the_inputs_format_still_applies(files, inputs, extra):
    doc = eval_json([*(p(files, name) for name in inputs), *extra], quiet=True)
    assert doc["n_samples"] == 12


# --------------------------------------------------------------------------- #
# --renormalize and soft labels written rounded
# --------------------------------------------------------------------------- #


@pytest.fixture
def rounded_soft(tmp_path):
    """Logits and soft labels written with 2 decimals (rows off by up to 0.015),
    one row 0.33,0.33,0.33."""
    rng = np.random.default_rng(3)
    np.save(tmp_path / "s.npy", rng.normal(size=(40, 3)))
    t = np.exp(rng.normal(size=(40, 3)))
    t /= t.sum(axis=1, keepdims=True)
    t = np.round(t, 2)
    t[7] = 0.33
    assert (np.abs(t.sum(axis=1) - 1) > 1e-8).any()
    np.savetxt(tmp_path / "soft.csv", t, fmt="%.2f", delimiter=",")
    return tmp_path, t


def test_renormalize_takes_rounded_soft_labels(rounded_soft):
    """--renormalize was bad usage with logits and did not apply to LABELS: the
    rows had to be fixed by hand."""
    folder, t = rounded_soft
    np.save(folder / "q.npy", t / t.sum(axis=1, keepdims=True))
    base = [p(folder, "s.npy"), "--soft-labels", "--loss", "kl_divergence"]
    got = eval_json(
        [*base[:1], p(folder, "soft.csv"), *base[1:], "--renormalize"], quiet=True
    )
    want = eval_json([*base[:1], p(folder, "q.npy"), *base[1:]], quiet=True)
    assert got["n_samples"] == want["n_samples"] == 40
    for key, value in want["losses"].items():
        assert got["losses"][key] == pytest.approx(value, rel=1e-12), key
    for key, value in want["metrics"].items():
        assert got["metrics"][key] == pytest.approx(value, rel=1e-12), key


def test_rounded_soft_labels_without_renormalize_name_it(rounded_soft):
    folder, _ = rounded_soft
    args = [p(folder, "s.npy"), p(folder, "soft.csv"), "--soft-labels", "-q"]
    line = one_error_line(invoke([*args, "--loss", "kl_divergence"], 1))
    assert "soft labels sum to" in line
    assert "add --renormalize" in line


def test_renormalize_still_refuses_soft_labels_rounding_cannot_explain(tmp_path):
    np.save(tmp_path / "s.npy", np.zeros((4, 3)))
    np.savetxt(
        tmp_path / "soft.csv",
        np.tile([0.6, 0.5, 0.0], (4, 1)),
        fmt="%.1f",
        delimiter=",",
    )
    args = [
        p(tmp_path, "s.npy"),
        p(tmp_path, "soft.csv"),
        "--soft-labels",
        "--renormalize",
        "-q",
    ]
    line = one_error_line(invoke([*args, "--loss", "kl_divergence"], 1))
    assert (
        "row 0: soft labels sum to 1.1, further from 1 than rounding explains" in line
    )
    assert "--renormalize" in line


def test_renormalize_with_logits_is_still_bad_usage_without_soft_labels(files):
    result = invoke([p(files, "z.npy"), p(files, "y.npy"), "--renormalize", "-q"], 2)
    assert "applies to --input probs or logprobs or --soft-labels" in result.stderr


# --------------------------------------------------------------------------- #
# --eps below the smallest normal number
# --------------------------------------------------------------------------- #


@pytest.fixture
def zero_probs(tmp_path):
    p_ = np.array([[1.0, 0.0], [0.3, 0.7], [0.9, 0.1]])
    np.save(tmp_path / "p.npy", p_)
    np.save(tmp_path / "p32.npy", p_.astype(np.float32))
    np.save(tmp_path / "y.npy", np.array([1, 1, 1]))
    return tmp_path


def _eps_args(folder, eps, scores="p.npy"):
    """eval of ``zero_probs``' SCORES as probabilities at ``--eps eps``, quiet."""
    labels = p(folder, "y.npy")
    return [p(folder, scores), labels, "--input", "probs", "--eps", eps, "-q"]


@pytest.mark.parametrize(
    ("scores", "eps", "tiny"),
    [
        ("p.npy", "1e-320", "2.2250738585072014e-308"),
        ("p32.npy", "1e-39", "1.1754943508222875e-38"),
    ],
)
def test_eps_below_the_smallest_normal_is_bad_usage(zero_probs, scores, eps, tiny):
    """It was raised to the smallest normal number while the report said the eps
    asked for: nll 472.38 for --eps 1e-320, where clipping at 1e-320 gives 491.3."""
    line = one_error_line(invoke(_eps_args(zero_probs, eps, scores), 2))
    assert f"--eps {eps} is below the smallest normal number" in line
    assert f"give --eps {tiny} or more, or 0" in line


@pytest.mark.skipif(not HAS_DASK, reason="needs dask[distributed]")
def test_eps_below_the_smallest_normal_is_bad_usage_with_dask(zero_probs):
    args = [*_eps_args(zero_probs, "1e-310"), "--dask"]
    assert "--eps 1e-310 is below" in one_error_line(invoke(args, 2))


@pytest.mark.parametrize("eps", ["1e-300", "2.2250738585072014e-308"])
def test_eps_at_or_above_the_smallest_normal_is_the_floor_reported(zero_probs, eps):
    result = invoke([*_eps_args(zero_probs, eps), "--format", "json"])
    doc = json.loads(result.stdout)
    assert doc["eps"] == float(eps)
    want = np.mean(-np.log(np.clip([0.0, 0.7, 0.1], float(eps), 1.0)))
    assert doc["metrics"]["nll"] == pytest.approx(want, rel=1e-14)


@pytest.mark.parametrize("kind", ["probs", "logprobs"])
def test_eps_0_keeps_a_subnormal_probability_exact(tmp_path, kind):
    """--eps 0 clips nothing: a subnormal true-class probability (1e-310) has the
    NLL of its own logarithm, not the smallest normal number's (nll was 354.54
    for 357.25, one sample counted as a clipped zero); a zero, and only it, is
    counted and makes nll inf."""
    probs = np.array([[1e-310, 1.0 - 1e-310], [0.5, 0.5], [0.0, 1.0]])
    with np.errstate(divide="ignore"):
        scores = probs if kind == "probs" else np.log(probs)
    np.save(tmp_path / "p.npy", scores[:2])
    np.save(tmp_path / "all.npy", scores)
    np.save(tmp_path / "y.npy", np.array([0, 0]))
    np.save(tmp_path / "y3.npy", np.array([0, 0, 0]))
    common = ["--input", kind, "--eps", "0", "--metric", "nll", "--format", "json"]
    doc = json.loads(
        invoke([p(tmp_path, "p.npy"), p(tmp_path, "y.npy"), *common]).stdout
    )
    want = (-np.log(1e-310) - np.log(0.5)) / 2
    assert doc["metrics"]["nll"] == pytest.approx(want, rel=1e-14)
    assert doc["n_clipped"] == 0
    three = [p(tmp_path, "all.npy"), p(tmp_path, "y3.npy"), *common]
    doc = json.loads(invoke(three).stdout)
    assert doc["metrics"]["nll"] == "inf"
    assert doc["n_clipped"] == 1


# --------------------------------------------------------------------------- #
# --per-class: classes x ECE bins
# --------------------------------------------------------------------------- #


def test_per_class_beyond_its_classes_x_bins_limit_is_usage_before_allocating(tmp_path):
    """5000 classes at 10,000 bins took 2.5 GB; now refused at once, naming both."""
    import arrayloss.cli._report as report_module

    limit = report_module.MAX_CLASSWISE_CELLS
    c = limit // 10_000 + 1
    np.save(tmp_path / "z.npy", np.zeros((2, c), dtype=np.float32))
    np.save(tmp_path / "y.npy", np.array([0, 1]))
    args = [
        p(tmp_path, "z.npy"),
        p(tmp_path, "y.npy"),
        "--per-class",
        "--metric",
        "ece:n_bins=10000",
        "-q",
    ]
    line = one_error_line(invoke(args, 2))
    assert f"--per-class with {c} classes and 10000 ECE bins" in line
    assert f"at most {limit:,} classes x bins" in line


def test_per_class_limit_is_on_classes_times_bins(tmp_path, monkeypatch):
    """A lowered limit shows the check without a large file: 3 classes at 40 bins
    are beyond 100, at 30 within; --confusion alone keeps no bins."""
    import arrayloss.cli._report as report_module

    monkeypatch.setattr(report_module, "MAX_CLASSWISE_CELLS", 100, raising=False)
    np.save(tmp_path / "z.npy", np.eye(3)[[0, 1, 2, 0]])
    np.save(tmp_path / "y.npy", np.array([0, 1, 2, 1]))
    args = [p(tmp_path, "z.npy"), p(tmp_path, "y.npy")]
    line = one_error_line(
        invoke([*args, "--per-class", "--metric", "ece:n_bins=40", "-q"], 2)
    )
    assert "3 x 40 classwise calibration sums" in line
    assert "at most 100 classes x bins" in line
    doc = eval_json([*args, "--per-class", "--metric", "ece:n_bins=30"], quiet=True)
    assert doc["per_class"]["1"]["support"] == 2
    doc = eval_json([*args, "--confusion", "--metric", "ece:n_bins=40"], quiet=True)
    assert doc["confusion"]["matrix"][1] == [1, 1, 0]


# --------------------------------------------------------------------------- #
# ARRAYLOSS_EVAL_THREADS: a bound
# --------------------------------------------------------------------------- #


def test_eval_threads_beyond_the_bound_is_bad_usage(files):
    """10,000 threads were started, each with a chunk in flight."""
    from arrayloss.cli import _engine

    high = getattr(_engine, "MAX_EVAL_THREADS", 64)
    args = [p(files, "z.npy"), p(files, "y.npy"), "-q"]
    result = invoke(args, 2, env={_engine.THREADS_ENV: str(high + 1)})
    assert one_error_line(result) == (
        f"Error: ARRAYLOSS_EVAL_THREADS must be at most {high} (got '{high + 1}')\n"
    )
    doc = eval_json(args, env={_engine.THREADS_ENV: str(high)})
    assert doc["n_samples"] == 12

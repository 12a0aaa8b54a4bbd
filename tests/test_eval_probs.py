"""``arrayloss eval --input probs``: the ``--eps`` clipping convention (the one of
``sklearn.metrics.log_loss``), the clipped-sample count and its warning, and
``--renormalize``; and ``metrics.nll(eps=)`` in memory."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
from conftest import invoke_eval as invoke
from hypothesis import given, settings
from hypothesis import strategies as st

from arrayloss import metrics as M

N, C = 300, 4


def _probs(rng, n=N, c=C, dtype=np.float64):
    """Rows of probabilities with many exact zeros (a random forest's output)."""
    p = rng.dirichlet(np.full(c, 0.3), size=n)
    p[p < 0.05] = 0.0
    p[np.arange(n), rng.integers(0, c, n)] += 0.01  # no row is all zeros
    p /= p.sum(axis=1, keepdims=True)
    return p.astype(dtype)


@pytest.fixture
def zeros(tmp_path, rng):
    p = _probs(rng)
    y = rng.integers(0, C, size=N)
    assert (p[np.arange(N), y] == 0).sum() > 10  # the case under test occurs
    np.save(tmp_path / "p.npy", p)
    np.save(
        tmp_path / "lp.npy",
        np.log(np.where(p > 0, p, 1.0)) - np.where(p > 0, 0, np.inf),
    )
    np.save(tmp_path / "y.npy", y)
    w = rng.random(N)
    np.save(tmp_path / "w.npy", w)
    return tmp_path, p, y, w


def _run(args):
    result = invoke([*args, "--format", "json"])
    return json.loads(result.stdout), result.stderr


# --------------------------------------------------------------------------- #
# metrics.nll(eps=)
# --------------------------------------------------------------------------- #


def test_nll_default_eps_equals_log_loss(rng):
    skm = pytest.importorskip("sklearn.metrics")
    p = _probs(rng)
    y = rng.integers(0, C, size=N)
    w = rng.random(N)
    want = skm.log_loss(y, p, labels=range(C))
    assert abs(float(M.nll(p, y, input="probs")) - want) <= 1e-12 * want
    want_w = skm.log_loss(y, p, labels=range(C), sample_weight=w)
    got_w = float(M.nll(p, y, input="probs", weights=w))
    assert abs(got_w - want_w) <= 1e-12 * want_w
    lp = np.log(np.where(p > 0, p, 1.0)) - np.where(p > 0, 0.0, np.inf)
    assert abs(float(M.nll(lp, y, input="logprobs")) - want) <= 1e-12 * want


def test_nll_float32_default_eps_is_float32_machine_eps(rng):
    p = _probs(rng, dtype=np.float32)
    y = rng.integers(0, C, size=N)
    eps32 = float(np.finfo(np.float32).eps)
    p_y = np.clip(p[np.arange(N), y].astype(np.float64), eps32, 1.0)
    want = float(np.mean(-np.log(p_y)))
    got = M.nll(p, y, input="probs")
    assert got.dtype == np.float32
    assert float(got) == pytest.approx(want, rel=1e-6)


def test_nll_eps_zero_is_inf_and_eps_floor():
    p = np.array([[1.0, 0.0], [0.0, 1.0]])
    y = np.array([1, 1])
    assert float(M.nll(p, y, input="probs", eps=0)) == math.inf
    lp = np.array([[0.0, -np.inf], [-np.inf, 0.0]])
    assert float(M.nll(lp, y, input="logprobs", eps=0)) == math.inf
    assert float(M.nll(p, y, input="probs", eps=1e-3)) == pytest.approx(
        -math.log(1e-3) / 2
    )
    q = np.array([[0.5, 0.5]])
    assert float(M.nll(q, np.array([0]), input="probs", eps=0)) == math.log(2)


@pytest.mark.parametrize("eps", [-1e-9, 0.5, 1.0, math.nan, math.inf])
def test_nll_eps_out_of_range(eps):
    p = np.array([[0.5, 0.5]])
    with pytest.raises(ValueError, match="eps"):
        M.nll(p, np.array([0]), input="probs", eps=eps)


# --------------------------------------------------------------------------- #
# arrayloss eval --eps
# --------------------------------------------------------------------------- #


def test_eval_default_eps_equals_log_loss(zeros):
    skm = pytest.importorskip("sklearn.metrics")
    d, p, y, w = zeros
    want = skm.log_loss(y, p, labels=range(C))
    for scores, kind in (("p.npy", "probs"), ("lp.npy", "logprobs")):
        out, err = _run([str(d / scores), str(d / "y.npy"), "--input", kind])
        assert abs(out["metrics"]["nll"] - want) <= 1e-12 * want
        assert out["n_clipped"] == int((p[np.arange(N), y] == 0).sum())
        assert out["eps"] == float(np.finfo(np.float64).eps)
        # the losses see the clipped probabilities too
        assert abs(out["losses"]["cross_entropy"] - want) <= 1e-12 * want
        assert "warning: clipping" in err
        assert "from inf" in err
    want_w = skm.log_loss(y, p, labels=range(C), sample_weight=w)
    out, _ = _run(
        [
            str(d / "p.npy"),
            str(d / "y.npy"),
            "--input",
            "probs",
            "--weights",
            str(d / "w.npy"),
        ]
    )
    assert abs(out["metrics"]["nll"] - want_w) <= 1e-12 * want_w


def _same(outs):
    """The runs agree: counts and losses (exact sums) bit for bit, the metrics to
    the rounding of their float64 sums within a chunk."""
    first = outs[0]
    for out in outs[1:]:
        assert out["n_clipped"] == first["n_clipped"]
        assert out["losses"] == first["losses"]
        for key, value in first["metrics"].items():
            assert out["metrics"][key] == pytest.approx(value, rel=1e-15, abs=0)


def test_eval_identical_at_chunk_sizes(zeros):
    d, *_ = zeros
    base = [str(d / "p.npy"), str(d / "y.npy"), "--input", "probs"]
    weighted = [*base, "--weights", str(d / "w.npy")]
    for args in (base, weighted, [*weighted, "--eps", "1e-3"]):
        outs = [_run([*args, "--chunk-size", str(k)])[0] for k in (1, 7, N)]
        assert outs[0]["n_clipped"] > 10
        _same(outs)


def test_eval_eps_zero_shows_inf(zeros):
    d, *_ = zeros
    result = invoke(
        [str(d / "p.npy"), str(d / "y.npy"), "--input", "probs", "--eps", "0"]
    )
    nll_row = [ln for ln in result.stdout.splitlines() if ln.startswith("metric  nll")]
    assert nll_row
    assert nll_row[0].split()[-1] == "inf"
    assert "is inf" in result.stderr
    # the losses stay finite, and the warning says why they differ from nll
    assert "read each zero as the dtype's smallest normal number" in result.stderr
    out, _ = _run(
        [str(d / "p.npy"), str(d / "y.npy"), "--input", "probs", "--eps", "0"]
    )
    assert out["metrics"]["nll"] == "inf"  # strict JSON: no Infinity token


def test_eval_no_warning_when_clipping_is_negligible(tmp_path):
    p = np.array([[0.5, 0.5], [0.9, 0.1], [1e-300, 1.0]])
    np.save(tmp_path / "p.npy", p)
    np.save(tmp_path / "y.npy", np.array([0, 0, 1]))
    out, err = _run(
        [str(tmp_path / "p.npy"), str(tmp_path / "y.npy"), "--input", "probs"]
    )
    assert out["n_clipped"] == 0
    assert err == ""
    np.save(tmp_path / "y.npy", np.array([0, 0, 0]))  # 1e-300 clipped to 2.2e-16
    out, err = _run(
        [str(tmp_path / "p.npy"), str(tmp_path / "y.npy"), "--input", "probs"]
    )
    assert out["n_clipped"] == 1
    assert "warning: clipping 1 true-class" in err
    assert "%" in err


def test_eval_no_warning_when_small(tmp_path):
    p = np.full((1000, 2), 0.5)
    p[0] = (1e-17, 1.0)  # -log moves from 39.1 to 36.0: under 1% of the mean
    np.save(tmp_path / "p.npy", p)
    np.save(tmp_path / "y.npy", np.zeros(1000, dtype=int))
    out, err = _run(
        [str(tmp_path / "p.npy"), str(tmp_path / "y.npy"), "--input", "probs"]
    )
    assert out["n_clipped"] == 1
    assert err == ""


@pytest.mark.parametrize("eps", ["-0.1", "0.5", "2", "nan", "abc", "inf"])
def test_eval_eps_out_of_range(zeros, eps):
    d, *_ = zeros
    out = d / "out.json"
    result = invoke(
        [
            str(d / "p.npy"),
            str(d / "y.npy"),
            "--input",
            "probs",
            "--eps",
            eps,
            "-o",
            str(out),
        ],
        exit_code=2,
    )
    err = [ln for ln in result.stderr.splitlines() if ln.startswith("Error: ")]
    assert len(err) == 1, result.stderr
    assert "--eps" in err[0]
    assert "Traceback" not in result.stderr
    assert not out.exists()
    assert not [n for n in os.listdir(d) if n.endswith(".part")]


def test_eval_eps_with_logits_is_usage_error(tmp_path, rng):
    np.save(tmp_path / "z.npy", rng.normal(size=(5, 3)))
    np.save(tmp_path / "y.npy", np.zeros(5, dtype=int))
    for opt in (["--eps", "1e-3"], ["--renormalize"]):
        result = invoke(
            [str(tmp_path / "z.npy"), str(tmp_path / "y.npy"), *opt], exit_code=2
        )
        assert "applies to --input probs" in result.stderr


# --------------------------------------------------------------------------- #
# --renormalize
# --------------------------------------------------------------------------- #


def test_renormalize_rounded_rows(tmp_path, rng):
    p = rng.dirichlet(np.ones(C), size=N)
    rounded = np.round(p, 4)
    assert np.abs(rounded.sum(axis=1) - 1).max() > 1e-4  # rejected without it
    csv = tmp_path / "p.csv"
    np.savetxt(csv, rounded, delimiter=",", fmt="%.4f")
    y = rng.integers(0, C, size=N)
    np.save(tmp_path / "y.npy", y)
    args = [str(csv), str(tmp_path / "y.npy"), "--input", "probs"]
    result = invoke(args, exit_code=1)
    assert result.stderr.count("\n") == 1
    assert "--renormalize" in result.stderr
    want = rounded / rounded.sum(axis=1, keepdims=True)
    for k in ("1", "7", str(N)):
        out, _ = _run([*args, "--renormalize", "--chunk-size", k])
        got = out["metrics"]["nll"]
        assert got == pytest.approx(float(M.nll(want, y, input="probs")), rel=1e-12)
    lp = tmp_path / "lp.npy"
    np.save(lp, np.log(rounded))
    out, _ = _run(
        [str(lp), str(tmp_path / "y.npy"), "--input", "logprobs", "--renormalize"]
    )
    assert out["metrics"]["nll"] == pytest.approx(
        float(M.nll(want, y, input="probs")), rel=1e-12
    )


def test_renormalize_still_rejects_far_rows(tmp_path):
    p = np.array([[0.5, 0.5], [0.6, 0.5]])
    np.save(tmp_path / "p.npy", p)
    np.save(tmp_path / "y.npy", np.array([0, 1]))
    args = [str(tmp_path / "p.npy"), str(tmp_path / "y.npy"), "--input", "probs"]
    result = invoke([*args, "--renormalize"], exit_code=1)
    assert "row 1" in result.stderr
    assert "sum to 1.1" in result.stderr
    assert "add --renormalize" not in result.stderr


def test_dask_clips_and_counts_like_one_process(zeros):
    pytest.importorskip("dask.array")
    pytest.importorskip("distributed")
    d, p, y, _ = zeros
    (d / "ps").mkdir()
    (d / "ys").mkdir()
    for i, (a, b) in enumerate(((0, 100), (100, 250), (250, N))):
        np.save(d / "ps" / f"part-{i}.npy", p[a:b])
        np.save(d / "ys" / f"part-{i}.npy", y[a:b])
    base, base_err = _run([str(d / "p.npy"), str(d / "y.npy"), "--input", "probs"])
    args = [str(d / "ps"), str(d / "ys"), "--input", "probs", "--quiet"]
    out, err = _run([*args, "--dask", "--dask-workers", "1", "--chunk-size", "64"])
    assert out["n_clipped"] == base["n_clipped"] > 10
    assert out["eps"] == base["eps"]
    assert out["losses"] == base["losses"]
    for key, value in base["metrics"].items():
        assert out["metrics"][key] == pytest.approx(value, rel=1e-15, abs=0)
    assert err == base_err


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 30),
    c=st.integers(2, 6),
    eps=st.sampled_from([None, 0.0, 1e-300, 1e-12, 1e-3, 0.25]),
    seed=st.integers(0, 2**32 - 1),
)
def test_nll_is_the_mean_of_clipped_logs(n, c, eps, seed):
    """Property: nll(eps) = mean(-log(clip(p_y, eps, 1))) for any rows with zeros."""
    rng = np.random.default_rng(seed)
    p = _probs(rng, n=n, c=c)
    y = rng.integers(0, c, size=n)
    floor = np.finfo(np.float64).eps if eps is None else eps
    p_y = np.clip(p[np.arange(n), y], floor, 1.0)
    with np.errstate(divide="ignore"):
        want = float(np.mean(-np.log(p_y)))
    got = float(M.nll(p, y, input="probs", eps=eps))
    assert got == pytest.approx(want, rel=1e-12) if math.isfinite(want) else got == want


@pytest.mark.parametrize("backend", ["array_api_strict", "torch"])
def test_nll_eps_any_namespace(backend):
    xp = pytest.importorskip(backend)
    p = np.array([[1.0, 0.0], [0.3, 0.7]])
    y = np.array([1, 0])
    for eps in (None, 0.0, 1e-3):
        want = float(M.nll(p, y, input="probs", eps=eps))
        got = M.nll(xp.asarray(p), xp.asarray(y), input="probs", eps=eps)
        assert float(got) == want


def test_eval_torch_backend_clips_the_same(zeros):
    pytest.importorskip("torch")
    d, *_ = zeros
    args = [str(d / "p.npy"), str(d / "y.npy"), "--input", "probs"]
    base, _ = _run(args)
    out, _ = _run([*args, "--backend", "torch"])
    assert out["n_clipped"] == base["n_clipped"]
    for group in ("losses", "metrics"):
        for key, value in base[group].items():
            assert out[group][key] == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize("kind", ["probs", "logprobs"])
def test_renormalize_error_states_its_own_tolerance(tmp_path, kind):
    """A row just beyond --renormalize's 0.001 was reported as summing to 0.999
    "(tolerance 0.0001)": the check's tolerance, not the one the user asked for,
    and a sum rounded into the range that would have been accepted.  The message
    now gives the sum to 10 digits and the --renormalize tolerance (the second
    value, at full precision, leaves the row no rounding allowance beyond it)."""
    p = np.array([[0.5, 0.5], [0.4995, 0.4995 - 1e-9]])
    np.save(tmp_path / "p.npy", p if kind == "probs" else np.log(p))
    np.save(tmp_path / "y.npy", np.array([0, 1]))
    args = [str(tmp_path / "p.npy"), str(tmp_path / "y.npy"), "--input", kind]
    result = invoke([*args, "--renormalize"], exit_code=1)
    what = "probabilities" if kind == "probs" else "exp(log-probabilities)"
    assert result.stderr == (
        f"Error: SCORES row 1 {what} sum to 0.998999999, further from 1 than "
        "rounding explains (the row's digits allow 0.001; --renormalize allows at "
        f"least 0.001, at most 0.05) (--input {kind} --renormalize)\n"
    )


def test_float16_probabilities_get_the_float16_tolerance(tmp_path, rng):
    """float16 probabilities (a mixed-precision model's ``predict_proba``) are
    computed in float64, and were checked with float64's tolerance (1e-4), so
    rows that float16 rounding put 5e-4 from 1 were refused, where
    `arrayloss.metrics` takes them (``4·C·eps`` of float16); the sum check now
    uses the tolerance of the stored dtype."""
    p = rng.dirichlet(np.ones(3), size=400).astype(np.float16)
    off = np.abs(p.astype(np.float64).sum(axis=1) - 1)
    assert off.max() > 1e-4  # refused before
    assert off.max() < 4 * 3 * float(np.finfo(np.float16).eps)
    y = rng.integers(0, 3, size=400)
    M.nll(p, y, input="probs")  # the library takes them
    np.save(tmp_path / "p.npy", p)
    np.save(tmp_path / "y.npy", y)
    out, _ = _run(
        [str(tmp_path / "p.npy"), str(tmp_path / "y.npy"), "--input", "probs"]
    )
    p_y = p.astype(np.float64)[np.arange(400), y]
    assert out["metrics"]["nll"] == pytest.approx(
        float(np.mean(-np.log(p_y))), rel=1e-12
    )
    far = p.copy()
    far[7] = np.array([0.5, 0.4, 0.05], dtype=np.float16)  # 0.05 from 1: refused
    np.save(tmp_path / "far.npy", far)
    result = invoke(
        [str(tmp_path / "far.npy"), str(tmp_path / "y.npy"), "--input", "probs"],
        exit_code=1,
    )
    assert "row 7 probabilities sum to 0.94989, not 1" in result.stderr
    assert "(tolerance 0.01)" in result.stderr


def test_renormalize_is_suggested_only_where_it_helps(tmp_path):
    """A row summing to 1.1 was told "for rows that sum to 1 only up to rounding
    (within 0.001), add --renormalize", which refuses it as well; the hint now
    comes only for a row within --renormalize's tolerance."""
    np.save(tmp_path / "y.npy", np.array([0, 1]))
    for row, hinted in (([0.6, 0.5], False), ([0.5, 0.5005], True)):
        np.save(tmp_path / "p.npy", np.array([[0.5, 0.5], row]))
        args = [str(tmp_path / "p.npy"), str(tmp_path / "y.npy"), "--input", "probs"]
        result = invoke(args, exit_code=1)
        assert result.stderr.startswith("Error: SCORES row 1 probabilities sum to")
        assert ("add --renormalize" in result.stderr) is hinted, result.stderr


def test_probabilities_read_as_logits_are_warned_about(tmp_path, rng):
    """``predict_proba`` output evaluated without ``--input probs`` is read as
    logits (the default): the loss of ``softmax(p)``, a wrong number without a
    word.  Where the first chunk's rows all look like probabilities (none
    negative, each summing to 1, not all 0 or 1) a warning now says so; the
    numbers stay those of logits, as asked."""
    p = rng.dirichlet(np.ones(C), size=N).astype(np.float32)
    y = rng.integers(0, C, size=N)
    np.save(tmp_path / "p.npy", p)
    np.save(tmp_path / "y.npy", y)
    args = [str(tmp_path / "p.npy"), str(tmp_path / "y.npy"), "--chunk-size", "7"]
    out, err = _run(args)
    assert err == (
        f"warning: SCORES '{tmp_path / 'p.npy'}' looks like probabilities (no "
        "negative score, each row summing to 1), read as logits (the default "
        "--input); for probabilities give --input probs\n"
    )
    assert out["metrics"]["nll"] == pytest.approx(float(M.nll(p, y)), rel=1e-6)
    assert _run([*args, "--input", "probs"])[1] == ""
    for z in (np.log(p), np.eye(C)[y]):  # logits, and one-hot scores: no warning
        np.save(tmp_path / "z.npy", z)
        assert _run([str(tmp_path / "z.npy"), str(tmp_path / "y.npy")])[1] == ""

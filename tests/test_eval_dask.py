"""``arrayloss eval`` on many files: a directory or glob of shards, streamed in one
process or evaluated on a Dask cluster (``--dask``), against the single-process run
on the concatenated file; and the errors of both, with their exit codes.

The cluster tests share one module-scoped ``LocalCluster`` (2 worker processes) and
are skipped when ``distributed`` is not installed; the others run everywhere.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from functools import partial

import numpy as np
import pytest
from conftest import eval_json, one_error_line
from conftest import invoke_eval as invoke

C = 10
SIZES = (700, 900, 500, 1100, 800)  # 4000 rows in 5 shards
NUMBERS = (0, 1, 2, 10, 11)  # natural order differs from the lexicographic one
LOSSES = ("cross_entropy", "hinge", "smooth_topk_svm:k=3")
METRICS = ("accuracy", "top_k_accuracy", "nll", "brier", "ece")


run_json = partial(eval_json, quiet=True)


def assert_same_numbers(out, base):
    assert out["n_samples"] == base["n_samples"]
    for group in ("losses", "metrics"):
        assert out[group].keys() == base[group].keys()
        for key, value in base[group].items():
            rel = abs(out[group][key] - value) / max(abs(value), 1e-300)
            assert rel < 1e-12, (group, key, out[group][key], value)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """5 float64 shards (logits, labels, weights, and .npz with both) + the whole."""
    root = tmp_path_factory.mktemp("shards")
    rng = np.random.default_rng(20261125)
    for sub in ("z", "y", "w", "zy", "z32"):
        (root / sub).mkdir()
    parts = []
    for number, n in zip(NUMBERS, SIZES, strict=True):
        z = rng.normal(0.0, 2.0, size=(n, C))
        y = rng.integers(0, C, size=n)
        z[np.arange(n), y] += 1.0
        w = rng.random(n)
        w[::17] = 0.0
        np.save(root / "z" / f"part-{number}.npy", z)
        np.save(root / "y" / f"part-{number}.npy", y)
        np.save(root / "w" / f"part-{number}.npy", w)
        np.save(root / "z32" / f"part-{number}.npy", z.astype(np.float32))
        np.savez(root / "zy" / f"part-{number}.npz", logits=z, labels=y)
        parts.append((z, y, w))
    (root / "y" / "README.md").write_text("not a shard\n")  # ignored in a directory
    whole = {
        name: np.concatenate([p[i] for p in parts])
        for i, name in enumerate(("z", "y", "w"))
    }
    for name, arr in whole.items():
        np.save(root / f"{name}.npy", arr)
    np.save(root / "z32.npy", whole["z"].astype(np.float32))
    return root


def common_args():
    args = []
    for loss in LOSSES:
        args += ["--loss", loss]
    for metric in METRICS:
        args += ["--metric", metric]
    return [*args, "--top-k", "1,5"]


@pytest.fixture(scope="module")
def base(data):
    """The single-process run on the concatenated file."""
    return run_json([str(data / "z.npy"), str(data / "y.npy"), *common_args()])


@pytest.fixture(scope="module")
def cluster():
    """One local cluster of 2 worker processes for the whole module: its address."""
    pytest.importorskip("dask.array")
    pytest.importorskip("distributed")
    from arrayloss.cli._dask_eval import local_cluster

    with local_cluster(2) as local:
        yield local.scheduler_address


# --------------------------------------------------------------------------- #
# Many files in one process
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("form", ["directory", "glob"])
def test_shards_stream_like_the_concatenated_file(data, base, form):
    if form == "directory":
        scores, labels = str(data / "z"), str(data / "y")
    else:
        scores, labels = str(data / "z" / "part-*.npy"), str(data / "y" / "part-*")
    out = run_json([scores, labels, *common_args(), "--chunk-size", "300"])
    assert_same_numbers(out, base)
    assert out["n_files"] == len(SIZES)
    assert "dask" not in out


def test_shards_are_paired_in_natural_order(data, tmp_path):
    """part-2 comes before part-10: per-sample rows follow the concatenated file."""
    whole, sharded = tmp_path / "whole.npy", tmp_path / "sharded.npy"
    invoke([str(data / "z.npy"), str(data / "y.npy"), "--per-sample", str(whole)])
    invoke([str(data / "z"), str(data / "y"), "--per-sample", str(sharded)])
    np.testing.assert_array_equal(np.load(sharded), np.load(whole))


def test_weights_and_npz_shards(data):
    base = run_json(
        [str(data / "z.npy"), str(data / "y.npy"), "--weights", str(data / "w.npy")]
    )
    out = run_json([str(data / "zy"), "--weights", str(data / "w")])
    assert_same_numbers(out, base)


# --------------------------------------------------------------------------- #
# On a cluster
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("chunk", [None, "128"])
def test_cluster_equals_single_process(data, base, cluster, chunk):
    """5 shards, 2 workers; 128 rows a block gives 33 blocks and a 2-level tree."""
    args = [str(data / "z" / "part-*.npy"), str(data / "y"), *common_args()]
    if chunk is not None:
        args += ["--chunk-size", chunk]
    out = run_json([*args, "--dask", cluster])
    assert_same_numbers(out, base)
    assert out["dask"] == cluster
    assert out["n_files"] == len(SIZES)


def test_cluster_weights_float32_npz_and_quantile_ece(data, cluster):
    metrics = ["--metric", "ece:strategy=quantile", "--metric", "brier"]
    weights = ["--weights", str(data / "w.npy")]
    for whole, shards in [
        ([str(data / "z32.npy"), str(data / "y.npy")], [str(data / "z32"), str(data / "y")]),
        ([str(data / "z.npy"), str(data / "y.npy")], [str(data / "zy" / "*.npz")]),
    ]:  # fmt: skip
        base = run_json([*whole, *metrics, *weights])
        shard_weights = ["--weights", str(data / "w")]
        out = run_json([*shards, *metrics, *shard_weights, "--dask", cluster])
        assert_same_numbers(out, base)


def test_cluster_single_file(data, base, cluster):
    """One file is fine too: its blocks are spread over the workers."""
    args = [str(data / "z.npy"), str(data / "y.npy"), *common_args()]
    out = run_json([*args, "--chunk-size", "500", "--dask", cluster])
    assert_same_numbers(out, base)


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "arrayloss", "eval", *args],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_local_cluster_is_started_and_closed(data, base):
    """``--dask`` alone starts its own cluster (in a subprocess, so that the
    workers' own standard error is seen too); paths after it stay paths."""
    pytest.importorskip("distributed")
    args = ["--dask", str(data / "z"), str(data / "y"), *common_args()]
    ok = run_cli(*args, "--dask-workers", "1", "--format", "json")
    assert ok.returncode == 0, ok.stderr
    assert ok.stderr == ""
    out = json.loads(ok.stdout)
    assert_same_numbers(out, base)
    assert out["dask"] == "local cluster (1 worker)"


def test_bad_row_in_a_shard_is_reported_from_the_worker(data, tmp_path, cluster):
    z = np.load(data / "z" / "part-2.npy")
    z[5, 3] = np.nan
    (tmp_path / "z").mkdir()
    for number in NUMBERS:
        part = z if number == 2 else np.load(data / "z" / f"part-{number}.npy")
        np.save(tmp_path / "z" / f"part-{number}.npy", part)
    want = (
        f"Error: SCORES '{tmp_path / 'z' / 'part-2.npy'}' row 5 contains NaN "
        "(--input logits)\n"
    )
    for extra in ([], ["--dask", cluster]):
        result = invoke([str(tmp_path / "z"), str(data / "y"), *extra], exit_code=1)
        assert one_error_line(result) == want
    # a local cluster's workers log nothing of it on standard error
    bad = run_cli(str(tmp_path / "z"), str(data / "y"), "--dask", "--dask-workers", "1")
    assert (bad.returncode, bad.stdout, bad.stderr) == (1, "", want)


def test_one_based_labels_on_the_cluster_say_so_only_when_seen(tmp_path, cluster):
    """1-based labels on the cluster: the hint where the block starts the file
    (every row before the bad one seen), none in a later block, whose rows
    before are another worker's."""
    rng = np.random.default_rng(31)
    np.save(tmp_path / "z.npy", rng.normal(size=(40, 4)))
    for at, hinted in ((3, True), (30, False)):
        y = np.arange(40) % 3 + 1
        y[at] = 4
        np.save(tmp_path / "y.npy", y)
        args = [str(tmp_path / "z.npy"), str(tmp_path / "y.npy"), "--dask", cluster]
        line = one_error_line(invoke([*args, "--chunk-size", "10"], exit_code=1))
        assert f"row {at}: label 4 is out of range for 4 classes" in line
        assert ("look 1-based" in line) == hinted


# --------------------------------------------------------------------------- #
# Errors
# --------------------------------------------------------------------------- #


def test_no_file_matches(data):
    result = invoke([str(data / "z" / "nope-*.npy"), str(data / "y")], exit_code=1)
    assert one_error_line(result) == (
        f"Error: no files match the SCORES pattern '{data / 'z' / 'nope-*.npy'}'\n"
    )


def test_file_counts_differ(data):
    result = invoke(
        [str(data / "z"), str(data / "y" / "part-1*.npy")], exit_code=1
    )  # 3 label files: part-1, part-10, part-11
    assert "names 5 files but LABELS" in one_error_line(result)
    assert "names 3; each shard needs its own labels file" in result.stderr


def test_missing_file_beside_shards_is_named_missing(data):
    """A SCORES, LABELS or --weights path that does not exist, beside a directory
    of shards, is reported as missing, not as a file count ('names 1 file but
    ... names 5')."""
    nope = str(data / "nope.npy")
    for args, which in (
        ([nope, str(data / "y")], "SCORES"),
        ([str(data / "z"), nope], "LABELS"),
        ([str(data / "z"), str(data / "y"), "--weights", nope], "--weights"),
    ):
        line = one_error_line(invoke(args, exit_code=1))
        assert (
            line == f"Error: cannot read {which} '{nope}': No such file or directory\n"
        )


@pytest.mark.parametrize("form", ["directory", "glob"])
@pytest.mark.parametrize("broken", ["zyw", "y", "w"])
def test_a_broken_symlink_among_shards_is_named_not_skipped(
    data, tmp_path, form, broken
):
    """A git-annex or DVC checkout whose data was never fetched holds symbolic
    links to missing files: such a shard was left out of the directory or
    pattern, so with one in each of SCORES, LABELS and --weights the numbers
    were those of the other shards, exit 0.  It is an error naming it."""
    folders = {}
    for name in "zyw":
        folder = tmp_path / name
        folder.mkdir()
        for shard in (data / name).glob("part-*.npy"):
            (folder / shard.name).symlink_to(shard)
        if name in broken:
            (folder / "part-99.npy").symlink_to(tmp_path / "annex" / name)
        folders[name] = str(folder if form == "directory" else folder / "part-*.npy")
    args = [folders["z"], folders["y"], "--weights", folders["w"]]
    role = {"z": "SCORES", "y": "LABELS", "w": "--weights"}[broken[0]]
    link = tmp_path / broken[0] / "part-99.npy"
    assert one_error_line(invoke(args, exit_code=1)) == (
        f"Error: {role} shard '{link}' is a symbolic link to a missing file "
        f"('{tmp_path / 'annex' / broken[0]}'): fetch its data or remove the link\n"
    )


@pytest.mark.parametrize(
    ("scores", "output", "refused"),
    [
        ("z", "z/rows.csv", True),  # a directory lists every shard suffix
        ("z", "z/rows.npy", True),
        ("z", "z/eval.json", False),  # not a suffix a directory lists
        ("z", "z/.rows.csv", False),  # hidden names are left out
        ("z/part-*.npy", "z/part-9.npy", True),
        ("z/part-*.npy", "z/rows.csv", False),  # the pattern does not match it
        ("z/*.npy", "z/sub/rows.npy", False),  # * stays within its directory
        ("z/**/*.npy", "z/sub/rows.npy", True),
    ],
)
def test_output_that_the_shards_would_read(data, tmp_path, scores, output, refused):
    """An output among the shards would be one more shard of the next run (its row
    count then differs from the labels'): bad usage, nothing written."""
    from arrayloss.io._paths import would_list

    assert would_list(str(data / scores), str(data / output)) is refused
    assert not would_list(str(data / scores), str(tmp_path / "rows.npy"))
    if not refused:
        return
    (data / "z" / "sub").mkdir(exist_ok=True)
    target = data / output
    args = [str(data / scores), str(data / "y"), "--per-sample", str(target)]
    line = one_error_line(invoke(args, exit_code=2))
    assert f"would be read as one more shard of SCORES '{data / scores}'" in line
    assert not target.exists()


def _empty_shard(folder, name):
    np.save(folder / "z" / name, np.zeros((0, C)))
    np.save(folder / "y" / name, np.zeros(0, dtype=np.int64))


@pytest.mark.parametrize("empty", ["a.npy", "part-5.npy", "part-99.npy"])
def test_shards_without_rows_add_nothing(data, base, tmp_path, empty, request):
    """A shard without rows (a Dask or Spark job's empty partition), first, in the
    middle or last, adds nothing, streamed or on a cluster (it was "has no rows",
    exit 1)."""
    for sub in ("z", "y"):
        (tmp_path / sub).mkdir()
        for n in NUMBERS:
            (tmp_path / sub / f"part-{n}.npy").symlink_to(data / sub / f"part-{n}.npy")
    _empty_shard(tmp_path, empty)
    args = [str(tmp_path / "z"), str(tmp_path / "y"), *common_args()]
    assert_same_numbers(run_json(args), base)
    if importlib.util.find_spec("distributed") is not None:
        cluster = request.getfixturevalue("cluster")
        assert_same_numbers(run_json([*args, "--dask", cluster]), base)


@pytest.mark.parametrize("dask", [False, True])
def test_shards_all_without_rows_are_an_error(tmp_path, dask, request):
    for sub in ("z", "y"):
        (tmp_path / sub).mkdir()
    for name in ("part-0.npy", "part-1.npy"):
        _empty_shard(tmp_path, name)
    extra = []
    if dask:
        pytest.importorskip("distributed")
        extra = ["--dask", request.getfixturevalue("cluster")]
    args = [str(tmp_path / "z"), str(tmp_path / "y"), *extra]
    line = one_error_line(invoke(args, exit_code=1))
    assert line == "Error: SCORES: none of its 2 files has rows\n"


@pytest.mark.parametrize("dask", [False, True])
def test_shard_row_counts_are_checked_before_any_work(data, tmp_path, dask):
    (tmp_path / "y").mkdir()
    for number in NUMBERS:
        y = np.load(data / "y" / f"part-{number}.npy")
        np.save(tmp_path / "y" / f"part-{number}.npy", y[:-1] if number == 10 else y)
    extra = ["--dask", "tcp://127.0.0.1:1"] if dask else []  # never reached
    if dask:
        pytest.importorskip("distributed")
    result = invoke([str(data / "z"), str(tmp_path / "y"), *extra], exit_code=1)
    assert one_error_line(result) == (
        f"Error: SCORES '{data / 'z' / 'part-10.npy'}' has 1100 rows but "
        f"LABELS '{tmp_path / 'y' / 'part-10.npy'}' has 1099\n"
    )


def test_unreachable_scheduler_fails_fast(data):
    pytest.importorskip("distributed")
    t0 = time.perf_counter()
    result = invoke(
        [str(data / "z.npy"), str(data / "y.npy"), "--dask", "tcp://127.0.0.1:1",
         "--dask-timeout", "1"],
        exit_code=1,
    )  # fmt: skip
    assert time.perf_counter() - t0 < 15
    assert one_error_line(result).startswith(
        "Error: cannot reach the Dask scheduler at tcp://127.0.0.1:1"
    )


def test_dask_not_installed_is_a_usage_error(data, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails
    result = invoke([str(data / "z"), str(data / "y"), "--dask"], exit_code=2)
    assert "Invalid value for '--dask': Dask is not installed" in result.stderr
    assert "pip install 'arrayloss[dask]'" in result.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--per-sample", "per.npy"], "--per-sample is not available with --dask"),
        (["--backend", "torch"], "--dask computes with NumPy on the workers"),
    ],
)
def test_dask_usage_errors(data, extra, message):
    pytest.importorskip("distributed")
    result = invoke([str(data / "z"), str(data / "y"), *extra, "--dask"], exit_code=2)
    assert f"Invalid value for '--dask': {message}" in result.stderr


def test_dask_reads_only_npy_and_npz(data, tmp_path):
    pytest.importorskip("distributed")
    (tmp_path / "y.txt").write_text("\n".join(map(str, np.load(data / "y.npy"))))
    result = invoke([str(data / "z.npy"), str(tmp_path / "y.txt"), "--dask"], 2)
    assert "--dask reads .npy and .npz files; LABELS" in result.stderr


@pytest.mark.parametrize(
    ("argv", "address", "scores", "labels"),
    [
        (["--dask", "a/", "b/"], "", "a/", "b/"),
        (["a/", "--dask", "b/"], "", "a/", "b/"),
        (["a/", "b/", "--dask"], "", "a/", "b/"),
        (["--dask", "tcp://h:8786", "a/", "b/"], "tcp://h:8786", "a/", "b/"),
        (["--dask", "h.example:8786", "a/", "b/"], "h.example:8786", "a/", "b/"),
        (["--dask=shards", "a/", "b/"], "shards", "a/", "b/"),
        (["a/", "b/"], None, "a/", "b/"),
    ],
)
def test_dask_takes_only_an_address_as_its_value(argv, address, scores, labels):
    from arrayloss.cli._eval import eval_command

    ctx = eval_command.make_context("eval", argv)
    assert ctx.params["dask_address"] == address
    assert (ctx.params["scores"], ctx.params["labels"]) == (scores, labels)


def test_cluster_report_is_identical_to_single_process(data, cluster, tmp_path):
    """--per-class, --confusion and MCE/RMSCE from block tallies merged on the
    cluster: equal, not close, to the streamed run."""
    report = ["--per-class", "--confusion", "--metric", "mce", "--metric", "rmsce"]
    weights = ["--weights", str(data / "w")]
    base = run_json([str(data / "z"), str(data / "y"), *report, *weights])
    args = [str(data / "z" / "part-*.npy"), str(data / "y"), *report, *weights]
    out = run_json([*args, "--chunk-size", "700", "--dask", cluster])
    for key in ("per_class", "confusion", "metrics"):
        assert out[key] == base[key], key
    assert sum(map(sum, out["confusion"]["matrix"])) > 0
    # --per-class alone keeps no matrix, only its 3 C sums: the same report
    alone = [*args[:2], "--per-class", "--metric", "mce", "--metric", "rmsce"]
    alone = run_json([*alone, *weights, "--chunk-size", "700", "--dask", cluster])
    assert "confusion" not in alone
    for key in ("per_class", "metrics"):
        assert alone[key] == base[key], key

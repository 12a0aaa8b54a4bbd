#!/usr/bin/env bash
# The GPU check of issue 18, in one call on a CUDA machine:
#
#   bash scripts/gpu_check.sh [--dry-run] OUTDIR
#
# 0. env.txt      the machine: Python, nvidia-smi, CuPy/torch versions and devices;
# 1. install.txt  the pure-Python wheels carried in .wheels/ (offline: --no-index);
# 2. pytest.txt   python -m pytest -x -q -k "cupy or cuda" (CuPy backend, CUDA torch);
# 3. bench_topk.txt      bench/bench_topk.py --backend cupy at (4096, 1000, 5),
#                        (4096, 1000, 50) and the FFT path at (4096, 1000, 200),
#                        against torch CUDA cross-entropy;
# 4. bench_backends.txt  bench/bench_backends.py --backends numpy,cupy (the CUDA rows
#                        with the NumPy ratio and torch CUDA's own cross-entropy);
# 5. bench_adapters.txt  bench/bench_adapters.py --device cuda --skip-jax (the
#                        arrayloss.torch adapter in a CUDA training step).
#
# Each step has its own time limit (`timeout`; GPU_CHECK_T_<STEP> seconds override
# the defaults below), writes its own file in OUTDIR as it goes (so a run cut short
# still leaves what it had), and a failed step does not stop the next ones.
# OUTDIR/summary.txt has one line per step: its exit status (124: time limit) and
# seconds.  The script exits 1 if any step failed.
#
# --dry-run runs the same plumbing without a GPU, in seconds: the install is pip's
# --dry-run, pytest only collects the selection (and fails if it is empty), each
# benchmark parses the device run's exact options and stops (options_*.txt), and
# bench_topk and bench_backends run tiny NumPy/CPU cases.
# The code is imported from this tree (PYTHONPATH=.), not installed.
# GPU_CHECK_TESTS (dry run only): test paths to collect instead of the whole suite.
#
# Preparing the wheels (CONTRIBUTING.md, "The GPU check"): the device has CuPy,
# torch, SciPy and pytest but no network.
set -uo pipefail

dry=0
if [[ "${1:-}" == "--dry-run" ]]; then
    dry=1
    shift
fi
if [[ $# -ne 1 ]]; then
    echo "usage: bash scripts/gpu_check.sh [--dry-run] OUTDIR" >&2
    exit 2
fi
out=$1
cd "$(dirname "$0")/.." || exit 2
mkdir -p "$out" || exit 2
out=$(cd "$out" && pwd)
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
python=${PYTHON:-python}
: >"$out/summary.txt"
failed=0

# step NAME LIMIT_SECONDS COMMAND...: run COMMAND under `timeout`, output to
# OUTDIR/NAME.txt, one line in summary.txt.
step() {
    local name=$1 limit=$2
    shift 2
    local var="GPU_CHECK_T_${name^^}"
    limit=${!var:-$limit}
    printf '== %s (limit %ss): %s\n' "$name" "$limit" "$*" | tee "$out/$name.txt"
    local start=$SECONDS rc=0
    if declare -F "$1" >/dev/null; then # a function of this script: in a child bash
        timeout --kill-after=10 "$limit" bash -c '"$@"' _ "$@" >>"$out/$name.txt" 2>&1 || rc=$?
    else
        timeout --kill-after=10 "$limit" "$@" >>"$out/$name.txt" 2>&1 || rc=$?
    fi
    local took=$((SECONDS - start))
    printf '%-16s rc=%-3s %4ss  %s\n' "$name" "$rc" "$took" "$*" >>"$out/summary.txt"
    tail -n 3 "$out/$name.txt"
    if [[ $rc -ne 0 ]]; then
        failed=1
        echo "-- $name failed (rc=$rc)"
    fi
    return 0
}

env_report() {
    date -u
    "$python" --version
    git rev-parse --short=12 HEAD 2>/dev/null || echo "not a git checkout"
    if [[ $dry -eq 0 ]]; then
        nvidia-smi || echo "nvidia-smi failed"
    fi
    "$python" - <<'PY'
import importlib
for name in ("numpy", "scipy", "cupy", "torch", "pytest", "hypothesis"):
    try:
        mod = importlib.import_module(name)
        print(name, getattr(mod, "__version__", "?"))
    except ImportError as exc:
        print(name, "not importable:", exc)
try:
    import cupy
    print("cupy devices:", cupy.cuda.runtime.getDeviceCount())
except Exception as exc:
    print("cupy devices: none", type(exc).__name__, exc)
try:
    import torch
    print("torch cuda:", torch.cuda.is_available(),
          torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
except Exception as exc:
    print("torch cuda: none", type(exc).__name__, exc)
PY
}

# Every distribution in .wheels/ by name: pip picks, per name, the newest wheel
# that fits this Python (array-api-extra has a 3.10 one beside the newest).
wheel_names() {
    local f
    for f in .wheels/*.whl; do
        [[ -e "$f" ]] || return 1
        f=${f##*/}
        echo "${f%%-*}"
    done | sort -u
}

collect_selection() {
    # The -k selection must not be empty, or the device run would check nothing.
    local log
    log=$("$python" -m pytest -q -p no:cacheprovider --collect-only -k "cupy or cuda" "$@")
    local rc=$?
    printf '%s\n' "$log" | tail -n 5
    [[ $rc -eq 0 ]] || return "$rc"
    printf '%s\n' "$log" | grep -Eq '^[0-9]+(/[0-9]+)? tests? (collected|selected)'
}

# parse_only SCRIPT ARGS...: run SCRIPT as a program up to its argument parsing
# (argparse's parse_args: unknown options, bad choices and bad values exit 2),
# print what it parsed and stop before any work.
parse_only() {
    "$python" - "$@" <<'PY'
import argparse, os, runpy, sys

script, *args = sys.argv[1:]
parse = argparse.ArgumentParser.parse_args

def parse_and_stop(self, *a, **k):
    ns = parse(self, *a, **k)
    print(f"{script} accepts {' '.join(args)}: {vars(ns)}")
    raise SystemExit(0)

argparse.ArgumentParser.parse_args = parse_and_stop
sys.argv = [script, *args]
sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
runpy.run_path(script, run_name="__main__")
raise SystemExit(f"{script} never parsed its arguments")
PY
}

export dry python
export -f env_report collect_selection parse_only
step env 60 env_report

# Into a folder of this tree on the path, not into the device's Python: nothing
# there is changed or upgraded, and an externally managed Python (PEP 668) is fine.
# --no-deps: .wheels/ carries every pure-Python dependency itself; NumPy (and
# typing_extensions, for exceptiongroup on Python 3.10) come with CuPy and torch.
site=$PWD/.gpu-site
if names=$(wheel_names); then
    rm -rf "$site"
    dry_flag=()
    [[ $dry -eq 1 ]] && dry_flag=(--dry-run)
    # shellcheck disable=SC2086
    step install 60 "$python" -m pip install "${dry_flag[@]}" --no-index --no-deps \
        --find-links .wheels --target "$site" $names
    export PYTHONPATH=$PYTHONPATH:$site
else
    echo "no wheels in .wheels/ (see CONTRIBUTING.md, The GPU check)" | tee "$out/install.txt"
    printf '%-16s rc=%-3s %4ss  %s\n' install skip 0 "no .wheels" >>"$out/summary.txt"
    [[ $dry -eq 1 ]] || failed=1
fi

# The device run's commands; the dry run checks that the benchmarks accept exactly
# these options (parse_only), then times tiny CPU stand-ins: the plumbing, not
# figures.
topk=(bench/bench_topk.py --backend cupy --repeats 20
    --case 4096,1000,5 --case 4096,1000,50 --case 4096,1000,200)
backends=(bench/bench_backends.py --backends numpy,cupy)
adapters=(bench/bench_adapters.py --device cuda --skip-jax)
if [[ $dry -eq 1 ]]; then
    # shellcheck disable=SC2086
    step pytest 120 collect_selection ${GPU_CHECK_TESTS-}
    step options_topk 60 parse_only "${topk[@]}"
    step options_backends 60 parse_only "${backends[@]}"
    step options_adapters 60 parse_only "${adapters[@]}"
    step bench_topk 120 "$python" bench/bench_topk.py --backend numpy --repeats 2 \
        --case 8,40,5 --case 8,40,20
    step bench_backends 120 "$python" bench/bench_backends.py --backends numpy,cupy \
        --batch 8 --classes 40 --repeats 2 --rounds 1
else
    step pytest 240 "$python" -m pytest -x -q -p no:cacheprovider -k "cupy or cuda"
    step bench_topk 150 "$python" "${topk[@]}"
    step bench_backends 60 "$python" "${backends[@]}"
    step bench_adapters 60 "$python" "${adapters[@]}"
fi

echo "== summary ($out/summary.txt)"
cat "$out/summary.txt"
exit "$failed"

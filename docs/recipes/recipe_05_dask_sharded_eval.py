r"""
Evaluate sharded predictions with Dask
======================================

Predictions too large for one file are often written in shards, one per worker
or per day. ``arrayloss eval`` takes a directory or a quoted glob of shards (paired
with the label shards in natural order: ``part-2`` before ``part-10``) and with
``--dask`` evaluates each shard on a worker of a Dask cluster, reducing exact
sufficient statistics on the cluster. Without an address it starts a local
cluster of ``--dask-workers`` processes and closes it afterwards; with one
(``--dask tcp://host:8786``) it uses yours, whose workers need arrayloss installed
and the same file paths.

.. code-block:: bash

    arrayloss eval 'shards/logits-*.npy' 'shards/labels-*.npy' --dask

The result is the same, to the last digit, as reading the shards one after another
on one machine; this script checks that, and computes the same loss a third way,
with `dask.array` directly.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import dask.array as da
import numpy as np

import arrayloss as al

rng = np.random.default_rng(0)
shards = Path(tempfile.mkdtemp()) / "shards"
shards.mkdir()
for part in range(4):
    labels = rng.integers(0, 20, size=5_000)
    logits = rng.normal(size=(5_000, 20)) + 3.0 * np.eye(20)[labels]
    np.save(shards / f"logits-{part}.npy", logits.astype(np.float32))
    np.save(shards / f"labels-{part}.npy", labels)


def arrayloss_eval(*options):
    command = [
        "arrayloss", "eval", str(shards / "logits-*.npy"), str(shards / "labels-*.npy"),
        "--loss", "cross_entropy", "--loss", "topk_entropy:k=3", "--top-k", "1,3",
        "--format", "json", "--quiet", *options,
    ]  # fmt: skip
    run = subprocess.run(
        [sys.executable, "-m", *command], capture_output=True, text=True, check=True
    )
    return json.loads(run.stdout)


on_dask = arrayloss_eval("--dask", "--dask-workers", "2")
streamed = arrayloss_eval()
print(json.dumps({k: on_dask[k] for k in ("n_samples", "losses", "metrics")}, indent=2))
assert on_dask["losses"] == streamed["losses"]
assert on_dask["metrics"] == streamed["metrics"]

# %%
# The same loss from Python: every loss accepts Dask arrays and builds a lazy
# graph, one task per block of rows, computed when asked.
z = da.concatenate([da.from_array(np.load(p)) for p in sorted(shards.glob("logits-*"))])
y = da.concatenate([da.from_array(np.load(p)) for p in sorted(shards.glob("labels-*"))])
value = al.cross_entropy(z, y).compute()
print(f"dask.array cross-entropy: {float(value):.6f}")
assert np.isclose(float(value), on_dask["losses"]["cross_entropy"], rtol=1e-6)

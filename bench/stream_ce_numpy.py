"""The comparator of ``bench_eval.py``: a plain streaming NumPy pass over a float32
``.npy`` of logits that does only what any cross-entropy needs.

It reads the file chunk by chunk into one buffer and takes, per chunk, the row max,
one ``exp`` of the shifted scores, their row sum and one ``log``, and gathers each
row's true-class score; it prints the mean cross-entropy (float64 accumulation).
With ``--reuse`` the temporaries are written into buffers allocated once
(``out=``), so no chunk pays page faults for fresh memory: the faster of the two
passes a NumPy script can do.

    python bench/stream_ce_numpy.py LOGITS.npy LABELS.npy ROWS_PER_CHUNK [--reuse]
"""

from __future__ import annotations

import sys

import numpy as np


def main() -> None:
    zpath, ypath, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
    reuse = "--reuse" in sys.argv[4:]
    y = np.load(ypath)
    fmt = np.lib.format
    with open(zpath, "rb") as f:
        version = fmt.read_magic(f)
        read_header = (
            fmt.read_array_header_1_0
            if version == (1, 0)
            else fmt.read_array_header_2_0
        )
        (n, c), _, dtype = read_header(f)
        buf = np.empty((rows, c), dtype=dtype)
        work = np.empty((rows, c), dtype=dtype)
        total = 0.0
        for a in range(0, n, rows):
            z = buf[: min(rows, n - a)]
            f.readinto(memoryview(z.reshape(-1).view(np.uint8)))
            m = z.max(axis=1, keepdims=True)
            if reuse:
                e = np.subtract(z, m, out=work[: z.shape[0]])
                lse = np.log(np.exp(e, out=e).sum(axis=1)) + m[:, 0]
            else:
                lse = np.log(np.exp(z - m).sum(axis=1)) + m[:, 0]
            picked = z[np.arange(z.shape[0]), y[a : a + z.shape[0]]]
            total += float(np.sum(lse - picked, dtype=np.float64))
    print(total / n)


if __name__ == "__main__":
    main()

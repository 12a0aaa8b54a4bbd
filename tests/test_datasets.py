"""Bundled and synthetic data, user files, label noise and splits."""

from __future__ import annotations

import gzip
import os
import struct
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arrayloss import datasets as ds
from arrayloss.datasets import DataError


def test_digits_bundled():
    d = ds.load_digits()
    assert d.x.shape == (1797, 64)
    assert d.x.dtype == np.float64
    assert d.y.dtype == np.int64
    assert d.n_classes == 10
    assert d.x.min() == 0.0
    assert d.x.max() == 1.0
    np.testing.assert_array_equal(
        np.bincount(d.y), [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    )


def test_synthetic_reproducible_and_grouped():
    a = ds.make_synthetic(20, n_per_class=10, seed=3)
    b = ds.make_synthetic(20, n_per_class=10, seed=3)
    c = ds.make_synthetic(20, n_per_class=10, seed=4)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.x, c.x)
    assert a.x.shape == (200, 32)
    assert np.all(np.abs(a.x) < 1)
    np.testing.assert_array_equal(np.bincount(a.y), np.full(20, 10))
    # Class means of one group lie closer together than those of different groups.
    big = ds.make_synthetic(100, n_per_class=200, seed=0)
    means = np.stack([big.x[big.y == c].mean(axis=0) for c in range(100)])
    dist = np.linalg.norm(means[:, None] - means[None], axis=-1)
    group = np.arange(100) // 5
    same = (group[:, None] == group[None]) & ~np.eye(100, dtype=bool)
    assert dist[same].mean() < 0.6 * dist[group[:, None] != group[None]].mean()


def test_synthetic_rejects_bad_sizes():
    with pytest.raises(ValueError, match="n_classes"):
        ds.make_synthetic(1)
    with pytest.raises(ValueError, match="n_per_class"):
        ds.make_synthetic(10, n_per_class=0)


@pytest.mark.parametrize("kind", ["symmetric", "pairflip"])
@pytest.mark.parametrize(
    ("n", "rate"),
    [(100, 0.0), (100, 0.2), (7, 0.5), (1000, 0.37), (10, 0.99), (1, 0.4)],
)
def test_label_noise_flips_exactly(n, rate, kind):
    rng = np.random.default_rng(n)
    y = rng.integers(0, 6, size=n)
    before = y.copy()
    noisy = ds.add_label_noise(y, rate, n_classes=6, kind=kind, seed=1)
    np.testing.assert_array_equal(y, before)  # input untouched
    changed = noisy != y
    assert changed.sum() == round(rate * n)
    assert noisy.min() >= 0
    assert noisy.max() < 6
    if kind == "pairflip":
        np.testing.assert_array_equal(noisy[changed], (y[changed] + 1) % 6)
    again = ds.add_label_noise(y, rate, n_classes=6, kind=kind, seed=1)
    np.testing.assert_array_equal(noisy, again)


def test_symmetric_noise_reaches_every_other_class():
    y = np.zeros(3000, dtype=np.int64)
    noisy = ds.add_label_noise(y, 0.5, n_classes=4, seed=0)
    counts = np.bincount(noisy, minlength=4)
    assert counts[0] == 1500
    assert all(400 < c < 600 for c in counts[1:])


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, float("nan")])
def test_label_noise_rate_out_of_range(rate):
    with pytest.raises(ValueError, match=r"rate.*\[0, 1\)"):
        ds.add_label_noise(np.zeros(5, dtype=np.int64), rate, n_classes=3)


def test_label_noise_bad_arguments():
    y = np.array([0, 1, 2])
    with pytest.raises(ValueError, match="kind"):
        ds.add_label_noise(y, 0.5, n_classes=3, kind="uniform")
    with pytest.raises(ValueError, match="lie in"):
        ds.add_label_noise(y, 0.5, n_classes=2)
    with pytest.raises(ValueError, match="at least 2 classes"):
        ds.add_label_noise(np.zeros(4, dtype=np.int64), 0.5, n_classes=1)
    with pytest.raises(ValueError, match="1-d integer"):
        ds.add_label_noise(np.zeros(4), 0.5, n_classes=3)


def test_splits_disjoint_and_reproducible():
    tr, va, te = ds.split_indices(101, val_fraction=0.2, test_fraction=0.3, seed=5)
    assert (len(va), len(te), len(tr)) == (20, 30, 51)
    everything = np.concatenate([tr, va, te])
    np.testing.assert_array_equal(np.sort(everything), np.arange(101))
    for a, b in zip(ds.split_indices(101, val_fraction=0.2, test_fraction=0.3, seed=5),
                    (tr, va, te), strict=True):  # fmt: skip
        np.testing.assert_array_equal(a, b)
    other = ds.split_indices(101, val_fraction=0.2, test_fraction=0.3, seed=6)
    assert not np.array_equal(other[2], te)
    with pytest.raises(ValueError, match="no training samples"):
        ds.split_indices(4, val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(ValueError, match="val_fraction"):
        ds.split_indices(4, val_fraction=1.0)


def test_split_of_dataset():
    d = ds.load_digits()
    s = ds.split(d, seed=0)
    assert (s.y_train.size, s.y_val.size, s.y_test.size) == (1079, 359, 359)
    _, va, te = ds.split_indices(d.y.size, seed=0)
    np.testing.assert_array_equal(s.x_test, d.x[te])
    np.testing.assert_array_equal(s.y_val, d.y[va])
    # A predefined test part is kept; validation comes out of the training part.
    pre = ds.Dataset(d.x[:100], d.y[:100], 10, "pre", d.x[100:130], d.y[100:130])
    s2 = ds.split(pre, val_fraction=0.25, seed=0)
    assert (s2.y_train.size, s2.y_val.size) == (75, 25)
    np.testing.assert_array_equal(s2.x_test, d.x[100:130])


# -- user files --------------------------------------------------------------------


def _idx_bytes(a: np.ndarray) -> bytes:
    code = {np.uint8: 0x08, np.int32: 0x0C, np.float32: 0x0D}[a.dtype.type]
    header = bytes([0, 0, code, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
    return header + a.astype(a.dtype.newbyteorder(">")).tobytes()


@pytest.fixture
def mnist_dir(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n, gz in (("train", 30, False), ("t10k", 10, True)):
        images = rng.integers(0, 256, size=(n, 4, 4), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        for name, arr in ((f"{prefix}-images-idx3-ubyte", images),
                          (f"{prefix}-labels-idx1-ubyte", labels)):  # fmt: skip
            data = _idx_bytes(arr)
            if gz:
                (tmp_path / (name + ".gz")).write_bytes(gzip.compress(data))
            else:
                (tmp_path / name).write_bytes(data)
    return tmp_path


def test_load_idx_roundtrip(tmp_path):
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 5
    p = tmp_path / "a.idx"
    p.write_bytes(_idx_bytes(a))
    np.testing.assert_array_equal(ds.load_idx(p), a)
    (tmp_path / "b.idx").write_bytes(gzip.compress(_idx_bytes(a)))
    np.testing.assert_array_equal(ds.load_idx(tmp_path / "b.idx"), a)


def test_load_mnist_directory_and_file(mnist_dir):
    d = ds.load_mnist(mnist_dir)
    assert d.x.shape == (30, 16)
    assert d.x_test.shape == (10, 16)
    assert 0 <= d.x.min() <= d.x.max() <= 1
    assert d.n_classes >= 2
    via_load = ds.load(str(mnist_dir))
    np.testing.assert_array_equal(via_load.x, d.x)
    single = ds.load(str(mnist_dir / "train-images-idx3-ubyte"))
    np.testing.assert_array_equal(single.y, d.y)
    assert single.x_test is None


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "bad magic number empty"),
        (b"hello world", "bad magic number"),
        (bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"abc", r"holds 3 bytes"),
        (bytes([0, 0, 8, 3]) + b"\0\0", "truncated IDX header"),
        (b"\x1f\x8bnot really gzip", "cannot read IDX"),
    ],
)
def test_load_idx_unreadable(tmp_path, content, match):
    p = tmp_path / "bad-images-idx3-ubyte"
    p.write_bytes(content)
    with pytest.raises(DataError, match=match) as info:
        ds.load_idx(p)
    assert str(p) in str(info.value)
    assert "\n" not in str(info.value)


def test_load_mnist_problems(tmp_path, mnist_dir):
    with pytest.raises(DataError, match="no such file"):
        ds.load_idx(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no train-images"):
        ds.load_mnist(empty)
    (mnist_dir / "train-labels-idx1-ubyte").write_bytes(
        _idx_bytes(np.zeros(7, dtype=np.uint8))
    )
    with pytest.raises(DataError, match="7 labels for 30 samples"):
        ds.load_mnist(mnist_dir)


def test_load_npz(tmp_path):
    rng = np.random.default_rng(0)
    p = tmp_path / "d.npz"
    np.savez(p, x=rng.integers(0, 17, size=(20, 8, 8)), y=np.arange(20) % 4)
    d = ds.load_npz(p)
    assert d.x.shape == (20, 64)
    assert d.x.max() == 1.0
    assert d.n_classes == 4
    np.savez(p, X=rng.normal(size=(6, 3)), labels=np.arange(6) % 3,
             x_test=rng.normal(size=(2, 3)), y_test=np.array([0, 2]))  # fmt: skip
    d = ds.load(str(p))
    assert d.n_classes == 3  # a larger test label: see test_test_labels_outside_...
    assert d.x_test.shape == (2, 3)


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"a": np.zeros(3)}, "needs arrays 'x' and 'y'"),
        ({"x": np.zeros((3, 2)), "y": np.zeros(3)}, "1-d integer"),
        (
            {"x": np.zeros((3, 2)), "y": np.zeros(2, dtype=int)},
            "2 labels for 3 samples",
        ),
        ({"x": np.full((2, 2), np.nan), "y": np.zeros(2, dtype=int)}, "NaN"),
        ({"x": np.zeros(3), "y": np.zeros(3, dtype=int)}, r"shape \(n, d, ...\)"),
        ({"x": np.zeros((2, 1)), "y": np.array([-1, 0])}, ">= 0"),
        (
            {"x": np.zeros((2, 1)), "y": np.array([0, 3]), "n_classes": 2},
            "out of range",
        ),
    ],
)
def test_load_npz_bad_content(tmp_path, arrays, match):
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    with pytest.raises(DataError, match=match):
        ds.load_npz(p)


def test_load_npz_unreadable(tmp_path):
    p = tmp_path / "junk.npz"
    p.write_bytes(b"definitely not a zip file")
    with pytest.raises(DataError, match=r"not a readable \.npz"):
        ds.load_npz(p)
    with pytest.raises(DataError, match="no such file"):
        ds.load_npz(tmp_path / "missing.npz")
    p = tmp_path / "single.npz"
    with open(p, "wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(DataError, match=r"not an \.npz archive"):
        ds.load_npz(p)
    p = tmp_path / "obj.npz"
    np.savez(p, x=np.array([object()], dtype=object), y=np.zeros(1, dtype=int))
    with pytest.raises(DataError, match=r"not a readable \.npz"):
        ds.load_npz(p)


def test_load_by_name_and_unknown(tmp_path):
    assert ds.load("digits").n_classes == 10
    assert ds.load("synthetic").n_classes == 100
    with pytest.raises(DataError, match="unknown data set 'mnist'"):
        ds.load("mnist")
    p = tmp_path / "data.txt"
    p.write_text("1,2,3")
    with pytest.raises(DataError, match="unknown file type"):
        ds.load(str(p))


def test_npz_suffix_in_capitals(tmp_path):
    """``DATA.NPZ`` (a name from Windows) was 'unknown file type (expected .npz, ...)'."""
    p = tmp_path / "DATA.NPZ"
    with open(p, "wb") as f:
        np.savez(f, x=np.eye(6), y=np.arange(6) % 2)
    assert ds.load(str(p)).name == "DATA.NPZ"


# -- adversarial files: every problem is a DataError naming the file -----------------


def test_bool_features_are_zero_one(tmp_path):
    p = tmp_path / "b.npz"
    np.savez(p, x=np.eye(4, dtype=bool), y=np.arange(4) % 2)
    d = ds.load_npz(p)
    assert d.x.dtype == np.float64
    np.testing.assert_array_equal(d.x, np.eye(4))


def test_integer_features_of_both_parts_share_one_scale(tmp_path):
    """Integer features were divided by their largest value part by part: an
    x_test of counts up to 50 beside an x up to 100 came out twice the scale
    the model was trained on (and so did the t10k IDX files of MNIST)."""
    x = np.arange(40).reshape(20, 2) * 100 // 39
    x_test = np.arange(20).reshape(10, 2) * 50 // 19
    p = tmp_path / "ints.npz"
    np.savez(p, x=x, y=np.arange(20) % 2, x_test=x_test, y_test=np.arange(10) % 2)
    d = ds.load_npz(p)
    np.testing.assert_array_equal(d.x, x / 100)
    np.testing.assert_array_equal(d.x_test, x_test / 100)
    np.savez(
        p, x=x, y=np.arange(20) % 2, x_test=x_test / 50.0, y_test=np.arange(10) % 2
    )
    with pytest.raises(DataError, match="x holds integers and x_test floats"):
        ds.load_npz(p)
    for prefix, images in (("train", x), ("t10k", x_test)):
        (tmp_path / f"{prefix}-images-idx3-ubyte").write_bytes(
            _idx_bytes(images.astype(np.int32)[:, :, None])
        )
        labels = (np.arange(len(images)) % 2).astype(np.uint8)
        (tmp_path / f"{prefix}-labels-idx1-ubyte").write_bytes(_idx_bytes(labels))
    m = ds.load_mnist(tmp_path)
    np.testing.assert_array_equal(m.x, x / 100)
    np.testing.assert_array_equal(m.x_test, x_test / 100)


@pytest.mark.parametrize(
    "gone", ["t10k-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz"]
)
def test_half_a_mnist_test_part_is_refused(mnist_dir, gone):
    """t10k images without their labels (or labels without images) were left
    out without a word: the test part was drawn from the training images."""
    (mnist_dir / gone).unlink()
    kept = "t10k-images-idx3-ubyte" if "labels" in gone else "t10k-labels-idx1-ubyte"
    with pytest.raises(DataError, match=rf"{kept}\[.gz\] without t10k-"):
        ds.load_mnist(mnist_dir)


def test_mnist_test_images_of_another_size_are_refused(mnist_dir):
    """t10k images of another size than the train images were loaded, and
    training failed at the first test prediction on NumPy's shape mismatch."""
    images = np.zeros((10, 5, 5), dtype=np.uint8)
    (mnist_dir / "t10k-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(_idx_bytes(images))
    )
    with pytest.raises(
        DataError, match="t10k images have 25 pixels, the train images 16"
    ):
        ds.load_mnist(mnist_dir)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (np.float64(3.0), "one integer"),
        (np.array([3]), "one integer"),
        (np.array("3"), "one integer"),
        (np.bool_(True), "one integer"),
        (np.int64(1), r"in \[2, "),
        (np.uint64(2**64 - 1), "18446744073709551615"),
    ],
)
def test_npz_class_count_checked(tmp_path, value, match):
    p = tmp_path / "c.npz"
    np.savez(p, x=np.zeros((4, 2)), y=np.zeros(4, dtype=int), n_classes=value)
    with pytest.raises(DataError, match=match):
        ds.load_npz(p)


def test_npz_class_count_accepted(tmp_path):
    p = tmp_path / "c.npz"
    np.savez(p, x=np.zeros((4, 2)), y=np.arange(4) % 2, n_classes=np.uint8(9))
    assert ds.load_npz(p).n_classes == 9


def test_uint64_labels_are_not_wrapped(tmp_path):
    p = tmp_path / "u.npz"
    np.savez(p, x=np.zeros((3, 2)), y=np.array([0, 1, 2**64 - 1], dtype=np.uint64))
    with pytest.raises(DataError, match="label 18446744073709551615 is too large"):
        ds.load_npz(p)
    np.savez(p, x=np.zeros((3, 2)), y=np.array([0, 1, 2], dtype=np.uint64))
    assert ds.load_npz(p).y.dtype == np.int64


def test_fifo_and_broken_link_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "f.npz"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="not a regular file"):
        ds.load_npz(fifo)
    with pytest.raises(DataError, match="not a regular file"):
        ds.load(str(fifo))
    idx = tmp_path / "train-images-idx3-ubyte"
    os.mkfifo(idx)
    with pytest.raises(DataError, match="not a regular file"):
        ds.load_idx(idx)
    link = tmp_path / "l.npz"
    link.symlink_to(tmp_path / "missing.npz")
    with pytest.raises(DataError, match="broken symbolic link"):
        ds.load(str(link))
    with pytest.raises(DataError, match="a directory"):
        ds.load_npz(tmp_path)


def test_corrupt_gzip_idx(tmp_path):
    p = tmp_path / "x-idx.gz"
    p.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"\xff" * 20)
    with pytest.raises(DataError, match="cannot read IDX file"):
        ds.load_idx(p)


# -- bombs: files whose headers, or compressed streams, claim far more than they hold


def _peak_bytes(call) -> int:
    """The most memory Python and NumPy held at once while ``call()`` ran."""
    import tracemalloc

    tracemalloc.start()
    try:
        call()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def _refused(path, match):
    def call():
        with pytest.raises(DataError, match=match) as info:
            ds.load(str(path))
        assert "\n" not in str(info.value)

    return call


def test_gzip_bomb_behind_a_small_idx_header_is_not_decompressed(tmp_path):
    """A 64 KiB .gz whose header promises 40 bytes and whose stream holds 64 MiB:
    all of it was decompressed into memory before its size was compared."""
    head = _idx_bytes(np.zeros((10, 2, 2), np.uint8))
    p = tmp_path / "train-images-idx3-ubyte.gz"
    p.write_bytes(gzip.compress(head + bytes(64 << 20), 9))
    assert p.stat().st_size < 1 << 20
    peak = _peak_bytes(_refused(p, "holds more than 40 bytes of data"))
    assert peak < 8 << 20, peak


@pytest.mark.parametrize("packed", [False, True])
def test_idx_claiming_more_than_memory_is_refused_unread(tmp_path, monkeypatch, packed):
    monkeypatch.setattr(ds, "_memory", lambda: 1 << 20)  # a machine of 1 MiB
    data = _idx_bytes(np.zeros((1000, 28, 28), np.uint8))  # 6 MiB as float64
    p = tmp_path / "x-images-idx3-ubyte"
    p.write_bytes(gzip.compress(data) if packed else data)
    match = r"shape \(1000, 28, 28\): 784000 values \(0.00584 GiB .* memory \(0.000977"
    assert _peak_bytes(_refused(p, match)) < 1 << 20


def test_idx_header_that_the_file_size_contradicts_reads_none_of_it(tmp_path):
    """A (sparse) 64 MiB file whose header says 10 bytes: it was read whole."""
    p = tmp_path / "x-images-idx3-ubyte"
    p.write_bytes(_idx_bytes(np.zeros(10, np.uint8))[:8])
    os.truncate(p, 64 << 20)
    match = (
        rf"says shape \(10,\) \(10 bytes\) but the file holds {(64 << 20) - 8} bytes"
    )
    assert _peak_bytes(_refused(p, match)) < 1 << 20


@pytest.mark.parametrize(
    ("dims", "match"),
    [
        ((2**32 - 1,) * 4, "more than this machine's memory"),  # 2**128: no overflow
        ((0, 2**32 - 1), "n >= 1 and d >= 1"),  # no values: nothing to train on
        ((2**31, 2), "more than this machine's memory"),
    ],
)
def test_idx_headers_claiming_absurd_shapes(tmp_path, dims, match):
    head = bytes([0, 0, 8, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)
    tail = bytes(100 if dims[0] else 0)  # what a small bomb's stream holds
    for name, raw in (("a", head), ("b", gzip.compress(head + tail))):
        p = tmp_path / f"{name}-images-idx3-ubyte"
        p.write_bytes(raw)
        (tmp_path / f"{name}-labels-idx1-ubyte").write_bytes(
            _idx_bytes(np.zeros(0, np.uint8))
        )
        if name == "a" and dims[0]:  # a plain file: its size says it first
            _refused(p, "bytes of data")()
        else:
            _refused(p, match)()


@pytest.mark.parametrize("cut", ["stream", "trailer", "crc"])
def test_damaged_gzip_idx_is_one_line(tmp_path, cut):
    packed = bytearray(gzip.compress(_idx_bytes(np.arange(200, dtype=np.uint8))))
    if cut == "stream":
        packed = packed[: len(packed) // 2]
    elif cut == "trailer":
        packed = packed[:-3]
    else:
        packed[-6] ^= 0xFF  # the CRC of the data
    p = tmp_path / "x-images-idx3-ubyte.gz"
    p.write_bytes(bytes(packed))
    _refused(p, "cannot read IDX file")()


def _npz_members(path, members):
    import io
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, value in members.items():
            if isinstance(value, np.ndarray):
                buf = io.BytesIO()
                np.save(buf, value)
                value = buf.getvalue()
            z.writestr(name, value)
    return path


def test_npz_header_claiming_more_than_its_member_holds_allocates_nothing(tmp_path):
    """NumPy allocated the shape an .npy header claims (8 GB here) before it
    found the member holds 80 bytes."""
    fake = np.lib.format
    buf = __import__("io").BytesIO()
    fake.write_array_header_1_0(
        buf, {"descr": "<f8", "fortran_order": False, "shape": (10**9,)}
    )
    p = _npz_members(
        tmp_path / "d.npz",
        {"x.npy": buf.getvalue() + bytes(80), "y.npy": np.arange(30) % 3},
    )
    match = r"header of 'x' says shape \(1000000000,\) \(8000000000 bytes\) but the archive holds 80"
    assert _peak_bytes(_refused(p, match)) < 1 << 20


def test_npz_member_that_is_no_npy_array_is_bad_data(tmp_path):
    """A member 'x' that is not an .npy array came back as bytes: AttributeError."""
    p = _npz_members(tmp_path / "d.npz", {"x": b"hello", "y.npy": np.arange(3)})
    _refused(p, "'x' is not an .npy array")()


def test_npz_members_not_used_are_never_read(tmp_path):
    """A 64 MiB member beside x and y (compressed to 64 KiB) was read whole."""
    rng = np.random.default_rng(0)
    p = tmp_path / "d.npz"
    np.savez_compressed(
        p, x=rng.normal(size=(30, 4)), y=np.arange(30) % 3,
        junk=np.zeros(64 << 20, np.uint8),
    )  # fmt: skip
    assert p.stat().st_size < 1 << 20
    data = []
    peak = _peak_bytes(lambda: data.append(ds.load(str(p))))
    assert data[0].x.shape == (30, 4)
    assert peak < 8 << 20, peak


@pytest.mark.parametrize("form", ["idx", "npz"])
def test_loading_holds_one_float64_copy_of_the_features(tmp_path, form):
    """Loading held two or three float64 copies of the features at once (17 to
    18 bytes a value: ``astype(float64) / 255`` and a second ``astype``), a
    data set of half the memory out of reach.  Now one (and its source)."""
    n = 100_000
    rng = np.random.default_rng(0)
    if form == "idx":
        pixels = rng.integers(0, 256, (n, 10), dtype=np.uint8)
        (tmp_path / "train-images-idx3-ubyte").write_bytes(_idx_bytes(pixels))
        (tmp_path / "train-labels-idx1-ubyte").write_bytes(
            _idx_bytes((np.arange(n) % 3).astype(np.uint8))
        )
        path, want = tmp_path, pixels / 255.0
    else:
        want = rng.normal(size=(n, 10))
        path = tmp_path / "d.npz"
        np.savez(path, x=want, y=np.arange(n) % 3)
    out = []
    peak = _peak_bytes(lambda: out.append(ds.load(str(path))))
    np.testing.assert_array_equal(out[0].x, want)  # the same numbers
    assert peak < 12 * want.size, peak / want.size


def test_memory_is_a_containers_limit_where_lower(tmp_path, monkeypatch):
    """In a container of 1 MiB on a machine of many GiB, data (and a model, in
    train and study) were held against the machine's memory: killed, not told."""
    physical = ds._memory()
    assert physical is not None
    assert physical > 1 << 20
    v2, v1 = tmp_path / "memory.max", tmp_path / "memory.limit_in_bytes"
    v2.write_text("max\n")  # no limit in v2's words
    v1.write_text(f"{1 << 20}\n")
    monkeypatch.setattr(ds, "_CGROUP_LIMITS", (str(v2), str(v1), str(tmp_path / "x")))
    assert ds._memory() == 1 << 20
    v1.write_text(f"{2**63 - 4096}\n")  # v1's "unlimited"
    assert ds._memory() == physical


def test_npz_larger_than_memory_is_refused_unread(tmp_path, monkeypatch):
    monkeypatch.setattr(ds, "_memory", lambda: 1000)
    p = tmp_path / "d.npz"
    np.savez(p, x=np.zeros((30, 4)), y=np.arange(30) % 3)
    _refused(p, r"its arrays: 150 values \(1.12e-06 GiB as float64")()


@pytest.mark.parametrize("n", [1, 2])
def test_too_few_samples_to_split(n):
    d = ds.Dataset(np.zeros((n, 2)), np.zeros(n, dtype=np.int64), 2, "tiny")
    with pytest.raises(DataError, match=r"tiny: too few samples to split"):
        ds.split(d)
    assert ds.split(ds.Dataset(np.zeros((3, 2)), np.arange(3) % 2, 2, "ok"))


@pytest.mark.parametrize("n_classes", [2, 3])
def test_one_class_data_is_refused(n_classes):
    """Labels of one class were trained on as a data set of 2 classes: top-2
    accuracy 1.0, accuracy 1.0 by predicting that class whatever the input."""
    d = ds.Dataset(np.zeros((30, 2)), np.full(30, 1), n_classes, "same")
    with pytest.raises(DataError, match=r"same: every label is 1: one class only"):
        ds.split(d)


def test_no_training_samples_is_a_data_error():
    with pytest.raises(DataError, match="too few samples to split"):
        ds.split_indices(4, val_fraction=0.5, test_fraction=0.5)


_DTYPES = ["int8", "uint8", "int64", "uint64", "float16", "float64", "bool",
           "complex64", "U2"]  # fmt: skip


@st.composite
def _array(draw: st.DrawFn) -> np.ndarray:
    shape = draw(st.lists(st.integers(0, 4), min_size=0, max_size=3))
    dtype = np.dtype(draw(st.sampled_from(_DTYPES)))
    size = int(np.prod(shape))
    values = draw(
        st.lists(
            st.sampled_from([0, 1, 2, 3, -1, 255, 2**63 - 1, np.nan, np.inf, 1e300]),
            min_size=size, max_size=size,
        )
    )  # fmt: skip
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (
            np.array(np.array(values, dtype=object).astype(float))
            .astype(dtype)
            .reshape(shape)
        )


@st.composite
def _npz_arrays(draw: st.DrawFn) -> dict[str, np.ndarray]:
    """A valid data file, then some of its arrays replaced by arbitrary ones."""
    n, d = draw(st.integers(1, 5)), draw(st.integers(1, 3))
    arrays = {"x": np.arange(n * d, dtype=float).reshape(n, d), "y": np.arange(n) % 3}
    if draw(st.booleans()):
        arrays["x_test"], arrays["y_test"] = arrays["x"][:2], arrays["y"][:2]
    if draw(st.booleans()):
        arrays["n_classes"] = np.array(draw(st.integers(-1, 5)))
    for key in ("x", "y", "x_test", "y_test", "n_classes", "labels"):
        if draw(st.integers(0, 3)) == 0:
            arrays[key] = draw(_array())
    return arrays


@settings(max_examples=80, deadline=None)
@given(arrays=_npz_arrays())
def test_any_npz_loads_validly_or_raises_data_error(tmp_path_factory, arrays):
    """Property: a valid `Dataset` or a `DataError` naming the file, nothing else."""
    p = tmp_path_factory.mktemp("npz") / "h.npz"
    np.savez(p, **arrays)
    try:
        d = ds.load_npz(p)
    except DataError as exc:
        message = str(exc)
        d = None
    if d is None:
        assert str(p) in message
        return
    for x, y in ((d.x, d.y), (d.x_test, d.y_test)):
        if x is None:
            assert y is None
            continue
        assert x.dtype == np.float64
        assert x.ndim == 2
        assert x.shape[1] >= 1
        assert np.all(np.isfinite(x))
        assert y.dtype == np.int64
        assert y.shape == (x.shape[0],)
        assert y.min() >= 0
        assert y.max() < d.n_classes
    assert 2 <= d.n_classes <= ds.MAX_CLASSES


def test_test_labels_outside_the_training_classes_are_refused(tmp_path, mnist_dir):
    """A test label above every training label (no ``n_classes`` declared)
    enlarged the class count without a word: one more output the training
    never saw a label of.  It is an error naming the label and the classes;
    a declared ``n_classes`` still takes it."""
    rng = np.random.default_rng(0)
    arrays = {"x": rng.normal(size=(30, 4)), "y": np.arange(30) % 3,
              "x_test": rng.normal(size=(6, 4)), "y_test": np.arange(6) % 5}  # fmt: skip
    p = tmp_path / "d.npz"
    np.savez(p, **arrays)
    with pytest.raises(
        DataError, match=r"test label 4 is not among the classes 0\.\.2 of the "
        r"training labels; declare n_classes"
    ):  # fmt: skip
        ds.load(str(p))
    np.savez(p, **arrays, n_classes=5)
    assert ds.load(str(p)).n_classes == 5
    train = ds.load_mnist(mnist_dir).y
    labels = np.full(10, train.max() + 1, dtype=np.uint8)
    (mnist_dir / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(_idx_bytes(labels))
    )
    with pytest.raises(DataError, match=rf"test label {train.max() + 1} is not"):
        ds.load_mnist(mnist_dir)


def test_mnist_file_both_gzipped_and_plain_is_refused(mnist_dir):
    """A folder holding train-images-idx3-ubyte and its .gz used the plain one
    without a word, whichever the user had meant (a newer download, say)."""
    plain = mnist_dir / "t10k-labels-idx1-ubyte"
    plain.write_bytes(gzip.decompress((mnist_dir / f"{plain.name}.gz").read_bytes()))
    with pytest.raises(
        DataError,
        match=r": both t10k-labels-idx1-ubyte and t10k-labels-idx1-ubyte\.gz, one file",
    ):
        ds.load_mnist(mnist_dir)

"""Small classification data sets, label noise and fixed splits, all offline.

- `load_digits`: the UCI optical digits, 1 797 images of 8×8 pixels, 10 classes,
  bundled in ``arrayloss/data/digits/``. Source: UCI Machine Learning Repository,
  "Optical Recognition of Handwritten Digits", E. Alpaydin and C. Kaynak (1998),
  licensed CC BY 4.0; the file is the copy scikit-learn ships.
- `make_synthetic`: Gaussian classes in confusable groups (100 classes by default),
  where top-5 accuracy means something.
- `load_mnist1d`: MNIST-1D (Greydanus 2020), 5 000 one-dimensional signals of 40
  points, 10 classes, generated offline by the ``mnist1d`` package (the optional
  extra ``data``: ``pip install 'arrayloss[data]'``).
- `load_npz`, `load_idx`, `load_mnist`: user files (MNIST's IDX format, ``.npz``).
  `load` picks one from a name or a path, as ``arrayloss train --data`` does.
- `add_label_noise`: symmetric or pair-flip noise that flips exactly
  ``round(rate * n)`` labels, each to a different class.
- `split`: train/validation/test parts fixed by a seed.

Everything here is NumPy on the host: features come back as float64 in [0, 1]
(integer pixels are divided by the largest value; MNIST-1D keeps its generator's
standardised signals), labels as int64. A file that
cannot be read raises `DataError`, whose message names the file.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ._errors import DataError, one_line, printable, utf8_text

__all__ = [
    "DataError",
    "Dataset",
    "Splits",
    "add_label_noise",
    "load",
    "load_digits",
    "load_idx",
    "load_mnist",
    "load_mnist1d",
    "load_npz",
    "make_synthetic",
    "split",
    "split_indices",
]

NOISE_KINDS = ("symmetric", "pairflip")

# Integers are dtype kinds "i" and "u" ("iu" below), floats "f": not
# np.issubdtype(..., np.integer), which holds for timedelta64 too (a feature or
# label of them ended in "internal error (TypeError: float() argument ...)").

# IDX type codes: https://yann.lecun.com/exdb/mnist/ (big-endian data).
_IDX_DTYPES = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


@dataclass(frozen=True, eq=False)
class Dataset:
    """Features and labels, with an optional predefined test part.

    Attributes
    ----------
    x : ndarray of shape (n, d), float64
        Features.
    y : ndarray of shape (n,), int64
        Class indices in ``[0, n_classes)``.
    n_classes : int
        Number of classes.
    name : str
        What the data is, for reports.
    x_test, y_test : ndarray or None
        A test part fixed by the source (MNIST's ``t10k`` files); `split` then
        draws only the validation part from ``x``.
    """

    x: np.ndarray
    y: np.ndarray
    n_classes: int
    name: str
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class Splits:
    """Train, validation and test parts of a `Dataset`."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    name: str


def load_digits() -> Dataset:
    """The UCI optical digits bundled with arrayloss: 1 797 images, 10 classes.

    Returns
    -------
    Dataset
        ``x`` of shape (1797, 64), pixels scaled from 0..16 to [0, 1]; ``y`` the
        digit 0..9.

    Notes
    -----
    UCI Machine Learning Repository, "Optical Recognition of Handwritten Digits"
    (test set), E. Alpaydin and C. Kaynak, 1998; CC BY 4.0. See
    ``arrayloss/data/digits/README.md``.

    Examples
    --------
    >>> from arrayloss.datasets import load_digits
    >>> d = load_digits()
    >>> d.x.shape, d.n_classes
    ((1797, 64), 10)
    """
    ref = resources.files("arrayloss").joinpath("data", "digits", "digits.csv.gz")
    with ref.open("rb") as raw, gzip.open(raw, "rt") as f:
        table = np.loadtxt(f, delimiter=",")
    x = table[:, :-1] / 16.0
    y = table[:, -1].astype(np.int64)
    return Dataset(x, y, 10, "digits")


MNIST1D_HINT = "pip install 'arrayloss[data]'"


def load_mnist1d(*, n_samples: int = 5000, seed: int = 42) -> Dataset:
    """MNIST-1D: one-dimensional digit templates, shifted, sheared and noised.

    Generated on the fly (offline, about 2 s) by the ``mnist1d`` package with its
    default arguments: 10 templates padded, scaled, translated by up to 48 of 72
    points, with correlated and i.i.d. noise and a shear, resampled to 40 points;
    the whole set is standardised to mean 0 and standard deviation 1. The first
    80 % of the samples are the training part, the rest the predefined test part
    (as the package splits it). It is much harder than digits for an MLP, whose
    accuracy then leaves room to separate losses.

    Parameters
    ----------
    n_samples : int, default 5000
        Samples in all, split 80/20 into training and test parts.
    seed : int, default 42
        The package's seed (its default gives the published set's settings).

    Returns
    -------
    Dataset
        ``x`` of shape (0.8 n, 40), ``x_test`` of shape (0.2 n, 40), float64;
        labels 0..9, int64.

    Raises
    ------
    ModuleNotFoundError
        When ``mnist1d`` is not installed; the message names the extra.

    Notes
    -----
    S. Greydanus and D. Kobak, "Scaling down deep learning with MNIST-1D",
    ICML 2024 (arXiv:2011.14439). The package seeds NumPy's and Python's global
    generators; their states are restored afterwards.

    Examples
    --------
    >>> from arrayloss.datasets import load_mnist1d
    >>> d = load_mnist1d()  # doctest: +SKIP
    >>> d.x.shape, d.x_test.shape, d.n_classes  # doctest: +SKIP
    ((4000, 40), (1000, 40), 10)
    """
    import importlib
    import random

    for name, value, low in (("n_samples", n_samples, 20), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            msg = f"`{name}` must be an integer >= {low} (got {name}={value!r})"
            raise ValueError(msg)
    try:
        generator = importlib.import_module("mnist1d.data")
    except ModuleNotFoundError as exc:
        msg = f"MNIST-1D needs the mnist1d package: {MNIST1D_HINT} ({exc})"
        raise ModuleNotFoundError(msg, name="mnist1d") from None
    args = generator.get_dataset_args()
    args.num_samples, args.seed = n_samples, seed
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    try:
        raw = generator.make_dataset(args)
    finally:
        np.random.set_state(np_state)  # noqa: NPY002
        random.setstate(py_state)
    x, x_test = (np.asarray(raw[k], dtype=np.float64) for k in ("x", "x_test"))
    y, y_test = (np.asarray(raw[k], dtype=np.int64) for k in ("y", "y_test"))
    return Dataset(x, y, 10, "mnist1d", x_test, y_test)


def make_synthetic(
    n_classes: int = 100,
    *,
    n_per_class: int = 30,
    n_features: int = 32,
    group_size: int = 5,
    group_spread: float = 0.8,
    class_spread: float = 0.4,
    seed: int = 0,
) -> Dataset:
    """Gaussian classes in groups of look-alikes, for many-class experiments.

    Group centres are drawn with standard deviation ``group_spread`` about the
    origin, the class means of a group with ``class_spread`` about its centre, and
    every sample is its class mean plus standard normal noise, squashed by
    ``tanh(z / 2)`` so that the classes are not linearly separable. Classes
    ``g*group_size ... (g+1)*group_size - 1`` form group ``g``. The classes of a
    group are easily confused with each other and less often with other groups, so
    top-1 accuracy stays well below top-``group_size`` accuracy (with the defaults
    an MLP reaches about 0.6 top-1 and 0.95 top-5 accuracy).

    Parameters
    ----------
    n_classes : int, default 100
        Number of classes (at least 2).
    n_per_class : int, default 30
        Samples per class.
    n_features : int, default 32
        Dimension of ``x``.
    group_size : int, default 5
        Classes per group; the last group may be smaller.
    group_spread, class_spread : float
        Standard deviations of the group centres and of the class means about their
        group centre, in units of the sample noise.
    seed : int, default 0
        Seed of the generator; the same arguments give the same data.

    Returns
    -------
    Dataset
        ``x`` of shape (n_classes * n_per_class, n_features) in (-1, 1), shuffled.

    Examples
    --------
    >>> from arrayloss.datasets import make_synthetic
    >>> d = make_synthetic(20, n_per_class=5, seed=1)
    >>> d.x.shape, d.n_classes
    ((100, 32), 20)
    """
    for name, value, low in (
        ("n_classes", n_classes, 2),
        ("n_per_class", n_per_class, 1),
        ("n_features", n_features, 1),
        ("group_size", group_size, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            msg = f"`{name}` must be an integer >= {low} (got {name}={value!r})"
            raise ValueError(msg)
    rng = np.random.default_rng(seed)
    n_groups = math.ceil(n_classes / group_size)
    centres = rng.normal(scale=group_spread, size=(n_groups, n_features))
    group = np.arange(n_classes) // group_size
    means = centres[group] + rng.normal(
        scale=class_spread, size=(n_classes, n_features)
    )
    y = np.repeat(np.arange(n_classes, dtype=np.int64), n_per_class)
    x = np.tanh((means[y] + rng.normal(size=(y.size, n_features))) / 2)
    order = rng.permutation(y.size)
    return Dataset(x[order], y[order], n_classes, f"synthetic{n_classes}")


def add_label_noise(
    labels: np.ndarray,
    rate: float,
    *,
    n_classes: int,
    kind: str = "symmetric",
    seed: int = 0,
) -> np.ndarray:
    """Flip exactly ``round(rate * n)`` labels, each to a different class.

    Parameters
    ----------
    labels : ndarray of shape (n,)
        Integer class indices in ``[0, n_classes)``; not modified.
    rate : float
        Fraction of labels to flip, in ``[0, 1)``.
    n_classes : int
        Number of classes (at least 2 when ``rate > 0``).
    kind : {"symmetric", "pairflip"}
        ``"symmetric"``: a flipped label becomes one of the other ``n_classes - 1``
        classes, uniformly. ``"pairflip"``: class ``c`` becomes ``(c + 1) %
        n_classes``, the structured noise of Han et al. (2018).
    seed : int, default 0
        Which labels flip, and to what, is fixed by the seed.

    Returns
    -------
    ndarray of shape (n,), int64
        The noisy labels; exactly ``round(rate * n)`` of them differ from ``labels``.

    Raises
    ------
    ValueError
        For a rate outside ``[0, 1)``, an unknown ``kind``, or labels out of range.

    Examples
    --------
    >>> import numpy as np
    >>> from arrayloss.datasets import add_label_noise
    >>> y = np.zeros(10, dtype=np.int64)
    >>> int((add_label_noise(y, 0.3, n_classes=3, seed=0) != y).sum())
    3
    """
    rate = float(rate)
    if not 0 <= rate < 1:
        msg = f"label noise `rate` must be in [0, 1) (got {rate:g})"
        raise ValueError(msg)
    if kind not in NOISE_KINDS:
        msg = f"noise `kind` must be 'symmetric' or 'pairflip' (got {kind!r})"
        raise ValueError(msg)
    y = np.asarray(labels)
    if y.ndim != 1 or y.dtype.kind not in "iu":
        msg = f"`labels` must be a 1-d integer array (got shape {y.shape}, {y.dtype})"
        raise ValueError(msg)
    y = y.astype(np.int64)  # a copy: the caller's labels stay as they were
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        msg = f"`labels` must lie in [0, {n_classes - 1}] (found {y.min()}..{y.max()})"
        raise ValueError(msg)
    n_flip = round(rate * y.size)
    if n_flip == 0:
        return y
    if n_classes < 2:
        msg = f"label noise needs at least 2 classes (got n_classes={n_classes})"
        raise ValueError(msg)
    rng = np.random.default_rng(seed)
    idx = rng.choice(y.size, size=n_flip, replace=False)
    shift = 1 if kind == "pairflip" else rng.integers(1, n_classes, size=n_flip)
    y[idx] = (y[idx] + shift) % n_classes
    return y


def split_indices(
    n: int, *, val_fraction: float = 0.2, test_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Disjoint train, validation and test indices covering ``range(n)``.

    The validation and test parts have ``round(fraction * n)`` samples each; the
    rest is the training part. The same ``n``, fractions and seed give the same
    indices, each part sorted.

    Raises
    ------
    ValueError
        For a fraction outside [0, 1); `DataError` (a `ValueError`) when no
        training samples are left.
    """
    for name, frac in (
        ("val_fraction", val_fraction),
        ("test_fraction", test_fraction),
    ):
        if not 0 <= frac < 1:
            msg = f"`{name}` must be in [0, 1) (got {frac:g})"
            raise ValueError(msg)
    n_val, n_test = round(val_fraction * n), round(test_fraction * n)
    if n - n_val - n_test < 1:
        msg = (
            f"too few samples to split: {n} samples leave no training samples "
            f"(val_fraction={val_fraction:g}, test_fraction={test_fraction:g})"
        )
        raise DataError(msg)
    order = np.random.default_rng(seed).permutation(n)
    val, test = order[:n_val], order[n_val : n_val + n_test]
    train = order[n_val + n_test :]
    return np.sort(train), np.sort(val), np.sort(test)


def split(
    data: Dataset,
    *,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Splits:
    """Train/validation/test parts of ``data``, fixed by ``seed``.

    When ``data`` has its own test part (MNIST), that part is the test set and
    ``test_fraction`` is ignored; the validation part is drawn from ``data.x``.

    Raises
    ------
    DataError
        When a part with a non-zero fraction would be empty, or no training
        samples are left (too few samples to split), or every label is one class.

    Examples
    --------
    >>> from arrayloss.datasets import load_digits, split
    >>> s = split(load_digits(), seed=0)
    >>> len(s.y_train), len(s.y_val), len(s.y_test)
    (1079, 359, 359)
    """
    if data.x_test is not None and data.y_test is not None:
        tr, va, _ = split_indices(
            data.y.size, val_fraction=val_fraction, test_fraction=0, seed=seed
        )
        x_test, y_test = data.x_test, data.y_test
    else:
        tr, va, te = split_indices(
            data.y.size,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            seed=seed,
        )
        x_test, y_test = data.x[te], data.y[te]
    for part, size, fraction in (
        ("validation", va.size, val_fraction),
        ("test", y_test.size, test_fraction if data.x_test is None else 1.0),
    ):
        if fraction > 0 and size == 0:
            msg = (
                f"{data.name}: too few samples to split ({data.y.size}): the "
                f"{part} part would be empty"
            )
            raise DataError(msg)
    if int(data.y.min()) == int(data.y.max()):  # (a model of it predicts that
        # class whatever the input: accuracy 1 "of 2 classes", saying nothing)
        msg = (
            f"{data.name}: every label is {int(data.y[0])}: one class only, nothing "
            "for a classifier to learn (it needs samples of two classes or more)"
        )
        raise DataError(msg)
    return Splits(
        data.x[tr], data.y[tr], data.x[va], data.y[va], x_test, y_test,
        data.n_classes, data.name,
    )  # fmt: skip


# -- user files --------------------------------------------------------------------


def _integer_scale(
    parts: dict[str, np.ndarray], path: os.PathLike[str] | str
) -> float | None:
    """The one divisor of integer features for every part of a data set (``x`` and
    ``x_test``): their largest value, so that a test part is scaled as the
    training part is (``None`` when they hold no integers). `DataError` when one
    part holds integers and another floats, which no one divisor puts on one
    scale."""
    ints = {k: v for k, v in parts.items() if v.dtype.kind in "iu"}
    floats = [k for k, v in parts.items() if v.dtype.kind == "f"]
    if ints and floats:
        msg = (
            f"{path}: {next(iter(ints))} holds integers and {floats[0]} floats; "
            "give both parts the same kind of numbers"
        )
        raise DataError(msg)
    tops = [float(v.max()) for v in ints.values() if v.size]
    if not tops:
        return None
    return max(tops) if max(tops) > 0 else 1.0


def _features(
    x: np.ndarray, path: os.PathLike[str] | str, scale: float | None = None
) -> np.ndarray:
    """(n, ...) numbers as float64 (n, d): booleans as 0/1, integers divided by
    ``scale`` (default their largest value; `_integer_scale` of all the parts)."""
    if x.ndim < 2 or x.shape[0] == 0 or math.prod(x.shape[1:]) == 0:
        msg = (
            f"{path}: features must have shape (n, d, ...) with n >= 1 and d >= 1 "
            f"(got {x.shape})"
        )
        raise DataError(msg)
    # One float64 array at most beside ``x`` (which is the loader's own: a float64
    # ``x`` is used as it is); the scaling divides in place.
    if x.dtype == np.bool_:
        out = x.astype(np.float64)
    elif x.dtype.kind in "iu":
        top = float(x.max()) if scale is None else scale
        out = x.astype(np.float64)
        out /= top if top > 0 else 1.0
    elif x.dtype.kind == "f":
        out = x.astype(np.float64, copy=False)
    else:
        msg = f"{path}: features must be real numbers (got dtype {x.dtype})"
        raise DataError(msg)
    out = out.reshape(out.shape[0], -1)
    if not np.all(np.isfinite(out)):
        msg = f"{path}: features contain NaN or infinite values"
        raise DataError(msg)
    return out


# The largest class count accepted: the scores of one sample must fit in memory.
MAX_CLASSES = 1 << 24


def _labels(y: np.ndarray, n: int, path: os.PathLike[str] | str) -> np.ndarray:
    if y.ndim != 1 or y.dtype.kind not in "iu":
        msg = f"{path}: labels must be a 1-d integer array (got shape {y.shape}, dtype {y.dtype})"
        raise DataError(msg)
    if y.size != n:
        msg = f"{path}: {y.size} labels for {n} samples"
        raise DataError(msg)
    # Compare as Python integers: a uint64 label of 2**64 - 1 must not wrap to -1.
    low, high = int(y.min()), int(y.max())
    if low < 0:
        msg = f"{path}: labels must be class indices >= 0 (found {low})"
        raise DataError(msg)
    if high >= MAX_CLASSES:
        msg = f"{path}: label {high} is too large (at most {MAX_CLASSES} classes)"
        raise DataError(msg)
    return y.astype(np.int64)


def _n_classes(*labels: np.ndarray) -> int:
    top = max((int(y.max()) for y in labels if y.size), default=0)
    return max(top + 1, 2)


def _test_classes(
    y: np.ndarray, y_test: np.ndarray | None, path: os.PathLike[str] | str, hint: str
) -> None:
    """`DataError` for a test label above every training label: without a
    declared class count it enlarged the class count, a class no run can learn,
    without a word."""
    if y_test is None or not y_test.size or not y.size:
        return
    top, test_top = int(y.max()), int(y_test.max())
    if test_top > top:
        msg = (
            f"{path}: test label {test_top} is not among the classes 0..{top} of "
            f"the training labels{hint}"
        )
        raise DataError(msg)


def _given_n_classes(value: np.ndarray, path: os.PathLike[str] | str) -> int:
    """The ``n_classes`` entry of an ``.npz`` file: one integer in [2, MAX_CLASSES]."""
    if value.ndim != 0 or value.dtype.kind not in "iu":
        msg = (
            f"{path}: n_classes must be one integer (got shape {value.shape}, "
            f"dtype {value.dtype})"
        )
        raise DataError(msg)
    n = int(value)
    if not 2 <= n <= MAX_CLASSES:
        msg = f"{path}: n_classes must be in [2, {MAX_CLASSES}] (got {n})"
        raise DataError(msg)
    return n


def _name(path: os.PathLike[str] | str) -> str:
    """The name of a data file in reports: its base name, as UTF-8 text with its
    control characters escaped (`printable`): a file named with a newline split
    the study's tables, one with ``ESC [31m`` drove the terminal that printed
    ``train``'s results."""
    return printable(utf8_text(Path(path).name))


def _check_regular(path: os.PathLike[str] | str) -> None:
    """`DataError` unless ``path`` is a regular file (or a link to one).

    Reading a FIFO or a device would block or never end, so they are refused
    before they are opened.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        msg = f"{path}: no such file"
        raise DataError(msg) from None
    except OSError as exc:
        msg = f"{path}: cannot read ({exc.strerror or exc})"
        raise DataError(msg) from None
    if not stat.S_ISREG(mode):
        what = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        msg = f"{path}: {what}"
        raise DataError(msg)


_X_KEYS = ("x", "X", "images")
_Y_KEYS = ("y", "labels")
_NPZ_KEYS = (*_X_KEYS, *_Y_KEYS, "x_test", "y_test", "n_classes")
"""The members of an ``.npz`` data set that `load_npz` reads (no other)."""


def _npz_keys(files: list[str]) -> list[str]:
    return [k.removesuffix(".npy") for k in files]


_CGROUP_LIMITS = (
    "/sys/fs/cgroup/memory.max",  # cgroup v2 ("max": no limit)
    "/sys/fs/cgroup/memory/memory.limit_in_bytes",  # cgroup v1
)


def _memory() -> int | None:
    """The memory this process may use, in bytes (``None`` where unknown): the
    machine's physical memory, or a container's (cgroup) limit where lower.  No
    data set claiming more as float64 features can be loaded, so none is read."""
    try:
        total = int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return None
    for limit in _CGROUP_LIMITS:
        try:
            with open(limit) as f:
                total = min(total, int(f.read().strip()))
        except (OSError, ValueError):  # none there, or "max"
            continue
    return total


def _check_fits(path: os.PathLike[str] | str, what: str, n_values: int) -> None:
    """`DataError` when ``n_values`` numbers, as float64, exceed `_memory`."""
    memory = _memory()
    need = n_values * 8
    if memory is not None and need > memory:
        msg = (
            f"{path}: {what}: {n_values} values ({need / 2**30:.3g} GiB as float64 "
            f"features), more than this machine's memory ({memory / 2**30:.3g} GiB)"
        )
        raise DataError(msg)


def _check_npz_members(
    zf: zipfile.ZipFile, keys: list[str], path: os.PathLike[str] | str
) -> None:
    """Each member ``keys`` of an ``.npz`` is an ``.npy`` array whose header's
    shape its bytes hold, and all of them fit in memory as float64 (`_check_fits`):
    NumPy allocates the shape a header claims before it reads a byte, and reads
    what the archive says a member holds, however much that is."""
    from .io._npy import _read_npy_header

    names = set(zf.namelist())
    total = 0
    for key in keys:
        info = zf.getinfo(key + ".npy" if key + ".npy" in names else key)
        with zf.open(info) as member:
            try:
                shape, _, dtype = _read_npy_header(member)
            except (ValueError, SyntaxError, EOFError) as exc:
                msg = f"{path}: {key!r} is not an .npy array ({one_line(exc)})"
                raise DataError(msg) from None
            need = math.prod(shape) * dtype.itemsize
            have = info.file_size - member.tell()
        if need > have and not dtype.hasobject:  # (pickles: NumPy refuses them)
            msg = (
                f"{path}: the header of {key!r} says shape {shape} ({need} bytes) "
                f"but the archive holds {have} bytes of it"
            )
            raise DataError(msg)
        total += math.prod(shape)
    _check_fits(path, "its arrays", total)


def load_npz(path: os.PathLike[str] | str) -> Dataset:
    """Features and labels from a NumPy ``.npz`` file.

    The file holds ``x`` (or ``X`` or ``images``) of shape (n, ...) and ``y`` (or
    ``labels``) of shape (n,) with integer classes; optionally ``x_test`` and
    ``y_test``, and ``n_classes`` (otherwise the largest training label + 1; a
    test label above it is then an error, not a class no training label has).
    No other member is read.

    Raises
    ------
    DataError
        When the file is missing, is not an ``.npz`` archive, or lacks the arrays;
        when an array's header claims more bytes than the archive holds of it, or
        the arrays more values than this machine's memory holds as float64 (both
        found before the data are read).
    """
    from .io._npy import ZIP_ERRORS  # (not at import: arrayloss.io takes 25 ms)

    _check_regular(path)
    try:
        # np.load leaks its own file handle on a bad archive: open it here.
        with open(path, "rb") as fh:
            if fh.read(6) == np.lib.format.MAGIC_PREFIX:
                msg = f"{path}: not an .npz archive (a single array?)"
                raise DataError(msg)
            fh.seek(0)
            loaded = np.load(fh, allow_pickle=False)
            if not isinstance(loaded, np.lib.npyio.NpzFile):
                msg = f"{path}: not an .npz archive (a single array?)"
                raise DataError(msg)
            with loaded as f:
                # only the arrays used, each checked before it is read: any other
                # member, and the claims of a header, are never decompressed
                wanted = [k for k in _NPZ_KEYS if k in f.files]
                assert loaded.zip is not None  # open until the `with` ends
                _check_npz_members(loaded.zip, wanted, path)
                arrays = {k: f[k] for k in wanted}
    except DataError:
        raise
    except FileNotFoundError:
        msg = f"{path}: no such file"
        raise DataError(msg) from None
    except (ValueError, *ZIP_ERRORS) as exc:
        msg = f"{path}: not a readable .npz file ({exc})"
        raise DataError(msg) from None
    if not arrays:
        have = ", ".join(sorted(_npz_keys(loaded.files))) or "none"
        msg = f"{path}: needs arrays 'x' and 'y' (found {have})"
        raise DataError(msg)
    xkey = next((k for k in _X_KEYS if k in arrays), None)
    ykey = next((k for k in _Y_KEYS if k in arrays), None)
    if xkey is None or ykey is None:
        have = ", ".join(sorted(_npz_keys(loaded.files))) or "none"
        msg = f"{path}: needs arrays 'x' and 'y' (found {have})"
        raise DataError(msg)
    has_test = {"x_test": arrays["x_test"]} if "x_test" in arrays else {}
    scale = _integer_scale({xkey: arrays[xkey], **has_test}, path)
    x = _features(arrays[xkey], path, scale)
    y = _labels(arrays[ykey], x.shape[0], path)
    x_test = y_test = None
    if ("x_test" in arrays) != ("y_test" in arrays):
        have, lack = (
            ("x_test", "y_test") if "x_test" in arrays else ("y_test", "x_test")
        )
        msg = f"{path}: has {have} but no {lack} (a test part needs both)"
        raise DataError(msg)
    if "x_test" in arrays:
        x_test = _features(arrays["x_test"], path, scale)
        y_test = _labels(arrays["y_test"], x_test.shape[0], path)
        if x_test.shape[1] != x.shape[1]:
            msg = f"{path}: x_test has {x_test.shape[1]} features, x has {x.shape[1]}"
            raise DataError(msg)
    if "n_classes" not in arrays:
        _test_classes(y, y_test, path, "; declare n_classes in the file if it has more")
    n_classes = (
        _given_n_classes(arrays["n_classes"], path) if "n_classes" in arrays
        else _n_classes(y, *(() if y_test is None else (y_test,)))
    )  # fmt: skip
    for part in (y, y_test):
        if part is not None and part.max() >= n_classes:
            msg = f"{path}: label {part.max()} out of range for n_classes={n_classes}"
            raise DataError(msg)
    return Dataset(x, y, n_classes, _name(path), x_test, y_test)


def load_idx(path: os.PathLike[str] | str) -> np.ndarray:
    """One array from an IDX file (MNIST's format), gzipped or not.

    Raises
    ------
    DataError
        When the file is missing, has a bad magic number, is truncated or holds
        more than its header says, or its header claims more values than this
        machine's memory holds as float64; each is found before the data
        are read (a gzipped file is decompressed only up to the header's size).
    """
    _check_regular(path)
    try:
        with open(path, "rb") as raw:
            packed = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            if not packed:
                return _read_idx(raw, path, os.fstat(raw.fileno()).st_size)
            with gzip.GzipFile(fileobj=raw, mode="rb") as f:
                return _read_idx(f, path, None)
    except FileNotFoundError:
        msg = f"{path}: no such file"
        raise DataError(msg) from None
    except (OSError, EOFError, zlib.error) as exc:
        msg = f"{path}: cannot read IDX file ({exc})"
        raise DataError(msg) from None


_IDX_CHUNK = 1 << 20  # bytes decompressed at a time


def _read_idx(
    f: io.BufferedIOBase, path: os.PathLike[str] | str, file_size: int | None
) -> np.ndarray:
    """The array of the IDX stream ``f`` (``file_size``: its size, ``None`` for a
    decompressed stream). Its header is checked before any data is read: against
    the file's size, or this machine's memory (`_check_fits`); a stream is then
    read in chunks up to the header's size and one byte more (a gzip bomb behind
    a small header is never decompressed)."""
    magic = f.read(4)
    if (
        len(magic) < 4
        or magic[:2] != b"\0\0"
        or magic[2] not in _IDX_DTYPES
        or magic[3] == 0
    ):
        msg = f"{path}: not an IDX file (bad magic number {magic.hex() or 'empty'})"
        raise DataError(msg)
    dtype, ndim = np.dtype(_IDX_DTYPES[magic[2]]), magic[3]
    dims = f.read(4 * ndim)
    if len(dims) < 4 * ndim:
        msg = f"{path}: truncated IDX header"
        raise DataError(msg)
    shape = struct.unpack(f">{ndim}I", dims)
    size = math.prod(shape) * dtype.itemsize
    said = f"{path}: IDX header says shape {shape} ({size} bytes)"
    if file_size is not None and file_size - 4 - 4 * ndim != size:
        held = file_size - 4 - 4 * ndim
        msg = f"{said} but the file holds {held} bytes of data"
        raise DataError(msg)
    _check_fits(path, f"IDX header says shape {shape}", math.prod(shape))
    out = np.empty(size, np.uint8)  # pages taken as the data arrive
    view, got = out.data, 0
    while got < size:
        n = f.readinto(view[got : got + _IDX_CHUNK])
        if not n:
            msg = f"{said} but the file holds {got} bytes of data"
            raise DataError(msg)
        got += n
    if f.read(1):  # and reads a gzip member to its end: its CRC is checked
        msg = f"{said} but the file holds more than {size} bytes of data"
        raise DataError(msg)
    return out.view(dtype).reshape(shape).astype(dtype.newbyteorder("="), copy=False)


_MNIST = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _find(directory: Path, stem: str) -> Path | None:
    """The one file of ``directory`` named ``stem`` (``-idx`` or ``.idx``,
    ``.gz`` or not); `DataError` for two of them (``train-images-idx3-ubyte``
    beside its ``.gz``: which one is meant cannot be told, one was taken)."""
    found = [
        directory / name
        for name in (
            stem,
            stem + ".gz",
            stem.replace("-idx", ".idx"),
            stem.replace("-idx", ".idx") + ".gz",
        )
        if (directory / name).is_file()
    ]
    if len(found) > 1:
        names = [p.name for p in found]
        both = (
            f"both {names[0]} and {names[1]}"
            if len(names) == 2
            else (", ".join(names[:-1]) + f" and {names[-1]}")
        )
        msg = f"{directory}: {both}, one file in several forms; keep one of them"
        raise DataError(msg)
    return found[0] if found else None


def load_mnist(path: os.PathLike[str] | str) -> Dataset:
    """MNIST-style IDX files: a directory, or an images file and its labels file.

    A directory must hold ``train-images-idx3-ubyte`` and
    ``train-labels-idx1-ubyte`` (``.gz`` allowed; one file both plain and
    gzipped is an error) and may hold the ``t10k-`` pair (both files, or
    neither), which becomes the predefined test part; its labels must be among
    those of the training part (a class only the test part has is an error).
    For a single images file, the labels file is found by replacing
    ``images-idx3`` with ``labels-idx1`` in its name.

    Raises
    ------
    DataError
        When a file is missing or unreadable, or the two files disagree.
    """
    p = Path(path)
    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    sources: dict[str, Path] = {"train": p}  # the images file of each part
    if p.is_dir():
        for part, (images, labels) in _MNIST.items():
            img, lab = _find(p, images), _find(p, labels)
            if img is None or lab is None:
                if part == "train":
                    msg = f"{p}: no {images}[.gz] and {labels}[.gz] in this directory"
                    raise DataError(msg)
                if img is not None or lab is not None:  # half a test part: it
                    # was left out without a word, the test part drawn from train
                    have, lack = (
                        (images, labels) if img is not None else (labels, images)
                    )
                    msg = (
                        f"{p}: {have}[.gz] without {lack}[.gz]; give both (the "
                        "test part) or neither"
                    )
                    raise DataError(msg)
                continue
            parts[part], sources[part] = _idx_pair(img, lab), img
    else:
        if "images-idx3" not in p.name:
            msg = (
                f"{p}: cannot find the labels file (expected a name with 'images-idx3')"
            )
            raise DataError(msg)
        parts["train"] = _idx_pair(
            p, p.with_name(p.name.replace("images-idx3", "labels-idx1"))
        )
    # One scale for both parts (IDX files of integers wider than a byte).
    scale = _integer_scale({k: v[0] for k, v in parts.items()}, p)
    x = _features(parts["train"][0], sources["train"], scale)
    y = parts["train"][1]
    x_test = y_test = None
    if "test" in parts:
        x_test = _features(parts["test"][0], sources["test"], scale)
        y_test = parts["test"][1]
        if x_test.shape[1] != x.shape[1]:
            msg = (
                f"{p}: the t10k images have {x_test.shape[1]} pixels, the train "
                f"images {x.shape[1]}"
            )
            raise DataError(msg)
    _test_classes(y, y_test, p, "")
    n_classes = _n_classes(y, *(() if y_test is None else (y_test,)))
    return Dataset(x, y, n_classes, _name(p), x_test, y_test)


def _idx_pair(images: Path, labels: Path) -> tuple[np.ndarray, np.ndarray]:
    x = load_idx(images)
    # Pixels are scaled by the format's range, not the data's (in place: one
    # float64 array, where two were held at once).
    if x.dtype == np.uint8:
        x = x.astype(np.float64)
        x /= 255.0
    _features(x[:1], images)  # the shape and numbers, before the labels
    return x, _labels(load_idx(labels), x.shape[0], labels)


def load(spec: str, *, seed: int = 0) -> Dataset:
    """A data set by name (``"digits"``, ``"synthetic"``, ``"mnist1d"``) or by path.

    A path is read by its form: ``*.npz`` with `load_npz`; a directory or an
    ``*images-idx3*`` file with `load_mnist`. ``seed`` only matters for
    ``"synthetic"``.

    Raises
    ------
    DataError
        For an unknown name, a missing path, or a file that cannot be read.
    ModuleNotFoundError
        For ``"mnist1d"`` without the ``mnist1d`` package (see `load_mnist1d`).
    """
    if spec == "digits":
        return load_digits()
    if spec == "mnist1d":
        return load_mnist1d()
    if spec == "synthetic":
        return make_synthetic(seed=seed)
    p = Path(spec)
    if p.is_symlink() and not p.exists():
        msg = f"{p}: a broken symbolic link (to {os.readlink(p)!r})"
        raise DataError(msg)
    if not p.exists():
        msg = (
            f"unknown data set {spec!r}: not 'digits', 'synthetic', 'mnist1d' or an "
            "existing path"
        )
        raise DataError(msg)
    if p.is_dir():
        return load_mnist(p)
    if p.suffix.lower() == ".npz":  # FOO.NPZ too
        return load_npz(p)
    if "idx" in p.name:
        return load_mnist(p)
    msg = f"{p}: unknown file type (expected .npz, an IDX images file or a directory)"
    raise DataError(msg)

"""The Keras 2.10 catalogue (``arrayloss.keras``): reference values, one-hot
identities, Keras' clipping, and a literal NumPy transcription of Keras' formulas."""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np
import pytest
from conftest import Backend, assert_allclose, covering, to_numpy
from scipy.differentiate import derivative
from scipy.special import log_softmax, softmax

import arrayloss.keras as K
from arrayloss._kinks._keras import KINKS, _level_distance
from arrayloss.losses import _keras

EPS = 1e-7
S = np.array([[1.0, 2.5, -0.3, 0.7, 3.1]])
Y = np.array([2])

NAMES = (
    "categorical_crossentropy",
    "kl_divergence",
    "poisson",
    "categorical_hinge",
    "hinge",
    "squared_hinge",
    "mean_squared_error",
    "mean_absolute_error",
    "mean_absolute_percentage_error",
    "mean_squared_logarithmic_error",
    "log_cosh",
    "huber",
    "cosine_similarity",
)

# docs/design/refvalues.txt, "Keras 2.10 formulas on p=softmax(s)": value, gradient (central
# differences with h = 1e-6, good to about 1e-9 absolute; about 0.05 for MAPE,
# whose value is 2e8).
REF: dict[str, tuple[float, list[float]]] = {
    "categorical_crossentropy": (
        3.985205162,
        [0.068207199, 0.3056834583, -0.9814113695, 0.05052913599, 0.5569915766],
    ),
    "kl_divergence": (
        3.985199459,
        [0.06820712639, 0.3056834805, -0.9814113622, 0.05052905649, 0.5569916994],
    ),
    "categorical_hinge": (
        1.538402946,
        [-0.0367229569, -0.1645808746, -0.02859680359, -0.02720503556, 0.2571056706],
    ),
    "hinge": (
        1.192564548,
        [0.0005071513209, 0.00227289465, -0.007297237148, 0.000375707021, 0.004141484156],
    ),
    "squared_hinge": (
        1.467375685,
        [-0.008344427593, -0.008360103498, -0.01751396261, -0.00653900678, 0.04075750004],
    ),
    "poisson": (
        0.9970399565,
        [0.01364136643, 0.06113636286, -0.1962812181, 0.01010577283, 0.1113977161],
    ),
    "mean_squared_error": (
        0.2748111371,
        [-0.008851578776, -0.0106329982, -0.01021672522, -0.006914713746, 0.036616016],
    ),
    "mean_absolute_error": (
        0.3925645479,
        [0.0005071513764, 0.002272894761, -0.007297237259, 0.0003757069933, 0.004141484183],
    ),
    "mean_absolute_percentage_error": (
        196282293.6,
        [253575.6975, 1136447.489, -3648619.026, 187853.5151, 2070742.324],
    ),
    "mean_squared_logarithmic_error": (
        0.1458436667,
        [-0.00418347143, -0.001323521681, -0.006524767227, -0.0033992473, 0.01543100756],
    ),
    "log_cosh": (
        0.1234028981,
        [-0.004057172806, -0.00421915395, -0.00416085353, -0.003183646201, 0.01562082654],
    ),
    "huber": (
        0.1374055685,
        [-0.004425789388, -0.005316499102, -0.005108362608, -0.003457356873, 0.018308008],
    ),
    "cosine_similarity": (
        -0.02898701121,
        [0.0003279260908, 0.006586571552, -0.02896265497, 0.0001799696538, 0.02186818768],
    ),
}  # fmt: skip


def _fns(name: str) -> tuple[Any, Any]:
    return getattr(K, name), getattr(K, f"{name}_and_grad")


def _one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    return (np.arange(n_classes) == labels[:, None]).astype(np.float64)


def _keras_reference(
    name: str, q: np.ndarray, t: np.ndarray, **kw: float
) -> np.ndarray:
    """Keras 2.10 ``keras/losses.py``, transcribed literally to NumPy (per sample)."""
    eps = kw.get("epsilon", EPS)
    if name == "categorical_crossentropy":  # the logits path: exact log-softmax
        raise AssertionError("needs logits")
    if name == "kl_divergence":
        tc, qc = np.clip(t, eps, 1), np.clip(q, eps, 1)
        return np.sum(tc * np.log(tc / qc), axis=-1)
    if name == "poisson":
        return np.mean(q - t * np.log(q + eps), axis=-1)
    if name == "categorical_hinge":
        pos = np.sum(t * q, axis=-1)
        neg = np.max((1.0 - t) * q, axis=-1)
        return np.maximum(neg - pos + 1.0, 0.0)
    if name in ("hinge", "squared_hinge"):
        if np.all((t == 0) | (t == 1)):  # _maybe_convert_labels, batch-wide
            t = 2.0 * t - 1.0
        h = np.maximum(1.0 - t * q, 0.0)
        return np.mean(h if name == "hinge" else h**2, axis=-1)
    if name == "mean_squared_error":
        return np.mean((q - t) ** 2, axis=-1)
    if name == "mean_absolute_error":
        return np.mean(np.abs(q - t), axis=-1)
    if name == "mean_absolute_percentage_error":
        diff = np.abs((t - q) / np.maximum(np.abs(t), eps))
        return 100.0 * np.mean(diff, axis=-1)
    if name == "mean_squared_logarithmic_error":
        first = np.log(np.maximum(q, eps) + 1.0)
        second = np.log(np.maximum(t, eps) + 1.0)
        return np.mean((first - second) ** 2, axis=-1)
    if name == "log_cosh":
        x = q - t
        return np.mean(x + np.logaddexp(0.0, -2.0 * x) - np.log(2.0), axis=-1)
    if name == "huber":
        delta = kw.get("delta", 1.0)
        err = q - t
        a = np.abs(err)
        return np.mean(
            np.where(a <= delta, 0.5 * err**2, delta * a - 0.5 * delta**2), axis=-1
        )
    if name == "cosine_similarity":
        tn = t / np.sqrt(np.maximum(np.sum(t**2, axis=-1, keepdims=True), 1e-12))
        qn = q / np.sqrt(np.maximum(np.sum(q**2, axis=-1, keepdims=True), 1e-12))
        return -np.sum(tn * qn, axis=-1)
    raise AssertionError(name)


def _reference_rows(name: str, z: np.ndarray, t: np.ndarray, **kw: float) -> np.ndarray:
    if name == "categorical_crossentropy":
        ls = kw.get("label_smoothing", 0.0)
        t = t * (1 - ls) + ls / t.shape[1]
        return -np.sum(t * log_softmax(z, axis=1), axis=1)
    return _keras_reference(name, softmax(z, axis=1), t, **kw)


def _grad_tolerance(name: str, g_ref: np.ndarray) -> float:
    """1e-8 of the gradient's scale (the refvalues' central differences are good to
    about 1e-9 absolute); MAPE's differences of a 2e8-valued function to ~5e-2."""
    scale = max(1.0, float(np.abs(g_ref).max()))
    return (5e-8 if name == "mean_absolute_percentage_error" else 1e-8) * scale


# --------------------------------------------------------------------------------
# Reference values
# --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_reference_values_float64(backend: Backend, name: str) -> None:
    f, fg = _fns(name)
    value_ref, grad_ref = REF[name]
    z = backend.asarray(S, np.float64)
    y = backend.asarray(Y)
    assert_allclose(f(z, y), value_ref, rtol=1e-9)
    v, g = fg(z, y)
    assert_allclose(v, value_ref, rtol=1e-9)
    g_ref = np.array([grad_ref])
    assert_allclose(g, g_ref, rtol=0, atol=_grad_tolerance(name, g_ref))


@pytest.mark.parametrize("name", NAMES)
def test_reference_values_float32(backend: Backend, name: str) -> None:
    f, fg = _fns(name)
    value_ref, grad_ref = REF[name]
    z = backend.asarray(S, np.float32)
    y = backend.asarray(Y)
    v, g = fg(z, y)
    assert to_numpy(v).dtype == np.float32
    assert to_numpy(g).dtype == np.float32
    assert_allclose(v, value_ref, rtol=1e-5)
    assert_allclose(f(z, y), value_ref, rtol=1e-5)
    g_ref = np.array([grad_ref])
    assert_allclose(g, g_ref, rtol=0, atol=1e-5 * float(np.abs(g_ref).max()))


# --------------------------------------------------------------------------------
# Keras' formulas, literally, on random inputs (index and soft labels)
# --------------------------------------------------------------------------------


def _batch(rng: np.random.Generator, n: int = 6, c: int = 7) -> tuple[Any, ...]:
    z = rng.normal(scale=2.0, size=(n, c))
    labels = rng.integers(0, c, size=n)
    soft = rng.dirichlet(np.full(c, 0.6), size=n)
    return z, labels, soft


@pytest.mark.parametrize("name", NAMES)
def test_matches_keras_formulas(
    backend: Backend, rng: np.random.Generator, name: str
) -> None:
    f, _ = _fns(name)
    z, labels, soft = _batch(rng)
    kw = {"delta": 0.3} if name == "huber" else {}
    for lab, t in ((labels, _one_hot(labels, z.shape[1])), (soft, soft)):
        want = _reference_rows(name, z, t, **kw)
        got = f(backend.asarray(z), backend.asarray(lab), reduction="none", **kw)
        assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_categorical_crossentropy_label_smoothing(
    backend: Backend, rng: np.random.Generator
) -> None:
    import arrayloss as al

    z, labels, soft = _batch(rng)
    zb = backend.asarray(z)
    for lab in (labels, soft):
        lb = backend.asarray(lab)
        t = _one_hot(labels, z.shape[1]) if lab is labels else soft
        want = _reference_rows("categorical_crossentropy", z, t, label_smoothing=0.2)
        got = K.categorical_crossentropy(zb, lb, label_smoothing=0.2, reduction="none")
        assert_allclose(got, want, rtol=1e-12)
        v, g = K.categorical_crossentropy_and_grad(zb, lb, label_smoothing=0.2)
        v_ce, g_ce = al.cross_entropy_and_grad(zb, lb, label_smoothing=0.2)
        assert_allclose(v, to_numpy(v_ce), rtol=1e-12)
        assert_allclose(g, to_numpy(g_ce), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", NAMES)
def test_index_labels_equal_one_hot(
    backend: Backend, rng: np.random.Generator, name: str
) -> None:
    _, fg = _fns(name)
    z, labels, _ = _batch(rng)
    zb = backend.asarray(z)
    v1, g1 = fg(zb, backend.asarray(labels), reduction="none")
    v2, g2 = fg(zb, backend.asarray(_one_hot(labels, z.shape[1])), reduction="none")
    assert_allclose(v1, to_numpy(v2), rtol=1e-13, atol=1e-15)
    assert_allclose(g1, to_numpy(g2), rtol=1e-13, atol=1e-15)


def test_hinge_label_conversion_is_batch_wide(
    backend: Backend, rng: np.random.Generator
) -> None:
    # Keras maps 0/1 targets to -1/+1 only if *every* target of the batch is 0 or
    # 1; one soft row switches the conversion off for the one-hot rows too.
    z, labels, soft = _batch(rng, n=4)
    onehot = _one_hot(labels, z.shape[1])
    mixed = np.concatenate([onehot[:3], soft[3:]])
    p = softmax(z, axis=1)
    for name, power in (("hinge", 1), ("squared_hinge", 2)):
        f = getattr(K, name)
        got = f(backend.asarray(z), backend.asarray(mixed), reduction="none")
        want = np.mean(np.maximum(1 - mixed * p, 0) ** power, axis=1)
        assert_allclose(got, want, rtol=1e-12)
        got = f(backend.asarray(z), backend.asarray(onehot), reduction="none")
        want = np.mean(np.maximum(1 - (2 * onehot - 1) * p, 0) ** power, axis=1)
        assert_allclose(got, want, rtol=1e-12)


# --------------------------------------------------------------------------------
# One-hot identities (docs/design/losses.md §2.2)
# --------------------------------------------------------------------------------


def test_one_hot_identities(backend: Backend, rng: np.random.Generator) -> None:
    z, labels, _ = _batch(rng, n=8, c=6)
    c = z.shape[1]
    p = softmax(z, axis=1)
    py = p[np.arange(len(labels)), labels]
    t = _one_hot(labels, c)
    zb, yb = backend.asarray(z), backend.asarray(labels)

    def rows(name: str, **kw: Any) -> np.ndarray:
        return to_numpy(getattr(K, name)(zb, yb, reduction="none", **kw))

    big_p = 1 - py
    regularised_expectation = np.sum((p - t) ** 2, axis=1)  # Janocha's L2∘σ
    np.testing.assert_allclose(rows("mean_absolute_error"), 2 * big_p / c, rtol=1e-12)
    np.testing.assert_allclose(rows("hinge"), (c - 1) / c + 2 * big_p / c, rtol=1e-12)
    np.testing.assert_allclose(
        rows("mean_squared_error"), regularised_expectation / c, rtol=1e-12
    )
    np.testing.assert_allclose(
        rows("huber"), rows("mean_squared_error") / 2, rtol=1e-12
    )
    np.testing.assert_allclose(
        rows("huber", delta=3.0), rows("mean_squared_error") / 2, rtol=1e-12
    )
    np.testing.assert_allclose(
        rows("cosine_similarity"), -py / np.linalg.norm(p, axis=1), rtol=1e-12
    )
    np.testing.assert_allclose(rows("poisson"), (1 - np.log(py + EPS)) / c, rtol=1e-12)
    np.testing.assert_allclose(
        rows("mean_absolute_percentage_error"),
        100 / c * (big_p + big_p / EPS),
        rtol=1e-9,
    )
    others = np.where(t == 1, -np.inf, p).max(axis=1)
    np.testing.assert_allclose(rows("categorical_hinge"), 1 + others - py, rtol=1e-12)
    ce = -np.log(py)
    assert np.all(p >= EPS)
    kl_extra = np.sum(np.where(t == 1, 0, EPS * (np.log(EPS) - np.log(p))), axis=1)
    np.testing.assert_allclose(rows("kl_divergence"), ce + kl_extra, rtol=1e-12)
    np.testing.assert_allclose(rows("categorical_crossentropy"), ce, rtol=1e-12)

    # hinge and MAE share their gradient for one-hot targets
    _, g_hinge = K.hinge_and_grad(zb, yb)
    _, g_mae = K.mean_absolute_error_and_grad(zb, yb)
    assert_allclose(g_hinge, to_numpy(g_mae), rtol=1e-12, atol=1e-16)


# --------------------------------------------------------------------------------
# Keras' clipping: zero gradient through an active clip
# --------------------------------------------------------------------------------


def test_kl_clip_kills_the_gradient_of_a_confident_mistake(backend: Backend) -> None:
    import arrayloss as al

    z = backend.asarray(np.array([[0.0, 0.0, -21.0, 0.0, 0.0]]))
    y = backend.asarray(np.array([2]))
    v, g = K.kl_divergence_and_grad(z, y)
    assert_allclose(v, 16.118, rtol=0, atol=5e-4)
    assert np.all(np.abs(to_numpy(g)) < 1e-5)
    v, g = al.cross_entropy_and_grad(z, y)
    assert_allclose(v, 22.386, rtol=0, atol=5e-4)
    assert_allclose(g, [[0.25, 0.25, -1.0, 0.25, 0.25]], rtol=0, atol=1e-8)
    v, g = K.categorical_crossentropy_and_grad(z, y)
    assert_allclose(v, 22.386, rtol=0, atol=5e-4)
    assert_allclose(g, [[0.25, 0.25, -1.0, 0.25, 0.25]], rtol=0, atol=1e-8)


def test_msle_clip_passes_no_gradient_through_tiny_probabilities() -> None:
    # The wrong class at -40 has q < ε: its own entry of dℓ/dq is zero, so its
    # logit gradient is exactly p_j * (0 - <g, p>), tiny.
    z = np.array([[0.0, 1.0, -40.0]])
    _, g = K.mean_squared_logarithmic_error_and_grad(z, np.array([0]))
    p = softmax(z, axis=1)[0]
    a = np.log1p(np.maximum(p, EPS)) - np.log1p(np.maximum([1.0, 0, 0], EPS))
    dq = 2 * a / (3 * (1 + p)) * (p >= EPS)
    np.testing.assert_allclose(g[0], p * (dq - dq @ p), rtol=1e-12)
    assert dq[2] == 0


# --------------------------------------------------------------------------------
# Gradients against finite differences (NumPy, float64)
# --------------------------------------------------------------------------------


def _fd_gradient(f: Any, z: np.ndarray, lab: np.ndarray, kw: dict) -> np.ndarray:
    """Row by row (loss_i depends on row i only), so rounding in the other rows'
    losses does not add to the differences."""
    out = np.empty_like(z)
    for i, j in np.ndindex(z.shape):

        def along(x: np.ndarray, i: int = i, j: int = j) -> np.ndarray:
            vals = np.empty(x.shape)
            for k, xk in np.ndenumerate(x):
                zi = z[i : i + 1].copy()
                zi[0, j] = xk
                vals[k] = float(f(zi, lab[i : i + 1], reduction="sum", **kw))
            return vals

        # Not ``res.success``: entries of 1e-9 cannot meet the default relative
        # tolerance; the caller compares against the gradient's scale instead.
        res = derivative(along, z[i, j], initial_step=1e-2, maxiter=8)
        out[i, j] = res.df
    return out


def _far_from_kinks(name: str, z: np.ndarray, lab: np.ndarray, kw: dict) -> np.ndarray:
    """The KINKS lower bound for class indices; for soft labels, the same bounds
    with the soft targets' levels (|q - t| kinks at q = t, Huber's at q = t ± δ)."""
    if lab.ndim == 1:
        kink = KINKS.get(f"keras.{name}")
        return np.full(len(z), np.inf) if kink is None else kink(z, lab, kw)
    if name in ("mean_absolute_error", "mean_absolute_percentage_error"):
        return _level_distance(z, lab).min(axis=1)
    if name == "huber":
        d = kw.get("delta", 1.0)
        up, down = _level_distance(z, lab + d), _level_distance(z, lab - d)
        return np.minimum(up, down).min(axis=1)
    if name in ("kl_divergence", "mean_squared_logarithmic_error"):
        return _level_distance(z, np.full(z.shape, EPS)).min(axis=1)
    if name == "categorical_hinge":  # ties of (1 - t) q, measured on log((1 - t) q)
        a = np.sort(np.log1p(-lab) + log_softmax(z, axis=1), axis=1)
        # each log q_j moves by at most sqrt(2)|dz|, a difference by 2 sqrt(2)|dz|
        return (a[:, -1] - a[:, -2]) / (2 * np.sqrt(2))
    return np.full(len(z), np.inf)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("soft", [False, True], ids=["index", "soft"])
def test_gradient_matches_finite_differences(name: str, soft: bool) -> None:
    f, fg = _fns(name)
    rng = np.random.default_rng(7)
    kw: dict = {"delta": 0.2} if name == "huber" else {}
    z, labels, soft_labels = _batch(rng, n=4, c=5)
    lab = soft_labels if soft else labels
    # keep the steps (<= 1e-2) away from kinks and clip boundaries
    far = _far_from_kinks(name, z, lab, kw) > 0.05
    z, lab = z[far], lab[far]
    assert len(lab) >= 2
    _, g = fg(z, lab, reduction="sum", **kw)
    g_fd = _fd_gradient(f, z, lab, kw)
    scale = max(float(np.abs(g).max()), 1e-300)
    assert np.abs(g - g_fd).max() <= 1e-8 * scale


# --------------------------------------------------------------------------------
# Numerics at extreme logits; dtypes; inputs untouched
# --------------------------------------------------------------------------------


@pytest.mark.parametrize(("backend", "name"), covering(NAMES), indirect=["backend"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_finite_at_extreme_logits(backend: Backend, name: str, dtype: Any) -> None:
    _, fg = _fns(name)
    z = np.array([[1e4, -1e4, 0.0, 3.0], [-1e4, -1e4, 1e4, 1e4], [0.0, 0, 0, -1e4]])
    labels = np.array([1, 2, 3])
    soft = np.array([[0.5, 0.5, 0, 0], [0.25] * 4, [0, 0, 0, 1.0]])
    for lab in (labels, soft):
        zb = backend.asarray(z, dtype)
        lb = backend.asarray(lab, dtype if lab is soft else None)
        v, g = fg(zb, lb, reduction="none")
        v, g = to_numpy(v), to_numpy(g)
        assert v.dtype == dtype
        assert g.dtype == dtype
        assert np.all(np.isfinite(v))
        assert np.all(np.isfinite(g))


@pytest.mark.parametrize(("backend", "name"), covering(NAMES), indirect=["backend"])
def test_inputs_unchanged_and_shapes(
    backend: Backend, rng: np.random.Generator, name: str
) -> None:
    _, fg = _fns(name)
    z, labels, soft = _batch(rng, n=4, c=3)
    zt = np.ascontiguousarray(z.T)  # classes on axis 0
    zb, lb, sb = backend.asarray(zt), backend.asarray(labels), backend.asarray(soft.T)
    v, g = fg(zb, lb, axis=0, reduction="none")
    v_last, g_last = fg(backend.asarray(z), backend.asarray(labels), reduction="none")
    assert to_numpy(v).shape == (4,)
    assert_allclose(v, to_numpy(v_last), rtol=1e-13)
    assert_allclose(g, to_numpy(g_last).T, rtol=1e-13, atol=1e-16)
    fg(zb, sb, axis=0)
    np.testing.assert_array_equal(to_numpy(zb), zt)
    np.testing.assert_array_equal(to_numpy(lb), labels)
    np.testing.assert_array_equal(to_numpy(sb), soft.T)


# --------------------------------------------------------------------------------
# Validation and public API
# --------------------------------------------------------------------------------

EPSILON_LOSSES = (
    "kl_divergence",
    "poisson",
    "mean_absolute_percentage_error",
    "mean_squared_logarithmic_error",
)


@pytest.mark.parametrize("name", EPSILON_LOSSES)
@pytest.mark.parametrize("bad", [0.0, -1e-7, 1.0, math.inf, math.nan])
def test_bad_epsilon(name: str, bad: float) -> None:
    f, fg = _fns(name)
    with pytest.raises(ValueError, match="`epsilon` must be"):
        f(S, Y, epsilon=bad)
    with pytest.raises(ValueError, match="epsilon="):
        fg(S, Y, epsilon=bad)
    with pytest.raises(TypeError, match="`epsilon` must be a real number"):
        f(S, Y, epsilon="1e-7")


@pytest.mark.parametrize("bad", [0.0, -1.0, math.inf])
def test_bad_delta(bad: float) -> None:
    with pytest.raises(ValueError, match=r"`delta` must be positive \(got delta="):
        K.huber(S, Y, delta=bad)
    with pytest.raises(ValueError, match="`delta` must be positive"):
        K.huber_and_grad(S, Y, delta=bad)


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_bad_label_smoothing(bad: float) -> None:
    with pytest.raises(ValueError, match="`label_smoothing` must be"):
        K.categorical_crossentropy(S, Y, label_smoothing=bad)


def test_epsilon_is_used() -> None:
    v1 = K.kl_divergence(S, Y, epsilon=1e-3)
    z = np.array([[0.0, 0, -21, 0, 0]])
    v2 = K.kl_divergence(z, Y, epsilon=1e-12)
    assert float(v1) != pytest.approx(REF["kl_divergence"][0], rel=1e-6)
    assert float(v2) == pytest.approx(21.0 + math.log(4 + math.exp(-21)), rel=1e-6)


def test_public_api() -> None:
    public = sorted(
        n for n, obj in vars(_keras).items()
        if inspect.isfunction(obj) and not n.startswith("_")
        and obj.__module__ == _keras.__name__
    )  # fmt: skip
    assert sorted(K.__all__) == public == sorted(_keras.__all__)
    assert sorted(K.__all__) == sorted([*NAMES, *(f"{n}_and_grad" for n in NAMES)])
    for name in NAMES:
        f, fg = _fns(name)
        sf, sg = inspect.signature(f), inspect.signature(fg)
        assert sf.parameters.keys() == sg.parameters.keys()
        params = list(sf.parameters.values())
        assert [p.kind for p in params[:2]] == [inspect.Parameter.POSITIONAL_ONLY] * 2
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[2:])
        assert [p.name for p in params[-5:]] == [
            "axis", "reduction", "weights", "ignore_index", "class_weights"
        ]  # fmt: skip
        assert f.__doc__
        assert ".. math::" in f.__doc__
        assert "Examples" in f.__doc__
        assert "{" + "common}" not in f.__doc__
        if "epsilon" in sf.parameters:
            assert sf.parameters["epsilon"].default == EPS
            assert "ε" in f.__doc__


def test_kinks_table() -> None:
    z = np.array([[0.0, 1.0, 1.0, -3.0, 2.0], [0.5, 0.2, -0.1, 3.0, -40.0]])
    labels = np.array([4, 0])
    for name, fn in KINKS.items():
        assert name.removeprefix("keras.") in NAMES
        d = fn(z, labels, {})
        assert d.shape == (2,)
        assert np.all(d >= 0)
    # a tie of the two largest non-target scores is a categorical-hinge kink
    assert KINKS["keras.categorical_hinge"](z, labels, {})[0] == 0
    # a lower bound: at most the log-distance to ε over the Lipschitz constant
    d = KINKS["keras.kl_divergence"](z, labels, {})
    p = softmax(z, axis=1)
    want = np.abs(np.log(p) - np.log(EPS)).min(axis=1) / np.sqrt(2)
    assert np.all(d <= want + 1e-12)
    assert np.all(KINKS["keras.mean_absolute_error"](z, labels, {}) == np.inf)
    assert np.all(KINKS["keras.huber"](z, labels, {}) == np.inf)
    assert np.all(np.isfinite(KINKS["keras.huber"](z, labels, {"delta": 0.3})))


# --------------------------------------------------------------------------------
# MAPE's 1e9-sized gradient terms, in float16, float32 and float64
# --------------------------------------------------------------------------------

# (scores, target): a confident mistake (p of the predicted class near 1, where
# the chain rule cancels two terms of 1e9/C), one whose loss fits float16, one
# whose p_j underflows float16, and soft targets.
MAPE_ROWS = [
    ([20.0, 0.0, 0.0], [0.0, 1.0, 0.0]),
    ([12.0, 0.0, 0.0], [0.0, 1.0, 0.0]),
    ([10.0, 0.0, 0.0], [1.0, 0.0, 0.0]),
    ([20.0, 0.0, 0.0], [1.0, 0.0, 0.0]),
    ([20.0, 0.0, 0.0], [0.5, 0.5, 0.0]),
    ([0.0, 1.0, 2.0], [0.25, 0.25, 0.5]),
    ([-3.0, 0.0, 0.0], [0.25, 0.25, 0.5]),
]


def _mape_mp(z: list[float], t: list[float]) -> tuple[Any, list[Any]]:
    """50-digit MAPE and its logit gradient ``p_j (g_j - <g, p>)``, ``ε = 1e-7``
    as Keras' float (its float64 value)."""
    import mpmath as mp

    with mp.workdps(50):
        zz = [mp.mpf(v) for v in z]
        e = [mp.exp(v - max(zz)) for v in zz]
        p = [v / mp.fsum(e) for v in e]
        c = len(z)
        scale = [max(abs(mp.mpf(tj)), mp.mpf(EPS)) for tj in t]
        loss = (
            100
            * mp.fsum(abs(pj - tj) / s for pj, tj, s in zip(p, t, scale, strict=True))
            / c
        )
        g = [
            100 * mp.sign(pj - tj) / (c * s)
            for pj, tj, s in zip(p, t, scale, strict=True)
        ]
        gp = mp.fsum(gj * pj for gj, pj in zip(g, p, strict=True))
        return loss, [pj * (gj - gp) for pj, gj in zip(p, g, strict=True)]


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize(("row", "target"), MAPE_ROWS)
def test_mape_against_mpmath(row: list[float], target: list[float], dtype: Any):
    """Value and gradient are the exact ones rounded to the dtype (inf only where
    that is beyond its range).  float16 overflowed to inf for a loss of 3e4, gave
    0 for 1.37 and NaN gradients (it ran in float16, with ε a subnormal); float32
    gave a gradient of 0 for 0.687 (the chain rule cancelled 1e9 against 1e9)."""
    import warnings

    loss, grad = _mape_mp(row, target)
    z = np.array([row], dtype=dtype)
    t = np.array([target], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # float16: an overflowing cast warns
        v, g = K.mean_absolute_percentage_error_and_grad(z, t, reduction="none")
    assert v.dtype == dtype
    assert g.dtype == dtype
    rtol = {np.float16: 2e-3, np.float32: 1e-5, np.float64: 1e-12}[dtype]
    with np.errstate(over="ignore"):  # beyond float16: inf
        want = np.array([float(loss)]).astype(dtype)
        want_g = np.array([[float(x) for x in grad]]).astype(dtype)
    if np.isinf(want[0]):
        assert v[0] == np.inf
    else:
        np.testing.assert_allclose(v, want, rtol=rtol)
    tiny = float(np.finfo(dtype).smallest_subnormal)
    np.testing.assert_allclose(g, want_g, rtol=rtol, atol=2 * tiny)


# --------------------------------------------------------------------------------
# 16-bit floats: every loss computed in float32 and rounded once
# --------------------------------------------------------------------------------


def _low_precision_rows() -> list[tuple[np.ndarray, np.ndarray]]:
    """``(scores, target)`` rows: 2 to 8 classes, spreads from 1 to 24 (p below
    float16's 6e-8 and ε), one-hot and dyadic soft targets (exact in every dtype
    and summing to 1)."""
    rng = np.random.default_rng(11)
    out = []
    for c, scale in ((2, 3.0), (3, 8.0), (5, 1.0), (5, 12.0), (8, 24.0), (4, 6.0)):
        z = rng.standard_normal(c) * scale
        onehot = np.zeros(c)
        onehot[rng.integers(c)] = 1.0
        soft = np.floor(rng.dirichlet(np.ones(c)) * 64) / 64
        soft[np.argmax(soft)] += 1 - soft.sum()
        out += [(z, onehot), (z, soft)]
    return out


LOW_PRECISION = [("numpy", "float16"), ("torch", "float16"), ("torch", "bfloat16"),
                 ("jax", "float16"), ("jax", "bfloat16")]  # fmt: skip


@pytest.mark.parametrize(("lib", "dtype"), LOW_PRECISION)
@pytest.mark.parametrize("name", NAMES)
def test_low_precision_against_mpmath(name: str, lib: str, dtype: str) -> None:
    """float16 and bfloat16 value and gradient are the 50-digit mpmath ones rounded
    to the dtype, to 1 ulp (a gradient entry to float32's precision of its row's
    largest, as float32 scores give it).  In float16 they were up to 1e3 ulps off
    for most losses (poisson 1%, kl_divergence's gradient 1e7 ulps): they ran in
    float16, where ε = 1e-7 is a subnormal and p underflows below 6e-8."""
    import warnings

    from mpref import keras_and_grad

    mod = pytest.importorskip(lib)
    fn = getattr(K, f"{name}_and_grad")
    # NumPy has no bfloat16: ml_dtypes' (a dependency of JAX) rounds the references
    ref_dt = (
        np.float16 if dtype == "float16" else pytest.importorskip("ml_dtypes").bfloat16
    )
    for z64, t in _low_precision_rows():
        z = z64.astype(ref_dt).astype(np.float64)  # the scores the dtype holds
        value, grad = keras_and_grad(name, z, t)
        if lib == "numpy":
            zz, tt = z[None].astype(dtype), t[None].astype(dtype)
        elif lib == "torch":
            zz = mod.tensor(z[None]).to(getattr(mod, dtype))
            tt = mod.tensor(t[None]).to(getattr(mod, dtype))
        else:
            jnp = pytest.importorskip("jax.numpy")
            zz = jnp.asarray(z[None]).astype(getattr(jnp, dtype))
            tt = jnp.asarray(t[None]).astype(getattr(jnp, dtype))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            v, g = fn(zz, tt, reduction="none")
        assert str(v.dtype).endswith(dtype)
        assert str(g.dtype).endswith(dtype)
        v = np.asarray(to_numpy(v), dtype=np.float64)[0]
        g = np.asarray(to_numpy(g), dtype=np.float64)[0]
        with np.errstate(over="ignore", invalid="ignore"):  # MAPE beyond float16
            want = np.array(float(value)).astype(ref_dt).astype(np.float64)
            want_g = np.array([float(x) for x in grad]).astype(ref_dt)
            ulp = np.spacing(np.abs(want_g)).astype(np.float64)
        want_g = want_g.astype(np.float64)
        ulp[np.isinf(want_g)] = 0.0  # beyond the range: inf itself
        if np.isinf(want):
            assert v == want, (z, t, v)
        else:
            assert abs(v - want) <= np.spacing(abs(want).astype(ref_dt)), (
                z,
                t,
                v,
                want,
            )
        finite = want_g[np.isfinite(want_g)]
        floor = 8 * 2.0**-24 * (np.max(np.abs(finite)) if finite.size else 0.0)
        with np.errstate(invalid="ignore"):  # inf - inf where both are
            err = np.where(g == want_g, 0.0, np.abs(g - want_g))
        within = err <= np.maximum(ulp, floor)
        assert np.all(within), (z, t, g, want_g)

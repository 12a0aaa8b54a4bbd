"""The MLP: backpropagation against finite differences, optimizers, training on the
bundled digits, determinism, backends and save/load."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from conftest import to_numpy
from hypothesis import given, settings
from hypothesis import strategies as st

from arrayloss import LOSSES, mlp
from arrayloss._errors import DataError
from arrayloss.datasets import load_digits, split

# The losses of the default study, with parameters where the defaults need C > 6.
GRAD_LOSSES = [
    ("cross_entropy", {}),
    ("cross_entropy", {"label_smoothing": 0.1}),
    ("expectation", {}),
    ("regularised_expectation", {}),
    ("squared_hinge", {}),
    ("tanimoto", {}),
    ("cauchy_schwarz", {}),
    ("keras.kl_divergence", {}),
    ("smooth_topk_svm", {"k": 2, "tau": 0.5}),
    ("focal", {}),
    ("generalized_cross_entropy", {}),
    ("symmetric_cross_entropy", {}),
    ("nce_rce", {}),
    ("poly1", {}),
    ("sparsemax_loss", {}),
]


def _problem(activation: str, n_classes: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    net = mlp.init(
        [5, 7, 4, n_classes], activation=activation, seed=seed, dtype="float64"
    )
    # Non-zero biases so that every parameter matters.
    net = net.map(lambda p: p + 0.1 * rng.normal(size=p.shape))
    x = rng.normal(size=(9, 5))
    y = rng.integers(0, n_classes, size=9)
    return net, x, y


def _flat(net: mlp.MLP) -> list[np.ndarray]:
    return [*net.weights, *net.biases]


def _replace(net: mlp.MLP, i: int, arr: np.ndarray) -> mlp.MLP:
    leaves = _flat(net)
    leaves[i] = arr
    n = len(net.weights)
    return mlp.MLP(tuple(leaves[:n]), tuple(leaves[n:]), net.activation)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize(("loss", "params"), GRAD_LOSSES, ids=lambda v: str(v))
def test_gradients_match_finite_differences(loss, params, activation):
    net, x, y = _problem(activation)
    kw = {"loss": loss, "loss_params": params, "weight_decay": 0.03}
    value, grads = mlp.loss_and_grad(net, x, y, **kw)
    h = 1e-6
    for i, (p, g) in enumerate(zip(_flat(net), _flat(grads), strict=True)):
        assert g.shape == p.shape
        fd = np.zeros_like(p)
        for j in np.ndindex(p.shape):
            up, down = p.copy(), p.copy()
            up[j] += h
            down[j] -= h
            f_up = float(mlp.loss_and_grad(_replace(net, i, up), x, y, **kw)[0])
            f_down = float(mlp.loss_and_grad(_replace(net, i, down), x, y, **kw)[0])
            fd[j] = (f_up - f_down) / (2 * h)
        np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-8, err_msg=f"leaf {i}")
    assert np.isfinite(float(value))


def test_weight_decay_term():
    net, x, y = _problem("relu")
    v0, g0 = mlp.loss_and_grad(net, x, y)
    v1, g1 = mlp.loss_and_grad(net, x, y, weight_decay=0.5)
    penalty = 0.25 * sum(float(np.sum(w * w)) for w in net.weights)
    assert float(v1) == pytest.approx(float(v0) + penalty, rel=1e-12)
    for w, a, b in zip(net.weights, g0.weights, g1.weights, strict=True):
        np.testing.assert_allclose(b, a + 0.5 * w, rtol=1e-12)
    for a, b in zip(g0.biases, g1.biases, strict=True):
        np.testing.assert_array_equal(a, b)


def test_inputs_are_not_modified():
    net, x, y = _problem("relu")
    for a in (*_flat(net), x, y):
        a.flags.writeable = False
    _, grads = mlp.loss_and_grad(net, x, y)
    state = mlp.Adam().init(net)
    mlp.Adam().step(net, grads, state)
    mlp.SGD(nesterov=True).step(net, grads, mlp.SGD().init(net))


def test_sgd_and_adam_steps():
    net, x, y = _problem("tanh")
    _, g = mlp.loss_and_grad(net, x, y)
    plain = mlp.SGD(lr=0.5, momentum=0.0)
    new, _ = plain.step(net, g, plain.init(net))
    for p, gp, q in zip(_flat(net), _flat(g), _flat(new), strict=True):
        np.testing.assert_allclose(q, p - 0.5 * gp)
    heavy = mlp.SGD(lr=0.5, momentum=0.9)
    s = heavy.init(net)
    p1, s = heavy.step(net, g, s)
    p2, s = heavy.step(p1, g, s)
    for p, gp, q in zip(_flat(net), _flat(g), _flat(p2), strict=True):
        np.testing.assert_allclose(q, p - 0.5 * gp - 0.5 * (1.9 * gp), rtol=1e-12)
    # Adam's first step moves every parameter by lr * g / (|g| + eps): about lr.
    adam = mlp.Adam(lr=0.01)
    new, (t, _, _) = adam.step(net, g, adam.init(net))
    assert t == 1
    for p, gp, q in zip(_flat(net), _flat(g), _flat(new), strict=True):
        np.testing.assert_allclose(
            q, p - 0.01 * gp / (np.abs(gp) + 1e-8), rtol=1e-9, atol=1e-15
        )


@pytest.fixture(scope="module")
def digits():
    return split(load_digits(), seed=0)


def _train(s, seed=0, optimizer=None, epochs=8):
    net = mlp.init([64, 64, 10], seed=seed)
    return mlp.fit(
        net, s.x_train, s.y_train, optimizer=optimizer or mlp.SGD(lr=0.1),
        epochs=epochs, batch_size=32, seed=seed,
    )  # fmt: skip


def test_digits_reaches_090_deterministically(digits):
    a = _train(digits, seed=0)
    b = _train(digits, seed=0)
    for p, q in zip(_flat(a), _flat(b), strict=True):
        np.testing.assert_array_equal(p, q)
    assert a.weights[0].dtype == np.float32
    m = mlp.evaluate(a, digits.x_test, digits.y_test)
    assert m["accuracy"] >= 0.9
    assert m["top_k_accuracy"] >= m["accuracy"]
    assert 0 <= m["ece"] < 0.2
    c = _train(digits, seed=1)
    assert not np.array_equal(c.weights[0], a.weights[0])


def test_adam_on_digits(digits):
    net = _train(digits, optimizer=mlp.Adam(lr=3e-3), epochs=6)
    assert mlp.evaluate(net, digits.x_test, digits.y_test)["accuracy"] >= 0.9


def test_fit_callbacks_and_linear_model(digits):
    seen = []
    net = mlp.init([64, 10], seed=0)  # no hidden layer: multinomial regression
    mlp.fit(
        net, digits.x_train[:100], digits.y_train[:100], epochs=2, batch_size=30,
        on_batch=lambda e, s, v: seen.append((e, s)),
        on_epoch=lambda e, p, loss: seen.append(("epoch", e, loss)),
    )  # fmt: skip
    assert seen[:4] == [(1, 0), (1, 1), (1, 2), (1, 3)]
    assert seen[4][:2] == ("epoch", 1)
    assert len(seen) == 10


def test_on_epoch_returning_true_stops_training(digits):
    """Early stopping: training ends after the epoch whose callback returns True,
    with that epoch's parameters; any other return value goes on."""
    x, y = digits.x_train[:90], digits.y_train[:90]
    seen = []

    def stop_after_two(e, p, loss):
        seen.append(e)
        return e == 2 or "not True"

    stopped = mlp.fit(mlp.init([64, 10], seed=0), x, y, epochs=5, batch_size=30,
                      on_epoch=stop_after_two)  # fmt: skip
    assert seen == [1, 2]
    two = mlp.fit(mlp.init([64, 10], seed=0), x, y, epochs=2, batch_size=30)
    for a, b in zip(stopped.weights, two.weights, strict=True):
        np.testing.assert_array_equal(a, b)


def test_divergence_is_one_error(digits):
    with pytest.raises(FloatingPointError, match="diverged in epoch 1"):
        _train(digits, optimizer=mlp.SGD(lr=1e20), epochs=3)


def test_bad_arguments():
    with pytest.raises(ValueError, match="sizes"):
        mlp.init([5])
    with pytest.raises(ValueError, match="sizes"):
        mlp.init([5, 0, 3])
    with pytest.raises(ValueError, match="activation"):
        mlp.init([5, 3], activation="sigmoid")
    net = mlp.init([5, 3])
    with pytest.raises(ValueError, match="unknown loss 'nope'"):
        mlp.fit(net, np.zeros((4, 5)), np.zeros(4, dtype=int), loss="nope")


def test_save_load_roundtrip(tmp_path, digits):
    net = mlp.init([64, 16, 10], activation="tanh", seed=3)
    path = tmp_path / "m.npz"
    mlp.save(net, path, loss="cross_entropy", hidden=[16])
    back, meta = mlp.load(path)
    assert meta == {"loss": "cross_entropy", "hidden": [16]}
    assert back.activation == "tanh"
    assert back.sizes == (64, 16, 10)
    np.testing.assert_array_equal(
        mlp.predict(back, digits.x_test), mlp.predict(net, digits.x_test)
    )
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not an arrayloss MLP file"):
        mlp.load(tmp_path / "junk.npz")


def test_predict_in_chunks(digits):
    net = mlp.init([64, 16, 10], seed=0)
    whole = mlp.predict(net, digits.x_test)
    parts = mlp.predict(net, digits.x_test, batch_size=50)
    np.testing.assert_allclose(parts, whole, rtol=1e-5, atol=1e-5)


# JAX and Dask run the same code as array_api_strict, but eagerly they take seconds.
@pytest.mark.parametrize(
    "backend",
    ["numpy", "numpy:readonly", "array_api_strict", "torch", "cupy"],
    indirect=True,
)
def test_backends_agree_with_numpy(backend):
    """Scores and parameter gradients on each backend equal NumPy's (float64)."""
    xp = backend.xp
    net, x, y = _problem("relu")
    ref_value, ref = mlp.loss_and_grad(net, x, y, weight_decay=0.01)
    other = net.map(lambda p: backend.asarray(p))
    value, grads = mlp.loss_and_grad(
        other, backend.asarray(x), backend.asarray(y), weight_decay=0.01
    )
    assert float(to_numpy(value)) == pytest.approx(float(ref_value), rel=1e-12)
    for a, b in zip(_flat(grads), _flat(ref), strict=True):
        np.testing.assert_allclose(to_numpy(a), b, rtol=1e-10, atol=1e-12)
    # One short training run also works there and stays in the namespace.
    start = mlp.init([5, 7, 6], seed=0, dtype="float64", xp=xp)
    trained = mlp.fit(
        start, backend.asarray(x), backend.asarray(y), epochs=2, batch_size=4
    )
    assert type(trained.weights[0]) is type(start.weights[0])
    ref_net = mlp.fit(
        mlp.init([5, 7, 6], seed=0, dtype="float64"), x, y, epochs=2, batch_size=4
    )
    np.testing.assert_allclose(
        to_numpy(trained.weights[0]), ref_net.weights[0], rtol=1e-10
    )


def test_study_losses_are_registered():
    from arrayloss.cli._study import DEFAULT_LOSSES

    assert set(DEFAULT_LOSSES) <= set(LOSSES)
    assert {name for name, _ in GRAD_LOSSES} == set(DEFAULT_LOSSES)


# -- divergence: every optimizer, bounded and unbounded losses -------------------------


def _tiny(n: int = 40, d: int = 3, c: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), np.arange(n) % c


OPTIMIZERS = {
    "adam": lambda lr: mlp.Adam(lr=lr),
    "sgd": lambda lr: mlp.SGD(lr=lr, momentum=0.0),
    "momentum": lambda lr: mlp.SGD(lr=lr, momentum=0.9),
    "nesterov": lambda lr: mlp.SGD(lr=lr, momentum=0.9, nesterov=True),
}


@pytest.mark.parametrize("opt", list(OPTIMIZERS))
@pytest.mark.parametrize("loss", ["cross_entropy", "expectation", "tanimoto", "hinge"])
@pytest.mark.parametrize("lr", [1e10, 1e30])
def test_divergence_detected_for_every_optimizer(opt, loss, lr):
    x, y = _tiny()
    net = mlp.init([3, 5, 3], seed=0, dtype="float64")
    with pytest.raises(mlp.TrainingDiverged, match="diverged in epoch") as info:
        mlp.fit(net, x, y, loss=loss, optimizer=OPTIMIZERS[opt](lr), epochs=3,
                batch_size=8)  # fmt: skip
    assert isinstance(info.value, FloatingPointError)
    assert info.value.epoch == 1
    assert info.value.reason in str(info.value)


def test_divergence_factor_off_still_catches_non_finite():
    x, y = _tiny()
    net = mlp.init([3, 5, 3], seed=0, dtype="float64")
    # Without the growth test, Adam at lr=1e10 "trains" to scores of ~1e10 or more:
    # exactly the silent success the default forbids.
    out = mlp.fit(net, x, y, optimizer=mlp.Adam(lr=1e10), epochs=1, batch_size=40,
                  divergence_factor=math.inf)  # fmt: skip
    assert float(np.max(np.abs(mlp.predict(out, x)))) > 1e6
    with pytest.raises(mlp.TrainingDiverged, match="after the last step"):
        mlp.fit(net, x, y, optimizer=mlp.Adam(lr=1e10), epochs=1, batch_size=40)
    with pytest.raises(mlp.TrainingDiverged, match="epoch 1"):
        mlp.fit(net, x, y, optimizer=mlp.SGD(lr=1e300), epochs=2,
                divergence_factor=math.inf)  # fmt: skip


@pytest.mark.parametrize("factor", [1.0, 0.5, -1.0, math.nan])
def test_divergence_factor_must_exceed_one(factor):
    x, y = _tiny()
    with pytest.raises(ValueError, match="divergence_factor"):
        mlp.fit(mlp.init([3, 3]), x, y, divergence_factor=factor)


@settings(max_examples=30, deadline=None)
@given(
    log_lr=st.floats(-3, 14),
    opt=st.sampled_from(list(OPTIMIZERS)),
    loss=st.sampled_from(["cross_entropy", "expectation", "squared_hinge", "hinge"]),
    epochs=st.integers(1, 3),
    seed=st.integers(0, 3),
)
def test_training_never_silently_explodes(log_lr, opt, loss, epochs, seed):
    """Whatever the learning rate: an error, or finite scores within the bound.

    One batch holds every row, so the bound of `fit`'s docstring covers all the
    scores of the returned model exactly.
    """
    x, y = _tiny(n=20, seed=seed)
    net = mlp.init([3, 4, 3], seed=seed, dtype="float64")
    start = float(np.max(np.abs(mlp.predict(net, x))))
    try:
        out = mlp.fit(net, x, y, loss=loss, optimizer=OPTIMIZERS[opt](10.0**log_lr),
                      epochs=epochs, batch_size=20, seed=seed)  # fmt: skip
    except mlp.TrainingDiverged:
        return
    scores = mlp.predict(out, x)
    assert np.all(np.isfinite(scores))
    assert float(np.max(np.abs(scores))) <= mlp.DIVERGENCE_FACTOR * max(start, 1.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_fit_rejects_non_finite_inputs(bad):
    x, y = _tiny()
    x[3, 1] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        mlp.fit(mlp.init([3, 3]), x, y)


def test_fit_rejects_inputs_that_overflow_the_dtype():
    x, y = _tiny()
    with pytest.raises(ValueError, match="as float32"):
        mlp.fit(mlp.init([3, 3], dtype="float32"), x * 1e300, y)


def test_save_to_a_file_object_and_load_errors(tmp_path):
    net = mlp.init([3, 4, 2], seed=0)
    buf = io.BytesIO()
    mlp.save(net, buf, note="x")
    path = tmp_path / "m.npz"
    path.write_bytes(buf.getvalue())
    back, meta = mlp.load(path)
    assert meta == {"note": "x"}
    np.testing.assert_array_equal(back.weights[1], net.weights[1])
    for content in (b"", b"PK\x03\x04junk"):
        path.write_bytes(content)
        with pytest.raises(DataError, match="not an arrayloss MLP file"):
            mlp.load(path)
    np.savez(path, a=np.zeros(2))
    with pytest.raises(DataError, match="not an arrayloss MLP file"):
        mlp.load(path)


@pytest.mark.parametrize(
    ("arrays", "problem"),
    [
        ({"W0": np.zeros(3), "b0": np.zeros(3)}, "layer 0 has weights"),
        ({"W0": np.zeros((3, 2)), "b0": np.zeros(3)}, "layer 0 has weights"),
        ({"W0": np.zeros((3, 2), int), "b0": np.zeros(2)}, "layer 0 has weights"),
        (
            {
                "W0": np.zeros((3, 2)),
                "b0": np.zeros(2),
                "W1": np.zeros((4, 2)),
                "b1": np.zeros(2),
            },
            "layer 1 takes 4 inputs",
        ),
        ({"W0": np.zeros((3, 2)), "b0": np.zeros(2), "act": 1}, "activation"),
        ({"W0": np.zeros((3, 2))}, "b0"),
    ],
)
def test_load_rejects_inconsistent_models(tmp_path, arrays, problem):
    arrays = {"activation": np.asarray("relu"), "meta": np.asarray("{}"), **arrays}
    if "act" in arrays:
        arrays["activation"] = np.asarray("sigmoid")
        del arrays["act"]
    path = tmp_path / "m.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=problem):
        mlp.load(path)


@pytest.mark.parametrize("patch", [{"flag": 1}, {"method": 98}])
def test_load_of_a_model_zipfile_cannot_open_is_data_error(tmp_path, patch):
    """An encrypted member, or one of a compression method zipfile lacks: a
    RuntimeError and a NotImplementedError, not the documented DataError."""
    from conftest import patched_npz

    net = mlp.init([3, 2], seed=0)
    arrays = {"W0": net.weights[0], "b0": net.biases[0], "activation": "relu",
              "meta": "{}"}  # fmt: skip
    p = patched_npz(tmp_path / "m.npz", **arrays, **patch)
    with pytest.raises(DataError, match="not an arrayloss MLP file"):
        mlp.load(p)

"""A minimal multilayer perceptron trained with any arrayloss loss.

Pure functions over an immutable parameter structure, written against the array
API standard (NumPy by default; CuPy, PyTorch or array_api_strict arrays work the
same way):

- `init` builds the parameters (`MLP`: a tuple of weight matrices and one of bias
  vectors) from a seed;
- `forward` gives the class scores; `loss_and_grad` gives the loss of any
  registry loss on those scores and the gradient of every parameter, by manual
  backpropagation from ``arrayloss.value_and_grad``;
- `SGD` (momentum, optionally Nesterov) and `Adam` take one step: ``init(params)``
  gives the optimizer state, ``step(params, grads, state)`` the new parameters and
  state;
- `fit` runs minibatch epochs; `evaluate` gives accuracy, top-k accuracy, NLL and
  ECE; `save` and `load` use a ``.npz`` file.

Nothing here writes into an array it was given, and the same seed gives the same
weights bit for bit (on one machine, with one thread count).

Examples
--------
>>> import numpy as np
>>> from arrayloss import mlp
>>> from arrayloss.datasets import load_digits, split
>>> s = split(load_digits(), seed=0)
>>> net = mlp.init([64, 32, 10], seed=0)
>>> net = mlp.fit(net, s.x_train, s.y_train, optimizer=mlp.Adam(lr=1e-2), epochs=5)
>>> mlp.evaluate(net, s.x_test, s.y_test)["accuracy"] > 0.9
True
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from . import _xp
from ._errors import DataError
from ._registry import get_loss, value_and_grad
from ._typing import Array, Namespace
from ._xp import to_numpy

__all__ = [
    "MLP",
    "SGD",
    "Adam",
    "TrainingDiverged",
    "evaluate",
    "fit",
    "forward",
    "init",
    "load",
    "loss_and_grad",
    "predict",
    "save",
    "score_metrics",
    "to_numpy",
]

ACTIVATIONS = ("relu", "tanh")


@dataclass(frozen=True, eq=False)
class MLP:
    """The parameters of a multilayer perceptron (also used for their gradients).

    Layer ``l`` maps ``h`` to ``act(h @ weights[l] + biases[l])``; the last layer
    has no activation and gives the class scores.

    Attributes
    ----------
    weights : tuple of arrays of shape (d_in, d_out)
        One matrix per layer.
    biases : tuple of arrays of shape (d_out,)
        One vector per layer.
    activation : {"relu", "tanh"}
        The hidden layers' nonlinearity.
    """

    weights: tuple[Array, ...]
    biases: tuple[Array, ...]
    activation: str = "relu"

    @property
    def sizes(self) -> tuple[int, ...]:
        """Layer widths, input first: ``(d_in, hidden..., n_classes)``."""
        return (int(self.weights[0].shape[0]), *(int(w.shape[1]) for w in self.weights))

    def map(self, f: Callable[..., Array], *others: MLP) -> MLP:
        """A new `MLP` with ``f`` applied leaf by leaf to ``self`` and ``others``."""
        ws = tuple(
            f(*leaves)
            for leaves in zip(self.weights, *(o.weights for o in others), strict=True)
        )
        bs = tuple(
            f(*leaves)
            for leaves in zip(self.biases, *(o.biases for o in others), strict=True)
        )
        return MLP(ws, bs, self.activation)


def _check_activation(activation: str) -> str:
    if activation not in ACTIVATIONS:
        msg = f"`activation` must be 'relu' or 'tanh' (got {activation!r})"
        raise ValueError(msg)
    return activation


def init(
    sizes: Sequence[int],
    *,
    activation: str = "relu",
    seed: int = 0,
    dtype: str = "float32",
    xp: Namespace | None = None,
    device: Any = None,
) -> MLP:
    """Random initial parameters: He-normal for ReLU, Glorot-uniform for tanh.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths, input first and number of classes last, e.g. ``[64, 128, 10]``;
        each at least 1, and at least two of them.
    activation : {"relu", "tanh"}, default "relu"
        Hidden nonlinearity.
    seed : int, default 0
        The same seed gives the same parameters.
    dtype : {"float32", "float64"}, default "float32"
        Floating dtype of the parameters.
    xp : array namespace, optional
        Where the parameters live (default NumPy); e.g. ``cupy``.
    device : optional
        Device for ``xp.asarray``.

    Returns
    -------
    MLP
        Weights drawn in float64 with NumPy and then cast, so they agree across
        namespaces; biases zero.
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        msg = f"`sizes` must be at least two layer widths >= 1 (got {sizes})"
        raise ValueError(msg)
    _check_activation(activation)
    xp = np if xp is None else xp
    dt = getattr(xp, dtype)
    rng = np.random.default_rng(seed)
    weights, biases = [], []
    for d_in, d_out in itertools.pairwise(sizes):
        if activation == "relu":
            w = rng.normal(scale=math.sqrt(2.0 / d_in), size=(d_in, d_out))
        else:
            bound = math.sqrt(6.0 / (d_in + d_out))
            w = rng.uniform(-bound, bound, size=(d_in, d_out))
        weights.append(xp.asarray(w, dtype=dt, device=device))
        biases.append(xp.zeros((d_out,), dtype=dt, device=device))
    return MLP(tuple(weights), tuple(biases), activation)


def _namespace(params: MLP) -> Namespace:
    return _xp.array_namespace(params.weights[0])


def _hidden(params: MLP, x: Array, xp: Namespace) -> tuple[Array, list[Array]]:
    """Scores and the input of every layer (``x`` first)."""
    inputs = [x]
    zero = xp.zeros((), dtype=params.weights[0].dtype, device=_xp.xp_device(x))
    for w, b in zip(params.weights[:-1], params.biases[:-1], strict=True):
        a = inputs[-1] @ w
        a += b  # a fresh array: add the bias without another temporary
        h = xp.maximum(a, zero) if params.activation == "relu" else xp.tanh(a)
        inputs.append(h)
    return inputs[-1] @ params.weights[-1] + params.biases[-1], inputs


def forward(params: MLP, x: Array) -> Array:
    """Class scores of shape (n, n_classes) for inputs ``x`` of shape (n, d_in)."""
    xp = _namespace(params)
    return _hidden(params, x, xp)[0]


def loss_and_grad(
    params: MLP,
    x: Array,
    labels: Array,
    *,
    loss: str = "cross_entropy",
    loss_params: Mapping[str, Any] | None = None,
    weight_decay: float = 0.0,
) -> tuple[Array, MLP]:
    r"""Mean loss over the batch and its gradient with respect to every parameter.

    The objective is

    .. math::

        J = \frac{1}{n}\sum_i \ell(f(x_i), y_i)
            + \frac{\lambda}{2} \sum_l \lVert W_l \rVert_F^2

    with :math:`\ell` the registry loss ``loss`` on the scores :math:`f(x)` and
    :math:`\lambda` = ``weight_decay`` (biases are not decayed). The gradient of the
    loss with respect to the scores comes from ``arrayloss.value_and_grad``; the
    rest is backpropagation: for a layer with input :math:`h` and output gradient
    :math:`g`, :math:`\partial J/\partial W = h^\top g + \lambda W`,
    :math:`\partial J/\partial b = \sum_i g_i`, and the input gradient
    :math:`g W^\top` times the activation's derivative (:math:`1[h>0]` for ReLU,
    :math:`1-h^2` for tanh).

    Parameters
    ----------
    params : MLP
    x : array of shape (n, d_in)
        Inputs, in the parameters' namespace and dtype.
    labels : integer array of shape (n,)
        Class indices.
    loss : str, default "cross_entropy"
        A name in ``arrayloss.LOSSES``.
    loss_params : mapping, optional
        The loss's own parameters, e.g. ``{"k": 5, "tau": 1.0}``.
    weight_decay : float, default 0
        :math:`\lambda` above.

    Returns
    -------
    value : 0-d array
        :math:`J`.
    grads : MLP
        :math:`\partial J / \partial` each weight and bias, same shapes.
    """
    value, grads, _ = _loss_grad_scores(
        params, x, labels, loss=loss, loss_params=loss_params, weight_decay=weight_decay
    )
    return value, grads


def _loss_grad_scores(
    params: MLP,
    x: Array,
    labels: Array,
    *,
    loss: str,
    loss_params: Mapping[str, Any] | None,
    weight_decay: float,
) -> tuple[Array, MLP, Array]:
    """`loss_and_grad`, and the scores it computed on the way."""
    xp = _namespace(params)
    scores, inputs = _hidden(params, x, xp)
    value, g = value_and_grad(loss, scores, labels, **dict(loss_params or {}))
    n_layers = len(params.weights)
    dws: list[Array] = [None] * n_layers
    dbs: list[Array] = [None] * n_layers
    zero = xp.zeros((), dtype=scores.dtype, device=_xp.xp_device(scores))
    for layer in range(n_layers - 1, -1, -1):
        h = inputs[layer]
        w = params.weights[layer]
        dw = h.T @ g
        dws[layer] = dw + weight_decay * w if weight_decay else dw
        dbs[layer] = xp.sum(g, axis=0)
        if layer:
            dh = g @ w.T
            g = (
                xp.where(h > zero, dh, zero)
                if params.activation == "relu"
                else dh * (1 - h * h)
            )
    if weight_decay:
        value = value + 0.5 * weight_decay * sum(xp.sum(w * w) for w in params.weights)
    return value, MLP(tuple(dws), tuple(dbs), params.activation), scores


@dataclass(frozen=True)
class SGD:
    """Stochastic gradient descent with (heavy-ball or Nesterov) momentum.

    PyTorch's convention: ``v <- momentum * v + g`` then ``p <- p - lr * v``
    (Nesterov: ``p <- p - lr * (g + momentum * v)``). The state is the velocity,
    zero at the start.
    """

    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False

    def init(self, params: MLP) -> MLP:
        """Zero velocity shaped like ``params``."""
        return params.map(_namespace(params).zeros_like)

    def step(self, params: MLP, grads: MLP, state: MLP) -> tuple[MLP, MLP]:
        """New parameters and velocity after one step; the inputs are unchanged."""
        lr, mu = self.lr, self.momentum
        if not mu:
            return params.map(lambda p, g: _axpy(-lr, g, p), grads), state
        v = state.map(lambda v, g: _axpy(mu, v, g), grads)
        if self.nesterov:
            return params.map(
                lambda p, g, v: _axpy(-lr, _axpy(mu, v, g), p), grads, v
            ), v
        return params.map(lambda p, v: _axpy(-lr, v, p), v), v


def _axpy(a: float, x: Array, y: Array) -> Array:
    """``a * x + y`` as a new array, with one temporary instead of two."""
    out = a * x
    out += y  # ``out`` is ours; JAX rebinds instead of writing, which is also right
    return out


@dataclass(frozen=True)
class Adam:
    """Adam (Kingma & Ba, 2015) with bias correction.

    The state is ``(t, m, v)``: the step count and the first and second moment
    estimates. Weight decay, when `fit` is given one, enters through the gradient
    (L2 regularisation), not decoupled as in AdamW.
    """

    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def init(self, params: MLP) -> tuple[int, MLP, MLP]:
        """Step 0 and zero moments."""
        zeros = params.map(_namespace(params).zeros_like)
        return 0, zeros, zeros

    def step(
        self, params: MLP, grads: MLP, state: tuple[int, MLP, MLP]
    ) -> tuple[MLP, tuple[int, MLP, MLP]]:
        """New parameters and state after one step; the inputs are unchanged."""
        xp = _namespace(params)
        t, m, v = state
        t += 1
        b1, b2 = self.beta1, self.beta2
        m = m.map(lambda m, g: b1 * m + (1 - b1) * g, grads)
        v = v.map(lambda v, g: b2 * v + (1 - b2) * (g * g), grads)
        lr_t = self.lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        eps_t = self.eps * math.sqrt(1 - b2**t)  # eps added to sqrt(v_hat), as in Adam
        new = params.map(lambda p, m, v: p - lr_t * m / (xp.sqrt(v) + eps_t), m, v)
        return new, (t, m, v)


Optimizer = SGD | Adam


class TrainingDiverged(FloatingPointError):
    """Training stopped because it diverged; ``epoch`` and ``reason`` say where and why.

    ``at_start``: the loss of the first batch, at the initial parameters, or its
    gradient is not finite, before any step (the loss's parameters or the
    features, not the learning rate). A `FloatingPointError`, so ``except
    FloatingPointError`` catches it.
    """

    def __init__(self, epoch: int, reason: str, *, at_start: bool = False) -> None:
        self.epoch = epoch
        self.reason = reason
        self.at_start = at_start
        hint = (
            "at the initial parameters, before any step: no smaller learning rate "
            "helps; check the loss's parameters and the features"
            if at_start
            else "try a smaller learning rate"
        )
        super().__init__(f"training diverged in epoch {epoch} ({reason}); {hint}")


DIVERGENCE_FACTOR = 1e4


def fit(
    params: MLP,
    x: Any,
    labels: Any,
    *,
    loss: str = "cross_entropy",
    loss_params: Mapping[str, Any] | None = None,
    optimizer: Optimizer | None = None,
    epochs: int = 10,
    batch_size: int = 64,
    weight_decay: float = 0.0,
    seed: int = 0,
    divergence_factor: float = DIVERGENCE_FACTOR,
    on_batch: Callable[[int, int, Array], None] | None = None,
    on_epoch: Callable[[int, MLP, float], bool | None] | None = None,
) -> MLP:
    r"""Train ``params`` with minibatches for a number of epochs.

    Parameters
    ----------
    params : MLP
        Initial parameters (see `init`).
    x : array of shape (n, d_in)
        Inputs (any array; moved to the parameters' namespace and dtype once);
        finite.
    labels : integer array of shape (n,)
        Class indices.
    loss, loss_params, weight_decay
        As in `loss_and_grad`.
    optimizer : SGD or Adam, default ``SGD()``
        The update rule.
    epochs : int, default 10
    batch_size : int, default 64
        The last batch of an epoch may be smaller.
    seed : int, default 0
        Seeds the order of the samples in each epoch.
    divergence_factor : float, default 1e4
        Growth that counts as divergence, :math:`F` below (``math.inf``: only
        non-finite values count).
    on_batch : callable, optional
        ``on_batch(epoch, step, value)`` after every step, with the batch loss as a
        0-d array (epochs count from 1, steps from 0 within the epoch).
    on_epoch : callable, optional
        ``on_epoch(epoch, params, mean_loss)`` after every epoch; returning
        ``True`` ends training there (early stopping: ``params`` are returned).

    Returns
    -------
    MLP
        The trained parameters.

    Raises
    ------
    TrainingDiverged
        (a `FloatingPointError`) when training diverges, whatever the optimizer:
        the loss, the scores or the parameters stop being finite, or in an
        epoch some batch had

        .. math::

            |J| > F \max(|J_0|, 1) \quad\text{or}\quad
            \max |f(x)| > F \max(S_0, 1),

        with :math:`J_0` the loss and :math:`S_0` the largest absolute score of
        the first batch at the initial parameters. The parameters after an
        epoch's last step are checked on that batch. A loss that is bounded (``expectation``,
        ``tanimoto``) cannot show divergence; the scores do. Training that
        converges keeps its scores within a few hundred of their start, so a
        factor of :math:`10^4` only stops runs whose predictions have lost their
        meaning (Adam at ``lr=1e10`` reaches scores of about :math:`10^{21}`).
    ValueError
        For non-finite ``x`` (after the cast to the parameters' dtype) or an
        unknown loss.
    """
    get_loss(loss)  # unknown names fail before any work
    optimizer = SGD() if optimizer is None else optimizer
    if epochs < 0 or batch_size < 1:
        msg = f"need epochs >= 0 and batch_size >= 1 (got {epochs}, {batch_size})"
        raise ValueError(msg)
    if not divergence_factor > 1:
        msg = f"`divergence_factor` must be > 1 (got {divergence_factor!r})"
        raise ValueError(msg)
    xp = _namespace(params)
    dev = _xp.xp_device(params.weights[0])
    dtype = params.weights[0].dtype
    with np.errstate(over="ignore", invalid="ignore"):
        x = xp.asarray(x, dtype=dtype, device=dev)
    if not bool(xp.all(xp.isfinite(x))):
        msg = f"`x` has NaN or infinite values (as {dtype})"
        raise ValueError(msg)
    y = xp.asarray(labels, device=dev)
    n = int(x.shape[0])
    rng = np.random.default_rng(seed)
    state: Any = optimizer.init(params)
    watch = _Watch(divergence_factor, xp)
    # Divergence shows up as non-finite or exploding scores or loss, reported as one
    # error rather than a stream of overflow warnings.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        xb = yb = None
        for epoch in range(1, epochs + 1):
            order = xp.asarray(rng.permutation(n), device=dev)
            total = 0.0
            for step, start in enumerate(range(0, n, batch_size)):
                idx = order[start : min(start + batch_size, n)]
                xb, yb = xp.take(x, idx, axis=0), xp.take(y, idx, axis=0)
                try:
                    value, grads, scores = _loss_grad_scores(
                        params, xb, yb, loss=loss, loss_params=loss_params,
                        weight_decay=weight_decay,
                    )  # fmt: skip
                except ValueError:
                    if bool(xp.all(xp.isfinite(forward(params, xb)))):
                        raise
                    raise TrainingDiverged(
                        epoch, "the scores are no longer finite"
                    ) from None
                watch.batch(epoch, value, scores, grads)
                params, state = optimizer.step(params, grads, state)
                total = total + value * int(idx.shape[0])
                if on_batch is not None:
                    on_batch(epoch, step, value)
            mean = float(total) / max(n, 1)
            if not math.isfinite(mean):
                raise TrainingDiverged(epoch, f"the mean loss is {mean}")
            watch.epoch(epoch, params)
            if xb is not None:  # the parameters after the epoch's last step
                watch.scores(epoch, forward(params, xb), "after the last step")
            if on_epoch is not None and on_epoch(epoch, params, mean) is True:
                break
    return params


class _Watch:
    """The divergence tests of `fit`, with few device synchronisations.

    The largest batch loss and score of an epoch are kept as 0-d arrays and read
    once at the end of the epoch.
    """

    def __init__(self, factor: float, xp: Namespace) -> None:
        self.factor, self.xp = factor, xp
        self.loss0 = self.score0 = math.nan
        self.worst_loss: Any = None
        self.worst_score: Any = None

    def batch(
        self, epoch: int, value: Array, scores: Array, grads: MLP | None = None
    ) -> None:
        xp = self.xp
        loss, size = xp.abs(value), xp.max(xp.abs(scores))
        if math.isnan(self.loss0):  # the first batch, at the initial parameters
            self.loss0, self.score0 = float(loss), float(size)
            if not math.isfinite(self.loss0):
                raise TrainingDiverged(
                    epoch, f"the loss is {self.loss0}", at_start=True
                )
            # a finite loss of a gradient that is not (focal:gamma=1e39 in
            # float32): the first step makes every parameter NaN, whatever the rate
            leaves = () if grads is None else (*grads.weights, *grads.biases)
            if not all(bool(xp.all(xp.isfinite(g))) for g in leaves):
                raise TrainingDiverged(
                    epoch, "the gradient is not finite", at_start=True
                )
        if self.worst_loss is None:
            self.worst_loss, self.worst_score = loss, size
        else:
            self.worst_loss = xp.maximum(self.worst_loss, loss)
            self.worst_score = xp.maximum(self.worst_score, size)

    def epoch(self, epoch: int, params: MLP) -> None:
        xp = self.xp
        if self.worst_loss is not None:
            loss, size = float(self.worst_loss), float(self.worst_score)
            self.worst_loss = self.worst_score = None
            self._check(epoch, loss, self.loss0, "a batch loss")
            self._check(epoch, size, self.score0, "the largest score")
        leaves = (*params.weights, *params.biases)
        if not all(bool(xp.all(xp.isfinite(p))) for p in leaves):
            raise TrainingDiverged(epoch, "the parameters are no longer finite")

    def scores(self, epoch: int, scores: Array, when: str) -> None:
        size = float(self.xp.max(self.xp.abs(scores)))
        self._check(epoch, size, self.score0, f"the largest score {when}")

    def _check(self, epoch: int, value: float, start: float, what: str) -> None:
        if not math.isfinite(value):
            raise TrainingDiverged(epoch, f"{what} is {value}")
        limit = self.factor * max(start, 1.0)
        if value > limit:
            reason = f"{what} reached {value:.3g}, from {start:.3g} at the start"
            raise TrainingDiverged(epoch, reason)


def predict(params: MLP, x: Any, *, batch_size: int = 4096) -> Array:
    """Class scores for ``x`` (any array), computed ``batch_size`` rows at a time."""
    xp = _namespace(params)
    dev = _xp.xp_device(params.weights[0])
    x = xp.asarray(x, dtype=params.weights[0].dtype, device=dev)
    n = int(x.shape[0])
    if n <= batch_size:
        return forward(params, x)
    parts = [
        forward(params, x[i : min(i + batch_size, n), ...])
        for i in range(0, n, batch_size)
    ]
    return xp.concat(parts, axis=0)


def evaluate(
    params_or_scores: MLP | Any, x: Any = None, labels: Any = None, *, k: int = 5,
    n_bins: int = 15,
) -> dict[str, float]:  # fmt: skip
    """Accuracy, top-k accuracy, NLL and ECE of a model on ``(x, labels)``.

    Parameters
    ----------
    params_or_scores : MLP or array of shape (n, C)
        A model (then ``x`` is required) or scores already computed.
    x : array of shape (n, d_in), optional
    labels : integer array of shape (n,)
    k : int, default 5
        For top-k accuracy; clipped to the number of classes.
    n_bins : int, default 15
        Equal-width confidence bins for the expected calibration error.

    Returns
    -------
    dict
        ``accuracy``, ``top_k_accuracy``, ``nll`` (mean negative log-likelihood of
        softmax of the scores) and ``ece`` (expected calibration error of the
        softmax's top probability, equal-width bins), as floats, computed by
        `arrayloss.metrics`; also ``k``.
    """
    if isinstance(params_or_scores, MLP):
        scores = predict(params_or_scores, x)
        labels = _xp.array_namespace(scores).asarray(
            labels, device=_xp.xp_device(scores)
        )
    else:
        scores = params_or_scores
    return score_metrics(scores, labels, k=k, n_bins=n_bins)


def score_metrics(
    scores: Any, labels: Any, *, k: int = 5, n_bins: int = 15
) -> dict[str, float]:
    """`evaluate` on scores already computed, through `arrayloss.metrics`."""
    from . import metrics

    k = min(k, int(scores.shape[-1]))
    return {
        "accuracy": float(metrics.accuracy(scores, labels)),
        "top_k_accuracy": float(metrics.top_k_accuracy(scores, labels, k=k)),
        "k": float(k),
        "nll": float(metrics.nll(scores, labels)),
        "ece": float(metrics.ece(scores, labels, n_bins=n_bins)),
    }


def save(params: MLP, path: str | os.PathLike[str] | BinaryIO, **metadata: Any) -> None:
    """Write the parameters (as NumPy arrays) and JSON ``metadata`` to ``path``.

    The ``.npz`` file holds ``W0, b0, W1, b1, ...``, ``activation`` and ``meta``
    (a JSON string); `load` reads it back. ``path`` may also be a binary file
    opened for writing.
    """
    arrays: dict[str, Any] = {}
    for i, (w, b) in enumerate(zip(params.weights, params.biases, strict=True)):
        arrays[f"W{i}"], arrays[f"b{i}"] = to_numpy(w), to_numpy(b)
    arrays["activation"] = np.asarray(params.activation)
    arrays["meta"] = np.asarray(json.dumps(metadata, sort_keys=True))
    if hasattr(path, "write"):
        np.savez(path, **arrays)
        return
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def load(
    path: str | os.PathLike[str], *, xp: Namespace | None = None, device: Any = None
) -> tuple[MLP, dict[str, Any]]:
    """Parameters and metadata written by `save`, in namespace ``xp`` (default NumPy).

    Raises
    ------
    DataError
        (a `ValueError`) when the file is not a model written by `save`.
    """
    from .io._npy import ZIP_ERRORS

    xp = np if xp is None else xp
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as f:
            n = sum(1 for key in f.files if key.startswith("W"))
            ws = [np.asarray(f[f"W{i}"]) for i in range(n)]
            bs = [np.asarray(f[f"b{i}"]) for i in range(n)]
            activation = str(f["activation"])
            meta = json.loads(str(f["meta"]))
    except (KeyError, ValueError, AttributeError, *ZIP_ERRORS) as exc:
        msg = f"{path}: not an arrayloss MLP file ({exc})"
        raise DataError(msg) from None
    problem = "no weights" if n == 0 else ""
    for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
        if problem:
            break
        if w.ndim != 2 or b.shape != w.shape[1:] or w.dtype.kind != "f":
            problem = f"layer {i} has weights {w.shape} and biases {b.shape}"
        elif i and w.shape[0] != ws[i - 1].shape[1]:
            problem = f"layer {i} takes {w.shape[0]} inputs, layer {i - 1} gives {ws[i - 1].shape[1]}"
    if not problem and activation not in ACTIVATIONS:
        problem = f"unknown activation {activation!r}"
    if not problem and not isinstance(meta, dict):
        problem = "its metadata is not a JSON object"
    if problem:
        msg = f"{path}: not an arrayloss MLP file ({problem})"
        raise DataError(msg)
    return MLP(
        tuple(xp.asarray(w, device=device) for w in ws),
        tuple(xp.asarray(b, device=device) for b in bs),
        activation,
    ), meta

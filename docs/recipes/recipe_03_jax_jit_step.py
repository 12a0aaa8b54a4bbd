r"""
A JAX ``jit`` training step
===========================

arrayloss runs inside `jax.jit`: the loss and its gradient with respect to the
logits are traced like any other JAX code. The step below pulls that gradient back
through the model with `jax.vjp`, so JAX differentiates only the model and
arrayloss supplies the loss's exact gradient, and the whole step compiles into one
program.
"""

import jax
import jax.numpy as jnp
import numpy as np

import arrayloss as al
from arrayloss.datasets import load_digits, split

parts = split(load_digits(), seed=0)
x_train, y_train = jnp.asarray(parts.x_train, jnp.float32), jnp.asarray(parts.y_train)
x_test, y_test = jnp.asarray(parts.x_test, jnp.float32), jnp.asarray(parts.y_test)


def model(params, x):
    W, b = params
    return x @ W + b


@jax.jit
def step(params, x, y, lr=2.0):
    logits, pullback = jax.vjp(lambda p: model(p, x), params)
    value, grad = al.cross_entropy_and_grad(logits, y, label_smoothing=0.05)
    (params_grad,) = pullback(grad)
    params = jax.tree.map(lambda p, g: p - lr * g, params, params_grad)
    return params, value


params = (jnp.zeros((64, parts.n_classes)), jnp.zeros(parts.n_classes))
for epoch in range(60):
    params, value = step(params, x_train, y_train)
    if epoch % 20 == 19:
        print(f"epoch {epoch + 1:3d}: loss {float(value):.4f}")

accuracy = float(al.metrics.accuracy(model(params, x_test), y_test))
print(f"test accuracy {accuracy:.3f}")
assert accuracy > 0.85

# %%
# The gradient arrayloss hands to the pullback is the one JAX's own autodiff
# finds through a cross-entropy written in ``jax.numpy``.


def reference(params, x, y):
    logits = model(params, x)
    q = 0.95 * jax.nn.one_hot(y, logits.shape[-1]) + 0.05 / logits.shape[-1]
    return -jnp.mean(jnp.sum(q * jax.nn.log_softmax(logits), axis=-1))


def ours(params, x, y):
    logits, pullback = jax.vjp(lambda p: model(p, x), params)
    value, grad = al.cross_entropy_and_grad(logits, y, label_smoothing=0.05)
    return value, pullback(grad)[0]


value, grads = jax.jit(ours)(params, x_test, y_test)
ref_value, ref_grads = jax.value_and_grad(reference)(params, x_test, y_test)
gap = max(float(jnp.abs(a - b).max()) for a, b in zip(grads, ref_grads, strict=True))
print(f"max |arrayloss - jax.grad| over the parameters = {gap:.1e} (float32)")
assert np.isclose(float(value), float(ref_value), rtol=1e-5)
assert gap < 1e-5

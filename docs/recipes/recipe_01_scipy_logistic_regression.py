r"""
Multinomial logistic regression with SciPy
==========================================

A loss that returns its exact gradient is all `scipy.optimize.minimize` needs
(``jac=True``). Here the objective is scikit-learn's L2-penalised multinomial
`LogisticRegression` (``C`` is its inverse regularisation strength, the intercept
is not penalised):

.. math::

    f(W, b) = \sum_i \operatorname{CE}(x_i W + b,\ y_i) + \frac{1}{2C} \lVert W \rVert_F^2,
    \qquad
    \nabla_W f = X^\top G + W / C, \quad \nabla_b f = \textstyle\sum_i G_i ,

where :math:`G` is the gradient of the summed cross-entropy with respect to the
logits, which :func:`arrayloss.cross_entropy_and_grad` returns with the value. The
script fits it with L-BFGS and checks that it finds scikit-learn's solution.
"""

import numpy as np
from scipy.optimize import minimize
from sklearn.linear_model import LogisticRegression

import arrayloss as al
from arrayloss.datasets import load_digits

data = load_digits()
X, y, K = data.x, data.y, data.n_classes
n, d = X.shape
C = 1.0


def objective(theta):
    W, b = theta[: d * K].reshape(d, K), theta[d * K :]
    value, G = al.cross_entropy_and_grad(X @ W + b, y, reduction="sum")
    f = float(value) + (W * W).sum() / (2 * C)
    grad = np.concatenate([(X.T @ G + W / C).ravel(), G.sum(axis=0)])
    return f, grad


result = minimize(
    objective, np.zeros(d * K + K), jac=True, method="L-BFGS-B",
    options={"maxiter": 5000, "gtol": 1e-9, "ftol": 1e-14},
)  # fmt: skip
W, b = result.x[: d * K].reshape(d, K), result.x[d * K :]
print(f"scipy + arrayloss: f = {result.fun:.8f} after {result.nit} iterations")

# %%
# The same model fitted by scikit-learn. Its objective has the same minimiser
# (newer releases divide it by ``n``, which does not move the minimum), so the
# coefficients, the predicted probabilities and our objective at its solution
# must agree.
sk = LogisticRegression(C=C, tol=1e-10, max_iter=10_000).fit(X, y)
theta_sk = np.concatenate([sk.coef_.T.ravel(), sk.intercept_])
f_sk = objective(theta_sk)[0]
print(f"scikit-learn:      f = {f_sk:.8f}")

proba = np.exp(X @ W + b - np.logaddexp.reduce(X @ W + b, axis=1, keepdims=True))
gap_proba = np.abs(proba - sk.predict_proba(X)).max()
gap_coef = np.abs(W - sk.coef_.T).max()
print(
    f"max |coef difference| = {gap_coef:.1e}, max |proba difference| = {gap_proba:.1e}"
)
assert abs(result.fun - f_sk) <= 1e-6 * abs(f_sk)
assert gap_coef < 1e-3
assert gap_proba < 1e-4

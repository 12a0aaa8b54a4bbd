r"""
A PyTorch training loop with the analytic gradient
==================================================

arrayloss computes a loss and its gradient with respect to the logits in one pass,
on the tensors' device, without building an autograd graph. To train a PyTorch
model with it, hand that gradient to autograd at the logits: ``logits.backward(grad)``
back-propagates it through the model exactly as ``loss.backward()`` would have.

.. code-block:: python

    value, grad = al.cross_entropy_and_grad(logits.detach(), y)
    logits.backward(grad)

Any loss of the registry works the same way. This recipe trains a small MLP on the
bundled digits with the smooth top-2 SVM, then checks the cross-entropy gradient
against the one PyTorch's autograd derives.
"""

import numpy as np
import torch

import arrayloss as al
from arrayloss.datasets import load_digits, split

torch.manual_seed(0)
torch.set_num_threads(1)
parts = split(load_digits(), seed=0)
x_train = torch.tensor(parts.x_train, dtype=torch.float32)
y_train = torch.tensor(parts.y_train)
x_test = torch.tensor(parts.x_test, dtype=torch.float32)
y_test = torch.tensor(parts.y_test)

model = torch.nn.Sequential(
    torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, parts.n_classes)
)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

# %%
# The loop: forward, loss and gradient from arrayloss, backward from the logits.
for epoch in range(10):
    for batch in torch.randperm(len(x_train)).split(64):
        optimizer.zero_grad()
        logits = model(x_train[batch])
        value, grad = al.smooth_topk_svm_and_grad(logits.detach(), y_train[batch], k=2)
        logits.backward(grad)
        optimizer.step()
    if epoch % 3 == 2:
        print(f"epoch {epoch + 1:2d}: last batch loss {float(value):.4f}")

with torch.no_grad():
    scores = model(x_test)
top1 = float(al.metrics.accuracy(scores, y_test))
top2 = float(al.metrics.top_k_accuracy(scores, y_test, k=2))
print(f"test accuracy {top1:.3f}, top-2 accuracy {top2:.3f}")
assert top2 > 0.9

# %%
# The gradient handed to autograd is the exact one: for cross-entropy it equals
# what PyTorch's autograd finds through ``torch.nn.functional.cross_entropy``.
logits = model(x_test).detach().requires_grad_()
torch.nn.functional.cross_entropy(logits, y_test).backward()
value, grad = al.cross_entropy_and_grad(logits.detach(), y_test)
difference = float((grad - logits.grad).abs().max())
print(f"max |arrayloss - autograd| = {difference:.1e} (float32)")
assert difference < 1e-6
reference = torch.nn.functional.cross_entropy(logits.detach(), y_test)
assert np.isclose(float(value), float(reference))

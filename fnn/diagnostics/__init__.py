r"""Diagnostics: is my gradient right, and does it reach the first layer?

Two questions a student (or anyone writing a custom layer) asks:

* :func:`check_gradients` compares the analytic gradient of a scalar function with
  central finite differences in float64, leaf by leaf, and says *where* they disagree
  (``jax.test_util.check_grads`` checks one random direction and only raises).
* :func:`layer_grad_norms` and :func:`vanishing_gradient_report` measure how the
  gradient shrinks on its way back through a deep MLP. The notes' argument: by the chain
  rule the first layer's gradient carries one factor :math:`f'(z_l)` per layer above
  it, and :math:`\sigma' \le 1/4`, so for sigmoid the product vanishes geometrically,
  while ReLU's factor is exactly 1 on active units.
* :func:`dead_units` and :func:`activation_stats` look at the forward pass instead:
  per hidden layer, the fraction of units never active on the data (the notes' dying
  ReLU) and the mean and spread of the outputs (the notes' zero-centred tanh).
"""

from fnn.diagnostics._activations import (
    ActivationStats, HiddenLayer, activation_stats, dead_units, hidden_layers,
)
from fnn.diagnostics._gradcheck import GradientCheck, LeafCheck, check_gradients
from fnn.diagnostics._norms import (
    VanishingGradientReport, grad_norms_fn, layer_grad_norms, vanishing_gradient_report,
)

__all__ = ["LeafCheck", "GradientCheck", "check_gradients", "layer_grad_norms", "grad_norms_fn",
           "VanishingGradientReport", "vanishing_gradient_report",
           "HiddenLayer", "hidden_layers", "dead_units", "ActivationStats", "activation_stats"]

"""fnn: a functional neural-network library on JAX.

Every model, activation, loss and optimizer is a pure function over pytrees; every
gradient comes from ``jax.grad``; a training run is one compiled program.
"""

__version__ = "0.1.0"

from fnn import (
    activations, backprop, checkpoint, compilation_cache, datasets, diagnostics, initializers,
    layers, losses, metrics, models, optimizers, parallel, perceptron, plots, training,
)
from fnn.activations import (
    elu, identity, leaky_relu, log_softmax, prelu, relu, sigmoid, softmax, step, tanh,
)
from fnn.layers import Layer, dense, serial
from fnn.models import mlp
from fnn.training import evaluate, fit
from fnn._summary import summary
from fnn.cnn import cnn
from fnn.export import export  # the function: fnn.export(model, params, input_shape, path)

__all__ = [
    "__version__",
    "activations", "backprop", "checkpoint", "compilation_cache", "datasets", "diagnostics",
    "initializers", "layers", "losses", "metrics", "models", "optimizers", "parallel",
    "perceptron", "plots", "training",
    "step", "sigmoid", "tanh", "relu", "leaky_relu", "prelu", "elu",
    "softmax", "log_softmax", "identity",
    "Layer", "dense", "serial", "mlp",
    "fit", "evaluate",
    "export",
]

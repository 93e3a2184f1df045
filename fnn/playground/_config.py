"""The playground's settings: every value a page may send, validated and bounded (private)."""

from __future__ import annotations

import math
from typing import Any, Mapping, NamedTuple

from fnn import _checks

__all__ = ["Config", "LIMITS", "CHOICES", "parse"]

_FN = "playground"
DATASETS = ("xor", "circles", "moons", "blobs", "spirals")
# Elementwise activations only: softmax/log_softmax mix a layer's units, so a "neuron"
# would stop being one picture.
ACTIVATIONS = ("tanh", "sigmoid", "relu", "leaky_relu", "elu", "prelu", "identity", "step")
OPTIMIZERS = ("sgd", "momentum", "adagrad", "rmsprop", "adam")
MODELS = ("network", "perceptron")
CHOICES = {"data": DATASETS, "activation": ACTIVATIONS, "optimizer": OPTIMIZERS, "model": MODELS}
#: (low, high) of every number; sizes are what keeps one update within a frame.
LIMITS = {"points": (20, 2000), "noise": (0.0, 2.0), "test_fraction": (0.1, 0.9),
          "layers": (0, 8), "neurons": (1, 32), "learning_rate": (1e-6, 10.0),
          "batch_size": (1, 2000), "weight_decay": (0.0, 1.0), "dropout": (0.0, 0.9),
          "epochs_per_update": (1, 100),
          "seed": (0, 2**31 - 1)}


class Config(NamedTuple):
    """One run of the page: data, network, optimizer (defaults: the issue's default network)."""

    data: str = "xor"
    points: int = 200
    noise: float = 0.1
    test_fraction: float = 0.2
    model: str = "network"
    hidden: tuple = (8, 8)
    activation: str = "tanh"
    optimizer: str = "adam"
    learning_rate: float = 0.03
    batch_size: int = 10
    weight_decay: float = 0.0
    dropout: float = 0.0       # probability of dropping a hidden unit in training; 0: none
    epochs_per_update: int = 5
    seed: int = 0


def _int(arg: str, value: Any) -> int:
    low, high = LIMITS[arg]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        _checks.fail(_FN, arg, f"be an integer in [{low}, {high}]", repr(value))
    return value


def _float(arg: str, value: Any) -> float:
    low, high = LIMITS[arg]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        _checks.fail(_FN, arg, f"be a number in [{low}, {high}]", repr(value))
    return float(value)


def _choice(arg: str, value: Any) -> str:
    if value not in CHOICES[arg]:
        _checks.fail(_FN, arg, f"be one of {', '.join(CHOICES[arg])}", repr(value))
    return value


def parse(given: Any) -> Config:
    """A :class:`Config` from the page's JSON object; ``ValueError`` names the bad field.

    Example:
      >>> parse({"data": "circles", "hidden": [4]}).hidden
      (4,)
    """
    if not isinstance(given, Mapping):
        _checks.fail(_FN, "config", "be a JSON object", type(given).__name__)
    unknown = sorted(set(given) - set(Config._fields))
    if unknown:
        _checks.fail(_FN, "config", f"hold only {', '.join(Config._fields)}", f"unknown {unknown}")
    values = Config()._replace(**given)._asdict()
    for arg in CHOICES:
        _choice(arg, values[arg])
    for arg in ("points", "batch_size", "epochs_per_update", "seed"):
        _int(arg, values[arg])
    for arg in ("noise", "test_fraction", "learning_rate", "weight_decay", "dropout"):
        _float(arg, values[arg])
    hidden = values["hidden"]
    low, high = LIMITS["layers"]
    if not isinstance(hidden, (list, tuple)) or not low <= len(hidden) <= high:
        _checks.fail(_FN, "hidden", f"be a list of {low} to {high} layer sizes", repr(hidden))
    values["hidden"] = tuple(_int("neurons", size) for size in hidden)
    return Config(**values)

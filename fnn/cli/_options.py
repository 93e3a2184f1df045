"""The options of a run, their bounds, and the check of a run's config.json (private)."""

from __future__ import annotations

from typing import Any

__all__ = ["DATASETS", "OPTIMIZERS", "ACTIVATIONS", "LIMITS", "SEEDS", "check_config", "Stopped", "interrupts"]

DATASETS = ("digits", "breast_cancer", "iris", "moons", "blobs", "spirals", "xor")
OPTIMIZERS = ("sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw")
ACTIVATIONS = ("relu", "leaky_relu", "elu", "prelu", "tanh", "sigmoid")
# Bounds of the integer options: beyond them a run cannot fit in memory or time anyway,
# and a one-line error beats an allocation failure deep inside XLA.
LIMITS = {"samples": 10_000_000, "layer": 65_536, "epochs": 1_000_000, "batch size": 2**31 - 1,
          "ensemble": 1024, "checkpoint interval": 1_000_000, "parameters": 100_000_000}
SEEDS = (-2**63, 2**63 - 1)


class Stopped(KeyboardInterrupt):
    """Ctrl-C with a note on what was kept (printed after ``interrupted``)."""


interrupts: list[int] = []
"""The SIGINTs the command's handler has seen in this run. A Ctrl-C that lands inside a
library's compiled-code callback can come out as another exception; with an entry here it
is still reported as the interrupt it was."""


def _count(bound: int, none_ok: bool = False):
    return lambda v: (v is None and none_ok) or (type(v) is int and 0 < v <= bound)


_FIELDS = {  # key: (check, expectation)
    "data": (lambda v: v in DATASETS, f"one of {', '.join(DATASETS)}"),
    "samples": (_count(LIMITS["samples"], True), "null or a positive integer"),
    "hidden": (lambda v: isinstance(v, list) and all(_count(LIMITS["layer"])(s) for s in v),
               f"a list of layer sizes from 1 to {LIMITS['layer']}"),
    "activation": (lambda v: v in ACTIVATIONS, f"one of {', '.join(ACTIVATIONS)}"),
    "optimizer": (lambda v: v in OPTIMIZERS, f"one of {', '.join(OPTIMIZERS)}"),
    "learning_rate": (lambda v: type(v) in (int, float) and 0 < v < float("inf"), "a positive number"),
    "epochs": (_count(LIMITS["epochs"]), f"an integer from 1 to {LIMITS['epochs']}"),
    "batch_size": (_count(LIMITS["batch size"]), "a positive integer"),
    "seed": (lambda v: type(v) is int and SEEDS[0] <= v <= SEEDS[1], "an integer from -2**63 to 2**63-1"),
    "ensemble": (_count(LIMITS["ensemble"]), f"an integer from 1 to {LIMITS['ensemble']}"),
}


def check_config(doc: Any, where: str) -> dict:
    """The ``"config"`` of a parsed config.json, or ValueError naming the file and the key."""
    config = doc.get("config") if isinstance(doc, dict) else None
    if not isinstance(config, dict):
        got = type(doc).__name__ if not isinstance(doc, dict) else "no 'config' object"
        raise ValueError(f"{where} must hold a JSON object with a 'config' object; got {got}")
    for key, (ok, expectation) in _FIELDS.items():
        if key not in config:
            raise ValueError(f"{where} must give config.{key}; it is missing")
        if not ok(config[key]):
            raise ValueError(f"{where}: config.{key} must be {expectation}; got {config[key]!r:.60}")
    return config

"""What a run is, rebuilt from its config: data, model, init, scoring (private)."""

from __future__ import annotations

import math
import os
import time
from typing import Any

__all__ = ["jsonable", "setup", "model_of", "split_state", "init", "score", "accuracy_text", "seconds_since_start", "parameter_count"]


def jsonable(value: Any) -> Any:
    """Arrays to nested lists; NaN/inf (epochs a guarded member skipped) to null."""
    import numpy as np
    if hasattr(value, "shape"):
        value = np.asarray(value).tolist()
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def setup(config: dict):
    """Data, model and keys of a run, rebuilt identically from its config."""
    import jax
    import fnn

    k_data, k_init, k_shuffle = jax.random.split(jax.random.key(config["seed"]), 3)
    options = {} if config.get("samples") is None else {"n": config["samples"]}
    if options and config["data"] not in ("moons", "blobs", "spirals", "xor"):
        raise ValueError(f"--samples applies to generated data only, not to {config['data']!r}")
    data = fnn.datasets.load(config["data"], key=k_data, **options)
    return data, model_of(config, data), k_init, k_shuffle


def model_of(config: dict, data):
    """The model of a config (configs from before ``--model`` are plain MLPs)."""
    import fnn

    sizes = list(config["hidden"]) + [data.num_classes]
    dropout, batch_norm = config.get("dropout", 0.0), config.get("batch_norm", False)
    if config.get("model", "mlp") == "mlp":
        return fnn.mlp(sizes, activation=config["activation"], dropout=dropout, batch_norm=batch_norm)
    features = data.x_train.shape[1]
    side = math.isqrt(features)
    if side * side != features:
        raise ValueError(f"--model cnn needs square images such as --data digits; got {config['data']!r} "
                         f"with {features} features")
    if config.get("ensemble", 1) != 1 or config["activation"] == "prelu":
        raise ValueError("--model cnn trains one model (no --ensemble) with a fixed activation (not prelu)")
    return fnn.cnn(tuple(config["channels"]), tuple(sizes), kernel_size=(config["kernel"],) * 2,
                   activation=getattr(fnn.activations, config["activation"]), batch_norm=batch_norm,
                   dropout=dropout, image_shape=(side, side, 1))


def split_state(model, initialised) -> tuple[Any, Any]:
    """``(params, state)`` of what ``init`` returned; state None for a pure Layer."""
    import fnn

    return initialised if isinstance(model, fnn.layers.StatefulLayer) else (initialised, None)


def init(model, key, input_shape, ensemble: int):
    """Params of one model or a stacked ensemble; jitted: one compile, not one per op."""
    import jax
    import fnn

    def init_one(k):
        if ensemble == 1:
            return model.init(k, input_shape)
        return fnn.training.init_ensemble(model, jax.random.split(k, ensemble), input_shape)
    return jax.jit(init_one)(key)


def score(model, params, data, ensemble: int, state: Any = None) -> tuple[dict, Any, Any]:
    """Test metrics (ensemble: of the averaged probabilities), predictions, and the apply."""
    import jax
    import jax.numpy as jnp
    import fnn

    if state is not None:  # a StatefulLayer at inference: running averages, no dropout
        def apply(p, x):
            return model.apply(p, state, x, train=False)[0]
    elif ensemble == 1:
        apply = model.apply
    else:
        def apply(p, x):  # the ensemble's prediction: log of the members' mean probabilities
            return jnp.log(jnp.mean(jax.nn.softmax(jax.vmap(model.apply, (0, None))(p, x)), axis=0))

    @jax.jit  # one compiled program instead of a dispatch (and a compile) per operation
    def scored(p, x, y):
        logits = apply(p, x)
        out = {"test_loss": fnn.losses.softmax_cross_entropy(logits, y),
               "test_accuracy": fnn.metrics.accuracy(logits, y),
               "test_macro_f1": fnn.metrics.f1(logits, y)}
        if ensemble > 1:
            out["member_accuracy"] = jax.vmap(lambda q: fnn.metrics.accuracy(model.apply(q, x), y))(p)
        return out, jnp.argmax(logits, axis=-1)

    values, predicted = scored(params, data.x_test, data.y_test)
    result = {k: v.tolist() for k, v in values.items()}
    if ensemble > 1:
        result["member_accuracy_mean"] = sum(result["member_accuracy"]) / ensemble
    return result, predicted, jax.jit(apply)


def accuracy_text(scores: dict, ensemble: int) -> str:
    members = (f" (ensemble of {ensemble}; members' mean {scores['member_accuracy_mean']:.4f})"
               if ensemble > 1 else "")
    return (f"test accuracy {scores['test_accuracy']:.4f}{members} | macro F1 {scores['test_macro_f1']:.4f} "
            f"| test loss {scores['test_loss']:.4f}")


def seconds_since_start(fallback: float) -> tuple[float, str]:
    """Seconds since the process started (Linux ``/proc``), else since ``main`` began."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = float(f.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK"), "process start"
    except (OSError, ValueError, IndexError, AttributeError):
        return time.perf_counter() - fallback, "start"


def parameter_count(sizes: list[int]) -> int:
    """Parameters of a dense MLP with layer sizes ``[in, hidden..., out]``."""
    return sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))

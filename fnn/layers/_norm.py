r"""Layer normalisation and embeddings (part of :mod:`fnn.layers`)."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from fnn import _checks
from fnn import initializers as _initializers
from fnn._cache import same_object_for_same_arguments
from fnn.layers._core import Layer, example_shape
from fnn.layers._registry import named

__all__ = ["layer_norm", "embedding"]


def _check_keys(fn: str, params: Any, keys: tuple[str, ...]) -> None:
    if not isinstance(params, Mapping) or any(k not in params for k in keys):
        _checks.fail(fn, "params", f"be a dict with {keys}",
                     f"keys {sorted(map(str, params))}" if isinstance(params, Mapping) else _checks.describe(params),
                     ValueError if isinstance(params, Mapping) else TypeError)


@same_object_for_same_arguments
def layer_norm(*, eps: float = 1e-5, dtype: Any = jnp.float32) -> Layer:
    r"""Layer normalisation: each example standardised over its last axis, then scaled and shifted.

    Unlike :func:`batch_norm` the statistics are those of ONE example's features, so
    training and inference compute the same function and there is no state:

    .. math:: \mu = \tfrac1C \sum_c x_c, \qquad \sigma^2 = \tfrac1C \sum_c (x_c - \mu)^2,
              \qquad y_c = \gamma_c \frac{x_c - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta_c

    with :math:`\gamma` = ``params["scale"]`` (init 1), :math:`\beta` =
    ``params["offset"]`` (init 0), both ``(C,)`` with ``C = input_shape[-1]``;
    :math:`\epsilon` = ``eps`` (PyTorch's default 1e-5; Keras' 1e-3, flax's 1e-6). The
    statistics are computed in at least float32; the output has ``x``'s shape and dtype.

    Example:
      >>> import jax, jax.numpy as jnp, fnn
      >>> layer = fnn.layers.layer_norm()
      >>> params = layer.init(jax.random.key(0), (3,))
      >>> layer.apply(params, jnp.array([1.0, 2.0, 3.0])).round(3)
      Array([-1.225,  0.   ,  1.225], dtype=float32)
    """
    _checks.number("layer_norm", "eps", eps, low=0.0, low_open=True)
    eps = float(eps)

    def init(key: jax.Array, input_shape: Sequence[int]) -> dict:
        _checks.prng_key("layer_norm", "key", key)
        features = example_shape("layer_norm", input_shape)[-1]
        return {"scale": jnp.ones((features,), dtype), "offset": jnp.zeros((features,), dtype)}

    def apply(params: dict, x: ArrayLike) -> jax.Array:
        _check_keys("layer_norm", params, ("scale", "offset"))
        _checks.floating("layer_norm", "x", x)
        x = jnp.asarray(x)
        features = jnp.shape(params["scale"])[-1] if jnp.ndim(params["scale"]) else None
        if x.ndim < 1 or x.shape[-1] != features:
            _checks.fail("layer_norm", "x", f"have last dimension {features} (the features of the layer)",
                         f"x of shape {tuple(x.shape)}")
        xf = x.astype(jnp.promote_types(x.dtype, jnp.float32))
        mean = jnp.mean(xf, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(xf - mean), axis=-1, keepdims=True)
        y = (xf - mean) * jax.lax.rsqrt(var + eps) * params["scale"] + params["offset"]
        return y.astype(x.dtype)

    return named(Layer(init, apply), "layer_norm")


@same_object_for_same_arguments
def embedding(num_embeddings: int, features: int, *, w_init: Callable | None = None,
              dtype: Any = jnp.float32) -> Layer:
    r"""Embedding: integer ids looked up in a learned table, one row of ``features`` per id.

    Equal to a :func:`dense` layer without bias applied to the one-hot encoding of the
    ids, computed as a gather:

    .. math:: y_{\dots, :} = W_{x_{\dots}, :} = \text{onehot}(x) W

    Params ``{"w": (num_embeddings, features)}``, default init normal with stddev 1
    (PyTorch's ``nn.Embedding``; flax's default has the same variance). ``x`` holds
    integers of any shape; the output has shape ``x.shape + (features,)`` and the
    params' dtype. The gradient of a row is the sum of the output gradients of its
    occurrences.

    Out-of-range ids (``< 0`` or ``>= num_embeddings``): when ``x`` is concrete (not
    traced), ``apply`` raises ``ValueError`` naming the offending value. Under ``jit``
    the values are unknown at trace time; the lookup then uses ``mode="fill"``: an
    out-of-range id gives a row of NaN (so it shows in the loss instead of silently
    reading a clamped row, XLA's default for gathers).

    Example:
      >>> import jax, jax.numpy as jnp, fnn
      >>> layer = fnn.layers.embedding(10, 3)
      >>> params = layer.init(jax.random.key(0), (5,))
      >>> layer.apply(params, jnp.array([[1, 2, 3, 4, 5]])).shape
      (1, 5, 3)
    """
    num_embeddings = _checks.positive_int("embedding", "num_embeddings", num_embeddings)
    features = _checks.positive_int("embedding", "features", features)
    w_init = _initializers.normal(1.0) if w_init is None else w_init
    name = f"embedding({num_embeddings}, {features})"

    def init(key: jax.Array, input_shape: Sequence[int]) -> dict:
        _checks.prng_key(name, "key", key)
        example_shape(name, input_shape)
        return {"w": w_init(key, (num_embeddings, features), dtype)}

    def apply(params: dict, x: ArrayLike) -> jax.Array:
        _check_keys(name, params, ("w",))
        w = params["w"]
        if jnp.shape(w) != (num_embeddings, features):
            _checks.fail(name, "params", f"hold w of shape ({num_embeddings}, {features})",
                         f"w of shape {tuple(jnp.shape(w))}")
        _checks.integer(name, "x", x)
        value = _checks.concrete(x)
        if value is not None and value.size and (value.min() < 0 or value.max() >= num_embeddings):
            bad = value[(value < 0) | (value >= num_embeddings)].flat[0]
            _checks.fail(name, "x", f"hold ids in [0, {num_embeddings})", f"id {int(bad)}")
        ids = jnp.asarray(x).astype(jnp.int32)
        # take() wraps negative ids like NumPy before "fill" applies: send them out of range.
        ids = jnp.where(ids < 0, num_embeddings, ids)
        return jnp.take(w, ids, axis=0, mode="fill", fill_value=jnp.nan)

    return named(Layer(init, apply), name, input_dtype=jnp.int32)

r"""Batch normalisation (part of :mod:`fnn.layers`)."""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from fnn import _checks
from fnn._cache import same_object_for_same_arguments
from fnn.layers._core import StatefulLayer, check_train, example_shape
from fnn.layers._registry import named

__all__ = ["batch_norm", "batch_norm_apply", "batch_norm_init"]


def batch_norm_init(features: int, dtype: Any = jnp.float32) -> tuple[dict, dict]:
    """``({"scale": ones, "offset": zeros}, {"mean": zeros, "var": ones})``, each ``(features,)``."""
    return ({"scale": jnp.ones((features,), dtype), "offset": jnp.zeros((features,), dtype)},
            {"mean": jnp.zeros((features,), jnp.float32), "var": jnp.ones((features,), jnp.float32)})


def _check(name: str, params: Any, state: Any, x: Any) -> None:
    for arg, value, keys in (("params", params, ("scale", "offset")), ("state", state, ("mean", "var"))):
        if not isinstance(value, Mapping) or any(k not in value for k in keys):
            _checks.fail(name, arg, f"be a dict with {keys}",
                         f"keys {sorted(map(str, value))}" if isinstance(value, Mapping)
                         else _checks.describe(value), TypeError if not isinstance(value, Mapping)
                         else ValueError)
    _checks.array_like(name, "x", x)
    features = jnp.shape(params["scale"])[-1] if jnp.ndim(params["scale"]) else None
    if jnp.ndim(x) < 1 or jnp.shape(x)[-1] != features:
        _checks.fail(name, "x", f"have last dimension {features} (the features of the layer)",
                     f"x of shape {tuple(jnp.shape(x))}")
    for arg, tree in (("state", state),):
        for k in ("mean", "var"):
            if jnp.shape(tree[k]) != (features,):
                _checks.fail(name, arg, f"hold {k} of shape ({features},) (the state of this layer)",
                             f"{k} of shape {tuple(jnp.shape(tree[k]))}")


def batch_norm_apply(params: Mapping, state: Mapping, x: ArrayLike, *, train: bool,
                     momentum: float, eps: float, name: str = "batch_norm") -> tuple[jax.Array, dict]:
    """The batch-norm function of :func:`batch_norm` (shared with :func:`fnn.mlp`)."""
    _check(name, params, state, x)
    x = jnp.asarray(x)
    axes = tuple(range(x.ndim - 1))
    if train and axes:
        # Statistics in at least float32, whatever the input dtype (bfloat16 sums drift).
        xf = x.astype(jnp.promote_types(x.dtype, jnp.float32))
        mean = jnp.mean(xf, axis=axes)
        var = jnp.mean(jnp.square(xf - mean), axis=axes)
        new_state: Mapping = {"mean": momentum * state["mean"] + (1 - momentum) * mean.astype(state["mean"].dtype),
                     "var": momentum * state["var"] + (1 - momentum) * var.astype(state["var"].dtype)}
    else:
        mean, var, new_state = state["mean"], state["var"], state
    inv = jax.lax.rsqrt(var + eps) * params["scale"]
    y = (x - mean.astype(x.dtype)) * inv.astype(x.dtype) + params["offset"].astype(x.dtype)
    return y.astype(x.dtype), dict(new_state)


@same_object_for_same_arguments
def batch_norm(*, momentum: float = 0.99, eps: float = 1e-5, dtype: Any = jnp.float32) -> StatefulLayer:
    r"""Batch normalisation: each feature standardised over the batch, then scaled and shifted.

    A second remedy for the notes' vanishing gradient beside ReLU: keeping every layer's
    pre-activations near mean 0 and variance 1 keeps sigmoid and tanh units out of
    their flat, saturated ends, where the derivative is nearly 0. In training the
    statistics are those of the batch (over every axis but the last, the features) and
    the running averages are updated; at inference the running averages are used:

    .. math:: \mu_B = \tfrac1m \sum_i x_i, \qquad \sigma_B^2 = \tfrac1m \sum_i (x_i - \mu_B)^2,
              \qquad y = \gamma \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta

    .. math:: r_\mu \leftarrow \rho\, r_\mu + (1 - \rho)\, \mu_B, \qquad
              r_{\sigma^2} \leftarrow \rho\, r_{\sigma^2} + (1 - \rho)\, \sigma_B^2

    with :math:`(\mu, \sigma^2) = (\mu_B, \sigma_B^2)` in training and
    :math:`(r_\mu, r_{\sigma^2})` at inference; :math:`\gamma` = ``params["scale"]``,
    :math:`\beta` = ``params["offset"]``, :math:`\rho` = ``momentum``, :math:`\epsilon` =
    ``eps``. The batch variance is the biased one (divided by :math:`m`), for normalising
    and for the running average.

    Conventions: ``momentum`` is Keras' (``BatchNormalization(momentum=0.99)``, flax's
    ``nn.BatchNorm(momentum=0.99)``): the weight of the OLD running value. PyTorch's
    ``BatchNorm1d(momentum=0.1)`` is the weight of the NEW batch value
    (:math:`\rho_{torch} = 1 - \rho`), and PyTorch's running variance uses the unbiased
    batch variance (:math:`m / (m - 1)` times ours). Keras' default ``epsilon`` is 1e-3,
    PyTorch's and ours 1e-5.

    Params ``{"scale": (C,), "offset": (C,)}``; state ``{"mean": (C,), "var": (C,)}``
    (float32, initialised to 0 and 1), ``C = input_shape[-1]``. The output has ``x``'s
    shape and dtype; statistics are computed in at least float32.

    Args:
      momentum: weight of the old running value, in ``[0, 1]``.
      eps: added to the variance, > 0.
      dtype: dtype of the params.

    Returns:
      A :class:`fnn.layers.StatefulLayer`.

    Example:
      >>> import jax, jax.numpy as jnp, fnn
      >>> layer = fnn.layers.batch_norm(momentum=0.9)
      >>> params, state = layer.init(jax.random.key(0), (2,))
      >>> x = jnp.array([[1.0, 10.0], [3.0, 30.0]])
      >>> y, state = layer.apply(params, state, x, train=True)
      >>> y.round(3)
      Array([[-1., -1.],
             [ 1.,  1.]], dtype=float32)
      >>> state["mean"]
      Array([0.2, 2. ], dtype=float32)
    """
    _checks.number("batch_norm", "momentum", momentum, low=0.0, high=1.0)
    _checks.number("batch_norm", "eps", eps, low=0.0, low_open=True)
    momentum, eps = float(momentum), float(eps)

    def init(key: jax.Array, input_shape: Any) -> tuple[dict, dict]:
        _checks.prng_key("batch_norm", "key", key)
        shape = example_shape("batch_norm", input_shape)
        return batch_norm_init(shape[-1], dtype)

    def apply(params: Any, state: Any, x: ArrayLike, *, key: Any = None,
              train: bool = False) -> tuple[jax.Array, dict]:
        del key
        train = check_train("batch_norm", train)
        return batch_norm_apply(params, state, x, train=train, momentum=momentum, eps=eps)

    return named(StatefulLayer(init, apply), "batch_norm")

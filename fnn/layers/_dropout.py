r"""Dropout: randomly silenced units in training (part of :mod:`fnn.layers`)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from fnn import _checks
from fnn._cache import same_object_for_same_arguments
from fnn.layers._core import StatefulLayer, check_empty_state, check_train, example_shape
from fnn.layers._registry import named

__all__ = ["dropout", "dropout_apply"]


def dropout_apply(x: ArrayLike, rate: float, key: Any, train: bool, *, name: str = "dropout") -> jax.Array:
    r"""The dropout function: ``x * m / (1 - rate)`` with ``m ~ Bernoulli(1 - rate)`` in training."""
    x = jnp.asarray(x)
    if not train or rate == 0.0:
        return x
    if key is None:
        _checks.fail(name, "key", "be a jax.random key when train=True (it draws the dropout mask)",
                     None)
    _checks.prng_key(name, "key", key)
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / jnp.asarray(1.0 - rate, x.dtype), jnp.zeros((), x.dtype))


@same_object_for_same_arguments
def dropout(rate: float) -> StatefulLayer:
    r"""Dropout: in training each unit is dropped (set to 0) with probability ``rate``.

    The notes' remedy for a network that fits its training data too well: every step
    trains a random thinned sub-network, so no unit can rely on a particular other one.
    Inverted scaling keeps the expectation of every unit unchanged, so inference uses
    the full network as it is:

    .. math:: y = \frac{m \odot x}{1 - p} \quad (\text{train}), \qquad m_i \sim
              \text{Bernoulli}(1 - p), \qquad \mathbb{E}[y] = x; \qquad y = x \quad
              (\text{inference})

    with :math:`p` = ``rate``, the probability of DROPPING a unit (as
    ``torch.nn.Dropout(p)`` and ``keras.layers.Dropout(rate)``; stax's ``Dropout(rate)``
    takes the probability of keeping, a known trap). Params and state are empty;
    ``apply(params, state, x, *, key, train)`` keeps ``x``'s shape and dtype. The mask is
    a function of ``key`` alone: the same key gives the same mask.

    Args:
      rate: probability of dropping each unit, in ``[0, 1)``.

    Returns:
      A :class:`fnn.layers.StatefulLayer` with params ``()`` and state ``()``.

    Raises:
      ValueError: for ``rate`` outside ``[0, 1)`` (at construction); from ``apply``, for
        ``train=True`` without a ``key``.

    Example:
      >>> import jax, jax.numpy as jnp, fnn
      >>> layer = fnn.layers.dropout(0.5)
      >>> params, state = layer.init(jax.random.key(0), (4,))
      >>> y, _ = layer.apply(params, state, jnp.ones(4), key=jax.random.key(1), train=True)
      >>> sorted(set(y.tolist())) in ([0.0, 2.0], [2.0], [0.0])
      True
      >>> layer.apply(params, state, jnp.ones(4))[0]       # inference: identity
      Array([1., 1., 1., 1.], dtype=float32)
    """
    _checks.number("dropout", "rate", rate, low=0.0, high=1.0, high_open=True,
                   expectation="be in [0, 1) (the probability of dropping a unit)")
    rate = float(rate)

    def init(key: jax.Array, input_shape: Any) -> tuple[tuple, tuple]:
        del key
        example_shape("dropout", input_shape)
        return (), ()

    def apply(params: Any, state: Any, x: ArrayLike, *, key: Any = None,
              train: bool = False) -> tuple[jax.Array, tuple]:
        train = check_train("dropout", train)
        check_empty_state("dropout", params, "params")
        check_empty_state("dropout", state)
        _checks.array_like("dropout", "x", x)
        return dropout_apply(x, rate, key, train), state

    return named(StatefulLayer(init, apply), f"dropout({rate})")

r"""Weight initializers in the ``jax.nn.initializers`` convention.

A factory returns an initializer ``init(key, shape, dtype=jnp.float32) -> array``;
``zeros`` and ``ones`` are initializers themselves, as in JAX. Draws are the same
distributions as ``jax.nn.initializers`` and, for the same key, the same numbers.

Variance scaling, the family behind Glorot, He and LeCun: for a dense kernel of shape
``(fan_in, fan_out)`` (more generally ``shape[-2]``, ``shape[-1]`` times the product of
the other axes, the receptive field),

.. math:: \mathrm{Var}[w] = \frac{s}{n}, \qquad
          n = \text{fan\_in},\ \text{fan\_out}\ \text{or}\ \tfrac12(\text{fan\_in} + \text{fan\_out})

- Glorot (Xavier): :math:`s = 1`, fan-average — keeps activations and gradients at unit
  scale through sigmoid/tanh layers.
- He (Kaiming): :math:`s = 2`, fan-in — ReLU zeroes half of its inputs, so twice the
  variance keeps the signal from shrinking layer by layer.
- LeCun: :math:`s = 1`, fan-in — for SELU-like and linear layers.

"uniform" draws from :math:`U(-\sqrt{3 s / n}, \sqrt{3 s / n})`; "normal" draws from a
normal truncated at two standard deviations and rescaled to the target variance
(divided by 0.87962566103423978, the std of a standard normal truncated to [-2, 2]).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fnn import _checks

__all__ = [
    "zeros", "ones", "normal", "uniform", "variance_scaling",
    "glorot_uniform", "glorot_normal", "he_uniform", "he_normal",
    "lecun_uniform", "lecun_normal",
]

Initializer = Callable[..., jax.Array]

# Standard deviation of a standard normal truncated to [-2, 2].
_TRUNCATED_NORMAL_STD = 0.87962566103423978


def _shape(fn: str, shape: Sequence[int]) -> tuple[int, ...]:
    """The shape to draw: a sequence of non-negative ints."""
    try:
        dims = tuple(shape)
    except TypeError:
        dims = None
    if dims is None or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0
                               for d in dims):
        _checks.fail(fn, "shape", "be a sequence of non-negative ints", repr(shape),
                     TypeError if dims is None else ValueError)
    return tuple(int(d) for d in dims)


def _random_args(fn: str, key: jax.Array, shape: Sequence[int], dtype) -> tuple[tuple[int, ...], jnp.dtype]:
    """Check a random initializer's call: one PRNG key, a shape, a floating dtype."""
    _checks.prng_key(fn, "key", key)
    shape = _shape(fn, shape)
    try:
        dt = jnp.dtype(dtype)
    except TypeError:
        _checks.fail(fn, "dtype", "be a floating dtype", repr(dtype), TypeError)
    if not jnp.issubdtype(dt, jnp.floating):
        _checks.fail(fn, "dtype", "be a floating dtype", f"dtype {dt}")
    return shape, dt


def zeros(key: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
    """All zeros (the usual bias initializer); ``key`` is unused."""
    del key
    return jnp.zeros(_shape("zeros", shape), dtype)


def ones(key: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
    """All ones; ``key`` is unused."""
    del key
    return jnp.ones(_shape("ones", shape), dtype)


def normal(stddev: float = 1e-2) -> Initializer:
    r""":math:`w \sim \mathcal N(0, \text{stddev}^2)`, as ``jax.nn.initializers.normal``."""
    _checks.number("normal", "stddev", stddev, low=0)

    def init(key, shape, dtype=jnp.float32):
        shape, dtype = _random_args("normal", key, shape, dtype)
        return jax.random.normal(key, shape, dtype) * jnp.asarray(stddev, dtype)

    return init


def uniform(scale: float = 1e-2) -> Initializer:
    r""":math:`w \sim U[0, \text{scale})`, as ``jax.nn.initializers.uniform``."""
    _checks.number("uniform", "scale", scale, low=0)

    def init(key, shape, dtype=jnp.float32):
        shape, dtype = _random_args("uniform", key, shape, dtype)
        return jax.random.uniform(key, shape, dtype) * jnp.asarray(scale, dtype)

    return init


def _fans(shape: tuple[int, ...]) -> tuple[float, float]:
    if len(shape) < 2:
        _checks.fail("variance_scaling", "shape", "have at least 2 dimensions (fan_in, fan_out)",
                     f"shape {shape}")
    receptive_field = math.prod(shape[:-2])
    if receptive_field * shape[-2] * shape[-1] == 0:
        _checks.fail("variance_scaling", "shape", "have non-zero fan_in and fan_out", f"shape {shape}")
    return float(shape[-2] * receptive_field), float(shape[-1] * receptive_field)


def variance_scaling(scale: float, mode: str, distribution: str) -> Initializer:
    r"""Variance-scaling initializer: :math:`\mathrm{Var}[w] = \text{scale} / n`.

    Args:
      scale: :math:`s`, positive.
      mode: ``"fan_in"``, ``"fan_out"`` or ``"fan_avg"`` — which :math:`n`.
      distribution: ``"uniform"`` or ``"truncated_normal"``.

    Returns:
      ``init(key, shape, dtype=float32)``.
    """
    _checks.number("variance_scaling", "scale", scale, low=0, low_open=True)
    if mode not in ("fan_in", "fan_out", "fan_avg"):
        _checks.fail("variance_scaling", "mode", "be 'fan_in', 'fan_out' or 'fan_avg'", repr(mode))
    if distribution not in ("uniform", "truncated_normal"):
        _checks.fail("variance_scaling", "distribution", "be 'uniform' or 'truncated_normal'",
                     repr(distribution))

    def init(key, shape, dtype=jnp.float32):
        shape, dtype = _random_args("variance_scaling", key, shape, dtype)
        fan_in, fan_out = _fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
        variance = jnp.asarray(scale / n, dtype)
        if distribution == "uniform":
            return jax.random.uniform(key, shape, dtype, -1, 1) * jnp.sqrt(3 * variance)
        stddev = jnp.sqrt(variance) / jnp.asarray(_TRUNCATED_NORMAL_STD, dtype)
        return jax.random.truncated_normal(key, -2, 2, shape, dtype) * stddev

    return init


def glorot_uniform() -> Initializer:
    """Glorot/Xavier uniform: scale 1, fan_avg."""
    return variance_scaling(1.0, "fan_avg", "uniform")


def glorot_normal() -> Initializer:
    """Glorot/Xavier (truncated) normal: scale 1, fan_avg."""
    return variance_scaling(1.0, "fan_avg", "truncated_normal")


def he_uniform() -> Initializer:
    """He/Kaiming uniform: scale 2, fan_in — for ReLU layers."""
    return variance_scaling(2.0, "fan_in", "uniform")


def he_normal() -> Initializer:
    """He/Kaiming (truncated) normal: scale 2, fan_in — for ReLU layers."""
    return variance_scaling(2.0, "fan_in", "truncated_normal")


def lecun_uniform() -> Initializer:
    """LeCun uniform: scale 1, fan_in."""
    return variance_scaling(1.0, "fan_in", "uniform")


def lecun_normal() -> Initializer:
    """LeCun (truncated) normal: scale 1, fan_in."""
    return variance_scaling(1.0, "fan_in", "truncated_normal")

r"""Activation functions: step, sigmoid, tanh, ReLU family, ELU, softmax.

An activation function decides whether a neuron "fires": it maps the net sum
:math:`z = x \cdot w + b` of a neuron to its output :math:`a = f(z)`. Every function
here is pure, elementwise unless it says otherwise, works under ``jit``/``grad``/
``vmap``, returns its input's dtype (integer input becomes the default float, as in
``jnp.tanh``; step, relu and identity keep integers), and is finite for every finite
input. At each kink the derivative is defined on purpose and agrees with ``jax.nn``:
``relu'(0) = 0``, ``leaky_relu'(0) = prelu'(0) = 1``, ``elu'(0) = alpha``.

Which to use (lecture notes): ReLU in the hidden layers, softmax on the output for
multi-class problems and sigmoid for binary ones; sigmoid and tanh in deep hidden
stacks make gradients vanish because :math:`\sigma' \le 1/4` and :math:`\tanh' \le 1`.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from fnn import _checks

__all__ = [
    "step", "sigmoid", "tanh", "relu", "leaky_relu", "prelu", "elu",
    "softmax", "log_softmax", "identity", "get", "names",
]


def _as_array(fn: str, x: ArrayLike) -> jax.Array:
    _checks.array_like(fn, "x", x)
    return jnp.asarray(x)


def _as_float(fn: str, x: ArrayLike) -> jax.Array:
    # Integer input is promoted to the default float as jnp.tanh does; otherwise a float
    # constant cast to x.dtype (leaky_relu's slope, elu's alpha) would truncate to 0.
    x = _as_array(fn, x)
    return x if jnp.issubdtype(x.dtype, jnp.inexact) else x.astype(jnp.result_type(x, float))


def _coefficient(fn: str, arg: str, value: ArrayLike, x: jax.Array) -> jax.Array:
    # A slope or alpha: array-like (not None or a string) and broadcastable to x's shape.
    _checks.array_like(fn, arg, value)
    value = jnp.asarray(value)
    try:
        fits = jnp.broadcast_shapes(value.shape, x.shape) == x.shape
    except ValueError:
        fits = False
    if not fits:
        _checks.fail(fn, arg, f"broadcast to x of shape {x.shape}", f"shape {value.shape}")
    return value.astype(x.dtype)


def _axis(fn: str, axis: int, x: jax.Array) -> None:
    # The class axis: a Python int within x's rank (x at least 1-D).
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        _checks.fail(fn, "axis", "be an int", _checks.describe(axis), TypeError)
    if x.ndim == 0:
        _checks.fail(fn, "x", "have at least 1 dimension (the class axis)", "shape ()")
    if not -x.ndim <= axis < x.ndim:
        _checks.fail(fn, "axis", f"be in [{-x.ndim}, {x.ndim}) for x of shape {x.shape}", repr(axis))


def step(x: ArrayLike) -> jax.Array:
    r"""Heaviside step, the perceptron's activation.

    The neuron is "ON" when its net sum reaches the threshold 0.

    .. math:: f(x) = 1 \text{ if } x \ge 0 \text{ else } 0

    Range :math:`\{0, 1\}`. The derivative is 0 everywhere (at 0 too, by convention),
    which is why a step network cannot be trained by gradient descent and the
    perceptron has its own learning rule (:mod:`fnn.perceptron`).

    Args:
      x: any shape and dtype.

    Returns:
      ``x``'s shape and dtype, values in {0, 1}.

    Example:
      >>> import jax.numpy as jnp, fnn
      >>> fnn.step(jnp.array([-1.0, 0.0, 2.0]))
      Array([0., 1., 1.], dtype=float32)
    """
    x = _as_array("step", x)
    # where() of two constants has a zero gradient with respect to x, as required.
    return jnp.where(x >= 0, jnp.ones_like(x), jnp.zeros_like(x))


def sigmoid(x: ArrayLike) -> jax.Array:
    r"""Logistic sigmoid.

    Squashes the net sum into a probability; the output unit of a binary classifier.

    .. math:: \sigma(x) = \frac{1}{1 + e^{-x}}, \qquad
              \sigma'(x) = \sigma(x)\,(1 - \sigma(x)) \in (0, \tfrac14]

    Range (0, 1) (exactly 0 or 1 after rounding for :math:`|x| \gtrsim 90` in float32).
    The derivative's maximum 1/4 at 0 is the root of the vanishing-gradient problem: a
    product of n such factors is at most :math:`4^{-n}`.

    Args:
      x: any shape, floating dtype.

    Returns:
      ``x``'s shape and dtype.

    Example:
      >>> import jax.numpy as jnp, fnn
      >>> fnn.sigmoid(jnp.array([-1000.0, 0.0, 1000.0]))
      Array([0. , 0.5, 1. ], dtype=float32)
    """
    # lax.logistic never forms exp(+large): sigmoid(-1000) is 0, not NaN.
    return jax.lax.logistic(_as_float("sigmoid", x))


def tanh(x: ArrayLike) -> jax.Array:
    r"""Hyperbolic tangent, a zero-centred sigmoid.

    .. math:: \tanh(x) = \frac{e^x - e^{-x}}{e^x + e^{-x}} = 2\sigma(2x) - 1, \qquad
              \tanh'(x) = 1 - \tanh^2(x) \in (0, 1]

    Range (-1, 1). Its outputs average near 0, which the notes credit for easier
    learning in the next layer; its derivative still vanishes for large :math:`|x|`.

    Args:
      x: any shape, floating dtype.

    Returns:
      ``x``'s shape and dtype.

    Example:
      >>> import jax.numpy as jnp, fnn
      >>> fnn.tanh(jnp.array([-1000.0, 0.0, 1000.0]))
      Array([-1.,  0.,  1.], dtype=float32)
    """
    return jnp.tanh(_as_float("tanh", x))


def relu(x: ArrayLike) -> jax.Array:
    r"""Rectified linear unit, the default hidden activation.

    .. math:: f(x) = \max(0, x), \qquad f'(x) = 1 \text{ if } x > 0 \text{ else } 0

    Range :math:`[0, \infty)`. The derivative is exactly 1 for active units, so
    gradients pass through deep stacks undiminished (the notes' remedy for vanishing
    gradients); it is 0 for negative inputs ("dead" units) and, by convention, at 0
    as in ``jax.nn.relu`` (``jnp.maximum(x, 0)`` would give 0.5 there).

    Args:
      x: any shape and dtype.

    Returns:
      ``x``'s shape and dtype.

    Example:
      >>> import jax.numpy as jnp, fnn
      >>> fnn.relu(jnp.array([-2.0, 0.0, 3.0]))
      Array([0., 0., 3.], dtype=float32)
    """
    return _relu(_as_array("relu", x))


@jax.custom_jvp
def _relu(x: jax.Array) -> jax.Array:
    # maximum propagates NaN (a where(x > 0, x, 0) would silently turn NaN into 0 and
    # hide a diverged run); the custom JVP fixes relu'(0) = 0 where maximum gives 0.5.
    return jnp.maximum(x, jnp.zeros_like(x))


_relu.defjvps(lambda g, ans, x: jnp.where(x > 0, g, jnp.zeros_like(g)))


def leaky_relu(x: ArrayLike, negative_slope: ArrayLike = 0.01) -> jax.Array:
    r"""Leaky ReLU: a small slope for negative inputs so no unit dies.

    .. math:: f(x) = x \text{ if } x \ge 0 \text{ else } s\,x \;(= \max(s x, x)
              \text{ for } 0 \le s \le 1), \qquad f'(x) = 1 \text{ if } x \ge 0
              \text{ else } s

    Args:
      x: any shape, floating dtype.
      negative_slope: :math:`s`, default 0.01 as in the notes and ``jax.nn``.

    Returns:
      ``x``'s shape and dtype; range :math:`(-\infty, \infty)`.

    Example:
      >>> import jax.numpy as jnp, fnn
      >>> fnn.leaky_relu(jnp.array([-2.0, 0.0, 3.0]))
      Array([-0.02,  0.  ,  3.  ], dtype=float32)
    """
    x = _as_float("leaky_relu", x)
    return jnp.where(x >= 0, x, _coefficient("leaky_relu", "negative_slope", negative_slope, x) * x)


def prelu(x: ArrayLike, alpha: ArrayLike) -> jax.Array:
    r"""Parametric ReLU: leaky ReLU whose slope :math:`\alpha` is learned.

    .. math:: f(x) = x \text{ if } x \ge 0 \text{ else } \alpha x, \qquad
              \frac{\partial f}{\partial x} = 1 \text{ or } \alpha, \qquad
              \frac{\partial f}{\partial \alpha} = 0 \text{ or } x

    ``alpha`` is a parameter: ``jax.grad`` differentiates with respect to it, so it
    learns by backpropagation (see :func:`fnn.layers.prelu`). It is cast to ``x``'s
    dtype so the output keeps ``x``'s dtype.

    Args:
      x: any shape, floating dtype.
      alpha: scalar or broadcastable to ``x`` (e.g. one slope per feature).

    Returns:
      ``x``'s shape and dtype.

    Example:
      >>> import jax.numpy as jnp, fnn
      >>> fnn.prelu(jnp.array([-2.0, 3.0]), 0.25)
      Array([-0.5,  3. ], dtype=float32)
    """
    x = _as_float("prelu", x)
    return jnp.where(x >= 0, x, _coefficient("prelu", "alpha", alpha, x) * x)


def elu(x: ArrayLike, alpha: ArrayLike = 1.0) -> jax.Array:
    r"""Exponential linear unit.

    .. math:: f(x) = x \text{ if } x > 0 \text{ else } \alpha (e^x - 1), \qquad
              f'(x) = 1 \text{ if } x > 0 \text{ else } \alpha e^x

    Range :math:`(-\alpha, \infty)`; no dead units and outputs closer to zero mean.
    ``elu'(0) = alpha`` as in ``jax.nn.elu``.

    Args:
      x: any shape, floating dtype.
      alpha: the negative saturation value, default 1.0.

    Returns:
      ``x``'s shape and dtype.

    Example:
      >>> import jax.numpy as jnp, fnn
      >>> fnn.elu(jnp.array([-1000.0, 0.0, 2.0]))
      Array([-1.,  0.,  2.], dtype=float32)
    """
    x = _as_float("elu", x)
    # Double where: expm1 of a large positive x would overflow to inf in the untaken
    # branch, and inf * 0 in the backward pass is NaN.
    alpha = _coefficient("elu", "alpha", alpha, x)
    safe_x = jnp.where(x > 0, jnp.zeros_like(x), x)
    return jnp.where(x > 0, x, alpha * jnp.expm1(safe_x))


def softmax(x: ArrayLike, axis: int = -1) -> jax.Array:
    r"""Softmax: turns K real scores into a probability distribution.

    .. math:: \sigma(z)_i = \frac{e^{z_i}}{\sum_{j=1}^K e^{z_j}}
              = \frac{e^{z_i - \max z}}{\sum_j e^{z_j - \max z}}

    Each output lies in [0, 1] and they sum to 1 along ``axis``. Subtracting
    :math:`\max z` changes nothing mathematically and keeps ``exp`` from overflowing:
    ``softmax([1000, 0]) == [1, 0]``. With two classes softmax is the sigmoid of the
    score difference: :math:`\sigma(z)_1 = \sigma(z_1 - z_2)`. Jacobian:
    :math:`\partial \sigma_i / \partial z_j = \sigma_i(\delta_{ij} - \sigma_j)`.

    Args:
      x: scores, any shape with ``x.shape[axis] = K``, floating dtype.
      axis: the class axis.

    Returns:
      probabilities, ``x``'s shape and dtype.

    Example:
      >>> import jax.numpy as jnp, fnn
      >>> fnn.softmax(jnp.array([1000.0, 0.0]))
      Array([1., 0.], dtype=float32)
    """
    x = _as_float("softmax", x)
    _axis("softmax", axis, x)
    shifted = x - jax.lax.stop_gradient(jnp.max(x, axis=axis, keepdims=True))
    unnormalized = jnp.exp(shifted)
    return unnormalized / jnp.sum(unnormalized, axis=axis, keepdims=True)


def log_softmax(x: ArrayLike, axis: int = -1) -> jax.Array:
    r"""Logarithm of :func:`softmax`, computed without forming the softmax.

    .. math:: \log \sigma(z)_i = (z_i - \max z) - \log \sum_j e^{z_j - \max z}

    Always :math:`\le 0`; finite wherever the input is (``log(softmax(x))`` gives
    ``-inf`` once a probability underflows). Losses use this form.

    Args:
      x: scores, floating dtype.
      axis: the class axis.

    Returns:
      log-probabilities, ``x``'s shape and dtype.

    Example:
      >>> import jax.numpy as jnp, fnn
      >>> fnn.log_softmax(jnp.array([1000.0, 0.0]))
      Array([    0., -1000.], dtype=float32)
    """
    x = _as_float("log_softmax", x)
    _axis("log_softmax", axis, x)
    shifted = x - jax.lax.stop_gradient(jnp.max(x, axis=axis, keepdims=True))
    return shifted - jnp.log(jnp.sum(jnp.exp(shifted), axis=axis, keepdims=True))


def identity(x: ArrayLike) -> jax.Array:
    r"""Identity, :math:`f(x) = x`: the "no activation" of a linear output layer.

    Example:
      >>> import jax.numpy as jnp, fnn
      >>> fnn.identity(jnp.array([-1.0, 2.0]))
      Array([-1.,  2.], dtype=float32)
    """
    return _as_array("identity", x)


_BY_NAME: dict[str, Callable[..., jax.Array]] = {
    "step": step,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "relu": relu,
    "leaky_relu": leaky_relu,
    "prelu": prelu,
    "elu": elu,
    "softmax": softmax,
    "log_softmax": log_softmax,
    "identity": identity,
}


def names() -> tuple[str, ...]:
    """The names :func:`get` accepts."""
    return tuple(_BY_NAME)


def get(name: str) -> Callable[..., jax.Array]:
    """Return the activation function called ``name`` (``"relu"``, ``"sigmoid"``, ...).

    Raises:
      ValueError: for an unknown name; the message lists the valid ones.
      TypeError: if ``name`` is not a string.

    Example:
      >>> import fnn
      >>> fnn.activations.get("relu") is fnn.relu
      True
    """
    if not isinstance(name, str):
        _checks.fail("get", "name", "be a string", type(name).__name__, TypeError)
    if name not in _BY_NAME:
        _checks.fail("get", "name", f"be one of {', '.join(_BY_NAME)}", repr(name))
    return _BY_NAME[name]

r"""The Rosenblatt perceptron: a single neuron with a step activation.

The lecture notes' perceptron has four parts: the inputs :math:`x`, the weights
:math:`w` and bias :math:`b`, the net sum :math:`z = x \cdot w + b`, and the step
activation :math:`\hat y = f(z)`. It is a linear binary classifier: the line (plane)
:math:`x \cdot w + b = 0` splits the inputs into class 1 and class 0.

It learns by Rosenblatt's rule, not by gradient descent (the step function's derivative
is 0 everywhere). Visiting the examples one at a time, in order, it nudges the
weights towards every example it gets wrong:

.. math:: \hat y = \operatorname{step}(x_i \cdot w + b), \qquad
          w \leftarrow w + \eta\,(y_i - \hat y)\,x_i, \qquad
          b \leftarrow b + \eta\,(y_i - \hat y)

:math:`y_i - \hat y` is the notes' error: 0 when right, +1 for a missed 1, -1 for a
false 1. If the two classes can be split by a line the rule stops making mistakes after
at most :math:`(R/\gamma)^2` updates (Novikoff, 1962), :math:`R` the largest norm of
an input (with a 1 appended for the bias) and :math:`\gamma` the margin of the best
unit-norm separator. If they cannot (XOR) it never stops.

Boundary convention: a point exactly on the boundary, :math:`z = 0`, is class 1,
because ``fnn.step(0) == 1`` (DESIGN.md). Starting from zero weights every example is
therefore first predicted 1.

Params are ``{"w": (n_features,), "b": ()}``; :func:`fit` is one compiled program (a
``lax.while_loop`` over epochs around a ``lax.scan`` over examples) and works under
``jax.vmap``, so many perceptrons (learning rates, datasets, initial weights) train at
once.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from fnn import _checks
from fnn.activations import step

__all__ = ["PerceptronHistory", "NOT_RUN", "init", "predict", "fit"]

#: Value of ``PerceptronHistory.errors`` for the epochs that did not run.
NOT_RUN = -1


class PerceptronHistory(NamedTuple):
    """What :func:`fit` did, as arrays (so it stacks under ``vmap``).

    Attributes:
      errors: int32 ``(max_epochs,)``: mistakes (= weight updates) made during each
        epoch's pass; epochs that did not run hold ``NOT_RUN`` (-1).
      epochs: int32 scalar, the number of epochs run. When ``converged`` the last of
        them is the error-free pass: ``errors[epochs - 1] == 0``.
      converged: bool scalar, whether an epoch made no mistake.
    """

    errors: jax.Array
    epochs: jax.Array
    converged: jax.Array


def init(n_features: int, dtype: Any = jnp.float32) -> dict:
    r"""Zero weights and bias, Rosenblatt's starting point.

    Args:
      n_features: number of inputs :math:`n`.
      dtype: floating dtype of the params.

    Returns:
      ``{"w": zeros (n_features,), "b": zeros ()}``.

    Raises:
      ValueError: if ``n_features`` is not a positive integer.
      TypeError: if ``dtype`` is not floating.

    Example:
      >>> import fnn.perceptron as perceptron
      >>> perceptron.init(2)
      {'w': Array([0., 0.], dtype=float32), 'b': Array(0., dtype=float32)}
    """
    n_features = _checks.positive_int("perceptron.init", "n_features", n_features)
    try:
        floating = jnp.issubdtype(dtype, jnp.floating)
    except TypeError:  # not a dtype at all ("foo", a list...)
        floating = False
    if not floating:
        _checks.fail("perceptron.init", "dtype", "be a floating dtype", repr(dtype), TypeError)
    return {"w": jnp.zeros((n_features,), dtype), "b": jnp.zeros((), dtype)}


def _check_params(fn: str, params: Any) -> tuple[jax.Array, jax.Array]:
    if not isinstance(params, dict) or set(params) != {"w", "b"}:
        _checks.fail(fn, "params", 'be a dict {"w": (n_features,), "b": ()}',
                     _checks.describe(params) if not isinstance(params, dict)
                     else f"keys {sorted(params)}", TypeError)
    w, b = params["w"], params["b"]
    _checks.floating(fn, 'params["w"]', w)
    _checks.floating(fn, 'params["b"]', b)
    if jnp.ndim(w) != 1 or jnp.ndim(b) != 0:
        _checks.fail(fn, "params", 'hold "w" of shape (n_features,) and a scalar "b"',
                     f"w {jnp.shape(w)}, b {jnp.shape(b)}")
    return jnp.asarray(w), jnp.asarray(b)


def _check_x(fn: str, x: ArrayLike, w: jax.Array, ndim: int | None) -> None:
    _checks.array_like(fn, "x", x)
    shape = jnp.shape(x)
    if (ndim is not None and len(shape) != ndim) or not shape or shape[-1] != w.shape[0]:
        want = f"(n_examples, {w.shape[0]})" if ndim == 2 else f"(..., {w.shape[0]})"
        _checks.fail(fn, "x", f"have shape {want} to match w of shape {w.shape}", f"shape {shape}")


def predict(params: dict, x: ArrayLike) -> jax.Array:
    r"""Classify: the step of the net sum.

    .. math:: \hat y = \operatorname{step}(x \cdot w + b) \in \{0, 1\}

    A point exactly on the boundary (:math:`x \cdot w + b = 0`) is class 1.

    Args:
      params: ``{"w": (n,), "b": ()}``, floating.
      x: ``(..., n)``; cast to the params' dtype.

    Returns:
      ``(...,)`` in {0, 1}, the params' dtype.

    Raises:
      ValueError: if ``x.shape[-1]`` is not ``n``.
      TypeError: if ``params`` is not such a dict.

    Example:
      >>> import jax.numpy as jnp, fnn.perceptron as perceptron
      >>> params = {"w": jnp.array([1.0, 1.0]), "b": jnp.array(-1.5)}   # AND
      >>> perceptron.predict(params, jnp.array([[0, 0], [0, 1], [1, 0], [1, 1]]))
      Array([0., 0., 0., 1.], dtype=float32)
    """
    w, b = _check_params("perceptron.predict", params)
    _check_x("perceptron.predict", x, w, None)
    return step(jnp.asarray(x).astype(w.dtype) @ w + b)


def fit(params: dict, x: ArrayLike, y: ArrayLike, *, learning_rate: ArrayLike = 1.0,
        max_epochs: int = 100) -> tuple[dict, PerceptronHistory]:
    r"""Train with Rosenblatt's rule until an epoch makes no mistake.

    One epoch visits every example once, in the given order, updating after each:

    .. math:: \hat y_i = \operatorname{step}(x_i \cdot w + b), \qquad
              w \leftarrow w + \eta\,(y_i - \hat y_i)\,x_i, \qquad
              b \leftarrow b + \eta\,(y_i - \hat y_i)

    Training stops after the first epoch with zero mistakes (``converged``), or after
    ``max_epochs``. From zero weights :math:`\eta` only scales :math:`w, b`: the
    mistakes, and hence the epochs, are the same for every :math:`\eta > 0` in exact
    arithmetic, and in floating point for powers of two; with :math:`\eta = 0.1` a point
    exactly on the boundary can land on either side by a rounding error.

    Args:
      params: ``{"w": (n,), "b": ()}``, e.g. :func:`init`; their dtype is kept.
      x: ``(m, n)`` inputs, cast to the params' dtype.
      y: ``(m,)`` labels in {0, 1} (ints, bools or floats).
      learning_rate: :math:`\eta > 0`; a traced value works (``vmap`` over rates).
      max_epochs: static positive int, the length of ``history.errors``.

    Returns:
      ``(params, history)``: the trained params and a :class:`PerceptronHistory`.

    Raises:
      ValueError: for mismatched shapes, labels outside {0, 1} (when known at trace
        time), a ``learning_rate`` that is not a finite scalar > 0, or a non-positive
        ``max_epochs``.
      TypeError: if ``params`` is not such a dict.

    Example:
      >>> import jax.numpy as jnp, fnn.perceptron as perceptron
      >>> x = jnp.array([[0, 0], [0, 1], [1, 0], [1, 1]])
      >>> params, history = perceptron.fit(perceptron.init(2), x, jnp.array([0, 0, 0, 1]),
      ...                                  max_epochs=8)
      >>> history.errors, history.epochs, history.converged
      (Array([ 2,  3,  3,  2,  1,  0, -1, -1], dtype=int32), Array(6, dtype=int32), Array(True, dtype=bool))
      >>> params["w"], params["b"]
      (Array([2., 1.], dtype=float32), Array(-3., dtype=float32))

    Note:
      scikit-learn's ``Perceptron`` uses labels in {-1, +1}, shuffles by default and
      predicts class 0 on the boundary (``decision_function > 0``); here labels are
      {0, 1}, the order is yours and the boundary is class 1.
    """
    fn = "perceptron.fit"
    w, b = _check_params(fn, params)
    _check_x(fn, x, w, 2)
    _checks.array_like(fn, "y", y)
    n_examples = jnp.shape(x)[0]
    if n_examples == 0:
        _checks.fail(fn, "x", "hold at least one example", f"shape {jnp.shape(x)}")
    if jnp.shape(y) != (n_examples,):
        _checks.fail(fn, "y", f"have shape ({n_examples},) to match x of shape {jnp.shape(x)}",
                     f"shape {jnp.shape(y)}")
    if not isinstance(y, jax.core.Tracer):
        labels = np.asarray(y)
        if not np.isin(labels, (0, 1)).all():
            _checks.fail(fn, "y", "hold labels in {0, 1}", f"values {np.unique(labels)[:5]}")
    _checks.scalar(fn, "learning_rate", learning_rate)
    _checks.number(fn, "learning_rate", learning_rate, low=0, high=math.inf, low_open=True,
                   high_open=True)
    max_epochs = _checks.positive_int(fn, "max_epochs", max_epochs)

    dtype = w.dtype
    w, b, errors, epochs = _train(w, b, jnp.asarray(x).astype(dtype), jnp.asarray(y).astype(dtype),
                                  jnp.asarray(learning_rate).astype(dtype), max_epochs)
    return {"w": w, "b": b}, PerceptronHistory(errors, epochs, errors[epochs - 1] == 0)


@functools.partial(jax.jit, static_argnums=5)
def _train(w, b, x, y, eta, max_epochs):
    """The compiled loop of :func:`fit`: epochs in a while_loop, examples in a scan."""

    def visit(carry, example):
        # One online step: predict this example with the current weights, then move
        # the boundary towards it if it was wrong (error = 0 leaves w and b unchanged).
        w, b = carry
        x_i, y_i = example
        y_hat = step(x_i @ w + b)
        error = y_i - y_hat                        # the notes' error: +1, 0 or -1
        return (w + eta * error * x_i, b + eta * error), error != 0

    def epoch(state):
        w, b, t, errors = state
        (w, b), mistakes = jax.lax.scan(visit, (w, b), (x, y))
        errors = errors.at[t].set(jnp.sum(mistakes, dtype=jnp.int32))
        return w, b, t + 1, errors

    def keep_going(state):
        # Stop after max_epochs, or right after the first epoch without a mistake.
        _, _, t, errors = state
        last = jnp.where(t > 0, errors[jnp.maximum(t - 1, 0)], NOT_RUN)
        return (t < max_epochs) & (last != 0)

    errors = jnp.full((max_epochs,), NOT_RUN, jnp.int32)
    w, b, epochs, errors = jax.lax.while_loop(keep_going, epoch, (w, b, jnp.int32(0), errors))
    return w, b, errors, epochs

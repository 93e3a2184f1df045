"""Plain and momentum gradient descent."""

from __future__ import annotations

from typing import NamedTuple

import jax

from fnn._cache import same_object_for_same_arguments
from fnn.optimizers import _base
from fnn.optimizers._base import GradientTransformation, ScalarOrSchedule


class SgdState(NamedTuple):
    """State of :func:`sgd`: only the number of updates done, which drives schedules."""

    count: jax.Array  # type: ignore[assignment]  # shape (), int32; shadows tuple.count, as in optax


class MomentumState(NamedTuple):
    """State of :func:`momentum`: the update count and the trace (optax's ``TraceState``)."""

    count: jax.Array  # type: ignore[assignment]  # shape (), int32; shadows tuple.count, as in optax
    trace: _base.Updates  # params' structure, shapes and dtypes


@same_object_for_same_arguments
def sgd(learning_rate: ScalarOrSchedule) -> GradientTransformation:
    r"""Stochastic gradient descent: step against the gradient, scaled by the rate.

    The update rule of the lecture notes, :math:`w_{new} = w_{old} - \eta\,
    \partial L / \partial w_{old}`, with no memory of past gradients.

    .. math::
        u_t = -\eta_t\, g_t, \qquad w_t = w_{t-1} + u_t

    with :math:`g_t` = ``grads``, :math:`\eta_t` = ``learning_rate`` (or
    ``learning_rate(t - 1)`` for a schedule, so the first update uses ``schedule(0)``).

    Args:
      learning_rate: a float >= 0, a scalar array (traced values such as a rate swept
        with ``jax.vmap`` are accepted unchecked), or a schedule ``count -> rate``.

    Returns:
      A :class:`GradientTransformation`; ``init(params)`` gives ``SgdState(count)`` with
      ``count`` an int32 scalar; ``update(grads, state, params=None)`` gives updates in
      each gradient's dtype.

    Raises:
      ValueError: if ``learning_rate`` is negative, NaN, infinite or not a scalar.
      TypeError: if ``learning_rate`` is not a number or a callable.

    Example:
      >>> import jax.numpy as jnp
      >>> from fnn.optimizers import sgd, apply_updates
      >>> opt = sgd(0.1)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> state = opt.init(params)
      >>> updates, state = opt.update({"w": jnp.array([1.0, -1.0])}, state)
      >>> print(apply_updates(params, updates)["w"], state.count)
      [ 0.9 -1.9] 1

    Note:
      Same numbers as ``optax.sgd(learning_rate)``. optax keeps no state for a constant
      rate; fnn always keeps ``count`` so that every fnn state can report its step.
    """
    _base.check_learning_rate("sgd", learning_rate)

    def init(params):
        _base.check_params("sgd", params)
        return SgdState(count=_base.init_count())

    def update(grads, state, params=None):
        del params
        state = _base.check_state("sgd", state, SgdState)
        _base.check_grads_floating("sgd", grads)
        lr = _base.learning_rate_at("sgd", learning_rate, state.count)
        updates = jax.tree.map(lambda g: _base.scale_by_learning_rate(lr, g), grads)
        return updates, SgdState(count=_base.safe_increment(state.count))

    return GradientTransformation(init, update)


@same_object_for_same_arguments
def momentum(learning_rate: ScalarOrSchedule, beta: float = 0.9,
             nesterov: bool = False) -> GradientTransformation:
    r"""Gradient descent with momentum (heavy ball, or Nesterov's look-ahead variant).

    The "smoothing" half of Adam in the lecture notes: the step follows a running
    average of past gradients instead of the latest one, which damps oscillation
    across a ravine and speeds travel along it.

    .. math::
        \tau_t = \beta\, \tau_{t-1} + g_t, \qquad
        u_t = \begin{cases} -\eta_t\, \tau_t & \text{nesterov=False} \\
                            -\eta_t\, (g_t + \beta\, \tau_t) & \text{nesterov=True}
              \end{cases}

    with :math:`\tau` = ``state.trace`` (zeros at init), :math:`\beta` = ``beta``,
    :math:`g_t` = ``grads``, :math:`\eta_t` = ``learning_rate``. Computed as
    ``trace = g + beta * trace`` then ``-lr * trace`` (or ``-lr * (g + beta * trace)``).

    Relation to the lecture notes: they smooth with an exponential average,
    :math:`V_{dw_t} = \beta V_{dw_{t-1}} + (1-\beta)\, g_t` and
    :math:`w_t = w_{t-1} - \eta V_{dw_t}`. Both averages start at zero, so
    :math:`V_{dw_t} = (1-\beta)\, \tau_t` exactly: the notes' rule with rate
    :math:`\eta` is this one with ``learning_rate = (1 - beta) * eta``.

    Args:
      learning_rate: a float >= 0, a scalar (possibly traced) array, or a schedule.
      beta: momentum decay in [0, 1) (``beta=0`` is :func:`sgd`).
      nesterov: use Nesterov's look-ahead gradient (Sutskever et al., 2013).

    Returns:
      A :class:`GradientTransformation` with state ``MomentumState(count, trace)``;
      ``trace`` has the params' structure, shapes and dtypes.

    Raises:
      ValueError: if ``learning_rate`` is negative, infinite or not a scalar, or ``beta``
        is outside [0, 1).
      TypeError: if ``nesterov`` is not a bool, or a hyperparameter is not a number.

    Example:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> from fnn.optimizers import momentum, apply_updates
      >>> opt = momentum(0.1, beta=0.9)
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> state = opt.init(params)
      >>> for _ in range(2):
      ...     updates, state = opt.update({"w": jnp.array([1.0, 1.0])}, state)
      ...     params = apply_updates(params, updates)
      >>> print(np.asarray(params["w"]).round(3), np.asarray(state.trace["w"]).round(3))
      [ 0.71 -2.29] [1.9 1.9]

    Note:
      Same numbers as ``optax.sgd(learning_rate, momentum=beta, nesterov=nesterov)``
      (whose ``TraceState.trace`` equals ``state.trace``) and as PyTorch's
      ``SGD(momentum=beta, dampening=0)``.
    """
    _base.check_learning_rate("momentum", learning_rate)
    _base.check_decay("momentum", "beta", beta)
    _base.check_flag("momentum", "nesterov", nesterov)

    def rule(g, trace):
        trace = g + beta * trace
        return (g + beta * trace if nesterov else trace), trace

    return _base.accumulating("momentum", MomentumState, 0.0, rule, learning_rate)

"""Per-weight adaptive rates from squared gradients: AdaGrad and RMSProp."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from fnn._cache import same_object_for_same_arguments
from fnn.optimizers import _base
from fnn.optimizers._base import GradientTransformation, ScalarOrSchedule


class AdagradState(NamedTuple):
    """State of :func:`adagrad` (optax's ``ScaleByRssState`` plus the update count)."""

    count: jax.Array  # type: ignore[assignment]  # shape (), int32; shadows tuple.count, as in optax
    sum_of_squares: _base.Updates  # params' structure, shapes and dtypes


class RmspropState(NamedTuple):
    """State of :func:`rmsprop` (optax's ``ScaleByRmsState`` plus the update count)."""

    count: jax.Array  # type: ignore[assignment]  # shape (), int32; shadows tuple.count, as in optax
    nu: _base.Updates  # params' structure, shapes and dtypes


@same_object_for_same_arguments
def adagrad(learning_rate: ScalarOrSchedule, initial_accumulator_value: float = 0.1,
            eps: float = 1e-7) -> GradientTransformation:
    r"""AdaGrad: divide each weight's step by the root of its summed squared gradients.

    The "learning rate adaptive" half of Adam in the lecture notes, in its first form:
    weights that have seen large gradients take small steps, rarely-updated weights keep
    large ones. The sum only grows, so every rate decays towards zero over training.

    .. math::
        s_t = s_{t-1} + g_t^2, \qquad
        u_t = -\eta_t\, \frac{g_t}{\sqrt{s_t + \epsilon}}

    with :math:`s` = ``state.sum_of_squares`` (``initial_accumulator_value`` at init),
    :math:`\epsilon` = ``eps`` *inside* the square root, :math:`g_t` = ``grads``,
    :math:`\eta_t` = ``learning_rate``. Computed as ``s = g * g + s``, then
    ``where(s > 0, rsqrt(s + eps), 0) * g`` (a weight whose ``s`` is still 0, possible
    only with ``initial_accumulator_value=0``, gets no update), then ``-lr * ...``.

    Relation to the lecture notes: :math:`s_t` is their :math:`S_{dw}` taken as a plain
    sum, and :math:`\eta' = \eta / \sqrt{S_{dw} + \epsilon}` is exactly their adaptive
    rate, eps placement included.

    Args:
      learning_rate: a float >= 0, a scalar (possibly traced) array, or a schedule.
      initial_accumulator_value: starting value of :math:`s`, >= 0.
      eps: > 0, keeps the rate finite while :math:`s` is tiny.

    Returns:
      A :class:`GradientTransformation` with state ``AdagradState(count, sum_of_squares)``.

    Raises:
      ValueError: if ``learning_rate`` is negative, infinite or not a scalar,
        ``initial_accumulator_value < 0`` or ``eps <= 0``.

    Example:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> from fnn.optimizers import adagrad
      >>> opt = adagrad(0.1)
      >>> state = opt.init(jnp.zeros(2))
      >>> updates, state = opt.update(jnp.array([3.0, -0.1]), state)
      >>> print(np.asarray(updates).round(4), np.asarray(state.sum_of_squares).round(4))
      [-0.0994  0.0302] [9.1  0.11]

    Note:
      Same numbers as ``optax.adagrad``. PyTorch's ``Adagrad`` starts the sum at 0 and
      adds eps (1e-10) *outside* the root: :math:`g / (\sqrt{s} + \epsilon)`.
    """
    _base.check_learning_rate("adagrad", learning_rate)
    _base.check_hyper("adagrad", "initial_accumulator_value", initial_accumulator_value, low=0)
    _base.check_eps("adagrad", eps)

    def rule(g, s):
        s = g * g + s
        return jnp.where(s > 0, jax.lax.rsqrt(s + eps), 0.0) * g, s

    return _base.accumulating("adagrad", AdagradState, initial_accumulator_value, rule,
                              learning_rate)


@same_object_for_same_arguments
def rmsprop(learning_rate: ScalarOrSchedule, decay: float = 0.9,
            eps: float = 1e-8) -> GradientTransformation:
    r"""RMSProp: divide each weight's step by the root of a running mean of squared gradients.

    AdaGrad with a memory that fades: an exponential average replaces the ever-growing
    sum, so rates adapt to recent gradient sizes instead of decaying to zero. The
    lecture notes' "learning rate adaptive" ingredient of Adam.

    .. math::
        \nu_t = \rho\, \nu_{t-1} + (1 - \rho)\, g_t^2, \qquad
        u_t = -\eta_t\, \frac{g_t}{\sqrt{\nu_t + \epsilon}}

    with :math:`\nu` = ``state.nu`` (zeros at init), :math:`\rho` = ``decay``,
    :math:`\epsilon` = ``eps`` *inside* the square root, :math:`\eta_t` =
    ``learning_rate``. Computed as ``nu = (1 - decay) * (g * g) + decay * nu``, then
    ``rsqrt(nu + eps) * g``, then ``-lr * ...``. No bias correction: :math:`\nu` starts at
    0, so the first step is about :math:`-\eta\, g / \sqrt{0.1 g^2} = -\sqrt{10}\,\eta\,
    \mathrm{sign}(g)` for ``decay=0.9``, over three times the nominal rate.

    Relation to the lecture notes: :math:`\nu_t` is their :math:`S_{dw}` (which they
    leave undefined; this is its usual definition) and
    :math:`\eta' = \eta / \sqrt{S_{dw} + \epsilon}` is their adaptive rate, eps inside
    the root as they write it.

    Args:
      learning_rate: a float >= 0, a scalar (possibly traced) array, or a schedule.
      decay: :math:`\rho` in [0, 1), the weight of the past in the average.
      eps: > 0, inside the square root.

    Returns:
      A :class:`GradientTransformation` with state ``RmspropState(count, nu)``.

    Raises:
      ValueError: if ``learning_rate`` is negative, infinite or not a scalar, ``decay`` is
        outside [0, 1) or ``eps <= 0``; at ``init``, if ``eps`` rounds to 0 in a param's
        dtype (float16 with the default 1e-8), where a zero gradient would give NaN.

    Example:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> from fnn.optimizers import rmsprop
      >>> opt = rmsprop(0.01)
      >>> state = opt.init(jnp.zeros(2))
      >>> updates, state = opt.update(jnp.array([2.0, -0.5]), state)
      >>> print(np.asarray(updates).round(4), np.asarray(state.nu).round(4))
      [-0.0316  0.0316] [0.4   0.025]

    Note:
      Same numbers as ``optax.rmsprop(learning_rate, decay, eps)`` (not centered, no
      momentum). PyTorch's ``RMSprop`` defaults to ``alpha=0.99`` and adds eps
      *outside* the root: :math:`g / (\sqrt{\nu} + \epsilon)`.
    """
    _base.check_learning_rate("rmsprop", learning_rate)
    _base.check_decay("rmsprop", "decay", decay)
    _base.check_eps("rmsprop", eps)

    def rule(g, nu):
        nu = (1 - decay) * (g * g) + decay * nu
        return jax.lax.rsqrt(nu + eps) * g, nu

    return _base.accumulating("rmsprop", RmspropState, 0.0, rule, learning_rate, eps=eps)

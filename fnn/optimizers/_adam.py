"""Adam (adaptive moment estimation) and AdamW (Adam with decoupled weight decay)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from fnn._cache import same_object_for_same_arguments
from fnn import _checks, _tree
from fnn.optimizers import _base
from fnn.optimizers._base import GradientTransformation, ScalarOrSchedule


class AdamState(NamedTuple):
    """State of :func:`adam` and :func:`adamw`, field for field optax's ``ScaleByAdamState``."""

    # count: shape (), int32: updates done, t - 1 during update t
    count: jax.Array  # type: ignore[assignment]  # the name shadows tuple.count, as in optax
    mu: _base.Updates  # first moment, params' structure/shapes/dtypes
    nu: _base.Updates  # second moment, params' structure/shapes/dtypes


def _adam(fn: str, learning_rate, b1, b2, eps, weight_decay) -> GradientTransformation:
    """Adam, plus ``weight_decay * params`` added to the direction when that is not None."""
    _base.check_learning_rate(fn, learning_rate)
    _base.check_decay(fn, "b1", b1)
    _base.check_decay(fn, "b2", b2)
    _base.check_eps(fn, eps)
    if weight_decay is not None:
        _base.check_hyper(fn, "weight_decay", weight_decay, low=0)
    decays = weight_decay is not None and not _base.is_static_zero(weight_decay)

    def init(params):
        _base.check_params(fn, params)
        _base.check_eps_fits(fn, eps, params)
        return AdamState(count=_base.init_count(), mu=_tree.zeros_like(params),
                         nu=_tree.zeros_like(params))

    def update(grads, state, params=None):
        state = _base.check_state(fn, state, AdamState)
        _base.check_update_args(fn, grads, state.mu)
        if weight_decay is not None:
            if params is None:
                _checks.fail(fn, "params", "be passed to update (weight decay scales them)",
                             "None")
            _base.check_like_init(fn, "params", params, state.mu)
        lr = _base.learning_rate_at(fn, learning_rate, state.count)
        count = _base.safe_increment(state.count)
        # 1 - b**t in the default float dtype (float32; float64 under x64), never in
        # bfloat16, where b2**t would round to 1 for a long time and divide by zero.
        bias_correction1 = _base.bias_correction(b1, count)
        bias_correction2 = _base.bias_correction(b2, count)

        def leaf(g, m, v, p=None):
            m = (1 - b1) * g + b1 * m
            v_new = (1 - b2) * (g * g) + b2 * v
            m_hat = m / bias_correction1.astype(m.dtype)
            v_hat = v_new / bias_correction2.astype(v_new.dtype)
            u = m_hat / (jnp.sqrt(v_hat) + eps)
            if decays:
                u = u + weight_decay * p
            return _base.scale_by_learning_rate(lr, u), m, v_new.astype(v.dtype)

        trees = (grads, state.mu, state.nu) + ((params,) if decays else ())
        updates, mu, nu = _tree.map_unzip(leaf, *trees, n_out=3)
        return updates, AdamState(count=count, mu=mu, nu=nu)

    return GradientTransformation(init, update)


@same_object_for_same_arguments
def adam(learning_rate: ScalarOrSchedule, b1: float = 0.9, b2: float = 0.999,
         eps: float = 1e-8) -> GradientTransformation:
    r"""Adam: momentum's smoothed direction, RMSProp's per-weight rate, both bias-corrected.

    Adaptive moment estimation, where the lecture notes end: the first moment (mean) of
    the gradient smooths the direction, the second moment (uncentred variance) adapts
    each weight's rate. A good default for most networks.

    .. math::
        m_t &= \beta_1 m_{t-1} + (1-\beta_1)\, g_t, \qquad
        v_t = \beta_2 v_{t-1} + (1-\beta_2)\, g_t^2 \\
        \hat m_t &= \frac{m_t}{1-\beta_1^t}, \qquad \hat v_t = \frac{v_t}{1-\beta_2^t},
        \qquad u_t = -\eta_t\, \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}

    with :math:`m, v` = ``state.mu, state.nu`` (zeros at init), :math:`t` =
    ``state.count`` after the update (1 on the first), :math:`\beta_1, \beta_2` =
    ``b1, b2``, :math:`\epsilon` = ``eps`` *outside* the square root, :math:`\eta_t` =
    ``learning_rate``. Computed in exactly optax's order: ``m = (1 - b1) * g + b1 * m``,
    ``v = (1 - b2) * (g * g) + b2 * v``, the corrections ``1 - b**t`` in float32 then cast
    to the moment's dtype, ``m_hat / (sqrt(v_hat) + eps)``, then ``-lr * ...``. On the
    first step :math:`\hat m_1 = g_1` and :math:`\hat v_1 = g_1^2`, so
    :math:`u_1 \approx -\eta\, \mathrm{sign}(g_1)`.

    Relation to the lecture notes: their :math:`V_{dw}` is :math:`m_t`, their
    :math:`S_{dw}` is :math:`v_t`, and they write :math:`w_t = w_{t-1} - \eta' V_{dw}`
    with :math:`\eta' = \eta / \sqrt{S_{dw} + \epsilon}`. That formula is incomplete:
    it leaves :math:`S_{dw}` undefined, omits the bias correction (with it omitted, the
    first step is :math:`\eta\,(1-\beta_1)/\sqrt{1-\beta_2} \approx 3.16\,\eta` instead
    of :math:`\eta`, because both averages start at zero), and puts eps inside the root
    where Adam (Kingma & Ba, optax, PyTorch) puts it outside.

    Args:
      learning_rate: a float >= 0, a scalar (possibly traced) array, or a schedule.
      b1: :math:`\beta_1` in [0, 1), decay of the first moment.
      b2: :math:`\beta_2` in [0, 1), decay of the second moment.
      eps: > 0, added to :math:`\sqrt{\hat v_t}`.

    Returns:
      A :class:`GradientTransformation` with state ``AdamState(count, mu, nu)``.

    Raises:
      ValueError: if ``learning_rate`` is negative, infinite or not a scalar, ``b1`` or
        ``b2`` is outside [0, 1), or ``eps <= 0``; at ``init``, if ``eps`` rounds to 0 in a
        param's dtype (float16 with the default 1e-8), where a zero gradient would give
        NaN (it does in optax).

    Example:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> from fnn.optimizers import adam
      >>> opt = adam(0.1)
      >>> state = opt.init(jnp.zeros(2))
      >>> updates, state = opt.update(jnp.array([3.0, -0.001]), state)
      >>> print(np.asarray(updates).round(4), state.count)
      [-0.1  0.1] 1

    Note:
      Same numbers as ``optax.adam(learning_rate, b1, b2, eps)`` (``eps_root=0``) and
      PyTorch's ``Adam``; Keras' default eps is 1e-7.

    References:
      Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.
    """
    return _adam("adam", learning_rate, b1, b2, eps, None)


@same_object_for_same_arguments
def adamw(learning_rate: ScalarOrSchedule, b1: float = 0.9, b2: float = 0.999,
          eps: float = 1e-8, weight_decay: float = 1e-4) -> GradientTransformation:
    r"""AdamW: Adam plus weight decay applied to the weights, not mixed into the gradient.

    L2 regularisation added to the loss passes through Adam's per-weight rescaling and
    decays weights with large gradients less; decoupled decay shrinks every weight by
    the same fraction of itself each step.

    .. math::
        u_t = -\eta_t \left( \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}
              + \lambda\, w_{t-1} \right)

    with :math:`\hat m_t, \hat v_t` exactly as in :func:`adam`, :math:`\lambda` =
    ``weight_decay`` and :math:`w_{t-1}` = the ``params`` passed to ``update``. The decay
    is multiplied by the learning rate (as optax and PyTorch do; the paper scales it by a
    schedule multiplier only). Even with zero gradients the weights shrink, by the factor
    :math:`1 - \eta\lambda` per step. The lecture notes stop at Adam; their formula's
    gaps (see :func:`adam`) apply here too.

    Args:
      learning_rate: a float >= 0, a scalar (possibly traced) array, or a schedule.
      b1, b2, eps: as in :func:`adam`.
      weight_decay: :math:`\lambda` >= 0 (0 gives :func:`adam` exactly).

    Returns:
      A :class:`GradientTransformation` with state ``AdamState(count, mu, nu)``; its
      ``update`` requires ``params``.

    Raises:
      ValueError: at construction if a hyperparameter is out of range (as in :func:`adam`,
        and ``weight_decay < 0``); in ``update`` if ``params`` is None.

    Example:
      >>> import jax.numpy as jnp
      >>> import numpy as np
      >>> from fnn.optimizers import adamw
      >>> opt = adamw(0.1, weight_decay=0.5)
      >>> params = jnp.array([2.0, 2.0])
      >>> state = opt.init(params)
      >>> updates, state = opt.update(jnp.array([0.0, 1.0]), state, params)
      >>> print(np.asarray(updates).round(4))
      [-0.1 -0.2]

    Note:
      Same numbers as ``optax.adamw`` (no mask). PyTorch's ``AdamW`` defaults to
      ``weight_decay=0.01``; fnn keeps optax's 1e-4.

    References:
      Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.
    """
    return _adam("adamw", learning_rate, b1, b2, eps, weight_decay)

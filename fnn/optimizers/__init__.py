r"""Optimizers written by hand, each equal to its optax counterpart.

Every optimizer is a pair of pure functions in optax's shape,
``GradientTransformation(init, update)``:

.. code-block:: python

    opt = fnn.optimizers.adam(1e-3)
    state = opt.init(params)                     # NamedTuple of arrays
    updates, state = opt.update(grads, state, params)
    params = fnn.optimizers.apply_updates(params, updates)

``updates`` already carries the minus sign, so every rule below is written as
:math:`w_t = w_{t-1} + u_t`. ``learning_rate`` is a float, a scalar array (a traced value
works, so ``jax.vmap(lambda lr: train(adam(lr)))`` sweeps rates) or a schedule
``count -> rate`` called with the number of updates done (``schedule(0)`` first). States
keep optax's field names (``count``, ``mu``, ``nu``, ``trace``, ``sum_of_squares``) and
dtypes (the params'); each also has an int32 ``count``.

The lecture notes' notation and where it lives here:

=======================  ===============================================================
notes                    fnn
=======================  ===============================================================
:math:`\eta`             ``learning_rate``
:math:`V_{dw}`           first moment: ``AdamState.mu`` (:func:`momentum`'s
                         ``trace`` is :math:`V_{dw} / (1 - \beta)`)
:math:`S_{dw}`           second moment: ``AdamState.nu``, ``RmspropState.nu``,
                         ``AdagradState.sum_of_squares``
:math:`\eta'`            the per-weight rate :math:`\eta / \sqrt{S_{dw} + \epsilon}` of
                         AdaGrad/RMSProp; Adam's is :math:`\eta / (\sqrt{\hat v} + \epsilon)`
=======================  ===============================================================

The notes' Adam omits the bias correction and places eps inside the root; see
:func:`adam`.

Checks (static, so they run once at trace time and cost nothing in a compiled loop):
``update`` raises ``ValueError`` when ``grads`` differs from the params given to ``init``
in structure or in a leaf's shape (optax would broadcast and silently grow the state),
``TypeError`` for integer gradients or a ``state`` that is not the optimizer's own (a
plain tuple of its fields, as :func:`fnn.checkpoint.load` returns, is accepted);
:func:`apply_updates` raises ``ValueError`` when ``updates`` does not match ``params``.
"""

from fnn.optimizers._adam import AdamState, adam, adamw
from fnn.optimizers._adaptive import AdagradState, RmspropState, adagrad, rmsprop
from fnn.optimizers._base import GradientTransformation, Schedule, ScalarOrSchedule, apply_updates
from fnn.optimizers._sgd import MomentumState, SgdState, momentum, sgd

__all__ = [
    "GradientTransformation",
    "Schedule",
    "ScalarOrSchedule",
    "apply_updates",
    "sgd",
    "momentum",
    "adagrad",
    "rmsprop",
    "adam",
    "adamw",
    "SgdState",
    "MomentumState",
    "AdagradState",
    "RmspropState",
    "AdamState",
]

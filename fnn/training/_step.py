r"""One training step: forward stage, backward stage (``jax.grad``), update.

.. math:: L(w) = \ell(f(w, x), y), \qquad g = \nabla_w L, \qquad
          (u, s') = \text{optimizer.update}(g, s, w), \qquad w' = w + u

With plain SGD, :math:`u = -\eta g` and this is the notes' update
:math:`w_{new} = w_{old} - \eta\, \partial L / \partial w_{old}`.
"""

from __future__ import annotations

from typing import Any, Callable

import jax

from fnn import _checks
from fnn.layers import Layer
from fnn.losses import softmax_cross_entropy
from fnn.optimizers import apply_updates

__all__ = ["train_step", "make_train_step", "apply_fn_of", "check_optimizer"]

Params = Any
LossFn = Callable[[jax.Array, jax.Array], jax.Array]


def apply_fn_of(fn: str, model: Any) -> Callable:
    """``model.apply`` for a :class:`fnn.layers.Layer`, or ``model`` if it is callable."""
    if isinstance(model, Layer):
        return model.apply
    if callable(model):
        return model
    _checks.fail(fn, "model", "be a fnn Layer or a function apply(params, x)", type(model).__name__,
                 TypeError)


def check_optimizer(fn: str, optimizer: Any) -> None:
    """An optax-compatible optimizer: has callable ``init`` and ``update``."""
    if not (callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None))):
        _checks.fail(fn, "optimizer", "be an optax-compatible (init, update) pair such as "
                     "fnn.optimizers.adam(1e-3)", type(optimizer).__name__, TypeError)


def check_loss(fn: str, loss: Any) -> None:
    if not callable(loss):
        _checks.fail(fn, "loss", "be a function loss(predictions, targets) -> scalar",
                     type(loss).__name__, TypeError)


def train_step(params: Params, opt_state: Any, x: jax.Array, y: jax.Array, *, model: Any,
               optimizer: Any, loss: LossFn = softmax_cross_entropy) -> tuple[Params, Any, jax.Array]:
    r"""One pure training step on the batch ``(x, y)``.

    Args:
      params: the model's params pytree.
      opt_state: ``optimizer.init(params)`` or the state a previous step returned.
      x: inputs, ``(batch, ...)``.
      y: targets for ``loss`` (integer labels for softmax cross-entropy).
      model: a :class:`fnn.layers.Layer` or a function ``apply(params, x)``.
      optimizer: any optax-compatible ``(init, update)``: fnn's or optax's.
      loss: ``loss(predictions, targets) -> scalar``, default
        :func:`fnn.losses.softmax_cross_entropy`.

    Returns:
      ``(new_params, new_opt_state, loss_value)``; ``loss_value`` is the loss at the
      params before the update.

    Example:
      >>> import jax, jax.numpy as jnp, fnn
      >>> from fnn.optimizers import sgd
      >>> model = fnn.mlp([2])
      >>> params = model.init(jax.random.key(0), (3,))
      >>> opt = sgd(0.1)
      >>> x, y = jnp.ones((4, 3)), jnp.array([0, 1, 0, 1])
      >>> params, state, loss = fnn.training.train_step(
      ...     params, opt.init(params), x, y, model=model, optimizer=opt)
      >>> bool(loss > 0)
      True
    """
    apply = apply_fn_of("train_step", model)
    check_optimizer("train_step", optimizer)
    check_loss("train_step", loss)
    loss_value, grads = jax.value_and_grad(lambda p: loss(apply(p, x), y))(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return apply_updates(params, updates), opt_state, loss_value


def make_train_step(model: Any, optimizer: Any, loss: LossFn = softmax_cross_entropy, *,
                    donate: bool = True, jit: bool = True) -> Callable:
    r"""A compiled ``step(params, opt_state, x, y) -> (params, opt_state, loss)``.

    For users who write their own Python loop. With ``donate=True`` (default) the
    params and optimizer state passed in are donated to XLA, which updates them in place
    instead of allocating new buffers every step: do not use the arrays you passed after
    the call, use the ones it returns (``jax.jit``'s ``donate_argnums`` semantics). For
    whole runs prefer :func:`fnn.training.fit`: one compiled program, no per-step Python.

    Example:
      >>> import jax, jax.numpy as jnp, fnn
      >>> model, opt = fnn.mlp([8, 2]), fnn.optimizers.adam(1e-2)
      >>> params = model.init(jax.random.key(0), (3,))
      >>> state = opt.init(params)
      >>> step = fnn.training.make_train_step(model, opt)
      >>> x, y = jnp.ones((4, 3)), jnp.array([0, 1, 0, 1])
      >>> for _ in range(3):
      ...     params, state, loss = step(params, state, x, y)
    """
    apply_fn_of("make_train_step", model)
    check_optimizer("make_train_step", optimizer)
    check_loss("make_train_step", loss)
    donate = _checks.boolean("make_train_step", "donate", donate)
    jit = _checks.boolean("make_train_step", "jit", jit)

    def step(params, opt_state, x, y):
        return train_step(params, opt_state, x, y, model=model, optimizer=optimizer, loss=loss)

    if not jit:
        return step
    return jax.jit(step, donate_argnums=(0, 1) if donate else ())

r"""One training step: forward stage, backward stage (``jax.grad``), update.

.. math:: L(w) = \ell(f(w, x), y), \qquad g = \nabla_w L, \qquad
          (u, s') = \text{optimizer.update}(g, s, w), \qquad w' = w + u

With plain SGD, :math:`u = -\eta g` and this is the notes' update
:math:`w_{new} = w_{old} - \eta\, \partial L / \partial w_{old}`. For a general model
(:class:`fnn.layers.StatefulLayer`) the forward stage runs with ``train=True`` and the
step's key, and also returns the model's new state (batch norm's running averages):
:math:`(\hat y, m') = f(w, m, x; k)`; the state is not differentiated.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import optax

from fnn import _checks
from fnn.layers import Layer, StatefulLayer
from fnn.losses import softmax_cross_entropy
from fnn.optimizers import apply_updates

__all__ = ["train_step", "make_train_step", "Model", "model_of", "check_optimizer", "check_loss",
           "step", "gradients", "update", "takes_value"]

Params = Any
LossFn = Callable[[jax.Array, jax.Array], jax.Array]


class Model(NamedTuple):
    """A model as the training wing sees it: its apply and whether it is general.

    ``apply(params, x)`` for a pure model; ``apply(params, state, x, *, key, train)`` when
    ``general``.
    """

    apply: Callable
    general: bool


def model_of(fn: str, model: Any) -> Model:
    """The :class:`Model` of a :class:`fnn.layers.Layer`, a StatefulLayer or ``apply(params, x)``."""
    if isinstance(model, StatefulLayer):
        return Model(model.apply, True)
    if isinstance(model, Layer):
        return Model(model.apply, False)
    if callable(model):
        return Model(model, False)
    _checks.fail(fn, "model", "be a fnn Layer, a StatefulLayer or a function apply(params, x)",
                 type(model).__name__, TypeError)


def check_optimizer(fn: str, optimizer: Any) -> None:
    """An optax-compatible optimizer: has callable ``init`` and ``update``."""
    if not (callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None))):
        _checks.fail(fn, "optimizer", "be an optax-compatible (init, update) pair such as "
                     "fnn.optimizers.adam(1e-3)", type(optimizer).__name__, TypeError)


def check_loss(fn: str, loss: Any) -> None:
    if not callable(loss):
        _checks.fail(fn, "loss", "be a function loss(predictions, targets) -> scalar",
                     type(loss).__name__, TypeError)


def gradients(model: Model, loss: LossFn, params: Params, state: Any, x: jax.Array, y: jax.Array,
              key: Any) -> tuple[jax.Array, Params, Any]:
    """``(loss_value, grads, new_state)`` of one batch, for either model form."""
    if model.general:
        def objective(p):
            predictions, new_state = model.apply(p, state, x, key=key, train=True)
            return loss(predictions, y), new_state
        (loss_value, state), grads = jax.value_and_grad(objective, has_aux=True)(params)
    else:
        loss_value, grads = jax.value_and_grad(lambda p: loss(model.apply(p, x), y))(params)
    return loss_value, grads, state


def takes_value(optimizer: Any) -> bool:
    """True for an optax ``GradientTransformationExtraArgs`` (``optax.chain`` builds one):
    its ``update`` is given ``value=`` (the batch loss), as ``reduce_on_plateau`` needs."""
    return isinstance(optimizer, optax.GradientTransformationExtraArgs)


def update(optimizer: Any, grads: Params, opt_state: Any, params: Params,
           loss_value: jax.Array) -> tuple[Params, Any]:
    """``(new_params, new_opt_state)``: one optimizer update with ``grads``."""
    if takes_value(optimizer):
        updates, opt_state = optimizer.update(grads, opt_state, params, value=loss_value)
    else:
        updates, opt_state = optimizer.update(grads, opt_state, params)
    return apply_updates(params, updates), opt_state


def step(model: Model, optimizer: Any, loss: LossFn, params: Params, opt_state: Any, state: Any,
         x: jax.Array, y: jax.Array, key: Any) -> tuple[Params, Any, Any, jax.Array]:
    """The step of either model form: ``(params, opt_state, state, loss_value)``."""
    loss_value, grads, state = gradients(model, loss, params, state, x, y, key)
    params, opt_state = update(optimizer, grads, opt_state, params, loss_value)
    return params, opt_state, state, loss_value


def train_step(params: Params, opt_state: Any, x: jax.Array, y: jax.Array, *, model: Any,
               optimizer: Any, loss: LossFn = softmax_cross_entropy, state: Any = None,
               key: Any = None) -> tuple:
    r"""One pure training step on the batch ``(x, y)``.

    Args:
      params: the model's params pytree.
      opt_state: ``optimizer.init(params)`` or the state a previous step returned.
      x: inputs, ``(batch, ...)``.
      y: targets for ``loss`` (integer labels for softmax cross-entropy).
      model: a :class:`fnn.layers.Layer`, a :class:`fnn.layers.StatefulLayer` or a
        function ``apply(params, x)``.
      optimizer: any optax-compatible ``(init, update)``: fnn's or optax's.
      loss: ``loss(predictions, targets) -> scalar``, default
        :func:`fnn.losses.softmax_cross_entropy`.
      state: the model state (general models only: from ``model.init``).
      key: the step's key (general models with random layers such as dropout).

    Returns:
      ``(new_params, new_opt_state, loss_value)`` for a pure model;
      ``(new_params, new_opt_state, new_state, loss_value)`` for a general one.
      ``loss_value`` is the loss at the params before the update.

    Raises:
      ValueError: for a ``state`` given to a pure model or missing for a general one.

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
    m = model_of("train_step", model)
    check_optimizer("train_step", optimizer)
    check_loss("train_step", loss)
    if not m.general:
        if state is not None and jax.tree.leaves(state):
            _checks.fail("train_step", "state", "be None for a pure Layer (it keeps no state)",
                         f"a pytree with {len(jax.tree.leaves(state))} arrays")
        params, opt_state, _, loss_value = step(m, optimizer, loss, params, opt_state, (), x, y, None)
        return params, opt_state, loss_value
    if state is None:
        _checks.fail("train_step", "state", "be the model state of a StatefulLayer (model.init "
                     "returns (params, state))", None)
    return step(m, optimizer, loss, params, opt_state, state, x, y, key)


def make_train_step(model: Any, optimizer: Any, loss: LossFn = softmax_cross_entropy, *,
                    donate: bool = True, jit: bool = True) -> Callable:
    r"""A compiled ``step(params, opt_state, x, y) -> (params, opt_state, loss)``.

    For users who write their own Python loop. With ``donate=True`` (default) the
    params and optimizer state passed in are donated to XLA, which updates them in place
    instead of allocating new buffers every step: do not use the arrays you passed after
    the call, use the ones it returns (``jax.jit``'s ``donate_argnums`` semantics). For
    whole runs prefer :func:`fnn.training.fit`: one compiled program, no per-step Python.
    For a general model the step is ``step(params, opt_state, state, x, y, key) ->
    (params, opt_state, state, loss)`` (the model state donated too).

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
    m = model_of("make_train_step", model)
    check_optimizer("make_train_step", optimizer)
    check_loss("make_train_step", loss)
    donate = _checks.boolean("make_train_step", "donate", donate)
    jit = _checks.boolean("make_train_step", "jit", jit)

    one: Callable[..., Any]        # one of two signatures, by the model's form
    donated: tuple[int, ...]
    if m.general:
        def one(params, opt_state, state, x, y, key=None):
            return train_step(params, opt_state, x, y, model=model, optimizer=optimizer, loss=loss,
                              state=state, key=key)
        donated = (0, 1, 2)
    else:
        def one(params, opt_state, x, y):
            return train_step(params, opt_state, x, y, model=model, optimizer=optimizer, loss=loss)
        donated = (0, 1)

    if not jit:
        return one
    return jax.jit(one, donate_argnums=donated if donate else ())

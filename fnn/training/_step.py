r"""One training step: forward stage, backward stage (``jax.grad``), update.

.. math:: L(w) = \ell(f(w, x), y), \qquad g = \nabla_w L, \qquad
          (u, s') = \text{optimizer.update}(g, s, w), \qquad w' = w + u

With plain SGD, :math:`u = -\eta g` and this is the notes' update
:math:`w_{new} = w_{old} - \eta\, \partial L / \partial w_{old}`. For a general model
(:class:`fnn.layers.StatefulLayer`) the forward stage runs with ``train=True`` and the
step's key, and also returns the model's new state (batch norm's running averages):
:math:`(\hat y, m') = f(w, m, x; k)`; the state is not differentiated.

An optax ``GradientTransformationExtraArgs`` (``optax.chain``, ``optax.lbfgs``) is also
given ``value=`` :math:`L(w)`, ``grad=`` :math:`g` and ``value_fn=`` :math:`v \mapsto
L(v)` on the same batch (:func:`extra_args`). For a general model
:math:`L(v) = \ell(f(v, m, x; k), y)` with ``train=True``, the step's key :math:`k` and
the state :math:`m` from before the step (the state it returns is dropped): the very
function :math:`g` is the gradient of, so dropout masks stay fixed and batch norm uses
this batch's statistics, a deterministic function of the params as ``optax.lbfgs``'s
line search needs.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, NamedTuple

import jax
import optax

from fnn import _checks
from fnn.layers import Layer, StatefulLayer
from fnn.losses import softmax_cross_entropy
from fnn.optimizers import apply_updates

__all__ = ["train_step", "make_train_step", "Model", "model_of", "check_optimizer", "check_loss",
           "step", "gradients", "update", "takes_value", "objective", "extra_args"]

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


def objective(model: Model, loss: LossFn, state: Any, x: jax.Array, y: jax.Array,
              key: Any) -> Callable[[Params], tuple[jax.Array, Any]]:
    """``params -> (loss_value, new_state)`` on one batch: the function a step differentiates.

    A general model runs with ``train=True``, the step's ``key`` and the state before the
    step; a pure model returns ``state`` unchanged.
    """
    if model.general:
        def fn(p):
            predictions, new_state = model.apply(p, state, x, key=key, train=True)
            return loss(predictions, y), new_state
    else:
        def fn(p):
            return loss(model.apply(p, x), y), state
    return fn


def gradients(model: Model, loss: LossFn, params: Params, state: Any, x: jax.Array, y: jax.Array,
              key: Any) -> tuple[jax.Array, Params, Any]:
    """``(loss_value, grads, new_state)`` of one batch, for either model form."""
    (loss_value, state), grads = jax.value_and_grad(
        objective(model, loss, state, x, y, key), has_aux=True)(params)
    return loss_value, grads, state


EXTRA_ARGS = ("value", "grad", "value_fn")


def takes_value(optimizer: Any) -> bool:
    """True for an optax ``GradientTransformationExtraArgs`` (``optax.chain`` builds one):
    its ``update`` is given the extra arguments of :func:`extra_args`."""
    return isinstance(optimizer, optax.GradientTransformationExtraArgs)


def extra_args(optimizer: Any, value: jax.Array, grads: Params,
               value_fn: Callable[[Params], jax.Array] | None) -> dict:
    r"""The keywords ``optimizer.update`` is given besides ``(grads, state, params)``.

    None for an optimizer that is not a ``GradientTransformationExtraArgs``. Otherwise
    ``value=`` (the batch loss, as ``optax.contrib.reduce_on_plateau`` needs), ``grad=``
    (the same gradient as the updates) and ``value_fn=`` (the batch loss as a function of
    params only, which the line search of ``optax.lbfgs`` calls): all three to an
    ``update`` that takes ``**kwargs`` (``optax.chain`` does, and passes each of its
    parts what it takes), else those it names. ``value_fn`` is only traced when called.
    """
    if not takes_value(optimizer):
        return {}
    given = {"value": value, "grad": grads, "value_fn": value_fn}
    try:
        parameters = inspect.signature(optimizer.update).parameters.values()
    except (TypeError, ValueError):     # no signature to read: the documented value= only
        return {"value": value}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return {k: v for k, v in given.items() if v is not None}
    names = {p.name for p in parameters}
    return {k: v for k, v in given.items() if k in names and v is not None}


def update(optimizer: Any, grads: Params, opt_state: Any, params: Params, loss_value: jax.Array,
           value_fn: Callable[[Params], jax.Array] | None = None) -> tuple[Params, Any]:
    """``(new_params, new_opt_state)``: one optimizer update with ``grads`` (and the
    :func:`extra_args` of an optimizer that takes them)."""
    updates, opt_state = optimizer.update(grads, opt_state, params,
                                          **extra_args(optimizer, loss_value, grads, value_fn))
    return apply_updates(params, updates), opt_state


def step(model: Model, optimizer: Any, loss: LossFn, params: Params, opt_state: Any, state: Any,
         x: jax.Array, y: jax.Array, key: Any) -> tuple[Params, Any, Any, jax.Array]:
    """The step of either model form: ``(params, opt_state, state, loss_value)``.

    An optimizer's ``value_fn`` is the loss of this batch as the step computes it (for a
    general model: ``train=True``, this step's key, the state before the step; the state
    it returns is dropped): the very function whose gradient ``grad`` is, deterministic
    in params as a line search needs.
    """
    loss_value, grads, new_state = gradients(model, loss, params, state, x, y, key)
    value_fn = lambda p: objective(model, loss, state, x, y, key)(p)[0]  # noqa: E731
    params, opt_state = update(optimizer, grads, opt_state, params, loss_value, value_fn)
    return params, opt_state, new_state, loss_value


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
      optimizer: any optax-compatible ``(init, update)``: fnn's or optax's; an optax
        ``GradientTransformationExtraArgs`` such as ``optax.lbfgs()`` also gets
        ``value=``, ``grad=`` and ``value_fn=`` of this batch (module docstring).
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

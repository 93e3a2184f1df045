r"""Backpropagation written out by hand with the chain rule, for dense MLPs.

``jax.grad`` is how fnn trains; this module exists to show what it computes. It runs
the notes' two stages on a network built by :func:`fnn.models.mlp`:

*Forward stage*, layer :math:`l = 1 \dots L`, :math:`a_0 = x`:

.. math:: z_l = a_{l-1} W_l + b_l, \qquad a_l = f(z_l) \;(l < L), \qquad
          \hat y = z_L \text{ (logits)}

*Backward stage*: the error starts at the output and travels back to the input. With
:math:`\delta_l = \partial L / \partial z_l` (the layer's "delta"):

.. math::
   \delta_L = \frac{\partial L}{\partial z_L}, \qquad
   \delta_{l-1} = \underbrace{\delta_l}_{\partial L/\partial z_l}
                  \underbrace{W_l^\top}_{\partial z_l/\partial a_{l-1}}
                  \odot \underbrace{f'(z_{l-1})}_{\partial a_{l-1}/\partial z_{l-1}},
   \qquad
   \frac{\partial L}{\partial W_l} = a_{l-1}^\top \delta_l, \qquad
   \frac{\partial L}{\partial b_l} = \textstyle\sum_{\text{examples}} \delta_l

which is the notes' :math:`\frac{\partial L}{\partial w_1} = \frac{\partial L}{\partial o_2}
\frac{\partial o_2}{\partial o_1} \frac{\partial o_1}{\partial w_1}` for every weight at
once. Each factor :math:`f'(z)` of a sigmoid network is at most 1/4, so :math:`\delta`
shrinks on its way back: the vanishing gradient (:mod:`fnn.diagnostics`).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from fnn import _checks
from fnn import activations as _act
from fnn import losses as _losses
from fnn.layers._dense import dense_apply

__all__ = ["MlpGrads", "mlp_grads", "derivative", "ACTIVATIONS", "LOSSES"]


# Each activation beside its derivative, written from z and a = f(z) (micrograd style).
# The kinks follow jax.nn: relu'(0) = 0, leaky_relu'(0) = prelu'(0) = 1, elu'(0) = alpha.
def _ones(z, a):
    return jnp.ones_like(z)                                   # identity: d z / d z = 1


_DERIVATIVES: dict[str, tuple[Callable, Callable]] = {
    "sigmoid": (_act.sigmoid, lambda z, a: a * (1 - a)),      # s' = s (1 - s) <= 1/4
    "tanh": (_act.tanh, lambda z, a: 1 - a * a),              # tanh' = 1 - tanh^2 <= 1
    "relu": (_act.relu, lambda z, a: (z > 0).astype(z.dtype)),          # 1 or 0 (0 at 0)
    "leaky_relu": (_act.leaky_relu,                            # 1 or 0.01 (1 at 0)
                   lambda z, a: jnp.where(z >= 0, 1, 0.01).astype(z.dtype)),
    # elu' = alpha e^z for z <= 0 (alpha = 1); min(z, 0) keeps exp from overflowing.
    "elu": (_act.elu, lambda z, a: jnp.where(z > 0, 1, jnp.exp(jnp.minimum(z, 0))).astype(z.dtype)),
    "prelu": (_act.prelu, lambda z, a, alpha: jnp.where(z >= 0, 1, alpha).astype(z.dtype)),
    "identity": (_act.identity, _ones),
}

#: Activation names :func:`mlp_grads` differentiates by hand.
ACTIVATIONS = tuple(_DERIVATIVES)


# The output error delta_L = dL/dz_L of each loss, from the logits z and the labels y,
# for the mean reduction of fnn.losses (n = number of terms averaged).
def _mse_delta(z, y):
    return 2 * (z - y.astype(z.dtype)) / z.size                   # L = mean (z - y)^2


def _bce_delta(z, y):
    # L = mean softplus(z) - y z, so dL/dz = (sigmoid(z) - y) / n: the output sigmoid's
    # derivative s(1-s) cancels against the log-loss's 1 / (s (1 - s)).
    logits = z.reshape(jnp.shape(y))
    return ((_act.sigmoid(logits) - y.astype(z.dtype)) / logits.size).reshape(z.shape)


def _softmax_ce_delta(z, y):
    # L = mean logsumexp(z) - z_y, so dL/dz = (softmax(z) - onehot(y)) / n.
    one_hot = (y[..., None] == jnp.arange(z.shape[-1])).astype(z.dtype)
    return (_act.softmax(z) - one_hot) / jnp.size(y)


_LOSSES: dict[str, tuple[Callable, Callable]] = {
    "mse": (_losses.mse, _mse_delta),
    "binary_cross_entropy": (_losses.binary_cross_entropy, _bce_delta),
    "softmax_cross_entropy": (_losses.softmax_cross_entropy, _softmax_ce_delta),
}

#: Loss names :func:`mlp_grads` differentiates by hand.
LOSSES = tuple(_LOSSES)


class MlpGrads(NamedTuple):
    """The result of :func:`mlp_grads`.

    Attributes:
      grads: :math:`\\partial L / \\partial \\theta`, the params' pytree (what
        ``jax.grad`` returns).
      deltas: list of :math:`\\delta_l = \\partial L / \\partial z_l`, one per layer,
        shaped like :math:`z_l`: ``(..., features[l])``.
    """

    grads: list
    deltas: list


def _by_name(fn: str, arg: str, value, table: dict, module) -> str:
    """Resolve a name, or one of fnn's own functions, to a key of ``table``."""
    if isinstance(value, str) and value in table:
        return value
    for name in table:
        if callable(value) and getattr(module, name, None) is value:
            return name
    _checks.fail(fn, arg, f"be one of {', '.join(table)}", repr(value))


def derivative(name: str) -> Callable[[jax.Array], jax.Array]:
    r"""The hand-written derivative :math:`f'(z)` of an activation, elementwise.

    Args:
      name: one of :data:`ACTIVATIONS` except ``"prelu"`` (whose slope is a parameter).

    Returns:
      ``z -> f'(z)``, ``z``'s shape and dtype; equal to ``jax.grad`` of the activation,
      at the kinks too.

    Example:
      >>> import jax.numpy as jnp, fnn
      >>> fnn.backprop.derivative("sigmoid")(jnp.array([-2.0, 0.0, 2.0])).round(4)
      Array([0.105, 0.25 , 0.105], dtype=float32)
    """
    name = _by_name("derivative", "name", name, {k: v for k, v in _DERIVATIVES.items()
                                                 if k != "prelu"}, _act)
    f, f_prime = _DERIVATIVES[name]

    def f_prime_of_z(z: ArrayLike) -> jax.Array:
        z = jnp.asarray(z)
        return f_prime(z, f(z))

    return f_prime_of_z


def mlp_grads(params: list, x: ArrayLike, y: ArrayLike, *, activation: str | Callable,
              loss: str | Callable) -> MlpGrads:
    r"""Gradients of an MLP's loss by explicit backpropagation.

    Computes :math:`\partial L / \partial W_l`, :math:`\partial L / \partial b_l` (and
    :math:`\partial L / \partial \alpha_l` for PReLU) for
    ``L = loss(fnn.mlp(features, activation).apply(params, x), y)`` with the
    recurrences of the module docstring; equal to ``jax.grad`` of that function.

    Args:
      params: params of :func:`fnn.models.mlp` with identity output: a list of
        ``{"w": (in, out), "b": (out,)}`` (plus ``"alpha": ()`` in hidden layers for
        PReLU).
      x: ``(..., in)`` inputs.
      y: targets as the loss wants them: same shape as the output for ``"mse"``;
        {0, 1} labels of shape ``(...,)`` for ``"binary_cross_entropy"`` (one output
        unit, a sigmoid output from its logit); integer classes ``(...,)`` for
        ``"softmax_cross_entropy"``.
      activation: hidden activation: a name in :data:`ACTIVATIONS` or that fnn function.
      loss: a name in :data:`LOSSES` or that :mod:`fnn.losses` function; mean
        reduction, as in :mod:`fnn.losses`.

    Returns:
      :class:`MlpGrads` ``(grads, deltas)``; grads have the params' dtypes.

    Raises:
      ValueError: for an unsupported activation or loss, params that are not a
        non-empty list of layer dicts (or a layer whose ``w`` is not 2-D with ``b`` of
        shape ``(out,)``), an ``x`` whose last axis does not fit the first kernel, or a
        ``y`` the loss rejects (the message names ``y`` and quotes the loss's own
        complaint).
      TypeError: for an ``x`` or ``y`` that is not an array, or a ``y`` of the wrong
        kind (float classes for softmax cross-entropy).

    Example:
      >>> import jax, jax.numpy as jnp, fnn
      >>> model = fnn.mlp([3, 1], activation="sigmoid")
      >>> params = model.init(jax.random.key(0), (2,))
      >>> x, y = jnp.ones((4, 2)), jnp.zeros((4, 1))
      >>> grads, deltas = fnn.backprop.mlp_grads(params, x, y, activation="sigmoid", loss="mse")
      >>> reference = jax.grad(lambda p: fnn.losses.mse(model.apply(p, x), y))(params)
      >>> jax.tree.all(jax.tree.map(lambda a, b: jnp.allclose(a, b, atol=1e-7), grads, reference))
      True
      >>> [d.shape for d in deltas]
      [(4, 3), (4, 1)]
    """
    fn = "mlp_grads"
    act_name = _by_name(fn, "activation", activation, _DERIVATIVES, _act)
    loss_fn, output_delta = _LOSSES[_by_name(fn, "loss", loss, _LOSSES, _losses)]
    f, f_prime = _DERIVATIVES[act_name]
    if not isinstance(params, (list, tuple)) or not params or not all(
            isinstance(p, dict) and "w" in p and "b" in p for p in params):
        _checks.fail(fn, "params", 'be a non-empty list of {"w", "b"} layer dicts (fnn.mlp params)',
                     _checks.describe(params))
    for l, p in enumerate(params):
        # Each layer alone; dense_apply checks that consecutive layers chain.
        if jnp.ndim(p["w"]) != 2 or jnp.shape(p["b"]) != jnp.shape(p["w"])[1:]:
            _checks.fail(fn, f"params[{l}]", 'hold "w" of shape (in, out) and "b" of shape (out,)',
                         f"w {jnp.shape(p['w'])}, b {jnp.shape(p['b'])}")
    _checks.array_like(fn, "x", x)
    _checks.array_like(fn, "y", y)
    if act_name == "prelu" and not all("alpha" in p for p in params[:-1]):
        _checks.fail(fn, "params", 'hold "alpha" in every hidden layer for activation "prelu"',
                     [sorted(p) for p in params])
    n_layers = len(params)

    # Forward stage, keeping what the backward stage needs: each layer's input a_{l-1}
    # and its net sum z_l.
    inputs, zs = [], []
    a = jnp.asarray(x)
    for l, p in enumerate(params):
        inputs.append(a)
        z = dense_apply(p, a, name=f"mlp_grads layer {l}")
        zs.append(z)
        if l < n_layers - 1:
            a = f(z, p["alpha"]) if act_name == "prelu" else f(z)
    try:  # validate y against the logits exactly as the loss does (no cost under jit)
        loss_fn(zs[-1], y)
    except (TypeError, ValueError) as error:
        _checks.fail(fn, "y", f"suit {loss_fn.__name__} for logits of shape {zs[-1].shape}",
                     error, type(error))

    # Backward stage. Output error delta_L = dL/dz_L, straight from the loss.
    delta = output_delta(zs[-1], jnp.asarray(y))
    grads: list[dict] = [{} for _ in params]
    deltas: list = [None] * n_layers
    for l in reversed(range(n_layers)):
        p, a_prev = params[l], inputs[l]
        deltas[l] = delta
        # Fold any batch axes: the gradient sums the contributions of every example.
        a2 = a_prev.reshape(-1, a_prev.shape[-1])
        d2 = delta.reshape(-1, delta.shape[-1])
        # dL/dW_l = dL/dz_l * dz_l/dW_l, and dz_l/dW_l = a_{l-1}: an outer product.
        grads[l]["w"] = (a2.T @ d2).astype(p["w"].dtype)
        # dL/db_l = dL/dz_l * dz_l/db_l, and dz_l/db_l = 1.
        grads[l]["b"] = jnp.sum(d2, axis=0).astype(p["b"].dtype)
        if l == 0:
            break
        z_prev = zs[l - 1]
        # dL/da_{l-1} = dL/dz_l * dz_l/da_{l-1}, and dz_l/da_{l-1} = W_l.
        dL_da = delta @ p["w"].T
        # dL/dz_{l-1} = dL/da_{l-1} * da_{l-1}/dz_{l-1}, and da/dz = f'(z); a_{l-1} = f(z_{l-1})
        # is this layer's input, kept from the forward stage.
        if act_name == "prelu":
            alpha = params[l - 1]["alpha"]
            delta = dL_da * f_prime(z_prev, a_prev, alpha)
            # PReLU's slope is a parameter too: da/dalpha = z where z < 0, else 0.
            grads[l - 1]["alpha"] = jnp.sum(dL_da * jnp.where(z_prev >= 0, 0, z_prev)).astype(alpha.dtype)
        else:
            delta = dL_da * f_prime(z_prev, a_prev)
    return MlpGrads(type(params)(grads) if isinstance(params, tuple) else grads, deltas)

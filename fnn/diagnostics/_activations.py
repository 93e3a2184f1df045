r"""Dead units and activation statistics per hidden layer (part of :mod:`fnn.diagnostics`).

Two claims of the lecture notes are about what hidden units *output*, not about their
gradients: ReLU units "die" once their input turns negative, and tanh (and ELU) keep
the mean of a layer's output "close to 0" while sigmoid and ReLU do not. Both are
measured on the forward pass of a batch:

* :func:`dead_units`: per hidden layer, the fraction of units that are never active
  (pre-activation :math:`z \le 0`) on any example of ``x``;
* :func:`activation_stats`: per hidden layer, the mean, standard deviation and the
  fraction of exact zeros of the outputs :math:`a = f(z)`.

Both read the hidden layers through :func:`hidden_layers`, which knows one kind of
model today: the :func:`fnn.models.mlp` of dense layers (params a list of dicts with
``"w"`` and ``"b"``, plus ``"alpha"`` for PReLU). A model is a bare ``(init, apply)``
pair that does not say its activation, so ``activation`` is either given or found by
running each candidate's forward pass and keeping the one that reproduces
``model.apply(params, x)``. Another kind of model joins by teaching
:func:`hidden_layers` its forward pass; the two measurements stay as they are.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from fnn import _checks
from fnn import activations as _activations

__all__ = ["HiddenLayer", "ActivationStats", "hidden_layers", "dead_units", "activation_stats"]

# Tried in this order when ``activation`` is None; the first whose forward pass
# reproduces model.apply wins (relu before leaky_relu: they agree where every z > 0).
_CANDIDATES = ("relu", "leaky_relu", "elu", "tanh", "sigmoid", "identity")


class HiddenLayer(NamedTuple):
    """One hidden layer's pre-activation ``z`` and output ``a = f(z)``, both ``(batch, units)``."""

    z: jax.Array
    a: jax.Array


class ActivationStats(NamedTuple):
    """Result of :func:`activation_stats`: one entry per hidden layer, first layer first.

    Attributes:
      mean: ``(n_hidden,)`` mean of the layer's outputs over the batch and its units.
      std: ``(n_hidden,)`` their standard deviation (over the batch and the units).
      zero_fraction: ``(n_hidden,)`` fraction of outputs that are exactly 0 (sparsity).
    """

    mean: jax.Array
    std: jax.Array
    zero_fraction: jax.Array


def _check_mlp_params(fn: str, params: Any) -> None:
    if not isinstance(params, (list, tuple)) or len(params) < 2 or not all(
            isinstance(p, Mapping) and "w" in p and "b" in p for p in params):
        got = (f"{type(params).__name__} of length {len(params)}" if isinstance(params, (list, tuple))
               else _checks.describe(params))
        _checks.fail(fn, "params", 'be the params of an fnn.mlp with a hidden layer: a list of '
                     '2 or more dicts with "w" and "b"', got)


def _forward(params: Any, x: jax.Array, f: Callable, learned_alpha: bool) -> tuple[list, jax.Array]:
    """Hidden layers and the output logits of an mlp, recomputed layer by layer."""
    hidden, a = [], x
    for p in params[:-1]:
        z = a @ p["w"] + p["b"]
        a = f(z, p["alpha"]) if learned_alpha else f(z)
        hidden.append(HiddenLayer(z, a))
    return hidden, a @ params[-1]["w"] + params[-1]["b"]


def _matches(out: np.ndarray, reference: np.ndarray) -> bool:
    scale = max(1.0, float(np.nanmax(np.abs(reference), initial=0.0)))
    return out.shape == reference.shape and bool(np.allclose(out, reference, rtol=1e-5, atol=1e-6 * scale,
                                                                  equal_nan=True))


def hidden_layers(model: Any, params: Any, x: ArrayLike, *,
                  activation: str | Callable | None = None) -> list[HiddenLayer]:
    r"""The pre-activations and outputs of every hidden layer of ``model`` on ``x``.

    For an :func:`fnn.models.mlp`, layer :math:`l` computes

    .. math:: z^{(l)} = a^{(l-1)} W^{(l)} + b^{(l)}, \qquad a^{(l)} = f(z^{(l)}),
              \qquad a^{(0)} = x

    and this function returns :math:`(z^{(l)}, a^{(l)})` for the hidden layers
    :math:`l = 1 \dots L-1` (the output layer is not a hidden layer).

    Args:
      model: the model, an :func:`fnn.models.mlp` ``Layer``; its ``apply`` checks the
        activation (below).
      params: its params: a list of dicts ``{"w": (in, out), "b": (out,)}`` (with
        ``"alpha": ()`` in the hidden layers of a PReLU mlp).
      x: inputs ``(batch, features)``, floating.
      activation: the hidden activation, a name of :func:`fnn.activations.names` or a
        callable. None finds it: the candidates relu, leaky_relu, elu, tanh, sigmoid,
        identity (prelu when the params hold ``"alpha"``) are tried in that order and
        the first whose forward pass gives ``model.apply(params, x)`` is used; this needs
        concrete (not traced) inputs. A given activation is checked the same way when
        the inputs are concrete, and trusted under ``jit``.

    Returns:
      A list of :class:`HiddenLayer` ``(z, a)``, one per hidden layer, each
      ``(batch, units)``.

    Raises:
      ValueError: params not mlp-shaped, ``x`` not ``(batch, features)`` matching the
        first kernel, or ``activation`` not (or not found to be) the model's.
      TypeError: ``model`` without ``apply``, ``x`` not floating.

    Example:
      >>> import jax, jax.numpy as jnp, fnn
      >>> model = fnn.mlp([3, 1], activation="tanh")
      >>> params = model.init(jax.random.key(0), (2,))
      >>> [h.a.shape for h in fnn.diagnostics.hidden_layers(model, params, jnp.ones((5, 2)))]
      [(5, 3)]
    """
    return _hidden("hidden_layers", model, params, x, activation)


def _hidden(fn: str, model: Any, params: Any, x: ArrayLike, activation: Any) -> list[HiddenLayer]:
    """:func:`hidden_layers`, with errors in the name of the public function called."""
    if not callable(getattr(model, "apply", None)):
        _checks.fail(fn, "model", "be a model with an apply(params, x), such as fnn.mlp(...)",
                     _checks.describe(model), TypeError)
    _check_mlp_params(fn, params)
    _checks.floating(fn, "x", x)
    x = jnp.asarray(x)
    w0 = params[0]["w"]
    if x.ndim != 2 or x.shape[1] != jnp.shape(w0)[0]:
        _checks.fail(fn, "x", f"have shape (batch, {jnp.shape(w0)[0]}) to match the first kernel "
                     f"of shape {tuple(jnp.shape(w0))}", f"shape {x.shape}")
    learned_alpha = "alpha" in params[0]
    if activation is None:
        candidates: tuple = ("prelu",) if learned_alpha else _CANDIDATES
    elif isinstance(activation, str):
        if activation not in _activations.names():
            _checks.fail(fn, "activation", f"be one of {', '.join(_activations.names())}, a callable "
                         "or None", repr(activation))
        candidates = (activation,)
    elif callable(activation):
        candidates = (activation,)
    else:
        _checks.fail(fn, "activation", "be an activation name, a callable or None",
                     _checks.describe(activation), TypeError)
    concrete = all(_checks.concrete(leaf) is not None for leaf in jax.tree.leaves((params, x)))
    if activation is None and not concrete:
        _checks.fail(fn, "activation", "be given when params or x are traced (under jit), where "
                     "it cannot be found by comparing with model.apply", "None")
    reference = np.asarray(model.apply(params, x)) if concrete else None
    for candidate in candidates:
        f = _activations.get(candidate) if isinstance(candidate, str) else candidate
        hidden, out = _forward(params, x, f, learned_alpha)
        if reference is None or _matches(np.asarray(out), reference):
            return hidden
    if activation is None:
        _checks.fail(fn, "activation", f"be given: none of {', '.join(candidates)} reproduces "
                     "model.apply(params, x)", "None")
    _checks.fail(fn, "activation", "be the model's hidden activation (its forward pass must give "
                 "model.apply(params, x))", repr(activation))


def dead_units(model: Any, params: Any, x: ArrayLike, *,
               activation: str | Callable | None = None) -> jax.Array:
    r"""Per hidden layer, the fraction of units never active on any example of ``x``.

    The notes' dying ReLU: a unit whose input is negative for every example outputs 0
    for all of them and, since :math:`\mathrm{relu}'(z) = 0` there, gets no gradient:
    nothing moves it back. Unit :math:`j` of layer :math:`l` counts as dead when

    .. math:: z^{(l)}_{nj} \le 0 \quad \text{for every example } n

    and the result is the fraction of such units per layer. The rule is the same for
    every activation, so the fractions compare: a leaky ReLU, PReLU or ELU unit in that
    state still passes a gradient (slope :math:`s`, :math:`\alpha` or
    :math:`\alpha e^z`) and can come back, a ReLU unit cannot.

    Args:
      model, params, x, activation: as in :func:`hidden_layers`; ``x`` is the data the
        units should respond to (the training set).

    Returns:
      ``(n_hidden,)`` float32 fractions in [0, 1], first hidden layer first.

    Raises:
      ValueError, TypeError: as :func:`hidden_layers`.

    Example:
      >>> import jax.numpy as jnp, fnn
      >>> model = fnn.mlp([2, 1])
      >>> params = [{"w": jnp.array([[1.0, -1.0]]), "b": jnp.array([0.0, -5.0])},
      ...           {"w": jnp.ones((2, 1)), "b": jnp.zeros(1)}]
      >>> fnn.diagnostics.dead_units(model, params, jnp.array([[1.0], [2.0]]))
      Array([0.5], dtype=float32)
    """
    hidden = _hidden("dead_units", model, params, x, activation)
    return jnp.stack([jnp.mean(jnp.all(h.z <= 0, axis=0).astype(jnp.float32)) for h in hidden])


def activation_stats(model: Any, params: Any, x: ArrayLike, *,
                     activation: str | Callable | None = None) -> ActivationStats:
    r"""Per hidden layer, the mean and standard deviation of the outputs, and their zeros.

    The notes: tanh "brings the mean close to 0, which makes learning for the next
    layer easier"; sigmoid and ReLU outputs are not zero-centred; ELU's mean is "close
    to 0". For layer :math:`l` with outputs :math:`a^{(l)}_{nj}` (``N`` examples,
    ``H`` units):

    .. math:: \mu_l = \frac{1}{NH} \sum_{n,j} a^{(l)}_{nj}, \qquad
              s_l = \sqrt{\frac{1}{NH} \sum_{n,j} (a^{(l)}_{nj} - \mu_l)^2}, \qquad
              \text{zero}_l = \frac{1}{NH} \#\{a^{(l)}_{nj} = 0\}

    Args:
      model, params, x, activation: as in :func:`hidden_layers`.

    Returns:
      :class:`ActivationStats` of ``(n_hidden,)`` arrays (in at least float32).

    Raises:
      ValueError, TypeError: as :func:`hidden_layers`.

    Example:
      >>> import jax.numpy as jnp, fnn
      >>> model = fnn.mlp([2, 1])
      >>> params = [{"w": jnp.array([[1.0, -1.0]]), "b": jnp.zeros(2)},
      ...           {"w": jnp.ones((2, 1)), "b": jnp.zeros(1)}]
      >>> stats = fnn.diagnostics.activation_stats(model, params, jnp.array([[1.0], [3.0]]))
      >>> stats.mean, stats.zero_fraction
      (Array([1.], dtype=float32), Array([0.5], dtype=float32))
    """
    hidden = _hidden("activation_stats", model, params, x, activation)
    means, stds, zeros = [], [], []
    for h in hidden:
        a = h.a.astype(jnp.promote_types(h.a.dtype, jnp.float32))
        means.append(jnp.mean(a))
        stds.append(jnp.std(a))
        zeros.append(jnp.mean((a == 0).astype(a.dtype)))
    return ActivationStats(jnp.stack(means), jnp.stack(stds), jnp.stack(zeros))

r"""Ready-made models: the multi-layer perceptron, and :func:`cnn` (from :mod:`fnn.cnn`).

A multi-layer perceptron (the notes: "a multi-layer perceptron is called a neural
network") stacks dense layers with a non-linear activation between them. Forward stage,
layer :math:`l = 1 \dots L` with :math:`a^{(0)} = x`:

.. math:: z^{(l)} = a^{(l-1)} W^{(l)} + b^{(l)}, \qquad a^{(l)} = f(z^{(l)}) \;(l < L),
          \qquad \hat y = g(z^{(L)})

with :math:`f` the hidden activation and :math:`g` the output activation (identity by
default: the model returns logits, and the losses apply sigmoid/softmax stably).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from fnn import _checks
from fnn._cache import same_object_for_same_arguments
from fnn import activations as _activations
from fnn import initializers as _initializers
from fnn.layers._core import Layer, StatefulLayer, compiles_exactly, example_shape
from fnn.cnn import cnn
from fnn.layers._batch_norm import batch_norm_apply, batch_norm_init
from fnn.layers._core import check_train
from fnn.layers._dense import dense, dense_apply
from fnn.layers._dropout import dropout_apply
from fnn.layers._serial import check_part_list, split_key

__all__ = ["mlp", "cnn", "default_w_init"]

_RELU_FAMILY = ("relu", "leaky_relu", "prelu", "elu")


def _resolve(fn: str, arg: str, activation) -> tuple[str | None, Callable]:
    """(name or None, function) for an activation given by name or callable."""
    if activation is None:
        return "identity", _activations.identity
    if isinstance(activation, str):
        try:
            return activation, _activations.get(activation)
        except ValueError:
            _checks.fail(fn, arg, f"be one of {', '.join(_activations.names())} or a callable",
                         repr(activation))
    if callable(activation):
        for name in _activations.names():
            if _activations.get(name) is activation:
                return name, activation
        return None, activation
    _checks.fail(fn, arg, "be an activation name or a callable", type(activation).__name__, TypeError)


def default_w_init(activation) -> Callable:
    """The kernel initializer suited to a hidden activation.

    He normal for the ReLU family (relu, leaky_relu, prelu, elu): ReLU passes half of
    its inputs, so doubling the variance keeps signals at scale. Glorot uniform for
    everything else (sigmoid, tanh, identity, custom callables).
    """
    name, _ = _resolve("default_w_init", "activation", activation)
    return _initializers.he_normal() if name in _RELU_FAMILY else _initializers.glorot_uniform()


def mlp(features: Sequence[int], activation="relu", output_activation=None, w_init=None, *,
        b_init: Callable = _initializers.zeros, prelu_init_alpha: float = 0.25,
        dtype=jnp.float32, dropout: float = 0.0, batch_norm: bool = False,
        batch_norm_momentum: float = 0.99) -> Layer | StatefulLayer:
    r"""Multi-layer perceptron: dense layers with ``activation`` between them.

    Params are a list with one dict per dense layer, ``[{"w": (in, h1), "b": (h1,)},
    {"w": (h1, h2), "b": (h2,)}, ...]``; with ``activation="prelu"`` each hidden layer's
    dict also holds its learned slope ``"alpha": ()``. This flat layout is what
    :func:`fnn.backprop.mlp_grads` and :func:`fnn.diagnostics.layer_grad_norms` read.

    Args:
      features: hidden sizes then the output size, e.g. ``[128, 64, 10]``.
      activation: hidden activation, a name from :func:`fnn.activations.names` or a
        callable ``x -> y``. ``"relu"`` + softmax cross-entropy is the notes' recipe for
        multi-class problems; ``"relu"`` + binary cross-entropy (sigmoid) for binary.
      output_activation: applied to the last layer; ``None`` (identity) returns logits,
        which is what the losses expect.
      w_init: kernel initializer for every layer; default :func:`default_w_init` of
        ``activation`` for hidden layers and Glorot uniform for the output layer.
      b_init: bias initializer (zeros).
      prelu_init_alpha: initial slope when ``activation="prelu"``.
      dtype: params dtype.
      dropout: probability of dropping each hidden unit in training
        (:func:`fnn.layers.dropout`, after the activation); 0 for none.
      batch_norm: normalise every hidden layer's pre-activations
        (:func:`fnn.layers.batch_norm`, between the dense layer and the activation, as
        Ioffe and Szegedy); each hidden layer's dict then also holds ``"scale"`` and
        ``"offset"`` and the state is a list of ``{"mean", "var"}`` per hidden layer.
      batch_norm_momentum: the running averages' momentum (Keras' convention).

    Returns:
      A :class:`fnn.layers.Layer`; ``apply(params, x)`` maps ``(..., in)`` to
      ``(..., features[-1])``. With ``dropout`` or ``batch_norm`` a
      :class:`fnn.layers.StatefulLayer` with the same params layout:
      ``init(key, shape) -> (params, state)`` and ``apply(params, state, x, *, key,
      train) -> (y, state)``: a hidden layer is dense, batch norm, activation, dropout.

    Raises:
      ValueError: for empty or non-positive ``features``, an unknown activation name,
        or (from ``apply``) an input whose last axis does not match the first kernel.

    Example:
      >>> import jax, jax.numpy as jnp, fnn
      >>> model = fnn.mlp([16, 3])
      >>> params = model.init(jax.random.key(0), (4,))
      >>> [p["w"].shape for p in params]
      [(4, 16), (16, 3)]
      >>> model.apply(params, jnp.ones((8, 4))).shape
      (8, 3)
    """
    # A list of sizes becomes a tuple so that equal models are the same (cached) object.
    if isinstance(features, list):
        features = tuple(features)
    pure = _mlp(features, activation, output_activation, w_init, b_init=b_init,
                prelu_init_alpha=prelu_init_alpha, dtype=dtype)
    _checks.number("mlp", "dropout", dropout, low=0.0, high=1.0, high_open=True,
                   expectation="be in [0, 1) (the probability of dropping a hidden unit)")
    batch_norm = _checks.boolean("mlp", "batch_norm", batch_norm)
    _checks.number("mlp", "batch_norm_momentum", batch_norm_momentum, low=0.0, high=1.0)
    if not dropout and not batch_norm:
        return pure
    return _general_mlp(pure, tuple(features), activation, output_activation, float(dropout), batch_norm,
                        float(batch_norm_momentum), dtype)


@same_object_for_same_arguments
def _mlp(features: Sequence[int], activation="relu", output_activation=None, w_init=None, *,
        b_init: Callable = _initializers.zeros, prelu_init_alpha: float = 0.25,
        dtype=jnp.float32) -> Layer:
    """The cached body of :func:`mlp`."""
    if isinstance(features, (int, str)) or not isinstance(features, Sequence) or len(features) == 0:
        _checks.fail("mlp", "features", "be a non-empty list of layer sizes such as [128, 10]",
                     repr(features))
    sizes = [_checks.positive_int("mlp", f"features[{i}]", f) for i, f in enumerate(features)]
    if w_init is not None and not callable(w_init):
        _checks.fail("mlp", "w_init", "be an initializer init(key, shape, dtype) or None",
                     _checks.describe(w_init), TypeError)
    if not callable(b_init):
        _checks.fail("mlp", "b_init", "be an initializer init(key, shape, dtype)", _checks.describe(b_init),
                     TypeError)
    try:
        float_dtype = jnp.issubdtype(jnp.dtype(dtype), jnp.floating)
    except TypeError:
        float_dtype = False
    if not float_dtype:
        _checks.fail("mlp", "dtype", "be a floating dtype such as jnp.float32", repr(dtype), TypeError)
    act_name, act = _resolve("mlp", "activation", activation)
    _, out_act = _resolve("mlp", "output_activation", output_activation)
    hidden_init = w_init if w_init is not None else default_w_init(act)
    output_init = w_init if w_init is not None else _initializers.glorot_uniform()
    learned_alpha = act_name == "prelu"
    layers = [dense(f, w_init=hidden_init if i < len(sizes) - 1 else output_init, b_init=b_init,
                    dtype=dtype) for i, f in enumerate(sizes)]
    layer_keys = ("w", "b", "alpha") if learned_alpha else ("w", "b")
    names = [f"mlp layer {i} (dense {f})" for i, f in enumerate(sizes)]

    def init_impl(key: jax.Array, shape: tuple[int, ...]) -> list:
        params = []
        for i, (layer, layer_key) in enumerate(zip(layers, jax.random.split(key, len(layers)))):
            p = layer.init(layer_key, shape)
            if learned_alpha and i < len(layers) - 1:
                p["alpha"] = jnp.asarray(prelu_init_alpha, dtype)
            params.append(p)
            shape = (sizes[i],)
        return params

    # One compiled program per input shape: eagerly, each of the dozens of small ops
    # (splits, draws, scalings) compiles on its own first use.
    compiled_init = jax.jit(init_impl, static_argnums=1)

    def init(key: jax.Array, input_shape: Sequence[int] | int) -> list:
        _checks.prng_key("mlp", "key", key)
        if isinstance(input_shape, (int, np.integer)) and not isinstance(input_shape, bool):
            input_shape = (input_shape,)
        # The type is the model's business; the sizes are checked by its first layer.
        shape = example_shape(f"dense({sizes[0]})", input_shape, type_fn="mlp")
        return (compiled_init if compiles_exactly(dtype) else init_impl)(key, shape)

    def apply(params: list, x: ArrayLike) -> jax.Array:
        if not isinstance(params, (list, tuple)) or len(params) != len(sizes):
            _checks.fail("mlp", "params", f"be a list of {len(sizes)} layer dicts",
                         f"{type(params).__name__} of length {len(params) if hasattr(params, '__len__') else '?'}")
        for i, p in enumerate(params):
            keys = layer_keys if i < len(sizes) - 1 else ("w", "b")
            if not isinstance(p, Mapping) or any(k not in p for k in keys):
                _checks.fail("mlp", "params", f"be a list of layer dicts ({keys} for layer {i})",
                             f"layer {i}: " + (f"keys {sorted(map(str, p))}" if isinstance(p, Mapping)
                                               else _checks.describe(p)))
        for i, p in enumerate(params):
            if jnp.ndim(p["w"]) != 2 or jnp.shape(p["w"])[1] != sizes[i]:
                _checks.fail("mlp", "params", f"hold layer {i}'s kernel w of shape (in, {sizes[i]}) "
                             f"for features {list(sizes)}", f"w of shape {tuple(jnp.shape(p['w']))}")
        a = x
        for i, p in enumerate(params):
            z = dense_apply(p, a, name=names[i])
            if i == len(params) - 1:
                return out_act(z)
            a = act(z, p["alpha"]) if learned_alpha else act(z)
        raise AssertionError("unreachable: params holds len(sizes) >= 1 layers (checked above)")

    return Layer(init, apply)



@same_object_for_same_arguments
def _general_mlp(pure: Layer, features: tuple, activation, output_activation, rate: float,
                 batch_norm: bool, momentum: float, dtype) -> StatefulLayer:
    """The MLP with dropout and/or batch norm in every hidden layer (cached like mlp)."""
    act_name, act = _resolve("mlp", "activation", activation)
    _, out_act = _resolve("mlp", "output_activation", output_activation)
    learned_alpha = act_name == "prelu"
    hidden = len(features) - 1
    names = [f"mlp layer {i} (dense {f})" for i, f in enumerate(features)]

    def init(key: jax.Array, input_shape: Sequence[int]) -> tuple[list, list]:
        params = pure.init(key, input_shape)
        states: list[Any] = []
        for i in range(hidden):
            if batch_norm:
                bn_params, bn_state = batch_norm_init(features[i], dtype)
                params[i] = {**params[i], **bn_params}
                states.append(bn_state)
            else:
                states.append(())
        return params, states

    def apply(params: list, state: list, x: ArrayLike, *, key=None, train: bool = False) -> tuple:
        train = check_train("mlp", train)
        check_part_list("mlp", "params", params, len(features))
        check_part_list("mlp", "state", state, hidden)
        keys = split_key("mlp", key if train and rate else None, max(hidden, 1))
        a = x
        new_state: list[Any] = []
        for i, p in enumerate(params):
            z = dense_apply(p, a, name=names[i])
            if i == hidden:
                return out_act(z), new_state
            if batch_norm:
                z, s = batch_norm_apply(p, state[i], z, train=train, momentum=momentum, eps=1e-5,
                                        name=f"mlp layer {i} (batch norm)")
                new_state.append(s)
            else:
                new_state.append(state[i])
            a = act(z, p["alpha"]) if learned_alpha else act(z)
            a = dropout_apply(a, rate, keys[i], train, name=f"mlp layer {i} (dropout)")
        raise AssertionError("unreachable: params holds len(features) >= 1 layers (checked above)")

    return StatefulLayer(init, apply)

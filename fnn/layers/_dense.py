"""Dense and PReLU layers (part of :mod:`fnn.layers`)."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from fnn import _checks
from fnn.layers._core import Layer, compiles_exactly, example_shape
from fnn.layers._registry import named
from fnn._cache import same_object_for_same_arguments
from fnn import activations as _activations
from fnn import initializers as _initializers

__all__ = ["dense", "dense_apply", "prelu", "check_dense_params"]

Params = Any


def check_dense_params(fn: str, params: Any, *, kernel: bool = True) -> None:
    """``params`` must be ``{"w": (in, out), "b": (out,)}`` (static facts only).

    With ``kernel=False`` only the dict and its keys are checked (a model checks the
    structure under its own name, each layer the shapes under the layer's name).
    """
    if not isinstance(params, Mapping):
        _checks.fail(fn, "params", "be a dict with a kernel 'w' and a bias 'b'", _checks.describe(params),
                     TypeError)
    missing = [k for k in ("w", "b") if k not in params]
    if missing:
        _checks.fail(fn, "params", "be a dict with a kernel 'w' and a bias 'b'",
                     f"keys {sorted(map(str, params))} (missing {', '.join(map(repr, missing))})")
    if not kernel:
        return
    w, b = params["w"], params["b"]
    if jnp.ndim(w) != 2:
        _checks.fail(fn, "params", "hold a 2-D kernel w of shape (in, out)", f"w of shape {jnp.shape(w)}")
    if jnp.shape(b) != (jnp.shape(w)[1],):
        _checks.fail(fn, "params", f"hold a bias b of shape ({jnp.shape(w)[1]},) for the kernel w of shape "
                     f"{tuple(jnp.shape(w))}", f"b of shape {tuple(jnp.shape(b))}")


@same_object_for_same_arguments
def dense(features: int, *, w_init: Callable | None = None, b_init: Callable = _initializers.zeros,
          dtype=jnp.float32) -> Layer:
    r"""Fully connected layer: the net sum of every neuron at once.

    Each of the ``features`` neurons multiplies every input by its weight, adds the
    products and its bias (the perceptron's "net sum"):

    .. math:: z = x W + b, \qquad z_j = \sum_i x_i W_{ij} + b_j

    Params: ``{"w": (in, features), "b": (features,)}`` where ``in = input_shape[-1]``.
    The kernel is ``(in, out)`` (PyTorch stores ``(out, in)`` and computes ``x W^T``).

    Args:
      features: number of output units.
      w_init: kernel initializer, default :func:`fnn.initializers.glorot_uniform`.
      b_init: bias initializer, default zeros.
      dtype: dtype of the params made by ``init``.

    Returns:
      A :class:`Layer`. ``apply(params, x)`` takes ``x`` of shape ``(..., in)`` and
      returns ``(..., features)`` in the promoted dtype of ``x`` and the params.

    Raises:
      ValueError: from ``apply`` when ``x.shape[-1]`` does not equal ``in``, naming the
        layer and both shapes (at trace time, before any XLA error).

    Example:
      >>> import jax, jax.numpy as jnp, fnn
      >>> layer = fnn.dense(3)
      >>> params = layer.init(jax.random.key(0), (2,))
      >>> jax.tree.map(jnp.shape, params)
      {'b': (3,), 'w': (2, 3)}
      >>> layer.apply(params, jnp.ones((5, 2))).shape
      (5, 3)
    """
    features = _checks.positive_int("dense", "features", features)
    w_init = _initializers.glorot_uniform() if w_init is None else w_init
    name = f"dense({features})"

    def init_impl(key: jax.Array, shape: tuple[int, ...]) -> Params:
        w_key, b_key = jax.random.split(key)
        return {"w": w_init(w_key, (shape[-1], features), dtype),
                "b": b_init(b_key, (features,), dtype)}

    # One compiled program per input shape instead of a dozen eager ops, each compiled
    # separately on first use; the checks run before, in Python.
    compiled_init = jax.jit(init_impl, static_argnums=1)

    def init(key: jax.Array, input_shape: Sequence[int]) -> Params:
        _checks.prng_key(name, "key", key)
        shape = example_shape(name, input_shape)
        return (compiled_init if compiles_exactly(dtype) else init_impl)(key, shape)

    def apply(params: Params, x: ArrayLike) -> jax.Array:
        return dense_apply(params, x, name=name)

    return named(Layer(init, apply), name)


def dense_apply(params: Params, x: ArrayLike, *, name: str = "dense") -> jax.Array:
    """``x @ params["w"] + params["b"]`` with the input-size check (used by models)."""
    check_dense_params(name, params)
    _checks.array_like(name, "x", x)
    w, b = params["w"], params["b"]
    if jnp.ndim(x) < 1 or jnp.shape(x)[-1] != w.shape[0]:
        _checks.fail(name, "x", f"have last dimension {w.shape[0]} to match the kernel w of shape "
                     f"{tuple(w.shape)}", f"x of shape {tuple(jnp.shape(x))}")
    return jnp.asarray(x) @ w + b


@same_object_for_same_arguments
def prelu(init_alpha: float = 0.25, *, dtype=jnp.float32) -> Layer:
    r"""PReLU layer: :func:`fnn.activations.prelu` with a learnable scalar slope.

    .. math:: f(x) = x \text{ if } x \ge 0 \text{ else } \alpha x, \qquad
              \frac{\partial f}{\partial \alpha} = 0 \text{ if } x \ge 0 \text{ else } x

    Params: ``{"alpha": ()}``, initialised to ``init_alpha`` (0.25, as in He et al. and
    PyTorch). One slope shared by all units, as PyTorch's default ``num_parameters=1``.

    Example:
      >>> import jax, jax.numpy as jnp, fnn
      >>> layer = fnn.layers.prelu()
      >>> params = layer.init(jax.random.key(0), (3,))
      >>> layer.apply(params, jnp.array([-4.0, 0.0, 4.0]))
      Array([-1.,  0.,  4.], dtype=float32)
    """
    _checks.number("prelu", "init_alpha", init_alpha)

    def init(key: jax.Array, input_shape: Sequence[int]) -> Params:
        del key
        example_shape("prelu", input_shape)
        return {"alpha": jnp.asarray(init_alpha, dtype)}

    def apply(params: Params, x: ArrayLike) -> jax.Array:
        if not isinstance(params, Mapping) or "alpha" not in params:
            _checks.fail("prelu", "params", "be a dict with the slope 'alpha'", _checks.describe(params),
                         TypeError if not isinstance(params, Mapping) else ValueError)
        return _activations.prelu(x, params["alpha"])

    return Layer(init, apply)

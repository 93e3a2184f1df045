r"""A trained model's forward pass as a portable StableHLO file, via :mod:`jax.export`.

:func:`export` traces ``model.apply`` with the trained params baked in as constants and
a symbolic batch dimension, and writes the serialised :class:`jax.export.Exported`: a
file that plain JAX runs for any batch size, with no fnn (nor the model's Python code)
installed. Reloading is three lines of JAX, which :func:`load` spells out::

    import jax
    with open("model.jaxexport", "rb") as f:
        forward = jax.export.deserialize(bytearray(f.read())).call
    predictions = forward(x)          # x: (batch, *input_shape), any batch

The file holds the program for the platforms it was exported for (by default the
current one; pass ``platforms=("cpu", "cuda")`` to run it on both). ``fnn.export`` at
the top level is the function :func:`export`; the module's :func:`load` is imported as
``from fnn.export import load``.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp

from fnn._checkpoint_format import atomic_write
from fnn._checks import describe, fail, positive_int
from fnn.layers import StatefulLayer

__all__ = ["export", "load"]


def export(model: Any, params: Any, input_shape: Sequence[int], path: str | os.PathLike | None = None, *,
           state: Any = None, dtype: Any = jnp.float32,
           platforms: Sequence[str] | None = None) -> jax.export.Exported:
    r"""Serialise ``model``'s forward pass at ``params`` with :func:`jax.export.export`.

    The exported function is :math:`x \mapsto \text{apply}(\theta, x)` for a batch
    :math:`x` of shape ``(b, *input_shape)`` with a symbolic ``b``: one program serves
    every batch size. The params :math:`\theta` (and a stateful model's ``state``, used
    in inference mode, ``train=False``) are constants inside it.

    Args:
      model: a :class:`fnn.layers.Layer`, a :class:`fnn.layers.StatefulLayer` or a
        function ``apply(params, x)``.
      params: the trained params.
      input_shape: the shape of ONE example, without the batch axis (as for ``init``).
      path: where to write the serialised bytes (atomically); ``None`` writes nothing.
      state: a :class:`~fnn.layers.StatefulLayer`'s state (batch norm's running
        averages); required for one.
      dtype: the input's dtype (``jnp.int32`` for an embedding model).
      platforms: lowering platforms, e.g. ``("cpu", "cuda")``; default the current one.

    Returns:
      The :class:`jax.export.Exported` (``.call(x)`` runs it; ``.serialize()`` gives the
      bytes written to ``path``).

    Raises:
      ValueError: ``input_shape`` is not a tuple of positive ints, or ``state`` is missing
        for a stateful model.
      TypeError: ``model`` is not a layer or callable, ``path`` not a path.

    Example:
      >>> import os, tempfile, jax, jax.numpy as jnp, fnn
      >>> model = fnn.mlp([8, 3])
      >>> params = model.init(jax.random.key(0), (4,))
      >>> f = os.path.join(tempfile.mkdtemp(), "mlp.jaxexport")
      >>> exported = fnn.export(model, params, (4,), f)
      >>> from fnn.export import load
      >>> x = jnp.ones((5, 4))
      >>> bool(jnp.allclose(load(f)(x), model.apply(params, x), atol=1e-6))
      True
    """
    fn = "export"
    if not isinstance(input_shape, (tuple, list)):
        fail(fn, "input_shape", "be a tuple of positive ints (one example's shape)", describe(input_shape))
    shape = tuple(positive_int(fn, "input_shape", d) for d in input_shape)
    if path is not None and not isinstance(path, (str, os.PathLike)):
        fail(fn, "path", "be a str, os.PathLike or None", describe(path), TypeError)
    forward = _forward(model, params, state)
    (batch,) = jax.export.symbolic_shape("batch")
    spec = jax.ShapeDtypeStruct((batch, *shape), dtype)
    exported = jax.export.export(jax.jit(forward), platforms=platforms)(spec)
    if path is not None:
        atomic_write(os.fspath(path), [bytes(exported.serialize())])
    return exported


def _forward(model: Any, params: Any, state: Any) -> Callable[[jax.Array], jax.Array]:
    if isinstance(model, StatefulLayer):
        if state is None:
            fail("export", "state", "be the model's state (from init) for a StatefulLayer", "None")
        return lambda x: model.apply(params, state, x, train=False)[0]
    apply = getattr(model, "apply", model)
    if not callable(apply):
        fail("export", "model", "be a Layer, a StatefulLayer or apply(params, x)", describe(model), TypeError)
    return lambda x: apply(params, x)


def load(path: str | os.PathLike) -> Callable[..., Any]:
    r"""The forward function saved by :func:`export`, needing only JAX.

    This is the recipe of the module docstring; it imports nothing from fnn's models, so
    a deployment may copy its three lines instead of installing fnn.

    Args:
      path: a file written by :func:`export`.

    Returns:
      ``forward(x)`` for ``x`` of shape ``(batch, *input_shape)`` and the exported dtype.

    Example:
      >>> import os, tempfile, jax, jax.numpy as jnp, fnn
      >>> f = os.path.join(tempfile.mkdtemp(), "id.jaxexport")
      >>> _ = fnn.export(lambda params, x: 2 * x, None, (2,), f)
      >>> load(f)(jnp.ones((3, 2))).tolist()
      [[2.0, 2.0], [2.0, 2.0], [2.0, 2.0]]
    """
    with open(path, "rb") as f:
        return jax.export.deserialize(bytearray(f.read())).call

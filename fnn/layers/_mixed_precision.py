r"""Mixed precision: a layer computed in bfloat16 with float32 params (part of :mod:`fnn.layers`)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from fnn import _checks
from fnn._cache import same_object_for_same_arguments
from fnn.layers._core import Layer, StatefulLayer, as_layer
from fnn.layers._registry import named

__all__ = ["mixed_precision"]


def _cast(tree: Any, dtype: Any) -> Any:
    """Floating leaves of ``tree`` cast to ``dtype``; integer leaves (ids, counts) kept."""
    return jax.tree.map(lambda a: a.astype(dtype) if jnp.issubdtype(jnp.result_type(a), jnp.floating)
                        else a, tree)


def _output_dtype(params: Any, x: Any) -> Any:
    leaves = [a for a in jax.tree.leaves(params) if jnp.issubdtype(jnp.result_type(a), jnp.floating)]
    return jnp.result_type(leaves[0]) if leaves else jnp.result_type(x)


@same_object_for_same_arguments
def mixed_precision(layer: Any, compute_dtype: Any = jnp.bfloat16) -> Layer | StatefulLayer:
    r"""Run ``layer`` in ``compute_dtype`` while its params stay in their own dtype.

    Inside ``apply`` the floating params and inputs are cast to ``compute_dtype``, the
    layer runs there (bfloat16 halves the memory traffic and uses the fast matrix units
    of accelerators), and the output is cast back to the params' dtype:

    .. math:: y = \text{cast}_{p}\big(f(\text{cast}_{c}(\theta), \text{cast}_{c}(x))\big)

    with :math:`c` = ``compute_dtype`` and :math:`p` the dtype of the params (of ``x``
    when the layer has none). Because the casts are inside ``apply``, ``jax.grad`` returns
    gradients in the params' dtype (float32), so the optimizer state and updates stay
    float32 too. The loss is the caller's: ``fnn.fit``'s losses receive the float32
    output, so the log-softmax and the mean over the batch run in float32. State (batch
    norm's running averages) is passed as it is and returned in its own dtypes; integer
    inputs (embedding ids) are not cast.

    Args:
      layer: a :class:`Layer`, :class:`StatefulLayer` or a callable.
      compute_dtype: a floating dtype, default ``jnp.bfloat16``.

    Example:
      >>> import jax, jax.numpy as jnp, fnn
      >>> net = fnn.layers.mixed_precision(fnn.mlp([16, 3]))
      >>> params = net.init(jax.random.key(0), (4,))
      >>> jax.tree.leaves(params)[0].dtype, net.apply(params, jnp.ones((2, 4))).dtype
      (dtype('float32'), dtype('float32'))
    """
    try:
        compute_dtype = jnp.dtype(compute_dtype)
    except TypeError:
        compute_dtype = None
    if compute_dtype is None or not jnp.issubdtype(compute_dtype, jnp.floating):
        _checks.fail("mixed_precision", "compute_dtype", "be a floating dtype such as jnp.bfloat16",
                     repr(compute_dtype), TypeError)
    part = as_layer("mixed_precision", 0, layer)
    name = f"mixed_precision({compute_dtype.name})"

    if isinstance(part, StatefulLayer):
        def apply_general(params: Any, state: Any, x: ArrayLike, *, key: Any = None,
                          train: bool = False) -> tuple[Any, Any]:
            out_dtype = _output_dtype(params, x)
            y, new_state = part.apply(_cast(params, compute_dtype), state, _cast(x, compute_dtype),
                                      key=key, train=train)
            new_state = jax.tree.map(lambda new, old: new.astype(jnp.result_type(old)), new_state, state)
            return _cast(y, out_dtype), new_state

        return named(StatefulLayer(part.init, apply_general), name, (layer,), "wrap")

    def apply(params: Any, x: ArrayLike) -> Any:
        out_dtype = _output_dtype(params, x)
        return _cast(part.apply(_cast(params, compute_dtype), _cast(x, compute_dtype)), out_dtype)

    return named(Layer(part.init, apply), name, (layer,), "wrap")

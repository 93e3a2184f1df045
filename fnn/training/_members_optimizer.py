r"""A sweep's optimizers when ``make_optimizer`` cannot take traced values.

:func:`fnn.training.fit_sweep` calls ``make_optimizer(h)`` inside ``vmap``, so ``h`` is
traced. Most rates and schedules accept that, but some optax schedules branch in Python
on their arguments while being built (``warmup_cosine_decay_schedule`` tests
``peak_value == 0``, ``exponential_decay`` tests ``decay_rate == 0``,
``cosine_decay_schedule`` tests ``decay_steps > 0``; a number of steps is an int that
must be concrete). For those the ``K`` optimizers are built on the host, one per
concrete value, and member :math:`k` runs optimizer :math:`k` through ``lax.switch`` on
its index:

.. math:: (u_k, s_k') = \text{switch}(k, [o_1, \dots, o_K]).\text{update}(g_k, s_k, w_k)

The values are those of ``make_optimizer(h_k)``; the cost is that under ``vmap`` a
switch on a batched index runs every branch and selects, so each member computes all
``K`` optimizer updates (the optimizer's share of a step grows ``K``-fold, the model's
forward and backward passes do not).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fnn.training._step import extra_args

__all__ = ["traces", "per_member"]

# What a tracer raises where a Python value was needed (bool(), int(), np.asarray()).
_CONCRETE_ERRORS = (jax.errors.ConcretizationTypeError, jax.errors.TracerIntegerConversionError,
                    jax.errors.TracerArrayConversionError)


def traces(make_optimizer: Callable, hyper: Any, params: Any) -> bool:
    """True when ``vmap(make_optimizer)`` over ``hyper`` builds, inits and updates one
    member's ``params`` (abstractly: nothing is computed)."""
    def probe(h, p):
        optimizer = make_optimizer(h)
        state = optimizer.init(p)
        value_fn = lambda q: jnp.zeros((), jnp.float32)  # noqa: E731
        return optimizer.update(p, state, p, **extra_args(optimizer, value_fn(p), p, value_fn))
    try:
        jax.eval_shape(jax.vmap(probe, in_axes=(0, None)), hyper, params)
    except _CONCRETE_ERRORS:
        return False
    return True


def _switched(optimizers: tuple) -> Callable[[jax.Array], optax.GradientTransformationExtraArgs]:
    def make(index: jax.Array) -> optax.GradientTransformationExtraArgs:
        def init(params):
            return jax.lax.switch(index, [o.init for o in optimizers], params)

        def update(grads, state, params=None, **extra):
            def branch(o):
                given = extra_args(o, extra.get("value"), extra.get("grad"), extra.get("value_fn"))
                return lambda g, s, p: o.update(g, s, p, **given)
            return jax.lax.switch(index, [branch(o) for o in optimizers], grads, state, params)
        return optax.GradientTransformationExtraArgs(init, update)
    return make


@functools.lru_cache(maxsize=32)
def _cached(make_optimizer: Callable, treedef: Any, values: tuple) -> Callable:
    members = len(values[0])
    return _switched(tuple(
        make_optimizer(jax.tree.unflatten(treedef, [leaf[k] for leaf in values]))
        for k in range(members)))


def per_member(make_optimizer: Callable, hyper: Any) -> tuple[Callable, jax.Array]:
    """``(make, indices)``: ``make(index)`` is member ``index``'s optimizer, built from its
    concrete hyperparameters; ``indices = arange(K)`` takes the place of ``hyper``.

    Cached on ``make_optimizer`` and the values, so a second sweep with the same ones
    reuses the compiled loop.
    """
    leaves, treedef = jax.tree.flatten(hyper)
    values = tuple(tuple(np.asarray(leaf).tolist()) for leaf in leaves)
    make = _cached(make_optimizer, treedef, values)
    return make, jnp.arange(len(values[0]), dtype=jnp.int32)

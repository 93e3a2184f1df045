"""The keys a general model draws with inside :func:`fnn.fit`: one per global step."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from fnn import _checks

__all__ = ["step_key", "model_keys", "MODEL_KEY_STREAM"]


# fold_in data of the stream of model keys; epoch orders use fold_in(key, epoch) with
# epoch < 2^31, so the two streams never share a key.
MODEL_KEY_STREAM = 0xFFFFFFFF


def step_key(key: jax.Array, step: int | jax.Array, member: int | jax.Array | None = None) -> jax.Array:
    r"""The key that a general model draws with at global step ``step`` of :func:`fnn.fit`.

    .. math:: k_t = \text{fold\_in}(\text{fold\_in}(k, 2^{32} - 1), t), \qquad
              k_{t,j} = \text{fold\_in}(k_t, j) \;\text{(ensemble member } j)

    with :math:`k` fit's ``key`` and :math:`t = e \cdot S + i` the step's index over the
    whole run (epoch :math:`e`, :math:`S` steps per epoch, batch :math:`i`): a function
    of the run's key and the step alone, so it does not depend on the data order, a
    resumed run draws exactly what the uninterrupted run draws, and every member of an
    ensemble or sweep draws its own masks.

    Example:
      >>> import jax, fnn
      >>> k = fnn.training.step_key(jax.random.key(0), 3)
      >>> bool((jax.random.key_data(k) == jax.random.key_data(fnn.training.step_key(jax.random.key(0), 3))).all())
      True
    """
    _checks.prng_key("step_key", "key", key)
    k = jax.random.fold_in(jax.random.fold_in(key, jnp.uint32(MODEL_KEY_STREAM)), step)
    return k if member is None else jax.random.fold_in(k, member)


def model_keys(general: bool, members: int | None, key: jax.Array, steps: jax.Array) -> jax.Array | None:
    """The key(s) of a step (or of a vector of steps, on the last axis): none for a pure
    model, one per member (first axis) for ensembles."""
    if not general:
        return None     # no key is derived: a pure model's program is as it was
    if jnp.ndim(steps) > 0:
        return jax.vmap(lambda t: model_keys(general, members, key, t),
                        out_axes=0 if members is None else 1)(steps)
    if members is None:
        return step_key(key, steps)
    return jax.vmap(lambda j: step_key(key, steps, j))(jnp.arange(members, dtype=jnp.uint32))

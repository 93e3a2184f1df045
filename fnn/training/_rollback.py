"""The non-finite guard's rollback: the last good state, rebuilt only when needed.

Keeping a snapshot of params and optimizer state inside the compiled loop would copy
the whole state every epoch (its measured cost: benchmarks/README.md). Instead the guarded runner does not donate its input, so the driver
still holds the state each call started from; when a model fails at epoch ``e`` the
driver runs the same program again from that state up to ``e`` (and to ``e + 1`` to see
which leaf failed). A fixed program on fixed inputs computes the same values, so this
rebuilds the state from before the failing epoch; the cost is paid only on failure.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn.training._loop import LoopState

Params = Any


class LastGood(NamedTuple):
    """``(params, opt_state, model_state)`` from before the failing epoch of every failed model."""

    params: Params
    opt_state: Any
    model_state: Any
    frozen: np.ndarray        # bool, () or (members,): the models these values are for
    leaves: dict              # member (None: single model) -> first non-finite leaf path


def _per_member(mask: np.ndarray, new: Any, old: Any) -> Any:
    def pick(a, b):
        return jnp.where(mask.reshape(mask.shape + (1,) * (a.ndim - 1)), a, b)
    return jax.tree.map(pick, new, old)


def first_nonfinite_leaf(params: Params, member: int | None = None) -> str | None:
    """The pytree path of the first leaf of ``params`` (member ``member``'s) with a non-finite value."""
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        value = np.asarray(leaf if member is None else leaf[member])
        if not np.all(np.isfinite(value)):
            return jax.tree_util.keystr(path)
    return None


def update(rerun: Callable[[LoopState, int], LoopState], before: LoopState,
           after: LoopState, good: LastGood | None) -> LastGood | None:
    """Add the models that failed between ``before`` and ``after`` to ``good``.

    ``rerun(state, stop)`` runs the (non-donating) loop from ``state`` up to epoch ``stop``.
    """
    was, now, bad_epoch, start, end = jax.device_get(
        (before.alive, after.alive, after.bad_epoch, before.epoch, after.epoch))
    newly = np.asarray(was) & ~np.asarray(now)
    if not newly.any():
        return good
    bad_epoch = np.asarray(bad_epoch)
    for epoch in sorted({int(e) for e in np.atleast_1d(bad_epoch[newly])}):
        state = before if epoch == int(start) else rerun(before, epoch)
        failed = after if epoch + 1 == int(end) else rerun(state, epoch + 1)
        mask = newly & (bad_epoch == epoch)
        leaves: dict[int | None, str | None]
        if mask.ndim == 0:
            leaves = {None: first_nonfinite_leaf(failed.params, None)}
        else:
            leaves = {int(k): first_nonfinite_leaf(failed.params, int(k))
                      for k in np.flatnonzero(mask)}
        if good is None or mask.ndim == 0:
            good = LastGood(state.params, state.opt_state, state.model_state, mask, leaves)
        else:
            good = LastGood(_per_member(mask, state.params, good.params),
                            _per_member(mask, state.opt_state, good.opt_state),
                            _per_member(mask, state.model_state, good.model_state),
                            good.frozen | mask, {**good.leaves, **leaves})
    return good


def apply(state: LoopState, good: LastGood | None) -> LoopState:
    """``state`` with each failed model's params, optimizer and model state from ``good``."""
    if good is None:
        return state
    if good.frozen.ndim == 0:
        return state._replace(params=good.params, opt_state=good.opt_state,
                              model_state=good.model_state)
    return state._replace(params=_per_member(good.frozen, good.params, state.params),
                          opt_state=_per_member(good.frozen, good.opt_state, state.opt_state),
                          model_state=_per_member(good.frozen, good.model_state, state.model_state))

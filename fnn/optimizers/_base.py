"""The optimizer interface, ``apply_updates`` and the pieces every optimizer shares."""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, NamedTuple, Union

import jax
import jax.numpy as jnp
import numpy as np

from fnn import _checks, _tree

Params = Any
Updates = Any
OptState = Any
Schedule = Callable[[jax.Array], jax.typing.ArrayLike]
ScalarOrSchedule = Union[float, jax.typing.ArrayLike, Schedule]


class GradientTransformation(NamedTuple):
    r"""An optimizer as a pair of pure functions, the shape of ``optax.GradientTransformation``.

    Attributes:
      init: ``init(params) -> state``; the state is a NamedTuple of arrays whose fields
        carry optax's names (``count``, ``mu``, ``nu``, ``trace``, ``sum_of_squares``).
      update: ``update(grads, state, params=None) -> (updates, state)``; ``updates``
        has ``grads``' structure and is *added* to the params by :func:`apply_updates`
        (the minus sign of gradient descent is already inside it).

    Being a plain ``(init, update)`` NamedTuple, an fnn optimizer is accepted by
    ``optax.chain`` and the optax wrappers, and an ``optax.GradientTransformation`` is
    accepted wherever fnn takes an optimizer.
    """

    init: Callable[[Params], OptState]
    update: Callable[..., tuple[Updates, OptState]]


def apply_updates(params: Params, updates: Updates) -> Params:
    r"""Add updates to params, leaf by leaf, keeping each param's dtype.

    .. math::
        w_t = w_{t-1} + u_t

    where :math:`u_t` is what an optimizer's ``update`` returned (for SGD,
    :math:`u_t = -\eta\, \partial L / \partial w_{t-1}`, the lecture notes' rule).

    Args:
      params: a pytree of arrays (any float dtype).
      updates: a pytree with ``params``' structure and shapes.

    Returns:
      ``params + updates`` with each leaf cast back to its param's dtype, so bfloat16
      params stay bfloat16 even when an update was computed in float32. ``None`` leaves
      in ``params`` stay ``None``. Identical to ``optax.apply_updates``.

    Raises:
      ValueError: if ``updates`` does not have ``params``' structure, or a leaf's shape
        differs (optax would broadcast and silently change the param's shape).

    Example:
      >>> import jax.numpy as jnp
      >>> from fnn.optimizers import apply_updates
      >>> apply_updates({"w": jnp.array([1.0, 2.0])}, {"w": jnp.array([-0.5, 0.5])})
      {'w': Array([0.5, 2.5], dtype=float32)}
    """
    is_none = lambda x: x is None  # noqa: E731
    paths_params, treedef = jax.tree_util.tree_flatten_with_path(params, is_leaf=is_none)
    try:
        leaves = treedef.flatten_up_to(updates)
    except (TypeError, ValueError):
        _checks.fail("apply_updates", "updates", f"have the structure of params {treedef}",
                     jax.tree.structure(updates, is_leaf=is_none))
    for (path, p), u in zip(paths_params, leaves):
        if p is not None and jnp.shape(p) != jnp.shape(u):
            _checks.fail("apply_updates", "updates", "have the shape of each param",
                         f"shape {jnp.shape(u)} for params{jax.tree_util.keystr(path)} "
                         f"of shape {jnp.shape(p)}")
    return jax.tree.map(
        lambda p, u: None if p is None else jnp.asarray(p + u).astype(jnp.asarray(p).dtype),
        params, updates, is_leaf=is_none)


def safe_increment(count: jax.Array) -> jax.Array:
    """``count + 1``, saturating at the int32 maximum instead of wrapping (as optax)."""
    max_value = jnp.array(jnp.iinfo(count.dtype).max, count.dtype)
    return jnp.where(count < max_value, count + jnp.array(1, count.dtype), max_value)


def init_count() -> jax.Array:
    return jnp.zeros([], jnp.int32)


@functools.partial(jax.jit, inline=True)
def bias_correction(decay: Any, count: jax.Array) -> jax.Array:
    """``1 - decay**count`` in the default float dtype (float32, or float64 under x64).

    Jitted like optax's ``tree_bias_correction``: XLA's fused ``pow`` and its op-by-op
    ``pow`` differ in the last bits, and the cancellation in ``1 - 0.999**t`` magnifies
    that to 1e-5; compiling it as one unit keeps eager runs equal to jitted ones and to
    optax. ``inline=True`` makes it free inside an outer ``jit``.
    """
    return 1 - decay ** count


def learning_rate_at(fn: str, learning_rate: ScalarOrSchedule, count: jax.Array) -> Any:
    """The rate for the update that ``count`` updates have preceded (``schedule(0)`` first).

    A schedule's value is checked where it is first known, at trace time: a real scalar
    (a number or a 0-d real array, traced or not), not a string, a vector or a complex.
    """
    if not callable(learning_rate):
        return learning_rate
    lr = learning_rate(count)
    got = f"{_checks.describe(lr)} from schedule({_checks.describe(count)})"
    try:
        dtype = None if isinstance(lr, (str, bytes)) else jnp.result_type(lr)
    except TypeError:
        dtype = None
    if (dtype is None or not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer))
            or np.ndim(lr) != 0):
        _checks.fail(fn, "learning_rate", "be a schedule returning a real scalar", got, TypeError)
    return lr


def scale_by_learning_rate(lr: Any, u: jax.Array) -> jax.Array:
    r"""``-lr * u``, ``-lr`` rounded to ``u``'s dtype first (``optax.scale_by_learning_rate``).

    Negation is exact and rounding is symmetric, so this is bitwise optax's product for a
    Python-float rate and for a schedule. For a rate that is a traced float32 array
    (a ``vmap`` sweep) with bfloat16 params, optax would multiply in float32 and return
    float32 updates; fnn keeps the update in the param dtype.
    """
    return jnp.asarray(-lr, dtype=u.dtype) * u


def accumulating(fn: str, state_type: type, init_value: float,
                 rule: Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array]],
                 learning_rate: ScalarOrSchedule, *, eps: Any = None) -> GradientTransformation:
    """An optimizer whose state is ``count`` and one accumulator per leaf.

    ``state_type`` is a NamedTuple ``(count, <accumulator>)``; the accumulator starts at
    ``init_value`` in each param's shape and dtype. ``rule(g, acc) -> (direction, acc)``
    is the per-leaf update rule, and the update is ``-lr * direction``. An ``eps`` given
    here is checked at ``init`` not to round to 0 in the params' dtypes.
    """

    def init(params):
        check_params(fn, params)
        if eps is not None:
            check_eps_fits(fn, eps, params)
        return state_type(init_count(), _tree.full_like(params, init_value))

    def update(grads, state, params=None):
        del params
        count, accumulator = check_state(fn, state, state_type)
        check_update_args(fn, grads, accumulator)
        lr = learning_rate_at(fn, learning_rate, count)

        def leaf(g, acc):
            direction, acc = rule(g, acc)
            return scale_by_learning_rate(lr, direction), acc

        updates, accumulator = _tree.map_unzip(leaf, grads, accumulator, n_out=2)
        return updates, state_type(safe_increment(count), accumulator)

    return GradientTransformation(init, update)


def check_params(fn: str, params: Params) -> None:
    """Every leaf of ``params`` must be a floating-point array."""
    for leaf in jax.tree.leaves(params):
        _checks.floating(fn, "params", leaf)


def check_update_args(fn: str, grads: Any, like: Any) -> None:
    """``grads`` must have the structure and shapes of the params given to ``init``.

    ``like`` is a state tree built from those params (``mu``, ``trace``...). Without the
    shape check a gradient of shape ``(k, *shape)`` would broadcast against the state
    and silently grow it; other wrong shapes would fail deep inside ``jnp``.
    """
    check_like_init(fn, "grads", grads, like)
    check_grads_floating(fn, grads)


def check_like_init(fn: str, arg: str, tree: Any, like: Any) -> None:
    """``tree`` must have the structure and leaf shapes of ``like`` (built from init's params)."""
    _tree.check_same_structure(fn, arg, tree, like, "the params given to init")
    for (path, a), m in zip(jax.tree_util.tree_flatten_with_path(tree)[0], jax.tree.leaves(like)):
        if jnp.shape(a) != jnp.shape(m):
            _checks.fail(fn, arg, "have the shapes of the params given to init",
                         f"shape {jnp.shape(a)} at {arg}{jax.tree_util.keystr(path)} where init "
                         f"saw {jnp.shape(m)}")


def check_grads_floating(fn: str, grads: Any) -> None:
    """Integer gradients would make ``-lr * g`` round to 0 in the gradient's dtype."""
    for path, g in jax.tree_util.tree_flatten_with_path(grads)[0]:
        if not jnp.issubdtype(jnp.result_type(g), jnp.floating):
            _checks.fail(fn, "grads", "have a floating dtype",
                         f"dtype {jnp.result_type(g)} at grads{jax.tree_util.keystr(path)}", TypeError)


def check_state(fn: str, state: Any, state_type: type) -> Any:
    """``state`` must be what ``init`` returned; a plain tuple of its fields is accepted.

    Plain tuples are what :func:`fnn.checkpoint.load` gives back for a NamedTuple state
    when no ``like`` is passed.
    """
    if isinstance(state, state_type):
        return state
    if (isinstance(state, tuple) and not hasattr(type(state), "_fields")
            and len(state) == len(getattr(state_type, "_fields"))):
        return state_type(*state)
    _checks.fail(fn, "state", f"be the {state_type.__name__} returned by {fn}(...).init",
                 _checks.describe(state), TypeError)


def check_learning_rate(fn: str, learning_rate: Any) -> None:
    """A non-negative, finite scalar, or a schedule (a callable, checked when called)."""
    if callable(learning_rate):
        return
    _checks.scalar(fn, "learning_rate", learning_rate)
    _checks.number(fn, "learning_rate", learning_rate, low=0, high=math.inf, high_open=True)


def check_hyper(fn: str, arg: str, value: Any, **bounds: Any) -> None:
    """A non-schedule hyperparameter in a range; traced values pass unchecked."""
    if callable(value):
        _checks.fail(fn, arg, "be a number (only learning_rate may be a schedule)",
                     type(value).__name__, TypeError)
    _checks.number(fn, arg, value, **bounds)


def check_decay(fn: str, arg: str, value: Any) -> None:
    """Decay rates (betas) live in [0, 1): at 1 the average never moves off its init."""
    check_hyper(fn, arg, value, low=0, high=1, high_open=True)


def check_eps(fn: str, value: Any) -> None:
    check_hyper(fn, "eps", value, low=0, low_open=True)


def check_eps_fits(fn: str, eps: Any, params: Params) -> None:
    """``eps`` must not round to 0 in any param's dtype (float16 with the default 1e-8).

    Adam divides by ``sqrt(v) + eps`` and RMSProp takes ``rsqrt(nu + eps)``; with eps
    rounded to 0, a zero gradient gives ``0 / 0 = NaN`` (optax included).
    """
    if isinstance(eps, jax.core.Tracer) or not isinstance(eps, (int, float, np.floating)):
        return
    for leaf in jax.tree.leaves(params):
        dtype = jnp.result_type(leaf)
        if jnp.issubdtype(dtype, jnp.floating) and np.asarray(eps, dtype) == 0:
            tiny = float(jnp.finfo(dtype).smallest_subnormal)
            _checks.fail(fn, "eps", f"not round to 0 in the params' dtype {dtype} (a zero "
                         f"gradient would give 0/0 = NaN); use eps >= {tiny:.3g}, e.g. 1e-4",
                         repr(eps))


def check_flag(fn: str, arg: str, value: Any) -> None:
    _checks.boolean(fn, arg, value)


def is_static_zero(value: Any) -> bool:
    """True only for a Python number equal to zero (never for an array or a traced value)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0

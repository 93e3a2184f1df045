r"""Many models in one compiled run: ensembles over init keys, sweeps over hyperparameters.

Members share the data order (one ``key`` shuffles for all), so member ``k`` is exactly
the single :func:`fnn.training.fit` run with the same params, hyperparameters and key.
Sharing the batch is also what makes it fast: under ``vmap`` the first layer
``x @ W_k`` of all K members becomes one wide matmul ``x @ [W_1 ... W_K]``, and its
weight gradient another, instead of K small ones.
"""

from __future__ import annotations

from typing import Any, Callable, cast

import jax
import jax.numpy as jnp

from fnn import _checks
from fnn.losses import softmax_cross_entropy
from fnn.training._arguments import options_from
from fnn.training._fit import train
from fnn.training._members_optimizer import per_member, traces
from fnn.training._resume import initial_params, loaded
from fnn.training._results import FitResult

__all__ = ["init_ensemble", "fit_ensemble", "fit_sweep"]

Params = Any


def init_ensemble(model: Any, keys: jax.Array, input_shape) -> Params:
    """Stacked params of ``len(keys)`` members: ``vmap(model.init)`` over the keys.

    For a :class:`fnn.layers.StatefulLayer` it returns ``(params, state)``, both stacked.

    Example:
      >>> import jax, fnn
      >>> params = fnn.training.init_ensemble(fnn.mlp([4, 2]), jax.random.split(jax.random.key(0), 8), (3,))
      >>> params[0]["w"].shape
      (8, 3, 4)
    """
    init = getattr(model, "init", None)
    if not callable(init):
        _checks.fail("init_ensemble", "model", "be a fnn Layer with an init", type(model).__name__,
                     TypeError)
    dtype = getattr(keys, "dtype", None)
    typed = dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)
    if dtype is None or not (typed and keys.ndim == 1 or dtype == jnp.uint32 and keys.ndim == 2):
        _checks.fail("init_ensemble", "keys", "be a batch of PRNG keys such as "
                     "jax.random.split(key, K)", _checks.describe(keys),
                     TypeError if dtype is None else ValueError)
    if isinstance(input_shape, (str, bytes)) or not hasattr(input_shape, "__iter__"):
        _checks.fail("init_ensemble", "input_shape", "be a tuple of ints (one example's shape)",
                     _checks.describe(input_shape), TypeError)
    shape = tuple(input_shape)
    return jax.vmap(lambda k: init(k, shape))(keys)


def _check_hyperparams(hyperparams: Any) -> Any:
    for leaf in jax.tree.leaves(hyperparams):
        if isinstance(leaf, (str, bytes)) or not (
                isinstance(leaf, (int, float, list, tuple)) or hasattr(leaf, "dtype")):
            _checks.fail("fit_sweep", "hyperparams", "be an array (K,) of numbers or a pytree of them",
                         _checks.describe(leaf), TypeError)
    hyper = jax.tree.map(jnp.asarray, hyperparams)
    for leaf in jax.tree.leaves(hyper):
        if not jnp.issubdtype(leaf.dtype, jnp.number):
            _checks.fail("fit_sweep", "hyperparams", "hold numbers", _checks.describe(leaf), TypeError)
        if leaf.ndim < 1:
            _checks.fail("fit_sweep", "hyperparams", "have a leading member axis, one value per "
                         "model (e.g. jnp.array([1e-3, 1e-2]))", _checks.describe(leaf))
    return hyper


def _members(fn: str, params: Params, arg: str = "params") -> int:
    sizes = {a.shape[0] if a.ndim else None for a in jax.tree.leaves(params)}
    if len(sizes) != 1 or None in sizes:
        _checks.fail(fn, arg, "be stacked: every leaf with the same leading member axis",
                     f"leading sizes {sorted(map(str, sizes))}")
    return cast(int, sizes.pop())  # the one size, not None (checked above)


def _stacked_start(fn: str, params: Params, kwargs: dict) -> tuple[Params, int]:
    """The stacked params (from ``initial=`` when params is None) and their member count;
    a given state must have as many members."""
    if params is None and kwargs.get("initial") is not None:
        kwargs["initial"] = loaded(kwargs["initial"])
        params = initial_params(kwargs["initial"])
    if params is None:
        _checks.fail(fn, "params", "be the stacked params (or pass initial= to resume)", None, TypeError)
    k = _members(fn, params)
    state = kwargs.get("state")
    if state is not None and jax.tree.leaves(state) and _members(fn, state, "state") != k:
        _checks.fail(fn, "state", f"be stacked with {k} members like params",
                     f"{_members(fn, state, 'state')} members")
    return params, k


def fit_ensemble(model: Any, params: Params, optimizer: Any, x: Any, y: Any, *,
                 loss: Callable = softmax_cross_entropy, **kwargs) -> FitResult:
    r"""Train K models at once; ``params`` are stacked on axis 0 (:func:`init_ensemble`).

    Takes every keyword of :func:`fnn.training.fit`. Returns stacked params and
    optimizer state and history of shape ``(K, epochs)``. A member that hits a NaN/inf
    is frozen at its last good params and reported; the others train on. With
    ``K = 1`` the compiled loop runs the single-model step on member 0 (no ``vmap``, whose
    size-1 batch dimension slows every matmul) and gives exactly the values of
    :func:`fit`, with the member axis.

    Example:
      >>> import jax, fnn
      >>> x, y = fnn.datasets.blobs(jax.random.key(0), 128)
      >>> model = fnn.mlp([8, 3])
      >>> params = fnn.training.init_ensemble(model, jax.random.split(jax.random.key(1), 4), (2,))
      >>> r = fnn.training.fit_ensemble(model, params, fnn.optimizers.adam(1e-2), x, y,
      ...                               epochs=5, key=jax.random.key(2), progress=False)
      >>> r.history["train_loss"].shape
      (4, 5)
    """
    params, k = _stacked_start("fit_ensemble", params, kwargs)
    return train("fit_ensemble", model, params, optimizer, x, y,
                 options_from("fit_ensemble", dict(kwargs, loss=loss)), members=k)


def fit_sweep(model: Any, params: Params, make_optimizer: Callable[[Any], Any], hyperparams: Any,
              x: Any, y: Any, *, loss: Callable = softmax_cross_entropy,
              stacked_params: bool = False, **kwargs) -> FitResult:
    r"""Train one model per hyperparameter value, all at once.

    ``make_optimizer(h)`` builds the optimizer for one value ``h`` (it is called inside
    ``vmap``, so ``h`` is traced: use it as a number, e.g. ``lambda lr: adam(lr)``).
    ``hyperparams`` is an array ``(K,)`` or a pytree of ``(K,)`` arrays (e.g.
    ``{"lr": ..., "b1": ...}``). A schedule's parameter sweeps the same way:
    ``lambda lr: adam(optax.cosine_decay_schedule(lr, steps))``. Where ``make_optimizer``
    cannot take a traced ``h`` (optax schedules that test their arguments in Python while
    being built: ``warmup_cosine_decay_schedule``'s ``peak_value``, ``exponential_decay``'s
    ``decay_rate``, a number of steps, which must be an int) the ``K`` optimizers are
    built on the host from the concrete values and each member runs its own through
    ``lax.switch``: the same values, but every member computes all ``K`` optimizer
    updates (the model's forward and backward passes are not repeated).

    ``params`` is one model's params, the start of every member, or with
    ``stacked_params=True`` already stacked ``(K, ...)`` params (a sweep crossed with an
    ensemble); a general model's ``state=`` is broadcast or stacked
    alike. Takes every keyword of :func:`fnn.training.fit`; returns
    stacked results like :func:`fit_ensemble`.

    Example:
      >>> import jax, jax.numpy as jnp, fnn
      >>> x, y = fnn.datasets.blobs(jax.random.key(0), 128)
      >>> model = fnn.mlp([8, 3])
      >>> params = model.init(jax.random.key(1), (2,))
      >>> rates = jnp.array([1e-3, 1e-2, 1e-1])
      >>> r = fnn.training.fit_sweep(model, params, fnn.optimizers.adam, rates, x, y,
      ...                            epochs=5, key=jax.random.key(2), progress=False)
      >>> r.history["train_loss"].shape
      (3, 5)
    """
    if not callable(make_optimizer):
        _checks.fail("fit_sweep", "make_optimizer", "be a function hyperparams -> optimizer",
                     type(make_optimizer).__name__, TypeError)
    hyper = _check_hyperparams(hyperparams)
    k = _members("fit_sweep", hyper)
    for member in range(k):
        # Built once per concrete value so the optimizer's own checks (a negative rate,
        # b1 outside [0, 1)...) run; inside vmap the values are traced and unchecked.
        make_optimizer(jax.tree.map(lambda a: a[member].item(), hyper))
    stacked_params = _checks.boolean("fit_sweep", "stacked_params", stacked_params)
    if params is None and kwargs.get("initial") is not None:
        params, _ = _stacked_start("fit_sweep", params, kwargs)
        stacked_params = True
    if stacked_params:
        if _members("fit_sweep", params) != k:
            _checks.fail("fit_sweep", "params", f"be stacked with {k} members like hyperparams",
                         f"{_members('fit_sweep', params)} members")
    else:
        params = jax.tree.map(lambda a: jnp.broadcast_to(a, (k,) + jnp.shape(a)), params)
        if kwargs.get("state") is not None:
            kwargs["state"] = jax.tree.map(lambda a: jnp.broadcast_to(a, (k,) + jnp.shape(a)),
                                           kwargs["state"])
    if not traces(make_optimizer, hyper, jax.tree.map(lambda a: a[0], params)):
        make_optimizer, hyper = per_member(make_optimizer, hyper)
    return train("fit_sweep", model, params, make_optimizer, x, y,
                 options_from("fit_sweep", dict(kwargs, loss=loss)), members=k, sweep=True, hyper=hyper)

"""Finite-difference gradient checking, leaf by leaf (part of :mod:`fnn.diagnostics`)."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from fnn import _checks


class LeafCheck(NamedTuple):
    """The finite-difference verdict on one parameter leaf (see :func:`check_gradients`)."""

    path: str               #: ``jax.tree_util.keystr`` of the leaf, e.g. ``[0]['w']``
    shape: tuple            #: the leaf's shape
    checked: int            #: number of its elements compared
    max_abs_error: float    #: ``max |g - g_fd|``
    max_rel_error: float    #: ``max |g - g_fd| / max(|g|, |g_fd|)`` over elements above atol
    worst_index: tuple      #: index (in the leaf) of the element furthest out of tolerance
    passed: bool            #: every element within ``atol + rtol * |g_fd|``


class GradientCheck(NamedTuple):
    """Report of :func:`check_gradients`; ``print`` it for a table."""

    leaves: tuple
    passed: bool
    eps: float
    rtol: float
    atol: float

    def __str__(self) -> str:
        rows = [("leaf", "shape", "checked", "max abs err", "max rel err", "worst at", "result")]
        rows += [(c.path, str(c.shape), str(c.checked), f"{c.max_abs_error:.2e}",
                  f"{c.max_rel_error:.2e}", str(c.worst_index), "ok" if c.passed else "FAIL")
                 for c in self.leaves]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [f"gradient check: central differences in float64, eps={self.eps:g}; "
                 f"pass when |g - g_fd| <= {self.atol:g} + {self.rtol:g} |g_fd|"]
        lines += ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                            for i, (cell, w) in enumerate(zip(r, widths))) for r in rows]
        failed = [c.path for c in self.leaves if not c.passed]
        lines.append(f"PASSED: all {len(self.leaves)} leaves agree" if self.passed else
                     f"FAILED: {len(failed)} of {len(self.leaves)} leaves disagree: {', '.join(failed)}")
        return "\n".join(lines)


def _to_float64(tree: Any) -> Any:
    """Cast floating arrays (and Python floats) to float64; leave everything else."""
    def cast(a):
        if isinstance(a, float) or (isinstance(a, (jax.Array, np.ndarray))
                                    and jnp.issubdtype(a.dtype, jnp.floating)):
            return jnp.asarray(a, jnp.float64)
        return a
    return jax.tree.map(cast, tree)


def _split_static(tree: Any) -> tuple[list, Callable[[list], Any]]:
    """The array leaves of ``tree`` and a function rebuilding it from new ones.

    Arrays become arguments of the compiled finite-difference program; anything else
    (a Python flag, a string) stays a constant of it.
    """
    leaves, treedef = jax.tree.flatten(tree)
    is_array = [isinstance(a, (jax.Array, np.ndarray)) for a in leaves]

    def rebuild(arrays: list) -> Any:
        it = iter(arrays)
        return treedef.unflatten([next(it) if flag else a for a, flag in zip(leaves, is_array)])

    return [a for a, flag in zip(leaves, is_array) if flag], rebuild


def check_gradients(fn: Callable[..., jax.Array], params: Any, *args: Any,
                    grad_fn: Callable[..., Any] | None = None, eps: float = 1e-6,
                    rtol: float = 1e-5, atol: float = 1e-8,
                    max_elements: int | None = None) -> GradientCheck:
    r"""Compare a gradient with central finite differences, leaf by leaf, in float64.

    For every element :math:`\theta_i` of every leaf of ``params``:

    .. math:: g^{fd}_i = \frac{f(\theta + \epsilon e_i) - f(\theta - \epsilon e_i)}{2\epsilon},
              \qquad \text{pass} \iff |g_i - g^{fd}_i| \le \text{atol} + \text{rtol}\,|g^{fd}_i|

    with :math:`g` the analytic gradient: ``jax.grad(fn)`` or your ``grad_fn`` (a
    hand-written backward pass, a ``custom_vjp``). Everything runs in float64 (inside
    ``jax.enable_x64``; floating leaves of ``params`` and ``args`` are cast), where the
    central difference is accurate to about :math:`\epsilon^2 + 10^{-16}/\epsilon`.
    A kink (ReLU at 0) within :math:`\epsilon` of an element makes that element fail
    honestly: the function is not differentiable there.

    Args:
      fn: ``fn(params, *args) -> scalar``, traceable by JAX.
      params: pytree of floating arrays (the leaves checked).
      *args: further arguments of ``fn`` (data, labels), held fixed.
      grad_fn: ``grad_fn(params, *args) -> grads`` with ``params``' structure; default
        ``jax.grad(fn)``.
      eps: the finite-difference step :math:`\epsilon`.
      rtol, atol: the tolerances above (defaults suit losses of order 1).
      max_elements: check at most this many evenly spaced elements per leaf (each costs
        two evaluations of ``fn``); ``None`` checks all.

    Returns:
      :class:`GradientCheck`: ``passed`` and one :class:`LeafCheck` per leaf, in
      ``jax.tree_util`` order; ``str()`` is a readable table.

    Raises:
      TypeError: if ``fn`` or ``grad_fn`` is not callable, ``params`` holds no array,
        or a leaf of ``params`` is not floating.
      ValueError: if ``fn`` does not return a scalar, ``grad_fn``'s result does not have
        ``params``' structure and shapes, or ``eps``/``rtol``/``atol``/``max_elements`` are out of range.

    Example:
      >>> import jax, jax.numpy as jnp, fnn
      >>> model = fnn.mlp([4, 1], activation="tanh")
      >>> params = model.init(jax.random.key(0), (3,))
      >>> loss = lambda p, x, y: fnn.losses.mse(model.apply(p, x), y)
      >>> report = fnn.diagnostics.check_gradients(loss, params, jnp.ones((5, 3)), jnp.zeros((5, 1)))
      >>> report.passed, [c.path for c in report.leaves]
      (True, ["[0]['b']", "[0]['w']", "[1]['b']", "[1]['w']"])
    """
    name = "check_gradients"
    if not callable(fn):
        _checks.fail(name, "fn", "be a callable fn(params, *args) -> scalar", _checks.describe(fn), TypeError)
    if grad_fn is not None and not callable(grad_fn):
        _checks.fail(name, "grad_fn", "be a callable grad_fn(params, *args) -> grads or None",
                     _checks.describe(grad_fn), TypeError)
    if not jax.tree.leaves(params):
        _checks.fail(name, "params", "be a pytree with at least one floating array to check",
                     _checks.describe(params), TypeError)
    _checks.number(name, "eps", eps, low=0, low_open=True)
    _checks.number(name, "rtol", rtol, low=0)
    _checks.number(name, "atol", atol, low=0)
    if max_elements is not None:
        max_elements = _checks.positive_int(name, "max_elements", max_elements)
    paths_leaves, _ = jax.tree_util.tree_flatten_with_path(params)
    for path, leaf in paths_leaves:
        if not jnp.issubdtype(jnp.result_type(leaf), jnp.floating):
            _checks.fail(name, f"params{jax.tree_util.keystr(path)}", "be floating to be checked",
                         _checks.describe(leaf), TypeError)
    with jax.enable_x64(True):
        params64, args64 = _to_float64(params), _to_float64(args)
        arrays, rebuild = _split_static(args64)
        value = jax.eval_shape(lambda p, arrays: fn(p, *rebuild(arrays)), params64, arrays)
        if getattr(value, "shape", None) != ():
            _checks.fail(name, "fn", "return a scalar", getattr(value, "shape", type(value).__name__))
        analytic_grad = grad_fn or jax.grad(fn)
        # Compiled: one compilation instead of one per eager op of a deep backward pass.
        grads = jax.jit(lambda p, arrays: analytic_grad(p, *rebuild(arrays)))(params64, arrays)
        if jax.tree.structure(grads) != jax.tree.structure(params64):
            _checks.fail(name, "grad_fn", f"return params' structure {jax.tree.structure(params64)}",
                         jax.tree.structure(grads))
        for (path, leaf), g in zip(paths_leaves, jax.tree.leaves(grads)):
            if np.shape(g) != np.shape(leaf):
                _checks.fail(name, "grad_fn", f"return a gradient of shape {np.shape(leaf)} for "
                             f"params{jax.tree_util.keystr(path)}", f"shape {np.shape(g)}")
        flat, unravel = ravel_pytree(params64)
        sizes = [int(np.size(leaf)) for _, leaf in paths_leaves]
        offsets = np.cumsum([0] + sizes)
        chosen = [np.arange(n) if max_elements is None or n <= max_elements
                  else np.unique(np.linspace(0, n - 1, max_elements).round().astype(int))
                  for n in sizes]
        indices = jnp.asarray(np.concatenate([o + c for o, c in zip(offsets, chosen)]))


        @jax.jit
        def central_differences(indices, flat, arrays):
            def one(i):
                e = jnp.zeros_like(flat).at[i].set(eps)
                args_i = rebuild(arrays)
                return (fn(unravel(flat + e), *args_i) - fn(unravel(flat - e), *args_i)) / (2 * eps)
            return jax.lax.map(one, indices, batch_size=min(64, indices.shape[0]))

        numeric = np.asarray(central_differences(indices, flat, arrays))
        analytic_leaves = [np.asarray(g, np.float64).ravel() for g in jax.tree.leaves(grads)]

    checks, start = [], 0
    for (path, leaf), picked, analytic in zip(paths_leaves, chosen, analytic_leaves):
        g, g_fd = analytic[picked], numeric[start:start + len(picked)]
        start += len(picked)
        error = np.abs(g - g_fd)
        scale = np.maximum(np.abs(g), np.abs(g_fd))
        relative = np.where(scale > atol, error / np.where(scale > 0, scale, 1), 0.0)
        excess = error - (atol + rtol * np.abs(g_fd))
        worst = int(picked[np.argmax(excess)]) if len(picked) else 0
        checks.append(LeafCheck(
            jax.tree_util.keystr(path), tuple(np.shape(leaf)), len(picked),
            float(error.max(initial=0.0)), float(relative.max(initial=0.0)),
            tuple(int(i) for i in np.unravel_index(worst, np.shape(leaf))),
            bool(np.all(excess <= 0))))
    return GradientCheck(tuple(checks), all(c.passed for c in checks), float(eps), float(rtol),
                         float(atol))

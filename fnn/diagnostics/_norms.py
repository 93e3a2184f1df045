"""Per-layer gradient norms and the vanishing-gradient report (part of :mod:`fnn.diagnostics`)."""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fnn import _checks
from fnn import activations as _activations
from fnn import losses as _losses
from fnn.models import mlp


def _l2(x: jax.Array) -> jax.Array:
    """Euclidean norm that neither overflows nor underflows: max|x| * |x / max|x||.

    Vanishing gradients are the point here: squaring a 1e-25 gradient in float32 (or
    a 1e-20 one in bfloat16) would round the norm to 0. Computed in at least float32.
    """
    x = jnp.asarray(x)
    x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    biggest = jnp.max(jnp.abs(x), initial=0.0)
    safe = jnp.where(biggest > 0, biggest, 1)
    return biggest * jnp.sqrt(jnp.sum(jnp.square(x / safe)))


def layer_grad_norms(grads: Any, *, include_bias: bool = False) -> jax.Array:
    r"""Per-layer gradient norms, first layer first.

    .. math:: n_l = \lVert \partial L / \partial W_l \rVert_2 = \sqrt{\textstyle\sum_{ij}
              (\partial L / \partial W_{l,ij})^2}

    the Frobenius norm of layer :math:`l`'s kernel gradient; with ``include_bias``
    every leaf of the layer's dict (``b``, PReLU's ``alpha``) joins the sum. A layer is
    an entry of the params list (:func:`fnn.models.mlp`, :func:`fnn.serial`) or of a
    params dict (in key order); an entry without a kernel ``"w"`` (batch norm's scale
    and offset, a custom layer) counts all its leaves, and an entry without params (an
    activation in a ``serial``) is skipped: one norm per parameterised layer. Pure and
    traceable: use it under ``jit``/``vmap`` or as a per-epoch hook
    (:func:`grad_norms_fn`).

    Args:
      grads: gradients shaped like the params: a list, tuple or dict of per-layer
        pytrees (for :func:`fnn.models.mlp`, dicts each holding ``"w"``).
      include_bias: also count ``"b"`` (and ``"alpha"``) of layers with a kernel.

    Returns:
      ``(n_layers,)`` array, in the gradients' dtype (at least float32).

    Raises:
      ValueError: if ``grads`` is not a list or dict of layers with at least one array.

    Example:
      >>> import jax.numpy as jnp, fnn
      >>> grads = [{"w": jnp.full((2, 2), 0.5), "b": jnp.ones(2)}, {"w": jnp.array([[3.0], [4.0]]), "b": jnp.zeros(1)}]
      >>> fnn.diagnostics.layer_grad_norms(grads)
      Array([1., 5.], dtype=float32)
    """
    include_bias = _checks.boolean("layer_grad_norms", "include_bias", include_bias)
    entries = list(grads.values()) if isinstance(grads, Mapping) and not _has_kernel(grads) else grads
    if not isinstance(entries, (list, tuple)) or not any(jax.tree.leaves(g) for g in entries):
        _checks.fail("layer_grad_norms", "grads", "be a non-empty list (or dict) of per-layer "
                     'gradients, such as those of fnn.mlp params (dicts with "w")', _checks.describe(grads))
    norms = []
    for i, g in enumerate(entries):
        parts = [g["w"]] if _has_kernel(g) and not include_bias else jax.tree.leaves(g)
        if not parts:
            continue
        for part in parts:
            if isinstance(part, (str, bytes)) or not hasattr(part, "dtype") and not isinstance(part, (int, float)):
                _checks.fail("layer_grad_norms", "grads", "hold arrays in every layer",
                             f"layer {i}: {_checks.describe(part)}", TypeError)
        norms.append(_l2(jnp.concatenate([jnp.ravel(p) for p in parts])))
    return jnp.stack(norms)


def _has_kernel(g: Any) -> bool:
    return isinstance(g, Mapping) and "w" in g


def grad_norms_fn(loss_fn: Callable[..., jax.Array], *, include_bias: bool = False
                  ) -> Callable[..., jax.Array]:
    r"""A pure hook ``(params, *batch) -> layer_grad_norms(jax.grad(loss_fn)(params, *batch))``.

    Made to be called once per epoch (for example from a training loop's history) to
    watch the per-layer gradient norms evolve.

    Args:
      loss_fn: ``loss_fn(params, *batch) -> scalar`` for mlp-shaped params.
      include_bias: passed to :func:`layer_grad_norms`.

    Example:
      >>> import jax, jax.numpy as jnp, fnn
      >>> model = fnn.mlp([8, 8, 1], activation="sigmoid")
      >>> params = model.init(jax.random.key(0), (2,))
      >>> hook = fnn.diagnostics.grad_norms_fn(
      ...     lambda p, x, y: fnn.losses.binary_cross_entropy(model.apply(p, x), y))
      >>> jax.jit(hook)(params, jnp.ones((4, 2)), jnp.array([0, 1, 1, 0])).shape
      (3,)
    """
    if not callable(loss_fn):
        _checks.fail("grad_norms_fn", "loss_fn", "be callable", type(loss_fn).__name__, TypeError)
    include_bias = _checks.boolean("grad_norms_fn", "include_bias", include_bias)

    def hook(params: Any, *batch: Any) -> jax.Array:
        return layer_grad_norms(jax.grad(loss_fn)(params, *batch), include_bias=include_bias)

    return hook


class VanishingGradientReport(NamedTuple):
    """Result of :func:`vanishing_gradient_report`; ``print`` it for a table.

    Attributes:
      activations: the hidden activations compared, one row of each array per name.
      norms: ``(n_activations, depth)`` :math:`\\lVert \\partial L/\\partial W_l\\rVert`,
        first layer first.
      ratios: ``(n_activations,)`` first layer's norm / last layer's norm.
      mean_derivatives: ``(n_activations, depth - 1)`` mean of :math:`f'(z_l)` over the
        batch and the units of each hidden layer: the chain rule's factor per layer.
      loss: ``(n_activations,)`` the loss at initialisation.
    """

    activations: tuple
    norms: jax.Array
    ratios: jax.Array
    mean_derivatives: jax.Array
    loss: jax.Array

    def __str__(self) -> str:
        depth = self.norms.shape[1]
        head = ["layer"] + list(self.activations)
        rows = [[str(l + 1)] + [f"{float(n):.3e}" for n in self.norms[:, l]] for l in range(depth)]
        rows.append(["first/last"] + [f"{float(r):.3e}" for r in self.ratios])
        rows.append(["mean f'(z)"] + [f"{float(d):.3f}" for d in self.mean_derivatives.mean(axis=1)])
        widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
        fmt = lambda r: "  ".join(c.rjust(w) for c, w in zip(r, widths))  # noqa: E731
        return "\n".join([f"|dL/dW| per layer (layer 1 = input side), depth {depth}", fmt(head)]
                         + [fmt(r) for r in rows])


def _hidden_activation(name: str):
    fn = _activations.get(name)
    return (lambda z, p: fn(z, p["alpha"])) if name == "prelu" else (lambda z, p: fn(z))


@functools.partial(jax.jit, static_argnames=("activation", "loss"))
def _measure(params, x, y, *, activation, loss):
    """Loss, per-layer gradient norms and mean f'(z) per hidden layer of one MLP."""
    model = mlp([p["b"].shape[0] for p in params], activation=activation)
    loss_fn = getattr(_losses, loss)
    value, grads = jax.value_and_grad(lambda p: loss_fn(model.apply(p, x), y))(params)
    act = _hidden_activation(activation)
    a, slopes = x, []
    for p in params[:-1]:
        z = a @ p["w"] + p["b"]
        # Elementwise f'(z): the gradient of sum f(z) with respect to z.
        slopes.append(jnp.mean(jax.grad(lambda z: jnp.sum(act(z, p)))(z)))
        a = act(z, p)
    return value, layer_grad_norms(grads), jnp.stack(slopes)


_REPORT_ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "prelu", "identity")
_REPORT_LOSSES = ("binary_cross_entropy", "softmax_cross_entropy", "mse")


def vanishing_gradient_report(key: jax.Array, x: Any = None, y: Any = None, *, depth: int = 10,
                              width: int = 32, activations: Sequence[str] = ("sigmoid", "tanh", "relu"),
                              loss: str = "binary_cross_entropy", w_init: Callable | None = None,
                              batch_size: int = 256, n_features: int = 16) -> VanishingGradientReport:
    r"""Per-layer gradient norms of a deep MLP, one activation beside another.

    For each activation, a fresh ``fnn.mlp([width] * (depth - 1) + [outputs])`` (same
    init key; default init for the activation: Glorot for sigmoid/tanh, He for the ReLU
    family) and one batch give :math:`\lVert \partial L/\partial W_l \rVert` for
    :math:`l = 1 \dots` ``depth``. The chain rule makes layer 1's gradient a product of
    one factor :math:`W_l^\top \operatorname{diag}(f'(z_l))` per layer above it;
    :math:`\sigma' \le 1/4` (about 0.2 on average) shrinks it geometrically, ReLU's
    :math:`f' \in \{0, 1\}` does not.

    Args:
      key: PRNG key for the init (and the synthetic batch when ``x`` is None).
      x: ``(batch, features)`` inputs, or None for ``batch_size`` standard-normal points
        in ``n_features`` dimensions labelled by the XOR of the signs of their first
        two coordinates.
      y: targets for ``loss`` (required with ``x``): {0, 1} labels ``(batch,)`` for
        binary cross-entropy, classes ``(batch,)`` for softmax cross-entropy (their
        count sets the outputs), ``(batch, k)`` for mse.
      depth: number of dense layers (>= 2).
      width: units per hidden layer.
      activations: hidden activation names to compare.
      loss: ``"binary_cross_entropy"``, ``"softmax_cross_entropy"`` or ``"mse"``.
      w_init: one kernel initializer for every activation (isolates the activation's
        effect), default the activation's own.
      batch_size, n_features: size of the synthetic batch.

    Returns:
      :class:`VanishingGradientReport`.

    Raises:
      ValueError: for a bad depth, width, activation, loss, or ``x``/``y`` shapes.

    Example:
      >>> import jax, fnn
      >>> report = fnn.diagnostics.vanishing_gradient_report(
      ...     jax.random.key(0), depth=5, width=8, activations=("sigmoid", "relu"), batch_size=64)
      >>> report.norms.shape, bool(report.ratios[0] < 0.1 < report.ratios[1])
      ((2, 5), True)
      >>> print(report)  # doctest: +SKIP
      |dL/dW| per layer (layer 1 = input side), depth 5
           layer    sigmoid       relu
               1  9.107e-04  1.490e-01
               2  1.964e-03  1.169e-01
               3  7.425e-03  8.572e-02
               4  5.125e-02  1.890e-01
               5  1.218e-01  1.224e-01
      first/last  7.479e-03  1.217e+00
      mean f'(z)      0.228      0.492
    """
    fn = "vanishing_gradient_report"
    depth = _checks.positive_int(fn, "depth", depth)
    if depth < 2:
        _checks.fail(fn, "depth", "be at least 2 (one hidden layer)", repr(depth))
    width = _checks.positive_int(fn, "width", width)
    if isinstance(activations, str) or not activations or any(
            a not in _REPORT_ACTIVATIONS for a in activations):
        _checks.fail(fn, "activations", f"be a non-empty list of names from {', '.join(_REPORT_ACTIVATIONS)}",
                     repr(activations))
    if loss not in _REPORT_LOSSES:
        _checks.fail(fn, "loss", f"be one of {', '.join(_REPORT_LOSSES)}", repr(loss))
    _checks.prng_key(fn, "key", key)
    data_key, init_key = jax.random.split(key)
    if x is None:
        x = jax.random.normal(data_key, (_checks.positive_int(fn, "batch_size", batch_size),
                                         _checks.positive_int(fn, "n_features", n_features)))
        if loss == "mse" or n_features < 2:
            _checks.fail(fn, "x", "be given for mse, or n_features be >= 2", f"loss {loss!r}")
        y = (x[:, 0] * x[:, 1] > 0).astype(jnp.int32)
    elif y is None:
        _checks.fail(fn, "y", "be given with x", "None")
    _checks.floating(fn, "x", x)
    x, y = jnp.asarray(x), jnp.asarray(y)
    if x.ndim != 2:
        _checks.fail(fn, "x", "be 2-D (batch, features)", f"shape {x.shape}")
    if y.shape[:1] != x.shape[:1]:
        _checks.fail(fn, "y", f"have x's batch size (x of shape {x.shape}, 2-D)", f"shape {y.shape}")
    # Concrete labels are checked here: inside the compiled measurement they cannot be.
    labels = np.asarray(y)
    if loss == "binary_cross_entropy" and labels.size and not np.all((labels >= 0) & (labels <= 1)):
        _checks.fail(fn, "y", "be labels in {0, 1} (or [0, 1]) for binary_cross_entropy",
                     f"values in [{labels.min()}, {labels.max()}]")
    if loss == "softmax_cross_entropy":
        _checks.integer(fn, "y", y)
        if labels.size and labels.min() < 0:
            _checks.fail(fn, "y", "be class indices >= 0 for softmax_cross_entropy", f"minimum {labels.min()}")
    outputs = {"binary_cross_entropy": 1, "mse": y.shape[-1] if y.ndim == 2 else 0,
               "softmax_cross_entropy": int(np.max(np.asarray(y))) + 1 if y.size else 0}[loss]
    if outputs == 0:
        _checks.fail(fn, "y", f"suit {loss} ((batch, k) targets for mse)", f"shape {y.shape}")
    features = (width,) * (depth - 1) + (outputs,)
    # Init outside the compiled measurement: the init's random ops compile once per
    # shape eagerly and are then shared by every activation (compiling ten layers of
    # truncated normals inside each program would take longer than everything else).
    results = [_measure(mlp(features, activation=a, w_init=w_init).init(init_key, x.shape[1:]),
                        x, y, activation=a, loss=loss) for a in activations]
    values, norms, slopes = (jnp.stack(r) for r in zip(*results))
    return VanishingGradientReport(tuple(activations), norms, norms[:, 0] / norms[:, -1], slopes, values)
